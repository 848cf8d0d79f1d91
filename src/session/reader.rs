//! Turns client frames into whole messages, enforcing RFC 6455 strictly.
//!
//! fastwebsockets parses frames and unmasks them; automatic pongs and close
//! replies are switched off because the session answers through its outbox
//! (the writer task owns the socket's write half). This layer adds what
//! fastwebsockets leaves out: masking is required, control frames are at most
//! 125 bytes (close included), close codes and reasons are validated,
//! fragments are reassembled under the message-size limit, and fragmented text
//! is UTF-8-checked frame by frame so an invalid message fails fast.

use bytes::Bytes;
use fastwebsockets::{Frame, OpCode, WebSocketError, WebSocketRead};
use tokio::io::AsyncRead;

use crate::frame::{close_code, is_valid_close_code};
use crate::metrics::ProtocolErrorKind;

/// One complete message or control event from the client.
#[derive(Debug)]
pub enum Message {
    /// A text message (UTF-8 validated).
    Text(String),
    /// A binary message.
    Binary(Vec<u8>),
    /// A ping; answer with a pong carrying the same payload.
    Ping(Bytes),
    /// A pong.
    Pong,
    /// The client's Close frame: its code (if any) and reason.
    Close(Option<u16>),
}

/// Why reading stopped.
#[derive(Debug)]
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

    fn utf8() -> ReadError {
        ReadError::Protocol {
            code: close_code::INVALID_PAYLOAD,
            kind: ProtocolErrorKind::InvalidUtf8,
            reason: "invalid UTF-8 in text message",
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

struct Partial {
    text: bool,
    buf: Vec<u8>,
    /// Prefix of `buf` known to be valid UTF-8 (text only).
    valid_up_to: usize,
}

/// Reads whole messages from a connection's read half.
pub struct MessageReader<R> {
    ws: WebSocketRead<R>,
    max_message: usize,
    partial: Option<Partial>,
}

impl<R: AsyncRead + Unpin> MessageReader<R> {
    /// Wrap a read half; frames over `max_frame` and messages over `max_message`
    /// bytes fail with 1009.
    pub fn new(mut ws: WebSocketRead<R>, max_frame: usize, max_message: usize) -> Self {
        ws.set_auto_close(false);
        ws.set_auto_pong(false);
        ws.set_auto_apply_mask(true);
        // fastwebsockets rejects payloads `>=` its limit.
        ws.set_max_message_size(max_frame.saturating_add(1));
        MessageReader {
            ws,
            max_message,
            partial: None,
        }
    }

    /// The next message. Not cancel-safe (nor is the frame read underneath):
    /// never race it in a `select!` that then reads again.
    pub async fn next(&mut self) -> Result<Message, ReadError> {
        loop {
            let mut frame = self
                .ws
                .read_frame(&mut |_: Frame<'_>| async { Ok::<(), std::io::Error>(()) })
                .await
                .map_err(map_error)?;
            if !was_masked(&mut frame) {
                return Err(ReadError::protocol("client frames must be masked"));
            }
            match frame.opcode {
                OpCode::Close => return close_frame(&frame.payload),
                OpCode::Ping => {
                    control_len(&frame.payload)?;
                    return Ok(Message::Ping(Bytes::copy_from_slice(&frame.payload)));
                }
                OpCode::Pong => {
                    control_len(&frame.payload)?;
                    return Ok(Message::Pong);
                }
                OpCode::Text | OpCode::Binary => {
                    if self.partial.is_some() {
                        return Err(ReadError::protocol(
                            "new data frame before the fragmented message ended",
                        ));
                    }
                    let text = frame.opcode == OpCode::Text;
                    if frame.payload.len() > self.max_message {
                        return Err(ReadError::too_large());
                    }
                    let payload: Vec<u8> = frame.payload.into();
                    if frame.fin {
                        // fastwebsockets already rejects an invalid single-frame text
                        // message; checking again keeps this layer self-contained.
                        return Ok(if text {
                            Message::Text(
                                String::from_utf8(payload).map_err(|_| ReadError::utf8())?,
                            )
                        } else {
                            Message::Binary(payload)
                        });
                    }
                    let mut partial = Partial {
                        text,
                        buf: payload,
                        valid_up_to: 0,
                    };
                    if text {
                        check_utf8_prefix(&mut partial)?;
                    }
                    self.partial = Some(partial);
                }
                OpCode::Continuation => {
                    let Some(partial) = self.partial.as_mut() else {
                        return Err(ReadError::protocol("continuation frame without a message"));
                    };
                    if partial.buf.len() + frame.payload.len() > self.max_message {
                        return Err(ReadError::too_large());
                    }
                    partial.buf.extend_from_slice(&frame.payload);
                    if partial.text {
                        check_utf8_prefix(partial)?;
                    }
                    if frame.fin {
                        let partial = self.partial.take().expect("checked above");
                        return if partial.text {
                            String::from_utf8(partial.buf)
                                .map(Message::Text)
                                .map_err(|_| ReadError::utf8())
                        } else {
                            Ok(Message::Binary(partial.buf))
                        };
                    }
                }
            }
        }
    }
}

/// Validate the part of a fragmented text message received so far. An
/// incomplete character at the end is fine (the next frame may finish it); an
/// invalid sequence anywhere fails now rather than at the last frame.
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
        Err(_) => Err(ReadError::utf8()),
    }
}

fn control_len(payload: &[u8]) -> Result<(), ReadError> {
    if payload.len() > 125 {
        Err(ReadError::protocol("control frame payload over 125 bytes"))
    } else {
        Ok(())
    }
}

fn close_frame(payload: &[u8]) -> Result<Message, ReadError> {
    control_len(payload)?;
    match payload.len() {
        0 => Ok(Message::Close(None)),
        1 => Err(ReadError::protocol("close frame with a 1-byte payload")),
        _ => {
            let code = u16::from_be_bytes([payload[0], payload[1]]);
            if !is_valid_close_code(code) {
                return Err(ReadError::protocol("invalid close code"));
            }
            if simdutf8::basic::from_utf8(&payload[2..]).is_err() {
                return Err(ReadError::Protocol {
                    code: close_code::INVALID_PAYLOAD,
                    kind: ProtocolErrorKind::InvalidUtf8,
                    reason: "invalid UTF-8 in close reason",
                });
            }
            Ok(Message::Close(Some(code)))
        }
    }
}

/// fastwebsockets keeps the mask key private, but writes the mask bit when it
/// formats a frame header: that tells us whether the client masked the frame.
fn was_masked(frame: &mut Frame<'_>) -> bool {
    let mut head = [0u8; 16];
    frame.fmt_head(&mut head);
    head[1] & 0x80 != 0
}

fn map_error(e: WebSocketError) -> ReadError {
    match e {
        WebSocketError::InvalidUTF8 => ReadError::utf8(),
        WebSocketError::FrameTooLarge => ReadError::too_large(),
        WebSocketError::ReservedBitsNotZero => {
            ReadError::protocol("reserved bits set without a negotiated extension")
        }
        WebSocketError::InvalidValue => ReadError::protocol("reserved opcode"),
        WebSocketError::ControlFrameFragmented => ReadError::protocol("fragmented control frame"),
        WebSocketError::PingFrameTooLarge => {
            ReadError::protocol("control frame payload over 125 bytes")
        }
        WebSocketError::UnexpectedEOF | WebSocketError::IoError(_) => ReadError::Closed,
        WebSocketError::ConnectionClosed => ReadError::Closed,
        _ => ReadError::protocol("malformed frame"),
    }
}
