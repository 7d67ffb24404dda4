//! Process measurements shared by the examples that compare allocators: CPU time, page faults,
//! peak RSS.

/// Process CPU time (user + sys of every thread, seconds) and minor page faults so far.
pub fn usage() -> (f64, u64) {
    // SAFETY: an all-zero rusage is a valid value of this plain C struct.
    let mut ru: libc::rusage = unsafe { core::mem::zeroed() };
    // SAFETY: a valid pointer to a rusage struct, which getrusage fills.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
    (secs(ru.ru_utime) + secs(ru.ru_stime), ru.ru_minflt as u64)
}

/// CPU time of the calling thread, seconds.
pub fn thread_cpu() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid pointer to a timespec, which clock_gettime fills.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

/// Resets the peak RSS (`VmHWM`) to the current RSS, so that the peak read later is the measured
/// part's. Returns false where the kernel does not allow it.
pub fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

fn status_kib(field: &str) -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let v = s.lines().find_map(|l| l.strip_prefix(field))?;
    v.trim().trim_end_matches("kB").trim().parse().ok()
}

/// Peak RSS in KiB: `VmHWM`, or `ru_maxrss` where /proc is not readable.
pub fn peak_rss_kib() -> u64 {
    if let Some(v) = status_kib("VmHWM:") {
        return v;
    }
    // SAFETY: an all-zero rusage is a valid value of this plain C struct.
    let mut ru: libc::rusage = unsafe { core::mem::zeroed() };
    // SAFETY: a valid pointer to a rusage struct, which getrusage fills.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    ru.ru_maxrss as u64
}

/// Current RSS in KiB (`VmRSS`), 0 where /proc is not readable.
#[allow(dead_code)]
pub fn rss_kib() -> u64 {
    status_kib("VmRSS:").unwrap_or(0)
}
