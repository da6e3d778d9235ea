//! What listings cost in requests: 10,000 keys listed by `RedisStore::list` (with versions
//! and keys only) and by `RedisRecords::list_keys` (without expiries, and with a tenth of
//! the records expiring) in `SCAN` pages and batched head reads, not a request per key, so
//! a return to per-key round trips fails here.
//!
//! # How the requests are counted
//!
//! The listing store talks to Redis through a TCP proxy ([`CountingProxy`]) that counts the
//! commands the client sends, by name. A client sends each command as a RESP array of bulk
//! strings (`*<n>\r\n`, then `n` times `$<len>\r\n<bytes>\r\n`, the first being the
//! command's name), or as one inline line; the proxy follows that framing in the bytes the
//! client sends, counting each command before forwarding it, so a command is counted
//! before its reply can reach the client.
//!
//! Counting at the client, per store handle, is exact however many other tests use the
//! same server at the time. The server's own counters are not: `INFO commandstats` counts
//! every client, and this crate's other tests (and other engineers' runs) use the server
//! alongside; and the installed Redis 7.0 keeps no per-connection command count in
//! `CLIENT LIST`. Every command is counted, not only the listing's own: a listing that sent
//! anything per key would be caught as well. Each test first checks the count on one
//! `head` (or `get`), which must be exactly one command.
//!
//! `SCAN` walks the whole database whatever the prefix (one command per about 1000 keys of
//! the database), so its commands are held to the database's size (`DBSIZE`, read before
//! and after the listing on an uncounted connection) and everything else to the number of
//! keys listed.
//!
//! The keys are written through a separate, uncounted handle and deleted before the test
//! asserts, so a failing test leaves nothing behind.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use futures::TryStreamExt;
use store_core::{Backend, Key, ListOptions, Meta, RecordStore};
use store_redis::{RedisOptions, RedisRecords, RedisStore};
use store_testkit::records::seed_records;
use store_testkit::wire::{CountingProxy, WireCounter};

/// How many keys are listed.
const N: usize = 10_000;
/// At most this many commands other than `SCAN` per listed key. A listing reads heads 256
/// keys per script call (40 commands for [`N`]); one command per key would be 100 times
/// over.
const BUDGET: f64 = 0.01;
/// At most this many `SCAN` commands per key in the database (which visit about 1000 each).
const SCAN_BUDGET: f64 = 0.002;
/// Records written per `put_many` while seeding, and how many of those run at once.
const SEED_CHUNK: usize = 500;
const SEED_CONCURRENCY: usize = 8;

/// Commands sent, by upper-case name.
type Commands = BTreeMap<String, u64>;

/// Follows the RESP framing of a client's byte stream, fed in pieces as they arrive, and
/// counts its commands by name.
#[derive(Default)]
struct RespCommands {
    /// The header line being read (`*<n>`, `$<len>`, or an inline command).
    line: Vec<u8>,
    /// Bulk strings of the current command still to come.
    args_left: u64,
    /// Bytes of the current bulk string (with its `\r\n`) still to come.
    body_left: usize,
    /// The command's name while it is being read: its first bulk string.
    name: Option<Vec<u8>>,
    /// Whether the next bulk string is the command's name.
    name_next: bool,
}

impl WireCounter for RespCommands {
    type Tally = Commands;

    /// Counts into `commands` each command whose name completes in `bytes`.
    fn feed(&mut self, mut bytes: &[u8], commands: &mut Commands) {
        while !bytes.is_empty() {
            if self.body_left > 0 {
                let n = self.body_left.min(bytes.len());
                if let Some(name) = &mut self.name {
                    name.extend_from_slice(&bytes[..n]);
                }
                self.body_left -= n;
                bytes = &bytes[n..];
                if self.body_left == 0
                    && let Some(name) = self.name.take()
                {
                    count(commands, &name[..name.len().saturating_sub(2)]);
                }
                continue;
            }
            let Some(end) = bytes.iter().position(|&b| b == b'\n') else {
                self.line.extend_from_slice(bytes);
                return;
            };
            self.line.extend_from_slice(&bytes[..=end]);
            bytes = &bytes[end + 1..];
            let line = std::mem::take(&mut self.line);
            let text = String::from_utf8_lossy(&line);
            let text = text.trim_end();
            let number = |s: &str| -> u64 {
                s.parse()
                    .unwrap_or_else(|_| panic!("not a RESP length in a client command: {text:?}"))
            };
            match text.as_bytes().first() {
                Some(b'*') if self.args_left == 0 => {
                    self.args_left = number(&text[1..]);
                    self.name_next = true;
                }
                Some(b'$') if self.args_left > 0 => {
                    self.args_left -= 1;
                    self.body_left = usize::try_from(number(&text[1..])).unwrap() + 2;
                    if std::mem::take(&mut self.name_next) {
                        self.name = Some(Vec::new());
                    }
                }
                _ if self.args_left > 0 => panic!("expected a bulk string in a client command: {text:?}"),
                // An inline command: its name is the first word.
                _ => {
                    if let Some(name) = text.split_whitespace().next() {
                        count(commands, name.as_bytes());
                    }
                }
            }
        }
    }
}

fn count(commands: &mut Commands, name: &[u8]) {
    *commands
        .entry(String::from_utf8_lossy(name).to_uppercase())
        .or_default() += 1;
}

/// A proxy on 127.0.0.1 to the Redis server, counting the commands sent through it.
type Proxy = CountingProxy<RespCommands>;

/// A proxy to the server at `url` (`redis://…`), and the same URL with the proxy's address.
async fn proxy_to(url: &str) -> (Proxy, String) {
    let mut proxied = redis::parse_redis_url(url).unwrap_or_else(|| panic!("{url} is not a Redis URL"));
    assert_eq!(
        proxied.scheme(),
        "redis",
        "{url}: the counting proxy reads plain RESP over TCP (redis://) only"
    );
    let target = format!(
        "{}:{}",
        proxied.host_str().unwrap_or("127.0.0.1"),
        proxied.port().unwrap_or(6379)
    );
    let proxy = Proxy::start(&target).await.unwrap();
    proxied.set_host(Some("127.0.0.1")).unwrap();
    proxied.set_port(Some(proxy.addr().port())).unwrap();
    (proxy, proxied.to_string())
}

/// What one listing sent: `SCAN` commands, all other commands (by name), and the largest
/// database size seen around it.
struct Spent {
    scans: u64,
    others: Commands,
    db_size: u64,
}

impl Spent {
    fn other_total(&self) -> u64 {
        self.others.values().sum()
    }
}

impl std::fmt::Display for Spent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} commands ({:.4} per key): SCAN {} (database of {} keys), then {:?}",
            self.scans + self.other_total(),
            (self.scans + self.other_total()) as f64 / N as f64,
            self.scans,
            self.db_size,
            self.others
        )
    }
}

/// The commands sent through `proxy` while `listing` runs, and what it returned.
async fn measure<T>(proxy: &Proxy, url: &str, listing: impl std::future::Future<Output = T>) -> (T, Spent) {
    let mut raw = common::raw(url).await;
    let size_before: u64 = redis::cmd("DBSIZE").query_async(&mut raw).await.unwrap();
    let before = proxy.tally();
    let out = listing.await;
    let mut others = proxy.tally();
    let size_after: u64 = redis::cmd("DBSIZE").query_async(&mut raw).await.unwrap();
    for (name, n) in before {
        *others.entry(name).or_default() -= n;
    }
    others.retain(|_, n| *n > 0);
    let scans = others.remove("SCAN").unwrap_or(0);
    let spent = Spent {
        scans,
        others,
        db_size: size_before.max(size_after),
    };
    (out, spent)
}

/// Fails unless `spent` is within the budgets.
fn assert_within_budget(what: &str, spent: &Spent) {
    assert!(spent.scans >= 1, "{what}: no SCAN counted: {spent}");
    assert!(
        spent.scans as f64 <= SCAN_BUDGET * spent.db_size as f64 + 2.0,
        "{what} of {N}: {spent}"
    );
    assert!(
        spent.other_total() as f64 <= BUDGET * N as f64,
        "{what} of {N}: {spent}"
    );
}

fn key(s: &str) -> Key {
    Key::new(s).unwrap()
}

/// The listed keys, in order: `many/00000` …
fn names() -> Vec<String> {
    (0..N).map(|i| format!("many/{i:05}")).collect()
}

/// Writes the records at `indices` of [`names`] (value `v`), expiring at `expires_at`.
async fn seed(records: &RedisRecords, indices: Vec<usize>, expires_at: Option<SystemTime>) {
    let all = names();
    let keys = indices.into_iter().map(|i| key(&all[i]));
    seed_records(records, keys, "v", expires_at, SEED_CHUNK, SEED_CONCURRENCY)
        .await
        .expect("seed the records");
}

/// The server's URL, a record handle on `prefix` that is not counted, with the [`N`]
/// records written, a proxy to the server and the proxy's URL.
async fn setup(test: &str, prefix: &str) -> Option<(String, RedisRecords, Proxy, String)> {
    let url = common::url(test)?;
    let direct = RedisRecords::connect(RedisOptions::new(&url).with_key_prefix(prefix))
        .await
        .unwrap();
    seed(&direct, (0..N).collect(), None).await;
    let (proxy, proxy_url) = proxy_to(&url).await;
    Some((url, direct, proxy, proxy_url))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_10000_objects_costs_scan_pages_and_head_batches_not_a_request_per_object() {
    const TEST: &str = "listing_10000_objects_costs_scan_pages_and_head_batches_not_a_request_per_object";
    let prefix = common::run_prefix("listing-cost");
    let Some((url, _direct, proxy, proxy_url)) = setup(TEST, &prefix).await else {
        return;
    };
    let store = RedisStore::connect(RedisOptions::new(&proxy_url).with_key_prefix(&prefix))
        .await
        .unwrap();

    // The first script call on a server that has not loaded the script yet (after a
    // restart) is three commands (EVALSHA, SCRIPT LOAD, EVALSHA): load it before counting.
    store.head(&key("many/00000")).await.unwrap();
    let before = proxy.tally();
    let head = store.head(&key("many/01234")).await;
    let head_commands = proxy.tally().values().sum::<u64>() - before.values().sum::<u64>();

    let mut listings = Vec::new();
    for (what, opts) in [
        ("list", ListOptions::default()),
        ("list, keys only", ListOptions::default().with_keys_only(true)),
    ] {
        let listing = store.list(opts).try_collect::<Vec<Meta>>();
        let (listed, spent) = measure(&proxy, &url, listing).await;
        eprintln!("RedisStore::{what} of {N}: {spent}");
        listings.push((what, listed, spent));
    }
    common::clean_up(&url, &prefix).await;

    assert!(head.is_ok(), "{head:?}");
    assert_eq!(head_commands, 1, "one head is one command");
    for (what, listed, spent) in listings {
        let keys: Vec<String> = listed.unwrap().into_iter().map(|m| m.key.to_string()).collect();
        assert!(
            keys == names(),
            "{what}: listed {} keys, not the {N} written",
            keys.len()
        );
        assert_within_budget(what, &spent);
    }
}

/// `list_keys` of [`N`] records through `records`, and what it sent.
async fn list_keys(
    records: &RedisRecords,
    proxy: &Proxy,
    url: &str,
) -> (store_core::Result<Vec<Key>>, Spent) {
    let listing = async {
        match records.list_keys("many/*").await {
            Ok(keys) => keys.try_collect().await,
            Err(e) => Err(e),
        }
    };
    measure(proxy, url, listing).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_list_keys_of_10000_costs_scan_pages_and_head_batches_also_with_expiries() {
    const TEST: &str = "records_list_keys_of_10000_costs_scan_pages_and_head_batches_also_with_expiries";
    let prefix = common::run_prefix("list-keys-cost");
    let Some((url, direct, proxy, proxy_url)) = setup(TEST, &prefix).await else {
        return;
    };
    let records = RedisRecords::connect(RedisOptions::new(&proxy_url).with_key_prefix(&prefix))
        .await
        .unwrap();

    let before = proxy.tally();
    let got = records.get(&key("many/04321")).await;
    let get_commands = proxy.tally().values().sum::<u64>() - before.values().sum::<u64>();

    let (never_expiring, plain) = list_keys(&records, &proxy, &url).await;
    eprintln!("RedisRecords::list_keys of {N} records without expiry: {plain}");
    // A tenth of the records get an expiry well after the test.
    let later = SystemTime::now() + Duration::from_secs(600);
    seed(&direct, (0..N).step_by(10).collect(), Some(later)).await;
    let (tenth_expiring, expiring) = list_keys(&records, &proxy, &url).await;
    eprintln!("RedisRecords::list_keys of {N} records, a tenth expiring: {expiring}");
    common::clean_up(&url, &prefix).await;

    assert!(got.is_ok(), "{got:?}");
    assert_eq!(get_commands, 1, "one get is one command");
    for (what, listed, spent) in [
        ("list_keys without expiry", never_expiring, plain),
        ("list_keys, a tenth expiring", tenth_expiring, expiring),
    ] {
        let keys: Vec<String> = listed.unwrap().into_iter().map(|k| k.to_string()).collect();
        assert!(
            keys == names(),
            "{what}: listed {} keys, not the {N} written",
            keys.len()
        );
        assert_within_budget(what, &spent);
    }
}
