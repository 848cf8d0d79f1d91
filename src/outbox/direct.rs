//! Direct delivery: what a publisher queues for an idle member is written
//! to the member's socket from the publisher's side, without waking the
//! member's task (uWebSockets writes from the publisher's loop the same way).
//!
//! A connection whose transport can be written from any thread attaches its
//! socket as a [`Sink`]. Inside a [`batch`] (a WebSocket connection handling
//! what it read, the hub handing out a broker's delivery), queuing for a
//! member whose writer is idle does not wake it: the outbox is noted once,
//! and when the batch ends everything queued for it meanwhile goes out in
//! one non-blocking write, under its lock, so it never races the owner's
//! own writer. What does not fit stays queued and the owner is woken to
//! write it when its socket drains: ordering, bounds, slow-consumer and
//! close rules are the outbox's as before. Outside a batch, or for a member
//! whose writer is busy or closing, queuing wakes the owner as it always did.

use std::cell::RefCell;
use std::io::{self, IoSlice};

use super::{Item, Outbox};

/// A connection's socket, written from whichever thread has something for it.
pub(crate) trait Sink: Send + Sync {
    /// Write what fits without waiting (`WouldBlock` when nothing does).
    fn try_write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize>;
    /// An item's first byte has been handed to the socket (for the counters
    /// the owner's writer keeps for what it writes).
    fn sent(&self, item: &Item);
}

/// The most outboxes a kept list has room for.
const MAX_SPARE: usize = 4096;

thread_local! {
    /// Outboxes noted in this thread's current batch (`None`: no batch).
    static NOTED: RefCell<Option<Vec<Outbox>>> = const { RefCell::new(None) };
    /// The list of the last batch, kept for its capacity.
    static SPARE: RefCell<Vec<Outbox>> = const { RefCell::new(Vec::new()) };
}

/// Run `f` as one batch: members it queues for are written to when it is
/// done (those whose writers are idle), once each, however many items each got.
/// A batch inside a batch is part of the outer one.
pub(crate) fn batch<R>(f: impl FnOnce() -> R) -> R {
    let outer = NOTED.with(|n| {
        let mut n = n.borrow_mut();
        if n.is_some() {
            return false;
        }
        *n = Some(SPARE.with(|s| std::mem::take(&mut *s.borrow_mut())));
        true
    });
    if !outer {
        return f();
    }
    // Flushed on the way out, a panic included: a noted outbox is never
    // left unwritten and unwoken.
    let _flush = Flush;
    f()
}

/// Whether this thread is in a batch.
pub(super) fn collecting() -> bool {
    NOTED.with(|n| n.borrow().is_some())
}

/// Note `outbox` for the end of this thread's batch.
pub(super) fn note(outbox: &Outbox) {
    NOTED.with(|n| match &mut *n.borrow_mut() {
        Some(list) => list.push(outbox.clone()),
        // Not reachable (the caller checked): wake its owner instead.
        None => outbox.wake(),
    });
}

struct Flush;

impl Drop for Flush {
    fn drop(&mut self) {
        let Some(mut list) = NOTED.with(|n| n.borrow_mut().take()) else {
            return;
        };
        for outbox in list.drain(..) {
            outbox.write_direct();
        }
        // A huge room's list is not kept for the next, small, batch.
        if list.capacity() <= MAX_SPARE {
            SPARE.with(|s| *s.borrow_mut() = list);
        }
    }
}
