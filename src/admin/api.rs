//! The HTTP API's `/api/admin/` endpoints (docs/http-api.md): what the
//! operator view reads besides its live socket, for scripts too. A room's
//! members and a search are asked of every node (the broker's
//! `ask_nodes`), so any node serves them. Acting (publish, disconnect,
//! history) goes through the API's ordinary endpoints.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Response, StatusCode};
use serde_json::{json, Value};

use std::collections::BTreeMap;

use super::Board;
use crate::broker::{NodeAnswer, NodeQuery, HISTORY_MAX, PAGE_MAX};
use crate::http::{api_error, api_ok, bad_request, no_room, unavailable};
use crate::state::State;

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
            api_ok(search(state, &prefix, limit).await)
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

/// Rooms by name prefix on every node (each answers with at most
/// `limit`), members summed, by name.
async fn search(state: &State, prefix: &str, limit: usize) -> Value {
    let query = NodeQuery::Rooms {
        prefix: prefix.to_string(),
        limit,
    };
    let (answers, partial) = every_node(state, &query).await;
    let mut rooms: BTreeMap<String, usize> = BTreeMap::new();
    let mut more = false;
    for (_, answer) in answers {
        if let NodeAnswer::Rooms {
            rooms: found,
            more: m,
        } = answer
        {
            more |= m;
            for (room, members) in found {
                *rooms.entry(room).or_default() += members;
            }
        }
    }
    more |= rooms.len() > limit;
    let rooms: Vec<Value> = rooms
        .into_iter()
        .take(limit)
        .map(|(room, members)| json!({"room": room, "members": members}))
        .collect();
    json!({"prefix": prefix, "rooms": rooms, "more": more, "partial": partial})
}

/// This node's answer to `query` and every other node's; whether some
/// nodes could not be asked (the broker is unreachable: this node's only).
async fn every_node(state: &State, query: &NodeQuery) -> (Vec<(u16, NodeAnswer)>, bool) {
    let mut answers = vec![(state.broker.node(), state.hub.answer(query))];
    let partial = match state.broker.ask_nodes(query).get().await {
        Ok(others) => {
            answers.extend(others);
            false
        }
        Err(_) => true,
    };
    answers.sort_by_key(|(node, _)| *node);
    (answers, partial)
}

/// One room: its members on every node (a page from each), its presence
/// (a page), its history's size and its rate.
async fn room_page(
    state: &State,
    board: &Board,
    room: &str,
    from: usize,
    limit: usize,
) -> Response<Full<Bytes>> {
    let query = NodeQuery::Members {
        room: room.to_string(),
        from,
        limit,
    };
    let (answers, partial) = every_node(state, &query).await;
    let mut total = 0;
    let by_node: Vec<Value> = answers
        .into_iter()
        .filter_map(|(node, answer)| match answer {
            NodeAnswer::Members { total: t, members } if t > 0 => {
                total += t;
                Some(json!({"node": node, "total": t, "members": members}))
            }
            _ => None,
        })
        .collect();
    let presence = match state.broker.presence(room).get().await {
        Ok(p) => p,
        Err(e) => return unavailable(&e),
    };
    let history = match state.broker.history(room, None, HISTORY_MAX).get().await {
        Ok(h) => h,
        Err(e) => return unavailable(&e),
    };
    if total == 0 && presence.is_none() && history.is_none() {
        return no_room();
    }
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
        "members": {"total": total, "by_node": by_node, "partial": partial},
        "presence": {
            "total": presence.len(),
            "conns": presence.iter().map(|m| m.conns).sum::<usize>(),
            "members": presence_page,
        },
        "history": history,
        "rate": board.room_rate(room).map(super::round),
    }))
}
