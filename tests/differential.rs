//! Random operation sequences applied to `RemapVec` and `std::vec::Vec`, compared after every
//! step, for several element types, with the default options and with every vector mapped.

// The model is std's `Vec`, whose newest methods (`push_mut`, `insert_mut`: 1.95) are newer
// than the library's `rust-version`: the tests need a recent toolchain, the library does not.
#![allow(clippy::incompatible_msrv)]

use proptest::prelude::*;
use remapvec::{RemapVec, VecOptions};
use std::borrow::Cow;
use std::collections::{BinaryHeap, VecDeque};
use std::fmt::Debug;
use std::rc::Rc;
use std::sync::Arc;

/// Element types under test, built from a number.
trait Elem: Clone + Ord + Debug {
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
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Debug)]
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
    PushMut(u32),
    InsertMut(usize, u32),
    /// `extract_if` over a range with a key-based filter, taking at most `k` items
    /// (`usize::MAX`: all of them) before dropping the iterator.
    ExtractIf(usize, usize, u32, usize),
    /// `split_off(0)`: the buffer moves to the returned vector, `self` keeps its capacity.
    SplitOffZero,
    /// A conversion out of `RemapVec` and back (see `convert`).
    Convert(u8),
    /// `TryFrom<RemapVec<T>>` for `[T; 3]` and `Box<[T; 3]>`.
    TryIntoArray,
    /// `into_flattened` of the elements taken in pairs.
    Flatten,
    /// Comparisons with `VecDeque` and `Cow`.
    CompareOthers,
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
        2 => any::<u32>().prop_map(Op::PushMut),
        1 => (any::<usize>(), any::<u32>()).prop_map(|(i, x)| Op::InsertMut(i, x)),
        2 => (any::<usize>(), any::<usize>(), 1u32..4, prop_oneof![0usize..4, Just(usize::MAX)])
            .prop_map(|(a, b, m, k)| Op::ExtractIf(a, b, m, k)),
        1 => Just(Op::SplitOffZero),
        2 => (0u8..CONVERSIONS).prop_map(Op::Convert),
        1 => Just(Op::TryIntoArray),
        1 => Just(Op::Flatten),
        1 => Just(Op::CompareOthers),
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

/// How many conversions `convert` knows.
const CONVERSIONS: u8 = 9;

/// Converts `r` out of `RemapVec` and back by conversion `kind`, checking the intermediate
/// value against the model; the result keeps `r`'s options (re-wrapped by `append`, which
/// moves the elements into a vector made with the options).
fn convert<T: Elem>(r: &mut RemapVec<T>, v: &[T], kind: u8) {
    let opts = r.options();
    let taken = std::mem::take(r);
    let mut back: RemapVec<T> = match kind {
        0 => {
            let b: Box<[T]> = taken.into_boxed_slice();
            assert_eq!(&*b, v);
            RemapVec::from(b)
        }
        1 => {
            let d = VecDeque::from(taken);
            assert_eq!(d, v);
            RemapVec::from(d)
        }
        2 => {
            let mut d = VecDeque::from(taken);
            // Rotate so that the deque wraps around its buffer before converting back.
            if let Some(x) = d.pop_back() {
                d.push_front(x);
                let x = d.pop_front().unwrap();
                d.push_back(x);
            }
            RemapVec::from(d)
        }
        3 => {
            let h = BinaryHeap::from(taken);
            let mut sorted = v.to_vec();
            sorted.sort();
            assert_eq!(h.clone().into_sorted_vec(), sorted);
            let mut back = RemapVec::from(h);
            back.sort();
            let mut s = back.clone();
            // The heap's order is unspecified: compare sorted, hand back the model's order.
            s.sort();
            assert_eq!(s, sorted);
            RemapVec::from(v)
        }
        4 => {
            let a: Arc<[T]> = taken.clone().into();
            let rc: Rc<[T]> = taken.into();
            assert_eq!(&*a, v);
            assert_eq!(&*rc, v);
            RemapVec::from(&*a)
        }
        5 => {
            let c: Cow<'_, [T]> = taken.into();
            assert!(matches!(c, Cow::Owned(_)));
            let back = RemapVec::from(c);
            let borrowed: Cow<'_, [T]> = (&back).into();
            assert_eq!(borrowed, v);
            RemapVec::from(Cow::Borrowed(&*borrowed))
        }
        6 => {
            let (p, len, cap) = taken.into_raw_parts();
            assert_eq!(len, v.len());
            assert!(cap >= len);
            // SAFETY: the parts just given up by `into_raw_parts`, which are global-allocator
            // parts like a Vec's.
            let back = unsafe { Vec::from_raw_parts(p, len, cap) };
            RemapVec::from(back)
        }
        7 => {
            let mut it = taken.into_iter();
            assert_eq!(it.as_ref(), v);
            let rest = std::mem::take(&mut it);
            assert_eq!(it.len(), 0);
            rest.collect()
        }
        _ => {
            let mut t = taken;
            let d = t.drain(..);
            assert_eq!(d.as_ref(), v);
            drop(d);
            RemapVec::from(v)
        }
    };
    assert_eq!(back, v, "conversion {kind}");
    let mut out = RemapVec::with_options(opts);
    out.append(&mut back);
    *r = out;
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
        Op::PushMut(x) => {
            let a = r.push_mut(T::make(*x));
            let b = v.push_mut(T::make(*x));
            assert_eq!(a, b);
            *a = T::make(x.wrapping_add(1));
            *b = T::make(x.wrapping_add(1));
        }
        Op::InsertMut(i, x) => {
            let i = i % (len + 1);
            let a = r.insert_mut(i, T::make(*x));
            let b = v.insert_mut(i, T::make(*x));
            assert_eq!(a, b);
            *a = T::make(x.wrapping_mul(3));
            *b = T::make(x.wrapping_mul(3));
        }
        Op::ExtractIf(a, b, m, k) => {
            let rg = range(*a, *b, len);
            // The filter also changes the elements it keeps (it gets `&mut T`).
            let filter = |x: &mut T| {
                let hit = key(x, *m) == 0;
                if !hit {
                    *x = x.clone();
                }
                hit
            };
            let got: Vec<T> = r.extract_if(rg.clone(), filter).take(*k).collect();
            let want: Vec<T> = v.extract_if(rg, filter).take(*k).collect();
            assert_eq!(got, want);
        }
        Op::SplitOffZero => {
            let cap = r.capacity();
            let p = r.as_ptr();
            let all = r.split_off(0);
            let all_v = v.split_off(0);
            assert_eq!(all, all_v);
            assert!(r.is_empty() && r.capacity() >= cap);
            if size_of::<T>() > 0 && cap > 0 {
                assert_eq!(all.as_ptr(), p, "split_off(0) must hand the buffer over");
            }
            assert_eq!(all.options(), r.options());
            r.extend(all);
            v.extend(all_v);
        }
        Op::Convert(kind) => convert(r, v, *kind),
        Op::TryIntoArray => {
            let opts = r.options();
            let taken = std::mem::take(r);
            let got = <[T; 3]>::try_from(taken);
            let want = <[T; 3]>::try_from(v.clone());
            assert_eq!(got.is_ok(), want.is_ok());
            let mut back = match (got, want) {
                (Ok(a), Ok(b)) => {
                    assert_eq!(a, b);
                    let boxed = Box::<[T; 3]>::try_from(RemapVec::from(a)).unwrap();
                    RemapVec::from(*boxed)
                }
                (Err(back), Err(_)) => {
                    assert!(Box::<[T; 3]>::try_from(back.clone()).is_err());
                    back
                }
                _ => unreachable!(),
            };
            *r = RemapVec::with_options(opts);
            r.append(&mut back);
        }
        Op::Flatten => {
            let opts = r.options();
            let mut pairs: RemapVec<[T; 2]> = RemapVec::with_options(opts);
            let mut rest = std::mem::take(r).into_iter();
            while rest.len() >= 2 {
                pairs.push([rest.next().unwrap(), rest.next().unwrap()]);
            }
            let tail: Vec<T> = rest.collect();
            let mut flat = pairs.into_flattened();
            assert_eq!(flat.options(), opts);
            flat.extend(tail);
            *r = flat;
            let pairs_v: Vec<[T; 2]> = v
                .chunks_exact(2)
                .map(|c| [c[0].clone(), c[1].clone()])
                .collect();
            let odd = v.len() % 2 == 1;
            let last = v.last().cloned();
            *v = pairs_v.into_flattened();
            if odd {
                v.extend(last);
            }
        }
        Op::CompareOthers => {
            let d: VecDeque<T> = v.iter().cloned().collect();
            // Both directions are distinct impls.
            assert!(*r == d);
            assert!(d == *r);
            let c: Cow<'_, [T]> = Cow::Borrowed(&v[..]);
            assert!(*r == c);
            assert!(c == *r);
            let mut longer = d.clone();
            longer.push_front(T::make(7));
            assert!(*r != longer);
            assert!(longer != *r);
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

/// A reader that hands out `data` in pieces of the given sizes (cycled), returns
/// `Interrupted` on every third call, and at the end either reports the end of file or, with
/// `fail`, an error.
struct Pieces {
    data: Vec<u8>,
    pos: usize,
    sizes: Vec<usize>,
    calls: usize,
    fail: bool,
}

impl std::io::Read for Pieces {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.calls += 1;
        if self.calls.is_multiple_of(3) {
            return Err(std::io::ErrorKind::Interrupted.into());
        }
        if self.pos == self.data.len() {
            return if self.fail {
                Err(std::io::Error::other("broken pipe, on purpose"))
            } else {
                Ok(0)
            };
        }
        let size = self.sizes[self.calls % self.sizes.len()];
        let n = size.min(buf.len()).min(self.data.len() - self.pos);
        buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Operations on byte vectors: every `Op`, plus the I/O methods.
#[derive(Clone, Debug)]
enum IoOp {
    Vec(Op),
    /// `read_to_end_from` a `Pieces` reader of `n` bytes (pattern `seed`), against
    /// `Read::read_to_end` into a `Vec`.
    ReadFrom {
        n: usize,
        seed: u8,
        sizes: Vec<usize>,
        fail: bool,
    },
    WriteAll(Vec<u8>),
    WriteVectored(Vec<Vec<u8>>),
    /// `bytes::BufMut` calls (feature `bytes`; skipped without it).
    PutU32(u32),
    PutSlice(Vec<u8>),
    PutBytes(u8, usize),
    /// Writes up to `k` bytes of value `b` into `chunk_mut()` and advances by them.
    ChunkAdvance(usize, u8),
}

fn io_op() -> impl Strategy<Value = IoOp> {
    prop_oneof![
        6 => op().prop_map(IoOp::Vec),
        3 => (
            prop_oneof![0usize..100, 0usize..300_000],
            any::<u8>(),
            prop::collection::vec(prop_oneof![1usize..64, 1usize..200_000], 1..4),
            prop::bool::weighted(0.2),
        )
            .prop_map(|(n, seed, sizes, fail)| IoOp::ReadFrom { n, seed, sizes, fail }),
        1 => prop::collection::vec(any::<u8>(), 0..100).prop_map(IoOp::WriteAll),
        2 => prop::collection::vec(prop::collection::vec(any::<u8>(), 0..40), 0..5)
            .prop_map(IoOp::WriteVectored),
        1 => any::<u32>().prop_map(IoOp::PutU32),
        1 => prop::collection::vec(any::<u8>(), 0..100).prop_map(IoOp::PutSlice),
        1 => (any::<u8>(), 0usize..5000).prop_map(|(b, n)| IoOp::PutBytes(b, n)),
        1 => (0usize..200, any::<u8>()).prop_map(|(k, b)| IoOp::ChunkAdvance(k, b)),
    ]
}

fn apply_io(r: &mut RemapVec<u8>, v: &mut Vec<u8>, op: &IoOp) {
    use std::io::{IoSlice, Read, Write};
    match op {
        IoOp::Vec(op) => apply(r, v, op),
        IoOp::ReadFrom {
            n,
            seed,
            sizes,
            fail,
        } => {
            let data: Vec<u8> = (0..*n)
                .map(|i| (i as u8).wrapping_mul(31).wrapping_add(*seed))
                .collect();
            let reader = |data: Vec<u8>| Pieces {
                data,
                pos: 0,
                sizes: sizes.clone(),
                calls: 0,
                fail: *fail,
            };
            let got = r.read_to_end_from(&mut reader(data.clone()));
            let want = reader(data).read_to_end(v);
            match (got, want) {
                (Ok(a), Ok(b)) => assert_eq!(a, b),
                (Err(a), Err(b)) => assert_eq!(a.kind(), b.kind()),
                (a, b) => panic!("read_to_end_from gave {a:?}, read_to_end {b:?}"),
            }
        }
        IoOp::WriteAll(xs) => {
            r.write_all(xs).unwrap();
            v.write_all(xs).unwrap();
        }
        IoOp::WriteVectored(xss) => {
            let slices: Vec<IoSlice<'_>> = xss.iter().map(|x| IoSlice::new(x)).collect();
            assert_eq!(
                r.write_vectored(&slices).unwrap(),
                v.write_vectored(&slices).unwrap()
            );
        }
        #[cfg(feature = "bytes")]
        IoOp::PutU32(x) => {
            use bytes::BufMut;
            r.put_u32(*x);
            v.put_u32(*x);
        }
        #[cfg(feature = "bytes")]
        IoOp::PutSlice(xs) => {
            use bytes::BufMut;
            r.put_slice(xs);
            v.put_slice(xs);
            r.put(&xs[..]);
            v.put(&xs[..]);
        }
        #[cfg(feature = "bytes")]
        IoOp::PutBytes(b, n) => {
            use bytes::BufMut;
            r.put_bytes(*b, *n);
            v.put_bytes(*b, *n);
        }
        #[cfg(feature = "bytes")]
        IoOp::ChunkAdvance(k, b) => {
            use bytes::BufMut;
            assert_eq!(r.remaining_mut(), v.remaining_mut());
            let chunk = r.chunk_mut();
            assert!(chunk.len() > 0);
            let k = (*k).min(chunk.len());
            for i in 0..k {
                chunk.write_byte(i, *b);
            }
            // SAFETY: the first `k` bytes of the chunk were just written.
            unsafe { r.advance_mut(k) };
            v.resize(v.len() + k, *b);
        }
        // Without the feature: the same bytes through the inherent methods.
        #[cfg(not(feature = "bytes"))]
        IoOp::PutU32(x) => {
            r.extend_from_slice(&x.to_be_bytes());
            v.extend_from_slice(&x.to_be_bytes());
        }
        #[cfg(not(feature = "bytes"))]
        IoOp::PutSlice(xs) => {
            r.extend_from_slice(xs);
            v.extend_from_slice(xs);
        }
        #[cfg(not(feature = "bytes"))]
        IoOp::PutBytes(b, n) | IoOp::ChunkAdvance(n, b) => {
            r.resize(r.len() + n, *b);
            v.resize(v.len() + n, *b);
        }
    }
}

fn run_io(ops: &[IoOp], opts: VecOptions) {
    let mut r: RemapVec<u8> = RemapVec::with_options(opts);
    let mut v: Vec<u8> = Vec::new();
    for op in ops {
        apply_io(&mut r, &mut v, op);
        assert_eq!(r.as_slice(), v.as_slice(), "after {op:?}");
        assert!(r.capacity() >= r.len());
    }
}

proptest! {
    #![proptest_config(cfg())]

    #[test]
    fn model_io_u8(ops in prop::collection::vec(io_op(), 1..40)) {
        run_io(&ops, VecOptions::default());
        run_io(&ops, VecOptions::default().heap_threshold(0));
    }
}
