//! A minimal WebSocket client for load generation: hand-written handshake,
//! masked client frames, unmasked server frames, and nothing else. Kept
//! small so the load generator spends its core on traffic, not on a client
//! library, and so the same client measures every server alike.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Client frames must be masked; any key is valid. A fixed non-zero key keeps
/// the cost the same for every server under test.
pub const MASK: [u8; 4] = [0x5a, 0xa5, 0x3c, 0xc3];

/// Offer permessage-deflate (`--deflate`) and insist on it: the client
/// itself never compresses, and counts compressed (RSV1) frames without
/// inflating them, so what it measures is the server's work.
pub static DEFLATE: AtomicBool = AtomicBool::new(false);

/// Bytes read from every server, on the wire (frame headers included).
pub static BYTES_READ: AtomicU64 = AtomicU64::new(0);

/// A data frame's RSV1 bit, as `read_frames` hands it on with its opcode.
pub const COMPRESSED: u8 = 0x40;

pub const TEXT: u8 = 0x1;
pub const CLOSE: u8 = 0x8;
pub const PING: u8 = 0x9;
pub const PONG: u8 = 0xA;

/// `ws://host:port/path?query` split into its parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub host: String,
    pub port: u16,
    pub path: String,
}

impl Target {
    pub fn parse(url: &str) -> Result<Target, String> {
        let rest = url
            .strip_prefix("ws://")
            .ok_or_else(|| format!("{url}: only ws:// URLs are supported"))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) => (h, p.parse().map_err(|_| format!("{url}: bad port"))?),
            None => (authority, 80),
        };
        if host.is_empty() {
            return Err(format!("{url}: no host"));
        }
        Ok(Target {
            host: host.to_string(),
            port,
            path: path.to_string(),
        })
    }

    pub fn addr(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// The same server, another path.
    pub fn with_path(&self, path: &str) -> Target {
        Target {
            path: path.to_string(),
            ..self.clone()
        }
    }
}

/// Append one masked client frame to `out`.
pub fn encode_frame(opcode: u8, payload: &[u8], out: &mut Vec<u8>) {
    out.push(0x80 | opcode);
    let len = payload.len();
    if len < 126 {
        out.push(0x80 | len as u8);
    } else if len <= 0xffff {
        out.push(0x80 | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0x80 | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    out.extend_from_slice(&MASK);
    let start = out.len();
    out.extend_from_slice(payload);
    for (i, b) in out[start..].iter_mut().enumerate() {
        *b ^= MASK[i & 3];
    }
}

/// Parse one server frame at the start of `buf`: (fin, opcode, header length,
/// payload length), or `None` if it is not complete yet.
pub fn parse_frame(buf: &[u8]) -> Option<(bool, u8, usize, usize)> {
    if buf.len() < 2 {
        return None;
    }
    let fin = buf[0] & 0x80 != 0;
    let opcode = buf[0] & 0x0f;
    let masked = buf[1] & 0x80 != 0;
    let (len, mut hdr) = match buf[1] & 0x7f {
        126 => {
            if buf.len() < 4 {
                return None;
            }
            (u16::from_be_bytes([buf[2], buf[3]]) as usize, 4)
        }
        127 => {
            if buf.len() < 10 {
                return None;
            }
            let mut n = [0u8; 8];
            n.copy_from_slice(&buf[2..10]);
            (u64::from_be_bytes(n) as usize, 10)
        }
        n => (n as usize, 2),
    };
    if masked {
        hdr += 4; // servers must not mask, but tolerate it in the length math
    }
    if buf.len() < hdr + len {
        return None;
    }
    Some((fin, opcode, hdr, len))
}

/// One client connection.
pub struct Conn {
    pub stream: TcpStream,
    rbuf: BytesMut,
    wbuf: Vec<u8>,
}

impl Conn {
    /// TCP connect and WebSocket handshake.
    pub async fn connect(target: &Target) -> io::Result<Conn> {
        let stream = TcpStream::connect(target.addr()).await?;
        stream.set_nodelay(true)?;
        let mut conn = Conn {
            stream,
            rbuf: BytesMut::with_capacity(4096),
            wbuf: Vec::with_capacity(256),
        };
        let deflate = DEFLATE.load(Ordering::Relaxed);
        let offer = if deflate {
            // A browser's offer.
            "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
        } else {
            ""
        };
        let req = format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{offer}\r\n",
            target.path,
            target.addr()
        );
        conn.stream.write_all(req.as_bytes()).await?;
        loop {
            if let Some(end) = find(&conn.rbuf, b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&conn.rbuf[..end]).to_string();
                if !head.starts_with("HTTP/1.1 101") {
                    return Err(io::Error::other(format!(
                        "upgrade refused: {}",
                        head.lines().next().unwrap_or_default()
                    )));
                }
                if deflate && !head.to_ascii_lowercase().contains("permessage-deflate") {
                    return Err(io::Error::other(
                        "--deflate: the server did not agree permessage-deflate",
                    ));
                }
                conn.rbuf.advance(end + 4);
                return Ok(conn);
            }
            if conn.stream.read_buf(&mut conn.rbuf).await? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
    }

    /// Queue a text frame (sent by the next `flush`).
    pub fn queue_text(&mut self, payload: &[u8]) {
        encode_frame(TEXT, payload, &mut self.wbuf);
    }

    /// Queue any frame.
    pub fn queue(&mut self, opcode: u8, payload: &[u8]) {
        encode_frame(opcode, payload, &mut self.wbuf);
    }

    /// Write everything queued.
    pub async fn flush(&mut self) -> io::Result<()> {
        if !self.wbuf.is_empty() {
            self.stream.write_all(&self.wbuf).await?;
            self.wbuf.clear();
        }
        Ok(())
    }

    /// Hand every complete data frame's (opcode, payload) to `on_frame`,
    /// reading from the socket first unless frames are already buffered (the
    /// handshake's read may have brought the first ones). Pings are answered
    /// (queued); a Close ends the connection with an error. Returns the
    /// number of data frames (0 when only control frames came).
    pub async fn read_frames(&mut self, mut on_frame: impl FnMut(u8, &[u8])) -> io::Result<usize> {
        if parse_frame(&self.rbuf).is_none() {
            if self.rbuf.capacity() - self.rbuf.len() < 1024 {
                self.rbuf.reserve(16 * 1024);
            }
            let read = self.stream.read_buf(&mut self.rbuf).await?;
            if read == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            BYTES_READ.fetch_add(read as u64, Ordering::Relaxed);
        }
        let mut n = 0;
        let mut pos = 0;
        while let Some((_, opcode, hdr, len)) = parse_frame(&self.rbuf[pos..]) {
            let payload = &self.rbuf[pos + hdr..pos + hdr + len];
            match opcode {
                PING => encode_frame(PONG, payload, &mut self.wbuf),
                PONG => {}
                CLOSE => {
                    return Err(io::Error::new(
                        io::ErrorKind::ConnectionAborted,
                        format!("server closed: {:?}", close_code(payload)),
                    ))
                }
                _ => {
                    on_frame(opcode | (self.rbuf[pos] & COMPRESSED), payload);
                    n += 1;
                }
            }
            pos += hdr + len;
        }
        self.rbuf.advance(pos);
        Ok(n)
    }

    /// Send a Close and wait for the server's (or EOF).
    pub async fn close(mut self) -> io::Result<()> {
        self.queue(CLOSE, &1000u16.to_be_bytes());
        self.flush().await?;
        loop {
            match self.read_frames(|_, _| {}).await {
                Ok(_) => continue,
                Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
                Err(e) => return Err(e),
            }
        }
    }
}

fn close_code(payload: &[u8]) -> Option<u16> {
    (payload.len() >= 2).then(|| u16::from_be_bytes([payload[0], payload[1]]))
}

/// Position of `needle` in `hay`.
pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(hay, needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let t = Target::parse("ws://127.0.0.1:3000/chat/x?a=1").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.path.as_str()),
            ("127.0.0.1", 3000, "/chat/x?a=1")
        );
        assert_eq!(Target::parse("ws://h").unwrap().path, "/");
        assert!(Target::parse("http://h/").is_err());
        assert!(Target::parse("ws://:1/").is_err());
    }

    #[test]
    fn frames_round_trip_through_the_parser() {
        for len in [0usize, 1, 125, 126, 65535, 65536] {
            let payload = vec![7u8; len];
            let mut out = Vec::new();
            encode_frame(TEXT, &payload, &mut out);
            let (fin, op, hdr, plen) = parse_frame(&out).unwrap();
            assert!(fin);
            assert_eq!((op, plen), (TEXT, len));
            let unmasked: Vec<u8> = out[hdr..]
                .iter()
                .enumerate()
                .map(|(i, b)| b ^ MASK[i & 3])
                .collect();
            assert_eq!(unmasked, payload);
            assert!(parse_frame(&out[..out.len() - 1]).is_none() || len == 0);
        }
    }

    #[test]
    fn server_frames_parse_incrementally() {
        let frame = [0x81, 0x03, b'a', b'b', b'c', 0x82, 0x00];
        assert_eq!(parse_frame(&frame[..4]), None);
        assert_eq!(parse_frame(&frame), Some((true, TEXT, 2, 3)));
        assert_eq!(parse_frame(&frame[5..]), Some((true, 0x2, 2, 0)));
    }
}
