//! Timeout over a stalling backend: every call returns soon after its deadline, names the
//! key and the operation, and leaves nothing behind.
//!
//! Time is tokio's paused clock, which jumps straight to the next timer when every task
//! waits: the deadlines are exact and the tests take no real time.

use std::time::Duration;

use futures::StreamExt;
use store_core::{Backend, BackendExt, DeleteOptions, Error, GetOptions, Key, ListOptions, PutOptions};
use store_layers::{Limit, LimitStore, Timeout, TimeoutStore};
use store_memory::MemoryStore;
use store_testkit::{Fault, FaultOp, Faulty, Rule};
use tokio::time::Instant;

const DEADLINE: Duration = Duration::from_millis(200);
const PERMITS: usize = 2;

fn k(s: &str) -> Key {
    Key::new(s).unwrap()
}

type Stack = TimeoutStore<LimitStore<Faulty<MemoryStore>>>;

fn stalling() -> (Faulty<MemoryStore>, Stack) {
    let faulty = Faulty::new(MemoryStore::new());
    let store = faulty
        .clone()
        .layer(Limit::new(PERMITS))
        .layer(Timeout::new(DEADLINE).with_watch(Some(DEADLINE)));
    (faulty, store)
}

/// Runs `call`, checks it timed out within 1.5 × the deadline with an error naming `op` and
/// `key`, and that nothing it started is still holding a permit or running.
async fn times_out<T: std::fmt::Debug>(
    store: &Stack,
    op: &str,
    key: Option<&str>,
    call: impl std::future::Future<Output = store_core::Result<T>>,
) {
    let tasks = tokio::runtime::Handle::current().metrics().num_alive_tasks();
    let started = Instant::now();
    let e = call.await.expect_err("a stalled call must fail");
    let took = started.elapsed();
    assert!(took <= DEADLINE.mul_f64(1.5), "{op} took {took:?}");
    match &e {
        Error::Timeout { op: o, key: k, after } => {
            assert_eq!((*o, k.as_deref(), *after), (op, key, DEADLINE), "{e}");
        }
        other => panic!("{op}: expected a timeout, got {other}"),
    }
    assert!(e.is_retryable());
    let text = e.to_string();
    assert!(
        text.contains(op) && key.is_none_or(|k| text.contains(k)),
        "{text}"
    );
    assert_eq!(store.inner().available_permits(), PERMITS, "{op} kept a permit");
    assert_eq!(
        tokio::runtime::Handle::current().metrics().num_alive_tasks(),
        tasks
    );
}

#[tokio::test(start_paused = true)]
async fn stalled_calls_time_out_and_leak_nothing() {
    let (faulty, store) = stalling();
    faulty.inner().put_bytes(&k("there"), "x").await.unwrap();
    for op in [
        FaultOp::Put,
        FaultOp::Get,
        FaultOp::Head,
        FaultOp::Delete,
        FaultOp::WriterOpen,
    ] {
        faulty.inject(Rule::new(op, Fault::Hang));
    }
    // More stalled calls than permits, one after another: each gives its permit back.
    for _ in 0..=PERMITS {
        times_out(
            &store,
            "put",
            Some("a"),
            store.put(&k("a"), "1".into(), PutOptions::default()),
        )
        .await;
    }
    times_out(
        &store,
        "get",
        Some("there"),
        store.get(&k("there"), GetOptions::default()),
    )
    .await;
    times_out(&store, "head", Some("there"), store.head(&k("there"))).await;
    times_out(
        &store,
        "delete",
        Some("there"),
        store.delete(&k("there"), DeleteOptions::default()),
    )
    .await;
    times_out(
        &store,
        "writer",
        Some("w"),
        store.writer(&k("w"), PutOptions::default()),
    )
    .await;
    times_out(&store, "watch", Some("there"), async {
        let seen = faulty.inner().head(&k("there")).await?.version;
        store.watch(&k("there"), Some(&seen)).await
    })
    .await;

    // The stalled calls were cancelled, not merely abandoned: released now, none applies.
    faulty.release();
    tokio::time::sleep(DEADLINE).await;
    assert!(!faulty.inner().exists(&k("a")).await.unwrap());
    assert!(faulty.inner().exists(&k("there")).await.unwrap());
}

#[tokio::test(start_paused = true)]
async fn writers_have_a_deadline_per_chunk_and_for_close() {
    let (faulty, store) = stalling();
    let mut w = store.writer(&k("w"), PutOptions::default()).await.unwrap();
    // Slow but within the deadline each time: a long write is fine.
    faulty.inject(Rule::new(FaultOp::WriterWrite, Fault::Latency(DEADLINE / 2)).times(5));
    for _ in 0..5 {
        w.write("chunk".into()).await.unwrap();
    }
    faulty.inject(Rule::new(FaultOp::WriterWrite, Fault::Hang).times(1));
    times_out(&store, "write", Some("w"), w.write("stuck".into())).await;

    let mut w = store.writer(&k("v"), PutOptions::default()).await.unwrap();
    w.write("x".into()).await.unwrap();
    faulty.inject(Rule::new(FaultOp::WriterClose, Fault::Hang).times(1));
    times_out(&store, "close", Some("v"), w.close()).await;
    faulty.release();
    assert!(
        !faulty.inner().exists(&k("v")).await.unwrap(),
        "a timed-out close commits nothing"
    );
}

#[tokio::test(start_paused = true)]
async fn listings_have_a_deadline_per_item() {
    let (faulty, store) = stalling();
    for i in 0..10 {
        faulty
            .inner()
            .put_bytes(&k(&format!("l/{i}")), "x")
            .await
            .unwrap();
    }
    // Each item slow but in time: the whole listing takes far longer than one deadline.
    faulty.inject(Rule::new(FaultOp::ListItem, Fault::Latency(DEADLINE / 2)).times(10));
    let started = Instant::now();
    let all: Vec<_> = store
        .list(ListOptions::default().with_prefix("l/"))
        .collect()
        .await;
    assert!(all.iter().all(|i| i.is_ok()) && all.len() == 10);
    assert!(started.elapsed() >= DEADLINE * 5);

    faulty.inject(Rule::new(FaultOp::ListItem, Fault::Hang).after(3).times(1));
    let mut listing = store.list(ListOptions::default().with_prefix("l/"));
    for _ in 0..3 {
        listing.next().await.unwrap().unwrap();
    }
    times_out(&store, "list", Some("l/"), async {
        listing.next().await.unwrap()
    })
    .await;
    assert!(listing.next().await.is_none(), "a listing ends after a timeout");
}

#[tokio::test(start_paused = true)]
async fn watch_has_no_deadline_unless_asked() {
    let faulty = Faulty::new(MemoryStore::new());
    let store = faulty.clone().layer(Timeout::new(DEADLINE));
    let key = k("w");
    let waiter = {
        let store = std::sync::Arc::new(store);
        tokio::spawn(async move { store.watch(&k("w"), None).await })
    };
    tokio::time::sleep(DEADLINE * 10).await;
    assert!(!waiter.is_finished(), "a watch waits for a change, however long");
    let written = faulty.put_bytes(&key, "x").await.unwrap();
    assert_eq!(waiter.await.unwrap().unwrap(), Some(written.version));
}
