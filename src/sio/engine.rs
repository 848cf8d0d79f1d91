//! What engine.io hands over: connections opening and closing, their
//! messages; the socket.io layer on top: namespaces (a session each),
//! events, acks and binary attachments.
//!
//! A namespace is a route (`/` the default route), and each namespace a
//! client connects is one session of the core, in the route's room (or the
//! room its connect asks for). socket.io-client 1.x-2.x (Engine.IO 3) is
//! always in `/`, as with a socket.io 2 server; 3.x-4.x clients are in the
//! namespaces they connect. Events reach the session in the order they came.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use bytes::Bytes;
use serde_json::{json, Value};

use super::driver;
use super::eio::{self, Protocol, Reason, Socket, Transport};
use super::packet::{self, Packet};
use crate::admission;
use crate::metrics::SocketIoError;
use crate::names::valid_name;
use crate::outbox::Outbox;
use crate::session::Session;
use crate::state::State;
use crate::wire::socketio::packet as kind;
use crate::wire::v1::{self, BadCommand};
use crate::wire::{CommandId, Wire};

/// An engine.io connection, with our state in it.
pub(super) type EioSocket = Socket<Conn>;

/// What a packet's text may have beyond the message-size limit: its type,
/// namespace, ack id and event name.
const PACKET_SLACK: usize = 256;
/// Events held for a session that waits for the broker.
const MAX_HELD: usize = 64;
/// Names of the room commands (roomcast.v1's, as events with a callback).
const COMMANDS: [&str; 6] = ["join", "leave", "publish", "presence", "history", "nick"];

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
    namespaces: Vec<Arc<Ns>>,
    /// Namespaces whose connect waits for the broker (a cluster numbers new
    /// connections asynchronously): taken, so a second connect is refused.
    connecting: Vec<String>,
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

/// One connected namespace: a session.
pub(super) struct Ns {
    pub(super) name: String,
    pub(super) session: Mutex<Session>,
    pub(super) outbox: Outbox,
    /// The client left the namespace (no DISCONNECT is sent back).
    pub(super) client_left: std::sync::atomic::AtomicBool,
    /// Events that came while the session waited for the broker.
    held: Mutex<VecDeque<Packet>>,
}

impl Ns {
    pub(super) fn session(&self) -> MutexGuard<'_, Session> {
        self.session.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Hand the session what was held for it, now that it can take it.
    pub(super) fn release_held(&self) {
        loop {
            if !self.session().ready() {
                return;
            }
            let next = self
                .held
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .pop_front();
            let Some(p) = next else { return };
            deliver(self, p);
        }
    }
}

impl Conn {
    fn lock(&self) -> MutexGuard<'_, ConnState> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Take namespace `name` for a connect: false if it is connected or
    /// connecting already (checked and taken under one lock, so a burst of
    /// connects opens one session whatever the broker's latency).
    fn claim(&self, name: &str) -> bool {
        let mut st = self.lock();
        if st.namespaces.iter().any(|n| n.name == name) || st.connecting.iter().any(|n| n == name) {
            return false;
        }
        st.connecting.push(name.to_string());
        true
    }

    /// A connect of `name` was refused.
    fn unclaim(&self, name: &str) {
        self.lock().connecting.retain(|n| n != name);
    }

    /// A claimed namespace is open.
    fn opened(&self, ns: Arc<Ns>) {
        let mut st = self.lock();
        st.connecting.retain(|n| *n != ns.name);
        st.namespaces.push(ns);
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
        // socket.io-client 1.x-2.x (socket.io protocol 4, over Engine.IO 3).
        let sio2 = socket.protocol == Protocol::V3;
        let refuse = |message: &str, status: u16| {
            state.metrics.socketio_error(SocketIoError::ConnectRefused);
            let packet = if sio2 {
                namespaced(kind::CONNECT_ERROR, ns, &Value::from(message).to_string())
            } else {
                namespaced(
                    kind::CONNECT_ERROR,
                    ns,
                    &json!({"message": message, "data": {"status": status}}).to_string(),
                )
            };
            emit(socket, packet);
            if sio2 && ns == "/" {
                // Engine.IO 3 clients live in `/`: without it, nothing is left.
                socket.close(Reason::Server);
            }
        };
        if !socket.data.claim(ns) {
            return refuse("already connected to this namespace", 400);
        }
        let refuse = |message: &str, status: u16| {
            socket.data.unclaim(ns);
            refuse(message, status)
        };
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
        let seq = state.broker.next_seq(&admitted.route.name);
        let (state, socket, ns) = (state.clone(), socket.clone(), ns.to_string());
        let open = move |seq: Result<u64, crate::broker::BrokerError>| {
            let seq = match seq {
                Ok(seq) => seq,
                Err(e) => {
                    socket.data.unclaim(&ns);
                    tracing::warn!("cannot number a new connection: {e}");
                    let packet = namespaced(
                        kind::CONNECT_ERROR,
                        &ns,
                        &json!({"message": e.to_string()}).to_string(),
                    );
                    emit(&socket, packet);
                    return;
                }
            };
            let session = Session::open(state.clone(), admitted, seq);
            let id = session.id();
            let namespace = Arc::new(Ns {
                name: ns.clone(),
                outbox: session.outbox().clone(),
                session: Mutex::new(session),
                client_left: Default::default(),
                held: Mutex::new(VecDeque::new()),
            });
            socket.data.opened(namespace.clone());
            // The answer goes out before anything the session queued (its
            // room's enter line): the driver that writes those starts after.
            let answer = if sio2 {
                namespaced(kind::CONNECT, &ns, "")
            } else {
                namespaced(
                    kind::CONNECT,
                    &ns,
                    &json!({"sid": id.to_string()}).to_string(),
                )
            };
            emit(&socket, answer);
            state
                .sessions
                .spawn(driver::run(namespace, socket.clone(), state.clone()));
        };
        match seq {
            crate::broker::Reply::Ready(seq) => open(seq),
            crate::broker::Reply::Later(fut) => {
                tokio::spawn(async move { open(fut.await) });
            }
        }
    }

    /// One packet from the client, attachments in place.
    fn packet(&self, state: &Arc<State>, socket: &Arc<EioSocket>, p: Packet, text: &str) {
        match p.kind {
            kind::CONNECT => {
                let query = packet::connect_query(text);
                self.connect(state, socket, &p.ns, p.data.as_ref(), query)
            }
            kind::DISCONNECT => {
                if let Some(ns) = socket.data.namespace(&p.ns) {
                    ns.client_left
                        .store(true, std::sync::atomic::Ordering::Release);
                    ns.outbox.close(
                        crate::close::NORMAL,
                        "client left the namespace",
                        crate::outbox::CloseMode::Now,
                    );
                }
            }
            kind::EVENT | kind::BINARY_EVENT => match socket.data.namespace(&p.ns) {
                Some(ns) if !ns.session().ready() => {
                    let mut held = ns.held.lock().unwrap_or_else(|e| e.into_inner());
                    if held.len() < MAX_HELD {
                        held.push_back(p);
                    } else if ns.session().throttled() {
                        // Over the rate on a transport we cannot stop
                        // reading (long-polling): refuse, and say so.
                        drop(held);
                        ns.session().refuse_over_rate(p.id.map(Value::from));
                        ns.outbox.wake();
                    } else {
                        drop(held);
                        ns.outbox.slow_consumer();
                    }
                }
                Some(ns) => {
                    deliver(&ns, p);
                    if ns.session().throttled() && socket.transport() == Transport::WebSocket {
                        // Read nothing more until the rate limit lets the
                        // held message through (polling cannot stop reading).
                        socket.pause();
                    }
                }
                None => {
                    state.metrics.socketio_error(SocketIoError::BadPacket);
                    tracing::debug!(sid = eio::sid_str(&socket.id), ns = %p.ns, "event for a namespace not connected");
                }
            },
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

/// An event for a session: `message`, a room command, or anything else.
fn deliver(ns: &Ns, p: Packet) {
    let id: CommandId = p.id.map(Value::from);
    let mut args = match p.data {
        Some(Value::Array(items)) if !items.is_empty() => items,
        _ => {
            let mut session = ns.session();
            let bad = BadCommand {
                id,
                code: "bad_command",
                reason: "an event is [name, ...args]".into(),
            };
            session.on_command(0, Err(bad));
            ns.outbox.wake();
            return;
        }
    };
    let name = match args.remove(0) {
        Value::String(s) => s,
        _ => {
            let bad = BadCommand {
                id,
                code: "bad_command",
                reason: "an event's name is a string".into(),
            };
            ns.session().on_command(0, Err(bad));
            ns.outbox.wake();
            return;
        }
    };
    let mut session = ns.session();
    match name.as_str() {
        "message" => match args.into_iter().next() {
            Some(Value::String(text)) => session.on_text(text, id),
            Some(other) => session.on_text(other.to_string(), id),
            None => session.on_text(String::new(), id),
        },
        command if COMMANDS.contains(&command) => {
            let text = command_json(command, &args, &id);
            session.on_command(text.len(), v1::parse(&text));
        }
        _ => session.on_event(&name, args, id),
    }
    drop(session);
    ns.outbox.wake();
}

/// A room command's arguments as its roomcast.v1 command: `(room)`,
/// `(room, data)` for publish, `(nick)` for nick, or one object with the
/// command's fields.
fn command_json(name: &str, args: &[Value], id: &CommandId) -> String {
    let mut cmd = match (name, args) {
        (_, [Value::Object(fields)]) => Value::Object(fields.clone()),
        ("nick", []) => json!({}),
        ("nick", [nick]) => json!({"nick": nick}),
        ("publish", [room, data]) => json!({"room": room, "data": data}),
        (_, [room]) => json!({"room": room}),
        _ => json!({"room": null}),
    };
    if let Value::Object(map) = &mut cmd {
        map.insert("type".into(), Value::from(name));
        if let Some(id) = id {
            map.insert("id".into(), id.clone());
        }
    }
    cmd.to_string()
}

/// `<type>[<ns>,]<rest>` (the namespace only when not `/`).
fn namespaced(kind: u8, ns: &str, rest: &str) -> String {
    let mut s = String::with_capacity(2 + ns.len() + rest.len());
    s.push(kind as char);
    if ns != "/" {
        s.push_str(ns);
        if !rest.is_empty() {
            s.push(',');
        }
    }
    s.push_str(rest);
    s
}

/// Queue a packet of the socket.io protocol itself (a connect's answer,
/// a refusal, a goodbye).
pub(super) fn emit(socket: &EioSocket, packet: String) {
    socket.send_control(eio::Packet::Message(Bytes::from(packet)));
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
        self.packet(&state, &socket, p, msg);
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
            ..
        } = *partial;
        // `emit('message', buffer)`: the bytes go to the session as they are.
        let binary_message = packet.data.as_ref().is_some_and(|d| {
            d.get(0).and_then(Value::as_str) == Some("message")
                && d.get(1).and_then(packet::placeholder) == Some(0)
                && d.as_array().is_some_and(|a| a.len() == 2)
        });
        if binary_message && packet.kind == kind::BINARY_EVENT {
            match socket.data.namespace(&packet.ns) {
                Some(ns) => {
                    let id = packet.id.map(Value::from);
                    ns.session().on_binary(attachments[0].to_vec(), id);
                    ns.outbox.wake();
                }
                None => state.metrics.socketio_error(SocketIoError::BadPacket),
            }
            return;
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
        self.packet(&state, &socket, packet, "");
    }
}
