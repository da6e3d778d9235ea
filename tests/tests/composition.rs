//! Cross-crate compositions: every combinator is generic over the traits, so stacks of them
//! are backends (or record stores) too, and must pass the same conformance suites.

use std::sync::Arc;

use store_core::{Backend, BackendExt, Key, Record};
use store_memory::MemoryStore;
use store_multi::{Multi, WriteMode};
use store_record::Records;
use store_replica::Replica;

fn mem() -> Arc<dyn Backend> {
    Arc::new(MemoryStore::new())
}

fn multi(mode: WriteMode) -> Arc<dyn Backend> {
    Arc::new(
        Multi::builder([mem(), mem(), mem()])
            .mode(mode)
            .build()
            .expect("multi"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dyn_backends_compose_through_arc_and_box() {
    let stores: Vec<Arc<dyn Backend>> = vec![
        Arc::new(MemoryStore::new()),
        Arc::new(Box::new(MemoryStore::new())),
    ];
    for (i, s) in stores.iter().enumerate() {
        let key = Key::new(format!("s{i}/k")).unwrap();
        let v = s.create(&key, "x").await.unwrap().version;
        assert!(s.update(&key, "y", v.clone()).await.is_ok());
        assert!(s.update(&key, "z", v).await.unwrap_err().is_conflict());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replica_over_multi_meets_the_backend_contract() {
    store_testkit::backend::run_all(|| async {
        Replica::new(vec![multi(WriteMode::All), mem()], vec![mem()], 64).expect("replica")
    })
    .await
    .assert_all_ran();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn multi_over_replicas_meets_the_backend_contract() {
    store_testkit::backend::run_all(|| async {
        let r1: Arc<dyn Backend> = Arc::new(Replica::new(vec![mem()], vec![mem()], 16).expect("replica"));
        let r2: Arc<dyn Backend> = Arc::new(Replica::new(vec![mem()], vec![], 16).expect("replica"));
        Multi::builder([r1, r2, mem()])
            .mode(WriteMode::Quorum)
            .build()
            .expect("multi")
    })
    .await
    .assert_all_ran();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn records_over_replica_over_multi_meet_the_record_contract() {
    store_testkit::records::run_all(|| async {
        let replica = Replica::new(vec![multi(WriteMode::All)], vec![mem()], 64).expect("replica");
        Records::new(replica)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writes_through_the_stack_land_in_every_store() {
    let leaves: Vec<MemoryStore> = (0..3).map(|_| MemoryStore::new()).collect();
    let fan = Multi::builder(leaves.iter().map(|m| Arc::new(m.clone()) as Arc<dyn Backend>))
        .mode(WriteMode::All)
        .build()
        .unwrap();
    let lagging = MemoryStore::new();
    let replica = Replica::new(vec![Arc::new(fan)], vec![Arc::new(lagging.clone())], 8).unwrap();
    let records = Records::new(replica.clone());
    let key = Key::new("jobs/1").unwrap();
    let v = records.create(&Record::new(key.clone(), "queued")).await.unwrap();
    let rec = records.get(&key).await.unwrap();
    assert_eq!((rec.value.as_ref(), &rec.version), (b"queued".as_ref(), &v));
    records
        .cas_by_version(&Record::new(key.clone(), "running").with_version(v))
        .await
        .unwrap();
    replica.flush().await.unwrap();
    // Every leaf holds the same envelope bytes: the record went through all the layers.
    let expected = leaves[0].get_bytes(&key).await.unwrap();
    assert!(expected.ends_with(b"running"));
    for store in leaves.iter().chain([&lagging]) {
        assert_eq!(store.get_bytes(&key).await.unwrap(), expected);
    }
}
