//! Shared test setup: the S3 server from the environment, and unique prefixes.

#![allow(dead_code, unreachable_pub)]

pub mod counting;
pub mod many;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use store_cloud::{Layout, S3Config};

/// The S3 settings from `STORE_S3_*`, or `None` (after a "skipping" line) when
/// `STORE_SKIP_S3=1` opts out. Fails the test when the endpoint is unset without opt-out.
pub fn s3_config(test: &str) -> Option<S3Config> {
    let Ok(endpoint) = std::env::var("STORE_S3_ENDPOINT") else {
        if std::env::var("STORE_SKIP_S3").as_deref() == Ok("1") {
            eprintln!("skipping {test}: STORE_S3_ENDPOINT is unset and STORE_SKIP_S3=1");
            return None;
        }
        panic!(
            "{test} needs an S3 server: run `scripts/seaweedfs.sh start` and \
             `eval \"$(scripts/seaweedfs.sh env)\"`, or set STORE_SKIP_S3=1 to skip"
        );
    };
    let var = |name: &str| {
        std::env::var(name).unwrap_or_else(|_| panic!("{test}: STORE_S3_ENDPOINT is set but {name} is not"))
    };
    Some(
        S3Config::new(var("STORE_S3_BUCKET"))
            .with_endpoint(endpoint)
            .with_region(std::env::var("STORE_S3_REGION").unwrap_or_else(|_| "us-east-1".into()))
            .with_credentials(var("STORE_S3_ACCESS_KEY"), var("STORE_S3_SECRET_KEY"))
            .with_layout(layout()),
    )
}

/// A prefix no other test or run uses.
pub fn unique_prefix(what: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!(
        "tests/{what}/{}-{nanos}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// The key layout for the test server: `STORE_S3_LAYOUT=flat` for a flat-key-space server
/// (AWS, MinIO); otherwise nested, which SeaweedFS (the server of `scripts/seaweedfs.sh`) needs.
fn layout() -> Layout {
    match std::env::var("STORE_S3_LAYOUT").as_deref() {
        Ok("flat") => Layout::Flat,
        _ => Layout::Nested,
    }
}
