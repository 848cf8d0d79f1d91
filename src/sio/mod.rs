//! The socket.io transport: Engine.IO 3 and 4 (engineioxide: polling,
//! WebSocket, upgrades, heartbeats) under our socket.io packet layer, each
//! namespace a session of the core on `Wire::SocketIo` (docs/socketio.md).
//!
//! - this file: the HTTP side at `socketio.path` — CORS (an allowed Origin
//!   echoed with credentials, preflights answered), the Origin allow-list,
//!   refusing new connections while draining, counting what engine.io
//!   refuses;
//! - `engine`: engine.io's callbacks, namespaces, events, attachments;
//! - `packet`: socket.io packets from clients;
//! - `driver`: a session's outbox to engine.io, its timers, its close.

mod driver;
mod engine;
mod packet;

use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::Bytes;
use engineioxide::config::EngineIoConfig;
use engineioxide::service::EngineIoService;
use http_body_util::{BodyExt, Full};
use hyper::header::{
    HeaderValue, ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_HEADERS,
    ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_MAX_AGE,
    ACCESS_CONTROL_REQUEST_HEADERS, CONTENT_TYPE, ORIGIN, VARY,
};
use hyper::service::Service;
use hyper::{Method, Request, Response, StatusCode};

use crate::admission::origin_allowed;
use crate::metrics::{RejectReason, SocketIoError};
use crate::net::GuardSlot;
use crate::state::State;

use engine::Handler;

/// What an engine.io WebSocket message may have beyond the message-size
/// limit: its frame header, its packet type and namespace.
const GUARD_SLACK: usize = 1024;

/// Packets engine.io queues ahead of one client (its `max_buffer_size`).
const ENGINE_QUEUE: usize = 1024;

/// The socket.io endpoint of one server.
pub(crate) struct SocketIo {
    service: EngineIoService<Handler>,
    handler: Arc<Handler>,
    path: String,
}

impl SocketIo {
    /// The endpoint for `state`'s server (held weakly: the server owns this).
    pub(crate) fn new(state: &Arc<State>) -> SocketIo {
        let config = &state.config;
        let handler = Arc::new(Handler::new(Arc::downgrade(state) as Weak<State>));
        // Engine.IO needs heartbeats; with ours off, its defaults.
        let (interval, timeout) = if config.heartbeat.interval.is_zero() {
            (Duration::from_secs(25), Duration::from_secs(20))
        } else {
            (config.heartbeat.interval, config.heartbeat.timeout)
        };
        let eio = EngineIoConfig::builder()
            .req_path(config.socketio.path.clone())
            .ping_interval(interval)
            .ping_timeout(timeout)
            // One polling POST carries at most one message of the limit, its
            // framing, and (Engine.IO 3) base64 for binary; engine.io refuses
            // a bigger body with 413, reading no further.
            .max_payload((config.limits.max_message_size as u64) * 4 / 3 + GUARD_SLACK as u64)
            // engine.io's own queue ahead of the client: deep enough that a
            // fan-out burst passes without a wait, and a client that stops
            // reading fills the outbox behind it (the bounds and the
            // slow-consumer rule of every transport). Packets in it are out
            // of the outbox's byte count, so it stays at 1024 even where the
            // outbox may hold more frames.
            .max_buffer_size(config.limits.outbox_messages.min(ENGINE_QUEUE))
            .build();
        SocketIo {
            service: EngineIoService::with_config(handler.clone(), eio),
            handler,
            path: config.socketio.path.clone(),
        }
    }

    /// Whether `path` is the endpoint's.
    pub(crate) fn serves(&self, path: &str) -> bool {
        path.starts_with(&self.path) || path == self.path.trim_end_matches('/')
    }

    /// Close the connections that have no session (a 3.x+ client that never
    /// connected a namespace); the others are closed by their sessions.
    pub(crate) fn shutdown(&self) {
        for socket in self.handler.sockets() {
            if socket.data.namespaces().is_empty() {
                socket.close(engineioxide::DisconnectReason::ClosingServer);
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
            return error(
                StatusCode::FORBIDDEN,
                4,
                &format!("origin {} is not allowed", origin_str.unwrap_or("(none)")),
                None,
            );
        }
        if req.method() == Method::OPTIONS {
            return preflight(&req, origin.as_ref());
        }
        let query = req.uri().query().unwrap_or("").to_string();
        let handshake = !query.split('&').any(|p| p.starts_with("sid="));
        if handshake && state.is_draining() {
            state.metrics.http_rejection(RejectReason::Draining);
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                5,
                "server is shutting down",
                origin.as_ref(),
            );
        }
        let sid = query
            .split('&')
            .find_map(|p| p.strip_prefix("sid="))
            .map(str::to_string);
        if let Some(sid) = &sid {
            // An upgrade or a poll for a session that does not exist is
            // answered here, before engine.io would accept the upgrade.
            if !self.handler.knows(sid) {
                state.metrics.socketio_error(SocketIoError::UnknownSession);
                return error(
                    StatusCode::BAD_REQUEST,
                    1,
                    "Session ID unknown",
                    origin.as_ref(),
                );
            }
        }
        if query.split('&').any(|p| p == "transport=websocket") {
            // engine.io's WebSocket reader would buffer 64 MiB: see crate::net.
            if let Some(GuardSlot(guard)) = req.extensions().get::<GuardSlot>() {
                guard.arm(state.config.limits.max_message_size + GUARD_SLACK);
                if let Some(sid) = &sid {
                    self.handler.guard(sid, guard.clone());
                }
            }
        }
        let method = req.method().clone();
        let req = req.map(|b| b.map_err(Into::into).boxed_unsync());
        let resp = match self.service.call(req).await {
            Ok(r) => r,
            Err(never) => match never {},
        };
        count(state, &method, resp.status());
        let (mut parts, body) = resp.into_parts();
        let body = match body.collect().await {
            Ok(b) => b.to_bytes(),
            Err(e) => {
                tracing::debug!("socket.io response body failed: {e:?}");
                Bytes::new()
            }
        };
        cors(&mut parts.headers, origin.as_ref());
        Response::from_parts(parts, Full::new(body))
    }
}

/// What engine.io refused, counted (a second concurrent poll is counted
/// when engine.io closes its session for it).
fn count(state: &State, method: &Method, status: StatusCode) {
    let m = &state.metrics;
    match status.as_u16() {
        413 => m.socketio_error(SocketIoError::TooLarge),
        400 if method == Method::POST => m.socketio_error(SocketIoError::BadPacket),
        _ => {}
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

/// An engine.io error: `{"code": N, "message": "..."}`.
fn error(
    status: StatusCode,
    code: u8,
    message: &str,
    origin: Option<&HeaderValue>,
) -> Response<Full<Bytes>> {
    let body = serde_json::json!({"code": code, "message": message}).to_string();
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    cors(resp.headers_mut(), origin);
    resp
}
