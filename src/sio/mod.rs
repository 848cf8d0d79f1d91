//! The socket.io transport: Engine.IO 3 and 4 (`eio`: polling, WebSocket,
//! upgrades, heartbeats, handshakes that cost little until used) under our
//! socket.io packet layer, each namespace a session of the core on
//! `Wire::SocketIo` (docs/socketio.md).
//!
//! - this file: the HTTP side at `socketio.path` — CORS (an allowed Origin
//!   echoed with credentials, preflights answered), the Origin allow-list,
//!   refusing new connections while draining;
//! - `eio`: Engine.IO;
//! - `engine`: what Engine.IO hands over: namespaces, events, attachments;
//! - `namespace`: one namespace's queue of what its client sent, and the
//!   answers to its connect;
//! - `driver`: a session's outbox to its Engine.IO connection, its timers, its close;
//! - `recovery`: connection state recovery (socket.io-client ≥ 4.6) on history.

mod driver;
mod eio;
mod engine;
mod namespace;
mod recovery;

use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{
    HeaderValue, ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_HEADERS,
    ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_MAX_AGE,
    ACCESS_CONTROL_REQUEST_HEADERS, ORIGIN, VARY,
};
use hyper::{Method, Request, Response, StatusCode};

use crate::admission::origin_allowed;
use crate::metrics::RejectReason;
use crate::state::State;

use engine::Handler;

/// An engine.io connection, with the socket.io layer's state in it.
type EioSocket = eio::Socket<engine::Conn>;

/// What an engine.io WebSocket message may have beyond the message-size
/// limit: its packet type, namespace, ack id and event name.
const MESSAGE_SLACK: usize = 1024;

/// Packets engine.io queues ahead of one client.
const ENGINE_QUEUE: usize = 1024;

/// How long a WebSocket upgrade may take from its 101 to its `5`.
const UPGRADE_TIMEOUT: Duration = Duration::from_secs(10);

/// The socket.io endpoint of one server.
pub(crate) struct SocketIo {
    engine: Arc<eio::Engine<Handler>>,
    path: String,
}

impl SocketIo {
    /// The endpoint for `state`'s server (held weakly: the server owns this).
    pub(crate) fn new(state: &Arc<State>) -> SocketIo {
        let config = &state.config;
        let limits = &config.limits;
        // Engine.IO needs heartbeats; with ours off, its defaults.
        let (interval, timeout) = if config.heartbeat.interval.is_zero() {
            (Duration::from_secs(25), Duration::from_secs(20))
        } else {
            (config.heartbeat.interval, config.heartbeat.timeout)
        };
        let eio = eio::Config {
            ping_interval: interval,
            ping_timeout: timeout,
            // One polling POST carries at most one message of the limit, its
            // framing, and (Engine.IO 3) base64 for binary; a bigger body is
            // refused with 413, read no further.
            max_payload: limits.max_message_size * 4 / 3 + MESSAGE_SLACK,
            max_message: limits.max_message_size + MESSAGE_SLACK,
            max_frame: limits.frame_limit().max(limits.max_message_size) + MESSAGE_SLACK,
            // Deep enough that a fan-out burst passes without a wait; a
            // client that stops reading fills the outbox behind it (the
            // bounds and the slow-consumer rule of every transport).
            queue: limits.outbox_messages.min(ENGINE_QUEUE),
            queue_bytes: limits.outbox_bytes,
            max_pending: config.socketio.max_pending_handshakes,
            unused_after: limits.handshake_timeout,
            upgrade_timeout: UPGRADE_TIMEOUT,
            linger: limits.close_timeout,
            deflate: state.deflate.clone(),
        };
        let handler = Handler::new(Arc::downgrade(state) as Weak<State>);
        SocketIo {
            engine: Arc::new(eio::Engine::new(eio, handler, state.metrics.clone())),
            path: config.socketio.path.clone(),
        }
    }

    /// Whether `path` is the endpoint's.
    pub(crate) fn serves(&self, path: &str) -> bool {
        path.starts_with(&self.path) || path == self.path.trim_end_matches('/')
    }

    /// Close the connections that have no session (a handshake not used
    /// yet, a 3.x+ client that never connected a namespace); the others
    /// are closed by their sessions.
    pub(crate) fn shutdown(&self) {
        for socket in self.engine.sockets() {
            if socket.data.namespaces().is_empty() {
                self.engine.close(&socket, eio::Reason::Server);
            }
        }
    }

    /// Answer one request at the endpoint.
    pub(crate) async fn handle<B>(
        &self,
        state: &Arc<State>,
        req: Request<B>,
    ) -> Response<Full<Bytes>>
    where
        B: hyper::body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let origin = req.headers().get(ORIGIN).cloned();
        let origin_str = origin.as_ref().and_then(|o| o.to_str().ok());
        if !origin_allowed(&state.config.access, origin_str) {
            state.metrics.http_rejection(RejectReason::Origin);
            return eio::error(
                StatusCode::FORBIDDEN,
                4,
                &format!("origin {} is not allowed", origin_str.unwrap_or("(none)")),
            );
        }
        if req.method() == Method::OPTIONS {
            return preflight(&req, origin.as_ref());
        }
        let handshake = !req
            .uri()
            .query()
            .unwrap_or("")
            .split('&')
            .any(|p| p.starts_with("sid="));
        let mut resp = if handshake && state.is_draining() {
            state.metrics.http_rejection(RejectReason::Draining);
            eio::error(
                StatusCode::SERVICE_UNAVAILABLE,
                5,
                "server is shutting down",
            )
        } else {
            self.engine.handle(req).await
        };
        cors(resp.headers_mut(), origin.as_ref());
        resp
    }
}

/// CORS for polling from pages on other origins: the request's Origin (an
/// allowed one: it was checked) echoed, with credentials; never `*`.
fn cors(headers: &mut hyper::HeaderMap, origin: Option<&HeaderValue>) {
    if let Some(origin) = origin {
        headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        headers.insert(
            ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
        headers.append(VARY, HeaderValue::from_static("Origin"));
    }
}

/// A CORS preflight.
fn preflight<B>(req: &Request<B>, origin: Option<&HeaderValue>) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = StatusCode::NO_CONTENT;
    let h = resp.headers_mut();
    h.insert(
        ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, POST, OPTIONS"),
    );
    if let Some(asked) = req.headers().get(ACCESS_CONTROL_REQUEST_HEADERS) {
        h.insert(ACCESS_CONTROL_ALLOW_HEADERS, asked.clone());
    }
    h.insert(ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("86400"));
    cors(h, origin);
    resp
}
