//! Reads that must not block an async worker thread.
//!
//! The ledger's lookups (`read_now`, `position`, `offset_of`,
//! `find_by_time`) are synchronous: they walk the index and read entries,
//! from the tail cache when the bytes are there, else from the segment file
//! (a `pread` or a page fault on the memory map, which can wait on the disk).
//! [`crate::ManagedLedger::nonblocking`] runs such a lookup inside
//! [`attempt`] first: every entry iteration created meanwhile reads memory
//! only, and the first one that would have to read on records it and stops.
//! The attempt's result is then dropped (it may be short or an error) and the
//! lookup runs again, whole, on a blocking thread. So consumers that keep up
//! (and acknowledgements of what was just dispatched) cost no thread hop,
//! and a catch-up read never stalls the runtime.
//!
//! Why a thread-local rather than a parameter: the lookups call one another
//! (`position` reads through `read_now`), and every one of them would have to
//! carry the mode and report the stop; here the iterator alone knows both.

use std::cell::Cell;

thread_local! {
    /// `Some(blocked)` inside an attempt.
    static ATTEMPT: Cell<Option<bool>> = const { Cell::new(None) };
}

/// Runs `f` reading memory only; `None` if it would have blocked (its result
/// is dropped then).
pub(crate) fn attempt<R>(f: impl FnOnce() -> R) -> Option<R> {
    let outer = ATTEMPT.with(|a| a.replace(Some(false)));
    let result = f();
    let blocked = ATTEMPT.with(|a| a.replace(outer)) == Some(true);
    (!blocked).then_some(result)
}

/// Whether reads made now must stay in memory.
pub(crate) fn active() -> bool {
    ATTEMPT.with(|a| a.get().is_some())
}

/// Records that a read inside the attempt stopped before reading on.
pub(crate) fn would_block() {
    ATTEMPT.with(|a| {
        if a.get().is_some() {
            a.set(Some(true));
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_attempt_that_would_block_gives_nothing_and_nesting_is_undone() {
        assert!(!active());
        assert_eq!(attempt(|| 1), Some(1));
        assert_eq!(
            attempt(|| {
                assert!(active());
                would_block();
                2
            }),
            None
        );
        assert!(!active());
        would_block(); // outside an attempt: nothing to record
        assert_eq!(attempt(|| 3), Some(3));
    }
}
