//! Zeroed vectors: nothing faulted until written, zero everywhere even in reused dirty memory,
//! and the same contents as `Vec::resize(n, 0)` under any sequence of operations.

use proptest::prelude::*;
use remapvec::{RemapVec, VecOptions, remapvec};

/// Minor page faults of this process so far.
fn minor_faults() -> i64 {
    // SAFETY: `getrusage` fills the zeroed struct we pass.
    unsafe {
        let mut u: libc::rusage = core::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut u);
        u.ru_minflt
    }
}

const GIB: usize = 1 << 30;

/// Creating a zeroed 1 GiB vector faults no page of it (other threads of this test binary may
/// fault a few pages meanwhile, so the bound is 1 % of the 262 144 pages, not zero).
#[test]
fn a_zeroed_gigabyte_faults_nothing_until_written() {
    for make in [
        (|| RemapVec::<u8>::zeroed(GIB)) as fn() -> RemapVec<u8>,
        || remapvec![0; GIB],
        || remapvec![0u8; GIB],
        || {
            let mut v = RemapVec::new();
            v.resize_zeroed(GIB);
            v
        },
    ] {
        let before = minor_faults();
        let v = make();
        let faults = minor_faults() - before;
        assert_eq!(v.len(), GIB);
        assert!(faults < 2_600, "{faults} page faults to make a zeroed GiB");
        // Reading a few pages maps the shared zero page; they read zero.
        assert!((0..GIB).step_by(64 << 20).all(|i| v[i] == 0));
    }
}

/// Memory the crate reuses (a dropped vector's kept mapping, capacity written through
/// `spare_capacity_mut`, a truncated tail) reads zero after every zeroing call.
#[test]
fn zeroed_elements_read_zero_in_reused_dirty_memory() {
    for len in [100, 300 << 10, 8 << 20] {
        let mut dirty = RemapVec::<u8>::with_capacity(len);
        dirty.resize(len, 0xAA);
        drop(dirty); // kept for reuse, dirty
        let v = RemapVec::<u8>::zeroed(len);
        assert!(v.iter().all(|&b| b == 0), "zeroed({len})");

        let mut v = RemapVec::<u32>::with_capacity(len);
        for s in v.spare_capacity_mut() {
            s.write(0xDEAD_BEEF);
        }
        v.extend_zeroed(len / 2);
        assert!(
            v.iter().all(|&x| x == 0),
            "extend_zeroed over written spare capacity"
        );

        v.truncate(0);
        v.extend_from_slice(&vec![7; len / 2]);
        v.truncate(1);
        v.resize_zeroed(len * 3); // grows past the written capacity
        assert_eq!(v[0], 7);
        assert!(
            v[1..].iter().all(|&x| x == 0),
            "resize_zeroed after truncate"
        );
    }
}

#[test]
fn the_macro_has_vec_forms() {
    let e: RemapVec<String> = remapvec![];
    assert!(e.is_empty());
    assert_eq!(remapvec![1, 2, 3,], [1, 2, 3]);
    assert_eq!(remapvec![String::from("a"); 3], ["a", "a", "a"]);
    assert_eq!(remapvec![String::new(); 0].len(), 0);
    assert_eq!(remapvec![5u64; 4], [5, 5, 5, 5]);
    // Negative zero is not all-zero bytes: it must be cloned, not zeroed.
    let z = remapvec![-0.0f64; 3];
    assert!(z.iter().all(|x| x.is_sign_negative()));
    let arr = remapvec![[0u16; 4]; 1000];
    assert!(arr.iter().all(|a| *a == [0; 4]));
    // Element type inferred later.
    let mut later = remapvec![0; 10];
    later.push(1u8);
    assert_eq!(later.len(), 11);
    // Element types inferred from the binding, not from the element (as with `vec!`).
    let none: RemapVec<Option<String>> = remapvec![None; 3];
    assert_eq!(none, [None, None, None]);
    let def: RemapVec<String> = remapvec![Default::default(); 2];
    assert_eq!(def, ["", ""]);
    // Each operand is evaluated once.
    let (mut e, mut n) = (0, 0);
    let once = remapvec![{ e += 1; 7u8 }; { n += 1; 5 }];
    assert_eq!((once.len(), e, n), (5, 1, 1));
    // In generic code (no `Pod` bound known): the clone path.
    fn generic<T: Clone>(x: T, n: usize) -> RemapVec<T> {
        remapvec![x; n]
    }
    assert_eq!(generic(0u32, 3), [0, 0, 0]);
}

#[derive(Debug, Clone)]
enum Op {
    ResizeZeroed(usize),
    ExtendZeroed(usize),
    Push(u32),
    Truncate(usize),
    FillSpare(u32),
    ShrinkToFit,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0usize..200_000).prop_map(Op::ResizeZeroed),
        (0usize..70_000).prop_map(Op::ExtendZeroed),
        any::<u32>().prop_map(Op::Push),
        (0usize..200_000).prop_map(Op::Truncate),
        any::<u32>().prop_map(Op::FillSpare),
        Just(Op::ShrinkToFit),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(64)
    ))]
    /// The same contents as `Vec` with `resize(n, 0)`, whatever was written where before.
    #[test]
    fn zeroing_matches_vec(ops in proptest::collection::vec(op(), 1..40), threshold in prop_oneof![Just(0usize), Just(128 << 10)]) {
        let mut v: RemapVec<u32> = RemapVec::with_options(VecOptions::new().heap_threshold(threshold));
        let mut m: Vec<u32> = Vec::new();
        for op in ops {
            match op {
                Op::ResizeZeroed(n) => { v.resize_zeroed(n); m.resize(n, 0); }
                Op::ExtendZeroed(n) => { v.extend_zeroed(n); m.resize(m.len() + n, 0); }
                Op::Push(x) => { v.push(x); m.push(x); }
                Op::Truncate(n) => { v.truncate(n); m.truncate(n); }
                Op::FillSpare(x) => { for s in v.spare_capacity_mut() { s.write(x); } }
                Op::ShrinkToFit => { v.shrink_to_fit(); }
            }
            prop_assert_eq!(v.as_slice(), m.as_slice());
        }
    }
}

/// Zero-sized elements: counted like `Vec`'s, with an error (not an overflow) at the limit.
#[test]
fn zero_sized_elements_overflow_into_an_error() {
    let mut v: RemapVec<()> = RemapVec::zeroed(usize::MAX - 1);
    assert!(v.try_extend_zeroed(2).is_err());
    assert_eq!(v.len(), usize::MAX - 1);
    v.extend_zeroed(1);
    assert_eq!(v.len(), usize::MAX);
}
