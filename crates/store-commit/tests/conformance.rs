//! `Staged` against the committable conformance suite of `store-testkit`, over a
//! MemoryStore and over an FsStore (where "restart" reopens the directory).

use std::collections::BTreeSet;

use store_commit::Staged;
use store_core::{Backend, BackendExt, Key, Result, async_trait};
use store_fs::FsStore;
use store_memory::MemoryStore;
use store_testkit::committable::{Change, Subject};

fn item(n: u32) -> Result<Key> {
    Key::new(format!("items/{n}"))
}

async fn stage<B: Backend>(s: &Staged<B>, change: Change) -> Result<()> {
    match change {
        Change::Insert(n) => s.stage_put(&item(n)?, format!("item {n}")),
        Change::Remove(n) => s.stage_delete(&item(n)?),
    }
}

async fn applied<B: Backend>(s: &Staged<B>) -> Result<BTreeSet<u32>> {
    let keys = s.backend().list_keys("items/").await?;
    Ok(keys.iter().filter_map(|k| k.name().parse().ok()).collect())
}

/// The MemoryStore is the durable state; a new `Staged` over it is the restarted process.
struct InMemory(Staged<MemoryStore>);

#[async_trait]
impl Subject for InMemory {
    type Committable = Staged<MemoryStore>;
    fn committable(&self) -> &Self::Committable {
        &self.0
    }
    async fn stage(&self, change: Change) -> Result<()> {
        stage(&self.0, change).await
    }
    async fn applied(&self) -> Result<BTreeSet<u32>> {
        applied(&self.0).await
    }
    async fn restart(self) -> Result<Self> {
        Ok(InMemory(Staged::new(self.0.backend().clone())))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn staged_over_memory_meets_the_committable_contract() {
    store_testkit::committable::run_all(|| async { InMemory(Staged::new(MemoryStore::new())) }).await;
}

/// A directory on disk; restarting reopens it with a new `FsStore` and a new `Staged`.
struct OnDisk {
    staged: Staged<FsStore>,
    dir: tempfile::TempDir,
}

#[async_trait]
impl Subject for OnDisk {
    type Committable = Staged<FsStore>;
    fn committable(&self) -> &Self::Committable {
        &self.staged
    }
    async fn stage(&self, change: Change) -> Result<()> {
        stage(&self.staged, change).await
    }
    async fn applied(&self) -> Result<BTreeSet<u32>> {
        applied(&self.staged).await
    }
    async fn restart(self) -> Result<Self> {
        let OnDisk { staged, dir } = self;
        drop(staged);
        let store = FsStore::open(dir.path()).await?;
        Ok(OnDisk {
            staged: Staged::new(store),
            dir,
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn staged_over_fs_meets_the_committable_contract() {
    store_testkit::committable::run_all(|| async {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let store = FsStore::open(dir.path())
            .await
            .unwrap_or_else(|e| panic!("open FsStore: {e}"));
        OnDisk {
            staged: Staged::new(store),
            dir,
        }
    })
    .await;
}

/// A `Staged` that forgets what it committed when it restarts (its restart uses another
/// prefix, so the markers are not found): the suite must catch it.
struct Forgetful(Staged<MemoryStore>);

#[async_trait]
impl Subject for Forgetful {
    type Committable = Staged<MemoryStore>;
    fn committable(&self) -> &Self::Committable {
        &self.0
    }
    async fn stage(&self, change: Change) -> Result<()> {
        stage(&self.0, change).await
    }
    async fn applied(&self) -> Result<BTreeSet<u32>> {
        applied(&self.0).await
    }
    async fn restart(self) -> Result<Self> {
        let next = format!("{}x", self.0.prefix());
        Ok(Forgetful(Staged::with_prefix(self.0.backend().clone(), &next)?))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_suite_catches_a_committable_that_forgets_its_commits() {
    use futures::FutureExt;
    let run = store_testkit::committable::run_all(|| async { Forgetful(Staged::new(MemoryStore::new())) });
    let outcome = std::panic::AssertUnwindSafe(run).catch_unwind().await;
    let Err(panic) = outcome else {
        panic!("the conformance suite passed a committable that applies a session twice");
    };
    let msg = panic.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(
        msg.contains("a_committed_session_is_never_applied_again") && msg.contains("1 of"),
        "unexpected failures: {msg}"
    );
}
