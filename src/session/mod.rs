//! One WebSocket connection: a reader (this task) and a writer task.
//!
//! The reader turns frames into script calls and carries out the actions the
//! hooks return; the writer is the only owner of the socket's write half and
//! drains the connection's bounded outbox. Cleanup (leave the room, run
//! `on_close`, update gauges) happens in one place, `Session`'s `Drop`, so it
//! runs however the session ends.

mod rate;
mod reader;
mod writer;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use fastwebsockets::WebSocket;
use rhai::{Blob, FuncArgs, ImmutableString};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::auth::Identity;
use crate::config::OnScriptError;
use crate::frame::{self, close_code};
use crate::outbox::{CloseMode, Outbox};
use crate::registry::{deliver, ConnId, Member, Room};
use crate::script::{Action, Hook, Outcome, ScriptConn};
use crate::server::{Route, Shared};

pub use rate::NOTICE as RATE_LIMIT_NOTICE;
pub use reader::{Message, MessageReader, ReadError};

/// How the read side ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// The client sent Close (an answer to ours, or its own initiative).
    ClientClose,
    /// The client broke the protocol; our Close is queued.
    ProtocolError,
    /// TCP ended without a Close frame.
    Eof,
    /// We asked to close and the client did not complete the handshake in time.
    CloseTimeout,
}

/// Run a connection that has completed its upgrade until it is closed.
pub(crate) async fn run<S>(
    ws: WebSocket<S>,
    shared: Arc<Shared>,
    route: Arc<Route>,
    room: String,
    identity: Option<Identity>,
    peer: Option<SocketAddr>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let limits = shared.config.limits.clone();
    let (read_half, write_half) = tokio::io::split(ws.into_inner());
    let outbox = Outbox::new(limits.outbox_messages, limits.outbox_bytes);
    let writer = tokio::spawn(writer::run(
        write_half,
        outbox.clone(),
        shared.metrics.clone(),
    ));

    let expires_at = identity.as_ref().and_then(|i| i.expires_at);
    let mut session = Session::open(shared, route, &room, outbox.clone(), identity.as_ref());
    tracing::debug!(conn = session.id, room = %room, peer = ?peer, user = ?identity.map(|i| i.user), "session open");
    let mut reader = MessageReader::new(read_half, limits.frame_limit(), limits.max_message_size);
    let end = session
        .drive(&mut reader, limits.close_timeout, expires_at)
        .await;
    tracing::debug!(conn = session.id, ?end, "session ended");
    if end == End::ProtocolError {
        // Keep reading until the client closes, so our Close frame is not lost
        // to a TCP reset caused by unread data.
        reader.drain(limits.close_timeout).await;
    }
    session.leave();
    if end == End::Eof {
        outbox.finish();
    }
    // The writer sends what is queued (a Close echo, say) and stops; a peer that
    // stopped reading cannot hold the task beyond the close timeout.
    let abort = writer.abort_handle();
    if tokio::time::timeout(limits.close_timeout, writer)
        .await
        .is_err()
    {
        abort.abort();
    }
    outbox.finish();
}

struct Session {
    shared: Arc<Shared>,
    route: Arc<Route>,
    id: ConnId,
    conn: ScriptConn,
    outbox: Outbox,
    room: Arc<Room>,
    actions: Vec<Action>,
    rate: Option<rate::Rate>,
    left: bool,
}

impl Session {
    fn open(
        shared: Arc<Shared>,
        route: Arc<Route>,
        room: &str,
        outbox: Outbox,
        identity: Option<&Identity>,
    ) -> Session {
        let seq = route.next_seq();
        let id = shared.next_conn_id();
        let nick = format!("user{seq}");
        let conn = ScriptConn::with_identity(id, seq, &route.name, room, &nick, identity);
        // Join before `on_connect`, so the newcomer receives its own announcement.
        let room = shared.registry.join(
            room,
            Member {
                id,
                nick: nick.into(),
                outbox: outbox.clone(),
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
            room,
            actions: Vec::new(),
            rate,
            left: false,
        };
        let conn = session.conn.clone();
        session.hook(Hook::Connect, (conn,));
        session
    }

    /// Read until the connection ends. Meanwhile: answer shutdown with Close
    /// 1001, ping the client and close it (4009) if it goes silent, close it
    /// (4001) when its token expires, and give a client that does not complete
    /// a close `close_timeout`.
    async fn drive<R: AsyncRead + Unpin>(
        &mut self,
        reader: &mut MessageReader<R>,
        close_timeout: Duration,
        token_expires_at: Option<u64>,
    ) -> End {
        let outbox = self.outbox.clone();
        let metrics = self.shared.metrics.clone();
        let shutdown = self.shared.shutdown.clone();
        let heartbeat = self.shared.config.heartbeat.clone();
        let opened = Instant::now();
        // When the client last sent anything (µs since `opened`): the read loop
        // bumps it on every frame, the heartbeat reads it.
        let last_seen = AtomicU64::new(0);
        let read = self.read_loop(reader, &last_seen, opened);
        tokio::pin!(read);

        // Once a Close is requested, the client has `close_timeout` to complete
        // the handshake, whether or not our Close frame could be written.
        let deadline = async {
            outbox.closing().await;
            tokio::time::sleep(close_timeout).await;
        };
        tokio::pin!(deadline);

        let heartbeat_on = !heartbeat.interval.is_zero();
        let mut ping_sent: Option<Instant> = None;
        let beat = tokio::time::sleep(heartbeat.interval);
        tokio::pin!(beat);

        let expiry = tokio::time::sleep(until_unix(token_expires_at.unwrap_or(u64::MAX)));
        tokio::pin!(expiry);

        let mut told = false;
        loop {
            // `read` is polled in place and never dropped mid-frame while the
            // session goes on: it is only abandoned when the session ends.
            tokio::select! {
                end = &mut read => return end,
                () = &mut deadline => return End::CloseTimeout,
                () = shutdown.cancelled(), if !told => {
                    told = true;
                    outbox.close(close_code::GOING_AWAY, "server shutting down", CloseMode::AfterQueued);
                }
                () = &mut expiry, if token_expires_at.is_some() && !outbox.is_closing() => {
                    metrics.token_expirations.inc();
                    outbox.close(close_code::TOKEN_EXPIRED, "token expired", CloseMode::AfterQueued);
                }
                () = &mut beat, if heartbeat_on && !outbox.is_closing() => {
                    let now = Instant::now();
                    match ping_sent {
                        Some(sent) if seen_since(&last_seen, opened, sent) => {
                            ping_sent = None;
                            beat.as_mut().reset((sent + heartbeat.interval).max(now).into());
                        }
                        Some(_) => {
                            metrics.heartbeat_timeouts.inc();
                            tracing::debug!("no answer to ping: closing");
                            outbox.close(close_code::HEARTBEAT_TIMEOUT, "no pong", CloseMode::Now);
                        }
                        None => {
                            deliver(&outbox, frame::encode(frame::Opcode::Ping, b""), &metrics);
                            ping_sent = Some(now);
                            beat.as_mut().reset((now + heartbeat.timeout).into());
                        }
                    }
                }
            }
        }
    }

    async fn read_loop<R: AsyncRead + Unpin>(
        &mut self,
        reader: &mut MessageReader<R>,
        last_seen: &AtomicU64,
        opened: Instant,
    ) -> End {
        let metrics = self.shared.metrics.clone();
        loop {
            let msg = reader.next().await;
            last_seen.store(opened.elapsed().as_micros() as u64, Ordering::Relaxed);
            match msg {
                Ok(Message::Text(text)) => {
                    metrics.messages_received.inc();
                    metrics.bytes_received.inc_by(text.len() as u64);
                    // After our Close, data is read but no longer acted on.
                    if !self.outbox.is_closing() && self.within_rate() {
                        let args = (self.conn.clone(), ImmutableString::from(text));
                        self.hook(Hook::Message, args);
                    }
                }
                Ok(Message::Binary(data)) => {
                    metrics.messages_received.inc();
                    metrics.bytes_received.inc_by(data.len() as u64);
                    if !self.outbox.is_closing() && self.within_rate() {
                        let args = (self.conn.clone(), Blob::from(data));
                        if !self.hook(Hook::Binary, args) {
                            metrics.messages_dropped_unhandled.inc();
                        }
                    }
                }
                Ok(Message::Ping(payload)) => {
                    // Pings cost a write each: they count against the rate too.
                    if self.within_rate() {
                        deliver(
                            &self.outbox,
                            frame::encode(frame::Opcode::Pong, &payload),
                            &metrics,
                        );
                    }
                }
                Ok(Message::Pong) => {}
                Ok(Message::Close(code)) => {
                    // Echo the client's code (RFC 6455 §5.5.1); a no-op if we closed first.
                    let reply = code.unwrap_or(close_code::NORMAL);
                    self.outbox.close(reply, "", CloseMode::AfterQueued);
                    return End::ClientClose;
                }
                Err(ReadError::Protocol { code, kind, reason }) => {
                    metrics.protocol_error(kind);
                    tracing::debug!(conn = self.id, code, "failing connection: {reason}");
                    self.outbox.close(code, reason, CloseMode::AfterQueued);
                    return End::ProtocolError;
                }
                Err(ReadError::Closed) => return End::Eof,
            }
        }
    }

    /// Apply the rate limit to one incoming message: false means drop it (the
    /// client has been told, or is being closed for flooding).
    fn within_rate(&mut self) -> bool {
        let Some(rate) = self.rate.as_mut() else {
            return true;
        };
        let metrics = &self.shared.metrics;
        match rate.check() {
            rate::Verdict::Allow => true,
            rate::Verdict::Drop(notice) => {
                metrics.messages_dropped_rate_limited.inc();
                if let Some(notice) = notice {
                    deliver(&self.outbox, notice, metrics);
                }
                false
            }
            rate::Verdict::Abuse => {
                metrics.messages_dropped_rate_limited.inc();
                if self.outbox.close(
                    close_code::POLICY_VIOLATION,
                    "rate limit exceeded",
                    CloseMode::AfterQueued,
                ) {
                    metrics.rate_limit_closes.inc();
                    tracing::debug!(conn = self.id, "closing a client that keeps flooding");
                }
                false
            }
        }
    }

    /// Call a hook and carry out its actions. Returns false if the script does
    /// not define the hook.
    fn hook(&mut self, hook: Hook, args: impl FuncArgs) -> bool {
        let script = self.route.script.clone();
        match self
            .shared
            .scripts
            .call(&script, hook, &self.conn, args, &mut self.actions)
        {
            Outcome::Ran => {
                self.apply();
                true
            }
            Outcome::Missing => false,
            Outcome::Failed(err) => {
                tracing::error!(conn = self.id, route = %self.route.name, "script error: {err}");
                if matches!(hook, Hook::Message | Hook::Binary) {
                    self.shared.metrics.messages_dropped_script_error.inc();
                }
                if self.shared.config.scripts.on_error == OnScriptError::Close {
                    self.outbox.close(
                        close_code::INTERNAL_ERROR,
                        "script error",
                        CloseMode::AfterQueued,
                    );
                }
                true
            }
        }
    }

    fn apply(&mut self) {
        let metrics = &self.shared.metrics;
        for action in self.actions.drain(..) {
            match action {
                Action::Reply(f) => {
                    deliver(&self.outbox, f, metrics);
                }
                Action::Broadcast(f) => {
                    self.room.broadcast(&f, None, metrics);
                }
                Action::BroadcastOthers(f) => {
                    self.room.broadcast(&f, Some(self.id), metrics);
                }
                Action::SendTo(nick, f) => {
                    self.room.send_to_nick(&nick, &f, metrics);
                }
                Action::Close(code, reason) => {
                    self.outbox.close(code, &reason, CloseMode::AfterQueued);
                }
                Action::SetNick(nick) => self.room.set_nick(self.id, nick.as_str().into()),
            }
        }
    }

    /// Leave the room, then tell the script (so `on_close` broadcasts reach the
    /// members who remain). Idempotent.
    fn leave(&mut self) {
        if std::mem::replace(&mut self.left, true) {
            return;
        }
        self.shared.registry.leave(&self.room, self.id);
        let conn = self.conn.clone();
        self.hook(Hook::Close, (conn,));
    }
}

/// Has the client sent anything since `since`? (`last_seen` is in µs since `opened`.)
fn seen_since(last_seen: &AtomicU64, opened: Instant, since: Instant) -> bool {
    last_seen.load(Ordering::Relaxed) >= since.duration_since(opened).as_micros() as u64
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
