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

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::figures::{Figures, MemberInfo};
use super::{Full, Handle};
use crate::config::RoomPolicy;
use crate::ids::ConnId;
use crate::outbox::Item;
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

#[derive(PartialEq, Eq, Hash)]
enum PresenceKey<'a> {
    User(&'a str),
    Conn(ConnId),
}

/// A room's members, indexed so that a join or a leave costs the same in a
/// room of ten thousand as in a room of two (a reconnect storm joins
/// thousands at once).
#[derive(Default)]
struct State {
    members: Vec<Member>,
    /// Where each member is in `members`.
    index: HashMap<ConnId, usize>,
    /// How many connections each user has here (presence groups them).
    users: HashMap<Arc<str>, usize>,
    /// Members by wire: an event no member's wire shows costs nothing.
    wires: [usize; Wire::COUNT],
    /// What was delivered while a member was joining, by member.
    held: Vec<(ConnId, Vec<Arc<Publication>>)>,
    /// Where the room's stream is, as far as this node delivered it.
    position: Option<(Arc<str>, u64)>,
}

impl State {
    fn member_mut(&mut self, id: ConnId) -> Option<&mut Member> {
        let i = *self.index.get(&id)?;
        self.members.get_mut(i)
    }
}

/// A room's local side: a name, a policy, members.
pub struct Room {
    name: Arc<str>,
    policy: Arc<RoomPolicy>,
    // A Mutex, not a RwLock: delivery must be ordered, and it is short.
    state: Mutex<State>,
    /// Member count and publications, for the operator view.
    pub figures: Figures,
}

impl Room {
    pub(super) fn new(name: &str, policy: Arc<RoomPolicy>) -> Room {
        Room {
            name: name.into(),
            policy,
            state: Mutex::new(State::default()),
            figures: Figures::default(),
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
        if st.index.contains_key(&member.handle.id) {
            // Already here (a repeated join): nothing changes.
            return Ok(false);
        }
        let first = match &member.handle.user {
            Some(u) => {
                let n = st.users.entry(u.clone()).or_insert(0);
                *n += 1;
                *n == 1
            }
            None => true,
        };
        if !member.live {
            st.held.push((member.handle.id, Vec::new()));
        }
        let i = st.members.len();
        st.index.insert(member.handle.id, i);
        st.wires[member.handle.wire as usize] += 1;
        st.members.push(member);
        self.figures.set_members(st.members.len());
        Ok(first)
    }

    /// Remove connection `id`: who it was, and whether it was its user's last
    /// connection here.
    pub(super) fn remove(&self, id: ConnId) -> Option<(PresenceMember, bool)> {
        let mut st = self.lock();
        let i = st.index.remove(&id)?;
        let gone = st.members.swap_remove(i);
        if let Some(moved) = st.members.get(i).map(|m| m.handle.id) {
            st.index.insert(moved, i);
        }
        st.wires[gone.handle.wire as usize] -= 1;
        self.figures.set_members(st.members.len());
        if !gone.live {
            st.held.retain(|(c, _)| *c != id);
        }
        let last = match &gone.handle.user {
            Some(u) => match st.users.get_mut(u) {
                Some(n) if *n > 1 => {
                    *n -= 1;
                    false
                }
                _ => {
                    st.users.remove(u);
                    true
                }
            },
            None => true,
        };
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
        let Some(m) = st.member_mut(id) else {
            return;
        };
        first(&m.handle);
        for p in held.iter().filter(|p| p.offset > upto) {
            if let Some(bytes) =
                p.encoded_for(m.handle.wire, m.handle.offsets, m.handle.deflate.as_deref())
            {
                m.handle.outbox.queue(bytes.clone());
            }
        }
        m.live = true;
    }

    /// Queue a publication for every member but its `except`: encoded once
    /// per wire (lazily, on the publication), the same bytes for every
    /// member on that wire.
    pub(super) fn deliver(&self, p: &Arc<Publication>) {
        self.figures.published();
        let mut st = self.lock();
        if let Some(epoch) = p.epoch.as_ref().filter(|_| p.offset > 0) {
            match &mut st.position {
                Some((e, at)) if Arc::ptr_eq(e, epoch) || **e == **epoch => *at = p.offset,
                other => *other = Some((epoch.clone(), p.offset)),
            }
        }
        let State { members, held, .. } = &mut *st;
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
            if let Some(bytes) =
                p.encoded_for(m.handle.wire, m.handle.offsets, m.handle.deflate.as_deref())
            {
                m.handle.outbox.queue(bytes.clone());
            }
        }
    }

    /// Where the room's stream is as far as this node delivered it (its
    /// epoch and last offset), if it delivered anything since it was made.
    pub fn position(&self) -> Option<(Arc<str>, u64)> {
        self.lock().position.clone()
    }

    /// The room's stream began again as `epoch`.
    pub(super) fn began_again(&self, epoch: &str) {
        self.lock().position = Some((epoch.into(), 0));
    }

    /// Queue an event for every member (joining ones too), encoded once per wire.
    pub(super) fn deliver_event(&self, event: &Event<'_>) {
        let mut encoded: [Option<Option<Item>>; Wire::COUNT] = Default::default();
        let st = self.lock();
        // Most events are for some wires only (a raw client hears nothing of
        // presence): with no member on a wire that shows it, skip the walk.
        let shown = Wire::ALL.iter().any(|&w| {
            st.wires[w as usize] > 0
                && encoded[w as usize]
                    .get_or_insert_with(|| w.encode(event))
                    .is_some()
        });
        if !shown {
            return;
        }
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
        if let Some(m) = st.member_mut(id) {
            m.nick = nick;
        }
    }

    /// Who is here: one entry per user (or per anonymous connection).
    /// Presence as [`Room::presence`] has it, each member with its key:
    /// `u<user id>`, or `c<connection id>` for a connection without a user.
    pub fn keyed_presence(&self) -> Vec<(String, PresenceMember)> {
        let st = self.lock();
        let mut out: Vec<(String, PresenceMember)> = Vec::new();
        let mut at: HashMap<PresenceKey<'_>, usize> = HashMap::new();
        for m in st.members.iter() {
            match at.get(&m.presence_key()) {
                Some(&i) => out[i].1.conns += 1,
                None => {
                    let key = match m.presence_key() {
                        PresenceKey::User(u) => format!("u{u}"),
                        PresenceKey::Conn(c) => format!("c{c}"),
                    };
                    at.insert(m.presence_key(), out.len());
                    out.push((key, m.presence(1)));
                }
            }
        }
        out
    }

    /// Up to `limit` members from the `from`th (in no set order: a leave
    /// moves the last member into its place), and how many there are.
    pub fn members_page(&self, from: usize, limit: usize) -> (Vec<MemberInfo>, usize) {
        let st = self.lock();
        let page = st
            .members
            .iter()
            .skip(from)
            .take(limit)
            .map(|m| MemberInfo {
                conn: m.handle.id,
                wire: m.handle.wire,
                nick: m.nick.clone(),
                user: m.handle.user.clone(),
            })
            .collect();
        (page, st.members.len())
    }

    /// How many of `user`'s connections are in the room here.
    pub fn user_conns(&self, user: &str) -> usize {
        self.lock().users.get(user).copied().unwrap_or(0)
    }

    pub fn presence(&self) -> Vec<PresenceMember> {
        let st = self.lock();
        let mut out: Vec<PresenceMember> = Vec::new();
        let mut at: HashMap<PresenceKey<'_>, usize> = HashMap::new();
        for m in st.members.iter() {
            match at.get(&m.presence_key()) {
                Some(&i) => out[i].conns += 1,
                None => {
                    at.insert(m.presence_key(), out.len());
                    out.push(m.presence(1));
                }
            }
        }
        out
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::test_handle;
    use crate::wire::{Change, PresenceMember};

    fn member(id: ConnId, user: Option<&str>, wire: Wire) -> Member {
        let mut h = test_handle(id, wire, 64);
        h.user = user.map(Into::into);
        Member::live(h, format!("n{id}").into())
    }

    /// The indexes agree with a plain list after any sequence of joins and
    /// leaves: first/last connection of a user, presence counts, lookups of
    /// the member a `swap_remove` moved.
    #[test]
    fn joins_and_leaves_keep_the_indexes_true() {
        let room = Room::new("chat/x", Arc::new(RoomPolicy::default()));
        let users = [None, Some("ann"), Some("bob")];
        let mut model: Vec<(ConnId, Option<&str>)> = Vec::new();
        // A fixed pseudo-random walk (xorshift): joins and leaves interleaved.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for step in 0..2000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if model.is_empty() || x % 3 != 0 {
                let id = step + 1;
                let user = users[(x >> 8) as usize % users.len()];
                let first = room.add(member(id, user, Wire::Raw)).unwrap();
                let expected = user.is_none_or(|u| !model.iter().any(|(_, v)| *v == Some(u)));
                assert_eq!(first, expected, "join {id} of {user:?}");
                model.push((id, user));
            } else {
                let (id, user) = model.remove((x >> 8) as usize % model.len());
                let (gone, last) = room.remove(id).unwrap();
                assert_eq!(gone.user.as_deref(), user);
                let expected = user.is_none_or(|u| !model.iter().any(|(_, v)| *v == Some(u)));
                assert_eq!(last, expected, "leave {id} of {user:?}");
                assert!(room.remove(id).is_none(), "gone once");
            }
            if step % 97 == 0 {
                for (id, _) in &model {
                    room.set_nick(*id, format!("m{id}").into());
                }
                let presence = room.presence();
                let anonymous = model.iter().filter(|(_, u)| u.is_none()).count();
                for u in ["ann", "bob"] {
                    let n = model.iter().filter(|(_, v)| *v == Some(u)).count();
                    assert_eq!(room.user_conns(u), n);
                    let listed: Vec<&PresenceMember> = presence
                        .iter()
                        .filter(|p| p.user.as_deref() == Some(u))
                        .collect();
                    assert_eq!(listed.len(), usize::from(n > 0), "{u} once");
                    assert!(listed.iter().all(|p| p.conns == n));
                }
                assert_eq!(
                    presence.iter().filter(|p| p.user.is_none()).count(),
                    anonymous
                );
                assert_eq!(room.len(), model.len());
                let nicks: Vec<String> = room
                    .lock()
                    .members
                    .iter()
                    .map(|m| m.nick.to_string())
                    .collect();
                for (id, _) in &model {
                    assert!(nicks.contains(&format!("m{id}")), "set_nick found {id}");
                }
            }
        }
    }

    /// A presence change reaches the v1 members; with only raw members (whose
    /// wire shows no presence) nothing is queued.
    #[test]
    fn presence_events_go_to_the_wires_that_show_them() {
        let room = Room::new("chat/x", Arc::new(RoomPolicy::default()));
        let raw = member(1, None, Wire::Raw);
        room.add(raw.clone()).unwrap();
        let who = PresenceMember {
            user: None,
            nick: "n".into(),
            conns: 1,
        };
        let event = Event::PresenceChange {
            change: Change::Join,
            room: "chat/x",
            member: &who,
        };
        let queued = |m: &Member| {
            let mut q = std::collections::VecDeque::new();
            m.handle.outbox.take(&mut q);
            q.len()
        };
        room.deliver_event(&event);
        assert_eq!(queued(&raw), 0);
        let v1 = member(2, None, Wire::V1);
        room.add(v1.clone()).unwrap();
        room.deliver_event(&event);
        assert_eq!((queued(&raw), queued(&v1)), (0, 1));
        room.remove(2).unwrap();
        room.deliver_event(&event);
        assert_eq!(queued(&v1), 0, "not a member any more");
    }
}
