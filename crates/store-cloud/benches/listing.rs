//! What listings cost, in requests per object and in time against the raw listing
//! underneath, over 10,000 objects:
//!
//! - `Records<FsStore>::list_keys` ÷ the `FsStore` listing (always run);
//! - on an S3 server: `CloudStore::list` (keys only; with write-id versions; with write ids
//!   off) and `Records<CloudStore>::list_keys` (no record with an expiry; a tenth with one)
//!   ÷ the raw object_store listing of the same objects, each with the HTTP requests it
//!   sent, counted by a connector under the client.
//!
//! ```text
//! bash scripts/seaweedfs.sh start && eval "$(bash scripts/seaweedfs.sh env)"
//! cargo bench -p store-cloud --bench listing
//! ```
//!
//! Without `STORE_S3_ENDPOINT` the S3 part prints a message and measures nothing. The S3
//! side uses the layout of `STORE_S3_LAYOUT` (nested unless `flat`, as the tests do), and
//! the raw listing lists the very objects the store holds. Ratios are medians of paired,
//! interleaved runs (raw, then candidate); criterion adds each listing's own time.

#![allow(missing_docs)]

#[path = "../tests/common/counting.rs"]
mod counting;
#[path = "../tests/common/many.rs"]
mod many;

use std::future::Future;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::Criterion;
use futures::TryStreamExt;
use futures::future::BoxFuture;
use object_store::ObjectStore;
use object_store::path::Path;
use store_cloud::{CloudStore, Layout, S3Config};
use store_core::{Backend, ListOptions};
use store_fs::{Durability, FsStore};
use store_record::Records;

use counting::{Requests, counted_s3};
use many::{N, count_keys, write_records};

fn config() -> Option<S3Config> {
    let endpoint = std::env::var("STORE_S3_ENDPOINT").ok()?;
    let var = |n: &str| std::env::var(n).unwrap_or_default();
    let layout = match std::env::var("STORE_S3_LAYOUT").as_deref() {
        Ok("flat") => Layout::Flat,
        _ => Layout::Nested,
    };
    Some(
        S3Config::new(var("STORE_S3_BUCKET"))
            .with_endpoint(endpoint)
            .with_region(std::env::var("STORE_S3_REGION").unwrap_or_else(|_| "us-east-1".into()))
            .with_credentials(var("STORE_S3_ACCESS_KEY"), var("STORE_S3_SECRET_KEY"))
            .with_layout(layout),
    )
}

/// `cargo bench` passes `--bench`; `cargo test --bench` runs everything once, quickly.
fn pairs() -> usize {
    if std::env::args().any(|a| a == "--bench") {
        15
    } else {
        1
    }
}

async fn timed<F: Future<Output = usize>>(f: F) -> Duration {
    let start = Instant::now();
    let n = f.await;
    let spent = start.elapsed();
    assert_eq!(n, N, "every object listed");
    spent
}

/// The median over `pairs` interleaved runs of candidate time ÷ raw time.
fn paired_ratio<R, RF, C, CF>(rt: &tokio::runtime::Runtime, pairs: usize, raw: R, candidate: C) -> f64
where
    R: Fn() -> RF,
    RF: Future<Output = usize>,
    C: Fn() -> CF,
    CF: Future<Output = usize>,
{
    let mut ratios: Vec<f64> = (0..pairs)
        .map(|_| {
            let r = rt.block_on(timed(raw()));
            let c = rt.block_on(timed(candidate()));
            c.as_secs_f64() / r.as_secs_f64()
        })
        .collect();
    ratios.sort_by(f64::total_cmp);
    ratios[ratios.len() / 2]
}

async fn count_listing<B: Backend>(store: &B, opts: ListOptions) -> usize {
    store
        .list(opts)
        .try_fold(0, |n, _| async move { Ok(n + 1) })
        .await
        .unwrap()
}

async fn count_raw(raw: &Arc<dyn ObjectStore>, under: &Path) -> usize {
    raw.list(Some(under))
        .try_fold(0, |n, _| async move { Ok(n + 1) })
        .await
        .unwrap()
}

fn fs_listing(c: &mut Criterion, rt: &tokio::runtime::Runtime) {
    let dir = tempfile::tempdir().expect("temp dir");
    // Filled without fsync (setup only); listed by a store with the default durability.
    let fill = rt
        .block_on(FsStore::builder(dir.path()).durability(Durability::None).open())
        .expect("open FsStore");
    rt.block_on(write_records(&Records::new(fill), 100, false));
    let fs = rt.block_on(FsStore::open(dir.path())).expect("open FsStore");
    let records = Records::new(fs.clone());
    let ratio = paired_ratio(
        rt,
        pairs(),
        || count_listing(&fs, ListOptions::default().with_prefix("many/")),
        || count_keys(&records),
    );
    println!("listing/fs: Records<FsStore>::list_keys ÷ FsStore::list, {N} records: {ratio:.2}×");
    let mut g = c.benchmark_group("listing/fs_10k");
    g.sample_size(10);
    g.bench_function("fs_store_list", |b| {
        b.to_async(rt).iter(|| async {
            black_box(count_listing(&fs, ListOptions::default().with_prefix("many/")).await)
        })
    });
    g.bench_function("records_list_keys", |b| {
        b.to_async(rt)
            .iter(|| async { black_box(count_keys(&records).await) })
    });
    g.finish();
}

/// One S3 data set: a store over a counted client, its records, and the raw listing root.
struct Set {
    store: CloudStore,
    records: Records<CloudStore>,
    under: Path,
}

fn cloud_set(
    rt: &tokio::runtime::Runtime,
    cfg: &S3Config,
    client: &Arc<dyn ObjectStore>,
    tenth_expiring: bool,
) -> Set {
    let prefix = format!("bench/listing/{}-{}", std::process::id(), tenth_expiring);
    let store = CloudStore::new(Arc::clone(client))
        .with_settings(cfg.settings.clone())
        .with_prefix(&prefix)
        .expect("prefix");
    rt.block_on(store.probe()).expect("probe");
    let records = Records::new(store.clone());
    rt.block_on(write_records(&records, 100, tenth_expiring));
    Set {
        store,
        records,
        under: Path::from(prefix),
    }
}

fn cloud_listing(c: &mut Criterion, rt: &tokio::runtime::Runtime, cfg: &S3Config) {
    let (client, requests): (Arc<dyn ObjectStore>, Arc<Requests>) = counted_s3(cfg);
    let plain = cloud_set(rt, cfg, &client, false);
    let expiring = cloud_set(rt, cfg, &client, true);
    let etag_only = plain
        .store
        .clone()
        .with_settings(cfg.settings.clone().with_write_ids(false));
    let keys_only = || ListOptions::default().with_keys_only(true);

    let before = requests.snapshot();
    rt.block_on(count_raw(&client, &plain.under));
    let spent = requests.snapshot() - before;
    println!(
        "listing/s3: raw object_store list, {N} objects: {:.4} requests per object ({spent})",
        spent.total() as f64 / N as f64
    );
    type Candidate = Box<dyn Fn() -> BoxFuture<'static, usize>>;
    let listing = |store: &CloudStore, opts: ListOptions| -> Candidate {
        let store = store.clone();
        Box::new(move || {
            let (store, opts) = (store.clone(), opts.clone());
            Box::pin(async move { count_listing(&store, opts).await })
        })
    };
    let keys = |records: &Records<CloudStore>| -> Candidate {
        let records = records.clone();
        Box::new(move || {
            let records = records.clone();
            Box::pin(async move { count_keys(&records).await })
        })
    };
    let candidates: [(&str, &Set, Candidate); 5] = [
        (
            "CloudStore::list, keys only",
            &plain,
            listing(&plain.store, keys_only()),
        ),
        (
            "CloudStore::list, write ids off (ETag versions)",
            &plain,
            listing(&etag_only, ListOptions::default()),
        ),
        (
            "CloudStore::list, write-id versions (HEAD each)",
            &plain,
            listing(&plain.store, ListOptions::default()),
        ),
        (
            "Records<CloudStore>::list_keys, no expiry",
            &plain,
            keys(&plain.records),
        ),
        (
            "Records<CloudStore>::list_keys, a tenth with an expiry",
            &expiring,
            keys(&expiring.records),
        ),
    ];
    for (what, set, candidate) in &candidates {
        let before = requests.snapshot();
        assert_eq!(rt.block_on(candidate()), N);
        let spent = requests.snapshot() - before;
        let ratio = paired_ratio(rt, pairs(), || count_raw(&client, &set.under), candidate);
        println!(
            "listing/s3: {what}, {N} objects: {:.4} requests per object ({spent}); {ratio:.2}× the raw listing",
            spent.total() as f64 / N as f64
        );
    }

    let mut g = c.benchmark_group("listing/s3_10k");
    g.sample_size(10);
    g.bench_function("raw_object_store_list", |b| {
        b.to_async(rt)
            .iter(|| async { black_box(count_raw(&client, &plain.under).await) })
    });
    g.bench_function("cloud_store_list_keys_only", |b| {
        b.to_async(rt)
            .iter(|| async { black_box(count_listing(&plain.store, keys_only()).await) })
    });
    g.bench_function("records_list_keys_no_expiry", |b| {
        b.to_async(rt)
            .iter(|| async { black_box(count_keys(&plain.records).await) })
    });
    g.bench_function("records_list_keys_tenth_expiring", |b| {
        b.to_async(rt)
            .iter(|| async { black_box(count_keys(&expiring.records).await) })
    });
    g.finish();
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let mut c = Criterion::default().configure_from_args();
    fs_listing(&mut c, &rt);
    match config() {
        Some(cfg) => cloud_listing(&mut c, &rt, &cfg),
        None => eprintln!(
            "skipping the S3 listings: STORE_S3_ENDPOINT is unset \
             (run `bash scripts/seaweedfs.sh start` and `eval \"$(bash scripts/seaweedfs.sh env)\"`)"
        ),
    }
    c.final_summary();
}
