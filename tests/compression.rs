//! permessage-deflate (RFC 7692) with real clients: Node's `ws` and
//! socket.io-client 4 (tests/browser/deflate_clients.mjs) negotiate it,
//! send compressed and read compressed; a broadcast is compressed once for
//! every member that negotiated it; offers the server does not take are
//! declined and counted (the connection upgraded without the extension);
//! small messages go uncompressed; a compressed message that inflates past
//! `limits.max_message_size` is stopped there and closed 1009, corrupt data
//! 1007, RSV1 without the extension 1002 — and the server goes on.
//!
//! Needs Node and tests/browser/node_modules: tests/run.sh installs them.

mod common;

use std::io::Write;

use common::{encode_client_frame, RawWs, TestServer};
use flate2::write::DeflateEncoder;
use flate2::Compression;
use tokio::io::AsyncWriteExt;

const AGREED: &str = "permessage-deflate; server_no_context_takeover; client_no_context_takeover";

/// Run `scenario` of tests/browser/deflate_clients.mjs against `srv`,
/// answering each `ask WHAT` with `answer(WHAT)`.
async fn clients<F, Fut>(srv: &TestServer, scenario: &str, answer: F)
where
    F: FnMut(String) -> Fut,
    Fut: std::future::Future<Output = String>,
{
    let done = format!("deflate {scenario} works");
    common::sio::run_script("deflate_clients.mjs", srv.addr, scenario, &done, answer).await;
}

fn sample(direction: &str, form: &str) -> String {
    format!("roomcast_compression_bytes_total{{direction=\"{direction}\",form=\"{form}\"}}")
}

#[tokio::test]
async fn ws_clients_negotiate_deflate_and_a_broadcast_is_compressed_once() {
    let srv = TestServer::start(common::test_config()).await;
    let s = &srv;
    clients(s, "chat", |what| async move {
        if what == "connected" {
            let open = "roomcast_compression_connections{transport=\"websocket\"}";
            assert_eq!(s.metric(open).await, 3.0);
            return "ok".into();
        }
        let len: f64 = what.strip_prefix("broadcast ").unwrap().parse().unwrap();
        // Compressed once for its three members (the enters were under the
        // threshold), and smaller on the wire.
        assert_eq!(s.metric(&sample("out", "plain")).await, len);
        let deflated = s.metric(&sample("out", "deflated")).await;
        assert!(
            deflated > 0.0 && deflated < len / 4.0,
            "{deflated} of {len}"
        );
        // The sender compressed its line (2,000 bytes), and every `ws`
        // client compresses its close too (threshold 0)… so at least it.
        assert!(s.metric(&sample("in", "plain")).await >= 2000.0);
        assert!(s.metric(&sample("in", "deflated")).await > 0.0);
        "ok".into()
    })
    .await;
    let open = "roomcast_compression_connections{transport=\"websocket\"}";
    assert_eq!(srv.wait_metric(open, 0.0).await, 0.0);
    srv.stop().await;
}

#[tokio::test]
async fn socketio_over_websocket_negotiates_deflate() {
    let srv = TestServer::start(common::test_config()).await;
    let s = &srv;
    clients(s, "sio", |what| async move {
        if what == "connected" {
            let open = "roomcast_compression_connections{transport=\"socketio\"}";
            assert_eq!(s.metric(open).await, 3.0);
        } else {
            assert!(s.metric(&sample("in", "plain")).await >= 2000.0);
            // ~2,010 bytes (the event around the line) for three members,
            // compressed once per worker thread (two here), not per member.
            let out = s.metric(&sample("out", "plain")).await;
            assert!((2000.0..3.0 * 2000.0).contains(&out), "{out}");
        }
        "ok".into()
    })
    .await;
    srv.stop().await;
}

#[tokio::test]
async fn within_max_memory_a_client_takes_its_context_over() {
    let mut config = common::test_config();
    config.compression.max_memory = 64 * 1024;
    let srv = TestServer::start(config).await;
    let s = &srv;
    clients(s, "takeover", |_| async move {
        // One 15-bit window and its state: 40 KiB.
        assert_eq!(
            s.metric("roomcast_compression_takeover_bytes").await,
            40960.0
        );
        let (plain, deflated) = (
            s.metric(&sample("in", "plain")).await,
            s.metric(&sample("in", "deflated")).await,
        );
        // Lines 2 to 5 refer back to line 1: far smaller than 5 alone.
        assert!(
            plain >= 10_000.0 && deflated < plain / 8.0,
            "{deflated} of {plain}"
        );
        "ok".into()
    })
    .await;
    let given_back = srv.wait_metric("roomcast_compression_takeover_bytes", 0.0);
    assert_eq!(given_back.await, 0.0);
    srv.stop().await;
}

/// A raw client of `path` offering `offer`; the extension the 101 answers.
async fn offering(srv: &TestServer, path: &str, offer: &str) -> (RawWs, Option<String>) {
    let header = format!("Sec-WebSocket-Extensions: {offer}\r\n");
    let (ws, head) = RawWs::connect_with_headers(srv.addr, path, &header).await;
    let answer = head.lines().find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.eq_ignore_ascii_case("sec-websocket-extensions")
            .then(|| value.trim().to_string())
    });
    (ws, answer)
}

/// `data` compressed as a permessage-deflate message (the sync tail off).
fn deflated(data: &[u8]) -> Vec<u8> {
    let mut e = DeflateEncoder::new(Vec::new(), Compression::new(6));
    e.write_all(data).unwrap();
    e.flush().unwrap();
    let mut out = e.finish().unwrap();
    // finish() ends the stream with a final empty block after the flush's.
    let flushed = out
        .windows(4)
        .rposition(|w| w == [0, 0, 0xff, 0xff])
        .expect("a sync flush");
    out.truncate(flushed);
    out
}

fn inflated(data: &[u8]) -> Vec<u8> {
    let mut d = flate2::Decompress::new(false);
    let mut input = data.to_vec();
    input.extend_from_slice(&[0, 0, 0xff, 0xff]);
    let mut out = Vec::with_capacity(1 << 20);
    d.decompress_vec(&input, &mut out, flate2::FlushDecompress::Sync)
        .unwrap();
    out
}

#[tokio::test]
async fn offers_are_answered_declined_or_ignored_as_configured() {
    let mut config = common::test_config();
    config.routes[1].compression = false; // shout
    let srv = TestServer::start(config).await;
    let (_, answer) = offering(&srv, "/echo", "permessage-deflate; client_max_window_bits").await;
    assert_eq!(answer.as_deref(), Some(AGREED));
    let (_, answer) = offering(
        &srv,
        "/echo",
        "permessage-deflate; server_max_window_bits=10",
    )
    .await;
    assert_eq!(
        answer.as_deref(),
        Some(format!("{AGREED}; server_max_window_bits=10").as_str())
    );
    // Malformed: declined, the connection upgraded all the same.
    let (mut ws, answer) = offering(
        &srv,
        "/echo",
        "permessage-deflate; server_max_window_bits=99",
    )
    .await;
    assert_eq!(answer, None);
    ws.send_frame(true, 0x1, b"still here", true).await;
    assert_eq!(ws.recv_frame().await.2, b"still here");
    let invalid = srv.metric("roomcast_compression_declined_total{reason=\"invalid\"}");
    assert_eq!(invalid.await, 1.0);
    let (_, answer) = offering(
        &srv,
        "/echo",
        "permessage-deflate; server_max_window_bits=8",
    )
    .await;
    assert_eq!(answer, None);
    let unsupported = srv.metric("roomcast_compression_declined_total{reason=\"unsupported\"}");
    assert_eq!(unsupported.await, 1.0);
    // A route with compression off takes no offer (and counts none).
    let (_, answer) = offering(&srv, "/shout", "permessage-deflate").await;
    assert_eq!(answer, None);
    let declined = srv.metric("roomcast_compression_declined_total{reason=\"unsupported\"}");
    assert_eq!(declined.await, 1.0, "not counted");
    srv.stop().await;

    let mut config = common::test_config();
    config.compression.enabled = false;
    let srv = TestServer::start(config).await;
    let (_, answer) = offering(&srv, "/echo", "permessage-deflate").await;
    assert_eq!(answer, None);
    srv.stop().await;
}

#[tokio::test]
async fn small_messages_go_plain_and_large_ones_compressed() {
    let srv = TestServer::start(common::test_config()).await;
    let (mut ws, answer) = offering(&srv, "/echo", "permessage-deflate").await;
    assert_eq!(answer.as_deref(), Some(AGREED));
    // Under compression.threshold (256): as it is, RSV1 clear.
    ws.send_frame(true, 0x1, b"hello", true).await;
    assert_eq!(ws.recv_frame_raw().await, (0x81, b"hello".to_vec()));
    // Over it: compressed (RSV1), and the same text once inflated.
    let long = "chat line ".repeat(100);
    ws.send_frame(true, 0x1, long.as_bytes(), true).await;
    let (first, payload) = ws.recv_frame_raw().await;
    assert_eq!(first, 0xC1, "FIN, RSV1, text");
    assert!(payload.len() < long.len() / 4);
    assert_eq!(inflated(&payload), long.as_bytes());
    // A compressed message from the client (RSV1 on its first frame, two
    // frames) comes back as it was before compression.
    let packed = deflated(long.as_bytes());
    let (a, b) = packed.split_at(packed.len() / 2);
    let mut frames = encode_client_frame(false, 0x41, a, true);
    frames.extend(encode_client_frame(true, 0x0, b, true));
    ws.stream.write_all(&frames).await.unwrap();
    let (first, payload) = ws.recv_frame_raw().await;
    assert_eq!((first, inflated(&payload)), (0xC1, long.into_bytes()));
    srv.stop().await;
}

#[tokio::test]
async fn compressed_input_that_breaks_the_rules_is_refused_and_the_server_goes_on() {
    let srv = TestServer::start(common::test_config()).await;
    // A 16 KiB frame that inflates to 16 MiB (limits.max_message_size is
    // 64 KiB): stopped while inflating, 1009.
    let bomb = deflated(&vec![0u8; 16 << 20]);
    assert!(bomb.len() < 20 << 10, "{}", bomb.len());
    let (mut ws, _) = offering(&srv, "/echo", "permessage-deflate").await;
    ws.send_frame(true, 0x41, &bomb, true).await;
    assert_eq!(ws.expect_close().await, 1009);
    let too_large = srv.metric("roomcast_protocol_errors_total{kind=\"too_large\"}");
    assert_eq!(too_large.await, 1.0);
    // Not deflate data: 1007.
    let (mut ws, _) = offering(&srv, "/echo", "permessage-deflate").await;
    ws.send_frame(true, 0x41, &[0xff; 64], true).await;
    assert_eq!(ws.expect_close().await, 1007);
    let corrupt = srv.metric("roomcast_protocol_errors_total{kind=\"invalid_deflate\"}");
    assert_eq!(corrupt.await, 1.0);
    // RSV1 on a continuation frame, or without the extension: 1002.
    let (mut ws, _) = offering(&srv, "/echo", "permessage-deflate").await;
    let mut frames = encode_client_frame(false, 0x1, b"a", true);
    frames.extend(encode_client_frame(true, 0x40, b"b", true));
    ws.stream.write_all(&frames).await.unwrap();
    assert_eq!(ws.expect_close().await, 1002);
    let mut plain = RawWs::connect(srv.addr, "/echo").await;
    plain
        .send_frame(true, 0x41, &deflated(b"hello"), true)
        .await;
    assert_eq!(plain.expect_close().await, 1002);
    let protocol = srv.metric("roomcast_protocol_errors_total{kind=\"protocol\"}");
    assert_eq!(protocol.await, 2.0);
    // Everyone else carries on.
    let (mut ws, _) = offering(&srv, "/echo", "permessage-deflate").await;
    ws.send_frame(true, 0x41, &deflated(b"after all that"), true)
        .await;
    assert_eq!(
        ws.recv_frame_raw().await,
        (0x81, b"after all that".to_vec())
    );
    srv.stop().await;
}

/// The peak resident memory of this process, in bytes.
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .map(|v| v.trim().parse().unwrap())
        .unwrap();
    kb * 1024
}

#[tokio::test]
async fn a_message_that_would_inflate_to_a_gibibyte_costs_its_limit_at_most() {
    let mut config = common::test_config();
    config.limits.max_message_size = 2 << 20;
    let srv = TestServer::start(config).await;
    // 1 GiB of zeros, deflated: ~1 MiB (deflate's best is ~1:1032), in
    // one frame under the 2 MiB limit. Made in pieces: it never exists
    // inflated here either.
    let mut e = DeflateEncoder::new(Vec::new(), Compression::new(9));
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..1024 {
        e.write_all(&zeros).unwrap();
    }
    e.flush().unwrap();
    let bomb = e.finish().unwrap();
    assert!(bomb.len() < 2 << 20, "{}", bomb.len());
    let before = peak_rss();
    let (mut ws, _) = offering(&srv, "/echo", "permessage-deflate").await;
    ws.send_frame(true, 0x42, &bomb, true).await;
    assert_eq!(ws.expect_close().await, 1009);
    let grew = peak_rss().saturating_sub(before);
    assert!(grew < 64 << 20, "peak RSS grew {} MiB", grew >> 20);
    let too_large = srv.metric("roomcast_protocol_errors_total{kind=\"too_large\"}");
    assert_eq!(too_large.await, 1.0);
    srv.stop().await;
}
