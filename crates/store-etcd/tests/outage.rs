//! Outage test: with one member of a three-node cluster down, the cluster still has a
//! quorum, so (nearly) every write must be acknowledged at once, without the caller
//! retrying, and every acknowledged write must be there afterwards.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use store_core::{Error, Key, Record, RecordStore, Version};
use store_etcd::{EtcdOptions, EtcdRecords};

const TASKS: usize = 4;
/// Each round is one unconditional put and one CAS increment.
const ROUNDS: u64 = 250;

/// What one task of the load saw.
#[derive(Default)]
struct Tally {
    /// Writes attempted and writes acknowledged.
    attempted: u64,
    acknowledged: u64,
    /// Keys of acknowledged puts and the value each was given.
    puts: BTreeMap<Key, String>,
    /// CAS increments acknowledged, and those that failed (which may or may not have
    /// been applied).
    increments: u64,
    uncertain_increments: u64,
    /// The first failures, for the report.
    failures: Vec<String>,
}

impl Tally {
    fn failed(&mut self, what: &str, e: &Error) {
        if self.failures.len() < 5 {
            self.failures.push(format!("{what}: {e}"));
        }
    }
}

fn count(r: &Record) -> u64 {
    std::str::from_utf8(&r.value).unwrap().parse().unwrap()
}

/// One writer: its own counter (so a CAS conflicts with nobody) and its own put keys.
async fn load(records: Arc<EtcdRecords>, task: usize) -> Tally {
    let mut tally = Tally::default();
    let counter = Key::new(format!("t{task}/counter")).unwrap();
    let mut current: (u64, Version) = {
        let r = records.get(&counter).await.expect("reading the counter");
        (count(&r), r.version)
    };
    for round in 0..ROUNDS {
        let key = Key::new(format!("t{task}/put/{round:04}")).unwrap();
        let value = format!("{task}-{round}");
        tally.attempted += 1;
        match records.put(&Record::new(key.clone(), value.clone())).await {
            Ok(_) => {
                tally.acknowledged += 1;
                tally.puts.insert(key, value);
            }
            Err(e) => tally.failed("put", &e),
        }

        let next = Record::new(counter.clone(), (current.0 + 1).to_string()).with_version(current.1.clone());
        tally.attempted += 1;
        match records.cas_by_version(&next).await {
            Ok(v) => {
                tally.acknowledged += 1;
                tally.increments += 1;
                current = (current.0 + 1, v);
            }
            Err(e) => {
                tally.failed("cas_by_version", &e);
                tally.uncertain_increments += 1;
                // Not retried: re-read where the counter is and go on from there.
                let r = records.get(&counter).await.expect("re-reading the counter");
                current = (count(&r), r.version);
            }
        }
    }
    tally
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writes_go_on_while_one_member_is_down() {
    let Some(eps) = common::endpoints(
        "STORE_ETCD_CLUSTER_ENDPOINTS",
        "writes_go_on_while_one_member_is_down",
    ) else {
        return;
    };
    let prefix = common::run_prefix("outage");
    let opts = EtcdOptions::from_list(&eps).with_key_prefix(&prefix);
    let endpoints = opts.endpoints().to_vec();
    assert_eq!(
        endpoints.len(),
        3,
        "STORE_ETCD_CLUSTER_ENDPOINTS must list three members"
    );
    let records = Arc::new(EtcdRecords::connect(opts).await.unwrap());
    for task in 0..TASKS {
        let counter = Key::new(format!("t{task}/counter")).unwrap();
        records.create(&Record::new(counter, "0")).await.unwrap();
    }
    // Warm up, so the client has had a connection to every member before one goes.
    for i in 0..30 {
        let k = Key::new(format!("warm/{i}")).unwrap();
        records.put(&Record::new(k, "w")).await.unwrap();
    }

    // A follower, so that the cluster keeps its leader: what is measured is a member being
    // down, not an election.
    let _revive = common::ReviveOnDrop;
    let down = (common::leader_index(&endpoints).await + 1) % 3;
    let pid = common::kill_member(down).await;
    eprintln!("killed member m{} (pid {pid}) before the load", down + 1);

    let tasks: Vec<_> = (0..TASKS)
        .map(|task| tokio::spawn(load(records.clone(), task)))
        .collect();
    let all = async {
        let mut tallies = Vec::new();
        for t in tasks {
            tallies.push(t.await.unwrap());
        }
        tallies
    };
    let tallies = tokio::time::timeout(Duration::from_secs(180), all)
        .await
        .expect("the write load stalled with one member down");

    let attempted: u64 = tallies.iter().map(|t| t.attempted).sum();
    let acknowledged: u64 = tallies.iter().map(|t| t.acknowledged).sum();
    let failures: Vec<&String> = tallies.iter().flat_map(|t| &t.failures).collect();
    eprintln!(
        "{acknowledged} of {attempted} writes acknowledged ({:.2}%) with member m{} down; first failures: {failures:#?}",
        100.0 * acknowledged as f64 / attempted as f64,
        down + 1
    );
    assert_eq!(attempted, TASKS as u64 * ROUNDS * 2);
    assert!(
        acknowledged * 100 >= attempted * 99,
        "only {acknowledged} of {attempted} writes were acknowledged with one member of three \
         down; first failures: {failures:#?}"
    );

    // Every acknowledged write is there (read with the member still down).
    for (task, tally) in tallies.iter().enumerate() {
        let keys: Vec<Key> = tally.puts.keys().cloned().collect();
        let got = records.get_many(&keys).await.unwrap();
        for ((key, value), got) in tally.puts.iter().zip(got) {
            let got = got.unwrap_or_else(|| panic!("acknowledged put of {key} is missing"));
            assert_eq!(&got.value[..], value.as_bytes(), "{key}");
        }
        let counter = Key::new(format!("t{task}/counter")).unwrap();
        let total = count(&records.get(&counter).await.unwrap());
        assert!(
            total >= tally.increments && total <= tally.increments + tally.uncertain_increments,
            "task {task}'s counter is {total}: {} increments acknowledged, {} uncertain",
            tally.increments,
            tally.uncertain_increments
        );
    }

    drop(_revive);
    common::clean_up(&eps, &prefix).await;
}
