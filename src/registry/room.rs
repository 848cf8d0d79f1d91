//! One room: its members, its history, its presence.
//!
//! Everything that must stay in order happens under the room's one lock:
//! a published message gets the next offset, enters the history and is queued
//! for every member before the next one can be, so every member sees a room's
//! messages in offset order; a joining member is added, has its history replay
//! queued and is announced in one step, so a resume has no gap and no
//! duplicate. The lock is never held across an await, and delivery only
//! queues frames (it never blocks).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde_json::Value;

use super::{deliver, ConnId};
use crate::config::RoomPolicy;
use crate::metrics::Metrics;
use crate::outbox::Outbox;
use crate::payload::Payload;
use crate::protocol::{self, PresenceMember, Since};

/// One connection's membership in a room.
#[derive(Clone)]
pub struct Member {
    /// The connection.
    pub id: ConnId,
    /// Its nickname (what `send_to` addresses).
    pub nick: Arc<str>,
    /// The user id from its token, if any.
    pub user: Option<Arc<str>>,
    /// Where frames for it go.
    pub outbox: Outbox,
    /// Whether it speaks roomcast.v1 (JSON events) rather than raw frames.
    pub v1: bool,
}

impl Member {
    /// Presence groups connections by user; a connection without a user is
    /// its own member.
    fn presence_key(&self) -> PresenceKey<'_> {
        match &self.user {
            Some(u) => PresenceKey::User(u),
            None => PresenceKey::Conn(self.id),
        }
    }
}

#[derive(PartialEq, Eq)]
enum PresenceKey<'a> {
    User(&'a str),
    Conn(ConnId),
}

/// A published message as the history keeps it.
struct Entry {
    offset: u64,
    at: Instant,
    /// The v1 `message` event.
    event: Bytes,
}

struct State {
    members: Vec<Member>,
    history: VecDeque<Entry>,
    last_offset: u64,
}

/// Why a join was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinError {
    /// The room has `max_members` members.
    Full,
}

/// What a resume asked for and got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resume {
    /// No `since` given.
    NotAsked,
    /// Everything after the given offset was replayed.
    Resumed,
    /// Could not resume: the reason.
    Failed(&'static str),
}

/// A room: a name, a policy, members, history.
pub struct Room {
    name: Arc<str>,
    /// Names this life of the room's offsets (see docs/protocol.md).
    epoch: Arc<str>,
    policy: Arc<RoomPolicy>,
    // A Mutex, not a RwLock: publishing writes (offset, history), and the
    // order guarantees above need it held while queueing.
    state: Mutex<State>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Room {
    pub(super) fn new(name: &str, epoch: String, policy: Arc<RoomPolicy>) -> Room {
        Room {
            name: name.into(),
            epoch: epoch.into(),
            policy,
            state: Mutex::new(State {
                members: Vec::new(),
                history: VecDeque::new(),
                last_offset: 0,
            }),
        }
    }

    /// The room's full name (`{route}/{room}`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The room's epoch.
    pub fn epoch(&self) -> &str {
        &self.epoch
    }

    /// The room's policy.
    pub fn policy(&self) -> &RoomPolicy {
        &self.policy
    }

    /// Number of member connections.
    pub fn len(&self) -> usize {
        self.lock().members.len()
    }

    /// Whether the room has no members.
    pub fn is_empty(&self) -> bool {
        self.lock().members.is_empty()
    }

    /// The latest offset.
    pub fn last_offset(&self) -> u64 {
        self.lock().last_offset
    }

    /// Add `member`. For a v1 member, `joined` (answering command `id`) and
    /// any resume replay are queued to it first; then v1 members see the
    /// presence `join` if this is the user's first connection here.
    pub(super) fn add(
        &self,
        member: Member,
        since: Option<&Since>,
        id: &Option<Value>,
        metrics: &Metrics,
    ) -> Result<Resume, JoinError> {
        let mut st = self.lock();
        if self.policy.max_members > 0 && st.members.len() >= self.policy.max_members {
            return Err(JoinError::Full);
        }
        self.prune(&mut st);
        let first = !st
            .members
            .iter()
            .any(|m| m.presence_key() == member.presence_key());
        let resume = match since {
            None => Resume::NotAsked,
            Some(s) if s.epoch != *self.epoch => Resume::Failed("epoch changed"),
            Some(s) if s.offset > st.last_offset => Resume::Failed("position is ahead of the room"),
            Some(s) => {
                let oldest = st
                    .history
                    .front()
                    .map(|e| e.offset)
                    .unwrap_or(st.last_offset + 1);
                if s.offset + 1 < oldest {
                    Resume::Failed("position too old")
                } else {
                    Resume::Resumed
                }
            }
        };
        let presence = PresenceMember {
            user: member.user.as_deref().map(str::to_string),
            nick: member.nick.to_string(),
            conns: 1,
        };
        let outbox = member.outbox.clone();
        let v1 = member.v1;
        st.members.push(member);
        // Everyone (the newcomer too) sees the presence change, then the
        // newcomer gets `joined` and its replay: all before the lock is
        // released, so before any later message.
        if first && self.policy.presence {
            let frame = protocol::presence_change("join", &self.name, &presence);
            for m in st.members.iter().filter(|m| m.v1) {
                deliver(&m.outbox, frame.clone(), metrics);
            }
        }
        if v1 {
            if let Resume::Failed(reason) = resume {
                deliver(
                    &outbox,
                    protocol::error("resume_failed", reason, id),
                    metrics,
                );
            }
            let joined = protocol::joined(
                &self.name,
                &self.epoch,
                st.last_offset,
                resume == Resume::Resumed,
                id,
            );
            deliver(&outbox, joined, metrics);
            if let (Resume::Resumed, Some(s)) = (&resume, since) {
                for e in st.history.iter().filter(|e| e.offset > s.offset) {
                    deliver(&outbox, e.event.clone(), metrics);
                }
            }
        }
        Ok(resume)
    }

    /// Remove connection `id`; v1 members see the presence `leave` if it was
    /// the user's last connection here.
    pub(super) fn remove(&self, id: ConnId, metrics: &Metrics) {
        let mut st = self.lock();
        let Some(i) = st.members.iter().position(|m| m.id == id) else {
            return;
        };
        let gone = st.members.swap_remove(i);
        let last = !st
            .members
            .iter()
            .any(|m| m.presence_key() == gone.presence_key());
        if last && self.policy.presence {
            let member = PresenceMember {
                user: gone.user.as_deref().map(str::to_string),
                nick: gone.nick.to_string(),
                conns: 0,
            };
            let frame = protocol::presence_change("leave", &self.name, &member);
            for m in st.members.iter().filter(|m| m.v1) {
                deliver(&m.outbox, frame.clone(), metrics);
            }
        }
    }

    /// Publish a message: the next offset, into the history, and queued for
    /// every member but `except` (raw members get the raw frame, v1 members the
    /// `message` event). Returns the offset.
    pub fn publish(
        &self,
        from: &protocol::From,
        payload: &Payload,
        except: Option<ConnId>,
        metrics: &Metrics,
    ) -> u64 {
        let mut st = self.lock();
        st.last_offset += 1;
        let offset = st.last_offset;
        let keep = self.policy.history_size > 0;
        let event = (keep || st.members.iter().any(|m| m.v1))
            .then(|| protocol::message(&self.name, offset, now_ms(), from, payload));
        let mut raw: Option<Bytes> = None;
        for m in st.members.iter() {
            if Some(m.id) == except {
                continue;
            }
            let frame = if m.v1 {
                event.clone().expect("built when there are v1 members")
            } else {
                raw.get_or_insert_with(|| payload.raw_frame()).clone()
            };
            deliver(&m.outbox, frame, metrics);
        }
        if let (true, Some(event)) = (keep, event) {
            st.history.push_back(Entry {
                offset,
                at: Instant::now(),
                event,
            });
            self.prune(&mut st);
        }
        offset
    }

    /// Queue `payload` for the members whose nickname is `nick`. Returns how many.
    pub fn send_to_nick(
        &self,
        nick: &str,
        from: &protocol::From,
        payload: &Payload,
        metrics: &Metrics,
    ) -> usize {
        let st = self.lock();
        st.members
            .iter()
            .filter(|m| &*m.nick == nick)
            .filter(|m| {
                let frame = if m.v1 {
                    protocol::direct(from, payload)
                } else {
                    payload.raw_frame()
                };
                deliver(&m.outbox, frame, metrics)
            })
            .count()
    }

    /// Change a member's nickname.
    pub fn set_nick(&self, id: ConnId, nick: Arc<str>) {
        let mut st = self.lock();
        if let Some(m) = st.members.iter_mut().find(|m| m.id == id) {
            m.nick = nick;
        }
    }

    /// Who is here: one entry per user (or per anonymous connection).
    pub fn presence(&self) -> Vec<PresenceMember> {
        let st = self.lock();
        let mut out: Vec<(PresenceKey<'_>, PresenceMember)> = Vec::new();
        for m in st.members.iter() {
            match out.iter_mut().find(|(k, _)| *k == m.presence_key()) {
                Some((_, p)) => p.conns += 1,
                None => out.push((
                    m.presence_key(),
                    PresenceMember {
                        user: m.user.as_deref().map(str::to_string),
                        nick: m.nick.to_string(),
                        conns: 1,
                    },
                )),
            }
        }
        out.into_iter().map(|(_, p)| p).collect()
    }

    /// Stored `message` events after offset `since`, at most the last `limit`.
    pub fn history(&self, since: Option<u64>, limit: usize) -> Vec<Bytes> {
        let mut st = self.lock();
        self.prune(&mut st);
        let after: Vec<Bytes> = st
            .history
            .iter()
            .filter(|e| since.is_none_or(|s| e.offset > s))
            .map(|e| e.event.clone())
            .collect();
        let skip = after.len().saturating_sub(limit);
        after.into_iter().skip(skip).collect()
    }

    /// A snapshot of the members.
    pub fn members(&self) -> Vec<Member> {
        self.lock().members.clone()
    }

    fn prune(&self, st: &mut State) {
        while st.history.len() > self.policy.history_size {
            st.history.pop_front();
        }
        let max_age: Duration = self.policy.history_age;
        while st.history.front().is_some_and(|e| e.at.elapsed() > max_age) {
            st.history.pop_front();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}
