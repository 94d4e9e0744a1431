//! wss://: the load over TLS against the built-in server serving TLS (its
//! self-signed mode and certificate files the test makes), in every shape of
//! connection loop (closed loop, open loop, sessions, broadcast); certificate
//! failures counted by cause with their fix on stderr; --insecure, --sni,
//! resumption on and off; and TLS flags refused where they cannot work.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;
use support::{
    assert_failed_only_with, assert_usage_errors, run, run_bin, serial, serve_builtin, Server,
};

const LIMIT: Duration = Duration::from_secs(20);

/// The built-in server over TLS with a certificate made at start; its CA's PEM
/// in `dir`.
fn tls_server(dir: &Path, knobs: &[&str]) -> (wsherd::server::ServerHandle, PathBuf) {
    let ca = dir.join("ca.pem");
    let mut all = vec!["--tls-self-signed", "--tls-ca-out", ca.to_str().unwrap()];
    all.extend_from_slice(knobs);
    let server = serve_builtin("1", &all);
    assert!(ca.exists(), "--tls-ca-out writes the CA");
    (server, ca)
}

fn wss(server: &wsherd::server::ServerHandle, host: &str) -> String {
    format!("wss://{host}:{}/", server.addr().port())
}

/// What every TLS run must show: each established connection made a TLS
/// handshake, timed, and the report names what was negotiated.
fn assert_tls(res: &wsherd::results::RunResults) {
    let t = res.connections.tls.as_ref().expect("a wss run reports TLS");
    assert!(
        t.full + t.resumed >= res.connections.established,
        "{t:?} vs {} established",
        res.connections.established
    );
    assert!(
        t.negotiated.keys().all(|k| k.starts_with("TLSv1.")),
        "{t:?}"
    );
    let tls = res.latency.tls.as_ref().expect("a TLS latency");
    assert!(tls.count >= res.connections.established);
    assert!(tls.p50_us > 0.0);
}

#[test]
fn every_loop_runs_over_tls_against_the_builtin_server() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let (server, ca) = tls_server(dir.path(), &[]);
    let url = wss(&server, "127.0.0.1");
    let ca = ca.to_str().unwrap();
    // Closed loop (from two source addresses), open loop (reader and writer on
    // split halves), and an idle hold with heartbeats: a ledger that balances,
    // every connection over TLS.
    for shape in [
        &[
            "-c",
            "8",
            "-d",
            "1s",
            "--inflight",
            "4",
            "--source-ip",
            "127.0.0.2-3",
        ][..],
        &["-c", "8", "-d", "1s", "--rate", "800", "-s", "1k"][..],
        &["-c", "8", "-d", "1s", "-w", "idle", "--heartbeat", "200ms"][..],
    ] {
        let mut args = vec![url.as_str(), "--ca", ca, "-q"];
        args.extend_from_slice(shape);
        let res = run(&args, LIMIT);
        support::assert_clean(&res, 8);
        assert_tls(&res);
        let t = res.connections.tls.as_ref().unwrap();
        assert!(t.verified && t.resumption, "{t:?}");
        assert!(res.messages.received > 0, "{shape:?}: {:?}", res.messages);
    }
    // Messages larger than a TLS record (16 KiB) come back whole.
    let res = run(
        &[
            &url, "--ca", ca, "-q", "-c", "2", "-d", "1s", "-s", "40k", "--text",
        ],
        LIMIT,
    );
    support::assert_clean(&res, 2);
    assert!(res.messages.received > 0);
}

#[test]
fn sessions_resume_unless_told_not_to() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let (server, ca) = tls_server(dir.path(), &[]);
    let url = wss(&server, "localhost");
    let ca = ca.to_str().unwrap();
    let base = [
        url.as_str(),
        "--ca",
        ca,
        "-q",
        "-w",
        "churn",
        "-c",
        "4",
        "-d",
        "1s",
    ];
    let res = run(&base, LIMIT);
    assert_tls(&res);
    let t = res.connections.tls.as_ref().unwrap();
    assert!(
        res.sessions.as_ref().unwrap().completed > 20,
        "{:?}",
        res.sessions
    );
    assert!(t.resumed > t.full, "resumption on by default: {t:?}");
    let mut off = base.to_vec();
    off.push("--no-tls-resume");
    let res = run(&off, LIMIT);
    let t = res.connections.tls.as_ref().unwrap();
    assert_eq!(t.resumed, 0, "{t:?}");
    assert!(t.full > 20 && !t.resumption, "{t:?}");
}

#[test]
fn broadcast_over_tls_delivers_every_copy() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let (server, ca) = tls_server(dir.path(), &["--mode", "broadcast"]);
    let url = wss(&server, "127.0.0.1");
    let res = run(
        &[
            &url,
            "--ca",
            ca.to_str().unwrap(),
            "-q",
            "-w",
            "broadcast",
            "-c",
            "6",
            "--rate",
            "50",
            "-d",
            "2s",
        ],
        LIMIT,
    );
    assert_tls(&res);
    let b = res.broadcast.as_ref().expect("broadcast results");
    assert!(b.delivered > 0 && b.missing == 0, "{b:?}");
}

#[test]
fn run_tls_loads_the_embedded_server_over_tls() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("out.json");
    let prefix = dir.path().join("h");
    let res = run(
        &[
            "--tls",
            "-q",
            "-c",
            "4",
            "-d",
            "1s",
            "--json",
            json.to_str().unwrap(),
            "--hgrm",
            prefix.to_str().unwrap(),
            "--threshold",
            "tls.p99<5s",
        ],
        LIMIT,
    );
    support::assert_clean(&res, 4);
    assert_tls(&res);
    assert!(
        res.config.targets[0].starts_with("wss://"),
        "{:?}",
        res.config.targets
    );
    assert!(
        res.thresholds.iter().all(|t| t.passed),
        "{:?}",
        res.thresholds
    );
    // The TLS latency in every file: the JSON (valid against its schema) and hgrm.
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let schema: serde_json::Value = serde_json::from_str(wsherd::results::RESULTS_SCHEMA).unwrap();
    let v = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = v.iter_errors(&doc).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{errors:?}");
    assert!(doc["latency"]["tls"]["count"].as_u64() >= Some(4));
    assert!(doc["connections"]["tls"]["negotiated"].is_object());
    let hgrm = std::fs::read_to_string(dir.path().join("h.tls.hgrm")).unwrap();
    assert!(hgrm.contains("Percentile"), "{hgrm}");
}

#[test]
fn an_untrusted_certificate_fails_by_cause_and_says_the_fix() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let (server, ca) = tls_server(dir.path(), &[]);
    let url = wss(&server, "127.0.0.1");
    let json = dir.path().join("out.json");
    let json = json.to_str().unwrap();
    // `wsherd run URL -c 2 -d 1s --json FILE EXTRA...` in a process of its own:
    // what it printed and the results it wrote.
    let run_json = |extra: &[&str]| {
        let mut args = vec!["run", url.as_str(), "-c", "2", "-d", "1s", "--json", json];
        args.extend_from_slice(extra);
        let out = run_bin(&args, LIMIT);
        let text = std::fs::read_to_string(json).unwrap_or_else(|e| panic!("{e}: {out:?}"));
        std::fs::remove_file(json).unwrap();
        let res: wsherd::results::RunResults = serde_json::from_str(&text).unwrap();
        (out, res)
    };
    // Without the CA: unknown issuer, and the fix on stderr once.
    let (out, res) = run_json(&["--connect-rate", "0"]);
    assert_failed_only_with(&res, "tls_unknown_issuer");
    assert_eq!(
        out.stderr.matches("tls_unknown_issuer:").count(),
        1,
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("--ca FILE") && out.stderr.contains("--insecure"));
    // --insecure: connects, and says so on stderr and in the report.
    let (out, res) = run_json(&["--insecure"]);
    assert_eq!(res.connections.established, 2, "{}", out.stderr);
    assert!(!res.connections.tls.as_ref().unwrap().verified);
    assert!(out.stderr.contains("not verified"), "{}", out.stderr);
    // A name the certificate does not hold: the mismatch names what it holds.
    let ca = ca.to_str().unwrap();
    let (out, res) = run_json(&["--ca", ca, "--sni", "example.com"]);
    assert_failed_only_with(&res, "tls_name_mismatch");
    assert!(
        out.stderr.contains("example.com") && out.stderr.contains("localhost"),
        "{}",
        out.stderr
    );
    // --sni naming a name it holds, while connecting by address: fine.
    let res = run(
        &[
            &url,
            "--ca",
            ca,
            "--sni",
            "localhost",
            "-q",
            "-c",
            "2",
            "-d",
            "1s",
        ],
        LIMIT,
    );
    assert_eq!(res.connections.established, 2);
}

/// A CA and a leaf it signed for `names`, valid between the two times; PEM files
/// in `dir`: (ca, cert chain, key).
fn make_certs(
    dir: &Path,
    names: &[&str],
    not_before: std::time::SystemTime,
    not_after: std::time::SystemTime,
) -> (PathBuf, PathBuf, PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let mut leaf = CertificateParams::new(names).unwrap();
    leaf.not_before = not_before.into();
    leaf.not_after = not_after.into();
    let key = KeyPair::generate().unwrap();
    let cert = leaf.signed_by(&key, &ca).unwrap();
    let paths = (
        dir.join("ca.pem"),
        dir.join("cert.pem"),
        dir.join("key.pem"),
    );
    std::fs::write(&paths.0, ca.pem()).unwrap();
    std::fs::write(&paths.1, cert.pem() + &ca.pem()).unwrap();
    std::fs::write(&paths.2, key.serialize_pem()).unwrap();
    paths
}

#[test]
fn expired_and_wrong_host_certificates_from_files() {
    let _serial = serial();
    let day = Duration::from_secs(86_400);
    let now = std::time::SystemTime::now();
    for (names, from, until, cause) in [
        (
            &["127.0.0.1"][..],
            now - 30 * day,
            now - day,
            "tls_cert_expired",
        ),
        (
            &["127.0.0.1"][..],
            now + day,
            now + 30 * day,
            "tls_cert_not_yet_valid",
        ),
        (
            &["other.example"][..],
            now - day,
            now + day,
            "tls_name_mismatch",
        ),
        (&["127.0.0.1"][..], now - day, now + day, ""),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let (ca, cert, key) = make_certs(dir.path(), names, from, until);
        let server = serve_builtin(
            "1",
            &[
                "--tls-cert",
                cert.to_str().unwrap(),
                "--tls-key",
                key.to_str().unwrap(),
            ],
        );
        let url = wss(&server, "127.0.0.1");
        let res = run(
            &[
                &url,
                "--ca",
                ca.to_str().unwrap(),
                "-q",
                "-c",
                "2",
                "-d",
                "1s",
            ],
            LIMIT,
        );
        if cause.is_empty() {
            support::assert_clean(&res, 2);
            assert_tls(&res);
        } else {
            assert_failed_only_with(&res, cause);
        }
    }
}

#[test]
fn silent_and_closing_servers_fail_the_tls_handshake_by_name() {
    let _serial = serial();
    // Accepts and says nothing: the TLS handshake times out, named as such.
    let silent = support::silent_server();
    let url = format!("wss://127.0.0.1:{}/", silent.addr().port());
    let res = run(
        &[
            &url,
            "--insecure",
            "-q",
            "-c",
            "2",
            "-d",
            "2s",
            "--connect-timeout",
            "300ms",
        ],
        LIMIT,
    );
    assert!(
        res.connections
            .failed_by_cause
            .keys()
            .all(|c| c == "tls_handshake_timeout")
            && res.connections.failed > 0,
        "{:?}",
        res.connections.failed_by_cause
    );
    // Reads the ClientHello and closes (FIN, nothing unread: no reset): closed
    // during the TLS handshake.
    let closing = Server::spawn("closing", |mut tcp, _stats| async move {
        use tokio::io::AsyncReadExt;
        let mut hello = [0u8; 4096];
        let _ = tcp.read(&mut hello).await;
        drop(tcp);
    });
    let url = format!("wss://127.0.0.1:{}/", closing.addr().port());
    let res = run(&[&url, "--insecure", "-q", "-c", "2", "-d", "1s"], LIMIT);
    assert!(
        res.connections
            .failed_by_cause
            .keys()
            .all(|c| c == "closed_during_tls" || c == "reset"),
        "{:?}",
        res.connections.failed_by_cause
    );
    assert!(res
        .connections
        .failed_by_cause
        .contains_key("closed_during_tls"));
}

#[test]
fn wss_to_a_plain_server_says_it_is_not_tls() {
    let _serial = serial();
    let server = serve_builtin("1", &[]);
    let url = wss(&server, "127.0.0.1");
    let res = run(&[&url, "--insecure", "-q", "-c", "2", "-d", "1s"], LIMIT);
    assert_failed_only_with(&res, "tls_not_tls");
}

#[test]
fn tls_flags_are_refused_where_they_cannot_work() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, "-----BEGIN CERTIFICATE-----\nnot base64!\n").unwrap();
    let junk = junk.to_str().unwrap();
    let missing = dir.path().join("missing.pem");
    let missing = missing.to_str().unwrap();
    assert_usage_errors(&[
        (
            &["ws://127.0.0.1:9/", "--ca", junk],
            "--ca applies to wss://",
        ),
        (
            &["ws://127.0.0.1:9/", "--insecure"],
            "--insecure applies to wss://",
        ),
        (&["--insecure"], "add --tls"),
        (&["ws://127.0.0.1:9/", "--tls"], "write its URL as wss://"),
        (&["wss://127.0.0.1:9/", "--ca", missing], "--ca"),
        (&["wss://127.0.0.1:9/", "--ca", junk], "not a readable PEM"),
        (&["wss://127.0.0.1:9/", "--cert", junk], "--key"),
        (
            &["wss://127.0.0.1:9/", "--cert", junk, "--key", junk],
            "--cert",
        ),
    ]);
    let out = run_bin(
        &["serve", "--tls-cert", missing, "--tls-key", missing],
        LIMIT,
    );
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(out.stderr.contains("--tls-cert"), "{}", out.stderr);
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
}

#[test]
fn agents_over_tls_merge_their_handshakes() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let (server, ca) = tls_server(dir.path(), &[]);
    let url = wss(&server, "127.0.0.1");
    let ca = ca.to_str().unwrap();
    let parts: Vec<_> = ["1/2", "2/2"]
        .iter()
        .map(|a| {
            run(
                &[&url, "--ca", ca, "-q", "-c", "6", "-d", "1s", "--agent", a],
                LIMIT,
            )
        })
        .collect();
    let merged = wsherd::merge::merge(&parts, wsherd::merge::Timing::Parallel);
    let t = merged.connections.tls.as_ref().expect("merged TLS");
    assert_eq!(t.full + t.resumed, 6, "{t:?}");
    assert_eq!(t.negotiated.values().sum::<u64>(), 6, "{t:?}");
    assert!(t.verified && t.resumption);
    assert_eq!(merged.latency.tls.as_ref().map(|l| l.count), Some(6));
}

#[test]
fn scenario_files_take_the_tls_keys() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let (server, ca) = tls_server(dir.path(), &[]);
    let text = format!(
        r#"
mode = "sequential"
url = "{}"
ca = ["{}"]

[[scenario]]
name = "resumed"
workload = "churn"
connections = 2
duration = "1s"

[[scenario]]
name = "full"
workload = "churn"
connections = 2
duration = "1s"
no-tls-resume = true
"#,
        wss(&server, "localhost"),
        ca.display()
    );
    let file = wsherd::scenario::parse(&text, "tls.toml").unwrap();
    let res = wsherd::scenario::run(file, true).unwrap();
    let tls = |i: usize| res.scenarios[i].results.connections.tls.clone().unwrap();
    assert!(tls(0).resumed > 0 && tls(0).resumption, "{:?}", tls(0));
    assert!(tls(1).resumed == 0 && tls(1).full > 0, "{:?}", tls(1));
}
