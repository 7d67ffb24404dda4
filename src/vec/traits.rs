//! The standard traits of `RemapVec<T>`: the ones `Vec<T>` has, with the same behaviour.

use super::RemapVec;
use crate::raw::VecOptions;
use core::borrow::{Borrow, BorrowMut};
use core::cmp::Ordering;
use core::hash::{Hash, Hasher};
use core::ops::{Deref, DerefMut, Index, IndexMut};
use core::slice::SliceIndex;
use core::{fmt, ptr};

impl<T> Deref for RemapVec<T> {
    type Target = [T];

    #[inline]
    fn deref(&self) -> &[T] {
        self.as_slice()
    }
}

impl<T> DerefMut for RemapVec<T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut [T] {
        self.as_mut_slice()
    }
}

impl<T> Default for RemapVec<T> {
    /// An empty vector, like [`RemapVec::new`].
    fn default() -> Self {
        RemapVec::new()
    }
}

impl<T: Clone> Clone for RemapVec<T> {
    /// A vector with the same elements and options. A clone of a mapped vector is mapped.
    ///
    /// ```
    /// # use remapvec::RemapVec;
    /// let v = RemapVec::from([String::from("x")]);
    /// assert_eq!(v.clone(), v);
    /// ```
    fn clone(&self) -> Self {
        let mut v = RemapVec::with_capacity_and_options(self.len(), self.options());
        v.extend_from_slice(self);
        v
    }

    fn clone_from(&mut self, source: &Self) {
        self.truncate(source.len());
        let (init, tail) = source.split_at(self.len());
        self.clone_from_slice(init);
        self.extend_from_slice(tail);
    }
}

impl<T: fmt::Debug> fmt::Debug for RemapVec<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<T: Hash> Hash for RemapVec<T> {
    /// Hashes like the slice (and so like a `Vec` with the same elements).
    fn hash<H: Hasher>(&self, state: &mut H) {
        Hash::hash(&**self, state)
    }
}

impl<T: Eq> Eq for RemapVec<T> {}

impl<T: PartialOrd> PartialOrd for RemapVec<T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        PartialOrd::partial_cmp(&**self, &**other)
    }
}

impl<T: Ord> Ord for RemapVec<T> {
    fn cmp(&self, other: &Self) -> Ordering {
        Ord::cmp(&**self, &**other)
    }
}

macro_rules! impl_eq {
    ([$($vars:tt)*] $lhs:ty, $rhs:ty) => {
        impl<T, U, $($vars)*> PartialEq<$rhs> for $lhs
        where
            T: PartialEq<U>,
        {
            #[inline]
            fn eq(&self, other: &$rhs) -> bool {
                self[..] == other[..]
            }
        }
    };
}

impl_eq! { [] RemapVec<T>, RemapVec<U> }
impl_eq! { [] RemapVec<T>, [U] }
impl_eq! { [] RemapVec<T>, &[U] }
impl_eq! { [] RemapVec<T>, &mut [U] }
impl_eq! { [] RemapVec<T>, Vec<U> }
impl_eq! { [] Vec<T>, RemapVec<U> }
impl_eq! { [] [T], RemapVec<U> }
impl_eq! { [] &[T], RemapVec<U> }
impl_eq! { [] &mut [T], RemapVec<U> }
impl_eq! { [const N: usize] RemapVec<T>, [U; N] }
impl_eq! { [const N: usize] RemapVec<T>, &[U; N] }

impl<T, I: SliceIndex<[T]>> Index<I> for RemapVec<T> {
    type Output = I::Output;

    #[inline]
    fn index(&self, index: I) -> &I::Output {
        Index::index(&**self, index)
    }
}

impl<T, I: SliceIndex<[T]>> IndexMut<I> for RemapVec<T> {
    #[inline]
    fn index_mut(&mut self, index: I) -> &mut I::Output {
        IndexMut::index_mut(&mut **self, index)
    }
}

impl<T> AsRef<[T]> for RemapVec<T> {
    fn as_ref(&self) -> &[T] {
        self
    }
}

impl<T> AsMut<[T]> for RemapVec<T> {
    fn as_mut(&mut self) -> &mut [T] {
        self
    }
}

impl<T> AsRef<RemapVec<T>> for RemapVec<T> {
    fn as_ref(&self) -> &RemapVec<T> {
        self
    }
}

impl<T> AsMut<RemapVec<T>> for RemapVec<T> {
    fn as_mut(&mut self) -> &mut RemapVec<T> {
        self
    }
}

impl<T> Borrow<[T]> for RemapVec<T> {
    fn borrow(&self) -> &[T] {
        self
    }
}

impl<T> BorrowMut<[T]> for RemapVec<T> {
    fn borrow_mut(&mut self) -> &mut [T] {
        self
    }
}

impl<'a, T> IntoIterator for &'a RemapVec<T> {
    type Item = &'a T;
    type IntoIter = core::slice::Iter<'a, T>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl<'a, T> IntoIterator for &'a mut RemapVec<T> {
    type Item = &'a mut T;
    type IntoIter = core::slice::IterMut<'a, T>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter_mut()
    }
}

impl<T> Extend<T> for RemapVec<T> {
    #[track_caller]
    fn extend<I: IntoIterator<Item = T>>(&mut self, iter: I) {
        self.extend_desugared(iter.into_iter())
    }
}

impl<'a, T: Copy + 'a> Extend<&'a T> for RemapVec<T> {
    #[track_caller]
    fn extend<I: IntoIterator<Item = &'a T>>(&mut self, iter: I) {
        self.extend_desugared(iter.into_iter().copied())
    }
}

impl<T> FromIterator<T> for RemapVec<T> {
    /// ```
    /// # use remapvec::RemapVec;
    /// let v: RemapVec<u32> = (0..5).collect();
    /// assert_eq!(v, [0, 1, 2, 3, 4]);
    /// ```
    #[track_caller]
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Self {
        let mut v = RemapVec::new();
        v.extend_desugared(iter.into_iter());
        v
    }
}

impl<T> From<Vec<T>> for RemapVec<T> {
    /// Takes over the `Vec`'s heap buffer without copying. It moves into a mapping of its own
    /// the first time it grows past the heap threshold.
    ///
    /// ```
    /// # use remapvec::RemapVec;
    /// let v = RemapVec::from(vec![1, 2]);
    /// assert_eq!(v, [1, 2]);
    /// ```
    fn from(v: Vec<T>) -> Self {
        let mut v = core::mem::ManuallyDrop::new(v);
        let (p, len, cap) = (v.as_mut_ptr(), v.len(), v.capacity());
        // SAFETY: the parts of a Vec<T> of the global allocator that is never used again.
        unsafe { RemapVec::from_raw_parts(p, len, cap) }
    }
}

impl<T> From<RemapVec<T>> for Vec<T> {
    /// Hands over a heap buffer without copying; a mapped one is copied into a new `Vec`
    /// (a `Vec` must own global-allocator memory).
    ///
    /// ```
    /// # use remapvec::RemapVec;
    /// let v: Vec<u8> = RemapVec::from([1, 2]).into();
    /// assert_eq!(v, [1, 2]);
    /// ```
    fn from(mut v: RemapVec<T>) -> Self {
        let len = v.len;
        if v.is_mapped() {
            let mut out = Vec::with_capacity(len);
            // SAFETY: `out` has room for `len`; `v` forgets its elements (length 0) so each is
            // owned once.
            unsafe {
                ptr::copy_nonoverlapping(v.as_ptr(), out.as_mut_ptr(), len);
                v.set_len(0);
                out.set_len(len);
            }
            return out;
        }
        let me = core::mem::ManuallyDrop::new(v);
        // SAFETY: the buffer is moved out of a value that is never dropped.
        let buf = unsafe { ptr::read(&me.buf) };
        match buf.into_heap() {
            // SAFETY: a heap block of the global allocator for `cap` elements (dangling with
            // cap 0), `len` of them initialized: exactly a Vec's parts.
            Ok((p, cap)) => unsafe { Vec::from_raw_parts(p.as_ptr(), len, cap) },
            Err(_) => unreachable!("checked is_mapped above"),
        }
    }
}

impl<T: Clone> From<&[T]> for RemapVec<T> {
    /// ```
    /// # use remapvec::RemapVec;
    /// assert_eq!(RemapVec::from(&[1, 2][..]), [1, 2]);
    /// ```
    fn from(s: &[T]) -> Self {
        let mut v = RemapVec::with_capacity(s.len());
        v.extend_from_slice(s);
        v
    }
}

impl<T: Clone> From<&mut [T]> for RemapVec<T> {
    fn from(s: &mut [T]) -> Self {
        RemapVec::from(&*s)
    }
}

impl<T, const N: usize> From<[T; N]> for RemapVec<T> {
    /// ```
    /// # use remapvec::RemapVec;
    /// assert_eq!(RemapVec::from([1, 2]).len(), 2);
    /// ```
    fn from(a: [T; N]) -> Self {
        let mut v = RemapVec::with_capacity(N);
        let a = core::mem::ManuallyDrop::new(a);
        // SAFETY: room for N; the array is never dropped, so each element is owned once.
        unsafe {
            ptr::copy_nonoverlapping(a.as_ptr(), v.as_mut_ptr(), N);
            v.set_len(N);
        }
        v
    }
}

impl<T: Clone, const N: usize> From<&[T; N]> for RemapVec<T> {
    fn from(a: &[T; N]) -> Self {
        RemapVec::from(&a[..])
    }
}

impl From<&str> for RemapVec<u8> {
    /// The bytes of the string.
    ///
    /// ```
    /// # use remapvec::RemapVec;
    /// assert_eq!(RemapVec::from("hi"), *b"hi");
    /// ```
    fn from(s: &str) -> Self {
        RemapVec::from(s.as_bytes())
    }
}

impl<T> From<VecOptions> for RemapVec<T> {
    /// An empty vector with these options.
    fn from(opts: VecOptions) -> Self {
        RemapVec::with_options(opts)
    }
}
