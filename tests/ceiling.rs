//! `wsherd ceiling` against targets whose ceilings are known exactly: the built-in
//! server with `--max-connections N` (upgrades beyond N refused with 503) and with
//! `--service-time D` (one shard serves at most 1/D messages per second). The
//! search must find them within its precision, say why each failing step failed,
//! and account for every message of the run. Every search is bounded by its own
//! `--max-time` (an unfinished search fails the test) and by the test's limit.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use support::{run_bin, serial};
use wsherd::ceiling::Setup;
use wsherd::results::ceiling::{outcome, CeilingResults};
use wsherd::server::ServerHandle;

/// The built-in server in-process with `knobs`: one shard, on the last core
/// (away from the search's shard on the first).
fn serve(knobs: &[&str]) -> ServerHandle {
    support::serve_builtin("1", knobs)
}

/// Runs a search in this process (one load shard); ends it by setting the flag
/// if `interrupt_after` is given.
fn search(args: &[&str], interrupt_after: Option<Duration>) -> CeilingResults {
    let mut all = vec!["--shards", "1", "-q"];
    all.extend_from_slice(args);
    let setup = Setup::from_args(all).expect("a valid search");
    let flag = Arc::new(AtomicBool::new(false));
    if let Some(after) = interrupt_after {
        let f = flag.clone();
        std::thread::spawn(move || {
            std::thread::sleep(after);
            f.store(true, Ordering::Relaxed);
        });
    }
    wsherd::ceiling::search(setup, flag).expect("the search runs")
}

/// What holds for every search: the ledger balances, steps are numbered in
/// order, a failing step says why and a passing one has no reason.
fn check(c: &CeilingResults) {
    support::check_invariants(&c.run);
    for (i, s) in c.steps.iter().enumerate() {
        assert_eq!(s.index, i + 1);
        assert_eq!(s.passed, s.reasons.is_empty(), "{s:?}");
        assert!(s.secs >= 1.0, "{s:?}");
    }
    // A failure only counts once it was measured again, or when it failed far
    // beyond the SLO (then once, marked so).
    if let Some(f) = c.first_failing {
        let at: Vec<_> = c.steps.iter().filter(|s| s.level == f).collect();
        let decisive = at.iter().any(|s| s.far_beyond && !s.passed);
        assert!(
            at.len() >= 2 || decisive,
            "{f} measured {} time(s): {:#?}",
            at.len(),
            c.steps
        );
    }
    for s in &c.steps {
        assert!(!s.far_beyond || !s.passed, "{s:?}");
    }
}

fn levels(c: &CeilingResults) -> Vec<(f64, bool)> {
    c.steps.iter().map(|s| (s.level, s.passed)).collect()
}

#[test]
fn finds_the_connection_ceiling_of_a_server_that_refuses_beyond_3000() {
    let _serial = serial();
    let srv = serve(&["--max-connections", "3000"]);
    let url = format!("ws://{}/", srv.addr());
    // Each connection sends one message a second: the server's CPU is no limit,
    // only its connection cap is.
    let c = search(
        &[
            &url,
            "--dimension",
            "connections",
            "--start",
            "1000",
            "--max",
            "8000",
            "--rate-per-conn",
            "1",
            "--slo",
            "rtt.p99<500ms,errors<1%",
            "--step-duration",
            "1s",
            "--settle",
            "1s",
            "--max-time",
            "50s",
        ],
        None,
    );
    srv.stop();
    check(&c);
    assert_eq!(c.outcome, outcome::CEILING, "{}", c.verdict);
    let ceiling = c.ceiling.unwrap();
    assert!(
        (2850.0..=3000.0).contains(&ceiling),
        "ceiling {ceiling}, not within 5% of 3000: {:?}",
        levels(&c)
    );
    let failing = c.first_failing.unwrap();
    assert!(failing > 3000.0 && failing <= ceiling * 1.05, "{failing}");
    // Every step above the cap failed because connections were refused, and
    // every step at or below it held.
    for s in &c.steps {
        if s.level > 3000.0 {
            assert!(!s.passed, "{s:?}");
            assert!(
                s.reasons.iter().any(|r| r.contains("held only 3,000")),
                "{:?}",
                s.reasons
            );
            assert!(s.failed_by_cause.contains_key("http_503"), "{s:?}");
        } else {
            assert!(s.passed, "{s:?}");
            assert!(s.open_min as f64 >= s.level - 1.0, "{s:?}");
        }
    }
    assert!(c.verdict.starts_with("Ceiling: "), "{}", c.verdict);
    assert!(c.limited_by.as_deref().unwrap().contains("held only"));
    // Connections were added without closing the open ones: never more
    // established than the levels needed plus the refused retries.
    assert!(!c.run.interrupted);
}

#[test]
fn finds_the_rate_ceiling_of_a_server_with_a_known_service_time() {
    let _serial = serial();
    // One shard, 1 ms per message: at most 1000 messages/s.
    let srv = serve(&["--service-time", "1ms"]);
    let url = format!("ws://{}/", srv.addr());
    let c = search(
        &[
            &url,
            "--dimension",
            "rate",
            "-c",
            "50",
            "--start",
            "300",
            "--slo",
            "rtt.p99<50ms,errors<1%",
            "--step-duration",
            "1s",
            "--settle",
            "1s",
            "--max-time",
            "50s",
        ],
        None,
    );
    srv.stop();
    check(&c);
    assert_eq!(c.outcome, outcome::CEILING, "{}", c.verdict);
    let ceiling = c.ceiling.unwrap();
    assert!(
        (900.0..=1100.0).contains(&ceiling),
        "ceiling {ceiling} msg/s, not within 10% of 1000: {:?}",
        levels(&c)
    );
    // The rate changed in place: the same 50 connections carried every step.
    assert_eq!(c.run.connections.attempted, 50, "{:?}", c.run.connections);
    assert_eq!(c.run.connections.lost, 0);
    for s in c.steps.iter().filter(|s| s.passed) {
        assert!(
            (s.sent_per_sec - s.level).abs() <= s.level * 0.05,
            "asked {} sent {}",
            s.level,
            s.sent_per_sec
        );
    }
    // Well above the capacity the server answers at its capacity, not more.
    for s in c.steps.iter().filter(|s| s.level >= 1200.0) {
        assert!(!s.passed, "{s:?}");
        assert!(s.received_per_sec < 1100.0, "{s:?}");
    }
    assert!(!c.client_limited, "{}", c.verdict);
}

#[test]
fn a_target_that_holds_up_to_max_has_no_ceiling_below_it() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("ceiling.json");
    let html = dir.path().join("ceiling.html");
    // The built-in server in the same process, through the binary.
    let out = run_bin(
        &[
            "ceiling",
            "--dimension",
            "rate",
            "-c",
            "20",
            "--start",
            "100",
            "--max",
            "400",
            "--slo",
            "rtt.p99<1s,errors<1%",
            "--step-duration",
            "1s",
            "--settle",
            "1s",
            "--max-time",
            "40s",
            "--json",
            json.to_str().unwrap(),
            "--html",
            html.to_str().unwrap(),
        ],
        Duration::from_secs(60),
    );
    assert_eq!(out.code, Some(0), "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("No ceiling below 400 messages/s"),
        "{}",
        out.stdout
    );
    // Live step lines on stderr, the table on stdout.
    assert!(out.stderr.contains("step  1"), "{}", out.stderr);
    assert!(out.stdout.contains("(balanced)"), "{}", out.stdout);
    let text = std::fs::read_to_string(&json).unwrap();
    let c: CeilingResults = serde_json::from_str(&text).unwrap();
    check(&c);
    // The file keeps its contract: the search's schema, and the run's inside it.
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    let violations = |schema: &str, doc: &serde_json::Value| -> Vec<String> {
        let s: serde_json::Value = serde_json::from_str(schema).unwrap();
        let v = jsonschema::validator_for(&s).expect("schema compiles");
        v.iter_errors(doc)
            .map(|e| format!("{e} at {}", e.instance_path()))
            .collect()
    };
    let ceiling_schema = wsherd::results::ceiling::CEILING_JSON_SCHEMA;
    assert_eq!(violations(ceiling_schema, &doc), Vec::<String>::new());
    assert_eq!(
        violations(wsherd::results::RESULTS_SCHEMA, &doc["run"]),
        Vec::<String>::new()
    );
    let mut broken = doc.clone();
    broken["steps"][0]["client"]["surprise"] = serde_json::json!(1);
    broken["outcome"] = serde_json::json!("maybe");
    assert_eq!(violations(ceiling_schema, &broken).len(), 2);
    assert_eq!(c.outcome, outcome::NO_CEILING);
    assert_eq!(levels(&c), [(100.0, true), (200.0, true), (400.0, true)]);
    assert_eq!(c.ceiling, Some(400.0));
    assert!(c.run.config.embedded_server);
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains("No ceiling below 400"), "html verdict");
    // `wsherd report` reads a saved search back: the table, and the page again.
    let again = dir.path().join("again.html");
    let out = run_bin(
        &[
            "report",
            json.to_str().unwrap(),
            "--html",
            again.to_str().unwrap(),
        ],
        Duration::from_secs(20),
    );
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(out.stdout.contains("No ceiling below 400 messages/s"));
    assert!(
        out.stdout.contains("    3            400"),
        "{}",
        out.stdout
    );
    assert_eq!(std::fs::read_to_string(&again).unwrap(), page);
    let out = run_bin(
        &[
            "report",
            json.to_str().unwrap(),
            "--threshold",
            "rtt.p99<1s",
        ],
        Duration::from_secs(20),
    );
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("--slo"), "{}", out.stderr);
}

#[test]
fn session_rates_step_up_in_place() {
    let _serial = serial();
    let c = search(
        &[
            "--dimension",
            "sessions",
            "--messages",
            "2",
            "--start",
            "20",
            "--max",
            "80",
            "--slo",
            "session.p99<1s,errors<1%",
            "--step-duration",
            "2s",
            "--settle",
            "1s",
            "--max-time",
            "40s",
        ],
        None,
    );
    check(&c);
    assert_eq!(c.outcome, outcome::NO_CEILING, "{}", c.verdict);
    assert_eq!(levels(&c), [(20.0, true), (40.0, true), (80.0, true)]);
    for s in &c.steps {
        let done = s.sessions_per_sec.unwrap();
        assert!(
            (done - s.level).abs() <= s.level * 0.1,
            "asked {} sessions/s, completed {done}",
            s.level
        );
    }
}

#[test]
fn an_interrupted_search_reports_what_it_found() {
    let _serial = serial();
    let c = search(
        &[
            "--dimension",
            "rate",
            "-c",
            "10",
            "--start",
            "100",
            "--slo",
            "rtt.p99<1s",
            "--step-duration",
            "1s",
            "--settle",
            "1s",
        ],
        Some(Duration::from_millis(4500)),
    );
    check(&c);
    assert_eq!(c.outcome, outcome::INCOMPLETE, "{}", c.verdict);
    assert!(c.run.interrupted);
    assert!(c.verdict.contains("interrupted"), "{}", c.verdict);
    assert!(!c.steps.is_empty() && c.steps.iter().all(|s| s.passed));
    assert_eq!(c.ceiling, Some(c.steps.last().unwrap().level));
}

#[test]
fn bad_searches_are_refused_before_they_start() {
    let usage: &[(&[&str], &str)] = &[
        (&["--dimension", "rate", "--slo", "rtt.p99<<5ms"], "--slo"),
        (&["--dimension", "rate", "--slo", "bogus<5"], "--slo"),
        (&["--dimension", "rate", "--slo", " , "], "--slo is empty"),
        (
            &["--dimension", "rate", "--start", "5000", "--max", "100"],
            "is above --max",
        ),
        (&["--dimension", "rate", "--inflight", "4"], "closed loop"),
        (
            &["--dimension", "rate", "-w", "idle"],
            "does not fit the idle",
        ),
        (&["--dimension", "sessions", "-w", "echo"], "churn or chat"),
        (
            &["--dimension", "connections", "-c", "100"],
            "-c does not go with --dimension connections",
        ),
        (&["--dimension", "rate", "--precision", "0"], "--precision"),
        (
            &["--dimension", "rate", "--precision", "150%"],
            "--precision",
        ),
        (&["--dimension", "rate", "--growth", "1"], "--growth"),
        (
            &["--dimension", "rate", "--step-duration", "500ms"],
            "at least 1s",
        ),
        (
            &["--dimension", "connections", "-w", "idle"],
            "sends nothing to time",
        ),
        (&["--dimension", "rate", "--start", "0"], "above zero"),
        (&["--dimension", "rate", "--settle", "0s"], "at least 1s"),
        (
            &["--dimension", "rate", "--max-time", "5s"],
            "leaves no room for one step",
        ),
        (
            &["--dimension", "rate", "-c", "2", "--max", "5m"],
            "more than wsherd schedules",
        ),
        (&["--dimension", "rate", "--max", "1e308k"], "too large"),
    ];
    for (args, why) in usage {
        let e = Setup::from_args(args.iter().copied())
            .expect_err(&format!("{args:?} should be refused"));
        assert_eq!(e.exit_code(), 2, "{args:?}: {e}");
        assert!(e.to_string().contains(why), "{args:?}: {e}");
    }
    // More connections than this host's open-file limit: refused with the fit.
    let e = Setup::from_args(["--dimension", "connections", "--max", "10m"])
        .expect_err("10 million connections do not fit");
    assert!(e.to_string().contains("does not fit this host"), "{e}");
    // Through the binary: one line, exit 2, no backtrace.
    let out = run_bin(
        &["ceiling", "--dimension", "rate", "--slo", "rtt.p99<<5ms"],
        Duration::from_secs(20),
    );
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(out.stderr.starts_with("error: --slo"), "{}", out.stderr);
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    let out = run_bin(&["ceiling"], Duration::from_secs(20));
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("--dimension"), "{}", out.stderr);
}
