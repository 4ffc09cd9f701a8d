//! What every [`MetadataStore`] must do, as one suite run against each
//! store: the embedded redb store (its unit test) and etcd (the
//! `metadata_stores` integration test, against a real etcd).

use std::sync::Arc;

use super::{Expect, MetadataError, MetadataStore, Versioned};

/// Runs the suite on `store`, whose keys under `root` (a prefix such as
/// `/conformance/`) must not exist yet. Panics on the first difference.
pub fn check(store: Arc<dyn MetadataStore>, root: &str) {
    let key = |k: &str| format!("{root}{k}");
    let (a1, a2, b1) = (key("a/1"), key("a/2"), key("b/1"));
    // Versions start at 1 and grow by one per write.
    assert_eq!(store.get(&a1).expect("get"), None);
    assert_eq!(store.put(&a1, b"x", Expect::Absent).expect("create"), 1);
    assert_eq!(store.put(&a1, b"y", Expect::Version(1)).expect("compare and set"), 2);
    assert_eq!(store.put(&a1, b"z", Expect::Any).expect("put"), 3);
    assert_eq!(store.get(&a1).expect("get"), Some(Versioned { value: b"z".to_vec(), version: 3 }));
    // A failed condition writes nothing and names the version found.
    match store.put(&a1, b"w", Expect::Absent) {
        Err(MetadataError::Conflict { found: Some(3), .. }) => {}
        other => panic!("create over an existing key: {other:?}"),
    }
    match store.put(&a1, b"w", Expect::Version(2)) {
        Err(MetadataError::Conflict { found: Some(3), .. }) => {}
        other => panic!("a stale version: {other:?}"),
    }
    match store.put(&a2, b"w", Expect::Version(1)) {
        Err(MetadataError::Conflict { found: None, .. }) => {}
        other => panic!("a version of a missing key: {other:?}"),
    }
    assert_eq!(store.get(&a1).expect("get").map(|v| v.value), Some(b"z".to_vec()));
    // Listing: keys under the prefix only, sorted.
    store.put(&a2, b"", Expect::Any).expect("an empty value");
    store.put(&b1, b"b", Expect::Any).expect("put");
    assert_eq!(store.list(&key("a/")).expect("list"), vec![a1.clone(), a2.clone()]);
    assert_eq!(store.list(&key("")).expect("list"), vec![a1.clone(), a2.clone(), b1.clone()]);
    assert_eq!(store.list(&key("c/")).expect("list"), Vec::<String>::new());
    assert_eq!(store.get(&a2).expect("get"), Some(Versioned { value: Vec::new(), version: 1 }));
    // Deletion: conditional, and of a missing key.
    match store.delete(&a1, Expect::Version(1)) {
        Err(MetadataError::Conflict { found: Some(3), .. }) => {}
        other => panic!("a delete at a stale version: {other:?}"),
    }
    store.delete(&a1, Expect::Version(3)).expect("delete");
    assert_eq!(store.get(&a1).expect("get"), None);
    store.delete(&a1, Expect::Any).expect("deleting a missing key is not an error");
    // A key created again starts again at version 1.
    assert_eq!(store.put(&a1, b"again", Expect::Absent).expect("create again"), 1);
    // Compare-and-set from several threads: no increment is lost.
    let counter = key("counter");
    store.put(&counter, b"0", Expect::Absent).expect("create");
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let (store, counter) = (Arc::clone(&store), counter.clone());
            std::thread::spawn(move || {
                for _ in 0..25 {
                    loop {
                        let current = store.get(&counter).expect("get").expect("exists");
                        let n: u64 = String::from_utf8_lossy(&current.value).parse().expect("a number");
                        match store.put(&counter, (n + 1).to_string().as_bytes(), Expect::Version(current.version)) {
                            Ok(_) => break,
                            Err(MetadataError::Conflict { .. }) => continue,
                            Err(e) => panic!("{e}"),
                        }
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("thread");
    }
    let last = store.get(&counter).expect("get").expect("exists");
    assert_eq!((last.value.as_slice(), last.version), (b"100".as_slice(), 101));
    for k in store.list(root).expect("list") {
        store.delete(&k, Expect::Any).expect("clean up");
    }
}
