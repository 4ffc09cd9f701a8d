//! InitProducerId (key 22).
//!
//! Versions: 0-4. Gives idempotent producers (the default of the Java client
//! 3.x and kafka-python 3) a producer id: unique across restarts because ids
//! start from the start-up time in milliseconds times 1000. A producer that
//! asks again with its id and epoch gets the epoch bumped.
//! Sequence numbers are checked by Produce ([`crate::idempotence`]).
//! Gaps: transactional producers are refused with
//! COORDINATOR_NOT_AVAILABLE, as there is no transaction coordinator.

use std::sync::atomic::{AtomicI64, Ordering};

use kafka_protocol::{
    messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId},
    protocol::VersionRange,
};

use super::RequestContext;

/// Versions implemented.
pub const VERSIONS: VersionRange = VersionRange { min: 0, max: 4 };

const COORDINATOR_NOT_AVAILABLE: i16 = 15;

/// Producer ids handed out by this process.
#[derive(Debug)]
pub struct ProducerIds(AtomicI64);

impl ProducerIds {
    /// Ids from `start_ms * 1000` on: above any id of an earlier run, unless
    /// that run handed out 1000 ids per millisecond it lived.
    pub fn new(start_ms: i64) -> Self {
        Self(AtomicI64::new(start_ms.saturating_mul(1000)))
    }

    fn next(&self) -> i64 {
        self.0.fetch_add(1, Ordering::Relaxed)
    }
}

/// Issues a producer id, or bumps the epoch of the one given.
pub fn handle(ctx: &RequestContext<'_>, request: InitProducerIdRequest) -> InitProducerIdResponse {
    if request.transactional_id.is_some() {
        return InitProducerIdResponse::default()
            .with_error_code(COORDINATOR_NOT_AVAILABLE)
            .with_producer_id(ProducerId(-1));
    }
    let (id, epoch) =
        if request.producer_id.0 >= 0 && request.producer_epoch >= 0 && request.producer_epoch < i16::MAX - 1 {
            (request.producer_id.0, request.producer_epoch + 1)
        } else {
            (ctx.shared.producer_ids.next(), 0)
        };
    InitProducerIdResponse::default().with_producer_id(ProducerId(id)).with_producer_epoch(epoch)
}
