//! Against a server of another stack: Python's `websockets` (installed by
//! scripts/setup-test-deps.sh), requiring a bearer token and choosing the
//! subprotocol `chat.v1` (tests/servers/ws_token.py).

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use support::{assert_failed_only_with, check_invariants, run, serial};

/// A run of `-d 2s` must be over well within this.
const LIMIT: Duration = Duration::from_secs(15);

/// The Python server, killed when dropped (it also exits by itself after 60 s).
struct PyServer {
    child: Child,
    port: u16,
}

impl PyServer {
    fn start() -> PyServer {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/servers/ws_token.py");
        let mut child = Command::new("python3")
            .args([script, "60"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 runs (scripts/setup-test-deps.sh installs what the tests need)");
        let mut line = String::new();
        let stdout = child.stdout.take().expect("stdout");
        BufReader::new(stdout).read_line(&mut line).ok();
        let Ok(port) = line.trim().parse() else {
            let _ = child.kill();
            panic!(
                "the Python websockets server did not start (is `websockets` installed? run scripts/setup-test-deps.sh)"
            );
        };
        PyServer { child, port }
    }

    fn url(&self) -> String {
        format!("ws://127.0.0.1:{}/", self.port)
    }
}

impl Drop for PyServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_token_and_a_subprotocol_against_python_websockets() {
    let _serial = serial();
    let server = PyServer::start();
    let url = server.url();
    let res = run(
        &[
            &url,
            "-c",
            "10",
            "-d",
            "2s",
            "-q",
            "-H",
            "Authorization: Bearer t0k",
            "--subprotocol",
            "chat.v2,chat.v1",
            "--require-subprotocol",
        ],
        LIMIT,
    );
    check_invariants(&res);
    assert_eq!(res.connections.established, 10, "{:?}", res.connections);
    assert!(res.messages.received > 0);
    assert_eq!(
        res.connections.subprotocols.get("chat.v1"),
        Some(&10),
        "{:?}",
        res.connections.subprotocols
    );
    // Without the token: the server's 401, counted as such.
    let res = run(&[&url, "-c", "3", "-d", "1s", "-q"], LIMIT);
    assert_failed_only_with(&res, "http_401");
}
