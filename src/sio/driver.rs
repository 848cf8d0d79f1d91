//! A socket.io namespace's task, the one owner of its session: it opens
//! the session (once the broker numbers it) and answers the connect, hands
//! the session what the client sent (as far as the session takes it: over
//! the rate limit the rest waits, and the connection is paused), moves what
//! the session's outbox holds to the engine.io connection (in the
//! namespace, under the same bounds and slow-consumer rule as every
//! transport), turns a requested close (a shutdown's too) into a
//! DISCONNECT packet, and polls the session's own events (`conn::Life`).

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use tokio::time::Sleep;

use super::eio::Text;
use super::eio::{Packet, Reason, SendError};
use super::namespace::{self, Ns, PAUSE_AT};
use super::recovery;
use super::EioSocket;
use crate::admission::Admitted;
use crate::conn::{self, maybe, Life};
use crate::metrics::Metrics;
use crate::outbox::{Item, Outbox, Take};
use crate::session::Session;
use crate::state::State;
use crate::wire::socketio;

/// How long to wait before trying again when engine.io's queue is full (a
/// client slower than its room, for now), at first and at most.
const RETRY_FIRST: Duration = Duration::from_millis(1);
const RETRY_MAX: Duration = Duration::from_millis(200);
/// How long a DISCONNECT may take to reach the client before the connection
/// is closed under it (closing cancels engine.io's transport at once, with
/// whatever it still holds).
const GOODBYE_GRACE: Duration = Duration::from_secs(1);

/// Where a flush left things.
enum Flush {
    /// Everything queued was handed over.
    Done,
    /// engine.io's queue is full: the rest waits.
    Full,
    /// A polling client that is not there has its budget queued: a slow consumer.
    Absent,
    /// The session asked to close with this code.
    Closed(u16),
    /// The connection is gone.
    Gone,
}

/// Inputs handed to the session per turn before letting others run.
const INPUTS_PER_TURN: usize = 64;

/// A client that can recover its connection state (`recovery.rs`), and
/// what it asked for, if it asked.
pub(super) struct Recoverable {
    pub(super) ask: Option<recovery::Ask>,
}

/// How serving a session ended.
enum End {
    /// Its connection is gone (closed, lost, timed out).
    Gone,
    /// It was closed with `code`; `told`: its client was told (it had
    /// not left).
    Closed { code: u16, told: bool },
}

/// Open namespace `ns`'s session for `admitted` (once the broker numbers
/// it; a client that recovers takes up its earlier session when it may),
/// answer the connect, then serve it until it ends: the one owner of the
/// session.
pub(super) async fn run(
    ns: Arc<Ns>,
    socket: Arc<EioSocket>,
    state: Arc<State>,
    mut admitted: Admitted,
    recoverable: Option<Recoverable>,
) {
    let mut pid = None;
    if let Some(r) = recoverable {
        admitted.offsets = true;
        if let Some(ask) = r.ask {
            if let Some(restore) = recovery::attempt(&state, &admitted, &ask).await {
                admitted.restore = Some(Box::new(restore));
                pid = Some(ask.pid);
            }
        }
        pid = pid.or_else(|| Some(recovery::new_pid()));
    }
    let mut keeper = pid.map(|pid| recovery::Keeper::new(&state, pid, admitted.route.name.clone()));
    let mut session = match conn::open(&state, admitted, ns.outbox.clone()).await {
        Ok(session) => session,
        Err(e) => {
            tracing::warn!("cannot number a new connection: {e}");
            socket.data.remove(&ns);
            namespace::refuse(&socket, &ns.name, &e.to_string(), 503);
            return;
        }
    };
    // The answer goes out before anything the session queued (its room's
    // enter line): those go to engine.io only in `flush` below.
    let pid = keeper.as_ref().map(recovery::Keeper::pid);
    namespace::accept(&socket, &ns.name, session.id(), pid);
    let end = serve(&ns, &socket, &state, &mut session, keeper.as_mut()).await;
    // A session whose connection dropped (or whose server is going away)
    // is kept for its client to take up again; one the client left, or
    // the server closed, is not.
    if let Some(keeper) = keeper {
        let keep = match end {
            End::Gone => true,
            End::Closed { code, .. } => code == crate::close::GOING_AWAY,
        };
        let ended = (keep && !ns.client_left()).then(|| session.snapshot(true));
        keeper.end(&state, ended).await;
    }
    let said_goodbye = matches!(end, End::Closed { told: true, .. });
    // Out of its rooms, hooks run, then gone; the connection goes with its
    // last namespace.
    session.leave();
    drop(session);
    if socket.data.remove(&ns) {
        if said_goodbye {
            // A client left with no namespace closes the connection itself
            // once the DISCONNECT arrived; until then engine.io must keep
            // its transport running to deliver it.
            let _ = tokio::time::timeout(GOODBYE_GRACE, socket.closed()).await;
        }
        socket.close(Reason::Server);
    }
    resume_if_caught_up(&socket);
}

/// Hand the session what its client sent, as far as it takes it (and this
/// turn's budget goes); the connection is read again once every namespace
/// on it has caught up. Whether the budget was spent.
fn feed(ns: &Ns, socket: &EioSocket, session: &mut Session) -> bool {
    let mut fed = 0;
    while session.ready() && !ns.outbox.is_closing() {
        if fed == INPUTS_PER_TURN {
            return true;
        }
        let Some((input, size)) = ns.pop() else { break };
        session.handle(namespace::inbound(input, size));
        fed += 1;
    }
    if fed > 0 {
        resume_if_caught_up(socket);
    }
    false
}

/// Read the connection again if it was paused and no namespace on it has
/// more than a few inputs waiting.
fn resume_if_caught_up(socket: &EioSocket) {
    if socket.is_paused()
        && socket
            .data
            .namespaces()
            .iter()
            .all(|n| n.backlog() <= PAUSE_AT)
    {
        socket.resume();
    }
}

/// The session's loop, until it ends (`keeper`: the record of a session
/// its client can recover, kept up to date).
async fn serve(
    ns: &Ns,
    socket: &EioSocket,
    state: &Arc<State>,
    session: &mut Session,
    mut keeper: Option<&mut recovery::Keeper>,
) -> End {
    let outbox = ns.outbox.clone();
    let mut unsent: VecDeque<Item> = VecDeque::new();
    let mut retry: Option<Pin<Box<Sleep>>> = None;
    let mut retry_after = RETRY_FIRST;
    let wake = outbox.wait();
    tokio::pin!(wake);
    let mut life = Life::new(session);
    let closed = socket.closed();
    tokio::pin!(closed);
    loop {
        let busy = feed(ns, socket, session);
        if let Some(k) = keeper.as_deref_mut() {
            k.rooms_changed(state, session);
        }
        if retry.is_none() {
            match flush(ns, socket, &outbox, &mut unsent, &state.metrics) {
                Flush::Done => retry_after = RETRY_FIRST,
                Flush::Full => {
                    retry = Some(Box::pin(tokio::time::sleep(retry_after)));
                    retry_after = (retry_after * 2).min(RETRY_MAX);
                }
                Flush::Absent => {
                    tracing::debug!(ns = %ns.name, "polling client away with its budget queued: slow consumer");
                    outbox.slow_consumer();
                    continue;
                }
                Flush::Closed(code) => {
                    let told = say_goodbye(ns, socket, code);
                    return End::Closed { code, told };
                }
                Flush::Gone => return End::Gone,
            }
        }
        if busy {
            // Its replies are handed over; now the others' turn.
            tokio::task::yield_now().await;
            continue;
        }
        tokio::select! {
            biased;
            () = &mut closed => return End::Gone,
            () = std::future::poll_fn(|cx| life.poll(cx, session)) => {
                // A held message went, the broker answered, or the token
                // expired: what waits is handed over at the top of the loop.
            }
            () = &mut wake => {
                wake.set(outbox.wait());
                // What other tasks broadcast now joins this batch.
                tokio::task::yield_now().await;
            }
            () = maybe(retry.as_mut()), if retry.is_some() => retry = None,
            () = std::future::poll_fn(|cx| match keeper.as_deref_mut() {
                Some(k) => k.poll_refresh(cx),
                None => Poll::Pending,
            }) => {
                if let Some(k) = keeper.as_deref_mut() {
                    k.write(state, session);
                }
            }
        }
    }
}

/// Hand what is queued to engine.io, as far as its queue takes it.
fn flush(
    ns: &Ns,
    socket: &EioSocket,
    outbox: &Outbox,
    unsent: &mut VecDeque<Item>,
    metrics: &Metrics,
) -> Flush {
    loop {
        if outbox.is_closing_now() && !unsent.is_empty() {
            let bytes = unsent.iter().map(Item::len).sum();
            outbox.written(unsent.len(), bytes);
            unsent.clear();
        }
        if unsent.is_empty() {
            match outbox.take(unsent) {
                Take::Frames => {
                    if metrics.per_message {
                        metrics.messages_sent.inc_by(unsent.len() as u64);
                        metrics
                            .bytes_sent
                            .inc_by(unsent.iter().map(|b| b.len() as u64).sum());
                    }
                }
                Take::Close(code, _) => return Flush::Closed(code),
                Take::Empty => return Flush::Done,
                Take::Finished => return Flush::Gone,
            }
        }
        while let Some(item) = unsent.front() {
            let (text, attachment) = item.parts();
            // Its namespace goes in on the way out: the packet's bytes
            // stay the ones every member shares.
            let at = socketio::namespace_at(&text);
            let text = Text::with_insert(text, at, ns.prefix.clone());
            let sent = socket.send(Packet::Message(text), attachment.map(Packet::Binary));
            match sent {
                Ok(()) => {}
                Err(SendError::Full) => return Flush::Full,
                Err(SendError::Absent) => return Flush::Absent,
                Err(SendError::Closed) => return Flush::Gone,
            }
            let len = item.len();
            unsent.pop_front();
            outbox.written(1, len);
        }
        crate::outbox::trim(unsent);
    }
}

/// Tell the client its namespace is closed (unless it left itself);
/// whether it was told.
fn say_goodbye(ns: &Ns, socket: &EioSocket, code: u16) -> bool {
    if ns.client_left() {
        return false;
    }
    if socket.is_closed() {
        return false;
    }
    namespace::emit(socket, socketio::disconnect(&ns.name));
    tracing::debug!(ns = %ns.name, code, "socket.io namespace closed by the server");
    true
}
