//! One room's subscription on this node: delivery in offset order, held
//! messages while a gap is filled from the stream, and the checks that keep
//! a forged offset from moving the room's position (see `subs.rs` for the
//! whole scheme).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::watch;

use crate::wire::Publication;

/// Where a room's deliveries go: its messages in offset order, and the
/// news that its stream began again (a Redis that lost it: offsets start
/// from 1 in a new epoch), told before the first message of the new life.
pub(super) trait Out {
    /// A message, next in the room's order.
    fn message(&self, p: &Arc<Publication>);
    /// The room's stream is now `epoch`, at offset 0.
    fn reset(&self, epoch: &str);
}

/// What the node's subscriber hands over: the hub's, for `room`.
pub(super) struct ToHub<'a> {
    events: &'a dyn crate::broker::Events,
    room: &'a str,
}

impl<'a> ToHub<'a> {
    /// The deliveries of `sub`'s room, to `events`.
    pub(super) fn new(events: &'a dyn crate::broker::Events, sub: &'a Sub) -> ToHub<'a> {
        ToHub {
            events,
            room: &sub.room,
        }
    }
}

impl Out for ToHub<'_> {
    fn message(&self, p: &Arc<Publication>) {
        self.events.publication(p);
    }

    fn reset(&self, epoch: &str) {
        self.events.reset(self.room, epoch);
    }
}

/// Messages held for a room while a gap is being filled; past this the gap
/// is given up on and what is held is delivered in order.
const HELD_MAX: usize = 10_000;

/// What a room's deliveries have reached.
#[derive(Default)]
pub(super) struct Order {
    /// The stream the offsets belong to.
    epoch: Option<Arc<str>>,
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
    fn deliver(&mut self, p: &Arc<Publication>, out: &impl Out) {
        self.last = Some(p.offset);
        self.delivered = Some(p.clone());
        out.message(p);
    }

    /// The room's stream began again as `epoch`: its members are told, and
    /// its next message is offset 1 (one that is not waits for the stream).
    fn begin_again(&mut self, epoch: &str, out: &impl Out) {
        self.epoch = Some(epoch.into());
        self.last = Some(0);
        self.delivered = None;
        self.held.clear();
        self.filling = false;
        out.reset(epoch);
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
    /// The last offset delivered here, and its stream (a publisher's ack
    /// waits for its own message, so it comes after it, as on a single
    /// node; after a reset too).
    delivered: watch::Sender<(Option<Arc<str>>, u64)>,
    /// When a confirmation of the subscription last made the room catch up
    /// (ms since the Unix epoch).
    caught_up: std::sync::atomic::AtomicU64,
}

/// Confirmations closer together than this catch a room up once (a Redis
/// Cluster's client confirms every subscription again after each topology
/// refresh, many times during a failover).
const CATCH_UP_EVERY_MS: u64 = 500;

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
    pub(super) fn new(room: Arc<str>, channel: Arc<str>) -> Sub {
        Sub {
            room,
            channel,
            ready: watch::channel(false).0,
            order: Mutex::new(Order::default()),
            delivered: watch::channel((None, 0)).0,
            caught_up: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Whether a confirmation at `now_ms` should make the room catch up
    /// (not if one did within [`CATCH_UP_EVERY_MS`]).
    pub(super) fn catch_up_due(&self, now_ms: u64) -> bool {
        use std::sync::atomic::Ordering;
        let last = self.caught_up.load(Ordering::Acquire);
        now_ms.saturating_sub(last) >= CATCH_UP_EVERY_MS
            && self
                .caught_up
                .compare_exchange(last, now_ms, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
    }

    /// Tell who waits how far deliveries have come.
    fn note(&self, o: &Order) {
        if let Some(last) = o.last {
            let stream = o.epoch.as_ref().map(Arc::as_ptr);
            self.delivered.send_if_modified(|(epoch, v)| {
                if *v == last && epoch.as_ref().map(Arc::as_ptr) == stream {
                    return false;
                }
                (*epoch, *v) = (o.epoch.clone(), last);
                true
            });
        }
    }

    /// Wait until this node has delivered `offset` of stream `epoch` (at
    /// most `timeout`).
    pub(super) async fn delivered_through(&self, epoch: &str, offset: u64, timeout: Duration) {
        let mut rx = self.delivered.subscribe();
        let reached =
            |(e, v): &(Option<Arc<str>>, u64)| e.as_deref() == Some(epoch) && *v >= offset;
        let _ = tokio::time::timeout(timeout, rx.wait_for(reached)).await;
    }

    fn order(&self) -> MutexGuard<'_, Order> {
        self.order.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn is_ready(&self) -> bool {
        *self.ready.borrow()
    }

    pub(super) fn set_ready(&self, ready: bool) {
        self.ready.send_replace(ready);
    }

    /// Wait until Redis confirmed the subscription, at most `timeout`;
    /// whether it did.
    pub(super) async fn wait_ready(&self, timeout: Duration) -> bool {
        wait_until_set(&self.ready, timeout).await
    }

    /// A publication of stream `epoch` came on the channel: deliver it (to
    /// `out`) if it is next, hold it if it is ahead of a gap.
    pub(super) fn arrived(&self, epoch: &str, p: Arc<Publication>, out: &impl Out) -> Next {
        let mut o = self.order();
        let next = Self::arrive(&mut o, epoch, p, out);
        self.note(&o);
        next
    }

    fn arrive(o: &mut Order, epoch: &str, p: Arc<Publication>, out: &impl Out) -> Next {
        match o.epoch.as_deref() {
            Some(e) if e == epoch => {}
            // The room's stream began again.
            Some(_) => o.begin_again(epoch, out),
            // The first message this node hears of the room.
            None => {
                o.epoch = Some(epoch.into());
                o.last = None;
            }
        }
        match o.last {
            None => {
                o.deliver(&p, out);
                Next::Done
            }
            Some(last) if p.offset < last => Next::Done,
            Some(last) if p.offset == last => match &o.delivered {
                Some(d) if !same(d, &p) => Next::Conflict(p),
                _ => Next::Done,
            },
            Some(last) if p.offset == last + 1 && !o.filling => {
                o.deliver(&p, out);
                Next::Done
            }
            Some(_) => {
                let reads = o.reads;
                o.held.insert(p.offset, (p, reads));
                if o.held.len() > HELD_MAX {
                    o.filling = false;
                    release(o, out);
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
        out: &impl Out,
    ) -> bool {
        let mut o = self.order();
        let real = stream.is_some_and(|s| same(&s, arrival));
        if real && o.last == Some(arrival.offset) {
            o.delivered = Some(arrival.clone());
            out.message(arrival);
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
    /// A stream that began again (another epoch) is told, and read again
    /// from its start.
    pub(super) fn filled(
        &self,
        read: Option<(String, Vec<Arc<Publication>>)>,
        out: &impl Out,
    ) -> Filled {
        let mut o = self.order();
        let mut result = Filled::default();
        if !o.filling {
            return result;
        }
        o.filling = false;
        let missed = match read {
            Some((epoch, missed)) if o.epoch.as_deref() == Some(epoch.as_str()) => missed,
            // The stream began again: what was held (of its old life) goes
            // out as it is, then the new life from its first message.
            Some((epoch, _)) => {
                result.lost = release(&mut o, out);
                o.begin_again(&epoch, out);
                o.fill();
                result.again = Some(0);
                self.note(&o);
                return result;
            }
            // Unreadable: what was held goes out as it is (nothing to check
            // it against).
            None => {
                result.lost = release(&mut o, out);
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
            o.deliver(&p, out);
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
                o.deliver(&p, out);
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
fn release(o: &mut Order, out: &impl Out) -> u64 {
    let mut lost = 0;
    for (offset, (p, _)) in std::mem::take(&mut o.held) {
        let last = o.last.unwrap_or(0);
        if offset <= last {
            continue;
        }
        lost += offset - last - 1;
        o.deliver(&p, out);
    }
    lost
}

/// Wait until `flag` is true, at most `timeout`; whether it became so.
pub(super) async fn wait_until_set(flag: &watch::Sender<bool>, timeout: Duration) -> bool {
    let mut rx = flag.subscribe();
    tokio::time::timeout(timeout, rx.wait_for(|r| *r))
        .await
        .is_ok_and(|r| r.is_ok())
}
