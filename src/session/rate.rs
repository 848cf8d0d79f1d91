//! Per-connection flood control: a token bucket (governor's GCRA) in front of
//! the script, a notice to the client when it starts dropping, and a verdict
//! once a client keeps flooding.

use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

use crate::config::RateLimit;

/// What to do with one incoming message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Verdict {
    /// Within the rate: handle it.
    Allow,
    /// Over the rate: drop it; tell the client if `notify`.
    Drop {
        /// Tell the client (at most once a second).
        notify: bool,
    },
    /// Dropped too many within the abuse window: close with 1008.
    Abuse,
}

/// Rate state of one connection.
pub(super) struct Rate {
    limiter: DefaultDirectRateLimiter,
    close_after: u32,
    window: Duration,
    window_start: Instant,
    dropped: u32,
    last_notice: Option<Instant>,
}

impl Rate {
    /// `None` when rate limiting is off (`messages_per_second = 0`).
    pub(super) fn new(cfg: &RateLimit) -> Option<Rate> {
        let per_second = NonZeroU32::new(cfg.messages_per_second)?;
        let burst = NonZeroU32::new(cfg.burst).unwrap_or(per_second);
        Some(Rate {
            limiter: RateLimiter::direct(Quota::per_second(per_second).allow_burst(burst)),
            close_after: cfg.close_after_dropped.max(1),
            window: cfg.abuse_window,
            window_start: Instant::now(),
            dropped: 0,
            last_notice: None,
        })
    }

    /// Account for one incoming message.
    pub(super) fn check(&mut self) -> Verdict {
        if self.limiter.check().is_ok() {
            return Verdict::Allow;
        }
        let now = Instant::now();
        if now.duration_since(self.window_start) > self.window {
            self.window_start = now;
            self.dropped = 0;
        }
        self.dropped += 1;
        if self.dropped >= self.close_after {
            return Verdict::Abuse;
        }
        // Tell the client at most once a second, so the notices cannot become
        // a flood of their own.
        let notify = self
            .last_notice
            .is_none_or(|t| now.duration_since(t) >= Duration::from_secs(1));
        if notify {
            self.last_notice = Some(now);
        }
        Verdict::Drop { notify }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_drop_with_one_notice_then_abuse() {
        let mut r = Rate::new(&RateLimit {
            messages_per_second: 1,
            burst: 3,
            close_after_dropped: 5,
            abuse_window: Duration::from_secs(60),
        })
        .unwrap();
        for _ in 0..3 {
            assert_eq!(r.check(), Verdict::Allow);
        }
        assert_eq!(r.check(), Verdict::Drop { notify: true });
        for _ in 0..3 {
            assert_eq!(r.check(), Verdict::Drop { notify: false });
        }
        assert_eq!(r.check(), Verdict::Abuse);
    }

    #[test]
    fn zero_rate_disables() {
        assert!(Rate::new(&RateLimit {
            messages_per_second: 0,
            ..RateLimit::default()
        })
        .is_none());
    }
}
