//! The broker: the only way a message enters a room, and the only source of
//! offsets, epochs, history, presence and per-route connection numbers.
//!
//! One contract for one node or many (centrifuge's `Broker` is the model):
//! [`MemoryBroker`] keeps everything in this process and is the default;
//! a broker for many nodes implements the same trait over a shared store,
//! and both run the very same session path. A broker reports what it
//! delivers through [`Events`] (centrifuge's `BrokerEventHandler`), which
//! each node's [`Hub`](crate::hub::Hub) implements: it queues what comes
//! for its local members. A broker knows no hub.
//!
//! Answers may come later: every method that answers returns a [`Reply`],
//! ready at once from the memory broker, a future from a networked one. The
//! operation is under way when the method returns, and dropping the reply
//! does not cancel it (a publish whose ack nobody waits for still happens).

#[cfg(test)]
mod contract;
mod memory;
mod query;
mod redis;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

pub use self::redis::RedisBroker;
pub use memory::MemoryBroker;
pub use query::{MemberEntry, NodeAnswer, NodeQuery, PAGE_MAX};

use crate::hub::Target;
use crate::ids::ConnId;
use crate::payload::Payload;
use crate::wire::{Author, Change, Position, PresenceMember, Publication};

/// Where a broker hands what it delivers on this node, and what it may
/// ask of this node's members.
pub trait Events: Send + Sync + 'static {
    /// A room's publication, for its members here (in offset order, room by room).
    fn publication(&self, p: &Arc<Publication>);
    /// `room`'s stream began again as `epoch` (its history was lost: a
    /// Redis that came back empty), for its members here, before the first
    /// publication of the new life.
    fn reset(&self, room: &str, epoch: &str);
    /// Someone came into or left `room`, for its members here.
    fn presence_change(&self, room: &str, change: Change, member: &PresenceMember);
    /// A direct message for a connection or a user's connections here; how many got it.
    fn direct(&self, target: &Target, from: &Author, payload: &Payload) -> usize;
    /// Close a connection or a user's connections here; how many.
    fn disconnect(&self, target: &Target, code: u16, reason: &str) -> usize;
    /// Who is in `room` here (`None`: nobody), each with its presence key
    /// (`u<user>`, or `c<conn>` for a connection without a user).
    fn members_here(&self, room: &str) -> Option<Vec<(String, PresenceMember)>>;
    /// How many connections of `user` are in `room` here.
    fn user_conns(&self, room: &str, user: &str) -> usize;
    /// Who is in `room` here, as presence lists them (`None`: nobody).
    fn presence_here(&self, room: &str) -> Option<Vec<PresenceMember>>;
    /// Node `node`'s figures for the operator view (see [`Broker::report`]).
    fn node_report(&self, node: u16, report: Vec<u8>);
    /// Answer another node's question about this node's rooms (see
    /// [`Broker::ask_nodes`]); at most [`PAGE_MAX`] entries.
    fn answer(&self, query: &NodeQuery) -> NodeAnswer;
}

/// An answer from the broker: now, or later.
pub enum Reply<T> {
    /// The answer.
    Ready(T),
    /// The answer, once the broker has it.
    Later(Pin<Box<dyn Future<Output = T> + Send>>),
}

impl<T> Reply<T> {
    /// Wait for the answer (no wait at all when it is ready).
    pub async fn get(self) -> T {
        match self {
            Reply::Ready(v) => v,
            Reply::Later(f) => f.await,
        }
    }

    /// Turn the answer into something else, now or when it comes.
    pub fn map<U>(self, f: impl FnOnce(T) -> U + Send + 'static) -> Reply<U>
    where
        T: 'static,
    {
        match self {
            Reply::Ready(v) => Reply::Ready(f(v)),
            Reply::Later(fut) => Reply::Later(Box::pin(async move { f(fut.await) })),
        }
    }
}

/// Why the broker could not do what was asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BrokerError {
    /// Its store cannot be reached; the reason.
    #[error("broker unavailable: {0}")]
    Unavailable(String),
    /// A publication reached the room's members on this node only: it has
    /// no offset, is not in the room's history and did not reach other
    /// nodes (their store could not be reached).
    #[error("delivered on this node only, not stored: {0}")]
    NotStored(String),
}

impl BrokerError {
    /// The error code clients see (roomcast.v1 `error`, HTTP API).
    pub fn code(&self) -> &'static str {
        match self {
            BrokerError::Unavailable(_) => "unavailable",
            BrokerError::NotStored(_) => "not_stored",
        }
    }
}

/// A message on its way into a room: the broker gives it its offset and time.
#[derive(Debug, Clone)]
pub struct Draft {
    /// Who publishes it.
    pub from: Author,
    /// What it says.
    pub payload: Payload,
    /// A connection it is not delivered to (`broadcast_others`).
    pub except: Option<ConnId>,
}

/// What a resume asked for and got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resume {
    /// No position given.
    NotAsked,
    /// Everything after the given offset follows.
    Resumed,
    /// Could not resume: the reason.
    Failed(&'static str),
}

/// Where a room's stream is, for a join; with a position, what was missed.
#[derive(Debug, Clone)]
pub struct Recovery {
    /// The stream's epoch.
    pub epoch: Arc<str>,
    /// Its latest offset.
    pub offset: u64,
    /// What became of the resume.
    pub resume: Resume,
    /// When resumed: the publications after the position, oldest first.
    pub missed: Vec<Arc<Publication>>,
}

/// A room's kept messages.
#[derive(Debug, Clone)]
pub struct History {
    /// The stream's epoch.
    pub epoch: Arc<str>,
    /// Oldest first.
    pub publications: Vec<Arc<Publication>>,
}

/// Most messages one history request returns.
pub const HISTORY_MAX: usize = 1000;
/// Messages a history request returns when it does not say.
pub const HISTORY_DEFAULT: usize = 100;

/// What connects rooms to their members, on one node or many.
pub trait Broker: Send + Sync + 'static {
    /// This node's number: the high bits of its connection ids.
    fn node(&self) -> u16;

    /// Done once this node hears what other nodes send it (or after the
    /// broker's own timeout, when its store is unreachable): `serve` waits
    /// for it before accepting. A single node is ready at once.
    fn ready(&self) -> Reply<()> {
        Reply::Ready(())
    }

    /// Once `ready`: why this node cannot serve at all, if its store
    /// refused it for good (wrong credentials, an untrusted certificate).
    fn startup_error(&self) -> Option<String> {
        None
    }

    /// The next number of `route`'s connections (`userN`), from 1.
    fn next_seq(&self, route: &str) -> Reply<Result<u64, BrokerError>>;

    /// Publish into `room`: the next offset, into the room's history (as its
    /// policy says), and delivered to the room's members on every node, in
    /// offset order. The offset is what acks carry.
    fn publish(&self, room: &Arc<str>, draft: Draft) -> Reply<Result<u64, BrokerError>>;

    /// Connection `conn` of `member` joined `room` on this node
    /// (`first_here`: its user's first connection in the room here).
    /// Presence follows, and members are told when the user is new to the room.
    fn joined(&self, room: &Arc<str>, member: &PresenceMember, conn: ConnId, first_here: bool);

    /// Connection `conn` left `room` on this node (`last_here`: its user's
    /// last connection in the room here).
    fn left(&self, room: &Arc<str>, member: &PresenceMember, conn: ConnId, last_here: bool);

    /// Where `room`'s stream is, for a join, and with `since` what was
    /// published after it. The stream is created if the room has none.
    fn recover(
        &self,
        room: &Arc<str>,
        since: Option<&Position>,
    ) -> Reply<Result<Recovery, BrokerError>>;

    /// The latest `limit` kept messages of `room` after offset `since`;
    /// `None` when the room has no stream (no members, no recent messages).
    fn history(
        &self,
        room: &str,
        since: Option<u64>,
        limit: usize,
    ) -> Reply<Result<Option<History>, BrokerError>>;

    /// Who is in `room` on every node; `None` when nobody is.
    fn presence(&self, room: &str) -> Reply<Result<Option<Vec<PresenceMember>>, BrokerError>>;

    /// A message for a connection or a user's connections, wherever they are.
    fn send(&self, target: Target, from: Author, payload: Payload);

    /// Close a connection or a user's connections, wherever they are; how many.
    fn disconnect(
        &self,
        target: Target,
        code: u16,
        reason: &str,
    ) -> Reply<Result<usize, BrokerError>>;

    /// Keep `record` under `key` for `ttl`, replacing what is there (a
    /// socket.io session's state, for its client to recover on any node
    /// within the window). False if it was not kept (the store is full or
    /// unreachable).
    fn keep_session(&self, key: &str, record: Vec<u8>, ttl: Duration) -> Reply<bool>;

    /// Take what is kept under `key`: it is gone once taken (a session is
    /// recovered once); `None` when nothing is, or its time is up.
    fn take_session(&self, key: &str) -> Reply<Result<Option<Vec<u8>>, BrokerError>>;

    /// Tell every other node this node's figures for the operator view
    /// (once a second; at most a few KB), handed to their
    /// `Events::node_report`. Not waited for; lost while the store is
    /// unreachable (the next second's report replaces it). A single node
    /// has nobody to tell.
    fn report(&self, _report: Vec<u8>) {}

    /// Ask every other node `query`: their answers, each with its node
    /// (waiting at most `cluster.timeout` for them). A single node has
    /// nobody to ask.
    fn ask_nodes(&self, _query: &NodeQuery) -> Reply<Result<Vec<(u16, NodeAnswer)>, BrokerError>> {
        Reply::Ready(Ok(Vec::new()))
    }
}
