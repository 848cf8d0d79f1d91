//! socket.io clients: the real socket.io-client 2.0.3 and 4.x (from npm, run
//! by Node) in rooms with everyone else, and bad input at the engine.io and
//! socket.io levels, answered and counted.
//!
//! Needs `npm ci` in tests/browser: tests/run.sh does it.

mod common;

use std::time::Duration;

use common::eio::{http, Eio};
use common::sio::{clients, no_questions};
use common::{json, TestServer, V1, WAIT};
use serde_json::{json as j, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// 2.0.3 polling then upgrading, polling only, 4.x WebSocket only on /echo
/// and /shout (binary too), both versions in one room, acks, the room
/// commands, a reconnect, an unknown namespace.
#[tokio::test]
async fn socketio_clients_2_and_4_work() {
    let srv = TestServer::start_default().await;
    clients(&srv, "basic", no_questions).await;
    assert_eq!(srv.wait_metric("roomcast_connections", 0.0).await, 0.0);
    assert_eq!(
        srv.metric("roomcast_socketio_errors_total{kind=\"connect_refused\"}")
            .await,
        1.0,
        "the unknown namespace"
    );
    srv.stop().await;
}

/// A socket.io client, a raw WebSocket client and a roomcast.v1 client in
/// one room: each sees the others' messages in its own protocol, with
/// nicknames from the route's one counter.
#[tokio::test]
async fn socketio_raw_and_v1_clients_share_a_room() {
    let mut c = common::test_config();
    c.limits.rate.messages_per_second = 0;
    let srv = TestServer::start(c).await;
    let mut raw = srv.connect("/chat").await;
    assert_eq!(raw.recv_json().await, json("enter", "user1 comes in"));
    let mut v1 = V1::connect(&srv, "/chat", &[]).await;
    v1.join("chat/lobby").await;
    assert_eq!(raw.recv_json().await, json("enter", "user2 comes in"));
    let addr = srv.addr;
    let raw = std::sync::Arc::new(tokio::sync::Mutex::new(raw));
    let v1 = std::sync::Arc::new(tokio::sync::Mutex::new(v1));
    let sio_nick = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    clients(&srv, "mixed", |what| {
        let (raw, v1, sio_nick) = (raw.clone(), v1.clone(), sio_nick.clone());
        async move {
            let mut raw = raw.lock().await;
            let mut v1 = v1.lock().await;
            if let Some(nick) = what.strip_prefix("nick ") {
                assert_eq!(nick, "user3", "one counter for every kind of client");
                *sio_nick.lock().unwrap() = nick.to_string();
                common::sio::raw_and_v1_speak(&mut raw, &mut v1, nick).await;
                return "spoke".to_string();
            }
            assert_eq!(what, "listen");
            let nick = sio_nick.lock().unwrap().clone();
            let line = format!("{nick}:from socket.io");
            assert_eq!(raw.recv_json().await, json("message", &line));
            let ev = loop {
                let ev = v1.until("message").await;
                if ev["data"] == json("message", &line) {
                    break ev;
                }
            };
            assert!(ev["from"]["conn"].is_u64());
            // Presence and the members count see the socket.io client too.
            v1.send(j!({"type": "presence", "room": "chat/lobby", "id": "p"}))
                .await;
            let presence = v1.until("presence").await;
            let nicks: Vec<&str> = presence["members"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["nick"].as_str().unwrap())
                .collect();
            assert!(nicks.contains(&nick.as_str()), "{presence}");
            let _ = addr;
            "heard".to_string()
        }
    })
    .await;
    srv.stop().await;
}

/// Saving a script changes what connected socket.io clients get, with no reconnect.
#[tokio::test]
async fn a_script_edit_reaches_socketio_clients() {
    let dir = common::temp_scripts();
    let mut c = common::test_config();
    c.scripts.dir = dir.path().to_path_buf();
    c.scripts.watch = true;
    let srv = TestServer::start(c).await;
    let events = std::sync::Arc::new(tokio::sync::Mutex::new(srv.server.scripts().subscribe()));
    let path = dir.path().join("shout.rhai");
    clients(&srv, "reload", |what| {
        assert_eq!(what, "edit");
        std::fs::write(
            &path,
            "fn on_message(conn, text) { text.to_lower() + \"?!\" }\n",
        )
        .unwrap();
        let events = events.clone();
        async move {
            let mut events = events.lock().await;
            let ev = tokio::time::timeout(WAIT, events.recv())
                .await
                .expect("a reload")
                .expect("events");
            assert!(ev.result.is_ok(), "{:?}", ev.result);
            "edited".to_string()
        }
    })
    .await;
    srv.stop().await;
}

/// Shutdown: socket.io clients of both versions get a disconnect packet.
#[tokio::test]
async fn shutdown_disconnects_socketio_clients() {
    let srv = TestServer::start_default().await;
    let server = srv.server.clone();
    clients(&srv, "shutdown", |what| {
        assert_eq!(what, "stop");
        server.shutdown();
        async { "stopping".to_string() }
    })
    .await;
    server.sessions_closed().await;
    assert_eq!(srv.metric("roomcast_connections").await, 0.0);
}

/// A token in the connect's auth payload admits; a bad or missing one is a
/// connect_error with the reason, counted. `refresh(token)` replaces it
/// (the same user) or is refused (another), the socket staying connected.
#[tokio::test]
async fn tokens_in_the_auth_payload() {
    use jsonwebtoken::{encode, EncodingKey, Header};
    let mut c = common::test_config();
    c.auth.required = true;
    c.auth.hs256_secret = Some("sio-secret".into());
    let srv = TestServer::start(c).await;
    let token = |claims: serde_json::Value, secret: &str| {
        encode(
            &Header::default(),
            &claims,
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap()
    };
    let (good, bad) = (
        token(j!({"sub": "ann"}), "sio-secret"),
        token(j!({"sub": "ann"}), "wrong"),
    );
    // A refresh: the same user with an expiry, then another user.
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 600;
    let fresh = token(j!({"sub": "ann", "exp": exp}), "sio-secret");
    let other = token(j!({"sub": "bob", "exp": exp}), "sio-secret");
    clients(&srv, "auth", |what| {
        assert_eq!(what, "tokens");
        let reply = format!("{good} {bad} {fresh} {other}");
        async move { reply }
    })
    .await;
    assert_eq!(
        srv.metric("roomcast_http_rejections_total{reason=\"unauthorized\"}")
            .await,
        2.0
    );
    assert_eq!(
        srv.metric("roomcast_socketio_errors_total{kind=\"connect_refused\"}")
            .await,
        2.0
    );
    for (result, n) in [("ok", 1.0), ("refused", 1.0)] {
        let sample = format!("roomcast_token_refreshes_total{{result=\"{result}\"}}");
        assert_eq!(srv.metric(&sample).await, n, "{sample}");
    }
    srv.stop().await;
}

/// Over a route's rate limit (20 messages a second, burst 20), a socket.io 4
/// client that emits 100 messages back to back — text and binary, over
/// WebSocket and long-polling — gets every one answered, in order, and no
/// error: a message over the rate waits (the connection is not read, a
/// polling POST not answered, until the bucket refills), as on a raw
/// WebSocket; nothing is dropped or refused.
#[tokio::test]
async fn over_the_rate_socketio_messages_wait_and_all_arrive() {
    let mut c = common::test_config();
    let limited = roomcast::config::RateLimit {
        messages_per_second: 20,
        burst: 20,
        ..Default::default()
    };
    c.routes
        .push(roomcast::config::RouteConfig::script("limited", "echo.rhai").with_rate(limited));
    let srv = TestServer::start(c).await;
    clients(&srv, "rate", no_questions).await;
    assert!(
        srv.metric("roomcast_rate_limit_waits_total").await >= 4.0 * 80.0,
        "the limit held"
    );
    assert_eq!(
        srv.metric("roomcast_messages_dropped_total{reason=\"rate_limited\"}")
            .await,
        0.0
    );
    assert_eq!(srv.wait_metric("roomcast_connections", 0.0).await, 0.0);
    srv.stop().await;
}

/// Requests for a session that does not exist — a poll, a post, a WebSocket
/// upgrade — are 400 with the engine.io error body, counted.
#[tokio::test]
async fn unknown_sessions_are_400_with_the_engine_io_error() {
    let srv = TestServer::start_default().await;
    let addr = srv.addr;
    for (method, transport) in [
        ("GET", "polling"),
        ("POST", "polling"),
        ("GET", "websocket"),
    ] {
        let upgrade = if transport == "websocket" {
            "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        } else {
            "Content-Length: 0\r\n"
        };
        let (status, _, body) = http(
            addr,
            format!("{method} /socket.io/?EIO=4&transport={transport}&sid=AAAAAAAAAAAAAAAA HTTP/1.1\r\nHost: {addr}\r\n{upgrade}Connection: close\r\n\r\n"),
        )
        .await;
        assert_eq!(status, 400, "{method} {transport}");
        let body: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body, j!({"code": 1, "message": "Session ID unknown"}));
    }
    assert_eq!(
        srv.metric("roomcast_socketio_errors_total{kind=\"unknown_session\"}")
            .await,
        3.0
    );
    srv.stop().await;
}

/// A polling POST over the message-size limit is 413 (engine.io stops reading
/// at the limit), counted; the server and other clients carry on.
#[tokio::test]
async fn an_oversized_polling_post_is_413() {
    let mut c = common::test_config();
    c.limits.max_message_size = 1000;
    let srv = TestServer::start(c).await;
    let eio = Eio::open(srv.addr, Some("/")).await;
    assert_eq!(srv.metric("roomcast_connections").await, 1.0);
    let by = |t: &str| format!("roomcast_connections_by_transport{{transport=\"{t}\"}}");
    assert_eq!(srv.metric(&by("socketio")).await, 1.0);
    assert_eq!(srv.metric(&by("websocket")).await, 0.0);
    let big = format!("42[\"message\",\"{}\"]", "x".repeat(10_000));
    assert_eq!(eio.post(&big).await.0, 413);
    assert_eq!(
        srv.metric("roomcast_socketio_errors_total{kind=\"too_large\"}")
            .await,
        1.0
    );
    let mut ws = srv.connect("/echo").await;
    ws.send_text("still here").await;
    assert_eq!(ws.recv_text().await, "still here");
    assert_eq!(srv.metric(&by("websocket")).await, 1.0);
    srv.stop().await;
}

/// Over WebSocket, a message over the limit closes the connection before
/// engine.io's reader buffers it (its own bound is 64 MiB), counted.
#[tokio::test]
async fn an_oversized_websocket_message_is_refused_and_counted() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let mut c = common::test_config();
    c.limits.max_message_size = 1000;
    let srv = TestServer::start(c).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(format!(
        "ws://{}/socket.io/?EIO=4&transport=websocket",
        srv.addr
    ))
    .await
    .unwrap();
    let open = tokio::time::timeout(WAIT, ws.next())
        .await
        .expect("the open packet in time")
        .unwrap()
        .unwrap();
    assert!(open.to_text().unwrap().starts_with('0'), "{open:?}");
    ws.send(Message::text("40")).await.unwrap();
    loop {
        let m = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("the connect answer in time")
            .unwrap()
            .unwrap();
        if m.to_text().unwrap().starts_with("40") {
            break;
        }
    }
    assert_eq!(srv.metric("roomcast_connections").await, 1.0);
    // Megabytes, in frames the server's guard counts as they arrive.
    let chunk = "x".repeat(64 * 1024);
    let mut sent = ws
        .send(Message::text(format!("42[\"message\",\"{chunk}")))
        .await;
    for _ in 0..64 {
        if sent.is_err() {
            break;
        }
        sent = ws.send(Message::text(chunk.clone())).await;
    }
    let ended =
        tokio::time::timeout(WAIT, async { while let Some(Ok(_)) = ws.next().await {} }).await;
    assert!(ended.is_ok(), "the server closed the connection");
    assert_eq!(
        srv.wait_metric("roomcast_socketio_errors_total{kind=\"too_large\"}", 1.0)
            .await,
        1.0
    );
    assert_eq!(srv.wait_metric("roomcast_connections", 0.0).await, 0.0);
    srv.stop().await;
}

/// Two polling GETs at once for one session: engine.io refuses the second
/// and closes the session, counted.
#[tokio::test]
async fn concurrent_polls_close_the_session() {
    let srv = TestServer::start_default().await;
    let eio = Eio::open(srv.addr, Some("/")).await;
    // The first poll waits (nothing to send yet, the enter line was taken
    // by Eio::open's poll or waits in it); the second comes while it does.
    let url = eio.url();
    let addr = srv.addr;
    let first = tokio::spawn(async move {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(format!("GET {url} HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut buf = vec![0u8; 4096];
        let _ = tokio::time::timeout(WAIT, s.read(&mut buf)).await;
    });
    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(eio.poll().await.0);
    }
    assert!(statuses.contains(&400), "{statuses:?}");
    assert_eq!(
        srv.wait_metric(
            "roomcast_socketio_errors_total{kind=\"concurrent_polls\"}",
            1.0
        )
        .await,
        1.0
    );
    assert_eq!(srv.wait_metric("roomcast_connections", 0.0).await, 0.0);
    first.abort();
    srv.stop().await;
}

/// Malformed socket.io packets close the connection (each namespace gets
/// its DISCONNECT first), counted; the server carries on.
#[tokio::test]
async fn malformed_packets_close_the_connection() {
    let srv = TestServer::start_default().await;
    for bad in [
        "42[\"message\"",
        "9",
        "4x",
        "451-[\"message\"]\u{1e}42[1]",
        "49[]",
    ] {
        let eio = Eio::open(srv.addr, Some("/")).await;
        assert_eq!(srv.metric("roomcast_connections").await, 1.0, "{bad}");
        eio.post(bad).await;
        assert_eq!(
            srv.wait_metric("roomcast_connections", 0.0).await,
            0.0,
            "{bad}"
        );
    }
    assert!(
        srv.metric("roomcast_socketio_errors_total{kind=\"bad_packet\"}")
            .await
            >= 5.0
    );
    let mut ws = srv.connect("/echo").await;
    ws.send_text("fine").await;
    assert_eq!(ws.recv_text().await, "fine");
    srv.stop().await;
}

/// A binary packet whose attachment never comes: the connection is closed
/// after the heartbeat timeout, counted.
#[tokio::test]
async fn attachments_that_never_arrive_close_the_connection() {
    let mut c = common::test_config();
    c.heartbeat.timeout = Duration::from_millis(300);
    let srv = TestServer::start(c).await;
    let eio = Eio::open(srv.addr, Some("/")).await;
    assert_eq!(srv.metric("roomcast_connections").await, 1.0);
    eio.post("451-[\"message\",{\"_placeholder\":true,\"num\":0}]")
        .await;
    assert_eq!(
        srv.wait_metric(
            "roomcast_socketio_errors_total{kind=\"attachments_timeout\"}",
            1.0
        )
        .await,
        1.0
    );
    assert_eq!(srv.wait_metric("roomcast_connections", 0.0).await, 0.0);
    srv.stop().await;
}

/// A client that polls once and vanishes is reaped by the heartbeat: its
/// session ends, counted as a heartbeat timeout.
#[tokio::test]
async fn a_client_that_polls_once_and_vanishes_is_reaped() {
    let mut c = common::test_config();
    c.heartbeat.interval = Duration::from_millis(200);
    c.heartbeat.timeout = Duration::from_millis(300);
    let srv = TestServer::start(c).await;
    let _gone = Eio::open(srv.addr, Some("/")).await;
    assert_eq!(srv.metric("roomcast_connections").await, 1.0);
    assert_eq!(
        srv.wait_metric("roomcast_heartbeat_timeouts_total", 1.0)
            .await,
        1.0
    );
    assert_eq!(srv.wait_metric("roomcast_connections", 0.0).await, 0.0);
    srv.stop().await;
}

/// CORS: an allowed Origin (a page on another port, or `null` from a file) is
/// echoed with credentials, never `*`; preflights are answered; a foreign
/// Origin (with an allow-list) is 403, counted.
#[tokio::test]
async fn cors_echoes_allowed_origins_with_credentials() {
    let srv = TestServer::start_default().await;
    let addr = srv.addr;
    for origin in ["http://127.0.0.1:8080", "null"] {
        let (status, head, _) = http(
            addr,
            format!("GET /socket.io/?EIO=3&transport=polling HTTP/1.1\r\nHost: {addr}\r\nOrigin: {origin}\r\nConnection: close\r\n\r\n"),
        )
        .await;
        assert_eq!(status, 200);
        let head = head.to_lowercase();
        assert!(
            head.contains(&format!("access-control-allow-origin: {origin}")),
            "{head}"
        );
        assert!(
            head.contains("access-control-allow-credentials: true"),
            "{head}"
        );
        assert!(!head.contains("access-control-allow-origin: *"), "{head}");
    }
    let (status, head, _) = http(
        addr,
        format!("OPTIONS /socket.io/?EIO=3&transport=polling HTTP/1.1\r\nHost: {addr}\r\nOrigin: null\r\nAccess-Control-Request-Method: POST\r\nAccess-Control-Request-Headers: content-type\r\nConnection: close\r\n\r\n"),
    )
    .await;
    assert_eq!(status, 204);
    let head = head.to_lowercase();
    assert!(
        head.contains("access-control-allow-headers: content-type"),
        "{head}"
    );
    assert!(head.contains("access-control-allow-methods:"), "{head}");
    srv.stop().await;

    let mut c = common::test_config();
    c.access.allowed_origins = vec!["https://good.example".into()];
    let srv = TestServer::start(c).await;
    let addr = srv.addr;
    let (status, _, body) = http(
        addr,
        format!("GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: {addr}\r\nOrigin: https://evil.example\r\nConnection: close\r\n\r\n"),
    )
    .await;
    assert_eq!(status, 403);
    assert!(body.contains("evil.example"), "{body}");
    assert_eq!(
        srv.metric("roomcast_http_rejections_total{reason=\"origin\"}")
            .await,
        1.0
    );
    srv.stop().await;
}

/// `socketio.path` moves the endpoint (clients pass it as their `path`
/// option); `socketio.enabled = false` turns it off: its path is then no
/// different from any unknown route.
#[tokio::test]
async fn the_endpoint_path_is_configurable_and_can_be_off() {
    let open = |path: &str, addr: std::net::SocketAddr| {
        http(
            addr,
            format!("GET {path}?EIO=4&transport=polling HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"),
        )
    };
    let mut c = common::test_config();
    c.socketio.path = "/rt/io/".into();
    let srv = TestServer::start(c).await;
    let (status, _, body) = open("/rt/io/", srv.addr).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.starts_with("0{\"sid\":"), "{body}");
    let (status, _, body) = open("/socket.io/", srv.addr).await;
    assert_eq!(status, 404, "{body}");
    srv.stop().await;

    let mut c = common::test_config();
    c.socketio.enabled = false;
    let srv = TestServer::start(c).await;
    let (status, _, body) = open("/socket.io/", srv.addr).await;
    assert_eq!(status, 404, "{body}");
    // The WebSocket routes are unaffected.
    let mut ws = srv.connect("/echo").await;
    ws.send_text("still here").await;
    assert_eq!(ws.recv_text().await, "still here");
    srv.stop().await;
}
