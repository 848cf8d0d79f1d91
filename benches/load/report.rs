//! Turns the records of a comparison run into docs/BENCHMARKS.md and its
//! chart: ratio tables (roomcast ÷ peer, measured in the same run) and every
//! target marked met or not.

use std::fmt::Write as _;
use std::path::Path;

use plotters::prelude::*;

use crate::stats::Record;

/// How a target is judged.
#[derive(Debug, Clone, Copy)]
pub enum Goal {
    /// `ours.rate / theirs.rate >= x`.
    RateRatio(f64),
    /// `ours.rss_per_conn <= x` bytes.
    RssAtMost(f64),
    /// `ours.p99 <= abs_us` and `ours.p99 / theirs.p99 <= ratio`.
    P99(f64, f64),
    /// `ours.p99 - theirs.p99 <= x` µs: what `ours` adds over `theirs`.
    P99AddedAtMost(f64),
    /// `ours.p99 / theirs.p99 <= x`: the same server, disturbed and not.
    P99RatioAtMost(f64),
}

/// One row of the target table.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    pub scenario: &'static str,
    pub case: &'static str,
    pub ours: &'static str,
    pub theirs: Option<&'static str>,
    pub goal: Goal,
}

pub const TARGETS: &[Target] = &[
    Target {
        scenario: "echo 100×20 B, 1 in flight, shout.rhai vs Bun shout",
        case: "echo-1",
        ours: "roomcast-shout",
        theirs: Some("bun-shout"),
        goal: Goal::RateRatio(1.0),
    },
    Target {
        scenario: "echo 100×20 B, 1 in flight, shout.rhai vs raw fastwebsockets echo",
        case: "echo-1",
        ours: "roomcast-shout",
        theirs: Some("fws-echo"),
        goal: Goal::RateRatio(0.95),
    },
    Target {
        scenario: "echo 100×20 B, 1 in flight, shout.rhai vs Node ws shout",
        case: "echo-1",
        ours: "roomcast-shout",
        theirs: Some("nodews-shout"),
        goal: Goal::RateRatio(1.6),
    },
    Target {
        scenario: "echo 100×20 B, 8 in flight, vs raw fastwebsockets",
        case: "echo-8",
        ours: "roomcast-echo",
        theirs: Some("fws-echo"),
        goal: Goal::RateRatio(3.0),
    },
    Target {
        scenario: "echo 100×20 B, 8 in flight, vs Bun",
        case: "echo-8",
        ours: "roomcast-echo",
        theirs: Some("bun-echo"),
        goal: Goal::RateRatio(1.0),
    },
    Target {
        scenario: "echo 100×20 B, 8 in flight, shout.rhai vs Bun shout",
        case: "echo-8-shout",
        ours: "roomcast-shout",
        theirs: Some("bun-shout"),
        goal: Goal::RateRatio(1.0),
    },
    Target {
        scenario: "echo 100×20 B, 8 in flight, the native shout route vs Bun shout",
        case: "echo-8-shout",
        ours: "roomcast-native-shout",
        theirs: Some("bun-shout"),
        goal: Goal::RateRatio(1.3),
    },
    Target {
        scenario: "fan-out, 100-member room, vs Bun pub/sub",
        case: "fanout-100",
        ours: "roomcast-chat",
        theirs: Some("bun-pubsub"),
        goal: Goal::RateRatio(1.0),
    },
    Target {
        scenario: "fan-out, 1000-member room, vs Bun pub/sub",
        case: "fanout-1000",
        ours: "roomcast-chat",
        theirs: Some("bun-pubsub"),
        goal: Goal::RateRatio(1.2),
    },
    Target {
        scenario: "fan-out, 100-member room, vs Node ws",
        case: "fanout-100",
        ours: "roomcast-chat",
        theirs: Some("nodews-chat"),
        goal: Goal::RateRatio(10.0),
    },
    Target {
        scenario:
            "socket.io fan-out, 100 socket.io 4 clients over WebSocket, vs socket.io 4.8 (Node)",
        case: "fanout-sio-100",
        ours: "roomcast-socketio-chat",
        theirs: Some("socketio-chat"),
        goal: Goal::RateRatio(10.0),
    },
    Target {
        scenario: "cross-node fan-out, 100 socket.io 4 clients split over 2 nodes + Redis, vs socket.io 4.8 + redis-adapter (2 processes)",
        case: "cluster-fanout-100",
        ours: "roomcast-cluster-socketio-chat",
        theirs: Some("socketio-cluster-chat"),
        goal: Goal::RateRatio(10.0),
    },
    Target {
        scenario: "cross-node delivery, p99 added over same-node, 100 members at 1000 msg/s",
        case: "cluster-latency",
        ours: "roomcast-cluster-cross",
        theirs: Some("roomcast-cluster-same"),
        goal: Goal::P99AddedAtMost(2000.0),
    },
    Target {
        scenario: "reconnect storm, 8000 clients at once: time until all are upgraded, vs Bun (as a rate: 2× = half the time)",
        case: "storm",
        ours: "roomcast-echo",
        theirs: Some("bun-echo"),
        goal: Goal::RateRatio(2.0),
    },
    Target {
        scenario: "idle connections, server RSS per connection",
        case: "idle",
        ours: "roomcast-echo",
        theirs: None,
        goal: Goal::RssAtMost(1024.0),
    },
    Target {
        scenario: "idle socket.io 4 connections over WebSocket, server RSS per connection",
        case: "idle-sio",
        ours: "roomcast-socketio-echo",
        theirs: None,
        goal: Goal::RssAtMost(4096.0),
    },
    Target {
        scenario: "script overhead at 8 in flight: shout.rhai vs native shout",
        case: "echo-8-shout",
        ours: "roomcast-shout",
        theirs: Some("roomcast-native-shout"),
        goal: Goal::RateRatio(0.9),
    },
    Target {
        scenario: "script overhead: shout.rhai vs native shout",
        case: "echo-1",
        ours: "roomcast-shout",
        theirs: Some("roomcast-native-shout"),
        goal: Goal::RateRatio(0.9),
    },
    Target {
        scenario: "p99 delivery latency, 1000-member room at 100 msg/s, vs Bun pub/sub",
        case: "latency-1000",
        ours: "roomcast-chat",
        theirs: Some("bun-pubsub"),
        goal: Goal::P99(5000.0, 1.0),
    },
    Target {
        scenario: "fairness on /echo (defaults): 100 clients at 1 in flight beside a flooder, throughput vs without it",
        case: "fairness-echo",
        ours: "roomcast-flooded",
        theirs: Some("roomcast-alone"),
        goal: Goal::RateRatio(0.9),
    },
    Target {
        scenario: "fairness on /echo (defaults): their p99 beside a flooder vs without it",
        case: "fairness-echo",
        ours: "roomcast-flooded",
        theirs: Some("roomcast-alone"),
        goal: Goal::P99RatioAtMost(2.0),
    },
    Target {
        scenario: "fairness in chat rooms (defaults, the flooder rate-limited): throughput beside it vs without it",
        case: "fairness-chat",
        ours: "roomcast-flooded",
        theirs: Some("roomcast-alone"),
        goal: Goal::RateRatio(0.9),
    },
    Target {
        scenario: "fairness in chat rooms (defaults, the flooder rate-limited): p99 beside it vs without it",
        case: "fairness-chat",
        ours: "roomcast-flooded",
        theirs: Some("roomcast-alone"),
        goal: Goal::P99RatioAtMost(2.0),
    },
    Target {
        scenario: "frozen readers: a 1000-member room where 10 never read, the 990 others vs the 990 alone",
        case: "frozen-1000",
        ours: "roomcast-10-frozen",
        theirs: Some("roomcast-990-alone"),
        goal: Goal::RateRatio(0.95),
    },
    Target {
        scenario: "metrics on vs off",
        case: "echo-1",
        ours: "roomcast-shout",
        theirs: Some("roomcast-shout-nometrics"),
        goal: Goal::RateRatio(0.97),
    },
    Target {
        scenario: "metrics on vs off, 8 in flight",
        case: "echo-8-shout",
        ours: "roomcast-shout",
        theirs: Some("roomcast-shout-nometrics"),
        goal: Goal::RateRatio(0.97),
    },
];

/// One record per (case, server): the median of its runs (rates, latency
/// percentiles and RSS each take their own median; errors add up).
pub fn consolidate(records: &[Record]) -> Vec<Record> {
    let mut keys: Vec<(String, String)> = Vec::new();
    for r in records {
        let k = (r.case.clone(), r.server.clone());
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    keys.into_iter()
        .map(|(case, server)| {
            let runs: Vec<&Record> = records
                .iter()
                .filter(|r| r.case == case && r.server == server)
                .collect();
            let median = |f: &dyn Fn(&Record) -> Option<f64>| {
                let mut v: Vec<f64> = runs.iter().filter_map(|r| f(r)).collect();
                v.sort_by(|a, b| a.total_cmp(b));
                (!v.is_empty()).then(|| v[v.len() / 2])
            };
            let mut out = runs[0].clone();
            out.rate = median(&|r| Some(r.rate)).unwrap_or(0.0);
            out.p50_us = median(&|r| r.p50_us);
            out.p90_us = median(&|r| r.p90_us);
            out.p99_us = median(&|r| r.p99_us);
            out.p999_us = median(&|r| r.p999_us);
            out.rss_per_conn = median(&|r| r.rss_per_conn);
            out.took_s = median(&|r| r.took_s);
            out.flood_rate = median(&|r| r.flood_rate);
            // The busiest run: a client-bound run must show.
            out.client_cpu = runs
                .iter()
                .filter_map(|r| r.client_cpu)
                .fold(None, |m: Option<f64>, c| Some(m.map_or(c, |m| m.max(c))));
            out.errors = runs.iter().map(|r| r.errors).sum();
            if runs.len() > 1 {
                out.params = format!("{} (median of {} runs)", out.params, runs.len());
            }
            out
        })
        .collect()
}

/// A target's outcome: (measured text, met?) or `None` when a side is
/// missing; the text says so when the load generator was busy enough to be
/// the bottleneck on either side.
pub fn judge(t: &Target, records: &[Record]) -> Option<(String, bool)> {
    let (text, met) = judge_figures(t, records)?;
    let bound: Vec<&str> = [Some(t.ours), t.theirs]
        .into_iter()
        .flatten()
        .filter(|s| {
            records.iter().any(|r| {
                r.case == t.case
                    && r.server == *s
                    && r.client_cpu.is_some_and(|c| c > crate::stats::CLIENT_BOUND)
            })
        })
        .collect();
    if bound.is_empty() {
        Some((text, met))
    } else {
        Some((
            format!(
                "{text} ⚠ load generator above 90% of its core for {}",
                bound.join(", ")
            ),
            met,
        ))
    }
}

fn judge_figures(t: &Target, records: &[Record]) -> Option<(String, bool)> {
    let find = |server: &str| {
        records
            .iter()
            .find(|r| r.case == t.case && r.server == server)
    };
    let ours = find(t.ours)?;
    match t.goal {
        Goal::RateRatio(min) => {
            let theirs = find(t.theirs?)?;
            if theirs.rate <= 0.0 {
                return None;
            }
            let ratio = ours.rate / theirs.rate;
            Some((format!("{ratio:.2}× (target ≥ {min}×)"), ratio >= min))
        }
        Goal::RssAtMost(max) => {
            let rss = ours.rss_per_conn?;
            Some((
                format!(
                    "{:.2} KB/conn (target ≤ {:.0} KB)",
                    rss / 1024.0,
                    max / 1024.0
                ),
                rss <= max,
            ))
        }
        Goal::P99(abs, ratio) => {
            let p99 = ours.p99_us?;
            let theirs = find(t.theirs?)?.p99_us?;
            let r = p99 / theirs;
            Some((
                format!(
                    "p99 {:.2} ms, {}× {} (target ≤ {:.0} ms and ≤ {ratio}×)",
                    p99 / 1000.0,
                    times(r),
                    t.theirs?,
                    abs / 1000.0
                ),
                p99 <= abs && r <= ratio,
            ))
        }
        Goal::P99RatioAtMost(ratio) => {
            let p99 = ours.p99_us?;
            let base = find(t.theirs?)?.p99_us?;
            let r = p99 / base;
            Some((
                format!(
                    "p99 {:.2} ms vs {:.2} ms: {}× (target ≤ {ratio}×)",
                    p99 / 1000.0,
                    base / 1000.0,
                    times(r)
                ),
                r <= ratio,
            ))
        }
        Goal::P99AddedAtMost(max) => {
            let p99 = ours.p99_us?;
            let base = find(t.theirs?)?.p99_us?;
            let added = p99 - base;
            Some((
                format!(
                    "p99 {:.2} ms vs {:.2} ms: {:+.2} ms (target ≤ {:.0} ms added)",
                    p99 / 1000.0,
                    base / 1000.0,
                    added / 1000.0,
                    max / 1000.0
                ),
                added <= max,
            ))
        }
    }
}

/// A ratio for a table: two decimals, or two significant digits when
/// smaller (a p99 200 times lower is 0.0050×, not 0.00×).
fn times(r: f64) -> String {
    if r >= 0.095 || r <= 0.0 || !r.is_finite() {
        return format!("{r:.2}");
    }
    let digits = (-r.log10()).ceil() as usize + 1;
    format!("{r:.digits$}")
}

/// Ratio rows for the chart: (label, ratio, target, met).
pub fn chart_rows(records: &[Record]) -> Vec<(String, f64, f64, bool)> {
    TARGETS
        .iter()
        .filter_map(|t| {
            let find = |s: &str| {
                records
                    .iter()
                    .rev()
                    .find(|r| r.case == t.case && r.server == s)
            };
            let ours = find(t.ours)?;
            match t.goal {
                Goal::RateRatio(min) => {
                    let theirs = find(t.theirs?)?;
                    let ratio = ours.rate / theirs.rate;
                    Some((
                        format!("{} ÷ {} ({})", t.ours, t.theirs?, t.case),
                        ratio,
                        min,
                        ratio >= min,
                    ))
                }
                Goal::P99(_, max) | Goal::P99RatioAtMost(max) => {
                    // Plot as "how many times better": peer p99 ÷ ours.
                    let theirs = find(t.theirs?)?.p99_us?;
                    let ratio = theirs / ours.p99_us?;
                    Some((
                        format!("{} p99 ÷ roomcast p99 ({})", t.theirs?, t.case),
                        ratio,
                        1.0 / max,
                        ratio >= 1.0 / max,
                    ))
                }
                Goal::RssAtMost(_) | Goal::P99AddedAtMost(_) => None,
            }
        })
        .collect()
}

/// Write the markdown report.
pub fn markdown(records: &[Record], meta: &str, analysis: &str, chart_file: &str) -> String {
    let mut md = String::new();
    md.push_str("# Benchmarks\n\n");
    md.push_str("<!-- Generated by `benches/compare.sh` (cargo bench --bench load -- report). Do not edit by hand: edit benches/ANALYSIS.md and re-run. -->\n\n");
    md.push_str(meta.trim());
    md.push_str("\n\n## Targets\n\n| scenario | measured | met |\n|---|---|---|\n");
    for t in TARGETS {
        match judge(t, records) {
            Some((text, met)) => {
                let _ = writeln!(
                    md,
                    "| {} | {} | {} |",
                    t.scenario,
                    text,
                    if met { "✅ met" } else { "❌ not met" }
                );
            }
            None => {
                let _ = writeln!(md, "| {} | not measured in this run | — |", t.scenario);
            }
        }
    }
    let _ = writeln!(
        md,
        "\n![roomcast ÷ peer, measured side by side]({chart_file})\n"
    );
    md.push_str("Bars are roomcast ÷ peer (higher is better for roomcast); the tick on each bar is its target.\n\n");

    let mut cases: Vec<&str> = Vec::new();
    for r in records {
        if !cases.contains(&r.case.as_str()) {
            cases.push(&r.case);
        }
    }
    md.push_str("## Results\n");
    for case in cases {
        let rows: Vec<&Record> = records.iter().filter(|r| r.case == case).collect();
        let reference = rows
            .iter()
            .find(|r| r.server.starts_with("roomcast"))
            .copied();
        let _ = writeln!(md, "\n### {case}: {}\n", rows[0].params);
        md.push_str("| server | result | roomcast ÷ this | p50 | p99 | p99.9 | errors | load cpu |\n|---|---|---|---|---|---|---|---|\n");
        for r in rows {
            let mut result = match (r.rss_per_conn, r.took_s) {
                (Some(b), _) => format!("{:.2} KB/conn RSS", b / 1024.0),
                (None, Some(t)) => format!("{t:.2} s ({} {})", group(r.rate), r.unit),
                (None, None) => format!("{} {}", group(r.rate), r.unit),
            };
            if let Some(f) = r.flood_rate {
                result.push_str(&format!(" (the flooders: {} msgs/s)", group(f)));
            }
            let ratio = match (reference, r.rss_per_conn) {
                (Some(ours), None) if r.rate > 0.0 => format!("{}×", times(ours.rate / r.rate)),
                (Some(ours), Some(b)) if b > 0.0 => ours
                    .rss_per_conn
                    .map(|o| format!("{:.2}× the memory", o / b))
                    .unwrap_or_default(),
                _ => String::new(),
            };
            let us = |v: Option<f64>| {
                v.map(|v| format!("{:.0} µs", v))
                    .unwrap_or_else(|| "—".into())
            };
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} | {} | {} |",
                r.server,
                result,
                ratio,
                us(r.p50_us),
                us(r.p99_us),
                us(r.p999_us),
                r.errors,
                crate::stats::cpu_cell(r.client_cpu)
            );
        }
    }
    if !analysis.trim().is_empty() {
        md.push('\n');
        md.push_str(analysis.trim());
        md.push('\n');
    }
    md
}

/// Thousands separators for big rates.
fn group(v: f64) -> String {
    let n = v.round() as u64;
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Draw the ratio chart as SVG: one bar per comparison on a log scale (so
/// 0.8× and 18× are both readable), each target as a black tick, 1× as a line.
pub fn chart(records: &[Record], path: &Path) -> Result<(), String> {
    let rows = chart_rows(records);
    if rows.is_empty() {
        return Err("no comparisons to chart".into());
    }
    let height = 110 + 46 * rows.len() as u32;
    let root = SVGBackend::new(path, (980, height)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let (lo, hi) = (0.25f64, 32.0f64);
    let n = rows.len() as f64;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "roomcast ÷ peer, same machine, same run (log scale; black tick = target)",
            ("sans-serif", 18),
        )
        .margin(14)
        .x_label_area_size(36)
        .y_label_area_size(0)
        .build_cartesian_2d((lo..hi).log_scale(), 0f64..n)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .disable_y_axis()
        .x_desc("ratio (×) — right of the tick is better than the target")
        .x_label_formatter(&|v| format!("{v}×"))
        .draw()
        .map_err(|e| e.to_string())?;
    let area = chart.plotting_area();
    let err = |e: plotters::drawing::DrawingAreaErrorKind<std::io::Error>| e.to_string();
    area.draw(&PathElement::new(
        vec![(1.0, 0.0), (1.0, n)],
        RGBColor(120, 120, 120).stroke_width(1),
    ))
    .map_err(err)?;
    for (i, (label, ratio, target, met)) in rows.iter().enumerate() {
        // Row i from the top; the bar fills the lower half, the label sits above.
        let y = n - 1.0 - i as f64;
        let color = if *met {
            RGBColor(46, 160, 67)
        } else {
            RGBColor(207, 34, 46)
        };
        area.draw(&Rectangle::new(
            [(lo, y + 0.12), (ratio.clamp(lo, hi), y + 0.5)],
            color.mix(0.8).filled(),
        ))
        .map_err(err)?;
        area.draw(&PathElement::new(
            vec![(*target, y + 0.05), (*target, y + 0.57)],
            BLACK.stroke_width(3),
        ))
        .map_err(err)?;
        area.draw(&Text::new(
            format!(
                "{label}: {ratio:.2}× (target {target:.2}×, {})",
                if *met { "met" } else { "not met" }
            ),
            (lo * 1.02, y + 0.93),
            ("sans-serif", 13).into_font().color(&BLACK),
        ))
        .map_err(err)?;
    }
    root.present().map_err(|e| e.to_string())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(case: &str, server: &str, rate: f64) -> Record {
        let mut r = Record::new(case, server, "echo", "p".into(), "msgs/s");
        r.rate = rate;
        r
    }

    #[test]
    fn small_ratios_keep_two_significant_digits() {
        assert_eq!(times(2.0), "2.00");
        assert_eq!(times(0.5), "0.50");
        assert_eq!(times(0.005), "0.0050");
        assert_eq!(times(0.031), "0.031");
    }

    #[test]
    fn ratios_are_judged_against_targets() {
        let records = vec![
            rec("echo-1", "roomcast-shout", 200.0),
            rec("echo-1", "bun-shout", 100.0),
        ];
        let (text, met) = judge(&TARGETS[0], &records).unwrap();
        assert!(met, "{text}");
        assert!(text.starts_with("2.00×"));
        let records = vec![
            rec("echo-1", "roomcast-shout", 90.0),
            rec("echo-1", "bun-shout", 100.0),
        ];
        assert!(!judge(&TARGETS[0], &records).unwrap().1);
        assert!(
            judge(&TARGETS[3], &records).is_none(),
            "missing side → not measured"
        );
        // A run where the load generator was near its core's limit says so.
        let mut busy = rec("echo-1", "bun-shout", 100.0);
        busy.client_cpu = Some(0.97);
        let records = vec![rec("echo-1", "roomcast-shout", 90.0), busy];
        let (text, _) = judge(&TARGETS[0], &records).unwrap();
        assert!(text.contains("⚠") && text.contains("bun-shout"), "{text}");
        // The busiest run of a case is what its consolidated record shows.
        let mut a = rec("c", "a", 1.0);
        a.client_cpu = Some(0.5);
        let mut b = rec("c", "a", 2.0);
        b.client_cpu = Some(0.95);
        assert_eq!(consolidate(&[a, b])[0].client_cpu, Some(0.95));
    }

    #[test]
    fn runs_are_consolidated_to_medians() {
        let records = vec![
            rec("c", "a", 1.0),
            rec("c", "b", 10.0),
            rec("c", "a", 3.0),
            rec("c", "a", 2.0),
        ];
        let out = consolidate(&records);
        assert_eq!(out.len(), 2);
        assert_eq!((out[0].server.as_str(), out[0].rate), ("a", 2.0));
        assert!(out[0].params.contains("median of 3 runs"));
        assert_eq!(out[1].rate, 10.0);
    }

    #[test]
    fn report_and_chart_are_written() {
        let mut idle = rec("idle", "roomcast-echo", 1000.0);
        idle.rss_per_conn = Some(900.0);
        let records = vec![
            rec("echo-1", "roomcast-shout", 200.0),
            rec("echo-1", "bun-shout", 100.0),
            idle,
        ];
        let md = markdown(&records, "machine: test", "## Analysis\nok", "chart.svg");
        assert!(md.contains("✅ met"));
        assert!(md.contains("0.88 KB/conn"));
        assert!(md.contains("not measured in this run"));
        let dir = tempfile::tempdir().unwrap();
        chart(&records, &dir.path().join("c.svg")).unwrap();
        let svg = std::fs::read_to_string(dir.path().join("c.svg")).unwrap();
        assert!(svg.contains("roomcast-shout ÷ bun-shout"));
        assert_eq!(group(1234567.0), "1,234,567");
    }
}
