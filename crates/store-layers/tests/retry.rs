//! Retry: what is retried, what is not, and exact results under random faults.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::TryStreamExt;
use store_core::{Backend, BackendExt, Backoff, DeleteOptions, Key, ListOptions, PutOptions};
use store_layers::{Retry, RetryStore};
use store_memory::MemoryStore;
use store_testkit::{Fault, FaultOp, Faulty, Rule};

fn k(s: &str) -> Key {
    Key::new(s).unwrap()
}

/// Short pauses, and enough attempts that 30% failures never spend the budget.
fn patient() -> Retry {
    Retry::new(
        Backoff::new(Duration::from_micros(50), Duration::from_millis(1))
            .with_jitter(true)
            .with_max_attempts(40),
    )
}

fn retried(faulty: &Faulty<MemoryStore>) -> RetryStore<Faulty<MemoryStore>> {
    faulty.clone().layer(patient())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cas_increments_stay_exact_when_30_percent_of_calls_fail_before_or_after_applying() {
    const TASKS: usize = 8;
    const PER_TASK: usize = 250;
    let faulty = Faulty::new(MemoryStore::new());
    // Of all puts: 15% refused before they apply, 15% applied with the reply lost (0.15 of
    // the remaining 85% is 0.1765); reads fail 30% of the time.
    faulty.inject(Rule::new(FaultOp::Put, Fault::Refused).with_probability(0.15));
    faulty.inject(Rule::new(FaultOp::Put, Fault::LostReplyResolvable).with_probability(0.1765));
    faulty.inject(Rule::new(FaultOp::Get, Fault::FailRetryable).with_probability(0.3));
    let store = Arc::new(retried(&faulty));
    let key = k("counter");

    // Each increment appends its own token to the value, so the value is the history of
    // every write applied: a write applied twice shows as a repeated token.
    let tasks: Vec<_> = (0..TASKS)
        .map(|task| {
            let (store, key) = (Arc::clone(&store), key.clone());
            tokio::spawn(async move {
                for step in 0..PER_TASK {
                    let token = format!("{task}.{step};");
                    store
                        .read_modify_write(&key, |current| {
                            let mut next = current.map(|b| b.to_vec()).unwrap_or_default();
                            next.extend_from_slice(token.as_bytes());
                            Ok(Bytes::from(next))
                        })
                        .await
                        .unwrap_or_else(|e| panic!("increment {token} failed: {e}"));
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }

    let history = faulty.inner().get_bytes(&key).await.unwrap();
    let tokens: Vec<&str> = std::str::from_utf8(&history)
        .unwrap()
        .split_terminator(';')
        .collect();
    assert_eq!(tokens.len(), TASKS * PER_TASK, "increments applied");
    let distinct: HashSet<&str> = tokens.iter().copied().collect();
    assert_eq!(
        distinct.len(),
        tokens.len(),
        "a conditional write was applied twice"
    );
    for task in 0..TASKS {
        for step in 0..PER_TASK {
            assert!(distinct.contains(format!("{task}.{step}").as_str()));
        }
    }
    // The faults really happened, on both sides of the write.
    let failed_puts = faulty.events().iter().filter(|e| e.ends_with("err")).count();
    assert!(failed_puts > 300, "only {failed_puts} puts failed");
}

#[tokio::test]
async fn conditional_writes_whose_reply_is_lost_are_never_sent_again() {
    let faulty = Faulty::new(MemoryStore::new());
    let store = retried(&faulty);

    faulty.inject(Rule::new(FaultOp::Put, Fault::LostReply).times(1));
    let e = store.create(&k("a"), "1").await.unwrap_err();
    assert!(e.is_outcome_unknown() && e.is_retryable(), "{e}");
    let text = e.to_string();
    assert!(
        text.contains("outcome unknown") && text.contains("\"a\""),
        "{text}"
    );
    assert_eq!(faulty.calls(FaultOp::Put), 1, "sent once");
    assert_eq!(
        faulty.inner().get_bytes(&k("a")).await.unwrap(),
        "1",
        "and applied"
    );

    let v = faulty.inner().head(&k("a")).await.unwrap().version;
    faulty.inject(Rule::new(FaultOp::Put, Fault::LostReply).times(1));
    let e = store.update(&k("a"), "2", v.clone()).await.unwrap_err();
    assert!(e.is_outcome_unknown(), "{e}");
    assert_eq!(faulty.calls(FaultOp::Put), 2);

    // A retryable failure that may have come after the write: same, even before applying.
    faulty.inject(Rule::new(FaultOp::Put, Fault::FailRetryable).times(1));
    assert!(store.create(&k("b"), "x").await.unwrap_err().is_outcome_unknown());
    assert_eq!(faulty.calls(FaultOp::Put), 3);

    // Deletes, conditional or not: sent again after being applied, they would say NotFound.
    faulty.inject(Rule::new(FaultOp::Delete, Fault::LostReply).times(1));
    let e = store.delete(&k("a"), DeleteOptions::default()).await.unwrap_err();
    assert!(e.is_outcome_unknown(), "{e}");
    assert_eq!(faulty.calls(FaultOp::Delete), 1);
    assert!(!faulty.inner().exists(&k("a")).await.unwrap());

    // A conditional writer's close: settled the same way, never re-sent.
    faulty.inject(Rule::new(FaultOp::WriterClose, Fault::LostReply).times(1));
    let mut w = store.writer(&k("c"), PutOptions::create()).await.unwrap();
    w.write("streamed".into()).await.unwrap();
    let e = w.close().await.unwrap_err();
    assert!(e.is_outcome_unknown(), "{e}");
    assert_eq!(faulty.calls(FaultOp::WriterClose), 1);
}

#[tokio::test]
async fn lost_replies_are_resolved_when_the_backend_can_tell() {
    let faulty = Faulty::new(MemoryStore::new());
    let store = retried(&faulty);
    faulty.inject(Rule::new(FaultOp::Put, Fault::LostReplyResolvable).times(1));
    let meta = store.create(&k("a"), "1").await.expect("resolved as applied");
    assert_eq!(meta.version, faulty.inner().head(&k("a")).await.unwrap().version);
    assert_eq!(faulty.calls(FaultOp::Put), 1, "resolved, not re-sent");

    faulty.inject(Rule::new(FaultOp::WriterClose, Fault::LostReplyResolvable).times(1));
    let mut w = store
        .writer(&k("a"), PutOptions::update(meta.version))
        .await
        .unwrap();
    w.write("2".into()).await.unwrap();
    let closed = w.close().await.expect("resolved as applied");
    assert_eq!(
        closed.version,
        faulty.inner().head(&k("a")).await.unwrap().version
    );
}

#[tokio::test]
async fn refused_conditional_writes_are_sent_again() {
    let faulty = Faulty::new(MemoryStore::new());
    let store = retried(&faulty);
    faulty.inject(Rule::new(FaultOp::Put, Fault::Refused).times(2));
    let v = store.create(&k("a"), "1").await.unwrap().version;
    assert_eq!(faulty.calls(FaultOp::Put), 3);
    faulty.inject(Rule::new(FaultOp::Put, Fault::Refused).times(1));
    store.update(&k("a"), "2", v).await.unwrap();
    faulty.inject(Rule::new(FaultOp::Delete, Fault::Refused).times(3));
    store.delete(&k("a"), DeleteOptions::default()).await.unwrap();
    assert_eq!(faulty.calls(FaultOp::Delete), 4);
}

#[tokio::test]
async fn reads_watches_and_overwrites_are_retried() {
    let faulty = Faulty::new(MemoryStore::new());
    let store = retried(&faulty);
    // Rules apply in the order added: this one lets two calls on to the next rules first.
    faulty.inject(Rule::new(FaultOp::Put, Fault::LostReply).after(2).times(1));
    for op in [
        FaultOp::Put,
        FaultOp::Get,
        FaultOp::Head,
        FaultOp::Watch,
        FaultOp::WriterOpen,
    ] {
        faulty.inject(Rule::new(op, Fault::FailRetryable).times(2));
    }
    let written = store.put_bytes(&k("a"), "1").await.unwrap();
    assert_eq!(
        faulty.calls(FaultOp::Put),
        4,
        "two failures, a lost reply, then the reply"
    );
    assert_eq!(store.get_bytes(&k("a")).await.unwrap(), "1");
    assert_eq!(store.head(&k("a")).await.unwrap().version, written.version);
    assert_eq!(store.watch(&k("a"), None).await.unwrap(), Some(written.version));
    store.writer(&k("b"), PutOptions::default()).await.unwrap();
    for op in [FaultOp::Get, FaultOp::Head, FaultOp::Watch, FaultOp::WriterOpen] {
        assert_eq!(faulty.calls(op), 3, "{op:?}");
    }
}

#[tokio::test]
async fn what_cannot_succeed_is_not_retried_and_budgets_end() {
    let faulty = Faulty::new(MemoryStore::new());
    let store = faulty.clone().layer(Retry::new(
        Backoff::new(Duration::from_micros(10), Duration::from_micros(10)).with_max_attempts(3),
    ));
    faulty.inject(Rule::new(FaultOp::Get, Fault::Fail).times(1));
    assert!(!store.get_bytes(&k("a")).await.unwrap_err().is_retryable());
    assert_eq!(faulty.calls(FaultOp::Get), 1, "a non-retryable error is final");
    assert!(store.get_bytes(&k("a")).await.unwrap_err().is_not_found());
    assert_eq!(faulty.calls(FaultOp::Get), 2, "so is NotFound");

    faulty.inject(Rule::new(FaultOp::Head, Fault::FailRetryable));
    let e = store.head(&k("a")).await.unwrap_err();
    assert!(
        e.is_retryable() && e.to_string().contains("injected fault"),
        "{e}"
    );
    assert_eq!(faulty.calls(FaultOp::Head), 3, "three attempts in all");

    // A streamed chunk is the caller's, gone once written: never retried.
    faulty.inject(Rule::new(FaultOp::WriterWrite, Fault::FailRetryable).times(1));
    let mut w = store.writer(&k("w"), PutOptions::default()).await.unwrap();
    assert!(w.write("x".into()).await.is_err());
    assert_eq!(faulty.calls(FaultOp::WriterWrite), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listings_resume_after_the_last_key_under_mid_stream_failures() {
    const KEYS: usize = 10_000;
    let faulty = Faulty::new(MemoryStore::new());
    let expected: Vec<Key> = (0..KEYS).map(|i| k(&format!("items/{i:05}"))).collect();
    for key in &expected {
        faulty.inner().put_bytes(key, "x").await.unwrap();
    }
    faulty.inner().put_bytes(&k("other/1"), "x").await.unwrap();
    // Failures at the start of a listing, between items, and items read then lost.
    faulty.inject(Rule::new(FaultOp::List, Fault::FailRetryable).with_probability(0.3));
    faulty.inject(Rule::new(FaultOp::ListItem, Fault::FailRetryable).with_probability(0.01));
    faulty.inject(Rule::new(FaultOp::ListItem, Fault::LostReply).with_probability(0.005));
    let store = retried(&faulty);

    let listed: Vec<Key> = store
        .list(ListOptions::default().with_prefix("items/"))
        .map_ok(|m| m.key)
        .try_collect()
        .await
        .unwrap();
    assert_eq!(listed.len(), KEYS, "each key exactly once");
    assert_eq!(listed, expected, "in order, none skipped or repeated");
    assert!(
        faulty.calls(FaultOp::List) > 50,
        "it resumed {} times",
        faulty.calls(FaultOp::List)
    );

    // start_after of the caller's own is kept on the first attempt and replaced on resumes.
    let tail: Vec<Key> = store
        .list(
            ListOptions::default()
                .with_prefix("items/")
                .with_start_after("items/09989"),
        )
        .map_ok(|m| m.key)
        .try_collect()
        .await
        .unwrap();
    assert_eq!(tail, expected[9990..]);
}

#[tokio::test]
async fn a_listing_fails_once_its_budget_is_spent_without_progress() {
    let faulty = Faulty::new(MemoryStore::new());
    for i in 0..5 {
        faulty.inner().put_bytes(&k(&format!("k{i}")), "x").await.unwrap();
    }
    faulty.inject(Rule::new(FaultOp::ListItem, Fault::FailRetryable).after(2));
    let store = faulty.clone().layer(Retry::new(
        Backoff::new(Duration::from_micros(10), Duration::from_micros(10)).with_max_attempts(4),
    ));
    let items: Vec<_> = futures::StreamExt::collect(store.list(ListOptions::default())).await;
    assert_eq!(
        items.len(),
        3,
        "two keys, then the error once the budget is spent"
    );
    assert!(items[..2].iter().all(|i| i.is_ok()) && items[2].is_err());
    assert_eq!(faulty.calls(FaultOp::List), 4);
}
