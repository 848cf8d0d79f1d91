//! Server-to-client frame encoding and close-code rules.
//!
//! Server frames are never masked, so one encoded frame is valid for every
//! recipient: a broadcast encodes once and shares the same `Bytes`.

use bytes::{BufMut, Bytes, BytesMut};

/// Close codes the server sends, in one place so docs and code agree.
pub mod close_code {
    /// Normal closure (also the reply to a client's Close without a code).
    pub const NORMAL: u16 = 1000;
    /// Server shutting down.
    pub const GOING_AWAY: u16 = 1001;
    /// RFC 6455 protocol violation.
    pub const PROTOCOL_ERROR: u16 = 1002;
    /// Text that is not UTF-8.
    pub const INVALID_PAYLOAD: u16 = 1007;
    /// Message or frame larger than the configured limit.
    pub const MESSAGE_TOO_BIG: u16 = 1009;
    /// The client kept flooding past the rate limit.
    pub const POLICY_VIOLATION: u16 = 1008;
    /// A script failed and `scripts.on_error = "close"`.
    pub const INTERNAL_ERROR: u16 = 1011;
    /// The connection's token expired.
    pub const TOKEN_EXPIRED: u16 = 4001;
    /// The client did not read fast enough: its outbox filled up.
    pub const SLOW_CONSUMER: u16 = 4008;
    /// The client answered no ping within `heartbeat.timeout`.
    pub const HEARTBEAT_TIMEOUT: u16 = 4009;
    /// Disconnected through the HTTP API.
    pub const DISCONNECTED: u16 = 4000;
}

/// WebSocket opcodes the server writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Opcode {
    /// UTF-8 text message.
    Text = 0x1,
    /// Binary message.
    Binary = 0x2,
    /// Close.
    Close = 0x8,
    /// Ping (server heartbeat).
    Ping = 0x9,
    /// Pong (reply to a ping).
    Pong = 0xA,
}

/// Encode one unfragmented, unmasked frame.
pub fn encode(opcode: Opcode, payload: &[u8]) -> Bytes {
    let len = payload.len();
    let mut buf = BytesMut::with_capacity(header_len(len) + len);
    buf.put_u8(0x80 | opcode as u8);
    if len < 126 {
        buf.put_u8(len as u8);
    } else if len <= u16::MAX as usize {
        buf.put_u8(126);
        buf.put_u16(len as u16);
    } else {
        buf.put_u8(127);
        buf.put_u64(len as u64);
    }
    buf.put_slice(payload);
    buf.freeze()
}

/// A text frame.
pub fn text(s: &str) -> Bytes {
    encode(Opcode::Text, s.as_bytes())
}

/// A binary frame.
pub fn binary(b: &[u8]) -> Bytes {
    encode(Opcode::Binary, b)
}

/// A close frame with `code` and a reason cut to fit the 125-byte control-frame limit.
pub fn close(code: u16, reason: &str) -> Bytes {
    let reason = truncate_utf8(reason, 123);
    let mut payload = Vec::with_capacity(2 + reason.len());
    payload.extend_from_slice(&code.to_be_bytes());
    payload.extend_from_slice(reason.as_bytes());
    encode(Opcode::Close, &payload)
}

/// Header length for a payload of `len` bytes (server frames: no mask key).
pub fn header_len(len: usize) -> usize {
    if len < 126 {
        2
    } else if len <= u16::MAX as usize {
        4
    } else {
        10
    }
}

/// Payload length of an encoded frame, read from its header.
pub fn payload_len(frame: &[u8]) -> usize {
    match frame.get(1).map(|b| b & 0x7f) {
        Some(126) => u16::from_be_bytes([frame[2], frame[3]]) as usize,
        Some(127) => {
            let mut n = [0u8; 8];
            n.copy_from_slice(&frame[2..10]);
            u64::from_be_bytes(n) as usize
        }
        Some(n) => n as usize,
        None => 0,
    }
}

/// The payload of an encoded (unmasked) frame.
pub fn payload(frame: &[u8]) -> &[u8] {
    let len = payload_len(frame);
    &frame[frame.len() - len..]
}

/// May a peer send this code in a Close frame (RFC 6455 §7.4)?
pub fn is_valid_close_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

/// May a script close with this code? Application codes, or the standard codes
/// that make sense for an application to choose.
pub fn is_script_close_code(code: u16) -> bool {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_sizes_follow_rfc6455() {
        assert_eq!(&text("hi")[..], b"\x81\x02hi");
        let f = binary(&[0u8; 200]);
        assert_eq!(&f[..4], &[0x82, 126, 0, 200]);
        assert_eq!(payload_len(&f), 200);
        let f = binary(&vec![0u8; 70_000]);
        assert_eq!(f[1], 127);
        assert_eq!(payload_len(&f), 70_000);
        assert_eq!(f.len(), 70_010);
    }

    #[test]
    fn close_reason_is_cut_on_a_char_boundary() {
        let f = close(1000, &"é".repeat(100));
        assert!(f.len() <= 127);
        assert!(std::str::from_utf8(&f[4..]).is_ok());
    }

    #[test]
    fn close_codes() {
        for ok in [1000, 1001, 1002, 1003, 1007, 1011, 1014, 3000, 4999] {
            assert!(is_valid_close_code(ok), "{ok}");
        }
        for bad in [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535] {
            assert!(!is_valid_close_code(bad), "{bad}");
        }
    }
}
