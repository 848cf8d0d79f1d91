//! Shutdown under load: the binary holds 10,000 connections of every kind
//! (raw WebSocket, roomcast.v1, socket.io 4.x and 2.0.3 over WebSocket and
//! long-polling) when it gets SIGTERM (or SIGINT). Every client must hear its
//! protocol's goodbye (Close 1001, a socket.io disconnect), counted here on
//! the client side; `/readyz` turns 503 at once; a client that never answers
//! the Close is cut at `limits.close_timeout`; the process exits 0 within
//! `shutdown.drain_timeout`.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// Read frames until the server's Close; its code (answering it, as a
/// client should). `None` if the stream ended without one.
async fn close_code(mut s: TcpStream) -> Option<u16> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        // Parse what is buffered: server frames are unmasked.
        while buf.len() >= 2 {
            let len0 = (buf[1] & 0x7f) as usize;
            let (hdr, len) = match len0 {
                126 if buf.len() >= 4 => (4, u16::from_be_bytes([buf[2], buf[3]]) as usize),
                127 if buf.len() >= 10 => (
                    10,
                    u64::from_be_bytes(buf[2..10].try_into().unwrap()) as usize,
                ),
                126 | 127 => break,
                n => (2, n),
            };
            if buf.len() < hdr + len {
                break;
            }
            if buf[0] & 0x0f == 0x8 {
                let code = (len >= 2).then(|| u16::from_be_bytes([buf[hdr], buf[hdr + 1]]));
                // Answer the Close (masked, empty).
                let _ = s.write_all(&[0x88, 0x80, 0, 0, 0, 0]).await;
                return code;
            }
            buf.drain(..hdr + len);
        }
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

async fn readyz(addr: SocketAddr) -> u16 {
    common::http_get(addr, "/readyz").await.status
}

/// `raw` raw clients (chat and echo), `v1` roomcast.v1 clients and `sio`
/// socket.io clients, one frozen client; then `signal`.
async fn shutdown_under_load(signal: &str, raw: usize, v1: usize, sio: usize) {
    // Per process: the server holds every connection, this test the raw and v1 ones.
    common::raise_nofile((raw + v1 + sio + 1000) as u64);
    let dir = tempfile::tempdir().unwrap();
    let scripts = common::repo_scripts();
    let cap = (raw + v1 + sio + 100).to_string();
    let (mut child, addr, _) = common::spawn_binary(
        &["--scripts", scripts.to_str().unwrap()],
        &[
            ("ROOMCAST_LIMITS__MAX_CONNECTIONS", cap.as_str()),
            ("ROOMCAST_LIMITS__CLOSE_TIMEOUT", "2s"),
            ("ROOMCAST_SHUTDOWN__DRAIN_TIMEOUT", "60s"),
            // The v1 clients join nothing; the raw ones sit in big rooms.
            ("ROOMCAST_LIMITS__RATE__MESSAGES_PER_SECOND", "0"),
        ],
        dir.path(),
    )
    .await;
    let addr: SocketAddr = addr.parse().unwrap();

    // Connect everyone, 200 at a time.
    let targets = (0..raw + v1).map(|i| match i {
        i if i < raw && i % 2 == 0 => ("/chat/big".to_string(), None),
        i if i < raw => ("/echo".to_string(), None),
        _ => ("/chat".to_string(), Some("roomcast.v1")),
    });
    let streams = common::raw_upgrades(addr, targets).await;
    // One client that never reads nor answers the Close (a tiny window, so
    // the server's writes to it block): it must be cut at the close timeout.
    let frozen = {
        let sock = tokio::net::TcpSocket::new_v4().unwrap();
        sock.set_recv_buffer_size(4096).unwrap();
        let mut s = sock.connect(addr).await.unwrap();
        s.write_all(common::upgrade_request(addr, "/chat/big", None).as_bytes())
            .await
            .unwrap();
        s
    };

    // The socket.io clients, in Node.
    let clients = sio.to_string();
    let mut node = common::sio::spawn(addr, "shutdown-many", &[("SIO_CLIENTS", &clients)]);
    let mut lines = BufReader::new(node.stdout.take().unwrap()).lines();
    let mut report = String::new();
    tokio::time::timeout(Duration::from_secs(120), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            report.push_str(&line);
            report.push('\n');
            if line == "ask stop" {
                return;
            }
        }
        panic!("the socket.io clients stopped early:\n{report}");
    })
    .await
    .expect("the socket.io clients connect");
    let total = raw + v1 + sio + 1;
    let scrape = common::http_get(addr, "/metrics").await.body;
    assert_eq!(
        common::metric_value(&scrape, "roomcast_connections"),
        total as f64,
        "everyone is connected"
    );
    assert_eq!(readyz(addr).await, 200);

    // Every raw and v1 client waits for its Close.
    let closes: Vec<_> = streams
        .into_iter()
        .map(|s| tokio::spawn(close_code(s)))
        .collect();
    let pid = child.id().unwrap().to_string();
    let started = Instant::now();
    // The frozen client now reads (so the server's writes get through) but
    // still never answers the Close: when does its connection end?
    let frozen_cut = tokio::spawn(async move {
        let mut frozen = frozen;
        let mut rest = Vec::new();
        let _ = frozen.read_to_end(&mut rest).await;
        Instant::now()
    });
    assert!(std::process::Command::new("kill")
        .args([&format!("-{signal}"), &pid])
        .status()
        .unwrap()
        .success());
    // Ready no more, at once (the listener answers while sessions drain).
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        if readyz(addr).await == 503 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "/readyz still 200 after {signal}"
        );
    }

    let mut codes = std::collections::BTreeMap::new();
    for c in closes {
        *codes.entry(c.await.unwrap()).or_insert(0usize) += 1;
    }
    assert_eq!(
        codes.get(&Some(1001)).copied().unwrap_or(0),
        raw + v1,
        "every WebSocket client hears Close 1001: {codes:?}"
    );
    eprintln!(
        "{signal}: every Close 1001 heard after {:?}",
        started.elapsed()
    );

    // The socket.io clients: each heard the server's disconnect.
    let rest = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            report.push_str(&line);
            report.push('\n');
        }
    });
    rest.await.expect("the socket.io clients finish");
    common::sio::finish(&mut node, &report).await;
    assert!(report.contains(&format!("disconnects {sio}\n")), "{report}");

    // The frozen client, which never answers the Close, was cut by the
    // server at the close timeout (2 s), while it ran: not at its exit.
    let cut = tokio::time::timeout(Duration::from_secs(60), frozen_cut)
        .await
        .expect("the frozen client's connection ends")
        .unwrap();
    let status = tokio::time::timeout(Duration::from_secs(60), child.wait())
        .await
        .expect("exits within the drain timeout")
        .unwrap();
    let exited = Instant::now();
    assert_eq!(status.code(), Some(0), "after {signal}");
    let after = cut - started;
    let close_timeout = Duration::from_secs(2);
    assert!(
        after >= close_timeout - Duration::from_millis(100) && after <= close_timeout + common::scaled(Duration::from_secs(5)),
        "the frozen client was cut {after:?} after {signal}, not at the close timeout ({close_timeout:?})"
    );
    assert!(cut <= exited, "cut by the server, not by its exit");
    // Well before the drain timeout (60 s).
    assert!(
        started.elapsed() < common::scaled(Duration::from_secs(45)),
        "shutdown took {:?}: something waited for the drain timeout",
        started.elapsed()
    );
    eprintln!(
        "{signal}: {} goodbyes to {total} clients, exit 0 after {:?}",
        raw + v1 + sio,
        started.elapsed()
    );
}

/// 10,000 connections of mixed kinds and SIGTERM; then, on a new server,
/// the same with SIGINT (Ctrl-C) at a smaller scale. One after the other:
/// both at once would need twice the open files.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_and_sigint_under_load_say_goodbye_to_everyone() {
    shutdown_under_load("TERM", 7000, 2500, 500).await;
    shutdown_under_load("INT", 1500, 400, 100).await;
}
