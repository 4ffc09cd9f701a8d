//! AddOffsetsToTxn (key 25).
//!
//! Versions: 0-4. Adds a group's offsets to the producer's transaction (the
//! transaction begins if none was ongoing); the TxnOffsetCommit that
//! follows goes to the group's coordinator, and the transaction's end
//! commits or drops those offsets ([`crate::coordinator::markers`]).
//! Errors as AddPartitionsToTxn (fencing, CONCURRENT_TRANSACTIONS while the
//! previous transaction ends); GROUP_AUTHORIZATION_FAILED for a group the
//! role may not consume.

use kafka_protocol::{
    messages::{AddOffsetsToTxnRequest, AddOffsetsToTxnResponse},
    protocol::VersionRange,
};

use super::RequestContext;
use crate::{coordinator::TxnAdd, errors};

/// Versions implemented.
pub const VERSIONS: VersionRange = VersionRange { min: 0, max: 4 };

/// Adds the group to the transaction.
pub async fn handle(ctx: &RequestContext<'_>, request: AddOffsetsToTxnRequest) -> AddOffsetsToTxnResponse {
    let group = request.group_id.0.to_string();
    if !ctx.allowed_group(&group).await {
        return AddOffsetsToTxnResponse::default().with_error_code(errors::GROUP_AUTHORIZATION_FAILED);
    }
    let add = TxnAdd {
        id: request.transactional_id.0.to_string(),
        producer_id: request.producer_id.0,
        epoch: request.producer_epoch,
        partitions: Vec::new(),
        group: Some(ctx.group_key(&group).into_owned()),
    };
    AddOffsetsToTxnResponse::default().with_error_code(super::txn_error(ctx, ctx.shared.coordinator.txn_add(add).await))
}
