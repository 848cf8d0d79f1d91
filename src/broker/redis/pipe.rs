//! This node's writes to Redis, in the order they were made: publishes and
//! presence changes. They are sent in pipelined batches (one round trip per
//! batch, however many sessions wrote), so a connection's messages reach
//! Redis in the order it sent them and a leave never overtakes its join.
//!
//! Writes queue in lanes, each drained by a task of its own while it has
//! work: one lane for a single Redis; one per hash slot in a Redis Cluster
//! (a room's writes all have its slot, and a batch of one slot is one
//! pipeline to the shard that owns it), so a shard that is down holds up
//! only its own rooms' writes.
//!
//! The queue is bounded in count: a write that finds it full fails at once
//! (a publish is then delivered here only and its sender told), instead of
//! piling up while Redis is slow.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use redis::{Cmd, RedisResult, Script, Value};
use tokio::sync::oneshot;

use super::link::Con;
use super::sub::Sub;

/// Writes queued at most; past this a write fails at once.
pub(super) const QUEUE_MAX: usize = 65_536;
/// Writes per round trip at most.
const BATCH_MAX: usize = 512;
/// The hash slots of a Redis Cluster.
pub(super) const SLOTS: usize = 16_384;

/// One write.
pub(super) struct Job {
    /// The script call.
    pub(super) cmd: Cmd,
    /// Its lane: the hash slot of its keys in a cluster, else 0.
    pub(super) lane: u16,
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

/// The hash slot of `key` in a Redis Cluster (CRC16 of its hash tag).
pub(super) fn slot(key: &[u8]) -> u16 {
    let tag = key
        .iter()
        .position(|&b| b == b'{')
        .and_then(|open| {
            let rest = &key[open + 1..];
            let close = rest.iter().position(|&b| b == b'}')?;
            (close > 0).then(|| &rest[..close])
        })
        .unwrap_or(key);
    crc16::State::<crc16::XMODEM>::calculate(tag) % SLOTS as u16
}

/// Writes of one lane, and whether a task is draining them.
#[derive(Default)]
struct Lane {
    queue: Mutex<VecDeque<Job>>,
    running: AtomicBool,
    /// The scripts are known to the Redis this lane writes to.
    loaded: AtomicBool,
}

impl Lane {
    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Job>> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Where batches go once the broker has started.
struct Runner {
    con: Con,
    /// How long a batch waits for its rooms' subscriptions at most.
    wait: Duration,
    /// What each batch saw of Redis (reachable or not).
    on_result: Box<dyn Fn(bool) + Send + Sync>,
}

/// The lanes, and the scripts their jobs may call (loaded before use).
pub(super) struct Pipe {
    lanes: Box<[Lane]>,
    len: AtomicUsize,
    scripts: Vec<Script>,
    runner: OnceLock<Runner>,
}

impl Pipe {
    /// A pipe of `lanes` lanes (1, or [`SLOTS`]).
    pub(super) fn new(scripts: Vec<Script>, lanes: usize) -> Pipe {
        Pipe {
            lanes: (0..lanes.max(1)).map(|_| Lane::default()).collect(),
            len: AtomicUsize::new(0),
            scripts,
            runner: OnceLock::new(),
        }
    }

    /// Send writes on `con` from now on (those queued before, too).
    pub(super) fn start(
        self: &Arc<Self>,
        con: Con,
        wait: Duration,
        on_result: impl Fn(bool) + Send + Sync + 'static,
    ) {
        let _ = self.runner.set(Runner {
            con,
            wait,
            on_result: Box::new(on_result),
        });
        for i in 0..self.lanes.len() {
            if !self.lanes[i].lock().is_empty() {
                self.kick(i);
            }
        }
    }

    /// Queue `job`; gives it back if the queue is full.
    pub(super) fn push(self: &Arc<Self>, job: Job) -> Result<(), Job> {
        if self.len.fetch_add(1, Ordering::AcqRel) >= QUEUE_MAX {
            self.len.fetch_sub(1, Ordering::AcqRel);
            return Err(job);
        }
        let i = usize::from(job.lane) % self.lanes.len();
        self.lanes[i].lock().push_back(job);
        self.kick(i);
        Ok(())
    }

    /// Make sure a task drains lane `i` (once the broker has started).
    fn kick(self: &Arc<Self>, i: usize) {
        if self.runner.get().is_none() || self.lanes[i].running.swap(true, Ordering::AcqRel) {
            return;
        }
        tokio::spawn(self.clone().drain(i));
    }

    fn take(&self, i: usize) -> Vec<Job> {
        let mut q = self.lanes[i].lock();
        let n = q.len().min(BATCH_MAX);
        let batch: Vec<Job> = q.drain(..n).collect();
        self.len.fetch_sub(batch.len(), Ordering::AcqRel);
        batch
    }

    /// Send lane `i`'s writes until it is empty.
    async fn drain(self: Arc<Self>, i: usize) {
        let Some(runner) = self.runner.get() else {
            return;
        };
        let lane = &self.lanes[i];
        loop {
            let batch = self.take(i);
            if batch.is_empty() {
                lane.running.store(false, Ordering::Release);
                // A write that came after the last look, before the flag fell.
                if self.lanes[i].lock().is_empty() || lane.running.swap(true, Ordering::AcqRel) {
                    return;
                }
                continue;
            }
            self.send(lane, runner, batch).await;
        }
    }

    /// One batch, in one round trip (two if Redis had forgotten the scripts).
    async fn send(&self, lane: &Lane, runner: &Runner, batch: Vec<Job>) {
        // Publishes into rooms whose subscription is not yet confirmed
        // wait for it (their own members must get them).
        let deadline = tokio::time::Instant::now() + runner.wait;
        for job in &batch {
            if let Some(sub) = &job.after {
                if !sub.is_ready() {
                    let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                    sub.wait_ready(left).await;
                }
            }
        }
        let mut batch = batch;
        for attempt in 0..2 {
            let mut pipe = redis::pipe();
            pipe.ignore_errors();
            if !lane.loaded.load(Ordering::Acquire) {
                for s in &self.scripts {
                    pipe.load_script(s).ignore();
                }
            }
            for job in &batch {
                pipe.add_command(job.cmd.clone());
            }
            let mut con = runner.con.clone();
            let result: RedisResult<Vec<RedisResult<Value>>> = pipe.query_async(&mut con).await;
            match result {
                Ok(results) => {
                    lane.loaded.store(true, Ordering::Release);
                    let mut again = Vec::new();
                    for (job, r) in batch.into_iter().zip(results) {
                        let noscript = matches!(&r, Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript));
                        if noscript && attempt == 0 {
                            again.push(job);
                        } else {
                            job.finish(r);
                        }
                    }
                    (runner.on_result)(true);
                    if again.is_empty() {
                        return;
                    }
                    // Redis restarted (or a replica took over) between
                    // batches: load the scripts there, and send those again.
                    lane.loaded.store(false, Ordering::Release);
                    batch = again;
                }
                Err(e) => {
                    lane.loaded.store(false, Ordering::Release);
                    (runner.on_result)(false);
                    tracing::debug!(error = %e, "a batch of writes to Redis failed");
                    for job in batch {
                        let failed =
                            redis::RedisError::from((redis::ErrorKind::Io, "Redis unreachable"));
                        job.finish(Err(failed));
                    }
                    return;
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
            lane: 0,
            after: None,
            reply: None,
            on_fail: Some(Box::new(move || {
                failed.fetch_add(1, Ordering::AcqRel);
            })),
        }
    }

    /// The slots Redis Cluster gives keys (`CLUSTER KEYSLOT`): of the hash
    /// tag when there is one.
    #[test]
    fn slots_are_redis_clusters() {
        assert_eq!(slot(b"123456789"), 0x31C3, "the CRC16/XMODEM check value");
        assert_eq!(slot(b"foo"), 12_182);
        assert_eq!(slot(b"roomcast:{r/a}:m"), slot(b"r/a"));
        assert_eq!(slot(b"roomcast:{r/a}:c"), slot(b"other:{r/a}:s"));
        assert_eq!(slot(b"a{}b"), slot(b"a{}b"), "an empty tag is no tag");
        assert_ne!(slot(b"a{}b"), slot(b""));
    }

    /// While Redis does not answer, writes wait in one queue of
    /// `QUEUE_MAX`, never more: the next one is handed back at once (its
    /// publish is then delivered on this node only, its sender told).
    #[test]
    fn writes_wait_in_one_bounded_queue() {
        let pipe = Arc::new(Pipe::new(Vec::new(), 1));
        let failed = Arc::new(AtomicUsize::new(0));
        for _ in 0..QUEUE_MAX {
            assert!(pipe.push(job(&failed)).is_ok());
        }
        assert!(pipe.push(job(&failed)).is_err(), "full");
        assert_eq!(pipe.len.load(Ordering::Acquire), QUEUE_MAX);
        // Taken in batches, it has room again.
        assert_eq!(pipe.take(0).len(), BATCH_MAX);
        assert!(pipe.push(job(&failed)).is_ok());
        assert_eq!(
            failed.load(Ordering::Acquire),
            0,
            "nothing failed meanwhile"
        );
    }
}
