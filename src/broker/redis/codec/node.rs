//! Messages between nodes (on a node's channel or the all-nodes one): a
//! direct send, a disconnect and its answer, and the operator view's
//! reports, questions and answers.

use super::{Reader, Writer};
use crate::hub::Target;
use crate::payload::Payload;
use crate::wire::Author;

/// A direct message for a connection or a user, on a node channel.
const DIRECT: u8 = b'd';
/// Close a connection or a user's connections, on a node channel.
const DISCONNECT: u8 = b'x';
/// How many a disconnect closed, back to the asking node.
const CLOSED: u8 = b'c';
/// A node's figures for the operator view, on the all-nodes channel.
const REPORT: u8 = b'r';
/// A question for every node (the operator view's), on the all-nodes channel.
const QUERY: u8 = b'q';
/// A node's answer to a question, back to the asking node.
const ANSWER: u8 = b'a';

/// What one node asks of another.
#[derive(Debug, Clone, PartialEq)]
pub(in crate::broker::redis) enum NodeMessage {
    /// Deliver `payload` from `from` to the target's connections there.
    Direct {
        origin: u16,
        target: Target,
        from: Author,
        payload: Payload,
    },
    /// Close the target's connections there; answer request `request` of
    /// node `origin` with how many.
    Disconnect {
        origin: u16,
        request: u64,
        target: Target,
        code: u16,
        reason: String,
    },
    /// The answer to a disconnect request.
    Closed { request: u64, count: u64 },
    /// Node `origin`'s figures for the operator view (`crate::admin`'s report).
    Report { origin: u16, report: Vec<u8> },
    /// Question `request` of node `origin` (a `NodeQuery`, as JSON).
    Query {
        origin: u16,
        request: u64,
        query: Vec<u8>,
    },
    /// Node `node`'s answer to question `request` (a `NodeAnswer`, as JSON).
    Answer {
        node: u16,
        request: u64,
        answer: Vec<u8>,
    },
}

impl NodeMessage {
    pub(in crate::broker::redis) fn encode(&self) -> Vec<u8> {
        match self {
            NodeMessage::Direct {
                origin,
                target,
                from,
                payload,
            } => {
                let mut w = Writer::new(DIRECT);
                w.u64(u64::from(*origin))
                    .target(target)
                    .author(from)
                    .payload(payload);
                w.0
            }
            NodeMessage::Disconnect {
                origin,
                request,
                target,
                code,
                reason,
            } => {
                let mut w = Writer::new(DISCONNECT);
                w.u64(u64::from(*origin))
                    .u64(*request)
                    .target(target)
                    .u64(u64::from(*code))
                    .bytes(reason.as_bytes());
                w.0
            }
            NodeMessage::Closed { request, count } => {
                let mut w = Writer::new(CLOSED);
                w.u64(*request).u64(*count);
                w.0
            }
            NodeMessage::Report { origin, report } => {
                let mut w = Writer::new(REPORT);
                w.u64(u64::from(*origin)).bytes(report);
                w.0
            }
            NodeMessage::Query {
                origin,
                request,
                query,
            } => {
                let mut w = Writer::new(QUERY);
                w.u64(u64::from(*origin)).u64(*request).bytes(query);
                w.0
            }
            NodeMessage::Answer {
                node,
                request,
                answer,
            } => {
                let mut w = Writer::new(ANSWER);
                w.u64(u64::from(*node)).u64(*request).bytes(answer);
                w.0
            }
        }
    }

    pub(in crate::broker::redis) fn decode(msg: &[u8]) -> Option<NodeMessage> {
        let (&kind, rest) = msg.split_first()?;
        let mut r = Reader::new(rest);
        let m = match kind {
            DIRECT => NodeMessage::Direct {
                origin: u16::try_from(r.u64()?).ok()?,
                target: r.target()?,
                from: r.author()?,
                payload: r.payload()?,
            },
            DISCONNECT => NodeMessage::Disconnect {
                origin: u16::try_from(r.u64()?).ok()?,
                request: r.u64()?,
                target: r.target()?,
                code: u16::try_from(r.u64()?).ok()?,
                reason: r.str()?.to_string(),
            },
            CLOSED => NodeMessage::Closed {
                request: r.u64()?,
                count: r.u64()?,
            },
            REPORT => NodeMessage::Report {
                origin: u16::try_from(r.u64()?).ok()?,
                report: r.bytes()?.to_vec(),
            },
            QUERY => NodeMessage::Query {
                origin: u16::try_from(r.u64()?).ok()?,
                request: r.u64()?,
                query: r.bytes()?.to_vec(),
            },
            ANSWER => NodeMessage::Answer {
                node: u16::try_from(r.u64()?).ok()?,
                request: r.u64()?,
                answer: r.bytes()?.to_vec(),
            },
            _ => return None,
        };
        r.done().then_some(m)
    }
}
