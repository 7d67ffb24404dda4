//! Edge cases of the recycler's mixed-size paths: a kept region grown for a larger request
//! keeps the request's alignment and gets room to grow, and kept memory idle past the decay
//! delay goes back to the kernel even while pieces cut from it keep coming back.
#![cfg(all(target_os = "linux", not(feature = "force-fallback")))]

use remapvec::{RemapAlloc, RemapVec};
use std::alloc::{GlobalAlloc, Layout};
use std::sync::Mutex;

const MIB: usize = 1 << 20;

/// The recycler is process-wide: these tests must not empty it under each other.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Maps a page at `addr` if nothing is there (as another thread might), so that a block
/// ending there cannot grow in place. Null when the page was taken already.
fn block_at(addr: usize) -> *mut libc::c_void {
    // SAFETY: MAP_FIXED_NOREPLACE replaces nothing; the page is ours if it succeeds.
    let p = unsafe {
        libc::mmap(
            addr as *mut _,
            4096,
            libc::PROT_READ,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED_NOREPLACE,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        std::ptr::null_mut()
    } else {
        p
    }
}

fn unblock(p: *mut libc::c_void) {
    if !p.is_null() {
        // SAFETY: `p` is the page `block_at` mapped.
        unsafe { libc::munmap(p, 4096) };
    }
}

#[test]
fn a_kept_block_grown_for_an_over_aligned_request_is_aligned() {
    let _s = serial();
    let a = RemapAlloc::new();
    let small = Layout::from_size_align(2 * MIB, 4096).unwrap();
    let big = Layout::from_size_align(5 * MIB, 2 * MIB).unwrap();
    for _ in 0..8 {
        remapvec::release_cached();
        // SAFETY: valid layouts; every block is freed with its layout.
        unsafe {
            let p = a.alloc(small);
            assert!(!p.is_null());
            let blocker = block_at(p as usize + small.size());
            a.dealloc(p, small);
            let q = a.alloc(big);
            assert!(!q.is_null());
            assert_eq!(q as usize % big.align(), 0, "{q:?} for {big:?}");
            q.write_bytes(7, big.size());
            a.dealloc(q, big);
            unblock(blocker);
        }
    }
}

#[test]
fn an_over_aligned_vector_from_a_kept_block_is_aligned() {
    #[repr(C, align(8388608))]
    struct Big([u8; 8 << 20]);
    let _s = serial();
    let a = RemapAlloc::new();
    let small = Layout::from_size_align(2 * MIB, 4096).unwrap();
    for _ in 0..16 {
        remapvec::release_cached();
        // SAFETY: valid layout; the block is freed with it.
        let p = unsafe { a.alloc(small) };
        assert!(!p.is_null());
        let blocker = block_at(p as usize + small.size());
        // SAFETY: as above.
        unsafe { a.dealloc(p, small) };
        let v: RemapVec<Big> = RemapVec::with_capacity(1);
        assert_eq!(
            v.as_ptr() as usize % align_of::<Big>(),
            0,
            "{:?}",
            v.as_ptr()
        );
        drop(v);
        unblock(blocker);
    }
}

#[test]
fn a_large_block_grown_from_a_small_kept_one_is_placed_with_room() {
    let _s = serial();
    let a = RemapAlloc::new();
    let small = Layout::from_size_align(MIB, 8).unwrap();
    let big = Layout::from_size_align(5 * MIB, 8).unwrap();
    remapvec::release_cached();
    // SAFETY: valid layouts; every block is freed with its layout.
    unsafe {
        let p = a.alloc(small);
        assert!(!p.is_null());
        p.write_bytes(3, small.size());
        let blocker = block_at(p as usize + small.size());
        a.dealloc(p, small);
        let before = remapvec::cache_stats();
        let q = a.alloc(big);
        assert!(!q.is_null());
        if remapvec::cache_stats().grown > before.grown {
            // Moved, not grown in place (the page after it is taken): into a reservation.
            assert_eq!(q as usize % (2 * MIB), 0, "5 MiB block at {q:?}");
        }
        q.write_bytes(4, big.size());
        a.dealloc(q, big);
        unblock(blocker);
    }
}

#[test]
fn idle_kept_memory_decays_while_pieces_cut_from_it_come_back() {
    let _s = serial();
    let a = RemapAlloc::new();
    let big = Layout::from_size_align(200 * MIB, 4096).unwrap();
    let small = Layout::from_size_align(MIB, 4096).unwrap();
    remapvec::release_cached();
    let delay = remapvec::CacheConfig::current().get_decay_ms();
    // SAFETY: valid layouts; every block is freed with its layout.
    unsafe {
        let p = a.alloc(big);
        assert!(!p.is_null());
        p.write_bytes(1, big.size());
        a.dealloc(p, big);
    }
    let before = remapvec::cache_stats();
    // Only 1 MiB buffers from now on, each cut from the idle 200 MiB, for 3 decay delays.
    let rounds = 30;
    for _ in 0..rounds {
        // SAFETY: as above.
        unsafe {
            let q = a.alloc(small);
            assert!(!q.is_null());
            q.write_bytes(2, small.size());
            a.dealloc(q, small);
        }
        std::thread::sleep(std::time::Duration::from_millis(delay.max(1) * 3 / rounds));
    }
    let after = remapvec::cache_stats();
    assert!(
        after.kept_bytes < 100 * MIB,
        "idle for 3 decay delays ({delay} ms) yet {} bytes kept, {} regions decayed",
        after.kept_bytes,
        after.decayed - before.decayed
    );
}
