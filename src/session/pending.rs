//! What a session awaits: answers for its client from the broker (acks,
//! history, presence), queued in the order the commands came; at most one
//! join waiting for its room's position (a memory broker answers at once, so
//! on one node neither is used; a networked broker answers later); and at
//! most one message held back by the rate limit until its budget refills.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::time::Sleep;

use super::{Inbound, Joined};
use crate::broker::{BrokerError, Recovery};
use crate::outbox::Item;
use crate::wire::CommandId;

/// An answer still to come: the encoded bytes for the client, if any.
pub(super) type Answer = Pin<Box<dyn Future<Output = Option<Item>> + Send>>;

/// A join waiting for the broker.
pub(super) struct PendingJoin {
    pub(super) fut: Pin<Box<dyn Future<Output = Result<Recovery, BrokerError>> + Send>>,
    pub(super) joined: Joined,
    pub(super) id: CommandId,
}

/// An input over the rate limit, handled once its wait is over;
/// `charged` once the connection's bucket let it through (it waits for a
/// room's).
pub(super) struct Held {
    pub(super) input: Inbound,
    pub(super) charged: bool,
}

/// The held-back input and when it may go.
pub(super) struct Throttle {
    until: Pin<Box<Sleep>>,
    message: Held,
}

/// The session's outstanding broker replies and its held-back message.
#[derive(Default)]
pub(super) struct Pending {
    answers: VecDeque<Answer>,
    pub(super) join: Option<Box<PendingJoin>>,
    throttle: Option<Box<Throttle>>,
}

impl Pending {
    /// Nothing blocks the next message.
    pub(super) fn is_ready(&self) -> bool {
        self.join.is_none() && self.throttle.is_none()
    }

    /// Something is awaited.
    pub(super) fn is_waiting(&self) -> bool {
        self.join.is_some() || !self.answers.is_empty() || self.throttle.is_some()
    }

    /// Hold `message` back for `wait`.
    pub(super) fn hold(&mut self, wait: std::time::Duration, message: Held) {
        debug_assert!(self.throttle.is_none(), "one held-back message at a time");
        self.throttle = Some(Box::new(Throttle {
            until: Box::pin(tokio::time::sleep(wait)),
            message,
        }));
    }

    /// The held-back message, once its wait is over.
    pub(super) fn poll_throttle(&mut self, cx: &mut Context<'_>) -> Option<Held> {
        let t = self.throttle.as_mut()?;
        if t.until.as_mut().poll(cx).is_pending() {
            return None;
        }
        self.throttle.take().map(|t| t.message)
    }

    /// Answers are outstanding: later answers go behind them.
    pub(super) fn has_answers(&self) -> bool {
        !self.answers.is_empty()
    }

    /// An answer to come, after those before it.
    pub(super) fn push(&mut self, answer: Answer) {
        self.answers.push_back(answer);
    }

    /// An answer ready now that must wait its turn.
    pub(super) fn push_ready(&mut self, item: Item) {
        self.answers
            .push_back(Box::pin(std::future::ready(Some(item))));
    }

    /// The join, if the broker has answered it.
    pub(super) fn poll_join(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Option<(Joined, Result<Recovery, BrokerError>, CommandId)> {
        let join = self.join.as_mut()?;
        let Poll::Ready(recovery) = join.fut.as_mut().poll(cx) else {
            return None;
        };
        let join = self.join.take()?;
        Some((join.joined, recovery, join.id))
    }

    /// The first outstanding answer, if it has come.
    pub(super) fn poll_answer(&mut self, cx: &mut Context<'_>) -> Option<Option<Item>> {
        let front = self.answers.front_mut()?;
        let Poll::Ready(bytes) = front.as_mut().poll(cx) else {
            return None;
        };
        self.answers.pop_front();
        Some(bytes)
    }
}
