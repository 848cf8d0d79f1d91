//! Several roomcast nodes over one real redis-server (started here on a
//! loopback port, behind a proxy so it can die and come back): the seed's
//! chat across nodes, presence, resume on another node, acks, the HTTP API
//! on a node without members, socket.io and raw clients on different
//! nodes, and what happens when Redis goes away.
//!
//! Needs `redis-server` (Debian package): tests/run.sh installs it.

mod common;

use std::time::Duration;

use common::redis::TestRedis;
use common::{json, TestServer, V1};
use serde_json::json as j;

/// Skip a v1 client's events until a `message` with `data`.
async fn until_data(client: &mut V1, data: serde_json::Value) -> serde_json::Value {
    loop {
        let m = client.until("message").await;
        if m["data"] == data {
            return m;
        }
    }
}

/// The HTTP API's key on every node.
const API_KEY: &str = "0123456789abcdef-cluster-key";

/// A node of the cluster at `url`.
fn node_config(url: &str) -> roomcast::Config {
    let mut c = common::test_config();
    c.api.key = Some(API_KEY.into());
    c.cluster.redis_url = url.to_string();
    c.cluster.presence_ttl = Duration::from_secs(3);
    c
}

async fn node(redis: &TestRedis) -> TestServer {
    TestServer::start(node_config(&redis.url())).await
}

/// The seed's chat page on two nodes: one room, one `userN` counter, every
/// line on both, in the seed's JSON.
#[tokio::test]
async fn the_seed_chat_spans_nodes() {
    let redis = TestRedis::start().await;
    let (a, b) = (node(&redis).await, node(&redis).await);
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
    bob.close().await;
    assert_eq!(ann.recv_json().await, json("leave", "user2 left"));
    // A third node's client is user3, not user1 again.
    let c = node(&redis).await;
    let mut cy = c.connect("/chat").await;
    assert_eq!(cy.recv_json().await, json("enter", "user3 comes in"));
    assert_eq!(ann.recv_json().await, json("enter", "user3 comes in"));
    for n in [&a, &b, &c] {
        assert_eq!(n.metric("roomcast_broker_up").await, 1.0);
    }
    a.stop().await;
    b.stop().await;
    c.stop().await;
}

/// roomcast.v1 across nodes: offsets from one stream (acks carry them),
/// presence from every node, join and leave events everywhere.
#[tokio::test]
async fn v1_offsets_and_presence_span_nodes() {
    let redis = TestRedis::start().await;
    let (a, b) = (node(&redis).await, node(&redis).await);
    let mut ann = V1::connect(&a, "/chat", &[]).await;
    let joined = ann.join("chat/v").await;
    assert_eq!(joined["offset"], 0);
    let mut bob = V1::connect(&b, "/chat", &[]).await;
    let bob_joined = bob.join("chat/v").await;
    assert_eq!(
        bob_joined["epoch"], joined["epoch"],
        "one stream for the room"
    );
    let ev = ann.until("join").await;
    assert_eq!(ev["member"]["nick"], "user2", "{ev}");
    ann.send(j!({"type": "publish", "room": "chat/v", "data": "x", "id": 1}))
        .await;
    let ack = ann.until("ack").await;
    let m = until_data(&mut bob, json("message", "user1:x")).await;
    assert_eq!(m["offset"], ack["offset"], "{m} {ack}");
    bob.send(j!({"type": "publish", "room": "chat/v", "data": "y", "id": 2}))
        .await;
    let ack2 = bob.until("ack").await;
    assert_eq!(ack2["offset"], ack["offset"].as_u64().unwrap() + 1);
    bob.send(j!({"type": "presence", "room": "chat/v", "id": 3}))
        .await;
    let presence = bob.until("presence").await;
    let mut nicks: Vec<&str> = presence["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["nick"].as_str().unwrap())
        .collect();
    nicks.sort();
    assert_eq!(nicks, ["user1", "user2"], "{presence}");
    bob.ws.close().await;
    let left = ann.until("leave").await;
    assert_eq!(left["member"]["nick"], "user2", "{left}");
    a.stop().await;
    b.stop().await;
}

/// A client that drops from one node resumes on another: the same stream,
/// what it missed, nothing twice.
#[tokio::test]
async fn resume_on_another_node() {
    let redis = TestRedis::start().await;
    let (a, b) = (node(&redis).await, node(&redis).await);
    let mut ann = V1::connect(&a, "/chat", &[]).await;
    let joined = ann.join("chat/r").await;
    let epoch = joined["epoch"].as_str().unwrap().to_string();
    ann.send(j!({"type": "publish", "room": "chat/r", "data": "one", "id": 1}))
        .await;
    let seen = ann.until("ack").await["offset"].as_u64().unwrap();
    ann.ws.close().await;
    // Meanwhile, on the other node.
    let mut bob = V1::connect(&b, "/chat", &[]).await;
    bob.join("chat/r").await;
    for (i, t) in ["two", "three"].iter().enumerate() {
        bob.send(j!({"type": "publish", "room": "chat/r", "data": t, "id": i}))
            .await;
        bob.until("ack").await;
    }
    let mut back = V1::connect(&b, "/chat", &[]).await;
    back.send(j!({"type": "join", "room": "chat/r", "since": {"epoch": epoch, "offset": seen}}))
        .await;
    let joined = back.until("joined").await;
    assert_eq!(joined["resumed"], true, "{joined}");
    // What chat.rhai said meanwhile (bob's entry, ann's exit too), in order.
    let mut texts = Vec::new();
    while texts.last().map(String::as_str) != Some("user2:three") {
        let ev = back.until("message").await;
        texts.push(ev["data"]["data"].as_str().unwrap_or_default().to_string());
    }
    assert_eq!(
        texts,
        ["user1 left", "user2 comes in", "user2:two", "user2:three"],
        "everything after offset {seen}, once"
    );
    a.stop().await;
    b.stop().await;
}

/// The HTTP API of a node with no members: publish reaches members on the
/// other node (with an offset), presence and history see the whole cluster,
/// a disconnect reaches the connection where it is.
#[tokio::test]
async fn the_http_api_works_from_any_node() {
    const KEY: &str = "0123456789abcdef-test-key";
    let redis = TestRedis::start().await;
    let mut config = node_config(&redis.url());
    config.api.key = Some(KEY.into());
    let a = TestServer::start(config.clone()).await;
    let b = TestServer::start(config).await;
    let mut bob = V1::connect(&b, "/chat", &[]).await;
    bob.join("chat/api").await;
    let api = |method: &'static str, path: &'static str, body: Option<serde_json::Value>| {
        common::api_call(a.addr, method, path, Some(KEY), body)
    };
    let (status, published) = api(
        "POST",
        "/api/publish",
        Some(j!({"room": "chat/api", "data": "from a"})),
    )
    .await;
    assert_eq!(status, 200, "{published}");
    let m = until_data(&mut bob, j!("from a")).await;
    assert_eq!(m["offset"], published["offset"]);
    assert!(m["from"]["conn"].is_null(), "the server published it: {m}");
    let (status, presence) = api("GET", "/api/rooms/presence?room=chat/api", None).await;
    assert_eq!(status, 200, "{presence}");
    assert_eq!(presence["members"][0]["nick"], "user1", "{presence}");
    let (status, history) = api("GET", "/api/rooms/history?room=chat/api", None).await;
    assert_eq!(status, 200, "{history}");
    let last = history["messages"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(
        (last["data"].clone(), last["offset"].clone()),
        (j!("from a"), published["offset"].clone()),
        "{history}"
    );
    // Bob's connection id, from his own message.
    bob.send(j!({"type": "publish", "room": "chat/api", "data": "me"}))
        .await;
    let mine = until_data(&mut bob, json("message", "user1:me")).await;
    let conn = mine["from"]["conn"].as_u64().expect("a connection id");
    let (status, d) = common::api_call(
        a.addr,
        "POST",
        "/api/disconnect",
        Some(KEY),
        Some(j!({"conn": conn})),
    )
    .await;
    assert_eq!((status, d["disconnected"].clone()), (200, j!(1)), "{d}");
    let (code, _) = bob.ws.expect_close().await;
    assert_eq!(code, 4000);
    a.stop().await;
    b.stop().await;
}

/// Redis dies mid-run: each node's members keep chatting among themselves
/// (their senders are told the messages were not stored), positions handed
/// out meanwhile can never resume; when Redis is back the nodes find each
/// other again by themselves.
#[tokio::test]
async fn losing_redis_keeps_each_node_going_and_it_heals() {
    let mut redis = TestRedis::start().await;
    let (a, b) = (node(&redis).await, node(&redis).await);
    let mut ann = a.connect("/chat").await;
    assert_eq!(ann.recv_json().await, json("enter", "user1 comes in"));
    let mut bob = b.connect("/chat").await;
    assert_eq!(bob.recv_json().await, json("enter", "user2 comes in"));
    assert_eq!(ann.recv_json().await, json("enter", "user2 comes in"));
    let mut cy = V1::connect(&a, "/chat", &[]).await;
    cy.join("chat/lobby").await;
    ann.recv_json().await; // user3 comes in
    bob.recv_json().await;

    redis.kill().await;
    assert_eq!(a.wait_metric("roomcast_broker_up", 0.0).await, 0.0);
    assert_eq!(b.wait_metric("roomcast_broker_up", 0.0).await, 0.0);
    // Same node: still a chat. The v1 sender is told it was not stored.
    ann.send_text("still here").await;
    assert_eq!(ann.recv_json().await, json("message", "user1:still here"));
    let m = until_data(&mut cy, json("message", "user1:still here")).await;
    assert!(m["offset"].is_null(), "not stored, no position: {m}");
    cy.send(j!({"type": "publish", "room": "chat/lobby", "data": "x", "id": "p"}))
        .await;
    let e = cy.until("error").await;
    assert_eq!(
        (e["code"].clone(), e["id"].clone()),
        (j!("not_stored"), j!("p")),
        "{e}"
    );
    // The HTTP API says so too; the nodes stay ready (they serve their own).
    let (status, body) = common::api_call(
        a.addr,
        "POST",
        "/api/publish",
        Some(API_KEY),
        Some(j!({"room": "chat/lobby", "data": "from the API"})),
    )
    .await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "not_stored", "{body}");
    // Delivered here all the same (after cy's `x`).
    while ann.recv_text().await != "from the API" {}
    for node in [&a, &b] {
        assert_eq!(
            node.get("/readyz").await.status,
            200,
            "ready while Redis is down"
        );
    }
    assert!(a.metric("roomcast_broker_not_stored_total").await >= 3.0);
    assert!(
        a.metric("roomcast_broker_errors_total{op=\"publish\"}")
            .await
            >= 2.0
    );
    // A join meanwhile gets a position that will never resume.
    let mut dee = V1::connect(&a, "/chat", &[]).await;
    let outage = dee.join("chat/elsewhere").await;
    dee.ws.close().await;

    redis.restart().await;
    assert_eq!(a.wait_metric("roomcast_broker_up", 1.0).await, 1.0);
    assert_eq!(b.wait_metric("roomcast_broker_up", 1.0).await, 1.0);
    // Across nodes again, once the nodes have resubscribed (within seconds,
    // by themselves): bob keeps saying hello until ann hears him.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    'heard: loop {
        bob.send_text("hello?").await;
        let wait = tokio::time::timeout(Duration::from_millis(500), async {
            loop {
                let ev = ann.recv_json().await;
                if ev == json("message", "user2:hello?") {
                    return;
                }
            }
        })
        .await;
        if wait.is_ok() {
            break 'heard;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the nodes did not find each other within 5 s of Redis coming back"
        );
    }
    let mut back = V1::connect(&b, "/chat", &[]).await;
    back.send(j!({"type": "join", "room": "chat/elsewhere", "since": {"epoch": outage["epoch"], "offset": outage["offset"]}}))
        .await;
    let e = back.until("error").await;
    assert_eq!(e["code"], "resume_failed", "{e}");
    let joined = back.until("joined").await;
    assert_eq!(joined["resumed"], false);
    // Nicknames stay unique although Redis came back empty.
    let mut eve = b.connect("/chat").await;
    let enter = eve.recv_json().await;
    assert_ne!(enter, json("enter", "user1 comes in"), "{enter}");
    a.stop().await;
    b.stop().await;
}

/// A socket.io client (the real socket.io-client, run by Node) on one node,
/// a raw and a v1 client on another, in one room: each sees the others in
/// its own protocol, with nicknames from one counter.
#[tokio::test]
async fn socketio_and_raw_clients_on_different_nodes_share_a_room() {
    let redis = TestRedis::start().await;
    let mut config = node_config(&redis.url());
    config.limits.rate.messages_per_second = 0;
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

/// A node killed with SIGKILL says no goodbye: its members leave presence
/// (and the room is told) once their entries expire, and the other node
/// carries on.
#[tokio::test]
async fn a_killed_nodes_presence_expires() {
    let redis = TestRedis::start().await;
    let a = node(&redis).await;
    let mut ann = V1::connect(&a, "/chat", &[]).await;
    ann.join("chat/k").await;
    let dir = tempfile::tempdir().unwrap();
    let url = redis.url();
    let (mut child, addr, _) = common::spawn_binary(
        &["--scripts", common::repo_scripts().to_str().unwrap()],
        &[
            ("ROOMCAST_CLUSTER__REDIS_URL", url.as_str()),
            ("ROOMCAST_CLUSTER__PRESENCE_TTL", "2s"),
        ],
        dir.path(),
    )
    .await;
    let req = common::request(
        &format!("ws://{addr}/chat"),
        &[("sec-websocket-protocol", "roomcast.v1")],
    );
    let mut ghost = V1 {
        ws: common::Ws::connect_with(req).await,
    };
    ghost.join("chat/k").await;
    let came = ann.until("join").await;
    let nick = came["member"]["nick"].clone();
    child.kill().await.unwrap();
    let started = tokio::time::Instant::now();
    // The ghost's entry expires (2 s) and a's next refresh sweeps it (a
    // third of a's own 3 s TTL): the room hears it left.
    let left = tokio::time::timeout(Duration::from_secs(10), ann.until("leave"))
        .await
        .expect("the dead node's member leaves within its TTL and a refresh");
    assert_eq!(left["member"]["nick"], nick, "{left}");
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "not before its TTL"
    );
    ann.send(j!({"type": "presence", "room": "chat/k", "id": 1}))
        .await;
    let presence = ann.until("presence").await;
    assert_eq!(
        presence["members"].as_array().unwrap().len(),
        1,
        "{presence}"
    );
    a.stop().await;
}

/// Bytes of length-prefixed `b`, as nodes write strings to Redis.
fn lp(b: &[u8]) -> Vec<u8> {
    let mut v = (b.len() as u32).to_le_bytes().to_vec();
    v.extend(b);
    v
}

/// An author as nodes write it: no connection id, `nick`, no user.
fn author(nick: &str) -> Vec<u8> {
    let mut v = vec![0];
    v.extend(lp(nick.as_bytes()));
    v.push(0);
    v
}

/// A text payload as nodes write it.
fn text(t: &[u8]) -> Vec<u8> {
    let mut v = vec![0];
    v.extend(lp(t));
    v
}

/// A publication body as nodes write it (the crate's codec is private):
/// time, author, no except, payload.
fn forged_body(nick: &str, t: &[u8]) -> Vec<u8> {
    let mut b = 0u64.to_le_bytes().to_vec();
    b.extend(author(nick));
    b.push(0);
    b.extend(text(t));
    b
}

/// Well-formed but not to be believed, written to Redis by one bad writer:
/// a publication at offset 2^64-1 (the room would go silent), one at the
/// next offset (the next real message would vanish), 5 MB payloads, a
/// disconnect with close code 1005, presence with 2^64-1 connections. Each
/// is refused and counted; the room, its members and presence carry on.
#[tokio::test]
async fn forged_messages_from_redis_are_refused_and_the_room_goes_on() {
    let redis = TestRedis::start().await;
    let a = node(&redis).await;
    let mut ann = V1::connect(&a, "/chat", &[]).await;
    ann.join("chat/lobby").await;
    let say =
        |text: &str, id: u64| j!({"type": "publish", "room": "chat/lobby", "data": text, "id": id});
    ann.send(say("one", 1)).await;
    let one = until_data(&mut ann, json("message", "user1:one")).await;
    let offset = one["offset"].as_u64().unwrap();
    let epoch = redis.query(&["HGET", "roomcast:{chat/lobby}:m", "e"]).await;
    assert!(!epoch.is_empty(), "the room's stream has an epoch");
    let channel = "roomcast:{chat/lobby}:c";
    let publication = |at: u64, text: &[u8]| {
        let mut msg = format!("p{epoch}\n{at}\n").into_bytes();
        msg.extend(forged_body("mallory", text));
        msg
    };

    // Far ahead: checked against the stream, which never had it.
    let far = publication(u64::MAX, b"from the far future");
    assert_eq!(redis.query_with(&["PUBLISH", channel], &far).await, "1");
    assert_eq!(
        a.wait_metric("roomcast_broker_refused_total{what=\"offset\"}", 1.0)
            .await,
        1.0
    );
    ann.send(say("two", 2)).await;
    let two = until_data(&mut ann, json("message", "user1:two")).await;
    assert_eq!(
        two["offset"].as_u64(),
        Some(offset + 1),
        "the room is not silent"
    );

    // The next offset, before the real message: the real one still comes.
    let next = publication(offset + 2, b"\"forged\"");
    assert_eq!(redis.query_with(&["PUBLISH", channel], &next).await, "1");
    let forged = ann.until("message").await;
    assert_eq!(forged["offset"].as_u64(), Some(offset + 2), "{forged}");
    ann.send(say("three", 3)).await;
    let three = until_data(&mut ann, json("message", "user1:three")).await;
    assert_eq!(three["offset"].as_u64(), Some(offset + 2));
    assert_eq!(
        a.wait_metric("roomcast_broker_refused_total{what=\"offset\"}", 2.0)
            .await,
        2.0
    );

    // 5 MB on the room channel and as a direct message.
    let huge = vec![b'x'; 5 << 20];
    let big = publication(offset + 3, &huge);
    assert_eq!(redis.query_with(&["PUBLISH", channel], &big).await, "1");
    // `d`, origin node, target (a user), author, payload.
    let mut direct = vec![b'd'];
    direct.extend(999u64.to_le_bytes());
    direct.push(1);
    direct.extend(lp(b"anna"));
    direct.extend(author("mallory"));
    direct.extend(text(&huge));
    assert_eq!(
        redis
            .query_with(&["PUBLISH", "roomcast:nodes"], &direct)
            .await,
        "1"
    );
    assert_eq!(
        a.wait_metric("roomcast_broker_refused_total{what=\"size\"}", 2.0)
            .await,
        2.0
    );

    // A disconnect with a code no server may close with.
    // `x`, origin node, request, target (a connection), code, reason.
    let mut disconnect = vec![b'x'];
    disconnect.extend(999u64.to_le_bytes());
    disconnect.extend(7u64.to_le_bytes());
    disconnect.push(0);
    disconnect.extend(1u64.to_le_bytes());
    disconnect.extend(1005u64.to_le_bytes());
    disconnect.extend(lp(b""));
    assert_eq!(
        redis
            .query_with(&["PUBLISH", "roomcast:nodes"], &disconnect)
            .await,
        "1"
    );
    assert_eq!(
        a.wait_metric("roomcast_broker_refused_total{what=\"close_code\"}", 1.0)
            .await,
        1.0
    );

    // Presence: an entry and an announcement with 2^64-1 connections.
    // Node, user, nick, connections.
    let mut member = 999u64.to_le_bytes().to_vec();
    member.push(1);
    member.extend(lp(b"eve"));
    member.extend(lp(b"eve"));
    member.extend(u64::MAX.to_le_bytes());
    let presence = "roomcast:{chat/lobby}:p";
    assert_eq!(
        redis
            .query_with(&["HSET", presence, "999:ueve"], &member)
            .await,
        "1"
    );
    let mut joined = vec![b'j'];
    joined.extend(&member);
    assert_eq!(redis.query_with(&["PUBLISH", channel], &joined).await, "1");
    ann.send(j!({"type": "presence", "room": "chat/lobby", "id": 4}))
        .await;
    let shown = ann.until("presence").await;
    let members = shown["members"].as_array().unwrap();
    assert_eq!(members.len(), 1, "only ann: {shown}");
    assert_eq!(
        a.wait_metric("roomcast_broker_refused_total{what=\"presence\"}", 2.0)
            .await,
        2.0
    );

    // Through all of it ann is still connected and the room still works.
    ann.send(say("four", 5)).await;
    let four = until_data(&mut ann, json("message", "user1:four")).await;
    assert_eq!(four["offset"].as_u64(), Some(offset + 3));
    a.stop().await;
}

/// A roomcast.v1 publisher hears its own message before its ack, on a
/// cluster node as on a single node (documented in docs/protocol.md).
#[tokio::test]
async fn a_publisher_hears_its_message_before_its_ack_on_every_node() {
    let redis = TestRedis::start().await;
    let single = TestServer::start_default().await;
    let clustered = node(&redis).await;
    for srv in [&single, &clustered] {
        let mut ann = V1::connect(srv, "/chat", &[]).await;
        ann.join("chat/order").await;
        for i in 0..20 {
            ann.send(j!({"type": "publish", "room": "chat/order", "data": i, "id": i}))
                .await;
            let mut seen_message = false;
            loop {
                let ev = ann.recv().await;
                match ev["type"].as_str() {
                    Some("message") if ev["data"]["data"] == format!("user1:{i}") => {
                        seen_message = true
                    }
                    Some("ack") => {
                        assert_eq!(ev["id"], i);
                        assert!(seen_message, "ack {i} before its message ({})", srv.addr);
                        break;
                    }
                    _ => {}
                }
            }
        }
    }
    single.stop().await;
    clustered.stop().await;
}

/// Whatever else writes to roomcast's channels in Redis (another program,
/// an older version, a bug) is counted and ignored: the room carries on.
#[tokio::test]
async fn garbage_on_the_channels_is_counted_and_ignored() {
    let redis = TestRedis::start().await;
    let a = node(&redis).await;
    let mut ann = V1::connect(&a, "/chat", &[]).await;
    ann.join("chat/lobby").await;
    for (channel, junk) in [
        ("roomcast:{chat/lobby}:c", "not a publication"),
        ("roomcast:{chat/lobby}:c", "p1\nnot-a-number\n{}"),
        ("roomcast:{chat/lobby}:c", ""),
        ("roomcast:nodes", "\u{1}junk"),
    ] {
        // Heard by the one node subscribed: the junk did reach it.
        assert_eq!(redis.query(&["PUBLISH", channel, junk]).await, "1");
    }
    assert_eq!(
        a.wait_metric("roomcast_broker_errors_total{op=\"decode\"}", 4.0)
            .await,
        4.0
    );
    ann.send(j!({"type": "publish", "room": "chat/lobby", "data": "still fine", "id": "m"}))
        .await;
    let m = until_data(&mut ann, json("message", "user1:still fine")).await;
    assert!(m["offset"].as_u64().is_some(), "stored: {m}");
    assert_eq!(ann.until("ack").await["id"], "m");
    assert_eq!(a.metric("roomcast_broker_up").await, 1.0);
    a.stop().await;
}
