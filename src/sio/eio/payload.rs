//! Engine.IO packets and the long-polling payloads that carry them, for
//! both protocols: 3 (socket.io-client 1.x-2.x) and 4 (3.x-4.x).
//!
//! - packet types: `0` open, `1` close, `2` ping, `3` pong, `4` message,
//!   `5` upgrade, `6` noop; binary data is a WebSocket binary frame (with a
//!   leading `4` byte in protocol 3), or base64 in a text payload (`b…` in
//!   4, `b4…` in 3).
//! - protocol 4 payload: packets joined by the record separator `\x1e`.
//! - protocol 3 payload: `<length>:<packet>` back to back, the length in
//!   UTF-16 code units (it was JavaScript's `string.length`); or, when the
//!   client takes binary (XHR2) and a packet is binary, the binary form:
//!   per packet `0x00` (text) or `0x01` (binary), the length's decimal
//!   digits as bytes 0-9, `0xff`, then the packet (`4` + data for binary).

use base64::Engine as _;
use bytes::{BufMut, Bytes, BytesMut};

/// Which Engine.IO protocol a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Protocol {
    /// `EIO=3`: socket.io-client 1.x-2.x (the seed's 2.0.3).
    V3,
    /// `EIO=4`: socket.io-client 3.x-4.x.
    V4,
}

/// A message's text (a socket.io packet, UTF-8 by construction): shared
/// bytes, with what goes in at one place for this client (its namespace)
/// written around them, not copied into them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Text {
    body: Bytes,
    /// `(at, what)`: `what` goes in before `body[at..]`.
    insert: Option<(usize, Bytes)>,
}

impl Text {
    pub(crate) fn new(body: Bytes) -> Text {
        Text { body, insert: None }
    }

    /// `body` with `what` in at byte `at` (a char boundary).
    pub(crate) fn with_insert(body: Bytes, at: usize, what: Bytes) -> Text {
        let insert = (!what.is_empty()).then_some((at.min(body.len()), what));
        Text { body, insert }
    }

    /// Its bytes, in order, as three slices.
    pub(crate) fn parts(&self) -> [&[u8]; 3] {
        match &self.insert {
            None => [&self.body[..], &[], &[]],
            Some((at, what)) => [&self.body[..*at], what, &self.body[*at..]],
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.body.len() + self.insert.as_ref().map_or(0, |(_, w)| w.len())
    }

    /// Whether it is `other`'s very bytes: the same body (one allocation,
    /// the same range: a broadcast's shared packet) with the same insert.
    pub(crate) fn same(&self, other: &Text) -> bool {
        fn insert(t: &Text) -> Option<(usize, &[u8])> {
            t.insert.as_ref().map(|(at, w)| (*at, &w[..]))
        }
        self.body.as_ptr() == other.body.as_ptr()
            && self.body.len() == other.body.len()
            && insert(self) == insert(other)
    }
}

impl From<String> for Text {
    fn from(s: String) -> Text {
        Text::new(Bytes::from(s))
    }
}

/// A packet the server sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Packet {
    /// A message.
    Message(Text),
    /// Binary data (a socket.io attachment).
    Binary(Bytes),
    /// Protocol 4: the server's heartbeat.
    Ping,
    /// Protocol 3: the answer to the client's ping.
    Pong,
    /// The answer to an upgrade's probe.
    PongProbe,
    /// Ends a waiting poll (an upgrade is under way).
    Noop,
    /// The session is closed.
    Close,
}

impl Packet {
    /// Bytes it takes in a queue (what queue bounds count): its data and
    /// a slot's worth for the packet itself, so a flood of empty packets
    /// is counted too.
    pub(crate) fn cost(&self) -> usize {
        const SLOT: usize = 48;
        SLOT + match self {
            Packet::Message(t) => t.len(),
            Packet::Binary(b) => b.len(),
            _ => 1,
        }
    }

    /// Its type character and text (`None` for binary).
    fn text(&self) -> Option<(u8, [&[u8]; 3])> {
        let plain = |s: &'static [u8]| [s, &[][..], &[][..]];
        Some(match self {
            Packet::Message(t) => (b'4', t.parts()),
            Packet::Ping => (b'2', plain(b"")),
            Packet::Pong => (b'3', plain(b"")),
            Packet::PongProbe => (b'3', plain(b"probe")),
            Packet::Noop => (b'6', plain(b"")),
            Packet::Close => (b'1', plain(b"")),
            Packet::Binary(_) => return None,
        })
    }
}

fn put_parts(out: &mut BytesMut, parts: [&[u8]; 3]) {
    for part in parts {
        out.put_slice(part);
    }
}

fn parts_len(parts: [&[u8]; 3]) -> usize {
    parts.iter().map(|p| p.len()).sum()
}

/// A packet from the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Incoming<'a> {
    /// `4…`: a socket.io packet.
    Message(&'a str),
    /// Binary data (base64 in a text payload).
    Binary(Bytes),
    /// `2` (protocol 3: the client's heartbeat); `2probe` starts an upgrade.
    Ping { probe: bool },
    /// `3` (protocol 4: the answer to the server's ping).
    Pong,
    /// `5`: the upgrade is done.
    Upgrade,
    /// `6`.
    Noop,
    /// `1`: the client is leaving.
    Close,
}

/// Why a payload or packet from the client was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BadPayload(pub(crate) &'static str);

/// Parse one text packet.
pub(crate) fn parse(protocol: Protocol, text: &str) -> Result<Incoming<'_>, BadPayload> {
    let bytes = text.as_bytes();
    let rest = text.get(1..).unwrap_or("");
    Ok(match bytes.first() {
        Some(b'4') => Incoming::Message(rest),
        Some(b'2') => Incoming::Ping {
            probe: rest == "probe",
        },
        Some(b'3') => Incoming::Pong,
        Some(b'5') => Incoming::Upgrade,
        Some(b'6') => Incoming::Noop,
        Some(b'1') => Incoming::Close,
        Some(b'b') => {
            let data = match protocol {
                Protocol::V4 => rest,
                Protocol::V3 => rest
                    .strip_prefix('4')
                    .ok_or(BadPayload("bad binary packet"))?,
            };
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(data)
                .map_err(|_| BadPayload("bad base64"))?;
            Incoming::Binary(decoded.into())
        }
        _ => return Err(BadPayload("unknown packet type")),
    })
}

/// The packets of a POST body. `binary` is protocol 3's binary form (the
/// request's Content-Type is `application/octet-stream`).
pub(crate) fn decode(
    protocol: Protocol,
    body: &[u8],
    binary: bool,
) -> Result<Vec<Incoming<'_>>, BadPayload> {
    if protocol == Protocol::V3 && binary {
        return decode_v3_binary(body);
    }
    let text = std::str::from_utf8(body).map_err(|_| BadPayload("payload is not UTF-8"))?;
    match protocol {
        Protocol::V4 => text.split('\u{1e}').map(|p| parse(protocol, p)).collect(),
        Protocol::V3 => {
            let mut packets = Vec::new();
            let mut rest = text;
            while !rest.is_empty() {
                let (len, tail) = rest.split_once(':').ok_or(BadPayload("no length"))?;
                let len: usize = len.parse().map_err(|_| BadPayload("bad length"))?;
                let end = utf16_offset(tail, len).ok_or(BadPayload("length past the end"))?;
                if end > 0 {
                    packets.push(parse(protocol, &tail[..end])?);
                }
                rest = &tail[end..];
            }
            Ok(packets)
        }
    }
}

/// Protocol 3's binary payload.
fn decode_v3_binary(mut body: &[u8]) -> Result<Vec<Incoming<'_>>, BadPayload> {
    let mut packets = Vec::new();
    while let Some((&kind, rest)) = body.split_first() {
        let sep = rest
            .iter()
            .position(|&b| b == 0xff)
            .ok_or(BadPayload("no length"))?;
        let digits = &rest[..sep];
        if digits.is_empty() || digits.len() > 9 || digits.iter().any(|&d| d > 9) {
            return Err(BadPayload("bad length"));
        }
        let len = digits.iter().fold(0usize, |n, &d| n * 10 + usize::from(d));
        let data = rest
            .get(sep + 1..sep + 1 + len)
            .ok_or(BadPayload("length past the end"))?;
        body = &rest[sep + 1 + len..];
        match kind {
            0 => {
                let text = std::str::from_utf8(data).map_err(|_| BadPayload("not UTF-8"))?;
                packets.push(parse(Protocol::V3, text)?);
            }
            // The data, after its packet type byte.
            1 => packets.push(Incoming::Binary(Bytes::copy_from_slice(
                data.get(1..).ok_or(BadPayload("empty binary packet"))?,
            ))),
            _ => return Err(BadPayload("bad packet kind")),
        }
    }
    Ok(packets)
}

/// The byte offset of `units` UTF-16 code units into `s`, if it has them
/// (and they do not end inside a character).
fn utf16_offset(s: &str, units: usize) -> Option<usize> {
    let mut n = 0;
    for (i, c) in s.char_indices() {
        if n == units {
            return Some(i);
        }
        n += c.len_utf16();
        if n > units {
            return None;
        }
    }
    (n == units).then_some(s.len())
}

/// The UTF-16 length of UTF-8 `bytes` (valid by construction), counted
/// without decoding: every byte that starts a character is one unit, and
/// a four-byte character is two.
fn utf16_len(bytes: &[u8]) -> usize {
    bytes
        .iter()
        .map(|&b| usize::from(b & 0xc0 != 0x80) + usize::from(b >= 0xf0))
        .sum()
}

/// A polling response: its body and whether it is binary.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Payload {
    pub(crate) body: Bytes,
    pub(crate) binary: bool,
}

/// Encode `packets` as one polling payload. `binary` says the client takes
/// binary payloads (protocol 3 without `b64=1`); protocol 4 and clients
/// that asked for base64 get binary data as base64 text.
pub(crate) fn encode(protocol: Protocol, packets: &[Packet], binary: bool) -> Payload {
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut out = BytesMut::new();
    match protocol {
        Protocol::V4 => {
            for (i, p) in packets.iter().enumerate() {
                if i > 0 {
                    out.put_u8(0x1e);
                }
                match p.text() {
                    Some((kind, text)) => {
                        out.put_u8(kind);
                        put_parts(&mut out, text);
                    }
                    None => {
                        out.put_u8(b'b');
                        out.put_slice(b64.encode(binary_data(p)).as_bytes());
                    }
                }
            }
        }
        Protocol::V3 if binary && packets.iter().any(|p| matches!(p, Packet::Binary(_))) => {
            for p in packets {
                // (text or binary, the packet's type byte, its data)
                let (kind, head, data) = match p.text() {
                    Some((t, text)) => (0, t, text),
                    // The packet type as a number, not a character.
                    None => (1, 4, [binary_data(p), &[][..], &[][..]]),
                };
                out.put_u8(kind);
                for d in (1 + parts_len(data)).to_string().bytes() {
                    out.put_u8(d - b'0');
                }
                out.put_u8(0xff);
                out.put_u8(head);
                put_parts(&mut out, data);
            }
            return Payload {
                body: out.freeze(),
                binary: true,
            };
        }
        Protocol::V3 => {
            for p in packets {
                match p.text() {
                    Some((kind, text)) => {
                        let units: usize = text.iter().map(|t| utf16_len(t)).sum();
                        out.put_slice((1 + units).to_string().as_bytes());
                        out.put_u8(b':');
                        out.put_u8(kind);
                        put_parts(&mut out, text);
                    }
                    None => {
                        let data = b64.encode(binary_data(p));
                        out.put_slice((2 + data.len()).to_string().as_bytes());
                        out.put_slice(b":b4");
                        out.put_slice(data.as_bytes());
                    }
                }
            }
        }
    }
    Payload {
        body: out.freeze(),
        binary: false,
    }
}

fn binary_data(p: &Packet) -> &[u8] {
    match p {
        Packet::Binary(b) => b,
        _ => &[],
    }
}

/// A packet as a WebSocket message: (is it binary, the type byte in front
/// (0: none), its data in parts to write back to back).
pub(crate) fn ws_message(protocol: Protocol, p: &Packet) -> (bool, u8, [&[u8]; 3]) {
    match p.text() {
        Some((kind, text)) => (false, kind, text),
        None => {
            let data = [binary_data(p), &[][..], &[][..]];
            match protocol {
                // Protocol 3 puts the message type in front of binary data.
                Protocol::V3 => (true, 4, data),
                Protocol::V4 => (true, 0, data),
            }
        }
    }
}

#[cfg(test)]
mod tests;
