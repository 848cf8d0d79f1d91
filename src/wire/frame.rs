//! WebSocket frames as the server writes them (RFC 6455 §5.2).
//!
//! Server frames are never masked, so one encoded frame is valid for every
//! recipient: a broadcast encodes once and shares the same `Bytes`.

use bytes::{BufMut, Bytes, BytesMut};

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

/// The first byte's RSV1 bit: a compressed message (permessage-deflate).
pub const RSV1: u8 = 0x40;

/// Encode one unfragmented, unmasked frame.
pub fn encode(opcode: Opcode, payload: &[u8]) -> Bytes {
    let len = payload.len();
    let mut buf = BytesMut::with_capacity(header_len(len) + len);
    put_header(&mut buf, 0x80 | opcode as u8, len);
    buf.put_slice(payload);
    buf.freeze()
}

/// A frame header: `first` (FIN, RSV bits, opcode) and the length of a
/// payload of `len` bytes (server frames: no mask).
pub fn put_header(buf: &mut BytesMut, first: u8, len: usize) {
    buf.put_u8(first);
    if len < 126 {
        buf.put_u8(len as u8);
    } else if len <= u16::MAX as usize {
        buf.put_u8(126);
        buf.put_u16(len as u16);
    } else {
        buf.put_u8(127);
        buf.put_u64(len as u64);
    }
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
    let reason = crate::close::truncate_utf8(reason, 123);
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
}
