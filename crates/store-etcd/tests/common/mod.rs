//! Shared by the integration tests: finding etcd, unique key prefixes, clean-up.

#![allow(dead_code)] // each test file uses a different part

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// The endpoints in `var`, or `None` (after a "skipping" line) when it is unset and
/// `STORE_SKIP_ETCD=1`. Unset without the opt-out is a failure with guidance: CI never skips.
pub(crate) fn endpoints(var: &str, test: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.trim().is_empty() => Some(v),
        _ if std::env::var("STORE_SKIP_ETCD").is_ok_and(|v| v == "1") => {
            eprintln!("skipping {test}: {var} is not set and STORE_SKIP_ETCD=1");
            None
        }
        _ => panic!(
            "{test} needs etcd: {var} is not set. Run `bash scripts/etcd.sh start && \
             eval \"$(bash scripts/etcd.sh env)\"` from the repository root, or set \
             STORE_SKIP_ETCD=1 to skip the etcd tests"
        ),
    }
}

/// A key prefix no other test run uses.
pub(crate) fn run_prefix(test: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "store-etcd-tests/{test}/{}-{nanos}-{}/",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Deletes every key under `prefix` (best effort: the prefix is unique anyway).
pub(crate) async fn clean_up(endpoints: &str, prefix: &str) {
    let eps: Vec<&str> = endpoints.split(',').map(str::trim).collect();
    if let Ok(mut client) = etcd_client::Client::connect(&eps, None).await {
        let opts = etcd_client::DeleteOptions::new().with_prefix();
        let _ = client.delete(prefix, Some(opts)).await;
    }
}
