//! roomcast.v1 commands: join, leave, publish, presence, history, nick
//! (refresh is in `token.rs`); and
//! entering and leaving rooms, for every kind of client.

use std::sync::Arc;

use rhai::{Dynamic, ImmutableString};
use serde_json::Value;

use super::actions::{Gate, Report};
use super::pending::{Held, PendingJoin};
use super::{native_actions, Inbound, Joined, Session};
use crate::broker::{BrokerError, Recovery, Reply, Resume, HISTORY_DEFAULT, HISTORY_MAX};
use crate::config::Native;
use crate::hub::{Full, Member};
use crate::names::split_room;
use crate::outbox::Item;
use crate::payload::Payload;
use crate::script::{is_valid_nick, Action, Hook, Script, TextArgs};
use crate::wire::v1::{BadCommand, Command};
use crate::wire::{CommandId, Event, Position, Wire};

impl Session {
    /// A room command (the connection's rate limit let it through; `size`
    /// its bytes as sent).
    pub(super) fn command(&mut self, command: Result<Command, BadCommand>, size: usize) {
        // A publish into a room whose policy sets its own rate waits for
        // that room's bucket too.
        if let Ok(Command::Publish { room, .. }) = &command {
            if let Some(policy) = self.joined(room).map(|j| j.room.policy().clone()) {
                match self.room_gate(&policy) {
                    Gate::Open => {}
                    Gate::Wait(wait) => {
                        let held = Held {
                            input: Inbound::Command { command, size },
                            charged: true,
                        };
                        return self.pending.hold(wait, held);
                    }
                    Gate::Shut => return,
                }
            }
        }
        let cmd = match command {
            Ok(cmd) => cmd,
            Err(bad) => {
                self.state.metrics.bad_commands.inc();
                self.error(bad.code, &bad.reason, &bad.id);
                return;
            }
        };
        match cmd {
            Command::Join { room, since, id } => self.join_command(&room, since.as_ref(), &id),
            Command::Leave { room, id } => match self.joined(&room) {
                None => self.not_member(&room, &id),
                Some(j) => {
                    self.exit(&j);
                    self.answer(&Event::Left {
                        room: &room,
                        id: &id,
                    });
                }
            },
            Command::Publish { room, data, id } => self.publish_command(&room, data, &id),
            Command::Presence { room, id } => match self.joined(&room) {
                None => self.not_member(&room, &id),
                Some(j) if !j.room.policy().presence => {
                    self.error("forbidden", "presence is off in this room", &id)
                }
                Some(_) => {
                    let wire = self.me.wire;
                    let reply = self.state.broker.presence(&room).map(move |r| {
                        let members = match r {
                            Ok(m) => m.unwrap_or_default(),
                            Err(e) => return unavailable(wire, &e, &id),
                        };
                        wire.encode(&Event::Presence {
                            room: &room,
                            members: &members,
                            id: &id,
                        })
                    });
                    self.answer_reply(reply);
                }
            },
            Command::History {
                room,
                since,
                limit,
                id,
            } => match self.joined(&room) {
                None => self.not_member(&room, &id),
                Some(_) => {
                    let limit = limit.unwrap_or(HISTORY_DEFAULT).min(HISTORY_MAX);
                    let wire = self.me.wire;
                    let reply = self
                        .state
                        .broker
                        .history(&room, since, limit)
                        .map(move |r| {
                            let history = match r {
                                Ok(h) => h,
                                Err(e) => return unavailable(wire, &e, &id),
                            };
                            let (epoch, messages) = history
                                .map(|h| (h.epoch, h.publications))
                                .unwrap_or_default();
                            wire.encode(&Event::History {
                                room: &room,
                                epoch: &epoch,
                                messages: &messages,
                                id: &id,
                            })
                        });
                    self.answer_reply(reply);
                }
            },
            Command::Refresh { token, id } => self.refresh_command(&token, &id),
            Command::Nick { nick: None, id } => {
                let nick = self.nick.clone();
                self.answer(&Event::Nick {
                    nick: &nick,
                    id: &id,
                })
            }
            Command::Nick {
                nick: Some(nick),
                id,
            } => {
                if is_valid_nick(&nick) {
                    self.set_nick(&nick);
                    self.answer(&Event::Nick {
                        nick: &nick,
                        id: &id,
                    });
                } else {
                    self.error(
                        "bad_nick",
                        "a nickname is 1-64 bytes, no control characters, not \"server\"",
                        &id,
                    );
                }
            }
        }
    }

    pub(super) fn join_command(&mut self, room: &str, since: Option<&Position>, id: &CommandId) {
        let Some((route, _)) = split_room(room) else {
            return self.error(
                "bad_room",
                &format!("{room:?} is not a room name: route/room, each 1-64 of A-Z a-z 0-9 . _ -"),
                id,
            );
        };
        if self.state.route(route).is_none() {
            return self.error("bad_room", &format!("no route named {route:?}"), id);
        }
        if self.joined(room).is_some() {
            return self.error("already_joined", &format!("already in {room}"), id);
        }
        if self.identity.as_ref().is_some_and(|i| !i.may_join(room)) {
            return self.error(
                "room_forbidden",
                &format!("this token may not join {room}"),
                id,
            );
        }
        let cap = self.state.config.limits.max_rooms_per_connection;
        if self.rooms.len() >= cap {
            return self.error(
                "too_many_rooms",
                &format!("a connection may be in at most {cap} rooms"),
                id,
            );
        }
        if self.enter(room, since, id, false).is_err() {
            self.error("room_full", &format!("{room} is full"), id);
        }
    }

    fn publish_command(&mut self, room: &str, data: Value, id: &CommandId) {
        let Some(j) = self.joined(room) else {
            return self.not_member(room, id);
        };
        if !j.room.policy().publish {
            return self.error("forbidden", "clients may not publish in this room", id);
        }
        let report = match j.native {
            Some(native) => {
                let actions = native_actions(native, &Payload::from_json(&data));
                let mut report = Report {
                    ran: true,
                    ..Report::default()
                };
                self.apply(Some(&j), actions, id, &mut report);
                report
            }
            None if j.script.is_some() => {
                let value = match &data {
                    Value::String(s) => Dynamic::from(ImmutableString::from(s.as_str())),
                    other => rhai::serde::to_dynamic(other).unwrap_or(Dynamic::UNIT),
                };
                self.hook(
                    Some(j.clone()),
                    Hook::Message,
                    (self.conn.clone(), value),
                    id,
                )
            }
            // No script: the message goes to the room as it is.
            None => {
                let mut report = Report {
                    ran: true,
                    ..Report::default()
                };
                let actions = vec![Action::Broadcast(Payload::from_json(&data))];
                self.apply(Some(&j), actions, id, &mut report);
                report
            }
        };
        self.answer_report(report, room, id);
    }

    /// Answer a message that asked for it (a v1 publish with an id, a
    /// socket.io emit with a callback) from what its hook did: an ack with
    /// the stored offset, or an error with a code.
    pub(super) fn answer_report(&mut self, report: Report, room: &str, id: &CommandId) {
        let Some(ack_id) = id.clone() else { return };
        if report.failed {
            self.error(
                "script_error",
                "the room's script failed on this message",
                id,
            );
        } else if report.error.is_some() {
            // Already answered with the error.
        } else if let Some(stored) = report.stored {
            let (wire, room) = (self.me.wire, room.to_string());
            let reply = stored.map(move |r| match r {
                Ok(offset) => wire.encode(&Event::Ack {
                    id: &ack_id,
                    room: &room,
                    offset: Some(offset),
                }),
                Err(e) => unavailable(wire, &e, &Some(ack_id)),
            });
            self.answer_reply(reply);
        } else if report.dropped || !report.acted {
            self.error("dropped", "the room's script dropped this message", id);
        } else {
            self.answer(&Event::Ack {
                id: &ack_id,
                room,
                offset: None,
            });
        }
    }

    /// Enter room `name` (joining it here and telling the broker), then run
    /// `on_join`. A join by command waits for the broker to say where the
    /// room's stream is, and the client is told (`joined`) before anything
    /// published after that; the home room a client is in from the start
    /// (`home`) is entered silently and at once.
    pub(super) fn enter(
        &mut self,
        name: &str,
        since: Option<&Position>,
        id: &CommandId,
        home: bool,
    ) -> Result<(), Full> {
        let policy = self.state.policies.for_room(name).clone();
        let follows = !home;
        let member = if follows {
            Member::joining(self.me.clone(), self.nick.clone())
        } else {
            Member::live(self.me.clone(), self.nick.clone())
        };
        let (room, first) = self.state.hub.join(name, member, &policy)?;
        self.state
            .broker
            .joined(room.name_arc(), &self.presence_member(), self.me.id, first);
        let (script, native) = self.handler_for(name);
        let joined = Joined {
            room,
            script,
            native,
            at: None,
        };
        if !follows {
            self.entered(joined, id);
            return Ok(());
        }
        match self.state.broker.recover(joined.room.name_arc(), since) {
            Reply::Ready(recovery) => self.finish_join(joined, recovery, id),
            Reply::Later(fut) => {
                self.pending.join = Some(Box::new(PendingJoin {
                    fut,
                    joined,
                    id: id.clone(),
                }))
            }
        }
        Ok(())
    }

    /// The broker said where the room's stream is: the client is told (with
    /// what it missed, when it resumes) before anything published after that,
    /// then `on_join` runs.
    pub(super) fn finish_join(
        &mut self,
        mut joined: Joined,
        recovery: Result<Recovery, BrokerError>,
        id: &CommandId,
    ) {
        let recovery = match recovery {
            Ok(r) => r,
            Err(e) => {
                self.quit(&joined);
                let bytes = unavailable(self.me.wire, &e, id);
                if let Some(b) = bytes {
                    self.answer_item(b);
                }
                return self.after_join();
            }
        };
        joined.at = Some((recovery.epoch.clone(), recovery.offset));
        let (wire, offsets) = (self.me.wire, self.me.offsets);
        let room = joined.room.name_arc().clone();
        joined.room.go_live(self.me.id, recovery.offset, |me| {
            if let Resume::Failed(reason) = recovery.resume {
                me.tell(&Event::Error {
                    code: "resume_failed",
                    reason,
                    id,
                });
            }
            me.tell(&Event::Joined {
                room: &room,
                epoch: &recovery.epoch,
                offset: recovery.offset,
                resumed: recovery.resume == Resume::Resumed,
                id,
            });
            for p in &recovery.missed {
                if let Some(bytes) = p.encoded_for(wire, offsets, me.deflate.as_deref()) {
                    me.outbox.queue(bytes.clone());
                }
            }
        });
        self.entered(joined, id);
        self.after_join();
    }

    /// In the room: scripts see it, then `on_join` runs.
    fn entered(&mut self, joined: Joined, id: &CommandId) {
        let name = joined.room.name_arc().clone();
        self.rooms.push(joined.clone());
        self.rooms_changed += 1;
        self.conn.joined(&name);
        self.hook(Some(joined), Hook::Join, TextArgs(&name), id);
    }

    /// Leave one room, then run `on_leave`.
    fn exit(&mut self, j: &Joined) {
        self.rooms.retain(|r| !Arc::ptr_eq(&r.room, &j.room));
        self.rooms_changed += 1;
        self.quit(j);
        self.conn.left(j.room.name());
        self.hook(Some(j.clone()), Hook::Leave, TextArgs(j.room.name()), &None);
    }

    fn joined(&self, name: &str) -> Option<Joined> {
        self.rooms.iter().find(|j| j.room.name() == name).cloned()
    }

    /// What handles room `name`'s messages: its policy's script, else its route's.
    fn handler_for(&self, name: &str) -> (Option<Arc<Script>>, Option<Native>) {
        if let Some(script) = self.state.policies.for_room(name).script.as_deref() {
            if let Some(s) = self.state.scripts.script(script) {
                return (Some(s), None);
            }
        }
        let route = split_room(name).and_then(|(route, _)| self.state.route(route));
        match route {
            Some(r) => (r.script.clone(), r.native),
            None => (self.route.script.clone(), self.route.native),
        }
    }

    fn not_member(&mut self, room: &str, id: &CommandId) {
        self.error("not_member", &format!("join {room} first"), id);
    }

    fn error(&mut self, code: &str, reason: &str, id: &CommandId) {
        self.answer(&Event::Error { code, reason, id });
    }

    /// An answer that may come later; answers go out in order.
    fn answer_reply(&mut self, reply: Reply<Option<Item>>) {
        match reply {
            Reply::Ready(Some(bytes)) => self.answer_item(bytes),
            Reply::Ready(None) => {}
            Reply::Later(fut) => self.pending.push(fut),
        }
    }
}

/// The broker could not do it: say so (`unavailable`, or `not_stored` for a
/// message that reached this node's members only; with the command's id).
fn unavailable(wire: Wire, e: &BrokerError, id: &CommandId) -> Option<Item> {
    wire.encode(&Event::Error {
        code: e.code(),
        reason: &e.to_string(),
        id,
    })
}
