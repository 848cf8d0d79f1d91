//! The connection's token: its expiry (Close 4001) and its refresh, a
//! `refresh` command that replaces it with a fresh token for the same user
//! without cutting the connection (docs/protocol.md).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::Session;
use crate::auth::AuthError;
use crate::close;
use crate::outbox::CloseMode;
use crate::wire::{CommandId, Event};

/// Now, since the Unix epoch.
fn now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

impl Session {
    /// How long until the connection's token expires, if it has one.
    pub(crate) fn expires_in(&self) -> Option<Duration> {
        // To the millisecond: the token ends at `exp`, not up to a second
        // later.
        let at = Duration::from_secs(self.identity.as_ref()?.expires_at?);
        Some(
            at.saturating_sub(now())
                .min(Duration::from_secs(365 * 24 * 3600)),
        )
    }

    /// Whether a `refresh` moved the token's expiry since the last call
    /// (the transport then re-arms its timer from [`Session::expires_in`]).
    pub(crate) fn take_expiry_moved(&mut self) -> bool {
        std::mem::take(&mut self.expiry_moved)
    }

    /// The token expired: close with 4001.
    pub(crate) fn expire(&mut self) {
        if self.me.outbox.close(
            close::TOKEN_EXPIRED,
            "token expired",
            CloseMode::AfterQueued,
        ) {
            self.state.metrics.token_expirations.inc();
        }
    }

    /// `refresh`: verify `token` as a connect token is verified; if it names
    /// the same user and expires no earlier than the current one, it becomes
    /// the connection's token (expiry, claims, rooms claim for later joins).
    /// Otherwise the old token stands and the client is told why.
    pub(super) fn refresh_command(&mut self, token: &str, id: &CommandId) {
        match self.check_refresh(token) {
            Ok(identity) => {
                let expires_at = identity.expires_at;
                self.conn.refreshed(&identity);
                self.identity = Some(Box::new(identity));
                self.expiry_moved = true;
                self.state.metrics.token_refreshes_ok.inc();
                tracing::debug!(conn = self.me.id, ?expires_at, "token refreshed");
                self.answer(&Event::Refreshed { expires_at, id });
            }
            Err(reason) => {
                self.state.metrics.token_refreshes_refused.inc();
                tracing::info!(conn = self.me.id, user = ?self.me.user, "token refresh refused: {reason}");
                self.answer(&Event::Error {
                    code: "token_refused",
                    reason: &reason,
                    id,
                });
            }
        }
    }

    fn check_refresh(&self, token: &str) -> Result<crate::auth::Identity, String> {
        let Some(auth) = self.state.auth.as_ref() else {
            return Err(
                "authentication is off on this server: there is no token to refresh".into(),
            );
        };
        let Some(current) = self.identity.as_deref() else {
            return Err("this connection was opened without a token: reconnect with one".into());
        };
        let fresh = auth.verify(token).map_err(|e| match e {
            AuthError::Expired => "the new token has expired".to_string(),
            other => other.to_string(),
        })?;
        if fresh.user != current.user {
            return Err(format!(
                "the new token's sub {:?} is not this connection's user",
                fresh.user
            ));
        }
        match (current.expires_at, fresh.expires_at) {
            (Some(old), Some(new)) if new < old => Err(format!(
                "the new token expires ({new}) before the current one ({old})"
            )),
            _ => Ok(fresh),
        }
    }
}
