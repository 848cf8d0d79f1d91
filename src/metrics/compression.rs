//! permessage-deflate's metrics: what it saves, what it costs, who uses it.

use prometheus::{
    Counter, CounterVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

use super::Transport;

/// Why an offer of permessage-deflate was declined (label values of
/// `roomcast_compression_declined_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Declined {
    /// Not what RFC 7692 allows: an unknown or repeated parameter, a
    /// window size that is not 8 to 15, a value where none belongs.
    Invalid,
    /// Valid, but asking for what the server does not do (a window of 8
    /// bits: zlib's raw deflate has 9 at least).
    Unsupported,
}

impl Declined {
    const ALL: [Declined; 2] = [Declined::Invalid, Declined::Unsupported];

    fn label(self) -> &'static str {
        match self {
            Declined::Invalid => "invalid",
            Declined::Unsupported => "unsupported",
        }
    }
}

/// The handles, resolved once.
pub struct CompressionMetrics {
    /// Payload bytes of messages sent compressed, before compression.
    pub out_plain: IntCounter,
    /// The same messages' bytes on the wire.
    pub out_deflated: IntCounter,
    /// Payload bytes of compressed messages received, on the wire.
    pub in_deflated: IntCounter,
    /// The same messages' bytes, inflated.
    pub in_plain: IntCounter,
    /// Seconds spent compressing.
    pub out_seconds: Counter,
    /// Seconds spent inflating.
    pub in_seconds: Counter,
    /// Bytes reserved for inbound context takeover (`compression.max_memory`).
    pub takeover_bytes: IntGauge,
    connections: Vec<IntGauge>,
    declined: Vec<IntCounter>,
}

impl CompressionMetrics {
    pub(super) fn new(registry: &Registry) -> CompressionMetrics {
        let register = |c: Box<dyn prometheus::core::Collector>| {
            registry.register(c).expect("unique metric");
        };
        let bytes = IntCounterVec::new(
            Opts::new(
                "roomcast_compression_bytes_total",
                "Bytes of compressed messages, by direction (out: sent, in: received) and form (plain: the message, deflated: on the wire).",
            ),
            &["direction", "form"],
        )
        .expect("valid metric");
        register(Box::new(bytes.clone()));
        let seconds = CounterVec::new(
            Opts::new(
                "roomcast_compression_seconds_total",
                "Time spent compressing (out) and inflating (in) messages.",
            ),
            &["direction"],
        )
        .expect("valid metric");
        register(Box::new(seconds.clone()));
        let connections = IntGaugeVec::new(
            Opts::new(
                "roomcast_compression_connections",
                "Open connections that negotiated permessage-deflate, by transport.",
            ),
            &["transport"],
        )
        .expect("valid metric");
        register(Box::new(connections.clone()));
        let declined = IntCounterVec::new(
            Opts::new(
                "roomcast_compression_declined_total",
                "permessage-deflate offers declined (the connection upgraded without it), by reason.",
            ),
            &["reason"],
        )
        .expect("valid metric");
        register(Box::new(declined.clone()));
        let takeover_bytes = IntGauge::new(
            "roomcast_compression_takeover_bytes",
            "Bytes reserved for clients' inbound context takeover, within compression.max_memory.",
        )
        .expect("valid metric");
        register(Box::new(takeover_bytes.clone()));
        CompressionMetrics {
            takeover_bytes,
            out_plain: bytes.with_label_values(&["out", "plain"]),
            out_deflated: bytes.with_label_values(&["out", "deflated"]),
            in_deflated: bytes.with_label_values(&["in", "deflated"]),
            in_plain: bytes.with_label_values(&["in", "plain"]),
            out_seconds: seconds.with_label_values(&["out"]),
            in_seconds: seconds.with_label_values(&["in"]),
            connections: Transport::ALL
                .iter()
                .map(|t| connections.with_label_values(&[t.label()]))
                .collect(),
            declined: Declined::ALL
                .iter()
                .map(|d| declined.with_label_values(&[d.label()]))
                .collect(),
        }
    }

    /// Open connections with deflate on `transport`.
    pub fn connections(&self, transport: Transport) -> &IntGauge {
        &self.connections[transport as usize]
    }

    /// Count an offer declined.
    pub fn declined(&self, why: Declined) {
        self.declined[why as usize].inc();
    }
}
