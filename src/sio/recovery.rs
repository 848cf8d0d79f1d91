//! socket.io connection state recovery (socket.io-client ≥ 4.6), on
//! roomcast's history, so that it works on any node of a cluster.
//!
//! With `socketio.recovery` on, a connect answer gives a 4.x client a
//! `pid`, and every room message it is sent ends with its offset
//! (`<offset>:<epoch>:<room>`, [`socketio::offset_tag`]): the client keeps
//! the last one. When a session ends because its connection did (not
//! because the client or the server closed it), what a later connection
//! needs is kept in the broker under the pid for the window: its user,
//! namespace, nickname and rooms with where each was. A client that
//! connects again within it sends `{pid, offset}` in its connect; if the
//! kept session is its own (same user, namespace and home room) and every
//! position can still be resumed from history, the session is taken up:
//! the same pid in the answer (`socket.recovered === true`), its nickname,
//! each room joined again from its position, and what it missed sent once,
//! in order, before anything new. Otherwise it is a fresh session with a
//! new pid (`recovered === false`), counted by why.
//!
//! The client's offset is exact for the room of the last message it got;
//! the other rooms resume from what the server had sent when the session
//! ended.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::admission::{Admitted, Restore};
use crate::broker::Resume;
use crate::metrics::Recovery;
use crate::session::Snapshot;
use crate::state::State;
use crate::wire::socketio;
use crate::wire::Position;

/// Longest pid a client may send back (ours are 22 characters).
const MAX_PID: usize = 64;

/// What a reconnecting client sent in its connect.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Ask {
    /// The session it had.
    pub(super) pid: String,
    /// The last offset it got, if any.
    pub(super) offset: Option<String>,
}

impl Ask {
    /// `{pid, offset}` from a connect's auth payload, if it has a pid.
    pub(super) fn from_auth(auth: Option<&Value>) -> Option<Ask> {
        let auth = auth?;
        let pid = auth.get("pid")?.as_str()?;
        let pid_ok = !pid.is_empty()
            && pid.len() <= MAX_PID
            && pid
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        pid_ok.then(|| Ask {
            pid: pid.to_string(),
            offset: auth
                .get("offset")
                .and_then(Value::as_str)
                .map(str::to_string),
        })
    }
}

/// A kept session, as the broker stores it.
#[derive(Debug, Serialize, Deserialize)]
struct Record {
    route: String,
    user: Option<String>,
    nick: String,
    /// The home room first.
    rooms: Vec<RoomAt>,
}

#[derive(Debug, Serialize, Deserialize)]
struct RoomAt {
    room: String,
    epoch: String,
    offset: u64,
}

/// A new pid: 16 random bytes as 22 URL-safe base64 characters.
pub(super) fn new_pid() -> String {
    use base64::Engine as _;
    let mut raw = [0u8; 16];
    getrandom::fill(&mut raw).expect("the OS has randomness");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

/// What a connect that asks to recover (`ask`) takes up, if it may: the
/// kept session, taken (a pid recovers once), checked against the new
/// connection, each position checked against history. Counted either way.
pub(super) async fn attempt(state: &Arc<State>, admitted: &Admitted, ask: &Ask) -> Option<Restore> {
    let result = restore(state, admitted, ask).await;
    let label = match &result {
        Ok(_) => Recovery::Recovered,
        Err(why) => *why,
    };
    state.metrics.socketio_recovery(label);
    tracing::debug!(result = ?label, route = %admitted.route.name, "socket.io connection state recovery");
    result.ok()
}

async fn restore(state: &Arc<State>, admitted: &Admitted, ask: &Ask) -> Result<Restore, Recovery> {
    let kept = match state.broker.take_session(&ask.pid).get().await {
        Ok(Some(bytes)) => bytes,
        Ok(None) => return Err(Recovery::Unknown),
        Err(_) => return Err(Recovery::Unavailable),
    };
    let record: Record = serde_json::from_slice(&kept).map_err(|_| Recovery::Unknown)?;
    let user = admitted.identity.as_ref().map(|i| i.user.as_str());
    let home_matches = record.rooms.first().map(|r| r.room.as_str()) == Some(&admitted.room);
    let may_join = |room: &str| admitted.identity.as_ref().is_none_or(|i| i.may_join(room));
    if record.user.as_deref() != user
        || *record.route != *admitted.route.name
        || !home_matches
        || !record.rooms.iter().all(|r| may_join(&r.room))
    {
        return Err(Recovery::Mismatch);
    }
    let mut rooms: Vec<(String, Position)> = record
        .rooms
        .into_iter()
        .map(|r| {
            let at = Position {
                epoch: r.epoch,
                offset: r.offset,
            };
            (r.room, at)
        })
        .collect();
    // The client knows best where it is in the room of its last message.
    if let Some((room, epoch, offset)) = ask.offset.as_deref().and_then(socketio::parse_offset_tag)
    {
        if let Some((_, at)) = rooms.iter_mut().find(|(name, _)| name == room) {
            *at = Position {
                epoch: epoch.to_string(),
                offset,
            };
        }
    }
    for (room, at) in &rooms {
        let room: Arc<str> = room.as_str().into();
        match state.broker.recover(&room, Some(at)).get().await {
            Ok(r) if r.resume == Resume::Resumed => {}
            Ok(_) => return Err(Recovery::Lost),
            Err(_) => return Err(Recovery::Unavailable),
        }
    }
    let mut rooms = rooms.into_iter();
    let (_, home) = rooms.next().ok_or(Recovery::Mismatch)?;
    Ok(Restore {
        nick: record.nick,
        home,
        rooms: rooms.collect(),
    })
}

/// Keep what a later connection needs to take this session (of `route`)
/// up again under `pid`, for the recovery window (done when this returns).
pub(super) async fn keep(state: &State, pid: &str, route: &str, snapshot: Snapshot) {
    if snapshot.rooms.is_empty() {
        return;
    }
    let record = Record {
        route: route.to_string(),
        user: snapshot.user.map(|u| u.to_string()),
        nick: snapshot.nick,
        rooms: snapshot
            .rooms
            .into_iter()
            .map(|(room, at)| RoomAt {
                room,
                epoch: at.epoch,
                offset: at.offset,
            })
            .collect(),
    };
    let bytes = serde_json::to_vec(&record).expect("a record serializes");
    let window = state.config.socketio.recovery;
    if !state.broker.keep_session(pid, bytes, window).get().await {
        state.metrics.socketio_recovery(Recovery::NotKept);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_connect_asks_to_recover_with_a_pid_of_ours() {
        let pid = new_pid();
        assert_eq!(pid.len(), 22);
        let ask = Ask::from_auth(Some(
            &json!({"pid": pid, "offset": "3:E:chat/a", "token": "t"}),
        ));
        assert_eq!(
            ask,
            Some(Ask {
                pid,
                offset: Some("3:E:chat/a".into())
            })
        );
        assert_eq!(Ask::from_auth(Some(&json!({"token": "t"}))), None);
        assert_eq!(Ask::from_auth(Some(&json!({"pid": "a b"}))), None);
        assert_eq!(Ask::from_auth(Some(&json!({"pid": "x".repeat(65)}))), None);
        assert_eq!(Ask::from_auth(None), None);
    }
}
