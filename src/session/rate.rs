//! Per-connection flood control: a token bucket (governor's GCRA) in front of
//! the script. Over the rate nothing is dropped: the session holds the
//! message back until the bucket has refilled, and its driver stops reading
//! meanwhile, so TCP flow control slows the sender. Only a client that keeps
//! pushing against the limit is closed (1008).

use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

use crate::config::RateLimit;

/// What to do with one incoming message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Verdict {
    /// Within the rate: handle it.
    Allow,
    /// Over the rate: hold it back (and read nothing more) for this long.
    Wait(Duration),
    /// Held back too many times within the abuse window: close with 1008.
    Abuse,
}

/// Rate state of one connection (or of one connection in one room).
pub(super) struct Rate {
    limiter: DefaultDirectRateLimiter,
    close_after: u32,
    window: Duration,
    window_start: Instant,
    held: u32,
}

impl Rate {
    /// `None` when rate limiting is off (`messages_per_second = 0`).
    pub(super) fn new(cfg: &RateLimit) -> Option<Rate> {
        let per_second = NonZeroU32::new(cfg.messages_per_second)?;
        let burst = NonZeroU32::new(cfg.burst).unwrap_or(per_second);
        Some(Rate {
            limiter: RateLimiter::direct(Quota::per_second(per_second).allow_burst(burst)),
            close_after: cfg.close_after_throttled.max(1),
            window: cfg.abuse_window,
            window_start: Instant::now(),
            held: 0,
        })
    }

    /// Account for one incoming message. A message that was told to wait
    /// comes back here once the wait is over, and counts again only if it
    /// must wait again.
    pub(super) fn check(&mut self) -> Verdict {
        let wait = match self.limiter.check() {
            Ok(()) => return Verdict::Allow,
            Err(not_until) => not_until.wait_time_from(DefaultClock::default().now()),
        };
        let now = Instant::now();
        if now.duration_since(self.window_start) > self.window {
            self.window_start = now;
            self.held = 0;
        }
        self.held += 1;
        if self.held >= self.close_after {
            return Verdict::Abuse;
        }
        // GCRA answers "not before": never a zero wait, which would spin.
        Verdict::Wait(wait.max(Duration::from_millis(1)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_wait_then_abuse() {
        let mut r = Rate::new(&RateLimit {
            messages_per_second: 1,
            burst: 3,
            close_after_throttled: 5,
            abuse_window: Duration::from_secs(60),
        })
        .unwrap();
        for _ in 0..3 {
            assert_eq!(r.check(), Verdict::Allow);
        }
        for _ in 0..4 {
            match r.check() {
                Verdict::Wait(d) => {
                    assert!(d > Duration::ZERO && d <= Duration::from_secs(1), "{d:?}")
                }
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(r.check(), Verdict::Abuse);
    }

    #[test]
    fn a_wait_ends_when_a_token_is_back() {
        let mut r = Rate::new(&RateLimit {
            messages_per_second: 100,
            burst: 1,
            ..RateLimit::default()
        })
        .unwrap();
        assert_eq!(r.check(), Verdict::Allow);
        let Verdict::Wait(d) = r.check() else {
            panic!("the second message within 10 ms must wait")
        };
        std::thread::sleep(d);
        assert_eq!(r.check(), Verdict::Allow);
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
