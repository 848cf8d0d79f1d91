//! `[[routes]]`: WebSocket routes and what drives them.

use serde::{Deserialize, Serialize};

use super::{bad, Error, RateLimit};
use crate::names::valid_name;

/// One WebSocket route and the script (or native handler) that drives it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Route name; the URL path is `/{name}` (and `/{name}/{room}`).
    pub name: String,
    /// Script file name, relative to `scripts.dir`.
    #[serde(default)]
    pub script: String,
    /// A built-in handler written in Rust instead of a script, for routes that
    /// need no scripting and every last message per second.
    #[serde(default)]
    pub native: Option<Native>,
    /// Room joined by `/{name}` with no room segment.
    #[serde(default = "default_room")]
    pub default_room: String,
    /// This route's message rate limit, instead of `[limits.rate]` (a room
    /// policy's `rate` wins over both). Native routes, which only answer
    /// their sender, have none unless they set one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<RateLimit>,
    /// Whether its WebSocket clients may use permessage-deflate (when
    /// `[compression] enabled`); `false` declines every offer.
    #[serde(default = "yes")]
    pub compression: bool,
}

fn yes() -> bool {
    true
}

fn default_room() -> String {
    "lobby".to_string()
}

/// Built-in route handlers (no script).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Native {
    /// Send every message back unchanged (binary as binary).
    Echo,
    /// Answer text in upper case with "!!!".
    Shout,
}

/// Paths the server itself answers: no route may take them.
const RESERVED: [&str; 5] = ["metrics", "healthz", "readyz", "api", "assets"];

impl RouteConfig {
    /// A route `name` driven by `script`, with the default room.
    pub fn script(name: &str, script: &str) -> RouteConfig {
        RouteConfig {
            name: name.into(),
            script: script.into(),
            native: None,
            default_room: default_room(),
            rate: None,
            compression: true,
        }
    }

    /// A route `name` served by a native handler.
    pub fn native(name: &str, native: Native) -> RouteConfig {
        RouteConfig {
            name: name.into(),
            script: String::new(),
            native: Some(native),
            default_room: default_room(),
            rate: None,
            compression: true,
        }
    }

    /// The same route with its own rate limit.
    pub fn with_rate(mut self, rate: RateLimit) -> RouteConfig {
        self.rate = Some(rate);
        self
    }

    /// The rate limit its messages are under, given `[limits.rate]`.
    pub fn effective_rate<'a>(&'a self, default: &'a RateLimit) -> std::borrow::Cow<'a, RateLimit> {
        match (&self.rate, self.native) {
            (Some(r), _) => std::borrow::Cow::Borrowed(r),
            (None, Some(_)) => std::borrow::Cow::Owned(RateLimit::off()),
            (None, None) => std::borrow::Cow::Borrowed(default),
        }
    }

    pub(super) fn validate(&self, i: usize) -> Result<(), Error> {
        if !valid_name(&self.name) {
            return bad(
                &format!("routes[{i}].name"),
                "must be 1-64 characters of A-Z a-z 0-9 . _ -",
            );
        }
        if RESERVED.contains(&self.name.as_str()) {
            return bad(&format!("routes[{i}].name"), "is a reserved path");
        }
        if !valid_name(&self.default_room) {
            return bad(
                &format!("routes[{i}].default_room"),
                "must be 1-64 characters of A-Z a-z 0-9 . _ -",
            );
        }
        if let Some(rate) = &self.rate {
            rate.validate(&format!("routes[{i}].rate"))?;
        }
        match (self.script.is_empty(), self.native.is_some()) {
            (true, false) => bad(
                &format!("routes[{i}].script"),
                "must name a script file (or set `native`)",
            ),
            (false, true) => bad(
                &format!("routes[{i}]"),
                "has both `script` and `native`: choose one",
            ),
            _ => Ok(()),
        }
    }
}
