//! MultiCommitter and Staged behaviour: the seed's scenarios and the contract of §3.6.

mod support;

use std::sync::Arc;

use store_commit::{MultiCommitter, SessionError, SessionStart, Staged, session_id};
use store_core::{BackendExt, CommitId, Committable, Error, ErrorKind, IdempotencyKey, Result};
use store_memory::MemoryStore;
use store_testkit::{Fault, FaultOp, Faulty, Rule};
use support::{contents, key};

type Mem = Arc<Staged<MemoryStore>>;

fn staged() -> Mem {
    Arc::new(Staged::new(MemoryStore::new()))
}

fn session(s: &str) -> IdempotencyKey {
    IdempotencyKey::from(s)
}

fn committer(kv: &MemoryStore, parts: &[(&str, Arc<dyn Committable>)]) -> MultiCommitter<MemoryStore> {
    MultiCommitter::new(kv.clone(), parts.iter().map(|(n, c)| (*n, c.clone())))
        .unwrap_or_else(|e| panic!("new committer: {e}"))
}

fn session_error(e: &Error) -> &SessionError {
    std::error::Error::source(e)
        .and_then(|s| s.downcast_ref::<SessionError>())
        .unwrap_or_else(|| panic!("expected a SessionError inside {e:?}"))
}

#[tokio::test]
async fn two_sessions_with_two_keys() -> Result<()> {
    let kv = MemoryStore::new();
    let (a, b) = (staged(), staged());
    let c = committer(&kv, &[("a", a.clone()), ("b", b.clone())]);
    for (n, s) in ["first", "second"].into_iter().enumerate() {
        let k = session(s);
        assert_eq!(c.begin(&k).await?, SessionStart::Fresh);
        assert_eq!(
            c.pending().await?,
            Some(k.clone()),
            "the key is stored while open"
        );
        a.stage_put(&key(&format!("a/{n}")), s)?;
        b.stage_put(&key(&format!("b/{n}")), s)?;
        c.commit(&k).await?;
        assert_eq!(c.pending().await?, None, "the key is removed after the session");
        assert_eq!(c.session(), None);
    }
    assert_eq!(contents(a.backend(), ".staged").await.len(), 2);
    assert_eq!(b.backend().get_bytes(&key("b/1")).await?, "second");
    Ok(())
}

#[tokio::test]
async fn a_failing_committable_cancels_all_and_a_retry_recovers() -> Result<()> {
    let kv = MemoryStore::new();
    let a = staged();
    // "b" fails its first put (the journal): its commit fails after "a" committed.
    let faulty = Faulty::new(MemoryStore::new());
    faulty.inject(Rule::new(FaultOp::Put, Fault::Fail).times(1));
    let b = Arc::new(Staged::new(faulty));
    let c_ = staged();
    let c = committer(&kv, &[("a", a.clone()), ("b", b.clone()), ("c", c_.clone())]);
    let k = session("s1");
    let stage = || -> Result<()> {
        a.stage_put(&key("x"), "a")?;
        b.stage_put(&key("x"), "b")?;
        c_.stage_put(&key("x"), "c")?;
        Ok(())
    };

    c.begin(&k).await?;
    stage()?;
    let err = c.commit(&k).await.unwrap_err();
    let se = session_error(&err);
    assert_eq!((se.committable.as_str(), se.step), ("b", "commit"));
    assert!(
        err.to_string().contains("\"s1\"") && err.to_string().contains("\"b\""),
        "{err}"
    );
    // Every committable was cancelled: the session is over everywhere.
    assert_eq!(
        (a.session(), b.session(), c_.session(), c.session()),
        (None, None, None, None)
    );
    assert!(c_.stage_put(&key("x"), "late").is_err(), "c was not cancelled");
    // "a" committed before the failure, "c" never did; the session is still pending.
    assert_eq!(a.backend().get_bytes(&key("x")).await?, "a");
    assert!(!c_.backend().exists(&key("x")).await?);
    assert_eq!(c.pending().await?, Some(k.clone()));
    // Another session is refused while this one is pending, naming both.
    let e = c.begin(&session("s2")).await.unwrap_err();
    assert!(
        e.to_string().contains("s1") && e.to_string().contains("s2"),
        "{e}"
    );

    // The retry with the same key goes through recovery.
    assert_eq!(c.begin(&k).await?, SessionStart::Recovery);
    stage()?;
    let id = c.commit(&k).await?;
    assert_eq!(b.backend().inner().get_bytes(&key("x")).await?, "b");
    assert_eq!(c_.backend().get_bytes(&key("x")).await?, "c");
    assert_eq!(c.pending().await?, None);
    // ... and gives the id an uninterrupted run gives.
    let ids = [
        ("a", a.committed(&k).await?.unwrap()),
        ("b", b.committed(&k).await?.unwrap()),
        ("c", c_.committed(&k).await?.unwrap()),
    ];
    assert_eq!(id, session_id(ids.iter().map(|(n, i)| (*n, i))));
    Ok(())
}

#[tokio::test]
async fn a_failing_begin_cancels_all_and_clears_a_fresh_session() -> Result<()> {
    let kv = MemoryStore::new();
    let a = staged();
    // "b" cannot read its journal location, so its begin fails.
    let faulty = Faulty::new(MemoryStore::new());
    faulty.inject(Rule::new(FaultOp::Get, Fault::Fail).times(1));
    let b = Arc::new(Staged::new(faulty));
    let c = committer(&kv, &[("a", a.clone()), ("b", b.clone())]);
    let err = c.begin(&session("s")).await.unwrap_err();
    let se = session_error(&err);
    assert_eq!((se.committable.as_str(), se.step), ("b", "begin"));
    assert_eq!(a.session(), None, "a was not cancelled");
    assert_eq!(
        c.pending().await?,
        None,
        "a fresh session that failed to begin stays pending"
    );
    assert_eq!(c.begin(&session("other")).await?, SessionStart::Fresh);
    Ok(())
}

#[tokio::test]
async fn ids_combine_in_name_order_deterministically() -> Result<()> {
    // Registered out of order; committed and hashed in name order.
    let run = |names: [&'static str; 3]| async move {
        let kv = MemoryStore::new();
        let parts: Vec<(&str, Mem)> = names.iter().map(|n| (*n, staged())).collect();
        let mut c = MultiCommitter::empty(kv);
        for (n, s) in &parts {
            c.register(*n, s.clone())?;
        }
        assert_eq!(c.names().collect::<Vec<_>>(), ["alpha", "beta", "gamma"]);
        let k = session("ids");
        c.begin(&k).await?;
        for (n, s) in &parts {
            s.stage_put(&key("k"), *n)?;
        }
        let id = c.commit(&k).await?;
        let mut pairs = Vec::new();
        for (n, s) in &parts {
            pairs.push((
                *n,
                s.committed(&k)
                    .await?
                    .unwrap_or_else(|| panic!("{n} has no marker")),
            ));
        }
        pairs.sort_by(|x, y| x.0.cmp(y.0));
        assert_eq!(id, session_id(pairs.iter().map(|(n, i)| (*n, i))));
        Ok::<CommitId, Error>(id)
    };
    let one = run(["gamma", "alpha", "beta"]).await?;
    let two = run(["beta", "gamma", "alpha"]).await?;
    assert_eq!(one, two, "the same changes gave different ids");
    Ok(())
}

#[tokio::test]
async fn no_committables_give_a_valid_empty_id() -> Result<()> {
    let c = MultiCommitter::empty(MemoryStore::new());
    let k = session("nothing");
    assert_eq!(c.begin(&k).await?, SessionStart::Fresh);
    let id = c.commit(&k).await?;
    assert_eq!(id, session_id([]));
    assert_eq!(
        id.to_hex(),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    assert_eq!(c.pending().await?, None);
    Ok(())
}

#[tokio::test]
async fn misuse_is_an_error_naming_the_sessions() -> Result<()> {
    let kv = MemoryStore::new();
    let a = staged();
    let mut c = committer(&kv, &[("a", a.clone())]);
    let dup = c.register("a", staged()).unwrap_err();
    assert!(
        dup.to_string().contains("\"a\"") && dup.to_string().contains("already registered"),
        "{dup}"
    );

    let e = c.commit(&session("s")).await.unwrap_err();
    assert!(e.to_string().contains("no commit session is open"), "{e}");

    let k = session("open-one");
    c.begin(&k).await?;
    let e = c.begin(&session("second")).await.unwrap_err();
    assert!(
        e.to_string().contains("open-one") && e.to_string().contains("second"),
        "{e}"
    );
    let e = c.begin(&k).await.unwrap_err();
    assert!(e.to_string().contains("open-one"), "{e}");
    // A wrong key at commit names both keys and leaves the session open.
    let e = c.commit(&session("wrong")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert!(
        e.to_string().contains("open-one") && e.to_string().contains("wrong"),
        "{e}"
    );
    assert_eq!(c.session(), Some(k.clone()));
    assert!(c.abandon().await.is_err(), "abandon while a session is open");
    a.stage_put(&key("x"), "1")?;
    c.commit(&k).await?;
    assert_eq!(a.backend().get_bytes(&key("x")).await?, "1");
    Ok(())
}

#[tokio::test]
async fn cancel_ends_a_fresh_session_and_forgets_it() -> Result<()> {
    let kv = MemoryStore::new();
    let a = staged();
    let c = committer(&kv, &[("a", a.clone())]);
    c.cancel().await?; // nothing open: nothing to do
    let k = session("to-cancel");
    c.begin(&k).await?;
    a.stage_put(&key("x"), "1")?;
    c.cancel().await?;
    assert_eq!((c.session(), a.session(), c.pending().await?), (None, None, None));
    assert!(!a.backend().exists(&key("x")).await?);
    assert_eq!(c.begin(&session("next")).await?, SessionStart::Fresh);
    Ok(())
}

#[tokio::test]
async fn abandon_forgets_a_pending_session() -> Result<()> {
    let kv = MemoryStore::new();
    let faulty = Faulty::new(MemoryStore::new());
    faulty.inject(Rule::new(FaultOp::Put, Fault::Fail));
    let broken = Arc::new(Staged::new(faulty));
    let c = committer(&kv, &[("broken", broken.clone())]);
    let k = session("doomed");
    c.begin(&k).await?;
    broken.stage_put(&key("x"), "never")?;
    c.commit(&k).await.unwrap_err();
    assert_eq!(
        c.pending().await?,
        Some(k.clone()),
        "a failed commit stays pending"
    );
    c.begin(&session("next")).await.unwrap_err();
    assert_eq!(c.abandon().await?, Some(k));
    assert_eq!(c.pending().await?, None);
    assert_eq!(c.abandon().await?, None);
    assert_eq!(c.begin(&session("next")).await?, SessionStart::Fresh);
    Ok(())
}

#[tokio::test]
async fn two_committers_cannot_begin_on_one_kv_at_once() -> Result<()> {
    let kv = MemoryStore::new();
    let one = MultiCommitter::empty(kv.clone());
    let two = MultiCommitter::empty(kv.clone());
    one.begin(&session("mine")).await?;
    let e = two.begin(&session("yours")).await.unwrap_err();
    assert!(e.to_string().contains("mine"), "{e}");
    // Separate session keys make them independent.
    let three = MultiCommitter::empty(kv).with_session_key(key("other/session"));
    assert_eq!(three.begin(&session("yours")).await?, SessionStart::Fresh);
    Ok(())
}

#[tokio::test]
async fn a_dropped_commit_future_is_recovered_by_beginning_again() -> Result<()> {
    let kv = MemoryStore::new();
    let a = staged();
    let faulty = Faulty::new(MemoryStore::new());
    let b = Arc::new(Staged::new(faulty));
    let c = committer(&kv, &[("a", a.clone()), ("b", b.clone())]);
    let k = session("dropped");
    c.begin(&k).await?;
    a.stage_put(&key("x"), "1")?;
    b.stage_put(&key("x"), "2")?;
    // b's journal put hangs; the caller gives up on the commit (drops the future).
    b.backend().inject(Rule::new(FaultOp::Put, Fault::Hang).times(1));
    {
        let commit = c.commit(&k);
        tokio::pin!(commit);
        assert!(futures::poll!(commit.as_mut()).is_pending());
        while b.backend().calls(FaultOp::Put) == 0 {
            tokio::task::yield_now().await;
            assert!(futures::poll!(commit.as_mut()).is_pending());
        }
    }
    assert_eq!(c.session(), None);
    assert_eq!(c.begin(&k).await?, SessionStart::Recovery);
    a.stage_put(&key("x"), "1")?;
    b.stage_put(&key("x"), "2")?;
    c.commit(&k).await?;
    assert_eq!(b.backend().inner().get_bytes(&key("x")).await?, "2");
    Ok(())
}
