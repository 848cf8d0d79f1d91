//! HTTP routing: `/metrics`, `/healthz`, `/readyz`, the web client, the HTTP
//! API, and WebSocket routes (`/{route}`, `/{route}/{room}`, and `/` for the
//! default route).

mod api;
mod web;

pub(crate) use api::{
    bad_request, bearer, error as api_error, key_name, no_room, ok as api_ok, unauthorized,
    unavailable,
};
pub(crate) use web::file as page_file;
#[cfg(test)]
pub(crate) use web::{assert_never_parses_html, assert_no_inline_code};

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};

use crate::metrics::{RejectReason, CONTENT_TYPE as METRICS_CONTENT_TYPE};
use crate::names::valid_name;
use crate::sio::SocketIo;
use crate::state::State;

/// Route one request.
pub(crate) async fn handle<B>(
    state: &Arc<State>,
    sio: Option<&SocketIo>,
    req: Request<B>,
) -> Response<Full<Bytes>>
where
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    // Every plain request (its body included) has `limits.request_timeout`:
    // a body trickled a byte a second is cut with 408. Exempt: WebSocket
    // upgrades (the handshake has `handshake_timeout`, then the connection
    // is no longer HTTP) and socket.io long-poll GETs, which the server
    // holds on purpose until it has something to say (at most engine.io's
    // ping interval).
    let is_ws = fastwebsockets::upgrade::is_upgrade_request(&req);
    let is_sio = sio.is_some_and(|s| s.serves(req.uri().path()));
    let held = is_ws || (is_sio && req.method() == Method::GET);
    // A body we will not read must not keep the connection: answer, close.
    let unread_body = !is_sio && !is_api(req.uri().path()) && has_body(&req);
    let mut resp = if held {
        route(state, sio, req, is_ws).await
    } else {
        let timeout = state.config.limits.request_timeout;
        match tokio::time::timeout(timeout, route(state, sio, req, is_ws)).await {
            Ok(resp) => resp,
            Err(_) => {
                state.metrics.http_rejection(RejectReason::RequestTimeout);
                tracing::debug!("request not complete within limits.request_timeout: 408");
                let mut resp = text(StatusCode::REQUEST_TIMEOUT, "request timeout\n");
                resp.headers_mut()
                    .insert(hyper::header::CONNECTION, HeaderValue::from_static("close"));
                return resp;
            }
        }
    };
    if unread_body {
        resp.headers_mut()
            .insert(hyper::header::CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}

fn is_api(path: &str) -> bool {
    path == "/api" || path.starts_with("/api/")
}

/// Whether the request says a body follows.
fn has_body<B>(req: &Request<B>) -> bool {
    let headers = req.headers();
    headers.contains_key(hyper::header::TRANSFER_ENCODING)
        || headers
            .get(hyper::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim() != "0")
}

async fn route<B>(
    state: &Arc<State>,
    sio: Option<&SocketIo>,
    mut req: Request<B>,
    is_ws: bool,
) -> Response<Full<Bytes>>
where
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let path = req.uri().path().to_owned();
    if let Some(sio) = sio.filter(|s| s.serves(&path)) {
        return sio.handle(state, req).await;
    }
    if is_api(&path) {
        return api::handle(state, req).await;
    }
    if path == "/admin" || path.starts_with("/admin/") {
        return admin(state, &mut req, &path, is_ws);
    }
    match path.as_str() {
        "/metrics" if !state.config.metrics.enabled => not_found(state),
        "/metrics" => respond(StatusCode::OK, METRICS_CONTENT_TYPE, state.metrics.encode()),
        "/healthz" => text(StatusCode::OK, "ok\n"),
        "/readyz" if state.is_draining() => text(StatusCode::SERVICE_UNAVAILABLE, "draining\n"),
        "/readyz" => text(StatusCode::OK, "ready\n"),
        "/" if is_ws => {
            let route = state.default_route().clone();
            let room = route.default_room.clone();
            crate::ws::upgrade(state, &mut req, route, &room).await
        }
        "/" | "/index.html" if req.method() == Method::GET || req.method() == Method::HEAD => {
            web::index(state)
        }
        web::SCRIPT_PATH | web::STYLE_PATH
            if req.method() == Method::GET || req.method() == Method::HEAD =>
        {
            web::asset(&path).expect("a web asset path")
        }
        p if p.starts_with(web::SDK_DIR)
            && (req.method() == Method::GET || req.method() == Method::HEAD) =>
        {
            web::asset(p).unwrap_or_else(|| not_found(state))
        }
        _ => {
            let mut parts = path[1..].splitn(2, '/');
            let name = parts.next().unwrap_or_default();
            let room = parts.next();
            let Some(route) = state.route(name).cloned() else {
                return not_found(state);
            };
            let room = match room {
                None | Some("") => route.default_room.clone(),
                Some(r) if valid_name(r) => r.to_string(),
                Some(_) => return not_found(state),
            };
            if !is_ws {
                state.metrics.http_rejection(RejectReason::NotUpgrade);
                let mut resp = text(
                    StatusCode::UPGRADE_REQUIRED,
                    "this is a WebSocket endpoint: connect with a WebSocket client\n",
                );
                resp.headers_mut()
                    .insert("upgrade", HeaderValue::from_static("websocket"));
                resp.headers_mut()
                    .insert("connection", HeaderValue::from_static("upgrade"));
                return resp;
            }
            crate::ws::upgrade(state, &mut req, route, &room).await
        }
    }
}

/// The operator view: its page, its files and its live socket; 404 while
/// no API key is set.
fn admin<B>(
    state: &Arc<State>,
    req: &mut Request<B>,
    path: &str,
    is_ws: bool,
) -> Response<Full<Bytes>> {
    let Some(board) = state.board.as_ref() else {
        return not_found(state);
    };
    let readable = req.method() == Method::GET || req.method() == Method::HEAD;
    match path {
        "/admin/live" if is_ws => crate::admin::live(state, board, req),
        "/admin" | "/admin/" if readable => crate::admin::index(),
        p if readable && p.starts_with(crate::admin::ASSET_DIR) => {
            crate::admin::asset(p).unwrap_or_else(|| not_found(state))
        }
        _ => not_found(state),
    }
}

fn not_found(state: &State) -> Response<Full<Bytes>> {
    state.metrics.http_rejection(RejectReason::NotFound);
    text(StatusCode::NOT_FOUND, "not found\n")
}

/// A plain-text response.
pub(crate) fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    respond(
        status,
        "text/plain; charset=utf-8",
        body.as_bytes().to_vec(),
    )
}

fn respond(status: StatusCode, content_type: &'static str, body: Vec<u8>) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}
