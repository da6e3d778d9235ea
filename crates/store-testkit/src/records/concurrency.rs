//! Checks of concurrent clients: one winner among racing writers, exact CAS counts.

use super::*;

pub(super) async fn concurrent_cas_has_one_winner(s: Arc<dyn RecordStore>) {
    // As wide as the create race. Wider races say little more, and servers that serialise
    // contended conditional writes to one key (SeaweedFS 4.48 answers some of 64 only after
    // more than 30 s) would fail on their request timeouts, not on the property.
    const TASKS: usize = 16;
    let k = key("race/cas");
    let from = put(&*s, rec(&k, "start")).await.version;
    let barrier = Arc::new(tokio::sync::Barrier::new(TASKS));
    let tasks: Vec<_> = (0..TASKS)
        .map(|i| {
            let (s, k, from, barrier) = (Arc::clone(&s), k.clone(), from.clone(), Arc::clone(&barrier));
            tokio::spawn(async move {
                barrier.wait().await;
                s.cas_by_version(&rec(&k, &format!("writer {i}")).with_version(from))
                    .await
                    .map(|v| (i, v))
            })
        })
        .collect();
    let mut winners = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            Ok(w) => winners.push(w),
            Err(e) if e.is_conflict() => {}
            Err(e) => panic!("cas race: expected Conflict for the losers, got {e}"),
        }
    }
    assert_eq!(
        winners.len(),
        1,
        "{} of {TASKS} concurrent cas calls succeeded",
        winners.len()
    );
    let (i, v) = &winners[0];
    let got = get(&*s, &k).await;
    assert_eq!((got.value, &got.version), (Bytes::from(format!("writer {i}")), v));
}

pub(super) async fn concurrent_creates_have_one_winner(s: Arc<dyn RecordStore>) {
    for round in 0..4 {
        let k = key(&format!("race/create-{round}"));
        if round % 2 == 1 {
            // Racing over an expired record: still exactly one winner.
            put(&*s, rec(&k, "expired").with_expiry(past())).await;
        }
        let barrier = Arc::new(tokio::sync::Barrier::new(16));
        let tasks: Vec<_> = (0..16)
            .map(|i| {
                let (s, k, barrier) = (Arc::clone(&s), k.clone(), Arc::clone(&barrier));
                tokio::spawn(async move {
                    barrier.wait().await;
                    s.create(&rec(&k, &format!("creator {i}"))).await.map(|v| (i, v))
                })
            })
            .collect();
        let mut winners = Vec::new();
        for t in tasks {
            match t.await.unwrap() {
                Ok(w) => winners.push(w),
                Err(e) if e.is_already_exists() => {}
                Err(e) => panic!("create race round {round}: unexpected error {e}"),
            }
        }
        assert_eq!(
            winners.len(),
            1,
            "round {round}: {} of 16 concurrent creates succeeded",
            winners.len()
        );
        let (i, v) = &winners[0];
        let got = get(&*s, &k).await;
        assert_eq!(
            (got.value, &got.version),
            (Bytes::from(format!("creator {i}")), v)
        );
    }
}

pub(super) async fn concurrent_cas_increments_are_exact(s: Arc<dyn RecordStore>) {
    const TASKS: usize = 8;
    const INCREMENTS: usize = 100;
    let k = key("race/counter");
    put(&*s, rec(&k, "0")).await;
    let tasks: Vec<_> = (0..TASKS)
        .map(|_| {
            let (s, k) = (Arc::clone(&s), k.clone());
            tokio::spawn(async move {
                for _ in 0..INCREMENTS {
                    loop {
                        let cur = s.get(&k).await.expect("get counter");
                        let n: u64 = std::str::from_utf8(&cur.value).unwrap().parse().unwrap();
                        match s
                            .cas_by_version(&rec(&k, &(n + 1).to_string()).with_version(cur.version))
                            .await
                        {
                            Ok(_) => break,
                            Err(e) if e.is_conflict() => {}
                            Err(e) => panic!("cas counter: {e}"),
                        }
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(
        get(&*s, &k).await.value,
        (TASKS * INCREMENTS).to_string(),
        "lost updates"
    );
}
