//! What the upgrade request said, as scripts see it: `conn.query`,
//! `conn.headers`, `conn.remote_addr`, and the `req` of `on_handshake`.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use hyper::{HeaderMap, Uri};
use rhai::{Dynamic, EvalAltResult, ImmutableString, Map};

use super::action::RhaiResult;
use crate::auth::Identity;
use crate::close;

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
    pub fn new(uri: &Uri, headers: &HeaderMap, remote: Option<SocketAddr>) -> Self {
        let mut text = String::new();
        let mut pairs = Vec::new();
        let push = |text: &mut String, pairs: &mut Vec<(u32, u32)>, name: &str, value: &str| {
            text.push_str(name);
            let name_end = text.len();
            text.push_str(value);
            // Request heads are far smaller than 4 GiB (hyper caps them).
            pairs.push((name_end as u32, text.len() as u32));
        };
        if let Some(q) = uri.query() {
            for (k, v) in form_urlencoded::parse(q.as_bytes()) {
                if k != "token" {
                    push(&mut text, &mut pairs, &k, &v);
                }
            }
        }
        let queries = pairs.len();
        for name in headers.keys() {
            if HIDDEN_HEADERS.contains(&name.as_str()) {
                continue;
            }
            let values: Vec<&str> = headers
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
    pub(super) fn remote_addr(&self) -> Dynamic {
        self.remote_addr
            .map(|ip| Dynamic::from(ip.to_string()))
            .unwrap_or(Dynamic::UNIT)
    }

    /// `conn.query`: query parameters (a repeated name keeps its last value).
    pub(super) fn query(&self) -> Map {
        self.map(0, self.queries)
    }

    /// `conn.headers`: headers by lower-case name, repeated ones joined with ", ".
    pub(super) fn headers(&self) -> Map {
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

/// The upgrade request as `on_handshake(req)` sees it. `req.reject(...)`
/// refuses the connection with an HTTP error before the upgrade.
#[derive(Clone)]
pub struct ScriptRequest(pub(super) Arc<RequestState>);

pub(super) struct RequestState {
    pub(super) path: ImmutableString,
    pub(super) route: ImmutableString,
    pub(super) room: ImmutableString,
    pub(super) info: RequestInfo,
    pub(super) user: Dynamic,
    pub(super) claims: Dynamic,
    pub(super) rejection: Mutex<Option<(u16, String)>>,
}

impl ScriptRequest {
    /// Describe an upgrade request for `path` on `route`, for room `room`
    /// (full name).
    pub fn new(
        info: RequestInfo,
        path: &str,
        route: &str,
        room: &str,
        identity: Option<&Identity>,
    ) -> ScriptRequest {
        let (user, claims) = identity_values(identity);
        ScriptRequest(Arc::new(RequestState {
            path: path.into(),
            route: route.into(),
            room: room.into(),
            info,
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

    pub(super) fn reject(&self, status: i64, reason: &str) -> RhaiResult<()> {
        let status = u16::try_from(status)
            .ok()
            .filter(|s| (400..=499).contains(s) || *s == 503)
            .ok_or_else(|| -> Box<EvalAltResult> {
                format!("invalid status {status}: use 400-499 or 503").into()
            })?;
        let reason = close::truncate_utf8(reason, 200).to_string();
        *self.0.rejection.lock().unwrap_or_else(|e| e.into_inner()) = Some((status, reason));
        Ok(())
    }
}

/// A token's user and claims, as scripts see them (`()` without one).
pub(super) fn identity_values(identity: Option<&Identity>) -> (Dynamic, Dynamic) {
    match identity {
        None => (Dynamic::UNIT, Dynamic::UNIT),
        Some(id) => (
            Dynamic::from(ImmutableString::from(id.user.as_str())),
            rhai::serde::to_dynamic(&id.claims).unwrap_or(Dynamic::UNIT),
        ),
    }
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
        let info = RequestInfo::new(req.uri(), req.headers(), Some("[::1]:9".parse().unwrap()));
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

        let bare = RequestInfo::new(&Uri::default(), &HeaderMap::new(), None);
        assert!(bare.query().is_empty() && bare.headers().is_empty());
        assert!(bare.remote_addr().is_unit());
    }
}
