//! The running hook's deadline. Hooks run synchronously on one thread from
//! start to end, so a thread-local is exactly "the current call".

use std::cell::Cell;
use std::time::Instant;

thread_local! {
    static DEADLINE: Cell<Option<Instant>> = const { Cell::new(None) };
}

pub(in crate::script) fn start(deadline: Instant) {
    DEADLINE.with(|d| d.set(Some(deadline)));
}

pub(in crate::script) fn stop() {
    DEADLINE.with(|d| d.set(None));
}

pub(in crate::script) fn exceeded() -> bool {
    DEADLINE.with(|d| d.get().is_some_and(|t| Instant::now() >= t))
}
