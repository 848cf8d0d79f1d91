//! The session core: one connection's state and logic, whatever its transport.
//!
//! A session holds its rooms, nickname, identity, script state and rate; it
//! is fed app-level messages (a text or binary message, a roomcast.v1
//! command) by its transport's driver, runs the script hooks, carries out
//! what they ask, and queues what its client must be told in its outbox. It
//! never sees a socket, a frame or a packet: the driver reads and decodes,
//! and writes what the outbox holds. Everything here is synchronous, so
//! nothing awaits between reading a message and queueing its effects; what
//! the broker answers later (a networked broker's acks, a join's position)
//! is picked up by [`Session::poll`].
//!
//! Cleanup (leave every room, run `on_leave` and `on_close`, update gauges)
//! happens in one place, `Drop`, so it runs however the session ends.

mod actions;
mod commands;
mod inbound;
mod pending;
mod rate;
mod restore;
#[cfg(test)]
mod tests;
mod token;

use std::sync::Arc;
use std::task::{Context, Poll};

use crate::admission::Admitted;
use crate::auth::Identity;
use crate::caps::Slot;
use crate::close;
use crate::config::Native;
use crate::hub::{Handle, Room};
use crate::ids::ConnId;
use crate::outbox::{CloseMode, Item, Outbox};
use crate::payload::Payload;
use crate::script::{Action, Conn, Hook, Script};
use crate::state::{Route, State};
use crate::wire::{Event, Position, PresenceMember, Wire};

use pending::Pending;

pub(crate) use inbound::Inbound;
pub(crate) use restore::Snapshot;

/// One connection's session.
pub(crate) struct Session {
    state: Arc<State>,
    route: Arc<Route>,
    /// How the hub and the broker reach this connection.
    me: Handle,
    /// Its nickname as its messages show it (kept equal to `conn.nick`).
    nick: Arc<str>,
    /// What its scripts see.
    conn: Conn,
    /// Its token, for the rooms it may join (boxed: most connections have none).
    identity: Option<Box<Identity>>,
    /// A `refresh` moved the token's expiry since the transport last asked.
    expiry_moved: bool,
    /// The rooms it is in (a raw connection: its route's room, first).
    rooms: Vec<Joined>,
    actions: Vec<Action>,
    rate: Option<rate::Rate>,
    /// Buckets of the room policies with a `rate` it published under
    /// (roomcast.v1 and socket.io; keyed by the policy's address).
    room_rates: Vec<(usize, rate::Rate)>,
    /// What the broker will answer later.
    pending: Pending,
    /// `on_connect` waits for the home room's join (a session whose home
    /// room is entered with its position: see `restore.rs`).
    connect_pending: bool,
    /// Rooms a restored session is still to join again (last first).
    rejoins: Vec<(String, Position)>,
    rejoining: bool,
    /// Counts changes to `rooms` (a kept session's record follows them).
    rooms_changed: u64,
    left: bool,
    /// Its place under the connection caps.
    _slot: Slot,
}

/// A room the connection is in, with what handles the room's messages.
#[derive(Clone)]
pub(crate) struct Joined {
    room: Arc<Room>,
    script: Option<Arc<Script>>,
    native: Option<Native>,
    /// Where the room's stream was when the join completed (epoch, offset;
    /// `None` for a home room entered at once).
    at: Option<(Arc<str>, u64)>,
}

impl Session {
    /// A connection's outbox, bounded as `limits` says: made by its
    /// transport, which may need it before the session opens (socket.io
    /// namespaces can be told to close while their session is being opened).
    pub(crate) fn new_outbox(state: &State) -> Outbox {
        let limits = &state.config.limits;
        Outbox::new(
            limits.outbox_messages,
            limits.outbox_bytes,
            state.metrics.slow_consumers.clone(),
        )
    }

    /// Open the session of an admitted connection, the `seq`-th of its route
    /// (`user{seq}`), writing to `outbox`: registered, in its room (a raw
    /// connection), `on_connect` run. What it is sent meanwhile waits in its
    /// (bounded) outbox until its transport writes.
    pub(crate) fn open(state: Arc<State>, admitted: Admitted, seq: u64, outbox: Outbox) -> Session {
        let Admitted {
            route,
            room,
            identity,
            request,
            wire,
            slot,
            offsets,
            restore,
            deflate,
        } = admitted;
        let id = state.next_conn_id();
        let me = Handle {
            id,
            wire,
            offsets,
            deflate,
            user: identity.as_ref().map(|i| i.user.as_str().into()),
            outbox,
        };
        let nick = match &restore {
            Some(r) => r.nick.clone(),
            None => format!("user{seq}"),
        };
        let conn = Conn::with_request(id, seq, &route.name, &nick, identity.as_ref(), request);
        state.hub.register(me.clone());
        // Opened while the server began to drain, after it closed every
        // outbox it knew: closed too (drain marks draining before it does).
        if state.is_draining() {
            me.outbox.close(
                close::GOING_AWAY,
                "server shutting down",
                CloseMode::AfterQueued,
            );
        }
        state.metrics.connections.inc();
        state.metrics.transport(transport(wire)).inc();
        state.metrics.connections_opened.inc();
        // A raw client speaks in its room: the room's policy, if it sets a
        // rate, else the route's (its own, or [limits.rate]).
        let room_rate = wire
            .enters_home_room()
            .then(|| state.policies.for_room(&room).rate.as_ref())
            .flatten();
        let rate = rate::Rate::new(room_rate.unwrap_or(&route.rate));
        let mut session = Session {
            state,
            route,
            me,
            nick: nick.into(),
            conn,
            identity: identity.map(Box::new),
            expiry_moved: false,
            rooms: Vec::new(),
            actions: Vec::new(),
            rate,
            room_rates: Vec::new(),
            pending: Pending::default(),
            connect_pending: false,
            rejoins: Vec::new(),
            rejoining: false,
            rooms_changed: 0,
            left: false,
            _slot: slot,
        };
        // A restored session joins its other rooms again once its home
        // room is entered (`restore.rs`).
        if let Some(r) = restore.as_deref() {
            session.rejoins = r.rooms.iter().rev().cloned().collect();
        }
        // A raw connection joins its room before `on_connect`, so the newcomer
        // receives its own announcement. A client that recovers its state
        // learns where the room's stream is (and a restored one gets what
        // it missed) first: `on_connect` runs once that is done (at once
        // with a broker in this process).
        if wire.enters_home_room() {
            let entered = if offsets {
                session.connect_pending = true;
                let since = restore.as_ref().map(|r| r.home.clone());
                session.enter(&room, since.as_ref(), &None, false)
            } else {
                session.enter(&room, None, &None, true)
            };
            if entered.is_err() {
                session.connect_pending = false;
                session.me.outbox.close(
                    close::POLICY_VIOLATION,
                    "room is full",
                    CloseMode::AfterQueued,
                );
                session.connected();
            } else if !offsets {
                session.connected();
            }
        } else {
            session.connected();
        }
        tracing::debug!(conn = id, user = ?session.me.user, ?wire, "session open");
        session
    }

    /// `on_connect`, in the session's home room.
    fn connected(&mut self) {
        let home = self.rooms.first().cloned();
        let conn = self.conn.clone();
        self.hook(home, Hook::Connect, (conn,), &None);
    }

    /// What the server shares with it.
    pub(crate) fn state(&self) -> &Arc<State> {
        &self.state
    }

    /// The connection's id.
    pub(crate) fn id(&self) -> ConnId {
        self.me.id
    }

    /// What its client expects on the wire.
    pub(crate) fn wire(&self) -> Wire {
        self.me.wire
    }

    /// Where everything for its client is queued.
    pub(crate) fn outbox(&self) -> &Outbox {
        &self.me.outbox
    }

    /// Whether the session takes the next message: false while a join waits
    /// for the broker or a message waits for the rate limit (the driver
    /// stops reading, so TCP slows the client).
    pub(crate) fn ready(&self) -> bool {
        self.pending.is_ready()
    }

    /// Whether anything is awaited from the broker.
    pub(crate) fn waiting(&self) -> bool {
        self.pending.is_waiting()
    }

    /// Carry on with what the broker has answered since the last call.
    /// `Ready` when something was done (there may be more to write).
    pub(crate) fn poll(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let mut done = false;
        if let Some(held) = self.pending.poll_throttle(cx) {
            // Its wait is over (it may have to wait again).
            self.take(held.input, held.charged);
            done = true;
        }
        if let Some((joined, recovery, id)) = self.pending.poll_join(cx) {
            self.finish_join(joined, recovery, &id);
            done = true;
        }
        while let Some(answer) = self.pending.poll_answer(cx) {
            if let Some(bytes) = answer {
                self.me.outbox.queue_own(bytes);
            }
            done = true;
        }
        if done {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }

    /// Count a received data message.
    fn received(&self, bytes: usize) {
        let metrics = &self.state.metrics;
        if metrics.per_message {
            metrics.messages_received.inc();
            metrics.bytes_received.inc_by(bytes as u64);
        }
    }

    /// Tell the client `event` (after anything still awaited from the broker).
    fn answer(&mut self, event: &Event<'_>) {
        if let Some(item) = self.me.wire.encode(event) {
            self.answer_item(item);
        }
    }

    fn answer_item(&mut self, item: Item) {
        if self.pending.has_answers() {
            self.pending.push_ready(item);
        } else {
            self.me.outbox.queue_own(item);
        }
    }

    /// Who this connection is in presence.
    fn presence_member(&self) -> PresenceMember {
        PresenceMember {
            user: self.me.user.clone(),
            nick: self.nick.clone(),
            conns: 1,
        }
    }

    /// Take a new nickname everywhere: messages, rooms, scripts.
    fn set_nick(&mut self, nick: &str) {
        self.conn.rename(nick);
        self.nick = nick.into();
        for j in &self.rooms {
            j.room.set_nick(self.me.id, self.nick.clone());
        }
    }
}

/// A native handler's answer, as the actions a script would have recorded.
fn native_actions(native: Native, p: &Payload) -> Vec<Action> {
    let reply = match (native, p) {
        (Native::Shout, Payload::Text(t)) => {
            let mut s = t.to_uppercase();
            s.push_str("!!!");
            Payload::Text(s.into())
        }
        _ => p.clone(),
    };
    vec![Action::Reply(reply)]
}

/// The `transport` label of a connection on `wire`.
fn transport(wire: Wire) -> crate::metrics::Transport {
    match wire {
        Wire::Raw | Wire::V1 => crate::metrics::Transport::WebSocket,
        Wire::SocketIo => crate::metrics::Transport::SocketIo,
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.leave();
        self.me.outbox.finish();
        self.state.metrics.connections.dec();
        let t = transport(self.me.wire);
        self.state.metrics.transport(t).dec();
        self.state.metrics.connections_closed.inc();
    }
}
