//! The HTML report of a ceiling search (`wsherd ceiling ... --html FILE`): one
//! self-contained page that shows where the target's knee is, so a reader can judge
//! the ceiling from a picture rather than from the verdict sentence alone.
//!
//! It draws latency against load (p50 and p99 per step, passing and failing steps
//! told apart, the SLO's latency limits, the ceiling and the first failing level),
//! the throughput achieved at each level, and the step table, then the whole run's
//! report underneath (the run report's own body, `report::html::body`). The charts
//! are drawn by `report::chart`, as the run report's are. Like the run report it
//! uses inline CSS and SVG only, no script and no network, and is rendered from
//! `CeilingResults` alone (the search's results types are all this takes from
//! `ceiling`), so a saved search draws again.
//!
//! Reads only the search's results, the chart module and the vocabulary; never the
//! search itself (`ceiling/`).

use super::chart::{
    self, ms_tick, si, Axis, Chart, Key, Point, Rule, Scale, Series, Shape, COLORS, GREEN, GREY,
    RED,
};
use super::html::{self as run_html, kv_table, page_start};
use super::markup::{esc, trim_num};
use crate::results::ceiling::{outcome, CeilingResults, Step};
use crate::vocab::fmt::fmt_us;
use crate::vocab::fmt::group;
use std::fmt::Write;

const EXTRA_CSS: &str = r#"
.verdict{font-size:1.2em;font-weight:600;margin:12px 0;padding:10px 14px;border-left:5px solid #0072B2;background:#f6f8fa}
.verdict.found{border-left-color:#1a7f37}.verdict.failed{border-left-color:#cf222e}
.warn{margin:12px 0;padding:10px 14px;border:2px solid #bf8700;border-radius:6px;background:#fff8c5;color:#1b1f24}
.warn strong{color:#9a6700}
.table-wrap{overflow-x:auto}table.steps{font-size:.85em}
table.steps th,table.steps td{padding:3px 5px;white-space:nowrap}table.steps thead th{white-space:normal}
table.steps td.reasons,table.steps thead th.reasons{text-align:left;white-space:normal;min-width:160px}
table.steps tr.fail{background:#fff5f5}
"#;

/// A level in full for text: 20,000 or 1,234 (rounded from 100 up), 12.5 below.
fn level_text(v: f64) -> String {
    if v.is_finite() && v >= 0.0 && (v >= 100.0 || v.fract() == 0.0) {
        group(v.round() as u64)
    } else {
        trim_num(v, 2)
    }
}

/// A ratio as a percentage: 0%, 0.0042%, 1.25%.
fn pct(r: f64) -> String {
    let p = r * 100.0;
    if p == 0.0 {
        "0%".into()
    } else if p < 0.01 {
        format!("{}%", trim_num(p, 4))
    } else {
        format!("{}%", trim_num(p, 2))
    }
}

fn secs(v: f64) -> String {
    format!("{}s", trim_num(v, 2))
}

/// The steps in order of level (measured order among equal levels).
fn by_level(c: &CeilingResults) -> Vec<&Step> {
    let mut v: Vec<&Step> = c.steps.iter().collect();
    v.sort_by(|a, b| a.level.total_cmp(&b.level));
    v
}

/// The x axis of the levels: every step's, the ceiling and the first failing
/// level; log scale when they span a factor of 10 or more. None without steps.
fn level_axis(c: &CeilingResults) -> Option<Axis> {
    let mut levels: Vec<f64> = c
        .steps
        .iter()
        .map(|s| s.level)
        .chain(c.ceiling)
        .chain(c.first_failing)
        .filter(|l| l.is_finite())
        .collect();
    if c.steps.is_empty() || levels.is_empty() {
        return None;
    }
    let lo = levels.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = levels.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let scale = if lo > 0.0 && hi / lo >= 10.0 {
        Scale::Log
    } else {
        Scale::Linear
    };
    if scale == Scale::Log {
        levels.retain(|l| *l > 0.0);
    }
    let note = match scale {
        Scale::Log => ", log scale",
        Scale::Linear => "",
    };
    let label = format!("level ({}){note}", c.unit);
    Some(Axis::fitted(scale, &levels, false, &label).ticks_as(6.0, si))
}

/// The ceiling (solid green) and the first failing level (dashed red) as
/// vertical lines, each labelled along its line from the top: the ceiling on its
/// left, the first failing level on its right (as they lie on the axis), so the
/// two labels never cross.
fn level_rules(c: &CeilingResults) -> Vec<Rule> {
    let finite = |l: &f64| l.is_finite();
    let label = |what: &str, l: f64| format!("{what} {} {}", level_text(l), c.unit);
    let ceiling = c.ceiling.filter(finite).map(|l| {
        Rule::vertical(l, &label("ceiling", l), GREEN)
            .class("ceiling-line")
            .data("data-level", l.to_string())
    });
    let failing = c.first_failing.filter(finite).map(|l| {
        Rule::vertical(l, &label("first failing", l), RED)
            .class("first-failing-line")
            .data("data-level", l.to_string())
            .dash("6 4")
            .label_right()
    });
    ceiling.into_iter().chain(failing).collect()
}

/// The SLO's round-trip latency limits, in ms, as red dashed lines labelled at
/// their left end (low load: the points lie far below there).
fn slo_rules(c: &CeilingResults) -> Vec<Rule> {
    c.slo
        .iter()
        .filter_map(|e| crate::thresholds::parse(e).ok())
        .filter(|t| t.metric.name.starts_with("rtt.") && t.limit > 0.0 && t.limit.is_finite())
        .map(|t| {
            Rule::horizontal(t.limit / 1000.0, &t.expr, RED)
                .class("slo")
                .data("data-slo", t.expr.clone())
                .dash("8 5")
        })
        .collect()
}

/// A step's point: filled when it passed, hollow and red when it failed, its
/// hover text naming the step and `what` was measured.
fn step_point(c: &CeilingResults, s: &Step, y: f64, what: &str) -> Point {
    Point {
        x: s.level,
        y,
        passed: s.passed,
        tip: format!(
            "step {}: {} {}{}, {what}, {}",
            s.index,
            level_text(s.level),
            c.unit,
            if s.confirm { " (confirm)" } else { "" },
            if s.passed { "PASS" } else { "FAIL" }
        ),
    }
}

/// The knee's two series: p50 (circles) and p99 (squares) of the round trips, in
/// ms. A step with no round trips has no latency: no point (its row says so).
fn knee_series(c: &CeilingResults) -> Vec<Series> {
    type Pick = fn(&Step) -> f64;
    let series: [(&str, Pick, &'static str, Shape); 2] = [
        ("p50", |s| s.rtt_p50_us, COLORS[0], Shape::Circle),
        ("p99", |s| s.rtt_p99_us, COLORS[2], Shape::Square),
    ];
    let steps = by_level(c);
    series
        .iter()
        .map(|(name, pick, color, shape)| {
            let points = steps
                .iter()
                .filter(|s| s.rtt_count > 0 && pick(s) > 0.0 && pick(s).is_finite())
                .map(|s| {
                    let what = format!("{name} {}", fmt_us(pick(s)));
                    step_point(c, s, pick(s) / 1000.0, &what)
                })
                .collect();
            Series::marked(name, color, *shape, points)
        })
        .collect()
}

/// The knee: p50 and p99 round-trip latency (log scale) against the level.
fn knee_chart(c: &CeilingResults) -> String {
    let title = format!("Latency against load ({})", c.unit);
    let Some(x) = level_axis(c) else {
        return chart::empty_html("knee", &title, "no steps measured");
    };
    let series = knee_series(c);
    let slo = slo_rules(c);
    let mut ys: Vec<f64> = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.y))
        .collect();
    let measured = !ys.is_empty();
    ys.extend(slo.iter().map(|r| r.at));
    let y = Axis::fitted(Scale::Log, &ys, false, "round-trip latency (ms, log scale)")
        .ticks_as(6.0, ms_tick);
    let mut ch = Chart::new("knee", &title, x, y)
        .key(Key::marker("p50", Shape::Circle, COLORS[0], true))
        .key(Key::marker("p99", Shape::Square, COLORS[2], true))
        .key(Key::marker("failing step", Shape::Circle, RED, false));
    if !slo.is_empty() {
        ch = ch.key(Key::line("SLO limit", RED, true));
    }
    if !measured {
        ch = ch.note("no round trips measured");
    }
    ch.rules = slo.into_iter().chain(level_rules(c)).collect();
    ch.series = series;
    ch.html()
}

/// What the achieved chart plots for a dimension.
struct Achieved {
    title: &'static str,
    y_label: &'static str,
    name: &'static str,
    pick: fn(&Step) -> Option<f64>,
    /// Draw the ideal, y = level.
    ideal: bool,
}

fn achieved(dimension: &str) -> Achieved {
    let received = Achieved {
        title: "Throughput achieved against the rate asked for",
        y_label: "messages received per second",
        name: "received/s",
        pick: |s| Some(s.received_per_sec),
        ideal: true,
    };
    match dimension {
        "connections" => Achieved {
            title: "Connections held against connections asked for",
            y_label: "connections open (lowest in the step)",
            name: "open (lowest)",
            pick: |s| Some(s.open_min as f64),
            ideal: true,
        },
        "sessions" => Achieved {
            title: "Sessions completed against the session rate asked for",
            y_label: "sessions per second",
            name: "sessions/s",
            pick: |s| s.sessions_per_sec,
            ideal: true,
        },
        "rate" => received,
        _ => Achieved {
            title: "Throughput at each level",
            ideal: false,
            ..received
        },
    }
}

/// What each step achieved against the level asked for, with the ideal y = level.
fn achieved_chart(c: &CeilingResults) -> String {
    let a = achieved(&c.dimension);
    let Some(x) = level_axis(c) else {
        return chart::empty_html("achieved", a.title, "no steps measured");
    };
    let points: Vec<Point> = by_level(c)
        .into_iter()
        .filter_map(|s| (a.pick)(s).filter(|v| v.is_finite()).map(|v| (s, v)))
        .map(|(s, v)| step_point(c, s, v, &format!("{} {}", a.name, level_text(v))))
        .collect();
    let mut ys: Vec<f64> = points.iter().map(|p| p.y).collect();
    // y = level, sampled along the x axis (a curve when x is on a log scale), to
    // the axis's end.
    let ideal = a.ideal.then(|| {
        ys.push(x.hi);
        let diagonal = x.samples(64).into_iter().map(|v| (v, v)).collect();
        Series::line("ideal", diagonal)
            .color(GREY)
            .width(1.5)
            .dashed()
            .behind()
    });
    let y = Axis::fitted(Scale::Linear, &ys, true, a.y_label).ticks_as(6.0, si);
    let mut ch = Chart::new("achieved", a.title, x, y)
        .key(Key::marker(a.name, Shape::Circle, COLORS[0], true))
        .key(Key::marker("failing step", Shape::Circle, RED, false));
    if let Some(ideal) = ideal {
        ch = ch
            .series(ideal)
            .key(Key::line("ideal (= level)", GREY, true));
    }
    ch.rules = level_rules(c);
    ch.series(Series::marked(a.name, COLORS[0], Shape::Circle, points))
        .html()
}

/// One row per step, in the order measured.
fn step_table(o: &mut String, c: &CeilingResults) {
    o.push_str("<div class=\"table-wrap\"><table class=\"steps\"><thead><tr><th>#</th><th>level</th><th>confirm</th><th>p50</th><th>p99</th><th>max</th><th>errors</th><th>sent/s</th><th>received/s</th><th>open (min–max)</th><th>client CPU</th><th>send lag p99</th><th>result</th><th class=\"reasons\">reasons</th></tr></thead><tbody>\n");
    for s in &c.steps {
        let lat = |v: f64| {
            if s.rtt_count > 0 {
                fmt_us(v)
            } else {
                "-".to_string()
            }
        };
        let mut cpu = s
            .client
            .busiest_cpu()
            .map(|v| format!("{:.0}%", v * 100.0))
            .unwrap_or_else(|| "-".into());
        if s.client.saturated {
            cpu = format!(
                "<span class=\"bad\" title=\"{}\">{cpu} (saturated)</span>",
                esc(s.client.why.as_deref().unwrap_or("client saturated"))
            );
        }
        let _ = writeln!(
            o,
            "<tr class=\"step {}\" data-index=\"{}\"><th>{}</th><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}–{}</td><td>{cpu}</td><td>{}</td><td>{}</td><td class=\"reasons\">{}</td></tr>",
            if s.passed { "pass" } else { "fail" },
            s.index,
            s.index,
            level_text(s.level),
            if s.confirm { "✓" } else { "" },
            lat(s.rtt_p50_us),
            lat(s.rtt_p99_us),
            lat(s.rtt_max_us),
            pct(s.error_ratio),
            level_text(s.sent_per_sec),
            level_text(s.received_per_sec),
            group(s.open_min),
            group(s.open_max),
            s.client
                .send_lag_p99_us
                .map(fmt_us)
                .unwrap_or_else(|| "-".into()),
            if s.passed {
                "<span class=\"ok\">PASS</span>"
            } else {
                "<span class=\"bad\">FAIL</span>"
            },
            esc(&s.reasons.join("; "))
        );
    }
    o.push_str("</tbody></table></div>\n");
}

/// A threshold's measured value in its unit, for the SLO table.
fn slo_value(unit: &str, v: Option<f64>) -> String {
    let Some(v) = v else {
        return "no data".into();
    };
    match unit {
        "us" => fmt_us(v),
        "ratio" => pct(v),
        "per_second" => format!("{}/s", level_text(v)),
        _ => level_text(v),
    }
}

/// Each SLO threshold judged on each step's window.
fn slo_table(o: &mut String, c: &CeilingResults) {
    if c.slo.is_empty() || c.steps.iter().all(|s| s.slo.is_empty()) {
        return;
    }
    o.push_str("<h3>The SLO, step by step</h3>\n<div class=\"table-wrap\"><table class=\"slo-steps\"><thead><tr><th>#</th><th>level</th>");
    for e in &c.slo {
        let _ = write!(o, "<th>{}</th>", esc(e));
    }
    o.push_str("</tr></thead><tbody>\n");
    for s in &c.steps {
        let _ = write!(
            o,
            "<tr class=\"slo-row\"><th>{}</th><td>{}</td>",
            s.index,
            level_text(s.level)
        );
        for e in &c.slo {
            match s.slo.iter().find(|t| &t.expression == e) {
                Some(t) => {
                    let _ = write!(
                        o,
                        "<td class=\"{}\">{}</td>",
                        if t.passed { "ok" } else { "bad" },
                        esc(&slo_value(&t.unit, t.value))
                    );
                }
                None => o.push_str("<td>-</td>"),
            }
        }
        o.push_str("</tr>\n");
    }
    o.push_str("</tbody></table></div>\n");
}

fn outcome_words(o: &str) -> &'static str {
    match o {
        outcome::CEILING => "a ceiling was found",
        outcome::NO_CEILING => "no ceiling below the maximum level: every level tried held",
        outcome::BELOW_START => "even the lowest level tried failed",
        outcome::INCOMPLETE => "incomplete: stopped before the search converged",
        _ => "unknown outcome",
    }
}

/// Renders the whole page.
pub fn render(c: &CeilingResults) -> String {
    let r = &c.run;
    let mut o = String::with_capacity(96 * 1024);
    let targets = r.config.targets.join(" ");
    page_start(
        &mut o,
        &format!("wsherd ceiling: {} against {targets}", c.dimension),
        EXTRA_CSS,
    );
    heading(&mut o, c);
    client_warning(&mut o, c);
    o.push_str("<h2>The search</h2>\n");
    kv_table(&mut o, &search_rows(c));
    o.push_str("<h2>The knee</h2>\n<p class=\"note\">One point per measured step, confirmations included; filled when the step held the SLO, hollow with a red outline when it failed.</p>\n");
    o.push_str(&knee_chart(c));
    o.push_str(&achieved_chart(c));
    o.push_str("<h2>Steps</h2>\n");
    step_table(&mut o, c);
    slo_table(&mut o, c);
    o.push_str("<h2 id=\"run\">The whole run</h2>\n<p class=\"note\">Every step together, as one run: the counters, the ledger and latencies over all steps.</p>\n");
    run_html::body(&mut o, r);
    o.push_str("</body></html>\n");
    o
}

/// The page's heading, the search in one line, and the verdict.
fn heading(o: &mut String, c: &CeilingResults) {
    let r = &c.run;
    let _ = writeln!(
        o,
        "<h1>wsherd {} ceiling search</h1>",
        esc(&r.wsherd_version)
    );
    let _ = writeln!(
        o,
        "<p class=\"sub\">{} against {}{} &middot; {} workload &middot; SLO {}</p>",
        esc(&c.dimension),
        esc(&r.config.targets.join(" ")),
        if r.config.embedded_server {
            " (built-in server)"
        } else {
            ""
        },
        esc(&r.config.workload),
        if c.slo.is_empty() {
            "none".to_string()
        } else {
            esc(&c.slo.join(", "))
        }
    );
    let class = match c.outcome.as_str() {
        outcome::CEILING | outcome::NO_CEILING => "found",
        outcome::BELOW_START => "failed",
        _ => "",
    };
    let _ = writeln!(
        o,
        "<p class=\"verdict {class}\" id=\"verdict\">{}</p>",
        esc(&c.verdict)
    );
}

/// When the client was the limit, a warning box saying so (and where, and why).
fn client_warning(o: &mut String, c: &CeilingResults) {
    if !c.client_limited {
        return;
    }
    let at = c.first_failing;
    let saturated = c
        .steps
        .iter()
        .find(|s| s.client.saturated && Some(s.level) == at)
        .or_else(|| c.steps.iter().find(|s| s.client.saturated));
    let level = saturated.map(|s| s.level).or(at);
    let _ = writeln!(
        o,
        "<div class=\"warn\" id=\"client-limited\" role=\"alert\"><strong>Client-limited: this ceiling is the client's, not the server's.</strong> The load generator itself was saturated{}{}. The server may hold more; give wsherd more cores or machines and search again.</div>",
        level
            .map(|l| format!(" at {} {}", level_text(l), esc(&c.unit)))
            .unwrap_or_default(),
        saturated
            .and_then(|s| s.client.why.as_deref())
            .map(|w| format!(": {}", esc(w)))
            .unwrap_or_default()
    );
}

/// The search's settings and what it found, as table rows.
fn search_rows(c: &CeilingResults) -> Vec<(&'static str, String)> {
    let opt_level = |v: Option<f64>| {
        v.map(|l| format!("{} {}", level_text(l), esc(&c.unit)))
            .unwrap_or_else(|| "none".into())
    };
    let slo = if c.slo.is_empty() {
        "none".into()
    } else {
        c.slo
            .iter()
            .map(|e| esc(e))
            .collect::<Vec<_>>()
            .join("<br>")
    };
    let max_reason = c
        .max_reason
        .as_deref()
        .map(|w| format!(" ({})", esc(w)))
        .unwrap_or_default();
    let mut rows = vec![
        ("dimension", esc(&c.dimension)),
        ("unit", esc(&c.unit)),
        ("SLO", slo),
        ("start", format!("{} {}", level_text(c.start), esc(&c.unit))),
        (
            "max",
            format!("{} {}{max_reason}", level_text(c.max), esc(&c.unit)),
        ),
        ("growth", format!("×{}", trim_num(c.growth, 3))),
        ("precision", pct(c.precision)),
        ("step", format!("{} measured", secs(c.step_secs))),
        (
            "settle",
            format!("{} before each step", secs(c.settle_secs)),
        ),
        (
            "outcome",
            format!("{} ({})", esc(&c.outcome), outcome_words(&c.outcome)),
        ),
        ("ceiling", opt_level(c.ceiling)),
        ("first failing", opt_level(c.first_failing)),
    ];
    if let Some(l) = &c.limited_by {
        rows.push(("limited by", esc(l)));
    }
    rows.push((
        "steps measured",
        format!(
            "{} ({} confirmations)",
            c.steps.len(),
            c.steps.iter().filter(|s| s.confirm).count()
        ),
    ));
    rows
}

/// Writes the page of a search to `p`.
pub fn write(p: &std::path::Path, c: &CeilingResults) -> crate::error::Result<()> {
    super::files::write_file("--html", p, render(c))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::ceiling::{ClientHealth, CEILING_SCHEMA};
    use crate::results::ThresholdOutcome;

    fn step(index: usize, level: f64, confirm: bool, passed: bool, p99_ms: f64) -> Step {
        Step {
            index,
            level,
            confirm,
            start_secs: index as f64 * 12.0,
            secs: 10.0,
            open_min: 100,
            open_max: 100,
            sent_per_sec: level,
            received_per_sec: if passed { level } else { level * 0.8 },
            sessions_per_sec: None,
            rtt_count: (level * 10.0) as u64,
            rtt_p50_us: p99_ms * 1000.0 / 4.0,
            rtt_p90_us: p99_ms * 1000.0 / 2.0,
            rtt_p99_us: p99_ms * 1000.0,
            rtt_max_us: p99_ms * 1500.0,
            error_ratio: 0.0,
            connects: 100,
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
                vec![
                    format!("rtt.p99 = {p99_ms} ms, over 50 ms"),
                    "queue <full>".into(),
                ]
            },
            client: ClientHealth {
                shard_cpu: vec![0.4, 0.55],
                send_lag_p99_us: Some(120.0),
                ..Default::default()
            },
        }
    }

    /// A search that found 6,000 messages/s, with 7,000 failing twice.
    fn sample() -> CeilingResults {
        let steps = vec![
            step(1, 1000.0, false, true, 2.0),
            step(2, 2000.0, false, true, 3.0),
            step(3, 4000.0, false, true, 8.0),
            step(4, 8000.0, false, false, 120.0),
            step(5, 8000.0, true, false, 140.0),
            step(6, 6000.0, false, true, 30.0),
            step(7, 7000.0, false, false, 70.0),
            step(8, 7000.0, true, false, 75.0),
        ];
        CeilingResults {
            schema: CEILING_SCHEMA.into(),
            dimension: "rate".into(),
            unit: "messages/s".into(),
            slo: vec!["rtt.p99<50ms".into(), "errors<1%".into()],
            start: 1000.0,
            max: 100_000.0,
            max_reason: None,
            growth: 2.0,
            precision: 0.2,
            step_secs: 10.0,
            settle_secs: 2.0,
            outcome: outcome::CEILING.into(),
            ceiling: Some(6000.0),
            first_failing: Some(7000.0),
            limited_by: Some("rtt.p99 = 75 ms, over 50 ms".into()),
            client_limited: false,
            verdict: "The target holds 6,000 messages/s within rtt.p99<50ms; 7,000 fails.".into(),
            steps,
            run: serde_json::from_str(include_str!("../../tests/fixtures/results.json"))
                .expect("the fixture parses"),
        }
    }

    /// The `<svg>` element with `id`, up to its end.
    fn svg<'a>(page: &'a str, id: &str) -> &'a str {
        let at = page
            .find(&format!("id=\"{id}\""))
            .unwrap_or_else(|| panic!("no {id}"));
        &page[at..at + page[at..].find("</svg>").unwrap()]
    }

    fn count(hay: &str, needle: &str) -> usize {
        hay.matches(needle).count()
    }

    /// The number of points of the polyline of `series`.
    fn polyline_points(chart: &str, series: &str) -> usize {
        let at = chart
            .find(&format!("class=\"series\" data-series=\"{series}\""))
            .unwrap_or_else(|| panic!("no {series} line"));
        let rest = &chart[at..];
        let p = rest.find(" points=\"").unwrap() + 9;
        rest[p..p + rest[p..].find('"').unwrap()]
            .split_whitespace()
            .count()
    }

    #[test]
    fn the_page_shows_the_search() {
        let c = sample();
        let page = render(&c);
        assert_eq!(count(&page, "<html"), 1, "one document");
        assert_eq!(count(&page, "</html>"), 1);
        assert!(
            page.contains("The target holds 6,000 messages/s within rtt.p99&lt;50ms; 7,000 fails.")
        );
        assert_eq!(count(&page, "<tr class=\"step "), 8);
        assert_eq!(count(&page, "<tr class=\"step fail\""), 4);
        assert!(!page.contains("id=\"client-limited\""));

        let knee = svg(&page, "knee");
        assert!(knee.contains("data-x-scale=\"linear\""), "8,000/1,000 < 10");
        assert_eq!(count(knee, "class=\"marker\""), 2 * c.steps.len());
        assert_eq!(count(knee, "class=\"marker\" data-series=\"p50\""), 8);
        assert_eq!(count(knee, "class=\"marker\" data-series=\"p99\""), 8);
        // The four failing steps, hollow, in both series.
        assert_eq!(count(knee, "data-passed=\"false\" fill=\"#fff\""), 8);
        assert_eq!(polyline_points(knee, "p50"), 8);
        assert_eq!(polyline_points(knee, "p99"), 8);
        // One SLO line: errors<1% is not a latency.
        assert_eq!(count(knee, "class=\"slo\""), 1);
        assert!(knee.contains("data-slo=\"rtt.p99&lt;50ms\""));
        assert!(knee.contains(">rtt.p99&lt;50ms</text>"));
        assert_eq!(count(knee, "class=\"ceiling-line\""), 1);
        assert!(knee.contains(">ceiling 6,000 messages/s</text>"));
        assert_eq!(count(knee, "class=\"first-failing-line\""), 1);
        assert!(knee.contains(">first failing 7,000 messages/s</text>"));

        let achieved = svg(&page, "achieved");
        assert_eq!(count(achieved, "class=\"marker\""), 8);
        assert!(achieved.contains("data-series=\"ideal\""));

        // The whole run follows, from the run report's body.
        assert!(page.contains("<h2 id=\"run\">The whole run</h2>"));
        assert!(page.contains("id=\"rtt-spectrum\""));
        assert!(page.contains("<summary>Text summary</summary>"));
    }

    /// The SLO line's label stays clear of the ceiling marker: at the left end
    /// of its line, or at the right end when the ceiling lies at the left.
    #[test]
    fn the_slo_label_keeps_clear_of_the_ceiling() {
        let anchor = |c: &CeilingResults| {
            let page = render(c);
            let knee = svg(&page, "knee");
            let label = knee.find(">rtt.p99&lt;50ms</text>").unwrap();
            let start = knee[..label].rfind("<text").unwrap();
            knee[start..label].contains("text-anchor=\"end\"")
        };
        assert!(
            !anchor(&sample()),
            "6,000 of 1,000-8,000: the label stays left"
        );
        let mut c = sample();
        c.ceiling = Some(1000.0);
        c.first_failing = Some(2000.0);
        assert!(
            anchor(&c),
            "a ceiling at the axis's left end moves the label right"
        );
    }

    #[test]
    fn the_slo_line_sits_at_its_limit() {
        let page = render(&sample());
        let knee = svg(&page, "knee");
        let y_of = |needle: &str, attr: &str| -> f64 {
            let at = knee.find(needle).unwrap();
            let rest = &knee[at..];
            let p = rest.find(attr).unwrap() + attr.len();
            rest[p..p + rest[p..].find('"').unwrap()].parse().unwrap()
        };
        let slo = y_of("class=\"slo\"", "y1=\"");
        // Step 6 (p99 30 ms, passed) below the line, step 7 (70 ms) above it.
        let ys: Vec<f64> = knee
            .match_indices("class=\"marker\" data-series=\"p99\"")
            .map(|(i, _)| {
                let rest = &knee[i..];
                let p = rest.find(" y=\"").unwrap() + 4;
                rest[p..p + rest[p..].find('"').unwrap()]
                    .parse::<f64>()
                    .unwrap()
                    + 4.0
            })
            .collect();
        // In order of level: 1k, 2k, 4k, 6k, 7k, 7k, 8k, 8k.
        assert_eq!(ys.len(), 8);
        assert!(ys[3] > slo, "30 ms is below the 50 ms line");
        assert!(ys[4] < slo, "70 ms is above the 50 ms line");
        assert!(ys.windows(2).all(|w| w[1] <= w[0] + 0.01), "{ys:?}");
    }

    /// The x coordinates of the polyline of `series`.
    fn polyline_xs(chart: &str, series: &str) -> Vec<f64> {
        let at = chart
            .find(&format!("class=\"series\" data-series=\"{series}\""))
            .unwrap_or_else(|| panic!("no {series} line"));
        let rest = &chart[at..];
        let p = rest.find(" points=\"").unwrap() + 9;
        rest[p..p + rest[p..].find('"').unwrap()]
            .split_whitespace()
            .map(|xy| xy.split(',').next().unwrap().parse().unwrap())
            .collect()
    }

    /// The knee's lines and markers go in order of level, not of step (the
    /// sample measured 8,000 before 6,000 and 7,000): no zig-zag.
    #[test]
    fn the_knee_draws_its_points_in_level_order() {
        let page = render(&sample());
        let knee = svg(&page, "knee");
        for series in ["p50", "p99"] {
            let xs = polyline_xs(knee, series);
            assert_eq!(xs.len(), 8, "{series}");
            assert!(xs.windows(2).all(|w| w[0] <= w[1]), "{series}: {xs:?}");
            // Distinct levels at distinct x: 1k, 2k, 4k, 6k, 7k, 7k, 8k, 8k.
            assert!(xs[2] < xs[3] && xs[3] < xs[4] && xs[5] < xs[6], "{xs:?}");
        }
        // The markers' tips in the same order: steps 1, 2, 3, 6, 7, 8, 4, 5.
        let order: Vec<&str> = knee
            .match_indices("step ")
            .filter(|(i, _)| knee[..*i].ends_with("<title>"))
            .map(|(i, _)| &knee[i + 5..i + 5 + knee[i + 5..].find(':').unwrap()])
            .collect();
        assert_eq!(
            order,
            ["1", "2", "3", "6", "7", "8", "4", "5", "1", "2", "3", "6", "7", "8", "4", "5"],
            "p50's markers, then p99's"
        );
        let chart = svg(&page, "achieved");
        let xs = polyline_xs(chart, achieved("rate").name);
        assert_eq!(xs.len(), 8);
        assert!(xs.windows(2).all(|w| w[0] <= w[1]), "achieved: {xs:?}");
    }

    #[test]
    fn text_is_escaped() {
        let mut c = sample();
        c.verdict = "<b>holds</b> & more".into();
        let page = render(&c);
        assert!(page.contains("queue &lt;full&gt;"));
        assert!(!page.contains("queue <full>"));
        assert!(page.contains("&lt;b&gt;holds&lt;/b&gt; &amp; more"));
        assert!(page.contains("rtt.p99 = 70 ms, over 50 ms; queue &lt;full&gt;"));
    }

    #[test]
    fn no_steps_still_renders() {
        let mut c = sample();
        c.steps.clear();
        c.ceiling = None;
        c.first_failing = None;
        c.outcome = outcome::INCOMPLETE.into();
        let page = render(&c);
        assert_eq!(count(&page, "<html"), 1);
        assert_eq!(count(&page, "<tr class=\"step "), 0);
        assert_eq!(count(&page, "class=\"marker\""), 0);
        assert!(svg(&page, "knee").contains("no steps measured"));
        assert!(svg(&page, "achieved").contains("no steps measured"));
        assert!(page.contains("id=\"rtt-spectrum\""));
    }

    #[test]
    fn no_ceiling_below_max_draws_no_ceiling_line() {
        let mut c = sample();
        c.steps = vec![
            step(1, 500.0, false, true, 1.0),
            step(2, 5000.0, false, true, 2.0),
            step(3, 50_000.0, false, true, 4.0),
        ];
        c.outcome = outcome::NO_CEILING.into();
        c.ceiling = None;
        c.first_failing = None;
        let page = render(&c);
        let knee = svg(&page, "knee");
        assert!(!knee.contains("ceiling-line"));
        assert!(!knee.contains("first-failing-line"));
        assert_eq!(count(knee, "class=\"marker\""), 6);
        assert_eq!(count(knee, "data-passed=\"false\""), 0);
        // 50,000 / 500 >= 10: a log axis with SI ticks.
        assert!(knee.contains("data-x-scale=\"log\""));
        for t in [">1k<", ">10k<", ">50k<"] {
            assert!(knee.contains(t), "tick {t} missing");
        }
        assert!(page.contains("no ceiling below the maximum level"));
    }

    #[test]
    fn client_limited_is_a_warning() {
        let mut c = sample();
        c.client_limited = true;
        c.steps[6].client.saturated = true;
        c.steps[6].client.why = Some("shard 0 at 99% of a core <busy>".into());
        let page = render(&c);
        let at = page.find("id=\"client-limited\"").expect("a warning box");
        let warning = &page[at..at + page[at..].find("</div>").unwrap()];
        assert!(warning.contains("the client's, not the server's"));
        assert!(warning.contains("at 7,000 messages/s: shard 0 at 99% of a core &lt;busy&gt;"));
        assert!(page.contains("(saturated)</span>"));
    }

    #[test]
    fn connections_plot_open_against_the_diagonal() {
        let mut c = sample();
        c.dimension = "connections".into();
        c.unit = "connections".into();
        let page = render(&c);
        let achieved = svg(&page, "achieved");
        assert!(achieved.contains("connections open"));
        assert!(achieved.contains("data-series=\"ideal\""));
        assert_eq!(count(achieved, "data-series=\"open (lowest)\""), 9);
    }

    #[test]
    fn levels_read_well() {
        assert_eq!(level_text(20_000.0), "20,000");
        assert_eq!(level_text(12.5), "12.5");
        assert_eq!(pct(0.0125), "1.25%");
        assert_eq!(pct(0.0), "0%");
        assert_eq!(secs(2.0), "2s");
    }
}
