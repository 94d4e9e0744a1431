//! wsherd's latency histogram: its bounds, and the lossless codec that carries it
//! in the results (HdrHistogram V2 compressed, base64).
//!
//! Shards record into these, the collector merges them, results carry them encoded,
//! and merge, thresholds and reports decode them; all agree on the bounds because
//! they are written once, here. A leaf: it imports nothing of wsherd's.

use base64::Engine;
use hdrhistogram::serialization::{Serializer, V2DeflateSerializer};
use hdrhistogram::Histogram;

/// Lowest value told apart: 1 µs (values are recorded in ns).
pub const HIST_LOW_NS: u64 = 1_000;
/// Highest value kept: 60 s; larger values saturate to it.
pub const HIST_HIGH_NS: u64 = 60_000_000_000;
/// Significant digits kept at every magnitude.
pub const HIST_SIGFIG: u8 = 3;

/// A latency histogram with wsherd's bounds.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(HIST_LOW_NS, HIST_HIGH_NS, HIST_SIGFIG)
        .expect("static histogram bounds are valid")
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_survive_encoding() {
        let mut h = new_histogram();
        for v in [1_000u64, 5_000, 80_000, 2_000_000_000] {
            h.saturating_record(v);
        }
        let back = decode_histogram(&encode_histogram(&h)).unwrap();
        assert_eq!(back.len(), 4);
        assert_eq!(back.value_at_quantile(0.5), h.value_at_quantile(0.5));
        assert_eq!(back.max(), h.max());
    }
}
