//! The cluster broker: many nodes as one chat server, over Redis
//! (`cluster.redis_url`). The shape is centrifuge's: a publish is one
//! atomic script (next offset, into the room's stream, publish on the
//! room's channel); each node subscribes to the channels of the rooms it
//! has members in and delivers what comes to its hub, in offset order.
//!
//! - `link.rs`: the two Redis connections (to one Redis, or to a Redis
//!   Cluster with sharded channels), the health check, the node number.
//! - `pipe.rs`: ordered, pipelined writes (publishes, presence changes).
//! - `subs.rs`: room subscriptions and in-order delivery across reconnects.
//! - `presence.rs`: presence across nodes, refreshed, expiring with a node.
//! - `node.rs`: messages between nodes (direct sends, disconnects).
//! - `ops.rs`: the [`Broker`](super::Broker) methods on top of those.
//! - `scripts.rs`, `codec.rs`: the Lua scripts and the bytes nodes exchange.
//!
//! Without Redis a node keeps serving its own members: publications reach
//! this node's members only and their senders are told (`not_stored`),
//! joins get positions of a node-local epoch that can never resume, and
//! everything is rebuilt when Redis is back (subscriptions, presence,
//! messages missed on the way).

mod codec;
mod link;
mod node;
mod ops;
mod pipe;
mod presence;
mod query;
mod recv;
mod scripts;
mod sessions;
mod sub;
mod subs;

use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dashmap::DashMap;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::Events;
use crate::config::{ClusterConfig, Config, Policies};
use crate::metrics::{BrokerOp, Metrics};

use link::Link;
use pipe::Pipe;
use scripts::Scripts;
use subs::Subs;

/// The broker of a cluster node.
pub struct RedisBroker {
    inner: Arc<Inner>,
    stop: CancellationToken,
}

struct Inner {
    /// Where what it delivers goes (this node's hub).
    events: Arc<dyn Events>,
    policies: Policies,
    config: ClusterConfig,
    /// What is believed of messages from Redis: payloads up to
    /// `limits.max_message_size`, presence up to `limits.max_connections`
    /// connections per member and node.
    max_message: usize,
    max_conns: usize,
    /// This node's number (claimed in Redis before the node serves).
    node: AtomicU16,
    node_id: String,
    link: Arc<Link>,
    subs: Arc<Subs>,
    pipe: Arc<Pipe>,
    scripts: Scripts,
    metrics: Metrics,
    /// Names this node's life: new epochs and the epoch of positions
    /// handed out while Redis is unreachable.
    nonce: String,
    serial: AtomicU64,
    /// `userN` while Redis is unreachable: from a range of this node's own.
    local_seqs: DashMap<Box<str>, u64>,
    /// The highest `userN` this node handed out per route, to raise the
    /// shared counter to should Redis come back without it.
    seq_max: DashMap<Box<str>, u64>,
    /// Disconnect requests waiting for other nodes' answers.
    asks: DashMap<u64, Arc<node::Ask>>,
    /// The operator view's questions waiting for answers.
    queries: DashMap<u64, Arc<query::Asked>>,
    next_ask: AtomicU64,
    stop: CancellationToken,
    /// Whether the node's number is settled (claimed, or given up on).
    claimed: watch::Sender<bool>,
    /// Why the node cannot take part (wrong credentials, an untrusted
    /// certificate), found at start.
    fatal: std::sync::OnceLock<String>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl RedisBroker {
    /// A broker for this node's `hub`, reaching Redis at
    /// `config.cluster.redis_url`. Waits at most `cluster.timeout` for Redis
    /// (to claim a node number); without it the node starts alone and joins
    /// the cluster when Redis answers. Needs a tokio runtime.
    pub fn new(
        events: Arc<dyn Events>,
        config: &Config,
        metrics: &Metrics,
    ) -> Result<RedisBroker, crate::error::Error> {
        let cluster = config.cluster.clone();
        let rand = std::collections::hash_map::RandomState::new().hash_one(std::process::id());
        let node_id = if cluster.node_id.is_empty() {
            format!("node-{:08x}", rand as u32)
        } else {
            cluster.node_id.clone()
        };
        let stop = CancellationToken::new();
        let subs = Arc::new(Subs::new());
        subs.add_fixed(node::all_channel(&cluster.prefix).into());
        let sharded = cluster.redis_mode == crate::config::RedisMode::Cluster;
        let scripts = Scripts::new(sharded);
        let pipe = Arc::new(Pipe::new(
            vec![
                scripts.publish.clone(),
                scripts.join.clone(),
                scripts.leave.clone(),
                scripts.refresh.clone(),
            ],
            if sharded { pipe::SLOTS } else { 1 },
        ));
        // The push handler needs the broker, which needs the link: it
        // finds the broker through a slot filled right after.
        let slot: Arc<std::sync::OnceLock<std::sync::Weak<Inner>>> = Arc::default();
        let push_slot = slot.clone();
        let link = Link::new(&cluster, move |info| {
            if let Some(inner) = push_slot.get().and_then(|w| w.upgrade()) {
                inner.on_push(info);
            }
        })
        .map_err(|e| crate::error::Error::Config(format!("`cluster.redis_url`: {e}")))?;
        let link = Arc::new(link);
        metrics.broker_up.set(0);
        let inner = Arc::new(Inner {
            events,
            policies: Policies::new(&config.rooms),
            config: cluster,
            max_message: config.limits.max_message_size,
            max_conns: config.limits.max_connections,
            node: AtomicU16::new(link::random_node()),
            node_id,
            link,
            subs,
            pipe,
            scripts,
            metrics: metrics.clone(),
            nonce: format!("{:08x}", (rand >> 32) as u32),
            serial: AtomicU64::new(0),
            local_seqs: DashMap::new(),
            seq_max: DashMap::new(),
            asks: DashMap::new(),
            queries: DashMap::new(),
            next_ask: AtomicU64::new(1),
            stop: stop.clone(),
            claimed: watch::channel(false).0,
            fatal: std::sync::OnceLock::new(),
        });
        let _ = slot.set(Arc::downgrade(&inner));
        inner.clone().start();
        Ok(RedisBroker { inner, stop })
    }
}

impl Drop for RedisBroker {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl Inner {
    /// This node's number.
    fn node(&self) -> u16 {
        self.node.load(Ordering::Acquire)
    }

    /// Claim a node number (at most `cluster.timeout` of trying; without
    /// Redis the provisional one stays, and is claimed when Redis is back),
    /// then listen on the node's own channel.
    async fn settle(self: Arc<Self>) {
        let claimed = tokio::time::timeout(
            self.config.timeout * 2,
            link::claim(&self.link, &self.config, &self.node_id),
        )
        .await;
        // A cluster client says only that it reached no node: ask the
        // seeds why, in case it is not something waiting mends.
        let refusal = match &claimed {
            Ok(Ok(_)) => None,
            _ if self.link.is_cluster() => link::seeds_refusal(&self.config).await,
            _ => None,
        };
        if let Some(why) = refusal {
            tracing::error!("{why}");
            let _ = self.fatal.set(why);
        }
        match claimed {
            _ if self.fatal.get().is_some() => {}
            Ok(Ok(Some(n))) => {
                self.node.store(n, Ordering::Release);
                self.observed(true);
            }
            Ok(Ok(None)) => tracing::error!(
                "every node number is taken: is a cluster of 4095 nodes really running?"
            ),
            Ok(Err(e)) => match link::fatal(&self.config, &e) {
                // Not something waiting heals: the server does not start.
                Some(why) => {
                    tracing::error!("{why}");
                    let _ = self.fatal.set(why);
                }
                None => {
                    tracing::warn!(error = %e, "Redis unreachable at start: this node serves alone until it comes back")
                }
            },
            Err(_) => tracing::warn!(
                "Redis did not answer at start: this node serves alone until it does"
            ),
        }
        self.subs
            .add_fixed(node::node_channel(&self.config.prefix, self.node()).into());
        tracing::info!(node = self.node(), node_id = %self.node_id, "cluster node started");
        self.claimed.send_replace(true);
    }

    /// Done once the node number is settled and its channels are listened
    /// to (or Redis is found unreachable).
    async fn ready(self: Arc<Self>) {
        let mut settled = self.claimed.subscribe();
        let _ = settled.wait_for(|c| *c).await;
        if self.link.is_up() && !self.subs.wait_fixed(self.config.timeout * 2).await {
            tracing::warn!("not yet subscribed to this node's channels; serving anyway");
        }
    }

    /// Start the background tasks: subscriptions, writes, health.
    fn start(self: Arc<Self>) {
        tokio::spawn(cancelled(self.stop.clone(), self.clone().settle()));
        let stop = self.stop.clone();
        let subs = self.subs.clone();
        let link = self.link.clone();
        let errors = self.metrics.broker_error(BrokerOp::Subscribe).clone();
        tokio::spawn(cancelled(stop.clone(), subs.run(link, errors)));
        let weak = Arc::downgrade(&self);
        // One Redis is up or down with its writes; a cluster's shard that
        // fails its writes fails only its own rooms' (the health check
        // says whether the cluster is reachable).
        let single = !self.link.is_cluster();
        self.pipe
            .start(self.link.cmd.clone(), self.config.timeout, move |ok| {
                if let Some(inner) = weak.upgrade().filter(|_| single) {
                    inner.observed(ok);
                }
            });
        let weak = Arc::downgrade(&self);
        tokio::spawn(cancelled(stop, health(weak)));
    }

    /// What a check or a command saw of Redis.
    fn observed(self: &Arc<Self>, up: bool) {
        if !self.link.set_up(up) {
            return;
        }
        self.metrics.broker_up.set(i64::from(up));
        if up {
            tracing::info!("Redis reachable again: resubscribing, rebuilding presence");
            let inner = self.clone();
            tokio::spawn(async move { inner.back().await });
        } else {
            tracing::warn!(
                "Redis unreachable: serving this node's members alone (messages are not stored)"
            );
        }
    }

    /// Redis is back: the node number, presence and missed messages.
    async fn back(self: Arc<Self>) {
        self.renew().await;
        self.subs.resubscribe_all();
        self.raise_seqs().await;
        self.refresh_presence();
        for sub in self.subs.all() {
            self.resync(&sub);
        }
    }

    async fn renew(&self) {
        if !*self.claimed.borrow() {
            return;
        }
        match link::renew(&self.link, &self.config, &self.node_id, self.node()).await {
            Ok(true) => {}
            Ok(false) => tracing::error!(
                node = self.node(),
                "another node holds this node's number (it started while Redis was unreachable): connection ids may collide; restart this node"
            ),
            Err(_) => {}
        }
    }

    /// A key of `room` (`{prefix}:{room}:suffix`: one hash slot per room).
    fn key(&self, room: &str, suffix: &str) -> String {
        format!("{}:{{{room}}}:{suffix}", self.config.prefix)
    }

    /// The channel of `room`.
    fn channel(&self, room: &str) -> String {
        self.key(room, "c")
    }

    /// The pipe lane of `room`'s writes: its hash slot in a cluster.
    fn lane(&self, room: &str) -> u16 {
        if self.link.is_cluster() {
            // Of a key, not the room's name: a room named with braces
            // has the slot Redis gives its keys.
            pipe::slot(self.key(room, "m").as_bytes())
        } else {
            0
        }
    }

    /// A fresh epoch for a stream Redis does not have.
    fn new_epoch(&self) -> String {
        let n = self.serial.fetch_add(1, Ordering::Relaxed);
        format!("{}.{}.{n}", self.nonce, self.node())
    }

    /// The epoch of positions handed out while Redis is unreachable: they
    /// can never resume (no stream has it).
    fn local_epoch(&self) -> String {
        format!("{}.{}.local", self.nonce, self.node())
    }

    fn error(&self, op: BrokerOp) {
        self.metrics.broker_error(op).inc();
    }
}

/// Run `f` until `stop`.
async fn cancelled(stop: CancellationToken, f: impl std::future::Future<Output = ()>) {
    tokio::select! {
        () = stop.cancelled() => {}
        () = f => {}
    }
}

/// Check Redis every second; refresh presence and the node number every
/// third of `presence_ttl`.
async fn health(weak: std::sync::Weak<Inner>) {
    let mut since_refresh = Duration::ZERO;
    let tick = Duration::from_secs(1);
    loop {
        let Some(inner) = weak.upgrade() else { return };
        let refresh_every = (inner.config.presence_ttl / 3).max(Duration::from_millis(300));
        let step = tick.min(refresh_every);
        let up = inner.link.check().await;
        inner.observed(up);
        since_refresh += step;
        if up && since_refresh >= refresh_every {
            since_refresh = Duration::ZERO;
            inner.renew().await;
            inner.refresh_presence();
        }
        drop(inner);
        tokio::time::sleep(step).await;
    }
}
