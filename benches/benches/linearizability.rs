//! The linearizability checker's time on a 10,000-call history: 8 clients on 3 hot keys of
//! a MemoryStore, once without faults and once with 10% of the calls hit by one (lost
//! replies leave writes of unknown outcome, which widen the search).
//!
//! `cargo xtask bench -- linearizability` (or `cargo bench -p store-benches --bench linearizability`).

use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use store_benches::runtime;
use store_core::Backend;
use store_memory::MemoryStore;
use store_testkit::history::History;
use store_testkit::linearizability::{Config, check, drive};

const CALLS: usize = 10_000;

/// A recorded history of `CALLS` calls by 8 clients.
fn history(config: Config) -> History {
    let backend: Arc<dyn Backend> = Arc::new(MemoryStore::new());
    runtime().block_on(drive(&[backend], &config.with_ops(CALLS).with_clients(8)))
}

fn checker(c: &mut Criterion) {
    let mut g = c.benchmark_group("linearizability");
    g.throughput(Throughput::Elements(CALLS as u64));
    let plain = history(Config::default());
    g.bench_function("check_10k_calls", |b| b.iter(|| check(&plain).unwrap()));
    let faulty = history(Config::default().with_seed(2).with_random_faults(0.1));
    g.bench_function("check_10k_calls_with_faults", |b| {
        b.iter(|| check(&faulty).unwrap())
    });
    g.finish();
}

criterion_group!(benches, checker);
criterion_main!(benches);
