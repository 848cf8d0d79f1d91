//! What the operator view reads of a room without taking its lock: member
//! count and publications delivered, kept as atomics the room's own
//! join, leave and delivery update (one relaxed add each, no walk).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

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
