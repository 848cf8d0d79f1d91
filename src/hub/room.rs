//! One room on this node: its local members.
//!
//! Delivery happens under the room's one lock, so every member sees what the
//! broker hands over in the order it is handed over (the broker hands a
//! room's publications over in offset order). A member that is joining is in
//! the room but not yet live: what is delivered meanwhile is held back for it,
//! and when its join completes, [`Room::go_live`] queues what it must see
//! first (its `joined` event and any missed messages), then what was held back
//! that comes later than that, all under the lock: no gap and no duplicate.
//! The lock is never held across an await, and delivery only queues (it never
//! blocks).

use std::sync::{Arc, Mutex};

use super::{Full, Handle};
use crate::config::RoomPolicy;
use crate::ids::ConnId;
use crate::wire::{Event, PresenceMember, Publication, Wire};

/// One connection's membership in a room.
#[derive(Clone)]
pub struct Member {
    /// The connection.
    pub handle: Handle,
    /// Its nickname here (what `send_to` addresses).
    pub nick: Arc<str>,
    /// Whether it receives the room's messages yet (false while joining).
    live: bool,
}

impl Member {
    /// A member that receives everything from now on.
    pub fn live(handle: Handle, nick: Arc<str>) -> Member {
        Member {
            handle,
            nick,
            live: true,
        }
    }

    /// A member whose join is under way: messages are held back for it until
    /// [`Room::go_live`].
    pub fn joining(handle: Handle, nick: Arc<str>) -> Member {
        Member {
            handle,
            nick,
            live: false,
        }
    }

    /// Presence groups connections by user; a connection without a user is
    /// its own member.
    fn presence_key(&self) -> PresenceKey<'_> {
        match &self.handle.user {
            Some(u) => PresenceKey::User(u),
            None => PresenceKey::Conn(self.handle.id),
        }
    }

    fn presence(&self, conns: usize) -> PresenceMember {
        PresenceMember {
            user: self.handle.user.clone(),
            nick: self.nick.clone(),
            conns,
        }
    }
}

#[derive(PartialEq, Eq)]
enum PresenceKey<'a> {
    User(&'a str),
    Conn(ConnId),
}

#[derive(Default)]
struct State {
    members: Vec<Member>,
    /// What was delivered while a member was joining, by member.
    held: Vec<(ConnId, Vec<Arc<Publication>>)>,
}

/// A room's local side: a name, a policy, members.
pub struct Room {
    name: Arc<str>,
    policy: Arc<RoomPolicy>,
    // A Mutex, not a RwLock: delivery must be ordered, and it is short.
    state: Mutex<State>,
}

impl Room {
    pub(super) fn new(name: &str, policy: Arc<RoomPolicy>) -> Room {
        Room {
            name: name.into(),
            policy,
            state: Mutex::new(State::default()),
        }
    }

    /// The room's full name (`{route}/{room}`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The room's full name, shared.
    pub fn name_arc(&self) -> &Arc<str> {
        &self.name
    }

    /// The room's policy.
    pub fn policy(&self) -> &Arc<RoomPolicy> {
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

    /// Add `member`; true if it is its user's first connection here.
    pub(super) fn add(&self, member: Member) -> Result<bool, Full> {
        let mut st = self.lock();
        if self.policy.max_members > 0 && st.members.len() >= self.policy.max_members {
            return Err(Full);
        }
        let first = !st
            .members
            .iter()
            .any(|m| m.presence_key() == member.presence_key());
        if !member.live {
            st.held.push((member.handle.id, Vec::new()));
        }
        st.members.push(member);
        Ok(first)
    }

    /// Remove connection `id`: who it was, and whether it was its user's last
    /// connection here.
    pub(super) fn remove(&self, id: ConnId) -> Option<(PresenceMember, bool)> {
        let mut st = self.lock();
        let i = st.members.iter().position(|m| m.handle.id == id)?;
        let gone = st.members.swap_remove(i);
        st.held.retain(|(c, _)| *c != id);
        let last = !st
            .members
            .iter()
            .any(|m| m.presence_key() == gone.presence_key());
        Some((gone.presence(0), last))
    }

    /// The joining member `id` goes live: `first` queues what it must see
    /// before anything else (its `joined` event, missed messages up to
    /// `upto`), then what was held back for it with an offset after `upto`.
    pub fn go_live(&self, id: ConnId, upto: u64, first: impl FnOnce(&Handle)) {
        let mut st = self.lock();
        let held = match st.held.iter().position(|(c, _)| *c == id) {
            Some(i) => st.held.swap_remove(i).1,
            None => Vec::new(),
        };
        let Some(m) = st.members.iter_mut().find(|m| m.handle.id == id) else {
            return;
        };
        first(&m.handle);
        for p in held.iter().filter(|p| p.offset > upto) {
            if let Some(bytes) = p.encoded(m.handle.wire) {
                m.handle.outbox.queue(bytes.clone());
            }
        }
        m.live = true;
    }

    /// Queue a publication for every member but its `except`: encoded once
    /// per wire (lazily, on the publication), the same bytes for every
    /// member on that wire.
    pub(super) fn deliver(&self, p: &Arc<Publication>) {
        let mut st = self.lock();
        let State { members, held } = &mut *st;
        for m in members.iter() {
            if Some(m.handle.id) == p.except {
                continue;
            }
            if !m.live {
                if let Some((_, list)) = held.iter_mut().find(|(c, _)| *c == m.handle.id) {
                    if list.len() >= m.handle.outbox.capacity() {
                        // It would not hold them once live either.
                        m.handle.outbox.slow_consumer();
                    } else {
                        list.push(p.clone());
                    }
                }
                continue;
            }
            if let Some(bytes) = p.encoded(m.handle.wire) {
                m.handle.outbox.queue(bytes.clone());
            }
        }
    }

    /// Queue an event for every member (joining ones too), encoded once per wire.
    pub(super) fn deliver_event(&self, event: &Event<'_>) {
        let mut encoded: [Option<Option<bytes::Bytes>>; Wire::COUNT] = Default::default();
        let st = self.lock();
        for m in st.members.iter() {
            let slot = &mut encoded[m.handle.wire as usize];
            if let Some(bytes) = slot.get_or_insert_with(|| m.handle.wire.encode(event)) {
                m.handle.outbox.queue(bytes.clone());
            }
        }
    }

    /// Send a direct message to the members whose nickname is `nick`; how many.
    pub fn send_to_nick(&self, nick: &str, event: &Event<'_>) -> usize {
        let st = self.lock();
        st.members
            .iter()
            .filter(|m| &*m.nick == nick)
            .filter(|m| m.handle.tell(event))
            .count()
    }

    /// Change a member's nickname.
    pub fn set_nick(&self, id: ConnId, nick: Arc<str>) {
        let mut st = self.lock();
        if let Some(m) = st.members.iter_mut().find(|m| m.handle.id == id) {
            m.nick = nick;
        }
    }

    /// Who is here: one entry per user (or per anonymous connection).
    /// Presence as [`Room::presence`] has it, each member with its key:
    /// `u<user id>`, or `c<connection id>` for a connection without a user.
    pub fn keyed_presence(&self) -> Vec<(String, PresenceMember)> {
        let st = self.lock();
        let mut out: Vec<(String, PresenceMember)> = Vec::new();
        for m in st.members.iter() {
            let key = match m.presence_key() {
                PresenceKey::User(u) => format!("u{u}"),
                PresenceKey::Conn(c) => format!("c{c}"),
            };
            match out.iter_mut().find(|(k, _)| *k == key) {
                Some((_, p)) => p.conns += 1,
                None => out.push((key, m.presence(1))),
            }
        }
        out
    }

    /// How many of `user`'s connections are in the room here.
    pub fn user_conns(&self, user: &str) -> usize {
        let st = self.lock();
        st.members
            .iter()
            .filter(|m| m.handle.user.as_deref() == Some(user))
            .count()
    }

    pub fn presence(&self) -> Vec<PresenceMember> {
        let st = self.lock();
        let mut out: Vec<(PresenceKey<'_>, PresenceMember)> = Vec::new();
        for m in st.members.iter() {
            match out.iter_mut().find(|(k, _)| *k == m.presence_key()) {
                Some((_, p)) => p.conns += 1,
                None => out.push((m.presence_key(), m.presence(1))),
            }
        }
        out.into_iter().map(|(_, p)| p).collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}
