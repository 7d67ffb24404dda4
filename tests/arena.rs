//! PageArena and SharedArena through the public API: cases in the spirit of the kernel's
//! mremap selftest, a mapping next to the arena, a model test against a HashMap, scale, and
//! threads.

use proptest::prelude::*;
use remapvec::{ArenaOptions, CostModel, PageArena, RegionId, SharedArena};
use std::collections::HashMap;
use std::sync::Arc;

const KIB: usize = 1 << 10;
const MIB: usize = 1 << 20;

/// Serializes the tests that count mappings or need a lot of them.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn write_pattern(a: &mut PageArena, id: RegionId, seed: u64) -> Vec<u8> {
    let len = a.get(id).unwrap().len();
    let p = pattern(seed, len);
    a.get_mut(id).unwrap().copy_from_slice(&p);
    p
}

fn all_options() -> Vec<ArenaOptions> {
    let mut v = Vec::new();
    for multi in [true, false] {
        for cost in [
            CostModel::default(),
            CostModel::remap_only(),
            CostModel::copy_only(),
        ] {
            v.push(
                ArenaOptions::new()
                    .multi_mapping_move(multi)
                    .cost_model(cost)
                    .initial_capacity(16 * MIB),
            );
        }
    }
    v
}

/// A mapping right after the arena's range, filled with a pattern.
struct Neighbour {
    addr: usize,
    len: usize,
}

impl Neighbour {
    fn at(addr: usize) -> Option<Neighbour> {
        let len = 2 * 4096;
        // SAFETY: MAP_FIXED_NOREPLACE never replaces an existing mapping.
        let p = unsafe {
            libc::mmap(
                addr as *mut libc::c_void,
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED_NOREPLACE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED || p as usize != addr {
            return None;
        }
        // SAFETY: our fresh mapping of `len` bytes.
        unsafe { core::slice::from_raw_parts_mut(p.cast::<u8>(), len) }.fill(0xA5);
        Some(Neighbour { addr, len })
    }

    fn intact(&self) -> bool {
        // SAFETY: the mapping is ours until drop; the test checks it was never replaced.
        unsafe { core::slice::from_raw_parts(self.addr as *const u8, self.len) }
            .iter()
            .all(|&b| b == 0xA5)
    }
}

impl Drop for Neighbour {
    fn drop(&mut self) {
        // SAFETY: our own mapping.
        unsafe { libc::munmap(self.addr as *mut libc::c_void, self.len) };
    }
}

fn check_all(a: &PageArena, model: &HashMap<RegionId, Vec<u8>>) {
    assert_eq!(a.len(), model.len());
    for (id, want) in model {
        let got = a.get(*id).unwrap_or_else(|| panic!("{id:?} is live"));
        assert!(got == &want[..], "contents of {id:?}");
    }
    let sum: usize = model.values().map(Vec::len).sum();
    assert_eq!(a.live_bytes(), sum);
}

/// Regions of 8 KiB, 2 MiB, 4 MiB, 5 MiB, with and without 2 MiB alignment, grown, shrunk,
/// freed and compacted, with a mapping right after the arena that must survive everything,
/// and every pattern checked after every step.
#[test]
fn selftest_sizes_alignments_and_a_neighbour() {
    let _g = serial();
    for opts in all_options() {
        let mut a = PageArena::with_options(opts);
        let mut model = HashMap::new();
        let first = a.alloc(8 * KIB).unwrap();
        model.insert(first, write_pattern(&mut a, first, 1));
        let neighbour = Neighbour::at(a.address_range().end);
        // Only the Linux backend places the arena where the addresses after it are free.
        if remapvec::sys::features().mremap {
            assert!(neighbour.is_some(), "the arena has free addresses after it");
        }
        let mut seed = 2;
        for &len in &[8 * KIB, 2 * MIB, 4 * MIB, 5 * MIB] {
            for aligned in [false, true] {
                let id = if aligned {
                    a.alloc_aligned(len, 2 * MIB).unwrap()
                } else {
                    a.alloc(len).unwrap()
                };
                if aligned {
                    assert_eq!(a.get(id).unwrap().as_ptr() as usize % (2 * MIB), 0);
                }
                seed += 1;
                model.insert(id, write_pattern(&mut a, id, seed));
                check_all(&a, &model);
            }
        }
        let ids: Vec<RegionId> = a.iter().map(|(id, _)| id).collect();
        // Grow every other region (moves, in place, arena growth past the neighbour).
        for (k, id) in ids.iter().enumerate() {
            if k % 2 == 1 {
                let len = a.get(*id).unwrap().len();
                a.grow(*id, len + 3 * MIB).unwrap();
                model.get_mut(id).unwrap().resize(len + 3 * MIB, 0);
                check_all(&a, &model);
            }
        }
        // Free a third, shrink a third.
        for (k, id) in ids.iter().enumerate() {
            match k % 3 {
                0 => {
                    a.free(*id).unwrap();
                    model.remove(id);
                }
                1 => {
                    a.shrink(*id, 4097).unwrap();
                    model.get_mut(id).unwrap().truncate(4097);
                }
                _ => {}
            }
            check_all(&a, &model);
        }
        let r = a.compact().unwrap();
        check_all(&a, &model);
        assert!(r.regions_moved > 0);
        // Moving next to itself: free the first region, so that every other one moves by
        // less than its own length (source and destination overlap).
        let first = a.iter().next().unwrap().0;
        a.free(first).unwrap();
        model.remove(&first);
        a.compact().unwrap();
        check_all(&a, &model);
        if let Some(n) = &neighbour {
            assert!(n.intact(), "the mapping after the arena survived");
        }
        assert!(
            a.stats().arena.moved > 0,
            "the neighbour made the arena move"
        );
    }
}

#[derive(Clone, Debug)]
enum Op {
    Alloc(usize, bool),
    Grow(usize, usize),
    Shrink(usize, usize),
    Free(usize),
    Write(usize, u8),
    Compact,
}

fn op() -> impl Strategy<Value = Op> {
    let len = prop_oneof![
        0..64usize,
        1..40_000usize,
        (1..6usize).prop_map(|m| m * MIB + 7)
    ];
    prop_oneof![
        4 => (len.clone(), any::<bool>()).prop_map(|(l, a)| Op::Alloc(l, a)),
        3 => (any::<usize>(), len.clone()).prop_map(|(i, l)| Op::Grow(i, l)),
        2 => (any::<usize>(), len).prop_map(|(i, l)| Op::Shrink(i, l)),
        3 => any::<usize>().prop_map(Op::Free),
        2 => (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Op::Write(i, b)),
        1 => Just(Op::Compact),
    ]
}

fn run_model(opts: ArenaOptions, ops: &[Op]) {
    let mut a = PageArena::with_options(opts);
    let mut model: HashMap<RegionId, Vec<u8>> = HashMap::new();
    let mut ids: Vec<RegionId> = Vec::new();
    let mut dead: Vec<RegionId> = Vec::new();
    for op in ops {
        let pick = |i: usize, ids: &[RegionId]| (!ids.is_empty()).then(|| ids[i % ids.len()]);
        match *op {
            Op::Alloc(len, aligned) => {
                let id = if aligned {
                    a.alloc_aligned(len, 2 * MIB).unwrap()
                } else {
                    a.alloc(len).unwrap()
                };
                ids.push(id);
                model.insert(id, vec![0; len]);
            }
            Op::Grow(i, add) => {
                if let Some(id) = pick(i, &ids) {
                    let v = model.get_mut(&id).unwrap();
                    a.grow(id, v.len() + add).unwrap();
                    v.resize(v.len() + add, 0);
                }
            }
            Op::Shrink(i, by) => {
                if let Some(id) = pick(i, &ids) {
                    let v = model.get_mut(&id).unwrap();
                    let new = v.len().saturating_sub(by);
                    a.shrink(id, new).unwrap();
                    v.truncate(new);
                }
            }
            Op::Free(i) => {
                if let Some(id) = pick(i, &ids) {
                    a.free(id).unwrap();
                    model.remove(&id);
                    ids.retain(|&x| x != id);
                    dead.push(id);
                }
            }
            Op::Write(i, b) => {
                if let Some(id) = pick(i, &ids) {
                    let v = model.get_mut(&id).unwrap();
                    let bytes = a.get_mut(id).unwrap();
                    // Write at the start, the middle and the end.
                    for pos in [0, bytes.len() / 2, bytes.len().saturating_sub(1)] {
                        if pos < bytes.len() {
                            bytes[pos] = b;
                            v[pos] = b;
                        }
                    }
                }
            }
            Op::Compact => {
                a.compact().unwrap();
                // Packed: a second compaction finds nothing to move.
                assert_eq!(a.compact().unwrap().regions_moved, 0);
            }
        }
        check_all(&a, &model);
        for id in &dead {
            assert!(a.get(*id).is_none() && !a.contains(*id));
        }
    }
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(48)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn model_default(ops in proptest::collection::vec(op(), 1..60)) {
        let _g = serial();
        run_model(ArenaOptions::new().initial_capacity(8 * MIB), &ops);
    }

    #[test]
    fn model_one_call_per_region_remap_only(ops in proptest::collection::vec(op(), 1..60)) {
        let _g = serial();
        run_model(
            ArenaOptions::new().initial_capacity(MIB).multi_mapping_move(false).cost_model(CostModel::remap_only()),
            &ops,
        );
    }

    #[test]
    fn model_copy_only(ops in proptest::collection::vec(op(), 1..60)) {
        let _g = serial();
        run_model(ArenaOptions::new().initial_capacity(MIB).cost_model(CostModel::copy_only()), &ops);
    }
}

#[cfg(target_os = "linux")]
fn mappings() -> usize {
    std::fs::read_to_string("/proc/self/maps")
        .map(|s| s.lines().count())
        .unwrap_or(0)
}

/// Mappings of this process that overlap `range` (other threads' mappings elsewhere do not
/// count).
#[cfg(target_os = "linux")]
fn mappings_in(range: core::ops::Range<usize>) -> usize {
    std::fs::read_to_string("/proc/self/maps")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (lo, hi) = l.split_whitespace().next()?.split_once('-')?;
            Some((
                usize::from_str_radix(lo, 16).ok()?,
                usize::from_str_radix(hi, 16).ok()?,
            ))
        })
        .filter(|&(lo, hi)| lo < range.end && range.start < hi)
        .count()
}

/// 50 000 regions; free every other one; compact across 25 000 holes, remapping and
/// copying; contents checked by first and last byte of every region.
#[test]
fn fifty_thousand_regions_and_thousands_of_holes() {
    let _g = serial();
    for cost in [CostModel::default(), CostModel::remap_only()] {
        let mut a = PageArena::with_options(ArenaOptions::new().cost_model(cost));
        let n = 50_000;
        let mut ids = Vec::with_capacity(n);
        for k in 0..n {
            let len = 4096 * (1 + k % 3);
            let id = a.alloc(len).unwrap();
            let b = a.get_mut(id).unwrap();
            b[0] = k as u8;
            b[len - 1] = (k >> 8) as u8;
            ids.push(id);
        }
        #[cfg(target_os = "linux")]
        let before = mappings();
        for id in ids.iter().step_by(2) {
            a.free(*id).unwrap();
        }
        assert!(a.holes() > 20_000);
        let r = a.compact().unwrap();
        assert_eq!(r.regions_moved, n / 2);
        assert!(r.holes_closed() > 20_000, "{r:?}");
        assert_eq!(a.fragmentation(), 0.0);
        for (k, id) in ids.iter().enumerate() {
            if k % 2 == 1 {
                let b = a.get(*id).unwrap();
                assert_eq!((b[0], b[b.len() - 1]), (k as u8, (k >> 8) as u8));
            } else {
                assert!(a.get(*id).is_none());
            }
        }
        #[cfg(target_os = "linux")]
        {
            // Copied regions land in one fresh mapping; remapped ones stay a mapping each.
            let after = mappings();
            assert!(after <= before + n / 2 + 16, "{before} -> {after}");
        }
        eprintln!("50k regions, {cost:?}: {r:?}");
    }
}

/// Threads allocate, grow, write with checksums, free, while one thread compacts.
#[test]
fn shared_arena_under_threads() {
    let _g = serial();
    let arena = Arc::new(SharedArena::new());
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let compactor = {
        let (arena, stop) = (Arc::clone(&arena), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                arena.compact().unwrap();
                n += 1;
                std::thread::yield_now();
            }
            n
        })
    };
    let workers: Vec<_> = (0..4u64)
        .map(|t| {
            let arena = Arc::clone(&arena);
            std::thread::spawn(move || {
                let mut mine: Vec<(RegionId, u64)> = Vec::new();
                let mut x = t + 1;
                for step in 0..400u64 {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    match x % 5 {
                        0 | 1 => {
                            let len = 1 + (x as usize % (300 * KIB));
                            let id = arena.alloc(len).unwrap();
                            let seed = t * 1_000_000 + step;
                            let sum = arena
                                .write(id, |b| {
                                    let p = pattern(seed, b.len());
                                    b.copy_from_slice(&p);
                                    p.iter().map(|&v| v as u64).sum::<u64>()
                                })
                                .unwrap();
                            mine.push((id, sum));
                        }
                        2 if !mine.is_empty() => {
                            let (id, _) = mine[x as usize % mine.len()];
                            let len = arena.read(id, |b| b.len()).unwrap();
                            arena.grow(id, len + 64 * KIB).unwrap();
                        }
                        3 if !mine.is_empty() => {
                            let (id, _) = mine.swap_remove(x as usize % mine.len());
                            arena.free(id).unwrap();
                        }
                        _ => {}
                    }
                    for &(id, sum) in &mine {
                        let got = arena
                            .read(id, |b| b.iter().map(|&v| v as u64).sum::<u64>())
                            .unwrap();
                        assert_eq!(got, sum, "checksum of {id:?}");
                    }
                }
                mine.len()
            })
        })
        .collect();
    let live: usize = workers.into_iter().map(|w| w.join().unwrap()).sum();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let compactions = compactor.join().unwrap();
    assert!(compactions > 0);
    assert_eq!(arena.len(), live);
}

/// What the docs promise about mappings: regions allocated one after another merge into one
/// mapping, and a region costs at most two (itself and the split of the reservation).
#[cfg(target_os = "linux")]
#[test]
fn mappings_per_region() {
    let _g = serial();
    let mut a = PageArena::with_options(ArenaOptions::new().initial_capacity(64 * MIB));
    // Reserve the arena's range before counting.
    a.alloc(4096).unwrap();
    let base = mappings_in(a.address_range());
    let ids: Vec<RegionId> = (0..1000).map(|_| a.alloc(8 * KIB).unwrap()).collect();
    for id in &ids {
        a.get_mut(*id).unwrap()[0] = 1;
    }
    let packed = mappings_in(a.address_range());
    assert!(packed <= base + 2, "{base} -> {packed}");
    for id in ids.iter().step_by(2) {
        a.free(*id).unwrap();
    }
    let holes = mappings_in(a.address_range());
    assert!(holes <= base + 2 * 500 + 2, "{base} -> {holes}");
    a.compact().unwrap();
    let compacted = mappings_in(a.address_range());
    assert!(compacted <= base + 500 + 2, "{base} -> {compacted}");
    let d = |n: usize| n as isize - base as isize;
    eprintln!(
        "mappings: {:+} packed, {:+} with 500 holes, {:+} compacted",
        d(packed),
        d(holes),
        d(compacted)
    );
}
