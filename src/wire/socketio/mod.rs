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
//! `presence` command. A room whose history was lost (a new epoch) is a
//! `reset` event, `{room, epoch}`, with the new life's offset.
//!
//! Packets are encoded for the default namespace `/`, so the default route's
//! members (the seed page's) get the shared bytes as they are; another
//! namespace goes in at [`namespace_at`] on the way out, without a copy (the
//! transport writes the shared packet around it). An item in a socket.io
//! member's outbox is a packet, with its binary attachment when it has one
//! ([`Item::with_attachment`]).
//!
//! This module is the whole socket.io packet codec: `parse` reads what
//! clients send; the rest writes what the server sends (events, acks,
//! connect answers and refusals, goodbyes).

pub(crate) mod parse;

use std::borrow::Cow;

use bytes::Bytes;
use serde_json::value::RawValue;
use serde_json::{json, Value};

use super::{v1, Event, Publication};
use crate::outbox::Item;
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

/// A publication, as the event its payload maps to.
pub fn publication(p: &Publication) -> Item {
    payload_event(&p.payload)
}

/// A publication, as the event its payload maps to, with its place in the
/// room's stream as the last argument (for clients that recover their
/// state: socket.io-client keeps the last string argument of each event,
/// and sends it back when it reconnects). Not stored (offset 0): no offset.
pub fn publication_with_offset(p: &Publication) -> Item {
    match &p.epoch {
        Some(epoch) if p.offset > 0 => {
            let tag = offset_tag(&p.room, epoch, p.offset);
            event_item(&p.payload, Some(&Value::from(tag).to_string()))
        }
        _ => payload_event(&p.payload),
    }
}

/// The offset an event carries: `<offset>:<epoch>:<room>`.
pub fn offset_tag(room: &str, epoch: &str, offset: u64) -> String {
    format!("{offset}:{epoch}:{room}")
}

/// An offset a reconnecting client sent back: (room, epoch, offset).
pub fn parse_offset_tag(tag: &str) -> Option<(&str, &str, u64)> {
    let (offset, rest) = tag.split_once(':')?;
    let (epoch, room) = rest.split_once(':')?;
    let offset = offset.parse().ok()?;
    (!epoch.is_empty() && !room.is_empty()).then_some((room, epoch, offset))
}

/// The packets for `event`, if socket.io clients see it.
pub fn encode(event: &Event<'_>) -> Option<Item> {
    if let Some(id) = ack_id(event) {
        // The answer object is roomcast.v1's; the ack packet carries the id.
        return Some(Item::new(ack(id, &v1::event_value(event))));
    }
    match event {
        Event::Reply { payload, .. } | Event::Direct { payload, .. } => {
            Some(payload_event(payload))
        }
        Event::Error { code, reason, .. } => Some(Item::new(event_packet(
            "error",
            &json!({"code": code, "reason": reason}).to_string(),
        ))),
        // With the new life's place as its offset: a client that recovers
        // resumes from there.
        Event::Reset { room, epoch } => Some(Item::new(event_with(
            "reset",
            &json!({"room": room, "epoch": epoch}).to_string(),
            Some(&Value::from(offset_tag(room, epoch, 0)).to_string()),
        ))),
        Event::Joined { .. }
        | Event::Left { .. }
        | Event::Presence { .. }
        | Event::PresenceChange { .. }
        | Event::History { .. }
        | Event::Ack { .. }
        | Event::Nick { .. }
        | Event::Refreshed { .. } => None,
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
        | Event::Refreshed { id, .. }
        | Event::Error { id, .. } => id.as_ref(),
        Event::Reply { .. }
        | Event::Direct { .. }
        | Event::PresenceChange { .. }
        | Event::Reset { .. } => None,
    };
    id.and_then(Value::as_u64)
}

/// The seed's shape: exactly a string `type` and a `data`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Typed<'a> {
    #[serde(rename = "type", borrow)]
    name: Cow<'a, str>,
    #[serde(borrow)]
    data: &'a RawValue,
}

/// A payload as an event: the seed's `{"type": T, "data": D}` as event `T`
/// with `D`, anything else as `message`. JSON is read, not rebuilt: `D` (or
/// the whole value) is copied into the packet as it is.
fn payload_event(p: &Payload) -> Item {
    event_item(p, None)
}

/// The event for `p`, with `last` (JSON text) as a last argument.
fn event_item(p: &Payload, last: Option<&str>) -> Item {
    let packet = match p {
        Payload::Text(s) => event_with("message", &Value::from(&**s).to_string(), last),
        Payload::Json(j) => match serde_json::from_str::<Typed<'_>>(j) {
            Ok(typed) => event_with(&typed.name, typed.data.get(), last),
            // JSON from elsewhere (a broker) is checked before it is copied.
            Err(_) if serde_json::from_str::<&RawValue>(j).is_ok() => {
                event_with("message", j, last)
            }
            Err(_) => event_with("message", &Value::from(&**j).to_string(), last),
        },
        Payload::Binary(b) => return binary_event("message", b, last),
    };
    Item::new(packet)
}

/// `2["name",arg]`, `arg` as JSON text.
fn event_packet(name: &str, arg: &str) -> Bytes {
    event_with(name, arg, None)
}

/// `2["name",arg,last]`, each as JSON text.
fn event_with(name: &str, arg: &str, last: Option<&str>) -> Bytes {
    let name = Value::from(name).to_string();
    let extra = last.map_or(0, |l| l.len() + 1);
    let mut s = String::with_capacity(5 + name.len() + arg.len() + extra);
    s.push(packet::EVENT as char);
    s.push('[');
    s.push_str(&name);
    s.push(',');
    s.push_str(arg);
    if let Some(last) = last {
        s.push(',');
        s.push_str(last);
    }
    s.push(']');
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

/// `51-["name",{"_placeholder":true,"num":0}]` (and `last`, JSON text)
/// and the attachment, as one item.
fn binary_event(name: &str, data: &[u8], last: Option<&str>) -> Item {
    let mut args = json!([name, {"_placeholder": true, "num": 0}]).to_string();
    if let Some(last) = last {
        args.pop();
        args.push(',');
        args.push_str(last);
        args.push(']');
    }
    let text = format!("{}1-{args}", packet::BINARY_EVENT as char);
    Item::with_attachment(text.as_bytes(), data)
}

/// Where, in a packet of the default namespace, another namespace goes
/// (`/chat,`): after the type and the attachment count.
pub fn namespace_at(packet: &[u8]) -> usize {
    match packet.first() {
        None => 0,
        Some(&packet::BINARY_EVENT | &packet::BINARY_ACK) => packet
            .iter()
            .position(|&b| b == b'-')
            .map_or(1, |dash| dash + 1),
        Some(_) => 1,
    }
}

/// What goes in at [`namespace_at`] for namespace `ns`: `/chat,` (nothing
/// for `/`).
pub fn namespace_prefix(ns: &str) -> Bytes {
    if ns == "/" {
        Bytes::new()
    } else {
        Bytes::from(format!("{ns},"))
    }
}

/// `<type>[<ns>,]<rest>` (the namespace only when not `/`).
pub fn namespaced(kind: u8, ns: &str, rest: &str) -> String {
    let mut s = String::with_capacity(2 + ns.len() + rest.len());
    s.push(kind as char);
    if ns != "/" {
        s.push_str(ns);
        if !rest.is_empty() {
            s.push(',');
        }
    }
    s.push_str(rest);
    s
}

/// A connect's answer: socket.io protocol 5 (socket.io-client 3.x+) with
/// the session's id (and `pid`, the id it recovers its state by, when
/// recovery is on); protocol 4 (1.x-2.x, `sio2`) without.
pub fn connect_answer(sio2: bool, ns: &str, sid: &str, pid: Option<&str>) -> String {
    if sio2 {
        namespaced(packet::CONNECT, ns, "")
    } else if let Some(pid) = pid {
        let rest = json!({"sid": sid, "pid": pid}).to_string();
        namespaced(packet::CONNECT, ns, &rest)
    } else {
        namespaced(packet::CONNECT, ns, &json!({"sid": sid}).to_string())
    }
}

/// A connect refused: protocol 4 (`sio2`) says the reason, protocol 5 an
/// object with it and a status.
pub fn connect_error(sio2: bool, ns: &str, message: &str, status: u16) -> String {
    let rest = if sio2 {
        Value::from(message).to_string()
    } else {
        json!({"message": message, "data": {"status": status}}).to_string()
    };
    namespaced(packet::CONNECT_ERROR, ns, &rest)
}

/// The server ends namespace `ns` for its client.
pub fn disconnect(ns: &str) -> String {
    let mut s = String::from(packet::DISCONNECT as char);
    if ns != "/" {
        s.push_str(ns);
        s.push(',');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Author;

    fn text(b: &[u8]) -> &str {
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
        // Read, not rebuilt: the data goes in as it is, an escaped name too.
        let escaped = Payload::Json(r#"{"type":"a\"b","data":{"z":1, "a":[2]}}"#.into());
        assert_eq!(
            text(&payload_event(&escaped)),
            r#"2["a\"b",{"z":1, "a":[2]}]"#
        );
        // Not JSON (a forged broker message): sent as the text it is.
        let broken = Payload::Json(r#"{"type":"#.into());
        assert_eq!(
            text(&payload_event(&broken)),
            r#"2["message","{\"type\":"]"#
        );
        let shout = Payload::Text("HI!!!".into());
        assert_eq!(text(&payload_event(&shout)), r#"2["message","HI!!!"]"#);
        let p = Publication::new("chat/a".into(), 1, 0, Author::server(), seed, None);
        assert_eq!(text(&publication(&p)), r#"2["enter","user1 comes in"]"#);
    }

    #[test]
    fn events_for_recovering_clients_end_with_their_offset() {
        let seed = Payload::Json(r#"{"data":"hi","type":"message"}"#.into());
        let p = Publication::new("chat/a".into(), 7, 0, Author::server(), seed, None)
            .in_epoch("E.1".into());
        assert_eq!(
            text(&publication_with_offset(&p)),
            r#"2["message","hi","7:E.1:chat/a"]"#
        );
        assert_eq!(text(&publication(&p)), r#"2["message","hi"]"#);
        assert_eq!(parse_offset_tag("7:E.1:chat/a"), Some(("chat/a", "E.1", 7)));
        assert_eq!(parse_offset_tag("hi"), None);
        assert_eq!(parse_offset_tag("x:E:chat/a"), None);
        let bin = Publication::new(
            "chat/a".into(),
            2,
            0,
            Author::server(),
            Payload::Binary(vec![1u8].into()),
            None,
        )
        .in_epoch("E".into());
        let (packet, attachment) = publication_with_offset(&bin).parts();
        assert_eq!(
            text(&packet),
            r#"51-["message",{"_placeholder":true,"num":0},"2:E:chat/a"]"#
        );
        assert_eq!(attachment.as_deref(), Some(&[1u8][..]));
        // Not stored: nothing to recover from.
        let local = Publication::new(
            "chat/a".into(),
            0,
            0,
            Author::server(),
            Payload::Text("x".into()),
            None,
        );
        assert_eq!(
            text(&publication_with_offset(&local)),
            r#"2["message","x"]"#
        );
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
        let (packet, attachment) = item.parts();
        assert_eq!(
            text(&packet),
            r#"51-["message",{"_placeholder":true,"num":0}]"#
        );
        assert_eq!(attachment.as_deref(), Some(&[1u8, 2, 3][..]));
        let in_ns = |p: &[u8], ns: &str| {
            let at = namespace_at(p);
            let prefix = namespace_prefix(ns);
            let mut s = p[..at].to_vec();
            s.extend_from_slice(&prefix);
            s.extend_from_slice(&p[at..]);
            String::from_utf8(s).unwrap()
        };
        assert_eq!(
            in_ns(&packet, "/chat"),
            r#"51-/chat,["message",{"_placeholder":true,"num":0}]"#
        );
        assert_eq!(
            in_ns(br#"2["enter","x"]"#, "/chat"),
            r#"2/chat,["enter","x"]"#
        );
        assert_eq!(in_ns(b"37[{}]", "/"), "37[{}]");
        assert_eq!(connect_answer(true, "/chat", "1", None), "0/chat");
        assert_eq!(connect_answer(false, "/", "7", None), r#"0{"sid":"7"}"#);
        assert_eq!(
            connect_answer(false, "/", "7", Some("p")),
            r#"0{"sid":"7","pid":"p"}"#
        );
        assert_eq!(connect_error(true, "/", "no", 400), r#"4"no""#);
        assert_eq!(
            connect_error(false, "/echo", "no", 404),
            r#"4/echo,{"message":"no","data":{"status":404}}"#
        );
        assert_eq!(disconnect("/chat"), "1/chat,");
        assert_eq!(disconnect("/"), "1");
        let plain = Bytes::from_static(b"2[\"a\",1]");
        assert_eq!(Item::new(plain.clone()).parts(), (plain, None));
    }
}
