//! `SharedArena`: a `PageArena` for many threads. A `parking_lot` read-write lock guards the
//! arena's structure; one read-write lock per region slot guards region bytes; a thread-local
//! stack of the borrows each thread holds makes nested access work or panic, never deadlock.

use super::{ArenaError, CompactReport, PageArena, RegionId};
use core::cell::Cell;
use core::{fmt, ptr};
use parking_lot::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

/// How long a reader that holds no borrow waits in line behind a writer that is itself waiting
/// for other readers, before it goes ahead of it (see "Fairness" in [`SharedArena`]'s docs).
const FAIR_WAIT: Duration = Duration::from_millis(10);

/// A [`PageArena`] usable from many threads at once.
///
/// `alloc`, `free`, `grow`, `shrink` and `compact` take the arena exclusively (they may move
/// regions); [`read`](Self::read) and [`write`](Self::write) take it shared plus the region's
/// own lock (shared for `read`, exclusive for `write`), so threads work on different regions
/// in parallel and [`compact`](Self::compact) waits until no closure runs.
///
/// ```
/// use remapvec::SharedArena;
/// use std::sync::Arc;
/// let arena = Arc::new(SharedArena::new());
/// let handles: Vec<_> = (0..4u8)
///     .map(|t| {
///         let arena = Arc::clone(&arena);
///         std::thread::spawn(move || {
///             let id = arena.alloc(4096).unwrap();
///             arena.write(id, |b| b.fill(t)).unwrap();
///             arena.grow(id, 1 << 20).unwrap();
///             arena.read(id, |b| (b[0], b[4096])).unwrap()
///         })
///     })
///     .collect();
/// for (t, h) in handles.into_iter().enumerate() {
///     assert_eq!(h.join().unwrap(), (t as u8, 0));
/// }
/// ```
///
/// # Nested access
///
/// A closure passed to `read` or `write` may call the same arena again. What happens follows
/// the borrow rules (like [`RefCell`](core::cell::RefCell)): any number of shared borrows of a
/// region, or one mutable borrow, per thread; and nothing that may move a mapping while a
/// borrow is held. Inside a closure of region `a` of an arena, on the same thread:
///
/// | call                                         | in `read(a, ..)`         | in `write(a, ..)`                |
/// |----------------------------------------------|--------------------------|----------------------------------|
/// | `read(a, ..)`                                | runs                     | panics: already mutably borrowed |
/// | `write(a, ..)`                               | panics: already borrowed | panics: already mutably borrowed |
/// | `read(b, ..)`, `b != a`                      | runs                     | runs                             |
/// | `write(b, ..)`, `b != a`                     | runs (1)                 | runs (1)                         |
/// | `read(b, ..)` inside a `write(b, ..)` further out | panics: already mutably borrowed | same             |
/// | `write(b, ..)` inside a `read`/`write` of `b` further out | panics: already (mutably) borrowed | same     |
/// | `len()`, `is_empty()`                        | runs                     | runs                             |
/// | `alloc`, `free`, `grow`, `shrink`, `compact` (any id) | panics: arena borrowed | panics: arena borrowed  |
/// | any call with a freed or foreign id          | `Err(InvalidId)`         | `Err(InvalidId)`                 |
/// | any call on another `SharedArena`            | as outside a closure (2) | as outside a closure (2)         |
///
/// (1) once other threads' borrows of `b` end. (2) but see the lock order below.
///
/// The same holds at any depth: a call is checked against every borrow the thread holds, not
/// only the innermost. A panic unwinds out of the closures and releases their borrows; the
/// arena stays usable (its locks do not poison).
///
/// Other threads waiting never make a nested call deadlock: a nested `read`, `len` or
/// `is_empty` never waits for a writer that is only waiting (for the arena or for the region:
/// it may be waiting for this very thread); it waits only for a writer that holds the lock,
/// that is a structural operation (it runs no user code and finishes) or another thread's
/// `write` closure of that region. A nested `write(b, ..)` waits until other threads' borrows
/// of `b` end. A waiting `alloc`/`free`/`grow`/`shrink`/`compact` gets its turn when the
/// outermost closures end.
///
/// What the arena cannot rule out is a cycle of waits through the caller's own code, as with
/// two [`RwLock`](std::sync::RwLock)s: two threads, each inside a closure of a region the
/// other then asks for, where each request conflicts with the other's borrow (one of the two
/// is a `write`): `read(a, |_| write(b))` against `read(b, |_| write(a))`, or
/// `read(a, |_| read(b))` against `write(b, |_| write(a))`; or a closure that waits (joins,
/// receives) for another thread that writes a region the closure borrows or calls `alloc`,
/// `free`, `grow`, `shrink` or `compact` on this arena; or arena `x`'s closure calling
/// `y.alloc(..)` while another thread in `y`'s closure writes what `x`'s closure borrows or
/// calls `x.alloc(..)`. Take regions and arenas in one order, or do structural work outside
/// closures.
///
/// ```
/// let arena = remapvec::SharedArena::new();
/// let (a, b) = (arena.alloc(8)?, arena.alloc(8)?);
/// arena.write(a, |x| x.fill(7))?;
/// // Copy a into b: a write of another region inside a read.
/// arena.read(a, |src| arena.write(b, |dst| dst.copy_from_slice(src)))??;
/// assert_eq!(arena.read(b, |x| x[0])?, 7);
/// # Ok::<(), remapvec::ArenaError>(())
/// ```
///
/// ```should_panic
/// let arena = remapvec::SharedArena::new();
/// let a = arena.alloc(8)?;
/// // Panics "already borrowed": a mutable borrow of a region this thread is reading.
/// arena.read(a, |_| arena.write(a, |x| x.fill(1)))??;
/// # Ok::<(), remapvec::ArenaError>(())
/// ```
///
/// ```should_panic
/// let arena = remapvec::SharedArena::new();
/// let a = arena.alloc(8)?;
/// // Panics: `alloc` may move mappings, and `a` is borrowed.
/// arena.read(a, |_| arena.alloc(8))??;
/// # Ok::<(), remapvec::ArenaError>(())
/// ```
///
/// # Fairness
///
/// A thread that holds no borrow of any `SharedArena` queues fairly behind waiting writers,
/// for the arena and for a region; after waiting 10 ms behind a writer that is itself waiting
/// for readers, it joins the readers already inside. So a closure may wait for helper threads
/// (scoped threads, a thread pool) that read the arena while a writer waits; in exchange a
/// writer may wait for as long as readers that arrived after it keep overlapping.
pub struct SharedArena {
    inner: RwLock<Inner>,
}

struct Inner {
    arena: PageArena,
    /// `regions[i]` guards the bytes of the region in slot `i` of `arena` (shared for `read`,
    /// exclusive for `write`). Invariant: longer than the slot index of every live region
    /// (extended by `from_arena` and `alloc`, the only ways a region comes in); only ever
    /// grows, under the exclusive lock, so no guard of an element is alive then.
    regions: Vec<RwLock<()>>,
}

impl Inner {
    fn cover(&mut self, id: RegionId) {
        let need = id.index as usize + 1;
        if self.regions.len() < need {
            self.regions.resize_with(need, RwLock::default);
        }
    }

    #[inline]
    fn region_lock(&self, id: RegionId) -> &RwLock<()> {
        match self.regions.get(id.index as usize) {
            Some(lock) => lock,
            None => lock_table_broken(id),
        }
    }
}

#[cold]
#[inline(never)]
fn lock_table_broken(id: RegionId) -> ! {
    unreachable!("SharedArena: no lock for live region {id:?} (Inner::regions invariant)")
}

/// Whether a borrow is shared or mutable.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    Read,
    Write,
}

/// One borrow this thread holds: a node of an intrusive stack threaded through the frames of
/// the `read`/`write` calls that are running on this thread, innermost first.
struct Held {
    arena: *const SharedArena,
    index: u32,
    mode: Mode,
    /// The next borrow further out, or null.
    prev: *const Held,
}

thread_local! {
    /// The innermost borrow this thread holds, or null. Invariant: every node reachable from
    /// here is alive (see `Registration`).
    static HELD: Cell<*const Held> = const { Cell::new(ptr::null()) };
}

/// The innermost borrow of this thread (null if it holds none).
#[inline]
fn innermost() -> *const Held {
    HELD.with(Cell::get)
}

/// Links a `Held` into this thread's stack for as long as it lives. It borrows the node, so
/// the node cannot move or end first; registrations end in the reverse order they began
/// because each is a local of a `read`/`write` call and those calls nest.
struct Registration<'a> {
    node: &'a Held,
}

impl<'a> Registration<'a> {
    #[inline]
    fn push(node: &'a Held) -> Self {
        HELD.with(|top| {
            debug_assert!(ptr::eq(top.get(), node.prev));
            top.set(node);
        });
        Registration { node }
    }
}

impl Drop for Registration<'_> {
    #[inline]
    fn drop(&mut self) {
        HELD.with(|top| {
            debug_assert!(ptr::eq(top.get(), self.node));
            top.set(self.node.prev);
        });
    }
}

/// The strongest borrow, from `top` outwards, of slot `index` of `arena` (`None` for any
/// slot); `None` if there is none.
fn held(top: *const Held, arena: &SharedArena, index: Option<u32>) -> Option<Mode> {
    let mut found = None;
    let mut p = top;
    while !p.is_null() {
        // SAFETY: `p` is `top` (this thread's `HELD`) or a `prev` link of a node reached from
        // it; each is a `Held` on a frame of this thread that is still running: a
        // `Registration` borrowing it linked it and unlinks it before the node's frame ends,
        // registrations end innermost first, and only this thread reads its own `HELD`.
        let h = unsafe { &*p };
        if ptr::eq(h.arena, arena) && index.is_none_or(|i| i == h.index) {
            if h.mode == Mode::Write {
                return Some(Mode::Write);
            }
            found = Some(Mode::Read);
        }
        p = h.prev;
    }
    found
}

#[cold]
#[inline(never)]
#[track_caller]
fn already_borrowed(id: RegionId, held: Mode) -> ! {
    match held {
        Mode::Write => panic!(
            "SharedArena: region {id:?} already mutably borrowed: this thread is inside a \
             `write` closure of it"
        ),
        Mode::Read => panic!(
            "SharedArena: region {id:?} already borrowed: this thread is inside a `read` \
             closure of it, so it cannot be written"
        ),
    }
}

#[cold]
#[inline(never)]
#[track_caller]
fn arena_borrowed(op: &str) -> ! {
    panic!(
        "SharedArena::{op} called inside a `read`/`write` closure of the same arena: it may \
         move regions, so it needs the arena with no region borrowed; call it after the \
         closure returns"
    )
}

/// A shared guard of `lock`, queued fairly behind waiting writers for at most `FAIR_WAIT`.
#[inline]
fn read_fair<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    match lock.try_read() {
        Some(g) => g,
        None => read_fair_slow(lock),
    }
}

#[cold]
#[inline(never)]
fn read_fair_slow<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.try_read_for(FAIR_WAIT)
        .unwrap_or_else(|| lock.read_recursive())
}

impl Default for SharedArena {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for SharedArena {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("SharedArena");
        match self.inner.try_read_recursive() {
            Some(inner) => d.field("arena", &inner.arena),
            None => d.field("arena", &format_args!("<locked>")),
        };
        d.finish()
    }
}

impl SharedArena {
    /// An empty shared arena.
    ///
    /// ```
    /// assert!(remapvec::SharedArena::new().is_empty());
    /// ```
    pub fn new() -> Self {
        Self::from_arena(PageArena::new())
    }

    /// Shares an existing arena.
    ///
    /// ```
    /// let mut arena = remapvec::PageArena::new();
    /// let id = arena.alloc(1)?;
    /// let shared = remapvec::SharedArena::from_arena(arena);
    /// assert_eq!(shared.read(id, |b| b.len())?, 1);
    /// # Ok::<(), remapvec::ArenaError>(())
    /// ```
    pub fn from_arena(arena: PageArena) -> Self {
        let mut inner = Inner {
            arena,
            regions: Vec::new(),
        };
        let ids: Vec<RegionId> = inner.arena.iter().map(|(id, _)| id).collect();
        for id in ids {
            inner.cover(id);
        }
        SharedArena {
            inner: RwLock::new(inner),
        }
    }

    /// Takes the arena back.
    ///
    /// ```
    /// let shared = remapvec::SharedArena::new();
    /// let id = shared.alloc(1)?;
    /// let arena = shared.into_inner();
    /// assert!(arena.contains(id));
    /// # Ok::<(), remapvec::ArenaError>(())
    /// ```
    pub fn into_inner(self) -> PageArena {
        self.inner.into_inner().arena
    }

    /// The arena, shared. A thread that holds a borrow already takes it recursively (past
    /// waiting writers: they wait for this thread's borrow, so it must not wait for them).
    #[inline]
    fn lock_shared(&self, top: *const Held) -> RwLockReadGuard<'_, Inner> {
        if top.is_null() {
            read_fair(&self.inner)
        } else {
            self.inner.read_recursive()
        }
    }

    /// The arena, exclusively, for `op`; panics if this thread borrows any of its regions.
    #[inline]
    #[track_caller]
    fn lock_exclusive(&self, op: &str) -> RwLockWriteGuard<'_, Inner> {
        let top = innermost();
        if !top.is_null() && held(top, self, None).is_some() {
            arena_borrowed(op);
        }
        self.inner.write()
    }

    /// Allocates a zeroed region (see [`PageArena::alloc`]).
    ///
    /// # Errors
    ///
    /// As [`PageArena::alloc`](crate::PageArena::alloc).
    ///
    /// # Panics
    ///
    /// Inside a [`read`](Self::read) or [`write`](Self::write) closure of this arena (see
    /// "Nested access" in the type's docs).
    ///
    /// ```
    /// let arena = remapvec::SharedArena::new();
    /// let id = arena.alloc(10)?;
    /// assert_eq!(arena.read(id, |b| b.to_vec())?, vec![0; 10]);
    /// # Ok::<(), remapvec::ArenaError>(())
    /// ```
    #[track_caller]
    pub fn alloc(&self, len: usize) -> Result<RegionId, ArenaError> {
        let mut inner = self.lock_exclusive("alloc");
        let id = inner.arena.alloc(len)?;
        inner.cover(id);
        Ok(id)
    }

    /// Frees a region (see [`PageArena::free`]).
    ///
    /// # Errors
    ///
    /// As [`PageArena::free`](crate::PageArena::free): [`ArenaError::InvalidId`] for a stale id.
    ///
    /// # Panics
    ///
    /// Inside a [`read`](Self::read) or [`write`](Self::write) closure of this arena.
    ///
    /// ```
    /// let arena = remapvec::SharedArena::new();
    /// let id = arena.alloc(10)?;
    /// arena.free(id)?;
    /// assert!(arena.read(id, |_| ()).is_err());
    /// # Ok::<(), remapvec::ArenaError>(())
    /// ```
    #[track_caller]
    pub fn free(&self, id: RegionId) -> Result<(), ArenaError> {
        self.lock_exclusive("free").arena.free(id)
    }

    /// Grows a region (see [`PageArena::grow`]).
    ///
    /// # Errors
    ///
    /// As [`PageArena::grow`](crate::PageArena::grow).
    ///
    /// # Panics
    ///
    /// Inside a [`read`](Self::read) or [`write`](Self::write) closure of this arena.
    ///
    /// ```
    /// let arena = remapvec::SharedArena::new();
    /// let id = arena.alloc(10)?;
    /// arena.grow(id, 20)?;
    /// assert_eq!(arena.read(id, |b| b.len())?, 20);
    /// # Ok::<(), remapvec::ArenaError>(())
    /// ```
    #[track_caller]
    pub fn grow(&self, id: RegionId, new_len: usize) -> Result<(), ArenaError> {
        self.lock_exclusive("grow").arena.grow(id, new_len)
    }

    /// Shrinks a region (see [`PageArena::shrink`]).
    ///
    /// # Errors
    ///
    /// As [`PageArena::shrink`](crate::PageArena::shrink).
    ///
    /// # Panics
    ///
    /// Inside a [`read`](Self::read) or [`write`](Self::write) closure of this arena.
    ///
    /// ```
    /// let arena = remapvec::SharedArena::new();
    /// let id = arena.alloc(10)?;
    /// arena.shrink(id, 5)?;
    /// assert_eq!(arena.read(id, |b| b.len())?, 5);
    /// # Ok::<(), remapvec::ArenaError>(())
    /// ```
    #[track_caller]
    pub fn shrink(&self, id: RegionId, new_len: usize) -> Result<(), ArenaError> {
        self.lock_exclusive("shrink").arena.shrink(id, new_len)
    }

    /// Compacts (see [`PageArena::compact`]); waits until no other operation runs.
    ///
    /// # Errors
    ///
    /// As [`PageArena::compact`](crate::PageArena::compact).
    ///
    /// # Panics
    ///
    /// Inside a [`read`](Self::read) or [`write`](Self::write) closure of this arena.
    ///
    /// ```
    /// let arena = remapvec::SharedArena::new();
    /// let a = arena.alloc(4096)?;
    /// let _b = arena.alloc(4096)?;
    /// arena.free(a)?;
    /// assert_eq!(arena.compact()?.regions_moved, 1);
    /// # Ok::<(), remapvec::ArenaError>(())
    /// ```
    #[track_caller]
    pub fn compact(&self) -> Result<CompactReport, ArenaError> {
        self.lock_exclusive("compact").arena.compact()
    }

    /// Number of live regions. Works inside closures too.
    ///
    /// ```
    /// let arena = remapvec::SharedArena::new();
    /// let id = arena.alloc(1)?;
    /// assert_eq!(arena.len(), 1);
    /// assert_eq!(arena.read(id, |_| arena.len())?, 1);
    /// # Ok::<(), remapvec::ArenaError>(())
    /// ```
    pub fn len(&self) -> usize {
        self.lock_shared(innermost()).arena.len()
    }

    /// Whether there are no live regions. Works inside closures too.
    ///
    /// ```
    /// assert!(remapvec::SharedArena::new().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.lock_shared(innermost()).arena.is_empty()
    }

    /// Runs `f` on the region's bytes; other readers of it may run at the same time, writers
    /// of it wait. `f` may read any region of this arena, this one included, and write other
    /// regions (see "Nested access" in the type's docs).
    ///
    /// # Errors
    ///
    /// [`ArenaError::InvalidId`] when `id` was freed, belongs to another arena or is broken (see
    /// [`ArenaError::Broken`]). `f` is not called on error.
    ///
    /// # Panics
    ///
    /// If this thread is inside a [`write`](Self::write) closure of the same region ("already
    /// mutably borrowed"); and if `f` panics.
    ///
    /// ```
    /// let arena = remapvec::SharedArena::new();
    /// let id = arena.alloc(3)?;
    /// assert_eq!(arena.read(id, |b| b.iter().map(|&x| x as u32).sum::<u32>())?, 0);
    /// // Nested reads of the same region are fine.
    /// assert_eq!(arena.read(id, |b| arena.read(id, |c| b.len() + c.len()))??, 6);
    /// # Ok::<(), remapvec::ArenaError>(())
    /// ```
    #[track_caller]
    pub fn read<R>(&self, id: RegionId, f: impl FnOnce(&[u8]) -> R) -> Result<R, ArenaError> {
        let top = innermost();
        let inner = self.lock_shared(top);
        let (p, len) = inner
            .arena
            .raw_region(id)
            .ok_or(ArenaError::InvalidId(id))?;
        let lock = inner.region_lock(id);
        let _bytes = if top.is_null() {
            read_fair(lock)
        } else {
            if let Some(Mode::Write) = held(top, self, Some(id.index)) {
                already_borrowed(id, Mode::Write);
            }
            // Past waiting writers: this thread may hold this region (or one they wait for).
            lock.read_recursive()
        };
        let node = Held {
            arena: self,
            index: id.index,
            mode: Mode::Read,
            prev: top,
        };
        let _held = Registration::push(&node);
        // SAFETY: the arena's shared lock keeps the region from moving, resizing or being
        // freed; the region's lock, held shared, keeps writers of it on other threads out
        // (each holds it exclusively while its slice lives), and the check above keeps out
        // this thread's: it is not inside a `write` of this region, and no `write` of it can
        // start inside `f` (its check finds `node`). Regions never overlap, so slices of other
        // regions do not alias this one.
        Ok(f(unsafe { core::slice::from_raw_parts(p, len) }))
    }

    /// Runs `f` on the region's bytes, mutably; everyone else using this region waits. `f` may
    /// read and write other regions of this arena (see "Nested access" in the type's docs).
    ///
    /// # Errors
    ///
    /// [`ArenaError::InvalidId`] when `id` was freed, belongs to another arena or is broken (see
    /// [`ArenaError::Broken`]). `f` is not called on error.
    ///
    /// # Panics
    ///
    /// If this thread is inside a [`read`](Self::read) or `write` closure of the same region
    /// ("already borrowed"); and if `f` panics.
    ///
    /// ```
    /// let arena = remapvec::SharedArena::new();
    /// let id = arena.alloc(3)?;
    /// arena.write(id, |b| b.copy_from_slice(b"xyz"))?;
    /// assert_eq!(arena.read(id, |b| b.to_vec())?, b"xyz");
    /// # Ok::<(), remapvec::ArenaError>(())
    /// ```
    #[track_caller]
    pub fn write<R>(&self, id: RegionId, f: impl FnOnce(&mut [u8]) -> R) -> Result<R, ArenaError> {
        let top = innermost();
        let inner = self.lock_shared(top);
        let (p, len) = inner
            .arena
            .raw_region(id)
            .ok_or(ArenaError::InvalidId(id))?;
        if !top.is_null()
            && let Some(mode) = held(top, self, Some(id.index))
        {
            already_borrowed(id, mode);
        }
        let _bytes = inner.region_lock(id).write();
        let node = Held {
            arena: self,
            index: id.index,
            mode: Mode::Write,
            prev: top,
        };
        let _held = Registration::push(&node);
        // SAFETY: the arena's shared lock keeps the region in place (structural changes need
        // it exclusively); the region's lock, held exclusively, keeps every other thread's
        // slice of it out, and the check above this thread's: it holds no borrow of this
        // region, and none can start inside `f` (their checks find `node`). `&PageArena` hands
        // out region bytes only here and in `read`. Regions never overlap, so slices of other
        // regions do not alias this one.
        Ok(f(unsafe { core::slice::from_raw_parts_mut(p, len) }))
    }
}
