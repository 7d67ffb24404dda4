//! `RemapAlloc` as the global allocator with a 4 KiB threshold, around a ledger that checks
//! every dealloc against its alloc (size and alignment) and that no block of the threshold or
//! more ever reaches the inner allocator. Runs real work: std collections, strings, and 8
//! threads doing random alloc / realloc / free with content checksums.

use remapvec::RemapAlloc;
use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

const THRESHOLD: usize = 4096;

/// A lock-free table of live inner blocks: key = address, value = size << 8 | log2(align).
/// Fixed size, in static memory: the ledger must never allocate.
struct Ledger;
const SLOTS: usize = 1 << 21;
static KEYS: [AtomicUsize; SLOTS] = [const { AtomicUsize::new(0) }; SLOTS];
static VALS: [AtomicUsize; SLOTS] = [const { AtomicUsize::new(0) }; SLOTS];
const TOMB: usize = 1;
static MISMATCH: AtomicUsize = AtomicUsize::new(0);
static WRONG_SIDE: AtomicUsize = AtomicUsize::new(0);
static UNKNOWN: AtomicUsize = AtomicUsize::new(0);
static FULL: AtomicUsize = AtomicUsize::new(0);

fn encode(l: Layout) -> usize {
    (l.size() << 8) | l.align().trailing_zeros() as usize
}

fn slot_of(p: usize) -> usize {
    (p >> 4).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - 21)
}

fn record(p: *mut u8, l: Layout) {
    if p.is_null() {
        return;
    }
    if l.size() >= THRESHOLD {
        WRONG_SIDE.fetch_add(1, SeqCst);
    }
    let mut i = slot_of(p as usize);
    for _ in 0..SLOTS {
        let k = KEYS[i].load(SeqCst);
        if (k == 0 || k == TOMB)
            && KEYS[i]
                .compare_exchange(k, p as usize, SeqCst, SeqCst)
                .is_ok()
        {
            VALS[i].store(encode(l), SeqCst);
            return;
        }
        i = (i + 1) % SLOTS;
    }
    FULL.fetch_add(1, SeqCst);
}

fn forget(p: *mut u8, l: Layout) {
    if l.size() >= THRESHOLD {
        WRONG_SIDE.fetch_add(1, SeqCst);
    }
    let mut i = slot_of(p as usize);
    for _ in 0..SLOTS {
        let k = KEYS[i].load(SeqCst);
        if k == p as usize {
            if VALS[i].load(SeqCst) != encode(l) {
                MISMATCH.fetch_add(1, SeqCst);
            }
            KEYS[i].store(TOMB, SeqCst);
            return;
        }
        if k == 0 {
            break;
        }
        i = (i + 1) % SLOTS;
    }
    UNKNOWN.fetch_add(1, SeqCst);
}

// SAFETY: forwards to System; the bookkeeping never allocates or touches the blocks.
unsafe impl GlobalAlloc for Ledger {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        // SAFETY: forwarded.
        let p = unsafe { System.alloc(l) };
        record(p, l);
        p
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        // SAFETY: forwarded.
        let p = unsafe { System.alloc_zeroed(l) };
        record(p, l);
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        forget(p, l);
        // SAFETY: forwarded.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded.
        let q = unsafe { System.realloc(p, l, new_size) };
        if !q.is_null() {
            forget(p, l);
            // SAFETY: realloc succeeded, so the new layout is valid.
            record(q, unsafe {
                Layout::from_size_align_unchecked(new_size, l.align())
            });
        }
        q
    }
}

#[global_allocator]
static GLOBAL: RemapAlloc<Ledger> = RemapAlloc::wrapping(Ledger).threshold(THRESHOLD);

fn check_ledger() {
    assert_eq!(
        MISMATCH.load(SeqCst),
        0,
        "a dealloc's layout differed from its alloc"
    );
    assert_eq!(
        WRONG_SIDE.load(SeqCst),
        0,
        "a block >= threshold reached the inner allocator"
    );
    assert_eq!(
        UNKNOWN.load(SeqCst),
        0,
        "the inner allocator freed a block it never gave out"
    );
    assert_eq!(FULL.load(SeqCst), 0, "ledger table full");
}

fn checksum(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &x| {
        (h ^ u64::from(x)).wrapping_mul(0x100_0000_01b3)
    })
}

/// A tiny deterministic RNG (no allocation, no dependency).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn real_work_through_the_global_allocator() {
    // std collections and strings, crossing the threshold in both directions.
    let mut v: Vec<u64> = Vec::new();
    for i in 0..(8u64 << 20) {
        v.push(i);
    }
    assert!(v.iter().enumerate().all(|(i, &x)| x == i as u64));
    v.truncate(10);
    v.shrink_to_fit();
    assert_eq!(v, (0..10).collect::<Vec<_>>());

    let mut m: HashMap<u64, String> = HashMap::new();
    for i in 0..200_000u64 {
        m.insert(i, format!("value {i}"));
    }
    assert_eq!(m[&123_456], "value 123456");
    let mut b = BTreeMap::new();
    for i in 0..100_000u64 {
        b.insert(i.wrapping_mul(7919) % 100_003, i);
    }
    let mut s = String::new();
    for i in 0..100_000 {
        s.push_str(&i.to_string());
    }
    assert!(s.starts_with("0123456789101112"));
    // Over-aligned large and small blocks.
    for align in [16, 4096, 2 << 20] {
        for size in [8, THRESHOLD, 3 << 20] {
            let l = Layout::from_size_align(size, align).unwrap();
            // SAFETY: non-zero size; freed with the same layout.
            unsafe {
                let p = std::alloc::alloc_zeroed(l);
                assert!(!p.is_null());
                assert_eq!(p as usize % align, 0);
                assert!(std::slice::from_raw_parts(p, size).iter().all(|&x| x == 0));
                let q = std::alloc::realloc(p, l, size * 3);
                assert!(!q.is_null());
                assert_eq!(q as usize % align, 0);
                std::alloc::dealloc(q, Layout::from_size_align(size * 3, align).unwrap());
            }
        }
    }
    check_ledger();
}

#[test]
fn eight_threads_of_random_alloc_realloc_free_keep_every_byte() {
    let handles: Vec<_> = (0..8u64)
        .map(|t| {
            std::thread::spawn(move || {
                let mut rng = Rng(0x1234_5678 + t * 0x9E37);
                let mut blocks: Vec<(Vec<u8>, u64)> = Vec::new();
                for step in 0..800 {
                    match rng.next() % 4 {
                        0 | 1 => {
                            // Sizes on both sides of the threshold, up to 1 MiB.
                            let size = match rng.next() % 3 {
                                0 => (rng.next() % 256) as usize + 1,
                                1 => (rng.next() % (16 << 10)) as usize + 1,
                                _ => (rng.next() % (1 << 20)) as usize + 1,
                            };
                            let byte = (step % 251) as u8;
                            let b = vec![byte; size];
                            let c = checksum(&b);
                            blocks.push((b, c));
                        }
                        2 if !blocks.is_empty() => {
                            let i = (rng.next() as usize) % blocks.len();
                            let (b, c) = &mut blocks[i];
                            assert_eq!(checksum(b), *c, "contents changed before a realloc");
                            let new_len = (rng.next() % (2 << 20)) as usize + 1;
                            let fill = b.last().copied().unwrap_or(0).wrapping_add(1);
                            b.resize(new_len, fill); // a realloc, up or down, across sides
                            if rng.next().is_multiple_of(2) {
                                b.shrink_to_fit();
                            }
                            *c = checksum(b);
                        }
                        _ if !blocks.is_empty() => {
                            let i = (rng.next() as usize) % blocks.len();
                            let (b, c) = blocks.swap_remove(i);
                            assert_eq!(checksum(&b), c, "contents changed before free");
                        }
                        _ => {}
                    }
                }
                for (b, c) in blocks {
                    assert_eq!(checksum(&b), c);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    check_ledger();
    let s = RemapAlloc::stats();
    assert!(s.large_allocs > 0 && s.growth.grows() > 0, "{s:?}");
    #[cfg(all(target_os = "linux", not(feature = "force-fallback")))]
    assert_eq!(s.growth.bytes_copied, 0, "a large realloc copied: {s:?}");
}
