//! The report files (--csv, --hgrm, --hlog, --html) read back: a golden CSV from
//! a saved run, `.hgrm` and interval-log files from a real run parsed back and
//! checked against the JSON, output paths that cannot be written refused before a
//! run, and a write that fails at the end saving the results to a fallback file.

mod support;

use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use wsherd::results::RunResults;

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/results.json");
const GOLDEN_CSV: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/results.csv");
const GOLDEN_TEXT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/results.txt");

fn fixture() -> RunResults {
    wsherd::report::read_json(Path::new(FIXTURE)).expect("fixture reads")
}

/// The text summary of a saved run, character for character. After an intended
/// change of the summary, regenerate with WSHERD_BLESS=1 and review the diff.
#[test]
fn text_summary_matches_the_golden_file() {
    let got = wsherd::report::text::render(&fixture());
    if std::env::var_os("WSHERD_BLESS").is_some() {
        std::fs::write(GOLDEN_TEXT, &got).unwrap();
    }
    let want = std::fs::read_to_string(GOLDEN_TEXT).unwrap();
    assert_eq!(got, want, "summary differs from tests/fixtures/results.txt");
}

#[test]
fn csv_matches_the_golden_file() {
    let r = fixture();
    let got = wsherd::report::csv::render(&r);
    let want = std::fs::read_to_string(GOLDEN_CSV).unwrap();
    assert_eq!(got, want, "CSV differs from tests/fixtures/results.csv");
    assert_eq!(got.lines().count(), r.series.len() + 1);
}

#[test]
fn report_command_renders_saved_results() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("s.csv");
    let html = dir.path().join("r.html");
    let prefix = dir.path().join("h");
    let out = support::run_bin(
        &[
            "report",
            FIXTURE,
            "--csv",
            csv.to_str().unwrap(),
            "--html",
            html.to_str().unwrap(),
            "--hgrm",
            prefix.to_str().unwrap(),
        ],
        Duration::from_secs(20),
    );
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(out.stdout.contains("round trip"));
    assert_eq!(
        std::fs::read_to_string(&csv).unwrap(),
        std::fs::read_to_string(GOLDEN_CSV).unwrap()
    );
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains("<svg class=\"chart\" id=\"rtt-spectrum\""));
    // The fixture is an open-loop run: both round trips, and send lag.
    for kind in ["rtt", "rtt_uncorrected", "send_lag", "connect", "handshake"] {
        let p = dir.path().join(format!("h.{kind}.hgrm"));
        assert!(p.exists(), "{} missing", p.display());
    }
    assert!(!dir.path().join("h.delivery.hgrm").exists());
}

/// One `.hgrm` row: value (ms), percentile (0..1), total count.
fn hgrm_rows(text: &str) -> Vec<(f64, f64, u64)> {
    text.lines()
        .skip(2)
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (
                f[0].parse().unwrap(),
                f[1].parse().unwrap(),
                f[2].parse().unwrap(),
            )
        })
        .collect()
}

fn check_hgrm(path: &Path, stats: &wsherd::results::LatencyStats) {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(
        text.starts_with("       Value     Percentile TotalCount 1/(1-Percentile)\n\n"),
        "{}: header",
        path.display()
    );
    assert!(text.contains("#[Mean    = "));
    assert!(text.contains(&format!(", Total count    = {:>12}]", stats.count)));
    assert!(text.contains("#[Buckets = "));
    let rows = hgrm_rows(&text);
    assert!(rows.len() > 10, "{}: {} rows", path.display(), rows.len());
    for w in rows.windows(2) {
        assert!(w[0].0 <= w[1].0, "values not monotonic: {w:?}");
        assert!(w[0].1 <= w[1].1, "percentiles not monotonic: {w:?}");
        assert!(w[0].2 <= w[1].2, "counts not monotonic: {w:?}");
    }
    let last = rows.last().unwrap();
    assert_eq!(last.1, 1.0);
    assert_eq!(last.2, stats.count);
    // 3 significant digits, and the ms column rounds to 1 µs.
    let close = |ms: f64, us: f64| (ms * 1000.0 - us).abs() <= us * 1e-3 + 1.0;
    let p50 = rows.iter().find(|r| r.1 == 0.5).expect("a 50% row");
    assert!(
        close(p50.0, stats.p50_us),
        "p50 {p50:?} vs {}",
        stats.p50_us
    );
    // 99% falls between two ticks: the JSON's p99 lies between their values.
    let below = rows.iter().rev().find(|r| r.1 <= 0.99).unwrap();
    let above = rows.iter().find(|r| r.1 >= 0.99).unwrap();
    assert!(
        below.0 * 1000.0 - 1.0 <= stats.p99_us && stats.p99_us <= above.0 * 1000.0 + 1.0,
        "p99 {} not within rows {below:?} .. {above:?}",
        stats.p99_us
    );
    assert!(
        close(last.0, stats.max_us),
        "max {last:?} vs {}",
        stats.max_us
    );
}

#[test]
fn run_writes_hgrm_hlog_and_csv_that_read_back() {
    let _serial = support::serial();
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("r.json");
    let prefix = dir.path().join("lat");
    let hlog = dir.path().join("rtt.hlog");
    let csv = dir.path().join("series.csv");
    let res = support::run(
        &[
            "-c",
            "20",
            "-d",
            "2s",
            "--rate",
            "2000",
            "-q",
            "--json",
            json.to_str().unwrap(),
            "--hgrm",
            prefix.to_str().unwrap(),
            "--hlog",
            hlog.to_str().unwrap(),
            "--csv",
            csv.to_str().unwrap(),
        ],
        Duration::from_secs(30),
    );
    assert!(res.latency.rtt.count > 1000);
    let saved = wsherd::report::read_json(&json).unwrap();
    check_hgrm(&prefix.with_extension("rtt.hgrm"), &saved.latency.rtt);
    check_hgrm(
        &prefix.with_extension("rtt_uncorrected.hgrm"),
        saved.latency.rtt_uncorrected.as_ref().unwrap(),
    );
    check_hgrm(
        &prefix.with_extension("connect.hgrm"),
        &saved.latency.connect,
    );

    // The interval log: its header, then one interval per second whose
    // histograms add up to the run's round trips.
    let log = std::fs::read(&hlog).unwrap();
    let text = String::from_utf8_lossy(&log);
    assert!(text.contains("#[StartTime: "));
    assert!(text.contains("#[BaseTime: "));
    assert!(text.contains(
        "\n\"StartTimestamp\",\"Interval_Length\",\"Interval_Max\",\"Interval_Compressed_Histogram\"\n"
    ));
    let mut total = 0u64;
    let mut intervals = 0;
    let mut last_start = -1.0;
    for entry in IntervalLogIterator::new(&log) {
        if let LogEntry::Interval(i) = entry.expect("a valid log entry") {
            let h = wsherd::vocab::hist::decode_histogram(i.encoded_histogram()).expect("decodes");
            assert_eq!(i.duration(), Duration::from_secs(1));
            let start = i.start_timestamp().as_secs_f64();
            assert!(start > last_start, "intervals in order");
            last_start = start;
            assert!((i.max() - h.max() as f64 / 1e6).abs() < 1e-3);
            assert!(i.tag().is_none(), "no warm-up in this run");
            total += h.len();
            intervals += 1;
        }
    }
    assert_eq!(total, saved.latency.rtt.count);
    assert_eq!(intervals, saved.series.len());

    // The CSV: a header and one row per second, the same counts as the series.
    let rows: Vec<String> = std::fs::read_to_string(&csv)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    assert_eq!(rows[0], wsherd::report::csv::HEADER);
    assert_eq!(rows.len(), saved.series.len() + 1);
    let sent: u64 = rows[1..]
        .iter()
        .map(|r| r.split(',').nth(4).unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(sent, saved.messages.sent);
}

#[test]
fn unwritable_outputs_are_refused_before_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no/such/dir");
    for flag in ["--html", "--csv", "--hgrm", "--hlog", "--json"] {
        let target = missing.join("out");
        let t0 = Instant::now();
        let e = support::try_run(
            &["-c", "5", "-d", "30s", "-q", flag, target.to_str().unwrap()],
            Duration::from_secs(10),
        )
        .expect_err(&format!(
            "{flag} into a missing directory should be refused"
        ));
        assert_eq!(e.exit_code, 1, "{flag}: {}", e.message);
        assert!(e.message.contains("cannot write"), "{flag}: {}", e.message);
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "{flag}: the run started"
        );
    }
    // `wsherd report` too, before writing anything.
    let html = dir.path().join("ok.html");
    let out = support::run_bin(
        &[
            "report",
            FIXTURE,
            "--html",
            html.to_str().unwrap(),
            "--csv",
            missing.join("s.csv").to_str().unwrap(),
        ],
        Duration::from_secs(20),
    );
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(out.stderr.contains("cannot write"), "{}", out.stderr);
    assert!(!out.stderr.contains("panicked"));
}

#[test]
fn a_failed_write_at_the_end_saves_the_results_elsewhere() {
    let _serial = support::serial();
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("reports");
    std::fs::create_dir(&sub).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_wsherd"))
        .args([
            "run",
            "-c",
            "5",
            "-d",
            "2s",
            "-q",
            "--html",
            "reports/r.html",
        ])
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The check passed at the start; the directory goes away during the run.
    std::thread::sleep(Duration::from_millis(700));
    std::fs::remove_dir_all(&sub).unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if started.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("wsherd run did not exit");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    use std::io::Read;
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("reports/r.html"), "{stderr}");
    let saved: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("wsherd-results-") && n.ends_with(".json"))
        .collect();
    assert_eq!(saved.len(), 1, "{stderr}");
    assert!(stderr.contains(&saved[0]), "{stderr}");
    let back = wsherd::report::read_json(&dir.path().join(&saved[0])).unwrap();
    assert!(back.messages.sent > 0);
}
