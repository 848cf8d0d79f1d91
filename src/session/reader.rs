//! Turns the client's byte stream into whole messages, enforcing RFC 6455 strictly.
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

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::frame::{close_code, is_valid_close_code};
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

/// Why reading stopped.
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
            code: close_code::PROTOCOL_ERROR,
            kind: ProtocolErrorKind::Protocol,
            reason,
        }
    }

    fn utf8(reason: &'static str) -> ReadError {
        ReadError::Protocol {
            code: close_code::INVALID_PAYLOAD,
            kind: ProtocolErrorKind::InvalidUtf8,
            reason,
        }
    }

    fn too_large() -> ReadError {
        ReadError::Protocol {
            code: close_code::MESSAGE_TOO_BIG,
            kind: ProtocolErrorKind::TooLarge,
            reason: "message too large",
        }
    }
}

const CONTINUATION: u8 = 0x0;
const TEXT: u8 = 0x1;
const BINARY: u8 = 0x2;
const CLOSE: u8 = 0x8;
const PING: u8 = 0x9;
const PONG: u8 = 0xA;

/// Bytes requested from the socket at a time.
const READ_CHUNK: usize = 4096;
/// Largest step by which a message buffer grows ahead of the data.
const GROW_CHUNK: usize = 64 * 1024;

struct Header {
    fin: bool,
    opcode: u8,
    mask: [u8; 4],
    len: usize,
}

/// A data message being assembled from one or more frames.
struct Partial {
    text: bool,
    buf: Vec<u8>,
    /// Prefix of `buf` known to be valid UTF-8 (text only).
    valid_up_to: usize,
}

/// Reads whole messages from a connection's read half.
pub struct MessageReader<R> {
    io: R,
    buf: BytesMut,
    max_frame: usize,
    max_message: usize,
    partial: Option<Partial>,
}

impl<R: AsyncRead + Unpin> MessageReader<R> {
    /// Read from `io`; frames over `max_frame` and messages over `max_message`
    /// payload bytes fail with 1009.
    pub fn new(io: R, max_frame: usize, max_message: usize) -> Self {
        MessageReader {
            io,
            buf: BytesMut::new(),
            max_frame: max_frame.min(max_message),
            max_message,
            partial: None,
        }
    }

    /// The next message. Not cancel-safe: never race it in a `select!` that
    /// then reads again (a partly read frame would be lost).
    pub async fn next(&mut self) -> Result<Message, ReadError> {
        loop {
            let h = self.header().await?;
            match h.opcode {
                CLOSE | PING | PONG => {
                    self.fill(h.len).await?;
                    let mut payload = self.buf.split_to(h.len);
                    unmask(&mut payload, h.mask, 0);
                    return match h.opcode {
                        CLOSE => close_frame(&payload),
                        PING => Ok(Message::Ping(payload.freeze())),
                        _ => Ok(Message::Pong),
                    };
                }
                TEXT | BINARY => {
                    if self.partial.is_some() {
                        return Err(ReadError::protocol(
                            "new data frame before the fragmented message ended",
                        ));
                    }
                    if h.len > self.max_frame {
                        return Err(ReadError::too_large());
                    }
                    let mut msg = Partial {
                        text: h.opcode == TEXT,
                        buf: Vec::new(),
                        valid_up_to: 0,
                    };
                    self.payload(&h, &mut msg).await?;
                    if h.fin {
                        return finish(msg);
                    }
                    self.partial = Some(msg);
                }
                _ => {
                    let Some(mut msg) = self.partial.take() else {
                        return Err(ReadError::protocol("continuation frame without a message"));
                    };
                    if h.len > self.max_frame || msg.buf.len() + h.len > self.max_message {
                        return Err(ReadError::too_large());
                    }
                    self.payload(&h, &mut msg).await?;
                    if h.fin {
                        return finish(msg);
                    }
                    self.partial = Some(msg);
                }
            }
        }
    }

    /// Read and discard whatever the client still sends, until it closes the
    /// stream or `timeout` passes. Used after failing a connection, so our
    /// Close frame is not lost to a TCP reset caused by unread data.
    pub async fn drain(&mut self, timeout: std::time::Duration) {
        let drain = async {
            let mut scratch = [0u8; 1024];
            while matches!(self.io.read(&mut scratch).await, Ok(n) if n > 0) {}
        };
        let _ = tokio::time::timeout(timeout, drain).await;
    }

    /// Make sure at least `n` bytes are buffered.
    async fn fill(&mut self, n: usize) -> Result<(), ReadError> {
        while self.buf.len() < n {
            self.buf.reserve(READ_CHUNK.max(n - self.buf.len()));
            match self.io.read_buf(&mut self.buf).await {
                Ok(0) | Err(_) => return Err(ReadError::Closed),
                Ok(_) => {}
            }
        }
        Ok(())
    }

    /// Parse and check one frame header, consuming it from the buffer.
    async fn header(&mut self) -> Result<Header, ReadError> {
        self.fill(2).await?;
        let (b0, b1) = (self.buf[0], self.buf[1]);
        let fin = b0 & 0x80 != 0;
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
        let len7 = (b1 & 0x7f) as usize;
        if opcode >= CLOSE {
            if !fin {
                return Err(ReadError::protocol("fragmented control frame"));
            }
            if len7 > 125 {
                return Err(ReadError::protocol("control frame payload over 125 bytes"));
            }
        }
        let ext = match len7 {
            126 => 2,
            127 => 8,
            _ => 0,
        };
        self.fill(2 + ext + 4).await?;
        let len = match ext {
            2 => u16::from_be_bytes([self.buf[2], self.buf[3]]) as u64,
            8 => {
                let mut n = [0u8; 8];
                n.copy_from_slice(&self.buf[2..10]);
                u64::from_be_bytes(n)
            }
            _ => len7 as u64,
        };
        if len >> 63 != 0 {
            return Err(ReadError::protocol("payload length with the high bit set"));
        }
        let mut mask = [0u8; 4];
        mask.copy_from_slice(&self.buf[2 + ext..2 + ext + 4]);
        self.buf.advance(2 + ext + 4);
        Ok(Header {
            fin,
            opcode,
            mask,
            // Larger than usize can only be larger than any limit.
            len: usize::try_from(len).unwrap_or(usize::MAX),
        })
    }

    /// Read a data frame's payload into `msg`, unmasking and (for text)
    /// validating each chunk as it arrives.
    async fn payload(&mut self, h: &Header, msg: &mut Partial) -> Result<(), ReadError> {
        let mut done = 0;
        while done < h.len {
            if self.buf.is_empty() {
                self.buf.reserve(READ_CHUNK.min(h.len - done).max(64));
                match self.io.read_buf(&mut self.buf).await {
                    Ok(0) | Err(_) => return Err(ReadError::Closed),
                    Ok(_) => {}
                }
            }
            let n = self.buf.len().min(h.len - done);
            let chunk = &mut self.buf[..n];
            unmask(chunk, h.mask, done);
            if msg.buf.capacity() - msg.buf.len() < n {
                msg.buf.reserve(n.max(GROW_CHUNK.min(h.len - done)));
            }
            msg.buf.extend_from_slice(chunk);
            self.buf.advance(n);
            done += n;
            if msg.text {
                check_utf8_prefix(msg)?;
            }
        }
        Ok(())
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
    use std::collections::VecDeque;
    use std::pin::Pin;
    use std::task::{Context, Poll};
    use tokio::io::ReadBuf;

    /// An in-memory stream that hands out its bytes in the given chops, the way
    /// TCP may deliver them.
    struct Chopped(VecDeque<Vec<u8>>);

    impl AsyncRead for Chopped {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<std::io::Result<()>> {
            if let Some(mut chunk) = self.0.pop_front() {
                let n = chunk.len().min(buf.remaining());
                buf.put_slice(&chunk[..n]);
                if n < chunk.len() {
                    self.0.push_front(chunk.split_off(n));
                }
            }
            Poll::Ready(Ok(()))
        }
    }

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

    /// Split `bytes` at the given (sorted, deduplicated) cut points.
    fn chop(bytes: Vec<u8>, cuts: &[usize]) -> Chopped {
        let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
        cuts.sort_unstable();
        cuts.dedup();
        let mut chunks = VecDeque::new();
        let mut prev = 0;
        for c in cuts.into_iter().chain([bytes.len()]) {
            if c > prev {
                chunks.push_back(bytes[prev..c].to_vec());
                prev = c;
            }
        }
        Chopped(chunks)
    }

    fn read_all(stream: Chopped, max: usize) -> Vec<Result<Message, ReadError>> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut r = MessageReader::new(stream, max, max);
            let mut out = Vec::new();
            loop {
                let m = r.next().await;
                let stop = m.is_err();
                out.push(m);
                if stop {
                    return out;
                }
            }
        })
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
        /// Arbitrary bytes never panic the decoder; it ends with an error.
        #[test]
        fn arbitrary_input_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..2048),
                                        cuts in proptest::collection::vec(any::<usize>(), 0..16)) {
            let out = read_all(chop(bytes, &cuts), 1024);
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
            let out = read_all(chop(bytes, &cuts), 1 << 20);
            prop_assert_eq!(&out[0], &Ok(Message::Text(text.clone())));
            prop_assert_eq!(&out[1], &Ok(Message::Ping(Bytes::from_static(b"p"))));
        }

        /// Binary messages round-trip too.
        #[test]
        fn fragmented_binary_round_trips(data in proptest::collection::vec(any::<u8>(), 0..600),
                                         sizes in proptest::collection::vec(0usize..200, 1..5),
                                         mask in any::<[u8; 4]>()) {
            let bytes = fragmented(BINARY, &data, &sizes, mask);
            let out = read_all(chop(bytes, &[]), 1 << 20);
            prop_assert_eq!(&out[0], &Ok(Message::Binary(data.clone())));
        }

        /// Text is accepted exactly when it is valid UTF-8, whatever the fragmentation.
        #[test]
        fn text_is_accepted_iff_valid_utf8(data in proptest::collection::vec(any::<u8>(), 0..64),
                                           sizes in proptest::collection::vec(0usize..16, 1..5)) {
            let bytes = fragmented(TEXT, &data, &sizes, [1, 2, 3, 4]);
            let out = read_all(chop(bytes, &[]), 1 << 20);
            match std::str::from_utf8(&data) {
                Ok(s) => prop_assert_eq!(&out[0], &Ok(Message::Text(s.to_string()))),
                Err(_) => prop_assert_eq!(close_code_of(&out[0]), Some(close_code::INVALID_PAYLOAD)),
            }
        }

        /// Messages over the limit fail with 1009, at or under it pass.
        #[test]
        fn size_limit_is_exact(len in 0usize..300, limit in 1usize..300,
                               sizes in proptest::collection::vec(0usize..100, 1..4)) {
            let bytes = fragmented(BINARY, &vec![7u8; len], &sizes, [9, 9, 9, 9]);
            let out = read_all(chop(bytes, &[]), limit);
            if len <= limit {
                prop_assert!(matches!(out[0], Ok(Message::Binary(_))));
            } else {
                prop_assert_eq!(close_code_of(&out[0]), Some(close_code::MESSAGE_TOO_BIG));
            }
        }
    }

    #[test]
    fn invalid_utf8_fails_before_the_frame_is_complete() {
        // One text frame announcing 100 bytes; only 8 arrive, and they are invalid.
        let mut frame = client_frame(true, TEXT, &[b'a'; 100], [0, 0, 0, 0]);
        frame.truncate(2 + 4 + 4);
        frame.extend_from_slice(&[0xf4, 0x90, 0x80, 0x80]);
        let out = read_all(Chopped(VecDeque::from([frame])), 1024);
        assert!(matches!(
            out[0],
            Err(ReadError::Protocol {
                code: close_code::INVALID_PAYLOAD,
                ..
            })
        ));
    }

    #[test]
    fn announced_length_is_not_allocated_up_front() {
        // A 60 KiB frame is announced but only its header arrives.
        let mut frame = client_frame(true, BINARY, &vec![0; 60_000], [0; 4]);
        frame.truncate(2 + 2 + 4);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        rt.block_on(async {
            let (mut tx, rx) = tokio::io::duplex(64);
            tokio::io::AsyncWriteExt::write_all(&mut tx, &frame)
                .await
                .unwrap();
            let mut r = MessageReader::new(rx, 1 << 20, 1 << 20);
            let pending = tokio::time::timeout(std::time::Duration::from_millis(50), r.next());
            assert!(pending.await.is_err(), "still waiting for the payload");
            assert!(r.buf.capacity() <= 2 * READ_CHUNK, "{}", r.buf.capacity());
        });
    }
}
