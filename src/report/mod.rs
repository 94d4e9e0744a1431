//! Reports rendered from `RunResults`: the text summary people read, the JSON
//! machines consume, and the HTML, CSV and HdrHistogram files (`outputs`). Reports never reach into shards; any report can be produced
//! again from a saved run.

pub mod csv;
pub mod hdr;
pub mod html;
pub mod outputs;
pub mod text;

use crate::error::{Error, Result};
use crate::results::RunResults;
use base64::Engine;
use hdrhistogram::serialization::{Serializer, V2DeflateSerializer};
use hdrhistogram::Histogram;
use std::path::Path;

/// The committed JSON schema of `RunResults`.
pub const RESULTS_SCHEMA: &str = include_str!("results.schema.json");

/// A histogram as HdrHistogram V2 compressed, base64 (lossless).
pub fn encode_histogram(h: &Histogram<u64>) -> String {
    let mut buf = Vec::new();
    match V2DeflateSerializer::new().serialize(h, &mut buf) {
        Ok(_) => base64::engine::general_purpose::STANDARD.encode(buf),
        Err(_) => String::new(),
    }
}

/// Decodes a histogram written by `encode_histogram`.
pub fn decode_histogram(s: &str) -> Option<Histogram<u64>> {
    let bytes = base64::engine::general_purpose::STANDARD.decode(s).ok()?;
    hdrhistogram::serialization::Deserializer::new()
        .deserialize(&mut std::io::Cursor::new(bytes))
        .ok()
}

/// Microseconds in a short human form: 850µs, 12.3ms, 1.20s.
pub fn fmt_us(us: f64) -> String {
    if us <= 0.0 {
        "-".into()
    } else if us < 1000.0 {
        format!("{us:.0}µs")
    } else if us < 1_000_000.0 {
        format!("{:.2}ms", us / 1000.0)
    } else {
        format!("{:.2}s", us / 1_000_000.0)
    }
}

/// Fails early when `path` cannot be written (creates it, leaves it empty).
pub fn check_writable(path: &Path) -> Result<()> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map(|_| ())
        .map_err(|e| Error::Output {
            path: path.display().to_string(),
            why: e.to_string(),
        })
}

/// Reads a JSON file (results of a run, a merge or a ceiling search).
pub fn read_value(path: &Path) -> Result<serde_json::Value> {
    let shown = path.display();
    let bytes = std::fs::read(path).map_err(|e| Error::Usage(format!("{shown}: {e}")))?;
    serde_json::from_slice(&bytes).map_err(|e| Error::Usage(format!("{shown}: not JSON ({e})")))
}

/// Reads results written by `--json` (or `wsherd merge`), checking the schema version.
pub fn read_json(path: &Path) -> Result<RunResults> {
    results_from(path, read_value(path)?)
}

/// Run results from the JSON read from `path`, checking the schema version.
pub fn results_from(path: &Path, v: serde_json::Value) -> Result<RunResults> {
    let shown = path.display().to_string();
    match v.get("schema_version").and_then(|s| s.as_u64()) {
        Some(n) if n == crate::results::SCHEMA_VERSION as u64 => {}
        Some(n) => {
            return Err(Error::Usage(format!(
                "{shown}: results schema version {n}, this wsherd reads version {}",
                crate::results::SCHEMA_VERSION
            )))
        }
        None => {
            return Err(Error::Usage(format!(
                "{shown}: not a wsherd results file (no schema_version)"
            )))
        }
    }
    serde_json::from_value(v).map_err(|e| Error::Usage(format!("{shown}: {e}")))
}

/// Writes results (a run's, or a ceiling search's) as pretty JSON.
pub fn write_json<T: serde::Serialize>(path: &Path, r: &T) -> Result<()> {
    let out = serde_json::to_vec_pretty(r).map_err(|e| Error::Output {
        path: path.display().to_string(),
        why: e.to_string(),
    })?;
    outputs::write_file(path, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_survive_encoding() {
        let mut h = crate::metrics::new_histogram();
        for v in [1_000u64, 5_000, 80_000, 2_000_000_000] {
            h.saturating_record(v);
        }
        let back = decode_histogram(&encode_histogram(&h)).unwrap();
        assert_eq!(back.len(), 4);
        assert_eq!(back.value_at_quantile(0.5), h.value_at_quantile(0.5));
        assert_eq!(back.max(), h.max());
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(fmt_us(850.0), "850µs");
        assert_eq!(fmt_us(12_345.0), "12.35ms");
        assert_eq!(fmt_us(1_200_000.0), "1.20s");
        assert_eq!(fmt_us(0.0), "-");
    }
}
