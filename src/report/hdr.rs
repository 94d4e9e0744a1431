//! HdrHistogram's own file formats, so the tools people already use on latency
//! data (HdrHistogram's plotter, HistogramLogAnalyzer) read wsherd's results.
//!
//! - `.hgrm`: the percentile distribution text `outputPercentileDistribution`
//!   prints (5 ticks per half distance to 100%, values in milliseconds), one file
//!   per latency kind, rendered from the full histograms in `RunResults`.
//! - interval log (`--hlog`): one round-trip histogram per second, V2 compressed
//!   and base64, streamed by the collector as each second becomes final (the
//!   results keep only each second's percentiles).
//!
//! Reads the results and the seconds the collector hands its sinks (`metrics`); never
//! the collector itself.

use crate::error::{Error, Result};
use crate::results::{LatencyStats, RunResults};
use hdrhistogram::serialization::interval_log::IntervalLogWriterBuilder;
use hdrhistogram::serialization::V2DeflateSerializer;
use hdrhistogram::Histogram;
use std::fmt::Write as _;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Histograms record nanoseconds; the text formats show milliseconds.
const NS_PER_MS: f64 = 1e6;

/// The latency kinds present in `r`, by the name used in file names; a
/// conversation's expects as `step.NAME`.
pub fn latency_kinds(r: &RunResults) -> Vec<(String, &LatencyStats)> {
    let l = &r.latency;
    let mut v: Vec<(String, &LatencyStats)> = vec![
        ("rtt".into(), &l.rtt),
        ("connect".into(), &l.connect),
        ("handshake".into(), &l.handshake),
    ];
    let optional = [
        ("tls", l.tls.as_ref()),
        ("protocol_open", l.protocol_open.as_ref()),
        ("rtt_uncorrected", l.rtt_uncorrected.as_ref()),
        ("send_lag", l.send_lag.as_ref()),
        ("delivery", l.delivery.as_ref()),
        ("session", r.sessions.as_ref().map(|s| &s.duration)),
    ];
    v.extend(
        optional
            .into_iter()
            .filter_map(|(n, s)| s.map(|s| (n.to_string(), s))),
    );
    v.extend(
        r.steps
            .iter()
            .filter_map(|s| s.latency.as_ref().map(|l| (format!("step.{}", s.name), l))),
    );
    v
}

/// `PREFIX.KIND.hgrm`, or `DIR/KIND.hgrm` when the prefix is a directory.
pub fn hgrm_path(prefix: &Path, kind: &str) -> PathBuf {
    // A directory (`--hgrm out/`): its files are out/rtt.hgrm, ..., not hidden
    // files named out/.rtt.hgrm.
    if is_dir_prefix(prefix) {
        return prefix.join(format!("{kind}.hgrm"));
    }
    let mut s = prefix.as_os_str().to_owned();
    s.push(format!(".{kind}.hgrm"));
    PathBuf::from(s)
}

/// A `--hgrm` prefix that names a directory: written with a trailing `/`, or
/// one that exists.
pub fn is_dir_prefix(prefix: &Path) -> bool {
    prefix.as_os_str().to_string_lossy().ends_with('/') || prefix.is_dir()
}

/// HdrHistogram's percentile distribution of `h` (values in ns), in milliseconds,
/// exactly as Java's `outputPercentileDistribution(out, 5, 1e6)` lays it out.
pub fn percentile_distribution(h: &Histogram<u64>) -> String {
    let digits = h.sigfig() as usize;
    let mut o = String::new();
    let _ = writeln!(
        o,
        "{:>12} {:>14} {:>10} {:>14}\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    );
    if h.is_empty() {
        let _ = writeln!(o, "#[no samples]");
    } else {
        let mut total = 0u64;
        for v in h.iter_quantiles(5) {
            total += v.count_since_last_iteration();
            let q = v.quantile_iterated_to();
            let value = h.highest_equivalent(v.value_iterated_to()) as f64 / NS_PER_MS;
            if q < 1.0 {
                let _ = writeln!(
                    o,
                    "{value:>12.digits$} {q:>2.12} {total:>10} {:>14.2}",
                    1.0 / (1.0 - q)
                );
            } else {
                let _ = writeln!(o, "{value:>12.digits$} {q:>2.12} {total:>10}");
            }
        }
    }
    let _ = writeln!(
        o,
        "#[Mean    = {:>12.digits$}, StdDeviation   = {:>12.digits$}]",
        h.mean() / NS_PER_MS,
        h.stdev() / NS_PER_MS
    );
    let _ = writeln!(
        o,
        "#[Max     = {:>12.digits$}, Total count    = {:>12}]",
        h.max() as f64 / NS_PER_MS,
        h.len()
    );
    // Java: subBucketCount = 2^ceil(log2(2 * 10^digits)).
    let sub_buckets = (2 * 10u64.pow(h.sigfig() as u32)).next_power_of_two();
    let _ = writeln!(
        o,
        "#[Buckets = {:>12}, SubBuckets     = {:>12}]",
        h.buckets(),
        sub_buckets
    );
    o
}

fn output_err(path: &Path, why: impl std::fmt::Display) -> Error {
    super::files::output_error("--hgrm", path, why)
}

fn hlog_err(path: &Path, why: impl std::fmt::Display) -> Error {
    super::files::output_error("--hlog", path, why)
}

/// Writes `PREFIX.KIND.hgrm` for every latency kind in `r`; returns the paths.
pub fn write_hgrm_files(prefix: &Path, r: &RunResults) -> Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    for (kind, stats) in latency_kinds(r) {
        let path = hgrm_path(prefix, &kind);
        let h = match crate::vocab::hist::decode_histogram(&stats.hdr) {
            Some(h) => h,
            None if stats.hdr.is_empty() => crate::vocab::hist::new_histogram(),
            None => return Err(output_err(&path, "the results' histogram does not decode")),
        };
        std::fs::write(&path, percentile_distribution(&h)).map_err(|e| output_err(&path, e))?;
        written.push(path);
    }
    Ok(written)
}

/// An HdrHistogram interval log being written, one interval per second of round
/// trip (HistogramLogAnalyzer, `HistogramLogProcessor` read it). Warm-up seconds
/// carry the tag `warmup`, so the untagged intervals add up to the measured phase.
pub struct IntervalLog {
    path: PathBuf,
    out: std::io::BufWriter<std::fs::File>,
    serializer: V2DeflateSerializer,
    buf: Vec<u8>,
    /// The first write error; reported by `finish`.
    error: Option<String>,
}

impl IntervalLog {
    /// Creates the file and writes the header; `start` is the run's start (the
    /// interval timestamps are seconds since it).
    pub fn create(path: &Path, start: SystemTime) -> Result<IntervalLog> {
        let file = std::fs::File::create(path).map_err(|e| hlog_err(path, e))?;
        let mut out = std::io::BufWriter::new(file);
        let mut ser = V2DeflateSerializer::new();
        let human = start
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        IntervalLogWriterBuilder::new()
            .add_comment(&format!(
                "[Logged with wsherd {}: round-trip latency per second, values in ns]",
                env!("CARGO_PKG_VERSION")
            ))
            .add_comment("[Histogram log format version 1.3]")
            .add_comment(&format!("[run started at unix time {human}]"))
            .with_start_time(start)
            .with_base_time(start)
            .begin_log_with(&mut out, &mut ser)
            .map_err(|e| hlog_err(path, e))?;
        writeln!(
            out,
            "\"StartTimestamp\",\"Interval_Length\",\"Interval_Max\",\"Interval_Compressed_Histogram\""
        )
        .map_err(|e| hlog_err(path, e))?;
        Ok(IntervalLog {
            path: path.to_path_buf(),
            out,
            serializer: ser,
            buf: Vec::new(),
            error: None,
        })
    }

    /// Appends the interval `[start_secs, start_secs + 1)` (seconds since the
    /// start). The max column is in milliseconds, as Java's writer puts it.
    pub fn interval(&mut self, start_secs: u64, warmup: bool, h: &Histogram<u64>) {
        if self.error.is_some() {
            return;
        }
        use base64::Engine;
        use hdrhistogram::serialization::Serializer;
        self.buf.clear();
        if let Err(e) = self.serializer.serialize(h, &mut self.buf) {
            self.error = Some(e.to_string());
            return;
        }
        let b64 = base64::engine::general_purpose::STANDARD.encode(&self.buf);
        let tag = if warmup { "Tag=warmup," } else { "" };
        let start = Duration::from_secs(start_secs).as_secs_f64();
        if let Err(e) = writeln!(
            self.out,
            "{tag}{start:.3},{:.3},{:.3},{b64}",
            1.0,
            h.max() as f64 / NS_PER_MS
        ) {
            self.error = Some(e.to_string());
        }
    }

    /// Flushes the file; the first error met while writing, if any.
    pub fn finish(mut self) -> Result<()> {
        if let Some(e) = self.error.take() {
            return Err(hlog_err(&self.path, e));
        }
        self.out.flush().map_err(|e| hlog_err(&self.path, e))
    }
}

impl crate::metrics::SecondSink for IntervalLog {
    fn second(
        &mut self,
        start: u64,
        warmup: bool,
        s: &crate::metrics::Second,
        _: &crate::results::SecondStats,
    ) {
        let Some(rtt) = s.interval.as_ref().map(|i| &i.rtt) else {
            return;
        };
        self.interval(start, warmup, rtt);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distribution_has_the_standard_layout() {
        let mut h = crate::vocab::hist::new_histogram();
        for v in 1..=1000u64 {
            h.saturating_record(v * 1000); // 1µs .. 1ms
        }
        let text = percentile_distribution(&h);
        let mut lines = text.lines();
        assert_eq!(
            lines.next().unwrap(),
            "       Value     Percentile TotalCount 1/(1-Percentile)"
        );
        assert_eq!(lines.next().unwrap(), "");
        let first = lines.next().unwrap();
        assert!(
            first.starts_with("       0.001 0.000000000000          1"),
            "{first}"
        );
        let rows: Vec<&str> = text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .skip(2)
            .collect();
        let last = rows.last().unwrap();
        assert!(last.contains(" 1.000000000000       1000"), "{last}");
        assert!(text.contains("#[Max     =        1.000, Total count    =         1000]"));
        assert!(text.contains("SubBuckets     =         2048]"));
        assert!(text.contains("#[Mean    ="));
    }
}
