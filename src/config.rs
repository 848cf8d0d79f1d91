//! Configuration: a plain `Config` value with safe defaults for every option,
//! layered by figment as defaults → TOML file → `ROOMCAST_*` environment.
//!
//! Library users build a [`Config`] in code (or start from `Config::default()`);
//! the binary uses [`Config::figment`] so a file and the environment can override it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

use crate::error::Error;

/// Environment variable prefix; nested keys are separated by `__`
/// (`ROOMCAST_LIMITS__MAX_MESSAGE_SIZE=16777216`).
pub const ENV_PREFIX: &str = "ROOMCAST_";

/// Everything the server can be told. Every field has a safe default, so the
/// server runs with no file at all.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address to listen on (the binary binds it; `serve` takes a bound listener).
    pub listen: SocketAddr,
    /// Route that a WebSocket upgrade on `/` goes to, so clients written for a
    /// bare `ws://host:port/` (like the seed's chat page) work unchanged.
    pub default_route: String,
    /// WebSocket routes: `/{name}` and `/{name}/{room}`.
    pub routes: Vec<RouteConfig>,
    /// Room policies, matched by room name (`route/room`); the first match
    /// wins, and rooms no policy matches get the defaults of [`RoomPolicy`].
    pub rooms: Vec<RoomPolicy>,
    /// The HTTP API for application backends (`/api`).
    pub api: ApiConfig,
    /// Script loading, reloading and sandbox limits.
    pub scripts: ScriptsConfig,
    /// Per-connection protocol limits.
    pub limits: Limits,
    /// Server pings.
    pub heartbeat: Heartbeat,
    /// Origin checks.
    pub access: AccessConfig,
    /// JWT authentication.
    pub auth: AuthConfig,
    /// Prometheus metrics.
    pub metrics: MetricsConfig,
    /// Graceful shutdown.
    pub shutdown: ShutdownConfig,
}

/// What a room allows and keeps, for rooms whose name matches `pattern`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RoomPolicy {
    /// Room names this policy applies to: an exact name (`chat/lobby`), or a
    /// prefix ending in `*` (`chat/team-*`, `chat/*`, `*`).
    pub pattern: String,
    /// Script for the room's messages, instead of its route's.
    pub script: Option<String>,
    /// Messages kept for `history` and resume (0 = none).
    pub history_size: usize,
    /// Messages older than this are dropped from the history.
    #[serde(with = "humantime_serde")]
    pub history_age: Duration,
    /// Most connections in the room at once (0 = no cap).
    pub max_members: usize,
    /// Whether roomcast.v1 clients may `publish` (scripts and the HTTP API always may).
    pub publish: bool,
    /// Whether members see `join`/`leave` events and may ask for `presence`.
    pub presence: bool,
}

impl Default for RoomPolicy {
    fn default() -> Self {
        RoomPolicy {
            pattern: "*".into(),
            script: None,
            history_size: 100,
            history_age: Duration::from_secs(3600),
            max_members: 0,
            publish: true,
            presence: true,
        }
    }
}

impl RoomPolicy {
    /// Does this policy apply to room `name`?
    pub fn matches(&self, name: &str) -> bool {
        match self.pattern.strip_suffix('*') {
            Some(prefix) => name.starts_with(prefix),
            None => self.pattern == name,
        }
    }
}

/// The HTTP API.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(default, deny_unknown_fields)]
pub struct ApiConfig {
    /// Bearer key for `/api`; the API is off (404) while this is unset.
    pub key: Option<String>,
}

/// Prometheus metrics.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// Serve `/metrics` and count per-message traffic. Off, `/metrics` is 404
    /// and the per-message counters and hook timings are skipped (gauges and
    /// error counters still move).
    pub enabled: bool,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig { enabled: true }
    }
}

/// One WebSocket route and the script (or native handler) that drives it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Route name; the URL path is `/{name}` (and `/{name}/{room}`).
    pub name: String,
    /// Script file name, relative to `scripts.dir`.
    #[serde(default)]
    pub script: String,
    /// A built-in handler written in Rust instead of a script, for routes that
    /// need no scripting and every last message per second.
    #[serde(default)]
    pub native: Option<Native>,
    /// Room joined by `/{name}` with no room segment.
    #[serde(default = "default_room")]
    pub default_room: String,
}

fn default_room() -> String {
    "lobby".to_string()
}

/// Built-in route handlers (no script).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Native {
    /// Send every message back unchanged (binary as binary).
    Echo,
    /// Answer text in upper case with "!!!".
    Shout,
}

/// What to do with a connection whose message made a script fail.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum OnScriptError {
    /// Drop that message, log and count the error, keep the connection open.
    #[default]
    Drop,
    /// Close the connection with 1011 (internal error).
    Close,
}

/// Where scripts come from and how they are sandboxed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ScriptsConfig {
    /// Directory holding the route scripts. When it does not exist, the
    /// built-in copies of `echo.rhai`, `shout.rhai` and `chat.rhai` are used.
    pub dir: PathBuf,
    /// Watch `dir` and reload scripts when they change.
    pub watch: bool,
    /// Quiet period after a file event before reloading (editors write files in bursts).
    #[serde(with = "humantime_serde")]
    pub reload_debounce: Duration,
    /// Policy when a hook fails at run time.
    pub on_error: OnScriptError,
    /// Rhai sandbox limits.
    pub limits: ScriptLimits,
}

/// Explicit Rhai limits: a script can never run unbounded.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ScriptLimits {
    /// Maximum operations per hook call.
    pub max_operations: u64,
    /// Maximum length of any string, in bytes.
    pub max_string_size: usize,
    /// Maximum number of array elements.
    pub max_array_size: usize,
    /// Maximum number of object-map entries.
    pub max_map_size: usize,
    /// Maximum function call depth.
    pub max_call_levels: usize,
    /// Maximum expression nesting depth (also used for function bodies).
    pub max_expr_depth: usize,
    /// Wall-clock budget of one hook call; a hook still running after it is
    /// aborted (its message dropped, the error counted).
    #[serde(with = "humantime_serde")]
    pub max_duration: Duration,
}

/// Protocol limits for each connection.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Largest message (after reassembling fragments) in bytes; larger → Close 1009.
    pub max_message_size: usize,
    /// Largest single frame payload in bytes; larger → Close 1009.
    /// Defaults to `max_message_size` when 0.
    pub max_frame_size: usize,
    /// Outbox bound in queued frames; a member past it is a slow consumer.
    pub outbox_messages: usize,
    /// Outbox bound in queued bytes.
    pub outbox_bytes: usize,
    /// After the server sends a Close frame, how long it waits for the client's.
    #[serde(with = "humantime_serde")]
    pub close_timeout: Duration,
    /// A client must send its complete HTTP request head within this time
    /// (slowloris protection; also applies to idle keep-alive connections).
    #[serde(with = "humantime_serde")]
    pub handshake_timeout: Duration,
    /// Most WebSocket connections the server holds; more → 503 before the upgrade.
    pub max_connections: usize,
    /// Most WebSocket connections from one IP address; more → 429 before the
    /// upgrade. 0 = no per-IP cap (the default, because behind a reverse proxy
    /// every client has the proxy's address).
    pub max_connections_per_ip: usize,
    /// Per-connection message rate limit.
    pub rate: RateLimit,
    /// Rooms one roomcast.v1 connection may be in at once.
    pub max_rooms_per_connection: usize,
}

/// A token bucket per connection. Messages (and pings) beyond it are dropped,
/// and the client is told so; a client that keeps flooding is closed with 1008.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimit {
    /// Sustained messages per second; 0 disables rate limiting.
    pub messages_per_second: u32,
    /// Messages allowed in a burst above the sustained rate.
    pub burst: u32,
    /// Close with 1008 once this many messages were dropped within `abuse_window`.
    pub close_after_dropped: u32,
    /// Window over which dropped messages are counted.
    #[serde(with = "humantime_serde")]
    pub abuse_window: Duration,
}

/// Server-initiated pings that detect dead peers.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Heartbeat {
    /// Ping every connection this often; 0s disables heartbeats.
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// A connection that sends nothing (no pong, no message) within this time
    /// after a ping is closed with 4009 and counted.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
}

/// Who may open a WebSocket.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AccessConfig {
    /// Origins (as browsers send them: `https://chat.example.com`) allowed to
    /// open WebSockets; `*.example.com` matches subdomains. Empty = allow every
    /// origin (the default). With a list, other origins get 403: protection
    /// against cross-site WebSocket hijacking.
    pub allowed_origins: Vec<String>,
    /// Allow requests without an `Origin` header (non-browser clients) when
    /// `allowed_origins` is set.
    pub allow_missing_origin: bool,
}

/// JWT connect tokens.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Refuse WebSocket upgrades without a valid token (401).
    pub required: bool,
    /// Shared secret for HS256 tokens.
    pub hs256_secret: Option<String>,
    /// PEM file with the RSA public key for RS256 tokens.
    pub rs256_public_key_file: Option<PathBuf>,
    /// Required `iss` claim, if set.
    pub issuer: Option<String>,
    /// Required `aud` claim, if set.
    pub audience: Option<String>,
    /// Claim listing the rooms a token may join (`route/room` patterns, `*`
    /// at the end matches any suffix). Absent from a token = any room.
    pub rooms_claim: String,
    /// Clock skew tolerated when checking `exp` and `nbf`.
    #[serde(with = "humantime_serde")]
    pub leeway: Duration,
}

/// Graceful shutdown.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ShutdownConfig {
    /// How long sessions get to finish their close handshake after Close 1001.
    #[serde(with = "humantime_serde")]
    pub drain_timeout: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 3000)),
            default_route: "chat".to_string(),
            routes: vec![
                RouteConfig::script("echo", "echo.rhai"),
                RouteConfig::script("shout", "shout.rhai"),
                RouteConfig::script("chat", "chat.rhai"),
            ],
            rooms: Vec::new(),
            api: ApiConfig::default(),
            scripts: ScriptsConfig::default(),
            limits: Limits::default(),
            heartbeat: Heartbeat::default(),
            access: AccessConfig::default(),
            auth: AuthConfig::default(),
            metrics: MetricsConfig::default(),
            shutdown: ShutdownConfig::default(),
        }
    }
}

impl Default for ScriptsConfig {
    fn default() -> Self {
        ScriptsConfig {
            dir: PathBuf::from("scripts"),
            watch: true,
            reload_debounce: Duration::from_millis(50),
            on_error: OnScriptError::Drop,
            limits: ScriptLimits::default(),
        }
    }
}

impl Default for ScriptLimits {
    fn default() -> Self {
        ScriptLimits {
            max_operations: 100_000,
            max_string_size: 1 << 20,
            max_array_size: 10_000,
            max_map_size: 10_000,
            max_call_levels: 32,
            max_expr_depth: 64,
            max_duration: Duration::from_millis(5),
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_size: 64 * 1024,
            max_frame_size: 0,
            outbox_messages: 1024,
            outbox_bytes: 4 << 20,
            close_timeout: Duration::from_secs(2),
            handshake_timeout: Duration::from_secs(10),
            max_connections: 10_000,
            max_connections_per_ip: 0,
            rate: RateLimit::default(),
            max_rooms_per_connection: 32,
        }
    }
}

impl Default for RateLimit {
    fn default() -> Self {
        RateLimit {
            messages_per_second: 50,
            burst: 100,
            close_after_dropped: 200,
            abuse_window: Duration::from_secs(10),
        }
    }
}

impl Default for Heartbeat {
    fn default() -> Self {
        Heartbeat {
            interval: Duration::from_secs(30),
            timeout: Duration::from_secs(10),
        }
    }
}

impl Default for AccessConfig {
    fn default() -> Self {
        AccessConfig {
            allowed_origins: Vec::new(),
            allow_missing_origin: true,
        }
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            required: false,
            hs256_secret: None,
            rs256_public_key_file: None,
            issuer: None,
            audience: None,
            rooms_claim: "rooms".to_string(),
            leeway: Duration::from_secs(0),
        }
    }
}

impl Default for ShutdownConfig {
    fn default() -> Self {
        ShutdownConfig {
            drain_timeout: Duration::from_secs(10),
        }
    }
}

impl RouteConfig {
    /// A route `name` driven by `script`, with the default room.
    pub fn script(name: &str, script: &str) -> RouteConfig {
        RouteConfig {
            name: name.into(),
            script: script.into(),
            native: None,
            default_room: default_room(),
        }
    }

    /// A route `name` served by a native handler.
    pub fn native(name: &str, native: Native) -> RouteConfig {
        RouteConfig {
            name: name.into(),
            script: String::new(),
            native: Some(native),
            default_room: default_room(),
        }
    }
}

impl Limits {
    /// The effective frame limit (`max_frame_size`, or `max_message_size` when unset).
    pub fn frame_limit(&self) -> usize {
        if self.max_frame_size == 0 {
            self.max_message_size
        } else {
            self.max_frame_size.min(self.max_message_size)
        }
    }
}

impl Config {
    /// The layered figment the binary uses: defaults, then `file` (if any), then
    /// `ROOMCAST_*` environment variables (`__` separates nested keys).
    pub fn figment(file: Option<&Path>) -> Figment {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(file) = file {
            figment = figment.merge(Toml::file_exact(file));
        }
        figment.merge(
            Env::prefixed(ENV_PREFIX)
                .ignore(&["CONFIG", "LOG", "LOG_FORMAT"])
                .split("__"),
        )
    }

    /// Extract and validate a config from a figment. Errors name the offending key.
    pub fn from_figment(figment: &Figment) -> Result<Config, Error> {
        let config: Config = figment
            .extract()
            .map_err(|e| Error::Config(figment_message(e)))?;
        config.validate()?;
        Ok(config)
    }

    /// Check cross-field rules that serde cannot express.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |key: &str, why: &str| Err(Error::Config(format!("`{key}`: {why}")));
        if self.routes.is_empty() {
            return bad("routes", "at least one route is required");
        }
        for (i, route) in self.routes.iter().enumerate() {
            if !crate::registry::valid_name(&route.name) {
                return bad(
                    &format!("routes[{i}].name"),
                    "must be 1-64 characters of A-Z a-z 0-9 . _ -",
                );
            }
            if matches!(
                route.name.as_str(),
                "metrics" | "healthz" | "readyz" | "api" | "assets"
            ) {
                return bad(&format!("routes[{i}].name"), "is a reserved path");
            }
            if !crate::registry::valid_name(&route.default_room) {
                return bad(
                    &format!("routes[{i}].default_room"),
                    "must be 1-64 characters of A-Z a-z 0-9 . _ -",
                );
            }
            match (route.script.is_empty(), route.native.is_some()) {
                (true, false) => {
                    return bad(
                        &format!("routes[{i}].script"),
                        "must name a script file (or set `native`)",
                    )
                }
                (false, true) => {
                    return bad(
                        &format!("routes[{i}]"),
                        "has both `script` and `native`: choose one",
                    )
                }
                _ => {}
            }
            if self.routes[..i].iter().any(|r| r.name == route.name) {
                return bad(&format!("routes[{i}].name"), "duplicate route name");
            }
        }
        if !self.routes.iter().any(|r| r.name == self.default_route) {
            return bad("default_route", "must name one of the configured routes");
        }
        if self.limits.max_message_size == 0 {
            return bad("limits.max_message_size", "must be greater than 0");
        }
        if self.limits.outbox_messages == 0 {
            return bad("limits.outbox_messages", "must be greater than 0");
        }
        if self.limits.outbox_bytes < self.limits.max_message_size.min(1 << 20) {
            return bad(
                "limits.outbox_bytes",
                "must hold at least one maximum-size message (or 1 MiB)",
            );
        }
        for (i, policy) in self.rooms.iter().enumerate() {
            let pattern = policy.pattern.strip_suffix('*').unwrap_or(&policy.pattern);
            if policy.pattern.is_empty()
                || pattern.contains('*')
                || !pattern
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-/".contains(&b))
            {
                return bad(
                    &format!("rooms[{i}].pattern"),
                    "must be a room name, or a prefix ending in `*`",
                );
            }
            if policy.script.as_deref() == Some("") {
                return bad(&format!("rooms[{i}].script"), "must name a script file");
            }
        }
        if self.api.key.as_deref().is_some_and(|k| k.len() < 16) {
            return bad("api.key", "must be at least 16 characters");
        }
        if self.limits.max_rooms_per_connection == 0 {
            return bad("limits.max_rooms_per_connection", "must be greater than 0");
        }
        if self.limits.max_connections == 0 {
            return bad("limits.max_connections", "must be greater than 0");
        }
        let r = &self.limits.rate;
        if r.messages_per_second > 0 && r.burst == 0 {
            return bad(
                "limits.rate.burst",
                "must be at least 1 when rate limiting is on",
            );
        }
        if !self.heartbeat.interval.is_zero() && self.heartbeat.timeout.is_zero() {
            return bad(
                "heartbeat.timeout",
                "must be greater than 0 when heartbeats are on",
            );
        }
        for (i, o) in self.access.allowed_origins.iter().enumerate() {
            if o.is_empty() || o.ends_with('/') {
                return bad(
                    &format!("access.allowed_origins[{i}]"),
                    "must look like https://host[:port] or *.example.com (no trailing slash)",
                );
            }
        }
        if self.auth.required
            && self.auth.hs256_secret.is_none()
            && self.auth.rs256_public_key_file.is_none()
        {
            return bad(
                "auth.required",
                "needs auth.hs256_secret or auth.rs256_public_key_file",
            );
        }
        if self.auth.hs256_secret.as_deref() == Some("") {
            return bad("auth.hs256_secret", "must not be empty");
        }
        let l = &self.scripts.limits;
        if l.max_duration.is_zero() {
            return bad("scripts.limits.max_duration", "must be greater than 0");
        }
        if l.max_operations == 0 || l.max_call_levels == 0 || l.max_expr_depth == 0 {
            return bad(
                "scripts.limits",
                "limits must be greater than 0 (a zero would mean unlimited in Rhai)",
            );
        }
        if l.max_string_size == 0 || l.max_array_size == 0 || l.max_map_size == 0 {
            return bad(
                "scripts.limits",
                "size limits must be greater than 0 (a zero would mean unlimited in Rhai)",
            );
        }
        Ok(())
    }
}

/// Render a figment error with the key path and where the value came from.
fn figment_message(err: figment::Error) -> String {
    err.into_iter()
        .map(|e| {
            let key = if e.path.is_empty() {
                String::new()
            } else {
                format!("`{}`: ", e.path.join("."))
            };
            let source = e
                .metadata
                .as_ref()
                .map(|m| match &m.source {
                    Some(src) => format!(" (from {} {src})", m.name),
                    None => format!(" (from {})", m.name),
                })
                .unwrap_or_default();
            format!("{key}{}{source}", e.kind)
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_match_the_seed_port() {
        let c = Config::default();
        c.validate().unwrap();
        assert_eq!(c.listen.port(), 3000);
        assert_eq!(c.limits.max_message_size, 65536);
    }

    #[test]
    fn unknown_key_is_named_in_the_error() {
        let fig = Figment::from(Serialized::defaults(Config::default()))
            .merge(Toml::string("[limits]\nmax_mesage_size = 5\n"));
        let err = Config::from_figment(&fig).unwrap_err().to_string();
        assert!(err.contains("max_mesage_size"), "{err}");
    }

    #[test]
    fn wrong_type_is_named_with_its_path() {
        let fig = Figment::from(Serialized::defaults(Config::default()))
            .merge(Toml::string("[limits]\nmax_message_size = \"big\"\n"));
        let err = Config::from_figment(&fig).unwrap_err().to_string();
        assert!(err.contains("limits.max_message_size"), "{err}");
    }

    #[test]
    fn default_route_must_exist() {
        let c = Config {
            default_route: "nope".into(),
            ..Config::default()
        };
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("default_route"));
    }

    #[test]
    fn server_paths_cannot_be_route_names() {
        for name in ["metrics", "healthz", "readyz", "api", "assets"] {
            let mut c = Config::default();
            c.routes.push(RouteConfig::script(name, "echo.rhai"));
            let err = c.validate().unwrap_err().to_string();
            assert!(err.contains("reserved path"), "{name}: {err}");
        }
    }
}
