//! The coordinator's records in its system topic: committed offsets and group
//! metadata, with tombstones, as the payload of ledger entries.
//!
//! Written by hand rather than in Kafka's `__consumer_offsets` schemas: the
//! topic is the coordinator's private state (it lives under
//! `kafkaMetadataTenant/kafkaMetadataNamespace`, out of Kafka clients' sight),
//! `kafka-protocol` does not ship those internal schemas, and this layout is a
//! few dozen lines. Each entry starts with a version byte, so the layout can
//! change without misreading old entries.
//!
//! Entry: `[version u8 = 1][count u32][record]*`; record: `[kind u8]` then its
//! fields; strings are `[len u32][utf-8]`, optional strings `[len i32, -1 =
//! none]`, bytes `[len u32][bytes]`, integers big-endian.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use std::collections::BTreeSet;

use super::group::{Committed, OffsetKey, Snapshot, StoredMember};
use crate::transactions::{TxnMetadata, TxnState};

/// The format tag of coordinator entries in the ledger.
pub const FORMAT_GROUPS: u16 = 0x4b43;
const VERSION: u8 = 1;

const OFFSET: u8 = 1;
const OFFSET_TOMBSTONE: u8 = 2;
const GROUP: u8 = 3;
const GROUP_TOMBSTONE: u8 = 4;
const TXN: u8 = 5;
const TXN_TOMBSTONE: u8 = 6;
const TXN_OFFSET: u8 = 7;
const TXN_OFFSET_END: u8 = 8;

/// One record of the system topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// A committed offset (`None`: deleted).
    Offset {
        /// The group.
        group: String,
        /// Topic and partition.
        key: OffsetKey,
        /// The commit.
        value: Option<Committed>,
    },
    /// A group's metadata (`None`: the group was deleted).
    Group {
        /// The group.
        group: String,
        /// Its metadata.
        value: Option<Snapshot>,
    },
    /// A transactional id's metadata (`None`: the id expired).
    Txn {
        /// The transactional id.
        id: String,
        /// Its metadata.
        value: Option<TxnMetadata>,
    },
    /// An offset committed in producer `producer_id`'s transaction
    /// (TxnOffsetCommit): pending until its [`Record::TxnOffsetEnd`].
    TxnOffset {
        /// The group.
        group: String,
        /// The transaction's producer.
        producer_id: i64,
        /// Topic and partition.
        key: OffsetKey,
        /// The commit.
        value: Committed,
    },
    /// The transaction of `producer_id` ended: its pending offsets for
    /// `group` become committed (`commit`) or are dropped.
    TxnOffsetEnd {
        /// The group.
        group: String,
        /// The transaction's producer.
        producer_id: i64,
        /// Committed or aborted.
        commit: bool,
    },
}

/// An entry that does not follow this layout.
#[derive(Debug, thiserror::Error)]
#[error("undecodable coordinator entry: {0}")]
pub struct DecodeError(String);

/// Encodes records as one entry payload.
pub fn encode(records: &[Record]) -> Bytes {
    let mut out = BytesMut::with_capacity(64 * records.len() + 5);
    out.put_u8(VERSION);
    out.put_u32(records.len() as u32);
    for record in records {
        match record {
            Record::Offset { group, key, value: Some(c) } => {
                out.put_u8(OFFSET);
                put_str(&mut out, group);
                put_str(&mut out, &key.0);
                out.put_i32(key.1);
                put_committed(&mut out, c);
            }
            Record::Offset { group, key, value: None } => {
                out.put_u8(OFFSET_TOMBSTONE);
                put_str(&mut out, group);
                put_str(&mut out, &key.0);
                out.put_i32(key.1);
            }
            Record::Group { group, value: Some(s) } => {
                out.put_u8(GROUP);
                put_str(&mut out, group);
                put_str(&mut out, &s.protocol_type);
                out.put_i32(s.generation);
                put_str(&mut out, &s.protocol);
                put_str(&mut out, &s.leader);
                out.put_i64(s.state_since_ms);
                out.put_u32(s.members.len() as u32);
                for m in &s.members {
                    put_str(&mut out, &m.id);
                    put_opt_str(&mut out, m.instance_id.as_deref());
                    put_str(&mut out, &m.client_id);
                    put_str(&mut out, &m.client_host);
                    out.put_i32(m.session_timeout_ms);
                    out.put_i32(m.rebalance_timeout_ms);
                    put_bytes(&mut out, &m.subscription);
                    put_bytes(&mut out, &m.assignment);
                }
            }
            Record::Group { group, value: None } => {
                out.put_u8(GROUP_TOMBSTONE);
                put_str(&mut out, group);
            }
            Record::Txn { id, value: Some(m) } => {
                out.put_u8(TXN);
                put_str(&mut out, id);
                out.put_i64(m.producer_id);
                out.put_i16(m.epoch);
                out.put_i32(m.timeout_ms);
                out.put_u8(m.state.tag());
                out.put_i64(m.started_ms);
                out.put_i64(m.updated_ms);
                out.put_u32(m.partitions.len() as u32);
                for (topic, partition) in &m.partitions {
                    put_str(&mut out, topic);
                    out.put_i32(*partition);
                }
                out.put_u32(m.groups.len() as u32);
                for group in &m.groups {
                    put_str(&mut out, group);
                }
            }
            Record::Txn { id, value: None } => {
                out.put_u8(TXN_TOMBSTONE);
                put_str(&mut out, id);
            }
            Record::TxnOffset { group, producer_id, key, value: c } => {
                out.put_u8(TXN_OFFSET);
                put_str(&mut out, group);
                out.put_i64(*producer_id);
                put_str(&mut out, &key.0);
                out.put_i32(key.1);
                put_committed(&mut out, c);
            }
            Record::TxnOffsetEnd { group, producer_id, commit } => {
                out.put_u8(TXN_OFFSET_END);
                put_str(&mut out, group);
                out.put_i64(*producer_id);
                out.put_u8(u8::from(*commit));
            }
        }
    }
    out.freeze()
}

/// Decodes one entry payload.
pub fn decode(mut buf: Bytes) -> Result<Vec<Record>, DecodeError> {
    let b = &mut buf;
    let version = get_u8(b)?;
    if version != VERSION {
        return Err(DecodeError(format!("version {version}, this broker reads {VERSION}")));
    }
    let count = get_u32(b)?;
    let mut records = Vec::with_capacity(count.min(1 << 16) as usize);
    for _ in 0..count {
        let kind = get_u8(b)?;
        let group = get_str(b)?;
        let record = match kind {
            OFFSET | OFFSET_TOMBSTONE => {
                let key = (get_str(b)?, get_i32(b)?);
                let value = if kind == OFFSET { Some(get_committed(b)?) } else { None };
                Record::Offset { group, key, value }
            }
            GROUP => {
                let protocol_type = get_str(b)?;
                let generation = get_i32(b)?;
                let protocol = get_str(b)?;
                let leader = get_str(b)?;
                let state_since_ms = get_i64(b)?;
                let n = get_u32(b)?;
                let mut members = Vec::with_capacity(n.min(1 << 12) as usize);
                for _ in 0..n {
                    members.push(StoredMember {
                        id: get_str(b)?,
                        instance_id: get_opt_str(b)?,
                        client_id: get_str(b)?,
                        client_host: get_str(b)?,
                        session_timeout_ms: get_i32(b)?,
                        rebalance_timeout_ms: get_i32(b)?,
                        subscription: get_bytes(b)?,
                        assignment: get_bytes(b)?,
                    });
                }
                let value = Snapshot { protocol_type, generation, protocol, leader, state_since_ms, members };
                Record::Group { group, value: Some(value) }
            }
            GROUP_TOMBSTONE => Record::Group { group, value: None },
            TXN => {
                let producer_id = get_i64(b)?;
                let epoch = get_i16(b)?;
                let timeout_ms = get_i32(b)?;
                let tag = get_u8(b)?;
                let state = TxnState::from_tag(tag).ok_or_else(|| DecodeError(format!("transaction state {tag}")))?;
                let started_ms = get_i64(b)?;
                let updated_ms = get_i64(b)?;
                let mut partitions = BTreeSet::new();
                for _ in 0..get_u32(b)? {
                    partitions.insert((get_str(b)?, get_i32(b)?));
                }
                let mut groups = BTreeSet::new();
                for _ in 0..get_u32(b)? {
                    groups.insert(get_str(b)?);
                }
                let value =
                    TxnMetadata { producer_id, epoch, timeout_ms, state, partitions, groups, started_ms, updated_ms };
                Record::Txn { id: group, value: Some(value) }
            }
            TXN_TOMBSTONE => Record::Txn { id: group, value: None },
            TXN_OFFSET => {
                let producer_id = get_i64(b)?;
                let key = (get_str(b)?, get_i32(b)?);
                let value = get_committed(b)?;
                Record::TxnOffset { group, producer_id, key, value }
            }
            TXN_OFFSET_END => {
                let producer_id = get_i64(b)?;
                let commit = get_u8(b)? != 0;
                Record::TxnOffsetEnd { group, producer_id, commit }
            }
            other => return Err(DecodeError(format!("unknown record kind {other}"))),
        };
        records.push(record);
    }
    if buf.has_remaining() {
        return Err(DecodeError(format!("{} trailing bytes", buf.remaining())));
    }
    Ok(records)
}

fn put_committed(out: &mut BytesMut, c: &Committed) {
    put_str(out, &c.ledger);
    out.put_i64(c.offset);
    out.put_i32(c.leader_epoch);
    put_str(out, &c.metadata);
    out.put_i64(c.commit_ms);
}

fn get_committed(b: &mut Bytes) -> Result<Committed, DecodeError> {
    Ok(Committed {
        ledger: get_str(b)?,
        offset: get_i64(b)?,
        leader_epoch: get_i32(b)?,
        metadata: get_str(b)?,
        commit_ms: get_i64(b)?,
    })
}

fn put_str(out: &mut BytesMut, s: &str) {
    out.put_u32(s.len() as u32);
    out.put_slice(s.as_bytes());
}

fn put_opt_str(out: &mut BytesMut, s: Option<&str>) {
    match s {
        Some(s) => {
            out.put_i32(s.len() as i32);
            out.put_slice(s.as_bytes());
        }
        None => out.put_i32(-1),
    }
}

fn put_bytes(out: &mut BytesMut, b: &[u8]) {
    out.put_u32(b.len() as u32);
    out.put_slice(b);
}

fn need(b: &Bytes, n: usize) -> Result<(), DecodeError> {
    if b.remaining() < n {
        return Err(DecodeError(format!("truncated: {n} bytes wanted, {} left", b.remaining())));
    }
    Ok(())
}

fn get_u8(b: &mut Bytes) -> Result<u8, DecodeError> {
    need(b, 1)?;
    Ok(b.get_u8())
}

fn get_u32(b: &mut Bytes) -> Result<u32, DecodeError> {
    need(b, 4)?;
    Ok(b.get_u32())
}

fn get_i16(b: &mut Bytes) -> Result<i16, DecodeError> {
    need(b, 2)?;
    Ok(b.get_i16())
}

fn get_i32(b: &mut Bytes) -> Result<i32, DecodeError> {
    need(b, 4)?;
    Ok(b.get_i32())
}

fn get_i64(b: &mut Bytes) -> Result<i64, DecodeError> {
    need(b, 8)?;
    Ok(b.get_i64())
}

fn get_bytes(b: &mut Bytes) -> Result<Bytes, DecodeError> {
    let n = get_u32(b)? as usize;
    need(b, n)?;
    Ok(b.split_to(n))
}

fn get_str(b: &mut Bytes) -> Result<String, DecodeError> {
    String::from_utf8(get_bytes(b)?.to_vec()).map_err(|e| DecodeError(format!("string not UTF-8: {e}")))
}

fn get_opt_str(b: &mut Bytes) -> Result<Option<String>, DecodeError> {
    let n = get_i32(b)?;
    if n < 0 {
        return Ok(None);
    }
    need(b, n as usize)?;
    let raw = b.split_to(n as usize);
    String::from_utf8(raw.to_vec()).map(Some).map_err(|e| DecodeError(format!("string not UTF-8: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_damage_is_an_error() {
        let records = vec![
            Record::Offset {
                group: "g".into(),
                key: ("persistent://public/default/t".into(), 3),
                value: Some(Committed {
                    offset: 42,
                    leader_epoch: -1,
                    metadata: "meta".into(),
                    commit_ms: 1_700_000_000_000,
                    ledger: "persistent://public/default/t-partition-3".into(),
                }),
            },
            Record::Offset { group: "g".into(), key: ("t".into(), 0), value: None },
            Record::Group {
                group: "g".into(),
                value: Some(Snapshot {
                    protocol_type: "consumer".into(),
                    generation: 7,
                    protocol: "range".into(),
                    leader: "m1".into(),
                    state_since_ms: 5,
                    members: vec![StoredMember {
                        id: "m1".into(),
                        instance_id: Some("i1".into()),
                        client_id: "c".into(),
                        client_host: "/127.0.0.1".into(),
                        session_timeout_ms: 10_000,
                        rebalance_timeout_ms: 30_000,
                        subscription: Bytes::from_static(b"sub"),
                        assignment: Bytes::from_static(b"asg"),
                    }],
                }),
            },
            Record::Group { group: "gone".into(), value: None },
            Record::Txn {
                id: "tx".into(),
                value: Some(TxnMetadata {
                    producer_id: 9,
                    epoch: 2,
                    timeout_ms: 60_000,
                    state: TxnState::PrepareCommit,
                    partitions: [("t".to_owned(), 0), ("u".to_owned(), 3)].into_iter().collect(),
                    groups: ["g".to_owned()].into_iter().collect(),
                    started_ms: 5,
                    updated_ms: 6,
                }),
            },
            Record::Txn { id: "old".into(), value: None },
            Record::TxnOffset {
                group: "g".into(),
                producer_id: 9,
                key: ("t".into(), 0),
                value: Committed {
                    offset: 7,
                    leader_epoch: -1,
                    metadata: String::new(),
                    commit_ms: 8,
                    ledger: "persistent://public/default/t".into(),
                },
            },
            Record::TxnOffsetEnd { group: "g".into(), producer_id: 9, commit: true },
        ];
        let bytes = encode(&records);
        assert_eq!(decode(bytes.clone()).expect("decodes"), records);
        for cut in [0, 1, 5, bytes.len() - 1] {
            assert!(decode(bytes.slice(..cut)).is_err(), "cut at {cut}");
        }
        let mut future = bytes.to_vec();
        future[0] = 9;
        assert!(decode(Bytes::from(future)).expect_err("future version").to_string().contains("version 9"));
    }
}
