//! `ObjectStoreAdapter`: what putting a store behind `object_store::ObjectStore` costs.
//!
//! `cargo bench -p store-benches --bench adapter -- --warm-up-time 1 --measurement-time 1`
//!
//! Ratios measured interleaved (see `store_benches::paired_ratio`), 1 KiB objects:
//! - `ObjectStoreAdapter<FsStore>` ÷ `FsStore` directly, default durability, each side in a
//!   fresh directory: put and get (target ≤ 1.05× each);
//! - `ObjectStoreAdapter<MemoryStore>` ÷ object_store's own `InMemory`: put and get
//!   (target ≤ 1.3×);
//! - where that ratio comes from: `MemoryStore` called directly ÷ `InMemory` (the store
//!   underneath, each through its own trait), and `ObjectStoreAdapter<MemoryStore>` ÷
//!   `MemoryStore` called directly (the adapter's own work).
//!
//! The criterion group times the adapter's put and get over `MemoryStore`.

use criterion::{Criterion, criterion_group, criterion_main};
use store_benches::{key, paired_ratio, payload, runtime, time_calls};
use store_cloud::ObjectStoreAdapter;
use store_cloud::object_store::memory::InMemory;
use store_cloud::object_store::path::Path;
use store_cloud::object_store::{ObjectStore, ObjectStoreExt};
use store_core::{Backend, BackendExt, Key};
use store_fs::FsStore;
use store_memory::MemoryStore;

const SIZE: usize = 1024;
/// Calls per side and round over `FsStore` (each durable put waits for fsyncs).
const FS_CALLS: u64 = 50;
/// Calls per side and round over the in-memory stores.
const MEMORY_CALLS: u64 = 20_000;

async fn fresh_fs() -> (tempfile::TempDir, FsStore) {
    let dir = tempfile::tempdir().expect("tempdir");
    let fs = FsStore::open(dir.path()).await.expect("open FsStore");
    (dir, fs)
}

async fn os_puts(store: &dyn ObjectStore, path: &Path, n: u64) -> std::time::Duration {
    let data = payload(SIZE);
    time_calls(n, || async {
        store.put(path, data.clone().into()).await.expect("put");
    })
    .await
}

async fn os_gets(store: &dyn ObjectStore, path: &Path, n: u64) -> std::time::Duration {
    time_calls(n, || async {
        store.get(path).await.expect("get").bytes().await.expect("body");
    })
    .await
}

async fn store_puts(store: &impl Backend, k: &Key, n: u64) -> std::time::Duration {
    let data = payload(SIZE);
    time_calls(n, || async {
        store.put_bytes(k, data.clone()).await.expect("put");
    })
    .await
}

async fn store_gets(store: &impl Backend, k: &Key, n: u64) -> std::time::Duration {
    time_calls(n, || async {
        store.get_bytes(k).await.expect("get");
    })
    .await
}

fn ratios(rt: &tokio::runtime::Runtime) {
    let (k, path) = (key("bench/object"), Path::from("bench/object"));
    paired_ratio(
        rt,
        "ObjectStoreAdapter<FsStore> put ÷ FsStore put (durable, 1 KiB)",
        FS_CALLS,
        |n| {
            let k = k.clone();
            async move {
                let (_dir, fs) = fresh_fs().await;
                store_puts(&fs, &k, n).await
            }
        },
        |n| {
            let path = path.clone();
            async move {
                let (_dir, fs) = fresh_fs().await;
                os_puts(&ObjectStoreAdapter::new(fs), &path, n).await
            }
        },
    );
    let (_a, fs) = rt.block_on(fresh_fs());
    let (_b, adapted) = rt.block_on(fresh_fs());
    let adapted = ObjectStoreAdapter::new(adapted);
    rt.block_on(async {
        fs.put_bytes(&k, payload(SIZE)).await.unwrap();
        adapted.put(&path, payload(SIZE).into()).await.unwrap();
    });
    paired_ratio(
        rt,
        "ObjectStoreAdapter<FsStore> get ÷ FsStore get (1 KiB)",
        FS_CALLS * 20,
        |n| store_gets(&fs, &k, n),
        |n| os_gets(&adapted, &path, n),
    );

    let memory = InMemory::new();
    let ours = ObjectStoreAdapter::new(MemoryStore::new());
    paired_ratio(
        rt,
        "ObjectStoreAdapter<MemoryStore> put ÷ object_store InMemory put (1 KiB)",
        MEMORY_CALLS,
        |n| os_puts(&memory, &path, n),
        |n| os_puts(&ours, &path, n),
    );
    paired_ratio(
        rt,
        "ObjectStoreAdapter<MemoryStore> get ÷ object_store InMemory get (1 KiB)",
        MEMORY_CALLS,
        |n| os_gets(&memory, &path, n),
        |n| os_gets(&ours, &path, n),
    );

    let direct = MemoryStore::new();
    paired_ratio(
        rt,
        "MemoryStore put (directly) ÷ object_store InMemory put (1 KiB)",
        MEMORY_CALLS,
        |n| os_puts(&memory, &path, n),
        |n| store_puts(&direct, &k, n),
    );
    paired_ratio(
        rt,
        "MemoryStore get (directly) ÷ object_store InMemory get (1 KiB)",
        MEMORY_CALLS,
        |n| os_gets(&memory, &path, n),
        |n| store_gets(&direct, &k, n),
    );
    paired_ratio(
        rt,
        "ObjectStoreAdapter<MemoryStore> put ÷ MemoryStore put (directly, 1 KiB)",
        MEMORY_CALLS,
        |n| store_puts(&direct, &k, n),
        |n| os_puts(&ours, &path, n),
    );
    paired_ratio(
        rt,
        "ObjectStoreAdapter<MemoryStore> get ÷ MemoryStore get (directly, 1 KiB)",
        MEMORY_CALLS,
        |n| store_gets(&direct, &k, n),
        |n| os_gets(&ours, &path, n),
    );
}

fn adapter(c: &mut Criterion) {
    let rt = runtime();
    let store = ObjectStoreAdapter::new(MemoryStore::new());
    let path = Path::from("bench/object");
    let data = payload(SIZE);
    // The get benchmark reads what is there, also when it runs alone (a filtered run).
    rt.block_on(store.put(&path, data.clone().into())).expect("seed");
    let mut g = c.benchmark_group("adapter");
    g.bench_function("put 1 KiB (MemoryStore)", |b| {
        b.to_async(&rt)
            .iter(|| async { store.put(&path, data.clone().into()).await.unwrap() })
    });
    g.bench_function("get 1 KiB (MemoryStore)", |b| {
        b.to_async(&rt)
            .iter(|| async { store.get(&path).await.unwrap().bytes().await.unwrap() })
    });
    g.finish();
    ratios(&rt);
}

criterion_group!(benches, adapter);
criterion_main!(benches);
