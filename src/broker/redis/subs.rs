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

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use dashmap::DashMap;
use tokio::sync::{watch, Notify};

use crate::wire::Publication;

/// Messages held for a room while a gap is being filled; past this the gap
/// is given up on and what is held is delivered in order.
const HELD_MAX: usize = 10_000;
/// Channels per SUBSCRIBE / UNSUBSCRIBE.
const BATCH: usize = 512;

/// What a room's deliveries have reached.
#[derive(Default)]
pub(super) struct Order {
    /// The stream the offsets belong to.
    epoch: Option<Box<str>>,
    /// The last offset delivered.
    last: Option<u64>,
    /// The last publication delivered (a second one with its offset is a
    /// conflict, unless it is the same).
    delivered: Option<Arc<Publication>>,
    /// A read of missed messages is under way.
    filling: bool,
    /// Stream reads issued so far: a held message that came before the
    /// read now under way was in the stream when it was read, if it is real.
    reads: u64,
    /// Messages ahead of a gap, by offset, with the read count when they came.
    held: BTreeMap<u64, (Arc<Publication>, u64)>,
}

impl Order {
    fn deliver(&mut self, p: &Arc<Publication>, deliver: &impl Fn(&Arc<Publication>)) {
        self.last = Some(p.offset);
        self.delivered = Some(p.clone());
        deliver(p);
    }

    /// Start a read of the stream after the last delivered message.
    fn fill(&mut self) -> Next {
        self.filling = true;
        self.reads += 1;
        Next::Fill(self.last.unwrap_or(0))
    }
}

/// Whether two publications are the same message (one came on the channel,
/// the other from the stream, or twice on the channel).
fn same(a: &Publication, b: &Publication) -> bool {
    a.offset == b.offset
        && a.time == b.time
        && a.from == b.from
        && a.payload == b.payload
        && a.except == b.except
}

/// One room channel this node listens to.
pub(super) struct Sub {
    pub(super) room: Arc<str>,
    pub(super) channel: Arc<str>,
    ready: watch::Sender<bool>,
    order: Mutex<Order>,
    /// The last offset delivered here (a publisher's ack waits for its
    /// own message, so it comes after it, as on a single node).
    delivered: watch::Sender<u64>,
}

/// What to do after a message was looked at.
pub(super) enum Next {
    /// Nothing.
    Done,
    /// Read the stream after this offset (of this epoch) and hand it to `filled`.
    Fill(u64),
    /// This message claims the offset of the one just delivered and is not
    /// it: one of them is forged. Read that offset from the stream and
    /// hand it to `checked`.
    Conflict(Arc<Publication>),
}

/// What a read of the stream settled.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Filled {
    /// Offsets the stream no longer had (`roomcast_broker_gaps_total`).
    pub(super) lost: u64,
    /// Held messages the stream never had: forged.
    pub(super) refused: u64,
    /// Held messages that came while the read was under way and are still
    /// ahead of a gap: read again after this offset.
    pub(super) again: Option<u64>,
}

impl Sub {
    fn new(room: Arc<str>, channel: Arc<str>) -> Sub {
        Sub {
            room,
            channel,
            ready: watch::channel(false).0,
            order: Mutex::new(Order::default()),
            delivered: watch::channel(0).0,
        }
    }

    /// Tell who waits how far deliveries have come.
    fn note(&self, o: &Order) {
        if let Some(last) = o.last {
            self.delivered
                .send_if_modified(|v| std::mem::replace(v, last) != last);
        }
    }

    /// Wait until this node has delivered `offset` (at most `timeout`).
    pub(super) async fn delivered_through(&self, offset: u64, timeout: Duration) {
        let mut rx = self.delivered.subscribe();
        let _ = tokio::time::timeout(timeout, rx.wait_for(|v| *v >= offset)).await;
    }

    fn order(&self) -> MutexGuard<'_, Order> {
        self.order.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn is_ready(&self) -> bool {
        *self.ready.borrow()
    }

    fn set_ready(&self, ready: bool) {
        self.ready.send_replace(ready);
    }

    /// Wait until Redis confirmed the subscription, at most `timeout`;
    /// whether it did.
    pub(super) async fn wait_ready(&self, timeout: Duration) -> bool {
        let mut rx = self.ready.subscribe();
        tokio::time::timeout(timeout, rx.wait_for(|r| *r))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// A publication of stream `epoch` came on the channel: deliver it (with
    /// `deliver`) if it is next, hold it if it is ahead of a gap.
    pub(super) fn arrived(
        &self,
        epoch: &str,
        p: Arc<Publication>,
        deliver: impl Fn(&Arc<Publication>),
    ) -> Next {
        let mut o = self.order();
        let next = Self::arrive(&mut o, epoch, p, deliver);
        self.note(&o);
        next
    }

    fn arrive(
        o: &mut Order,
        epoch: &str,
        p: Arc<Publication>,
        deliver: impl Fn(&Arc<Publication>),
    ) -> Next {
        if o.epoch.as_deref() != Some(epoch) {
            // The first message, or the room's stream began again.
            o.epoch = Some(epoch.into());
            o.last = None;
            o.delivered = None;
            o.held.clear();
            o.filling = false;
        }
        match o.last {
            None => {
                o.deliver(&p, &deliver);
                Next::Done
            }
            Some(last) if p.offset < last => Next::Done,
            Some(last) if p.offset == last => match &o.delivered {
                Some(d) if !same(d, &p) => Next::Conflict(p),
                _ => Next::Done,
            },
            Some(last) if p.offset == last + 1 && !o.filling => {
                o.deliver(&p, &deliver);
                Next::Done
            }
            Some(_) => {
                let reads = o.reads;
                o.held.insert(p.offset, (p, reads));
                if o.held.len() > HELD_MAX {
                    o.filling = false;
                    release(o, &deliver);
                    return Next::Done;
                }
                if o.filling {
                    return Next::Done;
                }
                o.fill()
            }
        }
    }

    /// A join read the room's position (`offset` of stream `epoch`): where
    /// deliveries start if none has come yet, so a first message on the
    /// channel is held to the stream like any other.
    pub(super) fn seed(&self, epoch: &str, offset: u64) {
        let mut o = self.order();
        if o.last.is_none() {
            o.epoch = Some(epoch.into());
            o.last = Some(offset);
            self.note(&o);
        }
    }

    /// The stream's message at a conflict's offset (`None` if it could not
    /// be read): the conflicting arrival is delivered if it is the stream's
    /// (the one delivered before was forged), else refused. Whether it was
    /// delivered.
    pub(super) fn checked(
        &self,
        arrival: &Arc<Publication>,
        stream: Option<Arc<Publication>>,
        deliver: impl Fn(&Arc<Publication>),
    ) -> bool {
        let mut o = self.order();
        let real = stream.is_some_and(|s| same(&s, arrival));
        if real && o.last == Some(arrival.offset) {
            o.delivered = Some(arrival.clone());
            deliver(arrival);
            self.note(&o);
            return true;
        }
        false
    }

    /// After a resubscription: read whatever came after the last delivered
    /// message (unless a read is already under way).
    pub(super) fn resync(&self) -> Next {
        let mut o = self.order();
        match o.last {
            Some(_) if !o.filling => o.fill(),
            _ => Next::Done,
        }
    }

    /// The stream's messages after the gap (oldest first, to the stream's
    /// end; `None` if it could not be read, `epoch` the stream's epoch now):
    /// deliver them (the stream's copy, not the channel's), then what was
    /// held and is next. A held message that came before the read and is
    /// beyond the stream's end was never in the stream: refused. One that
    /// came during the read and is still ahead of a gap waits for another.
    pub(super) fn filled(
        &self,
        read: Option<(String, Vec<Arc<Publication>>)>,
        deliver: impl Fn(&Arc<Publication>),
    ) -> Filled {
        let mut o = self.order();
        let mut result = Filled::default();
        if !o.filling {
            return result;
        }
        o.filling = false;
        let missed = match read {
            Some((epoch, missed)) if o.epoch.as_deref() == Some(epoch.as_str()) => missed,
            // Unreadable, or the stream began again: what was held goes
            // out as it is (nothing to check it against).
            _ => {
                result.lost = release(&mut o, &deliver);
                self.note(&o);
                return result;
            }
        };
        for p in missed {
            let last = o.last.unwrap_or(0);
            if p.offset <= last {
                continue;
            }
            result.lost += p.offset - last - 1;
            o.held.remove(&p.offset);
            o.deliver(&p, &deliver);
        }
        let reads = o.reads;
        for (offset, (p, seen)) in std::mem::take(&mut o.held) {
            let last = o.last.unwrap_or(0);
            if offset <= last {
                continue;
            }
            if seen < reads {
                // Here before the read began, yet past the stream's end.
                result.refused += 1;
            } else if offset == last + 1 {
                o.deliver(&p, &deliver);
            } else {
                o.held.insert(offset, (p, seen));
            }
        }
        if !o.held.is_empty() {
            o.fill();
            result.again = o.last;
        }
        self.note(&o);
        result
    }
}

/// Deliver every held message in order, skipping over gaps; how many
/// offsets were skipped.
fn release(o: &mut Order, deliver: &impl Fn(&Arc<Publication>)) -> u64 {
    let mut lost = 0;
    for (offset, (p, _)) in std::mem::take(&mut o.held) {
        let last = o.last.unwrap_or(0);
        if offset <= last {
            continue;
        }
        lost += offset - last - 1;
        o.deliver(&p, deliver);
    }
    lost
}

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
            wake: Notify::new(),
        }
    }

    /// Subscribe every wanted channel again (after Redis came back; a
    /// channel already subscribed is confirmed again, no harm done).
    pub(super) fn resubscribe_all(&self) {
        self.reset.store(true, std::sync::atomic::Ordering::Release);
        self.wake.notify_one();
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
        let mut rx = self.fixed_ready.subscribe();
        tokio::time::timeout(timeout, rx.wait_for(|r| *r))
            .await
            .is_ok_and(|r| r.is_ok())
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
            self.wake.notified().await;
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
                match link.sub.clone().subscribe(&names).await {
                    Ok(()) => {
                        for c in batch {
                            have.insert(c.clone());
                            self.confirmed(c);
                        }
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "subscribe failed; retrying");
                        errors.inc();
                        failed.extend(batch.iter().cloned());
                    }
                }
            }
            for batch in remove.chunks(BATCH) {
                let names: Vec<&str> = batch.iter().map(|c| &**c).collect();
                match link.sub.clone().unsubscribe(&names).await {
                    Ok(()) => {
                        for c in batch {
                            have.remove(c);
                        }
                    }
                    Err(_) => {
                        errors.inc();
                        failed.extend(batch.iter().cloned());
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
    use crate::payload::Payload;
    use crate::wire::Author;
    use std::sync::Mutex as StdMutex;

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
        assert!(matches!(sub.arrived("E", p(1), deliver), Next::Done));
        assert!(matches!(sub.arrived("E", p(2), deliver), Next::Done));
        // 3 and 4 were lost on the way: 5 waits for them.
        assert!(matches!(sub.arrived("E", p(5), deliver), Next::Fill(2)));
        assert!(matches!(sub.arrived("E", p(6), deliver), Next::Done));
        assert_eq!(*got.lock().unwrap(), [1, 2]);
        // The stream had them.
        let got_back = sub.filled(Some(("E".into(), vec![p(3), p(4), p(5)])), deliver);
        assert_eq!(got_back, Filled::default());
        assert_eq!(*got.lock().unwrap(), [1, 2, 3, 4, 5, 6]);
        // A duplicate is dropped; a new epoch starts over.
        sub.arrived("E", p(6), deliver);
        sub.arrived("F", p(1), deliver);
        assert_eq!(*got.lock().unwrap(), [1, 2, 3, 4, 5, 6, 1]);
    }

    #[test]
    fn what_the_stream_no_longer_has_is_counted_and_skipped() {
        let sub = Sub::new("r/a".into(), "c".into());
        let got = StdMutex::new(Vec::new());
        let deliver = |p: &Arc<Publication>| got.lock().unwrap().push(p.offset);
        sub.arrived("E", p(1), deliver);
        assert!(matches!(sub.arrived("E", p(9), deliver), Next::Fill(1)));
        // Only 7, 8 and 9 were kept.
        let read = sub.filled(Some(("E".into(), vec![p(7), p(8), p(9)])), deliver);
        assert_eq!(read.lost, 5);
        assert_eq!(*got.lock().unwrap(), [1, 7, 8, 9]);
        // The read failed: what was held goes out anyway, in order.
        sub.arrived("E", p(12), deliver);
        sub.arrived("E", p(11), deliver);
        assert_eq!(sub.filled(None, deliver).lost, 1, "10 never came");
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
            sub.arrived("E", p(u64::MAX), deliver),
            Next::Fill(4)
        ));
        // A real message comes while the read is under way.
        assert!(matches!(sub.arrived("E", p(5), deliver), Next::Done));
        let read = sub.filled(Some(("E".into(), vec![])), deliver);
        assert_eq!((read.lost, read.refused, read.again), (0, 1, None));
        assert_eq!(*got.lock().unwrap(), [5], "5 came after the read began");
        sub.arrived("E", p(6), deliver);
        assert_eq!(*got.lock().unwrap(), [5, 6], "the room did not go silent");
    }

    #[test]
    fn a_held_message_that_came_during_the_read_is_read_for_again() {
        let sub = Sub::new("r/a".into(), "c".into());
        let got = StdMutex::new(Vec::new());
        let deliver = |p: &Arc<Publication>| got.lock().unwrap().push(p.offset);
        sub.seed("E", 1);
        assert!(matches!(sub.arrived("E", p(3), deliver), Next::Fill(1)));
        // 6 comes during the read (4 and 5 are on their way).
        sub.arrived("E", p(6), deliver);
        let read = sub.filled(Some(("E".into(), vec![p(2), p(3)])), deliver);
        assert_eq!((read.refused, read.again), (0, Some(3)));
        let read = sub.filled(Some(("E".into(), vec![p(4), p(5), p(6)])), deliver);
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
        sub.arrived("E", forged.clone(), deliver);
        let Next::Conflict(real) = sub.arrived("E", p(2), deliver) else {
            panic!("a conflict");
        };
        // The stream has the real one: it is delivered too.
        assert!(sub.checked(&real, Some(p(2)), deliver));
        // The same message again is a plain duplicate; a forged one after
        // the real one is found out and dropped.
        assert!(matches!(sub.arrived("E", p(2), deliver), Next::Done));
        let Next::Conflict(again) = sub.arrived("E", forged, deliver) else {
            panic!("a conflict");
        };
        assert!(!sub.checked(&again, Some(p(2)), deliver));
        assert_eq!(*got.lock().unwrap(), [2, 2]);
    }
}
