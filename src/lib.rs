//! roomcast: an embeddable, scriptable real-time chat backend.
//!
//! A hyper 1 server upgrades connections with fastwebsockets; each connection
//! joins a room in a DashMap-backed registry; a Rhai script per route decides
//! what an incoming message becomes (echo it, shout it back, broadcast it with
//! the sender's nickname, or whatever the script says); `/metrics` exports
//! Prometheus counters. Scripts reload when their files change.
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
//! Data flows one way: accept → http route → upgrade → session → script host →
//! actions → registry → outboxes → writer → socket.
//!
//! - [`server`]: the [`Server`] value and its accept loop; `serve(listener, shutdown)`.
//! - `http`: routes `/metrics`, `/healthz`, `/readyz`, the web client and WebSocket routes.
//! - `web`: the chat page served at `/` (files in `src/web/`, compiled in).
//! - `upgrade`: checks an upgrade request (handshake, Origin, caps, token,
//!   `on_handshake`), opens the session (nickname, room, `on_connect`), then
//!   answers 101 and spawns the task that serves it once upgraded.
//! - [`admission`]: the Origin allow-list and the global / per-IP connection caps.
//! - [`auth`]: JWT connect tokens (HS256, RS256) and the rooms they may join.
//! - [`session`]: one connection in one task: decode, raw messages and v1
//!   commands, hooks, actions, writes, timers, cleanup.
//! - [`protocol`]: the roomcast.v1 subprotocol: commands parsed, events encoded.
//! - [`payload`]: a message on its way out, encoded for raw or v1 clients.
//! - `api`: the HTTP API for application backends (`/api`).
//! - [`script`]: the Rhai engines, compiled scripts, hook calls, hot reload.
//! - [`registry`]: rooms (members, history, presence, policies), connections by
//!   id and by user, and fan-out.
//! - [`outbox`]: a connection's bounded queue of encoded frames.
//! - [`frame`]: server frame encoding and close codes.
//! - [`metrics`]: the Prometheus registry and every metric.
//! - [`config`]: `Config` and its figment layering (defaults → file → env).
//! - [`shutdown`]: the Ctrl-C / SIGTERM signal future.
//! - [`error`]: the crate's `Error` type.

#![warn(missing_docs)]

pub mod admission;
mod api;
pub mod auth;
pub mod config;
pub mod error;
pub mod frame;
mod http;
pub mod metrics;
pub mod names;
pub mod outbox;
pub mod payload;
pub mod protocol;
pub mod registry;
pub mod script;
pub mod server;
pub mod session;
pub mod shutdown;
mod upgrade;
mod web;

pub use config::Config;
pub use error::{Error, ScriptError};
pub use server::Server;
