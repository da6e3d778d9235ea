//! Shared by the integration tests: finding Redis, unique key prefixes, clean-up, and
//! killing and reviving the server.

#![allow(dead_code)] // each test file uses a different part

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The server's URL from `STORE_REDIS_URL`, or `None` (after a "skipping" line) when it is
/// unset and `STORE_SKIP_REDIS=1`. Unset without the opt-out is a failure with guidance:
/// CI never skips.
pub(crate) fn url(test: &str) -> Option<String> {
    match std::env::var("STORE_REDIS_URL") {
        Ok(v) if !v.trim().is_empty() => Some(v),
        _ if std::env::var("STORE_SKIP_REDIS").is_ok_and(|v| v == "1") => {
            eprintln!("skipping {test}: STORE_REDIS_URL is not set and STORE_SKIP_REDIS=1");
            None
        }
        _ => panic!(
            "{test} needs Redis: STORE_REDIS_URL is not set. Run `bash scripts/redis.sh start && \
             eval \"$(bash scripts/redis.sh env)\"` from the repository root, or set \
             STORE_SKIP_REDIS=1 to skip the Redis tests"
        ),
    }
}

/// A key prefix no other test run uses.
pub(crate) fn run_prefix(test: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "store-redis-tests/{test}/{}-{nanos}-{}/",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A plain client connection, for looking at what the stores wrote.
pub(crate) async fn raw(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// Deletes every key under `prefix` (best effort: the prefix is unique anyway).
pub(crate) async fn clean_up(url: &str, prefix: &str) {
    let Ok(client) = redis::Client::open(url) else {
        return;
    };
    let Ok(mut c) = client.get_multiplexed_async_connection().await else {
        return;
    };
    let pattern = format!("{prefix}*");
    let mut cursor: u64 = 0;
    loop {
        let Ok((next, keys)): redis::RedisResult<(u64, Vec<String>)> = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut c)
            .await
        else {
            return;
        };
        if !keys.is_empty() {
            let _: redis::RedisResult<()> = redis::cmd("DEL").arg(&keys).query_async(&mut c).await;
        }
        if next == 0 {
            return;
        }
        cursor = next;
    }
}

fn service_dir() -> PathBuf {
    match std::env::var("STORE_REDIS_SERVICE_DIR") {
        Ok(d) => PathBuf::from(d),
        Err(_) => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/services/redis"),
    }
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/redis.sh")
}

/// Kills the server with SIGKILL and waits until its process has exited (gone, or a
/// zombie: either way its sockets are closed and its port refuses connections). Returns
/// the pid.
pub(crate) async fn kill_server() -> u32 {
    let pid_file = service_dir().join("redis.pid");
    let pid = std::fs::read_to_string(&pid_file).unwrap_or_else(|e| {
        panic!(
            "cannot read {}: {e} (start the server with scripts/redis.sh start)",
            pid_file.display()
        )
    });
    let pid: u32 = pid.trim().parse().unwrap();
    let status = std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -KILL {pid} failed");
    for _ in 0..500 {
        // The state is the field after the command name in parentheses.
        let exited = match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Ok(stat) => stat
                .rsplit_once(") ")
                .is_some_and(|(_, rest)| rest.starts_with(['Z', 'X'])),
            Err(_) => true,
        };
        if exited {
            return pid;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    panic!("redis-server (pid {pid}) is still running after SIGKILL")
}

/// Restarts the server if it is not running (`scripts/redis.sh revive`, which keeps its
/// data), waiting until it answers.
pub(crate) fn revive() {
    let status = std::process::Command::new("bash")
        .arg(script())
        .arg("revive")
        .status();
    assert!(
        status.as_ref().is_ok_and(|s| s.success()),
        "{} revive failed: {status:?}",
        script().display()
    );
}

/// Revives the server when dropped, also when the test panics, so a failing test does not
/// leave the server dead for the tests after it.
pub(crate) struct ReviveOnDrop;

impl Drop for ReviveOnDrop {
    fn drop(&mut self) {
        let status = std::process::Command::new("bash")
            .arg(script())
            .arg("revive")
            .status();
        let ok = status.as_ref().is_ok_and(|s| s.success());
        // While unwinding, report instead of panicking a second time.
        if !ok && std::thread::panicking() {
            eprintln!("{} revive failed: {status:?}", script().display());
        } else {
            assert!(ok, "{} revive failed: {status:?}", script().display());
        }
    }
}
