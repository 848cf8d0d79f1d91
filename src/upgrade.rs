//! The WebSocket upgrade: check the request, answer 101, start the session.
//!
//! Checks run cheapest first, and everything is refused before the upgrade
//! with an HTTP status and a one-line reason: draining (503), not a valid
//! handshake (400), Origin (403), connection caps (503 / 429), token (401),
//! room not allowed by the token (403), the route's `on_handshake` hook.
//! The session is opened (nickname, room, `on_connect`) before the 101 is
//! returned, so a client holding its 101 is already a member.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, ORIGIN, SEC_WEBSOCKET_PROTOCOL, WWW_AUTHENTICATE};
use hyper::{Method, Request, Response, StatusCode};

use crate::admission::{origin_allowed, Refusal};
use crate::auth::AuthError;
use crate::metrics::RejectReason;
use crate::script::{Outcome, ScriptRequest};
use crate::server::{PeerAddr, Route, Shared};

/// Upgrade `req` to a WebSocket on `route`, in room `room` (the short name).
/// The session runs in its own task, tracked for shutdown.
pub(crate) fn upgrade<B>(
    shared: &Arc<Shared>,
    req: &mut Request<B>,
    route: Arc<Route>,
    room: &str,
) -> Response<Full<Bytes>> {
    let refuse = |reason: RejectReason, status: StatusCode, text: String| {
        shared.metrics.http_rejection(reason);
        tracing::debug!(status = status.as_u16(), "upgrade refused: {text}");
        plain(status, text)
    };
    if shared.draining.load(Ordering::Acquire) {
        return refuse(
            RejectReason::Draining,
            StatusCode::SERVICE_UNAVAILABLE,
            "server is shutting down".into(),
        );
    }
    if req.method() != Method::GET {
        return refuse(
            RejectReason::BadHandshake,
            StatusCode::BAD_REQUEST,
            "WebSocket handshake must use GET".into(),
        );
    }
    let (response, upgrade) = match fastwebsockets::upgrade::upgrade(&mut *req) {
        Ok(ok) => ok,
        Err(e) => {
            return refuse(
                RejectReason::BadHandshake,
                StatusCode::BAD_REQUEST,
                format!(
                    "invalid WebSocket handshake ({e}): Sec-WebSocket-Key and Sec-WebSocket-Version: 13 are required"
                ),
            )
        }
    };

    let origin = req.headers().get(ORIGIN).and_then(|v| v.to_str().ok());
    if !origin_allowed(&shared.config.access, origin) {
        return refuse(
            RejectReason::Origin,
            StatusCode::FORBIDDEN,
            format!("origin {} is not allowed", origin.unwrap_or("(none)")),
        );
    }

    let peer = req.extensions().get::<PeerAddr>().map(|p| p.0);
    let slot = match shared.admission.admit(peer.map(|p| p.ip())) {
        Ok(slot) => slot,
        Err(Refusal::TooManyConnections) => {
            return refuse(
                RejectReason::TooManyConnections,
                StatusCode::SERVICE_UNAVAILABLE,
                "too many connections".into(),
            )
        }
        Err(Refusal::TooManyFromIp) => {
            return refuse(
                RejectReason::TooManyFromIp,
                StatusCode::TOO_MANY_REQUESTS,
                "too many connections from this address".into(),
            )
        }
    };

    let room = format!("{}/{}", route.name, room);
    let identity = match &shared.auth {
        None => None,
        Some(auth) => match auth.check(req) {
            Ok(identity) => identity,
            Err(e) => {
                let mut resp = refuse(
                    RejectReason::Unauthorized,
                    StatusCode::UNAUTHORIZED,
                    e.to_string(),
                );
                let challenge = match e {
                    AuthError::Missing => "Bearer".to_string(),
                    other => format!(
                        "Bearer error=\"invalid_token\", error_description=\"{}\"",
                        other.to_string().replace('"', "'")
                    ),
                };
                if let Ok(v) = HeaderValue::from_str(&challenge) {
                    resp.headers_mut().insert(WWW_AUTHENTICATE, v);
                }
                return resp;
            }
        },
    };
    if let Some(id) = &identity {
        if !id.may_join(&room) {
            return refuse(
                RejectReason::RoomForbidden,
                StatusCode::FORBIDDEN,
                format!("this token may not join {room}"),
            );
        }
    }

    let handshake_hook = route
        .script
        .as_ref()
        .filter(|s| s.current().has(crate::script::Hook::Handshake));
    if let Some(script) = handshake_hook {
        let script_req = ScriptRequest::new(req, &route.name, &room, peer, identity.as_ref());
        match shared.scripts.handshake(script, &script_req) {
            Outcome::Ran | Outcome::Missing => {
                if let Some((status, reason)) = script_req.rejection() {
                    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::FORBIDDEN);
                    return refuse(RejectReason::ScriptRefused, status, reason);
                }
            }
            Outcome::Failed(err) => {
                // A broken handshake hook must not let everyone in, nor crash:
                // refuse with 500 and say why in the log.
                tracing::error!(route = %route.name, "script error: {err}");
                return refuse(
                    RejectReason::ScriptRefused,
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the route's on_handshake hook failed".into(),
                );
            }
        }
    }

    let v1 = crate::protocol::offers_v1(
        req.headers()
            .get(SEC_WEBSOCKET_PROTOCOL)
            .and_then(|v| v.to_str().ok()),
    );
    // A raw client is refused before the upgrade when its room is full (a v1
    // client hears `room_full` when it asks to join).
    if !v1 {
        let cap = shared.registry.policy(&room).max_members;
        if cap > 0 && shared.registry.room(&room).is_some_and(|r| r.len() >= cap) {
            return refuse(
                RejectReason::RoomFull,
                StatusCode::SERVICE_UNAVAILABLE,
                format!("{room} is full"),
            );
        }
    }
    let accepted = crate::session::Accepted {
        request: crate::script::RequestInfo::from_request(req, peer),
        route,
        room,
        identity,
        peer,
        v1,
    };
    // Opened now, before the 101 goes out: see `session::Opened`.
    let opened = crate::session::open(shared.clone(), accepted);
    shared.sessions.spawn(async move {
        opened.run(upgrade).await;
        drop(slot);
    });
    let mut response = response.map(|_| Full::new(Bytes::new()));
    if v1 {
        response.headers_mut().insert(
            SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static(crate::protocol::SUBPROTOCOL),
        );
    }
    response
}

fn plain(status: StatusCode, text: String) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(text + "\n")));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}
