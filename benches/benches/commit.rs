//! Session overhead of `store-commit` over MemoryStores: begin + commit of an empty session,
//! and of a session of 100 staged puts split over two `Staged` stores.
//!
//! `cargo bench -p store-benches --bench commit -- --warm-up-time 1 --measurement-time 3`

use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use store_benches::{key, payload, runtime};
use store_commit::{MultiCommitter, Staged};
use store_core::{Committable, IdempotencyKey, Key};
use store_memory::MemoryStore;

fn sessions(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("commit");

    // No committables: the kv put of the key, and its delete.
    let committer = MultiCommitter::empty(MemoryStore::new());
    let mut n = 0u64;
    group.bench_function("empty_session_no_committables", |b| {
        b.iter(|| {
            n += 1;
            let k = IdempotencyKey::from(format!("s{n}").as_str());
            rt.block_on(async {
                committer.begin(&k).await.expect("begin");
                committer.commit(&k).await.expect("commit")
            })
        })
    });

    // Two Staged stores with nothing staged: also their begin (journal and marker look-ups).
    let (a, b) = (
        Arc::new(Staged::new(MemoryStore::new())),
        Arc::new(Staged::new(MemoryStore::new())),
    );
    let mut committer = MultiCommitter::empty(MemoryStore::new());
    committer.register("a", a.clone()).expect("register");
    committer.register("b", b.clone()).expect("register");
    group.bench_function("empty_session_two_staged", |bench| {
        bench.iter(|| {
            n += 1;
            let k = IdempotencyKey::from(format!("e{n}").as_str());
            rt.block_on(async {
                committer.begin(&k).await.expect("begin");
                committer.commit(&k).await.expect("commit")
            })
        })
    });

    // 100 puts of 1 KiB, 50 per store: journal, puts, marker, journal delete per store.
    let keys: Vec<Key> = (0..100).map(|i| key(&format!("objects/{i:03}"))).collect();
    let data = payload(1024);
    group.throughput(Throughput::Elements(100));
    group.bench_function("session_100_staged_puts", |bench| {
        bench.iter(|| {
            n += 1;
            let k = IdempotencyKey::from(format!("p{n}").as_str());
            rt.block_on(async {
                committer.begin(&k).await.expect("begin");
                for (i, key) in keys.iter().enumerate() {
                    let s = if i % 2 == 0 { &a } else { &b };
                    s.stage_put(key, data.clone()).expect("stage");
                }
                committer.commit(&k).await.expect("commit")
            })
        })
    });

    // The same 100 puts applied by one Staged directly, without the committer.
    let alone = Staged::new(MemoryStore::new());
    group.bench_function("staged_alone_100_puts", |bench| {
        bench.iter(|| {
            n += 1;
            let k = IdempotencyKey::from(format!("q{n}").as_str());
            rt.block_on(async {
                alone.begin(&k).await.expect("begin");
                for key in &keys {
                    alone.stage_put(key, data.clone()).expect("stage");
                }
                alone.commit(&k).await.expect("commit")
            })
        })
    });
    group.finish();
}

criterion_group!(benches, sessions);
criterion_main!(benches);
