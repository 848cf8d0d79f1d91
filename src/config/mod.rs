//! Configuration: a plain `Config` value with safe defaults for every option,
//! layered by figment as defaults → TOML file → `ROOMCAST_*` environment.
//!
//! Library users build a [`Config`] in code (or start from `Config::default()`);
//! the binary uses [`Config::figment`] so a file and the environment can override it.
//! Each section lives in its own file, beside its `Default` and its checks.

mod access;
mod cluster;
mod compression;
mod limits;
mod ops;
mod rooms;
mod routes;
mod scripts;
mod socketio;

use std::net::SocketAddr;
use std::path::Path;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

pub use access::{AccessConfig, ApiConfig, AuthConfig, DEFAULT_KEY_NAME};
pub use cluster::{ClusterConfig, RedisMode};
pub use compression::CompressionConfig;
pub use limits::{Heartbeat, Limits, RateLimit};
pub use ops::{MetricsConfig, ShutdownConfig};
pub use rooms::{Policies, RoomPolicy};
pub use routes::{Native, RouteConfig};
pub use scripts::{OnScriptError, ScriptLimits, ScriptsConfig};
pub use socketio::SocketIoConfig;

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
    /// Connections the kernel may hold waiting to be accepted (the listen
    /// backlog). A reconnect storm, every client coming back at once after a
    /// deploy, overflows a short queue: SYNs are dropped and clients wait
    /// for retransmits (1 s, 3 s, 7 s…) while the server idles. The kernel
    /// caps it at `net.core.somaxconn`.
    pub listen_backlog: u32,
    /// Threads serving connections (the binary's runtime): 0, one per core
    /// this process may use (its CPU affinity and cgroup quota). With one,
    /// the runtime is single-threaded: no work-stealing machinery and no
    /// cross-thread wake-ups, measurably faster on one core.
    pub worker_threads: usize,
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
    /// The socket.io endpoint.
    pub socketio: SocketIoConfig,
    /// Many nodes as one server (over Redis); off by default.
    pub cluster: ClusterConfig,
    /// permessage-deflate.
    pub compression: CompressionConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 3000)),
            listen_backlog: 4096,
            worker_threads: 0,
            default_route: "chat".to_string(),
            routes: vec![
                // Their messages go back to the sender alone: fair
                // scheduling protects the server, a rate limit would only
                // slow the one client (see roomcast.toml, [limits.rate]).
                RouteConfig::script("echo", "echo.rhai").with_rate(RateLimit::off()),
                RouteConfig::script("shout", "shout.rhai").with_rate(RateLimit::off()),
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
            socketio: SocketIoConfig::default(),
            cluster: ClusterConfig::default(),
            compression: CompressionConfig::default(),
        }
    }
}

/// A validation failure naming its key.
fn bad(key: &str, why: &str) -> Result<(), Error> {
    Err(Error::Config(format!("`{key}`: {why}")))
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
        if self.listen_backlog == 0 || self.listen_backlog > 65535 {
            return bad("listen_backlog", "must be 1 to 65535");
        }
        if self.worker_threads > 1024 {
            return bad("worker_threads", "0 (one per core) to 1024");
        }
        if self.routes.is_empty() {
            return bad("routes", "at least one route is required");
        }
        for (i, route) in self.routes.iter().enumerate() {
            route.validate(i)?;
            if self.routes[..i].iter().any(|r| r.name == route.name) {
                return bad(&format!("routes[{i}].name"), "duplicate route name");
            }
        }
        if !self.routes.iter().any(|r| r.name == self.default_route) {
            return bad("default_route", "must name one of the configured routes");
        }
        for (i, policy) in self.rooms.iter().enumerate() {
            policy.validate(i)?;
        }
        self.limits.validate()?;
        self.heartbeat.validate()?;
        self.api.validate()?;
        self.access.validate()?;
        self.auth.validate()?;
        self.socketio.validate(&self.routes)?;
        self.cluster.validate()?;
        self.compression.validate()?;
        self.scripts.limits.validate()
    }

    /// The configuration as JSON with its secrets shown as `"***"`
    /// (`api.key`, `api.keys`, `auth.hs256_secret`, the password in `cluster.redis_url`):
    /// what `roomcast config` prints, so its output can be pasted into a bug
    /// report or a log without leaking credentials.
    pub fn redacted(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(self).expect("config serialises");
        for (section, key) in [("api", "key"), ("auth", "hs256_secret")] {
            if let Some(secret) = v[section].get_mut(key).filter(|s| !s.is_null()) {
                *secret = REDACTED.into();
            }
        }
        if let Some(keys) = v["api"].get_mut("keys").and_then(|k| k.as_object_mut()) {
            for key in keys.values_mut() {
                *key = REDACTED.into();
            }
        }
        if let Some(url) = v["cluster"].get_mut("redis_url") {
            let shown = url.as_str().map(redact_url_password);
            if let Some(shown) = shown {
                *url = shown.into();
            }
        }
        v
    }
}

/// What a secret is shown as.
const REDACTED: &str = "***";

/// `scheme://user:password@host…` with the password as [`REDACTED`] (every
/// URL of a comma-separated list); URLs without one unchanged.
fn redact_url_password(urls: &str) -> String {
    urls.split(',')
        .map(|url| {
            let Some((scheme, rest)) = url.split_once("://") else {
                return url.to_string();
            };
            let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
            let Some(at) = rest[..authority_end].rfind('@') else {
                return url.to_string();
            };
            let userinfo = &rest[..at];
            let user = match userinfo.split_once(':') {
                Some((user, _)) => format!("{user}:{REDACTED}"),
                None if !userinfo.is_empty() => REDACTED.to_string(),
                None => String::new(),
            };
            format!("{scheme}://{user}{}", &rest[at..])
        })
        .collect::<Vec<_>>()
        .join(",")
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
    fn named_api_keys_are_checked_naming_the_key() {
        let mut c = Config::default();
        c.api.keys.insert("alice".into(), "short".into());
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("api.keys.alice") && e.contains("16"), "{e}");
        c.api.keys.clear();
        c.api.keys.insert("a b".into(), "0123456789abcdef-x".into());
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("api.keys.a b"));
        c.api.keys.clear();
        c.api
            .keys
            .insert("default".into(), "0123456789abcdef-x".into());
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("api.keys.default"));
        c.api.keys.clear();
        c.api
            .keys
            .insert("ops-1".into(), "0123456789abcdef-x".into());
        c.validate().unwrap();
        assert!(c.api.enabled(), "a named key alone turns the API on");
        let names: Vec<&str> = c.api.named_keys().map(|(n, _)| n).collect();
        assert_eq!(names, ["ops-1"]);
    }

    #[test]
    fn secrets_are_redacted() {
        let mut c = Config::default();
        c.api.key = Some("0123456789abcdef-secret".into());
        c.api
            .keys
            .insert("alice".into(), "alice-0123456789-secret".into());
        c.auth.hs256_secret = Some("hs-secret".into());
        c.cluster.redis_url = "redis://app:pw@10.0.0.1:6379/0,redis://10.0.0.2".into();
        let v = c.redacted();
        assert_eq!(v["api"]["key"], "***");
        assert_eq!(v["api"]["keys"]["alice"], "***");
        assert_eq!(v["auth"]["hs256_secret"], "***");
        assert_eq!(
            v["cluster"]["redis_url"],
            "redis://app:***@10.0.0.1:6379/0,redis://10.0.0.2"
        );
        let text = v.to_string();
        assert!(
            !text.contains("-secret\"") && !text.contains("hs-secret") && !text.contains(":pw@")
        );
        assert_eq!(redact_url_password("redis://:pw@h"), "redis://:***@h");
        assert_eq!(
            redact_url_password("rediss://token@h/1"),
            "rediss://***@h/1"
        );
        let plain = Config::default().redacted();
        assert!(plain["api"]["key"].is_null(), "an unset secret stays unset");
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
