//! What nodes tell each other through Redis, as compact bytes: publications
//! (in streams and on room channels), presence changes, and the messages
//! one node sends another (`node.rs`: direct sends, disconnects and their
//! answers, the operator view's reports, questions and answers).
//!
//! Every message starts with a kind byte. A publication's body (author,
//! payload, time) is made by the publishing node; the publish script puts
//! the room's epoch and the offset it assigned in front of it on the
//! channel (`p<epoch>\n<offset>\n<body>`), and keeps the body alone in the
//! stream (the offset is the entry's id). Unknown or damaged input decodes
//! to `None`, never a panic: it is counted and dropped by the caller.

mod node;

use std::sync::Arc;

use crate::hub::Target;
use crate::ids::ConnId;
use crate::payload::Payload;
use crate::wire::{Author, PresenceMember, Publication};

pub(super) use node::NodeMessage;

/// A publication, on a room channel.
pub(super) const PUBLICATION: u8 = b'p';
/// Someone came into a room (presence), on a room channel.
pub(super) const JOIN: u8 = b'j';
/// Someone left a room, on a room channel.
pub(super) const LEAVE: u8 = b'l';
const TEXT: u8 = 0;
const BINARY: u8 = 1;
const JSON: u8 = 2;

/// Appends fields to a message.
#[derive(Default)]
pub(super) struct Writer(pub(super) Vec<u8>);

impl Writer {
    pub(super) fn new(kind: u8) -> Writer {
        Writer(vec![kind])
    }

    fn u8(&mut self, v: u8) -> &mut Self {
        self.0.push(v);
        self
    }

    fn u64(&mut self, v: u64) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }

    fn bytes(&mut self, b: &[u8]) -> &mut Self {
        let len = u32::try_from(b.len()).expect("messages are bounded far below 4 GiB");
        self.0.extend_from_slice(&len.to_le_bytes());
        self.0.extend_from_slice(b);
        self
    }

    fn opt_str(&mut self, s: Option<&str>) -> &mut Self {
        match s {
            Some(s) => self.u8(1).bytes(s.as_bytes()),
            None => self.u8(0),
        }
    }

    fn opt_u64(&mut self, v: Option<u64>) -> &mut Self {
        match v {
            Some(v) => self.u8(1).u64(v),
            None => self.u8(0),
        }
    }

    fn author(&mut self, a: &Author) -> &mut Self {
        self.opt_u64(a.conn)
            .bytes(a.nick.as_bytes())
            .opt_str(a.user.as_deref())
    }

    fn payload(&mut self, p: &Payload) -> &mut Self {
        match p {
            Payload::Text(s) => self.u8(TEXT).bytes(s.as_bytes()),
            Payload::Binary(b) => self.u8(BINARY).bytes(b),
            Payload::Json(j) => self.u8(JSON).bytes(j.as_bytes()),
        }
    }

    fn target(&mut self, t: &Target) -> &mut Self {
        match t {
            Target::Conn(id) => self.u8(0).u64(*id),
            Target::User(u) => self.u8(1).bytes(u.as_bytes()),
        }
    }

    fn member(&mut self, m: &PresenceMember) -> &mut Self {
        self.opt_str(m.user.as_deref())
            .bytes(m.nick.as_bytes())
            .u64(m.conns as u64)
    }
}

/// Reads fields back; every read is checked.
pub(super) struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    pub(super) fn new(b: &'a [u8]) -> Reader<'a> {
        Reader(b)
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    fn u64(&mut self) -> Option<u64> {
        self.take(8)
            .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
    }

    fn bytes(&mut self) -> Option<&'a [u8]> {
        let len = u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes"));
        self.take(len as usize)
    }

    fn str(&mut self) -> Option<&'a str> {
        std::str::from_utf8(self.bytes()?).ok()
    }

    fn opt_str(&mut self) -> Option<Option<&'a str>> {
        match self.u8()? {
            0 => Some(None),
            1 => Some(Some(self.str()?)),
            _ => None,
        }
    }

    fn opt_u64(&mut self) -> Option<Option<u64>> {
        match self.u8()? {
            0 => Some(None),
            1 => Some(Some(self.u64()?)),
            _ => None,
        }
    }

    fn author(&mut self) -> Option<Author> {
        Some(Author {
            conn: self.opt_u64()?,
            nick: self.str()?.into(),
            user: self.opt_str()?.map(Arc::from),
        })
    }

    fn payload(&mut self) -> Option<Payload> {
        let kind = self.u8()?;
        let b = self.bytes()?;
        Some(match kind {
            TEXT => Payload::Text(std::str::from_utf8(b).ok()?.into()),
            BINARY => Payload::Binary(b.into()),
            JSON => Payload::Json(std::str::from_utf8(b).ok()?.into()),
            _ => return None,
        })
    }

    fn target(&mut self) -> Option<Target> {
        Some(match self.u8()? {
            0 => Target::Conn(self.u64()?),
            1 => Target::User(self.str()?.into()),
            _ => return None,
        })
    }

    fn member(&mut self) -> Option<PresenceMember> {
        Some(PresenceMember {
            user: self.opt_str()?.map(Arc::from),
            nick: self.str()?.into(),
            conns: usize::try_from(self.u64()?).ok()?,
        })
    }

    fn done(&self) -> bool {
        self.0.is_empty()
    }
}

/// A publication's body: everything but its room, epoch and offset.
pub(super) fn body(time: u64, from: &Author, payload: &Payload, except: Option<ConnId>) -> Vec<u8> {
    let mut w = Writer::default();
    w.u64(time).author(from).opt_u64(except).payload(payload);
    w.0
}

/// A publication of `room` at `offset` from its body.
pub(super) fn publication(room: &Arc<str>, offset: u64, body: &[u8]) -> Option<Publication> {
    let mut r = Reader::new(body);
    let time = r.u64()?;
    let from = r.author()?;
    let except = r.opt_u64()?;
    let payload = r.payload()?;
    r.done()
        .then(|| Publication::new(room.clone(), offset, time, from, payload, except))
}

/// A publication as it comes on a room channel: (epoch, offset, body).
pub(super) fn channel_publication(msg: &[u8]) -> Option<(&str, u64, &[u8])> {
    let rest = msg.strip_prefix(&[PUBLICATION])?;
    let nl = rest.iter().position(|&b| b == b'\n')?;
    let epoch = std::str::from_utf8(&rest[..nl]).ok()?;
    let rest = &rest[nl + 1..];
    let nl = rest.iter().position(|&b| b == b'\n')?;
    let offset = std::str::from_utf8(&rest[..nl]).ok()?.parse().ok()?;
    Some((epoch, offset, &rest[nl + 1..]))
}

/// A member of node `node` as stored in a room's presence hash; a presence
/// change is its kind byte and this (the scripts build them: `'j' .. value`).
pub(super) fn member(node: u16, m: &PresenceMember) -> Vec<u8> {
    let mut w = Writer::default();
    w.u64(u64::from(node)).member(m);
    w.0
}

/// A member back from the presence hash: (its node, who).
pub(super) fn read_member(b: &[u8]) -> Option<(u16, PresenceMember)> {
    let mut r = Reader::new(b);
    let node = u16::try_from(r.u64()?).ok()?;
    let m = r.member()?;
    r.done().then_some((node, m))
}

/// A presence change back: (`JOIN` or `LEAVE`, the node it came from, who).
pub(super) fn read_presence(msg: &[u8]) -> Option<(u8, u16, PresenceMember)> {
    let (&kind, rest) = msg.split_first()?;
    if kind != JOIN && kind != LEAVE {
        return None;
    }
    let (node, m) = read_member(rest)?;
    Some((kind, node, m))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_publication_survives_the_trip() {
        let from = Author {
            conn: Some(7),
            nick: "ann".into(),
            user: Some("u-1".into()),
        };
        for payload in [
            Payload::Text("hé".into()),
            Payload::Binary(vec![0u8, 255, 10].into()),
            Payload::Json(r#"{"a":1}"#.into()),
        ] {
            let b = body(123, &from, &payload, Some(9));
            let room: Arc<str> = "chat/x".into();
            let p = publication(&room, 5, &b).unwrap();
            assert_eq!(
                (p.offset, p.time, &p.from, &p.payload, p.except),
                (5, 123, &from, &payload, Some(9))
            );
            // As the publish script sends it.
            let mut msg = b"pE.1\n5\n".to_vec();
            msg.extend_from_slice(&b);
            assert_eq!(channel_publication(&msg), Some(("E.1", 5, &b[..])));
            // Damaged: nothing, not a panic.
            assert!(publication(&room, 5, &b[..b.len() - 1]).is_none());
        }
        assert!(channel_publication(b"pE\nx\n").is_none());
        assert!(channel_publication(b"q").is_none());
    }

    #[test]
    fn node_messages_and_presence_survive_the_trip() {
        let msgs = [
            NodeMessage::Direct {
                origin: 3,
                target: Target::User("bob".into()),
                from: Author::server(),
                payload: Payload::Text("hi".into()),
            },
            NodeMessage::Disconnect {
                origin: 4,
                request: 11,
                target: Target::Conn(1 << 41),
                code: 4000,
                reason: "bye".into(),
            },
            NodeMessage::Closed {
                request: 11,
                count: 2,
            },
            NodeMessage::Report {
                origin: 2,
                report: b"{}".to_vec(),
            },
            NodeMessage::Query {
                origin: 2,
                request: 9,
                query: b"{\"q\":\"rooms\"}".to_vec(),
            },
            NodeMessage::Answer {
                node: 5,
                request: 9,
                answer: b"{}".to_vec(),
            },
        ];
        for m in msgs {
            assert_eq!(NodeMessage::decode(&m.encode()), Some(m));
        }
        assert_eq!(NodeMessage::decode(b"d\x01"), None);
        let m = PresenceMember {
            user: None,
            nick: "user3".into(),
            conns: 2,
        };
        let mut event = vec![LEAVE];
        event.extend(member(7, &m));
        assert_eq!(read_presence(&event), Some((LEAVE, 7, m.clone())));
        assert_eq!(read_member(&member(7, &m)), Some((7, m)));
        assert_eq!(read_presence(b"q"), None);
    }

    proptest::proptest! {
        /// Whatever is on a channel or in a stream (another program, a
        /// damaged write), reading it answers `None` or a value, never a
        /// panic, and never allocates past its input: every length is
        /// checked against the bytes that are there.
        #[test]
        fn any_bytes_decode_or_are_refused(msg in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
            let room: Arc<str> = "chat/x".into();
            // What is read is never larger than what was there.
            if let Some(p) = publication(&room, 1, &msg) {
                proptest::prop_assert!(p.payload.len() + p.from.nick.len() <= msg.len());
            }
            if let Some((epoch, _, body)) = channel_publication(&msg) {
                proptest::prop_assert!(epoch.len() + body.len() <= msg.len());
            }
            match NodeMessage::decode(&msg) {
                Some(NodeMessage::Direct { payload, from, .. }) => {
                    proptest::prop_assert!(payload.len() + from.nick.len() <= msg.len());
                }
                Some(NodeMessage::Disconnect { reason, .. }) => {
                    proptest::prop_assert!(reason.len() <= msg.len());
                }
                _ => {}
            }
            if let Some((_, _, m)) = read_presence(&msg) {
                proptest::prop_assert!(m.nick.len() <= msg.len());
            }
            let _ = read_member(&msg);
        }

        /// A publication body made from arbitrary parts reads back as them;
        /// cut short anywhere, it reads as nothing.
        #[test]
        fn publications_round_trip(
            time in proptest::num::u64::ANY,
            conn in proptest::option::of(proptest::num::u64::ANY),
            nick in "\\PC{0,30}",
            user in proptest::option::of("\\PC{0,30}"),
            text in proptest::option::of("\\PC{0,100}"),
            blob in proptest::collection::vec(proptest::num::u8::ANY, 0..100),
            except in proptest::option::of(proptest::num::u64::ANY),
            offset in proptest::num::u64::ANY,
            cut in 0usize..1000,
        ) {
            let from = Author { conn, nick: nick.as_str().into(), user: user.as_deref().map(Arc::from) };
            let payload = match text {
                Some(t) => Payload::Text(t.into()),
                None => Payload::Binary(blob.into()),
            };
            let b = body(time, &from, &payload, except);
            let room: Arc<str> = "chat/x".into();
            let p = publication(&room, offset, &b).unwrap();
            proptest::prop_assert_eq!(
                (p.offset, p.time, &p.from, &p.payload, p.except),
                (offset, time, &from, &payload, except)
            );
            let cut = cut % b.len();
            proptest::prop_assert!(publication(&room, offset, &b[..cut]).is_none());
        }
    }
}
