//! The node's two Redis connections and its number.
//!
//! One multiplexed connection carries commands (pipelined: many sessions'
//! publishes share it), the other subscriptions (RESP3 pushes, so one
//! connection holds every room channel; redis-rs resubscribes them after a
//! reconnect). Both reconnect with backoff on their own; a health check
//! pings them every second, keeps `roomcast_broker_up` true to what it
//! sees, and tells the broker when Redis comes back.
//!
//! With `cluster.redis_mode = "cluster"` each of the two is a Redis Cluster
//! connection instead (redis-rs's, one multiplexed connection per cluster
//! node, commands routed by slot, MOVED/ASK followed), and every channel
//! is a sharded one (`SSUBSCRIBE`, `SPUBLISH`): a room's messages go only
//! to the shard that owns its slot. After a failover redis-rs moves each
//! sharded subscription to its shard's new master; the confirmation that
//! comes from there makes the room catch up from its stream.
//!
//! The node number (the high bits of connection ids, and the address of
//! the node's own channel) is claimed in Redis with a lease the node keeps
//! renewing, so two live nodes never share one.

use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use redis::{
    Client, Cmd, IntoConnectionInfo, Pipeline, ProtocolVersion, PushInfo, RedisFuture, RedisResult,
    Value,
};

use crate::config::{ClusterConfig, RedisMode};
use crate::ids::MAX_NODE;

/// One connection of the broker: to one Redis, or to a Redis Cluster.
/// Either runs any command (the cluster one routes it by its key's slot).
#[derive(Clone)]
pub(super) enum Con {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Con {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Con::Single(c) => c.req_packed_command(cmd),
            Con::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Con::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Con::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Con::Single(c) => c.get_db(),
            Con::Cluster(c) => c.get_db(),
        }
    }
}

/// How the broker reaches Redis.
pub(super) struct Link {
    /// Commands: scripts, reads, publishes to node channels.
    pub(super) cmd: Con,
    /// Subscriptions (and their pushes).
    sub: Con,
    up: AtomicBool,
}

impl Link {
    /// Connections to `config.redis_url` (made lazily: nothing here waits
    /// for Redis); pushes from subscriptions go to `on_push`.
    pub(super) fn new(
        config: &ClusterConfig,
        on_push: impl Fn(PushInfo) + Send + Sync + 'static,
    ) -> RedisResult<Link> {
        if config.redis_mode == RedisMode::Cluster {
            return Self::cluster(config, on_push);
        }
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
            cmd: Con::Single(cmd),
            sub: Con::Single(sub),
            up: AtomicBool::new(false),
        })
    }

    /// Connections to the Redis Cluster whose seeds `config.redis_url` names.
    fn cluster(
        config: &ClusterConfig,
        on_push: impl Fn(PushInfo) + Send + Sync + 'static,
    ) -> RedisResult<Link> {
        let builder = || -> RedisResult<ClusterClientBuilder> {
            let mut seeds = Vec::new();
            for url in config.redis_urls() {
                let info = url.into_connection_info()?;
                if info.redis_settings().db() != 0 {
                    return Err(redis::RedisError::from((
                        redis::ErrorKind::InvalidClientConfig,
                        "a Redis Cluster has only database 0",
                    )));
                }
                seeds.push(info);
            }
            let mut b = ClusterClientBuilder::new(seeds)
                .use_protocol(ProtocolVersion::RESP3)
                .connection_timeout(config.timeout)
                .response_timeout(config.timeout)
                // A shard that is down fails its commands quickly (its rooms
                // are then served here alone) instead of holding them.
                .retries(3)
                .min_retry_wait(20)
                .max_retry_wait(200);
            if let Some(ca) = &config.redis_ca_file {
                b = b.certs(redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(read_ca(ca)?),
                });
            }
            Ok(b)
        };
        let cmd: ClusterClient = builder()?.build()?;
        let sub: ClusterClient = builder()?
            .push_sender(move |info: PushInfo| {
                on_push(info);
                Ok::<(), redis::aio::SendError>(())
            })
            .build()?;
        let config = redis::cluster::ClusterConfig::new();
        Ok(Link {
            cmd: Con::Cluster(cmd.get_pending_async_connection_with_config(config.clone())),
            sub: Con::Cluster(sub.get_pending_async_connection_with_config(config)),
            up: AtomicBool::new(false),
        })
    }

    /// Whether this is a Redis Cluster (sharded channels).
    pub(super) fn is_cluster(&self) -> bool {
        matches!(self.cmd, Con::Cluster(_))
    }

    /// The command that publishes on a channel: `SPUBLISH` in a cluster
    /// (only the shard of the channel's slot hears it), else `PUBLISH`.
    pub(super) fn publish_command(&self) -> &'static str {
        if self.is_cluster() {
            "SPUBLISH"
        } else {
            "PUBLISH"
        }
    }

    /// Subscribe to `channels`: one SUBSCRIBE, or in a cluster one
    /// SSUBSCRIBE per channel (each to its own shard), all at once. The
    /// channels Redis did not confirm.
    pub(super) async fn subscribe(&self, channels: &[&str]) -> Vec<usize> {
        self.subscription(channels, true).await
    }

    /// Unsubscribe from `channels`; the ones that failed.
    pub(super) async fn unsubscribe(&self, channels: &[&str]) -> Vec<usize> {
        self.subscription(channels, false).await
    }

    async fn subscription(&self, channels: &[&str], on: bool) -> Vec<usize> {
        match &self.sub {
            Con::Single(c) => {
                let mut c = c.clone();
                let r = if on {
                    c.subscribe(channels).await
                } else {
                    c.unsubscribe(channels).await
                };
                match r {
                    Ok(()) => Vec::new(),
                    Err(e) => {
                        tracing::debug!(error = %e, "subscription change failed; retrying");
                        (0..channels.len()).collect()
                    }
                }
            }
            Con::Cluster(c) => {
                let mut each = tokio::task::JoinSet::new();
                for (i, ch) in channels.iter().enumerate() {
                    let (mut c, ch) = (c.clone(), ch.to_string());
                    each.spawn(async move {
                        let r = if on {
                            c.ssubscribe(&ch).await
                        } else {
                            c.sunsubscribe(&ch).await
                        };
                        r.err().map(|e| {
                            tracing::debug!(channel = ch, error = %e, "sharded subscription change failed; retrying");
                            i
                        })
                    });
                }
                let mut failed = Vec::new();
                while let Some(r) = each.join_next().await {
                    failed.extend(r.ok().flatten());
                }
                failed
            }
        }
    }

    /// Whether the last check (or command) reached Redis.
    pub(super) fn is_up(&self) -> bool {
        self.up.load(Ordering::Acquire)
    }

    /// Record what a check or command saw; true when this is a change.
    pub(super) fn set_up(&self, up: bool) -> bool {
        self.up.swap(up, Ordering::AcqRel) != up
    }

    /// Ping both connections (each reconnects if it has to); whether both
    /// answered. In a cluster one node answering is enough: a shard that is
    /// down fails its own rooms' commands, not the whole cluster's.
    pub(super) async fn check(&self) -> bool {
        let ping = |c: Con| async move {
            match c {
                Con::Single(mut c) => redis::cmd("PING").query_async::<()>(&mut c).await.is_ok(),
                Con::Cluster(mut c) => c
                    .route_command(
                        redis::cmd("PING"),
                        RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random),
                    )
                    .await
                    .is_ok(),
            }
        };
        let (a, b) = tokio::join!(ping(self.cmd.clone()), ping(self.sub.clone()));
        a && b
    }
}

/// A RESP3 client for `config.redis_url` (pushes need RESP3), trusting
/// `config.redis_ca_file`'s CA for TLS when it is set.
fn client(config: &ClusterConfig) -> RedisResult<Client> {
    client_for(&config.redis_url, config)
}

/// A RESP3 client for `url` with `config`'s CA.
fn client_for(url: &str, config: &ClusterConfig) -> RedisResult<Client> {
    let info = url.into_connection_info()?;
    let settings = info
        .redis_settings()
        .clone()
        .set_protocol(ProtocolVersion::RESP3);
    let info = info.set_redis_settings(settings);
    match &config.redis_ca_file {
        Some(ca) => {
            let root = read_ca(ca)?;
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

/// The PEM of `cluster.redis_ca_file`.
fn read_ca(ca: &std::path::Path) -> RedisResult<Vec<u8>> {
    std::fs::read(ca).map_err(|e| {
        redis::RedisError::from(std::io::Error::other(format!(
            "cluster.redis_ca_file {}: {e}",
            ca.display()
        )))
    })
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

/// Why a Redis Cluster's seeds refuse this node, if one does for a reason
/// waiting will not mend (credentials, certificate): the cluster client
/// reports only that it found no connection, so each seed is asked alone.
pub(super) async fn seeds_refusal(config: &ClusterConfig) -> Option<String> {
    for url in config.redis_urls() {
        let Ok(client) = client_for(url, config) else {
            continue;
        };
        let tried = tokio::time::timeout(config.timeout, async {
            let mut con = client.get_multiplexed_async_connection().await?;
            redis::cmd("PING").query_async::<()>(&mut con).await
        })
        .await;
        if let Ok(Err(e)) = tried {
            if let Some(why) = fatal(config, &e) {
                return Some(why);
            }
        }
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
