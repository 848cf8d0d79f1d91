//! roomcast's load generator: works against any WebSocket URL, so the same
//! tool measures roomcast and its peers.
//!
//! ```text
//! cargo bench --bench load -- echo    --url ws://127.0.0.1:3000/shout --conns 100 --size 20 --inflight 1
//! cargo bench --bench load -- fanout  --url ws://127.0.0.1:3000/chat/bench --conns 100
//! cargo bench --bench load -- latency --url ws://127.0.0.1:3000/chat/bench --conns 1000 --rate 100
//! cargo bench --bench load -- idle    --url ws://127.0.0.1:3000/echo --conns 10000 --pid $(pidof roomcast)
//! cargo bench --bench load -- churn   --url ws://127.0.0.1:3000/echo --concurrency 10
//! cargo bench --bench load -- storm   --url ws://127.0.0.1:3000/echo --conns 8000
//! cargo bench --bench load -- fair    --url ws://127.0.0.1:3000/echo --conns 100 --flood 1
//! cargo bench --bench load -- report  --results target/bench/results.jsonl
//! ```
//!
//! Runs on one thread (pin it with `taskset`; `--threads N` for more), prints
//! live progress and a summary table, and appends JSON lines (`--json`) and CSV (`--csv`).

// Without a test harness, `cargo bench`/`clippy --all-targets` still compile the
// modules' unit tests but never run them (tests/loadgen.rs does): silence that.
#![cfg_attr(test, allow(unused_imports, dead_code))]

mod proto;
mod report;
mod scenario;
mod stats;
mod wire;

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "load",
    about = "WebSocket load generator for roomcast and its peers"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// N connections × D messages in flight: messages/s.
    Echo(RunArgs),
    /// A room of N members, closed loop (or --rate for open loop): deliveries/s.
    Fanout(RunArgs),
    /// Open loop at --rate msg/s with timestamps: delivery latency percentiles.
    Latency(RunArgs),
    /// Hold N connections that exchanged one message: server RSS per connection (--pid).
    Idle(RunArgs),
    /// Connect + upgrade + close, --concurrency at a time: cycles/s.
    Churn(RunArgs),
    /// N clients connect at once: time until all are upgraded (as conns/s), handshake percentiles.
    Storm(RunArgs),
    /// N connections at 1 in flight beside --flood flooding ones: their msgs/s and round-trip percentiles.
    Fair(RunArgs),
    /// Write docs/BENCHMARKS.md and its chart from recorded results.
    Report(ReportArgs),
}

#[derive(Args, Debug, Clone)]
struct RunArgs {
    /// WebSocket URL of the server under test; several, comma-separated,
    /// spread the connections over them in turn (the nodes of a cluster).
    #[arg(long)]
    url: String,
    /// Message protocol: raw or socketio (socket.io 4; the URL's path is the
    /// namespace, e.g. ws://host/shout for `/shout`, unless it names the
    /// Engine.IO endpoint itself).
    #[arg(long, default_value = "raw")]
    proto: String,
    /// Comparison case this run belongs to (report groups by it).
    #[arg(long, default_value = "adhoc")]
    case: String,
    /// Name of the server and mode under test.
    #[arg(long, default_value = "server")]
    server: String,
    /// Connections (members, for fanout/latency).
    #[arg(long, default_value_t = 100)]
    conns: usize,
    /// Message payload size in bytes.
    #[arg(long, default_value_t = 20)]
    size: usize,
    /// Messages in flight per connection (echo).
    #[arg(long, default_value_t = 1)]
    inflight: usize,
    /// Warm-up seconds (not measured).
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Measured seconds.
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    /// Published messages per second (open loop; fanout/latency).
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// PID of the server process (idle: RSS is read from /proc/PID/status).
    #[arg(long)]
    pid: Option<u32>,
    /// Flooding connections beside the measured ones (fair).
    #[arg(long, default_value_t = 1)]
    flood: usize,
    /// Rooms to spread the connections over (idle): connection i goes to
    /// the URL's path with `i % rooms` appended (`ws://h/chat/r` →
    /// `/chat/r0`, `/chat/r1`, …); 0 keeps the path as it is.
    #[arg(long, default_value_t = 0)]
    rooms: usize,
    /// Seconds the idle connections stay open after the measurement (it
    /// prints `idle: holding N connections` to stderr when they are all in).
    #[arg(long, default_value_t = 1.0)]
    hold: f64,
    /// Members that join the room first and never read (fanout).
    #[arg(long, default_value_t = 0)]
    frozen: usize,
    /// Where the flooders connect (fair; default: --url).
    #[arg(long)]
    flood_url: Option<String>,
    /// Client threads (1: one thread, to pin on one core). More spread the
    /// connections over a multi-threaded runtime, for the scenario that
    /// gives the client several cores; its CPU share is then per core.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Parallel connection attempts while connecting; workers for churn.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Append the result as a JSON line to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Append the result as a CSV row to this file.
    #[arg(long)]
    csv: Option<PathBuf>,
    /// No live progress.
    #[arg(long)]
    quiet: bool,
    /// Offer permessage-deflate as a browser does, and fail unless the
    /// server agrees; compressed frames are counted, not inflated.
    #[arg(long)]
    deflate: bool,
}

#[derive(Args, Debug)]
struct ReportArgs {
    /// JSON-lines results of a comparison run.
    #[arg(long)]
    results: PathBuf,
    /// Markdown snippet describing the machine, versions and commands.
    #[arg(long)]
    meta: Option<PathBuf>,
    /// Hand-written analysis appended to the report.
    #[arg(long, default_value = "benches/ANALYSIS.md")]
    analysis: PathBuf,
    /// Report to write.
    #[arg(long, default_value = "docs/BENCHMARKS.md")]
    out: PathBuf,
    /// Chart to write (SVG).
    #[arg(long, default_value = "docs/benchmarks.svg")]
    chart: PathBuf,
}

fn main() {
    // `cargo bench` appends `--bench`; it means nothing here.
    let args = std::env::args().filter(|a| a != "--bench");
    let cli = Cli::parse_from(args);
    let threads = match &cli.cmd {
        Cmd::Report(_) => 1,
        Cmd::Echo(a)
        | Cmd::Fanout(a)
        | Cmd::Latency(a)
        | Cmd::Idle(a)
        | Cmd::Churn(a)
        | Cmd::Storm(a)
        | Cmd::Fair(a) => a.threads.max(1),
    };
    let runtime = if threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
    }
    .expect("runtime");
    let code = runtime.block_on(run(cli));
    // Connections still open belong to the runtime; drop it without waiting.
    runtime.shutdown_timeout(Duration::from_millis(100));
    std::process::exit(code);
}

async fn run(cli: Cli) -> i32 {
    let (args, which) = match cli.cmd {
        Cmd::Report(r) => return report(r),
        Cmd::Echo(a) => (a, "echo"),
        Cmd::Fanout(a) => (a, "fanout"),
        Cmd::Latency(a) => (a, "latency"),
        Cmd::Idle(a) => (a, "idle"),
        Cmd::Churn(a) => (a, "churn"),
        Cmd::Storm(a) => (a, "storm"),
        Cmd::Fair(a) => (a, "fair"),
    };
    let opts = match options(&args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("load: {e}");
            return 2;
        }
    };
    wire::DEFLATE.store(args.deflate, std::sync::atomic::Ordering::Relaxed);
    let started = (stats::cpu_seconds(), std::time::Instant::now());
    let result = match which {
        "echo" => scenario::echo(&opts).await,
        "fanout" => scenario::fanout(&opts).await,
        "latency" => scenario::latency(&opts).await,
        "idle" => scenario::idle(&opts).await,
        "storm" => scenario::storm(&opts).await,
        "fair" => scenario::fair(&opts).await,
        _ => scenario::churn(&opts).await,
    };
    let mut record = match result {
        Ok(r) => r,
        Err(e) => {
            eprintln!("load: {which} against {} failed: {e}", args.url);
            return 1;
        }
    };
    // Over the measured window where there is one, else the whole run.
    let busy = scenario::measured_cpu().unwrap_or_else(|| {
        stats::cpu_share(started, (stats::cpu_seconds(), std::time::Instant::now()))
    });
    record.client_cpu = Some(busy / args.threads.max(1) as f64);
    if args.threads > 1 {
        record
            .params
            .push_str(&format!(", client {} threads", args.threads));
    }
    if args.deflate {
        record.params.push_str(", permessage-deflate offered");
    }
    print!("{}", stats::table(std::slice::from_ref(&record)));
    if let Some(b) = record.wire_bytes_per_delivery {
        println!("{b:.0} bytes read per delivery");
    }
    if record.client_cpu.is_some_and(|c| c > stats::CLIENT_BOUND) {
        eprintln!(
            "load: the load generator used {:.0}% of its core: this figure may measure the client, not the server",
            record.client_cpu.unwrap_or(0.0) * 100.0
        );
    }
    if let Some(path) = &args.json {
        if let Err(e) = stats::append_json(path, &record) {
            eprintln!("load: cannot write {}: {e}", path.display());
            return 1;
        }
    }
    if let Some(path) = &args.csv {
        if let Err(e) = stats::append_csv(path, &record) {
            eprintln!("load: cannot write {}: {e}", path.display());
            return 1;
        }
    }
    0
}

fn options(a: &RunArgs) -> Result<scenario::Opts, String> {
    if a.conns == 0 {
        return Err("--conns must be at least 1".into());
    }
    if a.duration <= 0.0 || a.warmup < 0.0 {
        return Err("--duration must be positive and --warmup not negative".into());
    }
    let targets = a
        .url
        .split(',')
        .map(wire::Target::parse)
        .collect::<Result<Vec<_>, _>>()?;
    let target = targets[0].clone();
    Ok(scenario::Opts {
        proto: proto::Proto::parse(&a.proto)?.for_target(&target),
        target,
        targets,
        case: a.case.clone(),
        server: a.server.clone(),
        conns: a.conns,
        size: a.size,
        inflight: a.inflight,
        warmup: Duration::from_secs_f64(a.warmup),
        duration: Duration::from_secs_f64(a.duration),
        rate: a.rate,
        pid: a.pid,
        concurrency: a.concurrency,
        flood: a.flood,
        frozen: a.frozen,
        flood_target: a
            .flood_url
            .as_deref()
            .map(wire::Target::parse)
            .transpose()?,
        quiet: a.quiet,
        rooms: a.rooms,
        hold: Duration::from_secs_f64(a.hold.max(0.0)),
    })
}

fn report(r: ReportArgs) -> i32 {
    let records = match stats::read_json(&r.results) {
        Ok(v) => report::consolidate(&v),
        Err(e) => {
            eprintln!("load: cannot read {}: {e}", r.results.display());
            return 1;
        }
    };
    let meta = r
        .meta
        .as_ref()
        .and_then(|p| std::fs::read_to_string(p).ok())
        .unwrap_or_default();
    let analysis = std::fs::read_to_string(&r.analysis).unwrap_or_default();
    let chart_name = r
        .chart
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    if let Err(e) = report::chart(&records, &r.chart) {
        eprintln!("load: chart: {e}");
    }
    let md = report::markdown(&records, &meta, &analysis, &chart_name);
    if let Err(e) = std::fs::write(&r.out, md) {
        eprintln!("load: cannot write {}: {e}", r.out.display());
        return 1;
    }
    print!("{}", stats::table(&records));
    eprintln!("wrote {} and {}", r.out.display(), r.chart.display());
    0
}
