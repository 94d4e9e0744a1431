//! `wsherd doctor`: reads the host and says, check by check, whether a planned run
//! fits, and what to change when it does not (as tcpkali does), so a run never
//! fails mysteriously half way. `run` applies the same port check before starting.
//!
//! Read-only: it changes nothing (scripts/tune-host.sh applies tuning/). One
//! function per check; `examine` runs them in the order the report prints them.
//!
//! It takes a `host::Demand` (what a planned run asks of the host, built by the
//! config stage) and reads the host through `host`, `sys` and `source`. It never
//! imports `cli` or `config` (the flags reach it already turned into a demand),
//! nor the engine: it plans and runs nothing.

use crate::host::{ephemeral_ports, Demand};
use crate::sys::{nums, read_sys};
use std::fmt::Write;

/// The built-in server's user-space memory per held connection (benches/README.md:
/// 0.8 KiB echo, 1.6 KiB broadcast; rounded up).
pub const SERVER_BYTES_PER_CONN: u64 = 2048;
/// Kernel memory of one TCP socket beyond its buffers (sock, tcp_sock, file, inode).
pub const KERNEL_SOCKET_BYTES: u64 = 2048;

/// Outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verdict {
    Ok,
    Warn,
    Fail,
}

/// One line of the doctor's report.
#[derive(Debug, Clone)]
pub struct Check {
    pub name: std::borrow::Cow<'static, str>,
    pub verdict: Verdict,
    /// What was found.
    pub found: String,
    /// What to do about it (empty when nothing).
    pub fix: String,
}

/// Are the `--source-ip` addresses assigned to this host?
pub fn check_sources(sources: &[std::net::IpAddr]) -> Check {
    let missing: Vec<String> = sources
        .iter()
        .filter_map(|ip| crate::source::check_assigned(*ip).err())
        .collect();
    match missing.first() {
        None => Check {
            name: "source addresses".into(),
            verdict: Verdict::Ok,
            found: format!("{} addresses, all assigned to this host", sources.len()),
            fix: String::new(),
        },
        Some(first) => Check {
            name: "source addresses".into(),
            verdict: Verdict::Fail,
            found: format!(
                "{} of {} not usable: {first}",
                missing.len(),
                sources.len()
            ),
            fix: "assign the addresses (ip addr add ADDR/32 dev IFACE) or leave them out of --source-ip".into(),
        },
    }
}

impl Check {
    /// A check's line; `fix` empty when there is nothing to do.
    fn new(name: &'static str, verdict: Verdict, found: String, fix: &str) -> Check {
        Check {
            name: name.into(),
            verdict,
            found,
            fix: fix.to_string(),
        }
    }
}

/// Runs every check for `plan`, in the order the report lists them: file
/// descriptors, ports and sysctls, io_uring, CPUs, memory. A check whose
/// source this host does not have (a /proc file) is left out.
pub fn examine(plan: &Demand) -> Vec<Check> {
    let sockets = plan.connections * if plan.embedded { 2 } else { 1 };
    let need_fds = sockets + 64;
    let mut checks: Vec<Check> = [
        Some(open_files(need_fds)),
        file_max(need_fds),
        Some(ports(plan)),
    ]
    .into_iter()
    .flatten()
    .collect();
    // WSHERD_SYSCTL_ROOT: a tree standing for /proc/sys, as scripts/tune-host.sh
    // reads it too (the tests compare their advice on one).
    let root = std::env::var_os("WSHERD_SYSCTL_ROOT").map(std::path::PathBuf::from);
    checks.extend(tuning(&|path: &str| match &root {
        Some(root) => std::fs::read_to_string(root.join(path.trim_start_matches("/proc/sys/")))
            .ok()
            .map(|s| s.trim().to_string()),
        None => read_sys(path),
    }));
    checks.extend(
        [Some(io_uring()), Some(cpus()), memory(plan, sockets)]
            .into_iter()
            .flatten(),
    );
    checks
}

/// The kernel settings tuning/99-wsherd.conf wants, the one table both this
/// doctor and scripts/tune-host.sh read (embedded here at build time).
const TUNING: &str = include_str!("../tuning/99-wsherd.conf");

/// How a setting's current value is held against the wanted one (the `# check:`
/// line above it in the table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Compare {
    /// Every field at least the wanted one.
    AtLeast,
    /// A range covering the wanted one.
    Range,
    /// Socket buffers: min and default at most, max at least the wanted.
    Buffers,
    /// Exactly the wanted value.
    Exact,
}

/// One setting of the table.
#[derive(Debug, Clone, PartialEq)]
struct Wanted {
    key: String,
    value: Vec<u64>,
    compare: Compare,
    /// `-key`: checked only where the kernel has it (a module's setting).
    optional: bool,
}

/// The table's settings, in order. A line the table does not parse as a setting
/// is left out (the script refuses such a file; the test below reads this one).
fn wanted_settings(table: &str) -> Vec<Wanted> {
    let mut out = Vec::new();
    let mut compare = None;
    for line in table.lines().map(str::trim) {
        if let Some(mode) = line.strip_prefix("# check:") {
            compare = match mode.trim() {
                "at-least" => Some(Compare::AtLeast),
                "range" => Some(Compare::Range),
                "buffers" => Some(Compare::Buffers),
                "exact" => Some(Compare::Exact),
                _ => None,
            };
            continue;
        }
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        let (Some((key, value)), Some(c)) = (line.split_once('='), compare.take()) else {
            continue;
        };
        let key = key.trim();
        out.push(Wanted {
            optional: key.starts_with('-'),
            key: key.trim_start_matches('-').to_string(),
            value: nums(value),
            compare: c,
        });
    }
    out
}

/// What `current` should become to satisfy `w` (as scripts/tune-host.sh
/// computes it: values only grow, a more generous setting stays); None when
/// the current value has another shape.
fn target(w: &Wanted, current: &[u64]) -> Option<Vec<u64>> {
    if w.compare == Compare::Exact {
        return Some(w.value.clone());
    }
    if current.len() != w.value.len() {
        return None;
    }
    let pair = current.iter().zip(&w.value);
    Some(match w.compare {
        Compare::AtLeast => pair.map(|(c, w)| *c.max(w)).collect(),
        Compare::Range if w.value.len() == 2 => {
            vec![current[0].min(w.value[0]), current[1].max(w.value[1])]
        }
        Compare::Buffers if w.value.len() == 3 => vec![
            current[0].min(w.value[0]),
            current[1].min(w.value[1]),
            current[2].max(w.value[2]),
        ],
        _ => return None,
    })
}

/// Each setting of the table against this host (`read` reads /proc/sys): OK,
/// or a warning with the very value `scripts/tune-host.sh apply` would write.
/// A setting the kernel does not have is left out.
fn tuning(read: &dyn Fn(&str) -> Option<String>) -> Vec<Check> {
    wanted_settings(TUNING)
        .into_iter()
        .filter(|w| w.key != "fs.file-max")
        .filter_map(|w| {
            let found = read(&format!("/proc/sys/{}", w.key.replace('.', "/")))?;
            let current = nums(&found);
            let want = target(&w, &current)?;
            let ok = want == current;
            let shown = |v: &[u64]| v.iter().map(u64::to_string).collect::<Vec<_>>().join(" ");
            let fix = if ok {
                String::new()
            } else {
                format!(
                    "sysctl -w {}=\"{}\" (tuning/99-wsherd.conf; scripts/tune-host.sh apply sets them all)",
                    w.key,
                    shown(&want)
                )
            };
            Some(Check {
                name: w.key.clone().into(),
                verdict: if ok { Verdict::Ok } else { Verdict::Warn },
                found: if w.key == "net.ipv4.tcp_tw_reuse" && found.trim() == "2" {
                    "2 (reuse on loopback only)".into()
                } else {
                    found.split_whitespace().collect::<Vec<_>>().join(" ")
                },
                fix,
            })
        })
        .collect()
}

/// May this process open `need_fds` files (its hard nofile limit)?
fn open_files(need_fds: u64) -> Check {
    let (soft, hard) = crate::sys::nofile_limits();
    let v = if hard >= need_fds {
        Verdict::Ok
    } else {
        Verdict::Fail
    };
    Check::new(
        "open files (per process)",
        v,
        format!("soft {soft}, hard {hard}; the plan needs about {need_fds} (wsherd raises soft to hard)"),
        if v == Verdict::Ok {
            ""
        } else {
            "raise nofile (ulimit -Hn as root, tuning/99-wsherd-limits.conf, or LimitNOFILE= in the systemd unit), or split the run with --agent I/N"
        },
    )
}

/// Does the system-wide file limit leave room for twice what the plan opens?
fn file_max(need_fds: u64) -> Option<Check> {
    let max = read_sys("/proc/sys/fs/file-max").and_then(|s| s.parse::<u64>().ok())?;
    // The table's value, or more for a plan beyond what it was sized for.
    let table = wanted_settings(TUNING)
        .into_iter()
        .find(|w| w.key == "fs.file-max")
        .and_then(|w| w.value.first().copied())
        .unwrap_or(0);
    let want = table.max(need_fds * 2);
    let v = if max >= want {
        Verdict::Ok
    } else {
        Verdict::Warn
    };
    let fix = format!(
        "sysctl -w fs.file-max={want} (tuning/99-wsherd.conf{})",
        if want == table {
            "; scripts/tune-host.sh apply sets them all"
        } else {
            " wants less: this plan needs more"
        }
    );
    Some(Check::new(
        "fs.file-max",
        v,
        max.to_string(),
        if v == Verdict::Ok { "" } else { &fix },
    ))
}

/// Do the plan's connections fit the ephemeral port range on each (source,
/// destination) pair, and within its first half (where connect() finds a free
/// port quickly)?
fn ports(plan: &Demand) -> Check {
    let Some(ports) = ephemeral_ports() else {
        return Check::new(
            "ephemeral ports",
            Verdict::Warn,
            "cannot read ip_local_port_range".into(),
            "",
        );
    };
    let per_pair = plan.per_pair();
    // Past half the range, connect() searches long for a free port (more
    // so with TIME_WAIT sockets around): it fits, but costs kernel time.
    let v = if per_pair * 2 <= ports {
        Verdict::Ok
    } else if per_pair <= ports {
        Verdict::Warn
    } else {
        Verdict::Fail
    };
    let fix = match v {
        Verdict::Ok => String::new(),
        Verdict::Warn => format!(
            "it fits, but past half the range connect() spends a lot of kernel time searching for a free port (the load shard saturates); {}",
            plan.port_fix(ports / 2)
        ),
        _ => plan.port_fix(ports),
    };
    Check::new(
        "ephemeral ports",
        v,
        format!(
            "{ports} per (source, destination) pair; the plan puts up to {per_pair} on one pair ({} source address{} x {} target{})",
            plan.sources.max(1),
            if plan.sources > 1 { "es" } else { "" },
            plan.targets.max(1),
            if plan.targets > 1 { "s" } else { "" },
        ),
        &fix,
    )
}

/// Can an io_uring be built here (seccomp, memlock)? Without one wsherd runs on
/// epoll.
fn io_uring() -> Check {
    let uring = monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
        .with_entries(256)
        .build()
        .map(|_| ());
    match uring {
        Ok(()) => Check::new("io_uring", Verdict::Ok, "available".into(), ""),
        Err(e) => Check::new(
            "io_uring",
            Verdict::Warn,
            format!("not available ({e}); wsherd runs on epoll"),
            "allow io_uring (containers: seccomp profile) and raise memlock (tuning/99-wsherd-limits.conf)",
        ),
    }
}

/// How many CPUs, so how many shards (for information).
fn cpus() -> Check {
    let cpus = crate::sys::cpu_count();
    Check::new(
        "CPUs",
        Verdict::Ok,
        format!("{cpus} (one shard per core)"),
        "",
    )
}

/// Does the plan's memory, user space and kernel apart, fit in what is
/// available (within half of it, without warning)?
///
/// User space per connection as measured (benches/README.md); the kernel's per
/// socket: its socket structures (about 2 KiB of slab) plus what sits in the
/// buffers, estimated as the minimum buffer of each direction, what a socket
/// with a message in flight holds.
fn memory(plan: &Demand, sockets: u64) -> Option<Check> {
    let rmem = read_sys("/proc/sys/net/ipv4/tcp_rmem")
        .map(|s| nums(&s))
        .and_then(|v| v.first().copied())
        .unwrap_or(4096);
    let wmem = read_sys("/proc/sys/net/ipv4/tcp_wmem")
        .map(|s| nums(&s))
        .and_then(|v| v.first().copied())
        .unwrap_or(4096);
    let user = plan.connections * plan.conn_bytes
        + if plan.embedded {
            plan.connections * SERVER_BYTES_PER_CONN
        } else {
            0
        };
    let kernel = sockets * (KERNEL_SOCKET_BYTES + rmem + wmem);
    let avail = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| m.lines().find(|l| l.starts_with("MemAvailable:")).map(nums))
        .and_then(|v| v.first().copied())
        .map(|kb| kb * 1024)?;
    let need = user + kernel;
    let v = if need <= avail / 2 {
        Verdict::Ok
    } else if need <= avail {
        Verdict::Warn
    } else {
        Verdict::Fail
    };
    Some(Check::new(
        "memory",
        v,
        format!(
            "{} MiB available; the plan needs about {} MiB in user space ({} B per connection{}) and {} MiB in the kernel ({} B per socket: structures and minimum buffers)",
            avail >> 20,
            user >> 20,
            plan.conn_bytes,
            if plan.embedded {
                format!(", {SERVER_BYTES_PER_CONN} B more for the built-in server")
            } else {
                String::new()
            },
            kernel >> 20,
            KERNEL_SOCKET_BYTES + rmem + wmem
        ),
        if v == Verdict::Ok { "" } else { "fewer connections per host (--agent across hosts), or smaller tcp_rmem/tcp_wmem minimums (tuning/)" },
    ))
}

/// The report `wsherd doctor` prints.
pub fn render(plan: &Demand, checks: &[Check]) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "wsherd doctor: a run of {} connections to {} target{}{}{}",
        plan.connections,
        plan.targets,
        if plan.targets == 1 { "" } else { "s" },
        if plan.sources > 0 {
            format!(" from {} source addresses", plan.sources)
        } else {
            String::new()
        },
        if plan.embedded {
            " (built-in server in the same process)"
        } else {
            ""
        }
    );
    for c in checks {
        let tag = match c.verdict {
            Verdict::Ok => "ok  ",
            Verdict::Warn => "warn",
            Verdict::Fail => "FAIL",
        };
        let _ = writeln!(o, "  [{tag}] {:<26} {}", c.name, c.found);
        if !c.fix.is_empty() {
            let _ = writeln!(o, "         {:<26} fix: {}", "", c.fix);
        }
    }
    let worst = checks
        .iter()
        .map(|c| c.verdict)
        .max()
        .unwrap_or(Verdict::Ok);
    let _ = writeln!(
        o,
        "{}",
        match worst {
            Verdict::Ok => "verdict: the plan fits this host",
            Verdict::Warn => "verdict: the plan fits, with warnings",
            Verdict::Fail => "verdict: the plan does not fit this host; fix the FAIL lines first",
        }
    );
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The embedded table parses whole, and the port range the port check
    /// advises (host.rs) is the table's.
    #[test]
    fn the_tuning_table_parses_and_agrees_with_the_port_advice() {
        let settings = wanted_settings(TUNING);
        let lines = TUNING
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#') && l.contains('='))
            .count();
        assert_eq!(settings.len(), lines, "{settings:?}");
        let range = settings
            .iter()
            .find(|w| w.key == "net.ipv4.ip_local_port_range")
            .unwrap();
        let fix = Demand::simple(100_000, 1, false).port_fix(1000);
        assert!(
            fix.contains(&format!("\"{} {}\"", range.value[0], range.value[1])),
            "{fix}"
        );
        // Values only grow: a bigger one stays, the buffers' min and default
        // only shrink.
        let rmem = settings
            .iter()
            .find(|w| w.key == "net.ipv4.tcp_rmem")
            .unwrap();
        assert_eq!(
            target(rmem, &[8192, 131072, 65536]),
            Some(vec![4096, 16384, 16777216])
        );
        let backlog = settings
            .iter()
            .find(|w| w.key == "net.core.somaxconn")
            .unwrap();
        assert_eq!(target(backlog, &[100_000]), Some(vec![100_000]));
    }

    #[test]
    fn port_arithmetic_counts_pairs() {
        // 100k connections, one target: 16 sources make 6250 per pair.
        let p = Demand {
            connections: 100_000,
            targets: 1,
            embedded: false,
            sources: 16,
            whole: 100_000,
            all_sources: 16,
            conn_bytes: crate::host::SENDING_BYTES,
        };
        assert_eq!(p.per_pair(), 6250);
        // Agent 1 of 4 with its own 4 of the 16 addresses: 25k over 4 pairs.
        let agent = Demand {
            connections: 25_000,
            sources: 4,
            ..p.clone()
        };
        assert_eq!(agent.per_pair(), 6250);
        // 100k without sources on one target: every connection on one pair; the
        // fix names how many addresses make it fit in a 28,232-port range.
        let one = Demand::simple(100_000, 1, false);
        assert_eq!(one.per_pair(), 100_000);
        let fix = one.port_fix(28_232);
        assert!(fix.contains("at least 4 source addresses"), "{fix}");
        // Two targets halve what each source needs.
        let two = Demand::simple(100_000, 2, false);
        assert!(
            two.port_fix(28_232).contains("at least 2 source"),
            "{}",
            two.port_fix(28_232)
        );
    }

    #[test]
    fn a_small_plan_fits_and_a_huge_one_does_not() {
        let small = Demand::simple(10, 1, false);
        let checks = examine(&small);
        assert!(
            checks.iter().all(|c| c.verdict != Verdict::Fail),
            "{checks:?}"
        );
        assert!(crate::host::check_ports(&small).is_ok());
        let huge = Demand::simple(10_000_000, 1, false);
        let checks = examine(&huge);
        let fails: Vec<&str> = checks
            .iter()
            .filter(|c| c.verdict == Verdict::Fail)
            .map(|c| c.name.as_ref())
            .collect();
        assert!(fails.contains(&"open files (per process)"), "{fails:?}");
        assert!(fails.contains(&"ephemeral ports"), "{fails:?}");
        let e = crate::host::check_ports(&huge).unwrap_err();
        assert!(e.contains("ip_local_port_range"), "{e}");
        assert!(e.contains("--source-ip"), "{e}");
        let text = render(&huge, &checks);
        assert!(
            text.contains("does not fit") && text.contains("fix:"),
            "{text}"
        );
    }

    #[test]
    fn past_half_the_port_range_is_a_warning_with_more_sources() {
        let Some(ports) = ephemeral_ports() else {
            return; // no /proc here: nothing to compare with
        };
        let verdict = |n: u64| {
            examine(&Demand::simple(n, 1, false))
                .into_iter()
                .find(|c| c.name == "ephemeral ports")
                .unwrap()
        };
        assert_eq!(verdict(ports / 2).verdict, Verdict::Ok);
        let warn = verdict(ports / 2 + ports / 4);
        assert_eq!(warn.verdict, Verdict::Warn, "{warn:?}");
        assert!(warn.fix.contains("kernel time"), "{}", warn.fix);
        assert!(
            warn.fix.contains("at least 2 source addresses"),
            "{}",
            warn.fix
        );
        assert_eq!(verdict(ports + 1).verdict, Verdict::Fail);
    }
}
