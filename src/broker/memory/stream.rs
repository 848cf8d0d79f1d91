//! One room's stream: its epoch, its last offset, the messages it keeps.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::config::RoomPolicy;
use crate::wire::Publication;

/// What keeping one message costs beyond its payload (the publication, its
/// room and author handles, the queue slot), for the history bound.
pub(super) const ENTRY_COST: usize = 256;

/// The bytes a kept publication counts against `limits.history_bytes`.
pub(super) fn cost(p: &Publication) -> usize {
    p.payload.len() + ENTRY_COST
}

/// One room's stream.
pub(super) struct Stream {
    pub(super) epoch: Arc<str>,
    pub(super) policy: Arc<RoomPolicy>,
    pub(super) last_offset: u64,
    pub(super) history: VecDeque<Arc<Publication>>,
    /// What `history` costs (see [`cost`]).
    pub(super) bytes: usize,
    /// Connections in the room.
    pub(super) members: usize,
    /// Since the last message or the last member leaving.
    pub(super) idle_since: Instant,
    /// Replaced by a newer stream: whoever holds it looks again.
    pub(super) retired: bool,
}

impl Stream {
    pub(super) fn expired(&self) -> bool {
        self.members == 0 && self.idle_since.elapsed() > self.policy.history_age
    }

    /// Drop what is beyond the size cap or older than the age limit; the
    /// bytes freed.
    pub(super) fn prune(&mut self) -> usize {
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
    pub(super) fn pop(&mut self) -> usize {
        let freed = self.history.pop_front().map_or(0, |p| cost(&p));
        self.bytes -= freed;
        freed
    }

    /// Retire the stream: whoever holds it looks again. The bytes freed.
    pub(super) fn retire(&mut self) -> usize {
        self.retired = true;
        self.history.clear();
        std::mem::take(&mut self.bytes)
    }
}

pub(super) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

pub(super) fn lock(s: &Mutex<Stream>) -> MutexGuard<'_, Stream> {
    s.lock().unwrap_or_else(|e| e.into_inner())
}
