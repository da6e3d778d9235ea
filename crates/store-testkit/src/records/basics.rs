//! Checks of single record operations, and the helpers every check uses.

use super::*;

pub(super) fn key(s: &str) -> Key {
    Key::new(s).unwrap_or_else(|e| panic!("test key {s:?} is invalid: {e}"))
}

pub(super) fn rec(k: &Key, value: &str) -> Record {
    Record::new(k.clone(), Bytes::copy_from_slice(value.as_bytes()))
}

pub(super) fn past() -> SystemTime {
    SystemTime::now() - Duration::from_secs(60)
}

pub(super) fn hour_ahead() -> SystemTime {
    SystemTime::now() + Duration::from_secs(3600)
}

pub(super) fn expect_kind<T: std::fmt::Debug>(
    r: store_core::Result<T>,
    kind: ErrorKind,
    what: &str,
) -> Error {
    match r {
        Ok(v) => panic!("{what}: expected {kind:?}, got Ok({v:?})"),
        Err(e) if e.kind() == kind => e,
        Err(e) => panic!("{what}: expected {kind:?}, got {:?}: {e}", e.kind()),
    }
}

/// Expiries equal to within a second (stores may keep them coarsely).
pub(super) fn same_expiry(a: Option<SystemTime>, b: Option<SystemTime>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => {
            let d = a
                .duration_since(b)
                .or_else(|_| b.duration_since(a))
                .unwrap_or_default();
            d <= Duration::from_secs(1)
        }
        _ => false,
    }
}

/// Puts `r` and returns it as stored: with the new version.
pub(super) async fn put(s: &dyn RecordStore, r: Record) -> Record {
    let version = s
        .put(&r)
        .await
        .unwrap_or_else(|e| panic!("put {}: unexpected error: {e}", r.key));
    Record { version, ..r }
}

pub(super) async fn get(s: &dyn RecordStore, k: &Key) -> Record {
    s.get(k)
        .await
        .unwrap_or_else(|e| panic!("get {k}: unexpected error: {e}"))
}

pub(super) async fn listed(s: &dyn RecordStore, pattern: &str) -> Vec<String> {
    let stream = s
        .list_keys(pattern)
        .await
        .unwrap_or_else(|e| panic!("list_keys {pattern:?}: {e}"));
    match stream.try_collect::<Vec<Key>>().await {
        Ok(keys) => keys.into_iter().map(|k| k.to_string()).collect(),
        Err(e) => panic!("list_keys {pattern:?}: error while listing: {e}"),
    }
}

pub(super) fn spawn_wait(
    s: &Arc<dyn RecordStore>,
    k: &Key,
    v: &Version,
) -> tokio::task::JoinHandle<Result<store_core::Result<Version>, tokio::time::error::Elapsed>> {
    let (s, k, v) = (Arc::clone(s), k.clone(), v.clone());
    tokio::spawn(async move { tokio::time::timeout(WAIT_LIMIT, s.wait_for_version_change(&k, &v)).await })
}

// ---------------------------------------------------------------------------------------
// Single operations.

pub(super) async fn create_then_get_round_trips(s: Arc<dyn RecordStore>) {
    for (name, value, expiry) in [
        ("empty", Bytes::new(), None),
        ("text", Bytes::from_static(b"hello"), None),
        ("binary", Bytes::from((0..=255u8).collect::<Vec<_>>()), None),
        ("expiring", Bytes::from_static(b"lease"), Some(hour_ahead())),
    ] {
        let k = key(&format!("round-trip/{name}"));
        let mut r = Record::new(k.clone(), value.clone());
        r.expires_at = expiry;
        let v = s.create(&r).await.unwrap_or_else(|e| panic!("create {k}: {e}"));
        assert!(!v.is_empty(), "create {k}: returned the empty version");
        let got = get(&*s, &k).await;
        assert_eq!(got.key, k, "get {k}: record names another key");
        assert_eq!(got.value, value, "get {k}: value differs from the created one");
        assert_eq!(got.version, v, "get {k}: version differs from the create's");
        assert!(
            same_expiry(got.expires_at, expiry),
            "get {k}: expiry {:?}, created with {expiry:?}",
            got.expires_at
        );
    }
}

pub(super) async fn create_existing_is_already_exists_with_version(s: Arc<dyn RecordStore>) {
    let k = key("create/once");
    let v1 = s.create(&rec(&k, "first")).await.unwrap();
    let e = expect_kind(
        s.create(&rec(&k, "second")).await,
        ErrorKind::AlreadyExists,
        "create of an existing key",
    );
    match &e {
        Error::AlreadyExists { version, .. } => {
            assert_eq!(version, &v1, "AlreadyExists must carry the existing version")
        }
        other => panic!("{other}"),
    }
    assert!(
        e.to_string().contains("create/once"),
        "error does not name the key: {e}"
    );
    assert_eq!(
        get(&*s, &k).await.value,
        "first",
        "a failed create changed the record"
    );
    s.delete(&k).await.unwrap();
    s.create(&rec(&k, "again"))
        .await
        .unwrap_or_else(|e| panic!("create {k} after delete: {e}"));
    assert_eq!(get(&*s, &k).await.value, "again");
}

pub(super) async fn missing_key_errors_name_the_key(s: Arc<dyn RecordStore>) {
    let k = key("no/such/record");
    let named = |e: Error, what: &str| {
        assert!(
            e.to_string().contains("no/such/record"),
            "{what}: error does not name the key: {e}"
        )
    };
    named(expect_kind(s.get(&k).await, ErrorKind::NotFound, "get"), "get");
    named(
        expect_kind(s.delete(&k).await, ErrorKind::NotFound, "delete"),
        "delete",
    );
    named(
        expect_kind(
            s.cas_by_version(&rec(&k, "x").with_version(Version::from(1)))
                .await,
            ErrorKind::NotFound,
            "cas_by_version of an absent key",
        ),
        "cas_by_version",
    );
    named(
        expect_kind(
            tokio::time::timeout(WAIT_LIMIT, s.wait_for_version_change(&k, &Version::from(1)))
                .await
                .expect("wait on an absent key must return at once"),
            ErrorKind::NotFound,
            "wait_for_version_change on an absent key",
        ),
        "wait_for_version_change",
    );
    // A parent "directory" of an existing record is not itself a record.
    put(&*s, rec(&key("parent/child"), "x")).await;
    expect_kind(
        s.get(&key("parent")).await,
        ErrorKind::NotFound,
        "get of a key's parent",
    );
}

pub(super) async fn get_many_is_aligned_with_the_input(s: Arc<dyn RecordStore>) {
    let a = put(&*s, rec(&key("many/a"), "A")).await;
    let c = put(&*s, rec(&key("many/c"), "C")).await;
    put(&*s, rec(&key("many/gone"), "G").with_expiry(past())).await;
    let keys = [
        key("many/c"),
        key("many/b"),
        key("many/a"),
        key("many/gone"),
        key("many/c"),
    ];
    let got = s.get_many(&keys).await.expect("get_many");
    assert_eq!(got.len(), keys.len(), "get_many must return one entry per key");
    let summary: Vec<Option<(String, Version)>> = got
        .into_iter()
        .map(|r| r.map(|r| (String::from_utf8_lossy(&r.value).into_owned(), r.version)))
        .collect();
    assert_eq!(
        summary,
        [
            Some(("C".to_owned(), c.version.clone())),
            None,
            Some(("A".to_owned(), a.version)),
            None,
            Some(("C".to_owned(), c.version)),
        ],
        "get_many [c, missing, a, expired, c]"
    );
    assert!(s.get_many(&[]).await.expect("get_many of nothing").is_empty());
}

pub(super) async fn put_overwrites_and_ignores_the_input_version(s: Arc<dyn RecordStore>) {
    let k = key("put/over");
    let absent = put(&*s, rec(&k, "one").with_version(Version::parse("bogus"))).await;
    assert!(!absent.version.is_empty(), "put returned the empty version");
    assert_eq!(absent.value, "one");
    let second = put(&*s, rec(&k, "two").with_version(Version::parse("bogus"))).await;
    assert_ne!(
        second.version, absent.version,
        "overwrite did not change the version"
    );
    let got = get(&*s, &k).await;
    assert_eq!(
        (got.value, got.version),
        (Bytes::from_static(b"two"), second.version.clone())
    );
    let same = put(&*s, rec(&k, "two")).await;
    assert_ne!(
        same.version, second.version,
        "identical content must still get a new version"
    );
}

pub(super) async fn put_many_returns_aligned_versions(s: Arc<dyn RecordStore>) {
    let keys = [key("pm/x"), key("pm/y"), key("pm/z")];
    let versions = s
        .put_many(&keys.iter().map(|k| rec(k, k.as_str())).collect::<Vec<_>>())
        .await
        .expect("put_many");
    assert_eq!(versions.len(), 3, "put_many must return one version per record");
    for (k, v) in keys.iter().zip(&versions) {
        let got = get(&*s, k).await;
        assert_eq!(&got.version, v, "put_many version of {k}");
        assert_eq!(got.value, k.as_str(), "put_many value of {k}");
    }
    assert!(
        s.put_many(&Vec::new())
            .await
            .expect("put_many of nothing")
            .is_empty()
    );
}

pub(super) async fn cas_by_version_replaces_value_and_expiry(s: Arc<dyn RecordStore>) {
    let k = key("cas/one");
    let first = put(&*s, rec(&k, "one").with_expiry(hour_ahead())).await;
    let second = s
        .cas_by_version(&rec(&k, "two").with_version(first.version.clone()))
        .await
        .unwrap_or_else(|e| panic!("cas from the current version: {e}"));
    assert_ne!(second, first.version, "cas did not change the version");
    let got = get(&*s, &k).await;
    assert_eq!(got.value, "two");
    assert_eq!(got.version, second, "cas returned a version get does not show");
    assert_eq!(got.expires_at, None, "cas without expiry must remove the expiry");

    let e = expect_kind(
        s.cas_by_version(&rec(&k, "stale").with_version(first.version.clone()))
            .await,
        ErrorKind::Conflict,
        "cas from a stale version",
    );
    assert!(
        e.to_string().contains("cas/one"),
        "error does not name the key: {e}"
    );
    if let Error::Conflict { expected, actual, .. } = &e {
        assert_eq!(expected.as_ref(), Some(&first.version), "Conflict.expected");
        if let Some(actual) = actual {
            assert_eq!(actual, &second, "Conflict.actual must be the current version");
        }
    }
    expect_kind(
        s.cas_by_version(&rec(&k, "bogus")).await,
        ErrorKind::Conflict,
        "cas from the empty version",
    );
    assert_eq!(get(&*s, &k).await.value, "two", "a failed cas changed the record");

    let at = hour_ahead();
    let third = s
        .cas_by_version(&rec(&k, "three").with_version(second).with_expiry(at))
        .await
        .unwrap();
    let got = get(&*s, &k).await;
    assert!(
        same_expiry(got.expires_at, Some(at)),
        "cas must set the new expiry: {:?} vs {at:?}",
        got.expires_at
    );
    assert_eq!(got.version, third);
}

pub(super) async fn delete_removes_the_record(s: Arc<dyn RecordStore>) {
    let k = key("del/me");
    put(&*s, rec(&k, "x")).await;
    s.delete(&k).await.unwrap_or_else(|e| panic!("delete {k}: {e}"));
    expect_kind(s.get(&k).await, ErrorKind::NotFound, "get after delete");
    expect_kind(s.delete(&k).await, ErrorKind::NotFound, "second delete");
    assert!(
        listed(&*s, "del/*").await.is_empty(),
        "a deleted key is still listed"
    );
}

pub(super) async fn versions_never_repeat(s: Arc<dyn RecordStore>) {
    let k = key("aba");
    let mut seen = HashSet::new();
    let mut current: Option<Version> = None;
    for round in 0..30 {
        let v = match round % 3 {
            0 => s
                .create(&rec(&k, "same"))
                .await
                .unwrap_or_else(|e| panic!("create round {round}: {e}")),
            1 => put(&*s, rec(&k, "same")).await.version,
            _ => {
                let from = current.clone().expect("a version from the previous round");
                s.cas_by_version(&rec(&k, "same").with_version(from))
                    .await
                    .unwrap_or_else(|e| panic!("cas round {round}: {e}"))
            }
        };
        assert!(
            seen.insert(v.clone()),
            "round {round}: version {v} was issued before for {k}"
        );
        current = Some(v);
        if round % 3 == 2 {
            s.delete(&k).await.unwrap();
            current = None;
        }
    }
}
