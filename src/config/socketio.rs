//! `[socketio]`: the socket.io endpoint (Engine.IO 3 and 4).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{bad, Error, RouteConfig};

/// Where socket.io clients connect.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SocketIoConfig {
    /// Serve socket.io clients (socket.io-client 1.x to 4.x) at `path`.
    pub enabled: bool,
    /// The path clients connect to (their `path` option): starts and ends with `/`.
    pub path: String,
    /// Engine.IO handshakes not used yet (no poll, POST or upgrade since)
    /// the server holds at most; past it the oldest are closed (counted as
    /// `handshake_evicted`). A real client uses its handshake a round trip
    /// later, so only a flood of handshakes nobody follows reaches this;
    /// each is also closed `limits.handshake_timeout` after it came
    /// (`handshake_expired`). They are not connections (no session, no
    /// room) and cost ~1 KB each.
    pub max_pending_handshakes: usize,
    /// Connection state recovery (socket.io-client ≥ 4.6): a client whose
    /// connection dropped and that connects again within this window takes
    /// its session up again (rooms, nickname) and is sent exactly the room
    /// messages it missed, from history, on any node; `"0s"` turns it off.
    #[serde(with = "humantime_serde")]
    pub recovery: Duration,
}

/// The longest recovery window (a kept session is a record in the broker).
const MAX_RECOVERY: Duration = Duration::from_secs(24 * 3600);

impl Default for SocketIoConfig {
    fn default() -> Self {
        SocketIoConfig {
            enabled: true,
            path: "/socket.io/".to_string(),
            max_pending_handshakes: 10_000,
            recovery: Duration::from_secs(120),
        }
    }
}

impl SocketIoConfig {
    pub(super) fn validate(&self, routes: &[RouteConfig]) -> Result<(), Error> {
        let p = &self.path;
        if p.len() < 3
            || !p.starts_with('/')
            || !p.ends_with('/')
            || !p
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-/".contains(&b))
        {
            return bad(
                "socketio.path",
                "must look like /socket.io/ (starts and ends with /)",
            );
        }
        if self.recovery > MAX_RECOVERY {
            return bad(
                "socketio.recovery",
                "must be at most 24h (\"0s\" turns it off)",
            );
        }
        if self.max_pending_handshakes == 0 {
            return bad("socketio.max_pending_handshakes", "must be at least 1");
        }
        let first = p[1..].split('/').next().unwrap_or_default();
        if self.enabled && routes.iter().any(|r| r.name == first) {
            return bad(
                "socketio.path",
                &format!("clashes with the route named {first:?}"),
            );
        }
        if self.enabled && ["metrics", "healthz", "readyz", "api", "assets"].contains(&first) {
            return bad("socketio.path", "is a reserved path");
        }
        Ok(())
    }
}
