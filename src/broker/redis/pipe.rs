//! This node's writes to Redis, in the order they were made: publishes and
//! presence changes. One task sends them in pipelined batches (one round
//! trip per batch, however many sessions wrote), so a connection's
//! messages reach Redis in the order it sent them and a leave never
//! overtakes its join.
//!
//! The queue is bounded in count: a write that finds it full fails at once
//! (a publish is then delivered here only and its sender told), instead of
//! piling up while Redis is slow.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::{Cmd, RedisResult, Script, Value};
use tokio::sync::{oneshot, Notify};

use super::sub::Sub;

/// Writes queued at most; past this a write fails at once.
pub(super) const QUEUE_MAX: usize = 65_536;
/// Writes per round trip at most.
const BATCH_MAX: usize = 512;

/// One write.
pub(super) struct Job {
    /// The script call.
    pub(super) cmd: Cmd,
    /// Sent only once this subscription is ready (a publish into a room
    /// with members here: they must receive it).
    pub(super) after: Option<Arc<Sub>>,
    /// Where the answer goes (`None`: nobody waits for it).
    pub(super) reply: Option<oneshot::Sender<RedisResult<Value>>>,
    /// What to do if Redis fails it (whether or not anyone waits).
    pub(super) on_fail: Option<Box<dyn FnOnce() + Send + Sync>>,
}

impl Job {
    fn finish(self, r: RedisResult<Value>) {
        if r.is_err() {
            if let Some(f) = self.on_fail {
                f();
            }
        }
        if let Some(tx) = self.reply {
            let _ = tx.send(r);
        }
    }
}

/// The queue, and the scripts its jobs may call (loaded before use).
pub(super) struct Pipe {
    queue: Mutex<VecDeque<Job>>,
    len: AtomicUsize,
    wake: Notify,
    scripts: Vec<Script>,
}

impl Pipe {
    pub(super) fn new(scripts: Vec<Script>) -> Pipe {
        Pipe {
            queue: Mutex::new(VecDeque::new()),
            len: AtomicUsize::new(0),
            wake: Notify::new(),
            scripts,
        }
    }

    /// Queue `job`; gives it back if the queue is full.
    pub(super) fn push(&self, job: Job) -> Result<(), Job> {
        if self.len.fetch_add(1, Ordering::AcqRel) >= QUEUE_MAX {
            self.len.fetch_sub(1, Ordering::AcqRel);
            return Err(job);
        }
        self.queue
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push_back(job);
        self.wake.notify_one();
        Ok(())
    }

    fn take(&self) -> Vec<Job> {
        let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        let n = q.len().min(BATCH_MAX);
        let batch: Vec<Job> = q.drain(..n).collect();
        self.len.fetch_sub(batch.len(), Ordering::AcqRel);
        batch
    }

    /// Send queued writes until the broker goes away.
    pub(super) async fn run(
        self: Arc<Self>,
        mut con: redis::aio::ConnectionManager,
        wait: Duration,
        on_result: impl Fn(bool) + Send + Sync + 'static,
    ) {
        let mut loaded = false;
        loop {
            let batch = self.take();
            if batch.is_empty() {
                self.wake.notified().await;
                continue;
            }
            // Publishes into rooms whose subscription is not yet confirmed
            // wait for it (their own members must get them).
            let deadline = tokio::time::Instant::now() + wait;
            for job in &batch {
                if let Some(sub) = &job.after {
                    if !sub.is_ready() {
                        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                        sub.wait_ready(left).await;
                    }
                }
            }
            let mut pipe = redis::pipe();
            pipe.ignore_errors();
            if !loaded {
                for s in &self.scripts {
                    pipe.load_script(s).ignore();
                }
            }
            for job in &batch {
                pipe.add_command(job.cmd.clone());
            }
            let result: RedisResult<Vec<RedisResult<Value>>> = pipe.query_async(&mut con).await;
            match result {
                Ok(results) => {
                    loaded = true;
                    let mut noscript = false;
                    for (job, r) in batch.into_iter().zip(results) {
                        noscript |= matches!(&r, Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript));
                        job.finish(r);
                    }
                    if noscript {
                        // Redis restarted between batches: load them again.
                        loaded = false;
                    }
                    on_result(true);
                }
                Err(e) => {
                    loaded = false;
                    on_result(false);
                    tracing::debug!(error = %e, "a batch of writes to Redis failed");
                    for job in batch {
                        let failed =
                            redis::RedisError::from((redis::ErrorKind::Io, "Redis unreachable"));
                        job.finish(Err(failed));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(failed: &Arc<AtomicUsize>) -> Job {
        let failed = failed.clone();
        Job {
            cmd: redis::cmd("PING"),
            after: None,
            reply: None,
            on_fail: Some(Box::new(move || {
                failed.fetch_add(1, Ordering::AcqRel);
            })),
        }
    }

    /// While Redis does not answer, writes wait in one queue of
    /// `QUEUE_MAX`, never more: the next one is handed back at once (its
    /// publish is then delivered on this node only, its sender told).
    #[test]
    fn writes_wait_in_one_bounded_queue() {
        let pipe = Pipe::new(Vec::new());
        let failed = Arc::new(AtomicUsize::new(0));
        for _ in 0..QUEUE_MAX {
            assert!(pipe.push(job(&failed)).is_ok());
        }
        assert!(pipe.push(job(&failed)).is_err(), "full");
        assert_eq!(pipe.len.load(Ordering::Acquire), QUEUE_MAX);
        // Taken in batches, it has room again.
        assert_eq!(pipe.take().len(), BATCH_MAX);
        assert!(pipe.push(job(&failed)).is_ok());
        assert_eq!(
            failed.load(Ordering::Acquire),
            0,
            "nothing failed meanwhile"
        );
    }
}
