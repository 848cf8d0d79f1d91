//! The HTTP API for application backends, under `/api` (docs/http-api.md).
//!
//! Off until `api.key` (or one of `api.keys`) is set; every request then
//! needs `Authorization: Bearer <key>`. What the operator view uses is
//! under `/api/admin/` ([`crate::admin`]). JSON in, JSON out; errors are
//! `{"error": {"code", "reason"}}` with a matching status.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Body;
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use hyper::{Method, Request, Response, StatusCode};
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::broker::{Draft, HISTORY_DEFAULT, HISTORY_MAX};
use crate::close;
use crate::config::ApiConfig;
use crate::hub::Target;
use crate::payload::Payload;
use crate::state::State;
use crate::wire::{v1, Author};

/// Largest request body the API reads.
const MAX_BODY: usize = 1 << 20;

/// Answer one `/api/...` request.
pub(super) async fn handle<B>(state: &Arc<State>, req: Request<B>) -> Response<Full<Bytes>>
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    if !state.config.api.enabled() {
        return error(
            StatusCode::NOT_FOUND,
            "not_found",
            "the HTTP API is off (set api.key)",
        );
    }
    let Some(key) = bearer(&req).and_then(|k| key_name(k, &state.config.api)) else {
        return unauthorized(state);
    };
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let param = |name: &str| crate::auth::query_param(&query, name);
    if let (Some(board), Some(rest)) = (state.board.as_ref(), path.strip_prefix("/api/admin/")) {
        return crate::admin::api(state, board, req.method(), rest, &param).await;
    }
    match (req.method().clone(), path.as_str()) {
        (Method::GET, "/api/rooms") => {
            let rooms: Vec<Value> = state
                .hub
                .rooms()
                .into_iter()
                .map(|(room, members)| json!({"room": room, "members": members}))
                .collect();
            ok(json!({"rooms": rooms, "connections": state.hub.connections()}))
        }
        (Method::GET, "/api/rooms/presence") => {
            let Some(room) = param("room") else {
                return bad_request("the `room` query parameter is required");
            };
            match state.broker.presence(&room).get().await {
                Ok(Some(members)) => {
                    let members: Vec<Value> = members
                        .iter()
                        .map(|m| json!({"user": m.user.as_deref(), "nick": &*m.nick, "conns": m.conns}))
                        .collect();
                    ok(json!({"room": room, "members": members}))
                }
                Ok(None) => no_room(),
                Err(e) => unavailable(&e),
            }
        }
        (Method::GET, "/api/rooms/history") => {
            let Some(room) = param("room") else {
                return bad_request("the `room` query parameter is required");
            };
            let since = match param("since").map(|s| s.parse::<u64>()) {
                Some(Err(_)) => return bad_request("`since` must be an offset"),
                Some(Ok(s)) => Some(s),
                None => None,
            };
            let limit = match param("limit").map(|s| s.parse::<usize>()) {
                Some(Err(_)) => return bad_request("`limit` must be a number"),
                Some(Ok(l)) => l.min(HISTORY_MAX),
                None => HISTORY_DEFAULT,
            };
            match state.broker.history(&room, since, limit).get().await {
                Ok(Some(h)) => {
                    let messages: Vec<Value> = h
                        .publications
                        .iter()
                        .map(|p| v1::message_value(p))
                        .collect();
                    ok(json!({"room": room, "epoch": &*h.epoch, "messages": messages}))
                }
                Ok(None) => no_room(),
                Err(e) => unavailable(&e),
            }
        }
        (Method::POST, "/api/publish") => {
            #[derive(Deserialize)]
            #[serde(deny_unknown_fields)]
            struct Publish {
                room: String,
                data: Value,
            }
            let body: Publish = match read_json(req).await {
                Ok(b) => b,
                Err(resp) => return resp,
            };
            // A room exists while it has members, or recent history.
            let exists = state.hub.room(&body.room).is_some()
                || matches!(
                    state.broker.history(&body.room, None, 0).get().await,
                    Ok(Some(_))
                );
            if !exists {
                return no_room();
            }
            let payload = Payload::from_json(&body.data);
            if payload.len() > state.config.limits.max_message_size {
                return error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "too_large",
                    "data is over limits.max_message_size",
                );
            }
            let room: Arc<str> = body.room.into();
            let draft = Draft {
                from: Author::server(),
                payload,
                except: None,
            };
            state.metrics.api_action("publish", key);
            tracing::info!(key, room = %room, "published into a room through the HTTP API");
            match state.broker.publish(&room, draft).get().await {
                Ok(offset) => ok(json!({"room": &*room, "offset": offset})),
                Err(e) => unavailable(&e),
            }
        }
        (Method::POST, "/api/disconnect") => {
            #[derive(Deserialize)]
            #[serde(deny_unknown_fields)]
            struct Disconnect {
                conn: Option<u64>,
                user: Option<String>,
                reason: Option<String>,
            }
            let body: Disconnect = match read_json(req).await {
                Ok(b) => b,
                Err(resp) => return resp,
            };
            let target = match (body.conn, body.user) {
                (Some(id), None) => Target::Conn(id),
                (None, Some(user)) => Target::User(user.into()),
                _ => return bad_request("give exactly one of `conn` or `user`"),
            };
            let reason = body
                .reason
                .as_deref()
                .unwrap_or("disconnected by the server");
            if reason.len() > 123 {
                return bad_request("`reason` is at most 123 bytes (it goes in a Close frame)");
            }
            state.metrics.api_action("disconnect", key);
            tracing::info!(
                key,
                ?target,
                code = close::DISCONNECTED,
                reason,
                "disconnect through the HTTP API"
            );
            match state
                .broker
                .disconnect(target, close::DISCONNECTED, reason)
                .get()
                .await
            {
                Ok(n) => ok(json!({"disconnected": n})),
                Err(e) => unavailable(&e),
            }
        }
        (
            _,
            "/api/rooms"
            | "/api/rooms/presence"
            | "/api/rooms/history"
            | "/api/publish"
            | "/api/disconnect",
        ) => error(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "see docs/http-api.md",
        ),
        _ => error(
            StatusCode::NOT_FOUND,
            "not_found",
            "no such endpoint (see docs/http-api.md)",
        ),
    }
}

/// The key a request bears (`Authorization: Bearer <key>`).
pub(crate) fn bearer<B>(req: &Request<B>) -> Option<&str> {
    req.headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
}

/// The name of the configured key `given` is, if it is one. Compared
/// without leaking how much of a key matched, nor its length, nor which
/// one: the SHA-256 digests are compared in constant time, with every key.
pub(crate) fn key_name<'a>(given: &str, api: &'a ApiConfig) -> Option<&'a str> {
    let given = Sha256::digest(given);
    let mut found = None;
    for (name, key) in api.named_keys() {
        if bool::from(given.ct_eq(&Sha256::digest(key))) {
            found = Some(name);
        }
    }
    found
}

/// 401 for a missing or wrong key, counted; nothing else said.
pub(crate) fn unauthorized(state: &State) -> Response<Full<Bytes>> {
    state.metrics.api_unauthorized.inc();
    let mut resp = error(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "missing or wrong API key (Authorization: Bearer <key>)",
    );
    resp.headers_mut()
        .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    resp
}

async fn read_json<T, B>(req: Request<B>) -> Result<T, Response<Full<Bytes>>>
where
    T: serde::de::DeserializeOwned,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let body = Limited::new(req.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| {
            error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "bad_body",
                &format!("cannot read the body: {e}"),
            )
        })?
        .to_bytes();
    serde_json::from_slice(&body).map_err(|e| bad_request(&format!("bad JSON body: {e}")))
}

/// 200 with `v`.
pub(crate) fn ok(v: Value) -> Response<Full<Bytes>> {
    json_response(StatusCode::OK, &v)
}

pub(crate) fn no_room() -> Response<Full<Bytes>> {
    error(
        StatusCode::NOT_FOUND,
        "no_room",
        "no such room (a room exists while it has members or recent history)",
    )
}

pub(crate) fn unavailable(e: &crate::broker::BrokerError) -> Response<Full<Bytes>> {
    error(StatusCode::SERVICE_UNAVAILABLE, e.code(), &e.to_string())
}

pub(crate) fn bad_request(reason: &str) -> Response<Full<Bytes>> {
    error(StatusCode::BAD_REQUEST, "bad_request", reason)
}

/// An API error: `{"error": {"code", "reason"}}` with `status`.
pub(crate) fn error(status: StatusCode, code: &str, reason: &str) -> Response<Full<Bytes>> {
    json_response(status, &json!({"error": {"code": code, "reason": reason}}))
}

fn json_response(status: StatusCode, v: &Value) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(v.to_string())));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}
