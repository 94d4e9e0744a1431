//! The HTML report: one self-contained file people open in a browser to judge a
//! run from pictures, and attach to a ticket. Inline CSS and inline SVG drawn in
//! Rust (the charts by `report::chart`), no script and no network fetch, so it
//! renders the same offline, years later, and in a sandboxed viewer.
//!
//! It shows what the text summary says (as tables, with the text itself folded
//! underneath), the latency percentile spectrum on HdrHistogram's `1/(1-p)` axis,
//! the per-second series (latency percentiles, throughput, open connections,
//! errors), and the run's configuration and host. Everything comes from
//! `RunResults`, so `wsherd report RESULTS.json --html` draws a saved run.
//!
//! The summary tables are a layout of `report::summary`, the same sections the
//! text summary lays out, so a row is defined once; this module decides only how
//! the page shows them. It must never import the engine, shards, collector,
//! config, cli or ceiling (the ceiling page imports it, not the other way);
//! results types come from `crate::results`, numbers are formatted through
//! `crate::vocab::fmt`.

use super::chart::{self, Axis, Chart, Scale, Series};
use super::markup::esc;
use super::summary::{self, Block, LatencyTable, Section, Unit, Value, LATENCY_COLUMNS};
use crate::results::{LatencyStats, RunResults, SecondStats};
use crate::vocab::fmt::group;
use crate::vocab::hist::decode_histogram;
use hdrhistogram::Histogram;
use std::fmt::Write;

/// The run page's x axes.
#[derive(Clone, Copy, PartialEq)]
enum XAxis {
    /// Seconds since the start of the run.
    Seconds,
    /// Percentile on HdrHistogram's log scale: x = log10(1/(1-p)), 0..6.
    Percentile,
}

const PERCENTILE_TICKS: [&str; 7] = ["0%", "90%", "99%", "99.9%", "99.99%", "99.999%", "99.9999%"];

/// A chart of the run page: y from 0, x in seconds or along the percentiles, a
/// legend entry per series.
struct RunChart<'a> {
    id: &'a str,
    title: &'a str,
    x: XAxis,
    y_label: &'a str,
    /// The y values are counts: whole-number ticks only.
    counts: bool,
    series: Vec<Series>,
}

impl RunChart<'_> {
    /// The chart in its box, drawn by `chart`.
    fn html(self) -> String {
        let points: Vec<(f64, f64)> = self
            .series
            .iter()
            .flat_map(|s| s.points.iter())
            .filter(|p| p.x.is_finite() && p.y.is_finite())
            .map(|p| (p.x, p.y))
            .collect();
        if points.is_empty() {
            return chart::empty_html(self.id, self.title, "no data");
        }
        let x = match self.x {
            XAxis::Percentile => percentile_axis(),
            XAxis::Seconds => seconds_axis(&points),
        };
        let ymax = points.iter().map(|p| p.1).fold(0.0, f64::max);
        let min_step = if self.counts { 1.0 } else { 0.0 };
        let y = Axis::from_zero(ymax, 5.0, min_step, self.y_label);
        let mut c = Chart::new(self.id, self.title, x, y);
        c.series = self.series;
        c.series_keys().html()
    }
}

/// HdrHistogram's percentile axis: 0% to 99.9999%, a tick per nine.
fn percentile_axis() -> Axis {
    Axis::new(Scale::Linear, 0.0, 6.0, "percentile (log scale: 1/(1−p))").with_ticks(
        PERCENTILE_TICKS
            .iter()
            .enumerate()
            .map(|(i, l)| (i as f64, l.to_string()))
            .collect(),
    )
}

/// Seconds over the data, from 0 (or before, for a warm-up), whole-second ticks.
fn seconds_axis(points: &[(f64, f64)]) -> Axis {
    let lo = points.iter().map(|p| p.0).fold(f64::INFINITY, f64::min);
    let hi = points.iter().map(|p| p.0).fold(f64::NEG_INFINITY, f64::max);
    let hi = if hi > lo { hi } else { lo.max(0.0) + 1.0 };
    Axis::new(Scale::Linear, lo.min(0.0), hi, "time since start (s)").plain_ticks(10.0, 1.0)
}

/// The percentile spectrum of a histogram (values in ns) in ms, on the
/// percentile axis: HdrHistogram's 5 ticks per half distance, up to 99.9999%.
fn spectrum(h: &Histogram<u64>) -> Vec<(f64, f64)> {
    if h.is_empty() {
        return Vec::new();
    }
    let mut pts: Vec<(f64, f64)> = h
        .iter_quantiles(5)
        .map(|v| (v.quantile_iterated_to(), v.value_iterated_to()))
        .filter(|(q, _)| *q < 1.0)
        .map(|(q, ns)| ((1.0 / (1.0 - q)).log10().min(6.0), ns as f64 / 1e6))
        .collect();
    // The maximum at the end of the axis's reach.
    let last_x = pts.last().map(|p| p.0).unwrap_or(0.0);
    if last_x < 6.0 {
        let reach = (h.len() as f64).log10().clamp(last_x, 6.0);
        pts.push((reach, h.max() as f64 / 1e6));
    }
    pts
}

fn hist(l: &LatencyStats) -> Histogram<u64> {
    decode_histogram(&l.hdr).unwrap_or_else(crate::vocab::hist::new_histogram)
}

fn table_row(o: &mut String, cells: &[String]) {
    o.push_str("<tr>");
    for (i, c) in cells.iter().enumerate() {
        if i == 0 {
            let _ = write!(o, "<th>{c}</th>");
        } else {
            let _ = write!(o, "<td>{c}</td>");
        }
    }
    o.push_str("</tr>\n");
}

pub(crate) fn kv_table(o: &mut String, rows: &[(&str, String)]) {
    o.push_str("<table class=\"kv\">\n");
    for (k, v) in rows {
        let _ = writeln!(o, "<tr><th>{}</th><td>{}</td></tr>", esc(k), v);
    }
    o.push_str("</table>\n");
}

const CSS: &str = r#"
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px auto;max-width:1040px;color:#1b1f24;background:#fff;line-height:1.4}
h1{font-size:1.5em;margin:0 0 4px}h2{font-size:1.2em;margin:28px 0 8px;border-bottom:1px solid #d0d7de;padding-bottom:4px}
h3{font-size:1em;margin:18px 0 4px}.sub{color:#57606a;margin:2px 0}
.badge{display:inline-block;background:#cf222e;color:#fff;border-radius:4px;padding:1px 8px;font-weight:600}
.ok{color:#1a7f37;font-weight:600}.bad{color:#cf222e;font-weight:600}
table{border-collapse:collapse;margin:6px 0 12px;font-variant-numeric:tabular-nums}
th,td{padding:3px 10px;border-bottom:1px solid #eaeef2;text-align:right}
th:first-child{text-align:left}table.kv th{text-align:left;font-weight:600;color:#57606a}table.kv td{text-align:left}
thead th{background:#f6f8fa;text-align:right}thead th:first-child{text-align:left}
.grid2{display:grid;grid-template-columns:1fr 1fr;gap:8px 32px}
pre{background:#f6f8fa;padding:12px;overflow-x:auto;font-size:12px}
.note{color:#57606a;font-size:.9em}
.warning{margin:8px 0;padding:8px 12px;border-left:4px solid #bf8700;background:#fff8c5;color:#1b1f24}
"#;

/// Writes the document's start, up to and including `<body>`: the title, the
/// report's CSS, the charts' and `extra_css` after them (for pages built on this one).
pub(crate) fn page_start(o: &mut String, title: &str, extra_css: &str) {
    let _ = writeln!(
        o,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>{}</title>\n<style>{CSS}{}{extra_css}</style></head><body>",
        esc(title),
        chart::CSS
    );
}

/// Renders the whole report.
pub fn render(r: &RunResults) -> String {
    let c = &r.config;
    let mut o = String::with_capacity(64 * 1024);
    let title = match &r.scenario {
        Some(name) => format!("wsherd report: scenario {name}, {} workload", c.workload),
        None => format!(
            "wsherd report: {} workload, {}",
            c.workload,
            c.targets.join(" ")
        ),
    };
    page_start(&mut o, &title, "");
    let _ = writeln!(o, "<h1>wsherd {} report</h1>", esc(&r.wsherd_version));
    body(&mut o, r);
    o.push_str("</body></html>\n");
    o
}

/// Writes the report's content below its heading: the run's one-line
/// description, summary tables, charts, configuration, host and the text summary.
/// Other pages (the ceiling report) embed it whole.
pub(crate) fn body(o: &mut String, r: &RunResults) {
    description(o, r);
    agents(o, r);
    verdict(o, r);
    o.push_str("<h2>Summary</h2>\n");
    summary_sections(o, r);
    o.push_str("<h2>Latency distribution</h2>\n");
    spectrum_charts(o, r);
    o.push_str("<h2>Over time</h2>\n<p class=\"note\">One point per second of the run, the drain after the stop included.</p>\n");
    time_charts(o, &r.series);
    o.push_str("<div class=\"grid2\"><div><h2>Configuration</h2>\n");
    configuration(o, r);
    o.push_str("</div><div><h2>Host</h2>\n");
    host(o, r);
    o.push_str("</div></div>\n");
    let _ = writeln!(
        o,
        "<details><summary>Text summary</summary><pre>{}</pre></details>",
        esc(&super::text::render(r))
    );
}

/// The verdict first: the thresholds (which failed, by how much), the rate
/// asked for against the rate achieved, the ledger, and the assessment with
/// what each verdict rests on.
fn verdict(o: &mut String, r: &RunResults) {
    match r.scenario.as_deref() {
        Some("total") => o.push_str("<h2>Verdict: the scenarios' total</h2>\n"),
        Some(name) => {
            let _ = writeln!(o, "<h2>Verdict: scenario {}</h2>", esc(name));
        }
        None => o.push_str("<h2>Verdict</h2>\n"),
    }
    let failed = r.thresholds.iter().filter(|t| !t.passed).count();
    if r.thresholds.is_empty() {
        o.push_str("<p class=\"note\">No thresholds were set (--threshold).</p>\n");
    } else {
        let _ = writeln!(
            o,
            "<p class=\"{}\">Thresholds: {} of {} passed</p>",
            if failed == 0 { "ok" } else { "bad" },
            r.thresholds.len() - failed,
            r.thresholds.len()
        );
        o.push_str("<table><thead><tr><th>threshold</th><th>verdict</th><th>measured</th><th>missed</th></tr></thead><tbody>\n");
        for t in &r.thresholds {
            let _ = writeln!(
                o,
                "<tr><th>{}</th><td class=\"{}\">{}</td><td>{}</td><td>{}</td></tr>",
                esc(&t.expression),
                if t.passed { "ok" } else { "bad" },
                if t.passed { "PASS" } else { "FAIL" },
                esc(&crate::thresholds::shown_value(t)),
                esc(&crate::thresholds::missed_by(t).unwrap_or_default())
            );
        }
        o.push_str("</tbody></table>\n");
    }
    let m = &r.messages;
    if let Some(asked) = summary::requested_vs_achieved(r) {
        let _ = writeln!(o, "<p>Open loop: {}.</p>", esc(&asked));
    }
    let _ =
        writeln!(
        o,
        "<p class=\"{}\">Ledger {}: {} sent, {} received, {} failed, {} in flight at the stop.</p>",
        if m.ledger_balances() { "ok" } else { "bad" },
        if m.ledger_balances() { "balanced" } else { "NOT balanced" },
        group(m.sent),
        group(m.received),
        group(m.failed),
        group(m.in_flight_at_stop)
    );
    if !r.assessment.is_empty() {
        o.push_str("<table><thead><tr><th>assessment</th><th>value</th><th>verdict</th><th>on</th></tr></thead><tbody>\n");
        for a in &r.assessment {
            let class = match a.verdict.as_str() {
                "good" => "ok",
                "poor" => "bad",
                _ => "",
            };
            let _ = writeln!(
                o,
                "<tr><th>{}</th><td>{}</td><td class=\"{class}\">{}</td><td>{}</td></tr>",
                esc(&a.metric),
                esc(&crate::thresholds::shown_assessed(a)),
                esc(&a.verdict),
                esc(&crate::thresholds::assessment_basis(a))
            );
        }
        o.push_str("</tbody></table>\n<p class=\"note\">Bounds are good / acceptable, the seed guide's unless marked; --bands sets your own, and a failed threshold outranks them.</p>\n");
    }
}

/// The run in one line: workload, targets, connections, duration, start.
fn description(o: &mut String, r: &RunResults) {
    let c = &r.config;
    let started = humantime::format_rfc3339_seconds(
        std::time::UNIX_EPOCH + std::time::Duration::from_secs_f64(r.started_at_unix.max(0.0)),
    );
    let _ = writeln!(
        o,
        "<p class=\"sub\">{} workload against {}{} &middot; {} connections &middot; {}s requested, ran {:.1}s &middot; started {started}{}</p>",
        esc(&c.workload),
        esc(&c.targets.join(" ")),
        if c.embedded_server { " (built-in server)" } else { "" },
        group(c.connections),
        c.duration_secs,
        r.elapsed_secs,
        if r.interrupted {
            " <span class=\"badge\">INTERRUPTED: partial results</span>"
        } else {
            ""
        }
    );
}

/// A distributed run's agents (`wsherd k8s run`), under the run's line and
/// before the verdict: how many reported (with one missing, the figures are
/// the others' share only: the heading says so in a badge), a row per missing
/// agent (its pod and why) and per late one, and the notes. Nothing for an
/// ordinary run.
fn agents(o: &mut String, r: &RunResults) {
    let Some(a) = &r.agents else {
        return;
    };
    let whole = a.missing.is_empty();
    let _ = writeln!(
        o,
        "<h2>Agents{}</h2>",
        if whole {
            String::new()
        } else {
            format!(
                " <span class=\"badge\">PARTIAL: {} of {} agents reported</span>",
                a.reported.len(),
                a.expected
            )
        }
    );
    let _ = writeln!(
        o,
        "<p class=\"{}\">{} of {} agents reported, merged as one run{}</p>",
        if whole { "ok" } else { "bad" },
        a.reported.len(),
        a.expected,
        if whole {
            "."
        } else {
            ": the figures are the reporting agents' share only."
        }
    );
    if !a.missing.is_empty() || !a.late.is_empty() {
        o.push_str("<table class=\"kv\"><thead><tr><th>agent</th><th>status</th><th>pod</th><th>why</th></tr></thead><tbody>\n");
        for m in &a.missing {
            let _ = writeln!(
                o,
                "<tr><th>{}/{}</th><td class=\"bad\">MISSING</td><td>{}</td><td>{}</td></tr>",
                m.agent,
                a.expected,
                if m.pod.is_empty() {
                    "none created".to_string()
                } else {
                    esc(&m.pod)
                },
                esc(&m.reason)
            );
        }
        for l in &a.late {
            let _ = writeln!(
                o,
                "<tr><th>{}/{}</th><td>LATE</td><td></td><td>started {:.1} s after the others were due</td></tr>",
                l.agent, a.expected, l.secs
            );
        }
        o.push_str("</tbody></table>\n");
    }
    for n in &a.notes {
        let _ = writeln!(o, "<p class=\"note\">Note: {}.</p>", esc(n));
    }
}

/// The summary's sections (`report::summary`), as the page lays them out: a
/// section with a latency table, or a remark without a title, across the page;
/// the others side by side, two by two.
fn summary_sections(o: &mut String, r: &RunResults) {
    let mut in_grid = false;
    for s in &summary::summarize(r).sections {
        let wide = s.title.is_empty() || s.blocks.iter().any(|b| matches!(b, Block::Latency(_)));
        if wide == in_grid {
            o.push_str(if in_grid {
                "</div>\n"
            } else {
                "<div class=\"grid2\">"
            });
            in_grid = !wide;
        }
        if in_grid {
            o.push_str("<div>");
        }
        section(o, s);
        if in_grid {
            o.push_str("</div>");
        }
    }
    if in_grid {
        o.push_str("</div>\n");
    }
}

/// A section: its title, then its blocks. Quiet rows are shown: the page's tables
/// keep their shape from run to run.
fn section(o: &mut String, s: &Section) {
    if !s.title.is_empty() {
        let _ = writeln!(o, "<h3>{}</h3>", esc(&s.title));
    }
    for b in &s.blocks {
        match b {
            Block::Rows(rows) => {
                let cells: Vec<(&str, String)> =
                    rows.iter().map(|r| (r.label, value(&r.value))).collect();
                kv_table(o, &cells);
            }
            Block::Latency(t) => latency_table(o, t),
            Block::Note(lines) => {
                let text: Vec<&str> = lines.iter().map(|l| l.trim()).collect();
                let _ = writeln!(
                    o,
                    "<p class=\"note\">{}</p>",
                    esc(&sentence(&text.join(" ")))
                );
            }
            Block::Warning(lines) => {
                let text: Vec<&str> = lines.iter().map(|l| l.trim()).collect();
                let _ = writeln!(
                    o,
                    "<p class=\"warning\">{}</p>",
                    esc(&sentence(&text.join(" ")))
                );
            }
            Block::Problems(p) if p.is_empty() => o.push_str("<p class=\"ok\">none</p>\n"),
            Block::Problems(p) => {
                o.push_str("<ul>\n");
                for problem in p {
                    let _ = writeln!(o, "<li>{}</li>", esc(problem));
                }
                o.push_str("</ul>\n");
            }
        }
    }
}

/// A remark as a sentence: its first letter capitalized.
fn sentence(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(first) => first.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// A row's value as HTML.
fn value(v: &Value) -> String {
    match v {
        Value::Text(s) => esc(s),
        Value::Amounts(a) => a
            .iter()
            .map(|x| match x.unit {
                Unit::Of(unit) => format!("{} {unit}", esc(&x.value)),
                Unit::PerSecond => format!("{}/s", esc(&x.value)),
            })
            .collect::<Vec<_>>()
            .join(", "),
        Value::Check {
            text,
            holds,
            verdict,
        } => format!(
            "{} &nbsp;(<span class=\"{}\">{}</span>)",
            esc(text),
            if *holds { "ok" } else { "bad" },
            esc(verdict)
        ),
    }
}

/// A latency table: a row per kind measured; its heading, if any, over the names.
fn latency_table(o: &mut String, t: &LatencyTable) {
    let _ = write!(
        o,
        "<table class=\"latency\"><thead><tr><th>{}</th>",
        esc(t.heading.unwrap_or(""))
    );
    for c in LATENCY_COLUMNS {
        let _ = write!(o, "<th>{c}</th>");
    }
    o.push_str("</tr></thead><tbody>\n");
    for row in &t.rows {
        let cells = match &row.cells {
            Some(c) => std::iter::once(esc(&row.name))
                .chain(c.iter().map(|x| esc(x)))
                .collect(),
            None => {
                let mut c = vec![esc(&row.name), "no samples".into()];
                c.extend(std::iter::repeat_n(String::new(), 6));
                c.push("0".into());
                c
            }
        };
        table_row(o, &cells);
    }
    o.push_str("</tbody></table>\n");
}

/// The round-trip, connect and handshake latencies by percentile.
fn spectrum_charts(o: &mut String, r: &RunResults) {
    let l = &r.latency;
    let mut rtt = vec![Series::line(
        if l.rtt_uncorrected.is_some() {
            "round trip (corrected)"
        } else {
            "round trip"
        },
        spectrum(&hist(&l.rtt)),
    )];
    if let Some(u) = &l.rtt_uncorrected {
        rtt.push(Series::line("round trip (uncorrected)", spectrum(&hist(u))).dashed());
    }
    if let Some(d) = &l.delivery {
        let name = if r.push.is_some() {
            "push one-way"
        } else {
            "broadcast delivery"
        };
        rtt.push(Series::line(name, spectrum(&hist(d))));
    }
    let charts = [
        RunChart {
            id: "rtt-spectrum",
            title: "Round-trip latency by percentile",
            x: XAxis::Percentile,
            y_label: "latency (ms)",
            counts: false,
            series: rtt,
        },
        RunChart {
            id: "connect-spectrum",
            title: "Connect and handshake latency by percentile",
            x: XAxis::Percentile,
            y_label: "latency (ms)",
            counts: false,
            series: [
                Some(Series::line("connect (TCP)", spectrum(&hist(&l.connect)))),
                l.tls
                    .as_ref()
                    .map(|t| Series::line("TLS handshake", spectrum(&hist(t)))),
                Some(Series::line(
                    "handshake (upgrade)",
                    spectrum(&hist(&l.handshake)),
                )),
            ]
            .into_iter()
            .flatten()
            .collect(),
        },
    ];
    for c in charts {
        o.push_str(&c.html());
    }
}

/// The per-second charts: latency percentiles, throughput, connections, errors.
fn time_charts(o: &mut String, ser: &[SecondStats]) {
    let pts = |f: &dyn Fn(&SecondStats) -> f64| -> Vec<(f64, f64)> {
        ser.iter().map(|s| (s.t as f64, f(s))).collect()
    };
    // A second in which nothing came back has no latency: no point, not a zero.
    let lat = |f: &dyn Fn(&SecondStats) -> f64| -> Vec<(f64, f64)> {
        ser.iter()
            .filter(|s| s.received > 0)
            .map(|s| (s.t as f64, f(s)))
            .collect()
    };
    let per_second = |id, title, y_label, counts, series| RunChart {
        id,
        title,
        x: XAxis::Seconds,
        y_label,
        counts,
        series,
    };
    let charts = [
        per_second(
            "latency-over-time",
            "Round-trip latency percentiles per second",
            "latency (ms)",
            false,
            vec![
                Series::line("p50", lat(&|s| s.rtt_p50_us / 1000.0)),
                Series::line("p90", lat(&|s| s.rtt_p90_us / 1000.0)),
                Series::line("p99", lat(&|s| s.rtt_p99_us / 1000.0)),
                Series::line("max", lat(&|s| s.rtt_max_us / 1000.0)),
            ],
        ),
        per_second(
            "throughput",
            "Throughput",
            "messages per second",
            true,
            vec![
                Series::line("sent/s", pts(&|s| s.sent as f64)),
                Series::line("received/s", pts(&|s| s.received as f64)).dashed(),
            ],
        ),
        per_second(
            "connections",
            "Connections",
            "connections",
            true,
            vec![
                Series::line("open", pts(&|s| s.open as f64)),
                Series::line("established per second", pts(&|s| s.connects as f64)),
            ],
        ),
        per_second(
            "errors",
            "Errors",
            "per second",
            true,
            vec![
                Series::line("errors/s", pts(&|s| s.errors as f64)),
                Series::line("connect failures/s", pts(&|s| s.connect_failures as f64)),
            ],
        ),
    ];
    for c in charts {
        o.push_str(&c.html());
    }
}

/// What the run was asked to do.
fn configuration(o: &mut String, r: &RunResults) {
    let c = &r.config;
    let mut rows = vec![
        ("targets", esc(&c.targets.join(" "))),
        ("workload", esc(&c.workload)),
        ("pacing", esc(&c.pacing)),
        (
            "rate",
            c.rate
                .map(|r| format!("{} msg/s", crate::vocab::fmt::fmt_rate(r)))
                .unwrap_or_else(|| "-".into()),
        ),
        ("connections", group(c.connections)),
        ("duration", format!("{}s", c.duration_secs)),
        ("connect rate", format!("{}/s", c.connect_rate)),
        ("connect timeout", format!("{}s", c.connect_timeout_secs)),
        (
            "messages",
            format!("{} bytes, {}", c.message_size, esc(&c.message_kind)),
        ),
        (
            "replies matched by",
            c.correlate
                .as_deref()
                .map_or_else(|| "their echo".to_string(), esc),
        ),
        (
            "in flight per connection",
            if c.inflight == 0 {
                "no cap".to_string()
            } else {
                c.inflight.to_string()
            },
        ),
        ("shards", c.shards.to_string()),
    ];
    if !c.proxies.is_empty() {
        rows.push(("through proxy", esc(&c.proxies.join(" "))));
    }
    if !c.source_ips.is_empty() {
        rows.push(("source addresses", esc(&c.source_ips.join(" "))));
    }
    if let Some(w) = &r.warmup {
        rows.push(("warm-up", format!("{}s (measured apart)", w.secs)));
    }
    kv_table(o, &rows);
}

fn host(o: &mut String, r: &RunResults) {
    let h = &r.host;
    kv_table(
        o,
        &[
            ("hostname", esc(&h.hostname)),
            ("CPUs", h.cpus.to_string()),
            ("load shard cores", format!("{:?}", h.shard_cores)),
            ("server cores", format!("{:?}", h.server_cores)),
            ("io driver", esc(&h.io_driver)),
            ("kernel", esc(&h.kernel)),
            ("open-file limit", group(h.nofile_limit)),
        ],
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The page starts with the verdict: thresholds (which failed, by how
    /// much), the rate asked and achieved, the ledger, the assessment and
    /// what each verdict rests on, all before the summary tables.
    #[test]
    fn the_page_starts_with_the_verdict() {
        let mut r: RunResults =
            serde_json::from_str(include_str!("../../tests/fixtures/results.json")).unwrap();
        let judge =
            crate::thresholds::Judge::parse(&["rtt.p99<1us".into(), "errors<1%".into()], &[])
                .unwrap();
        judge.apply(&mut r);
        let page = render(&r);
        let at = |s: &str| {
            page.find(s)
                .unwrap_or_else(|| panic!("no {s:?} on the page"))
        };
        let verdict = at("<h2>Verdict</h2>");
        assert!(verdict < at("<h2>Summary</h2>"));
        assert!(at("Thresholds: 1 of 2 passed") > verdict);
        assert!(page.contains("<th>rtt.p99&lt;1us</th><td class=\"bad\">FAIL</td>"));
        let missed = &page[at("<td>by ")..];
        let missed = &missed[..missed.find("</td>").unwrap()];
        assert!(
            missed.contains("ms, ") && missed.ends_with("x the limit"),
            "{missed}"
        );
        assert!(page.contains("Open loop: requested 2,000/s, achieved 1,990/s (99.5%)."));
        assert!(page.contains("Ledger balanced"));
        assert!(page.contains("(threshold rtt.p99&lt;1us failed)"));
    }

    fn fixture() -> RunResults {
        serde_json::from_str(include_str!("../../tests/fixtures/results.json")).unwrap()
    }

    /// A partial distributed run is marked at the top of the page, before the
    /// verdict: a badge, the count in red, each missing agent as a problem with
    /// its pod and reason escaped (they come from the cluster), each late one.
    #[test]
    fn a_partial_distributed_run_is_marked_at_the_top() {
        use crate::results::{AgentsReport, LateAgent, MissingAgent};
        let mut r = fixture();
        r.agents = Some(AgentsReport {
            expected: 3,
            reported: vec![1, 2],
            missing: vec![MissingAgent {
                agent: 3,
                pod: "wsherd-x-2-<b>".into(),
                reason: "Failed: <script>alert(1)</script> & \"more\"".into(),
            }],
            start_at_unix: r.started_at_unix,
            late: vec![LateAgent {
                agent: 2,
                secs: 4.3,
            }],
            notes: vec!["one-way latencies compare <clocks>".into()],
        });
        let page = render(&r);
        let at = |s: &str| {
            page.find(s)
                .unwrap_or_else(|| panic!("no {s:?} on the page"))
        };
        let agents =
            at("<h2>Agents <span class=\"badge\">PARTIAL: 2 of 3 agents reported</span></h2>");
        assert!(at("<p class=\"sub\">") < agents);
        assert!(agents < at("<h2>Verdict</h2>"));
        assert!(page.contains("<p class=\"bad\">2 of 3 agents reported, merged as one run: the figures are the reporting agents' share only.</p>"));
        assert!(page.contains(
            "<tr><th>3/3</th><td class=\"bad\">MISSING</td><td>wsherd-x-2-&lt;b&gt;</td>\
             <td>Failed: &lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;more&quot;</td></tr>"
        ));
        assert!(page.contains(
            "<tr><th>2/3</th><td>LATE</td><td></td><td>started 4.3 s after the others were due</td></tr>"
        ));
        assert!(
            page.contains("<p class=\"note\">Note: one-way latencies compare &lt;clocks&gt;.</p>")
        );
        // Nothing from the cluster unescaped, the folded text summary included.
        assert!(!page.contains("<script"), "a script on the page");
        assert!(!page.contains("<b>") && !page.contains("<clocks>"));

        // Every agent in: no badge, no table, the count in green.
        let a = r.agents.as_mut().unwrap();
        a.reported = vec![1, 2, 3];
        a.missing.clear();
        a.late.clear();
        let page = render(&r);
        assert!(page.contains(
            "<h2>Agents</h2>\n<p class=\"ok\">3 of 3 agents reported, merged as one run.</p>"
        ));
        assert!(!page.contains("PARTIAL") && !page.contains("MISSING"));
    }

    /// An ordinary run has no agents block.
    #[test]
    fn an_ordinary_run_has_no_agents_block() {
        let page = render(&fixture());
        for s in [
            "<h2>Agents",
            "agents reported",
            "PARTIAL",
            "MISSING",
            "LATE",
        ] {
            assert!(!page.contains(s), "{s:?} on an ordinary run's page");
        }
    }

    #[test]
    fn spectrum_runs_on_the_log_axis() {
        let mut h = crate::vocab::hist::new_histogram();
        for v in 1..=10_000u64 {
            h.saturating_record(v * 1000);
        }
        let s = spectrum(&h);
        assert!(s.windows(2).all(|w| w[0].0 <= w[1].0 && w[0].1 <= w[1].1));
        assert_eq!(s[0].0, 0.0);
        assert!((s.last().unwrap().1 - 10.0).abs() < 0.02);
        assert!(s.last().unwrap().0 <= 6.0);
    }

    #[test]
    fn an_empty_chart_says_no_data() {
        let html = RunChart {
            id: "errors",
            title: "Errors",
            x: XAxis::Seconds,
            y_label: "per second",
            counts: true,
            series: vec![Series::line("errors/s", vec![(0.0, f64::NAN)])],
        }
        .html();
        assert!(html.contains(">no data</text>"));
        assert!(!html.contains("class=\"tick\""));
    }

    #[test]
    fn counts_get_whole_ticks_from_zero() {
        let html = RunChart {
            id: "connections",
            title: "Connections",
            x: XAxis::Seconds,
            y_label: "connections",
            counts: true,
            series: vec![Series::line("open", vec![(1.0, 1.0), (2.0, 2.0)])],
        }
        .html();
        for t in [">0<", ">1<", ">2<"] {
            assert!(html.contains(t), "tick {t}");
        }
        assert!(!html.contains(">0.5<"));
        assert!(html.contains("class=\"legend-text\""));
    }
}
