//! `cas_by_version` and `get` through `EtcdRecords`, next to the raw etcd client doing the
//! same requests, to measure the crate's overhead (target: at most 1.2×).
//!
//! Needs a running etcd: `bash scripts/etcd.sh start && eval "$(bash scripts/etcd.sh env)"`,
//! then `cargo bench -p store-etcd --bench etcd -- --warm-up-time 1 --measurement-time 3`.
//! Without `STORE_ETCD_ENDPOINTS` it prints a message and measures nothing.

use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use criterion::Criterion;
use etcd_client::{Compare, CompareOp, Txn, TxnOp};
use store_core::{Key, Record, RecordStore};
use store_etcd::{EtcdOptions, EtcdRecords};

/// The stored form `EtcdRecords` writes for a value without expiry (format byte, "never",
/// value), so the raw client writes exactly the same bytes.
fn envelope(value: &[u8]) -> Vec<u8> {
    let mut v = vec![1u8];
    v.extend_from_slice(&u64::MAX.to_be_bytes());
    v.extend_from_slice(value);
    v
}

/// What `EtcdRecords` compares a stored value with: "not expired now".
fn threshold() -> Vec<u8> {
    let ms = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
    let mut t = vec![1u8];
    t.extend_from_slice(&ms.to_be_bytes());
    t
}

fn benches(c: &mut Criterion, endpoints: &str) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let prefix = format!("store-etcd-bench/{}/", std::process::id());
    let opts = EtcdOptions::from_list(endpoints).with_key_prefix(&prefix);
    let (records, mut raw) = rt.block_on(async {
        let records = EtcdRecords::connect(opts.clone()).await.unwrap();
        let raw = etcd_client::Client::connect(opts.endpoints(), None)
            .await
            .unwrap();
        (records, raw)
    });
    let value = vec![b'x'; 128];
    let key = Key::new("bench/cas").unwrap();
    let raw_key = format!("{prefix}bench/raw");

    let mut g = c.benchmark_group("etcd/cas_by_version");
    let record = Record::new(key.clone(), value.clone());
    let version = rt.block_on(records.put(&record)).unwrap();
    let current = Mutex::new(record.with_version(version));
    g.bench_function("EtcdRecords", |b| {
        b.to_async(&rt).iter(|| async {
            let r = current.lock().unwrap().clone();
            let new = records.cas_by_version(&r).await.unwrap();
            current.lock().unwrap().version = new;
        })
    });
    let rev = rt
        .block_on(raw.put(raw_key.as_str(), envelope(&value), None))
        .unwrap()
        .header()
        .unwrap()
        .revision();
    let raw_current = Mutex::new(rev);
    let kv = raw.kv_client();
    g.bench_function("raw etcd-client txn", |b| {
        b.to_async(&rt).iter(|| async {
            let rev = *raw_current.lock().unwrap();
            let txn = Txn::new()
                .when([
                    Compare::mod_revision(raw_key.as_str(), CompareOp::Equal, rev),
                    Compare::value(raw_key.as_str(), CompareOp::Greater, threshold()),
                ])
                .and_then([TxnOp::put(raw_key.as_str(), envelope(&value), None)])
                .or_else([TxnOp::get(raw_key.as_str(), None)]);
            let resp = kv.clone().txn(txn).await.unwrap();
            assert!(resp.succeeded());
            *raw_current.lock().unwrap() = resp.header().unwrap().revision();
        })
    });
    g.finish();

    let mut g = c.benchmark_group("etcd/get");
    g.bench_function("EtcdRecords", |b| {
        b.to_async(&rt).iter(|| async {
            let r = records.get(&key).await.unwrap();
            assert_eq!(r.value.len(), value.len());
        })
    });
    g.bench_function("raw etcd-client get", |b| {
        b.to_async(&rt).iter(|| async {
            let resp = kv.clone().get(raw_key.as_str(), None).await.unwrap();
            assert_eq!(resp.kvs()[0].value().len(), value.len() + 9);
        })
    });
    g.finish();

    rt.block_on(async {
        let _ = raw
            .delete(
                prefix.as_str(),
                Some(etcd_client::DeleteOptions::new().with_prefix()),
            )
            .await;
    });
}

fn main() {
    let Ok(endpoints) = std::env::var("STORE_ETCD_ENDPOINTS") else {
        eprintln!(
            "skipping the etcd benchmarks: STORE_ETCD_ENDPOINTS is not set \
             (bash scripts/etcd.sh start && eval \"$(bash scripts/etcd.sh env)\")"
        );
        return;
    };
    let mut c = Criterion::default().configure_from_args();
    benches(&mut c, &endpoints);
    c.final_summary();
}
