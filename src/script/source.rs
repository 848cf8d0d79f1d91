//! Where a script's source comes from: the scripts directory, or the
//! copies of the default scripts built into the binary; and the other
//! `.rhai` files there, which scripts may import.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use crate::error::{Error, ScriptError};

/// Built-in copies of the default scripts, used when the scripts directory is absent.
pub const BUILTIN: [(&str, &str); 3] = [
    ("echo.rhai", include_str!("../../scripts/echo.rhai")),
    ("shout.rhai", include_str!("../../scripts/shout.rhai")),
    ("chat.rhai", include_str!("../../scripts/chat.rhai")),
];

fn builtin(name: &str) -> Option<&'static str> {
    BUILTIN.iter().find(|(n, _)| *n == name).map(|(_, s)| *s)
}

pub(super) fn locate(
    dir: Option<&Path>,
    name: &str,
) -> Result<(Option<PathBuf>, String, String), Error> {
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

/// An error about a script file as a whole (not found, unreadable).
pub(super) fn path_error(path: &Path, message: &str) -> ScriptError {
    ScriptError {
        file: path.display().to_string(),
        line: 0,
        column: 0,
        message: message.to_string(),
    }
}

pub(super) fn digest(source: &str) -> u64 {
    let mut h = DefaultHasher::new();
    source.hash(&mut h);
    h.finish()
}

/// The `.rhai` files under `dir` (importable as `"sub/name"`), with their
/// names relative to `root`, down to `depth` levels. Hidden entries are
/// skipped: a ConfigMap's `..data` and timestamped directories hold the same
/// files again.
pub(super) fn rhai_files(
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
