//! rustls's two crypto providers, ring and aws-lc-rs, measured for wsherd's
//! choice: client and server in memory in one thread (no sockets), the client's
//! share of the CPU timed apart.
//!
//! ```text
//! tls-provider run --provider ring|aws-lc-rs --case CASE [--secs S] [--warmup S]
//!                  [--certs DIR] [--sizes 64,1024] [--mem-conns N]
//! tls-provider certs DIR        write both key types' CA, leaf and key (PEM)
//! tls-provider report FILE...   the Markdown tables of the raw lines `run` printed
//! tls-provider versions         the compiler and the crates it was built with
//! ```
//!
//! CASE is one of: full-ecdsa, full-rsa, resumed-ecdsa, resumed-rsa (handshakes),
//! rec-aes128, rec-aes256, rec-chacha20 (records), mem (memory per connection,
//! both certificates, full and resumed), or all. scripts/bench-tls-provider.sh
//! runs every case for both providers, round after round, and reports medians.

mod alloc;
mod bench;
mod certs;
mod report;

use bench::{Provider, Timing};
use certs::{KeyType, ServerCerts};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[global_allocator]
static GLOBAL: alloc::Counting = alloc::Counting;

const CASES: [&str; 8] = [
    "full-ecdsa",
    "full-rsa",
    "resumed-ecdsa",
    "resumed-rsa",
    "rec-aes128",
    "rec-aes256",
    "rec-chacha20",
    "mem",
];

const USAGE: &str = "usage:
  tls-provider run --provider ring|aws-lc-rs --case CASE [--secs S] [--warmup S]
                   [--certs DIR] [--sizes 64,1024] [--mem-conns N]
  tls-provider certs DIR
  tls-provider report FILE...
  tls-provider versions
CASE: full-ecdsa full-rsa resumed-ecdsa resumed-rsa rec-aes128 rec-aes256 rec-chacha20 mem all";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("run") => run(&args[1..]),
        Some("certs") if args.len() == 2 => certs::write(&PathBuf::from(&args[1])),
        Some("report") if args.len() >= 2 => args[1..]
            .iter()
            .map(|f| std::fs::read_to_string(f).map_err(|e| format!("{f}: {e}")))
            .collect::<Result<Vec<_>, _>>()
            .map(|texts| print!("{}", report::report(&texts.concat()))),
        Some("versions") => {
            println!(
                "{}; {}",
                env!("TLS_PROVIDER_RUSTC"),
                env!("TLS_PROVIDER_CRATES")
            );
            Ok(())
        }
        _ => Err(USAGE.into()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tls-provider: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &[String]) -> Result<(), String> {
    let mut provider = None;
    let mut case = None;
    let mut secs = 1.0f64;
    let mut warmup = 0.3f64;
    let mut cert_dir: Option<PathBuf> = None;
    let mut sizes = vec![64usize, 1024];
    let mut mem_conns = 2000usize;
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match flag.as_str() {
            "--provider" => {
                let v = value()?;
                provider =
                    Some(Provider::parse(&v).ok_or_else(|| format!("unknown provider {v}"))?);
            }
            "--case" => {
                let v = value()?;
                if v != "all" && !CASES.contains(&v.as_str()) {
                    return Err(format!("unknown case {v}\n{USAGE}"));
                }
                case = Some(v);
            }
            "--secs" => secs = number(&value()?)?,
            "--warmup" => warmup = number(&value()?)?,
            "--certs" => cert_dir = Some(PathBuf::from(value()?)),
            "--sizes" => {
                sizes = value()?
                    .split(',')
                    .map(|s| s.parse().map_err(|_| format!("bad size {s}")))
                    .collect::<Result<_, _>>()?
            }
            "--mem-conns" => mem_conns = number(&value()?)? as usize,
            _ => return Err(format!("unknown argument {flag}\n{USAGE}")),
        }
    }
    let provider = provider.ok_or_else(|| format!("--provider is required\n{USAGE}"))?;
    let case = case.ok_or_else(|| format!("--case is required\n{USAGE}"))?;
    if secs <= 0.0 || mem_conns == 0 {
        return Err("--secs and --mem-conns must be positive".into());
    }

    let load = |kind| match &cert_dir {
        Some(dir) => ServerCerts::load(dir, kind),
        None => ServerCerts::generate(kind),
    };
    let ecdsa = load(KeyType::Ecdsa)?;
    let rsa = load(KeyType::Rsa)?;
    let certs_of = |kind| if kind == KeyType::Ecdsa { &ecdsa } else { &rsa };

    let clock_ns = bench::clock_overhead_ns();
    // SAFETY: sched_getcpu has no preconditions.
    let cpu = unsafe { libc::sched_getcpu() };
    println!("info\t{}\tclock_ns\t{clock_ns:.0}", provider.name());
    println!("info\t{}\tcpu\t{cpu}", provider.name());
    let timing = Timing {
        warmup: Duration::from_secs_f64(warmup),
        measure: Duration::from_secs_f64(secs),
        clock_ns,
    };

    let wall0 = std::time::Instant::now();
    let cpu0 = bench::thread_cpu_ns();
    let cases: Vec<&str> = if case == "all" {
        CASES.to_vec()
    } else {
        vec![case.as_str()]
    };
    for case in cases {
        match case {
            "mem" => {
                let tunables = std::env::var("GLIBC_TUNABLES").unwrap_or_default();
                if !tunables.contains("tcache_count=0") {
                    eprintln!(
                        "tls-provider: note: glibc's tcache is on, and mallinfo2 counts the freed \
                         chunks it holds as in use: set GLIBC_TUNABLES=glibc.malloc.tcache_count=0 \
                         for exact malloc figures"
                    );
                }
                for kind in KeyType::ALL {
                    for resumed in [false, true] {
                        bench::memory(provider, kind, certs_of(kind), resumed, mem_conns)?;
                    }
                }
            }
            _ => {
                if let Some(suite) = case.strip_prefix("rec-") {
                    bench::records(provider, suite, &ecdsa, &sizes, timing)?;
                } else {
                    let (mode, cert) = case.split_once('-').unwrap();
                    let kind = KeyType::parse(cert).unwrap();
                    bench::handshakes(provider, kind, certs_of(kind), mode == "resumed", timing)?;
                }
            }
        }
    }
    // How much of its time this thread had its core: the rest was other load's.
    let share = (bench::thread_cpu_ns() - cpu0) as f64 / wall0.elapsed().as_nanos() as f64;
    println!("info\t{}\tcpu_share\t{share:.3}", provider.name());
    Ok(())
}

fn number(s: &str) -> Result<f64, String> {
    s.parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v >= 0.0)
        .ok_or_else(|| format!("bad number {s}"))
}
