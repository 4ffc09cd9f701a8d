//! Record batches (magic v2) as Produce carries them: checked before anything
//! is stored, then stored as written (entryFormat=kafka), one ledger entry per
//! batch. Hand-written because it is the product's core: only the header is
//! read (lengths, magic, CRC32C, counts, timestamps); records stay opaque
//! unless ListOffsets needs a timestamp inside an uncompressed batch.

use bytes::{Buf, Bytes};

/// Format tag of entries holding Kafka record batches.
pub const FORMAT_KAFKA: u16 = 1;
/// The host's Pulsar entry format (`entryFormat=pulsar` stores batches in it).
pub const FORMAT_PULSAR: u16 = 2;

/// Bytes before the records: base offset .. records count.
pub const BATCH_HEADER_LEN: usize = 61;
/// Bytes of `baseOffset` + `batchLength`.
const LOG_OVERHEAD: usize = 12;
/// Byte offset of the CRC field and of the data it covers.
const CRC_AT: usize = 17;
const ATTRIBUTES_AT: usize = 21;

/// A checked batch, ready to append.
#[derive(Debug, Clone)]
pub struct Batch {
    /// The whole batch, as sent.
    pub bytes: Bytes,
    /// Records in it.
    pub count: u32,
    /// Its max timestamp, Unix ms.
    pub max_timestamp_ms: i64,
    /// The idempotent producer's id (-1: not idempotent).
    pub producer_id: i64,
    /// The producer's epoch.
    pub producer_epoch: i16,
    /// The sequence number of the first record.
    pub base_sequence: i32,
    /// CRC-32C of the whole batch (what the ledger stores with it), derived
    /// from the batch's own checksum: nobody reads the bytes twice.
    pub payload_crc: u32,
    /// Whether it belongs to a transaction (attribute bit 4).
    pub transactional: bool,
}

/// Attribute bit of a batch whose timestamps are the broker's (LogAppendTime).
const LOG_APPEND_TIME: i16 = 0x08;
/// Attribute bit of a transactional batch.
const TRANSACTIONAL: i16 = 0x10;
/// Attribute bit of a control batch (a transaction marker).
const CONTROL: i16 = 0x20;
/// Byte offset of the batch's max timestamp.
const MAX_TIMESTAMP_AT: usize = 35;

impl Batch {
    /// Stamps the batch with the broker's time, as Kafka does for a
    /// LogAppendTime topic: the timestamp-type attribute is set and the max
    /// timestamp becomes `now_ms`, which readers take as every record's
    /// timestamp; records and compression stay as sent.
    pub fn stamp_log_append_time(&mut self, now_ms: i64) {
        self.rewrite_header(true, now_ms);
    }

    /// Whether the producer marked the batch LogAppendTime.
    pub fn claims_log_append_time(&self) -> bool {
        is_log_append_time(&self.bytes)
    }

    /// Clears a LogAppendTime mark the producer set on a CreateTime topic
    /// (Kafka stores such a batch as CreateTime), keeping its timestamps.
    pub fn mark_create_time(&mut self) {
        self.rewrite_header(false, self.max_timestamp_ms);
    }

    /// The header changes, so the batch is copied and both CRCs computed
    /// again.
    fn rewrite_header(&mut self, log_append_time: bool, max_timestamp_ms: i64) {
        let mut b = bytes::BytesMut::from(&self.bytes[..]);
        let attributes = (&b[ATTRIBUTES_AT..]).get_i16();
        let attributes = if log_append_time { attributes | LOG_APPEND_TIME } else { attributes & !LOG_APPEND_TIME };
        b[ATTRIBUTES_AT..ATTRIBUTES_AT + 2].copy_from_slice(&attributes.to_be_bytes());
        b[MAX_TIMESTAMP_AT..MAX_TIMESTAMP_AT + 8].copy_from_slice(&max_timestamp_ms.to_be_bytes());
        let crc = crc32c::crc32c(&b[ATTRIBUTES_AT..]);
        b[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
        self.payload_crc = crate::crc::combine(crc32c::crc32c(&b[..ATTRIBUTES_AT]), crc, b.len() - ATTRIBUTES_AT);
        self.max_timestamp_ms = max_timestamp_ms;
        self.bytes = b.freeze();
    }
}

/// Whether a stored batch carries LogAppendTime: its records' timestamps are
/// its max timestamp.
fn is_log_append_time(batch: &[u8]) -> bool {
    batch.len() >= BATCH_HEADER_LEN && (&batch[ATTRIBUTES_AT..]).get_i16() & LOG_APPEND_TIME != 0
}

/// For each batch in `batches`, in order: its stamp if it carries
/// LogAppendTime (its max timestamp), else `None`.
pub fn log_append_stamps(batches: &[u8]) -> Vec<Option<i64>> {
    let mut out = Vec::new();
    let mut rest = batches;
    while rest.len() >= BATCH_HEADER_LEN {
        let size = (&rest[8..12]).get_i32();
        let Some(size) = usize::try_from(size).ok().map(|s| s + LOG_OVERHEAD).filter(|s| *s <= rest.len()) else {
            break;
        };
        out.push(is_log_append_time(rest).then(|| (&rest[MAX_TIMESTAMP_AT..]).get_i64()));
        rest = &rest[size..];
    }
    out
}

/// Why a produce payload is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    /// Lengths, CRC or counts do not hold.
    #[error("corrupt record batch: {0}")]
    Corrupt(String),
    /// Not a v2 batch.
    #[error("record batch magic {0} is not supported (only v2)")]
    Magic(i8),
    /// A control batch: only the broker writes markers.
    #[error("control batches (transaction markers) are written by the broker, not produced")]
    Control,
    /// Over `maxMessageSize`.
    #[error("record batch of {size} bytes exceeds maxMessageSize ({limit} bytes)")]
    TooLarge {
        /// The batch's size.
        size: usize,
        /// The limit.
        limit: usize,
    },
}

impl BatchError {
    /// The Kafka error code for this error.
    pub fn code(&self) -> i16 {
        match self {
            Self::Corrupt(_) => crate::errors::CORRUPT_MESSAGE,
            // Produce v3+ carries v2 batches only; Kafka's answer, which
            // clients do not retry (CORRUPT_MESSAGE they would).
            Self::Magic(_) | Self::Control => crate::errors::INVALID_RECORD,
            Self::TooLarge { .. } => crate::errors::MESSAGE_TOO_LARGE,
        }
    }
}

/// The fewest bytes a record takes in a v2 batch: its length, attributes,
/// timestamp delta, offset delta, key length, value length and header count,
/// one byte each at least.
const MIN_RECORD_BYTES: usize = 7;

/// Splits and checks the batches of one partition's records.
pub fn split(mut records: Bytes, max_batch: usize) -> Result<Vec<Batch>, BatchError> {
    let mut batches = Vec::new();
    while !records.is_empty() {
        if records.len() < LOG_OVERHEAD {
            return Err(BatchError::Corrupt(format!("{} trailing bytes are not a batch", records.len())));
        }
        let length = (&records[8..12]).get_i32();
        let size = usize::try_from(length)
            .ok()
            .map(|l| l + LOG_OVERHEAD)
            .filter(|s| *s >= BATCH_HEADER_LEN)
            .ok_or_else(|| BatchError::Corrupt(format!("batch length {length}")))?;
        if size > records.len() {
            return Err(BatchError::Corrupt(format!("batch of {size} bytes but only {} sent", records.len())));
        }
        let batch = records.split_to(size);
        let magic = batch[16] as i8;
        if magic != 2 {
            return Err(BatchError::Magic(magic));
        }
        if size > max_batch {
            return Err(BatchError::TooLarge { size, limit: max_batch });
        }
        let crc = (&batch[CRC_AT..CRC_AT + 4]).get_u32();
        if crc32c::crc32c(&batch[ATTRIBUTES_AT..]) != crc {
            return Err(BatchError::Corrupt("CRC mismatch".into()));
        }
        let attributes = (&batch[ATTRIBUTES_AT..]).get_i16();
        if attributes & CONTROL != 0 {
            return Err(BatchError::Control);
        }
        let mut h = &batch[23..];
        let last_offset_delta = h.get_i32();
        let _base_timestamp = h.get_i64();
        let max_timestamp = h.get_i64();
        let producer_id = h.get_i64();
        let producer_epoch = h.get_i16();
        let base_sequence = h.get_i32();
        let count = h.get_i32();
        if count <= 0 || last_offset_delta != count - 1 {
            return Err(BatchError::Corrupt(format!("{count} records with last offset delta {last_offset_delta}")));
        }
        // The count decides how many offsets the entry takes: it must fit
        // the bytes that carry the records (uncompressed), or what they may
        // decompress to.
        let carried =
            if is_compressed(&batch) { crate::decompress::MAX_DECOMPRESSED as usize } else { size - BATCH_HEADER_LEN };
        if count as usize > carried / MIN_RECORD_BYTES {
            return Err(BatchError::Corrupt(format!(
                "{count} records cannot fit in {carried} bytes ({MIN_RECORD_BYTES} bytes each at least)"
            )));
        }
        // The batch CRC covers everything from the attributes on; the
        // ledger's covers the whole batch.
        let prefix = crc32c::crc32c(&batch[..ATTRIBUTES_AT]);
        let payload_crc = crate::crc::combine(prefix, crc, batch.len() - ATTRIBUTES_AT);
        // The ledger trusts it for as long as the batch is in its tail cache.
        debug_assert_eq!(payload_crc, crc32c::crc32c(&batch), "combined CRC");
        batches.push(Batch {
            payload_crc,
            bytes: batch,
            count: count as u32,
            max_timestamp_ms: max_timestamp,
            transactional: attributes & TRANSACTIONAL != 0,
            producer_id,
            producer_epoch,
            base_sequence,
        });
    }
    if batches.is_empty() {
        return Err(BatchError::Corrupt("no record batch".into()));
    }
    Ok(batches)
}

/// Whether the batch's records are compressed (attributes bits 0-2).
pub fn is_compressed(batch: &[u8]) -> bool {
    codec_bits(batch) != 0
}

/// Whether every batch of a stored entry (one or more whole batches) is
/// uncompressed; false for bytes that do not frame as batches.
pub fn all_uncompressed(mut batches: &[u8]) -> bool {
    while !batches.is_empty() {
        if batches.len() < BATCH_HEADER_LEN || codec_bits(batches) != 0 {
            return false;
        }
        let size = (&batches[8..12]).get_i32();
        match usize::try_from(size).ok().map(|s| s + LOG_OVERHEAD).filter(|s| *s <= batches.len()) {
            Some(size) => batches = &batches[size..],
            None => return false,
        }
    }
    true
}

/// The codec of a batch: its attribute bits 0-2 (0: none).
pub fn codec_bits(batch: &[u8]) -> i16 {
    if batch.len() < BATCH_HEADER_LEN {
        return 0;
    }
    (&batch[ATTRIBUTES_AT..]).get_i16() & 0x7
}

fn varint(buf: &mut &[u8]) -> Option<i64> {
    let mut value: u64 = 0;
    for shift in (0..64).step_by(7) {
        let byte = *buf.first()?;
        buf.advance(1);
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(((value >> 1) as i64) ^ -((value & 1) as i64));
        }
    }
    None
}

/// The offset delta and timestamp of the first record with a timestamp of
/// at least `target` in a stored batch; `None` if there is none. An
/// uncompressed batch is walked in place; a compressed one is decoded.
pub fn first_at_or_after(batch: &Bytes, target: i64) -> Option<(i64, i64)> {
    if batch.len() < BATCH_HEADER_LEN {
        return None;
    }
    if is_log_append_time(batch) {
        let stamped = (&batch[MAX_TIMESTAMP_AT..]).get_i64();
        return (stamped >= target).then_some((0, stamped));
    }
    if is_compressed(batch) {
        let stored_base = (&batch[..8]).get_i64();
        let sets = crate::decompress::decode_all(&mut batch.clone()).ok()?;
        return sets
            .iter()
            .flat_map(|set| &set.records)
            .find(|r| r.timestamp >= target)
            .map(|r| (r.offset - stored_base, r.timestamp));
    }
    let base_timestamp = (&batch[27..35]).get_i64();
    let count = (&batch[57..61]).get_i32();
    let mut rest = &batch[BATCH_HEADER_LEN..];
    for _ in 0..count {
        let length = usize::try_from(varint(&mut rest)?).ok()?;
        let mut record = rest.get(..length)?;
        rest = &rest[length..];
        record.advance(1); // attributes
        let timestamp = base_timestamp + varint(&mut record)?;
        let offset_delta = varint(&mut record)?;
        if timestamp >= target {
            return Some((offset_delta, timestamp));
        }
    }
    None
}

/// The producer fields of a stored record batch: producer id, epoch, first
/// sequence and record count; `None` if it is too short to hold them.
pub fn producer_of(batch: &[u8]) -> Option<(i64, i16, i32, u32)> {
    let mut h = batch.get(43..61)?;
    let (producer_id, epoch, first, count) = (h.get_i64(), h.get_i16(), h.get_i32(), h.get_i32());
    Some((producer_id, epoch, first, u32::try_from(count).ok()?))
}

/// What a stored batch is to transactions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnKind {
    /// Not part of a transaction.
    Plain,
    /// Records of producer `0`'s ongoing transaction.
    Data(i64),
    /// The marker ending producer `0`'s transaction: committed (`true`) or aborted.
    Marker(i64, bool),
}

/// What a stored batch is to transactions (`Plain` when too short to say).
pub fn txn_kind(batch: &[u8]) -> TxnKind {
    if batch.len() < BATCH_HEADER_LEN {
        return TxnKind::Plain;
    }
    let attributes = (&batch[ATTRIBUTES_AT..]).get_i16();
    let producer_id = (&batch[43..]).get_i64();
    if attributes & TRANSACTIONAL == 0 {
        return TxnKind::Plain;
    }
    if attributes & CONTROL == 0 {
        return TxnKind::Data(producer_id);
    }
    // The control record: length, attributes, timestamp and offset deltas
    // (varints), then the key: its length, version (i16) and type (i16: 0
    // abort, 1 commit).
    let parsed = (|| {
        let mut record = &batch[BATCH_HEADER_LEN..];
        varint(&mut record)?; // length
        record = record.get(1..)?; // attributes
        for _ in 0..3 {
            varint(&mut record)?; // timestamp delta, offset delta, key length
        }
        let mut key = record.get(..4)?;
        let (_version, kind) = (key.get_i16(), key.get_i16());
        Some(kind)
    })();
    TxnKind::Marker(producer_id, parsed == Some(1))
}

fn put_varint(out: &mut Vec<u8>, value: i64) {
    let mut v = ((value << 1) ^ (value >> 63)) as u64;
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A transaction marker: the control batch Kafka writes to every partition
/// of a transaction when it ends (one control record, key `[version 0,
/// type]`, value `[version 0, coordinator epoch]`). Clients skip control
/// batches; read_committed ones drop an aborted producer's records up to it.
pub fn control_batch(producer_id: i64, epoch: i16, commit: bool, coordinator_epoch: i32, now_ms: i64) -> Bytes {
    let mut record = Vec::with_capacity(24);
    record.push(0); // attributes
    put_varint(&mut record, 0); // timestamp delta
    put_varint(&mut record, 0); // offset delta
    put_varint(&mut record, 4);
    record.extend_from_slice(&0i16.to_be_bytes());
    record.extend_from_slice(&i16::from(commit).to_be_bytes());
    put_varint(&mut record, 6);
    record.extend_from_slice(&0i16.to_be_bytes());
    record.extend_from_slice(&coordinator_epoch.to_be_bytes());
    put_varint(&mut record, 0); // headers
    let mut body = Vec::with_capacity(record.len() + 2);
    put_varint(&mut body, record.len() as i64);
    body.extend_from_slice(&record);

    let mut b = Vec::with_capacity(BATCH_HEADER_LEN + body.len());
    b.extend_from_slice(&0i64.to_be_bytes()); // base offset: the ledger's
    b.extend_from_slice(&((BATCH_HEADER_LEN - LOG_OVERHEAD + body.len()) as i32).to_be_bytes());
    b.extend_from_slice(&0i32.to_be_bytes()); // partition leader epoch
    b.push(2); // magic
    b.extend_from_slice(&0u32.to_be_bytes()); // CRC, below
    b.extend_from_slice(&(TRANSACTIONAL | CONTROL).to_be_bytes());
    b.extend_from_slice(&0i32.to_be_bytes()); // last offset delta
    b.extend_from_slice(&now_ms.to_be_bytes());
    b.extend_from_slice(&now_ms.to_be_bytes());
    b.extend_from_slice(&producer_id.to_be_bytes());
    b.extend_from_slice(&epoch.to_be_bytes());
    b.extend_from_slice(&(-1i32).to_be_bytes()); // base sequence
    b.extend_from_slice(&1i32.to_be_bytes());
    b.extend_from_slice(&body);
    let crc = crc32c::crc32c(&b[ATTRIBUTES_AT..]);
    b[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
    Bytes::from(b)
}

/// A stored batch as a fetch sends it, in two pieces that reference no
/// copy of it: its base offset set to `base_offset` (the only bytes a fetch
/// changes; the CRC does not cover them), then the stored bytes after it.
pub fn with_base_offset(payload: &Bytes, base_offset: u64) -> [Bytes; 2] {
    let offset = Bytes::copy_from_slice(&(base_offset as i64).to_be_bytes());
    [offset, payload.slice(8.min(payload.len())..)]
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;
    use polyport_handler_api::convert::Message;

    use super::*;

    #[test]
    fn a_batch_stamped_with_log_append_time_stays_valid_and_reads_back_stamped() {
        let mut out = BytesMut::new();
        let messages = (0..3)
            .map(|i| Message {
                key: None,
                value: Some(Bytes::from(vec![i as u8; 10])),
                properties: Vec::new(),
                event_time_ms: Some(1_000 + i64::from(i)),
                publish_time_ms: 1_000,
            })
            .collect();
        crate::convert::to_record_batch(messages, 0, &mut out).expect("encodes");
        let mut batch = split(out.freeze(), 1 << 20).expect("valid").remove(0);
        batch.stamp_log_append_time(7_000);
        assert_eq!(batch.max_timestamp_ms, 7_000);
        assert_eq!(batch.payload_crc, crc32c::crc32c(&batch.bytes));
        let again = split(batch.bytes.clone(), 1 << 20).expect("the CRC holds").remove(0);
        assert_eq!(again.max_timestamp_ms, 7_000);
        assert_eq!(first_at_or_after(&batch.bytes, 1_001), Some((0, 7_000)), "every record has the stamp");
        assert_eq!(first_at_or_after(&batch.bytes, 7_001), None);
        let decoded = crate::convert::messages(batch.bytes.clone()).expect("decodes");
        assert!(decoded.iter().all(|m| m.event_time_ms == Some(7_000)), "{decoded:?}");
        // Marked CreateTime again (a producer's mark on a CreateTime topic):
        // the records' own timestamps come back.
        assert!(batch.claims_log_append_time());
        batch.mark_create_time();
        assert!(!batch.claims_log_append_time());
        assert_eq!(split(batch.bytes.clone(), 1 << 20).expect("the CRC holds").len(), 1);
        assert_eq!(first_at_or_after(&batch.bytes, 1_001), Some((1, 1_001)));
    }

    #[test]
    fn the_payload_crc_derived_from_the_batch_crc_is_the_crc_of_the_whole_batch() {
        let mut out = BytesMut::new();
        for base in [0, 3] {
            let messages = (0..3)
                .map(|i| Message {
                    key: Some(Bytes::from(format!("k{i}"))),
                    value: Some(Bytes::from(vec![i as u8; 100 * i])),
                    properties: Vec::new(),
                    event_time_ms: Some(1_700_000_000_000),
                    publish_time_ms: 1_700_000_000_000,
                })
                .collect();
            crate::convert::to_record_batch(messages, base, &mut out).expect("encodes");
        }
        let batches = split(out.freeze(), 1 << 20).expect("two valid batches");
        assert_eq!(batches.len(), 2, "three messages make one batch");
        for b in batches {
            assert_eq!((b.count, b.base_sequence, b.producer_id), (3, -1, -1));
            assert_eq!(b.payload_crc, crc32c::crc32c(&b.bytes));
        }
    }

    #[test]
    fn markers_are_valid_control_batches_that_produce_refuses() {
        for commit in [true, false] {
            let marker = control_batch(42, 3, commit, 0, 1_700_000_000_000);
            assert_eq!(txn_kind(&marker), TxnKind::Marker(42, commit));
            assert_eq!(split(marker, 1 << 20).expect_err("a client may not write one"), BatchError::Control);
            assert_eq!(producer_of(&control_batch(42, 3, commit, 0, 0)), Some((42, 3, -1, 1)));
        }
        let mut out = BytesMut::new();
        let message = Message { value: Some(Bytes::from_static(b"v")), publish_time_ms: 1, ..Default::default() };
        crate::convert::to_record_batch(vec![message], 0, &mut out).expect("encodes");
        let plain = out.freeze();
        assert_eq!(txn_kind(&plain), TxnKind::Plain);
        let mut data = plain.to_vec();
        data[ATTRIBUTES_AT + 1] |= TRANSACTIONAL as u8;
        data[43..51].copy_from_slice(&9i64.to_be_bytes());
        assert_eq!(txn_kind(&data), TxnKind::Data(9));
    }

    /// The host converts small uncompressed entries inline and everything
    /// else on a blocking thread: a compressed batch must never look small.
    #[test]
    fn only_whole_uncompressed_batches_are_bounded_by_their_size() {
        let mut out = BytesMut::new();
        let message = Message { value: Some(Bytes::from_static(b"v")), publish_time_ms: 1, ..Default::default() };
        crate::convert::to_record_batch(vec![message.clone()], 0, &mut out).expect("encodes");
        crate::convert::to_record_batch(vec![message], 1, &mut out).expect("encodes");
        let two = out.freeze();
        assert!(all_uncompressed(&two));
        assert!(!all_uncompressed(&two[..two.len() - 1]), "a cut batch");
        let mut compressed = two.to_vec();
        compressed[ATTRIBUTES_AT + 1] |= 4; // zstd
        assert!(!all_uncompressed(&compressed));
        assert!(!all_uncompressed(b"not a batch"));
    }
}
