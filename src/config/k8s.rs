//! `wsherd k8s run`'s flags into a `k8s::Launch`: the run checked as agent 1
//! of N would be, each agent's command line, the files it reads, the pod's size.
//!
//! Each agent runs `wsherd run` with the user's own run flags, as typed (so
//! nothing is lost in a translation): the launcher's flags are taken out, the
//! outputs and thresholds stay local (written and judged once, on the merged
//! run), files the run reads go into a ConfigMap and the flags point there, and
//! `--agent job/N --start-at T --json - -q` are added. The plan is checked here
//! first, as `wsherd run --agent 1/N` would check it, so a bad flag is refused
//! before anything reaches the cluster.
//!
//! Part of the configuration stage: reads `cli`, builds what the `k8s` driver
//! runs; never imports the engine or anything that runs a load.

use crate::cli::K8sRunArgs;
use crate::error::{Error, Result};
use crate::k8s::manifests::{Spec, FILES_DIR, METRICS_PORT};
use crate::k8s::Launch;
use std::time::Duration;

/// Launcher flags taking a value, and those that take none: not for the agents.
const LAUNCHER_VALUED: &[&str] = &[
    "--agents",
    "--cpus",
    "--k8s-namespace",
    "--image",
    "--job-name",
    "--start-margin",
    "--kubectl",
];
const LAUNCHER_BOOL: &[&str] = &["--host-network", "--pack", "--dry-run", "--keep"];
/// Outputs and judgements, done once on the merged run, here.
const LOCAL_VALUED: &[&str] = &[
    "--json",
    "--html",
    "--csv",
    "--hgrm",
    "--threshold",
    "--bands",
];
const LOCAL_BOOL: &[&str] = &["-q", "--quiet"];
/// Files for the ConfigMap: (key, content).
type Files = Vec<(String, String)>;

/// Files an agent reads: shipped in the ConfigMap.
const FILE_FLAGS: &[&str] = &["--payload-file", "--steps", "--data", "--ca"];
/// Flags the launcher sets, or cannot carry, with what to do instead.
const REFUSED: &[(&str, &str)] = &[
    (
        "--agent",
        "the launcher gives each agent its share (--agents N)",
    ),
    (
        "--start-at",
        "the launcher starts the agents together (--start-margin)",
    ),
    ("--scenario", "run one scenario's flags per launch"),
    (
        "--hlog",
        "interval logs stay in the pods; use --hgrm for the merged run's",
    ),
    (
        "--cert",
        "client certificates belong in a Secret, which the launcher does not create yet",
    ),
    (
        "--key",
        "client keys belong in a Secret, which the launcher does not create yet",
    ),
    (
        "--metrics-addr",
        "each agent serves its metrics on port 9102 (scraped by annotation)",
    ),
    (
        "--source-ip",
        "a pod has its own addresses, not this host's; use --host-network to load from the nodes' addresses",
    ),
];

/// What the shipped files may total: a ConfigMap holds at most 1 MiB, its keys
/// and metadata included.
const CONFIG_MAP_FILES_MAX: usize = 1000 * 1024;

/// User-space bytes an agent's process needs before its first connection:
/// measured 14 MiB with one shard and 2.5 MiB more per shard (the results'
/// `memory.start_rss_kib`), so 64 MiB leaves room for 16 shards and the
/// collector's histograms.
const AGENT_BASE_BYTES: u64 = 64 << 20;

/// `wsherd-<Unix seconds>-<5 random hex digits>`: two launches in one second
/// get two names (an existing name is refused at create, never followed).
fn default_name() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    format!(
        "wsherd-{}-{:05x}",
        crate::sys::unix_now() as u64,
        h.finish() & 0xf_ffff
    )
}

/// Plans `wsherd k8s run` from its parsed flags and the command line as typed
/// (`argv`, from the program name on).
pub fn plan_k8s(a: K8sRunArgs, argv: &[String]) -> Result<Launch> {
    let agents = a.agents;
    if agents == 0 {
        return Err(Error::usage("--agents 0: at least one agent"));
    }
    if a.run.load.urls.is_empty() {
        return Err(Error::usage(
            "wsherd k8s run needs the target's URL: the agents load it from the cluster \
             (deploy/kubernetes/serve.yaml runs wsherd serve there: ws://wsherd-serve:9000/)",
        ));
    }
    if a.host_network && a.pack {
        return Err(Error::usage(
            "--host-network with --pack: agents on the nodes' network each listen on the node's \
             port 9102 (metrics), so two cannot share a node; drop one of the two",
        ));
    }
    let name = match &a.job_name {
        Some(n) => check_name(n)?,
        None => default_name(),
    };
    // Flags the launcher cannot carry are refused before the plan is checked.
    let (mut args, files) = agent_args(argv)?;
    // The plan as agent 1 of N would check it: a bad flag stops here. The
    // hosts are the cluster's (a Service's name resolves only in there), so
    // they are not looked up here: the probe dials a loopback stand-in.
    let mut probe = a.run.clone();
    probe.agent = Some(format!("1/{agents}"));
    probe.load.json = None;
    probe.reports = Default::default();
    probe.load.urls = a.run.load.urls.iter().map(|u| offline(u)).collect();
    probe.load.proxy = a.run.load.proxy.as_deref().map(offline);
    let probe_args = probe.clone();
    let checked = crate::config::run::plan_run(probe).map_err(|e| match e {
        // A bad URL is shown as the user wrote it.
        Error::BadUrl { url, why } => Error::BadUrl {
            url: a
                .run
                .load
                .urls
                .iter()
                .chain(&a.run.load.proxy)
                .find(|u| offline(u) == url)
                .cloned()
                .unwrap_or(url),
            why,
        },
        e => e,
    })?;
    let plan = &checked.plan;
    // Each agent's share, as `wsherd doctor --agent I/N` would count it.
    let mut shares = Vec::new();
    for i in 1..=agents {
        let mut p = probe_args.clone();
        p.agent = Some(format!("{i}/{agents}"));
        let share = crate::config::run::plan_run(p)?.plan;
        shares.push(share_line(i, agents, &share));
    }
    if plan.embedded() {
        return Err(Error::usage(
            "wsherd k8s run loads a URL, not the built-in server",
        ));
    }
    // An agent starts a shard on every core it sees (the node's): as many as its
    // pod asks for, unless --shards said how many.
    let cpus = a.cpus.or(a.run.load.conn.shards).unwrap_or(1).max(1);
    if a.run.load.conn.shards.is_none() {
        args.extend(["--shards".to_string(), cpus.to_string()]);
    }
    let start_at = (crate::sys::unix_now() + a.start_margin.as_secs_f64()).ceil();
    args.extend([
        "--agent".to_string(),
        format!("job/{agents}"),
        "--start-at".into(),
        format!("{start_at:.0}"),
        "--metrics-addr".into(),
        format!("0.0.0.0:{METRICS_PORT}"),
        "--json".into(),
        "-".into(),
        "-q".into(),
    ]);
    // What one connection holds: user space as measured for this plan's kind
    // (host::conn_bytes), the kernel's socket structures, and the minimum socket
    // buffers (4 KiB each way, Linux's default tcp_rmem/tcp_wmem minimums; the
    // node's own are not known here).
    let per_conn = crate::host::conn_bytes(plan) + crate::doctor::KERNEL_SOCKET_BYTES + 2 * 4096;
    let spec = Spec {
        name,
        namespace: a.k8s_namespace.clone(),
        image: a
            .image
            .clone()
            .unwrap_or_else(|| format!("wsherd:{}", env!("CARGO_PKG_VERSION"))),
        agents,
        args,
        memory_bytes: AGENT_BASE_BYTES + plan.connections * per_conn,
        cpus,
        host_network: a.host_network,
        pack: a.pack,
        files,
    };
    let wait = a.start_margin
        + plan.duration
        + plan.drain
        + plan.close_timeout
        + plan.connect_timeout
        + Duration::from_secs(60);
    Ok(Launch {
        spec,
        kubectl: a.kubectl,
        dry_run: a.dry_run,
        keep: a.keep,
        start_at,
        wait,
        quiet: a.run.load.quiet,
        one_way: plan.workload.broadcast.is_some() || plan.push.is_some(),
        shares,
    })
}

/// `url` with its host replaced by 127.0.0.1 (scheme, user, port or port
/// range, path kept): checked as the agents will read it, without resolving a
/// name that only the cluster's DNS knows.
fn offline(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let (user, hostport) = match authority.rsplit_once('@') {
        Some((u, h)) => (format!("{u}@"), h),
        None => (String::new(), authority),
    };
    let at = if hostport.starts_with('[') {
        hostport.find(']').map_or(hostport.len(), |i| i + 1)
    } else {
        hostport.find(':').unwrap_or(hostport.len())
    };
    let (host, port) = hostport.split_at(at);
    // Only a name or an address is stood in for (anything else is refused
    // as the agents would refuse it).
    let name = |c: char| c.is_ascii_alphanumeric() || "-._[]:".contains(c);
    if host.is_empty() || !host.chars().all(name) {
        return url.to_string();
    }
    format!("{scheme}://{user}127.0.0.1{port}{tail}")
}

/// `agent 2/4: 25,000 connections, 5,000 msg/s`.
fn share_line(i: u64, n: u64, p: &crate::plan::Plan) -> String {
    let mut line = format!(
        "agent {i}/{n}: {} connections",
        crate::vocab::fmt::group(p.connections)
    );
    if let Some(profile) = &p.rate_profile {
        line.push_str(&format!(
            ", {} msg/s",
            // (An agent's profile is its share already.)
            crate::vocab::fmt::group(profile.peak().round() as u64)
        ));
    }
    line
}

/// A Job's name: a DNS label of at most 52 characters (its pods' names and the
/// completion index follow it).
fn check_name(n: &str) -> Result<String> {
    let ok = !n.is_empty()
        && n.len() <= 52
        && n.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !n.starts_with('-')
        && !n.ends_with('-');
    if ok {
        Ok(n.to_string())
    } else {
        Err(Error::usage(format!(
            "--job-name '{n}': lowercase letters, digits and '-', at most 52, not starting or ending with '-'"
        )))
    }
}

/// The agents' arguments from the command line as typed (`wsherd k8s run ...`):
/// `run` and the run's flags, launcher flags and local outputs taken out, file
/// flags pointed into `FILES_DIR`; and the files (key, content).
pub fn agent_args(argv: &[String]) -> Result<(Vec<String>, Files)> {
    let start = argv
        .iter()
        .position(|a| a == "run")
        .map_or(argv.len(), |i| i + 1);
    let mut out = vec!["run".to_string()];
    let mut files: Vec<(String, String)> = Vec::new();
    let mut i = start;
    while i < argv.len() {
        let tok = &argv[i];
        i += 1;
        if tok == "--" {
            out.extend(argv[i..].iter().cloned());
            break;
        }
        let (flag, inline) = match tok.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v.to_string())),
            _ => (tok.as_str(), None),
        };
        let mut value = || -> Result<String> {
            if let Some(v) = &inline {
                return Ok(v.clone());
            }
            let v = argv
                .get(i)
                .cloned()
                .ok_or_else(|| Error::usage(format!("{flag} needs a value")))?;
            i += 1;
            Ok(v)
        };
        if let Some((_, why)) = REFUSED.iter().find(|(f, _)| *f == flag) {
            return Err(Error::usage(format!(
                "{flag} does not go with wsherd k8s run: {why}"
            )));
        }
        if LAUNCHER_VALUED.contains(&flag) || LOCAL_VALUED.contains(&flag) {
            value()?;
        } else if LAUNCHER_BOOL.contains(&flag) || LOCAL_BOOL.contains(&flag) {
        } else if FILE_FLAGS.contains(&flag) {
            let path = value()?;
            let key = file_key(&path, &files);
            let content = std::fs::read(&path).map_err(|e| {
                Error::usage(format!(
                    "{flag} {path}: {e} (the file is shipped to the agents)"
                ))
            })?;
            let content = String::from_utf8(content).map_err(|_| {
                Error::usage(format!(
                    "{flag} {path}: not UTF-8 text, which a ConfigMap's data must be"
                ))
            })?;
            files.push((key.clone(), content));
            out.push(flag.to_string());
            out.push(format!("{FILES_DIR}/{key}"));
        } else {
            out.push(tok.clone());
        }
    }
    let total: usize = files.iter().map(|(k, v)| k.len() + v.len()).sum();
    if total > CONFIG_MAP_FILES_MAX {
        return Err(Error::usage(format!(
            "the files shipped to the agents ({}) total {} KiB, more than a ConfigMap holds \
             (1 MiB): make them smaller, or split the data across runs",
            files
                .iter()
                .map(|(k, _)| k.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            total.div_ceil(1024)
        )));
    }
    Ok((out, files))
}

/// A ConfigMap key for `path`: its file name (a ConfigMap key's characters),
/// numbered when two files share one.
fn file_key(path: &str, taken: &[(String, String)]) -> String {
    let base: String = std::path::Path::new(path)
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let base = if base.is_empty() || base == "." || base == ".." {
        "file".to_string()
    } else {
        base
    };
    let mut key = base.clone();
    let mut n = 2;
    while taken.iter().any(|(k, _)| *k == key) {
        key = format!("{n}-{base}");
        n += 1;
    }
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    /// FILE_FLAGS is kept by name: every flag of `k8s run` that takes a FILE
    /// must be shipped to the agents, stay with the launcher, or be refused, or
    /// its path would not exist in the pod.
    #[test]
    fn every_file_flag_is_shipped_kept_or_refused() {
        use clap::CommandFactory;
        let cli = crate::cli::Cli::command();
        let run = cli
            .find_subcommand("k8s")
            .and_then(|k| k.find_subcommand("run"))
            .expect("wsherd k8s run");
        let mut seen = 0;
        for arg in run.get_arguments() {
            let takes_file = arg
                .get_value_names()
                .is_some_and(|v| v.iter().any(|n| n.as_str() == "FILE"));
            let Some(long) = arg.get_long().filter(|_| takes_file) else {
                continue;
            };
            let flag = format!("--{long}");
            seen += 1;
            assert!(
                FILE_FLAGS.contains(&flag.as_str())
                    || LOCAL_VALUED.contains(&flag.as_str())
                    || REFUSED.iter().any(|(f, _)| *f == flag),
                "{flag} takes a FILE: add it to FILE_FLAGS (shipped), LOCAL_VALUED or REFUSED"
            );
        }
        assert!(seen >= FILE_FLAGS.len(), "{seen} FILE flags found");
    }

    #[test]
    fn the_agents_get_the_run_flags_as_typed() {
        let (args, files) = agent_args(&argv(
            "wsherd k8s run ws://e:9000/ -c 10k --agents 4 --k8s-namespace=load --dry-run \
             --json out.json --threshold rtt.p99<5ms -q --rate 20k -d 1m --keep",
        ))
        .unwrap();
        assert_eq!(args, argv("run ws://e:9000/ -c 10k --rate 20k -d 1m"));
        assert!(files.is_empty());
        for (flag, why) in [
            ("--agent 1/2", "--agents"),
            ("--start-at 5", "--start-margin"),
            ("--cert c.pem", "Secret"),
            ("--metrics-addr=0.0.0.0:1", "9102"),
            ("--source-ip 10.0.0.1,10.0.0.2", "--host-network"),
        ] {
            let e = agent_args(&argv(&format!("wsherd k8s run ws://e/ {flag}"))).unwrap_err();
            assert!(e.to_string().contains(why), "{flag}: {e}");
        }
    }

    #[test]
    fn files_the_run_reads_go_into_the_config_map() {
        let dir = std::env::temp_dir().join(format!("wsherd-k8s-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("b")).unwrap();
        let (a, b) = (dir.join("users.csv"), dir.join("b/users.csv"));
        std::fs::write(&a, "user\nann\n").unwrap();
        std::fs::write(&b, "user\nbob\n").unwrap();
        let line = format!(
            "wsherd k8s run ws://e/ --data {} --payload-file={}",
            a.display(),
            b.display()
        );
        let (args, files) = agent_args(&argv(&line)).unwrap();
        assert_eq!(
            args,
            argv("run ws://e/ --data /etc/wsherd/users.csv --payload-file /etc/wsherd/2-users.csv")
        );
        assert_eq!(files[0], ("users.csv".into(), "user\nann\n".into()));
        assert_eq!(files[1].0, "2-users.csv");
        let e = agent_args(&argv("wsherd k8s run ws://e/ --data /no/such.csv")).unwrap_err();
        assert!(e.to_string().contains("/no/such.csv"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn hosts_are_checked_without_being_resolved() {
        for (url, want) in [
            ("ws://wsherd-serve:9000/", "ws://127.0.0.1:9000/"),
            ("wss://echo.load.svc/chat?x=1", "wss://127.0.0.1/chat?x=1"),
            ("ws://echo:9001-9004/", "ws://127.0.0.1:9001-9004/"),
            ("ws://[fd00::1]:80/", "ws://127.0.0.1:80/"),
            ("http://u:p@squid:3128", "http://u:p@127.0.0.1:3128"),
            ("ws:///", "ws:///"),
            ("ws://a b:9000/", "ws://a b:9000/"),
            ("echo:9000", "echo:9000"),
        ] {
            assert_eq!(offline(url), want, "{url}");
        }
    }

    /// The pod's memory: the measured bytes of the run's kind of connection
    /// (host::conn_bytes), the kernel's per socket, and the agent's base.
    #[test]
    fn memory_is_sized_from_the_kind_of_connection() {
        use clap::Parser;
        let mem = |flags: &str| {
            let line = format!("wsherd k8s run {flags} -c 20k --agents 2 --dry-run");
            let cli = crate::cli::Cli::try_parse_from(argv(&line)).unwrap();
            let crate::cli::Command::K8s(crate::cli::K8sCommand::Run(a)) = cli.command else {
                panic!("not k8s run");
            };
            let launch = plan_k8s(*a, &argv(&line)).unwrap();
            (launch.spec.memory_bytes - AGENT_BASE_BYTES) / 10_000
        };
        let kernel = crate::doctor::KERNEL_SOCKET_BYTES + 8192;
        use crate::host::{BEAT_BYTES, PARKED_BYTES, SENDING_BYTES, TLS_BYTES};
        assert_eq!(mem("ws://e/ --workload idle"), PARKED_BYTES + kernel);
        assert_eq!(
            mem("ws://e/ --workload idle --heartbeat 5s"),
            BEAT_BYTES + kernel
        );
        assert_eq!(mem("ws://e/ --rate 20k"), SENDING_BYTES + kernel);
        assert_eq!(
            mem("ws://e/ --rate 20k --size 4096"),
            SENDING_BYTES + 2 * (4096 - 64) + kernel
        );
        // An idle TLS connection keeps its task (it does not park), and rustls's state.
        assert_eq!(
            mem("wss://e/ --workload idle"),
            BEAT_BYTES + TLS_BYTES + kernel
        );
        // Deflate keeping context both ways: zlib's state at 15-bit windows.
        let zlib = (crate::ws::deflate::compressor_bytes(15)
            + crate::ws::deflate::decompressor_bytes(15)) as u64;
        assert_eq!(mem("ws://e/ --deflate"), SENDING_BYTES + zlib + kernel);
        assert_eq!(
            mem("ws://e/ --deflate=client_no_context_takeover,server_no_context_takeover"),
            SENDING_BYTES + kernel
        );
    }

    #[test]
    fn files_beyond_what_a_config_map_holds_are_refused() {
        let path = std::env::temp_dir().join(format!("wsherd-k8s-big-{}.csv", std::process::id()));
        std::fs::write(&path, "x".repeat(CONFIG_MAP_FILES_MAX + 1)).unwrap();
        let line = format!("wsherd k8s run ws://e/ --data {}", path.display());
        let e = agent_args(&argv(&line)).unwrap_err().to_string();
        std::fs::remove_file(&path).unwrap();
        assert!(e.contains("more than a ConfigMap holds"), "{e}");
    }

    #[test]
    fn host_network_agents_cannot_be_packed() {
        use clap::Parser;
        let line = "wsherd k8s run ws://e/ --agents 2 --host-network --pack --dry-run";
        let cli = crate::cli::Cli::try_parse_from(argv(line)).unwrap();
        let crate::cli::Command::K8s(crate::cli::K8sCommand::Run(a)) = cli.command else {
            panic!("not k8s run");
        };
        let e = plan_k8s(*a, &argv(line)).unwrap_err().to_string();
        assert!(e.contains("--host-network with --pack"), "{e}");
    }

    #[test]
    fn job_names_are_dns_labels() {
        let (a, b) = (default_name(), default_name());
        assert!(check_name(&a).is_ok(), "{a}");
        assert_ne!(a, b, "two launches in one second get two names");
        assert!(check_name("wsherd-1").is_ok());
        for bad in ["", "Upper", "-a", "a-", "a_b", &"x".repeat(53)] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }
}
