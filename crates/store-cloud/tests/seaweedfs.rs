//! CloudStore against a real S3 server (SeaweedFS from `scripts/seaweedfs.sh`).

mod common;

use bytes::Bytes;
use object_store::{ObjectStoreExt, PutPayload, path::Path};
use store_cloud::{CloudStore, Layout};
use store_core::{Backend, BackendExt, ErrorKind, Key, PutOptions};
use store_record::Records;

use common::{s3_config, unique_prefix};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cloud_store_on_seaweedfs_meets_the_backend_contract() {
    let Some(cfg) = s3_config("cloud_store_on_seaweedfs_meets_the_backend_contract") else {
        return;
    };
    let base = cfg.connect().await.expect("connect and probe");
    store_testkit::backend::run_all(|| {
        let store = base.clone().with_prefix(&unique_prefix("backend")).unwrap();
        async move { store }
    })
    .await
    .assert_all_ran();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn records_over_cloud_store_pass_the_record_conformance_suite() {
    let Some(cfg) = s3_config("records_over_cloud_store_pass_the_record_conformance_suite") else {
        return;
    };
    let base = cfg.connect().await.expect("connect and probe");
    store_testkit::records::run_all(|| {
        let store = base.clone().with_prefix(&unique_prefix("records")).unwrap();
        async move { Records::new(store) }
    })
    .await;
}

#[tokio::test]
async fn probe_reports_conditional_writes_enforced_on_seaweedfs() {
    let Some(cfg) = s3_config("probe_reports_conditional_writes_enforced_on_seaweedfs") else {
        return;
    };
    let store = cfg.with_prefix(unique_prefix("probe")).build().unwrap();
    assert!(!store.capabilities().update, "unprobed stores must not claim CAS");
    let found = store.probe().await.unwrap();
    assert!(found.create && found.update, "{found:?}");
    let caps = store.capabilities();
    assert!(caps.create && caps.update && caps.shared && caps.streaming_writes);
    // The probe cleaned up after itself and never shows in listings.
    assert!(store.list_keys("").await.unwrap().is_empty());
}

#[tokio::test]
async fn wrong_credentials_are_refused_by_the_server() {
    let Some(cfg) = s3_config("wrong_credentials_are_refused_by_the_server") else {
        return;
    };
    let (id, _) = cfg.credentials.clone().unwrap();
    let store = cfg.with_credentials(id, "not-the-secret").build().unwrap();
    let err = store.probe().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Backend, "{err}");
    let err = store
        .put(
            &Key::new("k").unwrap(),
            Bytes::from_static(b"x"),
            PutOptions::default(),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("put \"k\""), "{err}");
}

#[tokio::test]
async fn objects_written_by_other_tools_can_be_read_and_updated() {
    let Some(cfg) = s3_config("objects_written_by_other_tools_can_be_read_and_updated") else {
        return;
    };
    let prefix = unique_prefix("foreign");
    let raw = cfg.object_store().unwrap();
    let store = cfg.with_prefix(prefix.clone()).connect().await.unwrap();
    let key = Key::new("from/elsewhere").unwrap();
    let leaf = match store.settings().layout {
        Layout::Flat => "",
        Layout::Nested => "/.store-object",
    };
    raw.put(
        &Path::from(format!("{prefix}/from/elsewhere{leaf}")),
        PutPayload::from_static(b"plain"),
    )
    .await
    .unwrap();
    let meta = store.head(&key).await.unwrap();
    assert_eq!(store.get_bytes(&key).await.unwrap(), "plain");
    let next = store
        .put(&key, "ours".into(), PutOptions::update(meta.version.clone()))
        .await
        .unwrap();
    assert_ne!(next.version, meta.version);
    let stale = store
        .put(&key, "again".into(), PutOptions::update(meta.version))
        .await
        .unwrap_err();
    assert!(stale.is_conflict(), "{stale}");
    assert_eq!(store.list_keys("").await.unwrap(), vec![key]);
}

#[tokio::test]
async fn identical_content_gets_a_new_version_and_stale_cas_fails() {
    let Some(cfg) = s3_config("identical_content_gets_a_new_version_and_stale_cas_fails") else {
        return;
    };
    let store: CloudStore = cfg.with_prefix(unique_prefix("aba")).connect().await.unwrap();
    let key = Key::new("same").unwrap();
    let a = store.put_bytes(&key, "same bytes").await.unwrap().version;
    let b = store.put_bytes(&key, "same bytes").await.unwrap().version;
    assert_ne!(a, b, "re-putting identical content must give a new version");
    // The ETag is the same for both, yet an update from the older version is refused.
    let err = store
        .put(&key, "next".into(), PutOptions::update(a))
        .await
        .unwrap_err();
    assert!(err.is_conflict(), "{err}");
    store
        .put(&key, "next".into(), PutOptions::update(b))
        .await
        .unwrap();
}
