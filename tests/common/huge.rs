//! Helpers of the tests of huge-page advice: turns on the process-wide recycler, and what
//! `/proc/self/smaps` says of a range.
#![allow(dead_code)] // Each test file uses some of them.

use std::sync::{Mutex, MutexGuard};

pub const MIB: usize = 1 << 20;

static SERIAL: Mutex<()> = Mutex::new(());

/// The recycler is process-wide: the tests of a file take turns, each from an empty recycler
/// (a block kept by another test could serve or be grown for a request).
pub fn serial() -> MutexGuard<'static, ()> {
    let g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    remapvec::release_cached();
    g
}

/// Calls `f` with the start and end of each mapping of `/proc/self/smaps` and its lines.
fn each_mapping(mut f: impl FnMut(usize, usize, &str)) {
    let s = std::fs::read_to_string("/proc/self/smaps").unwrap();
    let mut cur = None;
    for line in s.lines() {
        let first = line.split_whitespace().next().unwrap_or("");
        if let Some((a, b)) = first.split_once('-')
            && let (Ok(a), Ok(b)) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16))
        {
            cur = Some((a, b));
            continue;
        }
        if let Some((a, b)) = cur {
            f(a, b, line);
        }
    }
}

/// (Rss KiB, AnonHugePages KiB) of the mappings overlapping `[p, p + len)`.
pub fn rss_of(p: usize, len: usize) -> (u64, u64) {
    let (mut rss, mut huge) = (0, 0);
    let kib = |l: &str| l.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap();
    each_mapping(|a, b, line| {
        if a < p + len && b > p {
            if line.starts_with("Rss:") {
                rss += kib(line);
            } else if line.starts_with("AnonHugePages:") {
                huge += kib(line);
            }
        }
    });
    (rss, huge)
}

/// The `VmFlags:` line of the mapping that holds `p`.
pub fn flags(p: usize) -> String {
    let mut found = None;
    each_mapping(|a, b, line| {
        if a <= p && p < b && line.starts_with("VmFlags:") {
            found = Some(line.to_string());
        }
    });
    found.unwrap_or_else(|| panic!("{p:#x} not mapped"))
}

/// Whether the mapping that holds `p` is advised for huge pages (`hg` in its flags).
pub fn advised_huge(p: usize) -> bool {
    flags(p).split_whitespace().any(|f| f == "hg")
}

/// `start-end VmFlags: ...` of each mapping overlapping `[p, p + len)`.
pub fn vmas(p: usize, len: usize) -> Vec<String> {
    let mut out = Vec::new();
    each_mapping(|a, b, line| {
        if a < p + len && b > p && line.starts_with("VmFlags:") {
            out.push(format!("{a:#x}-{b:#x} {line}"));
        }
    });
    out
}

/// Whether `HugePages::Dense` converts blocks on this machine: transparent huge pages for 2 MiB
/// pages are in `madvise` mode (the per-size setting, unless it says `inherit`, else the
/// global one). Under `always` the pages are huge already and under `never` they cannot be.
pub fn converts() -> bool {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let per = read("/sys/kernel/mm/transparent_hugepage/hugepages-2048kB/enabled");
    let setting = if per.is_empty() || per.contains("[inherit]") {
        read("/sys/kernel/mm/transparent_hugepage/enabled")
    } else {
        per
    };
    setting.contains("[madvise]")
}
