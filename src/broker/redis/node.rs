//! Messages between nodes: a direct send to a connection or a user, and a
//! disconnect with its answers.
//!
//! Every node listens on its own channel (`{prefix}:node:<n>`; a
//! connection id names its node) and on one channel of all nodes
//! (`{prefix}:nodes`, for users, whose connections may be anywhere). A
//! disconnect counts what every node closed: PUBLISH says how many nodes
//! heard the request, and the asking node waits for that many answers (at
//! most `cluster.timeout`).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::Notify;

use super::codec::NodeMessage;
use super::Inner;
use crate::broker::BrokerError;
use crate::hub::Target;
use crate::ids::node_of;
use crate::metrics::{BrokerOp, Refused};
use crate::payload::Payload;
use crate::wire::Author;

pub(super) fn node_channel(prefix: &str, node: u16) -> String {
    format!("{prefix}:node:{node}")
}

pub(super) fn all_channel(prefix: &str) -> String {
    format!("{prefix}:nodes")
}

/// What a question to other nodes fails with when Redis cannot be reached.
pub(super) fn unreachable() -> BrokerError {
    BrokerError::Unavailable("other nodes cannot be reached".into())
}

/// The largest operator-view report believed (a node's is a few KB).
const REPORT_MAX: usize = 64 * 1024;

/// A disconnect waiting for answers.
pub(super) struct Ask {
    closed: AtomicU64,
    answers: AtomicUsize,
    done: Notify,
}

impl Inner {
    /// A message on this node's channel or every node's.
    pub(super) fn on_node_message(&self, payload: &[u8]) {
        let Some(msg) = NodeMessage::decode(payload) else {
            self.error(BrokerOp::Decode);
            return;
        };
        match msg {
            NodeMessage::Direct {
                origin,
                target,
                from,
                payload,
            } => {
                if payload.len() > self.max_message {
                    self.refused(Refused::Size);
                } else if origin != self.node() {
                    self.events.direct(&target, &from, &payload);
                }
            }
            NodeMessage::Disconnect {
                origin,
                request,
                target,
                code,
                reason,
            } => {
                if origin == self.node() {
                    return;
                }
                // Only what a server may close with (never 1005, 1006 or
                // 65535), and a reason that fits a Close frame.
                if !crate::close::is_script_code(code) || reason.len() > 123 {
                    self.refused(Refused::CloseCode);
                    return;
                }
                let count = self.events.disconnect(&target, code, &reason) as u64;
                let answer = NodeMessage::Closed { request, count }.encode();
                self.publish_to(node_channel(&self.config.prefix, origin), answer);
            }
            NodeMessage::Closed { request, count } => {
                if let Some(ask) = self.asks.get(&request) {
                    ask.closed.fetch_add(count, Ordering::AcqRel);
                    ask.answers.fetch_add(1, Ordering::AcqRel);
                    ask.done.notify_one();
                }
            }
            NodeMessage::Report { origin, report } => {
                if origin == self.node() {
                    return;
                }
                if report.len() > REPORT_MAX {
                    self.refused(Refused::Report);
                    return;
                }
                self.events.node_report(origin, report);
            }
            NodeMessage::Query {
                origin,
                request,
                query,
            } => self.on_query(origin, request, &query),
            NodeMessage::Answer {
                node,
                request,
                answer,
            } => self.on_answer(node, request, &answer),
        }
    }

    /// Tell every node this node's operator-view figures, not waiting.
    pub(super) fn report(&self, report: Vec<u8>) {
        if !self.link.is_up() {
            return;
        }
        let msg = NodeMessage::Report {
            origin: self.node(),
            report,
        };
        self.publish_to(all_channel(&self.config.prefix), msg.encode());
    }

    /// Publish `msg` on `channel`, not waiting for it.
    pub(super) fn publish_to(&self, channel: String, msg: Vec<u8>) {
        let mut con = self.link.cmd.clone();
        let publish = self.link.publish_command();
        let errors = self.metrics.broker_error(BrokerOp::Node).clone();
        tokio::spawn(async move {
            let r: redis::RedisResult<i64> = redis::cmd(publish)
                .arg(channel)
                .arg(msg)
                .query_async(&mut con)
                .await;
            if r.is_err() {
                errors.inc();
            }
        });
    }

    /// A direct message for a connection or a user, wherever they are.
    pub(super) fn send(&self, target: Target, from: Author, payload: Payload) {
        let channel = match &target {
            Target::Conn(id) if node_of(*id) == self.node() => {
                self.events.direct(&target, &from, &payload);
                return;
            }
            Target::Conn(id) => node_channel(&self.config.prefix, node_of(*id)),
            Target::User(_) => {
                self.events.direct(&target, &from, &payload);
                all_channel(&self.config.prefix)
            }
        };
        if !self.link.is_up() {
            self.error(BrokerOp::Node);
            return;
        }
        let msg = NodeMessage::Direct {
            origin: self.node(),
            target,
            from,
            payload,
        };
        self.publish_to(channel, msg.encode());
    }

    /// Close a connection or a user's connections, wherever they are; how many.
    pub(super) async fn disconnect(
        self: Arc<Self>,
        target: Target,
        code: u16,
        reason: String,
    ) -> Result<usize, BrokerError> {
        let (channel, closed) = match &target {
            Target::Conn(id) if node_of(*id) == self.node() => {
                return Ok(self.events.disconnect(&target, code, &reason));
            }
            Target::Conn(id) => (node_channel(&self.config.prefix, node_of(*id)), 0),
            Target::User(_) => (
                all_channel(&self.config.prefix),
                self.events.disconnect(&target, code, &reason),
            ),
        };
        if !self.link.is_up() {
            return Err(unreachable());
        }
        let request = self.next_ask.fetch_add(1, Ordering::Relaxed);
        let ask = Arc::new(Ask {
            closed: AtomicU64::new(0),
            answers: AtomicUsize::new(0),
            done: Notify::new(),
        });
        self.asks.insert(request, ask.clone());
        let msg = NodeMessage::Disconnect {
            origin: self.node(),
            request,
            target: target.clone(),
            code,
            reason,
        };
        let heard = self
            .publish_and_wait(
                &channel,
                msg.encode(),
                matches!(target, Target::User(_)),
                &ask.done,
                || ask.answers.load(Ordering::Acquire),
            )
            .await;
        let result = heard.map(|()| closed + ask.closed.load(Ordering::Acquire) as usize);
        self.asks.remove(&request);
        result
    }

    /// Publish `msg` on `channel`, then wait (at most `cluster.timeout`)
    /// until `answered()` reaches the number of nodes that heard it, less
    /// this one when it hears the channel too (`hears_itself`: the
    /// all-nodes channel). Unavailable when Redis could not be told.
    pub(super) async fn publish_and_wait(
        &self,
        channel: &str,
        msg: Vec<u8>,
        hears_itself: bool,
        done: &Notify,
        answered: impl Fn() -> usize,
    ) -> Result<(), BrokerError> {
        let mut con = self.link.cmd.clone();
        // In a cluster the node channels are sharded ones too: SPUBLISH
        // counts the subscribers of the channel's shard, which are all of
        // them (PUBLISH would count only one cluster node's).
        let heard: redis::RedisResult<usize> = redis::cmd(self.link.publish_command())
            .arg(channel)
            .arg(msg)
            .query_async(&mut con)
            .await;
        let Ok(heard) = heard else {
            self.error(BrokerOp::Node);
            return Err(unreachable());
        };
        let expected = if hears_itself {
            heard.saturating_sub(1)
        } else {
            heard
        };
        let wait = async {
            while answered() < expected {
                done.notified().await;
            }
        };
        if tokio::time::timeout(self.config.timeout, wait)
            .await
            .is_err()
        {
            tracing::warn!(
                expected,
                answered = answered(),
                "not every node answered in time"
            );
        }
        Ok(())
    }
}
