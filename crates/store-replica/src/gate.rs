//! The gate: one short lock over the async queues, their room and the keys' turns.
//!
//! A mutation holds its key's *turn* from its sync writes until it is queued for the async
//! stores, so two writes to one key reach every store, sync and async, in the same order.
//! Keys share [`STRIPES`] turns by hash (a collision only makes two keys wait for each
//! other).
//!
//! Each async store's queue has `queue_len` *slots*. A mutation takes one slot in every
//! queue before it writes anything, and the store's task gives it back only once the
//! operation has been applied (or discarded). So `queue_len` counts operations not yet
//! applied, including the one in flight, and a mutation that cannot get room waits
//! (back-pressure) before it has written or queued anything: it is queued everywhere or
//! nowhere. Callers waiting for room are served before new ones barge in.
//!
//! Turns, slots and queues sit under one lock so that the common put takes it once: it
//! checks the turn is free and takes its slots, starts the sync write and, when that
//! completes at once (as an in-memory store's does), queues the operation, all before
//! letting go. A write that does not complete at once marks its turn taken and lets go; it
//! queues (and gives the turn back) under the lock again when done. Waiting, for a turn,
//! for room or for exclusive use, happens outside the lock.
//!
//! `close` and `repair` take the gate exclusively: no turn is handed out meanwhile, and
//! they wait until the turns taken before are given back.

use std::collections::VecDeque;

use parking_lot::{Mutex, MutexGuard};
use store_core::Key;
use tokio::sync::Notify;

use crate::queue::QueuedOp;

/// How many turns keys share (one bit each in [`GateState::busy`]).
pub(crate) const STRIPES: usize = 64;

/// The turn of `key`, as a bit of [`GateState::busy`].
#[inline]
pub(crate) fn turn_bit(key: &Key) -> u64 {
    1 << key.stripe(STRIPES)
}

#[derive(Debug)]
pub(crate) struct Gate {
    state: Mutex<GateState>,
    /// Woken when a turn, a slot or exclusive use is given back (or a queue closes) while
    /// someone waits.
    released: Notify,
}

/// What the gate's lock protects.
#[derive(Debug)]
pub(crate) struct GateState {
    /// One queue per async store.
    queues: Box<[Pending]>,
    /// The turns taken by mutations in progress.
    busy: u64,
    /// `close` or `repair` holds (or is taking) the gate exclusively.
    exclusive: bool,
    /// Calls waiting for a turn, room or exclusive use.
    waiting: usize,
    /// Of those, the calls waiting for room (new callers do not barge in ahead of them).
    waiting_for_room: usize,
    /// Slots per queue.
    queue_len: usize,
}

/// The operations of one async store not yet taken by its task.
#[derive(Debug)]
struct Pending {
    ops: VecDeque<QueuedOp>,
    /// Operations ever pushed.
    enqueued: u64,
    /// The task found the queue empty and waits to be woken.
    idle: bool,
    /// The task has stopped: pushes and reservations fail.
    closed: bool,
    /// Slots taken: operations reserved, queued, or being applied.
    used: usize,
}

/// Whether [`GateState::try_reserve`] took room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Room {
    /// A slot in every queue is now the caller's.
    Taken,
    /// Some queue is full, or others wait for room first.
    Full,
    /// Some async store's task has stopped.
    Stopped,
}

/// What a waiter waits for (see [`Gate::wait_until`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    Turn,
    Room,
}

impl Gate {
    pub(crate) fn new(async_stores: usize, queue_len: usize) -> Self {
        let queue = || Pending {
            // Room for the common case up front (at most 1024 operations, about 56 KiB), so
            // a burst of puts does not reallocate the queue as it grows.
            ops: VecDeque::with_capacity(queue_len.min(1024)),
            enqueued: 0,
            idle: false,
            closed: false,
            used: 0,
        };
        Gate {
            state: Mutex::new(GateState {
                queues: (0..async_stores).map(|_| queue()).collect(),
                busy: 0,
                exclusive: false,
                waiting: 0,
                waiting_for_room: 0,
                queue_len,
            }),
            released: Notify::new(),
        }
    }

    /// The lock, if nobody holds it.
    #[inline]
    pub(crate) fn try_lock(&self) -> Option<MutexGuard<'_, GateState>> {
        self.state.try_lock()
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, GateState> {
        self.state.lock()
    }

    /// Takes the turn `bit`, waiting while another mutation holds it or the gate is held
    /// exclusively. Cancel-safe.
    pub(crate) async fn turn(&self, bit: u64) -> Turn<'_> {
        self.wait_until(Want::Turn, |s, _| {
            let free = !s.exclusive && s.busy & bit == 0;
            if free {
                s.busy |= bit;
            }
            free
        })
        .await;
        Turn { gate: self, bit }
    }

    /// Takes the gate exclusively: no turn is handed out until the guard is dropped, and
    /// every turn taken before has been given back when this returns. Cancel-safe.
    pub(crate) async fn exclusive(&self) -> Exclusive<'_> {
        self.wait_until(Want::Turn, |s, _| {
            let free = !s.exclusive;
            s.exclusive |= free;
            free
        })
        .await;
        // From here the guard gives exclusive use back, should the wait below be cancelled.
        let held = Exclusive { gate: self };
        self.wait_until(Want::Turn, |s, _| s.busy == 0).await;
        held
    }

    /// Takes a slot in every queue, waiting for room. Cancel-safe. `None` if an async
    /// store's task has stopped.
    pub(crate) async fn reserve(&self) -> Option<Reservation<'_>> {
        let mut room = Room::Full;
        self.wait_until(Want::Room, |s, waited| {
            room = s.try_reserve(waited);
            room != Room::Full
        })
        .await;
        (room == Room::Taken).then(|| Reservation::new(self))
    }

    /// Waits until `ready` (called under the lock, told whether this call has waited
    /// already, and free to claim what it checks) returns true.
    async fn wait_until(&self, want: Want, mut ready: impl FnMut(&mut GateState, bool) -> bool) {
        let mut waited = false;
        loop {
            let released = self.released.notified();
            tokio::pin!(released);
            // Enabled before the check, so a release right after it still wakes us.
            released.as_mut().enable();
            {
                let mut state = self.state.lock();
                if ready(&mut state, waited) {
                    return;
                }
                state.waiting += 1;
                if want == Want::Room {
                    state.waiting_for_room += 1;
                }
            }
            let waiting = Waiting { gate: self, want };
            released.await;
            drop(waiting);
            waited = true;
        }
    }

    /// Gives back a slot of async store `index` (its operation was applied or discarded).
    pub(crate) fn release_slot(&self, index: usize) {
        self.give_back(|state| state.queues[index].used -= 1);
    }

    /// Stops accepting operations for async store `index` (its task has stopped); returns
    /// how many were still queued (now dropped). Callers waiting for room there fail.
    pub(crate) fn close(&self, index: usize) -> u64 {
        let lost = self.give_back(|state| {
            let queue = &mut state.queues[index];
            queue.closed = true;
            std::mem::take(&mut queue.ops)
        });
        lost.len() as u64
    }

    /// Changes the state with `f` under the lock, then wakes whoever waits once it is let
    /// go (something they wait for may have come back).
    fn give_back<R>(&self, f: impl FnOnce(&mut GateState) -> R) -> R {
        let mut state = self.state.lock();
        let r = f(&mut state);
        let waiters = state.waiting > 0;
        drop(state);
        self.wake(waiters);
        r
    }

    /// Wakes the waiters, after a release under the lock that found some.
    fn wake(&self, waiters: bool) {
        if waiters {
            self.released.notify_waiters();
        }
    }
}

/// Counts a waiter out again, however its wait ends.
struct Waiting<'a> {
    gate: &'a Gate,
    want: Want,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        let mut state = self.gate.state.lock();
        state.waiting -= 1;
        if self.want == Want::Room {
            state.waiting_for_room -= 1;
        }
    }
}

impl GateState {
    /// Whether the turn `bit` is free to take.
    #[inline]
    pub(crate) fn turn_free(&self, bit: u64) -> bool {
        !self.exclusive && self.busy & bit == 0
    }

    /// Marks the turn `bit` taken, by a mutation that checked it was free with the lock
    /// held since; `gate` is the gate this state belongs to.
    #[inline]
    pub(crate) fn take_turn<'g>(&mut self, gate: &'g Gate, bit: u64) -> Turn<'g> {
        debug_assert!(self.turn_free(bit));
        self.busy |= bit;
        Turn { gate, bit }
    }

    /// Takes a slot in every queue, if each has room and (unless the caller is one of
    /// them, `waited`) nobody waits for room already. The caller turns [`Room::Taken`] into
    /// a [`Reservation`] of this state's gate.
    #[inline]
    pub(crate) fn try_reserve(&mut self, waited: bool) -> Room {
        if self.queues.iter().any(|q| q.closed) {
            return Room::Stopped;
        }
        let full = self.queues.iter().any(|q| q.used >= self.queue_len);
        if full || (self.waiting_for_room > 0 && !waited) {
            return Room::Full;
        }
        for queue in self.queues.iter_mut() {
            queue.used += 1;
        }
        Room::Taken
    }

    /// Queues `op` for the task of every async store (one clone of it per store but the
    /// last). False if a task has stopped: the operation is then queued only for the
    /// others.
    #[inline]
    pub(crate) fn push(&mut self, op: QueuedOp, work: impl Fn(usize)) -> bool {
        let Some((last, others)) = self.queues.split_last_mut() else {
            return true;
        };
        let mut queued = true;
        for (i, queue) in others.iter_mut().enumerate() {
            queued &= queue.push(op.clone(), || work(i));
        }
        queued & last.push(op, || work(others.len()))
    }

    /// The next operation for async store `index`, or `None` (the task is then idle, and
    /// the next push wakes it).
    pub(crate) fn pop(&mut self, index: usize) -> Option<QueuedOp> {
        let queue = &mut self.queues[index];
        let op = queue.ops.pop_front();
        queue.idle = op.is_none();
        op
    }

    /// How many operations async store `index` has been given so far.
    pub(crate) fn enqueued(&self, index: usize) -> u64 {
        self.queues[index].enqueued
    }
}

impl Pending {
    /// Queues `op`, calling `wake` if the task is idle. False if the task has stopped.
    #[inline]
    fn push(&mut self, op: QueuedOp, wake: impl FnOnce()) -> bool {
        if self.closed {
            return false;
        }
        self.ops.push_back(op);
        self.enqueued += 1;
        if std::mem::take(&mut self.idle) {
            wake();
        }
        true
    }
}

/// A key's turn, taken. Dropped, it is given back; [`release`](Turn::release) gives it
/// back under a lock already held.
#[derive(Debug)]
pub(crate) struct Turn<'a> {
    gate: &'a Gate,
    bit: u64,
}

impl<'a> Turn<'a> {
    /// Gives the turn back under the lock `state` (of this turn's gate); the caller calls
    /// [`Released::wake`] once it has let go of the lock.
    pub(crate) fn release(self, state: &mut GateState) -> Released<'a> {
        state.busy &= !self.bit;
        let released = Released {
            gate: self.gate,
            waiters: state.waiting > 0,
        };
        std::mem::forget(self);
        released
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        self.gate.give_back(|state| state.busy &= !self.bit);
    }
}

/// A turn given back under the lock: wakes whoever waits, once the lock is let go.
#[must_use = "call `wake` once the gate's lock is let go"]
pub(crate) struct Released<'a> {
    gate: &'a Gate,
    waiters: bool,
}

impl Released<'_> {
    pub(crate) fn wake(self) {
        self.gate.wake(self.waiters);
    }
}

/// One slot taken in every queue. Dropped uncommitted (an error, a cancelled put), it gives
/// them back; committed, the slots travel with the queued operations and the tasks give
/// them back once those are done.
#[derive(Debug)]
pub(crate) struct Reservation<'a> {
    gate: &'a Gate,
}

impl<'a> Reservation<'a> {
    /// The slots [`GateState::try_reserve`] took in `gate`'s state.
    #[inline]
    pub(crate) fn new(gate: &'a Gate) -> Self {
        Reservation { gate }
    }

    /// The operation was queued in every queue.
    #[inline]
    pub(crate) fn commit(self) {
        std::mem::forget(self);
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        self.gate.give_back(|state| {
            for queue in state.queues.iter_mut() {
                queue.used -= 1;
            }
        });
    }
}

/// Exclusive use of the gate (see [`Gate::exclusive`]).
#[derive(Debug)]
pub(crate) struct Exclusive<'a> {
    gate: &'a Gate,
}

impl Drop for Exclusive<'_> {
    fn drop(&mut self) {
        self.gate.give_back(|state| state.exclusive = false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_turn_waits_for_its_holder_and_exclusive_for_every_turn() {
        let gate = Gate::new(0, 1);
        let a = gate.turn(1).await;
        // Another turn is free; the same one waits.
        drop(gate.turn(2).await);
        let same = gate.turn(1);
        tokio::pin!(same);
        assert!(futures::poll!(same.as_mut()).is_pending());
        drop(a);
        let a2 = tokio::time::timeout(Duration::from_secs(5), same)
            .await
            .expect("the turn is given back");
        // Exclusive use waits for the turn, and turns wait for exclusive use.
        let ex = gate.exclusive();
        tokio::pin!(ex);
        assert!(futures::poll!(ex.as_mut()).is_pending());
        let other = gate.turn(4);
        tokio::pin!(other);
        assert!(futures::poll!(other.as_mut()).is_pending());
        drop(a2);
        let held = tokio::time::timeout(Duration::from_secs(5), ex)
            .await
            .expect("exclusive once the turns are back");
        assert!(futures::poll!(other.as_mut()).is_pending());
        assert!(!gate.lock().turn_free(8));
        drop(held);
        tokio::time::timeout(Duration::from_secs(5), other)
            .await
            .expect("turns again once exclusive use ends");
        assert_eq!(gate.lock().waiting, 0);
    }

    #[tokio::test]
    async fn cancelled_waits_leave_nothing_taken() {
        let gate = Gate::new(0, 1);
        let a = gate.turn(1).await;
        {
            let wait = gate.turn(1);
            tokio::pin!(wait);
            assert!(futures::poll!(wait.as_mut()).is_pending());
            let ex = gate.exclusive();
            tokio::pin!(ex);
            assert!(futures::poll!(ex.as_mut()).is_pending());
            // Both dropped here, waiting.
        }
        let state = gate.lock();
        assert_eq!((state.busy, state.exclusive, state.waiting), (1, false, 0));
        drop(state);
        drop(a);
        assert_eq!(gate.lock().busy, 0);
    }

    #[tokio::test]
    async fn room_is_counted_per_queue_and_waiters_go_first() {
        let gate = Gate::new(2, 1);
        assert_eq!(gate.lock().try_reserve(false), Room::Taken);
        let first = Reservation::new(&gate);
        assert_eq!(gate.lock().try_reserve(false), Room::Full);
        // A waiter for room; once a slot is back, it (not a newcomer) gets it.
        let waiter = gate.reserve();
        tokio::pin!(waiter);
        assert!(futures::poll!(waiter.as_mut()).is_pending());
        drop(first);
        assert_eq!(gate.lock().try_reserve(false), Room::Full);
        let second = tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("room once the slot is back")
            .expect("not stopped");
        assert!(gate.lock().queues.iter().all(|q| q.used == 1));
        // Committed slots stay taken until the tasks give them back.
        second.commit();
        assert!(gate.lock().queues.iter().all(|q| q.used == 1));
        gate.release_slot(0);
        assert_eq!(gate.lock().try_reserve(false), Room::Full);
        gate.release_slot(1);
        assert_eq!(gate.lock().try_reserve(false), Room::Taken);
        drop(Reservation::new(&gate));
        // A closed queue fails reservations, waiting ones included.
        assert_eq!(gate.lock().try_reserve(false), Room::Taken);
        let held = Reservation::new(&gate);
        let waiter = gate.reserve();
        tokio::pin!(waiter);
        assert!(futures::poll!(waiter.as_mut()).is_pending());
        assert_eq!(gate.close(1), 0);
        let stopped = tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("woken by the close");
        assert!(stopped.is_none());
        assert_eq!(gate.lock().try_reserve(false), Room::Stopped);
        drop(held);
        let state = gate.lock();
        assert_eq!((state.waiting, state.waiting_for_room), (0, 0));
    }

    #[test]
    fn release_under_the_lock_frees_the_turn() {
        let gate = Gate::new(0, 1);
        let mut state = gate.lock();
        assert!(state.turn_free(2));
        let turn = state.take_turn(&gate, 2);
        assert!(!state.turn_free(2));
        let released = turn.release(&mut state);
        assert!(state.turn_free(2));
        drop(state);
        released.wake();
    }
}
