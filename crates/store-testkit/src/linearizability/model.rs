//! The versioned register model, compiled per key: each operation of a key becomes a
//! [`Step`] over the key's state, which is "absent" or "the object some write made".
//!
//! A state is named by the write that made it (`0` = absent, `w` = the `w`-th write of the
//! key), never by a version: versions are opaque tokens that *name* states. A write's
//! version is the one its reply gave; a write whose reply was lost learns its version from a
//! read of its value (values identify writes when, as the driver's do, they are unique).
//! An observation of a version no write is known to have made may be any write whose
//! version is unknown. Every version observed is thereby turned, before the search, into
//! the set of states it may name.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use bytes::Bytes;
use store_core::{Key, ListOptions, PutMode, Version};

use crate::history::{Call, History, Outcome};

/// A state of a key: `ABSENT`, or the 1-based index of the write that made it.
pub(super) type State = u32;

/// The state of a key nobody wrote (every history starts from an empty store).
pub(super) const ABSENT: State = 0;

/// Which states an operation can be linearized in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Pre {
    Any,
    Absent,
    /// Present, in one of `only` (any, if `None`), and not `except`.
    Present {
        only: Option<Vec<State>>,
        except: Option<State>,
    },
}

impl Pre {
    pub(super) fn allows(&self, s: State) -> bool {
        match self {
            Pre::Any => true,
            Pre::Absent => s == ABSENT,
            Pre::Present { only, except } => {
                s != ABSENT && only.as_ref().is_none_or(|o| o.contains(&s)) && *except != Some(s)
            }
        }
    }

    /// Any present state.
    fn present() -> Pre {
        Pre::Present {
            only: None,
            except: None,
        }
    }

    /// Never allowed: an outcome the register model has no state for.
    fn never() -> Pre {
        Pre::Present {
            only: Some(Vec::new()),
            except: None,
        }
    }
}

/// One operation of a key, ready for the search.
#[derive(Debug, Clone)]
pub(super) struct Step {
    /// Its index in the history.
    pub(super) op: usize,
    pub(super) pre: Pre,
    /// The state it leaves (`None`: a read, which leaves the state as it was).
    pub(super) to: Option<State>,
    pub(super) invoked: Duration,
    /// `None` for an operation of unknown outcome: it may take effect at any time after its
    /// invocation, or never.
    pub(super) returned: Option<Duration>,
}

/// The operations of one key, sorted by return (those of unknown outcome last).
#[derive(Debug)]
pub(super) struct Partition {
    pub(super) key: Key,
    pub(super) steps: Vec<Step>,
}

/// Two writes of one key acknowledged with the same version.
#[derive(Debug)]
pub(super) struct Reused {
    pub(super) key: Key,
    pub(super) ops: [usize; 2],
}

/// What one operation did to or saw of one key.
enum Act<'a> {
    Put(&'a Bytes, &'a PutMode, &'a Outcome),
    Delete(Option<&'a Version>, &'a Outcome),
    Get(&'a Outcome),
    Head(&'a Outcome),
    Watch(Option<&'a Version>, &'a Outcome),
    /// A listing saw the key at this version, or did not see it.
    Listed(Option<&'a Version>),
}

struct Seen<'a> {
    op: usize,
    act: Act<'a>,
}

/// Splits `history` by key and compiles each key's operations.
pub(super) fn partitions(history: &History) -> Result<Vec<Partition>, Reused> {
    let mut keys: BTreeMap<&Key, Vec<Seen<'_>>> = BTreeMap::new();
    for (i, op) in history.ops.iter().enumerate() {
        let known = !matches!(op.outcome, Outcome::Failed(_) | Outcome::Unknown(_));
        let act = match (&op.call, &op.outcome) {
            (_, Outcome::Failed(_)) => continue,
            (Call::Put { value, mode, .. }, o) => Act::Put(value, mode, o),
            (Call::Delete { if_match, .. }, o) => Act::Delete(if_match.as_ref(), o),
            (Call::Get { .. }, o) if known => Act::Get(o),
            (Call::Head { .. }, o) if known => Act::Head(o),
            (Call::Watch { seen, .. }, o) if known => Act::Watch(seen.as_ref(), o),
            (Call::List { .. }, Outcome::Listed { entries, .. }) => {
                for (k, _) in entries {
                    keys.entry(k).or_default();
                }
                continue;
            }
            _ => continue,
        };
        let key = op.key().expect("a single-key call");
        keys.entry(key).or_default().push(Seen { op: i, act });
    }
    for (i, op) in history.ops.iter().enumerate() {
        let (Call::List { prefix, start_after }, Outcome::Listed { entries, complete }) =
            (&op.call, &op.outcome)
        else {
            continue;
        };
        let mut covered = ListOptions::default();
        covered.prefix = prefix.clone();
        covered.start_after = start_after.clone();
        let last = entries.last().map(|(k, _)| k.as_str());
        for (key, seen) in keys.iter_mut() {
            let reached = *complete || last.is_some_and(|l| key.as_str() <= l);
            if covered.matches(key.as_str()) && reached {
                let version = entries.iter().find(|(k, _)| k == *key).map(|(_, v)| v);
                seen.push(Seen {
                    op: i,
                    act: Act::Listed(version),
                });
            }
        }
    }
    keys.into_iter()
        .map(|(key, seen)| compile(history, key, seen))
        .collect()
}

/// The versions of a key's writes, as far as the history tells them.
struct Versions {
    /// Version -> the write that made it.
    of: HashMap<Version, State>,
    /// Write -> its version (index 0 unused).
    by_write: Vec<Option<Version>>,
}

impl Versions {
    /// The states whose version may be `v`: its write if known, else any write of unknown
    /// version; any present state if the backend did not say (an empty version).
    fn may_be(&self, v: &Version) -> Option<Vec<State>> {
        if v.is_empty() {
            return None;
        }
        Some(match self.of.get(v) {
            Some(&w) => vec![w],
            None => (1..self.by_write.len() as State)
                .filter(|&w| self.by_write[w as usize].is_none())
                .collect(),
        })
    }

    /// The one state whose version is certainly `v`, if any (for "not at `v`").
    fn is(&self, v: &Version) -> Option<State> {
        self.of.get(v).copied()
    }

    fn present_at(&self, v: &Version) -> Pre {
        Pre::Present {
            only: self.may_be(v),
            except: None,
        }
    }
}

fn compile(history: &History, key: &Key, seen: Vec<Seen<'_>>) -> Result<Partition, Reused> {
    // Number the writes (states), learn their versions from their replies...
    let mut written: Vec<Option<usize>> = vec![None; seen.len()];
    let mut versions = Versions {
        of: HashMap::new(),
        by_write: vec![None],
    };
    let mut by_value: HashMap<&Bytes, Vec<State>> = HashMap::new();
    let mut writer_op = vec![usize::MAX];
    for (i, s) in seen.iter().enumerate() {
        let Act::Put(value, _, outcome @ (Outcome::Written(_) | Outcome::Unknown(_))) = &s.act else {
            continue;
        };
        let w = versions.by_write.len() as State;
        written[i] = Some(w as usize);
        writer_op.push(s.op);
        by_value.entry(value).or_default().push(w);
        let version = match outcome {
            Outcome::Written(v) if !v.is_empty() => Some(v.clone()),
            _ => None,
        };
        if let Some(v) = &version
            && let Some(&earlier) = versions.of.get(v)
        {
            return Err(Reused {
                key: key.clone(),
                ops: [writer_op[earlier as usize], s.op],
            });
        }
        if let Some(v) = &version {
            versions.of.insert(v.clone(), w);
        }
        versions.by_write.push(version);
    }
    // ...and from reads of their values, for writes whose reply was lost.
    for s in &seen {
        if let Act::Get(Outcome::Read { value, version }) = &s.act
            && let Some([w]) = by_value.get(value).map(Vec::as_slice)
            && versions.by_write[*w as usize].is_none()
            && !version.is_empty()
            && !versions.of.contains_key(version)
        {
            versions.by_write[*w as usize] = Some(version.clone());
            versions.of.insert(version.clone(), *w);
        }
    }
    let steps = seen
        .iter()
        .zip(&written)
        .map(|(s, w)| {
            let (pre, to) = rule(&s.act, w.map(|w| w as State), &versions, &by_value);
            let op = &history.ops[s.op];
            let unknown = matches!(op.outcome, Outcome::Unknown(_));
            Step {
                op: s.op,
                pre,
                to,
                invoked: op.invoked,
                returned: if unknown { None } else { op.returned },
            }
        })
        .collect::<Vec<_>>();
    let mut steps = steps;
    merge_equivalent_states(&mut steps, versions.by_write.len());
    steps.sort_by_key(|s| (s.returned.is_none(), s.returned, s.invoked));
    Ok(Partition {
        key: key.clone(),
        steps,
    })
}

/// Gives writes that no operation tells apart one state: two writes are told apart only by
/// a step whose precondition names one and not the other, so writes named by the same steps
/// (typically writes of unknown outcome whose value and version nobody saw) are
/// interchangeable, and the search need not try each of them in each place.
fn merge_equivalent_states(steps: &mut [Step], states: usize) {
    let mut named_by: Vec<Vec<(usize, bool)>> = vec![Vec::new(); states];
    for (i, step) in steps.iter().enumerate() {
        if let Pre::Present { only, except } = &step.pre {
            for &w in only.iter().flatten() {
                named_by[w as usize].push((i, false));
            }
            if let Some(w) = except {
                named_by[*w as usize].push((i, true));
            }
        }
    }
    let mut first: HashMap<&[(usize, bool)], State> = HashMap::new();
    let same: Vec<State> = (0..states)
        .map(|w| match w {
            0 => ABSENT,
            w => *first.entry(&named_by[w]).or_insert(w as State),
        })
        .collect();
    for step in steps {
        step.to = step.to.map(|w| same[w as usize]);
        if let Pre::Present { only, except } = &mut step.pre {
            if let Some(only) = only {
                for w in only.iter_mut() {
                    *w = same[*w as usize];
                }
                only.sort_unstable();
                only.dedup();
            }
            *except = except.map(|w| same[w as usize]);
        }
    }
}

/// The register's rule for one operation: where it can be linearized and what it leaves.
fn rule(
    act: &Act<'_>,
    write: Option<State>,
    versions: &Versions,
    by_value: &HashMap<&Bytes, Vec<State>>,
) -> (Pre, Option<State>) {
    let read = |pre: Pre| (pre, None);
    match act {
        Act::Put(_, mode, Outcome::Written(_) | Outcome::Unknown(_)) => {
            let pre = match mode {
                PutMode::Overwrite => Pre::Any,
                PutMode::Create => Pre::Absent,
                PutMode::Update(v) => versions.present_at(v),
            };
            (pre, write)
        }
        Act::Put(_, PutMode::Create, Outcome::AlreadyExists(v)) => read(versions.present_at(v)),
        Act::Put(_, PutMode::Update(_), Outcome::NotFound) => read(Pre::Absent),
        Act::Put(_, PutMode::Update(expected), Outcome::Conflict(actual)) => {
            read(conflict(versions, expected, actual))
        }
        Act::Delete(Some(expected), Outcome::Conflict(actual)) => read(conflict(versions, expected, actual)),
        Act::Delete(if_match, Outcome::Deleted | Outcome::Unknown(_)) => {
            let pre = match if_match {
                None => Pre::present(),
                Some(v) => versions.present_at(v),
            };
            (pre, Some(ABSENT))
        }
        Act::Delete(None, Outcome::Cleared) => (Pre::Any, Some(ABSENT)),
        Act::Delete(_, Outcome::NotFound) | Act::Get(Outcome::NotFound) | Act::Head(Outcome::NotFound) => {
            read(Pre::Absent)
        }
        Act::Get(Outcome::Read { value, version }) => {
            let only = by_value.get(value).map_or_else(Vec::new, |ws| {
                let at = versions.may_be(version);
                ws.iter()
                    .copied()
                    .filter(|w| at.as_ref().is_none_or(|at| at.contains(w)))
                    .collect()
            });
            read(Pre::Present {
                only: Some(only),
                except: None,
            })
        }
        Act::Head(Outcome::Meta(v)) => read(versions.present_at(v)),
        Act::Listed(Some(v)) => read(versions.present_at(v)),
        Act::Listed(None) => read(Pre::Absent),
        Act::Watch(seen, Outcome::Watched(Some(now))) => read(Pre::Present {
            only: versions.may_be(now),
            except: seen.and_then(|v| versions.is(v)),
        }),
        Act::Watch(Some(_), Outcome::Watched(None)) => read(Pre::Absent),
        // Anything else is an outcome the contract does not allow for that call (a create
        // that reports a conflict, a watch from "absent" that says "absent"): no state
        // explains it.
        _ => read(Pre::never()),
    }
}

/// Where a conditional write that found another version than `expected` can be: present,
/// not at `expected`, and at `actual` if the backend said.
fn conflict(versions: &Versions, expected: &Version, actual: &Option<Version>) -> Pre {
    Pre::Present {
        only: actual.as_ref().and_then(|a| versions.may_be(a)),
        except: versions.is(expected),
    }
}
