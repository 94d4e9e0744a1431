//! The one place wsherd draws charts: every chart on every HTML page (the run
//! report's percentile spectra and per-second charts, the ceiling search's knee
//! and throughput charts) is an SVG string made here, from numbers, by pure
//! functions. No script, no network fetch, no state: the pages are offline files
//! with inline CSS and SVG, and [`CSS`] holds the rules these SVGs need.
//!
//! It exists so that axes, ticks, grids, legends and markers are written once:
//! the two pages drew them with two engines before, and each fix had to be made
//! twice. A chart is a frame of fixed size ([`W`] × [`H`], the plot inside the
//! margins), an x and a y [`Axis`] (linear or log, with their ticks and label),
//! [`Series`] (solid or dashed lines, optionally a marker per point, hollow and red
//! when the point failed), [`Rule`]s (horizontal or vertical lines with a label:
//! SLO limits, a ceiling, a first failing level) and a legend of [`Key`]s.
//!
//! This module knows numbers, not runs: it must never import `results`,
//! `ceiling` or anything above `report`. Pages turn their data into series here.

use super::markup::esc;
use super::markup::trim_num;
use crate::vocab::fmt::group;
use std::fmt::Write;

/// The chart's size (SVG units; pages scale it down to fit).
pub const W: f64 = 1000.0;
pub const H: f64 = 330.0;
/// Margins around the plot: tick labels and the y label on the left, the x
/// ticks and label below, the legend above.
pub const LEFT: f64 = 80.0;
pub const RIGHT: f64 = 45.0;
pub const TOP: f64 = 40.0;
pub const BOTTOM: f64 = 55.0;
/// The plot area inside the margins.
const PW: f64 = W - LEFT - RIGHT;
const PH: f64 = H - TOP - BOTTOM;

/// Colours that stay apart for common colour blindness (Okabe–Ito); series
/// without a colour of their own take them in order.
pub const COLORS: [&str; 6] = [
    "#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9",
];
/// Red for failures and limits, green for what held (GitHub's, as the pages'
/// `.bad` and `.ok`), grey for references such as an ideal line.
pub const RED: &str = "#cf222e";
pub const GREEN: &str = "#1a7f37";
pub const GREY: &str = "#6e7781";

/// The style rules of the charts, for the page's `<style>`.
pub const CSS: &str = r#"
svg.chart{display:block;max-width:100%;height:auto;font-size:13px}
svg .plot{fill:#fbfcfd;stroke:#d0d7de}svg .grid{stroke:#e4e8ec;stroke-width:1}
svg .tick{fill:#57606a;font-size:12px}svg .label{fill:#1b1f24;font-size:13px}
svg .legend-text{fill:#1b1f24;font-size:13px}svg .nodata{fill:#8c959f;font-size:16px}
svg .hline-label,svg .vline-label{font-size:12px}
"#;

/// Text drawn over lines and markers keeps a white outline, to stay legible.
const HALO: &str =
    "paint-order=\"stroke\" stroke=\"#fff\" stroke-width=\"3\" stroke-linejoin=\"round\"";

/// Dashes of a dashed series (and of its legend sample).
const DASH: &str = "6 4";

fn dash_attr(dash: Option<&str>) -> String {
    dash.map(|d| format!(" stroke-dasharray=\"{d}\""))
        .unwrap_or_default()
}

/// A "nice" step (1, 2 or 5 times a power of ten) giving about `n` ticks.
pub fn nice_step(range: f64, n: f64) -> f64 {
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

/// A tick label with the decimals `step` needs, grouped when large: 0.4, 150,000.
pub fn plain_tick(v: f64, step: f64) -> String {
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

/// A number in SI form, for ticks: 500, 1k, 20k, 1.5M.
pub fn si(v: f64) -> String {
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

/// Milliseconds for a tick: 0.5 ms, 20 ms, 1,000 ms.
pub fn ms_tick(v: f64) -> String {
    if v >= 1000.0 {
        format!("{} ms", group(v.round() as u64))
    } else {
        format!("{} ms", trim_num(v, 3))
    }
}

/// How an axis maps values to positions.
#[derive(Clone, Copy, PartialEq, Debug)]
pub enum Scale {
    Linear,
    Log,
}

impl Scale {
    /// `linear` or `log`, as the chart's `data-x-scale` says.
    pub fn name(self) -> &'static str {
        match self {
            Scale::Linear => "linear",
            Scale::Log => "log",
        }
    }
}

/// One axis of a chart: its scale, the range it shows (in data units), its
/// ticks (value and label, each with a grid line) and its label.
#[derive(Debug, Clone)]
pub struct Axis {
    pub scale: Scale,
    pub lo: f64,
    pub hi: f64,
    pub ticks: Vec<(f64, String)>,
    pub label: String,
}

impl Axis {
    /// An axis over `lo..hi`, without ticks yet.
    pub fn new(scale: Scale, lo: f64, hi: f64, label: &str) -> Axis {
        Axis {
            scale,
            lo,
            hi,
            ticks: Vec::new(),
            label: label.to_string(),
        }
    }

    /// An axis over `values` (finite; positive on a log scale), padded so that
    /// markers at the ends sit inside the plot. `from_zero`: a linear axis starts
    /// at 0. Without ticks yet.
    pub fn fitted(scale: Scale, values: &[f64], from_zero: bool, label: &str) -> Axis {
        let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let (lo, hi) = match scale {
            Scale::Log => padded_log(lo, hi),
            Scale::Linear => padded_linear(lo, hi, from_zero),
        };
        Axis::new(scale, lo, hi, label)
    }

    /// A linear axis from 0 up to `max` rounded up to a whole nice step (about
    /// `n` of them, none smaller than `min_step`), with a tick at every step.
    pub fn from_zero(max: f64, n: f64, min_step: f64, label: &str) -> Axis {
        let step = nice_step(if max > 0.0 { max } else { 1.0 }, n).max(min_step);
        let hi = ((max / step).ceil() * step).max(step);
        let mut a = Axis::new(Scale::Linear, 0.0, hi, label);
        a.ticks = steps(0.0, hi, step)
            .into_iter()
            .map(|v| (v, plain_tick(v, step)))
            .collect();
        a
    }

    /// Ticks given in full.
    pub fn with_ticks(mut self, ticks: Vec<(f64, String)>) -> Axis {
        self.ticks = ticks;
        self
    }

    /// Ticks at nice steps (about `n`, none smaller than `min_step`) labelled
    /// with the decimals the step needs. Linear axes only.
    pub fn plain_ticks(mut self, n: f64, min_step: f64) -> Axis {
        let step = nice_step(self.hi - self.lo, n).max(min_step);
        self.ticks = steps(self.lo, self.hi, step)
            .into_iter()
            .map(|v| (v, plain_tick(v, step)))
            .collect();
        self
    }

    /// Ticks labelled by `fmt`: about `n` at nice steps on a linear axis; 1, 2, 5
    /// (or every digit on a short range, or only powers of ten on a long one)
    /// times powers of ten on a log axis.
    pub fn ticks_as(mut self, n: f64, fmt: fn(f64) -> String) -> Axis {
        let values = match self.scale {
            Scale::Linear => steps(self.lo, self.hi, nice_step(self.hi - self.lo, n)),
            Scale::Log => log_ticks(self.lo, self.hi),
        };
        self.ticks = values.into_iter().map(|v| (v, fmt(v))).collect();
        self
    }

    /// Where `v` falls along the axis, 0 (low end) to 1 (high end), clamped.
    pub fn frac(&self, v: f64) -> f64 {
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

    /// `n + 1` values evenly spread along the axis, ends included (evenly on the
    /// page: geometric on a log axis).
    pub fn samples(&self, n: usize) -> Vec<f64> {
        (0..=n)
            .map(|i| {
                let t = i as f64 / n.max(1) as f64;
                match self.scale {
                    Scale::Linear => self.lo + t * (self.hi - self.lo),
                    Scale::Log => self.lo * (self.hi / self.lo).powf(t),
                }
            })
            .collect()
    }
}

/// A log range around `lo..hi`, padded by 5% of its span on the page (15% of
/// a factor e at least); 1..100 when there is nothing positive to show.
fn padded_log(lo: f64, hi: f64) -> (f64, f64) {
    let (lo, hi) = if lo.is_finite() && lo > 0.0 {
        (lo, hi)
    } else {
        (1.0, 100.0)
    };
    let pad = ((hi / lo).ln() * 0.05).max(0.15);
    (lo * (-pad).exp(), hi * pad.exp())
}

/// A linear range around `lo..hi`: from 0 with 8% above, or padded 6% each way
/// (not below 0 when the values are not).
fn padded_linear(lo: f64, hi: f64, from_zero: bool) -> (f64, f64) {
    let (lo, hi) = if lo.is_finite() { (lo, hi) } else { (0.0, 1.0) };
    if from_zero {
        return (0.0, if hi > 0.0 { hi * 1.08 } else { 1.0 });
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
    (low, hi + pad)
}

/// The multiples of `step` within `lo..=hi`.
fn steps(lo: f64, hi: f64, step: f64) -> Vec<f64> {
    if !(step > 0.0 && lo.is_finite() && hi.is_finite()) {
        return Vec::new();
    }
    let first = (lo / step).ceil() as i64;
    let last = (hi / step + 1e-9).floor() as i64;
    (first..=last).map(|k| k as f64 * step).collect()
}

/// Log ticks within `lo..=hi`: 1, 2, 5 times powers of ten (only powers of ten
/// over more than 5 decades; every digit when that leaves fewer than two).
fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let decades = (hi / lo).log10();
    let e0 = lo.log10().floor() as i32;
    let e1 = hi.log10().ceil() as i32;
    let within = |mults: &[f64]| -> Vec<f64> {
        let mut out = Vec::new();
        for e in e0..=e1 {
            for m in mults {
                let t = m * 10f64.powi(e);
                if t >= lo && t <= hi {
                    out.push(t);
                }
            }
        }
        out
    };
    let v = within(if decades > 5.0 {
        &[1.0]
    } else {
        &[1.0, 2.0, 5.0]
    });
    if v.len() < 2 {
        return within(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]);
    }
    v
}

/// The shape of a point's marker.
#[derive(Clone, Copy, Debug)]
pub enum Shape {
    Circle,
    Square,
}

/// One point of a series. A marked series draws each point filled in its colour
/// when `passed`, hollow with a red outline when not; hovering shows `tip`.
#[derive(Debug, Clone)]
pub struct Point {
    pub x: f64,
    pub y: f64,
    pub passed: bool,
    pub tip: String,
}

impl From<(f64, f64)> for Point {
    fn from((x, y): (f64, f64)) -> Point {
        Point {
            x,
            y,
            passed: true,
            tip: String::new(),
        }
    }
}

/// One line of a chart, in data units. Points that are not finite are left out.
#[derive(Debug, Clone)]
pub struct Series {
    pub name: String,
    /// None: the palette's colour at the series' position in the chart.
    pub color: Option<&'static str>,
    pub points: Vec<Point>,
    pub dashed: bool,
    pub width: f64,
    /// A marker at every point (None: a line only; a lone point gets a dot).
    pub shape: Option<Shape>,
    /// Drawn under the rules and the other series (a reference line).
    pub behind: bool,
}

impl Series {
    /// A solid line, 2 wide, in the palette's colour.
    pub fn line(name: &str, points: Vec<(f64, f64)>) -> Series {
        Series {
            name: name.to_string(),
            color: None,
            points: points.into_iter().map(Point::from).collect(),
            dashed: false,
            width: 2.0,
            shape: None,
            behind: false,
        }
    }

    /// A thin line with a marker of `shape` at every point.
    pub fn marked(name: &str, color: &'static str, shape: Shape, points: Vec<Point>) -> Series {
        Series {
            name: name.to_string(),
            color: Some(color),
            points,
            dashed: false,
            width: 1.5,
            shape: Some(shape),
            behind: false,
        }
    }

    pub fn dashed(mut self) -> Series {
        self.dashed = true;
        self
    }

    pub fn color(mut self, color: &'static str) -> Series {
        self.color = Some(color);
        self
    }

    pub fn width(mut self, width: f64) -> Series {
        self.width = width;
        self
    }

    pub fn behind(mut self) -> Series {
        self.behind = true;
        self
    }

    fn finite(&self) -> impl Iterator<Item = &Point> {
        self.points
            .iter()
            .filter(|p| p.x.is_finite() && p.y.is_finite())
    }
}

/// A straight line across the plot at a value, with a label: an SLO's limit
/// (horizontal), a level such as the ceiling (vertical).
#[derive(Debug, Clone)]
pub struct Rule {
    pub vertical: bool,
    /// Where, in the data units of the axis it crosses.
    pub at: f64,
    pub label: String,
    pub color: &'static str,
    pub width: f64,
    pub dash: Option<&'static str>,
    /// The line's class, for tests and styles (`slo`, `ceiling-line`).
    pub class: &'static str,
    /// One `data-` attribute (name, value) saying what it marks.
    pub data: Option<(&'static str, String)>,
    /// A vertical rule's label runs up its left side when there is room, else
    /// its right side (and the other way round when false).
    pub label_left: bool,
}

impl Rule {
    /// A horizontal line at `y`, labelled at its left end above the line.
    pub fn horizontal(y: f64, label: &str, color: &'static str) -> Rule {
        Rule {
            vertical: false,
            at: y,
            label: label.to_string(),
            color,
            width: 1.5,
            dash: None,
            class: "hline",
            data: None,
            label_left: true,
        }
    }

    /// A vertical line at `x`, labelled along it from the top.
    pub fn vertical(x: f64, label: &str, color: &'static str) -> Rule {
        Rule {
            vertical: true,
            width: 2.0,
            class: "vline",
            ..Rule::horizontal(x, label, color)
        }
    }

    pub fn dash(mut self, dash: &'static str) -> Rule {
        self.dash = Some(dash);
        self
    }

    pub fn class(mut self, class: &'static str) -> Rule {
        self.class = class;
        self
    }

    pub fn data(mut self, name: &'static str, value: String) -> Rule {
        self.data = Some((name, value));
        self
    }

    pub fn label_right(mut self) -> Rule {
        self.label_left = false;
        self
    }
}

/// What a legend entry shows before its name.
#[derive(Debug, Clone)]
pub enum Sample {
    Line {
        color: &'static str,
        dashed: bool,
    },
    Marker {
        shape: Shape,
        color: &'static str,
        passed: bool,
    },
}

/// One legend entry.
#[derive(Debug, Clone)]
pub struct Key {
    pub name: String,
    pub sample: Sample,
}

impl Key {
    pub fn line(name: &str, color: &'static str, dashed: bool) -> Key {
        Key {
            name: name.to_string(),
            sample: Sample::Line { color, dashed },
        }
    }

    pub fn marker(name: &str, shape: Shape, color: &'static str, passed: bool) -> Key {
        Key {
            name: name.to_string(),
            sample: Sample::Marker {
                shape,
                color,
                passed,
            },
        }
    }
}

/// A whole chart: build it, then take its [`Chart::svg`] or [`Chart::html`].
#[derive(Debug, Clone)]
pub struct Chart {
    pub id: String,
    pub title: String,
    pub x: Axis,
    pub y: Axis,
    pub series: Vec<Series>,
    pub rules: Vec<Rule>,
    pub keys: Vec<Key>,
    /// A message over the plot (such as why nothing is drawn).
    pub note: Option<String>,
}

/// Opens the `<svg>` of a chart and draws the plot's background.
fn svg_open(o: &mut String, id: &str, title: &str, x_scale: Option<Scale>) {
    let scale = x_scale
        .map(|s| format!(" data-x-scale=\"{}\"", s.name()))
        .unwrap_or_default();
    let _ = writeln!(
        o,
        "<svg class=\"chart\" id=\"{}\"{scale} viewBox=\"0 0 {W} {H}\" width=\"{W}\" height=\"{H}\" role=\"img\" aria-label=\"{}\" xmlns=\"http://www.w3.org/2000/svg\">",
        esc(id),
        esc(title)
    );
    let _ = writeln!(
        o,
        "<rect class=\"plot\" x=\"{LEFT}\" y=\"{TOP}\" width=\"{PW}\" height=\"{PH}\"/>"
    );
}

fn note(o: &mut String, text: &str) {
    let _ = writeln!(
        o,
        "<text class=\"nodata\" x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
        LEFT + PW / 2.0,
        TOP + PH / 2.0,
        esc(text)
    );
}

/// The chart's heading and the `<svg>` in their box, as pages show a chart.
fn boxed(title: &str, svg: &str) -> String {
    format!(
        "<section class=\"chart-box\"><h3>{}</h3>\n{svg}</section>\n",
        esc(title)
    )
}

/// A chart with nothing to draw: the frame and `message`, without axes.
pub fn empty_svg(id: &str, title: &str, message: &str) -> String {
    let mut o = String::new();
    svg_open(&mut o, id, title, None);
    note(&mut o, message);
    o.push_str("</svg>");
    o
}

/// [`empty_svg`] in its box with its heading.
pub fn empty_html(id: &str, title: &str, message: &str) -> String {
    boxed(title, &empty_svg(id, title, message))
}

impl Chart {
    pub fn new(id: &str, title: &str, x: Axis, y: Axis) -> Chart {
        Chart {
            id: id.to_string(),
            title: title.to_string(),
            x,
            y,
            series: Vec::new(),
            rules: Vec::new(),
            keys: Vec::new(),
            note: None,
        }
    }

    pub fn series(mut self, s: Series) -> Chart {
        self.series.push(s);
        self
    }

    pub fn rule(mut self, r: Rule) -> Chart {
        self.rules.push(r);
        self
    }

    pub fn key(mut self, k: Key) -> Chart {
        self.keys.push(k);
        self
    }

    /// A legend entry for each series so far: a sample of its line, its name.
    pub fn series_keys(mut self) -> Chart {
        let keys: Vec<Key> = (0..self.series.len())
            .map(|i| Key::line(&self.series[i].name, self.color(i), self.series[i].dashed))
            .collect();
        self.keys.extend(keys);
        self
    }

    pub fn note(mut self, text: &str) -> Chart {
        self.note = Some(text.to_string());
        self
    }

    /// The chart as an `<svg>` element.
    pub fn svg(&self) -> String {
        let mut o = String::with_capacity(8 * 1024);
        svg_open(&mut o, &self.id, &self.title, Some(self.x.scale));
        self.y_axis(&mut o);
        self.x_axis(&mut o);
        if let Some(text) = &self.note {
            note(&mut o, text);
        }
        for (i, s) in self.series.iter().enumerate().filter(|(_, s)| s.behind) {
            self.draw_series(&mut o, i, s);
        }
        for r in &self.rules {
            self.draw_rule(&mut o, r);
        }
        for (i, s) in self.series.iter().enumerate().filter(|(_, s)| !s.behind) {
            self.draw_series(&mut o, i, s);
        }
        self.legend(&mut o);
        o.push_str("</svg>");
        o
    }

    /// The chart in its box with its heading, as pages show it.
    pub fn html(&self) -> String {
        boxed(&self.title, &self.svg())
    }

    fn color(&self, i: usize) -> &'static str {
        self.series[i].color.unwrap_or(COLORS[i % COLORS.len()])
    }

    fn px(&self, v: f64) -> f64 {
        LEFT + self.x.frac(v) * PW
    }

    fn py(&self, v: f64) -> f64 {
        TOP + PH - self.y.frac(v) * PH
    }

    /// Horizontal grid lines at the y ticks, their labels, the y label.
    fn y_axis(&self, o: &mut String) {
        let _ = writeln!(o, "<g class=\"axis y-axis\">");
        for (t, label) in &self.y.ticks {
            let y = self.py(*t);
            let _ = writeln!(
                o,
                "<line class=\"grid\" x1=\"{LEFT}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\"/><text class=\"tick\" x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
                LEFT + PW,
                LEFT - 8.0,
                y + 4.0,
                esc(label)
            );
        }
        let _ = writeln!(
            o,
            "<text class=\"label\" transform=\"translate(18,{:.1}) rotate(-90)\" text-anchor=\"middle\">{}</text></g>",
            TOP + PH / 2.0,
            esc(&self.y.label)
        );
    }

    /// Vertical grid lines at the x ticks, their labels, the x label.
    fn x_axis(&self, o: &mut String) {
        let _ = writeln!(o, "<g class=\"axis x-axis\">");
        for (t, label) in &self.x.ticks {
            let x = self.px(*t);
            let _ = writeln!(
                o,
                "<line class=\"grid\" x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"{TOP}\" y2=\"{}\"/><text class=\"tick\" x=\"{x:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
                TOP + PH,
                TOP + PH + 18.0,
                esc(label)
            );
        }
        let _ = writeln!(
            o,
            "<text class=\"label\" x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text></g>",
            LEFT + PW / 2.0,
            H - 10.0,
            esc(&self.x.label)
        );
    }

    /// A series' line, then its markers (or a dot for a lone unmarked point).
    fn draw_series(&self, o: &mut String, i: usize, s: &Series) {
        let color = self.color(i);
        let pts: Vec<(f64, f64, &Point)> = s
            .finite()
            .map(|p| (self.px(p.x), self.py(p.y), p))
            .collect();
        let mut line = String::new();
        for (x, y, _) in &pts {
            let _ = write!(line, "{x:.1},{y:.1} ");
        }
        let _ = writeln!(
            o,
            "<polyline class=\"series\" data-series=\"{}\" data-points=\"{}\" fill=\"none\" stroke=\"{color}\" stroke-width=\"{}\"{} points=\"{}\"/>",
            esc(&s.name),
            pts.len(),
            s.width,
            dash_attr(s.dashed.then_some(DASH)),
            line.trim_end()
        );
        match s.shape {
            Some(shape) => {
                for (x, y, p) in &pts {
                    marker(o, &s.name, shape, color, (*x, *y), p);
                }
            }
            None if pts.len() == 1 => {
                let (x, y, _) = pts[0];
                let _ = writeln!(
                    o,
                    "<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"3\" fill=\"{color}\"/>"
                );
            }
            None => {}
        }
    }

    /// A rule across the plot and its label, outlined in white.
    fn draw_rule(&self, o: &mut String, r: &Rule) {
        if !r.at.is_finite() {
            return;
        }
        let data = r
            .data
            .as_ref()
            .map(|(k, v)| format!(" {k}=\"{}\"", esc(v)))
            .unwrap_or_default();
        let style = format!(
            "stroke=\"{}\" stroke-width=\"{}\"{}",
            r.color,
            r.width,
            dash_attr(r.dash)
        );
        let label = esc(&r.label);
        if r.vertical {
            let x = self.px(r.at);
            let _ = writeln!(
                o,
                "<line class=\"{}\"{data} x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"{TOP}\" y2=\"{}\" {style}/>",
                r.class,
                TOP + PH
            );
            // Turned to run up the line; the glyphs rise to the left of the baseline.
            let left = if r.label_left {
                x - 16.0 >= LEFT
            } else {
                x + 16.0 > W
            };
            let bx = if left { x - 4.0 } else { x + 15.0 };
            let _ = writeln!(
                o,
                "<text class=\"vline-label\" transform=\"translate({bx:.1},{}) rotate(-90)\" text-anchor=\"end\" fill=\"{}\" {HALO}>{label}</text>",
                TOP + 6.0,
                r.color
            );
        } else {
            let y = self.py(r.at);
            // Labelled at the left end, unless a vertical rule (a ceiling
            // marker) runs through where the label would be: then at the right.
            let width = 7.0 * r.label.chars().count() as f64 + 12.0;
            let clash = |from: f64, to: f64| {
                self.rules
                    .iter()
                    .filter(|v| v.vertical && v.at.is_finite())
                    .map(|v| self.px(v.at))
                    .any(|x| x >= from - 16.0 && x <= to + 4.0)
            };
            let at_left = !clash(LEFT, LEFT + width) || clash(LEFT + PW - width, LEFT + PW);
            let (lx, anchor) = if at_left {
                (LEFT + 6.0, "start")
            } else {
                (LEFT + PW - 6.0, "end")
            };
            let _ = writeln!(
                o,
                "<line class=\"{}\"{data} x1=\"{LEFT}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\" {style}/><text class=\"hline-label\" x=\"{lx:.1}\" y=\"{:.1}\" text-anchor=\"{anchor}\" fill=\"{}\" {HALO}>{label}</text>",
                r.class,
                LEFT + PW,
                y - 5.0,
                r.color
            );
        }
    }

    /// The legend, in a row above the plot.
    fn legend(&self, o: &mut String) {
        let _ = writeln!(o, "<g class=\"legend\">");
        let y = TOP - 14.0;
        let mut x = LEFT + 10.0;
        for k in &self.keys {
            legend_sample(o, &k.sample, x, y);
            let _ = writeln!(
                o,
                "<text class=\"legend-text\" x=\"{:.1}\" y=\"{}\">{}</text>",
                x + 28.0,
                y + 4.0,
                esc(&k.name)
            );
            x += 40.0 + 7.5 * k.name.chars().count() as f64;
        }
        let _ = writeln!(o, "</g>");
    }
}

/// The fill, outline and outline width of a marker: its colour when it passed,
/// hollow with a red outline when it failed.
fn marker_paint(color: &str, passed: bool) -> (&str, &str, f64) {
    if passed {
        (color, color, 1.0)
    } else {
        ("#fff", RED, 2.0)
    }
}

/// One point's marker with its hover text.
fn marker(o: &mut String, series: &str, shape: Shape, color: &str, (x, y): (f64, f64), p: &Point) {
    let (fill, stroke, width) = marker_paint(color, p.passed);
    let common = format!(
        "class=\"marker\" data-series=\"{}\" data-passed=\"{}\" fill=\"{fill}\" stroke=\"{stroke}\" stroke-width=\"{width}\"",
        esc(series),
        p.passed
    );
    let tip = if p.tip.is_empty() {
        String::new()
    } else {
        format!("<title>{}</title>", esc(&p.tip))
    };
    let _ = match shape {
        Shape::Circle => writeln!(
            o,
            "<circle {common} cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"4.5\">{tip}</circle>"
        ),
        Shape::Square => writeln!(
            o,
            "<rect {common} x=\"{:.1}\" y=\"{:.1}\" width=\"8\" height=\"8\">{tip}</rect>",
            x - 4.0,
            y - 4.0
        ),
    };
}

/// A legend entry's sample, 22 wide from `x`, centred on `y`.
fn legend_sample(o: &mut String, sample: &Sample, x: f64, y: f64) {
    let _ = match *sample {
        Sample::Line { color, dashed } => writeln!(
            o,
            "<line x1=\"{x:.1}\" x2=\"{:.1}\" y1=\"{y}\" y2=\"{y}\" stroke=\"{color}\" stroke-width=\"3\"{}/>",
            x + 22.0,
            dash_attr(dashed.then_some(DASH))
        ),
        Sample::Marker {
            shape,
            color,
            passed,
        } => {
            let (fill, stroke, _) = marker_paint(color, passed);
            match shape {
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
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(hay: &str, needle: &str) -> usize {
        hay.matches(needle).count()
    }

    #[test]
    fn ticks_are_nice() {
        assert_eq!(nice_step(10.0, 5.0), 2.0);
        assert_eq!(nice_step(0.9, 5.0), 0.2);
        assert_eq!(nice_step(130_000.0, 5.0), 50_000.0);
        assert_eq!(plain_tick(0.4, 0.2), "0.4");
        assert_eq!(plain_tick(150_000.0, 50_000.0), "150,000");
        let a = Axis::from_zero(9.3, 5.0, 0.0, "y");
        assert_eq!(a.hi, 10.0);
        let labels: Vec<&str> = a.ticks.iter().map(|t| t.1.as_str()).collect();
        assert_eq!(labels, ["0", "2", "4", "6", "8", "10"]);
        let counts = Axis::from_zero(2.0, 5.0, 1.0, "y");
        assert!(counts.ticks.iter().all(|t| t.0.fract() == 0.0));
        let x = Axis::new(Scale::Linear, -3.0, 47.0, "x").plain_ticks(10.0, 1.0);
        assert_eq!(x.ticks.first().unwrap().0, 0.0);
        assert_eq!(x.ticks.last().unwrap().0, 45.0);
    }

    #[test]
    fn numbers_read_well() {
        assert_eq!(si(1000.0), "1k");
        assert_eq!(si(20_000.0), "20k");
        assert_eq!(si(1_500_000.0), "1.5M");
        assert_eq!(si(500.0), "500");
        assert_eq!(si(0.0), "0");
        assert_eq!(ms_tick(0.5), "0.5 ms");
        assert_eq!(ms_tick(2500.0), "2,500 ms");
    }

    #[test]
    fn log_ticks_cover_the_range() {
        let a = Axis::fitted(Scale::Log, &[1000.0, 64_000.0], false, "x").ticks_as(6.0, si);
        let t: Vec<f64> = a.ticks.iter().map(|t| t.0).collect();
        assert!(t.contains(&1000.0) && t.contains(&50_000.0), "{t:?}");
        assert!(t.iter().all(|v| *v >= a.lo && *v <= a.hi));
        let short = Axis::fitted(Scale::Log, &[5.0, 6.0], false, "x").ticks_as(6.0, si);
        assert!(short.ticks.len() >= 2, "{:?}", short.ticks);
        let long = log_ticks(1.0, 1e7);
        assert_eq!(long.len(), 8, "powers of ten only: {long:?}");
    }

    #[test]
    fn positions_follow_the_scale() {
        let lin = Axis::new(Scale::Linear, 0.0, 10.0, "");
        assert_eq!(lin.frac(5.0), 0.5);
        assert_eq!(lin.frac(20.0), 1.0, "clamped");
        let log = Axis::new(Scale::Log, 1.0, 100.0, "");
        assert!((log.frac(10.0) - 0.5).abs() < 1e-12);
        assert_eq!(log.frac(0.0), 0.0);
        let s = log.samples(2);
        assert!((s[1] - 10.0).abs() < 1e-9 && (s[2] - 100.0).abs() < 1e-9);
    }

    #[test]
    fn a_chart_draws_everything_it_holds() {
        let x = Axis::new(Scale::Linear, 0.0, 10.0, "level <x>").plain_ticks(5.0, 0.0);
        let y = Axis::fitted(Scale::Log, &[1.0, 100.0], false, "ms").ticks_as(6.0, ms_tick);
        let pts = vec![
            Point::from((1.0, 2.0)),
            Point {
                passed: false,
                tip: "step 2 <fail>".into(),
                ..Point::from((5.0, 50.0))
            },
            Point::from((f64::NAN, 3.0)),
        ];
        let svg = Chart::new("c1", "A & B", x, y)
            .series(Series::marked("p99", COLORS[2], Shape::Square, pts))
            .series(Series::line("ideal", vec![(0.0, 1.0), (10.0, 100.0)]).dashed())
            .rule(
                Rule::horizontal(40.0, "rtt.p99<40ms", RED)
                    .class("slo")
                    .dash("8 5"),
            )
            .rule(Rule::vertical(6.0, "ceiling 6", GREEN).class("ceiling-line"))
            .key(Key::marker("p99", Shape::Square, COLORS[2], true))
            .key(Key::line("SLO", RED, true))
            .svg();
        assert!(svg.starts_with("<svg class=\"chart\" id=\"c1\" data-x-scale=\"linear\""));
        assert!(svg.contains("aria-label=\"A &amp; B\""));
        assert!(svg.contains(">level &lt;x&gt;</text>"));
        assert_eq!(
            count(&svg, "class=\"marker\""),
            2,
            "the NaN point is left out"
        );
        assert_eq!(count(&svg, "data-passed=\"false\" fill=\"#fff\""), 1);
        assert!(svg.contains("<title>step 2 &lt;fail&gt;</title>"));
        assert!(svg.contains("stroke=\"#D55E00\" stroke-width=\"2\" stroke-dasharray=\"6 4\""));
        assert!(svg.contains(">rtt.p99&lt;40ms</text>"));
        assert_eq!(count(&svg, "class=\"slo\""), 1);
        assert_eq!(count(&svg, "class=\"ceiling-line\""), 1);
        assert_eq!(count(&svg, "class=\"legend-text\""), 2);
        assert!(svg.contains(">10 ms<"));
        assert!(svg.ends_with("</svg>"));
    }

    #[test]
    fn an_empty_chart_says_why() {
        let html = empty_html("e", "Nothing", "no data");
        assert!(html.starts_with("<section class=\"chart-box\"><h3>Nothing</h3>"));
        assert!(html.contains(">no data</text>"));
        assert!(!html.contains("class=\"tick\""));
    }
}
