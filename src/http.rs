//! HTTP routing: `/metrics`, `/healthz`, `/readyz`, the web client, and
//! WebSocket routes (`/{route}`, `/{route}/{room}`, and `/` for the default
//! route).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};

use crate::metrics::{RejectReason, CONTENT_TYPE as METRICS_CONTENT_TYPE};
use crate::names::valid_name;
use crate::server::Shared;

/// Route one request.
pub(crate) async fn handle<B>(shared: &Arc<Shared>, mut req: Request<B>) -> Response<Full<Bytes>>
where
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let path = req.uri().path().to_owned();
    if path == "/api" || path.starts_with("/api/") {
        return crate::api::handle(shared, req).await;
    }
    let is_ws = fastwebsockets::upgrade::is_upgrade_request(&req);
    match path.as_str() {
        "/metrics" if !shared.config.metrics.enabled => not_found(shared),
        "/metrics" => respond(
            StatusCode::OK,
            METRICS_CONTENT_TYPE,
            shared.metrics.encode(),
        ),
        "/healthz" => text(StatusCode::OK, "ok\n"),
        "/readyz" if shared.draining.load(Ordering::Acquire) => {
            text(StatusCode::SERVICE_UNAVAILABLE, "draining\n")
        }
        "/readyz" => text(StatusCode::OK, "ready\n"),
        "/" if is_ws => {
            let route = shared
                .route(&shared.config.default_route)
                .expect("validated: default_route exists")
                .clone();
            let room = route.default_room.clone();
            crate::upgrade::upgrade(shared, &mut req, route, &room)
        }
        "/" | "/index.html" if req.method() == Method::GET || req.method() == Method::HEAD => {
            crate::web::index(shared)
        }
        crate::web::SCRIPT_PATH | crate::web::STYLE_PATH
            if req.method() == Method::GET || req.method() == Method::HEAD =>
        {
            crate::web::asset(&path).expect("a web asset path")
        }
        _ => {
            let mut parts = path[1..].splitn(2, '/');
            let name = parts.next().unwrap_or_default();
            let room = parts.next();
            let Some(route) = shared.route(name).cloned() else {
                return not_found(shared);
            };
            let room = match room {
                None | Some("") => route.default_room.clone(),
                Some(r) if valid_name(r) => r.to_string(),
                Some(_) => return not_found(shared),
            };
            if !is_ws {
                shared.metrics.http_rejection(RejectReason::NotUpgrade);
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
            crate::upgrade::upgrade(shared, &mut req, route, &room)
        }
    }
}

fn not_found(shared: &Shared) -> Response<Full<Bytes>> {
    shared.metrics.http_rejection(RejectReason::NotFound);
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
