//! The WebSocket upgrade: check the handshake, admit the connection, open
//! its session, answer 101, and spawn the task that serves it.
//!
//! A malformed handshake is 400; every other refusal comes from
//! [`admission::admit`] and is answered with its status and a one-line
//! reason. The session is opened (nickname, room, `on_connect`) before the
//! 101 is returned, so a client holding its 101 is already a member: it
//! receives everything published after that, and clients that connect one
//! after another get `user1`, `user2`… in that order.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{
    HeaderValue, SEC_WEBSOCKET_EXTENSIONS, SEC_WEBSOCKET_PROTOCOL, WWW_AUTHENTICATE,
};
use hyper::{Method, Request, Response, StatusCode};

use super::driver::Driver;
use crate::admission::{self, PeerAddr, Refusal};
use crate::deflate::MAX_WINDOW_BITS;
use crate::metrics::RejectReason;
use crate::metrics::Transport;
use crate::session::Session;
use crate::state::{Route, State};
use crate::wire::{v1, Wire};

/// Upgrade `req` to a WebSocket on `route`, in room `room` (the short name).
/// The connection is served in its own task, tracked for shutdown.
pub(crate) async fn upgrade<B>(
    state: &Arc<State>,
    req: &mut Request<B>,
    route: Arc<Route>,
    room: &str,
) -> Response<Full<Bytes>> {
    let bad_handshake = |text: String| {
        refused(
            state,
            Refusal {
                reason: RejectReason::BadHandshake,
                status: 400,
                message: text,
                challenge: None,
            },
        )
    };
    if req.method() != Method::GET {
        return bad_handshake("WebSocket handshake must use GET".into());
    }
    let (response, upgrade) = match fastwebsockets::upgrade::upgrade(&mut *req) {
        Ok(ok) => ok,
        Err(e) => {
            return bad_handshake(format!(
                "invalid WebSocket handshake ({e}): Sec-WebSocket-Key and Sec-WebSocket-Version: 13 are required"
            ))
        }
    };
    let offered = req
        .headers()
        .get(SEC_WEBSOCKET_PROTOCOL)
        .and_then(|v| v.to_str().ok());
    let wire = if v1::offers_v1(offered) {
        Wire::V1
    } else {
        Wire::Raw
    };
    let parts = admission::Request {
        uri: req.uri(),
        headers: req.headers(),
        peer: req.extensions().get::<PeerAddr>().map(|p| p.0),
        token: None,
    };
    let compression = route.compression;
    let mut admitted = match admission::admit(state, parts, route, room, wire) {
        Ok(a) => a,
        Err(refusal) => return answer(refusal),
    };
    // permessage-deflate, if the client offers it in a way the server takes.
    let negotiated = state
        .deflate
        .as_ref()
        .filter(|_| compression)
        .and_then(|d| d.accept(req.headers(), Transport::WebSocket));
    // Broadcasts compressed once are made with the full window.
    if let Some(n) = negotiated
        .as_ref()
        .filter(|n| n.window_bits == MAX_WINDOW_BITS)
    {
        admitted.deflate = Some(n.active.deflate().clone());
    }
    // Opened now, before the 101 goes out: see the module doc.
    let session = match crate::conn::open(state, admitted, Session::new_outbox(state)).await {
        Ok(session) => session,
        Err(e) => {
            tracing::warn!("cannot number a new connection: {e}");
            return plain(StatusCode::SERVICE_UNAVAILABLE, e.to_string());
        }
    };
    let limits = &state.config.limits;
    let extensions = negotiated.as_ref().map(|n| n.answer.clone());
    let driver = Driver::new(
        session,
        limits.frame_limit(),
        limits.max_message_size,
        negotiated,
    );
    state.sessions.spawn(driver.run(upgrade));
    let mut response = response.map(|_| Full::new(Bytes::new()));
    if let Some(v) = extensions {
        response.headers_mut().insert(SEC_WEBSOCKET_EXTENSIONS, v);
    }
    if wire == Wire::V1 {
        response.headers_mut().insert(
            SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static(v1::SUBPROTOCOL),
        );
    }
    response
}

/// A refusal that happened here (not in admission): count it, then answer.
fn refused(state: &State, refusal: Refusal) -> Response<Full<Bytes>> {
    state.metrics.http_rejection(refusal.reason);
    tracing::debug!(
        status = refusal.status,
        "upgrade refused: {}",
        refusal.message
    );
    answer(refusal)
}

/// A refusal as an HTTP response: its status, its reason, its challenge.
fn answer(refusal: Refusal) -> Response<Full<Bytes>> {
    let status = StatusCode::from_u16(refusal.status).unwrap_or(StatusCode::FORBIDDEN);
    let mut resp = plain(status, refusal.message);
    if let Some(v) = refusal
        .challenge
        .and_then(|c| HeaderValue::from_str(&c).ok())
    {
        resp.headers_mut().insert(WWW_AUTHENTICATE, v);
    }
    resp
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
