//! The load scenarios. Each runs against any WebSocket URL, is bounded in
//! connections and time, stops by itself, and returns one [`Record`].

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{watch, Notify, Semaphore};

use crate::proto::{number_after, Proto};
use crate::stats::{self, histogram, Record};
use crate::wire::{Conn, Target};

/// Options shared by every scenario.
#[derive(Debug, Clone)]
pub struct Opts {
    /// The first of `targets`.
    pub target: Target,
    /// Where connections go, in turn.
    pub targets: Vec<Target>,
    pub proto: Proto,
    pub case: String,
    pub server: String,
    pub conns: usize,
    pub size: usize,
    pub inflight: usize,
    pub warmup: Duration,
    pub duration: Duration,
    /// Messages per second for open-loop runs (0 = closed loop).
    pub rate: f64,
    /// Server process to read RSS from (idle).
    pub pid: Option<u32>,
    /// Concurrent workers (churn) or connection attempts (setup).
    pub concurrency: usize,
    /// Flooding connections beside the measured ones (fair).
    pub flood: usize,
    /// Members that join a fanout room and never read.
    pub frozen: usize,
    /// Where the flooders connect (fair; default: the measured URL).
    pub flood_target: Option<Target>,
    pub quiet: bool,
    /// Rooms the idle connections are spread over (0: the target's path).
    pub rooms: usize,
    /// How long idle connections stay open after the measurement.
    pub hold: Duration,
}

/// Marker that tags the load's own messages inside whatever the server wraps
/// them in (`{"type":"message","data":"user3:~rc~…"}`).
const MARK: &[u8] = b"~rc~";

fn padded(prefix: &str, size: usize) -> String {
    let mut s = prefix.to_string();
    if crate::wire::DEFLATE.load(Ordering::Relaxed) {
        // Compressed, a run of x's would say nothing: chat-like words,
        // different for each sender (a fixed sequence, the same for every
        // server), that deflate to about a third as real chat text does.
        const WORDS: [&str; 24] = [
            "the", "room", "message", "hello", "chat", "server", "anyone", "here", "today",
            "works", "again", "thanks", "see", "you", "later", "what", "about", "this", "one",
            "from", "night", "fast", "question", "answer",
        ];
        let mut x = prefix
            .bytes()
            .fold(2166136261u32, |h, b| (h ^ b as u32).wrapping_mul(16777619));
        while s.len() < size {
            x = x.wrapping_mul(1664525).wrapping_add(1013904223);
            s.push(' ');
            s.push_str(WORDS[(x >> 16) as usize % WORDS.len()]);
        }
        s.truncate(size);
        return s;
    }
    while s.len() < size {
        s.push('x');
    }
    s
}

/// Connect `n` clients, `concurrency` at a time.
async fn connect_all(o: &Opts, n: usize) -> io::Result<Vec<Conn>> {
    let sem = Arc::new(Semaphore::new(o.concurrency.max(1)));
    let mut tasks = Vec::with_capacity(n);
    for i in 0..n {
        let permit = sem.clone().acquire_owned().await.expect("semaphore open");
        let (proto, target) = (o.proto, o.targets[i % o.targets.len()].clone());
        tasks.push(tokio::spawn(async move {
            let c = proto.connect(&target).await;
            drop(permit);
            c
        }));
    }
    let mut conns = Vec::with_capacity(n);
    for t in tasks {
        conns.push(t.await.expect("connect task")?);
    }
    Ok(conns)
}

/// Let the server's greetings (chat "enter" lines) arrive and be discarded.
async fn settle(conns: &mut [Conn], proto: Proto) {
    for c in conns.iter_mut() {
        let mut replies = Vec::new();
        while let Ok(Ok(_)) = tokio::time::timeout(
            Duration::from_millis(30),
            c.read_frames(|_, p| {
                proto.is_message(&mut replies, p);
            }),
        )
        .await
        {}
        for r in replies {
            c.queue_text(&r);
        }
        let _ = c.flush().await;
    }
}

/// Read until at least one message comes back (answering the protocol's
/// pings on the way); how many came.
async fn await_reply(c: &mut Conn, proto: Proto, replies: &mut Vec<Vec<u8>>) -> io::Result<u64> {
    let mut got = 0;
    while got == 0 {
        c.read_frames(|_, p| {
            if proto.is_message(replies, p) {
                got += 1;
            }
        })
        .await?;
        if !replies.is_empty() {
            for r in replies.drain(..) {
                c.queue_text(&r);
            }
            c.flush().await?;
        }
    }
    Ok(got)
}

/// Measure `counter` over the warm-up and measurement windows; returns the rate.
async fn measure(o: &Opts, label: &str, counter: &Arc<AtomicU64>) -> f64 {
    let stop = Arc::new(AtomicBool::new(false));
    if !o.quiet {
        stats::progress(label.to_string(), counter.clone(), stop.clone());
    }
    tokio::time::sleep(o.warmup).await;
    let c0 = counter.load(Ordering::Relaxed);
    let t0 = Instant::now();
    let cpu0 = (stats::cpu_seconds(), t0);
    tokio::time::sleep(o.duration).await;
    let c1 = counter.load(Ordering::Relaxed);
    let dt = t0.elapsed().as_secs_f64();
    window_cpu(stats::cpu_share(
        cpu0,
        (stats::cpu_seconds(), Instant::now()),
    ));
    stop.store(true, Ordering::Relaxed);
    (c1 - c0) as f64 / dt
}

/// The client's CPU share over the last measured window (f64 bits; NaN:
/// none yet).
static WINDOW_CPU: AtomicU64 = AtomicU64::new(0x7ff8_0000_0000_0000);

fn window_cpu(share: f64) {
    WINDOW_CPU.store(share.to_bits(), Ordering::Relaxed);
}

/// The client's CPU share over the scenario's measured window, if it had one.
pub fn measured_cpu() -> Option<f64> {
    let v = f64::from_bits(WINDOW_CPU.load(Ordering::Relaxed));
    (!v.is_nan()).then_some(v)
}

/// `conns` connections, each keeping `inflight` messages of `size` bytes in
/// flight: every reply is answered with a new message. Messages per second.
pub async fn echo(o: &Opts) -> io::Result<Record> {
    let mut rec = Record::new(
        &o.case,
        &o.server,
        "echo",
        format!("{} conns × {} B, {} in flight", o.conns, o.size, o.inflight),
        "msgs/s",
    );
    let conns = connect_all(o, o.conns).await?;
    let counter = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut wrapped = Vec::new();
    o.proto.wrap(&padded("", o.size), &mut wrapped);
    let mut tasks = Vec::new();
    for mut c in conns {
        let (counter, errors, stop) = (counter.clone(), errors.clone(), stop.clone());
        let (payload, inflight, proto) = (wrapped.clone(), o.inflight.max(1), o.proto);
        tasks.push(tokio::spawn(async move {
            for _ in 0..inflight {
                c.queue_text(&payload);
            }
            let run = async {
                c.flush().await?;
                let mut replies = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let mut got = 0;
                    c.read_frames(|_, p| {
                        if proto.is_message(&mut replies, p) {
                            got += 1;
                        }
                    })
                    .await?;
                    counter.fetch_add(got, Ordering::Relaxed);
                    for r in replies.drain(..) {
                        c.queue_text(&r);
                    }
                    for _ in 0..got {
                        c.queue_text(&payload);
                    }
                    c.flush().await?;
                }
                io::Result::Ok(())
            };
            if run.await.is_err() && !stop.load(Ordering::Relaxed) {
                errors.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    rec.rate = measure(o, &format!("{} echo", o.server), &counter).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.abort();
    }
    rec.errors = errors.load(Ordering::Relaxed);
    Ok(rec)
}

/// Fairness: `conns` connections at one message in flight, each reply's
/// round trip into a histogram, beside `flood` connections (to `flood_url`,
/// or the same URL) that send as fast as the server takes their messages and
/// read whatever comes back. The record is the steady connections' rate and
/// latency; run it with `--flood 0` for the same figures without flooders.
pub async fn fair(o: &Opts) -> io::Result<Record> {
    let mut rec = Record::new(
        &o.case,
        &o.server,
        "fair",
        // The same for the runs alone and beside flooders (the report heads
        // a case with its first run's parameters); the flooders' own rate
        // is `flood_rate`.
        format!(
            "{} conns × {} B, 1 in flight, alone and beside flooding clients",
            o.conns, o.size
        ),
        "msgs/s",
    );
    let mut conns = connect_all(o, o.conns).await?;
    // Chat rooms greet their members: not replies.
    settle(&mut conns, o.proto).await;
    let flood_target = o.flood_target.clone().unwrap_or_else(|| o.target.clone());
    let mut flooders = Vec::new();
    for _ in 0..o.flood {
        flooders.push(o.proto.connect(&flood_target).await?);
    }
    let counter = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let recording = Arc::new(AtomicBool::new(false));
    let latency = Arc::new(Mutex::new(histogram()));
    // Bytes the flooders got written (the server read them).
    let flooded = Arc::new(AtomicU64::new(0));
    let mut wrapped = Vec::new();
    o.proto.wrap(&padded("", o.size), &mut wrapped);
    let frame_len = {
        let mut one = Vec::new();
        crate::wire::encode_frame(crate::wire::TEXT, &wrapped, &mut one);
        one.len()
    };
    let mut tasks = Vec::new();
    for c in flooders {
        let (stop, payload) = (stop.clone(), wrapped.clone());
        let (flooded, errors, recording) = (flooded.clone(), errors.clone(), recording.clone());
        tasks.push(tokio::spawn(async move {
            // Writes as fast as the server reads, and reads (and drops)
            // whatever comes back meanwhile, so it is never a slow consumer:
            // only the server's reading decides how fast this goes.
            let stream = c.stream;
            let mut batch = Vec::new();
            for _ in 0..64 {
                crate::wire::encode_frame(crate::wire::TEXT, &payload, &mut batch);
            }
            let (mut at, mut sink) = (0, vec![0u8; 64 * 1024]);
            let mut failed = false;
            while !stop.load(Ordering::Relaxed) {
                tokio::select! {
                    r = stream.readable() => {
                        if r.is_err() { failed = true; break; }
                        match stream.try_read(&mut sink) {
                            Ok(0) => { failed = true; break; }
                            Ok(_) => {}
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                            Err(_) => { failed = true; break; }
                        }
                    }
                    w = stream.writable() => {
                        if w.is_err() { failed = true; break; }
                        match stream.try_write(&batch[at..]) {
                            Ok(n) => {
                                at = (at + n) % batch.len();
                                if recording.load(Ordering::Relaxed) {
                                    flooded.fetch_add(n as u64, Ordering::Relaxed);
                                }
                            }
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                            Err(_) => { failed = true; break; }
                        }
                    }
                }
            }
            // A flooder the server cut (or whose connection failed) is an
            // error: the run was not what it says.
            if failed && !stop.load(Ordering::Relaxed) {
                errors.fetch_add(1, Ordering::Relaxed);
                eprintln!("fair: a flooding client's connection ended");
            }
        }));
    }
    for mut c in conns {
        let (counter, errors, stop) = (counter.clone(), errors.clone(), stop.clone());
        let (recording, latency) = (recording.clone(), latency.clone());
        let (payload, proto) = (wrapped.clone(), o.proto);
        tasks.push(tokio::spawn(async move {
            let mut h = histogram();
            let run = async {
                let mut replies = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    c.queue_text(&payload);
                    let sent = Instant::now();
                    c.flush().await?;
                    let got = await_reply(&mut c, proto, &mut replies).await?;
                    if recording.load(Ordering::Relaxed) {
                        let _ = h.record(sent.elapsed().as_nanos().max(1) as u64);
                    }
                    counter.fetch_add(got, Ordering::Relaxed);
                }
                io::Result::Ok(())
            };
            if run.await.is_err() && !stop.load(Ordering::Relaxed) {
                errors.fetch_add(1, Ordering::Relaxed);
            }
            let _ = latency.lock().map(|mut l| l.add(&h));
        }));
    }
    let rec_flag = recording.clone();
    let warmup = o.warmup;
    tokio::spawn(async move {
        tokio::time::sleep(warmup).await;
        rec_flag.store(true, Ordering::Relaxed);
    });
    let measured = Instant::now();
    rec.rate = measure(o, &format!("{} fair", o.server), &counter).await;
    recording.store(false, Ordering::Relaxed);
    if o.flood > 0 {
        // Recorded from the end of the warm-up, as the steady clients are.
        let secs = measured
            .elapsed()
            .saturating_sub(o.warmup)
            .as_secs_f64()
            .max(1e-3);
        let frames = flooded.load(Ordering::Relaxed) as f64 / frame_len as f64;
        rec.flood_rate = Some(frames / secs);
    }
    stop.store(true, Ordering::Relaxed);
    // Let the steady tasks finish their round and hand in their histograms.
    tokio::time::sleep(Duration::from_millis(200)).await;
    for t in tasks {
        t.abort();
    }
    rec.errors = errors.load(Ordering::Relaxed);
    if let Ok(h) = latency.lock() {
        rec.set_latency(&h);
    }
    Ok(rec)
}

/// A room of `conns` members. Closed loop (`rate` = 0): every round, every
/// member sends one message and the round ends when every member has
/// received all of them. Open loop (`rate` > 0): messages are published at a
/// fixed rate, round-robin over the members, each stamped with its intended
/// send time; every delivery's latency goes into a histogram.
/// Deliveries (messages received, summed over members) per second.
pub async fn fanout(o: &Opts) -> io::Result<Record> {
    if o.rate > 0.0 {
        return open_loop(o, "fanout").await;
    }
    let n = o.conns;
    let mut rec = Record::new(
        &o.case,
        &o.server,
        "fanout",
        format!(
            "{n} members × {} B, every member sends once per round",
            o.size
        ),
        "deliveries/s",
    );
    // Frozen members join first and never read: the server must drop them
    // as slow consumers while the others' rounds go on (`--frozen N`).
    let mut frozen = Vec::new();
    for _ in 0..o.frozen {
        frozen.push(o.proto.connect(&o.target).await?);
    }
    if o.frozen > 0 {
        rec.params
            .push_str(&format!(", beside {} frozen members", o.frozen));
    }
    let mut conns = connect_all(o, n).await?;
    settle(&mut conns, o.proto).await;

    let deliveries = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let round_over = Arc::new(Notify::new());
    let (round_tx, round_rx) = watch::channel(0u64);
    let mut tasks = Vec::new();
    for (i, mut c) in conns.into_iter().enumerate() {
        let (deliveries, errors, done, round_over) = (
            deliveries.clone(),
            errors.clone(),
            done.clone(),
            round_over.clone(),
        );
        let mut round_rx = round_rx.clone();
        let (proto, size) = (o.proto, o.size);
        tasks.push(tokio::spawn(async move {
            let mut wrapped = Vec::new();
            proto.wrap(&padded(&format!("~rc~{i}~"), size), &mut wrapped);
            let run = async {
                let mut replies = Vec::new();
                let mut pending = 0usize; // marked messages received ahead of the round
                loop {
                    round_rx.changed().await.map_err(|_| io::ErrorKind::Other)?;
                    if *round_rx.borrow() == u64::MAX {
                        return Ok(());
                    }
                    c.queue_text(&wrapped);
                    c.flush().await?;
                    let mut got = pending;
                    while got < n {
                        let mut k = 0;
                        c.read_frames(|op, p| {
                            // A compressed frame is one of the round's (the
                            // others, enter lines, are under any threshold).
                            if proto.is_message(&mut replies, p)
                                && (op & crate::wire::COMPRESSED != 0
                                    || crate::wire::find(p, MARK).is_some())
                            {
                                k += 1;
                            }
                        })
                        .await?;
                        got += k;
                        deliveries.fetch_add(k as u64, Ordering::Relaxed);
                        if !replies.is_empty() {
                            for r in replies.drain(..) {
                                c.queue_text(&r);
                            }
                            c.flush().await?;
                        }
                    }
                    pending = got - n;
                    if done.fetch_add(1, Ordering::AcqRel) + 1 == n {
                        round_over.notify_one();
                    }
                }
            };
            let r: io::Result<()> = run.await;
            if r.is_err() {
                errors.fetch_add(1, Ordering::Relaxed);
                // Let the coordinator finish rather than wait forever.
                round_over.notify_one();
            }
        }));
    }

    let stop = Arc::new(AtomicBool::new(false));
    let coordinator = {
        let (stop, done, round_over, errors) = (
            stop.clone(),
            done.clone(),
            round_over.clone(),
            errors.clone(),
        );
        tokio::spawn(async move {
            let mut round = 0u64;
            while !stop.load(Ordering::Relaxed) && errors.load(Ordering::Relaxed) == 0 {
                done.store(0, Ordering::Release);
                round += 1;
                round_tx.send_replace(round);
                round_over.notified().await;
            }
            round_tx.send_replace(u64::MAX);
        })
    };
    let read = || crate::wire::BYTES_READ.load(Ordering::Relaxed);
    let (bytes0, delivered0) = (read(), deliveries.load(Ordering::Relaxed));
    rec.rate = measure(o, &format!("{} fanout", o.server), &deliveries).await;
    let delivered = deliveries.load(Ordering::Relaxed) - delivered0;
    rec.wire_bytes_per_delivery =
        (delivered > 0).then(|| (read() - bytes0) as f64 / delivered as f64);
    stop.store(true, Ordering::Relaxed);
    // The round under way must end: one that does not lost a message (a
    // member still waits for it), which is an error, not a slow round.
    let stalled = tokio::time::timeout(Duration::from_secs(5), coordinator)
        .await
        .is_err();
    for t in tasks {
        t.abort();
    }
    rec.errors = errors.load(Ordering::Relaxed) + u64::from(stalled);
    if stalled {
        eprintln!(
            "{} fanout: a round never completed (a message was lost)",
            o.server
        );
        rec.params.push_str(", a round stalled");
    }
    Ok(rec)
}

/// Open loop at `rate` messages/s with timestamps: delivery latency percentiles.
pub async fn latency(o: &Opts) -> io::Result<Record> {
    open_loop(o, "latency").await
}

async fn open_loop(o: &Opts, scenario: &str) -> io::Result<Record> {
    let n = o.conns;
    let mut rec = Record::new(
        &o.case,
        &o.server,
        scenario,
        format!("{n} members × {} B, {} msg/s published", o.size, o.rate),
        "deliveries/s",
    );
    let mut conns = connect_all(o, n).await?;
    settle(&mut conns, o.proto).await;
    let base = Instant::now();
    let deliveries = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let recording = Arc::new(AtomicBool::new(false));
    let hist = Arc::new(Mutex::new(histogram()));
    let period = Duration::from_secs_f64(1.0 / o.rate);
    // Publishers: the first min(n, 16) members take turns.
    let publishers = n.min(16);
    let mut tasks = Vec::new();
    for (i, mut c) in conns.into_iter().enumerate() {
        let (deliveries, errors, stop, recording, hist) = (
            deliveries.clone(),
            errors.clone(),
            stop.clone(),
            recording.clone(),
            hist.clone(),
        );
        let (proto, size) = (o.proto, o.size);
        tasks.push(tokio::spawn(async move {
            let mut wrapped = Vec::new();
            let mut k = i as u64; // this member publishes messages k, k+P, k+2P, …
            let mut next = (i < publishers).then(|| base + period * i as u32);
            let run = async {
                let mut replies = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    tokio::select! {
                        () = async {
                            match next {
                                Some(t) => tokio::time::sleep_until(t.into()).await,
                                None => std::future::pending().await,
                            }
                        } => {
                            let intended = next.expect("publisher");
                            let ns = intended.duration_since(base).as_nanos();
                            proto.wrap(&padded(&format!("~rc~t={ns}~"), size), &mut wrapped);
                            c.queue_text(&wrapped);
                            c.flush().await?;
                            k += publishers as u64;
                            next = Some(base + period.mul_f64(k as f64));
                        }
                        r = c.read_frames(|_, p| {
                            if proto.is_message(&mut replies, p) {
                                if let Some(sent) = number_after(p, b"~t=") {
                                    let now = base.elapsed().as_nanos() as u64;
                                    if recording.load(Ordering::Relaxed) {
                                        let mut h = hist.lock().expect("histogram lock");
                                        let _ = h.record(now.saturating_sub(sent).max(1));
                                        deliveries.fetch_add(1, Ordering::Relaxed);
                                    }
                                }
                            }
                        }) => {
                            r?;
                            if !replies.is_empty() {
                                for r in replies.drain(..) { c.queue_text(&r); }
                                c.flush().await?;
                            }
                        }
                    }
                }
                io::Result::Ok(())
            };
            if run.await.is_err() && !stop.load(Ordering::Relaxed) {
                errors.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    tokio::time::sleep(o.warmup).await;
    recording.store(true, Ordering::Relaxed);
    let quiet = Opts {
        warmup: Duration::ZERO,
        ..o.clone()
    };
    rec.rate = measure(&quiet, &format!("{} {scenario}", o.server), &deliveries).await;
    recording.store(false, Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.abort();
    }
    rec.set_latency(&hist.lock().expect("histogram lock"));
    rec.errors = errors.load(Ordering::Relaxed);
    Ok(rec)
}

/// Hold `conns` connections that each exchanged one message; report the
/// server's RSS growth per connection (needs `pid`).
pub async fn idle(o: &Opts) -> io::Result<Record> {
    let pid = o
        .pid
        .ok_or_else(|| io::Error::other("idle needs --pid of the server"))?;
    let mut rec = Record::new(
        &o.case,
        &o.server,
        "idle",
        format!("{} connections, one message each", o.conns),
        "conns",
    );
    let before = stats::rss(pid)?;
    let mut wrapped = Vec::new();
    o.proto.wrap(&padded("hello", o.size.max(5)), &mut wrapped);
    let errors = Arc::new(AtomicU64::new(0));
    // Each connection connects, exchanges one message (echo routes), then
    // keeps reading — answering the protocol's pings (socket.io servers
    // may ping at once and close a silent client) — until the measurement
    // is taken. Connecting and exchanging run `concurrency` at a time.
    let sem = Arc::new(Semaphore::new(o.concurrency.max(1)));
    let exchanged = Arc::new(Semaphore::new(0));
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut tasks = Vec::new();
    for i in 0..o.conns {
        let permit = sem.clone().acquire_owned().await.expect("semaphore open");
        let mut target = o.target.clone();
        if o.rooms > 0 {
            target.path.push_str(&(i % o.rooms).to_string());
        }
        let (wrapped, proto) = (wrapped.clone(), o.proto);
        let (errors, exchanged, mut stopped) = (errors.clone(), exchanged.clone(), stopped.clone());
        tasks.push(tokio::spawn(async move {
            let mut replies = Vec::new();
            let r = async {
                let mut c = proto.connect(&target).await?;
                c.queue_text(&wrapped);
                c.flush().await?;
                await_reply(&mut c, proto, &mut replies).await?;
                io::Result::Ok(c)
            }
            .await;
            drop(permit);
            exchanged.add_permits(1);
            let mut c = match r {
                Ok(c) => c,
                Err(e) => {
                    // The first few reasons, so an error count can be explained.
                    if errors.fetch_add(1, Ordering::Relaxed) < 3 {
                        eprintln!("idle: a connection failed: {e}");
                    }
                    return None;
                }
            };
            loop {
                tokio::select! {
                    _ = stopped.changed() => break,
                    r = c.read_frames(|_, p| { proto.is_message(&mut replies, p); }) => {
                        if r.is_err() {
                            break;
                        }
                        for r in replies.drain(..) {
                            c.queue_text(&r);
                        }
                        if c.flush().await.is_err() {
                            break;
                        }
                    }
                }
            }
            Some(c)
        }));
    }
    let all = u32::try_from(o.conns).unwrap_or(u32::MAX);
    let _ = exchanged.acquire_many(all).await.expect("semaphore open");
    // Let the server settle (freed handshake buffers, finished tasks).
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = stats::rss(pid)?;
    eprintln!("idle: holding {} connections", o.conns);
    tokio::time::sleep(o.hold).await;
    let _ = stop.send(true);
    let mut conns = Vec::new();
    for t in tasks {
        if let Some(c) = t.await.expect("idle task") {
            conns.push(c);
        }
    }
    rec.rate = conns.len() as f64;
    rec.rss_per_conn = Some(after.saturating_sub(before) as f64 / conns.len() as f64);
    rec.errors = errors.load(Ordering::Relaxed);
    if !o.quiet {
        eprintln!(
            "  {} idle: RSS {} KiB → {} KiB for {} connections",
            o.server,
            before / 1024,
            after / 1024,
            conns.len()
        );
    }
    drop(conns);
    Ok(rec)
}

/// Connect, upgrade, close — as many times per second as `concurrency`
/// workers manage. Cycles per second, with cycle-time percentiles.
pub async fn churn(o: &Opts) -> io::Result<Record> {
    let mut rec = Record::new(
        &o.case,
        &o.server,
        "churn",
        format!("{} workers: connect + upgrade + close", o.concurrency),
        "cycles/s",
    );
    let cycles = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let recording = Arc::new(AtomicBool::new(false));
    let hist = Arc::new(Mutex::new(histogram()));
    let mut tasks = Vec::new();
    for _ in 0..o.concurrency.max(1) {
        let (cycles, errors, stop, recording, hist) = (
            cycles.clone(),
            errors.clone(),
            stop.clone(),
            recording.clone(),
            hist.clone(),
        );
        let (proto, target) = (o.proto, o.target.clone());
        tasks.push(tokio::spawn(async move {
            let mut local = histogram();
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                let r = async { proto.connect(&target).await?.close().await }.await;
                match r {
                    Ok(()) => {
                        cycles.fetch_add(1, Ordering::Relaxed);
                        if recording.load(Ordering::Relaxed) {
                            let _ = local.record(t.elapsed().as_nanos() as u64);
                        }
                    }
                    Err(_) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            }
            hist.lock()
                .expect("histogram lock")
                .add(&local)
                .expect("same bounds");
        }));
    }
    tokio::time::sleep(o.warmup).await;
    recording.store(true, Ordering::Relaxed);
    let quiet = Opts {
        warmup: Duration::ZERO,
        ..o.clone()
    };
    rec.rate = measure(&quiet, &format!("{} churn", o.server), &cycles).await;
    recording.store(false, Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
    }
    rec.set_latency(&hist.lock().expect("histogram lock"));
    rec.errors = errors.load(Ordering::Relaxed);
    Ok(rec)
}

/// How long one client of a storm may take to be upgraded before it counts
/// as failed (SYN retransmits alone reach 15 s after four drops).
const STORM_PATIENCE: Duration = Duration::from_secs(30);

/// `conns` clients connect at once, as after a deploy or a network blip:
/// the time until the last one is upgraded (as connections per second over
/// that time: higher is better), with the percentiles of each client's
/// connect-to-101 time. The connections are closed afterwards.
pub async fn storm(o: &Opts) -> io::Result<Record> {
    let mut rec = Record::new(
        &o.case,
        &o.server,
        "storm",
        format!(
            "{} clients connect at once (the rate: {} ÷ the time until the last is upgraded)",
            o.conns, o.conns
        ),
        "conns/s",
    );
    // Spawned first, started together: on this one-thread runtime no task
    // runs before the loop is done.
    let start = Instant::now();
    let cpu0 = (stats::cpu_seconds(), start);
    let mut tasks = Vec::with_capacity(o.conns);
    for i in 0..o.conns {
        let (proto, target) = (o.proto, o.targets[i % o.targets.len()].clone());
        tasks.push(tokio::spawn(async move {
            let t = Instant::now();
            let c = tokio::time::timeout(STORM_PATIENCE, proto.connect(&target)).await;
            let took = t.elapsed();
            (c, took, Instant::now())
        }));
    }
    let mut hist = histogram();
    let mut conns = Vec::with_capacity(o.conns);
    let mut last = start;
    let mut failures: Vec<String> = Vec::new();
    for t in tasks {
        match t.await {
            Ok((Ok(Ok(c)), took, done)) => {
                let _ = hist.record(took.as_nanos() as u64);
                last = last.max(done);
                conns.push(c);
            }
            Ok((Ok(Err(e)), _, _)) => failures.push(e.to_string()),
            Ok((Err(_), _, _)) => failures.push(format!("not upgraded within {STORM_PATIENCE:?}")),
            Err(e) => failures.push(e.to_string()),
        }
    }
    let all = last.duration_since(start).as_secs_f64().max(1e-6);
    window_cpu(stats::cpu_share(
        cpu0,
        (stats::cpu_seconds(), Instant::now()),
    ));
    rec.rate = conns.len() as f64 / all;
    rec.took_s = Some(all);
    rec.set_latency(&hist);
    rec.errors = failures.len() as u64;
    if !o.quiet || !failures.is_empty() {
        eprintln!(
            "  {} storm: {} of {} upgraded in {:.2} s{}",
            o.server,
            conns.len(),
            o.conns,
            all,
            failures
                .iter()
                .take(3)
                .map(|f| format!("; {f}"))
                .collect::<String>()
        );
    }
    drop(conns);
    Ok(rec)
}
