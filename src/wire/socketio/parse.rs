//! socket.io packets from clients (protocol 4 for socket.io-client 1.x-2.x,
//! protocol 5 for 3.x-4.x): `<type>[<attachments>-][<namespace>,][<ack id>][<JSON>]`.

use serde_json::Value;

use super::packet;

/// One parsed packet.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Packet {
    /// Its type (`packet::EVENT`…).
    pub kind: u8,
    /// Its namespace (`/` when none is given).
    pub ns: String,
    /// The ack id it asks to be answered with.
    pub id: Option<u64>,
    /// Binary attachments that follow it (binary events and acks).
    pub attachments: usize,
    /// Its JSON payload, if any.
    pub data: Option<Value>,
}

/// Most attachments one packet may announce.
pub(crate) const MAX_ATTACHMENTS: usize = 10;

/// Parse one packet; the error is a reason for the log.
pub(crate) fn parse(text: &str) -> Result<Packet, &'static str> {
    let bytes = text.as_bytes();
    let kind = *bytes.first().ok_or("empty packet")?;
    if !(packet::CONNECT..=packet::BINARY_ACK).contains(&kind) {
        return Err("unknown packet type");
    }
    let mut rest = &text[1..];
    let mut attachments = 0;
    if matches!(kind, packet::BINARY_EVENT | packet::BINARY_ACK) {
        let dash = rest
            .find('-')
            .ok_or("binary packet without an attachment count")?;
        attachments = rest[..dash]
            .parse::<usize>()
            .map_err(|_| "bad attachment count")?;
        if attachments > MAX_ATTACHMENTS {
            return Err("too many attachments");
        }
        rest = &rest[dash + 1..];
    }
    let mut ns = "/".to_string();
    if rest.starts_with('/') {
        let end = rest.find(',').unwrap_or(rest.len());
        // A query after the namespace (protocol 4 connects) is not part of it.
        let name = &rest[..end];
        ns = name.split('?').next().unwrap_or(name).to_string();
        rest = rest.get(end + 1..).unwrap_or("");
    }
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let id = if digits > 0 {
        Some(rest[..digits].parse::<u64>().map_err(|_| "bad ack id")?)
    } else {
        None
    };
    rest = &rest[digits..];
    let data = if rest.is_empty() {
        None
    } else {
        Some(serde_json::from_str(rest).map_err(|_| "payload is not JSON")?)
    };
    Ok(Packet {
        kind,
        ns,
        id,
        attachments,
        data,
    })
}

/// The query of a protocol 4 connect to another namespace (`0/chat?room=x`).
pub(crate) fn connect_query(text: &str) -> Option<&str> {
    let ns = text.get(1..)?.split(',').next()?;
    ns.split_once('?').map(|(_, q)| q)
}

/// Why attachments could not be put in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FillError {
    /// A placeholder names an attachment that did not come.
    Missing,
    /// Filled in, the packet would be over its budget (an attachment
    /// referenced many times: each reference is a copy).
    TooLarge,
}

/// Put attachments where their placeholders are, spending at most `budget`
/// bytes of attachment data in all: each placeholder costs its attachment's
/// length (at least one byte), checked *before* it is copied, so a packet
/// that names one attachment a thousand times is refused after the budget,
/// not expanded a thousand times.
pub(crate) fn fill(
    value: &mut Value,
    attachments: &[bytes::Bytes],
    budget: usize,
) -> Result<(), FillError> {
    let mut left = budget;
    fill_within(value, attachments, &mut left)
}

fn fill_within(
    value: &mut Value,
    attachments: &[bytes::Bytes],
    left: &mut usize,
) -> Result<(), FillError> {
    match value {
        Value::Object(map)
            if map.get("_placeholder") == Some(&Value::Bool(true)) && map.len() == 2 =>
        {
            let n = map
                .get("num")
                .and_then(Value::as_u64)
                .ok_or(FillError::Missing)?;
            let data = usize::try_from(n)
                .ok()
                .and_then(|n| attachments.get(n))
                .ok_or(FillError::Missing)?;
            *left = left
                .checked_sub(data.len().max(1))
                .ok_or(FillError::TooLarge)?;
            *value = Value::Array(data.iter().map(|b| Value::from(*b)).collect());
            Ok(())
        }
        Value::Array(items) => items
            .iter_mut()
            .try_for_each(|v| fill_within(v, attachments, left)),
        Value::Object(map) => map
            .values_mut()
            .try_for_each(|v| fill_within(v, attachments, left)),
        _ => Ok(()),
    }
}

/// Whether `value` is a placeholder for attachment `num`.
pub(crate) fn placeholder(value: &Value) -> Option<usize> {
    let map = value.as_object()?;
    if map.get("_placeholder") == Some(&Value::Bool(true)) {
        map.get("num")?.as_u64().map(|n| n as usize)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn packets_parse_with_namespaces_ids_and_attachments() {
        assert_eq!(
            parse(r#"2["message","hi"]"#).unwrap(),
            Packet {
                kind: packet::EVENT,
                ns: "/".into(),
                id: None,
                attachments: 0,
                data: Some(json!(["message", "hi"])),
            }
        );
        let p = parse(r#"2/chat,12["message",{"a":1}]"#).unwrap();
        assert_eq!((p.ns.as_str(), p.id), ("/chat", Some(12)));
        let p = parse(r#"51-/chat,3["message",{"_placeholder":true,"num":0}]"#).unwrap();
        assert_eq!(
            (p.kind, p.attachments, p.id),
            (packet::BINARY_EVENT, 1, Some(3))
        );
        assert_eq!(parse("0").unwrap().ns, "/");
        let p = parse(r#"0/echo,{"token":"t"}"#).unwrap();
        assert_eq!(
            (p.ns.as_str(), p.data),
            ("/echo", Some(json!({"token": "t"})))
        );
        assert_eq!(parse("0/echo?room=x").unwrap().ns, "/echo");
        assert_eq!(connect_query("0/echo?room=x"), Some("room=x"));
        assert_eq!(parse("1/chat,").unwrap().kind, packet::DISCONNECT);
        for bad in ["", "9", "2[", r#"5["x"]"#, "5x-[]", "599-[]"] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn attachments_fill_their_placeholders() {
        let mut v = json!(["message", {"_placeholder": true, "num": 0}]);
        assert_eq!(placeholder(&v[1]), Some(0));
        fill(&mut v, &[bytes::Bytes::from_static(&[1, 2])], 2).unwrap();
        assert_eq!(v, json!(["message", [1, 2]]));
        let mut missing = json!([{"_placeholder": true, "num": 1}]);
        assert_eq!(fill(&mut missing, &[], 100), Err(FillError::Missing));
    }

    #[test]
    fn an_attachment_referenced_many_times_stops_at_the_budget() {
        let one = json!({"_placeholder": true, "num": 0});
        let mut v = Value::Array(std::iter::repeat_n(one, 2000).collect());
        let attachment = bytes::Bytes::from(vec![7u8; 64 * 1024]);
        let budget = 64 * 1024;
        assert_eq!(
            fill(&mut v, std::slice::from_ref(&attachment), budget),
            Err(FillError::TooLarge)
        );
        // Refused at the second reference: one copy was made, not 2000.
        let copies = v
            .as_array()
            .unwrap()
            .iter()
            .filter(|x| x.is_array())
            .count();
        assert_eq!(copies, 1);
        // Empty attachments cost a byte each, so they are bounded too.
        let mut v = json!([{"_placeholder": true, "num": 0}, {"_placeholder": true, "num": 0}]);
        assert_eq!(
            fill(&mut v, &[bytes::Bytes::new()], 1),
            Err(FillError::TooLarge)
        );
    }

    proptest::proptest! {
        /// Whatever a client sends as a packet, parsing answers (never panics)
        /// and never announces more attachments than the limit.
        #[test]
        fn any_text_parses_or_is_refused(text in "\\PC{0,200}") {
            if let Ok(p) = parse(&text) {
                proptest::prop_assert!(p.attachments <= MAX_ATTACHMENTS);
                proptest::prop_assert!(p.ns.starts_with('/'));
            }
        }

        /// A packet built from its parts parses back to those parts.
        #[test]
        fn valid_packets_round_trip(
            kind in 0u8..=6,
            attachments in 0usize..=MAX_ATTACHMENTS,
            ns in proptest::option::of("/[a-z]{1,12}"),
            id in proptest::option::of(0u64..=u64::from(u32::MAX)),
            args in proptest::collection::vec("[ -~]{0,20}", 0..4),
        ) {
            let kind = b'0' + kind;
            let binary = matches!(kind, packet::BINARY_EVENT | packet::BINARY_ACK);
            let mut text = String::from(kind as char);
            if binary {
                text.push_str(&format!("{attachments}-"));
            }
            if let Some(ns) = &ns {
                text.push_str(ns);
                text.push(',');
            }
            if let Some(id) = id {
                text.push_str(&id.to_string());
            }
            let data = Value::from(args.clone());
            text.push_str(&data.to_string());
            let p = parse(&text).unwrap();
            proptest::prop_assert_eq!(p.kind, kind);
            proptest::prop_assert_eq!(p.ns, ns.unwrap_or_else(|| "/".into()));
            proptest::prop_assert_eq!(p.id, id);
            proptest::prop_assert_eq!(p.attachments, if binary { attachments } else { 0 });
            proptest::prop_assert_eq!(p.data, Some(data));
        }
    }
}
