//! A room whose history is lost while members are in it is told (the case
//! seen: a Redis that came back empty, so offsets start from 1 again): each
//! roomcast.v1 member gets one `reset` event with the new epoch before the
//! first message of the new life, then that life's messages from offset 1,
//! in order, once — on the publisher's node and on another one; a socket.io
//! member gets a `reset` event with the new epoch, its offset the new
//! life's start, before the new life's messages (each with its offset).
//!
//! Needs `redis-server` (Debian package): tests/run.sh installs it.

mod common;

use std::collections::VecDeque;

use common::eio::Eio;
use common::redis::TestRedis;
use common::{json, TestServer, V1};
use serde_json::{json as j, Value};

async fn node(redis: &TestRedis) -> TestServer {
    let mut c = common::test_config();
    c.cluster.redis_url = redis.url();
    TestServer::start(c).await
}

/// A v1 member, with the events a publish of its own read past.
struct Member {
    v1: V1,
    backlog: VecDeque<Value>,
}

impl Member {
    async fn next(&mut self) -> Value {
        match self.backlog.pop_front() {
            Some(ev) => ev,
            None => self.v1.recv().await,
        }
    }
}

/// A v1 member of `room` called `nick`, and its `joined` event.
async fn member(srv: &TestServer, nick: &str, room: &str) -> (Member, Value) {
    let mut v1 = V1::connect(srv, "/chat", &[]).await;
    v1.send(j!({"type": "nick", "nick": nick})).await;
    v1.expect("nick").await;
    let joined = v1.join(room).await;
    let m = Member {
        v1,
        backlog: VecDeque::new(),
    };
    (m, joined)
}

/// Publish `text` until the room takes it into its stream (right after
/// Redis came back a node may still find it unreachable: `not_stored`);
/// its offset. Other events are kept for later.
async fn publish_stored(m: &mut Member, room: &str, text: &str) -> u64 {
    for attempt in 0..50 {
        m.v1.send(j!({"type": "publish", "room": room, "data": text, "id": attempt}))
            .await;
        loop {
            let ev = m.v1.recv().await;
            match ev["type"].as_str() {
                Some("ack") if ev["id"] == attempt => return ev["offset"].as_u64().unwrap(),
                Some("error") if ev["code"] == "not_stored" => break,
                Some("error") => panic!("publish refused: {ev}"),
                _ => m.backlog.push_back(ev),
            }
        }
    }
    panic!("Redis never took a publication after it came back");
}

/// What a member sees, up to (and with) the message whose data is
/// `until`: each `message` (with an offset) and `reset`, in order.
async fn seen_until(m: &mut Member, until: &Value) -> Vec<Value> {
    let mut seen = Vec::new();
    loop {
        let ev = m.next().await;
        match ev["type"].as_str() {
            Some("reset") => seen.push(ev),
            // Delivered on its node only while Redis was unreachable: no
            // position, not part of either life.
            Some("message") if ev["offset"].is_null() => {}
            Some("message") => {
                let done = &ev["data"] == until;
                seen.push(ev);
                if done {
                    return seen;
                }
            }
            _ => {}
        }
    }
}

/// A socket.io 4 member (Engine.IO 4 polling) of `room` on `/chat`.
async fn sio_member(srv: &TestServer, room: &str) -> Eio {
    let eio = Eio::handshake(srv.addr, 4).await;
    let name = room.strip_prefix("chat/").unwrap();
    let connect = format!("40/chat,{}", j!({"room": name}));
    assert_eq!(eio.post(&connect).await.0, 200);
    // Its arrival is a message of the room: wait until it is published, so
    // that it is not taken for one of a later life.
    sio_until(&eio, |p| p.contains(" comes in")).await;
    eio
}

/// The socket.io events (`[name, args…]`) `eio` is sent up to the first
/// packet `last` takes, that one included.
async fn sio_until(eio: &Eio, last: impl Fn(&str) -> bool) -> Vec<Value> {
    let mut events = Vec::new();
    let seen = async {
        loop {
            let (status, packets) = eio.packets().await;
            assert_eq!(status, 200);
            for p in packets {
                if let Some(event) = p.strip_prefix("42/chat,") {
                    events.push(serde_json::from_str(event).unwrap());
                }
                if last(&p) {
                    return;
                }
            }
        }
    };
    tokio::time::timeout(common::WAIT, seen)
        .await
        .expect("the packet in time");
    events
}

#[tokio::test]
async fn members_are_told_of_a_reset_before_its_first_message() {
    let mut redis = TestRedis::start().await;
    let (a, b) = (node(&redis).await, node(&redis).await);
    let room = "chat/reset";
    let (mut ann, before) = member(&a, "ann", room).await;
    let (mut bob, _) = member(&b, "bob", room).await;
    let sio = sio_member(&b, room).await;
    let old = before["epoch"].clone();
    let first = publish_stored(&mut ann, room, "one").await;
    sio_until(&sio, |p| p.contains("ann:one")).await;
    for v1 in [&mut ann, &mut bob] {
        let seen = seen_until(v1, &json("message", "ann:one")).await;
        assert_eq!(seen.last().unwrap()["offset"], first, "{seen:?}");
    }

    redis.kill().await;
    assert_eq!(a.wait_metric("roomcast_broker_up", 0.0).await, 0.0);
    assert_eq!(b.wait_metric("roomcast_broker_up", 0.0).await, 0.0);
    redis.restart().await;
    assert_eq!(a.wait_metric("roomcast_broker_up", 1.0).await, 1.0);
    assert_eq!(b.wait_metric("roomcast_broker_up", 1.0).await, 1.0);

    // The room's stream is gone: the next stored message begins a new life.
    assert_eq!(publish_stored(&mut ann, room, "two").await, 1);
    assert_eq!(publish_stored(&mut ann, room, "three").await, 2);
    let mut epochs = Vec::new();
    for (who, v1) in [("ann", &mut ann), ("bob", &mut bob)] {
        let seen = seen_until(v1, &json("message", "ann:three")).await;
        let types: Vec<&str> = seen.iter().map(|e| e["type"].as_str().unwrap()).collect();
        assert_eq!(types, ["reset", "message", "message"], "{who}: {seen:?}");
        let reset = &seen[0];
        assert_eq!(
            (&reset["room"], &reset["offset"]),
            (&j!(room), &j!(0)),
            "{who}: {reset}"
        );
        assert_ne!(reset["epoch"], old, "{who}: a new epoch");
        assert_eq!(
            (&seen[1]["offset"], &seen[1]["data"]),
            (&j!(1), &json("message", "ann:two"))
        );
        assert_eq!(seen[2]["offset"], 2, "{who}");
        epochs.push(reset["epoch"].clone());
    }
    assert_eq!(epochs[0], epochs[1], "one new life on both nodes");
    let seen = sio_until(&sio, |p| p.contains("ann:three")).await;
    let new = epochs[0].as_str().unwrap();
    let tag = |offset: u64| format!("{offset}:{new}:{room}");
    assert_eq!(
        seen,
        [
            j!(["reset", {"room": room, "epoch": new}, tag(0)]),
            j!(["message", "ann:two", tag(1)]),
            j!(["message", "ann:three", tag(2)]),
        ],
        "the socket.io member"
    );
    // A member who joins now is in that life.
    let (_carol, joined) = member(&b, "carol", room).await;
    assert_eq!((&joined["epoch"], &joined["offset"]), (&epochs[0], &j!(2)));
    for node in [&a, &b] {
        assert_eq!(node.metric("roomcast_room_resets_total").await, 1.0);
    }
    a.stop().await;
    b.stop().await;
}
