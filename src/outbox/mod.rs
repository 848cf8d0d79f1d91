//! A connection's bounded outbox: the only way anything reaches its client.
//!
//! Producers (the connection itself, other members' broadcasts) never block:
//! [`Outbox::queue`] either queues the encoded item or finds the outbox full,
//! and a full outbox makes its owner a slow consumer (closed with 4008 and
//! counted). Bounds cover items queued *and* items taken by the transport
//! but not yet written, so one stuck socket holds at most `max_bytes` of
//! memory.
//!
//! Items ([`Item`]) are already encoded for the connection's wire; a
//! requested close is kept as a code and a reason, for the transport to say
//! in its own way.
//! The transport takes everything queued in one lock and writes it with
//! vectored writes: one syscall per wake-up, however many items arrived.
//! A WebSocket connection's idle writer is skipped altogether: what others
//! queue for it is written from their side ([`direct`]).

mod direct;

use std::collections::VecDeque;
use std::io::IoSlice;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use prometheus::IntCounter;
use tokio::sync::Notify;

use crate::close;

pub(crate) use direct::{batch, Sink};

/// One thing queued for a client, encoded for its wire: the bytes its
/// transport sends as one message (a WebSocket frame, a socket.io packet)
/// and, for a socket.io packet with a binary attachment, the attachment that
/// follows it. Both live in one buffer, shared by every member it is queued
/// for; an item is a pointer and a length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    bytes: Bytes,
    /// Where the attachment starts in `bytes` (0: there is none).
    attachment_at: u32,
}

impl Item {
    /// An item that is one message.
    pub fn new(bytes: Bytes) -> Item {
        Item {
            bytes,
            attachment_at: 0,
        }
    }

    /// A message followed by its binary attachment (one allocation).
    pub fn with_attachment(message: &[u8], attachment: &[u8]) -> Item {
        let mut b = Vec::with_capacity(message.len() + attachment.len());
        b.extend_from_slice(message);
        b.extend_from_slice(attachment);
        Item {
            bytes: Bytes::from(b),
            // A message is never empty; a zero would read as "none".
            attachment_at: u32::try_from(message.len().max(1)).unwrap_or(u32::MAX),
        }
    }

    /// Its size in bytes (what the outbox's byte bound counts).
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether it holds no bytes.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The message and the attachment, if any.
    pub fn parts(&self) -> (Bytes, Option<Bytes>) {
        match self.attachment_at as usize {
            0 => (self.bytes.clone(), None),
            at => {
                let at = at.min(self.bytes.len());
                (self.bytes.slice(..at), Some(self.bytes.slice(at..)))
            }
        }
    }

    /// Drop the first `n` bytes once a stream transport has written them.
    pub fn advance(&mut self, n: usize) {
        debug_assert_eq!(self.attachment_at, 0, "a stream item has no attachment");
        bytes::Buf::advance(&mut self.bytes, n);
    }
}

impl From<Bytes> for Item {
    fn from(bytes: Bytes) -> Item {
        Item::new(bytes)
    }
}

impl std::ops::Deref for Item {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.bytes
    }
}

/// Why an item could not be queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PushError {
    /// The bound in items or bytes is reached: the owner is a slow consumer.
    Full,
    /// The connection is closing; nothing more will be written.
    Closed,
}

/// What queuing needs so that the item is written.
enum Then {
    /// Wake the owner.
    Wake,
    /// Note the outbox for the end of this thread's batch.
    Note,
    /// Nothing: the owner writes it, or a batch already noted the outbox.
    Nothing,
}

/// Items per direct `writev` call (as the owner's writer).
const MAX_IOV: usize = 64;

/// When a requested Close frame is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseMode {
    /// After every frame already queued (script closes, shutdown, close replies).
    AfterQueued,
    /// Immediately, discarding what is queued (slow consumers, dead peers).
    Now,
}

/// What the transport should write next.
#[derive(Debug, PartialEq, Eq)]
pub enum Take {
    /// Nothing is queued.
    Empty,
    /// Items were moved into the caller's batch.
    Frames,
    /// Items were moved into the caller's batch, and the first one is
    /// partly written already (by a direct write): it must be finished
    /// first, and its start was counted.
    Started,
    /// Everything queued has been taken; close with this code and reason last.
    Close(u16, String),
    /// The session is over.
    Finished,
}

/// Owner side, once a batch is written: give its slots back (40 bytes each;
/// a burst may have grown it to thousands). The next [`Outbox::take`] swaps
/// this empty one into the outbox, so a connection with nothing queued keeps
/// no slots at all, and a busy one allocates once per batch.
pub fn trim(batch: &mut VecDeque<Item>) {
    if batch.is_empty() && batch.capacity() > 0 {
        *batch = VecDeque::new();
    }
}

/// A cheap, cloneable handle to one connection's outbox.
#[derive(Clone)]
pub struct Outbox {
    shared: Arc<Shared>,
}

struct Shared {
    // A std Mutex: held only for a few pointer moves, never across an await.
    state: Mutex<State>,
    /// Wakes the owning session when someone else queued a frame.
    wake: Notify,
    /// Set once a Close has been requested.
    closing: AtomicBool,
    max_frames: usize,
    max_bytes: usize,
    /// `roomcast_slow_consumers_total`.
    slow: IntCounter,
}

struct State {
    queue: VecDeque<Item>,
    /// Items queued or taken by the transport and not yet written.
    frames: usize,
    /// Bytes queued or taken by the transport and not yet written.
    bytes: usize,
    close: Option<(u16, String, CloseMode)>,
    close_taken: bool,
    finished: bool,
    /// It filled up; whether its owner was a slow consumer or already gone
    /// is settled when the connection ends ([`Outbox::settle`]).
    overflowed: bool,
    /// The socket others may write to while the owner's writer is idle.
    sink: Option<Arc<dyn Sink>>,
    /// The owner's writer holds a batch it has not finished writing.
    owner_writing: bool,
    /// Noted for the end of some thread's batch ([`direct`]).
    noted: bool,
    /// The front item is partly on the wire (a direct write stopped in it).
    front_started: bool,
}

impl Outbox {
    /// An empty outbox bounded to `max_frames` items and `max_bytes` bytes;
    /// `slow` counts it if it ever fills up.
    pub fn new(max_frames: usize, max_bytes: usize, slow: IntCounter) -> Outbox {
        Outbox {
            shared: Arc::new(Shared {
                state: Mutex::new(State {
                    queue: VecDeque::new(),
                    frames: 0,
                    bytes: 0,
                    close: None,
                    close_taken: false,
                    finished: false,
                    overflowed: false,
                    sink: None,
                    owner_writing: false,
                    noted: false,
                    front_started: false,
                }),
                wake: Notify::new(),
                closing: AtomicBool::new(false),
                max_frames,
                max_bytes,
                slow,
            }),
        }
    }

    /// Queue an encoded item without waiting, and wake the owner. A full
    /// outbox closes its owner as a slow consumer. Returns whether it was queued.
    pub fn queue(&self, item: impl Into<Item>) -> bool {
        match self.enqueue(item.into(), true) {
            Ok(Then::Wake) => {
                self.shared.wake.notify_one();
                true
            }
            Ok(Then::Note) => {
                direct::note(self);
                true
            }
            Ok(Then::Nothing) => true,
            Err(e) => self.refused(e),
        }
    }

    /// Queue an item from the owning session itself, which flushes after it
    /// is done handling what it read: no wake-up needed.
    pub fn queue_own(&self, item: impl Into<Item>) -> bool {
        match self.enqueue(item.into(), false) {
            Ok(_) => true,
            Err(e) => self.refused(e),
        }
    }

    fn refused(&self, e: PushError) -> bool {
        if e == PushError::Full {
            self.slow_consumer();
        }
        false
    }

    /// Close the owner of a full outbox (4008), once. It is counted as a
    /// slow consumer when the connection ends, unless the client turns out
    /// to have gone already ([`Outbox::settle`]): when a busy room's
    /// members vanish at once, their outboxes fill before their resets are
    /// read, and a mass disconnect is not a thousand slow consumers.
    pub fn slow_consumer(&self) {
        if self.close(
            close::SLOW_CONSUMER,
            "slow consumer: outbox full",
            CloseMode::Now,
        ) {
            self.lock().overflowed = true;
            tracing::debug!("closing slow consumer (outbox full)");
        }
    }

    /// The connection ended: if its outbox had filled up, count a slow
    /// consumer unless `gone` (the client had already disconnected: its
    /// TCP connection ended or failed without a close handshake). Once;
    /// true when it had filled up and the client was gone.
    pub fn settle(&self, gone: bool) -> bool {
        let overflowed = std::mem::take(&mut self.lock().overflowed);
        if overflowed && !gone {
            self.shared.slow.inc();
        }
        overflowed && gone
    }

    /// Wake the owner: what the session queued itself (`queue_own`) from
    /// outside the owner's task is to be written.
    pub fn wake(&self) {
        self.shared.wake.notify_one();
    }

    /// The most items it holds.
    pub fn capacity(&self) -> usize {
        self.shared.max_frames
    }

    /// Queue `frame`; `others` when it is not the owner's own (which it
    /// writes itself): then what to do so that it is written.
    fn enqueue(&self, frame: Item, others: bool) -> Result<Then, PushError> {
        let len = frame.len();
        let mut st = self.lock();
        if st.close.is_some() || st.finished {
            return Err(PushError::Closed);
        }
        // A single frame larger than the whole byte budget still goes through
        // when the outbox is empty, so a configured message size always fits.
        if st.frames >= self.shared.max_frames
            || (st.bytes > 0 && st.bytes + len > self.shared.max_bytes)
        {
            tracing::debug!(frames = st.frames, bytes = st.bytes, "outbox full");
            return Err(PushError::Full);
        }
        st.queue.push_back(frame);
        st.frames += 1;
        st.bytes += len;
        if !others {
            return Ok(Then::Nothing);
        }
        if st.noted {
            // Some batch writes it when it ends.
            return Ok(Then::Nothing);
        }
        if st.sink.is_some() && !st.owner_writing && direct::collecting() {
            st.noted = true;
            return Ok(Then::Note);
        }
        Ok(Then::Wake)
    }

    /// Give the outbox the socket others may write to directly.
    pub(crate) fn attach(&self, sink: Arc<dyn Sink>) {
        self.lock().sink = Some(sink);
    }

    /// The socket is going away: nothing more is written to it from outside.
    pub(crate) fn detach(&self) {
        let sink = self.lock().sink.take();
        drop(sink);
    }

    /// The end of a batch that noted this outbox: write what is queued,
    /// unless the owner's writer is busy, a close is pending, or the socket
    /// is full; then the owner is woken to carry on.
    fn write_direct(&self) {
        let mut st = self.lock();
        st.noted = false;
        if st.queue.is_empty() {
            return;
        }
        let sink = match &st.sink {
            Some(sink) if !st.owner_writing && st.close.is_none() && !st.finished => sink.clone(),
            _ => {
                drop(st);
                self.shared.wake.notify_one();
                return;
            }
        };
        let st = &mut *st;
        while !st.queue.is_empty() {
            let mut slices = [IoSlice::new(&[]); MAX_IOV];
            let mut n = 0;
            for (slot, f) in slices.iter_mut().zip(st.queue.iter()) {
                *slot = IoSlice::new(f);
                n += 1;
            }
            let mut written = match sink.try_write_vectored(&slices[..n]) {
                Ok(0) => break,
                Ok(w) => w,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                // Full, or failed: the owner finds out when it writes.
                Err(_) => break,
            };
            while written > 0 {
                let front = st.queue.front_mut().expect("wrote more than was queued");
                if !st.front_started {
                    sink.sent(front);
                }
                if written >= front.len() {
                    written -= front.len();
                    st.frames -= 1;
                    st.bytes -= front.len();
                    st.queue.pop_front();
                    st.front_started = false;
                } else {
                    front.advance(written);
                    st.bytes -= written;
                    st.front_started = true;
                    written = 0;
                }
            }
        }
        if st.queue.is_empty() {
            // As the owner's writer does: an idle outbox keeps no slots.
            trim(&mut st.queue);
        } else {
            self.shared.wake.notify_one();
        }
    }

    /// Ask for a Close frame. The first request wins, except that `Now`
    /// overrides a pending `AfterQueued`. Returns whether this call took effect.
    pub fn close(&self, code: u16, reason: &str, mode: CloseMode) -> bool {
        {
            let mut st = self.lock();
            if st.finished || st.close_taken {
                return false;
            }
            match (&st.close, mode) {
                (None, _) => {}
                (Some((_, _, CloseMode::AfterQueued)), CloseMode::Now) => {}
                _ => return false,
            }
            if mode == CloseMode::Now {
                // A frame partly on the wire is finished first.
                let keep = usize::from(st.front_started).min(st.queue.len());
                let frames = st.queue.len() - keep;
                let bytes: usize = st.queue.drain(keep..).map(|f| f.len()).sum();
                st.frames -= frames;
                st.bytes -= bytes;
            }
            st.close = Some((code, reason.to_string(), mode));
        }
        self.shared.closing.store(true, Ordering::Release);
        self.shared.wake.notify_one();
        true
    }

    /// Whether a Close has been requested (nothing more can be pushed).
    pub fn is_closing(&self) -> bool {
        self.shared.closing.load(Ordering::Acquire)
    }

    /// Whether a Close that discards pending frames has been requested.
    pub fn is_closing_now(&self) -> bool {
        self.is_closing() && matches!(self.lock().close, Some((_, _, CloseMode::Now)))
    }

    /// The session is over: pushes fail from now on.
    pub fn finish(&self) {
        let overflowed = {
            let mut st = self.lock();
            st.finished = true;
            std::mem::take(&mut st.overflowed)
        };
        // Not settled by a transport: it was not seen to go, so it was slow.
        if overflowed {
            self.shared.slow.inc();
        }
    }

    /// Owner side: move queued frames into `batch` (which must be empty), or
    /// hand over the Close frame once nothing else is queued.
    pub fn take(&self, batch: &mut VecDeque<Item>) -> Take {
        let mut st = self.lock();
        if st.finished {
            return Take::Finished;
        }
        let close_now = matches!(st.close, Some((_, _, CloseMode::Now)));
        if !st.queue.is_empty() && (!close_now || st.front_started) {
            std::mem::swap(&mut st.queue, batch);
            st.owner_writing = true;
            return if std::mem::take(&mut st.front_started) {
                Take::Started
            } else {
                Take::Frames
            };
        }
        match (&st.close, st.close_taken) {
            (Some((code, reason, _)), false) => {
                let close = Take::Close(*code, reason.clone());
                st.close_taken = true;
                close
            }
            _ => Take::Empty,
        }
    }

    /// Owner side: `frames` frames totalling `bytes` bytes have left the queue
    /// for good (written, or dropped by a `Now` close), and its writer holds
    /// nothing more.
    pub fn written(&self, frames: usize, bytes: usize) {
        let mut st = self.lock();
        st.frames = st.frames.saturating_sub(frames);
        st.bytes = st.bytes.saturating_sub(bytes);
        st.owner_writing = false;
    }

    /// Owner side: resolves when someone else queued a frame or asked to close.
    pub async fn wait(&self) {
        self.shared.wake.notified().await
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // Nothing here can leave the state inconsistent on a panic: recover.
        self.shared.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outbox(frames: usize, bytes: usize) -> Outbox {
        Outbox::new(frames, bytes, IntCounter::new("slow", "slow").unwrap())
    }

    #[test]
    fn full_by_frames_and_by_bytes_makes_a_slow_consumer() {
        let o = outbox(2, 100);
        assert!(o.queue(Bytes::from_static(b"a")));
        assert!(o.queue(Bytes::from_static(b"b")));
        assert!(!o.queue(Bytes::from_static(b"c")));
        assert!(o.is_closing_now(), "closed at once, queue discarded");
        assert_eq!(o.shared.slow.get(), 0, "counted when the connection ends");
        o.slow_consumer();
        o.settle(false);
        assert_eq!(o.shared.slow.get(), 1, "the client was there: slow");
        o.settle(false);
        o.finish();
        assert_eq!(o.shared.slow.get(), 1, "counted once");

        let o = outbox(100, 10);
        assert!(o.queue(Bytes::from(vec![0; 8])));
        assert!(!o.queue(Bytes::from(vec![0; 8])));
    }

    #[test]
    fn a_full_outbox_whose_client_was_gone_is_no_slow_consumer() {
        let o = outbox(1, 100);
        assert!(o.queue(Bytes::from_static(b"a")));
        assert!(!o.queue(Bytes::from_static(b"b")));
        o.settle(true);
        o.finish();
        assert_eq!(o.shared.slow.get(), 0);
        // Not settled by its transport: counted when it is finished.
        let o = outbox(1, 100);
        assert!(o.queue(Bytes::from_static(b"a")));
        assert!(!o.queue(Bytes::from_static(b"b")));
        o.finish();
        assert_eq!(o.shared.slow.get(), 1);
    }

    #[test]
    fn a_written_batch_keeps_no_slots() {
        let o = outbox(100_000, 1 << 30);
        for _ in 0..10_000 {
            assert!(o.queue(Bytes::from_static(b"leave")));
        }
        let mut batch = VecDeque::new();
        assert_eq!(o.take(&mut batch), Take::Frames);
        assert!(batch.capacity() >= 10_000);
        batch.clear();
        trim(&mut batch);
        assert_eq!(batch.capacity(), 0);
        // One message later, idle again: neither side holds a slot.
        assert!(o.queue(Bytes::from_static(b"x")));
        assert_eq!(o.take(&mut batch), Take::Frames);
        assert!(batch.capacity() >= 1);
        assert_eq!(o.lock().queue.capacity(), 0, "the outbox got the empty one");
        batch.clear();
        trim(&mut batch);
        assert_eq!(batch.capacity(), 0);
    }

    #[test]
    fn one_oversized_frame_fits_an_empty_outbox() {
        let o = outbox(10, 10);
        assert!(o.queue(Bytes::from(vec![0; 50])));
        assert!(!o.queue(Bytes::from_static(b"x")));
    }

    #[test]
    fn owner_takes_everything_queued_then_the_close() {
        let o = outbox(10, 1000);
        assert!(o.queue(Bytes::from_static(b"1")));
        assert!(o.queue_own(Bytes::from_static(b"2")));
        assert!(o.close(1000, "bye", CloseMode::AfterQueued));
        assert!(!o.queue(Bytes::from_static(b"3")));
        let mut batch = VecDeque::new();
        assert_eq!(o.take(&mut batch), Take::Frames);
        assert_eq!(batch.len(), 2);
        batch.clear();
        o.written(2, 2);
        assert_eq!(o.take(&mut batch), Take::Close(1000, "bye".into()));
        assert_eq!(
            o.take(&mut batch),
            Take::Empty,
            "the close is handed over once"
        );
    }

    #[test]
    fn close_now_discards_the_queue_and_frees_the_budget() {
        let o = outbox(10, 1000);
        assert!(o.queue(Bytes::from_static(b"1")));
        assert!(o.close(4008, "slow", CloseMode::AfterQueued));
        assert!(o.close(4008, "slow", CloseMode::Now));
        assert!(!o.close(1000, "late", CloseMode::Now));
        assert!(o.is_closing_now());
        let mut batch = VecDeque::new();
        assert!(matches!(o.take(&mut batch), Take::Close(4008, _)));
        assert!(batch.is_empty());
    }

    /// A socket that takes `room` bytes, then is full.
    struct Fake {
        room: Mutex<usize>,
        wrote: Mutex<Vec<u8>>,
        sent: std::sync::atomic::AtomicUsize,
    }

    impl Sink for Fake {
        fn try_write_vectored(&self, bufs: &[IoSlice<'_>]) -> std::io::Result<usize> {
            let mut room = self.room.lock().unwrap();
            if *room == 0 {
                return Err(std::io::ErrorKind::WouldBlock.into());
            }
            let mut n = 0;
            for b in bufs {
                let take = b.len().min(*room - n);
                self.wrote.lock().unwrap().extend_from_slice(&b[..take]);
                n += take;
            }
            *room -= n;
            Ok(n)
        }

        fn sent(&self, _: &Item) {
            self.sent.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn fake(room: usize) -> Arc<Fake> {
        Arc::new(Fake {
            room: Mutex::new(room),
            wrote: Mutex::new(Vec::new()),
            sent: Default::default(),
        })
    }

    #[test]
    fn a_batch_writes_what_others_queue_for_an_idle_owner_directly() {
        let o = outbox(10, 1000);
        let sink = fake(1000);
        o.attach(sink.clone());
        batch(|| {
            assert!(o.queue(Bytes::from_static(b"ab")));
            assert!(o.queue(Bytes::from_static(b"cd")));
            assert!(o.lock().noted, "noted once, written at the end");
            assert!(sink.wrote.lock().unwrap().is_empty());
        });
        assert_eq!(&sink.wrote.lock().unwrap()[..], b"abcd");
        assert_eq!(sink.sent.load(Ordering::Relaxed), 2);
        let st = o.lock();
        assert_eq!((st.frames, st.bytes, st.noted), (0, 0, false));
        assert_eq!(st.queue.capacity(), 0);
        drop(st);
        // Outside a batch, or with the owner's writer busy: the owner is woken.
        assert!(o.queue(Bytes::from_static(b"e")));
        assert!(sink.wrote.lock().unwrap().len() == 4);
        let mut taken = VecDeque::new();
        assert_eq!(o.take(&mut taken), Take::Frames);
        batch(|| assert!(o.queue(Bytes::from_static(b"f"))));
        assert_eq!(sink.wrote.lock().unwrap().len(), 4, "the owner is writing");
        o.written(1, 1);
        batch(|| assert!(o.queue(Bytes::from_static(b"g"))));
        assert_eq!(&sink.wrote.lock().unwrap()[..], b"abcdfg", "in order");
    }

    #[test]
    fn a_direct_write_that_stops_in_an_item_leaves_its_rest_to_the_owner() {
        let o = outbox(10, 1000);
        let sink = fake(3);
        o.attach(sink.clone());
        batch(|| {
            assert!(o.queue(Bytes::from_static(b"ab")));
            assert!(o.queue(Bytes::from_static(b"cd")));
            assert!(o.queue(Bytes::from_static(b"ef")));
        });
        assert_eq!(&sink.wrote.lock().unwrap()[..], b"abc");
        assert_eq!(sink.sent.load(Ordering::Relaxed), 2, "two begun");
        let left = {
            let st = o.lock();
            (st.frames, st.bytes)
        };
        assert_eq!(left, (2, 3));
        // A close that cannot wait still finishes the frame on the wire.
        assert!(o.close(4008, "slow", CloseMode::Now));
        let mut taken = VecDeque::new();
        assert_eq!(o.take(&mut taken), Take::Started);
        assert_eq!(taken.len(), 1);
        assert_eq!(&taken[0][..], b"d");
        taken.clear();
        o.written(1, 1);
        assert!(matches!(o.take(&mut taken), Take::Close(4008, _)));
    }

    #[test]
    fn a_detached_or_closing_outbox_is_not_written_from_outside() {
        let o = outbox(10, 1000);
        let sink = fake(1000);
        o.attach(sink.clone());
        assert!(o.close(1000, "bye", CloseMode::AfterQueued));
        batch(|| o.queue(Bytes::from_static(b"x")));
        assert!(sink.wrote.lock().unwrap().is_empty());
        let o = outbox(10, 1000);
        o.attach(sink.clone());
        o.detach();
        batch(|| assert!(o.queue(Bytes::from_static(b"x"))));
        assert!(sink.wrote.lock().unwrap().is_empty());
        assert_eq!(o.lock().frames, 1, "still queued for the owner");
    }

    #[tokio::test]
    async fn items_from_others_wake_the_owner() {
        let o = outbox(10, 1000);
        assert!(o.queue(Bytes::from_static(b"1")));
        tokio::time::timeout(std::time::Duration::from_secs(1), o.wait())
            .await
            .expect("a stored wake-up");
    }
}
