//! Top lists: this node's rooms with the most members and the most
//! publications per second, and the cluster's, merged from every node's.
//!
//! One pass over this node's rooms a second (each room's atomics, no lock),
//! keeping the best [`TOP`] in two bounded heaps: O(rooms · log TOP) and
//! O(TOP) memory; a room's name is copied only when it makes a list.

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;

use super::figures::{RoomFigure, TOP};
use crate::hub::Hub;

/// An entry of a bounded heap: ordered by its figure, then by name (so
/// ties are broken the same way on every node and every second).
struct Ranked {
    key: f64,
    room: Arc<str>,
    members: u64,
    rate: f64,
}

impl Ranked {
    fn new(key: f64, room: Arc<str>, members: u64, rate: f64) -> Ranked {
        Ranked {
            key,
            room,
            members,
            rate,
        }
    }
}

impl PartialEq for Ranked {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Ranked {}

impl PartialOrd for Ranked {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Ranked {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key
            .total_cmp(&other.key)
            // The smaller name ranks higher.
            .then_with(|| other.room.cmp(&self.room))
    }
}

/// Keeps the `TOP` largest entries it is offered.
struct Best(BinaryHeap<Reverse<Ranked>>);

impl Best {
    fn new() -> Best {
        Best(BinaryHeap::with_capacity(TOP + 1))
    }

    /// Whether an entry with `key` and name `room` would make the list.
    fn admits(&self, key: f64, room: &str) -> bool {
        if self.0.len() < TOP {
            return true;
        }
        let Some(Reverse(worst)) = self.0.peek() else {
            return true;
        };
        match key.total_cmp(&worst.key) {
            Ordering::Greater => true,
            Ordering::Less => false,
            Ordering::Equal => room < &*worst.room,
        }
    }

    fn offer(&mut self, entry: Ranked) {
        self.0.push(Reverse(entry));
        if self.0.len() > TOP {
            self.0.pop();
        }
    }

    fn into_list(self) -> Vec<RoomFigure> {
        let mut v: Vec<Ranked> = self.0.into_iter().map(|Reverse(r)| r).collect();
        v.sort_by(|a, b| b.cmp(a));
        v.into_iter()
            .map(|r| RoomFigure {
                room: r.room.to_string(),
                members: r.members,
                rate: r.rate,
            })
            .collect()
    }
}

/// This node's top rooms by members and by rate; rates are publications
/// delivered here since the last call, over `secs`.
pub(crate) fn local(hub: &Hub, secs: f64) -> (Vec<RoomFigure>, Vec<RoomFigure>) {
    let (mut by_members, mut by_rate) = (Best::new(), Best::new());
    hub.for_each_room(|room| {
        let members = room.figures.members() as u64;
        let rate = room.figures.take_published() as f64 / secs;
        let name = room.name_arc();
        let entry = || Ranked {
            key: 0.0,
            room: name.clone(),
            members,
            rate,
        };
        if by_members.admits(members as f64, name) {
            by_members.offer(Ranked {
                key: members as f64,
                ..entry()
            });
        }
        if rate > 0.0 && by_rate.admits(rate, name) {
            by_rate.offer(Ranked {
                key: rate,
                ..entry()
            });
        }
    });
    (by_members.into_list(), by_rate.into_list())
}

/// The cluster's top rooms from every node's lists: a room's members are
/// summed over the nodes that list it, its rate is the highest any node
/// saw (every node with members receives all of a room's publications).
/// A room below every node's list is not seen (the usual price of merging
/// top lists; it is exact on one node).
pub(crate) fn merge<'a>(
    lists: impl Iterator<Item = (&'a [RoomFigure], &'a [RoomFigure])>,
) -> (Vec<RoomFigure>, Vec<RoomFigure>) {
    let mut rooms: HashMap<&str, (u64, f64)> = HashMap::new();
    for (by_members, by_rate) in lists {
        // A room on both of a node's lists counts its members once.
        let mut seen: HashMap<&str, ()> = HashMap::new();
        for f in by_members.iter().chain(by_rate) {
            let e = rooms.entry(&f.room).or_insert((0, 0.0));
            if seen.insert(&f.room, ()).is_none() {
                e.0 += f.members;
            }
            e.1 = e.1.max(f.rate);
        }
    }
    let (mut by_members, mut by_rate) = (Best::new(), Best::new());
    for (room, (members, rate)) in rooms {
        if by_members.admits(members as f64, room) {
            by_members.offer(Ranked::new(members as f64, room.into(), members, rate));
        }
        if rate > 0.0 && by_rate.admits(rate, room) {
            by_rate.offer(Ranked::new(rate, room.into(), members, rate));
        }
    }
    (by_members.into_list(), by_rate.into_list())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fig(room: &str, members: u64, rate: f64) -> RoomFigure {
        RoomFigure {
            room: room.into(),
            members,
            rate,
        }
    }

    #[test]
    fn the_best_are_kept_most_first_ties_by_name() {
        let mut best = Best::new();
        for i in 0..500u64 {
            let room: Arc<str> = format!("r{i:03}").into();
            let key = (i % 100) as f64;
            if best.admits(key, &room) {
                best.offer(Ranked::new(key, room, i % 100, 0.0));
            }
        }
        let list = best.into_list();
        assert_eq!(list.len(), TOP);
        assert_eq!(list[0].members, 99);
        assert_eq!(list[0].room, "r099");
        assert_eq!(list[1].room, "r199");
        assert!(list.windows(2).all(|w| w[0].members >= w[1].members));
        assert_eq!(list[TOP - 1].members, 90);
    }

    #[test]
    fn merged_members_add_up_and_rates_take_the_highest() {
        let a = (
            vec![fig("chat/a", 10, 2.0), fig("chat/b", 3, 0.0)],
            vec![fig("chat/a", 10, 2.0)],
        );
        let b = (vec![fig("chat/a", 5, 1.5), fig("chat/c", 7, 9.0)], vec![]);
        let (members, rate) = merge([(&a.0[..], &a.1[..]), (&b.0[..], &b.1[..])].into_iter());
        assert_eq!(members[0], fig("chat/a", 15, 2.0));
        assert_eq!(members[1], fig("chat/c", 7, 9.0));
        assert_eq!(members[2], fig("chat/b", 3, 0.0));
        assert_eq!(rate, vec![fig("chat/c", 7, 9.0), fig("chat/a", 15, 2.0)]);
    }
}
