//! Soak: clients of every kind (raw WebSocket, roomcast.v1, socket.io 4.x
//! and 2.0.3) connect, join rooms, exchange messages, drop without a close
//! or close properly, and reconnect, at a steady churn, for `SOAK_SECS`
//! (60 here; `benches/soak.sh` runs 600). Then: server RSS at the end
//! within ±10 % of RSS after the first tenth, open files back to where they
//! started, every connection and room gauge back to its starting value,
//! history within its bound. Bounded in time; stops by itself.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// Open files of `pid`: (sockets, everything else).
fn open_files(pid: u32) -> (usize, usize) {
    let mut counts = (0, 0);
    for entry in std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
    {
        let socket = std::fs::read_link(entry.path())
            .is_ok_and(|t| t.to_string_lossy().starts_with("socket:"));
        if socket {
            counts.0 += 1;
        } else {
            counts.1 += 1;
        }
    }
    counts
}

/// What each open file of `pid` is; sockets with their TCP state and ports
/// (from /proc/PID/net/tcp{,6}), for a failure message.
fn describe_files(pid: u32) -> Vec<String> {
    let mut tcp = std::collections::HashMap::new();
    for table in ["tcp", "tcp6"] {
        let text = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")).unwrap_or_default();
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() > 9 {
                tcp.insert(
                    f[9].to_string(),
                    format!("{} -> {} state {}", f[1], f[2], f[3]),
                );
            }
        }
    }
    let mut out = Vec::new();
    for entry in std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
    {
        let target = std::fs::read_link(entry.path())
            .map(|t| t.display().to_string())
            .unwrap_or_default();
        let inode = target
            .strip_prefix("socket:[")
            .and_then(|t| t.strip_suffix(']'))
            .unwrap_or("");
        let tcp = tcp.get(inode).map(String::as_str).unwrap_or("");
        out.push(format!(
            "{} {target} {tcp}",
            entry.file_name().to_string_lossy()
        ));
    }
    out.sort();
    out
}

async fn metrics(addr: SocketAddr) -> String {
    common::http_get(addr, "/metrics").await.body
}

/// The upgrade by hand (`common::raw_upgrade`), as roomcast.v1 if `v1`.
async fn upgrade(addr: SocketAddr, path: &str, v1: bool) -> TcpStream {
    common::raw_upgrade(addr, path, v1.then_some("roomcast.v1")).await
}

/// A masked client text frame.
fn text(payload: &str) -> Vec<u8> {
    let p = payload.as_bytes();
    assert!(p.len() < 126);
    let mut f = vec![0x81, 0x80 | p.len() as u8, 1, 2, 3, 4];
    f.extend(p.iter().enumerate().map(|(i, b)| b ^ [1, 2, 3, 4][i % 4]));
    f
}

/// Read until a text frame containing `needle` arrives.
async fn until_text(s: &mut TcpStream, needle: &str) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    tokio::time::timeout(common::WAIT, async {
        loop {
            let n = s.read(&mut chunk).await.unwrap();
            assert!(n > 0, "closed while waiting for {needle:?}");
            buf.extend_from_slice(&chunk[..n]);
            if buf.windows(needle.len()).any(|w| w == needle.as_bytes()) {
                return;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no {needle:?} in time"));
}

/// One churning WebSocket client: connect, (v1: join a room), speak, hear
/// itself, leave (half the time without a Close), again, until `stop`.
async fn churn(addr: SocketAddr, k: usize, stop: Arc<AtomicBool>, cycles: Arc<AtomicU64>) {
    let mut i = 0usize;
    while !stop.load(Ordering::Relaxed) {
        let room = format!("r{}", (k + i) % 20);
        let v1 = k % 3 == 2;
        let mut s = if v1 {
            let mut s = upgrade(addr, "/chat", true).await;
            s.write_all(&text(&format!(
                r#"{{"type":"join","room":"chat/{room}","id":1}}"#
            )))
            .await
            .unwrap();
            until_text(&mut s, r#""type":"joined""#).await;
            s.write_all(&text(&format!(
                r#"{{"type":"publish","room":"chat/{room}","data":"soak {k} {i}","id":2}}"#
            )))
            .await
            .unwrap();
            s
        } else if k % 3 == 1 {
            let mut s = upgrade(addr, "/echo", false).await;
            s.write_all(&text(&format!("soak {k} {i}"))).await.unwrap();
            s
        } else {
            let mut s = upgrade(addr, &format!("/chat/{room}"), false).await;
            s.write_all(&text(&format!("soak {k} {i}"))).await.unwrap();
            s
        };
        until_text(&mut s, &format!("soak {k} {i}")).await;
        if i % 2 == 0 {
            // A proper goodbye: Close 1000, then the server's Close.
            let _ = s
                .write_all(&[0x88, 0x82, 1, 2, 3, 4, 0x03 ^ 1, 0xe8 ^ 2])
                .await;
            let mut rest = Vec::new();
            tokio::time::timeout(common::WAIT, s.read_to_end(&mut rest))
                .await
                .expect("the server ends the connection after its Close")
                .expect("a clean end");
            // The server's Close, echoing 1000, is the last thing it sent.
            assert!(
                rest.ends_with(&[0x88, 0x02, 0x03, 0xe8]),
                "no Close 1000 from the server: ...{:02x?}",
                &rest[rest.len().saturating_sub(8)..]
            );
        }
        // Otherwise dropped as it is: no Close (a phone losing its network).
        drop(s);
        cycles.fetch_add(1, Ordering::Relaxed);
        i += 1;
    }
}

/// Run the soak for `secs` against a fresh server process.
async fn soak(secs: u64) {
    let dir = tempfile::tempdir().unwrap();
    let scripts = common::repo_scripts();
    let (child, addr, _) = common::spawn_binary(
        &["--scripts", scripts.to_str().unwrap()],
        // As a user runs it, but for the rate limit: churn is the point.
        &[("ROOMCAST_LIMITS__RATE__MESSAGES_PER_SECOND", "0")],
        dir.path(),
    )
    .await;
    let pid = child.id().unwrap();
    let addr: SocketAddr = addr.parse().unwrap();
    let (start_sockets, _) = open_files(pid);
    let start_list = describe_files(pid);
    let m0 = metrics(addr).await;
    let gauge = |m: &str, name: &str| common::metric_value(m, name);
    let (conns0, rooms0) = (
        gauge(&m0, "roomcast_connections"),
        gauge(&m0, "roomcast_rooms"),
    );

    let stop = Arc::new(AtomicBool::new(false));
    let cycles = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for k in 0..30 {
        workers.push(tokio::spawn(churn(addr, k, stop.clone(), cycles.clone())));
    }
    let soak_secs = secs.to_string();
    let mut node = common::sio::spawn(
        addr,
        "churn",
        &[("SOAK_SECS", &soak_secs), ("SOAK_LOOPS", "6")],
    );

    // RSS after the first tenth (warm: every code path and pool used once),
    // then at the end, under the same load.
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(secs / 10)).await;
    let (rss_early, _) = common::rss(pid);
    // Files other than sockets, once everything has started (the script
    // watcher's inotify and its poller open after the startup line).
    let (_, other_files) = open_files(pid);
    let cycles_early = cycles.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(secs) - started.elapsed()).await;
    let (rss_late, _) = common::rss(pid);
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        tokio::time::timeout(Duration::from_secs(30), w)
            .await
            .expect("the WebSocket clients stop")
            .unwrap();
    }
    let mut report = String::new();
    let mut lines = BufReader::new(node.stdout.take().unwrap()).lines();
    tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            report.push_str(&line);
            report.push('\n');
        }
    })
    .await
    .expect("the socket.io clients stop");
    common::sio::finish(&mut node, &report).await;
    let sio_cycles: u64 = report
        .lines()
        .find_map(|l| l.strip_prefix("cycles "))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no cycle count: {report}"));

    // Everyone gone: the gauges return to where they started (connections
    // that were cut are noticed by their sessions at once; socket.io ones
    // by engine.io's heartbeat at worst).
    let deadline = Instant::now() + Duration::from_secs(60);
    let m = loop {
        let m = metrics(addr).await;
        if gauge(&m, "roomcast_connections") == conns0 && gauge(&m, "roomcast_rooms") == rooms0 {
            break m;
        }
        assert!(
            Instant::now() < deadline,
            "gauges did not return: connections {} rooms {}",
            gauge(&m, "roomcast_connections"),
            gauge(&m, "roomcast_rooms")
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    for t in ["websocket", "socketio"] {
        assert_eq!(
            gauge(
                &m,
                &format!("roomcast_connections_by_transport{{transport=\"{t}\"}}")
            ),
            0.0,
            "{t}"
        );
    }
    assert!(gauge(&m, "roomcast_history_bytes") <= (256u64 << 20) as f64);
    let ws_cycles = cycles.load(Ordering::Relaxed);
    assert!(
        ws_cycles > cycles_early && sio_cycles > 0,
        "the churn ran: {ws_cycles} {sio_cycles}"
    );
    // Open files back to where they were (a few may be the metrics scrape's).
    // A peer that vanished without a FIN or RST is noticed by a heartbeat:
    // within its interval plus its timeout (30 s + 10 s by default).
    let deadline = Instant::now() + Duration::from_secs(45);
    let (sockets, others) = loop {
        let f = open_files(pid);
        if (f.0 <= start_sockets + 2 && f.1 <= other_files) || Instant::now() > deadline {
            break f;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        sockets <= start_sockets + 2 && others <= other_files,
        "open sockets {start_sockets} → {sockets}, other files {other_files} → {others}; \
         at the start:\n{}\nnow:\n{}",
        start_list.join("\n"),
        describe_files(pid).join("\n")
    );
    let drift = (rss_late as f64 - rss_early as f64) / rss_early as f64;
    eprintln!(
        "soak {secs} s: {ws_cycles} WebSocket and {sio_cycles} socket.io connect-talk-leave cycles; \
         RSS {} KiB at {} s, {} KiB at the end ({:+.1} %); open sockets {start_sockets} → {sockets}, other files {other_files} → {others}",
        rss_early / 1024,
        secs / 10,
        rss_late / 1024,
        drift * 100.0
    );
    assert!(drift.abs() <= 0.10, "RSS drifted {:+.1} %", drift * 100.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_keeps_memory_files_and_gauges_flat() {
    let secs = std::env::var("SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    soak(secs).await;
}
