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
//! nowhere.
//!
//! Turns, slots and queues sit under one lock so that the common put takes it once: it
//! checks the turn is free and takes its slots, starts the sync write and, when that
//! completes at once (as an in-memory store's does), queues the operation, all before
//! letting go. A write that does not complete at once marks its turn taken and lets go; it
//! queues (and gives the turn back) under the lock again when done.
//!
//! Callers that have to wait, for a turn or for room, join one FIFO line. Whatever is
//! given back is handed on at once, under the lock and in line order: a turn to the first
//! waiter for it, room to the waiters for room one after the other. Only those served are
//! woken. So, as with a fair semaphore, nobody barges ahead of a caller that waits, a
//! release wakes no more tasks than it serves, and a waiter served but not polled yet
//! holds what it was handed (giving it back if dropped).
//!
//! `close` and `repair` take the gate exclusively: no turn is handed out meanwhile, and
//! they wait (on a [`Notify`]: they are rare) until the turns taken before are given back.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use parking_lot::{Mutex, MutexGuard};
use store_core::Key;
use tokio::sync::Notify;

use crate::queue::QueuedOp;

/// How many turns keys share (one bit each in [`GateState::busy`]).
pub(crate) const STRIPES: usize = 64;
const _: () = assert!(STRIPES <= u64::BITS as usize);

/// The turn of `key`, as a bit of [`GateState::busy`].
#[inline]
pub(crate) fn turn_bit(key: &Key) -> u64 {
    1 << key.stripe(STRIPES)
}

/// The replica's lock over turns, slots and queues (see the [module docs](self)).
#[derive(Debug)]
pub(crate) struct Gate {
    state: Mutex<GateState>,
    /// Wakes `close` or `repair` waiting to take the gate exclusively, or for the turns.
    exclusive_released: Notify,
}

/// What the gate's lock protects.
#[derive(Debug)]
pub(crate) struct GateState {
    /// One queue per async store.
    queues: Box<[Pending]>,
    /// Slots per queue.
    queue_len: usize,
    /// The turns taken by mutations in progress (or handed to waiters).
    busy: u64,
    /// `close` or `repair` holds (or is taking) the gate exclusively.
    exclusive: bool,
    /// Calls waiting to take the gate exclusively or for the turns to come back.
    exclusive_waiting: usize,
    /// Callers waiting for a turn or for room, in arrival order.
    line: VecDeque<Waiter>,
    /// Of those, the ones waiting for room and not served yet.
    room_waiting: usize,
    /// The id of the next waiter.
    next_waiter: u64,
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

/// What a caller in line waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    /// The turn with this bit.
    Turn(u64),
    /// A slot in every queue.
    Room,
}

/// A caller in line.
#[derive(Debug)]
struct Waiter {
    id: u64,
    want: Want,
    /// Woken once served (or, waiting for room, once a queue closes).
    waker: Waker,
    /// What it waits for was handed to it (and is counted as taken).
    served: bool,
}

impl Gate {
    /// A gate for `async_stores` queues of `queue_len` slots each.
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
                queue_len,
                busy: 0,
                exclusive: false,
                exclusive_waiting: 0,
                line: VecDeque::new(),
                room_waiting: 0,
                next_waiter: 0,
            }),
            exclusive_released: Notify::new(),
        }
    }

    /// The lock.
    pub(crate) fn lock(&self) -> MutexGuard<'_, GateState> {
        self.state.lock()
    }

    /// Takes the turn `bit`, waiting in line while another mutation holds it or the gate is
    /// held exclusively. Cancel-safe.
    pub(crate) async fn turn(&self, bit: u64) -> Turn<'_> {
        InLine::new(self, Want::Turn(bit)).await;
        Turn { gate: self, bit }
    }

    /// Takes a slot in every queue, waiting in line for room. Cancel-safe. `None` if an
    /// async store's task has stopped.
    pub(crate) async fn reserve(&self) -> Option<Reservation<'_>> {
        let served = InLine::new(self, Want::Room).await;
        served.then(|| Reservation::new(self))
    }

    /// Takes the gate exclusively: no turn is handed out until the guard is dropped, and
    /// every turn taken before has been given back when this returns. Cancel-safe.
    pub(crate) async fn exclusive(&self) -> Exclusive<'_> {
        self.wait_exclusive(|s| {
            let free = !s.exclusive;
            s.exclusive |= free;
            free
        })
        .await;
        // From here the guard gives exclusive use back, should the wait below be cancelled.
        let held = Exclusive { gate: self };
        self.wait_exclusive(|s| s.busy == 0).await;
        held
    }

    /// Waits, for [`exclusive`](Self::exclusive), until `ready` (called under the lock,
    /// and free to claim what it checks) returns true.
    async fn wait_exclusive(&self, mut ready: impl FnMut(&mut GateState) -> bool) {
        loop {
            let released = self.exclusive_released.notified();
            tokio::pin!(released);
            // Enabled before the check, so a release right after it still wakes us.
            released.as_mut().enable();
            {
                let mut state = self.state.lock();
                if ready(&mut state) {
                    return;
                }
                state.exclusive_waiting += 1;
            }
            let waiting = ExclusiveWaiting(self);
            released.await;
            drop(waiting);
        }
    }

    /// Gives back a slot of async store `index` (its operation was applied or discarded).
    pub(crate) fn release_slot(&self, index: usize) {
        self.give_back(|state| state.queues[index].used -= 1);
    }

    /// Stops accepting operations for async store `index` (its task has stopped); returns
    /// how many were still queued (now dropped). Callers waiting for room fail.
    pub(crate) fn close(&self, index: usize) -> u64 {
        let (lost, failed) = {
            let mut state = self.state.lock();
            let queue = &mut state.queues[index];
            queue.closed = true;
            let lost = std::mem::take(&mut queue.ops);
            // Waiters for room find out when polled.
            let failed: Vec<Waker> = state
                .line
                .iter()
                .filter(|w| w.want == Want::Room && !w.served)
                .map(|w| w.waker.clone())
                .collect();
            (lost, failed)
        };
        failed.into_iter().for_each(Waker::wake);
        lost.len() as u64
    }

    /// Changes the state with `f` under the lock (giving something back), hands what is
    /// free on to the waiters in line, and wakes them once the lock is let go.
    fn give_back<R>(&self, f: impl FnOnce(&mut GateState) -> R) -> R {
        let mut state = self.state.lock();
        let r = f(&mut state);
        let served = state.serve(self);
        drop(state);
        served.wake();
        r
    }
}

/// Counts an `exclusive` waiter out again, however its wait ends.
struct ExclusiveWaiting<'a>(&'a Gate);

impl Drop for ExclusiveWaiting<'_> {
    fn drop(&mut self) {
        self.0.state.lock().exclusive_waiting -= 1;
    }
}

/// A wait in the gate's line, for a turn or for room: true once served, false (waiting for
/// room) once a queue has closed. Dropped while waiting, it leaves the line; dropped once
/// served but before it was polled, it gives back what it was handed.
struct InLine<'a> {
    gate: &'a Gate,
    want: Want,
    /// Its id, once in line.
    id: Option<u64>,
}

impl<'a> InLine<'a> {
    fn new(gate: &'a Gate, want: Want) -> Self {
        InLine { gate, want, id: None }
    }
}

impl Future for InLine<'_> {
    type Output = bool;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<bool> {
        let mut state = self.gate.state.lock();
        // (Only this future takes itself out of line, so an id is always found.)
        let Some(at) = self.id.and_then(|id| state.position(id)) else {
            // Not in line yet: take it at once if it is free. (A free turn has nobody
            // waiting for it: a turn given back is handed on at once. Room alike.)
            match self.want {
                Want::Turn(bit) if state.turn_free(bit) => {
                    state.busy |= bit;
                    return Poll::Ready(true);
                }
                Want::Turn(_) => {}
                Want::Room => match state.try_reserve() {
                    Room::Taken => return Poll::Ready(true),
                    Room::Stopped => return Poll::Ready(false),
                    Room::Full => state.room_waiting += 1,
                },
            }
            let id = state.next_waiter;
            state.next_waiter += 1;
            state.line.push_back(Waiter {
                id,
                want: self.want,
                waker: cx.waker().clone(),
                served: false,
            });
            drop(state);
            self.id = Some(id);
            return Poll::Pending;
        };
        if state.line[at].served {
            state.line.remove(at);
            drop(state);
            self.id = None;
            return Poll::Ready(true);
        }
        if self.want == Want::Room && state.queues.iter().any(|q| q.closed) {
            state.line.remove(at);
            state.room_waiting -= 1;
            drop(state);
            self.id = None;
            return Poll::Ready(false);
        }
        state.line[at].waker.clone_from(cx.waker());
        Poll::Pending
    }
}

impl Drop for InLine<'_> {
    fn drop(&mut self) {
        let Some(id) = self.id else {
            return;
        };
        let mut state = self.gate.state.lock();
        let Some(waiter) = state.position(id).and_then(|at| state.line.remove(at)) else {
            return;
        };
        match (waiter.want, waiter.served) {
            // Not served: it leaves the line, and nothing is freed.
            (Want::Room, false) => state.room_waiting -= 1,
            (Want::Turn(_), false) => {}
            // Served but never polled: what it was handed goes on to the next.
            (Want::Turn(bit), true) => state.busy &= !bit,
            (Want::Room, true) => state.queues.iter_mut().for_each(|q| q.used -= 1),
        }
        if waiter.served {
            let served = state.serve(self.gate);
            drop(state);
            served.wake();
        }
    }
}

/// Waiters served under the lock, to wake once it is let go.
#[must_use = "call `wake` once the gate's lock is let go"]
pub(crate) struct Released<'a> {
    gate: &'a Gate,
    wakers: Vec<Waker>,
    /// An `exclusive` call waits: what came back may be what it waits for.
    exclusive: bool,
}

impl Released<'_> {
    /// Wakes the waiters served.
    pub(crate) fn wake(self) {
        self.wakers.into_iter().for_each(Waker::wake);
        if self.exclusive {
            self.gate.exclusive_released.notify_waiters();
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

    /// Takes a slot in every queue, if each has room and nobody waits for room already.
    /// The caller turns [`Room::Taken`] into a [`Reservation`] of this state's gate.
    #[inline]
    pub(crate) fn try_reserve(&mut self) -> Room {
        if self.queues.iter().any(|q| q.closed) {
            return Room::Stopped;
        }
        if self.room_waiting > 0 || !self.queues.iter().all(|q| q.used < self.queue_len) {
            return Room::Full;
        }
        self.queues.iter_mut().for_each(|q| q.used += 1);
        Room::Taken
    }

    /// Where waiter `id` stands in line.
    fn position(&self, id: u64) -> Option<usize> {
        self.line.iter().position(|w| w.id == id)
    }

    /// Hands what is free on to the waiters in line, in order: each turn to the first
    /// waiter for it, room to the waiters for room one after the other (the first that
    /// cannot have it stops those behind). Returns whom to wake.
    fn serve<'g>(&mut self, gate: &'g Gate) -> Released<'g> {
        let mut wakers = Vec::new();
        let exclusive_waiting = self.exclusive_waiting > 0;
        if self.line.is_empty() {
            return Released {
                gate,
                wakers,
                exclusive: exclusive_waiting,
            };
        }
        let GateState {
            queues,
            queue_len,
            busy,
            exclusive,
            line,
            room_waiting,
            ..
        } = self;
        let mut room = true;
        for waiter in line.iter_mut().filter(|w| !w.served) {
            waiter.served = match waiter.want {
                Want::Turn(bit) if !*exclusive && *busy & bit == 0 => {
                    *busy |= bit;
                    true
                }
                Want::Turn(_) => false,
                Want::Room => {
                    room = room && queues.iter().all(|q| !q.closed && q.used < *queue_len);
                    if room {
                        queues.iter_mut().for_each(|q| q.used += 1);
                        *room_waiting -= 1;
                    }
                    room
                }
            };
            if waiter.served {
                wakers.push(waiter.waker.clone());
            }
        }
        Released {
            gate,
            wakers,
            exclusive: exclusive_waiting,
        }
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
        // Not dropped from here on, even should `serve` panic (its drop takes the lock).
        let turn = std::mem::ManuallyDrop::new(self);
        state.busy &= !turn.bit;
        state.serve(turn.gate)
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        self.gate.give_back(|state| state.busy &= !self.bit);
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
        self.gate
            .give_back(|state| state.queues.iter_mut().for_each(|q| q.used -= 1));
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

    const FIVE_S: Duration = Duration::from_secs(5);

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
        // Handed on at once: taken for the waiter before it is even polled.
        assert!(!gate.lock().turn_free(1));
        let a2 = tokio::time::timeout(FIVE_S, same).await.expect("handed on");
        // Exclusive use waits for the turn, and turns wait for exclusive use.
        let ex = gate.exclusive();
        tokio::pin!(ex);
        assert!(futures::poll!(ex.as_mut()).is_pending());
        let other = gate.turn(4);
        tokio::pin!(other);
        assert!(futures::poll!(other.as_mut()).is_pending());
        drop(a2);
        let held = tokio::time::timeout(FIVE_S, ex)
            .await
            .expect("exclusive once the turns are back");
        assert!(futures::poll!(other.as_mut()).is_pending());
        assert!(!gate.lock().turn_free(8));
        drop(held);
        tokio::time::timeout(FIVE_S, other)
            .await
            .expect("turns again once exclusive use ends");
        let state = gate.lock();
        assert_eq!((state.line.len(), state.exclusive_waiting), (0, 0));
    }

    #[tokio::test]
    async fn turns_are_handed_on_in_line_order() {
        let gate = Gate::new(0, 1);
        let first = gate.turn(1).await;
        let mut waiting: Vec<_> = (0..3).map(|_| Box::pin(gate.turn(1))).collect();
        for w in &mut waiting {
            assert!(futures::poll!(w.as_mut()).is_pending());
        }
        drop(first);
        // Only the first in line is served, and woken.
        assert!(futures::poll!(waiting[2].as_mut()).is_pending());
        assert!(futures::poll!(waiting[1].as_mut()).is_pending());
        let second = futures::poll!(waiting[0].as_mut());
        assert!(second.is_ready());
        drop(second);
        assert!(futures::poll!(waiting[1].as_mut()).is_ready());
    }

    #[tokio::test]
    async fn cancelled_waits_leave_nothing_taken() {
        let gate = Gate::new(1, 1);
        let a = gate.turn(1).await;
        assert_eq!(gate.lock().try_reserve(), Room::Taken);
        let slot = Reservation::new(&gate);
        {
            let turn = gate.turn(1);
            tokio::pin!(turn);
            assert!(futures::poll!(turn.as_mut()).is_pending());
            let room = gate.reserve();
            tokio::pin!(room);
            assert!(futures::poll!(room.as_mut()).is_pending());
            let ex = gate.exclusive();
            tokio::pin!(ex);
            assert!(futures::poll!(ex.as_mut()).is_pending());
            // All dropped here, waiting.
        }
        {
            let state = gate.lock();
            assert_eq!(
                (state.busy, state.exclusive, state.line.len(), state.room_waiting),
                (1, false, 0, 0)
            );
        }
        // Served but dropped before being polled: what was handed over comes back.
        let mut turn = Box::pin(gate.turn(1));
        assert!(futures::poll!(turn.as_mut()).is_pending());
        let mut room = Box::pin(gate.reserve());
        assert!(futures::poll!(room.as_mut()).is_pending());
        drop(a);
        drop(slot);
        {
            let state = gate.lock();
            assert_eq!((state.busy, state.queues[0].used), (1, 1));
            assert!(state.line.iter().all(|w| w.served));
        }
        drop(turn);
        drop(room);
        let state = gate.lock();
        assert_eq!((state.busy, state.queues[0].used, state.line.len()), (0, 0, 0));
    }

    #[tokio::test]
    async fn room_is_counted_per_queue_and_handed_to_waiters_first() {
        let gate = Gate::new(2, 1);
        assert_eq!(gate.lock().try_reserve(), Room::Taken);
        let first = Reservation::new(&gate);
        assert_eq!(gate.lock().try_reserve(), Room::Full);
        // A waiter for room; the slot given back is handed to it, not to a newcomer.
        let waiter = gate.reserve();
        tokio::pin!(waiter);
        assert!(futures::poll!(waiter.as_mut()).is_pending());
        drop(first);
        assert_eq!(gate.lock().try_reserve(), Room::Full);
        let second = tokio::time::timeout(FIVE_S, waiter)
            .await
            .expect("room once the slot is back")
            .expect("not stopped");
        assert!(gate.lock().queues.iter().all(|q| q.used == 1));
        // Committed slots stay taken until the tasks give them back, queue by queue.
        second.commit();
        gate.release_slot(0);
        assert_eq!(gate.lock().try_reserve(), Room::Full);
        gate.release_slot(1);
        assert_eq!(gate.lock().try_reserve(), Room::Taken);
        // A closed queue fails reservations, waiting ones included.
        let held = Reservation::new(&gate);
        let waiter = gate.reserve();
        tokio::pin!(waiter);
        assert!(futures::poll!(waiter.as_mut()).is_pending());
        assert_eq!(gate.close(1), 0);
        let stopped = tokio::time::timeout(FIVE_S, waiter)
            .await
            .expect("woken by the close");
        assert!(stopped.is_none());
        assert_eq!(gate.lock().try_reserve(), Room::Stopped);
        drop(held);
        let state = gate.lock();
        assert_eq!((state.line.len(), state.room_waiting), (0, 0));
    }

    /// A waiter served but not polled holds its slot (as with a semaphore); it does not
    /// keep room given back later from the callers after it.
    #[tokio::test]
    async fn a_waiter_not_polled_keeps_only_what_it_was_handed() {
        let gate = Gate::new(1, 2);
        let (a, b) = (gate.reserve().await.unwrap(), gate.reserve().await.unwrap());
        let mut idle = Box::pin(gate.reserve());
        assert!(futures::poll!(idle.as_mut()).is_pending());
        a.commit();
        gate.release_slot(0);
        // `idle` now holds that slot without being polled; the next slot goes to the next.
        let next = gate.reserve();
        tokio::pin!(next);
        assert!(futures::poll!(next.as_mut()).is_pending());
        drop(b);
        let next = tokio::time::timeout(FIVE_S, next).await.expect("served").unwrap();
        assert_eq!(gate.lock().queues[0].used, 2);
        drop(next);
        drop(idle);
        assert_eq!(gate.lock().queues[0].used, 0);
    }

    #[tokio::test]
    async fn release_under_the_lock_hands_the_turn_on() {
        let gate = Gate::new(0, 1);
        let (free, taken, free_again, released) = {
            let mut state = gate.lock();
            let free = state.turn_free(2);
            let turn = state.take_turn(&gate, 2);
            let taken = !state.turn_free(2);
            let released = turn.release(&mut state);
            (free, taken, state.turn_free(2), released)
        };
        released.wake();
        assert!(free && taken && free_again);
        // With a waiter in line, the turn goes to it.
        let turn = gate.turn(2).await;
        let mut next = Box::pin(gate.turn(2));
        assert!(futures::poll!(next.as_mut()).is_pending());
        let (handed, released) = {
            let mut state = gate.lock();
            let released = turn.release(&mut state);
            (
                !state.turn_free(2) && state.line.iter().all(|w| w.served),
                released,
            )
        };
        released.wake();
        assert!(handed);
        assert!(futures::poll!(next.as_mut()).is_ready());
    }
}
