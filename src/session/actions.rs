//! Calling hooks and carrying out the actions they return.

use std::sync::Arc;

use super::{rate, Joined, Session};
use crate::broker::{BrokerError, Draft, Reply};
use crate::close;
use crate::config::{OnScriptError, RoomPolicy};
use crate::hub::Target;
use crate::outbox::CloseMode;
use crate::payload::Payload;
use crate::script::{Action, Hook, HookArgs, Outcome, TextArgs};
use crate::wire::{Author, CommandId, Event};

/// What a hook call amounted to (for acks).
/// What the rate limit says about one incoming message.
pub(super) enum Gate {
    /// Handle it now.
    Open,
    /// Hold it back this long (reading stops meanwhile).
    Wait(std::time::Duration),
    /// The connection is being closed for flooding: drop it.
    Shut,
}

#[derive(Default)]
pub(super) struct Report {
    /// The hook ran (it exists and did not fail).
    pub ran: bool,
    /// It failed.
    pub failed: bool,
    /// Where the first message it published into the hook's room was stored.
    pub stored: Option<Reply<Result<u64, BrokerError>>>,
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
        args: impl HookArgs,
        id: &CommandId,
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
            .state
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
                tracing::error!(conn = self.me.id, route = %self.route.name, "script error: {err}");
                if matches!(hook, Hook::Message | Hook::Binary | Hook::Event) {
                    self.state.metrics.messages_dropped_script_error.inc();
                }
                if self.state.config.scripts.on_error == OnScriptError::Close {
                    self.me.outbox.close(
                        close::INTERNAL_ERROR,
                        "script error",
                        CloseMode::AfterQueued,
                    );
                }
            }
        }
        report
    }

    /// Who this connection is, as its messages show it.
    pub(super) fn author(&self) -> Author {
        Author {
            conn: Some(self.me.id),
            nick: self.nick.clone(),
            user: self.me.user.clone(),
        }
    }

    /// Publish into one of the connection's rooms.
    fn publish(
        &self,
        room: &Joined,
        payload: Payload,
        others_only: bool,
    ) -> Reply<Result<u64, BrokerError>> {
        let draft = Draft {
            from: self.author(),
            payload,
            except: others_only.then_some(self.me.id),
        };
        self.state.broker.publish(room.room.name_arc(), draft)
    }

    /// Carry out `actions` recorded by a hook in room `at`.
    pub(super) fn apply(
        &mut self,
        at: Option<&Joined>,
        mut actions: Vec<Action>,
        id: &CommandId,
        report: &mut Report,
    ) {
        let max = self.state.config.limits.max_message_size;
        report.acted |= !actions.is_empty();
        for action in actions.drain(..) {
            match action {
                Action::Reply(payload) => self.answer(&Event::Reply {
                    room: at.map(|j| j.room.name()),
                    payload: &payload,
                    id,
                }),
                Action::Broadcast(p) | Action::BroadcastOthers(p) if p.len() > max => {
                    self.refuse(report, id, "too_large", "message over the size limit");
                }
                Action::Broadcast(p) => match at {
                    Some(j) => {
                        let stored = self.publish(j, p, false);
                        report.stored.get_or_insert(stored);
                    }
                    None => tracing::warn!(conn = self.me.id, "broadcast outside a room: ignored"),
                },
                Action::BroadcastOthers(p) => match at {
                    Some(j) => {
                        let stored = self.publish(j, p, true);
                        report.stored.get_or_insert(stored);
                    }
                    None => tracing::warn!(conn = self.me.id, "broadcast outside a room: ignored"),
                },
                Action::Publish(name, p) => {
                    let target = self.rooms.iter().find(|j| j.room.name() == name).cloned();
                    match target {
                        Some(_) if p.len() > max => {
                            self.refuse(report, id, "too_large", "message over the size limit")
                        }
                        Some(j) => {
                            let stored = self.publish(&j, p, false);
                            if at.is_some_and(|a| Arc::ptr_eq(&a.room, &j.room)) {
                                report.stored.get_or_insert(stored);
                            }
                        }
                        None => tracing::warn!(
                            conn = self.me.id,
                            room = %name,
                            "script published to a room the connection is not in: ignored"
                        ),
                    }
                }
                Action::SendTo(nick, payload) => {
                    if let Some(j) = at {
                        let from = self.author();
                        j.room.send_to_nick(
                            &nick,
                            &Event::Direct {
                                from: &from,
                                payload: &payload,
                            },
                        );
                    }
                }
                Action::SendToConn(conn, payload) => {
                    self.state
                        .broker
                        .send(Target::Conn(conn), self.author(), payload);
                }
                Action::SendToUser(user, payload) => {
                    self.state
                        .broker
                        .send(Target::User(user.into()), self.author(), payload);
                }
                Action::Error(code, reason) => self.refuse(report, id, &code, &reason),
                Action::Drop => report.dropped = true,
                Action::Close(code, reason) => {
                    self.me.outbox.close(code, &reason, CloseMode::AfterQueued);
                }
                // The script's `conn` already shows the new name.
                Action::SetNick(nick) => self.set_nick(&nick),
            }
        }
    }

    /// Answer with an error: a v1 `error` event (with the command's id), or
    /// for a raw client a line in the seed chat's JSON shape.
    pub(super) fn refuse(&mut self, report: &mut Report, id: &CommandId, code: &str, reason: &str) {
        report.error.get_or_insert_with(|| code.to_string());
        self.answer(&Event::Error { code, reason, id });
    }

    /// Apply the connection's rate limit to one incoming message or command.
    pub(super) fn gate(&mut self) -> Gate {
        let verdict = match self.rate.as_mut() {
            None => return Gate::Open,
            Some(rate) => rate.check(),
        };
        self.verdict(verdict)
    }

    /// Apply a room policy's rate limit to a publish into `policy`'s rooms.
    pub(super) fn room_gate(&mut self, policy: &Arc<RoomPolicy>) -> Gate {
        let Some(cfg) = &policy.rate else {
            return Gate::Open;
        };
        let key = Arc::as_ptr(policy) as usize;
        let i = match self.room_rates.iter().position(|(k, _)| *k == key) {
            Some(i) => i,
            None => match rate::Rate::new(cfg) {
                None => return Gate::Open,
                Some(r) => {
                    self.room_rates.push((key, r));
                    self.room_rates.len() - 1
                }
            },
        };
        let verdict = self.room_rates[i].1.check();
        self.verdict(verdict)
    }

    fn verdict(&mut self, verdict: rate::Verdict) -> Gate {
        let metrics = &self.state.metrics;
        match verdict {
            rate::Verdict::Allow => Gate::Open,
            rate::Verdict::Wait(wait) => {
                metrics.rate_limit_waits.inc();
                Gate::Wait(wait)
            }
            rate::Verdict::Abuse => {
                // The message is not handled: the close tells the client.
                metrics.messages_dropped_rate_limited.inc();
                if self.me.outbox.close(
                    close::POLICY_VIOLATION,
                    "rate limit exceeded",
                    CloseMode::AfterQueued,
                ) {
                    metrics.rate_limit_closes.inc();
                    tracing::debug!(conn = self.me.id, "closing a client that keeps flooding");
                }
                Gate::Shut
            }
        }
    }

    /// Leave every room (so `on_leave` and `on_close` broadcasts reach the
    /// members who remain), then tell the script. Idempotent.
    pub(crate) fn leave(&mut self) {
        if std::mem::replace(&mut self.left, true) {
            return;
        }
        let joined = std::mem::take(&mut self.rooms);
        for j in &joined {
            self.quit(j);
        }
        for j in &joined {
            self.conn.left(j.room.name());
            self.hook(Some(j.clone()), Hook::Leave, TextArgs(j.room.name()), &None);
        }
        // A raw connection's `on_close` speaks in its room (the seed's "left");
        // a v1 connection has no room of its own.
        let home = self
            .me
            .wire
            .enters_home_room()
            .then(|| joined.first().cloned())
            .flatten();
        let conn = self.conn.clone();
        self.hook(home, Hook::Close, (conn,), &None);
        self.state.hub.unregister(self.me.id);
    }

    /// Out of one room, on this node and for the broker.
    pub(super) fn quit(&self, j: &Joined) {
        if let Some((member, last)) = self.state.hub.leave(&j.room, self.me.id) {
            self.state
                .broker
                .left(j.room.name_arc(), &member, self.me.id, last);
        }
    }
}
