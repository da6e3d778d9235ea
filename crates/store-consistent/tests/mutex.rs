//! The lease mutex: exclusion, fencing tokens, takeover after a crash, unlock by the
//! holder only, release on drop, lease puts whose reply was lost.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use store_consistent::{Group, MutexGuard};
use store_core::{BackendExt, ErrorKind, Key};
use store_memory::MemoryStore;
use store_testkit::{Fault, FaultOp, Faulty, Rule};
use tokio::time::timeout;

/// A bound on waits that must end, so that a broken mutex fails the test instead of
/// hanging it. Not a performance assertion: every wait here normally ends in milliseconds.
const LIVENESS: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn holders_never_overlap_and_tokens_increase() {
    let g = Group::new(MemoryStore::new(), "locks").unwrap();
    let inside = Arc::new(AtomicUsize::new(0));
    let tokens = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for _ in 0..5 {
        let (m, inside, tokens) = (g.mutex("m").unwrap(), inside.clone(), tokens.clone());
        tasks.push(tokio::spawn(async move {
            for _ in 0..5 {
                let guard = m.lock().await.unwrap();
                assert_eq!(inside.fetch_add(1, Ordering::SeqCst), 0, "two holders at once");
                tokens.lock().push(guard.token());
                tokio::task::yield_now().await;
                tokio::time::sleep(Duration::from_millis(1)).await;
                assert_eq!(inside.fetch_sub(1, Ordering::SeqCst), 1);
                guard.unlock().await.unwrap();
            }
        }));
    }
    for t in tasks {
        timeout(LIVENESS, t).await.unwrap().unwrap();
    }
    let tokens = tokens.lock().clone();
    assert_eq!(
        tokens,
        (1..=25).collect::<Vec<u64>>(),
        "tokens strictly increase, by one per holder"
    );
}

/// Locks `m` on a runtime of its own and returns the guard; the runtime is returned too so
/// the caller decides when the holder "runs".
fn lock_elsewhere(m: &store_consistent::Mutex) -> (tokio::runtime::Runtime, MutexGuard) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let guard = rt.block_on(m.lock()).unwrap();
    (rt, guard)
}

#[test]
fn a_vanished_holder_is_superseded_after_its_lease() {
    let store = MemoryStore::new();
    let g = Group::new(store.clone(), "locks").unwrap();
    let m = g.mutex("job").unwrap().with_lease(Duration::from_millis(200));
    // The holder "crashes": its runtime (and with it the renewal task) goes away and the
    // guard is never dropped, so nobody unlocks.
    let (rt, guard) = lock_elsewhere(&m);
    let first = guard.token();
    std::mem::forget(guard);
    drop(rt);

    let main = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    main.block_on(async {
        let raw = store
            .get_bytes(&Key::new("locks/.locks/6a6f62").unwrap())
            .await
            .unwrap();
        assert!(
            String::from_utf8_lossy(&raw).contains("\"released\":false"),
            "never unlocked"
        );
        let next = timeout(LIVENESS, m.lock()).await.unwrap().unwrap();
        assert_eq!(next.token(), first + 1);
        assert!(!next.is_lost());
        next.unlock().await.unwrap();
    });
}

#[test]
fn only_the_holder_unlocks() {
    let g = Group::new(MemoryStore::new(), "locks").unwrap();
    let short = g.mutex("m").unwrap().with_lease(Duration::from_millis(100));
    // The first holder stalls: its runtime is not driven, so it cannot renew.
    let (stalled_rt, stalled) = lock_elsewhere(&short);

    let main = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let long = g.mutex("m").unwrap().with_lease(Duration::from_secs(60));
    let successor = main.block_on(async { timeout(LIVENESS, long.lock()).await.unwrap().unwrap() });
    assert_eq!(successor.token(), stalled.token() + 1);
    assert!(stalled.is_lost());

    // The stalled holder wakes up and tries to unlock: refused, and the successor keeps it.
    let err = stalled_rt.block_on(stalled.unlock()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
    main.block_on(async {
        assert!(long.try_lock().await.unwrap().is_none());
        let token = successor.token();
        successor.unlock().await.unwrap();
        let again = long.try_lock().await.unwrap().expect("free after unlock");
        assert_eq!(again.token(), token + 1);
        again.unlock().await.unwrap();
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dropping_the_guard_releases_and_wakes_a_waiter() {
    let g = Group::new(MemoryStore::new(), "locks").unwrap();
    // A lease far longer than LIVENESS: only a release (seen through watch) can let the
    // waiter in before the timeout.
    let m = g.mutex("m").unwrap().with_lease(Duration::from_secs(600));
    let guard = m.lock().await.unwrap();
    let waiter = {
        let m = m.clone();
        tokio::spawn(async move { m.lock().await.unwrap() })
    };
    tokio::task::yield_now().await;
    assert!(m.try_lock().await.unwrap().is_none());
    let token = guard.token();
    drop(guard);
    let next = timeout(LIVENESS, waiter).await.unwrap().unwrap();
    assert_eq!(next.token(), token + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_held_lease_is_renewed() {
    let g = Group::new(MemoryStore::new(), "locks").unwrap();
    let m = g.mutex("m").unwrap().with_lease(Duration::from_millis(1500));
    let guard = m.lock().await.unwrap();
    // Twice the lease: without renewal it would have expired.
    tokio::time::sleep(Duration::from_millis(3000)).await;
    assert!(!guard.is_lost());
    assert!(m.try_lock().await.unwrap().is_none());
    guard.unlock().await.unwrap();
}

/// A lease put whose reply was lost counts, on a backend without a resolver: the lock
/// object read back holds the lease, so the lock is taken, the renewal holds without a
/// second put, and the unlock frees the mutex — as if the reply had come. (Failing the
/// lock would leave its lease, written, held by nobody until it expired.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lease_puts_whose_reply_was_lost_count_when_read_back() {
    let faulty = Faulty::new(MemoryStore::new());
    let g = Group::new(faulty.clone(), "locks").unwrap();
    let m = g.mutex("m").unwrap().with_lease(Duration::from_millis(600));
    let lost = || Rule::new(FaultOp::Put, Fault::LostReply).times(1);

    faulty.inject(lost());
    let guard = m.lock().await.unwrap();
    assert_eq!(guard.token(), 1);
    assert!(m.try_lock().await.unwrap().is_none(), "the guard holds the lease");

    // The next renewal loses its reply and reads the lease back; the put after that is the
    // ordinary next renewal.
    let (mark, gets) = (faulty.events().len(), faulty.calls(FaultOp::Get));
    faulty.inject(lost());
    let (renewals, reads) = timeout(LIVENESS, async {
        loop {
            let since: Vec<String> = faulty.events().split_off(mark);
            if since.iter().filter(|e| e.contains(" Put ")).count() >= 2 {
                return (since, faulty.calls(FaultOp::Get) - gets);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap();
    assert!(
        renewals[0].contains(" Put ") && renewals[0].ends_with(" err"),
        "the renewal met the lost reply: {renewals:?}"
    );
    assert!(
        renewals[1].contains(" Put ") && renewals[1].ends_with(" ok"),
        "read back, the renewal needed no second put: {renewals:?}"
    );
    assert_eq!(reads, 1, "one read of the lease settled the renewal");
    assert!(!guard.is_lost());
    assert!(m.try_lock().await.unwrap().is_none(), "still held");

    faulty.inject(lost());
    guard.unlock().await.unwrap();
    let next = m.try_lock().await.unwrap().expect("free after the unlock");
    assert_eq!(next.token(), 2);
    next.unlock().await.unwrap();
    let events = faulty.events();
    let lost_replies = events
        .iter()
        .filter(|e| e.contains(" Put ") && e.ends_with(" err"))
        .count();
    assert_eq!(
        lost_replies, 3,
        "each of the three lost replies was met: {events:?}"
    );
}

/// A release that failed without landing is sent again a tenth of the lease later:
/// `unlock` succeeds and the mutex is free, without waiting for the lease to expire.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_unlock_that_failed_without_landing_is_sent_again() {
    let faulty = Faulty::new(MemoryStore::new());
    let g = Group::new(faulty.clone(), "locks").unwrap();
    let m = g.mutex("m").unwrap().with_lease(Duration::from_secs(2));
    let guard = m.lock().await.unwrap();
    faulty.inject(Rule::new(FaultOp::Put, Fault::FailRetryable).times(1));
    timeout(LIVENESS, guard.unlock()).await.unwrap().unwrap();
    let next = m.try_lock().await.unwrap().expect("free after the unlock");
    assert_eq!(next.token(), 2);
    next.unlock().await.unwrap();
}

/// A lease put that failed without landing, where the error does not say so, fails the
/// lock with a retryable outcome-unknown error that carries no resolver and names the lock
/// object; the lease read back is not there, and the mutex stays free.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lock_whose_lease_put_failed_without_landing_fails_and_leaves_the_mutex_free() {
    let faulty = Faulty::new(MemoryStore::new());
    let g = Group::new(faulty.clone(), "locks").unwrap();
    let m = g.mutex("m").unwrap().with_lease(Duration::from_secs(60));
    faulty.inject(Rule::new(FaultOp::Put, Fault::FailRetryable).times(1));
    let err = m.lock().await.unwrap_err();
    assert!(
        err.is_retryable() && err.is_outcome_unknown() && err.resolver().is_none(),
        "{err}"
    );
    assert!(
        err.to_string().contains("locks/.locks/6d"),
        "names the lock object: {err}"
    );
    let guard = m.try_lock().await.unwrap().expect("nothing holds it");
    assert_eq!(guard.token(), 1);
    guard.unlock().await.unwrap();
}
