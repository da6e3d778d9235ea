//! Replica: 1 KiB put through one sync MemoryStore plus one async store that takes 5 ms
//! per write (queue 1024), against the sync store alone. While the queue has room the
//! async copy must cost the put almost nothing (target: within 1.3× of the store alone).
//! `replica_sync_only` (the same replica without the async store) separates the cost of
//! the replica wrapper from the cost of queueing.
//!
//! `cargo bench -p store-benches --bench replica -- --warm-up-time 1 --measurement-time 3`
//!
//! After criterion's figures it prints the ratios measured interleaved (see
//! `store_benches::paired_ratio`): those are the figures to compare with the target. The
//! first is a floor: the sync put plus a push onto a locked queue and nothing else (no
//! per-key order, no back-pressure, no error state). The last has two tasks putting at
//! once through one replica (and one store), to show what its lock costs under contention.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use futures::future::BoxFuture;
use store_benches::{key, paired_ratio, payload, runtime};
use store_core::{Backend, Key, PutOptions};
use store_memory::MemoryStore;
use store_replica::{Replica, ShutdownToken};
use store_testkit::{Fault, FaultOp, Faulty, Rule};

/// Puts timed against one replica before a fresh one is built: below the queue length, so
/// the measurement is of a queue with room (back-pressure is not what this measures).
const BATCH: u64 = 1000;
const QUEUE_LEN: usize = 1024;
/// Puts per side and round of the interleaved ratios.
const PAIRED_CALLS: u64 = 20 * BATCH;

fn slow_async_replica(shutdown: ShutdownToken) -> Replica {
    let slow = Faulty::new(MemoryStore::new()).named("slow");
    slow.inject(Rule::new(FaultOp::Put, Fault::Latency(Duration::from_millis(5))));
    Replica::builder()
        .sync_store(MemoryStore::new())
        .async_store(slow)
        .queue_len(QUEUE_LEN)
        .shutdown(shutdown)
        .build()
        .expect("replica")
}

/// The timed loop, one function for every store measured (called through `dyn`, its
/// future boxed): the same machine code on both sides of a ratio, so that where the
/// compiler happens to place it cannot tilt the comparison.
fn put_batch<'a>(store: &'a dyn Backend, keys: &'a [Key], data: &'a Bytes) -> BoxFuture<'a, Duration> {
    Box::pin(async move {
        let start = Instant::now();
        for k in keys {
            store
                .put(k, data.clone(), PutOptions::default())
                .await
                .expect("put");
        }
        start.elapsed()
    })
}

/// Times `iters` 1 KiB puts into fresh MemoryStores, [`BATCH`] per store, from `tasks`
/// tasks at once (1 or 2).
async fn memory_alone(iters: u64, keys: &[Key], tasks: usize) -> Duration {
    let data = payload(1024);
    let mut total = Duration::ZERO;
    for n in batches(iters) {
        total += timed_puts(Arc::new(MemoryStore::new()), &keys[..n], &data, tasks).await;
    }
    total
}

/// Times `iters` 1 KiB puts into fresh replicas, [`BATCH`] per replica, from `tasks` tasks
/// at once (1 or 2). Each replica is shut down and its task gone before the next batch
/// starts, so the clean-up of one batch does not run (on the other core) during the next.
async fn replica_with_slow_async(iters: u64, keys: &[Key], tasks: usize) -> Duration {
    let data = payload(1024);
    let mut total = Duration::ZERO;
    for n in batches(iters) {
        let token = ShutdownToken::new();
        let replica = slow_async_replica(token.clone());
        total += timed_puts(Arc::new(replica.clone()), &keys[..n], &data, tasks).await;
        token.cancel();
        while replica.health().async_stores.iter().any(|a| a.running) {
            tokio::task::yield_now().await;
        }
    }
    total
}

/// Puts `keys` into `store`, from this task ([`put_batch`]) or from two at once (one per
/// worker thread, each to its own half of `keys`); times the whole.
async fn timed_puts(store: Arc<dyn Backend>, keys: &[Key], data: &Bytes, tasks: usize) -> Duration {
    if tasks == 1 {
        return put_batch(&*store, keys, data).await;
    }
    let (a, b) = keys.split_at(keys.len() / 2);
    let halves = [a.to_vec(), b.to_vec()];
    let start = Instant::now();
    let tasks: Vec<_> = halves
        .into_iter()
        .map(|half| {
            let (store, data) = (Arc::clone(&store), data.clone());
            tokio::spawn(async move { put_batch(&*store, &half, &data).await })
        })
        .collect();
    for task in tasks {
        task.await.expect("put task");
    }
    start.elapsed()
}

/// Times `iters` 1 KiB puts into fresh sync-only replicas, [`BATCH`] per replica.
async fn replica_sync_only(iters: u64, keys: &[Key]) -> Duration {
    let data = payload(1024);
    let mut total = Duration::ZERO;
    for n in batches(iters) {
        let r = Replica::builder().sync_store(MemoryStore::new()).build().unwrap();
        total += put_batch(&r, &keys[..n], &data).await;
    }
    total
}

/// The floor of any replica that is a `Backend` over an `Arc<dyn Backend>`: the sync put
/// and a push onto a locked queue, inside one boxed future (as a `Backend` method's is),
/// with no per-key order, no back-pressure and no error state. [`BATCH`] per store.
async fn floor(iters: u64, keys: &[Key]) -> Duration {
    let data = payload(1024);
    let mut total = Duration::ZERO;
    for n in batches(iters) {
        let store: Arc<dyn Backend> = Arc::new(MemoryStore::new());
        let q = std::sync::Mutex::new(std::collections::VecDeque::<(Key, Bytes)>::with_capacity(1024));
        let start = Instant::now();
        for k in &keys[..n] {
            let f: futures::future::BoxFuture<'_, ()> = Box::pin(async {
                store
                    .put(k, data.clone(), PutOptions::default())
                    .await
                    .expect("put");
                q.lock().unwrap().push_back((k.clone(), data.clone()));
            });
            f.await;
        }
        total += start.elapsed();
    }
    total
}

fn batches(iters: u64) -> impl Iterator<Item = usize> {
    let full = iters / BATCH;
    let rest = iters % BATCH;
    (0..full)
        .map(|_| BATCH as usize)
        .chain((rest > 0).then_some(rest as usize))
}

fn put_with_async_copy(c: &mut Criterion) {
    let rt = runtime();
    let keys: Vec<Key> = (0..BATCH).map(|i| key(&format!("bench/{i:04}"))).collect();
    let mut g = c.benchmark_group("replica");
    g.throughput(Throughput::Elements(1));
    g.bench_function("put_1KiB/memory_alone", |b| {
        b.to_async(&rt).iter_custom(|iters| memory_alone(iters, &keys, 1))
    });
    g.bench_function("put_1KiB/replica_sync_only", |b| {
        b.to_async(&rt)
            .iter_custom(|iters| replica_sync_only(iters, &keys))
    });
    g.bench_function("put_1KiB/sync_memory+async_5ms_queue1024", |b| {
        b.to_async(&rt)
            .iter_custom(|iters| replica_with_slow_async(iters, &keys, 1))
    });
    g.finish();
    paired_ratio(
        &rt,
        "replica/put_1KiB bare put + queue push (the floor) ÷ memory_alone",
        PAIRED_CALLS,
        |n| memory_alone(n, &keys, 1),
        |n| floor(n, &keys),
    );
    paired_ratio(
        &rt,
        "replica/put_1KiB sync_only ÷ memory_alone",
        PAIRED_CALLS,
        |n| memory_alone(n, &keys, 1),
        |n| replica_sync_only(n, &keys),
    );
    paired_ratio(
        &rt,
        "replica/put_1KiB sync_memory+async_5ms_queue1024 ÷ memory_alone",
        PAIRED_CALLS,
        |n| memory_alone(n, &keys, 1),
        |n| replica_with_slow_async(n, &keys, 1),
    );
    paired_ratio(
        &rt,
        "replica/put_1KiB from 2 tasks at once: sync_memory+async_5ms_queue1024 ÷ memory_alone",
        PAIRED_CALLS,
        |n| memory_alone(n, &keys, 2),
        |n| replica_with_slow_async(n, &keys, 2),
    );
}

criterion_group!(benches, put_with_async_copy);
criterion_main!(benches);
