//! The crate's one error type.

use std::path::PathBuf;

/// Errors surfaced to the embedding application or the binary. Clients never see
/// these: they get a close code or an HTTP status with a reason.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration is invalid; the message names the key.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A script failed to load: unreadable, does not compile, or lacks a required hook.
    #[error("{0}")]
    Script(#[from] ScriptError),
    /// The scripts directory could not be watched.
    #[error("cannot watch {path}: {source}")]
    Watch {
        /// Directory that could not be watched.
        path: PathBuf,
        /// Underlying watcher error.
        source: notify::Error,
    },
    /// I/O on the listener.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// A script problem with its location, printed as `file:line:col: message`.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{file}:{line}:{column}: {message}")]
pub struct ScriptError {
    /// Script file (or built-in name) the error is in.
    pub file: String,
    /// 1-based line, 0 when unknown.
    pub line: usize,
    /// 1-based column, 0 when unknown.
    pub column: usize,
    /// What went wrong.
    pub message: String,
}
