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

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::task::JoinHandle;
use tokio::time::Sleep;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::admission::{Admitted, Restore};
use crate::broker::Resume;
use crate::metrics::Recovery;
use crate::session::{Session, Snapshot};
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

/// Keeps a session's record in the broker while it lives, so that its
/// client can take it up even when this node does not see its connection
/// end (a node that died, a connection not yet timed out): written when
/// its rooms change and every half window (the record lives a window),
/// with the positions its joins found; and when it ends, with where it
/// was (or taken away, when it may not be taken up).
pub(super) struct Keeper {
    pid: String,
    route: Arc<str>,
    /// The session's `rooms_changed` the record has.
    written: u64,
    refresh: Pin<Box<Sleep>>,
    writing: Option<JoinHandle<()>>,
}

impl Keeper {
    pub(super) fn new(state: &State, pid: String, route: Arc<str>) -> Keeper {
        Keeper {
            pid,
            route,
            written: 0,
            refresh: Box::pin(tokio::time::sleep(state.config.socketio.recovery / 2)),
            writing: None,
        }
    }

    /// The pid the client recovers by.
    pub(super) fn pid(&self) -> &str {
        &self.pid
    }

    /// Write the record if the session's rooms changed since it was.
    pub(super) fn rooms_changed(&mut self, state: &Arc<State>, session: &Session) {
        if session.rooms_changed() != self.written {
            self.write(state, session);
        }
    }

    /// Ready when the record is due to be written again.
    pub(super) fn poll_refresh(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        self.refresh.as_mut().poll(cx)
    }

    /// Write the live session's record (in the background: the session
    /// goes on).
    pub(super) fn write(&mut self, state: &Arc<State>, session: &Session) {
        self.written = session.rooms_changed();
        let window = state.config.socketio.recovery;
        self.refresh
            .as_mut()
            .reset(tokio::time::Instant::now() + window / 2);
        let Some(bytes) = record(&self.route, session.snapshot(false)) else {
            return;
        };
        let kept = state.broker.keep_session(&self.pid, bytes, window);
        let (state, before) = (state.clone(), self.writing.take());
        self.writing = Some(tokio::spawn(async move {
            if let Some(before) = before {
                let _ = before.await;
            }
            if !kept.get().await {
                state.metrics.socketio_recovery(Recovery::NotKept);
            }
        }));
    }

    /// The session ended: kept with where it was (`ended`: its
    /// [`Session::snapshot`]), or taken away (`None`: the client left, the
    /// server closed it). Done when this returns.
    pub(super) async fn end(mut self, state: &State, ended: Option<Snapshot>) {
        if let Some(writing) = self.writing.take() {
            let _ = writing.await;
        }
        let bytes = ended.and_then(|s| record(&self.route, s));
        let Some(bytes) = bytes else {
            let _ = state.broker.take_session(&self.pid).get().await;
            return;
        };
        let window = state.config.socketio.recovery;
        if !state
            .broker
            .keep_session(&self.pid, bytes, window)
            .get()
            .await
        {
            state.metrics.socketio_recovery(Recovery::NotKept);
        }
    }
}

/// A session of `route` as the broker keeps it (`None`: in no room, nothing
/// to take up).
fn record(route: &str, snapshot: Snapshot) -> Option<Vec<u8>> {
    if snapshot.rooms.is_empty() {
        return None;
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
    Some(serde_json::to_vec(&record).expect("a record serializes"))
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
