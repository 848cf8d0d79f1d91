//! permessage-deflate (RFC 7692): a client's offer and the server's answer,
//! and the compression itself.
//!
//! The server always answers with `server_no_context_takeover`: every
//! message it sends is compressed on its own, so a broadcast is compressed
//! **once** and the same bytes go to every member that negotiated it
//! (`Publication`'s deflated slots), with one compressor per worker thread
//! reset for each message. Inbound, it answers `client_no_context_takeover`
//! too (one inflater per worker thread, reset per message: an idle
//! connection with deflate keeps no state at all), unless
//! `compression.max_memory` leaves room for this client's inflate window:
//! then the client may compress with context takeover, and its connection
//! holds an inflater (made at its first compressed message) whose memory is
//! reserved in that budget for the connection's life. socket.io's
//! WebSocket frames are made per connection (`sio/eio/ws.rs`), so there a
//! broadcast is compressed once per worker thread, from a small cache.
//!
//! A compressed message is inflated into a buffer that grows as it
//! inflates and stops at `limits.max_message_size`: a decompression bomb
//! costs that much at most, then the connection is closed 1009.

use std::cell::RefCell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bytes::{BufMut, Bytes, BytesMut};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
use hyper::header::{HeaderMap, HeaderValue, SEC_WEBSOCKET_EXTENSIONS};

use crate::config::CompressionConfig;
use crate::metrics::{Metrics, Transport};
use crate::outbox::Item;
use crate::wire::frame;

mod offer;

use offer::{negotiate, Negotiation};

/// The extension's name in `Sec-WebSocket-Extensions`.
const NAME: &str = "permessage-deflate";

/// What every sync-flushed deflate block ends with; RFC 7692 §7.2.1 takes
/// it off on the way out and puts it back before inflating.
const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// The largest LZ77 window (2^15 bytes), the one every client accepts.
pub const MAX_WINDOW_BITS: u8 = 15;

/// The server's compression settings and counters (one per server).
pub struct Deflate {
    threshold: usize,
    level: u32,
    metrics: Metrics,
    /// Bytes inbound context takeover may hold, across connections
    /// (`compression.max_memory`), and how many are reserved.
    max_memory: usize,
    reserved: AtomicUsize,
}

/// What was agreed with one client: the window the server may compress
/// with (9 to 15 bits; the client's `server_max_window_bits`, else 15).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Agreed {
    /// log2 of the server's LZ77 window.
    pub window_bits: u8,
}

/// What one connection agreed, for its transport: its deflate (counted
/// while it lives), the server's window, the client's context if it is
/// taken over, and the answer for the 101's `Sec-WebSocket-Extensions`.
pub struct Negotiated {
    /// The server's settings, counted as this connection's.
    pub active: Active,
    /// log2 of the window the server compresses with for it.
    pub window_bits: u8,
    /// Its inflater, when the client takes its context over.
    pub takeover: Option<Takeover>,
    /// The header value to answer.
    pub answer: HeaderValue,
}

/// The outcome of reading a client's offers (the server's answer).
#[derive(Debug)]
pub enum Answer {
    /// Accepted: the agreement, the header value to answer, and the
    /// client's context taken over within the budget (if it is).
    Accepted(Agreed, String, Option<Takeover>),
    /// The client offered permessage-deflate only in ways the server
    /// declines (the connection goes on without it).
    Declined,
    /// Nothing offered.
    None,
}

impl std::fmt::Debug for Deflate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deflate")
            .field("threshold", &self.threshold)
            .field("level", &self.level)
            .finish_non_exhaustive()
    }
}

impl Deflate {
    /// The settings of `config`, or `None` when compression is off.
    pub fn new(config: &CompressionConfig, metrics: &Metrics) -> Option<Arc<Deflate>> {
        config.enabled.then(|| {
            Arc::new(Deflate {
                threshold: config.threshold,
                level: config.level,
                metrics: metrics.clone(),
                max_memory: config.max_memory,
                reserved: AtomicUsize::new(0),
            })
        })
    }

    /// What a WebSocket upgrade on `transport` with request `headers`
    /// agrees, if anything (declined offers are counted).
    pub fn accept(
        self: &Arc<Self>,
        headers: &HeaderMap,
        transport: Transport,
    ) -> Option<Negotiated> {
        let offers = headers.get_all(SEC_WEBSOCKET_EXTENSIONS);
        match self.negotiate(offers.iter().filter_map(|v| v.to_str().ok())) {
            Answer::Accepted(agreed, answer, takeover) => Some(Negotiated {
                active: self.active(transport),
                window_bits: agreed.window_bits,
                takeover,
                answer: HeaderValue::from_str(&answer).expect("an answer is ASCII"),
            }),
            Answer::Declined | Answer::None => None,
        }
    }

    /// Read the client's `Sec-WebSocket-Extensions` values: the first
    /// permessage-deflate offer the server can take, and its answer. A
    /// declined offer is counted.
    pub fn negotiate<'a>(self: &Arc<Self>, offers: impl Iterator<Item = &'a str>) -> Answer {
        let offer = match negotiate(offers) {
            Negotiation::Accepted(offer) => offer,
            Negotiation::Declined(why) => {
                self.metrics.compression.declined(why);
                return Answer::Declined;
            }
            Negotiation::None => return Answer::None,
        };
        let mut answer = format!("{NAME}; server_no_context_takeover");
        // The client's window: the one it named, else 15 (RFC 7692 §7.1.2.2).
        let bits = offer.client_bits.flatten().unwrap_or(MAX_WINDOW_BITS);
        let takeover = (!offer.client_nct).then(|| self.reserve(bits)).flatten();
        match (&takeover, offer.client_bits) {
            (Some(_), Some(Some(n))) => {
                answer.push_str(&format!("; client_max_window_bits={n}"));
            }
            (Some(_), _) => {}
            (None, _) => answer.push_str("; client_no_context_takeover"),
        }
        if offer.server_bits {
            answer.push_str(&format!(
                "; server_max_window_bits={}",
                offer.agreed.window_bits
            ));
        }
        Answer::Accepted(offer.agreed, answer, takeover)
    }

    /// Room in the budget for an inflater of a `bits` window, if there is.
    fn reserve(self: &Arc<Self>, bits: u8) -> Option<Takeover> {
        let cost = takeover_cost(bits);
        let mut used = self.reserved.load(Ordering::Relaxed);
        loop {
            if used + cost > self.max_memory {
                return None;
            }
            match self.reserved.compare_exchange_weak(
                used,
                used + cost,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(now) => used = now,
            }
        }
        self.metrics.compression.takeover_bytes.add(cost as i64);
        Some(Takeover {
            deflate: self.clone(),
            cost,
            // A 9-bit inflater reads an 8-bit client's stream too.
            bits: bits.max(9),
            inflater: None,
        })
    }

    /// Whether a message of `len` payload bytes is worth compressing.
    pub fn worth(&self, len: usize) -> bool {
        len >= self.threshold && len > 0
    }

    /// `plain`, an encoded (unmasked, unfragmented) data frame, as a
    /// compressed frame for a client that agreed `window_bits`; the frame
    /// as it is when it is under the threshold or already compressed.
    pub fn frame(&self, plain: &Item, window_bits: u8) -> Item {
        let (first, payload) = (plain[0], frame::payload(plain));
        if first & frame::RSV1 != 0 || !self.worth(payload.len()) {
            return plain.clone();
        }
        Item::new(self.compressed_frame(first, &[payload], window_bits))
    }

    /// One frame whose payload is `parts` compressed; `first` is the frame's
    /// first byte (FIN and opcode), RSV1 is added.
    pub fn compressed_frame(&self, first: u8, parts: &[&[u8]], window_bits: u8) -> Bytes {
        let plain: usize = parts.iter().map(|p| p.len()).sum();
        let start = Instant::now();
        let body = compress(parts, self.level, window_bits);
        let m = &self.metrics.compression;
        m.out_seconds.inc_by(start.elapsed().as_secs_f64());
        m.out_plain.inc_by(plain as u64);
        m.out_deflated.inc_by(body.len() as u64);
        let mut buf = BytesMut::with_capacity(frame::header_len(body.len()) + body.len());
        frame::put_header(&mut buf, first | frame::RSV1, body.len());
        buf.put_slice(&body);
        buf.freeze()
    }

    /// Inflate a compressed message of `input` bytes into at most `limit`
    /// bytes, counted.
    pub fn inflate(&self, input: &[u8], limit: usize) -> Result<Vec<u8>, InflateError> {
        self.counted(input, || inflate(input, limit))
    }

    /// `inflate` of `input`, timed and counted.
    fn counted(
        &self,
        input: &[u8],
        inflate: impl FnOnce() -> Result<Vec<u8>, InflateError>,
    ) -> Result<Vec<u8>, InflateError> {
        let start = Instant::now();
        let result = inflate();
        let m = &self.metrics.compression;
        m.in_seconds.inc_by(start.elapsed().as_secs_f64());
        if let Ok(out) = &result {
            m.in_deflated.inc_by(input.len() as u64);
            m.in_plain.inc_by(out.len() as u64);
        }
        result
    }

    /// Count a connection with deflate on `transport` for as long as the
    /// guard lives.
    pub fn active(self: &Arc<Self>, transport: Transport) -> Active {
        self.metrics.compression.connections(transport).inc();
        Active {
            deflate: self.clone(),
            transport,
        }
    }
}

/// A connection's deflate, counted in `roomcast_compression_connections`
/// while it lives.
pub struct Active {
    deflate: Arc<Deflate>,
    transport: Transport,
}

impl Active {
    /// The server's settings.
    pub fn deflate(&self) -> &Arc<Deflate> {
        &self.deflate
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        self.deflate
            .metrics
            .compression
            .connections(self.transport)
            .dec();
    }
}

/// A connection's inflater that keeps its window from message to message
/// (inbound context takeover), its memory reserved in the server's budget
/// until it is dropped.
pub struct Takeover {
    deflate: Arc<Deflate>,
    cost: usize,
    bits: u8,
    /// Made at the first compressed message.
    inflater: Option<Box<Decompress>>,
}

impl std::fmt::Debug for Takeover {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Takeover")
            .field("bits", &self.bits)
            .finish()
    }
}

impl Takeover {
    /// Inflate the next compressed message of this connection into at most
    /// `limit` bytes, counted, with the window of the ones before it.
    pub fn inflate(&mut self, input: &[u8], limit: usize) -> Result<Vec<u8>, InflateError> {
        let bits = self.bits;
        let d = self
            .inflater
            .get_or_insert_with(|| Box::new(Decompress::new_with_window_bits(false, bits)));
        self.deflate
            .counted(input, || inflate_with(d, input, limit))
    }
}

impl Drop for Takeover {
    fn drop(&mut self) {
        self.deflate.reserved.fetch_sub(self.cost, Ordering::AcqRel);
        let m = &self.deflate.metrics.compression;
        m.takeover_bytes.sub(self.cost as i64);
    }
}

/// What an inflater of a `bits` window is reserved as: its window and
/// zlib-rs's inflate state (~7 KiB), rounded up.
fn takeover_cost(bits: u8) -> usize {
    (1usize << bits.max(9)) + 8 * 1024
}

/// Why a compressed message could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InflateError {
    /// It inflates past the limit (stopped there).
    TooLarge,
    /// It is not valid deflate data.
    Corrupt,
}

thread_local! {
    /// This worker thread's compressor, for its level and window.
    static COMPRESSOR: RefCell<Option<(u32, u8, Compress)>> = const { RefCell::new(None) };
    /// This worker thread's inflater (any window: 15 bits).
    static INFLATER: RefCell<Option<Decompress>> = const { RefCell::new(None) };
}

/// `parts`, one message, compressed on its own (no context taken over):
/// sync-flushed, the tail taken off (RFC 7692 §7.2.1).
fn compress(parts: &[&[u8]], level: u32, window_bits: u8) -> Vec<u8> {
    COMPRESSOR.with(|slot| {
        let mut slot = slot.borrow_mut();
        let c = match &mut *slot {
            Some((l, b, c)) if *l == level && *b == window_bits => c,
            other => {
                let c = Compress::new_with_window_bits(Compression::new(level), false, window_bits);
                &mut other.insert((level, window_bits, c)).2
            }
        };
        let plain: usize = parts.iter().map(|p| p.len()).sum();
        let mut out = Vec::with_capacity(plain / 2 + 64);
        let last = parts.len().saturating_sub(1);
        for (i, part) in parts.iter().enumerate() {
            let flush = if i == last {
                FlushCompress::Sync
            } else {
                FlushCompress::None
            };
            let mut input = *part;
            loop {
                if out.capacity() - out.len() < 64 {
                    out.reserve(out.capacity().max(256));
                }
                let before = c.total_in();
                c.compress_vec(input, &mut out, flush)
                    .expect("deflate of in-memory bytes cannot fail");
                input = &input[(c.total_in() - before) as usize..];
                // Done with this part when its input is in and the output
                // was not the limit (a sync flush is then complete).
                if input.is_empty() && out.len() < out.capacity() {
                    break;
                }
            }
        }
        c.reset();
        if out.ends_with(&TAIL) {
            out.truncate(out.len() - TAIL.len());
        }
        if out.is_empty() {
            // An empty message: one empty stored block's first byte (§7.2.3.6).
            out.push(0x00);
        }
        out
    })
}

/// A compressed message inflated, stopping past `limit` bytes.
fn inflate(input: &[u8], limit: usize) -> Result<Vec<u8>, InflateError> {
    INFLATER.with(|slot| {
        let mut slot = slot.borrow_mut();
        let d = slot.get_or_insert_with(|| Decompress::new(false));
        let result = inflate_with(d, input, limit);
        d.reset(false);
        result
    })
}

fn inflate_with(d: &mut Decompress, input: &[u8], limit: usize) -> Result<Vec<u8>, InflateError> {
    let mut out = Vec::with_capacity(input.len().saturating_mul(3).clamp(64, limit.max(64)));
    for (mut rest, last) in [(input, false), (&TAIL[..], true)] {
        loop {
            if out.len() > limit {
                return Err(InflateError::TooLarge);
            }
            if out.capacity() == out.len() {
                // Grow as it inflates, never past the limit (+1 to see it
                // go over).
                let room = (out.capacity().max(1024)).min(limit + 1 - out.len().min(limit));
                out.reserve_exact(room.max(1));
            }
            let before = d.total_in();
            let status = d
                .decompress_vec(rest, &mut out, FlushDecompress::Sync)
                .map_err(|_| InflateError::Corrupt)?;
            rest = &rest[(d.total_in() - before) as usize..];
            match status {
                // The client ended its deflate stream (BFINAL): nothing
                // after it belongs to the message.
                Status::StreamEnd => {
                    return if out.len() > limit {
                        Err(InflateError::TooLarge)
                    } else {
                        Ok(out)
                    };
                }
                Status::Ok | Status::BufError => {
                    if rest.is_empty() && out.len() < out.capacity() {
                        break;
                    }
                    if status == Status::BufError && !rest.is_empty() && out.len() < out.capacity()
                    {
                        return Err(InflateError::Corrupt);
                    }
                }
            }
        }
        if last && out.len() > limit {
            return Err(InflateError::TooLarge);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
