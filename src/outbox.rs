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

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use prometheus::IntCounter;
use tokio::sync::Notify;

use crate::close;

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
        let queued = self.queue_own(item.into());
        if queued {
            self.shared.wake.notify_one();
        }
        queued
    }

    /// Queue an item from the owning session itself, which flushes after it
    /// is done handling what it read: no wake-up needed.
    pub fn queue_own(&self, item: impl Into<Item>) -> bool {
        match self.enqueue(item.into()) {
            Ok(()) => true,
            Err(PushError::Closed) => false,
            Err(PushError::Full) => {
                self.slow_consumer();
                false
            }
        }
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

    fn enqueue(&self, frame: Item) -> Result<(), PushError> {
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
        Ok(())
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
                let frames = st.queue.len();
                let bytes: usize = st.queue.drain(..).map(|f| f.len()).sum();
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
        if !st.queue.is_empty() && !close_now {
            std::mem::swap(&mut st.queue, batch);
            return Take::Frames;
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
    /// for good (written, or dropped by a `Now` close).
    pub fn written(&self, frames: usize, bytes: usize) {
        let mut st = self.lock();
        st.frames = st.frames.saturating_sub(frames);
        st.bytes = st.bytes.saturating_sub(bytes);
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

    #[tokio::test]
    async fn items_from_others_wake_the_owner() {
        let o = outbox(10, 1000);
        assert!(o.queue(Bytes::from_static(b"1")));
        tokio::time::timeout(std::time::Duration::from_secs(1), o.wait())
            .await
            .expect("a stored wake-up");
    }
}
