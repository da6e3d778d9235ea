//! Several OS processes on one root: compare-and-swap across processes, and writers killed
//! with SIGKILL in the middle of large writes.
//!
//! The child processes are this test binary itself, re-run with `STORE_FS_CHILD` set:
//! [`child_entry`] then plays the requested role instead of being an (empty) test.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use store_core::{Backend, BackendExt, Key, PutOptions};
use store_fs::FsStore;

const ROLE_VAR: &str = "STORE_FS_CHILD";
const ROOT_VAR: &str = "STORE_FS_CHILD_ROOT";
const INCREMENTS: u64 = 500;
const READY: &str = "STORE-FS-CHILD-READY";
const BIG_KEYS: usize = 4;

fn key(s: &str) -> Key {
    Key::new(s).unwrap()
}

fn spawn_child(role: &str, root: &Path) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["child_entry", "--exact", "--nocapture", "--test-threads=1"])
        .env(ROLE_VAR, role)
        .env(ROOT_VAR, root)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn child process")
}

/// Not a test of its own: the entry point of child processes (does nothing otherwise).
#[test]
fn child_entry() {
    let Ok(role) = std::env::var(ROLE_VAR) else { return };
    let root = PathBuf::from(std::env::var(ROOT_VAR).expect("root for child"));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let store = FsStore::open(&root).await.expect("child opens store");
        match role.as_str() {
            "cas" => cas_increments(&store).await,
            "writer" => write_forever(&store).await,
            other => panic!("unknown child role {other}"),
        }
    });
}

/// 500 read-modify-write increments through `Update(version)` retry loops.
async fn cas_increments(store: &FsStore) {
    let k = key("shared/counter");
    println!("{READY}");
    for _ in 0..INCREMENTS {
        loop {
            let (meta, data) = store.get_with_meta(&k).await.expect("get counter");
            let n: u64 = std::str::from_utf8(&data).unwrap().parse().unwrap();
            match store.update(&k, (n + 1).to_string(), meta.version).await {
                Ok(_) => break,
                Err(e) if e.is_conflict() => continue,
                Err(e) => panic!("update counter: {e}"),
            }
        }
    }
}

/// Self-describing content: generation, length, then a pattern of both. A torn or
/// truncated object cannot pass [`check_big`].
fn big_content(generation: u64) -> Bytes {
    let len = (1 << 20) + (generation as usize % 7) * (512 << 10);
    let mut v = Vec::with_capacity(len);
    v.extend_from_slice(&generation.to_le_bytes());
    v.extend_from_slice(&(len as u64).to_le_bytes());
    while v.len() < len {
        let i = v.len() as u64;
        v.push((i.wrapping_mul(31) ^ generation.wrapping_mul(131)) as u8);
    }
    Bytes::from(v)
}

fn check_big(k: &str, data: &[u8]) {
    assert!(
        data.len() >= 16,
        "{k}: {} bytes is no complete object",
        data.len()
    );
    let generation = u64::from_le_bytes(data[..8].try_into().unwrap());
    assert!(
        data[..] == big_content(generation)[..],
        "{k}: content is not a complete object (generation {generation}, {} bytes)",
        data.len()
    );
}

/// Writes big objects, by put and by streaming writer, until killed.
async fn write_forever(store: &FsStore) {
    let mut generation = 0u64;
    loop {
        for i in 0..BIG_KEYS {
            generation += 1;
            let k = key(&format!("big/{i}"));
            let data = big_content(generation);
            if generation & 1 == 0 {
                store.put(&k, data, PutOptions::default()).await.expect("put");
            } else {
                let mut w = store.writer(&k, PutOptions::default()).await.expect("writer");
                for part in data.chunks(256 << 10) {
                    w.write(Bytes::copy_from_slice(part)).await.expect("write");
                }
                w.close().await.expect("close");
            }
            if generation == 1 {
                println!("{READY}");
            }
        }
    }
}

fn wait_ready(child: &mut Child) {
    let out = child.stdout.take().unwrap();
    let mut lines = BufReader::new(out).lines();
    while let Some(line) = lines.next() {
        // The harness prints "test child_entry ... " on the same line.
        if line.expect("child stdout").contains(READY) {
            // Keep draining, so the child never writes into a closed pipe.
            std::thread::spawn(move || lines.for_each(drop));
            return;
        }
    }
    panic!("child exited before it was ready: {:?}", child.wait());
}

fn temp_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let ty = entry.file_type().unwrap();
        if entry.file_name().to_string_lossy().starts_with(".store-tmp-") {
            found.push(entry.path());
        } else if ty.is_dir() {
            found.extend(temp_files(&entry.path()));
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_processes_cas_increment_to_exactly_1000() {
    let dir = tempfile::tempdir().unwrap();
    let store = FsStore::open(dir.path()).await.unwrap();
    store.put_bytes(&key("shared/counter"), "0").await.unwrap();
    let mut children: Vec<Child> = (0..2).map(|_| spawn_child("cas", dir.path())).collect();
    let results = tokio::task::spawn_blocking(move || {
        children
            .iter_mut()
            .map(|c| {
                wait_ready(c);
                c.wait().unwrap()
            })
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    for status in results {
        assert!(status.success(), "a child failed: {status}");
    }
    assert_eq!(
        store.get_bytes(&key("shared/counter")).await.unwrap(),
        (2 * INCREMENTS).to_string(),
        "lost updates between two processes"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writers_killed_mid_write_leave_old_or_new_content_and_no_temp_files() {
    let dir = tempfile::tempdir().unwrap();
    let mut rounds_with_leftovers = 0;
    for round in 0..10u64 {
        let mut child = spawn_child("writer", dir.path());
        let child = tokio::task::spawn_blocking(move || {
            wait_ready(&mut child);
            // Vary the moment of the kill so it falls into different phases of a write.
            std::thread::sleep(Duration::from_millis(20 + round * 37 % 150));
            child.kill().expect("SIGKILL the writer");
            child.wait().unwrap();
        });
        child.await.unwrap();
        if !temp_files(dir.path()).is_empty() {
            rounds_with_leftovers += 1;
        }
        // Re-opening sweeps what the killed writer left.
        let store = FsStore::open(dir.path()).await.unwrap();
        let leftovers = temp_files(dir.path());
        assert!(
            leftovers.is_empty(),
            "round {round}: temp files survived re-open: {leftovers:?}"
        );
        let keys = store.list_keys("").await.unwrap();
        assert!(!keys.is_empty(), "round {round}: the writer wrote nothing");
        for k in keys {
            assert!(k.as_str().starts_with("big/"), "unexpected key {k}");
            check_big(k.as_str(), &store.get_bytes(&k).await.unwrap());
        }
    }
    // The kills really fell in the middle of writes (the writer is nearly always writing).
    assert!(rounds_with_leftovers > 0, "no kill interrupted a write");
}
