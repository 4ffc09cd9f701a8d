//! ListTransactions (key 66).
//!
//! Versions: 0-1. Kafka's `kafka-transactions list`: every transactional id
//! this broker coordinates, with its producer id and state, filtered by
//! state names, producer ids and (v1) how long the transaction has run;
//! unknown state names are echoed in `unknown_state_filters`.
//! Gaps: v2's id pattern (a Java regular expression) is not served.

use kafka_protocol::{
    messages::{
        list_transactions_response::TransactionState, ListTransactionsRequest, ListTransactionsResponse, ProducerId,
        TransactionalId,
    },
    protocol::{StrBytes, VersionRange},
};

use super::RequestContext;

/// Versions implemented.
pub const VERSIONS: VersionRange = VersionRange { min: 0, max: 1 };

const STATES: [&str; 6] = ["Empty", "Ongoing", "PrepareCommit", "PrepareAbort", "CompleteCommit", "CompleteAbort"];

/// Lists the transactions.
pub async fn handle(ctx: &RequestContext<'_>, request: ListTransactionsRequest) -> ListTransactionsResponse {
    let all = match ctx.shared.coordinator.txn_list().await {
        Ok(all) => all,
        Err(code) => return ListTransactionsResponse::default().with_error_code(code),
    };
    let now_ms =
        ctx.host().map_or(0, |h| h.now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64));
    let unknown: Vec<StrBytes> =
        request.state_filters.iter().filter(|s| !STATES.contains(&s.as_str())).cloned().collect();
    let states = all
        .into_iter()
        .filter(|(_, m)| {
            request.state_filters.is_empty() || request.state_filters.iter().any(|s| s.as_str() == m.state.name())
        })
        .filter(|(_, m)| {
            request.producer_id_filters.is_empty() || request.producer_id_filters.contains(&ProducerId(m.producer_id))
        })
        .filter(|(_, m)| {
            ctx.version < 1
                || request.duration_filter < 0
                || (m.started_ms >= 0 && now_ms - m.started_ms > request.duration_filter)
        })
        .map(|(id, m)| {
            TransactionState::default()
                .with_transactional_id(TransactionalId(StrBytes::from_string(id)))
                .with_producer_id(ProducerId(m.producer_id))
                .with_transaction_state(StrBytes::from_static_str(m.state.name()))
        })
        .collect();
    ListTransactionsResponse::default().with_unknown_state_filters(unknown).with_transaction_states(states)
}
