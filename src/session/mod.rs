//! One WebSocket connection: a reader (this task) and a writer task.
//!
//! The reader turns frames into script calls and carries out the actions the
//! hooks return; the writer is the only owner of the socket's write half and
//! drains the connection's bounded outbox. Cleanup (leave the room, run
//! `on_close`, update gauges) happens in one place, `Session`'s `Drop`, so it
//! runs however the session ends.

mod reader;
mod writer;

use std::sync::Arc;
use std::time::Duration;

use fastwebsockets::WebSocket;
use rhai::{Blob, FuncArgs, ImmutableString};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::config::OnScriptError;
use crate::frame::{self, close_code};
use crate::outbox::{CloseMode, Outbox};
use crate::registry::{deliver, ConnId, Member, Room};
use crate::script::{Action, Hook, Outcome, ScriptConn};
use crate::server::{Route, Shared};

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
pub(crate) async fn run<S>(ws: WebSocket<S>, shared: Arc<Shared>, route: Arc<Route>, room: String)
where
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

    let mut session = Session::open(shared, route, &room, outbox.clone());
    let mut reader = MessageReader::new(read_half, limits.frame_limit(), limits.max_message_size);
    let end = session.drive(&mut reader, limits.close_timeout).await;
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
    left: bool,
}

impl Session {
    fn open(shared: Arc<Shared>, route: Arc<Route>, room: &str, outbox: Outbox) -> Session {
        let seq = route.next_seq();
        let id = shared.next_conn_id();
        let nick = format!("user{seq}");
        let conn = ScriptConn::new(id, seq, &route.name, room, &nick);
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
        let mut session = Session {
            shared,
            route,
            id,
            conn,
            outbox,
            room,
            actions: Vec::new(),
            left: false,
        };
        let conn = session.conn.clone();
        session.hook(Hook::Connect, (conn,));
        session
    }

    /// Read until the connection ends; meanwhile answer shutdown with Close 1001
    /// and give a client that does not complete a close `close_timeout`.
    async fn drive<R: AsyncRead + Unpin>(
        &mut self,
        reader: &mut MessageReader<R>,
        close_timeout: Duration,
    ) -> End {
        let outbox = self.outbox.clone();
        let shutdown = self.shared.shutdown.clone();
        let read = self.read_loop(reader);
        tokio::pin!(read);
        // Once a Close is requested, the client has `close_timeout` to complete
        // the handshake, whether or not our Close frame could be written.
        let deadline = async {
            outbox.closing().await;
            tokio::time::sleep(close_timeout).await;
        };
        tokio::pin!(deadline);
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
            }
        }
    }

    async fn read_loop<R: AsyncRead + Unpin>(&mut self, reader: &mut MessageReader<R>) -> End {
        let metrics = self.shared.metrics.clone();
        loop {
            match reader.next().await {
                Ok(Message::Text(text)) => {
                    metrics.messages_received.inc();
                    metrics.bytes_received.inc_by(text.len() as u64);
                    // After our Close, data is read but no longer acted on.
                    if !self.outbox.is_closing() {
                        let args = (self.conn.clone(), ImmutableString::from(text));
                        self.hook(Hook::Message, args);
                    }
                }
                Ok(Message::Binary(data)) => {
                    metrics.messages_received.inc();
                    metrics.bytes_received.inc_by(data.len() as u64);
                    if !self.outbox.is_closing() {
                        let args = (self.conn.clone(), Blob::from(data));
                        if !self.hook(Hook::Binary, args) {
                            metrics.messages_dropped_unhandled.inc();
                        }
                    }
                }
                Ok(Message::Ping(payload)) => {
                    deliver(
                        &self.outbox,
                        frame::encode(frame::Opcode::Pong, &payload),
                        &metrics,
                    );
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

impl Drop for Session {
    fn drop(&mut self) {
        self.leave();
        self.outbox.finish();
        self.shared.metrics.connections.dec();
        self.shared.metrics.connections_closed.inc();
    }
}
