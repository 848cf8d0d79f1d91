//! What goes on the wire to each kind of client, and the publications that
//! rooms carry.
//!
//! A [`Publication`] is wire-neutral: what history stores and what fan-out
//! delivers. It is encoded **once per [`Wire`]**, the first time a member on
//! that wire needs it, and those bytes are shared by every member on that
//! wire. Everything else a client is sent (replies, acks, errors, presence…)
//! is an [`Event`], encoded for the one wire of its recipient. A new kind of
//! client is a new `Wire` variant and one encoder file.

pub mod frame;
pub mod raw;
pub mod socketio;
pub mod v1;

use std::sync::{Arc, OnceLock};

use serde_json::Value;

use crate::deflate::Deflate;
use crate::ids::ConnId;
use crate::outbox::Item;
use crate::payload::Payload;

/// The kinds of client, by what they expect on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Wire {
    /// A plain WebSocket client: payloads as they are (the seed's pages).
    Raw,
    /// A `roomcast.v1` client: JSON events.
    V1,
    /// A socket.io client: events and acks (packets for the default namespace).
    SocketIo,
}

impl Wire {
    /// Number of variants: one encoding slot each.
    pub const COUNT: usize = 3;

    /// Every wire, in slot order.
    pub const ALL: [Wire; Wire::COUNT] = [Wire::Raw, Wire::V1, Wire::SocketIo];

    fn slot(self) -> usize {
        self as usize
    }

    /// Its name where people read it: `raw`, `v1`, `socketio`.
    pub fn name(self) -> &'static str {
        match self {
            Wire::Raw => "raw",
            Wire::V1 => "v1",
            Wire::SocketIo => "socketio",
        }
    }

    /// Whether clients on this wire are in the room their URL (or socket.io
    /// namespace) names from the moment they connect, as the seed's pages
    /// are, rather than joining rooms by command only.
    pub fn enters_home_room(self) -> bool {
        matches!(self, Wire::Raw | Wire::SocketIo)
    }

    /// This wire's bytes for `event`, or `None` when its clients are not
    /// told of such events (a raw client hears nothing of presence).
    pub fn encode(self, event: &Event<'_>) -> Option<Item> {
        match self {
            Wire::Raw => raw::encode(event).map(Item::new),
            Wire::V1 => v1::encode(event).map(Item::new),
            Wire::SocketIo => socketio::encode(event),
        }
    }

    fn encode_publication(self, p: &Publication) -> Option<Item> {
        match self {
            Wire::Raw => Some(Item::new(raw::payload(&p.payload))),
            Wire::V1 => Some(Item::new(v1::message(p))),
            Wire::SocketIo => Some(socketio::publication(p)),
        }
    }
}

/// A command's correlation id, echoed in its answers (roomcast.v1 `id`).
pub type CommandId = Option<Value>;

/// Who sent a message, as events show it.
#[derive(Debug, Clone, PartialEq)]
pub struct Author {
    /// Connection id, or `None` for the server (HTTP API).
    pub conn: Option<ConnId>,
    /// Nickname.
    pub nick: Arc<str>,
    /// User id from the connection's token.
    pub user: Option<Arc<str>>,
}

impl Author {
    /// The server itself (messages published through the HTTP API).
    pub fn server() -> Author {
        Author {
            conn: None,
            nick: crate::script::RESERVED_NICK.into(),
            user: None,
        }
    }
}

/// A message in a room: what history keeps and fan-out carries.
#[derive(Debug)]
pub struct Publication {
    /// Full room name (`route/room`).
    pub room: Arc<str>,
    /// Its place in the room's stream (1, 2, … within an epoch).
    pub offset: u64,
    /// When it was published, in ms since the Unix epoch.
    pub time: u64,
    /// Who published it.
    pub from: Author,
    /// What it says.
    pub payload: Payload,
    /// A connection it is not delivered to (`broadcast_others`).
    pub except: Option<ConnId>,
    /// The epoch of the stream it is in (`None`: not stored, offset 0).
    pub epoch: Option<Arc<str>>,
    /// Its bytes for each wire, made when first needed; the last slot is
    /// socket.io's with the event's offset (clients that recover).
    encoded: [OnceLock<Option<Item>>; Wire::COUNT + 1],
    /// Its raw and v1 frames compressed (permessage-deflate, no context
    /// takeover), made when first needed: once for every member that
    /// negotiated it.
    deflated: [OnceLock<Item>; 2],
}

impl Publication {
    /// A publication at `offset` of `room`.
    pub fn new(
        room: Arc<str>,
        offset: u64,
        time: u64,
        from: Author,
        payload: Payload,
        except: Option<ConnId>,
    ) -> Publication {
        Publication {
            room,
            offset,
            time,
            from,
            payload,
            except,
            epoch: None,
            encoded: Default::default(),
            deflated: Default::default(),
        }
    }

    /// The same, stored in stream `epoch`.
    pub fn in_epoch(mut self, epoch: Arc<str>) -> Publication {
        self.epoch = Some(epoch);
        self
    }

    /// Its bytes for `wire` (encoded on the first call, shared after it), or
    /// `None` if clients on that wire do not see room messages.
    pub fn encoded(&self, wire: Wire) -> Option<&Item> {
        self.encoded[wire.slot()]
            .get_or_init(|| wire.encode_publication(self))
            .as_ref()
    }

    /// Its bytes for a member on `wire`; `offsets`: a socket.io member
    /// whose events carry their offset (its client recovers its state);
    /// `deflate`: a WebSocket member that takes it compressed.
    pub fn encoded_for(
        &self,
        wire: Wire,
        offsets: bool,
        deflate: Option<&Deflate>,
    ) -> Option<&Item> {
        if let (Some(deflate), Wire::Raw | Wire::V1) = (deflate, wire) {
            let plain = self.encoded(wire)?;
            return Some(
                self.deflated[wire.slot()]
                    .get_or_init(|| deflate.frame(plain, crate::deflate::MAX_WINDOW_BITS)),
            );
        }
        if offsets && wire == Wire::SocketIo {
            self.encoded[Wire::COUNT]
                .get_or_init(|| Some(socketio::publication_with_offset(self)))
                .as_ref()
        } else {
            self.encoded(wire)
        }
    }
}

/// A place in a room's stream: its epoch and an offset within it (what a
/// client remembers to resume after a reconnect).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Position {
    /// The epoch the offset belongs to.
    pub epoch: String,
    /// The last offset seen.
    pub offset: u64,
}

/// One member of a room as presence shows it: a user with all its
/// connections there, or a connection without a user.
#[derive(Debug, Clone, PartialEq)]
pub struct PresenceMember {
    /// User id (`None` for connections without a token).
    pub user: Option<Arc<str>>,
    /// Nickname.
    pub nick: Arc<str>,
    /// The user's connections in the room.
    pub conns: usize,
}

/// A presence change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// A user's first connection entered the room.
    Join,
    /// A user's last connection left it.
    Leave,
}

/// Something sent to one connection (or, for presence changes, to each member
/// of a room, encoded once per wire).
#[derive(Debug)]
pub enum Event<'a> {
    /// The script answered the client's own message.
    Reply {
        /// The room of the message, if any.
        room: Option<&'a str>,
        /// The answer.
        payload: &'a Payload,
        /// The command answered.
        id: &'a CommandId,
    },
    /// A message for this connection alone.
    Direct {
        /// Its sender.
        from: &'a Author,
        /// What it says.
        payload: &'a Payload,
    },
    /// A join succeeded: where the room's stream is.
    Joined {
        /// The room.
        room: &'a str,
        /// Its epoch.
        epoch: &'a str,
        /// Its latest offset.
        offset: u64,
        /// Whether the missed messages follow.
        resumed: bool,
        /// The command answered.
        id: &'a CommandId,
    },
    /// A leave succeeded.
    Left {
        /// The room.
        room: &'a str,
        /// The command answered.
        id: &'a CommandId,
    },
    /// Who is in a room.
    Presence {
        /// The room.
        room: &'a str,
        /// Its members.
        members: &'a [PresenceMember],
        /// The command answered.
        id: &'a CommandId,
    },
    /// Someone came or went.
    PresenceChange {
        /// Which way.
        change: Change,
        /// The room.
        room: &'a str,
        /// Who.
        member: &'a PresenceMember,
    },
    /// A room's recent messages.
    History {
        /// The room.
        room: &'a str,
        /// Its epoch.
        epoch: &'a str,
        /// Oldest first.
        messages: &'a [Arc<Publication>],
        /// The command answered.
        id: &'a CommandId,
    },
    /// A publish was stored at `offset` (or handled without a room message).
    Ack {
        /// The publish's id.
        id: &'a Value,
        /// Its room.
        room: &'a str,
        /// Where it was stored.
        offset: Option<u64>,
    },
    /// The connection's nickname.
    Nick {
        /// The nickname.
        nick: &'a str,
        /// The command answered.
        id: &'a CommandId,
    },
    /// A room's history was lost (its stream began again): positions of
    /// the old epoch are gone, the next message is offset 1 of `epoch`.
    Reset {
        /// The room.
        room: &'a str,
        /// Its new epoch.
        epoch: &'a str,
    },
    /// The connection's token was replaced (a `refresh` command).
    Refreshed {
        /// The new token's `exp` (seconds since the Unix epoch), if it has one.
        expires_at: Option<u64>,
        /// The command answered.
        id: &'a CommandId,
    },
    /// A command or message was refused.
    Error {
        /// A stable code.
        code: &'a str,
        /// Why, for people.
        reason: &'a str,
        /// The command answered.
        id: &'a CommandId,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_publication_is_encoded_once_per_wire_and_shared() {
        let p = Publication::new(
            "chat/a".into(),
            3,
            99,
            Author::server(),
            Payload::Text("hi".into()),
            None,
        );
        let raw = p.encoded(Wire::Raw).unwrap().clone();
        assert_eq!(raw, frame::text("hi").into());
        assert_eq!(
            p.encoded(Wire::Raw).unwrap().as_ptr(),
            raw.as_ptr(),
            "the same bytes, not a second encoding"
        );
        let event: Value =
            serde_json::from_slice(frame::payload(p.encoded(Wire::V1).unwrap())).unwrap();
        assert_eq!(event["offset"], 3);
    }
}
