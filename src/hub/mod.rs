//! The hub: this node's rooms and their local members, and its connections by
//! id and by user. It delivers what the broker hands it to local outboxes,
//! encoding each publication once per wire; it knows no wire format and no
//! command ids of its own.
//!
//! `DashMap<name, Arc<Room>>` maps names to rooms; a room holds its members'
//! handles (see [`Room`]). Sessions keep the `Arc<Room>` they joined, so
//! leaving never searches. Map guards are never held across an await, a
//! script call or a send: `join` and `leave` take a shard lock only to make
//! "create room + add member" and "remove member + drop empty room" atomic
//! with respect to each other.

mod events;
mod figures;
mod room;

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use dashmap::DashMap;

pub use room::{Member, Room};

use crate::config::RoomPolicy;
use crate::deflate::Deflate;
use crate::ids::ConnId;
use crate::metrics::Metrics;
use crate::outbox::{CloseMode, Outbox};
use crate::wire::{Author, Change, Event, PresenceMember, Publication, Wire};

/// How everything else reaches one connection: where to queue, and in which
/// wire. Cheap to clone.
#[derive(Clone)]
pub struct Handle {
    /// The connection.
    pub id: ConnId,
    /// What its client expects on the wire.
    pub wire: Wire,
    /// Its room messages carry their offset (a socket.io client that
    /// recovers its state).
    pub offsets: bool,
    /// It takes room messages compressed (permessage-deflate with the
    /// server's full window): the publication's deflated bytes.
    pub deflate: Option<Arc<Deflate>>,
    /// The user id from its token.
    pub user: Option<Arc<str>>,
    /// Where its items go.
    pub outbox: Outbox,
}

impl Handle {
    /// Encode `event` for this connection's wire and queue it (waking it).
    /// Returns whether anything was queued.
    pub fn tell(&self, event: &Event<'_>) -> bool {
        match self.wire.encode(event) {
            Some(bytes) => self.outbox.queue(bytes),
            None => false,
        }
    }
}

/// A connection, or every connection of a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// One connection.
    Conn(ConnId),
    /// Every connection of this user.
    User(Arc<str>),
}

/// Why a join was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Full;

/// Most reports from other nodes kept between two reads (a second's worth
/// from 64 nodes); more are dropped, counted.
const REPORTS_KEPT: usize = 64;

/// This node's rooms and connections.
pub struct Hub {
    rooms: DashMap<Arc<str>, Arc<Room>>,
    conns: DashMap<ConnId, Handle>,
    users: DashMap<Arc<str>, Vec<ConnId>>,
    metrics: Metrics,
    /// Connections by wire (the operator view's figures).
    wires: [AtomicI64; Wire::COUNT],
    /// Publications handed to rooms here.
    publications: AtomicU64,
    /// What other nodes reported for the operator view, not read yet.
    reports: Mutex<Vec<(u16, Vec<u8>)>>,
}

impl Hub {
    /// An empty hub that keeps `roomcast_rooms` up to date.
    pub fn new(metrics: Metrics) -> Hub {
        Hub {
            rooms: DashMap::new(),
            conns: DashMap::new(),
            users: DashMap::new(),
            metrics,
            wires: Default::default(),
            publications: AtomicU64::new(0),
            reports: Mutex::new(Vec::new()),
        }
    }

    /// Add `member` to room `name`, creating it if needed. The member is in
    /// the room when this returns, so it receives its own announcements.
    /// Also returns whether it is its user's first connection there.
    pub fn join(
        &self,
        name: &str,
        member: Member,
        policy: &Arc<RoomPolicy>,
    ) -> Result<(Arc<Room>, bool), Full> {
        let entry = self.rooms.entry(Arc::from(name)).or_insert_with(|| {
            self.metrics.rooms.inc();
            Arc::new(Room::new(name, policy.clone()))
        });
        // Adding under the shard lock orders this join against `leave`'s
        // remove-if-empty, so a room is never removed with a member in it.
        let room = entry.value().clone();
        let result = room.add(member);
        drop(entry);
        match result {
            Ok(first) => Ok((room, first)),
            Err(Full) => {
                self.remove_if_empty(&room);
                Err(Full)
            }
        }
    }

    /// Remove connection `id` from `room` (an empty room is dropped). Returns
    /// who left, and whether that was its user's last connection there.
    pub fn leave(&self, room: &Arc<Room>, id: ConnId) -> Option<(PresenceMember, bool)> {
        let gone = room.remove(id);
        self.remove_if_empty(room);
        gone
    }

    fn remove_if_empty(&self, room: &Arc<Room>) {
        let removed = self
            .rooms
            .remove_if(room.name(), |_, r| Arc::ptr_eq(r, room) && r.is_empty());
        if removed.is_some() {
            self.metrics.rooms.dec();
        }
    }

    /// A room with members here, by full name.
    pub fn room(&self, name: &str) -> Option<Arc<Room>> {
        self.rooms.get(name).map(|r| r.value().clone())
    }

    /// Every room with members here, with its member count.
    pub fn rooms(&self) -> Vec<(String, usize)> {
        let mut v: Vec<(String, usize)> = self
            .rooms
            .iter()
            .map(|r| (r.key().to_string(), r.value().len()))
            .collect();
        v.sort();
        v
    }

    /// Call `f` with every room here, holding a map shard's read guard:
    /// `f` must not call into the hub (it reads a room's figures).
    pub fn for_each_room(&self, mut f: impl FnMut(&Arc<Room>)) {
        for r in self.rooms.iter() {
            f(r.value());
        }
    }

    /// Queue a publication for every local member of its room.
    pub fn deliver(&self, p: &Arc<Publication>) {
        if let Some(room) = self.room(&p.room) {
            self.publications.fetch_add(1, Ordering::Relaxed);
            room.deliver(p);
        }
    }

    /// Tell the local members of `room` that someone came or went.
    pub fn deliver_presence(&self, room: &str, change: Change, member: &PresenceMember) {
        if let Some(room) = self.room(room) {
            room.deliver_event(&Event::PresenceChange {
                change,
                room: room.name(),
                member,
            });
        }
    }

    /// Make a connection reachable by id (and by user).
    pub fn register(&self, handle: Handle) {
        self.wires[handle.wire as usize].fetch_add(1, Ordering::Relaxed);
        if let Some(user) = &handle.user {
            self.users.entry(user.clone()).or_default().push(handle.id);
        }
        if let Some(old) = self.conns.insert(handle.id, handle) {
            self.wires[old.wire as usize].fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Forget a connection.
    pub fn unregister(&self, id: ConnId) {
        if let Some((_, handle)) = self.conns.remove(&id) {
            self.wires[handle.wire as usize].fetch_sub(1, Ordering::Relaxed);
            if let Some(user) = handle.user {
                if let Some(mut ids) = self.users.get_mut(&user) {
                    ids.retain(|c| *c != id);
                }
                self.users.remove_if(&user, |_, ids| ids.is_empty());
            }
        }
    }

    /// The local connections a target names.
    pub fn targets(&self, target: &Target) -> Vec<Handle> {
        match target {
            Target::Conn(id) => self
                .conns
                .get(id)
                .map(|c| c.value().clone())
                .into_iter()
                .collect(),
            Target::User(user) => {
                let ids: Vec<ConnId> = self
                    .users
                    .get(user)
                    .map(|ids| ids.value().clone())
                    .unwrap_or_default();
                ids.iter()
                    .filter_map(|id| self.conns.get(id).map(|c| c.value().clone()))
                    .collect()
            }
        }
    }

    /// Send a direct message to the local connections of `target`; how many got it.
    pub fn send(&self, target: &Target, from: &Author, payload: &crate::payload::Payload) -> usize {
        let event = Event::Direct { from, payload };
        self.targets(target)
            .iter()
            .filter(|h| h.tell(&event))
            .count()
    }

    /// Close the local connections of `target` with `code`; how many were closed.
    pub fn disconnect(&self, target: &Target, code: u16, reason: &str) -> usize {
        self.targets(target)
            .iter()
            .filter(|h| h.outbox.close(code, reason, CloseMode::AfterQueued))
            .count()
    }

    /// Ask every connection here to close with `code` (after what is queued
    /// for it): the server is shutting down. All of them at once, before
    /// any session leaves its rooms, so the leave lines of a room emptying
    /// are not queued to members that are closing too (in a 7,000-member
    /// room that was 49M frames, written before the Closes).
    pub fn close_all(&self, code: u16, reason: &str) {
        for h in self.conns.iter() {
            h.outbox.close(code, reason, CloseMode::AfterQueued);
        }
    }

    /// Open connections here by wire, in [`Wire::ALL`] order.
    pub fn connections_by_wire(&self) -> [u64; Wire::COUNT] {
        std::array::from_fn(|i| self.wires[i].load(Ordering::Relaxed).max(0) as u64)
    }

    /// Publications handed to rooms here, ever.
    pub fn publications(&self) -> u64 {
        self.publications.load(Ordering::Relaxed)
    }

    /// Keep another node's report until [`Hub::take_reports`]; false when
    /// too many are waiting (it is dropped).
    pub fn keep_report(&self, node: u16, report: Vec<u8>) -> bool {
        let mut kept = self.reports.lock().unwrap_or_else(|e| e.into_inner());
        if kept.len() >= REPORTS_KEPT {
            return false;
        }
        kept.push((node, report));
        true
    }

    /// The reports kept since the last call.
    pub fn take_reports(&self) -> Vec<(u16, Vec<u8>)> {
        std::mem::take(&mut *self.reports.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Number of open connections here.
    pub fn connections(&self) -> usize {
        self.conns.len()
    }

    /// Number of rooms with members here.
    pub fn len(&self) -> usize {
        self.rooms.len()
    }

    /// Whether no room has members here.
    pub fn is_empty(&self) -> bool {
        self.rooms.is_empty()
    }
}

/// A handle for tests and benchmarks: a fresh outbox of `cap` items.
#[cfg(test)]
pub(crate) fn test_handle(id: ConnId, wire: Wire, cap: usize) -> Handle {
    Handle {
        id,
        wire,
        offsets: false,
        deflate: None,
        user: None,
        outbox: Outbox::new(cap, 1 << 20, prometheus::IntCounter::new("s", "s").unwrap()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbox::Take;
    use crate::payload::Payload;
    use std::collections::VecDeque;

    fn publication(room: &str, offset: u64, except: Option<ConnId>) -> Arc<Publication> {
        Arc::new(Publication::new(
            room.into(),
            offset,
            0,
            Author::server(),
            Payload::Text(format!("m{offset}").into()),
            except,
        ))
    }

    fn policy() -> Arc<RoomPolicy> {
        Arc::new(RoomPolicy::default())
    }

    #[test]
    fn delivery_shares_one_buffer_per_wire_and_skips_the_excluded() {
        let hub = Hub::new(Metrics::new());
        let (a, b, c) = (
            test_handle(1, Wire::Raw, 8),
            test_handle(2, Wire::Raw, 8),
            test_handle(3, Wire::Raw, 8),
        );
        let v = test_handle(4, Wire::V1, 8);
        for h in [&a, &b, &c, &v] {
            hub.join("chat/lobby", Member::live(h.clone(), "n".into()), &policy())
                .unwrap();
        }
        hub.deliver(&publication("chat/lobby", 1, Some(1)));
        let (mut x, mut y, mut z) = (VecDeque::new(), VecDeque::new(), VecDeque::new());
        b.outbox.take(&mut x);
        c.outbox.take(&mut y);
        v.outbox.take(&mut z);
        assert_eq!(x[0], crate::wire::frame::text("m1").into());
        assert_eq!(x[0].as_ptr(), y[0].as_ptr(), "same bytes, not a copy");
        assert_ne!(z[0], x[0], "the v1 member gets the v1 event");
        assert_eq!(a.outbox.take(&mut VecDeque::new()), Take::Empty);
    }

    #[test]
    fn empty_rooms_are_removed_and_counted() {
        let metrics = Metrics::new();
        let hub = Hub::new(metrics.clone());
        let h = test_handle(1, Wire::Raw, 8);
        let (room, first) = hub
            .join("r/a", Member::live(h, "a".into()), &policy())
            .unwrap();
        assert!(first);
        assert_eq!(metrics.rooms.get(), 1);
        let (gone, last) = hub.leave(&room, 1).unwrap();
        assert_eq!((&*gone.nick, last), ("a", true));
        assert!(hub.is_empty());
        assert_eq!(metrics.rooms.get(), 0);
    }

    #[test]
    fn a_full_member_is_closed_and_the_rest_still_receive() {
        let metrics = Metrics::new();
        let hub = Hub::new(metrics);
        let slow = test_handle(1, Wire::Raw, 1);
        let fast = test_handle(2, Wire::Raw, 100);
        for h in [&slow, &fast] {
            hub.join("r/a", Member::live(h.clone(), "n".into()), &policy())
                .unwrap();
        }
        for i in 0..10 {
            hub.deliver(&publication("r/a", i, None));
        }
        assert!(slow.outbox.is_closing());
        assert!(!fast.outbox.is_closing());
    }

    #[test]
    fn member_cap() {
        let hub = Hub::new(Metrics::new());
        let capped = Arc::new(RoomPolicy {
            pattern: "vip/*".into(),
            max_members: 1,
            ..RoomPolicy::default()
        });
        let a = test_handle(1, Wire::Raw, 8);
        let b = test_handle(2, Wire::Raw, 8);
        hub.join("vip/x", Member::live(a, "a".into()), &capped)
            .unwrap();
        assert_eq!(
            hub.join("vip/x", Member::live(b, "b".into()), &capped)
                .err(),
            Some(Full)
        );
    }

    #[test]
    fn a_joining_member_gets_nothing_twice_and_nothing_out_of_order() {
        let hub = Hub::new(Metrics::new());
        let h = test_handle(1, Wire::Raw, 64);
        let (room, _) = hub
            .join("r/a", Member::joining(h.clone(), "a".into()), &policy())
            .unwrap();
        // Published while it is joining: held back.
        hub.deliver(&publication("r/a", 5, None));
        hub.deliver(&publication("r/a", 6, None));
        let mut batch = VecDeque::new();
        assert_eq!(h.outbox.take(&mut batch), Take::Empty);
        // The stream was at 5 when its position was read: 5 came before the
        // join, 6 after; what it is told first comes first.
        room.go_live(1, 5, |h| {
            h.outbox.queue(bytes::Bytes::from_static(b"first"));
        });
        hub.deliver(&publication("r/a", 7, None));
        h.outbox.take(&mut batch);
        let got: Vec<_> = batch.iter().map(|b| b.to_vec()).collect();
        assert_eq!(
            got,
            vec![
                b"first".to_vec(),
                crate::wire::frame::text("m6").to_vec(),
                crate::wire::frame::text("m7").to_vec()
            ],
            "the notice, then 6 (held back), then 7 (live)"
        );
    }
}
