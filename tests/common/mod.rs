//! Helpers shared by the integration tests.

/// Limits this process's address space (`RLIMIT_AS`) to what it uses now plus `extra` bytes.
/// Only for child processes: the limit cannot be raised again.
pub fn limit_address_space(extra: u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let vm_kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmSize:"))
        .and_then(|s| s.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    let lim = (vm_kib << 10) + extra;
    let r = libc::rlimit {
        rlim_cur: lim,
        rlim_max: lim,
    };
    // SAFETY: setrlimit with a valid struct; affects only this process.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_AS, &r) }, 0);
}
