//! Grows a `RemapVec<u64>` by doubling from 1 MiB to a few GiB, filling every element, and
//! prints how each grow happened and how long that single grow took, next to `std::vec::Vec`
//! doing the same on the system allocator.
//!
//! ```text
//! cargo run --release --example grow -- [--max-gib 4]
//! ```

use remapvec::RemapVec;
use std::time::{Duration, Instant};

fn main() {
    let mut max_gib: usize = 4;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--max-gib" => max_gib = args.next().and_then(|s| s.parse().ok()).unwrap_or(max_gib),
            "-h" | "--help" => {
                println!("usage: grow [--max-gib N]   (default 4)");
                return;
            }
            other => {
                eprintln!("unknown argument {other:?}; try --help");
                std::process::exit(2);
            }
        }
    }
    let max_bytes = max_gib.max(1) << 30;
    let elem = size_of::<u64>();

    println!("Doubling a full vector of u64 from 1 MiB to {max_gib} GiB; each row times one grow.");
    println!(
        "{:>10} -> {:>10}  {:>12} {:>9}  {:>12}  {:>8}",
        "from", "to", "RemapVec", "how", "std Vec", "ratio"
    );

    // RemapVec: fill to capacity, then time the one `reserve` that grows it.
    let mut rv: RemapVec<u64> = RemapVec::with_capacity((1 << 20) / elem);
    let mut rows: Vec<(usize, usize, Duration, &'static str)> = Vec::new();
    while rv.capacity() * elem < max_bytes {
        let cap = rv.capacity();
        let start = rv.len() as u64;
        rv.extend(start..cap as u64);
        let before = rv.stats();
        let t = Instant::now();
        rv.reserve(1);
        let dt = t.elapsed();
        let after = rv.stats();
        let how = if after.in_place > before.in_place {
            "in place"
        } else if after.moved > before.moved {
            "moved"
        } else {
            "copied"
        };
        rows.push((cap * elem, rv.capacity() * elem, dt, how));
    }
    // Check every element survived every grow.
    assert!(
        rv.iter().enumerate().all(|(i, &x)| x == i as u64),
        "contents changed"
    );
    let stats = rv.stats();
    drop(rv);

    // std Vec on the system allocator, same steps.
    let mut sv: Vec<u64> = Vec::with_capacity((1 << 20) / elem);
    let mut std_times = Vec::new();
    while sv.capacity() * elem < max_bytes {
        let cap = sv.capacity();
        let start = sv.len() as u64;
        sv.extend(start..cap as u64);
        let t = Instant::now();
        sv.reserve(1);
        std_times.push(t.elapsed());
    }
    assert!(sv.iter().enumerate().all(|(i, &x)| x == i as u64));
    drop(sv);

    for (i, (from, to, dt, how)) in rows.iter().enumerate() {
        let std_dt = std_times.get(i).copied();
        let ratio = std_dt.map(|s| s.as_secs_f64() / dt.as_secs_f64().max(1e-9));
        println!(
            "{:>10} -> {:>10}  {:>12} {:>9}  {:>12}  {:>8}",
            human(*from),
            human(*to),
            format!("{dt:.1?}"),
            how,
            std_dt.map(|d| format!("{d:.1?}")).unwrap_or_default(),
            ratio.map(|r| format!("{r:.1}x")).unwrap_or_default(),
        );
    }
    println!(
        "\nRemapVec: {} grows in place, {} moved, {} copied ({} bytes copied, {} bytes remapped, {} syscalls)",
        stats.in_place,
        stats.moved,
        stats.copied,
        stats.bytes_copied,
        stats.bytes_remapped,
        stats.syscalls
    );
    println!(
        "ratio = std Vec time / RemapVec time for the same step (higher is better for RemapVec)"
    );
}

fn human(bytes: usize) -> String {
    if bytes >= 1 << 30 {
        format!("{} GiB", bytes >> 30)
    } else if bytes >= 1 << 20 {
        format!("{} MiB", bytes >> 20)
    } else {
        format!("{} KiB", bytes >> 10)
    }
}
