//! What scripts see: the `Conn` type passed to every hook, the `Request`
//! type passed to `on_handshake`, and the actions their methods record.
//! Methods never touch sockets or other connections: they append an
//! [`Action`], and the session carries the actions out after the hook returns
//! (or discards them if the hook failed).

use std::sync::{Arc, Mutex};

use rhai::{Array, Blob, Dynamic, Engine, EvalAltResult, ImmutableString, Map};

use crate::auth::Identity;
use crate::frame;
use crate::payload::Payload;
use crate::registry::ConnId;

/// Something a hook asked for.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Send to the calling connection.
    Reply(Payload),
    /// Publish to the current room, the caller included.
    Broadcast(Payload),
    /// Publish to the current room, except the caller.
    BroadcastOthers(Payload),
    /// Publish to another room the connection is in.
    Publish(String, Payload),
    /// Send to the members of the current room with this nickname.
    SendTo(String, Payload),
    /// Send to one connection, by id.
    SendToConn(ConnId, Payload),
    /// Send to every connection of a user.
    SendToUser(String, Payload),
    /// Answer with a roomcast.v1 error (code, reason).
    Error(String, String),
    /// Drop the message on purpose (a roomcast.v1 publish gets `dropped`).
    Drop,
    /// Close the calling connection after what is already queued.
    Close(u16, String),
    /// The connection's nickname changed (already visible to later hooks).
    SetNick(ImmutableString),
}

/// Per-connection script state is capped: entries, and bytes as JSON.
const STATE_MAX_ENTRIES: usize = 64;
const STATE_MAX_BYTES: usize = 16 * 1024;

/// What the upgrade request said, as scripts see it: the client's address,
/// query parameters (`token` left out), and headers (credentials left out).
///
/// Every connection keeps one for as long as it lives, and few scripts ever
/// look at it, so it is stored compactly — all names and values in one
/// string — and turned into Rhai maps only when a script asks.
#[derive(Clone, Default)]
pub struct RequestInfo {
    remote_addr: Option<std::net::IpAddr>,
    /// Every query pair, then every header pair, back to back.
    text: Box<str>,
    /// Where each pair ends in `text`: (end of the name, end of the value).
    /// A pair starts where the previous one ended.
    pairs: Box<[(u32, u32)]>,
    /// How many of `pairs` are query parameters (the rest are headers).
    queries: usize,
}

/// Headers scripts never see: credentials and handshake secrets.
const HIDDEN_HEADERS: [&str; 5] = [
    "authorization",
    "cookie",
    "proxy-authorization",
    "sec-websocket-key",
    "sec-websocket-accept",
];

impl RequestInfo {
    /// Read what scripts may see of an upgrade request.
    pub fn from_request<B>(req: &hyper::Request<B>, remote: Option<std::net::SocketAddr>) -> Self {
        let mut text = String::new();
        let mut pairs = Vec::new();
        let push = |text: &mut String, pairs: &mut Vec<(u32, u32)>, name: &str, value: &str| {
            text.push_str(name);
            let name_end = text.len();
            text.push_str(value);
            // Request heads are far smaller than 4 GiB (hyper caps them).
            pairs.push((name_end as u32, text.len() as u32));
        };
        if let Some(q) = req.uri().query() {
            for (k, v) in form_urlencoded::parse(q.as_bytes()) {
                if k != "token" {
                    push(&mut text, &mut pairs, &k, &v);
                }
            }
        }
        let queries = pairs.len();
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
            push(&mut text, &mut pairs, name.as_str(), &values.join(", "));
        }
        RequestInfo {
            remote_addr: remote.map(|a| a.ip()),
            text: text.into_boxed_str(),
            pairs: pairs.into_boxed_slice(),
            queries,
        }
    }

    /// `conn.remote_addr`: the client's IP address as a string, or `()`.
    fn remote_addr(&self) -> Dynamic {
        self.remote_addr
            .map(|ip| Dynamic::from(ip.to_string()))
            .unwrap_or(Dynamic::UNIT)
    }

    /// `conn.query`: query parameters (a repeated name keeps its last value).
    fn query(&self) -> Map {
        self.map(0, self.queries)
    }

    /// `conn.headers`: headers by lower-case name, repeated ones joined with ", ".
    fn headers(&self) -> Map {
        self.map(self.queries, self.pairs.len())
    }

    fn map(&self, from: usize, to: usize) -> Map {
        let mut start = match from {
            0 => 0,
            i => self.pairs[i - 1].1 as usize,
        };
        let mut map = Map::new();
        for &(name_end, value_end) in &self.pairs[from..to] {
            let (name_end, value_end) = (name_end as usize, value_end as usize);
            map.insert(
                self.text[start..name_end].into(),
                Dynamic::from(self.text[name_end..value_end].to_string()),
            );
            start = value_end;
        }
        map
    }
}

/// The connection as scripts see it (`conn` in every hook). Cheap to clone:
/// Rhai clones arguments, and every clone shares the same state.
#[derive(Clone)]
pub struct ScriptConn(Arc<ConnState>);

struct ConnState {
    id: ConnId,
    seq: u64,
    route: ImmutableString,
    /// The token's subject, or `()`.
    user: Dynamic,
    /// The token's claims (a map), or `()`.
    claims: Dynamic,
    request: RequestInfo,
    // A std Mutex: only the connection's own task calls hooks, so it is never
    // contended; it exists because Rhai's `sync` feature needs `Send + Sync`.
    call: Mutex<CallState>,
}

struct CallState {
    nick: ImmutableString,
    pending_nick: Option<ImmutableString>,
    /// The room of the message (or join/leave) being handled.
    room: ImmutableString,
    /// Every room the connection is in.
    rooms: Vec<ImmutableString>,
    /// `conn.state`: survives between calls.
    state: Map,
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
        ScriptConn::with_request(id, seq, route, nick, identity, RequestInfo::default())
            .in_room(room)
    }

    /// A connection with what its upgrade request said; in no room yet.
    pub fn with_request(
        id: ConnId,
        seq: u64,
        route: &str,
        nick: &str,
        identity: Option<&Identity>,
        request: RequestInfo,
    ) -> ScriptConn {
        let (user, claims) = identity_values(identity);
        ScriptConn(Arc::new(ConnState {
            id,
            seq,
            route: route.into(),
            user,
            claims,
            request,
            call: Mutex::new(CallState {
                nick: nick.into(),
                pending_nick: None,
                room: ImmutableString::new(),
                rooms: Vec::new(),
                state: Map::new(),
                actions: Vec::new(),
            }),
        }))
    }

    fn in_room(self, room: &str) -> ScriptConn {
        self.joined(room);
        self.set_room(room);
        self
    }

    /// The current nickname.
    pub fn nick(&self) -> ImmutableString {
        let st = self.state();
        st.pending_nick.clone().unwrap_or_else(|| st.nick.clone())
    }

    /// The room the next hook call is about (`conn.room`).
    pub fn set_room(&self, room: &str) {
        self.state().room = room.into();
    }

    /// The connection entered `room` (`conn.rooms`).
    pub fn joined(&self, room: &str) {
        let mut st = self.state();
        if !st.rooms.iter().any(|r| r == room) {
            st.rooms.push(room.into());
        }
    }

    /// The connection left `room`.
    pub fn left(&self, room: &str) {
        self.state().rooms.retain(|r| r != room);
    }

    /// Change the nickname from outside a hook (a roomcast.v1 `nick` command).
    pub fn rename(&self, nick: &str) {
        self.state().nick = nick.into();
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

    fn set_state(&self, map: Map) -> RhaiResult<()> {
        if map.len() > STATE_MAX_ENTRIES {
            return Err(format!("conn.state holds at most {STATE_MAX_ENTRIES} entries").into());
        }
        let size = serde_json::to_string(&Dynamic::from_map(map.clone()))
            .map(|s| s.len())
            .unwrap_or(usize::MAX);
        if size > STATE_MAX_BYTES {
            return Err(
                format!("conn.state holds at most {STATE_MAX_BYTES} bytes (as JSON)").into(),
            );
        }
        self.state().state = map;
        Ok(())
    }
}

type RhaiResult<T> = Result<T, Box<EvalAltResult>>;

/// Turn a script value into a payload: strings → text, blobs → binary, maps
/// and arrays → JSON, other values → their text form.
pub fn to_payload(value: Dynamic) -> RhaiResult<Payload> {
    if value.is_unit() {
        return Err("cannot send () — pass a string, blob, map or array".into());
    }
    if value.is_string() {
        let s = value.cast::<ImmutableString>();
        return Ok(Payload::Text(s.as_str().into()));
    }
    if value.is_blob() {
        let b = value.cast::<Blob>();
        return Ok(Payload::Binary(b.into()));
    }
    if value.is_map() || value.is_array() {
        let json = serde_json::to_string(&value)
            .map_err(|e| -> Box<EvalAltResult> { format!("cannot encode as JSON: {e}").into() })?;
        return Ok(Payload::Json(json.into()));
    }
    Ok(Payload::Text(value.to_string().into()))
}

fn valid_nick(nick: &str) -> bool {
    !nick.is_empty() && nick.len() <= 64 && !nick.chars().any(char::is_control)
}

/// Whether a nickname is acceptable: 1-64 bytes, no control characters.
pub fn is_valid_nick(nick: &str) -> bool {
    valid_nick(nick)
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
    info: RequestInfo,
    user: Dynamic,
    claims: Dynamic,
    rejection: Mutex<Option<(u16, String)>>,
}

impl ScriptRequest {
    /// Describe an upgrade request on `route` for room `room` (full name).
    pub fn new<B>(
        req: &hyper::Request<B>,
        route: &str,
        room: &str,
        remote: Option<std::net::SocketAddr>,
        identity: Option<&Identity>,
    ) -> ScriptRequest {
        let (user, claims) = identity_values(identity);
        ScriptRequest(Arc::new(RequestState {
            path: req.uri().path().into(),
            route: route.into(),
            room: room.into(),
            info: RequestInfo::from_request(req, remote),
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
    // Wall-clock milliseconds since the Unix epoch (slow modes, timestamps).
    engine.register_fn("now_ms", || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0)
    });
    engine
        .register_type_with_name::<ScriptRequest>("Request")
        .register_get("path", |r: &mut ScriptRequest| r.0.path.clone())
        .register_get("route", |r: &mut ScriptRequest| r.0.route.clone())
        .register_get("room", |r: &mut ScriptRequest| r.0.room.clone())
        .register_get("query", |r: &mut ScriptRequest| r.0.info.query())
        .register_get("headers", |r: &mut ScriptRequest| r.0.info.headers())
        .register_get("remote_addr", |r: &mut ScriptRequest| {
            r.0.info.remote_addr()
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
        .register_get("room", |c: &mut ScriptConn| c.state().room.clone())
        .register_get("rooms", |c: &mut ScriptConn| -> Array {
            c.state().rooms.iter().cloned().map(Dynamic::from).collect()
        })
        .register_get("remote_addr", |c: &mut ScriptConn| {
            c.0.request.remote_addr()
        })
        .register_get("query", |c: &mut ScriptConn| c.0.request.query())
        .register_get("headers", |c: &mut ScriptConn| c.0.request.headers())
        .register_get_set(
            "state",
            |c: &mut ScriptConn| c.state().state.clone(),
            |c: &mut ScriptConn, map: Map| c.set_state(map),
        )
        .register_fn("get", |c: &mut ScriptConn, key: ImmutableString| {
            c.state()
                .state
                .get(key.as_str())
                .cloned()
                .unwrap_or(Dynamic::UNIT)
        })
        .register_fn(
            "set",
            |c: &mut ScriptConn, key: ImmutableString, value: Dynamic| -> RhaiResult<()> {
                let mut map = c.state().state.clone();
                map.insert(key.as_str().into(), value);
                c.set_state(map)
            },
        )
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
                c.push(Action::Reply(to_payload(v)?));
                Ok(())
            },
        )
        .register_fn(
            "broadcast",
            |c: &mut ScriptConn, v: Dynamic| -> RhaiResult<()> {
                c.push(Action::Broadcast(to_payload(v)?));
                Ok(())
            },
        )
        .register_fn(
            "broadcast_others",
            |c: &mut ScriptConn, v: Dynamic| -> RhaiResult<()> {
                c.push(Action::BroadcastOthers(to_payload(v)?));
                Ok(())
            },
        )
        .register_fn(
            "publish",
            |c: &mut ScriptConn, room: ImmutableString, v: Dynamic| -> RhaiResult<()> {
                c.push(Action::Publish(room.to_string(), to_payload(v)?));
                Ok(())
            },
        )
        .register_fn(
            "send_to",
            |c: &mut ScriptConn, nick: ImmutableString, v: Dynamic| -> RhaiResult<()> {
                c.push(Action::SendTo(nick.to_string(), to_payload(v)?));
                Ok(())
            },
        )
        .register_fn(
            "send_to_conn",
            |c: &mut ScriptConn, id: i64, v: Dynamic| -> RhaiResult<()> {
                let id = ConnId::try_from(id)
                    .map_err(|_| -> Box<EvalAltResult> { "invalid connection id".into() })?;
                c.push(Action::SendToConn(id, to_payload(v)?));
                Ok(())
            },
        )
        .register_fn(
            "send_to_user",
            |c: &mut ScriptConn, user: ImmutableString, v: Dynamic| -> RhaiResult<()> {
                c.push(Action::SendToUser(user.to_string(), to_payload(v)?));
                Ok(())
            },
        )
        .register_fn("drop", |c: &mut ScriptConn| c.push(Action::Drop))
        .register_fn(
            "error",
            |c: &mut ScriptConn,
             code: ImmutableString,
             reason: ImmutableString|
             -> RhaiResult<()> {
                let ok = !code.is_empty()
                    && code.len() <= 32
                    && code
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b == b'_' || b.is_ascii_digit());
                if !ok {
                    return Err(format!("invalid error code {code:?}: 1-32 of a-z 0-9 _").into());
                }
                let reason = frame::truncate_utf8(&reason, 200).to_string();
                c.push(Action::Error(code.to_string(), reason));
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
    fn request_info_keeps_what_scripts_may_see() {
        let req = hyper::Request::builder()
            .uri("/chat/lobby?lang=fr&token=secret&x=1&x=2&empty=&sp=a%20b")
            .header("x-trace", "t1")
            .header("accept", "a")
            .header("accept", "b")
            .header("authorization", "Bearer secret")
            .header("cookie", "c=1")
            .header("sec-websocket-key", "k")
            .body(())
            .unwrap();
        let info = RequestInfo::from_request(&req, Some("[::1]:9".parse().unwrap()));
        let query = info.query();
        let get = |m: &Map, k: &str| m.get(k).map(|v| v.to_string());
        assert_eq!(query.len(), 4, "{query:?}");
        assert_eq!(get(&query, "lang").as_deref(), Some("fr"));
        assert_eq!(
            get(&query, "x").as_deref(),
            Some("2"),
            "the last value wins"
        );
        assert_eq!(get(&query, "empty").as_deref(), Some(""));
        assert_eq!(get(&query, "sp").as_deref(), Some("a b"));
        assert!(!query.contains_key("token"));
        let headers = info.headers();
        assert_eq!(headers.len(), 2, "{headers:?}");
        assert_eq!(get(&headers, "x-trace").as_deref(), Some("t1"));
        assert_eq!(get(&headers, "accept").as_deref(), Some("a, b"));
        assert_eq!(info.remote_addr().to_string(), "::1");

        let bare = RequestInfo::from_request(&hyper::Request::new(()), None);
        assert!(bare.query().is_empty() && bare.headers().is_empty());
        assert!(bare.remote_addr().is_unit());
    }

    #[test]
    fn values_become_payloads() {
        assert_eq!(to_payload("hé".into()).unwrap(), Payload::Text("hé".into()));
        let blob: Blob = vec![1, 2, 3];
        assert_eq!(
            to_payload(Dynamic::from_blob(blob)).unwrap(),
            Payload::Binary(vec![1u8, 2, 3].into())
        );
        assert_eq!(
            to_payload(Dynamic::from(42_i64)).unwrap(),
            Payload::Text("42".into())
        );
        assert!(to_payload(Dynamic::UNIT).is_err());
    }

    #[test]
    fn state_is_capped() {
        let c = ScriptConn::new(1, 1, "chat", "chat/lobby", "user1");
        let mut big = Map::new();
        for i in 0..65 {
            big.insert(format!("k{i}").into(), Dynamic::from(1_i64));
        }
        assert!(c.set_state(big).is_err());
        let mut map = Map::new();
        map.insert("n".into(), Dynamic::from("x".repeat(20_000)));
        assert!(c.set_state(map).is_err());
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
