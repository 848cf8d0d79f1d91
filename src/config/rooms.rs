//! `[[rooms]]`: room policies, matched by room name.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{bad, Error, RateLimit};
use crate::names;

/// What a room allows and keeps, for rooms whose name matches `pattern`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RoomPolicy {
    /// Room names this policy applies to: an exact name (`chat/lobby`), or a
    /// prefix ending in `*` (`chat/team-*`, `chat/*`, `*`).
    pub pattern: String,
    /// Script for the room's messages, instead of its route's.
    pub script: Option<String>,
    /// Messages kept for `history` and resume (0 = none).
    pub history_size: usize,
    /// How long a room's history (and its epoch) lives after its last
    /// message; messages older than this are dropped from the history.
    #[serde(with = "humantime_serde")]
    pub history_age: Duration,
    /// Most connections in the room at once (0 = no cap).
    pub max_members: usize,
    /// Whether roomcast.v1 clients may `publish` (scripts and the HTTP API always may).
    pub publish: bool,
    /// Whether members see `join`/`leave` events and may ask for `presence`.
    pub presence: bool,
    /// Rate limit on messages into these rooms, instead of the route's (or
    /// `[limits.rate]`): a raw client's messages in its room, a roomcast.v1
    /// or socket.io client's publishes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate: Option<RateLimit>,
}

impl Default for RoomPolicy {
    fn default() -> Self {
        RoomPolicy {
            pattern: "*".into(),
            script: None,
            history_size: 100,
            history_age: Duration::from_secs(3600),
            max_members: 0,
            publish: true,
            presence: true,
            rate: None,
        }
    }
}

impl RoomPolicy {
    /// Does this policy apply to room `name`?
    pub fn matches(&self, name: &str) -> bool {
        names::pattern_matches(&self.pattern, name)
    }

    pub(super) fn validate(&self, i: usize) -> Result<(), Error> {
        if !names::valid_pattern(&self.pattern) {
            return bad(
                &format!("rooms[{i}].pattern"),
                "must be a room name, or a prefix ending in `*`",
            );
        }
        if self.script.as_deref() == Some("") {
            return bad(&format!("rooms[{i}].script"), "must name a script file");
        }
        if let Some(rate) = &self.rate {
            rate.validate(&format!("rooms[{i}].rate"))?;
        }
        Ok(())
    }
}

/// The configured policies, looked up by room name: the first match wins,
/// and rooms no policy matches get the defaults.
#[derive(Debug, Clone)]
pub struct Policies {
    list: Vec<Arc<RoomPolicy>>,
    fallback: Arc<RoomPolicy>,
}

impl Policies {
    /// Policies in the order given (first match wins).
    pub fn new(list: &[RoomPolicy]) -> Policies {
        Policies {
            list: list.iter().cloned().map(Arc::new).collect(),
            fallback: Arc::new(RoomPolicy::default()),
        }
    }

    /// The policy for room `name`.
    pub fn for_room(&self, name: &str) -> &Arc<RoomPolicy> {
        self.list
            .iter()
            .find(|p| p.matches(name))
            .unwrap_or(&self.fallback)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_match_wins_and_the_rest_get_defaults() {
        let policies = Policies::new(&[
            RoomPolicy {
                pattern: "vip/*".into(),
                max_members: 1,
                ..RoomPolicy::default()
            },
            RoomPolicy {
                pattern: "*".into(),
                max_members: 7,
                ..RoomPolicy::default()
            },
        ]);
        assert_eq!(policies.for_room("vip/x").max_members, 1);
        assert_eq!(policies.for_room("chat/x").max_members, 7);
        assert_eq!(Policies::new(&[]).for_room("chat/x").max_members, 0);
    }
}
