//! store-consistent on MemoryStore: uncontended `operate` against raw CAS updates, and
//! `operate` contended by 8 tasks (throughput, and retries per success on stderr).
//!
//! `cargo bench -p store-benches --bench consistent`.
//!
//! After criterion's figures it prints `operate` ÷ one raw CAS update (and ÷ the raw
//! read-modify-write loop) measured interleaved (see `store_benches::paired_ratio`): those
//! are the figures to compare with the target.

use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use store_benches::{key, paired_ratio, runtime, time_calls};
use store_consistent::{Group, RetryPolicy};
use store_core::{Backend, BackendExt, PutOptions, Result};
use store_memory::MemoryStore;

fn increment(old: &[u8]) -> Result<String> {
    let n: u64 = std::str::from_utf8(old)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Ok((n + 1).to_string())
}

fn uncontended(c: &mut Criterion) {
    let rt = runtime();
    let store = MemoryStore::new();
    let k = key("bench/raw-counter");
    let mut g = c.benchmark_group("consistent");
    g.throughput(Throughput::Elements(1));

    // The baseline: one compare-and-swap put from a known version…
    g.bench_function("raw_cas_update", |b| {
        let mut version = rt.block_on(store.put_bytes(&k, "0")).unwrap().version;
        b.iter(|| {
            version = rt
                .block_on(store.put(&k, "1".into(), PutOptions::update(version.clone())))
                .unwrap()
                .version;
        })
    });
    // …and the raw optimistic loop on one key (read + CAS put).
    g.bench_function("raw_read_modify_write", |b| {
        b.to_async(&rt).iter(|| async {
            store
                .read_modify_write(&k, |old| Ok(increment(old.map_or(&[][..], |b| &b[..]))?.into()))
                .await
                .unwrap()
        })
    });

    let group = Group::new(store.clone(), "bench/group").unwrap();
    g.bench_function("operate_uncontended", |b| {
        b.to_async(&rt)
            .iter(|| async { group.operate("counter", increment).await.unwrap() })
    });
    g.finish();

    let version = RefCell::new(rt.block_on(store.put_bytes(&k, "0")).unwrap().version);
    let (store, k, group, version) = (&store, &k, &group, &version);
    let raw_cas = |n| {
        time_calls(n, || async {
            let current = version.borrow().clone();
            let meta = store
                .put(k, "1".into(), PutOptions::update(current))
                .await
                .unwrap();
            *version.borrow_mut() = meta.version;
        })
    };
    let raw_rmw = |n| {
        time_calls(n, || async {
            store
                .read_modify_write(k, |old| Ok(increment(old.map_or(&[][..], |b| &b[..]))?.into()))
                .await
                .unwrap();
        })
    };
    let operate = |n| {
        time_calls(n, || async {
            group.operate("counter", increment).await.unwrap();
        })
    };
    paired_ratio(
        &rt,
        "consistent/operate_uncontended ÷ raw_cas_update",
        20_000,
        raw_cas,
        operate,
    );
    paired_ratio(
        &rt,
        "consistent/operate_uncontended ÷ raw_read_modify_write",
        20_000,
        raw_rmw,
        operate,
    );
}

fn contended(c: &mut Criterion) {
    const TASKS: u64 = 8;
    let rt = runtime();
    let store = MemoryStore::new();
    let group = Group::new(store, "bench/contended").unwrap().with_retry_policy(
        RetryPolicy::default()
            .with_max_attempts(1_000_000)
            .with_backoff(Duration::from_micros(20), Duration::from_millis(5)),
    );
    let calls = Arc::new(AtomicU64::new(0));
    let successes = Arc::new(AtomicU64::new(0));
    let mut g = c.benchmark_group("consistent");
    g.throughput(Throughput::Elements(1));
    g.bench_function("operate_contended_8_tasks", |b| {
        b.iter_custom(|iters| {
            let per_task = iters.div_ceil(TASKS);
            rt.block_on(async {
                let start = Instant::now();
                let tasks: Vec<_> = (0..TASKS)
                    .map(|_| {
                        let (group, calls) = (group.clone(), calls.clone());
                        tokio::spawn(async move {
                            for _ in 0..per_task {
                                group
                                    .operate("counter", |old| {
                                        calls.fetch_add(1, Ordering::Relaxed);
                                        increment(old)
                                    })
                                    .await
                                    .unwrap();
                            }
                        })
                    })
                    .collect();
                for t in tasks {
                    t.await.unwrap();
                }
                successes.fetch_add(per_task * TASKS, Ordering::Relaxed);
                // Report per success, however many extra operations rounding added.
                start.elapsed().mul_f64(iters as f64 / (per_task * TASKS) as f64)
            })
        })
    });
    g.finish();
    let (calls, successes) = (calls.load(Ordering::Relaxed), successes.load(Ordering::Relaxed));
    if successes > 0 {
        eprintln!(
            "consistent/operate_contended_8_tasks: {successes} successes, {} retries per success",
            (calls - successes) as f64 / successes as f64
        );
    }
}

criterion_group!(benches, uncontended, contended);
criterion_main!(benches);
