//! One WebSocket connection, served by one task.
//!
//! The task waits on the socket's readiness, its outbox and its timers at
//! once. When the socket is readable it reads what is there into a buffer on
//! its stack, decodes it, runs the script hooks and carries out the actions
//! they return; then it writes everything queued for it — its own replies
//! and other members' broadcasts — with vectored writes, one syscall per
//! wake-up. An idle connection therefore costs one small task and no
//! buffers. Cleanup (leave the room, run `on_close`, update gauges) happens
//! in one place, `Session`'s `Drop`, so it runs however the session ends.

mod actions;
mod commands;
mod decoder;
mod rate;
mod transport;
mod writer;

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use tokio::time::Sleep;

use crate::auth::Identity;
use crate::config::Native;
use crate::frame::{self, close_code};
use crate::outbox::{CloseMode, Outbox};
use crate::registry::{slow_consumer, ConnId, Connection, Room};
use crate::script::{Action, Hook, RequestInfo, Script, ScriptConn};
use crate::server::{Route, Shared};

pub use decoder::{Decoder, Message, ReadError};
pub use rate::NOTICE as RATE_LIMIT_NOTICE;
pub use transport::Transport;

use transport::Io;
use writer::{Flushed, Writer};

/// Bytes read from the socket per `read` call.
const READ_BUF: usize = 16 * 1024;
/// Reads per wake-up before letting other connections run.
const READS_PER_WAKE: usize = 16;

thread_local! {
    // Zeroed once per worker thread, then reused for every read.
    static READ_BUFFER: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0; READ_BUF]);
}

/// How a session ended.
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
    /// The client sent Close; our answer is queued.
    ClientClosed,
    /// The client broke the protocol; our Close is queued.
    Failed,
    /// The stream ended.
    Eof,
}

/// Everything the upgrade learned about a connection, for its session.
pub(crate) struct Accepted {
    pub(crate) route: Arc<Route>,
    /// The room a raw connection joins (`route/room`); v1 connections join by command.
    pub(crate) room: String,
    pub(crate) identity: Option<Identity>,
    pub(crate) peer: Option<SocketAddr>,
    /// roomcast.v1 was negotiated.
    pub(crate) v1: bool,
    pub(crate) request: RequestInfo,
}

/// A session that is registered, has its nickname, is in its room and has
/// run `on_connect`, but has no socket yet.
///
/// The upgrade opens it *before* the 101 response goes out, so a client that
/// has its 101 is already a member: it receives everything published after
/// that, and clients that connect one after another get `user1`, `user2`…
/// in that order. What is queued meanwhile waits in its (bounded) outbox.
/// Dropping it (the upgrade never completed) leaves the room as usual.
pub(crate) struct Opened(Box<Parts>);

/// Boxed so that the session's task, which moves the opened session through
/// several nested futures, carries one pointer rather than a copy per level
/// (each async frame keeps its own copy of what it was given).
struct Parts {
    session: Session,
    decoder: Decoder,
    /// What the bytes that came with the handshake held, once handled.
    early: Option<Read>,
}

/// The socket a session is served on.
enum Socket {
    Tcp(tokio::net::TcpStream),
    Bridged(tokio::net::UnixStream),
}

/// Open the session for an accepted upgrade.
pub(crate) fn open(shared: Arc<Shared>, accepted: Accepted) -> Opened {
    let limits = &shared.config.limits;
    let outbox = Outbox::new(limits.outbox_messages, limits.outbox_bytes);
    let decoder = Decoder::new(limits.frame_limit(), limits.max_message_size);
    let peer = accepted.peer;
    let session = Session::open(shared, accepted, outbox);
    tracing::debug!(conn = session.id, peer = ?peer, user = ?session.user, v1 = session.v1, "session open");
    Opened(Box::new(Parts {
        session,
        decoder,
        early: None,
    }))
}

impl Opened {
    /// Wait for the upgrade to complete, then serve the connection until it
    /// is closed. The upgraded stream is unwrapped, and the bytes that came
    /// with the handshake handled, in plain functions: an async fn keeps its
    /// arguments and many of its locals for as long as it runs, and this one
    /// runs as long as the connection.
    pub(crate) async fn run(mut self, upgrade: fastwebsockets::upgrade::UpgradeFut) {
        let socket = match upgrade.await {
            Ok(ws) => self.take_over(ws),
            Err(e) => {
                tracing::debug!("upgrade did not complete: {e}");
                return;
            }
        };
        match socket {
            Some(Socket::Tcp(stream)) => self.serve(stream).await,
            Some(Socket::Bridged(stream)) => self.serve(stream).await,
            None => {}
        }
    }

    fn take_over(
        &mut self,
        ws: fastwebsockets::WebSocket<hyper_util::rt::TokioIo<hyper::upgrade::Upgraded>>,
    ) -> Option<Socket> {
        match transport::from_upgraded(ws.into_inner().into_inner()) {
            Ok(Io::Tcp(stream, early)) => {
                // They may share hyper's whole request buffer: handled and
                // dropped now.
                if !early.is_empty() {
                    let parts = &mut *self.0;
                    parts.early = Some(parts.session.handle_bytes(&mut parts.decoder, &early));
                }
                Some(Socket::Tcp(stream))
            }
            Ok(Io::Bridged(stream)) => Some(Socket::Bridged(stream)),
            Err(e) => {
                tracing::warn!("cannot take over an upgraded connection: {e}");
                None
            }
        }
    }

    async fn serve<T: Transport>(self, io: T) {
        let mut parts = self.0;
        let Parts {
            session,
            decoder,
            early,
        } = &mut *parts;
        let end = session.drive(&io, decoder, early.take()).await;
        tracing::debug!(conn = session.id, ?end, "session ended");
        session.leave();
        // Dropping the session, then the socket, closes the connection.
    }
}

struct Session {
    shared: Arc<Shared>,
    route: Arc<Route>,
    id: ConnId,
    conn: ScriptConn,
    outbox: Outbox,
    /// Speaks roomcast.v1 (JSON commands and events) rather than raw frames.
    v1: bool,
    user: Option<Arc<str>>,
    /// Its token, for the rooms it may join (boxed: most connections have none).
    identity: Option<Box<Identity>>,
    /// The rooms it is in (a raw connection: its route's room, first).
    rooms: Vec<Joined>,
    actions: Vec<Action>,
    rate: Option<rate::Rate>,
    /// When the client last sent anything (heartbeat).
    last_seen: Instant,
    left: bool,
}

/// A room the connection is in, with what handles the room's messages.
#[derive(Clone)]
struct Joined {
    room: Arc<Room>,
    script: Option<Arc<Script>>,
    native: Option<Native>,
}

impl Session {
    fn open(shared: Arc<Shared>, accepted: Accepted, outbox: Outbox) -> Session {
        let Accepted {
            route,
            room,
            identity,
            v1,
            request,
            ..
        } = accepted;
        let seq = route.next_seq();
        let id = shared.next_conn_id();
        let nick = format!("user{seq}");
        let conn =
            ScriptConn::with_request(id, seq, &route.name, &nick, identity.as_ref(), request);
        let user: Option<Arc<str>> = identity.as_ref().map(|i| i.user.as_str().into());
        shared.registry.register(
            id,
            Connection {
                outbox: outbox.clone(),
                user: user.clone(),
                v1,
            },
        );
        shared.metrics.connections.inc();
        shared.metrics.connections_opened.inc();
        let rate = rate::Rate::new(&shared.config.limits.rate);
        let mut session = Session {
            shared,
            route,
            id,
            conn,
            outbox,
            v1,
            user,
            identity: identity.map(Box::new),
            rooms: Vec::new(),
            actions: Vec::new(),
            rate,
            last_seen: Instant::now(),
            left: false,
        };
        // A raw connection joins its room before `on_connect`, so the newcomer
        // receives its own announcement.
        if !v1 && session.enter(&room, None, &None).is_err() {
            session.outbox.close(
                close_code::POLICY_VIOLATION,
                "room is full",
                CloseMode::AfterQueued,
            );
        }
        let home = session.rooms.first().cloned();
        let conn = session.conn.clone();
        session.hook(home, Hook::Connect, (conn,), &None);
        session
    }

    /// Serve the connection until it ends: read and handle what the client
    /// sends, write what is queued, and meanwhile answer shutdown with Close
    /// 1001, ping the client (4009 if it goes silent), close at token expiry
    /// (4001), and give a client that does not complete a close `close_timeout`.
    async fn drive<T: Transport>(
        &mut self,
        io: &T,
        decoder: &mut Decoder,
        early: Option<Read>,
    ) -> End {
        let metrics = self.shared.metrics.clone();
        let shutdown = self.shared.shutdown.clone();
        let outbox = self.outbox.clone();
        let mut writer = Writer::default();

        // Whether the client still sends frames we act on: false after its
        // Close or a protocol error, when bytes are read and discarded.
        let mut reading = true;
        // The client sent Close: we are done once our answer is written.
        let mut client_closed = false;
        // The client broke the protocol: after our Close, wait for its EOF.
        let mut failed = false;

        // What the bytes that arrived with the handshake held.
        if let Some(result) = early {
            match result {
                Read::More => {}
                Read::ClientClosed => (reading, client_closed) = (false, true),
                Read::Failed => (reading, failed) = (false, true),
                Read::Eof => return End::Eof,
            }
        }

        // This future is the connection's task, alive as long as the
        // connection: what every connection needs is pinned here; what few
        // need (a close deadline, a token expiry) is boxed only when it
        // happens. Socket readiness is polled, so it takes no room at all.
        let heartbeat_interval = self.shared.config.heartbeat.interval;
        let heartbeat_on = !heartbeat_interval.is_zero();
        let mut ping_sent: Option<Instant> = None;
        let beat = tokio::time::sleep(heartbeat_interval);
        tokio::pin!(beat);
        let mut told = false;
        let stop = shutdown.cancelled();
        tokio::pin!(stop);
        let wake = outbox.wait();
        tokio::pin!(wake);
        let mut deadline: Option<Pin<Box<Sleep>>> = None;
        let mut expiry: Option<Pin<Box<Sleep>>> = self
            .identity
            .as_ref()
            .and_then(|i| i.expires_at)
            .map(|at| Box::pin(tokio::time::sleep(until_unix(at))));

        loop {
            match writer.flush(io, &outbox, &metrics) {
                Ok(Flushed::CloseWritten) if client_closed => return End::Closed,
                Ok(_) => {}
                Err(_) => return End::Eof,
            }
            let want_write = writer.blocked();
            // Once a Close is requested, the client has `close_timeout` to
            // complete the handshake, whether or not our Close could be written.
            if deadline.is_none() && outbox.is_closing() {
                let close_timeout = self.shared.config.limits.close_timeout;
                deadline = Some(Box::pin(tokio::time::sleep(close_timeout)));
            }
            // Every branch below is cancel-safe: readiness, notifications, timers.
            tokio::select! {
                biased;
                r = std::future::poll_fn(|cx| io.poll_read_ready(cx)) => {
                    if r.is_err() {
                        return End::Eof;
                    }
                    if !reading {
                        if discard(io) {
                            return if failed { End::ProtocolError } else { End::Eof };
                        }
                        continue;
                    }
                    match self.on_readable(io, decoder) {
                        Read::More => {}
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
                // Also while blocked on a full socket: a Close request must arm the deadline.
                () = &mut wake => {
                    wake.set(outbox.wait());
                    // Others queued frames for us. Let the tasks that are ready
                    // now run first: what they broadcast joins this batch, and
                    // one write carries it all (uWebSockets' "cork").
                    tokio::task::yield_now().await;
                }
                () = maybe(deadline.as_mut()), if deadline.is_some() => return End::CloseTimeout,
                () = &mut stop, if !told => {
                    told = true;
                    outbox.close(close_code::GOING_AWAY, "server shutting down", CloseMode::AfterQueued);
                }
                () = maybe(expiry.as_mut()), if expiry.is_some() && !outbox.is_closing() => {
                    expiry = None;
                    metrics.token_expirations.inc();
                    outbox.close(close_code::TOKEN_EXPIRED, "token expired", CloseMode::AfterQueued);
                }
                () = &mut beat, if heartbeat_on && !outbox.is_closing() => {
                    let heartbeat = &self.shared.config.heartbeat;
                    let now = Instant::now();
                    match ping_sent {
                        Some(sent) if self.last_seen >= sent => {
                            ping_sent = None;
                            beat.as_mut().reset((sent + heartbeat.interval).max(now).into());
                        }
                        Some(_) => {
                            metrics.heartbeat_timeouts.inc();
                            tracing::debug!(conn = self.id, "no answer to ping: closing");
                            outbox.close(close_code::HEARTBEAT_TIMEOUT, "no pong", CloseMode::Now);
                        }
                        None => {
                            deliver_own(&outbox, frame::encode(frame::Opcode::Ping, b""), &metrics);
                            ping_sent = Some(now);
                            beat.as_mut().reset((now + heartbeat.timeout).into());
                        }
                    }
                }
            }
        }
    }

    /// Read what the socket has (a bounded number of times) and handle it.
    fn on_readable<T: Transport>(&mut self, io: &T, decoder: &mut Decoder) -> Read {
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
                        match self.handle_bytes(decoder, &buf[..n]) {
                            Read::More if n == READ_BUF => continue,
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

    /// Decode `bytes` and handle every message in them.
    fn handle_bytes(&mut self, decoder: &mut Decoder, mut bytes: &[u8]) -> Read {
        let shared = self.shared.clone();
        let metrics = &shared.metrics;
        loop {
            match decoder.next(&mut bytes) {
                Ok(None) => return Read::More,
                Ok(Some(msg)) => {
                    if let Some(stop) = self.handle(msg) {
                        return stop;
                    }
                }
                Err(ReadError::Protocol { code, kind, reason }) => {
                    metrics.protocol_error(kind);
                    tracing::debug!(conn = self.id, code, "failing connection: {reason}");
                    self.outbox.close(code, reason, CloseMode::AfterQueued);
                    return Read::Failed;
                }
                Err(ReadError::Closed) => return Read::Eof,
            }
        }
    }

    /// Handle one message; `Some` when reading should stop.
    fn handle(&mut self, msg: Message) -> Option<Read> {
        let metrics = &self.shared.metrics;
        match msg {
            Message::Text(text) => {
                if metrics.per_message {
                    metrics.messages_received.inc();
                    metrics.bytes_received.inc_by(text.len() as u64);
                }
                // After our Close, data is read but no longer acted on.
                if !self.outbox.is_closing() {
                    if self.v1 {
                        self.command(&text);
                    } else if self.within_rate(&None) {
                        self.raw_text(text);
                    }
                }
            }
            Message::Binary(data) => {
                if metrics.per_message {
                    metrics.messages_received.inc();
                    metrics.bytes_received.inc_by(data.len() as u64);
                }
                if !self.outbox.is_closing() && self.within_rate(&None) {
                    self.raw_binary(data);
                }
            }
            Message::Ping(payload) => {
                // Pings cost a write each: they count against the rate too.
                if self.within_rate(&None) {
                    let pong = frame::encode(frame::Opcode::Pong, &payload);
                    deliver_own(&self.outbox, pong, &self.shared.metrics);
                }
            }
            Message::Pong => {}
            Message::Close(code) => {
                // Echo the client's code (RFC 6455 §5.5.1); a no-op if we closed first.
                let reply = code.unwrap_or(close_code::NORMAL);
                self.outbox.close(reply, "", CloseMode::AfterQueued);
                return Some(Read::ClientClosed);
            }
        }
        None
    }
}

/// Await an optional future; never resolves when there is none (its
/// `select!` branch is disabled then anyway).
async fn maybe<F: Future + Unpin>(f: Option<&mut F>) -> F::Output {
    match f {
        Some(f) => f.await,
        None => std::future::pending().await,
    }
}

/// Read and drop whatever the client still sends (after a protocol error or
/// its Close), so our Close is not lost to a TCP reset caused by unread data.
/// True once the stream has ended.
fn discard<T: Transport>(io: &T) -> bool {
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

/// Queue a frame the session itself sends (a reply, a pong, a ping).
fn deliver_own(outbox: &Outbox, frame: Bytes, metrics: &crate::metrics::Metrics) -> bool {
    match outbox.push_own(frame) {
        Ok(()) => true,
        Err(crate::outbox::PushError::Closed) => false,
        Err(crate::outbox::PushError::Full) => {
            // Its own outbox is full: same verdict as for anyone else's.
            slow_consumer(outbox, metrics);
            false
        }
    }
}

/// Time from now until a Unix timestamp (zero if it has passed).
fn until_unix(at: u64) -> Duration {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    Duration::from_secs(at.saturating_sub(now).min(365 * 24 * 3600))
}

impl Drop for Session {
    fn drop(&mut self) {
        self.leave();
        self.outbox.finish();
        self.shared.metrics.connections.dec();
        self.shared.metrics.connections_closed.inc();
    }
}
