//! Prometheus metrics, registered in a `Registry` owned by the server value
//! (never the process-global default registry), so two servers in one process
//! or a host application's own registry both work.
//!
//! Metric names are a public interface: dashboards and alerts depend on them.
//! Labels only ever take values from small fixed sets (hook names, error
//! kinds); never room names, nicknames or user ids.

use std::sync::Arc;

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

mod api;
mod compression;
mod labels;

pub use api::API_ACTIONS;
pub use compression::{CompressionMetrics, Declined};

pub use labels::{
    BrokerOp, ProtocolErrorKind, Recovery, Refused, RejectReason, SocketIoError, Transport,
};

/// Pre-resolved per-hook handles, so the hot path never looks labels up.
#[derive(Clone)]
pub struct HookMetrics {
    /// `roomcast_script_calls_total{hook}`
    pub calls: IntCounter,
    /// `roomcast_script_errors_total{hook}`
    pub errors: IntCounter,
    /// `roomcast_script_duration_seconds{hook}`
    pub duration: Histogram,
}

/// Every metric the server exports, plus the registry that holds them. Cheap
/// to clone (one `Arc`); the handles are reached through `Deref`.
#[derive(Clone)]
pub struct Metrics(Arc<MetricSet>);

impl std::ops::Deref for Metrics {
    type Target = MetricSet;

    fn deref(&self) -> &MetricSet {
        &self.0
    }
}

/// The metric handles behind [`Metrics`].
pub struct MetricSet {
    registry: Registry,
    /// Count per-message traffic and time hooks (see `metrics.enabled`).
    pub per_message: bool,
    /// Open connections (WebSocket connections, socket.io namespace connections).
    pub connections: IntGauge,
    /// The configured connection cap (`limits.max_connections`; 0: none).
    pub connections_max: IntGauge,
    /// WebSocket connections opened (upgrades completed).
    pub connections_opened: IntCounter,
    /// WebSocket connections closed, for any reason.
    pub connections_closed: IntCounter,
    /// Data messages (text or binary, after reassembly) received from clients.
    pub messages_received: IntCounter,
    /// Data messages written to clients (one per recipient).
    pub messages_sent: IntCounter,
    /// Payload bytes of received data messages.
    pub bytes_received: IntCounter,
    /// Payload bytes of data messages written to clients.
    pub bytes_sent: IntCounter,
    /// Rooms that currently have members.
    pub rooms: IntGauge,
    /// Bytes of history kept for `history` and resume, across rooms.
    pub history_bytes: IntGauge,
    /// Members closed because their outbox was full while they were there
    /// (not reading fast enough).
    pub slow_consumers: IntCounter,
    /// Members whose outbox filled because they had already gone (their
    /// connection then ended without a close handshake): a mass disconnect,
    /// not slow consumers.
    pub gone_with_full_outbox: IntCounter,
    /// Messages dropped because a script failed on them.
    pub messages_dropped_script_error: IntCounter,
    /// Binary messages dropped because the route's script has no `on_binary` hook.
    pub messages_dropped_unhandled: IntCounter,
    /// Messages refused by a rate limit: a flooder's last message when it
    /// is closed, or one a socket.io long-polling client sent past the
    /// held-back bound (it is told). Otherwise nothing is dropped: see
    /// `rate_limit_waits`.
    pub messages_dropped_rate_limited: IntCounter,
    /// Messages (and pings) held back by a rate limit until its bucket
    /// refilled, while the connection was not read (backpressure).
    pub rate_limit_waits: IntCounter,
    /// Connections closed with 1008 for flooding past the rate limit.
    pub rate_limit_closes: IntCounter,
    /// Connections closed with 4009 for not answering a ping.
    pub heartbeat_timeouts: IntCounter,
    /// Connections closed with 4001 when their token expired.
    pub token_expirations: IntCounter,
    /// Rooms with members here whose history was lost (a reset told).
    pub room_resets: IntCounter,
    /// `refresh` commands that replaced a connection's token.
    pub token_refreshes_ok: IntCounter,
    /// `refresh` commands refused (the old token stands).
    pub token_refreshes_refused: IntCounter,
    /// HTTP connections dropped for not sending a request head in time.
    pub handshake_timeouts: IntCounter,
    /// roomcast.v1 commands that were not valid JSON or not a known command.
    pub bad_commands: IntCounter,
    /// HTTP API requests refused for a missing or wrong key.
    pub api_unauthorized: IntCounter,
    pub(super) api_actions: IntCounterVec,
    /// Script reloads that succeeded.
    pub reloads_ok: IntCounter,
    /// Script reloads that failed (old version kept).
    pub reloads_error: IntCounter,
    /// Scripts whose file failed to load on the last try (an older version runs).
    pub scripts_stale: IntGauge,
    script_calls: IntCounterVec,
    script_errors: IntCounterVec,
    script_duration: HistogramVec,
    protocol_errors: Vec<IntCounter>,
    http_rejections: Vec<IntCounter>,
    socketio_errors: Vec<IntCounter>,
    socketio_recoveries: Vec<IntCounter>,
    by_transport: Vec<IntGauge>,
    /// Engine.IO handshakes not used yet (no session: not in
    /// `roomcast_connections`).
    pub socketio_pending: IntGauge,
    /// Whether the broker reaches its store (always 1 on a single node).
    pub broker_up: IntGauge,
    broker_errors: Vec<IntCounter>,
    broker_refused: Vec<IntCounter>,
    /// Publications delivered on this node only (its store unreachable).
    pub broker_not_stored: IntCounter,
    /// Publications this node read back from a room's stream after missing
    /// them on its channel (a reconnect).
    pub broker_recovered: IntCounter,
    /// Publications this node missed and could not read back (the stream no
    /// longer held them).
    pub broker_gaps: IntCounter,
    /// permessage-deflate.
    pub compression: CompressionMetrics,
}

impl Metrics {
    /// Create every metric and register it in a fresh registry.
    pub fn new() -> Metrics {
        Metrics::with_per_message(true)
    }

    /// The same, choosing whether per-message counters and hook timings run.
    pub fn with_per_message(per_message: bool) -> Metrics {
        let registry = Registry::new();
        let gauge = |name: &str, help: &str| {
            let g = IntGauge::new(name, help).expect("valid metric");
            registry
                .register(Box::new(g.clone()))
                .expect("unique metric");
            g
        };
        let counter = |name: &str, help: &str| {
            let c = IntCounter::new(name, help).expect("valid metric");
            registry
                .register(Box::new(c.clone()))
                .expect("unique metric");
            c
        };
        let counter_vec = |name: &str, help: &str, label: &str| {
            let c = IntCounterVec::new(Opts::new(name, help), &[label]).expect("valid metric");
            registry
                .register(Box::new(c.clone()))
                .expect("unique metric");
            c
        };

        // The running version, as a constant 1 (the usual `_build_info` shape).
        let build_info = IntGauge::with_opts(
            Opts::new(
                "roomcast_build_info",
                "roomcast's version, as a label; always 1.",
            )
            .const_label("version", env!("CARGO_PKG_VERSION")),
        )
        .expect("valid metric");
        build_info.set(1);
        registry
            .register(Box::new(build_info))
            .expect("unique metric");

        let script_calls = counter_vec(
            "roomcast_script_calls_total",
            "Script hook invocations.",
            "hook",
        );
        let script_errors = counter_vec(
            "roomcast_script_errors_total",
            "Script hook invocations that failed (the message was dropped).",
            "hook",
        );
        let script_duration = HistogramVec::new(
            HistogramOpts::new(
                "roomcast_script_duration_seconds",
                "Wall-clock time spent in script hooks.",
            )
            .buckets(vec![
                0.000_005, 0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001,
                0.002_5, 0.005, 0.01, 0.025, 0.1,
            ]),
            &["hook"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(script_duration.clone()))
            .expect("unique metric");

        let reloads = counter_vec(
            "roomcast_script_reloads_total",
            "Script (re)loads after a change on disk, by result (ok, or error: old version kept).",
            "result",
        );
        let refreshes = counter_vec(
            "roomcast_token_refreshes_total",
            "refresh commands, by result (ok: the connection's token replaced; refused: the old one stands).",
            "result",
        );
        let protocol = counter_vec(
            "roomcast_protocol_errors_total",
            "Connections failed for breaking RFC 6455 or a configured limit, by kind.",
            "kind",
        );
        let rejections = counter_vec(
            "roomcast_http_rejections_total",
            "Requests on WebSocket routes refused before the upgrade, by reason.",
            "reason",
        );
        let socketio = counter_vec(
            "roomcast_socketio_errors_total",
            "socket.io requests and packets refused, by kind.",
            "kind",
        );
        let recoveries = counter_vec(
            "roomcast_socketio_recoveries_total",
            "socket.io connection state recovery: reconnects that took their session up again, or why not; and ended sessions that could not be kept.",
            "result",
        );
        let by_transport = IntGaugeVec::new(
            Opts::new(
                "roomcast_connections_by_transport",
                "Open connections, by transport (websocket, socketio).",
            ),
            &["transport"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(by_transport.clone()))
            .expect("unique metric");
        let broker_errors = counter_vec(
            "roomcast_broker_errors_total",
            "Cluster broker operations that failed in Redis, by operation.",
            "op",
        );
        let broker_refused = counter_vec(
            "roomcast_broker_refused_total",
            "Messages from Redis refused as not to be believed (forged offsets, oversized payloads, bad close codes, impossible presence), by what was wrong.",
            "what",
        );
        let dropped = counter_vec(
            "roomcast_messages_dropped_total",
            "Received messages that produced no output, by reason.",
            "reason",
        );

        Metrics(Arc::new(MetricSet {
            per_message,
            connections: gauge(
                "roomcast_connections",
                "Open connections (WebSocket connections and socket.io namespace connections).",
            ),
            connections_max: gauge(
                "roomcast_connections_max",
                "The configured cap on open WebSocket connections (0: no cap).",
            ),
            connections_opened: counter(
                "roomcast_connections_opened_total",
                "WebSocket connections opened.",
            ),
            connections_closed: counter(
                "roomcast_connections_closed_total",
                "WebSocket connections closed.",
            ),
            messages_received: counter(
                "roomcast_messages_received_total",
                "Data messages received from clients.",
            ),
            messages_sent: counter(
                "roomcast_messages_sent_total",
                "Data messages written to clients (one per recipient).",
            ),
            bytes_received: counter(
                "roomcast_bytes_received_total",
                "Payload bytes of data messages received.",
            ),
            bytes_sent: counter(
                "roomcast_bytes_sent_total",
                "Payload bytes of data messages written to clients.",
            ),
            rooms: gauge("roomcast_rooms", "Rooms with at least one member."),
            history_bytes: gauge(
                "roomcast_history_bytes",
                "Bytes of room history kept for `history` and resume (bounded by limits.history_bytes).",
            ),
            slow_consumers: counter(
                "roomcast_slow_consumers_total",
                "Connections closed because their outbox was full while the client was there.",
            ),
            gone_with_full_outbox: counter(
                "roomcast_gone_with_full_outbox_total",
                "Connections whose outbox filled after the client had gone (a disconnect, not a slow consumer).",
            ),
            messages_dropped_script_error: dropped.with_label_values(&["script_error"]),
            messages_dropped_unhandled: dropped.with_label_values(&["unhandled"]),
            messages_dropped_rate_limited: dropped.with_label_values(&["rate_limited"]),
            rate_limit_waits: counter(
                "roomcast_rate_limit_waits_total",
                "Messages held back by a rate limit (the connection not read) until its bucket refilled.",
            ),
            rate_limit_closes: counter(
                "roomcast_rate_limit_closes_total",
                "Connections closed with 1008 for flooding past the rate limit.",
            ),
            heartbeat_timeouts: counter(
                "roomcast_heartbeat_timeouts_total",
                "Connections closed with 4009 for not answering a ping in time.",
            ),
            token_expirations: counter(
                "roomcast_token_expirations_total",
                "Connections closed with 4001 because their token expired.",
            ),
            room_resets: counter(
                "roomcast_room_resets_total",
                "Rooms with members on this node whose history was lost (a Redis that came back empty): their members were told the new epoch.",
            ),
            token_refreshes_ok: refreshes.with_label_values(&["ok"]),
            token_refreshes_refused: refreshes.with_label_values(&["refused"]),
            handshake_timeouts: counter(
                "roomcast_handshake_timeouts_total",
                "HTTP connections dropped for not sending a complete request head in time.",
            ),
            bad_commands: counter(
                "roomcast_bad_commands_total",
                "roomcast.v1 commands that were not JSON or not a known command (answered with an error event).",
            ),
            api_unauthorized: counter(
                "roomcast_api_unauthorized_total",
                "HTTP API requests refused for a missing or wrong key.",
            ),
            api_actions: api::actions(&registry),
            reloads_ok: reloads.with_label_values(&["ok"]),
            reloads_error: reloads.with_label_values(&["error"]),
            scripts_stale: gauge(
                "roomcast_scripts_stale",
                "Scripts whose file failed to load on the last reload: an older version is running.",
            ),
            script_calls,
            script_errors,
            script_duration,
            protocol_errors: ProtocolErrorKind::ALL
                .iter()
                .map(|k| protocol.with_label_values(&[k.label()]))
                .collect(),
            http_rejections: RejectReason::ALL
                .iter()
                .map(|r| rejections.with_label_values(&[r.label()]))
                .collect(),
            socketio_errors: SocketIoError::ALL
                .iter()
                .map(|k| socketio.with_label_values(&[k.label()]))
                .collect(),
            socketio_recoveries: Recovery::ALL
                .iter()
                .map(|r| recoveries.with_label_values(&[r.label()]))
                .collect(),
            by_transport: Transport::ALL
                .iter()
                .map(|t| by_transport.with_label_values(&[t.label()]))
                .collect(),
            socketio_pending: gauge(
                "roomcast_socketio_pending_handshakes",
                "Engine.IO handshakes not used yet (no poll, POST or upgrade since): no session, not counted in roomcast_connections.",
            ),
            broker_up: gauge(
                "roomcast_broker_up",
                "1 while the broker reaches its store (Redis, for a cluster node; always 1 for a single node).",
            ),
            broker_errors: BrokerOp::ALL
                .iter()
                .map(|o| broker_errors.with_label_values(&[o.label()]))
                .collect(),
            broker_refused: Refused::ALL
                .iter()
                .map(|r| broker_refused.with_label_values(&[r.label()]))
                .collect(),
            broker_not_stored: counter(
                "roomcast_broker_not_stored_total",
                "Publications delivered on this node only, not stored: Redis was unreachable.",
            ),
            broker_recovered: counter(
                "roomcast_broker_recovered_total",
                "Publications read back from a room's stream after this node missed them (a reconnect).",
            ),
            broker_gaps: counter(
                "roomcast_broker_gaps_total",
                "Publications this node missed and could not read back (no longer in the stream).",
            ),
            compression: CompressionMetrics::new(&registry),
            registry,
        }))
    }
}

impl MetricSet {
    /// The registry holding every roomcast metric (to merge into a host's exposition).
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Handles for one script hook, by its label (resolved once, by the
    /// script host, so the hot path never looks labels up).
    pub fn hook(&self, label: &str) -> HookMetrics {
        HookMetrics {
            calls: self.script_calls.with_label_values(&[label]),
            errors: self.script_errors.with_label_values(&[label]),
            duration: self.script_duration.with_label_values(&[label]),
        }
    }

    /// Count a protocol error of `kind`.
    pub fn protocol_error(&self, kind: ProtocolErrorKind) {
        self.protocol_errors[kind as usize].inc();
    }

    /// Count a refused HTTP request.
    pub fn http_rejection(&self, reason: RejectReason) {
        self.http_rejections[reason as usize].inc();
    }

    /// Count what became of a socket.io recovery.
    pub fn socketio_recovery(&self, result: Recovery) {
        self.socketio_recoveries[result as usize].inc();
    }

    /// Count a socket.io error.
    pub fn socketio_error(&self, kind: SocketIoError) {
        self.socketio_errors[kind as usize].inc();
    }

    /// The counter of one socket.io error kind (for parts that count it themselves).
    pub fn socketio_counter(&self, kind: SocketIoError) -> IntCounter {
        self.socketio_errors[kind as usize].clone()
    }

    /// The counter of one failed broker operation.
    pub fn broker_error(&self, op: BrokerOp) -> &IntCounter {
        &self.broker_errors[op as usize]
    }

    /// The counter of one kind of refused message from Redis.
    pub fn broker_refused(&self, what: Refused) -> &IntCounter {
        &self.broker_refused[what as usize]
    }

    /// The open-connections gauge of one transport.
    pub fn transport(&self, t: Transport) -> &IntGauge {
        &self.by_transport[t as usize]
    }

    /// Render the Prometheus text exposition format.
    pub fn encode(&self) -> Vec<u8> {
        let mut buf = Vec::with_capacity(8 * 1024);
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .expect("text encoding into a Vec cannot fail");
        buf
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// Content type of the exposition `encode` renders (Prometheus text 0.0.4).
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
