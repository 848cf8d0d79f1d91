//! The TCP connections the server accepts, with a guard on what a client may
//! send before its message is handed over.
//!
//! roomcast's own WebSocket decoder refuses an oversized message as its
//! header arrives. socket.io's WebSocket leg runs on engineioxide, whose
//! tungstenite reader buffers messages up to 64 MiB with no setting to lower
//! it. So a socket.io WebSocket's connection is *armed*: it may read at most
//! the message-size limit (plus a little, and a trickle per second for the
//! pings engine.io answers itself) beyond the last message delivered to the
//! session; past that the read fails, engine.io closes the connection, and
//! `roomcast_socketio_errors_total{kind="too_large"}` counts it. An unarmed
//! connection (every other one) costs one branch per read.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll, Waker};
use std::time::Instant;

use prometheus::IntCounter;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// Bytes per second a client may send on top of the limit without a message
/// being delivered (engine.io pings and pongs are a few bytes each).
const TRICKLE_PER_SEC: u64 = 64;

/// A connection's read guard, shared with the request handlers (a request
/// extension) and, once armed, with the socket.io connection it serves.
#[derive(Debug)]
pub(crate) struct Guard {
    armed: AtomicBool,
    limit: AtomicUsize,
    /// Bytes read since the last delivered message.
    read: AtomicUsize,
    /// When the last message was delivered, in ms since `epoch`.
    since_ms: AtomicU64,
    epoch: Instant,
    tripped: IntCounter,
    /// Reading is paused (its session holds a message back for the rate
    /// limit): TCP flow control slows the client meanwhile.
    paused: AtomicBool,
    /// The reader to wake when reading may go on.
    waker: Mutex<Option<Waker>>,
}

impl Guard {
    fn new(tripped: IntCounter) -> Guard {
        Guard {
            armed: AtomicBool::new(false),
            limit: AtomicUsize::new(0),
            read: AtomicUsize::new(0),
            since_ms: AtomicU64::new(0),
            epoch: Instant::now(),
            tripped,
            paused: AtomicBool::new(false),
            waker: Mutex::new(None),
        }
    }

    /// Stop reading from the connection until [`Guard::resume`].
    pub(crate) fn pause(&self) {
        self.paused.store(true, Ordering::Release);
    }

    /// Read again.
    pub(crate) fn resume(&self) {
        if self.paused.swap(false, Ordering::AcqRel) {
            let waker = self.waker.lock().unwrap_or_else(|e| e.into_inner()).take();
            if let Some(w) = waker {
                w.wake();
            }
        }
    }

    /// Whether reading is paused; if so, `cx` is woken on resume.
    fn poll_paused(&self, cx: &mut Context<'_>) -> bool {
        if !self.paused.load(Ordering::Acquire) {
            return false;
        }
        *self.waker.lock().unwrap_or_else(|e| e.into_inner()) = Some(cx.waker().clone());
        // Resumed meanwhile: its wake may have missed the waker just stored.
        self.paused.load(Ordering::Acquire)
    }

    /// From now on, at most `limit` bytes may be read between messages.
    pub(crate) fn arm(&self, limit: usize) {
        self.limit.store(limit, Ordering::Relaxed);
        self.delivered();
        self.armed.store(true, Ordering::Release);
    }

    /// A whole message was handed over: the count starts again.
    pub(crate) fn delivered(&self) {
        self.read.store(0, Ordering::Relaxed);
        let now = self.epoch.elapsed().as_millis() as u64;
        self.since_ms.store(now, Ordering::Relaxed);
    }

    /// Account for `n` bytes read; an error once past the bound.
    fn read(&self, n: usize) -> io::Result<()> {
        if !self.armed.load(Ordering::Acquire) {
            return Ok(());
        }
        let read = self.read.fetch_add(n, Ordering::Relaxed) + n;
        let idle_secs = (self.epoch.elapsed().as_millis() as u64)
            .saturating_sub(self.since_ms.load(Ordering::Relaxed))
            / 1000;
        let allowed = self.limit.load(Ordering::Relaxed) as u64 + idle_secs * TRICKLE_PER_SEC;
        if read as u64 > allowed {
            self.tripped.inc();
            self.armed.store(false, Ordering::Release);
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "message over limits.max_message_size",
            ));
        }
        Ok(())
    }
}

/// A request extension: the guard of the connection the request came on.
#[derive(Debug, Clone)]
pub(crate) struct GuardSlot(pub(crate) Arc<Guard>);

/// An accepted TCP connection, read through its guard.
pub(crate) struct Guarded {
    stream: TcpStream,
    guard: Arc<Guard>,
}

impl Guarded {
    /// `stream`, with a guard that counts trips on `tripped`.
    pub(crate) fn new(stream: TcpStream, tripped: IntCounter) -> Guarded {
        Guarded {
            stream,
            guard: Arc::new(Guard::new(tripped)),
        }
    }

    /// The guard, for the connection's requests.
    pub(crate) fn slot(&self) -> GuardSlot {
        GuardSlot(self.guard.clone())
    }

    /// The TCP stream itself (roomcast's own WebSocket driver reads it directly).
    pub(crate) fn into_stream(self) -> TcpStream {
        self.stream
    }
}

impl AsyncRead for Guarded {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.guard.poll_paused(cx) {
            return Poll::Pending;
        }
        let before = buf.filled().len();
        ready!(Pin::new(&mut self.stream).poll_read(cx, buf))?;
        let n = buf.filled().len() - before;
        Poll::Ready(self.guard.read(n))
    }
}

impl AsyncWrite for Guarded {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_armed_guard_trips_past_its_limit_and_resets_on_delivery() {
        let counter = IntCounter::new("t", "t").unwrap();
        let g = Guard::new(counter.clone());
        g.read(1 << 30).unwrap(); // unarmed: anything goes
        g.arm(100);
        g.read(60).unwrap();
        g.delivered();
        g.read(100).unwrap();
        assert!(g.read(1).is_err());
        assert_eq!(counter.get(), 1);
    }
}
