//! Fan-out cost: `Multi` over three `MemoryStore`s versus one `MemoryStore`, per write mode.
//!
//! Targets (issue #4): at most 3.5× a single put for 1 KiB, at most 1.5× for a 4 MiB
//! streamed put (chunks are shared `Bytes`, never copied per backend).
//!
//! `cargo bench -p store-benches --bench multi -- --warm-up-time 1 --measurement-time 3`

use std::sync::Arc;

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use store_benches::{key, payload, runtime};
use store_core::{Backend, PutOptions};
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

criterion_group!(benches, put_1kib, stream_4mib);
criterion_main!(benches);
