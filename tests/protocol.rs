//! The roomcast.v1 protocol: every command and event, the error paths, resume,
//! presence, acks and policies; raw clients in the same rooms are unaffected.

mod common;

use common::{config_with_route, json, temp_scripts, TestServer, V1};
use serde_json::{json as j, Value};

async fn server() -> TestServer {
    let mut c = common::test_config();
    c.limits.rate.messages_per_second = 0;
    TestServer::start(c).await
}

/// A config with a `quiet` route: the chat script without enter/leave lines,
/// for tests of the protocol's mechanics (offsets, presence, resume) where the
/// chat script's announcements would only add noise.
fn quiet_config() -> (roomcast::config::Config, tempfile::TempDir) {
    let dir = temp_scripts();
    std::fs::write(
        dir.path().join("quiet.rhai"),
        "fn on_message(conn, text) {\n    conn.broadcast(#{ type: \"message\", data: `${conn.nick}:${text}` });\n}\n",
    )
    .unwrap();
    let mut c = config_with_route(dir.path(), "quiet");
    c.limits.rate.messages_per_second = 0;
    (c, dir)
}

/// Without the subprotocol a client is raw; with it, v1 is negotiated.
#[tokio::test]
async fn subprotocol_selects_v1_and_raw_stays_raw() {
    let srv = server().await;
    let mut raw = srv.connect("/chat").await;
    assert_eq!(raw.recv_json().await, json("enter", "user1 comes in"));
    let mut v1 = V1::connect(&srv, "/chat", &[]).await;
    // Without a nick, the command asks for the current one: the seed's userN.
    v1.send(j!({"type": "nick", "id": 0})).await;
    assert_eq!(
        v1.expect("nick").await,
        j!({"type": "nick", "nick": "user2", "id": 0})
    );
    // A v1 client is in no room until it joins: the raw room hears nothing.
    v1.send(j!({"type": "nick", "nick": "ann", "id": 1})).await;
    assert_eq!(
        v1.expect("nick").await,
        j!({"type": "nick", "nick": "ann", "id": 1})
    );
    srv.stop().await;
}

/// join → joined; publish → message (to everyone, sender included) and ack;
/// raw clients in the same room get the script's plain JSON.
#[tokio::test]
async fn join_publish_and_ack_alongside_raw_clients() {
    let srv = server().await;
    let mut raw = srv.connect("/chat").await; // user1, room chat/lobby
    raw.recv_json().await;
    let mut v1 = V1::connect(&srv, "/chat", &[]).await; // user2
    let joined = v1.join("chat/lobby").await;
    assert_eq!(joined["room"], "chat/lobby");
    assert_eq!(joined["offset"], 1, "the raw client's enter was message 1");
    assert_eq!(joined["resumed"], false);
    assert!(joined["epoch"].is_string());
    // The chat script announces the newcomer to the room, itself included.
    let enter = v1.expect("message").await;
    assert_eq!(
        (enter["offset"].as_u64(), &enter["data"]),
        (Some(2), &json("enter", "user2 comes in"))
    );
    assert_eq!(raw.recv_json().await, json("enter", "user2 comes in"));
    v1.send(j!({"type": "presence", "room": "chat/lobby"}))
        .await;
    let members = v1.expect("presence").await["members"].clone();
    assert_eq!(members.as_array().unwrap().len(), 2, "{members}");
    assert!(members
        .as_array()
        .unwrap()
        .contains(&j!({"user": null, "nick": "user2", "conns": 1})));

    v1.send(j!({"type": "publish", "room": "chat/lobby", "data": "hello", "id": "m1"}))
        .await;
    let msg = v1.expect("message").await;
    assert_eq!(msg["room"], "chat/lobby");
    assert_eq!(msg["offset"], 3);
    // Connection ids are read from events, never assumed.
    let v1_id = msg["from"]["conn"].clone();
    assert!(v1_id.is_u64(), "{msg}");
    assert_eq!(
        msg["from"],
        j!({"conn": v1_id, "nick": "user2", "user": null})
    );
    assert_eq!(
        enter["from"]["conn"], v1_id,
        "its announcement came from it too"
    );
    assert_eq!(msg["data"], json("message", "user2:hello"));
    assert!(msg["time"].as_u64().unwrap() > 1_700_000_000_000);
    assert_eq!(
        v1.expect("ack").await,
        j!({"type": "ack", "id": "m1", "room": "chat/lobby", "offset": 3})
    );
    // The raw client sees exactly the seed's frame.
    assert_eq!(raw.recv_json().await, json("message", "user2:hello"));

    // And the raw client's messages reach the v1 client as message events.
    raw.send_text("hi from raw").await;
    assert_eq!(raw.recv_json().await, json("message", "user1:hi from raw"));
    let msg = v1.expect("message").await;
    assert_eq!(msg["data"], json("message", "user1:hi from raw"));
    assert_eq!(msg["offset"], 4);
    assert!(msg["from"]["conn"].is_u64(), "{msg}");
    assert_ne!(msg["from"]["conn"], v1_id, "each connection has its own id");

    v1.send(j!({"type": "leave", "room": "chat/lobby", "id": 9}))
        .await;
    assert_eq!(
        v1.expect("left").await,
        j!({"type": "left", "room": "chat/lobby", "id": 9})
    );
    // The raw member hears the v1 member go, as the seed's page shows it.
    assert_eq!(raw.recv_json().await, json("leave", "user2 left"));
    srv.stop().await;
}

/// Malformed or impossible commands get an error event (with the command's
/// id when it had one) and the connection stays open.
#[tokio::test]
async fn bad_commands_get_errors_and_the_connection_stays() {
    let srv = server().await;
    let mut v1 = V1::connect(&srv, "/chat", &[]).await;
    let cases: Vec<(Value, &str)> = vec![
        (j!("not an object"), "bad_json"),
        (j!({"type": "dance", "id": 1}), "bad_command"),
        (
            j!({"type": "publish", "room": "chat/lobby", "id": 2}),
            "bad_command",
        ),
        (
            j!({"type": "join", "room": "no-slash", "id": 3}),
            "bad_room",
        ),
        (
            j!({"type": "join", "room": "nosuchroute/x", "id": 4}),
            "bad_room",
        ),
        (
            j!({"type": "publish", "room": "chat/lobby", "data": 1, "id": 5}),
            "not_member",
        ),
        (
            j!({"type": "leave", "room": "chat/lobby", "id": 6}),
            "not_member",
        ),
        (
            j!({"type": "presence", "room": "chat/lobby", "id": 7}),
            "not_member",
        ),
        (
            j!({"type": "history", "room": "chat/lobby", "id": 8}),
            "not_member",
        ),
        (j!({"type": "nick", "nick": "", "id": 9}), "bad_nick"),
        // The HTTP API's messages come from `server`: nobody may pass for it.
        (j!({"type": "nick", "nick": "Server", "id": 9}), "bad_nick"),
    ];
    for (cmd, code) in &cases {
        v1.ws.send_text(&cmd.to_string()).await;
        let err = v1.expect("error").await;
        assert_eq!(err["code"], *code, "{cmd}: {err}");
        assert!(err["reason"].as_str().is_some_and(|r| !r.is_empty()));
        assert_eq!(err.get("id"), cmd.get("id"), "{cmd}: {err}");
    }
    v1.ws.send_text("{not json").await;
    assert_eq!(v1.expect("error").await["code"], "bad_json");
    assert_eq!(
        srv.metric("roomcast_bad_commands_total").await,
        4.0,
        "unparsable ones"
    );
    v1.join("chat/lobby").await;
    v1.send(j!({"type": "join", "room": "chat/lobby", "id": 10}))
        .await;
    assert_eq!(v1.until("error").await["code"], "already_joined");
    srv.stop().await;
}

/// A connection can be in many rooms, up to the configured cap.
#[tokio::test]
async fn many_rooms_per_connection_up_to_the_cap() {
    let (mut c, _dir) = quiet_config();
    c.limits.max_rooms_per_connection = 2;
    let srv = TestServer::start(c).await;
    let mut v1 = V1::connect(&srv, "/quiet", &[]).await;
    v1.join("quiet/a").await;
    v1.join("quiet/b").await;
    v1.send(j!({"type": "join", "room": "quiet/c", "id": 1}))
        .await;
    assert_eq!(v1.until("error").await["code"], "too_many_rooms");
    // Messages are tagged with their room.
    v1.send(j!({"type": "publish", "room": "quiet/b", "data": "in b"}))
        .await;
    let msg = v1.until("message").await;
    assert_eq!(
        (msg["room"].as_str(), msg["offset"].as_u64()),
        (Some("quiet/b"), Some(1))
    );
    srv.stop().await;
}

mod tokens {
    use jsonwebtoken::{encode, EncodingKey, Header};

    pub const SECRET: &str = "protocol-test-secret";

    pub fn token(sub: &str) -> String {
        encode(
            &Header::default(),
            &serde_json::json!({"sub": sub}),
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap()
    }
}

/// One user with two connections appears once in presence, with a count;
/// `join` on the first connection only, `leave` after the last.
#[tokio::test]
async fn presence_counts_a_user_once() {
    let (mut c, _dir) = quiet_config();
    c.auth.hs256_secret = Some(tokens::SECRET.into());
    let srv = TestServer::start(c).await;
    let mut watcher = V1::connect(&srv, "/quiet", &[]).await;
    watcher.join("quiet/p").await; // (its own `join` came before `joined`)
    let ann = tokens::token("ann");
    let mut a1 = V1::connect(&srv, &format!("/quiet?token={ann}"), &[]).await;
    a1.join("quiet/p").await;
    assert_eq!(watcher.expect("join").await["member"]["user"], "ann");
    let mut a2 = V1::connect(&srv, &format!("/quiet?token={ann}"), &[]).await;
    a2.join("quiet/p").await;

    watcher
        .send(j!({"type": "presence", "room": "quiet/p", "id": "p"}))
        .await;
    let presence = watcher.expect("presence").await;
    let members = presence["members"].as_array().unwrap();
    assert_eq!(members.len(), 2, "{presence}");
    let ann_entry = members.iter().find(|m| m["user"] == "ann").unwrap();
    assert_eq!(ann_entry["conns"], 2);

    a1.ws.close().await;
    // Still one of ann's connections here: no leave yet. Prove it by asking again.
    watcher
        .send(j!({"type": "presence", "room": "quiet/p"}))
        .await;
    let presence = watcher.expect("presence").await;
    let ann_entry = presence["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["user"] == "ann")
        .cloned()
        .unwrap();
    assert_eq!(ann_entry["conns"], 1);
    a2.ws.close().await;
    let leave = watcher.expect("leave").await;
    assert_eq!(leave["member"]["user"], "ann");
    srv.stop().await;
}

/// A client that disconnects and comes back with its last offset receives
/// exactly the messages it missed, in order, without duplicates, then live ones.
#[tokio::test]
async fn resume_replays_exactly_the_missed_messages() {
    let (c, _dir) = quiet_config();
    let srv = TestServer::start(c).await;
    let mut publisher = V1::connect(&srv, "/quiet", &[]).await;
    publisher.join("quiet/r").await;
    let mut reader = V1::connect(&srv, "/quiet", &[]).await;
    let joined = reader.join("quiet/r").await;
    let epoch = joined["epoch"].as_str().unwrap().to_string();
    publisher
        .send(j!({"type": "publish", "room": "quiet/r", "data": "one"}))
        .await;
    let seen = reader.until("message").await;
    let last = seen["offset"].as_u64().unwrap();
    reader.ws.close().await;

    for text in ["two", "three", "four"] {
        publisher
            .send(j!({"type": "publish", "room": "quiet/r", "data": text, "id": text}))
            .await;
        publisher.until("ack").await;
    }

    let mut back = V1::connect(&srv, "/quiet", &[]).await;
    back.send(j!({"type": "join", "room": "quiet/r", "since": {"epoch": epoch, "offset": last}}))
        .await;
    let joined = back.until("joined").await;
    assert_eq!(joined["resumed"], true, "{joined}");
    let mut replayed = Vec::new();
    for _ in 0..3 {
        let m = back.until("message").await;
        replayed.push((
            m["offset"].as_u64().unwrap(),
            m["data"]["data"].as_str().unwrap().to_string(),
        ));
    }
    assert_eq!(
        replayed,
        vec![
            (last + 1, "user1:two".to_string()),
            (last + 2, "user1:three".to_string()),
            (last + 3, "user1:four".to_string()),
        ]
    );
    publisher
        .send(j!({"type": "publish", "room": "quiet/r", "data": "live"}))
        .await;
    let live = back.until("message").await;
    assert_eq!(
        live["offset"].as_u64(),
        Some(last + 4),
        "no duplicate, no gap"
    );
    srv.stop().await;
}

/// A lone user who drops and comes back resumes: a client joins a room,
/// publishes, disconnects (the room is empty); another joins and publishes
/// three messages, and leaves; the first comes back with its position and
/// gets exactly what it missed. The room's history (and its epoch) outlives
/// its members.
#[tokio::test]
async fn a_lone_user_who_drops_and_comes_back_resumes() {
    let (c, _dir) = quiet_config();
    let srv = TestServer::start(c).await;
    let mut first = V1::connect(&srv, "/quiet", &[]).await;
    let epoch = first.join("quiet/lone").await["epoch"]
        .as_str()
        .unwrap()
        .to_string();
    first
        .send(j!({"type": "publish", "room": "quiet/lone", "data": "one", "id": 1}))
        .await;
    let last = first.until("ack").await["offset"].as_u64().unwrap();
    first.ws.close().await;
    assert_eq!(
        srv.wait_metric("roomcast_rooms", 0.0).await,
        0.0,
        "nobody is in the room"
    );

    let mut other = V1::connect(&srv, "/quiet", &[]).await;
    assert_eq!(other.join("quiet/lone").await["epoch"], epoch.as_str());
    for text in ["two", "three", "four"] {
        other
            .send(j!({"type": "publish", "room": "quiet/lone", "data": text, "id": text}))
            .await;
        other.until("ack").await;
    }
    other.ws.close().await;

    let mut back = V1::connect(&srv, "/quiet", &[]).await;
    back.send(
        j!({"type": "join", "room": "quiet/lone", "since": {"epoch": epoch, "offset": last}}),
    )
    .await;
    let joined = back.until("joined").await;
    assert_eq!(
        (&joined["resumed"], &joined["epoch"]),
        (&j!(true), &j!(epoch)),
        "{joined}"
    );
    let mut missed = Vec::new();
    for _ in 0..3 {
        let m = back.until("message").await;
        missed.push(m["data"]["data"].as_str().unwrap().to_string());
    }
    assert_eq!(missed, ["user2:two", "user2:three", "user2:four"]);
    srv.stop().await;
}

/// Resuming from another epoch, or from before the history, says so.
#[tokio::test]
async fn resume_from_another_epoch_or_too_far_back_fails_cleanly() {
    let (mut c, _dir) = quiet_config();
    c.rooms.push(roomcast::config::RoomPolicy {
        pattern: "quiet/short".into(),
        history_size: 2,
        ..Default::default()
    });
    let srv = TestServer::start(c).await;
    let mut p = V1::connect(&srv, "/quiet", &[]).await;
    let epoch = p.join("quiet/short").await["epoch"]
        .as_str()
        .unwrap()
        .to_string();
    for i in 0..5 {
        p.send(j!({"type": "publish", "room": "quiet/short", "data": i, "id": i}))
            .await;
        p.until("ack").await;
    }
    let mut c1 = V1::connect(&srv, "/quiet", &[]).await;
    c1.send(j!({"type": "join", "room": "quiet/short", "since": {"epoch": "other", "offset": 1}}))
        .await;
    let err = c1.until("error").await;
    assert_eq!(
        (err["code"].as_str(), err["reason"].as_str()),
        (Some("resume_failed"), Some("epoch changed"))
    );
    assert_eq!(c1.until("joined").await["resumed"], false);

    let mut c2 = V1::connect(&srv, "/quiet", &[]).await;
    c2.send(j!({"type": "join", "room": "quiet/short", "since": {"epoch": epoch, "offset": 1}}))
        .await;
    let err = c2.until("error").await;
    assert_eq!(err["reason"], "position too old");

    // history gives what is kept: the last two.
    c2.until("joined").await;
    c2.send(j!({"type": "history", "room": "quiet/short", "id": "h"}))
        .await;
    let h = c2.until("history").await;
    let offsets: Vec<u64> = h["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["offset"].as_u64().unwrap())
        .collect();
    assert_eq!(offsets, vec![4, 5]);
    assert_eq!(h["epoch"], epoch.as_str());
    c2.send(j!({"type": "history", "room": "quiet/short", "since": 4}))
        .await;
    assert_eq!(
        c2.until("history").await["messages"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    srv.stop().await;
}

/// Publish acks: errors carry the publish's id and a stable code.
#[tokio::test]
async fn ack_errors_carry_the_id_and_a_code() {
    let dir = temp_scripts();
    std::fs::write(
        dir.path().join("mod.rhai"),
        r#"
fn on_message(conn, data) {
    if data == "drop" { conn.drop(); return; }
    if data == "boom" { throw "boom"; }
    if data == "bad" { conn.error("bad_word", "mind your language"); return; }
    if data == "huge" { let s = "x"; s.pad(2000, 'x'); conn.broadcast(s); return; }
    if data == "quiet" { return; }
    conn.broadcast(data);
}
"#,
    )
    .unwrap();
    let mut c = config_with_route(dir.path(), "mod");
    c.limits.rate.messages_per_second = 0;
    c.limits.max_message_size = 1000;
    c.rooms.push(roomcast::config::RoomPolicy {
        pattern: "mod/readonly".into(),
        publish: false,
        ..Default::default()
    });
    let srv = TestServer::start(c).await;
    let mut v1 = V1::connect(&srv, "/mod", &[]).await;
    v1.join("mod/x").await;
    v1.join("mod/readonly").await;
    for (data, room, code) in [
        ("drop", "mod/x", "dropped"),
        ("quiet", "mod/x", "dropped"),
        ("boom", "mod/x", "script_error"),
        ("bad", "mod/x", "bad_word"),
        ("huge", "mod/x", "too_large"),
        ("fine", "mod/readonly", "forbidden"),
        ("fine", "mod/nowhere", "not_member"),
    ] {
        v1.send(j!({"type": "publish", "room": room, "data": data, "id": data}))
            .await;
        let err = v1.until("error").await;
        assert_eq!(
            (err["code"].as_str(), err["id"].as_str()),
            (Some(code), Some(data)),
            "{err}"
        );
    }
    v1.send(j!({"type": "publish", "room": "mod/x", "data": "fine", "id": 7}))
        .await;
    let ack = v1.until("ack").await;
    assert_eq!(
        (ack["id"].as_i64(), ack["offset"].as_u64()),
        (Some(7), Some(1))
    );
    srv.stop().await;
}

/// Over the rate limit, publishes wait instead of being refused: every one
/// is acked, in order; a room policy's own rate holds publishes into its
/// rooms back too.
#[tokio::test]
async fn over_the_rate_publishes_wait_and_are_acked() {
    let mut c = common::test_config();
    c.limits.rate.messages_per_second = 5;
    c.limits.rate.burst = 3; // the join and two publishes
    c.rooms.push(roomcast::config::RoomPolicy {
        pattern: "chat/slow".into(),
        rate: Some(roomcast::config::RateLimit {
            messages_per_second: 10,
            burst: 1,
            ..Default::default()
        }),
        ..Default::default()
    });
    let srv = TestServer::start(c).await;
    let mut v1 = V1::connect(&srv, "/chat", &[]).await;
    v1.join("chat/lobby").await;
    for i in 0..6 {
        v1.send(j!({"type": "publish", "room": "chat/lobby", "data": "x", "id": i}))
            .await;
    }
    for i in 0..6 {
        let ack = v1.until("ack").await;
        assert_eq!(ack["id"].as_i64(), Some(i), "{ack}");
    }
    assert!(srv.metric("roomcast_rate_limit_waits_total").await >= 1.0);
    let waits = srv.metric("roomcast_rate_limit_waits_total").await;

    // A room with its own, tighter rate: 4 publishes, 3 of them wait for it.
    v1.join("chat/slow").await;
    for i in 10..14 {
        v1.send(j!({"type": "publish", "room": "chat/slow", "data": "y", "id": i}))
            .await;
    }
    for i in 10..14 {
        let ack = v1.until("ack").await;
        assert_eq!(ack["id"].as_i64(), Some(i), "{ack}");
    }
    assert!(srv.metric("roomcast_rate_limit_waits_total").await > waits);
    assert_eq!(
        srv.metric("roomcast_messages_dropped_total{reason=\"rate_limited\"}")
            .await,
        0.0
    );
    srv.stop().await;
}

/// A room's member cap: v1 joins get `room_full`, raw upgrades 503,
/// socket.io connects a `connect_error`.
#[tokio::test]
async fn member_cap_refuses_v1_and_raw() {
    let mut c = common::test_config();
    c.rooms.push(roomcast::config::RoomPolicy {
        pattern: "chat/*".into(),
        max_members: 1,
        ..Default::default()
    });
    let srv = TestServer::start(c).await;
    let mut first = srv.connect("/chat/small").await;
    first.recv_json().await;
    let mut v1 = V1::connect(&srv, "/chat", &[]).await;
    v1.send(j!({"type": "join", "room": "chat/small", "id": 1}))
        .await;
    assert_eq!(v1.until("error").await["code"], "room_full");
    let (status, body) = common::refused(common::request(&srv.url("/chat/small"), &[])).await;
    assert_eq!(status, 503);
    assert!(body.contains("full"), "{body}");
    // A socket.io client is refused at its connect, as a raw one at its
    // upgrade (it was admitted, then closed "room is full").
    let sio = common::eio::Eio::handshake(srv.addr, 4).await;
    assert_eq!(sio.post(r#"40/chat,{"room":"small"}"#).await.0, 200);
    let refused = tokio::time::timeout(common::WAIT, async {
        loop {
            let (_, packets) = sio.packets().await;
            if let Some(p) = packets.iter().find(|p| p.starts_with("44/chat,")) {
                return p.clone();
            }
        }
    })
    .await
    .expect("a connect_error");
    assert!(refused.contains("full"), "{refused}");
    assert_eq!(
        srv.metric("roomcast_http_rejections_total{reason=\"room_full\"}")
            .await,
        2.0
    );
    assert_eq!(srv.metric("roomcast_connections").await, 2.0);
    srv.stop().await;
}

/// `nick` renames the connection everywhere: later messages show the new name.
#[tokio::test]
async fn nick_command_renames() {
    let srv = server().await;
    let mut v1 = V1::connect(&srv, "/chat", &[]).await;
    v1.join("chat/n").await;
    v1.send(j!({"type": "nick", "nick": "ann"})).await;
    v1.until("nick").await;
    v1.send(j!({"type": "publish", "room": "chat/n", "data": "hi"}))
        .await;
    let msg = v1.until("message").await;
    assert_eq!(msg["from"]["nick"], "ann");
    assert_eq!(msg["data"], json("message", "ann:hi"));
    v1.send(j!({"type": "presence", "room": "chat/n"})).await;
    assert_eq!(v1.until("presence").await["members"][0]["nick"], "ann");
    srv.stop().await;
}

/// Script API v2: on_join/on_leave, conn.rooms, conn.state, publish to
/// another room, direct messages to a user or a connection, request info.
#[tokio::test]
async fn script_api_v2() {
    let dir = temp_scripts();
    std::fs::write(
        dir.path().join("v2.rhai"),
        r#"
fn on_join(conn, room) {
    conn.broadcast(`${conn.nick} joined ${room} (${conn.rooms.len()} rooms, from ${conn.remote_addr}, lang ${conn.query.lang})`);
}
fn on_leave(conn, room) {
    conn.broadcast(`${conn.nick} left ${room}`);
}
fn on_message(conn, data) {
    let n = conn.get("count");
    if n == () { n = 0; }
    conn.set("count", n + 1);
    if data == "count" { return `count ${n + 1}`; }
    if data.starts_with("to-user ") { conn.send_to_user("bob", data.sub_string(8)); return; }
    if data.starts_with("to-conn ") { conn.send_to_conn(parse_int(data.sub_string(8)), "psst"); return; }
    if data.starts_with("cross ") { conn.publish("v2/b", data.sub_string(6)); return; }
    conn.broadcast(`${conn.room}: ${data}`);
}
"#,
    )
    .unwrap();
    let mut c = config_with_route(dir.path(), "v2");
    c.limits.rate.messages_per_second = 0;
    c.auth.hs256_secret = Some(tokens::SECRET.into());
    let srv = TestServer::start(c).await;
    let bob_token = tokens::token("bob");
    let mut bob = V1::connect(&srv, &format!("/v2?token={bob_token}"), &[]).await;
    bob.join("v2/b").await;
    let bob_joined = bob.until("message").await;
    assert_eq!(
        bob_joined["data"]
            .as_str()
            .map(|s| s.starts_with("user1 joined v2/b")),
        Some(true)
    );
    // Bob's connection id, from the announcement his own hook made.
    let bob_id = bob_joined["from"]["conn"]
        .as_u64()
        .expect("a connection id");
    let mut ann = V1::connect(&srv, "/v2?lang=fr", &[]).await;
    ann.join("v2/a").await;
    let joined_line = ann.until("message").await;
    assert_eq!(
        joined_line["data"],
        "user2 joined v2/a (1 rooms, from 127.0.0.1, lang fr)"
    );
    ann.join("v2/b").await;
    let b_line = bob.until("message").await;
    assert_eq!(
        b_line["data"],
        "user2 joined v2/b (2 rooms, from 127.0.0.1, lang fr)"
    );

    // conn.state persists across calls.
    ann.send(j!({"type": "publish", "room": "v2/a", "data": "count", "id": 1}))
        .await;
    ann.send(j!({"type": "publish", "room": "v2/a", "data": "count", "id": 2}))
        .await;
    let r1 = ann.until("reply").await;
    let r2 = ann.until("reply").await;
    assert_eq!(
        (r1["data"].as_str(), r2["data"].as_str()),
        (Some("count 1"), Some("count 2"))
    );
    assert_eq!(r2["id"], 2);

    // To a user, to a connection, to another room.
    ann.send(j!({"type": "publish", "room": "v2/a", "data": "to-user hello bob"}))
        .await;
    let direct = bob.until("direct").await;
    assert_eq!(direct["data"], "hello bob");
    assert_eq!(direct["from"]["nick"], "user2");
    ann.send(j!({"type": "publish", "room": "v2/a", "data": format!("to-conn {bob_id}")}))
        .await;
    assert_eq!(bob.until("direct").await["data"], "psst");
    ann.send(j!({"type": "publish", "room": "v2/a", "data": "cross over", "id": "c"}))
        .await;
    let crossed = bob.until("message").await;
    assert_eq!(
        (crossed["room"].as_str(), crossed["data"].as_str()),
        (Some("v2/b"), Some("over"))
    );
    assert_eq!(
        ann.until("ack").await["offset"],
        Value::Null,
        "published elsewhere, not in v2/a"
    );

    ann.send(j!({"type": "leave", "room": "v2/b"})).await;
    assert_eq!(bob.until("message").await["data"], "user2 left v2/b");
    srv.stop().await;
}

/// Raw clients keep the seed's behaviour even when rooms have policies and
/// history (the seed protocol never shows offsets or events).
#[tokio::test]
async fn raw_clients_are_unchanged_by_v1_features() {
    let srv = server().await;
    let mut a = srv.connect("/chat").await;
    assert_eq!(a.recv_json().await, json("enter", "user1 comes in"));
    let mut v1 = V1::connect(&srv, "/chat", &[]).await;
    v1.join("chat/lobby").await;
    assert_eq!(a.recv_json().await, json("enter", "user2 comes in"));
    let mut b = srv.connect("/chat").await;
    assert_eq!(b.recv_json().await, json("enter", "user3 comes in"));
    assert_eq!(a.recv_json().await, json("enter", "user3 comes in"));
    b.close().await;
    assert_eq!(a.recv_json().await, json("leave", "user3 left"));
    srv.stop().await;
}
