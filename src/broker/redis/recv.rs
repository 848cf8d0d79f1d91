//! What Redis pushes to a cluster node: room publications and presence
//! changes (delivered in offset order, gaps filled from the stream), node
//! messages, subscription confirmations and disconnections.

use std::sync::Arc;

use redis::{PushInfo, PushKind, Value};

use super::codec::{self, JOIN, PUBLICATION};
use super::ops::{bulk, entries_of};
use super::sub::{Next, Sub, ToHub};
use super::Inner;
use crate::metrics::{BrokerOp, Refused};
use crate::wire::{Change, Publication};

impl Inner {
    /// Something Redis pushed on the subscription connection.
    pub(super) fn on_push(&self, info: PushInfo) {
        match info.kind {
            PushKind::Message | PushKind::SMessage => {
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
            PushKind::Subscribe | PushKind::SSubscribe => {
                if let Some(channel) = info.data.first().and_then(bulk) {
                    let channel = String::from_utf8_lossy(channel);
                    self.subs.confirmed(&channel);
                    if let Some(sub) = self.subs.by_channel(&channel) {
                        // Confirmed again after a reconnect (or a shard's
                        // failover): catch up.
                        if sub.catch_up_due(super::now_ms()) {
                            self.resync(&sub);
                        }
                    }
                }
            }
            // A cluster's Disconnection names none of its nodes: every
            // channel is subscribed again (the shards that are up confirm at
            // once, and their rooms catch up; a shard that is down is
            // retried until its replica has taken over).
            PushKind::Disconnection if self.link.is_cluster() => {
                self.subs.cluster_disconnected();
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
                        let p = codec::publication(&sub.room, offset, body)?;
                        Some((epoch, p.in_epoch(epoch.into())))
                    });
                let Some((epoch, p)) = decoded else {
                    self.error(BrokerOp::Decode);
                    return;
                };
                if p.payload.len() > self.max_message {
                    self.refused(Refused::Size);
                    return;
                }
                match sub.arrived(epoch, Arc::new(p), &ToHub::new(&*self.events, sub)) {
                    Next::Done => {}
                    Next::Fill(last) => self.fill(sub, last),
                    Next::Conflict(p) => self.check(sub, p),
                }
            }
            Some(_) => match codec::read_presence(payload) {
                Some((_, _, member)) if member.conns > self.max_conns => {
                    self.refused(Refused::Presence)
                }
                // This node told its own members of its anonymous members
                // at once (they are new to every node by definition).
                Some((_, origin, member)) if origin == self.node() && member.user.is_none() => {}
                Some((kind, _, member)) => {
                    let change = if kind == JOIN {
                        Change::Join
                    } else {
                        Change::Leave
                    };
                    self.events.presence_change(&sub.room, change, &member);
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

    /// A room's stream entries as publications (see [`entries_of`]).
    pub(super) fn entries(
        &self,
        room: &Arc<str>,
        epoch: &Arc<str>,
        entries: Vec<Value>,
    ) -> Vec<Arc<Publication>> {
        let oversized = self.metrics.broker_refused(Refused::Size);
        entries_of(room, epoch, entries, self.max_message, oversized)
    }

    /// Count a message from Redis that was refused.
    pub(super) fn refused(&self, what: Refused) {
        self.metrics.broker_refused(what).inc();
        tracing::warn!(
            ?what,
            "refused a message from Redis that is not to be believed"
        );
    }

    /// Read `sub`'s stream after `last` and deliver what this node missed
    /// (again, while messages that came during a read are still ahead).
    fn fill(&self, sub: &Arc<Sub>, last: u64) {
        let (sub, events) = (sub.clone(), self.events.clone());
        let mut con = self.link.cmd.clone();
        let (meta, stream) = (self.key(&sub.room, "m"), self.key(&sub.room, "s"));
        let m = self.metrics.clone();
        let max = self.max_message;
        tokio::spawn(async move {
            let mut from = last;
            loop {
                let read: redis::RedisResult<(Option<String>, Vec<Value>)> = redis::pipe()
                    .hget(&meta, "e")
                    .cmd("XRANGE")
                    .arg(&stream)
                    .arg((from + 1).to_string())
                    .arg("+")
                    .query_async(&mut con)
                    .await;
                let read = match read {
                    Ok((Some(epoch), entries)) => {
                        let oversized = m.broker_refused(Refused::Size);
                        let stream: Arc<str> = epoch.as_str().into();
                        let missed = entries_of(&sub.room, &stream, entries, max, oversized);
                        m.broker_recovered.inc_by(missed.len() as u64);
                        Some((epoch, missed))
                    }
                    Ok((None, _)) => None,
                    Err(_) => {
                        m.broker_error(BrokerOp::Fill).inc();
                        None
                    }
                };
                let filled = sub.filled(read, &ToHub::new(&*events, &sub));
                if filled.lost > 0 {
                    tracing::warn!(room = %sub.room, lost = filled.lost, "messages missed across a reconnect are no longer in the stream");
                    m.broker_gaps.inc_by(filled.lost);
                }
                if filled.refused > 0 {
                    tracing::warn!(room = %sub.room, refused = filled.refused, "publications on a room channel that its stream never had: refused");
                    m.broker_refused(Refused::Offset).inc_by(filled.refused);
                }
                match filled.again {
                    Some(last) => from = last,
                    None => return,
                }
            }
        });
    }

    /// Two publications claim one offset of `sub`'s room: the stream says
    /// which is real. The later one is delivered if it is (the earlier one
    /// was forged and is out already), refused if it is not; either way
    /// one forgery is counted.
    fn check(&self, sub: &Arc<Sub>, arrival: Arc<Publication>) {
        let (sub, events) = (sub.clone(), self.events.clone());
        let mut con = self.link.cmd.clone();
        let stream = self.key(&sub.room, "s");
        let m = self.metrics.clone();
        let max = self.max_message;
        tokio::spawn(async move {
            let id = arrival.offset.to_string();
            let read: redis::RedisResult<Vec<Value>> = redis::cmd("XRANGE")
                .arg(&stream)
                .arg(&id)
                .arg(&id)
                .query_async(&mut con)
                .await;
            let real = read.ok().and_then(|entries| {
                let oversized = m.broker_refused(Refused::Size);
                let epoch = arrival.epoch.clone().unwrap_or_else(|| "".into());
                entries_of(&sub.room, &epoch, entries, max, oversized)
                    .into_iter()
                    .next()
            });
            let delivered = sub.checked(&arrival, real, &ToHub::new(&*events, &sub));
            tracing::warn!(
                room = %sub.room,
                offset = arrival.offset,
                delivered,
                "two publications claim one offset: the one its stream does not have is forged"
            );
            m.broker_refused(Refused::Offset).inc();
        });
    }
}
