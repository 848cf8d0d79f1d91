//! The `roomcast.v1` subprotocol: JSON commands from clients and the events
//! sent back (see docs/protocol.md). Raw clients never see any of this.

use bytes::Bytes;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::frame;
use crate::payload::Payload;

/// The subprotocol name clients offer in `Sec-WebSocket-Protocol`.
pub const SUBPROTOCOL: &str = "roomcast.v1";

/// Does a `Sec-WebSocket-Protocol` request header offer roomcast.v1?
pub fn offers_v1(header: Option<&str>) -> bool {
    header.is_some_and(|h| h.split(',').any(|p| p.trim() == SUBPROTOCOL))
}

/// A resume position: the room's epoch and the last offset the client saw.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Since {
    /// Epoch of the room's history the offset belongs to.
    pub epoch: String,
    /// Last offset seen.
    pub offset: u64,
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
        since: Option<Since>,
        /// Client's correlation id.
        #[serde(default)]
        id: Option<Value>,
    },
    /// Leave a room.
    Leave {
        /// Room name.
        room: String,
        /// Client's correlation id.
        #[serde(default)]
        id: Option<Value>,
    },
    /// Send a message to a room.
    Publish {
        /// Room name.
        room: String,
        /// Any JSON value.
        data: Value,
        /// Client's correlation id (asks for an ack).
        #[serde(default)]
        id: Option<Value>,
    },
    /// Who is in a room.
    Presence {
        /// Room name.
        room: String,
        /// Client's correlation id.
        #[serde(default)]
        id: Option<Value>,
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
        id: Option<Value>,
    },
    /// Change nickname, or (without `nick`) ask for the current one.
    Nick {
        /// The new nickname.
        #[serde(default)]
        nick: Option<String>,
        /// Client's correlation id.
        #[serde(default)]
        id: Option<Value>,
    },
}

/// A command that could not be understood: its id (if any could be read),
/// an error code and a reason.
#[derive(Debug, Clone, PartialEq)]
pub struct BadCommand {
    /// The command's `id`, if it had a readable one.
    pub id: Option<Value>,
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

/// Who sent a message, as events show it.
#[derive(Debug, Clone, PartialEq)]
pub struct From {
    /// Connection id, or `None` for the server (HTTP API).
    pub conn: Option<u64>,
    /// Nickname.
    pub nick: String,
    /// User id from the connection's token.
    pub user: Option<String>,
}

impl From {
    /// The server itself (messages published through the HTTP API).
    pub fn server() -> From {
        From {
            conn: None,
            nick: "server".into(),
            user: None,
        }
    }

    fn json(&self) -> Value {
        json!({ "conn": self.conn, "nick": self.nick, "user": self.user })
    }
}

fn with_id(mut v: Value, id: &Option<Value>) -> Value {
    if let (Some(id), Value::Object(map)) = (id, &mut v) {
        map.insert("id".into(), id.clone());
    }
    v
}

fn frame_of(v: &Value) -> Bytes {
    frame::text(&v.to_string())
}

/// A `message` event. Built by hand around the payload's JSON so a large
/// `data` is not parsed and re-serialised.
pub fn message(room: &str, offset: u64, time_ms: u64, from: &From, data: &Payload) -> Bytes {
    let mut s = String::with_capacity(96 + data.len());
    s.push_str(r#"{"type":"message","room":"#);
    s.push_str(&Value::from(room).to_string());
    s.push_str(&format!(r#","offset":{offset},"time":{time_ms},"from":"#));
    s.push_str(&from.json().to_string());
    s.push_str(r#","data":"#);
    s.push_str(&data.json());
    s.push('}');
    frame::text(&s)
}

/// `joined`.
pub fn joined(room: &str, epoch: &str, offset: u64, resumed: bool, id: &Option<Value>) -> Bytes {
    frame_of(&with_id(
        json!({"type": "joined", "room": room, "epoch": epoch, "offset": offset, "resumed": resumed}),
        id,
    ))
}

/// `left`.
pub fn left(room: &str, id: &Option<Value>) -> Bytes {
    frame_of(&with_id(json!({"type": "left", "room": room}), id))
}

/// `reply`: the script answered the client's own message.
pub fn reply(room: Option<&str>, data: &Payload, id: &Option<Value>) -> Bytes {
    let data: Value = serde_json::from_str(&data.json()).unwrap_or(Value::Null);
    frame_of(&with_id(
        json!({"type": "reply", "room": room, "data": data}),
        id,
    ))
}

/// `direct`: a message for this connection alone.
pub fn direct(from: &From, data: &Payload) -> Bytes {
    let data: Value = serde_json::from_str(&data.json()).unwrap_or(Value::Null);
    frame_of(&json!({"type": "direct", "from": from.json(), "data": data}))
}

/// A presence member.
#[derive(Debug, Clone, PartialEq)]
pub struct PresenceMember {
    /// User id (`None` for connections without a token).
    pub user: Option<String>,
    /// Nickname.
    pub nick: String,
    /// The user's connections in the room.
    pub conns: usize,
}

impl PresenceMember {
    /// As JSON.
    pub fn json(&self) -> Value {
        json!({"user": self.user, "nick": self.nick, "conns": self.conns})
    }
}

/// `join` / `leave` presence events.
pub fn presence_change(kind: &str, room: &str, member: &PresenceMember) -> Bytes {
    frame_of(&json!({"type": kind, "room": room, "member": member.json()}))
}

/// `presence`.
pub fn presence(room: &str, members: &[PresenceMember], id: &Option<Value>) -> Bytes {
    let members: Vec<Value> = members.iter().map(PresenceMember::json).collect();
    frame_of(&with_id(
        json!({"type": "presence", "room": room, "members": members}),
        id,
    ))
}

/// `history`: `messages` are stored `message` events (their JSON).
pub fn history(room: &str, epoch: &str, messages: &[Bytes], id: &Option<Value>) -> Bytes {
    let mut s = String::from(r#"{"type":"history","room":"#);
    s.push_str(&Value::from(room).to_string());
    s.push_str(r#","epoch":"#);
    s.push_str(&Value::from(epoch).to_string());
    s.push_str(r#","messages":["#);
    for (i, m) in messages.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(std::str::from_utf8(frame::payload(m)).unwrap_or("null"));
    }
    s.push(']');
    if let Some(id) = id {
        s.push_str(r#","id":"#);
        s.push_str(&id.to_string());
    }
    s.push('}');
    frame::text(&s)
}

/// `ack`.
pub fn ack(id: &Value, room: &str, offset: Option<u64>) -> Bytes {
    frame_of(&json!({"type": "ack", "id": id, "room": room, "offset": offset}))
}

/// `nick`.
pub fn nick(nick: &str, id: &Option<Value>) -> Bytes {
    frame_of(&with_id(json!({"type": "nick", "nick": nick}), id))
}

/// `error`.
pub fn error(code: &str, reason: &str, id: &Option<Value>) -> Bytes {
    frame_of(&with_id(
        json!({"type": "error", "code": code, "reason": reason}),
        id,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(frame: &Bytes) -> Value {
        serde_json::from_slice(frame::payload(frame)).unwrap()
    }

    #[test]
    fn commands_parse_with_ids_and_errors_keep_them() {
        assert_eq!(
            parse(r#"{"type":"join","room":"chat/a","since":{"epoch":"e","offset":3},"id":1}"#),
            Ok(Command::Join {
                room: "chat/a".into(),
                since: Some(Since {
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
        let from = From {
            conn: Some(7),
            nick: "ann".into(),
            user: None,
        };
        let m = decode(&message(
            "chat/a",
            3,
            99,
            &from,
            &Payload::Text("hi".into()),
        ));
        assert_eq!(
            m,
            json!({"type":"message","room":"chat/a","offset":3,"time":99,
                   "from":{"conn":7,"nick":"ann","user":null},"data":"hi"})
        );
        let h = decode(&history(
            "chat/a",
            "e1",
            &[message(
                "chat/a",
                1,
                5,
                &from,
                &Payload::Json("{\"k\":1}".into()),
            )],
            &Some(json!(2)),
        ));
        assert_eq!(h["messages"][0]["data"], json!({"k": 1}));
        assert_eq!(h["id"], json!(2));
        assert_eq!(decode(&error("bad_room", "x", &None))["code"], "bad_room");
    }

    #[test]
    fn subprotocol_offer() {
        assert!(offers_v1(Some("roomcast.v1")));
        assert!(offers_v1(Some("chat, roomcast.v1")));
        assert!(!offers_v1(Some("roomcast.v2")));
        assert!(!offers_v1(None));
    }
}
