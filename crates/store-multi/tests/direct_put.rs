//! A whole-object `put` over backends that do not stream writes takes a direct path (one
//! `put` per backend under the key's lock, no writer). It must be indistinguishable from a
//! streamed write of the same object in one chunk: same result, same errors, same report,
//! same failure log, same versions, same data left on every backend — in every write mode,
//! put mode, failure point and number of failing backends.

use std::sync::Arc;

use bytes::Bytes;
use store_core::{Backend, BackendExt, Error, Key, PutMode, PutOptions, Result, Version};
use store_memory::MemoryStore;
use store_multi::{Multi, MultiWriter, WriteMode, WriteReport};
use store_testkit::{Fault, FaultOp, Faulty, Rule};

const NAMES: [&str; 3] = ["b0", "b1", "b2"];

/// Three plain (non-streaming) memory stores behind fault injectors.
fn rig(mode: WriteMode) -> (Vec<Faulty<MemoryStore>>, MultiWriter) {
    let faulty: Vec<_> = NAMES
        .iter()
        .map(|n| Faulty::new(MemoryStore::new()).named(n))
        .collect();
    let backends: Vec<Arc<dyn Backend>> = faulty
        .iter()
        .map(|f| Arc::new(f.clone()) as Arc<dyn Backend>)
        .collect();
    let fan = MultiWriter::builder(backends).mode(mode).build_writer().unwrap();
    (faulty, fan)
}

/// Everything observable about a write, as text, so that two writes can be compared.
async fn summary(
    result: Result<WriteReport>,
    faulty: &[Faulty<MemoryStore>],
    fan: &MultiWriter,
    key: &Key,
) -> String {
    let outcome = match result {
        Ok(report) => {
            let settled = report.settled().await;
            let failures: Vec<(usize, String)> = report
                .failures()
                .iter()
                .map(|(i, e)| (*i, e.to_string()))
                .collect();
            format!(
                "ok committed={:?} pending={:?} failures={failures:?} version={} size={} settled={} settled_outcomes={:?}",
                report.committed(),
                report.pending(),
                report.version(),
                report.meta().size,
                settled.meta.version,
                settled
                    .outcomes
                    .iter()
                    .map(|o| o.is_committed())
                    .collect::<Vec<_>>(),
            )
        }
        Err(e) => error_summary(e),
    };
    format!("{outcome}\n{}", state(faulty, fan, key).await)
}

fn error_summary(e: Error) -> String {
    match e {
        Error::Multi(m) => {
            let errors: Vec<(usize, String)> = m.errors.iter().map(|(i, e)| (*i, e.to_string())).collect();
            format!("multi error {errors:?}")
        }
        e => format!("error {:?}: {e}", e.kind()),
    }
}

/// What every backend holds afterwards, and the failure log.
async fn state(faulty: &[Faulty<MemoryStore>], fan: &MultiWriter, key: &Key) -> String {
    for f in faulty {
        f.release();
    }
    let mut held = Vec::new();
    for f in faulty {
        held.push(match f.inner().head_opt(key).await.unwrap() {
            Some(meta) => format!(
                "{}@{}",
                String::from_utf8_lossy(&f.inner().get_bytes(key).await.unwrap()),
                meta.version
            ),
            None => "-".to_owned(),
        });
    }
    let logged: Vec<(usize, String)> = fan
        .recent_failures()
        .iter()
        .map(|f| (f.backend, format!("{} {} {}", f.op, f.key, f.error)))
        .collect();
    format!("held={held:?}\nlog={logged:?}")
}

#[derive(Debug, Clone, Copy)]
enum Start {
    /// Every backend holds "old".
    Full,
    /// Only backend 1 holds "old".
    Partial,
    /// Nothing anywhere.
    Empty,
}

#[derive(Debug, Clone, Copy)]
enum Mode {
    Overwrite,
    Create,
    /// With the composite version the backends hold.
    UpdateCurrent,
    /// With a composite version they do not hold.
    UpdateStale,
}

/// Three faulty backends in `start`'s state, `failing` ones set to fail at `fault`, and
/// the put mode to write with.
async fn prepare(
    mode: WriteMode,
    start: Start,
    put_mode: Mode,
    fault: FaultOp,
    failing: &[usize],
) -> (Vec<Faulty<MemoryStore>>, MultiWriter, Key, PutMode) {
    let (faulty, fan) = rig(mode);
    let key = Key::new("k").unwrap();
    let holders: &[usize] = match start {
        Start::Full => &[0, 1, 2],
        Start::Partial => &[1],
        Start::Empty => &[],
    };
    for &i in holders {
        faulty[i].inner().put_bytes(&key, "old").await.unwrap();
    }
    let current = Multi::from(fan.clone())
        .head_opt(&key)
        .await
        .unwrap()
        .map(|m| m.version);
    let put_mode = match put_mode {
        Mode::Overwrite => PutMode::Overwrite,
        Mode::Create => PutMode::Create,
        Mode::UpdateCurrent => PutMode::Update(current.unwrap_or_else(|| Version::parse("+1|+1|+1"))),
        Mode::UpdateStale => PutMode::Update(Version::parse("+9|+9|+9")),
    };
    for &i in failing {
        faulty[i].inject(Rule::new(fault, Fault::Fail));
    }
    (faulty, fan, key, put_mode)
}

/// `data` written through a writer, in one chunk.
async fn streamed(fan: &MultiWriter, key: &Key, data: Bytes, put_mode: PutMode) -> Result<WriteReport> {
    let mut w = fan.writer(key, PutOptions::from(put_mode)).await?;
    w.write(data).await?;
    w.close().await
}

async fn run(
    mode: WriteMode,
    start: Start,
    put_mode: Mode,
    fault: FaultOp,
    failing: &[usize],
    direct: bool,
) -> String {
    let (faulty, fan, key, put_mode) = prepare(mode, start, put_mode, fault, failing).await;
    let data = Bytes::from("new");
    let result = if direct {
        fan.put(&key, data, PutOptions::from(put_mode)).await
    } else {
        streamed(&fan, &key, data, put_mode).await
    };
    summary(result, &faulty, &fan, &key).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn direct_put_is_indistinguishable_from_a_one_chunk_streamed_write() {
    let failing_sets: [&[usize]; 4] = [&[], &[1], &[0, 2], &[0, 1, 2]];
    let mut compared = 0;
    for mode in [WriteMode::All, WriteMode::BestEffort, WriteMode::Quorum] {
        for start in [Start::Full, Start::Partial, Start::Empty] {
            for put_mode in [
                Mode::Overwrite,
                Mode::Create,
                Mode::UpdateCurrent,
                Mode::UpdateStale,
            ] {
                // A failed put is the commit failing; a failed head is the conditional
                // check not getting an answer.
                for fault in [FaultOp::Put, FaultOp::Head] {
                    for failing in failing_sets {
                        let what = format!("{mode:?} / {start:?} / {put_mode:?} / {fault:?} on {failing:?}");
                        let streamed = run(mode, start, put_mode, fault, failing, false).await;
                        let direct = run(mode, start, put_mode, fault, failing, true).await;
                        assert_eq!(direct, streamed, "{what}");
                        // `Multi`'s `Backend::put`, against the same write settled.
                        let streamed = run_settled(mode, start, put_mode, fault, failing, false).await;
                        let backend = run_settled(mode, start, put_mode, fault, failing, true).await;
                        assert_eq!(backend, streamed, "{what}, through Backend::put");
                        compared += 1;
                    }
                }
            }
        }
    }
    assert_eq!(compared, 3 * 3 * 4 * 2 * 4);
}

/// A write through `Multi`'s `Backend::put` as it settles: the metadata, or the error.
async fn run_settled(
    mode: WriteMode,
    start: Start,
    put_mode: Mode,
    fault: FaultOp,
    failing: &[usize],
    via_backend: bool,
) -> String {
    let (faulty, fan, key, put_mode) = prepare(mode, start, put_mode, fault, failing).await;
    let data = Bytes::from("new");
    let result = if via_backend {
        Multi::from(fan.clone())
            .put(&key, data, PutOptions::from(put_mode))
            .await
    } else {
        match streamed(&fan, &key, data, put_mode).await {
            Ok(report) => Ok(report.settled().await.meta),
            Err(e) => Err(e),
        }
    };
    let outcome = match result {
        Ok(meta) => format!("ok key={} size={} version={}", meta.key, meta.size, meta.version),
        Err(e) => error_summary(e),
    };
    format!("{outcome}\n{}", state(&faulty, &fan, &key).await)
}

/// The direct path's rollback: a `Create` that fails in `All` mode leaves nothing behind,
/// and a rollback that itself fails is named in the error.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn direct_create_rolls_back_and_reports_a_failed_rollback() {
    let (faulty, fan) = rig(WriteMode::All);
    let key = Key::new("fresh").unwrap();
    faulty[1].inject(Rule::new(FaultOp::Put, Fault::Fail));
    faulty[0].inject(Rule::new(FaultOp::Delete, Fault::Fail));
    let e = fan.put(&key, "x".into(), PutOptions::create()).await.unwrap_err();
    let Error::Multi(m) = e else {
        panic!("expected a MultiError, got {e:?}")
    };
    let described: Vec<(usize, String)> = m.errors.iter().map(|(i, e)| (*i, e.to_string())).collect();
    assert_eq!(described.len(), 2, "{described:?}");
    assert!(
        described[0].0 == 0
            && described[0]
                .1
                .starts_with("store-multi rollback: b0: injected fault at Delete"),
        "{described:?}"
    );
    assert!(
        described[1].0 == 1 && described[1].1.starts_with("b1: injected fault at Put"),
        "{described:?}"
    );
    // b0 could not be rolled back; b2 was.
    assert!(faulty[0].inner().head_opt(&key).await.unwrap().is_some());
    assert!(faulty[1].inner().head_opt(&key).await.unwrap().is_none());
    assert!(faulty[2].inner().head_opt(&key).await.unwrap().is_none());
}

/// A large whole-object put (committed in one task per backend) lands everywhere too.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn direct_put_of_a_large_object_reaches_every_backend() {
    for mode in [WriteMode::All, WriteMode::BestEffort, WriteMode::Quorum] {
        let (faulty, fan) = rig(mode);
        let key = Key::new("big").unwrap();
        let data = Bytes::from(vec![7u8; 2 << 20]);
        let report = fan.put(&key, data.clone(), PutOptions::default()).await.unwrap();
        let settled = report.settled().await;
        assert!(settled.outcomes.iter().all(|o| o.is_committed()), "{mode:?}");
        for f in &faulty {
            assert_eq!(f.inner().get_bytes(&key).await.unwrap(), data, "{mode:?}");
        }
        assert_eq!(
            Multi::from(fan.clone()).head(&key).await.unwrap().version,
            settled.meta.version,
            "{mode:?}"
        );
    }
}
