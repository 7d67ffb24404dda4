//! Random operation sequences applied to `RemapVec` and `std::vec::Vec`, compared after every
//! step, for several element types, with the default options and with every vector mapped.

use proptest::prelude::*;
use remapvec::{RemapVec, VecOptions};
use std::fmt::Debug;

/// Element types under test, built from a number.
trait Elem: Clone + PartialEq + Debug {
    fn make(n: u32) -> Self;
}
impl Elem for u8 {
    fn make(n: u32) -> Self {
        n as u8
    }
}
impl Elem for u64 {
    fn make(n: u32) -> Self {
        u64::from(n) * 0x1_0001
    }
}
impl Elem for String {
    fn make(n: u32) -> Self {
        format!("s{n}")
    }
}
impl Elem for () {
    fn make(_: u32) -> Self {}
}
/// An element aligned above the page size.
#[derive(Clone, PartialEq, Debug)]
#[repr(align(8192))]
struct Aligned(u32);
impl Elem for Aligned {
    fn make(n: u32) -> Self {
        Aligned(n)
    }
}

#[derive(Clone, Debug)]
enum Op {
    Push(u32),
    Pop,
    Insert(usize, u32),
    Remove(usize),
    SwapRemove(usize),
    Truncate(usize),
    Clear,
    Resize(usize, u32),
    ResizeWith(usize),
    ExtendFromSlice(Vec<u32>),
    /// `extend` from an iterator of `n` items: enough to cross the heap threshold.
    ExtendMany(usize),
    ExtendFromWithin(usize, usize),
    Drain(usize, usize),
    DrainPartial(usize, usize, usize),
    Splice(usize, usize, Vec<u32>),
    Retain(u32),
    Dedup,
    DedupByKey(u32),
    SplitOffAppend(usize),
    SplitOffDrop(usize),
    Reserve(usize),
    ReserveExact(usize),
    ShrinkToFit,
    ShrinkTo(usize),
    CloneReplace,
    IntoIterBack(usize),
    SortReverse,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => any::<u32>().prop_map(Op::Push),
        2 => Just(Op::Pop),
        2 => (any::<usize>(), any::<u32>()).prop_map(|(i, x)| Op::Insert(i, x)),
        2 => any::<usize>().prop_map(Op::Remove),
        1 => any::<usize>().prop_map(Op::SwapRemove),
        1 => any::<usize>().prop_map(Op::Truncate),
        1 => Just(Op::Clear),
        2 => (0usize..3000, any::<u32>()).prop_map(|(n, x)| Op::Resize(n, x)),
        1 => (0usize..3000).prop_map(Op::ResizeWith),
        2 => prop::collection::vec(any::<u32>(), 0..50).prop_map(Op::ExtendFromSlice),
        1 => (0usize..40_000).prop_map(Op::ExtendMany),
        1 => (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Op::ExtendFromWithin(a, b)),
        2 => (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Op::Drain(a, b)),
        1 => (any::<usize>(), any::<usize>(), 0usize..5).prop_map(|(a, b, k)| Op::DrainPartial(a, b, k)),
        2 => (any::<usize>(), any::<usize>(), prop::collection::vec(any::<u32>(), 0..20))
            .prop_map(|(a, b, v)| Op::Splice(a, b, v)),
        1 => (1u32..5).prop_map(Op::Retain),
        1 => Just(Op::Dedup),
        1 => (1u32..50).prop_map(Op::DedupByKey),
        1 => any::<usize>().prop_map(Op::SplitOffAppend),
        1 => any::<usize>().prop_map(Op::SplitOffDrop),
        1 => (0usize..100_000).prop_map(Op::Reserve),
        1 => (0usize..100_000).prop_map(Op::ReserveExact),
        1 => Just(Op::ShrinkToFit),
        1 => (0usize..5000).prop_map(Op::ShrinkTo),
        1 => Just(Op::CloneReplace),
        1 => (0usize..10).prop_map(Op::IntoIterBack),
        1 => Just(Op::SortReverse),
    ]
}

fn range(a: usize, b: usize, len: usize) -> std::ops::Range<usize> {
    let (a, b) = (a % (len + 1), b % (len + 1));
    a.min(b)..a.max(b)
}

fn key<T: Debug>(x: &T, m: u32) -> u32 {
    // Any deterministic function of the element works as a key.
    format!("{x:?}").bytes().map(u32::from).sum::<u32>() % m
}

/// Caps an element count so that big elements (8 KiB) stay within a few MiB per step.
fn n_of<T>(n: usize) -> usize {
    n.min((4 << 20) / size_of::<T>().max(1))
}

fn apply<T: Elem>(r: &mut RemapVec<T>, v: &mut Vec<T>, op: &Op) {
    let len = v.len();
    match op {
        Op::Push(x) => {
            r.push(T::make(*x));
            v.push(T::make(*x));
        }
        Op::Pop => assert_eq!(r.pop(), v.pop()),
        Op::Insert(i, x) => {
            let i = i % (len + 1);
            r.insert(i, T::make(*x));
            v.insert(i, T::make(*x));
        }
        Op::Remove(i) if len > 0 => assert_eq!(r.remove(i % len), v.remove(i % len)),
        Op::SwapRemove(i) if len > 0 => assert_eq!(r.swap_remove(i % len), v.swap_remove(i % len)),
        Op::Remove(_) | Op::SwapRemove(_) => {}
        Op::Truncate(n) => {
            let n = n % (len + 2);
            r.truncate(n);
            v.truncate(n);
        }
        Op::Clear => {
            r.clear();
            v.clear();
        }
        Op::Resize(n, x) => {
            let n = &n_of::<T>(*n);
            r.resize(*n, T::make(*x));
            v.resize(*n, T::make(*x));
        }
        Op::ResizeWith(n) => {
            let n = &n_of::<T>(*n);
            let mut c = 0;
            r.resize_with(*n, || {
                c += 1;
                T::make(c)
            });
            let mut c = 0;
            v.resize_with(*n, || {
                c += 1;
                T::make(c)
            });
        }
        Op::ExtendFromSlice(xs) => {
            let xs: Vec<T> = xs.iter().map(|&x| T::make(x)).collect();
            r.extend_from_slice(&xs);
            v.extend_from_slice(&xs);
        }
        Op::ExtendMany(n) => {
            let n = &n_of::<T>(*n);
            r.extend((0..*n as u32).map(T::make));
            v.extend((0..*n as u32).map(T::make));
        }
        Op::ExtendFromWithin(a, b) => {
            let rg = range(*a, *b, len);
            r.extend_from_within(rg.clone());
            v.extend_from_within(rg);
        }
        Op::Drain(a, b) => {
            let rg = range(*a, *b, len);
            assert!(r.drain(rg.clone()).eq(v.drain(rg)));
        }
        Op::DrainPartial(a, b, k) => {
            let rg = range(*a, *b, len);
            let mut dr = r.drain(rg.clone());
            let mut dv = v.drain(rg);
            for _ in 0..*k {
                assert_eq!(dr.next_back(), dv.next_back());
                assert_eq!(dr.next(), dv.next());
            }
        }
        Op::Splice(a, b, xs) => {
            let rg = range(*a, *b, len);
            let xs: Vec<T> = xs.iter().map(|&x| T::make(x)).collect();
            // A filtered iterator has a lower size hint of 0: exercises the collect path too.
            let keep = xs.len().is_multiple_of(2);
            let got: Vec<T> = r
                .splice(rg.clone(), xs.clone().into_iter().filter(|_| keep))
                .collect();
            let want: Vec<T> = v.splice(rg, xs.into_iter().filter(|_| keep)).collect();
            assert_eq!(got, want);
        }
        Op::Retain(m) => {
            let mut i = 0;
            r.retain(|x| {
                i += 1;
                key(x, *m) != 0 || i % 2 == 0
            });
            let mut i = 0;
            v.retain(|x| {
                i += 1;
                key(x, *m) != 0 || i % 2 == 0
            });
        }
        Op::Dedup => {
            r.dedup();
            v.dedup();
        }
        Op::DedupByKey(m) => {
            r.dedup_by_key(|x| key(x, *m));
            v.dedup_by_key(|x| key(x, *m));
        }
        Op::SplitOffAppend(at) => {
            let at = at % (len + 1);
            let mut tr = r.split_off(at);
            let mut tv = v.split_off(at);
            assert_eq!(tr, tv);
            assert_eq!(tr.options(), r.options());
            tr.push(T::make(1));
            tv.push(T::make(1));
            r.append(&mut tr);
            v.append(&mut tv);
            assert!(tr.is_empty());
        }
        Op::SplitOffDrop(at) => {
            let at = at % (len + 1);
            assert_eq!(r.split_off(at), v.split_off(at));
        }
        Op::Reserve(n) => {
            r.reserve(*n);
            v.reserve(*n);
            assert!(r.capacity() >= len + n);
        }
        Op::ReserveExact(n) => {
            r.try_reserve_exact(*n).unwrap();
            v.reserve_exact(*n);
            assert!(r.capacity() >= len + n);
        }
        Op::ShrinkToFit => {
            r.shrink_to_fit();
            v.shrink_to_fit();
        }
        Op::ShrinkTo(n) => {
            let before = r.capacity();
            r.shrink_to(*n);
            v.shrink_to(*n);
            assert!(r.capacity() >= len.max((*n).min(before)));
        }
        Op::CloneReplace => {
            let c = r.clone();
            assert_eq!(c, *v);
            assert_eq!(c.options(), r.options());
            *r = c;
        }
        Op::IntoIterBack(k) => {
            let taken = std::mem::take(r);
            let opts = taken.options();
            let mut it = taken.into_iter();
            let mut out = RemapVec::with_options(opts);
            let mut back = Vec::new();
            for _ in 0..*k {
                back.extend(it.next_back());
            }
            out.extend(it);
            out.extend(back.into_iter().rev());
            *r = out;
        }
        Op::SortReverse => {
            r.reverse();
            v.reverse();
        }
    }
}

fn run<T: Elem>(ops: &[Op], opts: VecOptions) {
    let mut r: RemapVec<T> = RemapVec::with_options(opts);
    let mut v: Vec<T> = Vec::new();
    for op in ops {
        apply(&mut r, &mut v, op);
        assert_eq!(r.as_slice(), v.as_slice(), "after {op:?}");
        assert!(r.capacity() >= r.len());
        assert_eq!(r.as_ptr() as usize % align_of::<T>(), 0);
        if size_of::<T>() > 0 && r.capacity() > 0 && opts.get_heap_threshold() == 0 {
            assert!(
                r.is_mapped(),
                "heap_threshold(0) must map every allocated vector"
            );
        }
    }
    // The conversions agree too.
    let back: Vec<T> = r.into();
    assert_eq!(back, v);
}

fn cfg() -> ProptestConfig {
    // PROPTEST_CASES overrides (CI uses fewer cases under valgrind).
    ProptestConfig {
        cases: 64,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

macro_rules! model_tests {
    ($($name:ident: $t:ty,)*) => {
        proptest! {
            #![proptest_config(cfg())]
            $(
                #[test]
                fn $name(ops in prop::collection::vec(op(), 1..60)) {
                    run::<$t>(&ops, VecOptions::default());
                    run::<$t>(&ops, VecOptions::default().heap_threshold(0));
                }
            )*
        }
    };
}

model_tests! {
    model_u8: u8,
    model_u64: u64,
    model_string: String,
    model_zst: (),
    model_aligned_8k: Aligned,
}
