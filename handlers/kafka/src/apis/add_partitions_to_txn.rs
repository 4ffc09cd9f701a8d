//! AddPartitionsToTxn (key 24).
//!
//! Versions: 0-3 (what producers send; v4+ batch transactions for brokers,
//! Kafka's transaction version 2). Adds partitions to the producer's
//! transaction, beginning it if none was ongoing; each partition is
//! answered with the transaction's error code, or its own:
//! UNKNOWN_TOPIC_OR_PARTITION for a partition that does not exist,
//! TOPIC_AUTHORIZATION_FAILED for a topic the role may not produce to
//! (and the others OPERATION_NOT_ATTEMPTED, as Kafka answers).

use kafka_protocol::{
    messages::{
        add_partitions_to_txn_response::{AddPartitionsToTxnPartitionResult, AddPartitionsToTxnTopicResult},
        AddPartitionsToTxnRequest, AddPartitionsToTxnResponse,
    },
    protocol::VersionRange,
};
use polyport_handler_api::storage::Operation;

use super::RequestContext;
use crate::{coordinator::TxnAdd, errors};

/// Versions implemented.
pub const VERSIONS: VersionRange = VersionRange { min: 0, max: 3 };

/// OPERATION_NOT_ATTEMPTED: another partition of the request failed.
const OPERATION_NOT_ATTEMPTED: i16 = 55;

/// Adds the partitions to the transaction.
pub async fn handle(ctx: &RequestContext<'_>, request: AddPartitionsToTxnRequest) -> AddPartitionsToTxnResponse {
    // Each partition checked first: all are added, or none.
    let mut checked: Vec<(String, Vec<(i32, i16)>)> = Vec::new();
    for topic in &request.v3_and_below_topics {
        let name = topic.name.as_str();
        let code = if ctx.topic_denied(Operation::Produce, name).await {
            Err(errors::TOPIC_AUTHORIZATION_FAILED)
        } else {
            Ok(ctx.shared.topics.resolve(ctx.host(), name, false).await)
        };
        let partitions = topic
            .partitions
            .iter()
            .map(|p| match &code {
                Err(code) => (*p, *code),
                Ok(resolved) => (*p, resolved.ledger(*p).err().unwrap_or(errors::NONE)),
            })
            .collect();
        checked.push((name.to_owned(), partitions));
    }
    let failed = checked.iter().any(|(_, ps)| ps.iter().any(|(_, c)| *c != errors::NONE));
    let code = if failed {
        None
    } else {
        let add = TxnAdd {
            id: request.v3_and_below_transactional_id.0.to_string(),
            producer_id: request.v3_and_below_producer_id.0,
            epoch: request.v3_and_below_producer_epoch,
            partitions: checked.iter().flat_map(|(t, ps)| ps.iter().map(move |(p, _)| (t.clone(), *p))).collect(),
            group: None,
        };
        Some(super::txn_error(ctx, ctx.shared.coordinator.txn_add(add).await))
    };
    let results = checked
        .into_iter()
        .map(|(name, partitions)| {
            let results = partitions
                .into_iter()
                .map(|(index, own)| {
                    let code = match code {
                        Some(code) => code,
                        None if own != errors::NONE => own,
                        None => OPERATION_NOT_ATTEMPTED,
                    };
                    AddPartitionsToTxnPartitionResult::default()
                        .with_partition_index(index)
                        .with_partition_error_code(code)
                })
                .collect();
            AddPartitionsToTxnTopicResult::default()
                .with_name(kafka_protocol::messages::TopicName(kafka_protocol::protocol::StrBytes::from_string(name)))
                .with_results_by_partition(results)
        })
        .collect();
    AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(results)
}
