//! `[compression]`: permessage-deflate (RFC 7692) on WebSocket connections.

use serde::{Deserialize, Serialize};

use super::{bad, Error};

/// Whether and how messages to and from WebSocket clients are compressed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct CompressionConfig {
    /// Accept a client's permessage-deflate offer (every browser makes
    /// one) on WebSocket routes and socket.io's WebSocket transport; a
    /// route can turn it off with `compression = false`.
    pub enabled: bool,
    /// Messages shorter than this many bytes go uncompressed (the
    /// tutorial's chat lines stay as they are: compressing them costs more
    /// than it saves).
    pub threshold: usize,
    /// The deflate level, 1 (fastest) to 9 (smallest); a broadcast is
    /// compressed once for all its members, so a higher level costs once.
    pub level: u32,
    /// Bytes that clients' inbound context takeover may hold, across all
    /// connections: each such connection keeps an inflater with its LZ77
    /// window (~40 KiB for 15 bits) for its life, so its messages compress
    /// better. Past the budget, and at 0 (the default), offers are answered
    /// with `client_no_context_takeover`: no connection keeps any state.
    pub max_memory: usize,
}

impl Default for CompressionConfig {
    fn default() -> Self {
        CompressionConfig {
            enabled: true,
            threshold: 256,
            level: 6,
            max_memory: 0,
        }
    }
}

impl CompressionConfig {
    pub(super) fn validate(&self) -> Result<(), Error> {
        if !(1..=9).contains(&self.level) {
            return bad("compression.level", "must be 1 (fastest) to 9 (smallest)");
        }
        Ok(())
    }
}
