//! Behaviour particular to etcd: limits, prefixes, what is stored, errors, leases.

mod common;

use std::time::{Duration, SystemTime};

use futures::{StreamExt, TryStreamExt};
use store_core::{Backend, BackendExt, ErrorKind, Key, ListOptions, Record, RecordStore};
use store_etcd::{EtcdError, EtcdOptions, EtcdRecords, EtcdStore};

fn key(s: &str) -> Key {
    Key::new(s).unwrap()
}

fn etcd_error(e: &store_core::Error) -> Option<&EtcdError> {
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        if let Some(etcd) = c.downcast_ref::<EtcdError>() {
            return Some(etcd);
        }
        cause = c.source();
    }
    None
}

async fn raw(eps: &str) -> etcd_client::Client {
    let eps: Vec<&str> = eps.split(',').collect();
    etcd_client::Client::connect(&eps, None).await.unwrap()
}

#[tokio::test]
async fn objects_over_the_limit_are_refused_naming_the_key() {
    let Some(eps) = common::endpoints("STORE_ETCD_ENDPOINTS", "objects_over_the_limit_are_refused") else {
        return;
    };
    let prefix = common::run_prefix("limit");
    let store = EtcdStore::connect(
        EtcdOptions::from_list(&eps)
            .with_key_prefix(&prefix)
            .with_max_object_size(1024),
    )
    .await
    .unwrap();
    assert_eq!(store.capabilities().max_object_size, Some(1024));
    store.put_bytes(&key("fits"), vec![7u8; 1024]).await.unwrap();
    let e = store
        .put_bytes(&key("too/big"), vec![7u8; 1025])
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("\"too/big\"") && msg.contains("1025") && msg.contains("1024"),
        "{msg}"
    );
    assert!(!e.is_retryable());
    // A writer is held to the same limit when it closes, and leaves nothing behind.
    let mut w = store.writer(&key("streamed"), Default::default()).await.unwrap();
    w.write(vec![1u8; 1000].into()).await.unwrap();
    w.write(vec![1u8; 1000].into()).await.unwrap();
    assert_eq!(w.close().await.unwrap_err().kind(), ErrorKind::InvalidInput);
    assert!(!store.exists(&key("streamed")).await.unwrap());
    common::clean_up(&eps, &prefix).await;
}

#[tokio::test]
async fn objects_are_plain_values_under_the_key_prefix() {
    let Some(eps) = common::endpoints("STORE_ETCD_ENDPOINTS", "objects_are_plain_values") else {
        return;
    };
    let prefix = common::run_prefix("prefix");
    let base = EtcdStore::connect(EtcdOptions::from_list(&eps)).await.unwrap();
    let a = base.with_key_prefix(format!("{prefix}a/"));
    let b = base.with_key_prefix(format!("{prefix}b/"));
    let m = a.put_bytes(&key("same/key"), "from a").await.unwrap();
    b.put_bytes(&key("same/key"), "from b").await.unwrap();
    b.put_bytes(&key("only/b"), "b").await.unwrap();
    assert_eq!(a.get_bytes(&key("same/key")).await.unwrap(), "from a");
    let listed: Vec<String> = a
        .list(ListOptions::default())
        .map_ok(|m| m.key.to_string())
        .try_collect()
        .await
        .unwrap();
    assert_eq!(listed, ["same/key"]);
    // etcdctl sees the bytes as they are, and the version is the key's mod_revision.
    let mut client = raw(&eps).await;
    let got = client.get(format!("{prefix}a/same/key"), None).await.unwrap();
    let kv = &got.kvs()[0];
    assert_eq!(kv.value(), b"from a");
    assert_eq!(m.version.as_u64(), Some(kv.mod_revision() as u64));
    common::clean_up(&eps, &prefix).await;
}

#[tokio::test]
async fn garbage_written_by_others_is_corrupt_not_a_panic() {
    let Some(eps) = common::endpoints("STORE_ETCD_ENDPOINTS", "garbage_is_corrupt") else {
        return;
    };
    let prefix = common::run_prefix("garbage");
    let records = EtcdRecords::connect(EtcdOptions::from_list(&eps).with_key_prefix(&prefix))
        .await
        .unwrap();
    let mut client = raw(&eps).await;
    client
        .put(format!("{prefix}bad/value"), "not an envelope", None)
        .await
        .unwrap();
    let e = records.get(&key("bad/value")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}");
    assert!(e.to_string().contains("bad/value"), "{e}");

    // A key that is not a valid store key shows up as a Corrupt item in a listing.
    let store = EtcdStore::connect(EtcdOptions::from_list(&eps).with_key_prefix(format!("{prefix}objects/")))
        .await
        .unwrap();
    client
        .put(format!("{prefix}objects/a//b"), "x", None)
        .await
        .unwrap();
    store.put_bytes(&key("good"), "y").await.unwrap();
    let items: Vec<_> = store.list(ListOptions::default()).collect::<Vec<_>>().await;
    assert_eq!(items.len(), 2);
    assert_eq!(items[0].as_ref().unwrap_err().kind(), ErrorKind::Corrupt);
    assert_eq!(items[1].as_ref().unwrap().key.as_str(), "good");
    common::clean_up(&eps, &prefix).await;
}

#[tokio::test]
async fn leases_remove_expired_records_from_etcd() {
    let Some(eps) = common::endpoints("STORE_ETCD_ENDPOINTS", "leases_remove_expired_records") else {
        return;
    };
    let prefix = common::run_prefix("lease");
    let records = EtcdRecords::connect(EtcdOptions::from_list(&eps).with_key_prefix(&prefix))
        .await
        .unwrap();
    let soon = SystemTime::now() + Duration::from_millis(500);
    records
        .put(&Record::new(key("short"), "x").with_expiry(soon))
        .await
        .unwrap();
    records
        .put(&Record::new(key("long"), "y").with_expiry(SystemTime::now() + Duration::from_secs(3600)))
        .await
        .unwrap();
    let mut client = raw(&eps).await;
    let short = format!("{prefix}short");
    assert_eq!(client.get(short.as_str(), None).await.unwrap().kvs().len(), 1);
    // The record is absent from its expiry on; etcd's lease deletes the key a little later.
    let mut gone = false;
    for _ in 0..150 {
        if client.get(short.as_str(), None).await.unwrap().kvs().is_empty() {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(gone, "the lease never deleted the expired record");
    assert_eq!(
        client
            .get(format!("{prefix}long"), None)
            .await
            .unwrap()
            .kvs()
            .len(),
        1
    );
    common::clean_up(&eps, &prefix).await;
}

/// Needs no etcd: nothing listens on the discard port.
#[tokio::test]
async fn an_unreachable_cluster_gives_retryable_errors_naming_the_key() {
    let opts = EtcdOptions::new(["http://127.0.0.1:9"])
        .with_connect_timeout(Duration::from_millis(200))
        .with_request_timeout(Duration::from_millis(600));
    let store = EtcdStore::connect(opts.clone()).await.unwrap();
    let e = store.head(&key("k/1")).await.unwrap_err();
    assert!(e.is_retryable(), "{e:?}");
    assert!(e.to_string().contains("k/1"), "{e}");
    // Writes that could not connect were tried until the request timeout; none was
    // sent, so none has an unknown outcome.
    let e = store.put_bytes(&key("k/2"), "v").await.unwrap_err();
    assert!(e.is_retryable(), "{e:?}");
    assert!(e.to_string().contains("k/2"), "{e}");
    assert!(e.is_not_applied(), "{e}");
    assert_eq!(etcd_error(&e).map(EtcdError::outcome_unknown), Some(false), "{e}");
    let records = EtcdRecords::connect(opts).await.unwrap();
    let e = records.create(&Record::new(key("k/3"), "v")).await.unwrap_err();
    assert!(
        e.is_retryable() && e.is_not_applied() && e.to_string().contains("k/3"),
        "{e}"
    );
    assert_eq!(etcd_error(&e).map(EtcdError::outcome_unknown), Some(false), "{e}");
    let e = EtcdStore::connect(EtcdOptions::new(Vec::<String>::new()))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
}
