//! Protection against abusive clients: slow handshakes, silent peers, floods,
//! too many connections, foreign origins, bad tokens, hostile scripts. After
//! each, the connections gauge returns to where it was: nothing leaks.

mod common;

use std::time::Duration;

use common::{
    config_with_route, refused, refused_with_headers, request, temp_scripts, RawWs, TestServer, Ws,
    WAIT,
};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

/// Wait until the server closes `stream` (EOF or reset).
async fn closed_by_server(stream: &mut TcpStream) {
    let mut buf = [0u8; 256];
    loop {
        match tokio::time::timeout(WAIT, stream.read(&mut buf))
            .await
            .expect("the server closes the connection in time")
        {
            Ok(0) | Err(_) => return,
            Ok(_) => continue,
        }
    }
}

/// A client that opens TCP and never finishes its request head is dropped
/// after the handshake timeout (slowloris), and so is one that sends nothing.
#[tokio::test]
async fn slowloris_handshake_is_dropped() {
    let mut config = common::test_config();
    config.limits.handshake_timeout = Duration::from_millis(300);
    let srv = TestServer::start(config).await;

    let mut slow = TcpStream::connect(srv.addr).await.unwrap();
    slow.write_all(b"GET /chat HTTP/1.1\r\nHost: x\r\nUpgrade: web")
        .await
        .unwrap();
    let mut silent = TcpStream::connect(srv.addr).await.unwrap();
    closed_by_server(&mut slow).await;
    closed_by_server(&mut silent).await;
    assert_eq!(
        srv.wait_metric("roomcast_handshake_timeouts_total", 2.0)
            .await,
        2.0
    );
    assert_eq!(srv.metric("roomcast_connections").await, 0.0);
    // Real clients are unaffected.
    let mut ws = srv.connect("/echo").await;
    ws.send_text("ok").await;
    assert_eq!(ws.recv_text().await, "ok");
    srv.stop().await;
}

/// Send `head`, then trickle `body` a byte every 100 ms (never finishing it
/// within the deadline); return what the server answered before closing.
async fn trickle(addr: std::net::SocketAddr, head: String, body_len: usize) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + WAIT;
    for _ in 0..body_len {
        if s.write_all(b"x").await.is_err() {
            // Closed by the server (a reset: it left our bytes unread).
            return String::from_utf8_lossy(&answer).into_owned();
        }
        match tokio::time::timeout(Duration::from_millis(100), s.read(&mut buf)).await {
            Err(_) => {}
            Ok(Ok(0)) | Ok(Err(_)) => return String::from_utf8_lossy(&answer).into_owned(),
            Ok(Ok(n)) => answer.extend_from_slice(&buf[..n]),
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the trickle was never cut"
        );
    }
    panic!(
        "the server read a trickled body to its end: {}",
        String::from_utf8_lossy(&answer)
    );
}

/// Slowloris on request bodies: a body trickled a byte at a time is cut at
/// `limits.request_timeout` with 408 where the server reads bodies (the
/// HTTP API, socket.io long-polling POSTs) and counted; where it reads none
/// (/metrics, the web client) it answers and closes at once.
#[tokio::test]
async fn slowloris_bodies_are_cut() {
    let mut config = common::test_config();
    config.limits.request_timeout = Duration::from_millis(500);
    config.api.key = Some("a-long-random-secret-key".into());
    let srv = TestServer::start(config).await;

    let api = trickle(
        srv.addr,
        "POST /api/publish HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer a-long-random-secret-key\r\n\
         Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
            .into(),
        1000,
    )
    .await;
    assert!(api.starts_with("HTTP/1.1 408"), "{api}");

    // socket.io: open a long-polling session, then trickle a POST into it.
    let open = common::http_get(srv.addr, "/socket.io/?EIO=4&transport=polling").await;
    assert_eq!(open.status, 200, "{}", open.body);
    let sid = open
        .body
        .split("\"sid\":\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string();
    let sio = trickle(
        srv.addr,
        format!(
            "POST /socket.io/?EIO=4&transport=polling&sid={sid} HTTP/1.1\r\nHost: x\r\n\
             Content-Type: text/plain\r\nContent-Length: 1000\r\n\r\n"
        ),
        1000,
    )
    .await;
    assert!(sio.starts_with("HTTP/1.1 408"), "{sio}");

    for path in ["/metrics", "/"] {
        let answer = trickle(
            srv.addr,
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n"),
            1000,
        )
        .await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{path}: {answer}");
        assert!(
            answer.to_ascii_lowercase().contains("connection: close"),
            "{path}: {answer}"
        );
    }
    assert_eq!(
        srv.wait_metric(
            "roomcast_http_rejections_total{reason=\"request_timeout\"}",
            2.0
        )
        .await,
        2.0
    );
    // Real clients are unaffected.
    let mut ws = srv.connect("/echo").await;
    ws.send_text("ok").await;
    assert_eq!(ws.recv_text().await, "ok");
    srv.stop().await;
}

/// A peer that answers no ping is closed with 4009; one that answers stays.
/// (The timeout is far longer than any scheduling delay, so the answering
/// client always makes it on a busy machine.)
#[tokio::test]
async fn silent_peer_is_closed_by_the_heartbeat() {
    let mut config = common::test_config();
    config.heartbeat.interval = Duration::from_millis(200);
    config.heartbeat.timeout = Duration::from_secs(2);
    let srv = TestServer::start(config).await;
    let mut alive = srv.connect("/echo").await; // tungstenite answers pings while reading
    let reader = tokio::spawn(async move {
        // Read (and so answer pings) until told to stop.
        let msg = alive.recv_text().await;
        (alive, msg)
    });
    let mut silent = RawWs::connect(srv.addr, "/echo").await; // never answers
    assert_eq!(srv.metric("roomcast_connections").await, 2.0);
    let (_, op, _) = silent.recv_frame().await;
    assert_eq!(op, 0x9, "first a ping");
    assert_eq!(silent.expect_close().await, 4009);
    assert_eq!(srv.wait_metric("roomcast_connections", 1.0).await, 1.0);
    assert_eq!(srv.metric("roomcast_heartbeat_timeouts_total").await, 1.0);

    // The answering client went through at least one ping and is still served.
    let mut probe = srv.connect("/echo").await;
    probe.send_text("probe").await;
    assert_eq!(probe.recv_text().await, "probe");
    assert_eq!(srv.metric("roomcast_connections").await, 2.0);
    reader.abort();
    srv.stop().await;
}

/// With the default configuration, a burst on `/echo` is answered in full
/// and in order: its replies go to the sender alone, so no rate limit applies
/// (fair scheduling protects the others), and no frame the script did not
/// produce ever reaches the client.
#[tokio::test]
async fn default_echo_answers_a_burst_in_full() {
    let srv = TestServer::start(common::test_config()).await;
    let mut bystander = srv.connect("/echo").await;
    let mut ws = srv.connect("/echo").await;
    for i in 0..300 {
        ws.inner.feed(Message::text(format!("m{i}"))).await.unwrap();
    }
    ws.inner.flush().await.unwrap();
    for i in 0..300 {
        assert_eq!(ws.recv_text().await, format!("m{i}"));
    }
    bystander.send_text("unaffected").await;
    assert_eq!(bystander.recv_text().await, "unaffected");
    assert_eq!(srv.metric("roomcast_rate_limit_waits_total").await, 0.0);
    assert_eq!(
        srv.metric("roomcast_messages_dropped_total{reason=\"rate_limited\"}")
            .await,
        0.0
    );
    // Still open: the burst was no abuse.
    ws.send_text("after").await;
    assert_eq!(ws.recv_text().await, "after");
    srv.stop().await;
}

/// Over a room's rate, messages wait (the connection is not read until the
/// bucket refills) and every one of them reaches the room, in order: nothing
/// is dropped, and the sender hears no injected notice.
#[tokio::test]
async fn over_the_rate_messages_wait_and_all_arrive() {
    let mut config = common::test_config();
    config.rooms.push(roomcast::config::RoomPolicy {
        pattern: "chat/slow".into(),
        rate: Some(roomcast::config::RateLimit {
            messages_per_second: 50,
            burst: 5,
            close_after_throttled: 1000,
            ..Default::default()
        }),
        ..Default::default()
    });
    let srv = TestServer::start(config).await;
    let mut listener = srv.connect("/chat/slow").await;
    let _ = listener.recv_json().await; // its own enter
    let mut ws = srv.connect("/chat/slow").await;
    let _ = listener.recv_json().await; // the sender's enter
    let _ = ws.recv_json().await;
    let started = std::time::Instant::now();
    for i in 0..40 {
        ws.inner.feed(Message::text(format!("m{i}"))).await.unwrap();
    }
    ws.inner.flush().await.unwrap();
    for i in 0..40 {
        let m = listener.recv_json().await;
        assert_eq!(m["type"], "message", "{m}");
        assert_eq!(m["data"], format!("user2:m{i}"), "{m}");
        let own = ws.recv_json().await;
        assert_eq!(
            own["data"],
            format!("user2:m{i}"),
            "the sender sees only the room's messages: {own}"
        );
    }
    // 35 past the burst at 50/s cannot all have gone in less than 0.6 s.
    assert!(
        started.elapsed() >= Duration::from_millis(600),
        "not held back: {:?}",
        started.elapsed()
    );
    assert!(srv.metric("roomcast_rate_limit_waits_total").await >= 1.0);
    assert_eq!(
        srv.metric("roomcast_messages_dropped_total{reason=\"rate_limited\"}")
            .await,
        0.0
    );
    // A connection on a route without a limit is not held back meanwhile.
    let mut echo = srv.connect("/echo").await;
    echo.send_text("free").await;
    assert_eq!(echo.recv_text().await, "free");
    srv.stop().await;
}

/// A client that keeps pushing against the limit is closed with 1008 (the
/// close tells it why); the others carry on.
#[tokio::test]
async fn sustained_flood_is_closed_with_1008() {
    let mut config = common::test_config();
    config.limits.rate.messages_per_second = 20;
    config.limits.rate.burst = 5;
    config.limits.rate.close_after_throttled = 10;
    let srv = TestServer::start(config).await;
    let mut bystander = srv.connect("/echo").await;
    let mut ws = srv.connect("/chat").await;
    assert_eq!(srv.metric("roomcast_connections").await, 2.0);
    for i in 0..200 {
        ws.inner.feed(Message::text(format!("m{i}"))).await.unwrap();
    }
    ws.inner.flush().await.unwrap();
    let mut seen = 0;
    let code = loop {
        let msg = tokio::time::timeout(WAIT, ws.inner.next())
            .await
            .expect("a message in time")
            .expect("stream open")
            .expect("no protocol error");
        match msg {
            Message::Ping(_) | Message::Pong(_) => {}
            Message::Text(t) => {
                let m: serde_json::Value = serde_json::from_str(&t).unwrap();
                assert_ne!(m["type"], "error", "no injected notice: {m}");
                seen += 1;
            }
            Message::Close(Some(f)) => break u16::from(f.code),
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(code, 1008);
    // Its enter and the burst's messages, at least, were delivered.
    assert!(seen >= 6, "{seen}");
    assert_eq!(srv.metric("roomcast_rate_limit_closes_total").await, 1.0);
    assert!(srv.metric("roomcast_rate_limit_waits_total").await >= 9.0);
    bystander.send_text("unaffected").await;
    assert_eq!(bystander.recv_text().await, "unaffected");
    assert_eq!(srv.wait_metric("roomcast_connections", 1.0).await, 1.0);
    srv.stop().await;
}

/// Pings cost the server a write each, so they count against a route's rate
/// like messages: past it the pongs wait; a ping flood that keeps pushing is
/// closed with 1008. No pong is replaced by a notice.
#[tokio::test]
async fn ping_flood_waits_then_is_closed_with_1008() {
    let mut config = common::test_config();
    let echo = config.routes.iter_mut().find(|r| r.name == "echo").unwrap();
    echo.rate = Some(roomcast::config::RateLimit {
        messages_per_second: 5,
        burst: 5,
        close_after_throttled: 4,
        ..Default::default()
    });
    let srv = TestServer::start(config).await;
    let mut bystander = srv.connect("/echo").await;
    let mut raw = RawWs::connect(srv.addr, "/echo").await;
    assert_eq!(srv.metric("roomcast_connections").await, 2.0);
    let flood: Vec<u8> = (0..60)
        .flat_map(|i| common::encode_client_frame(true, 0x9, format!("p{i}").as_bytes(), true))
        .collect();
    raw.stream.write_all(&flood).await.unwrap();
    let mut pongs = Vec::new();
    let code = loop {
        let (_, op, payload) = raw.recv_frame().await;
        match op {
            0xA => pongs.push(String::from_utf8(payload).unwrap()),
            0x8 => break u16::from_be_bytes([payload[0], payload[1]]),
            other => panic!("unexpected opcode {other}"),
        }
    };
    assert_eq!(code, 1008);
    // The burst's pongs and at least one that waited, in order.
    assert!(pongs.len() >= 6, "{pongs:?}");
    for (i, p) in pongs.iter().enumerate() {
        assert_eq!(p, &format!("p{i}"));
    }
    assert_eq!(srv.metric("roomcast_rate_limit_closes_total").await, 1.0);
    bystander.send_text("unaffected").await;
    assert_eq!(bystander.recv_text().await, "unaffected");
    assert_eq!(srv.wait_metric("roomcast_connections", 1.0).await, 1.0);
    srv.stop().await;
}

/// Past the global cap upgrades get 503, past the per-IP cap 429; a closed
/// connection gives its place back.
#[tokio::test]
async fn connection_caps_refuse_before_the_upgrade() {
    let mut config = common::test_config();
    config.limits.max_connections = 2;
    let srv = TestServer::start(config).await;
    let a = srv.connect("/echo").await;
    let _b = srv.connect("/echo").await;
    assert_eq!(srv.metric("roomcast_connections").await, 2.0);
    let (status, body) = refused(request(&srv.url("/echo"), &[])).await;
    assert_eq!(status, 503);
    assert!(body.contains("too many connections"), "{body}");
    a.close().await;
    assert_eq!(srv.wait_metric("roomcast_connections", 1.0).await, 1.0);
    let _c = srv.connect("/echo").await;
    assert_eq!(
        srv.metric("roomcast_http_rejections_total{reason=\"too_many_connections\"}")
            .await,
        1.0
    );
    srv.stop().await;

    let mut config = common::test_config();
    config.limits.max_connections_per_ip = 1;
    let srv = TestServer::start(config).await;
    let _a = srv.connect("/echo").await;
    let (status, _) = refused(request(&srv.url("/echo"), &[])).await;
    assert_eq!(status, 429);
    assert_eq!(
        srv.metric("roomcast_http_rejections_total{reason=\"too_many_from_ip\"}")
            .await,
        1.0
    );
    assert_eq!(srv.metric("roomcast_connections").await, 1.0);
    srv.stop().await;
}

/// With an allow-list, other origins get 403 before the upgrade.
#[tokio::test]
async fn foreign_origin_is_refused_with_403() {
    let mut config = common::test_config();
    config.access.allowed_origins = vec!["https://good.example".into(), "*.friends.example".into()];
    config.access.allow_missing_origin = false;
    let srv = TestServer::start(config).await;
    let url = srv.url("/echo");
    Ws::connect_with(request(&url, &[("origin", "https://good.example")])).await;
    Ws::connect_with(request(&url, &[("origin", "https://a.friends.example")])).await;
    let (status, body) = refused(request(&url, &[("origin", "https://evil.example")])).await;
    assert_eq!(status, 403);
    assert!(body.contains("https://evil.example"), "{body}");
    assert_eq!(
        refused(request(&url, &[])).await.0,
        403,
        "no Origin, not allowed"
    );
    assert_eq!(
        srv.metric("roomcast_http_rejections_total{reason=\"origin\"}")
            .await,
        2.0
    );
    srv.stop().await;
}

mod tokens {
    use super::*;
    use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};

    pub const SECRET: &str = "test-secret";

    pub fn now() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    pub fn hs256(claims: serde_json::Value) -> String {
        encode(
            &Header::default(),
            &claims,
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap()
    }

    pub fn rs256(claims: serde_json::Value) -> String {
        let pem = std::fs::read(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/jwt-rs256-private.pem"),
        )
        .unwrap();
        encode(
            &Header::new(Algorithm::RS256),
            &claims,
            &EncodingKey::from_rsa_pem(&pem).unwrap(),
        )
        .unwrap()
    }

    /// A server requiring tokens, with a `whoami` route echoing `conn.user`.
    pub async fn server() -> (TestServer, tempfile::TempDir) {
        let dir = temp_scripts();
        std::fs::write(
            dir.path().join("whoami.rhai"),
            "fn on_connect(conn) { conn.reply(`${conn.user} ${conn.claims.role}`); }\n\
             fn on_message(conn, text) { conn.reply(text); }\n",
        )
        .unwrap();
        let mut config = config_with_route(dir.path(), "whoami");
        config.auth.required = true;
        config.auth.hs256_secret = Some(SECRET.into());
        config.auth.rs256_public_key_file = Some(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/jwt-rs256-public.pem"),
        );
        (TestServer::start(config).await, dir)
    }
}

/// Missing, forged and expired tokens get 401 before the upgrade; a valid one
/// (HS256 or RS256, query or header) gets in, and scripts see its subject.
#[tokio::test]
async fn tokens_are_checked_before_the_upgrade() {
    let (srv, _dir) = tokens::server().await;
    let url = srv.url("/whoami");
    let good = tokens::hs256(
        serde_json::json!({"sub": "ann", "role": "admin", "exp": tokens::now() + 600}),
    );

    let challenge = |headers: &tokio_tungstenite::tungstenite::http::HeaderMap| {
        headers
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default()
    };
    let (status, headers, body) = refused_with_headers(request(&url, &[])).await;
    assert_eq!(status, 401);
    assert!(body.contains("token is required"), "{body}");
    assert_eq!(challenge(&headers), "Bearer");
    let forged = good[..good.len() - 4].to_string() + "AAAA";
    let (status, headers, _) =
        refused_with_headers(request(&format!("{url}?token={forged}"), &[])).await;
    assert_eq!(status, 401);
    assert!(
        challenge(&headers).starts_with("Bearer error=\"invalid_token\", error_description="),
        "{headers:?}"
    );
    let expired = tokens::hs256(serde_json::json!({"sub": "ann", "exp": tokens::now() - 600}));
    let (status, headers, body) =
        refused_with_headers(request(&format!("{url}?token={expired}"), &[])).await;
    assert_eq!(status, 401);
    assert!(body.contains("expired"), "{body}");
    assert!(
        challenge(&headers).contains("error=\"invalid_token\"")
            && challenge(&headers).contains("expired"),
        "{headers:?}"
    );

    let mut ws = Ws::connect_with(request(&format!("{url}?token={good}"), &[])).await;
    assert_eq!(ws.recv_text().await, "ann admin");
    let bearer = format!("Bearer {good}");
    let mut ws2 = Ws::connect_with(request(&url, &[("authorization", &bearer)])).await;
    assert_eq!(ws2.recv_text().await, "ann admin");
    let rs = tokens::rs256(serde_json::json!({"sub": "bob", "role": "user"}));
    let mut ws3 = Ws::connect_with(request(&format!("{url}?token={rs}"), &[])).await;
    assert_eq!(ws3.recv_text().await, "bob user");

    assert_eq!(
        srv.metric("roomcast_http_rejections_total{reason=\"unauthorized\"}")
            .await,
        3.0
    );
    assert_eq!(srv.metric("roomcast_connections").await, 3.0);
    srv.stop().await;
}

/// A token's rooms claim limits which rooms it may join (403 otherwise).
#[tokio::test]
async fn rooms_claim_limits_the_rooms() {
    let (srv, _dir) = tokens::server().await;
    let t = tokens::hs256(serde_json::json!({"sub": "ann", "rooms": ["whoami/team-*"]}));
    let _inside = Ws::connect_with(request(
        &srv.url(&format!("/whoami/team-red?token={t}")),
        &[],
    ))
    .await;
    let (status, body) = refused(request(&srv.url(&format!("/whoami/lobby?token={t}")), &[])).await;
    assert_eq!(status, 403);
    assert!(body.contains("whoami/lobby"), "{body}");
    assert_eq!(
        srv.metric("roomcast_http_rejections_total{reason=\"room_forbidden\"}")
            .await,
        1.0
    );
    assert_eq!(srv.metric("roomcast_connections").await, 1.0);
    srv.stop().await;
}

/// A token that expires during the connection closes it with 4001.
#[tokio::test]
async fn token_expiry_closes_the_connection_with_4001() {
    let (srv, _dir) = tokens::server().await;
    // Seconds ahead, so that a slow machine still upgrades before it expires.
    let t = tokens::hs256(serde_json::json!({"sub": "ann", "exp": tokens::now() + 3}));
    let mut ws = Ws::connect_with(request(&srv.url(&format!("/whoami?token={t}")), &[])).await;
    ws.recv_text().await;
    assert_eq!(srv.metric("roomcast_connections").await, 1.0);
    let (code, reason) = ws.expect_close().await;
    assert_eq!((code, reason.as_str()), (4001, "token expired"));
    assert_eq!(srv.wait_metric("roomcast_connections", 0.0).await, 0.0);
    assert_eq!(srv.metric("roomcast_token_expirations_total").await, 1.0);
    srv.stop().await;
}

/// `on_handshake(req)` can refuse a connection before the upgrade, with its
/// own status and reason, from the query, headers or address.
#[tokio::test]
async fn handshake_hook_can_refuse_with_a_reason() {
    let dir = temp_scripts();
    std::fs::write(
        dir.path().join("gate.rhai"),
        r#"
fn on_handshake(req) {
    if req.headers["x-ban"] == "yes" { req.reject(451, "banned by script"); }
    if !("name" in req.query) { req.reject("a ?name= is required"); }
    if req.remote_addr != "127.0.0.1" { req.reject(400, "loopback only"); }
}
fn on_message(conn, text) { conn.reply(text); }
"#,
    )
    .unwrap();
    let srv = TestServer::start(config_with_route(dir.path(), "gate")).await;
    let (status, body) = refused(request(&srv.url("/gate"), &[])).await;
    assert_eq!((status, body.trim()), (403, "a ?name= is required"));
    let (status, body) = refused(request(&srv.url("/gate?name=x"), &[("x-ban", "yes")])).await;
    assert_eq!((status, body.trim()), (451, "banned by script"));
    let mut ws = Ws::connect_with(request(&srv.url("/gate?name=ann"), &[])).await;
    ws.send_text("in").await;
    assert_eq!(ws.recv_text().await, "in");
    assert_eq!(
        srv.metric("roomcast_http_rejections_total{reason=\"script_refused\"}")
            .await,
        2.0
    );
    assert_eq!(
        srv.metric("roomcast_script_calls_total{hook=\"handshake\"}")
            .await,
        3.0
    );
    srv.stop().await;
}

/// `loop {}` is aborted by the wall-clock budget even when the operations
/// limit is far away; string, array and map bombs are stopped by the size
/// limits. Each drops only its message; the connection and everyone else
/// carry on.
#[tokio::test]
async fn hostile_scripts_are_stopped() {
    let dir = temp_scripts();
    std::fs::write(
        dir.path().join("hostile.rhai"),
        r#"
fn on_message(conn, text) {
    if text == "spin" { loop { } }
    if text == "bomb" { let s = "xxxxxxxx"; loop { s += s; } }
    if text == "array bomb" { let a = [1, 2, 3]; loop { a += a; } }
    if text == "map bomb" { let m = #{}; let i = 0; loop { m[`k${i}`] = i; i += 1; } }
    conn.reply(text);
}
"#,
    )
    .unwrap();
    let mut config = config_with_route(dir.path(), "hostile");
    config.scripts.limits.max_operations = u64::MAX / 2;
    config.scripts.limits.max_duration = Duration::from_millis(200);
    // Small enough that the bombs hit them long before the time budget.
    config.scripts.limits.max_array_size = 1000;
    config.scripts.limits.max_map_size = 100;
    let srv = TestServer::start(config).await;
    let mut other = srv.connect("/echo").await;
    let mut ws = srv.connect("/hostile").await;
    ws.send_text("spin").await;
    ws.send_text("bomb").await;
    ws.send_text("array bomb").await;
    ws.send_text("map bomb").await;
    ws.send_text("after").await;
    assert_eq!(ws.recv_text().await, "after");
    other.send_text("unaffected").await;
    assert_eq!(other.recv_text().await, "unaffected");
    assert_eq!(
        srv.metric("roomcast_script_errors_total{hook=\"message\"}")
            .await,
        4.0
    );
    assert_eq!(
        srv.metric("roomcast_messages_dropped_total{reason=\"script_error\"}")
            .await,
        4.0
    );
    srv.stop().await;
}

/// A room's history outlives its members, so a client could try to fill
/// memory with rooms it abandons: the history kept across rooms is bounded
/// (`limits.history_bytes`), abandoned rooms' first, and a client whose
/// position was dropped is told it cannot resume.
#[tokio::test]
async fn abandoned_history_is_bounded() {
    use serde_json::json;
    let mut config = common::test_config();
    config.limits.rate.messages_per_second = 0;
    config.limits.history_bytes = 32 * 1024;
    let srv = TestServer::start(config).await;
    assert_eq!(srv.metric("roomcast_history_bytes").await, 0.0);
    let mut v = common::V1::connect(&srv, "/chat", &[]).await;
    let data = "x".repeat(2000);
    let mut first_position = None;
    for i in 0..40 {
        let room = format!("chat/abandoned-{i}");
        let joined = v.join(&room).await;
        first_position.get_or_insert((room.clone(), joined["epoch"].clone()));
        v.send(json!({"type": "publish", "room": room, "data": data, "id": i}))
            .await;
        v.until("ack").await;
        v.send(json!({"type": "leave", "room": room, "id": "l"}))
            .await;
        v.until("left").await;
        let kept = srv.metric("roomcast_history_bytes").await;
        assert!(kept > 0.0 && kept <= 32.0 * 1024.0, "{kept} bytes kept");
    }
    // The first room's history went to make room: resuming there says so.
    let (room, epoch) = first_position.unwrap();
    v.send(json!({"type": "join", "room": room, "since": {"epoch": epoch, "offset": 1}}))
        .await;
    let err = v.until("error").await;
    assert_eq!(err["code"], "resume_failed", "{err}");
    assert_eq!(v.until("joined").await["resumed"], false);
    srv.stop().await;
}
