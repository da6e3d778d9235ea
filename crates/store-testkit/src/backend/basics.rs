//! Checks of single operations: puts and gets, versions, conditional writes, ranges,
//! listings, unusual keys; and the helpers every check uses.

use super::*;

pub(super) fn key(s: &str) -> Key {
    Key::new(s).unwrap_or_else(|e| panic!("test key {s:?} is invalid: {e}"))
}

pub(super) async fn get_all(b: &dyn Backend, k: &Key) -> Bytes {
    match b.get_bytes(k).await {
        Ok(data) => data,
        Err(e) => panic!("get {k}: unexpected error: {e}"),
    }
}

pub(super) async fn put(b: &dyn Backend, k: &Key, data: impl Into<Bytes>) -> Meta {
    match b.put(k, data.into(), PutOptions::default()).await {
        Ok(m) => m,
        Err(e) => panic!("put {k}: unexpected error: {e}"),
    }
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

pub(super) async fn listed(b: &dyn Backend, opts: ListOptions) -> Vec<String> {
    match b.list(opts.clone()).try_collect::<Vec<_>>().await {
        Ok(metas) => metas.into_iter().map(|m| m.key.to_string()).collect(),
        Err(e) => panic!("list {opts:?}: unexpected error: {e}"),
    }
}

/// Deterministic, position-dependent content, so a misplaced chunk is noticed.
pub(super) fn pattern(len: usize, seed: u8) -> Bytes {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ ((i >> 8) as u8))
        .collect()
}

pub(super) async fn put_get_round_trip(b: Arc<dyn Backend>) {
    for (name, data) in [
        ("empty", Bytes::new()),
        ("one", Bytes::from_static(b"x")),
        ("binary", Bytes::from((0..=255u8).collect::<Vec<_>>())),
        ("one-mib", pattern(1 << 20, 7)),
    ] {
        let k = key(&format!("round-trip/{name}"));
        let meta = put(&*b, &k, data.clone()).await;
        assert_eq!(meta.key, k, "put {k}: returned meta names another key");
        assert_eq!(meta.size, data.len() as u64, "put {k}: returned size");
        let obj = b
            .get(&k, GetOptions::default())
            .await
            .unwrap_or_else(|e| panic!("get {k}: {e}"));
        assert_eq!(
            obj.meta.version, meta.version,
            "get {k}: version differs from the put's"
        );
        assert_eq!(obj.range, 0..data.len() as u64, "get {k}: range of a whole read");
        let got = obj.bytes().await.unwrap_or_else(|e| panic!("get {k}: body: {e}"));
        assert!(
            got == data,
            "get {k}: content differs from what was put ({} vs {} bytes)",
            got.len(),
            data.len()
        );
    }
}

pub(super) async fn overwrite_replaces_and_changes_version(b: Arc<dyn Backend>) {
    let k = key("overwrite");
    let m1 = put(&*b, &k, "first version, longer").await;
    let m2 = put(&*b, &k, "second").await;
    assert_ne!(m1.version, m2.version, "overwrite {k}: version did not change");
    assert_eq!(
        get_all(&*b, &k).await,
        "second",
        "overwrite {k}: old content still visible"
    );
    assert_eq!(
        b.head(&k).await.unwrap().size,
        6,
        "overwrite {k}: size not updated"
    );
    let m3 = put(&*b, &k, "second").await;
    assert_ne!(
        m2.version, m3.version,
        "rewriting identical content must still make a new version"
    );
}

pub(super) async fn head_agrees_with_get(b: Arc<dyn Backend>) {
    let k = key("dir/head");
    let m = put(&*b, &k, "12345").await;
    let h = b.head(&k).await.unwrap_or_else(|e| panic!("head {k}: {e}"));
    assert_eq!(
        (h.key.clone(), h.size, h.version.clone()),
        (k.clone(), 5, m.version.clone())
    );
    let g = b.get(&k, GetOptions::default()).await.unwrap();
    assert_eq!(g.meta.version, h.version);
    assert_eq!(g.meta.size, h.size);
}

pub(super) async fn missing_key_errors_name_the_key(b: Arc<dyn Backend>) {
    let k = key("no/such/key");
    let e = expect_kind(
        b.get(&k, GetOptions::default()).await,
        ErrorKind::NotFound,
        "get of a missing key",
    );
    assert!(
        e.to_string().contains("no/such/key"),
        "error does not name the key: {e}"
    );
    let e = expect_kind(b.head(&k).await, ErrorKind::NotFound, "head of a missing key");
    assert!(
        e.to_string().contains("no/such/key"),
        "error does not name the key: {e}"
    );
    let e = expect_kind(
        b.delete(&k, DeleteOptions::default()).await,
        ErrorKind::NotFound,
        "delete of a missing key",
    );
    assert!(
        e.to_string().contains("no/such/key"),
        "error does not name the key: {e}"
    );
    // A parent "directory" of an existing key is not itself an object.
    put(&*b, &key("parent/child"), "x").await;
    expect_kind(
        b.head(&key("parent")).await,
        ErrorKind::NotFound,
        "head of a key's parent",
    );
    expect_kind(
        b.get(&key("parent"), GetOptions::default()).await,
        ErrorKind::NotFound,
        "get of a key's parent",
    );
}

pub(super) async fn create_is_exclusive(b: Arc<dyn Backend>) {
    let k = key("create/once");
    let m = b
        .create(&k, "first")
        .await
        .unwrap_or_else(|e| panic!("create {k} when absent: {e}"));
    let e = expect_kind(
        b.create(&k, "second").await,
        ErrorKind::AlreadyExists,
        "create of an existing key",
    );
    match e {
        Error::AlreadyExists { version, .. } => {
            assert_eq!(
                version, m.version,
                "AlreadyExists must carry the existing version"
            )
        }
        other => panic!("{other}"),
    }
    assert_eq!(
        get_all(&*b, &k).await,
        "first",
        "a failed create changed the object"
    );
    b.delete(&k, DeleteOptions::default()).await.unwrap();
    b.create(&k, "again")
        .await
        .unwrap_or_else(|e| panic!("create {k} after delete: {e}"));
    assert_eq!(get_all(&*b, &k).await, "again");
}

pub(super) async fn update_is_compare_and_swap(b: Arc<dyn Backend>) {
    let k = key("cas");
    let absent = expect_kind(
        b.update(&k, "x", Version::from(1)).await,
        ErrorKind::NotFound,
        "update of an absent key",
    );
    assert!(absent.to_string().contains("cas"), "{absent}");
    let v1 = put(&*b, &k, "one").await.version;
    let v2 = b
        .update(&k, "two", v1.clone())
        .await
        .unwrap_or_else(|e| panic!("update from current: {e}"))
        .version;
    assert_ne!(v1, v2);
    let e = expect_kind(
        b.update(&k, "stale", v1.clone()).await,
        ErrorKind::Conflict,
        "update from a stale version",
    );
    if let Error::Conflict { expected, actual, .. } = &e {
        assert_eq!(expected.as_ref(), Some(&v1), "Conflict.expected");
        if let Some(actual) = actual {
            assert_eq!(
                actual, &v2,
                "Conflict.actual must be the current version when known"
            );
        }
    }
    expect_kind(
        b.update(&k, "bogus", Version::empty()).await,
        ErrorKind::Conflict,
        "update from the empty version",
    );
    assert_eq!(
        get_all(&*b, &k).await,
        "two",
        "a failed update changed the object"
    );
}

pub(super) async fn conditional_delete(b: Arc<dyn Backend>) {
    let k = key("cond-delete");
    let v1 = put(&*b, &k, "one").await.version;
    let v2 = put(&*b, &k, "two").await.version;
    expect_kind(
        b.delete_if(&k, v1).await,
        ErrorKind::Conflict,
        "delete with a stale version",
    );
    assert_eq!(
        get_all(&*b, &k).await,
        "two",
        "a failed conditional delete removed the object"
    );
    b.delete_if(&k, v2.clone())
        .await
        .unwrap_or_else(|e| panic!("delete with the current version: {e}"));
    expect_kind(b.head(&k).await, ErrorKind::NotFound, "head after delete");
    expect_kind(
        b.delete_if(&k, v2).await,
        ErrorKind::NotFound,
        "conditional delete of an absent key",
    );
    assert!(!b.delete_if_exists(&k).await.unwrap());
    put(&*b, &k, "three").await;
    assert!(b.delete_if_exists(&k).await.unwrap());
}

pub(super) async fn versions_never_repeat(b: Arc<dyn Backend>) {
    let k = key("aba");
    let mut seen = HashSet::new();
    for round in 0..50 {
        // Same content, same size, every time: the version must still be new.
        let m = if round % 2 == 0 {
            b.create(&k, "same")
                .await
                .unwrap_or_else(|e| panic!("create round {round}: {e}"))
        } else {
            put(&*b, &k, "same").await
        };
        assert!(
            seen.insert(m.version.clone()),
            "version {} repeated for {k} in round {round}",
            m.version
        );
        if round % 2 == 1 {
            b.delete(&k, DeleteOptions::default()).await.unwrap();
        }
    }
}

pub(super) async fn range_reads(b: Arc<dyn Backend>) {
    let k = key("ranges");
    let data = pattern(1000, 3);
    put(&*b, &k, data.clone()).await;
    let cases: [(ByteRange, std::ops::Range<usize>); 6] = [
        (ByteRange::Bounded(10..20), 10..20),
        (ByteRange::Bounded(990..2000), 990..1000),
        (ByteRange::Bounded(1000..1000), 1000..1000),
        (ByteRange::From(500), 500..1000),
        (ByteRange::Suffix(100), 900..1000),
        (ByteRange::Suffix(5000), 0..1000),
    ];
    for (range, want) in cases {
        let obj = b
            .get(&k, GetOptions::default().with_range(range.clone()))
            .await
            .unwrap_or_else(|e| panic!("get {k} {range:?}: {e}"));
        assert_eq!(
            obj.meta.size, 1000,
            "{range:?}: meta.size must be the whole object's"
        );
        assert_eq!(
            obj.range,
            want.start as u64..want.end as u64,
            "{range:?}: returned range"
        );
        assert!(
            obj.bytes().await.unwrap() == data.slice(want.clone()),
            "{range:?}: content"
        );
    }
    let e = expect_kind(
        b.get(&k, GetOptions::default().with_range(1001..1002)).await,
        ErrorKind::InvalidInput,
        "range starting past the end",
    );
    assert!(
        e.to_string().contains("ranges"),
        "error does not name the key: {e}"
    );
    #[allow(clippy::reversed_empty_ranges)]
    let inverted = ByteRange::Bounded(20..10);
    expect_kind(
        b.get(&k, GetOptions::default().with_range(inverted)).await,
        ErrorKind::InvalidInput,
        "inverted range",
    );
}

pub(super) async fn conditional_get(b: Arc<dyn Backend>) {
    let k = key("cond-get");
    let v1 = put(&*b, &k, "one").await.version;
    let v2 = put(&*b, &k, "two").await.version;
    let ok = b
        .get(&k, GetOptions::default().with_if_match(v2.clone()))
        .await
        .unwrap();
    assert_eq!(ok.bytes().await.unwrap(), "two");
    expect_kind(
        b.get(&k, GetOptions::default().with_if_match(v1.clone())).await,
        ErrorKind::Conflict,
        "if_match stale",
    );
    expect_kind(
        b.get(&k, GetOptions::default().with_if_none_match(v2.clone()))
            .await,
        ErrorKind::NotModified,
        "if_none_match current",
    );
    let changed = b
        .get(&k, GetOptions::default().with_if_none_match(v1))
        .await
        .unwrap();
    assert_eq!(changed.meta.version, v2);
}

pub(super) async fn list_is_ordered_and_filtered(b: Arc<dyn Backend>) {
    let keys = [
        "b", "a/c", "a/b/c", "a", "ab", "a/b", "c/d/e", "a-z", "a.b", "bb", "a0",
    ];
    for k in keys {
        put(&*b, &key(k), k.to_owned()).await;
    }
    let mut all: Vec<String> = keys.iter().map(|s| s.to_string()).collect();
    all.sort();
    assert_eq!(
        listed(&*b, ListOptions::default()).await,
        all,
        "full listing must be sorted"
    );
    let prefixed = |p: &str| {
        all.iter()
            .filter(|k| k.starts_with(p))
            .cloned()
            .collect::<Vec<_>>()
    };
    for p in ["a", "a/", "a/b", "ab", "b", "c/d/", "zzz", ""] {
        assert_eq!(
            listed(&*b, ListOptions::default().with_prefix(p)).await,
            prefixed(p),
            "prefix {p:?}"
        );
    }
    for after in ["a", "a/b", "a/b/d", "ab", "0", "zzz", "a\u{7f}"] {
        let want: Vec<_> = all.iter().filter(|k| k.as_str() > after).cloned().collect();
        let got = listed(&*b, ListOptions::default().with_start_after(after)).await;
        assert_eq!(got, want, "start_after {after:?} (exclusive)");
    }
    let got = listed(
        &*b,
        ListOptions::default().with_prefix("a/").with_start_after("a/b"),
    )
    .await;
    assert_eq!(got, ["a/b/c", "a/c"], "prefix a/ with start_after a/b");
    let got = listed(
        &*b,
        ListOptions::default().with_prefix("a/").with_start_after("0"),
    )
    .await;
    assert_eq!(got, prefixed("a/"), "start_after before the prefix");
    let metas: Vec<Meta> = b
        .list(ListOptions::default().with_prefix("c/"))
        .try_collect()
        .await
        .unwrap();
    assert_eq!(metas.len(), 1);
    assert_eq!(
        (metas[0].size, &metas[0].version),
        (5, &b.head(&key("c/d/e")).await.unwrap().version)
    );
}

pub(super) async fn list_many_keys_pages_in_order(b: Arc<dyn Backend>) {
    // More keys than any reasonable page size; written out of order.
    let n = 2500usize;
    let mut keys: Vec<String> = (0..n).map(|i| format!("many/{:05}", (i * 7919) % n)).collect();
    let store = Arc::clone(&b);
    let batches: Vec<Vec<String>> = keys.chunks(250).map(|c| c.to_vec()).collect();
    let mut tasks = Vec::new();
    for batch in batches {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            for k in batch {
                put(&*store, &key(&k), Bytes::new()).await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    keys.sort();
    assert_eq!(listed(&*b, ListOptions::default()).await, keys);
    let after = &keys[1234];
    assert_eq!(
        listed(&*b, ListOptions::default().with_start_after(after.clone())).await,
        keys[1235..].to_vec()
    );
}

pub(super) async fn unusual_keys_round_trip(b: Arc<dyn Backend>) {
    let odd = [
        "with space/and tab-less name",
        "ünïcödé/日本語/😀",
        "percent%20encoded%2F",
        "...",
        "..a/b..",
        ".hidden/.file",
        "quote\"and'apostrophe",
        "a+b=c&d?e#f",
        "colon:semi;comma,",
    ];
    for k in odd {
        put(&*b, &key(k), format!("content of {k}")).await;
    }
    for k in odd {
        assert_eq!(
            get_all(&*b, &key(k)).await,
            format!("content of {k}"),
            "round trip of {k:?}"
        );
    }
    let mut want: Vec<String> = odd.iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(listed(&*b, ListOptions::default()).await, want);
    let long = "k".repeat(200) + "/" + &"l".repeat(200);
    put(&*b, &key(&long), "long").await;
    assert_eq!(get_all(&*b, &key(&long)).await, "long");
}
