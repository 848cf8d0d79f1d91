//! Presence across nodes. Each node writes its own members of a room as
//! fields `<node>:<member key>` of the room's presence hash, each with an
//! expiry it pushes back every third of `cluster.presence_ttl`; a node that
//! dies stops doing so and its fields expire with it (their members leave,
//! and the room is told). A count per member key across nodes tells when a
//! user is new to the room, or gone from it, on every node at once.
//!
//! Writes go through the ordered pipe (a leave never overtakes its join);
//! while Redis is unreachable they are skipped, and the next refresh
//! rebuilds them from the live connections.

use std::sync::Arc;

use redis::{Cmd, Value};

use super::codec;
use super::pipe::Job;
use super::{now_ms, Inner};
use crate::broker::BrokerError;
use crate::ids::ConnId;
use crate::metrics::BrokerOp;
use crate::wire::PresenceMember;

fn member_key(member: &PresenceMember, conn: ConnId) -> String {
    match &member.user {
        Some(u) => format!("u{u}"),
        None => format!("c{conn}"),
    }
}

/// EVALSHA of `script` with `keys` and `args`.
pub(super) fn evalsha(script: &redis::Script, keys: &[String], args: Vec<Vec<u8>>) -> Cmd {
    let mut cmd = redis::cmd("EVALSHA");
    cmd.arg(script.get_hash()).arg(keys.len()).arg(keys);
    for a in args {
        cmd.arg(a);
    }
    cmd
}

impl Inner {
    fn presence_keys(&self, room: &str) -> Vec<String> {
        vec![
            self.key(room, "p"),
            self.key(room, "x"),
            self.key(room, "n"),
        ]
    }

    fn ttl_ms(&self) -> u64 {
        self.config.presence_ttl.as_millis() as u64
    }

    /// The common leading arguments of the presence scripts.
    fn presence_args(&self, room: &str) -> Vec<Vec<u8>> {
        let announce = self.policies.for_room(room).presence;
        vec![
            now_ms().to_string().into_bytes(),
            self.channel(room).into_bytes(),
            if announce {
                b"1".to_vec()
            } else {
                b"0".to_vec()
            },
        ]
    }

    /// This node's view of `member` in `room`: its connections here.
    fn here(&self, room: &str, member: &PresenceMember) -> PresenceMember {
        let conns = match &member.user {
            Some(u) => self.events.user_conns(room, u).max(1),
            None => 1,
        };
        PresenceMember {
            conns,
            ..member.clone()
        }
    }

    fn write(&self, room: &str, cmd: Cmd, after: Option<Arc<super::sub::Sub>>) {
        if !self.link.is_up() {
            return;
        }
        let job = Job {
            cmd,
            lane: self.lane(room),
            after,
            reply: None,
            on_fail: None,
        };
        if self.pipe.push(job).is_err() {
            self.error(BrokerOp::Presence);
        }
    }

    /// Connection `conn` of `member` is in `room` here.
    pub(super) fn presence_join(
        &self,
        room: &Arc<str>,
        member: &PresenceMember,
        conn: ConnId,
        sub: Arc<super::sub::Sub>,
    ) {
        let here = self.here(room, member);
        let key = member_key(member, conn);
        let mut args = self.presence_args(room);
        args.extend([
            format!("{}:{key}", self.node()).into_bytes(),
            key.into_bytes(),
            codec::member(self.node(), &here),
            (now_ms() + self.ttl_ms()).to_string().into_bytes(),
            (self.ttl_ms() * 2).to_string().into_bytes(),
        ]);
        let cmd = evalsha(&self.scripts.join, &self.presence_keys(room), args);
        // After the subscription: this node's members hear the announcement too.
        self.write(room, cmd, Some(sub));
    }

    /// Connection `conn` of `member` left `room` here (`last_here`: the
    /// member has no other connection in it here).
    pub(super) fn presence_leave(
        &self,
        room: &Arc<str>,
        member: &PresenceMember,
        conn: ConnId,
        last_here: bool,
    ) {
        if !last_here {
            // Still here with fewer connections: the same join, a new count.
            let here = self.here(room, member);
            if let Some(sub) = self.subs.room(room) {
                return self.presence_join(room, &here, conn, sub);
            }
        }
        let key = member_key(member, conn);
        let mut args = self.presence_args(room);
        args.extend([
            format!("{}:{key}", self.node()).into_bytes(),
            key.into_bytes(),
            codec::member(
                self.node(),
                &PresenceMember {
                    conns: 0,
                    ..member.clone()
                },
            ),
        ]);
        let cmd = evalsha(&self.scripts.leave, &self.presence_keys(room), args);
        self.write(room, cmd, None);
    }

    /// Push back the expiry of every member this node has, in every room
    /// (writing back what Redis lost), and keep those rooms' streams.
    pub(super) fn refresh_presence(&self) {
        let expiry = (now_ms() + self.ttl_ms()).to_string().into_bytes();
        for sub in self.subs.all() {
            let Some(members) = self.events.members_here(&sub.room) else {
                continue;
            };
            let policy = self.policies.for_room(&sub.room);
            let stream_ttl = policy.history_age.as_millis() as u64 + self.ttl_ms();
            let mut args = self.presence_args(&sub.room);
            args.extend([
                expiry.clone(),
                (self.ttl_ms() * 2).to_string().into_bytes(),
                stream_ttl.max(1).to_string().into_bytes(),
            ]);
            for (key, m) in members {
                args.push(format!("{}:{key}", self.node()).into_bytes());
                args.push(key.into_bytes());
                args.push(codec::member(self.node(), &m));
            }
            let mut keys = self.presence_keys(&sub.room);
            keys.push(self.key(&sub.room, "m"));
            keys.push(self.key(&sub.room, "s"));
            self.write(&sub.room, evalsha(&self.scripts.refresh, &keys, args), None);
        }
    }

    /// Who is in `room` on every node: a user once, its connections summed.
    pub(super) async fn presence_of(
        &self,
        room: &str,
    ) -> Result<Option<Vec<PresenceMember>>, BrokerError> {
        let unavailable = |e: String| BrokerError::Unavailable(e);
        if !self.link.is_up() {
            return Err(unavailable("Redis unreachable".into()));
        }
        let mut con = self.link.cmd.clone();
        let args = self.presence_args(room);
        let mut inv = self.scripts.presence.prepare_invoke();
        for k in self.presence_keys(room) {
            inv.key(k);
        }
        for a in args {
            inv.arg(a);
        }
        let values: Vec<Vec<u8>> = match inv.invoke_async(&mut con).await {
            Ok(v) => v,
            Err(e) => {
                self.error(BrokerOp::Presence);
                return Err(unavailable(e.to_string()));
            }
        };
        let mut out: Vec<PresenceMember> = Vec::new();
        for v in values {
            let Some((_, m)) = codec::read_member(&v) else {
                self.error(BrokerOp::Decode);
                continue;
            };
            if m.conns > self.max_conns {
                self.refused(crate::metrics::Refused::Presence);
                continue;
            }
            match out
                .iter_mut()
                .find(|o| o.user.is_some() && o.user == m.user)
            {
                Some(o) => o.conns += m.conns,
                None => out.push(m),
            }
        }
        Ok((!out.is_empty()).then_some(out))
    }
}

/// A script's answer as a list (an empty one for anything else).
pub(super) fn list(v: Value) -> Vec<Value> {
    match v {
        Value::Array(items) | Value::Set(items) => items,
        _ => Vec::new(),
    }
}
