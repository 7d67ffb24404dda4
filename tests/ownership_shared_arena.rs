//! Issue 10, defect 9: `SharedArena` never deadlocks on nested access. Each nested call from
//! inside a `read`/`write` closure either runs or panics with a clear message, with and
//! without other threads waiting; every scenario runs under a watchdog, so a deadlock fails
//! the test instead of hanging the binary.

use remapvec::{ArenaError, RegionId, SharedArena};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier, mpsc};
use std::thread;
use std::time::{Duration, Instant};

/// How long a scenario may take before it counts as deadlocked.
const LIMIT: Duration = Duration::from_secs(10);
/// How long a spawned operation gets to reach its lock and queue there.
const QUEUE_TIME: Duration = Duration::from_millis(150);

/// Runs `f` on its own thread; fails (panics here, on the test's thread) if it has not
/// finished within `limit`, or if it panicked.
fn within_for<T: Send + 'static>(
    what: &str,
    limit: Duration,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = mpsc::channel();
    let h = thread::spawn(move || {
        let r = f();
        let _ = tx.send(());
        r
    });
    match rx.recv_timeout(limit) {
        // Disconnected: `f` panicked; `join` passes its panic on.
        Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => match h.join() {
            Ok(r) => r,
            Err(e) => std::panic::resume_unwind(e),
        },
        Err(mpsc::RecvTimeoutError::Timeout) => {
            panic!("deadlock: {what} did not finish within {limit:?}")
        }
    }
}

fn within<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    within_for(what, LIMIT, f)
}

/// Starts `op` on another thread and gives it time to block; checks that it did block (on
/// the caller's borrow), so the scenario really has a waiting writer.
fn queue(
    arena: &Arc<SharedArena>,
    op: impl FnOnce(&SharedArena) + Send + 'static,
) -> thread::JoinHandle<()> {
    let arena = Arc::clone(arena);
    let h = thread::spawn(move || op(&arena));
    thread::sleep(QUEUE_TIME);
    assert!(
        !h.is_finished(),
        "the waiting operation should wait for this borrow"
    );
    h
}

fn ids(arena: &SharedArena, n: usize, len: usize) -> Vec<RegionId> {
    (0..n).map(|_| arena.alloc(len).unwrap()).collect()
}

/// The message of a panic caught from `f`; fails if `f` did not panic.
fn panic_message<R>(f: impl FnOnce() -> R) -> String {
    let err = match catch_unwind(AssertUnwindSafe(f)) {
        Ok(_) => panic!("expected a panic"),
        Err(e) => e,
    };
    if let Some(s) = err.downcast_ref::<String>() {
        s.clone()
    } else if let Some(s) = err.downcast_ref::<&str>() {
        (*s).to_string()
    } else {
        String::from("<non-string panic>")
    }
}

// ---- 9 (a): nested reads while another thread waits for the arena or the region ----------

#[test]
fn nested_read_of_other_region_while_alloc_waits() {
    within("read(a, read(b)) with an alloc waiting", || {
        let arena = Arc::new(SharedArena::new());
        let (a, b) = (arena.alloc(64).unwrap(), arena.alloc(64).unwrap());
        let w = arena
            .read(a, |_| {
                let w = queue(&arena, |ar| {
                    ar.alloc(64).unwrap();
                });
                assert_eq!(arena.read(b, |x| x.len()).unwrap(), 64);
                w
            })
            .unwrap();
        w.join().unwrap();
        assert_eq!(arena.len(), 3);
    });
}

#[test]
fn nested_read_while_free_waits() {
    within("read(a, read(b)) with a free waiting", || {
        let arena = Arc::new(SharedArena::new());
        let [a, b, c] = ids(&arena, 3, 64)[..] else {
            unreachable!()
        };
        let w = arena
            .read(a, |_| {
                let w = queue(&arena, move |ar| ar.free(c).unwrap());
                arena.read(b, |_| ()).unwrap();
                arena.read(a, |_| ()).unwrap();
                w
            })
            .unwrap();
        w.join().unwrap();
        assert_eq!(arena.len(), 2);
    });
}

#[test]
fn nested_read_of_same_region_while_grow_waits() {
    within("read(a, read(a)) with a grow waiting", || {
        let arena = Arc::new(SharedArena::new());
        let a = arena.alloc(64).unwrap();
        let w = arena
            .read(a, |outer| {
                let w = queue(&arena, move |ar| ar.grow(a, 1 << 20).unwrap());
                arena.read(a, |inner| assert_eq!(inner, outer)).unwrap();
                w
            })
            .unwrap();
        w.join().unwrap();
        assert_eq!(arena.read(a, |x| x.len()).unwrap(), 1 << 20);
    });
}

#[test]
fn nested_read_of_same_region_while_its_writer_waits() {
    within("read(a, read(a)) with write(a) waiting", || {
        let arena = Arc::new(SharedArena::new());
        let a = arena.alloc(64).unwrap();
        let w = arena
            .read(a, |_| {
                let w = queue(&arena, move |ar| ar.write(a, |x| x.fill(9)).unwrap());
                assert_eq!(arena.read(a, |x| x[0]).unwrap(), 0);
                w
            })
            .unwrap();
        w.join().unwrap();
        assert_eq!(arena.read(a, |x| x[0]).unwrap(), 9);
    });
}

#[test]
fn nested_read_of_region_with_waiting_writer_inside_write() {
    // Another thread holds b shared, a third waits to write b; this thread, inside write(a),
    // reads b: it joins the readers of b instead of queueing behind the writer.
    within("write(a, read(b)) with write(b) waiting", || {
        let arena = Arc::new(SharedArena::new());
        let (a, b) = (arena.alloc(64).unwrap(), arena.alloc(64).unwrap());
        let (inside_tx, inside_rx) = mpsc::channel();
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let reader = {
            let arena = Arc::clone(&arena);
            thread::spawn(move || {
                arena
                    .read(b, |_| {
                        inside_tx.send(()).unwrap();
                        release_rx.recv().unwrap();
                    })
                    .unwrap()
            })
        };
        inside_rx.recv().unwrap();
        let w = arena
            .write(a, |_| {
                let w = queue(&arena, move |ar| ar.write(b, |x| x.fill(1)).unwrap());
                arena.read(b, |x| assert_eq!(x[0], 0)).unwrap();
                w
            })
            .unwrap();
        release_tx.send(()).unwrap();
        reader.join().unwrap();
        w.join().unwrap();
    });
}

#[test]
fn nested_write_of_other_region_while_alloc_waits() {
    within("read(a, write(b)) with an alloc waiting", || {
        let arena = Arc::new(SharedArena::new());
        let (a, b) = (arena.alloc(64).unwrap(), arena.alloc(64).unwrap());
        let w = arena
            .read(a, |_| {
                let w = queue(&arena, |ar| {
                    ar.alloc(64).unwrap();
                });
                arena.write(b, |x| x.fill(5)).unwrap();
                w
            })
            .unwrap();
        w.join().unwrap();
        assert_eq!(arena.read(b, |x| x[63]).unwrap(), 5);
    });
}

#[test]
fn len_and_is_empty_inside_closure_while_compact_waits() {
    within("read(a, len()) with a compact waiting", || {
        let arena = Arc::new(SharedArena::new());
        let a = arena.alloc(64).unwrap();
        let w = arena
            .write(a, |_| {
                let w = queue(&arena, |ar| {
                    ar.compact().unwrap();
                });
                assert_eq!(arena.len(), 1);
                assert!(!arena.is_empty());
                w
            })
            .unwrap();
        w.join().unwrap();
    });
}

/// A closure that waits for a helper thread reading the arena, while a writer waits: the
/// helper holds no borrow, so it queues fairly, then joins the readers after a bounded wait.
#[test]
fn scoped_thread_reads_inside_closure_while_alloc_waits() {
    within(
        "read(a, scoped thread: read(b)) with an alloc waiting",
        || {
            let arena = Arc::new(SharedArena::new());
            let (a, b) = (arena.alloc(64).unwrap(), arena.alloc(64).unwrap());
            let w = arena
                .read(a, |_| {
                    let w = queue(&arena, |ar| {
                        ar.alloc(64).unwrap();
                    });
                    thread::scope(|s| {
                        let h1 = s.spawn(|| arena.read(b, |x| x.len()).unwrap());
                        let h2 = s.spawn(|| arena.read(a, |x| x.len()).unwrap());
                        assert_eq!((h1.join().unwrap(), h2.join().unwrap()), (64, 64));
                    });
                    w
                })
                .unwrap();
            w.join().unwrap();
        },
    );
}

#[test]
fn scoped_thread_reads_same_region_while_its_writer_waits() {
    within(
        "read(a, scoped thread: read(a)) with write(a) waiting",
        || {
            let arena = Arc::new(SharedArena::new());
            let a = arena.alloc(64).unwrap();
            let w = arena
                .read(a, |_| {
                    let w = queue(&arena, move |ar| ar.write(a, |x| x.fill(3)).unwrap());
                    thread::scope(|s| {
                        s.spawn(|| arena.read(a, |x| assert_eq!(x[0], 0)).unwrap());
                    });
                    w
                })
                .unwrap();
            w.join().unwrap();
        },
    );
}

// ---- 9 (b): regions that shared a lock stripe (`index % 64`) ------------------------------

#[test]
fn write_inside_read_of_any_other_region() {
    within("read(ids[0], write(ids[j])) for every j", || {
        let arena = SharedArena::new();
        let ids = ids(&arena, 130, 16);
        arena
            .read(ids[0], |_| {
                for (j, &id) in ids.iter().enumerate().skip(1) {
                    arena.write(id, |x| x.fill(j as u8)).unwrap();
                }
            })
            .unwrap();
        for (j, &id) in ids.iter().enumerate().skip(1) {
            assert_eq!(arena.read(id, |x| x[15]).unwrap(), j as u8);
        }
    });
}

#[test]
fn read_and_write_inside_write_of_any_other_region() {
    within("write(ids[0], read/write(ids[j])) for every j", || {
        let arena = SharedArena::new();
        let ids = ids(&arena, 130, 16);
        arena
            .write(ids[0], |first| {
                for (j, &id) in ids.iter().enumerate().skip(1) {
                    arena.write(id, |x| x.fill(j as u8)).unwrap();
                    let got = arena.read(id, |x| x[0]).unwrap();
                    first[0] = first[0].wrapping_add(got);
                }
            })
            .unwrap();
        let want = (1..130u32).sum::<u32>() as u8;
        assert_eq!(arena.read(ids[0], |x| x[0]).unwrap(), want);
    });
}

/// Two threads, four different regions, no cycle among them: with striped locks the crossed
/// pairs (0, 1) and (65, 64) deadlocked each other.
#[test]
fn crossed_nested_writes_on_regions_that_shared_stripes() {
    within("read(0, write(1)) || read(65, write(64))", || {
        let arena = Arc::new(SharedArena::new());
        let ids = Arc::new(ids(&arena, 130, 16));
        let barrier = Arc::new(Barrier::new(2));
        let run = |outer: usize, inner: usize| {
            let (arena, ids, barrier) =
                (Arc::clone(&arena), Arc::clone(&ids), Arc::clone(&barrier));
            thread::spawn(move || {
                arena
                    .read(ids[outer], |_| {
                        barrier.wait();
                        arena.write(ids[inner], |x| x.fill(1)).unwrap();
                    })
                    .unwrap()
            })
        };
        let (t1, t2) = (run(0, 1), run(65, 64));
        t1.join().unwrap();
        t2.join().unwrap();
    });
}

// ---- every documented combination on one thread -------------------------------------------

#[test]
fn nested_reads_at_any_depth() {
    fn dive(arena: &SharedArena, ids: &[RegionId], depth: usize) -> usize {
        if depth == 0 {
            return 0;
        }
        // Same region again and again, and every other region on the way down.
        let id = ids[depth % ids.len()];
        arena
            .read(id, |b| b.len() + dive(arena, ids, depth - 1))
            .unwrap()
    }
    within("200 nested reads", || {
        let arena = SharedArena::new();
        let ids = ids(&arena, 3, 10);
        assert_eq!(dive(&arena, &ids, 200), 2000);
        // A write of a region not on the chain, at the bottom of a deep chain of one region.
        let c = arena.alloc(10).unwrap();
        fn chain(arena: &SharedArena, a: RegionId, c: RegionId, depth: usize) {
            if depth == 0 {
                arena.write(c, |x| x.fill(4)).unwrap();
            } else {
                arena.read(a, |_| chain(arena, a, c, depth - 1)).unwrap();
            }
        }
        chain(&arena, ids[0], c, 50);
        assert_eq!(arena.read(c, |x| x[9]).unwrap(), 4);
    });
}

#[test]
fn copy_between_regions_inside_closures() {
    within("copy a -> b in read(a, write(b))", || {
        let arena = SharedArena::new();
        let (a, b) = (arena.alloc(4096).unwrap(), arena.alloc(4096).unwrap());
        arena
            .write(a, |x| {
                x.iter_mut().enumerate().for_each(|(i, v)| *v = i as u8)
            })
            .unwrap();
        arena
            .read(a, |src| arena.write(b, |dst| dst.copy_from_slice(src)))
            .unwrap()
            .unwrap();
        // And back, the other way round: b mutably, a shared inside.
        arena
            .write(b, |dst| {
                arena.read(a, |src| dst.iter_mut().zip(src).for_each(|(d, s)| *d ^= s))
            })
            .unwrap()
            .unwrap();
        assert!(arena.read(b, |x| x.iter().all(|&v| v == 0)).unwrap());
    });
}

#[test]
fn write_inside_read_of_same_region_panics() {
    within("write(a) in read(a)", || {
        let arena = SharedArena::new();
        let a = arena.alloc(8).unwrap();
        let msg = panic_message(|| arena.read(a, |_| arena.write(a, |x| x.fill(1))));
        assert!(msg.contains("already borrowed"), "{msg}");
        assert_eq!(arena.read(a, |x| x[0]).unwrap(), 0);
    });
}

#[test]
fn write_inside_write_of_same_region_panics() {
    within("write(a) in write(a)", || {
        let arena = SharedArena::new();
        let a = arena.alloc(8).unwrap();
        let msg = panic_message(|| arena.write(a, |_| arena.write(a, |x| x.fill(1))));
        assert!(msg.contains("already mutably borrowed"), "{msg}");
    });
}

#[test]
fn read_inside_write_of_same_region_panics() {
    within("read(a) in write(a)", || {
        let arena = SharedArena::new();
        let a = arena.alloc(8).unwrap();
        let msg = panic_message(|| arena.write(a, |_| arena.read(a, |x| x[0])));
        assert!(msg.contains("already mutably borrowed"), "{msg}");
    });
}

#[test]
fn borrows_further_out_are_checked_too() {
    within(
        "read(a, read(b, write(a))) and write(a, read(b, read(a)))",
        || {
            let arena = SharedArena::new();
            let (a, b) = (arena.alloc(8).unwrap(), arena.alloc(8).unwrap());
            let msg =
                panic_message(|| arena.read(a, |_| arena.read(b, |_| arena.write(a, |_| ()))));
            assert!(msg.contains("already borrowed"), "{msg}");
            let msg =
                panic_message(|| arena.write(a, |_| arena.write(b, |_| arena.read(a, |_| ()))));
            assert!(msg.contains("already mutably borrowed"), "{msg}");
        },
    );
}

#[test]
fn structural_operations_inside_closures_panic() {
    within("alloc/free/grow/shrink/compact in read/write", || {
        let arena = SharedArena::new();
        let (a, b) = (arena.alloc(8192).unwrap(), arena.alloc(8192).unwrap());
        type Op = fn(&SharedArena, RegionId, RegionId);
        let ops: [(&str, Op); 7] = [
            ("alloc", |ar, _, _| drop(ar.alloc(1))),
            ("free", |ar, _, b| drop(ar.free(b))),
            ("free", |ar, a, _| drop(ar.free(a))),
            ("grow", |ar, _, b| drop(ar.grow(b, 1 << 20))),
            ("grow", |ar, a, _| drop(ar.grow(a, 1 << 20))),
            ("shrink", |ar, a, _| drop(ar.shrink(a, 1))),
            ("compact", |ar, _, _| drop(ar.compact())),
        ];
        for (name, op) in ops {
            let msg = panic_message(|| arena.read(a, |_| op(&arena, a, b)));
            assert!(msg.contains(&format!("SharedArena::{name}")), "{msg}");
            let msg = panic_message(|| arena.write(a, |_| op(&arena, a, b)));
            assert!(msg.contains(&format!("SharedArena::{name}")), "{msg}");
            // Deeper: inside a read of b inside a write of a.
            let msg = panic_message(|| arena.write(a, |_| arena.read(b, |_| op(&arena, a, b))));
            assert!(msg.contains(&format!("SharedArena::{name}")), "{msg}");
        }
        // Nothing happened, and the arena is usable: every lock was released by the unwind.
        assert_eq!(arena.len(), 2);
        assert_eq!(arena.read(a, |x| x.len()).unwrap(), 8192);
        arena.grow(a, 1 << 20).unwrap();
        arena.free(b).unwrap();
        arena.compact().unwrap();
        arena.write(a, |x| x.fill(2)).unwrap();
    });
}

#[test]
fn panic_in_inner_closure_leaves_outer_borrows_intact() {
    within("read(a, catch_unwind(read(b, panic)))", || {
        let arena = SharedArena::new();
        let (a, b) = (arena.alloc(8).unwrap(), arena.alloc(8).unwrap());
        arena
            .read(a, |_| {
                let r = catch_unwind(AssertUnwindSafe(|| {
                    arena
                        .write(b, |_| arena.read(a, |_| panic!("boom")))
                        .unwrap()
                }));
                assert!(r.is_err());
                // b is free again, a is still borrowed (shared) by this thread.
                arena.write(b, |x| x.fill(6)).unwrap();
                let msg = panic_message(|| arena.write(a, |_| ()));
                assert!(msg.contains("already borrowed"), "{msg}");
                arena.read(a, |_| ()).unwrap();
            })
            .unwrap();
        // Outside every closure: everything allowed again.
        arena.write(a, |x| x.fill(1)).unwrap();
        arena.alloc(8).unwrap();
        assert_eq!(arena.read(b, |x| x[7]).unwrap(), 6);
    });
}

#[test]
fn stale_id_inside_closure_is_an_error_not_a_panic() {
    within("read/write of a freed id whose slot is borrowed", || {
        let arena = SharedArena::new();
        let old = arena.alloc(8).unwrap();
        arena.free(old).unwrap();
        let new = arena.alloc(8).unwrap(); // may reuse the slot
        let r = arena.write(new, |_| arena.read(old, |_| ())).unwrap();
        assert!(matches!(r, Err(ArenaError::InvalidId(id)) if id == old));
        let r = arena.read(new, |_| arena.write(old, |_| ())).unwrap();
        assert!(matches!(r, Err(ArenaError::InvalidId(id)) if id == old));
    });
}

#[test]
fn other_arena_inside_closure_works_as_outside() {
    within("x.read(a, y.alloc/write/grow/compact/free)", || {
        let (x, y) = (SharedArena::new(), SharedArena::new());
        let a = x.alloc(16).unwrap();
        x.write(a, |ax| ax.fill(8)).unwrap();
        x.read(a, |ax| {
            let b = y.alloc(16).unwrap();
            y.write(b, |bx| bx.copy_from_slice(ax)).unwrap();
            y.grow(b, 1 << 20).unwrap();
            y.compact().unwrap();
            // y's closures may read x (a is only read here).
            y.read(b, |bx| x.read(a, |ax2| assert_eq!(bx[..16], ax2[..])))
                .unwrap()
                .unwrap();
            y.free(b).unwrap();
        })
        .unwrap();
        // The same slot index in two arenas is two regions.
        let b = y.alloc(16).unwrap();
        x.write(a, |_| y.write(b, |bx| bx.fill(1)))
            .unwrap()
            .unwrap();
    });
}

#[test]
fn from_arena_regions_have_locks() {
    within("from_arena then nested access", || {
        let mut arena = remapvec::PageArena::new();
        let ids: Vec<_> = (0..130).map(|_| arena.alloc(8).unwrap()).collect();
        for &id in &ids[..60] {
            arena.free(id).unwrap();
        }
        let shared = SharedArena::from_arena(arena);
        // Slots 129 and 65 shared a stripe (index % 64) before.
        shared
            .read(ids[129], |_| shared.write(ids[65], |x| x.fill(1)).unwrap())
            .unwrap();
        assert_eq!(shared.read(ids[65], |x| x[0]).unwrap(), 1);
        let again = shared.alloc(8).unwrap(); // reuses a freed slot below the top
        shared
            .write(again, |_| shared.write(ids[129], |x| x.fill(2)).unwrap())
            .unwrap();
    });
}

// ---- under load ----------------------------------------------------------------------------

/// Workers read and write regions nested (in index order, so no cycle of the callers' own),
/// across their outer and inner borrows check that no writer's bytes are torn, while one
/// thread allocates, grows, frees and compacts: nothing deadlocks, nothing tears.
#[test]
fn nested_access_under_structural_churn() {
    within_for("nested access under churn", Duration::from_secs(60), || {
        let arena = Arc::new(SharedArena::new());
        let n = 24;
        let ids = Arc::new(ids(&arena, n, 4096));
        let stop = Arc::new(AtomicBool::new(false));
        let nested = Arc::new(AtomicU64::new(0));
        let churn = {
            let (arena, stop) = (Arc::clone(&arena), Arc::clone(&stop));
            thread::spawn(move || {
                let mut mine = Vec::new();
                let mut k = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    k += 1;
                    match k % 4 {
                        0 | 1 => mine.push(arena.alloc(8192 + (k as usize % 7) * 4096).unwrap()),
                        2 if !mine.is_empty() => {
                            let id = mine[k as usize % mine.len()];
                            let len = arena.read(id, |b| b.len()).unwrap();
                            arena.grow(id, len + 4096).unwrap();
                        }
                        _ => {
                            if mine.len() > 4 {
                                arena.free(mine.swap_remove(0)).unwrap();
                            }
                            arena.compact().unwrap();
                        }
                    }
                }
            })
        };
        let uniform = |b: &[u8]| b.iter().all(|&v| v == b[0]);
        let workers: Vec<_> = (0..3u64)
            .map(|t| {
                let (arena, ids, stop, nested) = (
                    Arc::clone(&arena),
                    Arc::clone(&ids),
                    Arc::clone(&stop),
                    Arc::clone(&nested),
                );
                thread::spawn(move || {
                    let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ t;
                    while !stop.load(Ordering::Relaxed) {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        let i = x as usize % (n - 1);
                        let j = i + 1 + (x >> 20) as usize % (n - 1 - i);
                        let (a, b) = (ids[i], ids[j]);
                        match (x >> 40) % 4 {
                            0 => arena.read(a, |s| {
                                assert!(uniform(s));
                                arena.write(b, |d| d.fill(s[0].wrapping_add(1))).unwrap();
                            }),
                            1 => arena.write(a, |d| {
                                d.fill(d[0].wrapping_add(1));
                                arena.read(b, |s| assert!(uniform(s))).unwrap();
                            }),
                            2 => arena.read(a, |s| {
                                arena
                                    .read(b, |s2| assert!(uniform(s) && uniform(s2)))
                                    .unwrap();
                                arena.read(a, |s3| assert!(uniform(s3))).unwrap();
                                assert!(arena.len() >= n);
                            }),
                            _ => arena.write(a, |d| {
                                arena.write(b, |e| e.fill(d[0])).unwrap();
                                d.fill(d[0].wrapping_sub(1));
                            }),
                        }
                        .unwrap();
                        nested.fetch_add(1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        let start = Instant::now();
        thread::sleep(Duration::from_secs(2));
        stop.store(true, Ordering::Relaxed);
        for w in workers {
            w.join().unwrap();
        }
        churn.join().unwrap();
        eprintln!(
            "{} nested accesses in {:?}",
            nested.load(Ordering::Relaxed),
            start.elapsed()
        );
        assert!(nested.load(Ordering::Relaxed) > 0);
    });
}
