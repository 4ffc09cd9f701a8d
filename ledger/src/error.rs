//! Errors of the managed ledger.

use std::{io, path::PathBuf};

/// Why a ledger operation failed.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// An I/O error, with what was being done.
    #[error("{context}: {source}")]
    Io {
        /// What failed (names the file).
        context: String,
        /// The cause.
        source: io::Error,
    },
    /// The disk is full: the append was not stored; reads go on.
    #[error("{context}: no space left on device; the append was not stored")]
    DiskFull {
        /// What failed (names the file).
        context: String,
    },
    /// Stored bytes fail their checksum or structure: the data cannot be trusted.
    #[error("ledger {ledger} is corrupt: {file} at byte {position}: {reason}")]
    Corrupt {
        /// The ledger (topic partition) name.
        ledger: String,
        /// The file.
        file: PathBuf,
        /// Where.
        position: u64,
        /// What is wrong.
        reason: String,
    },
    /// The ledger stopped accepting writes after an earlier failure (e.g. an fsync error).
    #[error("ledger {ledger} is failed and refuses writes: {reason}")]
    Failed {
        /// The ledger name.
        ledger: String,
        /// The original failure.
        reason: String,
    },
    /// A read or lookup outside the stored range.
    #[error("offset {offset} is outside the log of {ledger}: valid offsets are {start} to {end} (end exclusive)")]
    OffsetOutOfRange {
        /// The ledger name.
        ledger: String,
        /// The requested offset.
        offset: u64,
        /// First stored offset.
        start: u64,
        /// Offset after the last stored message.
        end: u64,
    },
    /// No entry has this (ledger id, entry id).
    #[error("no entry {entry_id} in ledger id {ledger_id} of {ledger}")]
    NoSuchEntry {
        /// The ledger name.
        ledger: String,
        /// The segment's ledger id.
        ledger_id: u64,
        /// The entry id.
        entry_id: u64,
    },
    /// No cursor of that name.
    #[error("no cursor {cursor} on {ledger}")]
    NoSuchCursor {
        /// The ledger name.
        ledger: String,
        /// The cursor name.
        cursor: String,
    },
    /// The entry cannot be stored as given.
    #[error("invalid entry: {0}")]
    InvalidEntry(String),
    /// The ledger was closed.
    #[error("ledger {0} is closed")]
    Closed(String),
}

impl LedgerError {
    /// An I/O error with what was being done; ENOSPC becomes [`LedgerError::DiskFull`].
    pub fn io(context: impl Into<String>, source: io::Error) -> Self {
        let context = context.into();
        if source.raw_os_error() == Some(28) {
            Self::DiskFull { context }
        } else {
            Self::Io { context, source }
        }
    }
}
