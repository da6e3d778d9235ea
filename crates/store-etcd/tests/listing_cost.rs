//! What listings cost in requests: 10,000 keys listed by `EtcdStore::list` (with values and
//! keys only) and by `EtcdRecords::list_keys` (without expiries, and with a tenth of the
//! records expiring) in range pages, not a request per key, so a return to per-key round
//! trips fails here.
//!
//! # How the requests are counted
//!
//! The listing store talks to etcd through a TCP proxy ([`CountingProxy`]) that counts the
//! gRPC calls the client sends. gRPC runs over HTTP/2 (cleartext, "prior knowledge": the
//! 24-byte preface, then frames), and each call is one client-initiated stream, opened by
//! exactly one HEADERS frame from the client (a gRPC client sends no trailers; headers too
//! large for one frame go on in CONTINUATION frames, which are not counted). So the proxy
//! reads the frame headers of what the client sends (9 bytes each: payload length, type,
//! flags, stream) and counts the HEADERS frames, before forwarding the bytes, so a call is
//! counted before its reply can reach the client.
//!
//! Counting at the client, per store handle, is exact however many other tests use the
//! same etcd at the time; etcd's own counters (`/metrics`, `grpc_server_handled_total`)
//! count every client of the server, and `cargo test` runs this crate's other tests (and
//! other engineers' runs) alongside. What is counted is every call, not only `Range`: a
//! listing that made any other request per key would be caught as well. Each test first
//! checks the count on one `head` (or `get`), which must be exactly one call.
//!
//! The keys are written through a separate, uncounted handle, concurrently, and deleted
//! before the test asserts, so a failing test leaves nothing behind.

mod common;

use std::time::{Duration, SystemTime};

use futures::TryStreamExt;
use store_core::{Backend, Key, ListOptions, Meta, RecordStore};
use store_etcd::{EtcdOptions, EtcdRecords, EtcdStore};
use store_testkit::records::seed_records;
use store_testkit::wire::{CountingProxy, WireCounter};

/// How many keys are listed.
const N: usize = 10_000;
/// At most this many requests per listed key. A listing reads pages of 512 keys (20
/// requests for [`N`]); one request per key would be 100 times over.
const BUDGET: f64 = 0.01;
/// Records written per `put_many` while seeding, and how many of those run at once.
const SEED_CHUNK: usize = 500;
const SEED_CONCURRENCY: usize = 8;

/// The HTTP/2 client connection preface (RFC 9113, section 3.4).
const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// The HTTP/2 HEADERS frame type.
const HEADERS: u8 = 0x1;

/// Counts the HEADERS frames in an HTTP/2 client's byte stream, fed in pieces as they
/// arrive.
struct Http2Frames {
    /// Bytes of the preface still to come.
    preface_left: usize,
    /// The frame header being read.
    header: Vec<u8>,
    /// Payload bytes of the current frame still to skip.
    payload_left: usize,
}

impl Default for Http2Frames {
    fn default() -> Self {
        Http2Frames {
            preface_left: PREFACE.len(),
            header: Vec::with_capacity(9),
            payload_left: 0,
        }
    }
}

impl WireCounter for Http2Frames {
    /// The gRPC calls sent.
    type Tally = u64;

    /// Counts into `calls` the HEADERS frames that start in `bytes`.
    fn feed(&mut self, mut bytes: &[u8], calls: &mut u64) {
        while !bytes.is_empty() {
            if self.preface_left > 0 {
                let n = self.preface_left.min(bytes.len());
                let at = PREFACE.len() - self.preface_left;
                assert_eq!(
                    &bytes[..n],
                    &PREFACE[at..at + n],
                    "the client does not speak cleartext HTTP/2"
                );
                self.preface_left -= n;
                bytes = &bytes[n..];
            } else if self.payload_left > 0 {
                let n = self.payload_left.min(bytes.len());
                self.payload_left -= n;
                bytes = &bytes[n..];
            } else {
                let n = (9 - self.header.len()).min(bytes.len());
                self.header.extend_from_slice(&bytes[..n]);
                bytes = &bytes[n..];
                if let &[l0, l1, l2, kind, ..] = &self.header[..]
                    && self.header.len() == 9
                {
                    self.payload_left = u32::from_be_bytes([0, l0, l1, l2]) as usize;
                    *calls += u64::from(kind == HEADERS);
                    self.header.clear();
                }
            }
        }
    }
}

/// A proxy on 127.0.0.1 to one etcd member, counting the gRPC calls sent through it.
type Proxy = CountingProxy<Http2Frames>;

/// A proxy to the member at `endpoint` (`http://host:port`), and the proxy's endpoint.
async fn proxy_to(endpoint: &str) -> (Proxy, String) {
    let target = endpoint
        .strip_prefix("http://")
        .unwrap_or_else(|| panic!("{endpoint}: the counting proxy reads cleartext gRPC (http://) only"))
        .trim_end_matches('/');
    let proxy = Proxy::start(target).await.unwrap();
    let endpoint = format!("http://{}", proxy.addr());
    (proxy, endpoint)
}

fn key(s: &str) -> Key {
    Key::new(s).unwrap()
}

/// The listed keys, in order: `many/00000` …
fn names() -> Vec<String> {
    (0..N).map(|i| format!("many/{i:05}")).collect()
}

/// Writes the records at `indices` of [`names`] (value `v`), expiring at `expires_at`.
async fn seed(records: &EtcdRecords, indices: Vec<usize>, expires_at: Option<SystemTime>) {
    let all = names();
    let keys = indices.into_iter().map(|i| key(&all[i]));
    seed_records(records, keys, "v", expires_at, SEED_CHUNK, SEED_CONCURRENCY)
        .await
        .expect("seed the records");
}

/// The endpoint list, a handle on it that is not counted, a proxy to its first member and
/// the proxy's endpoint.
async fn setup(test: &str) -> Option<(String, EtcdRecords, Proxy, String)> {
    let eps = common::endpoints("STORE_ETCD_ENDPOINTS", test)?;
    let first = eps.split(',').next().unwrap_or_default().trim().to_owned();
    let direct = EtcdRecords::connect(EtcdOptions::from_list(&eps)).await.unwrap();
    let (proxy, endpoint) = proxy_to(&first).await;
    Some((eps, direct, proxy, endpoint))
}

/// Requests per listed key.
fn per_key(calls: u64) -> f64 {
    calls as f64 / N as f64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_10000_objects_costs_range_pages_not_a_request_per_object() {
    const TEST: &str = "listing_10000_objects_costs_range_pages_not_a_request_per_object";
    let Some((eps, direct, proxy, endpoint)) = setup(TEST).await else {
        return;
    };
    let prefix = common::run_prefix("listing-cost");
    seed(&direct.with_key_prefix(&prefix), (0..N).collect(), None).await;
    let store = EtcdStore::connect(EtcdOptions::new([endpoint.as_str()]).with_key_prefix(&prefix))
        .await
        .unwrap();

    let before = proxy.tally();
    let head = store.head(&key("many/01234")).await;
    let head_calls = proxy.tally() - before;

    let mut listings = Vec::new();
    for (what, opts) in [
        ("list", ListOptions::default()),
        ("list, keys only", ListOptions::default().with_keys_only(true)),
    ] {
        let before = proxy.tally();
        let listed: Result<Vec<Meta>, _> = store.list(opts).try_collect().await;
        let calls = proxy.tally() - before;
        eprintln!(
            "EtcdStore::{what} of {N}: {calls} requests, {:.4} per object",
            per_key(calls)
        );
        listings.push((what, listed, calls));
    }
    common::clean_up(&eps, &prefix).await;

    assert!(head.is_ok(), "{head:?}");
    assert_eq!(head_calls, 1, "one head is one request");
    for (what, listed, calls) in listings {
        let keys: Vec<String> = listed.unwrap().into_iter().map(|m| m.key.to_string()).collect();
        assert!(
            keys == names(),
            "{what}: listed {} keys, not the {N} written",
            keys.len()
        );
        assert!(calls >= 1, "{what}: no request counted");
        assert!(per_key(calls) <= BUDGET, "{what} of {N}: {calls} requests");
    }
}

/// `list_keys` of [`N`] records through `records`, and the requests it sent.
async fn list_keys(records: &EtcdRecords, proxy: &Proxy) -> (store_core::Result<Vec<Key>>, u64) {
    let before = proxy.tally();
    let listed = match records.list_keys("many/*").await {
        Ok(keys) => keys.try_collect().await,
        Err(e) => Err(e),
    };
    (listed, proxy.tally() - before)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_list_keys_of_10000_costs_range_pages_also_with_expiries() {
    const TEST: &str = "records_list_keys_of_10000_costs_range_pages_also_with_expiries";
    let Some((eps, direct, proxy, endpoint)) = setup(TEST).await else {
        return;
    };
    let prefix = common::run_prefix("list-keys-cost");
    let direct = direct.with_key_prefix(&prefix);
    seed(&direct, (0..N).collect(), None).await;
    let records = EtcdRecords::connect(EtcdOptions::new([endpoint.as_str()]).with_key_prefix(&prefix))
        .await
        .unwrap();

    let before = proxy.tally();
    let got = records.get(&key("many/04321")).await;
    let get_calls = proxy.tally() - before;

    let (never_expiring, plain_calls) = list_keys(&records, &proxy).await;
    eprintln!(
        "EtcdRecords::list_keys of {N} records without expiry: {plain_calls} requests, {:.4} per record",
        per_key(plain_calls)
    );
    // A tenth of the records get an expiry well after the test.
    let later = SystemTime::now() + Duration::from_secs(600);
    seed(&direct, (0..N).step_by(10).collect(), Some(later)).await;
    let (tenth_expiring, expiring_calls) = list_keys(&records, &proxy).await;
    eprintln!(
        "EtcdRecords::list_keys of {N} records, a tenth expiring: {expiring_calls} requests, \
         {:.4} per record",
        per_key(expiring_calls)
    );
    common::clean_up(&eps, &prefix).await;

    assert!(got.is_ok(), "{got:?}");
    assert_eq!(get_calls, 1, "one get is one request");
    for (what, listed, calls) in [
        ("without expiry", never_expiring, plain_calls),
        ("a tenth expiring", tenth_expiring, expiring_calls),
    ] {
        let keys: Vec<String> = listed.unwrap().into_iter().map(|k| k.to_string()).collect();
        assert!(
            keys == names(),
            "{what}: listed {} keys, not the {N} written",
            keys.len()
        );
        assert!(calls >= 1, "{what}: no request counted");
        assert!(
            per_key(calls) <= BUDGET,
            "list_keys of {N} records, {what}: {calls} requests"
        );
    }
}
