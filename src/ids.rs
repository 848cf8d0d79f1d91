//! Connection ids, unique across every node of a cluster.
//!
//! An id is the node's number in the high bits and a per-node counter in the
//! low ones, so two nodes never hand out the same id and no coordination is
//! needed per connection. Ids stay below 2^52: JSON numbers (and JavaScript's
//! `Number`) hold them exactly. A single node (the memory broker) is node 0,
//! so its ids are 1, 2, 3…

use std::sync::atomic::{AtomicU64, Ordering};

/// A connection's id (`conn.id` in scripts, `from.conn` in roomcast.v1 events).
pub type ConnId = u64;

/// Bits of an id that count connections within one node.
const COUNTER_BITS: u32 = 40;
/// Node numbers: 0 to 4095.
pub const MAX_NODE: u16 = (1 << 12) - 1;

/// Hands out this node's connection ids.
#[derive(Debug, Default)]
pub struct ConnIds {
    next: AtomicU64,
}

/// The node number a connection id carries.
pub fn node_of(id: ConnId) -> u16 {
    (id >> COUNTER_BITS) as u16
}

impl ConnIds {
    /// A fresh counter.
    pub fn new() -> ConnIds {
        ConnIds::default()
    }

    /// The next id of node `node` (taken modulo 4096; a cluster node learns
    /// its number once it reaches Redis, before it serves): never 0, never
    /// repeated within a node's life.
    pub fn next(&self, node: u16) -> ConnId {
        let n = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        (u64::from(node & MAX_NODE) << COUNTER_BITS) | (n & ((1 << COUNTER_BITS) - 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_carry_their_node_and_stay_exact_in_json() {
        let single = ConnIds::new();
        assert_eq!((single.next(0), single.next(0)), (1, 2));
        let other = ConnIds::new();
        let id = other.next(MAX_NODE);
        assert_eq!(node_of(id), MAX_NODE);
        assert_eq!(
            id >> COUNTER_BITS,
            u64::from(MAX_NODE),
            "the node is in the high bits"
        );
        assert!(id < 1 << 52, "{id}");
        assert_ne!(id, 1);
    }
}
