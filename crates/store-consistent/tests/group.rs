//! Readers, writers, operate, list and gc of a `Group`.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures::StreamExt;
use store_consistent::{DEFAULT_GC_GRACE, GcReport, Group, RetryPolicy};
use store_core::{Backend, BackendExt, Error, ErrorKind, Key};
use store_memory::MemoryStore;

fn setup() -> (MemoryStore, Group) {
    let store = MemoryStore::new();
    let group = Group::new(store.clone(), "app/state").unwrap();
    (store, group)
}

async fn objects(store: &MemoryStore) -> Vec<Key> {
    store.list_keys("app/state/.objects/").await.unwrap()
}

async fn content(g: &Group, name: &str) -> Bytes {
    g.reader(name).await.unwrap().bytes().await.unwrap()
}

#[tokio::test]
async fn unknown_names_read_as_empty_with_an_empty_key() {
    let (store, g) = setup();
    let r = g.reader("nothing").await.unwrap();
    assert_eq!((r.name(), r.key(), r.exists()), ("nothing", "", false));
    assert_eq!(r.bytes().await.unwrap(), "");
    assert!(g.list().await.unwrap().is_empty());
    assert!(store.is_empty(), "reading creates nothing");
}

#[tokio::test]
async fn of_two_writers_from_one_key_the_first_close_wins() {
    let (store, g) = setup();
    g.operate("doc", |_| Ok("v1")).await.unwrap();
    let key = g.reader("doc").await.unwrap().key().to_owned();
    assert!(!key.is_empty());

    let mut first = g.writer("doc", &key).await.unwrap();
    let mut second = g.writer("doc", &key).await.unwrap();
    first.write("v2 from ").await.unwrap();
    first.write("first").await.unwrap();
    second.write("v2 from second").await.unwrap();
    let new_key = first.close().await.unwrap();
    let err = second.close().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
    assert!(err.to_string().contains("app/state/doc"), "{err}");

    let r = g.reader("doc").await.unwrap();
    assert_eq!(r.key(), new_key);
    assert_ne!(new_key, key);
    assert_eq!(r.bytes().await.unwrap(), "v2 from first");
    // The loser's object and the replaced version are both gone.
    assert_eq!(objects(&store).await.len(), 1, "{:?}", objects(&store).await);
}

#[tokio::test]
async fn creating_with_the_empty_key_conflicts_if_the_name_exists() {
    let (store, g) = setup();
    let mut a = g.writer("new", "").await.unwrap();
    let mut b = g.writer("new", "").await.unwrap();
    a.write("a").await.unwrap();
    b.write("b").await.unwrap();
    a.close().await.unwrap();
    assert!(b.close().await.unwrap_err().is_conflict());
    assert_eq!(content(&g, "new").await, "a");
    assert_eq!(objects(&store).await.len(), 1);
}

#[tokio::test]
async fn an_update_of_another_name_does_not_fail_a_writer() {
    let (_, g) = setup();
    g.operate("a", |_| Ok("a1")).await.unwrap();
    let key = g.reader("a").await.unwrap().key().to_owned();
    let mut w = g.writer("a", &key).await.unwrap();
    w.write("a2").await.unwrap();
    // The manifest moves on under the writer…
    g.operate("b", |_| Ok("b1")).await.unwrap();
    g.operate("c", |_| Ok("c1")).await.unwrap();
    // …but `a` did not change, so the close is retried internally and succeeds.
    w.close().await.unwrap();
    assert_eq!(content(&g, "a").await, "a2");
    assert_eq!(content(&g, "b").await, "b1");
    assert_eq!(g.list().await.unwrap(), ["a", "b", "c"]);
}

#[tokio::test]
async fn dropped_and_aborted_writers_change_nothing() {
    let (store, g) = setup();
    let mut w = g.writer("x", "").await.unwrap();
    w.write("never").await.unwrap();
    drop(w);
    let mut w = g.writer("x", "").await.unwrap();
    w.write("never").await.unwrap();
    w.abort().await.unwrap();
    assert!(g.list().await.unwrap().is_empty());
    assert!(objects(&store).await.is_empty());
}

#[tokio::test]
async fn an_error_from_f_aborts_without_writing() {
    let (store, g) = setup();
    g.operate("n", |_| Ok("1")).await.unwrap();
    let before = objects(&store).await;
    let err = g
        .operate("n", |_| -> store_core::Result<&str> {
            Err(Error::invalid_input("test", None, "refused"))
        })
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert_eq!(content(&g, "n").await, "1");
    assert_eq!(objects(&store).await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn exhausted_retries_are_contention() {
    let (_, g) = setup();
    let g = g.with_retry_policy(
        RetryPolicy::default()
            .with_max_attempts(3)
            .with_backoff(Duration::ZERO, Duration::ZERO),
    );
    let rival = g.clone();
    let mut calls = 0;
    // Every attempt is overtaken by a rival update of the same name.
    let err = g
        .operate("hot", |_| {
            calls += 1;
            tokio::task::block_in_place(|| {
                tokio::runtime::Handle::current().block_on(rival.operate("hot", |_| Ok("rival")))
            })?;
            Ok("mine")
        })
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Contention { attempts: 3, .. }), "{err}");
    // The optimistic first try (from the cached manifest) and the three attempts.
    assert_eq!(calls, 4);
    assert_eq!(content(&g, "hot").await, "rival");
}

#[tokio::test]
async fn operate_json_starts_from_default_and_refuses_foreign_content() {
    let (_, g) = setup();
    let v: Vec<u32> = g
        .operate_json("list", |mut v: Vec<u32>| {
            v.push(7);
            Ok(v)
        })
        .await
        .unwrap();
    assert_eq!(v, [7]);
    assert_eq!(content(&g, "list").await, "[7]");
    g.operate("text", |_| Ok("not json")).await.unwrap();
    let err = g.operate_json("text", |v: Vec<u32>| Ok(v)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corrupt, "{err}");
    assert!(err.to_string().contains("app/state/text"), "{err}");
    assert_eq!(content(&g, "text").await, "not json");
}

#[tokio::test]
async fn operate_stream_transforms_chunk_by_chunk() {
    let (store, g) = setup();
    g.operate("log", |_| Ok("abc")).await.unwrap();
    g.operate_stream("log", |input| {
        Ok(input
            .map(|chunk| chunk.map(|c| Bytes::from(c.to_ascii_uppercase())))
            .chain(futures::stream::iter([
                Ok(Bytes::from("-")),
                Ok(Bytes::from("def")),
            ]))
            .boxed())
    })
    .await
    .unwrap();
    assert_eq!(content(&g, "log").await, "ABC-def");

    // An error in the produced stream aborts without writing.
    let err = g
        .operate_stream("log", |_| {
            Ok(
                futures::stream::iter([Ok(Bytes::from("partial")), Err(Error::Closed { op: "produce" })])
                    .boxed(),
            )
        })
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Closed);
    assert_eq!(content(&g, "log").await, "ABC-def");
    assert_eq!(objects(&store).await.len(), 1);
}

#[tokio::test]
async fn bad_names_and_damaged_manifests_are_errors_not_panics() {
    let (store, g) = setup();
    assert_eq!(g.reader("").await.unwrap_err().kind(), ErrorKind::InvalidInput);
    assert_eq!(
        g.writer("", "").await.unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    let long = "x".repeat(store_consistent::MAX_NAME_LEN + 1);
    assert_eq!(
        g.operate(&long, |_| Ok("")).await.unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    assert_eq!(g.mutex("").unwrap_err().kind(), ErrorKind::InvalidInput);
    assert_eq!(
        Group::new(store.clone(), "a//b").unwrap_err().kind(),
        ErrorKind::InvalidKey
    );

    store
        .put_bytes(&Key::new("app/state/.manifest").unwrap(), "garbage")
        .await
        .unwrap();
    for err in [
        g.reader("x").await.unwrap_err(),
        g.list().await.unwrap_err(),
        g.operate("x", |_| Ok("y")).await.unwrap_err(),
    ] {
        assert_eq!(err.kind(), ErrorKind::Corrupt, "{err}");
        assert!(err.to_string().contains("app/state/.manifest"), "{err}");
    }
}

/// An object id as the group makes them, created at `at`.
fn id_at(at: SystemTime) -> String {
    let nanos = at.duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64;
    format!("{nanos:016x}-00000000000000ab")
}

#[tokio::test]
async fn gc_removes_old_unreferenced_versions_only() {
    let (store, g) = setup();
    // Large enough to be an object of its own (small contents live in the manifest).
    let kept = "kept".repeat(300);
    g.operate("live", |_| Ok(kept.clone())).await.unwrap();
    let obj = |id: &str| Key::new(format!("app/state/.objects/{id}")).unwrap();
    // Leftovers of crashed writers: one long ago, one just now; plus a foreign file.
    let old = obj(&id_at(UNIX_EPOCH + Duration::from_secs(1_000_000)));
    let fresh = obj(&id_at(SystemTime::now()));
    let foreign = obj("README");
    for k in [&old, &fresh, &foreign] {
        store.put_bytes(k, "leftover").await.unwrap();
    }

    let report = g.gc(DEFAULT_GC_GRACE).await.unwrap();
    assert_eq!(
        report,
        GcReport {
            live: 1,
            recent: 1,
            deleted: 1
        }
    );
    assert!(!store.exists(&old).await.unwrap());
    assert!(
        store.exists(&fresh).await.unwrap(),
        "a writer may be about to switch to it"
    );

    let report = g.gc(Duration::ZERO).await.unwrap();
    assert_eq!(
        report,
        GcReport {
            live: 1,
            recent: 0,
            deleted: 1
        }
    );
    assert!(store.exists(&foreign).await.unwrap(), "not ours: left alone");
    assert_eq!(content(&g, "live").await, kept);
}

#[tokio::test]
async fn groups_on_one_backend_are_independent() {
    let store: Arc<dyn Backend> = Arc::new(MemoryStore::new());
    let a = Group::new(store.clone(), "a").unwrap();
    let b = Group::new(store.clone(), "b").unwrap();
    a.operate("x", |_| Ok("in a")).await.unwrap();
    assert!(b.list().await.unwrap().is_empty());
    assert_eq!(content(&a, "x").await, "in a");
    assert_eq!(a.name(), "a");
    assert!(format!("{a:?}").contains("Group"));
}

#[tokio::test]
async fn small_contents_live_in_the_manifest_and_large_ones_in_objects() {
    let (store, g) = setup();
    let large = Bytes::from(vec![b'x'; 1025]);
    g.operate("n", |_| Ok("small")).await.unwrap();
    assert!(objects(&store).await.is_empty(), "1 KiB or less: in the manifest");
    let small_key = g.reader("n").await.unwrap().key().to_owned();

    g.operate("n", |_| Ok(large.clone())).await.unwrap();
    assert_eq!(objects(&store).await.len(), 1, "over 1 KiB: an object");
    let large_key = g.reader("n").await.unwrap().key().to_owned();
    assert_ne!(large_key, small_key);
    assert_eq!(content(&g, "n").await, large);

    g.operate("n", |old| {
        assert_eq!(old.len(), 1025);
        Ok(Bytes::from_static(b"small again"))
    })
    .await
    .unwrap();
    assert!(objects(&store).await.is_empty(), "the replaced object is deleted");
    assert_eq!(content(&g, "n").await, "small again");

    // Keys stay unique across the two kinds: a writer from an old key conflicts.
    for stale in [small_key, large_key] {
        let w = g.writer("n", &stale).await.unwrap();
        assert!(w.close().await.unwrap_err().is_conflict());
    }
    assert!(
        objects(&store).await.is_empty(),
        "the refused writers' objects are deleted"
    );

    // A transaction mixes both kinds in one switch; deleting a name drops either kind.
    g.transaction(|tx| {
        let large = large.clone();
        Box::pin(async move {
            tx.put("a", "tiny")?;
            tx.put("b", large)?;
            Ok(())
        })
    })
    .await
    .unwrap();
    assert_eq!(objects(&store).await.len(), 1);
    assert_eq!(
        (content(&g, "a").await, content(&g, "b").await),
        (Bytes::from("tiny"), large)
    );
    g.transaction(|tx| {
        Box::pin(async move {
            tx.delete("a")?;
            tx.delete("b")?;
            Ok(())
        })
    })
    .await
    .unwrap();
    assert!(objects(&store).await.is_empty());
    assert_eq!(g.list().await.unwrap(), ["n"]);
}

#[tokio::test]
async fn inline_contents_stop_at_the_manifest_budget() {
    let (store, g) = setup();
    // 16 KiB of inline content per manifest: 64 names of 256 bytes, then objects.
    for i in 0..70 {
        g.operate(&format!("n{i:02}"), move |_| Ok(vec![b'0' + (i % 10) as u8; 256]))
            .await
            .unwrap();
    }
    assert_eq!(objects(&store).await.len(), 6);
    for i in 0..70 {
        assert_eq!(
            content(&g, &format!("n{i:02}")).await,
            vec![b'0' + (i % 10) as u8; 256]
        );
    }
    let manifest = store
        .get_bytes(&Key::new("app/state/.manifest").unwrap())
        .await
        .unwrap();
    assert!(
        manifest.len() < 40 * 1024,
        "the manifest stays small: {} bytes",
        manifest.len()
    );
}

#[tokio::test]
async fn handles_that_do_not_share_a_cache_see_each_others_updates() {
    let (store, a) = setup();
    let b = Group::new(store.clone(), "app/state").unwrap();
    let add = |old: &[u8]| -> store_core::Result<String> {
        let n: u64 = std::str::from_utf8(old).unwrap_or("0").parse().unwrap_or(0);
        Ok((n + 1).to_string())
    };
    for round in 0..10 {
        let (first, second) = if round % 2 == 0 { (&a, &b) } else { (&b, &a) };
        first.operate("n", add).await.unwrap();
        // `second` last saw the manifest before `first` switched it.
        second.operate("n", add).await.unwrap();
        second.operate("other", |_| Ok(round.to_string())).await.unwrap();
    }
    assert_eq!(content(&a, "n").await, "20");
    assert_eq!(content(&b, "n").await, "20");
    assert_eq!(content(&a, "other").await, "9");
    assert_eq!(a.list().await.unwrap(), ["n", "other"]);
}

/// `operate` starts from the manifest its group last saw, without reading it again. When
/// another handle (another process, in real life) switched it meanwhile, that try fails
/// its conditional write and `operate` reads the current state at once: `f` sees the
/// stale content first, then the current one, and only the second result is written. The
/// stale try is not an attempt: a policy of one attempt still succeeds.
#[tokio::test]
async fn a_stale_cached_manifest_is_not_an_attempt_and_writes_nothing_stale() {
    let (store, a) = setup();
    let a = a.with_retry_policy(RetryPolicy::default().with_max_attempts(1));
    let b = Group::new(store.clone(), "app/state").unwrap();
    let add = |old: &[u8]| -> store_core::Result<String> {
        let n: u64 = std::str::from_utf8(old).unwrap_or("0").parse().unwrap_or(0);
        Ok((n + 1).to_string())
    };
    a.operate("n", add).await.unwrap();
    b.operate("n", add).await.unwrap();
    let mut seen = Vec::new();
    let written = a
        .operate("n", |old| {
            seen.push(String::from_utf8_lossy(old).into_owned());
            add(old)
        })
        .await
        .unwrap();
    assert_eq!(seen, ["1", "2"]);
    assert_eq!(written, "3");
    assert_eq!(content(&b, "n").await, "3");

    // Contents kept as objects, too large for the content cache: the cached manifest
    // names an object `b` has replaced and deleted, so the stale attempt ends at the read,
    // before `f`.
    let big = |fill: u8| Bytes::from(vec![fill; 128 << 10]);
    a.operate("big", |_| Ok(big(1))).await.unwrap();
    b.operate("big", |_| Ok(big(2))).await.unwrap();
    let mut firsts = Vec::new();
    a.operate("big", |old| {
        firsts.push(old.first().copied());
        Ok(big(3))
    })
    .await
    .unwrap();
    assert_eq!(firsts, [Some(2)]);
    assert_eq!(content(&b, "big").await, big(3));
    assert_eq!(objects(&store).await.len(), 1, "no orphan objects");
}

/// A content that moves between the manifest and an object of its own, through `operate`
/// on a group that has the manifest cached: `f` runs once per update, the content reads
/// back, and no object is left behind when it moves back inline.
#[tokio::test]
async fn contents_move_between_inline_and_object_without_orphans() {
    let (store, g) = setup();
    g.operate("x", |_| Ok("small")).await.unwrap();
    assert!(objects(&store).await.is_empty());
    for round in 0..3u8 {
        let mut calls = 0;
        let large = Bytes::from(vec![round; 4096]);
        g.operate("x", |_| {
            calls += 1;
            Ok(large.clone())
        })
        .await
        .unwrap();
        assert_eq!(calls, 1, "round {round}: grow");
        assert_eq!(content(&g, "x").await, large);
        assert_eq!(objects(&store).await.len(), 1, "round {round}: one object");

        let mut calls = 0;
        g.operate("x", |old| {
            calls += 1;
            assert_eq!(old, &large[..]);
            Ok(format!("small {round}"))
        })
        .await
        .unwrap();
        assert_eq!(calls, 1, "round {round}: shrink");
        assert_eq!(content(&g, "x").await, format!("small {round}"));
        assert!(
            objects(&store).await.is_empty(),
            "round {round}: the object is gone"
        );
    }
}

/// An error from `f` on a cached (maybe stale) content is not the answer: `f` decides again
/// on the current content, which another handle changed.
#[tokio::test]
async fn an_error_from_f_on_a_stale_cached_content_is_decided_again() {
    let (store, a) = setup();
    let b = Group::new(store.clone(), "app/state").unwrap();
    a.operate("balance", |_| Ok("10")).await.unwrap();
    b.operate("balance", |_| Ok("100")).await.unwrap();
    let mut seen = Vec::new();
    let written = a
        .operate("balance", |old| {
            let balance: u64 = std::str::from_utf8(old).unwrap().parse().unwrap();
            seen.push(balance);
            if balance < 30 {
                return Err(Error::invalid_input("withdraw", None, "insufficient funds"));
            }
            Ok((balance - 30).to_string())
        })
        .await
        .unwrap();
    assert_eq!(seen, [10, 100]);
    assert_eq!(written, "70");
    assert_eq!(content(&b, "balance").await, "70");

    // On the current content, the error is the answer (and nothing is written).
    let err = a
        .operate("balance", |_| -> store_core::Result<&str> {
            Err(Error::invalid_input("withdraw", None, "refused"))
        })
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert_eq!(content(&b, "balance").await, "70");
}
