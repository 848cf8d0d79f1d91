//! Kept socket.io sessions (connection state recovery) in Redis: one key
//! per session, `{prefix}:sio:{pid}`, written with its time to live (the
//! recovery window) and taken with `GETDEL`, so any node can take a session
//! up, once.

use std::sync::Arc;
use std::time::Duration;

use super::Inner;
use crate::broker::BrokerError;
use crate::metrics::BrokerOp;

impl Inner {
    fn session_key(&self, key: &str) -> String {
        format!("{}:sio:{key}", self.config.prefix)
    }

    /// Keep `record` under `key` for `ttl`; whether Redis took it.
    pub(super) async fn keep_session(
        self: Arc<Self>,
        key: String,
        record: Vec<u8>,
        ttl: Duration,
    ) -> bool {
        if !self.link.is_up() {
            self.error(BrokerOp::Session);
            return false;
        }
        let mut con = self.link.cmd.clone();
        let set: redis::RedisResult<()> = redis::cmd("SET")
            .arg(self.session_key(&key))
            .arg(record)
            .arg("PX")
            .arg((ttl.as_millis() as u64).max(1))
            .query_async(&mut con)
            .await;
        if set.is_err() {
            self.error(BrokerOp::Session);
        }
        set.is_ok()
    }

    /// Take what is kept under `key`.
    pub(super) async fn take_session(
        self: Arc<Self>,
        key: String,
    ) -> Result<Option<Vec<u8>>, BrokerError> {
        if !self.link.is_up() {
            self.error(BrokerOp::Session);
            return Err(BrokerError::Unavailable("Redis unreachable".into()));
        }
        let mut con = self.link.cmd.clone();
        let taken: redis::RedisResult<Option<Vec<u8>>> = redis::cmd("GETDEL")
            .arg(self.session_key(&key))
            .query_async(&mut con)
            .await;
        taken.map_err(|e| {
            self.error(BrokerOp::Session);
            BrokerError::Unavailable(e.to_string())
        })
    }
}
