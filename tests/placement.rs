//! Placement: regions of 2 MiB and more are placed with room after them, so grows happen in
//! place even while the program makes unrelated mappings (smaller ones are packed densely by the
//! kernel and move when they grow); and many small vectors cost no mappings.

use remapvec::RemapVec;
use std::sync::Mutex;

/// The tests here count the process's mappings; they must not run at the same time.
static SERIAL: Mutex<()> = Mutex::new(());

fn count_mappings() -> usize {
    std::fs::read_to_string("/proc/self/maps")
        .unwrap()
        .lines()
        .count()
}

#[cfg(all(target_os = "linux", not(feature = "force-fallback")))]
#[test]
fn most_grows_are_in_place_while_other_mappings_are_made() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // From 2 MiB on: regions below that are packed by the kernel and move when they grow.
    let opts = remapvec::VecOptions::new().reuse_freed(false);
    let mut vs: Vec<RemapVec<u8>> = (0..100)
        .map(|_| RemapVec::with_capacity_and_options(2 << 20, opts))
        .collect();
    let mut others: Vec<Vec<u8>> = Vec::new();
    let mut raw_maps = Vec::new();
    for round in 0..3u8 {
        for v in vs.iter_mut() {
            let cap = v.capacity();
            v.resize(cap, round); // the vector is full and used
            v.reserve(1); // doubles
            // Unrelated mappings between grows: glibc mmaps chunks of 1 MiB (above its mmap
            // threshold), and a plain anonymous mmap.
            others.push(vec![round; 1 << 20]);
            // SAFETY: a fresh anonymous mapping with no hint; unmapped at the end.
            let p = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    64 << 10,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                    -1,
                    0,
                )
            };
            assert_ne!(p, libc::MAP_FAILED);
            raw_maps.push(p);
        }
    }
    let mut total = remapvec::GrowStats::default();
    for v in &vs {
        total += v.stats();
    }
    for (i, v) in vs.iter().enumerate() {
        assert_eq!(v.len(), (2 << 20) * 4, "vector {i}");
        assert_eq!(v[0], 0);
        assert_eq!(*v.last().unwrap(), 2);
    }
    for p in raw_maps {
        // SAFETY: our own mappings from above.
        unsafe { libc::munmap(p, 64 << 10) };
    }
    println!("{total:?}: in-place share {:.3}", total.in_place_share());
    assert_eq!(total.grows(), 300);
    assert_eq!(total.copied, 0, "{total:?}");
    assert!(total.in_place_share() >= 0.95, "{total:?}");
}

#[test]
fn a_million_small_vectors_cost_no_mappings() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let before = count_mappings();
    let vs: Vec<RemapVec<u64>> = (0..1_000_000u64)
        .map(|i| RemapVec::from([i, i + 1, i + 2]))
        .collect();
    let during = count_mappings();
    assert!(vs.iter().all(|v| !v.is_mapped()));
    assert_eq!(vs[999_999], [999_999, 1_000_000, 1_000_001]);
    // The heap itself may add a few mappings; a mapping per vector would add a million.
    assert!(during < before + 100, "{before} -> {during} mappings");
}

#[test]
fn a_vector_mapped_then_shrunk_gives_its_mapping_back() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let before = count_mappings();
    let mut v: RemapVec<u8> = RemapVec::with_capacity(8 << 20);
    assert!(v.is_mapped());
    v.extend_from_slice(&[1, 2, 3]);
    v.shrink_to_fit();
    assert!(!v.is_mapped());
    assert_eq!(v, [1, 2, 3]);
    assert!(count_mappings() <= before + 1);
}
