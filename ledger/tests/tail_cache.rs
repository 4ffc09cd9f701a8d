//! Segments written with O_DIRECT from the tail cache, on real files: every
//! byte reads back whichever way it is served (cache, mapping, direct read),
//! the cache stays within its budget, and reopening and appending after a
//! restart keeps the data whole.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use bytes::Bytes;
use polyport_ledger::{backend::FsBackend, CachePool, LedgerConfig, ManagedLedger, NewEntry, ReadLimits};

const ALL: ReadLimits = ReadLimits { max_entries: usize::MAX, max_bytes: usize::MAX };

/// A payload that tells where it belongs: entry `i` of ledger `tag`.
fn payload(tag: u8, i: u32) -> Bytes {
    let len = 100 + (i as usize * 7919) % 20_000;
    let mut p = vec![tag; len];
    p[..4].copy_from_slice(&i.to_le_bytes());
    p[len - 1] = (i % 251) as u8;
    Bytes::from(p)
}

fn entry(payload: Bytes) -> NewEntry {
    NewEntry { payload, count: 1, format: 1, flags: 0, max_timestamp_ms: -1 }
}

fn config() -> LedgerConfig {
    LedgerConfig { segment_bytes: 4 << 20, ..LedgerConfig::default() }
}

/// Reads everything and compares (reads from the disk check CRCs too).
fn check(ledger: &ManagedLedger, tag: u8, n: u32) {
    let batch = ledger.read_now(0, ALL).unwrap();
    assert_eq!(batch.entries.len(), n as usize);
    for (i, e) in batch.entries.iter().enumerate() {
        assert_eq!(e.meta.base_offset, i as u64);
        assert_eq!(e.payload, payload(tag, i as u32), "entry {i} of ledger {tag}");
    }
}

async fn fill(ledgers: &[(u8, &ManagedLedger)], from: u32, to: u32) {
    for i in from..to {
        for (tag, ledger) in ledgers {
            let appended = ledger.append(vec![entry(payload(*tag, i))]).await.unwrap();
            assert_eq!(appended[0].base_offset, u64::from(i));
        }
    }
}

#[tokio::test]
async fn everything_reads_back_within_the_budget_and_after_a_restart() {
    for direct_io in [true, false] {
        let tmp = tempfile::tempdir().unwrap();
        // Less than one large slab: two ledgers writing at once keep evicting each
        // other's slabs, the one being written included.
        let pool = CachePool::new(2 << 20);
        let backend = Arc::new(FsBackend::new(Arc::clone(&pool), direct_io));
        let a = ManagedLedger::open("a", &tmp.path().join("a"), config(), backend.clone()).await.unwrap();
        let b = ManagedLedger::open("b", &tmp.path().join("b"), config(), backend.clone()).await.unwrap();
        fill(&[(1, &a), (2, &b)], 0, 800).await;
        assert!(a.segments().len() > 1, "segments rolled");
        assert!(pool.cached_bytes() <= pool.budget() + (16 << 20), "cache within its budget: {pool:?}");
        // Each entry's tail was just written: the last ones come from the
        // cache or a direct read, the first from the mapping.
        check(&a, 1, 800);
        check(&b, 2, 800);
        a.close().await;
        b.close().await;
        drop((a, b));

        // Reopened: the first append rewrites the last partial block, whose
        // start comes from the disk.
        let a = ManagedLedger::open("a", &tmp.path().join("a"), config(), backend.clone()).await.unwrap();
        check(&a, 1, 800);
        fill(&[(1, &a)], 800, 900).await;
        check(&a, 1, 900);
        a.close().await;
        drop(a);
        let a = ManagedLedger::open("a", &tmp.path().join("a"), config(), backend).await.unwrap();
        check(&a, 1, 900);
    }
}

#[tokio::test]
async fn a_large_cache_serves_the_tail_without_the_disk() {
    let tmp = tempfile::tempdir().unwrap();
    let pool = CachePool::new(64 << 20);
    let backend = Arc::new(FsBackend::new(Arc::clone(&pool), true));
    let a = ManagedLedger::open("a", &tmp.path().join("a"), config(), backend).await.unwrap();
    fill(&[(7, &a)], 0, 300).await;
    assert!(pool.cached_bytes() > 0 && pool.cached_bytes() <= pool.budget(), "{pool:?}");
    check(&a, 7, 300);
}

#[test]
fn a_write_larger_than_a_slab_gets_a_slab_of_its_own() {
    use polyport_ledger::backend::Backend;
    let tmp = tempfile::tempdir().unwrap();
    let backend = FsBackend::new(CachePool::new(64 << 20), true);
    let file = backend.create(&tmp.path().join("s.log"), 64 << 20).unwrap();
    let mut pos = 0u64;
    for len in [64usize, 5 << 20, 3952, 23 << 20, 100] {
        let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        file.write_at(pos, &data).unwrap();
        assert_eq!(file.read(pos, len).unwrap(), data);
        pos += len as u64;
    }
}

#[tokio::test]
async fn reads_from_the_cache_trust_the_bytes_written_and_reads_from_the_disk_check_them() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("t");
    let backend = Arc::new(FsBackend::new(CachePool::new(64 << 20), true));
    let ledger = ManagedLedger::open("t", &dir, config(), backend).await.unwrap();
    // A caller that hands the ledger a wrong payload CRC (append_checked
    // stores it as given), followed by a sound entry.
    let bad = payload(1, 0);
    let wrong = crc32c::crc32c(&bad) ^ 1;
    ledger.append_checked(vec![(entry(bad.clone()), wrong)], true).await.unwrap();
    ledger.append(vec![entry(payload(1, 1))]).await.unwrap();
    // Served from the tail cache: the bytes this process wrote, not checked
    // again in release builds; debug builds check them, so that such a
    // caller fails its tests at once.
    let cached = ledger.read_now(0, ALL);
    if cfg!(debug_assertions) {
        let err = cached.map(|_| ()).unwrap_err();
        assert!(err.to_string().contains("CRC mismatch in entry 0"), "{err}");
    } else {
        let cached = cached.unwrap();
        assert_eq!(cached.entries.len(), 2);
        assert_eq!(cached.entries[0].payload, bad);
    }
    // Sealed, so that opening does not scan it (the active segment's tail
    // would be cut at the bad entry as a torn write).
    ledger.roll().await.unwrap();
    ledger.close().await;
    drop(ledger);
    // A new process reads the disk: the stored CRC is checked.
    let backend = Arc::new(FsBackend::new(CachePool::new(64 << 20), true));
    let err = match ManagedLedger::open("t", &dir, config(), backend).await {
        Err(e) => e,
        Ok(reopened) => reopened.read_now(0, ALL).map(|_| ()).unwrap_err(),
    };
    assert!(err.to_string().contains("CRC mismatch in entry 0"), "{err}");
}

#[tokio::test]
async fn a_large_group_of_durable_appends_is_written_in_pieces_and_reads_back() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("g");
    let config = LedgerConfig { segment_bytes: 256 << 20, ..LedgerConfig::default() };
    let backend = Arc::new(FsBackend::new(CachePool::new(32 << 20), true));
    let ledger = Arc::new(ManagedLedger::open("g", &dir, config.clone(), backend.clone()).await.unwrap());
    // 48 appends of about 512 KiB queued at once: the writer takes them as
    // one group (24 MiB, several writes of about 4 MiB, one fsync).
    let appends: Vec<_> = (0..48u32)
        .map(|i| {
            let ledger = Arc::clone(&ledger);
            let mut p = vec![(i % 251) as u8; 512 << 10];
            p[..4].copy_from_slice(&i.to_le_bytes());
            let p = Bytes::from(p);
            tokio::spawn(async move { (ledger.append_with(vec![entry(p.clone())], true).await, p) })
        })
        .collect();
    let mut stored = Vec::new();
    for handle in appends {
        let (appended, p) = handle.await.unwrap();
        stored.push((appended.unwrap()[0].base_offset, p));
    }
    stored.sort_by_key(|(offset, _)| *offset);
    assert_eq!(stored.iter().map(|(o, _)| *o).collect::<Vec<_>>(), (0..48).collect::<Vec<u64>>(), "dense offsets");
    let check = |ledger: &ManagedLedger| {
        let read = ledger.read_now(0, ALL).unwrap();
        assert_eq!(read.entries.len(), 48);
        for (e, (_, p)) in read.entries.iter().zip(&stored) {
            assert_eq!(&e.payload, p, "entry {}", e.meta.base_offset);
        }
    };
    check(&ledger);
    ledger.close().await;
    drop(ledger);
    let reopened = ManagedLedger::open("g", &dir, config, backend).await.unwrap();
    check(&reopened);
}
