//! Who may open a session: [`admit`] checks a request for a route and room
//! (draining, Origin, connection caps, token, the token's rooms, the route's
//! `on_handshake` hook, a full room) and returns [`Admitted`] or a
//! [`Refusal`]. It knows no transport: the WebSocket upgrade maps a refusal
//! to an HTTP status (another transport to its own error). Checks run
//! cheapest first; each refusal is counted and logged with its reason.

use std::net::SocketAddr;
use std::sync::Arc;

use hyper::header::ORIGIN;
use hyper::{HeaderMap, Uri};

use crate::auth::{self, AuthError, Identity};
use crate::caps::{Over, Slot};
use crate::config::AccessConfig;
use crate::deflate::Deflate;
use crate::metrics::RejectReason;
use crate::script::{Hook, Outcome, RequestInfo, ScriptRequest};
use crate::state::{Route, State};
use crate::wire::{Position, Wire};

/// The client's address, as a request extension. `serve` sets it; an embedding
/// host that wants per-IP caps and `req.remote_addr` in scripts inserts it too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerAddr(pub SocketAddr);

/// What admission reads of a request: its URI, headers and peer.
#[derive(Clone, Copy)]
pub struct Request<'a> {
    /// The request's URI (path and query).
    pub uri: &'a Uri,
    /// Its headers.
    pub headers: &'a HeaderMap,
    /// The client's address, when known.
    pub peer: Option<SocketAddr>,
    /// A token given some other way than the URI and headers (a socket.io
    /// connect's `auth`); taken before those.
    pub token: Option<&'a str>,
}

/// An admitted connection, ready for its session.
pub struct Admitted {
    /// Its route.
    pub route: Arc<Route>,
    /// The room a raw connection joins (`route/room`); v1 connections join by command.
    pub room: String,
    /// Its token's identity, if it sent one.
    pub identity: Option<Identity>,
    /// What scripts may see of the request.
    pub request: RequestInfo,
    /// What its client expects on the wire.
    pub wire: Wire,
    /// Its place under the connection caps, held for the session's life.
    pub slot: Slot,
    /// Its room messages carry their offsets (a socket.io client that
    /// can recover its state; its transport sets this).
    pub offsets: bool,
    /// The session it takes up again (a socket.io client's recovery; its
    /// transport sets this).
    pub restore: Option<Box<Restore>>,
    /// Its client takes broadcasts compressed with the server's window
    /// (permessage-deflate agreed with 15 bits; its transport sets this).
    pub deflate: Option<Arc<Deflate>>,
}

/// What a session takes up again of an earlier one: its nickname, and
/// where it was in each of its rooms (the first its home room).
#[derive(Debug, Clone, PartialEq)]
pub struct Restore {
    /// Its nickname.
    pub nick: String,
    /// Its home room's position (where its replay starts).
    pub home: Position,
    /// The rooms it had joined by command, with their positions.
    pub rooms: Vec<(String, Position)>,
}

/// Why a connection was not admitted: a counter label, an HTTP-style status,
/// a reason for the client, and (for a missing or bad token) a
/// `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The `roomcast_http_rejections_total` reason.
    pub reason: RejectReason,
    /// The status that says it (503, 403, 429, 401, or a script's choice).
    pub status: u16,
    /// One line for the client.
    pub message: String,
    /// The `WWW-Authenticate` value, for 401s.
    pub challenge: Option<String>,
}

impl Refusal {
    fn new(reason: RejectReason, status: u16, message: impl Into<String>) -> Refusal {
        Refusal {
            reason,
            status,
            message: message.into(),
            challenge: None,
        }
    }
}

/// Admit a request for a session on `route` in room `room` (the short name),
/// for a client on `wire`; count and log a refusal.
pub(crate) fn admit(
    state: &State,
    req: Request<'_>,
    route: Arc<Route>,
    room: &str,
    wire: Wire,
) -> Result<Admitted, Refusal> {
    check(state, req, route, room, wire).inspect_err(|r| {
        state.metrics.http_rejection(r.reason);
        tracing::debug!(status = r.status, "connection refused: {}", r.message);
    })
}

fn check(
    state: &State,
    req: Request<'_>,
    route: Arc<Route>,
    room: &str,
    wire: Wire,
) -> Result<Admitted, Refusal> {
    if state.is_draining() {
        return Err(Refusal::new(
            RejectReason::Draining,
            503,
            "server is shutting down",
        ));
    }
    let origin = req.headers.get(ORIGIN).and_then(|v| v.to_str().ok());
    if !origin_allowed(&state.config.access, origin) {
        return Err(Refusal::new(
            RejectReason::Origin,
            403,
            format!("origin {} is not allowed", origin.unwrap_or("(none)")),
        ));
    }
    let slot = state
        .caps
        .take(req.peer.map(|p| p.ip()))
        .map_err(|over| match over {
            Over::TooManyConnections => Refusal::new(
                RejectReason::TooManyConnections,
                503,
                "too many connections",
            ),
            Over::TooManyFromIp => Refusal::new(
                RejectReason::TooManyFromIp,
                429,
                "too many connections from this address",
            ),
        })?;

    let room = format!("{}/{}", route.name, room);
    let identity = match &state.auth {
        None => None,
        Some(a) => a
            .check(
                req.token
                    .map(str::to_string)
                    .or_else(|| auth::token(req.uri, req.headers))
                    .as_deref(),
            )
            .map_err(|e| {
                let challenge = match &e {
                    AuthError::Missing => "Bearer".to_string(),
                    other => format!(
                        "Bearer error=\"invalid_token\", error_description=\"{}\"",
                        other.to_string().replace('"', "'")
                    ),
                };
                Refusal {
                    challenge: Some(challenge),
                    ..Refusal::new(RejectReason::Unauthorized, 401, e.to_string())
                }
            })?,
    };
    if identity.as_ref().is_some_and(|id| !id.may_join(&room)) {
        return Err(Refusal::new(
            RejectReason::RoomForbidden,
            403,
            format!("this token may not join {room}"),
        ));
    }

    let request = RequestInfo::new(req.uri, req.headers, req.peer);
    let handshake_hook = route
        .script
        .as_ref()
        .filter(|s| s.current().has(Hook::Handshake));
    if let Some(script) = handshake_hook {
        let script_req = ScriptRequest::new(
            request.clone(),
            req.uri.path(),
            &route.name,
            &room,
            identity.as_ref(),
        );
        match state.scripts.handshake(script, &script_req) {
            Outcome::Ran | Outcome::Missing => {
                if let Some((status, reason)) = script_req.rejection() {
                    return Err(Refusal::new(RejectReason::ScriptRefused, status, reason));
                }
            }
            Outcome::Failed(err) => {
                // A broken handshake hook must not let everyone in, nor crash:
                // refuse with 500 and say why in the log.
                tracing::error!(route = %route.name, "script error: {err}");
                return Err(Refusal::new(
                    RejectReason::ScriptRefused,
                    500,
                    "the route's on_handshake hook failed",
                ));
            }
        }
    }

    // A client that enters its room on connecting (raw, socket.io) is
    // refused now when the room is full (a v1 client hears `room_full` when
    // it asks to join).
    if wire.enters_home_room() {
        let cap = state.policies.for_room(&room).max_members;
        if cap > 0 && state.hub.room(&room).is_some_and(|r| r.len() >= cap) {
            return Err(Refusal::new(
                RejectReason::RoomFull,
                503,
                format!("{room} is full"),
            ));
        }
    }
    Ok(Admitted {
        route,
        room,
        identity,
        request,
        wire,
        slot,
        offsets: false,
        restore: None,
        deflate: None,
    })
}

/// Is a request with this `Origin` header (if any) allowed?
pub fn origin_allowed(access: &AccessConfig, origin: Option<&str>) -> bool {
    if access.allowed_origins.is_empty() {
        return true;
    }
    let Some(origin) = origin else {
        return access.allow_missing_origin;
    };
    access
        .allowed_origins
        .iter()
        .any(|pattern| origin_matches(pattern, origin))
}

/// `pattern` is `*`, an exact origin (`https://a.example.com`), or a host
/// pattern with an optional scheme (`*.example.com`, `https://*.example.com`).
/// A pattern without a scheme is a web page's: `http` or `https` only (never
/// `javascript://a.example.com`, `chrome-extension://…`).
fn origin_matches(pattern: &str, origin: &str) -> bool {
    if pattern == "*" || pattern.eq_ignore_ascii_case(origin) {
        return true;
    }
    let (p_scheme, p_host) = split_origin(pattern);
    let (o_scheme, o_host) = split_origin(origin);
    let Some(o_scheme) = o_scheme else {
        return false;
    };
    let scheme_ok = match p_scheme {
        Some(ps) => o_scheme.eq_ignore_ascii_case(ps),
        None => ["http", "https"]
            .iter()
            .any(|web| o_scheme.eq_ignore_ascii_case(web)),
    };
    if !scheme_ok {
        return false;
    }
    let o_host = o_host.to_ascii_lowercase();
    let p_host = p_host.to_ascii_lowercase();
    match p_host.strip_prefix("*.") {
        Some(suffix) => o_host.ends_with(&format!(".{suffix}")),
        None => o_host == p_host,
    }
}

fn split_origin(s: &str) -> (Option<&str>, &str) {
    match s.split_once("://") {
        Some((scheme, host)) => (Some(scheme), host),
        None => (None, s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access(list: &[&str]) -> AccessConfig {
        AccessConfig {
            allowed_origins: list.iter().map(|s| s.to_string()).collect(),
            allow_missing_origin: false,
        }
    }

    #[test]
    fn empty_list_allows_everything() {
        assert!(origin_allowed(
            &AccessConfig::default(),
            Some("https://evil.test")
        ));
        assert!(origin_allowed(&AccessConfig::default(), None));
    }

    #[test]
    fn exact_and_wildcard_origins() {
        let a = access(&[
            "https://chat.example.com",
            "*.trusted.org",
            "http://localhost:3000",
        ]);
        assert!(origin_allowed(&a, Some("https://chat.example.com")));
        assert!(origin_allowed(&a, Some("HTTPS://CHAT.example.com")));
        assert!(!origin_allowed(&a, Some("http://chat.example.com")));
        assert!(!origin_allowed(
            &a,
            Some("https://chat.example.com.evil.test")
        ));
        assert!(origin_allowed(&a, Some("https://a.trusted.org")));
        assert!(origin_allowed(&a, Some("http://b.c.trusted.org")));
        // Without a scheme, a pattern is a web page's: http or https.
        for other in [
            "javascript://a.trusted.org",
            "chrome-extension://a.trusted.org",
            "a.trusted.org",
        ] {
            assert!(!origin_allowed(&a, Some(other)), "{other}");
        }
        assert!(!origin_allowed(&a, Some("https://trusted.org.evil.test")));
        assert!(!origin_allowed(&a, Some("https://eviltrusted.org")));
        assert!(origin_allowed(&a, Some("http://localhost:3000")));
        assert!(!origin_allowed(&a, Some("http://localhost:3001")));
        assert!(!origin_allowed(&a, Some("null")));
        assert!(!origin_allowed(&a, None));
    }
}
