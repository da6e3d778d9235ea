//! Fan-out cost: `Multi` over three `MemoryStore`s versus one `MemoryStore`, per write mode.
//!
//! Targets (issue #4): at most 3.5× a single put for 1 KiB, at most 1.5× for a 4 MiB
//! streamed put (chunks are shared `Bytes`, never copied per backend).
//!
//! `cargo bench -p store-benches --bench multi -- --warm-up-time 1 --measurement-time 3`
//!
//! After criterion's figures it prints each multi ÷ single ratio measured interleaved (see
//! `store_benches::paired_ratio`): those are the figures to compare with the targets. The
//! first line is the floor of the 1 KiB row: three bare puts joined, with none of a fan-out's
//! own work (it is above 3.5× on its own; see the crate docs).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use store_benches::{key, paired_ratio, payload, runtime};
use store_core::{Backend, Key, PutOptions};
use store_memory::MemoryStore;
use store_multi::{Multi, WriteMode};

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

criterion_group!(benches, put_1kib, stream_4mib, paired);
criterion_main!(benches);
