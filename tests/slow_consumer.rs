//! A member that stops reading is closed as a slow consumer; the room goes on.

mod common;

use common::{RawWs, TestServer};

/// In a room where one client never reads, the others receive every message,
/// the silent one is closed (4008, counted) and its connection is released.
#[tokio::test]
async fn a_member_that_never_reads_is_dropped_and_the_room_goes_on() {
    let mut config = common::test_config();
    config.limits.outbox_messages = 16;
    config.limits.outbox_bytes = 64 * 1024;
    config.limits.close_timeout = std::time::Duration::from_millis(500);
    config.limits.rate.messages_per_second = 0; // this test floods on purpose
    let srv = TestServer::start(config).await;

    let _silent = RawWs::connect(srv.addr, "/chat/busy").await; // never reads
    let mut talker = srv.connect("/chat/busy").await;
    let mut listener = srv.connect("/chat/busy").await;
    talker.recv_json().await; // its own enter (user2)
    talker.recv_json().await; // user3's enter
    listener.recv_json().await;

    // 4000 × 8 KiB: far more than the silent client's socket buffers can hold.
    let body = "x".repeat(8 * 1024);
    let n = 4000;
    let mut left = [false, false];
    for i in 0..n {
        talker.send_text(&format!("{i} {body}")).await;
        for (k, ws) in [&mut talker, &mut listener].into_iter().enumerate() {
            let mut msg = ws.recv_json().await;
            if msg["type"] == "leave" {
                assert_eq!(
                    msg,
                    common::json("leave", "user1 left"),
                    "only the silent one leaves"
                );
                left[k] = true;
                msg = ws.recv_json().await;
            }
            let data = msg["data"].as_str().unwrap();
            assert!(
                data.starts_with(&format!("user2:{i} ")),
                "message {i}: got {}",
                &data[..data.len().min(60)]
            );
        }
    }
    // Whenever it happened, both members see the silent one leave.
    for (k, ws) in [&mut talker, &mut listener].into_iter().enumerate() {
        if !left[k] {
            assert_eq!(ws.recv_json().await, common::json("leave", "user1 left"));
        }
    }
    assert_eq!(srv.metric("roomcast_slow_consumers_total").await, 1.0);
    assert_eq!(
        srv.wait_metric("roomcast_connections", 2.0).await,
        2.0,
        "the silent connection is released"
    );
    srv.stop().await;
}
