//! InitProducerId (key 22).
//!
//! Versions: 0-4. Gives idempotent producers (the default of the Java client
//! 3.x and kafka-python 3) a producer id, unique across restarts and across
//! the brokers of a cluster: ids come in blocks of [`BLOCK`] from the
//! host's counter `kafka-producer-ids` ([`Host::allocate`], a
//! compare-and-set in the metadata store), as KRaft brokers take blocks
//! from the controller (AllocateProducerIds). A host without the counter
//! (older than handler-api 0.2.1, or none: the in-process benchmark) gets
//! ids from the start-up time in milliseconds times 1000. A producer that
//! asks again with its id and epoch gets the epoch bumped.
//! Sequence numbers are checked by Produce ([`crate::idempotence`]).
//! With a `transactional.id` the request goes to the id's transaction
//! coordinator partition ([`crate::coordinator`]): a new id gets a fresh
//! producer id at epoch 0; a known one gets its epoch bumped, which fences
//! the older producer, after its ongoing transaction is aborted
//! (CONCURRENT_TRANSACTIONS meanwhile, which clients retry);
//! `transaction.timeout.ms` above `transactionMaxTimeoutMs` gets
//! INVALID_TRANSACTION_TIMEOUT. With `kafkaTransactionCoordinatorEnabled=false`
//! or entryFormat=pulsar, transactional producers get
//! COORDINATOR_NOT_AVAILABLE (and FindCoordinator finds no coordinator).

use std::sync::{
    atomic::{AtomicI64, Ordering},
    Mutex, PoisonError,
};

use polyport_handler_api::{ErrorKind, Host};

use kafka_protocol::{
    messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId},
    protocol::VersionRange,
};

use super::RequestContext;

/// Versions implemented.
pub const VERSIONS: VersionRange = VersionRange { min: 0, max: 4 };

const COORDINATOR_NOT_AVAILABLE: i16 = 15;

/// Ids reserved at a time.
pub const BLOCK: u64 = 1000;

/// The host counter producer ids come from.
const COUNTER: &str = "kafka-producer-ids";

/// Producer ids handed out by this process.
#[derive(Debug)]
pub struct ProducerIds {
    /// The block held: the next id and the block's end (exclusive).
    block: Mutex<(i64, i64)>,
    /// Where a missing counter starts, and the ids without a counter:
    /// the start-up time in ms times 1000, above any id of an earlier run
    /// without a counter (unless it handed out 1000 ids per millisecond).
    fallback: AtomicI64,
}

impl ProducerIds {
    /// Ids for a handler started at `start_ms`.
    pub fn new(start_ms: i64) -> Self {
        Self { block: Mutex::new((0, 0)), fallback: AtomicI64::new(start_ms.saturating_mul(1000)) }
    }

    /// The next id: from the block held, or a new block from the host's
    /// counter; a Kafka error code if the counter cannot be reached.
    pub async fn next(&self, host: Option<&Host>) -> Result<i64, i16> {
        {
            let mut block = self.block.lock().unwrap_or_else(PoisonError::into_inner);
            if block.0 < block.1 {
                block.0 += 1;
                return Ok(block.0 - 1);
            }
        }
        let Some(host) = host else { return Ok(self.fallback.fetch_add(1, Ordering::Relaxed)) };
        let floor = u64::try_from(self.fallback.load(Ordering::Relaxed)).unwrap_or(0);
        match host.allocate(COUNTER, BLOCK, floor).await {
            Ok(start) => {
                let start = i64::try_from(start).map_err(|_| crate::errors::UNKNOWN_SERVER_ERROR)?;
                let mut block = self.block.lock().unwrap_or_else(PoisonError::into_inner);
                // Another call may have taken a block meanwhile: the rest of
                // this one is then left unused (ids are plentiful).
                if block.0 >= block.1 {
                    *block = (start + 1, start + BLOCK as i64);
                }
                Ok(start)
            }
            Err(e) if e.kind() == ErrorKind::UNSUPPORTED => Ok(self.fallback.fetch_add(1, Ordering::Relaxed)),
            Err(e) => {
                tracing::warn!(error = %e, "no producer id block: InitProducerId answers COORDINATOR_NOT_AVAILABLE");
                Err(COORDINATOR_NOT_AVAILABLE)
            }
        }
    }
}

/// Issues a producer id, or bumps the epoch of the one given.
pub async fn handle(ctx: &RequestContext<'_>, request: InitProducerIdRequest) -> InitProducerIdResponse {
    if let Some(id) = request.transactional_id.as_ref().filter(|id| !id.is_empty()) {
        if !super::transactions_enabled(ctx) {
            return InitProducerIdResponse::default()
                .with_error_code(COORDINATOR_NOT_AVAILABLE)
                .with_producer_id(ProducerId(-1));
        }
        // Used only if the id is new or its epoch is exhausted.
        let fresh_id = match ctx.shared.producer_ids.next(ctx.host()).await {
            Ok(id) => id,
            Err(code) => {
                return InitProducerIdResponse::default().with_error_code(code).with_producer_id(ProducerId(-1))
            }
        };
        let init =
            crate::coordinator::TxnInit { id: id.to_string(), timeout_ms: request.transaction_timeout_ms, fresh_id };
        return match ctx.shared.coordinator.txn_init(init).await {
            Ok((id, epoch)) => {
                InitProducerIdResponse::default().with_producer_id(ProducerId(id)).with_producer_epoch(epoch)
            }
            Err(code) => InitProducerIdResponse::default()
                .with_error_code(super::txn_error(ctx, code))
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1),
        };
    }
    let (id, epoch) =
        if request.producer_id.0 >= 0 && request.producer_epoch >= 0 && request.producer_epoch < i16::MAX - 1 {
            (request.producer_id.0, request.producer_epoch + 1)
        } else {
            match ctx.shared.producer_ids.next(ctx.host()).await {
                Ok(id) => (id, 0),
                Err(code) => {
                    return InitProducerIdResponse::default().with_error_code(code).with_producer_id(ProducerId(-1))
                }
            }
        };
    InitProducerIdResponse::default().with_producer_id(ProducerId(id)).with_producer_epoch(epoch)
}
