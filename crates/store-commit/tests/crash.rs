//! Crash recovery: a session dies at every step — in-process (the power goes out before the
//! n-th write of any store, and everything in memory is dropped) and as a real process
//! killed with SIGKILL — and a new committer over the same stores recovers it.

mod support;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;

use store_commit::{MultiCommitter, SessionStart, Staged};
use store_core::{Backend, BackendExt, Bytes, CommitId, IdempotencyKey, Result};
use store_fs::FsStore;
use store_memory::MemoryStore;
use support::{Power, Powered, contents, key, snapshot};

const HIDDEN: &str = ".staged";
/// Mutations of one uncrashed session of `run_session`: the kv key put and delete; for
/// "a" a journal, 3 changes, a marker, the journal delete; for "b" the same with 1 change;
/// "c" stages nothing and writes nothing.
const SESSION_WRITES: u64 = 2 + 6 + 4;

/// The three stores of the scenario, before the session.
async fn seed_stores<B: Backend>(a: &B, b: &B, c: &B) -> Result<()> {
    a.put_bytes(&key("a/old"), "to be deleted").await?;
    a.put_bytes(&key("a/kept"), "untouched").await?;
    b.put_bytes(&key("b/y"), "to be replaced").await?;
    c.put_bytes(&key("c/z"), "untouched").await?;
    Ok(())
}

fn expected() -> [BTreeMap<String, Bytes>; 3] {
    let m = |pairs: &[(&str, &str)]| {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), Bytes::copy_from_slice(v.as_bytes())))
            .collect::<BTreeMap<_, _>>()
    };
    [
        m(&[("a/kept", "untouched"), ("a/x1", "one"), ("a/x2", "two")]),
        m(&[("b/y", "replaced")]),
        m(&[("c/z", "untouched")]),
    ]
}

/// What the application does, in every incarnation: begin, stage, commit.
async fn run_session<B: Backend>(
    kv: B,
    stores: [B; 3],
    session: &IdempotencyKey,
) -> Result<(SessionStart, CommitId)> {
    let [a, b, c] = stores.map(|s| Arc::new(Staged::new(s)));
    let mut committer = MultiCommitter::empty(kv);
    // Registered out of order on purpose.
    committer.register("c", c.clone())?;
    committer.register("a", a.clone())?;
    committer.register("b", b.clone())?;
    let start = committer.begin(session).await?;
    a.stage_put(&key("a/x1"), "one")?;
    a.stage_put(&key("a/x2"), "two")?;
    a.stage_delete(&key("a/old"))?;
    b.stage_put(&key("b/y"), "replaced")?;
    let id = committer.commit(session).await?;
    Ok((start, id))
}

/// The id of the session, from an uncrashed run on scratch stores.
async fn reference_id(session: &IdempotencyKey) -> CommitId {
    let s = [MemoryStore::new(), MemoryStore::new(), MemoryStore::new()];
    seed_stores(&s[0], &s[1], &s[2])
        .await
        .unwrap_or_else(|e| panic!("seed: {e}"));
    let (start, id) = run_session(MemoryStore::new(), s, session)
        .await
        .unwrap_or_else(|e| panic!("reference session: {e}"));
    assert_eq!(start, SessionStart::Fresh);
    id
}

struct Disks {
    kv: MemoryStore,
    stores: [MemoryStore; 3],
}

impl Disks {
    async fn new() -> Disks {
        let d = Disks {
            kv: MemoryStore::new(),
            stores: [MemoryStore::new(), MemoryStore::new(), MemoryStore::new()],
        };
        let [a, b, c] = &d.stores;
        seed_stores(a, b, c).await.unwrap_or_else(|e| panic!("seed: {e}"));
        d
    }

    fn powered(&self, power: &Power) -> (Powered<MemoryStore>, [Powered<MemoryStore>; 3]) {
        (
            power.wrap(self.kv.clone()),
            self.stores.clone().map(|s| power.wrap(s)),
        )
    }

    /// Runs the session until the power dies before write number `budget` (0-based).
    /// Returns the outcome if it finished first.
    async fn run_until_crash(
        &self,
        session: &IdempotencyKey,
        budget: u64,
    ) -> Option<(SessionStart, CommitId)> {
        let power = Power::with_budget(budget);
        let (kv, stores) = self.powered(&power);
        tokio::select! {
            biased;
            _ = power.died.notified() => None,
            outcome = run_session(kv, stores, session) => {
                Some(outcome.unwrap_or_else(|e| panic!("session with {budget} writes: {e}")))
            }
        }
    }

    async fn check_applied_once(&self, what: &str) {
        for (store, want) in self.stores.iter().zip(expected()) {
            assert_eq!(contents(store, HIDDEN).await, want, "{what}");
            assert!(
                !store.exists(&key(".staged/journal")).await.unwrap_or(true),
                "{what}: a journal was left behind"
            );
        }
    }
}

async fn markers(stores: &[MemoryStore; 3], session: &IdempotencyKey) -> Vec<bool> {
    let mut out = Vec::new();
    for s in stores {
        let staged = Staged::new(s.clone());
        out.push(
            staged
                .committed(session)
                .await
                .unwrap_or_else(|e| panic!("marker: {e}"))
                .is_some(),
        );
    }
    out
}

#[tokio::test]
async fn a_session_killed_at_every_write_recovers_with_its_key() {
    let session = IdempotencyKey::from("session-1");
    let reference = reference_id(&session).await;
    for crash_at in 0..=SESSION_WRITES {
        let disks = Disks::new().await;
        let first = disks.run_until_crash(&session, crash_at).await;
        if crash_at == SESSION_WRITES {
            assert_eq!(
                first,
                Some((SessionStart::Fresh, reference.clone())),
                "uncrashed run"
            );
        } else {
            assert_eq!(first, None, "the power did not go out before write {crash_at}");
        }
        // What each store had already made durable of this session.
        let had_marker = markers(&disks.stores, &session).await;
        let before: Vec<_> =
            futures::future::join_all(disks.stores.iter().map(|s| snapshot(s, HIDDEN))).await;

        // The restart: a new committer, new Staged, same stores, same key.
        let power = Power::unlimited();
        let (kv, stores) = disks.powered(&power);
        let (start, id) = run_session(kv, stores, &session)
            .await
            .unwrap_or_else(|e| panic!("recovery after a crash at write {crash_at}: {e}"));
        let pending_at_crash = crash_at > 0 && crash_at < SESSION_WRITES;
        let want_start = if pending_at_crash {
            SessionStart::Recovery
        } else {
            SessionStart::Fresh
        };
        assert_eq!(start, want_start, "crash at write {crash_at}");
        assert_eq!(
            id, reference,
            "crash at write {crash_at}: the recovered id differs"
        );
        disks
            .check_applied_once(&format!("crash at write {crash_at}"))
            .await;
        // A store that had committed was not written again.
        for (i, store) in disks.stores.iter().enumerate() {
            if had_marker[i] {
                assert_eq!(
                    snapshot(store, HIDDEN).await,
                    before[i],
                    "crash at write {crash_at}: store {i} had committed and was written again"
                );
            }
        }
        let pending = MultiCommitter::empty(disks.kv.clone())
            .pending()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            pending, None,
            "crash at write {crash_at}: the session is still pending"
        );
    }
}

#[tokio::test]
async fn another_key_is_refused_while_a_crashed_session_is_pending() {
    let session = IdempotencyKey::from("session-1");
    let other = IdempotencyKey::from("session-2");
    for crash_at in 0..SESSION_WRITES {
        let disks = Disks::new().await;
        assert_eq!(disks.run_until_crash(&session, crash_at).await, None);
        let before: Vec<_> =
            futures::future::join_all(disks.stores.iter().map(|s| snapshot(s, HIDDEN))).await;
        let (kv, stores) = disks.powered(&Power::unlimited());
        match run_session(kv, stores, &other).await {
            Ok((start, _)) => {
                // Only possible when the crash came before the key was stored.
                assert_eq!(crash_at, 0, "a different key ran over a pending session");
                assert_eq!(start, SessionStart::Fresh);
            }
            Err(e) => {
                assert!(crash_at > 0, "refused although nothing was pending: {e}");
                let msg = e.to_string();
                assert!(msg.contains("session-1") && msg.contains("session-2"), "{msg}");
                // Refused before any store was touched.
                for (i, store) in disks.stores.iter().enumerate() {
                    assert_eq!(snapshot(store, HIDDEN).await, before[i], "store {i} changed");
                }
                // The documented way out: recover it with its own key.
                let (kv, stores) = disks.powered(&Power::unlimited());
                let (start, _) = run_session(kv, stores, &session)
                    .await
                    .unwrap_or_else(|e| panic!("recovery: {e}"));
                assert_eq!(start, SessionStart::Recovery);
                disks
                    .check_applied_once(&format!("crash at write {crash_at}"))
                    .await;
            }
        }
    }
}

#[tokio::test]
async fn a_recovery_killed_at_every_write_recovers_again() {
    let session = IdempotencyKey::from("twice");
    let reference = reference_id(&session).await;
    for first_crash in 1..SESSION_WRITES {
        let mut second_crash = 0;
        loop {
            let disks = Disks::new().await;
            assert_eq!(disks.run_until_crash(&session, first_crash).await, None);
            let second = disks.run_until_crash(&session, second_crash).await;
            let (kv, stores) = disks.powered(&Power::unlimited());
            let (start, id) = run_session(kv, stores, &session)
                .await
                .unwrap_or_else(|e| panic!("crashes at {first_crash} then {second_crash}: {e}"));
            let what = format!("crashes at write {first_crash}, then {second_crash}");
            assert_eq!(id, reference, "{what}");
            disks.check_applied_once(&what).await;
            if let Some((_, id)) = second {
                // The recovery itself completed: that was the last crash point.
                assert_eq!(id, reference, "{what}");
                assert_eq!(start, SessionStart::Fresh, "{what}");
                break;
            }
            assert_eq!(start, SessionStart::Recovery, "{what}");
            second_crash += 1;
        }
    }
}

// ---- real processes, killed with SIGKILL ----

/// Set in the child: the directory of its stores, and how many writes it may make.
const CHILD_DIR: &str = "STORE_COMMIT_CRASH_CHILD_DIR";
const CHILD_BUDGET: &str = "STORE_COMMIT_CRASH_CHILD_BUDGET";
const CRASH_POINT: &str = "STORE-COMMIT-CRASH-POINT";

async fn open_disks(dir: &Path) -> Result<(FsStore, [FsStore; 3])> {
    let kv = FsStore::open(dir.join("kv")).await?;
    let a = FsStore::open(dir.join("a")).await?;
    let b = FsStore::open(dir.join("b")).await?;
    let c = FsStore::open(dir.join("c")).await?;
    Ok((kv, [a, b, c]))
}

/// The child's role: run the session on the FsStores; just before write number `budget`
/// print the crash point and wait to be killed. Does nothing in a normal test run.
#[tokio::test]
async fn child_process_role() {
    let (Ok(dir), Ok(budget)) = (std::env::var(CHILD_DIR), std::env::var(CHILD_BUDGET)) else {
        return;
    };
    let budget: u64 = budget.parse().unwrap_or_else(|e| panic!("{CHILD_BUDGET}: {e}"));
    let (kv, stores) = open_disks(Path::new(&dir))
        .await
        .unwrap_or_else(|e| panic!("child: open: {e}"));
    let power = Power::with_hook(budget, || {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "\n{CRASH_POINT}");
        let _ = out.flush();
    });
    let session = IdempotencyKey::from("process-session");
    let (start, id) = run_session(power.wrap(kv), stores.map(|s| power.wrap(s)), &session)
        .await
        .unwrap_or_else(|e| panic!("child: session: {e}"));
    println!("child finished: {start:?} {id}");
}

/// Runs the child with `budget`; kills it with SIGKILL when it reaches the crash point.
/// Returns whether it was killed (false: it finished the session).
fn run_child(dir: &Path, budget: u64) -> bool {
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("current_exe: {e}"));
    let mut child = Command::new(exe)
        .args(["--exact", "child_process_role", "--nocapture", "--test-threads=1"])
        .env(CHILD_DIR, dir)
        .env(CHILD_BUDGET, budget.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn the child: {e}"));
    let stdout = child.stdout.take().unwrap_or_else(|| panic!("child stdout"));
    let mut killed = false;
    let mut seen = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap_or_else(|e| panic!("child stdout: {e}"));
        if line.contains(CRASH_POINT) {
            child.kill().unwrap_or_else(|e| panic!("SIGKILL the child: {e}")); // SIGKILL on Unix
            killed = true;
            break;
        }
        seen.push(line);
    }
    let status = child.wait().unwrap_or_else(|e| panic!("wait for the child: {e}"));
    if killed {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(
            status.signal(),
            Some(9),
            "the child was not killed by SIGKILL: {status}"
        );
    } else {
        assert!(
            status.success(),
            "the child failed ({status}); its output:\n{}",
            seen.join("\n")
        );
        assert!(
            seen.iter().any(|l| l.contains("child finished")),
            "the child did not run the session; its output:\n{}",
            seen.join("\n")
        );
    }
    killed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_session_in_a_process_killed_at_every_write_recovers() {
    let session = IdempotencyKey::from("process-session");
    let reference = reference_id(&session).await;
    for budget in 0..=SESSION_WRITES {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        {
            let (_, [a, b, c]) = open_disks(dir.path())
                .await
                .unwrap_or_else(|e| panic!("open: {e}"));
            seed_stores(&a, &b, &c)
                .await
                .unwrap_or_else(|e| panic!("seed: {e}"));
        }
        let path = dir.path().to_path_buf();
        let killed = tokio::task::spawn_blocking(move || run_child(&path, budget))
            .await
            .unwrap_or_else(|e| panic!("child runner: {e}"));
        assert_eq!(killed, budget < SESSION_WRITES, "budget {budget}");

        // This process is the restart.
        let (kv, stores) = open_disks(dir.path())
            .await
            .unwrap_or_else(|e| panic!("reopen: {e}"));
        let (start, id) = run_session(kv.clone(), stores.clone(), &session)
            .await
            .unwrap_or_else(|e| panic!("recovery after SIGKILL before write {budget}: {e}"));
        let pending_at_kill = budget > 0 && budget < SESSION_WRITES;
        assert_eq!(
            start == SessionStart::Recovery,
            pending_at_kill,
            "killed before write {budget}: started {start:?}"
        );
        assert_eq!(id, reference, "killed before write {budget}: the id differs");
        for (store, want) in stores.iter().zip(expected()) {
            assert_eq!(
                contents(store, HIDDEN).await,
                want,
                "killed before write {budget}"
            );
        }
        let pending = MultiCommitter::empty(kv)
            .pending()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(pending, None);
    }
}
