//! A whole program under each global allocator: read a generated CSV into one buffer, parse it
//! into a `Vec<Row>`, sort, group into a `HashMap`, serialize groups and rows with serde_json,
//! drop everything, while two threads allocate, fill, check and free scratch buffers of
//! 256 KiB–8 MiB. Prints one line per allocator: CPU time (user + sys, median and range over the
//! runs), wall time, minor page faults and peak RSS of the measured part, and the CPU-time ratios
//! against System and against mimalloc; then the main thread's CPU time per phase.
//!
//! `cargo run --release --example pipeline -- [--mb 500 | --rows N] [--runs 1] [--only remap,system]`
//!
//! The CSV (rows `id,name,city,amount,timestamp`, ~500 MB by default) is generated
//! deterministically once into the temporary directory and reused while its size is right.
//! Each allocator runs in its own child process of this example (the global allocator is per
//! process): glibc (`system`), `mimalloc`, `jemalloc` (tikv-jemallocator), `remap`
//! (`RemapAlloc::new()`, around `System`), `remap+mimalloc` (`RemapAlloc::wrapping(MiMalloc)`) and
//! `remap+jemalloc`. The program is `examples/common/pipeline.rs`, which `realloc_strategies` also
//! runs as its `pipeline` workload.
//! With `--runs N` the allocators take turns, N rounds. The children check that every allocator
//! produced the same output (a checksum of the JSON) and the scratch threads check every buffer's
//! content before freeing it. `--mb 20` finishes in seconds.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

#[path = "common/buf.rs"]
mod buf;
#[path = "common/measure.rs"]
mod measure;
#[path = "common/pipeline.rs"]
mod pipeline;
#[path = "common/switch.rs"]
mod switch;

use measure::{peak_rss_kib, reset_peak_rss, usage};
use pipeline::PHASES;
use switch::{ENV, NAMES};

#[global_allocator]
static GLOBAL: switch::Switch = switch::Switch;

fn child(cfg: &Config) {
    let path = pipeline::csv_path(cfg.rows);
    let hwm_reset = reset_peak_rss();
    let (c0, f0) = usage();
    let start = Instant::now();
    let out = pipeline::run(&path, cfg.scratch_iters(), Vec::new, Vec::new);
    assert!(out.scratch_ok, "a scratch buffer lost its content");
    let wall = start.elapsed().as_secs_f64();
    let (c1, f1) = usage();
    let hwm = peak_rss_kib();
    let p: Vec<String> = out.phases.iter().map(|x| format!("{x:.4}")).collect();
    let (n_rows, n_groups, json_bytes) = out.shape;
    println!(
        "{:.4} {wall:.4} {} {hwm} {} {:.4} {:016x} {n_rows} {n_groups} {json_bytes} {}",
        c1 - c0,
        f1 - f0,
        p.join(" "),
        out.scratch_cpu,
        out.sum,
        hwm_reset as u8,
    );
}

// ---------------------------------------------------------------------------------------------
// The parent: options, children, table

struct Config {
    rows: u64,
    runs: usize,
    only: Vec<String>,
}

const DEFAULT_MB: u64 = 500;

impl Config {
    fn from_args(args: &[String]) -> Config {
        let arg = |name: &str| {
            args.iter()
                .position(|a| a == name)
                .and_then(|i| args.get(i + 1).cloned())
        };
        let num = |name: &str| {
            arg(name).map(|v| {
                v.parse::<u64>()
                    .unwrap_or_else(|_| panic!("{name} takes a number, not {v:?}"))
            })
        };
        let rows = num("--rows")
            .unwrap_or_else(|| pipeline::rows_for_mb(num("--mb").unwrap_or(DEFAULT_MB) as f64))
            .max(1);
        let only: Vec<String> = match arg("--only") {
            Some(o) => o.split(',').map(str::to_owned).collect(),
            None => NAMES.iter().map(|n| n.to_string()).collect(),
        };
        for n in &only {
            assert!(
                NAMES.contains(&n.as_str()),
                "--only: {n:?} is none of {NAMES:?}"
            );
        }
        Config {
            rows,
            runs: num("--runs").unwrap_or(1).max(1) as usize,
            only,
        }
    }
    /// Scratch buffers per thread: 2000 at the default size, in proportion below it.
    fn scratch_iters(&self) -> usize {
        pipeline::scratch_iters(self.rows)
    }
}

/// One child's report.
struct Run {
    cpu: f64,
    wall: f64,
    minflt: u64,
    hwm_kib: u64,
    phases: Vec<f64>,
    scratch: f64,
    sum: String,
    shape: String,
    /// Whether the peak RSS covers only the measured part (`VmHWM` was reset).
    hwm_reset: bool,
}

fn run_child(args: &[String], name: &str) -> Run {
    let out = Command::new(std::env::current_exe().expect("own path"))
        .args(args.iter().skip(1))
        .env(ENV, name)
        .output()
        .expect("child runs");
    assert!(
        out.status.success(),
        "{name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = String::from_utf8_lossy(&out.stdout);
    let f: Vec<&str> = line.split_whitespace().collect();
    let num = |i: usize| f[i].parse::<f64>().expect("a number from the child");
    Run {
        cpu: num(0),
        wall: num(1),
        minflt: num(2) as u64,
        hwm_kib: num(3) as u64,
        phases: (4..4 + PHASES.len()).map(num).collect(),
        scratch: num(10),
        sum: f[11].to_owned(),
        shape: format!("{} rows, {} groups, {} JSON bytes", f[12], f[13], f[14]),
        hwm_reset: f[15] == "1",
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn ratio(x: f64, base: Option<f64>) -> String {
    base.map_or("-".into(), |b| format!("{:.3}", x / b))
}

fn report(cfg: &Config, csv: &Path, size: u64, results: &[(String, Vec<Run>)]) {
    let cpu_med = |name: &str| {
        results
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, r)| median(r.iter().map(|r| r.cpu).collect()))
    };
    let (sys, mi) = (cpu_med("system"), cpu_med("mimalloc"));
    println!(
        "pipeline: {} rows, {:.1} MB CSV ({}); 2 scratch threads x {} buffers of 256 KiB-8 MiB; {} run(s) per allocator, alternating",
        cfg.rows,
        size as f64 / 1e6,
        csv.display(),
        cfg.scratch_iters(),
        cfg.runs
    );
    println!(
        "{:<16} {:>8} {:>19} {:>8} {:>10} {:>9} {:>8} {:>9}",
        "allocator", "cpu s", "[min-max]", "wall s", "minflt", "peak MB", "/system", "/mimalloc"
    );
    for (name, runs) in results {
        let cpu = median(runs.iter().map(|r| r.cpu).collect());
        let lo = runs.iter().map(|r| r.cpu).fold(f64::INFINITY, f64::min);
        let hi = runs.iter().map(|r| r.cpu).fold(0.0, f64::max);
        println!(
            "{name:<16} {cpu:>8.2} {:>19} {:>8.2} {:>10.0} {:>9.0} {:>8} {:>9}",
            format!("[{lo:.2}-{hi:.2}]"),
            median(runs.iter().map(|r| r.wall).collect()),
            median(runs.iter().map(|r| r.minflt as f64).collect()),
            median(runs.iter().map(|r| r.hwm_kib as f64).collect()) * 1024.0 / 1e6,
            ratio(cpu, sys),
            ratio(cpu, mi),
        );
    }
    println!("\nCPU s per phase, median (main thread; scratch = both scratch threads):");
    print!("{:<16}", "allocator");
    for p in PHASES.iter().chain(&["scratch"]) {
        print!(" {p:>8}");
    }
    println!();
    for (name, runs) in results {
        print!("{name:<16}");
        for i in 0..PHASES.len() {
            print!(
                " {:>8.3}",
                median(runs.iter().map(|r| r.phases[i]).collect())
            );
        }
        println!(" {:>8.3}", median(runs.iter().map(|r| r.scratch).collect()));
    }
    let first = &results[0].1[0];
    let same = results
        .iter()
        .flat_map(|(_, r)| r)
        .all(|r| r.sum == first.sum && r.shape == first.shape);
    println!(
        "\noutput ({}): {}",
        first.shape,
        if same {
            "identical under every allocator"
        } else {
            "DIFFERS between runs"
        }
    );
    if results.iter().flat_map(|(_, r)| r).any(|r| !r.hwm_reset) {
        println!("(peak RSS could not be reset: it covers each child's start-up too)");
    }
    assert!(same, "the pipeline's output depends on the allocator");
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let cfg = Config::from_args(&args);
    if std::env::var_os(ENV).is_some() {
        child(&cfg);
        return;
    }
    let (csv, size) = pipeline::ensure_csv(cfg.rows);
    let mut results: Vec<(String, Vec<Run>)> =
        cfg.only.iter().map(|n| (n.clone(), Vec::new())).collect();
    for round in 0..cfg.runs {
        for (name, runs) in &mut results {
            let r = run_child(&args, name);
            eprintln!(
                "run {}/{} {name:<16} cpu {:.2} s  wall {:.2} s",
                round + 1,
                cfg.runs,
                r.cpu,
                r.wall
            );
            runs.push(r);
        }
    }
    report(&cfg, &csv, size, &results);
}
