//! Produce (key 0).
//!
//! Versions: 3-9. Every partition's records are checked (record batch v2:
//! lengths, magic, CRC32C, counts; `maxMessageSize`) before anything is
//! stored; each batch becomes one ledger entry, stored as written
//! (entryFormat=kafka); offsets are assigned by the ledger. acks=0 gets no
//! response (a failure closes the connection, as in Kafka, so that the
//! producer refreshes its metadata), acks=1 is answered once written, acks=-1 (all) once durable under
//! the broker's sync policy. All partitions of a request are appended
//! concurrently, one host call per partition (its append, through the
//! partition's handle, whose answer carries the log start), and placed in the
//! connection's order ([`crate::order`]): a connection's batches are stored
//! in the order it sent them. Idempotent producers'
//! sequences are checked ([`crate::idempotence`]).
//! With `kafkaMessageTimestampType=LogAppendTime` each batch is stamped
//! with the broker's time before it is stored (attribute and max timestamp,
//! CRC recomputed) and the answer carries that time in `log_append_time_ms`.
//! A topic's own `max.message.bytes`, `message.timestamp.type` and
//! `compression.type` (kept as its properties, [`crate::configs`]) take
//! the place of the broker's; a batch in another codec than the topic's is
//! recompressed ([`crate::recompress`]).
//! Authorization ([`crate::authz`]): `produce` on each topic; a topic
//! refused is neither looked up nor created and each of its partitions
//! answers TOPIC_AUTHORIZATION_FAILED (29), while the request's other
//! topics are stored (the request still takes and passes its turn; with
//! acks=0 the refusal closes the connection, as any failure does).
//! Transactional batches (Kafka's classic protocol): the topic is marked and
//! the partition's open transactions are registered before the append is
//! placed ([`crate::txn_index`]), so readers' last stable offset stays
//! before them until the coordinator's marker; with entryFormat=pulsar they
//! are refused (UNSUPPORTED_FOR_MESSAGE_FORMAT: converted entries keep no
//! transaction). The partition leader does not check that the partition was
//! added to the transaction (Kafka's classic protocol does not either).

use std::{future::Future, task::Poll};

use bytes::Bytes;
use futures_util::future::join_all;
use kafka_protocol::{
    messages::{
        produce_response::{PartitionProduceResponse, TopicProduceResponse},
        ProduceRequest, ProduceResponse,
    },
    protocol::{Decodable, VersionRange},
};
use polyport_handler_api::{
    storage::{NewEntry, Operation},
    Partition,
};

use super::{encode_response, RequestContext};
use crate::{
    configs::Codec,
    errors,
    idempotence::Verdict,
    order::Turn,
    records::{self, FORMAT_KAFKA, FORMAT_PULSAR},
    topics::Resolved,
    EntryFormat, ProtocolError,
};

/// Versions implemented.
pub const VERSIONS: VersionRange = VersionRange { min: 3, max: 9 };

fn partition_error(index: i32, code: i16, message: Option<String>) -> PartitionProduceResponse {
    PartitionProduceResponse::default()
        .with_index(index)
        .with_error_code(code)
        .with_base_offset(-1)
        .with_log_append_time_ms(-1)
        .with_log_start_offset(-1)
        .with_error_message(message.map(kafka_protocol::protocol::StrBytes::from_string))
}

/// Decodes, appends, and answers (or not, for acks=0); the appends are
/// placed in `turn`.
pub async fn serve(
    ctx: &RequestContext<'_>,
    frame: &mut Bytes,
    turn: Turn,
) -> Result<Option<super::Response>, ProtocolError> {
    let request = ProduceRequest::decode(frame, ctx.version).map_err(ProtocolError::decode)?;
    let acks = request.acks;
    let response = handle(ctx, request, turn).await;
    if acks == 0 {
        let failed = response.responses.iter().flat_map(|t| {
            t.partition_responses.iter().filter(|p| p.error_code != 0).map(move |p| (t.name.as_str(), p))
        });
        let failed: Vec<String> =
            failed.map(|(topic, p)| format!("{topic}-{}: error {}", p.index, p.error_code)).collect();
        if !failed.is_empty() {
            return Err(ProtocolError::Acks0Failed(failed.join(", ")));
        }
        return Ok(None);
    }
    encode_response(ctx.header.correlation_id, ctx.version, &response).map(|r| Some(super::Response::Whole(r)))
}

/// Appends every partition's batches in two steps. First every partition is
/// prepared at once, beside the connection's other requests: names resolved
/// (topics created), batches checked, producer state loaded, ledgers opened.
/// Then, in the connection's turn, every partition's append is placed in its
/// ledger's queue in one pass, the turn is passed on, and the appends are
/// awaited together ([`crate::order`]).
pub async fn handle(ctx: &RequestContext<'_>, request: ProduceRequest, mut turn: Turn) -> ProduceResponse {
    let durable = request.acks != 1 && request.acks != 0;
    let mapper = &ctx.shared.topics;
    let mut resolved = Vec::with_capacity(request.topic_data.len());
    for topic in &request.topic_data {
        let name = topic.name.as_str();
        // A topic the role may not produce to is not looked up (nor created);
        // the request's other topics go on, in its turn.
        resolved.push(if ctx.topic_denied(Operation::Produce, name).await {
            Resolved::error(errors::TOPIC_AUTHORIZATION_FAILED)
        } else {
            mapper.resolve(ctx.host(), name, true).await
        });
    }
    let mut names = Vec::with_capacity(request.topic_data.len());
    let mut work = Vec::new();
    for (t, (topic, resolved)) in request.topic_data.into_iter().zip(&resolved).enumerate() {
        names.push(topic.name);
        for data in topic.partition_data {
            work.push(async move { (t, prepare(ctx, resolved, data).await) });
        }
    }
    let prepared = join_all(work).await;
    turn.wait().await;
    let mut stores: Vec<_> = prepared
        .into_iter()
        .map(|(t, prepared)| {
            Box::pin(async move {
                match prepared {
                    Ok(p) => (t, store(ctx, p, durable).await),
                    Err(answer) => (t, answer),
                }
            })
        })
        .collect();
    // One poll of each, in request order: every append reaches its ledger's
    // queue before the turn passes (the ledgers are open, so the host's
    // append queues at its first poll). join_all would not do: past a few
    // dozen futures it may yield before polling them all.
    let mut answers: Vec<Option<(usize, PartitionProduceResponse)>> = stores.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        for (store, answer) in stores.iter_mut().zip(&mut answers) {
            if let Poll::Ready(done) = store.as_mut().poll(cx) {
                *answer = Some(done);
            }
        }
        Poll::Ready(())
    })
    .await;
    drop(turn);
    // The rest complete as their ledgers answer.
    let pending = stores.into_iter().zip(&answers).filter(|(_, answer)| answer.is_none()).map(|(store, _)| store);
    let mut rest = join_all(pending).await.into_iter();
    let mut topics: Vec<TopicProduceResponse> =
        names.into_iter().map(|name| TopicProduceResponse::default().with_name(name)).collect();
    for answer in &mut answers {
        if let Some((t, response)) = answer.take().or_else(|| rest.next()) {
            topics[t].partition_responses.push(response);
        }
    }
    super::count_partition_errors(ctx, topics.iter().flat_map(|t| t.partition_responses.iter().map(|p| p.error_code)));
    ProduceResponse::default().with_responses(topics)
}

/// One partition's checked batches, ready to be placed.
struct Prepared<'r> {
    index: i32,
    pulsar: &'r str,
    ledger: String,
    batches: Vec<records::Batch>,
    /// The partition's open handle.
    partition: Partition,
    /// Whether its topic stamps batches with the broker's time.
    log_append_time: bool,
    /// With transactional batches: the partition's end when they were
    /// prepared, a lower bound of where they land ([`crate::txn_index`]).
    txn_floor: Option<u64>,
}

/// Everything about one partition's append that may wait: its name, its
/// batches' checks, its idempotent producers' state and its open ledger.
async fn prepare<'r>(
    ctx: &RequestContext<'_>,
    resolved: &'r Resolved,
    data: kafka_protocol::messages::produce_request::PartitionProduceData,
) -> Result<Prepared<'r>, PartitionProduceResponse> {
    let index = data.index;
    let (pulsar, ledger) = match (resolved.topic(), resolved.ledger(index)) {
        (Ok((pulsar, _)), Ok(ledger)) => (pulsar, ledger),
        (Err(code), _) | (_, Err(code)) => return Err(partition_error(index, code, None)),
    };
    let Some(records) = data.records else {
        return Err(partition_error(index, errors::CORRUPT_MESSAGE, Some("no records".into())));
    };
    // The topic's own settings, else the broker's.
    let settings = resolved.settings();
    let max_batch = settings.max_message_bytes.unwrap_or(ctx.shared.max_message_bytes);
    let log_append_time = settings.log_append_time.unwrap_or(ctx.shared.log_append_time);
    let codec = settings.compression.unwrap_or(Codec::Producer);
    let checked = records::split(records, max_batch).and_then(|batches| {
        batches.into_iter().map(|b| crate::recompress::to_topic_codec(b, codec, max_batch)).collect()
    });
    let batches: Vec<records::Batch> = match checked {
        Ok(b) => b,
        Err(e) => {
            tracing::info!(topic = %ledger, error = %e, "produce refused");
            return Err(partition_error(index, e.code(), Some(e.to_string())));
        }
    };
    let Some(host) = ctx.host() else { return Err(partition_error(index, errors::KAFKA_STORAGE_ERROR, None)) };
    // Idempotent producers: retries are answered, not stored twice.
    if batches.iter().any(|b| b.producer_id >= 0) {
        let load = match ctx.shared.topics.partition(host, &ledger, true).await {
            Ok(partition) => crate::idempotence::stored_tail(partition),
            Err(e) => {
                ctx.shared.topics.forget_if_missing(pulsar, e.kind());
                tracing::info!(topic = %ledger, error = %e, "partition not opened");
                return Err(partition_error(index, errors::from_handler(&e), Some(e.message().to_owned())));
            }
        };
        if let Err(e) = ctx.shared.sequences.load_once(&ledger, || load).await {
            tracing::warn!(topic = %ledger, error = %e, "idempotent producers not rebuilt yet; the producer retries");
            return Err(partition_error(index, errors::NOT_ENOUGH_REPLICAS, Some(format!("producer state: {e}"))));
        }
    }
    // Transactional batches: the topic is marked and the partition's
    // transactions loaded before any is stored.
    let mut txn_floor = None;
    if batches.iter().any(|b| b.transactional) {
        if ctx.shared.entry_format == EntryFormat::Pulsar {
            let message = "transactions need entryFormat=kafka".to_owned();
            return Err(partition_error(index, errors::UNSUPPORTED_FOR_MESSAGE_FORMAT, Some(message)));
        }
        let txns = &ctx.shared.txn_index;
        let loaded = async {
            let partition = ctx.shared.topics.partition(host, &ledger, true).await?;
            txns.mark(host, pulsar).await?;
            txns.load_once(host, pulsar, &ledger, &partition, Some(settings.transactional)).await?;
            partition.range().await
        };
        match loaded.await {
            Ok(range) => txn_floor = Some(range.end),
            Err(e) => {
                tracing::warn!(topic = %ledger, error = %e, "transactions of the partition not loaded; the producer retries");
                return Err(partition_error(index, errors::NOT_ENOUGH_REPLICAS, Some(format!("transactions: {e}"))));
            }
        }
    }
    // The open partition (kept by the mapper), whose append queues at its first poll.
    match ctx.shared.topics.partition(host, &ledger, true).await {
        Ok(partition) => Ok(Prepared { index, pulsar, ledger, batches, partition, log_append_time, txn_floor }),
        Err(e) => {
            ctx.shared.topics.forget_if_missing(pulsar, e.kind());
            tracing::info!(topic = %ledger, error = %e, "partition not opened");
            Err(partition_error(index, errors::from_handler(&e), Some(e.message().to_owned())))
        }
    }
}

/// Checks sequences, stamps, and appends one prepared partition. Everything
/// before the append's first poll is synchronous, so that the first poll of
/// this future places the append ([`handle`]).
async fn store(ctx: &RequestContext<'_>, prepared: Prepared<'_>, durable: bool) -> PartitionProduceResponse {
    let Prepared { index, pulsar, ledger, batches, partition, log_append_time, txn_floor } = prepared;
    let Some(host) = ctx.host() else { return partition_error(index, errors::KAFKA_STORAGE_ERROR, None) };
    let sequences = &ctx.shared.sequences;
    let (mut to_store, mut stored) = (Vec::new(), Vec::new());
    let (mut refused, mut first_duplicate) = (None, None);
    for (i, b) in batches.into_iter().enumerate() {
        match sequences.check(&ledger, b.producer_id, b.producer_epoch, b.base_sequence, b.count) {
            Verdict::Append => {
                stored.push((b.producer_id, b.base_sequence, b.transactional));
                to_store.push(b);
            }
            Verdict::Duplicate(offset) if i == 0 => first_duplicate = Some(offset),
            Verdict::Duplicate(_) => {}
            Verdict::Refuse(code) => {
                refused.get_or_insert(code);
            }
        }
    }
    // Not stored: the sequences reserved above are given back.
    let release = || {
        for (pid, seq, _) in &stored {
            sequences.completed(&ledger, *pid, *seq, None);
        }
    };
    if let Some(code) = refused {
        release();
        tracing::debug!(topic = %ledger, code, "produce refused by the producer's sequence");
        return partition_error(index, code, None);
    }
    // Open transactions are registered before their records can be read.
    if let Some(floor) = txn_floor {
        for (pid, _, _) in stored.iter().filter(|s| s.2) {
            ctx.shared.txn_index.begin(&ledger, *pid, floor);
        }
    }
    // LogAppendTime: the broker's time, taken once for the whole append.
    let append_time = log_append_time.then(|| {
        host.now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(0))
    });
    for b in &mut to_store {
        match append_time {
            Some(now) => b.stamp_log_append_time(now),
            // As Kafka: a CreateTime topic stores CreateTime batches.
            None if b.claims_log_append_time() => b.mark_create_time(),
            None => {}
        }
    }
    if to_store.is_empty() {
        // Every batch was stored before: the answer the client missed.
        let log_start = partition.range().await.map_or(-1, |r| r.start as i64);
        return PartitionProduceResponse::default()
            .with_index(index)
            .with_base_offset(first_duplicate.unwrap_or(-1))
            .with_log_append_time_ms(-1)
            .with_log_start_offset(log_start);
    }
    // Records and bytes as the client sent them, counted once stored.
    let produced =
        to_store.iter().fold((0u64, 0u64), |(m, b), batch| (m + u64::from(batch.count), b + batch.bytes.len() as u64));
    let appended = match ctx.shared.entry_format {
        EntryFormat::Kafka => {
            // Stored as sent, with the CRC derived from the batch's own.
            let entries = to_store
                .into_iter()
                .map(|b| {
                    let entry = NewEntry {
                        payload: b.bytes,
                        count: b.count,
                        format: FORMAT_KAFKA,
                        flags: 0,
                        max_timestamp_ms: b.max_timestamp_ms,
                    };
                    (entry, b.payload_crc)
                })
                .collect();
            partition.append_checked(entries, durable).await
        }
        EntryFormat::Pulsar => {
            // KoP's entryFormat=pulsar: converted once here, so Pulsar
            // consumers read it natively.
            let entries: Result<Vec<NewEntry>, polyport_handler_api::HandlerError> = to_store
                .into_iter()
                .map(|b| {
                    let messages = crate::convert::messages(b.bytes)?;
                    let count = messages.len() as u32;
                    Ok(NewEntry {
                        payload: host.encode_entry(FORMAT_PULSAR, messages, 0)?,
                        count,
                        format: FORMAT_PULSAR,
                        flags: 0,
                        max_timestamp_ms: b.max_timestamp_ms,
                    })
                })
                .collect();
            match entries {
                Ok(entries) => partition.append(entries, durable).await,
                Err(e) => {
                    release();
                    tracing::info!(topic = %ledger, error = %e, "produce refused: batch not converted");
                    return partition_error(index, errors::CORRUPT_MESSAGE, Some(e.message().to_owned()));
                }
            }
        }
    };
    match appended {
        Ok(result) => {
            ctx.shared.metrics().produced(&ledger, produced.0, produced.1);
            let (appended, log_start) = (result.appended, result.range.start as i64);
            for ((pid, seq, transactional), a) in stored.iter().zip(&appended) {
                sequences.completed(&ledger, *pid, *seq, Some(a.base_offset as i64));
                if *transactional {
                    ctx.shared.txn_index.appended(&ledger, *pid, a.base_offset);
                }
            }
            let base = first_duplicate.or(appended.first().map(|a| a.base_offset as i64)).unwrap_or(-1);
            PartitionProduceResponse::default()
                .with_index(index)
                .with_base_offset(base)
                .with_log_append_time_ms(append_time.unwrap_or(-1))
                .with_log_start_offset(log_start)
        }
        Err(e) => {
            release();
            ctx.shared.topics.forget_if_missing(pulsar, e.kind());
            tracing::info!(topic = %ledger, error = %e, "append failed");
            partition_error(index, errors::from_handler(&e), Some(e.message().to_owned()))
        }
    }
}
