//! What engine.io hands over: connections opening and closing, their
//! messages; the socket.io layer on top: namespaces (a session each),
//! events, acks and binary attachments.
//!
//! A namespace is a route (`/` the default route), and each namespace a
//! client connects is one session of the core, in the route's room (or the
//! room its connect asks for). socket.io-client 1.x-2.x (Engine.IO 3) is
//! always in `/`, as with a socket.io 2 server; 3.x-4.x clients are in the
//! namespaces they connect. Events reach the session in the order they came.

use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use bytes::Bytes;
use serde_json::Value;

use super::driver;
use super::eio::{self, Protocol, Reason};
use super::namespace::{self, In, Ns, PAUSE_AT};
use super::recovery;
use super::EioSocket;
use crate::admission;
use crate::metrics::SocketIoError;
use crate::names::valid_name;
use crate::session::Session;
use crate::state::State;
use crate::wire::socketio::packet as kind;
use crate::wire::socketio::parse::{self as packet, Packet};
use crate::wire::Wire;

/// What a packet's text may have beyond the message-size limit: its type,
/// namespace, ack id and event name.
const PACKET_SLACK: usize = 256;

/// What engine.io hands over goes here.
pub(super) struct Handler {
    state: Weak<State>,
}

/// Our state on one engine.io connection.
#[derive(Default)]
pub(super) struct Conn {
    inner: Mutex<ConnState>,
}

#[derive(Default)]
struct ConnState {
    /// Its namespaces, each from its connect on (while its session opens
    /// too: a cluster numbers new connections asynchronously).
    namespaces: Vec<Arc<Ns>>,
    /// A binary packet waiting for its attachments.
    partial: Option<Box<Partial>>,
    /// Counts partials, so a timeout knows whether its one is still waiting.
    partials: u64,
}

struct Partial {
    packet: Packet,
    attachments: Vec<Bytes>,
    /// Bytes of the packet so far (its text and attachments), held to the
    /// message-size limit like a message.
    size: usize,
}

impl Conn {
    fn lock(&self) -> MutexGuard<'_, ConnState> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Add `ns` unless one of its name is there already (checked and
    /// added under one lock, so a burst of connects opens one session
    /// whatever the broker's latency).
    fn add(&self, ns: &Arc<Ns>) -> bool {
        let mut st = self.lock();
        if st.namespaces.iter().any(|n| n.name == ns.name) {
            return false;
        }
        st.namespaces.push(ns.clone());
        true
    }

    fn namespace(&self, name: &str) -> Option<Arc<Ns>> {
        self.lock()
            .namespaces
            .iter()
            .find(|n| n.name == name)
            .cloned()
    }

    /// A namespace's session ended: forget it. True when none is left.
    pub(super) fn remove(&self, ns: &Arc<Ns>) -> bool {
        let mut st = self.lock();
        st.namespaces.retain(|n| !Arc::ptr_eq(n, ns));
        st.namespaces.is_empty()
    }

    /// Sessions on this connection.
    pub(super) fn namespaces(&self) -> Vec<Arc<Ns>> {
        self.lock().namespaces.clone()
    }
}

impl Handler {
    pub(super) fn new(state: Weak<State>) -> Handler {
        Handler { state }
    }

    /// A namespace connect: admission, then the session, then the answer.
    fn connect(
        &self,
        state: &Arc<State>,
        socket: &Arc<EioSocket>,
        ns: &str,
        auth: Option<&Value>,
        query: Option<&str>,
    ) {
        let refuse = |message: &str, status: u16| {
            state.metrics.socketio_error(SocketIoError::ConnectRefused);
            namespace::refuse(socket, ns, message, status);
        };
        if socket.data.namespace(ns).is_some() {
            return refuse("already connected to this namespace", 400);
        }
        let route = if ns == "/" {
            Some(state.default_route().clone())
        } else {
            state.route(&ns[1..]).cloned()
        };
        let Some(route) = route else {
            return refuse("Invalid namespace", 404);
        };
        let handshake_uri = socket.handshake.uri();
        // The room: the connect's `room` (auth payload, or a query), else
        // the route's default room.
        let param = |name: &str| {
            auth.and_then(|a| a.get(name))
                .and_then(Value::as_str)
                .map(str::to_string)
                .or_else(|| query.and_then(|q| crate::auth::query_param(q, name)))
                .or_else(|| {
                    handshake_uri
                        .query()
                        .and_then(|q| crate::auth::query_param(q, name))
                })
        };
        let room = param("room").unwrap_or_else(|| route.default_room.clone());
        if !valid_name(&room) {
            return refuse("a room is 1-64 of A-Z a-z 0-9 . _ -", 400);
        }
        let token = auth
            .and_then(|a| a.get("token"))
            .and_then(Value::as_str)
            .map(str::to_string);
        let headers = socket.handshake.headers();
        let request = admission::Request {
            uri: &handshake_uri,
            headers: &headers,
            peer: socket.handshake.peer,
            token: token.as_deref(),
        };
        let admitted = match admission::admit(state, request, route, &room, Wire::SocketIo) {
            Ok(a) => a,
            Err(r) => return refuse(&r.message, r.status),
        };
        let namespace = Arc::new(Ns::new(ns, Session::new_outbox(state)));
        if !socket.data.add(&namespace) {
            return refuse("already connected to this namespace", 400);
        }
        // socket.io-client 4.6+ recovers its state (3.x and older 4.x
        // clients ignore the pid they are given; 1.x-2.x have no recovery).
        let recovery = (socket.protocol == Protocol::V4
            && !state.config.socketio.recovery.is_zero())
        .then(|| driver::Recoverable {
            ask: recovery::Ask::from_auth(auth),
        });
        // Its events from now on wait in its queue for the session, which
        // the driver opens (after the broker numbers it) and then serves.
        state.sessions.spawn(driver::run(
            namespace,
            socket.clone(),
            state.clone(),
            admitted,
            recovery,
        ));
    }

    /// Queue `input` (`size` bytes as sent) for namespace `ns`'s session;
    /// past a few waiting, the connection is read no further until the
    /// session has caught up (the driver resumes it).
    fn input(&self, state: &State, socket: &Arc<EioSocket>, ns: &str, input: In, size: usize) {
        let Some(namespace) = socket.data.namespace(ns) else {
            state.metrics.socketio_error(SocketIoError::BadPacket);
            tracing::debug!(
                sid = eio::sid_str(&socket.id),
                ns,
                "event for a namespace not connected"
            );
            return;
        };
        match namespace.push(input, size) {
            Some(waiting) if waiting > PAUSE_AT => socket.pause(),
            Some(_) => {}
            None => {
                // Several POSTs at once, each waiting: a flood.
                state.metrics.rate_limit_closes.inc();
                tracing::debug!(
                    sid = eio::sid_str(&socket.id),
                    "socket.io input past its bound: closing"
                );
                close_all(
                    socket,
                    crate::close::POLICY_VIOLATION,
                    "rate limit exceeded",
                );
            }
        }
    }

    /// One packet from the client (`size` bytes as sent), attachments in place.
    fn packet(
        &self,
        state: &Arc<State>,
        socket: &Arc<EioSocket>,
        p: Packet,
        text: &str,
        size: usize,
    ) {
        match p.kind {
            kind::CONNECT => {
                let query = packet::connect_query(text);
                self.connect(state, socket, &p.ns, p.data.as_ref(), query)
            }
            kind::DISCONNECT => {
                if let Some(ns) = socket.data.namespace(&p.ns) {
                    ns.left();
                }
            }
            kind::EVENT | kind::BINARY_EVENT => {
                let ns = p.ns.clone();
                self.input(state, socket, &ns, In::Event(p), size);
            }
            // Answers to acks we never ask for: nothing to do.
            kind::ACK | kind::BINARY_ACK => {}
            _ => self.bad_packet(state, socket, "a client may not send this packet"),
        }
    }

    fn too_large(&self, state: &State, socket: &Arc<EioSocket>) {
        state.metrics.socketio_error(SocketIoError::TooLarge);
        tracing::debug!(
            sid = eio::sid_str(&socket.id),
            "socket.io message over limits.max_message_size"
        );
        close_all(socket, crate::close::MESSAGE_TOO_BIG, "message too large");
    }

    fn bad_packet(&self, state: &State, socket: &Arc<EioSocket>, why: &str) {
        state.metrics.socketio_error(SocketIoError::BadPacket);
        tracing::debug!(
            sid = eio::sid_str(&socket.id),
            "bad socket.io packet: {why}"
        );
        close_all(socket, crate::close::PROTOCOL_ERROR, why);
    }
}

/// End every session on a connection (each sends its DISCONNECT), and the connection.
pub(super) fn close_all(socket: &Arc<EioSocket>, code: u16, reason: &str) {
    let namespaces = socket.data.namespaces();
    if namespaces.is_empty() {
        socket.close(Reason::Server);
    }
    for ns in namespaces {
        ns.outbox
            .close(code, reason, crate::outbox::CloseMode::AfterQueued);
    }
}

impl eio::Handler for Handler {
    type Data = Conn;

    fn on_open(&self, socket: &Arc<EioSocket>) {
        let Some(state) = self.state.upgrade() else {
            socket.close(Reason::Server);
            return;
        };
        // Engine.IO 3: the client is in `/` from its first use.
        if socket.protocol == Protocol::V3 {
            self.connect(&state, socket, "/", None, None);
        }
    }

    fn on_close(&self, socket: &Arc<EioSocket>, reason: Reason) {
        if let Some(state) = self.state.upgrade() {
            let m = &state.metrics;
            match reason {
                Reason::HeartbeatTimeout => m.heartbeat_timeouts.inc(),
                Reason::ConcurrentPolls => m.socketio_error(SocketIoError::ConcurrentPolls),
                _ => {}
            }
        }
        tracing::debug!(
            sid = eio::sid_str(&socket.id),
            ?reason,
            "socket.io connection closed"
        );
        // Each namespace's driver sees the connection gone and ends its session.
        for ns in socket.data.namespaces() {
            ns.outbox.close(
                crate::close::GOING_AWAY,
                "connection closed",
                crate::outbox::CloseMode::Now,
            );
        }
    }

    fn on_message(&self, socket: &Arc<EioSocket>, msg: &str) {
        let Some(state) = self.state.upgrade() else {
            return;
        };
        let socket = socket.clone();
        if socket.data.lock().partial.is_some() {
            return self.bad_packet(&state, &socket, "text while attachments were awaited");
        }
        if msg.len() > state.config.limits.max_message_size + PACKET_SLACK {
            return self.too_large(&state, &socket);
        }
        let p = match packet::parse(msg) {
            Ok(p) => p,
            Err(why) => return self.bad_packet(&state, &socket, why),
        };
        if p.attachments > 0 {
            let generation = {
                let mut st = socket.data.lock();
                st.partials += 1;
                st.partial = Some(Box::new(Partial {
                    packet: p,
                    attachments: Vec::new(),
                    size: msg.len(),
                }));
                st.partials
            };
            // Attachments that never come: the connection is closed, counted.
            // They follow at once, or the client is gone: it has as long as a
            // ping's answer may take.
            let wait = state
                .config
                .heartbeat
                .timeout
                .max(Duration::from_millis(100));
            let (weak, state_ref) = (Arc::downgrade(&socket), self.state.clone());
            tokio::spawn(async move {
                tokio::time::sleep(wait).await;
                let Some(socket) = weak.upgrade() else { return };
                let stuck = {
                    let st = socket.data.lock();
                    st.partial.is_some() && st.partials == generation
                };
                if stuck {
                    if let Some(state) = state_ref.upgrade() {
                        state
                            .metrics
                            .socketio_error(SocketIoError::AttachmentsTimeout);
                    }
                    close_all(
                        &socket,
                        crate::close::PROTOCOL_ERROR,
                        "binary attachments never came",
                    );
                }
            });
            return;
        }
        self.packet(&state, &socket, p, msg, msg.len());
    }

    fn on_binary(&self, socket: &Arc<EioSocket>, data: Bytes) {
        let Some(state) = self.state.upgrade() else {
            return;
        };
        let socket = socket.clone();
        let limit = state.config.limits.max_message_size;
        if data.len() > limit {
            return self.too_large(&state, &socket);
        }
        let complete = {
            let mut st = socket.data.lock();
            let Some(partial) = st.partial.as_mut() else {
                drop(st);
                return self.bad_packet(&state, &socket, "an attachment nobody announced");
            };
            partial.size += data.len();
            if partial.size > limit + PACKET_SLACK {
                drop(st);
                return self.too_large(&state, &socket);
            }
            partial.attachments.push(data);
            if partial.attachments.len() < partial.packet.attachments {
                return;
            }
            st.partial.take()
        };
        let Some(partial) = complete else {
            return;
        };
        let Partial {
            mut packet,
            attachments,
            size,
        } = *partial;
        // `emit('message', buffer)`: the bytes go to the session as they are.
        let binary_message = packet.data.as_ref().is_some_and(|d| {
            d.get(0).and_then(Value::as_str) == Some("message")
                && d.get(1).and_then(packet::placeholder) == Some(0)
                && d.as_array().is_some_and(|a| a.len() == 2)
        });
        if binary_message && packet.kind == kind::BINARY_EVENT {
            let id = packet.id.map(Value::from);
            let input = In::Binary(attachments[0].to_vec(), id);
            return self.input(&state, &socket, &packet.ns, input, size);
        }
        if let Some(data) = packet.data.as_mut() {
            // Filled in, the packet is held to the limit too: see `fill`.
            match packet::fill(data, &attachments, limit) {
                Ok(()) => {}
                Err(packet::FillError::TooLarge) => return self.too_large(&state, &socket),
                Err(packet::FillError::Missing) => {
                    return self.bad_packet(&state, &socket, "a placeholder without its attachment")
                }
            }
        }
        self.packet(&state, &socket, packet, "", size);
    }
}
