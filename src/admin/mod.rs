//! The operator view: `/admin`, a page that shows the cluster's nodes, its
//! hottest rooms and its rates live, and acts on rooms and members through
//! the HTTP API. Off unless an API key is set (docs/admin.md).
//!
//! Its cost is bounded by what it shows, not by how many are connected.
//! Once a second the [`Board`] samples this node (counters and gauges the
//! server keeps anyway: [`figures`]) and walks its rooms' atomics for the
//! two top lists ([`top`]), never its connections; on a cluster it sends
//! that report (a few KB) to every node through the broker and keeps every
//! node's last five minutes, so any node can serve the view. Viewers get
//! the latest update pushed over one WebSocket ([`live`]): at most one a
//! second, a few KB, the same bytes for every viewer, skipped (never
//! queued) for a viewer that is behind.

mod api;
mod figures;
mod live;
mod page;
mod top;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::sync::watch;

pub(crate) use api::handle as api;
pub(crate) use live::upgrade as live;
pub(crate) use page::{asset, index, ASSET_DIR};

use self::figures::{Last, Report, RoomFigure, Sample};
use crate::metrics::Refused;
use crate::state::State;

/// How often the board samples, reports and pushes.
const TICK: Duration = Duration::from_secs(1);
/// How much of each node's figures is kept for the charts.
const KEEP: usize = 300;
/// A node not heard from for this long is shown as down.
const DOWN_AFTER: Duration = Duration::from_secs(5);
/// ... and forgotten after this long.
const FORGET_AFTER: Duration = Duration::from_secs(300);

/// Where the last sample and the last walk over the rooms were.
struct Clock {
    last: Last,
    walked: Instant,
}

/// One node as the view knows it.
struct NodeView {
    last: Report,
    seen: Instant,
    series: VecDeque<Sample>,
}

/// Every node's figures and the latest update, shared by viewers.
pub(crate) struct Board {
    /// This node's number (a cluster node learns it from Redis, before it serves).
    node: AtomicU16,
    started: AtomicBool,
    up_since: u64,
    nodes: Mutex<BTreeMap<u16, NodeView>>,
    update: watch::Sender<Arc<str>>,
    viewers: AtomicUsize,
}

impl Board {
    pub(crate) fn new() -> Board {
        Board {
            node: AtomicU16::new(0),
            started: AtomicBool::new(false),
            up_since: figures::unix_ms(),
            nodes: Mutex::new(BTreeMap::new()),
            update: watch::Sender::new(Arc::from("")),
            viewers: AtomicUsize::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u16, NodeView>> {
        self.nodes.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Start sampling, reporting and pushing once a second until the
    /// server stops (once; later calls do nothing).
    pub(crate) fn start(self: &Arc<Self>, state: &Arc<State>) {
        if self.started.swap(true, Ordering::AcqRel) {
            return;
        }
        self.node.store(state.broker.node(), Ordering::Relaxed);
        // The first sample now: a viewer who comes at once sees this node.
        let mut clock = Clock {
            last: Last::new(state),
            walked: Instant::now(),
        };
        self.tick(state, &mut clock);
        tokio::spawn(self.clone().run(state.clone(), clock));
    }

    fn node(&self) -> u16 {
        self.node.load(Ordering::Relaxed)
    }

    async fn run(self: Arc<Self>, state: Arc<State>, mut clock: Clock) {
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + TICK, TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = state.shutdown.cancelled() => return,
            }
            self.tick(&state, &mut clock);
        }
    }

    /// One second's work: sample this node, walk its rooms (their atomics:
    /// the top lists are ready when someone looks, here or on another
    /// node), report to the others, take their reports, push the update.
    fn tick(&self, state: &State, clock: &mut Clock) {
        let sample = figures::sample(state, &mut clock.last);
        let secs = clock.walked.elapsed().as_secs_f64().max(1e-3);
        clock.walked = Instant::now();
        let (by_members, by_rate) = top::local(&state.hub, secs);
        let report = Report {
            node: self.node(),
            up_since: self.up_since,
            sample,
            by_members,
            by_rate,
        };
        if state.config.cluster.enabled() {
            state
                .broker
                .report(serde_json::to_vec(&report).expect("a report serialises"));
        }
        self.heard(report);
        for (node, bytes) in state.hub.take_reports() {
            match Report::decode(&bytes).filter(|r| r.node == node) {
                Some(r) => self.heard(r),
                None => state.metrics.broker_refused(Refused::Report).inc(),
            }
        }
        self.forget_silent();
        if self.viewers.load(Ordering::Relaxed) > 0 {
            self.update
                .send_replace(Arc::from(self.encode_update().to_string()));
        }
    }

    /// A node's report, this one's or another's.
    fn heard(&self, report: Report) {
        let mut nodes = self.lock();
        let view = nodes.entry(report.node).or_insert_with(|| NodeView {
            last: report.clone(),
            seen: Instant::now(),
            series: VecDeque::with_capacity(KEEP),
        });
        if view.series.len() == KEEP {
            view.series.pop_front();
        }
        view.series.push_back(report.sample.clone());
        view.seen = Instant::now();
        view.last = report;
    }

    fn forget_silent(&self) {
        self.lock().retain(|_, v| v.seen.elapsed() < FORGET_AFTER);
    }

    /// The update every viewer gets each second: every node's figures now
    /// and the cluster's top rooms.
    fn encode_update(&self) -> Value {
        let nodes = self.lock();
        let list: Vec<Value> = nodes
            .values()
            .map(|v| {
                let s = &v.last.sample;
                json!({
                    "node": v.last.node,
                    "up": v.seen.elapsed() < DOWN_AFTER,
                    "up_since": v.last.up_since,
                    "seen": s.t,
                    "conns": s.conns,
                    "wires": {"raw": s.wires[0], "v1": s.wires[1], "socketio": s.wires[2]},
                    "transports": {"websocket": s.transports[0], "socketio": s.transports[1]},
                    "rooms": s.rooms,
                    "msgs_in": round(s.msgs_in),
                    "msgs_out": round(s.msgs_out),
                    "deliveries": round(s.deliveries),
                    "slow": s.slow,
                    "slow_rate": round(s.slow_rate),
                    "broker_up": s.broker_up,
                    "rss": s.rss,
                })
            })
            .collect();
        let live = nodes
            .values()
            .filter(|v| v.seen.elapsed() < DOWN_AFTER)
            .map(|v| (&v.last.by_members[..], &v.last.by_rate[..]));
        let (by_members, by_rate) = top::merge(live);
        json!({
            "type": "update",
            "t": figures::unix_ms(),
            "served_by": self.node(),
            "nodes": list,
            "top_members": rooms_json(&by_members),
            "top_rate": rooms_json(&by_rate),
        })
    }

    /// What a new viewer gets first: every node's last five minutes, as
    /// columns (`t`, connections, messages in/out, deliveries per second,
    /// slow consumers, RSS), for its charts.
    fn encode_history(&self) -> Value {
        let nodes = self.lock();
        let series: serde_json::Map<String, Value> = nodes
            .iter()
            .map(|(id, v)| {
                let col = |f: &dyn Fn(&Sample) -> Value| -> Value {
                    v.series.iter().map(f).collect::<Vec<Value>>().into()
                };
                let value = json!({
                    "t": col(&|s| s.t.into()),
                    "conns": col(&|s| s.conns.into()),
                    "msgs_in": col(&|s| round(s.msgs_in).into()),
                    "msgs_out": col(&|s| round(s.msgs_out).into()),
                    "deliveries": col(&|s| round(s.deliveries).into()),
                    "slow": col(&|s| s.slow.into()),
                    "rss": col(&|s| s.rss.into()),
                });
                (id.to_string(), value)
            })
            .collect();
        json!({"type": "history", "every_ms": TICK.as_millis() as u64, "nodes": series})
    }

    /// The latest figures of a room, from the top lists (`None` if it is on
    /// no node's list).
    fn room_rate(&self, room: &str) -> Option<f64> {
        self.lock()
            .values()
            .flat_map(|v| v.last.by_rate.iter().chain(&v.last.by_members))
            .filter(|f| f.room == room)
            .map(|f| f.rate)
            .reduce(f64::max)
    }

    /// A viewer came: counted while the guard lives.
    fn watch(self: &Arc<Self>) -> (Viewer, watch::Receiver<Arc<str>>) {
        self.viewers.fetch_add(1, Ordering::Relaxed);
        (Viewer(self.clone()), self.update.subscribe())
    }
}

/// A viewer, counted until dropped.
struct Viewer(Arc<Board>);

impl Drop for Viewer {
    fn drop(&mut self) {
        self.0.viewers.fetch_sub(1, Ordering::Relaxed);
    }
}

fn round(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

fn rooms_json(list: &[RoomFigure]) -> Value {
    list.iter()
        .map(|f| json!({"room": f.room, "members": f.members, "rate": round(f.rate)}))
        .collect::<Vec<Value>>()
        .into()
}
