//! store-layers: what each layer, and the production stack, adds to a durable put.
//!
//! `cargo bench -p store-benches --bench layers -- --warm-up-time 1 --measurement-time 3`
//!
//! Spans and metrics are recorded for real: a `tracing` registry is the global subscriber
//! (every span at every level is created and its fields stored) and metrics-util's
//! debugging recorder the global `metrics` recorder.
//!
//! After criterion's figures it prints ratios measured interleaved (see
//! `store_benches::paired_ratio`), each side in a fresh directory every round: 1 KiB puts
//! into an `FsStore` with its default durability, through one layer ÷ the `FsStore` alone
//! (target ≤ 1.02× each), and through the stack Limit + Timeout + Trace + Metrics + Retry
//! ÷ the `FsStore` alone (target ≤ 1.05×).
//!
//! For information, criterion also times puts into a `MemoryStore` alone and under the
//! stack: the difference is the stack's own cost per call, without the I/O that hides it.

use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use store_benches::{key, paired_ratio, payload, runtime};
use store_core::{Backend, BackendExt, Key};
use store_fs::FsStore;
use store_layers::{Limit, Metrics, Prefix, Retry, Timeout, Trace};
use store_memory::MemoryStore;

/// Puts per side and round (each waits for the fsyncs of a durable put).
const FS_CALLS: u64 = 50;

/// The setups measured, by name: the store alone, each layer over it, and the stack.
const SETUPS: &[&str] = &[
    "alone", "retry", "timeout", "trace", "metrics", "limit", "prefix", "stack",
];

/// `store` under the setup `name`.
fn layered<B: Backend>(name: &str, store: B) -> Box<dyn Backend> {
    match name {
        "alone" => Box::new(store),
        "retry" => Box::new(store.layer(Retry::default())),
        "timeout" => Box::new(store.layer(Timeout::new(Duration::from_secs(30)))),
        "trace" => Box::new(store.layer(Trace::new("bench"))),
        "metrics" => Box::new(store.layer(Metrics::new("bench"))),
        "limit" => Box::new(store.layer(Limit::new(64))),
        "prefix" => Box::new(store.layer(Prefix::new("tenant").expect("prefix"))),
        "stack" => Box::new(
            store
                .layer(Limit::new(64))
                .layer(Timeout::new(Duration::from_secs(30)))
                .layer(Trace::new("bench"))
                .layer(Metrics::new("bench"))
                .layer(Retry::default()),
        ),
        other => unreachable!("no setup {other}"),
    }
}

/// Times `n` 1 KiB puts to distinct keys into a fresh `FsStore` (default durability) under
/// the setup `name`.
async fn puts(name: &str, n: u64, keys: &[Key]) -> Duration {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = layered(name, FsStore::open(dir.path()).await.expect("open FsStore"));
    let data = payload(1024);
    let started = Instant::now();
    for k in &keys[..n as usize] {
        store.put_bytes(k, data.clone()).await.expect("put");
    }
    started.elapsed()
}

fn durable_puts(c: &mut Criterion) {
    tracing::subscriber::set_global_default(tracing_subscriber::registry()).expect("one subscriber");
    metrics_util::debugging::DebuggingRecorder::new()
        .install()
        .expect("one recorder");
    let rt = runtime();
    let keys: Vec<Key> = (0..FS_CALLS).map(|i| key(&format!("bench/put-{i}"))).collect();

    let mut g = c.benchmark_group("layers");
    g.sample_size(20);
    g.throughput(Throughput::Bytes(1024));
    for name in SETUPS {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = layered(name, rt.block_on(FsStore::open(dir.path())).expect("open"));
        let (k, data) = (key("bench/put"), payload(1024));
        g.bench_function(format!("put_1KiB_full/{name}"), |b| {
            b.to_async(&rt)
                .iter(|| async { store.put_bytes(&k, data.clone()).await.expect("put") })
        });
    }
    for name in ["alone", "stack"] {
        let store = layered(name, MemoryStore::new());
        let (k, data) = (key("bench/put"), payload(1024));
        g.bench_function(format!("put_1KiB_memory/{name}"), |b| {
            b.to_async(&rt)
                .iter(|| async { store.put_bytes(&k, data.clone()).await.expect("put") })
        });
    }
    g.finish();

    for name in &SETUPS[1..] {
        paired_ratio(
            &rt,
            &format!("layers/put_1KiB FsStore (default durability) under {name} ÷ FsStore alone"),
            FS_CALLS,
            |n| puts("alone", n, &keys),
            |n| puts(name, n, &keys),
        );
    }
}

criterion_group!(benches, durable_puts);
criterion_main!(benches);
