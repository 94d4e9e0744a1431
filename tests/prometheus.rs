//! Prometheus end to end: a real Prometheus server (Debian's `prometheus`
//! package; `scripts/setup-test-deps.sh` installs it) scrapes a `wsherd run` and
//! a `wsherd serve` on loopback once a second, and its HTTP API must then hold
//! both sides' series; `promtool check metrics` must accept both expositions.
//!
//! Everything is bounded: a 6-second run of 20 connections, and every process is
//! killed by a guard when the test ends, however it ends.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Kills and reaps a child process when dropped.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// GET `path` from `addr`: (status code, body); None when nothing answers.
fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).ok()?;
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_string()
    };
    Some((status, body))
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

fn find_tool(name: &str) -> String {
    for dir in ["/usr/bin", "/usr/local/bin", "/bin"] {
        let p = format!("{dir}/{name}");
        if Path::new(&p).exists() {
            return p;
        }
    }
    panic!(
        "`{name}` is not installed: this test needs a real Prometheus; run scripts/setup-test-deps.sh \
         (apt-get install -y prometheus) and try again"
    );
}

/// `promtool check metrics` on an exposition: (passed, what it said).
fn promtool_check(promtool: &str, exposition: &str) -> (bool, String) {
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn promtool");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(exposition.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// The value of the first series `query` returns now, if any.
fn query(prom: SocketAddr, q: &str) -> Option<f64> {
    let enc: String = q
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'-' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    let (status, body) = http_get(prom, &format!("/api/v1/query?query={enc}"))?;
    if status != 200 {
        return None;
    }
    let v: serde_json::Value = serde_json::from_str(&body).ok()?;
    let first = v["data"]["result"].as_array()?.first()?.clone();
    first["value"][1].as_str()?.parse().ok()
}

#[test]
fn prometheus_scrapes_a_run_and_a_server() {
    let prometheus = find_tool("prometheus");
    let promtool = find_tool("promtool");
    let dir = tempfile::tempdir().unwrap();
    let ws_port = free_port();
    let client_port = free_port();
    let server_port = free_port();
    let prom_port = free_port();
    let prom_addr: SocketAddr = format!("127.0.0.1:{prom_port}").parse().unwrap();
    let client_addr: SocketAddr = format!("127.0.0.1:{client_port}").parse().unwrap();
    let server_addr: SocketAddr = format!("127.0.0.1:{server_port}").parse().unwrap();

    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n\
             \x20 - job_name: wsherd-run\n    static_configs:\n      - targets: ['127.0.0.1:{client_port}']\n\
             \x20 - job_name: wsherd-serve\n    static_configs:\n      - targets: ['127.0.0.1:{server_port}']\n"
        ),
    )
    .unwrap();
    let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
    let _prom = Guard(
        Command::new(&prometheus)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={prom_addr}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start prometheus"),
    );
    let _serve = Guard(
        Command::new(env!("CARGO_BIN_EXE_wsherd"))
            .args([
                "serve",
                "--addr",
                &format!("127.0.0.1:{ws_port}"),
                "--shards",
                "1",
                "-q",
            ])
            .args(["--metrics-addr", &server_addr.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start wsherd serve"),
    );
    let prom_log =
        || std::fs::read_to_string(dir.path().join("prometheus.log")).unwrap_or_default();
    let t0 = Instant::now();
    while http_get(prom_addr, "/-/ready").map(|r| r.0) != Some(200) {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "prometheus did not become ready:\n{}",
            prom_log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    let started = Instant::now();
    let mut run = Guard(
        Command::new(env!("CARGO_BIN_EXE_wsherd"))
            .args([
                "run",
                &format!("ws://127.0.0.1:{ws_port}/"),
                "-c",
                "20",
                "-d",
                "6s",
                "-q",
            ])
            .args(["--metrics-addr", &client_addr.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start wsherd run"),
    );
    // Mid-run: both expositions pass promtool's checks.
    std::thread::sleep(Duration::from_secs(3));
    for (who, addr) in [("run", client_addr), ("serve", server_addr)] {
        let (status, body) =
            http_get(addr, "/metrics").unwrap_or_else(|| panic!("{who}: no /metrics"));
        assert_eq!(status, 200, "{who}: {body}");
        let (ok, said) = promtool_check(&promtool, &body);
        assert!(
            ok,
            "promtool check metrics on {who}'s exposition: {said}\n{body}"
        );
        assert_eq!(http_get(addr, "/nope").map(|r| r.0), Some(404), "{who}");
    }
    let status = loop {
        if let Some(s) = run.0.try_wait().unwrap() {
            break s;
        }
        assert!(
            started.elapsed() < Duration::from_secs(40),
            "the run did not end"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut err = String::new();
    let _ = run.0.stderr.take().unwrap().read_to_string(&mut err);
    assert!(status.success(), "wsherd run: {status:?} {err}");

    // Prometheus holds both sides' series (allow a few scrapes to land).
    let checks = [
        "max_over_time(wsherd_client_messages_sent_total[1m])",
        "max_over_time(wsherd_client_connections_opened_total[1m])",
        "max_over_time(wsherd_client_rtt_seconds_count[1m])",
        "max_over_time(wsherd_client_connections_active[1m])",
        "max_over_time(wsherd_server_connections_total[1m])",
        "max_over_time(wsherd_server_messages_total[1m])",
        "max_over_time(wsherd_server_message_handling_duration_seconds_count[1m])",
    ];
    let t0 = Instant::now();
    let mut missing: Vec<&str> = checks.to_vec();
    while !missing.is_empty() && t0.elapsed() < Duration::from_secs(15) {
        missing.retain(|q| !query(prom_addr, q).is_some_and(|v| v > 0.0));
        if !missing.is_empty() {
            std::thread::sleep(Duration::from_millis(500));
        }
    }
    assert!(
        missing.is_empty(),
        "no data in Prometheus for {missing:?}\n{}",
        prom_log()
    );
    assert_eq!(
        query(
            prom_addr,
            "max_over_time(wsherd_client_connections_active[1m])"
        ),
        Some(20.0)
    );
    // Latency percentiles come out of the histogram buckets (whole run: the
    // buckets are cumulative, so their last values hold every sample).
    let q = "histogram_quantile(0.99, sum by (le) (max_over_time(wsherd_client_rtt_seconds_bucket[1m])))";
    let t0 = Instant::now();
    let p99 = loop {
        let v = query(prom_addr, q);
        if v.is_some_and(|v| v > 0.0) || t0.elapsed() > Duration::from_secs(5) {
            break v;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    assert!(
        p99.is_some_and(|v| v > 0.0 && v < 5.0),
        "rtt p99 from Prometheus: {p99:?}"
    );
    assert_eq!(query(prom_addr, "up{job=\"wsherd-serve\"}"), Some(1.0));
}

/// The monitoring kit stays in step with the metrics: its Prometheus config is
/// valid, and every metric the Grafana dashboard queries is one wsherd exports.
#[test]
fn monitoring_kit_matches_the_metrics() {
    let promtool = find_tool("promtool");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/monitoring");
    let out = Command::new(&promtool)
        .args(["check", "config"])
        .arg(root.join("prometheus.yml"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let (m, client) = wsherd::export::prometheus::ClientMetrics::new();
    // Labelled families show once they have a series.
    let mut interval = wsherd::metrics::Interval::default();
    interval.counters.fail("refused");
    interval.counters.lose("reset");
    interval.counters.error("protocol_error");
    m.observe(&wsherd::metrics::Snapshot {
        shard: 0,
        second: 1,
        open: 1,
        peak_open: 1,
        interval,
        last: false,
        driver: "epoll",
    });
    let (_, server) = wsherd::export::prometheus::ServerMetrics::new();
    let exported = wsherd::export::classic_text(&format!(
        "{}{}",
        wsherd::export::prometheus::exposition(&client),
        wsherd::export::prometheus::exposition(&server)
    ));
    let dashboard = std::fs::read_to_string(root.join("grafana-dashboard.json")).unwrap();
    let doc: serde_json::Value = serde_json::from_str(&dashboard).expect("dashboard is JSON");
    let mut names = Vec::new();
    for panel in doc["panels"].as_array().unwrap() {
        for t in panel["targets"].as_array().into_iter().flatten() {
            let expr = t["expr"].as_str().unwrap();
            let mut rest = expr;
            while let Some(i) = rest.find("wsherd_") {
                let tail = &rest[i..];
                let end = tail
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(tail.len());
                names.push(tail[..end].to_string());
                rest = &tail[end..];
            }
        }
    }
    assert!(names.len() > 10, "{names:?}");
    for n in names {
        assert!(
            exported.contains(&format!("\n{n} "))
                || exported.contains(&format!("\n{n}{{"))
                || exported.contains(&format!("# TYPE {n} ")),
            "the dashboard queries {n}, which wsherd does not export"
        );
    }
}
