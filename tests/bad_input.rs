//! Bad input gets a clear close code and a counter; the server and every other
//! connection carry on.

mod common;

use common::{json, RawWs, TestServer};

const TEXT: u8 = 0x1;
const BINARY: u8 = 0x2;
const CONT: u8 = 0x0;
const CLOSE: u8 = 0x8;
const PING: u8 = 0x9;

/// The attacker's connection is open and counted (so that the gauge coming
/// back down afterwards means something): `open` connections in all.
async fn counted(srv: &TestServer, open: f64) {
    assert_eq!(
        srv.metric("roomcast_connections").await,
        open,
        "the attacking connection is counted while it is open"
    );
}

/// Open a chat bystander, run `attack`, then prove the bystander still chats.
async fn bystander_survives<F, Fut>(srv: &TestServer, attack: F)
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut other = srv.connect("/chat/bystanders").await;
    let enter = other.recv_json().await;
    attack().await;
    // The attacker's connection is gone; nothing else leaked.
    assert_eq!(srv.wait_metric("roomcast_connections", 1.0).await, 1.0);
    other.send_text("still fine").await;
    let nick = enter["data"]
        .as_str()
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .to_string();
    assert_eq!(
        other.recv_json().await,
        json("message", &format!("{nick}:still fine"))
    );
}

/// Invalid UTF-8 in a text message → Close 1007, counted.
#[tokio::test]
async fn invalid_utf8_text_is_closed_with_1007() {
    let srv = TestServer::start_default().await;
    bystander_survives(&srv, || async {
        let mut raw = RawWs::connect(srv.addr, "/echo").await;
        counted(&srv, 2.0).await;
        raw.send_frame(true, TEXT, b"ok \xff\xfe bad", true).await;
        assert_eq!(raw.expect_close().await, 1007);
    })
    .await;
    assert_eq!(
        srv.metric("roomcast_protocol_errors_total{kind=\"invalid_utf8\"}")
            .await,
        1.0
    );
    assert_eq!(
        srv.wait_metric("roomcast_connections", 0.0).await,
        0.0,
        "nothing leaked"
    );
    srv.stop().await;
}

/// Invalid UTF-8 split across fragments fails at the offending fragment,
/// before the message is complete.
#[tokio::test]
async fn invalid_utf8_in_a_fragment_fails_fast() {
    let srv = TestServer::start_default().await;
    let mut raw = RawWs::connect(srv.addr, "/echo").await;
    counted(&srv, 1.0).await;
    raw.send_frame(false, TEXT, "héllo ".as_bytes(), true).await;
    // 0xF4 0x90 starts a code point above U+10FFFF: invalid however it continues.
    raw.send_frame(false, CONT, b"\xf4\x90\x80", true).await;
    // No final fragment: the server must not wait for one.
    assert_eq!(raw.expect_close().await, 1007);
    assert_eq!(
        srv.metric("roomcast_protocol_errors_total{kind=\"invalid_utf8\"}")
            .await,
        1.0
    );
    assert_eq!(
        srv.wait_metric("roomcast_connections", 0.0).await,
        0.0,
        "nothing leaked"
    );
    srv.stop().await;
}

/// A character split across two fragments is fine.
#[tokio::test]
async fn a_character_split_across_fragments_is_accepted() {
    let srv = TestServer::start_default().await;
    let mut raw = RawWs::connect(srv.addr, "/echo").await;
    counted(&srv, 1.0).await;
    let bytes = "a€b".as_bytes(); // € is three bytes
    raw.send_frame(false, TEXT, &bytes[..2], true).await;
    raw.send_frame(false, CONT, &bytes[2..3], true).await;
    raw.send_frame(true, CONT, &bytes[3..], true).await;
    let (fin, op, payload) = raw.recv_frame().await;
    assert!(fin);
    assert_eq!(op, TEXT);
    assert_eq!(payload, bytes);
    drop(raw);
    assert_eq!(
        srv.wait_metric("roomcast_connections", 0.0).await,
        0.0,
        "nothing leaked"
    );
    srv.stop().await;
}

/// A close frame over 125 bytes is a protocol error (1002), which
/// fastwebsockets alone does not check.
#[tokio::test]
async fn oversized_close_frame_is_closed_with_1002() {
    let srv = TestServer::start_default().await;
    bystander_survives(&srv, || async {
        let mut raw = RawWs::connect(srv.addr, "/echo").await;
        counted(&srv, 2.0).await;
        let mut payload = 1000u16.to_be_bytes().to_vec();
        payload.extend(std::iter::repeat_n(b'a', 200));
        raw.send_frame(true, CLOSE, &payload, true).await;
        assert_eq!(raw.expect_close().await, 1002);
    })
    .await;
    assert_eq!(
        srv.metric("roomcast_protocol_errors_total{kind=\"protocol\"}")
            .await,
        1.0
    );
    assert_eq!(
        srv.wait_metric("roomcast_connections", 0.0).await,
        0.0,
        "nothing leaked"
    );
    srv.stop().await;
}

/// Close codes that may not be sent on the wire are a protocol error.
#[tokio::test]
async fn invalid_close_codes_are_closed_with_1002() {
    let srv = TestServer::start_default().await;
    let codes = [0u16, 999, 1004, 1005, 1006, 1015, 2999, 5000];
    for code in codes {
        let mut raw = RawWs::connect(srv.addr, "/echo").await;
        counted(&srv, 1.0).await;
        raw.send_frame(true, CLOSE, &code.to_be_bytes(), true).await;
        assert_eq!(raw.expect_close().await, 1002, "close code {code}");
        drop(raw);
        assert_eq!(srv.wait_metric("roomcast_connections", 0.0).await, 0.0);
    }
    assert_eq!(
        srv.metric("roomcast_protocol_errors_total{kind=\"protocol\"}")
            .await,
        codes.len() as f64
    );
    // A valid code is echoed.
    let mut raw = RawWs::connect(srv.addr, "/echo").await;
    raw.send_frame(true, CLOSE, &4321u16.to_be_bytes(), true)
        .await;
    assert_eq!(raw.expect_close().await, 4321);
    assert_eq!(
        srv.wait_metric("roomcast_connections", 0.0).await,
        0.0,
        "nothing leaked"
    );
    srv.stop().await;
}

/// A message over the configured limit (64 KiB by default) → Close 1009.
#[tokio::test]
async fn oversized_message_is_closed_with_1009() {
    let srv = TestServer::start_default().await;
    bystander_survives(&srv, || async {
        let mut ws = srv.connect("/echo").await;
        counted(&srv, 2.0).await;
        ws.send_text(&"a".repeat(64 * 1024)).await;
        assert_eq!(
            ws.recv_text().await.len(),
            64 * 1024,
            "exactly the limit is fine"
        );
        ws.send_text(&"a".repeat(64 * 1024 + 1)).await;
        assert_eq!(ws.expect_close().await.0, 1009);
    })
    .await;
    assert_eq!(
        srv.metric("roomcast_protocol_errors_total{kind=\"too_large\"}")
            .await,
        1.0
    );
    assert_eq!(
        srv.wait_metric("roomcast_connections", 0.0).await,
        0.0,
        "nothing leaked"
    );
    srv.stop().await;
}

/// Fragments that add up to more than the limit → 1009, even though each is small.
#[tokio::test]
async fn oversized_fragmented_message_is_closed_with_1009() {
    let srv = TestServer::start_default().await;
    let mut raw = RawWs::connect(srv.addr, "/echo").await;
    counted(&srv, 1.0).await;
    let chunk = vec![b'x'; 16 * 1024];
    raw.send_frame(false, BINARY, &chunk, true).await;
    for _ in 0..3 {
        raw.send_frame(false, CONT, &chunk, true).await;
    }
    raw.send_frame(true, CONT, b"one too many", true).await;
    assert_eq!(raw.expect_close().await, 1009);
    assert_eq!(
        srv.metric("roomcast_protocol_errors_total{kind=\"too_large\"}")
            .await,
        1.0
    );
    assert_eq!(
        srv.wait_metric("roomcast_connections", 0.0).await,
        0.0,
        "nothing leaked"
    );
    srv.stop().await;
}

/// Client frames must be masked (RFC 6455 §5.1).
#[tokio::test]
async fn unmasked_client_frame_is_closed_with_1002() {
    let srv = TestServer::start_default().await;
    let mut raw = RawWs::connect(srv.addr, "/echo").await;
    counted(&srv, 1.0).await;
    raw.send_frame(true, TEXT, b"naked", false).await;
    assert_eq!(raw.expect_close().await, 1002);
    assert_eq!(
        srv.metric("roomcast_protocol_errors_total{kind=\"protocol\"}")
            .await,
        1.0
    );
    assert_eq!(
        srv.wait_metric("roomcast_connections", 0.0).await,
        0.0,
        "nothing leaked"
    );
    srv.stop().await;
}

/// Reserved bits, reserved opcodes, fragmented or oversized control frames,
/// and stray continuations are protocol errors.
#[tokio::test]
async fn framing_violations_are_closed_with_1002() {
    let srv = TestServer::start_default().await;
    let cases: Vec<(&str, Vec<Vec<u8>>)> = vec![
        (
            "rsv1 set",
            vec![{
                let mut f = common::encode_client_frame(true, TEXT, b"x", true);
                f[0] |= 0x40;
                f
            }],
        ),
        (
            "reserved opcode 3",
            vec![common::encode_client_frame(true, 0x3, b"", true)],
        ),
        (
            "reserved control opcode 0xB",
            vec![common::encode_client_frame(true, 0xB, b"", true)],
        ),
        (
            "fragmented ping",
            vec![common::encode_client_frame(false, PING, b"x", true)],
        ),
        (
            "ping over 125 bytes",
            vec![common::encode_client_frame(true, PING, &[0; 126], true)],
        ),
        (
            "continuation without start",
            vec![common::encode_client_frame(true, CONT, b"x", true)],
        ),
        (
            "new message inside a fragmented one",
            vec![
                common::encode_client_frame(false, TEXT, b"a", true),
                common::encode_client_frame(true, TEXT, b"b", true),
            ],
        ),
        (
            "one-byte close payload",
            vec![common::encode_client_frame(true, CLOSE, b"x", true)],
        ),
    ];
    let n = cases.len();
    for (name, frames) in cases {
        let mut raw = RawWs::connect(srv.addr, "/echo").await;
        counted(&srv, 1.0).await;
        for f in frames {
            tokio::io::AsyncWriteExt::write_all(&mut raw.stream, &f)
                .await
                .unwrap();
        }
        assert_eq!(raw.expect_close().await, 1002, "{name}");
        drop(raw);
        assert_eq!(srv.wait_metric("roomcast_connections", 0.0).await, 0.0);
    }
    assert_eq!(
        srv.metric("roomcast_protocol_errors_total{kind=\"protocol\"}")
            .await,
        n as f64
    );
    assert_eq!(
        srv.wait_metric("roomcast_connections", 0.0).await,
        0.0,
        "nothing leaked"
    );
    srv.stop().await;
}

/// Control frames may arrive between fragments; pings are answered with the
/// same payload.
#[tokio::test]
async fn ping_between_fragments_is_answered() {
    let srv = TestServer::start_default().await;
    let mut raw = RawWs::connect(srv.addr, "/echo").await;
    counted(&srv, 1.0).await;
    raw.send_frame(false, TEXT, b"frag", true).await;
    raw.send_frame(true, PING, b"are you there", true).await;
    let (_, op, payload) = raw.recv_frame().await;
    assert_eq!((op, payload.as_slice()), (0xA, &b"are you there"[..]));
    raw.send_frame(true, CONT, b"mented", true).await;
    let (_, op, payload) = raw.recv_frame().await;
    assert_eq!((op, payload.as_slice()), (TEXT, &b"fragmented"[..]));
    drop(raw);
    assert_eq!(
        srv.wait_metric("roomcast_connections", 0.0).await,
        0.0,
        "nothing leaked"
    );
    srv.stop().await;
}
