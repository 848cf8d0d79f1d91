//! `[limits]` and `[heartbeat]`: what one connection may do and cost.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{bad, Error};

/// Limits on what a client may do and on what the server holds for clients.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Largest message (after reassembling fragments) in bytes; larger → Close 1009.
    pub max_message_size: usize,
    /// Largest single frame payload in bytes; larger → Close 1009.
    /// Defaults to `max_message_size` when 0.
    pub max_frame_size: usize,
    /// Outbox bound in queued frames; a member past it is a slow consumer.
    /// High enough that a burst of small frames (a mass leave in a big
    /// room: one presence frame per departed member) stays within it: the
    /// byte bound is the one that holds memory.
    pub outbox_messages: usize,
    /// Outbox bound in queued bytes.
    pub outbox_bytes: usize,
    /// After the server sends a Close frame, how long it waits for the client's.
    #[serde(with = "humantime_serde")]
    pub close_timeout: Duration,
    /// A client must send its complete HTTP request head within this time
    /// (slowloris protection; also applies to idle keep-alive connections),
    /// and use an Engine.IO handshake (poll, POST or upgrade) within it.
    #[serde(with = "humantime_serde")]
    pub handshake_timeout: Duration,
    /// A plain HTTP request (the API, /metrics, the web client, a socket.io
    /// POST), body included, must be complete within this time, else 408
    /// and the connection is closed (a body trickled a byte a second).
    /// WebSocket upgrades and socket.io long-poll GETs are exempt.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Most WebSocket connections the server holds; more → 503 before the upgrade.
    pub max_connections: usize,
    /// Most WebSocket connections from one IP address; more → 429 before the
    /// upgrade. 0 = no per-IP cap (the default, because behind a reverse proxy
    /// every client has the proxy's address).
    pub max_connections_per_ip: usize,
    /// Per-connection message rate limit, for routes and rooms that set none
    /// of their own.
    pub rate: RateLimit,
    /// Rooms one roomcast.v1 connection may be in at once.
    pub max_rooms_per_connection: usize,
    /// Most bytes of kept history (messages for `history` and resume) across
    /// every room on this node. Past it, the history of rooms nobody is in
    /// goes first, longest idle first, then the oldest messages of the rest.
    pub history_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_size: 64 * 1024,
            max_frame_size: 0,
            outbox_messages: 16384,
            outbox_bytes: 4 << 20,
            close_timeout: Duration::from_secs(2),
            handshake_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            max_connections: 10_000,
            max_connections_per_ip: 0,
            rate: RateLimit::default(),
            max_rooms_per_connection: 32,
            history_bytes: 256 << 20,
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

    pub(super) fn validate(&self) -> Result<(), Error> {
        if self.max_message_size == 0 {
            return bad("limits.max_message_size", "must be greater than 0");
        }
        if self.outbox_messages == 0 {
            return bad("limits.outbox_messages", "must be greater than 0");
        }
        if self.outbox_bytes < self.max_message_size.min(1 << 20) {
            return bad(
                "limits.outbox_bytes",
                "must hold at least one maximum-size message (or 1 MiB)",
            );
        }
        if self.max_rooms_per_connection == 0 {
            return bad("limits.max_rooms_per_connection", "must be greater than 0");
        }
        if self.request_timeout.is_zero() {
            return bad("limits.request_timeout", "must be greater than 0");
        }
        if self.max_connections == 0 {
            return bad("limits.max_connections", "must be greater than 0");
        }
        self.rate.validate("limits.rate")
    }
}

/// A token bucket per connection. A message beyond it is held back, and the
/// connection is not read, until the bucket refills (TCP slows the sender;
/// nothing is dropped); a client held back `close_after_throttled` times
/// within `abuse_window` is closed with 1008.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimit {
    /// Sustained messages per second; 0 disables rate limiting.
    pub messages_per_second: u32,
    /// Messages allowed in a burst above the sustained rate.
    pub burst: u32,
    /// Close with 1008 once this many messages had to wait within
    /// `abuse_window` (`close_after_dropped`, its name before nothing was
    /// dropped, still works).
    #[serde(alias = "close_after_dropped")]
    pub close_after_throttled: u32,
    /// Window over which held-back messages are counted.
    #[serde(with = "humantime_serde")]
    pub abuse_window: Duration,
}

impl Default for RateLimit {
    fn default() -> Self {
        RateLimit {
            messages_per_second: 50,
            burst: 100,
            close_after_throttled: 400,
            abuse_window: Duration::from_secs(10),
        }
    }
}

impl RateLimit {
    /// No limit: for routes whose messages only go back to their sender.
    pub fn off() -> RateLimit {
        RateLimit {
            messages_per_second: 0,
            ..RateLimit::default()
        }
    }

    pub(super) fn validate(&self, key: &str) -> Result<(), Error> {
        if self.messages_per_second > 0 && self.burst == 0 {
            return bad(
                &format!("{key}.burst"),
                "must be at least 1 when rate limiting is on",
            );
        }
        Ok(())
    }
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

impl Default for Heartbeat {
    fn default() -> Self {
        Heartbeat {
            interval: Duration::from_secs(30),
            timeout: Duration::from_secs(10),
        }
    }
}

impl Heartbeat {
    pub(super) fn validate(&self) -> Result<(), Error> {
        if !self.interval.is_zero() && self.timeout.is_zero() {
            return bad(
                "heartbeat.timeout",
                "must be greater than 0 when heartbeats are on",
            );
        }
        Ok(())
    }
}
