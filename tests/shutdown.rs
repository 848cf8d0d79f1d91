//! Graceful shutdown through the library API.

mod common;

use std::time::{Duration, Instant};

use common::{json, RawWs, TestServer};

/// When `serve`'s shutdown future resolves, every session gets Close 1001 and
/// `serve` returns once they are gone.
#[tokio::test]
async fn shutdown_sends_1001_to_every_session() {
    let srv = TestServer::start_default().await;
    let mut chat = srv.connect("/chat").await;
    assert_eq!(chat.recv_json().await, json("enter", "user1 comes in"));
    let mut echo = srv.connect("/echo").await;
    echo.send_text("x").await;
    echo.recv_text().await;
    let server = srv.server.clone();
    let stopping = tokio::spawn(srv.stop());
    assert_eq!(chat.expect_close().await.0, 1001);
    assert_eq!(echo.expect_close().await.0, 1001);
    stopping.await.unwrap();
    assert_eq!(server.metrics().connections.get(), 0);
}

/// A client that never answers our Close cannot hold shutdown beyond the close timeout.
#[tokio::test]
async fn a_silent_client_does_not_block_shutdown() {
    let mut config = common::test_config();
    config.limits.close_timeout = Duration::from_millis(300);
    let srv = TestServer::start(config).await;
    let _silent = RawWs::connect(srv.addr, "/echo").await; // never reads, never answers
    let started = Instant::now();
    srv.stop().await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

/// New upgrades are refused with 503 once draining has begun.
#[tokio::test]
async fn upgrades_are_refused_while_draining() {
    let srv = TestServer::start_default().await;
    srv.server.shutdown();
    let addr = srv.addr;
    let r = common::http_raw(
        addr,
        &format!(
            "GET /echo HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ),
    )
    .await;
    assert_eq!(r.status, 503);
    assert_eq!(
        srv.metric("roomcast_http_rejections_total{reason=\"draining\"}")
            .await,
        1.0
    );
}
