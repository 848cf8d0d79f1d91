//! Engine.IO packets and payloads: decoding and encoding, both protocols.

use super::*;

fn msg(s: &str) -> Packet {
    Packet::Message(Text::from(s.to_string()))
}

#[test]
fn protocol_4_payloads_are_separated_packets() {
    let p = encode(
        Protocol::V4,
        &[
            msg("0"),
            Packet::Ping,
            Packet::Binary(Bytes::from_static(&[1, 2, 3])),
        ],
        true,
    );
    assert_eq!(&p.body[..], b"40\x1e2\x1ebAQID");
    assert!(!p.binary);
    let got = decode(Protocol::V4, b"42[\"a\"]\x1e3\x1ebAQID", false).unwrap();
    assert_eq!(
        got,
        [
            Incoming::Message("2[\"a\"]"),
            Incoming::Pong,
            Incoming::Binary(Bytes::from_static(&[1, 2, 3]))
        ]
    );
}

#[test]
fn protocol_3_lengths_count_utf16_units() {
    // "é" is one unit, "😀" two; the type character is one more.
    let p = encode(Protocol::V3, &[msg("2[\"é😀\"]"), Packet::Pong], false);
    assert_eq!(std::str::from_utf8(&p.body).unwrap(), "9:42[\"é😀\"]1:3");
    let got = decode(Protocol::V3, "9:42[\"é😀\"]1:2".as_bytes(), false).unwrap();
    assert_eq!(
        got,
        [
            Incoming::Message("2[\"é😀\"]"),
            Incoming::Ping { probe: false }
        ]
    );
    assert!(decode(Protocol::V3, b"99:42", false).is_err());
    assert!(decode(Protocol::V3, b"x:42", false).is_err());
    // A length that ends inside a surrogate pair.
    assert!(decode(Protocol::V3, "2:4😀".as_bytes(), false).is_err());
}

#[test]
fn protocol_3_binary_payloads_round_trip() {
    let packets = [
        msg("51-[\"m\",{}]"),
        Packet::Binary(Bytes::from_static(&[9, 8])),
    ];
    let p = encode(Protocol::V3, &packets, true);
    assert!(p.binary);
    assert_eq!(
        &p.body[..],
        b"\x00\x01\x02\xff451-[\"m\",{}]\x01\x03\xff\x04\x09\x08"
    );
    let got = decode(Protocol::V3, &p.body, true).unwrap();
    assert_eq!(
        got,
        [
            Incoming::Message("51-[\"m\",{}]"),
            Incoming::Binary(Bytes::from_static(&[9, 8]))
        ]
    );
    // Asked for base64 (`b64=1`): text, `b4` + base64.
    let p = encode(Protocol::V3, &packets[1..], false);
    assert_eq!(&p.body[..], b"6:b4CQg=");
    assert_eq!(
        decode(Protocol::V3, b"6:b4CQg=", false).unwrap(),
        [Incoming::Binary(Bytes::from_static(&[9, 8]))]
    );
    for bad in [
        &b"\x00\x01"[..],
        b"\x00\x0a\xff4",
        b"\x02\x01\xff4",
        b"\x01\x01\xff",
    ] {
        assert!(decode(Protocol::V3, bad, true).is_err(), "{bad:?}");
    }
}

#[test]
fn packets_parse_by_type() {
    assert_eq!(
        parse(Protocol::V4, "2probe"),
        Ok(Incoming::Ping { probe: true })
    );
    assert_eq!(parse(Protocol::V4, "5"), Ok(Incoming::Upgrade));
    assert_eq!(parse(Protocol::V4, "1"), Ok(Incoming::Close));
    for bad in ["", "9", "bnot base64!", "x"] {
        assert!(parse(Protocol::V4, bad).is_err(), "{bad:?}");
    }
    assert!(
        parse(Protocol::V3, "bAQID").is_err(),
        "protocol 3 binary is b4…"
    );
}

#[test]
fn websocket_messages_carry_the_type() {
    let bin = Packet::Binary(Bytes::from_static(&[7]));
    let one = |s: &'static [u8]| [s, &[][..], &[][..]];
    assert_eq!(ws_message(Protocol::V4, &bin), (true, 0, one(&[7u8])));
    // Protocol 3: the message type as a number (4), not a character.
    assert_eq!(ws_message(Protocol::V3, &bin), (true, 4, one(&[7u8])));
    assert_eq!(
        ws_message(Protocol::V4, &Packet::PongProbe),
        (false, b'3', one(b"probe"))
    );
    // A namespace written in, around the shared bytes.
    let body = Bytes::from_static(br#"2["enter","x"]"#);
    let ns = Packet::Message(Text::with_insert(body, 1, Bytes::from_static(b"/chat,")));
    let p = encode(Protocol::V4, std::slice::from_ref(&ns), false);
    assert_eq!(&p.body[..], br#"42/chat,["enter","x"]"#);
    let p = encode(Protocol::V3, &[ns], false);
    assert_eq!(&p.body[..], br#"21:42/chat,["enter","x"]"#);
}

proptest::proptest! {
    /// Whatever a client posts, decoding answers (never panics).
    #[test]
    fn any_body_decodes_or_is_refused(body in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
        for protocol in [Protocol::V3, Protocol::V4] {
            let _ = decode(protocol, &body, true);
            let _ = decode(protocol, &body, false);
        }
    }

    /// Text packets survive a protocol 3 payload, whatever characters they hold.
    #[test]
    fn protocol_3_text_round_trips(texts in proptest::collection::vec("\\PC{0,20}", 1..5)) {
        let packets: Vec<Packet> = texts.iter().map(|t| msg(t)).collect();
        let p = encode(Protocol::V3, &packets, false);
        let got = decode(Protocol::V3, &p.body, false).unwrap();
        let want: Vec<Incoming> = texts.iter().map(|t| Incoming::Message(t)).collect();
        proptest::prop_assert_eq!(got, want);
    }
}
