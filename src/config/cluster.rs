//! `[cluster]`: many roomcast nodes as one chat server, over Redis.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{bad, Error};

/// Where the nodes of a cluster meet. With `redis_url` empty (the default)
/// the server is a single node with everything in memory.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// What `redis_url` names: one Redis (`single`, the default), or the
    /// seed nodes of a Redis Cluster (`cluster`: rooms spread over its
    /// shards, delivered with sharded pub/sub).
    pub redis_mode: RedisMode,
    /// `redis://[user:password@]host:port[/db]`, `rediss://…` (TLS, with
    /// rustls) or `unix:///path/to.sock`; a user and password are Redis 6+
    /// ACL credentials (a password alone: `redis://:password@…`). Empty: a
    /// single node, no external service. In cluster mode one or more seed
    /// nodes, separated by commas (`redis://10.0.0.1:6379,redis://10.0.0.2:6379`).
    pub redis_url: String,
    /// A PEM file of the CA(s) that signed the Redis server's certificate,
    /// for a `rediss://` URL whose server the system's roots do not vouch
    /// for (a private CA); unset: the system's trust store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis_ca_file: Option<PathBuf>,
    /// This node's name in logs and in Redis (its claim on a node number);
    /// empty: generated at start.
    pub node_id: String,
    /// Prefix of every Redis key and channel, so several clusters (or other
    /// applications) can share one Redis.
    pub prefix: String,
    /// How long one Redis command (or connection attempt) may take before
    /// the broker counts it as failed and serves this node alone.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// How long a node's presence entries (and its node number) outlive it
    /// when it dies without saying goodbye; refreshed every third of it.
    #[serde(with = "humantime_serde")]
    pub presence_ttl: Duration,
}

/// `cluster.redis_mode`.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum RedisMode {
    /// One Redis server.
    #[default]
    Single,
    /// A Redis Cluster (Redis 7 or later: sharded pub/sub).
    Cluster,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            redis_mode: RedisMode::Single,
            redis_url: String::new(),
            redis_ca_file: None,
            node_id: String::new(),
            prefix: "roomcast".to_string(),
            timeout: Duration::from_secs(1),
            presence_ttl: Duration::from_secs(15),
        }
    }
}

impl ClusterConfig {
    /// Whether this server is one node of many.
    pub fn enabled(&self) -> bool {
        !self.redis_url.is_empty()
    }

    /// The URLs in `redis_url` (one in single mode; the seeds in cluster mode).
    pub fn redis_urls(&self) -> Vec<&str> {
        self.redis_url.split(',').map(str::trim).collect()
    }

    pub(super) fn validate(&self) -> Result<(), Error> {
        let url = &self.redis_url;
        let urls = self.redis_urls();
        match self.redis_mode {
            RedisMode::Single if self.enabled() && urls.len() > 1 => {
                return bad(
                    "cluster.redis_url",
                    "names one Redis in single mode; seed nodes of a Redis Cluster (separated by commas) need cluster.redis_mode = \"cluster\"",
                );
            }
            RedisMode::Single
                if self.enabled()
                    && !["redis://", "rediss://", "unix://"]
                        .iter()
                        .any(|s| url.starts_with(s)) =>
            {
                return bad(
                    "cluster.redis_url",
                    "must be empty or start with redis://, rediss:// (TLS) or unix://",
                );
            }
            RedisMode::Single => {}
            RedisMode::Cluster if !self.enabled() => {
                return bad(
                    "cluster.redis_mode",
                    "\"cluster\" needs the seed nodes of the Redis Cluster in cluster.redis_url",
                );
            }
            RedisMode::Cluster => {
                for u in &urls {
                    if !["redis://", "rediss://"].iter().any(|s| u.starts_with(s)) {
                        return bad(
                            "cluster.redis_url",
                            &format!("seed node `{u}` must start with redis:// or rediss:// (a Redis Cluster is reached over TCP)"),
                        );
                    }
                }
                if urls.iter().any(|u| u.starts_with("rediss://"))
                    && !urls.iter().all(|u| u.starts_with("rediss://"))
                {
                    return bad(
                        "cluster.redis_url",
                        "the seed nodes mix redis:// and rediss://: a cluster is reached with TLS or without",
                    );
                }
            }
        }
        if let Some(ca) = &self.redis_ca_file {
            if !urls.iter().all(|u| u.starts_with("rediss://")) {
                return bad(
                    "cluster.redis_ca_file",
                    "is for TLS: cluster.redis_url must start with rediss://",
                );
            }
            if let Err(e) = std::fs::metadata(ca) {
                return bad(
                    "cluster.redis_ca_file",
                    &format!("cannot read {}: {e}", ca.display()),
                );
            }
        }
        let ok = |s: &str| {
            s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        };
        if self.prefix.is_empty() || self.prefix.len() > 64 || !ok(&self.prefix) {
            return bad("cluster.prefix", "1 to 64 letters, digits, `.`, `_` or `-`");
        }
        if self.node_id.len() > 64 || !ok(&self.node_id) {
            return bad(
                "cluster.node_id",
                "up to 64 letters, digits, `.`, `_` or `-` (empty: generated)",
            );
        }
        if self.timeout.is_zero() {
            return bad("cluster.timeout", "must be greater than 0");
        }
        if self.presence_ttl < Duration::from_secs(1) {
            return bad("cluster.presence_ttl", "must be at least 1s");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(mode: RedisMode, url: &str) -> Result<(), String> {
        let c = ClusterConfig {
            redis_mode: mode,
            redis_url: url.into(),
            ..ClusterConfig::default()
        };
        c.validate().map_err(|e| e.to_string())
    }

    /// Each mistake is named by the key to fix.
    #[test]
    fn redis_mode_and_seeds_are_checked() {
        use RedisMode::{Cluster, Single};
        assert!(check(Single, "").is_ok(), "no Redis: one node in memory");
        assert!(check(Single, "redis://10.0.0.1:6379").is_ok());
        assert!(check(Cluster, "redis://10.0.0.1:6379, redis://10.0.0.2:6379").is_ok());
        assert!(check(Cluster, "rediss://u:p@a:6380,rediss://u:p@b:6380").is_ok());
        let e = check(Single, "redis://a:6379,redis://b:6379").unwrap_err();
        assert!(
            e.contains("cluster.redis_url") && e.contains("redis_mode"),
            "{e}"
        );
        let e = check(Cluster, "").unwrap_err();
        assert!(e.contains("cluster.redis_mode"), "{e}");
        let e = check(Cluster, "redis://a:6379,unix:///tmp/r.sock").unwrap_err();
        assert!(
            e.contains("cluster.redis_url") && e.contains("unix:"),
            "{e}"
        );
        let e = check(Cluster, "redis://a:6379,rediss://b:6380").unwrap_err();
        assert!(e.contains("cluster.redis_url") && e.contains("mix"), "{e}");
        let parsed: ClusterConfig =
            serde_json::from_str(r#"{"redis_mode": "cluster", "redis_url": "redis://a"}"#).unwrap();
        assert_eq!(parsed.redis_mode, Cluster);
        assert!(serde_json::from_str::<ClusterConfig>(r#"{"redis_mode": "sentinel"}"#).is_err());
    }
}
