//! Shared by the integration tests: finding etcd, unique key prefixes, clean-up.

#![allow(dead_code)] // each test file uses a different part

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The endpoints in `var`, or `None` (after a "skipping" line) when it is unset and
/// `STORE_SKIP_ETCD=1`. Unset without the opt-out is a failure with guidance: CI never skips.
pub(crate) fn endpoints(var: &str, test: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.trim().is_empty() => Some(v),
        _ if std::env::var("STORE_SKIP_ETCD").is_ok_and(|v| v == "1") => {
            eprintln!("skipping {test}: {var} is not set and STORE_SKIP_ETCD=1");
            None
        }
        _ => panic!(
            "{test} needs etcd: {var} is not set. Run `bash scripts/etcd.sh start && \
             eval \"$(bash scripts/etcd.sh env)\"` from the repository root, or set \
             STORE_SKIP_ETCD=1 to skip the etcd tests"
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
        "store-etcd-tests/{test}/{}-{nanos}-{}/",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Deletes every key under `prefix` (best effort: the prefix is unique anyway).
pub(crate) async fn clean_up(endpoints: &str, prefix: &str) {
    let eps: Vec<&str> = endpoints.split(',').map(str::trim).collect();
    if let Ok(mut client) = etcd_client::Client::connect(&eps, None).await {
        let opts = etcd_client::DeleteOptions::new().with_prefix();
        let _ = client.delete(prefix, Some(opts)).await;
    }
}

fn service_dir() -> PathBuf {
    match std::env::var("STORE_ETCD_SERVICE_DIR") {
        Ok(d) => PathBuf::from(d),
        Err(_) => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/services/etcd"),
    }
}

/// The index (0..3) of the cluster member that is the leader now.
pub(crate) async fn leader_index(endpoints: &[String]) -> usize {
    for _ in 0..100 {
        for (i, ep) in endpoints.iter().enumerate() {
            let Ok(mut c) = etcd_client::Client::connect([ep], None).await else {
                continue;
            };
            if let Ok(s) = c.status().await
                && s.header().is_some_and(|h| h.member_id() == s.leader())
            {
                return i;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no member of {endpoints:?} says it is the leader");
}

/// Kills cluster member `index` (0..3) with SIGKILL and waits until its process has exited
/// (gone, or a zombie: either way its sockets are closed and its port refuses
/// connections). Returns the pid.
pub(crate) async fn kill_member(index: usize) -> u32 {
    let pid_file = service_dir().join(format!("m{}.pid", index + 1));
    let pid = std::fs::read_to_string(&pid_file).unwrap_or_else(|e| {
        panic!(
            "cannot read {}: {e} (start the cluster with scripts/etcd.sh start)",
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
    panic!("member m{} (pid {pid}) is still running after SIGKILL", index + 1)
}

/// Revives the killed cluster members (`scripts/etcd.sh revive`) when dropped, also when
/// the test panics, so a failing test does not leave the cluster short of a member for the
/// tests after it.
pub(crate) struct ReviveOnDrop;

impl Drop for ReviveOnDrop {
    fn drop(&mut self) {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/etcd.sh");
        let status = std::process::Command::new("bash")
            .arg(&script)
            .arg("revive")
            .status();
        let ok = status.as_ref().is_ok_and(|s| s.success());
        // While unwinding, report instead of panicking a second time.
        if !ok && std::thread::panicking() {
            eprintln!("{} revive failed: {status:?}", script.display());
        } else {
            assert!(ok, "{} revive failed: {status:?}", script.display());
        }
    }
}
