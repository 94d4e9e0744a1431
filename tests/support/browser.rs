//! Headless Chromium for the tests of the HTML reports: find it, run it on a page
//! with a time limit, and pick the console errors out of its log.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub const BROWSER_LIMIT: Duration = Duration::from_secs(60);

pub fn chromium() -> PathBuf {
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
pub fn browse(browser: &Path, args: &[&str], page: &Path, profile: &Path) -> (String, String) {
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
pub fn console_errors(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| l.contains("CONSOLE") || l.contains("Uncaught"))
        .collect()
}

/// Screenshots `page` at 1200x3000 into `shot` and checks the picture is drawn:
/// no console errors, more than 50 colours, ink on more than 1 pixel in 200.
/// Returns the colours seen (RGB), for checks of particular chart colours.
pub fn screenshot_colours(
    browser: &Path,
    page: &Path,
    profile: &Path,
    shot: &Path,
) -> std::collections::HashSet<(u8, u8, u8)> {
    let (_, stderr) = browse(
        browser,
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1200,3000",
            "--hide-scrollbars",
        ],
        page,
        profile,
    );
    assert!(console_errors(&stderr).is_empty(), "{stderr}");
    let decoder = png::Decoder::new(std::fs::File::open(shot).expect("a screenshot"));
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
    colours
}
