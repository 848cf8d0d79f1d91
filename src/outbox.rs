//! A connection's bounded outbox: the only way frames reach its socket.
//!
//! Producers (the connection itself, other members' broadcasts) never block:
//! `push` either queues the encoded frame or says the outbox is full, and a
//! full outbox makes its owner a slow consumer. Bounds cover frames queued
//! *and* frames taken by the session but not yet written, so one stuck socket
//! holds at most `max_bytes` of memory.
//!
//! The owning session takes everything queued in one lock and writes it with
//! vectored writes: one syscall per wake-up, however many frames arrived.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::Notify;

use crate::frame;

/// Why a frame could not be queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushError {
    /// The bound in frames or bytes is reached: the owner is a slow consumer.
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

/// What the session should write next.
#[derive(Debug, PartialEq, Eq)]
pub enum Take {
    /// Nothing is queued.
    Empty,
    /// Frames were moved into the caller's batch.
    Frames,
    /// Everything queued has been taken; write this Close frame last.
    Close(Bytes),
    /// The session is over.
    Finished,
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
}

struct State {
    queue: VecDeque<Bytes>,
    /// Frames queued or taken by the session and not yet written.
    frames: usize,
    /// Bytes queued or taken by the session and not yet written.
    bytes: usize,
    close: Option<(Bytes, CloseMode)>,
    close_taken: bool,
    finished: bool,
}

impl Outbox {
    /// An empty outbox bounded to `max_frames` frames and `max_bytes` bytes.
    pub fn new(max_frames: usize, max_bytes: usize) -> Outbox {
        Outbox {
            shared: Arc::new(Shared {
                state: Mutex::new(State {
                    queue: VecDeque::new(),
                    frames: 0,
                    bytes: 0,
                    close: None,
                    close_taken: false,
                    finished: false,
                }),
                wake: Notify::new(),
                closing: AtomicBool::new(false),
                max_frames,
                max_bytes,
            }),
        }
    }

    /// Queue an encoded frame without waiting, and wake the owner.
    pub fn push(&self, frame: Bytes) -> Result<(), PushError> {
        self.enqueue(frame)?;
        self.shared.wake.notify_one();
        Ok(())
    }

    /// Queue a frame from the owning session itself, which flushes after it is
    /// done handling what it read: no wake-up needed.
    pub fn push_own(&self, frame: Bytes) -> Result<(), PushError> {
        self.enqueue(frame)
    }

    fn enqueue(&self, frame: Bytes) -> Result<(), PushError> {
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
                (Some((_, CloseMode::AfterQueued)), CloseMode::Now) => {}
                _ => return false,
            }
            if mode == CloseMode::Now {
                let frames = st.queue.len();
                let bytes: usize = st.queue.drain(..).map(|f| f.len()).sum();
                st.frames -= frames;
                st.bytes -= bytes;
            }
            st.close = Some((frame::close(code, reason), mode));
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
        self.is_closing() && matches!(self.lock().close, Some((_, CloseMode::Now)))
    }

    /// The session is over: pushes fail from now on.
    pub fn finish(&self) {
        self.lock().finished = true;
    }

    /// Owner side: move queued frames into `batch` (which must be empty), or
    /// hand over the Close frame once nothing else is queued.
    pub fn take(&self, batch: &mut VecDeque<Bytes>) -> Take {
        let mut st = self.lock();
        if st.finished {
            return Take::Finished;
        }
        let close_now = matches!(st.close, Some((_, CloseMode::Now)));
        if !st.queue.is_empty() && !close_now {
            std::mem::swap(&mut st.queue, batch);
            return Take::Frames;
        }
        match (&st.close, st.close_taken) {
            (Some((frame, _)), false) => {
                let frame = frame.clone();
                st.close_taken = true;
                Take::Close(frame)
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

    #[test]
    fn full_by_frames_and_by_bytes() {
        let o = Outbox::new(2, 100);
        o.push(Bytes::from_static(b"a")).unwrap();
        o.push(Bytes::from_static(b"b")).unwrap();
        assert_eq!(o.push(Bytes::from_static(b"c")), Err(PushError::Full));

        let o = Outbox::new(100, 10);
        o.push(Bytes::from(vec![0; 8])).unwrap();
        assert_eq!(o.push(Bytes::from(vec![0; 8])), Err(PushError::Full));
    }

    #[test]
    fn one_oversized_frame_fits_an_empty_outbox() {
        let o = Outbox::new(10, 10);
        o.push(Bytes::from(vec![0; 50])).unwrap();
        assert_eq!(o.push(Bytes::from_static(b"x")), Err(PushError::Full));
    }

    #[test]
    fn owner_takes_everything_queued_then_the_close() {
        let o = Outbox::new(10, 1000);
        o.push(Bytes::from_static(b"1")).unwrap();
        o.push_own(Bytes::from_static(b"2")).unwrap();
        assert!(o.close(1000, "bye", CloseMode::AfterQueued));
        assert_eq!(o.push(Bytes::from_static(b"3")), Err(PushError::Closed));
        let mut batch = VecDeque::new();
        assert_eq!(o.take(&mut batch), Take::Frames);
        assert_eq!(batch.len(), 2);
        batch.clear();
        o.written(2, 2);
        assert!(matches!(o.take(&mut batch), Take::Close(_)));
        assert_eq!(
            o.take(&mut batch),
            Take::Empty,
            "the close is handed over once"
        );
    }

    #[test]
    fn close_now_discards_the_queue_and_frees_the_budget() {
        let o = Outbox::new(10, 1000);
        o.push(Bytes::from_static(b"1")).unwrap();
        assert!(o.close(4008, "slow", CloseMode::AfterQueued));
        assert!(o.close(4008, "slow", CloseMode::Now));
        assert!(!o.close(1000, "late", CloseMode::Now));
        assert!(o.is_closing_now());
        let mut batch = VecDeque::new();
        assert!(matches!(o.take(&mut batch), Take::Close(_)));
        assert!(batch.is_empty());
    }

    #[tokio::test]
    async fn pushes_from_others_wake_the_owner() {
        let o = Outbox::new(10, 1000);
        o.push(Bytes::from_static(b"1")).unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(1), o.wait())
            .await
            .expect("a stored wake-up");
    }
}
