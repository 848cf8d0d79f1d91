//! One room's subscription on this node: delivery in offset order, held
//! messages while a gap is filled from the stream, and the checks that keep
//! a forged offset from moving the room's position (see `subs.rs` for the
//! whole scheme).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::watch;

use crate::wire::Publication;

/// Messages held for a room while a gap is being filled; past this the gap
/// is given up on and what is held is delivered in order.
const HELD_MAX: usize = 10_000;

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
    pub(super) fn new(room: Arc<str>, channel: Arc<str>) -> Sub {
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

    pub(super) fn set_ready(&self, ready: bool) {
        self.ready.send_replace(ready);
    }

    /// Wait until Redis confirmed the subscription, at most `timeout`;
    /// whether it did.
    pub(super) async fn wait_ready(&self, timeout: Duration) -> bool {
        wait_until_set(&self.ready, timeout).await
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

/// Wait until `flag` is true, at most `timeout`; whether it became so.
pub(super) async fn wait_until_set(flag: &watch::Sender<bool>, timeout: Duration) -> bool {
    let mut rx = flag.subscribe();
    tokio::time::timeout(timeout, rx.wait_for(|r| *r))
        .await
        .is_ok_and(|r| r.is_ok())
}
