//! Results: one record per run, live progress, latency histograms, and the
//! summary table / JSON lines / CSV the runs are written to.

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// The outcome of one scenario run against one server.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Record {
    /// Comparison case, e.g. `echo-1` (the report pairs servers within a case).
    pub case: String,
    /// Server and mode, e.g. `roomcast-shout`, `bun-pubsub`.
    pub server: String,
    /// Scenario name.
    pub scenario: String,
    /// Human-readable parameters.
    pub params: String,
    /// Main throughput figure (0 when the scenario has none).
    pub rate: f64,
    /// Unit of `rate`.
    pub unit: String,
    /// Latency percentiles in microseconds, when measured.
    pub p50_us: Option<f64>,
    pub p90_us: Option<f64>,
    pub p99_us: Option<f64>,
    pub p999_us: Option<f64>,
    /// Server RSS growth per connection, in bytes (idle scenario).
    pub rss_per_conn: Option<f64>,
    /// Connection or protocol errors seen during the run.
    pub errors: u64,
    /// fanout: bytes read from the server per delivery, on the wire
    /// (frame headers and all; compressed, with `--deflate`).
    #[serde(default)]
    pub wire_bytes_per_delivery: Option<f64>,
    /// The load generator's own CPU use over the measured window (1.0 = one
    /// core busy). Above 0.9 the figure may be the client's, not the server's.
    #[serde(default)]
    pub client_cpu: Option<f64>,
    /// Seconds the scenario's event took (storm: until the last upgrade).
    #[serde(default)]
    pub took_s: Option<f64>,
    /// fair: messages per second the flooding clients got the server to
    /// read, beside the steady ones (`None` without flooders).
    #[serde(default)]
    pub flood_rate: Option<f64>,
}

/// Above this share of its core, a run may measure the client.
pub const CLIENT_BOUND: f64 = 0.9;

/// CPU time this process has used so far (user + system), in seconds.
pub fn cpu_seconds() -> f64 {
    // /proc/self/stat: fields 14 and 15 (utime, stime) in clock ticks, which
    // are 1/100 s on Linux (USER_HZ). The command name (field 2) may hold
    // spaces: count from its closing parenthesis.
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<u64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|x| x.parse().ok())
        .collect();
    f.iter().sum::<u64>() as f64 / 100.0
}

/// CPU use between two readings of (cpu seconds, wall clock).
pub fn cpu_share(from: (f64, Instant), to: (f64, Instant)) -> f64 {
    let wall = to.1.duration_since(from.1).as_secs_f64().max(1e-9);
    (to.0 - from.0) / wall
}

impl Record {
    pub fn new(case: &str, server: &str, scenario: &str, params: String, unit: &str) -> Record {
        Record {
            case: case.into(),
            server: server.into(),
            scenario: scenario.into(),
            params,
            rate: 0.0,
            unit: unit.into(),
            p50_us: None,
            p90_us: None,
            p99_us: None,
            p999_us: None,
            rss_per_conn: None,
            errors: 0,
            wire_bytes_per_delivery: None,
            client_cpu: None,
            took_s: None,
            flood_rate: None,
        }
    }

    pub fn set_latency(&mut self, h: &Histogram<u64>) {
        if h.is_empty() {
            return;
        }
        let q = |p: f64| Some(h.value_at_quantile(p) as f64 / 1000.0);
        self.p50_us = q(0.50);
        self.p90_us = q(0.90);
        self.p99_us = q(0.99);
        self.p999_us = q(0.999);
    }
}

/// A latency histogram in nanoseconds, 1 ns .. 60 s, 3 significant digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("valid bounds")
}

/// Print the rate of `counter` to stderr every second until `stop` is set.
pub fn progress(label: String, counter: Arc<AtomicU64>, stop: Arc<std::sync::atomic::AtomicBool>) {
    tokio::spawn(async move {
        let mut last = counter.load(Ordering::Relaxed);
        let mut at = Instant::now();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.tick().await;
        while !stop.load(Ordering::Relaxed) {
            tick.tick().await;
            let now = counter.load(Ordering::Relaxed);
            let dt = at.elapsed().as_secs_f64();
            eprintln!("  {label}: {:>12.0}/s", (now - last) as f64 / dt);
            last = now;
            at = Instant::now();
        }
    });
}

/// A fixed-width summary table.
pub fn table(records: &[Record]) -> String {
    let mut out = format!(
        "{:<10} {:<24} {:>14} {:<13} {:>9} {:>9} {:>9} {:>10} {:>6} {:>9}\n",
        "case",
        "server",
        "rate",
        "unit",
        "p50 µs",
        "p99 µs",
        "p99.9 µs",
        "B/conn",
        "errors",
        "load cpu"
    );
    for r in records {
        let f = |v: Option<f64>| v.map(|v| format!("{v:.0}")).unwrap_or_else(|| "-".into());
        out.push_str(&format!(
            "{:<10} {:<24} {:>14.0} {:<13} {:>9} {:>9} {:>9} {:>10} {:>6} {:>9}\n",
            r.case,
            r.server,
            r.rate,
            r.unit,
            f(r.p50_us),
            f(r.p99_us),
            f(r.p999_us),
            f(r.rss_per_conn),
            r.errors,
            cpu_cell(r.client_cpu)
        ));
    }
    out
}

/// The client's CPU use as a percentage, flagged when it may have been the
/// bottleneck.
pub fn cpu_cell(cpu: Option<f64>) -> String {
    match cpu {
        Some(c) if c > CLIENT_BOUND => format!("{:.0}% ⚠", c * 100.0),
        Some(c) => format!("{:.0}%", c * 100.0),
        None => "-".into(),
    }
}

/// Append a record as one JSON line.
pub fn append_json(path: &Path, r: &Record) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    writeln!(
        f,
        "{}",
        serde_json::to_string(r).expect("record serialises")
    )
}

/// Append a record as a CSV row (with a header when the file is new).
pub fn append_csv(path: &Path, r: &Record) -> std::io::Result<()> {
    let new = !path.exists();
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    if new {
        writeln!(f, "case,server,scenario,params,rate,unit,p50_us,p90_us,p99_us,p999_us,rss_per_conn,errors,client_cpu")?;
    }
    let o = |v: Option<f64>| v.map(|v| format!("{v:.1}")).unwrap_or_default();
    writeln!(
        f,
        "{},{},{},\"{}\",{:.1},{},{},{},{},{},{},{},{}",
        r.case,
        r.server,
        r.scenario,
        r.params.replace('"', "'"),
        r.rate,
        r.unit,
        o(r.p50_us),
        o(r.p90_us),
        o(r.p99_us),
        o(r.p999_us),
        o(r.rss_per_conn),
        r.errors,
        r.client_cpu.map(|c| format!("{c:.3}")).unwrap_or_default()
    )
}

/// Read JSON-line records.
pub fn read_json(path: &Path) -> std::io::Result<Vec<Record>> {
    Ok(std::fs::read_to_string(path)?
        .lines()
        .filter(|l| !l.trim().is_empty())
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect())
}

/// VmRSS of a process, in bytes.
pub fn rss(pid: u32) -> std::io::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .ok_or_else(|| std::io::Error::other("no VmRSS"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_in_microseconds() {
        let mut h = histogram();
        for ns in 1..=1000u64 {
            h.record(ns * 1000).unwrap(); // 1 µs .. 1 ms
        }
        let mut r = Record::new("c", "s", "latency", String::new(), "deliveries/s");
        r.set_latency(&h);
        assert!((r.p50_us.unwrap() - 500.0).abs() < 2.0);
        assert!((r.p99_us.unwrap() - 990.0).abs() < 2.0);
    }

    #[test]
    fn json_and_csv_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = Record::new(
            "echo-1",
            "roomcast-shout",
            "echo",
            "100 conns".into(),
            "msgs/s",
        );
        r.rate = 1234.0;
        append_json(&dir.path().join("r.jsonl"), &r).unwrap();
        append_json(&dir.path().join("r.jsonl"), &r).unwrap();
        assert_eq!(
            read_json(&dir.path().join("r.jsonl")).unwrap(),
            vec![r.clone(), r.clone()]
        );
        append_csv(&dir.path().join("r.csv"), &r).unwrap();
        append_csv(&dir.path().join("r.csv"), &r).unwrap();
        let csv = std::fs::read_to_string(dir.path().join("r.csv")).unwrap();
        assert_eq!(csv.lines().count(), 3);
        assert!(table(&[r]).contains("roomcast-shout"));
    }

    #[test]
    fn rss_of_this_process() {
        assert!(rss(std::process::id()).unwrap() > 1024 * 1024);
    }
}
