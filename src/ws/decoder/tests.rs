//! The decoder against valid, invalid and arbitrary input.

use super::*;
use proptest::prelude::*;

fn client_frame(fin: bool, opcode: u8, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
    let mut f = vec![(if fin { 0x80 } else { 0 }) | opcode];
    match payload.len() {
        n if n < 126 => f.push(0x80 | n as u8),
        n if n <= 0xffff => {
            f.push(0x80 | 126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            f.push(0x80 | 127);
            f.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    f.extend_from_slice(&mask);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    f
}

/// Feed `bytes` cut at `cuts` (TCP chops); collect messages until the
/// first error, then a final `Closed` stands for the end of the stream.
fn decode(bytes: &[u8], cuts: &[usize], max: usize) -> Vec<Result<Message, ReadError>> {
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    cuts.sort_unstable();
    cuts.dedup();
    let mut d = Decoder::new(max, max);
    let mut out = Vec::new();
    let mut prev = 0;
    for c in cuts.into_iter().chain([bytes.len()]) {
        let mut chunk = &bytes[prev..c];
        prev = c;
        loop {
            match d.next(&mut chunk) {
                Ok(Some(m)) => out.push(Ok(m)),
                Ok(None) => break,
                Err(e) => {
                    out.push(Err(e));
                    return out;
                }
            }
        }
    }
    out.push(Err(ReadError::Closed));
    out
}

#[test]
fn close_codes() {
    for ok in [1000, 1001, 1002, 1003, 1007, 1011, 1014, 3000, 4999] {
        assert!(is_valid_close_code(ok), "{ok}");
    }
    for bad in [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535] {
        assert!(!is_valid_close_code(bad), "{bad}");
    }
}

fn close_code_of(r: &Result<Message, ReadError>) -> Option<u16> {
    match r {
        Err(ReadError::Protocol { code, .. }) => Some(*code),
        _ => None,
    }
}

/// A message split into fragments of these sizes, each masked with `mask`.
fn fragmented(opcode: u8, payload: &[u8], sizes: &[usize], mask: [u8; 4]) -> Vec<u8> {
    let mut frames = Vec::new();
    let mut rest = payload;
    let mut first = true;
    for (i, s) in sizes.iter().enumerate() {
        let last = i + 1 == sizes.len();
        let n = if last {
            rest.len()
        } else {
            (*s).min(rest.len())
        };
        let op = if first { opcode } else { CONTINUATION };
        frames.extend(client_frame(last, op, &rest[..n], mask));
        rest = &rest[n..];
        first = false;
    }
    frames
}

proptest! {
    /// Arbitrary bytes never panic the decoder.
    #[test]
    fn arbitrary_input_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..2048),
                                    cuts in proptest::collection::vec(any::<usize>(), 0..16)) {
        let out = decode(&bytes, &cuts, 1024);
        prop_assert!(out.last().unwrap().is_err());
    }

    /// Any text message, however fragmented and chopped, comes out whole.
    #[test]
    fn fragmented_chopped_text_round_trips(text in "\\PC{0,300}",
                                           sizes in proptest::collection::vec(0usize..64, 1..8),
                                           cuts in proptest::collection::vec(any::<usize>(), 0..32),
                                           mask in any::<[u8; 4]>()) {
        let mut bytes = fragmented(TEXT, text.as_bytes(), &sizes, mask);
        bytes.extend(client_frame(true, PING, b"p", mask));
        let out = decode(&bytes, &cuts, 1 << 20);
        prop_assert_eq!(&out[0], &Ok(Message::Text(text.clone())));
        prop_assert_eq!(&out[1], &Ok(Message::Ping(Bytes::from_static(b"p"))));
    }

    /// Binary messages round-trip too.
    #[test]
    fn fragmented_binary_round_trips(data in proptest::collection::vec(any::<u8>(), 0..600),
                                     sizes in proptest::collection::vec(0usize..200, 1..5),
                                     cuts in proptest::collection::vec(any::<usize>(), 0..8),
                                     mask in any::<[u8; 4]>()) {
        let bytes = fragmented(BINARY, &data, &sizes, mask);
        let out = decode(&bytes, &cuts, 1 << 20);
        prop_assert_eq!(&out[0], &Ok(Message::Binary(data.clone())));
    }

    /// Text is accepted exactly when it is valid UTF-8, whatever the fragmentation.
    #[test]
    fn text_is_accepted_iff_valid_utf8(data in proptest::collection::vec(any::<u8>(), 0..64),
                                       sizes in proptest::collection::vec(0usize..16, 1..5),
                                       cuts in proptest::collection::vec(any::<usize>(), 0..8)) {
        let bytes = fragmented(TEXT, &data, &sizes, [1, 2, 3, 4]);
        let out = decode(&bytes, &cuts, 1 << 20);
        match std::str::from_utf8(&data) {
            Ok(s) => prop_assert_eq!(&out[0], &Ok(Message::Text(s.to_string()))),
            Err(_) => prop_assert_eq!(close_code_of(&out[0]), Some(close::INVALID_PAYLOAD)),
        }
    }

    /// Messages over the limit fail with 1009, at or under it pass.
    #[test]
    fn size_limit_is_exact(len in 0usize..300, limit in 1usize..300,
                           sizes in proptest::collection::vec(0usize..100, 1..4)) {
        let bytes = fragmented(BINARY, &vec![7u8; len], &sizes, [9, 9, 9, 9]);
        let out = decode(&bytes, &[], limit);
        if len <= limit {
            prop_assert!(matches!(out[0], Ok(Message::Binary(_))));
        } else {
            prop_assert_eq!(close_code_of(&out[0]), Some(close::MESSAGE_TOO_BIG));
        }
    }
}

#[test]
fn invalid_utf8_fails_before_the_frame_is_complete() {
    // One text frame announcing 100 bytes; only 8 arrive, and they are invalid.
    let mut frame = client_frame(true, TEXT, &[b'a'; 100], [0, 0, 0, 0]);
    frame.truncate(2 + 4 + 4);
    frame.extend_from_slice(&[0xf4, 0x90, 0x80, 0x80]);
    let mut d = Decoder::new(1024, 1024);
    let r = d.next(&mut &frame[..]);
    assert_eq!(
        close_code_of(&r.map(|m| m.unwrap())),
        Some(close::INVALID_PAYLOAD)
    );
}

#[test]
fn announced_length_is_not_allocated_up_front() {
    // A 60 KiB frame is announced but only its header arrives.
    let frame = client_frame(true, BINARY, &vec![0; 60_000], [0; 4]);
    let mut d = Decoder::new(1 << 20, 1 << 20);
    assert_eq!(d.next(&mut &frame[..8]), Ok(None));
    assert_eq!(d.partial.as_ref().unwrap().buf.capacity(), 0);
}

#[test]
fn several_messages_in_one_chunk() {
    let mut bytes = client_frame(true, TEXT, b"one", [1, 2, 3, 4]);
    bytes.extend(client_frame(true, TEXT, b"two", [5, 6, 7, 8]));
    let mut d = Decoder::new(1024, 1024);
    let mut input = &bytes[..];
    assert_eq!(d.next(&mut input), Ok(Some(Message::Text("one".into()))));
    assert_eq!(d.next(&mut input), Ok(Some(Message::Text("two".into()))));
    assert_eq!(d.next(&mut input), Ok(None));
}
