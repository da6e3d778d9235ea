//! Redis: what `RedisRecords` adds to the round trips it must make, and how it compares with
//! `Records<FsStore>` for the same record operations.
//!
//! `cargo bench -p store-benches --bench redis -- --warm-up-time 1 --measurement-time 2`
//! with `STORE_REDIS_URL` set (`bash scripts/redis.sh start && eval "$(bash scripts/redis.sh env)"`:
//! a local server that fsyncs every write). Without it the benchmark says so and measures
//! nothing, so the other benchmarks never need Redis.
//!
//! After criterion's figures it prints ratios measured interleaved (see
//! `store_benches::paired_ratio`), 128-byte values, against the raw `redis` client on its own
//! connection manager doing the same round trips (target ≤ 1.2× each):
//!
//! - `RedisRecords::get` ÷ a `GET` of the same stored bytes;
//! - a chain of `RedisRecords::cas_by_version` ÷ a chain of calls of an equivalent Lua
//!   compare-and-swap (read the value, compare the version in its header, `INCR` a counter,
//!   `SET`, `PUBLISH`), each from the version the previous call wrote.
//!
//! The `side_by_side` group times `create`, `get`, `cas_by_version` and the latency from a
//! `put` to the wake of a parked `wait_for_version_change`, for `RedisRecords` and for
//! `Records<FsStore>` with its default durability (both fsync every write), so a user can
//! pick.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use store_benches::{key, paired_ratio, payload, runtime, time_calls};
use store_core::{Record, RecordStore, Version};
use store_fs::FsStore;
use store_record::Records;
use store_redis::{RedisOptions, RedisRecords};

const VALUE: usize = 128;
/// Reads per side and round of the interleaved ratio.
const GET_CALLS: u64 = 2_000;
/// Compare-and-swaps per side and round (each waits for the server's fsync).
const CAS_CALLS: u64 = 200;

/// The compare-and-swap the raw side runs: the same server work as store-redis's write
/// script for one record (read, compare the version at the front of the value, take a
/// version from the counter, write, publish), in one round trip.
const RAW_CAS: &str = r"
local cur = redis.call('GET', KEYS[1])
if not cur or string.sub(cur, 1, 20) ~= ARGV[1] then
  return false
end
local version = string.format('%020d', redis.call('INCR', KEYS[2]))
redis.call('SET', KEYS[1], version .. ARGV[2])
redis.call('PUBLISH', KEYS[3], KEYS[1])
return version
";

fn redis_url() -> Option<String> {
    let url = std::env::var("STORE_REDIS_URL")
        .ok()
        .filter(|u| !u.trim().is_empty());
    if url.is_none() {
        eprintln!(
            "redis bench: STORE_REDIS_URL is not set, nothing measured \
             (bash scripts/redis.sh start && eval \"$(bash scripts/redis.sh env)\")"
        );
    }
    url
}

/// A key prefix of its own for each run.
fn run_prefix() -> String {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("store-benches/redis/{}-{nanos}/", std::process::id())
}

/// Times `iters` sequential runs of `op` inside one `block_on`.
fn timed<F, Fut>(rt: &tokio::runtime::Runtime, iters: u64, op: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    rt.block_on(time_calls(iters, op))
}

fn overhead(c: &mut Criterion) {
    let Some(url) = redis_url() else { return };
    let rt = runtime();
    let prefix = run_prefix();
    let records = rt
        .block_on(RedisRecords::connect(
            RedisOptions::new(&url).with_key_prefix(&prefix),
        ))
        .expect("connect to Redis");
    let raw = rt
        .block_on(async { redis::Client::open(url.as_str())?.get_connection_manager().await })
        .expect("raw connection");
    let script = redis::Script::new(RAW_CAS);
    let data = payload(VALUE);
    let k = key("bench/record");
    let record = Record::new(k.clone(), data.clone());
    let raw_key = format!("{prefix}raw");
    let raw_keys = [
        raw_key.clone(),
        format!("{prefix}/raw-version"),
        format!("{prefix}/raw-changes"),
    ];
    let first_raw_version = format!("{:020}", 0);
    let stored = [first_raw_version.as_bytes(), &data[..]].concat();
    rt.block_on(async {
        let mut c = raw.clone();
        let () = redis::cmd("SET")
            .arg(&raw_key)
            .arg(&stored)
            .query_async(&mut c)
            .await
            .unwrap();
        records.put(&record).await.unwrap();
    });

    let raw_get = || {
        let mut c = raw.clone();
        let raw_key = &raw_key;
        async move {
            let got: Vec<u8> = redis::cmd("GET").arg(raw_key).query_async(&mut c).await.unwrap();
            assert_eq!(got.len(), 20 + VALUE);
        }
    };
    let records_get = || async {
        assert_eq!(records.get(&k).await.unwrap().value.len(), VALUE);
    };
    // One raw compare-and-swap from `version`; returns the new one.
    let raw_cas = |version: String| {
        let mut c = raw.clone();
        let (script, raw_keys, data) = (&script, &raw_keys, &data);
        async move {
            let next: Option<String> = script
                .key(&raw_keys[..])
                .arg(version)
                .arg(&data[..])
                .invoke_async(&mut c)
                .await
                .unwrap();
            next.expect("raw CAS from the current version")
        }
    };
    let current_raw = || {
        let mut c = raw.clone();
        let raw_key = &raw_key;
        async move {
            let got: Vec<u8> = redis::cmd("GET").arg(raw_key).query_async(&mut c).await.unwrap();
            String::from_utf8(got[..20].to_vec()).unwrap()
        }
    };

    let mut g = c.benchmark_group("redis");
    g.throughput(Throughput::Elements(1));
    g.bench_function("raw_get", |b| b.iter_custom(|n| timed(&rt, n, raw_get)));
    g.bench_function("records_get", |b| b.iter_custom(|n| timed(&rt, n, records_get)));
    g.bench_function("raw_lua_cas", |b| {
        b.iter_custom(|n| {
            rt.block_on(async {
                let mut version = current_raw().await;
                let started = Instant::now();
                for _ in 0..n {
                    version = raw_cas(version).await;
                }
                started.elapsed()
            })
        })
    });
    g.bench_function("records_cas_by_version", |b| {
        b.iter_custom(|n| {
            rt.block_on(async {
                let mut next = record
                    .clone()
                    .with_version(records.get(&k).await.unwrap().version);
                let started = Instant::now();
                for _ in 0..n {
                    next.version = records.cas_by_version(&next).await.unwrap();
                }
                started.elapsed()
            })
        })
    });
    g.finish();

    paired_ratio(
        &rt,
        "redis/RedisRecords get ÷ GET",
        GET_CALLS,
        |n| time_calls(n, raw_get),
        |n| time_calls(n, records_get),
    );
    paired_ratio(
        &rt,
        "redis/RedisRecords cas_by_version ÷ Lua CAS (appendfsync always)",
        CAS_CALLS,
        |n| async move {
            let mut version = current_raw().await;
            let started = Instant::now();
            for _ in 0..n {
                version = raw_cas(version).await;
            }
            started.elapsed()
        },
        |n| {
            let (records, k, record) = (&records, &k, &record);
            async move {
                let mut next = record.clone().with_version(records.get(k).await.unwrap().version);
                let started = Instant::now();
                for _ in 0..n {
                    next.version = records.cas_by_version(&next).await.unwrap();
                }
                started.elapsed()
            }
        },
    );
    rt.block_on(async {
        let mut c = raw.clone();
        let _: redis::RedisResult<()> = redis::cmd("DEL")
            .arg(&raw_keys[..])
            .arg(format!("{prefix}bench/record"))
            .arg(format!("{prefix}/version"))
            .query_async(&mut c)
            .await;
    });
}

/// The record operations of both stores, one after the other.
fn side_by_side(c: &mut Criterion) {
    let Some(url) = redis_url() else { return };
    let rt = runtime();
    let prefix = run_prefix();
    let redis = rt
        .block_on(RedisRecords::connect(
            RedisOptions::new(&url).with_key_prefix(&prefix),
        ))
        .expect("connect to Redis");
    let dir = tempfile::tempdir().expect("tempdir");
    let fs = Records::new(rt.block_on(FsStore::open(dir.path())).expect("open FsStore"));
    let mut g = c.benchmark_group("side_by_side");
    g.throughput(Throughput::Elements(1));
    g.sample_size(10);
    operations(&rt, &mut g, "RedisRecords", &redis);
    operations(&rt, &mut g, "Records<FsStore>", &fs);
    g.finish();
    rt.block_on(async {
        let mut c = redis::Client::open(url.as_str())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        let mut cursor = 0u64;
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(format!("{prefix}*"))
                .query_async(&mut c)
                .await
                .unwrap();
            if !keys.is_empty() {
                let _: () = redis::cmd("DEL").arg(keys).query_async(&mut c).await.unwrap();
            }
            if next == 0 {
                break;
            }
            cursor = next;
        }
    });
}

fn operations<R: RecordStore + Clone>(
    rt: &tokio::runtime::Runtime,
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    store: &R,
) {
    let data = payload(VALUE);
    let fresh = AtomicU64::new(0);
    g.bench_function(format!("create/{name}"), |b| {
        b.iter_custom(|n| {
            timed(rt, n, || async {
                let k = key(&format!("create/{}", fresh.fetch_add(1, Ordering::Relaxed)));
                store.create(&Record::new(k, data.clone())).await.unwrap();
            })
        })
    });
    let k = key("side/record");
    let record = Record::new(k.clone(), data.clone());
    rt.block_on(store.put(&record)).unwrap();
    g.bench_function(format!("get/{name}"), |b| {
        b.iter_custom(|n| {
            timed(rt, n, || async {
                assert_eq!(store.get(&k).await.unwrap().value.len(), VALUE);
            })
        })
    });
    g.bench_function(format!("cas_by_version/{name}"), |b| {
        b.iter_custom(|n| {
            rt.block_on(async {
                let mut next = record.clone().with_version(store.get(&k).await.unwrap().version);
                let started = Instant::now();
                for _ in 0..n {
                    next.version = store.cas_by_version(&next).await.unwrap();
                }
                started.elapsed()
            })
        })
    });
    g.bench_function(format!("put_to_wake/{name}"), |b| {
        b.iter_custom(|n| {
            rt.block_on(async {
                let mut version: Version = store.get(&k).await.unwrap().version;
                let mut total = Duration::ZERO;
                for _ in 0..n {
                    let waiter = tokio::spawn({
                        let (store, k, seen) = (store.clone(), k.clone(), version.clone());
                        async move {
                            let v = store.wait_for_version_change(&k, &seen).await.unwrap();
                            (v, Instant::now())
                        }
                    });
                    // Not timed: time for the waiter to read the record and park.
                    tokio::time::sleep(Duration::from_millis(2)).await;
                    let put_at = Instant::now();
                    let new = store.put(&record).await.unwrap();
                    let (seen, woke_at) = waiter.await.unwrap();
                    assert_eq!(seen, new);
                    total += woke_at.saturating_duration_since(put_at);
                    version = new;
                }
                total
            })
        })
    });
}

criterion_group!(benches, overhead, side_by_side);
criterion_main!(benches);
