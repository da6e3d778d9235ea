//! FsStore is linearizable: recorded histories of concurrent clients checked against the
//! versioned register model — in one process, under injected faults, and with half of the
//! clients in a second OS process sharing the root.
//!
//! The second process is this test binary re-run with `STORE_FS_LIN_CHILD` set: it opens
//! its own FsStore on the root and serves calls sent as JSON lines on its stdin.
//! [`ChildStore`] is the parent's `Backend` for it, so the driver and the recorder stay in
//! the parent: each call's interval, taken around the round trip, contains the child's real
//! one, which only allows more orders, never fewer.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::{self, BoxStream, StreamExt};
use serde::{Deserialize, Serialize};
use store_core::{
    Backend, BufferedWriter, Capabilities, DeleteOptions, Error, GetOptions, Key, ListOptions, Meta, Object,
    ObjectWriter, PutMode, PutOptions, Result, Version,
};
use store_fs::FsStore;
use store_testkit::history::Outcome;
use store_testkit::linearizability::{Config, linearizability_of};
use tokio::sync::oneshot;

const CHILD_VAR: &str = "STORE_FS_LIN_CHILD";
/// Marks the child's replies among the test harness's own output.
const REPLY: &str = "STORE-FS-LIN-REPLY ";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fs_store_is_linearizable() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config::default().scaled(0.5);
    store_testkit::linearizability(|| async { FsStore::open(dir.path()).await.unwrap() }, config).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fs_store_is_linearizable_with_lost_replies_and_refusals() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config::default().scaled(0.5).with_seed(2).with_random_faults(0.1);
    store_testkit::linearizability(|| async { FsStore::open(dir.path()).await.unwrap() }, config).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fs_store_is_linearizable_across_two_processes() {
    let dir = tempfile::tempdir().unwrap();
    let local: Arc<dyn Backend> = Arc::new(FsStore::open(dir.path()).await.unwrap());
    let child: Arc<dyn Backend> = Arc::new(ChildStore::spawn(dir.path()));
    let config = Config::default().scaled(0.5).with_seed(3);
    let history = linearizability_of(&[local, child], config).await.history;
    let written_by_child = history
        .ops
        .iter()
        .filter(|op| op.client % 2 == 1 && matches!(op.outcome, Outcome::Written(_)))
        .count();
    assert!(
        written_by_child > 0,
        "the child process wrote nothing:\n{history}"
    );
}

/// One call sent to the child.
#[derive(Debug, Serialize, Deserialize)]
enum Request {
    Put {
        key: String,
        value: Vec<u8>,
        create: bool,
        update: Option<String>,
    },
    Get(String),
    Head(String),
    Delete {
        key: String,
        if_match: Option<String>,
    },
    List(Option<String>),
    Watch {
        key: String,
        seen: Option<String>,
    },
}

/// The child's answer: metadata (key, version, size) and value, listed entries, or an error
/// rebuilt with the kind the register model reads.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Reply {
    id: u64,
    meta: Option<(String, String, u64)>,
    value: Option<Vec<u8>>,
    entries: Vec<(String, String, u64)>,
    /// A watch's answer, in a tuple so that "absent" is not read back as no answer.
    watched: Option<(Option<String>,)>,
    error: Option<Failure>,
}

#[derive(Debug, Serialize, Deserialize)]
enum Failure {
    NotFound,
    AlreadyExists(String),
    Conflict(Option<String>),
    Other(String),
}

impl Failure {
    fn of(e: &Error) -> Failure {
        match e {
            Error::NotFound { .. } => Failure::NotFound,
            Error::AlreadyExists { version, .. } => Failure::AlreadyExists(version.as_string()),
            Error::Conflict { actual, .. } => Failure::Conflict(actual.as_ref().map(Version::as_string)),
            e => Failure::Other(e.to_string()),
        }
    }

    fn into_error(self, op: &'static str, key: &str) -> Error {
        let key = key.to_owned();
        match self {
            Failure::NotFound => Error::NotFound { op, key },
            Failure::AlreadyExists(v) => Error::AlreadyExists {
                op,
                key,
                version: Version::parse(&v),
            },
            Failure::Conflict(actual) => Error::Conflict {
                op,
                key,
                expected: None,
                actual: actual.as_deref().map(Version::parse),
            },
            // Whatever else went wrong over there, the call may or may not have been applied.
            Failure::Other(message) => Error::Backend {
                backend: "child",
                retryable: true,
                source: message.into(),
            },
        }
    }
}

fn meta_of(m: &Meta) -> (String, String, u64) {
    (m.key.to_string(), m.version.as_string(), m.size)
}

fn meta_from((key, version, size): (String, String, u64)) -> Meta {
    Meta {
        key: Key::new(key).expect("the child lists valid keys"),
        size,
        version: Version::parse(&version),
        modified: SystemTime::UNIX_EPOCH,
    }
}

/// Not a test of its own: the entry point of the child process (does nothing otherwise).
#[test]
fn child_entry() {
    let Ok(root) = std::env::var(CHILD_VAR) else {
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(serve(PathBuf::from(root)));
}

/// Serves the parent's calls until its stdin closes, each in a task of its own.
async fn serve(root: PathBuf) {
    let store = Arc::new(FsStore::open(&root).await.expect("child opens the store"));
    let out = Arc::new(Mutex::new(std::io::stdout()));
    let (tx, mut requests) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            let (id, request): (u64, Request) = serde_json::from_str(&line).expect("a request");
            if tx.send((id, request)).is_err() {
                break;
            }
        }
    });
    while let Some((id, request)) = requests.recv().await {
        let (store, out) = (Arc::clone(&store), Arc::clone(&out));
        tokio::spawn(async move {
            let mut reply = answer(&store, request).await;
            reply.id = id;
            let line = format!("\n{REPLY}{}\n", serde_json::to_string(&reply).unwrap());
            let mut out = out.lock().unwrap();
            out.write_all(line.as_bytes())
                .and_then(|()| out.flush())
                .expect("reply");
        });
    }
}

async fn answer(store: &FsStore, request: Request) -> Reply {
    let key = |k: &str| Key::new(k).expect("a valid key");
    let version = |v: Option<String>| v.as_deref().map(Version::parse);
    let mut reply = Reply::default();
    let outcome = match request {
        Request::Put {
            key: k,
            value,
            create,
            update,
        } => {
            let mode = match (create, version(update)) {
                (true, _) => PutMode::Create,
                (false, Some(v)) => PutMode::Update(v),
                (false, None) => PutMode::Overwrite,
            };
            let opts = PutOptions::default().with_mode(mode);
            store
                .put(&key(&k), value.into(), opts)
                .await
                .map(|m| reply.meta = Some(meta_of(&m)))
        }
        Request::Get(k) => match store.get(&key(&k), GetOptions::default()).await {
            Ok(obj) => {
                reply.meta = Some(meta_of(&obj.meta));
                obj.bytes().await.map(|b| reply.value = Some(b.to_vec()))
            }
            Err(e) => Err(e),
        },
        Request::Head(k) => store.head(&key(&k)).await.map(|m| reply.meta = Some(meta_of(&m))),
        Request::Delete { key: k, if_match } => {
            let mut opts = DeleteOptions::default();
            opts.if_match = version(if_match);
            store.delete(&key(&k), opts).await
        }
        Request::List(prefix) => {
            let mut opts = ListOptions::default();
            opts.prefix = prefix;
            let mut items = store.list(opts);
            loop {
                match items.next().await {
                    Some(Ok(m)) => reply.entries.push(meta_of(&m)),
                    Some(Err(e)) => break Err(e),
                    None => break Ok(()),
                }
            }
        }
        Request::Watch { key: k, seen } => {
            let seen = version(seen);
            let watched = store.watch(&key(&k), seen.as_ref()).await;
            watched.map(|v| reply.watched = Some((v.as_ref().map(Version::as_string),)))
        }
    };
    reply.error = outcome.err().as_ref().map(Failure::of);
    reply
}

/// The parent's handle on the child: a `Backend` whose calls run in the other process.
#[derive(Debug, Clone)]
struct ChildStore(Arc<Channel>);

/// The pipes to the child, and the calls waiting for their replies.
#[derive(Debug)]
struct Channel {
    child: Mutex<Child>,
    stdin: Mutex<ChildStdin>,
    waiting: Arc<Mutex<HashMap<u64, oneshot::Sender<Reply>>>>,
    next: AtomicU64,
}

impl ChildStore {
    fn spawn(root: &Path) -> ChildStore {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["child_entry", "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD_VAR, root)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn the child process");
        let stdout = child.stdout.take().unwrap();
        let waiting: Arc<Mutex<HashMap<u64, oneshot::Sender<Reply>>>> = Arc::default();
        let dispatch = Arc::clone(&waiting);
        std::thread::spawn(move || {
            // The test harness prints its own lines too: only the marked ones are replies.
            for line in BufReader::new(stdout).lines().map_while(|l| l.ok()) {
                if let Some(at) = line.find(REPLY)
                    && let Ok(reply) = serde_json::from_str::<Reply>(&line[at + REPLY.len()..])
                    && let Some(tx) = dispatch.lock().unwrap().remove(&reply.id)
                {
                    let _ = tx.send(reply);
                }
            }
        });
        ChildStore(Arc::new(Channel {
            stdin: Mutex::new(child.stdin.take().unwrap()),
            child: Mutex::new(child),
            waiting,
            next: AtomicU64::new(0),
        }))
    }
}

impl Channel {
    async fn call(&self, request: Request, op: &'static str, key: &str) -> Result<Reply> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.waiting.lock().unwrap().insert(id, tx);
        let mut line = serde_json::to_string(&(id, request)).unwrap();
        line.push('\n');
        self.stdin
            .lock()
            .unwrap()
            .write_all(line.as_bytes())
            .expect("send to the child");
        let mut reply = rx.await.expect("the child answers");
        match reply.error.take() {
            Some(failure) => Err(failure.into_error(op, key)),
            None => Ok(reply),
        }
    }
}

impl Drop for Channel {
    fn drop(&mut self) {
        let mut child = self.child.lock().unwrap();
        let _ = child.kill();
        let _ = child.wait();
    }
}

#[async_trait]
impl Backend for ChildStore {
    fn capabilities(&self) -> Capabilities {
        Capabilities::NONE.with_create(true).with_update(true)
    }

    async fn put(&self, key: &Key, data: Bytes, opts: PutOptions) -> Result<Meta> {
        let (create, update) = match opts.mode {
            PutMode::Overwrite => (false, None),
            PutMode::Create => (true, None),
            PutMode::Update(v) => (false, Some(v.as_string())),
        };
        let request = Request::Put {
            key: key.to_string(),
            value: data.to_vec(),
            create,
            update,
        };
        let reply = self.0.call(request, "put", key.as_str()).await?;
        Ok(meta_from(reply.meta.expect("a put's metadata")))
    }

    async fn writer(&self, key: &Key, opts: PutOptions) -> Result<Box<dyn ObjectWriter>> {
        Ok(Box::new(BufferedWriter::new(self.clone(), key.clone(), opts)))
    }

    async fn get(&self, key: &Key, _opts: GetOptions) -> Result<Object> {
        let reply = self
            .0
            .call(Request::Get(key.to_string()), "get", key.as_str())
            .await?;
        let meta = meta_from(reply.meta.expect("a get's metadata"));
        let value = Bytes::from(reply.value.expect("a get's value"));
        Ok(Object {
            range: 0..value.len() as u64,
            meta,
            body: value.into(),
        })
    }

    async fn head(&self, key: &Key) -> Result<Meta> {
        let reply = self
            .0
            .call(Request::Head(key.to_string()), "head", key.as_str())
            .await?;
        Ok(meta_from(reply.meta.expect("a head's metadata")))
    }

    async fn delete(&self, key: &Key, opts: DeleteOptions) -> Result<()> {
        let request = Request::Delete {
            key: key.to_string(),
            if_match: opts.if_match.as_ref().map(Version::as_string),
        };
        self.0.call(request, "delete", key.as_str()).await.map(drop)
    }

    fn list(&self, opts: ListOptions) -> BoxStream<'static, Result<Meta>> {
        let channel = Arc::clone(&self.0);
        stream::once(async move {
            // An error after some entries comes back as the error alone: the listing then
            // records nothing, which is less than it could, never wrong.
            let items: Vec<Result<Meta>> = match channel.call(Request::List(opts.prefix), "list", "").await {
                Ok(reply) => reply.entries.into_iter().map(|e| Ok(meta_from(e))).collect(),
                Err(e) => vec![Err(e)],
            };
            stream::iter(items)
        })
        .flatten()
        .boxed()
    }

    async fn watch(&self, key: &Key, seen: Option<&Version>) -> Result<Option<Version>> {
        let request = Request::Watch {
            key: key.to_string(),
            seen: seen.map(Version::as_string),
        };
        let reply = self.0.call(request, "watch", key.as_str()).await?;
        let (now,) = reply.watched.expect("a watch's answer");
        Ok(now.as_deref().map(Version::parse))
    }
}
