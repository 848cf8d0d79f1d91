//! Engine.IO, protocols 3 and 4: the transport under socket.io. Long-polling
//! (a handshake, then GETs that wait for packets and POSTs that carry the
//! client's), the upgrade to a WebSocket (a probe, then `5`), and the
//! WebSocket transport (our own frame decoder: the same limits as every
//! WebSocket), with heartbeats for both.
//!
//! - this file: the [`Engine`] — its connections by session id, each
//!   request answered, handshakes not used yet (counted in
//!   `roomcast_socketio_pending_handshakes`, at most
//!   `socketio.max_pending_handshakes`, each closed if nothing follows it
//!   within `limits.handshake_timeout`), and one heartbeat task for all
//!   connections (no task or timer per connection);
//! - `socket`: one connection, its queue and its bounds;
//! - `handshake`: the handshake request a connection keeps, in one
//!   allocation of its own;
//! - `polling`: the handshake, polls and POSTs;
//! - `payload`: packets and polling payloads;
//! - `ws`: the WebSocket transport.
//!
//! A handshake costs one small [`Socket`] until it is used (its first poll,
//! POST or upgrade); only then does the socket.io layer hear of it
//! ([`Handler::on_open`]), so a flood of handshakes never polled opens no
//! session and joins no room.

mod handshake;
mod payload;
mod polling;
mod socket;
mod ws;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use bytes::Bytes;
use dashmap::DashMap;
use http_body_util::Full;
use hyper::header::{HeaderValue, CONTENT_TYPE, SEC_WEBSOCKET_EXTENSIONS};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::json;

use crate::admission::PeerAddr;
use crate::deflate::{Deflate, Negotiated};
use crate::metrics::{Metrics, SocketIoError, Transport as MetricsTransport};

pub(crate) use handshake::Handshake;
pub(crate) use payload::{Packet, Protocol, Text};
pub(crate) use socket::{sid_str, Reason, SendError, Sid, Socket, Transport};

/// What the layer above (socket.io) is told.
pub(crate) trait Handler: Send + Sync + 'static {
    /// Its state on each connection.
    type Data: Default + Send + Sync + 'static;
    /// A connection is used for the first time (after its handshake: its
    /// first poll, POST or upgrade; a direct WebSocket at once in protocol
    /// 3, at its first packet in 4).
    fn on_open(&self, socket: &Arc<Socket<Self::Data>>);
    /// A text message (a socket.io packet).
    fn on_message(&self, socket: &Arc<Socket<Self::Data>>, text: &str);
    /// Binary data (a socket.io attachment).
    fn on_binary(&self, socket: &Arc<Socket<Self::Data>>, data: Bytes);
    /// The connection is closed (called once, for a connection that was opened).
    fn on_close(&self, socket: &Arc<Socket<Self::Data>>, reason: Reason);
}

/// How the engine behaves.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) ping_interval: Duration,
    pub(crate) ping_timeout: Duration,
    /// Most bytes of one POST body, and of one poll's answer.
    pub(crate) max_payload: usize,
    /// Most bytes of one WebSocket message, and of one frame.
    pub(crate) max_message: usize,
    pub(crate) max_frame: usize,
    /// Most packets, and bytes, waiting for one client.
    pub(crate) queue: usize,
    pub(crate) queue_bytes: usize,
    /// Handshakes not used yet: at most this many (the oldest go), each
    /// for at most `unused_after`.
    pub(crate) max_pending: usize,
    pub(crate) unused_after: Duration,
    /// How long a WebSocket may take from its upgrade to its `5`.
    pub(crate) upgrade_timeout: Duration,
    /// How long a closed polling connection waits for its client's next
    /// poll to take what was queued (a goodbye) and the close packet.
    pub(crate) linger: Duration,
    /// permessage-deflate on the WebSocket transport (`compression.enabled`).
    pub(crate) deflate: Option<Arc<Deflate>>,
}

/// The Engine.IO server of one endpoint.
pub(crate) struct Engine<H: Handler> {
    config: Config,
    pub(crate) handler: H,
    metrics: Metrics,
    sockets: DashMap<Sid, Arc<Socket<H::Data>>>,
    /// Handshakes in the order they came (some used since: skipped).
    pending: Mutex<VecDeque<Sid>>,
    heartbeat: AtomicBool,
}

/// The engine.io error body: `{"code": N, "message": "..."}`.
pub(crate) fn error(status: StatusCode, code: u8, message: &str) -> Response<Full<Bytes>> {
    let body = json!({"code": code, "message": message}).to_string();
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

/// The query parameters engine.io reads.
#[derive(Default)]
struct Query<'a> {
    eio: Option<&'a str>,
    transport: Option<&'a str>,
    sid: Option<&'a str>,
    b64: bool,
}

fn query(q: &str) -> Query<'_> {
    let mut out = Query::default();
    for pair in q.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match k {
            "EIO" => out.eio = Some(v),
            "transport" => out.transport = Some(v),
            "sid" => out.sid = Some(v),
            "b64" => out.b64 = !v.is_empty() && v != "0" && v != "false",
            _ => {}
        }
    }
    out
}

/// A new session id: 12 random bytes as 16 URL-safe base64 characters.
fn new_sid() -> Sid {
    use base64::Engine as _;
    let mut raw = [0u8; 12];
    getrandom::fill(&mut raw).expect("the OS has randomness");
    let mut sid = [0u8; 16];
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode_slice(raw, &mut sid)
        .expect("16 characters");
    sid
}

impl<H: Handler> Engine<H> {
    pub(crate) fn new(config: Config, handler: H, metrics: Metrics) -> Engine<H> {
        Engine {
            config,
            handler,
            metrics,
            sockets: DashMap::new(),
            pending: Mutex::new(VecDeque::new()),
            heartbeat: AtomicBool::new(false),
        }
    }

    /// Every connection open now.
    pub(crate) fn sockets(&self) -> Vec<Arc<Socket<H::Data>>> {
        self.sockets.iter().map(|s| s.value().clone()).collect()
    }

    /// Session `sid`, if it is open, or closed and lingering for its last poll.
    fn get(&self, sid: &str) -> Option<Arc<Socket<H::Data>>> {
        let key: Sid = sid.as_bytes().try_into().ok()?;
        Some(self.sockets.get(&key)?.value().clone())
    }

    /// Close `socket` for `reason` (its waiting poll gets a close packet,
    /// its WebSocket a Close frame) and forget it — once a polling client
    /// with nothing waiting has polled what was queued for it, or after
    /// `linger`.
    pub(crate) fn close(&self, socket: &Arc<Socket<H::Data>>, reason: Reason) {
        socket.mark_closed(reason);
        if !socket.lingers(self.config.linger) {
            self.finish(socket, reason);
        }
    }

    /// Forget a closed socket, once: out of the table (and of the pending
    /// count), and the layer above told.
    fn finish(&self, socket: &Arc<Socket<H::Data>>, reason: Reason) {
        let removed = self
            .sockets
            .remove_if(&socket.id, |_, s| Arc::ptr_eq(s, socket))
            .is_some();
        if !removed {
            return;
        }
        if socket.use_it() {
            self.metrics.socketio_pending.dec();
            let kind = match reason {
                Reason::Evicted => Some(SocketIoError::HandshakeEvicted),
                Reason::Unused => Some(SocketIoError::HandshakeExpired),
                _ => None,
            };
            if let Some(kind) = kind {
                self.metrics.socketio_error(kind);
            }
            tracing::debug!(
                sid = socket::sid_str(&socket.id),
                ?reason,
                "handshake never used: closed"
            );
            return;
        }
        self.handler.on_close(socket, reason);
    }

    /// The first use of a socket: the layer above hears of it.
    fn opened(&self, socket: &Arc<Socket<H::Data>>) {
        if socket.use_it() {
            self.metrics.socketio_pending.dec();
            self.handler.on_open(socket);
        }
    }

    /// Answer one request at the endpoint (CORS and Origin are checked by
    /// the caller).
    pub(crate) async fn handle<B>(self: &Arc<Self>, mut req: Request<B>) -> Response<Full<Bytes>>
    where
        B: hyper::body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        self.start_heartbeat();
        let raw_query = req.uri().query().unwrap_or("").to_string();
        let q = query(&raw_query);
        let protocol = match q.eio {
            Some("3") => Protocol::V3,
            Some("4") => Protocol::V4,
            _ => return error(StatusCode::BAD_REQUEST, 5, "Unsupported protocol version"),
        };
        let websocket = match q.transport {
            Some("polling") => false,
            Some("websocket") => true,
            _ => return error(StatusCode::BAD_REQUEST, 0, "Transport unknown"),
        };
        let Some(sid) = q.sid else {
            if req.method() != Method::GET {
                return error(StatusCode::BAD_REQUEST, 2, "Bad handshake method");
            }
            return if websocket {
                self.websocket(protocol, &mut req)
            } else {
                self.handshake(protocol, &req, !q.b64)
            };
        };
        let poll = !websocket && req.method() == Method::GET;
        let Some(socket) = self.get(sid).filter(|s| poll || !s.is_closed()) else {
            self.metrics.socketio_error(SocketIoError::UnknownSession);
            return error(StatusCode::BAD_REQUEST, 1, "Session ID unknown");
        };
        if socket.protocol != protocol {
            return error(StatusCode::BAD_REQUEST, 3, "Bad request");
        }
        match (websocket, req.method()) {
            (true, &Method::GET) => self.upgrade(socket, &mut req),
            (false, &Method::GET) => {
                self.opened(&socket);
                self.poll(socket).await
            }
            (false, &Method::POST) => {
                self.opened(&socket);
                self.post(socket, req).await
            }
            _ => error(StatusCode::BAD_REQUEST, 2, "Bad request method"),
        }
    }

    /// The open packet, its fields in engine.io's order.
    fn open_packet(&self, sid: &Sid, protocol: Protocol, upgrade: bool) -> String {
        let upgrades = if upgrade { r#"["websocket"]"# } else { "[]" };
        let mut open = format!(
            r#"0{{"sid":"{}","upgrades":{upgrades},"pingInterval":{},"pingTimeout":{}"#,
            socket::sid_str(sid),
            self.config.ping_interval.as_millis(),
            self.config.ping_timeout.as_millis(),
        );
        if protocol == Protocol::V4 {
            open.push_str(&format!(r#","maxPayload":{}"#, self.config.max_payload));
        }
        open.push('}');
        open
    }

    /// A new socket, in the table and counted as pending; the oldest
    /// pending handshakes go if there are too many.
    fn create<B>(
        &self,
        protocol: Protocol,
        transport: Transport,
        binary: bool,
        req: &Request<B>,
    ) -> Arc<Socket<H::Data>> {
        let handshake = Handshake::new(
            req.uri(),
            req.headers(),
            req.extensions().get::<PeerAddr>().map(|p| p.0),
        );
        let sid = new_sid();
        let socket = Arc::new(Socket::new(
            sid,
            protocol,
            transport,
            binary,
            handshake,
            H::Data::default(),
            (
                self.config.ping_interval,
                self.config.queue,
                self.config.queue_bytes,
            ),
        ));
        self.sockets.insert(sid, socket.clone());
        self.metrics.socketio_pending.inc();
        let evict = {
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            pending.push_back(sid);
            let mut over = (self.metrics.socketio_pending.get().max(0) as usize)
                .saturating_sub(self.config.max_pending);
            let mut evict = Vec::new();
            while let Some(front) = pending.front().copied() {
                let live = self
                    .sockets
                    .get(&front)
                    .map(|e| e.value().clone())
                    .filter(|s| s.is_pending());
                match live {
                    // Used or gone since: not pending any more.
                    None => {}
                    Some(s) if over > 0 => {
                        evict.push(s);
                        over -= 1;
                    }
                    Some(_) => break,
                }
                pending.pop_front();
            }
            evict
        };
        for oldest in evict {
            self.close(&oldest, Reason::Evicted);
        }
        socket
    }

    /// One packet from the client, on either transport.
    fn incoming(&self, socket: &Arc<Socket<H::Data>>, p: payload::Incoming<'_>) {
        use payload::Incoming;
        match p {
            Incoming::Message(text) => self.handler.on_message(socket, text),
            Incoming::Binary(data) => self.handler.on_binary(socket, data),
            Incoming::Ping { probe: false } | Incoming::Pong => {
                socket.heard(self.config.ping_interval);
                if socket.protocol == Protocol::V3 && matches!(p, Incoming::Ping { .. }) {
                    socket.send_control(Packet::Pong);
                }
            }
            // A probe outside an upgrade, an upgrade over polling, a noop: nothing to do.
            Incoming::Ping { probe: true } | Incoming::Upgrade | Incoming::Noop => {}
            Incoming::Close => self.close(socket, Reason::ClientClose),
        }
    }

    /// A WebSocket for a polling session: probed, then it takes over.
    fn upgrade<B>(
        self: &Arc<Self>,
        socket: Arc<Socket<H::Data>>,
        req: &mut Request<B>,
    ) -> Response<Full<Bytes>> {
        if socket.transport() != Transport::Polling {
            return error(StatusCode::BAD_REQUEST, 3, "Bad request");
        }
        let (resp, upgrade) = match fastwebsockets::upgrade::upgrade(&mut *req) {
            Ok(ok) => ok,
            Err(_) => return error(StatusCode::BAD_REQUEST, 3, "Bad request"),
        };
        let negotiated = self.negotiate(req);
        let answer = negotiated.as_ref().map(|n| n.answer.clone());
        self.opened(&socket);
        tokio::spawn(ws::run(self.clone(), socket, upgrade, true, negotiated));
        with_extensions(resp.map(|_| Full::new(Bytes::new())), answer)
    }

    /// permessage-deflate for a WebSocket, if its client offers it in a way
    /// the server takes.
    fn negotiate<B>(&self, req: &Request<B>) -> Option<Negotiated> {
        let deflate = self.config.deflate.as_ref()?;
        deflate.accept(req.headers(), MetricsTransport::SocketIo)
    }

    /// A WebSocket from the start: the open packet is its first message.
    fn websocket<B>(
        self: &Arc<Self>,
        protocol: Protocol,
        req: &mut Request<B>,
    ) -> Response<Full<Bytes>> {
        let (resp, upgrade) = match fastwebsockets::upgrade::upgrade(&mut *req) {
            Ok(ok) => ok,
            Err(_) => return error(StatusCode::BAD_REQUEST, 3, "Bad request"),
        };
        let negotiated = self.negotiate(req);
        let answer = negotiated.as_ref().map(|n| n.answer.clone());
        let socket = self.create(protocol, Transport::WebSocket, true, req);
        tokio::spawn(ws::run(self.clone(), socket, upgrade, false, negotiated));
        with_extensions(resp.map(|_| Full::new(Bytes::new())), answer)
    }

    /// Start the heartbeat task (once, from the first request: a runtime
    /// is running then).
    fn start_heartbeat(self: &Arc<Self>) {
        if self.heartbeat.swap(true, Ordering::AcqRel) {
            return;
        }
        let weak = Arc::downgrade(self);
        let c = &self.config;
        let tick = (c.ping_interval.min(c.ping_timeout).min(c.unused_after) / 4)
            .clamp(Duration::from_millis(10), Duration::from_secs(1));
        tokio::spawn(heartbeat(weak, tick));
    }
}

/// Every `tick`: ping who is due, close who is silent or was never used,
/// forget what closed.
async fn heartbeat<H: Handler>(engine: Weak<Engine<H>>, tick: Duration) {
    let mut every = tokio::time::interval(tick);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let Some(engine) = engine.upgrade() else {
            return;
        };
        let c = &engine.config;
        let mut close = Vec::new();
        for entry in engine.sockets.iter() {
            let s = entry.value();
            if let Some(reason) = s.reason() {
                // Closed (by the layer above, or lingering for a last poll):
                // forgotten here once nothing waits for it.
                if !s.lingers(c.linger) {
                    close.push((s.clone(), reason));
                }
                continue;
            }
            match s.beat(c.ping_interval, c.ping_timeout, c.unused_after) {
                socket::Beat::Fine => {}
                socket::Beat::Pinged => s.wake.notify_one(),
                socket::Beat::Close(reason) => close.push((s.clone(), reason)),
            }
        }
        for (s, reason) in close {
            if s.is_closed() {
                engine.finish(&s, reason);
            } else {
                engine.close(&s, reason);
            }
        }
    }
}

/// A 101 with the extension agreed, if any.
fn with_extensions(
    mut resp: Response<Full<Bytes>>,
    answer: Option<HeaderValue>,
) -> Response<Full<Bytes>> {
    if let Some(v) = answer {
        resp.headers_mut().insert(SEC_WEBSOCKET_EXTENSIONS, v);
    }
    resp
}
