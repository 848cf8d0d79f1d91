//! A member that stops reading is closed as a slow consumer; the room goes on.

mod common;

use std::time::Duration;

use common::{RawWs, TestServer};
use tokio::io::AsyncWriteExt;

/// In a room where one client never reads, the others receive every message,
/// the silent one is closed (4008, counted) and its connection is released.
#[tokio::test]
async fn a_member_that_never_reads_is_dropped_and_the_room_goes_on() {
    let mut config = common::test_config();
    config.limits.outbox_messages = 16;
    config.limits.outbox_bytes = 64 * 1024;
    config.limits.close_timeout = std::time::Duration::from_millis(500);
    config.limits.rate.messages_per_second = 0; // this test floods on purpose
    let srv = TestServer::start(config).await;

    let _silent = RawWs::connect(srv.addr, "/chat/busy").await; // never reads
    let mut talker = srv.connect("/chat/busy").await;
    let mut listener = srv.connect("/chat/busy").await;
    assert_eq!(srv.metric("roomcast_connections").await, 3.0);
    talker.recv_json().await; // its own enter (user2)
    talker.recv_json().await; // user3's enter
    listener.recv_json().await;

    // 4000 × 8 KiB: far more than the silent client's socket buffers can hold.
    let body = "x".repeat(8 * 1024);
    let n = 4000;
    let mut left = [false, false];
    for i in 0..n {
        talker.send_text(&format!("{i} {body}")).await;
        for (k, ws) in [&mut talker, &mut listener].into_iter().enumerate() {
            let mut msg = ws.recv_json().await;
            if msg["type"] == "leave" {
                assert_eq!(
                    msg,
                    common::json("leave", "user1 left"),
                    "only the silent one leaves"
                );
                left[k] = true;
                msg = ws.recv_json().await;
            }
            let data = msg["data"].as_str().unwrap();
            assert!(
                data.starts_with(&format!("user2:{i} ")),
                "message {i}: got {}",
                &data[..data.len().min(60)]
            );
        }
    }
    // Whenever it happened, both members see the silent one leave.
    for (k, ws) in [&mut talker, &mut listener].into_iter().enumerate() {
        if !left[k] {
            assert_eq!(ws.recv_json().await, common::json("leave", "user1 left"));
        }
    }
    assert_eq!(srv.metric("roomcast_slow_consumers_total").await, 1.0);
    assert_eq!(
        srv.wait_metric("roomcast_connections", 2.0).await,
        2.0,
        "the silent connection is released"
    );
    srv.stop().await;
}

/// A room of 100 where one member never reads: the 99 others receive every
/// message, the silent one is closed, and the server's memory stays bounded
/// (measured on a separate server process).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn room_of_100_with_one_frozen_reader_keeps_memory_bounded() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;

    const MEMBERS: usize = 100;
    const MESSAGES: usize = 2000;
    const SIZE: usize = 16 * 1024;
    let cwd = tempfile::tempdir().unwrap();
    let scripts = common::repo_scripts();
    let (child, addr, _) = common::spawn_binary(
        &["--scripts", scripts.to_str().unwrap()],
        &[
            ("ROOMCAST_LIMITS__OUTBOX_MESSAGES", "256"),
            ("ROOMCAST_LIMITS__OUTBOX_BYTES", "4194304"),
            ("ROOMCAST_LIMITS__RATE__MESSAGES_PER_SECOND", "0"),
        ],
        cwd.path(),
    )
    .await;
    let pid = child.id().unwrap();
    let url = format!("ws://{addr}/chat/big");

    // The frozen member joins first (user1) with a tiny receive buffer and never reads.
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    let stream = sock.connect(addr.parse().unwrap()).await.unwrap();
    let (_frozen, _) = tokio_tungstenite::client_async(url.as_str(), stream)
        .await
        .unwrap();

    let mut members = Vec::new();
    for _ in 1..MEMBERS {
        members.push(common::Ws::connect(&url).await);
    }
    // Everyone has seen every join (the last member's join reaches all).
    let last = format!("user{MEMBERS} comes in");
    for m in members.iter_mut() {
        while m.recv_json().await["data"] != last.as_str() {}
    }
    let (baseline, _) = common::rss(pid);

    // user2 sends; every member but the frozen one, user2 included, must get
    // every message, in order. Chat frames are JSON objects whose "data" is
    // "user2:N …" (found wherever the key is: no key order is assumed, and a
    // 16 KiB message is not parsed 200 000 times).
    let (mut sink, mut own) = members.remove(0).inner.split();
    let readers: Vec<_> = members
        .into_iter()
        .map(|m| {
            let mut stream = m.inner.split().1;
            tokio::spawn(async move {
                let mut got = 0;
                while got < MESSAGES {
                    let msg = tokio::time::timeout(common::WAIT, stream.next())
                        .await
                        .expect("messages keep coming")
                        .expect("open")
                        .expect("no error");
                    let Message::Text(t) = msg else { continue };
                    if let Some(n) = chat_number(&t) {
                        assert_eq!(n, got, "message {got} out of order");
                        got += 1;
                    }
                }
                got
            })
        })
        .collect();

    // Closed loop with a window: the sender keeps at most WINDOW messages in
    // flight (it waits for its own copies), so live readers never fall an
    // outbox behind, while the frozen one falls behind without limit.
    const WINDOW: usize = 4;
    let body = "x".repeat(SIZE);
    let mut echoed = 0;
    for i in 0..MESSAGES {
        sink.send(Message::text(format!("{i} {body}")))
            .await
            .unwrap();
        while i + 1 - echoed > WINDOW || (i + 1 == MESSAGES && echoed < MESSAGES) {
            let msg = tokio::time::timeout(common::WAIT, own.next())
                .await
                .expect("own copy in time")
                .expect("open")
                .expect("no error");
            if chat_number(msg.to_text().unwrap_or_default()).is_some() {
                echoed += 1;
            }
        }
    }
    for r in readers {
        assert_eq!(r.await.unwrap(), MESSAGES);
    }
    let (_, peak) = common::rss(pid);
    let growth = peak.saturating_sub(baseline);
    eprintln!(
        "baseline RSS {} KiB, peak growth {} KiB",
        baseline / 1024,
        growth / 1024
    );
    // Without the outbox bound the frozen member alone would pin about
    // MESSAGES × SIZE = 32 MiB of message buffers.
    assert!(
        growth < 16 * 1024 * 1024,
        "server memory grew by {} KiB during the flood",
        growth / 1024
    );
    // It is counted once its connection ends (its Close could not be
    // written: after `limits.close_timeout`), so wait for that.
    let deadline = tokio::time::Instant::now() + common::WAIT;
    loop {
        let scrape = common::http_get(addr.parse().unwrap(), "/metrics")
            .await
            .body;
        let slow = common::metric_value(&scrape, "roomcast_slow_consumers_total");
        if slow == 1.0 {
            break;
        }
        assert!(
            slow == 0.0 && tokio::time::Instant::now() < deadline,
            "the frozen member was closed as a slow consumer (slow consumers: {slow})"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// The N of a chat line `"data":"user2:N …"` in a chat frame, if it is one.
fn chat_number(frame: &str) -> Option<usize> {
    const KEY: &str = r#""data":"user2:"#;
    let at = frame.find(KEY)? + KEY.len();
    let digits: String = frame[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// When the members of a busy room vanish at once (a load client killed
/// mid-round: it stops reading, then its sockets reset), their outboxes fill
/// before the resets are read. That is a mass disconnect, not slow
/// consumers, and an alert on slow consumers must not fire: none is counted
/// slow, each is counted as gone, and the room goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_that_vanish_at_once_are_not_slow_consumers() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;

    const MEMBERS: usize = 20;
    const MESSAGES: usize = 200;
    const SIZE: usize = 32 * 1024;
    let mut config = common::test_config();
    // What a member can absorb: the kernel's send buffer (at most 4 MiB
    // here, net.ipv4.tcp_wmem), its 8 KiB window and a 1 MiB outbox, well
    // under the 6.4 MiB each is sent.
    config.limits.outbox_messages = 128;
    config.limits.outbox_bytes = 1 << 20;
    // Longer than the test: a member is never closed for not answering the Close.
    config.limits.close_timeout = std::time::Duration::from_secs(30);
    config.limits.rate.messages_per_second = 0; // the talker floods on purpose
    let srv = TestServer::start(config).await;
    let url = srv.url("/chat/busy");

    // Members as a load client killed mid-round leaves them: they stopped
    // reading (small receive buffers, so the server's writes block soon).
    let mut members = Vec::new();
    for _ in 0..MEMBERS {
        let sock = tokio::net::TcpSocket::new_v4().unwrap();
        sock.set_recv_buffer_size(4096).unwrap();
        let stream = sock.connect(srv.addr).await.unwrap();
        let (ws, _) = tokio_tungstenite::client_async(url.as_str(), stream)
            .await
            .unwrap();
        members.push(ws);
    }
    let (talker, _) = tokio_tungstenite::connect_async(url.as_str())
        .await
        .unwrap();
    assert_eq!(
        srv.wait_metric("roomcast_connections", (MEMBERS + 1) as f64)
            .await,
        (MEMBERS + 1) as f64
    );
    let (mut tx, mut rx) = talker.split();
    // The talker reads its own copies, so it is never slow itself; each copy
    // means the message was also queued for every member.
    let (copies_tx, mut copies) = tokio::sync::mpsc::unbounded_channel();
    let own = tokio::spawn(async move {
        while let Some(Ok(m)) = rx.next().await {
            if m.to_text()
                .is_ok_and(|t| t.contains(&format!("user{}:", MEMBERS + 1)))
            {
                let _ = copies_tx.send(());
            }
        }
    });
    let body = "x".repeat(SIZE);
    for i in 0..MESSAGES {
        tx.send(Message::text(format!("{i} {body}"))).await.unwrap();
    }
    for _ in 0..MESSAGES {
        tokio::time::timeout(common::WAIT, copies.recv())
            .await
            .expect("the talker's copies arrive")
            .expect("open");
    }
    // Every member's outbox has filled. Now they all vanish at once
    // (closed with unread data: resets).
    drop(members);
    assert_eq!(srv.wait_metric("roomcast_connections", 1.0).await, 1.0);
    assert_eq!(srv.metric("roomcast_slow_consumers_total").await, 0.0);
    assert_eq!(
        srv.metric("roomcast_gone_with_full_outbox_total").await,
        MEMBERS as f64,
        "every member's outbox filled, and every member was gone"
    );
    tx.send(Message::text("still here")).await.unwrap();
    tokio::time::timeout(common::WAIT, copies.recv())
        .await
        .expect("the room goes on")
        .expect("open");
    tx.close().await.unwrap();
    own.abort();
    srv.stop().await;
}

/// Frozen readers at scale: a 1000-member room where 10 members never read.
/// The 990 others receive every message; the 10 are closed as slow
/// consumers; and the server's memory stays under what the outbox limits
/// allow: each frozen member holds at most `limits.outbox_bytes` before it is
/// closed, each reading member a few messages in flight (measured on a
/// separate server process).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn room_of_1000_with_10_frozen_readers_stays_within_its_outbox_bound() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const READERS: usize = 990;
    const FROZEN: usize = 10;
    const MESSAGES: usize = 1500;
    const SIZE: usize = 1024;
    const OUTBOX_BYTES: u64 = 1 << 20;
    let cwd = tempfile::tempdir().unwrap();
    let scripts = common::repo_scripts();
    let outbox = OUTBOX_BYTES.to_string();
    let (child, addr, _, mut log) = common::spawn_binary_logs(
        &["--scripts", scripts.to_str().unwrap()],
        &[
            ("ROOMCAST_LIMITS__OUTBOX_BYTES", outbox.as_str()),
            ("ROOMCAST_LIMITS__RATE__MESSAGES_PER_SECOND", "0"),
            // The readers are raw sockets that never answer a ping: on a
            // loaded machine the test outlasts interval + timeout (40 s).
            ("ROOMCAST_HEARTBEAT__INTERVAL", "0s"),
        ],
        cwd.path(),
    )
    .await;
    let pid = child.id().unwrap();
    // The server's log goes with the test's output (shown if it fails).
    tokio::spawn(async move {
        while let Some(line) = log.recv().await {
            eprintln!("server: {line}");
        }
    });
    let addr: std::net::SocketAddr = addr.parse().unwrap();
    let upgrade = |rcvbuf: Option<u32>| async move {
        let sock = tokio::net::TcpSocket::new_v4().unwrap();
        if let Some(b) = rcvbuf {
            sock.set_recv_buffer_size(b).unwrap();
        }
        let mut s = sock.connect(addr).await.unwrap();
        s.write_all(common::upgrade_request(addr, "/chat/huge", None).as_bytes())
            .await
            .unwrap();
        s
    };
    // The frozen ones join first (user1-user10), with tiny windows.
    let mut frozen = Vec::new();
    for _ in 0..FROZEN {
        frozen.push(upgrade(Some(4096)).await);
    }
    // Readers count the talker's messages (text frames carrying `~m~`) and
    // report their progress, so the talker stays within a window of them:
    // the readers are this test's tasks, slower than the server, and must
    // not become slow consumers themselves.
    let progress: std::sync::Arc<Vec<std::sync::atomic::AtomicUsize>> =
        std::sync::Arc::new((0..READERS).map(|_| Default::default()).collect());
    let moved = std::sync::Arc::new(tokio::sync::Notify::new());
    let mut readers = Vec::new();
    for r in 0..READERS {
        let mut s = upgrade(None).await;
        let (progress, moved) = (progress.clone(), moved.clone());
        readers.push(tokio::spawn(async move {
            let mut buf = Vec::new();
            let mut chunk = vec![0u8; 64 * 1024];
            let mut seen = 0usize;
            let mut head_done = false;
            while seen < MESSAGES {
                let n = s.read(&mut chunk).await.unwrap();
                assert!(
                    n > 0,
                    "a reader was cut after {seen} messages (server process {})",
                    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
                        Ok(stat) => format!("alive: {}", stat.split(' ').nth(2).unwrap_or("?")),
                        Err(_) => "gone".into(),
                    }
                );
                buf.extend_from_slice(&chunk[..n]);
                if !head_done {
                    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                        continue;
                    };
                    buf.drain(..end + 4);
                    head_done = true;
                }
                let mut at = 0;
                while buf.len() >= at + 2 {
                    let (hdr, len) = match buf[at + 1] & 0x7f {
                        126 if buf.len() >= at + 4 => {
                            (4, u16::from_be_bytes([buf[at + 2], buf[at + 3]]) as usize)
                        }
                        126 | 127 => break,
                        n => (2, n as usize),
                    };
                    if buf.len() < at + hdr + len {
                        break;
                    }
                    let payload = &buf[at + hdr..at + hdr + len];
                    assert!(
                        buf[at] & 0x0f != 0x8,
                        "a reader was closed after {seen} messages: Close {:?}",
                        payload.get(..2).map(|c| u16::from_be_bytes([c[0], c[1]]))
                    );
                    if payload.windows(3).any(|w| w == b"~m~") {
                        seen += 1;
                        progress[r].store(seen, std::sync::atomic::Ordering::Relaxed);
                        if seen % 32 == 0 {
                            moved.notify_one();
                        }
                    }
                    at += hdr + len;
                }
                buf.drain(..at);
            }
            seen
        }));
    }
    let (talker, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/chat/huge"))
        .await
        .unwrap();
    let everyone = (READERS + FROZEN + 1) as f64;
    assert_eq!(
        common::wait_for_metric(addr, "roomcast_connections", everyone, common::WAIT).await,
        everyone,
        "not everyone connected"
    );
    let (baseline, _) = common::rss(pid);

    use futures_util::{SinkExt, StreamExt};
    let (mut tx, mut rx) = talker.split();
    let drain = tokio::spawn(async move { while let Some(Ok(_)) = rx.next().await {} });
    let body = "x".repeat(SIZE);
    for i in 0..MESSAGES {
        // At most 256 messages (256 KiB, a quarter of an outbox) ahead of
        // the slowest reader.
        if i % 64 == 0 {
            let slowest = || {
                progress
                    .iter()
                    .map(|p| p.load(std::sync::atomic::Ordering::Relaxed))
                    .min()
                    .unwrap_or(0)
            };
            while slowest() + 256 < i {
                let _ =
                    tokio::time::timeout(std::time::Duration::from_millis(100), moved.notified())
                        .await;
            }
        }
        tx.send(tokio_tungstenite::tungstenite::Message::text(format!(
            "~m~{i} {body}"
        )))
        .await
        .unwrap();
    }
    for r in readers {
        assert_eq!(
            tokio::time::timeout(std::time::Duration::from_secs(120), r)
                .await
                .expect("every reader gets every message in time")
                .unwrap(),
            MESSAGES
        );
    }
    let (_, peak) = common::rss(pid);
    let growth = peak.saturating_sub(baseline);
    // What the outbox limits allow: each frozen member up to its byte bound,
    // each reader a few messages in flight (16 KiB), and 16 MiB for the
    // allocator and the runtime.
    let bound = FROZEN as u64 * OUTBOX_BYTES + READERS as u64 * 16 * 1024 + (16 << 20);
    eprintln!(
        "baseline RSS {} KiB, peak growth {} KiB, bound {} KiB",
        baseline / 1024,
        growth / 1024,
        bound / 1024
    );
    assert!(
        growth < bound,
        "server memory grew by {} KiB (bound {} KiB)",
        growth / 1024,
        bound / 1024
    );
    // The readers leave. The room goes on talking: 6 MiB more to each
    // frozen member, more than its outbox (1 MiB) and the kernel's buffers
    // for it (an 8 KiB window, a send buffer of at most 4 MiB here,
    // net.ipv4.tcp_wmem) can hold, so each must be closed as a slow
    // consumer (counted once its connection ends: after the close timeout,
    // its Close unwritable).
    let frozen_and_talker = (FROZEN + 1) as f64;
    assert_eq!(
        common::wait_for_metric(
            addr,
            "roomcast_connections",
            frozen_and_talker,
            common::WAIT
        )
        .await,
        frozen_and_talker,
        "the readers did not leave"
    );
    let big = "y".repeat(4096);
    for i in 0..1500 {
        tx.send(tokio_tungstenite::tungstenite::Message::text(format!(
            "~m~{i} {big}"
        )))
        .await
        .unwrap();
    }
    let deadline = tokio::time::Instant::now() + common::WAIT;
    loop {
        let scrape = common::http_get(addr, "/metrics").await.body;
        let slow = common::metric_value(&scrape, "roomcast_slow_consumers_total");
        if slow == FROZEN as f64 {
            break;
        }
        assert!(
            slow < FROZEN as f64 && tokio::time::Instant::now() < deadline,
            "slow consumers: {slow}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // And the high-water mark over both phases stays under the bound.
    let (_, peak) = common::rss(pid);
    let growth = peak.saturating_sub(baseline);
    assert!(
        growth < bound,
        "server memory grew by {} KiB (bound {} KiB)",
        growth / 1024,
        bound / 1024
    );
    drop(frozen);
    drain.abort();
}

/// A burst of small frames fills no outbox. 1500 members join a room and
/// then leave at once, none of them reading meanwhile (as a client busy for
/// a moment): each is sent up to 1500 enter messages, and the one who stays
/// 1500 leave messages too, faster than their connections get turns to
/// write. That is 66 KB of frames each, well within the default outbox: no
/// outbox may fill (with a frame bound of 1024 they did, and members of the
/// 1000-member test above that were reading were closed as slow consumers
/// by the leave messages of those that had finished).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_small_frames_fills_no_outbox() {
    const N: usize = 1500;
    let cwd = tempfile::tempdir().unwrap();
    let scripts = common::repo_scripts();
    // Raw sockets that never answer a ping: no heartbeats (the test may
    // take longer than the 30 s interval on a loaded machine).
    let (_child, addr, _) = common::spawn_binary(
        &["--scripts", scripts.to_str().unwrap()],
        &[("ROOMCAST_HEARTBEAT__INTERVAL", "0s")],
        cwd.path(),
    )
    .await;
    let addr: std::net::SocketAddr = addr.parse().unwrap();
    let wait_for = |n: usize| async move {
        let within = std::time::Duration::from_secs(60);
        let seen = common::wait_for_metric(addr, "roomcast_connections", n as f64, within).await;
        assert_eq!(seen, n as f64, "never {n} connections");
    };
    // The one who stays reads nothing until everyone has come and gone.
    let mut stays = common::RawWs::connect_with_rcvbuf(addr, "/chat/big", 4096).await;
    let mut members = Vec::with_capacity(N);
    for _ in 0..N {
        members.push(common::raw_upgrade(addr, "/chat/big", None).await);
    }
    wait_for(N + 1).await;
    drop(members);
    wait_for(1).await;

    let (mut enters, mut leaves) = (0, 0);
    while enters + leaves < 1 + 2 * N {
        let (_, op, payload) = stays.recv_frame().await;
        assert_eq!(
            op,
            0x1,
            "after {enters} enters and {leaves} leaves: {:?}",
            payload.get(..2).map(|c| u16::from_be_bytes([c[0], c[1]]))
        );
        let v: serde_json::Value = serde_json::from_slice(&payload).unwrap();
        match v["type"].as_str() {
            Some("enter") => enters += 1,
            Some("leave") => leaves += 1,
            other => panic!("{other:?}: {v}"),
        }
    }
    assert_eq!((enters, leaves), (N + 1, N));
    let scrape = common::http_get(addr, "/metrics").await.body;
    for full in [
        "roomcast_slow_consumers_total",
        "roomcast_gone_with_full_outbox_total",
    ] {
        assert_eq!(common::metric_value(&scrape, full), 0.0, "{full}");
    }
}

/// A client that sends and never reads its own answers (`/echo`: every
/// answer is its own frame, shared with nobody): its outbox is cut at the
/// byte bound, not the frame bound — 1,000 answers of 60 KB would be 60 MB
/// under the frame bound alone — closed as a slow consumer, and the
/// server's memory barely moves (measured on a separate server process).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_its_answers_is_cut_at_the_byte_bound() {
    const MESSAGES: usize = 1000;
    const SIZE: usize = 60 * 1024;
    let cwd = tempfile::tempdir().unwrap();
    let scripts = common::repo_scripts();
    let (child, addr, _) = common::spawn_binary(
        &["--scripts", scripts.to_str().unwrap()],
        &[("ROOMCAST_LIMITS__OUTBOX_BYTES", "4194304")],
        cwd.path(),
    )
    .await;
    let pid = child.id().unwrap();
    let addr: std::net::SocketAddr = addr.parse().unwrap();
    let (_, peak_before) = common::rss(pid);
    // A tiny receive window, and it never reads.
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    let mut s = sock.connect(addr).await.unwrap();
    s.write_all(common::upgrade_request(addr, "/echo", None).as_bytes())
        .await
        .unwrap();
    let frame = common::encode_client_frame(true, 0x2, &vec![7u8; SIZE], true);
    let sender = tokio::spawn(async move {
        for _ in 0..MESSAGES {
            if s.write_all(&frame).await.is_err() {
                break;
            }
        }
        s
    });
    assert_eq!(
        common::wait_for_metric(
            addr,
            "roomcast_slow_consumers_total",
            1.0,
            Duration::from_secs(30)
        )
        .await,
        1.0,
        "closed as a slow consumer"
    );
    let _ = sender.await;
    let (_, peak_after) = common::rss(pid);
    let grew = peak_after.saturating_sub(peak_before);
    assert!(
        grew < 24 * 1024 * 1024,
        "peak RSS grew {} MiB: the byte bound (4 MiB) did not hold",
        grew / (1024 * 1024)
    );
}
