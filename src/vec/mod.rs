//! `RemapVec<T>`: elements and length over [`RawVec`], the `Vec` API, `Deref<Target = [T]>`.

use crate::error::TryReserveError;
use crate::raw::{FILL_CHUNK, RawVec, VecOptions};
use crate::stats::GrowStats;
use core::mem::{ManuallyDrop, MaybeUninit};
use core::ops::{Bound, Range, RangeBounds};
use core::ptr;

mod convert;
mod extract;
mod io;
mod iter;
#[cfg(feature = "serde")]
mod serde;
mod traits;
mod zeroed;
#[doc(hidden)]
pub use zeroed::__private;

pub use extract::ExtractIf;
pub use iter::{Drain, IntoIter, Splice};

/// A contiguous growable array, like [`Vec<T>`], for huge buffers: when it grows past the heap
/// threshold its memory is a mapping of its own, which grows by `mremap` — in place when the
/// addresses after it are free (they usually are: regions are placed with room to grow),
/// else by moving page tables to a new address. Element bytes are never copied to grow,
/// except once when the vector leaves the heap and, as a counted last resort, when the kernel
/// refuses both.
///
/// ```
/// use remapvec::RemapVec;
///
/// let mut v = RemapVec::new();
/// for i in 0..1_000_000u64 {
///     v.push(i);
/// }
/// assert_eq!(v[999_999], 999_999);
/// assert!(v.is_mapped()); // 8 MB: in its own mapping
/// let s = v.stats();
/// # #[cfg(all(target_os = "linux", not(feature = "force-fallback")))]
/// assert_eq!(s.copied, 1); // only the move off the heap copied
/// println!("{} grows in place, {} moved", s.in_place, s.moved);
/// ```
///
/// # Guarantees
///
/// * **Addresses.** As with `Vec`, nothing is promised about the address of the buffer across
///   any call that may grow or shrink it (`push`, `reserve`, `shrink_to_fit`, ...). A grow in
///   place keeps it; a move changes it. The borrow checker enforces this: those calls take
///   `&mut self`.
/// * **Heap and mapped phases.** Capacities whose size in bytes is below the heap threshold
///   ([`VecOptions::heap_threshold`], default 128 KiB) live on the global allocator, like a
///   `Vec`. From the threshold on, the buffer is one anonymous mapping ([`is_mapped`]) and the
///   capacity is the whole mapping: [`capacity`] may exceed what was asked, up to the next page.
///   `capacity() * size_of::<T>()` never exceeds `isize::MAX`.
/// * **Which calls are syscalls.** Only those that change the capacity of a mapped vector:
///   a grow is one `mremap` when in place, two or three when moved (reserve a destination,
///   `mremap` into it), more when it must copy; a shrink is one `mremap`; drop is one `munmap`;
///   moving off the heap is one `mmap`. Everything else (push within capacity, indexing,
///   iteration) is plain memory access. [`stats`] counts them.
/// * **Zero-sized types** never allocate; the capacity is `usize::MAX`.
/// * **Alignment** of `T` is honoured on both phases, also above the page size (a mapping is
///   then placed at a multiple of the alignment).
/// * **Failure.** [`try_reserve`] and friends return [`TryReserveError`] and leave contents,
///   length and capacity as they were. The other growing methods panic with
///   "capacity overflow" or call [`handle_alloc_error`](std::alloc::handle_alloc_error), like
///   `Vec`.
/// * **Layout.** Four words, like `Vec`'s three plus one: pointer, capacity, length, and one
///   word that holds the packed [`VecOptions`] or, once the vector is mapped, the address of a
///   small out-of-line header (its region, [`stats`] and dirty extent). `Option<RemapVec<T>>`
///   is the same size; [`IntoIter`](crate::IntoIter) is five words.
///
///   ```
///   # use remapvec::RemapVec;
///   assert_eq!(size_of::<RemapVec<u64>>(), 4 * size_of::<usize>());
///   assert_eq!(size_of::<Option<RemapVec<u64>>>(), size_of::<RemapVec<u64>>());
///   ```
/// * **`Send`/`Sync`** exactly when `T` is.
/// * **What stable Rust cannot match.** `Vec`'s destructor is marked with the unstable
///   `#[may_dangle]`, which tells the drop checker that dropping a `Vec<&T>` touches no `T`;
///   stable Rust has no such attribute, so a `RemapVec` of borrowing elements (`RemapVec<&T>`,
///   a struct holding one) must not outlive what its elements borrow, not even at the end of
///   a scope: declare the borrowed values before the vector. Also out of reach on stable: an
///   allocator parameter (`Vec<T, A>`), the specializations that let `Vec` reuse a buffer for
///   `into_iter().map(..).collect()` or extend from a slice iterator by one `memcpy` (use
///   [`extend_from_slice`](RemapVec::extend_from_slice)), and `const` growth.
///
///   ```compile_fail,E0597
///   use remapvec::RemapVec;
///   let mut v = RemapVec::new();
///   let x = 1; // dropped before `v`: fine for a `Vec<&i32>`, an error for a `RemapVec<&i32>`
///   v.push(&x);
///   ```
///
///   ```
///   # use remapvec::RemapVec;
///   let x = 1; // declared first, dropped last
///   let mut v = RemapVec::new();
///   v.push(&x);
///   ```
///
/// [`is_mapped`]: RemapVec::is_mapped
/// [`capacity`]: RemapVec::capacity
/// [`stats`]: RemapVec::stats
/// [`try_reserve`]: RemapVec::try_reserve
pub struct RemapVec<T> {
    buf: RawVec<T>,
    /// Number of initialized elements; `len <= buf.capacity()`.
    len: usize,
}

// SAFETY: a RemapVec owns its elements like a Vec does; sending it sends the elements.
unsafe impl<T: Send> Send for RemapVec<T> {}
// SAFETY: `&RemapVec<T>` gives only `&T` access, so sharing it shares `&T`.
unsafe impl<T: Sync> Sync for RemapVec<T> {}

/// Sets `vec.len` when dropped: keeps the length right if a clone or closure panics midway.
struct SetLenOnDrop<'a> {
    len: &'a mut usize,
    local_len: usize,
}

impl Drop for SetLenOnDrop<'_> {
    fn drop(&mut self) {
        *self.len = self.local_len;
    }
}

pub(crate) fn slice_range(range: impl RangeBounds<usize>, len: usize) -> Range<usize> {
    let start = match range.start_bound() {
        Bound::Included(&s) => s,
        Bound::Excluded(&s) => s
            .checked_add(1)
            .unwrap_or_else(|| panic!("attempted to index slice from after maximum usize")),
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(&e) => e
            .checked_add(1)
            .unwrap_or_else(|| panic!("attempted to index slice up to maximum usize")),
        Bound::Excluded(&e) => e,
        Bound::Unbounded => len,
    };
    if start > end {
        panic!("slice index starts at {start} but ends at {end}");
    }
    if end > len {
        panic!("range end index {end} out of range for slice of length {len}");
    }
    start..end
}

impl<T> RemapVec<T> {
    /// An empty vector with the default options. Allocates nothing; usable in `const`.
    ///
    /// ```
    /// # use remapvec::RemapVec;
    /// static EMPTY: RemapVec<u8> = RemapVec::new();
    /// assert_eq!(EMPTY.capacity(), 0);
    /// ```
    pub const fn new() -> Self {
        RemapVec {
            buf: RawVec::new(VecOptions::new()),
            len: 0,
        }
    }

    /// An empty vector with the given options. Allocates nothing.
    ///
    /// ```
    /// # use remapvec::{RemapVec, VecOptions};
    /// let mut v: RemapVec<u8> = RemapVec::with_options(VecOptions::new().heap_threshold(0));
    /// v.push(1);
    /// assert!(v.is_mapped());
    /// ```
    pub const fn with_options(opts: VecOptions) -> Self {
        RemapVec {
            buf: RawVec::new(opts),
            len: 0,
        }
    }

    /// An empty vector with room for at least `capacity` elements.
    ///
    /// # Panics
    /// On capacity overflow; calls `handle_alloc_error` when memory is refused.
    ///
    /// ```
    /// # use remapvec::RemapVec;
    /// let v: RemapVec<u32> = RemapVec::with_capacity(1 << 20);
    /// assert!(v.capacity() >= 1 << 20 && v.is_mapped());
    /// ```
    #[track_caller]
    pub fn with_capacity(capacity: usize) -> Self {
        Self::with_capacity_and_options(capacity, VecOptions::new())
    }

    /// [`with_capacity`](Self::with_capacity) with options.
    ///
    /// ```
    /// # use remapvec::{RemapVec, VecOptions};
    /// let v: RemapVec<u8> = RemapVec::with_capacity_and_options(10, VecOptions::new().heap_threshold(0));
    /// assert!(v.is_mapped());
    /// ```
    #[track_caller]
    pub fn with_capacity_and_options(capacity: usize, opts: VecOptions) -> Self {
        match Self::try_with_capacity_and_options(capacity, opts) {
            Ok(v) => v,
            Err(e) => crate::raw::handle_error(e),
        }
    }

    /// An empty vector with room for at least `capacity` elements, or an error.
    ///
    /// # Errors
    ///
    /// [`TryReserveError`] with kind `CapacityOverflow` when `capacity` elements exceed
    /// `isize::MAX` bytes, or `AllocError` when the heap or the kernel refuses the memory.
    ///
    /// ```
    /// # use remapvec::RemapVec;
    /// assert!(RemapVec::<u64>::try_with_capacity(usize::MAX).is_err());
    /// assert!(RemapVec::<u64>::try_with_capacity(1000).is_ok());
    /// ```
    pub fn try_with_capacity(capacity: usize) -> Result<Self, TryReserveError> {
        Self::try_with_capacity_and_options(capacity, VecOptions::new())
    }

    /// [`try_with_capacity`](Self::try_with_capacity) with options.
    ///
    /// # Errors
    ///
    /// As [`try_with_capacity`](Self::try_with_capacity).
    ///
    /// ```
    /// # use remapvec::{RemapVec, VecOptions};
    /// let v = RemapVec::<u8>::try_with_capacity_and_options(1 << 30, VecOptions::new().huge_pages(true))?;
    /// assert!(v.capacity() >= 1 << 30);
    /// # Ok::<(), remapvec::TryReserveError>(())
    /// ```
    pub fn try_with_capacity_and_options(
        capacity: usize,
        opts: VecOptions,
    ) -> Result<Self, TryReserveError> {
        Ok(RemapVec {
            buf: RawVec::try_with_capacity(capacity, opts)?,
            len: 0,
        })
    }

    /// Builds a vector from a heap pointer, length and capacity, like
    /// [`Vec::from_raw_parts`].
    ///
    /// # Safety
    /// The same as `Vec::from_raw_parts`: `ptr` was allocated by the global allocator for
    /// exactly `capacity` elements of `T` (or is dangling and well aligned with `capacity == 0`),
    /// the first `length <= capacity` elements are initialized, and ownership passes to the
    /// returned vector.
    ///
    /// ```
    /// # use remapvec::RemapVec;
    /// let v = std::mem::ManuallyDrop::new(vec![1, 2, 3]);
    /// // SAFETY: the parts of a Vec<i32> that is never used again.
    /// let r = unsafe { RemapVec::from_raw_parts(v.as_ptr().cast_mut(), v.len(), v.capacity()) };
    /// assert_eq!(r, [1, 2, 3]);
    /// ```
    pub unsafe fn from_raw_parts(ptr: *mut T, length: usize, capacity: usize) -> Self {
        // SAFETY: the caller upholds `from_heap`'s contract; a Vec's pointer is non-null.
        let buf = unsafe {
            RawVec::from_heap(
                ptr::NonNull::new_unchecked(ptr),
                capacity,
                VecOptions::new(),
            )
        };
        RemapVec { buf, len: length }
    }

    /// Number of elements.
    ///
    /// ```
    /// # use remapvec::RemapVec;
    /// assert_eq!(RemapVec::from([1, 2, 3]).len(), 3);
    /// ```
    #[inline]
    pub const fn len(&self) -> usize {
        self.len
    }

    /// Whether there are no elements.
    ///
    /// ```
    /// # use remapvec::RemapVec;
    /// assert!(RemapVec::<u8>::new().is_empty());
    /// ```
    #[inline]
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of elements the vector can hold without growing. For a mapped vector this is
    /// the whole mapping (whole pages); `usize::MAX` for zero-sized `T`.
    ///
    /// ```
    /// # use remapvec::RemapVec;
    /// let v: RemapVec<u8> = RemapVec::with_capacity(200_000);
    /// assert_eq!(v.capacity() % remapvec::sys::page_size(), 0); // mapped: whole pages
    /// assert_eq!(RemapVec::<()>::new().capacity(), usize::MAX);
    /// ```
    #[inline]
    pub const fn capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// Whether the buffer is a mapping of its own (rather than a heap block or nothing).
    ///
    /// ```
    /// # use remapvec::RemapVec;
    /// let mut v = RemapVec::from([1u8; 16]);
    /// assert!(!v.is_mapped());
    /// v.reserve(1 << 20);
    /// assert!(v.is_mapped());
    /// ```
    pub fn is_mapped(&self) -> bool {
        self.buf.is_mapped()
    }

    /// How the vector's growth happened so far: grows in place, moved, copied, bytes, syscalls.
    ///
    /// ```
    /// # use remapvec::RemapVec;
    /// let mut v: RemapVec<u8> = RemapVec::with_capacity(1 << 20);
    /// v.reserve(4 << 20);
    /// assert_eq!(v.stats().grows(), 1);
    /// # #[cfg(all(target_os = "linux", not(feature = "force-fallback")))]
    /// assert_eq!(v.stats().bytes_copied, 0);
    /// ```
    pub fn stats(&self) -> GrowStats {
        self.buf.stats()
    }

    /// The options the vector was made with.
    ///
    /// ```
    /// # use remapvec::{RemapVec, VecOptions};
    /// let v: RemapVec<u8> = RemapVec::with_options(VecOptions::new().huge_pages(true));
    /// assert!(v.options().is_huge_pages());
    /// ```
    pub fn options(&self) -> VecOptions {
        self.buf.options()
    }

    /// Reserves room for at least `additional` more elements; may reserve more to make
    /// repeated pushes amortized O(1).
    ///
    /// # Panics
    /// If the capacity would exceed `isize::MAX` bytes; calls `handle_alloc_error` when the
    /// memory is refused.
    ///
    /// ```
    /// # use remapvec::RemapVec;
    /// let mut v = RemapVec::from([1]);
    /// v.reserve(10);
    /// assert!(v.capacity() >= 11);
    /// ```
    #[track_caller]
    pub fn reserve(&mut self, additional: usize) {
        self.buf.reserve(self.len, additional)
    }

    /// Reserves room for at least `additional` more elements without over-allocating (a mapped
    /// vector still rounds up to whole pages).
    ///
    /// ```
    /// # use remapvec::RemapVec;
    /// let mut v: RemapVec<u8> = RemapVec::new();
    /// v.reserve_exact(10);
    /// assert_eq!(v.capacity(), 10);
    /// ```
    #[track_caller]
    pub fn reserve_exact(&mut self, additional: usize) {
        self.buf.reserve_exact(self.len, additional)
    }

    /// Like [`reserve`](Self::reserve), but returns an error instead of panicking or aborting.
    /// On error the vector is unchanged.
    ///
    /// # Errors
    ///
    /// [`TryReserveError`] with kind `CapacityOverflow` when the new capacity exceeds
    /// `isize::MAX` bytes, or `AllocError` when the heap or the kernel refuses the memory.
    ///
    /// ```
    /// # use remapvec::RemapVec;
    /// let mut v = RemapVec::from([1u64, 2]);
    /// assert!(v.try_reserve(usize::MAX / 2).is_err());
    /// assert_eq!(v, [1, 2]);
    /// v.try_reserve(1 << 20)?;
    /// # Ok::<(), remapvec::TryReserveError>(())
    /// ```
    pub fn try_reserve(&mut self, additional: usize) -> Result<(), TryReserveError> {
        self.buf.try_reserve(self.len, additional)
    }

    /// Like [`reserve_exact`](Self::reserve_exact), but returns an error.
    ///
    /// # Errors
    ///
    /// As [`try_reserve`](Self::try_reserve).
    ///
    /// ```
    /// # use remapvec::RemapVec;
    /// let mut v: RemapVec<u8> = RemapVec::new();
    /// v.try_reserve_exact(100)?;
    /// assert_eq!(v.capacity(), 100);
    /// # Ok::<(), remapvec::TryReserveError>(())
    /// ```
    pub fn try_reserve_exact(&mut self, additional: usize) -> Result<(), TryReserveError> {
        self.buf.try_reserve_exact(self.len, additional)
    }

    /// Lowers the capacity as far as possible: to the length on the heap, to whole pages when
    /// mapped (the tail pages go back to the kernel). A mapped vector that becomes smaller than
    /// the heap threshold moves back to the heap.
    ///
    /// ```
    /// # use remapvec::RemapVec;
    /// let mut v: RemapVec<u8> = RemapVec::with_capacity(1 << 20);
    /// v.extend_from_slice(&[1, 2, 3]);
    /// v.shrink_to_fit();
    /// assert!(v.capacity() >= 3 && v.capacity() < 1 << 20);
    /// ```
    pub fn shrink_to_fit(&mut self) {
        self.buf.shrink_to(self.len, 0)
    }

    /// Lowers the capacity to at least `min_capacity` (and at least the length).
    ///
    /// ```
    /// # use remapvec::RemapVec;
    /// let mut v: RemapVec<u8> = RemapVec::with_capacity(100);
    /// v.shrink_to(10);
    /// assert!(v.capacity() >= 10 && v.capacity() < 100);
    /// ```
    pub fn shrink_to(&mut self, min_capacity: usize) {
        self.buf.shrink_to(self.len, min_capacity)
    }

    /// Shortens the vector to `len` elements, dropping the rest. No effect if `len` is
    /// greater than the current length. The capacity is unchanged.
    ///
    /// ```
    /// # use remapvec::RemapVec;
    /// let mut v = RemapVec::from([1, 2, 3]);
    /// v.truncate(1);
    /// assert_eq!(v, [1]);
    /// ```
    pub fn truncate(&mut self, len: usize) {
        if len >= self.len {
            return;
        }
        let tail = ptr::slice_from_raw_parts_mut(
            // SAFETY: `len < self.len`, so the pointer stays inside the initialized elements.
            unsafe { self.as_mut_ptr().add(len) },
            self.len - len,
        );
        // The dropped elements' pages were written: a later fill needs no populate there.
        self.buf.len_dropped(self.len, len);
        // Set the length first: if a destructor panics, the rest are not dropped twice.
        self.len = len;
        // SAFETY: the tail elements are initialized and no longer part of the vector.
        unsafe { ptr::drop_in_place(tail) };
    }

    /// Removes all elements; the capacity is unchanged.
    ///
    /// ```
    /// # use remapvec::RemapVec;
    /// let mut v = RemapVec::from([1, 2]);
    /// v.clear();
    /// assert!(v.is_empty());
    /// ```
    pub fn clear(&mut self) {
        self.truncate(0)
    }

    /// A raw pointer to the buffer (dangling but aligned when nothing is allocated). Valid
    /// until the vector grows, shrinks or is dropped.
    ///
    /// ```
    /// # use remapvec::RemapVec;
    /// let v = RemapVec::from([7u8]);
    /// // SAFETY: one initialized element.
    /// assert_eq!(unsafe { *v.as_ptr() }, 7);
    /// ```
    #[inline]
    pub const fn as_ptr(&self) -> *const T {
        self.buf.ptr()
    }

    /// A raw mutable pointer to the buffer.
    ///
    /// ```
    /// # use remapvec::RemapVec;
    /// let mut v: RemapVec<u8> = RemapVec::with_capacity(4);
    /// // SAFETY: capacity 4; the elements are written before the length covers them.
    /// unsafe {
    ///     for i in 0..4 { v.as_mut_ptr().add(i).write(i as u8) }
    ///     v.set_len(4);
    /// }
    /// assert_eq!(v, [0, 1, 2, 3]);
    /// ```
    #[inline]
    pub const fn as_mut_ptr(&mut self) -> *mut T {
        self.buf.ptr()
    }

    /// The elements as a slice. `const`, like `Vec::as_slice` (and `len`, `capacity`,
    /// `as_ptr`, `as_mut_slice`, `as_mut_ptr`).
    ///
    /// ```
    /// # use remapvec::RemapVec;
    /// assert_eq!(RemapVec::from([1, 2]).as_slice(), &[1, 2]);
    ///
    /// const fn sum(v: &RemapVec<u32>) -> u32 {
    ///     let s = v.as_slice();
    ///     let (mut i, mut total) = (0, 0);
    ///     while i < s.len() {
    ///         total += s[i];
    ///         i += 1;
    ///     }
    ///     total
    /// }
    /// const fn zero_first(v: &mut RemapVec<u32>) {
    ///     if let [first, ..] = v.as_mut_slice() {
    ///         *first = 0;
    ///     }
    /// }
    /// let mut v = RemapVec::from([1, 2, 3]);
    /// zero_first(&mut v);
    /// assert_eq!(sum(&v), 5);
    /// ```
    #[inline]
    pub const fn as_slice(&self) -> &[T] {
        // SAFETY: the first `len` elements are initialized and the pointer is aligned and
        // non-null (dangling for len 0).
        unsafe { core::slice::from_raw_parts(self.as_ptr(), self.len) }
    }

    /// The elements as a mutable slice.
    ///
    /// ```
    /// # use remapvec::RemapVec;
    /// let mut v = RemapVec::from([1, 2]);
    /// v.as_mut_slice()[0] = 5;
    /// assert_eq!(v, [5, 2]);
    /// ```
    #[inline]
    pub const fn as_mut_slice(&mut self) -> &mut [T] {
        // SAFETY: as in `as_slice`, and `&mut self` makes the access unique.
        unsafe { core::slice::from_raw_parts_mut(self.as_mut_ptr(), self.len) }
    }

    /// Sets the length without dropping or initializing anything.
    ///
    /// # Safety
    /// `new_len <= capacity()` and the first `new_len` elements are initialized.
    ///
    /// ```
    /// # use remapvec::RemapVec;
    /// let mut v: RemapVec<u32> = RemapVec::with_capacity(3);
    /// v.spare_capacity_mut()[0].write(9);
    /// // SAFETY: element 0 was just written.
    /// unsafe { v.set_len(1) };
    /// assert_eq!(v, [9]);
    /// ```
    #[inline]
    pub unsafe fn set_len(&mut self, new_len: usize) {
        debug_assert!(new_len <= self.capacity());
        if new_len < self.len {
            self.buf.len_dropped(self.len, new_len);
        }
        self.len = new_len;
    }

    /// The spare capacity: the uninitialized elements after the length.
    ///
    /// ```
    /// # use remapvec::RemapVec;
    /// let mut v: RemapVec<u8> = RemapVec::with_capacity(10);
    /// assert!(v.spare_capacity_mut().len() >= 10);
    /// ```
    pub fn spare_capacity_mut(&mut self) -> &mut [MaybeUninit<T>] {
        let spare = if size_of::<T>() == 0 {
            usize::MAX - self.len
        } else {
            self.capacity() - self.len
        };
        // SAFETY: the range `len..capacity` lies inside the buffer (for ZSTs any length is
        // fine); MaybeUninit needs no initialization.
        unsafe { core::slice::from_raw_parts_mut(self.as_mut_ptr().add(self.len).cast(), spare) }
    }

    /// Consumes the vector and leaks its buffer, returning a slice that lives forever. A
    /// mapped buffer stays mapped until the process exits.
    ///
    /// ```
    /// # use remapvec::RemapVec;
    /// let s: &'static mut [u32] = RemapVec::from([1, 2]).leak();
    /// s[0] = 3;
    /// assert_eq!(s, &[3, 2]);
    /// ```
    pub fn leak<'a>(self) -> &'a mut [T] {
        let me = ManuallyDrop::new(self);
        let len = me.len;
        // SAFETY: we read the buffer out of a value that is never dropped.
        let buf = unsafe { ptr::read(&me.buf) };
        let p = buf.leak();
        // SAFETY: the buffer is never freed now and holds `len` initialized elements.
        unsafe { core::slice::from_raw_parts_mut(p.as_ptr(), len) }
    }

    /// Appends an element.
    ///
    /// # Panics
    /// If the capacity would exceed `isize::MAX` bytes.
    ///
    /// ```
    /// # use remapvec::RemapVec;
    /// let mut v = RemapVec::new();
    /// v.push(1);
    /// assert_eq!(v, [1]);
    /// ```
    #[inline]
    #[track_caller]
    pub fn push(&mut self, value: T) {
        let len = self.len;
        if len == self.buf.capacity() {
            self.buf.grow_one(len);
        }
        // SAFETY: `len < capacity` now, so the slot is inside the buffer and uninitialized.
        unsafe { self.as_mut_ptr().add(len).write(value) };
        self.len = len + 1;
    }

    /// Appends an element and returns a reference to it, like [`Vec::push_mut`].
    ///
    /// # Panics
    /// If the capacity would exceed `isize::MAX` bytes.
    ///
    /// ```
    /// # use remapvec::RemapVec;
    /// let mut v = RemapVec::from([1, 2]);
    /// let last = v.push_mut(3);
    /// *last += 1;
    /// assert_eq!(v, [1, 2, 4]);
    /// ```
    #[inline]
    #[track_caller]
    #[must_use = "if you don't need a reference to the value, use `RemapVec::push` instead"]
    pub fn push_mut(&mut self, value: T) -> &mut T {
        let len = self.len;
        if len == self.buf.capacity() {
            self.buf.grow_one(len);
        }
        // SAFETY: `len < capacity` now, so the slot is inside the buffer and uninitialized;
        // once written and counted, the reference borrows `self` mutably.
        unsafe {
            let slot = self.as_mut_ptr().add(len);
            slot.write(value);
            self.len = len + 1;
            &mut *slot
        }
    }

    /// Appends an element if there is room, else gives it back. Never allocates.
    ///
    /// # Errors
    ///
    /// `Err(value)` when the vector is full (`len() == capacity()`): the element comes back
    /// unchanged.
    ///
    /// ```
    /// # use remapvec::RemapVec;
    /// let mut v: RemapVec<u8> = RemapVec::new();
    /// assert_eq!(v.push_within_capacity(1), Err(1));
    /// ```
    pub fn push_within_capacity(&mut self, value: T) -> Result<(), T> {
        if self.len == self.buf.capacity() {
            return Err(value);
        }
        // SAFETY: `len < capacity`: the slot is inside the buffer and uninitialized.
        unsafe { self.as_mut_ptr().add(self.len).write(value) };
        self.len += 1;
        Ok(())
    }

    /// Removes the last element and returns it, or `None` if empty.
    ///
    /// ```
    /// # use remapvec::RemapVec;
    /// let mut v = RemapVec::from([1, 2]);
    /// assert_eq!(v.pop(), Some(2));
    /// ```
    #[inline]
    pub fn pop(&mut self) -> Option<T> {
        if self.len == 0 {
            return None;
        }
        self.len -= 1;
        // SAFETY: the element at the old last index is initialized and no longer counted.
        Some(unsafe { self.as_ptr().add(self.len).read() })
    }

    /// Removes and returns the last element if `predicate` is true for it.
    ///
    /// ```
    /// # use remapvec::RemapVec;
    /// let mut v = RemapVec::from([1, 2]);
    /// assert_eq!(v.pop_if(|x| *x == 2), Some(2));
    /// assert_eq!(v.pop_if(|x| *x == 2), None);
    /// ```
    pub fn pop_if(&mut self, predicate: impl FnOnce(&mut T) -> bool) -> Option<T> {
        let last = self.last_mut()?;
        if predicate(last) { self.pop() } else { None }
    }

    /// Inserts an element at `index`, shifting the rest to the right.
    ///
    /// # Panics
    /// If `index > len`.
    ///
    /// ```
    /// # use remapvec::RemapVec;
    /// let mut v = RemapVec::from([1, 3]);
    /// v.insert(1, 2);
    /// assert_eq!(v, [1, 2, 3]);
    /// ```
    #[track_caller]
    pub fn insert(&mut self, index: usize, element: T) {
        let len = self.len;
        if index > len {
            panic!("insertion index (is {index}) should be <= len (is {len})");
        }
        if len == self.buf.capacity() {
            self.buf.grow_one(len);
        }
        // SAFETY: `index <= len < capacity`; the shifted range stays inside the buffer.
        unsafe {
            let p = self.as_mut_ptr().add(index);
            if index < len {
                ptr::copy(p, p.add(1), len - index);
            }
            p.write(element);
        }
        self.len = len + 1;
    }

    /// Inserts an element at `index`, shifting the rest to the right, and returns a reference
    /// to it, like [`Vec::insert_mut`].
    ///
    /// # Panics
    /// If `index > len`.
    ///
    /// ```
    /// # use remapvec::RemapVec;
    /// let mut v = RemapVec::from([1, 3, 5, 9]);
    /// let x = v.insert_mut(3, 6);
    /// *x += 1;
    /// assert_eq!(v, [1, 3, 5, 7, 9]);
    /// ```
    #[track_caller]
    #[must_use = "if you don't need a reference to the value, use `RemapVec::insert` instead"]
    pub fn insert_mut(&mut self, index: usize, element: T) -> &mut T {
        self.insert(index, element);
        // SAFETY: `index < len` now: the element just written.
        unsafe { &mut *self.as_mut_ptr().add(index) }
    }

    /// Removes and returns the element at `index`, shifting the rest to the left.
    ///
    /// # Panics
    /// If `index >= len`.
    ///
    /// ```
    /// # use remapvec::RemapVec;
    /// let mut v = RemapVec::from([1, 2, 3]);
    /// assert_eq!(v.remove(0), 1);
    /// assert_eq!(v, [2, 3]);
    /// ```
    #[track_caller]
    pub fn remove(&mut self, index: usize) -> T {
        let len = self.len;
        if index >= len {
            panic!("removal index (is {index}) should be < len (is {len})");
        }
        // SAFETY: `index < len`: read the element out, then close the gap.
        unsafe {
            let p = self.as_mut_ptr().add(index);
            let ret = p.read();
            ptr::copy(p.add(1), p, len - index - 1);
            self.len = len - 1;
            ret
        }
    }

    /// Removes and returns the element at `index`, replacing it with the last one (O(1)).
    ///
    /// # Panics
    /// If `index >= len`.
    ///
    /// ```
    /// # use remapvec::RemapVec;
    /// let mut v = RemapVec::from([1, 2, 3]);
    /// assert_eq!(v.swap_remove(0), 1);
    /// assert_eq!(v, [3, 2]);
    /// ```
    #[track_caller]
    pub fn swap_remove(&mut self, index: usize) -> T {
        let len = self.len;
        if index >= len {
            panic!("swap_remove index (is {index}) should be < len (is {len})");
        }
        // SAFETY: `index < len`; the last element moves into the hole.
        unsafe {
            let base = self.as_mut_ptr();
            let value = base.add(index).read();
            ptr::copy(base.add(len - 1), base.add(index), 1);
            self.len = len - 1;
            value
        }
    }

    /// Keeps only the elements for which `f` returns true, in order.
    ///
    /// ```
    /// # use remapvec::RemapVec;
    /// let mut v = RemapVec::from([1, 2, 3, 4]);
    /// v.retain(|x| x % 2 == 0);
    /// assert_eq!(v, [2, 4]);
    /// ```
    pub fn retain<F: FnMut(&T) -> bool>(&mut self, mut f: F) {
        self.retain_mut(|x| f(x))
    }

    /// Like [`retain`](Self::retain) with mutable access to each element.
    ///
    /// ```
    /// # use remapvec::RemapVec;
    /// let mut v = RemapVec::from([1, 2, 3]);
    /// v.retain_mut(|x| { *x *= 10; *x > 10 });
    /// assert_eq!(v, [20, 30]);
    /// ```
    pub fn retain_mut<F: FnMut(&mut T) -> bool>(&mut self, mut f: F) {
        let original_len = self.len;
        // Elements are processed in place; until done, the vector claims length 0 so a panic
        // in `f` or a destructor can leak but never double-drop.
        self.len = 0;
        struct Guard<'a, T> {
            v: &'a mut RemapVec<T>,
            processed: usize,
            deleted: usize,
            original_len: usize,
        }
        impl<T> Drop for Guard<'_, T> {
            fn drop(&mut self) {
                if self.deleted > 0 {
                    // SAFETY: the unprocessed tail is initialized; move it over the holes.
                    unsafe {
                        let base = self.v.as_mut_ptr();
                        ptr::copy(
                            base.add(self.processed),
                            base.add(self.processed - self.deleted),
                            self.original_len - self.processed,
                        );
                    }
                }
                self.v.len = self.original_len - self.deleted;
            }
        }
        let mut g = Guard {
            v: self,
            processed: 0,
            deleted: 0,
            original_len,
        };
        while g.processed != original_len {
            // SAFETY: `processed < original_len`, an initialized element not yet visited.
            let cur = unsafe { &mut *g.v.as_mut_ptr().add(g.processed) };
            if !f(cur) {
                g.processed += 1;
                g.deleted += 1;
                // SAFETY: the element is counted as deleted before it is dropped, so a panic in
                // its destructor cannot drop it again.
                unsafe { ptr::drop_in_place(cur) };
                continue;
            }
            if g.deleted > 0 {
                // SAFETY: the hole at `processed - deleted` holds a dropped (moved-out) element.
                unsafe {
                    let base = g.v.as_mut_ptr();
                    ptr::copy_nonoverlapping(
                        base.add(g.processed),
                        base.add(g.processed - g.deleted),
                        1,
                    );
                }
            }
            g.processed += 1;
        }
        drop(g);
    }

    /// Removes consecutive elements that `same_bucket` says are equal, keeping the first.
    /// `same_bucket(a, b)` gets the later element `a` and the kept earlier `b`.
    ///
    /// ```
    /// # use remapvec::RemapVec;
    /// let mut v = RemapVec::from(["a", "A", "b"]);
    /// v.dedup_by(|a, b| a.eq_ignore_ascii_case(b));
    /// assert_eq!(v, ["a", "b"]);
    /// ```
    pub fn dedup_by<F: FnMut(&mut T, &mut T) -> bool>(&mut self, mut same_bucket: F) {
        let len = self.len;
        if len <= 1 {
            return;
        }
        struct Guard<'a, T> {
            read: usize,
            write: usize,
            v: &'a mut RemapVec<T>,
        }
        impl<T> Drop for Guard<'_, T> {
            fn drop(&mut self) {
                // On panic: keep `[0, write)` and the unread tail `[read, len)`.
                let len = self.v.len;
                // SAFETY: `write <= read <= len`; the tail is initialized.
                unsafe {
                    let base = self.v.as_mut_ptr();
                    ptr::copy(base.add(self.read), base.add(self.write), len - self.read);
                }
                self.v.len = self.write + (len - self.read);
            }
        }
        let mut g = Guard {
            read: 1,
            write: 1,
            v: self,
        };
        let base = g.v.as_mut_ptr();
        while g.read < len {
            // SAFETY: `write - 1 < read < len`; both initialized and distinct.
            unsafe {
                let read_ptr = base.add(g.read);
                let prev_ptr = base.add(g.write - 1);
                if same_bucket(&mut *read_ptr, &mut *prev_ptr) {
                    g.read += 1;
                    ptr::drop_in_place(read_ptr);
                } else {
                    let write_ptr = base.add(g.write);
                    ptr::copy(read_ptr, write_ptr, 1);
                    g.write += 1;
                    g.read += 1;
                }
            }
        }
        g.v.len = g.write;
        core::mem::forget(g);
    }

    /// Removes consecutive elements with equal keys.
    ///
    /// ```
    /// # use remapvec::RemapVec;
    /// let mut v = RemapVec::from([10, 11, 20, 21]);
    /// v.dedup_by_key(|x| *x / 10);
    /// assert_eq!(v, [10, 20]);
    /// ```
    pub fn dedup_by_key<K: PartialEq, F: FnMut(&mut T) -> K>(&mut self, mut key: F) {
        self.dedup_by(|a, b| key(a) == key(b))
    }

    /// Moves all elements of `other` to the end of `self`, leaving `other` empty.
    ///
    /// ```
    /// # use remapvec::RemapVec;
    /// let mut a = RemapVec::from([1]);
    /// let mut b = RemapVec::from([2, 3]);
    /// a.append(&mut b);
    /// assert_eq!((a.len(), b.len()), (3, 0));
    /// ```
    #[track_caller]
    pub fn append(&mut self, other: &mut Self) {
        let n = other.len;
        self.reserve(n);
        // SAFETY: room for `n` more; the two buffers are distinct (`&mut` to both); `other`
        // forgets its elements right after.
        unsafe {
            ptr::copy_nonoverlapping(other.as_ptr(), self.as_mut_ptr().add(self.len), n);
            other.set_len(0);
        }
        self.len += n;
    }

    /// Splits off the elements from `at` on into a new vector (same options). `self` keeps
    /// its capacity.
    ///
    /// # Panics
    /// If `at > len`.
    ///
    /// ```
    /// # use remapvec::RemapVec;
    /// let mut v = RemapVec::from([1, 2, 3]);
    /// let tail = v.split_off(1);
    /// assert_eq!((v, tail), (RemapVec::from([1]), RemapVec::from([2, 3])));
    ///
    /// // `split_off(0)` hands the whole buffer over, as with `Vec`; `v` keeps its capacity.
    /// let mut v: RemapVec<u8> = RemapVec::with_capacity(1 << 20);
    /// v.push(1);
    /// let p = v.as_ptr();
    /// let all = v.split_off(0);
    /// assert_eq!((all.as_ptr(), v.len()), (p, 0));
    /// assert!(v.capacity() >= 1 << 20);
    /// ```
    #[track_caller]
    #[must_use = "use `.truncate()` if you don't need the other half"]
    pub fn split_off(&mut self, at: usize) -> Self {
        let len = self.len;
        if at > len {
            panic!("`at` split index (is {at}) should be <= len (is {len})");
        }
        if at == 0 {
            // Like std: the new vector takes over the buffer (no element is copied, a mapping
            // is not even touched) and `self` gets a new, empty one of the same capacity.
            let fresh = Self::with_capacity_and_options(self.capacity(), self.options());
            return core::mem::replace(self, fresh);
        }
        let n = len - at;
        let mut other = Self::with_capacity_and_options(n, self.options());
        // SAFETY: `other` has room for `n`; `self` forgets the moved elements.
        unsafe {
            self.set_len(at);
            ptr::copy_nonoverlapping(self.as_ptr().add(at), other.as_mut_ptr(), n);
            other.set_len(n);
        }
        other
    }

    /// Resizes to `new_len`, filling new slots with the results of `f`.
    ///
    /// ```
    /// # use remapvec::RemapVec;
    /// let mut v = RemapVec::new();
    /// let mut n = 0;
    /// v.resize_with(3, || { n += 1; n });
    /// assert_eq!(v, [1, 2, 3]);
    /// ```
    #[track_caller]
    pub fn resize_with<F: FnMut() -> T>(&mut self, new_len: usize, mut f: F) {
        if new_len <= self.len {
            self.truncate(new_len);
            return;
        }
        let n = new_len - self.len;
        self.reserve(n);
        self.fill_with(n, |_| f());
    }

    /// Removes the elements in `range` and returns them as an iterator. The tail moves down
    /// when the iterator is dropped (even if it was not consumed).
    ///
    /// # Panics
    /// If the range is out of bounds or its start is after its end.
    ///
    /// ```
    /// # use remapvec::RemapVec;
    /// let mut v = RemapVec::from([1, 2, 3, 4]);
    /// let d: Vec<_> = v.drain(1..3).collect();
    /// assert_eq!((d, v), (vec![2, 3], RemapVec::from([1, 4])));
    /// ```
    #[track_caller]
    pub fn drain<R: RangeBounds<usize>>(&mut self, range: R) -> Drain<'_, T> {
        let Range { start, end } = slice_range(range, self.len);
        Drain::new(self, start, end)
    }

    /// Replaces `range` with the items of `replace_with`, returning the removed ones. The
    /// replacement happens when the returned iterator is dropped.
    ///
    /// ```
    /// # use remapvec::RemapVec;
    /// let mut v = RemapVec::from([1, 2, 3]);
    /// let removed: Vec<_> = v.splice(1..2, [7, 8, 9]).collect();
    /// assert_eq!((removed, v), (vec![2], RemapVec::from([1, 7, 8, 9, 3])));
    /// ```
    #[track_caller]
    pub fn splice<R, I>(&mut self, range: R, replace_with: I) -> Splice<'_, I::IntoIter>
    where
        R: RangeBounds<usize>,
        I: IntoIterator<Item = T>,
    {
        Splice::new(self.drain(range), replace_with.into_iter())
    }

    /// Elements per piece of a bulk fill (see [`FILL_CHUNK`]).
    const FILL_PIECE: usize = if size_of::<T>() == 0 {
        usize::MAX
    } else {
        let n = FILL_CHUNK / size_of::<T>();
        if n == 0 { 1 } else { n }
    };

    /// Writes `n` elements after the length, the `i`-th being `f(i)`, into room the caller
    /// reserved. Fresh pages of a mapping are faulted in with one call per piece of
    /// [`FILL_CHUNK`] bytes, not one trap each, just before the piece is written: if `f`
    /// panics, at most one piece is populated beyond what was written.
    #[inline]
    fn fill_with(&mut self, n: usize, mut f: impl FnMut(usize) -> T) {
        debug_assert!(n <= self.capacity() - self.len);
        let base = self.as_mut_ptr();
        let mut guard = SetLenOnDrop {
            local_len: self.len,
            len: &mut self.len,
        };
        let mut i = 0;
        while i < n {
            let end = n.min(i.saturating_add(Self::FILL_PIECE));
            self.buf.prepare_fill(guard.local_len, end - i);
            for j in i..end {
                // SAFETY: the caller reserved room for `n`; the length follows each write.
                unsafe { base.add(guard.local_len).write(f(j)) };
                guard.local_len += 1;
            }
            i = end;
        }
    }

    /// Appends every item of an iterator (the engine of `Extend`).
    #[track_caller]
    fn extend_desugared<I: Iterator<Item = T>>(&mut self, mut iter: I) {
        // Reserve by the lower size hint once, then push; a lying hint only costs growth.
        let (lower, upper) = iter.size_hint();
        self.reserve(lower);
        // An exact hint says how much will be written, but the iterator may lie or panic:
        // fresh pages are populated one piece ahead of the writes, never the whole hint.
        let mut announced = if upper == Some(lower) { lower } else { 0 };
        loop {
            // Fill the spare capacity without a capacity check per item.
            let cap = self.capacity();
            let base = self.as_mut_ptr();
            let mut guard = SetLenOnDrop {
                local_len: self.len,
                len: &mut self.len,
            };
            while guard.local_len < cap {
                let mut stop = cap;
                if announced > 0 {
                    let k = announced.min(Self::FILL_PIECE).min(cap - guard.local_len);
                    self.buf.prepare_fill(guard.local_len, k);
                    announced -= k;
                    stop = guard.local_len + k;
                }
                while guard.local_len < stop {
                    match iter.next() {
                        // SAFETY: `local_len < stop <= cap`: an uninitialized slot inside the
                        // buffer.
                        Some(x) => unsafe {
                            base.add(guard.local_len).write(x);
                            guard.local_len += 1;
                        },
                        None => return,
                    }
                }
            }
            drop(guard);
            match iter.next() {
                Some(x) => {
                    let (lower, _) = iter.size_hint();
                    self.reserve(lower.saturating_add(1));
                    self.push(x);
                }
                None => return,
            }
        }
    }
}

impl<T: Clone> RemapVec<T> {
    /// Resizes to `new_len`, filling new slots with clones of `value`.
    ///
    /// ```
    /// # use remapvec::RemapVec;
    /// let mut v = RemapVec::from([1]);
    /// v.resize(3, 0);
    /// assert_eq!(v, [1, 0, 0]);
    /// v.resize(1, 0);
    /// assert_eq!(v, [1]);
    /// ```
    #[track_caller]
    pub fn resize(&mut self, new_len: usize, value: T) {
        if new_len <= self.len {
            self.truncate(new_len);
            return;
        }
        let n = new_len - self.len;
        self.reserve(n);
        self.fill_with(n - 1, |_| value.clone());
        // SAFETY: the last reserved slot gets `value` itself.
        unsafe { self.as_mut_ptr().add(self.len).write(value) };
        self.len += 1;
    }

    /// Appends clones of all elements of `other`.
    ///
    /// ```
    /// # use remapvec::RemapVec;
    /// let mut v = RemapVec::from([1]);
    /// v.extend_from_slice(&[2, 3]);
    /// assert_eq!(v, [1, 2, 3]);
    /// ```
    #[track_caller]
    pub fn extend_from_slice(&mut self, other: &[T]) {
        self.reserve(other.len());
        // SAFETY: `fill_with` asks for indices below `other.len()`.
        self.fill_with(other.len(), |i| unsafe { other.get_unchecked(i) }.clone());
    }

    /// Appends clones of the elements in `src`, a range of the vector itself.
    ///
    /// # Panics
    /// If the range is out of bounds.
    ///
    /// ```
    /// # use remapvec::RemapVec;
    /// let mut v = RemapVec::from([1, 2, 3]);
    /// v.extend_from_within(..2);
    /// assert_eq!(v, [1, 2, 3, 1, 2]);
    /// ```
    #[track_caller]
    pub fn extend_from_within<R: RangeBounds<usize>>(&mut self, src: R) {
        let Range { start, end } = slice_range(src, self.len);
        self.reserve(end - start);
        let base = self.as_ptr();
        // SAFETY: `start + i < end <= len`: an initialized source element; the slots written
        // are beyond the length, so the two never alias.
        self.fill_with(end - start, |i| unsafe { (*base.add(start + i)).clone() });
    }
}

impl<T: PartialEq> RemapVec<T> {
    /// Removes consecutive repeated elements.
    ///
    /// ```
    /// # use remapvec::RemapVec;
    /// let mut v = RemapVec::from([1, 1, 2, 1]);
    /// v.dedup();
    /// assert_eq!(v, [1, 2, 1]);
    /// ```
    pub fn dedup(&mut self) {
        self.dedup_by(|a, b| a == b)
    }
}

impl<T> Drop for RemapVec<T> {
    fn drop(&mut self) {
        // SAFETY: the first `len` elements are initialized; the buffer frees itself after.
        unsafe { ptr::drop_in_place(ptr::slice_from_raw_parts_mut(self.as_mut_ptr(), self.len)) }
    }
}
