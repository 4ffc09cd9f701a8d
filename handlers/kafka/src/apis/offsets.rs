//! Committed offsets: where they live and how they are read back. A group's
//! committed offset on a partition is the mark-delete of the partition's
//! durable cursor named after the group (the bridge of issue 5: retention
//! keeps what the group has not consumed, and cursor listings show Kafka
//! groups). Shared by OffsetCommit and OffsetFetch.

use polyport_handler_api::{storage::InitialPosition, Host};

use crate::errors;

/// Commits `offset` for `group` on the partition ledger `ledger`.
pub async fn commit(host: &Host, ledger: &str, group: &str, offset: i64) -> Result<(), i16> {
    let offset = u64::try_from(offset).map_err(|_| errors::OFFSET_OUT_OF_RANGE)?;
    let error = |e: polyport_handler_api::HandlerError| errors::from_handler(&e);
    host.cursor_open(ledger, group, true, InitialPosition::Offset(offset)).await.map_err(error)?;
    host.cursor_seek(ledger, group, offset).await.map_err(error)?;
    Ok(())
}

/// The offset `group` committed on `ledger`; -1 if none.
pub async fn committed(host: &Host, ledger: &str, group: &str) -> Result<i64, i16> {
    let cursors = host.cursor_list(ledger).await.map_err(|e| errors::from_handler(&e))?;
    Ok(cursors.iter().find(|c| c.name.as_str() == group && c.durable).map_or(-1, |c| c.mark_delete as i64))
}
