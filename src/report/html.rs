//! The HTML report: one self-contained file people open in a browser to judge a
//! run from pictures, and attach to a ticket. Inline CSS and inline SVG drawn here
//! in Rust, no script and no network fetch, so it renders the same offline, years
//! later, and in a sandboxed viewer.
//!
//! It shows what the text summary says (as tables, with the text itself folded
//! underneath), the latency percentile spectrum on HdrHistogram's `1/(1-p)` axis,
//! the per-second series (latency percentiles, throughput, open connections,
//! errors), and the run's configuration and host. Everything comes from
//! `RunResults`, so `wsherd report RESULTS.json --html` draws a saved run.

use crate::results::{LatencyStats, RunResults};
use crate::vocab::fmt::{fmt_us, group};
use crate::vocab::hist::decode_histogram;
use hdrhistogram::Histogram;
use std::fmt::Write;

/// Escapes text for HTML content and attribute values.
pub(crate) fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// Colours that stay apart for common colour blindness (Okabe–Ito).
pub(crate) const COLORS: [&str; 6] = [
    "#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9",
];

/// One line of a chart.
struct Series {
    name: String,
    points: Vec<(f64, f64)>,
    dashed: bool,
}

impl Series {
    fn new(name: &str, points: Vec<(f64, f64)>) -> Series {
        Series {
            name: name.to_string(),
            points,
            dashed: false,
        }
    }
}

#[derive(Clone, Copy, PartialEq)]
enum XAxis {
    /// Seconds since the start of the run.
    Seconds,
    /// Percentile on HdrHistogram's log scale: x = log10(1/(1-p)), 0..6.
    Percentile,
}

struct Chart<'a> {
    id: &'a str,
    title: &'a str,
    x: XAxis,
    y_label: &'a str,
    /// The y values are counts: whole-number ticks only.
    counts: bool,
    series: Vec<Series>,
}

pub(crate) const W: f64 = 1000.0;
pub(crate) const H: f64 = 330.0;
pub(crate) const LEFT: f64 = 80.0;
pub(crate) const RIGHT: f64 = 45.0;
pub(crate) const TOP: f64 = 40.0;
pub(crate) const BOTTOM: f64 = 55.0;

/// A "nice" step (1, 2 or 5 times a power of ten) giving about `n` ticks.
pub(crate) fn nice_step(range: f64, n: f64) -> f64 {
    if range <= 0.0 || !range.is_finite() {
        return 1.0;
    }
    let raw = range / n;
    let mag = 10f64.powf(raw.log10().floor());
    let f = raw / mag;
    let m = if f <= 1.0 {
        1.0
    } else if f <= 2.0 {
        2.0
    } else if f <= 5.0 {
        5.0
    } else {
        10.0
    };
    m * mag
}

/// A tick label without trailing zeros, grouped when large.
fn tick_label(v: f64, step: f64) -> String {
    if v.abs() >= 1000.0 && step >= 1.0 {
        let s = group(v.abs().round() as u64);
        return if v < 0.0 { format!("-{s}") } else { s };
    }
    let decimals = if step >= 1.0 {
        0
    } else {
        (-step.log10().floor()) as usize
    };
    format!("{v:.decimals$}")
}

const PERCENTILE_TICKS: [&str; 7] = ["0%", "90%", "99%", "99.9%", "99.99%", "99.999%", "99.9999%"];

impl Chart<'_> {
    fn svg(&self, o: &mut String) {
        let _ = writeln!(
            o,
            "<section class=\"chart-box\"><h3>{}</h3>",
            esc(self.title)
        );
        let points: Vec<(f64, f64)> = self
            .series
            .iter()
            .flat_map(|s| s.points.iter().copied())
            .filter(|(x, y)| x.is_finite() && y.is_finite())
            .collect();
        let _ = writeln!(
            o,
            "<svg class=\"chart\" id=\"{}\" viewBox=\"0 0 {W} {H}\" width=\"{W}\" height=\"{H}\" role=\"img\" aria-label=\"{}\" xmlns=\"http://www.w3.org/2000/svg\">",
            self.id,
            esc(self.title)
        );
        let (pw, ph) = (W - LEFT - RIGHT, H - TOP - BOTTOM);
        let _ = writeln!(
            o,
            "<rect class=\"plot\" x=\"{LEFT}\" y=\"{TOP}\" width=\"{pw}\" height=\"{ph}\"/>"
        );
        if points.is_empty() {
            let _ = writeln!(
                o,
                "<text class=\"nodata\" x=\"{}\" y=\"{}\" text-anchor=\"middle\">no data</text></svg></section>",
                LEFT + pw / 2.0,
                TOP + ph / 2.0
            );
            return;
        }
        // Ranges: y from 0; x over the data (or the whole percentile range).
        let (x0, x1) = match self.x {
            XAxis::Percentile => (0.0, 6.0),
            XAxis::Seconds => {
                let lo = points.iter().map(|p| p.0).fold(f64::INFINITY, f64::min);
                let hi = points.iter().map(|p| p.0).fold(f64::NEG_INFINITY, f64::max);
                if hi > lo {
                    (lo.min(0.0), hi)
                } else {
                    (lo.min(0.0), lo.max(0.0) + 1.0)
                }
            }
        };
        let ymax = points.iter().map(|p| p.1).fold(0.0, f64::max);
        let mut ystep = nice_step(if ymax > 0.0 { ymax } else { 1.0 }, 5.0);
        if self.counts {
            ystep = ystep.max(1.0);
        }
        let y1 = ((ymax / ystep).ceil() * ystep).max(ystep);
        let sx = |x: f64| LEFT + (x.clamp(x0, x1) - x0) / (x1 - x0) * pw;
        let sy = |y: f64| TOP + ph - (y.clamp(0.0, y1) / y1) * ph;

        // Y grid and labels.
        let _ = writeln!(o, "<g class=\"axis y-axis\">");
        let mut v = 0.0;
        while v <= y1 + ystep / 2.0 {
            let y = sy(v);
            let _ = writeln!(
                o,
                "<line class=\"grid\" x1=\"{LEFT}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\"/><text class=\"tick\" x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
                LEFT + pw,
                LEFT - 8.0,
                y + 4.0,
                tick_label(v, ystep)
            );
            v += ystep;
        }
        let _ = writeln!(
            o,
            "<text class=\"label\" transform=\"translate(18,{:.1}) rotate(-90)\" text-anchor=\"middle\">{}</text></g>",
            TOP + ph / 2.0,
            esc(self.y_label)
        );
        // X grid and labels.
        let _ = writeln!(o, "<g class=\"axis x-axis\">");
        let xticks: Vec<(f64, String)> = match self.x {
            XAxis::Percentile => PERCENTILE_TICKS
                .iter()
                .enumerate()
                .map(|(i, l)| (i as f64, l.to_string()))
                .collect(),
            XAxis::Seconds => {
                let step = nice_step(x1 - x0, 10.0).max(1.0);
                let mut t = (x0 / step).ceil() * step;
                let mut v = Vec::new();
                while t <= x1 + 1e-9 {
                    v.push((t, tick_label(t, step)));
                    t += step;
                }
                v
            }
        };
        for (x, label) in &xticks {
            let px = sx(*x);
            let _ = writeln!(
                o,
                "<line class=\"grid\" x1=\"{px:.1}\" x2=\"{px:.1}\" y1=\"{TOP}\" y2=\"{}\"/><text class=\"tick\" x=\"{px:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
                TOP + ph,
                TOP + ph + 18.0,
                esc(label)
            );
        }
        let x_label = match self.x {
            XAxis::Percentile => "percentile (log scale: 1/(1−p))",
            XAxis::Seconds => "time since start (s)",
        };
        let _ = writeln!(
            o,
            "<text class=\"label\" x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{x_label}</text></g>",
            LEFT + pw / 2.0,
            H - 10.0
        );
        // The lines.
        for (i, s) in self.series.iter().enumerate() {
            let color = COLORS[i % COLORS.len()];
            let mut pts = String::new();
            for &(x, y) in s
                .points
                .iter()
                .filter(|(x, y)| x.is_finite() && y.is_finite())
            {
                let _ = write!(pts, "{:.1},{:.1} ", sx(x), sy(y));
            }
            let dash = if s.dashed {
                " stroke-dasharray=\"6 4\""
            } else {
                ""
            };
            let _ = writeln!(
                o,
                "<polyline class=\"series\" data-series=\"{}\" data-points=\"{}\" fill=\"none\" stroke=\"{color}\" stroke-width=\"2\"{dash} points=\"{}\"/>",
                esc(&s.name),
                s.points.len(),
                pts.trim_end()
            );
            if s.points.len() == 1 {
                let (x, y) = s.points[0];
                let _ = writeln!(
                    o,
                    "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{color}\"/>",
                    sx(x),
                    sy(y)
                );
            }
        }
        // Legend, top left inside the plot.
        let _ = writeln!(o, "<g class=\"legend\">");
        let mut lx = LEFT + 10.0;
        for (i, s) in self.series.iter().enumerate() {
            let color = COLORS[i % COLORS.len()];
            let dash = if s.dashed {
                " stroke-dasharray=\"6 4\""
            } else {
                ""
            };
            let _ = writeln!(
                o,
                "<line x1=\"{lx:.1}\" x2=\"{:.1}\" y1=\"{}\" y2=\"{}\" stroke=\"{color}\" stroke-width=\"3\"{dash}/><text class=\"legend-text\" x=\"{:.1}\" y=\"{}\">{}</text>",
                lx + 22.0,
                TOP - 14.0,
                TOP - 14.0,
                lx + 28.0,
                TOP - 10.0,
                esc(&s.name)
            );
            lx += 40.0 + 7.5 * s.name.chars().count() as f64;
        }
        let _ = writeln!(o, "</g></svg></section>");
    }
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

fn latency_row(o: &mut String, name: &str, l: &LatencyStats) {
    if l.count == 0 {
        table_row(
            o,
            &[
                esc(name),
                "no samples".into(),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
                "0".into(),
            ],
        );
        return;
    }
    table_row(
        o,
        &[
            esc(name),
            fmt_us(l.min_us),
            fmt_us(l.mean_us),
            fmt_us(l.p50_us),
            fmt_us(l.p90_us),
            fmt_us(l.p99_us),
            fmt_us(l.p999_us),
            fmt_us(l.max_us),
            group(l.count),
        ],
    );
}

pub(crate) fn kv_table(o: &mut String, rows: &[(&str, String)]) {
    o.push_str("<table class=\"kv\">\n");
    for (k, v) in rows {
        let _ = writeln!(o, "<tr><th>{}</th><td>{}</td></tr>", esc(k), v);
    }
    o.push_str("</table>\n");
}

fn causes(map: &std::collections::BTreeMap<String, u64>) -> String {
    if map.is_empty() {
        return "none".into();
    }
    map.iter()
        .map(|(k, v)| format!("{} {}", esc(k), group(*v)))
        .collect::<Vec<_>>()
        .join(", ")
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
svg.chart{display:block;max-width:100%;height:auto;font-size:13px}
svg .plot{fill:#fbfcfd;stroke:#d0d7de}svg .grid{stroke:#e4e8ec;stroke-width:1}
svg .tick{fill:#57606a;font-size:12px}svg .label{fill:#1b1f24;font-size:13px}
svg .legend-text{fill:#1b1f24;font-size:13px}svg .nodata{fill:#8c959f;font-size:16px}
pre{background:#f6f8fa;padding:12px;overflow-x:auto;font-size:12px}
.note{color:#57606a;font-size:.9em}
"#;

/// Writes the document's start, up to and including `<body>`: the title, the
/// report's CSS and `extra_css` after it (for pages built on this one).
pub(crate) fn page_start(o: &mut String, title: &str, extra_css: &str) {
    let _ = writeln!(
        o,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>{}</title>\n<style>{CSS}{extra_css}</style></head><body>",
        esc(title)
    );
}

/// Renders the whole report.
pub fn render(r: &RunResults) -> String {
    let c = &r.config;
    let mut o = String::with_capacity(64 * 1024);
    let title = format!(
        "wsherd report: {} workload, {}",
        c.workload,
        c.targets.join(" ")
    );
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

    // Summary.
    o.push_str("<h2>Summary</h2>\n<h3>Latency</h3>\n<table class=\"latency\"><thead><tr><th></th><th>min</th><th>mean</th><th>p50</th><th>p90</th><th>p99</th><th>p99.9</th><th>max</th><th>count</th></tr></thead><tbody>\n");
    let l = &r.latency;
    latency_row(o, "connect", &l.connect);
    latency_row(o, "handshake", &l.handshake);
    latency_row(o, "round trip", &l.rtt);
    if let Some(u) = &l.rtt_uncorrected {
        latency_row(o, "uncorrected", u);
    }
    if let Some(s) = &l.send_lag {
        latency_row(o, "send lag", s);
    }
    if let Some(d) = &l.delivery {
        latency_row(o, "delivery", d);
    }
    if let Some(s) = &r.sessions {
        latency_row(o, "session", &s.duration);
    }
    o.push_str("</tbody></table>\n");
    if l.rtt_uncorrected.is_some() {
        o.push_str("<p class=\"note\">Round trip is timed from each message's intended send time (coordinated omission corrected); uncorrected is timed from the actual send and hides stalls; send lag is how late the client sent against its schedule.</p>\n");
    }

    let m = &r.messages;
    o.push_str("<div class=\"grid2\"><div><h3>Throughput</h3>\n");
    kv_table(
        o,
        &[
            (
                "sent",
                format!(
                    "{} msgs, {:.0}/s, {} bytes",
                    group(m.sent),
                    m.sent_per_sec,
                    group(m.bytes_sent)
                ),
            ),
            (
                "received",
                format!(
                    "{} msgs, {:.0}/s, {} bytes",
                    group(m.received),
                    m.received_per_sec,
                    group(m.bytes_received)
                ),
            ),
            ("late sends (open loop)", group(m.late)),
            ("server pings answered", group(m.pings_answered)),
        ],
    );
    let k = &r.connections;
    o.push_str("</div><div><h3>Connections</h3>\n");
    kv_table(
        o,
        &[
            ("attempted", group(k.attempted)),
            ("established", group(k.established)),
            ("peak open", group(k.peak_open)),
            (
                "failed",
                format!("{} ({})", group(k.failed), causes(&k.failed_by_cause)),
            ),
            (
                "lost",
                format!("{} ({})", group(k.lost), causes(&k.lost_by_cause)),
            ),
            (
                "closed at the end",
                format!(
                    "{} clean, {} unanswered",
                    group(k.closed_clean),
                    group(k.closed_unanswered)
                ),
            ),
        ],
    );
    o.push_str("</div><div><h3>Ledger</h3>\n");
    let balanced = if m.ledger_balances() {
        "<span class=\"ok\">balanced</span>"
    } else {
        "<span class=\"bad\">DOES NOT BALANCE</span>"
    };
    let _ = writeln!(
        o,
        "<p>sent {} = received {} + failed {} + in flight at stop {} &nbsp;({balanced})<br>unexpected frames: {}</p>",
        group(m.sent),
        group(m.received),
        group(m.failed),
        group(m.in_flight_at_stop),
        group(m.unexpected)
    );
    if let Some(b) = &r.broadcast {
        let _ = writeln!(
            o,
            "<p>broadcast: {} publishers, {} receivers, published {}, expected {} = delivered {} + missing {} + undelivered at stop {}; duplicates {}, {:.0} deliveries/s</p>",
            group(b.publishers),
            group(b.receivers),
            group(b.published),
            group(b.expected),
            group(b.delivered),
            group(b.missing),
            group(b.undelivered_at_stop),
            group(b.duplicates),
            b.delivered_per_sec
        );
    }
    o.push_str("</div><div><h3>Errors</h3>\n");
    if r.errors.is_empty() {
        o.push_str("<p class=\"ok\">none</p>\n");
    } else {
        let rows: Vec<(&str, String)> = r
            .errors
            .iter()
            .map(|(k, v)| (k.as_str(), group(*v)))
            .collect();
        kv_table(o, &rows);
    }
    o.push_str("</div></div>\n");
    if let Some(mem) = &r.memory {
        o.push_str("<h3>Memory</h3>\n");
        kv_table(
            o,
            &[
                (
                    "RSS before connecting",
                    format!("{} KiB", group(mem.start_rss_kib)),
                ),
                (
                    "RSS with the most open",
                    format!(
                        "{} KiB ({} connections)",
                        group(mem.held_rss_kib),
                        group(mem.held_connections)
                    ),
                ),
                (
                    "per connection",
                    if mem.held_connections >= 1000 {
                        format!("{} bytes", group(mem.per_connection_bytes))
                    } else {
                        "not quoted below 1,000 held connections (the run's own growth dominates)"
                            .to_string()
                    },
                ),
                ("peak RSS", format!("{} KiB", group(mem.peak_rss_kib))),
                (
                    "kernel TCP buffers (peak, host-wide)",
                    format!("{} KiB", group(mem.kernel_tcp_peak_kib)),
                ),
            ],
        );
    }

    // Charts.
    o.push_str("<h2>Latency distribution</h2>\n");
    let mut rtt = vec![Series::new(
        if l.rtt_uncorrected.is_some() {
            "round trip (corrected)"
        } else {
            "round trip"
        },
        spectrum(&hist(&l.rtt)),
    )];
    if let Some(u) = &l.rtt_uncorrected {
        let mut s = Series::new("round trip (uncorrected)", spectrum(&hist(u)));
        s.dashed = true;
        rtt.push(s);
    }
    if let Some(d) = &l.delivery {
        rtt.push(Series::new("broadcast delivery", spectrum(&hist(d))));
    }
    Chart {
        id: "rtt-spectrum",
        title: "Round-trip latency by percentile",
        x: XAxis::Percentile,
        y_label: "latency (ms)",
        counts: false,
        series: rtt,
    }
    .svg(o);
    Chart {
        id: "connect-spectrum",
        title: "Connect and handshake latency by percentile",
        x: XAxis::Percentile,
        y_label: "latency (ms)",
        counts: false,
        series: vec![
            Series::new("connect (TCP)", spectrum(&hist(&l.connect))),
            Series::new("handshake (upgrade)", spectrum(&hist(&l.handshake))),
        ],
    }
    .svg(o);

    o.push_str("<h2>Over time</h2>\n<p class=\"note\">One point per second of the run, the drain after the stop included.</p>\n");
    let ser = &r.series;
    let pts = |f: &dyn Fn(&crate::results::SecondStats) -> f64| -> Vec<(f64, f64)> {
        ser.iter().map(|s| (s.t as f64, f(s))).collect()
    };
    // A second in which nothing came back has no latency: no point, not a zero.
    let lat = |f: &dyn Fn(&crate::results::SecondStats) -> f64| -> Vec<(f64, f64)> {
        ser.iter()
            .filter(|s| s.received > 0)
            .map(|s| (s.t as f64, f(s)))
            .collect()
    };
    Chart {
        id: "latency-over-time",
        title: "Round-trip latency percentiles per second",
        x: XAxis::Seconds,
        y_label: "latency (ms)",
        counts: false,
        series: vec![
            Series::new("p50", lat(&|s| s.rtt_p50_us / 1000.0)),
            Series::new("p90", lat(&|s| s.rtt_p90_us / 1000.0)),
            Series::new("p99", lat(&|s| s.rtt_p99_us / 1000.0)),
            Series::new("max", lat(&|s| s.rtt_max_us / 1000.0)),
        ],
    }
    .svg(o);
    Chart {
        id: "throughput",
        title: "Throughput",
        x: XAxis::Seconds,
        y_label: "messages per second",
        counts: true,
        series: vec![
            Series::new("sent/s", pts(&|s| s.sent as f64)),
            Series {
                dashed: true,
                ..Series::new("received/s", pts(&|s| s.received as f64))
            },
        ],
    }
    .svg(o);
    Chart {
        id: "connections",
        title: "Connections",
        x: XAxis::Seconds,
        y_label: "connections",
        counts: true,
        series: vec![
            Series::new("open", pts(&|s| s.open as f64)),
            Series::new("established per second", pts(&|s| s.connects as f64)),
        ],
    }
    .svg(o);
    Chart {
        id: "errors",
        title: "Errors",
        x: XAxis::Seconds,
        y_label: "per second",
        counts: true,
        series: vec![
            Series::new("errors/s", pts(&|s| s.errors as f64)),
            Series::new("connect failures/s", pts(&|s| s.connect_failures as f64)),
        ],
    }
    .svg(o);

    // Configuration and host.
    o.push_str("<div class=\"grid2\"><div><h2>Configuration</h2>\n");
    let mut rows = vec![
        ("targets", esc(&c.targets.join(" "))),
        ("workload", esc(&c.workload)),
        ("pacing", esc(&c.pacing)),
        (
            "rate",
            c.rate
                .map(|r| format!("{r:.0} msg/s"))
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
            "in flight per connection",
            if c.inflight == 0 {
                "no cap".to_string()
            } else {
                c.inflight.to_string()
            },
        ),
        ("shards", c.shards.to_string()),
    ];
    if !c.source_ips.is_empty() {
        rows.push(("source addresses", esc(&c.source_ips.join(" "))));
    }
    if let Some(w) = &r.warmup {
        rows.push(("warm-up", format!("{}s (measured apart)", w.secs)));
    }
    kv_table(o, &rows);
    let h = &r.host;
    o.push_str("</div><div><h2>Host</h2>\n");
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
    o.push_str("</div></div>\n");
    let _ = writeln!(
        o,
        "<details><summary>Text summary</summary><pre>{}</pre></details>",
        esc(&super::text::render(r))
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_nice() {
        assert_eq!(nice_step(10.0, 5.0), 2.0);
        assert_eq!(nice_step(0.9, 5.0), 0.2);
        assert_eq!(nice_step(130_000.0, 5.0), 50_000.0);
        assert_eq!(tick_label(0.4, 0.2), "0.4");
        assert_eq!(tick_label(150_000.0, 50_000.0), "150,000");
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
    fn text_is_escaped() {
        assert_eq!(
            esc("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
