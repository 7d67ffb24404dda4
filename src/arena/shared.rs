//! `SharedArena`: a `PageArena` for many threads. A `parking_lot` read-write lock guards the
//! arena's structure; striped per-region locks guard region bytes.

use super::{ArenaError, CompactReport, PageArena, RegionId};
use parking_lot::RwLock;

/// Number of lock stripes for region bytes.
const STRIPES: usize = 64;

/// A [`PageArena`] usable from many threads at once.
///
/// `alloc`, `free`, `grow`, `shrink` and `compact` take the arena's write lock (they may move
/// regions); reads and writes of region bytes take its read lock plus the region's stripe
/// lock (shared for [`read`](Self::read), exclusive for [`write`](Self::write)), so threads
/// work on different regions in parallel and [`compact`](Self::compact) waits until no
/// closure runs.
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
#[derive(Debug)]
pub struct SharedArena {
    arena: RwLock<PageArena>,
    stripes: [RwLock<()>; STRIPES],
}

impl Default for SharedArena {
    fn default() -> Self {
        Self::new()
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
        SharedArena {
            arena: RwLock::new(arena),
            stripes: core::array::from_fn(|_| RwLock::new(())),
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
        self.arena.into_inner()
    }

    fn stripe(&self, id: RegionId) -> &RwLock<()> {
        &self.stripes[id.index as usize % STRIPES]
    }

    /// Allocates a zeroed region (see [`PageArena::alloc`]).
    ///
    /// ```
    /// let arena = remapvec::SharedArena::new();
    /// let id = arena.alloc(10)?;
    /// assert_eq!(arena.read(id, |b| b.to_vec())?, vec![0; 10]);
    /// # Ok::<(), remapvec::ArenaError>(())
    /// ```
    pub fn alloc(&self, len: usize) -> Result<RegionId, ArenaError> {
        self.arena.write().alloc(len)
    }

    /// Frees a region (see [`PageArena::free`]).
    ///
    /// ```
    /// let arena = remapvec::SharedArena::new();
    /// let id = arena.alloc(10)?;
    /// arena.free(id)?;
    /// assert!(arena.read(id, |_| ()).is_err());
    /// # Ok::<(), remapvec::ArenaError>(())
    /// ```
    pub fn free(&self, id: RegionId) -> Result<(), ArenaError> {
        self.arena.write().free(id)
    }

    /// Grows a region (see [`PageArena::grow`]).
    ///
    /// ```
    /// let arena = remapvec::SharedArena::new();
    /// let id = arena.alloc(10)?;
    /// arena.grow(id, 20)?;
    /// assert_eq!(arena.read(id, |b| b.len())?, 20);
    /// # Ok::<(), remapvec::ArenaError>(())
    /// ```
    pub fn grow(&self, id: RegionId, new_len: usize) -> Result<(), ArenaError> {
        self.arena.write().grow(id, new_len)
    }

    /// Shrinks a region (see [`PageArena::shrink`]).
    ///
    /// ```
    /// let arena = remapvec::SharedArena::new();
    /// let id = arena.alloc(10)?;
    /// arena.shrink(id, 5)?;
    /// assert_eq!(arena.read(id, |b| b.len())?, 5);
    /// # Ok::<(), remapvec::ArenaError>(())
    /// ```
    pub fn shrink(&self, id: RegionId, new_len: usize) -> Result<(), ArenaError> {
        self.arena.write().shrink(id, new_len)
    }

    /// Compacts (see [`PageArena::compact`]); waits until no other operation runs.
    ///
    /// ```
    /// let arena = remapvec::SharedArena::new();
    /// let a = arena.alloc(4096)?;
    /// let _b = arena.alloc(4096)?;
    /// arena.free(a)?;
    /// assert_eq!(arena.compact()?.regions_moved, 1);
    /// # Ok::<(), remapvec::ArenaError>(())
    /// ```
    pub fn compact(&self) -> Result<CompactReport, ArenaError> {
        self.arena.write().compact()
    }

    /// Number of live regions.
    ///
    /// ```
    /// let arena = remapvec::SharedArena::new();
    /// arena.alloc(1)?;
    /// assert_eq!(arena.len(), 1);
    /// # Ok::<(), remapvec::ArenaError>(())
    /// ```
    pub fn len(&self) -> usize {
        self.arena.read().len()
    }

    /// Whether there are no live regions.
    ///
    /// ```
    /// assert!(remapvec::SharedArena::new().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.arena.read().is_empty()
    }

    /// Runs `f` on the region's bytes; other readers of it may run at the same time, writers
    /// of it wait.
    ///
    /// ```
    /// let arena = remapvec::SharedArena::new();
    /// let id = arena.alloc(3)?;
    /// assert_eq!(arena.read(id, |b| b.iter().map(|&x| x as u32).sum::<u32>())?, 0);
    /// # Ok::<(), remapvec::ArenaError>(())
    /// ```
    pub fn read<R>(&self, id: RegionId, f: impl FnOnce(&[u8]) -> R) -> Result<R, ArenaError> {
        let arena = self.arena.read();
        let _bytes = self.stripe(id).read();
        let (p, len) = arena.raw_region(id).ok_or(ArenaError::InvalidId(id))?;
        // SAFETY: the arena's read lock keeps the region from moving, resizing or being
        // freed; the stripe's read lock keeps writers of this region out (every writer takes
        // it exclusively), so the bytes are not mutated while the slice lives.
        Ok(f(unsafe { core::slice::from_raw_parts(p, len) }))
    }

    /// Runs `f` on the region's bytes, mutably; everyone else using this region waits.
    ///
    /// ```
    /// let arena = remapvec::SharedArena::new();
    /// let id = arena.alloc(3)?;
    /// arena.write(id, |b| b.copy_from_slice(b"xyz"))?;
    /// assert_eq!(arena.read(id, |b| b.to_vec())?, b"xyz");
    /// # Ok::<(), remapvec::ArenaError>(())
    /// ```
    pub fn write<R>(&self, id: RegionId, f: impl FnOnce(&mut [u8]) -> R) -> Result<R, ArenaError> {
        let arena = self.arena.read();
        let _bytes = self.stripe(id).write();
        let (p, len) = arena.raw_region(id).ok_or(ArenaError::InvalidId(id))?;
        // SAFETY: the arena's read lock keeps the region in place (structural changes need
        // the write lock); the stripe's write lock excludes every other reader and writer of
        // this region, and `&PageArena` is only handed to code here, which never reads
        // region bytes without the stripe lock.
        Ok(f(unsafe { core::slice::from_raw_parts_mut(p, len) }))
    }
}
