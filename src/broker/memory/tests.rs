//! The memory broker's own tests (the contract suite is `broker/contract.rs`).

use super::stream::ENTRY_COST;
use super::streams::SWEEP_EVERY;
use super::*;
use crate::config::RoomPolicy;
use crate::hub::{test_handle, Hub, Member};
use crate::metrics::Metrics;
use crate::wire::Wire;
use std::time::Duration;

fn broker(policies: &[RoomPolicy]) -> (Arc<Hub>, MemoryBroker) {
    broker_with(policies, Config::default().limits.history_bytes)
}

fn broker_with(policies: &[RoomPolicy], history_bytes: usize) -> (Arc<Hub>, MemoryBroker) {
    let metrics = Metrics::new();
    let hub = Arc::new(Hub::new(metrics.clone()));
    let mut config = Config {
        rooms: policies.to_vec(),
        ..Config::default()
    };
    config.limits.history_bytes = history_bytes;
    let broker = MemoryBroker::new(hub.clone(), &config, metrics.history_bytes.clone());
    (hub, broker)
}

fn draft(text: &str) -> Draft {
    Draft {
        from: Author::server(),
        payload: Payload::Text(text.into()),
        except: None,
    }
}

fn ready<T>(r: Reply<T>) -> T {
    match r {
        Reply::Ready(v) => v,
        Reply::Later(_) => panic!("the memory broker answers at once"),
    }
}

#[test]
fn offsets_count_up_and_history_keeps_the_latest() {
    let (_, b) = broker(&[RoomPolicy {
        pattern: "*".into(),
        history_size: 2,
        ..RoomPolicy::default()
    }]);
    let room: Arc<str> = "chat/a".into();
    for (i, t) in ["one", "two", "three"].iter().enumerate() {
        assert_eq!(ready(b.publish(&room, draft(t))), Ok(i as u64 + 1));
    }
    let h = ready(b.history("chat/a", None, 10)).unwrap().unwrap();
    let offsets: Vec<u64> = h.publications.iter().map(|p| p.offset).collect();
    assert_eq!(offsets, [2, 3]);
    assert!(matches!(ready(b.history("chat/none", None, 10)), Ok(None)));
}

#[test]
fn the_stream_outlives_its_members() {
    let (hub, b) = broker(&[]);
    let room: Arc<str> = "chat/a".into();
    let h = test_handle(1, Wire::V1, 8);
    let who = PresenceMember {
        user: None,
        nick: "a".into(),
        conns: 1,
    };
    hub.join(
        "chat/a",
        Member::live(h, "a".into()),
        &Arc::new(RoomPolicy::default()),
    )
    .unwrap();
    b.joined(&room, &who, 1, true);
    let first = ready(b.recover(&room, None)).unwrap();
    ready(b.publish(&room, draft("x"))).unwrap();
    b.left(&room, &who, 1, true);
    // Nobody is in the room: its stream (and epoch) is still there.
    let since = Position {
        epoch: first.epoch.to_string(),
        offset: 0,
    };
    let again = ready(b.recover(&room, Some(&since))).unwrap();
    assert_eq!(again.epoch, first.epoch);
    assert_eq!(again.resume, Resume::Resumed);
    assert_eq!(again.missed.len(), 1);
}

#[test]
fn an_idle_stream_expires_and_the_next_has_a_new_epoch() {
    let (_, b) = broker(&[RoomPolicy {
        pattern: "*".into(),
        history_age: Duration::ZERO,
        ..RoomPolicy::default()
    }]);
    let room: Arc<str> = "chat/a".into();
    let first = ready(b.recover(&room, None)).unwrap();
    // An age of zero: idle for any time at all is too long.
    let next = ready(b.recover(&room, None)).unwrap();
    assert_ne!(first.epoch, next.epoch);
    for i in 0..SWEEP_EVERY * 2 {
        ready(b.recover(&format!("chat/r{i}").into(), None)).unwrap();
    }
    ready(b.recover(&"chat/last".into(), None)).unwrap();
    let kept = b.streams.len();
    assert!(
        kept < SWEEP_EVERY as usize * 2,
        "expired streams are swept: {kept} kept"
    );
}

#[test]
fn a_room_that_never_had_a_message_is_forgotten_when_it_empties() {
    let (_, b) = broker(&[]);
    let room: Arc<str> = "chat/a".into();
    let who = PresenceMember {
        user: None,
        nick: "a".into(),
        conns: 1,
    };
    b.joined(&room, &who, 1, true);
    ready(b.recover(&room, None)).unwrap();
    b.left(&room, &who, 1, true);
    assert_eq!(b.streams.len(), 0);
}

#[test]
fn kept_history_is_bounded_and_idle_rooms_go_first() {
    let payload = "x".repeat(1000);
    let (_, b) = broker_with(&[], 20 * (1000 + ENTRY_COST));
    let (busy, idle): (Arc<str>, Arc<str>) = ("chat/busy".into(), "chat/idle".into());
    let who = PresenceMember {
        user: None,
        nick: "a".into(),
        conns: 1,
    };
    b.joined(&busy, &who, 1, true);
    for _ in 0..10 {
        ready(b.publish(&idle, draft(&payload))).unwrap();
    }
    for _ in 0..15 {
        ready(b.publish(&busy, draft(&payload))).unwrap();
    }
    let kept = b.streams.kept_bytes();
    assert!(kept <= 20 * (1000 + ENTRY_COST), "{kept}");
    assert_eq!(b.streams.gauge() as usize, kept);
    assert_eq!(
        ready(b.history("chat/idle", None, 100))
            .unwrap()
            .map(|h| h.publications.len()),
        None,
        "the room nobody is in went first"
    );
    let busy_kept = ready(b.history("chat/busy", None, 100)).unwrap().unwrap();
    assert_eq!(
        busy_kept.publications.len(),
        15,
        "the busy room kept all it had"
    );
    // Past the bound with every room in use: the oldest messages go.
    for _ in 0..20 {
        ready(b.publish(&busy, draft(&payload))).unwrap();
    }
    let h = ready(b.history("chat/busy", None, 100)).unwrap().unwrap();
    assert!(h.publications.len() < 20, "{}", h.publications.len());
    assert_eq!(h.publications.last().unwrap().offset, 35, "the newest stay");
}

#[test]
fn route_numbers_count_per_route() {
    let (_, b) = broker(&[]);
    assert_eq!(ready(b.next_seq("chat")), Ok(1));
    assert_eq!(ready(b.next_seq("chat")), Ok(2));
    assert_eq!(ready(b.next_seq("echo")), Ok(1));
}
