//! Engine.IO's WebSocket transport: one task per connection reads frames
//! with roomcast's own decoder (so a socket.io message is held to the same
//! limits as every WebSocket message, as its header arrives) and writes
//! what is queued on the socket as frames.
//!
//! An upgrade from polling is probed first: `2probe` is answered `3probe`
//! and the waiting poll is ended with `noop`; the client's `5` hands the
//! connection over, and the queue is written here from then on. Reading
//! pauses while the session holds a message back (the rate limit): TCP
//! then slows the client, as on every WebSocket.

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::sync::Arc;

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::payload::{self, Incoming, Packet, Protocol};
use super::{Engine, Handler, Reason, Socket, Transport};
use crate::deflate::{Active, Deflate, Negotiated};
use crate::metrics::{ProtocolErrorKind, SocketIoError};
use crate::wire::frame::{self, Opcode};
use crate::ws::socket::{self as io_socket, Socket as Io, Stream};
use crate::ws::{Decoder, Message, ReadError};

/// Bytes read from the socket per `read` call.
const READ_BUF: usize = 16 * 1024;
/// Frames per `writev` call.
const MAX_IOV: usize = 64;

thread_local! {
    static READ_BUFFER: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0; READ_BUF]);
}

/// Serve a WebSocket for `socket` once its upgrade completes; `probe`: it
/// comes from polling and must be probed before it takes over.
pub(super) async fn run<H: Handler>(
    engine: Arc<Engine<H>>,
    socket: Arc<Socket<H::Data>>,
    upgrade: fastwebsockets::upgrade::UpgradeFut,
    probe: bool,
    negotiated: Option<Negotiated>,
) {
    let (deflate, takeover) = match negotiated {
        Some(n) => (Some((n.active, n.window_bits)), n.takeover),
        None => (None, None),
    };
    let ws = match upgrade.await {
        Ok(ws) => ws,
        Err(e) => {
            tracing::debug!("engine.io upgrade did not complete: {e}");
            if !probe {
                engine.close(&socket, Reason::TransportError);
            }
            return;
        }
    };
    let (stream, early) = match io_socket::from_upgraded(ws.into_inner().into_inner()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!("cannot take over an upgraded connection: {e}");
            if !probe {
                engine.close(&socket, Reason::TransportError);
            }
            return;
        }
    };
    let mut conn = Conn {
        engine: &engine,
        socket: &socket,
        decoder: Decoder::new(engine.config.max_frame, engine.config.max_message)
            .with_inflate(deflate.as_ref().map(|(a, _)| a.deflate().clone()), takeover),
        deflate,
        unsent: VecDeque::new(),
        probing: probe,
        batch: VecDeque::new(),
    };
    let end = match stream {
        Stream::Tcp(s) => conn.serve(&s, early).await,
        Stream::Bridged(s) => conn.serve(&s, early).await,
    };
    tracing::debug!(
        sid = super::socket::sid_str(&socket.id),
        ?end,
        "engine.io WebSocket ended"
    );
    match end {
        // The probe failed: the session goes on polling.
        End::ProbeFailed => socket.set_transport(Transport::Polling),
        End::Closed(reason) => engine.close(&socket, reason),
    }
}

#[derive(Debug)]
enum End {
    ProbeFailed,
    Closed(Reason),
}

struct Conn<'a, H: Handler> {
    engine: &'a Arc<Engine<H>>,
    socket: &'a Arc<Socket<H::Data>>,
    decoder: Decoder,
    /// permessage-deflate, when negotiated (each message compressed here:
    /// a socket.io frame is made per connection, its namespace inside).
    deflate: Option<(Active, u8)>,
    /// Encoded frames not yet (fully) written.
    unsent: VecDeque<Bytes>,
    /// Upgrading from polling: the probe and `5` not both seen yet.
    probing: bool,
    /// Packets taken from the socket's queue, to encode.
    batch: VecDeque<Packet>,
}

impl<H: Handler> Conn<'_, H> {
    async fn serve<T: Io>(&mut self, io: &T, early: Bytes) -> End {
        let protocol = self.socket.protocol;
        if !self.probing {
            // A WebSocket from the start: the open packet first; protocol 3
            // is in `/` at once, protocol 4 once it says something.
            let open = self.engine.open_packet(&self.socket.id, protocol, false);
            self.unsent.push_back(frame::text(&open));
            if protocol == Protocol::V3 {
                self.engine.opened(self.socket);
            }
        }
        let upgrade_deadline = tokio::time::sleep(self.engine.config.upgrade_timeout);
        tokio::pin!(upgrade_deadline);
        let closed = self.socket.closed();
        tokio::pin!(closed);
        if !early.is_empty() {
            if let Err(end) = self.handle_bytes(&early) {
                return end;
            }
        }
        // Even empty, it may share hyper's whole request buffer (8 KiB):
        // a connection that keeps it for its life keeps the buffer too.
        drop(early);
        loop {
            if let Err(e) = self.flush(io) {
                tracing::debug!("engine.io WebSocket write failed: {e}");
                return End::Closed(Reason::TransportError);
            }
            let read = !self.socket.is_paused();
            let blocked = !self.unsent.is_empty();
            let ours = !self.probing;
            tokio::select! {
                biased;
                () = &mut closed => {
                    // What was queued (the namespaces' DISCONNECT), then a
                    // Close frame, written whole; then the client's side
                    // read to its end, so that closing the socket does not
                    // reset it (a reset can throw away what the client had
                    // not read yet: its DISCONNECT). At most `linger`.
                    let linger = self.engine.config.linger;
                    if self.probing {
                        // Its client may have taken this WebSocket over
                        // already (its `5` not read yet), or be about to:
                        // it polls no more, so what is queued must go here.
                        let upgraded = async {
                            while self.probing {
                                let ready = std::future::poll_fn(|cx| io.poll_read_ready(cx));
                                if ready.await.is_err() {
                                    return Err(self.lost());
                                }
                                self.on_readable(io)?;
                            }
                            Ok(())
                        };
                        if let Ok(Err(end)) = tokio::time::timeout(linger, upgraded).await {
                            return end;
                        }
                    }
                    if !self.probing {
                        self.queue_from_socket();
                    }
                    self.unsent.push_back(frame::close(crate::close::NORMAL, ""));
                    let _ = tokio::time::timeout(linger, self.finish(io)).await;
                    return End::Closed(Reason::Server);
                }
                r = std::future::poll_fn(|cx| io.poll_read_ready(cx)), if read => {
                    if r.is_err() {
                        return self.lost();
                    }
                    if let Err(end) = self.on_readable(io) {
                        return end;
                    }
                }
                r = std::future::poll_fn(|cx| io.poll_write_ready(cx)), if blocked => {
                    if r.is_err() {
                        return self.lost();
                    }
                }
                () = self.socket.wake.notified(), if ours || !read => {}
                () = &mut upgrade_deadline, if self.probing => {
                    tracing::debug!("engine.io upgrade not completed in time");
                    return End::ProbeFailed;
                }
            }
        }
    }

    /// Write everything unsent, then read and drop what the client sends
    /// until it closes its side.
    async fn finish<T: Io>(&mut self, io: &T) {
        while !self.unsent.is_empty() {
            if self.write_unsent(io).is_err() {
                return;
            }
            if !self.unsent.is_empty()
                && std::future::poll_fn(|cx| io.poll_write_ready(cx))
                    .await
                    .is_err()
            {
                return;
            }
        }
        let mut buf = [0u8; 4096];
        loop {
            if std::future::poll_fn(|cx| io.poll_read_ready(cx))
                .await
                .is_err()
            {
                return;
            }
            match io.try_read(&mut buf) {
                Ok(0) => return,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => return,
            }
        }
    }

    /// The stream failed or ended without a close.
    fn lost(&self) -> End {
        if self.probing {
            End::ProbeFailed
        } else {
            End::Closed(Reason::TransportError)
        }
    }

    /// Read what the socket has and handle it.
    fn on_readable<T: Io>(&mut self, io: &T) -> Result<(), End> {
        READ_BUFFER.with(|cell| {
            let mut buf = cell.borrow_mut();
            for _ in 0..16 {
                if self.socket.is_paused() {
                    return Ok(());
                }
                match io.try_read(&mut buf[..]) {
                    Ok(0) => return Err(self.lost()),
                    Ok(n) => {
                        self.handle_bytes(&buf[..n])?;
                        if n < READ_BUF {
                            return Ok(());
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(_) => return Err(self.lost()),
                }
            }
            Ok(())
        })
    }

    fn handle_bytes(&mut self, mut bytes: &[u8]) -> Result<(), End> {
        loop {
            match self.decoder.next(&mut bytes) {
                Ok(None) => return Ok(()),
                Ok(Some(msg)) => self.handle(msg)?,
                Err(ReadError::Protocol { code, kind, reason }) => {
                    let m = &self.engine.metrics;
                    if kind == ProtocolErrorKind::TooLarge {
                        m.socketio_error(SocketIoError::TooLarge);
                    } else {
                        m.protocol_error(kind);
                    }
                    tracing::debug!(code, "engine.io WebSocket failed: {reason}");
                    self.unsent.push_back(frame::close(code, reason));
                    return Err(End::Closed(Reason::TransportError));
                }
                Err(ReadError::Closed) => return Err(self.lost()),
            }
        }
    }

    fn handle(&mut self, msg: Message) -> Result<(), End> {
        let protocol = self.socket.protocol;
        match msg {
            Message::Text(text) => {
                let p = match payload::parse(protocol, &text) {
                    Ok(p) => p,
                    Err(why) => {
                        tracing::debug!("bad engine.io packet: {}", why.0);
                        self.engine.metrics.socketio_error(SocketIoError::BadPacket);
                        return Err(End::Closed(Reason::BadPacket));
                    }
                };
                if self.probing {
                    return self.probe(p);
                }
                if protocol == Protocol::V4 {
                    self.engine.opened(self.socket);
                }
                self.engine.incoming(self.socket, p);
            }
            Message::Binary(data) if !self.probing => {
                let mut data = Bytes::from(data);
                if protocol == Protocol::V3 && !data.is_empty() {
                    // Its first byte is the message type.
                    data.advance(1);
                }
                if protocol == Protocol::V4 {
                    self.engine.opened(self.socket);
                }
                self.engine.incoming(self.socket, Incoming::Binary(data));
            }
            Message::Binary(_) => return Err(End::ProbeFailed),
            Message::Ping(payload) => self.unsent.push_back(frame::encode(Opcode::Pong, &payload)),
            Message::Pong => {}
            Message::Close(code) => {
                self.unsent
                    .push_back(frame::close(code.unwrap_or(crate::close::NORMAL), ""));
                return Err(if self.probing {
                    End::ProbeFailed
                } else {
                    End::Closed(Reason::ClientClose)
                });
            }
        }
        if self.socket.is_closed() {
            return Err(End::Closed(Reason::Server));
        }
        Ok(())
    }

    /// The upgrade's handshake: `2probe` → `3probe` (and the poll ends),
    /// then `5`: the WebSocket takes over.
    fn probe(&mut self, p: Incoming<'_>) -> Result<(), End> {
        match p {
            Incoming::Ping { probe: true } => {
                self.unsent
                    .push_back(encode(self.socket.protocol, &Packet::PongProbe, None));
                self.socket.set_transport(Transport::Upgrading);
                Ok(())
            }
            Incoming::Upgrade if self.socket.transport() == Transport::Upgrading => {
                self.probing = false;
                self.socket.set_transport(Transport::WebSocket);
                Ok(())
            }
            _ => Err(End::ProbeFailed),
        }
    }

    /// Move what the socket queued into frames to write.
    fn queue_from_socket(&mut self) {
        self.socket.take_all(&mut self.batch);
        let protocol = self.socket.protocol;
        let deflate = self
            .deflate
            .as_ref()
            .map(|(a, bits)| (&**a.deflate(), *bits));
        for p in self.batch.drain(..) {
            match p {
                // What a poll needed (an upgrade under way): not for a WebSocket.
                Packet::Noop => {}
                p => self.unsent.push_back(encode(protocol, &p, deflate)),
            }
        }
        if self.batch.capacity() > 64 {
            self.batch.shrink_to(64);
        }
    }

    /// Write until nothing is left or the socket is full.
    fn flush<T: Io>(&mut self, io: &T) -> io::Result<()> {
        if !self.probing && self.socket.has_queued() {
            self.queue_from_socket();
        }
        self.write_unsent(io)
    }

    /// Write what is unsent until nothing is left or the socket is full.
    fn write_unsent<T: Io>(&mut self, io: &T) -> io::Result<()> {
        while !self.unsent.is_empty() {
            let mut slices = [IoSlice::new(&[]); MAX_IOV];
            let n = self.unsent.len().min(MAX_IOV);
            for (slot, f) in slices.iter_mut().zip(self.unsent.iter()) {
                *slot = IoSlice::new(f);
            }
            let written = match io.try_write_vectored(&slices[..n]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(w) => w,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            let mut left = written;
            while left > 0 {
                let front = self.unsent.front_mut().expect("wrote more than was queued");
                if left >= front.len() {
                    left -= front.len();
                    self.unsent.pop_front();
                } else {
                    front.advance(left);
                    left = 0;
                }
            }
        }
        if self.unsent.capacity() > 64 {
            self.unsent.shrink_to(64);
        }
        Ok(())
    }
}

/// Compressed socket.io messages this worker thread made last, with the
/// packet each was made from (held, so that its bytes cannot be freed and
/// another's take their place): a broadcast's members on one thread share
/// one compression, as WebSocket members share the publication's.
struct Compressed {
    text: payload::Text,
    bits: u8,
    frame: Bytes,
}

/// How many, and how large a message they may be (bigger ones are not kept).
const CACHED: usize = 8;
const CACHED_MAX: usize = 64 * 1024;

thread_local! {
    static COMPRESSED: std::cell::RefCell<VecDeque<Compressed>> =
        const { std::cell::RefCell::new(VecDeque::new()) };
}

/// One packet as one frame: its type byte and its data (protocol 3's
/// binary data after a 4 byte; protocol 4's alone), compressed when the
/// connection negotiated deflate and the message is worth it.
fn encode(protocol: Protocol, p: &Packet, deflate: Option<(&Deflate, u8)>) -> Bytes {
    let (binary, kind, data) = payload::ws_message(protocol, p);
    let len = data.iter().map(|d| d.len()).sum::<usize>() + usize::from(kind != 0);
    let opcode = if binary { Opcode::Binary } else { Opcode::Text };
    if let Some((deflate, bits)) = deflate.filter(|(d, _)| d.worth(len)) {
        let text = match p {
            Packet::Message(t) if len <= CACHED_MAX => Some(t),
            _ => None,
        };
        if let Some(t) = text {
            let hit = COMPRESSED.with(|c| {
                c.borrow()
                    .iter()
                    .find(|e| e.bits == bits && e.text.same(t))
                    .map(|e| e.frame.clone())
            });
            if let Some(frame) = hit {
                return frame;
            }
        }
        let kind = [kind];
        let mut parts: Vec<&[u8]> = Vec::with_capacity(data.len() + 1);
        if kind[0] != 0 {
            parts.push(&kind);
        }
        parts.extend(data.iter().map(|d| &d[..]));
        let frame = deflate.compressed_frame(0x80 | opcode as u8, &parts, bits);
        if let Some(t) = text {
            COMPRESSED.with(|c| {
                let mut c = c.borrow_mut();
                if c.len() == CACHED {
                    c.pop_front();
                }
                c.push_back(Compressed {
                    text: t.clone(),
                    bits,
                    frame: frame.clone(),
                });
            });
        }
        return frame;
    }
    let mut buf = BytesMut::with_capacity(frame::header_len(len) + len);
    frame::put_header(&mut buf, 0x80 | opcode as u8, len);
    if kind != 0 {
        buf.put_u8(kind);
    }
    for part in data {
        buf.put_slice(part);
    }
    buf.freeze()
}
