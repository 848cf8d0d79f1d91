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
//! The decoder is push-based and synchronous: the driver reads whatever the
//! socket has into a per-thread buffer and feeds it here, so an idle
//! connection holds no read buffer at all.

use bytes::Bytes;

use crate::close;
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
        }
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
        let (fin, opcode) = (h[0] & 0x80 != 0, h[0] & 0x0f);
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
        if b0 & 0x70 != 0 {
            return Err(ReadError::protocol(
                "reserved bits set without a negotiated extension",
            ));
        }
        let opcode = b0 & 0x0f;
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
        if msg.text {
            check_utf8_prefix(msg)?;
        }
        if !complete {
            return Ok(None);
        }
        self.state = State::Header;
        if !fin {
            return Ok(None);
        }
        let msg = self.partial.take().expect("checked above");
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
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn client_frame(fin: bool, opcode: u8, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
        let mut f = vec![(if fin { 0x80 } else { 0 }) | opcode];
        match payload.len() {
            n if n < 126 => f.push(0x80 | n as u8),
            n if n <= 0xffff => {
                f.push(0x80 | 126);
                f.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                f.push(0x80 | 127);
                f.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        f.extend_from_slice(&mask);
        f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        f
    }

    /// Feed `bytes` cut at `cuts` (TCP chops); collect messages until the
    /// first error, then a final `Closed` stands for the end of the stream.
    fn decode(bytes: &[u8], cuts: &[usize], max: usize) -> Vec<Result<Message, ReadError>> {
        let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
        cuts.sort_unstable();
        cuts.dedup();
        let mut d = Decoder::new(max, max);
        let mut out = Vec::new();
        let mut prev = 0;
        for c in cuts.into_iter().chain([bytes.len()]) {
            let mut chunk = &bytes[prev..c];
            prev = c;
            loop {
                match d.next(&mut chunk) {
                    Ok(Some(m)) => out.push(Ok(m)),
                    Ok(None) => break,
                    Err(e) => {
                        out.push(Err(e));
                        return out;
                    }
                }
            }
        }
        out.push(Err(ReadError::Closed));
        out
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

    fn close_code_of(r: &Result<Message, ReadError>) -> Option<u16> {
        match r {
            Err(ReadError::Protocol { code, .. }) => Some(*code),
            _ => None,
        }
    }

    /// A message split into fragments of these sizes, each masked with `mask`.
    fn fragmented(opcode: u8, payload: &[u8], sizes: &[usize], mask: [u8; 4]) -> Vec<u8> {
        let mut frames = Vec::new();
        let mut rest = payload;
        let mut first = true;
        for (i, s) in sizes.iter().enumerate() {
            let last = i + 1 == sizes.len();
            let n = if last {
                rest.len()
            } else {
                (*s).min(rest.len())
            };
            let op = if first { opcode } else { CONTINUATION };
            frames.extend(client_frame(last, op, &rest[..n], mask));
            rest = &rest[n..];
            first = false;
        }
        frames
    }

    proptest! {
        /// Arbitrary bytes never panic the decoder.
        #[test]
        fn arbitrary_input_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..2048),
                                        cuts in proptest::collection::vec(any::<usize>(), 0..16)) {
            let out = decode(&bytes, &cuts, 1024);
            prop_assert!(out.last().unwrap().is_err());
        }

        /// Any text message, however fragmented and chopped, comes out whole.
        #[test]
        fn fragmented_chopped_text_round_trips(text in "\\PC{0,300}",
                                               sizes in proptest::collection::vec(0usize..64, 1..8),
                                               cuts in proptest::collection::vec(any::<usize>(), 0..32),
                                               mask in any::<[u8; 4]>()) {
            let mut bytes = fragmented(TEXT, text.as_bytes(), &sizes, mask);
            bytes.extend(client_frame(true, PING, b"p", mask));
            let out = decode(&bytes, &cuts, 1 << 20);
            prop_assert_eq!(&out[0], &Ok(Message::Text(text.clone())));
            prop_assert_eq!(&out[1], &Ok(Message::Ping(Bytes::from_static(b"p"))));
        }

        /// Binary messages round-trip too.
        #[test]
        fn fragmented_binary_round_trips(data in proptest::collection::vec(any::<u8>(), 0..600),
                                         sizes in proptest::collection::vec(0usize..200, 1..5),
                                         cuts in proptest::collection::vec(any::<usize>(), 0..8),
                                         mask in any::<[u8; 4]>()) {
            let bytes = fragmented(BINARY, &data, &sizes, mask);
            let out = decode(&bytes, &cuts, 1 << 20);
            prop_assert_eq!(&out[0], &Ok(Message::Binary(data.clone())));
        }

        /// Text is accepted exactly when it is valid UTF-8, whatever the fragmentation.
        #[test]
        fn text_is_accepted_iff_valid_utf8(data in proptest::collection::vec(any::<u8>(), 0..64),
                                           sizes in proptest::collection::vec(0usize..16, 1..5),
                                           cuts in proptest::collection::vec(any::<usize>(), 0..8)) {
            let bytes = fragmented(TEXT, &data, &sizes, [1, 2, 3, 4]);
            let out = decode(&bytes, &cuts, 1 << 20);
            match std::str::from_utf8(&data) {
                Ok(s) => prop_assert_eq!(&out[0], &Ok(Message::Text(s.to_string()))),
                Err(_) => prop_assert_eq!(close_code_of(&out[0]), Some(close::INVALID_PAYLOAD)),
            }
        }

        /// Messages over the limit fail with 1009, at or under it pass.
        #[test]
        fn size_limit_is_exact(len in 0usize..300, limit in 1usize..300,
                               sizes in proptest::collection::vec(0usize..100, 1..4)) {
            let bytes = fragmented(BINARY, &vec![7u8; len], &sizes, [9, 9, 9, 9]);
            let out = decode(&bytes, &[], limit);
            if len <= limit {
                prop_assert!(matches!(out[0], Ok(Message::Binary(_))));
            } else {
                prop_assert_eq!(close_code_of(&out[0]), Some(close::MESSAGE_TOO_BIG));
            }
        }
    }

    #[test]
    fn invalid_utf8_fails_before_the_frame_is_complete() {
        // One text frame announcing 100 bytes; only 8 arrive, and they are invalid.
        let mut frame = client_frame(true, TEXT, &[b'a'; 100], [0, 0, 0, 0]);
        frame.truncate(2 + 4 + 4);
        frame.extend_from_slice(&[0xf4, 0x90, 0x80, 0x80]);
        let mut d = Decoder::new(1024, 1024);
        let r = d.next(&mut &frame[..]);
        assert_eq!(
            close_code_of(&r.map(|m| m.unwrap())),
            Some(close::INVALID_PAYLOAD)
        );
    }

    #[test]
    fn announced_length_is_not_allocated_up_front() {
        // A 60 KiB frame is announced but only its header arrives.
        let frame = client_frame(true, BINARY, &vec![0; 60_000], [0; 4]);
        let mut d = Decoder::new(1 << 20, 1 << 20);
        assert_eq!(d.next(&mut &frame[..8]), Ok(None));
        assert_eq!(d.partial.as_ref().unwrap().buf.capacity(), 0);
    }

    #[test]
    fn several_messages_in_one_chunk() {
        let mut bytes = client_frame(true, TEXT, b"one", [1, 2, 3, 4]);
        bytes.extend(client_frame(true, TEXT, b"two", [5, 6, 7, 8]));
        let mut d = Decoder::new(1024, 1024);
        let mut input = &bytes[..];
        assert_eq!(d.next(&mut input), Ok(Some(Message::Text("one".into()))));
        assert_eq!(d.next(&mut input), Ok(Some(Message::Text("two".into()))));
        assert_eq!(d.next(&mut input), Ok(None));
    }
}
