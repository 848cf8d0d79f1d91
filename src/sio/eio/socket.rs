//! One Engine.IO connection (a "socket", named by its session id): its
//! transport, the packets queued for its client, its heartbeat and how it
//! closes. Polls and the WebSocket task take what is queued; the socket.io
//! layer queues into it.
//!
//! What waits for a client is bounded in packets and bytes, and a polling
//! client that is not there (no poll waiting for a while, or none yet) has
//! a small budget: past it the sender is told [`SendError::Absent`] (a slow
//! consumer), so a session nobody polls costs little however busy its room.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use super::handshake::Handshake;
use super::payload::{Packet, Protocol};

/// A session id: 16 URL-safe characters (96 random bits).
pub(crate) type Sid = [u8; 16];

/// The id as text.
pub(crate) fn sid_str(sid: &Sid) -> &str {
    std::str::from_utf8(sid).expect("sids are ASCII")
}

/// How long a polling client may be away (no poll waiting) before it is
/// held to [`ABSENT_BUDGET`]: between two polls a client is away for a
/// round trip; one that has not polled for this long (or never did) is
/// not reading what is queued for it.
pub(crate) const ABSENT_AFTER: Duration = Duration::from_secs(2);
/// Bytes (counted as [`Packet::cost`]) that may wait for an absent client.
pub(crate) const ABSENT_BUDGET: usize = 32 * 1024;

/// Why a connection closed (what the socket.io layer and the counters see).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reason {
    /// The client closed it (a close packet, or its WebSocket ended cleanly).
    ClientClose,
    /// Its transport failed (a reset, an oversized or malformed WebSocket frame).
    TransportError,
    /// A packet could not be parsed.
    BadPacket,
    /// Two polls at once.
    ConcurrentPolls,
    /// No heartbeat within the ping interval and timeout.
    HeartbeatTimeout,
    /// A handshake nobody followed within `limits.handshake_timeout`.
    Unused,
    /// A handshake pushed out by newer ones (`socketio.max_pending_handshakes`).
    Evicted,
    /// The server closed it (its last namespace ended, or shutdown).
    Server,
}

/// Why a packet could not be queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SendError {
    /// The queue is at its bound: wait until the client takes some.
    Full,
    /// A polling client that is not there has its budget queued already.
    Absent,
    /// The connection is closed.
    Closed,
}

/// Which transport carries the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transport {
    /// HTTP long-polling.
    Polling,
    /// A WebSocket has been probed; polls get `noop` until the client says `5`.
    Upgrading,
    /// A WebSocket.
    WebSocket,
}

pub(crate) struct Socket<D> {
    pub(crate) id: Sid,
    pub(crate) protocol: Protocol,
    /// A protocol 3 polling client that takes binary payloads (no `b64=1`).
    pub(crate) binary: bool,
    pub(crate) handshake: Handshake,
    /// The socket.io layer's state.
    pub(crate) data: D,
    /// Most packets, and bytes, that may wait for the client.
    max: usize,
    max_bytes: usize,
    state: Mutex<State>,
    /// Wakes the transport (the waiting poll, or the WebSocket task).
    pub(crate) wake: Notify,
    closed: AtomicBool,
    /// Wakes everyone waiting in [`Socket::closed`] (and, once reading may
    /// go on, in [`Socket::resumed`]).
    closed_wake: Notify,
}

struct State {
    transport: Transport,
    queue: VecDeque<Packet>,
    /// Bytes in `queue`, as [`Packet::cost`] counts them.
    bytes: usize,
    /// A poll is waiting for packets.
    polling: bool,
    /// When the client was last there: a poll ended (or the handshake).
    away_since: Instant,
    /// Not used since the handshake (nothing but the handshake came).
    pending: bool,
    created: Instant,
    /// Reading is paused (its session holds a message back).
    paused: bool,
    /// Protocol 4: the unanswered ping's time; the next ping's.
    ping_sent: Option<Instant>,
    next_ping: Instant,
    /// Protocol 3: when the client last pinged.
    last_ping: Instant,
    reason: Option<Reason>,
    /// When it was closed.
    closed_at: Option<Instant>,
}

/// What the heartbeat check found.
pub(crate) enum Beat {
    /// Nothing to do.
    Fine,
    /// A ping was queued: wake the transport.
    Pinged,
    /// Close it: no heartbeat in time, or a handshake never used.
    Close(Reason),
}

impl<D> Socket<D> {
    pub(crate) fn new(
        id: Sid,
        protocol: Protocol,
        transport: Transport,
        binary: bool,
        handshake: Handshake,
        data: D,
        (ping_interval, max, max_bytes): (Duration, usize, usize),
    ) -> Socket<D> {
        let now = Instant::now();
        Socket {
            id,
            protocol,
            binary,
            handshake,
            data,
            max,
            max_bytes,
            state: Mutex::new(State {
                transport,
                queue: VecDeque::new(),
                bytes: 0,
                polling: false,
                away_since: now,
                pending: true,
                created: now,
                paused: false,
                ping_sent: None,
                next_ping: now + ping_interval,
                last_ping: now,
                reason: None,
                closed_at: None,
            }),
            wake: Notify::new(),
            closed: AtomicBool::new(false),
            closed_wake: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Its transport now.
    pub(crate) fn transport(&self) -> Transport {
        self.lock().transport
    }

    pub(crate) fn set_transport(&self, t: Transport) {
        self.lock().transport = t;
        self.wake.notify_one();
    }

    /// Mark it used; true the first time (it was pending).
    pub(crate) fn use_it(&self) -> bool {
        std::mem::replace(&mut self.lock().pending, false)
    }

    pub(crate) fn is_pending(&self) -> bool {
        self.lock().pending
    }

    /// Queue `packet` (and the binary `attachment` that goes with it, in
    /// the same payload), within the bounds and, for an absent polling
    /// client, [`ABSENT_BUDGET`].
    pub(crate) fn send(&self, packet: Packet, attachment: Option<Packet>) -> Result<(), SendError> {
        let (max, max_bytes) = (self.max, self.max_bytes);
        let count = 1 + usize::from(attachment.is_some());
        let cost = packet.cost() + attachment.as_ref().map_or(0, Packet::cost);
        let mut st = self.lock();
        if st.reason.is_some() {
            return Err(SendError::Closed);
        }
        let absent = st.transport == Transport::Polling
            && !st.polling
            && st.away_since.elapsed() >= ABSENT_AFTER;
        if absent && st.bytes + cost > ABSENT_BUDGET {
            return Err(SendError::Absent);
        }
        if st.queue.len() + count > max || (st.bytes + cost > max_bytes && !st.queue.is_empty()) {
            return Err(SendError::Full);
        }
        st.bytes += cost;
        st.queue.push_back(packet);
        st.queue.extend(attachment);
        drop(st);
        self.wake.notify_one();
        Ok(())
    }

    /// Queue a packet of the protocol itself (a connect's answer, a pong,
    /// a goodbye): outside the bounds, which hold back data, not these.
    pub(crate) fn send_control(&self, packet: Packet) {
        let mut st = self.lock();
        if st.reason.is_some() {
            return;
        }
        st.bytes += packet.cost();
        st.queue.push_back(packet);
        drop(st);
        self.wake.notify_one();
    }

    /// Take queued packets for a poll, up to `max_bytes` of data (at least one).
    pub(crate) fn take(&self, max_bytes: usize, out: &mut Vec<Packet>) {
        let mut st = self.lock();
        let mut size = 0;
        while let Some(p) = st.queue.front() {
            let cost = p.cost();
            if !out.is_empty() && size + cost > max_bytes {
                break;
            }
            size += cost;
            st.bytes -= cost;
            out.push(st.queue.pop_front().expect("a front"));
        }
        if st.queue.is_empty() && st.queue.capacity() > 64 {
            st.queue.shrink_to(64);
        }
    }

    /// Take everything queued (the WebSocket writes it all).
    pub(crate) fn take_all(&self, out: &mut VecDeque<Packet>) {
        let mut st = self.lock();
        st.bytes = 0;
        if out.is_empty() {
            std::mem::swap(out, &mut st.queue);
        } else {
            out.extend(st.queue.drain(..));
        }
    }

    /// A poll begins; false if another is waiting already.
    pub(crate) fn poll_begins(&self) -> bool {
        let mut st = self.lock();
        !std::mem::replace(&mut st.polling, true)
    }

    /// The poll ended: the client is away from now.
    pub(crate) fn poll_ends(&self) {
        let mut st = self.lock();
        st.polling = false;
        st.away_since = Instant::now();
    }

    /// Whether anything is queued.
    pub(crate) fn has_queued(&self) -> bool {
        !self.lock().queue.is_empty()
    }

    /// Stop reading from its WebSocket until [`Socket::resume`].
    pub(crate) fn pause(&self) {
        self.lock().paused = true;
    }

    pub(crate) fn resume(&self) {
        let was = std::mem::replace(&mut self.lock().paused, false);
        if was {
            self.wake.notify_one();
            self.closed_wake.notify_waiters();
        }
    }

    /// Resolves once reading is not paused (or the connection is closed):
    /// a polling POST is answered then, so a client that sends faster than
    /// its session takes waits, one POST at a time, as a WebSocket client
    /// waits on TCP.
    pub(crate) async fn resumed(&self) {
        loop {
            let notified = self.closed_wake.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if !self.is_paused() || self.is_closed() {
                return;
            }
            notified.await;
        }
    }

    pub(crate) fn is_paused(&self) -> bool {
        self.lock().paused
    }

    /// The client answered a ping (protocol 4) or pinged (protocol 3).
    pub(crate) fn heard(&self, interval: Duration) {
        let mut st = self.lock();
        let now = Instant::now();
        match self.protocol {
            Protocol::V4 => {
                if let Some(sent) = st.ping_sent.take() {
                    st.next_ping = (sent + interval).max(now);
                }
            }
            Protocol::V3 => st.last_ping = now,
        }
    }

    /// The heartbeat, checked every so often: ping when it is time
    /// (protocol 4), close when the client was silent too long or the
    /// handshake was never used.
    pub(crate) fn beat(
        &self,
        interval: Duration,
        timeout: Duration,
        unused_after: Duration,
    ) -> Beat {
        let mut st = self.lock();
        if st.reason.is_some() {
            return Beat::Fine;
        }
        let now = Instant::now();
        if st.pending {
            return if now >= st.created + unused_after {
                Beat::Close(Reason::Unused)
            } else {
                Beat::Fine
            };
        }
        if st.transport == Transport::Upgrading {
            // A probe is under way: the heartbeat waits for it.
            st.next_ping = st.next_ping.max(now);
            st.last_ping = now;
            return Beat::Fine;
        }
        // Nothing waiting since the last beat: give the queue's slots back,
        // so an idle connection keeps none (freed here, a few times per ping
        // interval, rather than after every send: per send it cost a busy
        // socket.io room ~8 % of its deliveries).
        if st.queue.is_empty() && st.queue.capacity() > 0 {
            st.queue = VecDeque::new();
        }
        match self.protocol {
            Protocol::V4 => match st.ping_sent {
                Some(sent) if now >= sent + timeout => Beat::Close(Reason::HeartbeatTimeout),
                Some(_) => Beat::Fine,
                None if now >= st.next_ping => {
                    st.ping_sent = Some(now);
                    st.bytes += Packet::Ping.cost();
                    st.queue.push_back(Packet::Ping);
                    Beat::Pinged
                }
                None => Beat::Fine,
            },
            Protocol::V3 if now >= st.last_ping + interval + timeout => {
                Beat::Close(Reason::HeartbeatTimeout)
            }
            Protocol::V3 => Beat::Fine,
        }
    }

    /// Mark it closed for `reason` (a close packet queued for a waiting
    /// poll); false if it already was.
    pub(crate) fn mark_closed(&self, reason: Reason) -> bool {
        {
            let mut st = self.lock();
            if st.reason.is_some() {
                return false;
            }
            st.reason = Some(reason);
            st.closed_at = Some(Instant::now());
            st.bytes += Packet::Close.cost();
            st.queue.push_back(Packet::Close);
        }
        self.closed.store(true, Ordering::Release);
        self.wake.notify_one();
        self.closed_wake.notify_waiters();
        true
    }

    /// Close it: its transport ends (a waiting poll gets a close packet,
    /// its WebSocket a Close frame) and the engine forgets it.
    pub(crate) fn close(&self, reason: Reason) {
        self.mark_closed(reason);
    }

    /// Whether a closed polling connection is kept a while (`linger`) for
    /// its client's next poll, which takes what was queued before the close
    /// (a socket.io goodbye) and the close packet: no poll was waiting to
    /// take them at once.
    pub(crate) fn lingers(&self, linger: Duration) -> bool {
        let st = self.lock();
        // (A handshake never used has nothing to hear.)
        !st.pending
            && st.transport == Transport::Polling
            && !st.polling
            && !st.queue.is_empty()
            && st.closed_at.is_some_and(|at| at.elapsed() < linger)
    }

    /// Why it closed, if it did.
    pub(crate) fn reason(&self) -> Option<Reason> {
        self.lock().reason
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Resolves once the connection is closed.
    pub(crate) async fn closed(&self) {
        loop {
            let notified = self.closed_wake.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.is_closed() {
                return;
            }
            notified.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An idle socket's queue holds no slots after a heartbeat check.
    #[test]
    fn a_heartbeat_frees_an_idle_queue() {
        let handshake = Handshake::new(
            &hyper::Uri::from_static("/"),
            &hyper::HeaderMap::new(),
            None,
        );
        let s = Socket::new(
            *b"0123456789abcdef",
            Protocol::V3,
            Transport::Polling,
            false,
            handshake,
            (),
            (Duration::from_secs(25), 64, 1 << 20),
        );
        s.use_it();
        for _ in 0..10 {
            s.send_control(Packet::Ping);
        }
        let mut polled = Vec::new();
        s.take(usize::MAX, &mut polled);
        assert_eq!(polled.len(), 10);
        assert!(s.lock().queue.capacity() > 0, "kept between sends");
        let long = Duration::from_secs(3600);
        assert!(matches!(s.beat(long, long, long), Beat::Fine));
        assert_eq!(s.lock().queue.capacity(), 0);
    }
}
