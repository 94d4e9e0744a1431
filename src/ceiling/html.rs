//! The HTML report of a ceiling search (`wsherd ceiling ... --html FILE`): one
//! self-contained page that shows where the target's knee is, so a reader can judge
//! the ceiling from a picture rather than from the verdict sentence alone.
//!
//! It draws latency against load (p50 and p99 per step, passing and failing steps
//! told apart, the SLO's latency limits, the ceiling and the first failing level),
//! the throughput achieved at each level, and the step table, then the whole run's
//! report underneath (the run report's own body, `crate::report::html::body`).
//! Like the run report it uses inline CSS and SVG only, no script and no network,
//! and is rendered from `CeilingResults` alone, so a saved search draws again.

use crate::report::html::{
    self as run_html, esc, kv_table, nice_step, page_start, BOTTOM, COLORS, H, LEFT, RIGHT, TOP, W,
};
use crate::results::ceiling::{outcome, CeilingResults, Step};
use crate::vocab::fmt::fmt_us;
use crate::vocab::fmt::group;
use std::fmt::Write;

/// The plot area's size inside a chart.
const PW: f64 = W - LEFT - RIGHT;
const PH: f64 = H - TOP - BOTTOM;

/// Red for failures and limits, green for the ceiling (GitHub's, as the run
/// report's `.bad` and `.ok`).
const RED: &str = "#cf222e";
const GREEN: &str = "#1a7f37";
const GREY: &str = "#6e7781";

const EXTRA_CSS: &str = r#"
.verdict{font-size:1.2em;font-weight:600;margin:12px 0;padding:10px 14px;border-left:5px solid #0072B2;background:#f6f8fa}
.verdict.found{border-left-color:#1a7f37}.verdict.failed{border-left-color:#cf222e}
.warn{margin:12px 0;padding:10px 14px;border:2px solid #bf8700;border-radius:6px;background:#fff8c5;color:#1b1f24}
.warn strong{color:#9a6700}
.table-wrap{overflow-x:auto}table.steps{font-size:.85em}
table.steps th,table.steps td{padding:3px 5px;white-space:nowrap}table.steps thead th{white-space:normal}
table.steps td.reasons,table.steps thead th.reasons{text-align:left;white-space:normal;min-width:160px}
table.steps tr.fail{background:#fff5f5}
svg .slo-label,svg .vline-label{font-size:12px}
"#;

/// A number with at most `decimals` decimals, trailing zeros dropped.
fn trim_num(v: f64, decimals: usize) -> String {
    let s = format!("{v:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// A level in SI form, for ticks: 500, 1k, 20k, 1.5M.
fn si(v: f64) -> String {
    let a = v.abs();
    let (div, suffix) = if a >= 1e9 {
        (1e9, "G")
    } else if a >= 1e6 {
        (1e6, "M")
    } else if a >= 1e3 {
        (1e3, "k")
    } else {
        (1.0, "")
    };
    let decimals = if a > 0.0 && a < 1.0 { 3 } else { 2 };
    let n = trim_num(v / div, decimals);
    if n == "-0" {
        return "0".into();
    }
    format!("{n}{suffix}")
}

/// A level in full for text: 20,000 or 1,234 (rounded from 100 up), 12.5 below.
fn level_text(v: f64) -> String {
    if v.is_finite() && v >= 0.0 && (v >= 100.0 || v.fract() == 0.0) {
        group(v.round() as u64)
    } else {
        trim_num(v, 2)
    }
}

/// Milliseconds for a tick on the latency axis: 0.5 ms, 20 ms, 1,000 ms.
fn ms_tick(v: f64) -> String {
    if v >= 1000.0 {
        format!("{} ms", group(v.round() as u64))
    } else {
        format!("{} ms", trim_num(v, 3))
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

#[derive(Clone, Copy, PartialEq, Debug)]
enum Scale {
    Linear,
    Log,
}

impl Scale {
    fn name(self) -> &'static str {
        match self {
            Scale::Linear => "linear",
            Scale::Log => "log",
        }
    }
}

/// One axis of a chart: its scale and the range it shows (in data units).
#[derive(Debug)]
struct Axis {
    scale: Scale,
    lo: f64,
    hi: f64,
}

impl Axis {
    /// An axis over `values` (finite; positive on a log scale), padded so that
    /// markers at the ends sit inside the plot. `from_zero`: a linear axis starts
    /// at 0.
    fn over(scale: Scale, values: &[f64], from_zero: bool) -> Axis {
        let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        match scale {
            Scale::Log => {
                let (lo, hi) = if lo.is_finite() && lo > 0.0 {
                    (lo, hi)
                } else {
                    (1.0, 100.0)
                };
                let pad = ((hi / lo).ln() * 0.05).max(0.15);
                Axis {
                    scale,
                    lo: lo * (-pad).exp(),
                    hi: hi * pad.exp(),
                }
            }
            Scale::Linear => {
                let (lo, hi) = if lo.is_finite() { (lo, hi) } else { (0.0, 1.0) };
                if from_zero {
                    let hi = if hi > 0.0 { hi * 1.08 } else { 1.0 };
                    return Axis { scale, lo: 0.0, hi };
                }
                let span = if hi > lo {
                    hi - lo
                } else {
                    hi.abs().max(1.0) * 0.2
                };
                let pad = span * 0.06;
                let low = if lo >= 0.0 {
                    (lo - pad).max(0.0)
                } else {
                    lo - pad
                };
                Axis {
                    scale,
                    lo: low,
                    hi: hi + pad,
                }
            }
        }
    }

    /// Where `v` falls along the axis, 0 (low end) to 1 (high end).
    fn frac(&self, v: f64) -> f64 {
        let f = match self.scale {
            Scale::Linear => (v - self.lo) / (self.hi - self.lo),
            Scale::Log => (v.max(self.lo).ln() - self.lo.ln()) / (self.hi.ln() - self.lo.ln()),
        };
        if f.is_finite() {
            f.clamp(0.0, 1.0)
        } else {
            0.0
        }
    }

    /// Tick values: nice steps on a linear axis; 1, 2, 5 (or every digit on a
    /// short range, or only powers of ten on a long one) times powers of ten on a
    /// log axis.
    fn ticks(&self) -> Vec<f64> {
        let mut v = Vec::new();
        match self.scale {
            Scale::Linear => {
                let step = nice_step(self.hi - self.lo, 6.0);
                let mut t = (self.lo / step).ceil() * step;
                while t <= self.hi + step * 1e-9 {
                    v.push(if t.abs() < step * 1e-9 { 0.0 } else { t });
                    t += step;
                }
            }
            Scale::Log => {
                let decades = (self.hi / self.lo).log10();
                let e0 = self.lo.log10().floor() as i32;
                let e1 = self.hi.log10().ceil() as i32;
                let within = |mults: &[f64]| -> Vec<f64> {
                    let mut out = Vec::new();
                    for e in e0..=e1 {
                        for m in mults {
                            let t = m * 10f64.powi(e);
                            if t >= self.lo && t <= self.hi {
                                out.push(t);
                            }
                        }
                    }
                    out
                };
                v = within(if decades > 5.0 {
                    &[1.0]
                } else {
                    &[1.0, 2.0, 5.0]
                });
                if v.len() < 2 {
                    v = within(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]);
                }
            }
        }
        v
    }
}

/// A chart's two axes and the mapping from data to SVG coordinates.
struct Frame {
    x: Axis,
    y: Axis,
}

impl Frame {
    fn px(&self, v: f64) -> f64 {
        LEFT + self.x.frac(v) * PW
    }

    fn py(&self, v: f64) -> f64 {
        TOP + PH - self.y.frac(v) * PH
    }

    /// Grid lines, tick labels and axis labels.
    fn axes(
        &self,
        o: &mut String,
        x_label: &str,
        y_label: &str,
        x_fmt: fn(f64) -> String,
        y_fmt: fn(f64) -> String,
    ) {
        let _ = writeln!(o, "<g class=\"axis y-axis\">");
        for t in self.y.ticks() {
            let y = self.py(t);
            let _ = writeln!(
                o,
                "<line class=\"grid\" x1=\"{LEFT}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\"/><text class=\"tick\" x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
                LEFT + PW,
                LEFT - 8.0,
                y + 4.0,
                esc(&y_fmt(t))
            );
        }
        let _ = writeln!(
            o,
            "<text class=\"label\" transform=\"translate(18,{:.1}) rotate(-90)\" text-anchor=\"middle\">{}</text></g>",
            TOP + PH / 2.0,
            esc(y_label)
        );
        let _ = writeln!(o, "<g class=\"axis x-axis\">");
        for t in self.x.ticks() {
            let x = self.px(t);
            let _ = writeln!(
                o,
                "<line class=\"grid\" x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"{TOP}\" y2=\"{}\"/><text class=\"tick\" x=\"{x:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
                TOP + PH,
                TOP + PH + 18.0,
                esc(&x_fmt(t))
            );
        }
        let _ = writeln!(
            o,
            "<text class=\"label\" x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text></g>",
            LEFT + PW / 2.0,
            H - 10.0,
            esc(x_label)
        );
    }
}

/// Opens a chart: its heading, the `<svg>` and the plot's background.
fn chart_open(o: &mut String, id: &str, title: &str, x_scale: Option<Scale>) {
    let _ = writeln!(o, "<section class=\"chart-box\"><h3>{}</h3>", esc(title));
    let scale = x_scale
        .map(|s| format!(" data-x-scale=\"{}\"", s.name()))
        .unwrap_or_default();
    let _ = writeln!(
        o,
        "<svg class=\"chart\" id=\"{id}\"{scale} viewBox=\"0 0 {W} {H}\" width=\"{W}\" height=\"{H}\" role=\"img\" aria-label=\"{}\" xmlns=\"http://www.w3.org/2000/svg\">",
        esc(title)
    );
    let _ = writeln!(
        o,
        "<rect class=\"plot\" x=\"{LEFT}\" y=\"{TOP}\" width=\"{PW}\" height=\"{PH}\"/>"
    );
}

fn chart_close(o: &mut String) {
    o.push_str("</svg></section>\n");
}

fn no_data(o: &mut String, why: &str) {
    let _ = writeln!(
        o,
        "<text class=\"nodata\" x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
        LEFT + PW / 2.0,
        TOP + PH / 2.0,
        esc(why)
    );
}

#[derive(Clone, Copy)]
enum Shape {
    Circle,
    Square,
}

/// A step's marker: filled in the series' colour when the step passed, hollow
/// with a red outline when it failed. Hovering shows `tip`.
fn marker(
    o: &mut String,
    series: &str,
    shape: Shape,
    color: &str,
    passed: bool,
    (x, y): (f64, f64),
    tip: &str,
) {
    let (fill, stroke, width) = if passed {
        (color, color, 1.0)
    } else {
        ("#fff", RED, 2.0)
    };
    let common = format!(
        "class=\"marker\" data-series=\"{}\" data-passed=\"{passed}\" fill=\"{fill}\" stroke=\"{stroke}\" stroke-width=\"{width}\"",
        esc(series)
    );
    let tip = if tip.is_empty() {
        String::new()
    } else {
        format!("<title>{}</title>", esc(tip))
    };
    match shape {
        Shape::Circle => {
            let _ = writeln!(
                o,
                "<circle {common} cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"4.5\">{tip}</circle>"
            );
        }
        Shape::Square => {
            let _ = writeln!(
                o,
                "<rect {common} x=\"{:.1}\" y=\"{:.1}\" width=\"8\" height=\"8\">{tip}</rect>",
                x - 4.0,
                y - 4.0
            );
        }
    }
}

/// A line through the markers of a series, in order of level.
fn polyline(o: &mut String, series: &str, color: &str, pts: &[(f64, f64)], dashed: bool) {
    let mut p = String::new();
    for (x, y) in pts {
        let _ = write!(p, "{x:.1},{y:.1} ");
    }
    let dash = if dashed {
        " stroke-dasharray=\"6 4\""
    } else {
        ""
    };
    let _ = writeln!(
        o,
        "<polyline class=\"series\" data-series=\"{}\" data-points=\"{}\" fill=\"none\" stroke=\"{color}\" stroke-width=\"1.5\"{dash} points=\"{}\"/>",
        esc(series),
        pts.len(),
        p.trim_end()
    );
}

/// Text drawn over lines and markers keeps a white outline, to stay legible.
const HALO: &str =
    "paint-order=\"stroke\" stroke=\"#fff\" stroke-width=\"3\" stroke-linejoin=\"round\"";

/// The ceiling (solid green) and the first failing level (dashed red) as
/// vertical lines across the plot, each labelled along its line from the top:
/// the ceiling on its left, the first failing level on its right (as they lie
/// on the axis), so the two labels never cross.
fn level_lines(o: &mut String, f: &Frame, c: &CeilingResults) {
    let lines = [
        (c.ceiling, "ceiling-line", "ceiling", GREEN, false, true),
        (
            c.first_failing,
            "first-failing-line",
            "first failing",
            RED,
            true,
            false,
        ),
    ];
    for (level, class, what, color, dashed, left) in lines {
        let Some(level) = level.filter(|l| l.is_finite()) else {
            continue;
        };
        let x = f.px(level);
        let dash = if dashed {
            " stroke-dasharray=\"6 4\""
        } else {
            ""
        };
        let label = format!("{what} {} {}", level_text(level), c.unit);
        let _ = writeln!(
            o,
            "<line class=\"{class}\" data-level=\"{level}\" x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"{TOP}\" y2=\"{}\" stroke=\"{color}\" stroke-width=\"2\"{dash}/>",
            TOP + PH
        );
        // Turned to run up the line; the glyphs rise to the left of the baseline.
        let left = if left { x - 16.0 >= LEFT } else { x + 16.0 > W };
        let bx = if left { x - 4.0 } else { x + 15.0 };
        let _ = writeln!(
            o,
            "<text class=\"vline-label\" transform=\"translate({bx:.1},{}) rotate(-90)\" text-anchor=\"end\" fill=\"{color}\" {HALO}>{}</text>",
            TOP + 6.0,
            esc(&label)
        );
    }
}

/// One legend entry: a small sample of what is drawn, then its name.
enum Key<'a> {
    Marker(Shape, &'a str, bool),
    Line(&'a str, bool),
}

fn legend(o: &mut String, keys: &[(Key, &str)]) {
    let _ = writeln!(o, "<g class=\"legend\">");
    let y = TOP - 14.0;
    let mut x = LEFT + 10.0;
    for (key, name) in keys {
        match key {
            Key::Marker(shape, color, passed) => {
                let (fill, stroke) = if *passed {
                    (*color, *color)
                } else {
                    ("#fff", RED)
                };
                let _ = match shape {
                    Shape::Circle => writeln!(
                        o,
                        "<circle class=\"legend-marker\" cx=\"{:.1}\" cy=\"{y}\" r=\"4.5\" fill=\"{fill}\" stroke=\"{stroke}\" stroke-width=\"2\"/>",
                        x + 11.0
                    ),
                    Shape::Square => writeln!(
                        o,
                        "<rect class=\"legend-marker\" x=\"{:.1}\" y=\"{}\" width=\"8\" height=\"8\" fill=\"{fill}\" stroke=\"{stroke}\" stroke-width=\"2\"/>",
                        x + 7.0,
                        y - 4.0
                    ),
                };
            }
            Key::Line(color, dashed) => {
                let dash = if *dashed {
                    " stroke-dasharray=\"6 4\""
                } else {
                    ""
                };
                let _ = writeln!(
                    o,
                    "<line x1=\"{x:.1}\" x2=\"{:.1}\" y1=\"{y}\" y2=\"{y}\" stroke=\"{color}\" stroke-width=\"3\"{dash}/>",
                    x + 22.0
                );
            }
        }
        let _ = writeln!(
            o,
            "<text class=\"legend-text\" x=\"{:.1}\" y=\"{}\">{}</text>",
            x + 28.0,
            y + 4.0,
            esc(name)
        );
        x += 40.0 + 7.5 * name.chars().count() as f64;
    }
    let _ = writeln!(o, "</g>");
}

/// The steps in order of level (measured order among equal levels).
fn by_level(c: &CeilingResults) -> Vec<&Step> {
    let mut v: Vec<&Step> = c.steps.iter().collect();
    v.sort_by(|a, b| a.level.total_cmp(&b.level));
    v
}

/// The levels a chart's x axis must show: every step's, the ceiling and the
/// first failing level; log scale when they span a factor of 10 or more.
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
    Some(Axis::over(scale, &levels, false))
}

/// The SLO's round-trip latency limits: (expression, limit in µs).
fn latency_limits(c: &CeilingResults) -> Vec<(String, f64)> {
    c.slo
        .iter()
        .filter_map(|e| crate::thresholds::parse(e).ok())
        .filter(|t| t.metric.name.starts_with("rtt.") && t.limit > 0.0 && t.limit.is_finite())
        .map(|t| (t.expr, t.limit))
        .collect()
}

/// Hover text of a step's marker.
fn tip(c: &CeilingResults, s: &Step, what: &str) -> String {
    format!(
        "step {}: {} {}{}, {what}, {}",
        s.index,
        level_text(s.level),
        c.unit,
        if s.confirm { " (confirm)" } else { "" },
        if s.passed { "PASS" } else { "FAIL" }
    )
}

/// The knee: p50 and p99 round-trip latency (log scale) against the level.
fn knee_chart(o: &mut String, c: &CeilingResults) {
    let title = format!("Latency against load ({})", c.unit);
    let Some(x) = level_axis(c) else {
        chart_open(o, "knee", &title, None);
        no_data(o, "no steps measured");
        chart_close(o);
        return;
    };
    chart_open(o, "knee", &title, Some(x.scale));
    let steps = by_level(c);
    type Pick = fn(&Step) -> f64;
    let series: [(&str, Pick, &str, Shape); 2] = [
        ("p50", |s| s.rtt_p50_us, COLORS[0], Shape::Circle),
        ("p99", |s| s.rtt_p99_us, COLORS[2], Shape::Square),
    ];
    // A step with no round trips has no latency: no point (its row says so).
    let has = |s: &Step, v: f64| s.rtt_count > 0 && v > 0.0 && v.is_finite();
    let limits = latency_limits(c);
    let mut ys: Vec<f64> = steps
        .iter()
        .flat_map(|s| series.iter().map(move |(_, pick, _, _)| (s, pick(s))))
        .filter(|(s, v)| has(s, *v))
        .map(|(_, v)| v / 1000.0)
        .collect();
    let measured = !ys.is_empty();
    ys.extend(limits.iter().map(|(_, l)| l / 1000.0));
    let f = Frame {
        x,
        y: Axis::over(Scale::Log, &ys, false),
    };
    f.axes(
        o,
        &format!("level ({}){}", c.unit, log_note(f.x.scale)),
        "round-trip latency (ms, log scale)",
        si,
        ms_tick,
    );
    if !measured {
        no_data(o, "no round trips measured");
    }
    // The SLO's latency limits, labelled at the left end (low load: the points
    // lie far below there).
    for (expr, limit) in &limits {
        let y = f.py(limit / 1000.0);
        let _ = writeln!(
            o,
            "<line class=\"slo\" data-slo=\"{}\" x1=\"{LEFT}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"{RED}\" stroke-width=\"1.5\" stroke-dasharray=\"8 5\"/><text class=\"slo-label\" x=\"{}\" y=\"{:.1}\" fill=\"{RED}\" {HALO}>{}</text>",
            esc(expr),
            LEFT + PW,
            LEFT + 6.0,
            y - 5.0,
            esc(expr)
        );
    }
    level_lines(o, &f, c);
    for (name, pick, color, shape) in &series {
        let pts: Vec<(&Step, (f64, f64))> = steps
            .iter()
            .filter(|s| has(s, pick(s)))
            .map(|s| (*s, (f.px(s.level), f.py(pick(s) / 1000.0))))
            .collect();
        let line: Vec<(f64, f64)> = pts.iter().map(|p| p.1).collect();
        polyline(o, name, color, &line, false);
        for (s, p) in &pts {
            let what = format!("{name} {}", fmt_us(pick(s)));
            marker(o, name, *shape, color, s.passed, *p, &tip(c, s, &what));
        }
    }
    let mut keys = vec![
        (Key::Marker(Shape::Circle, COLORS[0], true), "p50"),
        (Key::Marker(Shape::Square, COLORS[2], true), "p99"),
        (Key::Marker(Shape::Circle, RED, false), "failing step"),
    ];
    if !limits.is_empty() {
        keys.push((Key::Line(RED, true), "SLO limit"));
    }
    legend(o, &keys);
    chart_close(o);
}

fn log_note(s: Scale) -> &'static str {
    match s {
        Scale::Log => ", log scale",
        Scale::Linear => "",
    }
}

/// What each step achieved against the level asked for, with the ideal y = level.
fn achieved_chart(o: &mut String, c: &CeilingResults) {
    type Pick = fn(&Step) -> Option<f64>;
    let (title, y_label, name, pick, ideal): (&str, &str, &str, Pick, bool) =
        match c.dimension.as_str() {
            "connections" => (
                "Connections held against connections asked for",
                "connections open (lowest in the step)",
                "open (lowest)",
                |s| Some(s.open_min as f64),
                true,
            ),
            "sessions" => (
                "Sessions completed against the session rate asked for",
                "sessions per second",
                "sessions/s",
                |s| s.sessions_per_sec,
                true,
            ),
            "rate" => (
                "Throughput achieved against the rate asked for",
                "messages received per second",
                "received/s",
                |s| Some(s.received_per_sec),
                true,
            ),
            _ => (
                "Throughput at each level",
                "messages received per second",
                "received/s",
                |s| Some(s.received_per_sec),
                false,
            ),
        };
    let Some(x) = level_axis(c) else {
        chart_open(o, "achieved", title, None);
        no_data(o, "no steps measured");
        chart_close(o);
        return;
    };
    chart_open(o, "achieved", title, Some(x.scale));
    let steps = by_level(c);
    let got: Vec<(&Step, f64)> = steps
        .iter()
        .filter_map(|s| pick(s).filter(|v| v.is_finite()).map(|v| (*s, v)))
        .collect();
    let mut ys: Vec<f64> = got.iter().map(|p| p.1).collect();
    if ideal {
        // The diagonal runs to the x axis's end.
        ys.push(x.hi);
    }
    let f = Frame {
        x,
        y: Axis::over(Scale::Linear, &ys, true),
    };
    f.axes(
        o,
        &format!("level ({}){}", c.unit, log_note(f.x.scale)),
        y_label,
        si,
        si,
    );
    if ideal {
        // y = level, sampled along the x axis (a curve when x is on a log scale).
        let n = 64;
        let pts: Vec<(f64, f64)> = (0..=n)
            .map(|i| {
                let t = i as f64 / n as f64;
                let v = match f.x.scale {
                    Scale::Linear => f.x.lo + t * (f.x.hi - f.x.lo),
                    Scale::Log => f.x.lo * (f.x.hi / f.x.lo).powf(t),
                };
                (f.px(v), f.py(v))
            })
            .collect();
        polyline(o, "ideal", GREY, &pts, true);
    }
    level_lines(o, &f, c);
    let line: Vec<(f64, f64)> = got.iter().map(|(s, v)| (f.px(s.level), f.py(*v))).collect();
    polyline(o, name, COLORS[0], &line, false);
    for ((s, v), p) in got.iter().zip(&line) {
        let what = format!("{name} {}", level_text(*v));
        marker(
            o,
            name,
            Shape::Circle,
            COLORS[0],
            s.passed,
            *p,
            &tip(c, s, &what),
        );
    }
    let mut keys = vec![
        (Key::Marker(Shape::Circle, COLORS[0], true), name),
        (Key::Marker(Shape::Circle, RED, false), "failing step"),
    ];
    if ideal {
        keys.push((Key::Line(GREY, true), "ideal (= level)"));
    }
    legend(o, &keys);
    chart_close(o);
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
    let _ = writeln!(
        o,
        "<h1>wsherd {} ceiling search</h1>",
        esc(&r.wsherd_version)
    );
    let _ = writeln!(
        o,
        "<p class=\"sub\">{} against {}{} &middot; {} workload &middot; SLO {}</p>",
        esc(&c.dimension),
        esc(&targets),
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
    if c.client_limited {
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

    o.push_str("<h2>The search</h2>\n");
    let opt_level = |v: Option<f64>| {
        v.map(|l| format!("{} {}", level_text(l), esc(&c.unit)))
            .unwrap_or_else(|| "none".into())
    };
    let mut rows = vec![
        ("dimension", esc(&c.dimension)),
        ("unit", esc(&c.unit)),
        (
            "SLO",
            if c.slo.is_empty() {
                "none".into()
            } else {
                c.slo
                    .iter()
                    .map(|e| esc(e))
                    .collect::<Vec<_>>()
                    .join("<br>")
            },
        ),
        ("start", format!("{} {}", level_text(c.start), esc(&c.unit))),
        (
            "max",
            format!(
                "{} {}{}",
                level_text(c.max),
                esc(&c.unit),
                c.max_reason
                    .as_deref()
                    .map(|w| format!(" ({})", esc(w)))
                    .unwrap_or_default()
            ),
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
    kv_table(&mut o, &rows);

    o.push_str("<h2>The knee</h2>\n<p class=\"note\">One point per measured step, confirmations included; filled when the step held the SLO, hollow with a red outline when it failed.</p>\n");
    knee_chart(&mut o, c);
    achieved_chart(&mut o, c);

    o.push_str("<h2>Steps</h2>\n");
    step_table(&mut o, c);
    slo_table(&mut o, c);

    o.push_str("<h2 id=\"run\">The whole run</h2>\n<p class=\"note\">Every step together, as one run: the counters, the ledger and latencies over all steps.</p>\n");
    run_html::body(&mut o, r);
    o.push_str("</body></html>\n");
    o
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
        assert_eq!(si(1000.0), "1k");
        assert_eq!(si(20_000.0), "20k");
        assert_eq!(si(1_500_000.0), "1.5M");
        assert_eq!(si(500.0), "500");
        assert_eq!(si(0.0), "0");
        assert_eq!(level_text(20_000.0), "20,000");
        assert_eq!(level_text(12.5), "12.5");
        assert_eq!(pct(0.0125), "1.25%");
        assert_eq!(pct(0.0), "0%");
        assert_eq!(ms_tick(0.5), "0.5 ms");
    }

    #[test]
    fn log_ticks_cover_the_range() {
        let a = Axis::over(Scale::Log, &[1000.0, 64_000.0], false);
        let t = a.ticks();
        assert!(t.contains(&1000.0) && t.contains(&50_000.0), "{t:?}");
        assert!(t.iter().all(|v| *v >= a.lo && *v <= a.hi));
        let short = Axis::over(Scale::Log, &[5.0, 6.0], false);
        assert!(short.ticks().len() >= 2, "{:?}", short.ticks());
    }
}
