//! MemoryStore: 1 KiB put, get, CAS update, listing 10k keys, 16 concurrent putters.
//!
//! `cargo xtask bench -- memory` (or `cargo bench -p store-benches --bench memory`).
//! The side-by-side comparison with object_store and OpenDAL is `cargo xtask bench --compare`.

use std::sync::Arc;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use futures::TryStreamExt;
use store_benches::{key, payload, runtime};
use store_core::{Backend, BackendExt, GetOptions, ListOptions, PutOptions};
use store_memory::MemoryStore;

fn single_ops(c: &mut Criterion) {
    let rt = runtime();
    let store = MemoryStore::new();
    let data = payload(1024);
    let k = key("bench/object");
    let mut g = c.benchmark_group("memory");
    g.throughput(Throughput::Elements(1));

    g.bench_function("put_1KiB", |b| {
        b.to_async(&rt)
            .iter(|| async { store.put(&k, data.clone(), PutOptions::default()).await.unwrap() })
    });
    rt.block_on(store.put_bytes(&k, data.clone())).unwrap();
    g.bench_function("get_1KiB", |b| {
        b.to_async(&rt).iter(|| async {
            store
                .get(&k, GetOptions::default())
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap()
        })
    });
    g.bench_function("cas_update_1KiB", |b| {
        let mut version = rt.block_on(store.head(&k)).unwrap().version;
        b.iter(|| {
            version = rt
                .block_on(store.put(&k, data.clone(), PutOptions::update(version.clone())))
                .unwrap()
                .version;
        })
    });
    g.bench_function("create_delete_1KiB", |b| {
        let fresh = key("bench/fresh");
        b.to_async(&rt).iter(|| async {
            store.create(&fresh, data.clone()).await.unwrap();
            store.delete_if_exists(&fresh).await.unwrap()
        })
    });
    g.finish();
}

fn listing(c: &mut Criterion) {
    let rt = runtime();
    let store = MemoryStore::new();
    rt.block_on(async {
        for i in 0..10_000 {
            store.put_bytes(&key(&format!("list/{i:05}")), "x").await.unwrap();
        }
    });
    let mut g = c.benchmark_group("memory");
    g.throughput(Throughput::Elements(10_000));
    g.bench_function("list_10k", |b| {
        b.to_async(&rt).iter(|| async {
            let n = store
                .list(ListOptions::default().with_prefix("list/"))
                .try_fold(0usize, |n, _| async move { Ok(n + 1) })
                .await
                .unwrap();
            assert_eq!(n, 10_000);
        })
    });
    g.finish();
}

fn concurrent_puts(c: &mut Criterion) {
    let rt = runtime();
    let store = Arc::new(MemoryStore::new());
    let data = payload(1024);
    let mut g = c.benchmark_group("memory");
    const TASKS: usize = 16;
    const PER_TASK: usize = 64;
    g.throughput(Throughput::Elements((TASKS * PER_TASK) as u64));
    g.bench_with_input(
        BenchmarkId::new("concurrent_put_1KiB", TASKS),
        &TASKS,
        |b, &tasks| {
            b.to_async(&rt).iter(|| {
                let store = Arc::clone(&store);
                let data = data.clone();
                async move {
                    let handles: Vec<_> = (0..tasks)
                        .map(|t| {
                            let (store, data) = (Arc::clone(&store), data.clone());
                            tokio::spawn(async move {
                                for i in 0..PER_TASK {
                                    let k = key(&format!("c/{t}/{}", i % 8));
                                    store.put(&k, data.clone(), PutOptions::default()).await.unwrap();
                                }
                            })
                        })
                        .collect();
                    for h in handles {
                        h.await.unwrap();
                    }
                }
            })
        },
    );
    g.finish();
}

criterion_group!(benches, single_ops, listing, concurrent_puts);
criterion_main!(benches);
