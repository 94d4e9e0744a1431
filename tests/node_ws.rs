//! Against Node's `ws` (installed by scripts/setup-test-deps.sh) with
//! permessage-deflate: wsherd's compressed messages inflate on a server of
//! another stack, and the server's compress and inflate here
//! (tests/servers/node/ws_deflate.js).

mod support;

use std::time::Duration;
use support::{assert_clean, run, serial, ChildServer};

const LIMIT: Duration = Duration::from_secs(15);

#[test]
fn permessage_deflate_against_node_ws() {
    let _serial = serial();
    let server = ChildServer::script("node", "node/ws_deflate.js", &[], "the Node ws server");
    let url = server.url("/");
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
