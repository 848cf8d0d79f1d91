//! An Engine.IO client made by hand (long-polling over plain HTTP, one
//! request per connection), for input no real client sends: bad packets,
//! floods of handshakes, sessions that never poll.

use std::net::SocketAddr;

use base64::Engine as _;
use serde_json::Value;

use super::http_raw;

/// Engine.IO 4's packet separator in a polling payload.
pub const SEP: char = '\u{1e}';

/// One polling session.
pub struct Eio {
    pub addr: SocketAddr,
    pub sid: String,
    /// 3 (socket.io-client 1.x-2.x) or 4.
    pub version: u8,
}

/// A raw HTTP exchange: (status, head, body).
pub async fn http(addr: SocketAddr, request: String) -> (u16, String, String) {
    let r = http_raw(addr, &request).await;
    (r.status, r.head, r.body)
}

/// The handshake request of a polling session of `version`, as text.
pub fn handshake_request(addr: SocketAddr, version: u8) -> String {
    format!(
        "GET /socket.io/?EIO={version}&transport=polling HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
}

/// The packets of a polling payload: Engine.IO 4's separated by
/// [`SEP`], Engine.IO 3's `<length>:<packet>` (the length in UTF-16 units).
pub fn split_payload(version: u8, body: &str) -> Vec<String> {
    if version == 4 {
        return body.split(SEP).map(str::to_string).collect();
    }
    let mut packets = Vec::new();
    let mut rest = body;
    while let Some((len, tail)) = rest.split_once(':') {
        let len: usize = len.parse().expect("an Engine.IO 3 length");
        let mut units = 0;
        let end = tail
            .char_indices()
            .find_map(|(i, c)| {
                let at = (units == len).then_some(i);
                units += c.len_utf16();
                at
            })
            .unwrap_or(tail.len());
        packets.push(tail[..end].to_string());
        rest = &tail[end..];
    }
    packets
}

impl Eio {
    /// Open a polling session (Engine.IO 4) and, with `ns`, connect that namespace.
    pub async fn open(addr: SocketAddr, ns: Option<&str>) -> Eio {
        let eio = Eio::handshake(addr, 4).await;
        if let Some(ns) = ns {
            let connect = if ns == "/" {
                "40".to_string()
            } else {
                format!("40{ns},")
            };
            assert_eq!(eio.post(&connect).await.0, 200);
            let connected = async {
                loop {
                    let (status, packets) = eio.packets().await;
                    assert_eq!(status, 200);
                    if packets.iter().any(|p| p.starts_with("40")) {
                        break;
                    }
                }
            };
            tokio::time::timeout(super::WAIT, connected)
                .await
                .expect("the connect answer in time");
        }
        eio
    }

    /// A handshake only: the session's id, nothing polled or posted.
    pub async fn handshake(addr: SocketAddr, version: u8) -> Eio {
        let (status, _, body) = http(addr, handshake_request(addr, version)).await;
        assert_eq!(status, 200, "{body}");
        let open = split_payload(version, &body)
            .into_iter()
            .next()
            .expect("an open packet");
        let open: Value = serde_json::from_str(open.strip_prefix('0').unwrap()).unwrap();
        Eio {
            addr,
            sid: open["sid"].as_str().unwrap().to_string(),
            version,
        }
    }

    /// Poll once: the packets it brought (a ping is answered).
    pub async fn packets(&self) -> (u16, Vec<String>) {
        let (status, body) = self.poll().await;
        let packets = split_payload(self.version, &body);
        if self.version == 4 && packets.iter().any(|p| p == "2") {
            self.post("3").await;
        }
        (status, packets)
    }

    pub fn url(&self) -> String {
        format!(
            "/socket.io/?EIO={}&transport=polling&sid={}",
            self.version, self.sid
        )
    }

    /// POST one payload (text).
    pub async fn post(&self, body: &str) -> (u16, String) {
        let (status, _, text) = http(
            self.addr,
            format!(
                "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: text/plain;charset=UTF-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                self.url(),
                self.addr,
                body.len()
            ),
        )
        .await;
        (status, text)
    }

    pub async fn poll(&self) -> (u16, String) {
        let (status, _, text) = http(
            self.addr,
            format!(
                "GET {} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
                self.url(),
                self.addr
            ),
        )
        .await;
        (status, text)
    }
}

/// A binary attachment as an Engine.IO 4 polling packet (`b` + base64).
pub fn binary_packet(data: &[u8]) -> String {
    format!(
        "b{}",
        base64::engine::general_purpose::STANDARD.encode(data)
    )
}

/// `total` handshakes of `version` over `conns` keep-alive connections, as
/// fast as the server answers; the session ids they got.
pub async fn flood_handshakes(
    addr: SocketAddr,
    version: u8,
    total: usize,
    conns: usize,
) -> Vec<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let per = total.div_ceil(conns);
    let mut tasks = Vec::new();
    for c in 0..conns {
        let n = per.min(total.saturating_sub(c * per));
        tasks.push(tokio::spawn(async move {
            let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
            let request = format!(
                "GET /socket.io/?EIO={version}&transport=polling HTTP/1.1\r\nHost: {addr}\r\n\r\n"
            );
            let mut sids = Vec::with_capacity(n);
            let mut buf = Vec::new();
            let mut chunk = vec![0u8; 16 * 1024];
            for _ in 0..n {
                s.write_all(request.as_bytes()).await.unwrap();
                let (head_end, len) = loop {
                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..i]).to_ascii_lowercase();
                        assert!(head.starts_with("http/1.1 200"), "{head}");
                        let len = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .map(|v| v.trim().parse::<usize>().unwrap())
                            .expect("a content-length");
                        break (i + 4, len);
                    }
                    let got = s.read(&mut chunk).await.unwrap();
                    assert!(got > 0, "the server closed a handshake connection");
                    buf.extend_from_slice(&chunk[..got]);
                };
                while buf.len() < head_end + len {
                    let got = s.read(&mut chunk).await.unwrap();
                    assert!(got > 0, "the server closed a handshake connection");
                    buf.extend_from_slice(&chunk[..got]);
                }
                let body = String::from_utf8_lossy(&buf[head_end..head_end + len]).to_string();
                buf.drain(..head_end + len);
                let open = split_payload(version, &body).into_iter().next().unwrap();
                let open: Value = serde_json::from_str(open.strip_prefix('0').unwrap()).unwrap();
                sids.push(open["sid"].as_str().unwrap().to_string());
            }
            sids
        }));
    }
    let mut all = Vec::with_capacity(total);
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all
}
