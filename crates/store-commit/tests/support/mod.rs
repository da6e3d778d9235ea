//! Shared by the integration tests: a power switch for backends and state snapshots.

#![allow(dead_code)] // each test binary uses a different part

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures::TryStreamExt;
use store_core::{
    Backend, BoxStream, Bytes, Capabilities, DeleteOptions, GetOptions, Key, ListOptions, Meta, Object,
    ObjectWriter, PutOptions, Result, Version, async_trait,
};
use tokio::sync::Notify;

/// A power supply shared by several backends: after `budget` mutations (puts, deletes,
/// writers) the power goes out — the next mutation never happens and never returns, just
/// like in a process that died — and `died` is notified.
#[derive(Clone)]
pub(crate) struct Power {
    budget: Arc<AtomicU64>,
    used: Arc<AtomicU64>,
    pub(crate) died: Arc<Notify>,
    on_death: Arc<dyn Fn() + Send + Sync>,
}

impl Power {
    pub(crate) fn with_budget(budget: u64) -> Power {
        Power::with_hook(budget, || {})
    }

    /// Calls `hook` at the moment of death (before hanging): a child process prints there.
    pub(crate) fn with_hook(budget: u64, hook: impl Fn() + Send + Sync + 'static) -> Power {
        Power {
            budget: Arc::new(AtomicU64::new(budget)),
            used: Arc::new(AtomicU64::new(0)),
            died: Arc::new(Notify::new()),
            on_death: Arc::new(hook),
        }
    }

    pub(crate) fn unlimited() -> Power {
        Power::with_budget(u64::MAX)
    }

    /// Mutations made so far.
    pub(crate) fn used(&self) -> u64 {
        self.used.load(Ordering::SeqCst)
    }

    async fn spend(&self) {
        let granted = self
            .budget
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |b| b.checked_sub(1))
            .is_ok();
        if !granted {
            (self.on_death)();
            self.died.notify_one();
            std::future::pending::<()>().await;
        }
        self.used.fetch_add(1, Ordering::SeqCst);
    }

    pub(crate) fn wrap<B: Backend>(&self, inner: B) -> Powered<B> {
        Powered {
            inner,
            power: self.clone(),
        }
    }
}

/// A backend running on a [`Power`] supply.
pub(crate) struct Powered<B> {
    inner: B,
    power: Power,
}

impl<B: std::fmt::Debug> std::fmt::Debug for Powered<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Powered").field(&self.inner).finish()
    }
}

#[async_trait]
impl<B: Backend> Backend for Powered<B> {
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
    async fn put(&self, key: &Key, data: Bytes, opts: PutOptions) -> Result<Meta> {
        self.power.spend().await;
        self.inner.put(key, data, opts).await
    }
    async fn writer(&self, key: &Key, opts: PutOptions) -> Result<Box<dyn ObjectWriter>> {
        self.power.spend().await;
        self.inner.writer(key, opts).await
    }
    async fn get(&self, key: &Key, opts: GetOptions) -> Result<Object> {
        self.inner.get(key, opts).await
    }
    async fn head(&self, key: &Key) -> Result<Meta> {
        self.inner.head(key).await
    }
    async fn delete(&self, key: &Key, opts: DeleteOptions) -> Result<()> {
        self.power.spend().await;
        self.inner.delete(key, opts).await
    }
    fn list(&self, opts: ListOptions) -> BoxStream<'static, Result<Meta>> {
        self.inner.list(opts)
    }
    async fn watch(&self, key: &Key, seen: Option<&Version>) -> Result<Option<Version>> {
        self.inner.watch(key, seen).await
    }
}

/// Every object of `b` outside `hidden` (Staged's prefix), with its content and version.
pub(crate) async fn snapshot(b: &dyn Backend, hidden: &str) -> BTreeMap<String, (Bytes, Version)> {
    let metas: Vec<Meta> = b
        .list(ListOptions::default())
        .try_collect()
        .await
        .unwrap_or_else(|e| panic!("list: {e}"));
    let mut out = BTreeMap::new();
    for m in metas {
        if m.key.as_str() == hidden || m.key.as_str().starts_with(&format!("{hidden}/")) {
            continue;
        }
        let obj = b
            .get(&m.key, GetOptions::default())
            .await
            .unwrap_or_else(|e| panic!("get {}: {e}", m.key));
        let version = obj.meta.version.clone();
        let data = obj
            .bytes()
            .await
            .unwrap_or_else(|e| panic!("read {}: {e}", m.key));
        out.insert(m.key.to_string(), (data, version));
    }
    out
}

/// Like [`snapshot`] without versions.
pub(crate) async fn contents(b: &dyn Backend, hidden: &str) -> BTreeMap<String, Bytes> {
    snapshot(b, hidden)
        .await
        .into_iter()
        .map(|(k, (d, _))| (k, d))
        .collect()
}

pub(crate) fn key(s: &str) -> Key {
    Key::new(s).unwrap_or_else(|e| panic!("test key {s:?}: {e}"))
}
