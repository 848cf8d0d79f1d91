//! The `roomcast.v1` wire: JSON commands from clients and the JSON events
//! sent back (docs/protocol.md).

use bytes::Bytes;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{frame, Author, Change, CommandId, Event, Position, PresenceMember, Publication};

/// The subprotocol name clients offer in `Sec-WebSocket-Protocol`.
pub const SUBPROTOCOL: &str = "roomcast.v1";

/// Does a `Sec-WebSocket-Protocol` request header offer roomcast.v1?
pub fn offers_v1(header: Option<&str>) -> bool {
    header.is_some_and(|h| h.split(',').any(|p| p.trim() == SUBPROTOCOL))
}

/// A client command.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Command {
    /// Enter a room (optionally resuming after `since`).
    Join {
        /// Room name (`route/room`).
        room: String,
        /// Resume position.
        #[serde(default)]
        since: Option<Position>,
        /// Client's correlation id.
        #[serde(default)]
        id: CommandId,
    },
    /// Leave a room.
    Leave {
        /// Room name.
        room: String,
        /// Client's correlation id.
        #[serde(default)]
        id: CommandId,
    },
    /// Send a message to a room.
    Publish {
        /// Room name.
        room: String,
        /// Any JSON value.
        data: Value,
        /// Client's correlation id (asks for an ack).
        #[serde(default)]
        id: CommandId,
    },
    /// Who is in a room.
    Presence {
        /// Room name.
        room: String,
        /// Client's correlation id.
        #[serde(default)]
        id: CommandId,
    },
    /// A room's recent messages.
    History {
        /// Room name.
        room: String,
        /// Only messages after this offset.
        #[serde(default)]
        since: Option<u64>,
        /// At most this many (the latest).
        #[serde(default)]
        limit: Option<usize>,
        /// Client's correlation id.
        #[serde(default)]
        id: CommandId,
    },
    /// Replace the connection's token with a fresh one (same `sub`): its
    /// expiry moves without the connection being cut.
    Refresh {
        /// The new token (a JWT).
        token: String,
        /// Client's correlation id.
        #[serde(default)]
        id: CommandId,
    },
    /// Change nickname, or (without `nick`) ask for the current one.
    Nick {
        /// The new nickname.
        #[serde(default)]
        nick: Option<String>,
        /// Client's correlation id.
        #[serde(default)]
        id: CommandId,
    },
}

/// A command that could not be understood: its id (if any could be read),
/// an error code and a reason.
#[derive(Debug, Clone, PartialEq)]
pub struct BadCommand {
    /// The command's `id`, if it had a readable one.
    pub id: CommandId,
    /// `bad_json` or `bad_command`.
    pub code: &'static str,
    /// Human-readable reason.
    pub reason: String,
}

/// Parse one command frame.
pub fn parse(text: &str) -> Result<Command, BadCommand> {
    let value: Value = serde_json::from_str(text).map_err(|e| BadCommand {
        id: None,
        code: "bad_json",
        reason: format!("not JSON: {e}"),
    })?;
    from_value(value)
}

/// A command from its JSON value (a parsed frame, or a socket.io emit's
/// arguments as the command's fields).
pub fn from_value(value: Value) -> Result<Command, BadCommand> {
    let Value::Object(map) = &value else {
        return Err(BadCommand {
            id: None,
            code: "bad_json",
            reason: "a command is a JSON object".into(),
        });
    };
    let id = map
        .get("id")
        .filter(|v| v.is_string() || v.is_number())
        .cloned();
    serde_json::from_value(value).map_err(|e| BadCommand {
        id,
        code: "bad_command",
        reason: e.to_string(),
    })
}

fn author(a: &Author) -> Value {
    json!({ "conn": a.conn, "nick": &*a.nick, "user": a.user.as_deref() })
}

fn member(m: &PresenceMember) -> Value {
    json!({"user": m.user.as_deref(), "nick": &*m.nick, "conns": m.conns})
}

fn with_id(mut v: Value, id: Option<&Value>) -> Value {
    if let (Some(id), Value::Object(map)) = (id, &mut v) {
        map.insert("id".into(), id.clone());
    }
    v
}

fn frame_of(v: &Value) -> Bytes {
    frame::text(&v.to_string())
}

/// The `message` event of a publication, as JSON text. Built by hand around
/// the payload's JSON so a large `data` is not parsed and re-serialised.
pub fn message_json(p: &Publication) -> String {
    let data = p.payload.json();
    let mut s = String::with_capacity(96 + data.len());
    s.push_str(r#"{"type":"message","room":"#);
    s.push_str(&Value::from(&*p.room).to_string());
    // Offset 0: delivered on this node only, not stored (a cluster node
    // that cannot reach Redis); it is no position to resume from.
    if p.offset == 0 {
        s.push_str(&format!(r#","offset":null,"time":{},"from":"#, p.time));
    } else {
        s.push_str(&format!(
            r#","offset":{},"time":{},"from":"#,
            p.offset, p.time
        ));
    }
    s.push_str(&author(&p.from).to_string());
    s.push_str(r#","data":"#);
    s.push_str(&data);
    s.push('}');
    s
}

/// The same, as a value (for the HTTP API).
pub fn message_value(p: &Publication) -> Value {
    json!({
        "type": "message",
        "room": &*p.room,
        "offset": (p.offset > 0).then_some(p.offset),
        "time": p.time,
        "from": author(&p.from),
        "data": p.payload.value(),
    })
}

/// The `message` event frame of a publication.
pub fn message(p: &Publication) -> Bytes {
    frame::text(&message_json(p))
}

/// The v1 frame for `event`.
pub fn encode(event: &Event<'_>) -> Option<Bytes> {
    let frame = match event {
        // Built by hand: a history can be large.
        Event::History {
            room,
            epoch,
            messages,
            id,
        } => history(room, epoch, messages, id),
        _ => frame_of(&with_id(event_value(event), event_id(event))),
    };
    Some(frame)
}

/// The command an event answers, if any.
fn event_id<'a>(event: &'a Event<'_>) -> Option<&'a Value> {
    match event {
        Event::Reply { id, .. }
        | Event::Joined { id, .. }
        | Event::Left { id, .. }
        | Event::Presence { id, .. }
        | Event::History { id, .. }
        | Event::Nick { id, .. }
        | Event::Refreshed { id, .. }
        | Event::Error { id, .. } => id.as_ref(),
        Event::Ack { id, .. } => Some(id),
        Event::Direct { .. } | Event::PresenceChange { .. } | Event::Reset { .. } => None,
    }
}

/// The v1 JSON object of `event`, without the command id (socket.io acks
/// carry the same objects).
pub fn event_value(event: &Event<'_>) -> Value {
    match event {
        Event::Reply { room, payload, .. } => {
            json!({"type": "reply", "room": room, "data": payload.value()})
        }
        Event::Direct { from, payload } => {
            json!({"type": "direct", "from": author(from), "data": payload.value()})
        }
        Event::Joined {
            room,
            epoch,
            offset,
            resumed,
            ..
        } => {
            json!({"type": "joined", "room": room, "epoch": epoch, "offset": offset, "resumed": resumed})
        }
        Event::Left { room, .. } => json!({"type": "left", "room": room}),
        Event::Presence { room, members, .. } => {
            let members: Vec<Value> = members.iter().map(member).collect();
            json!({"type": "presence", "room": room, "members": members})
        }
        Event::PresenceChange {
            change,
            room,
            member: m,
        } => {
            let kind = match change {
                Change::Join => "join",
                Change::Leave => "leave",
            };
            json!({"type": kind, "room": room, "member": member(m)})
        }
        Event::History {
            room,
            epoch,
            messages,
            ..
        } => {
            let messages: Vec<Value> = messages.iter().map(|p| message_value(p)).collect();
            json!({"type": "history", "room": room, "epoch": epoch, "messages": messages})
        }
        Event::Ack { room, offset, .. } => {
            json!({"type": "ack", "room": room, "offset": offset})
        }
        Event::Nick { nick, .. } => json!({"type": "nick", "nick": nick}),
        Event::Reset { room, epoch } => {
            json!({"type": "reset", "room": room, "epoch": epoch, "offset": 0})
        }
        Event::Refreshed { expires_at, .. } => {
            json!({"type": "refreshed", "exp": expires_at})
        }
        Event::Error { code, reason, .. } => {
            json!({"type": "error", "code": code, "reason": reason})
        }
    }
}

/// `history`: each message is its `message` event.
fn history(
    room: &str,
    epoch: &str,
    messages: &[std::sync::Arc<Publication>],
    id: &CommandId,
) -> Bytes {
    let mut s = String::from(r#"{"type":"history","room":"#);
    s.push_str(&Value::from(room).to_string());
    s.push_str(r#","epoch":"#);
    s.push_str(&Value::from(epoch).to_string());
    s.push_str(r#","messages":["#);
    for (i, m) in messages.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&message_json(m));
    }
    s.push(']');
    if let Some(id) = id {
        s.push_str(r#","id":"#);
        s.push_str(&id.to_string());
    }
    s.push('}');
    frame::text(&s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payload::Payload;
    use std::sync::Arc;

    fn decode(frame: &Bytes) -> Value {
        serde_json::from_slice(frame::payload(frame)).unwrap()
    }

    #[test]
    fn commands_parse_with_ids_and_errors_keep_them() {
        assert_eq!(
            parse(r#"{"type":"join","room":"chat/a","since":{"epoch":"e","offset":3},"id":1}"#),
            Ok(Command::Join {
                room: "chat/a".into(),
                since: Some(Position {
                    epoch: "e".into(),
                    offset: 3
                }),
                id: Some(json!(1)),
            })
        );
        let e = parse(r#"{"type":"publish","room":"chat/a","id":"x"}"#).unwrap_err();
        assert_eq!((e.code, e.id), ("bad_command", Some(json!("x"))));
        assert!(e.reason.contains("data"), "{}", e.reason);
        assert_eq!(parse("[1]").unwrap_err().code, "bad_json");
        assert_eq!(parse("{").unwrap_err().code, "bad_json");
        assert_eq!(
            parse(r#"{"type":"dance"}"#).unwrap_err().code,
            "bad_command"
        );
    }

    #[test]
    fn events_are_json_objects() {
        let from = Author {
            conn: Some(7),
            nick: "ann".into(),
            user: None,
        };
        let p = Publication::new(
            "chat/a".into(),
            3,
            99,
            from.clone(),
            Payload::Text("hi".into()),
            None,
        );
        let expected = json!({"type":"message","room":"chat/a","offset":3,"time":99,
                   "from":{"conn":7,"nick":"ann","user":null},"data":"hi"});
        assert_eq!(decode(&message(&p)), expected);
        assert_eq!(message_value(&p), expected);
        let stored = Arc::new(Publication::new(
            "chat/a".into(),
            1,
            5,
            from,
            Payload::Json("{\"k\":1}".into()),
            None,
        ));
        let h = decode(&history("chat/a", "e1", &[stored], &Some(json!(2))));
        assert_eq!(h["messages"][0]["data"], json!({"k": 1}));
        assert_eq!(h["id"], json!(2));
        let none = None;
        let e = encode(&Event::Error {
            code: "bad_room",
            reason: "x",
            id: &none,
        })
        .unwrap();
        assert_eq!(decode(&e)["code"], "bad_room");
    }

    #[test]
    fn subprotocol_offer() {
        assert!(offers_v1(Some("roomcast.v1")));
        assert!(offers_v1(Some("chat, roomcast.v1")));
        assert!(!offers_v1(Some("roomcast.v2")));
        assert!(!offers_v1(None));
    }

    proptest::proptest! {
        /// Whatever a client sends as a command, it is understood or refused
        /// with a code and a reason (never a panic).
        #[test]
        fn any_text_is_a_command_or_a_bad_command(text in "\\PC{0,200}") {
            match parse(&text) {
                Ok(_) => {}
                Err(bad) => {
                    proptest::prop_assert!(!bad.code.is_empty());
                    proptest::prop_assert!(!bad.reason.is_empty());
                }
            }
        }

        /// Arbitrary JSON objects with a known `type` never panic either,
        /// and one that is refused keeps its id for the answer.
        #[test]
        fn json_objects_with_a_known_type_never_panic(
            kind in proptest::sample::select(vec!["join", "leave", "publish", "presence", "history", "nick", "other"]),
            room in proptest::option::of("[ -~]{0,70}"),
            id in proptest::option::of(proptest::num::i64::ANY),
            extra in proptest::option::of("[a-z]{1,8}"),
        ) {
            let mut v = json!({"type": kind});
            if let Some(room) = room { v["room"] = json!(room); }
            if let Some(id) = id { v["id"] = json!(id); }
            // An unknown key (not one of the keys set above).
            if let Some(extra) = extra.filter(|k| !["type", "room", "id"].contains(&k.as_str())) {
                v[extra] = json!(1);
            }
            if let Err(bad) = parse(&v.to_string()) {
                proptest::prop_assert_eq!(bad.code, "bad_command");
                proptest::prop_assert_eq!(bad.id, id.map(|id| json!(id)));
            }
        }

        /// A publish built from its parts parses back to them.
        #[test]
        fn publishes_round_trip(
            room in "[a-z]{1,10}/[a-z0-9]{1,10}",
            data in "[ -~]{0,100}",
            id in proptest::num::i64::ANY,
        ) {
            let text = json!({"type": "publish", "room": room, "data": data, "id": id}).to_string();
            proptest::prop_assert_eq!(
                parse(&text).unwrap(),
                Command::Publish { room, data: json!(data), id: Some(json!(id)) }
            );
        }
    }
}
