//! Reloading: re-read every file-backed script, compile the ones that
//! changed, and swap them in; a version that fails keeps the old one.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::compile::compile;
use super::host::{ReloadEvent, Script, ScriptHost};
use super::source::path_error;
use super::source::{digest, rhai_files};
use crate::error::{Error, ScriptError};

impl ScriptHost {
    /// Re-read every file-backed script; compile and swap in those whose content
    /// changed. A version that fails keeps the old one running.
    pub(crate) fn reload_changed(&self) {
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
                    let fast = compiled.fast_hooks();
                    script.current.store(Arc::new(compiled));
                    script.stale.store(false, Ordering::Relaxed);
                    self.metrics.reloads_ok.inc();
                    tracing::info!(script = %path.display(), fast_hooks = %fast, "script reloaded");
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
    pub(super) fn modules_digest(&self) -> u64 {
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
