//! The node's two Redis connections and its number.
//!
//! One multiplexed connection carries commands (pipelined: many sessions'
//! publishes share it), the other subscriptions (RESP3 pushes, so one
//! connection holds every room channel; redis-rs resubscribes them after a
//! reconnect). Both reconnect with backoff on their own; a health check
//! pings them every second, keeps `roomcast_broker_up` true to what it
//! sees, and tells the broker when Redis comes back.
//!
//! The node number (the high bits of connection ids, and the address of
//! the node's own channel) is claimed in Redis with a lease the node keeps
//! renewing, so two live nodes never share one.

use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, IntoConnectionInfo, ProtocolVersion, PushInfo, RedisResult};

use crate::config::ClusterConfig;
use crate::ids::MAX_NODE;

/// How the broker reaches Redis.
pub(super) struct Link {
    /// Commands: scripts, reads, publishes to node channels.
    pub(super) cmd: ConnectionManager,
    /// Subscriptions (and their pushes).
    pub(super) sub: ConnectionManager,
    up: AtomicBool,
}

impl Link {
    /// Connections to `config.redis_url` (made lazily: nothing here waits
    /// for Redis); pushes from subscriptions go to `on_push`.
    pub(super) fn new(
        config: &ClusterConfig,
        on_push: impl Fn(PushInfo) + Send + Sync + 'static,
    ) -> RedisResult<Link> {
        let client = client(config)?;
        let base = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.timeout))
            .set_response_timeout(Some(config.timeout))
            .set_number_of_retries(2)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_secs(1));
        let cmd = ConnectionManager::new_lazy_with_config(client.clone(), base.clone())?;
        let sub = ConnectionManager::new_lazy_with_config(
            client,
            base.set_push_sender(move |info: PushInfo| {
                on_push(info);
                Ok::<(), redis::aio::SendError>(())
            })
            .set_automatic_resubscription(),
        )?;
        Ok(Link {
            cmd,
            sub,
            up: AtomicBool::new(false),
        })
    }

    /// Whether the last check (or command) reached Redis.
    pub(super) fn is_up(&self) -> bool {
        self.up.load(Ordering::Acquire)
    }

    /// Record what a check or command saw; true when this is a change.
    pub(super) fn set_up(&self, up: bool) -> bool {
        self.up.swap(up, Ordering::AcqRel) != up
    }

    /// Ping both connections (each reconnects if it has to); whether both answered.
    pub(super) async fn check(&self) -> bool {
        let ping = |mut c: ConnectionManager| async move {
            redis::cmd("PING").query_async::<()>(&mut c).await.is_ok()
        };
        let (a, b) = tokio::join!(ping(self.cmd.clone()), ping(self.sub.clone()));
        a && b
    }
}

/// A RESP3 client for `config.redis_url` (pushes need RESP3), trusting
/// `config.redis_ca_file`'s CA for TLS when it is set.
fn client(config: &ClusterConfig) -> RedisResult<Client> {
    let info = config.redis_url.as_str().into_connection_info()?;
    let settings = info
        .redis_settings()
        .clone()
        .set_protocol(ProtocolVersion::RESP3);
    let info = info.set_redis_settings(settings);
    match &config.redis_ca_file {
        Some(ca) => {
            let root = std::fs::read(ca).map_err(|e| {
                redis::RedisError::from(std::io::Error::other(format!(
                    "cluster.redis_ca_file {}: {e}",
                    ca.display()
                )))
            })?;
            Client::build_with_tls(
                info,
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(root),
                },
            )
        }
        None => Client::open(info),
    }
}

/// What a failure to reach Redis at start means, when it is one that will
/// not heal by itself: wrong credentials, or a server certificate the
/// configured CA does not vouch for. Anything else (Redis not up yet, a
/// network partition) is waited out.
pub(super) fn fatal(config: &ClusterConfig, e: &redis::RedisError) -> Option<String> {
    let text = e.to_string();
    let lower = text.to_ascii_lowercase();
    if e.kind() == redis::ErrorKind::AuthenticationFailed
        || ["wrongpass", "noauth", "invalid username-password"]
            .iter()
            .any(|s| lower.contains(s))
    {
        return Some(format!(
            "`cluster.redis_url`: Redis refused the credentials ({text})"
        ));
    }
    if [
        "certificate",
        "tls handshake",
        "unknownissuer",
        "invalid peer",
    ]
    .iter()
    .any(|s| lower.contains(s))
    {
        let key = if config.redis_ca_file.is_some() {
            "cluster.redis_ca_file"
        } else {
            "cluster.redis_url"
        };
        return Some(format!(
            "`{key}`: the TLS handshake with Redis failed ({text}); is its certificate signed by the CA in cluster.redis_ca_file?"
        ));
    }
    None
}

/// The key holding node number `n`'s lease.
pub(super) fn claim_key(prefix: &str, n: u16) -> String {
    format!("{prefix}:node:{n}:claim")
}

/// Claim a free node number for `node_id`; `None` if all 4095 are taken.
pub(super) async fn claim(
    link: &Link,
    config: &ClusterConfig,
    node_id: &str,
) -> RedisResult<Option<u16>> {
    let mut con = link.cmd.clone();
    let start: u64 = redis::cmd("INCR")
        .arg(format!("{}:node:next", config.prefix))
        .query_async(&mut con)
        .await?;
    let lease = config.presence_ttl.as_millis() as u64;
    for i in 0..u64::from(MAX_NODE) {
        let n = ((start + i) % u64::from(MAX_NODE)) as u16 + 1;
        let ok: Option<String> = redis::cmd("SET")
            .arg(claim_key(&config.prefix, n))
            .arg(node_id)
            .arg("NX")
            .arg("PX")
            .arg(lease)
            .query_async(&mut con)
            .await?;
        if ok.is_some() {
            return Ok(Some(n));
        }
    }
    Ok(None)
}

/// A node number to use until one is claimed (Redis unreachable at start).
pub(super) fn random_node() -> u16 {
    let r = std::collections::hash_map::RandomState::new().hash_one(std::process::id());
    (r % u64::from(MAX_NODE)) as u16 + 1
}

/// Keep node number `n`'s lease for `node_id` (taking it again if Redis
/// lost it); false when another node holds it.
pub(super) async fn renew(
    link: &Arc<Link>,
    config: &ClusterConfig,
    node_id: &str,
    n: u16,
) -> RedisResult<bool> {
    let mut con = link.cmd.clone();
    let key = claim_key(&config.prefix, n);
    let lease = config.presence_ttl.as_millis() as u64;
    // Renew our own lease, or take a free one; never someone else's.
    let script = redis::Script::new(
        r"
local owner = redis.call('GET', KEYS[1])
if owner and owner ~= ARGV[1] then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
",
    );
    let ok: i64 = script
        .key(key)
        .arg(node_id)
        .arg(lease)
        .invoke_async(&mut con)
        .await?;
    Ok(ok == 1)
}
