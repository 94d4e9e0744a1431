//! Units as users write them: counts with SI suffixes (`10k`), rates (`2k/s`),
//! durations in humantime (`30s`), sizes in bytes (`4KiB`).
//!
//! Every layer that reads a number from a person (flags, scenario files, stage
//! lists, thresholds) parses it here, so `10k` means the same everywhere. A leaf:
//! it imports nothing of wsherd's.

use std::time::Duration;

/// Parses a count with an optional SI suffix: `100`, `10k`, `1.5k`, `2m`, `1g`.
pub fn parse_count(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (num, mult) = match t.chars().last() {
        Some('k' | 'K') => (&t[..t.len() - 1], 1e3),
        Some('m' | 'M') => (&t[..t.len() - 1], 1e6),
        Some('g' | 'G') => (&t[..t.len() - 1], 1e9),
        _ => (t, 1.0),
    };
    let v: f64 = num
        .parse()
        .map_err(|_| format!("'{s}' is not a count (examples: 100, 10k, 1.5k, 2m)"))?;
    if !v.is_finite() || v < 0.0 {
        return Err(format!("'{s}' must be zero or more"));
    }
    let total = v * mult;
    if total.fract() != 0.0 {
        return Err(format!("'{s}' is not a whole number"));
    }
    if total > u64::MAX as f64 / 2.0 {
        return Err(format!("'{s}' is too large"));
    }
    Ok(total as u64)
}

/// Parses a rate per second: `500`, `2k`, `0.5`.
pub fn parse_rate(s: &str) -> Result<f64, String> {
    let t = s.trim().trim_end_matches("/s");
    let (num, mult) = match t.chars().last() {
        Some('k' | 'K') => (&t[..t.len() - 1], 1e3),
        Some('m' | 'M') => (&t[..t.len() - 1], 1e6),
        _ => (t, 1.0),
    };
    let v: f64 = num
        .parse()
        .map_err(|_| format!("'{s}' is not a rate (examples: 500, 2k, 0.5)"))?;
    if !v.is_finite() || v < 0.0 {
        return Err(format!("'{s}' must be zero or more"));
    }
    let total = v * mult;
    if !total.is_finite() {
        return Err(format!("'{s}' is too large"));
    }
    Ok(total)
}

/// Parses a duration in humantime form: `500ms`, `30s`, `5m`, `1h30m`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    if t.starts_with('-') {
        return Err(format!("'{s}' is negative; durations are like 30s, 5m, 1h"));
    }
    if !t.is_empty() && t.chars().all(|c| c.is_ascii_digit()) {
        return Err(format!("'{s}' has no unit; write {t}s, {t}ms or {t}m"));
    }
    humantime::parse_duration(t)
        .map_err(|e| format!("'{s}' is not a duration ({e}); examples: 500ms, 30s, 5m, 1h"))
}

/// Parses a size in bytes: `64`, `4k` (4000), `4KiB` (4096), `1MiB`.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let lower = t.to_ascii_lowercase();
    let (num, mult) = if let Some(n) = lower.strip_suffix("kib") {
        (n.to_string(), 1024u64)
    } else if let Some(n) = lower.strip_suffix("mib") {
        (n.to_string(), 1024 * 1024)
    } else if let Some(n) = lower.strip_suffix("kb").or_else(|| lower.strip_suffix('k')) {
        (n.to_string(), 1000)
    } else if let Some(n) = lower.strip_suffix("mb").or_else(|| lower.strip_suffix('m')) {
        (n.to_string(), 1_000_000)
    } else {
        (lower.strip_suffix('b').unwrap_or(&lower).to_string(), 1)
    };
    let v: u64 = num
        .trim()
        .parse()
        .map_err(|_| format!("'{s}' is not a size in bytes (examples: 64, 4k, 4KiB, 1MiB)"))?;
    v.checked_mul(mult)
        .ok_or_else(|| format!("'{s}' is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_take_si_suffixes() {
        assert_eq!(parse_count("10k"), Ok(10_000));
        assert_eq!(parse_count("1.5k"), Ok(1_500));
        assert_eq!(parse_count("2m"), Ok(2_000_000));
        assert_eq!(parse_count("0"), Ok(0));
        assert!(parse_count("-3").is_err());
        assert!(parse_count("1.5").is_err());
        assert!(parse_count("lots").is_err());
    }

    #[test]
    fn durations_need_units_and_sign() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert!(parse_duration("-5s").unwrap_err().contains("negative"));
        assert!(parse_duration("30").unwrap_err().contains("no unit"));
        assert!(parse_duration("banana").is_err());
    }

    #[test]
    fn sizes_know_binary_and_decimal_units() {
        assert_eq!(parse_size("64"), Ok(64));
        assert_eq!(parse_size("4k"), Ok(4000));
        assert_eq!(parse_size("4KiB"), Ok(4096));
        assert_eq!(parse_size("1MiB"), Ok(1 << 20));
        assert!(parse_size("-1").is_err());
        assert!(parse_size("big").is_err());
    }

    #[test]
    fn rates_accept_suffixes() {
        assert_eq!(parse_rate("2k"), Ok(2000.0));
        assert_eq!(parse_rate("0.5"), Ok(0.5));
        assert!(parse_rate("-1").is_err());
        assert!(parse_rate("1e308k").unwrap_err().contains("too large"));
    }
}
