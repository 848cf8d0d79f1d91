//! What a session awaits from the broker: answers for its client (acks,
//! history, presence), queued in the order the commands came, and at most one
//! join waiting for its room's position. A memory broker answers at once, so
//! none of this is ever used on one node; a networked broker answers later.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;

use super::Joined;
use crate::broker::{BrokerError, Recovery};
use crate::wire::CommandId;

/// An answer still to come: the encoded bytes for the client, if any.
pub(super) type Answer = Pin<Box<dyn Future<Output = Option<Bytes>> + Send>>;

/// A join waiting for the broker.
pub(super) struct PendingJoin {
    pub(super) fut: Pin<Box<dyn Future<Output = Result<Recovery, BrokerError>> + Send>>,
    pub(super) joined: Joined,
    pub(super) id: CommandId,
}

/// The session's outstanding broker replies.
#[derive(Default)]
pub(super) struct Pending {
    answers: VecDeque<Answer>,
    pub(super) join: Option<Box<PendingJoin>>,
}

impl Pending {
    /// Nothing blocks the next message.
    pub(super) fn is_ready(&self) -> bool {
        self.join.is_none()
    }

    /// Something is awaited.
    pub(super) fn is_waiting(&self) -> bool {
        self.join.is_some() || !self.answers.is_empty()
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
    pub(super) fn push_ready(&mut self, bytes: Bytes) {
        self.answers
            .push_back(Box::pin(std::future::ready(Some(bytes))));
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
    pub(super) fn poll_answer(&mut self, cx: &mut Context<'_>) -> Option<Option<Bytes>> {
        let front = self.answers.front_mut()?;
        let Poll::Ready(bytes) = front.as_mut().poll(cx) else {
            return None;
        };
        self.answers.pop_front();
        Some(bytes)
    }
}
