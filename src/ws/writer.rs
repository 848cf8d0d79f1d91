//! The write side of a WebSocket connection: takes what the outbox holds
//! (frames encoded for the connection's wire) and writes it with vectored,
//! non-blocking writes, keeping what did not fit for the next time the socket
//! is writable. A requested close becomes a Close frame, written last.

use std::collections::VecDeque;
use std::io::{self, IoSlice};

use super::socket::Socket;
use crate::deflate::Deflate;
use crate::metrics::Metrics;
use crate::outbox::{Item, Outbox, Take};
use crate::wire::frame;

/// Frames per `writev` call (well under every platform's IOV_MAX).
const MAX_IOV: usize = 64;

/// Where a flush left things.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Flushed {
    /// Everything queued is written.
    Idle,
    /// The socket is full: wait until it is writable.
    Blocked,
    /// The Close frame has just been written (nothing follows it).
    CloseWritten,
}

/// Frames taken from the outbox and not yet (fully) written.
#[derive(Default)]
pub(super) struct Writer {
    unsent: VecDeque<Item>,
    /// Frames and bytes of the current batch, released to the outbox's
    /// accounting once the batch is written.
    batch_frames: usize,
    batch_bytes: usize,
    /// The front frame is partly on the wire (it must be finished first).
    front_started: bool,
    close_in_batch: bool,
    close_written: bool,
    blocked: bool,
}

impl Writer {
    /// Whether the last flush stopped on a full socket.
    pub(super) fn blocked(&self) -> bool {
        self.blocked
    }

    /// Whether our Close frame is on the wire.
    pub(super) fn close_written(&self) -> bool {
        self.close_written
    }

    /// Write until the outbox is empty or the socket is full; with
    /// `deflate` (the connection negotiated it, and its window), the data
    /// frames queued for it alone are compressed here (a broadcast comes
    /// compressed already, once for every member).
    pub(super) fn flush<T: Socket>(
        &mut self,
        io: &T,
        outbox: &Outbox,
        metrics: &Metrics,
        deflate: Option<(&Deflate, u8)>,
    ) -> io::Result<Flushed> {
        loop {
            if self.close_written {
                self.blocked = false;
                return Ok(Flushed::Idle);
            }
            if outbox.is_closing_now() && !self.close_in_batch {
                self.drop_unstarted(outbox);
            }
            if self.unsent.is_empty() {
                match outbox.take(&mut self.unsent) {
                    Take::Frames => {
                        self.batch_frames = self.unsent.len();
                        self.batch_bytes = self.unsent.iter().map(Item::len).sum();
                        if let Some((deflate, bits)) = deflate {
                            compress_batch(&mut self.unsent, deflate, bits);
                        }
                        // Counted as they are handed to the socket, so a client
                        // that has received a message always finds it counted.
                        if metrics.per_message {
                            let (messages, payload) = data_totals(&self.unsent);
                            metrics.messages_sent.inc_by(messages);
                            metrics.bytes_sent.inc_by(payload);
                        }
                    }
                    Take::Close(code, reason) => {
                        self.unsent
                            .push_back(Item::new(frame::close(code, &reason)));
                        self.close_in_batch = true;
                    }
                    Take::Empty | Take::Finished => {
                        self.blocked = false;
                        return Ok(Flushed::Idle);
                    }
                }
            }
            match self.write(io) {
                Ok(()) => {
                    outbox.written(self.batch_frames, self.batch_bytes);
                    crate::outbox::trim(&mut self.unsent);
                    self.batch_frames = 0;
                    self.batch_bytes = 0;
                    if self.close_in_batch {
                        self.close_written = true;
                        self.blocked = false;
                        return Ok(Flushed::CloseWritten);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.blocked = true;
                    return Ok(Flushed::Blocked);
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Write `unsent` until it is empty (`Ok`) or the socket is full.
    fn write<T: Socket>(&mut self, io: &T) -> io::Result<()> {
        while !self.unsent.is_empty() {
            let mut slices = [IoSlice::new(&[]); MAX_IOV];
            let mut n = 0;
            for (slot, f) in slices.iter_mut().zip(self.unsent.iter()) {
                *slot = IoSlice::new(f);
                n += 1;
            }
            // One frame: a plain send (cheaper in the kernel than writev).
            let result = if n == 1 {
                io.try_write(&self.unsent[0])
            } else {
                io.try_write_vectored(&slices[..n])
            };
            let mut written = match result {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(w) => w,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            while written > 0 {
                let front = self.unsent.front_mut().expect("wrote more than was queued");
                if written >= front.len() {
                    written -= front.len();
                    self.unsent.pop_front();
                    self.front_started = false;
                } else {
                    front.advance(written);
                    self.front_started = true;
                    written = 0;
                }
            }
        }
        Ok(())
    }

    /// A Close that cannot wait (slow consumer, dead peer): drop the frames not
    /// yet started; a frame partly on the wire must still be finished.
    fn drop_unstarted(&mut self, outbox: &Outbox) {
        let keep = usize::from(self.front_started);
        if self.unsent.len() > keep {
            let dropped = self.unsent.len() - keep;
            let bytes: usize = self.unsent.drain(keep..).map(|f| f.len()).sum();
            outbox.written(dropped, bytes);
            self.batch_frames = self.batch_frames.saturating_sub(dropped);
            self.batch_bytes = self.batch_bytes.saturating_sub(bytes);
        }
    }
}

/// Compress the uncompressed data frames of a batch worth it (FIN set,
/// RSV1 clear: the server never fragments).
fn compress_batch(batch: &mut VecDeque<Item>, deflate: &Deflate, bits: u8) {
    for item in batch.iter_mut() {
        if matches!(item[0], 0x81 | 0x82) && deflate.worth(frame::payload_len(item)) {
            *item = deflate.frame(item, bits);
        }
    }
}

/// Data messages (text/binary) and their payload bytes in a batch; control
/// frames (pings, pongs) are not messages.
fn data_totals(batch: &VecDeque<Item>) -> (u64, u64) {
    batch
        .iter()
        .filter(|f| matches!(f[0] & 0x0f, 0x1 | 0x2))
        .fold((0, 0), |(n, b), f| {
            (n + 1, b + frame::payload_len(f) as u64)
        })
}
