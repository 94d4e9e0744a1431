//! The HTML report seen by a real browser: a short real run's `--html` file is
//! rendered by headless Chromium, which must draw it without console errors; the
//! screenshot must not be blank, and the DOM must hold every chart with its data.
//!
//! Chromium is required (Debian package `chromium`): scripts/setup-test-deps.sh
//! installs it, and .ci/run calls that script. Each browser call is killed after
//! 60 s.

mod support;

use std::time::Duration;

use support::browser::{browse, chromium, console_errors, screenshot_colours};

#[test]
fn html_report_renders_in_chromium() {
    let browser = chromium();
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("report.html");
    {
        let _serial = support::serial();
        support::run(
            &[
                "-c",
                "20",
                "-d",
                "2s",
                "--rate",
                "2000",
                "-q",
                "--html",
                page.to_str().unwrap(),
            ],
            Duration::from_secs(30),
        );
    }
    let html = std::fs::read_to_string(&page).unwrap();
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
    for id in [
        "rtt-spectrum",
        "connect-spectrum",
        "latency-over-time",
        "throughput",
        "connections",
        "errors",
    ] {
        let at = dom
            .find(&format!("id=\"{id}\""))
            .unwrap_or_else(|| panic!("chart {id} missing from the DOM"));
        let chart = &dom[at..at + dom[at..].find("</svg>").unwrap()];
        assert!(chart.contains("class=\"tick\""), "{id}: no tick labels");
        assert!(chart.contains("class=\"label\""), "{id}: no axis labels");
        assert!(chart.contains("class=\"legend-text\""), "{id}: no legend");
        let drawn = chart
            .match_indices("points=\"")
            .map(|(i, _)| {
                let rest = &chart[i + 8..];
                rest[..rest.find('"').unwrap()].split_whitespace().count()
            })
            .max()
            .unwrap_or(0);
        assert!(drawn >= 2, "{id}: no line drawn");
    }
    assert!(dom.contains("round trip (uncorrected)"));

    // The picture: not blank, several colours, a good share of ink.
    let colours = screenshot_colours(&browser, &page, &profile, &dir.path().join("shot.png"));
    // The chart colours are there (the blue series line, #0072B2).
    assert!(
        colours.contains(&(0x00, 0x72, 0xB2)),
        "no series line in the screenshot"
    );
}
