//! The connection as scripts see it: `conn` in every hook.

use std::sync::{Arc, Mutex};

use rhai::{Dynamic, ImmutableString, Map};

use super::action::{Action, RhaiResult};
use super::request::{identity_values, RequestInfo};
use crate::auth::Identity;
use crate::ids::ConnId;

/// Per-connection script state is capped: entries, and bytes as JSON.
const STATE_MAX_ENTRIES: usize = 64;
const STATE_MAX_BYTES: usize = 16 * 1024;

/// The connection as scripts see it (`conn` in every hook). Cheap to clone:
/// Rhai clones arguments, and every clone shares the same state.
#[derive(Clone)]
pub struct Conn(pub(super) Arc<ConnState>);

pub(super) struct ConnState {
    pub(super) id: ConnId,
    pub(super) seq: u64,
    pub(super) route: ImmutableString,
    /// The token's subject, or `()`.
    pub(super) user: Dynamic,
    pub(super) request: RequestInfo,
    // A std Mutex: only the connection's own task calls hooks, so it is never
    // contended; it exists because Rhai's `sync` feature needs `Send + Sync`.
    pub(super) call: Mutex<CallState>,
}

pub(super) struct CallState {
    /// The token's claims (a map), or `()`: a `refresh` replaces them.
    pub(super) claims: Dynamic,
    pub(super) nick: ImmutableString,
    pub(super) pending_nick: Option<ImmutableString>,
    /// The room of the message (or join/leave) being handled.
    pub(super) room: ImmutableString,
    /// Every room the connection is in.
    pub(super) rooms: Vec<ImmutableString>,
    /// `conn.state`: survives between calls.
    pub(super) state: Map,
    pub(super) actions: Vec<Action>,
}

impl Conn {
    /// The script view of connection `id`, the `seq`-th on `route`, in `room`.
    pub fn new(id: ConnId, seq: u64, route: &str, room: &str, nick: &str) -> Conn {
        Conn::with_identity(id, seq, route, room, nick, None)
    }

    /// The same, for a connection authenticated as `identity`.
    pub fn with_identity(
        id: ConnId,
        seq: u64,
        route: &str,
        room: &str,
        nick: &str,
        identity: Option<&Identity>,
    ) -> Conn {
        Conn::with_request(id, seq, route, nick, identity, RequestInfo::default()).in_room(room)
    }

    /// A connection with what its upgrade request said; in no room yet.
    pub fn with_request(
        id: ConnId,
        seq: u64,
        route: &str,
        nick: &str,
        identity: Option<&Identity>,
        request: RequestInfo,
    ) -> Conn {
        let (user, claims) = identity_values(identity);
        Conn(Arc::new(ConnState {
            id,
            seq,
            route: route.into(),
            user,
            request,
            call: Mutex::new(CallState {
                claims,
                nick: nick.into(),
                pending_nick: None,
                room: ImmutableString::new(),
                rooms: Vec::new(),
                state: Map::new(),
                actions: Vec::new(),
            }),
        }))
    }

    fn in_room(self, room: &str) -> Conn {
        self.joined(room);
        self.set_room(room);
        self
    }

    /// The current nickname.
    pub fn nick(&self) -> ImmutableString {
        let st = self.state();
        st.pending_nick.clone().unwrap_or_else(|| st.nick.clone())
    }

    /// The room the next hook call is about (`conn.room`).
    pub fn set_room(&self, room: &str) {
        let mut st = self.state();
        // Most calls are about the room of the call before: no new string.
        if st.room != room {
            st.room = room.into();
        }
    }

    /// The connection entered `room` (`conn.rooms`).
    pub fn joined(&self, room: &str) {
        let mut st = self.state();
        if !st.rooms.iter().any(|r| r == room) {
            st.rooms.push(room.into());
        }
    }

    /// The connection left `room`.
    pub fn left(&self, room: &str) {
        self.state().rooms.retain(|r| r != room);
    }

    /// Change the nickname from outside a hook (a roomcast.v1 `nick` command).
    pub fn rename(&self, nick: &str) {
        self.state().nick = nick.into();
    }

    /// The connection's token was replaced by one for the same user
    /// (a `refresh` command): `conn.claims` are the new token's.
    pub fn refreshed(&self, identity: &Identity) {
        self.state().claims = identity_values(Some(identity)).1;
    }

    /// Take the actions recorded by the hook that just returned, committing its
    /// nickname change.
    pub(crate) fn commit(&self, out: &mut Vec<Action>) {
        let mut st = self.state();
        if let Some(nick) = st.pending_nick.take() {
            st.nick = nick;
        }
        out.append(&mut st.actions);
    }

    /// Forget what a failed hook recorded.
    pub(crate) fn discard(&self) {
        let mut st = self.state();
        st.pending_nick = None;
        st.actions.clear();
    }

    pub(super) fn push(&self, action: Action) {
        self.state().actions.push(action);
    }

    pub(super) fn state(&self) -> std::sync::MutexGuard<'_, CallState> {
        self.0.call.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn set_state(&self, map: Map) -> RhaiResult<()> {
        if map.len() > STATE_MAX_ENTRIES {
            return Err(format!("conn.state holds at most {STATE_MAX_ENTRIES} entries").into());
        }
        let size = serde_json::to_string(&Dynamic::from_map(map.clone()))
            .map(|s| s.len())
            .unwrap_or(usize::MAX);
        if size > STATE_MAX_BYTES {
            return Err(
                format!("conn.state holds at most {STATE_MAX_BYTES} bytes (as JSON)").into(),
            );
        }
        self.state().state = map;
        Ok(())
    }
}

pub(super) fn valid_nick(nick: &str) -> bool {
    !nick.is_empty()
        && nick.len() <= 64
        && !nick.chars().any(char::is_control)
        && !nick.trim().eq_ignore_ascii_case(RESERVED_NICK)
}

/// The nickname of messages the server itself sends (the HTTP API's
/// publishes): no client may take it, so nobody can pass for the server.
pub(crate) const RESERVED_NICK: &str = "server";

/// Whether a nickname is acceptable: 1-64 bytes, no control characters, not
/// `server` (in any case).
pub fn is_valid_nick(nick: &str) -> bool {
    valid_nick(nick)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nobody_may_pass_for_the_server() {
        for nick in ["server", "Server", " SERVER ", ""] {
            assert!(!valid_nick(nick), "{nick:?}");
        }
        for nick in ["servers", "the server", "user1"] {
            assert!(valid_nick(nick), "{nick:?}");
        }
    }

    #[test]
    fn state_is_capped() {
        let c = Conn::new(1, 1, "chat", "chat/lobby", "user1");
        let mut big = Map::new();
        for i in 0..65 {
            big.insert(format!("k{i}").into(), Dynamic::from(1_i64));
        }
        assert!(c.set_state(big).is_err());
        let mut map = Map::new();
        map.insert("n".into(), Dynamic::from("x".repeat(20_000)));
        assert!(c.set_state(map).is_err());
    }

    #[test]
    fn nick_change_is_visible_at_once_and_committed_only_on_success() {
        let c = Conn::new(1, 1, "chat", "chat/lobby", "user1");
        c.state().pending_nick = Some("bob".into());
        assert_eq!(c.nick(), "bob");
        c.discard();
        assert_eq!(c.nick(), "user1");
        c.state().pending_nick = Some("bob".into());
        c.commit(&mut Vec::new());
        assert_eq!(c.nick(), "bob");
    }
}
