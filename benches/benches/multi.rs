//! Fan-out cost: what `Multi` adds to the I/O it must do.
//!
//! `cargo bench -p store-benches --bench multi -- --warm-up-time 1 --measurement-time 3`
//!
//! After criterion's figures it prints ratios measured interleaved (see
//! `store_benches::paired_ratio`):
//! - `Multi` `All` over three `FsStore`s ÷ the same three puts joined with nothing else,
//!   durable and with `Durability::None` (fresh directories every round);
//! - over stores that each add a fixed latency to every put (1, 2 and 5 ms): `Multi`
//!   `Quorum` ÷ the 2 ms store, `MultiWriter::put` `Quorum` ÷ the 2 ms store (it returns at
//!   the majority; `Multi`'s `Backend::put` waits for every backend to name them all in
//!   its version), and `Multi` `All` ÷ the 5 ms store — the fan-out overlaps its backends;
//! - over `MemoryStore`s, each mode ÷ one store, and the floor of the 1 KiB row (three bare
//!   puts joined): information, not targets — nothing hides a fan-out's fixed costs there.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use futures::future::BoxFuture;
use store_benches::{key, paired_ratio, payload, runtime};
use store_core::{Backend, Key, PutOptions};
use store_fs::{Durability, FsStore};
use store_memory::MemoryStore;
use store_multi::{Multi, MultiWriter, WriteMode};
use store_testkit::{Fault, FaultOp, Faulty, Rule};

const STREAM_LEN: usize = 4 << 20;
const CHUNK: usize = 64 << 10;

fn targets() -> Vec<(String, Arc<dyn Backend>)> {
    let mut out: Vec<(String, Arc<dyn Backend>)> = vec![("single".into(), Arc::new(MemoryStore::new()))];
    for mode in [WriteMode::All, WriteMode::BestEffort, WriteMode::Quorum] {
        let backends: Vec<Arc<dyn Backend>> = (0..3).map(|_| Arc::new(MemoryStore::new()) as _).collect();
        let multi = Multi::builder(backends)
            .mode(mode)
            .build()
            .expect("three backends");
        out.push((format!("multi3-{mode:?}"), Arc::new(multi)));
    }
    out
}

fn put_1kib(c: &mut Criterion) {
    let rt = runtime();
    let data = payload(1024);
    let k = key("bench/small");
    let mut group = c.benchmark_group("multi/put_1KiB");
    group.throughput(Throughput::Bytes(data.len() as u64));
    for (name, store) in targets() {
        group.bench_function(BenchmarkId::from_parameter(&name), |b| {
            b.to_async(&rt).iter(|| {
                let (store, k, data) = (Arc::clone(&store), k.clone(), data.clone());
                async move { store.put(&k, data, PutOptions::default()).await.expect("put") }
            })
        });
    }
    group.finish();
}

fn stream_4mib(c: &mut Criterion) {
    let rt = runtime();
    let data = payload(STREAM_LEN);
    let chunks: Vec<Bytes> = (0..STREAM_LEN / CHUNK)
        .map(|i| data.slice(i * CHUNK..(i + 1) * CHUNK))
        .collect();
    let k = key("bench/stream");
    let mut group = c.benchmark_group("multi/stream_4MiB");
    group.throughput(Throughput::Bytes(STREAM_LEN as u64));
    group.sample_size(20);
    for (name, store) in targets() {
        group.bench_function(BenchmarkId::from_parameter(&name), |b| {
            b.to_async(&rt).iter(|| {
                let (store, k, chunks) = (Arc::clone(&store), k.clone(), chunks.clone());
                async move {
                    let mut w = store.writer(&k, PutOptions::default()).await.expect("writer");
                    for c in chunks {
                        w.write(c).await.expect("write");
                    }
                    w.close().await.expect("close")
                }
            })
        });
    }
    group.finish();
}

/// Times `n` 1 KiB puts.
async fn puts(store: &dyn Backend, k: &Key, data: &Bytes, n: u64) -> Duration {
    let started = Instant::now();
    for _ in 0..n {
        store
            .put(k, data.clone(), PutOptions::default())
            .await
            .expect("put");
    }
    started.elapsed()
}

/// Times `n` streamed puts of `chunks`.
async fn streams(store: &dyn Backend, k: &Key, chunks: &[Bytes], n: u64) -> Duration {
    let started = Instant::now();
    for _ in 0..n {
        let mut w = store.writer(k, PutOptions::default()).await.expect("writer");
        for c in chunks {
            w.write(c.clone()).await.expect("write");
        }
        w.close().await.expect("close");
    }
    started.elapsed()
}

/// Each multi ÷ single ratio, measured interleaved.
fn paired(_: &mut Criterion) {
    let rt = runtime();
    let data = payload(1024);
    let big = payload(STREAM_LEN);
    let chunks: Vec<Bytes> = (0..STREAM_LEN / CHUNK)
        .map(|i| big.slice(i * CHUNK..(i + 1) * CHUNK))
        .collect();
    let k = key("bench/paired");
    let mut all = targets().into_iter();
    let (_, single) = all.next().expect("the single store comes first");
    // The floor of any fan-out that is itself a `Backend` over `Arc<dyn Backend>`s: the
    // three puts alone, joined in one boxed future (as a `Backend` method's is), with no
    // lock, no composite version and no report.
    let bare: Vec<Arc<dyn Backend>> = (0..3).map(|_| Arc::new(MemoryStore::new()) as _).collect();
    let (single_ref, bare, k_ref, data_ref) = (&*single, &bare, &k, &data);
    paired_ratio(
        &rt,
        "multi/put_1KiB bare join of 3 puts (the floor) ÷ single",
        20_000,
        |n| puts(single_ref, k_ref, data_ref, n),
        |n| async move {
            let started = Instant::now();
            for _ in 0..n {
                let fan_out: futures::future::BoxFuture<'_, ()> = Box::pin(async {
                    let opts = PutOptions::default;
                    let (a, b, c) = futures::join!(
                        bare[0].put(k_ref, data_ref.clone(), opts()),
                        bare[1].put(k_ref, data_ref.clone(), opts()),
                        bare[2].put(k_ref, data_ref.clone(), opts()),
                    );
                    a.and(b).and(c).expect("put");
                });
                fan_out.await;
            }
            started.elapsed()
        },
    );
    for (name, multi) in all {
        let (single, multi, k, data, chunks) = (&*single, &*multi, &k, &data, &chunks);
        paired_ratio(
            &rt,
            &format!("multi/put_1KiB {name} ÷ single"),
            20_000,
            |n| puts(single, k, data, n),
            |n| puts(multi, k, data, n),
        );
        paired_ratio(
            &rt,
            &format!("multi/stream_4MiB {name} ÷ single"),
            20,
            |n| streams(single, k, chunks, n),
            |n| streams(multi, k, chunks, n),
        );
    }
}

/// Three `FsStore`s in fresh directories (kept alive by the returned guards).
async fn three_fs(durability: Durability) -> (Vec<tempfile::TempDir>, Vec<Arc<dyn Backend>>) {
    let mut dirs = Vec::new();
    let mut stores: Vec<Arc<dyn Backend>> = Vec::new();
    for _ in 0..3 {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = FsStore::builder(dir.path())
            .durability(durability)
            .open()
            .await
            .expect("open FsStore");
        stores.push(Arc::new(store));
        dirs.push(dir);
    }
    (dirs, stores)
}

/// `n` distinct keys, the same on both sides of a ratio.
fn keys(prefix: &str, n: u64) -> Vec<Key> {
    (0..n).map(|i| key(&format!("{prefix}/{i}"))).collect()
}

/// `Multi` `All` over three `FsStore`s ÷ the three bare puts joined, in fresh directories
/// every round.
fn paired_fs(_: &mut Criterion) {
    let rt = runtime();
    let data = payload(1024);
    for (durability, label, calls) in [
        (Durability::Full, "durable", 50),
        (Durability::None, "no fsync", 400),
    ] {
        let data = &data;
        paired_ratio(
            &rt,
            &format!("multi/put_1KiB All over 3 FsStore ({label}) ÷ 3 bare FsStore puts joined"),
            calls,
            |n| async move {
                let (_dirs, bare) = three_fs(durability).await;
                let keys = keys("fs", n);
                let started = Instant::now();
                for k in &keys {
                    let joined: BoxFuture<'_, ()> = Box::pin(async {
                        let opts = PutOptions::default;
                        let (a, b, c) = futures::join!(
                            bare[0].put(k, data.clone(), opts()),
                            bare[1].put(k, data.clone(), opts()),
                            bare[2].put(k, data.clone(), opts()),
                        );
                        a.and(b).and(c).expect("put");
                    });
                    joined.await;
                }
                started.elapsed()
            },
            |n| async move {
                let (_dirs, stores) = three_fs(durability).await;
                let multi = Multi::new(stores).expect("three backends");
                let keys = keys("fs", n);
                let started = Instant::now();
                for k in &keys {
                    multi
                        .put(k, data.clone(), PutOptions::default())
                        .await
                        .expect("put");
                }
                started.elapsed()
            },
        );
    }
}

/// A `MemoryStore` whose every put takes `ms` milliseconds longer.
fn delayed(ms: u64) -> Arc<dyn Backend> {
    let store = Faulty::new(MemoryStore::new());
    store.inject(Rule::new(FaultOp::Put, Fault::Latency(Duration::from_millis(ms))));
    Arc::new(store)
}

/// A fan-out over stores delayed 1, 2 and 5 ms.
fn over_delayed(mode: WriteMode) -> MultiWriter {
    MultiWriter::builder([delayed(1), delayed(2), delayed(5)])
        .mode(mode)
        .build_writer()
        .expect("three backends")
}

/// Times `n` 1 KiB puts to distinct keys.
async fn puts_to(store: &dyn Backend, prefix: &str, data: &Bytes, n: u64) -> Duration {
    let keys = keys(prefix, n);
    let started = Instant::now();
    for k in &keys {
        store
            .put(k, data.clone(), PutOptions::default())
            .await
            .expect("put");
    }
    started.elapsed()
}

/// Fan-outs over stores with a fixed latency ÷ the store they must wait for.
fn paired_latency(_: &mut Criterion) {
    let rt = runtime();
    let data = &payload(1024);
    let (two, five) = (&*delayed(2), &*delayed(5));
    let quorum = &Multi::from(over_delayed(WriteMode::Quorum));
    let all = &Multi::from(over_delayed(WriteMode::All));
    paired_ratio(
        &rt,
        "multi/put_1KiB Multi Quorum over 1/2/5 ms ÷ the 2 ms store",
        20,
        |n| puts_to(two, "latency", data, n),
        |n| puts_to(quorum, "latency", data, n),
    );
    // Distinct keys every round: a write of a key waits for the previous write's slow
    // backend, which it would otherwise measure.
    let round = &std::sync::atomic::AtomicU64::new(0);
    let fan = &over_delayed(WriteMode::Quorum);
    paired_ratio(
        &rt,
        "multi/put_1KiB MultiWriter::put Quorum over 1/2/5 ms ÷ the 2 ms store",
        20,
        |n| puts_to(two, "latency", data, n),
        |n| async move {
            let r = round.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let keys = keys(&format!("writer/{r}"), n);
            let started = Instant::now();
            for k in &keys {
                fan.put(k, data.clone(), PutOptions::default())
                    .await
                    .expect("put");
            }
            started.elapsed()
        },
    );
    paired_ratio(
        &rt,
        "multi/put_1KiB Multi All over 1/2/5 ms ÷ the 5 ms store",
        20,
        |n| puts_to(five, "latency", data, n),
        |n| puts_to(all, "latency", data, n),
    );
}

criterion_group!(benches, put_1kib, stream_4mib, paired, paired_fs, paired_latency);
criterion_main!(benches);
