//! Checks of watch and of concurrent clients: wake-ups, cancellation, one winner among
//! racing creators, exact compare-and-swap counts, no torn reads.

use super::*;

pub(super) async fn watch_returns_at_once_when_already_changed(b: Arc<dyn Backend>) {
    let k = key("watch/now");
    let within = |f| tokio::time::timeout(WATCH_LIMIT, f);
    let v1 = put(&*b, &k, "1").await.version;
    let got = within(b.watch(&k, None))
        .await
        .expect("watch(None) on an existing key must return at once");
    assert_eq!(got.unwrap(), Some(v1.clone()));
    let v2 = put(&*b, &k, "2").await.version;
    let got = within(b.watch(&k, Some(&v1)))
        .await
        .expect("watch from a stale version must return at once");
    assert_eq!(got.unwrap(), Some(v2.clone()));
    b.delete(&k, DeleteOptions::default()).await.unwrap();
    let got = within(b.watch(&k, Some(&v2)))
        .await
        .expect("watch of a deleted key must return at once");
    assert_eq!(got.unwrap(), None);
}

pub(super) async fn watch_wakes_on_put_and_delete(b: Arc<dyn Backend>) {
    let k = key("watch/wake");
    let spawn_watch = |seen: Option<Version>| {
        let (b, k) = (Arc::clone(&b), k.clone());
        tokio::spawn(async move { tokio::time::timeout(WATCH_LIMIT, b.watch(&k, seen.as_ref())).await })
    };
    let waiting = spawn_watch(None);
    tokio::time::sleep(Duration::from_millis(30)).await;
    assert!(
        !waiting.is_finished(),
        "watch(None) on an absent key returned without a change"
    );
    let v1 = put(&*b, &k, "1").await.version;
    let got = waiting.await.unwrap().expect("watch was not woken by a put");
    assert_eq!(got.unwrap(), Some(v1.clone()));

    let waiting = spawn_watch(Some(v1.clone()));
    tokio::time::sleep(Duration::from_millis(30)).await;
    assert!(
        !waiting.is_finished(),
        "watch returned though the version had not changed"
    );
    b.delete(&k, DeleteOptions::default()).await.unwrap();
    let got = waiting.await.unwrap().expect("watch was not woken by a delete");
    assert_eq!(got.unwrap(), None);
}

pub(super) async fn dropped_watch_leaves_store_usable(b: Arc<dyn Backend>) {
    let k = key("watch/dropped");
    let v1 = put(&*b, &k, "1").await.version;
    for _ in 0..20 {
        // Cancelled by the timeout: the future is dropped mid-wait.
        let r = tokio::time::timeout(Duration::from_millis(2), b.watch(&k, Some(&v1))).await;
        assert!(r.is_err(), "watch returned without a change");
    }
    let waiting = {
        let (b, k, v1) = (Arc::clone(&b), k.clone(), v1.clone());
        tokio::spawn(async move { tokio::time::timeout(WATCH_LIMIT, b.watch(&k, Some(&v1))).await })
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    let v2 = put(&*b, &k, "2").await.version;
    assert_eq!(
        waiting.await.unwrap().expect("live watcher not woken").unwrap(),
        Some(v2)
    );
}

pub(super) async fn concurrent_watchers_all_woken(b: Arc<dyn Backend>) {
    let k = key("watch/many");
    let v1 = put(&*b, &k, "1").await.version;
    let watchers: Vec<_> = (0..16)
        .map(|_| {
            let (b, k, v1) = (Arc::clone(&b), k.clone(), v1.clone());
            tokio::spawn(async move { tokio::time::timeout(WATCH_LIMIT, b.watch(&k, Some(&v1))).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let v2 = put(&*b, &k, "2").await.version;
    for (i, w) in watchers.into_iter().enumerate() {
        let got = w
            .await
            .unwrap()
            .unwrap_or_else(|_| panic!("watcher {i} of 16 was not woken"));
        assert_eq!(got.unwrap(), Some(v2.clone()), "watcher {i}");
    }
}

pub(super) async fn concurrent_creates_have_one_winner(b: Arc<dyn Backend>) {
    for round in 0..5 {
        let k = key(&format!("race/create-{round}"));
        let barrier = Arc::new(tokio::sync::Barrier::new(16));
        let tasks: Vec<_> = (0..16)
            .map(|i| {
                let (b, k, barrier) = (Arc::clone(&b), k.clone(), Arc::clone(&barrier));
                tokio::spawn(async move {
                    barrier.wait().await;
                    b.create(&k, format!("creator {i}")).await.map(|m| (i, m))
                })
            })
            .collect();
        let mut winners = Vec::new();
        for t in tasks {
            match t.await.unwrap() {
                Ok(w) => winners.push(w),
                Err(e) if e.is_already_exists() => {}
                Err(e) => panic!("create race: unexpected error {e}"),
            }
        }
        assert_eq!(
            winners.len(),
            1,
            "round {round}: {} of 16 concurrent creates succeeded",
            winners.len()
        );
        let (i, m) = &winners[0];
        assert_eq!(
            get_all(&*b, &k).await,
            format!("creator {i}"),
            "the winner's content is not what is stored"
        );
        assert_eq!(b.head(&k).await.unwrap().version, m.version);
    }
}

pub(super) async fn concurrent_cas_increments_are_exact(b: Arc<dyn Backend>) {
    const TASKS: usize = 8;
    const INCREMENTS: usize = 250;
    let k = key("race/counter");
    put(&*b, &k, "0").await;
    let tasks: Vec<_> = (0..TASKS)
        .map(|_| {
            let (b, k) = (Arc::clone(&b), k.clone());
            tokio::spawn(async move {
                let mut conflicts = 0u64;
                for _ in 0..INCREMENTS {
                    loop {
                        let (meta, data) = b.get_with_meta(&k).await.expect("get counter");
                        let n: u64 = std::str::from_utf8(&data).unwrap().parse().unwrap();
                        match b.update(&k, (n + 1).to_string(), meta.version).await {
                            Ok(_) => break,
                            Err(e) if e.is_conflict() => conflicts += 1,
                            Err(e) => panic!("update counter: {e}"),
                        }
                    }
                }
                conflicts
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let total = get_all(&*b, &k).await;
    assert_eq!(
        total,
        (TASKS * INCREMENTS).to_string(),
        "lost updates: {TASKS} × {INCREMENTS} CAS increments"
    );
}

pub(super) async fn readers_never_see_a_partial_put(b: Arc<dyn Backend>) {
    const LEN: usize = 256 * 1024;
    let k = key("atomic/swap");
    let a = Bytes::from(vec![b'a'; LEN]);
    let z = Bytes::from(vec![b'z'; LEN]);
    put(&*b, &k, a.clone()).await;
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let (b, k, done) = (Arc::clone(&b), k.clone(), Arc::clone(&done));
            tokio::spawn(async move {
                let mut reads = 0;
                while !done.load(std::sync::atomic::Ordering::Relaxed) || reads == 0 {
                    let got = get_all(&*b, &k).await;
                    assert_eq!(got.len(), LEN, "a reader saw a {}-byte object", got.len());
                    let first = got[0];
                    assert!(got.iter().all(|&c| c == first), "a reader saw a mix of two puts");
                    reads += 1;
                    tokio::task::yield_now().await;
                }
            })
        })
        .collect();
    for i in 0..40 {
        let data = if i % 2 == 0 { z.clone() } else { a.clone() };
        if i % 4 == 0 {
            let mut w = b.writer(&k, PutOptions::default()).await.unwrap();
            for part in 0..4 {
                w.write(data.slice(part * LEN / 4..(part + 1) * LEN / 4))
                    .await
                    .unwrap();
            }
            w.close().await.unwrap();
        } else {
            put(&*b, &k, data).await;
        }
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    for r in readers {
        r.await.unwrap();
    }
}
