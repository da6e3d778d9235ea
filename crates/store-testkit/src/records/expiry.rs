//! Checks of expiry and of `wait_for_version_change`.

use super::*;

pub(super) async fn expired_records_are_absent_everywhere(s: Arc<dyn RecordStore>) {
    let k = key("expired/a");
    let r = put(&*s, rec(&k, "old").with_expiry(past())).await;
    expect_kind(s.get(&k).await, ErrorKind::NotFound, "get of an expired record");
    let many = s.get_many(std::slice::from_ref(&k)).await.unwrap();
    assert!(many[0].is_none(), "get_many shows an expired record");
    expect_kind(
        s.cas_by_version(&rec(&k, "new").with_version(r.version.clone()))
            .await,
        ErrorKind::NotFound,
        "cas on an expired record (even with its version)",
    );
    expect_kind(
        s.delete(&k).await,
        ErrorKind::NotFound,
        "delete of an expired record",
    );
    let waited = tokio::time::timeout(WAIT_LIMIT, s.wait_for_version_change(&k, &r.version))
        .await
        .expect("wait on an expired record must return at once");
    expect_kind(waited, ErrorKind::NotFound, "wait on an expired record");

    put(&*s, rec(&key("expired/b"), "old").with_expiry(past())).await;
    put(&*s, rec(&key("expired/live"), "live").with_expiry(hour_ahead())).await;
    assert_eq!(
        listed(&*s, "expired/*").await,
        ["expired/live"],
        "listing shows expired records"
    );

    let b = key("expired/b");
    let v = s
        .create(&rec(&b, "reborn"))
        .await
        .unwrap_or_else(|e| panic!("create over an expired record must succeed: {e}"));
    let got = get(&*s, &b).await;
    assert_eq!(
        (got.value, got.version, got.expires_at),
        (Bytes::from_static(b"reborn"), v, None)
    );

    // Writing an already-expired record over a live one makes it absent.
    let live = key("expired/live");
    put(&*s, rec(&live, "bye").with_expiry(past())).await;
    expect_kind(
        s.get(&live).await,
        ErrorKind::NotFound,
        "get after put with a past expiry",
    );
    assert_eq!(listed(&*s, "expired/*").await, ["expired/b"]);
}

pub(super) async fn expiry_passes_in_real_time(s: Arc<dyn RecordStore>) {
    const TTL: Duration = Duration::from_millis(1000);
    let soon = SystemTime::now() + TTL;
    let doomed = put(&*s, rec(&key("ttl/doomed"), "d").with_expiry(soon)).await;
    let renewed = put(&*s, rec(&key("ttl/renewed"), "r").with_expiry(soon)).await;
    let forever = put(&*s, rec(&key("ttl/forever"), "f").with_expiry(soon)).await;
    let waiter = spawn_wait(&s, &doomed.key, &doomed.version);
    s.cas_by_version(&renewed.clone().with_expiry(hour_ahead()))
        .await
        .expect("renew by cas");
    s.cas_by_version(&Record {
        expires_at: None,
        ..forever.clone()
    })
    .await
    .expect("cas to no expiry");
    assert_eq!(
        get(&*s, &doomed.key).await.value,
        "d",
        "record gone before its expiry"
    );
    assert!(
        !waiter.is_finished(),
        "wait returned before the record changed or expired"
    );

    let outcome = waiter
        .await
        .unwrap()
        .expect("a waiter must wake when the record expires");
    expect_kind(
        outcome,
        ErrorKind::NotFound,
        "wait on a record that expires while waiting",
    );
    // The waiter may wake a little before the store's own check agrees; give it the margin
    // a coarse store needs.
    tokio::time::sleep(Duration::from_millis(500)).await;
    expect_kind(s.get(&doomed.key).await, ErrorKind::NotFound, "get after expiry");
    assert_eq!(
        get(&*s, &renewed.key).await.value,
        "r",
        "a record renewed by cas expired"
    );
    assert_eq!(
        get(&*s, &forever.key).await.value,
        "f",
        "a record made permanent by cas expired"
    );
    assert_eq!(listed(&*s, "ttl/**").await, ["ttl/forever", "ttl/renewed"]);
    s.create(&rec(&doomed.key, "again"))
        .await
        .expect("create over a record that expired in real time");
}

// ---------------------------------------------------------------------------------------
// Waiting for changes.

pub(super) async fn wait_returns_at_once_when_already_changed(s: Arc<dyn RecordStore>) {
    let k = key("wait/now");
    let v1 = put(&*s, rec(&k, "1")).await.version;
    let v2 = put(&*s, rec(&k, "2")).await.version;
    let got = tokio::time::timeout(WAIT_LIMIT, s.wait_for_version_change(&k, &v1))
        .await
        .expect("wait from a stale version must return at once");
    assert_eq!(got.unwrap(), v2);
    let got = tokio::time::timeout(WAIT_LIMIT, s.wait_for_version_change(&k, &Version::empty()))
        .await
        .expect("wait from the empty version must return at once");
    assert_eq!(got.unwrap(), v2);
}

pub(super) async fn wait_wakes_on_put_cas_and_delete(s: Arc<dyn RecordStore>) {
    let k = key("wait/wake");
    let v1 = put(&*s, rec(&k, "1")).await.version;
    let waiting = spawn_wait(&s, &k, &v1);
    tokio::time::sleep(SETTLE).await;
    assert!(
        !waiting.is_finished(),
        "wait returned though the version had not changed"
    );
    let v2 = put(&*s, rec(&k, "2")).await.version;
    let got = waiting.await.unwrap().expect("wait was not woken by a put");
    assert_eq!(got.unwrap(), v2);

    let waiting = spawn_wait(&s, &k, &v2);
    tokio::time::sleep(SETTLE).await;
    let v3 = s.cas_by_version(&rec(&k, "3").with_version(v2)).await.unwrap();
    let got = waiting.await.unwrap().expect("wait was not woken by a cas");
    assert_eq!(got.unwrap(), v3);

    let waiting = spawn_wait(&s, &k, &v3);
    tokio::time::sleep(SETTLE).await;
    s.delete(&k).await.unwrap();
    let got = waiting.await.unwrap().expect("wait was not woken by a delete");
    expect_kind(got, ErrorKind::NotFound, "wait on a record deleted while waiting");

    // Replaced by an already-expired record: that is a deletion for the waiter.
    let v4 = put(&*s, rec(&k, "4")).await.version;
    let waiting = spawn_wait(&s, &k, &v4);
    tokio::time::sleep(SETTLE).await;
    put(&*s, rec(&k, "5").with_expiry(past())).await;
    let got = waiting
        .await
        .unwrap()
        .expect("wait was not woken by an expired put");
    expect_kind(
        got,
        ErrorKind::NotFound,
        "wait on a record replaced by an expired one",
    );
}

pub(super) async fn dropped_waits_leave_the_store_usable(s: Arc<dyn RecordStore>) {
    let k = key("wait/dropped");
    let v1 = put(&*s, rec(&k, "1")).await.version;
    for _ in 0..20 {
        let r = tokio::time::timeout(Duration::from_millis(2), s.wait_for_version_change(&k, &v1)).await;
        assert!(r.is_err(), "wait returned without a change");
    }
    let waiting = spawn_wait(&s, &k, &v1);
    tokio::time::sleep(SETTLE).await;
    let v2 = put(&*s, rec(&k, "2")).await.version;
    assert_eq!(
        waiting.await.unwrap().expect("live waiter not woken").unwrap(),
        v2
    );
}

pub(super) async fn concurrent_waiters_all_woken(s: Arc<dyn RecordStore>) {
    let k = key("wait/many");
    let v1 = put(&*s, rec(&k, "1")).await.version;
    let waiters: Vec<_> = (0..32).map(|_| spawn_wait(&s, &k, &v1)).collect();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let v2 = put(&*s, rec(&k, "2")).await.version;
    for (i, w) in waiters.into_iter().enumerate() {
        let got = w
            .await
            .unwrap()
            .unwrap_or_else(|_| panic!("waiter {i} of 32 was not woken"));
        assert_eq!(got.unwrap(), v2, "waiter {i}");
    }
}
