//! Checks of `list_keys`, and the corrupt-record listing check backends call themselves.

use super::*;

pub(super) async fn list_keys_matches_globs(s: Arc<dyn RecordStore>) {
    let keys = [
        "logs/2025-12-31",
        "logs/2026-01-01",
        "logs/2026-01-02/part",
        "logs/2026x",
        "logs/a",
        "logs/b",
        "logs/c",
        "logs/lit*",
        "logs/litx",
        "logs/x",
        "other/a",
        "other/b/c",
        "top",
    ];
    // Written out of order: listing must sort.
    for k in keys.iter().rev() {
        put(&*s, rec(&key(k), k)).await;
    }
    let all: Vec<&str> = keys.to_vec();
    let cases: &[(&str, &[&str])] = &[
        ("**", &all),
        ("*", &all),
        ("logs/2026-*", &["logs/2026-01-01", "logs/2026-01-02/part"]),
        ("logs/*", &all[..10]),
        ("*/c", &["logs/c", "other/b/c"]),
        ("other/**", &["other/a", "other/b/c"]),
        ("logs/?", &["logs/a", "logs/b", "logs/c", "logs/x"]),
        ("logs/[abc]", &["logs/a", "logs/b", "logs/c"]),
        ("logs/[a-b]", &["logs/a", "logs/b"]),
        ("logs/[!a-l]", &["logs/x"]),
        ("{top,other/a}", &["other/a", "top"]),
        ("logs/{a,x}", &["logs/a", "logs/x"]),
        ("logs/lit\\*", &["logs/lit*"]),
        ("logs/lit?", &["logs/lit*", "logs/litx"]),
        ("logs", &[]),
        ("top", &["top"]),
        ("to", &[]),
        ("nothing/*", &[]),
    ];
    for (pattern, want) in cases {
        assert_eq!(listed(&*s, pattern).await, *want, "list_keys {pattern:?}");
    }
}

pub(super) async fn list_keys_rejects_invalid_patterns(s: Arc<dyn RecordStore>) {
    put(&*s, rec(&key("x"), "x")).await;
    for bad in ["[", "logs/{a,b", "a[z-a]"] {
        let e = match s.list_keys(bad).await {
            Ok(stream) => match stream.try_collect::<Vec<_>>().await {
                Ok(keys) => panic!("list_keys {bad:?}: expected InvalidPattern, got {keys:?}"),
                Err(e) => e,
            },
            Err(e) => e,
        };
        match &e {
            Error::InvalidPattern { pattern, .. } => assert_eq!(pattern, bad, "InvalidPattern names it"),
            other => panic!("list_keys {bad:?}: expected InvalidPattern, got {other}"),
        }
        assert!(e.to_string().contains(bad), "{e}");
    }
}

/// Checks that one record that cannot be decoded does not end a listing: with records `a`
/// and `c` written through `store` and garbage planted at `b` by `plant_garbage` (through
/// the raw backend underneath), `list_keys("*")` yields `Ok(a)`, then one `Corrupt` error
/// naming `b` and the operation `list_keys`, then `Ok(c)`, in that order.
///
/// Not part of [`CHECKS`]: the suite sees only the `RecordStore` trait, and planting
/// garbage needs the store underneath. Call it with a fresh, empty store.
///
/// ```no_run
/// # use store_core::{Backend, BackendExt, Key, RecordStore};
/// // In store-record's tests, `records` is `Records::new(raw.clone())` over a fresh store.
/// # async fn demo(records: impl RecordStore, raw: impl Backend) {
/// store_testkit::records::listing_goes_on_past_a_corrupt_record(&records, |k: Key| async move {
///     raw.put_bytes(&k, "not a record").await.unwrap();
/// })
/// .await;
/// # }
/// ```
pub async fn listing_goes_on_past_a_corrupt_record<R, P, Fut>(store: &R, plant_garbage: P)
where
    R: RecordStore,
    P: FnOnce(Key) -> Fut,
    Fut: Future<Output = ()>,
{
    let check = async {
        put(store, rec(&key("a"), "a")).await;
        plant_garbage(key("b")).await;
        put(store, rec(&key("c"), "c")).await;
        let stream = store
            .list_keys("*")
            .await
            .unwrap_or_else(|e| panic!("list_keys \"*\": {e}"));
        let items: Vec<store_core::Result<Key>> = futures::StreamExt::collect(stream).await;
        let shown: Vec<String> = items
            .iter()
            .map(|item| match item {
                Ok(k) => format!("Ok({k})"),
                Err(e) => format!("Err({e})"),
            })
            .collect();
        let [Ok(a), Err(b), Ok(c)] = &items[..] else {
            panic!("list_keys \"*\" over a, corrupt b, c: expected Ok(a), Err(b), Ok(c), got {shown:?}");
        };
        assert_eq!((a.as_str(), c.as_str()), ("a", "c"), "{shown:?}");
        assert_eq!(b.kind(), ErrorKind::Corrupt, "{b}");
        let msg = b.to_string();
        assert!(
            msg.contains("\"b\"") && msg.contains("list_keys"),
            "the error must name the key and the operation: {msg}"
        );
    };
    if tokio::time::timeout(CHECK_TIME_LIMIT, check).await.is_err() {
        panic!("listing_goes_on_past_a_corrupt_record: timed out after {CHECK_TIME_LIMIT:?}");
    }
}
