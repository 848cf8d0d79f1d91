//! What rides inside the WebSocket frames: raw text (roomcast, ws, Bun, the
//! seed's nodejs-websocket servers) or socket.io 4 (Engine.IO v4 packets).

use std::io;

use crate::wire::{find, Conn, Target};

/// The message protocol spoken on a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    /// Each message is one text frame.
    Raw,
    /// socket.io 4: `42["message","…"]` events over Engine.IO v4, in a
    /// namespace (`/`, or e.g. `/shout`).
    SocketIo(&'static str),
}

impl Proto {
    pub fn parse(s: &str) -> Result<Proto, String> {
        match s {
            "raw" => Ok(Proto::Raw),
            "socketio" | "socket.io" => Ok(Proto::SocketIo("/")),
            other => Err(format!("unknown protocol {other:?} (raw, socketio)")),
        }
    }

    /// socket.io in the namespace `target`'s path names (`/` for a bare URL
    /// or one that names the Engine.IO endpoint).
    pub fn for_target(self, target: &Target) -> Proto {
        match self {
            Proto::SocketIo(_) => {
                let path = target.path.split('?').next().unwrap_or("/");
                if path == "/" || target.path.contains("EIO=") {
                    Proto::SocketIo("/")
                } else {
                    Proto::SocketIo(Box::leak(
                        path.trim_end_matches('/').to_string().into_boxed_str(),
                    ))
                }
            }
            raw => raw,
        }
    }

    /// `/ns,` after a packet type, for namespaces other than `/`.
    fn ns_prefix(ns: &str) -> String {
        if ns == "/" {
            String::new()
        } else {
            format!("{ns},")
        }
    }

    /// Connect and finish the protocol's own handshake.
    pub async fn connect(self, target: &Target) -> io::Result<Conn> {
        match self {
            Proto::Raw => Conn::connect(target).await,
            Proto::SocketIo(ns) => {
                let path = if target.path.contains("EIO=") {
                    target.path.clone()
                } else {
                    "/socket.io/?EIO=4&transport=websocket".to_string()
                };
                let mut conn = Conn::connect(&target.with_path(&path)).await?;
                // Engine.IO "open" (0{…}), then join the namespace (40, 40/ns,).
                expect_packet(&mut conn, b"0").await?;
                let join = format!("40{}", Proto::ns_prefix(ns));
                conn.queue_text(join.as_bytes());
                conn.flush().await?;
                expect_packet(&mut conn, join.as_bytes()).await?;
                Ok(conn)
            }
        }
    }

    /// Wrap one application message.
    pub fn wrap(self, msg: &str, out: &mut Vec<u8>) {
        out.clear();
        match self {
            Proto::Raw => out.extend_from_slice(msg.as_bytes()),
            Proto::SocketIo(ns) => {
                out.extend_from_slice(b"42");
                out.extend_from_slice(Proto::ns_prefix(ns).as_bytes());
                out.extend_from_slice(b"[\"message\",");
                out.extend_from_slice(serde_json::to_string(msg).unwrap().as_bytes());
                out.push(b']');
            }
        }
    }

    /// Is this received frame an application message (as opposed to protocol
    /// chatter)? Engine.IO pings ("2") are answered with pongs ("3").
    pub fn is_message(self, conn_reply: &mut Vec<Vec<u8>>, payload: &[u8]) -> bool {
        match self {
            Proto::Raw => true,
            Proto::SocketIo(_) => {
                if payload == b"2" {
                    conn_reply.push(b"3".to_vec());
                    return false;
                }
                payload.starts_with(b"42")
            }
        }
    }
}

/// How long a socket.io handshake step may take before the connect fails.
const HANDSHAKE_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// Read until a packet starting with `prefix` (failing after
/// [`HANDSHAKE_WAIT`]); Engine.IO pings on the way (some servers ping at
/// once) are answered, or they would close us.
async fn expect_packet(conn: &mut Conn, prefix: &[u8]) -> io::Result<()> {
    let wait = expect_packet_untimed(conn, prefix);
    tokio::time::timeout(HANDSHAKE_WAIT, wait)
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no socket.io handshake answer"))?
}

async fn expect_packet_untimed(conn: &mut Conn, prefix: &[u8]) -> io::Result<()> {
    loop {
        let (mut found, mut pings) = (false, 0);
        conn.read_frames(|_, p| {
            found |= p.starts_with(prefix);
            pings += usize::from(p == b"2");
        })
        .await?;
        for _ in 0..pings {
            conn.queue_text(b"3");
        }
        if pings > 0 {
            conn.flush().await?;
        }
        if found {
            return Ok(());
        }
    }
}

/// Find the number after `key` in a payload (e.g. a timestamp after `~t=`).
pub fn number_after(payload: &[u8], key: &[u8]) -> Option<u64> {
    let start = find(payload, key)? + key.len();
    let digits = payload[start..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .count();
    std::str::from_utf8(&payload[start..start + digits])
        .ok()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socketio_wraps_as_an_event() {
        let mut out = Vec::new();
        Proto::SocketIo("/").wrap("hi \"there\"", &mut out);
        assert_eq!(out, br#"42["message","hi \"there\""]"#);
        Proto::SocketIo("/shout").wrap("x", &mut out);
        assert_eq!(out, br#"42/shout,["message","x"]"#);
        let shout = Target::parse("ws://127.0.0.1:1/shout").unwrap();
        assert_eq!(
            Proto::SocketIo("/").for_target(&shout),
            Proto::SocketIo("/shout")
        );
        let eio = Target::parse("ws://127.0.0.1:1/socket.io/?EIO=4&transport=websocket").unwrap();
        assert_eq!(Proto::SocketIo("/").for_target(&eio), Proto::SocketIo("/"));
        Proto::Raw.wrap("hi", &mut out);
        assert_eq!(out, b"hi");
    }

    #[test]
    fn socketio_pings_are_answered_not_counted() {
        let mut replies = Vec::new();
        assert!(!Proto::SocketIo("/").is_message(&mut replies, b"2"));
        assert_eq!(replies, vec![b"3".to_vec()]);
        assert!(Proto::SocketIo("/").is_message(&mut replies, br#"42["message","x"]"#));
        assert!(!Proto::SocketIo("/").is_message(&mut replies, b"40{}"));
        assert!(Proto::Raw.is_message(&mut replies, b"2"));
    }

    #[test]
    fn numbers_are_found_inside_wrapped_payloads() {
        let p = br#"{"data":"user3:~t=123456~xxxx","type":"message"}"#;
        assert_eq!(number_after(p, b"~t="), Some(123456));
        assert_eq!(number_after(b"nothing", b"~t="), None);
    }
}
