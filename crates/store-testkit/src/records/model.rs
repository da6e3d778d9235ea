//! The model-based property test: random operation sequences against a model.

use super::*;

const MODEL_KEYS: &[&str] = &["a", "b", "a/b", "a/c", "ab", "b/a/c"];

/// Glob patterns (after the case's key prefix) and the keys (after the prefix) they match.
/// Whether a key (after the case's prefix) matches a model pattern.
type Matches = fn(&str) -> bool;

const MODEL_PATTERNS: &[(&str, Matches)] = &[
    ("*", |_| true),
    ("a*", |k| k.starts_with('a')),
    ("a/?", |k| k.len() == 3 && k.starts_with("a/")),
    ("[ab]", |k| k == "a" || k == "b"),
    ("{a,b}/*", |k| k.starts_with("a/") || k.starts_with("b/")),
    ("*c", |k| k.ends_with('c')),
    ("b/**", |k| k.starts_with("b/")),
];

#[derive(Debug, Clone, Copy)]
enum Expiry {
    Never,
    /// Already passed when written: the record is absent at once.
    Past,
    /// An hour ahead: live for the whole case.
    Later,
}

impl Expiry {
    fn at(self) -> Option<SystemTime> {
        match self {
            Expiry::Never => None,
            Expiry::Past => Some(past()),
            Expiry::Later => Some(hour_ahead()),
        }
    }
}

#[derive(Debug, Clone)]
enum VersionPick {
    Current,
    /// Some earlier version of any key (by index into the history), or a never-issued one.
    Old(usize),
}

#[derive(Debug, Clone)]
enum Op {
    Create(usize, u8, Expiry),
    Put(usize, u8, Expiry),
    PutMany(Vec<(usize, u8, Expiry)>),
    Cas(usize, u8, Expiry, VersionPick),
    Delete(usize),
    Get(usize),
    GetMany(Vec<usize>),
    List(usize),
    WaitFrom(usize, VersionPick),
}

fn op_strategy() -> impl Strategy<Value = Op> {
    let k = 0..MODEL_KEYS.len();
    let expiry = prop_oneof![
        3 => Just(Expiry::Never),
        1 => Just(Expiry::Past),
        1 => Just(Expiry::Later),
    ];
    let pick = prop_oneof![
        2 => Just(VersionPick::Current),
        1 => any::<usize>().prop_map(VersionPick::Old)
    ];
    let write = (k.clone(), any::<u8>(), expiry.clone());
    prop_oneof![
        2 => write.clone().prop_map(|(k, v, e)| Op::Create(k, v, e)),
        3 => write.clone().prop_map(|(k, v, e)| Op::Put(k, v, e)),
        1 => proptest::collection::vec(write, 0..4).prop_map(Op::PutMany),
        3 => (k.clone(), any::<u8>(), expiry, pick.clone()).prop_map(|(k, v, e, p)| Op::Cas(k, v, e, p)),
        2 => k.clone().prop_map(Op::Delete),
        2 => k.clone().prop_map(Op::Get),
        1 => proptest::collection::vec(k.clone(), 0..5).prop_map(Op::GetMany),
        2 => (0..MODEL_PATTERNS.len()).prop_map(Op::List),
        1 => (k, pick).prop_map(|(k, p)| Op::WaitFrom(k, p)),
    ]
}

/// A live record in the model: value, version, whether it has an expiry.
type Live = (Bytes, Version, bool);

/// Every version issued so far, and each key's, to catch reuse.
#[derive(Default)]
struct Issued {
    history: Vec<Version>,
    per_key: HashSet<(String, Version)>,
}

impl Issued {
    /// Records a successful write of `k` in the model.
    fn wrote(
        &mut self,
        model: &mut BTreeMap<String, Live>,
        k: String,
        value: u8,
        e: Expiry,
        v: Version,
    ) -> Result<(), String> {
        if !self.per_key.insert((k.clone(), v.clone())) {
            return Err(format!("version {v} was issued before for {k}"));
        }
        self.history.push(v.clone());
        match e {
            Expiry::Past => model.remove(&k),
            Expiry::Never | Expiry::Later => {
                model.insert(k, (Bytes::from(vec![value]), v, matches!(e, Expiry::Later)))
            }
        };
        Ok(())
    }

    fn old(&self, h: usize) -> Version {
        if self.history.is_empty() {
            Version::parse("never-issued")
        } else {
            self.history[h % self.history.len()].clone()
        }
    }
}

/// Runs one sequence of operations against the store (under a fresh key prefix) and a
/// `BTreeMap` of live records, comparing every result.
async fn run_model(s: &dyn RecordStore, prefix: &str, ops: Vec<Op>) -> Result<(), String> {
    let mut model: BTreeMap<String, Live> = BTreeMap::new();
    let mut issued = Issued::default();
    let full = |i: usize| format!("{prefix}{}", MODEL_KEYS[i]);
    for (step, op) in ops.into_iter().enumerate() {
        let ctx = |what: String| format!("step {step} {op:?}: {what}");
        macro_rules! fail {
            ($($t:tt)*) => { return Err(ctx(format!($($t)*))) };
        }
        match &op {
            Op::Create(i, value, e) => {
                let k = full(*i);
                let r = Record {
                    expires_at: e.at(),
                    ..Record::new(key(&k), vec![*value])
                };
                match (model.get(&k).cloned(), s.create(&r).await) {
                    (None, Ok(v)) => issued.wrote(&mut model, k, *value, *e, v).map_err(ctx)?,
                    (Some((_, cur, _)), Err(Error::AlreadyExists { version, .. })) if version == cur => {}
                    (want, got) => fail!("model {want:?}, got {got:?}"),
                }
            }
            Op::Put(i, value, e) => {
                let k = full(*i);
                let r = Record {
                    expires_at: e.at(),
                    ..Record::new(key(&k), vec![*value])
                };
                match s.put(&r).await {
                    Ok(v) => issued.wrote(&mut model, k, *value, *e, v).map_err(ctx)?,
                    Err(e) => fail!("put failed: {e}"),
                }
            }
            Op::PutMany(writes) => {
                let records: Vec<Record> = writes
                    .iter()
                    .map(|(i, value, e)| Record {
                        expires_at: e.at(),
                        ..Record::new(key(&full(*i)), vec![*value])
                    })
                    .collect();
                let versions = s
                    .put_many(&records)
                    .await
                    .map_err(|e| ctx(format!("put_many: {e}")))?;
                if versions.len() != writes.len() {
                    fail!("{} versions for {} records", versions.len(), writes.len());
                }
                for ((i, value, e), v) in writes.iter().zip(versions) {
                    issued.wrote(&mut model, full(*i), *value, *e, v).map_err(ctx)?;
                }
            }
            Op::Cas(i, value, e, pick) => {
                let k = full(*i);
                let current = model.get(&k).map(|(_, v, _)| v.clone());
                let from = match (pick, &current) {
                    (VersionPick::Current, Some(v)) => v.clone(),
                    (VersionPick::Current, None) => Version::parse("never-issued"),
                    (VersionPick::Old(h), _) => issued.old(*h),
                };
                let r = Record {
                    expires_at: e.at(),
                    ..Record::new(key(&k), vec![*value]).with_version(from.clone())
                };
                let got = s.cas_by_version(&r).await;
                match (&current, got) {
                    (Some(cur), Ok(v)) if *cur == from => {
                        issued.wrote(&mut model, k, *value, *e, v).map_err(ctx)?
                    }
                    (Some(cur), Err(e)) if *cur != from && e.is_conflict() => {}
                    (None, Err(e)) if e.is_not_found() => {}
                    (cur, got) => fail!("current {cur:?}, from {from:?}: got {got:?}"),
                }
            }
            Op::Delete(i) => {
                let k = full(*i);
                match (model.remove(&k), s.delete(&key(&k)).await) {
                    (Some(_), Ok(())) => {}
                    (None, Err(e)) if e.is_not_found() => {}
                    (want, got) => fail!("model {want:?}, got {got:?}"),
                }
            }
            Op::Get(i) => {
                let k = full(*i);
                match (model.get(&k), s.get(&key(&k)).await) {
                    (None, Err(e)) if e.is_not_found() => {}
                    (Some((value, v, expiring)), Ok(r))
                        if r.value == *value && r.version == *v && r.expires_at.is_some() == *expiring => {}
                    (want, got) => fail!("model {want:?}, got {got:?}"),
                }
            }
            Op::GetMany(is) => {
                let keys: Vec<Key> = is.iter().map(|i| key(&full(*i))).collect();
                let got = s
                    .get_many(&keys)
                    .await
                    .map_err(|e| ctx(format!("get_many: {e}")))?;
                let got: Vec<Option<(Bytes, Version)>> =
                    got.into_iter().map(|r| r.map(|r| (r.value, r.version))).collect();
                let want: Vec<Option<(Bytes, Version)>> = keys
                    .iter()
                    .map(|k| {
                        model
                            .get(k.as_str())
                            .map(|(value, v, _)| (value.clone(), v.clone()))
                    })
                    .collect();
                if got != want {
                    fail!("get_many {got:?} != model {want:?}");
                }
            }
            Op::List(p) => {
                let (glob, matches) = MODEL_PATTERNS[*p];
                let want: Vec<String> = model
                    .keys()
                    .filter(|k| matches(&k[prefix.len()..]))
                    .cloned()
                    .collect();
                let got = listed(s, &format!("{prefix}{glob}")).await;
                if got != want {
                    fail!("listing {got:?} != model {want:?}");
                }
            }
            Op::WaitFrom(i, pick) => {
                let k = full(*i);
                let current = model.get(&k).map(|(_, v, _)| v.clone());
                let from = match pick {
                    VersionPick::Old(h) => issued.old(*h),
                    VersionPick::Current => Version::parse("never-issued"),
                };
                if current.as_ref() == Some(&from) {
                    continue; // would (correctly) block
                }
                let got = tokio::time::timeout(WAIT_LIMIT, s.wait_for_version_change(&key(&k), &from))
                    .await
                    .map_err(|_| ctx("wait did not return at once".to_owned()))?;
                match (current, got) {
                    (Some(cur), Ok(v)) if cur == v => {}
                    (None, Err(e)) if e.is_not_found() => {}
                    (want, got) => fail!("model {want:?}, got {got:?}"),
                }
            }
        }
    }
    Ok(())
}

pub(super) async fn model_based_random_operations(s: Arc<dyn RecordStore>) {
    let case = std::sync::atomic::AtomicU64::new(0);
    prop::check(
        "records::model_based_random_operations",
        prop::cases(48),
        proptest::collection::vec(op_strategy(), 1..40),
        |ops| {
            let n = case.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let s = Arc::clone(&s);
            async move { run_model(&*s, &format!("model/{n}/"), ops).await }
        },
    )
    .await;
}
