//! What Redis pushes to a cluster node: room publications and presence
//! changes (delivered in offset order, gaps filled from the stream), node
//! messages, subscription confirmations and disconnections.

use std::sync::Arc;

use redis::{PushInfo, PushKind, Value};

use super::codec::{self, JOIN, PUBLICATION};
use super::ops::{bulk, entries_of};
use super::subs::{Next, Sub};
use super::Inner;
use crate::metrics::BrokerOp;
use crate::wire::Change;

impl Inner {
    /// Something Redis pushed on the subscription connection.
    pub(super) fn on_push(&self, info: PushInfo) {
        match info.kind {
            PushKind::Message => {
                let Some(msg) = redis::Msg::from_push_info(info) else {
                    return;
                };
                let (channel, payload) = (msg.get_channel_name(), msg.get_payload_bytes());
                match self.subs.by_channel(channel) {
                    Some(sub) => self.on_room_message(&sub, payload),
                    None if channel.ends_with(":nodes") || channel.contains(":node:") => {
                        self.on_node_message(payload)
                    }
                    // A room this node just left: its last messages.
                    None => {}
                }
            }
            PushKind::Subscribe => {
                if let Some(channel) = info.data.first().and_then(bulk) {
                    let channel = String::from_utf8_lossy(channel);
                    self.subs.confirmed(&channel);
                    if let Some(sub) = self.subs.by_channel(&channel) {
                        // Confirmed again after a reconnect: catch up.
                        self.resync(&sub);
                    }
                }
            }
            PushKind::Disconnection => {
                self.subs.disconnected();
            }
            _ => {}
        }
    }

    fn on_room_message(&self, sub: &Arc<Sub>, payload: &[u8]) {
        match payload.first() {
            Some(&PUBLICATION) => {
                let decoded =
                    codec::channel_publication(payload).and_then(|(epoch, offset, body)| {
                        Some((epoch, codec::publication(&sub.room, offset, body)?))
                    });
                let Some((epoch, p)) = decoded else {
                    self.error(BrokerOp::Decode);
                    return;
                };
                if let Next::Fill(last) = sub.arrived(epoch, Arc::new(p), |p| self.hub.deliver(p)) {
                    self.fill(sub, last);
                }
            }
            Some(_) => match codec::read_presence(payload) {
                // This node told its own members of its anonymous members
                // at once (they are new to every node by definition).
                Some((_, origin, member)) if origin == self.node() && member.user.is_none() => {}
                Some((kind, _, member)) => {
                    let change = if kind == JOIN {
                        Change::Join
                    } else {
                        Change::Leave
                    };
                    self.hub.deliver_presence(&sub.room, change, &member);
                }
                None => self.error(BrokerOp::Decode),
            },
            None => self.error(BrokerOp::Decode),
        }
    }

    /// Catch a room up with its stream, if it has delivered anything yet.
    pub(super) fn resync(&self, sub: &Arc<Sub>) {
        if let Next::Fill(last) = sub.resync() {
            self.fill(sub, last);
        }
    }

    /// Read `sub`'s stream after `last` and deliver what this node missed.
    fn fill(&self, sub: &Arc<Sub>, last: u64) {
        let (sub, hub) = (sub.clone(), self.hub.clone());
        let mut con = self.link.cmd.clone();
        let (meta, stream) = (self.key(&sub.room, "m"), self.key(&sub.room, "s"));
        let m = self.metrics.clone();
        tokio::spawn(async move {
            let read: redis::RedisResult<(Option<String>, Vec<Value>)> = redis::pipe()
                .hget(&meta, "e")
                .cmd("XRANGE")
                .arg(&stream)
                .arg((last + 1).to_string())
                .arg("+")
                .query_async(&mut con)
                .await;
            let read = match read {
                Ok((Some(epoch), entries)) => {
                    let missed = entries_of(&sub.room, entries);
                    m.broker_recovered.inc_by(missed.len() as u64);
                    Some((epoch, missed))
                }
                Ok((None, _)) => None,
                Err(_) => {
                    m.broker_error(BrokerOp::Fill).inc();
                    None
                }
            };
            let lost = sub.filled(read, |p| hub.deliver(p));
            if lost > 0 {
                tracing::warn!(room = %sub.room, lost, "messages missed across a reconnect are no longer in the stream");
                m.broker_gaps.inc_by(lost);
            }
        });
    }
}
