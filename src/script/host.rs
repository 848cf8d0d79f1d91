//! The script host: every script's current version, and hook calls.
//!
//! The engine is built once with explicit limits; each script's AST sits
//! behind an `ArcSwap`, so a reload swaps it atomically and a message in
//! flight keeps the version it started with. Hooks are called with a fresh
//! `Scope` and `eval_ast(false)`: the script body's top-level statements
//! never run per message. Calls run on a per-thread copy of the engine and
//! AST (see `local`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use arc_swap::ArcSwap;
use rhai::{CallFnOptions, Dynamic, Engine, FuncArgs, Scope};
use tokio::sync::broadcast;

use super::action::{to_payload, Action};
use super::budget;
use super::compile::{build_engine, compile, is_terminated, next_id, runtime_error, Compiled};
use super::conn::Conn;
use super::hook::{Hook, HookArgs};
use super::local;
use super::lower;
use super::request::ScriptRequest;
use super::source::locate;
use crate::config::{Config, ScriptLimits};
use crate::error::{Error, ScriptError};
use crate::metrics::{HookMetrics, Metrics};

/// Fast hooks are timed once per this many calls (their first call
/// included): `roomcast_script_duration_seconds` is a sample for them.
const FAST_TIMED_ONE_IN: u64 = 16;

/// One script file and its current compiled version.
pub struct Script {
    pub(super) name: String,
    pub(super) path: Option<PathBuf>,
    pub(super) current: ArcSwap<Compiled>,
    /// The file on disk failed to load last time: an older version runs.
    pub(super) stale: AtomicBool,
}

impl Script {
    /// The script's file name (`chat.rhai`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The version new calls use.
    pub fn current(&self) -> Arc<Compiled> {
        self.current.load_full()
    }
}

/// The result of a reload attempt, for logs, tests and embedders.
#[derive(Debug, Clone)]
pub struct ReloadEvent {
    /// Script file name.
    pub script: String,
    /// `Ok` when the new version is live; the error when the old one was kept.
    pub result: Result<(), ScriptError>,
}

/// What happened when a hook was called.
#[derive(Debug)]
pub enum Outcome {
    /// The hook ran; its actions were appended to the caller's buffer.
    Ran,
    /// The script does not define this (optional) hook.
    Missing,
    /// The hook failed; nothing it recorded is kept.
    Failed(ScriptError),
}

/// The engine and every route's script.
pub struct ScriptHost {
    /// Identifies this host's per-thread engines.
    pub(super) id: u64,
    /// Alive as long as the host: per-thread engines of dropped hosts are
    /// freed when their thread next meets a new host.
    pub(super) alive: Arc<()>,
    /// The shared engine: compiles and validates; hooks run on per-thread copies.
    pub(super) engine: Engine,
    pub(super) limits: ScriptLimits,
    pub(super) scripts: HashMap<String, Arc<Script>>,
    pub(super) dir: Option<PathBuf>,
    pub(super) metrics: Metrics,
    /// Per-hook metric handles, in `Hook` order.
    pub(super) hooks: Vec<HookMetrics>,
    pub(super) events: broadcast::Sender<ReloadEvent>,
    pub(super) max_duration: std::time::Duration,
    /// `scripts.fast_hooks`: lowered hooks run as Rust.
    pub(super) fast_hooks: bool,
    /// Digest of the non-route `.rhai` files (importable modules) at the last reload.
    pub(super) modules: Mutex<u64>,
}

impl ScriptHost {
    /// Build the engine and load every script the routes name. Fails if a script
    /// cannot be found, does not compile or lacks `on_message`.
    pub fn new(config: &Config, metrics: Metrics) -> Result<ScriptHost, Error> {
        let dir = config
            .scripts
            .dir
            .is_dir()
            .then(|| config.scripts.dir.clone());
        if dir.is_none() && config.scripts.dir != crate::config::ScriptsConfig::default().dir {
            // The default `scripts` may well be absent (the binary alone); a
            // configured directory that is missing is more likely a mistake.
            tracing::warn!(
                dir = %config.scripts.dir.display(),
                "scripts.dir is not a directory: serving the built-in scripts, not watching"
            );
        }
        let engine = build_engine(&config.scripts.limits, dir.as_deref());
        let mut scripts = HashMap::new();
        let names = config
            .routes
            .iter()
            .map(|r| r.script.as_str())
            .chain(config.rooms.iter().filter_map(|p| p.script.as_deref()));
        for name in names {
            if name.is_empty() || scripts.contains_key(name) {
                continue;
            }
            let (path, origin, source) = locate(dir.as_deref(), name)?;
            let compiled = compile(&engine, &origin, &source)?;
            let fast = compiled.fast_hooks();
            tracing::debug!(script = %name, origin = %origin, fast_hooks = %fast, "script loaded");
            scripts.insert(
                name.to_string(),
                Arc::new(Script {
                    name: name.to_string(),
                    path,
                    current: ArcSwap::from_pointee(compiled),
                    stale: AtomicBool::new(false),
                }),
            );
        }
        let (events, _) = broadcast::channel(64);
        let mut host = ScriptHost {
            id: next_id(),
            alive: Arc::new(()),
            engine,
            limits: config.scripts.limits.clone(),
            scripts,
            dir,
            hooks: hook_metrics(&metrics),
            metrics,
            events,
            max_duration: config.scripts.limits.max_duration,
            fast_hooks: config.scripts.fast_hooks,
            modules: Mutex::new(0),
        };
        *host.modules.get_mut().unwrap_or_else(|e| e.into_inner()) = host.modules_digest();
        Ok(host)
    }

    #[doc(hidden)]
    /// The script named `name` (a route's `script`).
    pub fn script(&self, name: &str) -> Option<Arc<Script>> {
        self.scripts.get(name).cloned()
    }

    /// Scripts in use, with where each came from.
    pub fn origins(&self) -> Vec<(String, String)> {
        let mut v: Vec<_> = self
            .scripts
            .values()
            .map(|s| (s.name.clone(), s.current().origin.clone()))
            .collect();
        v.sort();
        v
    }

    /// The directory scripts are loaded from, or `None` when using the built-ins.
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// Reload events (successes and failures), in order.
    pub fn subscribe(&self) -> broadcast::Receiver<ReloadEvent> {
        self.events.subscribe()
    }

    #[doc(hidden)]
    /// Call `hook` of `script` with `args` (the connection first). Actions are
    /// appended to `out` only if the hook succeeds.
    pub fn call(
        &self,
        script: &Script,
        hook: Hook,
        conn: &Conn,
        args: impl HookArgs,
        out: &mut Vec<Action>,
    ) -> Outcome {
        let compiled = script.current.load();
        if let Some(lowered) = compiled.lowered(hook).filter(|_| self.fast_hooks) {
            // `false`: this call is one for Rhai after all (see `lower`).
            if args.with_text(|arg| self.run_lowered(lowered, hook, conn, arg, out)) {
                return Outcome::Ran;
            }
        }
        match self.run(script, &compiled, hook, args.into_rhai(conn)) {
            Ok(Some(value)) => {
                conn.commit(out);
                // A message hook's return value, if it is something to send,
                // is the reply: `fn on_message(conn, text) { text.to_upper() }`.
                if matches!(hook, Hook::Message | Hook::Binary | Hook::Event) && is_sendable(&value)
                {
                    if let Ok(payload) = to_payload(value) {
                        out.push(Action::Reply(payload));
                    }
                }
                Outcome::Ran
            }
            Ok(None) => Outcome::Missing,
            Err(e) => {
                conn.discard();
                Outcome::Failed(e)
            }
        }
    }

    /// Run a fast hook, counted and (as a sample) timed like any hook:
    /// whether it ran (else Rhai must).
    fn run_lowered(
        &self,
        lowered: &lower::Lowered,
        hook: Hook,
        conn: &Conn,
        arg: Option<&str>,
        out: &mut Vec<Action>,
    ) -> bool {
        let input = lower::Input {
            conn,
            arg,
            max_string: self.limits.max_string_size,
        };
        let m = &self.hooks[hook as usize];
        let counted = self.metrics.per_message;
        // A fast hook takes about as long as reading the clock twice: its
        // first call and one in FAST_TIMED_ONE_IN after are timed.
        let timer = (counted && m.calls.get() % FAST_TIMED_ONE_IN == 0).then(Instant::now);
        let ran = lowered.run(&input, out);
        if ran && counted {
            m.calls.inc();
            if let Some(started) = timer {
                m.duration.observe(started.elapsed().as_secs_f64());
            }
        }
        ran
    }

    /// Run `on_handshake(req)` if the script defines it.
    pub(crate) fn handshake(&self, script: &Script, req: &ScriptRequest) -> Outcome {
        match self.run(
            script,
            &script.current.load(),
            Hook::Handshake,
            (req.clone(),),
        ) {
            Ok(Some(_)) => Outcome::Ran,
            Ok(None) => Outcome::Missing,
            Err(e) => Outcome::Failed(e),
        }
    }

    /// Call one hook, with metrics and the wall-clock budget: its return
    /// value, or `None` when the script does not define it.
    fn run(
        &self,
        script: &Script,
        compiled: &Compiled,
        hook: Hook,
        args: impl FuncArgs,
    ) -> Result<Option<Dynamic>, ScriptError> {
        if !compiled.has(hook) {
            return Ok(None);
        }
        let m = &self.hooks[hook as usize];
        let timed = self.metrics.per_message;
        if timed {
            m.calls.inc();
        }
        let started = Instant::now();
        budget::start(started + self.max_duration);
        let owner = local::Owner {
            id: self.id,
            alive: &self.alive,
            engine: &self.engine,
            limits: &self.limits,
            dir: self.dir.as_deref(),
        };
        let key = script as *const Script as usize;
        let result = local::with(owner, key, compiled, |engine, ast| {
            let mut scope = Scope::new();
            let options = CallFnOptions::new().eval_ast(false).rewind_scope(false);
            engine.call_fn_with_options::<Dynamic>(options, &mut scope, ast, hook.function(), args)
        });
        budget::stop();
        if timed {
            m.duration.observe(started.elapsed().as_secs_f64());
        }
        match result {
            Ok(value) => Ok(Some(value)),
            Err(err) => {
                m.errors.inc();
                let mut e = runtime_error(&compiled.origin, hook, &err);
                if e.line == 0 {
                    // Limits and the time budget stop a hook without a position:
                    // point at the hook itself.
                    (e.line, e.column) = compiled.hook_lines[hook as usize];
                }
                if is_terminated(&err) {
                    e.message = format!(
                        "{} exceeded its time budget of {:?} (scripts.limits.max_duration)",
                        hook.function(),
                        self.max_duration
                    );
                }
                Err(e)
            }
        }
    }
}

/// Every hook's metric handles, resolved once.
fn hook_metrics(metrics: &Metrics) -> Vec<HookMetrics> {
    Hook::ALL.iter().map(|h| metrics.hook(h.name())).collect()
}

/// Values a message hook may return as its reply (others are ignored, so a
/// stray `true` or `42` at the end of a hook sends nothing).
fn is_sendable(value: &Dynamic) -> bool {
    value.is_string() || value.is_blob() || value.is_map() || value.is_array()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn engine() -> Engine {
        build_engine(&ScriptLimits::default(), None)
    }

    impl Script {
        /// A script that is only `compiled`.
        pub(in crate::script) fn for_test(compiled: Compiled) -> Script {
            Script {
                name: "t.rhai".into(),
                path: None,
                current: ArcSwap::from_pointee(compiled),
                stale: AtomicBool::new(false),
            }
        }
    }

    impl ScriptHost {
        /// A host with no scripts of its own, for calling hooks of [`Script::for_test`]s.
        pub(in crate::script) fn for_test(
            engine: Engine,
            limits: ScriptLimits,
            metrics: &Metrics,
        ) -> ScriptHost {
            ScriptHost {
                id: next_id(),
                alive: Arc::new(()),
                engine,
                max_duration: std::time::Duration::from_millis(50),
                fast_hooks: true,
                limits,
                scripts: HashMap::new(),
                dir: None,
                hooks: hook_metrics(metrics),
                metrics: metrics.clone(),
                events: broadcast::channel(1).0,
                modules: Mutex::new(0),
            }
        }
    }

    #[test]
    fn runtime_error_points_inside_the_hook() {
        let metrics = Metrics::new();
        let e = engine();
        let src = "fn on_message(conn, text) {\n    if text == \"boom\" { throw \"kaboom\"; }\n    conn.reply(text);\n}";
        let script = Script::for_test(compile(&e, "t.rhai", src).unwrap());
        let host = ScriptHost::for_test(e, ScriptLimits::default(), &metrics);
        let conn = Conn::new(1, 1, "t", "t/lobby", "user1");
        let mut out = Vec::new();
        let text = rhai::ImmutableString::from("boom");
        match host.call(
            &script,
            Hook::Message,
            &conn,
            (conn.clone(), text),
            &mut out,
        ) {
            Outcome::Failed(err) => {
                assert_eq!(err.line, 2, "{err}");
                assert!(err.message.contains("kaboom"), "{err}");
            }
            other => panic!("{other:?}"),
        }
        assert!(out.is_empty());
        assert_eq!(metrics.hook("message").errors.get(), 1);
        let ok = rhai::ImmutableString::from("fine");
        assert!(matches!(
            host.call(&script, Hook::Message, &conn, (conn.clone(), ok), &mut out),
            Outcome::Ran
        ));
        assert_eq!(
            out,
            vec![Action::Reply(crate::payload::Payload::Text("fine".into()))]
        );
    }

    /// A dropped host's per-thread engine does not outlive the next host
    /// that runs a hook on the same thread (embedders start and stop servers).
    #[test]
    fn dropped_hosts_free_their_thread_engines() {
        // Through Rhai: lowered hooks need no engine at all.
        let mut config = Config::default();
        config.scripts.fast_hooks = false;
        let run = |host: &ScriptHost| {
            let script = host.scripts.values().next().unwrap().clone();
            let conn = Conn::new(1, 1, "t", "t/lobby", "user1");
            let text = rhai::ImmutableString::from("hi");
            let mut out = Vec::new();
            let outcome = host.call(
                &script,
                Hook::Message,
                &conn,
                (conn.clone(), text),
                &mut out,
            );
            assert!(matches!(outcome, Outcome::Ran), "{outcome:?}");
        };
        let before = local::hosts_on_this_thread();
        for _ in 0..5 {
            let host = ScriptHost::new(&config, Metrics::new()).unwrap();
            run(&host);
            assert_eq!(local::hosts_on_this_thread(), before + 1);
        }
        let a = ScriptHost::new(&config, Metrics::new()).unwrap();
        let b = ScriptHost::new(&config, Metrics::new()).unwrap();
        run(&a);
        run(&b);
        assert_eq!(
            local::hosts_on_this_thread(),
            before + 2,
            "live hosts keep theirs"
        );
    }
}
