//! Growing while others read: the worst stall a reader sees while a 1 GiB buffer grows to
//! 2 GiB, for `SharedVec` (readers never wait) and for `RwLock<Vec<u64>>` (readers wait while
//! the writer holds the lock to reallocate). `SharedVec` grows in place when the addresses
//! after its view are free; the `new view` rows first map a page right after the view, so the
//! growth must map a second view of the memory file elsewhere.
//!
//! Then appending: 16 Mi `u64` pushed one by one into `SharedVec` (with each [`Prefault`]
//! mode) and into `RwLock<Vec<u64>>`, alternating, `--push-reps` times each: median and
//! range, and the ratio of throughputs rep by rep; then the same with the time to drop the
//! buffer added (unmapping and freeing the memory file's pages costs more than freeing
//! anonymous ones).
//!
//! `cargo run --release --example shared_read [-- --gib 1 --readers 2 --push-reps 5]`
//!
//! With `--page-costs N` it measures instead what bringing in one 4 KiB page costs each way the
//! writer could do it (128 MiB, in 2 MiB batches, each batch written right after; `N` rounds,
//! alternating; median and range per page): an anonymous page by a plain write fault, and a
//! memory file's page by a plain write fault, by `MADV_POPULATE_WRITE`, by `fallocate` then
//! `MADV_POPULATE_WRITE`, and by writing zeros into the file (`pwritev`) then
//! `MADV_POPULATE_READ` (which maps up-to-date pages several per fault).
//!
//! Each reader loops: take a read guard (or the read lock), read the last element, release,
//! and records the longest single iteration while the grow is in progress. Both buffers are
//! filled first (warm memory), then the writer appends the one element that makes it grow.
//! A control window of 5 ms in which nothing grows shows the machine's own noise (2 cores:
//! readers and writer are preempted now and then).

use remapvec::{Prefault, SharedVec};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Runs `readers` threads calling `read` in a loop until `stop`; returns the longest single
/// call seen while `window` was set, in nanoseconds.
fn stalls(
    readers: usize,
    read: Arc<dyn Fn() -> u64 + Send + Sync>,
    grow: impl FnOnce() -> Duration,
) -> (Duration, Duration) {
    let stop = Arc::new(AtomicBool::new(false));
    let window = Arc::new(AtomicBool::new(false));
    let worst = Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = (0..readers)
        .map(|_| {
            let (stop, window, worst, read) = (
                Arc::clone(&stop),
                Arc::clone(&window),
                Arc::clone(&worst),
                Arc::clone(&read),
            );
            std::thread::spawn(move || {
                let mut sink = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let armed = window.load(Ordering::Relaxed);
                    let t = Instant::now();
                    sink = sink.wrapping_add(read());
                    let d = t.elapsed().as_nanos() as u64;
                    if armed || window.load(Ordering::Relaxed) {
                        worst.fetch_max(d, Ordering::Relaxed);
                    }
                }
                sink
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(50));
    window.store(true, Ordering::Relaxed);
    let grow_time = grow();
    // Let readers that were blocked finish their iteration inside the window.
    std::thread::sleep(Duration::from_millis(20));
    window.store(false, Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        std::hint::black_box(t.join().unwrap());
    }
    (
        Duration::from_nanos(worst.load(Ordering::Relaxed)),
        grow_time,
    )
}

/// Blocks the page right after `v`'s view (so that growth must map a new view); returns it.
fn block_after(v: &SharedVec<u64>) -> Option<(usize, usize)> {
    let page = 4096;
    let end = (v.read().as_ptr() as usize + v.capacity() * 8).next_multiple_of(page);
    // SAFETY: MAP_FIXED_NOREPLACE never replaces a mapping: it fails if the page is taken.
    let p = unsafe {
        libc::mmap(
            end as *mut libc::c_void,
            page,
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED_NOREPLACE,
            -1,
            0,
        )
    };
    (p as usize == end).then_some((end, page))
}

fn stall_round(round: usize, n: usize, readers: usize, new_view: bool) {
    // SharedVec: fill to exactly its capacity, then one push grows it.
    let v = Arc::new(SharedVec::<u64>::new());
    let chunk: Vec<u64> = (0..1u64 << 20).collect();
    while v.len() < n {
        v.extend_from_slice(&chunk[..(n - v.len()).min(chunk.len())]);
    }
    while v.len() < v.capacity() {
        v.push(1);
    }
    let blocker = if new_view { block_after(&v) } else { None };
    let reader = {
        let v = Arc::clone(&v);
        Arc::new(move || {
            let g = v.read();
            g.last().copied().unwrap_or(0)
        }) as Arc<dyn Fn() -> u64 + Send + Sync>
    };
    // Control: the same readers over a 5 ms window in which nothing grows.
    let (worst_idle, _) = stalls(readers, Arc::clone(&reader), || {
        std::thread::sleep(Duration::from_millis(5));
        Duration::ZERO
    });
    let before = v.stats();
    let (worst_shared, grow_shared) = stalls(readers, reader, || {
        let t = Instant::now();
        v.push(2);
        t.elapsed()
    });
    let after = v.stats();
    let how = if after.in_place > before.in_place {
        "in place"
    } else {
        "new view"
    };
    drop(v);
    if let Some((p, len)) = blocker {
        // SAFETY: the page this example mapped above, unused since.
        unsafe { libc::munmap(p as *mut libc::c_void, len) };
    }

    // RwLock<Vec<u64>>: the writer reallocates under the write lock.
    let l = Arc::new(RwLock::new(Vec::<u64>::with_capacity(n)));
    l.write().unwrap().extend((0..n as u64).map(|x| x ^ 0x55));
    let reader = {
        let l = Arc::clone(&l);
        Arc::new(move || {
            let g = l.read().unwrap();
            g.last().copied().unwrap_or(0)
        }) as Arc<dyn Fn() -> u64 + Send + Sync>
    };
    let (worst_lock, grow_lock) = stalls(readers, reader, || {
        let t = Instant::now();
        l.write().unwrap().push(2);
        t.elapsed()
    });
    println!(
        "round {round}: SharedVec grow {:>9.1?} ({how}), worst reader stall {:>9.1?} \
         (idle control {:>8.1?}) | RwLock<Vec> grow {:>9.1?}, worst reader stall {:>9.1?}",
        grow_shared, worst_shared, worst_idle, grow_lock, worst_lock
    );
}

/// Median and range.
fn stats(v: &[f64]) -> (f64, f64, f64) {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    (s[s.len() / 2], s[0], s[s.len() - 1])
}

/// Pushes `n` elements one by one; returns the time to push (ms) and the time to push and
/// drop the buffer (ms).
fn push_shared(prefault: Prefault, n: usize) -> (f64, f64) {
    let t = Instant::now();
    let v = SharedVec::with_prefault(prefault);
    for i in 0..n as u64 {
        v.push(i);
    }
    std::hint::black_box(v.len());
    let ms = t.elapsed().as_secs_f64() * 1e3;
    drop(v);
    (ms, t.elapsed().as_secs_f64() * 1e3)
}

/// As `push_shared`, for `RwLock<Vec<u64>>`.
fn push_lock(n: usize) -> (f64, f64) {
    let t = Instant::now();
    let v = RwLock::new(Vec::new());
    for i in 0..n as u64 {
        v.write().unwrap().push(i);
    }
    std::hint::black_box(v.read().unwrap().len());
    let ms = t.elapsed().as_secs_f64() * 1e3;
    drop(v);
    (ms, t.elapsed().as_secs_f64() * 1e3)
}

/// Zeros for `pwritev` (see `page_costs`).
static ZEROS: [u8; 64 << 10] = [0; 64 << 10];

/// Nanoseconds per 4 KiB page to bring in and write 128 MiB with `how` (see the module docs).
fn page_cost(how: &str) -> f64 {
    const TOTAL: usize = 128 << 20;
    const BATCH: usize = 2 << 20;
    let anon = how == "anonymous, write faults";
    // SAFETY: plain system calls on a memory file and mappings this function makes, checks and
    // unmaps; every pointer used lies within the `TOTAL` bytes mapped.
    unsafe {
        let fd = if anon {
            -1
        } else {
            let fd = libc::memfd_create(c"page_costs".as_ptr(), libc::MFD_CLOEXEC);
            assert!(fd >= 0 && libc::ftruncate(fd, TOTAL as libc::off_t) == 0);
            fd
        };
        let t = Instant::now();
        let (flags, file) = if anon {
            (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1)
        } else {
            (libc::MAP_SHARED, fd)
        };
        let rw = libc::PROT_READ | libc::PROT_WRITE;
        let p = libc::mmap(core::ptr::null_mut(), TOTAL, rw, flags, file, 0);
        assert_ne!(p, libc::MAP_FAILED);
        let p = p.cast::<u8>();
        for off in (0..TOTAL).step_by(BATCH) {
            let q = p.add(off).cast::<libc::c_void>();
            let at = off as libc::off_t;
            let ok = match how {
                "memfd, MADV_POPULATE_WRITE" => libc::madvise(q, BATCH, libc::MADV_POPULATE_WRITE),
                "memfd, fallocate + POPULATE_WRITE" => {
                    libc::fallocate(fd, 0, at, BATCH as libc::off_t)
                        | libc::madvise(q, BATCH, libc::MADV_POPULATE_WRITE)
                }
                "memfd, zeros + POPULATE_READ" => {
                    let iov = [libc::iovec {
                        iov_base: ZEROS.as_ptr().cast_mut().cast(),
                        iov_len: ZEROS.len(),
                    }; BATCH / (64 << 10)];
                    let w = libc::pwritev(fd, iov.as_ptr(), iov.len() as i32, at);
                    assert_eq!(w as usize, BATCH);
                    libc::madvise(q, BATCH, libc::MADV_POPULATE_READ)
                }
                _ => 0,
            };
            assert_eq!(ok, 0, "{how}");
            let s = core::slice::from_raw_parts_mut(p.add(off).cast::<u64>(), BATCH / 8);
            for (i, x) in s.iter_mut().enumerate() {
                core::ptr::write_volatile(x, i as u64);
            }
        }
        let ns = t.elapsed().as_secs_f64() * 1e9 / (TOTAL / 4096) as f64;
        libc::munmap(p.cast(), TOTAL);
        if fd >= 0 {
            libc::close(fd);
        }
        ns
    }
}

fn page_costs(rounds: usize) {
    let ways = [
        "anonymous, write faults",
        "memfd, write faults",
        "memfd, MADV_POPULATE_WRITE",
        "memfd, fallocate + POPULATE_WRITE",
        "memfd, zeros + POPULATE_READ",
    ];
    let mut ns = vec![Vec::new(); ways.len()];
    for _ in 0..rounds {
        for (k, how) in ways.iter().enumerate() {
            ns[k].push(page_cost(how));
        }
    }
    println!("bring in and write one 4 KiB page (128 MiB, {rounds} rounds): ns median [range]");
    for (k, how) in ways.iter().enumerate() {
        let (m, lo, hi) = stats(&ns[k]);
        println!("{how:<36} {m:>6.0} [{lo:.0}-{hi:.0}]");
    }
}

fn main() {
    let page_rounds = arg("--page-costs", 0);
    if page_rounds > 0 {
        page_costs(page_rounds);
        return;
    }
    let gib = arg("--gib", 1);
    let readers = arg("--readers", 2);
    let reps = arg("--push-reps", 5).max(1);
    let n = (gib << 30) / 8;
    println!(
        "{readers} readers; the buffer grows from {gib} GiB to {} GiB",
        2 * gib
    );
    for round in 0..3 {
        stall_round(round, n, readers, false);
    }
    for round in 0..3 {
        stall_round(round, n, readers, true);
    }

    let n = 1 << 24;
    println!("\npush of 16 Mi u64, {reps} reps alternating: ms median [range]");
    let modes = [
        ("SharedVec (fault)", Some(Prefault::Fault)),
        ("SharedVec (populate)", Some(Prefault::Populate)),
        ("SharedVec (fallocate)", Some(Prefault::Allocate)),
        ("SharedVec (both)", Some(Prefault::AllocatePopulate)),
        ("SharedVec (zeros, default)", Some(Prefault::WriteZeros)),
        ("RwLock<Vec<u64>>", None),
    ];
    let mut times = vec![Vec::new(); modes.len()];
    let mut with_drop = vec![Vec::new(); modes.len()];
    for _ in 0..reps {
        for (k, (_, m)) in modes.iter().enumerate() {
            let (t, d) = match m {
                Some(p) => push_shared(*p, n),
                None => push_lock(n),
            };
            times[k].push(t);
            with_drop[k].push(d);
        }
    }
    let ratio = |t: &[Vec<f64>], k: usize| {
        let r: Vec<f64> = t[modes.len() - 1]
            .iter()
            .zip(&t[k])
            .map(|(l, x)| l / x)
            .collect();
        stats(&r)
    };
    for (k, (label, _)) in modes.iter().enumerate() {
        let (m, lo, hi) = stats(&times[k]);
        let (rm, rlo, rhi) = ratio(&times, k);
        let (dm, dlo, dhi) = stats(&with_drop[k]);
        let (qm, qlo, qhi) = ratio(&with_drop, k);
        println!(
            "{label:<26} {m:>6.1} [{lo:.1}-{hi:.1}] throughput vs RwLock<Vec>: {rm:.2}x \
             [{rlo:.2}-{rhi:.2}] | with the drop {dm:>6.1} [{dlo:.1}-{dhi:.1}]: {qm:.2}x \
             [{qlo:.2}-{qhi:.2}]"
        );
    }
}
