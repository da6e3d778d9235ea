//! `cargo xtask bench --compare`: the same workloads on our stores and on the peers
//! (`object_store`, OpenDAL), in one process, interleaved and repeated.
//!
//! For each workload and pair, the two sides run alternately (A B, then B A, …) `REPS`
//! times; each run times a batch of operations. The report gives the median time per
//! operation of each side, the spread of its runs ((max − min) / median), and the median of
//! the runs' peer / ours ratios: above 1.0 we are faster. A run's two sides are timed back
//! to back, so what the machine was doing then weighs on both.
//!
//! On disk, each run of a write workload gets a fresh pair of directories, made one after
//! the other and synced before the timed batches. How long ext4 takes to create a file
//! depends on the directory's block group and on the inodes freed there in the last minutes
//! (see `docs/bench/fs.md`); one directory per side for every run would bake that placement
//! into the ratio.
//!
//! Output: a markdown table on stdout and in `target/bench-compare/report.md`, and an SVG
//! bar chart of the ratios in `target/bench-compare/ratios.svg`.

mod report;
mod subject;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use report::{Row, Sample};
use store_fs::{Durability, FsStore};
use subject::{Dal, ObjStore, Ours, Subject};

const REPS: usize = 15;

/// One workload: a batch of `ops` operations against a subject.
#[derive(Clone, Copy)]
struct Workload {
    name: &'static str,
    ops: usize,
}

impl Workload {
    /// The same workload with `k` times the operations per batch (in-memory stores are so
    /// fast that the disk-sized batches would be too short to time well).
    fn scaled(self, k: usize) -> Workload {
        Workload {
            ops: self.ops * k,
            ..self
        }
    }
}

const PUT_1K: Workload = Workload {
    name: "put 1 KiB",
    ops: 2000,
};
const GET_1K: Workload = Workload {
    name: "get 1 KiB",
    ops: 5000,
};
const CREATE_1K: Workload = Workload {
    name: "create-if-absent 1 KiB",
    ops: 1000,
};
const CAS_1K: Workload = Workload {
    name: "CAS update 1 KiB",
    ops: 2000,
};
const PUT_4M: Workload = Workload {
    name: "put 4 MiB",
    ops: 8,
};
const GET_4M: Workload = Workload {
    name: "get 4 MiB",
    ops: 20,
};
const LIST_10K: Workload = Workload {
    name: "list 10k keys",
    ops: 3,
};
const CONC_16: Workload = Workload {
    name: "16 concurrent puts 1 KiB",
    ops: 16 * 32,
};

fn payload(n: usize) -> Bytes {
    (0..n).map(|i| (i % 251) as u8).collect()
}

/// Runs one batch; `None` if the subject does not support the workload.
async fn batch<S: Subject>(s: &S, w: Workload, run: usize) -> Option<Duration> {
    let small = payload(1024);
    let big = payload(4 << 20);
    let start = Instant::now();
    match w.name {
        n if n == PUT_1K.name => {
            for i in 0..w.ops {
                s.put(format!("put/{}", i % 64), small.clone()).await;
            }
        }
        n if n == GET_1K.name => {
            let start = Instant::now();
            for _ in 0..w.ops {
                s.get("get/one".into()).await;
            }
            return Some(start.elapsed());
        }
        n if n == CREATE_1K.name => {
            for i in 0..w.ops {
                s.create(format!("create/{run}/{i}"), small.clone()).await?;
            }
        }
        n if n == CAS_1K.name => {
            for _ in 0..w.ops {
                s.cas("cas/one".into(), small.clone()).await?;
            }
        }
        n if n == PUT_4M.name => {
            for i in 0..w.ops {
                s.put(format!("big/{}", i % 4), big.clone()).await;
            }
        }
        n if n == GET_4M.name => {
            let start = Instant::now();
            for _ in 0..w.ops {
                s.get("big/get".into()).await;
            }
            return Some(start.elapsed());
        }
        n if n == LIST_10K.name => {
            let start = Instant::now();
            for _ in 0..w.ops {
                assert_eq!(s.list("list/".into()).await, 10_000, "{}: listing", s.name());
            }
            return Some(start.elapsed());
        }
        n if n == CONC_16.name => {
            let tasks: Vec<_> = (0..16)
                .map(|t| {
                    let (s, data) = (s.clone(), small.clone());
                    tokio::spawn(async move {
                        for i in 0..w.ops / 16 {
                            s.put(format!("conc/{t}/{}", i % 8), data.clone()).await;
                        }
                    })
                })
                .collect();
            for t in tasks {
                t.await.expect("task");
            }
        }
        other => unreachable!("{other}"),
    }
    Some(start.elapsed())
}

/// Prepares what read workloads need.
async fn setup<S: Subject>(s: &S) {
    s.put("get/one".into(), payload(1024)).await;
    s.put("big/get".into(), payload(4 << 20)).await;
    s.put("cas/one".into(), payload(1024)).await;
    let tasks: Vec<_> = (0..4)
        .map(|t| {
            let s = s.clone();
            tokio::spawn(async move {
                for i in (t..10_000).step_by(4) {
                    s.put(format!("list/{i:05}"), Bytes::from_static(b"x")).await;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("setup task");
    }
}

/// Whether each run of `w` gets a fresh pair of stores (see the module docs): the workloads
/// that create or replace files, except CAS, which needs the key it swaps.
fn fresh_per_run(w: Workload) -> bool {
    [PUT_1K.name, CREATE_1K.name, PUT_4M.name, CONC_16.name].contains(&w.name)
}

/// Runs `workloads` on `ours` and `peer` (set up once). `fresh(run)` gives the pair a run of
/// a [`fresh_per_run`] workload uses, or `None` to use the set-up pair.
async fn compare<A: Subject, B: Subject>(
    group: &str,
    (ours, peer): (&A, &B),
    fresh: impl AsyncFn(usize) -> Option<(A, B)>,
    workloads: &[Workload],
    rows: &mut Vec<Row>,
) {
    setup(ours).await;
    setup(peer).await;
    for &w in workloads {
        let mut a = Vec::new();
        let mut b = Vec::new();
        let mut unsupported = false;
        // One warm-up run each, then interleaved measured runs in alternating order.
        let _ = batch(ours, w, 1000).await;
        let _ = batch(peer, w, 1000).await;
        for rep in 0..REPS {
            let (first_ours, run) = (rep % 2 == 0, rep);
            let pair = if fresh_per_run(w) { fresh(run).await } else { None };
            let (ours, peer) = pair.as_ref().map_or((ours, peer), |(a, b)| (a, b));
            for side in [first_ours, !first_ours] {
                if side {
                    a.push(batch(ours, w, run).await.expect("ours supports every workload"));
                } else {
                    match batch(peer, w, run).await {
                        Some(d) => b.push(d),
                        None => unsupported = true,
                    }
                }
            }
        }
        let row = Row {
            group: group.to_owned(),
            workload: w.name,
            ours: ours.name(),
            peer: peer.name(),
            ours_sample: Sample::new(&a, w.ops),
            peer_sample: (!unsupported).then(|| Sample::new(&b, w.ops)),
            paired_ratio: (!unsupported).then(|| report::paired_ratio(&a, &b)),
        };
        eprintln!("{}", row.line());
        rows.push(row);
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let filter = std::env::args().nth(1).unwrap_or_default();
    let mut rows = Vec::new();
    let all = [
        PUT_1K, GET_1K, CREATE_1K, CAS_1K, PUT_4M, GET_4M, LIST_10K, CONC_16,
    ];
    rt.block_on(async {
        if "memory".contains(&filter) || filter.is_empty() {
            let all: Vec<Workload> = all
                .iter()
                .map(|w| {
                    w.scaled(if w.ops < 100 {
                        40
                    } else if w.ops < 1000 {
                        4
                    } else {
                        5
                    })
                })
                .collect();
            let ours = Ours::new("store MemoryStore", store_memory::MemoryStore::new());
            let os = ObjStore::new(
                "object_store InMemory",
                Arc::new(object_store::memory::InMemory::new()),
                true,
            );
            compare("memory", (&ours, &os), async |_| None, &all, &mut rows).await;
            let ours = Ours::new("store MemoryStore", store_memory::MemoryStore::new());
            let dal = Dal {
                name: "OpenDAL memory",
                op: opendal::Operator::new(opendal::services::Memory::default()).expect("opendal"),
            };
            compare("memory", (&ours, &dal), async |_| None, &all, &mut rows).await;
        }
        if "fs".contains(&filter) || filter.is_empty() {
            fs_rows(&all, &mut rows).await;
        }
    });
    if !report::write(&rows) {
        std::process::exit(1);
    }
}

async fn fs_rows(all: &[Workload], rows: &mut Vec<Row>) {
    let base = std::env::temp_dir().join(format!("store-compare-{}", std::process::id()));
    let made = std::cell::Cell::new(0);
    // A new directory under `base`, never one used before in this process.
    let dir = |tag: &str| {
        made.set(made.get() + 1);
        let d = base.join(format!("{tag}-{}", made.get()));
        std::fs::create_dir_all(&d).expect("temp dir");
        d
    };
    // The two directories of a run, made one after the other (ours first in even runs).
    let dirs = |run: usize| {
        if run.is_multiple_of(2) {
            let a = dir("ours");
            (a, dir("peer"))
        } else {
            let b = dir("peer");
            (dir("ours"), b)
        }
    };
    let lfs = |fsync: bool| {
        move |d: &Path| {
            let store = object_store::local::LocalFileSystem::new_with_prefix(d)
                .expect("LocalFileSystem")
                .with_fsync(fsync);
            let name = if fsync {
                "object_store LocalFileSystem with_fsync"
            } else {
                "object_store LocalFileSystem"
            };
            // LocalFileSystem refuses PutMode::Update: it has no locking.
            ObjStore::new(name, Arc::new(store), false)
        }
    };
    let dal = |d: &Path| Dal {
        name: "OpenDAL fs",
        op: opendal::Operator::new(
            opendal::services::Fs::default().root(d.to_str().expect("utf-8 temp dir")),
        )
        .expect("opendal fs"),
    };

    let none = Durability::None;
    fs_group("fs, no fsync", none, lfs(false), &dirs, all, rows).await;
    fs_group("fs, no fsync", none, dal, &dirs, all, rows).await;
    // Durable writes are ~100× slower per operation: smaller batches.
    let durable: Vec<Workload> = all
        .iter()
        .map(|w| {
            if w.ops >= 100 {
                Workload {
                    ops: w.ops / 10,
                    ..*w
                }
            } else {
                *w
            }
        })
        .collect();
    fs_group("fs, durable", Durability::Full, lfs(true), &dirs, &durable, rows).await;
    let _ = std::fs::remove_dir_all(&base);
}

/// One group of disk rows: FsStore with `durability` against the store `peer` opens on a
/// directory, each on directories from `dirs` (a fresh pair per run of a write workload).
async fn fs_group<P: Subject>(
    group: &str,
    durability: Durability,
    peer: impl Fn(&Path) -> P,
    dirs: &impl Fn(usize) -> (PathBuf, PathBuf),
    workloads: &[Workload],
    rows: &mut Vec<Row>,
) {
    let open = async |run| {
        let (a, b) = dirs(run);
        let name = match durability {
            Durability::None => "store FsStore (no fsync)",
            _ => "store FsStore (durable)",
        };
        let ours = FsStore::builder(a)
            .durability(durability)
            .open()
            .await
            .expect("FsStore");
        (Ours::new(name, ours), peer(&b))
    };
    let (ours, peer_store) = open(0).await;
    let fresh = async |run| {
        let pair = open(run).await;
        // Everything written back, so no run times the write-back of another's files.
        let synced = std::process::Command::new("sync").status().expect("run sync");
        assert!(synced.success(), "sync failed");
        Some(pair)
    };
    compare(group, (&ours, &peer_store), fresh, workloads, rows).await;
}
