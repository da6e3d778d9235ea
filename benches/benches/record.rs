//! Records: what the record layer adds to the I/O it must do.
//!
//! `cargo bench -p store-benches --bench record -- --warm-up-time 1 --measurement-time 1`
//!
//! After criterion's figures it prints ratios measured interleaved (see
//! `store_benches::paired_ratio`):
//!
//! - over `FsStore` with its default durability, each side in a fresh directory every
//!   round, 128-byte values with an expiry: `Records<FsStore>` `put` ÷ the raw `put`, and a
//!   chain of `cas_by_version` ÷ a chain of raw conditional puts (target ≤ 1.05× each). A
//!   swap from a version the handle wrote is one conditional put and no read, as the raw
//!   chain is; the envelope adds 11 bytes to each object.
//! - for information only, the same operations over `MemoryStore` (get, put,
//!   compare-and-swap), for records with an expiry and without one, and a floor for `put`:
//!   the raw put of a fresh copy of the value behind an 11-byte header. There the envelope,
//!   its decode and the clock read are visible; `raw_get_then_cas` is the read a swap from
//!   an unremembered version makes before its conditional put.
//!
//! The criterion group times the `MemoryStore` operations one by one, and how soon a
//! `wait_for_version_change` wakes after a put.

use std::cell::RefCell;
use std::future::Future;
use std::time::{Duration, Instant, SystemTime};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use store_benches::{key, paired_ratio, payload, runtime, time_calls};
use store_core::{Backend, BackendExt, GetOptions, PutOptions, Record};
use store_fs::FsStore;
use store_memory::MemoryStore;
use store_record::Records;

const VALUE: usize = 128;
/// Calls per side and round of the interleaved ratios over `MemoryStore`.
const PAIRED_CALLS: u64 = 20_000;
/// Calls per side and round over `FsStore` (with the default durability each waits for
/// fsyncs).
const FS_CALLS: u64 = 50;

/// Times `iters` sequential runs of `op` inside one `block_on`, so the runtime's entry cost
/// is not part of the figure.
fn timed<F, Fut>(rt: &tokio::runtime::Runtime, iters: u64, op: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    rt.block_on(time_calls(iters, op))
}

fn overhead(c: &mut Criterion) {
    let rt = runtime();
    let raw = MemoryStore::new();
    let records = Records::new(MemoryStore::new());
    let data = payload(VALUE);
    let k = key("bench/record");
    let expiry = SystemTime::now() + Duration::from_secs(3600);
    // Built once, as the raw side's key and value are: a write borrows its record.
    let record = Record::new(k.clone(), data.clone()).with_expiry(expiry);
    rt.block_on(async {
        raw.put_bytes(&k, data.clone()).await.unwrap();
        records.put(&record).await.unwrap();
    });
    let mut g = c.benchmark_group("record");
    g.throughput(Throughput::Elements(1));

    g.bench_function("raw_put", |b| {
        b.iter_custom(|n| {
            timed(&rt, n, || async {
                raw.put(&k, data.clone(), PutOptions::default()).await.unwrap();
            })
        })
    });
    g.bench_function("records_put", |b| {
        b.iter_custom(|n| {
            timed(&rt, n, || async {
                records.put(&record).await.unwrap();
            })
        })
    });

    g.bench_function("raw_get", |b| {
        b.iter_custom(|n| {
            timed(&rt, n, || async {
                let got = raw.get(&k, GetOptions::default()).await.unwrap();
                assert_eq!(got.bytes().await.unwrap().len(), VALUE);
            })
        })
    });
    g.bench_function("records_get", |b| {
        b.iter_custom(|n| {
            timed(&rt, n, || async {
                assert_eq!(records.get(&k).await.unwrap().value.len(), VALUE);
            })
        })
    });

    g.bench_function("raw_cas", |b| {
        let mut version = rt.block_on(raw.head(&k)).unwrap().version;
        b.iter_custom(|n| {
            rt.block_on(async {
                let started = Instant::now();
                for _ in 0..n {
                    version = raw
                        .put(&k, data.clone(), PutOptions::update(version.clone()))
                        .await
                        .unwrap()
                        .version;
                }
                started.elapsed()
            })
        })
    });
    // The same work cas_by_version does on the raw store: read, check, conditional put.
    g.bench_function("raw_get_then_cas", |b| {
        b.iter_custom(|n| {
            timed(&rt, n, || async {
                let current = raw.get(&k, GetOptions::default()).await.unwrap();
                let version = current.meta.version.clone();
                assert_eq!(current.bytes().await.unwrap().len(), VALUE);
                raw.put(&k, data.clone(), PutOptions::update(version))
                    .await
                    .unwrap();
            })
        })
    });
    g.bench_function("records_cas_by_version", |b| {
        let mut next = record
            .clone()
            .with_version(rt.block_on(records.get(&k)).unwrap().version);
        b.iter_custom(|n| {
            rt.block_on(async {
                let started = Instant::now();
                for _ in 0..n {
                    next.version = records.cas_by_version(&next).await.unwrap();
                }
                started.elapsed()
            })
        })
    });
    g.finish();

    // Measured interleaved (see `paired_ratio`): over FsStore, the figures to compare with
    // the target; over MemoryStore, for records with an expiry (each read and swap also
    // reads the clock) and without one, for information.
    fs_overheads(&rt);
    paired_overheads(&rt, "with expiry", Some(expiry));
    paired_overheads(&rt, "no expiry", None);
}

/// A fresh `FsStore` with the default durability, in a fresh directory (dropped with it).
async fn fresh_fs() -> (tempfile::TempDir, FsStore) {
    let dir = tempfile::tempdir().expect("tempdir");
    let fs = FsStore::open(dir.path()).await.expect("open FsStore");
    (dir, fs)
}

/// Interleaved ratios of `Records<FsStore>` over the raw `FsStore`, each side on a fresh
/// store every round: `put` ÷ `put`, and a chain of `cas_by_version` from the version the
/// handle just wrote ÷ a chain of raw conditional puts.
fn fs_overheads(rt: &tokio::runtime::Runtime) {
    let data = &payload(VALUE);
    let k = &key("bench/record");
    let record =
        &Record::new(k.clone(), data.clone()).with_expiry(SystemTime::now() + Duration::from_secs(3600));
    paired_ratio(
        rt,
        "record/Records<FsStore> put ÷ FsStore put (default durability)",
        FS_CALLS,
        |n| async move {
            let (_dir, fs) = fresh_fs().await;
            let fs = &fs;
            time_calls(n, || async move {
                fs.put(k, data.clone(), PutOptions::default()).await.unwrap();
            })
            .await
        },
        |n| async move {
            let (_dir, fs) = fresh_fs().await;
            let records = &Records::new(fs);
            time_calls(n, || async move {
                records.put(record).await.unwrap();
            })
            .await
        },
    );
    paired_ratio(
        rt,
        "record/Records<FsStore> cas_by_version ÷ FsStore CAS (default durability)",
        FS_CALLS,
        |n| async move {
            let (_dir, fs) = fresh_fs().await;
            let mut version = fs
                .put(k, data.clone(), PutOptions::default())
                .await
                .unwrap()
                .version;
            let started = Instant::now();
            for _ in 0..n {
                version = fs
                    .put(k, data.clone(), PutOptions::update(version))
                    .await
                    .unwrap()
                    .version;
            }
            started.elapsed()
        },
        |n| async move {
            let (_dir, fs) = fresh_fs().await;
            let records = Records::new(fs);
            let mut next = record.clone();
            next.version = records.create(&next).await.unwrap();
            let started = Instant::now();
            for _ in 0..n {
                next.version = records.cas_by_version(&next).await.unwrap();
            }
            started.elapsed()
        },
    );
}

/// Interleaved ratios of the record operations over the raw ones, on fresh stores, for
/// records that expire at `expiry`.
fn paired_overheads(rt: &tokio::runtime::Runtime, case: &str, expiry: Option<SystemTime>) {
    let raw = &MemoryStore::new();
    let records = &Records::new(MemoryStore::new());
    let data = &payload(VALUE);
    let k = &key("bench/record");
    // Built once, as the raw side's key and value are: a write borrows its record.
    let record = &Record {
        expires_at: expiry,
        ..Record::new(k.clone(), data.clone())
    };
    rt.block_on(async {
        raw.put_bytes(k, data.clone()).await.unwrap();
        records.put(record).await.unwrap();
    });
    let raw_put = |n| {
        time_calls(n, || async move {
            raw.put(k, data.clone(), PutOptions::default()).await.unwrap();
        })
    };
    // The floor of any record layer that stores a header with the value: the raw put of a
    // freshly allocated copy with an 11-byte header in front.
    paired_ratio(
        rt,
        &format!("record/raw_put of a fresh header+value copy (the floor) ÷ raw_put ({case})"),
        PAIRED_CALLS,
        raw_put,
        |n| {
            time_calls(n, || async move {
                let mut copy = Vec::with_capacity(11 + data.len());
                copy.extend_from_slice(&[0xD5, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0]);
                copy.extend_from_slice(data);
                raw.put(k, copy.into(), PutOptions::default()).await.unwrap();
            })
        },
    );
    paired_ratio(
        rt,
        &format!("record/records_put ÷ raw_put ({case})"),
        PAIRED_CALLS,
        raw_put,
        |n| {
            time_calls(n, || async move {
                records.put(record).await.unwrap();
            })
        },
    );
    paired_ratio(
        rt,
        &format!("record/records_get ÷ raw_get ({case})"),
        PAIRED_CALLS,
        |n| {
            time_calls(n, || async move {
                let got = raw.get(k, GetOptions::default()).await.unwrap();
                assert_eq!(got.bytes().await.unwrap().len(), VALUE);
            })
        },
        |n| {
            time_calls(n, || async move {
                assert_eq!(records.get(k).await.unwrap().value.len(), VALUE);
            })
        },
    );
    let raw_version = RefCell::new(rt.block_on(raw.head(k)).unwrap().version);
    let next = RefCell::new(Some(
        record
            .clone()
            .with_version(rt.block_on(records.get(k)).unwrap().version),
    ));
    let raw_cas = |n| {
        time_calls(n, || async {
            let current = raw_version.borrow().clone();
            let meta = raw
                .put(k, data.clone(), PutOptions::update(current))
                .await
                .unwrap();
            *raw_version.borrow_mut() = meta.version;
        })
    };
    let raw_get_then_cas = |n| {
        time_calls(n, || async move {
            let current = raw.get(k, GetOptions::default()).await.unwrap();
            let version = current.meta.version.clone();
            assert_eq!(current.bytes().await.unwrap().len(), VALUE);
            raw.put(k, data.clone(), PutOptions::update(version))
                .await
                .unwrap();
        })
    };
    // The record is taken out for a round and put back after it, so that no `RefCell`
    // borrow is held across an await.
    let next = &next;
    let records_cas = |n| {
        let mut next_record = next
            .borrow_mut()
            .take()
            .expect("the record is put back after each round");
        async move {
            let started = Instant::now();
            for _ in 0..n {
                next_record.version = records.cas_by_version(&next_record).await.unwrap();
            }
            let took = started.elapsed();
            *next.borrow_mut() = Some(next_record);
            took
        }
    };
    paired_ratio(
        rt,
        &format!("record/records_cas_by_version ÷ raw_cas ({case})"),
        PAIRED_CALLS,
        raw_cas,
        records_cas,
    );
    paired_ratio(
        rt,
        &format!("record/records_cas_by_version ÷ raw_get_then_cas ({case})"),
        PAIRED_CALLS,
        raw_get_then_cas,
        records_cas,
    );
}

/// From just before a put to the moment a parked `wait_for_version_change` returns.
fn wake_latency(c: &mut Criterion) {
    let rt = runtime();
    let records = Records::new(MemoryStore::new());
    let k = key("bench/watched");
    let mut version = rt.block_on(records.put(&Record::new(k.clone(), "0"))).unwrap();
    let mut g = c.benchmark_group("record");
    g.bench_function("wait_wake_after_put", |b| {
        b.iter_custom(|n| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..n {
                    let waiter = tokio::spawn({
                        let (records, k, seen) = (records.clone(), k.clone(), version.clone());
                        async move {
                            let v = records.wait_for_version_change(&k, &seen).await.unwrap();
                            (v, Instant::now())
                        }
                    });
                    // Put only once the waiter is parked on the store's watch.
                    while records.backend().watched_keys() == 0 {
                        tokio::task::yield_now().await;
                    }
                    let put_at = Instant::now();
                    let new = records.put(&Record::new(k.clone(), "x")).await.unwrap();
                    let (seen, woke_at) = waiter.await.unwrap();
                    assert_eq!(seen, new);
                    total += woke_at.saturating_duration_since(put_at);
                    version = new;
                }
                total
            })
        })
    });
    g.finish();
}

criterion_group!(benches, overhead, wake_latency);
criterion_main!(benches);
