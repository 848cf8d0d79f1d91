//! The raw wire: the seed's plain WebSocket clients. They get payloads as
//! they are (text as text, binary as binary, JSON as its text) and nothing of
//! the roomcast.v1 machinery (no acks, no presence, no offsets).

use bytes::Bytes;

use super::{frame, Event};
use crate::payload::Payload;

/// A payload as a raw frame.
pub fn payload(p: &Payload) -> Bytes {
    match p {
        Payload::Text(s) | Payload::Json(s) => frame::text(s),
        Payload::Binary(b) => frame::binary(b),
    }
}

/// The raw frame for `event`, if raw clients see it.
pub fn encode(event: &Event<'_>) -> Option<Bytes> {
    match event {
        Event::Reply { payload: p, .. } | Event::Direct { payload: p, .. } => Some(payload(p)),
        Event::Error { reason, .. } => Some(frame::text(
            &serde_json::json!({"type": "error", "data": reason}).to_string(),
        )),
        Event::Joined { .. }
        | Event::Left { .. }
        | Event::Presence { .. }
        | Event::PresenceChange { .. }
        | Event::History { .. }
        | Event::Ack { .. }
        | Event::Nick { .. }
        | Event::Refreshed { .. }
        | Event::Reset { .. } => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_are_sent_as_they_are() {
        assert_eq!(payload(&Payload::Text("hé".into())), frame::text("hé"));
        assert_eq!(
            payload(&Payload::Binary(vec![1u8, 2].into())),
            frame::binary(&[1, 2])
        );
        assert_eq!(
            payload(&Payload::Json(r#"{"a":1}"#.into())),
            frame::text(r#"{"a":1}"#)
        );
        let none = None;
        assert_eq!(
            encode(&Event::Nick {
                nick: "x",
                id: &none
            }),
            None
        );
    }
}
