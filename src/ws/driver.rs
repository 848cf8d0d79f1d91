//! One WebSocket connection, served by one task: the readiness loop.
//!
//! The task waits on the socket's readiness, its outbox, its timers and (when
//! anything is awaited) the session's broker replies, all at once. When the
//! socket is readable it reads what is there into a per-thread buffer,
//! decodes it and hands each message to the session, which runs the hooks
//! and queues what they produce; then the task writes everything queued for
//! it — its own replies and other members' broadcasts — with vectored writes,
//! one syscall per wake-up. An idle connection therefore costs one small task
//! and no buffers. Pings (heartbeat) and the close handshake are handled
//! here too; the session's own events (broker replies, token expiry) are
//! `conn::Life`'s, and shutdown comes as a Close in the outbox.

use std::io;
use std::pin::Pin;
use std::time::Instant;

use tokio::time::Sleep;

use super::decoder::{Decoder, Message, ReadError};
use super::socket::{self, Socket, Stream};
use super::writer::{Flushed, Writer};
use crate::close;
use crate::conn::{maybe, Life};
use crate::deflate::{Active, Negotiated};
use crate::outbox::CloseMode;
use crate::session::{Inbound, Session};
use crate::wire::{frame, v1, Wire};

/// Bytes read from the socket per `read` call.
const READ_BUF: usize = 16 * 1024;
/// Reads per wake-up before letting other connections run.
const READS_PER_WAKE: usize = 16;
/// Messages handled per turn before letting other connections run: a client
/// that floods (a full 16 KiB read is ~600 small messages) gets its turns
/// like everyone else, and the rest of what it sent waits in its stash.
const MESSAGES_PER_TURN: usize = 64;

thread_local! {
    // Zeroed once per worker thread, then reused for every read.
    static READ_BUFFER: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0; READ_BUF]);
}

/// How a connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// The close handshake completed (either side started it).
    Closed,
    /// The client broke the protocol; our Close was sent, the rest discarded.
    ProtocolError,
    /// TCP ended (or failed) without a close handshake.
    Eof,
    /// We asked to close and the client did not complete the handshake in time.
    CloseTimeout,
}

/// What reading found.
enum Read {
    /// Keep going.
    More,
    /// This turn's budget is spent: let others run, then handle the stash.
    Busy,
    /// The client sent Close; our answer is queued.
    ClientClosed,
    /// The client broke the protocol; our Close is queued.
    Failed,
    /// The stream ended.
    Eof,
}

/// A session waiting for its WebSocket: the upgrade opens the session
/// *before* the 101 response goes out, so a client that has its 101 is
/// already a member; this serves it once the upgrade completes. Dropping it
/// (the upgrade never completed) closes the session as usual.
pub(crate) struct Driver(Box<Parts>);

/// Boxed so that the connection's task, which moves the driver through
/// several nested futures, carries one pointer rather than a copy per level
/// (each async frame keeps its own copy of what it was given).
struct Parts {
    session: Session,
    decoder: Decoder,
    /// permessage-deflate, when negotiated: the server's settings (counted
    /// while the connection lives) and the window agreed.
    deflate: Option<(Active, u8)>,
    /// What the bytes that came with the handshake held, once handled.
    early: Option<Read>,
    /// Bytes read but not yet handed over (the session was not ready, or a
    /// turn's budget was spent): `stash[stash_at..]`.
    stash: Vec<u8>,
    stash_at: usize,
    /// Messages handled this turn.
    turn: usize,
    /// When the client last sent anything (heartbeat).
    last_seen: Instant,
}

impl Driver {
    /// A driver for `session`, with the configured frame and message
    /// limits, and permessage-deflate if it was agreed.
    pub(crate) fn new(
        session: Session,
        max_frame: usize,
        max_message: usize,
        negotiated: Option<Negotiated>,
    ) -> Driver {
        let (deflate, takeover) = match negotiated {
            Some(n) => (Some((n.active, n.window_bits)), n.takeover),
            None => (None, None),
        };
        let inflate = deflate.as_ref().map(|(a, _)| a.deflate().clone());
        Driver(Box::new(Parts {
            session,
            decoder: Decoder::new(max_frame, max_message).with_inflate(inflate, takeover),
            deflate,
            early: None,
            stash: Vec::new(),
            stash_at: 0,
            turn: 0,
            last_seen: Instant::now(),
        }))
    }

    /// Wait for the upgrade to complete, then serve the connection until it
    /// is closed. The upgraded stream is unwrapped, and the bytes that came
    /// with the handshake handled, in plain functions: an async fn keeps its
    /// arguments and many of its locals for as long as it runs, and this one
    /// runs as long as the connection.
    pub(crate) async fn run(mut self, upgrade: fastwebsockets::upgrade::UpgradeFut) {
        let stream = match upgrade.await {
            Ok(ws) => self.take_over(ws),
            Err(e) => {
                tracing::debug!("upgrade did not complete: {e}");
                return;
            }
        };
        match stream {
            Some(Stream::Tcp(stream)) => self.serve(stream).await,
            Some(Stream::Bridged(stream)) => self.serve(stream).await,
            None => {}
        }
    }

    fn take_over(
        &mut self,
        ws: fastwebsockets::WebSocket<hyper_util::rt::TokioIo<hyper::upgrade::Upgraded>>,
    ) -> Option<Stream> {
        match socket::from_upgraded(ws.into_inner().into_inner()) {
            Ok((stream, early)) => {
                // They may share hyper's whole request buffer: handled and
                // dropped now.
                if !early.is_empty() {
                    let parts = &mut *self.0;
                    let mut rest = &early[..];
                    let read = parts.handle_bytes(&mut rest);
                    parts.keep(rest);
                    parts.early = Some(read);
                }
                Some(stream)
            }
            Err(e) => {
                tracing::warn!("cannot take over an upgraded connection: {e}");
                None
            }
        }
    }

    async fn serve<T: Socket>(self, io: T) {
        let mut parts = self.0;
        let end = parts.drive(&io).await;
        tracing::debug!(conn = parts.session.id(), ?end, "connection ended");
        // A full outbox whose client then vanished without a close
        // handshake was a disconnect, not a slow consumer.
        if parts.session.outbox().settle(end == End::Eof) {
            parts.session.state().metrics.gone_with_full_outbox.inc();
        }
        parts.session.leave();
        // Dropping the session, then the socket, closes the connection.
    }
}

impl Parts {
    /// Serve the connection until it ends: read and hand over what the
    /// client sends, write what is queued (a shutdown's Close 1001 too),
    /// and meanwhile ping the client (4009 if it goes silent), close at
    /// token expiry (4001), and give a client that does not complete a
    /// close `close_timeout`.
    async fn drive<T: Socket>(&mut self, io: &T) -> End {
        let state = self.session.state().clone();
        let metrics = state.metrics.clone();
        let outbox = self.session.outbox().clone();
        let mut writer = Writer::default();

        // Whether the client still sends frames we act on: false after its
        // Close or a protocol error, when bytes are read and discarded.
        let mut reading = true;
        // The client sent Close: we are done once our answer is written.
        let mut client_closed = false;
        // The client broke the protocol: after our Close, wait for its EOF.
        let mut failed = false;

        // What the bytes that arrived with the handshake held.
        if let Some(result) = self.early.take() {
            match result {
                Read::More | Read::Busy => {}
                Read::ClientClosed => (reading, client_closed) = (false, true),
                Read::Failed => (reading, failed) = (false, true),
                Read::Eof => return End::Eof,
            }
        }

        // This future is the connection's task, alive as long as the
        // connection: what every connection needs is pinned here; what few
        // need (a close deadline, a token expiry) is boxed only when it
        // happens. Socket readiness is polled, so it takes no room at all.
        let heartbeat = &state.config.heartbeat;
        let heartbeat_on = !heartbeat.interval.is_zero();
        let mut ping_sent: Option<Instant> = None;
        let beat = tokio::time::sleep(heartbeat.interval);
        tokio::pin!(beat);
        let wake = outbox.wait();
        tokio::pin!(wake);
        let mut deadline: Option<Pin<Box<Sleep>>> = None;
        let mut life = Life::new(&self.session);

        loop {
            let deflate = self
                .deflate
                .as_ref()
                .map(|(a, bits)| (&**a.deflate(), *bits));
            match writer.flush(io, &outbox, &metrics, deflate) {
                Ok(Flushed::CloseWritten) if client_closed => return End::Closed,
                Ok(_) => {}
                Err(_) => return End::Eof,
            }
            if self.turn >= MESSAGES_PER_TURN {
                // Its replies are written; now the others' turn.
                self.turn = 0;
                tokio::task::yield_now().await;
            }
            // What was read but not handled yet goes before anything new.
            if reading && self.session.ready() && self.stashed() {
                match self.handle_stash() {
                    Read::More | Read::Busy => {}
                    Read::ClientClosed => (reading, client_closed) = (false, true),
                    Read::Failed => (reading, failed) = (false, true),
                    Read::Eof => return End::Eof,
                }
                continue;
            }
            self.turn = 0;
            let want_write = writer.blocked();
            // Once a Close is requested, the client has `close_timeout` to
            // complete the handshake, whether or not our Close could be written.
            if deadline.is_none() && outbox.is_closing() {
                let close_timeout = state.config.limits.close_timeout;
                deadline = Some(Box::pin(tokio::time::sleep(close_timeout)));
            }
            // Read only what the session can take now (it may be waiting on
            // the broker: then TCP holds the client back).
            let take = reading && self.session.ready() && !self.stashed();
            // Every branch below is cancel-safe: readiness, notifications, timers.
            tokio::select! {
                biased;
                r = std::future::poll_fn(|cx| io.poll_read_ready(cx)), if take || !reading => {
                    if r.is_err() {
                        return End::Eof;
                    }
                    if !reading {
                        if discard(io) {
                            return if failed { End::ProtocolError } else { End::Eof };
                        }
                        continue;
                    }
                    match self.on_readable(io) {
                        Read::More | Read::Busy => {}
                        Read::ClientClosed => {
                            // Our Close was already written: the handshake is complete.
                            if writer.close_written() {
                                return End::Closed;
                            }
                            (reading, client_closed) = (false, true);
                        }
                        Read::Failed => (reading, failed) = (false, true),
                        Read::Eof => return End::Eof,
                    }
                }
                r = std::future::poll_fn(|cx| io.poll_write_ready(cx)), if want_write => {
                    if r.is_err() {
                        return End::Eof;
                    }
                }
                () = std::future::poll_fn(|cx| life.poll(cx, &mut self.session)) => {
                    // The broker answered, a held-back message went, or the
                    // token expired; what was read meanwhile is handled at
                    // the top of the loop.
                }
                // Also while blocked on a full socket: a Close request must arm the deadline.
                () = &mut wake => {
                    wake.set(outbox.wait());
                    // Others queued frames for us. Let the tasks that are ready
                    // now run first: what they broadcast joins this batch, and
                    // one write carries it all (uWebSockets' "cork").
                    tokio::task::yield_now().await;
                }
                () = maybe(deadline.as_mut()), if deadline.is_some() => return End::CloseTimeout,
                () = &mut beat, if heartbeat_on && !outbox.is_closing() => {
                    let now = Instant::now();
                    match ping_sent {
                        Some(sent) if self.last_seen >= sent => {
                            ping_sent = None;
                            beat.as_mut().reset((sent + heartbeat.interval).max(now).into());
                        }
                        Some(_) => {
                            metrics.heartbeat_timeouts.inc();
                            tracing::debug!(conn = self.session.id(), "no answer to ping: closing");
                            outbox.close(close::HEARTBEAT_TIMEOUT, "no pong", CloseMode::Now);
                        }
                        None => {
                            outbox.queue_own(frame::encode(frame::Opcode::Ping, b""));
                            ping_sent = Some(now);
                            beat.as_mut().reset((now + heartbeat.timeout).into());
                        }
                    }
                }
            }
        }
    }

    /// Read what the socket has (a bounded number of times) and handle it.
    fn on_readable<T: Socket>(&mut self, io: &T) -> Read {
        // One read buffer per worker thread, not per connection: an idle
        // connection owns none. Hooks never read sockets, so it is never
        // borrowed twice.
        READ_BUFFER.with(|cell| {
            let mut buf = cell.borrow_mut();
            for _ in 0..READS_PER_WAKE {
                match io.try_read(&mut buf[..]) {
                    Ok(0) => return Read::Eof,
                    Ok(n) => {
                        self.last_seen = Instant::now();
                        let mut rest = &buf[..n];
                        let read = self.handle_bytes(&mut rest);
                        self.keep(rest);
                        match read {
                            Read::More if n == READ_BUF && !self.stashed() => continue,
                            other => return other,
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Read::More,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(_) => return Read::Eof,
                }
            }
            Read::More
        })
    }

    /// Whether bytes wait in the stash.
    fn stashed(&self) -> bool {
        self.stash_at < self.stash.len()
    }

    /// Keep `rest` (bytes not handed over yet) after what the stash holds.
    fn keep(&mut self, rest: &[u8]) {
        if !rest.is_empty() {
            self.stash.extend_from_slice(rest);
        }
    }

    /// Hand over what the stash holds, as far as the session and this
    /// turn's budget go.
    fn handle_stash(&mut self) -> Read {
        let stash = std::mem::take(&mut self.stash);
        let mut rest = &stash[self.stash_at..];
        let read = self.handle_bytes(&mut rest);
        let left = rest.len();
        if left == 0 {
            // Done with it (dropped: an idle connection keeps no buffer).
            self.stash_at = 0;
        } else {
            self.stash_at = stash.len() - left;
            self.stash = stash;
        }
        read
    }

    /// Decode `bytes` and hand the messages in them to the session, until
    /// they run out, the session cannot go on yet, or this turn's budget is
    /// spent; `bytes` is left at what was not handed over.
    fn handle_bytes(&mut self, bytes: &mut &[u8]) -> Read {
        loop {
            if bytes.is_empty() {
                return Read::More;
            }
            if !self.session.ready() {
                return Read::More;
            }
            if self.turn >= MESSAGES_PER_TURN {
                return Read::Busy;
            }
            match self.decoder.next(bytes) {
                Ok(None) => {
                    debug_assert!(bytes.is_empty(), "the decoder keeps partial frames itself");
                    return Read::More;
                }
                Ok(Some(msg)) => {
                    self.turn += 1;
                    if let Some(stop) = self.handle(msg) {
                        return stop;
                    }
                }
                Err(ReadError::Protocol { code, kind, reason }) => {
                    self.session.state().metrics.protocol_error(kind);
                    tracing::debug!(
                        conn = self.session.id(),
                        code,
                        "failing connection: {reason}"
                    );
                    self.session
                        .outbox()
                        .close(code, reason, CloseMode::AfterQueued);
                    return Read::Failed;
                }
                Err(ReadError::Closed) => return Read::Eof,
            }
        }
    }

    /// Handle one message; `Some` when reading should stop.
    fn handle(&mut self, msg: Message) -> Option<Read> {
        match msg {
            // A roomcast.v1 client's text is a command.
            Message::Text(text) if self.session.wire() == Wire::V1 => {
                let command = v1::parse(&text);
                let size = text.len();
                self.session.handle(Inbound::Command { command, size });
            }
            Message::Text(text) => self.session.handle(Inbound::Text { text, id: None }),
            Message::Binary(data) => self.session.handle(Inbound::Binary { data, id: None }),
            Message::Ping(payload) => {
                // Pings cost a write each: they count against the rate too.
                let pong = frame::encode(frame::Opcode::Pong, &payload);
                self.session.handle(Inbound::Ping(pong));
            }
            Message::Pong => {}
            Message::Close(code) => {
                // Echo the client's code (RFC 6455 §5.5.1); a no-op if we closed first.
                let reply = code.unwrap_or(close::NORMAL);
                self.session
                    .outbox()
                    .close(reply, "", CloseMode::AfterQueued);
                return Some(Read::ClientClosed);
            }
        }
        None
    }
}

/// Read and drop whatever the client still sends (after a protocol error or
/// its Close), so our Close is not lost to a TCP reset caused by unread data.
/// True once the stream has ended.
fn discard<T: Socket>(io: &T) -> bool {
    let mut buf = [0u8; 4096];
    loop {
        match io.try_read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return true,
        }
    }
}
