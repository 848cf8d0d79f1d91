//! roomcast: an embeddable, scriptable real-time chat backend.
//!
//! A hyper 1 server upgrades connections with fastwebsockets; each connection
//! is a session in rooms held by a DashMap-backed hub; a Rhai script per route
//! decides what an incoming message becomes (echo it, shout it back, broadcast
//! it with the sender's nickname, or whatever the script says); a broker gives
//! every room message its offset, keeps history and presence, and fans it out;
//! `/metrics` exports Prometheus counters. Scripts reload when their files
//! change.
//!
//! ```no_run
//! # async fn run() -> Result<(), roomcast::Error> {
//! let server = roomcast::Server::new(roomcast::Config::default())?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//! server.serve(listener, roomcast::shutdown::signal()).await
//! # }
//! ```
//!
//! # Layout
//!
//! Data flows one way: accept → http route → transport (upgrade, admission,
//! decode) → session core → script host → actions → broker → hub → outboxes
//! (encoded once per wire) → transport writer → socket.
//!
//! - [`server`]: the [`Server`] value and its accept loop; `serve(listener, shutdown)`;
//!   `bind(addr, backlog)`, a listener with a storm-sized accept queue;
//!   `listen(addr, backlog)`, the same unless socket activation passed one in.
//! - `state`: what every part shares (config, metrics, hub, broker, scripts, routes, caps).
//! - `http`: plain HTTP routes: `/metrics`, `/healthz`, `/readyz`, the web
//!   client (`http/web/`, compiled in, on the SDK's committed build
//!   `clients/js/dist/`), the HTTP API (`/api`); WebSocket routes go to `ws`.
//! - `admin`: the operator view (`/admin`, on when an API key is set): the
//!   `Board` (each node's figures once a second, kept five minutes, reported
//!   to every node through the broker), `figures` (a node's sample and
//!   report), `top` (top rooms by members and rate, merged across nodes),
//!   `live` (the viewers' WebSocket), `api` (`/api/admin/…`), `page`
//!   (`admin/page/`, compiled in, on the SDK's `Admin` client).
//! - `conn`: what every transport shares: `conn::open` (position, then the
//!   session) and `conn::Life` (the session's broker replies and token
//!   expiry, polled by either driver).
//! - `ws`: the WebSocket transport: upgrade, strict frame decoder, the
//!   readiness-loop driver (heartbeat, close handshake), the vectored writer.
//! - `admission`: `admit()` — draining, Origin, caps, token, rooms claim,
//!   `on_handshake`, full rooms — returns `Admitted` or a `Refusal`.
//! - `caps`: the global and per-IP connection caps.
//! - `auth`: JWT connect tokens (HS256, RS256) and the rooms they may join.
//! - `session`: the transport-neutral core of one connection: one entry,
//!   `Session::handle(Inbound)` (text, binary, event, command, ping), where
//!   the rate, the hold and the counting happen for every transport; rooms,
//!   nick, identity, script state, roomcast.v1 commands, actions; broker
//!   replies that come later; `session/token.rs`, the token's expiry and
//!   its `refresh`; `session/restore.rs`, a recovered session's nick, home
//!   and rooms taken up again.
//! - `wire`: `Wire` (raw, v1, socket.io), `Publication` (encoded once per
//!   wire), `Event` and each wire's encoder; WebSocket frame encoding;
//!   `wire/socketio/`: the whole socket.io packet codec (`parse.rs` reads,
//!   `mod.rs` writes every packet the server sends).
//! - `broker`: the `Broker` trait (offsets, epochs, history, presence,
//!   `userN`, fan-out), `Events` (what a broker reports: the hub implements
//!   it, no broker holds the hub) and `broker/memory/`, the single-node
//!   default (the broker, one room's stream, every stream's shared bound);
//!   `broker/query.rs`, the operator view's questions to every node;
//!   `broker/redis/`: `RedisBroker`, a cluster node over Redis or a Redis
//!   Cluster (`cluster.redis_url`, `cluster.redis_mode`; docs/cluster.md) —
//!   `link` (the two connections: to one Redis, or cluster connections with
//!   sharded channels), `pipe` (ordered, pipelined, bounded writes, in
//!   lanes per hash slot in a cluster), `scripts`
//!   (the atomic Lua scripts and the key layout), `subs` (the room channels
//!   this node listens to), `sub` (one room's in-order delivery with gap
//!   fill, and a stream that began again told as a reset), `presence`, `node` (direct sends and
//!   disconnects between nodes, the operator view's reports), `query` (its
//!   questions to every node, gathered), `ops` (the trait's methods), `recv`
//!   (what Redis pushes: channel messages, resubscriptions), `sessions`
//!   (kept socket.io sessions: SET PX / GETDEL), `codec` (`codec/node.rs`: the
//!   messages between nodes);
//!   `broker/contract.rs`: the behaviour every broker must have, run against
//!   the memory broker, one Redis and a three-master Redis Cluster.
//! - `hub`: this node's rooms and members and connections by id and user;
//!   delivery to outboxes; `hub/events.rs`, the broker's `Events` for it;
//!   `hub/figures.rs`, what the operator view reads of it (a room's member
//!   count and publications as atomics, sampled without a lock; the
//!   answers to its questions).
//! - `outbox`: a connection's bounded queue of encoded `Item`s (a message
//!   and, for socket.io, its attachment; bytes bound memory, the item bound
//!   only stops runaway counts of small ones).
//! - [`script`]: the Rhai engine, hooks, compiled scripts, fast hooks
//!   (`script/lower/`: straight-line hooks run as Rust), hot reload, the script API.
//! - [`config`]: `Config` and its figment layering (defaults → file → env), a
//!   file per section (`[cluster]` in `config/cluster.rs`).
//! - [`metrics`]: the Prometheus registry and every metric (`mod.rs`), the
//!   label values of the subsystems (`labels.rs`), the HTTP API's actions by
//!   key (`api.rs`).
//! - [`names`]: route and room names and `*` patterns.
//! - `sio`: the socket.io transport: `sio/eio/`, Engine.IO 3 and 4 (polling,
//!   the upgrade probe, the WebSocket read by `ws`'s decoder, one heartbeat
//!   task, handshakes that cost ~700 bytes until used), under `engine.rs`
//!   (connects, attachments, CORS) and one driver per namespace
//!   (`namespace.rs` owns its `Session` and the inbound queue that pauses
//!   reading over the rate; `driver.rs` flushes its outbox); `recovery.rs`,
//!   connection state recovery (the pid asked, the record kept in the
//!   broker while the session lives and after it drops, taken once).
//! - `deflate`: permessage-deflate (RFC 7692): offers and answers, one
//!   compressor and one inflater per worker thread (no context takeover:
//!   nothing kept per connection, unless `compression.max_memory` lets a
//!   client take its context over: a `Takeover`), inflating bounded by the
//!   message limit; a broadcast's compressed bytes are `wire`'s deflated
//!   slots.
//! - `ids`: connection ids (a node number in the high bits); `close`: close codes.
//! - `payload`: a message as made, before any wire encodes it.
//! - [`shutdown`]: the Ctrl-C / SIGTERM signal future; [`error`]: the crate's `Error`.

#![warn(missing_docs)]

mod admin;
mod admission;
mod auth;
mod broker;
mod caps;
mod close;
pub mod config;
mod conn;
mod deflate;
pub mod error;
mod http;
mod hub;
mod ids;
pub mod metrics;
pub mod names;
mod outbox;
mod payload;
pub mod script;
pub mod server;
mod session;
pub mod shutdown;
mod sio;
mod state;
mod wire;
mod ws;

pub use admission::PeerAddr;
pub use config::Config;
pub use error::{Error, ScriptError};
pub use server::Server;

/// Internals for the benchmarks and property tests in this repository: not
/// a stable API.
#[doc(hidden)]
pub mod internals {
    pub use crate::admission::origin_allowed;
    pub use crate::auth::{token_from_request, Authenticator};
    pub use crate::broker::{Broker, Draft, MemoryBroker, Reply};
    pub use crate::hub::{Handle, Hub, Member};
    pub use crate::outbox::Outbox;
    pub use crate::payload::Payload;
    pub use crate::wire::{frame, Author, Publication, Wire};
    pub use crate::ws::Decoder;
}
