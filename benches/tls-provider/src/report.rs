//! The Markdown report: medians over the runs of the raw lines that `run` prints.

use std::collections::BTreeMap;

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

/// A whole number with thousands separators.
fn thousands(x: f64) -> String {
    let s = format!("{:.0}", x);
    let (sign, digits) = s.split_at(if s.starts_with('-') { 1 } else { 0 });
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    format!("{sign}{out}")
}

fn opt(v: Option<f64>, f: impl Fn(f64) -> String) -> String {
    v.map(f).unwrap_or_else(|| "-".into())
}

/// `b` against `a` as "+12%" / "−8%".
fn change(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if a != 0.0 => {
            let pct = (b / a - 1.0) * 100.0;
            if pct.abs() < 0.5 {
                "±0%".into()
            } else if pct > 0.0 {
                format!("+{pct:.0}%")
            } else {
                format!("−{:.0}%", -pct)
            }
        }
        _ => "-".into(),
    }
}

const PROVIDERS: [&str; 2] = ["ring", "aws-lc-rs"];

#[derive(Default)]
struct Hs {
    /// Per wall-clock second: what the machine's other load also shows in.
    rate: Vec<f64>,
    /// Per second of the thread's CPU time (both sides): the load shows less.
    cpu_rate: Vec<f64>,
    client_us: Vec<f64>,
    server_us: Vec<f64>,
    negotiated: Vec<String>,
}

#[derive(Default)]
struct Rec {
    enc: Vec<f64>,
    dec: Vec<f64>,
    rt: Vec<f64>,
    /// The provider's encrypter and decrypter alone, called directly.
    seal: Vec<f64>,
    open: Vec<f64>,
}

#[derive(Default)]
struct Mem {
    malloc: Vec<f64>,
    rust: Vec<f64>,
    size_of: Vec<f64>,
}

/// The report of every raw line in `text`.
pub fn report(text: &str) -> String {
    let mut hs: BTreeMap<(String, String, String), Hs> = BTreeMap::new();
    let mut rec: BTreeMap<(String, usize, String), Rec> = BTreeMap::new();
    let mut mem: BTreeMap<(String, String, String), Mem> = BTreeMap::new();
    let mut missing: Vec<(String, String)> = Vec::new();
    let mut clock: Vec<f64> = Vec::new();
    let mut share: Vec<f64> = Vec::new();
    let num = |s: &str| s.parse::<f64>().unwrap_or(f64::NAN);
    for line in text.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        match f.as_slice() {
            ["hs", p, cert, mode, n, wall, cpu, client, kx, suite] => {
                let n = num(n);
                let e = hs
                    .entry((mode.to_string(), cert.to_string(), p.to_string()))
                    .or_default();
                e.rate.push(n / (num(wall) / 1e9));
                e.client_us.push(num(client) / n / 1e3);
                e.server_us.push((num(cpu) - num(client)) / n / 1e3);
                e.cpu_rate.push(n / (num(cpu) / 1e9));
                let what = format!("{kx}, {suite}");
                if !e.negotiated.contains(&what) {
                    e.negotiated.push(what);
                }
            }
            ["rec", p, suite, size, n, enc, dec, _wall] => {
                let n = num(n);
                let e = rec
                    .entry((suite.to_string(), size.parse().unwrap_or(0), p.to_string()))
                    .or_default();
                e.enc.push(num(enc) / n);
                e.dec.push(num(dec) / n);
                e.rt.push((num(enc) + num(dec)) / n);
            }
            ["aead", p, suite, size, n, seal, open] => {
                let n = num(n);
                let e = rec
                    .entry((suite.to_string(), size.parse().unwrap_or(0), p.to_string()))
                    .or_default();
                e.seal.push(num(seal) / n);
                e.open.push(num(open) / n);
            }
            ["mem", p, cert, mode, _n, malloc, rust, size_of] => {
                let e = mem
                    .entry((cert.to_string(), mode.to_string(), p.to_string()))
                    .or_default();
                e.malloc.push(num(malloc));
                e.rust.push(num(rust));
                e.size_of.push(num(size_of));
            }
            ["missing", p, suite] => {
                let m = (p.to_string(), suite.to_string());
                if !missing.contains(&m) {
                    missing.push(m);
                }
            }
            ["info", _p, "clock_ns", v] => clock.push(num(v)),
            ["info", _p, "cpu_share", v] => share.push(num(v)),
            _ => {}
        }
    }

    let mut out = String::new();
    let mut w = |s: String| {
        out.push_str(&s);
        out.push('\n');
    };
    w(format!(
        "Built with {}; {}.",
        env!("TLS_PROVIDER_RUSTC"),
        env!("TLS_PROVIDER_CRATES")
    ));
    if !share.is_empty() {
        let lowest = share.iter().cloned().fold(f64::INFINITY, f64::min);
        w(format!(
            "The benchmark had its core for {:.0}% of its wall time (median over {} processes; lowest {:.0}%): the rest went to other load on that core.",
            median(share.clone()).unwrap() * 100.0,
            share.len(),
            lowest * 100.0
        ));
    }
    if let Some(c) = median(clock) {
        w(format!(
            "One reading of the thread CPU clock costs {c:.0} ns here; that cost is taken out of every figure below."
        ));
    }

    for (mode, title) in [
        ("full", "Full TLS 1.3 handshakes"),
        ("resumed", "Resumed TLS 1.3 handshakes (tickets)"),
    ] {
        if !hs.keys().any(|k| k.0 == mode) {
            continue;
        }
        w(String::new());
        w(format!("### {title}"));
        w(String::new());
        w("| server certificate | provider | handshakes per CPU-second (both sides) | handshakes/s (wall) | client CPU µs/handshake | server CPU µs/handshake | runs (per CPU-second) | negotiated |".into());
        w("| --- | --- | ---: | ---: | ---: | ---: | --- | --- |".into());
        for cert in ["ecdsa", "rsa"] {
            for p in PROVIDERS {
                let Some(e) = hs.get(&(mode.into(), cert.into(), p.into())) else {
                    continue;
                };
                w(format!(
                    "| {} | {p} | {} | {} | {} | {} | {} | {} |",
                    cert_label(cert),
                    opt(median(e.cpu_rate.clone()), thousands),
                    opt(median(e.rate.clone()), thousands),
                    opt(median(e.client_us.clone()), |x| format!("{x:.1}")),
                    opt(median(e.server_us.clone()), |x| format!("{x:.1}")),
                    e.cpu_rate
                        .iter()
                        .map(|r| thousands(*r))
                        .collect::<Vec<_>>()
                        .join(" / "),
                    e.negotiated.join("; "),
                ));
            }
        }
    }

    if !rec.is_empty() {
        w(String::new());
        w("### Records: one message out and its echo back, the client's CPU".into());
        w(String::new());
        w("| suite | message | provider | encrypt ns | decrypt ns | ns per round trip | vs ring | runs (ns per round trip) | the provider's encrypter / decrypter alone, ns |".into());
        w("| --- | ---: | --- | ---: | ---: | ---: | ---: | --- | ---: |".into());
        let mut cases: Vec<(String, usize)> = rec.keys().map(|k| (k.0.clone(), k.1)).collect();
        cases.dedup();
        cases.sort_by_key(|(s, size)| (*size, suite_order(s)));
        for (suite, size) in cases {
            let ring_rt = rec
                .get(&(suite.clone(), size, "ring".into()))
                .and_then(|e| median(e.rt.clone()));
            for p in PROVIDERS {
                let Some(e) = rec.get(&(suite.clone(), size, p.into())) else {
                    continue;
                };
                let rt = median(e.rt.clone());
                w(format!(
                    "| {} | {} B | {p} | {} | {} | {} | {} | {} | {} / {} |",
                    suite_label(&suite),
                    size,
                    opt(median(e.enc.clone()), |x| format!("{x:.0}")),
                    opt(median(e.dec.clone()), |x| format!("{x:.0}")),
                    opt(rt, |x| format!("{x:.0}")),
                    if p == "ring" {
                        "".into()
                    } else {
                        change(ring_rt, rt)
                    },
                    e.rt.iter()
                        .map(|r| format!("{r:.0}"))
                        .collect::<Vec<_>>()
                        .join(" / "),
                    opt(median(e.seal.clone()), |x| format!("{x:.0}")),
                    opt(median(e.open.clone()), |x| format!("{x:.0}")),
                ));
            }
        }
    }
    for (p, suite) in &missing {
        w(format!("({p} does not offer {}.)", suite_label(suite)));
    }

    if !mem.is_empty() {
        w(String::new());
        w("### Memory of an idle client connection after its handshake".into());
        w(String::new());
        w("| server certificate | handshake | provider | heap bytes per connection (malloc) | of which through Rust's allocator | size_of ClientConnection (included) | runs (malloc bytes) |".into());
        w("| --- | --- | --- | ---: | ---: | ---: | --- |".into());
        for cert in ["ecdsa", "rsa"] {
            for mode in ["full", "resumed"] {
                for p in PROVIDERS {
                    let Some(e) = mem.get(&(cert.into(), mode.into(), p.into())) else {
                        continue;
                    };
                    w(format!(
                        "| {} | {mode} | {p} | {} | {} | {} | {} |",
                        cert_label(cert),
                        opt(median(e.malloc.clone()), thousands),
                        opt(median(e.rust.clone()), thousands),
                        opt(median(e.size_of.clone()), thousands),
                        e.malloc
                            .iter()
                            .map(|r| thousands(*r))
                            .collect::<Vec<_>>()
                            .join(" / "),
                    ));
                }
            }
        }
    }

    // The comparison in one place.
    let mut summary = Vec::new();
    for mode in ["full", "resumed"] {
        for cert in ["ecdsa", "rsa"] {
            let get = |p: &str| hs.get(&(mode.into(), cert.into(), p.into()));
            if let (Some(r), Some(a)) = (get("ring"), get("aws-lc-rs")) {
                summary.push(format!(
                    "| {mode} handshake, {} | handshakes per CPU-second {} | client CPU {} |",
                    cert_label(cert),
                    change(median(r.cpu_rate.clone()), median(a.cpu_rate.clone())),
                    change(median(r.client_us.clone()), median(a.client_us.clone())),
                ));
            }
        }
    }
    let mut rec_cases: Vec<(String, usize)> = rec.keys().map(|k| (k.0.clone(), k.1)).collect();
    rec_cases.dedup();
    rec_cases.sort_by_key(|(s, size)| (*size, suite_order(s)));
    for (suite, size) in rec_cases {
        let get = |p: &str| rec.get(&(suite.clone(), size, p.into()));
        if let (Some(r), Some(a)) = (get("ring"), get("aws-lc-rs")) {
            summary.push(format!(
                "| records, {}, {size} B | encrypt {}, decrypt {}; the provider's encrypter {}, decrypter {} | client CPU per round trip {} |",
                suite_label(&suite),
                change(median(r.enc.clone()), median(a.enc.clone())),
                change(median(r.dec.clone()), median(a.dec.clone())),
                change(median(r.seal.clone()), median(a.seal.clone())),
                change(median(r.open.clone()), median(a.open.clone())),
                change(median(r.rt.clone()), median(a.rt.clone())),
            ));
        }
    }
    for cert in ["ecdsa", "rsa"] {
        for mode in ["full", "resumed"] {
            let get = |p: &str| mem.get(&(cert.into(), mode.into(), p.into()));
            if let (Some(r), Some(a)) = (get("ring"), get("aws-lc-rs")) {
                let (rm, am) = (median(r.malloc.clone()), median(a.malloc.clone()));
                summary.push(format!(
                    "| idle connection, {}, {mode} | heap {} ({} B) | |",
                    cert_label(cert),
                    change(rm, am),
                    opt(am.zip(rm).map(|(a, r)| a - r), |d| format!(
                        "{}{}",
                        if d >= 0.0 { "+" } else { "" },
                        thousands(d)
                    )),
                ));
            }
        }
    }
    if !summary.is_empty() {
        w(String::new());
        w("### aws-lc-rs against ring (medians; + is more, so better for handshakes/s, worse for CPU and bytes)".into());
        w(String::new());
        w("| case | | |".into());
        w("| --- | --- | --- |".into());
        for s in summary {
            w(s);
        }
    }
    out
}

fn cert_label(cert: &str) -> &'static str {
    match cert {
        "ecdsa" => "ECDSA P-256",
        "rsa" => "RSA 2048",
        _ => "?",
    }
}

fn suite_label(s: &str) -> &'static str {
    match s {
        "aes128" => "TLS13_AES_128_GCM_SHA256",
        "aes256" => "TLS13_AES_256_GCM_SHA384",
        "chacha20" => "TLS13_CHACHA20_POLY1305_SHA256",
        _ => "?",
    }
}

fn suite_order(s: &str) -> usize {
    ["aes128", "aes256", "chacha20"]
        .iter()
        .position(|x| *x == s)
        .unwrap_or(9)
}
