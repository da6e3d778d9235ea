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
