//! Topics over the real metadata store and ledgers.

#![allow(clippy::unwrap_used)]

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use polyport_host::{
    metadata::RedbStore,
    topics::{Policies, RetentionPolicy, StorageConfig, TopicError, TopicName, Topics},
};
use polyport_ledger::{backend::FsBackend, Ack, InitialPosition, LedgerConfig, NewEntry};

fn config(auto_partitioned: bool) -> StorageConfig {
    StorageConfig {
        ledger: LedgerConfig { segment_bytes: 4096, ..LedgerConfig::default() },
        auto_create: true,
        auto_create_partitioned: auto_partitioned,
        default_partitions: 3,
        retention: RetentionPolicy::from_config(-1, -1, 0),
        retention_check_interval: Duration::from_secs(3600),
        cache_bytes: 16 << 20,
        direct_io: true,
    }
}

async fn topics(dir: &std::path::Path, auto_partitioned: bool) -> Arc<Topics> {
    let store = Arc::new(RedbStore::open(&dir.join("metadata.redb")).unwrap());
    Topics::open(store, dir.join("ledgers"), config(auto_partitioned), Arc::new(FsBackend::default())).await.unwrap()
}

fn name(s: &str) -> TopicName {
    TopicName::parse(s).unwrap()
}

fn entry(len: usize) -> NewEntry {
    NewEntry { payload: Bytes::from(vec![1u8; len]), count: 1, format: 0, flags: 0, max_timestamp_ms: -1 }
}

#[tokio::test]
async fn create_list_delete_and_partitions() {
    let dir = tempfile::tempdir().unwrap();
    let t = topics(dir.path(), false).await;
    t.create(&name("orders"), 4).await.unwrap();
    t.create(&name("plain"), 0).await.unwrap();
    assert!(matches!(t.create(&name("orders"), 4).await, Err(TopicError::AlreadyExists(_))));
    assert!(matches!(t.create(&name("nons/ns/x"), 0).await, Err(TopicError::NamespaceNotFound(_))));
    let listed: Vec<(String, u32)> =
        t.list("public/default").await.unwrap().into_iter().map(|(n, p)| (n.to_string(), p)).collect();
    assert_eq!(
        listed,
        vec![("persistent://public/default/orders".into(), 4), ("persistent://public/default/plain".into(), 0)]
    );
    assert_eq!(t.partitions(&name("orders"), false).await.unwrap(), 4);
    let ledger = t.ledger(&name("orders-partition-3"), false).await.unwrap();
    ledger.append(vec![entry(10)]).await.unwrap();
    assert!(matches!(t.ledger(&name("orders-partition-4"), false).await, Err(TopicError::Invalid(_))));
    assert!(matches!(t.ledger(&name("orders"), false).await, Err(TopicError::Invalid(_))));
    t.delete(&name("orders")).await.unwrap();
    assert!(matches!(t.partitions(&name("orders"), false).await, Err(TopicError::NotFound(_))));
    assert!(matches!(t.ledger(&name("orders-partition-3"), true).await, Err(TopicError::NotFound(_))));
    t.create(&name("orders"), 4).await.unwrap();
    let fresh = t.ledger(&name("orders-partition-3"), false).await.unwrap();
    assert_eq!(fresh.range().end, 0, "the deleted data is gone");
}

#[tokio::test]
async fn auto_creation_follows_the_policy() {
    let dir = tempfile::tempdir().unwrap();
    let t = topics(dir.path(), true).await;
    assert_eq!(t.partitions(&name("auto"), true).await.unwrap(), 3);
    t.ledger(&name("other-partition-2"), true).await.unwrap();
    assert_eq!(t.partitions(&name("other"), false).await.unwrap(), 3, "a partition's use creates its topic");
    assert!(matches!(t.partitions(&name("manual"), false).await, Err(TopicError::NotFound(_))));
    let dir2 = tempfile::tempdir().unwrap();
    let t2 = topics(dir2.path(), false).await;
    assert_eq!(t2.partitions(&name("auto"), true).await.unwrap(), 0);
    t2.ledger(&name("auto"), true).await.unwrap();
}

#[tokio::test]
async fn metadata_and_data_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    {
        let t = topics(dir.path(), false).await;
        t.create(&name("t/n/x"), 0).await.unwrap_err();
        t.create(&name("kept"), 2).await.unwrap();
        t.ledger(&name("kept-partition-1"), false).await.unwrap().append(vec![entry(5), entry(5)]).await.unwrap();
        t.close_all().await;
    }
    let t = topics(dir.path(), false).await;
    assert_eq!(t.partitions(&name("kept"), false).await.unwrap(), 2);
    assert_eq!(t.ledger(&name("kept-partition-1"), false).await.unwrap().range().end, 2);
}

#[tokio::test]
async fn retention_deletes_only_consumed_expired_segments() {
    let dir = tempfile::tempdir().unwrap();
    let t = topics(dir.path(), false).await;
    t.create(&name("r"), 0).await.unwrap();
    let ledger = t.ledger(&name("r"), false).await.unwrap();
    for _ in 0..40 {
        ledger.append(vec![entry(500)]).await.unwrap();
    }
    ledger.open_cursor("slow", true, InitialPosition::Earliest).await.unwrap();
    ledger.acknowledge("slow", &Ack::Cumulative(10)).unwrap();
    let before = ledger.segments().len();
    // Retention 0: consumed data may go at once; the cursor holds the rest.
    t.set_policies(&name("r"), Policies { retention_time_in_minutes: Some(0), ..Policies::default() }).await.unwrap();
    t.enforce_retention().await;
    let range = ledger.range();
    assert!(range.start > 0 && range.start <= 10, "deleted up to the cursor, no further: {range:?}");
    assert!(ledger.segments().len() < before);
    ledger.acknowledge("slow", &Ack::Cumulative(40)).unwrap();
    t.enforce_retention().await;
    assert_eq!(ledger.segments().len(), 1, "all consumed: only the active segment stays");
    // Infinite retention keeps consumed data.
    for _ in 0..40 {
        ledger.append(vec![entry(500)]).await.unwrap();
    }
    ledger.acknowledge("slow", &Ack::Cumulative(80)).unwrap();
    t.set_policies(&name("r"), Policies { retention_time_in_minutes: Some(-1), ..Policies::default() }).await.unwrap();
    let kept = ledger.segments().len();
    t.enforce_retention().await;
    assert_eq!(ledger.segments().len(), kept);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_hand_out_disjoint_blocks_to_concurrent_callers_and_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let t = topics(dir.path(), false).await;
    let calls: Vec<_> = (0..16)
        .map(|_| {
            let t = Arc::clone(&t);
            tokio::spawn(async move { t.allocate("ids", 10, 500).await.unwrap() })
        })
        .collect();
    let mut starts = Vec::new();
    for call in calls {
        starts.push(call.await.unwrap());
    }
    starts.sort_unstable();
    assert_eq!(starts, (0..16).map(|i| 500 + i * 10).collect::<Vec<u64>>(), "disjoint blocks from the floor");
    assert!(matches!(t.allocate("bad/name", 1, 0).await, Err(TopicError::Invalid(_))));
    drop(t);
    let t = topics(dir.path(), false).await;
    assert_eq!(t.allocate("ids", 1, 0).await.unwrap(), 660, "the counter survives a restart; the floor applies once");
}
