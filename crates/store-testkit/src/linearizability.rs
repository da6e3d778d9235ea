//! Linearizability checking from recorded histories.
//!
//! A backend is linearizable when every operation appears to take effect at one instant
//! between its call and its return, in an order a single register per key would allow. The
//! conformance suite checks each rule alone; this checks them all at once, under
//! concurrency and faults, against what the clients really saw: a read that returns a stale
//! version, a listing that misses an acknowledged write, a watch that goes back in time, a
//! lost update after a failover.
//!
//! Three parts, usable together through [`linearizability`](crate::linearizability()) or
//! one by one:
//!
//! - [`Recording`](crate::history::Recording) and [`Recorder`](crate::history::Recorder):
//!   a backend wrapper that writes down every call, as a [`History`].
//! - [`drive`]: `K` clients making a seeded random mix of calls on a few hot keys, optionally
//!   through [`Faulty`](crate::Faulty); the same seed replays the same schedule of calls.
//! - [`check`]: decides whether a history is linearizable for the versioned register model,
//!   key by key (P-compositionality, as Porcupine does), with the Wing–Gong/Lowe search and
//!   its memo of (linearized set, state). On failure it returns a [`Violation`] naming the
//!   shortest failing prefix's operations that cannot be ordered.
//!
//! # The model
//! Each key is a register that is absent or holds the object one write made. Every call of
//! the [`Backend`](store_core::Backend) contract is an operation on it: put (overwrite,
//! create, update from a version), delete (optionally if at a version), get, head, watch,
//! and a listing, which reads every key it covers. Versions are opaque tokens that name
//! states: a put's returned version names the state it made, and any later report of that
//! version must mean that state. Two writes acknowledged with one version are a violation
//! of their own. A write whose outcome is unknown (a lost reply, a timeout, a call that
//! never returned) may take effect at any time after its call, or never; one refused
//! before it was sent is left out.
//!
//! # Cost
//! The check does no I/O. The search never explores a set of linearized operations twice
//! in one state; with `K` clients, the states at each point of a key's history are bounded
//! by the orders of its at most `K` concurrent operations, so a linearizable history costs
//! about its length times `K` steps. Writes of unknown outcome widen the search (each may
//! take effect at any later point): keep faults to a fraction of the calls. A search that
//! exceeds its budget of steps ([`DEFAULT_SEARCH_BUDGET`] per key, or what [`check_within`]
//! and [`Config::with_search_budget`] give) ends as [`ViolationKind::Undecided`] rather than
//! running on.

use std::fmt;

use store_core::Key;

use crate::history::{History, Op};

mod driver;
mod model;
mod records;
mod search;
#[cfg(test)]
mod tests;

pub use driver::{Config, Mix, Run, drive, linearizability, linearizability_of};
pub use records::RecordsAsBackend;

use model::{Partition, Step};
use search::{Found, search};

/// The most steps the search walks for one key before it gives up, unless told otherwise.
pub const DEFAULT_SEARCH_BUDGET: u64 = 5_000_000;

/// How many operations of unknown outcome an undecided [`Violation`] shows.
const SHOWN_UNKNOWN: usize = 20;

/// How many operations of the longest order found a [`Violation`] shows before the
/// operations that cannot follow it.
const SHOWN_BEFORE: usize = 6;

/// What a successful check covered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Checked {
    /// Keys checked.
    pub keys: usize,
    /// Operations checked, counting a listing once for every key it covers.
    pub ops: usize,
    /// Steps the search walked, over all keys.
    pub walked: u64,
}

/// What went wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ViolationKind {
    /// No order of the operations is one a register allows.
    NotLinearizable,
    /// Two writes of one key were acknowledged with the same version.
    VersionReused,
    /// The search gave up before deciding (the history is too concurrent, or has too many
    /// writes of unknown outcome). [`Violation::unordered`] lists the key's operations of
    /// unknown outcome.
    Undecided,
}

/// A history that fails the check, with the operations that show it.
#[derive(Debug, Clone)]
pub struct Violation {
    /// What went wrong.
    pub kind: ViolationKind,
    /// The key.
    pub key: Key,
    /// The end of the longest order of the key's operations that a register allows, up to
    /// the shortest prefix of the history that fails (the last few operations).
    pub order: Vec<Op>,
    /// The operations that cannot come next, in call order: the operation whose return
    /// makes the prefix fail and those concurrent with it (or, for a reused version, the
    /// two writes; for an undecided key, its operations of unknown outcome).
    pub unordered: Vec<Op>,
    /// The steps the search walked on this key before it stopped.
    pub walked: u64,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let key = &self.key;
        match self.kind {
            ViolationKind::NotLinearizable => writeln!(
                f,
                "not linearizable on key {key:?}: no order of these operations is one a register allows"
            )?,
            ViolationKind::VersionReused => writeln!(
                f,
                "versions repeat on key {key:?}: two writes got the same version"
            )?,
            ViolationKind::Undecided => {
                writeln!(
                    f,
                    "undecided on key {key:?}: the search gave up after {} steps (too many \
                     concurrent operations or writes of unknown outcome); fewer clients or \
                     faults, or a larger budget (Config::with_search_budget, check_within), \
                     may decide it",
                    self.walked
                )?;
                writeln!(
                    f,
                    "  its {} operations of unknown outcome (each may take effect at any time \
                     after its call, or never){}:",
                    self.unordered.len(),
                    if self.unordered.len() > SHOWN_UNKNOWN {
                        format!(", the first {SHOWN_UNKNOWN}")
                    } else {
                        String::new()
                    }
                )?;
                for op in self.unordered.iter().take(SHOWN_UNKNOWN) {
                    writeln!(f, "    {op}")?;
                }
                return Ok(());
            }
        }
        if !self.order.is_empty() {
            writeln!(f, "  the longest order found ends with:")?;
            for op in &self.order {
                writeln!(f, "    {op}")?;
            }
        }
        writeln!(
            f,
            "  none of these can come next (the first returned last in the shortest failing prefix):"
        )?;
        for op in &self.unordered {
            writeln!(f, "    {op}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Violation {}

/// Decides whether `history` is linearizable for the versioned register model, key by key,
/// walking at most [`DEFAULT_SEARCH_BUDGET`] steps per key ([`check_within`] sets another).
///
/// ```
/// use std::time::Duration;
/// use store_core::{Key, PutMode, Version};
/// use store_testkit::history::{Call, History, Op, Outcome};
///
/// let key = Key::new("k").unwrap();
/// let ms = Duration::from_millis;
/// let mut h = History::default();
/// // A put of "a" returns at 2 ms; a get that starts later still sees the key absent.
/// h.push(Op {
///     client: 0,
///     call: Call::Put { key: key.clone(), value: "a".into(), mode: PutMode::Overwrite },
///     outcome: Outcome::Written(Version::from(1)),
///     invoked: ms(1),
///     returned: Some(ms(2)),
/// });
/// h.push(Op {
///     client: 1,
///     call: Call::Get { key },
///     outcome: Outcome::NotFound,
///     invoked: ms(3),
///     returned: Some(ms(4)),
/// });
/// let violation = store_testkit::linearizability::check(&h).unwrap_err();
/// assert_eq!(violation.unordered.len(), 1, "{violation}");
/// ```
pub fn check(history: &History) -> Result<Checked, Violation> {
    check_within(history, DEFAULT_SEARCH_BUDGET)
}

/// [`check`] with a search budget of `budget` steps per key: a key whose search needs more
/// is [`ViolationKind::Undecided`]. The check's time grows with the steps walked, so at
/// most linearly with the budget. The search for a failing key's shortest failing prefix
/// gets at least [`DEFAULT_SEARCH_BUDGET`], so that a tiny budget cannot misplace it.
pub fn check_within(history: &History, budget: u64) -> Result<Checked, Violation> {
    let partitions = model::partitions(history).map_err(|reused| Violation {
        kind: ViolationKind::VersionReused,
        order: Vec::new(),
        unordered: reused.ops.iter().map(|&i| history.ops[i].clone()).collect(),
        key: reused.key,
        walked: 0,
    })?;
    let mut checked = Checked {
        keys: partitions.len(),
        ops: 0,
        walked: 0,
    };
    for p in &partitions {
        checked.ops += p.steps.len();
        let (found, walked) = search(&p.steps, budget, false);
        checked.walked += walked;
        match found {
            Found::Linearizable => {}
            Found::Stuck { .. } => {
                let budget = budget.max(DEFAULT_SEARCH_BUDGET);
                return Err(explain(history, p, budget, walked));
            }
            Found::GaveUp => {
                return Err(Violation {
                    kind: ViolationKind::Undecided,
                    key: p.key.clone(),
                    order: Vec::new(),
                    unordered: p
                        .steps
                        .iter()
                        .filter(|s| s.returned.is_none())
                        .map(|s| history.ops[s.op].clone())
                        .collect(),
                    walked,
                });
            }
        }
    }
    Ok(checked)
}

/// The key's steps up to the return of the `k`-th completed one: those `k`, and the writes
/// called before that return and completed after it, which by then may or may not have
/// taken effect. (If a prefix fails, every longer one fails too.)
fn prefix(steps: &[Step], k: usize) -> Vec<Step> {
    let end = steps[k - 1].returned.expect("completed steps come first");
    let mut cut: Vec<Step> = steps[..k].to_vec();
    cut.extend(
        steps[k..]
            .iter()
            .filter(|s| s.to.is_some() && s.invoked <= end)
            .map(|s| Step {
                returned: None,
                ..s.clone()
            }),
    );
    cut
}

/// Finds the shortest failing prefix of a key's failing history (whose search walked
/// `walked` steps) and what cannot be ordered.
fn explain(history: &History, p: &Partition, budget: u64, walked: u64) -> Violation {
    let completed = p.steps.iter().filter(|s| s.returned.is_some()).count();
    let fails = |k: usize| !matches!(search(&prefix(&p.steps, k), budget, false).0, Found::Linearizable);
    // The empty prefix passes and the whole history fails: bisect between them.
    let (mut passes, mut fails_at) = (0, completed);
    while fails_at - passes > 1 {
        let mid = passes + (fails_at - passes) / 2;
        if fails(mid) {
            fails_at = mid;
        } else {
            passes = mid;
        }
    }
    let steps = prefix(&p.steps, fails_at);
    let deepest = match search(&steps, budget, true).0 {
        Found::Stuck { deepest } => deepest,
        _ => Vec::new(),
    };
    let mut ordered = vec![false; steps.len()];
    for &i in &deepest {
        ordered[i] = true;
    }
    // The operation whose return cannot be explained, then what is concurrent with it and
    // not ordered yet; writes of unknown outcome only if they could have mattered.
    let last = &steps[fails_at - 1];
    let mut unordered: Vec<&Step> = steps
        .iter()
        .enumerate()
        .filter(|&(i, s)| !ordered[i] && (s.returned.is_some() || s.invoked >= first_open(&steps, &ordered)))
        .map(|(_, s)| s)
        .collect();
    unordered.sort_by_key(|s| (s.op != last.op, s.invoked));
    Violation {
        kind: ViolationKind::NotLinearizable,
        key: p.key.clone(),
        order: deepest[deepest.len().saturating_sub(SHOWN_BEFORE)..]
            .iter()
            .map(|&i| history.ops[steps[i].op].clone())
            .collect(),
        unordered: unordered.iter().map(|s| history.ops[s.op].clone()).collect(),
        walked,
    }
}

/// The earliest call among the completed steps not yet ordered.
fn first_open(steps: &[Step], ordered: &[bool]) -> std::time::Duration {
    steps
        .iter()
        .zip(ordered)
        .filter(|(s, o)| !**o && s.returned.is_some())
        .map(|(s, _)| s.invoked)
        .min()
        .unwrap_or_default()
}
