//! The managed ledger on real files and on the crash-injecting memory backend.

#![allow(clippy::unwrap_used)]

use std::{path::PathBuf, sync::Arc, time::Duration};

use bytes::Bytes;
use polyport_ledger::{
    backend::{Backend, FsBackend, MemBackend, SegmentFile},
    Appended, LedgerConfig, LedgerError, ManagedLedger, NewEntry, Position, ReadLimits, SyncPolicy,
};

fn entry(payload: &[u8], count: u32, ts: i64) -> NewEntry {
    NewEntry { payload: Bytes::copy_from_slice(payload), count, format: 1, flags: 0, max_timestamp_ms: ts }
}

fn small() -> LedgerConfig {
    LedgerConfig { segment_bytes: 4096, index_interval_bytes: 256, ..LedgerConfig::default() }
}

const ALL: ReadLimits = ReadLimits { max_entries: usize::MAX, max_bytes: usize::MAX };

async fn open(dir: &std::path::Path, config: LedgerConfig, backend: Arc<dyn Backend>) -> ManagedLedger {
    ManagedLedger::open("t", dir, config, backend).await.unwrap()
}

/// Reads everything and checks offsets are dense from `start`.
fn read_all(ledger: &ManagedLedger) -> Vec<(u64, u32, Bytes)> {
    let range = ledger.range();
    let batch = ledger.read_now(range.start, ALL).unwrap();
    let mut next = range.start;
    let mut out = Vec::new();
    for e in batch.entries {
        assert_eq!(e.meta.base_offset, next, "offsets are dense");
        next = e.meta.next_offset();
        out.push((e.meta.base_offset, e.meta.count, e.payload));
    }
    assert_eq!(next, range.end);
    out
}

#[tokio::test]
async fn offsets_stay_dense_across_rolls_and_restarts() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("t");
    let backend: Arc<dyn Backend> = Arc::new(FsBackend::default());
    let mut expected = Vec::new();
    let mut next = 0u64;
    for round in 0..3 {
        let ledger = open(&dir, small(), Arc::clone(&backend)).await;
        assert_eq!(ledger.range().end, next, "round {round}: end offset survives the restart");
        for i in 0..50u32 {
            let payload = format!("round {round} entry {i} {}", "x".repeat((i as usize * 37) % 300));
            let count = 1 + i % 5;
            let appended = ledger.append(vec![entry(payload.as_bytes(), count, 1000 + i64::from(i))]).await.unwrap();
            assert_eq!(appended[0].base_offset, next);
            expected.push((next, count, payload));
            next += u64::from(count);
        }
        assert!(ledger.segments().len() > 1, "segments rolled");
        ledger.close().await;
    }
    let ledger = open(&dir, small(), Arc::clone(&backend)).await;
    let got = read_all(&ledger);
    assert_eq!(got.len(), expected.len());
    for ((o, c, p), (eo, ec, ep)) in got.iter().zip(&expected) {
        assert_eq!((o, c, p.as_ref()), (eo, ec, ep.as_bytes()));
    }
}

#[tokio::test]
async fn reads_start_at_the_entry_holding_the_offset_and_respect_limits() {
    let backend: Arc<dyn Backend> = Arc::new(MemBackend::new());
    let ledger = open(&PathBuf::from("/m/t"), small(), backend).await;
    ledger.append(vec![entry(b"aaaa", 10, 1), entry(b"bbbb", 10, 2), entry(b"cccc", 10, 3)]).await.unwrap();
    let batch = ledger.read_now(15, ALL).unwrap();
    assert_eq!(batch.entries[0].meta.base_offset, 10, "the batch holding offset 15, never the next one");
    assert_eq!(batch.entries.len(), 2);
    let one = ledger.read_now(0, ReadLimits { max_entries: 1, max_bytes: usize::MAX }).unwrap();
    assert_eq!(one.entries.len(), 1);
    let tiny = ledger.read_now(0, ReadLimits { max_entries: 10, max_bytes: 1 }).unwrap();
    assert_eq!(tiny.entries.len(), 1, "the first entry is returned whole even over max_bytes");
    let bytes = ledger.read_now(0, ReadLimits { max_entries: 10, max_bytes: 8 }).unwrap();
    assert_eq!(bytes.entries.len(), 2);
    assert_eq!(ledger.read_now(30, ALL).unwrap().entries.len(), 0, "at the end: nothing, no error");
    match ledger.read_now(31, ALL) {
        Err(LedgerError::OffsetOutOfRange { offset: 31, start: 0, end: 30, .. }) => {}
        other => panic!("expected out of range with the valid range, got {other:?}"),
    }
}

#[tokio::test]
async fn a_read_at_the_end_waits_for_the_next_append() {
    let backend: Arc<dyn Backend> = Arc::new(MemBackend::new());
    let ledger = Arc::new(open(&PathBuf::from("/m/t"), small(), backend).await);
    let waiting = {
        let ledger = Arc::clone(&ledger);
        tokio::spawn(async move { ledger.read(0, ALL, Some(Duration::from_secs(5))).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    ledger.append(vec![entry(b"late", 1, 1)]).await.unwrap();
    let batch = waiting.await.unwrap().unwrap();
    assert_eq!(batch.entries.len(), 1);
    let empty = ledger.read(1, ALL, Some(Duration::from_millis(20))).await.unwrap();
    assert!(empty.entries.is_empty(), "the wait ends after its timeout");
}

#[tokio::test]
async fn time_lookup_and_message_id_mapping() {
    let backend: Arc<dyn Backend> = Arc::new(MemBackend::new());
    let ledger = open(&PathBuf::from("/m/t"), small(), backend).await;
    let mut appended: Vec<Appended> = Vec::new();
    for i in 0..100i64 {
        appended.extend(ledger.append(vec![entry(&[b'x'; 100], 3, 10_000 + i * 10)]).await.unwrap());
    }
    let found = ledger.find_by_time(10_000 + 505).unwrap().unwrap();
    assert_eq!(found.meta.max_timestamp_ms, 10_000 + 510);
    assert_eq!(found.meta.base_offset, 51 * 3);
    assert!(ledger.find_by_time(99_999_999).unwrap().is_none());
    assert_eq!(ledger.find_by_time(0).unwrap().unwrap().meta.base_offset, 0);
    for a in appended.iter().step_by(7) {
        for batch_index in 0..3 {
            let offset = a.base_offset + u64::from(batch_index);
            let position = ledger.position(offset).unwrap();
            assert_eq!(position, Position { ledger_id: a.ledger_id, entry_id: a.entry_id, batch_index });
            assert_eq!(ledger.offset_of(position).unwrap(), offset);
        }
    }
    assert!(matches!(
        ledger.offset_of(Position { ledger_id: 999, entry_id: 0, batch_index: 0 }),
        Err(LedgerError::NoSuchEntry { .. })
    ));
}

#[tokio::test]
async fn a_full_disk_refuses_the_append_and_loses_nothing() {
    let mem = MemBackend::new();
    let backend: Arc<dyn Backend> = Arc::new(mem.clone());
    let ledger = open(&PathBuf::from("/m/t"), small(), backend).await;
    ledger.append(vec![entry(b"before", 2, 1)]).await.unwrap();
    mem.set_disk_full(true);
    let err = ledger.append(vec![entry(b"during", 1, 2)]).await.unwrap_err();
    assert!(matches!(err, LedgerError::DiskFull { .. }), "{err}");
    assert!(err.to_string().contains("no space left on device"), "{err}");
    assert_eq!(read_all(&ledger).len(), 1, "reads go on");
    mem.set_disk_full(false);
    let after = ledger.append(vec![entry(b"after", 1, 3)]).await.unwrap();
    assert_eq!(after[0].base_offset, 2, "no gap where the refused append was");
    let crashed: Arc<dyn Backend> = Arc::new(mem.crash(|_, pending| (pending.len(), None)));
    let reopened = open(&PathBuf::from("/m/t"), small(), crashed).await;
    let all = read_all(&reopened);
    assert_eq!(all.iter().map(|e| e.2.as_ref()).collect::<Vec<_>>(), vec![&b"before"[..], b"after"]);
}

/// A backend whose segment writes panic once `armed` is set: a stand-in for
/// a bug in the write path.
struct PanickyBackend {
    inner: MemBackend,
    armed: Arc<std::sync::atomic::AtomicBool>,
}

struct PanickyFile {
    inner: Arc<dyn SegmentFile>,
    armed: Arc<std::sync::atomic::AtomicBool>,
}

impl SegmentFile for PanickyFile {
    fn write_at(&self, pos: u64, data: &[u8]) -> std::io::Result<()> {
        assert!(!self.armed.load(std::sync::atomic::Ordering::SeqCst), "injected bug in the write path");
        self.inner.write_at(pos, data)
    }
    fn sync(&self) -> std::io::Result<()> {
        self.inner.sync()
    }
    fn read(&self, pos: u64, len: usize) -> std::io::Result<Bytes> {
        self.inner.read(pos, len)
    }
    fn capacity(&self) -> u64 {
        self.inner.capacity()
    }
    fn zero_tail(&self, from: u64) -> std::io::Result<()> {
        self.inner.zero_tail(from)
    }
}

impl Backend for PanickyBackend {
    fn create_dir_all(&self, dir: &std::path::Path) -> std::io::Result<()> {
        self.inner.create_dir_all(dir)
    }
    fn list(&self, dir: &std::path::Path) -> std::io::Result<Vec<PathBuf>> {
        self.inner.list(dir)
    }
    fn create(&self, path: &std::path::Path, capacity: u64) -> std::io::Result<Arc<dyn SegmentFile>> {
        let inner = self.inner.create(path, capacity)?;
        Ok(Arc::new(PanickyFile { inner, armed: Arc::clone(&self.armed) }))
    }
    fn open(&self, path: &std::path::Path) -> std::io::Result<Arc<dyn SegmentFile>> {
        let inner = self.inner.open(path)?;
        Ok(Arc::new(PanickyFile { inner, armed: Arc::clone(&self.armed) }))
    }
    fn write_atomic(&self, path: &std::path::Path, data: &[u8]) -> std::io::Result<()> {
        self.inner.write_atomic(path, data)
    }
    fn read_file(&self, path: &std::path::Path) -> std::io::Result<Vec<u8>> {
        self.inner.read_file(path)
    }
    fn remove(&self, path: &std::path::Path) -> std::io::Result<()> {
        self.inner.remove(path)
    }
    fn remove_dir_all(&self, dir: &std::path::Path) -> std::io::Result<()> {
        self.inner.remove_dir_all(dir)
    }
}

#[tokio::test]
async fn a_panicking_writer_fails_the_ledger_with_its_reason_and_appends_do_not_hang() {
    let armed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let backend: Arc<dyn Backend> = Arc::new(PanickyBackend { inner: MemBackend::new(), armed: Arc::clone(&armed) });
    let ledger = open(&PathBuf::from("/m/t"), small(), backend).await;
    ledger.append(vec![entry(b"before", 1, 1)]).await.unwrap();
    armed.store(true, std::sync::atomic::Ordering::SeqCst);
    let limit = Duration::from_secs(10);
    // The append the writer panicked on may see the closed reply channel
    // before the failure is recorded; every later one gets the reason.
    let first = tokio::time::timeout(limit, ledger.append(vec![entry(b"during", 1, 2)])).await.expect("answered");
    assert!(first.is_err());
    for _ in 0..3 {
        let err = tokio::time::timeout(limit, ledger.append(vec![entry(b"after", 1, 3)]))
            .await
            .expect("answered, not hung")
            .unwrap_err();
        assert!(matches!(err, LedgerError::Failed { .. }), "{err}");
        assert!(err.to_string().contains("writer panicked: injected bug in the write path"), "{err}");
    }
    assert_eq!(read_all(&ledger)[0].2.as_ref(), b"before", "reads go on");
    tokio::time::timeout(limit, ledger.close()).await.expect("close answers");
}

/// A small deterministic generator, so failures replay.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Appends, crashes at a random point of the unsynced writes (tearing the last
/// one at a random byte), recovers, and checks that every acknowledged entry
/// is there, intact, with dense offsets; then does it again on the survivor.
#[tokio::test]
async fn acknowledged_entries_survive_crashes_at_arbitrary_points() {
    for seed in 1..=40u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let dir = PathBuf::from("/m/t");
        let policy = match seed % 3 {
            0 => SyncPolicy::Always,
            1 => SyncPolicy::Group { max_delay: Duration::ZERO, max_bytes: 1 << 20 },
            _ => SyncPolicy::Os,
        };
        let config = LedgerConfig { sync: policy, ..small() };
        let mut backend = MemBackend::new();
        let mut acked: Vec<(u64, Vec<u8>)> = Vec::new();
        for _crash in 0..4 {
            let ledger = Arc::new(open(&dir, config.clone(), Arc::new(backend.clone())).await);
            // Everything acknowledged before is still there.
            let all = read_all(&ledger);
            for (offset, payload) in &acked {
                let found =
                    all.iter().find(|e| e.0 == *offset).unwrap_or_else(|| panic!("seed {seed}: offset {offset} lost"));
                assert_eq!(found.2.as_ref(), payload.as_slice(), "seed {seed}: offset {offset} damaged");
            }
            // Entries past the acknowledged ones may survive (written, not yet
            // answered); take the survivors as the new truth.
            acked = all.iter().map(|e| (e.0, e.2.to_vec())).collect();
            let mut tasks = Vec::new();
            for i in 0..(5 + rng.below(30)) {
                let len = 1 + rng.below(700) as usize;
                let payload: Vec<u8> = (0..len).map(|j| (i as usize * 31 + j) as u8).collect();
                let ledger = Arc::clone(&ledger);
                tasks.push(tokio::spawn(async move {
                    let a = ledger.append(vec![entry(&payload, 1, 1)]).await;
                    a.map(|a| (a[0].base_offset, payload))
                }));
            }
            for t in tasks {
                let (offset, payload) = t.await.unwrap().unwrap();
                if !matches!(policy, SyncPolicy::Os) {
                    acked.push((offset, payload));
                }
            }
            let tear = rng.next();
            backend = backend.crash(|_, pending| {
                if pending.is_empty() {
                    return (0, None);
                }
                let n = 1 + (tear as usize) % pending.len();
                let torn = (tear >> 20) as usize % (pending[n - 1].1.len() + 1);
                (n, Some(torn))
            });
        }
    }
}

#[tokio::test]
async fn a_torn_tail_is_cut_and_appends_continue_from_there() {
    let mem = MemBackend::new();
    let dir = PathBuf::from("/m/t");
    let ledger = open(&dir, LedgerConfig { sync: SyncPolicy::Os, ..small() }, Arc::new(mem.clone())).await;
    ledger.append(vec![entry(b"one", 1, 1)]).await.unwrap();
    ledger.roll().await.unwrap(); // syncs "one"
    ledger.append(vec![entry(b"two", 1, 1)]).await.unwrap();
    ledger.append(vec![entry(b"three", 1, 1)]).await.unwrap();
    // "two" survives whole, "three" is torn in its payload.
    let crashed = mem.crash(|_, pending| (pending.len(), Some(pending.last().map_or(0, |p| p.1.len() - 2))));
    let ledger = open(&dir, small(), Arc::new(crashed)).await;
    let all = read_all(&ledger);
    assert_eq!(all.iter().map(|e| e.2.as_ref()).collect::<Vec<_>>(), vec![&b"one"[..], b"two"]);
    let next = ledger.append(vec![entry(b"four", 1, 1)]).await.unwrap();
    assert_eq!(next[0].base_offset, 2);
}

#[tokio::test]
async fn corruption_inside_a_sealed_segment_is_refused_with_the_file_and_position() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("t");
    let backend: Arc<dyn Backend> = Arc::new(FsBackend::default());
    let ledger = open(&dir, small(), Arc::clone(&backend)).await;
    for i in 0..60u32 {
        ledger.append(vec![entry(format!("entry {i:04} {}", "y".repeat(200)).as_bytes(), 1, 1)]).await.unwrap();
    }
    let segments = ledger.segments();
    assert!(segments.len() >= 3);
    ledger.close().await;
    drop(ledger);
    let victim = &segments[1];
    let log = dir.join(format!("{:020}.log", victim.ledger_id));
    let idx = dir.join(format!("{:020}.idx", victim.ledger_id));

    // A flipped payload byte in a middle entry: the index still matches, so
    // open succeeds, and the read that reaches the entry reports it.
    let mut bytes = std::fs::read(&log).unwrap();
    bytes[64 + 48 + 5] ^= 0xff;
    std::fs::write(&log, &bytes).unwrap();
    let ledger = open(&dir, small(), Arc::clone(&backend)).await;
    match ledger.read_now(victim.base_offset, ALL) {
        Err(e @ LedgerError::Corrupt { .. }) => assert!(e.to_string().contains("CRC mismatch"), "{e}"),
        other => panic!("expected a corrupt-entry error, got {other:?}"),
    }
    assert_eq!(
        ledger.read_now(segments[2].base_offset, ALL).unwrap().entries[0].meta.base_offset,
        segments[2].base_offset
    );
    ledger.close().await;
    drop(ledger);

    // Without its index the segment is scanned: the damage inside a sealed
    // segment refuses the whole ledger, naming the file and the position.
    std::fs::remove_file(&idx).unwrap();
    let err = ManagedLedger::open("t", dir.clone(), small(), Arc::clone(&backend)).await.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, LedgerError::Corrupt { position: 64, .. }), "{text}");
    assert!(
        text.contains(&format!("{:020}.log", victim.ledger_id)) && text.contains("inside a sealed segment"),
        "{text}"
    );
}

#[tokio::test]
async fn retention_deletes_only_whole_sealed_segments() {
    let backend: Arc<dyn Backend> = Arc::new(MemBackend::new());
    let ledger = open(&PathBuf::from("/m/t"), small(), backend).await;
    for _ in 0..40 {
        ledger.append(vec![entry(&[7u8; 300], 1, 1)]).await.unwrap();
    }
    let before = ledger.segments();
    let cut = before[2].end_offset;
    assert_eq!(ledger.delete_segments_before(cut).unwrap(), 3);
    assert_eq!(ledger.range().start, before[3].base_offset);
    assert!(matches!(ledger.read_now(0, ALL), Err(LedgerError::OffsetOutOfRange { .. })));
    assert_eq!(ledger.delete_segments_before(u64::MAX).unwrap(), before.len() - 4, "the active segment stays");
    assert_eq!(ledger.segments().len(), 1);
}

#[tokio::test]
async fn invalid_entries_are_refused_and_nothing_is_stored() {
    let backend: Arc<dyn Backend> = Arc::new(MemBackend::new());
    let config = LedgerConfig { max_entry_bytes: 100, ..small() };
    let ledger = open(&PathBuf::from("/m/t"), config, backend).await;
    assert!(matches!(ledger.append(vec![entry(&[0; 101], 1, 1)]).await, Err(LedgerError::InvalidEntry(_))));
    assert!(matches!(ledger.append(vec![entry(b"x", 0, 1)]).await, Err(LedgerError::InvalidEntry(_))));
    assert_eq!(ledger.range().end, 0);
    // An entry larger than a segment gets a segment of its own.
    let big = LedgerConfig { max_entry_bytes: 10_000, ..small() };
    let backend: Arc<dyn Backend> = Arc::new(MemBackend::new());
    let ledger = open(&PathBuf::from("/m/u"), big, backend).await;
    ledger.append(vec![entry(&[1; 9000], 1, 1), entry(b"small", 1, 1)]).await.unwrap();
    assert_eq!(read_all(&ledger).len(), 2);
}

#[tokio::test]
async fn cursors_persist_with_acks_and_report_backlog() {
    use polyport_ledger::{Ack, InitialPosition};
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("t");
    let backend: Arc<dyn Backend> = Arc::new(FsBackend::default());
    let ledger = open(&dir, small(), Arc::clone(&backend)).await;
    for _ in 0..10 {
        ledger.append(vec![entry(b"ten messages", 10, 1)]).await.unwrap();
    }
    let sub = ledger.open_cursor("sub one", true, InitialPosition::Earliest).await.unwrap();
    assert_eq!((sub.mark_delete, sub.backlog_entries, sub.backlog_messages), (0, 10, 100));
    ledger.open_cursor("reader", false, InitialPosition::Latest).await.unwrap();
    let late = ledger.open_cursor("late", true, InitialPosition::Latest).await.unwrap();
    assert_eq!(late.backlog_messages, 0);
    ledger.acknowledge("sub one", &Ack::Cumulative(25)).unwrap();
    let info = ledger.acknowledge("sub one", &Ack::Individual(vec![(30, 40), (50, 51)])).unwrap();
    assert_eq!(info.mark_delete, 25);
    assert_eq!(info.acked_ranges, vec![(30, 40), (50, 51)]);
    assert_eq!(info.backlog_messages, 100 - 25 - 11);
    assert_eq!(info.backlog_entries, 8, "entries from the one holding offset 25");
    assert_eq!(ledger.slowest_durable_cursor(), Some(25));
    ledger.close().await;
    drop(ledger);

    let ledger = open(&dir, small(), Arc::clone(&backend)).await;
    let names: Vec<String> = ledger.cursors().into_iter().map(|c| c.name).collect();
    assert_eq!(names, vec!["late", "sub one"], "durable cursors survive; the reader does not");
    let info = ledger.cursor("sub one").unwrap();
    assert_eq!((info.mark_delete, info.acked_ranges.clone()), (25, vec![(30, 40), (50, 51)]));
    ledger.seek_cursor("sub one", 60).unwrap();
    assert_eq!(ledger.cursor("sub one").unwrap().backlog_messages, 40);
    ledger.delete_cursor("late").await.unwrap();
    assert!(matches!(ledger.acknowledge("late", &Ack::Cumulative(1)), Err(LedgerError::NoSuchCursor { .. })));
    ledger.close().await;
    drop(ledger);
    let ledger = open(&dir, small(), backend).await;
    assert_eq!(ledger.cursors().len(), 1);
    assert_eq!(ledger.cursor("sub one").unwrap().mark_delete, 60);
}

/// Crashes while appends are in flight and segments roll: every append
/// answered before the crash must survive it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crashes_during_in_flight_appends_keep_every_answered_append() {
    for seed in 1..=30u64 {
        let mut rng = Rng(seed.wrapping_mul(0xD1B5_4A32_D192_ED03) | 1);
        let dir = PathBuf::from("/m/t");
        let policy = if seed % 2 == 0 {
            SyncPolicy::Always
        } else {
            SyncPolicy::Group { max_delay: Duration::ZERO, max_bytes: 1 << 20 }
        };
        let config = LedgerConfig { sync: policy, segment_bytes: 2048, ..small() };
        let backend = MemBackend::new();
        let ledger = Arc::new(open(&dir, config.clone(), Arc::new(backend.clone())).await);
        let answered = Arc::new(std::sync::Mutex::new(Vec::<(u64, Vec<u8>)>::new()));
        let mut tasks = Vec::new();
        for t in 0..8u64 {
            let (ledger, answered) = (Arc::clone(&ledger), Arc::clone(&answered));
            let len = 1 + (rng.below(300) as usize);
            tasks.push(tokio::spawn(async move {
                for i in 0..200u64 {
                    let payload: Vec<u8> = (0..len).map(|j| (t * 7 + i + j as u64) as u8).collect();
                    match ledger.append(vec![entry(&payload, 1, 1)]).await {
                        Ok(a) => answered.lock().unwrap().push((a[0].base_offset, payload)),
                        Err(_) => return,
                    }
                }
            }));
        }
        tokio::time::sleep(Duration::from_micros(500 + rng.below(20_000))).await;
        // Everything answered before this line happened before the crash.
        let promised = answered.lock().unwrap().clone();
        let tear = rng.next();
        let crashed = backend.crash(|_, pending| {
            if pending.is_empty() {
                return (0, None);
            }
            let n = (tear as usize) % (pending.len() + 1);
            let torn = (tear >> 24) as usize % (pending.get(n.saturating_sub(1)).map_or(0, |p| p.1.len()) + 1);
            (n, Some(torn))
        });
        for t in tasks {
            t.abort();
        }
        let recovered = open(&dir, config, Arc::new(crashed)).await;
        let all = read_all(&recovered);
        for (offset, payload) in &promised {
            let found = all.iter().find(|e| e.0 == *offset);
            assert!(
                found.is_some_and(|e| e.2.as_ref() == payload.as_slice()),
                "seed {seed}: answered offset {offset} lost or damaged ({} answered, {} recovered)",
                promised.len(),
                all.len()
            );
        }
    }
}

#[tokio::test]
async fn delete_records_moves_the_start_at_any_offset_durably() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("t");
    let backend: Arc<dyn Backend> = Arc::new(FsBackend::default());
    let ledger = open(&dir, small(), Arc::clone(&backend)).await;
    for _ in 0..30 {
        ledger.append(vec![entry(&[3u8; 300], 2, 1)]).await.unwrap();
    }
    let segments = ledger.segments().len();
    let range = ledger.delete_records_before(33).await.unwrap();
    assert_eq!((range.start, range.end), (33, 60));
    assert!(ledger.segments().len() < segments, "whole segments below 33 are gone");
    assert!(matches!(ledger.read_now(32, ALL), Err(LedgerError::OffsetOutOfRange { start: 33, .. })));
    assert_eq!(ledger.read_now(33, ALL).unwrap().entries[0].meta.base_offset, 32, "the entry holding 33");
    assert!(ledger.delete_records_before(61).await.is_err());
    ledger.close().await;
    drop(ledger);
    let ledger = open(&dir, small(), backend).await;
    assert_eq!(ledger.range().start, 33, "the start survives a restart");
}

#[tokio::test]
async fn a_cursor_reads_from_where_it_left_off_and_rewinds_to_its_mark_delete() {
    use polyport_ledger::{Ack, InitialPosition};
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("t");
    let backend: Arc<dyn Backend> = Arc::new(FsBackend::default());
    let ledger = open(&dir, small(), Arc::clone(&backend)).await;
    for i in 0..10u8 {
        ledger.append(vec![entry(&[i], 1, 1)]).await.unwrap();
    }
    ledger.open_cursor("sub", true, InitialPosition::Earliest).await.unwrap();
    let three = ReadLimits { max_entries: 3, max_bytes: usize::MAX };
    let first = ledger.read_cursor("sub", three, None, false).await.unwrap();
    let second = ledger.read_cursor("sub", three, None, false).await.unwrap();
    assert_eq!(first.entries.iter().map(|e| e.meta.base_offset).collect::<Vec<_>>(), vec![0, 1, 2]);
    assert_eq!(second.entries.iter().map(|e| e.meta.base_offset).collect::<Vec<_>>(), vec![3, 4, 5]);
    ledger.acknowledge("sub", &Ack::Cumulative(2)).unwrap();
    let again = ledger.read_cursor("sub", three, None, true).await.unwrap();
    assert_eq!(again.entries[0].meta.base_offset, 2, "rewind: from the mark-delete");
    ledger.close().await;
    drop(ledger);
    let ledger = open(&dir, small(), backend).await;
    let after = ledger.read_cursor("sub", three, None, false).await.unwrap();
    assert_eq!(after.entries[0].meta.base_offset, 2, "after a restart: from the mark-delete");
    let waited =
        ledger.read_cursor("sub", ReadLimits { max_entries: 100, max_bytes: usize::MAX }, None, false).await.unwrap();
    assert_eq!(waited.entries.last().unwrap().meta.base_offset, 9);
    let none = ledger.read_cursor("sub", three, Some(Duration::from_millis(20)), false).await.unwrap();
    assert!(none.entries.is_empty());
}

#[tokio::test]
async fn sealed_segments_exported_and_imported_make_the_same_log_and_damage_is_refused() {
    use polyport_ledger::tier;
    let tmp = tempfile::tempdir().unwrap();
    let (from, to) = (tmp.path().join("from"), tmp.path().join("to"));
    let backend: Arc<dyn Backend> = Arc::new(FsBackend::default());
    let ledger = open(&from, small(), Arc::clone(&backend)).await;
    for i in 0..40u32 {
        ledger
            .append(vec![entry(format!("entry {i} {}", "y".repeat(i as usize * 11)).as_bytes(), 2, 5)])
            .await
            .unwrap();
    }
    ledger.roll().await.unwrap();
    let sealed: Vec<u64> = ledger.segments().iter().filter(|s| s.sealed).map(|s| s.ledger_id).collect();
    assert!(sealed.len() > 1, "several sealed segments");
    for &id in &sealed {
        let (info, sid, bytes) = ledger.sealed_segment(id).unwrap();
        assert_eq!(bytes.len() as u64, info.bytes);
        let imported = tier::import_segment(&to, backend.as_ref(), &bytes).unwrap();
        assert_eq!((imported.base_offset, imported.end_offset), (info.base_offset, info.end_offset));
        let local = tier::local_segments(&to, backend.as_ref()).unwrap();
        let listed = local.iter().find(|l| l.ledger_id == id).expect("listed");
        assert_eq!((listed.id, listed.sealed_end), (Some(sid), Some(info.end_offset)), "with its identity and end");
    }
    let expected = read_all(&ledger);
    ledger.close().await;
    let restored = open(&to, small(), Arc::clone(&backend)).await;
    assert_eq!(read_all(&restored), expected, "the imported segments are the same log");
    let active = restored.segments().last().cloned().unwrap();
    assert!(!active.sealed && active.base_offset == restored.range().end, "a new active segment continues it");
    restored.close().await;

    // A flipped byte or a truncated object is refused and leaves nothing behind.
    let (_, _, bytes) = {
        let again = open(&from, small(), Arc::clone(&backend)).await;
        let exported = again.sealed_segment(sealed[0]).unwrap();
        again.close().await;
        exported
    };
    let bad_dir = tmp.path().join("bad");
    let mut damaged = bytes.to_vec();
    let last = damaged.len() - 3;
    damaged[last] ^= 0xff;
    assert!(matches!(tier::import_segment(&bad_dir, backend.as_ref(), &damaged), Err(LedgerError::Corrupt { .. })));
    let truncated = &bytes[..bytes.len() - 5];
    assert!(tier::import_segment(&bad_dir, backend.as_ref(), truncated).is_err());
    assert!(tier::local_segments(&bad_dir, backend.as_ref()).unwrap().is_empty(), "nothing kept");
}

/// Segments "in a bucket": exported bytes by ledger id, fetches counted.
struct Bucket {
    objects: std::collections::HashMap<u64, Bytes>,
    fetches: std::sync::atomic::AtomicUsize,
}

impl polyport_ledger::RemoteSource for Bucket {
    fn fetch(&self, segment: &polyport_ledger::RemoteSegment) -> Result<Bytes, LedgerError> {
        self.fetches.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(self.objects[&segment.ledger_id].clone())
    }
}

#[tokio::test]
async fn evicted_and_attached_remote_segments_read_like_local_ones_and_are_fetched_once() {
    use polyport_ledger::{tier, RemoteSegment, RemoteSource};
    let tmp = tempfile::tempdir().unwrap();
    let (dir, fresh) = (tmp.path().join("t"), tmp.path().join("fresh"));
    let backend: Arc<dyn Backend> = Arc::new(FsBackend::default());
    let ledger = open(&dir, small(), Arc::clone(&backend)).await;
    for i in 0..60u32 {
        let payload = format!("entry {i} {}", "z".repeat(i as usize * 7));
        ledger.append(vec![entry(payload.as_bytes(), 3, 1000 + i64::from(i))]).await.unwrap();
    }
    let expected = read_all(&ledger);
    let mut objects = std::collections::HashMap::new();
    let mut remote = Vec::new();
    for info in ledger.segments().into_iter().filter(|s| s.sealed) {
        let (info, id, bytes) = ledger.sealed_segment(info.ledger_id).unwrap();
        remote.push(RemoteSegment {
            ledger_id: info.ledger_id,
            base_offset: info.base_offset,
            end_offset: info.end_offset,
            created_ms: id.created_ms,
            bytes: info.bytes,
            entries: info.entries,
            max_timestamp_ms: info.max_timestamp_ms,
            key: format!("k{}", info.ledger_id),
        });
        objects.insert(info.ledger_id, bytes);
    }
    assert!(remote.len() >= 3, "several sealed segments");
    let bucket = Arc::new(Bucket { objects, fetches: 0.into() });
    let source: Arc<dyn RemoteSource> = bucket.clone();
    // Evicted: the same log, read from "the bucket", each segment fetched once.
    for r in &remote {
        assert!(ledger.evict_to_remote(r.clone(), Arc::clone(&source)).unwrap());
    }
    assert!(ledger.local_ids().len() == 1, "only the active segment is local");
    let cursor = ledger.open_cursor("c", true, polyport_ledger::InitialPosition::Earliest).await.unwrap();
    assert_eq!(bucket.fetches.load(std::sync::atomic::Ordering::SeqCst), 0, "a backlog count fetches nothing");
    assert!(cursor.backlog_entries >= 60);
    assert_eq!(read_all(&ledger), expected);
    assert_eq!(read_all(&ledger), expected);
    assert_eq!(bucket.fetches.load(std::sync::atomic::Ordering::SeqCst), remote.len(), "fetched once each");
    let found = ledger.find_by_time(1030).unwrap().unwrap();
    assert_eq!(found.meta.max_timestamp_ms, 1030);
    let position = ledger.position(found.meta.base_offset).unwrap();
    assert_eq!(ledger.offset_of(position).unwrap(), found.meta.base_offset);

    // Attached to an empty directory whose log goes on after them.
    let last = remote.last().unwrap().clone();
    tier::create_active(&fresh, backend.as_ref(), last.ledger_id + 1, last.end_offset, 4096).unwrap();
    let restored = open(&fresh, small(), Arc::clone(&backend)).await;
    assert_eq!(restored.attach_remote(remote.clone(), Arc::clone(&source)), remote.len());
    let sealed: Vec<_> = expected.iter().filter(|(o, _, _)| *o < last.end_offset).cloned().collect();
    assert_eq!(read_all(&restored), sealed, "the tiered part, read through the placeholders");
    let appended = restored.append(vec![entry(b"next", 1, 5)]).await.unwrap();
    assert_eq!(appended[0].base_offset, last.end_offset, "the log goes on after them");
    // Retention removes remote segments too, fetched or not.
    assert_eq!(restored.delete_segments_before(last.end_offset).unwrap(), remote.len());
    assert_eq!(restored.range().start, last.end_offset);
}
