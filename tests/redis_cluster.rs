//! roomcast nodes over a real Redis Cluster (`cluster.redis_mode =
//! "cluster"`): three masters with a replica each, started here on loopback
//! ports (`redis-server --cluster-enabled yes`, joined by `redis-cli
//! --cluster create … --cluster-replicas 1`). Rooms are spread over all
//! three shards: the seed's chat, roomcast.v1 with presence and resume,
//! socket.io with raw and v1 clients, the HTTP API from a node without
//! members — then a master SIGKILLed mid-chat (its replica takes over), and
//! a master without a replica killed and started again.
//!
//! Needs `redis-server` and `redis-cli` (Debian packages): tests/run.sh
//! installs them.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::redis_cluster::{keyslot, RedisCluster};
use common::{json, TestServer, V1};
use serde_json::json as j;

const API_KEY: &str = "0123456789abcdef-cluster-key";

/// A node of the cluster whose seeds are `url`.
fn node_config(url: &str) -> roomcast::Config {
    let mut c = common::test_config();
    c.api.key = Some(API_KEY.into());
    c.cluster.redis_mode = roomcast::config::RedisMode::Cluster;
    c.cluster.redis_url = url.to_string();
    c.cluster.presence_ttl = Duration::from_secs(3);
    c.limits.rate.messages_per_second = 0;
    c
}

async fn start_cluster(masters: usize, replicas: usize) -> RedisCluster {
    tokio::task::spawn_blocking(move || RedisCluster::start(masters, replicas))
        .await
        .unwrap()
}

/// The slot of `room`'s keys (and channel).
fn room_slot(cluster: &RedisCluster, room: &str) -> u16 {
    keyslot(cluster.any_port(), &format!("roomcast:{{{room}}}:m"))
}

/// One room per master (`chat/s<n>` names), with the master's index.
fn room_per_master(cluster: &RedisCluster) -> Vec<(String, usize)> {
    let mut found: BTreeMap<usize, String> = BTreeMap::new();
    for n in 0..200 {
        let room = format!("chat/s{n}");
        let master = cluster.master_of(room_slot(cluster, &room));
        found.entry(master).or_insert(room);
    }
    assert_eq!(found.len(), 3, "rooms on all three masters: {found:?}");
    found.into_iter().map(|(m, r)| (r, m)).collect()
}

/// Skip a v1 client's events until a chat line (a `message` whose seed
/// JSON's text) ends with `suffix`; the event.
async fn until_line(client: &mut V1, suffix: &str) -> serde_json::Value {
    loop {
        let m = client.until("message").await;
        if m["data"]["data"]
            .as_str()
            .is_some_and(|t| t.ends_with(suffix))
        {
            return m;
        }
    }
}

/// Skip a v1 client's events until a `message` with `data`.
async fn until_data(client: &mut V1, data: serde_json::Value) -> serde_json::Value {
    loop {
        let m = client.until("message").await;
        if m["data"] == data {
            return m;
        }
    }
}

/// The seed's chat across two nodes, then rooms on all three shards with
/// roomcast.v1 (offsets, presence from both nodes, resume on the other
/// node), every room's channel a sharded one on its own master; the HTTP
/// API of a node with no members.
#[tokio::test]
async fn rooms_on_every_shard_span_nodes() {
    let cluster = start_cluster(3, 1).await;
    let config = node_config(&cluster.url());
    let (a, b) = (
        TestServer::start(config.clone()).await,
        TestServer::start(config.clone()).await,
    );
    // The seed's chat page: one room, one `userN` counter, every line on both.
    let mut ann = a.connect("/chat").await;
    assert_eq!(ann.recv_json().await, json("enter", "user1 comes in"));
    let mut bob = b.connect("/chat").await;
    assert_eq!(bob.recv_json().await, json("enter", "user2 comes in"));
    assert_eq!(ann.recv_json().await, json("enter", "user2 comes in"));
    bob.send_text("hi").await;
    assert_eq!(bob.recv_json().await, json("message", "user2:hi"));
    assert_eq!(ann.recv_json().await, json("message", "user2:hi"));
    ann.send_text("hello").await;
    assert_eq!(ann.recv_json().await, json("message", "user1:hello"));
    assert_eq!(bob.recv_json().await, json("message", "user1:hello"));

    for (room, master) in room_per_master(&cluster) {
        let mut x = V1::connect(&a, "/chat", &[]).await;
        let joined = x.join(&room).await;
        let mut y = V1::connect(&b, "/chat", &[]).await;
        let y_joined = y.join(&room).await;
        assert_eq!(y_joined["epoch"], joined["epoch"], "one stream for {room}");
        x.until("join").await;
        x.send(j!({"type": "publish", "room": room, "data": "one", "id": 1}))
            .await;
        let ack = x.until("ack").await;
        let m = until_line(&mut y, ":one").await;
        assert_eq!(m["offset"], ack["offset"], "{room}: {m} {ack}");
        // Presence from both nodes.
        y.send(j!({"type": "presence", "room": room, "id": 2}))
            .await;
        let presence = y.until("presence").await;
        assert_eq!(
            presence["members"].as_array().unwrap().len(),
            2,
            "{room}: {presence}"
        );
        // The room's channel is sharded, subscribed on its own master by
        // both nodes (and nowhere a plain channel).
        let channel = format!("roomcast:{{{room}}}:c");
        let port = cluster.nodes[master].port;
        let shard = common::redis_cluster::cli(port, &["PUBSUB", "SHARDNUMSUB", &channel]);
        assert_eq!(
            shard.lines().nth(1),
            Some("2"),
            "{room}: two sharded subscribers on its master: {shard}"
        );
        let plain = common::redis_cluster::cli(port, &["PUBSUB", "NUMSUB", &channel]);
        assert_eq!(plain.lines().nth(1), Some("0"), "{plain}");
        // Resume on the other node: what was missed, once.
        let seen = ack["offset"].as_u64().unwrap();
        x.ws.close().await;
        y.send(j!({"type": "publish", "room": room, "data": "two", "id": 3}))
            .await;
        y.until("ack").await;
        let mut back = V1::connect(&b, "/chat", &[]).await;
        back.send(
            j!({"type": "join", "room": room, "since": {"epoch": joined["epoch"], "offset": seen}}),
        )
        .await;
        let again = back.until("joined").await;
        assert_eq!(again["resumed"], true, "{room}: {again}");
        let mut texts = Vec::new();
        while !texts.last().is_some_and(|t: &String| t.ends_with(":two")) {
            let ev = back.until("message").await;
            texts.push(ev["data"]["data"].as_str().unwrap_or_default().to_string());
        }
        assert_eq!(texts.len(), 2, "{room}: a leave, then two: {texts:?}");
        assert!(texts[0].ends_with(" left"), "{texts:?}");
    }

    // The HTTP API of node a, which has no member in the room.
    let mut cy = V1::connect(&b, "/chat", &[]).await;
    cy.join("chat/api").await;
    let (status, published) = common::api_call(
        a.addr,
        "POST",
        "/api/publish",
        Some(API_KEY),
        Some(j!({"room": "chat/api", "data": "from a"})),
    )
    .await;
    assert_eq!(status, 200, "{published}");
    let m = until_data(&mut cy, j!("from a")).await;
    assert_eq!(m["offset"], published["offset"]);
    let (status, history) = common::api_call(
        a.addr,
        "GET",
        "/api/rooms/history?room=chat/api",
        Some(API_KEY),
        None,
    )
    .await;
    assert_eq!(status, 200, "{history}");
    assert_eq!(
        history["messages"].as_array().unwrap().last().unwrap()["data"],
        "from a",
        "{history}"
    );
    cy.send(j!({"type": "publish", "room": "chat/api", "data": "me"}))
        .await;
    let mine = until_line(&mut cy, ":me").await;
    let conn = mine["from"]["conn"].as_u64().unwrap_or_else(|| {
        panic!("a connection id: {mine}");
    });
    let (status, d) = common::api_call(
        a.addr,
        "POST",
        "/api/disconnect",
        Some(API_KEY),
        Some(j!({"conn": conn})),
    )
    .await;
    assert_eq!(
        (status, d["disconnected"].clone()),
        (200, j!(1)),
        "a node's channel is sharded too, and its SPUBLISH counts the node that listens: {d}"
    );
    let (code, _) = cy.ws.expect_close().await;
    assert_eq!(code, 4000);
    for n in [&a, &b] {
        assert_eq!(n.metric("roomcast_broker_up").await, 1.0);
    }
    a.stop().await;
    b.stop().await;
}

/// The real socket.io-client (run by Node) on one node, a raw and a v1
/// client on the other, in one room of the cluster.
#[tokio::test]
async fn socketio_and_raw_clients_on_different_nodes_share_a_room() {
    let cluster = start_cluster(3, 0).await;
    let config = node_config(&cluster.url());
    let a = TestServer::start(config.clone()).await;
    let b = TestServer::start(config).await;
    let mut raw = b.connect("/chat").await;
    assert_eq!(raw.recv_json().await, json("enter", "user1 comes in"));
    let mut v1 = V1::connect(&b, "/chat", &[]).await;
    v1.join("chat/lobby").await;
    assert_eq!(raw.recv_json().await, json("enter", "user2 comes in"));
    let raw = std::sync::Arc::new(tokio::sync::Mutex::new(raw));
    let v1 = std::sync::Arc::new(tokio::sync::Mutex::new(v1));
    common::sio::clients(&a, "mixed", |what| {
        let (raw, v1) = (raw.clone(), v1.clone());
        async move {
            let mut raw = raw.lock().await;
            let mut v1 = v1.lock().await;
            if let Some(nick) = what.strip_prefix("nick ") {
                assert_eq!(nick, "user3", "one counter across nodes and transports");
                common::sio::raw_and_v1_speak(&mut raw, &mut v1, nick).await;
                return "spoke".to_string();
            }
            assert_eq!(what, "listen");
            assert_eq!(
                raw.recv_json().await,
                json("message", "user3:from socket.io")
            );
            until_data(&mut v1, json("message", "user3:from socket.io")).await;
            "heard".to_string()
        }
    })
    .await;
    a.stop().await;
    b.stop().await;
}

/// The binary, configured as users do (`ROOMCAST_CLUSTER__REDIS_MODE`,
/// seeds in `ROOMCAST_CLUSTER__REDIS_URL`), joins the cluster; seeds
/// without the mode are refused at start, naming the keys.
#[tokio::test]
async fn the_binary_joins_a_cluster_from_its_environment() {
    let cluster = start_cluster(3, 0).await;
    let url = cluster.url();
    let dir = tempfile::tempdir().unwrap();
    let scripts = common::repo_scripts();
    let (mut child, addr, _) = common::spawn_binary(
        &["--scripts", scripts.to_str().unwrap()],
        &[
            ("ROOMCAST_CLUSTER__REDIS_MODE", "cluster"),
            ("ROOMCAST_CLUSTER__REDIS_URL", url.as_str()),
        ],
        dir.path(),
    )
    .await;
    let addr: std::net::SocketAddr = addr.parse().unwrap();
    let up =
        common::wait_for_metric(addr, "roomcast_broker_up", 1.0, Duration::from_secs(10)).await;
    assert_eq!(up, 1.0, "the node reached the Redis Cluster");
    child.kill().await.unwrap();

    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_roomcast"))
        .args(["--listen", "127.0.0.1:0", "check"])
        .env("ROOMCAST_CLUSTER__REDIS_URL", &url)
        .env_remove("ROOMCAST_CONFIG")
        .current_dir(dir.path())
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("cluster.redis_url") && stderr.contains("cluster.redis_mode"),
        "{stderr}"
    );
}
