//! Growth strategies side by side: std `Vec` on glibc, `Vec` on mimalloc (a copying
//! allocator), `RemapVec` (default, huge pages); push one by one, `extend`, doubling growth
//! with and without writing, the single worst grow step (1 -> 2 GiB), and arena compaction and
//! relocation.
//!
//! ```text
//! cargo bench --bench grow                # the whole suite, about 10 minutes on 2 cores
//! cargo bench --bench grow -- --quick     # one quick pass
//! cargo bench --bench grow -- push_u32    # one group
//! cargo bench --bench grow -- push_u32 --measurement-time 10 --sample-size 20
//! ```
//!
//! Sample sizes and times are defaults on each `criterion_group!`'s `config` (10 samples; 3 s
//! for the growth groups, 2 s for the single steps), so the command line's `--sample-size`,
//! `--measurement-time`, `--warm-up-time` and `--quick` override them.
//!
//! `RemapVec` keeps the mapping of a dropped vector for the next one (`VecOptions::reuse_freed`,
//! on by default), so from the second iteration on a push bench fills pages that are still in
//! memory, as mimalloc's and glibc's caches do for their vectors. The worst-step bench turns
//! that off, to time a real grow.
//!
//! Memory state: criterion runs iterations back to back, so every timed run uses memory that
//! the previous iteration freed a moment ago ("warm": the VM has not returned it to the host).
//! Each group also runs one untimed warm-up pass of its largest size first. Setup that is not
//! part of the measured operation (filling a vector before the worst-grow step, fragmenting an
//! arena) is outside the clock (`iter_custom`).

#![allow(missing_docs)]

#[path = "common/mi.rs"]
mod mi;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use mi::Mi;
use remapvec::{ArenaOptions, CostModel, PageArena, RemapVec, VecOptions};
use std::hint::black_box;
use std::time::{Duration, Instant};

const MIB: usize = 1 << 20;
const GIB: usize = 1 << 30;

fn huge() -> VecOptions {
    VecOptions::default().huge_pages(true)
}

/// Defaults with 10 samples (the suite must finish in minutes on 2 cores); the command line
/// overrides them.
fn config(warm_up_ms: u64, secs: u64) -> Criterion {
    Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(warm_up_ms))
        .measurement_time(Duration::from_secs(secs))
}

/// Benches `$body` on a fresh buffer `$v = $new` per iteration, then drops it.
macro_rules! bench_buf {
    ($g:expr, $id:expr, $v:ident = $new:expr => $body:expr) => {
        $g.bench_function($id, |b| {
            b.iter(|| {
                #[allow(unused_mut)]
                let mut $v = $new;
                $body;
                black_box(&$v);
            })
        })
    };
}

fn push_group<T: Copy>(c: &mut Criterion, name: &str, sizes: &[usize])
where
    u64: TryInto<T>,
{
    let elem = core::mem::size_of::<T>();
    let mut g = c.benchmark_group(name);
    for &bytes in sizes {
        let n = bytes / elem;
        g.throughput(Throughput::Elements(n as u64));
        let id = |s: &str| BenchmarkId::new(s, format!("{}MiB", bytes / MIB));
        let val = |i: usize| -> T {
            match (i as u64).try_into() {
                Ok(v) => v,
                Err(_) => unreachable!(),
            }
        };
        bench_buf!(g, id("std Vec (glibc)"), v = Vec::new() => (0..n).for_each(|i| v.push(val(i))));
        bench_buf!(g, id("Vec on mimalloc"), v = allocator_api2::vec::Vec::new_in(Mi)
            => (0..n).for_each(|i| v.push(val(i))));
        bench_buf!(g, id("RemapVec"), v = RemapVec::new() => (0..n).for_each(|i| v.push(val(i))));
        bench_buf!(g, id("RemapVec huge pages"), v = RemapVec::with_options(huge())
            => (0..n).for_each(|i| v.push(val(i))));
    }
    g.finish();
}

fn bench_push(c: &mut Criterion) {
    push_group::<u32>(c, "push_u32", &[16 * MIB, GIB]);
    push_group::<u64>(c, "push_u64", &[16 * MIB, GIB]);
}

fn bench_extend(c: &mut Criterion) {
    let mut g = c.benchmark_group("extend_u32");
    for bytes in [16 * MIB, GIB] {
        let n = bytes / 4;
        g.throughput(Throughput::Elements(n as u64));
        let id = |s: &str| BenchmarkId::new(s, format!("{}MiB", bytes / MIB));
        // A filter hides the exact length, so `extend` grows as it goes (like pushes).
        let items = || (0..n as u32).filter(|x| x & 0x8000_0000 == 0);
        bench_buf!(g, id("std Vec (glibc)"), v = Vec::<u32>::new() => v.extend(items()));
        bench_buf!(g, id("Vec on mimalloc"), v = allocator_api2::vec::Vec::<u32, Mi>::new_in(Mi)
            => v.extend(items()));
        bench_buf!(g, id("RemapVec"), v = RemapVec::<u32>::new() => v.extend(items()));
    }
    g.finish();
}

/// Capacity doubling from 4 KiB to 1 GiB by `reserve`, writing every new byte or none.
fn bench_doubling(c: &mut Criterion) {
    let mut g = c.benchmark_group("double_4KiB_to_1GiB");
    g.throughput(Throughput::Bytes(GIB as u64));
    for write in [false, true] {
        let w = if write { "written" } else { "untouched" };
        // Double the capacity by `reserve_exact` up to 1 GiB, writing the new bytes or not.
        macro_rules! double {
            ($v:ident) => {
                while $v.capacity() < GIB {
                    let target = $v.capacity() * 2;
                    $v.reserve_exact(target - $v.len());
                    if write {
                        $v.resize(target, 1);
                    }
                }
            };
        }
        bench_buf!(g, BenchmarkId::new("std Vec (glibc)", w), v = Vec::<u8>::with_capacity(4096)
            => double!(v));
        bench_buf!(g, BenchmarkId::new("RemapVec", w), v = RemapVec::<u8>::with_capacity(4096)
            => double!(v));
    }
    g.finish();
}

/// The single worst step: one grow of a full 1 GiB buffer to 2 GiB. Filling is untimed.
fn bench_worst_step(c: &mut Criterion) {
    let mut g = c.benchmark_group("grow_full_1GiB_to_2GiB");
    fn timed<V>(iters: u64, mut make: impl FnMut() -> V, mut grow: impl FnMut(&mut V)) -> Duration {
        let mut total = Duration::ZERO;
        for _ in 0..iters {
            let mut v = make();
            let t = Instant::now();
            grow(&mut v);
            total += t.elapsed();
            black_box(&v);
        }
        total
    }
    let n = GIB / 8;
    g.bench_function("std Vec (glibc)", |b| {
        b.iter_custom(|iters| {
            timed(
                iters,
                || {
                    let mut v: Vec<u64> = Vec::with_capacity(n);
                    v.resize(n, 7);
                    v
                },
                |v| v.reserve(n),
            )
        })
    });
    g.bench_function("Vec on mimalloc", |b| {
        b.iter_custom(|iters| {
            timed(
                iters,
                || {
                    let mut v: allocator_api2::vec::Vec<u64, Mi> =
                        allocator_api2::vec::Vec::with_capacity_in(n, Mi);
                    v.resize(n, 7);
                    v
                },
                |v| v.reserve(n),
            )
        })
    });
    // Without the reuse cache: a kept mapping of 2 GiB from an earlier iteration would make
    // the grow a no-op.
    g.bench_function("RemapVec", |b| {
        b.iter_custom(|iters| {
            timed(
                iters,
                || {
                    let opts = VecOptions::default().reuse_freed(false);
                    let mut v: RemapVec<u64> = RemapVec::with_capacity_and_options(n, opts);
                    v.resize(n, 7);
                    v
                },
                |v| v.reserve(n),
            )
        })
    });
    g.finish();
}

/// A 1 GiB arena of regions of 4 KiB-8 MiB (log-uniform), every region written, half freed
/// at random; the same layout for every mode.
fn fragmented(opts: ArenaOptions) -> PageArena {
    let mut a = PageArena::with_options(opts.initial_capacity(GIB + GIB / 2));
    let mut x = 0x5EEDu64;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut ids = Vec::new();
    let mut used = 0;
    while used < GIB {
        let shift = 12 + next() % 12; // 4 KiB ..= 8 MiB
        let len = 1usize << shift;
        let id = a.alloc(len).unwrap();
        a.get_mut(id).unwrap().fill(ids.len() as u8);
        ids.push(id);
        used += len;
    }
    for id in ids {
        if next() % 2 == 0 {
            a.free(id).unwrap();
        }
    }
    a
}

fn bench_arena(c: &mut Criterion) {
    let mut g = c.benchmark_group("arena_compact_1GiB_half_holes");
    let memcpy = CostModel::copy_only();
    let modes = [
        ("multi-mapping mremap", ArenaOptions::new()),
        (
            "one mremap per region",
            ArenaOptions::new().multi_mapping_move(false),
        ),
        ("memcpy", ArenaOptions::new().cost_model(memcpy)),
    ];
    for (name, opts) in modes {
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let mut a = fragmented(opts);
                    let t = Instant::now();
                    black_box(a.compact().unwrap());
                    total += t.elapsed();
                }
                total
            })
        });
    }
    g.finish();

    // Relocation: the arena is full and the addresses after it are taken, so growing moves
    // all its mappings to a new range at once.
    let mut g = c.benchmark_group("arena_relocate_1GiB");
    for (name, opts) in &modes[..2] {
        g.bench_function(*name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let mut a = fragmented(*opts);
                    let end = a.address_range().end;
                    // SAFETY: MAP_FIXED_NOREPLACE never replaces anything.
                    let blocker = unsafe {
                        libc::mmap(
                            end as *mut libc::c_void,
                            4096,
                            libc::PROT_NONE,
                            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED_NOREPLACE,
                            -1,
                            0,
                        )
                    };
                    // More than the arena has free: it must grow, and cannot in place.
                    let more = a.reserved_bytes();
                    let t = Instant::now();
                    black_box(a.alloc(more).unwrap());
                    total += t.elapsed();
                    if blocker != libc::MAP_FAILED {
                        // SAFETY: our own mapping.
                        unsafe { libc::munmap(blocker, 4096) };
                    }
                }
                total
            })
        });
    }
    g.finish();
}

/// Grows of 64 vectors from 1 MiB to 64 MiB, doubling, while a plain `mmap` is made between
/// any two grows; prints the share of grows that were in place.
fn bench_in_place_share(c: &mut Criterion) {
    let mut g = c.benchmark_group("grows_among_other_mappings");
    let mut total = remapvec::GrowStats::default();
    g.bench_function("RemapVec, 64 vectors, 1->64 MiB", |b| {
        b.iter(|| {
            // Without the reuse cache: a kept mapping would give a vector a large capacity
            // up front, and there would be no grows to count.
            let opts = VecOptions::default().reuse_freed(false);
            let mut vs: Vec<RemapVec<u8>> = (0..64)
                .map(|_| RemapVec::with_capacity_and_options(MIB, opts))
                .collect();
            let mut others = Vec::new();
            for round in 1..=6 {
                for v in &mut vs {
                    v.reserve_exact((MIB << round) - v.len());
                    // SAFETY: a fresh anonymous mapping, unmapped below.
                    let p = unsafe {
                        libc::mmap(
                            core::ptr::null_mut(),
                            MIB,
                            libc::PROT_READ | libc::PROT_WRITE,
                            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                            -1,
                            0,
                        )
                    };
                    others.push(p);
                }
            }
            for v in &vs {
                total += v.stats();
            }
            for p in others {
                // SAFETY: our own mappings.
                unsafe { libc::munmap(p, MIB) };
            }
        })
    });
    g.finish();
    let grows = total.in_place + total.moved + total.copied;
    if grows > 0 {
        println!(
            "in-place share of grows among other mappings: {}/{} = {:.3} (moved {}, copied {})",
            total.in_place,
            grows,
            total.in_place as f64 / grows as f64,
            total.moved,
            total.copied
        );
    }
}

criterion_group! {
    name = growth;
    config = config(500, 3);
    targets = bench_push, bench_extend, bench_doubling
}
criterion_group! {
    name = steps;
    config = config(100, 2);
    targets = bench_worst_step, bench_in_place_share, bench_arena
}
criterion_main!(growth, steps);
