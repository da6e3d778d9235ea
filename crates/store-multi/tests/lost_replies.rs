//! A backend that applies a write but loses its reply (or fails to tell its state) inside
//! the fan-out: the version a write returns names what that backend really holds, a failed
//! `Create` is rolled back there too (and only the version it made), and a conditional
//! delete that cannot check enough backends deletes nothing.

use std::sync::Arc;

use store_core::{Backend, BackendExt, DeleteOptions, Error, Key, MultiError, PutMode, PutOptions};
use store_memory::MemoryStore;
use store_multi::{Multi, WriteMode};
use store_testkit::{Fault, FaultOp, Faulty, Rule};

/// `n` memory stores behind fault injectors, and a `Multi` over them.
fn rig(mode: WriteMode, n: usize) -> (Vec<Faulty<MemoryStore>>, Multi) {
    let faulty: Vec<_> = ["b0", "b1", "b2"][..n]
        .iter()
        .map(|name| Faulty::new(MemoryStore::new()).named(name))
        .collect();
    let backends = faulty.iter().map(|f| Arc::new(f.clone()) as Arc<dyn Backend>);
    let multi = Multi::builder(backends).mode(mode).build().unwrap();
    (faulty, multi)
}

fn put(mode: PutMode) -> PutOptions {
    PutOptions::default().with_mode(mode)
}

#[tokio::test]
async fn a_quorum_write_whose_reply_one_backend_lost_returns_the_version_reads_report() {
    for (what, first) in [("overwrite", PutMode::Overwrite), ("create", PutMode::Create)] {
        let (faulty, multi) = rig(WriteMode::Quorum, 3);
        let key = Key::new("k").unwrap();
        let v1 = multi.put(&key, "one".into(), put(first)).await.unwrap().version;
        faulty[2].inject(Rule::new(FaultOp::Put, Fault::LostReply).times(1));
        let v2 = multi
            .put(&key, "two".into(), put(PutMode::Update(v1.clone())))
            .await
            .unwrap()
            .version;
        assert_eq!(faulty[2].inner().get_bytes(&key).await.unwrap(), "two", "{what}");
        assert_eq!(multi.head(&key).await.unwrap().version, v2, "{what}");
        // The version is usable: an update from it is no conflict.
        multi
            .put(&key, "three".into(), put(PutMode::Update(v2)))
            .await
            .unwrap_or_else(|e| panic!("{what}: update from the returned version: {e}"));
    }
}

#[tokio::test]
async fn a_failed_create_is_rolled_back_on_the_backend_that_lost_its_reply_too() {
    let (faulty, multi) = rig(WriteMode::All, 3);
    let key = Key::new("fresh").unwrap();
    faulty[1].inject(Rule::new(FaultOp::Put, Fault::LostReply).times(1));
    faulty[2].inject(Rule::new(FaultOp::Put, Fault::Refused).times(1));
    let e = multi
        .put(&key, "x".into(), put(PutMode::Create))
        .await
        .unwrap_err();
    assert!(!e.is_not_applied(), "{e}");
    for (i, f) in faulty.iter().enumerate() {
        assert!(
            f.inner().head_opt(&key).await.unwrap().is_none(),
            "backend {i} still holds it"
        );
    }
    // Nothing is left behind, so the create can be made again.
    multi.put(&key, "x".into(), put(PutMode::Create)).await.unwrap();
}

#[tokio::test]
async fn a_conditional_delete_that_cannot_check_enough_backends_deletes_nothing() {
    let (faulty, multi) = rig(WriteMode::All, 2);
    let key = Key::new("k").unwrap();
    let v = multi.put_bytes(&key, "x").await.unwrap().version;
    faulty[1].inject(Rule::new(FaultOp::Head, Fault::FailRetryable).times(1));
    let e = multi
        .delete(&key, DeleteOptions::default().with_if_match(v.clone()))
        .await
        .unwrap_err();
    assert!(e.is_retryable(), "{e}");
    for (i, f) in faulty.iter().enumerate() {
        assert_eq!(f.inner().get_bytes(&key).await.unwrap(), "x", "backend {i}");
    }
    // Once every backend answers, the delete goes through.
    multi
        .delete(&key, DeleteOptions::default().with_if_match(v))
        .await
        .unwrap();
    assert!(multi.head_opt(&key).await.unwrap().is_none());
}

#[tokio::test]
async fn a_delete_one_backend_applied_is_never_reported_as_not_applied() {
    let (faulty, multi) = rig(WriteMode::All, 2);
    let key = Key::new("k").unwrap();
    multi.put_bytes(&key, "x").await.unwrap();
    faulty[1].inject(Rule::new(FaultOp::Delete, Fault::Refused));
    let e = multi.delete(&key, DeleteOptions::default()).await.unwrap_err();
    assert!(!e.is_not_applied(), "{e}");
    assert!(faulty[0].inner().head_opt(&key).await.unwrap().is_none());
}

/// Creates key `fresh` through a `Multi` (`All`) over `b0`, `b1` and `b2`, where `b1` meets
/// `fault`. Once `b1` has answered, an outside writer puts "theirs" straight on `b1`; only
/// then does `b2` refuse the create, which fails and is rolled back. Returns `b0`, `b1`,
/// the key and the per-backend errors of the create.
async fn create_racing_an_outside_write(
    fault: Fault,
) -> (Faulty<MemoryStore>, Faulty<MemoryStore>, Key, MultiError) {
    let b0 = Faulty::new(MemoryStore::new()).named("b0");
    let b1 = Faulty::new(MemoryStore::new()).named("b1");
    let b2_inner = Faulty::new(MemoryStore::new()).named("b2");
    let b2 = Faulty::new(b2_inner.clone()).named("b2 gate");
    b1.inject(Rule::new(FaultOp::Put, fault).times(1));
    b2.inject(Rule::new(FaultOp::Put, Fault::Hang));
    b2_inner.inject(Rule::new(FaultOp::Put, Fault::Refused).times(1));
    let backends: Vec<Arc<dyn Backend>> =
        vec![Arc::new(b0.clone()), Arc::new(b1.clone()), Arc::new(b2.clone())];
    let multi = Multi::builder(backends).mode(WriteMode::All).build().unwrap();
    let key = Key::new("fresh").unwrap();

    let create = tokio::spawn({
        let (multi, key) = (multi.clone(), key.clone());
        async move { multi.put(&key, "ours".into(), put(PutMode::Create)).await }
    });
    while b1.events().is_empty() {
        tokio::task::yield_now().await;
    }
    b1.inner().put_bytes(&key, "theirs").await.unwrap();
    b2.release();
    match create.await.unwrap() {
        Err(Error::Multi(m)) => {
            assert!(
                b0.inner().head_opt(&key).await.unwrap().is_none(),
                "b0 rolled back"
            );
            (b0, b1, key, m)
        }
        other => panic!("not a per-backend error: {other:?}"),
    }
}

fn rollback_failed(m: &MultiError, backend: usize) -> bool {
    m.errors
        .iter()
        .any(|(i, e)| *i == backend && e.to_string().contains("store-multi rollback"))
}

/// A backend whose reply was lost tells, through its resolver, which version the write
/// made there: the rollback deletes only that one, never what a writer outside this
/// `Multi` put there meanwhile (and says it could not undo the write there).
#[tokio::test]
async fn a_rollback_leaves_alone_what_an_outside_writer_put_after_a_lost_reply() {
    let (_, b1, key, m) = create_racing_an_outside_write(Fault::LostReplyResolvable).await;
    assert_eq!(b1.inner().get_bytes(&key).await.unwrap(), "theirs");
    assert!(rollback_failed(&m, 1), "{m:?}");
}

/// A backend whose request was lost on its way says, through its resolver, that it does
/// not hold the write: the rollback deletes nothing there, though an outside writer's
/// object stands at the key by then.
#[tokio::test]
async fn a_rollback_deletes_nothing_where_the_resolver_finds_the_write_absent() {
    let (_, b1, key, m) = create_racing_an_outside_write(Fault::DroppedResolvable).await;
    assert_eq!(b1.inner().get_bytes(&key).await.unwrap(), "theirs");
    assert!(!rollback_failed(&m, 1), "nothing to undo on b1: {m:?}");
}
