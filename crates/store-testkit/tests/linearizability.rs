//! The linearizability check must catch broken backends: each mutant here breaks the
//! register model in one way, and a driven, recorded history of it must fail the check.
//! Also: what the recorder writes down for each kind of outcome.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::{BoxStream, StreamExt};
use parking_lot::Mutex;
use store_core::{
    Backend, BackendExt, Capabilities, DeleteOptions, Error, GetOptions, Key, ListOptions, Meta, Object,
    ObjectWriter, PutMode, PutOptions, Result, Version,
};
use store_memory::MemoryStore;
use store_testkit::history::{Call, Outcome, Recording};
use store_testkit::history::{History, Op};
use store_testkit::linearizability::{
    Config, DEFAULT_SEARCH_BUDGET, ViolationKind, check, check_within, drive,
};
use store_testkit::{Fault, FaultOp, Faulty, Rule};

#[derive(Debug, Clone, Copy, PartialEq)]
enum Bug {
    /// Heads are served from a cache that only every third head (and every get) refreshes.
    StaleReads,
    /// `Update` and `Create` behave like `Overwrite`.
    NoConditions,
    /// Listings leave out the key written last.
    ListMissesLastWrite,
    /// A watch reports the version before the current one.
    WatchGoesBack,
    /// Versions count per key and restart after a delete.
    VersionsRestart,
    /// A put is applied, then reported as refused before it was sent.
    LiesAboutRefusals,
}

#[derive(Debug)]
struct Mutant {
    inner: MemoryStore,
    bug: Bug,
    reads: AtomicU64,
    cache: Mutex<HashMap<Key, Meta>>,
    history: Mutex<HashMap<Key, Vec<Version>>>,
    last_written: Mutex<Option<Key>>,
    counters: Mutex<HashMap<Key, (u64, u64)>>,
}

impl Mutant {
    fn new(bug: Bug) -> Self {
        Mutant {
            inner: MemoryStore::new(),
            bug,
            reads: AtomicU64::new(0),
            cache: Mutex::default(),
            history: Mutex::default(),
            last_written: Mutex::default(),
            counters: Mutex::default(),
        }
    }

    /// With `VersionsRestart`, versions are `<epoch>.<n>` where `n` restarts at each delete
    /// and `epoch` does not move: the same version comes back.
    fn restart_version(&self, key: &Key, deleted: bool) -> Version {
        let mut counters = self.counters.lock();
        let c = counters.entry(key.clone()).or_default();
        if deleted {
            c.1 = 0;
            return Version::empty();
        }
        c.1 += 1;
        Version::parse(&format!("{}.{}", c.0, c.1))
    }
}

#[async_trait]
impl Backend for Mutant {
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    async fn put(&self, key: &Key, data: Bytes, mut opts: PutOptions) -> Result<Meta> {
        if self.bug == Bug::NoConditions {
            opts.mode = PutMode::Overwrite;
        }
        let mut meta = self.inner.put(key, data, opts).await?;
        *self.last_written.lock() = Some(key.clone());
        self.history
            .lock()
            .entry(key.clone())
            .or_default()
            .push(meta.version.clone());
        if self.bug == Bug::VersionsRestart {
            meta.version = self.restart_version(key, false);
        }
        if self.bug == Bug::LiesAboutRefusals && self.reads.fetch_add(1, Ordering::Relaxed).is_multiple_of(4)
        {
            return Err(Error::not_applied("mutant", format!("put {key:?} refused")));
        }
        Ok(meta)
    }

    async fn writer(&self, key: &Key, opts: PutOptions) -> Result<Box<dyn ObjectWriter>> {
        self.inner.writer(key, opts).await
    }

    async fn get(&self, key: &Key, opts: GetOptions) -> Result<Object> {
        let obj = self.inner.get(key, opts).await?;
        self.cache.lock().insert(key.clone(), obj.meta.clone());
        Ok(obj)
    }

    async fn head(&self, key: &Key) -> Result<Meta> {
        if self.bug == Bug::StaleReads
            && !self.reads.fetch_add(1, Ordering::Relaxed).is_multiple_of(3)
            && let Some(meta) = self.cache.lock().get(key).cloned()
        {
            return Ok(meta);
        }
        let meta = self.inner.head(key).await?;
        self.cache.lock().insert(key.clone(), meta.clone());
        Ok(meta)
    }

    async fn delete(&self, key: &Key, opts: DeleteOptions) -> Result<()> {
        self.inner.delete(key, opts).await?;
        if self.bug == Bug::VersionsRestart {
            self.restart_version(key, true);
        }
        Ok(())
    }

    fn list(&self, opts: ListOptions) -> BoxStream<'static, Result<Meta>> {
        let hidden = match self.bug {
            Bug::ListMissesLastWrite => self.last_written.lock().clone(),
            _ => None,
        };
        self.inner
            .list(opts)
            .filter(move |m| std::future::ready(m.as_ref().map_or(true, |m| Some(&m.key) != hidden.as_ref())))
            .boxed()
    }

    async fn watch(&self, key: &Key, seen: Option<&Version>) -> Result<Option<Version>> {
        let now = self.inner.watch(key, seen).await?;
        if self.bug == Bug::WatchGoesBack {
            let history = self.history.lock();
            let versions = history.get(key).map(Vec::as_slice).unwrap_or_default();
            if let [.., before, _] = versions {
                return Ok(Some(before.clone()));
            }
        }
        Ok(now)
    }
}

async fn violation_of(bug: Bug) -> store_testkit::linearizability::Violation {
    let backend: Arc<dyn Backend> = Arc::new(Mutant::new(bug));
    let config = Config::default().with_ops(2_000).with_seed(11);
    let history = drive(&[backend], &config).await;
    match check(&history) {
        Ok(checked) => panic!("{bug:?} went unnoticed in {} operations", checked.ops),
        Err(violation) => violation,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_planted_bug_is_caught_with_a_counterexample() {
    for bug in [
        Bug::StaleReads,
        Bug::NoConditions,
        Bug::ListMissesLastWrite,
        Bug::WatchGoesBack,
        Bug::LiesAboutRefusals,
    ] {
        let v = violation_of(bug).await;
        assert_eq!(v.kind, ViolationKind::NotLinearizable, "{bug:?}: {v}");
        assert!(
            !v.unordered.is_empty() && v.unordered.len() <= 12,
            "{bug:?}: a short window: {v}"
        );
        eprintln!("{bug:?} caught: {v}");
    }
    let v = violation_of(Bug::VersionsRestart).await;
    assert!(
        matches!(
            v.kind,
            ViolationKind::VersionReused | ViolationKind::NotLinearizable
        ),
        "{v}"
    );
}

fn key(s: &str) -> Key {
    Key::new(s).unwrap()
}

#[tokio::test]
async fn the_recorder_sorts_outcomes_by_what_they_say_of_the_effect() {
    let faulty = Faulty::new(MemoryStore::new());
    let recording = Recording::new();
    let store = recording.backend(faulty.clone(), 0);
    let k = key("k");
    store.create(&k, "a").await.unwrap();
    faulty.inject(Rule::new(FaultOp::Put, Fault::Refused).times(1));
    store.put_bytes(&k, "refused").await.unwrap_err();
    faulty.inject(Rule::new(FaultOp::Put, Fault::LostReply).times(1));
    store.put_bytes(&k, "lost").await.unwrap_err();
    faulty.inject(Rule::new(FaultOp::Put, Fault::LostReplyResolvable).times(1));
    store.put_bytes(&k, "resolved").await.unwrap_err();
    store.create(&k, "again").await.unwrap_err();
    faulty.inject(Rule::new(FaultOp::Get, Fault::FailRetryable).times(1));
    store.get_bytes(&k).await.unwrap_err();
    let (meta, value) = store.get_with_meta(&k).await.unwrap();
    let mut w = store
        .writer(&k, PutOptions::update(meta.version.clone()))
        .await
        .unwrap();
    w.write("stream".into()).await.unwrap();
    w.write("ed".into()).await.unwrap();
    w.close().await.unwrap();
    let listed: Vec<_> = store.list(ListOptions::default()).collect().await;
    faulty.inject(Rule::new(FaultOp::Delete, Fault::Hang));
    let hung = tokio::time::timeout(Duration::from_millis(10), store.delete_if_exists(&k)).await;
    assert!(hung.is_err());
    faulty.release();

    let ops = recording.history().ops;
    let outcomes: Vec<_> = ops.iter().map(|op| &op.outcome).collect();
    assert!(matches!(outcomes[0], Outcome::Written(_)));
    assert!(matches!(outcomes[1], Outcome::Failed(why) if why.contains("not applied")));
    assert!(matches!(outcomes[2], Outcome::Unknown(_)));
    assert!(
        matches!(outcomes[3], Outcome::Written(_)),
        "resolved: {:?}",
        outcomes[3]
    );
    assert!(matches!(outcomes[4], Outcome::AlreadyExists(v) if !v.is_empty()));
    assert!(matches!(outcomes[5], Outcome::Failed(_)));
    assert_eq!(
        outcomes[6],
        &Outcome::Read {
            value,
            version: meta.version
        }
    );
    assert!(matches!(&ops[7].call, Call::Put { value, .. } if value == "streamed"));
    let Outcome::Written(last) = outcomes[7] else {
        panic!("{:?}", outcomes[7])
    };
    assert_eq!(listed.len(), 1);
    assert_eq!(
        outcomes[8],
        &Outcome::Listed {
            entries: vec![(k.clone(), last.clone())],
            complete: true
        }
    );
    assert!(matches!(outcomes[9], Outcome::Unknown(_)) && ops[9].returned.is_none());
    assert!(ops.windows(2).all(|w| w[0].invoked <= w[1].invoked));
    check(&recording.history()).unwrap_or_else(|v| panic!("{v}"));
}

/// A search over its budget is undecided, names the key's writes of unknown outcome and how
/// to decide it; a larger budget decides the same history.
#[test]
fn a_search_over_its_budget_is_undecided_and_lists_the_writes_of_unknown_outcome() {
    let k = key("k");
    let put = |value: &'static str| Call::Put {
        key: k.clone(),
        value: value.into(),
        mode: PutMode::Overwrite,
    };
    let read_b = Outcome::Read {
        value: "b".into(),
        version: Version::from(7),
    };
    let ms = |n: u64| Some(Duration::from_millis(n));
    let ops = [
        (0, put("a"), Outcome::Unknown("lost".into()), 0, None),
        (1, put("b"), Outcome::Unknown("lost".into()), 0, None),
        (2, Call::Get { key: k.clone() }, read_b.clone(), 1, ms(2)),
        (2, Call::Get { key: k.clone() }, read_b, 3, ms(4)),
        (3, put("c"), Outcome::Written(Version::from(9)), 5, ms(6)),
    ];
    let mut h = History::default();
    for (client, call, outcome, invoked, returned) in ops {
        let invoked = Duration::from_millis(invoked);
        h.push(Op {
            client,
            call,
            outcome,
            invoked,
            returned,
        });
    }
    let e = check_within(&h, 1).unwrap_err();
    assert_eq!(e.kind, ViolationKind::Undecided, "{e}");
    assert_eq!(e.walked, 2, "{e}");
    let listed: Vec<usize> = e.unordered.iter().map(|op| op.client).collect();
    assert_eq!(listed, [0, 1], "{e}");
    let shown = e.to_string();
    assert!(
        shown.contains("after 2 steps") && shown.contains("with_search_budget"),
        "{shown}"
    );
    assert_eq!(
        check_within(&h, DEFAULT_SEARCH_BUDGET).unwrap(),
        check(&h).unwrap()
    );

    // Many of them: all listed in the violation, the first 20 shown.
    for client in 10..40 {
        h.push(Op {
            client,
            call: put("x"),
            outcome: Outcome::Unknown("lost".into()),
            invoked: Duration::ZERO,
            returned: None,
        });
    }
    let e = check_within(&h, 1).unwrap_err();
    assert_eq!(e.unordered.len(), 32, "{e}");
    let shown = e.to_string();
    assert!(shown.contains("its 32 operations of unknown outcome"), "{shown}");
    assert!(shown.contains("the first 20:"), "{shown}");
    assert_eq!(shown.lines().count(), 2 + 20, "{shown}");
}

/// The driver's search budget reaches the check: a linearizable history of a correct store
/// is undecided within one step, and the panic says what to change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[should_panic(expected = "the search gave up after 2 steps")]
async fn the_drivers_search_budget_reaches_the_check() {
    let config = Config::default().with_ops(200).with_search_budget(1);
    store_testkit::linearizability::linearizability(|| async { MemoryStore::new() }, config).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_seed_replays_the_same_schedule() {
    let schedule = |seed| async move {
        let backend: Arc<dyn Backend> = Arc::new(MemoryStore::new());
        let config = Config::default().with_ops(300).with_seed(seed);
        let mut calls: Vec<_> = drive(&[backend], &config)
            .await
            .ops
            .into_iter()
            .map(|op| (op.client, shape(&op.call)))
            .collect();
        calls.sort_by_key(|(client, _)| *client);
        calls
    };
    assert_eq!(schedule(5).await, schedule(5).await);
    assert_ne!(schedule(5).await, schedule(6).await);
}

/// A call without the versions it was given, which depend on timing.
fn shape(call: &Call) -> String {
    match call {
        Call::Put { key, value, mode } => {
            let mode = match mode {
                PutMode::Overwrite => "overwrite",
                PutMode::Create => "create",
                PutMode::Update(_) => "update",
            };
            format!("put {key} {value:?} {mode}")
        }
        Call::Delete { key, if_match } => format!("delete {key} {}", if_match.is_some()),
        Call::Watch { key, .. } => format!("watch {key}"),
        other => other.to_string(),
    }
}
