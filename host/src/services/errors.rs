//! Host errors as the [`HandlerError`] kinds handlers act on: every kind
//! names its cause, so a handler maps it to its own protocol's error code.

use polyport_handler_api::{ErrorKind, HandlerError};
use polyport_ledger::LedgerError;

use crate::topics::{TopicError, TopicName};

pub(super) fn topic_error(e: TopicError) -> HandlerError {
    let kind = match &e {
        TopicError::InvalidName(_) | TopicError::Invalid(_) => ErrorKind::INVALID_ARGUMENT,
        TopicError::NotFound(_) | TopicError::NamespaceNotFound(_) => ErrorKind::NOT_FOUND,
        TopicError::AlreadyExists(_) => ErrorKind::ALREADY_EXISTS,
        TopicError::NotEmpty(_) => ErrorKind::INVALID_ARGUMENT,
        TopicError::Ledger { source, .. } => return ledger_kind(source, e.to_string()),
        TopicError::Metadata(_) => ErrorKind::STORAGE,
        TopicError::NotServed(crate::cluster::NotServed::Store(_)) => ErrorKind::STORAGE,
        TopicError::NotServed(_) => ErrorKind::NOT_OWNER,
        TopicError::Tiering(crate::tiering::TieringError::Superseded { .. }) => ErrorKind::NOT_OWNER,
        TopicError::Tiering(_) => ErrorKind::STORAGE,
    };
    HandlerError::new(kind, e.to_string())
}

fn ledger_kind(e: &LedgerError, message: String) -> HandlerError {
    let kind = match e {
        LedgerError::OffsetOutOfRange { .. } => ErrorKind::OUT_OF_RANGE,
        LedgerError::NoSuchEntry { .. } | LedgerError::NoSuchCursor { .. } => ErrorKind::NOT_FOUND,
        LedgerError::InvalidEntry(_) => ErrorKind::INVALID_ARGUMENT,
        LedgerError::DiskFull { .. } => ErrorKind::DISK_FULL,
        LedgerError::Corrupt { .. } => ErrorKind::CORRUPT,
        LedgerError::Io { .. } | LedgerError::Failed { .. } | LedgerError::Closed(_) => ErrorKind::STORAGE,
    };
    HandlerError::new(kind, message)
}

pub(super) fn ledger_error(e: LedgerError) -> HandlerError {
    let message = e.to_string();
    ledger_kind(&e, message)
}

pub(super) fn parse(topic: &str) -> Result<TopicName, HandlerError> {
    TopicName::parse(topic).map_err(|e| HandlerError::new(ErrorKind::INVALID_ARGUMENT, e.to_string()))
}
