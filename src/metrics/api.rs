//! `roomcast_api_actions_total`: what was done through the HTTP API (and
//! the operator view), by the name of the key that did it.

use prometheus::{IntCounterVec, Opts, Registry};

use super::MetricSet;

/// What `roomcast_api_actions_total` counts (its `action` label).
pub const API_ACTIONS: [&str; 2] = ["publish", "disconnect"];

/// The counter, registered; `api.key`'s series exist from the start (zeros
/// until used).
pub(super) fn actions(registry: &Registry) -> IntCounterVec {
    let c = IntCounterVec::new(
        Opts::new(
            "roomcast_api_actions_total",
            "Publishes and disconnects through the HTTP API (and the operator view), by the name of the key used (api.key is `default`).",
        ),
        &["action", "key"],
    )
    .expect("valid metric");
    registry
        .register(Box::new(c.clone()))
        .expect("unique metric");
    for action in API_ACTIONS {
        c.with_label_values(&[action, crate::config::DEFAULT_KEY_NAME]);
    }
    c
}

impl MetricSet {
    /// Count an action through the HTTP API: `action` is one of
    /// [`API_ACTIONS`], `key` a configured key's name (a fixed set).
    pub fn api_action(&self, action: &'static str, key: &str) {
        self.api_actions.with_label_values(&[action, key]).inc();
    }

    /// Make `key`'s series of `roomcast_api_actions_total` exist (zeros),
    /// so a dashboard sees every configured key before it acts.
    pub fn api_key_named(&self, key: &str) {
        for action in API_ACTIONS {
            self.api_actions.with_label_values(&[action, key]);
        }
    }
}
