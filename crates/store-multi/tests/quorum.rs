//! A whole object goes to each backend's own `put`; a `Quorum` write returns at the
//! majority and its slow backends finish in the background, holding the key's lock.
//! Checked by what the backends hold when the write returns and by the order of events,
//! never by wall-clock thresholds.

use std::sync::Arc;
use std::time::Duration;

use store_core::{Backend, BackendExt, Key, PutOptions};
use store_memory::MemoryStore;
use store_multi::{Multi, MultiWriter, Outcome, WriteMode};
use store_testkit::{Fault, FaultOp, Faulty, Rule};

mod common;

use common::Streaming;

/// Three backends whose puts take 1 ms, 2 ms, and until the test releases the third.
fn one_two_hung(mode: WriteMode) -> (Vec<Faulty<MemoryStore>>, MultiWriter) {
    let faulty: Vec<_> = ["b0", "b1", "b2"]
        .iter()
        .map(|n| Faulty::new(MemoryStore::new()).named(n))
        .collect();
    faulty[0].inject(Rule::new(FaultOp::Put, Fault::Latency(Duration::from_millis(1))));
    faulty[1].inject(Rule::new(FaultOp::Put, Fault::Latency(Duration::from_millis(2))));
    faulty[2].inject(Rule::new(FaultOp::Put, Fault::Hang).times(1));
    let backends: Vec<Arc<dyn Backend>> = faulty.iter().map(|f| Arc::new(f.clone()) as _).collect();
    let fan = MultiWriter::builder(backends).mode(mode).build_writer().unwrap();
    (faulty, fan)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_object_goes_to_each_backends_own_put_even_when_it_streams() {
    let faulty: Vec<_> = (0..3).map(|_| Faulty::new(MemoryStore::new())).collect();
    let backends: Vec<Arc<dyn Backend>> = faulty
        .iter()
        .map(|f| Arc::new(Streaming(f.clone())) as _)
        .collect();
    for mode in [WriteMode::All, WriteMode::BestEffort, WriteMode::Quorum] {
        let multi = Multi::builder(backends.clone()).mode(mode).build().unwrap();
        let key = Key::new(format!("whole/{mode:?}")).unwrap();
        multi.put_bytes(&key, "small").await.unwrap();
        multi
            .fan_out()
            .put(&key, "again".into(), PutOptions::default())
            .await
            .unwrap();
        assert_eq!(multi.get_bytes(&key).await.unwrap(), "again");
    }
    for f in &faulty {
        assert_eq!(f.calls(FaultOp::Put), 6);
        assert_eq!(f.calls(FaultOp::WriterOpen), 0, "no writer for a whole object");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quorum_put_returns_at_the_majority_and_the_straggler_settles_in_the_background() {
    let (faulty, fan) = one_two_hung(WriteMode::Quorum);
    let key = Key::new("early").unwrap();
    let report = fan.put(&key, "x".into(), PutOptions::default()).await.unwrap();
    // Returned while b2 cannot have committed: it is blocked until released below.
    assert_eq!(report.committed(), [0, 1]);
    assert_eq!(report.pending(), [2]);
    assert!(faulty[2].inner().is_empty());
    assert!(
        report.version().to_string().ends_with("|?"),
        "{}",
        report.version()
    );

    faulty[2].release();
    let settled = report.settled().await;
    assert!(
        settled.outcomes.iter().all(Outcome::is_committed),
        "{:?}",
        settled.outcomes
    );
    assert_eq!(faulty[2].inner().get_bytes(&key).await.unwrap(), "x");
    assert!(!settled.meta.version.to_string().contains('?'));
    assert_eq!(
        Multi::from(fan.clone()).head(&key).await.unwrap().version,
        settled.meta.version
    );
    assert!(fan.recent_failures().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_straggler_that_fails_shows_in_the_settlement_and_the_failure_log() {
    // b2's put hangs until released, then fails.
    let inner = Faulty::new(MemoryStore::new()).named("b2");
    inner.inject(Rule::new(FaultOp::Put, Fault::Fail));
    let slow = Faulty::new(inner.clone());
    slow.inject(Rule::new(FaultOp::Put, Fault::Hang));
    let backends: Vec<Arc<dyn Backend>> = vec![
        Arc::new(MemoryStore::new()),
        Arc::new(MemoryStore::new()),
        Arc::new(slow.clone()),
    ];
    let fan = MultiWriter::builder(backends)
        .mode(WriteMode::Quorum)
        .build_writer()
        .unwrap();
    let key = Key::new("late/failure").unwrap();
    let report = fan.put(&key, "x".into(), PutOptions::default()).await.unwrap();
    assert_eq!(report.pending(), [2]);
    assert!(fan.recent_failures().is_empty(), "nothing has failed yet");

    slow.release();
    let settled = report.settled().await;
    let error = settled.outcomes[2].error().expect("b2 failed").to_string();
    assert!(error.starts_with("b2: injected fault at Put"), "{error}");
    let log = fan.recent_failures();
    assert_eq!(log.len(), 1);
    assert_eq!(
        (log[0].op, log[0].key.as_str(), log[0].backend),
        ("put", "late/failure", 2)
    );
    // b2 held nothing before: the settled version says so.
    assert!(
        settled.meta.version.to_string().ends_with("|-"),
        "{}",
        settled.meta.version
    );
    assert_eq!(
        Multi::from(fan).head(&key).await.unwrap().version,
        settled.meta.version
    );
}

/// A second write of the key waits for the first one's straggler (which keeps the key's
/// lock), so the two reach every backend in the same order. Without that wait, the second
/// write would reach b2 first and the first write's late put would then overwrite it there.
#[tokio::test(flavor = "current_thread")]
async fn a_later_write_of_the_key_waits_for_the_straggler() {
    let (faulty, fan) = one_two_hung(WriteMode::Quorum);
    let key = Key::new("ordered").unwrap();
    let first = fan
        .put(&key, "first".into(), PutOptions::default())
        .await
        .unwrap();
    assert_eq!(first.pending(), [2]);
    let second = tokio::spawn({
        let (fan, key) = (fan.clone(), key.clone());
        async move { fan.put(&key, "second".into(), PutOptions::default()).await }
    });
    // Let the second write run as far as it can (on this single thread) before b2's
    // first put is released; b2 no longer hangs for the second one.
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert_eq!(
        faulty[0].calls(FaultOp::Put),
        1,
        "the second write is waiting for the key"
    );
    faulty[2].release();
    let second = second.await.unwrap().unwrap();
    assert_eq!(
        second
            .settled()
            .await
            .outcomes
            .iter()
            .filter(|o| o.is_committed())
            .count(),
        3
    );
    for f in &faulty {
        assert_eq!(f.inner().get_bytes(&key).await.unwrap(), "second");
    }
}

/// `Multi`'s `Backend::put` waits for every backend's answer in `Quorum` mode too: the
/// version it returns names every backend's version, as reads compute it from them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_backend_put_returns_the_version_reads_report() {
    let (faulty, fan) = one_two_hung(WriteMode::Quorum);
    let multi = Multi::from(fan);
    let key = Key::new("backend/put").unwrap();
    let put = tokio::spawn({
        let (multi, key) = (multi.clone(), key.clone());
        async move { multi.put_bytes(&key, "x").await }
    });
    // The put cannot return before b2 answers: b2 blocks it until released, and it is
    // released only once b0 and b1 have committed.
    while faulty[0].inner().is_empty() || faulty[1].inner().is_empty() {
        tokio::task::yield_now().await;
    }
    assert!(!put.is_finished());
    faulty[2].release();
    let meta = put.await.unwrap().unwrap();
    assert!(!meta.version.to_string().contains('?'), "{}", meta.version);
    assert_eq!(multi.head(&key).await.unwrap().version, meta.version);
    assert_eq!(
        multi.get(&key, Default::default()).await.unwrap().meta.version,
        meta.version
    );
}
