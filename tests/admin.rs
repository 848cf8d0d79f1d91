//! The operator view (`/admin`): in headless Chromium on two nodes over a
//! real redis-server, with a mixed load (raw and roomcast.v1 clients here,
//! socket.io-client 4 in the browser script): both nodes listed, the load
//! counted by wire, the top rooms following a room that becomes hot, a
//! room's members on both nodes, a member of the other node disconnected
//! from the page (exactly that connection, with 4000), a message published
//! from the page reaching every member, a node that stops shown as not
//! heard from; a wrong key is
//! 401, counted; with no key configured `/admin` is 404.
//!
//! Needs redis-server, Debian's chromium and `npm ci` in tests/browser:
//! tests/run.sh installs them.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::redis::TestRedis;
use common::{TestServer, Ws, V1};

const KEY: &str = "0123456789abcdef-operator-key";

fn node_config(redis: &TestRedis) -> roomcast::Config {
    let mut c = common::test_config();
    c.api.key = Some(KEY.into());
    c.cluster.redis_url = redis.url();
    c.cluster.presence_ttl = Duration::from_secs(3);
    c
}

/// Read `ws` until a text message containing `needle`; returns it.
async fn until_text(ws: &mut Ws, needle: &str) -> String {
    loop {
        let t = ws.recv_text().await;
        if t.contains(needle) {
            return t;
        }
    }
}

/// A raw member of `path`, with the nickname its own enter line names.
async fn raw_member(srv: &TestServer, path: &str) -> (Ws, String) {
    let mut ws = srv.connect(path).await;
    let enter = ws.recv_json().await;
    assert_eq!(enter["type"], "enter", "{enter}");
    let nick = enter["data"]
        .as_str()
        .and_then(|d| d.split(' ').next())
        .expect("a nickname")
        .to_string();
    (ws, nick)
}

/// The page against two nodes (the browser script asks; this answers).
#[tokio::test]
async fn the_operator_view_shows_two_nodes_and_acts_on_them() {
    let redis = TestRedis::start().await;
    let a = TestServer::start(node_config(&redis)).await;
    let b = TestServer::start(node_config(&redis)).await;
    // Node A: three raw members of chat/lobby and two v1 clients in chat/v1.
    let mut lobby_a = Vec::new();
    for _ in 0..3 {
        lobby_a.push(raw_member(&a, "/chat/lobby").await);
    }
    let mut v1s = Vec::new();
    for _ in 0..2 {
        let mut v = V1::connect(&a, "/chat", &[]).await;
        v.join("chat/v1").await;
        v1s.push(v);
    }
    // Node B: one raw member of chat/lobby and one of chat/hot (socket.io
    // clients come from the script).
    // The member disconnected from the page (served by A) is B's.
    let (lobby_b, victim) = raw_member(&b, "/chat/lobby").await;
    let (hot, _) = raw_member(&b, "/chat/hot").await;
    let hot = Arc::new(tokio::sync::Mutex::new(hot));
    let heating = Arc::new(AtomicBool::new(false));

    let lobby_a = Arc::new(tokio::sync::Mutex::new(lobby_a));
    let lobby_b = Arc::new(tokio::sync::Mutex::new(lobby_b));
    let nodes = format!("{} {} {KEY}", a.addr, b.addr);
    let b = Arc::new(tokio::sync::Mutex::new(Some(b)));
    let shots = tempfile::tempdir().unwrap();
    let shot = shots.path().join("admin.png");
    let answers = |what: String| {
        let (hot, heating) = (hot.clone(), heating.clone());
        let nodes = format!("{nodes} {}", shot.display());
        let b = b.clone();
        let victim = victim.clone();
        let (lobby, lobby_b) = (lobby_a.clone(), lobby_b.clone());
        async move {
            let mut lobby = lobby.lock().await;
            match what.as_str() {
                "nodes" => nodes,
                "hot" => {
                    // 20 messages a second into chat/hot, each read back.
                    heating.store(true, Ordering::Release);
                    tokio::spawn(async move {
                        let mut every = tokio::time::interval(Duration::from_millis(50));
                        while heating.load(Ordering::Acquire) {
                            every.tick().await;
                            let mut ws = hot.lock().await;
                            ws.send_text("hot").await;
                            until_text(&mut ws, ":hot").await;
                        }
                    });
                    "hot".into()
                }
                "cool" => {
                    heating.store(false, Ordering::Release);
                    "cool".into()
                }
                "victim" => victim,
                "closed" => {
                    let (code, reason) = lobby_b.lock().await.expect_close().await;
                    assert_eq!(code, 4000, "the documented close code");
                    assert_eq!(reason, "disconnected by an operator");
                    // The others are still members: they hear the leave.
                    for (ws, n) in lobby.iter_mut() {
                        let leave = until_text(ws, "\"leave\"").await;
                        assert!(leave.contains(&victim), "{n} heard {leave}");
                    }
                    "ok".into()
                }
                "stop b" => {
                    let b = b.lock().await.take().expect("node B runs");
                    b.stop().await;
                    "stopped".into()
                }
                "published" => {
                    // Node A's raw members (node B's socket.io members are
                    // checked by the script).
                    for (ws, _) in lobby.iter_mut() {
                        until_text(ws, "hello from the operator").await;
                    }
                    "ok".into()
                }
                other => panic!("unexpected question {other}"),
            }
        }
    };
    common::sio::run_script(
        "admin.mjs",
        a.addr,
        "two-nodes",
        "operator view works",
        answers,
    )
    .await;
    let png = std::fs::read(&shot).expect("a screenshot");
    assert!(png.starts_with(b"\x89PNG"));

    // Who did it is counted by the key's name; refusals are counted too.
    assert_eq!(
        a.metric("roomcast_api_actions_total{action=\"disconnect\",key=\"default\"}")
            .await,
        1.0
    );
    assert_eq!(
        a.metric("roomcast_api_actions_total{action=\"publish\",key=\"default\"}")
            .await,
        1.0
    );
    assert!(a.metric("roomcast_api_unauthorized_total").await >= 3.0);
    a.stop().await;
    assert!(
        b.lock().await.is_none(),
        "node B was stopped by the script's turn"
    );
}

/// Without an API key there is no operator view: `/admin`, its files,
/// its live socket and `/api/admin/…` are all 404.
#[tokio::test]
async fn without_a_key_the_operator_view_is_404() {
    let srv = TestServer::start(common::test_config()).await;
    for path in [
        "/admin",
        "/admin/",
        "/admin/assets/admin.js",
        "/admin/live",
        "/api/admin/overview",
    ] {
        assert_eq!(srv.get(path).await.status, 404, "{path}");
    }
    // Off is not a refusal: nothing was counted as a wrong key.
    assert_eq!(srv.metric("roomcast_api_unauthorized_total").await, 0.0);
    srv.stop().await;
}

/// With a key, the live socket and the API refuse a wrong or missing one
/// with 401 (counted), and the page itself is public (it holds no data).
#[tokio::test]
async fn a_wrong_key_is_401_and_counted() {
    let mut config = common::test_config();
    config.api.key = Some(KEY.into());
    let srv = TestServer::start(config).await;
    assert_eq!(srv.get("/admin").await.status, 200);
    let req = common::upgrade_request(
        srv.addr,
        "/admin/live",
        Some("roomcast.admin, bearer.d3Jvbmc"),
    );
    let resp = common::http_raw(srv.addr, &req).await;
    assert_eq!(resp.status, 401);
    let (status, body) =
        common::api_call(srv.addr, "GET", "/api/admin/overview", Some("wrong"), None).await;
    assert_eq!(status, 401);
    assert_eq!(body["error"]["code"], "unauthorized");
    assert_eq!(srv.metric("roomcast_api_unauthorized_total").await, 2.0);
    let (status, body) =
        common::api_call(srv.addr, "GET", "/api/admin/overview", Some(KEY), None).await;
    assert_eq!(status, 200);
    assert_eq!(body["nodes"][0]["node"], 0);
    srv.stop().await;
}

/// The live socket for tools other than a browser: the key as
/// `Authorization: Bearer`, the history first, then an update each second
/// that follows the node (a member comes, its room tops the list); Close
/// 1001 when the server shuts down.
#[tokio::test]
async fn the_live_socket_sends_history_then_updates_and_1001_at_shutdown() {
    let mut config = common::test_config();
    config.api.key = Some(KEY.into());
    let srv = TestServer::start(config).await;
    let auth = format!("Bearer {KEY}");
    let req = common::request(&srv.url("/admin/live"), &[("authorization", &auth)]);
    let mut live = Ws::connect_with(req).await;
    let history = live.recv_json().await;
    assert_eq!(history["type"], "history");
    assert!(history["nodes"]["0"]["conns"].is_array(), "{history}");
    assert_eq!(live.recv_json().await["type"], "update");
    let mut member = srv.connect("/chat/lobby").await;
    member.recv_json().await;
    let update = loop {
        let u = live.recv_json().await;
        if u["nodes"][0]["conns"] == 1 {
            break u;
        }
    };
    assert_eq!(update["nodes"][0]["wires"]["raw"], 1);
    assert_eq!(update["top_members"][0]["room"], "chat/lobby");
    assert_eq!(update["top_members"][0]["members"], 1);
    srv.stop().await;
    assert_eq!(live.expect_close().await.0, 1001);
}
