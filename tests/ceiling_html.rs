//! The ceiling search's HTML report seen by a real browser: a synthetic search
//! (its `run` the saved run of tests/fixtures/results.json) is rendered with
//! `wsherd::report::ceiling_html::render` and drawn by headless Chromium, which must show
//! it without console errors; the DOM must hold the knee chart with a marker per
//! step and percentile, and the step table; the screenshot must not be blank.
//!
//! Chromium is required (Debian package `chromium`): scripts/setup-test-deps.sh
//! installs it, and .ci/run calls that script. Each browser call is killed after
//! 60 s. No load is generated.

mod support;

use wsherd::results::ceiling::{outcome, CeilingResults, ClientHealth, Step, CEILING_SCHEMA};
use wsherd::results::ThresholdOutcome;

use support::browser::{browse, chromium, console_errors, screenshot_colours};

fn step(index: usize, level: f64, confirm: bool, passed: bool, p99_ms: f64) -> Step {
    Step {
        index,
        level,
        confirm,
        start_secs: index as f64 * 12.0,
        secs: 10.0,
        open_min: 200,
        open_max: 200,
        sent_per_sec: level,
        received_per_sec: if passed { level } else { level * 0.85 },
        sessions_per_sec: None,
        rtt_count: (level * 10.0) as u64,
        rtt_p50_us: p99_ms * 250.0,
        rtt_p90_us: p99_ms * 500.0,
        rtt_p99_us: p99_ms * 1000.0,
        rtt_max_us: p99_ms * 1500.0,
        error_ratio: if passed { 0.0 } else { 0.002 },
        connects: 200,
        connect_failures: 0,
        failed_by_cause: Default::default(),
        slo: vec![ThresholdOutcome {
            expression: "rtt.p99<50ms".into(),
            metric: "rtt.p99".into(),
            unit: "us".into(),
            op: "<".into(),
            limit: 50_000.0,
            value: Some(p99_ms * 1000.0),
            passed,
        }],
        passed,
        far_beyond: false,
        reasons: if passed {
            vec![]
        } else {
            vec![format!("rtt.p99 = {p99_ms} ms, over 50 ms <limit>")]
        },
        client: ClientHealth {
            shard_cpu: vec![0.3, level / 40_000.0],
            send_lag_p99_us: Some(150.0),
            late: 0,
            saturated: false,
            behind: false,
            why: None,
        },
    }
}

/// A rate search over two decades (log axis) that found 24,000 messages/s, with
/// 28,000 failing twice.
fn search() -> CeilingResults {
    let steps = vec![
        step(1, 1000.0, false, true, 1.5),
        step(2, 2000.0, false, true, 1.8),
        step(3, 4000.0, false, true, 2.2),
        step(4, 8000.0, false, true, 3.0),
        step(5, 16_000.0, false, true, 6.0),
        step(6, 32_000.0, false, false, 180.0),
        step(7, 32_000.0, true, false, 210.0),
        step(8, 24_000.0, false, true, 21.0),
        step(9, 28_000.0, false, false, 64.0),
        step(10, 28_000.0, true, false, 71.0),
    ];
    CeilingResults {
        schema: CEILING_SCHEMA.into(),
        dimension: "rate".into(),
        unit: "messages/s".into(),
        slo: vec!["rtt.p99<50ms".into(), "errors<0.1%".into()],
        start: 1000.0,
        max: 200_000.0,
        max_reason: None,
        growth: 2.0,
        precision: 0.2,
        step_secs: 10.0,
        settle_secs: 2.0,
        outcome: outcome::CEILING.into(),
        ceiling: Some(24_000.0),
        first_failing: Some(28_000.0),
        limited_by: Some("rtt.p99 = 71 ms, over 50 ms".into()),
        client_limited: false,
        verdict: "The target holds 24,000 messages/s within rtt.p99<50ms, errors<0.1%; \
                  28,000 messages/s fails."
            .into(),
        steps,
        run: serde_json::from_str(include_str!("fixtures/results.json"))
            .expect("the fixture parses"),
    }
}

#[test]
fn ceiling_report_renders_in_chromium() {
    let browser = chromium();
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("ceiling.html");
    let c = search();
    let html = wsherd::report::ceiling_html::render(&c);
    std::fs::write(&page, &html).unwrap();
    // Self-contained: nothing fetched from anywhere.
    for needle in ["http://", "https://", "<script", "@import", "<link"] {
        let hits: Vec<&str> = html
            .match_indices(needle)
            .map(|(i, _)| &html[i..(i + 60).min(html.len())])
            .filter(|s| !s.starts_with("http://www.w3.org/2000/svg"))
            .collect();
        assert!(hits.is_empty(), "the report refers to {needle}: {hits:?}");
    }

    // The DOM as the browser built it.
    let profile = dir.path().join("profile");
    let (dom, stderr) = browse(&browser, &["--dump-dom"], &page, &profile);
    assert!(console_errors(&stderr).is_empty(), "{stderr}");
    assert_eq!(dom.matches("<html").count(), 1, "one document");
    assert!(dom.contains("The target holds 24,000 messages/s within rtt.p99&lt;50ms"));

    let at = dom.find("id=\"knee\"").expect("the knee chart in the DOM");
    let knee = &dom[at..at + dom[at..].find("</svg>").unwrap()];
    assert!(knee.contains("data-x-scale=\"log\""), "32k / 1k >= 10");
    assert_eq!(knee.matches("class=\"marker\"").count(), 2 * c.steps.len());
    assert_eq!(
        knee.matches("data-passed=\"false\"").count(),
        2 * c.steps.iter().filter(|s| !s.passed).count()
    );
    for series in ["p50", "p99"] {
        let at = knee
            .find(&format!("class=\"series\" data-series=\"{series}\""))
            .unwrap_or_else(|| panic!("no {series} line"));
        let rest = &knee[at..];
        let p = rest.find(" points=\"").unwrap() + 9;
        let n = rest[p..p + rest[p..].find('"').unwrap()]
            .split_whitespace()
            .count();
        assert_eq!(n, c.steps.len(), "{series} line");
    }
    assert_eq!(knee.matches("class=\"slo\"").count(), 1);
    assert!(knee.contains("ceiling 24,000 messages/s"));
    assert!(knee.contains("first failing 28,000 messages/s"));
    for tick in [">1k<", ">10k<", ">20k<", ">10 ms<", ">100 ms<"] {
        assert!(knee.contains(tick), "tick {tick} missing");
    }
    assert!(dom.contains("id=\"achieved\""));

    let rows = dom.matches("<tr class=\"step ").count();
    assert_eq!(rows, c.steps.len(), "one table row per step");
    assert_eq!(dom.matches("<tr class=\"step fail\"").count(), 4);
    assert!(dom.contains("over 50 ms &lt;limit&gt;"));
    // The whole run below, once.
    assert!(dom.contains("The whole run"));
    assert_eq!(dom.matches("id=\"rtt-spectrum\"").count(), 1);

    // The picture: not blank, several colours, a good share of ink.
    let colours = screenshot_colours(&browser, &page, &profile, &dir.path().join("shot.png"));
    // The p50 markers (#0072B2) and the failing steps' red outlines (#cf222e).
    assert!(
        colours.contains(&(0x00, 0x72, 0xB2)),
        "no p50 markers in the screenshot"
    );
    assert!(
        colours.contains(&(0xcf, 0x22, 0x2e)),
        "no red (failing steps, SLO line) in the screenshot"
    );
}
