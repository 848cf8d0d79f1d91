//! What scripts see: the `Conn` type passed to every hook, and the actions its
//! methods record. Methods never touch sockets or locks outside the connection's
//! own state: they append an [`Action`], and the session carries the actions
//! out after the hook returns (or discards them if the hook failed).

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use rhai::{Blob, Dynamic, Engine, EvalAltResult, ImmutableString, Map};

use crate::auth::Identity;
use crate::frame;
use crate::registry::ConnId;

/// Something a hook asked for. Payloads are already encoded frames.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Send to the calling connection.
    Reply(Bytes),
    /// Send to every member of the connection's room, itself included.
    Broadcast(Bytes),
    /// Send to every member of the room except the calling connection.
    BroadcastOthers(Bytes),
    /// Send to the room members with this nickname.
    SendTo(String, Bytes),
    /// Close the calling connection after what is already queued.
    Close(u16, String),
    /// The connection's nickname changed (already visible to later hooks).
    SetNick(ImmutableString),
}

/// The connection as scripts see it (`conn` in every hook). Cheap to clone:
/// Rhai clones arguments, and every clone shares the same state.
#[derive(Clone)]
pub struct ScriptConn(Arc<ConnState>);

struct ConnState {
    id: ConnId,
    seq: u64,
    route: ImmutableString,
    room: ImmutableString,
    /// The token's subject, or `()`.
    user: Dynamic,
    /// The token's claims (a map), or `()`.
    claims: Dynamic,
    // A std Mutex: only the connection's own reader calls hooks, so it is never
    // contended; it exists because Rhai's `sync` feature needs `Send + Sync`.
    call: Mutex<CallState>,
}

struct CallState {
    nick: ImmutableString,
    pending_nick: Option<ImmutableString>,
    actions: Vec<Action>,
}

impl ScriptConn {
    /// The script view of connection `id`, the `seq`-th on `route`, in `room`.
    pub fn new(id: ConnId, seq: u64, route: &str, room: &str, nick: &str) -> ScriptConn {
        ScriptConn::with_identity(id, seq, route, room, nick, None)
    }

    /// The same, for a connection authenticated as `identity`.
    pub fn with_identity(
        id: ConnId,
        seq: u64,
        route: &str,
        room: &str,
        nick: &str,
        identity: Option<&Identity>,
    ) -> ScriptConn {
        let (user, claims) = identity_values(identity);
        ScriptConn(Arc::new(ConnState {
            id,
            seq,
            route: route.into(),
            room: room.into(),
            user,
            claims,
            call: Mutex::new(CallState {
                nick: nick.into(),
                pending_nick: None,
                actions: Vec::new(),
            }),
        }))
    }

    /// The current nickname.
    pub fn nick(&self) -> ImmutableString {
        let st = self.state();
        st.pending_nick.clone().unwrap_or_else(|| st.nick.clone())
    }

    /// Take the actions recorded by the hook that just returned, committing its
    /// nickname change.
    pub(crate) fn commit(&self, out: &mut Vec<Action>) {
        let mut st = self.state();
        if let Some(nick) = st.pending_nick.take() {
            st.nick = nick;
        }
        out.append(&mut st.actions);
    }

    /// Forget what a failed hook recorded.
    pub(crate) fn discard(&self) {
        let mut st = self.state();
        st.pending_nick = None;
        st.actions.clear();
    }

    fn push(&self, action: Action) {
        self.state().actions.push(action);
    }

    fn state(&self) -> std::sync::MutexGuard<'_, CallState> {
        self.0.call.lock().unwrap_or_else(|e| e.into_inner())
    }
}

type RhaiResult<T> = Result<T, Box<EvalAltResult>>;

/// Turn a script value into a frame: strings → text, blobs → binary, maps and
/// arrays → JSON text, other values → their text form.
pub fn to_frame(value: Dynamic) -> RhaiResult<Bytes> {
    if value.is_unit() {
        return Err("cannot send () — pass a string, blob, map or array".into());
    }
    if value.is_string() {
        let s = value.cast::<ImmutableString>();
        return Ok(frame::text(&s));
    }
    if value.is_blob() {
        let b = value.cast::<Blob>();
        return Ok(frame::binary(&b));
    }
    if value.is_map() || value.is_array() {
        let json = serde_json::to_string(&value)
            .map_err(|e| -> Box<EvalAltResult> { format!("cannot encode as JSON: {e}").into() })?;
        return Ok(frame::text(&json));
    }
    Ok(frame::text(&value.to_string()))
}

fn valid_nick(nick: &str) -> bool {
    !nick.is_empty() && nick.len() <= 64 && !nick.chars().any(char::is_control)
}

fn identity_values(identity: Option<&Identity>) -> (Dynamic, Dynamic) {
    match identity {
        None => (Dynamic::UNIT, Dynamic::UNIT),
        Some(id) => (
            Dynamic::from(ImmutableString::from(id.user.as_str())),
            rhai::serde::to_dynamic(&id.claims).unwrap_or(Dynamic::UNIT),
        ),
    }
}

/// The upgrade request as `on_handshake(req)` sees it. `req.reject(...)`
/// refuses the connection with an HTTP error before the upgrade.
#[derive(Clone)]
pub struct ScriptRequest(Arc<RequestState>);

struct RequestState {
    path: ImmutableString,
    route: ImmutableString,
    room: ImmutableString,
    query: Map,
    headers: Map,
    remote_addr: Dynamic,
    user: Dynamic,
    claims: Dynamic,
    rejection: Mutex<Option<(u16, String)>>,
}

/// Headers scripts never see: credentials and handshake secrets.
const HIDDEN_HEADERS: [&str; 5] = [
    "authorization",
    "cookie",
    "proxy-authorization",
    "sec-websocket-key",
    "sec-websocket-accept",
];

impl ScriptRequest {
    /// Describe an upgrade request on `route` for room `room` (full name).
    pub fn new<B>(
        req: &hyper::Request<B>,
        route: &str,
        room: &str,
        remote: Option<std::net::SocketAddr>,
        identity: Option<&Identity>,
    ) -> ScriptRequest {
        let mut query = Map::new();
        if let Some(q) = req.uri().query() {
            for (k, v) in form_urlencoded::parse(q.as_bytes()) {
                if k != "token" {
                    query.insert(k.as_ref().into(), Dynamic::from(v.into_owned()));
                }
            }
        }
        let mut headers = Map::new();
        for name in req.headers().keys() {
            if HIDDEN_HEADERS.contains(&name.as_str()) {
                continue;
            }
            let values: Vec<&str> = req
                .headers()
                .get_all(name)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .collect();
            headers.insert(name.as_str().into(), Dynamic::from(values.join(", ")));
        }
        let (user, claims) = identity_values(identity);
        ScriptRequest(Arc::new(RequestState {
            path: req.uri().path().into(),
            route: route.into(),
            room: room.into(),
            query,
            headers,
            remote_addr: remote
                .map(|a| Dynamic::from(a.ip().to_string()))
                .unwrap_or(Dynamic::UNIT),
            user,
            claims,
            rejection: Mutex::new(None),
        }))
    }

    /// The HTTP status and reason if the hook refused the connection.
    pub fn rejection(&self) -> Option<(u16, String)> {
        self.0
            .rejection
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn reject(&self, status: i64, reason: &str) -> RhaiResult<()> {
        let status = u16::try_from(status)
            .ok()
            .filter(|s| (400..=499).contains(s) || *s == 503)
            .ok_or_else(|| -> Box<EvalAltResult> {
                format!("invalid status {status}: use 400-499 or 503").into()
            })?;
        let reason = frame::truncate_utf8(reason, 200).to_string();
        *self.0.rejection.lock().unwrap_or_else(|e| e.into_inner()) = Some((status, reason));
        Ok(())
    }
}

/// Register the `Conn` and `Request` types and their methods on `engine`.
pub fn register(engine: &mut Engine) {
    engine
        .register_type_with_name::<ScriptRequest>("Request")
        .register_get("path", |r: &mut ScriptRequest| r.0.path.clone())
        .register_get("route", |r: &mut ScriptRequest| r.0.route.clone())
        .register_get("room", |r: &mut ScriptRequest| r.0.room.clone())
        .register_get("query", |r: &mut ScriptRequest| r.0.query.clone())
        .register_get("headers", |r: &mut ScriptRequest| r.0.headers.clone())
        .register_get("remote_addr", |r: &mut ScriptRequest| {
            r.0.remote_addr.clone()
        })
        .register_get("user", |r: &mut ScriptRequest| r.0.user.clone())
        .register_get("claims", |r: &mut ScriptRequest| r.0.claims.clone())
        .register_fn(
            "reject",
            |r: &mut ScriptRequest, reason: ImmutableString| r.reject(403, &reason),
        )
        .register_fn(
            "reject",
            |r: &mut ScriptRequest, status: i64, reason: ImmutableString| r.reject(status, &reason),
        );
    engine
        .register_type_with_name::<ScriptConn>("Conn")
        .register_get("user", |c: &mut ScriptConn| c.0.user.clone())
        .register_get("claims", |c: &mut ScriptConn| c.0.claims.clone())
        .register_get("id", |c: &mut ScriptConn| c.0.id as i64)
        .register_get("seq", |c: &mut ScriptConn| c.0.seq as i64)
        .register_get("route", |c: &mut ScriptConn| c.0.route.clone())
        .register_get("room", |c: &mut ScriptConn| c.0.room.clone())
        .register_get_set(
            "nick",
            |c: &mut ScriptConn| c.nick(),
            |c: &mut ScriptConn, nick: ImmutableString| -> RhaiResult<()> {
                if !valid_nick(&nick) {
                    return Err(format!(
                        "invalid nickname {nick:?}: 1-64 bytes, no control characters"
                    )
                    .into());
                }
                c.state().pending_nick = Some(nick.clone());
                c.push(Action::SetNick(nick));
                Ok(())
            },
        )
        .register_fn(
            "reply",
            |c: &mut ScriptConn, v: Dynamic| -> RhaiResult<()> {
                c.push(Action::Reply(to_frame(v)?));
                Ok(())
            },
        )
        .register_fn(
            "broadcast",
            |c: &mut ScriptConn, v: Dynamic| -> RhaiResult<()> {
                c.push(Action::Broadcast(to_frame(v)?));
                Ok(())
            },
        )
        .register_fn(
            "broadcast_others",
            |c: &mut ScriptConn, v: Dynamic| -> RhaiResult<()> {
                c.push(Action::BroadcastOthers(to_frame(v)?));
                Ok(())
            },
        )
        .register_fn(
            "send_to",
            |c: &mut ScriptConn, nick: ImmutableString, v: Dynamic| -> RhaiResult<()> {
                c.push(Action::SendTo(nick.to_string(), to_frame(v)?));
                Ok(())
            },
        )
        .register_fn("close", |c: &mut ScriptConn| {
            c.push(Action::Close(frame::close_code::NORMAL, String::new()));
        })
        .register_fn("close", |c: &mut ScriptConn, code: i64| -> RhaiResult<()> {
            c.push(Action::Close(close_code(code)?, String::new()));
            Ok(())
        })
        .register_fn(
            "close",
            |c: &mut ScriptConn, code: i64, reason: ImmutableString| -> RhaiResult<()> {
                let reason = frame::truncate_utf8(&reason, 123).to_string();
                c.push(Action::Close(close_code(code)?, reason));
                Ok(())
            },
        )
        .register_fn("to_string", |c: &mut ScriptConn| {
            format!("Conn(id={}, nick={})", c.0.id, c.nick())
        });
}

fn close_code(code: i64) -> RhaiResult<u16> {
    u16::try_from(code)
        .ok()
        .filter(|c| frame::is_script_close_code(*c))
        .ok_or_else(|| {
            format!("invalid close code {code}: use 1000, 1001, 1003, 1007-1009, 1011 or 3000-4999")
                .into()
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_become_frames() {
        assert_eq!(to_frame("hé".into()).unwrap(), frame::text("hé"));
        let blob: Blob = vec![1, 2, 3];
        assert_eq!(
            to_frame(Dynamic::from_blob(blob)).unwrap(),
            frame::binary(&[1, 2, 3])
        );
        assert_eq!(to_frame(Dynamic::from(42_i64)).unwrap(), frame::text("42"));
        assert!(to_frame(Dynamic::UNIT).is_err());
    }

    #[test]
    fn nick_change_is_visible_at_once_and_committed_only_on_success() {
        let c = ScriptConn::new(1, 1, "chat", "chat/lobby", "user1");
        c.state().pending_nick = Some("bob".into());
        assert_eq!(c.nick(), "bob");
        c.discard();
        assert_eq!(c.nick(), "user1");
        c.state().pending_nick = Some("bob".into());
        c.commit(&mut Vec::new());
        assert_eq!(c.nick(), "bob");
    }
}
