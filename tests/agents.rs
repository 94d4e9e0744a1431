//! Several processes, one result: `--agent I/N` takes a share of the run, and
//! `wsherd merge` totals the agents' results without losing a sample.

mod support;

use std::process::Command;
use wsherd::engine::Run;
use wsherd::server::ServeConfig;

#[test]
fn agents_split_the_run_and_merge_losslessly() {
    let _s = support::serial();
    let srv = wsherd::server::start(
        ServeConfig::from_args(["--addr", "127.0.0.1:0", "--shards", "1", "-q"]).unwrap(),
    )
    .unwrap();
    let url = format!("ws://{}/", srv.addr());
    let dir = tempfile::tempdir().unwrap();
    let files: Vec<String> = (1..=2)
        .map(|i| {
            dir.path()
                .join(format!("agent{i}.json"))
                .display()
                .to_string()
        })
        .collect();
    // Both agents start together, as separate runs side by side.
    let start = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
        + 0.5;
    let start = format!("{start:.3}");
    let handles: Vec<_> = (1..=2)
        .map(|i| {
            let args = vec![
                url.clone(),
                "-c".into(),
                "31".into(),
                "-d".into(),
                "2s".into(),
                "-q".into(),
                "--agent".into(),
                format!("{i}/2"),
                "--start-at".into(),
                start.clone(),
                "--rate".into(),
                "1000".into(),
                "--json".into(),
                files[i - 1].clone(),
            ];
            std::thread::spawn(move || wsherd::run(Run::from_args(args).unwrap()).unwrap())
        })
        .collect();
    let parts: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    // 31 connections: 16 + 15; the rate splits the same way.
    assert_eq!(parts[0].config.connections, 16);
    assert_eq!(parts[1].config.connections, 15);
    let rates: Vec<f64> = parts.iter().map(|p| p.config.rate.unwrap()).collect();
    assert!((rates[0] + rates[1] - 1000.0).abs() < 1e-6, "{rates:?}");
    for p in &parts {
        support::check_invariants(p);
        assert_eq!(p.connections.failed, 0);
    }

    let total = dir.path().join("total.json");
    let out = Command::new(env!("CARGO_BIN_EXE_wsherd"))
        .args(["merge", &files[0], &files[1], "-q", "-o"])
        .arg(&total)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let merged: wsherd::results::RunResults =
        serde_json::from_slice(&std::fs::read(&total).unwrap()).unwrap();
    assert_eq!(merged.connections.established, 31);
    assert_eq!(
        merged.messages.sent,
        parts[0].messages.sent + parts[1].messages.sent
    );
    assert!(merged.messages.ledger_balances());
    // Lossless: the merged percentiles are those of the two histograms added.
    let mut h = wsherd::vocab::hist::new_histogram();
    for p in &parts {
        h.add(wsherd::vocab::hist::decode_histogram(&p.latency.rtt.hdr).unwrap())
            .unwrap();
    }
    assert_eq!(merged.latency.rtt.count, h.len());
    assert_eq!(
        merged.latency.rtt.p99_us,
        h.value_at_quantile(0.99) as f64 / 1000.0
    );
    assert_eq!(merged.latency.rtt.max_us, h.max() as f64 / 1000.0);
    let sent_per_sec = merged.messages.sent_per_sec;
    assert!((900.0..=1050.0).contains(&sent_per_sec), "{sent_per_sec}");

    // A saved run can be reported again.
    let out = Command::new(env!("CARGO_BIN_EXE_wsherd"))
        .arg("report")
        .arg(&total)
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("Ledger") && text.contains("(balanced)"),
        "{text}"
    );
}

#[test]
fn bad_agent_flags_and_files_are_refused() {
    support::assert_usage_errors(&[
        (&["--agent", "3/2"][..], "1 <= I <= N"),
        (&["--agent", "0/2"][..], "1 <= I <= N"),
        (&["--agent", "half"][..], "I/N"),
        (&["--agent", "3/4", "-c", "2"][..], "no connection"),
        (&["--start-at", "99999999999"][..], "within the next day"),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.json");
    std::fs::write(&junk, "{\"hello\": 1}").unwrap();
    for (file, why) in [
        (junk.display().to_string(), "not a wsherd results file"),
        ("missing.json".to_string(), "missing.json"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_wsherd"))
            .args(["report", &file])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(why) && !err.contains("panicked"), "{err}");
    }
}

#[test]
fn merge_refuses_results_that_are_not_parts_of_one_run() {
    let _s = support::serial();
    let dir = tempfile::tempdir().unwrap();
    let save = |name: &str, args: &[&str]| -> String {
        let path = dir.path().join(name).display().to_string();
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["-c", "2", "-d", "1s", "-q", "--json", &path]);
        support::run(&all, std::time::Duration::from_secs(30));
        path
    };
    let echo = save("echo.json", &[]);
    let ping = save("ping.json", &["--workload", "ping"]);
    let text = std::fs::read_to_string(&echo).unwrap();
    let old = dir.path().join("old.json");
    std::fs::write(
        &old,
        text.replacen("\"schema_version\": 1", "\"schema_version\": 0", 1),
    )
    .unwrap();
    let old = old.display().to_string();
    for (files, why) in [
        (vec![&echo, &ping], "are not parts of one run"),
        (vec![&echo, &echo], "are the same results"),
        (
            vec![&echo, &old],
            "schema version 0, this wsherd reads version 1",
        ),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_wsherd"))
            .arg("merge")
            .args(&files)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{files:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(why) && !err.contains("panicked"), "{err}");
    }
}

/// An agent that starts after `--start-at` (a pod scheduled late) says by how
/// much, and still runs its share.
#[test]
fn an_agent_that_starts_late_says_so() {
    // Agent 1/2 of a small run starting `offset` seconds from now: its stderr.
    let run_at = |offset: i64| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let at = (now + offset).to_string();
        let args = [
            "run",
            "-c",
            "4",
            "-d",
            "1s",
            "--agent",
            "1/2",
            "--start-at",
            &at,
            "-q",
        ];
        let out = support::run_bin(&args, std::time::Duration::from_secs(30));
        assert_eq!(out.code, Some(0), "{out:?}");
        out.stderr
    };
    let late = run_at(-5);
    assert!(
        late.contains("warning: starting") && late.contains("after --start-at"),
        "{late}"
    );
    // On time: no warning.
    let on_time = run_at(1);
    assert!(!on_time.contains("warning: starting"), "{on_time}");
}
