//! Every room's stream, and the bound on what they keep together
//! (`limits.history_bytes`): past it, the streams of rooms nobody is in go
//! first (longest idle first), then the oldest messages of the others.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use dashmap::DashMap;
use prometheus::IntGauge;

use super::stream::{lock, Stream};
use crate::config::{Config, Policies};

/// Streams created between sweeps of expired ones.
pub(super) const SWEEP_EVERY: u64 = 64;

/// The streams, by room.
pub(super) struct Streams {
    policies: Policies,
    /// This process's life: no stream survives a restart.
    epoch: String,
    serial: AtomicU64,
    /// Streams created, to sweep expired ones every `SWEEP_EVERY`.
    created: AtomicU64,
    pub(super) map: DashMap<Arc<str>, Arc<Mutex<Stream>>>,
    /// Bytes of kept history, across streams, and their bound.
    kept: AtomicUsize,
    max_kept: usize,
    /// One thread at a time makes room.
    reclaiming: AtomicBool,
    /// `roomcast_history_bytes`.
    kept_gauge: IntGauge,
}

impl Streams {
    pub(super) fn new(config: &Config, kept_gauge: IntGauge) -> Streams {
        // No RNG dependency: the std hasher's random keys make a fine nonce.
        let epoch = format!(
            "{:08x}",
            RandomState::new().hash_one(std::process::id()) as u32
        );
        Streams {
            policies: Policies::new(&config.rooms),
            epoch,
            serial: AtomicU64::new(0),
            created: AtomicU64::new(0),
            map: DashMap::new(),
            kept: AtomicUsize::new(0),
            max_kept: config.limits.history_bytes,
            reclaiming: AtomicBool::new(false),
            kept_gauge,
        }
    }

    /// Count `added` bytes more kept, `freed` fewer; back under the bound
    /// if it is passed.
    pub(super) fn kept(&self, added: usize, freed: usize) {
        self.account(added, freed);
        if added > 0 && self.kept.load(Ordering::Relaxed) > self.max_kept {
            self.reclaim();
        }
    }

    /// Count `added` bytes more kept, `freed` fewer.
    fn account(&self, added: usize, freed: usize) {
        if added > freed {
            self.kept.fetch_add(added - freed, Ordering::Relaxed);
        } else {
            self.kept.fetch_sub(freed - added, Ordering::Relaxed);
        }
        self.kept_gauge
            .set(i64::try_from(self.kept.load(Ordering::Relaxed)).unwrap_or(i64::MAX));
    }

    fn new_stream(&self, room: &str) -> Arc<Mutex<Stream>> {
        let serial = self.serial.fetch_add(1, Ordering::Relaxed);
        Arc::new(Mutex::new(Stream {
            epoch: format!("{}.{serial}", self.epoch).into(),
            policy: self.policies.for_room(room).clone(),
            last_offset: 0,
            history: std::collections::VecDeque::new(),
            bytes: 0,
            members: 0,
            idle_since: Instant::now(),
            retired: false,
        }))
    }

    /// `room`'s live stream, created (or renewed, if it expired) as needed,
    /// and locked.
    pub(super) fn stream(&self, room: &Arc<str>) -> (Arc<Mutex<Stream>>, bool) {
        if let Some(s) = self.map.get(room) {
            let s = s.value().clone();
            if !lock(&s).expired() {
                return (s, false);
            }
        }
        let mut created = false;
        let stream = {
            let mut entry = self.map.entry(room.clone()).or_insert_with(|| {
                created = true;
                self.new_stream(room)
            });
            let expired = lock(entry.value()).expired();
            if expired {
                let freed = lock(entry.value()).retire();
                self.account(0, freed);
                *entry.value_mut() = self.new_stream(room);
                created = true;
            }
            entry.value().clone()
        };
        if created && self.created.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1
        {
            self.sweep();
        }
        (stream, created)
    }

    /// Run `f` on `room`'s live stream.
    pub(super) fn with_stream<R>(&self, room: &Arc<str>, mut f: impl FnMut(&mut Stream) -> R) -> R {
        loop {
            let (s, _) = self.stream(room);
            let mut st = lock(&s);
            if !st.retired {
                return f(&mut st);
            }
        }
    }

    /// Drop the streams that expired (so rooms nobody uses cost nothing).
    fn sweep(&self) {
        let mut freed = 0;
        self.map.retain(|_, s| {
            let mut st = lock(s);
            if st.expired() {
                freed += st.retire();
                return false;
            }
            true
        });
        self.account(0, freed);
    }

    /// Back under the history bound (to 7/8 of it): streams of rooms nobody
    /// is in first, longest idle first; then the oldest messages anywhere.
    fn reclaim(&self) {
        if self.reclaiming.swap(true, Ordering::AcqRel) {
            return;
        }
        let target = self.max_kept / 8 * 7;
        let over = || self.kept.load(Ordering::Relaxed) > target;
        let mut idle: Vec<(Instant, Arc<str>)> = self
            .map
            .iter()
            .filter_map(|e| {
                let st = lock(e.value());
                (st.members == 0 && st.bytes > 0).then(|| (st.idle_since, e.key().clone()))
            })
            .collect();
        idle.sort();
        for (_, room) in idle {
            if !over() {
                break;
            }
            let mut freed = 0;
            self.map.remove_if(&room, |_, s| {
                let mut st = lock(s);
                let idle = st.members == 0;
                if idle {
                    freed = st.retire();
                }
                idle
            });
            self.account(0, freed);
        }
        while over() {
            let oldest = self
                .map
                .iter()
                .filter_map(|e| {
                    let st = lock(e.value());
                    st.history.front().map(|p| (p.time, e.value().clone()))
                })
                .min_by_key(|(time, _)| *time);
            let Some((_, stream)) = oldest else { break };
            let mut st = lock(&stream);
            let mut freed = 0;
            for _ in 0..st.history.len().div_ceil(4) {
                freed += st.pop();
            }
            drop(st);
            self.account(0, freed);
        }
        self.reclaiming.store(false, Ordering::Release);
    }

    /// Bytes kept (for tests).
    #[cfg(test)]
    pub(super) fn kept_bytes(&self) -> usize {
        self.kept.load(Ordering::Relaxed)
    }

    /// What `roomcast_history_bytes` says (for tests).
    #[cfg(test)]
    pub(super) fn gauge(&self) -> i64 {
        self.kept_gauge.get()
    }

    /// Streams kept (for tests).
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.map.len()
    }
}
