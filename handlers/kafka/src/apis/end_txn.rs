//! EndTxn (key 26).
//!
//! Versions: 0-4. Commits or aborts the producer's transaction: once the
//! coordinator's PrepareCommit or PrepareAbort is durable the client is
//! answered, and the markers are written to every partition of the
//! transaction ([`crate::coordinator::markers`]); the next transaction of
//! the same producer gets CONCURRENT_TRANSACTIONS (which clients retry)
//! until they are. A retried EndTxn of a completed transaction is answered
//! again; an older epoch gets PRODUCER_FENCED, another producer id
//! INVALID_PRODUCER_ID_MAPPING, no transaction INVALID_TXN_STATE.
//! Gaps: v5 (transaction version 2, KIP-890) is not served.

use kafka_protocol::{
    messages::{EndTxnRequest, EndTxnResponse},
    protocol::VersionRange,
};

use super::RequestContext;

/// Versions implemented.
pub const VERSIONS: VersionRange = VersionRange { min: 0, max: 4 };

/// Ends the transaction.
pub async fn handle(ctx: &RequestContext<'_>, request: EndTxnRequest) -> EndTxnResponse {
    let code = ctx
        .shared
        .coordinator
        .txn_end(request.transactional_id.as_str(), request.producer_id.0, request.producer_epoch, request.committed)
        .await;
    EndTxnResponse::default().with_error_code(super::txn_error(ctx, code))
}
