//! What one node reports to the operator view once a second: its figures
//! (a [`Sample`]) and its hottest rooms. Read from counters and gauges the
//! server keeps anyway and from each room's [`Figures`](crate::hub::Figures):
//! nothing walks the connections.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::metrics::Transport;
use crate::state::State;

/// Most rooms in a top list (by members, by message rate).
pub(crate) const TOP: usize = 50;

/// The longest room name a report may carry (a room's full name is
/// `{route}/{room}`, each a valid name).
const NAME_MAX: usize = 512;

/// One node's figures at one moment. Rates are per second over the last
/// interval.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub(crate) struct Sample {
    /// When, in Unix milliseconds.
    pub t: u64,
    /// Open connections (`roomcast_connections`).
    pub conns: u64,
    /// Connections by wire: raw, roomcast.v1, socket.io.
    pub wires: [u64; 3],
    /// Connections by transport: WebSocket routes, socket.io.
    pub transports: [u64; 2],
    /// Rooms with members here.
    pub rooms: u64,
    /// Messages received from clients per second.
    pub msgs_in: f64,
    /// Publications delivered into rooms here per second.
    pub msgs_out: f64,
    /// Messages written to clients per second (one per recipient).
    pub deliveries: f64,
    /// Slow consumers closed, ever.
    pub slow: u64,
    /// Slow consumers closed per second.
    pub slow_rate: f64,
    /// Whether the broker reaches its store.
    pub broker_up: bool,
    /// Resident memory, in bytes (0 where the OS does not say).
    pub rss: u64,
}

/// A room in a top list.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(crate) struct RoomFigure {
    /// Its full name.
    pub room: String,
    /// Its member connections (on the reporting node, or summed).
    pub members: u64,
    /// Publications per second.
    pub rate: f64,
}

/// What a node tells the others once a second.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(crate) struct Report {
    /// The node's number.
    pub node: u16,
    /// When it started, in Unix milliseconds.
    pub up_since: u64,
    /// Its figures now.
    pub sample: Sample,
    /// Its rooms with the most members, most first.
    pub by_members: Vec<RoomFigure>,
    /// Its rooms with the most publications per second, most first.
    pub by_rate: Vec<RoomFigure>,
}

impl Report {
    /// A report from another node, if it is one and within its bounds.
    pub(crate) fn decode(bytes: &[u8]) -> Option<Report> {
        let r: Report = serde_json::from_slice(bytes).ok()?;
        let fits = |list: &[RoomFigure]| {
            list.len() <= TOP
                && list
                    .iter()
                    .all(|f| f.room.len() <= NAME_MAX && f.rate.is_finite() && f.rate >= 0.0)
        };
        (fits(&r.by_members) && fits(&r.by_rate)).then_some(r)
    }
}

/// Counter values at the last sample, for rates.
pub(crate) struct Last {
    at: Instant,
    msgs_in: u64,
    msgs_out: u64,
    deliveries: u64,
    slow: u64,
}

impl Last {
    pub(crate) fn new(state: &State) -> Last {
        let m = &state.metrics;
        Last {
            at: Instant::now(),
            msgs_in: m.messages_received.get(),
            msgs_out: state.hub.publications(),
            deliveries: m.messages_sent.get(),
            slow: m.slow_consumers.get(),
        }
    }
}

/// This node's figures now, with rates since `last` (which becomes now).
pub(crate) fn sample(state: &State, last: &mut Last) -> Sample {
    let now = Last::new(state);
    let secs = now.at.duration_since(last.at).as_secs_f64().max(1e-3);
    let rate = |a: u64, b: u64| a.saturating_sub(b) as f64 / secs;
    let m = &state.metrics;
    let s = Sample {
        t: unix_ms(),
        conns: m.connections.get().max(0) as u64,
        wires: state.hub.connections_by_wire(),
        transports: Transport::ALL.map(|t| m.transport(t).get().max(0) as u64),
        rooms: state.hub.len() as u64,
        msgs_in: rate(now.msgs_in, last.msgs_in),
        msgs_out: rate(now.msgs_out, last.msgs_out),
        deliveries: rate(now.deliveries, last.deliveries),
        slow: now.slow,
        slow_rate: rate(now.slow, last.slow),
        broker_up: m.broker_up.get() == 1,
        rss: rss(),
    };
    *last = now;
    s
}

/// Milliseconds since the Unix epoch.
pub(crate) fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// This process's resident memory (Linux: `/proc/self/status`'s `VmRSS`).
fn rss() -> u64 {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return 0;
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_over_its_bounds_is_not_believed() {
        let room = |i: usize| RoomFigure {
            room: format!("chat/r{i}"),
            members: 1,
            rate: 0.5,
        };
        let mut r = Report {
            node: 3,
            up_since: 1,
            sample: Sample::default(),
            by_members: (0..TOP).map(room).collect(),
            by_rate: vec![room(1)],
        };
        let bytes = serde_json::to_vec(&r).unwrap();
        assert_eq!(Report::decode(&bytes), Some(r.clone()));
        r.by_members.push(room(TOP));
        assert_eq!(Report::decode(&serde_json::to_vec(&r).unwrap()), None);
        r.by_members.truncate(1);
        r.by_rate[0].room = "x".repeat(NAME_MAX + 1);
        assert_eq!(Report::decode(&serde_json::to_vec(&r).unwrap()), None);
        assert_eq!(Report::decode(b"{\"node\":1}"), None);
    }

    #[test]
    fn this_process_has_a_resident_size() {
        assert!(rss() > 1024 * 1024, "{}", rss());
    }
}
