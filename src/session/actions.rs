//! Calling hooks and carrying out the actions they return.

use std::sync::Arc;

use rhai::FuncArgs;
use serde_json::Value;

use super::{deliver_own, rate, Joined, Session};
use crate::config::OnScriptError;
use crate::frame::close_code;
use crate::outbox::CloseMode;
use crate::payload::Payload;
use crate::protocol;
use crate::registry::deliver;
use crate::script::{Action, Hook, Outcome};

/// What a hook call amounted to (for acks).
#[derive(Debug, Default)]
pub(super) struct Report {
    /// The hook ran (it exists and did not fail).
    pub ran: bool,
    /// It failed.
    pub failed: bool,
    /// Offset of the first message it published into the hook's room.
    pub offset: Option<u64>,
    /// It asked for anything at all.
    pub acted: bool,
    /// It called `conn.drop()`.
    pub dropped: bool,
    /// It answered with `conn.error(..)`, or a publish was refused (code).
    pub error: Option<String>,
}

impl Session {
    /// Call `hook` in the context of `at` (the room of the message, join or
    /// leave; `None` for connection-wide hooks of v1 connections) and carry out
    /// its actions. `id` is the command being answered (v1).
    pub(super) fn hook(
        &mut self,
        at: Option<Joined>,
        hook: Hook,
        args: impl FuncArgs,
        id: &Option<Value>,
    ) -> Report {
        let script = match &at {
            Some(j) => j.script.clone(),
            None => self.route.script.clone(),
        };
        let Some(script) = script else {
            return Report::default();
        };
        self.conn
            .set_room(at.as_ref().map(|j| j.room.name()).unwrap_or(""));
        let mut report = Report::default();
        match self
            .shared
            .scripts
            .call(&script, hook, &self.conn, args, &mut self.actions)
        {
            Outcome::Ran => {
                report.ran = true;
                let actions = std::mem::take(&mut self.actions);
                self.apply(at.as_ref(), actions, id, &mut report);
            }
            Outcome::Missing => {}
            Outcome::Failed(err) => {
                report.failed = true;
                tracing::error!(conn = self.id, route = %self.route.name, "script error: {err}");
                if matches!(hook, Hook::Message | Hook::Binary) {
                    self.shared.metrics.messages_dropped_script_error.inc();
                }
                if self.shared.config.scripts.on_error == OnScriptError::Close {
                    self.outbox.close(
                        close_code::INTERNAL_ERROR,
                        "script error",
                        CloseMode::AfterQueued,
                    );
                }
            }
        }
        report
    }

    /// Who this connection is, as events show it.
    pub(super) fn from(&self) -> protocol::From {
        protocol::From {
            conn: Some(self.id),
            nick: self.conn.nick().to_string(),
            user: self.user.as_deref().map(str::to_string),
        }
    }

    /// Carry out `actions` recorded by a hook in room `at`.
    pub(super) fn apply(
        &mut self,
        at: Option<&Joined>,
        mut actions: Vec<Action>,
        id: &Option<Value>,
        report: &mut Report,
    ) {
        let shared = self.shared.clone();
        let metrics = &shared.metrics;
        let max = shared.config.limits.max_message_size;
        report.acted |= !actions.is_empty();
        for action in actions.drain(..) {
            match action {
                Action::Reply(p) => {
                    let frame = if self.v1 {
                        protocol::reply(at.map(|j| j.room.name()), &p, id)
                    } else {
                        p.raw_frame()
                    };
                    deliver_own(&self.outbox, frame, metrics);
                }
                Action::Broadcast(p) | Action::BroadcastOthers(p) if p.len() > max => {
                    self.refuse(report, id, "too_large", "message over the size limit");
                    let _ = p;
                }
                Action::Broadcast(p) => match at {
                    Some(j) => {
                        let offset = j.room.publish(&self.from(), &p, None, metrics);
                        report.offset.get_or_insert(offset);
                    }
                    None => tracing::warn!(conn = self.id, "broadcast outside a room: ignored"),
                },
                Action::BroadcastOthers(p) => match at {
                    Some(j) => {
                        let offset = j.room.publish(&self.from(), &p, Some(self.id), metrics);
                        report.offset.get_or_insert(offset);
                    }
                    None => tracing::warn!(conn = self.id, "broadcast outside a room: ignored"),
                },
                Action::Publish(name, p) => {
                    let target = self.rooms.iter().find(|j| j.room.name() == name).cloned();
                    match target {
                        Some(_) if p.len() > max => {
                            self.refuse(report, id, "too_large", "message over the size limit")
                        }
                        Some(j) => {
                            let offset = j.room.publish(&self.from(), &p, None, metrics);
                            if at.is_some_and(|a| Arc::ptr_eq(&a.room, &j.room)) {
                                report.offset.get_or_insert(offset);
                            }
                        }
                        None => tracing::warn!(
                            conn = self.id,
                            room = %name,
                            "script published to a room the connection is not in: ignored"
                        ),
                    }
                }
                Action::SendTo(nick, p) => {
                    if let Some(j) = at {
                        j.room.send_to_nick(&nick, &self.from(), &p, metrics);
                    }
                }
                Action::SendToConn(conn, p) => {
                    if let Some(c) = shared.registry.connection(conn) {
                        deliver(&c.outbox, direct_frame(c.v1, &self.from(), &p), metrics);
                    }
                }
                Action::SendToUser(user, p) => {
                    let from = self.from();
                    for c in shared.registry.user_connections(&user) {
                        deliver(&c.outbox, direct_frame(c.v1, &from, &p), metrics);
                    }
                }
                Action::Error(code, reason) => self.refuse(report, id, &code, &reason),
                Action::Drop => report.dropped = true,
                Action::Close(code, reason) => {
                    self.outbox.close(code, &reason, CloseMode::AfterQueued);
                }
                Action::SetNick(nick) => {
                    let nick: Arc<str> = nick.as_str().into();
                    for j in &self.rooms {
                        j.room.set_nick(self.id, nick.clone());
                    }
                }
            }
        }
    }

    /// Answer with an error: a v1 `error` event (with the command's id), or
    /// for a raw client a line in the seed chat's JSON shape.
    pub(super) fn refuse(&self, report: &mut Report, id: &Option<Value>, code: &str, reason: &str) {
        report.error.get_or_insert_with(|| code.to_string());
        let frame = if self.v1 {
            protocol::error(code, reason, id)
        } else {
            crate::frame::text(&serde_json::json!({"type": "error", "data": reason}).to_string())
        };
        deliver_own(&self.outbox, frame, &self.shared.metrics);
    }

    /// Apply the rate limit to one incoming message or command: false means
    /// drop it (the client has been told, or is being closed for flooding).
    pub(super) fn within_rate(&mut self, id: &Option<Value>) -> bool {
        let Some(rate) = self.rate.as_mut() else {
            return true;
        };
        let verdict = rate.check();
        let metrics = &self.shared.metrics;
        match verdict {
            rate::Verdict::Allow => true,
            rate::Verdict::Drop(notice) => {
                metrics.messages_dropped_rate_limited.inc();
                // A v1 command with an id always hears back; otherwise the
                // notice goes out at most once a second.
                if self.v1 && (id.is_some() || notice.is_some()) {
                    let frame =
                        protocol::error("rate_limited", "rate limit exceeded: command dropped", id);
                    deliver_own(&self.outbox, frame, metrics);
                } else if let Some(notice) = notice {
                    deliver_own(&self.outbox, notice, metrics);
                }
                false
            }
            rate::Verdict::Abuse => {
                metrics.messages_dropped_rate_limited.inc();
                if self.outbox.close(
                    close_code::POLICY_VIOLATION,
                    "rate limit exceeded",
                    CloseMode::AfterQueued,
                ) {
                    metrics.rate_limit_closes.inc();
                    tracing::debug!(conn = self.id, "closing a client that keeps flooding");
                }
                false
            }
        }
    }

    /// Leave every room (so `on_leave` and `on_close` broadcasts reach the
    /// members who remain), then tell the script. Idempotent.
    pub(super) fn leave(&mut self) {
        if std::mem::replace(&mut self.left, true) {
            return;
        }
        let joined = std::mem::take(&mut self.rooms);
        for j in &joined {
            self.shared.registry.leave(&j.room, self.id);
        }
        for j in &joined {
            self.conn.left(j.room.name());
            let args = (
                self.conn.clone(),
                rhai::ImmutableString::from(j.room.name()),
            );
            self.hook(Some(j.clone()), Hook::Leave, args, &None);
        }
        // A raw connection's `on_close` speaks in its room (the seed's "left").
        let home = if self.v1 {
            None
        } else {
            joined.first().cloned()
        };
        let conn = self.conn.clone();
        self.hook(home, Hook::Close, (conn,), &None);
        self.shared.registry.unregister(self.id);
    }
}

/// A message for one connection: a raw frame, or a v1 `direct` event.
fn direct_frame(v1: bool, from: &protocol::From, p: &Payload) -> bytes::Bytes {
    if v1 {
        protocol::direct(from, p)
    } else {
        p.raw_frame()
    }
}
