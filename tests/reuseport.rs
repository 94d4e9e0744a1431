//! Several `wsherd serve` processes on one port: with `--reuse-port` every shard
//! of every process binds its own SO_REUSEPORT listener, so a second process
//! joins the first and the kernel spreads connections over both; without it, a
//! second server on a port already served is refused with a clear error rather
//! than silently taking half the load.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A `wsherd serve` subprocess; stopped (SIGTERM, then SIGKILL) when dropped, so a
/// failing test leaves no server behind.
struct Serve {
    child: Child,
    /// Stderr lines as they come.
    lines: mpsc::Receiver<String>,
    reader: Option<JoinHandle<()>>,
    seen: Vec<String>,
}

impl Serve {
    fn start(addr: &str, core: &str) -> Serve {
        let mut child = Command::new(env!("CARGO_BIN_EXE_wsherd"))
            .args([
                "serve",
                "--addr",
                addr,
                "--reuse-port",
                "--shards",
                "1",
                "--first-core",
                core,
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn wsherd serve");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, lines) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut s = Serve {
            child,
            lines,
            reader: Some(reader),
            seen: Vec::new(),
        };
        s.wait_for("Ctrl-C stops", Duration::from_secs(10));
        s
    }

    /// Waits for a stderr line containing `what` and returns it.
    fn wait_for(&mut self, what: &str, limit: Duration) -> String {
        let until = Instant::now() + limit;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(what) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "wsherd serve printed no line with {what:?} within {limit:?}; it printed {:?}",
                    self.seen
                ),
            }
        }
    }

    /// Stops the server as Ctrl-C or a service manager would (SIGTERM) and returns
    /// the connections it says it served.
    fn stop(mut self) -> u64 {
        self.signal(libc::SIGTERM);
        let line = self.wait_for("stopped;", Duration::from_secs(10));
        // "wsherd serve: stopped; N connections, ..."
        line.split("stopped;")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.replace(',', "").parse().ok())
            .unwrap_or_else(|| panic!("no connection count in {line:?}"))
    }

    fn signal(&self, sig: libc::c_int) {
        // SAFETY: kill(2) on our own child's pid; no memory is involved.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, sig);
        }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.signal(libc::SIGTERM);
            let until = Instant::now() + Duration::from_secs(5);
            while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
    }
}

#[test]
fn a_second_server_without_reuse_port_is_refused() {
    let _serial = support::serial();
    let port = support::closed_port();
    let addr = format!("127.0.0.1:{port}");
    let _first = Serve::start(&addr, "0");
    let out = Command::new(env!("CARGO_BIN_EXE_wsherd"))
        .args(["serve", "--addr", &addr, "--shards", "1", "-q"])
        .stdin(Stdio::null())
        .output()
        .expect("run wsherd serve");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("something already listens there"), "{err}");
    assert!(err.contains("--reuse-port"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn two_serve_processes_share_one_port() {
    let _serial = support::serial();
    let port = support::closed_port();
    let addr = format!("127.0.0.1:{port}");
    let a = Serve::start(&addr, "0");
    // The second process binds the same address: it must join, not fail.
    let b = Serve::start(&addr, "1");
    let url = format!("ws://{addr}/");
    let res = support::run(
        &[&url, "-c", "400", "-d", "2s", "-q"],
        Duration::from_secs(30),
    );
    support::assert_clean(&res, 400);
    let (na, nb) = (a.stop(), b.stop());
    assert!(
        na > 0 && nb > 0,
        "both processes should have served connections: {na} and {nb}"
    );
    assert_eq!(na + nb, 400, "connections served: {na} + {nb}");
}
