//! Faulty<B> injects what it is told to, where it is told to, and nothing else.

use std::time::Duration;

use bytes::Bytes;
use futures::TryStreamExt;
use store_core::{Backend, BackendExt, ErrorKind, Key, ListOptions, PutOptions};
use store_memory::MemoryStore;
use store_testkit::{Fault, FaultOp, Faulty, Rule};

fn k(s: &str) -> Key {
    Key::new(s).unwrap()
}

#[tokio::test]
async fn passes_everything_through_without_rules() {
    store_testkit::backend::run_checks(
        || async { Faulty::new(MemoryStore::new()) },
        &store_testkit::backend::CHECKS[..6],
    )
    .await
    .assert_all_ran();
}

#[tokio::test]
async fn fails_selected_operations_and_keys() {
    let f = Faulty::new(MemoryStore::new()).named("left");
    f.inject(Rule::new(FaultOp::Put, Fault::Fail).for_key(&k("bad")));
    f.inject(Rule::new(FaultOp::Get, Fault::FailRetryable).times(1));
    let e = f.put_bytes(&k("bad"), "x").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Backend);
    assert!(!e.is_retryable());
    assert!(
        e.to_string().contains("left") && e.to_string().contains("bad"),
        "{e}"
    );
    assert!(
        f.inner().head(&k("bad")).await.is_err(),
        "a failed put must not reach the inner store"
    );
    f.put_bytes(&k("good"), "y").await.unwrap();
    assert!(f.get_bytes(&k("good")).await.unwrap_err().is_retryable());
    assert_eq!(f.get_bytes(&k("good")).await.unwrap(), "y");
    assert_eq!(f.calls(FaultOp::Put), 2);
    assert_eq!(f.events(), ["left Put bad err", "left Put good ok"]);
}

#[tokio::test]
async fn fails_writer_steps() {
    let f = Faulty::new(MemoryStore::new());
    f.inject(Rule::new(FaultOp::WriterWrite, Fault::Fail).after(1).times(1));
    let mut w = f.writer(&k("w"), PutOptions::default()).await.unwrap();
    w.write(Bytes::from_static(b"1")).await.unwrap();
    assert!(w.write(Bytes::from_static(b"2")).await.is_err());
    w.abort().await.unwrap();

    f.inject(Rule::new(FaultOp::WriterClose, Fault::Fail).times(1));
    let mut w = f.writer(&k("w"), PutOptions::default()).await.unwrap();
    w.write(Bytes::from_static(b"1")).await.unwrap();
    assert!(w.close().await.is_err());
    assert!(
        f.inner().head(&k("w")).await.unwrap_err().is_not_found(),
        "failed close must not commit"
    );

    f.inject(Rule::new(FaultOp::WriterOpen, Fault::Fail).times(1));
    assert!(f.writer(&k("w"), PutOptions::default()).await.is_err());
    assert!(f.writer(&k("w"), PutOptions::default()).await.is_ok());
}

#[tokio::test]
async fn fails_list_delete_head_watch() {
    let f = Faulty::new(MemoryStore::new());
    f.put_bytes(&k("a"), "1").await.unwrap();
    for op in [FaultOp::List, FaultOp::Delete, FaultOp::Head, FaultOp::Watch] {
        f.inject(Rule::new(op, Fault::Fail).times(1));
    }
    assert!(
        f.list(ListOptions::default())
            .try_collect::<Vec<_>>()
            .await
            .is_err()
    );
    assert_eq!(f.list_keys("").await.unwrap(), [k("a")]);
    assert!(f.delete_if_exists(&k("a")).await.is_err());
    assert!(f.head(&k("a")).await.is_err());
    assert!(f.watch(&k("a"), None).await.is_err());
    assert!(f.watch(&k("a"), None).await.unwrap().is_some());
}

#[tokio::test]
async fn latency_delays_and_hang_waits_for_release() {
    let f = Faulty::new(MemoryStore::new());
    f.inject(Rule::new(FaultOp::Put, Fault::Latency(Duration::from_millis(40))).times(1));
    let start = std::time::Instant::now();
    f.put_bytes(&k("slow"), "x").await.unwrap();
    assert!(start.elapsed() >= Duration::from_millis(40));

    f.inject(Rule::new(FaultOp::Put, Fault::Hang));
    let hung = {
        let f = f.clone();
        tokio::spawn(async move { f.put_bytes(&k("hung"), "x").await })
    };
    tokio::time::sleep(Duration::from_millis(30)).await;
    assert!(!hung.is_finished(), "a hung put returned");
    assert!(f.inner().head(&k("hung")).await.is_err());
    f.release();
    hung.await.unwrap().unwrap();
    assert_eq!(f.inner().get_bytes(&k("hung")).await.unwrap(), "x");
}
