//! The session core driven with no socket at all: clients are sessions fed
//! messages directly, and what they are sent is read from their outboxes.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use serde_json::{json, Value};
use tokio::sync::oneshot;

use super::{Inbound, Session};
use crate::admission::Admitted;
use crate::broker::{Broker, BrokerError, Draft, History, MemoryBroker, Recovery, Reply};
use crate::config::Config;
use crate::hub::{Hub, Target};
use crate::ids::ConnId;
use crate::metrics::Metrics;
use crate::outbox::{Item, Take};
use crate::payload::Payload;
use crate::script::RequestInfo;
use crate::state::State;
use crate::wire::{frame, v1, Author, Position, PresenceMember, Wire};

fn config() -> Config {
    let mut c = Config::default();
    c.scripts.dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts");
    c.scripts.watch = false;
    c.limits.rate.messages_per_second = 0;
    c
}

fn memory_state() -> Arc<State> {
    Arc::new(State::new(config()).unwrap())
}

fn ready<T>(r: Reply<T>) -> T {
    match r {
        Reply::Ready(v) => v,
        Reply::Later(_) => panic!("expected an answer at once"),
    }
}

/// A client: its session, and what it has been sent.
struct Client {
    session: Session,
}

impl Client {
    /// Connect to `route`, in room `route/room` (joined at once by a raw client).
    fn connect(state: &Arc<State>, route: &str, room: &str, wire: Wire) -> Client {
        let route = state.route(route).unwrap().clone();
        let seq = ready(state.broker.next_seq(&route.name)).unwrap();
        let admitted = Admitted {
            room: format!("{}/{room}", route.name),
            route,
            identity: None,
            request: RequestInfo::default(),
            wire,
            slot: state.caps.take(None).unwrap(),
            offsets: false,
            restore: None,
            deflate: None,
        };
        Client {
            session: Session::open(state.clone(), admitted, seq, Session::new_outbox(state)),
        }
    }

    fn raw(state: &Arc<State>, room: &str) -> Client {
        Client::connect(state, "chat", room, Wire::Raw)
    }

    fn v1(state: &Arc<State>) -> Client {
        Client::connect(state, "chat", "lobby", Wire::V1)
    }

    fn say(&mut self, text: &str) {
        self.session.handle(Inbound::Text {
            text: text.into(),
            id: None,
        });
    }

    fn command(&mut self, cmd: Value) {
        let text = cmd.to_string();
        let command = v1::parse(&text);
        self.session.handle(Inbound::Command {
            command,
            size: text.len(),
        });
    }

    /// Run what the broker answered since the last call.
    fn poll(&mut self) -> bool {
        let mut cx = Context::from_waker(Waker::noop());
        self.session.poll(&mut cx) == Poll::Ready(())
    }

    /// The frames queued for it since the last call.
    fn frames(&self) -> Vec<Bytes> {
        let outbox = self.session.outbox();
        let mut out = Vec::new();
        let mut batch = VecDeque::new();
        while outbox.take(&mut batch) == Take::Frames {
            let bytes = batch.iter().map(Item::len).sum();
            outbox.written(batch.len(), bytes);
            out.extend(batch.drain(..).map(|i| i.parts().0));
        }
        out
    }

    /// The text messages queued for it since the last call, as JSON.
    fn events(&self) -> Vec<Value> {
        self.frames()
            .iter()
            .map(|f| serde_json::from_slice(frame::payload(f)).expect("a JSON frame"))
            .collect()
    }
}

fn seed(type_: &str, data: &str) -> Value {
    json!({"type": type_, "data": data})
}

/// The seed's chat, with no socket: enter lines (the newcomer included),
/// messages to everyone, a leave line when a member goes.
#[test]
fn raw_clients_chat_like_the_seed() {
    let state = memory_state();
    let a = Client::raw(&state, "lobby");
    assert_eq!(a.events(), [seed("enter", "user1 comes in")]);
    let mut b = Client::raw(&state, "lobby");
    assert_eq!(b.events(), [seed("enter", "user2 comes in")]);
    assert_eq!(a.events(), [seed("enter", "user2 comes in")]);
    b.say("hi");
    assert_eq!(a.events(), [seed("message", "user2:hi")]);
    assert_eq!(b.events(), [seed("message", "user2:hi")]);
    drop(b);
    assert_eq!(a.events(), [seed("leave", "user2 left")]);
}

/// A broadcast is encoded once per wire: every raw member gets the same
/// bytes, and a v1 member its one `message` event.
#[test]
fn a_broadcast_is_encoded_once_per_wire() {
    let state = memory_state();
    let mut a = Client::raw(&state, "lobby");
    let b = Client::raw(&state, "lobby");
    let mut v = Client::v1(&state);
    v.command(json!({"type": "join", "room": "chat/lobby"}));
    for c in [&a, &b, &v] {
        c.frames();
    }
    a.say("once");
    let (fa, fb, fv) = (a.frames(), b.frames(), v.frames());
    assert_eq!(
        fa[0].as_ptr(),
        fb[0].as_ptr(),
        "raw members share one buffer"
    );
    let event: Value = serde_json::from_slice(frame::payload(&fv[0])).unwrap();
    assert_eq!(event["data"], seed("message", "user1:once"));
}

/// A v1 join is answered with the room's position before anything published
/// after it; a publish gets its message, then an ack with the same offset.
#[test]
fn a_join_is_answered_first_and_acks_carry_the_offset() {
    let state = memory_state();
    let raw = Client::raw(&state, "lobby");
    let mut v = Client::v1(&state);
    v.command(json!({"type": "join", "room": "chat/lobby", "id": 1}));
    let events = v.events();
    assert_eq!(events[0]["type"], "join", "its own presence first");
    assert_eq!(events[1]["type"], "joined");
    assert_eq!(
        (events[1]["offset"].as_u64(), &events[1]["id"]),
        (Some(1), &json!(1))
    );
    assert_eq!(events[2]["data"], seed("enter", "user2 comes in"));
    assert_eq!(events[2]["offset"], 2);
    v.command(json!({"type": "publish", "room": "chat/lobby", "data": "hey", "id": "p"}));
    let events = v.events();
    assert_eq!(events[0]["offset"], 3);
    assert_eq!(
        events[1],
        json!({"type": "ack", "id": "p", "room": "chat/lobby", "offset": 3})
    );
    assert_eq!(raw.events().last(), Some(&seed("message", "user2:hey")));
}

/// A lone user who drops and comes back resumes: the room's history (and its
/// epoch) outlives its members.
#[test]
fn a_lone_user_who_drops_and_comes_back_resumes() {
    let state = memory_state();
    let mut first = Client::v1(&state);
    first.command(json!({"type": "join", "room": "chat/quiet"}));
    let joined = first
        .events()
        .into_iter()
        .find(|e| e["type"] == "joined")
        .unwrap();
    let epoch = joined["epoch"].as_str().unwrap().to_string();
    first.command(json!({"type": "publish", "room": "chat/quiet", "data": "one", "id": 1}));
    let last = first
        .events()
        .into_iter()
        .find(|e| e["type"] == "ack")
        .unwrap()["offset"]
        .as_u64()
        .unwrap();
    drop(first); // the room is empty now
    assert_eq!(state.hub.len(), 0);
    let mut other = Client::v1(&state);
    other.command(json!({"type": "join", "room": "chat/quiet"}));
    for text in ["two", "three", "four"] {
        other.command(json!({"type": "publish", "room": "chat/quiet", "data": text}));
    }
    drop(other);
    let mut back = Client::v1(&state);
    back.command(json!({"type": "join", "room": "chat/quiet",
        "since": {"epoch": epoch, "offset": last}}));
    let events = back.events();
    let joined = events.iter().find(|e| e["type"] == "joined").unwrap();
    assert_eq!(joined["resumed"], true, "{events:?}");
    assert_eq!(joined["epoch"], epoch.as_str());
    let missed: Vec<&str> = events
        .iter()
        .filter(|e| {
            e["type"] == "message"
                && e["offset"].as_u64().unwrap() <= joined["offset"].as_u64().unwrap()
        })
        .map(|e| e["data"]["data"].as_str().unwrap())
        .collect();
    assert_eq!(
        missed,
        [
            "user1 left",     // its own on_leave, after it had gone
            "user2 comes in", // the other client's on_join
            "user2:two",
            "user2:three",
            "user2:four",
            "user2 left",
        ]
    );
}

/// A broker that answers later: it does what the memory broker does at once
/// (so delivery happens), but holds each publish's ack and, when asked, each
/// join's position until the test lets it go.
struct LaterBroker {
    inner: MemoryBroker,
    acks: Mutex<Vec<oneshot::Sender<()>>>,
    hold_joins: bool,
    joins: Mutex<Vec<oneshot::Sender<()>>>,
}

impl LaterBroker {
    fn release_ack(&self, i: usize) {
        let tx = std::mem::replace(&mut self.acks.lock().unwrap()[i], oneshot::channel().0);
        // Its reply may have been dropped (nobody wanted that ack): fine.
        let _ = tx.send(());
    }

    fn release_join(&self) {
        self.joins.lock().unwrap().remove(0).send(()).unwrap();
    }
}

impl Broker for LaterBroker {
    fn node(&self) -> u16 {
        7
    }
    fn next_seq(&self, route: &str) -> Reply<Result<u64, BrokerError>> {
        self.inner.next_seq(route)
    }
    fn publish(&self, room: &Arc<str>, draft: Draft) -> Reply<Result<u64, BrokerError>> {
        let offset = ready(self.inner.publish(room, draft));
        let (tx, rx) = oneshot::channel();
        self.acks.lock().unwrap().push(tx);
        Reply::Later(Box::pin(async move {
            let _ = rx.await;
            offset
        }))
    }
    fn joined(&self, room: &Arc<str>, member: &PresenceMember, conn: ConnId, first: bool) {
        self.inner.joined(room, member, conn, first)
    }
    fn left(&self, room: &Arc<str>, member: &PresenceMember, conn: ConnId, last: bool) {
        self.inner.left(room, member, conn, last)
    }
    fn recover(
        &self,
        room: &Arc<str>,
        since: Option<&Position>,
    ) -> Reply<Result<Recovery, BrokerError>> {
        let recovery = ready(self.inner.recover(room, since));
        if !self.hold_joins {
            return Reply::Ready(recovery);
        }
        let (tx, rx) = oneshot::channel();
        self.joins.lock().unwrap().push(tx);
        Reply::Later(Box::pin(async move {
            let _ = rx.await;
            recovery
        }))
    }
    fn history(
        &self,
        room: &str,
        since: Option<u64>,
        limit: usize,
    ) -> Reply<Result<Option<History>, BrokerError>> {
        self.inner.history(room, since, limit)
    }
    fn presence(&self, room: &str) -> Reply<Result<Option<Vec<PresenceMember>>, BrokerError>> {
        self.inner.presence(room)
    }
    fn send(&self, target: Target, from: Author, payload: Payload) {
        self.inner.send(target, from, payload)
    }
    fn disconnect(
        &self,
        target: Target,
        code: u16,
        reason: &str,
    ) -> Reply<Result<usize, BrokerError>> {
        self.inner.disconnect(target, code, reason)
    }
    fn keep_session(&self, key: &str, record: Vec<u8>, ttl: std::time::Duration) -> Reply<bool> {
        self.inner.keep_session(key, record, ttl)
    }
    fn take_session(&self, key: &str) -> Reply<Result<Option<Vec<u8>>, BrokerError>> {
        self.inner.take_session(key)
    }
}

fn later_state(hold_joins: bool) -> (Arc<State>, Arc<LaterBroker>) {
    let mut broker = None;
    let state = State::with_broker(
        config(),
        |hub: Arc<Hub>, config: &Config, metrics: &Metrics| {
            let b = Arc::new(LaterBroker {
                inner: MemoryBroker::new(hub, config, metrics.history_bytes.clone()),
                acks: Mutex::new(Vec::new()),
                hold_joins,
                joins: Mutex::new(Vec::new()),
            });
            broker = Some(b.clone());
            b
        },
    )
    .unwrap();
    (Arc::new(state), broker.unwrap())
}

/// Acks that the broker gives later reach the client when it gives them, in
/// the order the publishes came (a later ack waits for an earlier one).
#[test]
fn acks_that_come_later_arrive_in_order() {
    let (state, broker) = later_state(false);
    let mut v = Client::v1(&state);
    assert_eq!(v.session.id() >> 40, 7, "the node's number is in the id");
    v.command(json!({"type": "join", "room": "chat/acks"}));
    v.events();
    broker.release_ack(0); // the on_join announcement's publish: no ack wanted
    v.command(json!({"type": "publish", "room": "chat/acks", "data": "a", "id": 1}));
    v.command(json!({"type": "publish", "room": "chat/acks", "data": "b", "id": 2}));
    let events = v.events();
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["message", "message"], "delivered, not yet stored");
    assert!(v.session.waiting());
    broker.release_ack(2);
    v.poll();
    assert!(v.events().is_empty(), "the second ack waits for the first");
    broker.release_ack(1);
    assert!(v.poll());
    let acks: Vec<(Value, Value)> = v
        .events()
        .into_iter()
        .map(|e| (e["id"].clone(), e["offset"].clone()))
        .collect();
    assert_eq!(acks, [(json!(1), json!(2)), (json!(2), json!(3))]);
    assert!(!v.session.waiting());
}

/// A join whose position comes later holds the session: it takes no message
/// meanwhile (its transport stops reading), and the client is told `joined`
/// before anything published in the room after that.
#[test]
fn a_join_that_waits_for_the_broker_holds_the_session() {
    let (state, broker) = later_state(true);
    let mut raw = Client::raw(&state, "wait");
    broker.release_ack(0); // raw's enter line
    raw.events();
    let mut v = Client::v1(&state);
    v.command(json!({"type": "join", "room": "chat/wait", "id": "j"}));
    assert!(
        !v.session.ready(),
        "no message is taken while the join waits"
    );
    raw.say("meanwhile");
    let early = v.events();
    assert!(
        early.iter().all(|e| e["type"] == "join"),
        "only presence before joined: {early:?}"
    );
    broker.release_join();
    assert!(v.poll());
    assert!(v.session.ready());
    let events = v.events();
    assert_eq!(events[0]["type"], "joined");
    // Its position was taken when it asked: the raw client's enter line.
    assert_eq!(events[0]["offset"], 1);
    // What was published while it waited comes after it, once, in order;
    // then its own on_join announcement.
    assert_eq!(
        (&events[1]["data"], &events[1]["offset"]),
        (&seed("message", "user1:meanwhile"), &json!(2))
    );
    assert_eq!(events[2]["data"], seed("enter", "user2 comes in"));
    assert_eq!(events.len(), 3, "{events:?}");
}
