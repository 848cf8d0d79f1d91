//! `[scripts]`: where scripts come from, reloading, and the Rhai sandbox.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{bad, Error};

/// Where scripts come from and how they are sandboxed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ScriptsConfig {
    /// Directory holding the route scripts. When it does not exist, the
    /// built-in copies of `echo.rhai`, `shout.rhai` and `chat.rhai` are used.
    pub dir: PathBuf,
    /// Watch `dir` and reload scripts when they change.
    pub watch: bool,
    /// Quiet period after a file event before reloading (editors write files in bursts).
    #[serde(with = "humantime_serde")]
    pub reload_debounce: Duration,
    /// Policy when a hook fails at run time.
    pub on_error: OnScriptError,
    /// Run hooks written in the straight-line subset (docs/scripting.md,
    /// "Fast hooks") as Rust instead of through Rhai's interpreter, with the
    /// same results; `false` runs every hook through Rhai.
    pub fast_hooks: bool,
    /// Rhai sandbox limits.
    pub limits: ScriptLimits,
}

impl Default for ScriptsConfig {
    fn default() -> Self {
        ScriptsConfig {
            dir: PathBuf::from("scripts"),
            watch: true,
            reload_debounce: Duration::from_millis(50),
            on_error: OnScriptError::Drop,
            fast_hooks: true,
            limits: ScriptLimits::default(),
        }
    }
}

/// What to do with a connection whose message made a script fail.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum OnScriptError {
    /// Drop that message, log and count the error, keep the connection open.
    #[default]
    Drop,
    /// Close the connection with 1011 (internal error).
    Close,
}

/// Explicit Rhai limits: a script can never run unbounded.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ScriptLimits {
    /// Maximum operations per hook call.
    pub max_operations: u64,
    /// Maximum length of any string, in bytes.
    pub max_string_size: usize,
    /// Maximum number of array elements.
    pub max_array_size: usize,
    /// Maximum number of object-map entries.
    pub max_map_size: usize,
    /// Maximum function call depth.
    pub max_call_levels: usize,
    /// Maximum expression nesting depth (also used for function bodies).
    pub max_expr_depth: usize,
    /// Wall-clock budget of one hook call; a hook still running after it is
    /// aborted (its message dropped, the error counted).
    #[serde(with = "humantime_serde")]
    pub max_duration: Duration,
}

impl Default for ScriptLimits {
    fn default() -> Self {
        ScriptLimits {
            max_operations: 100_000,
            max_string_size: 1 << 20,
            max_array_size: 10_000,
            max_map_size: 10_000,
            max_call_levels: 32,
            max_expr_depth: 64,
            max_duration: Duration::from_millis(5),
        }
    }
}

impl ScriptLimits {
    pub(super) fn validate(&self) -> Result<(), Error> {
        if self.max_duration.is_zero() {
            return bad("scripts.limits.max_duration", "must be greater than 0");
        }
        if self.max_operations == 0 || self.max_call_levels == 0 || self.max_expr_depth == 0 {
            return bad(
                "scripts.limits",
                "limits must be greater than 0 (a zero would mean unlimited in Rhai)",
            );
        }
        if self.max_string_size == 0 || self.max_array_size == 0 || self.max_map_size == 0 {
            return bad(
                "scripts.limits",
                "size limits must be greater than 0 (a zero would mean unlimited in Rhai)",
            );
        }
        Ok(())
    }
}
