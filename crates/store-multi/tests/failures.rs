//! Every write mode × failure point × number of failing backends, with exact
//! expectations on what each backend holds afterwards and what the error or report says.

use std::sync::Arc;

use bytes::Bytes;
use store_core::{
    Backend, BackendExt, DeleteOptions, Error, ErrorKind, Key, PutMode, PutOptions, Result, Version,
};
use store_memory::MemoryStore;
use store_multi::{Multi, MultiError, MultiWriter, Outcome, ReadPolicy, WriteMode, WriteReport};
use store_testkit::{Fault, FaultOp, Faulty, Rule};

mod common;

use common::Streaming;

const NAMES: [&str; 3] = ["b0", "b1", "b2"];

struct Rig {
    faulty: Vec<Faulty<MemoryStore>>,
    fan: MultiWriter,
}

/// Three streaming backends (the fan-out uses their writers: open, chunk and commit can
/// each fail).
fn rig(mode: WriteMode) -> Rig {
    rig_with(mode, true)
}

/// `streaming: false`: plain memory stores, which get the whole object in one `put` at
/// commit time (their only failure point).
fn rig_with(mode: WriteMode, streaming: bool) -> Rig {
    let faulty: Vec<_> = NAMES
        .iter()
        .map(|n| Faulty::new(MemoryStore::new()).named(n))
        .collect();
    let backends: Vec<Arc<dyn Backend>> = faulty
        .iter()
        .map(|f| -> Arc<dyn Backend> {
            if streaming {
                Arc::new(Streaming(f.clone()))
            } else {
                Arc::new(f.clone())
            }
        })
        .collect();
    let fan = MultiWriter::builder(backends).mode(mode).build_writer().unwrap();
    Rig { faulty, fan }
}

impl Rig {
    /// What each backend holds at `key` (read from the store under the fault injector).
    async fn held(&self, key: &Key) -> Vec<Option<Bytes>> {
        let mut out = Vec::new();
        for f in &self.faulty {
            out.push(f.inner().head_opt(key).await.unwrap().map(|_| ()));
        }
        let mut held = Vec::new();
        for (f, present) in self.faulty.iter().zip(out) {
            held.push(match present {
                Some(()) => Some(f.inner().get_bytes(key).await.unwrap()),
                None => None,
            });
        }
        held
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Point {
    Open,
    Write,
    Commit,
    /// The commit of a non-streaming backend: its one `put`.
    Put,
}

impl Point {
    fn rule(self) -> Rule {
        match self {
            Point::Open => Rule::new(FaultOp::WriterOpen, Fault::Fail),
            // The second of three chunks fails.
            Point::Write => Rule::new(FaultOp::WriterWrite, Fault::Fail).after(1),
            Point::Commit => Rule::new(FaultOp::WriterClose, Fault::Fail),
            Point::Put => Rule::new(FaultOp::Put, Fault::Fail),
        }
    }

    fn op(self) -> &'static str {
        match self {
            Point::Open => "WriterOpen",
            Point::Write => "WriterWrite",
            Point::Commit => "WriterClose",
            Point::Put => "Put",
        }
    }
}

async fn streamed(fan: &MultiWriter, key: &Key, mode: PutMode) -> Result<WriteReport> {
    let mut w = fan.writer(key, mode.into()).await?;
    for chunk in ["aa", "bb", "cc"] {
        w.write(Bytes::from(chunk)).await?;
    }
    w.close().await
}

fn multi_error(e: Error, what: &str) -> MultiError {
    match e {
        Error::Multi(m) => m,
        other => panic!("{what}: expected a MultiError, got {other:?}"),
    }
}

/// The errors name exactly the failing backends, each with the injected fault.
fn assert_errors_are(errors: &[(usize, Error)], failing: &[usize], point: Point, what: &str) {
    let indices: Vec<usize> = errors.iter().map(|(i, _)| *i).collect();
    assert_eq!(indices, failing, "{what}: failing backends in the error");
    for (i, e) in errors {
        let msg = e.to_string();
        assert!(
            msg.starts_with(NAMES[*i]) && msg.contains(&format!("injected fault at {}", point.op())),
            "{what}: backend {i}'s error: {msg}"
        );
    }
}

const FAILING_SETS: [&[usize]; 3] = [&[1], &[0, 2], &[0, 1, 2]];

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_mode_point_and_failure_count_overwrite() {
    let new = Some(Bytes::from("aabbcc"));
    let old = Some(Bytes::from("old"));
    let cases = [
        (true, Point::Open),
        (true, Point::Write),
        (true, Point::Commit),
        (false, Point::Put),
    ];
    for mode in [WriteMode::All, WriteMode::BestEffort, WriteMode::Quorum] {
        for (streaming, point) in cases {
            for failing in FAILING_SETS {
                let what = format!("{mode:?} / {point:?} / failing {failing:?}");
                let r = rig_with(mode, streaming);
                let key = Key::new("k").unwrap();
                for f in &r.faulty {
                    f.inner().put_bytes(&key, "old").await.unwrap();
                }
                for &i in failing {
                    r.faulty[i].inject(point.rule());
                }
                let result = streamed(&r.fan, &key, PutMode::Overwrite).await;
                let survivors = 3 - failing.len();
                let held = r.held(&key).await;
                if survivors >= mode.required(3) {
                    let report = result.unwrap_or_else(|e| panic!("{what}: expected success, got {e}"));
                    let ok: Vec<usize> = (0..3).filter(|i| !failing.contains(i)).collect();
                    assert_eq!(report.committed(), ok, "{what}: committed");
                    let msgs: Vec<(usize, String)> = report
                        .failures()
                        .iter()
                        .map(|(i, e)| (*i, e.to_string()))
                        .collect();
                    let indices: Vec<usize> = msgs.iter().map(|(i, _)| *i).collect();
                    assert_eq!(indices, failing, "{what}: failures in the report: {msgs:?}");
                    for (i, m) in &msgs {
                        assert!(
                            m.starts_with(NAMES[*i])
                                && m.contains(&format!("injected fault at {}", point.op())),
                            "{what}: {m}"
                        );
                    }
                    for (i, h) in held.iter().enumerate() {
                        let want = if failing.contains(&i) { &old } else { &new };
                        assert_eq!(h, want, "{what}: backend {i} holds");
                    }
                    // The tolerated failures are also in the fan-out's log.
                    let logged: Vec<usize> = r.fan.recent_failures().iter().map(|f| f.backend).collect();
                    assert_eq!(logged, failing, "{what}: failure log");
                    // The report's version is what a Multi over the same backends reads.
                    let multi = Multi::from(r.fan.clone());
                    for f in &r.faulty {
                        f.release();
                    }
                    assert_eq!(
                        &multi.head(&key).await.unwrap().version,
                        report.version(),
                        "{what}"
                    );
                } else {
                    let e = result.map(|r| r.committed()).expect_err(&what);
                    let m = multi_error(e, &what);
                    assert_errors_are(&m.errors, failing, point, &what);
                    for (i, h) in held.iter().enumerate() {
                        // Before the commit phase nothing changed anywhere; during it, the
                        // backends that committed keep the new object (an overwrite cannot
                        // be undone).
                        let at_commit = matches!(point, Point::Commit | Point::Put);
                        let want = if at_commit && !failing.contains(&i) {
                            &new
                        } else {
                            &old
                        };
                        assert_eq!(h, want, "{what}: backend {i} holds");
                    }
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn failed_create_rolls_back_the_backends_that_committed() {
    for (mode, point) in [
        (WriteMode::All, Point::Commit),
        (WriteMode::Quorum, Point::Commit),
        (WriteMode::All, Point::Put),
        (WriteMode::Quorum, Point::Put),
    ] {
        for failing in [&[1usize][..], &[0, 2]] {
            let what = format!("{mode:?} / {point:?} / failing {failing:?}");
            let r = rig_with(mode, point == Point::Commit);
            let key = Key::new("fresh").unwrap();
            for &i in failing {
                r.faulty[i].inject(point.rule());
            }
            let result = streamed(&r.fan, &key, PutMode::Create).await;
            if 3 - failing.len() >= mode.required(3) {
                assert_eq!(result.unwrap().committed().len(), 3 - failing.len(), "{what}");
                continue;
            }
            let m = multi_error(result.map(|r| r.committed()).unwrap_err(), &what);
            assert_errors_are(&m.errors, failing, point, &what);
            assert_eq!(r.held(&key).await, vec![None, None, None], "{what}: rolled back");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn all_mode_reports_a_failed_rollback_too() {
    let r = rig(WriteMode::All);
    let key = Key::new("fresh").unwrap();
    r.faulty[1].inject(Point::Commit.rule());
    r.faulty[0].inject(Rule::new(FaultOp::Delete, Fault::Fail));
    let m = multi_error(
        streamed(&r.fan, &key, PutMode::Create)
            .await
            .map(|r| r.committed())
            .unwrap_err(),
        "create",
    );
    let described: Vec<(usize, String)> = m.errors.iter().map(|(i, e)| (*i, e.to_string())).collect();
    assert_eq!(described.len(), 2, "{described:?}");
    assert_eq!(described[0].0, 0);
    assert!(
        described[0]
            .1
            .starts_with("store-multi rollback: b0: injected fault at Delete"),
        "{described:?}"
    );
    assert_eq!(described[1].0, 1);
    let held = r.held(&key).await;
    assert_eq!(
        held,
        vec![Some(Bytes::from("aabbcc")), None, None],
        "b0 could not be rolled back"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_update_from_a_best_effort_version_heals_the_backend_that_missed_it() {
    let r = rig(WriteMode::BestEffort);
    let key = Key::new("heal").unwrap();
    let first = r.fan.put(&key, "v1".into(), PutOptions::default()).await.unwrap();
    // A whole object goes to each backend's own `put`.
    r.faulty[1].inject(Rule::new(FaultOp::Put, Fault::Fail).times(1));
    let second = r
        .fan
        .put(&key, "v2".into(), PutOptions::update(first.version().clone()))
        .await
        .unwrap();
    assert_eq!(second.committed(), [0, 2]);
    assert_eq!(
        r.held(&key).await,
        vec![Some("v2".into()), Some("v1".into()), Some("v2".into())]
    );
    // The version names b1's old copy, so an update from it passes the check and brings b1 along.
    let third = r
        .fan
        .put(&key, "v3".into(), PutOptions::update(second.version().clone()))
        .await
        .unwrap();
    assert_eq!(third.committed(), [0, 1, 2]);
    assert_eq!(r.held(&key).await, vec![Some("v3".into()); 3]);
    // A stale version is a Conflict, and nothing is written.
    let stale = r
        .fan
        .put(&key, "v4".into(), PutOptions::update(second.version().clone()))
        .await
        .unwrap_err();
    match stale {
        Error::Conflict { expected, actual, .. } => {
            assert_eq!(expected.as_ref(), Some(second.version()));
            assert_eq!(actual.as_ref(), Some(third.version()));
        }
        other => panic!("expected Conflict, got {other:?}"),
    }
    assert_eq!(r.held(&key).await, vec![Some("v3".into()); 3]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writer_handle_write_after_close_is_closed_and_double_close_is_harmless() {
    let r = rig(WriteMode::All);
    let key = Key::new("twice").unwrap();
    let mut w = r.fan.writer(&key, PutOptions::default()).await.unwrap();
    w.write("x".into()).await.unwrap();
    let first = w.close().await.unwrap();
    let again = w.close().await.unwrap();
    assert_eq!(first.version(), again.version());
    assert_eq!(
        r.faulty[0].calls(FaultOp::WriterClose),
        1,
        "the second close committed nothing"
    );
    let e = w.write("late".into()).await.unwrap_err();
    assert!(matches!(e, Error::Closed { op: "write" }), "{e:?}");
    assert_eq!(r.held(&key).await, vec![Some("x".into()); 3]);

    // After a failed close, closing again says Closed and changes nothing.
    r.faulty[2].inject(Point::Commit.rule());
    let mut w = r.fan.writer(&key, PutOptions::default()).await.unwrap();
    w.write("y".into()).await.unwrap();
    assert_eq!(w.close().await.unwrap_err().kind(), ErrorKind::Multi);
    assert!(matches!(
        w.close().await.unwrap_err(),
        Error::Closed { op: "close" }
    ));
    assert!(matches!(
        w.write("z".into()).await.unwrap_err(),
        Error::Closed { op: "write" }
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_all_mode_failure_ends_the_writer() {
    let r = rig(WriteMode::All);
    let key = Key::new("ended").unwrap();
    r.faulty[0].inject(Rule::new(FaultOp::WriterWrite, Fault::Fail).times(1));
    let mut w = r.fan.writer(&key, PutOptions::default()).await.unwrap();
    assert_eq!(w.write("a".into()).await.unwrap_err().kind(), ErrorKind::Multi);
    assert!(matches!(
        w.write("b".into()).await.unwrap_err(),
        Error::Closed { op: "write" }
    ));
    assert!(matches!(
        w.close().await.unwrap_err(),
        Error::Closed { op: "close" }
    ));
    assert_eq!(r.held(&key).await, vec![None, None, None]);
}

#[tokio::test]
async fn an_empty_backend_list_is_refused() {
    let e = MultiWriter::new(Vec::new()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert!(e.to_string().contains("at least one backend"), "{e}");
    assert!(Multi::builder(Vec::new()).build().is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn multi_backend_put_logs_tolerated_failures() {
    let r = rig(WriteMode::BestEffort);
    let multi = Multi::from(r.fan.clone());
    let key = Key::new("logged").unwrap();
    r.faulty[2].inject(Rule::new(FaultOp::Put, Fault::Fail));
    let meta = multi.put_bytes(&key, "data").await.unwrap();
    assert_eq!(multi.head(&key).await.unwrap().version, meta.version);
    let log = multi.fan_out().recent_failures();
    assert_eq!(log.len(), 1);
    assert_eq!(
        (log[0].op, log[0].key.as_str(), log[0].backend),
        ("put", "logged", 2)
    );
    assert!(log[0].error.to_string().contains("injected fault at Put"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deletes_follow_the_write_mode() {
    for (mode, failing, ok) in [
        (WriteMode::All, vec![1], false),
        (WriteMode::BestEffort, vec![0, 1], true),
        (WriteMode::Quorum, vec![1], true),
        (WriteMode::Quorum, vec![0, 1], false),
    ] {
        let what = format!("{mode:?} / failing {failing:?}");
        let r = rig(mode);
        let multi = Multi::from(r.fan.clone());
        let key = Key::new("gone").unwrap();
        multi.put_bytes(&key, "x").await.unwrap();
        for &i in &failing {
            r.faulty[i].inject(Rule::new(FaultOp::Delete, Fault::Fail));
        }
        let result = multi.delete(&key, DeleteOptions::default()).await;
        assert_eq!(result.is_ok(), ok, "{what}: {result:?}");
        if let Err(e) = result {
            let m = multi_error(e, &what);
            assert_eq!(
                m.errors.iter().map(|(i, _)| *i).collect::<Vec<_>>(),
                failing,
                "{what}"
            );
        }
        let held = r.held(&key).await;
        for (i, h) in held.iter().enumerate() {
            assert_eq!(h.is_some(), failing.contains(&i), "{what}: backend {i}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reads_fall_through_failing_backends() {
    for policy in [ReadPolicy::InOrder, ReadPolicy::Fastest] {
        let faulty: Vec<_> = NAMES
            .iter()
            .map(|n| Faulty::new(MemoryStore::new()).named(n))
            .collect();
        let backends: Vec<Arc<dyn Backend>> = faulty.iter().map(|f| Arc::new(f.clone()) as _).collect();
        let multi = Multi::builder(backends).read_policy(policy).build().unwrap();
        let key = Key::new("read").unwrap();
        multi.put_bytes(&key, "body").await.unwrap();
        faulty[0].inject(Rule::new(FaultOp::Get, Fault::Fail));
        assert_eq!(multi.get_bytes(&key).await.unwrap(), "body", "{policy:?}");
        faulty[1].inject(Rule::new(FaultOp::Get, Fault::Fail));
        faulty[2].inject(Rule::new(FaultOp::Get, Fault::Fail));
        let e = multi.get_bytes(&key).await.unwrap_err();
        let m = multi_error(e, "all gets fail");
        assert_eq!(
            m.errors.iter().map(|(i, _)| *i).collect::<Vec<_>>(),
            [0, 1, 2],
            "{policy:?}"
        );
        // head: a backend that cannot answer is unknown (`?`) in the version, not fatal.
        faulty[1].inject(Rule::new(FaultOp::Head, Fault::Fail));
        let v = multi.head(&key).await.unwrap().version.to_string();
        assert_eq!(v.split('|').nth(1), Some("?"), "{v}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_key_missing_on_some_backends_is_still_found() {
    let stores: Vec<MemoryStore> = (0..3).map(|_| MemoryStore::new()).collect();
    let backends: Vec<Arc<dyn Backend>> = stores.iter().map(|s| Arc::new(s.clone()) as _).collect();
    let multi = Multi::new(backends).unwrap();
    let key = Key::new("only/on/two").unwrap();
    stores[1].put_bytes(&key, "from 1").await.unwrap();
    stores[2].put_bytes(&key, "from 2").await.unwrap();
    assert_eq!(multi.get_bytes(&key).await.unwrap(), "from 1");
    let v = multi.head(&key).await.unwrap().version.to_string();
    assert!(v.starts_with("-|+"), "{v}");
    assert_eq!(
        multi.list_keys("only/").await.unwrap(),
        std::slice::from_ref(&key)
    );
    // An update from that version writes all three (backend 0 by Create).
    multi
        .update(&key, "same everywhere", Version::parse(&v))
        .await
        .unwrap();
    for s in &stores {
        assert_eq!(s.get_bytes(&key).await.unwrap(), "same everywhere");
    }
}

#[test]
fn multi_error_display() {
    let one = MultiError::new(vec![(2, Error::Closed { op: "put" })]);
    assert_eq!(one.to_string(), "put: closed");
    let three = MultiError::new(vec![
        (0, Error::Closed { op: "a" }),
        (1, Error::Closed { op: "b" }),
        (2, Error::Closed { op: "c" }),
    ]);
    assert_eq!(three.to_string(), "a: closed (and 2 more errors)");
    assert_eq!(
        std::error::Error::source(&three).unwrap().to_string(),
        "a: closed"
    );
    assert_eq!(three.errors.len(), 3);
    assert_eq!(MultiError::default().to_string(), "no errors");
}

#[tokio::test]
async fn outcome_helpers() {
    let r = rig(WriteMode::BestEffort);
    r.faulty[0].inject(Point::Put.rule());
    let report = r
        .fan
        .put(&Key::new("o").unwrap(), "x".into(), PutOptions::default())
        .await
        .unwrap();
    assert!(report.outcomes()[0].error().is_some());
    assert!(matches!(report.outcomes()[1], Outcome::Committed(_)));
    assert!(report.pending().is_empty());
    let settled = report.settled().await;
    assert_eq!(&settled.meta.version, report.version());
}

#[tokio::test]
async fn capabilities_are_what_every_backend_guarantees() {
    let plain: Arc<dyn Backend> = Arc::new(MemoryStore::new());
    let streaming: Arc<dyn Backend> = Arc::new(Streaming(MemoryStore::new()));
    let both = Multi::new([Arc::clone(&plain), Arc::clone(&streaming)]).unwrap();
    let caps = both.capabilities();
    // Everything both guarantee, except that conditional writes are coordinated in this
    // process (not shared) and a composite version can name copies that differ.
    let common = plain.capabilities().intersection(streaming.capabilities());
    assert!(common.stable_versions);
    assert_eq!(caps, common.with_shared(false).with_stable_versions(false));
    assert!(caps.create && caps.update && !caps.streaming_writes && !caps.shared);
    let streams = Multi::new([Arc::clone(&streaming), streaming]).unwrap();
    assert!(streams.capabilities().streaming_writes);
}
