//! Room channels this node listens to, and delivery from them in offset order.
//!
//! A node subscribes to a room's channel while the room has members here
//! (the first join subscribes, the last leave unsubscribes). One task
//! reconciles what is wanted with what Redis has, in batches, so a join
//! and a leave of the same room can never overtake each other; a
//! subscription is *ready* once Redis confirmed it, and joins (and this
//! node's own publishes into the room) wait for that, so nothing published
//! after a join's position is missed.
//!
//! Redis pub/sub is at-most-once: a reconnect loses what was published
//! meanwhile. Each room remembers the last offset it delivered; a message
//! that skips ahead (or a resubscription) makes the node read what it
//! missed from the room's stream and deliver it first, holding newer
//! messages meanwhile (a bounded number). What the stream no longer holds
//! is counted (`roomcast_broker_gaps_total`), never replayed out of order.
//!
//! The stream, not the channel, is the truth (Redis is trusted, but one bad
//! writer on a channel must not silence a room): a message that skips
//! ahead is delivered only once the stream has been read past it, so a
//! forged offset far ahead is found missing from the stream and refused
//! instead of moving the room's position to where nothing real will ever
//! follow; a second, different message with the offset just delivered is
//! checked against the stream too (`Next::Conflict`). Refusals are counted
//! in `roomcast_broker_refused_total{what="offset"}`.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use dashmap::DashMap;
use tokio::sync::{watch, Notify};

use super::sub::{wait_until_set, Sub};

/// Channels per SUBSCRIBE / UNSUBSCRIBE.
const BATCH: usize = 512;
/// How often a Redis Cluster's subscriptions are made again while suspect.
const RECHECK: Duration = Duration::from_secs(2);
/// How long after a cluster node's connection dropped they are suspect:
/// longer than a failover takes (a replica takes over after
/// `cluster-node-timeout`, commonly 2–15 s).
const SUSPECT_FOR: Duration = Duration::from_secs(30);

/// Every channel this node listens to (or wants to).
pub(super) struct Subs {
    /// Rooms with members here: their subscription and member count.
    rooms: DashMap<Arc<str>, (usize, Arc<Sub>)>,
    /// The same subscriptions by channel, for incoming messages.
    channels: DashMap<Arc<str>, Arc<Sub>>,
    /// Channels always listened to (this node's own, every node's), and
    /// whether Redis confirmed each.
    fixed: Mutex<Vec<(Arc<str>, bool)>>,
    fixed_ready: watch::Sender<bool>,
    /// Channels whose subscription may need to change.
    dirty: Mutex<HashSet<Arc<str>>>,
    /// Subscribe everything again (Redis came back: what it had is not
    /// to be trusted).
    reset: std::sync::atomic::AtomicBool,
    /// In a Redis Cluster after a node's connection dropped: until then,
    /// every channel is subscribed again every [`RECHECK`] (a shard's new
    /// master, or a master back on a new address, may not have every
    /// subscription yet; subscribing twice does no harm).
    suspect_until: Mutex<Option<tokio::time::Instant>>,
    wake: Notify,
}

impl Subs {
    pub(super) fn new() -> Subs {
        Subs {
            rooms: DashMap::new(),
            channels: DashMap::new(),
            fixed: Mutex::new(Vec::new()),
            fixed_ready: watch::channel(false).0,
            dirty: Mutex::new(HashSet::new()),
            reset: std::sync::atomic::AtomicBool::new(false),
            suspect_until: Mutex::new(None),
            wake: Notify::new(),
        }
    }

    /// Subscribe every wanted channel again (after Redis came back; a
    /// channel already subscribed is confirmed again, no harm done).
    pub(super) fn resubscribe_all(&self) {
        self.reset.store(true, std::sync::atomic::Ordering::Release);
        self.wake.notify_one();
    }

    /// A Redis Cluster node's connection dropped: subscribe every channel
    /// again now, and every [`RECHECK`] for [`SUSPECT_FOR`].
    pub(super) fn cluster_disconnected(&self) {
        *self.suspect_until.lock().unwrap_or_else(|e| e.into_inner()) =
            Some(tokio::time::Instant::now() + SUSPECT_FOR);
        self.resubscribe_all();
    }

    /// How long the subscriptions are still suspect.
    fn suspect_left(&self) -> Option<Duration> {
        let mut until = self.suspect_until.lock().unwrap_or_else(|e| e.into_inner());
        let left = until.map(|u| u.saturating_duration_since(tokio::time::Instant::now()));
        if left == Some(Duration::ZERO) {
            *until = None;
            return None;
        }
        left
    }

    /// Listen on `channel` for as long as the node lives.
    pub(super) fn add_fixed(&self, channel: Arc<str>) {
        self.lock_fixed().push((channel.clone(), false));
        self.fixed_ready.send_replace(false);
        self.mark(channel);
    }

    fn lock_fixed(&self) -> MutexGuard<'_, Vec<(Arc<str>, bool)>> {
        self.fixed.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn is_fixed(&self, channel: &str) -> bool {
        self.lock_fixed().iter().any(|(c, _)| &**c == channel)
    }

    fn mark(&self, channel: Arc<str>) {
        self.dirty
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(channel);
        self.wake.notify_one();
    }

    /// A member joined `room` here; its subscription (new if it is the
    /// room's first member here).
    pub(super) fn join(&self, room: &Arc<str>, channel: impl FnOnce() -> Arc<str>) -> Arc<Sub> {
        let mut entry = self.rooms.entry(room.clone()).or_insert_with(|| {
            let sub = Arc::new(Sub::new(room.clone(), channel()));
            self.channels.insert(sub.channel.clone(), sub.clone());
            self.mark(sub.channel.clone());
            (0, sub)
        });
        entry.0 += 1;
        entry.1.clone()
    }

    /// A member left `room` here; the last one ends the subscription.
    pub(super) fn leave(&self, room: &Arc<str>) {
        let removed = self.rooms.remove_if_mut(room, |_, (n, _)| {
            *n = n.saturating_sub(1);
            *n == 0
        });
        if let Some((_, (_, sub))) = removed {
            self.channels
                .remove_if(&sub.channel, |_, s| Arc::ptr_eq(s, &sub));
            self.mark(sub.channel.clone());
        }
    }

    /// The subscription of a room with members here.
    pub(super) fn room(&self, room: &str) -> Option<Arc<Sub>> {
        self.rooms.get(room).map(|e| e.1.clone())
    }

    /// The subscription a message on `channel` is for.
    pub(super) fn by_channel(&self, channel: &str) -> Option<Arc<Sub>> {
        self.channels.get(channel).map(|s| s.value().clone())
    }

    /// Every room subscription.
    pub(super) fn all(&self) -> Vec<Arc<Sub>> {
        self.rooms.iter().map(|e| e.1.clone()).collect()
    }

    /// Redis confirmed a subscription (after a reconnect, too).
    pub(super) fn confirmed(&self, channel: &str) {
        if let Some(sub) = self.by_channel(channel) {
            sub.set_ready(true);
            return;
        }
        let mut fixed = self.lock_fixed();
        if let Some(f) = fixed.iter_mut().find(|(c, _)| &**c == channel) {
            f.1 = true;
            let all = fixed.iter().all(|(_, ok)| *ok);
            drop(fixed);
            self.fixed_ready.send_replace(all);
        }
    }

    /// The subscription connection dropped: nothing is ready until Redis
    /// confirms again.
    pub(super) fn disconnected(&self) {
        for e in self.channels.iter() {
            e.value().set_ready(false);
        }
        for f in self.lock_fixed().iter_mut() {
            f.1 = false;
        }
        self.fixed_ready.send_replace(false);
    }

    /// Wait until this node's own channels are subscribed, at most `timeout`.
    pub(super) async fn wait_fixed(&self, timeout: Duration) -> bool {
        wait_until_set(&self.fixed_ready, timeout).await
    }

    /// Keep Redis's subscriptions equal to what is wanted, until the
    /// broker is dropped (`alive` fails).
    pub(super) async fn run(
        self: Arc<Self>,
        link: Arc<super::link::Link>,
        errors: prometheus::IntCounter,
    ) {
        let mut have: HashSet<Arc<str>> = HashSet::new();
        loop {
            match self.suspect_left() {
                Some(left) => {
                    let woken = tokio::time::timeout(left.min(RECHECK), self.wake.notified()).await;
                    if woken.is_err() {
                        self.reset.store(true, std::sync::atomic::Ordering::Release);
                    }
                }
                None => self.wake.notified().await,
            }
            if self.reset.swap(false, std::sync::atomic::Ordering::AcqRel) {
                have.clear();
                let mut dirty = self.dirty.lock().unwrap_or_else(|e| e.into_inner());
                dirty.extend(self.channels.iter().map(|e| e.key().clone()));
                dirty.extend(self.lock_fixed().iter().map(|(c, _)| c.clone()));
            }
            let dirty: Vec<Arc<str>> =
                std::mem::take(&mut *self.dirty.lock().unwrap_or_else(|e| e.into_inner()))
                    .into_iter()
                    .collect();
            let wanted = |c: &Arc<str>| self.channels.contains_key(c) || self.is_fixed(c);
            let (add, remove): (Vec<_>, Vec<_>) = dirty
                .into_iter()
                .filter(|c| wanted(c) != have.contains(c))
                .partition(|c| wanted(c));
            let mut failed = Vec::new();
            for batch in add.chunks(BATCH) {
                let names: Vec<&str> = batch.iter().map(|c| &**c).collect();
                let refused = link.subscribe(&names).await;
                if !refused.is_empty() {
                    errors.inc();
                }
                for (i, c) in batch.iter().enumerate() {
                    if refused.contains(&i) {
                        failed.push(c.clone());
                    } else {
                        have.insert(c.clone());
                        self.confirmed(c);
                    }
                }
            }
            for batch in remove.chunks(BATCH) {
                let names: Vec<&str> = batch.iter().map(|c| &**c).collect();
                let refused = link.unsubscribe(&names).await;
                if !refused.is_empty() {
                    errors.inc();
                }
                for (i, c) in batch.iter().enumerate() {
                    if refused.contains(&i) {
                        failed.push(c.clone());
                    } else {
                        have.remove(c);
                    }
                }
            }
            if !failed.is_empty() {
                tokio::time::sleep(Duration::from_millis(200)).await;
                for c in failed {
                    self.mark(c);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::redis::sub::{Filled, Next, Out};
    use crate::payload::Payload;
    use crate::wire::Author;
    use crate::wire::Publication;
    use std::sync::Mutex as StdMutex;

    /// A closure as a room's deliveries: its messages (resets unseen).
    impl<F: Fn(&Arc<Publication>)> Out for F {
        fn message(&self, p: &Arc<Publication>) {
            self(p)
        }
        fn reset(&self, _: &str) {}
    }

    /// Everything a room's deliveries were told, in order.
    #[derive(Default)]
    struct Told(StdMutex<Vec<String>>);

    impl Out for Told {
        fn message(&self, p: &Arc<Publication>) {
            self.0.lock().unwrap().push(p.offset.to_string());
        }
        fn reset(&self, epoch: &str) {
            self.0.lock().unwrap().push(format!("reset {epoch}"));
        }
    }

    impl Told {
        fn seen(&self) -> Vec<String> {
            self.0.lock().unwrap().clone()
        }
    }

    fn p(offset: u64) -> Arc<Publication> {
        Arc::new(Publication::new(
            "r/a".into(),
            offset,
            0,
            Author::server(),
            Payload::Text("x".into()),
            None,
        ))
    }

    #[test]
    fn deliveries_stay_in_order_across_a_gap() {
        let sub = Sub::new("r/a".into(), "c".into());
        let got = StdMutex::new(Vec::new());
        let deliver = |p: &Arc<Publication>| got.lock().unwrap().push(p.offset);
        assert!(matches!(sub.arrived("E", p(1), &deliver), Next::Done));
        assert!(matches!(sub.arrived("E", p(2), &deliver), Next::Done));
        // 3 and 4 were lost on the way: 5 waits for them.
        assert!(matches!(sub.arrived("E", p(5), &deliver), Next::Fill(2)));
        assert!(matches!(sub.arrived("E", p(6), &deliver), Next::Done));
        assert_eq!(*got.lock().unwrap(), [1, 2]);
        // The stream had them.
        let got_back = sub.filled(Some(("E".into(), vec![p(3), p(4), p(5)])), &deliver);
        assert_eq!(got_back, Filled::default());
        assert_eq!(*got.lock().unwrap(), [1, 2, 3, 4, 5, 6]);
        // A duplicate is dropped; a new epoch starts over.
        sub.arrived("E", p(6), &deliver);
        sub.arrived("F", p(1), &deliver);
        assert_eq!(*got.lock().unwrap(), [1, 2, 3, 4, 5, 6, 1]);
    }

    #[test]
    fn what_the_stream_no_longer_has_is_counted_and_skipped() {
        let sub = Sub::new("r/a".into(), "c".into());
        let got = StdMutex::new(Vec::new());
        let deliver = |p: &Arc<Publication>| got.lock().unwrap().push(p.offset);
        sub.arrived("E", p(1), &deliver);
        assert!(matches!(sub.arrived("E", p(9), &deliver), Next::Fill(1)));
        // Only 7, 8 and 9 were kept.
        let read = sub.filled(Some(("E".into(), vec![p(7), p(8), p(9)])), &deliver);
        assert_eq!(read.lost, 5);
        assert_eq!(*got.lock().unwrap(), [1, 7, 8, 9]);
        // The read failed: what was held goes out anyway, in order.
        sub.arrived("E", p(12), &deliver);
        sub.arrived("E", p(11), &deliver);
        assert_eq!(sub.filled(None, &deliver).lost, 1, "10 never came");
        assert_eq!(*got.lock().unwrap(), [1, 7, 8, 9, 11, 12]);
    }

    #[test]
    fn an_offset_the_stream_never_had_is_refused_and_the_room_goes_on() {
        let sub = Sub::new("r/a".into(), "c".into());
        let got = StdMutex::new(Vec::new());
        let deliver = |p: &Arc<Publication>| got.lock().unwrap().push(p.offset);
        sub.seed("E", 4);
        // Forged far ahead: held until the stream is read, which ends at 4.
        assert!(matches!(
            sub.arrived("E", p(u64::MAX), &deliver),
            Next::Fill(4)
        ));
        // A real message comes while the read is under way.
        assert!(matches!(sub.arrived("E", p(5), &deliver), Next::Done));
        let read = sub.filled(Some(("E".into(), vec![])), &deliver);
        assert_eq!((read.lost, read.refused, read.again), (0, 1, None));
        assert_eq!(*got.lock().unwrap(), [5], "5 came after the read began");
        sub.arrived("E", p(6), &deliver);
        assert_eq!(*got.lock().unwrap(), [5, 6], "the room did not go silent");
    }

    #[test]
    fn a_held_message_that_came_during_the_read_is_read_for_again() {
        let sub = Sub::new("r/a".into(), "c".into());
        let got = StdMutex::new(Vec::new());
        let deliver = |p: &Arc<Publication>| got.lock().unwrap().push(p.offset);
        sub.seed("E", 1);
        assert!(matches!(sub.arrived("E", p(3), &deliver), Next::Fill(1)));
        // 6 comes during the read (4 and 5 are on their way).
        sub.arrived("E", p(6), &deliver);
        let read = sub.filled(Some(("E".into(), vec![p(2), p(3)])), &deliver);
        assert_eq!((read.refused, read.again), (0, Some(3)));
        let read = sub.filled(Some(("E".into(), vec![p(4), p(5), p(6)])), &deliver);
        assert_eq!(read, Filled::default());
        assert_eq!(*got.lock().unwrap(), [2, 3, 4, 5, 6]);
    }

    #[test]
    fn a_second_message_with_the_last_offset_is_a_conflict() {
        let sub = Sub::new("r/a".into(), "c".into());
        let got = StdMutex::new(Vec::new());
        let deliver = |p: &Arc<Publication>| got.lock().unwrap().push(p.offset);
        sub.seed("E", 1);
        // A forged 2 comes first, then the real one.
        let forged = Arc::new(Publication::new(
            "r/a".into(),
            2,
            0,
            Author::server(),
            Payload::Text("forged".into()),
            None,
        ));
        sub.arrived("E", forged.clone(), &deliver);
        let Next::Conflict(real) = sub.arrived("E", p(2), &deliver) else {
            panic!("a conflict");
        };
        // The stream has the real one: it is delivered too.
        assert!(sub.checked(&real, Some(p(2)), &deliver));
        // The same message again is a plain duplicate; a forged one after
        // the real one is found out and dropped.
        assert!(matches!(sub.arrived("E", p(2), &deliver), Next::Done));
        let Next::Conflict(again) = sub.arrived("E", forged, &deliver) else {
            panic!("a conflict");
        };
        assert!(!sub.checked(&again, Some(p(2)), &deliver));
        assert_eq!(*got.lock().unwrap(), [2, 2]);
    }

    /// A room whose stream began again (Redis lost it: offsets from 1 in a
    /// new epoch) is told so before the new life's first message, whether
    /// that message comes on the channel or from a read of the stream; a
    /// first message that is not offset 1 waits for the stream's start.
    #[test]
    fn a_stream_that_began_again_is_told_before_its_first_message() {
        let told = Told::default();
        let sub = Sub::new("r/a".into(), "c".into());
        sub.arrived("E", p(1), &told);
        sub.arrived("E", p(2), &told);
        assert!(matches!(sub.arrived("F", p(1), &told), Next::Done));
        sub.arrived("F", p(2), &told);
        assert_eq!(told.seen(), ["1", "2", "reset F", "1", "2"]);

        // The new life's first message was lost on the way.
        let told = Told::default();
        let sub = Sub::new("r/a".into(), "c".into());
        sub.arrived("E", p(7), &told);
        assert!(matches!(sub.arrived("G", p(2), &told), Next::Fill(0)));
        assert_eq!(told.seen(), ["7", "reset G"]);
        let read = sub.filled(Some(("G".into(), vec![p(1), p(2)])), &told);
        assert_eq!(read, Filled::default());
        assert_eq!(told.seen(), ["7", "reset G", "1", "2"]);

        // A read after a resubscription finds another epoch: told, and the
        // new stream read from its start.
        let told = Told::default();
        let sub = Sub::new("r/a".into(), "c".into());
        sub.arrived("E", p(1), &told);
        sub.arrived("E", p(2), &told);
        assert!(matches!(sub.resync(), Next::Fill(2)));
        let read = sub.filled(Some(("H".into(), vec![])), &told);
        assert_eq!(read.again, Some(0));
        let read = sub.filled(Some(("H".into(), vec![p(1), p(2)])), &told);
        assert_eq!(read, Filled::default());
        sub.arrived("H", p(3), &told);
        assert_eq!(told.seen(), ["1", "2", "reset H", "1", "2", "3"]);
    }
}
