//! One namespace a socket.io client connected: a session of the core,
//! owned by its driver task, and what the client sent it, queued in order.
//!
//! The engine.io side only queues (`Ns::push`) and wakes the driver; the
//! driver hands the queue to the session as far as the session takes it
//! (a message over the rate limit holds the rest back). While a namespace
//! has more than [`PAUSE_AT`] inputs waiting, its connection is paused:
//! a WebSocket is not read, a polling POST not answered, so TCP (or the
//! client's one POST at a time) slows the sender — nothing is dropped or
//! refused. What one read or one POST brings is queued whole, so the queue
//! stays within a few reads; past [`MAX_INBOUND_BYTES`] (several POSTs at
//! once) the client is flooding and its connection is closed.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};

use serde_json::{json, Value};

use bytes::Bytes;

use super::eio::{self, Protocol, Reason};
use super::EioSocket;
use crate::outbox::Outbox;
use crate::session::Inbound;
use crate::wire::socketio::{self, parse::Packet};
use crate::wire::v1::{self, BadCommand};
use crate::wire::CommandId;

/// Inputs waiting before the connection is paused.
pub(super) const PAUSE_AT: usize = 16;
/// Bytes (as the client sent them) waiting at most.
pub(super) const MAX_INBOUND_BYTES: usize = 1 << 20;
/// Names of the room commands (roomcast.v1's, as events with a callback).
const COMMANDS: [&str; 7] = [
    "join", "leave", "publish", "presence", "history", "nick", "refresh",
];

/// What the client sent a namespace.
pub(super) enum In {
    /// An event (attachments in place).
    Event(Packet),
    /// `emit('message', buffer)`: binary for the session as it is.
    Binary(Vec<u8>, CommandId),
}

/// One connected namespace.
pub(super) struct Ns {
    pub(super) name: String,
    /// What goes into its packets (`/chat,`; nothing for `/`).
    pub(super) prefix: Bytes,
    /// Where the session's output goes (made before the session opens).
    pub(super) outbox: Outbox,
    /// The client left the namespace (no DISCONNECT is sent back).
    client_left: AtomicBool,
    inbound: Mutex<Queue>,
}

#[derive(Default)]
struct Queue {
    queue: VecDeque<(In, usize)>,
    bytes: usize,
}

impl Ns {
    pub(super) fn new(name: &str, outbox: Outbox) -> Ns {
        Ns {
            name: name.to_string(),
            prefix: socketio::namespace_prefix(name),
            outbox,
            client_left: AtomicBool::new(false),
            inbound: Mutex::new(Queue::default()),
        }
    }

    fn inbound(&self) -> MutexGuard<'_, Queue> {
        self.inbound.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queue `input` (`size` bytes as sent) for the session and wake its
    /// driver. Returns how many inputs wait, or `None` if the queue is past
    /// its bound (the client floods).
    pub(super) fn push(&self, input: In, size: usize) -> Option<usize> {
        let waiting = {
            let mut inbound = self.inbound();
            if inbound.bytes + size > MAX_INBOUND_BYTES {
                return None;
            }
            inbound.bytes += size;
            inbound.queue.push_back((input, size));
            inbound.queue.len()
        };
        self.outbox.wake();
        Some(waiting)
    }

    /// The next input and its size, for the driver.
    pub(super) fn pop(&self) -> Option<(In, usize)> {
        let mut inbound = self.inbound();
        let (input, size) = inbound.queue.pop_front()?;
        inbound.bytes -= size;
        if inbound.queue.is_empty() && inbound.queue.capacity() > PAUSE_AT {
            inbound.queue.shrink_to(PAUSE_AT);
        }
        Some((input, size))
    }

    /// Inputs waiting.
    pub(super) fn backlog(&self) -> usize {
        self.inbound().queue.len()
    }

    /// The client left the namespace: its session ends, without a goodbye.
    pub(super) fn left(&self) {
        self.client_left.store(true, Ordering::Release);
        self.outbox.close(
            crate::close::NORMAL,
            "client left the namespace",
            crate::outbox::CloseMode::Now,
        );
    }

    pub(super) fn client_left(&self) -> bool {
        self.client_left.load(Ordering::Acquire)
    }
}

/// Queue a packet of the socket.io protocol itself (a connect's answer, a
/// refusal, a goodbye).
pub(super) fn emit(socket: &EioSocket, packet: String) {
    socket.send_control(eio::Packet::Message(packet.into()));
}

/// Tell the client its connect to `ns` is refused; an Engine.IO 3 client,
/// refused `/`, is left with nothing (its connection closes).
pub(super) fn refuse(socket: &EioSocket, ns: &str, message: &str, status: u16) {
    // socket.io-client 1.x-2.x (socket.io protocol 4, over Engine.IO 3).
    let sio2 = socket.protocol == Protocol::V3;
    emit(socket, socketio::connect_error(sio2, ns, message, status));
    if sio2 && ns == "/" {
        socket.close(Reason::Server);
    }
}

/// Tell the client its connect to `ns` is accepted (with the `pid` it
/// recovers its state by, if it may).
pub(super) fn accept(socket: &EioSocket, ns: &str, id: crate::ids::ConnId, pid: Option<&str>) {
    let sio2 = socket.protocol == Protocol::V3;
    emit(
        socket,
        socketio::connect_answer(sio2, ns, &id.to_string(), pid),
    );
}

/// One input as the session takes it: `message` (text or binary), a room
/// command, or any other event (`size`: its bytes as sent).
pub(super) fn inbound(input: In, size: usize) -> Inbound {
    let p = match input {
        In::Binary(data, id) => return Inbound::Binary { data, id },
        In::Event(p) => p,
    };
    let id: CommandId = p.id.map(Value::from);
    let bad = |id, reason: &str| Inbound::Command {
        command: Err(BadCommand {
            id,
            code: "bad_command",
            reason: reason.into(),
        }),
        size,
    };
    let mut args = match p.data {
        Some(Value::Array(items)) if !items.is_empty() => items,
        _ => return bad(id, "an event is [name, ...args]"),
    };
    let name = match args.remove(0) {
        Value::String(s) => s,
        _ => return bad(id, "an event's name is a string"),
    };
    match name.as_str() {
        "message" => {
            let text = match args.into_iter().next() {
                Some(Value::String(text)) => text,
                Some(other) => other.to_string(),
                None => String::new(),
            };
            Inbound::Text { text, id }
        }
        command if COMMANDS.contains(&command) => Inbound::Command {
            command: v1::from_value(command_value(command, args, id)),
            size,
        },
        _ => Inbound::Event {
            name,
            args,
            id,
            size,
        },
    }
}

/// A room command's arguments as its roomcast.v1 command's fields:
/// `(room)`, `(room, data)` for publish, `(nick)` for nick, `(token)` for
/// refresh, or one object
/// with the command's fields.
fn command_value(name: &str, args: Vec<Value>, id: CommandId) -> Value {
    let mut args = args.into_iter();
    let (first, second, more) = (args.next(), args.next(), args.next().is_some());
    let mut cmd = match (name, first, second, more) {
        (_, Some(Value::Object(fields)), None, false) => Value::Object(fields),
        ("nick", None, None, false) => json!({}),
        ("nick", Some(nick), None, false) => json!({"nick": nick}),
        ("refresh", Some(token), None, false) => json!({"token": token}),
        ("publish", Some(room), Some(data), false) => json!({"room": room, "data": data}),
        (_, Some(room), None, false) => json!({"room": room}),
        _ => json!({"room": null}),
    };
    if let Value::Object(map) = &mut cmd {
        map.insert("type".into(), Value::from(name));
        if let Some(id) = id {
            map.insert("id".into(), id);
        }
    }
    cmd
}
