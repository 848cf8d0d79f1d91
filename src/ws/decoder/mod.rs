//! Turns the client's bytes into whole messages, enforcing RFC 6455 strictly.
//!
//! fastwebsockets does the HTTP upgrade; frames are decoded here, because a
//! chat server exposed to the internet must be stricter than a general-purpose
//! frame reader:
//!
//! - client frames must be masked; reserved bits and opcodes are refused;
//! - control frames are unfragmented and at most 125 bytes (close included);
//! - close codes and reasons are validated;
//! - frame and message sizes are checked against the limits before any payload
//!   is buffered, and buffers grow only as bytes actually arrive (a client
//!   announcing a large frame and sending nothing costs nothing);
//! - text is UTF-8-checked as it arrives, chunk by chunk, so an invalid message
//!   fails at the offending bytes, even in the middle of a frame.
//!
//! - with permessage-deflate negotiated, a message whose first frame has
//!   RSV1 set is inflated when it is complete, into at most
//!   `max_message` bytes (1009 past it, 1007 for data that is not deflate),
//!   and then UTF-8-checked; RSV1 anywhere else is refused.
//!
//! The decoder is push-based and synchronous: the driver reads whatever the
//! socket has into a per-thread buffer and feeds it here, so an idle
//! connection holds no read buffer at all.

use std::sync::Arc;

use bytes::Bytes;

use crate::close;
use crate::deflate::{Deflate, InflateError, Takeover};
use crate::metrics::ProtocolErrorKind;

/// One complete message or control event from the client.
#[derive(Debug, PartialEq, Eq)]
pub enum Message {
    /// A text message (UTF-8 validated).
    Text(String),
    /// A binary message.
    Binary(Vec<u8>),
    /// A ping; answer with a pong carrying the same payload.
    Ping(Bytes),
    /// A pong.
    Pong,
    /// The client's Close frame: its code, if it sent one.
    Close(Option<u16>),
}

/// Why decoding stopped.
#[derive(Debug, PartialEq, Eq)]
pub enum ReadError {
    /// The client broke the protocol or a limit: fail the connection with `code`.
    Protocol {
        /// Close code to send.
        code: u16,
        /// Counter label.
        kind: ProtocolErrorKind,
        /// Human-readable reason (sent in the Close frame and logged).
        reason: &'static str,
    },
    /// The TCP stream ended or failed; no Close frame can be exchanged.
    Closed,
}

impl ReadError {
    fn protocol(reason: &'static str) -> ReadError {
        ReadError::Protocol {
            code: close::PROTOCOL_ERROR,
            kind: ProtocolErrorKind::Protocol,
            reason,
        }
    }

    fn utf8(reason: &'static str) -> ReadError {
        ReadError::Protocol {
            code: close::INVALID_PAYLOAD,
            kind: ProtocolErrorKind::InvalidUtf8,
            reason,
        }
    }

    fn too_large() -> ReadError {
        ReadError::Protocol {
            code: close::MESSAGE_TOO_BIG,
            kind: ProtocolErrorKind::TooLarge,
            reason: "message too large",
        }
    }
}

/// May a peer send this code in a Close frame (RFC 6455 §7.4)?
pub fn is_valid_close_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

const CONTINUATION: u8 = 0x0;
const TEXT: u8 = 0x1;
const BINARY: u8 = 0x2;
const CLOSE: u8 = 0x8;
const PING: u8 = 0x9;
const PONG: u8 = 0xA;

/// Largest step by which a message buffer grows ahead of the data.
const GROW_CHUNK: usize = 64 * 1024;

/// Where the decoder is within the current frame.
enum State {
    /// Collecting a frame header (2 to 14 bytes).
    Header,
    /// Collecting a frame's payload.
    Payload {
        fin: bool,
        opcode: u8,
        mask: [u8; 4],
        len: usize,
        done: usize,
    },
}

/// A data message being assembled from one or more frames.
struct Partial {
    text: bool,
    /// Its payload is compressed (RSV1 on its first frame).
    compressed: bool,
    buf: Vec<u8>,
    /// Prefix of `buf` known to be valid UTF-8 (text only).
    valid_up_to: usize,
}

/// Incremental decoder of one connection's client frames.
pub struct Decoder {
    max_frame: usize,
    max_message: usize,
    state: State,
    header: [u8; 14],
    header_len: usize,
    /// Payload of the control frame being read (at most 125 bytes).
    control: Vec<u8>,
    partial: Option<Partial>,
    /// permessage-deflate, when the connection negotiated it.
    inflate: Option<Arc<Deflate>>,
    /// Its inflater, when the client takes its context over.
    takeover: Option<Box<Takeover>>,
}

impl Decoder {
    /// Frames over `max_frame` and messages over `max_message` payload bytes
    /// fail with 1009.
    pub fn new(max_frame: usize, max_message: usize) -> Decoder {
        Decoder {
            max_frame: max_frame.min(max_message),
            max_message,
            state: State::Header,
            header: [0; 14],
            header_len: 0,
            control: Vec::new(),
            partial: None,
            inflate: None,
            takeover: None,
        }
    }

    /// The same, for a connection that negotiated permessage-deflate
    /// (and, with `takeover`, context takeover for what the client sends).
    pub fn with_inflate(
        mut self,
        deflate: Option<Arc<Deflate>>,
        takeover: Option<Takeover>,
    ) -> Decoder {
        self.inflate = deflate;
        self.takeover = takeover.map(Box::new);
        self
    }

    /// Consume bytes from the front of `input` until one message is complete
    /// (returned) or `input` is used up (`Ok(None)`). Call again with the rest
    /// of `input` to get the next message.
    pub fn next(&mut self, input: &mut &[u8]) -> Result<Option<Message>, ReadError> {
        loop {
            match self.state {
                State::Header => {
                    if !self.header(input)? {
                        return Ok(None);
                    }
                }
                State::Payload { .. } => {
                    if let Some(msg) = self.payload(input)? {
                        return Ok(Some(msg));
                    }
                    if input.is_empty() && matches!(self.state, State::Payload { .. }) {
                        return Ok(None);
                    }
                }
            }
        }
    }

    /// Collect and check a header; true once it is complete (state → Payload).
    fn header(&mut self, input: &mut &[u8]) -> Result<bool, ReadError> {
        // The first two bytes tell how long the header is.
        let need = if self.header_len < 2 {
            2
        } else {
            2 + match self.header[1] & 0x7f {
                126 => 2,
                127 => 8,
                _ => 0,
            } + 4
        };
        let take = (need - self.header_len).min(input.len());
        self.header[self.header_len..self.header_len + take].copy_from_slice(&input[..take]);
        self.header_len += take;
        *input = &input[take..];
        if self.header_len < need {
            return Ok(false);
        }
        if need == 2 {
            self.check_first_two()?;
            return self.header(input);
        }
        let h = &self.header;
        let len = match h[1] & 0x7f {
            126 => u16::from_be_bytes([h[2], h[3]]) as u64,
            127 => {
                let mut n = [0u8; 8];
                n.copy_from_slice(&h[2..10]);
                u64::from_be_bytes(n)
            }
            n => n as u64,
        };
        if len >> 63 != 0 {
            return Err(ReadError::protocol("payload length with the high bit set"));
        }
        // Larger than usize can only be larger than any limit.
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        let mut mask = [0u8; 4];
        mask.copy_from_slice(&h[need - 4..need]);
        let (fin, opcode, rsv1) = (h[0] & 0x80 != 0, h[0] & 0x0f, h[0] & 0x40 != 0);
        self.header_len = 0;
        match opcode {
            TEXT | BINARY => {
                if self.partial.is_some() {
                    return Err(ReadError::protocol(
                        "new data frame before the fragmented message ended",
                    ));
                }
                if len > self.max_frame {
                    return Err(ReadError::too_large());
                }
                self.partial = Some(Partial {
                    text: opcode == TEXT,
                    compressed: rsv1,
                    buf: Vec::new(),
                    valid_up_to: 0,
                });
            }
            CONTINUATION => {
                let Some(partial) = &self.partial else {
                    return Err(ReadError::protocol("continuation frame without a message"));
                };
                if len > self.max_frame || partial.buf.len().saturating_add(len) > self.max_message
                {
                    return Err(ReadError::too_large());
                }
            }
            _ => self.control.clear(),
        }
        self.state = State::Payload {
            fin,
            opcode,
            mask,
            len,
            done: 0,
        };
        Ok(true)
    }

    /// Checks that need only the first two header bytes.
    fn check_first_two(&self) -> Result<(), ReadError> {
        let (b0, b1) = (self.header[0], self.header[1]);
        let opcode = b0 & 0x0f;
        // RSV1 marks a compressed message, on its first frame only.
        let rsv1_allowed = self.inflate.is_some() && matches!(opcode, TEXT | BINARY);
        if b0 & 0x30 != 0 || (b0 & 0x40 != 0 && !rsv1_allowed) {
            return Err(ReadError::protocol(if self.inflate.is_some() {
                "reserved bits set where the extension allows none"
            } else {
                "reserved bits set without a negotiated extension"
            }));
        }
        if !matches!(opcode, CONTINUATION | TEXT | BINARY | CLOSE | PING | PONG) {
            return Err(ReadError::protocol("reserved opcode"));
        }
        if b1 & 0x80 == 0 {
            return Err(ReadError::protocol("client frames must be masked"));
        }
        if opcode >= CLOSE {
            if b0 & 0x80 == 0 {
                return Err(ReadError::protocol("fragmented control frame"));
            }
            if b1 & 0x7f > 125 {
                return Err(ReadError::protocol("control frame payload over 125 bytes"));
            }
        }
        Ok(())
    }

    /// Consume payload bytes; a complete message when the frame ends one.
    fn payload(&mut self, input: &mut &[u8]) -> Result<Option<Message>, ReadError> {
        let State::Payload {
            fin,
            opcode,
            mask,
            len,
            ref mut done,
        } = self.state
        else {
            return Ok(None);
        };
        let n = (len - *done).min(input.len());
        let offset = *done;
        *done += n;
        let complete = *done == len;
        let chunk = &input[..n];
        *input = &input[n..];
        if opcode >= CLOSE {
            let start = self.control.len();
            self.control.extend_from_slice(chunk);
            unmask(&mut self.control[start..], mask, offset);
            if !complete {
                return Ok(None);
            }
            self.state = State::Header;
            return match opcode {
                CLOSE => close_frame(&self.control).map(Some),
                PING => Ok(Some(Message::Ping(Bytes::copy_from_slice(&self.control)))),
                _ => Ok(Some(Message::Pong)),
            };
        }
        let msg = self
            .partial
            .as_mut()
            .expect("data frames have a partial message");
        if msg.buf.capacity() - msg.buf.len() < n {
            msg.buf.reserve(n.max(GROW_CHUNK.min(len - offset)));
        }
        let start = msg.buf.len();
        msg.buf.extend_from_slice(chunk);
        unmask(&mut msg.buf[start..], mask, offset);
        if msg.text && !msg.compressed {
            check_utf8_prefix(msg)?;
        }
        if !complete {
            return Ok(None);
        }
        self.state = State::Header;
        if !fin {
            return Ok(None);
        }
        let mut msg = self.partial.take().expect("checked above");
        if msg.compressed {
            let deflate = self.inflate.as_ref().expect("RSV1 only with deflate");
            let inflated = match &mut self.takeover {
                Some(t) => t.inflate(&msg.buf, self.max_message),
                None => deflate.inflate(&msg.buf, self.max_message),
            };
            msg.buf = inflated.map_err(|e| match e {
                InflateError::TooLarge => ReadError::too_large(),
                InflateError::Corrupt => ReadError::Protocol {
                    code: close::INVALID_PAYLOAD,
                    kind: ProtocolErrorKind::InvalidDeflate,
                    reason: "compressed message is not valid deflate data",
                },
            })?;
            if msg.text {
                check_utf8_prefix(&mut msg)?;
            }
        }
        finish(msg).map(Some)
    }
}

/// Unmask `data`, which starts `offset` bytes into its frame's payload.
fn unmask(data: &mut [u8], mask: [u8; 4], offset: usize) {
    let r = offset % 4;
    let key = [
        mask[r],
        mask[(r + 1) % 4],
        mask[(r + 2) % 4],
        mask[(r + 3) % 4],
    ];
    fastwebsockets::unmask(data, key);
}

/// Validate the part of a text message received so far. An incomplete
/// character at the end is fine (more bytes may finish it); an invalid
/// sequence anywhere fails now.
fn check_utf8_prefix(p: &mut Partial) -> Result<(), ReadError> {
    match simdutf8::compat::from_utf8(&p.buf[p.valid_up_to..]) {
        Ok(_) => {
            p.valid_up_to = p.buf.len();
            Ok(())
        }
        Err(e) if e.error_len().is_none() => {
            p.valid_up_to += e.valid_up_to();
            Ok(())
        }
        Err(_) => Err(ReadError::utf8("invalid UTF-8 in text message")),
    }
}

fn finish(msg: Partial) -> Result<Message, ReadError> {
    if !msg.text {
        return Ok(Message::Binary(msg.buf));
    }
    // Everything up to `valid_up_to` is checked; an incomplete character left
    // at the end of the final frame makes the message invalid.
    if msg.valid_up_to != msg.buf.len() {
        return Err(ReadError::utf8(
            "text message ends inside a UTF-8 character",
        ));
    }
    String::from_utf8(msg.buf)
        .map(Message::Text)
        .map_err(|_| ReadError::utf8("invalid UTF-8 in text message"))
}

fn close_frame(payload: &[u8]) -> Result<Message, ReadError> {
    match payload.len() {
        0 => Ok(Message::Close(None)),
        1 => Err(ReadError::protocol("close frame with a 1-byte payload")),
        _ => {
            let code = u16::from_be_bytes([payload[0], payload[1]]);
            if !is_valid_close_code(code) {
                return Err(ReadError::protocol("invalid close code"));
            }
            if simdutf8::basic::from_utf8(&payload[2..]).is_err() {
                return Err(ReadError::utf8("invalid UTF-8 in close reason"));
            }
            Ok(Message::Close(Some(code)))
        }
    }
}

#[cfg(test)]
mod tests;
