//! Exporters: what a run or a server shows while it lasts, as opposed to the
//! reports written at its end.
//!
//! `prometheus` serves `/metrics` in the Prometheus/OpenMetrics text format from a
//! tiny HTTP responder on its own thread, fed once a second by the collector (load
//! side) or by the server's watcher (server side); `progress` draws the live
//! progress line. Neither reaches into a shard: both read what the collector or the
//! server's once-a-second totals already hold, so the hot path stays lock-free.

pub mod progress;
pub mod prometheus;

use crate::error::{Error, Result};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// Parses `--metrics-addr`: `IP:PORT`, or a bare `PORT` (loopback).
pub fn parse_addr(s: &str) -> Result<SocketAddr> {
    let t = s.trim();
    if let Ok(port) = t.trim_start_matches(':').parse::<u16>() {
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    t.parse().map_err(|_| {
        Error::usage(format!(
            "--metrics-addr '{s}' is not IP:PORT or a port (example: 127.0.0.1:9091)"
        ))
    })
}

/// What the responder serves: the current exposition, rendered on each scrape.
pub type Render = Arc<dyn Fn() -> String + Send + Sync>;

/// A running `/metrics` responder; dropping it stops its thread.
pub struct MetricsServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl MetricsServer {
    /// Binds `addr` (an error here, before any load starts, if the port is taken)
    /// and answers `GET /metrics` with `render()`, 404 to anything else.
    pub fn start(addr: SocketAddr, render: Render) -> Result<MetricsServer> {
        let listener = TcpListener::bind(addr).map_err(|e| Error::Bind {
            addr: addr.to_string(),
            why: if e.kind() == std::io::ErrorKind::AddrInUse {
                format!("{e}; the --metrics-addr port is taken, pick another")
            } else {
                format!("{e} (--metrics-addr)")
            },
        })?;
        let addr = listener
            .local_addr()
            .map_err(|e| Error::Runtime(format!("metrics listener: {e}")))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| Error::Runtime(format!("metrics listener: {e}")))?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("wsherd-metrics".into())
            .spawn(move || serve(listener, flag, render))
            .map_err(|e| Error::Runtime(format!("metrics thread: {e}")))?;
        Ok(MetricsServer {
            addr,
            stop,
            thread: Some(thread),
        })
    }

    /// The address actually bound (useful with port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(listener: TcpListener, stop: Arc<AtomicBool>, render: Render) {
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((stream, _)) => {
                let _ = answer(stream, &render);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// Reads one request (headers only, bounded in size and time) and answers it.
fn answer(mut stream: TcpStream, render: &Render) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    stream.set_write_timeout(Some(Duration::from_secs(2)))?;
    let mut req = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    while !req.windows(4).any(|w| w == b"\r\n\r\n") && req.len() < 16 * 1024 {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        req.extend_from_slice(&buf[..n]);
    }
    let line = String::from_utf8_lossy(&req);
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = path.split('?').next().unwrap_or("");
    // Prometheus asks for OpenMetrics; curl, promtool and older scrapers get the
    // classic text format (0.0.4).
    let openmetrics = line
        .lines()
        .filter(|l| l.to_ascii_lowercase().starts_with("accept:"))
        .any(|l| l.contains("application/openmetrics-text"));
    let (status, ctype, body) = if (method == "GET" || method == "HEAD") && path == "/metrics" {
        if openmetrics {
            (
                "200 OK",
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                render(),
            )
        } else {
            (
                "200 OK",
                "text/plain; version=0.0.4; charset=utf-8",
                classic_text(&render()),
            )
        }
    } else {
        (
            "404 Not Found",
            "text/plain; charset=utf-8",
            "not found: metrics are at /metrics\n".to_string(),
        )
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    if method != "HEAD" {
        stream.write_all(body.as_bytes())?;
    }
    stream.flush()
}

/// OpenMetrics text (what prometheus-client writes) as the classic Prometheus text
/// format: counter families are named with their `_total` samples, and the
/// `# UNIT` and `# EOF` lines, which the classic format lacks, are left out.
pub fn classic_text(openmetrics: &str) -> String {
    let counters: std::collections::HashSet<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len());
    for l in openmetrics.lines() {
        if l.starts_with("# UNIT ") || l == "# EOF" {
            continue;
        }
        let meta = ["# HELP ", "# TYPE "]
            .into_iter()
            .find_map(|p| l.strip_prefix(p).map(|rest| (p, rest)));
        match meta {
            Some((p, rest)) => {
                let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                if counters.contains(name) {
                    out.push_str(&format!("{p}{name}_total {tail}"));
                } else {
                    out.push_str(l);
                }
            }
            None => out.push_str(l),
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(addr: SocketAddr, path: &str) -> String {
        get_with(addr, path, "")
    }

    fn get_with(addr: SocketAddr, path: &str, headers: &str) -> String {
        let mut s = TcpStream::connect(addr).unwrap();
        write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n{headers}\r\n").unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    }

    #[test]
    fn answers_metrics_and_404() {
        let m = MetricsServer::start(
            "127.0.0.1:0".parse().unwrap(),
            Arc::new(|| "x_total 1\n# EOF\n".to_string()),
        )
        .unwrap();
        let om = get_with(
            m.addr(),
            "/metrics",
            "Accept: application/openmetrics-text;version=1.0.0,text/plain;q=0.5\r\n",
        );
        assert!(om.starts_with("HTTP/1.1 200 OK"), "{om}");
        assert!(om.contains("application/openmetrics-text"), "{om}");
        assert!(om.ends_with("x_total 1\n# EOF\n"), "{om}");
        let ok = get(m.addr(), "/metrics");
        assert!(ok.contains("text/plain; version=0.0.4"), "{ok}");
        assert!(ok.ends_with("\r\n\r\nx_total 1\n"), "{ok}");
        assert!(get(m.addr(), "/").starts_with("HTTP/1.1 404"));
        assert!(get(m.addr(), "/metricsx").starts_with("HTTP/1.1 404"));
    }

    #[test]
    fn a_taken_port_is_a_clear_error() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let e = MetricsServer::start(l.local_addr().unwrap(), Arc::new(String::new))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("port is taken"), "{e}");
    }

    #[test]
    fn classic_text_names_counters_by_their_samples() {
        let om = "# HELP a Things.\n# TYPE a counter\na_total 3\n# HELP b_seconds B.\n# TYPE b_seconds histogram\n# UNIT b_seconds seconds\nb_seconds_count 0\n# EOF\n";
        assert_eq!(
            classic_text(om),
            "# HELP a_total Things.\n# TYPE a_total counter\na_total 3\n# HELP b_seconds B.\n# TYPE b_seconds histogram\nb_seconds_count 0\n"
        );
    }

    #[test]
    fn addresses_parse() {
        assert_eq!(parse_addr("9091").unwrap().to_string(), "127.0.0.1:9091");
        assert_eq!(parse_addr(":9091").unwrap().to_string(), "127.0.0.1:9091");
        assert_eq!(
            parse_addr("0.0.0.0:9091").unwrap().to_string(),
            "0.0.0.0:9091"
        );
        assert!(parse_addr("nope").is_err());
    }
}
