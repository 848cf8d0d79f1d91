//! What hooks ask for: a hook's `conn` methods record [`Action`]s, which the
//! session carries out after the hook returns (or discards if it failed).

use rhai::{Blob, Dynamic, EvalAltResult, ImmutableString};

use crate::ids::ConnId;
use crate::payload::Payload;

/// Something a hook asked for.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Send to the calling connection.
    Reply(Payload),
    /// Publish to the current room, the caller included.
    Broadcast(Payload),
    /// Publish to the current room, except the caller.
    BroadcastOthers(Payload),
    /// Publish to another room the connection is in.
    Publish(String, Payload),
    /// Send to the members of the current room with this nickname.
    SendTo(String, Payload),
    /// Send to one connection, by id.
    SendToConn(ConnId, Payload),
    /// Send to every connection of a user.
    SendToUser(String, Payload),
    /// Answer with a roomcast.v1 error (code, reason).
    Error(String, String),
    /// Drop the message on purpose (a roomcast.v1 publish gets `dropped`).
    Drop,
    /// Close the calling connection after what is already queued.
    Close(u16, String),
    /// The connection's nickname changed (already visible to later hooks).
    SetNick(ImmutableString),
}

pub(super) type RhaiResult<T> = Result<T, Box<EvalAltResult>>;

/// Turn a script value into a payload: strings → text, blobs → binary, maps
/// and arrays → JSON, other values → their text form.
pub fn to_payload(value: Dynamic) -> RhaiResult<Payload> {
    if value.is_unit() {
        return Err("cannot send () — pass a string, blob, map or array".into());
    }
    if value.is_string() {
        let s = value.cast::<ImmutableString>();
        return Ok(Payload::Text(s.as_str().into()));
    }
    if value.is_blob() {
        let b = value.cast::<Blob>();
        return Ok(Payload::Binary(b.into()));
    }
    if value.is_map() || value.is_array() {
        let json = serde_json::to_string(&value)
            .map_err(|e| -> Box<EvalAltResult> { format!("cannot encode as JSON: {e}").into() })?;
        return Ok(Payload::Json(json.into()));
    }
    Ok(Payload::Text(value.to_string().into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_become_payloads() {
        assert_eq!(to_payload("hé".into()).unwrap(), Payload::Text("hé".into()));
        let blob: Blob = vec![1, 2, 3];
        assert_eq!(
            to_payload(Dynamic::from_blob(blob)).unwrap(),
            Payload::Binary(vec![1u8, 2, 3].into())
        );
        assert_eq!(
            to_payload(Dynamic::from(42_i64)).unwrap(),
            Payload::Text("42".into())
        );
        assert!(to_payload(Dynamic::UNIT).is_err());
    }
}
