//! What a client's messages mean: raw text and binary for the route's room,
//! or roomcast.v1 commands.

use rhai::{Blob, Dynamic, ImmutableString};
use serde_json::Value;

use super::actions::Report;
use super::{deliver_own, Joined, Session};
use crate::config::Native;
use crate::payload::Payload;
use crate::protocol::{self, Command, Since};
use crate::names::split_room;
use crate::registry::{JoinError, Member};
use crate::script::{Action, Hook};

/// Messages a `history` command returns at most.
const HISTORY_LIMIT: usize = 1000;

/// Why a room could not be entered.
pub(super) enum EnterError {
    Full,
}

impl Session {
    /// A raw text message: the route's room, its script (or native handler).
    pub(super) fn raw_text(&mut self, text: String) {
        let Some(home) = self.rooms.first().cloned() else {
            return;
        };
        match home.native {
            Some(native) => {
                let actions = native_actions(native, &Payload::Text(text.into()));
                self.apply(Some(&home), actions, &None, &mut Report::default());
            }
            None => {
                let args = (self.conn.clone(), ImmutableString::from(text));
                self.hook(Some(home), Hook::Message, args, &None);
            }
        }
    }

    /// A raw binary message.
    pub(super) fn raw_binary(&mut self, data: Vec<u8>) {
        let Some(home) = self.rooms.first().cloned() else {
            return;
        };
        if home.native == Some(Native::Echo) {
            let actions = native_actions(Native::Echo, &Payload::Binary(data.into()));
            self.apply(Some(&home), actions, &None, &mut Report::default());
        } else if home.native.is_some()
            || !self
                .hook(
                    Some(home),
                    Hook::Binary,
                    (self.conn.clone(), Blob::from(data)),
                    &None,
                )
                .ran
        {
            self.shared.metrics.messages_dropped_unhandled.inc();
        }
    }

    /// One roomcast.v1 command frame.
    pub(super) fn command(&mut self, text: &str) {
        let cmd = match protocol::parse(text) {
            Ok(cmd) => cmd,
            Err(bad) => {
                self.shared.metrics.bad_commands.inc();
                if self.within_rate(&bad.id) {
                    self.send(protocol::error(bad.code, &bad.reason, &bad.id));
                }
                return;
            }
        };
        let id = match &cmd {
            Command::Join { id, .. }
            | Command::Leave { id, .. }
            | Command::Publish { id, .. }
            | Command::Presence { id, .. }
            | Command::History { id, .. }
            | Command::Nick { id, .. } => id.clone(),
        };
        if !self.within_rate(&id) {
            return;
        }
        match cmd {
            Command::Join { room, since, id } => self.join_command(&room, since.as_ref(), &id),
            Command::Leave { room, id } => match self.joined(&room) {
                None => self.not_member(&room, &id),
                Some(j) => {
                    self.exit(&j);
                    self.send(protocol::left(&room, &id));
                }
            },
            Command::Publish { room, data, id } => self.publish_command(&room, data, &id),
            Command::Presence { room, id } => match self.joined(&room) {
                None => self.not_member(&room, &id),
                Some(j) if !j.room.policy().presence => self.send(protocol::error(
                    "forbidden",
                    "presence is off in this room",
                    &id,
                )),
                Some(j) => self.send(protocol::presence(&room, &j.room.presence(), &id)),
            },
            Command::History {
                room,
                since,
                limit,
                id,
            } => match self.joined(&room) {
                None => self.not_member(&room, &id),
                Some(j) => {
                    let limit = limit.unwrap_or(50).min(HISTORY_LIMIT);
                    let messages = j.room.history(since, limit);
                    self.send(protocol::history(&room, j.room.epoch(), &messages, &id));
                }
            },
            Command::Nick { nick: None, id } => self.send(protocol::nick(&self.conn.nick(), &id)),
            Command::Nick {
                nick: Some(nick),
                id,
            } => {
                if crate::script::is_valid_nick(&nick) {
                    self.conn.rename(&nick);
                    let shared: std::sync::Arc<str> = nick.as_str().into();
                    for j in &self.rooms {
                        j.room.set_nick(self.id, shared.clone());
                    }
                    self.send(protocol::nick(&nick, &id));
                } else {
                    self.send(protocol::error(
                        "bad_nick",
                        "a nickname is 1-64 bytes, no control characters",
                        &id,
                    ));
                }
            }
        }
    }

    fn join_command(&mut self, room: &str, since: Option<&Since>, id: &Option<Value>) {
        let error = |code: &str, reason: String| protocol::error(code, &reason, id);
        let Some((route, _)) = split_room(room) else {
            return self.send(error(
                "bad_room",
                format!("{room:?} is not a room name: route/room, each 1-64 of A-Z a-z 0-9 . _ -"),
            ));
        };
        if self.shared.route(route).is_none() {
            return self.send(error("bad_room", format!("no route named {route:?}")));
        }
        if self.joined(room).is_some() {
            return self.send(error("already_joined", format!("already in {room}")));
        }
        if self.identity.as_ref().is_some_and(|i| !i.may_join(room)) {
            return self.send(error(
                "room_forbidden",
                format!("this token may not join {room}"),
            ));
        }
        let cap = self.shared.config.limits.max_rooms_per_connection;
        if self.rooms.len() >= cap {
            return self.send(error(
                "too_many_rooms",
                format!("a connection may be in at most {cap} rooms"),
            ));
        }
        if self.enter(room, since, id).is_err() {
            self.send(error("room_full", format!("{room} is full")));
        }
    }

    fn publish_command(&mut self, room: &str, data: Value, id: &Option<Value>) {
        let Some(j) = self.joined(room) else {
            return self.not_member(room, id);
        };
        if !j.room.policy().publish {
            return self.send(protocol::error(
                "forbidden",
                "clients may not publish in this room",
                id,
            ));
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
        let Some(id) = id else { return };
        let answer = if report.failed {
            Some(protocol::error(
                "script_error",
                "the room's script failed on this message",
                &Some(id.clone()),
            ))
        } else if report.error.is_some() {
            None // already answered with the error
        } else if let Some(offset) = report.offset {
            Some(protocol::ack(id, room, Some(offset)))
        } else if report.dropped || !report.acted {
            Some(protocol::error(
                "dropped",
                "the room's script dropped this message",
                &Some(id.clone()),
            ))
        } else {
            Some(protocol::ack(id, room, None))
        };
        if let Some(frame) = answer {
            self.send(frame);
        }
    }

    /// Enter room `name` (joining it in the registry), then run `on_join`.
    pub(super) fn enter(
        &mut self,
        name: &str,
        since: Option<&Since>,
        id: &Option<Value>,
    ) -> Result<(), EnterError> {
        let member = Member {
            id: self.id,
            nick: self.conn.nick().as_str().into(),
            user: self.user.clone(),
            outbox: self.outbox.clone(),
            v1: self.v1,
        };
        let (room, _resume) = self
            .shared
            .registry
            .join(name, member, since, id)
            .map_err(|JoinError::Full| EnterError::Full)?;
        let (script, native) = self.handler_for(name);
        let joined = Joined {
            room,
            script,
            native,
        };
        self.rooms.push(joined.clone());
        self.conn.joined(name);
        let args = (self.conn.clone(), ImmutableString::from(name));
        self.hook(Some(joined), Hook::Join, args, id);
        Ok(())
    }

    /// Leave one room, then run `on_leave`.
    fn exit(&mut self, j: &Joined) {
        self.rooms
            .retain(|r| !std::sync::Arc::ptr_eq(&r.room, &j.room));
        self.shared.registry.leave(&j.room, self.id);
        self.conn.left(j.room.name());
        let args = (self.conn.clone(), ImmutableString::from(j.room.name()));
        self.hook(Some(j.clone()), Hook::Leave, args, &None);
    }

    fn joined(&self, name: &str) -> Option<Joined> {
        self.rooms.iter().find(|j| j.room.name() == name).cloned()
    }

    /// What handles room `name`'s messages: its policy's script, else its route's.
    fn handler_for(
        &self,
        name: &str,
    ) -> (
        Option<std::sync::Arc<crate::script::Script>>,
        Option<Native>,
    ) {
        if let Some(script) = self.shared.registry.policy(name).script.as_deref() {
            if let Some(s) = self.shared.scripts.script(script) {
                return (Some(s), None);
            }
        }
        let route = split_room(name).and_then(|(route, _)| self.shared.route(route));
        match route {
            Some(r) => (r.script.clone(), r.native),
            None => (self.route.script.clone(), self.route.native),
        }
    }

    fn not_member(&self, room: &str, id: &Option<Value>) {
        self.send(protocol::error(
            "not_member",
            &format!("join {room} first"),
            id,
        ));
    }

    fn send(&self, frame: bytes::Bytes) {
        deliver_own(&self.outbox, frame, &self.shared.metrics);
    }
}

/// A native handler's answer, as the actions a script would have recorded.
fn native_actions(native: Native, p: &Payload) -> Vec<Action> {
    let reply = match (native, p) {
        (Native::Shout, Payload::Text(t)) => {
            let mut s = t.to_uppercase();
            s.push_str("!!!");
            Payload::Text(s.into())
        }
        _ => p.clone(),
    };
    vec![Action::Reply(reply)]
}
