//! Concurrent counters through `operate` and `operate_json`: on MemoryStore, on FsStore,
//! and from two OS processes sharing one FsStore directory.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use store_consistent::{Group, RetryPolicy};
use store_core::{Backend, BackendExt, Error, Result};
use store_fs::{Durability, FsStore};
use store_memory::MemoryStore;

/// Contended loops must not give up in a test, however slow the machine.
fn patient() -> RetryPolicy {
    RetryPolicy::default()
        .with_max_attempts(100_000)
        .with_backoff(Duration::from_micros(200), Duration::from_millis(20))
}

fn group(backend: Arc<dyn Backend>) -> Group {
    Group::new(backend, "shared/counters")
        .unwrap()
        .with_retry_policy(patient())
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Tally {
    hits: u64,
    last: String,
}

fn increment(old: &[u8]) -> Result<String> {
    let n: u64 = if old.is_empty() {
        0
    } else {
        std::str::from_utf8(old)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| Error::Corrupt {
                key: "counter".into(),
                reason: format!("not a decimal counter: {old:?}"),
            })?
    };
    Ok((n + 1).to_string())
}

/// `tasks` × `per_task` decimal increments of "counter" and `json_tasks` × 4 increments of
/// the `hits` field of "tally", all concurrently.
async fn hammer(backend: Arc<dyn Backend>, tasks: usize, per_task: usize, json_tasks: usize) {
    let g = group(backend);
    let mut handles = Vec::new();
    for _ in 0..tasks {
        let g = g.clone();
        handles.push(tokio::spawn(async move {
            for _ in 0..per_task {
                g.operate("counter", increment).await.unwrap();
            }
        }));
    }
    for t in 0..json_tasks {
        let g = g.clone();
        handles.push(tokio::spawn(async move {
            for i in 0..4 {
                g.operate_json("tally", |mut tally: Tally| {
                    tally.hits += 1;
                    tally.last = format!("task {t} step {i}");
                    Ok(tally)
                })
                .await
                .unwrap();
            }
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
}

/// The final state: the counter, the tally, and no stored object versions (both contents
/// are small, so they live in the manifest; a leftover would be an orphan).
async fn check_final(backend: Arc<dyn Backend>, counter: &str, hits: u64) {
    let g = group(backend.clone());
    assert_eq!(g.reader("counter").await.unwrap().bytes().await.unwrap(), counter);
    let tally: Tally = g.operate_json("tally", Ok).await.unwrap();
    assert_eq!(tally.hits, hits);
    assert_eq!(g.list().await.unwrap(), ["counter", "tally"]);
    let objects = backend.list_keys("shared/counters/.objects/").await.unwrap();
    assert!(
        objects.is_empty(),
        "small contents are kept in the manifest: no object versions, found {objects:?}"
    );
}

/// The counter checks on any backend; the lead can call this for new backends.
pub async fn counters_on(backend: Arc<dyn Backend>) {
    hammer(backend.clone(), 10, 10, 4).await;
    check_final(backend, "100", 16).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn counters_on_memory_store() {
    counters_on(Arc::new(MemoryStore::new())).await;
}

async fn fs_store(dir: &std::path::Path) -> FsStore {
    FsStore::builder(dir)
        .durability(Durability::None)
        .open()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn counters_on_fs_store() {
    let dir = tempfile::tempdir().unwrap();
    counters_on(Arc::new(fs_store(dir.path()).await)).await;
}

/// Set in a child process to the directory of the shared store.
const CHILD_DIR: &str = "STORE_CONSISTENT_COUNTERS_CHILD_DIR";

/// The parent runs this test binary twice more as child processes (selecting this same
/// test, with `CHILD_DIR` set); each child does half of the work on the same directory.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_processes_share_counters_on_one_fs_store() {
    if let Ok(dir) = std::env::var(CHILD_DIR) {
        // Each child opens (and so sweeps) the root while the other may be mid-put: sweeps
        // must leave live writers' temp files alone.
        let store = FsStore::builder(&dir)
            .durability(Durability::None)
            .open()
            .await
            .unwrap();
        hammer(Arc::new(store), 5, 10, 2).await;
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..2)
        .map(|_| {
            Command::new(&exe)
                .args([
                    "two_processes_share_counters_on_one_fs_store",
                    "--exact",
                    "--test-threads=1",
                ])
                .env(CHILD_DIR, dir.path())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outputs = tokio::task::spawn_blocking(move || {
        children
            .into_iter()
            .map(|c| c.wait_with_output().unwrap())
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    for out in outputs {
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "child failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            stdout.contains("1 passed"),
            "the child did not run the test:\n{stdout}"
        );
    }
    check_final(Arc::new(fs_store(dir.path()).await), "100", 16).await;
}
