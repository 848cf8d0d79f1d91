//! `/metrics` after known traffic, and the exposition checked by the real promtool.

mod common;

use std::process::Stdio;

use common::{json, TestServer};
use tokio::io::AsyncWriteExt;

/// Counters and gauges match the traffic that produced them.
#[tokio::test]
async fn metrics_match_known_traffic() {
    let srv = TestServer::start_default().await;
    // Every text frame the clients receive, to count its bytes.
    let mut received = Vec::new();
    let mut a = srv.connect("/chat").await; // enter → a            (1 sent)
    received.push(a.recv_text().await);
    let mut b = srv.connect("/chat").await; // enter → a, b         (3 sent)
    received.push(b.recv_text().await);
    received.push(a.recv_text().await);
    a.send_text("hello").await; // "user1:hello" → a, b            (5 sent)
    let hello = a.recv_text().await;
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&hello).unwrap(),
        json("message", "user1:hello")
    );
    received.push(hello);
    received.push(b.recv_text().await);
    let mut e = srv.connect("/echo").await;
    e.send_text("abc").await; // echo → e                          (6 sent)
    let abc = e.recv_text().await;
    assert_eq!(abc, "abc");
    received.push(abc);

    assert_eq!(srv.metric("roomcast_connections").await, 3.0);
    assert_eq!(srv.metric("roomcast_connections_max").await, 10_000.0);
    assert_eq!(
        srv.metric(&format!(
            "roomcast_build_info{{version=\"{}\"}}",
            env!("CARGO_PKG_VERSION")
        ))
        .await,
        1.0
    );
    assert_eq!(srv.metric("roomcast_connections_opened_total").await, 3.0);
    assert_eq!(
        srv.metric("roomcast_rooms").await,
        2.0,
        "chat/lobby and echo/lobby"
    );
    assert_eq!(srv.metric("roomcast_messages_received_total").await, 2.0);
    assert_eq!(srv.metric("roomcast_bytes_received_total").await, 8.0);
    assert_eq!(srv.metric("roomcast_messages_sent_total").await, 6.0);
    assert_eq!(received.len(), 6);
    assert_eq!(
        srv.metric("roomcast_bytes_sent_total").await,
        received.iter().map(String::len).sum::<usize>() as f64,
        "the payload bytes the clients received"
    );
    assert_eq!(
        srv.metric("roomcast_script_calls_total{hook=\"join\"}")
            .await,
        2.0,
        "echo.rhai has no on_join"
    );
    assert_eq!(
        srv.metric("roomcast_script_calls_total{hook=\"message\"}")
            .await,
        2.0
    );
    // echo.rhai's on_message is a fast hook (docs/scripting.md): its first
    // call and one in 16 after that are timed, so of two calls one is.
    assert_eq!(
        srv.metric("roomcast_script_duration_seconds_count{hook=\"message\"}")
            .await,
        1.0
    );

    b.close().await;
    assert_eq!(a.recv_json().await, json("leave", "user2 left"));
    e.close().await;
    assert_eq!(srv.wait_metric("roomcast_connections", 1.0).await, 1.0);
    assert_eq!(srv.metric("roomcast_connections_closed_total").await, 2.0);
    assert_eq!(
        srv.metric("roomcast_rooms").await,
        1.0,
        "empty echo room removed"
    );
    assert_eq!(
        srv.metric("roomcast_script_calls_total{hook=\"leave\"}")
            .await,
        1.0
    );
    srv.stop().await;
}

/// `promtool check metrics` (Debian's prometheus package) accepts a real scrape.
#[tokio::test]
async fn promtool_accepts_the_exposition() {
    let srv = TestServer::start_default().await;
    let mut ws = srv.connect("/shout").await;
    ws.send_text("x").await;
    ws.recv_text().await;
    let body = srv.get("/metrics").await.body;
    assert!(body.contains("roomcast_script_duration_seconds_bucket"));

    let mut child = tokio::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool not found: run tests/run.sh, which installs Debian's prometheus package");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .await
        .unwrap();
    let out = child.wait_with_output().await.unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool failed:\n{report}");
    assert!(
        report.trim().is_empty(),
        "promtool lint findings:\n{report}"
    );
    srv.stop().await;
}

/// Two servers in one process keep separate metrics (no global registry).
#[tokio::test]
async fn two_servers_have_separate_registries() {
    let one = TestServer::start_default().await;
    let two = TestServer::start_default().await;
    let mut ws = one.connect("/echo").await;
    ws.send_text("x").await;
    ws.recv_text().await;
    assert_eq!(one.metric("roomcast_messages_received_total").await, 1.0);
    assert_eq!(two.metric("roomcast_messages_received_total").await, 0.0);
    one.stop().await;
    two.stop().await;
}

/// With `metrics.enabled = false`, `/metrics` is 404 and traffic still flows.
#[tokio::test]
async fn metrics_can_be_switched_off() {
    let mut config = common::test_config();
    config.metrics.enabled = false;
    let srv = TestServer::start(config).await;
    assert_eq!(srv.get("/metrics").await.status, 404);
    let mut ws = srv.connect("/echo").await;
    ws.send_text("still works").await;
    assert_eq!(ws.recv_text().await, "still works");
    assert_eq!(
        srv.server.metrics().messages_received.get(),
        0,
        "not counted"
    );
    assert_eq!(
        srv.server.metrics().connections.get(),
        1,
        "gauges still move"
    );
    srv.stop().await;
}
