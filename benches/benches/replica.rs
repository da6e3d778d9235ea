//! Replica: what it adds to the I/O it must do.
//!
//! `cargo bench -p store-benches --bench replica -- --warm-up-time 1 --measurement-time 3`
//!
//! After criterion's figures it prints ratios measured interleaved (see
//! `store_benches::paired_ratio`), with fresh directories for every side and round:
//!
//! - a replica of one sync `FsStore` and one async `MemoryStore`, 1 KiB puts made from a
//!   task of the runtime, against the `FsStore` alone: with the default durability
//!   (target ≤ 1.05×) and with `Durability::None` (target ≤ 1.10×); and the latter once
//!   more with the puts made from outside the runtime (`block_on`), where waking the
//!   replica's idle queue task after each put is a wake-up of another thread;
//! - gets from a replica of two sync stores answering in 1 ms and 5 ms (in either order),
//!   against the 1 ms store alone: the reads race, so the fast store decides (≈ 1.0×);
//! - for information only, the same put over `MemoryStore`s: the floor (the sync put plus a
//!   push onto a locked queue), a sync-only replica, a replica with an async store that
//!   takes 5 ms per write (queue 1024), and that from two tasks at once.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use futures::future::BoxFuture;
use store_benches::{key, paired_ratio, payload, runtime};
use store_core::{Backend, BackendExt, Key, PutOptions};
use store_fs::{Durability, FsStore};
use store_memory::MemoryStore;
use store_replica::{Replica, ShutdownToken};
use store_testkit::{Fault, FaultOp, Faulty, Rule};

/// Puts timed against one replica before a fresh one is built: below the queue length, so
/// the measurement is of a queue with room (back-pressure is not what this measures).
const BATCH: u64 = 1000;
const QUEUE_LEN: usize = 1024;
/// Puts per side and round of the interleaved ratios over `MemoryStore`.
const PAIRED_CALLS: u64 = 20 * BATCH;
/// Puts per side and round over `FsStore`, by durability (a durable put waits for two
/// fsyncs).
const FS_DURABLE_CALLS: u64 = 50;
const FS_NO_SYNC_CALLS: u64 = BATCH;
/// Gets per side and round from stores that answer in milliseconds.
const LATENCY_CALLS: u64 = 50;

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

/// Times `iters` 1 KiB puts into fresh `FsStore`s (each in a fresh directory, [`BATCH`]
/// puts per store), alone or as the one sync store of a replica with one async
/// `MemoryStore`. The replica is closed (its queue drained) after the timed puts.
async fn fs_puts(iters: u64, keys: &[Key], durability: Durability, replicated: bool) -> Duration {
    let data = payload(1024);
    let mut total = Duration::ZERO;
    for n in batches(iters) {
        let dir = tempfile::tempdir().expect("tempdir");
        let fs = FsStore::builder(dir.path())
            .durability(durability)
            .open()
            .await
            .expect("fs store");
        if !replicated {
            total += put_batch(&fs, &keys[..n], &data).await;
            continue;
        }
        let replica = Replica::builder()
            .sync_store(fs)
            .async_store(MemoryStore::new())
            .queue_len(QUEUE_LEN)
            .build()
            .expect("replica");
        total += put_batch(&replica, &keys[..n], &data).await;
        replica.close().await.expect("close");
    }
    total
}

/// [`fs_puts`] in a task of the runtime, as an async caller makes them. (A wake-up a put
/// causes, such as that of the replica's idle queue task, then goes to the worker thread
/// the caller runs on; from outside the runtime, as under `block_on`, each one is a
/// wake-up of another thread.)
async fn fs_puts_in_task(iters: u64, keys: &[Key], durability: Durability, replicated: bool) -> Duration {
    let keys = keys.to_vec();
    tokio::spawn(async move { fs_puts(iters, &keys, durability, replicated).await })
        .await
        .expect("put task")
}

/// A `MemoryStore` whose gets take `ms` milliseconds, holding `k`.
async fn slow_reads(ms: u64, k: &Key) -> Faulty<MemoryStore> {
    let store = Faulty::new(MemoryStore::new());
    store.put_bytes(k, payload(1024)).await.expect("put");
    store.inject(Rule::new(FaultOp::Get, Fault::Latency(Duration::from_millis(ms))));
    store
}

/// Times `n` gets of `k`.
async fn gets(store: &dyn Backend, k: &Key, n: u64) -> Duration {
    let start = Instant::now();
    for _ in 0..n {
        store.get_bytes(k).await.expect("get");
    }
    start.elapsed()
}

/// The stores of the read-latency lines: the 1 ms store alone, and replicas of a 1 ms
/// and a 5 ms sync store in either order (written through the replica, so that an answer
/// from the secondary is vouched for).
struct LatencyStores {
    alone: Faulty<MemoryStore>,
    fast_primary: Replica,
    slow_primary: Replica,
}

async fn latency_stores(k: &Key) -> LatencyStores {
    let mut replicas = Vec::new();
    for (first, second) in [(1, 5), (5, 1)] {
        let (a, b) = (slow_reads(first, k).await, slow_reads(second, k).await);
        let replica = Replica::builder()
            .sync_store(a)
            .sync_store(b)
            .build()
            .expect("replica");
        replica.put_bytes(k, payload(1024)).await.expect("put");
        replicas.push(replica);
    }
    let slow_primary = replicas.pop().expect("two replicas");
    let fast_primary = replicas.pop().expect("two replicas");
    LatencyStores {
        alone: slow_reads(1, k).await,
        fast_primary,
        slow_primary,
    }
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
    // Milliseconds per call: ten samples are plenty.
    let mut g = c.benchmark_group("replica");
    g.throughput(Throughput::Elements(1));
    g.sample_size(10);
    for (name, durability) in [("durable", Durability::Full), ("no_sync", Durability::None)] {
        g.bench_function(format!("put_1KiB/fs_{name}_alone"), |b| {
            b.to_async(&rt)
                .iter_custom(|iters| fs_puts_in_task(iters, &keys, durability, false))
        });
        g.bench_function(format!("put_1KiB/sync_fs_{name}+async_memory"), |b| {
            b.to_async(&rt)
                .iter_custom(|iters| fs_puts_in_task(iters, &keys, durability, true))
        });
    }
    let k = key("bench/read");
    let stores = rt.block_on(latency_stores(&k));
    g.bench_function("get_1KiB/1ms_alone", |b| {
        b.to_async(&rt)
            .iter_custom(|iters| gets(&stores.alone, &k, iters))
    });
    g.bench_function("get_1KiB/sync_1ms+5ms", |b| {
        b.to_async(&rt)
            .iter_custom(|iters| gets(&stores.fast_primary, &k, iters))
    });
    g.bench_function("get_1KiB/sync_5ms+1ms", |b| {
        b.to_async(&rt)
            .iter_custom(|iters| gets(&stores.slow_primary, &k, iters))
    });
    g.finish();
    paired_ratio(
        &rt,
        "replica/put_1KiB sync FsStore (default durability) + async MemoryStore ÷ FsStore",
        FS_DURABLE_CALLS,
        |n| fs_puts_in_task(n, &keys, Durability::Full, false),
        |n| fs_puts_in_task(n, &keys, Durability::Full, true),
    );
    paired_ratio(
        &rt,
        "replica/put_1KiB sync FsStore (Durability::None) + async MemoryStore ÷ FsStore",
        FS_NO_SYNC_CALLS,
        |n| fs_puts_in_task(n, &keys, Durability::None, false),
        |n| fs_puts_in_task(n, &keys, Durability::None, true),
    );
    paired_ratio(
        &rt,
        "replica/put_1KiB the same, called from outside the runtime (block_on)",
        FS_NO_SYNC_CALLS,
        |n| fs_puts(n, &keys, Durability::None, false),
        |n| fs_puts(n, &keys, Durability::None, true),
    );
    paired_ratio(
        &rt,
        "replica/get_1KiB sync 1 ms (primary) + 5 ms ÷ the 1 ms store",
        LATENCY_CALLS,
        |n| gets(&stores.alone, &k, n),
        |n| gets(&stores.fast_primary, &k, n),
    );
    paired_ratio(
        &rt,
        "replica/get_1KiB sync 5 ms (primary) + 1 ms ÷ the 1 ms store",
        LATENCY_CALLS,
        |n| gets(&stores.alone, &k, n),
        |n| gets(&stores.slow_primary, &k, n),
    );
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
