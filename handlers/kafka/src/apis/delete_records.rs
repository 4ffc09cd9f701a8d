//! DeleteRecords (key 21).
//!
//! Versions: 0-2. Deletes every record of a partition below the given offset:
//! the log start offset (low watermark) moves there at once and durably, so
//! ListOffsets earliest and Fetch see it; whole segments below it are removed.
//! Offset -1 means the high watermark (everything); an offset below the
//! current start changes nothing; one above the high watermark, or another
//! negative one, answers OFFSET_OUT_OF_RANGE. The response's low watermark is
//! the partition's start after the deletion.
//! Authorization ([`crate::authz`]): `admin` on the topic (a tenant
//! admin's right; Kafka asks DELETE); each partition of a topic refused
//! answers TOPIC_AUTHORIZATION_FAILED (29).
//! Gaps: `timeout_ms` is not needed (the deletion is done when the response is
//! sent) and is ignored.

use kafka_protocol::{
    messages::{
        delete_records_response::{DeleteRecordsPartitionResult, DeleteRecordsTopicResult},
        DeleteRecordsRequest, DeleteRecordsResponse,
    },
    protocol::VersionRange,
};
use polyport_handler_api::{storage::Operation, Partition};

use super::RequestContext;
use crate::{errors, topics::Resolved};

/// Versions implemented.
pub const VERSIONS: VersionRange = VersionRange { min: 0, max: 2 };

/// Offset -1: the high watermark.
const HIGH_WATERMARK: i64 = -1;

async fn delete(partition: &Partition, offset: i64) -> Result<i64, i16> {
    let error = |e: polyport_handler_api::HandlerError| errors::from_handler(&e);
    let before = match offset {
        HIGH_WATERMARK => partition.range().await.map_err(error)?.end,
        o => u64::try_from(o).map_err(|_| errors::OFFSET_OUT_OF_RANGE)?,
    };
    let range = partition.delete_records(before).await.map_err(error)?;
    tracing::debug!(partition = partition.name(), before, start = range.start, "records deleted");
    Ok(range.start as i64)
}

/// Deletes records of every partition named.
pub async fn handle(ctx: &RequestContext<'_>, request: DeleteRecordsRequest) -> DeleteRecordsResponse {
    let mapper = &ctx.shared.topics;
    let mut topics = Vec::new();
    for topic in request.topics {
        let resolved = if ctx.topic_denied(Operation::Admin, topic.name.as_str()).await {
            Resolved::error(errors::TOPIC_AUTHORIZATION_FAILED)
        } else {
            mapper.resolve(ctx.host(), topic.name.as_str(), false).await
        };
        let mut out = Vec::new();
        for p in topic.partitions {
            let ledger = resolved.ledger(p.partition_index);
            let result = match (ledger, ctx.host()) {
                (Ok(ledger), Some(host)) => match mapper.partition(host, &ledger, false).await {
                    Ok(partition) => delete(&partition, p.offset).await,
                    Err(e) => Err(errors::from_handler(&e)),
                },
                (Ok(_), None) => Err(errors::KAFKA_STORAGE_ERROR),
                (Err(code), _) => Err(code),
            };
            let response = DeleteRecordsPartitionResult::default().with_partition_index(p.partition_index);
            out.push(match result {
                Ok(low_watermark) => response.with_low_watermark(low_watermark),
                Err(code) => response.with_error_code(code).with_low_watermark(-1),
            });
        }
        topics.push(DeleteRecordsTopicResult::default().with_name(topic.name).with_partitions(out));
    }
    DeleteRecordsResponse::default().with_topics(topics)
}
