//! The one way into a session: what every transport decodes its client's
//! input into ([`Inbound`]), and [`Session::handle`], where the rate limit,
//! the hold of a message over it and the received counters apply once, to
//! every kind on every transport.

use bytes::Bytes;
use rhai::{Blob, ImmutableString};
use serde_json::Value;

use super::actions::{Gate, Report};
use super::pending::Held;
use super::{native_actions, Session};
use crate::config::Native;
use crate::payload::Payload;
use crate::script::{Hook, TextArgs};
use crate::wire::v1::{BadCommand, Command};
use crate::wire::CommandId;

/// What a client sent, decoded by its transport.
#[derive(Debug)]
pub(crate) enum Inbound {
    /// A text message for the connection's room (a raw client's frame, a
    /// socket.io `message`); with `id`, the client is answered (an ack with
    /// the offset, or an error).
    Text { text: String, id: CommandId },
    /// A binary message for the connection's room.
    Binary { data: Vec<u8>, id: CommandId },
    /// A named event with arguments (a socket.io emit other than `message`
    /// and the room commands): the script's `on_event(conn, name, args)`.
    /// `size`: its bytes as the client sent them.
    Event {
        name: String,
        args: Vec<Value>,
        id: CommandId,
        size: usize,
    },
    /// A room command (roomcast.v1's, or a socket.io emit of one), or what
    /// failed to be one; `size` as above.
    Command {
        command: Result<Command, BadCommand>,
        size: usize,
    },
    /// A WebSocket ping: the pong is a write the client asks for, so it
    /// counts against the rate like a message (it is not a data message).
    Ping(Bytes),
}

impl Inbound {
    /// Its bytes, for `roomcast_bytes_received_total` (`None`: not a data message).
    fn size(&self) -> Option<usize> {
        match self {
            Inbound::Text { text, .. } => Some(text.len()),
            Inbound::Binary { data, .. } => Some(data.len()),
            Inbound::Event { size, .. } | Inbound::Command { size, .. } => Some(*size),
            Inbound::Ping(_) => None,
        }
    }
}

impl Session {
    /// Take one input from the client. Over the rate it is held (the
    /// session is then not [`ready`](Session::ready): its transport stops
    /// reading) and handled when its wait is over.
    pub(crate) fn handle(&mut self, input: Inbound) {
        self.take(input, false);
    }

    /// `charged`: the connection's bucket let it through already (it waited
    /// for a room's).
    pub(super) fn take(&mut self, input: Inbound, charged: bool) {
        if self.me.outbox.is_closing() {
            return;
        }
        if !charged {
            match self.gate() {
                Gate::Open => {}
                Gate::Wait(wait) => {
                    let held = Held {
                        input,
                        charged: false,
                    };
                    return self.pending.hold(wait, held);
                }
                Gate::Shut => return,
            }
            if let Some(size) = input.size() {
                self.received(size);
            }
        }
        match input {
            Inbound::Text { text, id } => self.text(text, id),
            Inbound::Binary { data, id } => self.binary(data, id),
            Inbound::Event { name, args, id, .. } => self.event(&name, args, id),
            Inbound::Command { command, size } => self.command(command, size),
            Inbound::Ping(pong) => {
                self.me.outbox.queue_own(pong);
            }
        }
    }

    fn text(&mut self, text: String, id: CommandId) {
        let Some(home) = self.rooms.first().cloned() else {
            return;
        };
        let report = match home.native {
            Some(native) => {
                let actions = native_actions(native, &Payload::Text(text.into()));
                let mut report = Report {
                    ran: true,
                    ..Report::default()
                };
                self.apply(Some(&home), actions, &id, &mut report);
                report
            }
            None => self.hook(Some(home.clone()), Hook::Message, TextArgs(&text), &id),
        };
        self.answer_report(report, home.room.name(), &id);
    }

    fn binary(&mut self, data: Vec<u8>, id: CommandId) {
        let Some(home) = self.rooms.first().cloned() else {
            return;
        };
        let report = if home.native == Some(Native::Echo) {
            let actions = native_actions(Native::Echo, &Payload::Binary(data.into()));
            let mut report = Report {
                ran: true,
                ..Report::default()
            };
            self.apply(Some(&home), actions, &id, &mut report);
            report
        } else if home.native.is_some() {
            Report::default()
        } else {
            let args = (self.conn.clone(), Blob::from(data));
            self.hook(Some(home.clone()), Hook::Binary, args, &id)
        };
        if !report.ran {
            self.state.metrics.messages_dropped_unhandled.inc();
        }
        self.answer_report(report, home.room.name(), &id);
    }

    fn event(&mut self, name: &str, args: Vec<Value>, id: CommandId) {
        let Some(home) = self.rooms.first().cloned() else {
            return;
        };
        let args: rhai::Array = args
            .iter()
            .map(|a| match a {
                Value::String(s) => rhai::Dynamic::from(ImmutableString::from(s.as_str())),
                other => rhai::serde::to_dynamic(other).unwrap_or(rhai::Dynamic::UNIT),
            })
            .collect();
        let hook_args = (self.conn.clone(), ImmutableString::from(name), args);
        let report = self.hook(Some(home.clone()), Hook::Event, hook_args, &id);
        if !report.ran && !report.failed {
            self.state.metrics.messages_dropped_unhandled.inc();
        }
        self.answer_report(report, home.room.name(), &id);
    }
}
