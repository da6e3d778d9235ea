//! The model-based property test: random operation sequences against a `BTreeMap` model.

use super::*;

const MODEL_KEYS: &[&str] = &["a", "b", "a/b", "a/c", "ab", "b/a/c"];
const MODEL_PREFIXES: &[&str] = &["", "a", "a/", "b", "zz"];

#[derive(Debug, Clone)]
enum VersionPick {
    Current,
    /// Some earlier version of any key (by index into the history), or a bogus one.
    Old(usize),
}

#[derive(Debug, Clone)]
enum Op {
    Put(usize, Vec<u8>),
    Create(usize, Vec<u8>),
    Update(usize, Vec<u8>, VersionPick),
    Delete(usize, Option<VersionPick>),
    Get(usize, Option<(u8, u8)>),
    Head(usize),
    List(usize, Option<usize>),
    WatchOld(usize, usize),
}

fn op_strategy() -> impl Strategy<Value = Op> {
    let k = 0..MODEL_KEYS.len();
    let v = proptest::collection::vec(any::<u8>(), 0..12);
    let pick = prop_oneof![
        Just(VersionPick::Current),
        any::<usize>().prop_map(VersionPick::Old)
    ];
    prop_oneof![
        3 => (k.clone(), v.clone()).prop_map(|(k, v)| Op::Put(k, v)),
        2 => (k.clone(), v.clone()).prop_map(|(k, v)| Op::Create(k, v)),
        3 => (k.clone(), v, pick.clone()).prop_map(|(k, v, p)| Op::Update(k, v, p)),
        2 => (k.clone(), proptest::option::of(pick)).prop_map(|(k, p)| Op::Delete(k, p)),
        2 => (k.clone(), proptest::option::of((any::<u8>(), any::<u8>()))).prop_map(|(k, r)| Op::Get(k, r)),
        1 => k.clone().prop_map(Op::Head),
        2 => (0..MODEL_PREFIXES.len(), proptest::option::of(0..MODEL_KEYS.len())).prop_map(|(p, s)| Op::List(p, s)),
        1 => (k, any::<usize>()).prop_map(|(k, i)| Op::WatchOld(k, i)),
    ]
}

/// Runs one sequence of operations against the backend (under a fresh key prefix) and a
/// `BTreeMap` model, comparing every result.
async fn run_model(b: &dyn Backend, prefix: &str, ops: Vec<Op>) -> Result<(), String> {
    let mut model: BTreeMap<String, (Bytes, Version)> = BTreeMap::new();
    let mut history: Vec<Version> = Vec::new();
    let mut per_key: BTreeMap<String, HashSet<Version>> = BTreeMap::new();
    let full = |i: usize| format!("{prefix}{}", MODEL_KEYS[i]);
    let pick_version = |pick: &VersionPick, current: Option<&Version>, history: &[Version]| match pick {
        VersionPick::Current => current.cloned().unwrap_or_else(|| Version::parse("never-issued")),
        VersionPick::Old(i) if history.is_empty() => Version::parse(&format!("never-issued-{i}")),
        VersionPick::Old(i) => history[i % history.len()].clone(),
    };
    for (step, op) in ops.into_iter().enumerate() {
        let ctx = |what: String| format!("step {step} {op:?}: {what}");
        macro_rules! fail {
            ($($t:tt)*) => { return Err(ctx(format!($($t)*))) };
        }
        match &op {
            Op::Put(i, data) | Op::Create(i, data) | Op::Update(i, data, _) => {
                let k = full(*i);
                let current = model.get(&k).map(|(_, v)| v.clone());
                let mode = match &op {
                    Op::Put(..) => PutMode::Overwrite,
                    Op::Create(..) => PutMode::Create,
                    Op::Update(_, _, p) => PutMode::Update(pick_version(p, current.as_ref(), &history)),
                    _ => unreachable!(),
                };
                let expect: Result<(), ErrorKind> = match (&mode, &current) {
                    (PutMode::Overwrite, _) | (PutMode::Create, None) => Ok(()),
                    (PutMode::Create, Some(_)) => Err(ErrorKind::AlreadyExists),
                    (PutMode::Update(_), None) => Err(ErrorKind::NotFound),
                    (PutMode::Update(want), Some(cur)) if want == cur => Ok(()),
                    (PutMode::Update(_), Some(_)) => Err(ErrorKind::Conflict),
                };
                let got = b.put(&key(&k), Bytes::from(data.clone()), mode.into()).await;
                match (expect, got) {
                    (Ok(()), Ok(meta)) => {
                        if meta.size != data.len() as u64 {
                            fail!("size {} != {}", meta.size, data.len());
                        }
                        let v = meta.version;
                        if !per_key.entry(k.clone()).or_default().insert(v.clone()) {
                            fail!("version {v} was issued before for {k}");
                        }
                        history.push(v.clone());
                        model.insert(k, (Bytes::from(data.clone()), v));
                    }
                    (Err(kind), Err(e)) if e.kind() == kind => {
                        if let (Error::AlreadyExists { version, .. }, Some(cur)) = (&e, &current)
                            && version != cur
                        {
                            fail!("AlreadyExists carries {version}, current is {cur}");
                        }
                    }
                    (want, got) => fail!("expected {want:?}, got {:?}", got.map(|m| m.version)),
                }
            }
            Op::Delete(i, pick) => {
                let k = full(*i);
                let current = model.get(&k).map(|(_, v)| v.clone());
                let if_match = pick.as_ref().map(|p| pick_version(p, current.as_ref(), &history));
                let expect: Result<(), ErrorKind> = match (&current, &if_match) {
                    (None, _) => Err(ErrorKind::NotFound),
                    (Some(cur), Some(want)) if cur != want => Err(ErrorKind::Conflict),
                    _ => Ok(()),
                };
                let opts = match if_match {
                    Some(v) => DeleteOptions::default().with_if_match(v),
                    None => DeleteOptions::default(),
                };
                let got = b.delete(&key(&k), opts).await;
                match (expect, got) {
                    (Ok(()), Ok(())) => {
                        model.remove(&k);
                    }
                    (Err(kind), Err(e)) if e.kind() == kind => {}
                    (want, got) => fail!("expected {want:?}, got {got:?}"),
                }
            }
            Op::Get(i, range) => {
                let k = full(*i);
                let mut opts = GetOptions::default();
                if let Some((s, e)) = range {
                    opts = opts.with_range(u64::from(*s % 16)..u64::from(*e % 16));
                }
                let got = b.get(&key(&k), opts.clone()).await;
                match (model.get(&k), got) {
                    (None, Err(e)) if e.is_not_found() => {}
                    (Some((data, v)), got) => {
                        let want_range = match &opts.range {
                            None => Ok(0..data.len()),
                            Some(r) => r
                                .resolve(&key(&k), data.len() as u64)
                                .map(|r| r.start as usize..r.end as usize),
                        };
                        match (want_range, got) {
                            (Ok(r), Ok(obj)) => {
                                if &obj.meta.version != v {
                                    fail!("version {} != model {v}", obj.meta.version);
                                }
                                let body = obj.bytes().await.map_err(|e| ctx(e.to_string()))?;
                                if body != data.slice(r.clone()) {
                                    fail!("content {body:?} != model {:?}", data.slice(r));
                                }
                            }
                            (Err(want), Err(e)) if e.kind() == want.kind() => {}
                            (want, got) => fail!("expected {want:?}, got {:?}", got.map(|o| o.range)),
                        }
                    }
                    (None, got) => fail!("expected NotFound, got {:?}", got.map(|o| o.meta)),
                }
            }
            Op::Head(i) => {
                let k = full(*i);
                match (model.get(&k), b.head(&key(&k)).await) {
                    (None, Err(e)) if e.is_not_found() => {}
                    (Some((data, v)), Ok(m)) if &m.version == v && m.size == data.len() as u64 => {}
                    (want, got) => fail!("model {want:?}, got {got:?}"),
                }
            }
            Op::List(p, after) => {
                let list_prefix = format!("{prefix}{}", MODEL_PREFIXES[*p]);
                let mut opts = ListOptions::default().with_prefix(list_prefix.clone());
                if let Some(a) = after {
                    opts = opts.with_start_after(full(*a));
                }
                let want: Vec<(String, Version)> = model
                    .iter()
                    .filter(|(k, _)| opts.matches(k))
                    .map(|(k, (_, v))| (k.clone(), v.clone()))
                    .collect();
                let got: Vec<(String, Version)> = b
                    .list(opts)
                    .map_ok(|m| (m.key.to_string(), m.version))
                    .try_collect()
                    .await
                    .map_err(|e| ctx(e.to_string()))?;
                if got != want {
                    fail!("listing {got:?} != model {want:?}");
                }
            }
            Op::WatchOld(i, h) => {
                let k = full(*i);
                let current = model.get(&k).map(|(_, v)| v.clone());
                let seen = if history.is_empty() {
                    None
                } else {
                    Some(history[h % history.len()].clone())
                };
                if seen == current {
                    continue; // would (correctly) block
                }
                match tokio::time::timeout(WATCH_LIMIT, b.watch(&key(&k), seen.as_ref())).await {
                    Ok(Ok(v)) if v == current => {}
                    other => fail!("watch from {seen:?} should return {current:?} at once, got {other:?}"),
                }
            }
        }
    }
    Ok(())
}

pub(super) async fn model_based_random_operations(b: Arc<dyn Backend>) {
    let case = std::sync::atomic::AtomicU64::new(0);
    prop::check(
        "model_based_random_operations",
        prop::cases(48),
        proptest::collection::vec(op_strategy(), 1..40),
        |ops| {
            let n = case.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let b = Arc::clone(&b);
            async move { run_model(&*b, &format!("model/{n}/"), ops).await }
        },
    )
    .await;
}
