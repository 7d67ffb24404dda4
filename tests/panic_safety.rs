//! Panic safety: clones and destructors that panic midway, iterators whose size hint lies,
//! and drop counting (no leak, no double drop) — on the heap and on mapped vectors.

use remapvec::{RemapVec, VecOptions};
use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind};

thread_local! {
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static CLONES_LEFT: Cell<usize> = const { Cell::new(usize::MAX) };
}

/// Counts live instances; its `Clone` panics when `CLONES_LEFT` runs out, its `Drop` panics
/// when the value is `PANIC_ON_DROP`.
#[derive(Debug, PartialEq)]
struct Tracked(u32);
/// Odd (so `retain(even)` removes it) and beyond any value the tests generate.
const PANIC_ON_DROP: u32 = u32::MAX;

impl Tracked {
    fn new(x: u32) -> Self {
        LIVE.with(|l| l.set(l.get() + 1));
        Tracked(x)
    }
}
impl Clone for Tracked {
    fn clone(&self) -> Self {
        CLONES_LEFT.with(|c| {
            if c.get() == 0 {
                panic!("clone budget exhausted");
            }
            c.set(c.get() - 1);
        });
        Tracked::new(self.0)
    }
}
impl Drop for Tracked {
    fn drop(&mut self) {
        LIVE.with(|l| l.set(l.get() - 1));
        if self.0 == PANIC_ON_DROP && !std::thread::panicking() {
            panic!("drop panics");
        }
    }
}

fn live() -> isize {
    LIVE.with(Cell::get)
}

fn budget(n: usize) {
    CLONES_LEFT.with(|c| c.set(n));
}

fn options() -> [VecOptions; 2] {
    [
        VecOptions::default(),
        VecOptions::default().heap_threshold(0),
    ]
}

fn filled(n: u32, opts: VecOptions) -> RemapVec<Tracked> {
    let mut v = RemapVec::with_options(opts);
    v.extend((0..n).map(Tracked::new));
    v
}

#[test]
fn clone_panicking_midway_leaks_nothing_and_keeps_a_valid_vector() {
    for opts in options() {
        let base = live();
        {
            let src = filled(100, opts);
            // extend_from_slice: 10 clones succeed, the 11th panics.
            let mut v = filled(5, opts);
            budget(10);
            assert!(catch_unwind(AssertUnwindSafe(|| v.extend_from_slice(&src))).is_err());
            budget(usize::MAX);
            assert_eq!(v.len(), 15, "the clones made before the panic are kept");
            assert!(v.iter().take(5).map(|t| t.0).eq(0..5));
            // resize
            budget(3);
            assert!(catch_unwind(AssertUnwindSafe(|| v.resize(100, Tracked::new(1)))).is_err());
            budget(usize::MAX);
            assert_eq!(v.len(), 18);
            // clone of the whole vector
            budget(50);
            assert!(catch_unwind(AssertUnwindSafe(|| src.clone())).is_err());
            // extend_from_within
            budget(2);
            assert!(catch_unwind(AssertUnwindSafe(|| v.extend_from_within(..))).is_err());
            budget(usize::MAX);
            assert_eq!(v.len(), 20);
            assert_eq!(live() - base, 100 + 20);
        }
        assert_eq!(live(), base, "leak or double drop");
    }
}

#[test]
fn drop_panicking_midway_drops_everything_else_once() {
    for opts in options() {
        let base = live();
        // truncate: one destructor panics; every other element is still dropped once.
        let mut v = filled(10, opts);
        v[3] = Tracked::new(PANIC_ON_DROP);
        assert!(catch_unwind(AssertUnwindSafe(|| v.truncate(1))).is_err());
        assert_eq!(v.len(), 1);
        drop(v);
        assert_eq!(live(), base);

        // retain: the predicate removes a panicking element.
        let mut v = filled(10, opts);
        v[5] = Tracked::new(PANIC_ON_DROP);
        assert!(catch_unwind(AssertUnwindSafe(|| v.retain(|t| t.0 % 2 == 0))).is_err());
        assert!(v.len() <= 10);
        drop(v);
        assert_eq!(live(), base);

        // retain: the predicate itself panics halfway.
        let mut v = filled(10, opts);
        let mut seen = 0;
        let r = catch_unwind(AssertUnwindSafe(|| {
            v.retain(|t| {
                seen += 1;
                if seen == 6 {
                    panic!("predicate panics");
                }
                t.0 % 2 == 0
            })
        }));
        assert!(r.is_err());
        // The first 5 were processed (3 kept), the remaining 5 are kept untouched.
        assert!(v.iter().map(|t| t.0).eq([0, 2, 4, 5, 6, 7, 8, 9]));
        drop(v);
        assert_eq!(live(), base);

        // dedup_by: the comparison panics.
        let mut v = filled(10, opts);
        let mut calls = 0;
        let r = catch_unwind(AssertUnwindSafe(|| {
            v.dedup_by(|a, b| {
                calls += 1;
                if calls == 4 {
                    panic!("compare panics");
                }
                a.0 / 2 == b.0 / 2
            })
        }));
        assert!(r.is_err());
        assert!(v.iter().map(|t| t.0).eq([0, 2, 4, 5, 6, 7, 8, 9]));
        drop(v);
        assert_eq!(live(), base);

        // drain: a panicking destructor among the drained elements.
        let mut v = filled(10, opts);
        v[4] = Tracked::new(PANIC_ON_DROP);
        assert!(catch_unwind(AssertUnwindSafe(|| drop(v.drain(2..6)))).is_err());
        assert!(
            v.iter().map(|t| t.0).eq([0, 1, 6, 7, 8, 9]),
            "the tail moves back"
        );
        drop(v);
        assert_eq!(live(), base);

        // into_iter dropped early with a panicking element.
        let mut v = filled(10, opts);
        v[7] = Tracked::new(PANIC_ON_DROP);
        let mut it = v.into_iter();
        it.next();
        assert!(catch_unwind(AssertUnwindSafe(|| drop(it))).is_err());
        assert_eq!(live(), base);
    }
}

/// An iterator whose size hint is wrong in both directions.
struct Liar {
    left: u32,
    claim: (usize, Option<usize>),
}
impl Iterator for Liar {
    type Item = Tracked;
    fn next(&mut self) -> Option<Tracked> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        Some(Tracked::new(self.left))
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        self.claim
    }
}

#[test]
fn lying_size_hints_are_harmless() {
    for opts in options() {
        let base = live();
        for claim in [(0, Some(0)), (1000, Some(1000)), (0, Some(1)), (5, None)] {
            let mut v = filled(3, opts);
            v.extend(Liar { left: 50, claim });
            assert_eq!(v.len(), 53);
            let mut v2: RemapVec<Tracked> = Liar {
                left: 20_000,
                claim,
            }
            .collect();
            assert_eq!(v2.len(), 20_000);
            let removed: Vec<_> = v2.splice(1..3, Liar { left: 7, claim }).collect();
            assert_eq!((removed.len(), v2.len()), (2, 20_005));
            assert_eq!(v2[1].0, 6);
        }
        assert_eq!(live(), base);
    }
}

#[test]
fn leaking_a_drain_leaks_but_never_double_drops() {
    let base = live();
    let mut v = filled(10, VecOptions::default());
    std::mem::forget(v.drain(2..5));
    assert_eq!(v.len(), 2, "a leaked drain leaves only the head");
    drop(v);
    assert_eq!(
        live() - base,
        8,
        "the drained and tail elements leak, nothing is dropped twice"
    );
    LIVE.with(|l| l.set(base));
}

#[test]
#[should_panic(expected = "capacity overflow")]
fn reserve_usize_max_panics_like_vec() {
    let mut v = RemapVec::from([1u8]);
    v.reserve(usize::MAX);
}

#[test]
#[should_panic(expected = "insertion index (is 5) should be <= len (is 1)")]
fn insert_out_of_bounds_panics_like_vec() {
    RemapVec::from([1u8]).insert(5, 0);
}

#[test]
#[should_panic(expected = "removal index (is 1) should be < len (is 1)")]
fn remove_out_of_bounds_panics_like_vec() {
    RemapVec::from([1u8]).remove(1);
}

#[test]
#[should_panic(expected = "range end index 9 out of range for slice of length 1")]
fn drain_out_of_bounds_panics_like_vec() {
    RemapVec::from([1u8]).drain(..9);
}

#[test]
fn usize_max_arguments_do_not_panic_where_vec_does_not() {
    let mut v = RemapVec::from([1u8, 2]);
    v.truncate(usize::MAX);
    v.shrink_to(usize::MAX);
    assert!(v.try_reserve(usize::MAX).is_err());
    assert!(v.try_reserve_exact(usize::MAX).is_err());
    assert_eq!(v, [1, 2]);
    let mut z: RemapVec<()> = RemapVec::new();
    z.reserve(usize::MAX);
    assert_eq!(z.capacity(), usize::MAX);
    z.push(());
    assert!(z.try_reserve(usize::MAX).is_err());
}

#[test]
fn extract_if_with_a_panicking_filter_keeps_every_unextracted_element_once() {
    for opts in options() {
        let base = live();
        let mut v = filled(20, opts);
        let mut seen = 0;
        let mut out = Vec::new();
        let r = catch_unwind(AssertUnwindSafe(|| {
            for t in v.extract_if(2..18, |t| {
                seen += 1;
                if seen == 9 {
                    panic!("filter panics");
                }
                t.0 % 2 == 0
            }) {
                out.push(t);
            }
        }));
        assert!(r.is_err());
        // Visited before the panic: 2..10 (8 elements, the evens 2, 4, 6, 8 extracted); the
        // element the filter panicked on (10) and everything after it stay, in order.
        assert_eq!(out.iter().map(|t| t.0).collect::<Vec<_>>(), [2, 4, 6, 8]);
        let kept: Vec<u32> = v.iter().map(|t| t.0).collect();
        let want: Vec<u32> = (0..20)
            .filter(|x| !(2..10).contains(x) || x % 2 == 1)
            .collect();
        assert_eq!(kept, want);
        drop(out);
        drop(v);
        assert_eq!(live(), base, "leak or double drop");

        // An extracted element whose destructor panics, dropped by the consumer: the iterator
        // is dropped during unwinding, keeps the unvisited elements and closes the gap.
        let mut v = filled(10, opts);
        v[4] = Tracked::new(PANIC_ON_DROP);
        let r = catch_unwind(AssertUnwindSafe(|| {
            v.extract_if(.., |t| t.0 % 2 == 0 || t.0 == PANIC_ON_DROP)
                .for_each(drop)
        }));
        assert!(r.is_err());
        // 0 and 2 were extracted and dropped, the panicking one too; 5.. were never visited.
        assert!(v.iter().map(|t| t.0).eq([1, 3, 5, 6, 7, 8, 9]));
        drop(v);
        assert_eq!(live(), base, "leak or double drop");

        // Leaking the iterator leaks the elements, never exposes moved-out ones.
        let mut v = filled(10, opts);
        let mut it = v.extract_if(.., |t| t.0 < 5);
        drop(it.next());
        std::mem::forget(it);
        assert!(v.is_empty());
        drop(v);
    }
}

#[test]
#[should_panic = "range end index 4 out of range for slice of length 3"]
fn extract_if_out_of_bounds_panics_like_vec() {
    let mut v = RemapVec::from([1, 2, 3]);
    let _ = v.extract_if(..4, |_| true);
}

#[test]
#[should_panic = "insertion index (is 4) should be <= len (is 3)"]
fn insert_mut_out_of_bounds_panics_like_vec() {
    let mut v = RemapVec::from([1, 2, 3]);
    let _ = v.insert_mut(4, 0);
}
