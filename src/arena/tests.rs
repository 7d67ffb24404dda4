use super::repair::window_hook;
use super::*;
use crate::sys::fault;
use std::collections::HashMap;

fn page() -> usize {
    sys::page_size()
}

/// Checks the arena's invariants against the kernel: regions, holes and fences tile `[0, cap)`
/// without overlap, every region's pages and every hole's pages are mapped (holes as
/// reservation; a fence is not the arena's, mapped or not), and the counters match.
fn check(a: &PageArena) {
    // (offset, length, is a fence)
    let mut spans: Vec<(usize, usize, bool)> = Vec::new();
    let (mut live, mut bytes, mut mapped) = (0, 0, 0);
    for (&off, &i) in &a.by_off {
        let e = a.slots[i as usize].entry.expect("by_off names live slots");
        assert_eq!(e.off, off);
        assert!(e.len <= e.mapped && e.mapped > 0);
        assert_eq!((a.base as usize + off) % e.align, 0, "address alignment");
        spans.push((off, e.mapped, false));
    }
    for s in &a.slots {
        if let Some(e) = s.entry {
            live += 1;
            bytes += e.len;
            mapped += e.mapped;
        }
    }
    assert_eq!(
        (live, bytes, mapped),
        (a.live, a.live_bytes, a.mapped_bytes)
    );
    spans.extend(a.holes.iter().map(|(o, l)| (o, l, false)));
    spans.extend(a.fences.iter().map(|(&o, &l)| (o, l, true)));
    spans.sort_unstable();
    let mut cur = 0;
    for &(o, l, _) in &spans {
        assert_eq!(o, cur, "regions, holes and fences tile the arena");
        cur = o + l;
    }
    assert_eq!(cur, a.cap);
    // Warm pages lie in holes and are committed read-write memory of the arena.
    for (o, l) in a.warm.iter() {
        assert!(a.holes.contains(o, l), "warm range {o:#x}+{l:#x} is a hole");
        for p in (o..o + l).step_by(page()) {
            assert!(
                sys::readable(a.base.wrapping_add(p)),
                "warm page {p:#x} is committed"
            );
        }
    }
    if a.cap > 0 {
        for &(o, l, fence) in &spans {
            if fence {
                continue;
            }
            assert!(
                sys::is_mapped(a.base.wrapping_add(o), l),
                "no gap in the arena at {o:#x}+{l:#x}"
            );
        }
    }
}

/// A deterministic byte pattern per region and position.
fn fill(a: &mut PageArena, id: RegionId, seed: u8) -> Vec<u8> {
    let bytes = a.get_mut(id).unwrap();
    for (i, b) in bytes.iter_mut().enumerate() {
        *b = seed.wrapping_add((i / 4093) as u8).wrapping_mul(31) ^ (i as u8);
    }
    bytes.to_vec()
}

fn check_model(a: &PageArena, model: &HashMap<RegionId, Vec<u8>>) {
    check(a);
    assert_eq!(a.len(), model.len());
    for (id, want) in model {
        assert!(a.get(*id) == Some(&want[..]), "contents of {id:?}");
    }
}

/// An arena with mixed regions (1 page to 5 MiB, some 2 MiB-aligned), every other one freed.
fn fragmented(opts: ArenaOptions) -> (PageArena, HashMap<RegionId, Vec<u8>>) {
    let mut a = PageArena::with_options(opts);
    let mut model = HashMap::new();
    let sizes = [
        page(),
        2 * page(),
        3 * page() + 5,
        2 << 20,
        page(),
        4 << 20,
        5 << 20,
        8 << 10,
        page(),
        page(),
        3 * page(),
        page(),
    ];
    let mut ids = Vec::new();
    for (k, &len) in sizes.iter().enumerate() {
        let id = if k % 4 == 3 {
            a.alloc_aligned(len, 2 << 20).unwrap()
        } else {
            a.alloc(len).unwrap()
        };
        ids.push(id);
        let v = fill(&mut a, id, k as u8);
        model.insert(id, v);
    }
    for (k, id) in ids.iter().enumerate() {
        if k % 2 == 0 || k == 5 {
            a.free(*id).unwrap();
            model.remove(id);
        }
    }
    check_model(&a, &model);
    (a, model)
}

/// Every hole below the last region is alignment padding that no move could close.
fn assert_packed(a: &PageArena) {
    let high = a.high_water();
    for (o, l) in a.holes.iter().filter(|&(o, _)| o < high) {
        let next = a.by_off[&(o + l)];
        let align = a.slots[next as usize].entry.unwrap().align;
        assert_eq!(
            free::align_up(o, align, a.phase(align)),
            Some(o + l),
            "hole at {o:#x} is padding"
        );
    }
}

#[test]
fn ids_are_checked() {
    let mut a = PageArena::new();
    let mut b = PageArena::new();
    let id = a.alloc(10).unwrap();
    let other = b.alloc(10).unwrap();
    assert!(a.get(other).is_none());
    assert!(matches!(a.free(other), Err(ArenaError::InvalidId(_))));
    a.free(id).unwrap();
    let reused = a.alloc(10).unwrap();
    assert_eq!(reused.index, id.index);
    assert!(a.get(id).is_none() && a.get(reused).is_some());
    assert!(matches!(a.grow(id, 20), Err(ArenaError::InvalidId(_))));
    assert!(matches!(
        a.grow(reused, 5),
        Err(ArenaError::InvalidLength { .. })
    ));
    assert!(matches!(
        a.shrink(reused, 50),
        Err(ArenaError::InvalidLength { .. })
    ));
    assert!(matches!(
        a.alloc_aligned(1, 3),
        Err(ArenaError::InvalidAlign(3))
    ));
    assert!(matches!(
        a.alloc(usize::MAX - 10),
        Err(ArenaError::CapacityOverflow { .. })
    ));
    check(&a);
}

#[test]
fn zero_length_regions_and_regrowth() {
    let mut a = PageArena::new();
    let id = a.alloc(0).unwrap();
    assert_eq!(a.get(id), Some(&[][..]));
    a.grow(id, 3 * page()).unwrap();
    a.get_mut(id).unwrap()[page()] = 9;
    a.shrink(id, 0).unwrap();
    assert_eq!(a.mapped_bytes(), 0);
    a.grow(id, 2 * page()).unwrap();
    assert!(
        a.get(id).unwrap().iter().all(|&b| b == 0),
        "regrown bytes are zero"
    );
    // A shrink within the last page keeps the page; growing again zeroes the old bytes.
    a.get_mut(id).unwrap().fill(7);
    a.shrink(id, 10).unwrap();
    a.grow(id, page()).unwrap();
    let b = a.get(id).unwrap();
    assert!(b[..10].iter().all(|&x| x == 7) && b[10..].iter().all(|&x| x == 0));
    check(&a);
}

#[test]
fn grow_in_place_then_by_moving() {
    let mut a = PageArena::new();
    let x = a.alloc(page()).unwrap();
    let v = fill(&mut a, x, 1);
    a.grow(x, 4 * page()).unwrap();
    assert_eq!(a.stats().regions.in_place, 1);
    let _y = a.alloc(page()).unwrap();
    a.grow(x, 64 * page()).unwrap();
    let s = a.stats().regions;
    assert_eq!(s.in_place + s.moved + s.copied, 2);
    #[cfg(all(target_os = "linux", not(feature = "force-fallback")))]
    assert_eq!((s.moved, s.bytes_copied), (1, 0));
    assert_eq!(&a.get(x).unwrap()[..page()], &v[..page()]);
    check(&a);
}

#[test]
fn compaction_closes_holes_in_every_mode() {
    for cost in [
        CostModel::default(),
        CostModel::remap_only(),
        CostModel::copy_only(),
    ] {
        for multi in [true, false] {
            let opts = ArenaOptions::new()
                .multi_mapping_move(multi)
                .cost_model(cost);
            let (mut a, model) = fragmented(opts);
            let r = a.compact().unwrap();
            check_model(&a, &model);
            assert_packed(&a);
            assert!(r.regions_moved > 0, "{r:?}");
            if sys::HAS_MREMAP && cost == CostModel::remap_only() {
                assert_eq!(r.bytes_copied, 0);
            }
            // Compacting a compact arena does nothing.
            let again = a.compact().unwrap();
            assert_eq!(again.regions_moved, 0);
            check_model(&a, &model);
            // Free the first region: the others form few runs (alignment padding splits them),
            // each moved by one call with the multi-mapping move (two through scratch space),
            // one call per region without it.
            let mut model = model;
            let first = a.iter().next().unwrap().0;
            a.free(first).unwrap();
            model.remove(&first);
            let r = a.compact().unwrap();
            check_model(&a, &model);
            assert_eq!(r.regions_moved, model.len(), "{r:?}");
            if sys::HAS_MREMAP && cost == CostModel::remap_only() {
                if a.opts.multi_mapping_move {
                    assert!(r.runs < r.regions_moved, "{r:?}");
                    assert!(r.remap_calls <= 2 * r.runs as u64, "{r:?}");
                } else {
                    assert!(r.remap_calls >= r.regions_moved as u64, "{r:?}");
                }
            }
        }
    }
}

#[test]
fn arena_moves_when_its_end_is_taken() {
    let mut a = PageArena::with_options(ArenaOptions::new().initial_capacity(1 << 20));
    let id = a.alloc(page()).unwrap();
    let v = fill(&mut a, id, 3);
    let end = a.address_range().end;
    let blocker = sys::reserve(end, page());
    let before = a.address_range();
    a.grow(id, 4 << 20).unwrap();
    assert_eq!(&a.get(id).unwrap()[..page()], &v[..page()]);
    if blocker.is_ok() {
        assert_ne!(a.address_range().start, before.start);
        assert_eq!(a.stats().arena.moved, 1);
        assert!(
            sys::is_mapped(end as *mut u8, page()),
            "the neighbour survives"
        );
        // SAFETY: the blocker is this test's own reservation.
        unsafe { sys::unmap(end as *mut u8, page()).unwrap() };
    }
    check(&a);
}

/// Runs `op` on fresh copies of a scenario with the k-th mapping call failing, for every k
/// until `op` no longer reaches the fault, and checks that nothing is lost each time.
fn inject_all(
    opts: ArenaOptions,
    partial: Option<usize>,
    op: impl Fn(&mut PageArena, &mut HashMap<RegionId, Vec<u8>>) -> Result<(), ArenaError>,
) -> (usize, usize) {
    let (mut failures, mut successes) = (0, 0);
    for skip in 0..10_000 {
        let (mut a, mut model) = fragmented(opts);
        fault::arm(fault::Plan {
            skip,
            errno: libc::ENOMEM,
            partial,
            repeat: 0,
        });
        let r = op(&mut a, &mut model);
        let pending = fault::disarm();
        match r {
            Ok(()) => successes += 1,
            Err(ArenaError::Os { .. }) => failures += 1,
            Err(e) => panic!("unexpected error {e}"),
        }
        check_model(&a, &model);
        // The arena still works after the failure.
        let r = a.compact();
        assert!(r.is_ok(), "{r:?}");
        check_model(&a, &model);
        if pending {
            return (failures, successes);
        }
    }
    unreachable!("op never finished without reaching the fault");
}

#[test]
fn injected_failures_in_compaction_lose_nothing() {
    // Under valgrind (30x slower) one configuration: the multi-mapping move is off there
    // anyway (the probe fails), so the others repeat it.
    let (costs, multis): (&[CostModel], &[bool]) = if sys::valgrind() {
        (&[CostModel::default()], &[false])
    } else {
        (
            &[
                CostModel::remap_only(),
                CostModel::copy_only(),
                CostModel::default(),
            ],
            &[true, false],
        )
    };
    for &cost in costs {
        for &multi in multis {
            for partial in [None, Some(page()), Some(3 << 20)] {
                let opts = ArenaOptions::new()
                    .multi_mapping_move(multi)
                    .cost_model(cost);
                let (f, _) = inject_all(opts, partial, |a, _| a.compact().map(|_| ()));
                assert!(f > 0, "some injected failure was reached");
            }
        }
    }
    // Without warm holes (every freed page reservation), once.
    let opts = ArenaOptions::new().warm_holes(0.0);
    let (f, _) = inject_all(opts, Some(page()), |a, _| a.compact().map(|_| ()));
    assert!(f > 0, "some injected failure was reached");
}

/// A warm hole is reused without any mapping call: an armed failure of the next mapping call
/// is never reached by an allocation or a growth into it, and the bytes read as zero.
#[test]
fn growth_and_allocation_into_a_warm_hole_make_no_mapping_call() {
    let p = page();
    let mut a = PageArena::new();
    let x = a.alloc(4 * p).unwrap();
    let y = a.alloc(4 * p).unwrap();
    let _big = a.alloc(1 << 20).unwrap();
    fill(&mut a, x, 1);
    fill(&mut a, y, 2);
    a.free(y).unwrap();
    assert_eq!(a.warm_bytes(), 4 * p);
    check(&a);
    fault::arm(fault::Plan {
        skip: 0,
        errno: libc::ENOMEM,
        partial: None,
        repeat: 0,
    });
    let calls = a.stats().regions.syscalls;
    a.grow(x, 6 * p).unwrap();
    let z = a.alloc(2 * p).unwrap();
    assert!(fault::disarm(), "no mapping call was made");
    assert_eq!(a.stats().regions.syscalls, calls);
    assert_eq!(a.warm_bytes(), 0);
    assert!(a.get(x).unwrap()[4 * p..].iter().all(|&b| b == 0));
    assert!(a.get(z).unwrap().iter().all(|&b| b == 0));
    check(&a);
}

/// The warm budget: at most the configured fraction of the live regions' pages stays warm,
/// the highest warm pages go first, and `release_warm` gives back all of it.
#[test]
fn warm_holes_stay_within_budget_lowest_first() {
    let p = page();
    let mut a = PageArena::with_options(ArenaOptions::new().warm_holes(0.25));
    let ids: Vec<RegionId> = (0..64).map(|_| a.alloc(4 * p).unwrap()).collect();
    for id in ids.iter().step_by(2) {
        a.free(*id).unwrap();
        assert!(a.warm_bytes() <= a.mapped_bytes() / 4);
        check(&a);
    }
    // 32 live regions of 4 pages: 32 pages warm at most, the lowest ones.
    assert_eq!(a.warm_bytes(), 32 * p);
    let highest_warm = a.warm.last().map(|(o, l)| o + l).unwrap();
    assert!(
        a.holes.iter().any(|(o, _)| o >= highest_warm),
        "higher holes are cold"
    );
    a.release_warm();
    assert_eq!(a.warm_bytes(), 0);
    check(&a);
    // Larger pieces than `warm_max_piece` are never kept warm.
    let mut b = PageArena::with_options(ArenaOptions::new().warm_max_piece(4 * p));
    let big = b.alloc(8 * p).unwrap();
    let _keep = b.alloc(1 << 20).unwrap();
    b.free(big).unwrap();
    assert_eq!(b.warm_bytes(), 0);
    check(&b);
}

#[test]
fn injected_failures_in_grow_alloc_free_lose_nothing() {
    let opts = ArenaOptions::new().initial_capacity(1 << 20);
    inject_all(opts.warm_holes(0.0), Some(page()), |a, model| {
        let ids: Vec<RegionId> = model.keys().copied().collect();
        for id in ids {
            let old = a.get(id).unwrap().len();
            a.grow(id, old + (3 << 20))?;
            model.get_mut(&id).unwrap().resize(old + (3 << 20), 0);
        }
        Ok(())
    });
    for partial in [None, Some(page()), Some(2 << 20)] {
        inject_all(opts, partial, |a, model| {
            let ids: Vec<RegionId> = model.keys().copied().collect();
            for id in ids {
                let old = a.get(id).unwrap().len();
                a.grow(id, old + (3 << 20))?;
                model.get_mut(&id).unwrap().resize(old + (3 << 20), 0);
            }
            let n = a.alloc(12 << 20)?;
            model.insert(n, vec![0; 12 << 20]);
            let first = *model.keys().min().unwrap();
            a.free(first)?;
            model.remove(&first);
            let some = *model.keys().max().unwrap();
            a.shrink(some, 5)?;
            model.get_mut(&some).unwrap().truncate(5);
            Ok(())
        });
    }
}

#[test]
fn a_multi_mapping_move_that_stops_part_way_is_repaired() {
    if !sys::features().multi_mapping_move {
        return;
    }
    let opts = ArenaOptions::new().cost_model(CostModel::remap_only());
    let (mut a, model) = fragmented(opts);
    // Let the first move of the compaction stop after one page.
    fault::arm(fault::Plan {
        skip: 0,
        errno: libc::ENOMEM,
        partial: Some(page()),
        repeat: 0,
    });
    let r = a.compact();
    fault::disarm();
    check_model(&a, &model);
    assert!(r.is_err() || a.fragmentation() == 0.0);
}

#[test]
fn a_region_cut_in_two_that_cannot_be_repaired_is_marked_broken() {
    if !sys::HAS_MREMAP {
        return;
    }
    for multi in [false, true] {
        let opts = ArenaOptions::new()
            .multi_mapping_move(multi)
            .cost_model(CostModel::remap_only());
        let (mut a, mut model) = fragmented(opts);
        // The first move stops after one page, then finishing it and undoing it both fail.
        fault::arm(fault::Plan {
            skip: 0,
            errno: libc::ENOMEM,
            partial: Some(page()),
            repeat: 2,
        });
        let r = a.compact();
        fault::disarm();
        assert!(r.is_err());
        let broken: Vec<RegionId> = model
            .keys()
            .copied()
            .filter(|id| a.contains(*id) && a.get(*id).is_none())
            .collect();
        assert_eq!(broken.len(), 1, "the cut region is marked broken");
        let b = broken[0];
        model.remove(&b);
        // Every other region is intact; the arena's invariants hold (the stray part is a
        // fence); broken regions are never moved, cannot be resized, and can be freed.
        for (id, want) in &model {
            assert!(a.get(*id) == Some(&want[..]));
        }
        check(&a);
        assert!(!a.fences.is_empty());
        assert!(matches!(a.grow(b, 1 << 20), Err(ArenaError::Broken(_))));
        a.compact().unwrap();
        for (id, want) in &model {
            assert!(a.get(*id) == Some(&want[..]));
        }
        check(&a);
        a.free(b).unwrap();
        check(&a);
        assert_eq!(a.iter().count(), model.len());
    }
}

/// An arena whose base is page-aligned but deliberately not 16 MiB-aligned, as when the
/// placement zone is full and the kernel picks the address.
fn misaligned_arena(cap: usize) -> PageArena {
    let mut a = PageArena::with_options(ArenaOptions::new().initial_capacity(cap));
    let raw = sys::reserve(0, cap + (32 << 20)).unwrap();
    let base = (raw as usize).next_multiple_of(16 << 20) + page();
    let head = base - raw as usize;
    // SAFETY: the parts of this test's own fresh reservation outside `[base, base + cap)`.
    unsafe {
        sys::unmap(raw, head).unwrap();
        sys::unmap((base + cap) as *mut u8, cap + (32 << 20) - head - cap).unwrap();
    }
    a.base = base as *mut u8;
    a.cap = cap;
    a.holes.insert(0, cap);
    a
}

#[test]
fn aligned_regions_have_aligned_addresses_through_compaction_and_relocation() {
    let align = 16 << 20;
    let mut a = misaligned_arena(256 << 20);
    let mut model = HashMap::new();
    let mut ids = Vec::new();
    for k in 0..8u8 {
        let small = a.alloc(3 * page()).unwrap();
        let id = a.alloc_aligned(page() + k as usize, align).unwrap();
        let p = a.get(id).unwrap().as_ptr() as usize;
        assert_eq!(p % align, 0, "request {k}: {p:#x} is not 16 MiB-aligned");
        model.insert(id, fill(&mut a, id, k));
        ids.push(small);
    }
    for id in ids {
        a.free(id).unwrap();
    }
    check_model(&a, &model);
    a.compact().unwrap();
    check_model(&a, &model);
    // Make the arena move: its end is taken, and it must grow.
    let end = a.address_range().end;
    let blocker = sys::reserve(end, page());
    let big = a.alloc(1 << 30).unwrap();
    model.insert(big, vec![0; 1 << 30]);
    if blocker.is_ok() {
        assert_eq!(a.stats().arena.moved, 1);
        // SAFETY: the blocker is this test's own reservation.
        unsafe { sys::unmap(end as *mut u8, page()).unwrap() };
    }
    for id in model.keys() {
        let e = a.lookup(*id).unwrap();
        assert_eq!((a.base as usize + e.off) % e.align, 0);
    }
    let big_bytes = model.remove(&big).unwrap();
    drop(big_bytes);
    a.free(big).unwrap();
    check_model(&a, &model);
}

#[test]
fn region_ids_of_arenas_2_pow_32_apart_differ() {
    let mut a = PageArena::new();
    let id = a.alloc(10).unwrap();
    // The next arena is numbered as if 2^32 arenas had been made since `a`.
    NEXT_ARENA.store(a.id + (1u64 << 32), Ordering::Relaxed);
    let mut b = PageArena::new();
    let other = b.alloc(10).unwrap();
    assert_eq!((id.index, id.generation), (other.index, other.generation));
    assert!(b.get(id).is_none(), "an id of arena a reaches arena b");
    assert!(a.get(other).is_none(), "an id of arena b reaches arena a");
    assert!(matches!(b.free(id), Err(ArenaError::InvalidId(_))));
}

/// Foreign memory for [`foreign_mappings_in_every_window_never_break_a_region`]: mappings the
/// window hook made, each filled with a pattern derived from its address.
mod foreign {
    use super::sys;
    use std::cell::{Cell, RefCell};

    thread_local! {
        static RNG: Cell<u64> = const { Cell::new(1) };
        /// One in `ODDS` windows gets a foreign mapping.
        static ODDS: Cell<u64> = const { Cell::new(2) };
        static MAPS: RefCell<Vec<(usize, usize)>> = const { RefCell::new(Vec::new()) };
    }

    pub(super) fn seed(seed: u64, odds: u64) {
        RNG.with(|r| r.set(seed | 1));
        ODDS.with(|o| o.set(odds.max(1)));
    }

    pub(super) fn below(n: u64) -> u64 {
        RNG.with(|r| {
            let mut x = r.get();
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            r.set(x);
            x % n.max(1)
        })
    }

    fn word(addr: usize, i: usize) -> u64 {
        (addr as u64 ^ 0x5DEE_CE66).wrapping_add((i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15))
    }

    /// Maps `pages` read-write pages exactly at `addr` (never replacing anything) and fills
    /// them; records them. Returns whether it mapped.
    pub(super) fn map_at(addr: usize, pages: usize) -> bool {
        let len = pages * sys::page_size();
        // SAFETY: a new anonymous mapping; NOREPLACE never replaces anything.
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
        if p == libc::MAP_FAILED {
            return false;
        }
        if p as usize != addr {
            // SAFETY: our own fresh mapping (a kernel that took NOREPLACE as a hint).
            unsafe { libc::munmap(p, len) };
            return false;
        }
        // SAFETY: our own fresh read-write mapping of `len` bytes.
        let words = unsafe { std::slice::from_raw_parts_mut(p.cast::<u64>(), len / 8) };
        for (i, w) in words.iter_mut().enumerate() {
            *w = word(addr, i);
        }
        MAPS.with(|m| m.borrow_mut().push((addr, len)));
        true
    }

    /// The window hook: at one window in `ODDS`, maps 1 to 4 pages at a page of the open
    /// range or just around it (its start, its end, a few pages inside).
    pub(super) fn hook(addr: *mut u8, len: usize) {
        if below(ODDS.with(Cell::get)) != 0 {
            return;
        }
        let page = sys::page_size();
        let pages = (len / page).max(1) as u64;
        let at = match below(4) {
            0 => addr as usize,
            1 => addr as usize + (pages - 1) as usize * page,
            2 => addr as usize + below(pages) as usize * page,
            _ => (addr as usize + len).wrapping_sub(page * (1 + below(2)) as usize),
        };
        map_at(at, 1 + below(4) as usize);
    }

    /// Whether `len` bytes at `addr` can be read (a `PROT_NONE` or unmapped page is reported,
    /// not a crash).
    pub(super) fn readable(addr: usize, len: usize) -> bool {
        if len == 0 {
            return true;
        }
        let mut buf = vec![0u8; len];
        let local = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: len,
        };
        let remote = libc::iovec {
            iov_base: addr as *mut _,
            iov_len: len,
        };
        // SAFETY: reads this process's own memory into `buf`; an inaccessible page is an error,
        // never a fault.
        let n = unsafe { libc::process_vm_readv(libc::getpid(), &local, 1, &remote, 1, 0) };
        n == len as isize
    }

    /// Panics if any foreign page was unmapped, made inaccessible or changed.
    pub(super) fn verify() {
        MAPS.with(|m| {
            for &(addr, len) in m.borrow().iter() {
                assert!(readable(addr, len), "foreign mapping at {addr:#x} lost");
                // SAFETY: readable just now, and ours (the test's).
                let words = unsafe { std::slice::from_raw_parts(addr as *const u64, len / 8) };
                for (i, &w) in words.iter().enumerate() {
                    assert_eq!(w, word(addr, i), "foreign mapping at {addr:#x} changed");
                }
            }
        });
    }

    pub(super) fn count() -> usize {
        MAPS.with(|m| m.borrow().len())
    }

    /// Verifies and unmaps every foreign mapping.
    pub(super) fn release() {
        verify();
        for (addr, len) in MAPS.with(|m| std::mem::take(&mut *m.borrow_mut())) {
            // SAFETY: the test's own mapping.
            unsafe { libc::munmap(addr as *mut _, len) };
        }
    }
}

/// Every live region's pages are readable (not a fence's, not reservation): checked without
/// faulting, before anything reads them.
fn check_readable(a: &PageArena) {
    for (&off, &i) in &a.by_off {
        let e = a.slots[i as usize].entry.unwrap();
        assert!(
            foreign::readable(a.base as usize + off, e.mapped),
            "region in slot {i} at {off:#x}+{:#x} is not read-write memory",
            e.mapped
        );
    }
}

/// Another thread maps memory in every window an arena operation opens (a source a move
/// vacated, the destination of a settle, the addresses past the arena's end): the arena
/// never touches that memory and never hands out a region over pages that are not its own
/// read-write memory (the `tests/ownership.rs` crash: a run left in compaction's scratch space
/// when its target was fenced, then overwritten and re-reserved by the next run's move through
/// the same scratch space).
#[test]
fn foreign_mappings_in_every_window_never_break_a_region() {
    let page = page();
    let configs: &[(CostModel, bool)] = &[
        (CostModel::remap_only(), true),
        (CostModel::remap_only(), false),
        (CostModel::default(), true),
        (CostModel::copy_only(), false),
    ];
    // Under valgrind (30x slower, and it emulates mremap itself): one configuration, one seed.
    let (configs, seeds): (&[(CostModel, bool)], u64) = if sys::valgrind() {
        (&[(CostModel::default(), false)], 1)
    } else {
        (configs, 3)
    };
    let mut windows_hit = 0;
    for (k, &(cost, multi)) in configs.iter().enumerate() {
        for seed in 0..seeds {
            foreign::seed(0x9E37 + seed * 7919 + k as u64, 2 + seed % 3);
            window_hook::set(Some(foreign::hook));
            let opts = ArenaOptions::new()
                .initial_capacity(1 << 20)
                .multi_mapping_move(multi)
                .cost_model(cost);
            let mut a = PageArena::with_options(opts);
            let mut model: HashMap<RegionId, Vec<u8>> = HashMap::new();
            let mut ids: Vec<RegionId> = Vec::new();
            for step in 0..300u64 {
                let pick = |n: usize| foreign::below(n as u64) as usize;
                match pick(8) {
                    0..=2 => {
                        let len = (1 + pick(64)) * page - pick(2) * 7;
                        let r = if pick(6) == 0 {
                            a.alloc_aligned(len, 8 * page)
                        } else {
                            a.alloc(len)
                        };
                        if let Ok(id) = r {
                            let v = fill(&mut a, id, step as u8);
                            model.insert(id, v);
                            ids.push(id);
                        }
                    }
                    3 if !ids.is_empty() => {
                        let id = ids.swap_remove(pick(ids.len()));
                        a.free(id).unwrap();
                        model.remove(&id);
                    }
                    4 | 5 if !ids.is_empty() => {
                        let id = ids[pick(ids.len())];
                        let new = model[&id].len() + (1 + pick(128)) * page;
                        match a.grow(id, new) {
                            Ok(()) => model.get_mut(&id).unwrap().resize(new, 0),
                            Err(ArenaError::Broken(_)) => {}
                            Err(e) => panic!("grow: {e}"),
                        }
                    }
                    6 if !ids.is_empty() => {
                        let id = ids[pick(ids.len())];
                        let new = model[&id].len() / (1 + pick(3));
                        a.shrink(id, new).unwrap();
                        model.get_mut(&id).unwrap().truncate(new);
                    }
                    _ => {
                        if pick(4) == 0 {
                            // A neighbour at the end: the arena must move to grow.
                            let r = a.address_range();
                            if r.end > r.start {
                                foreign::map_at(r.end, 1);
                            }
                        }
                        let _ = a.compact();
                    }
                }
                // Regions marked broken are never handed out; everything else is intact.
                let broken: Vec<RegionId> = ids
                    .iter()
                    .copied()
                    .filter(|&id| a.lookup(id).is_ok_and(|e| e.broken))
                    .collect();
                for id in broken {
                    assert!(a.get(id).is_none());
                    model.remove(&id);
                    ids.retain(|&x| x != id);
                    a.free(id).unwrap();
                }
                check_readable(&a);
                check_model(&a, &model);
                foreign::verify();
            }
            window_hook::set(None);
            windows_hit += foreign::count();
            drop(a);
            foreign::release();
        }
    }
    assert!(
        windows_hit > 0,
        "the hook mapped foreign memory in some window"
    );
}

/// A multi-mapping move that stops part-way while another thread maps a page at the source
/// range the move just vacated (the sys fault hook stands for that thread): the arena must
/// never hand out, write, decommit or unmap the foreign page; each region stays correct or
/// becomes `Broken`.
#[cfg(all(target_os = "linux", not(feature = "force-fallback")))]
mod partial_move_foreign {
    use super::*;
    use std::cell::Cell;

    thread_local! {
        static AT: Cell<usize> = const { Cell::new(0) };
    }

    /// The sys fault hook: maps one read-write page at `AT` the instant the partial move
    /// returns (before the arena probes how far it got).
    fn map_at_src(_dst: *mut u8, _len: usize) {
        let at = AT.with(Cell::get);
        assert!(foreign::map_at(at, 1), "foreign map at vacated source");
    }

    fn arm_partial(skip: u32, at: usize) {
        AT.with(|c| c.set(at));
        fault::set_hook(Some(map_at_src));
        fault::arm(fault::Plan {
            skip,
            errno: libc::ENOMEM,
            partial: Some(page()),
            repeat: 0,
        });
    }

    fn disarm() {
        fault::disarm();
        fault::set_hook(None);
    }

    /// A region is either intact or broken (never handed out); a user writing what the
    /// arena hands out never reaches the foreign page, and `Drop` leaves it mapped.
    fn verdict(mut a: PageArena, id: RegionId, want: &[u8], foreign_at: usize) {
        check(&a);
        check_readable(&a);
        match a.get(id) {
            Some(s) => assert_eq!(s, want, "region intact"),
            None => assert!(a.lookup(id).is_ok_and(|e| e.broken), "region lost"),
        }
        if let Some(s) = a.get_mut(id) {
            s[0] ^= 0xAA;
        }
        foreign::verify();
        drop(a);
        assert!(
            foreign::readable(foreign_at, page()),
            "Drop unmapped the foreign page"
        );
        foreign::release();
    }

    #[test]
    fn partial_compaction_foreign_at_vacated_source() {
        if !sys::features().multi_mapping_move {
            return;
        }
        let p = page();
        // The freed region is a reservation, or a warm hole: then compaction first gives the
        // warm pages back (one injectable call) so that the move lands on `PROT_NONE`.
        for (warm, skip) in [(0.0, 0), (20.0, 1)] {
            let opts = ArenaOptions::new()
                .multi_mapping_move(true)
                .cost_model(CostModel::remap_only())
                .warm_holes(warm);
            let mut a = PageArena::with_options(opts);
            let x = a.alloc(64 * p).unwrap();
            let b = a.alloc(4 * p).unwrap();
            let c = a.alloc(4 * p).unwrap();
            let want = fill(&mut a, b, 1);
            let want_c = fill(&mut a, c, 2);
            a.free(x).unwrap();
            assert_eq!(a.warm_bytes(), if warm > 0.0 { 64 * p } else { 0 });
            let src = a.get(b).unwrap().as_ptr() as usize;
            arm_partial(skip, src);
            let _ = a.compact();
            disarm();
            assert_eq!(foreign::count(), 1, "the hook mapped the foreign page");
            assert!(
                a.get(b).is_none(),
                "region over the foreign page handed out"
            );
            assert_eq!(a.get(c), Some(&want_c[..]));
            verdict(a, b, &want, src);
        }
    }

    #[test]
    fn partial_grow_foreign_at_vacated_source() {
        let p = page();
        let mut a = PageArena::with_options(ArenaOptions::new().initial_capacity(1 << 20));
        let b = a.alloc(4 * p).unwrap();
        let _c = a.alloc(4 * p).unwrap();
        let want = fill(&mut a, b, 1);
        let src = a.get(b).unwrap().as_ptr() as usize;
        // Call 0 commits the new tail; call 1 is the move.
        arm_partial(1, src);
        let r = a.grow(b, 16 * p);
        disarm();
        assert!(r.is_err());
        assert_eq!(foreign::count(), 1, "the hook mapped the foreign page");
        assert!(
            a.get(b).is_none(),
            "region over the foreign page handed out"
        );
        verdict(a, b, &want, src);
    }

    #[test]
    fn partial_relocation_foreign_at_vacated_source() {
        let p = page();
        for multi in [true, false] {
            // The move is the first fault-injectable call of the relocation, or a later one
            // when placing the new reservation makes some: try until the move fails.
            let mut moved_failed = false;
            for skip in 0..8 {
                let mut a = PageArena::with_options(
                    ArenaOptions::new()
                        .initial_capacity(16 * p)
                        .multi_mapping_move(multi),
                );
                let b = a.alloc(4 * p).unwrap();
                let want = fill(&mut a, b, 1);
                let r0 = a.address_range();
                // A neighbour at the end: the arena must move to grow.
                assert!(foreign::map_at(r0.end, 1));
                arm_partial(skip, r0.start);
                // More than the free space: the arena must grow, so it moves.
                let r = a.alloc(r0.end - r0.start);
                disarm();
                if foreign::count() < 2 {
                    // Some other call failed: not the case under test.
                    drop(a);
                    foreign::release();
                    continue;
                }
                moved_failed = true;
                assert!(r.is_err(), "multi {multi}: {r:?}");
                assert!(
                    a.get(b).is_none(),
                    "region over the foreign page handed out"
                );
                verdict(a, b, &want, r0.start);
                break;
            }
            assert!(moved_failed, "multi {multi}: the move never failed");
        }
    }

    #[test]
    fn free_after_partial_move_never_decommits_foreign() {
        if !sys::features().multi_mapping_move {
            return;
        }
        let p = page();
        let opts = ArenaOptions::new()
            .multi_mapping_move(true)
            .cost_model(CostModel::remap_only())
            .warm_holes(0.0);
        let mut a = PageArena::with_options(opts);
        let x = a.alloc(64 * p).unwrap();
        let b = a.alloc(4 * p).unwrap();
        let _c = a.alloc(4 * p).unwrap();
        a.free(x).unwrap();
        let at = a.get(b).unwrap().as_ptr() as usize;
        arm_partial(0, at);
        let _ = a.compact();
        disarm();
        // No write by the user at all.
        a.free(b).unwrap();
        foreign::verify();
        check(&a);
        drop(a);
        assert!(foreign::readable(at, p), "Drop unmapped the foreign page");
        foreign::release();
    }
}

/// Freeing a region too large to stay warm lowers the warm budget with the live bytes, and the
/// warm pages are trimmed to it (a review found them left above it, with no live region at
/// all).
#[test]
fn the_warm_budget_holds_after_a_large_free() {
    let mut a = PageArena::new();
    let big = a.alloc(8 << 20).unwrap();
    let small: Vec<RegionId> = (0..16).map(|_| a.alloc(64 << 10).unwrap()).collect();
    for &id in &small {
        a.get_mut(id).unwrap().fill(0xAB);
    }
    for &id in &small {
        a.free(id).unwrap();
    }
    a.free(big).unwrap();
    assert!(
        a.warm_bytes() <= a.warm_budget(),
        "warm {} > budget {}",
        a.warm_bytes(),
        a.warm_budget()
    );
}
