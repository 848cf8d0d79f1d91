//! socket.io connection state recovery with the real socket.io-client 4.8
//! (tests/browser/socketio_recovery.mjs): a client whose transport drops
//! (`socket.io.engine.close()`) and that is back within the window has
//! `socket.recovered === true` and exactly the room messages it missed, of
//! its home room and of a room it joined by command, in order, once — on
//! the same node and on a second node of a cluster (a real `redis-server`);
//! back after the window it is a fresh session; 2.0.3 (which has no
//! recovery) gets no pid, no offsets, and reconnects as it always did.
//! A client whose node was killed recovers on another from the record the
//! node kept while the session lived.
//!
//! Needs `npm ci` in tests/browser and `redis-server`: tests/run.sh does both.

mod common;

use std::net::SocketAddr;
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

/// Where a scenario's client is first: a server of the test's, or a
/// `roomcast` process it may kill.
enum First<'a> {
    Server(&'a TestServer),
    Process(SocketAddr, Box<tokio::process::Child>),
}

impl First<'_> {
    fn addr(&self) -> SocketAddr {
        match self {
            First::Server(s) => s.addr,
            First::Process(addr, _) => *addr,
        }
    }
}

/// Run `scenario` through a proxy to `first`; after the drop the proxy
/// points to `then` (and publishes go there), after `window` when asked.
async fn scenario(scenario: &str, first: First<'_>, then: &TestServer, window: Duration) {
    let proxy = Proxy::new(first.addr()).await;
    let target = std::sync::Mutex::new(first.addr());
    let first = tokio::sync::Mutex::new(first);
    let (proxy, target, first) = (&proxy, &target, &first);
    let answer = move |what: String| async move {
        let mut words = what.split(' ');
        match words.next().unwrap() {
            "publish" => {
                let (room, text) = (words.next().unwrap(), words.next().unwrap());
                let addr = *target.lock().unwrap();
                let body = json!({"room": room, "data": {"type": "message", "data": text}});
                let (status, answer) =
                    api_call(addr, "POST", "/api/publish", Some(KEY), Some(body)).await;
                assert_eq!(status, 200, "{answer}");
                assert!(answer["offset"].as_u64().unwrap() > 0, "stored: {answer}");
            }
            "refuse" => proxy.refuse_new(),
            "gone" => {
                // The session ended (and was kept): the next connection
                // may go to the other node.
                if let First::Server(srv) = &*first.lock().await {
                    srv.wait_metric("roomcast_connections", 0.0).await;
                }
                *target.lock().unwrap() = then.addr;
            }
            "kill" => {
                if let First::Process(_, child) = &mut *first.lock().await {
                    child.kill().await.unwrap();
                }
                *target.lock().unwrap() = then.addr;
            }
            // Past the window: time is what is tested here.
            "wait" => tokio::time::sleep(window + Duration::from_millis(500)).await,
            "return" => proxy.point_to(Some(then.addr)),
            other => panic!("unexpected question {other}"),
        }
        "ok".to_string()
    };
    script_clients("socketio_recovery.mjs", proxy.addr, scenario, answer).await;
}

async fn recoveries(srv: &TestServer, result: &str) -> f64 {
    srv.metric(&format!(
        "roomcast_socketio_recoveries_total{{result=\"{result}\"}}"
    ))
    .await
}

/// Also when it dropped before it got any message (its session's record
/// has where its join found the room).
#[tokio::test]
async fn a_dropped_client_recovers_on_the_same_node() {
    let window = Duration::from_secs(120);
    let srv = TestServer::start(config(None, window)).await;
    scenario("recover", First::Server(&srv), &srv, window).await;
    assert_eq!(recoveries(&srv, "recovered").await, 1.0);
    scenario("quiet", First::Server(&srv), &srv, window).await;
    assert_eq!(recoveries(&srv, "recovered").await, 2.0);
    assert_eq!(recoveries(&srv, "unknown").await, 0.0);
    srv.stop().await;
}

#[tokio::test]
async fn a_dropped_client_recovers_on_another_node() {
    let window = Duration::from_secs(120);
    let redis = TestRedis::start().await;
    let a = TestServer::start(config(Some(&redis), window)).await;
    let b = TestServer::start(config(Some(&redis), window)).await;
    scenario("recover", First::Server(&a), &b, window).await;
    assert_eq!(recoveries(&b, "recovered").await, 1.0, "taken up on b");
    assert_eq!(recoveries(&a, "recovered").await, 0.0);
    a.stop().await;
    b.stop().await;
}

/// Its node SIGKILLed (no goodbye, nothing written at the end): the
/// record it kept while the session lived lets the client recover on
/// another node, its home room exactly from its own offset, the room it
/// joined by command from where that join was (again since then, never
/// less).
#[tokio::test]
async fn a_client_whose_node_died_recovers_on_another() {
    let window = Duration::from_secs(120);
    let redis = TestRedis::start().await;
    let b = TestServer::start(config(Some(&redis), window)).await;
    let dir = tempfile::tempdir().unwrap();
    let url = redis.url();
    let (child, addr, _) = common::spawn_binary(
        &["--scripts", common::repo_scripts().to_str().unwrap()],
        &[
            ("ROOMCAST_CLUSTER__REDIS_URL", url.as_str()),
            ("ROOMCAST_API__KEY", KEY),
        ],
        dir.path(),
    )
    .await;
    let a = First::Process(addr.parse().unwrap(), Box::new(child));
    scenario("crash", a, &b, window).await;
    assert_eq!(recoveries(&b, "recovered").await, 1.0);
    b.stop().await;
}

#[tokio::test]
async fn after_the_window_a_client_gets_a_fresh_session() {
    let window = Duration::from_secs(1);
    let srv = TestServer::start(config(None, window)).await;
    scenario("expire", First::Server(&srv), &srv, window).await;
    assert_eq!(recoveries(&srv, "unknown").await, 1.0);
    assert_eq!(recoveries(&srv, "recovered").await, 0.0);
    srv.stop().await;
}

#[tokio::test]
async fn socketio_2_has_no_recovery_and_reconnects_as_before() {
    let window = Duration::from_secs(120);
    let srv = TestServer::start(config(None, window)).await;
    scenario("old", First::Server(&srv), &srv, window).await;
    for result in ["recovered", "unknown"] {
        assert_eq!(recoveries(&srv, result).await, 0.0, "{result}");
    }
    srv.stop().await;
}

/// A pid is recovered once, by a connect like the one that had it: one for
/// another room gets a fresh session (nothing of the kept one), and the
/// pid, once taken, is gone; a pid that is not one of ours is no ask.
/// Connects to `/echo` with `auth` and returns the pid of the answer.
async fn connect(eio: &common::eio::Eio, auth: serde_json::Value) -> String {
    let packet = format!("40/echo,{auth}");
    assert_eq!(eio.post(&packet).await.0, 200);
    loop {
        let (status, packets) = eio.packets().await;
        assert_eq!(status, 200);
        if let Some(answer) = packets.iter().find_map(|p| p.strip_prefix("40/echo,")) {
            let answer: serde_json::Value = serde_json::from_str(answer).unwrap();
            return answer["pid"].as_str().unwrap().to_string();
        }
    }
}

#[tokio::test]
async fn a_pid_is_taken_once_and_only_by_its_own_kind_of_connect() {
    use common::eio::Eio;
    let srv = TestServer::start(config(None, Duration::from_secs(120))).await;
    let first = Eio::handshake(srv.addr, 4).await;
    let pid = connect(&first, json!({})).await;
    // Engine.IO's close packet: the connection ends, the session is kept.
    assert_eq!(first.post("1").await.0, 200);
    srv.wait_metric("roomcast_connections", 0.0).await;

    let other_room = Eio::handshake(srv.addr, 4).await;
    let fresh = connect(&other_room, json!({"pid": pid, "room": "elsewhere"})).await;
    assert_ne!(fresh, pid, "another room: a fresh session");
    let mismatch = srv.metric("roomcast_socketio_recoveries_total{result=\"mismatch\"}");
    assert_eq!(mismatch.await, 1.0);
    let again = Eio::handshake(srv.addr, 4).await;
    assert_ne!(
        connect(&again, json!({"pid": pid})).await,
        pid,
        "taken once"
    );
    let unknown = srv.metric("roomcast_socketio_recoveries_total{result=\"unknown\"}");
    assert_eq!(unknown.await, 1.0);
    let forged = Eio::handshake(srv.addr, 4).await;
    connect(&forged, json!({"pid": "not a pid", "offset": 7})).await;
    assert_eq!(
        recoveries(&srv, "unknown").await,
        1.0,
        "not one of ours: no ask"
    );
    assert_eq!(recoveries(&srv, "recovered").await, 0.0);
    srv.stop().await;
}
