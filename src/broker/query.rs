//! Questions one node asks every other node, for the operator view: who is
//! in a room there, which rooms there start with a prefix. Answers are
//! bounded pages (at most [`PAGE_MAX`] entries), never a node's whole
//! state.

use serde::{Deserialize, Serialize};

/// Most entries a node puts in one answer, whatever it was asked.
pub const PAGE_MAX: usize = 200;

/// A question for every node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "q", rename_all = "snake_case")]
pub enum NodeQuery {
    /// `room`'s members there, `limit` of them from the `from`th.
    Members {
        room: String,
        from: usize,
        limit: usize,
    },
    /// Rooms there whose name starts with `prefix`, at most `limit`, by name.
    Rooms { prefix: String, limit: usize },
}

/// One member, as an answer lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemberEntry {
    /// Its connection (what a disconnect names).
    pub conn: u64,
    /// `raw`, `v1` or `socketio`.
    pub wire: String,
    pub nick: String,
    pub user: Option<String>,
}

/// A node's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "a", rename_all = "snake_case")]
pub enum NodeAnswer {
    /// The room's members there: how many, and the page asked for.
    Members {
        total: usize,
        members: Vec<MemberEntry>,
    },
    /// Matching rooms there with their member counts; `more` if the limit cut some.
    Rooms {
        rooms: Vec<(String, usize)>,
        more: bool,
    },
}

impl NodeAnswer {
    /// Whether an answer from another node is within the bounds any node
    /// keeps to (a page of at most [`PAGE_MAX`]).
    pub fn within_bounds(&self) -> bool {
        match self {
            NodeAnswer::Members { members, .. } => members.len() <= PAGE_MAX,
            NodeAnswer::Rooms { rooms, .. } => rooms.len() <= PAGE_MAX,
        }
    }
}
