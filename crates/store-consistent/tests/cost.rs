//! What `operate` costs in backend calls, counted by a `Faulty` wrapper, and what the
//! caller waits for: the delete of a replaced version runs off the caller's path.

use std::time::Duration;

use bytes::Bytes;
use store_consistent::{DEFAULT_INLINE_LIMIT, Group};
use store_core::BackendExt;
use store_memory::MemoryStore;
use store_testkit::{Fault, FaultOp, Faulty, Rule};

const OPS: [FaultOp; 6] = [
    FaultOp::Put,
    FaultOp::WriterOpen,
    FaultOp::Get,
    FaultOp::Head,
    FaultOp::Delete,
    FaultOp::List,
];

fn setup() -> (MemoryStore, Faulty<MemoryStore>, Group) {
    let store = MemoryStore::new();
    let faulty = Faulty::new(store.clone());
    let group = Group::new(faulty.clone(), "g").unwrap();
    (store, faulty, group)
}

/// The calls of each kind made by `faulty` since `before`.
fn calls_since(faulty: &Faulty<MemoryStore>, before: &[u64]) -> Vec<(FaultOp, u64)> {
    OPS.iter()
        .zip(before)
        .map(|(&op, before)| (op, faulty.calls(op) - before))
        .filter(|(_, n)| *n > 0)
        .collect()
}

fn counts(faulty: &Faulty<MemoryStore>) -> Vec<u64> {
    OPS.iter().map(|&op| faulty.calls(op)).collect()
}

async fn objects(store: &MemoryStore) -> usize {
    store.list_keys("g/.objects/").await.unwrap().len()
}

#[tokio::test]
async fn an_uncontended_update_is_one_conditional_put_when_small_and_two_puts_when_large() {
    let (_, faulty, g) = setup();
    g.operate("small", |_| Ok("1")).await.unwrap();
    let before = counts(&faulty);
    for i in 2..6 {
        g.operate("small", |_| Ok(i.to_string())).await.unwrap();
    }
    assert_eq!(calls_since(&faulty, &before), [(FaultOp::Put, 4)]);

    let large = |fill: u8| Bytes::from(vec![fill; 2048]);
    g.operate("large", |_| Ok(large(0))).await.unwrap();
    let before = counts(&faulty);
    for fill in 1..5 {
        let written = g
            .operate("large", |old| {
                assert_eq!(old, &large(fill - 1)[..], "read from the handle's cache");
                Ok(large(fill))
            })
            .await
            .unwrap();
        assert_eq!(written, large(fill));
    }
    // Per update: the new version, the manifest, and the delete of the replaced version.
    assert_eq!(
        calls_since(&faulty, &before),
        [(FaultOp::Put, 8), (FaultOp::Delete, 4)]
    );
}

#[tokio::test]
async fn a_reader_reads_an_unchanged_object_version_once() {
    let (store, faulty, g) = setup();
    let writer = Group::new(store.clone(), "g").unwrap();
    writer.operate("large", |_| Ok(vec![1; 2048])).await.unwrap();
    let before = counts(&faulty);
    for _ in 0..3 {
        assert_eq!(
            g.reader("large").await.unwrap().bytes().await.unwrap(),
            vec![1; 2048]
        );
    }
    // The manifest each time, the object version once.
    assert_eq!(calls_since(&faulty, &before), [(FaultOp::Get, 4)]);
}

#[tokio::test]
async fn the_inline_limit_keeps_larger_contents_in_the_manifest() {
    let (store, faulty, g) = setup();
    assert_eq!(g.inline_limit(), DEFAULT_INLINE_LIMIT);
    let g = g.with_inline_limit(2048);
    let two_kib = Bytes::from(vec![7; 2048]);
    g.operate("doc", |_| Ok(two_kib.clone())).await.unwrap();
    let before = counts(&faulty);
    g.operate("doc", |_| Ok(two_kib.clone())).await.unwrap();
    assert_eq!(calls_since(&faulty, &before), [(FaultOp::Put, 1)]);
    assert_eq!(objects(&store).await, 0);
    // A handle with the default limit reads it, and writes a larger content as an object.
    let default = Group::new(store.clone(), "g").unwrap();
    assert_eq!(
        default.reader("doc").await.unwrap().bytes().await.unwrap(),
        two_kib
    );
    default.operate("doc", |_| Ok(vec![8; 2048])).await.unwrap();
    assert_eq!(objects(&store).await, 1);
    assert_eq!(
        g.reader("doc").await.unwrap().bytes().await.unwrap(),
        vec![8; 2048]
    );
}

/// The delete of a replaced version hangs: the update returns all the same (it is not on
/// the caller's path), readers read the new content, and the old version goes once the
/// backend answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_replaced_version_is_deleted_off_the_callers_path() {
    let (store, faulty, g) = setup();
    let large = |fill: u8| Bytes::from(vec![fill; 2048]);
    g.operate("doc", |_| Ok(large(1))).await.unwrap();
    faulty.inject(Rule::new(FaultOp::Delete, Fault::Hang));
    tokio::time::timeout(Duration::from_secs(30), g.operate("doc", |_| Ok(large(2))))
        .await
        .expect("the update does not wait for the delete")
        .unwrap();
    assert_eq!(objects(&store).await, 2, "the delete has not run yet");
    let other = Group::new(store.clone(), "g").unwrap();
    assert_eq!(
        other.reader("doc").await.unwrap().bytes().await.unwrap(),
        large(2)
    );

    faulty.release();
    tokio::time::timeout(Duration::from_secs(30), async {
        while objects(&store).await != 1 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the replaced version is deleted once the backend answers");
    assert_eq!(g.reader("doc").await.unwrap().bytes().await.unwrap(), large(2));
}
