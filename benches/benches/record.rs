//! Records over MemoryStore versus the raw MemoryStore operations (get, put, compare-and-swap
//! with a 128-byte value), and how soon `wait_for_version_change` wakes after a put.
//!
//! `cargo bench -p store-benches --bench record`. Compare `record/records_*` with
//! `record/raw_*`: the record layer adds an envelope (3 bytes, or 11 with an expiry), a decode
//! on read, and — for `cas_by_version` — a read before the conditional put, because an
//! expired record must be `NotFound` rather than replaced (`raw_get_then_cas` is that same
//! work done on the raw store).

use std::future::Future;
use std::time::{Duration, Instant, SystemTime};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use store_benches::{key, payload, runtime};
use store_core::{Backend, BackendExt, GetOptions, PutOptions, Record};
use store_memory::MemoryStore;
use store_record::Records;

const VALUE: usize = 128;

/// Times `iters` sequential runs of `op` inside one `block_on`, so the runtime's entry cost
/// is not part of the figure.
fn timed<F, Fut>(rt: &tokio::runtime::Runtime, iters: u64, mut op: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    rt.block_on(async {
        let started = Instant::now();
        for _ in 0..iters {
            op().await;
        }
        started.elapsed()
    })
}

fn overhead(c: &mut Criterion) {
    let rt = runtime();
    let raw = MemoryStore::new();
    let records = Records::new(MemoryStore::new());
    let data = payload(VALUE);
    let k = key("bench/record");
    let expiry = SystemTime::now() + Duration::from_secs(3600);
    rt.block_on(async {
        raw.put_bytes(&k, data.clone()).await.unwrap();
        records
            .put(Record::new(k.clone(), data.clone()).with_expiry(expiry))
            .await
            .unwrap();
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
                records
                    .put(Record::new(k.clone(), data.clone()).with_expiry(expiry))
                    .await
                    .unwrap();
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
        let mut version = rt.block_on(records.get(&k)).unwrap().version;
        b.iter_custom(|n| {
            rt.block_on(async {
                let started = Instant::now();
                for _ in 0..n {
                    let next = Record::new(k.clone(), data.clone())
                        .with_version(version.clone())
                        .with_expiry(expiry);
                    version = records.cas_by_version(next).await.unwrap().version;
                }
                started.elapsed()
            })
        })
    });
    g.finish();
}

/// From just before a put to the moment a parked `wait_for_version_change` returns.
fn wake_latency(c: &mut Criterion) {
    let rt = runtime();
    let records = Records::new(MemoryStore::new());
    let k = key("bench/watched");
    let mut version = rt
        .block_on(records.put(Record::new(k.clone(), "0")))
        .unwrap()
        .version;
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
                    let new = records.put(Record::new(k.clone(), "x")).await.unwrap().version;
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
