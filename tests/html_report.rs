//! The HTML report seen by a real browser: a short real run's `--html` file is
//! rendered by headless Chromium, which must draw it without console errors; the
//! screenshot must not be blank, and the DOM must hold every chart with its data.
//!
//! Chromium is required (Debian package `chromium`): scripts/setup-test-deps.sh
//! installs it, and .ci/run calls that script. Each browser call is killed after
//! 60 s.

mod support;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BROWSER_LIMIT: Duration = Duration::from_secs(60);

fn chromium() -> PathBuf {
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        if let Some(dir) = std::env::var_os("PATH")
            .iter()
            .flat_map(std::env::split_paths)
            .find(|d| d.join(name).is_file())
        {
            return dir.join(name);
        }
    }
    panic!(
        "headless Chromium is needed to test the HTML report and was not found in PATH: \
         run scripts/setup-test-deps.sh (or: sudo apt-get install -y chromium)"
    );
}

/// Runs the browser on `page` with `args`; returns (stdout, stderr). Killed after
/// `BROWSER_LIMIT`.
fn browse(browser: &Path, args: &[&str], page: &Path, profile: &Path) -> (String, String) {
    let mut child = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-extensions",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(format!("file://{}", page.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start chromium");
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let o = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let e = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let t0 = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if t0.elapsed() > BROWSER_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish within {BROWSER_LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    (o.join().unwrap(), e.join().unwrap())
}

/// Console messages the page logged (Chromium prints them as `CONSOLE(...)`).
fn console_errors(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| l.contains("CONSOLE") || l.contains("Uncaught"))
        .collect()
}

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
    let shot = dir.path().join("shot.png");
    let (_, stderr) = browse(
        &browser,
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1200,3000",
            "--hide-scrollbars",
        ],
        &page,
        &profile,
    );
    assert!(console_errors(&stderr).is_empty(), "{stderr}");
    let decoder = png::Decoder::new(std::fs::File::open(&shot).expect("a screenshot"));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!((info.width, info.height), (1200, 3000));
    let px = info.color_type.samples();
    let mut colours = std::collections::HashSet::new();
    let mut ink = 0usize;
    for p in buf[..info.buffer_size()].chunks(px) {
        colours.insert((p[0], p[1], p[2]));
        if p[0] < 200 || p[1] < 200 || p[2] < 200 {
            ink += 1;
        }
    }
    let total = (info.width * info.height) as usize;
    assert!(colours.len() > 50, "only {} colours", colours.len());
    assert!(ink * 200 > total, "blank: {ink} of {total} pixels drawn");
    // The chart colours are there (the blue series line, #0072B2).
    assert!(
        colours.contains(&(0x00, 0x72, 0xB2)),
        "no series line in the screenshot"
    );
}
