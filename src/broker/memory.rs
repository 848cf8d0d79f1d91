//! The single-node broker: streams, sequence numbers and presence in this
//! process. It runs the same path a cluster does, answering at once.
//!
//! A room's stream (epoch, last offset, kept messages) lives apart from its
//! members: it outlives them by the policy's `history_age`, so a lone user
//! who drops and comes back can still resume. Only a stream that has had no
//! members and no messages for that long is dropped (or, at once, one that
//! never had a message: there is nothing to resume); the next one for the
//! room starts a new epoch (as does every stream after a restart).
//!
//! Kept history is bounded in bytes across rooms (`limits.history_bytes`):
//! past the bound, the streams of rooms nobody is in go first (longest idle
//! first), then the oldest messages of the others. A client whose position
//! was in dropped history is told it cannot resume, never given a gap.

use std::collections::hash_map::RandomState;
use std::collections::VecDeque;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use dashmap::DashMap;
use prometheus::IntGauge;

use super::{Broker, BrokerError, Draft, Events, History, Recovery, Reply, Resume};
use crate::config::{Config, Policies, RoomPolicy};
use crate::hub::Target;
use crate::ids::ConnId;
use crate::payload::Payload;
use crate::wire::{Author, Change, Position, PresenceMember, Publication};

/// Streams created between sweeps of expired ones.
const SWEEP_EVERY: u64 = 64;
/// What keeping one message costs beyond its payload (the publication, its
/// room and author handles, the queue slot), for the history bound.
const ENTRY_COST: usize = 256;

/// The bytes a kept publication counts against `limits.history_bytes`.
fn cost(p: &Publication) -> usize {
    p.payload.len() + ENTRY_COST
}

/// One room's stream.
struct Stream {
    epoch: Arc<str>,
    policy: Arc<RoomPolicy>,
    last_offset: u64,
    history: VecDeque<Arc<Publication>>,
    /// What `history` costs (see [`cost`]).
    bytes: usize,
    /// Connections in the room.
    members: usize,
    /// Since the last message or the last member leaving.
    idle_since: Instant,
    /// Replaced by a newer stream: whoever holds it looks again.
    retired: bool,
}

impl Stream {
    fn expired(&self) -> bool {
        self.members == 0 && self.idle_since.elapsed() > self.policy.history_age
    }

    /// Drop what is beyond the size cap or older than the age limit; the
    /// bytes freed.
    fn prune(&mut self) -> usize {
        let max_age = self.policy.history_age.as_millis() as u64;
        let now = now_ms();
        let mut freed = 0;
        while self.history.len() > self.policy.history_size
            || self
                .history
                .front()
                .is_some_and(|p| now.saturating_sub(p.time) > max_age)
        {
            freed += self.pop();
        }
        freed
    }

    /// Drop the oldest kept message; the bytes freed.
    fn pop(&mut self) -> usize {
        let freed = self.history.pop_front().map_or(0, |p| cost(&p));
        self.bytes -= freed;
        freed
    }

    /// Retire the stream: whoever holds it looks again. The bytes freed.
    fn retire(&mut self) -> usize {
        self.retired = true;
        self.history.clear();
        std::mem::take(&mut self.bytes)
    }
}

/// Everything in memory: the default broker, and the only one a single node needs.
pub struct MemoryBroker {
    /// Where what it delivers goes (this node's hub).
    events: Arc<dyn Events>,
    policies: Policies,
    /// This process's life: no stream survives a restart.
    epoch: String,
    serial: AtomicU64,
    /// Streams created, to sweep expired ones every `SWEEP_EVERY`.
    created: AtomicU64,
    streams: DashMap<Arc<str>, Arc<Mutex<Stream>>>,
    seqs: DashMap<Box<str>, u64>,
    /// Bytes of kept history, across streams, and their bound.
    kept: AtomicUsize,
    max_kept: usize,
    /// One thread at a time makes room.
    reclaiming: AtomicBool,
    /// `roomcast_history_bytes`.
    kept_gauge: IntGauge,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn lock(s: &Mutex<Stream>) -> MutexGuard<'_, Stream> {
    s.lock().unwrap_or_else(|e| e.into_inner())
}

impl MemoryBroker {
    /// A broker delivering to `hub`, with `config`'s room policies and
    /// history bound, reporting kept bytes on `kept_gauge`.
    pub fn new(events: Arc<dyn Events>, config: &Config, kept_gauge: IntGauge) -> MemoryBroker {
        // No RNG dependency: the std hasher's random keys make a fine nonce.
        let epoch = format!(
            "{:08x}",
            RandomState::new().hash_one(std::process::id()) as u32
        );
        MemoryBroker {
            events,
            policies: Policies::new(&config.rooms),
            epoch,
            serial: AtomicU64::new(0),
            created: AtomicU64::new(0),
            streams: DashMap::new(),
            seqs: DashMap::new(),
            kept: AtomicUsize::new(0),
            max_kept: config.limits.history_bytes,
            reclaiming: AtomicBool::new(false),
            kept_gauge,
        }
    }

    /// Count `added` bytes more kept, `freed` fewer.
    fn account(&self, added: usize, freed: usize) {
        if added > freed {
            self.kept.fetch_add(added - freed, Ordering::Relaxed);
        } else {
            self.kept.fetch_sub(freed - added, Ordering::Relaxed);
        }
        self.kept_gauge
            .set(i64::try_from(self.kept.load(Ordering::Relaxed)).unwrap_or(i64::MAX));
    }

    fn new_stream(&self, room: &str) -> Arc<Mutex<Stream>> {
        let serial = self.serial.fetch_add(1, Ordering::Relaxed);
        Arc::new(Mutex::new(Stream {
            epoch: format!("{}.{serial}", self.epoch).into(),
            policy: self.policies.for_room(room).clone(),
            last_offset: 0,
            history: VecDeque::new(),
            bytes: 0,
            members: 0,
            idle_since: Instant::now(),
            retired: false,
        }))
    }

    /// `room`'s live stream, created (or renewed, if it expired) as needed,
    /// and locked.
    fn stream(&self, room: &Arc<str>) -> (Arc<Mutex<Stream>>, bool) {
        if let Some(s) = self.streams.get(room) {
            let s = s.value().clone();
            if !lock(&s).expired() {
                return (s, false);
            }
        }
        let mut created = false;
        let stream = {
            let mut entry = self.streams.entry(room.clone()).or_insert_with(|| {
                created = true;
                self.new_stream(room)
            });
            let expired = lock(entry.value()).expired();
            if expired {
                let freed = lock(entry.value()).retire();
                self.account(0, freed);
                *entry.value_mut() = self.new_stream(room);
                created = true;
            }
            entry.value().clone()
        };
        if created && self.created.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1
        {
            self.sweep();
        }
        (stream, created)
    }

    /// Run `f` on `room`'s live stream.
    fn with_stream<R>(&self, room: &Arc<str>, mut f: impl FnMut(&mut Stream) -> R) -> R {
        loop {
            let (s, _) = self.stream(room);
            let mut st = lock(&s);
            if !st.retired {
                return f(&mut st);
            }
        }
    }

    /// Drop the streams that expired (so rooms nobody uses cost nothing).
    fn sweep(&self) {
        let mut freed = 0;
        self.streams.retain(|_, s| {
            let mut st = lock(s);
            if st.expired() {
                freed += st.retire();
                return false;
            }
            true
        });
        self.account(0, freed);
    }

    /// Back under the history bound (to 7/8 of it): streams of rooms nobody
    /// is in first, longest idle first; then the oldest messages anywhere.
    fn reclaim(&self) {
        if self.reclaiming.swap(true, Ordering::AcqRel) {
            return;
        }
        let target = self.max_kept / 8 * 7;
        let over = || self.kept.load(Ordering::Relaxed) > target;
        let mut idle: Vec<(Instant, Arc<str>)> = self
            .streams
            .iter()
            .filter_map(|e| {
                let st = lock(e.value());
                (st.members == 0 && st.bytes > 0).then(|| (st.idle_since, e.key().clone()))
            })
            .collect();
        idle.sort();
        for (_, room) in idle {
            if !over() {
                break;
            }
            let mut freed = 0;
            self.streams.remove_if(&room, |_, s| {
                let mut st = lock(s);
                let idle = st.members == 0;
                if idle {
                    freed = st.retire();
                }
                idle
            });
            self.account(0, freed);
        }
        while over() {
            let oldest = self
                .streams
                .iter()
                .filter_map(|e| {
                    let st = lock(e.value());
                    st.history.front().map(|p| (p.time, e.value().clone()))
                })
                .min_by_key(|(time, _)| *time);
            let Some((_, stream)) = oldest else { break };
            let mut st = lock(&stream);
            let mut freed = 0;
            for _ in 0..st.history.len().div_ceil(4) {
                freed += st.pop();
            }
            drop(st);
            self.account(0, freed);
        }
        self.reclaiming.store(false, Ordering::Release);
    }

    /// Streams kept (for tests).
    #[cfg(test)]
    fn streams(&self) -> usize {
        self.streams.len()
    }
}

impl Broker for MemoryBroker {
    fn node(&self) -> u16 {
        0
    }

    fn next_seq(&self, route: &str) -> Reply<Result<u64, BrokerError>> {
        let mut n = self.seqs.entry(route.into()).or_insert(0);
        *n += 1;
        Reply::Ready(Ok(*n))
    }

    fn publish(&self, room: &Arc<str>, draft: Draft) -> Reply<Result<u64, BrokerError>> {
        let Draft {
            from,
            payload,
            except,
        } = draft;
        let mut message = Some((from, payload));
        let mut kept = (0, 0);
        let offset = self.with_stream(room, |st| {
            let (from, payload) = message.take().expect("published once");
            st.last_offset += 1;
            let (offset, time) = (st.last_offset, now_ms());
            if st.policy.history_size > 0 {
                // The history's own copy (sharing the payload): the bytes
                // encoded for delivery go once every member has them.
                let p = Publication::new(
                    room.clone(),
                    offset,
                    time,
                    from.clone(),
                    payload.clone(),
                    except,
                );
                let added = cost(&p);
                st.bytes += added;
                st.history.push_back(Arc::new(p));
                kept = (added, st.prune());
            }
            st.idle_since = Instant::now();
            let p = Arc::new(Publication::new(
                room.clone(),
                offset,
                time,
                from,
                payload,
                except,
            ));
            // Under the stream's lock: members get a room's messages in offset order.
            self.events.publication(&p);
            offset
        });
        if kept != (0, 0) {
            self.account(kept.0, kept.1);
            if self.kept.load(Ordering::Relaxed) > self.max_kept {
                self.reclaim();
            }
        }
        Reply::Ready(Ok(offset))
    }

    fn joined(&self, room: &Arc<str>, member: &PresenceMember, _conn: ConnId, first_here: bool) {
        let presence = self.with_stream(room, |st| {
            st.members += 1;
            st.policy.presence
        });
        if first_here && presence {
            self.events.presence_change(room, Change::Join, member);
        }
    }

    fn left(&self, room: &Arc<str>, member: &PresenceMember, _conn: ConnId, last_here: bool) {
        let (presence, empty) = self.with_stream(room, |st| {
            st.members = st.members.saturating_sub(1);
            st.idle_since = Instant::now();
            (st.policy.presence, st.members == 0 && st.last_offset == 0)
        });
        if last_here && presence {
            self.events.presence_change(room, Change::Leave, member);
        }
        if empty {
            // Nobody there and nothing ever said: nothing to resume, so no
            // reason to keep it (rooms joined and left cost nothing).
            self.streams.remove_if(room, |_, s| {
                let mut st = lock(s);
                let gone = st.members == 0 && st.last_offset == 0;
                if gone {
                    st.retire();
                }
                gone
            });
        }
    }

    fn recover(
        &self,
        room: &Arc<str>,
        since: Option<&Position>,
    ) -> Reply<Result<Recovery, BrokerError>> {
        let mut freed = 0;
        let recovery = self.with_stream(room, |st| {
            freed = st.prune();
            let resume = match since {
                None => Resume::NotAsked,
                Some(s) if s.epoch != *st.epoch => Resume::Failed("epoch changed"),
                Some(s) if s.offset > st.last_offset => {
                    Resume::Failed("position is ahead of the room")
                }
                Some(s) => {
                    let oldest = st
                        .history
                        .front()
                        .map(|p| p.offset)
                        .unwrap_or(st.last_offset + 1);
                    if s.offset + 1 < oldest {
                        Resume::Failed("position too old")
                    } else {
                        Resume::Resumed
                    }
                }
            };
            let missed = match (&resume, since) {
                (Resume::Resumed, Some(s)) => st
                    .history
                    .iter()
                    .filter(|p| p.offset > s.offset)
                    .cloned()
                    .collect(),
                _ => Vec::new(),
            };
            Recovery {
                epoch: st.epoch.clone(),
                offset: st.last_offset,
                resume,
                missed,
            }
        });
        self.account(0, freed);
        Reply::Ready(Ok(recovery))
    }

    fn history(
        &self,
        room: &str,
        since: Option<u64>,
        limit: usize,
    ) -> Reply<Result<Option<History>, BrokerError>> {
        let Some(stream) = self.streams.get(room).map(|s| s.value().clone()) else {
            return Reply::Ready(Ok(None));
        };
        let mut st = lock(&stream);
        if st.expired() || st.retired {
            return Reply::Ready(Ok(None));
        }
        let freed = st.prune();
        self.account(0, freed);
        let after: Vec<Arc<Publication>> = st
            .history
            .iter()
            .filter(|p| since.is_none_or(|s| p.offset > s))
            .cloned()
            .collect();
        let skip = after.len().saturating_sub(limit);
        Reply::Ready(Ok(Some(History {
            epoch: st.epoch.clone(),
            publications: after.into_iter().skip(skip).collect(),
        })))
    }

    fn presence(&self, room: &str) -> Reply<Result<Option<Vec<PresenceMember>>, BrokerError>> {
        // One node: its hub sees every member.
        Reply::Ready(Ok(self.events.presence_here(room)))
    }

    fn send(&self, target: Target, from: Author, payload: Payload) {
        self.events.direct(&target, &from, &payload);
    }

    fn disconnect(
        &self,
        target: Target,
        code: u16,
        reason: &str,
    ) -> Reply<Result<usize, BrokerError>> {
        Reply::Ready(Ok(self.events.disconnect(&target, code, reason)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
        let kept = b.streams();
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
        assert_eq!(b.streams(), 0);
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
        let kept = b.kept.load(Ordering::Relaxed);
        assert!(kept <= 20 * (1000 + ENTRY_COST), "{kept}");
        assert_eq!(b.kept_gauge.get() as usize, kept);
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
}
