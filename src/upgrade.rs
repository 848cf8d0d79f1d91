//! The WebSocket upgrade: check the request, answer 101, start the session.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request, Response, StatusCode};

use crate::http::text;
use crate::metrics::RejectReason;
use crate::server::{Route, Shared};

/// Upgrade `req` to a WebSocket on `route`, in room `room` (the short name).
/// The session runs in its own task, tracked for shutdown.
pub(crate) fn upgrade<B>(
    shared: &Arc<Shared>,
    req: &mut Request<B>,
    route: Arc<Route>,
    room: &str,
) -> Response<Full<Bytes>> {
    if shared.draining.load(Ordering::Acquire) {
        shared.metrics.http_rejection(RejectReason::Draining);
        return text(StatusCode::SERVICE_UNAVAILABLE, "server is shutting down\n");
    }
    if req.method() != Method::GET {
        shared.metrics.http_rejection(RejectReason::BadHandshake);
        return text(
            StatusCode::BAD_REQUEST,
            "WebSocket handshake must use GET\n",
        );
    }
    let (response, upgrade) = match fastwebsockets::upgrade::upgrade(&mut *req) {
        Ok(ok) => ok,
        Err(e) => {
            shared.metrics.http_rejection(RejectReason::BadHandshake);
            tracing::debug!("bad handshake: {e}");
            return text(
                StatusCode::BAD_REQUEST,
                "invalid WebSocket handshake (Sec-WebSocket-Key and Sec-WebSocket-Version: 13 required)\n",
            );
        }
    };
    let room = format!("{}/{}", route.name, room);
    let session_shared = shared.clone();
    shared.sessions.spawn(async move {
        match upgrade.await {
            Ok(ws) => crate::session::run(ws, session_shared, route, room).await,
            Err(e) => tracing::debug!("upgrade did not complete: {e}"),
        }
    });
    response.map(|_| Full::new(Bytes::new()))
}
