//! The socket under a session: readiness plus non-blocking reads and writes,
//! so one task can read, write and wait for its outbox without splitting the
//! stream or owning a read buffer while idle.
//!
//! A hyper upgrade over a plain TCP connection (roomcast's own server, or a
//! host app on hyper/axum) is downcast back to its `TcpStream`. Any other
//! stream (a host that terminates TLS itself, say) is bridged through a Unix
//! socket pair: one extra copy, same session code.

use std::future::Future;
use std::io::{self, IoSlice};

use bytes::Bytes;
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpStream, UnixStream};

/// What a session needs from its socket.
pub trait Transport: Send + Sync + 'static {
    /// Resolves when a read may make progress (cancel-safe).
    fn readable(&self) -> impl Future<Output = io::Result<()>> + Send;
    /// Resolves when a write may make progress (cancel-safe).
    fn writable(&self) -> impl Future<Output = io::Result<()>> + Send;
    /// Read what is available without waiting (`WouldBlock` when nothing is).
    fn try_read(&self, buf: &mut [u8]) -> io::Result<usize>;
    /// Write what fits without waiting (`WouldBlock` when nothing does).
    fn try_write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize>;
}

macro_rules! transport_for {
    ($t:ty) => {
        impl Transport for $t {
            fn readable(&self) -> impl Future<Output = io::Result<()>> + Send {
                <$t>::readable(self)
            }
            fn writable(&self) -> impl Future<Output = io::Result<()>> + Send {
                <$t>::writable(self)
            }
            fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
                <$t>::try_read(self, buf)
            }
            fn try_write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
                <$t>::try_write_vectored(self, bufs)
            }
        }
    };
}

transport_for!(TcpStream);
transport_for!(UnixStream);

/// An upgraded connection, ready for a session.
pub enum Io {
    /// The TCP stream itself, and bytes the client sent right after its
    /// handshake that hyper had already read.
    Tcp(TcpStream, Bytes),
    /// Any other stream, bridged through a socket pair.
    Bridged(UnixStream),
}

/// Recover the socket of an upgraded connection.
pub fn from_upgraded(upgraded: Upgraded) -> io::Result<Io> {
    match upgraded.downcast::<TokioIo<TcpStream>>() {
        Ok(parts) => Ok(Io::Tcp(parts.io.into_inner(), parts.read_buf)),
        Err(upgraded) => {
            let (ours, theirs) = UnixStream::pair()?;
            tokio::spawn(async move {
                let mut upgraded = TokioIo::new(upgraded);
                let mut theirs = theirs;
                let _ = tokio::io::copy_bidirectional(&mut upgraded, &mut theirs).await;
            });
            Ok(Io::Bridged(ours))
        }
    }
}
