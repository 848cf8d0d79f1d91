//! The writer task: sole owner of a connection's write half.
//!
//! Each wake-up takes everything queued in the outbox and writes it with
//! vectored writes, so a burst of N frames costs one syscall, not N.

use std::collections::VecDeque;
use std::io::{self, IoSlice};

use bytes::{Buf, Bytes};
use tokio::io::{AsyncWrite, AsyncWriteExt};

use crate::frame;
use crate::metrics::Metrics;
use crate::outbox::{Next, Outbox};

/// Frames per `writev` call (well under every platform's IOV_MAX).
const MAX_IOV: usize = 64;

/// Drain `outbox` into `w` until a Close frame is written, the session
/// finishes, or the socket fails.
pub async fn run<W: AsyncWrite + Unpin>(mut w: W, outbox: Outbox, metrics: Metrics) {
    let mut batch = VecDeque::new();
    loop {
        match outbox.next(&mut batch).await {
            Next::Frames => {
                let frames = batch.len();
                let bytes: usize = batch.iter().map(Bytes::len).sum();
                // Counted as they are handed to the socket, so a client that has
                // received a message always finds it counted.
                let (messages, payload) = data_totals(&batch);
                metrics.messages_sent.inc_by(messages);
                metrics.bytes_sent.inc_by(payload);
                if let Err(e) = write_batch(&mut w, &mut batch).await {
                    tracing::debug!("write failed: {e}");
                    outbox.finish();
                    return;
                }
                outbox.written(frames, bytes);
            }
            Next::Close(frame) => {
                if w.write_all(&frame).await.is_ok() {
                    let _ = w.flush().await;
                }
                return;
            }
            Next::Finished => return,
        }
    }
}

/// Data messages (text/binary) and their payload bytes in a batch; control
/// frames (pongs) are not messages.
fn data_totals(batch: &VecDeque<Bytes>) -> (u64, u64) {
    batch
        .iter()
        .filter(|f| matches!(f[0] & 0x0f, 0x1 | 0x2))
        .fold((0, 0), |(n, b), f| {
            (n + 1, b + frame::payload_len(f) as u64)
        })
}

async fn write_batch<W: AsyncWrite + Unpin>(
    w: &mut W,
    batch: &mut VecDeque<Bytes>,
) -> io::Result<()> {
    while !batch.is_empty() {
        let mut written = {
            let mut slices = [IoSlice::new(&[]); MAX_IOV];
            let mut n = 0;
            for (slot, f) in slices.iter_mut().zip(batch.iter()) {
                *slot = IoSlice::new(f);
                n += 1;
            }
            w.write_vectored(&slices[..n]).await?
        };
        if written == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        while written > 0 {
            let front = batch.front_mut().expect("wrote more than was queued");
            if written >= front.len() {
                written -= front.len();
                batch.pop_front();
            } else {
                front.advance(written);
                written = 0;
            }
        }
    }
    w.flush().await
}
