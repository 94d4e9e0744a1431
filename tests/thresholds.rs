//! Thresholds end to end: a failing threshold exits 99 and a passing one 0, both
//! with their summary lines; `wsherd report --threshold` re-judges a saved run;
//! bad expressions and a taken metrics port are refused before any load; the
//! progress on a pipe stays plain lines.

mod support;

use std::time::Duration;
use support::{run_bin, serial};

const LIMIT: Duration = Duration::from_secs(40);

#[test]
fn passing_thresholds_exit_0_and_failing_ones_99() {
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("run.json");
    let j = json.to_str().unwrap();
    let out = run_bin(
        &[
            "run",
            "-c",
            "10",
            "-d",
            "2s",
            "--json",
            j,
            "--threshold",
            "rtt.p99<10s",
            "--threshold",
            "errors<1%",
            "--threshold",
            "connect.p95<5s",
            "--threshold",
            "rate>=1/s",
            "--bands",
            "rtt.p99=1us,2us",
        ],
        LIMIT,
    );
    assert_eq!(
        out.code,
        Some(0),
        "stdout {}\nstderr {}",
        out.stdout,
        out.stderr
    );
    assert!(
        out.stdout.contains("Thresholds (4 of 4 passed)"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("PASS  rtt.p99<10s"), "{}", out.stdout);
    assert!(out.stdout.contains("PASS  rate>=1/s"), "{}", out.stdout);
    // The custom band judges the same run poor; the defaults still apply elsewhere.
    assert!(out.stdout.contains("Assessment"), "{}", out.stdout);
    let p99 = out
        .stdout
        .lines()
        .find(|l| l.trim_start().starts_with("rtt.p99 "))
        .expect("rtt.p99 assessed");
    assert!(
        p99.contains("poor") && p99.contains("(≤1µs / ≤2µs, --bands)"),
        "{p99}"
    );
    // Not a terminal: plain progress lines, no escapes or carriage returns.
    assert!(
        out.stderr.lines().any(|l| l.contains("open")),
        "{}",
        out.stderr
    );
    assert!(
        !out.stderr.contains('\x1b') && !out.stderr.contains('\r'),
        "{:?}",
        out.stderr
    );
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let t = doc["thresholds"]
        .as_array()
        .expect("thresholds in the JSON");
    assert_eq!(t.len(), 4);
    assert_eq!(t[0]["expression"], "rtt.p99<10s");
    assert_eq!(t[0]["passed"], true);
    assert!(t[0]["value"].as_f64().unwrap() > 0.0);

    // The saved run, judged again with a threshold it cannot meet.
    let again = run_bin(
        &[
            "report",
            j,
            "--threshold",
            "rate>=1000000000/s",
            "--threshold",
            "rtt.p95<10s",
        ],
        LIMIT,
    );
    assert_eq!(again.code, Some(99), "{}\n{}", again.stdout, again.stderr);
    assert!(
        again.stdout.contains("Thresholds (1 of 2 passed)"),
        "{}",
        again.stdout
    );
    assert!(
        again.stdout.contains("FAIL  rate>=1000000000/s"),
        "{}",
        again.stdout
    );
    assert!(
        again.stderr.contains("1 of 2 thresholds failed"),
        "{}",
        again.stderr
    );
    // Without thresholds the report keeps the saved verdicts (all passed): 0.
    assert_eq!(run_bin(&["report", j], LIMIT).code, Some(0));

    // A run that fails its threshold exits 99, with the summary still printed.
    let fail = run_bin(
        &[
            "run",
            "-c",
            "10",
            "-d",
            "2s",
            "-q",
            "--threshold",
            "rtt.max<0us",
        ],
        LIMIT,
    );
    assert_eq!(fail.code, Some(99), "{}\n{}", fail.stdout, fail.stderr);
    assert!(fail.stdout.contains("Ledger"), "{}", fail.stdout);
    assert!(fail.stdout.contains("FAIL  rtt.max<0us"), "{}", fail.stdout);
}

#[test]
fn bad_thresholds_are_usage_errors_before_the_run() {
    for (args, why) in [
        (
            &["--threshold", "latency.p99<5ms"][..],
            "known metrics: rtt.STAT",
        ),
        (&["--threshold", "rtt.p99 5ms"][..], "no comparison"),
        (&["--threshold", "rtt.p99<5"][..], "time unit"),
        (&["--threshold", "errors<3"][..], "percentage"),
        (
            &["--bands", "rtt.p99=200ms,50ms"][..],
            "good bound must be lower",
        ),
        (&["--metrics-addr", "nowhere"][..], "--metrics-addr"),
    ] {
        let mut argv = vec!["run", "-c", "5", "-d", "30s"];
        argv.extend_from_slice(args);
        let t0 = std::time::Instant::now();
        let out = run_bin(&argv, LIMIT);
        assert_eq!(out.code, Some(2), "{args:?}: {}", out.stderr);
        assert!(out.stderr.contains(why), "{args:?}: {}", out.stderr);
        assert!(t0.elapsed() < Duration::from_secs(10), "{args:?} ran");
    }
    let out = run_bin(&["report", "x.json", "--threshold", "bogus<1"], LIMIT);
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(
        out.stderr.contains("unknown metric 'bogus'"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_taken_metrics_port_is_refused_before_the_run() {
    let _g = serial();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    for args in [
        vec![
            "run",
            "-c",
            "5",
            "-d",
            "30s",
            "--metrics-addr",
            addr.as_str(),
        ],
        vec![
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--metrics-addr",
            addr.as_str(),
        ],
    ] {
        let t0 = std::time::Instant::now();
        let out = run_bin(&args, LIMIT);
        assert_eq!(out.code, Some(1), "{args:?}: {}", out.stderr);
        assert!(
            out.stderr.contains(&addr) && out.stderr.contains("port is taken"),
            "{args:?}: {}",
            out.stderr
        );
        assert!(t0.elapsed() < Duration::from_secs(10), "{args:?} ran");
        assert!(!out.stdout.contains("Latency"), "{}", out.stdout);
    }
}
