//! Linux backend: `mmap`, `mremap` (in place, `MREMAP_MAYMOVE`, `MREMAP_FIXED`), `munmap`,
//! `madvise`, `mincore`. The only foreign calls of the crate on Linux.

use super::{Errno, Features};
use libc::{MAP_ANONYMOUS, MAP_FAILED, MAP_NORESERVE, MAP_PRIVATE, PROT_NONE, c_void};

const PROT_RW: i32 = libc::PROT_READ | libc::PROT_WRITE;

/// This backend can grow and move mappings without copying.
pub(crate) const HAS_MREMAP: bool = true;

pub(crate) fn query_page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 { p as usize } else { 4096 }
}

fn mmap_raw(hint: usize, len: usize, prot: i32, flags: i32) -> Result<*mut u8, Errno> {
    if let Some((errno, _)) = super::fault::hit() {
        return Err(Errno(errno));
    }
    let flags = if hint != 0 {
        flags | libc::MAP_FIXED_NOREPLACE
    } else {
        flags
    };
    // SAFETY: an anonymous mapping without MAP_FIXED never replaces an existing mapping
    // (MAP_FIXED_NOREPLACE fails with EEXIST instead), so no memory of anyone is touched.
    let p = unsafe { libc::mmap(hint as *mut c_void, len, prot, flags, -1, 0) };
    if p == MAP_FAILED {
        return Err(Errno::last());
    }
    if hint != 0 && p as usize != hint {
        // A kernel older than 4.17 treats MAP_FIXED_NOREPLACE as a plain hint. Treat a mapping
        // elsewhere as "slot taken" so placement stays the caller's decision.
        // SAFETY: we just created this mapping and nothing refers to it.
        unsafe { libc::munmap(p, len) };
        return Err(Errno(libc::EEXIST));
    }
    Ok(p.cast())
}

/// Maps `len` bytes (a multiple of the page size) of fresh zeroed read-write anonymous memory.
/// With `hint != 0` the mapping is placed exactly at `hint` or fails with `EEXIST`; it never
/// replaces anything.
pub(crate) fn map_anon(hint: usize, len: usize) -> Result<*mut u8, Errno> {
    mmap_raw(hint, len, PROT_RW, MAP_PRIVATE | MAP_ANONYMOUS)
}

/// Reserves `len` bytes of address space: `PROT_NONE`, `MAP_NORESERVE`, costs no memory. With
/// `hint != 0` exactly there or `EEXIST`. The caller owns the reservation and may map over it.
pub(crate) fn reserve(hint: usize, len: usize) -> Result<*mut u8, Errno> {
    mmap_raw(
        hint,
        len,
        PROT_NONE,
        MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
    )
}

/// # Safety
/// The caller owns `[addr, addr + len)` (see [`map_fixed`]).
unsafe fn mmap_fixed(addr: *mut u8, len: usize, prot: i32, flags: i32) -> Result<(), Errno> {
    if let Some((errno, _)) = super::fault::hit() {
        return Err(Errno(errno));
    }
    // SAFETY: the caller's contract, passed on.
    unsafe { mmap_fixed_raw(addr, len, prot, flags) }
}

/// [`mmap_fixed`] without fault injection (for the feature probes).
///
/// # Safety
/// The caller owns `[addr, addr + len)` (see [`map_fixed`]).
unsafe fn mmap_fixed_raw(addr: *mut u8, len: usize, prot: i32, flags: i32) -> Result<(), Errno> {
    // SAFETY: the callers' contracts say that they own `[addr, addr + len)`, so MAP_FIXED
    // replaces only their own memory.
    let p = unsafe {
        libc::mmap(
            addr.cast(),
            len,
            prot,
            flags | MAP_PRIVATE | MAP_ANONYMOUS | libc::MAP_FIXED,
            -1,
            0,
        )
    };
    if p == MAP_FAILED {
        Err(Errno::last())
    } else {
        Ok(())
    }
}

/// Turns `[addr, addr + len)` back into a `PROT_NONE`, `MAP_NORESERVE` reservation
/// (`MAP_FIXED`), discarding its pages.
///
/// # Safety
/// As for [`map_fixed`]: the caller owns the whole range and nothing refers to it.
pub(crate) unsafe fn reserve_fixed(addr: *mut u8, len: usize) -> Result<(), Errno> {
    // SAFETY: the caller owns the range (contract above).
    unsafe { mmap_fixed(addr, len, PROT_NONE, MAP_NORESERVE) }
}

/// Makes `[addr, addr + len)`, part of the caller's own `PROT_NONE` reservation, readable and
/// writable in place (`mprotect`). Unlike [`map_fixed`] it never unmaps anything, so a failure
/// (e.g. `ENOMEM` from commit accounting) leaves the reservation where it was: no window in
/// which another thread could map there. The pages read as whatever they held: zero for a range
/// that was never written or was last [`decommit`]ted.
///
/// # Safety
/// The caller owns the whole range (its own reservation, never given up since).
pub(crate) unsafe fn commit(addr: *mut u8, len: usize) -> Result<(), Errno> {
    if let Some((errno, _)) = super::fault::hit() {
        return Err(Errno(errno));
    }
    // SAFETY: mprotect changes only the protection of the caller's own range; it never maps or
    // unmaps, so no memory of anyone else is touched.
    if unsafe { libc::mprotect(addr.cast(), len, PROT_RW) } == 0 {
        Ok(())
    } else {
        Err(Errno::last())
    }
}

/// Gives the pages of `[addr, addr + len)` back to the kernel and makes the range `PROT_NONE`
/// again (`MADV_DONTNEED`, then `mprotect`): it stays mapped, so it stays the caller's, and
/// reads as zero once [`commit`]ted again. Never unmaps anything, even on failure.
///
/// # Safety
/// The caller owns the whole range (private anonymous memory of its own) and nothing refers to
/// its contents any more.
pub(crate) unsafe fn decommit(addr: *mut u8, len: usize) -> Result<(), Errno> {
    if let Some((errno, _)) = super::fault::hit() {
        return Err(Errno(errno));
    }
    // SAFETY: MADV_DONTNEED drops the pages of the caller's own private range (which it gave
    // up); the mapping stays.
    if unsafe { libc::madvise(addr.cast(), len, libc::MADV_DONTNEED) } != 0 {
        return Err(Errno::last());
    }
    // SAFETY: as in `commit`: a protection change of the caller's own range.
    if unsafe { libc::mprotect(addr.cast(), len, PROT_NONE) } == 0 {
        Ok(())
    } else {
        Err(Errno::last())
    }
}

/// Creates an anonymous memory file (`memfd_create`, close-on-exec) of size 0.
pub(crate) fn memfd() -> Result<i32, Errno> {
    if let Some((errno, _)) = super::fault::hit() {
        return Err(Errno(errno));
    }
    // SAFETY: a NUL-terminated name and valid flags.
    let fd = unsafe { libc::memfd_create(c"remapvec".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 { Err(Errno::last()) } else { Ok(fd) }
}

/// Sets the size of the file `fd` (`ftruncate`).
pub(crate) fn set_file_len(fd: i32, len: usize) -> Result<(), Errno> {
    if let Some((errno, _)) = super::fault::hit() {
        return Err(Errno(errno));
    }
    within_file_size_limit(len)?;
    let len = libc::off_t::try_from(len).map_err(|_| Errno(libc::EFBIG))?;
    // SAFETY: ftruncate on a file descriptor; an invalid one is an EBADF, not UB.
    if unsafe { libc::ftruncate(fd, len) } == 0 {
        Ok(())
    } else {
        Err(Errno::last())
    }
}

/// `EFBIG` when a file may not reach `end` bytes under the process's file-size limit
/// (`RLIMIT_FSIZE`, `ulimit -f`, which applies to memory files too). Asked before the kernel
/// is: it answers a write, truncate or allocation past the limit with `SIGXFSZ`, which kills
/// the process unless handled, where a growing buffer must report an error instead.
fn within_file_size_limit(end: usize) -> Result<(), Errno> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes the `rlimit` we pass and nothing else.
    if unsafe { libc::getrlimit(libc::RLIMIT_FSIZE, &mut lim) } != 0 {
        return Ok(());
    }
    if lim.rlim_cur != libc::RLIM_INFINITY && end as u64 > lim.rlim_cur {
        return Err(Errno(libc::EFBIG));
    }
    Ok(())
}

/// Allocates the pages of `[off, off + len)` of the file `fd` (`fallocate`, mode 0): a
/// memory file gets zeroed pages there in one call, so that mapping them later is a minor
/// fault. The file's size does not shrink. Errors mean "not done": the pages are allocated on
/// first touch instead.
pub(crate) fn allocate_file(fd: i32, off: usize, len: usize) -> Result<(), Errno> {
    within_file_size_limit(off.checked_add(len).ok_or(Errno(libc::EFBIG))?)?;
    let off = libc::off_t::try_from(off).map_err(|_| Errno(libc::EFBIG))?;
    let len = libc::off_t::try_from(len).map_err(|_| Errno(libc::EFBIG))?;
    // SAFETY: fallocate on a file descriptor; an invalid one is an EBADF, not UB. It changes
    // no mapping and no byte of the file (new pages read as zero).
    if unsafe { libc::fallocate(fd, 0, off, len) } == 0 {
        Ok(())
    } else {
        Err(Errno::last())
    }
}

/// Zeros, read by [`write_zeros`] (in `.bss`: costs nothing until read, and reading maps the
/// kernel's zero page).
static ZEROS: [u8; 64 << 10] = [0; 64 << 10];

/// Writes zeros into `[off, off + len)` of the file `fd` (`pwritev` from a static zero buffer,
/// as many calls as it takes). On a memory file this allocates the pages and marks them up to
/// date without a page fault, so that a later read fault maps several of them at once
/// (fault-around), which `fallocate`'s not-yet-cleared pages do not allow. Errors mean "not
/// (all) done": the rest is allocated on first touch instead.
///
/// Overwrites the range: the caller must hold nothing there (bytes past everything it wrote).
pub(crate) fn write_zeros(fd: i32, off: usize, len: usize) -> Result<(), Errno> {
    const PIECES: usize = 32;
    let (mut off, end) = (off, off.checked_add(len).ok_or(Errno(libc::EFBIG))?);
    within_file_size_limit(end)?;
    while off < end {
        let iov = [libc::iovec {
            iov_base: ZEROS.as_ptr().cast_mut().cast(),
            iov_len: ZEROS.len(),
        }; PIECES];
        let want = (end - off).min(PIECES * ZEROS.len());
        let n = want.div_ceil(ZEROS.len());
        let mut iov = iov;
        iov[n - 1].iov_len = want - (n - 1) * ZEROS.len();
        let at = libc::off_t::try_from(off).map_err(|_| Errno(libc::EFBIG))?;
        // SAFETY: every iovec points into `ZEROS`, a static the kernel only reads (pwritev
        // copies from it); `n <= PIECES` of them are passed. An invalid descriptor is an EBADF,
        // not UB. The caller holds nothing in the range written.
        let r = unsafe { libc::pwritev(fd, iov.as_ptr(), n as i32, at) };
        if r <= 0 {
            return Err(if r == 0 {
                Errno(libc::EIO)
            } else {
                Errno::last()
            });
        }
        off += r as usize;
    }
    Ok(())
}

/// Closes `fd`.
pub(crate) fn close(fd: i32) {
    // SAFETY: closing a descriptor the caller owns and no longer uses.
    unsafe { libc::close(fd) };
}

/// Maps `len` bytes of the file `fd` from offset 0, shared and read-write. With `hint != 0`
/// exactly there or `EEXIST` (never replacing anything).
pub(crate) fn map_shared(hint: usize, len: usize, fd: i32) -> Result<*mut u8, Errno> {
    if let Some((errno, _)) = super::fault::hit() {
        return Err(Errno(errno));
    }
    let flags = libc::MAP_SHARED
        | if hint != 0 {
            libc::MAP_FIXED_NOREPLACE
        } else {
            0
        };
    // SAFETY: without MAP_FIXED nothing existing is replaced (NOREPLACE fails instead).
    let p = unsafe { libc::mmap(hint as *mut c_void, len, PROT_RW, flags, fd, 0) };
    if p == MAP_FAILED {
        return Err(Errno::last());
    }
    if hint != 0 && p as usize != hint {
        // SAFETY: we just created this mapping and nothing refers to it.
        unsafe { libc::munmap(p, len) };
        return Err(Errno(libc::EEXIST));
    }
    Ok(p.cast())
}

/// Grows or shrinks the mapping at `addr` without moving it.
///
/// # Safety
/// The caller owns the whole mapping `[addr, addr + old_len)`. When shrinking, nothing may
/// refer to the released tail `[addr + new_len, addr + old_len)`.
pub(crate) unsafe fn remap_in_place(
    addr: *mut u8,
    old_len: usize,
    new_len: usize,
) -> Result<(), Errno> {
    if let Some((errno, _)) = super::fault::hit() {
        return Err(Errno(errno));
    }
    // SAFETY: flags 0 never moves the mapping and never touches other mappings; the caller
    // owns the range and guarantees the released tail is unused.
    let p = unsafe { libc::mremap(addr.cast(), old_len, new_len, 0) };
    if p == MAP_FAILED {
        Err(Errno::last())
    } else {
        Ok(())
    }
}

/// Resizes the mapping at `addr`, letting the kernel move it anywhere (`MREMAP_MAYMOVE`).
///
/// # Safety
/// The caller owns `[addr, addr + old_len)` and holds no reference into it across the call:
/// on success the old addresses are no longer mapped.
pub(crate) unsafe fn remap_maymove(
    addr: *mut u8,
    old_len: usize,
    new_len: usize,
) -> Result<*mut u8, Errno> {
    if let Some((errno, _)) = super::fault::hit() {
        return Err(Errno(errno));
    }
    // SAFETY: MREMAP_MAYMOVE without MREMAP_FIXED picks free addresses and replaces nothing;
    // the caller owns the source and holds no reference into it.
    let p = unsafe { libc::mremap(addr.cast(), old_len, new_len, libc::MREMAP_MAYMOVE) };
    if p == MAP_FAILED {
        Err(Errno::last())
    } else {
        Ok(p.cast())
    }
}

/// Moves (and resizes) the mapping(s) at `addr` to exactly `dst` (`MREMAP_MAYMOVE |
/// MREMAP_FIXED`). With `old_len == new_len` on Linux 6.17+ the source range may span several
/// mappings, all moved in one call.
///
/// # Safety
/// `MREMAP_FIXED` unmaps whatever is at `[dst, dst + new_len)`: the caller must own that whole
/// range (typically its own `PROT_NONE` reservation) and nothing may refer to it. The caller
/// also owns the source range and holds no reference into it. Source and destination must not
/// overlap (the kernel answers `EINVAL`).
pub(crate) unsafe fn remap_fixed(
    addr: *mut u8,
    old_len: usize,
    new_len: usize,
    dst: *mut u8,
) -> Result<(), Errno> {
    if let Some((errno, partial)) = super::fault::hit() {
        // An injected failure part-way through a multi-mapping move: move a prefix for real,
        // as the kernel does when it stops after some of the mappings.
        if let Some(done) = partial.filter(|&d| d > 0 && d < old_len && old_len == new_len) {
            // SAFETY: a prefix of the ranges the caller owns (contract above).
            unsafe { remap_fixed_raw(addr, done, done, dst) }?;
        }
        super::fault::run_hook(dst, new_len);
        return Err(Errno(errno));
    }
    // SAFETY: the caller's contract, passed on unchanged.
    unsafe { remap_fixed_raw(addr, old_len, new_len, dst) }
}

/// Moves the single mapping `[addr, addr + len)` to exactly `dst` and leaves the source
/// mapped (`MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_DONTUNMAP`, Linux 5.7+, see
/// [`Features::dontunmap`](super::Features)): the source keeps its mapping, emptied (it reads
/// as zero from now on), so no other thread's `mmap` can land there; the caller still owns it
/// and turns it into whatever it needs (e.g. a reservation with [`reserve_fixed`]).
///
/// On error the source is unchanged, but the kernel may already have unmapped the destination
/// (see [`remap_fixed`]): the caller must treat `[dst, dst + len)` as no longer its own.
///
/// # Safety
/// As for [`remap_fixed`] with `old_len == new_len == len`; `[addr, addr + len)` must be one
/// private mapping (the kernel refuses a range spanning several with `EFAULT`).
pub(crate) unsafe fn remap_fixed_dontunmap(
    addr: *mut u8,
    len: usize,
    dst: *mut u8,
) -> Result<(), Errno> {
    if let Some((errno, _)) = super::fault::hit() {
        return Err(Errno(errno));
    }
    // SAFETY: the caller's contract, passed on.
    unsafe { remap_fixed_dontunmap_raw(addr, len, dst) }
}

/// [`remap_fixed_dontunmap`] without fault injection (for the feature probe).
///
/// # Safety
/// As for [`remap_fixed_dontunmap`].
unsafe fn remap_fixed_dontunmap_raw(addr: *mut u8, len: usize, dst: *mut u8) -> Result<(), Errno> {
    // SAFETY: the caller owns `[dst, dst + len)` (its own reservation), so the implicit unmap of
    // the destination drops only memory it gave up; MREMAP_DONTUNMAP leaves the source mapped,
    // so no range is left unmapped on success.
    let p = unsafe {
        libc::mremap(
            addr.cast(),
            len,
            len,
            libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED | libc::MREMAP_DONTUNMAP,
            dst,
        )
    };
    if p == MAP_FAILED {
        Err(Errno::last())
    } else {
        debug_assert_eq!(p.cast::<u8>(), dst);
        Ok(())
    }
}

/// [`remap_fixed`] without fault injection.
///
/// # Safety
/// As for [`remap_fixed`].
unsafe fn remap_fixed_raw(
    addr: *mut u8,
    old_len: usize,
    new_len: usize,
    dst: *mut u8,
) -> Result<(), Errno> {
    // SAFETY: the caller owns both ranges (see above), so the implicit unmap of the
    // destination only drops memory the caller gave up.
    let p = unsafe {
        libc::mremap(
            addr.cast(),
            old_len,
            new_len,
            libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED,
            dst,
        )
    };
    if p == MAP_FAILED {
        Err(Errno::last())
    } else {
        debug_assert_eq!(p.cast::<u8>(), dst);
        Ok(())
    }
}

/// Milliseconds of a monotonic clock (coarse: a few ms of resolution is plenty for decay).
/// Through the vDSO on Linux: no system call, no allocation.
pub(crate) fn now_ms() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec into `ts`.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
    (ts.tv_sec as u64) * 1000 + (ts.tv_nsec as u64) / 1_000_000
}

/// Forks of this process (and its ancestors) since [`watch_forks`] first succeeded: raised by a
/// `pthread_atfork` child handler, so a process sees with one relaxed load whether it is a
/// forked child of the process that created some shared memory. Never changes in the process
/// that registered.
#[inline]
pub(crate) fn fork_generation() -> usize {
    FORK_GENERATION.load(core::sync::atomic::Ordering::Relaxed)
}

static FORK_GENERATION: core::sync::atomic::AtomicUsize = core::sync::atomic::AtomicUsize::new(0);

/// Registers the fork-counting child handler once; false if it cannot be registered (then the
/// caller must not share memory through a file). No `Once`: a fork while another thread ran its
/// closure would leave the child waiting forever; threads racing here may each register a
/// handler, which only moves the generation by more than one per fork.
pub(crate) fn watch_forks() -> bool {
    use core::sync::atomic::{AtomicBool, Ordering::*};
    static REGISTERED: AtomicBool = AtomicBool::new(false);
    extern "C" fn child() {
        FORK_GENERATION.fetch_add(1, Relaxed);
    }
    if REGISTERED.load(Acquire) {
        return true;
    }
    // SAFETY: registers a child handler that only increments an atomic, which is
    // async-signal-safe, as a handler run in the child of a multithreaded process must be.
    let ok = unsafe { libc::pthread_atfork(None, None, Some(child)) } == 0;
    if ok {
        REGISTERED.store(true, Release);
    }
    ok
}

/// Unmaps `[addr, addr + len)`.
///
/// # Safety
/// The caller owns the range and nothing refers to it any more.
pub(crate) unsafe fn unmap(addr: *mut u8, len: usize) -> Result<(), Errno> {
    // SAFETY: the caller owns the range and no longer uses it.
    if unsafe { libc::munmap(addr.cast(), len) } == 0 {
        Ok(())
    } else {
        Err(Errno::last())
    }
}

/// Advises transparent huge pages for `[addr, addr + len)`. Contents are unaffected.
pub(crate) fn advise_huge(addr: *mut u8, len: usize) -> Result<(), Errno> {
    // SAFETY: MADV_HUGEPAGE only changes how future faults are served; it never changes the
    // contents or the mapping of the range, and fails harmlessly on unmapped addresses.
    if unsafe { libc::madvise(addr.cast(), len, libc::MADV_HUGEPAGE) } == 0 {
        Ok(())
    } else {
        Err(Errno::last())
    }
}

/// Whether every page of `[addr, addr + len)` is resident now (`mincore`), asked in pieces of
/// 512 pages and stopping at the first page that is not: a sparse range costs one call.
/// `addr` must be page-aligned. Reads no memory; `false` on any error.
pub(crate) fn resident(addr: *mut u8, len: usize) -> bool {
    let page = super::page_size();
    let mut vec = [0u8; 512];
    let mut off = 0;
    while off < len {
        let chunk = (len - off).min(vec.len() * page);
        // SAFETY: mincore writes one byte per page of the range into `vec`, which holds
        // `chunk / page <= 512` bytes; it does not touch the range itself.
        let rc = unsafe { libc::mincore(addr.add(off).cast(), chunk, vec.as_mut_ptr()) };
        if rc != 0 || vec[..chunk.div_ceil(page)].iter().any(|b| b & 1 == 0) {
            return false;
        }
        off += chunk;
    }
    true
}

/// What the system does with transparent huge pages for this process (see [`thp_mode`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Thp {
    /// None to be had: the setting is `[never]`, the process turned them off
    /// (`PR_SET_THP_DISABLE`), or the setting could not be read.
    Off,
    /// Only for memory advised `MADV_HUGEPAGE` (`[madvise]`).
    Madvise,
    /// For all memory not advised `MADV_NOHUGEPAGE` (`[always]`).
    Always,
}

/// The system's transparent huge page setting (`/sys/kernel/mm/transparent_hugepage/enabled`)
/// for this process. Asked once, without allocating (usable from an allocator); asked again
/// when the first attempt failed for want of a file descriptor.
pub(crate) fn thp_mode() -> Thp {
    use core::sync::atomic::{AtomicU8, Ordering::Relaxed};
    // 0: not asked yet, else 1 + the answer.
    static MODE: AtomicU8 = AtomicU8::new(0);
    match MODE.load(Relaxed) {
        1 => return Thp::Off,
        2 => return Thp::Madvise,
        3 => return Thp::Always,
        _ => {}
    }
    let Some(mode) = ask_thp_mode() else {
        return Thp::Off;
    };
    MODE.store(
        match mode {
            Thp::Off => 1,
            Thp::Madvise => 2,
            Thp::Always => 3,
        },
        Relaxed,
    );
    mode
}

/// The answer of [`thp_mode`], or `None` when it cannot be had now (no file descriptor left).
fn ask_thp_mode() -> Option<Thp> {
    // SAFETY: PR_GET_THP_DISABLE reads a flag of this process; no pointer is passed.
    if unsafe { libc::prctl(libc::PR_GET_THP_DISABLE, 0, 0, 0, 0) } != 0 {
        return Some(Thp::Off);
    }
    // The setting of 2 MiB pages (Linux 6.8+, multi-size THP), unless it defers to the
    // global one ("inherit") or is not there.
    match read_thp_setting(c"/sys/kernel/mm/transparent_hugepage/hugepages-2048kB/enabled")? {
        Some(Setting::Thp(t)) => return Some(t),
        Some(Setting::Inherit) | None => {}
    }
    match read_thp_setting(c"/sys/kernel/mm/transparent_hugepage/enabled")? {
        Some(Setting::Thp(t)) => Some(t),
        Some(Setting::Inherit) | None => Some(Thp::Off),
    }
}

/// A THP `enabled` setting: a mode, or `inherit` (the global one).
enum Setting {
    Thp(Thp),
    Inherit,
}

/// The selected value of a THP `enabled` file (`always [madvise] never`, with `inherit` in the
/// per-size ones): `Some(None)` when the file cannot be read, `None` when it cannot be read
/// now (no file descriptor left).
fn read_thp_setting(path: &core::ffi::CStr) -> Option<Option<Setting>> {
    // SAFETY: a NUL-terminated path, opened read-only and closed below.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        let e = Errno::last().0;
        return (e != libc::EMFILE && e != libc::ENFILE).then_some(None);
    }
    let mut buf = [0u8; 64];
    // SAFETY: reads at most `buf.len()` bytes into `buf`, which we own.
    let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
    // SAFETY: `fd` was opened above and is closed once.
    unsafe { libc::close(fd) };
    let Ok(n) = usize::try_from(n) else {
        return Some(None);
    };
    let has = |w: &[u8]| buf[..n].windows(w.len()).any(|x| x == w);
    Some(Some(if has(b"[madvise]") {
        Setting::Thp(Thp::Madvise)
    } else if has(b"[always]") {
        Setting::Thp(Thp::Always)
    } else if has(b"[inherit]") {
        Setting::Inherit
    } else {
        Setting::Thp(Thp::Off)
    }))
}

/// Advises `[addr, addr + len)` against transparent huge pages (`MADV_NOHUGEPAGE`): later
/// faults map 4 KiB pages; pages already huge stay so. Contents are unaffected.
pub(crate) fn advise_no_huge(addr: *mut u8, len: usize) -> Result<(), Errno> {
    // SAFETY: MADV_NOHUGEPAGE only changes how future faults are served; it never changes the
    // contents or the mapping of the range, and fails harmlessly on unmapped addresses.
    if unsafe { libc::madvise(addr.cast(), len, libc::MADV_NOHUGEPAGE) } == 0 {
        Ok(())
    } else {
        Err(Errno::last())
    }
}

/// Gives the pages of `[addr, addr + len)` back to the kernel (`MADV_DONTNEED`): the range
/// stays mapped, so it stays the caller's, and reads as zero (private anonymous memory).
///
/// # Safety
/// The caller owns the whole range (private anonymous memory of its own) and nothing refers
/// to its contents any more.
pub(crate) unsafe fn drop_pages(addr: *mut u8, len: usize) -> Result<(), Errno> {
    // SAFETY: MADV_DONTNEED drops the pages of the caller's own private range, whose contents
    // it gave up; the mapping stays, so the range stays the caller's.
    if unsafe { libc::madvise(addr.cast(), len, libc::MADV_DONTNEED) } == 0 {
        Ok(())
    } else {
        Err(Errno::last())
    }
}

/// Faults in every page of `[addr, addr + len)` for writing in one call
/// (`MADV_POPULATE_WRITE`, Linux 5.14+): what touching each page would do, without one trap
/// per page. Contents are unchanged (fresh anonymous pages read as zero; a shared file mapping
/// gets its blocks allocated). `addr` must be page-aligned.
///
/// Any error means "not done, fall back to faulting": `EINVAL` on a kernel without the
/// advice, `ENOMEM` when the range is not fully mapped or memory runs out, `EFAULT` when a page
/// cannot be made writable (`PROT_NONE`, a `SIGBUS` past the end of a file), `EINTR`. Some
/// pages may have been populated before a failure; that only saves their later faults.
/// Not a mapping call: fault injection does not count it.
///
/// # Safety
/// The caller owns the whole range (a read-write mapping of its own): populating commits
/// memory there.
pub(crate) unsafe fn populate_write(addr: *mut u8, len: usize) -> Result<(), Errno> {
    // SAFETY: MADV_POPULATE_WRITE only faults pages in (zero pages, or write-faults of present
    // ones, which keep their contents); it never changes a mapping or the bytes of the range,
    // which the caller owns.
    if unsafe { libc::madvise(addr.cast(), len, libc::MADV_POPULATE_WRITE) } == 0 {
        Ok(())
    } else {
        Err(Errno::last())
    }
}

/// Maps in every page of `[addr, addr + len)` as a read would (`MADV_POPULATE_READ`, Linux
/// 5.14+), in one call: a file mapping gets its pages that are in the page cache and up to date
/// mapped several at a time (fault-around); in a shared writable mapping of a memory file they
/// are mapped writable, so the writes that follow take no fault. Errors as
/// [`populate_write`]'s: "not done, the pages fault in when touched".
///
/// # Safety
/// The caller owns the whole range (a mapping of its own).
pub(crate) unsafe fn populate_read(addr: *mut u8, len: usize) -> Result<(), Errno> {
    // SAFETY: MADV_POPULATE_READ only faults pages in as reads would; it never changes a
    // mapping or a byte of the range, which the caller owns.
    if unsafe { libc::madvise(addr.cast(), len, libc::MADV_POPULATE_READ) } == 0 {
        Ok(())
    } else {
        Err(Errno::last())
    }
}

/// Whether every page of `[addr, addr + len)` is mapped (`mincore` answers `ENOMEM` for a range
/// with a hole). `addr` must be page-aligned. Reads no memory.
pub(crate) fn is_mapped(addr: *mut u8, len: usize) -> bool {
    let page = super::page_size();
    let mut vec = [0u8; 1024];
    let mut off = 0;
    while off < len {
        let chunk = (len - off).min(vec.len() * page);
        // SAFETY: mincore writes one byte per page of the range into `vec`, which holds
        // `chunk / page <= 1024` bytes; it does not touch the range itself.
        let rc = unsafe { libc::mincore(addr.add(off).cast(), chunk, vec.as_mut_ptr()) };
        if rc != 0 {
            return false;
        }
        off += chunk;
    }
    true
}

/// Whether the byte at `addr` can be read, probed without touching it (`process_vm_readv` of
/// one byte from this process: an unreadable page, `PROT_NONE` or unmapped, is `EFAULT`,
/// never a fault). Speaks about the past, like [`is_mapped`]. Answers `true` when the
/// kernel cannot tell (`process_vm_readv` refused for another reason), so a caller that uses
/// it for an upper bound stays conservative.
pub(crate) fn readable(addr: *mut u8) -> bool {
    let mut byte = 0u8;
    let local = libc::iovec {
        iov_base: (&raw mut byte).cast(),
        iov_len: 1,
    };
    let remote = libc::iovec {
        iov_base: addr.cast(),
        iov_len: 1,
    };
    // SAFETY: reads one byte of this process's memory into `byte` through the kernel, which
    // checks the remote address and reports an inaccessible one as an error; nothing is
    // written anywhere but `byte`.
    let n = unsafe { libc::process_vm_readv(libc::getpid(), &local, 1, &remote, 1, 0) };
    n == 1 || Errno::last().0 != libc::EFAULT
}

/// Probes the kernel on scratch mappings that live inside one reservation of our own for the
/// whole probe; only ranges that are still provably ours are unmapped at the end.
pub(crate) fn probe_features() -> Features {
    Features {
        multi_mapping_move: probe_multi_move(),
        dontunmap: probe_dontunmap(),
        mremap: true,
    }
}

fn probe_multi_move() -> bool {
    let page = super::page_size();
    // One reservation of four pages: the source is its first two (a read-write page, then a
    // PROT_NONE page: two mappings the kernel cannot merge), the destination its last two.
    let Ok(base) = reserve(0, 4 * page) else {
        return false;
    };
    let (src, dst) = (base, base.wrapping_add(2 * page));
    // SAFETY: `src..src + page` lies in the reservation we made above and have not given up.
    if unsafe { mmap_fixed_raw(src, page, PROT_RW, 0) }.is_err() {
        // A failed MAP_FIXED may have released that page: from here only the last three pages
        // are provably ours.
        // SAFETY: `src + page..base + 4 pages` is part of our reservation, untouched since.
        unsafe {
            let _ = unmap(src.wrapping_add(page), 3 * page);
        }
        return false;
    }
    // SAFETY: source and destination both lie in our own reservation, nothing refers to them.
    let ok = unsafe { remap_fixed_raw(src, 2 * page, 2 * page, dst) }.is_ok();
    if ok {
        super::fault::run_hook(src, 2 * page);
        // The move vacated `src..src + 2 pages`: another thread may map there from now on, so
        // it is never touched again. The destination holds our two moved mappings.
        // SAFETY: `dst..dst + 2 pages` is where the successful move put our own mappings.
        unsafe {
            let _ = unmap(dst, 2 * page);
        }
    } else {
        // A failed MREMAP_FIXED may have released (part of) its destination before failing,
        // and a multi-mapping move may have moved a prefix of the source: neither range is
        // provably ours any more, so both are left alone. This leaks at most four pages of
        // address space (one of them read-write, never touched), once per process, on a
        // kernel without the multi-mapping move.
    }
    ok
}

fn probe_dontunmap() -> bool {
    let page = super::page_size();
    // One reservation of two pages: a read-write source page, then the destination page.
    let Ok(base) = reserve(0, 2 * page) else {
        return false;
    };
    let dst = base.wrapping_add(page);
    // SAFETY: `base..base + page` lies in the reservation we made above.
    if unsafe { mmap_fixed_raw(base, page, PROT_RW, 0) }.is_err() {
        // SAFETY: the destination page is part of our reservation, untouched since.
        unsafe {
            let _ = unmap(dst, page);
        }
        return false;
    }
    // SAFETY: both pages are ours (made above); the destination is our own reservation.
    let ok = unsafe { remap_fixed_dontunmap_raw(base, page, dst) }.is_ok();
    if ok {
        // MREMAP_DONTUNMAP left the source mapped, so both pages are still ours.
        // SAFETY: `base..base + 2 pages`: the source kept its mapping, the destination holds
        // the moved page; nothing was ever unmapped in between.
        unsafe {
            let _ = unmap(base, 2 * page);
        }
    } else {
        // The source page is ours (a failed mremap leaves it in place); the destination may
        // have been released by the failed call and is left alone.
        // SAFETY: the source page is our mapping, made above and never moved.
        unsafe {
            let _ = unmap(base, page);
        }
    }
    ok
}

/// Whether the process runs under valgrind (its preload library is in `LD_PRELOAD`). Valgrind
/// emulates `mremap` itself and (3.19) loses track of the grown part of a mapping that
/// `MREMAP_FIXED` moves and grows into an existing reservation, reporting every later access
/// there as invalid; the region layer then uses plain `MREMAP_MAYMOVE` instead. Never allocates.
pub(crate) fn under_valgrind() -> bool {
    // SAFETY: getenv with a NUL-terminated name; the result is read before any setenv could
    // run on this path (we only read it once, at the first move).
    let p = unsafe { libc::getenv(c"LD_PRELOAD".as_ptr()) };
    if p.is_null() {
        return false;
    }
    // SAFETY: getenv returns a NUL-terminated string.
    let bytes = unsafe { core::ffi::CStr::from_ptr(p) }.to_bytes();
    bytes.windows(9).any(|w| w == b"vgpreload")
}
