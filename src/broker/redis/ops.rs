//! The [`Broker`] methods of a cluster node (what Redis pushes to it is
//! handled in `recv`).

use std::sync::Arc;

use redis::Value;
use tokio::sync::oneshot;

use super::codec;
use super::pipe::Job;
use super::presence::{evalsha, list};
use super::{now_ms, Inner, RedisBroker};
use crate::broker::{
    Broker, BrokerError, Draft, History, NodeAnswer, NodeQuery, Recovery, Reply, Resume,
};
use crate::hub::Target;
use crate::ids::ConnId;
use crate::metrics::BrokerOp;
use crate::payload::Payload;
use crate::wire::{Author, Change, Position, PresenceMember, Publication};

/// Connection numbers handed out per node while Redis is unreachable start
/// at `node * OUTAGE_SEQ_BASE`, so nicknames stay unique across nodes.
const OUTAGE_SEQ_BASE: u64 = 1_000_000;

fn not_stored() -> BrokerError {
    BrokerError::NotStored("Redis unreachable".into())
}

pub(super) fn bulk(v: &Value) -> Option<&[u8]> {
    match v {
        Value::BulkString(b) => Some(b),
        Value::SimpleString(s) => Some(s.as_bytes()),
        _ => None,
    }
}

fn int(v: &Value) -> Option<u64> {
    match v {
        Value::Int(i) => u64::try_from(*i).ok(),
        other => std::str::from_utf8(bulk(other)?).ok()?.parse().ok(),
    }
}

impl Inner {
    /// Deliver a publication on this node only (Redis cannot be reached).
    fn local_only(&self, room: &Arc<str>, draft: Draft, time: u64) {
        self.metrics.broker_not_stored.inc();
        let p = Arc::new(Publication::new(
            room.clone(),
            0,
            time,
            draft.from,
            draft.payload,
            draft.except,
        ));
        self.events.publication(&p);
    }

    fn publish(self: &Arc<Self>, room: &Arc<str>, draft: Draft) -> Reply<Result<u64, BrokerError>> {
        let time = now_ms();
        if !self.link.is_up() {
            self.error(BrokerOp::Publish);
            self.local_only(room, draft, time);
            return Reply::Ready(Err(not_stored()));
        }
        let policy = self.policies.for_room(room);
        let body = codec::body(time, &draft.from, &draft.payload, draft.except);
        let ttl = (policy.history_age.as_millis() as u64).max(1);
        let cmd = evalsha(
            &self.scripts.publish,
            &[self.key(room, "m"), self.key(room, "s")],
            vec![
                self.channel(room).into_bytes(),
                body,
                policy.history_size.to_string().into_bytes(),
                ttl.to_string().into_bytes(),
                self.new_epoch().into_bytes(),
            ],
        );
        let (tx, rx) = oneshot::channel();
        // Delivered here if Redis fails it, whether or not anyone waits for
        // the answer.
        let fallback = {
            let (inner, room, draft) = (self.clone(), room.clone(), draft.clone());
            Box::new(move || {
                inner.error(BrokerOp::Publish);
                inner.local_only(&room, draft, time);
            })
        };
        let job = Job {
            cmd,
            lane: self.lane(room),
            after: self.subs.room(room).filter(|s| !s.is_ready()),
            reply: Some(tx),
            on_fail: Some(fallback),
        };
        if let Err(job) = self.pipe.push(job) {
            tracing::warn!("too many writes waiting for Redis: publishing on this node only");
            drop(job);
            self.error(BrokerOp::Publish);
            self.local_only(room, draft, time);
            return Reply::Ready(Err(not_stored()));
        }
        let decode = self.metrics.broker_error(BrokerOp::Decode).clone();
        // The publisher is a member here: its ack comes after its own
        // message, as on a single node (where delivery is immediate).
        let (sub, wait) = (self.subs.room(room), self.config.timeout);
        Reply::Later(Box::pin(async move {
            let v = match rx.await {
                Ok(Ok(v)) => list(v),
                _ => return Err(not_stored()),
            };
            // {offset, epoch}, borrowed from the reply: nothing copied.
            let epoch = v
                .get(1)
                .and_then(bulk)
                .and_then(|b| std::str::from_utf8(b).ok());
            let (Some(offset), Some(epoch)) = (v.first().and_then(int), epoch) else {
                decode.inc();
                return Err(not_stored());
            };
            if let Some(sub) = sub {
                sub.delivered_through(epoch, offset, wait).await;
            }
            Ok(offset)
        }))
    }

    /// A position of a node-local epoch, while Redis is unreachable.
    fn outage_recovery(&self, since: Option<&Position>) -> Recovery {
        Recovery {
            epoch: self.local_epoch().into(),
            offset: 0,
            resume: match since {
                None => Resume::NotAsked,
                Some(_) => Resume::Failed("broker unavailable"),
            },
            missed: Vec::new(),
        }
    }

    async fn recover(
        self: Arc<Self>,
        room: Arc<str>,
        since: Option<Position>,
    ) -> Result<Recovery, BrokerError> {
        if !self.link.is_up() {
            return Ok(self.outage_recovery(since.as_ref()));
        }
        if let Some(sub) = self.subs.room(&room) {
            // Nothing published after the position may be missed.
            if !sub.wait_ready(self.config.timeout).await {
                return Ok(self.outage_recovery(since.as_ref()));
            }
        }
        let policy = self.policies.for_room(&room).clone();
        let ttl = (policy.history_age.as_millis() as u64).max(1);
        let mut inv = self.scripts.recover.prepare_invoke();
        inv.key(self.key(&room, "m"))
            .key(self.key(&room, "s"))
            .arg(self.new_epoch())
            .arg(ttl)
            .arg(since.as_ref().map(|s| s.epoch.as_str()).unwrap_or(""))
            .arg(since.as_ref().map_or(0, |s| s.offset));
        let mut con = self.link.cmd.clone();
        let v: Value = match inv.invoke_async(&mut con).await {
            Ok(v) => v,
            Err(_) => {
                self.error(BrokerOp::Recover);
                return Ok(self.outage_recovery(since.as_ref()));
            }
        };
        let mut parts = list(v).into_iter();
        let epoch: Option<String> = parts
            .next()
            .as_ref()
            .and_then(bulk)
            .map(|b| String::from_utf8_lossy(b).into_owned());
        let (Some(epoch), Some(offset)) = (epoch, parts.next().as_ref().and_then(int)) else {
            self.error(BrokerOp::Decode);
            return Err(BrokerError::Unavailable(
                "unexpected answer from Redis".into(),
            ));
        };
        let entries = parts.next().map(list).unwrap_or_default();
        let max_age = policy.history_age.as_millis() as u64;
        let now = now_ms();
        let stream: Arc<str> = epoch.as_str().into();
        let mut missed = self.entries(&room, &stream, entries);
        missed.retain(|p| now.saturating_sub(p.time) <= max_age);
        let resume = match &since {
            None => Resume::NotAsked,
            Some(s) if s.epoch != epoch => Resume::Failed("epoch changed"),
            Some(s) if s.offset > offset => Resume::Failed("position is ahead of the room"),
            Some(s) if s.offset == offset => Resume::Resumed,
            Some(s) if missed.first().map(|p| p.offset) == Some(s.offset + 1) => Resume::Resumed,
            Some(_) => Resume::Failed("position too old"),
        };
        if resume != Resume::Resumed {
            missed.clear();
        }
        if let Some(sub) = self.subs.room(&room) {
            sub.seed(&epoch, offset);
        }
        Ok(Recovery {
            epoch: epoch.into(),
            offset,
            resume,
            missed,
        })
    }

    async fn history(
        self: Arc<Self>,
        room: String,
        since: Option<u64>,
        limit: usize,
    ) -> Result<Option<History>, BrokerError> {
        if !self.link.is_up() {
            return Err(BrokerError::Unavailable("Redis unreachable".into()));
        }
        let mut inv = self.scripts.history.prepare_invoke();
        inv.key(self.key(&room, "m"))
            .key(self.key(&room, "s"))
            .arg(since.map(|s| (s + 1).to_string()).unwrap_or_default())
            .arg(limit);
        let mut con = self.link.cmd.clone();
        let v: Value = inv.invoke_async(&mut con).await.map_err(|e| {
            self.error(BrokerOp::History);
            BrokerError::Unavailable(e.to_string())
        })?;
        let mut parts = list(v).into_iter();
        let Some(epoch) = parts
            .next()
            .as_ref()
            .and_then(bulk)
            .map(|b| String::from_utf8_lossy(b).into_owned())
        else {
            return Ok(None);
        };
        let room: Arc<str> = room.into();
        let stream: Arc<str> = epoch.as_str().into();
        let entries = parts.next().map(list).unwrap_or_default();
        let mut publications = self.entries(&room, &stream, entries);
        publications.reverse();
        let max_age = self.policies.for_room(&room).history_age.as_millis() as u64;
        let now = now_ms();
        publications.retain(|p| now.saturating_sub(p.time) <= max_age);
        Ok(Some(History {
            epoch: epoch.into(),
            publications,
        }))
    }

    async fn next_seq(self: Arc<Self>, route: String) -> Result<u64, BrokerError> {
        if self.link.is_up() {
            let mut con = self.link.cmd.clone();
            let r: redis::RedisResult<u64> = redis::cmd("INCR")
                .arg(format!("{}:seq:{route}", self.config.prefix))
                .query_async(&mut con)
                .await;
            match r {
                Ok(n) => {
                    let mut max = self.seq_max.entry(route.into()).or_insert(0);
                    *max = (*max).max(n);
                    return Ok(n);
                }
                Err(_) => self.error(BrokerOp::Seq),
            }
        }
        let mut n = self.local_seqs.entry(route.into()).or_insert(0);
        *n += 1;
        Ok(u64::from(self.node()) * OUTAGE_SEQ_BASE + *n)
    }
}

impl Inner {
    /// Raise every route's shared `userN` counter to at least what this node
    /// handed out (Redis may have come back empty): nicknames stay unique.
    pub(super) async fn raise_seqs(&self) {
        let script = redis::Script::new(
            r"
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
if n < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], ARGV[1])
end
return 0
",
        );
        let seen: Vec<(String, u64)> = self
            .seq_max
            .iter()
            .map(|e| (e.key().to_string(), *e.value()))
            .collect();
        let mut con = self.link.cmd.clone();
        for (route, n) in seen {
            let key = format!("{}:seq:{route}", self.config.prefix);
            let r: redis::RedisResult<i64> = script.key(key).arg(n).invoke_async(&mut con).await;
            if r.is_err() {
                self.error(BrokerOp::Seq);
            }
        }
    }
}

/// Stream entries (`[id, [field, body, …]]`, the id `<offset>-1`) as
/// publications of `room`; anything malformed is skipped.
/// Stream entries as publications of `room`; what does not decode is left
/// out, and so is a payload over `max` bytes (counted on `oversized`: the
/// stream is read back as it was written, and a bad writer's 5 MB entry is
/// no more a message than it would be on the channel).
pub(super) fn entries_of(
    room: &Arc<str>,
    epoch: &Arc<str>,
    entries: Vec<Value>,
    max: usize,
    oversized: &prometheus::IntCounter,
) -> Vec<Arc<Publication>> {
    entries
        .into_iter()
        .filter_map(|e| {
            let mut e = list(e).into_iter();
            let id = e.next()?;
            let offset: u64 = std::str::from_utf8(bulk(&id)?)
                .ok()?
                .split('-')
                .next()?
                .parse()
                .ok()?;
            let fields = list(e.next()?);
            let body = bulk(fields.get(1)?)?;
            let p = codec::publication(room, offset, body)?.in_epoch(epoch.clone());
            if p.payload.len() > max {
                oversized.inc();
                return None;
            }
            Some(Arc::new(p))
        })
        .collect()
}

impl Broker for RedisBroker {
    fn node(&self) -> u16 {
        self.inner.node()
    }

    fn ready(&self) -> Reply<()> {
        Reply::Later(Box::pin(self.inner.clone().ready()))
    }

    fn startup_error(&self) -> Option<String> {
        self.inner.fatal.get().cloned()
    }

    fn next_seq(&self, route: &str) -> Reply<Result<u64, BrokerError>> {
        Reply::Later(Box::pin(self.inner.clone().next_seq(route.to_string())))
    }

    fn publish(&self, room: &Arc<str>, draft: Draft) -> Reply<Result<u64, BrokerError>> {
        self.inner.publish(room, draft)
    }

    fn joined(&self, room: &Arc<str>, member: &PresenceMember, conn: ConnId, first_here: bool) {
        let inner = &self.inner;
        let sub = inner.subs.join(room, || inner.channel(room).into());
        // A connection without a user is new to every node: its own node's
        // members hear of it at once (the newcomer before its `joined`, as
        // on one node); other nodes through the room's channel.
        if first_here && member.user.is_none() && inner.policies.for_room(room).presence {
            inner.events.presence_change(room, Change::Join, member);
        }
        // A member's count of connections changes with every join: always write.
        inner.presence_join(room, member, conn, sub);
    }

    fn left(&self, room: &Arc<str>, member: &PresenceMember, conn: ConnId, last_here: bool) {
        let inner = &self.inner;
        if last_here && member.user.is_none() && inner.policies.for_room(room).presence {
            inner.events.presence_change(room, Change::Leave, member);
        }
        self.inner.presence_leave(room, member, conn, last_here);
        self.inner.subs.leave(room);
    }

    fn recover(
        &self,
        room: &Arc<str>,
        since: Option<&Position>,
    ) -> Reply<Result<Recovery, BrokerError>> {
        Reply::Later(Box::pin(
            self.inner.clone().recover(room.clone(), since.cloned()),
        ))
    }

    fn history(
        &self,
        room: &str,
        since: Option<u64>,
        limit: usize,
    ) -> Reply<Result<Option<History>, BrokerError>> {
        Reply::Later(Box::pin(self.inner.clone().history(
            room.to_string(),
            since,
            limit,
        )))
    }

    fn presence(&self, room: &str) -> Reply<Result<Option<Vec<PresenceMember>>, BrokerError>> {
        let (inner, room) = (self.inner.clone(), room.to_string());
        Reply::Later(Box::pin(async move { inner.presence_of(&room).await }))
    }

    fn send(&self, target: Target, from: Author, payload: Payload) {
        self.inner.send(target, from, payload);
    }

    fn disconnect(
        &self,
        target: Target,
        code: u16,
        reason: &str,
    ) -> Reply<Result<usize, BrokerError>> {
        let (inner, reason) = (self.inner.clone(), reason.to_string());
        let (tx, rx) = oneshot::channel();
        // Under way whether or not the answer is awaited.
        tokio::spawn(async move {
            let _ = tx.send(inner.disconnect(target, code, reason).await);
        });
        Reply::Later(Box::pin(async move {
            rx.await
                .unwrap_or_else(|_| Err(BrokerError::Unavailable("broker stopped".into())))
        }))
    }

    fn keep_session(&self, key: &str, record: Vec<u8>, ttl: std::time::Duration) -> Reply<bool> {
        let inner = self.inner.clone();
        let key = key.to_string();
        Reply::Later(Box::pin(async move {
            inner.keep_session(key, record, ttl).await
        }))
    }

    fn take_session(&self, key: &str) -> Reply<Result<Option<Vec<u8>>, BrokerError>> {
        Reply::Later(Box::pin(self.inner.clone().take_session(key.to_string())))
    }

    fn report(&self, report: Vec<u8>) {
        self.inner.report(report);
    }

    fn ask_nodes(&self, query: &NodeQuery) -> Reply<Result<Vec<(u16, NodeAnswer)>, BrokerError>> {
        Reply::Later(Box::pin(self.inner.clone().ask_nodes(query.clone())))
    }
}
