//! The board and the hub's figures without a socket: what a tick sees,
//! what the update says for several nodes, what a node answers.

use std::sync::Arc;

use super::figures::{Report, RoomFigure, Sample};
use super::{top, Board};
use crate::broker::{NodeAnswer, NodeQuery};
use crate::config::RoomPolicy;
use crate::hub::{test_handle, Hub, Member};
use crate::metrics::Metrics;
use crate::wire::{Author, Publication, Wire};

fn hub_with_rooms() -> Hub {
    let hub = Hub::new(Metrics::new());
    let policy = Arc::new(RoomPolicy::default());
    let mut id = 0;
    for (room, members) in [("chat/a", 3), ("chat/b", 1), ("other/c", 2)] {
        for _ in 0..members {
            id += 1;
            let h = test_handle(id, Wire::Raw, 64);
            hub.register(h.clone());
            hub.join(room, Member::live(h, format!("user{id}").into()), &policy)
                .unwrap();
        }
    }
    hub
}

fn publish(hub: &Hub, room: &str, n: u64) {
    for offset in 1..=n {
        hub.deliver(&Arc::new(Publication::new(
            room.into(),
            offset,
            0,
            Author::server(),
            crate::payload::Payload::Text("x".into()),
            None,
        )));
    }
}

#[test]
fn a_walk_reads_members_and_the_publications_since_the_last_one() {
    let hub = hub_with_rooms();
    publish(&hub, "chat/b", 4);
    publish(&hub, "other/c", 2);
    let (members, rate) = top::local(&hub, 2.0);
    let names: Vec<(&str, u64)> = members.iter().map(|f| (&*f.room, f.members)).collect();
    assert_eq!(names, [("chat/a", 3), ("other/c", 2), ("chat/b", 1)]);
    let rates: Vec<(&str, f64)> = rate.iter().map(|f| (&*f.room, f.rate)).collect();
    assert_eq!(rates, [("chat/b", 2.0), ("other/c", 1.0)]);
    // The next walk counts only what came since.
    publish(&hub, "chat/a", 1);
    let (_, rate) = top::local(&hub, 1.0);
    let rates: Vec<(&str, f64)> = rate.iter().map(|f| (&*f.room, f.rate)).collect();
    assert_eq!(rates, [("chat/a", 1.0)]);
    assert_eq!(hub.connections_by_wire(), [6, 0, 0]);
    assert_eq!(hub.publications(), 7);
}

#[test]
fn a_node_answers_a_page_of_members_and_rooms_by_prefix() {
    let hub = hub_with_rooms();
    let members = |from, limit| {
        hub.answer(&NodeQuery::Members {
            room: "chat/a".into(),
            from,
            limit,
        })
    };
    match members(1, 1) {
        NodeAnswer::Members { total, members } => {
            assert_eq!(total, 3);
            assert_eq!(members.len(), 1);
            assert_eq!(members[0].wire, "raw");
        }
        other => panic!("{other:?}"),
    }
    // However much is asked for, a page is at most PAGE_MAX.
    assert!(members(0, usize::MAX).within_bounds());
    let rooms = hub.answer(&NodeQuery::Rooms {
        prefix: "chat/".into(),
        limit: 1,
    });
    assert_eq!(
        rooms,
        NodeAnswer::Rooms {
            rooms: vec![("chat/a".into(), 3)],
            more: true
        }
    );
}

fn report(node: u16, conns: u64, by_members: Vec<RoomFigure>) -> Report {
    Report {
        node,
        up_since: 1,
        sample: Sample {
            t: 10,
            conns,
            ..Sample::default()
        },
        by_members,
        by_rate: Vec::new(),
    }
}

fn fig(room: &str, members: u64) -> RoomFigure {
    RoomFigure {
        room: room.into(),
        members,
        rate: 0.0,
    }
}

#[test]
fn the_update_lists_every_node_and_merges_their_rooms() {
    let board = Board::new();
    board.heard(report(1, 5, vec![fig("chat/lobby", 3), fig("chat/x", 2)]));
    board.heard(report(2, 7, vec![fig("chat/lobby", 4)]));
    board.heard(report(2, 8, vec![fig("chat/lobby", 4)]));
    let u = board.encode_update();
    let nodes: Vec<(u64, u64, bool)> = u["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["node"].as_u64().unwrap(),
                n["conns"].as_u64().unwrap(),
                n["up"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(nodes, [(1, 5, true), (2, 8, true)]);
    assert_eq!(u["top_members"][0]["room"], "chat/lobby");
    assert_eq!(u["top_members"][0]["members"], 7);
    assert_eq!(u["top_members"][1]["room"], "chat/x");
    // Five minutes of samples a node, for the charts: node 2 has two.
    let h = board.encode_history();
    assert_eq!(h["nodes"]["2"]["conns"], serde_json::json!([7, 8]));
    assert_eq!(h["nodes"]["1"]["t"], serde_json::json!([10]));
}
