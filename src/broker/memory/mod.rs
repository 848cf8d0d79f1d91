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

mod stream;
mod streams;
#[cfg(test)]
mod tests;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::DashMap;
use prometheus::IntGauge;

use super::{Broker, BrokerError, Draft, Events, History, Recovery, Reply, Resume};
use crate::config::Config;
use crate::hub::Target;
use crate::ids::ConnId;
use crate::payload::Payload;
use crate::wire::{Author, Change, Position, PresenceMember, Publication};

use stream::{cost, lock, now_ms};
use streams::Streams;

/// Everything in memory: the default broker, and the only one a single node needs.
pub struct MemoryBroker {
    /// Where what it delivers goes (this node's hub).
    events: Arc<dyn Events>,
    streams: Streams,
    seqs: DashMap<Box<str>, u64>,
    /// Kept socket.io sessions: the record, and when its time is up.
    sessions: DashMap<Box<str>, (Vec<u8>, Instant)>,
    sessions_kept: AtomicUsize,
    max_sessions: usize,
}

/// Sessions kept at most per connection the server may hold (each record
/// a few hundred bytes: a live session's, or one that dropped within the
/// recovery window); past it, none is kept until some expire.
const SESSIONS_PER_CONNECTION: usize = 4;

impl MemoryBroker {
    /// A broker delivering to `events` (this node's hub), with `config`'s
    /// room policies and history bound, reporting kept bytes on `kept_gauge`.
    pub fn new(events: Arc<dyn Events>, config: &Config, kept_gauge: IntGauge) -> MemoryBroker {
        MemoryBroker {
            events,
            streams: Streams::new(config, kept_gauge),
            seqs: DashMap::new(),
            sessions: DashMap::new(),
            sessions_kept: AtomicUsize::new(0),
            max_sessions: (config.limits.max_connections * SESSIONS_PER_CONNECTION).max(1024),
        }
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
        let offset = self.streams.with_stream(room, |st| {
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
                )
                .in_epoch(st.epoch.clone());
                let added = cost(&p);
                st.bytes += added;
                st.history.push_back(Arc::new(p));
                kept = (added, st.prune());
            }
            st.idle_since = Instant::now();
            let p = Arc::new(
                Publication::new(room.clone(), offset, time, from, payload, except)
                    .in_epoch(st.epoch.clone()),
            );
            // Under the stream's lock: members get a room's messages in offset order.
            self.events.publication(&p);
            offset
        });
        if kept != (0, 0) {
            self.streams.kept(kept.0, kept.1);
        }
        Reply::Ready(Ok(offset))
    }

    fn joined(&self, room: &Arc<str>, member: &PresenceMember, _conn: ConnId, first_here: bool) {
        let presence = self.streams.with_stream(room, |st| {
            st.members += 1;
            st.policy.presence
        });
        if first_here && presence {
            self.events.presence_change(room, Change::Join, member);
        }
    }

    fn left(&self, room: &Arc<str>, member: &PresenceMember, _conn: ConnId, last_here: bool) {
        let (presence, empty) = self.streams.with_stream(room, |st| {
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
            self.streams.map.remove_if(room, |_, s| {
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
        let recovery = self.streams.with_stream(room, |st| {
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
        self.streams.kept(0, freed);
        Reply::Ready(Ok(recovery))
    }

    fn history(
        &self,
        room: &str,
        since: Option<u64>,
        limit: usize,
    ) -> Reply<Result<Option<History>, BrokerError>> {
        let Some(stream) = self.streams.map.get(room).map(|s| s.value().clone()) else {
            return Reply::Ready(Ok(None));
        };
        let mut st = lock(&stream);
        if st.expired() || st.retired {
            return Reply::Ready(Ok(None));
        }
        let freed = st.prune();
        self.streams.kept(0, freed);
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

    fn keep_session(&self, key: &str, record: Vec<u8>, ttl: Duration) -> Reply<bool> {
        let now = Instant::now();
        // Now and then (and when full), those whose time is up go.
        let kept = self.sessions_kept.fetch_add(1, Ordering::Relaxed);
        if kept % 1024 == 1023 || self.sessions.len() >= self.max_sessions {
            self.sessions.retain(|_, (_, until)| *until > now);
            if self.sessions.len() >= self.max_sessions {
                return Reply::Ready(false);
            }
        }
        self.sessions.insert(key.into(), (record, now + ttl));
        Reply::Ready(true)
    }

    fn take_session(&self, key: &str) -> Reply<Result<Option<Vec<u8>>, BrokerError>> {
        let taken = self.sessions.remove(key).map(|(_, kept)| kept);
        let now = Instant::now();
        Reply::Ready(Ok(taken.and_then(|(r, until)| (until > now).then_some(r))))
    }
}
