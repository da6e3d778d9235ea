//! The conformance suite must fail on broken backends: each mutant here breaks one rule,
//! and the checks for that rule must catch it.

use std::panic::AssertUnwindSafe;

use async_trait::async_trait;
use bytes::Bytes;
use futures::FutureExt;
use futures::stream::{self, BoxStream, StreamExt};
use store_core::{
    Backend, Capabilities, DeleteOptions, GetOptions, Key, ListOptions, Meta, Object, ObjectWriter, PutMode,
    PutOptions, Result, Version,
};
use store_memory::MemoryStore;
use store_testkit::backend::{CHECKS, Check, run_checks};

#[derive(Debug, Clone, Copy, PartialEq)]
enum Bug {
    /// `Update` and `Create` behave like `Overwrite`.
    NoConditions,
    /// Listing comes out in reverse order.
    ReverseList,
    /// `start_after` is treated as inclusive.
    InclusiveStartAfter,
    /// Ranges are ignored: the whole object is returned.
    IgnoreRange,
    /// Watch never wakes once it has to wait.
    DeafWatch,
}

#[derive(Debug)]
struct Mutant {
    inner: MemoryStore,
    bug: Bug,
}

#[async_trait]
impl Backend for Mutant {
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
    async fn put(&self, key: &Key, data: Bytes, opts: PutOptions) -> Result<Meta> {
        let opts = if self.bug == Bug::NoConditions {
            PutMode::Overwrite.into()
        } else {
            opts
        };
        self.inner.put(key, data, opts).await
    }
    async fn writer(&self, key: &Key, opts: PutOptions) -> Result<Box<dyn ObjectWriter>> {
        let opts = if self.bug == Bug::NoConditions {
            PutMode::Overwrite.into()
        } else {
            opts
        };
        self.inner.writer(key, opts).await
    }
    async fn get(&self, key: &Key, mut opts: GetOptions) -> Result<Object> {
        if self.bug == Bug::IgnoreRange {
            opts.range = None;
        }
        self.inner.get(key, opts).await
    }
    async fn head(&self, key: &Key) -> Result<Meta> {
        self.inner.head(key).await
    }
    async fn delete(&self, key: &Key, opts: DeleteOptions) -> Result<()> {
        self.inner.delete(key, opts).await
    }
    fn list(&self, mut opts: ListOptions) -> BoxStream<'static, Result<Meta>> {
        match self.bug {
            Bug::ReverseList => {
                let inner = self.inner.list(opts);
                stream::once(async move {
                    let mut all: Vec<_> = inner.collect().await;
                    all.reverse();
                    stream::iter(all)
                })
                .flatten()
                .boxed()
            }
            Bug::InclusiveStartAfter => {
                let after = opts.start_after.take();
                self.inner
                    .list(opts)
                    .filter(move |m| {
                        let keep = match (&after, m) {
                            (Some(a), Ok(m)) => m.key.as_str() >= a.as_str(),
                            _ => true,
                        };
                        async move { keep }
                    })
                    .boxed()
            }
            _ => self.inner.list(opts),
        }
    }
    async fn watch(&self, key: &Key, seen: Option<&Version>) -> Result<Option<Version>> {
        if self.bug == Bug::DeafWatch {
            let current = self.inner.head(key).await.ok().map(|m| m.version);
            if current.as_ref() != seen {
                return Ok(current);
            }
            std::future::pending::<()>().await;
        }
        self.inner.watch(key, seen).await
    }
}

fn pick(names: &[&str]) -> Vec<(&'static str, Check)> {
    let chosen: Vec<_> = CHECKS
        .iter()
        .filter(|(n, _)| names.contains(n))
        .copied()
        .collect();
    assert_eq!(chosen.len(), names.len(), "unknown check name in {names:?}");
    chosen
}

async fn failures(bug: Bug, names: &[&str]) -> String {
    let checks = pick(names);
    let outcome = AssertUnwindSafe(run_checks(
        || async move {
            Mutant {
                inner: MemoryStore::new(),
                bug,
            }
        },
        &checks,
    ))
    .catch_unwind()
    .await;
    let panic = outcome.expect_err("the suite passed a broken backend");
    panic.downcast_ref::<String>().cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn catches_missing_compare_and_swap() {
    let names = [
        "create_is_exclusive",
        "update_is_compare_and_swap",
        "concurrent_creates_have_one_winner",
        "concurrent_cas_increments_are_exact",
        "writer_applies_put_mode_at_close",
        "model_based_random_operations",
    ];
    let msg = failures(Bug::NoConditions, &names).await;
    // Lost updates in the CAS-increment race depend on scheduling; every other check here
    // catches the missing conditions deterministically.
    for name in names
        .iter()
        .filter(|n| **n != "concurrent_cas_increments_are_exact")
    {
        assert!(
            msg.contains(&format!("\n{name}: ")),
            "{name} did not catch it: {msg}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catches_unordered_listing_and_inclusive_start_after() {
    let msg = failures(
        Bug::ReverseList,
        &["list_is_ordered_and_filtered", "list_many_keys_pages_in_order"],
    )
    .await;
    assert!(msg.starts_with("2 of 2"), "{msg}");
    let msg = failures(
        Bug::InclusiveStartAfter,
        &["list_is_ordered_and_filtered", "model_based_random_operations"],
    )
    .await;
    assert!(msg.starts_with("2 of 2") && msg.contains("exclusive"), "{msg}");
}

#[tokio::test]
async fn catches_ignored_ranges() {
    let msg = failures(Bug::IgnoreRange, &["range_reads", "put_get_round_trip"]).await;
    assert!(msg.starts_with("1 of 2") && msg.contains("range_reads"), "{msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catches_a_watch_that_never_wakes() {
    let msg = failures(Bug::DeafWatch, &["watch_wakes_on_put_and_delete"]).await;
    assert!(msg.contains("not woken"), "{msg}");
}
