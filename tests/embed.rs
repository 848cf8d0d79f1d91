//! roomcast mounted in a host hyper app (the `embed` example, compiled in here).

mod common;

#[path = "../examples/embed.rs"]
mod embed;

use common::{json, Ws};

/// The host serves its own routes and roomcast's chat under its prefix.
#[tokio::test]
async fn host_app_serves_its_routes_and_roomcast() {
    let roomcast = roomcast::Server::new(common::test_config()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let host = tokio::spawn(embed::run(listener, roomcast.clone(), async {
        let _ = stopped.await;
    }));

    let hello = common::http_get(addr, "/hello").await;
    assert_eq!(
        (hello.status, hello.body.as_str()),
        (200, "hello from the host\n")
    );

    let mut a = Ws::connect(&format!("ws://{addr}/rt/chat/room1")).await;
    assert_eq!(a.recv_json().await, json("enter", "user1 comes in"));
    a.send_text("embedded").await;
    assert_eq!(a.recv_json().await, json("message", "user1:embedded"));

    let metrics = common::http_get(addr, "/rt/metrics").await;
    assert!(
        metrics.body.contains("roomcast_connections 1"),
        "{}",
        metrics.body
    );

    let _ = stop.send(());
    assert_eq!(a.expect_close().await.0, 1001);
    host.await.unwrap();
}
