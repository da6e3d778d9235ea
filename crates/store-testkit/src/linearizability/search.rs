//! The Wing–Gong search with Lowe's memoisation, as Porcupine does it: walk the key's calls
//! and returns in time order, linearize a call whenever the register allows it, back up when
//! a return is reached whose call could not be linearized, and never explore the same
//! (set of linearized operations, state) twice.
//!
//! Operations of unknown outcome have no return: they are tried only when the walk is stuck
//! at a return, and the memo treats them by dominance: having linearized *fewer* of them in
//! the same state leaves every option open, so a configuration is skipped when one with the
//! same completed operations, the same state and a subset of them was already explored.
//! Without that, each write of unknown outcome would double the configurations.

use std::time::Duration;

use rustc_hash::FxHashMap;

use super::model::{ABSENT, State, Step};

/// How a search ended.
#[derive(Debug)]
pub(super) enum Found {
    /// Every completed operation has a place.
    Linearizable,
    /// No order exists. `deepest` is the longest order found (indices into the steps).
    Stuck { deepest: Vec<usize> },
    /// The search gave up after its budget of steps.
    GaveUp,
}

const END: usize = usize::MAX;

/// The calls and returns of the completed steps in time order, as a doubly-linked list
/// over which linearized operations are lifted out and put back (node 0 is the head).
struct Events {
    next: Vec<usize>,
    prev: Vec<usize>,
    /// Node -> (is a return, step, time).
    node: Vec<(bool, usize, Duration)>,
    call: Vec<usize>,
    ret: Vec<usize>,
}

impl Events {
    fn new(steps: &[Step], completed: &[usize]) -> Events {
        let mut order = Vec::with_capacity(completed.len() * 2);
        for &i in completed {
            order.push((steps[i].invoked, false, i));
            order.push((steps[i].returned.expect("a completed step"), true, i));
        }
        // At equal times a call goes first: the two operations then count as concurrent,
        // which allows more orders, never fewer.
        order.sort_by_key(|&(t, is_return, _)| (t, is_return));
        let n = order.len();
        let mut events = Events {
            next: (1..=n).chain([END]).collect(),
            prev: std::iter::once(END).chain(0..n).collect(),
            node: std::iter::once((false, END, Duration::ZERO))
                .chain(order.iter().map(|&(t, r, i)| (r, i, t)))
                .collect(),
            call: vec![END; steps.len()],
            ret: vec![END; steps.len()],
        };
        for (node, &(_, is_return, i)) in order.iter().enumerate() {
            let slot = if is_return {
                &mut events.ret
            } else {
                &mut events.call
            };
            slot[i] = node + 1;
        }
        events
    }

    fn unlink(&mut self, n: usize) {
        let (p, x) = (self.prev[n], self.next[n]);
        self.next[p] = x;
        if x != END {
            self.prev[x] = p;
        }
    }

    /// Puts back a node unlinked last (dancing links: in the reverse order of removal).
    fn relink(&mut self, n: usize) {
        let (p, x) = (self.prev[n], self.next[n]);
        self.next[p] = n;
        if x != END {
            self.prev[x] = n;
        }
    }

    fn lift(&mut self, i: usize) {
        self.unlink(self.call[i]);
        self.unlink(self.ret[i]);
    }

    fn unlift(&mut self, i: usize) {
        self.relink(self.ret[i]);
        self.relink(self.call[i]);
    }
}

/// Where the walk is: scanning the list, or (stuck at the return `at`) trying operations of
/// unknown outcome from the `from`-th on.
#[derive(Clone, Copy)]
enum Walk {
    Scan(usize),
    Unknown { from: usize, at: usize },
}

/// The memo: per (state, completed operations linearized), the sets of operations of
/// unknown outcome linearized with them that were explored.
#[derive(Default)]
struct Memo {
    seen: FxHashMap<Box<[u64]>, Vec<Box<[usize]>>>,
    key: Vec<u64>,
}

impl Memo {
    /// Records the configuration; false if it was explored already, or is dominated by
    /// one that was.
    fn visit(&mut self, state: State, completed: &[u64], unknown: &[usize]) -> bool {
        // Completed steps are numbered by return, so the linearized ones are mostly a run of
        // ones from the start: the key stores that run's length and the words after it.
        self.key.clear();
        let ones = completed.iter().take_while(|&&w| w == u64::MAX).count();
        self.key.extend([u64::from(state), ones as u64]);
        for (i, &w) in completed.iter().enumerate().skip(ones) {
            if w != 0 {
                self.key.extend([i as u64, w]);
            }
        }
        let mut unknown = unknown.to_vec();
        unknown.sort_unstable();
        let explored = match self.seen.get_mut(self.key.as_slice()) {
            Some(sets) => sets,
            None => self.seen.entry(self.key.clone().into_boxed_slice()).or_default(),
        };
        if explored
            .iter()
            .any(|s| s.iter().all(|u| unknown.binary_search(u).is_ok()))
        {
            return false;
        }
        explored.push(unknown.into_boxed_slice());
        true
    }
}

/// Searches for an order of `steps` that a register allows, walking at most `budget`
/// steps. With `track`, a failed search also returns the longest order it found.
pub(super) fn search(steps: &[Step], budget: u64, track: bool) -> (Found, u64) {
    let mut completed: Vec<usize> = (0..steps.len())
        .filter(|&i| steps[i].returned.is_some())
        .collect();
    completed.sort_by_key(|&i| steps[i].returned);
    let mut unknown: Vec<usize> = (0..steps.len())
        .filter(|&i| steps[i].returned.is_none())
        .collect();
    unknown.sort_by_key(|&i| steps[i].invoked);
    // Operations of unknown outcome with the same precondition and effect are
    // interchangeable: of each such class only the first not yet linearized is tried.
    let mut class = vec![0; steps.len()];
    let mut place = vec![0; steps.len()];
    let mut classes: Vec<(usize, usize)> = Vec::new(); // (a member, members so far)
    for &u in &unknown {
        let same = |&(r, _): &(usize, usize)| steps[r].pre == steps[u].pre && steps[r].to == steps[u].to;
        let c = classes.iter().position(same).unwrap_or_else(|| {
            classes.push((u, 0));
            classes.len() - 1
        });
        class[u] = c;
        place[u] = classes[c].1;
        classes[c].1 += 1;
    }
    let mut class_taken = vec![0; classes.len()];
    let mut rank = vec![0; steps.len()];
    for (r, &i) in completed.iter().enumerate() {
        rank[i] = r;
    }

    let mut events = Events::new(steps, &completed);
    let mut bits = vec![0u64; completed.len().div_ceil(64)];
    let mut taken: Vec<usize> = Vec::new();
    let mut memo = Memo::default();
    // Each linearized step, the state before it, and where the walk resumes without it.
    let mut stack: Vec<(usize, State, Walk)> = Vec::new();
    let mut deepest: Vec<usize> = Vec::new();
    let mut state = ABSENT;
    let mut left = completed.len();
    let mut walk = Walk::Scan(events.next[0]);
    let mut walked = 0;
    while left > 0 {
        walked += 1;
        if walked > budget {
            return (Found::GaveUp, walked);
        }
        // Try to linearize one step next; `resume` is where to go on if it is undone.
        let (candidate, resume) = match walk {
            Walk::Scan(node) => {
                // While a completed step is left its return is ahead, so the scan ends there.
                let (is_return, i, _) = events.node[node];
                if is_return {
                    walk = Walk::Unknown { from: 0, at: node };
                    continue;
                }
                walk = Walk::Scan(events.next[node]);
                (Some(i), walk)
            }
            Walk::Unknown { from, at } => {
                let until = events.node[at].2;
                // Right after another operation of unknown outcome, one whose precondition
                // held before it would only overwrite it: skip it (it can come without).
                let after_unknown = match stack.last() {
                    Some(&(j, before, _)) if steps[j].returned.is_none() => Some(before),
                    _ => None,
                };
                let next = unknown[from.min(unknown.len())..]
                    .iter()
                    .take_while(|&&i| steps[i].invoked <= until)
                    .position(|&i| {
                        place[i] == class_taken[class[i]]
                            && after_unknown.is_none_or(|before| !steps[i].pre.allows(before))
                    })
                    .map(|p| from + p);
                match next {
                    Some(u) => {
                        walk = Walk::Unknown { from: u + 1, at };
                        (Some(unknown[u]), walk)
                    }
                    None => (None, walk),
                }
            }
        };
        let Some(i) = candidate else {
            // Stuck: undo the last choice and go on from where it was made.
            let Some((j, before, resume)) = stack.pop() else {
                return (Found::Stuck { deepest }, walked);
            };
            state = before;
            if steps[j].returned.is_some() {
                bits[rank[j] / 64] &= !(1 << (rank[j] % 64));
                events.unlift(j);
                left += 1;
            } else {
                taken.pop();
                class_taken[class[j]] -= 1;
            }
            walk = resume;
            continue;
        };
        let step = &steps[i];
        if !step.pre.allows(state) {
            continue;
        }
        let after = step.to.unwrap_or(state);
        let done = step.returned.is_some();
        if done {
            bits[rank[i] / 64] |= 1 << (rank[i] % 64);
        } else {
            taken.push(i);
            class_taken[class[i]] += 1;
        }
        if memo.visit(after, &bits, &taken) {
            stack.push((i, state, resume));
            state = after;
            if done {
                events.lift(i);
                left -= 1;
            }
            if track && stack.len() > deepest.len() {
                deepest = stack.iter().map(|&(i, _, _)| i).collect();
            }
            walk = Walk::Scan(events.next[0]);
        } else if done {
            bits[rank[i] / 64] &= !(1 << (rank[i] % 64));
        } else {
            taken.pop();
            class_taken[class[i]] -= 1;
        }
    }
    (Found::Linearizable, walked)
}
