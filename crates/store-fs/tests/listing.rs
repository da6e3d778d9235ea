//! Listing yields keys in global byte order across nested directories, for random key sets
//! built from the characters that sort around `/` (`-` 0x2D, `.` 0x2E, `/` 0x2F, `0` 0x30).

use std::collections::BTreeSet;

use futures::TryStreamExt;
use proptest::prelude::*;
use store_core::{Backend, BackendExt, Key, ListOptions};
use store_fs::{Durability, FsStore};

fn segment() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![Just('a'), Just('-'), Just('.'), Just('0'), Just('b')],
        1..3,
    )
    .prop_map(|chars| chars.into_iter().collect::<String>())
    .prop_filter("not . or ..", |s| s != "." && s != "..")
}

fn key_text() -> impl Strategy<Value = String> {
    proptest::collection::vec(segment(), 1..4).prop_map(|segs| segs.join("/"))
}

#[derive(Debug, Clone)]
struct Case {
    keys: Vec<String>,
    deleted: Vec<usize>,
    prefix: String,
    after: Option<String>,
}

fn case() -> impl Strategy<Value = Case> {
    (
        proptest::collection::vec(key_text(), 1..24),
        proptest::collection::vec(any::<usize>(), 0..6),
        proptest::collection::vec(prop_oneof![Just('a'), Just('-'), Just('/'), Just('0')], 0..3),
        proptest::option::of(key_text()),
    )
        .prop_map(|(keys, deleted, prefix, after)| Case {
            keys,
            deleted,
            prefix: prefix.into_iter().collect(),
            after,
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_matches_a_sorted_model() {
    let dir = tempfile::tempdir().unwrap();
    let store = FsStore::builder(dir.path())
        .durability(Durability::None)
        .open()
        .await
        .unwrap();
    let n = std::sync::atomic::AtomicUsize::new(0);
    store_testkit::prop::check(
        "listing_matches_a_sorted_model",
        store_testkit::prop::cases(32),
        case(),
        |c| {
            let store = store.clone();
            let base = format!("c{}/", n.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
            async move {
                let mut model = BTreeSet::new();
                for k in &c.keys {
                    let full = format!("{base}{k}");
                    store
                        .put_bytes(&Key::new(full.as_str()).unwrap(), "x")
                        .await
                        .map_err(|e| e.to_string())?;
                    model.insert(full);
                }
                for d in &c.deleted {
                    if model.is_empty() {
                        break;
                    }
                    let victim = model.iter().nth(d % model.len()).cloned();
                    if let Some(v) = victim {
                        store
                            .delete_if_exists(&Key::new(v.as_str()).unwrap())
                            .await
                            .map_err(|e| e.to_string())?;
                        model.remove(&v);
                    }
                }
                let mut opts = ListOptions::default().with_prefix(format!("{base}{}", c.prefix));
                if let Some(a) = &c.after {
                    opts = opts.with_start_after(format!("{base}{a}"));
                }
                let want: Vec<String> = model.iter().filter(|k| opts.matches(k)).cloned().collect();
                let got: Vec<String> = store
                    .list(opts)
                    .map_ok(|m| m.key.to_string())
                    .try_collect()
                    .await
                    .map_err(|e| e.to_string())?;
                if got != want {
                    return Err(format!("listed {got:?}, model {want:?}"));
                }
                Ok(())
            }
        },
    )
    .await;
}
