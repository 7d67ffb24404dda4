//! The arena never touches memory it does not own, under any interleaving: another thread
//! maps memory at the very addresses the arena (or `CostModel::measure`) is vacating, and its
//! bytes must never change and its mapping never disappear, while the arena grows regions by
//! moving them, compacts, allocates and is dropped. Also: `alloc_aligned` aligns addresses,
//! and region ids are 16 bytes wide.

#![cfg(target_os = "linux")]

use remapvec::{ArenaOptions, CostModel, PageArena, RegionId};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const PAGE: usize = 4096;

/// Serializes the tests: they race threads against each other's mappings on purpose.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn valgrind() -> bool {
    std::env::var_os("REMAPVEC_UNDER_VALGRIND").is_some()
}

/// Whether every page of `[addr, addr + len)` is mapped (`mincore`), so it can be read.
fn mapped(addr: usize, len: usize) -> bool {
    let mut v = vec![0u8; len.div_ceil(PAGE)];
    // SAFETY: mincore only writes one byte per page into `v`; it reads no memory.
    unsafe { libc::mincore(addr as *mut libc::c_void, len, v.as_mut_ptr()) == 0 }
}

fn mmap(hint: usize, len: usize) -> Option<usize> {
    let flags = libc::MAP_PRIVATE
        | libc::MAP_ANONYMOUS
        | if hint != 0 {
            libc::MAP_FIXED_NOREPLACE
        } else {
            0
        };
    // SAFETY: without MAP_FIXED nothing existing is replaced (NOREPLACE fails instead).
    let p = unsafe {
        libc::mmap(
            hint as *mut libc::c_void,
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            flags,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return None;
    }
    if hint != 0 && p as usize != hint {
        // SAFETY: the mapping we just made, elsewhere than asked (old kernel).
        unsafe { libc::munmap(p, len) };
        return None;
    }
    Some(p as usize)
}

/// A mapping of the "other thread", filled with one byte value.
struct Foreign {
    addr: usize,
    len: usize,
    byte: u8,
}

impl Foreign {
    fn new(addr: usize, len: usize, byte: u8) -> Foreign {
        // SAFETY: our own fresh read-write mapping of `len` bytes.
        unsafe { core::slice::from_raw_parts_mut(addr as *mut u8, len) }.fill(byte);
        Foreign { addr, len, byte }
    }

    /// `Err` with what went wrong: unmapped, or a byte changed.
    fn verify(&self) -> Result<(), String> {
        if !mapped(self.addr, self.len) {
            return Err(format!("{:#x}+{:#x} was unmapped", self.addr, self.len));
        }
        // SAFETY: mapped just now, and only the crate under test could unmap it (which is
        // the bug this test looks for; mincore above catches most such cases first).
        let bytes = unsafe { core::slice::from_raw_parts(self.addr as *const u8, self.len) };
        match bytes.iter().position(|&b| b != self.byte) {
            Some(i) => Err(format!(
                "{:#x}+{:#x}: byte {i} is {} instead of {}",
                self.addr, self.len, bytes[i], self.byte
            )),
            None => Ok(()),
        }
    }
}

impl Drop for Foreign {
    fn drop(&mut self) {
        // SAFETY: our own mapping (verified intact before the test drops it).
        unsafe { libc::munmap(self.addr as *mut libc::c_void, self.len) };
    }
}

/// A thread that maps `len` bytes at `target` with MAP_FIXED_NOREPLACE as soon as that range
/// is free (polling), fills it, and keeps every mapping it got, verifying them all the time.
struct Grabber {
    target: Arc<AtomicUsize>,
    len: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<(Vec<Foreign>, Vec<String>)>,
}

impl Grabber {
    fn start() -> Grabber {
        let target = Arc::new(AtomicUsize::new(0));
        let len = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (target, len, stop) = (target.clone(), len.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut got: Vec<Foreign> = Vec::new();
                let mut errors = Vec::new();
                let mut spins = 0u64;
                while !stop.load(Ordering::Acquire) {
                    let (t, l) = (target.load(Ordering::Acquire), len.load(Ordering::Acquire));
                    if t != 0 && l != 0 && mmap(t, l).is_some() {
                        got.push(Foreign::new(t, l, 0x40 + (got.len() % 64) as u8));
                        let _ = target.compare_exchange(t, 0, Ordering::AcqRel, Ordering::Relaxed);
                    }
                    spins += 1;
                    if spins.is_multiple_of(64) {
                        for f in &got {
                            if let Err(e) = f.verify() {
                                errors.push(e);
                            }
                        }
                        if !errors.is_empty() {
                            break;
                        }
                    }
                }
                (got, errors)
            })
        };
        Grabber {
            target,
            len,
            stop,
            thread,
        }
    }

    /// Asks the thread to map `[addr, addr + len)` once it is free.
    fn aim(&self, addr: usize, len: usize) {
        self.target.store(0, Ordering::Release);
        self.len.store(len, Ordering::Release);
        self.target.store(addr, Ordering::Release);
    }

    /// Stops the thread, checks every mapping it made one last time, and returns how many.
    fn finish(self) -> usize {
        self.stop.store(true, Ordering::Release);
        let (got, mut errors) = self.thread.join().unwrap();
        for f in &got {
            if let Err(e) = f.verify() {
                errors.push(e);
            }
        }
        if !errors.is_empty() {
            // Leak the mappings: some may not be ours any more.
            core::mem::forget(got);
            panic!("foreign memory was touched: {errors:?}");
        }
        got.len()
    }
}

fn deadline(secs: u64) -> Instant {
    Instant::now() + Duration::from_secs(if valgrind() { secs.min(2) } else { secs })
}

/// Defect 5: a region grows by moving; another thread maps exactly the range it vacated.
/// The arena must fence that range: never hand it to `alloc` (which would zero it), never
/// unmap it (drop), never move it (arena relocation).
#[test]
fn grow_by_moving_never_adopts_the_mapping_another_thread_put_in_the_vacated_range() {
    let _g = serial();
    let grabber = Grabber::start();
    let end = deadline(4);
    let mut rounds = 0;
    while Instant::now() < end {
        let mut a = PageArena::with_options(ArenaOptions::new().initial_capacity(4 << 20));
        for _ in 0..16 {
            let len = PAGE * (1 + rounds % 4);
            let x = a.alloc(len).unwrap();
            let _y = a.alloc(PAGE).unwrap(); // right after x: x must move to grow
            a.get_mut(x).unwrap().fill(1);
            let old = a.get(x).unwrap().as_ptr() as usize;
            grabber.aim(old, len);
            a.grow(x, len + 64 * PAGE).unwrap();
            assert!(a.get(x).unwrap()[..len].iter().all(|&b| b == 1));
            // Allocations of the vacated size: on a range adopted by mistake, they zero it.
            for _ in 0..3 {
                let z = a.alloc(len).unwrap();
                a.get_mut(z).unwrap().fill(2);
            }
            rounds += 1;
        }
        a.compact().unwrap();
        // Force the whole arena to move (relocation must leave the fences alone).
        let big = a.alloc(64 << 20).unwrap();
        a.get_mut(big).unwrap()[0] = 3;
        drop(a);
    }
    let got = grabber.finish();
    eprintln!("{rounds} moves, {got} vacated ranges mapped by the other thread");
}

/// Defect 5 through `compact()`: the other thread maps the range the last region of a run
/// vacates (a run moves through scratch space first, then to its target).
#[test]
fn compaction_never_adopts_the_mapping_another_thread_put_in_a_vacated_range() {
    let _g = serial();
    let grabber = Grabber::start();
    let end = deadline(4);
    let mut rounds = 0;
    while Instant::now() < end {
        for cost in [CostModel::remap_only(), CostModel::default()] {
            let mut a = PageArena::with_options(
                ArenaOptions::new()
                    .initial_capacity(8 << 20)
                    .cost_model(cost),
            );
            let region = 16 * PAGE;
            let ids: Vec<RegionId> = (0..8).map(|_| a.alloc(region).unwrap()).collect();
            for (k, id) in ids.iter().enumerate() {
                a.get_mut(*id).unwrap().fill(10 + k as u8);
            }
            a.free(ids[0]).unwrap();
            let last = a.get(ids[7]).unwrap().as_ptr() as usize;
            grabber.aim(last, region);
            a.compact().unwrap();
            for (k, id) in ids.iter().enumerate().skip(1) {
                assert!(a.get(*id).unwrap().iter().all(|&b| b == 10 + k as u8));
            }
            // Allocations of the vacated size, growth, another compaction, drop.
            for _ in 0..4 {
                let z = a.alloc(region).unwrap();
                a.get_mut(z).unwrap().fill(7);
            }
            a.grow(ids[1], 40 * region).unwrap();
            a.compact().unwrap();
            drop(a);
            rounds += 1;
        }
    }
    let got = grabber.finish();
    eprintln!("{rounds} compactions, {got} vacated ranges mapped by the other thread");
}

/// Defect 2: `CostModel::measure()` (public, safe) moved scratch mappings back and forth with
/// `MREMAP_FIXED` onto ranges it had vacated and unmapped them at the end. Another thread maps
/// 1 MiB and 4 KiB buffers (where glibc would put a `Vec`'s) and mapped-at-hint ranges at the
/// addresses it saw freed, and verifies every byte, while `measure()` runs in a loop.
#[test]
fn cost_model_measure_never_touches_other_threads_memory() {
    let _g = serial();
    let stop = Arc::new(AtomicBool::new(false));
    let measurer = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(Ordering::Acquire) {
                let m = CostModel::measure();
                assert!(m.syscall_ns.is_finite() && m.copy_ns_per_page.is_finite());
                n += 1;
            }
            n
        })
    };
    let end = deadline(4);
    let mut live: Vec<Foreign> = Vec::new();
    let mut seen: Vec<(usize, usize)> = Vec::new();
    let mut k = 0usize;
    let mut errors = Vec::new();
    while Instant::now() < end && errors.is_empty() {
        k += 1;
        let len = match k % 3 {
            0 => PAGE,
            1 => 1 << 20,
            _ => 257 * PAGE,
        };
        // Plain mmap (the kernel reuses the addresses measure just vacated), or a hint at an
        // address seen before.
        let hinted = k
            .is_multiple_of(2)
            .then(|| seen.get(k % seen.len().max(1)).copied())
            .flatten();
        let got = match hinted {
            Some((addr, l)) => mmap(addr, l).map(|p| (p, l)),
            None => mmap(0, len).map(|p| (p, len)),
        };
        if let Some((p, l)) = got {
            live.push(Foreign::new(p, l, (k % 251) as u8 + 1));
            if seen.len() < 64 {
                seen.push((p, l));
            } else {
                seen[k % 64] = (p, l);
            }
        }
        for f in &live {
            if let Err(e) = f.verify() {
                errors.push(e);
            }
        }
        if live.len() > 8 {
            live.remove(k % live.len());
        }
    }
    stop.store(true, Ordering::Release);
    let n = measurer.join().unwrap();
    for f in &live {
        if let Err(e) = f.verify() {
            errors.push(e);
        }
    }
    if !errors.is_empty() {
        core::mem::forget(live);
        panic!("measure() touched another thread's memory: {errors:?}");
    }
    eprintln!("{n} measurements, {k} foreign mappings");
}

/// Defect 10: alignments of 64 GiB and 1 TiB come back aligned (or as an error), never
/// misaligned; so do many 16 MiB ones.
#[test]
fn alloc_aligned_aligns_addresses() {
    let _g = serial();
    for align in [16usize << 20, 1 << 30, 64 << 30, 1 << 40] {
        let mut a = PageArena::new();
        let _first = a.alloc(PAGE).unwrap();
        for k in 0..8 {
            match a.alloc_aligned(PAGE * (1 + k), align) {
                Ok(id) => {
                    let p = a.get(id).unwrap().as_ptr() as usize;
                    assert_eq!(p % align, 0, "alignment {align:#x}: {p:#x}");
                    a.get_mut(id).unwrap()[0] = 1;
                }
                Err(e) => eprintln!("alignment {align:#x}: {e}"),
            }
            if align >= 64 << 30 && k == 1 {
                break;
            }
        }
    }
    let mut a = PageArena::new();
    assert!(matches!(
        a.alloc_aligned(PAGE, 1 << (usize::BITS - 1)),
        Err(remapvec::ArenaError::InvalidAlign(_))
    ));
}

/// Defect 12: a region id carries a 64-bit arena number.
#[test]
fn region_ids_are_16_bytes() {
    assert_eq!(core::mem::size_of::<RegionId>(), 16);
}
