//! A session that takes up an earlier one (a socket.io client recovering
//! its state, docs/socketio.md): its home room entered from where the
//! client was, `on_connect` once that is done, then its other rooms joined
//! again one after another, each from its position; and what a later
//! connection needs to do that ([`Session::snapshot`]).

use std::sync::Arc;

use super::Session;
use crate::close;
use crate::outbox::CloseMode;
use crate::wire::Position;

/// What a later connection needs to take a session up again.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Snapshot {
    /// Its user (from its token).
    pub(crate) user: Option<Arc<str>>,
    /// Its nickname.
    pub(crate) nick: String,
    /// Its rooms, the home room first, each with where it is in the
    /// room's stream.
    pub(crate) rooms: Vec<(String, Position)>,
}

impl Session {
    /// A join completed or failed: the first (the home room's, entered
    /// with its position) lets `on_connect` run; then the next room of a
    /// restored session.
    pub(super) fn after_join(&mut self) {
        if self.connect_pending {
            self.connect_pending = false;
            if self.rooms.is_empty() {
                // Its room could not be entered (the broker failed it).
                self.rejoins.clear();
                self.me.outbox.close(
                    close::INTERNAL_ERROR,
                    "its room is unavailable",
                    CloseMode::AfterQueued,
                );
                return;
            }
            self.connected();
        }
        self.next_rejoin();
    }

    /// Join the rooms still to join again, as far as the broker answers
    /// at once (the rest when it answers: [`after_join`](Self::after_join)).
    fn next_rejoin(&mut self) {
        if self.rejoining {
            return;
        }
        self.rejoining = true;
        while self.pending.join.is_none() && !self.connect_pending {
            let Some((room, since)) = self.rejoins.pop() else {
                break;
            };
            self.join_command(&room, Some(&since), &None);
        }
        self.rejoining = false;
    }

    /// How many times its rooms changed (a join, a leave).
    pub(crate) fn rooms_changed(&self) -> u64 {
        self.rooms_changed
    }

    /// Its user, nickname and rooms with where each is. `ended`: the
    /// later of where its join found the room's stream and what this node
    /// has delivered of it since (a stream that began again since: the
    /// new); else (a live session's record, for when this node is gone)
    /// where its joins found them (never past what its client has seen;
    /// what came since is sent again).
    pub(crate) fn snapshot(&self, ended: bool) -> Snapshot {
        let rooms = self
            .rooms
            .iter()
            .filter_map(|j| {
                let here = if ended { j.room.position() } else { None };
                let position = match (here, j.at.clone()) {
                    (Some((e, n)), Some((a, m))) if *e == *a => (e, n.max(m)),
                    (Some(here), _) => here,
                    (None, Some(at)) => at,
                    (None, None) => return None,
                };
                let (epoch, offset) = position;
                Some((
                    j.room.name().to_string(),
                    Position {
                        epoch: epoch.to_string(),
                        offset,
                    },
                ))
            })
            .collect();
        Snapshot {
            user: self.me.user.clone(),
            nick: self.nick.to_string(),
            rooms,
        }
    }
}
