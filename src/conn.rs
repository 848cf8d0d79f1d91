//! What every connection's task shares, whatever its transport: opening its
//! session (once the broker numbers it), and the events of the session's
//! life besides its transport's — the broker's later replies, a message
//! held back by the rate limit, the token's expiry (moved by a refresh). (Shutdown reaches a
//! session as a Close in its outbox: `State::drain` closes every outbox.)

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::time::Sleep;

use crate::admission::Admitted;
use crate::broker::BrokerError;
use crate::outbox::Outbox;
use crate::session::Session;
use crate::state::State;

/// Open the session of an admitted connection, writing to `outbox`: the
/// broker gives it its number (`userN`) first.
pub(crate) async fn open(
    state: &Arc<State>,
    admitted: Admitted,
    outbox: Outbox,
) -> Result<Session, BrokerError> {
    let seq = state.broker.next_seq(&admitted.route.name).get().await?;
    Ok(Session::open(state.clone(), admitted, seq, outbox))
}

/// A session's own timers and replies, polled by its transport's loop.
pub(crate) struct Life {
    /// Its token's expiry (boxed: most connections have no token).
    expiry: Option<Pin<Box<Sleep>>>,
}

impl Life {
    pub(crate) fn new(session: &Session) -> Life {
        Life {
            expiry: session
                .expires_in()
                .map(|d| Box::pin(tokio::time::sleep(d))),
        }
    }

    /// Carry on with what came: the broker's replies and a held message
    /// whose wait is over (`Session::poll`), or the token's expiry (the
    /// session is closed with 4001). Ready when the session did something:
    /// its transport has output to write, input it may read again.
    pub(crate) fn poll(&mut self, cx: &mut Context<'_>, session: &mut Session) -> Poll<()> {
        let mut done = session.waiting() && session.poll(cx).is_ready();
        if session.take_expiry_moved() {
            // A `refresh` gave the connection a new token.
            self.expiry = session
                .expires_in()
                .map(|d| Box::pin(tokio::time::sleep(d)));
        }
        if let Some(expiry) = self.expiry.as_mut() {
            if !session.outbox().is_closing() && expiry.as_mut().poll(cx).is_ready() {
                self.expiry = None;
                session.expire();
                done = true;
            }
        }
        if done {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

/// Await an optional future; never resolves when there is none (its
/// `select!` branch is disabled then anyway).
pub(crate) async fn maybe<F: Future + Unpin>(f: Option<&mut F>) -> F::Output {
    match f {
        Some(f) => f.await,
        None => std::future::pending().await,
    }
}
