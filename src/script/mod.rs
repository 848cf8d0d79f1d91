//! The script host: Rhai scripts decide what a message becomes.
//!
//! - `hook`: the catalogue of hooks a script may define.
//! - `source`: where scripts come from (the directory, or the built-in copies).
//! - `compile`: the sandboxed engine, compiling and validating, located errors.
//! - `host`: [`ScriptHost`], every script's current version, hook calls.
//! - `reload` and `watch`: hot reload on save (and on demand).
//! - `local`: per-thread engines and the running hook's time budget.
//! - `lower`: fast hooks — straight-line hooks lowered to Rust when a script
//!   compiles (`lower/run.rs` runs them), without Rhai's interpreter.
//! - `conn`, `request`, `action`, `register`: what scripts see (`conn`,
//!   `req`) and what their calls record.

mod action;
mod budget;
mod compile;
mod conn;
mod hook;
mod host;
mod local;
mod lower;
mod register;
mod reload;
mod request;
mod source;
mod watch;

pub use compile::{check_config, check_files};
pub use host::{ReloadEvent, ScriptHost};

// What the server and the benchmarks use; not part of the embedding API.
#[doc(hidden)]
pub use action::Action;
#[doc(hidden)]
pub use conn::Conn;
pub(crate) use conn::{is_valid_nick, RESERVED_NICK};
#[doc(hidden)]
pub use hook::{Hook, HookArgs, TextArgs};
#[doc(hidden)]
pub use host::{Outcome, Script};
pub(crate) use request::{RequestInfo, ScriptRequest};
pub(crate) use watch::{reload, watch};
