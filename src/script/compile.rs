//! Compiling and validating scripts: the sandboxed engine, the checks a
//! script must pass (its hooks, no top-level statements), and errors
//! located as `file:line:col`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rhai::module_resolvers::FileModuleResolver;
use rhai::{Dynamic, Engine, EvalAltResult, Position, Scope, AST};

use super::budget;
use super::hook::Hook;
use super::lower::{lower, Lowered};
use super::source::{digest, path_error};
use crate::config::ScriptLimits;
use crate::error::{Error, ScriptError};

/// A compiled, validated script version.
pub struct Compiled {
    pub(super) ast: AST,
    pub(super) hooks: [bool; Hook::ALL.len()],
    /// Where each hook is defined, for errors that Rhai reports without a position.
    pub(super) hook_lines: [(usize, usize); Hook::ALL.len()],
    pub(super) origin: String,
    pub(super) digest: u64,
    /// The source, recompiled once per worker thread (see [`local`]).
    pub(super) source: Arc<str>,
    /// Unique per compilation: a thread's copy is current when this matches.
    pub(super) generation: u64,
    /// Hooks that run as Rust (see [`lower`]), in `Hook` order.
    pub(super) lowered: [Option<Lowered>; Hook::ALL.len()],
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

    /// `hook`, lowered to Rust, if it could be.
    pub(super) fn lowered(&self, hook: Hook) -> Option<&Lowered> {
        self.lowered[hook as usize].as_ref()
    }

    /// Whether `hook` runs as Rust (a fast hook).
    pub fn is_lowered(&self, hook: Hook) -> bool {
        self.lowered(hook).is_some()
    }

    /// The fast hooks' names, for the load and reload log lines (`-`: none).
    pub(super) fn fast_hooks(&self) -> String {
        let names: Vec<&str> = Hook::ALL
            .iter()
            .filter(|h| self.is_lowered(**h))
            .map(|h| h.function())
            .collect();
        if names.is_empty() {
            "-".to_string()
        } else {
            names.join(",")
        }
    }
}

/// Compile and validate the scripts `config`'s routes use, as the server
/// would load them: from `scripts.dir` when it is a directory (a file it
/// lacks from the built-in copy, as the server does), else the built-in
/// copies (`roomcast check` with no files). Returns where each came from
/// (a path, or `builtin:NAME`) and one error per failing script.
pub fn check_config(config: &crate::Config) -> (Vec<String>, Vec<ScriptError>) {
    let dir = config
        .scripts
        .dir
        .is_dir()
        .then_some(config.scripts.dir.as_path());
    let engine = build_engine(&config.scripts.limits, dir);
    let mut names: Vec<&str> = config
        .routes
        .iter()
        .map(|r| r.script.as_str())
        .filter(|s| !s.is_empty())
        .collect();
    names.sort_unstable();
    names.dedup();
    let (mut origins, mut errors) = (Vec::new(), Vec::new());
    for name in names {
        match super::source::locate(dir, name) {
            Ok((_, origin, source)) => {
                match compile(&engine, &origin, &source) {
                    Ok(_) => {}
                    Err(Error::Script(e)) => errors.push(e),
                    Err(e) => errors.push(ScriptError {
                        file: origin.clone(),
                        line: 0,
                        column: 0,
                        message: e.to_string(),
                    }),
                }
                origins.push(origin);
            }
            Err(Error::Script(e)) => errors.push(e),
            Err(e) => errors.push(ScriptError {
                file: name.to_string(),
                line: 0,
                column: 0,
                message: e.to_string(),
            }),
        }
    }
    (origins, errors)
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
pub(super) fn build_engine(limits: &ScriptLimits, dir: Option<&Path>) -> Engine {
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
    super::register::register(&mut engine);
    engine
}

pub(super) fn compile(engine: &Engine, origin: &str, source: &str) -> Result<Compiled, Error> {
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
    let mut hooks = [false; Hook::ALL.len()];
    let mut hook_lines = [(0, 0); Hook::ALL.len()];
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
    let lowered = lower(engine, &ast);
    Ok(Compiled {
        lowered,
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
pub(super) fn next_id() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
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

pub(super) fn is_terminated(err: &EvalAltResult) -> bool {
    let mut e = err;
    while let EvalAltResult::ErrorInFunctionCall(_, _, inner, _)
    | EvalAltResult::ErrorInModule(_, inner, _) = e
    {
        e = inner;
    }
    matches!(e, EvalAltResult::ErrorTerminated(..))
}

pub(super) fn runtime_error(origin: &str, hook: Hook, err: &EvalAltResult) -> ScriptError {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::script::source::BUILTIN;

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
}
