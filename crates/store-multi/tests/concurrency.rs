//! Fan-out is concurrent: checked by the order in which backends complete, never by
//! wall-clock thresholds.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use parking_lot::Mutex;
use store_core::{
    Backend, BackendExt, Capabilities, DeleteOptions, GetOptions, Key, ListOptions, Meta, Object,
    ObjectWriter, PutOptions, Result, Version,
};
use store_memory::MemoryStore;
use store_multi::{Multi, MultiWriter, Outcome, WriteMode, WriteReport};
use store_testkit::{Fault, FaultOp, Faulty, Rule};

type Log = Arc<Mutex<Vec<String>>>;

/// A backend that appends "<name> write" / "<name> commit" to a log shared by several
/// backends when a chunk or a commit *completes*: one global completion order.
#[derive(Debug, Clone)]
struct Logged {
    name: &'static str,
    inner: Faulty<MemoryStore>,
    log: Log,
}

#[derive(Debug)]
struct LoggedWriter {
    name: &'static str,
    inner: Box<dyn ObjectWriter>,
    log: Log,
}

#[async_trait]
impl ObjectWriter for LoggedWriter {
    async fn write(&mut self, chunk: Bytes) -> Result<()> {
        self.inner.write(chunk).await?;
        self.log.lock().push(format!("{} write", self.name));
        Ok(())
    }
    async fn close(self: Box<Self>) -> Result<Meta> {
        let meta = self.inner.close().await?;
        self.log.lock().push(format!("{} commit", self.name));
        Ok(meta)
    }
    async fn abort(self: Box<Self>) -> Result<()> {
        self.inner.abort().await
    }
}

#[async_trait]
impl Backend for Logged {
    /// Claims streaming writes, so the fan-out uses (and this logs) the writers.
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities().with_streaming_writes(true)
    }
    async fn put(&self, key: &Key, data: Bytes, opts: PutOptions) -> Result<Meta> {
        self.inner.put(key, data, opts).await
    }
    async fn writer(&self, key: &Key, opts: PutOptions) -> Result<Box<dyn ObjectWriter>> {
        Ok(Box::new(LoggedWriter {
            name: self.name,
            inner: self.inner.writer(key, opts).await?,
            log: Arc::clone(&self.log),
        }))
    }
    async fn get(&self, key: &Key, opts: GetOptions) -> Result<Object> {
        self.inner.get(key, opts).await
    }
    async fn head(&self, key: &Key) -> Result<Meta> {
        self.inner.head(key).await
    }
    async fn delete(&self, key: &Key, opts: DeleteOptions) -> Result<()> {
        self.inner.delete(key, opts).await
    }
    fn list(&self, opts: ListOptions) -> BoxStream<'static, Result<Meta>> {
        self.inner.list(opts)
    }
    async fn watch(&self, key: &Key, seen: Option<&Version>) -> Result<Option<Version>> {
        self.inner.watch(key, seen).await
    }
}

/// Backends 0, 1, 2 take 30, 20 and 10 ms per chunk and per commit. Run one after the
/// other they would complete 0, 1, 2; run concurrently they complete 2, 1, 0.
fn slow_backends(mode: WriteMode) -> (Vec<Faulty<MemoryStore>>, Log, MultiWriter) {
    let log = Log::default();
    let names = ["b0", "b1", "b2"];
    let faulty: Vec<_> = names
        .iter()
        .map(|n| Faulty::new(MemoryStore::new()).named(n))
        .collect();
    let backends: Vec<Arc<dyn Backend>> = faulty
        .iter()
        .zip(names)
        .zip([30u64, 20, 10])
        .map(|((f, name), ms)| {
            let d = Duration::from_millis(ms);
            f.inject(Rule::new(FaultOp::WriterWrite, Fault::Latency(d)));
            f.inject(Rule::new(FaultOp::WriterClose, Fault::Latency(d)));
            Arc::new(Logged {
                name,
                inner: f.clone(),
                log: Arc::clone(&log),
            }) as _
        })
        .collect();
    let fan = MultiWriter::builder(backends).mode(mode).build_writer().unwrap();
    (faulty, log, fan)
}

fn taken(log: &Log) -> Vec<String> {
    log.lock().clone()
}

/// `data` written through the fan-out's writer, in one chunk.
async fn streamed(fan: &MultiWriter, key: &Key, data: &'static str) -> Result<WriteReport> {
    let mut w = fan.writer(key, PutOptions::default()).await?;
    w.write(Bytes::from(data)).await?;
    w.close().await
}

// A current-thread runtime: background work cannot run until the test awaits, so what the
// log holds at the moment a put returns is exactly what completed before it returned.
#[tokio::test(flavor = "current_thread")]
async fn all_put_completes_fastest_first_and_returns_after_the_slowest() {
    let (_faulty, log, fan) = slow_backends(WriteMode::All);
    let key = Key::new("all").unwrap();
    let report = streamed(&fan, &key, "x").await.unwrap();
    assert_eq!(
        taken(&log),
        [
            "b2 write",
            "b1 write",
            "b0 write",
            "b2 commit",
            "b1 commit",
            "b0 commit"
        ],
        "chunks and commits must run concurrently, and no commit may start before every chunk landed"
    );
    assert_eq!(report.committed(), [0, 1, 2]);
    assert!(report.pending().is_empty());
}

#[tokio::test(flavor = "current_thread")]
async fn quorum_put_returns_after_the_second_fastest() {
    let (_faulty, log, fan) = slow_backends(WriteMode::Quorum);
    let key = Key::new("quorum").unwrap();
    let report = streamed(&fan, &key, "x").await.unwrap();
    assert_eq!(
        taken(&log),
        ["b2 write", "b1 write", "b0 write", "b2 commit", "b1 commit"],
        "a quorum put returns as soon as two of three committed"
    );
    assert_eq!(report.committed(), [1, 2]);
    assert_eq!(report.pending(), [0]);
    assert!(
        report.version().to_string().starts_with("?|"),
        "{}",
        report.version()
    );

    let settled = report.settled().await;
    assert_eq!(taken(&log).last().map(String::as_str), Some("b0 commit"));
    assert!(settled.outcomes.iter().all(Outcome::is_committed));
    let multi = Multi::from(fan);
    assert_eq!(multi.head(&key).await.unwrap().version, settled.meta.version);
    assert_eq!(multi.get_bytes(&key).await.unwrap(), "x");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn quorum_does_not_wait_for_a_hung_backend_and_reports_it_later() {
    let faulty: Vec<_> = ["b0", "b1", "b2"]
        .iter()
        .map(|n| Faulty::new(MemoryStore::new()).named(n))
        .collect();
    let backends: Vec<Arc<dyn Backend>> = faulty.iter().map(|f| Arc::new(f.clone()) as _).collect();
    let fan = MultiWriter::builder(backends)
        .mode(WriteMode::Quorum)
        .build_writer()
        .unwrap();
    let key = Key::new("hung").unwrap();
    // A memory store gets the whole object in one put at commit time: hang that.
    faulty[1].inject(Rule::new(FaultOp::Put, Fault::Hang));
    let report = fan.put(&key, "x".into(), PutOptions::default()).await.unwrap();
    assert_eq!(report.committed(), [0, 2]);
    assert_eq!(report.pending(), [1]);
    assert!(faulty[1].inner().is_empty(), "the hung backend has not committed");
    // Another write is not held up by the straggler (b1 hangs for it too).
    let other = fan
        .put(&Key::new("other").unwrap(), "y".into(), PutOptions::default())
        .await
        .unwrap();
    assert_eq!(other.pending(), [1]);
    faulty[1].release();
    let settled = report.settled().await;
    assert!(
        settled.outcomes.iter().all(Outcome::is_committed),
        "{:?}",
        settled.outcomes
    );
    assert_eq!(faulty[1].inner().get_bytes(&key).await.unwrap(), "x");
    assert_eq!(
        Multi::from(fan).head(&key).await.unwrap().version,
        settled.meta.version
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_of_one_key_keep_every_backend_identical() {
    let stores: Vec<MemoryStore> = (0..3).map(|_| MemoryStore::new()).collect();
    let backends: Vec<Arc<dyn Backend>> = stores.iter().map(|s| Arc::new(s.clone()) as _).collect();
    let multi = Multi::new(backends).unwrap();
    let key = Key::new("contended").unwrap();
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let (multi, key) = (multi.clone(), key.clone());
            tokio::spawn(async move {
                for j in 0..20 {
                    multi.put_bytes(&key, format!("{i}-{j}")).await.unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let first = stores[0].get_bytes(&key).await.unwrap();
    for s in &stores[1..] {
        assert_eq!(s.get_bytes(&key).await.unwrap(), first, "the copies diverged");
    }
}
