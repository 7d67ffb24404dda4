//! The writer lock of a `SharedVec`: one atomic read-modify-write per uncontended append.
//!
//! A `parking_lot` mutex (like `std`'s) takes the lock with a compare-exchange and releases it
//! with another (or a swap), so that the release can tell whether a thread sleeps on the lock.
//! On x86 each costs a locked instruction; measured on the append path (`push` of 16 Mi `u64`
//! into warm memory), the second one alone was about a quarter of the time of an append.
//! [`WriterLock`] releases with a plain store when no thread was seen sleeping: the one thing
//! that store can lose is the mark of a thread that went to sleep in the instant between the
//! release's load and its store. Sleepers therefore never sleep unbounded: they wake up after at
//! most [`MAX_SLEEP`] and look again. A waiter that loses the race waits that long at worst;
//! one that does not is woken by the release as with any mutex.
//!
//! A contended release is fair now and then, as `parking_lot`'s mutex is: when the parking lot
//! says so (about every 0.5 ms), the lock passes straight to the thread it wakes without ever
//! being free, so a writer that appends back to back cannot starve another (a review measured
//! a waiter behind 50 µs holds waiting up to 1.6 s without this, 60 µs with it).
//!
//! Sleeping and waking use `parking_lot_core` (the parking lot `parking_lot` itself is built
//! on), keyed by the lock's address.

use core::sync::atomic::{AtomicU8, Ordering::*};
use parking_lot::lock_api::{GuardSend, RawMutex};
use parking_lot_core::{
    DEFAULT_PARK_TOKEN, DEFAULT_UNPARK_TOKEN, ParkResult, SpinWait, UnparkToken,
};
use std::time::{Duration, Instant};

const UNLOCKED: u8 = 0;
/// Held, and no thread was seen asleep on it.
const LOCKED: u8 = 1;
/// Held, and a thread may be asleep on it: the release wakes one.
const CONTENDED: u8 = 2;

/// Given to a woken waiter whose release handed it the lock (it stays `CONTENDED`).
const HANDOFF: UnparkToken = UnparkToken(1);

/// The longest a waiter sleeps before it looks at the lock again (the bound on the wait a
/// lost wake-up can add).
pub(super) const MAX_SLEEP: Duration = Duration::from_millis(1);

/// The first sleep; each next one is twice as long, up to [`MAX_SLEEP`].
const FIRST_SLEEP: Duration = Duration::from_micros(50);

/// A mutex whose uncontended release is a plain store (see the module docs).
pub(super) struct WriterLock {
    state: AtomicU8,
}

/// The writer's state behind a [`WriterLock`].
pub(super) type Mutex<T> = parking_lot::lock_api::Mutex<WriterLock, T>;

/// A held [`Mutex`].
pub(super) type MutexGuard<'a, T> = parking_lot::lock_api::MutexGuard<'a, WriterLock, T>;

impl WriterLock {
    #[cold]
    #[inline(never)]
    fn lock_contended(&self) {
        let mut sleep = FIRST_SLEEP;
        loop {
            // Spin a little while the holder runs (an append holds the lock for nanoseconds).
            let mut spin = SpinWait::new();
            while self.state.load(Relaxed) != UNLOCKED && spin.spin() {}
            // Take it, marked contended: this thread cannot know whether others sleep, so its
            // release must wake one (a spurious wake-up costs a look at the lock).
            if self.state.swap(CONTENDED, Acquire) == UNLOCKED {
                return;
            }
            let key = core::ptr::from_ref(&self.state) as usize;
            // SAFETY: `key` is this lock's address, which no other parking-lot user keys on
            // (the crate parks on nothing else); the callbacks neither panic nor park.
            let r = unsafe {
                parking_lot_core::park(
                    key,
                    || self.state.load(Relaxed) == CONTENDED,
                    || {},
                    |_, _| {},
                    DEFAULT_PARK_TOKEN,
                    Some(Instant::now() + sleep),
                )
            };
            if r == ParkResult::Unparked(HANDOFF) {
                // The release handed the lock over (see `release_contended`): we hold it.
                return;
            }
            sleep = (sleep * 2).min(MAX_SLEEP);
        }
    }
}

impl WriterLock {
    #[cold]
    #[inline(never)]
    fn release_contended(&self) {
        let key = core::ptr::from_ref(&self.state) as usize;
        // SAFETY: as in `lock_contended`: our own key; the callback neither panics nor parks.
        // It runs with the parking lot's queue locked, after a sleeper was picked (if any): a
        // sleeper picked there cannot also time out, so the hand-off reaches a thread that
        // takes the lock.
        unsafe {
            parking_lot_core::unpark_one(key, |r| {
                if r.unparked_threads != 0 && r.be_fair {
                    // Passed on without being free: it stays CONTENDED, now held by the
                    // woken thread.
                    HANDOFF
                } else {
                    self.state.store(UNLOCKED, Release);
                    DEFAULT_UNPARK_TOKEN
                }
            })
        };
    }
}

// SAFETY: `lock` and `try_lock` succeed only by changing UNLOCKED into LOCKED or CONTENDED
// (compare-exchange or swap, Acquire), or by a hand-off from the holder's `unlock` to the one
// thread the parking lot woke (the lock never free in between), so at most one thread holds
// the lock; `unlock` (called by the holder only, as the trait requires) stores UNLOCKED with
// Release, or hands over through the parking lot, whose queue lock orders the two threads, so
// the next holder sees everything the last one wrote. A waiter never sleeps unbounded (see the module docs).
unsafe impl RawMutex for WriterLock {
    #[allow(clippy::declare_interior_mutable_const)]
    const INIT: Self = WriterLock {
        state: AtomicU8::new(UNLOCKED),
    };

    type GuardMarker = GuardSend;

    #[inline]
    fn lock(&self) {
        if self
            .state
            .compare_exchange_weak(UNLOCKED, LOCKED, Acquire, Relaxed)
            .is_err()
        {
            self.lock_contended();
        }
    }

    #[inline]
    fn try_lock(&self) -> bool {
        self.state
            .compare_exchange(UNLOCKED, LOCKED, Acquire, Relaxed)
            .is_ok()
    }

    #[inline]
    unsafe fn unlock(&self) {
        // Only the holder writes LOCKED or UNLOCKED; waiters only turn LOCKED into CONTENDED.
        // Seen LOCKED: nobody slept when we looked; a waiter that marks the lock and goes to
        // sleep right now is overwritten, and wakes by its timeout.
        if self.state.load(Relaxed) == CONTENDED {
            // Released (or handed over) inside the parking lot's callback.
            self.release_contended();
        } else {
            self.state.store(UNLOCKED, Release);
        }
    }

    #[inline]
    fn is_locked(&self) -> bool {
        self.state.load(Relaxed) != UNLOCKED
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn contended_lock_excludes_and_never_hangs() {
        // Four threads increment a non-atomic counter under the lock: any overlap of two
        // holders would lose increments. Part of the holds are long (a sleep), so waiters
        // park and are woken, or time out.
        let m = Arc::new(Mutex::new(0u64));
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let m = Arc::clone(&m);
                std::thread::spawn(move || {
                    for i in 0..2000u64 {
                        let mut g = m.lock();
                        let v = *g;
                        if (i + t) % 500 == 0 {
                            std::thread::sleep(Duration::from_micros(200));
                        }
                        *g = v + 1;
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(*m.lock(), 8000);
        assert!(!m.is_locked());
        let g = m.try_lock();
        assert!(g.is_some() && m.try_lock().is_none());
    }
}
