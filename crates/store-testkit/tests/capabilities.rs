//! The suite reads `capabilities()`: a backend that lacks compare-and-swap (and refuses it),
//! native watch (it polls) and range reads (it reads whole objects) gets the checks that
//! need compare-and-swap reported as skipped, by name, and passes every other check.

use std::collections::BTreeSet;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use store_core::{
    Backend, Backoff, Body, Capabilities, DeleteOptions, Error, GetOptions, Key, ListOptions, Meta, Object,
    ObjectWriter, PutMode, PutOptions, Result, Version, poll_watch,
};
use store_memory::MemoryStore;
use store_testkit::backend::{CHECKS, Need, needs, run_all};

/// A store that refuses `PutMode::Update`, watches by polling, and reads every range from
/// the whole object.
#[derive(Debug)]
struct Plain(MemoryStore);

fn refused(operation: &'static str) -> Error {
    Error::Unsupported {
        operation,
        backend: "Plain",
    }
}

#[async_trait]
impl Backend for Plain {
    fn capabilities(&self) -> Capabilities {
        self.0
            .capabilities()
            .with_update(false)
            .with_native_watch(false)
            .with_range_reads(false)
    }
    async fn put(&self, key: &Key, data: Bytes, opts: PutOptions) -> Result<Meta> {
        if matches!(opts.mode, PutMode::Update(_)) {
            return Err(refused("put with PutMode::Update"));
        }
        self.0.put(key, data, opts).await
    }
    async fn writer(&self, key: &Key, opts: PutOptions) -> Result<Box<dyn ObjectWriter>> {
        if matches!(opts.mode, PutMode::Update(_)) {
            return Err(refused("writer with PutMode::Update"));
        }
        self.0.writer(key, opts).await
    }
    async fn get(&self, key: &Key, opts: GetOptions) -> Result<Object> {
        let Some(range) = opts.range.clone() else {
            return self.0.get(key, opts).await;
        };
        let mut whole_opts = opts;
        whole_opts.range = None;
        let mut whole = self.0.get(key, whole_opts).await?;
        let bytes = whole.body.bytes().await?;
        let span = range.resolve(key, whole.meta.size)?;
        whole.body = Body::Bytes(bytes.slice(span.start as usize..span.end as usize));
        whole.range = span;
        Ok(whole)
    }
    async fn head(&self, key: &Key) -> Result<Meta> {
        self.0.head(key).await
    }
    async fn delete(&self, key: &Key, opts: DeleteOptions) -> Result<()> {
        self.0.delete(key, opts).await
    }
    fn list(&self, opts: ListOptions) -> BoxStream<'static, Result<Meta>> {
        self.0.list(opts)
    }
    async fn watch(&self, key: &Key, seen: Option<&Version>) -> Result<Option<Version>> {
        poll_watch(self, key, seen, Backoff::default()).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn checks_a_backend_cannot_take_are_skipped_by_name_and_the_rest_run() {
    let report = run_all(|| async { Plain(MemoryStore::new()) }).await;
    let skipped: BTreeSet<&str> = report.skipped.iter().map(|(name, _)| name.as_str()).collect();
    let expected: BTreeSet<&str> = [
        "update_is_compare_and_swap",
        "writer_applies_put_mode_at_close",
        "concurrent_cas_increments_are_exact",
        "model_based_random_operations",
    ]
    .into();
    assert_eq!(skipped, expected);
    for (name, need) in &report.skipped {
        assert_eq!(*need, Need::Update, "{name} skipped for {need}");
    }
    assert!(report.passed.iter().any(|n| n == "range_reads"));
    assert_eq!(report.passed.len() + report.skipped.len(), CHECKS.len());
    assert!(report.passed.iter().any(|n| n == "watch_wakes_on_put_and_delete"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backend_with_every_capability_runs_every_check() {
    let report = run_all(|| async { MemoryStore::new() }).await;
    assert!(report.skipped.is_empty(), "{:?}", report.skipped);
    assert_eq!(report.passed.len(), CHECKS.len());
}

#[test]
fn every_need_names_a_capability() {
    assert_eq!(needs("create_is_exclusive"), [Need::Create]);
    assert_eq!(needs("put_get_round_trip"), []);
    assert_eq!(needs("no such check"), []);
    let none = Capabilities::NONE;
    assert!(!Need::LargeObjects.met_by(&none.with_max_object_size(Some(1 << 20))));
    assert!(Need::LargeObjects.met_by(&none));
    assert_eq!(Need::Update.to_string(), "update");
}
