//! What every part of a server shares: its config and metrics, the hub of
//! local rooms, the broker, the scripts and routes, the connection caps and
//! the shutdown signal. Built once by [`crate::Server::new`]; everything else
//! holds an `Arc<State>`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::admin::Board;
use crate::auth::Authenticator;
use crate::broker::{Broker, MemoryBroker, RedisBroker};
use crate::caps::Caps;
use crate::config::{Config, Native, Policies};
use crate::deflate::Deflate;
use crate::error::Error;
use crate::hub::Hub;
use crate::ids::{ConnId, ConnIds};
use crate::metrics::Metrics;
use crate::script::{Script, ScriptHost};

/// A WebSocket route bound to what handles its messages.
pub(crate) struct Route {
    pub(crate) name: Arc<str>,
    /// The route's script; `None` for a native route.
    pub(crate) script: Option<Arc<Script>>,
    pub(crate) native: Option<Native>,
    pub(crate) default_room: String,
    /// The rate limit its messages are under (its own, or `[limits.rate]`).
    pub(crate) rate: crate::config::RateLimit,
    /// Its WebSocket clients may negotiate permessage-deflate.
    pub(crate) compression: bool,
}

/// State shared by the accept loop, the HTTP handler and every session.
pub(crate) struct State {
    pub(crate) config: Config,
    pub(crate) metrics: Metrics,
    pub(crate) policies: Policies,
    /// This node's rooms and connections.
    pub(crate) hub: Arc<Hub>,
    /// Offsets, history, presence and fan-out, for one node or many.
    pub(crate) broker: Arc<dyn Broker>,
    pub(crate) scripts: Arc<ScriptHost>,
    pub(crate) routes: Vec<Arc<Route>>,
    pub(crate) caps: Arc<Caps>,
    /// permessage-deflate's settings (`None`: `compression.enabled` off).
    pub(crate) deflate: Option<Arc<Deflate>>,
    /// Token verification, when a key is configured.
    pub(crate) auth: Option<Authenticator>,
    /// The operator view's figures (`None`: no API key, no view).
    pub(crate) board: Option<Arc<Board>>,
    /// Cancelled when the server shuts down: sessions are told to close.
    pub(crate) shutdown: CancellationToken,
    /// Every session, so shutdown can wait for them (hyper's graceful
    /// shutdown does not cover upgraded connections).
    pub(crate) sessions: TaskTracker,
    draining: AtomicBool,
    conn_ids: ConnIds,
}

impl State {
    /// Validate `config`, compile every script, and build the parts, with
    /// the single-node memory broker, or a cluster node's broker when
    /// `cluster.redis_url` is set.
    pub(crate) fn new(config: Config) -> Result<State, Error> {
        State::try_with_broker(config, |hub, config, metrics| {
            if config.cluster.enabled() {
                return Ok(Arc::new(RedisBroker::new(hub, config, metrics)?) as Arc<dyn Broker>);
            }
            metrics.broker_up.set(1);
            Ok(Arc::new(MemoryBroker::new(
                hub,
                config,
                metrics.history_bytes.clone(),
            )))
        })
    }

    /// The same, with the broker `broker` makes for this node's hub.
    #[cfg(test)]
    pub(crate) fn with_broker(
        config: Config,
        broker: impl FnOnce(Arc<Hub>, &Config, &Metrics) -> Arc<dyn Broker>,
    ) -> Result<State, Error> {
        State::try_with_broker(config, |hub, config, metrics| {
            Ok(broker(hub, config, metrics))
        })
    }

    fn try_with_broker(
        config: Config,
        broker: impl FnOnce(Arc<Hub>, &Config, &Metrics) -> Result<Arc<dyn Broker>, Error>,
    ) -> Result<State, Error> {
        config.validate()?;
        let metrics = Metrics::with_per_message(config.metrics.enabled);
        metrics
            .connections_max
            .set(i64::try_from(config.limits.max_connections).unwrap_or(i64::MAX));
        for (name, _) in config.api.named_keys() {
            metrics.api_key_named(name);
        }
        let scripts = Arc::new(ScriptHost::new(&config, metrics.clone())?);
        let routes = config
            .routes
            .iter()
            .map(|r| {
                Arc::new(Route {
                    name: r.name.as_str().into(),
                    script: scripts.script(&r.script),
                    native: r.native,
                    default_room: r.default_room.clone(),
                    rate: r.effective_rate(&config.limits.rate).into_owned(),
                    compression: r.compression,
                })
            })
            .collect();
        let policies = Policies::new(&config.rooms);
        let hub = Arc::new(Hub::new(metrics.clone()));
        let broker = broker(hub.clone(), &config, &metrics)?;
        Ok(State {
            auth: Authenticator::new(&config.auth)?,
            board: config.api.enabled().then(|| Arc::new(Board::new())),
            caps: Arc::new(Caps::new(&config.limits)),
            deflate: Deflate::new(&config.compression, &metrics),
            conn_ids: ConnIds::new(),
            broker,
            hub,
            policies,
            metrics,
            scripts,
            routes,
            config,
            shutdown: CancellationToken::new(),
            sessions: TaskTracker::new(),
            draining: AtomicBool::new(false),
        })
    }

    /// The route named `name`.
    pub(crate) fn route(&self, name: &str) -> Option<&Arc<Route>> {
        self.routes.iter().find(|r| &*r.name == name)
    }

    /// The route a bare `/` goes to.
    pub(crate) fn default_route(&self) -> &Arc<Route> {
        self.route(&self.config.default_route)
            .expect("validated: default_route exists")
    }

    /// A new connection's id.
    pub(crate) fn next_conn_id(&self) -> ConnId {
        self.conn_ids.next(self.broker.node())
    }

    /// Whether shutdown has begun.
    pub(crate) fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// Begin shutdown: refuse new sessions, tell every session to close
    /// (every outbox at once; then each session's task, woken, writes its
    /// Close and leaves).
    pub(crate) fn drain(&self) {
        self.draining.store(true, Ordering::Release);
        self.hub
            .close_all(crate::close::GOING_AWAY, "server shutting down");
        self.sessions.close();
        self.shutdown.cancel();
    }
}
