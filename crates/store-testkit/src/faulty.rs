//! `Faulty<B>`: a backend wrapper that injects errors, latency and hangs.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::{self, BoxStream, StreamExt};
use parking_lot::Mutex;
use store_core::{
    Backend, Capabilities, DeleteOptions, Error, GetOptions, Key, ListOptions, Meta, Object, ObjectWriter,
    PutOptions, Result, Version,
};
use tokio::sync::Notify;

/// An operation a fault can be attached to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FaultOp {
    /// `Backend::put`.
    Put,
    /// `Backend::writer` (opening a writer).
    WriterOpen,
    /// `ObjectWriter::write` (one chunk).
    WriterWrite,
    /// `ObjectWriter::close` (the commit).
    WriterClose,
    /// `Backend::get`.
    Get,
    /// `Backend::head`.
    Head,
    /// `Backend::delete`.
    Delete,
    /// `Backend::list` (fails or delays the first item).
    List,
    /// `Backend::watch`.
    Watch,
}

/// What happens to a call a rule matches.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Fail with a non-retryable [`Error::Backend`] saying "injected fault at `op`".
    Fail,
    /// Fail with a retryable [`Error::Backend`].
    FailRetryable,
    /// Wait this long, then carry on normally.
    Latency(Duration),
    /// Wait until [`Faulty::release`] is called, then carry on normally.
    Hang,
}

/// One injection: a fault on an operation, optionally only for some keys, after some calls,
/// for a number of times.
#[derive(Debug, Clone)]
pub struct Rule {
    op: FaultOp,
    fault: Fault,
    key: Option<String>,
    skip: u64,
    times: Option<u64>,
}

impl Rule {
    /// `fault` on every call of `op`.
    pub fn new(op: FaultOp, fault: Fault) -> Self {
        Rule {
            op,
            fault,
            key: None,
            skip: 0,
            times: None,
        }
    }

    /// Only for this key.
    pub fn for_key(mut self, key: &Key) -> Self {
        self.key = Some(key.to_string());
        self
    }

    /// Let the first `n` matching calls through.
    pub fn after(mut self, n: u64) -> Self {
        self.skip = n;
        self
    }

    /// Apply to at most `n` calls, then stop.
    pub fn times(mut self, n: u64) -> Self {
        self.times = Some(n);
        self
    }
}

#[derive(Default)]
struct State {
    rules: Mutex<Vec<Rule>>,
    calls: Mutex<HashMap<FaultOp, u64>>,
    events: Mutex<Vec<String>>,
    release: Notify,
    released: Mutex<u64>,
}

/// Wraps a backend and injects faults at chosen operations: errors, latency and hangs.
///
/// Clones share their rules, so a test keeps one clone to steer and hands the other to the
/// code under test (a fan-out, a replica).
///
/// ```
/// use store_core::{BackendExt, Key};
/// use store_memory::MemoryStore;
/// use store_testkit::{Fault, FaultOp, Faulty, Rule};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let store = Faulty::new(MemoryStore::new());
/// store.inject(Rule::new(FaultOp::Put, Fault::Fail).after(1).times(1));
/// let key = Key::new("k").unwrap();
/// assert!(store.put_bytes(&key, "first").await.is_ok());   // let through
/// assert!(store.put_bytes(&key, "second").await.is_err()); // injected
/// assert!(store.put_bytes(&key, "third").await.is_ok());   // rule used up
/// assert_eq!(store.calls(FaultOp::Put), 3);
/// # }
/// ```
pub struct Faulty<B> {
    inner: Arc<B>,
    name: &'static str,
    state: Arc<State>,
}

impl<B: Backend> Faulty<B> {
    /// Wraps `inner` with no faults.
    pub fn new(inner: B) -> Self {
        Faulty {
            inner: Arc::new(inner),
            name: "faulty",
            state: Arc::default(),
        }
    }

    /// Names this backend in its events and errors (useful with several of them).
    pub fn named(mut self, name: &'static str) -> Self {
        self.name = name;
        self
    }

    /// The wrapped backend.
    pub fn inner(&self) -> &B {
        &self.inner
    }

    /// Adds a rule. Rules are checked in the order added; the first that applies wins.
    pub fn inject(&self, rule: Rule) {
        self.state.rules.lock().push(rule);
    }

    /// Removes every rule and wakes every hung call (which then proceeds normally).
    pub fn release(&self) {
        self.state.rules.lock().clear();
        *self.state.released.lock() += 1;
        self.state.release.notify_waiters();
    }

    /// How many times `op` was called.
    pub fn calls(&self, op: FaultOp) -> u64 {
        self.state.calls.lock().get(&op).copied().unwrap_or(0)
    }

    /// Completed operations, in completion order, as `"<name> <op> <key> ok|err"`.
    pub fn events(&self) -> Vec<String> {
        self.state.events.lock().clone()
    }

    fn record(&self, op: FaultOp, key: &str, ok: bool) {
        let outcome = if ok { "ok" } else { "err" };
        self.state
            .events
            .lock()
            .push(format!("{} {op:?} {key} {outcome}", self.name));
    }

    /// Counts the call and applies the first matching rule.
    async fn before(&self, op: FaultOp, key: &str) -> Result<()> {
        *self.state.calls.lock().entry(op).or_default() += 1;
        let fault = {
            let mut rules = self.state.rules.lock();
            let mut chosen = None;
            for rule in rules.iter_mut() {
                if rule.op != op || rule.key.as_deref().is_some_and(|k| k != key) {
                    continue;
                }
                if rule.skip > 0 {
                    rule.skip -= 1;
                    continue;
                }
                if let Some(t) = &mut rule.times {
                    if *t == 0 {
                        continue;
                    }
                    *t -= 1;
                }
                chosen = Some(rule.fault.clone());
                break;
            }
            chosen
        };
        match fault {
            None => Ok(()),
            Some(Fault::Fail) => Err(self.injected(op, key, false)),
            Some(Fault::FailRetryable) => Err(self.injected(op, key, true)),
            Some(Fault::Latency(d)) => {
                tokio::time::sleep(d).await;
                Ok(())
            }
            Some(Fault::Hang) => {
                let epoch = *self.state.released.lock();
                loop {
                    let notified = self.state.release.notified();
                    tokio::pin!(notified);
                    notified.as_mut().enable();
                    if *self.state.released.lock() != epoch {
                        return Ok(());
                    }
                    notified.await;
                }
            }
        }
    }

    fn injected(&self, op: FaultOp, key: &str, retryable: bool) -> Error {
        Error::Backend {
            backend: self.name,
            retryable,
            source: format!("injected fault at {op:?} {key:?}").into(),
        }
    }

    fn observe<T>(&self, op: FaultOp, key: &str, r: Result<T>) -> Result<T> {
        self.record(op, key, r.is_ok());
        r
    }
}

// Not derived: a derive would require `B: Clone`, but clones share `inner` through the `Arc`.
impl<B> Clone for Faulty<B> {
    fn clone(&self) -> Self {
        Faulty {
            inner: Arc::clone(&self.inner),
            name: self.name,
            state: Arc::clone(&self.state),
        }
    }
}

impl<B> fmt::Debug for Faulty<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Faulty")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl<B: Backend> Backend for Faulty<B> {
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    async fn put(&self, key: &Key, data: Bytes, opts: PutOptions) -> Result<Meta> {
        let r = match self.before(FaultOp::Put, key.as_str()).await {
            Ok(()) => self.inner.put(key, data, opts).await,
            Err(e) => Err(e),
        };
        self.observe(FaultOp::Put, key.as_str(), r)
    }

    async fn writer(&self, key: &Key, opts: PutOptions) -> Result<Box<dyn ObjectWriter>> {
        self.before(FaultOp::WriterOpen, key.as_str()).await?;
        let inner = self.inner.writer(key, opts).await?;
        Ok(Box::new(FaultyWriter {
            owner: self.clone(),
            key: key.to_string(),
            inner,
        }))
    }

    async fn get(&self, key: &Key, opts: GetOptions) -> Result<Object> {
        self.before(FaultOp::Get, key.as_str()).await?;
        self.inner.get(key, opts).await
    }

    async fn head(&self, key: &Key) -> Result<Meta> {
        self.before(FaultOp::Head, key.as_str()).await?;
        self.inner.head(key).await
    }

    async fn delete(&self, key: &Key, opts: DeleteOptions) -> Result<()> {
        let r = match self.before(FaultOp::Delete, key.as_str()).await {
            Ok(()) => self.inner.delete(key, opts).await,
            Err(e) => Err(e),
        };
        self.observe(FaultOp::Delete, key.as_str(), r)
    }

    fn list(&self, opts: ListOptions) -> BoxStream<'static, Result<Meta>> {
        let this = self.clone();
        stream::once(async move {
            match this.before(FaultOp::List, "").await {
                Ok(()) => this.inner.list(opts),
                Err(e) => stream::once(async move { Err(e) }).boxed(),
            }
        })
        .flatten()
        .boxed()
    }

    async fn watch(&self, key: &Key, seen: Option<&Version>) -> Result<Option<Version>> {
        self.before(FaultOp::Watch, key.as_str()).await?;
        self.inner.watch(key, seen).await
    }
}

struct FaultyWriter<B> {
    owner: Faulty<B>,
    key: String,
    inner: Box<dyn ObjectWriter>,
}

impl<B> fmt::Debug for FaultyWriter<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FaultyWriter")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl<B: Backend> ObjectWriter for FaultyWriter<B> {
    async fn write(&mut self, chunk: Bytes) -> Result<()> {
        self.owner.before(FaultOp::WriterWrite, &self.key).await?;
        self.inner.write(chunk).await
    }

    async fn close(self: Box<Self>) -> Result<Meta> {
        let this = *self;
        let r = match this.owner.before(FaultOp::WriterClose, &this.key).await {
            Ok(()) => this.inner.close().await,
            // The commit "failed": make sure nothing becomes visible.
            Err(e) => {
                let _ = this.inner.abort().await;
                Err(e)
            }
        };
        this.owner.observe(FaultOp::WriterClose, &this.key, r)
    }

    async fn abort(self: Box<Self>) -> Result<()> {
        self.inner.abort().await
    }
}
