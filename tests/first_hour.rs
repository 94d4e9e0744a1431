//! What a new user trips on in the first hour (issue 15), each checked on the
//! binary as the user meets it: a misspelled flag or command gets a suggestion
//! and the help to read, a flag of wrk2 or k6 gets its wsherd spelling.

mod support;

use std::time::Duration;
use support::run_bin;

/// A summary with its long lines joined again (continuations are indented
/// six spaces under a two-space line).
fn unwrapped(text: &str) -> String {
    text.replace("\n      ", " ")
}

/// `wsherd ARGS` fails as a usage error (exit 2) in one line containing every
/// one of `wanted`, with no backtrace.
fn usage_error(args: &[&str], wanted: &[&str]) {
    let out = run_bin(args, Duration::from_secs(10));
    assert_eq!(out.code, Some(2), "wsherd {args:?}: {out:?}");
    let err = out.stderr.trim_end();
    assert_eq!(err.lines().count(), 1, "one line for {args:?}: {err}");
    assert!(err.starts_with("error: "), "{err}");
    for w in wanted {
        assert!(err.contains(w), "wsherd {args:?}: no {w:?} in {err}");
    }
    assert!(!err.contains("panicked") && !err.contains("backtrace"));
}

#[test]
fn typos_get_a_suggestion_and_the_subcommands_help() {
    usage_error(
        &["run", "--conections", "5"],
        &[
            "'--conections'",
            "did you mean '--connections'?",
            "(see wsherd run --help)",
        ],
    );
    usage_error(&["rn", "-c", "5"], &["'rn'", "did you mean 'run'?"]);
    usage_error(&["sreve"], &["did you mean 'serve'?"]);
    usage_error(
        &["xyzzy"],
        &["the commands are run, ceiling, serve, merge, report, doctor"],
    );
    usage_error(
        &["ws://127.0.0.1:9/", "-c", "5"],
        &["to load it: wsherd run ws://127.0.0.1:9/"],
    );
    usage_error(
        &["ceiling", "--dimension", "rate", "--setle", "1s"],
        &["did you mean '--settle'?", "(see wsherd ceiling --help)"],
    );
    usage_error(
        &["ceiling", "--dimension", "rate", "--warmup", "1s"],
        &["--warmup is a flag of wsherd run, not of wsherd ceiling"],
    );
    usage_error(
        &["serve", "--adr", "x"],
        &["did you mean '--addr'?", "(see wsherd serve --help)"],
    );
    usage_error(
        &["serve", "--listen", "127.0.0.1:9000"],
        &["listens on --addr HOST:PORT", "(see wsherd serve --help)"],
    );
}

/// A flag the subcommand takes, given a bad or no value, gets clap's own
/// message (which value, what is accepted), never "a flag of wsherd doctor".
#[test]
fn a_bad_or_missing_value_is_named_not_sent_to_another_command() {
    let not_elsewhere = |args: &[&str]| {
        let out = run_bin(args, Duration::from_secs(10));
        assert!(
            !out.stderr.contains("is a flag of wsherd"),
            "wsherd {args:?}: {}",
            out.stderr
        );
    };
    let missing = ["run", "-c"];
    usage_error(
        &missing,
        &[
            "a value is required for '--connections <CONNECTIONS>'",
            "(see wsherd run --help)",
        ],
    );
    not_elsewhere(&missing);
    let missing = ["run", "--json"];
    usage_error(&missing, &["a value is required for '--json <FILE>'"]);
    not_elsewhere(&missing);
    let bad = ["run", "-w", "eco"];
    usage_error(
        &bad,
        &[
            "invalid value 'eco' for '--workload <WORKLOAD>'",
            "[possible values: echo, ping,",
            "did you mean 'echo'?",
            "(see wsherd run --help)",
        ],
    );
    not_elsewhere(&bad);
    let bad = ["ceiling", "--dimension", "rate", "-c", "lots"];
    usage_error(
        &bad,
        &["'lots' is not a count", "(see wsherd ceiling --help)"],
    );
    not_elsewhere(&bad);
    // A flag this command lacks still says where it belongs.
    usage_error(
        &["serve", "--connections", "4"],
        &["--connections is a flag of wsherd run"],
    );
}

#[test]
fn flags_of_wrk2_and_k6_get_their_wsherd_spelling() {
    usage_error(&["run", "-R", "100"], &["wrk2's -R is --rate N"]);
    usage_error(&["run", "-t", "2"], &["--shards N"]);
    usage_error(&["run", "--threads=2"], &["--shards N"]);
    usage_error(&["run", "--vus", "10"], &["-c/--connections N"]);
    usage_error(&["run", "--latency"], &["always in the report"]);
    usage_error(&["run", "-n", "1000"], &["--workload churn --messages N"]);
}

/// `wsherd ARGS` (some not UTF-8) with stdout and stderr, killed after 10 s.
fn run_os(args: &[std::ffi::OsString]) -> (Option<i32>, String) {
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_wsherd"))
        .args(args)
        .env_remove("RUST_BACKTRACE")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn wsherd");
    let started = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            panic!("wsherd {args:?} did not exit within 10 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// An argument that is not UTF-8 is a usage error naming it (lossily), never
/// a panic: where wsherd needs the command line as text (`k8s run` passes it
/// to the agents), and where clap refuses it.
#[test]
fn an_argument_that_is_not_utf8_is_a_usage_error() {
    use std::ffi::OsString;
    use std::os::unix::ffi::OsStringExt;
    let os = |args: &[&[u8]]| -> Vec<OsString> {
        args.iter()
            .map(|a| OsString::from_vec(a.to_vec()))
            .collect()
    };
    for (args, named) in [
        (
            os(&[
                b"k8s",
                b"run",
                b"ws://127.0.0.1:9/",
                b"--agents",
                b"2",
                b"--dry-run",
                b"--json",
                b"r\xff.json",
            ]),
            "'r\u{FFFD}.json'",
        ),
        (os(&[b"run", b"ws://\xff/"]), "'ws://\u{FFFD}/'"),
    ] {
        let (code, err) = run_os(&args);
        let err = err.trim_end();
        assert_eq!(code, Some(2), "wsherd {args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "one line for {args:?}: {err}");
        assert_eq!(
            err,
            format!("error: argument {named} is not valid UTF-8: wsherd's arguments must be UTF-8")
        );
    }
    // A path need not be UTF-8 for `run`: another mistake keeps clap's message.
    let (code, err) = run_os(&os(&[b"run", b"--bogus", b"--json", b"r\xff.json"]));
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.starts_with("error: unexpected argument '--bogus'"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn json_to_stdout_puts_the_summary_on_stderr_and_hgrm_fills_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    let hgrm = format!("{}/", dir.path().display());
    let out = run_bin(
        &[
            "run", "-c", "2", "-d", "1s", "--warmup", "0s", "-q", "--json", "-", "--hgrm", &hgrm,
        ],
        Duration::from_secs(30),
    );
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    // stdout is the results and nothing else, for jq.
    let v: serde_json::Value = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}): {}", out.stdout));
    assert!(v["messages"]["received"].as_u64().unwrap() > 0);
    // The summary went to stderr.
    assert!(
        out.stderr.contains("echo workload, 2 connections"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("Latency"), "{}", out.stderr);
    // --hgrm DIR/: DIR/rtt.hgrm, not hidden files named DIR/.rtt.hgrm.
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert!(names.contains(&"rtt.hgrm".to_string()), "{names:?}");
    assert!(names.iter().all(|n| !n.starts_with('.')), "{names:?}");

    // merge takes --json like every other command, and `-` too.
    let part = dir.path().join("part.json");
    std::fs::write(&part, &out.stdout).unwrap();
    let part = part.to_str().unwrap();
    let merged = run_bin(&["merge", part, "--json", "-"], Duration::from_secs(20));
    assert_eq!(merged.code, Some(0), "{}", merged.stderr);
    let m: serde_json::Value = serde_json::from_str(&merged.stdout).unwrap();
    assert_eq!(m["messages"]["received"], v["messages"]["received"]);
    assert!(merged.stderr.contains("Latency"), "{}", merged.stderr);
}

/// `--html -` and `--csv -` put the report on stdout and the summary on
/// stderr, as `--json -` does; two outputs on stdout are refused.
#[test]
fn a_report_on_stdout_puts_the_summary_on_stderr() {
    let _serial = support::serial();
    for (flag, starts, ends) in [
        ("--html", "<!DOCTYPE html>", "</html>"),
        ("--csv", "t_s,open,", ""),
    ] {
        let out = run_bin(
            &[
                "run", "-c", "2", "-d", "1s", "--warmup", "0s", "-q", flag, "-",
            ],
            Duration::from_secs(30),
        );
        assert_eq!(out.code, Some(0), "{flag}: {}", out.stderr);
        assert!(out.stdout.starts_with(starts), "{flag}: {}", out.stdout);
        // Nothing after the report (the page holds the summary, folded).
        assert!(
            out.stdout.trim_end().ends_with(ends),
            "{flag}: {}",
            out.stdout
        );
        if flag == "--csv" {
            assert!(!out.stdout.contains("Latency"), "summary on stdout");
        }
        assert!(out.stderr.contains("Latency"), "{flag}: {}", out.stderr);
    }
    usage_error(
        &["run", "--json", "-", "--html", "-"],
        &["--json - and --html - both write to stdout"],
    );
}

/// A run refused by an output check leaves no empty file of the outputs
/// checked before it.
#[test]
fn a_failed_output_check_leaves_no_empty_file() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("r.json");
    let d = dir.path().to_str().unwrap();
    let out = run_bin(
        &[
            "run",
            "-c",
            "1",
            "-d",
            "5s",
            "-q",
            "--json",
            json.to_str().unwrap(),
            "--html",
            d,
        ],
        Duration::from_secs(10),
    );
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(
        out.stderr.contains(&format!("cannot write --html {d}")),
        "{}",
        out.stderr
    );
    assert!(
        !json.exists(),
        "an empty {} was left behind",
        json.display()
    );
    // A file that was there keeps its content.
    std::fs::write(&json, "kept").unwrap();
    let out = run_bin(
        &[
            "run",
            "-c",
            "1",
            "-d",
            "5s",
            "-q",
            "--json",
            json.to_str().unwrap(),
            "--html",
            d,
        ],
        Duration::from_secs(10),
    );
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert_eq!(std::fs::read_to_string(&json).unwrap(), "kept");
}

#[test]
fn an_output_error_names_its_flag() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    for flag in ["--json", "--html", "--csv", "--hlog"] {
        let out = run_bin(
            &["run", "-c", "1", "-d", "5s", "-q", flag, d],
            Duration::from_secs(10),
        );
        assert_eq!(out.code, Some(1), "{flag}: {}", out.stderr);
        assert!(
            out.stderr.contains(&format!("cannot write {flag} {d}")),
            "{flag}: {}",
            out.stderr
        );
    }
}

#[test]
fn a_target_where_nothing_answers_ends_early_with_a_hint() {
    let port = support::closed_port();
    let url = format!("ws://127.0.0.1:{port}/");
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("r.json");
    let t0 = std::time::Instant::now();
    let out = run_bin(
        &[
            "run",
            &url,
            "-c",
            "3",
            "-d",
            "60s",
            "-q",
            "--json",
            json.to_str().unwrap(),
        ],
        Duration::from_secs(30),
    );
    let took = t0.elapsed();
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(
        took < Duration::from_secs(15),
        "ran {took:?} of a 60 s run against nothing"
    );
    assert!(
        out.stderr
            .contains(&format!("is anything listening on 127.0.0.1:{port}?")),
        "{}",
        out.stderr
    );
    assert!(
        unwrapped(&out.stdout).contains("GAVE UP: nothing reachable"),
        "{}",
        out.stdout
    );
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert!(
        v["gave_up"].as_str().unwrap().contains("--keep-trying"),
        "{v}"
    );
    assert_eq!(v["interrupted"], false);

    // --keep-trying runs the whole duration, as a flapping target needs.
    let t0 = std::time::Instant::now();
    let out = run_bin(
        &["run", &url, "-c", "2", "-d", "5s", "-q", "--keep-trying"],
        Duration::from_secs(30),
    );
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(t0.elapsed() >= Duration::from_secs(5), "{:?}", t0.elapsed());
    assert!(!out.stdout.contains("GAVE UP"), "{}", out.stdout);
}

/// A plain HTTP server on loopback that answers every request with `status`
/// and closes; it stops after `SERVER_LIFETIME` at the latest.
fn http_server(status: &'static str) -> std::net::SocketAddr {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let end = std::time::Instant::now() + support::SERVER_LIFETIME;
        while std::time::Instant::now() < end {
            match listener.accept() {
                Ok((mut s, _)) => {
                    let _ = s.set_nonblocking(false);
                    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                    let mut buf = [0u8; 4096];
                    let _ = s.read(&mut buf);
                    let _ = write!(
                        s,
                        "HTTP/1.1 {status}\r\nLocation: /elsewhere\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
                    );
                }
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    });
    addr
}

/// A handshake answered with HTTP 200 (or a redirect) instead of 101: the run
/// gives up early and says what the answer means.
#[test]
fn a_handshake_answered_with_plain_http_gets_a_hint() {
    for (status, hint) in [
        (
            "200 OK",
            "the server answered HTTP 200 instead of 101: is this a WebSocket endpoint? \
             check the URL's path",
        ),
        (
            "301 Moved Permanently",
            "the server answered HTTP 301 instead of 101: a redirect, which a WebSocket \
             client does not follow",
        ),
    ] {
        let url = format!("ws://{}/", http_server(status));
        let t0 = std::time::Instant::now();
        let out = run_bin(
            &["run", &url, "-c", "2", "-d", "30s", "-q"],
            Duration::from_secs(30),
        );
        assert_eq!(out.code, Some(1), "{status}: {}", out.stderr);
        assert!(t0.elapsed() < Duration::from_secs(15), "{:?}", t0.elapsed());
        let err = out.stderr.trim_end();
        assert!(
            err.contains("no connection could be established (http_"),
            "{err}"
        );
        assert!(err.contains(hint), "{status}: {err}");
        assert!(unwrapped(&out.stdout).contains("GAVE UP"), "{}", out.stdout);
    }
}

/// A scenario file with a URL of its own (nothing listens there) and two
/// scenarios, one with a threshold.
const TWO_SCENARIOS: &str = r#"
mode = "sequential"
duration = "1s"
warmup = "0s"
url = "ws://127.0.0.1:1/"

[[scenario]]
name = "closed loop"
connections = 4

[[scenario]]
name = "open"
connections = 4
rate = 200
threshold = ["errors<1%"]
"#;

#[test]
fn scenarios_take_a_url_and_report_files_and_end_with_a_comparison() {
    let _serial = support::serial();
    let server = support::serve_builtin("1", &[]);
    let url = format!("ws://{}/", server.addr());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("s.toml");
    std::fs::write(&file, TWO_SCENARIOS).unwrap();
    let json = dir.path().join("r.json");
    let html = dir.path().join("report.html");
    let out = run_bin(
        &[
            "run",
            &url,
            "--scenario",
            file.to_str().unwrap(),
            "-q",
            "--json",
            json.to_str().unwrap(),
            "--html",
            html.to_str().unwrap(),
        ],
        Duration::from_secs(60),
    );
    // The URL on the command line replaced the file's (nothing listens there).
    assert_eq!(out.code, Some(0), "{}\n{}", out.stdout, out.stderr);
    for (name, verdict) in [
        (
            "report.closed-loop.html",
            "<h2>Verdict: scenario closed loop</h2>",
        ),
        ("report.open.html", "<h2>Verdict: scenario open</h2>"),
        (
            "report.total.html",
            "<h2>Verdict: the scenarios' total</h2>",
        ),
    ] {
        let page = std::fs::read_to_string(dir.path().join(name))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(page.contains(verdict), "{name}");
    }
    assert!(
        !html.exists(),
        "one page per scenario, none under the bare name"
    );
    let table = &out.stdout[out.stdout.find("\nScenarios\n").expect("a comparison")..];
    let rows: Vec<&str> = table.lines().skip(3).filter(|l| !l.is_empty()).collect();
    assert_eq!(rows.len(), 2, "{table}");
    assert!(
        rows[0].trim_start().starts_with("closed loop") && rows[0].ends_with(" -"),
        "{table}"
    );
    assert!(
        rows[1].trim_start().starts_with("open") && rows[1].ends_with("PASS"),
        "{table}"
    );

    // `wsherd report` reads the file's results back, comparison included.
    let again = run_bin(&["report", json.to_str().unwrap()], Duration::from_secs(20));
    assert_eq!(again.code, Some(0), "{}", again.stderr);
    assert!(
        again.stdout.contains("=== scenario open ==="),
        "{}",
        again.stdout
    );
    assert!(again.stdout.ends_with(table), "{}", again.stdout);
    // merge takes single runs: a scenario file's results are refused, saying
    // why and what shows them.
    usage_error(
        &["merge", json.to_str().unwrap()],
        &[
            "holds a scenario file's results",
            "merge takes the --json of single runs",
            &format!("`wsherd report {}`", json.display()),
        ],
    );
    // Judged anew, every scenario.
    let judged = run_bin(
        &[
            "report",
            json.to_str().unwrap(),
            "--threshold",
            "rtt.p99<1us",
        ],
        Duration::from_secs(20),
    );
    assert_eq!(judged.code, Some(99), "{}", judged.stderr);
    assert!(
        judged
            .stderr
            .contains("scenario 'closed loop' failed a threshold"),
        "{}",
        judged.stderr
    );

    // Two scenarios writing one file is refused before anything runs.
    let clash = TWO_SCENARIOS.replace(
        "connections = 4\n",
        &format!("connections = 4\nhtml = \"{}\"\n", html.display()),
    );
    std::fs::write(&file, clash).unwrap();
    let out = run_bin(
        &["run", &url, "--scenario", file.to_str().unwrap(), "-q"],
        Duration::from_secs(20),
    );
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("scenarios 'closed loop' and 'open' would both write --html"),
        "{}",
        out.stderr
    );
}

/// Report files of two scenarios, or of a scenario and the total, that would
/// fall on one name are refused before anything runs (exit 2), whether the
/// file or the command line asked for them; nothing is created.
#[test]
fn scenarios_whose_files_would_collide_are_refused_before_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("s.toml");
    let out_dir = dir.path().join("out");
    std::fs::create_dir(&out_dir).unwrap();
    let at = |name: &str| out_dir.join(name).to_str().unwrap().to_string();
    let refused = |toml: &str, args: &[&str], wanted: &str| {
        std::fs::write(&file, toml).unwrap();
        let mut argv = vec!["run", "--scenario", file.to_str().unwrap(), "-q"];
        argv.extend_from_slice(args);
        let t0 = std::time::Instant::now();
        let out = run_bin(&argv, Duration::from_secs(20));
        assert_eq!(out.code, Some(2), "{argv:?}: {}", out.stderr);
        assert!(out.stderr.contains(wanted), "{argv:?}: {}", out.stderr);
        assert!(t0.elapsed() < Duration::from_secs(5), "it ran first");
        let left: Vec<_> = std::fs::read_dir(&out_dir).unwrap().collect();
        assert!(left.is_empty(), "{argv:?} left {left:?}");
    };
    let spaced = TWO_SCENARIOS.replace("name = \"open\"", "name = \"closed-loop\"");
    refused(
        &spaced,
        &["--html", &at("report.html")],
        &format!(
            "scenarios 'closed loop' and 'closed-loop' would both write --html {}: rename one",
            at("report.closed-loop.html")
        ),
    );
    refused(
        &spaced,
        &["--hgrm", &format!("{}/", out_dir.display())],
        "scenarios 'closed loop' and 'closed-loop' would both write --hgrm",
    );
    let total = TWO_SCENARIOS.replace("name = \"open\"", "name = \"total\"");
    refused(
        &total,
        &["--csv", &at("r.csv")],
        &format!(
            "scenario 'total' and the total would both write --csv {}: rename the scenario",
            at("r.total.csv")
        ),
    );
    // A scenario's own file on the command line's --json.
    let own = TWO_SCENARIOS.replace(
        "rate = 200\n",
        &format!("rate = 200\ncsv = \"{}\"\n", at("r.json")),
    );
    refused(
        &own,
        &["--json", &at("r.json")],
        "scenario 'open' would write --csv",
    );
    // A scenario's own file on a name the command line gives another.
    let own = TWO_SCENARIOS.replace(
        "rate = 200\n",
        &format!("rate = 200\nhtml = \"{}\"\n", at("r.closed-loop.html")),
    );
    refused(
        &own,
        &["--html", &at("r.html")],
        "scenarios 'open' and 'closed loop' would both write --html",
    );
}

#[test]
fn merge_keeps_the_rate_line_and_the_assessment() {
    let _serial = support::serial();
    let server = support::serve_builtin("1", &[]);
    let url = format!("ws://{}/", server.addr());
    let dir = tempfile::tempdir().unwrap();
    let mut parts = Vec::new();
    for i in 1..=2 {
        let p = dir.path().join(format!("a{i}.json"));
        let out = run_bin(
            &[
                "run",
                &url,
                "-c",
                "2",
                "-d",
                "1s",
                "--warmup",
                "0s",
                "--rate",
                "100",
                "-q",
                "--agent",
                &format!("{i}/2"),
                "--json",
                p.to_str().unwrap(),
            ],
            Duration::from_secs(30),
        );
        assert_eq!(out.code, Some(0), "{}", out.stderr);
        parts.push(p.to_str().unwrap().to_string());
    }
    // An open loop's JSON says how much of its round trip is send lag, where
    // the README's table says (a script tests latency.send_lag_share).
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&parts[0]).unwrap()).unwrap();
    let share = v["latency"]["send_lag_share"]
        .as_f64()
        .unwrap_or_else(|| panic!("no latency.send_lag_share: {}", v["latency"]));
    assert!(share >= 0.0, "{share}");
    let readme = include_str!("../README.md");
    assert!(readme.contains("| `latency.send_lag_share` |"));
    let mut out = run_bin(&["merge", &parts[0], &parts[1]], Duration::from_secs(20));
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    out.stdout = unwrapped(&out.stdout);
    // Two agents of --rate 100 asked for 100/s together.
    assert!(
        out.stdout.contains("open loop at 100 msg/s"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("requested 100/s, achieved"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("Assessment"), "{}", out.stdout);
    assert!(out.stdout.contains("of 100/s asked)"), "{}", out.stdout);
}

#[test]
fn every_subcommand_has_examples_and_defaults_read_alike() {
    for sub in ["run", "ceiling", "serve", "merge", "report", "doctor"] {
        let out = run_bin(&[sub, "--help"], Duration::from_secs(10));
        assert_eq!(out.code, Some(0), "{sub}: {}", out.stderr);
        let help = &out.stdout;
        assert!(
            help.contains("\nExamples:\n  wsherd "),
            "{sub} --help has no examples"
        );
        // A default reads `[default: ...]`, never `(default ...)` or `Default:`.
        for prose in ["(default ", "Default:", "; default "] {
            assert!(
                !help.contains(prose),
                "{sub} --help says {prose:?}:\n{help}"
            );
        }
    }
    let run = run_bin(&["run", "--help"], Duration::from_secs(10)).stdout;
    let examples = &run[run.find("\nExamples:").unwrap()..];
    assert!(
        examples.contains("--rate") && examples.contains("--threshold"),
        "{examples}"
    );
    // ceiling --help: only the workloads and flags a search takes.
    let ceiling = run_bin(&["ceiling", "--help"], Duration::from_secs(10)).stdout;
    for refused in [
        "--steps",
        "--subscribe",
        "--sent-at",
        "--seq ",
        "--unmatched",
        "- conversation",
        "- push",
    ] {
        // Neither a flag's own line nor a workload's entry.
        let offered = ceiling.lines().any(|l| l.trim_start().starts_with(refused));
        assert!(!offered, "ceiling --help offers {refused}");
    }
    assert!(ceiling.contains("churn or chat (sessions)"), "{ceiling}");
}

#[test]
fn a_ceiling_search_says_its_plan_and_how_long_it_may_take() {
    let port = support::closed_port();
    let url = format!("ws://127.0.0.1:{port}/");
    let out = run_bin(
        &[
            "ceiling",
            &url,
            "--dimension",
            "rate",
            "-c",
            "2",
            "--start",
            "100",
            "--max",
            "100k",
            "--step-duration",
            "5s",
            "--settle",
            "2s",
            "--max-time",
            "30s",
        ],
        Duration::from_secs(60),
    );
    // 100 to 100k by x2 is 11 levels, then 5 halvings to 5%: 22 steps of 7 s,
    // and after each of 12 failures a pause of at most 16 s to drain.
    assert!(
        out.stderr
            .contains("plan: at most 22 steps (11 growing ×2, then 5 halvings to 5%"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains(
            "up to 12 pauses of at most 16 s for a failed step's backlog to drain: \
             5m 46s at most, longer than --max-time 30s"
        ),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains(
            "warning: the worst case is longer than --max-time: raise --max-time, shorten --settle"
        ),
        "{}",
        out.stderr
    );
    // Nothing listens there: a sentence with the hint, not a raw map.
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("error: no connection could be established (refused ×")
            && out
                .stderr
                .contains(&format!("); is anything listening on 127.0.0.1:{port}?")),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("{\""), "{}", out.stderr);
}

/// A search that --max-time ends exits 1 with what was established and the
/// flags that would let it finish (a real search of 4 s on the built-in server).
#[test]
fn a_search_ended_by_max_time_names_the_flags_to_change() {
    let _serial = support::serial();
    let t0 = std::time::Instant::now();
    let out = run_bin(
        &[
            "ceiling",
            "--dimension",
            "rate",
            "-c",
            "2",
            "--start",
            "100",
            "--max",
            "100k",
            "--step-duration",
            "1s",
            "--settle",
            "1s",
            "--max-time",
            "4s",
            "-q",
        ],
        Duration::from_secs(30),
    );
    assert_eq!(out.code, Some(1), "{}\n{}", out.stdout, out.stderr);
    assert!(t0.elapsed() < Duration::from_secs(20), "{:?}", t0.elapsed());
    assert!(
        out.stdout
            .contains("Search incomplete (--max-time reached)"),
        "{}",
        out.stdout
    );
    let err = out.stderr.trim_end();
    assert!(
        err.starts_with("error: the search did not converge within --max-time; raise --max-time"),
        "{err}"
    );
    for flag in [
        "--settle",
        "--step-duration",
        "--precision",
        "--start/--max",
    ] {
        assert!(err.contains(flag), "no {flag}: {err}");
    }
}

#[test]
fn the_summary_says_when_every_connection_was_open() {
    let _serial = support::serial();
    let server = support::serve_builtin("1", &[]);
    let url = format!("ws://{}/", server.addr());
    let res = support::run(
        &[&url, "-c", "40", "-d", "1s", "-q"],
        Duration::from_secs(30),
    );
    let secs = res
        .connections
        .all_open_secs
        .expect("every connection opened once");
    assert!(secs > 0.0 && secs < 1.0, "{secs}");
    let text = support::summary_text(&res);
    assert!(
        text.contains(&format!("peak open 40  all open after {secs:.2} s")),
        "{text}"
    );
    // Sessions open and close again: no such moment.
    let churn = support::run(
        &[&url, "-c", "4", "-d", "1s", "-q", "-w", "churn"],
        Duration::from_secs(30),
    );
    assert_eq!(churn.connections.all_open_secs, None);
    support::assert_schema(&res);
}

#[test]
fn light_open_loops_time_their_sends_precisely_and_heavy_ones_on_the_wheel() {
    let _serial = support::serial();
    let server = support::serve_builtin("1", &[]);
    let url = format!("ws://{}/", server.addr());
    let run = |extra: &[&str]| {
        let mut args = vec![
            url.as_str(),
            "-d",
            "1s",
            "--warmup",
            "0s",
            "-q",
            "--shards",
            "1",
        ];
        args.extend_from_slice(extra);
        support::run(&args, Duration::from_secs(30))
    };
    let light = run(&["-c", "10", "--rate", "200"]);
    if light.host.io_driver != "io_uring" {
        // The epoll driver always keeps the wheel.
        assert_eq!(light.host.timer, "1ms wheel");
        return;
    }
    assert_eq!(light.host.timer, "precise");
    // How precise it is, is a benchmark's business (benches/README.md).
    assert!(light.latency.send_lag.is_some());
    assert_eq!(
        run(&["-c", "10", "--rate", "200", "--timer", "wheel"])
            .host
            .timer,
        "1ms wheel"
    );
    // 10,000 messages/s on one shard: still precise; above, auto takes the wheel
    // (a wake per deadline would cost the most CPU there).
    assert_eq!(run(&["-c", "100", "--rate", "10k"]).host.timer, "precise");
    assert_eq!(run(&["-c", "100", "--rate", "12k"]).host.timer, "1ms wheel");
    assert_eq!(
        run(&["-c", "100", "--rate", "12k", "--timer", "precise"])
            .host
            .timer,
        "precise"
    );
}
