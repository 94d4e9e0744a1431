//! Numbers as people read them: digit grouping (`1,234,567`) and latencies in a
//! short form (`850µs`, `12.30ms`, `1.20s`).
//!
//! The text report, the HTML pages, the live progress line and threshold messages
//! all print numbers through here, so a figure reads the same everywhere. A leaf:
//! it imports nothing of wsherd's.

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

/// Thousands separators: 1234567 → 1,234,567.
pub fn group(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// A rate (or any figure that may have a fraction) as people read it, with no
/// decimal that reads as a thousands separator: `20,000`, `199`, `33.3`, `20`,
/// `2.25`, `0.5` (whole above 100; else at most one decimal from 10 and two
/// below, trailing zeros dropped).
pub fn fmt_rate(v: f64) -> String {
    if !v.is_finite() || v <= 0.0 {
        return "0".into();
    }
    if v >= 100.0 {
        return group(v.round() as u64);
    }
    let s = if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    };
    let s = s.trim_end_matches('0').trim_end_matches('.');
    s.to_string()
}

/// A level as people read it: `3,125`, `41,500`, `2.5`.
pub fn fmt_level(v: f64) -> String {
    if v >= 100.0 || v.fract() == 0.0 {
        group(v.round() as u64)
    } else {
        format!("{v:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_well() {
        assert_eq!(fmt_us(850.0), "850µs");
        assert_eq!(fmt_us(12_345.0), "12.35ms");
        assert_eq!(fmt_us(1_200_000.0), "1.20s");
        assert_eq!(fmt_us(0.0), "-");
    }

    #[test]
    fn rates_have_no_ambiguous_decimals() {
        assert_eq!(fmt_rate(20.0), "20");
        assert_eq!(fmt_rate(20_000.0), "20,000");
        assert_eq!(fmt_rate(3_531_840.4), "3,531,840");
        assert_eq!(fmt_rate(199.4), "199");
        assert_eq!(fmt_rate(33.333), "33.3");
        assert_eq!(fmt_rate(2.25), "2.25");
        assert_eq!(fmt_rate(0.5), "0.5");
        assert_eq!(fmt_rate(0.0), "0");
    }

    #[test]
    fn groups_thousands() {
        assert_eq!(group(0), "0");
        assert_eq!(group(999), "999");
        assert_eq!(group(1000), "1,000");
        assert_eq!(group(1234567), "1,234,567");
    }

    #[test]
    fn levels_read_well() {
        assert_eq!(fmt_level(15_000.0), "15,000");
        assert_eq!(fmt_level(1_012.6), "1,013");
        assert_eq!(fmt_level(2.5), "2.50");
        assert_eq!(fmt_level(3.0), "3");
    }
}
