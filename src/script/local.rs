//! Per-thread state of hook calls: an engine and compiled scripts per worker
//! thread, and the running hook's deadline.
//!
//! An engine and compiled scripts per worker thread.
//!
//! One shared `Engine` and `AST` make every hook call on every thread touch
//! the same reference counts: measured with `cargo bench --bench hot_paths`
//! (script scaling), two threads sharing them ran no faster than one, while
//! an engine each ran 1.7× faster. So each worker thread builds its own engine
//! (same limits) and compiles its own copy of a script the first time it runs
//! it, and again after a reload; the shared compilation stays the reference for
//! validation and for which hooks exist.

use std::cell::RefCell;
use std::path::Path;
use std::sync::{Arc, Weak};

use rhai::{Engine, AST};

use super::compile::{build_engine, Compiled};
use crate::config::ScriptLimits;

/// The script host a call is for, as far as threads need to know it.
pub(super) struct Owner<'a> {
    /// Its id (several hosts can share a process and its threads).
    pub(super) id: u64,
    /// Dropped with the host: its threads' copies are then freed.
    pub(super) alive: &'a Arc<()>,
    /// Its shared engine (the fallback).
    pub(super) engine: &'a Engine,
    pub(super) limits: &'a ScriptLimits,
    pub(super) dir: Option<&'a Path>,
}

struct ThreadScripts {
    host: u64,
    /// Dead once the host is dropped.
    alive: Weak<()>,
    engine: Engine,
    /// (script address, generation, this thread's AST). A handful of
    /// entries: a linear search beats hashing on every call.
    asts: Vec<(usize, u64, AST)>,
}

thread_local! {
    /// Per script host (several servers can share a process and its threads).
    static LOCAL: RefCell<Vec<ThreadScripts>> = const { RefCell::new(Vec::new()) };
}

/// Run `f` with this thread's engine and copy of `compiled` (the current
/// version of the script at address `script`).
pub(super) fn with<R>(
    host: Owner<'_>,
    script: usize,
    compiled: &Compiled,
    f: impl FnOnce(&Engine, &AST) -> R,
) -> R {
    LOCAL.with(|cell| {
        // Hooks never run hooks, so this is never borrowed twice; if it ever
        // were, fall back to the shared engine rather than panic.
        let Ok(mut hosts) = cell.try_borrow_mut() else {
            return f(host.engine, &compiled.ast);
        };
        let i = match hosts.iter().position(|t| t.host == host.id) {
            Some(i) => i,
            None => {
                // A new host on this thread (rare: servers starting):
                // free what dropped hosts left here.
                hosts.retain(|t| t.alive.strong_count() > 0);
                hosts.push(ThreadScripts {
                    host: host.id,
                    alive: Arc::downgrade(host.alive),
                    engine: build_engine(host.limits, host.dir),
                    asts: Vec::new(),
                });
                hosts.len() - 1
            }
        };
        let ts = &mut hosts[i];
        let key = script;
        let j = match ts.asts.iter().position(|(k, _, _)| *k == key) {
            Some(j) if ts.asts[j].1 == compiled.generation => j,
            found => {
                // Same source, same engine settings: this compiles as the
                // shared copy did; if imports changed on disk meanwhile,
                // use the shared one until the watcher reloads.
                let Ok(mut ast) = ts
                    .engine
                    .compile_into_self_contained(&rhai::Scope::new(), &*compiled.source)
                else {
                    return f(host.engine, &compiled.ast);
                };
                ast.set_source(compiled.origin.as_str());
                let entry = (key, compiled.generation, ast);
                match found {
                    Some(j) => {
                        ts.asts[j] = entry;
                        j
                    }
                    None => {
                        ts.asts.push(entry);
                        ts.asts.len() - 1
                    }
                }
            }
        };
        f(&ts.engine, &ts.asts[j].2)
    })
}

/// How many hosts have an engine on this thread.
#[cfg(test)]
pub(super) fn hosts_on_this_thread() -> usize {
    LOCAL.with(|cell| cell.borrow().len())
}
