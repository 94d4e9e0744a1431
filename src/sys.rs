//! The host: open-file limits, Ctrl-C, and facts about the machine for the report.
//!
//! Everything here is read or set once, before or after a run, never per message.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::sync::OnceLock;

/// Soft and hard RLIMIT_NOFILE.
pub fn nofile_limits() -> (u64, u64) {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) } != 0 {
        return (1024, 1024);
    }
    (r.rlim_cur, r.rlim_max)
}

/// Raises the soft open-file limit to the hard limit; returns the soft limit now in force.
pub fn raise_nofile() -> u64 {
    let (soft, hard) = nofile_limits();
    if soft < hard {
        let r = libc::rlimit {
            rlim_cur: hard,
            rlim_max: hard,
        };
        // SAFETY: setrlimit reads the struct we pass.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &r) } == 0 {
            return hard;
        }
    }
    soft
}

/// File descriptors open in this process now.
pub fn open_fds() -> u64 {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count() as u64)
        .unwrap_or(16)
}

static INTERRUPT: OnceLock<Arc<AtomicBool>> = OnceLock::new();

extern "C" fn on_sigint(_: libc::c_int) {
    if let Some(flag) = INTERRUPT.get() {
        if flag.swap(true, Ordering::SeqCst) {
            // Second Ctrl-C: the user wants out now.
            // SAFETY: _exit is async-signal-safe.
            unsafe { libc::_exit(130) };
        }
    }
}

/// The process-wide interrupt flag, set by SIGINT/SIGTERM (installed on first use).
pub fn interrupt_flag() -> Arc<AtomicBool> {
    INTERRUPT
        .get_or_init(|| {
            let flag = Arc::new(AtomicBool::new(false));
            // SAFETY: installing a handler that only touches an atomic.
            unsafe {
                libc::signal(libc::SIGINT, on_sigint as *const () as libc::sighandler_t);
                libc::signal(libc::SIGTERM, on_sigint as *const () as libc::sighandler_t);
            }
            flag
        })
        .clone()
}

pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

pub fn kernel() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

pub fn cpu_count() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// A `kB` field of /proc/self/status (VmRSS, VmHWM), in KiB.
pub fn status_kib(field: &str) -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Kernel memory in TCP socket buffers, host-wide (/proc/net/sockstat `TCP: ... mem
/// PAGES`), in KiB: the socket memory user-space RSS does not show.
pub fn tcp_kernel_kib() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/net/sockstat").ok()?;
    let line = s.lines().find(|l| l.starts_with("TCP:"))?;
    let mut it = line.split_whitespace();
    while let Some(w) = it.next() {
        if w == "mem" {
            let pages: u64 = it.next()?.parse().ok()?;
            // SAFETY: sysconf has no preconditions.
            let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as u64;
            return Some(pages * page / 1024);
        }
    }
    None
}

/// Asks the kernel not to back this process with transparent huge pages. mimalloc
/// hands its memory to THP, so RSS then grows in 2 MiB steps per thread heap: a
/// shard holding 10,000 idle connections would pay for whole huge pages it barely
/// touches (measured: 2.05 -> 1.6 KiB per held connection at 19,000, and a 21 MiB
/// -> 9 MiB baseline). The working set of a load generator is small; TLB reach is
/// not what limits it.
pub fn disable_thp() {
    // SAFETY: prctl with PR_SET_THP_DISABLE takes plain integer arguments.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}

/// Hands back to the OS the pages this thread's heap has freed. mimalloc purges
/// freed pages only when the thread that freed them allocates again, and a shard
/// that opened 10,000 connections at once then holds them allocates almost nothing:
/// the memory of their handshakes stayed resident (RSS 3.7 KiB per held connection
/// after a burst with --connect-rate 0, against 1.1 KiB at 2,000 connections/s;
/// benches/README.md, issue 16). Cheap enough for once a second per shard.
pub fn release_freed_memory() {
    // SAFETY: mi_collect takes no pointers; it only walks the calling thread's heap.
    unsafe { libmimalloc_sys::mi_collect(false) }
}

/// The Unix time now, in seconds (0 on a clock set before 1970).
pub fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// CPU time (user + system, seconds) a thread of this process has used, read from
/// /proc/self/task/TID/stat (clock-tick resolution, 10 ms on most kernels).
pub fn thread_cpu_secs(tid: i32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).ok()?;
    // The name in parentheses may hold spaces: fields count from after it.
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state is field 3, utime 14 and stime 15 (1-based, man proc).
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    Some((utime + stime) as f64 / hz)
}

/// A /proc or /sys file, trimmed (None when it cannot be read).
pub fn read_sys(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

/// The whitespace-separated numbers of `s`.
pub fn nums(s: &str) -> Vec<u64> {
    s.split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect()
}

/// The cores a process may run on (its affinity mask), in order.
pub fn available_cores() -> Vec<usize> {
    let mut ids: Vec<usize> = core_affinity::get_core_ids()
        .unwrap_or_default()
        .into_iter()
        .map(|c| c.id)
        .collect();
    if ids.is_empty() {
        ids.push(0);
    }
    ids
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_busy_thread_shows_cpu_time() {
        // SAFETY: gettid has no preconditions.
        let tid = unsafe { libc::gettid() };
        let before = super::thread_cpu_secs(tid).expect("readable");
        let t0 = std::time::Instant::now();
        let mut x = 0u64;
        while super::thread_cpu_secs(tid).unwrap() < before + 0.05
            && t0.elapsed() < std::time::Duration::from_secs(10)
        {
            for i in 0..100_000u64 {
                x = x.wrapping_mul(31).wrapping_add(i);
            }
        }
        std::hint::black_box(x);
        assert!(super::thread_cpu_secs(tid).unwrap() >= before + 0.05);
        assert!(super::thread_cpu_secs(-5).is_none());
    }
}
