//! What the operator view reads of the hub: a room's member count and
//! publications delivered, kept as atomics the room's own join, leave and
//! delivery update (one relaxed add each, no walk), read without its lock;
//! and the answers to the view's questions (a page of a room's members,
//! rooms by prefix).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use super::Hub;
use crate::broker::{MemberEntry, NodeAnswer, NodeQuery, PAGE_MAX};
use crate::ids::ConnId;
use crate::wire::Wire;

/// One member as the operator view lists it.
#[derive(Debug, Clone)]
pub struct MemberInfo {
    /// Its connection.
    pub conn: ConnId,
    /// Its connection's wire.
    pub wire: Wire,
    /// Its nickname here.
    pub nick: Arc<str>,
    /// Its token's user, if any.
    pub user: Option<Arc<str>>,
}

impl Hub {
    /// Answer a question about this node's rooms (the operator view's, from
    /// this node or another), in pages of at most `PAGE_MAX`.
    pub fn answer(&self, query: &NodeQuery) -> NodeAnswer {
        match query {
            NodeQuery::Members { room, from, limit } => {
                let limit = (*limit).min(PAGE_MAX);
                let (page, total) = self
                    .room(room)
                    .map(|r| r.members_page(*from, limit))
                    .unwrap_or_default();
                let members = page
                    .into_iter()
                    .map(|m| MemberEntry {
                        conn: m.conn,
                        wire: m.wire.name().to_string(),
                        nick: m.nick.to_string(),
                        user: m.user.as_deref().map(str::to_string),
                    })
                    .collect();
                NodeAnswer::Members { total, members }
            }
            NodeQuery::Rooms { prefix, limit } => {
                let limit = (*limit).min(PAGE_MAX);
                let mut rooms: Vec<(String, usize)> = Vec::new();
                self.for_each_room(|r| {
                    if r.name().starts_with(prefix.as_str()) {
                        rooms.push((r.name().to_string(), r.figures.members()));
                    }
                });
                rooms.sort();
                let more = rooms.len() > limit;
                rooms.truncate(limit);
                NodeAnswer::Rooms { rooms, more }
            }
        }
    }
}

/// A room's figures, read by a sampler once a second.
#[derive(Default)]
pub struct Figures {
    members: AtomicUsize,
    published: AtomicU64,
    /// `published` when the sampler last looked.
    sampled: AtomicU64,
}

impl Figures {
    pub(super) fn set_members(&self, n: usize) {
        self.members.store(n, Ordering::Relaxed);
    }

    pub(super) fn published(&self) {
        self.published.fetch_add(1, Ordering::Relaxed);
    }

    /// Member connections here.
    pub fn members(&self) -> usize {
        self.members.load(Ordering::Relaxed)
    }

    /// Publications delivered here since the last call (one sampler calls it).
    pub fn take_published(&self) -> u64 {
        let now = self.published.load(Ordering::Relaxed);
        now.saturating_sub(self.sampled.swap(now, Ordering::Relaxed))
    }
}
