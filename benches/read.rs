//! Reading a whole 512 MiB file into memory: `std::fs::read` against `RemapVec::read_file` and
//! `RemapVec::read_to_end_from` (with the size reserved first, and without: growth by `mremap`),
//! and against `io::copy` into a `RemapVec` (what code without `read_to_end_from` had to do).
//!
//! ```text
//! cargo bench --bench read                   # about 2 minutes on 2 cores
//! cargo bench --bench read -- --quick        # one quick pass
//! REMAPVEC_READ_MIB=64 cargo bench --bench read   # another file size
//! ```
//!
//! The file is written to the system's temporary directory once, before the first bench, and
//! removed at the end; it stays in the page cache (a cold read would time the disk). Every
//! variant returns its buffer to its allocator at the end of each iteration: `fs::read`'s
//! 512 MiB block goes back to glibc, which unmaps it (above its mmap threshold), so every
//! iteration faults 512 MiB of fresh pages. `RemapVec` keeps a dropped mapping for the next
//! vector of about its size (`VecOptions::reuse_freed`, on by default) when the recycler's bound
//! allows (kept bytes at most 256 MiB plus a quarter of the live mapped bytes: a lone 512 MiB
//! buffer is not kept, a 64 MiB one is), and then reads into pages already in memory; the
//! `no-reuse` variants turn that off and fault every page like `fs::read` (in one
//! `MADV_POPULATE_WRITE` per MiB rather than one trap per page).

#![allow(missing_docs)]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use remapvec::{RemapVec, VecOptions};
use std::fs::File;
use std::hint::black_box;
use std::io::{self, Write};
use std::path::PathBuf;
use std::time::Duration;

const MIB: usize = 1 << 20;

fn file_size() -> usize {
    std::env::var("REMAPVEC_READ_MIB")
        .ok()
        .and_then(|s| s.parse::<usize>().ok())
        .unwrap_or(512)
        * MIB
}

/// Writes `size` bytes of a pattern to a new file in the temporary directory.
fn make_file(size: usize) -> PathBuf {
    let path = std::env::temp_dir().join(format!("remapvec-bench-read-{}", std::process::id()));
    let mut f = io::BufWriter::new(File::create(&path).expect("create the bench file"));
    let block: Vec<u8> = (0..MIB).map(|i| (i * 7 + i / 4096) as u8).collect();
    let mut left = size;
    while left > 0 {
        let n = left.min(MIB);
        f.write_all(&block[..n]).expect("write the bench file");
        left -= n;
    }
    f.flush().expect("flush the bench file");
    path
}

/// Reads with the size reserved first, into a vector made with `opts`.
fn read_sized(path: &PathBuf, opts: VecOptions) -> RemapVec<u8> {
    let mut file = File::open(path).unwrap();
    let size = file.metadata().unwrap().len() as usize;
    let mut v = RemapVec::with_capacity_and_options(size, opts);
    v.read_to_end_from(&mut file).unwrap();
    v
}

fn read(c: &mut Criterion) {
    let size = file_size();
    let path = make_file(size);
    let no_reuse = VecOptions::new().reuse_freed(false);
    // Check once that every variant reads the same bytes.
    let want = std::fs::read(&path).unwrap();
    assert_eq!(RemapVec::read_file(&path).unwrap(), want);
    assert_eq!(read_sized(&path, no_reuse), want);
    drop(want);

    let mut g = c.benchmark_group(format!("read_{}MiB", size / MIB));
    g.throughput(Throughput::Bytes(size as u64));
    g.bench_function("fs::read", |b| {
        b.iter(|| black_box(std::fs::read(&path).unwrap()))
    });
    g.bench_function("RemapVec::read_file", |b| {
        b.iter(|| black_box(RemapVec::read_file(&path).unwrap()))
    });
    g.bench_function("read_to_end_from sized no-reuse", |b| {
        b.iter(|| black_box(read_sized(&path, no_reuse)))
    });
    g.bench_function("read_to_end_from unsized", |b| {
        b.iter(|| {
            let mut v = RemapVec::new();
            v.read_to_end_from(&mut File::open(&path).unwrap()).unwrap();
            black_box(v)
        })
    });
    g.bench_function("read_to_end_from unsized no-reuse", |b| {
        b.iter(|| {
            let mut v = RemapVec::with_options(no_reuse);
            v.read_to_end_from(&mut File::open(&path).unwrap()).unwrap();
            black_box(v)
        })
    });
    g.bench_function("io::copy unsized no-reuse", |b| {
        b.iter(|| {
            let mut v = RemapVec::with_options(no_reuse);
            io::copy(&mut File::open(&path).unwrap(), &mut v).unwrap();
            black_box(v)
        })
    });
    g.finish();
    let _ = std::fs::remove_file(&path);
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(8))
}

criterion_group! {
    name = benches;
    config = config();
    targets = read
}
criterion_main!(benches);
