//! Hot reload: watch the scripts directory and reload what changed.
//!
//! Any change in the directory or below it (a save, an editor's rename dance,
//! a route script in a subdirectory such as `examples/`, or a Kubernetes
//! ConfigMap swapping its `..data` symlink) triggers one debounced pass over
//! every script, which re-reads each file and swaps in the ones whose content
//! changed.

use std::sync::Arc;
use std::time::Duration;

use notify::event::{AccessKind, AccessMode};
use notify::{EventKind, RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::ScriptHost;
use crate::error::Error;

/// Start watching `host`'s scripts directory until `stop` is cancelled. Does
/// nothing (returns `Ok`) when scripts come from the built-in copies.
pub fn watch(
    host: Arc<ScriptHost>,
    debounce: Duration,
    stop: CancellationToken,
) -> Result<(), Error> {
    let Some(dir) = host.dir().map(|d| d.to_path_buf()) else {
        return Ok(());
    };
    // Capacity 1: events only say "look again", so one pending is enough.
    let (tx, mut rx) = mpsc::channel::<()>(1);
    let mut watcher =
        notify::recommended_watcher(move |res: notify::Result<notify::Event>| match res {
            Ok(event) if is_change(&event.kind) => {
                let _ = tx.try_send(());
            }
            Ok(_) => {}
            Err(e) => tracing::warn!("script watcher: {e}"),
        })
        .map_err(|source| Error::Watch {
            path: dir.clone(),
            source,
        })?;
    // Recursive: routes may name scripts in subdirectories (`examples/bot.rhai`).
    watcher
        .watch(&dir, RecursiveMode::Recursive)
        .map_err(|source| Error::Watch {
            path: dir.clone(),
            source,
        })?;
    tracing::debug!(dir = %dir.display(), "watching scripts");

    tokio::spawn(async move {
        // The watcher lives as long as this task.
        let _watcher = watcher;
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                got = rx.recv() => if got.is_none() { break },
            }
            // Let a burst of events (write, chmod, rename) settle, then reload once.
            tokio::time::sleep(debounce).await;
            while rx.try_recv().is_ok() {}
            reload(host.clone()).await;
        }
    });
    Ok(())
}

/// Events that can change a file's content (not our own reads).
fn is_change(kind: &EventKind) -> bool {
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        _ => true,
    }
}

/// Run `host.reload_changed()` off the runtime's threads (it reads files and
/// compiles) and wait for it: for the watcher and for on-demand reloads.
pub async fn reload(host: Arc<ScriptHost>) {
    if let Err(e) = tokio::task::spawn_blocking(move || host.reload_changed()).await {
        tracing::error!("script reload panicked: {e}");
    }
}
