//! The iterators that own or borrow a `RemapVec`'s elements: `IntoIter`, `Drain`, `Splice`.

use super::RemapVec;
use crate::raw::RawVec;
use core::fmt;
use core::iter::FusedIterator;
use core::ptr::{self, NonNull};

/// The owning iterator of a [`RemapVec`] (from `into_iter()`).
///
/// ```
/// # use remapvec::RemapVec;
/// let v = RemapVec::from([String::from("a"), String::from("b")]);
/// let mut it = v.into_iter();
/// assert_eq!(it.next().as_deref(), Some("a"));
/// assert_eq!(it.as_slice(), ["b"]);
/// ```
pub struct IntoIter<T> {
    buf: RawVec<T>,
    /// Elements `start..end` of the buffer are initialized and not yet yielded.
    start: usize,
    end: usize,
}

// SAFETY: owns its remaining elements, like `vec::IntoIter`.
unsafe impl<T: Send> Send for IntoIter<T> {}
// SAFETY: `&IntoIter` gives only `&T` access.
unsafe impl<T: Sync> Sync for IntoIter<T> {}

impl<T> IntoIter<T> {
    /// The elements not yet yielded.
    ///
    /// ```
    /// let mut it = remapvec::RemapVec::from([1, 2, 3]).into_iter();
    /// it.next_back();
    /// assert_eq!(it.as_slice(), [1, 2]);
    /// ```
    pub fn as_slice(&self) -> &[T] {
        // SAFETY: `start..end` are initialized.
        unsafe {
            core::slice::from_raw_parts(self.buf.ptr().add(self.start), self.end - self.start)
        }
    }

    /// The elements not yet yielded, mutably.
    ///
    /// ```
    /// let mut it = remapvec::RemapVec::from([1, 2]).into_iter();
    /// it.as_mut_slice()[1] = 5;
    /// assert_eq!(it.collect::<Vec<_>>(), [1, 5]);
    /// ```
    pub fn as_mut_slice(&mut self) -> &mut [T] {
        // SAFETY: `start..end` are initialized; `&mut self` makes it unique.
        unsafe {
            core::slice::from_raw_parts_mut(self.buf.ptr().add(self.start), self.end - self.start)
        }
    }
}

impl<T> Iterator for IntoIter<T> {
    type Item = T;

    #[inline]
    fn next(&mut self) -> Option<T> {
        if self.start == self.end {
            return None;
        }
        self.start += 1;
        // SAFETY: element `start - 1` is initialized and now no longer counted.
        Some(unsafe { self.buf.ptr().add(self.start - 1).read() })
    }

    #[inline]
    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.end - self.start;
        (n, Some(n))
    }

    #[inline]
    fn count(self) -> usize {
        self.len()
    }
}

impl<T> DoubleEndedIterator for IntoIter<T> {
    #[inline]
    fn next_back(&mut self) -> Option<T> {
        if self.start == self.end {
            return None;
        }
        self.end -= 1;
        // SAFETY: element `end` is initialized and now no longer counted.
        Some(unsafe { self.buf.ptr().add(self.end).read() })
    }
}

impl<T> ExactSizeIterator for IntoIter<T> {}
impl<T> FusedIterator for IntoIter<T> {}

impl<T: Clone> Clone for IntoIter<T> {
    fn clone(&self) -> Self {
        RemapVec::from(self.as_slice()).into_iter()
    }
}

impl<T: fmt::Debug> fmt::Debug for IntoIter<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("IntoIter").field(&self.as_slice()).finish()
    }
}

impl<T> Drop for IntoIter<T> {
    fn drop(&mut self) {
        let rest = ptr::slice_from_raw_parts_mut(
            // SAFETY: `start <= end <= capacity`: inside the buffer.
            unsafe { self.buf.ptr().add(self.start) },
            self.end - self.start,
        );
        self.start = self.end;
        // SAFETY: the remaining elements are initialized and dropped once; the buffer frees
        // itself afterwards (also if a destructor panics).
        unsafe { ptr::drop_in_place(rest) }
    }
}

impl<T> IntoIterator for RemapVec<T> {
    type Item = T;
    type IntoIter = IntoIter<T>;

    /// ```
    /// # use remapvec::RemapVec;
    /// let sum: i32 = RemapVec::from([1, 2, 3]).into_iter().sum();
    /// assert_eq!(sum, 6);
    /// ```
    fn into_iter(self) -> IntoIter<T> {
        let me = core::mem::ManuallyDrop::new(self);
        // SAFETY: the buffer is moved out of a value that is never dropped.
        let buf = unsafe { ptr::read(&me.buf) };
        IntoIter {
            buf,
            start: 0,
            end: me.len,
        }
    }
}

/// A draining iterator over a range of a [`RemapVec`] (from [`RemapVec::drain`]).
///
/// ```
/// # use remapvec::RemapVec;
/// let mut v = RemapVec::from([1, 2, 3]);
/// let mut d = v.drain(..2);
/// assert_eq!(d.as_slice(), [1, 2]);
/// drop(d);
/// assert_eq!(v, [3]);
/// ```
///
/// Like `std::vec::Drain` it is covariant in `T`: a drain of `&'static str`s can be used as a
/// drain of shorter-lived `&str`s (it only hands elements out).
///
/// ```
/// # use remapvec::{Drain, RemapVec};
/// fn shorten<'a, 'd>(d: Drain<'d, &'static str>) -> Drain<'d, &'a str> {
///     d
/// }
/// let mut v = RemapVec::from(["a", "b"]);
/// assert_eq!(shorten(v.drain(..)).count(), 2);
/// ```
pub struct Drain<'a, T> {
    /// The drained vector, borrowed mutably for `'a`. A `NonNull` (covariant) rather than a
    /// `&'a mut` (invariant in `T`), as in std: nothing ever writes a `T` through a `Drain`
    /// that did not come from the vector it was made from (`Splice` builds its drain from
    /// `&mut RemapVec<T>` with the replacement's exact item type).
    vec: NonNull<RemapVec<T>>,
    /// Elements `next..end` of the vector's buffer are initialized and not yet yielded.
    next: usize,
    end: usize,
    /// The kept tail: `tail_start..tail_start + tail_len`.
    tail_start: usize,
    tail_len: usize,
    /// The borrow of the vector (covariant, like std's `slice::Iter<'a, T>`).
    _marker: core::marker::PhantomData<&'a RemapVec<T>>,
}

// SAFETY: like `vec::Drain`: it is a `&mut RemapVec<T>` plus indices.
unsafe impl<T: Send> Send for Drain<'_, T> {}
// SAFETY: `&Drain` gives only `&T` access.
unsafe impl<T: Sync> Sync for Drain<'_, T> {}

impl<'a, T> Drain<'a, T> {
    pub(super) fn new(vec: &'a mut RemapVec<T>, start: usize, end: usize) -> Self {
        let len = vec.len;
        // The drained and tail elements' pages were written: a later fill needs no populate.
        vec.buf.len_dropped(len, start);
        // Until the drain is dropped the vector only claims its head: leaking the drain leaks
        // the drained and tail elements, never exposes moved-out ones.
        vec.len = start;
        Drain {
            vec: NonNull::from(vec),
            next: start,
            end,
            tail_start: end,
            tail_len: len - end,
            _marker: core::marker::PhantomData,
        }
    }

    fn base(&self) -> *mut T {
        // SAFETY: `vec` is a live `&mut RemapVec` for `'a`.
        unsafe { self.vec.as_ref().buf.ptr() }
    }

    /// The elements not yet yielded.
    ///
    /// ```
    /// let mut v = remapvec::RemapVec::from([1, 2, 3]);
    /// let mut d = v.drain(1..);
    /// d.next();
    /// assert_eq!(d.as_slice(), [3]);
    /// ```
    pub fn as_slice(&self) -> &[T] {
        // SAFETY: `next..end` are initialized.
        unsafe { core::slice::from_raw_parts(self.base().add(self.next), self.end - self.next) }
    }

    /// Fills the hole `[vec.len, tail_start)` from `iter`; true if it was filled completely.
    fn fill<I: Iterator<Item = T>>(&mut self, iter: &mut I) -> bool {
        // SAFETY: `vec` is a live unique reference; each slot of the hole is uninitialized and
        // the vector's length follows each write.
        unsafe {
            let vec = self.vec.as_mut();
            while vec.len < self.tail_start {
                match iter.next() {
                    Some(x) => {
                        vec.buf.ptr().add(vec.len).write(x);
                        vec.len += 1;
                    }
                    None => return false,
                }
            }
        }
        true
    }

    /// Moves the tail `additional` slots to the right, growing the buffer if needed.
    #[track_caller]
    fn move_tail(&mut self, additional: usize) {
        // SAFETY: `vec` is live and unique; the tail is initialized and moves inside capacity.
        unsafe {
            let vec = self.vec.as_mut();
            let used = self.tail_start + self.tail_len;
            vec.buf.reserve(used, additional);
            let new_start = self.tail_start + additional;
            let p = vec.buf.ptr();
            ptr::copy(p.add(self.tail_start), p.add(new_start), self.tail_len);
            self.tail_start = new_start;
        }
    }
}

impl<T> Iterator for Drain<'_, T> {
    type Item = T;

    #[inline]
    fn next(&mut self) -> Option<T> {
        if self.next == self.end {
            return None;
        }
        self.next += 1;
        // SAFETY: element `next - 1` is initialized and no longer counted.
        Some(unsafe { self.base().add(self.next - 1).read() })
    }

    #[inline]
    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.end - self.next;
        (n, Some(n))
    }
}

impl<T> DoubleEndedIterator for Drain<'_, T> {
    #[inline]
    fn next_back(&mut self) -> Option<T> {
        if self.next == self.end {
            return None;
        }
        self.end -= 1;
        // SAFETY: element `end` is initialized and no longer counted.
        Some(unsafe { self.base().add(self.end).read() })
    }
}

impl<T> ExactSizeIterator for Drain<'_, T> {}
impl<T> FusedIterator for Drain<'_, T> {}

impl<T: fmt::Debug> fmt::Debug for Drain<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Drain").field(&self.as_slice()).finish()
    }
}

impl<T> Drop for Drain<'_, T> {
    fn drop(&mut self) {
        /// Moves the tail back even if dropping a drained element panics.
        struct TailGuard<'r, 'a, T>(&'r mut Drain<'a, T>);
        impl<T> Drop for TailGuard<'_, '_, T> {
            fn drop(&mut self) {
                let d = &mut *self.0;
                // SAFETY: `vec` is live and unique; the tail is initialized and moves down to
                // the vector's current end, within capacity.
                unsafe {
                    let vec = d.vec.as_mut();
                    let p = vec.buf.ptr();
                    if d.tail_len > 0 && vec.len != d.tail_start {
                        ptr::copy(p.add(d.tail_start), p.add(vec.len), d.tail_len);
                    }
                    vec.len += d.tail_len;
                }
            }
        }
        let rest = ptr::slice_from_raw_parts_mut(
            // SAFETY: `next <= end <= capacity`.
            unsafe { self.base().add(self.next) },
            self.end - self.next,
        );
        self.next = self.end;
        let _guard = TailGuard(self);
        // SAFETY: the unyielded elements are initialized and dropped exactly once.
        unsafe { ptr::drop_in_place(rest) }
    }
}

/// A splicing iterator (from [`RemapVec::splice`]): yields the removed elements; the
/// replacement is inserted when it is dropped.
///
/// ```
/// # use remapvec::RemapVec;
/// let mut v = RemapVec::from([1, 2, 3]);
/// v.splice(..1, [0, 0]);
/// assert_eq!(v, [0, 0, 2, 3]);
/// ```
pub struct Splice<'a, I: Iterator + 'a> {
    drain: Drain<'a, I::Item>,
    replace_with: I,
}

impl<'a, I: Iterator> Splice<'a, I> {
    pub(super) fn new(drain: Drain<'a, I::Item>, replace_with: I) -> Self {
        Splice {
            drain,
            replace_with,
        }
    }
}

impl<I: Iterator> Iterator for Splice<'_, I> {
    type Item = I::Item;

    fn next(&mut self) -> Option<I::Item> {
        self.drain.next()
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.drain.size_hint()
    }
}

impl<I: Iterator> DoubleEndedIterator for Splice<'_, I> {
    fn next_back(&mut self) -> Option<I::Item> {
        self.drain.next_back()
    }
}

impl<I: Iterator> ExactSizeIterator for Splice<'_, I> {}

impl<I: Iterator> fmt::Debug for Splice<'_, I>
where
    I::Item: fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Splice")
            .field(&self.drain.as_slice())
            .finish()
    }
}

impl<I: Iterator> Drop for Splice<'_, I> {
    #[track_caller]
    fn drop(&mut self) {
        // Drop the removed elements not yet yielded.
        self.drain.by_ref().for_each(drop);
        if self.drain.tail_len == 0 {
            // SAFETY: `vec` is live and unique; nothing follows the hole, so extending is fine.
            let vec = unsafe { self.drain.vec.as_mut() };
            vec.extend_desugared(self.replace_with.by_ref());
            return;
        }
        if !self.drain.fill(&mut self.replace_with) {
            return;
        }
        // More to insert: make room by the lower size hint, then by what is left.
        let (lower, _) = self.replace_with.size_hint();
        if lower > 0 {
            self.drain.move_tail(lower);
            if !self.drain.fill(&mut self.replace_with) {
                return;
            }
        }
        let rest: Vec<I::Item> = self.replace_with.by_ref().collect();
        if !rest.is_empty() {
            self.drain.move_tail(rest.len());
            let filled = self.drain.fill(&mut rest.into_iter());
            debug_assert!(filled);
        }
        // The Drain's own drop moves the tail back into place.
    }
}
