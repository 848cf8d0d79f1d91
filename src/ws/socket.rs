//! The socket under a WebSocket connection: readiness plus non-blocking reads
//! and writes, so one task can read, write and wait for its outbox without
//! splitting the stream or owning a read buffer while idle.
//!
//! A hyper upgrade over a plain TCP connection (roomcast's own server, or a
//! host app on hyper/axum) is downcast back to its `TcpStream`. Any other
//! stream (a host that terminates TLS itself, say) is bridged through a Unix
//! socket pair: one extra copy, same session code.

use std::io::{self, IoSlice, Read};
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use socket2::SockRef;
use tokio::io::Interest;
use tokio::net::{TcpStream, UnixStream};

/// What the driver needs from its socket.
pub(crate) trait Socket: Send + Sync + 'static {
    /// Ready when a read may make progress. Polled rather than awaited as a
    /// future, so a waiting connection holds no readiness future (only the
    /// waker of the last poll is kept: one task drives the socket).
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
    /// Ready when a write may make progress (as `poll_read_ready`).
    fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
    /// Read what is available without waiting (`WouldBlock` when nothing is).
    /// A read that does not fill `buf` has drained the socket, so it also
    /// clears the readiness: the next `readable` waits for new data instead
    /// of costing one more `recv` that would say `EAGAIN`.
    fn try_read(&self, buf: &mut [u8]) -> io::Result<usize>;
    /// Write what fits without waiting (`WouldBlock` when nothing does).
    fn try_write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize>;
    /// Write one buffer without waiting.
    fn try_write(&self, buf: &[u8]) -> io::Result<usize>;
}

macro_rules! socket_for {
    ($t:ty) => {
        impl Socket for $t {
            fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                <$t>::poll_read_ready(self, cx)
            }
            fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                <$t>::poll_write_ready(self, cx)
            }
            fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
                let mut got = 0;
                let cap = buf.len();
                let result = self.try_io(Interest::READABLE, || {
                    let n = (&*SockRef::from(self)).read(buf)?;
                    got = n;
                    if n > 0 && n < cap {
                        // Drained: make tokio forget the readiness.
                        Err(io::ErrorKind::WouldBlock.into())
                    } else {
                        Ok(n)
                    }
                });
                match result {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock && got > 0 => Ok(got),
                    other => other,
                }
            }
            fn try_write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
                <$t>::try_write_vectored(self, bufs)
            }
            fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
                <$t>::try_write(self, buf)
            }
        }
    };
}

socket_for!(TcpStream);
socket_for!(UnixStream);

/// The stream of an upgraded connection.
pub(crate) enum Stream {
    /// The TCP stream itself.
    Tcp(TcpStream),
    /// Any other stream, bridged through a socket pair.
    Bridged(UnixStream),
}

/// Recover the socket of an upgraded connection, with the bytes the client
/// sent right after its handshake that hyper had already read.
pub(crate) fn from_upgraded(upgraded: Upgraded) -> io::Result<(Stream, Bytes)> {
    match upgraded.downcast::<TokioIo<TcpStream>>() {
        Ok(parts) => Ok((Stream::Tcp(parts.io.into_inner()), parts.read_buf)),
        Err(upgraded) => {
            let (ours, theirs) = UnixStream::pair()?;
            tokio::spawn(async move {
                let mut upgraded = TokioIo::new(upgraded);
                let mut theirs = theirs;
                let _ = tokio::io::copy_bidirectional(&mut upgraded, &mut theirs).await;
            });
            Ok((Stream::Bridged(ours), Bytes::new()))
        }
    }
}
