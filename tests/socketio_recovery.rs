//! socket.io connection state recovery with the real socket.io-client 4.8
//! (tests/browser/socketio_recovery.mjs): a client whose transport drops
//! (`socket.io.engine.close()`) and that is back within the window has
//! `socket.recovered === true` and exactly the room messages it missed, of
//! its home room and of a room it joined by command, in order, once — on
//! the same node and on a second node of a cluster (a real `redis-server`);
//! back after the window it is a fresh session; 2.0.3 (which has no
//! recovery) gets no pid, no offsets, and reconnects as it always did.
//!
//! Needs `npm ci` in tests/browser and `redis-server`: tests/run.sh does both.

mod common;

use std::time::Duration;

use common::proxy::Proxy;
use common::redis::TestRedis;
use common::sio::script_clients;
use common::{api_call, TestServer};
use serde_json::json;

const KEY: &str = "recovery-test-api-key";

fn config(redis: Option<&TestRedis>, window: Duration) -> roomcast::config::Config {
    let mut c = common::test_config();
    c.api.key = Some(KEY.into());
    c.socketio.recovery = window;
    if let Some(r) = redis {
        c.cluster.redis_url = r.url();
    }
    c
}

/// Run `scenario` through a proxy to `first`; after the drop the proxy
/// points to `then` (and publishes go there), after `window` when asked.
async fn scenario(scenario: &str, first: &TestServer, then: &TestServer, window: Duration) {
    let proxy = Proxy::new(first.addr).await;
    let target = std::sync::Mutex::new(first);
    let (proxy_ref, target_ref) = (&proxy, &target);
    script_clients(
        "socketio_recovery.mjs",
        proxy.addr,
        scenario,
        move |what| async move {
            let mut words = what.split(' ');
            match words.next().unwrap() {
                "publish" => {
                    let (room, text) = (words.next().unwrap(), words.next().unwrap());
                    let addr = target_ref.lock().unwrap().addr;
                    let body = json!({"room": room, "data": {"type": "message", "data": text}});
                    let (status, answer) =
                        api_call(addr, "POST", "/api/publish", Some(KEY), Some(body)).await;
                    assert_eq!(status, 200, "{answer}");
                    assert!(answer["offset"].as_u64().unwrap() > 0, "stored: {answer}");
                    "ok".into()
                }
                "refuse" => {
                    proxy_ref.refuse_new();
                    "ok".into()
                }
                "gone" => {
                    // The session ended (and was kept): the next connection
                    // may go to the other node.
                    first.wait_metric("roomcast_connections", 0.0).await;
                    *target_ref.lock().unwrap() = then;
                    "ok".into()
                }
                "wait" => {
                    // Past the window: time is what is tested here.
                    tokio::time::sleep(window + Duration::from_millis(500)).await;
                    "ok".into()
                }
                "return" => {
                    proxy_ref.point_to(Some(then.addr));
                    "ok".into()
                }
                other => panic!("unexpected question {other}"),
            }
        },
    )
    .await;
}

async fn recoveries(srv: &TestServer, result: &str) -> f64 {
    srv.metric(&format!(
        "roomcast_socketio_recoveries_total{{result=\"{result}\"}}"
    ))
    .await
}

#[tokio::test]
async fn a_dropped_client_recovers_on_the_same_node() {
    let window = Duration::from_secs(120);
    let srv = TestServer::start(config(None, window)).await;
    scenario("recover", &srv, &srv, window).await;
    assert_eq!(recoveries(&srv, "recovered").await, 1.0);
    assert_eq!(recoveries(&srv, "unknown").await, 0.0);
    srv.stop().await;
}

#[tokio::test]
async fn a_dropped_client_recovers_on_another_node() {
    let window = Duration::from_secs(120);
    let redis = TestRedis::start().await;
    let a = TestServer::start(config(Some(&redis), window)).await;
    let b = TestServer::start(config(Some(&redis), window)).await;
    scenario("recover", &a, &b, window).await;
    assert_eq!(recoveries(&b, "recovered").await, 1.0, "taken up on b");
    assert_eq!(recoveries(&a, "recovered").await, 0.0);
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn after_the_window_a_client_gets_a_fresh_session() {
    let window = Duration::from_secs(1);
    let srv = TestServer::start(config(None, window)).await;
    scenario("expire", &srv, &srv, window).await;
    assert_eq!(recoveries(&srv, "unknown").await, 1.0);
    assert_eq!(recoveries(&srv, "recovered").await, 0.0);
    srv.stop().await;
}

#[tokio::test]
async fn socketio_2_has_no_recovery_and_reconnects_as_before() {
    let window = Duration::from_secs(120);
    let srv = TestServer::start(config(None, window)).await;
    scenario("old", &srv, &srv, window).await;
    for result in ["recovered", "unknown"] {
        assert_eq!(recoveries(&srv, result).await, 0.0, "{result}");
    }
    srv.stop().await;
}
