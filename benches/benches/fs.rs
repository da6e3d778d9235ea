//! FsStore: durable (Full) and non-durable puts of 1 KiB and 4 MiB, gets, listing 10k
//! keys, CAS update, 16 concurrent durable puts.
//!
//! `cargo bench -p store-benches --bench fs` (the store lives in a temp directory, so the
//! figures are those of the file system under `$TMPDIR`). The side-by-side comparison with
//! object_store's LocalFileSystem is `cargo xtask bench --compare`.

use std::sync::Arc;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use futures::TryStreamExt;
use store_benches::{key, payload, runtime};
use store_core::{Backend, BackendExt, GetOptions, ListOptions, PutOptions};
use store_fs::{Durability, FsStore};

fn open(rt: &tokio::runtime::Runtime, dir: &tempfile::TempDir, durability: Durability) -> FsStore {
    rt.block_on(FsStore::builder(dir.path()).durability(durability).open())
        .expect("open FsStore")
}

fn puts(c: &mut Criterion) {
    let rt = runtime();
    let mut g = c.benchmark_group("fs");
    g.sample_size(20);
    for (durability, label) in [(Durability::Full, "full"), (Durability::None, "none")] {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&rt, &dir, durability);
        for (size, size_label) in [(1usize << 10, "1KiB"), (4 << 20, "4MiB")] {
            let data = payload(size);
            let k = key(&format!("bench/put-{size_label}"));
            g.throughput(Throughput::Bytes(size as u64));
            g.bench_function(format!("put_{size_label}_{label}"), |b| {
                b.to_async(&rt)
                    .iter(|| async { store.put(&k, data.clone(), PutOptions::default()).await.unwrap() })
            });
        }
    }
    g.finish();
}

fn gets_and_cas(c: &mut Criterion) {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let store = open(&rt, &dir, Durability::Full);
    let mut g = c.benchmark_group("fs");
    g.sample_size(20);
    for (size, size_label) in [(1usize << 10, "1KiB"), (4 << 20, "4MiB")] {
        let k = key(&format!("bench/get-{size_label}"));
        rt.block_on(store.put_bytes(&k, payload(size))).unwrap();
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_function(format!("get_{size_label}"), |b| {
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
    }
    let data = payload(1024);
    let k = key("bench/cas");
    g.throughput(Throughput::Elements(1));
    g.bench_function("cas_update_1KiB_full", |b| {
        let mut version = rt.block_on(store.put_bytes(&k, data.clone())).unwrap().version;
        b.iter(|| {
            version = rt
                .block_on(store.put(&k, data.clone(), PutOptions::update(version.clone())))
                .unwrap()
                .version;
        })
    });
    g.bench_function("read_then_cas_update_1KiB_full", |b| {
        b.to_async(&rt).iter(|| async {
            let version = store.head(&k).await.unwrap().version;
            store.update(&k, data.clone(), version).await.unwrap()
        })
    });
    g.finish();
}

fn listing(c: &mut Criterion) {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let store = open(&rt, &dir, Durability::None);
    rt.block_on(async {
        for i in 0..10_000 {
            store.put_bytes(&key(&format!("list/{i:05}")), "x").await.unwrap();
        }
    });
    let mut g = c.benchmark_group("fs");
    g.sample_size(10);
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
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(open(&rt, &dir, Durability::Full));
    let data = payload(1024);
    let mut g = c.benchmark_group("fs");
    g.sample_size(10);
    const TASKS: usize = 16;
    const PER_TASK: usize = 8;
    g.throughput(Throughput::Elements((TASKS * PER_TASK) as u64));
    g.bench_with_input(
        BenchmarkId::new("concurrent_put_1KiB_full", TASKS),
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
                                    let k = key(&format!("c/{t}-{}", i % 4));
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

criterion_group!(benches, puts, gets_and_cas, listing, concurrent_puts);
criterion_main!(benches);
