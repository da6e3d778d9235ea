//! `Faulty<B>`: a backend wrapper that injects errors, latency and hangs.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::{self, BoxStream, StreamExt};
use parking_lot::Mutex;
use store_core::{
    Backend, Capabilities, DeleteOptions, Error, GetOptions, Key, ListOptions, Meta, Object, ObjectWriter,
    PutOptions, Result, Version, WriteResolver,
};
use tokio::sync::Notify;

mod rule;

pub use rule::{Fault, FaultOp, Rule};

/// What a call does after its rule (if any) was applied.
enum Then {
    Proceed,
    /// Make the call, then fail instead of replying.
    LoseReply {
        resolvable: bool,
    },
}

#[derive(Default)]
struct State {
    rules: Mutex<Vec<Rule>>,
    calls: Mutex<HashMap<FaultOp, u64>>,
    events: Mutex<Vec<String>>,
    release: Notify,
    released: Mutex<u64>,
    draws: AtomicU64,
}

/// Wraps a backend and injects faults at chosen operations: errors before or after the
/// call takes effect, latency and hangs, on every call or at random.
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

    /// A uniform draw from `0.0..1.0` (splitmix64 over a counter: fixed seed, no dependency).
    fn draw(&self) -> f64 {
        let mut z = self
            .state
            .draws
            .fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed)
            .wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Counts the call and applies the first matching rule.
    async fn before(&self, op: FaultOp, key: &str) -> Result<Then> {
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
                if rule.probability.is_some_and(|p| self.draw() >= p) {
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
            None => Ok(Then::Proceed),
            Some(Fault::Fail) => Err(self.injected(op, key, false)),
            Some(Fault::FailRetryable) => Err(self.injected(op, key, true)),
            Some(Fault::Refused) => Err(Error::not_applied(
                self.name,
                format!("injected refusal at {op:?} {key:?}"),
            )),
            Some(Fault::LostReply) => Ok(Then::LoseReply { resolvable: false }),
            Some(Fault::LostReplyResolvable) => Ok(Then::LoseReply { resolvable: true }),
            Some(Fault::DroppedResolvable) => Err(self.dropped(op, key)),
            Some(Fault::Latency(d)) => {
                tokio::time::sleep(d).await;
                Ok(Then::Proceed)
            }
            Some(Fault::Hang) => {
                let epoch = *self.state.released.lock();
                loop {
                    let notified = self.state.release.notified();
                    tokio::pin!(notified);
                    notified.as_mut().enable();
                    if *self.state.released.lock() != epoch {
                        return Ok(Then::Proceed);
                    }
                    notified.await;
                }
            }
        }
    }

    /// Applies the rules of `op` to `call`. With a lost reply, the call is made and its
    /// reply replaced by an error; `resolver` makes the [`WriteResolver`] of a resolvable
    /// one from the reply (a write's metadata), or `None` where there is nothing to resolve.
    async fn run<T>(
        &self,
        op: FaultOp,
        key: &str,
        call: impl Future<Output = Result<T>>,
        resolver: fn(&T) -> Option<WriteResolver>,
    ) -> Result<T> {
        match self.before(op, key).await? {
            Then::Proceed => call.await,
            Then::LoseReply { resolvable } => {
                let reply = call.await?;
                Err(self.lost(op, key, resolvable.then(|| resolver(&reply)).flatten()))
            }
        }
    }

    /// The error of a lost reply: an outcome-unknown error with `resolver`, or without one a
    /// plain retryable error, as most backends give.
    fn lost(&self, op: FaultOp, key: &str, resolver: Option<WriteResolver>) -> Error {
        let what = format!("injected lost reply at {op:?} {key:?} (the call was applied)");
        match resolver {
            Some(r) => Error::outcome_unknown(self.name, what, Some(r)),
            None => Error::Backend {
                backend: self.name,
                retryable: true,
                source: what.into(),
            },
        }
    }

    /// The error of a request lost on its way: outcome unknown, with a resolver that finds a
    /// put or a writer's close not applied.
    fn dropped(&self, op: FaultOp, key: &str) -> Error {
        let what = format!("injected dropped request at {op:?} {key:?} (the call was not made)");
        let resolver = matches!(op, FaultOp::Put | FaultOp::WriterClose)
            .then(|| WriteResolver::new(|| std::future::ready(Ok(None))));
        Error::outcome_unknown(self.name, what, resolver)
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

    /// Applies `ListItem` rules before each item of `items`; an injected error ends it.
    fn faulty_items(self, items: BoxStream<'static, Result<Meta>>) -> BoxStream<'static, Result<Meta>> {
        stream::unfold(Some((self, items)), |state| async move {
            let (this, mut items) = state?;
            let item = match this.before(FaultOp::ListItem, "").await {
                Ok(Then::Proceed) => items.next().await?,
                Ok(Then::LoseReply { .. }) => {
                    items.next().await?.ok();
                    Err(this.lost(FaultOp::ListItem, "", None))
                }
                Err(e) => Err(e),
            };
            let rest = item.is_ok().then_some((this, items));
            Some((item, rest))
        })
        .boxed()
    }
}

/// The resolver of a write Faulty saw applied: it reports that write. Faulty knows, as a
/// backend that reads back its own write ids knows.
fn applied(meta: &Meta) -> Option<WriteResolver> {
    let meta = meta.clone();
    Some(WriteResolver::new(move || {
        std::future::ready(Ok(Some(meta.clone())))
    }))
}

fn nothing<T>(_: &T) -> Option<WriteResolver> {
    None
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
        let call = self.inner.put(key, data, opts);
        let r = self.run(FaultOp::Put, key.as_str(), call, applied).await;
        self.observe(FaultOp::Put, key.as_str(), r)
    }

    async fn writer(&self, key: &Key, opts: PutOptions) -> Result<Box<dyn ObjectWriter>> {
        let call = self.inner.writer(key, opts);
        let inner = self.run(FaultOp::WriterOpen, key.as_str(), call, nothing).await?;
        Ok(Box::new(FaultyWriter {
            owner: self.clone(),
            key: key.to_string(),
            inner,
        }))
    }

    async fn get(&self, key: &Key, opts: GetOptions) -> Result<Object> {
        let call = self.inner.get(key, opts);
        self.run(FaultOp::Get, key.as_str(), call, nothing).await
    }

    async fn head(&self, key: &Key) -> Result<Meta> {
        let call = self.inner.head(key);
        self.run(FaultOp::Head, key.as_str(), call, nothing).await
    }

    async fn delete(&self, key: &Key, opts: DeleteOptions) -> Result<()> {
        let call = self.inner.delete(key, opts);
        let r = self.run(FaultOp::Delete, key.as_str(), call, nothing).await;
        self.observe(FaultOp::Delete, key.as_str(), r)
    }

    fn list(&self, opts: ListOptions) -> BoxStream<'static, Result<Meta>> {
        let this = self.clone();
        stream::once(async move {
            let failed = match this.before(FaultOp::List, "").await {
                Ok(Then::Proceed) => {
                    let items = this.inner.list(opts);
                    return this.faulty_items(items);
                }
                Ok(Then::LoseReply { .. }) => this.lost(FaultOp::List, "", None),
                Err(e) => e,
            };
            stream::once(async move { Err(failed) }).boxed()
        })
        .flatten()
        .boxed()
    }

    async fn watch(&self, key: &Key, seen: Option<&Version>) -> Result<Option<Version>> {
        let call = self.inner.watch(key, seen);
        self.run(FaultOp::Watch, key.as_str(), call, nothing).await
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
        let call = self.inner.write(chunk);
        self.owner
            .run(FaultOp::WriterWrite, &self.key, call, nothing)
            .await
    }

    async fn close(self: Box<Self>) -> Result<Meta> {
        let this = *self;
        let r = match this.owner.before(FaultOp::WriterClose, &this.key).await {
            Ok(Then::Proceed) => this.inner.close().await,
            Ok(Then::LoseReply { resolvable }) => match this.inner.close().await {
                Ok(meta) => Err(this.owner.lost(
                    FaultOp::WriterClose,
                    &this.key,
                    resolvable.then(|| applied(&meta)).flatten(),
                )),
                Err(e) => Err(e),
            },
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

#[cfg(test)]
mod tests {
    use futures::StreamExt;
    use store_core::{BackendExt, ErrorKind};
    use store_memory::MemoryStore;

    use super::*;

    fn k(s: &str) -> Key {
        Key::new(s).unwrap()
    }

    #[tokio::test]
    async fn refusals_change_nothing_and_say_so() {
        let f = Faulty::new(MemoryStore::new());
        f.inject(Rule::new(FaultOp::Put, Fault::Refused).times(1));
        let e = f.create(&k("a"), "x").await.unwrap_err();
        assert!(e.is_not_applied() && e.is_retryable(), "{e}");
        assert!(e.to_string().contains("\"a\""), "{e}");
        assert!(f.inner().head_opt(&k("a")).await.unwrap().is_none());
        f.create(&k("a"), "x").await.unwrap();
    }

    #[tokio::test]
    async fn lost_replies_are_applied_and_resolvable_ones_say_how() {
        let f = Faulty::new(MemoryStore::new());
        f.inject(Rule::new(FaultOp::Put, Fault::LostReply).times(1));
        let e = f.create(&k("a"), "1").await.unwrap_err();
        assert!(
            e.is_retryable() && !e.is_not_applied() && e.resolver().is_none(),
            "{e}"
        );
        assert_eq!(
            f.inner().get_bytes(&k("a")).await.unwrap(),
            "1",
            "the write was applied"
        );

        f.inject(Rule::new(FaultOp::Put, Fault::LostReplyResolvable).times(1));
        let v1 = f.inner().head(&k("a")).await.unwrap().version;
        let e = f.update(&k("a"), "2", v1).await.unwrap_err();
        assert!(e.is_outcome_unknown(), "{e}");
        let resolved = e.resolver().unwrap().resolve().await.unwrap().unwrap();
        assert_eq!(resolved.version, f.inner().head(&k("a")).await.unwrap().version);
        assert_eq!(f.inner().get_bytes(&k("a")).await.unwrap(), "2");

        f.inject(Rule::new(FaultOp::WriterClose, Fault::LostReplyResolvable).times(1));
        let mut w = f.writer(&k("b"), PutOptions::create()).await.unwrap();
        w.write("3".into()).await.unwrap();
        let e = w.close().await.unwrap_err();
        let resolved = e.resolver().unwrap().resolve().await.unwrap().unwrap();
        assert_eq!(resolved.version, f.inner().head(&k("b")).await.unwrap().version);

        f.inject(Rule::new(FaultOp::Delete, Fault::LostReplyResolvable).times(1));
        let e = f.delete_if_exists(&k("b")).await.unwrap_err();
        assert!(e.resolver().is_none(), "a delete has no write to report: {e}");
        assert!(!f.inner().exists(&k("b")).await.unwrap());
    }

    #[tokio::test]
    async fn dropped_requests_are_not_applied_and_their_resolver_says_so() {
        let f = Faulty::new(MemoryStore::new());
        f.inject(Rule::new(FaultOp::Put, Fault::DroppedResolvable).times(1));
        let e = f.create(&k("a"), "1").await.unwrap_err();
        assert!(e.is_outcome_unknown() && !e.is_not_applied(), "{e}");
        assert!(e.to_string().contains("\"a\""), "{e}");
        assert_eq!(e.resolver().unwrap().resolve().await.unwrap(), None);
        assert!(!f.inner().exists(&k("a")).await.unwrap(), "not applied");

        f.inject(Rule::new(FaultOp::Delete, Fault::DroppedResolvable).times(1));
        f.put_bytes(&k("a"), "2").await.unwrap();
        let e = f.delete_if_exists(&k("a")).await.unwrap_err();
        assert!(e.is_outcome_unknown() && e.resolver().is_none(), "{e}");
        assert!(f.inner().exists(&k("a")).await.unwrap(), "not applied");
    }

    #[tokio::test]
    async fn probabilities_spare_some_calls() {
        let f = Faulty::new(MemoryStore::new());
        f.put_bytes(&k("a"), "x").await.unwrap();
        f.inject(Rule::new(FaultOp::Head, Fault::FailRetryable).with_probability(0.3));
        let mut failed = 0;
        for _ in 0..1000 {
            failed += usize::from(f.head(&k("a")).await.is_err());
        }
        assert!((200..400).contains(&failed), "{failed} of 1000 failed at p = 0.3");
        f.release();
        f.inject(Rule::new(FaultOp::Head, Fault::Fail).with_probability(0.0));
        f.inject(
            Rule::new(FaultOp::Head, Fault::FailRetryable)
                .with_probability(1.0)
                .times(2),
        );
        for retryable in [true, true, false] {
            match f.head(&k("a")).await {
                Err(e) if retryable => assert!(e.is_retryable(), "{e}"),
                Ok(_) if !retryable => {}
                other => panic!("{other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn list_items_fail_mid_stream_and_end_it() {
        let f = Faulty::new(MemoryStore::new());
        for i in 0..10 {
            f.put_bytes(&k(&format!("k{i}")), "x").await.unwrap();
        }
        f.inject(
            Rule::new(FaultOp::ListItem, Fault::FailRetryable)
                .after(3)
                .times(1),
        );
        let items: Vec<_> = f.list(ListOptions::default()).collect().await;
        assert_eq!(items.len(), 4, "three keys, then the error, then the end");
        assert!(items[..3].iter().all(|i| i.is_ok()));
        assert_eq!(items[3].as_ref().unwrap_err().kind(), ErrorKind::Backend);

        f.inject(Rule::new(FaultOp::ListItem, Fault::LostReply).after(2).times(1));
        let items: Vec<_> = f.list(ListOptions::default()).collect().await;
        assert_eq!(items.len(), 3);
        assert!(items[2].is_err());
        let all: Vec<_> = f.list(ListOptions::default()).collect().await;
        assert_eq!(all.len(), 10, "rules used up");
    }
}
