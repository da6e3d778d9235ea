//! CloudStore versus the raw object_store client on the same S3 server.
//!
//! ```text
//! bash scripts/seaweedfs.sh start && eval "$(bash scripts/seaweedfs.sh env)"
//! cargo bench -p store-cloud --bench cloud -- --warm-up-time 1 --measurement-time 3
//! ```
//!
//! Without `STORE_S3_ENDPOINT` it prints a message and measures nothing. Both sides use the
//! flat layout and the same connection settings, so the difference is the adapter's own
//! work (write ids, version tokens, error mapping, the writer's buffering).

#![allow(missing_docs)]

use std::hint::black_box;
use std::sync::Arc;

use bytes::Bytes;
use criterion::{Criterion, Throughput};
use object_store::path::Path;
use object_store::{
    Attribute, AttributeValue, Attributes, ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart,
};
use store_cloud::{CloudStore, Layout, S3Config};
use store_core::{Backend, BackendExt, Key, PutOptions};

const SMALL: usize = 1024;
const BIG: usize = 16 << 20;
const CHUNK: usize = 1 << 20;

fn config() -> Option<S3Config> {
    let endpoint = std::env::var("STORE_S3_ENDPOINT").ok()?;
    let var = |n: &str| std::env::var(n).unwrap_or_default();
    Some(
        S3Config::new(var("STORE_S3_BUCKET"))
            .with_endpoint(endpoint)
            .with_region(std::env::var("STORE_S3_REGION").unwrap_or_else(|_| "us-east-1".into()))
            .with_credentials(var("STORE_S3_ACCESS_KEY"), var("STORE_S3_SECRET_KEY"))
            .with_layout(Layout::Flat),
    )
}

fn benches(c: &mut Criterion, cfg: S3Config) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let prefix = format!("bench/{}", std::process::id());
    let raw: Arc<dyn ObjectStore> = cfg.object_store().expect("raw client");
    let store: CloudStore = rt
        .block_on(cfg.with_prefix(prefix.clone()).connect())
        .expect("connect and probe");
    let small = Bytes::from(vec![7u8; SMALL]);
    let key = Key::new("small").unwrap();
    let raw_path = Path::from(format!("{prefix}/raw-small"));
    rt.block_on(async {
        store.put_bytes(&key, small.clone()).await.unwrap();
        raw.put(&raw_path, PutPayload::from_bytes(small.clone()))
            .await
            .unwrap();
    });

    let mut g = c.benchmark_group("put_1kib");
    g.throughput(Throughput::Bytes(SMALL as u64));
    g.bench_function("cloud_store", |b| {
        b.to_async(&rt).iter(|| async {
            black_box(
                store
                    .put(&key, small.clone(), PutOptions::default())
                    .await
                    .unwrap(),
            );
        })
    });
    g.bench_function("raw_object_store", |b| {
        b.to_async(&rt).iter(|| async {
            black_box(
                raw.put(&raw_path, PutPayload::from_bytes(small.clone()))
                    .await
                    .unwrap(),
            );
        })
    });
    // The raw client writing what CloudStore writes: the same bytes plus one user-metadata
    // header (a random write id, what makes versions unique when ETags repeat). The gap
    // between this and `raw_object_store` is the server storing that header; the gap
    // between `cloud_store` and this is the adapter's own work.
    g.bench_function("raw_object_store_with_write_id", |b| {
        b.to_async(&rt).iter(|| async {
            let mut attributes = Attributes::new();
            attributes.insert(
                Attribute::Metadata("store-write-id".into()),
                AttributeValue::from(format!("{:032x}", rand_id())),
            );
            let opts = object_store::PutOptions {
                attributes,
                ..Default::default()
            };
            black_box(
                raw.put_opts(&raw_path, PutPayload::from_bytes(small.clone()), opts)
                    .await
                    .unwrap(),
            );
        })
    });
    g.finish();

    let mut g = c.benchmark_group("get_1kib");
    g.throughput(Throughput::Bytes(SMALL as u64));
    g.bench_function("cloud_store", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(store.get_bytes(&key).await.unwrap()) })
    });
    g.bench_function("raw_object_store", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(raw.get(&raw_path).await.unwrap().bytes().await.unwrap()) })
    });
    g.finish();

    let chunks: Vec<Bytes> = (0..BIG / CHUNK)
        .map(|i| Bytes::from(vec![i as u8; CHUNK]))
        .collect();
    let big_key = Key::new("big").unwrap();
    let big_path = Path::from(format!("{prefix}/raw-big"));
    let part_size = store.settings().part_size;
    let concurrency = store.settings().upload_concurrency;
    let mut g = c.benchmark_group("streamed_put_16mib");
    g.throughput(Throughput::Bytes(BIG as u64));
    g.sample_size(10);
    g.bench_function("cloud_store", |b| {
        b.to_async(&rt).iter(|| async {
            let mut w = store.writer(&big_key, PutOptions::default()).await.unwrap();
            for c in &chunks {
                w.write(c.clone()).await.unwrap();
            }
            black_box(w.close().await.unwrap())
        })
    });
    g.bench_function("raw_object_store", |b| {
        b.to_async(&rt).iter(|| async {
            let upload = raw.put_multipart(&big_path).await.unwrap();
            let mut w = WriteMultipart::new_with_chunk_size(upload, part_size);
            for c in &chunks {
                w.put(c.clone());
                w.wait_for_capacity(concurrency).await.unwrap();
            }
            black_box(w.finish().await.unwrap())
        })
    });
    g.finish();
}

/// A random 128-bit write id, as CloudStore makes one (from the same source of randomness).
fn rand_id() -> u128 {
    let mut raw = [0u8; 16];
    getrandom::fill(&mut raw).expect("randomness");
    u128::from_be_bytes(raw)
}

fn main() {
    let Some(cfg) = config() else {
        eprintln!(
            "skipping store-cloud benchmarks: STORE_S3_ENDPOINT is unset \
             (run `bash scripts/seaweedfs.sh start` and `eval \"$(bash scripts/seaweedfs.sh env)\"`)"
        );
        return;
    };
    let mut c = Criterion::default().configure_from_args();
    benches(&mut c, cfg);
    c.final_summary();
}
