//! The driver: `K` clients making a seeded random mix of calls on a few hot keys.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::stream::StreamExt;
use store_core::{Backend, DeleteOptions, GetOptions, Key, ListOptions, PutMode, PutOptions, Version};

use super::{Checked, check_within};
use crate::history::{History, Outcome, Recorder, Recording};
use crate::{Fault, FaultOp, Faulty, Rule};

/// How often each call is chosen, as relative weights (0 = never).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Mix {
    /// `put` that overwrites.
    pub put: u32,
    /// `put` with `Create`.
    pub create: u32,
    /// `put` with `Update` from the last version the client saw.
    pub update: u32,
    /// A streaming writer (overwrite, create or update), closed after two chunks.
    pub writer: u32,
    /// `delete`.
    pub delete: u32,
    /// `delete` if at the last version the client saw (never on a backend whose
    /// capabilities say it does not enforce conditional deletes).
    pub delete_if: u32,
    /// `get`.
    pub get: u32,
    /// `head`.
    pub head: u32,
    /// A listing of the hot keys' prefix.
    pub list: u32,
    /// `watch` from the last version the client saw, cut short after
    /// [`Config::watch_timeout`].
    pub watch: u32,
}

impl Default for Mix {
    /// Every call: mostly conditional writes and reads, some deletes, listings and watches.
    fn default() -> Self {
        Mix {
            put: 10,
            create: 8,
            update: 20,
            writer: 2,
            delete: 4,
            delete_if: 4,
            get: 20,
            head: 8,
            list: 6,
            watch: 4,
        }
    }
}

impl Mix {
    /// The calls a [`RecordStore`](store_core::RecordStore) seen through
    /// [`RecordsAsBackend`](super::RecordsAsBackend) answers: no conditional delete.
    pub fn records() -> Mix {
        Mix {
            delete_if: 0,
            ..Mix::default()
        }
    }

    fn weights(&self) -> [u32; 10] {
        [
            self.put,
            self.create,
            self.update,
            self.writer,
            self.delete,
            self.delete_if,
            self.get,
            self.head,
            self.list,
            self.watch,
        ]
    }
}

/// What the driver does: how many clients, how many calls on how many keys, which faults.
///
/// `Config::default()` is sized for an ordinary `cargo test`: 4 clients, 2,000 calls on 3
/// keys. With `STORE_DEEP=1` in the environment (as `cargo xtask test --deep` sets) it is 8
/// clients and 20,000 calls.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Config {
    /// Seeds each client's choice of calls, keys and put modes: the same seed replays the
    /// same schedule of calls (the timing, and so the results, vary).
    pub seed: u64,
    /// Concurrent clients (tasks), each making one call at a time.
    pub clients: usize,
    /// Calls in all, shared out between the clients.
    pub ops: usize,
    /// Hot keys, `<prefix>k0`, `<prefix>k1`, ….
    pub keys: usize,
    /// The prefix of the hot keys, which listings list.
    pub prefix: String,
    /// How often each call is chosen.
    pub mix: Mix,
    /// Faults injected by a [`Faulty`] between the recorder and each backend (their
    /// probabilities are what makes them random). Released when the clients are done.
    pub faults: Vec<Rule>,
    /// A call still running after this long is dropped; its outcome stays unknown.
    pub op_timeout: Duration,
    /// A watch that has seen no change after this long is dropped.
    pub watch_timeout: Duration,
    /// Reads reporting a version this accepts are left out of the check (see
    /// [`Recording::with_unchecked_reads`]).
    pub unchecked_reads: Option<fn(&Version) -> bool>,
    /// Whether the versions reads report may mix two states (see
    /// [`Recording::with_torn_read_versions`]).
    pub torn_read_versions: bool,
    /// Whether the versions refused conditional writes and watches report may mix two
    /// states too (see [`Recording::with_torn_observed_versions`]).
    pub torn_observed_versions: bool,
    /// Whether a successful delete is held only to leaving the key absent (see
    /// [`Recording::with_unchecked_delete_presence`]).
    pub unchecked_delete_presence: bool,
    /// The most steps the check's search walks per key before the history is
    /// [`Undecided`](super::ViolationKind::Undecided).
    pub search_budget: u64,
}

impl Default for Config {
    fn default() -> Self {
        let deep = std::env::var("STORE_DEEP").is_ok_and(|v| v == "1");
        Config {
            seed: 1,
            clients: if deep { 8 } else { 4 },
            ops: if deep { 20_000 } else { 2_000 },
            keys: 3,
            prefix: "lin/".into(),
            mix: Mix::default(),
            faults: Vec::new(),
            op_timeout: Duration::from_secs(10),
            watch_timeout: Duration::from_millis(20),
            unchecked_reads: None,
            torn_read_versions: false,
            torn_observed_versions: false,
            unchecked_delete_presence: false,
            search_budget: super::DEFAULT_SEARCH_BUDGET,
        }
    }
}

impl Config {
    /// With this seed.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// With this many concurrent clients.
    pub fn with_clients(mut self, clients: usize) -> Self {
        self.clients = clients.max(1);
        self
    }

    /// With this many calls in all.
    pub fn with_ops(mut self, ops: usize) -> Self {
        self.ops = ops;
        self
    }

    /// With the number of calls scaled by `factor` (for slow backends: `0.25`).
    pub fn scaled(mut self, factor: f64) -> Self {
        self.ops = (self.ops as f64 * factor).ceil() as usize;
        self
    }

    /// With a search budget of `steps` per key (default
    /// [`DEFAULT_SEARCH_BUDGET`](super::DEFAULT_SEARCH_BUDGET)), for histories too
    /// concurrent or too faulty to decide within it.
    pub fn with_search_budget(mut self, steps: u64) -> Self {
        self.search_budget = steps;
        self
    }

    /// With this many hot keys.
    pub fn with_keys(mut self, keys: usize) -> Self {
        self.keys = keys.max(1);
        self
    }

    /// With the hot keys under this prefix.
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// With this mix of calls.
    pub fn with_mix(mut self, mix: Mix) -> Self {
        self.mix = mix;
        self
    }

    /// With this fault added.
    pub fn with_fault(mut self, rule: Rule) -> Self {
        self.faults.push(rule);
        self
    }

    /// With a fraction `p` (0.0 to 1.0) of calls hit by a fault: writes refused before
    /// they are sent, writes applied whose reply is lost (some resolvable), reads that fail,
    /// listings cut short, and latency.
    pub fn with_random_faults(mut self, p: f64) -> Self {
        let slow = Fault::Latency(Duration::from_millis(2));
        let writes = [FaultOp::Put, FaultOp::Delete, FaultOp::WriterClose];
        for op in writes {
            self.faults.extend([
                Rule::new(op, Fault::Refused).with_probability(p / 4.0),
                Rule::new(op, Fault::LostReply).with_probability(p / 4.0),
                Rule::new(op, Fault::LostReplyResolvable).with_probability(p / 4.0),
                Rule::new(op, slow.clone()).with_probability(p / 4.0),
            ]);
        }
        for op in [FaultOp::Get, FaultOp::Head, FaultOp::Watch] {
            self.faults.extend([
                Rule::new(op, Fault::FailRetryable).with_probability(p / 2.0),
                Rule::new(op, slow.clone()).with_probability(p / 2.0),
            ]);
        }
        self.faults
            .push(Rule::new(FaultOp::ListItem, Fault::FailRetryable).with_probability(p / 4.0));
        self
    }

    /// With a fraction `p` of puts, deletes and gets stalled until the driver gives up on
    /// them after `after` (their outcome then stays unknown).
    pub fn with_stalls(mut self, p: f64, after: Duration) -> Self {
        for op in [FaultOp::Put, FaultOp::Delete, FaultOp::Get] {
            self.faults.push(Rule::new(op, Fault::Hang).with_probability(p));
        }
        self.op_timeout = after;
        self
    }

    /// With the reads that report a version `unchecked` accepts left out of the check: for
    /// a backend that documents such reads as outside its guarantee (a replica's answer
    /// from a secondary's copy).
    pub fn with_unchecked_reads(mut self, unchecked: fn(&Version) -> bool) -> Self {
        self.unchecked_reads = Some(unchecked);
        self
    }

    /// With the versions that `get`, `head` and listings report left unchecked (their
    /// values and absence still are): for a backend that documents that a read racing a
    /// write may report a version mixing the two states.
    pub fn with_torn_read_versions(mut self) -> Self {
        self.torn_read_versions = true;
        self
    }

    /// With every version a call reports left unchecked except those of successful writes:
    /// [`with_torn_read_versions`](Self::with_torn_read_versions), and also the versions in
    /// `AlreadyExists` and `Conflict` errors and watch results. For a store that reads them
    /// without the lock its writes take, over a backend whose reads may mix two states
    /// (records over a fan-out).
    pub fn with_torn_observed_versions(mut self) -> Self {
        self.torn_read_versions = true;
        self.torn_observed_versions = true;
        self
    }

    /// With successful deletes held only to leaving the key absent, not to having found it:
    /// for a backend that documents its delete as a check followed by a delete, so that of
    /// two racing deletes both may report success.
    pub fn with_unchecked_delete_presence(mut self) -> Self {
        self.unchecked_delete_presence = true;
        self
    }

    fn key(&self, i: usize) -> Key {
        Key::new(format!("{}k{i}", self.prefix)).expect("the hot keys are valid keys")
    }
}

/// A driven and checked run.
#[derive(Debug)]
#[non_exhaustive]
pub struct Run {
    /// What the clients did.
    pub history: History,
    /// What the check covered.
    pub checked: Checked,
    /// How long the clients took.
    pub driven: Duration,
    /// How long the check took.
    pub checking: Duration,
}

/// Drives a fresh, empty backend from `factory` with `config`'s clients, checks the history,
/// and panics with the counterexample and the seed if it is not linearizable.
///
/// ```no_run
/// // tests/linearizability.rs of your backend crate
/// use store_testkit::linearizability::Config;
///
/// #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
/// async fn memory_store_is_linearizable() {
///     let config = Config::default().with_random_faults(0.05);
///     store_testkit::linearizability(|| async { store_memory::MemoryStore::new() }, config).await;
/// }
/// ```
pub async fn linearizability<F, Fut, B>(factory: F, config: Config) -> Run
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = B>,
    B: Backend,
{
    let backend: Arc<dyn Backend> = Arc::new(factory().await);
    linearizability_of(&[backend], config).await
}

/// [`linearizability`] over several handles on one store (client `c` uses
/// `handles[c % len]`: two processes' or two caches' views of the same data, say), which must
/// start empty of the hot keys. Panics with the counterexample and the seed if the history
/// is not linearizable, or if no write or no read succeeded (nothing was checked).
pub async fn linearizability_of(handles: &[Arc<dyn Backend>], config: Config) -> Run {
    let started = Instant::now();
    let history = drive(handles, &config).await;
    let driven = started.elapsed();
    let started = Instant::now();
    let checked = match check_within(&history, config.search_budget) {
        Ok(checked) => checked,
        Err(violation) => panic!(
            "seed {} ({} clients, {} calls, {} handles): {violation}\nreplay with Config::default().with_seed({})",
            config.seed,
            config.clients,
            config.ops,
            handles.len(),
            config.seed
        ),
    };
    let checking = started.elapsed();
    let count = |f: fn(&Outcome) -> bool| history.ops.iter().filter(|op| f(&op.outcome)).count();
    let written = count(|o| matches!(o, Outcome::Written(_) | Outcome::Deleted | Outcome::Cleared));
    let read = count(|o| {
        matches!(
            o,
            Outcome::Read { .. } | Outcome::Meta(_) | Outcome::Listed { .. }
        )
    });
    let failed = count(|o| matches!(o, Outcome::Failed(_)));
    let unknown = count(|o| matches!(o, Outcome::Unknown(_)));
    eprintln!(
        "linearizability: seed {}: {} calls by {} clients ({written} writes and {read} reads that \
         succeeded, {failed} failed, {unknown} of unknown outcome), {} operations on {} keys checked \
         in {checking:.1?} ({} search steps)",
        config.seed,
        history.len(),
        config.clients,
        checked.ops,
        checked.keys,
        checked.walked
    );
    assert!(
        written > 0 && read > 0,
        "seed {}: no write or no read succeeded, so nothing was checked:\n{history}",
        config.seed
    );
    Run {
        history,
        checked,
        driven,
        checking,
    }
}

/// Runs `config`'s clients against `backends` (client `c` uses `backends[c % len]`, so
/// several handles on one store, say in two processes, are driven together) and returns
/// what they did. Every backend must start empty of the hot keys.
pub async fn drive(backends: &[Arc<dyn Backend>], config: &Config) -> History {
    assert!(!backends.is_empty(), "drive needs at least one backend");
    let mut recording = Recording::new();
    if let Some(unchecked) = config.unchecked_reads {
        recording = recording.with_unchecked_reads(unchecked);
    }
    if config.torn_read_versions {
        recording = recording.with_torn_read_versions();
    }
    if config.torn_observed_versions {
        recording = recording.with_torn_observed_versions();
    }
    let faulty: Vec<Faulty<Arc<dyn Backend>>> = backends.iter().map(|b| Faulty::new(Arc::clone(b))).collect();
    for f in &faulty {
        for rule in &config.faults {
            f.inject(rule.clone());
        }
    }
    // A conditional delete is a call only a backend that enforces it is held to.
    let mut config = config.clone();
    if !backends.iter().all(|b| b.capabilities().conditional_delete) {
        config.mix.delete_if = 0;
    }
    if config.unchecked_delete_presence {
        recording = recording.with_unchecked_delete_presence();
    }
    let mut clients = tokio::task::JoinSet::new();
    for c in 0..config.clients {
        let backend: Arc<dyn Backend> = Arc::new(faulty[c % faulty.len()].clone());
        let client = Client {
            store: recording.shared_backend(backend, c),
            rng: fastrand::Rng::with_seed(config.seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ c as u64),
            seen: HashMap::new(),
            config: config.clone(),
            id: c,
        };
        let ops = config.ops / config.clients + usize::from(c < config.ops % config.clients);
        clients.spawn(client.run(ops));
    }
    while let Some(done) = clients.join_next().await {
        if let Err(e) = done
            && e.is_panic()
        {
            std::panic::resume_unwind(e.into_panic());
        }
    }
    for f in &faulty {
        f.release();
    }
    recording.history()
}

/// One client: its own random choices, and the last version it saw of each key.
struct Client {
    store: Recorder<dyn Backend>,
    rng: fastrand::Rng,
    seen: HashMap<usize, Option<Version>>,
    config: Config,
    id: usize,
}

impl Client {
    async fn run(mut self, ops: usize) {
        let weights = self.config.mix.weights();
        let total: u32 = weights.iter().sum();
        assert!(total > 0, "the mix chooses no call");
        for n in 0..ops {
            let mut pick = self.rng.u32(0..total);
            let call = weights
                .iter()
                .position(|&w| {
                    let hit = pick < w;
                    pick = pick.saturating_sub(w);
                    hit
                })
                .expect("a call is chosen");
            let k = self.rng.usize(0..self.config.keys);
            let value = Bytes::from(format!("s{}-c{}-{n}", self.config.seed, self.id));
            let limit = if call == 9 {
                self.config.watch_timeout
            } else {
                self.config.op_timeout
            };
            let _ = tokio::time::timeout(limit, self.call(call, k, value)).await;
        }
    }

    /// The version to update or delete from: the last one seen, or one no backend made.
    fn base_version(&self, k: usize) -> Version {
        self.seen
            .get(&k)
            .cloned()
            .flatten()
            .unwrap_or_else(|| Version::parse("never-written"))
    }

    fn mode(&mut self, k: usize) -> PutMode {
        match self.rng.u8(0..3) {
            0 => PutMode::Overwrite,
            1 => PutMode::Create,
            _ => PutMode::Update(self.base_version(k)),
        }
    }

    async fn call(&mut self, call: usize, k: usize, value: Bytes) {
        let key = self.config.key(k);
        let store = &self.store;
        let seen = match call {
            0..=2 => {
                let mode = match call {
                    0 => PutMode::Overwrite,
                    1 => PutMode::Create,
                    _ => PutMode::Update(self.base_version(k)),
                };
                let opts = PutOptions::default().with_mode(mode);
                store.put(&key, value, opts).await.map(|m| Some(m.version))
            }
            3 => {
                let opts = PutOptions::default().with_mode(self.mode(k));
                let store = &self.store;
                let write = async {
                    let mut w = store.writer(&key, opts).await?;
                    let half = value.len() / 2;
                    w.write(value.slice(..half)).await?;
                    w.write(value.slice(half..)).await?;
                    w.close().await
                };
                write.await.map(|m| Some(m.version))
            }
            4 | 5 => {
                let mut opts = DeleteOptions::default();
                if call == 5 {
                    opts = opts.with_if_match(self.base_version(k));
                }
                store.delete(&key, opts).await.map(|()| None)
            }
            6 => store
                .get(&key, GetOptions::default())
                .await
                .map(|o| Some(o.meta.version)),
            7 => store.head(&key).await.map(|m| Some(m.version)),
            8 => {
                let opts = ListOptions::default().with_prefix(self.config.prefix.clone());
                let mut items = store.list(opts);
                while let Some(Ok(meta)) = items.next().await {
                    if let Some(i) = (0..self.config.keys).find(|&i| self.config.key(i) == meta.key) {
                        self.seen.insert(i, Some(meta.version));
                    }
                }
                return;
            }
            _ => {
                let from = self.seen.get(&k).cloned().flatten();
                store.watch(&key, from.as_ref()).await
            }
        };
        match seen {
            Ok(v) => {
                self.seen.insert(k, v);
            }
            Err(e) if e.is_not_found() => {
                self.seen.insert(k, None);
            }
            Err(_) => {}
        }
    }
}
