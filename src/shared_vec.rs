//! `SharedVec<T>`: an append-only buffer that grows without copying and without pulling memory
//! out from under readers. The elements live in a memory file (`memfd`); growth extends the
//! file and either extends the current view in place or maps a second, larger view of the
//! same pages. Old views are unmapped by the writer once their last reader is gone (never by a
//! reader, so a reader never waits for a `munmap`). A forked child moves to a
//! file of its own before its first append.

use crate::error::{TryReserveError, TryReserveErrorKind};
use crate::region::place as placement;
use crate::stats::GrowStats;
use crate::sys::{self, Errno};
use core::alloc::Layout;
use core::marker::PhantomData;
use core::sync::atomic::{AtomicPtr, AtomicU8, AtomicUsize, Ordering::*};
use lock::Mutex;

mod lock;

/// How many views can be mapped at once: the current one and up to 15 old ones that readers
/// still hold.
///
/// ```
/// let v = remapvec::SharedVec::<u8>::new();
/// v.push(1);
/// let _g = v.read();
/// assert!(remapvec::MAX_VIEWS > 1); // an old view and the current one can coexist
/// ```
pub const MAX_VIEWS: usize = 16;

const FREE: u8 = 0;
const LIVE: u8 = 1;
const RETIRED: u8 = 2;
const RECLAIMING: u8 = 3;

/// No view published yet.
const NO_VIEW: usize = usize::MAX;

/// Bytes faulted in ahead of the writer at a time (see [`Prefault`]).
const PREFAULT_BATCH: usize = 2 << 20;

/// How a [`SharedVec`] brings in the pages its writer is about to fill.
///
/// Shared-memory pages cost more to fault in one by one than anonymous ones (each first
/// write traps, allocates a page of the memory file, clears it, and maps it). Ahead of the
/// writer, in batches of 2 MiB (never more than 2 MiB past the elements written, never past
/// the capacity), the buffer can instead do this in a few calls per batch. Readers never wait
/// for this: it runs under the writer's lock only. Where a call is not available the pages are
/// faulted in as they are written, as with [`Prefault::Fault`].
///
/// Measured per page of 4 KiB on the development machine (128 MiB, each 2 MiB batch written
/// right after it was brought in; `cargo run --release --example shared_read -- --page-costs
/// 5`): plain write faults 3.59 µs; `MADV_POPULATE_WRITE` 3.24 µs; `fallocate` then
/// `MADV_POPULATE_WRITE` 2.79 µs; zeros then `MADV_POPULATE_READ` ([`Prefault::WriteZeros`])
/// 2.54 µs; for comparison, an anonymous page written by a plain fault 2.37 µs.
///
/// ```
/// use remapvec::{Prefault, SharedVec};
/// let v = SharedVec::<u64>::with_prefault(Prefault::Fault);
/// v.extend_from_slice(&[1, 2, 3]);
/// assert_eq!(v.prefault(), Prefault::Fault);
/// assert_eq!(SharedVec::<u8>::new().prefault(), Prefault::WriteZeros);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Prefault {
    /// Each page is faulted in by the first write to it.
    Fault,
    /// `MADV_POPULATE_WRITE` on the next batch (Linux 5.14+).
    Populate,
    /// `fallocate` of the next batch of the memory file.
    Allocate,
    /// Both: `fallocate`, then `MADV_POPULATE_WRITE`.
    AllocatePopulate,
    /// Zeros written into the next batch of the memory file (`pwritev`: its pages are
    /// allocated and up to date without a fault), then `MADV_POPULATE_READ` of the view, which
    /// maps several up-to-date pages per fault, writable (the default). Without
    /// `MADV_POPULATE_READ` (before Linux 5.14) the buffer uses [`Prefault::Allocate`].
    #[default]
    WriteZeros,
}

/// One mapping of the buffer's pages.
struct View {
    /// Start of the mapping; null while the slot is free.
    ptr: AtomicPtr<u8>,
    /// Mapped bytes (only grows while the view is live).
    bytes: AtomicUsize,
    /// Elements `0..written` are written and readable through this view: those the writer
    /// copied or appended into it, or, for a view of the memory file, the elements already in
    /// the file when the view was published. `written <= bytes / size_of::<T>()`. Set before
    /// the view is published, then raised (`Release`) only after the elements it covers were
    /// written through this view; frozen once the view is no longer current. A guard exposes
    /// exactly this many elements of its view, so it never sees an element that was written
    /// only to another view.
    written: AtomicUsize,
    /// Guards holding this view, plus readers about to check whether it is still current.
    readers: AtomicUsize,
    /// FREE, LIVE, RETIRED or RECLAIMING.
    state: AtomicU8,
}

impl View {
    const fn new() -> Self {
        View {
            ptr: AtomicPtr::new(core::ptr::null_mut()),
            bytes: AtomicUsize::new(0),
            written: AtomicUsize::new(0),
            readers: AtomicUsize::new(0),
            state: AtomicU8::new(FREE),
        }
    }
}

/// State only the writer touches (under the lock).
struct Writer {
    /// The memory file, or -1 (not created yet, or no memfd on this platform: then growth
    /// copies into a new anonymous mapping).
    fd: i32,
    /// Capacity in elements of the current view.
    cap: usize,
    /// Next view generation; tags are `generation * MAX_VIEWS + slot`.
    generation: usize,
    /// [`fork::generation`] when `fd` was created: a different value now means this process
    /// is a forked child of the one that created the file, which the parent still writes.
    fork_gen: usize,
    /// Bytes from the start of the buffer that were faulted in ahead (or written): see
    /// [`Prefault`]. Page-aligned.
    prefaulted: usize,
    /// How pages are brought in; `Fault` once a populate call said it is not available.
    prefault: Prefault,
    /// Some retired view was still held by a reader when last looked at: the next append
    /// sweeps (readers never unmap).
    retired: bool,
    stats: GrowStats,
}

/// An append-only growable buffer that many threads read while one (at a time) appends.
///
/// Readers call [`read`](Self::read) and get a [`ReadGuard`]: a `&[T]` of the elements
/// published when it was taken, valid for the guard's whole life even if the buffer grows
/// meanwhile. Writers append through `&self` (`push`, `extend_from_slice`), serialized by a
/// lock that readers never take.
///
/// # How it grows
/// The elements live in a memory file (`memfd_create`) mapped shared. To grow, the file is
/// extended (`ftruncate`) and the current view is extended in place (`mremap` without
/// `MREMAP_MAYMOVE`: its addresses stay valid); if the addresses after it are taken, a
/// second, larger view of the same pages is mapped elsewhere and published. No element is
/// copied and no reader waits. Readers still on the old view keep it; the writer unmaps it at
/// its first append after the last of them drops its guard (a reader never unmaps, so it
/// never waits for the kernel to tear a view down).
///
/// At most [`MAX_VIEWS`] views are mapped at once. If a grow needs a new view while 15 old
/// views are all still held by readers, the writer waits until one is released (a thread
/// holding such guards must not append).
///
/// Without a memory file (platforms without `memfd`, or when `memfd_create` fails, e.g. with
/// `EMFILE`) growth maps a new anonymous view and copies the published elements into it
/// (counted in [`stats`](Self::stats)). Every view counts the elements written into it and a
/// guard exposes exactly those of its own view: a reader that took the old view just before
/// the switch sees the elements published up to the switch, never room of the old view that
/// only the new view filled.
///
/// # Fork
/// A memory file is shared by a process and the children it forks. A forked child reads the
/// elements published at the fork (nobody writes them again); before its first append it
/// copies them into a buffer of its own (one copy, counted in `stats`), so the parent's
/// appends never reach the child and the child's never reach the parent. Guards the child
/// holds across the fork keep their elements. The parent's append path pays one relaxed load
/// for this. The fork is noticed by a `pthread_atfork` child handler: a child made by a raw
/// `clone` system call that bypasses the C library is not noticed and must not append. As with
/// any `Mutex`, a child forked while another thread was appending must not append (that
/// thread's lock stays held in the child); reading is always fine.
///
/// # Memory ordering
/// The writer writes the elements into the current view, then publishes the view's new
/// element count (`written`) and the buffer's length with `Release` stores;
/// `read` loads the count of its view with `Acquire` after it has secured the view, so a
/// reader never sees an element before it was written, and never one written only to another
/// view. A new view is published with a `SeqCst` store after its pointer, size and count; a
/// reader announces itself on a view (`SeqCst` increment) and then checks that the view is
/// still current (`SeqCst` load), so that a view can only be unmapped after every reader that
/// could use it is gone.
///
/// # Variance, `Send` and `Sync`
/// `SharedVec<T>` is invariant in `T`, like `Cell<T>`: it takes `T`s through `&self`, so a
/// `&SharedVec<&'static str>` must not turn into a `&SharedVec<&'a str>`, which would accept a
/// short-lived `&str` and hand it back later as a `&'static str`:
///
/// ```compile_fail,E0597
/// use remapvec::SharedVec;
/// let v: SharedVec<&'static str> = SharedVec::new();
/// {
///     let s = String::from("short-lived");
///     let shorter: &SharedVec<&str> = &v; // error: `s` does not live long enough
///     shorter.push(&s);
/// }
/// let dangling: &'static str = v.read()[0];
/// println!("{dangling}");
/// ```
///
/// It is `Send` and `Sync` (elements are `Send + Sync`): any thread may append (sending a `T`
/// to the buffer) and read (sharing `&T`).
///
/// # Example
///
/// ```
/// use remapvec::SharedVec;
/// use std::sync::Arc;
/// let v = Arc::new(SharedVec::<u64>::new());
/// v.extend_from_slice(&[1, 2, 3]);
/// let reader = {
///     let v = Arc::clone(&v);
///     std::thread::spawn(move || {
///         let guard = v.read();
///         // Elements are only ever appended: a prefix of 1, 2, 3, 4, 5, ...
///         guard.iter().enumerate().all(|(i, &x)| x == i as u64 + 1)
///     })
/// };
/// for x in 4..100_000 {
///     v.push(x);
/// }
/// assert!(reader.join().unwrap());
/// assert_eq!(v.read().len(), 99_999);
/// ```
pub struct SharedVec<T: Copy + Send + Sync> {
    views: [View; MAX_VIEWS],
    /// Tag of the current view, or `NO_VIEW`.
    current: AtomicUsize,
    /// Published elements.
    len: AtomicUsize,
    writer: Mutex<Writer>,
    /// Invariant in `T` (it takes `T`s through `&self`, like `Cell<T>`); `fn(T) -> T` is
    /// `Send + Sync` itself, so `Send`/`Sync` follow from the other fields and the bound
    /// `T: Send + Sync`, as they must.
    _t: PhantomData<fn(T) -> T>,
}

impl<T: Copy + Send + Sync> Default for SharedVec<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Copy + Send + Sync> core::fmt::Debug for SharedVec<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SharedVec")
            .field("len", &self.len.load(Acquire))
            .field("views", &self.views_mapped())
            .finish()
    }
}

/// The elements published when [`SharedVec::read`] was called; keeps their view mapped.
pub struct ReadGuard<'a, T: Copy + Send + Sync> {
    vec: &'a SharedVec<T>,
    slot: Option<usize>,
    ptr: *const T,
    len: usize,
}

// SAFETY: the guard gives shared access to `T`s (which are `Sync`) and releases its view from
// whichever thread drops it (the release is an atomic protocol, thread-agnostic).
unsafe impl<T: Copy + Send + Sync> Send for ReadGuard<'_, T> {}
// SAFETY: `&ReadGuard` only reads `T`s, which are `Sync`.
unsafe impl<T: Copy + Send + Sync> Sync for ReadGuard<'_, T> {}

impl<T: Copy + Send + Sync> core::ops::Deref for ReadGuard<'_, T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        if self.len == 0 {
            return &[];
        }
        // SAFETY: `ptr` is the guard's view, mapped until the guard drops (its reader count
        // keeps it); the first `len` elements were written before the length that covers them
        // was published (Release/Acquire), and elements are never written again.
        unsafe { core::slice::from_raw_parts(self.ptr, self.len) }
    }
}

impl<T: Copy + Send + Sync> Drop for ReadGuard<'_, T> {
    fn drop(&mut self) {
        if let Some(slot) = self.slot {
            self.vec.release(slot);
        }
    }
}

impl<T: Copy + Send + Sync> SharedVec<T> {
    const ELEM: usize = {
        assert!(
            core::mem::align_of::<T>() <= 4096,
            "SharedVec elements must not be aligned above 4096 bytes"
        );
        core::mem::size_of::<T>()
    };

    /// An empty buffer. Maps nothing until the first append.
    ///
    /// ```
    /// let v = remapvec::SharedVec::<u32>::new();
    /// assert!(v.read().is_empty());
    /// ```
    pub const fn new() -> Self {
        Self::with_prefault(Prefault::WriteZeros)
    }

    /// An empty buffer that brings in the pages its writer fills as `prefault` says.
    ///
    /// ```
    /// use remapvec::{Prefault, SharedVec};
    /// let v = SharedVec::<u8>::with_prefault(Prefault::Populate);
    /// v.push(1);
    /// assert_eq!(v.read()[0], 1);
    /// ```
    pub const fn with_prefault(prefault: Prefault) -> Self {
        let _ = Self::ELEM;
        SharedVec {
            views: [const { View::new() }; MAX_VIEWS],
            current: AtomicUsize::new(NO_VIEW),
            len: AtomicUsize::new(0),
            writer: Mutex::new(Writer {
                fd: -1,
                cap: 0,
                generation: 0,
                fork_gen: 0,
                prefaulted: 0,
                prefault,
                retired: false,
                stats: GrowStats::ZERO,
            }),
            _t: PhantomData,
        }
    }

    /// How this buffer brings in pages now ([`Prefault::Fault`] once the kernel said that
    /// the populate call it asked for is not available).
    pub fn prefault(&self) -> Prefault {
        self.writer.lock().prefault
    }

    /// Published elements right now.
    ///
    /// ```
    /// let v = remapvec::SharedVec::new();
    /// v.push(1u8);
    /// assert_eq!(v.len(), 1);
    /// ```
    pub fn len(&self) -> usize {
        self.len.load(Acquire)
    }

    /// Elements the current view holds before the next grow.
    ///
    /// ```
    /// let v = remapvec::SharedVec::new();
    /// v.push(1u64);
    /// assert!(v.capacity() >= 1);
    /// ```
    pub fn capacity(&self) -> usize {
        if Self::ELEM == 0 {
            return usize::MAX;
        }
        self.writer.lock().cap
    }

    /// Whether nothing was published yet.
    ///
    /// ```
    /// assert!(remapvec::SharedVec::<u8>::new().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How growth happened so far: `in_place` (the view was extended), `moved` (a second view
    /// of the same pages was mapped: no copy), `copied` (platforms without `memfd`).
    ///
    /// ```
    /// let v = remapvec::SharedVec::new();
    /// v.extend_from_slice(&[0u64; 100_000]);
    /// assert_eq!(v.stats().bytes_copied, 0);
    /// ```
    pub fn stats(&self) -> GrowStats {
        self.writer.lock().stats
    }

    /// Views mapped right now: the current one, and old ones still held by readers or released
    /// since the writer's last append (the writer unmaps old views; readers never do).
    ///
    /// ```
    /// let v = remapvec::SharedVec::new();
    /// v.push(1u32);
    /// assert_eq!(v.views_mapped(), 1);
    /// ```
    pub fn views_mapped(&self) -> usize {
        self.views
            .iter()
            .filter(|v| v.state.load(Acquire) != FREE)
            .count()
    }

    /// The elements published now, readable for as long as the guard lives. Never blocks.
    ///
    /// ```
    /// let v = remapvec::SharedVec::new();
    /// v.extend_from_slice(b"abc");
    /// let g = v.read();
    /// v.extend_from_slice(b"def"); // the guard still sees "abc"
    /// assert_eq!(&g[..], b"abc");
    /// assert_eq!(&v.read()[..], b"abcdef");
    /// ```
    pub fn read(&self) -> ReadGuard<'_, T> {
        let empty = ReadGuard {
            vec: self,
            slot: None,
            ptr: core::ptr::NonNull::dangling().as_ptr(),
            len: 0,
        };
        if Self::ELEM == 0 {
            return ReadGuard {
                len: self.len.load(Acquire),
                ..empty
            };
        }
        loop {
            let tag = self.current.load(SeqCst);
            if tag == NO_VIEW {
                return empty;
            }
            let slot = tag % MAX_VIEWS;
            let v = &self.views[slot];
            v.readers.fetch_add(1, SeqCst);
            if self.current.load(SeqCst) == tag {
                // The view is current and we are counted on it: the writer retires a view
                // (switches `current`) before it checks its readers, so it cannot unmap it
                // now. The length is the view's own count of written elements, never the
                // buffer's length: if the writer has switched to a new view meanwhile (and
                // appended there), this count stopped at the switch.
                let ptr = v.ptr.load(Acquire).cast::<T>();
                let len = v.written.load(Acquire);
                debug_assert!(len <= v.bytes.load(Acquire) / Self::ELEM);
                return ReadGuard {
                    vec: self,
                    slot: Some(slot),
                    ptr,
                    len,
                };
            }
            // The view changed meanwhile: step off and try the new one.
            self.release(slot);
        }
    }

    /// Drops one reader of `slot`. Never unmaps: a retired view is unmapped by the writer
    /// (see [`sweep`](Self::sweep)), so a reader never waits for a `munmap` (a GiB of view
    /// takes the kernel a good fraction of a second to tear down).
    fn release(&self, slot: usize) {
        self.views[slot].readers.fetch_sub(1, SeqCst);
    }

    /// Unmaps every retired view that no reader holds any more; remembers whether some are
    /// still held. Called by the writer, under its lock.
    #[cold]
    #[inline(never)]
    fn sweep(&self, w: &mut Writer) {
        let mut held = false;
        for (i, v) in self.views.iter().enumerate() {
            if v.state.load(SeqCst) == RETIRED {
                if v.readers.load(SeqCst) == 0 {
                    self.reclaim(i);
                }
                held |= v.state.load(SeqCst) == RETIRED;
            }
        }
        w.retired = held;
    }

    /// Unmaps the retired view `slot` if nobody reads it (the writer only: `sweep`, `publish`,
    /// `free_slot`).
    fn reclaim(&self, slot: usize) {
        let v = &self.views[slot];
        if v.state
            .compare_exchange(RETIRED, RECLAIMING, SeqCst, SeqCst)
            .is_err()
        {
            return;
        }
        if v.readers.load(SeqCst) != 0 {
            // A reader (maybe one that is about to notice the view is old) is on it: the
            // writer's next `sweep` tries again.
            v.state.store(RETIRED, SeqCst);
            return;
        }
        let ptr = v.ptr.swap(core::ptr::null_mut(), SeqCst);
        let bytes = v.bytes.swap(0, SeqCst);
        v.written.store(0, SeqCst);
        if !ptr.is_null() {
            // SAFETY: ownership: the view is a mapping this buffer made (in a forked child:
            // the child's own copy of it) and has not unmapped or moved since: views are only
            // unmapped here, by the thread that wins RETIRED -> RECLAIMING (once), or in
            // `Drop`, and grown only in place. The view is retired (not current, so no new
            // reader can settle on it) and has no readers.
            let _ = unsafe { sys::unmap(ptr, bytes) };
        }
        v.state.store(FREE, SeqCst);
    }

    /// Appends one element.
    ///
    /// # Panics
    /// On capacity overflow; calls `handle_alloc_error` when memory cannot be mapped, like
    /// `Vec::push`.
    ///
    /// ```
    /// let v = remapvec::SharedVec::new();
    /// v.push('x');
    /// assert_eq!(v.read()[0], 'x');
    /// ```
    #[inline]
    pub fn push(&self, x: T) {
        let w = self.writer.lock();
        let len = self.len.load(Relaxed);
        // The common case, small enough to inline into the caller's loop: room in the current
        // view, its page brought in, nothing to sweep, not a forked child's first append.
        if Self::ELEM != 0
            && !w.retired
            && len < w.cap
            && (len + 1) * Self::ELEM <= w.prefaulted
            && (w.fd < 0 || w.fork_gen == fork::generation())
        {
            let v = &self.views[self.current.load(Relaxed) % MAX_VIEWS];
            debug_assert_eq!(v.written.load(Relaxed), len);
            // SAFETY: as in `append_locked`: `len < cap`, so the slot is in the current view;
            // it is beyond the view's `written` count and the buffer's length, so no reader
            // looks at it; we hold the writer lock; the file is not shared with another
            // process (checked above).
            unsafe { v.ptr.load(Relaxed).cast::<T>().add(len).write(x) };
            v.written.store(len + 1, Release);
            self.len.store(len + 1, Release);
            return;
        }
        self.push_slow(w, x);
    }

    /// `push` when the buffer must grow, sweep, prefault or leave a parent's file.
    #[cold]
    #[inline(never)]
    fn push_slow(&self, w: lock::MutexGuard<'_, Writer>, x: T) {
        if let Err(e) = self.append_locked(w, core::slice::from_ref(&x)) {
            crate::raw::handle_error(e);
        }
    }

    /// Appends all of `xs`, published at once.
    ///
    /// # Panics
    /// As [`push`](Self::push).
    ///
    /// ```
    /// let v = remapvec::SharedVec::new();
    /// v.extend_from_slice(&[1, 2, 3]);
    /// assert_eq!(&v.read()[..], &[1, 2, 3]);
    /// ```
    pub fn extend_from_slice(&self, xs: &[T]) {
        if let Err(e) = self.try_extend_from_slice(xs) {
            crate::raw::handle_error(e);
        }
    }

    /// Appends all of `xs`, or returns an error and changes nothing.
    ///
    /// # Errors
    ///
    /// [`TryReserveError`] when the new length overflows (`CapacityOverflow`) or the kernel
    /// refuses the memory (`AllocError`, with its errno). Nothing is appended then.
    ///
    /// ```
    /// let v = remapvec::SharedVec::<u8>::new();
    /// assert!(v.try_extend_from_slice(&[1, 2]).is_ok());
    /// ```
    pub fn try_extend_from_slice(&self, xs: &[T]) -> Result<(), TryReserveError> {
        self.append_locked(self.writer.lock(), xs)
    }

    /// Appends `xs` under the writer lock `w`.
    fn append_locked(
        &self,
        mut w: lock::MutexGuard<'_, Writer>,
        xs: &[T],
    ) -> Result<(), TryReserveError> {
        if w.retired {
            self.sweep(&mut w);
        }
        let len = self.len.load(Relaxed);
        let need = len
            .checked_add(xs.len())
            .ok_or(TryReserveError::from(TryReserveErrorKind::CapacityOverflow))?;
        if Self::ELEM == 0 {
            self.len.store(need, Release);
            return Ok(());
        }
        if xs.is_empty() {
            return Ok(());
        }
        // In a forked child, a file shared with the parent is left before the first write.
        if need > w.cap || (w.fd >= 0 && w.fork_gen != fork::generation()) {
            self.grow(&mut w, need)?;
        }
        let v = &self.views[self.current.load(Relaxed) % MAX_VIEWS];
        let base = v.ptr.load(Relaxed).cast::<T>();
        debug_assert_eq!(v.written.load(Relaxed), len);
        if need * Self::ELEM > w.prefaulted {
            self.prefault_ahead(&mut w, v, need * Self::ELEM);
        }
        // SAFETY: the current view holds `cap >= need` elements; `[len, need)` is beyond its
        // `written` count and the buffer's length, so no reader looks at it; we hold the
        // writer lock; the file (if any) is not shared with another process (checked above).
        unsafe { core::ptr::copy_nonoverlapping(xs.as_ptr(), base.add(len), xs.len()) };
        v.written.store(need, Release);
        self.len.store(need, Release);
        Ok(())
    }

    /// Brings in the pages of the current view `v` from `w.prefaulted` up to the batch past
    /// `end` bytes (capped at the view), as `w.prefault` says, and moves the mark there even
    /// if the kernel declined: those pages are then faulted in by the writes.
    #[cold]
    #[inline(never)]
    fn prefault_ahead(&self, w: &mut Writer, v: &View, end: usize) {
        let page = sys::page_size();
        let bytes = v.bytes.load(Relaxed);
        let start = w.prefaulted.min(bytes);
        let stop = end
            .saturating_add(PREFAULT_BATCH)
            .min(bytes)
            .next_multiple_of(page)
            .min(bytes);
        w.prefaulted = stop.max(w.prefaulted);
        if stop <= start || w.prefault == Prefault::Fault {
            return;
        }
        let p = v.ptr.load(Relaxed).wrapping_add(start);
        if w.prefault == Prefault::WriteZeros && w.fd >= 0 {
            // Zeros may only go where nothing was written: past the published elements'
            // last page (`start` may be below it after a grow that copied).
            let data_end = (self.len.load(Relaxed) * Self::ELEM).next_multiple_of(page);
            let from = start.max(data_end);
            if from < stop {
                w.stats.syscalls += 1;
                if sys::write_zeros(w.fd, from, stop - from).is_err() {
                    // No memory now: the writes (or the populate) fault pages in.
                }
            }
            w.stats.syscalls += 1;
            // SAFETY: `[start, stop)` lies in the current view (`stop <= bytes`), a read-write
            // mapping this buffer made and holds (views are unmapped only once retired);
            // populating changes none of its bytes.
            if let Err(e) = unsafe { sys::populate_read(p, stop - start) }
                && (e.0 == libc::EINVAL || e.0 == libc::ENOTSUP)
            {
                // A kernel before 5.14: writing zeros alone saves nothing, allocating does.
                w.prefault = Prefault::Allocate;
            }
            return;
        }
        if matches!(w.prefault, Prefault::Allocate | Prefault::AllocatePopulate) && w.fd >= 0 {
            w.stats.syscalls += 1;
            if sys::allocate_file(w.fd, start, stop - start).is_err() {
                // Not for this file system, or no memory now: the writes fault pages in.
            }
        }
        // Without a memory file (anonymous memory), `WriteZeros` populates as `Populate` does.
        if matches!(
            w.prefault,
            Prefault::Populate | Prefault::AllocatePopulate | Prefault::WriteZeros
        ) {
            w.stats.syscalls += 1;
            // SAFETY: `[start, stop)` lies in the current view (`stop <= bytes`), a read-write
            // mapping this buffer made and holds (views are unmapped only once retired); its
            // bytes past the published elements are the writer's alone, and populating
            // changes none of them.
            if let Err(e) = unsafe { sys::populate_write(p, stop - start) }
                && (e.0 == libc::EINVAL || e.0 == libc::ENOTSUP)
            {
                // A kernel before 5.14, or the portable backend: fault pages in from now on.
                w.prefault = if w.prefault == Prefault::AllocatePopulate {
                    Prefault::Allocate
                } else {
                    Prefault::Fault
                };
            }
        }
    }

    /// Makes room for at least `need` elements. In a forked child whose buffer is still the
    /// parent's memory file, also moves the elements to a buffer of its own. On error nothing
    /// changed.
    #[cold]
    #[inline(never)]
    fn grow(&self, w: &mut Writer, need: usize) -> Result<(), TryReserveError> {
        let leave_file = w.fd >= 0 && w.fork_gen != fork::generation();
        let new_cap = if leave_file {
            need.max(w.cap)
        } else {
            need.max(w.cap.saturating_mul(2))
        }
        .max(16384 / Self::ELEM.max(1));
        let overflow = || TryReserveError::from(TryReserveErrorKind::CapacityOverflow);
        let bytes = new_cap
            .checked_mul(Self::ELEM)
            .and_then(sys::round_to_page)
            .filter(|&b| b <= isize::MAX as usize)
            .ok_or_else(overflow)?;
        let layout = Layout::from_size_align(bytes, sys::page_size()).map_err(|_| overflow())?;
        let fail = |e: Errno| {
            TryReserveError::from(TryReserveErrorKind::AllocError {
                layout,
                os_error: Some(e.0),
            })
        };
        let cur = self.current.load(Relaxed);
        let old = (cur != NO_VIEW).then_some(cur % MAX_VIEWS);
        let len = self.len.load(Relaxed);
        if w.fd >= 0 && !leave_file {
            // Our own file: extend it, then extend the view in place or map a second view of
            // the same pages. Nothing is copied.
            w.stats.syscalls += 1;
            sys::set_file_len(w.fd, bytes).map_err(fail)?;
            if let Some(slot) = old {
                let v = &self.views[slot];
                let (p, b) = (v.ptr.load(Relaxed), v.bytes.load(Relaxed));
                w.stats.syscalls += 1;
                // SAFETY: the view is ours (mapped by this buffer, never unmapped while
                // current); growing in place keeps every old address valid (readers' slices
                // stay mapped) and replaces nothing (the kernel fails if the addresses after
                // it are taken).
                if unsafe { sys::remap_in_place(p, b, bytes) }.is_ok() {
                    v.bytes.store(bytes, Release);
                    w.cap = bytes / Self::ELEM;
                    w.stats.in_place += 1;
                    return Ok(());
                }
            }
            let slot = self.free_slot();
            let fd = w.fd;
            let p = place(
                bytes,
                |hint, len| sys::map_shared(hint, len, fd),
                &mut w.stats,
            )
            .map_err(fail)?;
            if old.is_some() {
                w.stats.moved += 1;
                w.stats.bytes_remapped += (len * Self::ELEM) as u64;
            }
            // Every published element is in the file, so readable through the new view.
            self.publish(w, slot, p, bytes, len, old);
            return Ok(());
        }
        // A new buffer and a copy of the published elements: a memory file of our own when we
        // can have one (the first grow, or a forked child leaving its parent's file), else
        // anonymous memory (which a fork copies on write, never shares).
        let slot = self.free_slot();
        let mut new_fd = -1;
        if (w.cap == 0 || leave_file) && sys::HAS_MREMAP && fork::watch() {
            w.stats.syscalls += 1;
            if let Ok(fd) = sys::memfd() {
                w.stats.syscalls += 1;
                if let Err(e) = sys::set_file_len(fd, bytes) {
                    sys::close(fd);
                    return Err(fail(e));
                }
                new_fd = fd;
            }
        }
        let mapped = if new_fd >= 0 {
            place(
                bytes,
                |hint, len| sys::map_shared(hint, len, new_fd),
                &mut w.stats,
            )
        } else {
            place(bytes, sys::map_anon, &mut w.stats)
        };
        let p = match mapped {
            Ok(p) => p,
            Err(e) => {
                if new_fd >= 0 {
                    sys::close(new_fd);
                }
                return Err(fail(e));
            }
        };
        if let Some(o) = old {
            let src = self.views[o].ptr.load(Relaxed);
            debug_assert_eq!(self.views[o].written.load(Relaxed), len);
            // SAFETY: the current view holds `len` written elements, which nobody writes
            // again (in a forked child: the parent appends only beyond them); the new mapping
            // is fresh, ours, and at least `len` elements long.
            unsafe { core::ptr::copy_nonoverlapping(src, p, len * Self::ELEM) };
            w.stats.copied += 1;
            w.stats.bytes_copied += (len * Self::ELEM) as u64;
        }
        // A new buffer: only the copied elements' pages are in.
        w.prefaulted = (len * Self::ELEM) & !(sys::page_size() - 1);
        if new_fd >= 0 || leave_file {
            if w.fd >= 0 {
                // In a forked child: our copy of the parent's descriptor.
                sys::close(w.fd);
            }
            w.fd = new_fd;
            w.fork_gen = fork::generation();
        }
        self.publish(w, slot, p, bytes, len, old);
        Ok(())
    }

    /// Publishes the mapping `ptr` of `bytes` bytes, holding `written` written elements, as the
    /// current view in `slot`, and retires the view `old`.
    fn publish(
        &self,
        w: &mut Writer,
        slot: usize,
        ptr: *mut u8,
        bytes: usize,
        written: usize,
        old: Option<usize>,
    ) {
        debug_assert!(written <= bytes / Self::ELEM);
        let v = &self.views[slot];
        v.ptr.store(ptr, Release);
        v.bytes.store(bytes, Release);
        v.written.store(written, Release);
        v.state.store(LIVE, SeqCst);
        w.generation += 1;
        self.current.store(w.generation * MAX_VIEWS + slot, SeqCst);
        w.cap = bytes / Self::ELEM;
        if let Some(o) = old {
            self.views[o].state.store(RETIRED, SeqCst);
            if self.views[o].readers.load(SeqCst) == 0 {
                self.reclaim(o);
            }
            w.retired |= self.views[o].state.load(SeqCst) == RETIRED;
        }
    }

    /// A free view slot; waits (reclaiming) while all are held by readers.
    fn free_slot(&self) -> usize {
        loop {
            for (i, v) in self.views.iter().enumerate() {
                match v.state.load(SeqCst) {
                    FREE => return i,
                    RETIRED if v.readers.load(SeqCst) == 0 => {
                        self.reclaim(i);
                        if v.state.load(SeqCst) == FREE {
                            return i;
                        }
                    }
                    _ => {}
                }
            }
            std::thread::yield_now();
        }
    }
}

/// Fork detection for buffers in memory files (see `sys::fork_generation`).
mod fork {
    pub(super) use crate::sys::{fork_generation as generation, watch_forks as watch};
}

/// Maps `bytes` with `map(hint, len)` at a zone slot with room to grow in place, or where the
/// kernel likes: the crate's one placement policy (`region::place`), whatever the size, since
/// growing a view in place is what keeps readers from ever waiting.
fn place(
    bytes: usize,
    map: impl Fn(usize, usize) -> Result<*mut u8, Errno>,
    stats: &mut GrowStats,
) -> Result<*mut u8, Errno> {
    let mut calls = 0;
    let r = placement::place(bytes, sys::page_size(), true, &mut calls, &map);
    stats.syscalls += u64::from(calls);
    r
}

impl<T: Copy + Send + Sync> Drop for SharedVec<T> {
    fn drop(&mut self) {
        for v in &self.views {
            let p = v.ptr.load(Relaxed);
            if !p.is_null() {
                // SAFETY: ownership: every non-null view is a mapping this buffer made (in a
                // forked child: the child's copy) and has not unmapped since (reclaim nulls
                // the pointer when it unmaps). `&mut self`: no guard is alive.
                let _ = unsafe { sys::unmap(p, v.bytes.load(Relaxed)) };
            }
        }
        let fd = self.writer.get_mut().fd;
        if fd >= 0 {
            sys::close(fd);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_views_survive_growth_and_are_unmapped_after_their_guards() {
        let v = SharedVec::<u64>::new();
        v.extend_from_slice(&[7; 1000]);
        let g = v.read();
        let before = g.as_ptr();
        // Force new views: occupy the addresses after the current view.
        let mut guards = vec![g];
        for round in 0..5u64 {
            let cur = v.current.load(SeqCst) % MAX_VIEWS;
            let end = v.views[cur].ptr.load(SeqCst) as usize + v.views[cur].bytes.load(SeqCst);
            let blocker = sys::reserve(end, sys::page_size());
            let n = v.len();
            v.extend_from_slice(&vec![round; n + 1]);
            if let Ok(b) = blocker {
                // SAFETY: our blocker reservation.
                unsafe { sys::unmap(b, sys::page_size()).unwrap() };
            }
            guards.push(v.read());
        }
        assert_eq!(guards[0].as_ptr(), before);
        assert!(guards[0].iter().all(|&x| x == 7));
        for (k, g) in guards.iter().enumerate().skip(1) {
            assert!(g.len() > guards[k - 1].len());
            assert_eq!(&g[..1000], &[7; 1000][..]);
        }
        if sys::HAS_MREMAP {
            assert!(v.views_mapped() > 1);
            assert_eq!(v.stats().bytes_copied, 0);
        }
        drop(guards);
        // Readers never unmap: the writer does, at its next append.
        if sys::HAS_MREMAP {
            assert!(v.views_mapped() > 1);
        }
        v.extend_from_slice(&[]);
        assert_eq!(v.views_mapped(), 1);
    }

    #[test]
    fn zero_sized_elements_and_failures() {
        let v = SharedVec::<()>::new();
        v.extend_from_slice(&[(); 10]);
        assert_eq!(v.read().len(), 10);
        let w = SharedVec::<u8>::new();
        assert!(w.try_extend_from_slice(&[1]).is_ok());
        // An injected failure of the file growth (memfd; on the portable backend, of the new
        // mapping) leaves everything as it was.
        sys::fault::arm(sys::fault::Plan {
            skip: 0,
            errno: libc::ENOSPC,
            partial: None,
            repeat: 0,
        });
        let r = w.try_extend_from_slice(&[2; 100_000]);
        sys::fault::disarm();
        let e = r.unwrap_err();
        assert_eq!(
            e.os_error().and_then(|e| e.raw_os_error()),
            Some(libc::ENOSPC)
        );
        assert_eq!(&w.read()[..], &[1]);
        w.extend_from_slice(&[2; 100_000]);
        assert_eq!(w.len(), 100_001);
    }
}
