//! Past the port limit: `--source-ip` spreads connections over source addresses
//! (bound before connect with IP_BIND_ADDRESS_NO_PORT) and several targets, and the
//! servers see it; bad address lists are refused before the run.

mod support;

use std::net::IpAddr;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

#[test]
fn servers_see_every_source_address_evenly() {
    let _s = support::serial();
    let a = support::echo_server();
    let b = support::echo_server();
    let (ua, ub) = (a.url(), b.url());
    let res = support::run(
        &[
            &ua,
            &ub,
            "-c",
            "800",
            "-d",
            "2s",
            "--rate",
            "800",
            "--source-ip",
            "127.0.0.1-127.0.0.4",
            "-q",
        ],
        Duration::from_secs(60),
    );
    support::check_invariants(&res);
    assert_eq!(res.connections.established, 800, "{:?}", res.connections);
    assert_eq!(res.connections.failed, 0, "{:?}", res.connections);
    for srv in [&a, &b] {
        let peers = srv.stats.peers.lock().unwrap().clone();
        let mut seen: Vec<(IpAddr, u64)> = peers.into_iter().collect();
        seen.sort();
        let want: Vec<(IpAddr, u64)> = (1..=4)
            .map(|i| (format!("127.0.0.{i}").parse().unwrap(), 100))
            .collect();
        // Each (source, target) pair carries 100 of the 800 connections.
        assert_eq!(seen, want, "peer addresses seen by {}", srv.url());
    }
}

/// Kills the server processes even when the test fails.
struct Procs(Vec<Child>);

impl Drop for Procs {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Two consecutive free loopback ports, below the ephemeral range (where busy
/// client sockets would make a free pair rare).
fn port_pair() -> u16 {
    let mut x = std::process::id() as u64 ^ 0x9e37_79b9_7f4a_7c15;
    for _ in 0..1000 {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let p = 20_000 + (x >> 33) as u16 % 12_000;
        let a = std::net::TcpListener::bind(("127.0.0.1", p));
        let b = std::net::TcpListener::bind(("127.0.0.1", p + 1));
        if a.is_ok() && b.is_ok() {
            return p;
        }
    }
    panic!("no two consecutive free ports in 20000-32000");
}

#[test]
fn thousands_of_connections_over_four_sources_and_two_server_processes() {
    let _s = support::serial();
    let p = port_pair();
    let mut procs = Procs(Vec::new());
    for port in [p, p + 1] {
        let addr = format!("127.0.0.1:{port}");
        procs.0.push(
            Command::new(env!("CARGO_BIN_EXE_wsherd"))
                .args(["serve", "--addr", &addr, "--shards", "1", "-q"])
                .spawn()
                .unwrap(),
        );
        let t0 = Instant::now();
        while std::net::TcpStream::connect(&addr).is_err() {
            assert!(
                t0.elapsed() < Duration::from_secs(5),
                "{addr} did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    // One URL naming both servers by their port range.
    let url = format!("ws://127.0.0.1:{p}-{}/", p + 1);
    let res = support::run(
        &[
            &url,
            "-c",
            "4000",
            "-d",
            "4s",
            "--rate",
            "4000",
            "--connect-rate",
            "4000",
            "--source-ip",
            "127.0.0.1-127.0.0.4",
            "-q",
        ],
        Duration::from_secs(90),
    );
    support::check_invariants(&res);
    let c = &res.connections;
    assert_eq!(c.established, 4000, "{c:?}");
    assert_eq!(c.failed, 0, "{c:?}");
    assert_eq!(c.lost, 0, "{c:?}");
    assert!(res.messages.received > 0, "{:?}", res.messages);
    // The run measured what holding them cost (user space, and the kernel apart).
    let m = res.memory.as_ref().expect("memory section");
    assert_eq!(m.held_connections, 4000, "{m:?}");
    assert!(m.held_rss_kib > m.start_rss_kib, "{m:?}");
    assert!(
        (100..64 * 1024).contains(&m.per_connection_bytes),
        "implausible cost per connection: {m:?}"
    );
    assert!(m.peak_rss_kib >= m.held_rss_kib, "{m:?}");
    assert!(m.kernel_tcp_peak_kib > 0, "{m:?}");
}

#[test]
fn bad_source_lists_are_refused_before_the_run() {
    support::assert_usage_errors(&[
        (
            &["--source-ip", "127.0.0.300"],
            "127.0.0.300 is not an address",
        ),
        (&["--source-ip", "127.0.0.1-::1"], "mixes IPv4 and IPv6"),
        (
            &["--source-ip", "192.0.2.77"],
            "192.0.2.77 is not assigned to this host",
        ),
        (
            &["ws://[::1]:9/", "--source-ip", "127.0.0.2"],
            "127.0.0.2 is IPv4 but the targets are IPv6",
        ),
        (
            &["--source-ip", "127.0.0.5-127.0.0.1"],
            "ends before it starts",
        ),
        (&["ws://127.0.0.1:9-8/"], "ends before it starts"),
        (&["ws://127.0.0.1:9-x/"], "is not a port range"),
    ]);
}

#[test]
fn a_plan_beyond_the_ports_of_its_pairs_is_refused_with_the_fix() {
    // Eight agents share one address: the whole run's 150,000 connections meet on one
    // (source, target) pair, more than any port range holds.
    let Some(ports) = wsherd::host::ephemeral_ports() else {
        return;
    };
    assert!(ports < 150_000);
    let e = support::try_run(
        &[
            "ws://127.0.0.1:9/",
            "-c",
            "150000",
            "--agent",
            "1/8",
            "--source-ip",
            "127.0.0.1",
            "-d",
            "1s",
        ],
        Duration::from_secs(30),
    )
    .expect_err("refused");
    assert!(
        e.message.contains("(source address, target) pair") && e.message.contains("--source-ip"),
        "{}",
        e.message
    );
    // The same run over enough addresses fits the ports (and is then only stopped
    // by this host's open-file limit or runs; either way not for ports).
    let e = support::try_run(
        &[
            "ws://127.0.0.1:9/",
            "-c",
            "150000",
            "--agent",
            "1/8",
            "--source-ip",
            "127.0.0.1-127.0.0.16",
            "-d",
            "1s",
            "--connect-timeout",
            "1s",
            "-q",
        ],
        Duration::from_secs(60),
    );
    if let Err(e) = e {
        assert!(!e.message.contains("pair"), "{}", e.message);
    }
}

/// In a network namespace of its own (unshare -rn: loopback only, its own port
/// range), ten ports per pair: a run that holds them all leaves a second run from
/// the same address nothing, counted as port exhaustion; a second source address
/// has its own ten; and a plan needing more than ten on one pair is refused.
#[test]
fn port_exhaustion_is_counted_and_another_source_has_its_own_ports() {
    let _s = support::serial();
    if !Command::new("unshare")
        .args(["-rn", "true"])
        .status()
        .is_ok_and(|s| s.success())
    {
        eprintln!("SKIPPED: unshare -rn (user and network namespaces) is not available here");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let script = r#"
set -u
B=$1; D=$2
ip link set lo up
"$B" serve --addr 127.0.0.1:9000 --shards 1 -q &
S=$!
trap 'kill $S 2>/dev/null' EXIT
for i in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/9000) 2>/dev/null && break; sleep 0.05; done
echo "40000 40009" > /proc/sys/net/ipv4/ip_local_port_range
"$B" run ws://127.0.0.1:9000/ -c 10 -d 4s --workload idle -q --json "$D/a.json" > "$D/a.out" 2>&1 &
A=$!
sleep 1.5
"$B" run ws://127.0.0.1:9000/ -c 5 -d 1s --workload idle -q --json "$D/b.json" > "$D/b.out" 2>&1
"$B" run ws://127.0.0.1:9000/ -c 5 -d 1s --workload idle --source-ip 127.0.0.2 -q --json "$D/c.json" > "$D/c.out" 2>&1
"$B" run ws://127.0.0.1:9000/ -c 25 -d 1s -q > "$D/d.out" 2>&1
echo "d=$?" > "$D/d.rc"
wait $A
"#;
    let mut child = Command::new("timeout")
        .args(["60", "unshare", "-rn", "bash", "-c", script, "sh"])
        .arg(env!("CARGO_BIN_EXE_wsherd"))
        .arg(dir.path())
        .spawn()
        .unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "namespace script: {status:?}");
    let read = |name: &str| -> wsherd::results::RunResults {
        wsherd::report::read_json(&dir.path().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
    };
    let (a, b, c) = (read("a.json"), read("b.json"), read("c.json"));
    assert_eq!(a.connections.established, 10, "{:?}", a.connections);
    assert_eq!(b.connections.failed, 5, "{:?}", b.connections);
    assert_eq!(
        b.connections.failed_by_cause.get("port_exhausted"),
        Some(&5),
        "{:?}",
        b.connections
    );
    assert_eq!(c.connections.established, 5, "{:?}", c.connections);
    let d = std::fs::read_to_string(dir.path().join("d.out")).unwrap();
    assert!(
        d.contains("need 25 source ports") && d.contains("at least 3 source addresses"),
        "{d}"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("d.rc"))
            .unwrap()
            .trim(),
        "d=1"
    );
}
