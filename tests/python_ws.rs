//! Against a server of another stack: Python's `websockets` (installed by
//! scripts/setup-test-deps.sh), requiring a bearer token and choosing the
//! subprotocol `chat.v1` (tests/servers/ws_token.py), over ws:// and over wss://
//! with a CA the test makes (Python's ssl, OpenSSL underneath), with and without
//! a client certificate required.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;
use support::{assert_failed_only_with, check_invariants, run, serial, ChildServer};

/// A run of `-d 2s` must be over well within this.
const LIMIT: Duration = Duration::from_secs(15);

/// The Python server (it exits by itself after 60 s), with `tls` options.
fn py_server(tls: &[&str]) -> ChildServer {
    ChildServer::script(
        "python3",
        "ws_token.py",
        tls,
        "the Python websockets server",
    )
}

/// `wss://localhost:PORT/` (the name the test's certificate holds).
fn wss_url(server: &ChildServer) -> String {
    format!("wss://localhost:{}/", server.port)
}

#[test]
fn a_token_and_a_subprotocol_against_python_websockets() {
    let _serial = serial();
    let server = py_server(&[]);
    let url = server.url("/");
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

/// A CA and a leaf certificate it signed for `name`, as PEM files in `dir` named
/// after `stem`: (ca, chain, key).
fn pki(dir: &Path, stem: &str, name: &str) -> (PathBuf, PathBuf, PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
    // Distinct names: OpenSSL takes a leaf whose issuer is its own subject for a
    // self-signed certificate.
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, format!("{stem} test CA"));
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut leaf = CertificateParams::new(vec![name.to_string()]).unwrap();
    leaf.distinguished_name.push(DnType::CommonName, name);
    let cert = leaf.signed_by(&key, &ca).unwrap();
    let files = (
        dir.join(format!("{stem}-ca.pem")),
        dir.join(format!("{stem}.pem")),
        dir.join(format!("{stem}-key.pem")),
    );
    std::fs::write(&files.0, ca.pem()).unwrap();
    std::fs::write(&files.1, cert.pem()).unwrap();
    std::fs::write(&files.2, key.serialize_pem()).unwrap();
    files
}

#[test]
fn wss_with_a_token_and_mutual_tls_against_python_websockets() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = pki(dir.path(), "server", "localhost");
    let (client_ca, client_cert, client_key) = pki(dir.path(), "client", "load.example");
    let p = |f: &PathBuf| f.to_str().unwrap().to_string();
    let (ca, cert, key) = (p(&ca), p(&cert), p(&key));
    let (client_ca, client_cert, client_key) = (p(&client_ca), p(&client_cert), p(&client_key));

    // wss:// with the token and the subprotocol, verified against the test's CA.
    let server = py_server(&["--cert", &cert, "--key", &key]);
    let url = wss_url(&server);
    let res = run(
        &[
            &url,
            "--ca",
            &ca,
            "-c",
            "6",
            "-d",
            "2s",
            "-q",
            "-H",
            "Authorization: Bearer t0k",
            "--subprotocol",
            "chat.v1",
        ],
        LIMIT,
    );
    assert_eq!(res.connections.established, 6, "{:?}", res.connections);
    assert!(res.messages.received > 0);
    let tls = res.connections.tls.as_ref().expect("TLS reported");
    assert_eq!(tls.full + tls.resumed, 6, "{tls:?}");
    assert!(res.latency.tls.as_ref().is_some_and(|l| l.count == 6));
    drop(server);

    // wss:// with permessage-deflate as websockets negotiates it.
    let server = py_server(&["--cert", &cert, "--key", &key, "--deflate"]);
    let url = wss_url(&server);
    let res = run(
        &[
            &url,
            "--ca",
            &ca,
            "-c",
            "4",
            "-d",
            "2s",
            "-q",
            "-H",
            "Authorization: Bearer t0k",
            "--deflate",
            "--text",
            "-s",
            "1k",
        ],
        LIMIT,
    );
    assert_eq!(res.connections.established, 4, "{:?}", res.connections);
    let d = res.connections.deflate.as_ref().expect("deflate reported");
    assert_eq!(d.negotiated, 4, "{d:?}");
    assert!(res.messages.received > 0);
    assert!(d.wire_bytes_received < d.message_bytes_received, "{d:?}");
    // Unknown to the system's roots without --ca.
    let res = run(&[&url, "-c", "2", "-d", "1s", "-q"], LIMIT);
    assert_failed_only_with(&res, "tls_unknown_issuer");
    drop(server);

    // Mutual TLS: without a client certificate the server refuses the handshake;
    // with one its CA signed, the run goes through.
    let server = py_server(&["--cert", &cert, "--key", &key, "--client-ca", &client_ca]);
    let url = wss_url(&server);
    let auth = ["-H", "Authorization: Bearer t0k"];
    let mut no_cert = vec![url.as_str(), "--ca", &ca, "-c", "2", "-d", "1s", "-q"];
    no_cert.extend_from_slice(&auth);
    let res = run(&no_cert, LIMIT);
    assert_eq!(res.connections.established, 0, "{:?}", res.connections);
    assert!(
        res.connections
            .failed_by_cause
            .keys()
            // OpenSSL's alert, or its reset (it closes with our request unread).
            .all(|c| c.starts_with("tls_") || c == "reset" || c == "closed_during_handshake"),
        "{:?}",
        res.connections.failed_by_cause
    );
    let mut with_cert = no_cert.clone();
    with_cert.extend_from_slice(&["--cert", &client_cert, "--key", &client_key]);
    let res = run(&with_cert, LIMIT);
    assert_eq!(res.connections.established, 2, "{:?}", res.connections);
    assert!(res.messages.received > 0);
}
