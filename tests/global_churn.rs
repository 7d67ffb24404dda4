//! `RemapAlloc` as the global allocator (default 128 KiB threshold) under the workloads the
//! recycler of freed mappings is for: allocate / fill / free churn from 8 threads with content
//! checks, zeroed blocks handed out from dirty kept mappings, many live blocks (page-table
//! memory and mapping calls against what glibc needs), and `fork` while other threads churn.

use remapvec::RemapAlloc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::{Duration, Instant};

#[global_allocator]
static GLOBAL: RemapAlloc = RemapAlloc::new();

type Stats = RemapAlloc<std::alloc::System>;

/// Tests that count mappings or page tables run one at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|s| s.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn eight_threads_churn_large_blocks_and_every_byte_survives() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let before = Stats::stats();
    let threads: Vec<_> = (0..8u64)
        .map(|t| {
            std::thread::spawn(move || {
                let mut seed = t * 7919 + 1;
                let mut live: Vec<Vec<u64>> = Vec::new();
                for i in 0..400u64 {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    // 128 KiB .. 4 MiB
                    let words = (16 << 10) + (seed % (512 << 10)) as usize;
                    let tag = (t << 32) | i;
                    let mut v = Vec::with_capacity(words);
                    v.extend((0..words as u64).map(|k| tag ^ k));
                    live.push(v);
                    if live.len() > 3 {
                        let v = live.swap_remove((seed % 4) as usize);
                        let tag = v[0];
                        assert!(
                            v.iter().enumerate().all(|(k, &x)| x == tag ^ k as u64),
                            "a live block changed under churn"
                        );
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let after = Stats::stats();
    let cache = remapvec::cache_stats();
    assert!(after.large_allocs - before.large_allocs >= 3200);
    assert!(
        cache.hits > 0,
        "the recycler never served a block: {cache:?}"
    );
    assert!(cache.kept_bytes <= cache.limit_bytes, "{cache:?}");
}

#[test]
fn zeroed_blocks_from_dirty_kept_mappings_read_zero() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    for size in [128 << 10, 300 << 10, 1 << 20, 5 << 20] {
        for _ in 0..4 {
            let mut dirty = vec![0xFFu8; size];
            std::hint::black_box(&mut dirty);
            drop(dirty); // kept, every byte 0xFF
            let zeroed = vec![0u8; size]; // alloc_zeroed: may get the dirty mapping
            assert!(
                zeroed.iter().all(|&b| b == 0),
                "{size}: dirty bytes in a zeroed block"
            );
            // A realloc that grows a block must not expose old bytes either.
            let mut small = vec![0u8; size / 2];
            small.resize(size, 0);
            assert!(small.iter().all(|&b| b == 0));
        }
    }
}

/// Zeroed blocks of other sizes than the dirty kept mapping: trimmed from a larger one (its
/// dirty extent shortened with it), grown from a smaller one (the old pages dirty, the new ones
/// fresh), or made of pieces joined again, read zero everywhere.
#[test]
fn zeroed_blocks_trimmed_grown_or_joined_from_dirty_kept_mappings_read_zero() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    for (dirty, asked) in [
        (5 << 20, 1 << 20),
        (5 << 20, 7 << 20),
        (300 << 10, 2 << 20),
        (8 << 20, (3 << 20) + 5),
    ] {
        let mut d = vec![0xA5u8; dirty];
        std::hint::black_box(&mut d);
        drop(d);
        let z = vec![0u8; asked];
        assert!(
            z.iter().all(|&b| b == 0),
            "{asked} bytes zeroed after {dirty} dirty ones"
        );
        // A dirty block taken from the same kept memory, then freed: it joins the rest again.
        let mut d = vec![0x5Au8; asked / 2 + 1];
        std::hint::black_box(&mut d);
        drop((z, d));
        let z = vec![0u8; dirty];
        assert!(
            z.iter().all(|&b| b == 0),
            "{dirty} bytes zeroed after joins"
        );
    }
}

/// 12 000 live 128 KiB blocks, one byte written in each: the page tables they need are within
/// twice what glibc needs (96 MB before, when each sat alone in a 4 GiB slot).
#[test]
fn many_live_blocks_cost_few_page_tables_and_no_failing_mmaps() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    remapvec::release_cached();
    let pte_before = status_kib("VmPTE:");
    let calls_before = Stats::stats().growth.syscalls;
    let mut blocks: Vec<Vec<u8>> = Vec::with_capacity(12_000);
    for i in 0..12_000 {
        let mut b = Vec::with_capacity(128 << 10);
        b.push(i as u8);
        blocks.push(b);
    }
    let pte = status_kib("VmPTE:").saturating_sub(pte_before);
    let calls = Stats::stats().growth.syscalls - calls_before;
    // glibc: ~2 page-table pages per MiB of 128 KiB blocks packed densely ≈ 12 000 × 128 KiB /
    // 2 MiB × 4 KiB ≈ 3 MB; measured 3 MB on the development machine.
    assert!(pte < 8 << 10, "{pte} KiB of page tables for 12 000 blocks");
    // One mmap per block, no failing placement attempts.
    assert!(
        calls <= 12_000 * 6 / 5,
        "{calls} mapping calls for 12 000 blocks"
    );
    assert!(blocks.iter().enumerate().all(|(i, b)| b[0] == i as u8));
}

/// A child forked while other threads allocate and free large blocks can allocate, free and
/// exit: nothing on the allocation path can be left locked by the fork.
#[test]
fn fork_while_threads_churn_never_hangs_the_child() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let stop = Arc::new(AtomicBool::new(false));
    let churners: Vec<_> = (0..3)
        .map(|t| {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                let mut n = 0usize;
                while !stop.load(Relaxed) {
                    let size = (128 << 10) << (n % 5);
                    let mut v = vec![t as u8; size];
                    v[size - 1] = 1;
                    std::hint::black_box(&v);
                    n += 1;
                }
            })
        })
        .collect();
    for round in 0..40 {
        // SAFETY: the child only allocates, frees and leaves with _exit.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            let mut ok = true;
            for k in 0..8 {
                let v = vec![k as u8; (128 << 10) << (k % 5)];
                ok &= v.iter().all(|&b| b == k as u8);
            }
            // SAFETY: ends the child without running the parent's destructors.
            unsafe { libc::_exit(if ok { 0 } else { 3 }) };
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut status = 0;
        loop {
            // SAFETY: our own child.
            if unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) } == pid {
                break;
            }
            if Instant::now() > deadline {
                // SAFETY: our own child.
                unsafe { libc::kill(pid, libc::SIGKILL) };
                stop.store(true, Relaxed);
                panic!("child of fork {round} hung for 10 s");
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
    }
    stop.store(true, Relaxed);
    for t in churners {
        t.join().unwrap();
    }
}
