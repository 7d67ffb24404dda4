//! Growing while others read: the worst stall a reader sees while a 1 GiB buffer grows to
//! 2 GiB, for `SharedVec` (readers never wait) and for `RwLock<Vec<u64>>` (readers wait while
//! the writer holds the lock to reallocate).
//!
//! `cargo run --release --example shared_read [-- --gib 1 --readers 2]`
//!
//! Each reader loops: take a read guard (or the read lock), read the last element, release,
//! and records the longest single iteration while the grow is in progress. Both buffers are
//! filled first (warm memory), then the writer appends the one element that makes it grow.
//! A control window of 5 ms in which nothing grows shows the machine's own noise (2 cores:
//! readers and writer are preempted now and then).

use remapvec::SharedVec;
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

fn main() {
    let gib = arg("--gib", 1);
    let readers = arg("--readers", 2);
    let n = (gib << 30) / 8;
    println!(
        "{readers} readers; the buffer grows from {gib} GiB to {} GiB",
        2 * gib
    );

    for round in 0..3 {
        // SharedVec: fill to exactly its capacity, then one push grows it.
        let v = Arc::new(SharedVec::<u64>::new());
        let chunk: Vec<u64> = (0..1u64 << 20).collect();
        while v.len() < n {
            v.extend_from_slice(&chunk[..(n - v.len()).min(chunk.len())]);
        }
        while v.len() < v.capacity() {
            v.push(1);
        }
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
}
