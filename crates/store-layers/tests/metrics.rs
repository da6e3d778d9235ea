//! Metrics, checked with metrics-util's debugging recorder: the counts are the operations made.

use std::collections::HashMap;
use std::time::Duration;

use futures::TryStreamExt;
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use store_core::{Backend, BackendExt, Backoff, Key, ListOptions, PutOptions};
use store_layers::{Metrics, Retry};
use store_memory::MemoryStore;
use store_testkit::{Fault, FaultOp, Faulty, Rule};

/// Runs `test` on a single-threaded runtime with a debugging recorder installed for this
/// thread, and returns each metric by `name{label=value,…}` (labels sorted).
fn recorded<F: std::future::Future<Output = ()>>(test: impl FnOnce() -> F) -> HashMap<String, DebugValue> {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    metrics::with_local_recorder(&recorder, || rt.block_on(test()));
    snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| {
            let mut labels: Vec<String> = key
                .key()
                .labels()
                .map(|l| format!("{}={}", l.key(), l.value()))
                .collect();
            labels.sort();
            (format!("{}{{{}}}", key.key().name(), labels.join(",")), value)
        })
        .collect()
}

fn counter(m: &HashMap<String, DebugValue>, name: &str) -> u64 {
    match m.get(name) {
        Some(DebugValue::Counter(n)) => *n,
        other => panic!("{name}: {other:?} in {:#?}", m.keys().collect::<Vec<_>>()),
    }
}

fn samples(m: &HashMap<String, DebugValue>, name: &str) -> usize {
    match m.get(name) {
        Some(DebugValue::Histogram(v)) => v.len(),
        other => panic!("{name}: {other:?}"),
    }
}

fn k(s: &str) -> Key {
    Key::new(s).unwrap()
}

#[test]
fn counts_bytes_and_durations_equal_the_operations_made() {
    let m = recorded(|| async {
        let store = MemoryStore::new().layer(Metrics::new("mem"));
        for i in 0..7 {
            store.put_bytes(&k(&format!("p/{i}")), "12345").await.unwrap();
        }
        for i in 0..3 {
            assert_eq!(store.get_bytes(&k(&format!("p/{i}"))).await.unwrap(), "12345");
        }
        for _ in 0..4 {
            assert!(store.get_bytes(&k("missing")).await.unwrap_err().is_not_found());
        }
        assert!(store.create(&k("p/0"), "x").await.is_err());
        let mut w = store.writer(&k("w"), PutOptions::default()).await.unwrap();
        w.write("abc".into()).await.unwrap();
        w.write("de".into()).await.unwrap();
        w.close().await.unwrap();
        let listed: Vec<_> = store.list(ListOptions::default()).try_collect().await.unwrap();
        assert_eq!(listed.len(), 8);
        store.head(&k("w")).await.unwrap();
        store.delete_if_exists(&k("w")).await.unwrap();
        // A call dropped before it finished counts as cancelled.
        let never = k("never");
        let watch = store.watch(&never, None);
        assert!(
            tokio::time::timeout(Duration::from_millis(5), watch)
                .await
                .is_err()
        );
    });

    assert_eq!(counter(&m, "store_ops_total{backend=mem,op=put,outcome=ok}"), 7);
    assert_eq!(
        counter(&m, "store_ops_total{backend=mem,op=put,outcome=already_exists}"),
        1
    );
    assert_eq!(counter(&m, "store_ops_total{backend=mem,op=get,outcome=ok}"), 3);
    assert_eq!(
        counter(&m, "store_ops_total{backend=mem,op=get,outcome=not_found}"),
        4
    );
    assert_eq!(
        counter(&m, "store_ops_total{backend=mem,op=writer,outcome=ok}"),
        1
    );
    assert_eq!(counter(&m, "store_ops_total{backend=mem,op=close,outcome=ok}"), 1);
    assert_eq!(counter(&m, "store_ops_total{backend=mem,op=list,outcome=ok}"), 1);
    assert_eq!(counter(&m, "store_ops_total{backend=mem,op=head,outcome=ok}"), 1);
    assert_eq!(
        counter(&m, "store_ops_total{backend=mem,op=delete,outcome=ok}"),
        1
    );
    assert_eq!(
        counter(&m, "store_ops_total{backend=mem,op=watch,outcome=cancelled}"),
        1
    );

    assert_eq!(
        counter(&m, "store_bytes_total{backend=mem,op=put}"),
        7 * 5,
        "failed puts add no bytes"
    );
    assert_eq!(counter(&m, "store_bytes_total{backend=mem,op=get}"), 3 * 5);
    assert_eq!(counter(&m, "store_bytes_total{backend=mem,op=close}"), 5);

    assert_eq!(samples(&m, "store_op_duration_seconds{backend=mem,op=put}"), 8);
    assert_eq!(samples(&m, "store_op_duration_seconds{backend=mem,op=get}"), 7);
    assert_eq!(samples(&m, "store_op_duration_seconds{backend=mem,op=list}"), 1);
}

#[test]
fn under_retry_each_attempt_counts() {
    let m = recorded(|| async {
        let faulty = Faulty::new(MemoryStore::new());
        faulty.inject(Rule::new(FaultOp::Head, Fault::FailRetryable).times(2));
        let store = faulty.clone().layer(Metrics::new("s3")).layer(Retry::new(
            Backoff::new(Duration::ZERO, Duration::ZERO).with_max_attempts(5),
        ));
        faulty.inner().put_bytes(&k("a"), "x").await.unwrap();
        store.head(&k("a")).await.unwrap();
    });
    assert_eq!(
        counter(&m, "store_ops_total{backend=s3,op=head,outcome=backend}"),
        2
    );
    assert_eq!(counter(&m, "store_ops_total{backend=s3,op=head,outcome=ok}"), 1);
    assert_eq!(samples(&m, "store_op_duration_seconds{backend=s3,op=head}"), 3);
}
