//! The registry: rooms, and every connection by id and by user.
//!
//! `DashMap<name, Arc<Room>>` maps names to rooms; a room holds its members'
//! outbox handles (see [`Room`]). Callers keep the `Arc<Room>` they joined,
//! so the hot path (publishing) never touches the map. Map guards are never
//! held across an await, a script call or a send: `join` and `leave` take a
//! shard lock only to make "create room + add member" and "remove member +
//! drop empty room" atomic with respect to each other.

mod room;

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use dashmap::DashMap;
use serde_json::Value;

pub use room::{JoinError, Member, Resume, Room};

use crate::config::RoomPolicy;
use crate::frame::close_code;
use crate::metrics::Metrics;
use crate::outbox::{CloseMode, Outbox, PushError};
use crate::protocol::Since;

/// A connection's id, unique within one server for its lifetime.
pub type ConnId = u64;

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

/// A connection as the registry knows it (for direct messages and the HTTP API).
#[derive(Clone)]
pub struct Connection {
    /// Its outbox.
    pub outbox: Outbox,
    /// The user id from its token.
    pub user: Option<Arc<str>>,
    /// Whether it speaks roomcast.v1.
    pub v1: bool,
}

/// All rooms and connections of one server.
pub struct Registry {
    rooms: DashMap<Arc<str>, Arc<Room>>,
    conns: DashMap<ConnId, Connection>,
    users: DashMap<Arc<str>, Vec<ConnId>>,
    policies: Vec<Arc<RoomPolicy>>,
    default_policy: Arc<RoomPolicy>,
    /// This server's life: history (and so offsets) does not survive a restart.
    epoch: String,
    room_serial: AtomicU64,
    metrics: Metrics,
}

impl Registry {
    /// An empty registry with room `policies` (first match wins) that keeps
    /// `roomcast_rooms` up to date.
    pub fn new(metrics: Metrics, policies: &[RoomPolicy]) -> Registry {
        // No RNG dependency: the std hasher's random keys make a fine nonce.
        let epoch = format!(
            "{:08x}",
            RandomState::new().hash_one(std::process::id()) as u32
        );
        Registry {
            rooms: DashMap::new(),
            conns: DashMap::new(),
            users: DashMap::new(),
            policies: policies.iter().cloned().map(Arc::new).collect(),
            default_policy: Arc::new(RoomPolicy::default()),
            epoch,
            room_serial: AtomicU64::new(0),
            metrics,
        }
    }

    /// The policy for room `name`.
    pub fn policy(&self, name: &str) -> Arc<RoomPolicy> {
        self.policies
            .iter()
            .find(|p| p.matches(name))
            .unwrap_or(&self.default_policy)
            .clone()
    }

    /// Add `member` to room `name`, creating it if needed. The member is in the
    /// room when this returns, so it receives its own announcements.
    pub fn join(
        &self,
        name: &str,
        member: Member,
        since: Option<&Since>,
        id: &Option<Value>,
    ) -> Result<(Arc<Room>, Resume), JoinError> {
        let entry = self.rooms.entry(Arc::from(name)).or_insert_with(|| {
            self.metrics.rooms.inc();
            // A room that is removed and created again starts a new epoch:
            // its offsets start over.
            let serial = self.room_serial.fetch_add(1, Ordering::Relaxed);
            Arc::new(Room::new(
                name,
                format!("{}.{serial}", self.epoch),
                self.policy(name),
            ))
        });
        // Adding under the shard lock orders this join against `leave`'s
        // remove-if-empty, so a room is never removed with a member in it.
        let room = entry.value().clone();
        let result = room.add(member, since, id, &self.metrics);
        drop(entry);
        match result {
            Ok(resume) => Ok((room, resume)),
            Err(e) => {
                self.remove_if_empty(&room);
                Err(e)
            }
        }
    }

    /// Remove connection `id` from `room`; an empty room is dropped from the registry.
    pub fn leave(&self, room: &Arc<Room>, id: ConnId) {
        room.remove(id, &self.metrics);
        self.remove_if_empty(room);
    }

    fn remove_if_empty(&self, room: &Arc<Room>) {
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

    /// Every room, with its member count.
    pub fn rooms(&self) -> Vec<(String, usize)> {
        let mut v: Vec<(String, usize)> = self
            .rooms
            .iter()
            .map(|r| (r.key().to_string(), r.value().len()))
            .collect();
        v.sort();
        v
    }

    /// Number of rooms with members.
    pub fn len(&self) -> usize {
        self.rooms.len()
    }

    /// Whether there are no rooms.
    pub fn is_empty(&self) -> bool {
        self.rooms.is_empty()
    }

    /// Make a connection reachable by id (and by user).
    pub fn register(&self, id: ConnId, conn: Connection) {
        if let Some(user) = &conn.user {
            self.users.entry(user.clone()).or_default().push(id);
        }
        self.conns.insert(id, conn);
    }

    /// Forget a connection.
    pub fn unregister(&self, id: ConnId) {
        if let Some((_, conn)) = self.conns.remove(&id) {
            if let Some(user) = conn.user {
                if let Some(mut ids) = self.users.get_mut(&user) {
                    ids.retain(|c| *c != id);
                }
                self.users.remove_if(&user, |_, ids| ids.is_empty());
            }
        }
    }

    /// A connection by id.
    pub fn connection(&self, id: ConnId) -> Option<Connection> {
        self.conns.get(&id).map(|c| c.value().clone())
    }

    /// Every connection of a user.
    pub fn user_connections(&self, user: &str) -> Vec<Connection> {
        let ids: Vec<ConnId> = self
            .users
            .get(user)
            .map(|ids| ids.value().clone())
            .unwrap_or_default();
        ids.into_iter()
            .filter_map(|id| self.connection(id))
            .collect()
    }

    /// Number of open connections.
    pub fn connections(&self) -> usize {
        self.conns.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payload::Payload;
    use crate::protocol::From;
    use std::collections::VecDeque;

    fn member(id: ConnId, nick: &str, cap: usize) -> Member {
        Member {
            id,
            nick: nick.into(),
            user: None,
            outbox: Outbox::new(cap, 1 << 20),
            v1: false,
        }
    }

    fn registry(metrics: &Metrics) -> Registry {
        Registry::new(metrics.clone(), &[])
    }

    #[test]
    fn publish_shares_one_buffer_and_skips_the_excluded() {
        let metrics = Metrics::new();
        let reg = registry(&metrics);
        let a = member(1, "a", 8);
        let b = member(2, "b", 8);
        let c = member(3, "c", 8);
        let (room, _) = reg.join("chat/lobby", a.clone(), None, &None).unwrap();
        reg.join("chat/lobby", b.clone(), None, &None).unwrap();
        reg.join("chat/lobby", c.clone(), None, &None).unwrap();
        assert_eq!(
            room.publish(
                &From::server(),
                &Payload::Text("hi".into()),
                Some(1),
                &metrics
            ),
            1
        );
        let (mut x, mut y) = (VecDeque::new(), VecDeque::new());
        b.outbox.take(&mut x);
        c.outbox.take(&mut y);
        assert_eq!(x[0], crate::frame::text("hi"));
        assert_eq!(x[0].as_ptr(), y[0].as_ptr(), "same bytes, not a copy");
        assert_eq!(
            a.outbox.take(&mut VecDeque::new()),
            crate::outbox::Take::Empty
        );
    }

    #[test]
    fn empty_rooms_are_removed_and_counted() {
        let metrics = Metrics::new();
        let reg = registry(&metrics);
        let (room, _) = reg.join("r/a", member(1, "a", 8), None, &None).unwrap();
        assert_eq!(metrics.rooms.get(), 1);
        reg.leave(&room, 1);
        assert!(reg.is_empty());
        assert_eq!(metrics.rooms.get(), 0);
    }

    #[test]
    fn a_full_member_is_closed_and_the_rest_still_receive() {
        let metrics = Metrics::new();
        let reg = registry(&metrics);
        let slow = member(1, "slow", 1);
        let fast = member(2, "fast", 100);
        let (room, _) = reg.join("r/a", slow.clone(), None, &None).unwrap();
        reg.join("r/a", fast.clone(), None, &None).unwrap();
        for _ in 0..10 {
            room.publish(&From::server(), &Payload::Text("x".into()), None, &metrics);
        }
        assert!(slow.outbox.is_closing());
        assert!(!fast.outbox.is_closing());
        assert_eq!(metrics.slow_consumers.get(), 1);
    }

    #[test]
    fn member_cap_and_policies() {
        let metrics = Metrics::new();
        let policies = [RoomPolicy {
            pattern: "vip/*".into(),
            max_members: 1,
            ..RoomPolicy::default()
        }];
        let reg = Registry::new(metrics.clone(), &policies);
        assert_eq!(reg.policy("vip/x").max_members, 1);
        assert_eq!(reg.policy("chat/x").max_members, 0);
        reg.join("vip/x", member(1, "a", 8), None, &None).unwrap();
        assert_eq!(
            reg.join("vip/x", member(2, "b", 8), None, &None).err(),
            Some(JoinError::Full)
        );
    }

}
