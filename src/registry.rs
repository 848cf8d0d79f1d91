//! The room registry: which connections are in which room, and fan-out.
//!
//! `DashMap<name, Arc<Room>>` maps names to rooms; a room holds its members'
//! outbox handles. Callers keep the `Arc<Room>` they joined, so the hot path
//! (broadcast) never touches the map. Map guards are never held across an
//! await, a script call or a send: `join` and `leave` take a shard lock only to
//! make "create room + add member" and "remove member + drop empty room" atomic
//! with respect to each other.

use std::sync::{Arc, RwLock};

use bytes::Bytes;
use dashmap::DashMap;

use crate::frame::close_code;
use crate::metrics::Metrics;
use crate::outbox::{CloseMode, Outbox, PushError};

/// A connection's id, unique within one server for its lifetime.
pub type ConnId = u64;

/// One connection's membership in a room.
#[derive(Clone)]
pub struct Member {
    /// The connection.
    pub id: ConnId,
    /// Its nickname (what `send_to` addresses).
    pub nick: Arc<str>,
    /// Where frames for it go.
    pub outbox: Outbox,
}

/// A room: a name and the outboxes of its members.
pub struct Room {
    name: Arc<str>,
    // RwLock: broadcasts (many, concurrent) only read; joins, leaves and nick
    // changes write. Never held across an await.
    members: RwLock<Vec<Member>>,
}

impl Room {
    fn new(name: &str) -> Room {
        Room {
            name: name.into(),
            members: RwLock::new(Vec::new()),
        }
    }

    /// The room's full name (`{route}/{room}`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        self.read().len()
    }

    /// Whether the room has no members.
    pub fn is_empty(&self) -> bool {
        self.read().is_empty()
    }

    /// Hand the same encoded frame to every member except `except`. Members whose
    /// outbox is full are closed as slow consumers; the others are unaffected.
    /// Returns how many members the frame was queued for.
    pub fn broadcast(&self, frame: &Bytes, except: Option<ConnId>, metrics: &Metrics) -> usize {
        let members = self.read();
        let mut queued = 0;
        for m in members.iter() {
            if Some(m.id) != except && deliver(&m.outbox, frame.clone(), metrics) {
                queued += 1;
            }
        }
        queued
    }

    /// Queue a frame for every member whose nickname is `nick`. Returns how many.
    pub fn send_to_nick(&self, nick: &str, frame: &Bytes, metrics: &Metrics) -> usize {
        let members = self.read();
        members
            .iter()
            .filter(|m| &*m.nick == nick)
            .filter(|m| deliver(&m.outbox, frame.clone(), metrics))
            .count()
    }

    /// Change a member's nickname.
    pub fn set_nick(&self, id: ConnId, nick: Arc<str>) {
        let mut members = self.write();
        if let Some(m) = members.iter_mut().find(|m| m.id == id) {
            m.nick = nick;
        }
    }

    /// Nicknames of the current members, in join order.
    pub fn nicks(&self) -> Vec<Arc<str>> {
        self.read().iter().map(|m| m.nick.clone()).collect()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Vec<Member>> {
        self.members.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Vec<Member>> {
        self.members.write().unwrap_or_else(|e| e.into_inner())
    }
}

/// Queue `frame` on `outbox`; a full outbox closes its owner as a slow consumer.
/// Returns whether the frame was queued.
pub fn deliver(outbox: &Outbox, frame: Bytes, metrics: &Metrics) -> bool {
    match outbox.push(frame) {
        Ok(()) => true,
        Err(PushError::Closed) => false,
        Err(PushError::Full) => {
            slow_consumer(outbox, metrics);
            false
        }
    }
}

/// Close the owner of a full outbox (4008), once, and count it.
pub fn slow_consumer(outbox: &Outbox, metrics: &Metrics) {
    if outbox.close(
        close_code::SLOW_CONSUMER,
        "slow consumer: outbox full",
        CloseMode::Now,
    ) {
        metrics.slow_consumers.inc();
        tracing::debug!("closing slow consumer (outbox full)");
    }
}

/// All rooms of one server.
pub struct Registry {
    rooms: DashMap<Arc<str>, Arc<Room>>,
    metrics: Metrics,
}

impl Registry {
    /// An empty registry that keeps `roomcast_rooms` up to date.
    pub fn new(metrics: Metrics) -> Registry {
        Registry {
            rooms: DashMap::new(),
            metrics,
        }
    }

    /// Add `member` to room `name`, creating it if needed. The member is in the
    /// room when this returns, so it receives its own join announcement.
    pub fn join(&self, name: &str, member: Member) -> Arc<Room> {
        let entry = self.rooms.entry(Arc::from(name)).or_insert_with(|| {
            self.metrics.rooms.inc();
            Arc::new(Room::new(name))
        });
        // Adding under the shard lock orders this join against `leave`'s
        // remove-if-empty, so a room is never removed with a member in it.
        entry.value().write().push(member);
        entry.value().clone()
    }

    /// Remove connection `id` from `room`; an empty room is dropped from the registry.
    pub fn leave(&self, room: &Arc<Room>, id: ConnId) {
        {
            let mut members = room.write();
            if let Some(i) = members.iter().position(|m| m.id == id) {
                members.swap_remove(i);
            }
        }
        let removed = self
            .rooms
            .remove_if(room.name(), |_, r| Arc::ptr_eq(r, room) && r.is_empty());
        if removed.is_some() {
            self.metrics.rooms.dec();
        }
    }

    /// Look a room up by full name.
    pub fn room(&self, name: &str) -> Option<Arc<Room>> {
        self.rooms.get(name).map(|r| r.value().clone())
    }

    /// Number of rooms with members.
    pub fn len(&self) -> usize {
        self.rooms.len()
    }

    /// Whether there are no rooms.
    pub fn is_empty(&self) -> bool {
        self.rooms.is_empty()
    }
}

/// Route and room names: 1-64 characters of `A-Z a-z 0-9 . _ -`.
pub fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    fn member(id: ConnId, nick: &str, cap: usize) -> Member {
        Member {
            id,
            nick: nick.into(),
            outbox: Outbox::new(cap, 1 << 20),
        }
    }

    #[tokio::test]
    async fn broadcast_shares_one_buffer_and_skips_the_excluded() {
        let metrics = Metrics::new();
        let reg = Registry::new(metrics.clone());
        let a = member(1, "a", 8);
        let b = member(2, "b", 8);
        let room = reg.join("chat/lobby", a.clone());
        reg.join("chat/lobby", b.clone());
        let frame = crate::frame::text("hi");
        assert_eq!(room.broadcast(&frame, Some(1), &metrics), 1);
        let mut batch = VecDeque::new();
        assert_eq!(b.outbox.take(&mut batch), crate::outbox::Take::Frames);
        assert_eq!(batch[0].as_ptr(), frame.as_ptr(), "same bytes, not a copy");
    }

    #[test]
    fn empty_rooms_are_removed_and_counted() {
        let metrics = Metrics::new();
        let reg = Registry::new(metrics.clone());
        let room = reg.join("r", member(1, "a", 8));
        assert_eq!(metrics.rooms.get(), 1);
        reg.leave(&room, 1);
        assert!(reg.is_empty());
        assert_eq!(metrics.rooms.get(), 0);
    }

    #[test]
    fn a_full_member_is_closed_and_the_rest_still_receive() {
        let metrics = Metrics::new();
        let reg = Registry::new(metrics.clone());
        let slow = member(1, "slow", 1);
        let fast = member(2, "fast", 100);
        let room = reg.join("r", slow.clone());
        reg.join("r", fast.clone());
        for _ in 0..10 {
            room.broadcast(&crate::frame::text("x"), None, &metrics);
        }
        assert!(slow.outbox.is_closing());
        assert!(!fast.outbox.is_closing());
        assert_eq!(metrics.slow_consumers.get(), 1);
    }

    #[test]
    fn names() {
        assert!(valid_name("lobby"));
        assert!(valid_name("a.b_c-9"));
        assert!(!valid_name(""));
        assert!(!valid_name("a/b"));
        assert!(!valid_name(&"x".repeat(65)));
    }
}
