//! Shared helpers for the criterion benchmarks in `benches/benches/`.

use store_core::Key;

/// A multi-threaded tokio runtime for async benchmarks (two workers: this machine's size).
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// `Key::new` for benchmark keys, which are always valid.
pub fn key(s: &str) -> Key {
    Key::new(s).expect("benchmark keys are valid")
}

/// `n` bytes of deterministic content.
pub fn payload(n: usize) -> bytes::Bytes {
    (0..n).map(|i| (i % 251) as u8).collect()
}

/// Times `n` sequential runs of `op` (in the caller's task).
pub async fn time_calls<F, Fut>(n: u64, mut op: F) -> std::time::Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let started = std::time::Instant::now();
    for _ in 0..n {
        op().await;
    }
    started.elapsed()
}

/// Rounds of [`paired_ratio`]: odd, so the median is one round's figure.
pub const PAIRED_ROUNDS: usize = 31;

/// What [`paired_ratio`] measured: `subject ÷ baseline` per round, sorted.
#[derive(Debug, Clone)]
pub struct PairedRatio {
    /// One ratio per round, ascending.
    pub ratios: Vec<f64>,
}

impl PairedRatio {
    /// The median round's ratio.
    pub fn median(&self) -> f64 {
        self.ratios[self.ratios.len() / 2]
    }

    /// The first and third quartiles.
    pub fn quartiles(&self) -> (f64, f64) {
        let n = self.ratios.len();
        (self.ratios[n / 4], self.ratios[(3 * n) / 4])
    }
}

/// Whether the binary runs as a benchmark (`cargo bench`), not as a test
/// (`cargo test --benches` runs each criterion bench once, without `--bench`).
pub fn bench_mode() -> bool {
    std::env::args().any(|a| a == "--bench")
}

/// Whether [`paired_ratio`] measures: in bench mode, unless `STORE_BENCH_PAIRED=0` (to
/// profile one criterion benchmark alone).
fn paired_enabled() -> bool {
    bench_mode() && std::env::var("STORE_BENCH_PAIRED").map_or(true, |v| v != "0")
}

/// The ratio `subject ÷ baseline`, measured so that machine noise cancels out: each of
/// [`PAIRED_ROUNDS`] rounds times `calls` calls of one side and then of the other (which
/// goes first alternates), and the ratio is taken per round. Criterion's figures time each
/// side minutes apart; on a shared VM their drift is larger than the overheads compared.
///
/// Each closure gets a call count and returns the time those calls took. Prints one line,
/// `ratio <label>: median …× (quartiles …)`, and returns the figures. Does nothing (and
/// returns `None`) outside `cargo bench`, or with `STORE_BENCH_PAIRED=0`.
pub fn paired_ratio<B, BF, S, SF>(
    rt: &tokio::runtime::Runtime,
    label: &str,
    calls: u64,
    mut baseline: B,
    mut subject: S,
) -> Option<PairedRatio>
where
    B: FnMut(u64) -> BF,
    BF: std::future::Future<Output = std::time::Duration>,
    S: FnMut(u64) -> SF,
    SF: std::future::Future<Output = std::time::Duration>,
{
    if !paired_enabled() {
        return None;
    }
    // Warm-up: caches, allocator pools, lazily started threads.
    rt.block_on(baseline(calls));
    rt.block_on(subject(calls));
    let mut ratios = Vec::with_capacity(PAIRED_ROUNDS);
    for round in 0..PAIRED_ROUNDS {
        let (b, s) = if round % 2 == 0 {
            let b = rt.block_on(baseline(calls));
            (b, rt.block_on(subject(calls)))
        } else {
            let s = rt.block_on(subject(calls));
            (rt.block_on(baseline(calls)), s)
        };
        ratios.push(s.as_secs_f64() / b.as_secs_f64().max(f64::MIN_POSITIVE));
    }
    ratios.sort_by(f64::total_cmp);
    let r = PairedRatio { ratios };
    let (q1, q3) = r.quartiles();
    println!(
        "ratio {label}: median {:.2}× (quartiles {q1:.2}–{q3:.2}; {PAIRED_ROUNDS} interleaved rounds of {calls} calls per side)",
        r.median()
    );
    Some(r)
}
