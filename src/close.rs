//! Why the server ends a connection: close codes, in one place so docs and
//! code agree. They are WebSocket close codes (RFC 6455 and the 4000-4999
//! application range); other transports map them to their own disconnects.

/// Normal closure (also the reply to a client's Close without a code).
pub const NORMAL: u16 = 1000;
/// Server shutting down.
pub const GOING_AWAY: u16 = 1001;
/// RFC 6455 protocol violation.
pub const PROTOCOL_ERROR: u16 = 1002;
/// Text that is not UTF-8.
pub const INVALID_PAYLOAD: u16 = 1007;
/// The client kept flooding past the rate limit (also: its room is full).
pub const POLICY_VIOLATION: u16 = 1008;
/// Message or frame larger than the configured limit.
pub const MESSAGE_TOO_BIG: u16 = 1009;
/// A script failed and `scripts.on_error = "close"`.
pub const INTERNAL_ERROR: u16 = 1011;
/// Disconnected through the HTTP API.
pub const DISCONNECTED: u16 = 4000;
/// The connection's token expired.
pub const TOKEN_EXPIRED: u16 = 4001;
/// The client did not read fast enough: its outbox filled up.
pub const SLOW_CONSUMER: u16 = 4008;
/// The client answered no ping within `heartbeat.timeout`.
pub const HEARTBEAT_TIMEOUT: u16 = 4009;

/// May a script close with this code? Application codes, or the standard codes
/// that make sense for an application to choose.
pub fn is_script_code(code: u16) -> bool {
    matches!(
        code,
        1000 | 1001 | 1003 | 1007 | 1008 | 1009 | 1011 | 3000..=4999
    )
}

/// Cut `s` to at most `max` bytes without splitting a character.
pub fn truncate_utf8(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}
