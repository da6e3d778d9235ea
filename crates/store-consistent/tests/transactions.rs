//! Multi-name transactions: atomic, isolated from concurrent updates, all-or-nothing.

use std::time::Duration;

use bytes::Bytes;
use proptest::prelude::*;
use store_consistent::{Group, RetryPolicy};
use store_core::{BackendExt, Error, ErrorKind};
use store_memory::MemoryStore;

fn balance(b: Option<Bytes>) -> Result<u64, Error> {
    match b {
        None => Ok(0),
        Some(b) => std::str::from_utf8(&b)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| Error::Corrupt {
                key: "account".into(),
                reason: format!("not a balance: {b:?}"),
            }),
    }
}

/// Moves `amount` from `from` to `to` if `from` has it; returns whether it did.
async fn transfer(bank: &Group, from: String, to: String, amount: u64) -> Result<bool, Error> {
    bank.transaction(move |tx| {
        let (from, to) = (from.clone(), to.clone());
        Box::pin(async move {
            let a = balance(tx.get(&from).await?)?;
            let b = balance(tx.get(&to).await?)?;
            if a < amount {
                return Ok(false);
            }
            tx.put(&from, (a - amount).to_string())?;
            tx.put(&to, (b + amount).to_string())?;
            Ok(true)
        })
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_transfers_keep_the_total() {
    let strategy = (2usize..=5).prop_flat_map(|accounts| {
        (
            Just(accounts),
            proptest::collection::vec((0..accounts, 0..accounts, 0u64..150), 1..40),
        )
    });
    store_testkit::prop::check(
        "concurrent transfers keep the total",
        store_testkit::prop::cases(16),
        strategy,
        |(accounts, transfers)| async move {
            let store = MemoryStore::new();
            let bank = Group::new(store.clone(), "bank").unwrap().with_retry_policy(
                RetryPolicy::default()
                    .with_max_attempts(100_000)
                    .with_backoff(Duration::from_micros(100), Duration::from_millis(10)),
            );
            let name = |i: usize| format!("account-{i}");
            for i in 0..accounts {
                bank.operate(&name(i), |_| Ok("100"))
                    .await
                    .map_err(|e| e.to_string())?;
            }
            // Four tasks share the transfers round-robin.
            let mut tasks = Vec::new();
            for t in 0..4 {
                let bank = bank.clone();
                let mine: Vec<_> = transfers.iter().skip(t).step_by(4).copied().collect();
                tasks.push(tokio::spawn(async move {
                    for (from, to, amount) in mine {
                        if from != to {
                            transfer(&bank, name(from), name(to), amount).await?;
                        }
                    }
                    Ok::<_, Error>(())
                }));
            }
            for t in tasks {
                t.await.map_err(|e| e.to_string())?.map_err(|e| e.to_string())?;
            }
            let mut total = 0;
            for i in 0..accounts {
                total += balance(Some(
                    bank.reader(&name(i))
                        .await
                        .map_err(|e| e.to_string())?
                        .bytes()
                        .await
                        .unwrap(),
                ))
                .map_err(|e| e.to_string())?;
            }
            if total != 100 * accounts as u64 {
                return Err(format!("total is {total}, expected {}", 100 * accounts));
            }
            let objects = store.list_keys("bank/.objects/").await.unwrap().len();
            // Balances are small: they live in the manifest, so nothing else is stored.
            if objects != 0 {
                return Err(format!(
                    "{objects} object versions stored for {accounts} inline accounts"
                ));
            }
            Ok(())
        },
    )
    .await;
}

#[tokio::test]
async fn a_stale_transaction_does_not_commit() {
    let store = MemoryStore::new();
    let g = Group::new(store.clone(), "t").unwrap();
    g.operate("a", |_| Ok("a0")).await.unwrap();
    g.operate("b", |_| Ok("b0")).await.unwrap();

    let mut tx = g.begin().await.unwrap();
    assert_eq!(tx.get("a").await.unwrap().unwrap(), "a0");
    tx.put("b", "b1 derived from a0").unwrap();
    tx.put("c", "new").unwrap();
    tx.delete("a").unwrap();
    assert_eq!(tx.names(), ["b", "c"]);
    assert_eq!(
        tx.get("c").await.unwrap().unwrap(),
        "new",
        "a transaction sees its own writes"
    );
    assert_eq!(tx.get("a").await.unwrap(), None);

    g.operate("a", |_| Ok("a1")).await.unwrap();
    let err = tx.commit().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
    assert!(err.to_string().contains("t/a"), "{err}");
    assert_eq!(g.list().await.unwrap(), ["a", "b"]);
    assert_eq!(g.reader("b").await.unwrap().bytes().await.unwrap(), "b0");
    assert_eq!(
        store.list_keys("t/.objects/").await.unwrap().len(),
        0,
        "small contents live in the manifest, and the failed commit left no orphan"
    );
}

#[tokio::test]
async fn a_transaction_commits_all_at_once_and_reads_one_snapshot() {
    let g = Group::new(MemoryStore::new(), "t").unwrap();
    g.operate("a", |_| Ok("a0")).await.unwrap();
    let mut tx = g.begin().await.unwrap();
    tx.put("a", "a1").unwrap();
    tx.put("b", "b1").unwrap();
    // Another name changing meanwhile does not matter.
    g.operate("z", |_| Ok("z")).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(g.list().await.unwrap(), ["a", "b", "z"]);
    assert_eq!(g.reader("a").await.unwrap().bytes().await.unwrap(), "a1");

    // A read-only transaction keeps reading its snapshot's names: small contents come with
    // the snapshot; a large one is an object, and once replaced the read reports a stale
    // snapshot.
    let large = "L".repeat(2000);
    g.operate("big", |_| Ok(large.clone())).await.unwrap();
    let mut tx = g.begin().await.unwrap();
    g.operate("a", |_| Ok("a2")).await.unwrap();
    g.operate("big", |_| Ok("replaced")).await.unwrap();
    assert_eq!(
        tx.get("a").await.unwrap().unwrap(),
        "a1",
        "the snapshot's content"
    );
    let err = tx.get("big").await.unwrap_err();
    assert!(err.is_conflict(), "the version it would read was replaced: {err}");
    assert_eq!(tx.get("b").await.unwrap().unwrap(), "b1");

    // An error from the closure aborts without writing.
    let err = g
        .transaction(|tx| {
            Box::pin(async move {
                tx.put("a", "never")?;
                Err::<(), _>(Error::invalid_input("test", None, "no"))
            })
        })
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert_eq!(g.reader("a").await.unwrap().bytes().await.unwrap(), "a2");
}
