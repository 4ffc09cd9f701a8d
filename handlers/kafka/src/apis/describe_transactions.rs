//! DescribeTransactions (key 65).
//!
//! Versions: 0. Kafka's `kafka-transactions describe`: each transactional
//! id's state, producer id and epoch, timeout, start time and partitions,
//! from its coordinator partition (this broker's; in a cluster an id another
//! broker coordinates answers NOT_COORDINATOR, as Kafka's does);
//! TRANSACTIONAL_ID_NOT_FOUND for an id never initialized.

use std::collections::BTreeMap;

use kafka_protocol::{
    messages::{
        describe_transactions_response::{TopicData, TransactionState},
        DescribeTransactionsRequest, DescribeTransactionsResponse, ProducerId, TopicName,
    },
    protocol::{StrBytes, VersionRange},
};

use super::RequestContext;

/// Versions implemented.
pub const VERSIONS: VersionRange = VersionRange { min: 0, max: 0 };

/// TRANSACTIONAL_ID_NOT_FOUND.
const TRANSACTIONAL_ID_NOT_FOUND: i16 = 105;

/// Describes each id.
pub async fn handle(ctx: &RequestContext<'_>, request: DescribeTransactionsRequest) -> DescribeTransactionsResponse {
    let mut states = Vec::with_capacity(request.transactional_ids.len());
    for id in request.transactional_ids {
        let state = TransactionState::default().with_transactional_id(id.clone()).with_producer_id(ProducerId(-1));
        states.push(match ctx.shared.coordinator.txn_describe(id.as_str()).await {
            Err(code) => state.with_error_code(code).with_producer_epoch(-1),
            Ok(None) => state.with_error_code(TRANSACTIONAL_ID_NOT_FOUND).with_producer_epoch(-1),
            Ok(Some(m)) => {
                let mut topics: BTreeMap<String, Vec<i32>> = BTreeMap::new();
                for (topic, partition) in &m.partitions {
                    topics.entry(topic.clone()).or_default().push(*partition);
                }
                let topics = topics
                    .into_iter()
                    .map(|(t, ps)| {
                        TopicData::default().with_topic(TopicName(StrBytes::from_string(t))).with_partitions(ps)
                    })
                    .collect();
                state
                    .with_transaction_state(StrBytes::from_static_str(m.state.name()))
                    .with_transaction_timeout_ms(m.timeout_ms)
                    .with_transaction_start_time_ms(m.started_ms)
                    .with_producer_id(ProducerId(m.producer_id))
                    .with_producer_epoch(m.epoch)
                    .with_topics(topics)
            }
        });
    }
    DescribeTransactionsResponse::default().with_transaction_states(states)
}
