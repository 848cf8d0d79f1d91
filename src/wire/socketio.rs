//! The socket.io wire: what scripts produce, as socket.io packets.
//!
//! A payload in the seed's shape, `{"type": T, "data": D}`, becomes event `T`
//! with argument `D` (so `chat.rhai` serves socket.io clients unchanged: they
//! get `enter`, `message` and `leave` events); any other payload becomes a
//! `message` event (text as a string, JSON as its value, bytes as a binary
//! attachment). An answer to a command or an emit with a callback is an ACK
//! packet whose argument is the roomcast.v1 answer object (`{"type": "ack",
//! "room", "offset"}`, `{"type": "error", "code", "reason"}`, …); an error
//! nobody waits for is an `error` event. Presence changes are not pushed
//! (the seed's `leave` event name is taken): socket.io clients ask with the
//! `presence` command.
//!
//! Packets are encoded for the default namespace `/`, so the default route's
//! members (the seed page's) get the shared bytes as they are; the transport
//! inserts another namespace where a member needs one. An item in a socket.io
//! member's outbox is a packet's text, or — for a packet with a binary
//! attachment — `B`, the text's length (4 bytes, big-endian), the text, and
//! the attachment.

use bytes::{BufMut, Bytes, BytesMut};
use serde_json::{json, Value};

use super::{v1, Event, Publication};
use crate::payload::Payload;

/// socket.io packet types.
pub mod packet {
    /// Connect to a namespace (and its answer).
    pub const CONNECT: u8 = b'0';
    /// Leave a namespace.
    pub const DISCONNECT: u8 = b'1';
    /// An event.
    pub const EVENT: u8 = b'2';
    /// The answer to an event that asked for one.
    pub const ACK: u8 = b'3';
    /// A refused connect (v5); an error (v4).
    pub const CONNECT_ERROR: u8 = b'4';
    /// An event with binary attachments.
    pub const BINARY_EVENT: u8 = b'5';
    /// An answer with binary attachments.
    pub const BINARY_ACK: u8 = b'6';
}

/// The first byte of an outbox item that carries a binary attachment.
pub const BINARY_ITEM: u8 = b'B';

/// A publication, as the event its payload maps to.
pub fn publication(p: &Publication) -> Bytes {
    payload_event(&p.payload)
}

/// The packets for `event`, if socket.io clients see it.
pub fn encode(event: &Event<'_>) -> Option<Bytes> {
    if let Some(id) = ack_id(event) {
        let mut answer = v1::event_value(event);
        if let Value::Object(map) = &mut answer {
            map.shift_remove("id");
        }
        return Some(ack(id, &answer));
    }
    match event {
        Event::Reply { payload, .. } | Event::Direct { payload, .. } => {
            Some(payload_event(payload))
        }
        Event::Error { code, reason, .. } => Some(event_packet(
            "error",
            &json!({"code": code, "reason": reason}),
        )),
        Event::Joined { .. }
        | Event::Left { .. }
        | Event::Presence { .. }
        | Event::PresenceChange { .. }
        | Event::History { .. }
        | Event::Ack { .. }
        | Event::Nick { .. } => None,
    }
}

/// The ack id an event answers: a command's id, when it is one socket.io
/// gave (an integer). Replies are events, not answers.
fn ack_id(event: &Event<'_>) -> Option<u64> {
    let id = match event {
        Event::Ack { id, .. } => Some(*id),
        Event::Joined { id, .. }
        | Event::Left { id, .. }
        | Event::Presence { id, .. }
        | Event::History { id, .. }
        | Event::Nick { id, .. }
        | Event::Error { id, .. } => id.as_ref(),
        Event::Reply { .. } | Event::Direct { .. } | Event::PresenceChange { .. } => None,
    };
    id.and_then(Value::as_u64)
}

/// A payload as an event: the seed's `{"type": T, "data": D}` as event `T`
/// with `D`, anything else as `message`.
fn payload_event(p: &Payload) -> Bytes {
    match p {
        Payload::Text(s) => event_packet("message", &Value::from(&**s)),
        Payload::Json(j) => match serde_json::from_str::<Value>(j) {
            Ok(Value::Object(map))
                if map.len() == 2 && map.get("type").is_some_and(Value::is_string) =>
            {
                let name = map["type"].as_str().unwrap_or("message").to_string();
                let data = map.get("data").cloned().unwrap_or(Value::Null);
                event_packet(&name, &data)
            }
            Ok(other) => event_packet("message", &other),
            Err(_) => event_packet("message", &Value::from(&**j)),
        },
        Payload::Binary(b) => binary_event("message", b),
    }
}

/// `2["name",arg]`.
fn event_packet(name: &str, arg: &Value) -> Bytes {
    let mut s = String::with_capacity(16 + name.len());
    s.push(packet::EVENT as char);
    s.push_str(&json!([name, arg]).to_string());
    Bytes::from(s)
}

/// `3<id>[answer]`.
fn ack(id: u64, answer: &Value) -> Bytes {
    let mut s = String::with_capacity(32);
    s.push(packet::ACK as char);
    s.push_str(&id.to_string());
    s.push_str(&json!([answer]).to_string());
    Bytes::from(s)
}

/// `51-["name",{"_placeholder":true,"num":0}]` and the attachment, as one item.
fn binary_event(name: &str, data: &[u8]) -> Bytes {
    let text = format!(
        "{}1-{}",
        packet::BINARY_EVENT as char,
        json!([name, {"_placeholder": true, "num": 0}])
    );
    let mut b = BytesMut::with_capacity(5 + text.len() + data.len());
    b.put_u8(BINARY_ITEM);
    b.put_u32(text.len() as u32);
    b.put_slice(text.as_bytes());
    b.put_slice(data);
    b.freeze()
}

/// An outbox item, taken apart: the packet text, and its attachment if any.
pub fn split_item(item: &Bytes) -> (Bytes, Option<Bytes>) {
    if item.first() != Some(&BINARY_ITEM) || item.len() < 5 {
        return (item.clone(), None);
    }
    let len = u32::from_be_bytes([item[1], item[2], item[3], item[4]]) as usize;
    let end = (5 + len).min(item.len());
    (item.slice(5..end), Some(item.slice(end..)))
}

/// A packet of the default namespace, for namespace `ns` (`/chat`): the
/// namespace goes after the type and the attachment count.
pub fn in_namespace(packet: &[u8], ns: &str) -> String {
    let text = std::str::from_utf8(packet).unwrap_or_default();
    if ns == "/" || text.is_empty() {
        return text.to_string();
    }
    let mut head = 1;
    if matches!(
        text.as_bytes()[0],
        packet::BINARY_EVENT | packet::BINARY_ACK
    ) {
        if let Some(dash) = text.find('-') {
            head = dash + 1;
        }
    }
    format!("{}{ns},{}", &text[..head], &text[head..])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Author;

    fn text(b: &Bytes) -> &str {
        std::str::from_utf8(b).unwrap()
    }

    #[test]
    fn the_seed_shape_becomes_its_event() {
        let seed = Payload::Json(r#"{"data":"user1 comes in","type":"enter"}"#.into());
        assert_eq!(
            text(&payload_event(&seed)),
            r#"2["enter","user1 comes in"]"#
        );
        let other = Payload::Json(r#"{"type":"x","data":1,"more":2}"#.into());
        assert_eq!(
            text(&payload_event(&other)),
            r#"2["message",{"type":"x","data":1,"more":2}]"#
        );
        let shout = Payload::Text("HI!!!".into());
        assert_eq!(text(&payload_event(&shout)), r#"2["message","HI!!!"]"#);
        let p = Publication::new("chat/a".into(), 1, 0, Author::server(), seed, None);
        assert_eq!(text(&publication(&p)), r#"2["enter","user1 comes in"]"#);
    }

    #[test]
    fn answers_to_commands_are_acks_with_the_v1_object() {
        let id = Some(json!(7));
        let ack_event = Event::Ack {
            id: &json!(7),
            room: "chat/a",
            offset: Some(3),
        };
        assert_eq!(
            text(&encode(&ack_event).unwrap()),
            r#"37[{"type":"ack","room":"chat/a","offset":3}]"#
        );
        let err = Event::Error {
            code: "too_large",
            reason: "r",
            id: &id,
        };
        assert_eq!(
            text(&encode(&err).unwrap()),
            r#"37[{"type":"error","code":"too_large","reason":"r"}]"#
        );
        let none = None;
        let err = Event::Error {
            code: "c",
            reason: "r",
            id: &none,
        };
        assert_eq!(
            text(&encode(&err).unwrap()),
            r#"2["error",{"code":"c","reason":"r"}]"#
        );
    }

    #[test]
    fn binary_items_carry_their_attachment_and_namespaces_go_in_the_middle() {
        let item = payload_event(&Payload::Binary(vec![1u8, 2, 3].into()));
        let (packet, attachment) = split_item(&item);
        assert_eq!(
            text(&packet),
            r#"51-["message",{"_placeholder":true,"num":0}]"#
        );
        assert_eq!(attachment.as_deref(), Some(&[1u8, 2, 3][..]));
        assert_eq!(
            in_namespace(&packet, "/chat"),
            r#"51-/chat,["message",{"_placeholder":true,"num":0}]"#
        );
        assert_eq!(
            in_namespace(br#"2["enter","x"]"#, "/chat"),
            r#"2/chat,["enter","x"]"#
        );
        assert_eq!(in_namespace(b"37[{}]", "/"), "37[{}]");
        let plain = Bytes::from_static(b"2[\"a\",1]");
        assert_eq!(split_item(&plain), (plain.clone(), None));
    }
}
