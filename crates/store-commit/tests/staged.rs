//! `Staged` on its own: staging rules, errors, journal roll-forward, replays.

mod support;

use store_commit::Staged;
use store_core::{Backend, BackendExt, Bytes, Committable, Error, ErrorKind, IdempotencyKey, Result};
use store_memory::MemoryStore;
use store_testkit::{Fault, FaultOp, Faulty, Rule};
use support::{contents, key};

fn session(s: &str) -> IdempotencyKey {
    IdempotencyKey::from(s)
}

#[tokio::test]
async fn staging_needs_an_open_session_and_names_the_key() -> Result<()> {
    let s = Staged::new(MemoryStore::new());
    let e = s.stage_put(&key("a/b"), "x").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert!(
        e.to_string().contains("stage_put") && e.to_string().contains("a/b"),
        "{e}"
    );
    let e = s.stage_delete(&key("c")).unwrap_err();
    assert!(
        e.to_string().contains("stage_delete") && e.to_string().contains("\"c\""),
        "{e}"
    );
    let e = s.commit(&session("none")).await.unwrap_err();
    assert!(e.to_string().contains("no commit session"), "{e}");
    Ok(())
}

#[tokio::test]
async fn reserved_keys_are_refused() -> Result<()> {
    let s = Staged::with_prefix(MemoryStore::new(), "meta/commits")?;
    s.begin(&session("s")).await?;
    for k in ["meta/commits", "meta/commits/journal", "meta/commits/x/y"] {
        let e = s.stage_put(&key(k), "x").unwrap_err();
        assert!(
            matches!(&e, Error::InvalidKey { key, .. } if key == k),
            "{k}: {e}"
        );
    }
    s.stage_put(&key("meta/commitsx"), "fine")?;
    s.stage_put(&key("meta/other"), "fine")?;
    assert_eq!(s.staged_len(), 2);
    assert!(Staged::with_prefix(MemoryStore::new(), "bad//prefix").is_err());
    Ok(())
}

#[tokio::test]
async fn last_change_per_key_wins_and_deletes_tolerate_absence() -> Result<()> {
    let store = MemoryStore::new();
    store.put_bytes(&key("gone"), "old").await?;
    let s = Staged::new(store.clone());
    let k = session("s");
    s.begin(&k).await?;
    s.stage_put(&key("a"), "1")?;
    s.stage_delete(&key("a"))?;
    s.stage_put(&key("b"), "1")?;
    s.stage_put(&key("b"), "2")?;
    s.stage_delete(&key("gone"))?;
    s.stage_delete(&key("never-there"))?;
    assert!(!store.exists(&key("b")).await?, "applied before commit");
    s.commit(&k).await?;
    let got = contents(&store, ".staged").await;
    assert_eq!(
        got.into_iter().collect::<Vec<_>>(),
        [("b".to_owned(), Bytes::from("2"))]
    );
    // Journal removed; one marker left.
    assert_eq!(store.list_keys(".staged/").await?.len(), 1);
    assert!(s.committed(&k).await?.is_some());
    Ok(())
}

#[tokio::test]
async fn commit_with_another_key_is_refused_and_keeps_the_session() -> Result<()> {
    let s = Staged::new(MemoryStore::new());
    s.begin(&session("mine")).await?;
    s.stage_put(&key("x"), "1")?;
    let e = s.commit(&session("theirs")).await.unwrap_err();
    assert!(
        e.to_string().contains("mine") && e.to_string().contains("theirs"),
        "{e}"
    );
    let e = s.begin(&session("theirs")).await.unwrap_err();
    assert!(e.to_string().contains("mine"), "{e}");
    assert_eq!(s.staged_len(), 1);
    s.commit(&session("mine")).await?;
    Ok(())
}

#[tokio::test]
async fn a_replayed_session_is_not_applied_again() -> Result<()> {
    let store = MemoryStore::new();
    let s = Staged::new(store.clone());
    let k = session("order-1");
    s.begin(&k).await?;
    s.stage_put(&key("x"), "1")?;
    let id = s.commit(&k).await?;
    let v1 = store.head(&key("x")).await?.version;

    // Same changes: no write, same id.
    s.begin(&k).await?;
    s.stage_put(&key("x"), "1")?;
    assert_eq!(s.commit(&k).await?, id);
    assert_eq!(store.head(&key("x")).await?.version, v1, "x was written again");

    // Different changes under the same key: refused, nothing applied.
    s.begin_recovery(&k).await?;
    s.stage_put(&key("x"), "2")?;
    let e = s.commit(&k).await.unwrap_err();
    assert!(
        e.to_string().contains("order-1") && e.to_string().contains("differ"),
        "{e}"
    );
    assert_eq!(store.get_bytes(&key("x")).await?, "1");

    // Forgetting the marker makes the key usable for new changes.
    assert!(s.forget(&k).await?);
    s.begin(&k).await?;
    s.stage_put(&key("x"), "2")?;
    assert_ne!(s.commit(&k).await?, id);
    assert_eq!(store.get_bytes(&key("x")).await?, "2");
    Ok(())
}

#[tokio::test]
async fn a_commit_that_failed_mid_apply_is_rolled_forward_by_the_next_begin() -> Result<()> {
    let store = Faulty::new(MemoryStore::new());
    let s = Staged::new(store);
    let k = session("half");
    s.begin(&k).await?;
    for n in 0..4 {
        s.stage_put(&key(&format!("k{n}")), format!("{n}"))?;
    }
    // Journal put (1) and k0 (2) succeed, then k1 fails.
    s.backend()
        .inject(Rule::new(FaultOp::Put, Fault::Fail).after(2).times(1));
    s.commit(&k).await.unwrap_err();
    assert_eq!(s.session(), None, "a failed commit ends the session");
    let mem = s.backend().inner().clone();
    assert_eq!(contents(&mem, ".staged").await.len(), 1, "k0 only");
    // Any next begin finishes the journaled session first.
    s.begin(&session("another")).await?;
    assert_eq!(contents(&mem, ".staged").await.len(), 4);
    assert!(s.committed(&k).await?.is_some());
    assert!(!mem.exists(&key(".staged/journal")).await?);
    Ok(())
}

#[tokio::test]
async fn a_corrupt_journal_is_reported_not_applied() -> Result<()> {
    let store = MemoryStore::new();
    store.put_bytes(&key(".staged/journal"), "garbage").await?;
    let s = Staged::new(store);
    let e = s.begin(&session("s")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Corrupt);
    assert!(e.to_string().contains(".staged/journal"), "{e}");
    assert_eq!(s.session(), None);
    Ok(())
}

#[tokio::test]
async fn cancel_drops_the_buffer() -> Result<()> {
    let store = MemoryStore::new();
    let s = Staged::new(store.clone());
    s.begin(&session("s")).await?;
    s.stage_put(&key("x"), "1")?;
    s.cancel().await?;
    assert_eq!(s.staged_len(), 0);
    assert!(s.stage_put(&key("x"), "1").is_err());
    s.begin(&session("s")).await?;
    assert_eq!(s.staged_len(), 0, "the cancelled buffer came back");
    let id = s.commit(&session("s")).await?;
    assert!(!store.exists(&key("x")).await?);
    assert_eq!(id.as_bytes().len(), 32);
    Ok(())
}

#[tokio::test]
async fn ids_ignore_the_session_name_and_staging_order() -> Result<()> {
    let a = Staged::new(MemoryStore::new());
    let b = Staged::new(MemoryStore::new());
    a.begin(&session("one")).await?;
    b.begin(&session("two")).await?;
    a.stage_put(&key("x"), "1")?;
    a.stage_delete(&key("y"))?;
    b.stage_delete(&key("y"))?;
    b.stage_put(&key("x"), "1")?;
    assert_eq!(a.commit(&session("one")).await?, b.commit(&session("two")).await?);
    Ok(())
}

#[test]
fn debug_shows_the_session() {
    let s = Staged::new(MemoryStore::new());
    let shown = format!("{s:?}");
    assert!(shown.contains("Staged") && shown.contains(".staged"), "{shown}");
    let _: &dyn Backend = s.backend();
}
