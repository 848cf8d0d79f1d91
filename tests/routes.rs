//! The seed's wire behaviour on each default route, and the HTTP endpoints.

mod common;

use common::{json, TestServer, Ws};
use tokio_tungstenite::tungstenite::Message;

/// `/echo` returns exactly the text it receives, in order.
#[tokio::test]
async fn echo_returns_text_unchanged() {
    let srv = TestServer::start_default().await;
    let mut ws = srv.connect("/echo").await;
    for msg in [
        "hello",
        "",
        "ünïcödé ✓ 🚀",
        "  spaces  ",
        &"x".repeat(10_000),
    ] {
        ws.send_text(msg).await;
        assert_eq!(ws.recv_text().await, msg);
    }
    srv.stop().await;
}

/// `/echo` answers binary with binary, like the public echo servers.
#[tokio::test]
async fn echo_returns_binary_as_binary() {
    let srv = TestServer::start_default().await;
    let mut ws = srv.connect("/echo").await;
    let data: Vec<u8> = (0..=255).collect();
    ws.send_binary(&data).await;
    match ws.recv().await {
        Message::Binary(b) => assert_eq!(&b[..], &data[..]),
        other => panic!("expected binary, got {other:?}"),
    }
    srv.stop().await;
}

/// `/shout` answers `text.toUpperCase() + "!!!"`, Unicode-aware.
#[tokio::test]
async fn shout_upper_cases_and_adds_bangs() {
    let srv = TestServer::start_default().await;
    let mut ws = srv.connect("/shout").await;
    ws.send_text("hello").await;
    assert_eq!(ws.recv_text().await, "HELLO!!!");
    ws.send_text("straße café ǆ").await;
    assert_eq!(ws.recv_text().await, "STRASSE CAFÉ Ǆ!!!");
    ws.send_text("").await;
    assert_eq!(ws.recv_text().await, "!!!");
    srv.stop().await;
}

/// The seed's chat: enter (newcomer included), messages to everyone including
/// the sender, leave after close; nicknames user1, user2, … in arrival order.
#[tokio::test]
async fn chat_follows_the_seed_protocol() {
    let srv = TestServer::start_default().await;
    let mut a = srv.connect("/chat").await;
    assert_eq!(a.recv_json().await, json("enter", "user1 comes in"));

    let mut b = srv.connect("/chat").await;
    assert_eq!(b.recv_json().await, json("enter", "user2 comes in"));
    assert_eq!(a.recv_json().await, json("enter", "user2 comes in"));

    a.send_text("hi there").await;
    assert_eq!(a.recv_json().await, json("message", "user1:hi there"));
    assert_eq!(b.recv_json().await, json("message", "user1:hi there"));

    b.send_text("{\"not\":\"parsed\"} <b>raw</b>").await;
    let expected = json("message", "user2:{\"not\":\"parsed\"} <b>raw</b>");
    assert_eq!(b.recv_json().await, expected);
    assert_eq!(a.recv_json().await, expected);

    b.close().await;
    assert_eq!(a.recv_json().await, json("leave", "user2 left"));

    // Numbers keep counting: the seed's counter never goes back.
    let mut c = srv.connect("/chat").await;
    assert_eq!(c.recv_json().await, json("enter", "user3 comes in"));
    assert_eq!(a.recv_json().await, json("enter", "user3 comes in"));
    srv.stop().await;
}

/// A client that holds its 101 is already in the room: clients that connect
/// one after another are numbered in that order, and a message sent the
/// moment the last one connected reaches every one of them. (The session is
/// opened before the 101 goes out; opened after, on a multi-threaded runtime
/// a later client could overtake an earlier one and miss messages.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_is_a_member_once_its_handshake_completes() {
    let srv = TestServer::start_default().await;
    let mut first = srv.connect("/chat/order").await;
    let mut rest = Vec::new();
    for _ in 0..40 {
        rest.push(srv.connect("/chat/order").await);
    }
    // Sent before anyone has read a byte: every member must get it.
    first.send_text("to all").await;
    assert_eq!(first.recv_json().await, json("enter", "user1 comes in"));
    for (i, ws) in rest.iter_mut().enumerate() {
        let n = i + 2;
        assert_eq!(
            ws.recv_json().await,
            json("enter", &format!("user{n} comes in")),
            "the {n}th client to connect is user{n}"
        );
        // Then the later clients' enters, then the message.
        for later in n + 1..=41 {
            assert_eq!(
                ws.recv_json().await,
                json("enter", &format!("user{later} comes in"))
            );
        }
        assert_eq!(ws.recv_json().await, json("message", "user1:to all"));
    }
    srv.stop().await;
}

/// Each route numbers its own connections: opening `/echo` first does not
/// shift chat's nicknames.
#[tokio::test]
async fn nick_numbers_are_per_route() {
    let srv = TestServer::start_default().await;
    let mut e1 = srv.connect("/echo").await;
    let _e2 = srv.connect("/echo").await;
    e1.send_text("ping").await;
    assert_eq!(e1.recv_text().await, "ping");
    let mut c = srv.connect("/chat").await;
    assert_eq!(c.recv_json().await, json("enter", "user1 comes in"));
    srv.stop().await;
}

/// `/chat/{room}` rooms are isolated from each other and from `/chat`.
#[tokio::test]
async fn chat_rooms_are_isolated() {
    let srv = TestServer::start_default().await;
    let mut red = srv.connect("/chat/red").await;
    assert_eq!(red.recv_json().await, json("enter", "user1 comes in"));
    let mut blue = srv.connect("/chat/blue").await;
    assert_eq!(blue.recv_json().await, json("enter", "user2 comes in"));
    let mut lobby = srv.connect("/chat").await;
    assert_eq!(lobby.recv_json().await, json("enter", "user3 comes in"));

    blue.send_text("only blue").await;
    assert_eq!(blue.recv_json().await, json("message", "user2:only blue"));
    red.send_text("only red").await;
    assert_eq!(red.recv_json().await, json("message", "user1:only red"));
    lobby.send_text("only lobby").await;
    assert_eq!(lobby.recv_json().await, json("message", "user3:only lobby"));
    // Had anything leaked, it would arrive before these.
    assert_eq!(srv.metric("roomcast_rooms").await, 3.0);
    srv.stop().await;
}

/// The seed's chat page connects to `ws://host:3000/`: an upgrade on `/` goes to
/// the default route (chat).
#[tokio::test]
async fn upgrade_on_root_goes_to_the_default_route() {
    let srv = TestServer::start_default().await;
    let mut root = srv.connect("/").await;
    assert_eq!(root.recv_json().await, json("enter", "user1 comes in"));
    let mut chat = srv.connect("/chat").await;
    assert_eq!(chat.recv_json().await, json("enter", "user2 comes in"));
    assert_eq!(root.recv_json().await, json("enter", "user2 comes in"));
    srv.stop().await;
}

/// A plain GET on `/` returns the web client, naming the routes.
#[tokio::test]
async fn index_page_names_the_routes() {
    let srv = TestServer::start_default().await;
    let r = srv.get("/").await;
    assert_eq!(r.status, 200);
    assert!(r.head.to_lowercase().contains("content-type: text/html"));
    for route in ["/echo", "/shout", "/chat"] {
        assert!(
            r.body.contains(&format!("<code>{route}</code>")),
            "{}",
            r.body
        );
    }
    // The web client: its script and stylesheet, under a strict CSP.
    let head = r.head.to_lowercase();
    assert!(
        head.contains("content-security-policy: default-src 'none'; script-src 'self';"),
        "{head}"
    );
    assert!(head.contains("x-content-type-options: nosniff"), "{head}");
    for (path, kind) in [
        ("/assets/roomcast.js", "text/javascript"),
        ("/assets/roomcast.css", "text/css"),
    ] {
        let a = srv.get(path).await;
        assert_eq!(a.status, 200, "{path}");
        assert!(
            a.head
                .to_lowercase()
                .contains(&format!("content-type: {kind}")),
            "{path}"
        );
        assert!(r.body.contains(path), "the page loads {path}");
    }
    srv.stop().await;
}

/// Health and readiness probes.
#[tokio::test]
async fn health_and_readiness() {
    let srv = TestServer::start_default().await;
    assert_eq!(srv.get("/healthz").await.status, 200);
    assert_eq!(srv.get("/readyz").await.status, 200);
    srv.server.shutdown();
    assert_eq!(srv.get("/readyz").await.status, 503);
    assert_eq!(srv.get("/healthz").await.status, 200);
}

/// A plain request on a WebSocket route gets 426 with a short explanation.
#[tokio::test]
async fn plain_get_on_a_route_is_426() {
    let srv = TestServer::start_default().await;
    let r = srv.get("/chat").await;
    assert_eq!(r.status, 426);
    assert!(r.body.contains("WebSocket"), "{}", r.body);
    assert_eq!(
        srv.metric("roomcast_http_rejections_total{reason=\"not_upgrade\"}")
            .await,
        1.0
    );
    srv.stop().await;
}

/// Unknown paths and invalid room names are 404; a broken handshake (wrong
/// version, no key, not GET) is 400; each is counted, and the server carries on.
#[tokio::test]
async fn unknown_paths_and_bad_handshakes() {
    let srv = TestServer::start_default().await;
    assert_eq!(srv.get("/nope").await.status, 404);
    assert_eq!(srv.get("/chat/a/b").await.status, 404);
    assert_eq!(srv.get("/chat/%3Cscript%3E").await.status, 404);
    assert_eq!(
        srv.metric("roomcast_http_rejections_total{reason=\"not_found\"}")
            .await,
        3.0
    );
    let addr = srv.addr;
    let upgrade = |method: &str, extra: &str| {
        format!(
            "{method} /echo HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             {extra}Connection: close\r\n\r\n"
        )
    };
    for (case, request) in [
        (
            "version 8",
            upgrade("GET", "Sec-WebSocket-Version: 8\r\nSec-WebSocket-Key: x\r\n"),
        ),
        ("no key", upgrade("GET", "Sec-WebSocket-Version: 13\r\n")),
        (
            "not GET",
            upgrade(
                "POST",
                "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nContent-Length: 0\r\n",
            ),
        ),
    ] {
        let r = common::http_raw(addr, &request).await;
        assert_eq!(r.status, 400, "{case}: {}", r.head);
    }
    assert_eq!(
        srv.metric("roomcast_http_rejections_total{reason=\"bad_handshake\"}")
            .await,
        3.0
    );
    assert_eq!(srv.metric("roomcast_connections").await, 0.0);
    // The server still works.
    let mut ws: Ws = srv.connect("/echo").await;
    ws.send_text("still here").await;
    assert_eq!(ws.recv_text().await, "still here");
    srv.stop().await;
}

/// A route with a native handler (no script) answers like its script twin.
#[tokio::test]
async fn native_routes_echo_and_shout() {
    use roomcast::config::{Native, RouteConfig};
    let mut config = common::test_config();
    config
        .routes
        .push(RouteConfig::native("fast-echo", Native::Echo));
    config
        .routes
        .push(RouteConfig::native("fast-shout", Native::Shout));
    let srv = TestServer::start(config).await;
    let mut e = srv.connect("/fast-echo").await;
    e.send_text("héllo").await;
    assert_eq!(e.recv_text().await, "héllo");
    e.send_binary(&[0, 1, 2]).await;
    assert_eq!(e.recv().await, Message::Binary(vec![0u8, 1, 2].into()));
    let mut s = srv.connect("/fast-shout").await;
    s.send_text("straße").await;
    assert_eq!(s.recv_text().await, "STRASSE!!!");
    srv.stop().await;
}

/// A message hook's return value is its reply; values that are not messages
/// (numbers, booleans) send nothing.
#[tokio::test]
async fn hook_return_value_is_the_reply() {
    let dir = common::temp_scripts();
    std::fs::write(
        dir.path().join("ret.rhai"),
        "fn on_message(conn, text) { if text == \"n\" { return 42; } `got ${text}` }\n",
    )
    .unwrap();
    let srv = TestServer::start(common::config_with_route(dir.path(), "ret")).await;
    let mut ws = srv.connect("/ret").await;
    ws.send_text("n").await;
    ws.send_text("x").await;
    assert_eq!(ws.recv_text().await, "got x", "the 42 was not sent");
    srv.stop().await;
}
