//! Against Node's `ws` (installed by scripts/setup-test-deps.sh) with
//! permessage-deflate: wsherd's compressed messages inflate on a server of
//! another stack, and the server's compress and inflate here
//! (tests/servers/node/ws_deflate.js).

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use support::{assert_clean, run, serial};

const LIMIT: Duration = Duration::from_secs(15);

/// The Node server, killed when dropped (it also exits by itself after 60 s).
struct NodeServer {
    child: Child,
    port: u16,
}

impl NodeServer {
    fn start() -> NodeServer {
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/servers/node/ws_deflate.js"
        );
        let mut child = Command::new("node")
            .args([script, "60"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("node runs (scripts/setup-test-deps.sh installs what the tests need)");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .ok();
        let Ok(port) = line.trim().parse() else {
            let _ = child.kill();
            panic!("the Node ws server did not start (is `ws` installed? run scripts/setup-test-deps.sh)");
        };
        NodeServer { child, port }
    }
}

impl Drop for NodeServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn permessage_deflate_against_node_ws() {
    let _serial = serial();
    let server = NodeServer::start();
    let url = format!("ws://127.0.0.1:{}/", server.port);
    for options in [
        "--deflate",
        "--deflate=client_no_context_takeover,server_no_context_takeover",
    ] {
        for payload in [&["--text", "-s", "1k"][..], &["--binary", "-s", "200"][..]] {
            let mut args = vec![url.as_str(), options, "-q", "-c", "4", "-d", "1s"];
            args.extend_from_slice(payload);
            let res = run(&args, LIMIT);
            assert_clean(&res, 4);
            let d = res.connections.deflate.as_ref().expect("deflate reported");
            assert_eq!(d.negotiated, 4, "{options}: {d:?}");
            assert!(res.messages.received > 100, "{:?}", res.messages);
            // Node compresses every message (threshold 0): fewer bytes on the wire.
            assert!(
                d.wire_bytes_received < d.message_bytes_received,
                "{options}: {d:?}"
            );
        }
    }
}
