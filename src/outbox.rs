//! A connection's bounded outbox: the only way bytes reach its writer task.
//!
//! Producers (its own reader, other members' broadcasts) never block: `push`
//! either queues the encoded frame or says the outbox is full, and a full
//! outbox makes its owner a slow consumer. Bounds cover frames queued *and*
//! frames the writer has taken but not yet written, so one stuck socket holds
//! at most `max_bytes` of memory.
//!
//! The writer takes everything queued in one lock and writes it with one
//! vectored write: one syscall per wake-up, however many frames arrived.

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
    /// Immediately, discarding what is queued (slow consumers).
    Now,
}

/// What the writer should do next.
#[derive(Debug)]
pub enum Next {
    /// Frames were moved into the caller's batch: write them.
    Frames,
    /// Write this Close frame, then stop.
    Close(Bytes),
    /// The session is over: stop without writing.
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
    /// Wakes the single writer task when there is something to do.
    writer: Notify,
    /// Set (and `closing_notify` fired) once a Close has been requested.
    closing: AtomicBool,
    closing_notify: Notify,
    max_frames: usize,
    max_bytes: usize,
}

struct State {
    queue: VecDeque<Bytes>,
    /// Frames queued or taken by the writer and not yet written.
    frames: usize,
    /// Bytes queued or taken by the writer and not yet written.
    bytes: usize,
    close: Option<(Bytes, CloseMode)>,
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
                    finished: false,
                }),
                writer: Notify::new(),
                closing: AtomicBool::new(false),
                closing_notify: Notify::new(),
                max_frames,
                max_bytes,
            }),
        }
    }

    /// Queue an encoded frame without waiting.
    pub fn push(&self, frame: Bytes) -> Result<(), PushError> {
        let len = frame.len();
        {
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
        }
        self.shared.writer.notify_one();
        Ok(())
    }

    /// Ask the writer to send a Close frame. The first request wins, except that
    /// `Now` overrides a pending `AfterQueued`. Returns whether this call took effect.
    pub fn close(&self, code: u16, reason: &str, mode: CloseMode) -> bool {
        {
            let mut st = self.lock();
            if st.finished {
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
        self.shared.writer.notify_one();
        self.shared.closing.store(true, Ordering::Release);
        self.shared.closing_notify.notify_waiters();
        true
    }

    /// Whether a Close has been requested (nothing more can be pushed).
    pub fn is_closing(&self) -> bool {
        self.shared.closing.load(Ordering::Acquire)
    }

    /// The session is over: the writer stops, pushes fail.
    pub fn finish(&self) {
        self.lock().finished = true;
        self.shared.writer.notify_one();
    }

    /// Writer side: wait for work, moving queued frames into `batch`.
    pub async fn next(&self, batch: &mut VecDeque<Bytes>) -> Next {
        loop {
            {
                let mut st = self.lock();
                if st.finished {
                    return Next::Finished;
                }
                let close_now = matches!(st.close, Some((_, CloseMode::Now)));
                if !st.queue.is_empty() && !close_now {
                    std::mem::swap(&mut st.queue, batch);
                    return Next::Frames;
                }
                if let Some((frame, _)) = &st.close {
                    return Next::Close(frame.clone());
                }
            }
            self.shared.writer.notified().await;
        }
    }

    /// Writer side: `frames` frames totalling `bytes` bytes have been written.
    pub fn written(&self, frames: usize, bytes: usize) {
        let mut st = self.lock();
        st.frames = st.frames.saturating_sub(frames);
        st.bytes = st.bytes.saturating_sub(bytes);
    }

    /// Resolves once a Close has been requested (by anyone, for any reason).
    /// The session starts its close timeout from here, so a peer that stopped
    /// reading, whose Close frame can never be written, is still let go.
    pub async fn closing(&self) {
        loop {
            let notified = self.shared.closing_notify.notified();
            if self.shared.closing.load(Ordering::Acquire) {
                return;
            }
            notified.await;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the state inconsistent in a
        // way that matters more than dropping the connection, so recover the guard.
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

    #[tokio::test]
    async fn writer_takes_everything_queued_then_the_close() {
        let o = Outbox::new(10, 1000);
        o.push(Bytes::from_static(b"1")).unwrap();
        o.push(Bytes::from_static(b"2")).unwrap();
        assert!(o.close(1000, "bye", CloseMode::AfterQueued));
        assert_eq!(o.push(Bytes::from_static(b"3")), Err(PushError::Closed));
        let mut batch = VecDeque::new();
        assert!(matches!(o.next(&mut batch).await, Next::Frames));
        assert_eq!(batch.len(), 2);
        batch.clear();
        o.written(2, 2);
        assert!(matches!(o.next(&mut batch).await, Next::Close(_)));
    }

    #[tokio::test]
    async fn close_now_discards_the_queue_and_frees_the_budget() {
        let o = Outbox::new(10, 1000);
        o.push(Bytes::from_static(b"1")).unwrap();
        assert!(o.close(4008, "slow", CloseMode::AfterQueued));
        assert!(o.close(4008, "slow", CloseMode::Now));
        assert!(!o.close(1000, "late", CloseMode::Now));
        let mut batch = VecDeque::new();
        assert!(matches!(o.next(&mut batch).await, Next::Close(_)));
        assert!(batch.is_empty());
    }
}
