//! Conversions between `RemapVec<T>` and the standard containers (`Box<[T]>`, `Arc<[T]>`,
//! `Rc<[T]>`, `VecDeque`, `BinaryHeap`, `Cow`, `String`, arrays), the methods that consume a
//! vector into another shape (`into_boxed_slice`, `into_flattened`, `into_raw_parts`), and the
//! small traits of the iterators (`Default`, `AsRef`).
//!
//! A heap-phase vector hands its block over without copying, exactly like `Vec`. A mapped
//! vector's memory is a mapping, which no standard container can own: converting it into one
//! copies the elements once into memory of the global allocator (the documentation of each
//! conversion says so).

use super::{Drain, IntoIter, RemapVec};
use crate::raw::RawVec;
use core::mem::ManuallyDrop;
use core::ptr;
use std::borrow::Cow;
use std::collections::{BinaryHeap, VecDeque};
use std::ffi::CString;
use std::rc::Rc;
use std::sync::Arc;

impl<T> RemapVec<T> {
    /// Converts the vector into a `Box<[T]>`, dropping excess capacity like
    /// [`Vec::into_boxed_slice`].
    ///
    /// A heap-phase vector's block is shrunk and handed over; a mapped vector is copied once
    /// into a heap block of exactly `len` elements (a `Box` must own global-allocator memory).
    ///
    /// ```
    /// # use remapvec::RemapVec;
    /// let mut v = RemapVec::with_capacity(10);
    /// v.extend([1, 2, 3]);
    /// let b: Box<[i32]> = v.into_boxed_slice();
    /// assert_eq!(&*b, [1, 2, 3]);
    /// assert_eq!(b.into_vec().capacity(), 3);
    /// ```
    pub fn into_boxed_slice(self) -> Box<[T]> {
        Vec::from(self).into_boxed_slice()
    }

    /// Decomposes the vector into `(pointer, length, capacity)`, the arguments
    /// [`from_raw_parts`](Self::from_raw_parts) (and [`Vec::from_raw_parts`]) take back.
    ///
    /// The parts always describe a block of the global allocator (or a dangling pointer with
    /// capacity 0, or a zero-sized `T`), as with `Vec`: a heap-phase vector hands its block
    /// over as it is; a mapped vector is first copied into a heap block of `len` elements,
    /// because the caller may free the parts with `dealloc`, which cannot free a mapping.
    ///
    /// ```
    /// # use remapvec::RemapVec;
    /// let v = RemapVec::from([-1i32, 0, 1]);
    /// let (ptr, len, cap) = v.into_raw_parts();
    /// // SAFETY: the parts of a vector that is gone; `u32` has the layout of `i32`.
    /// let rebuilt = unsafe { RemapVec::from_raw_parts(ptr.cast::<u32>(), len, cap) };
    /// assert_eq!(rebuilt, [u32::MAX, 0, 1]);
    /// ```
    #[must_use = "losing the pointer will leak memory"]
    pub fn into_raw_parts(self) -> (*mut T, usize, usize) {
        let mut v = ManuallyDrop::new(Vec::from(self));
        (v.as_mut_ptr(), v.len(), v.capacity())
    }
}

impl<T, const N: usize> RemapVec<[T; N]> {
    /// Flattens a `RemapVec<[T; N]>` into a `RemapVec<T>` of `N` times the length, like
    /// [`Vec::into_flattened`]. The options are kept.
    ///
    /// A heap-phase vector keeps its block (the layout of `[[T; N]; c]` is that of
    /// `[T; c * N]`). A mapped vector's elements are copied into a vector of `T` once.
    ///
    /// # Panics
    /// If the new length overflows `usize`, which can only happen for zero-sized `T`.
    ///
    /// ```
    /// # use remapvec::RemapVec;
    /// let mut v = RemapVec::from([[1, 2, 3], [4, 5, 6], [7, 8, 9]]);
    /// assert_eq!(v.pop(), Some([7, 8, 9]));
    /// let mut flat = v.into_flattened();
    /// assert_eq!(flat.pop(), Some(6));
    /// assert_eq!(flat, [1, 2, 3, 4, 5]);
    /// ```
    pub fn into_flattened(self) -> RemapVec<T> {
        let opts = self.options();
        let len = self.len;
        if size_of::<[T; N]>() == 0 {
            // No buffer (zero-sized `T`, or `N == 0`): only the count changes.
            let new_len = len.checked_mul(N).expect("vec len overflow");
            let mut me = self;
            let mut out = RemapVec::with_options(opts);
            // SAFETY: no memory is involved; for zero-sized `T` the `len * N` values of the
            // arrays move to `out` as `me` forgets them (for `N == 0` there are none).
            unsafe {
                me.set_len(0);
                out.set_len(new_len);
            }
            return out;
        }
        // `len * N * size_of::<T>()` bytes are allocated, so neither product overflows.
        let new_len = len * N;
        if self.is_mapped() {
            let mut out = RemapVec::with_capacity_and_options(new_len, opts);
            let mut me = self;
            // SAFETY: `out` has room for `new_len` `T`s; `[[T; N]; len]` is `[T; len * N]` in
            // memory; `me` forgets its elements so each is owned once.
            unsafe {
                ptr::copy_nonoverlapping(me.as_ptr().cast::<T>(), out.as_mut_ptr(), new_len);
                me.set_len(0);
                out.set_len(new_len);
            }
            return out;
        }
        let me = ManuallyDrop::new(self);
        // SAFETY: the buffer is moved out of a value that is never used or dropped again.
        let buf = unsafe { ptr::read(&me.buf) };
        match buf.into_heap() {
            Ok((p, cap)) => RemapVec {
                // SAFETY: a heap block of the global allocator with the layout of
                // `[[T; N]; cap]`, which is the layout of `[T; cap * N]` (same size, the
                // alignment of `T`), given up by `into_heap`; `cap * N` fits because the
                // block's byte size does.
                buf: unsafe { RawVec::from_heap(p.cast::<T>(), cap * N, opts) },
                len: new_len,
            },
            Err(_) => unreachable!("checked is_mapped above"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Into a RemapVec.

impl<T> From<Box<[T]>> for RemapVec<T> {
    /// Takes over the box's heap block without copying.
    ///
    /// ```
    /// # use remapvec::RemapVec;
    /// let b: Box<[i32]> = Box::new([1, 2, 3]);
    /// assert_eq!(RemapVec::from(b), [1, 2, 3]);
    /// ```
    fn from(b: Box<[T]>) -> Self {
        RemapVec::from(b.into_vec())
    }
}

impl From<String> for RemapVec<u8> {
    /// The string's bytes; takes over its heap block without copying.
    ///
    /// ```
    /// # use remapvec::RemapVec;
    /// assert_eq!(RemapVec::from(String::from("hi")), *b"hi");
    /// ```
    fn from(s: String) -> Self {
        RemapVec::from(s.into_bytes())
    }
}

impl From<CString> for RemapVec<u8> {
    /// The C string's bytes without the trailing nul, like `Vec::<u8>::from(CString)`.
    ///
    /// ```
    /// # use remapvec::RemapVec;
    /// let c = std::ffi::CString::new("hi").unwrap();
    /// assert_eq!(RemapVec::from(c), *b"hi");
    /// ```
    fn from(s: CString) -> Self {
        RemapVec::from(s.into_bytes())
    }
}

impl<'a, T: Clone> From<Cow<'a, [T]>> for RemapVec<T> {
    /// An owned `Cow`'s `Vec` is taken over without copying; a borrowed slice is cloned.
    ///
    /// ```
    /// # use remapvec::RemapVec;
    /// use std::borrow::Cow;
    /// let borrowed: Cow<'_, [u8]> = Cow::Borrowed(&[1, 2]);
    /// let owned: Cow<'_, [u8]> = Cow::Owned(vec![3]);
    /// assert_eq!(RemapVec::from(borrowed), [1, 2]);
    /// assert_eq!(RemapVec::from(owned), [3]);
    /// ```
    fn from(c: Cow<'a, [T]>) -> Self {
        match c {
            Cow::Borrowed(s) => RemapVec::from(s),
            Cow::Owned(v) => RemapVec::from(v),
        }
    }
}

impl<T: Clone, const N: usize> From<&mut [T; N]> for RemapVec<T> {
    /// Clones the array's elements.
    ///
    /// ```
    /// # use remapvec::RemapVec;
    /// let mut a = [1, 2];
    /// assert_eq!(RemapVec::from(&mut a), [1, 2]);
    /// ```
    fn from(a: &mut [T; N]) -> Self {
        RemapVec::from(&a[..])
    }
}

impl<T> From<VecDeque<T>> for RemapVec<T> {
    /// Like `Vec::from(VecDeque)`: the deque's buffer is made contiguous in place and taken
    /// over without another allocation.
    ///
    /// ```
    /// # use remapvec::RemapVec;
    /// use std::collections::VecDeque;
    /// let mut d = VecDeque::from([2, 3]);
    /// d.push_front(1);
    /// assert_eq!(RemapVec::from(d), [1, 2, 3]);
    /// ```
    fn from(d: VecDeque<T>) -> Self {
        RemapVec::from(Vec::from(d))
    }
}

impl<T> From<BinaryHeap<T>> for RemapVec<T> {
    /// The heap's elements in its internal order, taking over its buffer without copying
    /// (like `Vec::from(BinaryHeap)`).
    ///
    /// ```
    /// # use remapvec::RemapVec;
    /// use std::collections::BinaryHeap;
    /// let h = BinaryHeap::from([1, 3, 2]);
    /// let mut v = RemapVec::from(h);
    /// v.sort();
    /// assert_eq!(v, [1, 2, 3]);
    /// ```
    fn from(h: BinaryHeap<T>) -> Self {
        RemapVec::from(h.into_vec())
    }
}

// ---------------------------------------------------------------------------------------------
// Out of a RemapVec.

impl<T, const N: usize> TryFrom<RemapVec<T>> for [T; N] {
    type Error = RemapVec<T>;

    /// The elements as an array if there are exactly `N` of them, else the vector back
    /// unchanged (like `<[T; N]>::try_from(Vec<T>)`).
    ///
    /// ```
    /// # use remapvec::RemapVec;
    /// let a: [u8; 3] = RemapVec::from([1, 2, 3]).try_into().unwrap();
    /// assert_eq!(a, [1, 2, 3]);
    /// let back: Result<[u8; 2], _> = RemapVec::from([1, 2, 3]).try_into();
    /// assert_eq!(back.unwrap_err(), [1, 2, 3]);
    /// ```
    fn try_from(mut v: RemapVec<T>) -> Result<[T; N], RemapVec<T>> {
        if v.len() != N {
            return Err(v);
        }
        // SAFETY: the vector forgets its `N` elements before they are read out as one array
        // (`[T; N]` has the layout of `N` consecutive `T`s; the buffer is aligned for `T`).
        unsafe {
            v.set_len(0);
            Ok(ptr::read(v.as_ptr().cast::<[T; N]>()))
        }
    }
}

impl<T, const N: usize> TryFrom<RemapVec<T>> for Box<[T; N]> {
    type Error = RemapVec<T>;

    /// A boxed array if there are exactly `N` elements, else the vector back unchanged (like
    /// `Box::<[T; N]>::try_from(Vec<T>)`). A mapped vector is copied into the box once.
    ///
    /// ```
    /// # use remapvec::RemapVec;
    /// let b: Box<[u8; 2]> = RemapVec::from([1, 2]).try_into().unwrap();
    /// assert_eq!(*b, [1, 2]);
    /// ```
    fn try_from(v: RemapVec<T>) -> Result<Box<[T; N]>, RemapVec<T>> {
        if v.len() != N {
            return Err(v);
        }
        match Box::<[T; N]>::try_from(v.into_boxed_slice()) {
            Ok(b) => Ok(b),
            Err(_) => unreachable!("the length was checked"),
        }
    }
}

impl<T> From<RemapVec<T>> for Box<[T]> {
    /// [`RemapVec::into_boxed_slice`].
    ///
    /// ```
    /// # use remapvec::RemapVec;
    /// let b: Box<[u8]> = RemapVec::from([1, 2]).into();
    /// assert_eq!(&*b, [1, 2]);
    /// ```
    fn from(v: RemapVec<T>) -> Self {
        v.into_boxed_slice()
    }
}

/// Moves the elements of `v` into `dst`, a slice of exactly `v.len()` uninitialized slots.
fn move_into<T>(mut v: RemapVec<T>, dst: &mut [core::mem::MaybeUninit<T>]) {
    assert_eq!(dst.len(), v.len());
    // SAFETY: `dst` has room for `len` elements and does not overlap `v`'s buffer (it is
    // borrowed mutably elsewhere); `v` forgets its elements so each is owned once.
    unsafe {
        ptr::copy_nonoverlapping(v.as_ptr(), dst.as_mut_ptr().cast::<T>(), dst.len());
        v.set_len(0);
    }
}

impl<T> From<RemapVec<T>> for Arc<[T]> {
    /// Moves the elements into a new `Arc` allocation (one copy, as `Arc::from(Vec)` does).
    ///
    /// ```
    /// # use remapvec::RemapVec;
    /// use std::sync::Arc;
    /// let a: Arc<[u8]> = RemapVec::from([1, 2]).into();
    /// assert_eq!(&*a, [1, 2]);
    /// ```
    fn from(v: RemapVec<T>) -> Self {
        let mut a = Arc::<[T]>::new_uninit_slice(v.len());
        move_into(v, Arc::get_mut(&mut a).expect("a new Arc is unique"));
        // SAFETY: every slot was written by `move_into`.
        unsafe { a.assume_init() }
    }
}

impl<T> From<RemapVec<T>> for Rc<[T]> {
    /// Moves the elements into a new `Rc` allocation (one copy, as `Rc::from(Vec)` does).
    ///
    /// ```
    /// # use remapvec::RemapVec;
    /// use std::rc::Rc;
    /// let r: Rc<[u8]> = RemapVec::from([1, 2]).into();
    /// assert_eq!(&*r, [1, 2]);
    /// ```
    fn from(v: RemapVec<T>) -> Self {
        let mut r = Rc::<[T]>::new_uninit_slice(v.len());
        move_into(v, Rc::get_mut(&mut r).expect("a new Rc is unique"));
        // SAFETY: every slot was written by `move_into`.
        unsafe { r.assume_init() }
    }
}

impl<T> From<RemapVec<T>> for VecDeque<T> {
    /// A deque of the elements: a heap-phase buffer is taken over without copying, a mapped
    /// one is copied once.
    ///
    /// ```
    /// # use remapvec::RemapVec;
    /// use std::collections::VecDeque;
    /// let d: VecDeque<u8> = RemapVec::from([1, 2]).into();
    /// assert_eq!(d, [1, 2]);
    /// ```
    fn from(v: RemapVec<T>) -> Self {
        VecDeque::from(Vec::from(v))
    }
}

impl<T: Ord> From<RemapVec<T>> for BinaryHeap<T> {
    /// A max-heap of the elements (heapified in O(n)); a mapped buffer is copied once.
    ///
    /// ```
    /// # use remapvec::RemapVec;
    /// use std::collections::BinaryHeap;
    /// let h: BinaryHeap<u8> = RemapVec::from([1, 3, 2]).into();
    /// assert_eq!(h.into_sorted_vec(), [1, 2, 3]);
    /// ```
    fn from(v: RemapVec<T>) -> Self {
        BinaryHeap::from(Vec::from(v))
    }
}

impl<'a, T: Clone> From<RemapVec<T>> for Cow<'a, [T]> {
    /// An owned `Cow` (its owned form is a `Vec`: a mapped buffer is copied once).
    ///
    /// ```
    /// # use remapvec::RemapVec;
    /// use std::borrow::Cow;
    /// let c: Cow<'_, [u8]> = RemapVec::from([1, 2]).into();
    /// assert!(matches!(c, Cow::Owned(_)));
    /// ```
    fn from(v: RemapVec<T>) -> Self {
        Cow::Owned(Vec::from(v))
    }
}

impl<'a, T: Clone> From<&'a RemapVec<T>> for Cow<'a, [T]> {
    /// A borrowed `Cow` of the elements.
    ///
    /// ```
    /// # use remapvec::RemapVec;
    /// use std::borrow::Cow;
    /// let v = RemapVec::from([1, 2]);
    /// let c: Cow<'_, [u8]> = (&v).into();
    /// assert!(matches!(c, Cow::Borrowed([1, 2])));
    /// ```
    fn from(v: &'a RemapVec<T>) -> Self {
        Cow::Borrowed(v.as_slice())
    }
}

// ---------------------------------------------------------------------------------------------
// Comparisons with VecDeque and Cow.

impl<T: PartialEq<U>, U> PartialEq<VecDeque<U>> for RemapVec<T> {
    /// Equal when both hold equal elements in the same order.
    ///
    /// ```
    /// # use remapvec::RemapVec;
    /// use std::collections::VecDeque;
    /// assert_eq!(RemapVec::from([1, 2]), VecDeque::from([1, 2]));
    /// ```
    fn eq(&self, other: &VecDeque<U>) -> bool {
        let (a, b) = other.as_slices();
        self.len() == other.len() && self[..a.len()] == *a && self[a.len()..] == *b
    }
}

impl<T: PartialEq<U>, U> PartialEq<RemapVec<U>> for VecDeque<T> {
    /// Equal when both hold equal elements in the same order (like
    /// `VecDeque<T> == Vec<U>`).
    ///
    /// ```
    /// # use remapvec::RemapVec;
    /// use std::collections::VecDeque;
    /// let mut d = VecDeque::from([2]);
    /// d.push_front(1);
    /// assert_eq!(d, RemapVec::from([1, 2]));
    /// ```
    fn eq(&self, other: &RemapVec<U>) -> bool {
        let (a, b) = self.as_slices();
        self.len() == other.len() && *a == other[..a.len()] && *b == other[a.len()..]
    }
}

impl<T: PartialEq<U>, U> PartialEq<Cow<'_, [U]>> for RemapVec<T>
where
    [U]: ToOwned,
{
    /// Equal when the elements are.
    ///
    /// ```
    /// # use remapvec::RemapVec;
    /// use std::borrow::Cow;
    /// assert_eq!(RemapVec::from([1, 2]), Cow::Borrowed(&[1, 2][..]));
    /// ```
    fn eq(&self, other: &Cow<'_, [U]>) -> bool {
        self[..] == other[..]
    }
}

impl<T: PartialEq<U> + Clone, U> PartialEq<RemapVec<U>> for Cow<'_, [T]> {
    /// Equal when the elements are (like `Cow<[T]> == Vec<U>`).
    ///
    /// ```
    /// # use remapvec::RemapVec;
    /// use std::borrow::Cow;
    /// assert_eq!(Cow::Borrowed(&[1, 2][..]), RemapVec::from([1, 2]));
    /// ```
    fn eq(&self, other: &RemapVec<U>) -> bool {
        self[..] == other[..]
    }
}

// ---------------------------------------------------------------------------------------------
// The iterators.

impl<T> Default for IntoIter<T> {
    /// An empty iterator (of an empty vector, which allocates nothing).
    ///
    /// ```
    /// let mut it = remapvec::IntoIter::<u8>::default();
    /// assert_eq!(it.next(), None);
    /// ```
    fn default() -> Self {
        RemapVec::new().into_iter()
    }
}

impl<T> AsRef<[T]> for IntoIter<T> {
    /// The elements not yet yielded ([`IntoIter::as_slice`]).
    ///
    /// ```
    /// let mut it = remapvec::RemapVec::from([1, 2]).into_iter();
    /// it.next();
    /// assert_eq!(it.as_ref(), [2]);
    /// ```
    fn as_ref(&self) -> &[T] {
        self.as_slice()
    }
}

impl<T> AsRef<[T]> for Drain<'_, T> {
    /// The elements not yet yielded ([`Drain::as_slice`]).
    ///
    /// ```
    /// let mut v = remapvec::RemapVec::from([1, 2, 3]);
    /// let d = v.drain(1..);
    /// assert_eq!(d.as_ref(), [2, 3]);
    /// ```
    fn as_ref(&self) -> &[T] {
        self.as_slice()
    }
}
