//! The script host: one Rhai engine, one compiled AST per script, hooks called
//! by name.
//!
//! The engine is built once with explicit limits and then shared immutably by
//! every connection. Each script's AST sits behind an `ArcSwap`, so a reload
//! swaps it atomically and a message in flight keeps the version it started
//! with. Hooks are called with a fresh `Scope` and `eval_ast(false)`: the
//! script body's top-level statements never run per message.

mod api;
mod watch;

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use arc_swap::ArcSwap;
use rhai::module_resolvers::FileModuleResolver;
use rhai::{CallFnOptions, Dynamic, Engine, EvalAltResult, FuncArgs, Position, Scope, AST};
use tokio::sync::broadcast;

pub use api::{is_valid_nick, to_payload, Action, RequestInfo, ScriptConn, ScriptRequest};
pub use watch::{reload, watch};

use crate::config::{Config, ScriptLimits};
use crate::error::{Error, ScriptError};
use crate::metrics::Metrics;

/// The hooks a script may define. `on_message` is required; the others are optional.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Hook {
    /// `on_connect(conn)`: after the connection joined its room.
    Connect = 0,
    /// `on_message(conn, text)`: a text message arrived.
    Message = 1,
    /// `on_binary(conn, data)`: a binary message arrived (a blob). Without this
    /// hook binary messages are dropped and counted.
    Binary = 2,
    /// `on_close(conn)`: the connection is gone and has left its room.
    Close = 3,
    /// `on_handshake(req)`: before the upgrade; `req.reject(status, reason)`
    /// refuses the connection with that HTTP status.
    Handshake = 4,
    /// `on_join(conn, room)`: the connection entered a room.
    Join = 5,
    /// `on_leave(conn, room)`: the connection left a room (and is no longer in it).
    Leave = 6,
}

impl Hook {
    /// Every hook, in `as usize` order.
    pub const ALL: [Hook; 7] = [
        Hook::Connect,
        Hook::Message,
        Hook::Binary,
        Hook::Close,
        Hook::Handshake,
        Hook::Join,
        Hook::Leave,
    ];

    /// Metric label value.
    pub fn name(self) -> &'static str {
        match self {
            Hook::Connect => "connect",
            Hook::Message => "message",
            Hook::Binary => "binary",
            Hook::Close => "close",
            Hook::Handshake => "handshake",
            Hook::Join => "join",
            Hook::Leave => "leave",
        }
    }

    /// Script function name.
    pub fn function(self) -> &'static str {
        match self {
            Hook::Connect => "on_connect",
            Hook::Message => "on_message",
            Hook::Binary => "on_binary",
            Hook::Close => "on_close",
            Hook::Handshake => "on_handshake",
            Hook::Join => "on_join",
            Hook::Leave => "on_leave",
        }
    }

    fn signature(self) -> &'static str {
        match self {
            Hook::Connect => "on_connect(conn)",
            Hook::Message => "on_message(conn, text)",
            Hook::Binary => "on_binary(conn, data)",
            Hook::Close => "on_close(conn)",
            Hook::Handshake => "on_handshake(req)",
            Hook::Join => "on_join(conn, room)",
            Hook::Leave => "on_leave(conn, room)",
        }
    }

    fn arity(self) -> usize {
        match self {
            Hook::Connect | Hook::Close | Hook::Handshake => 1,
            Hook::Message | Hook::Binary | Hook::Join | Hook::Leave => 2,
        }
    }

    fn required(self) -> bool {
        self == Hook::Message
    }
}

/// Built-in copies of the default scripts, used when the scripts directory is absent.
pub const BUILTIN: [(&str, &str); 3] = [
    ("echo.rhai", include_str!("../../scripts/echo.rhai")),
    ("shout.rhai", include_str!("../../scripts/shout.rhai")),
    ("chat.rhai", include_str!("../../scripts/chat.rhai")),
];

fn builtin(name: &str) -> Option<&'static str> {
    BUILTIN.iter().find(|(n, _)| *n == name).map(|(_, s)| *s)
}

/// A compiled, validated script version.
pub struct Compiled {
    ast: AST,
    hooks: [bool; 7],
    /// Where each hook is defined, for errors that Rhai reports without a position.
    hook_lines: [(usize, usize); 7],
    origin: String,
    digest: u64,
    /// The source, recompiled once per worker thread (see [`local`]).
    source: Arc<str>,
    /// Unique per compilation: a thread's copy is current when this matches.
    generation: u64,
}

impl Compiled {
    /// Where this version came from (a path, or `builtin:NAME`).
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Whether the script defines `hook`.
    pub fn has(&self, hook: Hook) -> bool {
        self.hooks[hook as usize]
    }
}

/// One script file and its current compiled version.
pub struct Script {
    name: String,
    path: Option<PathBuf>,
    current: ArcSwap<Compiled>,
    /// The file on disk failed to load last time: an older version runs.
    stale: AtomicBool,
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
    id: u64,
    /// Alive as long as the host: per-thread engines of dropped hosts are
    /// freed when their thread next meets a new host.
    alive: Arc<()>,
    /// The shared engine: compiles and validates; hooks run on per-thread copies.
    engine: Engine,
    limits: ScriptLimits,
    scripts: HashMap<String, Arc<Script>>,
    dir: Option<PathBuf>,
    metrics: Metrics,
    events: broadcast::Sender<ReloadEvent>,
    max_duration: std::time::Duration,
    /// Digest of the non-route `.rhai` files (importable modules) at the last reload.
    modules: Mutex<u64>,
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
            tracing::debug!(script = %name, origin = %origin, "script loaded");
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
            metrics,
            events,
            max_duration: config.scripts.limits.max_duration,
            modules: Mutex::new(0),
        };
        *host.modules.get_mut().unwrap_or_else(|e| e.into_inner()) = host.modules_digest();
        Ok(host)
    }

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

    /// Call `hook` of `script` with `args` (the connection first). Actions are
    /// appended to `out` only if the hook succeeds.
    pub fn call(
        &self,
        script: &Script,
        hook: Hook,
        conn: &ScriptConn,
        args: impl FuncArgs,
        out: &mut Vec<Action>,
    ) -> Outcome {
        match self.run(script, hook, args) {
            Ok(Some(value)) => {
                conn.commit(out);
                // A message hook's return value, if it is something to send,
                // is the reply: `fn on_message(conn, text) { text.to_upper() }`.
                if matches!(hook, Hook::Message | Hook::Binary) && is_sendable(&value) {
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

    /// Run `on_handshake(req)` if the script defines it.
    pub fn handshake(&self, script: &Script, req: &ScriptRequest) -> Outcome {
        match self.run(script, Hook::Handshake, (req.clone(),)) {
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
        hook: Hook,
        args: impl FuncArgs,
    ) -> Result<Option<Dynamic>, ScriptError> {
        let compiled = script.current.load();
        if !compiled.has(hook) {
            return Ok(None);
        }
        let m = self.metrics.hook(hook);
        let timed = self.metrics.per_message;
        if timed {
            m.calls.inc();
        }
        let started = Instant::now();
        budget::start(started + self.max_duration);
        let result = local::with(self, script, &compiled, |engine, ast| {
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

    /// Re-read every file-backed script; compile and swap in those whose content
    /// changed. A version that fails keeps the old one running.
    pub fn reload_changed(&self) {
        // Scripts may `import` other .rhai files of the directory; those are
        // compiled into each script, so when one changes, recompile them all.
        let modules = self.modules_digest();
        let modules_changed = {
            let mut last = self.modules.lock().unwrap_or_else(|e| e.into_inner());
            std::mem::replace(&mut *last, modules) != modules
        };
        // Events go out after the pass, so a subscriber sees the metrics of
        // the whole pass (e.g. `roomcast_scripts_stale`) already updated.
        let mut events = Vec::new();
        for script in self.scripts.values() {
            let Some(path) = &script.path else { continue };
            let source = match std::fs::read_to_string(path) {
                Ok(s) => s,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => {
                    events.push(self.reload_failed(script, path_error(path, &e.to_string())));
                    continue;
                }
            };
            if !modules_changed && digest(&source) == script.current.load().digest {
                // Back to the running version (say, a broken edit undone).
                script.stale.store(false, Ordering::Relaxed);
                continue;
            }
            match compile(&self.engine, &path.display().to_string(), &source) {
                Ok(compiled) => {
                    script.current.store(Arc::new(compiled));
                    script.stale.store(false, Ordering::Relaxed);
                    self.metrics.reloads_ok.inc();
                    tracing::info!(script = %path.display(), "script reloaded");
                    events.push(ReloadEvent {
                        script: script.name.clone(),
                        result: Ok(()),
                    });
                }
                Err(Error::Script(e)) => events.push(self.reload_failed(script, e)),
                Err(e) => events.push(self.reload_failed(script, path_error(path, &e.to_string()))),
            }
        }
        self.count_stale();
        for event in events {
            let _ = self.events.send(event);
        }
    }

    /// Set `roomcast_scripts_stale` from the scripts' flags.
    fn count_stale(&self) {
        let stale = self
            .scripts
            .values()
            .filter(|s| s.stale.load(Ordering::Relaxed))
            .count();
        self.metrics.scripts_stale.set(stale as i64);
    }

    /// A digest of every `.rhai` file in the directory that is not a route script.
    fn modules_digest(&self) -> u64 {
        let Some(dir) = &self.dir else { return 0 };
        let mut files = Vec::new();
        rhai_files(dir, dir, 4, &mut files);
        files.retain(|(name, _)| !self.scripts.contains_key(name));
        files.sort();
        let mut h = DefaultHasher::new();
        for (_, f) in files {
            f.hash(&mut h);
            std::fs::read(&f).unwrap_or_default().hash(&mut h);
        }
        h.finish()
    }

    /// Count and log a failed reload; the event to send once the pass is done.
    fn reload_failed(&self, script: &Script, err: ScriptError) -> ReloadEvent {
        self.metrics.reloads_error.inc();
        script.stale.store(true, Ordering::Relaxed);
        tracing::error!(
            script = %script.name,
            "script reload failed, keeping the previous version: {err}"
        );
        ReloadEvent {
            script: script.name.clone(),
            result: Err(err),
        }
    }
}

/// Compile and validate script files without running a server (`roomcast check`).
/// Returns one error per failing file.
pub fn check_files(limits: &ScriptLimits, files: &[PathBuf]) -> Vec<ScriptError> {
    let mut errors = Vec::new();
    for file in files {
        let engine = build_engine(limits, file.parent());
        match std::fs::read_to_string(file) {
            Err(e) => errors.push(path_error(file, &e.to_string())),
            Ok(source) => match compile(&engine, &file.display().to_string(), &source) {
                Ok(_) => {}
                Err(Error::Script(e)) => errors.push(e),
                Err(e) => errors.push(path_error(file, &e.to_string())),
            },
        }
    }
    errors
}

/// The engine every script runs in: explicit limits, `print`/`debug` to the
/// log, no `eval`, imports resolved from the scripts directory at compile time.
fn build_engine(limits: &ScriptLimits, dir: Option<&Path>) -> Engine {
    let mut engine = Engine::new();
    engine
        .set_max_operations(limits.max_operations)
        .set_max_string_size(limits.max_string_size)
        .set_max_array_size(limits.max_array_size)
        .set_max_map_size(limits.max_map_size)
        .set_max_call_levels(limits.max_call_levels)
        .set_max_expr_depths(limits.max_expr_depth, limits.max_expr_depth)
        .set_max_variables(1_000)
        .set_max_functions(256)
        .set_max_modules(32);
    engine.disable_symbol("eval");
    // The wall-clock budget: checked every 64 operations, cheap enough to keep on.
    engine.on_progress(|ops| {
        if ops % 64 == 0 && budget::exceeded() {
            Some(Dynamic::UNIT)
        } else {
            None
        }
    });
    engine.on_print(|s| tracing::info!(target: "roomcast::script", "{s}"));
    engine.on_debug(|s, src, pos| {
        tracing::debug!(target: "roomcast::script", "{}:{}: {s}", src.unwrap_or("script"), pos)
    });
    // Imports are resolved once, when a script is compiled
    // (`compile_into_self_contained`), with caching off so a reload re-reads them.
    let mut resolver = match dir {
        Some(dir) => FileModuleResolver::new_with_path(dir),
        None => FileModuleResolver::new(),
    };
    resolver.enable_cache(false);
    engine.set_module_resolver(resolver);
    api::register(&mut engine);
    engine
}

fn locate(dir: Option<&Path>, name: &str) -> Result<(Option<PathBuf>, String, String), Error> {
    if let Some(dir) = dir {
        let path = dir.join(name);
        match std::fs::read_to_string(&path) {
            Ok(source) => return Ok((Some(path.clone()), path.display().to_string(), source)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if let Some(source) = builtin(name) {
                    tracing::warn!(
                        "{} not found; using the built-in {name} until it appears",
                        path.display()
                    );
                    return Ok((Some(path), format!("builtin:{name}"), source.to_string()));
                }
                return Err(path_error(&path, "script file not found").into());
            }
            Err(e) => return Err(path_error(&path, &e.to_string()).into()),
        }
    }
    match builtin(name) {
        Some(source) => Ok((None, format!("builtin:{name}"), source.to_string())),
        None => Err(ScriptError {
            file: name.to_string(),
            line: 0,
            column: 0,
            message: "no scripts directory, and this is not a built-in script".into(),
        }
        .into()),
    }
}

fn compile(engine: &Engine, origin: &str, source: &str) -> Result<Compiled, Error> {
    let mut ast = engine
        .compile_into_self_contained(&Scope::new(), source)
        .map_err(|e| {
            let (message, pos) = innermost(&e);
            located(origin, pos, message)
        })?;
    ast.set_source(origin);
    // Hooks are called without evaluating the script body, so a top-level
    // statement would silently never run: refuse it with its position.
    if let Some(stmt) = ast.statements().first() {
        return Err(located(
            origin,
            stmt.position(),
            "top-level statements never run (hooks are called without evaluating the \
             script body): move them into a hook, e.g. `import` inside the function"
                .to_string(),
        )
        .into());
    }
    let mut hooks = [false; 7];
    let mut hook_lines = [(0, 0); 7];
    for f in ast.iter_functions() {
        if let Some(hook) = Hook::ALL.iter().find(|h| h.function() == f.name) {
            if f.params.len() != hook.arity() {
                let (line, column) = find_fn(source, f.name);
                return Err(ScriptError {
                    file: origin.to_string(),
                    line,
                    column,
                    message: format!(
                        "{} takes {} parameter(s): {}",
                        hook.function(),
                        hook.arity(),
                        hook.signature()
                    ),
                }
                .into());
            }
            hooks[*hook as usize] = true;
            hook_lines[*hook as usize] = find_fn(source, f.name);
        }
    }
    if let Some(hook) = Hook::ALL
        .iter()
        .find(|h| h.required() && !hooks[**h as usize])
    {
        return Err(ScriptError {
            file: origin.to_string(),
            line: 1,
            column: 1,
            message: format!("missing required hook: fn {}", hook.signature()),
        }
        .into());
    }
    Ok(Compiled {
        ast,
        hooks,
        hook_lines,
        origin: origin.to_string(),
        digest: digest(source),
        source: source.into(),
        generation: next_id(),
    })
}

/// Process-wide unique ids (script hosts, compilations).
fn next_id() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

fn digest(source: &str) -> u64 {
    let mut h = DefaultHasher::new();
    source.hash(&mut h);
    h.finish()
}

/// Position of `fn NAME` in the source, for errors about a hook's signature.
fn find_fn(source: &str, name: &str) -> (usize, usize) {
    let needle = format!("fn {name}");
    for (i, line) in source.lines().enumerate() {
        if let Some(col) = line.find(&needle) {
            return (i + 1, col + 1);
        }
    }
    (1, 1)
}

/// The innermost error (a hook's failure is wrapped once per call level) and its position.
fn innermost(err: &EvalAltResult) -> (String, Position) {
    let mut e = err;
    while let EvalAltResult::ErrorInFunctionCall(_, _, inner, _)
    | EvalAltResult::ErrorInModule(_, inner, _) = e
    {
        e = inner;
    }
    let pos = e.position();
    let mut message = e.to_string();
    if !pos.is_none() {
        let suffix = format!(" ({pos})");
        if message.ends_with(&suffix) {
            message.truncate(message.len() - suffix.len());
        }
    }
    (message, pos)
}

/// Values a message hook may return as its reply (others are ignored, so a
/// stray `true` or `42` at the end of a hook sends nothing).
fn is_sendable(value: &Dynamic) -> bool {
    value.is_string() || value.is_blob() || value.is_map() || value.is_array()
}

fn is_terminated(err: &EvalAltResult) -> bool {
    let mut e = err;
    while let EvalAltResult::ErrorInFunctionCall(_, _, inner, _)
    | EvalAltResult::ErrorInModule(_, inner, _) = e
    {
        e = inner;
    }
    matches!(e, EvalAltResult::ErrorTerminated(..))
}

/// The `.rhai` files under `dir` (importable as `"sub/name"`), with their
/// names relative to `root`, down to `depth` levels. Hidden entries are
/// skipped: a ConfigMap's `..data` and timestamped directories hold the same
/// files again.
fn rhai_files(
    root: &std::path::Path,
    dir: &std::path::Path,
    depth: usize,
    out: &mut Vec<(String, PathBuf)>,
) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.filter_map(|e| e.ok()) {
        let path = entry.path();
        let hidden = entry.file_name().to_string_lossy().starts_with('.');
        if hidden {
            continue;
        }
        if path.is_dir() {
            if depth > 0 {
                rhai_files(root, &path, depth - 1, out);
            }
        } else if path.extension().is_some_and(|x| x == "rhai") {
            let name = path
                .strip_prefix(root)
                .unwrap_or(&path)
                .to_string_lossy()
                .replace('\\', "/");
            out.push((name, path));
        }
    }
}

/// An engine and compiled scripts per worker thread.
///
/// One shared `Engine` and `AST` make every hook call on every thread touch
/// the same reference counts: measured with `cargo bench --bench hot_paths`
/// (script scaling), two threads sharing them ran no faster than one, while
/// an engine each ran 1.7× faster. So each worker thread builds its own engine
/// (same limits) and compiles its own copy of a script the first time it runs
/// it, and again after a reload; the shared compilation stays the reference for
/// validation and for which hooks exist.
mod local {
    use std::cell::RefCell;
    use std::sync::{Arc, Weak};

    use rhai::{Engine, AST};

    use super::{build_engine, Compiled, Script, ScriptHost};

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
    /// version of `script`).
    pub(super) fn with<R>(
        host: &ScriptHost,
        script: &Script,
        compiled: &Compiled,
        f: impl FnOnce(&Engine, &AST) -> R,
    ) -> R {
        LOCAL.with(|cell| {
            // Hooks never run hooks, so this is never borrowed twice; if it ever
            // were, fall back to the shared engine rather than panic.
            let Ok(mut hosts) = cell.try_borrow_mut() else {
                return f(&host.engine, &compiled.ast);
            };
            let i = match hosts.iter().position(|t| t.host == host.id) {
                Some(i) => i,
                None => {
                    // A new host on this thread (rare: servers starting):
                    // free what dropped hosts left here.
                    hosts.retain(|t| t.alive.strong_count() > 0);
                    hosts.push(ThreadScripts {
                        host: host.id,
                        alive: Arc::downgrade(&host.alive),
                        engine: build_engine(&host.limits, host.dir.as_deref()),
                        asts: Vec::new(),
                    });
                    hosts.len() - 1
                }
            };
            let ts = &mut hosts[i];
            let key = script as *const Script as usize;
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
                        return f(&host.engine, &compiled.ast);
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
}

/// The running hook's deadline. Hooks run synchronously on one thread from
/// start to end, so a thread-local is exactly "the current call".
mod budget {
    use std::cell::Cell;
    use std::time::Instant;

    thread_local! {
        static DEADLINE: Cell<Option<Instant>> = const { Cell::new(None) };
    }

    pub(super) fn start(deadline: Instant) {
        DEADLINE.with(|d| d.set(Some(deadline)));
    }

    pub(super) fn stop() {
        DEADLINE.with(|d| d.set(None));
    }

    pub(super) fn exceeded() -> bool {
        DEADLINE.with(|d| d.get().is_some_and(|t| Instant::now() >= t))
    }
}

fn runtime_error(origin: &str, hook: Hook, err: &EvalAltResult) -> ScriptError {
    let (message, pos) = innermost(err);
    let mut e = located(origin, pos, message);
    e.message = format!("{} in {}", e.message, hook.function());
    e
}

fn located(origin: &str, pos: Position, message: String) -> ScriptError {
    ScriptError {
        file: origin.to_string(),
        line: pos.line().unwrap_or(0),
        column: pos.position().unwrap_or(0),
        message,
    }
}

fn path_error(path: &Path, message: &str) -> ScriptError {
    ScriptError {
        file: path.display().to_string(),
        line: 0,
        column: 0,
        message: message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn engine() -> Engine {
        build_engine(&ScriptLimits::default(), None)
    }

    #[test]
    fn builtins_compile_and_define_their_hooks() {
        let e = engine();
        for (name, src) in BUILTIN {
            let c = compile(&e, name, src).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(c.has(Hook::Message));
        }
        assert!(compile(&e, "echo", BUILTIN[0].1).unwrap().has(Hook::Binary));
        assert!(compile(&e, "chat", BUILTIN[2].1).unwrap().has(Hook::Join));
    }

    #[test]
    fn syntax_error_has_line_and_column() {
        let err = compile(
            &engine(),
            "bad.rhai",
            "fn on_message(conn, text) {\n  let x = ;\n}",
        )
        .err()
        .unwrap();
        let Error::Script(e) = err else { panic!() };
        assert_eq!((e.file.as_str(), e.line), ("bad.rhai", 2), "{e}");
        assert!(e.column > 0);
    }

    #[test]
    fn top_level_statements_are_rejected_with_their_line() {
        for src in [
            "fn on_message(c, t) {}\nlet x = 1;",
            "fn on_message(c, t) {}\nconst GREETING = \"hi\";",
        ] {
            let err = compile(&engine(), "x.rhai", src).err().unwrap();
            let Error::Script(e) = err else { panic!() };
            assert_eq!(e.line, 2, "{e}");
            assert!(e.message.contains("top-level"), "{e}");
        }
    }

    #[test]
    fn missing_message_hook_is_rejected() {
        let err = compile(&engine(), "x.rhai", "fn on_connect(conn) {}")
            .err()
            .unwrap();
        assert!(err.to_string().contains("missing required hook"), "{err}");
    }

    #[test]
    fn wrong_arity_is_rejected_with_its_line() {
        let err = compile(&engine(), "x.rhai", "\nfn on_message(text) {}")
            .err()
            .unwrap();
        let Error::Script(e) = err else { panic!() };
        assert_eq!(e.line, 2);
        assert!(e.message.contains("on_message(conn, text)"));
    }

    #[test]
    fn runtime_error_points_inside_the_hook() {
        let metrics = Metrics::new();
        let e = engine();
        let src = "fn on_message(conn, text) {\n    if text == \"boom\" { throw \"kaboom\"; }\n    conn.reply(text);\n}";
        let script = Script {
            name: "t.rhai".into(),
            path: None,
            current: ArcSwap::from_pointee(compile(&e, "t.rhai", src).unwrap()),
            stale: AtomicBool::new(false),
        };
        let host = ScriptHost {
            id: next_id(),
            alive: Arc::new(()),
            engine: e,
            limits: ScriptLimits::default(),
            scripts: HashMap::new(),
            dir: None,
            metrics: metrics.clone(),
            events: broadcast::channel(1).0,
            max_duration: std::time::Duration::from_millis(50),
            modules: Mutex::new(0),
        };
        let conn = ScriptConn::new(1, 1, "t", "t/lobby", "user1");
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
        assert_eq!(metrics.hook(Hook::Message).errors.get(), 1);
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
        let config = Config::default();
        let run = |host: &ScriptHost| {
            let script = host.scripts.values().next().unwrap().clone();
            let conn = ScriptConn::new(1, 1, "t", "t/lobby", "user1");
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
