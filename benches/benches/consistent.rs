//! store-consistent: what `Group::operate` adds to the I/O it must do.
//!
//! `cargo bench -p store-benches --bench consistent -- --warm-up-time 1 --measurement-time 1`
//!
//! After criterion's figures it prints ratios measured interleaved (see
//! `store_benches::paired_ratio`):
//!
//! - over `FsStore` with its default durability, each side in a fresh directory every
//!   round: `Group::operate` ÷ one raw conditional put of the same content, for 64-byte
//!   and 1 KiB contents — the figures to compare with the targets (up to the inline limit,
//!   1 KiB by default, a content is kept in the manifest: one conditional put; a larger
//!   one is an object: its put, then the manifest's conditional put, the replaced version
//!   being deleted in the background). For information, the trade-off of the inline
//!   limit: 1 KiB with the limit lowered to 256 bytes (an object), and 64 bytes in a
//!   manifest that already holds its whole inline budget.
//! - for information only, over `MemoryStore`: `operate` ÷ one raw CAS update, and ÷ the
//!   raw read-modify-write loop.
//!
//! It also prints, as `calls …` lines, the backend calls an uncontended `operate` makes and
//! how many of them the caller waits for (over a store that delays every call by a fixed
//! time: the caller's wait ÷ that delay).
//!
//! The criterion group times `operate` uncontended over both stores, and contended by 8
//! tasks over `MemoryStore` (throughput, and retries per success on stderr).

use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use store_benches::{key, paired_ratio, payload, runtime, time_calls};
use store_consistent::{Group, INLINE_BUDGET, RetryPolicy};
use store_core::{Backend, BackendExt, Key, PutOptions, Result};
use store_fs::FsStore;
use store_memory::MemoryStore;
use store_testkit::{Fault, FaultOp, Faulty, Rule};

/// Calls per side and round over `FsStore` (with the default durability each waits for
/// fsyncs).
const FS_CALLS: u64 = 50;
/// The delay of every call of the store that counts the calls on the caller's path.
const CALL_DELAY: Duration = Duration::from_millis(10);

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

    let dir = tempfile::tempdir().unwrap();
    let fs_group = Group::new(rt.block_on(FsStore::open(dir.path())).unwrap(), "bench/group").unwrap();
    for size in [64, 1024] {
        let data = payload(size);
        g.bench_function(format!("operate_fs_{size}B"), |b| {
            b.to_async(&rt)
                .iter(|| async { fs_group.operate("doc", |_| Ok(data.clone())).await.unwrap() })
        });
    }
    g.finish();

    fs_ratios(&rt);
    memory_ratios(&rt, &store, &k, &group);
    calls_on_the_callers_path(&rt);
}

/// A fresh `FsStore` with the default durability, in a fresh directory (dropped with it).
async fn fresh_fs() -> (tempfile::TempDir, FsStore) {
    let dir = tempfile::tempdir().expect("tempdir");
    let fs = FsStore::open(dir.path()).await.expect("open FsStore");
    (dir, fs)
}

/// Interleaved ratios over `FsStore`: `operate` of a `size`-byte content on a group set up
/// by `setup` ÷ a chain of raw conditional puts of such a content, each side on a fresh
/// store every round.
fn fs_ratio(rt: &tokio::runtime::Runtime, label: &str, size: usize, setup: fn(Group) -> Group, fill: bool) {
    let data = &payload(size);
    let k = &key("bench/raw");
    paired_ratio(
        rt,
        label,
        FS_CALLS,
        |n| async move {
            let (_dir, fs) = fresh_fs().await;
            let mut version = fs
                .put(k, data.clone(), PutOptions::create())
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
            let group = setup(Group::new(fs, "bench/group").unwrap());
            if fill {
                fill_inline_budget(&group, size).await;
            }
            group.operate("doc", |_| Ok(data.clone())).await.unwrap();
            let group = &group;
            let took = time_calls(n, || async move {
                group.operate("doc", |_| Ok(data.clone())).await.unwrap();
            })
            .await;
            // Not timed: the last background delete, so that it does not slow the other side.
            tokio::time::sleep(Duration::from_millis(20)).await;
            took
        },
    );
}

/// Fills the group's manifest with 256-byte contents up to its inline budget, leaving room
/// for one content of `room` bytes.
async fn fill_inline_budget(group: &Group, room: usize) {
    for i in 0..(INLINE_BUDGET - room) / 256 {
        group
            .operate(&format!("filler{i}"), |_| Ok(payload(256)))
            .await
            .unwrap();
    }
}

fn fs_ratios(rt: &tokio::runtime::Runtime) {
    let default = |g: Group| g;
    fs_ratio(
        rt,
        "consistent/Group<FsStore>::operate 64 B ÷ one FsStore CAS (default durability)",
        64,
        default,
        false,
    );
    fs_ratio(
        rt,
        "consistent/Group<FsStore>::operate 1 KiB ÷ one FsStore CAS (default durability)",
        1024,
        default,
        false,
    );
    // The trade-off of the inline limit, for information.
    fs_ratio(
        rt,
        "consistent/Group<FsStore>::operate 1 KiB, inline limit 256 B (an object) ÷ one FsStore CAS (default durability)",
        1024,
        |g| g.with_inline_limit(256),
        false,
    );
    fs_ratio(
        rt,
        "consistent/Group<FsStore>::operate 64 B, manifest holding 16 KiB inline ÷ one FsStore CAS (default durability)",
        64,
        default,
        true,
    );
}

/// For information: the same over `MemoryStore`, where only the combinator's CPU shows.
fn memory_ratios(rt: &tokio::runtime::Runtime, store: &MemoryStore, k: &Key, group: &Group) {
    let version = RefCell::new(rt.block_on(store.put_bytes(k, "0")).unwrap().version);
    let version = &version;
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
        rt,
        "consistent/operate_uncontended ÷ raw_cas_update (MemoryStore, information)",
        20_000,
        raw_cas,
        operate,
    );
    paired_ratio(
        rt,
        "consistent/operate_uncontended ÷ raw_read_modify_write (MemoryStore, information)",
        20_000,
        raw_rmw,
        operate,
    );
}

/// Prints the backend calls of an uncontended `operate` of 64 B, 1 KiB and 4 KiB contents,
/// over a `MemoryStore` that delays every call by [`CALL_DELAY`]: all of them, and those
/// on the caller's path (the caller's wait ÷ the delay; the background delete of a
/// replaced version is not).
fn calls_on_the_callers_path(rt: &tokio::runtime::Runtime) {
    const OPERATIONS: u32 = 10;
    const OPS: [FaultOp; 7] = [
        FaultOp::Put,
        FaultOp::WriterOpen,
        FaultOp::Get,
        FaultOp::Head,
        FaultOp::Delete,
        FaultOp::List,
        FaultOp::Watch,
    ];
    for size in [64, 1024, 4096] {
        let store = Faulty::new(MemoryStore::new());
        let group = Group::new(store.clone(), "bench/group").unwrap();
        let data = payload(size);
        rt.block_on(async {
            // The first switch creates the manifest; the figures are for later updates.
            group.operate("doc", |_| Ok(data.clone())).await.unwrap();
            for op in OPS {
                store.inject(Rule::new(op, Fault::Latency(CALL_DELAY)));
            }
            let before: Vec<u64> = OPS.iter().map(|&op| store.calls(op)).collect();
            let started = Instant::now();
            for _ in 0..OPERATIONS {
                group.operate("doc", |_| Ok(data.clone())).await.unwrap();
            }
            let waited = started.elapsed().as_secs_f64() / (CALL_DELAY * OPERATIONS).as_secs_f64();
            // The background deletes finish.
            tokio::time::sleep(CALL_DELAY * 5).await;
            let calls: Vec<String> = OPS
                .iter()
                .zip(before)
                .filter_map(|(&op, before)| {
                    let per_operate = (store.calls(op) - before) as f64 / f64::from(OPERATIONS);
                    (per_operate > 0.0).then(|| format!("{op:?} {per_operate}"))
                })
                .collect();
            println!(
                "calls consistent/Group::operate {size} B: {} per operate, {} on the caller's path (it waited {waited:.2} × the delay of one call)",
                calls.join(" + "),
                waited.round()
            );
        });
    }
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
