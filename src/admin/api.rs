//! The HTTP API's `/api/admin/` endpoints (docs/http-api.md): what the
//! operator view reads besides its live socket, for scripts too. Acting
//! (publish, disconnect, history) goes through the API's ordinary endpoints.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Response, StatusCode};
use serde_json::{json, Value};

use super::{top, Board};
use crate::broker::HISTORY_MAX;
use crate::http::{api_error, api_ok, bad_request, no_room, unavailable};
use crate::state::State;
use crate::wire::Wire;

/// Most entries one page of members (or one search) returns.
const PAGE_MAX: usize = 200;
/// Entries a page returns when it does not say.
const PAGE_DEFAULT: usize = 50;

/// Answer `/api/admin/<rest>` (the key was checked).
pub(crate) async fn handle(
    state: &Arc<State>,
    board: &Arc<Board>,
    method: &Method,
    rest: &str,
    param: &(dyn Fn(&str) -> Option<String> + Sync),
) -> Response<Full<Bytes>> {
    if method != Method::GET {
        return api_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "see docs/http-api.md",
        );
    }
    let number = |name: &str, default: usize, max: usize| match param(name).map(|s| s.parse()) {
        None => Ok(default),
        Some(Ok(n)) => Ok(max.min(n)),
        Some(Err(_)) => Err(Box::new(bad_request(&format!("`{name}` must be a number")))),
    };
    match rest {
        "overview" => api_ok(board.encode_update()),
        "rooms" => {
            let prefix = param("prefix").unwrap_or_default();
            let limit = match number("limit", PAGE_DEFAULT, PAGE_MAX) {
                Ok(n) => n,
                Err(resp) => return *resp,
            };
            api_ok(search(state, board, &prefix, limit))
        }
        "room" => {
            let Some(room) = param("room") else {
                return bad_request("the `room` query parameter is required");
            };
            let (from, limit) = match (
                number("from", 0, usize::MAX),
                number("limit", PAGE_DEFAULT, PAGE_MAX),
            ) {
                (Ok(f), Ok(l)) => (f, l),
                (Err(resp), _) | (_, Err(resp)) => return *resp,
            };
            room_page(state, board, &room, from, limit).await
        }
        _ => api_error(
            StatusCode::NOT_FOUND,
            "not_found",
            "no such endpoint (see docs/http-api.md)",
        ),
    }
}

/// Rooms by name prefix: this node's rooms (all of them) and what the other
/// nodes' top lists hold; members summed where both have a room.
fn search(state: &State, board: &Board, prefix: &str, limit: usize) -> Value {
    let mut found = top::search(&state.hub, prefix, usize::MAX);
    for f in board.listed_elsewhere(prefix) {
        match found.iter_mut().find(|g| g.room == f.room) {
            Some(g) => g.members += f.members,
            None => found.push(f),
        }
    }
    found.sort_by(|a, b| a.room.cmp(&b.room));
    let more = found.len() > limit;
    found.truncate(limit);
    let rooms: Vec<Value> = found
        .iter()
        .map(|f| json!({"room": f.room, "members": f.members}))
        .collect();
    json!({"prefix": prefix, "rooms": rooms, "more": more})
}

fn wire_name(w: Wire) -> &'static str {
    match w {
        Wire::Raw => "raw",
        Wire::V1 => "v1",
        Wire::SocketIo => "socketio",
    }
}

/// One room: its members here (a page), its presence on every node (a
/// page), its history's size and its rate.
async fn room_page(
    state: &State,
    board: &Board,
    room: &str,
    from: usize,
    limit: usize,
) -> Response<Full<Bytes>> {
    let here = state.hub.room(room).map(|r| r.members_page(from, limit));
    let presence = match state.broker.presence(room).get().await {
        Ok(p) => p,
        Err(e) => return unavailable(&e),
    };
    let history = match state.broker.history(room, None, HISTORY_MAX).get().await {
        Ok(h) => h,
        Err(e) => return unavailable(&e),
    };
    if here.is_none() && presence.is_none() && history.is_none() {
        return no_room();
    }
    let (page, total) = here.unwrap_or_default();
    let members: Vec<Value> = page
        .iter()
        .map(|m| {
            json!({
                "conn": m.conn,
                "wire": wire_name(m.wire),
                "nick": &*m.nick,
                "user": m.user.as_deref(),
            })
        })
        .collect();
    let presence = presence.unwrap_or_default();
    let presence_page: Vec<Value> = presence
        .iter()
        .skip(from)
        .take(limit)
        .map(|m| json!({"user": m.user.as_deref(), "nick": &*m.nick, "conns": m.conns}))
        .collect();
    let history = history.map(|h| {
        json!({
            "epoch": &*h.epoch,
            "kept": h.publications.len(),
            "capped": h.publications.len() == HISTORY_MAX,
            "latest_offset": h.publications.last().map(|p| p.offset),
        })
    });
    api_ok(json!({
        "room": room,
        "node": state.broker.node(),
        "from": from,
        "limit": limit,
        "here": {"total": total, "members": members},
        "presence": {
            "total": presence.len(),
            "conns": presence.iter().map(|m| m.conns).sum::<usize>(),
            "members": presence_page,
        },
        "history": history,
        "rate": board.room_rate(room).map(super::round),
    }))
}
