//! Counts this process's `mmap`, `mremap` and `munmap` system calls, made by any thread and any
//! library (glibc's malloc calls them internally, where no symbol interposition sees them): a
//! seccomp filter hands each of these calls to a supervisor thread, which counts it and lets the
//! kernel carry it out unchanged (`SECCOMP_USER_NOTIF_FLAG_CONTINUE`, Linux 5.5). Every counted
//! call costs two thread switches, so runs that count are not timed.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

static COUNTS: [AtomicU64; 3] = [const { AtomicU64::new(0) }; 3];

/// The calls counted so far: `[mmap, mremap, munmap]`.
pub fn counts() -> [u64; 3] {
    [0, 1, 2].map(|i| COUNTS[i].load(Relaxed))
}

#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 0xC000_003E;
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: u32 = 0xC000_00B7;

const NRS: [libc::c_long; 3] = [libc::SYS_mmap, libc::SYS_mremap, libc::SYS_munmap];

/// Starts counting the calls of the calling thread and of the threads it starts from now on
/// (call it before starting any). Fails where the kernel or the architecture does not allow it.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
pub fn start() -> std::io::Result<()> {
    use libc::{BPF_ABS, BPF_JEQ, BPF_JMP, BPF_K, BPF_LD, BPF_RET, BPF_W, sock_filter};
    let stmt = |code: u32, k: u32| sock_filter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k,
    };
    let jeq = |k: u32, jt: u8, jf: u8| sock_filter {
        code: (BPF_JMP | BPF_JEQ | BPF_K) as u16,
        jt,
        jf,
        k,
    };
    // seccomp_data: nr at offset 0, arch at offset 4.
    let mut filter = [
        stmt(BPF_LD | BPF_W | BPF_ABS, 4),
        jeq(AUDIT_ARCH, 0, 4), // another ABI: allow (to 6)
        stmt(BPF_LD | BPF_W | BPF_ABS, 0),
        jeq(NRS[0] as u32, 3, 0), // to 7
        jeq(NRS[1] as u32, 2, 0),
        jeq(NRS[2] as u32, 1, 0),
        stmt(BPF_RET | BPF_K, libc::SECCOMP_RET_ALLOW),
        stmt(BPF_RET | BPF_K, libc::SECCOMP_RET_USER_NOTIF),
    ];
    let prog = libc::sock_fprog {
        len: filter.len() as u16,
        filter: filter.as_mut_ptr(),
    };
    // The supervisor starts before the filter exists, so its own calls are not filtered.
    let (tx, rx) = std::sync::mpsc::channel::<i32>();
    std::thread::spawn(move || {
        if let Ok(fd) = rx.recv() {
            supervise(fd);
        }
    });
    // SAFETY: PR_SET_NO_NEW_PRIVS takes plain integers; it only restricts this process.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `prog` points to `filter`, alive during the call (the kernel copies it). The filter
    // only lets the supervisor see calls, which it always continues unchanged.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            libc::SECCOMP_FILTER_FLAG_NEW_LISTENER,
            &prog as *const libc::sock_fprog,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    tx.send(fd as i32)
        .map_err(|_| std::io::Error::other("the supervisor thread is gone"))
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
pub fn start() -> std::io::Result<()> {
    Err(std::io::Error::other(
        "syscall counting: x86_64 and aarch64 only",
    ))
}

/// Receives every filtered call, counts it and lets it continue. Allocates nothing (a filtered
/// thread may hold an allocator lock while it waits for us).
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
fn supervise(fd: i32) {
    loop {
        // SAFETY: an all-zero seccomp_notif is a valid value (the kernel requires it zeroed).
        let mut req: libc::seccomp_notif = unsafe { core::mem::zeroed() };
        // SAFETY: `fd` is our seccomp listener; `req` is a valid seccomp_notif to fill.
        if unsafe { libc::ioctl(fd, libc::SECCOMP_IOCTL_NOTIF_RECV, &mut req) } != 0 {
            match std::io::Error::last_os_error().raw_os_error() {
                Some(libc::EINTR | libc::ENOENT) => continue,
                _ => return,
            }
        }
        if let Some(i) = NRS.iter().position(|&n| n == req.data.nr as libc::c_long) {
            COUNTS[i].fetch_add(1, Relaxed);
        }
        let mut resp = libc::seccomp_notif_resp {
            id: req.id,
            val: 0,
            error: 0,
            flags: libc::SECCOMP_USER_NOTIF_FLAG_CONTINUE as u32,
        };
        // SAFETY: `resp` answers the notification just received. ENOENT (the caller was
        // interrupted meanwhile) needs nothing from us.
        unsafe { libc::ioctl(fd, libc::SECCOMP_IOCTL_NOTIF_SEND, &mut resp) };
    }
}
