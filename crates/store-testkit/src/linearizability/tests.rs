//! The checker on hand-made histories: linearizable ones pass, each kind of anomaly fails
//! with the operations that show it.

use std::time::Duration;

use proptest::prelude::*;
use store_core::{Key, PutMode, Version};

use super::{ViolationKind, check};
use crate::history::{Call, History, Op, Outcome};

fn key() -> Key {
    Key::new("k").unwrap()
}

fn v(n: u64) -> Version {
    Version::from(n)
}

/// A history written as `(client, call, outcome, invoked, returned)` with times in ms.
fn history(ops: Vec<(usize, Call, Outcome, u64, Option<u64>)>) -> History {
    History {
        ops: ops
            .into_iter()
            .map(|(client, call, outcome, from, to)| Op {
                client,
                call,
                outcome,
                invoked: Duration::from_millis(from),
                returned: to.map(Duration::from_millis),
            })
            .collect(),
    }
}

fn put(value: &'static str, mode: PutMode) -> Call {
    Call::Put {
        key: key(),
        value: value.into(),
        mode,
    }
}

fn get() -> Call {
    Call::Get { key: key() }
}

fn read(value: &'static str, version: u64) -> Outcome {
    Outcome::Read {
        value: value.into(),
        version: v(version),
    }
}

fn list() -> Call {
    Call::List {
        prefix: None,
        start_after: None,
    }
}

fn listed(entries: &[u64], complete: bool) -> Outcome {
    Outcome::Listed {
        entries: entries.iter().map(|&n| (key(), v(n))).collect(),
        complete,
    }
}

fn unknown() -> Outcome {
    Outcome::Unknown("lost reply".into())
}

use Outcome::{NotFound, Written};

#[test]
fn a_sequential_history_of_every_call_passes() {
    let h = history(vec![
        (0, get(), NotFound, 0, Some(1)),
        (0, put("a", PutMode::Create), Written(v(1)), 2, Some(3)),
        (
            0,
            put("x", PutMode::Create),
            Outcome::AlreadyExists(v(1)),
            4,
            Some(5),
        ),
        (0, put("b", PutMode::Update(v(1))), Written(v(2)), 6, Some(7)),
        (
            0,
            put("x", PutMode::Update(v(1))),
            Outcome::Conflict(Some(v(2))),
            8,
            Some(9),
        ),
        (0, Call::Head { key: key() }, Outcome::Meta(v(2)), 10, Some(11)),
        (0, list(), listed(&[2], true), 12, Some(13)),
        (
            0,
            Call::Watch {
                key: key(),
                seen: Some(v(1)),
            },
            Outcome::Watched(Some(v(2))),
            14,
            Some(15),
        ),
        (
            0,
            Call::Delete {
                key: key(),
                if_match: Some(v(1)),
            },
            Outcome::Conflict(None),
            16,
            Some(17),
        ),
        (
            0,
            Call::Delete {
                key: key(),
                if_match: Some(v(2)),
            },
            Outcome::Deleted,
            18,
            Some(19),
        ),
        (
            0,
            Call::Delete {
                key: key(),
                if_match: None,
            },
            NotFound,
            20,
            Some(21),
        ),
        (0, put("x", PutMode::Update(v(2))), NotFound, 22, Some(23)),
        (0, list(), listed(&[], true), 24, Some(25)),
        (
            0,
            Call::Watch {
                key: key(),
                seen: Some(v(2)),
            },
            Outcome::Watched(None),
            26,
            Some(27),
        ),
        (0, put("c", PutMode::Overwrite), Written(v(3)), 28, Some(29)),
        (0, get(), read("c", 3), 30, Some(31)),
    ]);
    let checked = check(&h).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((checked.keys, checked.ops), (1, 16));
}

#[test]
fn concurrent_operations_may_take_effect_in_either_order() {
    // Two overlapping puts; readers during and after them agree on one order.
    let h = history(vec![
        (0, put("a", PutMode::Overwrite), Written(v(1)), 0, Some(10)),
        (1, put("b", PutMode::Overwrite), Written(v(2)), 1, Some(9)),
        (2, get(), read("b", 2), 2, Some(3)),
        (2, get(), read("a", 1), 4, Some(5)),
        (3, get(), read("a", 1), 11, Some(12)),
    ]);
    check(&h).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn a_stale_read_fails_and_is_shown() {
    let h = history(vec![
        (0, put("a", PutMode::Overwrite), Written(v(1)), 0, Some(1)),
        (0, put("b", PutMode::Overwrite), Written(v(2)), 2, Some(3)),
        (1, get(), read("a", 1), 4, Some(5)),
    ]);
    let e = check(&h).unwrap_err();
    assert_eq!(e.kind, ViolationKind::NotLinearizable);
    assert_eq!(e.unordered, vec![h.ops[2].clone()], "{e}");
    assert_eq!(e.order, h.ops[..2].to_vec(), "{e}");
    let text = e.to_string();
    assert!(text.contains("\"k\"") && text.contains("get k"), "{text}");
}

#[test]
fn a_read_that_goes_back_fails() {
    // The put is still running, but once a reader has seen it, later reads must too.
    let h = history(vec![
        (0, put("a", PutMode::Overwrite), Written(v(1)), 0, Some(10)),
        (1, get(), read("a", 1), 1, Some(2)),
        (2, get(), NotFound, 3, Some(4)),
    ]);
    assert!(check(&h).is_err());
}

#[test]
fn a_lost_update_fails() {
    let h = history(vec![
        (0, put("a", PutMode::Create), Written(v(1)), 0, Some(1)),
        (1, put("b", PutMode::Update(v(1))), Written(v(2)), 2, Some(5)),
        (2, put("c", PutMode::Update(v(1))), Written(v(3)), 3, Some(6)),
    ]);
    let e = check(&h).unwrap_err();
    let shown: Vec<_> = e.order.iter().chain(&e.unordered).collect();
    assert!(h.ops.iter().all(|op| shown.contains(&op)), "{e}");
    assert_eq!(e.unordered.len(), 1, "one update cannot follow the other: {e}");
}

#[test]
fn two_creates_cannot_both_win() {
    let h = history(vec![
        (0, put("a", PutMode::Create), Written(v(1)), 0, Some(5)),
        (1, put("b", PutMode::Create), Written(v(2)), 1, Some(6)),
    ]);
    assert!(check(&h).is_err());
}

#[test]
fn a_watch_or_listing_that_goes_back_in_time_fails() {
    let writes = || {
        vec![
            (0, put("a", PutMode::Overwrite), Written(v(1)), 0, Some(1)),
            (0, put("b", PutMode::Overwrite), Written(v(2)), 2, Some(3)),
        ]
    };
    let mut watch = writes();
    watch.push((
        1,
        Call::Watch {
            key: key(),
            seen: None,
        },
        Outcome::Watched(Some(v(1))),
        4,
        Some(5),
    ));
    assert!(check(&history(watch)).is_err());

    let mut listing = writes();
    listing.push((1, list(), listed(&[1], true), 4, Some(5)));
    assert!(check(&history(listing)).is_err());

    let mut missing = writes();
    missing.push((1, list(), listed(&[], true), 4, Some(5)));
    assert!(
        check(&history(missing)).is_err(),
        "a listing missed an acknowledged write"
    );

    let mut cut = writes();
    cut.push((1, list(), listed(&[], false), 4, Some(5)));
    check(&history(cut)).expect("a listing cut short says nothing of the keys it did not reach");
}

#[test]
fn writes_of_unknown_outcome_may_or_may_not_have_happened() {
    let before = || {
        vec![
            (0, put("a", PutMode::Overwrite), Written(v(1)), 0, Some(1)),
            (0, put("b", PutMode::Update(v(1))), unknown(), 2, Some(3)),
        ]
    };
    // It happened (even long after its error)...
    let mut happened = before();
    happened.push((1, get(), read("a", 1), 4, Some(5)));
    happened.push((1, get(), read("b", 7), 6, Some(7)));
    happened.push((1, Call::Head { key: key() }, Outcome::Meta(v(7)), 8, Some(9)));
    check(&history(happened)).unwrap_or_else(|e| panic!("{e}"));
    // ...or never did...
    let mut never = before();
    never.push((1, get(), read("a", 1), 4, Some(5)));
    never.push((1, Call::Head { key: key() }, Outcome::Meta(v(1)), 30, Some(31)));
    check(&history(never)).unwrap_or_else(|e| panic!("{e}"));
    // ...but not both.
    let mut both = before();
    both.push((1, get(), read("b", 7), 4, Some(5)));
    both.push((1, get(), read("a", 1), 6, Some(7)));
    assert!(check(&history(both)).is_err());
    // A write that never returned is the same.
    let mut hung = before();
    hung[1].4 = None;
    hung.push((1, get(), read("b", 7), 4, Some(5)));
    check(&history(hung)).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn two_racing_deletes_cannot_both_find_the_key_unless_presence_is_unchecked() {
    let racing = |outcome: fn() -> Outcome| {
        history(vec![
            (0, put("a", PutMode::Overwrite), Written(v(1)), 0, Some(1)),
            (
                1,
                Call::Delete {
                    key: key(),
                    if_match: None,
                },
                outcome(),
                2,
                Some(5),
            ),
            (
                2,
                Call::Delete {
                    key: key(),
                    if_match: None,
                },
                outcome(),
                3,
                Some(6),
            ),
        ])
    };
    assert!(check(&racing(|| Outcome::Deleted)).is_err());
    check(&racing(|| Outcome::Cleared)).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn a_refused_write_must_not_take_effect() {
    let h = history(vec![
        (0, put("a", PutMode::Overwrite), Written(v(1)), 0, Some(1)),
        (
            0,
            put("b", PutMode::Overwrite),
            Outcome::Failed("refused (not applied)".into()),
            2,
            Some(3),
        ),
        (1, get(), read("b", 2), 4, Some(5)),
    ]);
    assert!(check(&h).is_err());
}

#[test]
fn versions_name_states() {
    // A read of a value at another version than its write got.
    let h = history(vec![
        (0, put("a", PutMode::Overwrite), Written(v(1)), 0, Some(1)),
        (1, get(), read("a", 2), 2, Some(3)),
    ]);
    assert!(check(&h).is_err());
    // An update from a version that named an overwritten state.
    let h = history(vec![
        (0, put("a", PutMode::Overwrite), Written(v(1)), 0, Some(1)),
        (0, put("b", PutMode::Overwrite), Written(v(2)), 2, Some(3)),
        (1, put("c", PutMode::Update(v(1))), Written(v(3)), 4, Some(5)),
    ]);
    assert!(check(&h).is_err());
    // Two writes with one version.
    let h = history(vec![
        (0, put("a", PutMode::Overwrite), Written(v(1)), 0, Some(1)),
        (
            0,
            Call::Delete {
                key: key(),
                if_match: None,
            },
            Outcome::Deleted,
            2,
            Some(3),
        ),
        (0, put("b", PutMode::Create), Written(v(1)), 4, Some(5)),
    ]);
    let e = check(&h).unwrap_err();
    assert_eq!(e.kind, ViolationKind::VersionReused);
    assert_eq!(e.unordered, vec![h.ops[0].clone(), h.ops[2].clone()]);
}

#[test]
fn keys_are_checked_apart() {
    let other = Key::new("other").unwrap();
    let h = history(vec![
        (0, put("a", PutMode::Overwrite), Written(v(1)), 0, Some(1)),
        (1, Call::Get { key: other.clone() }, NotFound, 2, Some(3)),
        (1, list(), listed(&[1], true), 4, Some(5)),
        (
            1,
            Call::Put {
                key: other.clone(),
                value: "z".into(),
                mode: PutMode::Create,
            },
            Written(v(9)),
            6,
            Some(7),
        ),
        (1, list(), listed(&[1], true), 8, Some(9)),
    ]);
    let e = check(&h).unwrap_err();
    assert_eq!(e.key, other, "the second listing misses \"other\": {e}");
}

#[test]
fn the_counterexample_is_the_shortest_failing_prefix() {
    // 2,000 linearizable operations by 4 clients, then one stale read, then more.
    let mut ops = Vec::new();
    let mut t = 0;
    for n in 1..=500u64 {
        let c = (n % 4) as usize;
        let value: &'static str = Box::leak(format!("w{n}").into_boxed_str());
        let from = if n == 1 {
            PutMode::Create
        } else {
            PutMode::Update(v(n - 1))
        };
        ops.push((c, put(value, from), Written(v(n)), t, Some(t + 3)));
        ops.push(((c + 1) % 4, get(), read(value, n), t + 4, Some(t + 6)));
        ops.push((
            (c + 2) % 4,
            Call::Head { key: key() },
            Outcome::Meta(v(n)),
            t + 4,
            Some(t + 5),
        ));
        ops.push(((c + 3) % 4, list(), listed(&[n], true), t + 5, Some(t + 7)));
        t += 10;
        if n == 400 {
            ops.push((1, get(), read("w398", 398), t, Some(t + 1)));
        }
    }
    let h = history(ops);
    let e = check(&h).unwrap_err();
    assert_eq!(e.unordered.len(), 1, "{e}");
    assert_eq!(e.unordered[0].outcome, read("w398", 398), "{e}");
    assert!(e.order.len() <= super::SHOWN_BEFORE, "{e}");
}

/// A history made by running operations one at a time on a register, each given an interval
/// around its real instant: linearizable by construction, so the checker must accept it.
fn linearizable_history() -> impl Strategy<Value = History> {
    let op = (0u8..8, 0u64..25, 0u64..25, any::<bool>());
    proptest::collection::vec(op, 1..120).prop_map(|ops| {
        let mut state: Option<(String, u64)> = None;
        let mut next = 0;
        let mut h = Vec::new();
        for (i, (kind, early, late, stale)) in ops.into_iter().enumerate() {
            let at = 100 + i as u64 * 10;
            let value = format!("w{i}");
            let current = state.as_ref().map(|s| s.1);
            let from = if stale {
                999_999
            } else {
                current.unwrap_or(999_999)
            };
            let (call, outcome) = match (kind, &state) {
                (0, _) | (1, None) => {
                    next += 1;
                    state = Some((value.clone(), next));
                    let mode = if kind == 0 {
                        PutMode::Overwrite
                    } else {
                        PutMode::Create
                    };
                    (
                        Call::Put {
                            key: key(),
                            value: value.into(),
                            mode,
                        },
                        Written(v(next)),
                    )
                }
                (1, Some(s)) => (put("x", PutMode::Create), Outcome::AlreadyExists(v(s.1))),
                (2, Some(s)) if s.1 == from => {
                    next += 1;
                    state = Some((value.clone(), next));
                    (
                        Call::Put {
                            key: key(),
                            value: value.into(),
                            mode: PutMode::Update(v(from)),
                        },
                        Written(v(next)),
                    )
                }
                (2, Some(s)) => (
                    put("x", PutMode::Update(v(from))),
                    Outcome::Conflict(Some(v(s.1))),
                ),
                (2 | 3, None) => (
                    Call::Delete {
                        key: key(),
                        if_match: None,
                    },
                    NotFound,
                ),
                (3, Some(_)) => {
                    state = None;
                    (
                        Call::Delete {
                            key: key(),
                            if_match: None,
                        },
                        Outcome::Deleted,
                    )
                }
                (4, None) => (get(), NotFound),
                (4, Some(s)) => (
                    get(),
                    Outcome::Read {
                        value: s.0.clone().into(),
                        version: v(s.1),
                    },
                ),
                (5, _) => (list(), listed(&current.into_iter().collect::<Vec<_>>(), true)),
                (6, _) if current == Some(from) => (Call::Head { key: key() }, Outcome::Meta(v(from))),
                (6, _) => (
                    Call::Watch {
                        key: key(),
                        seen: Some(v(from)),
                    },
                    Outcome::Watched(current.map(v)),
                ),
                _ => {
                    // A write whose reply is lost: it happened.
                    next += 1;
                    state = Some((value.clone(), next));
                    (
                        Call::Put {
                            key: key(),
                            value: value.into(),
                            mode: PutMode::Overwrite,
                        },
                        unknown(),
                    )
                }
            };
            h.push((i % 5, call, outcome, at - early, Some(at + late)));
        }
        history(h)
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(crate::prop::cases(64)))]
    #[test]
    fn histories_linearizable_by_construction_pass(h in linearizable_history()) {
        if let Err(e) = check(&h) {
            panic!("{e}\n{h}");
        }
    }
}

/// A read, after everything, of a value that an acknowledged write certainly overwrote.
fn with_stale_read(mut h: History) -> Option<History> {
    let acked = |op: &&Op| matches!(op.outcome, Written(_)) && matches!(op.call, Call::Put { .. });
    let overwritten = h
        .ops
        .iter()
        .filter(acked)
        .find(|a| h.ops.iter().filter(acked).any(|b| Some(b.invoked) > a.returned))?;
    let (Call::Put { value, .. }, Written(version)) = (&overwritten.call, &overwritten.outcome) else {
        unreachable!("an acknowledged put")
    };
    let outcome = Outcome::Read {
        value: value.clone(),
        version: version.clone(),
    };
    let end = h.ops.iter().filter_map(|op| op.returned).max()? + Duration::from_millis(1);
    h.push(Op {
        client: 9,
        call: get(),
        outcome,
        invoked: end,
        returned: Some(end),
    });
    Some(h)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(crate::prop::cases(64)))]
    #[test]
    fn a_stale_read_appended_to_any_history_fails(h in linearizable_history()) {
        if let Some(h) = with_stale_read(h) {
            let e = check(&h).expect_err("the stale read must fail");
            prop_assert!(!e.unordered.is_empty(), "{}\n{}", e, h);
            prop_assert_eq!(&e.unordered[0], h.ops.last().unwrap());
        }
    }
}
