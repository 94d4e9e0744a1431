//! Loads through an HTTP CONNECT proxy the test starts on loopback (it requires
//! basic auth, then tunnels to the target): the connections go through it, and
//! a proxy that refuses, denies or is not there fails them with its own cause.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::Server;
use support::{
    assert_failed_only_with, assert_usage_errors, check_invariants, closed_port, echo_server, run,
    serial,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A run of `-d 2s` must be over well within this.
const LIMIT: Duration = Duration::from_secs(15);

/// `user:pass`, base64.
const CREDENTIALS: &str = "dXNlcjpwYXNz";

/// The CONNECT targets the proxy was asked for.
type Asked = Arc<Mutex<Vec<String>>>;

/// A CONNECT proxy: 407 without `Proxy-Authorization: Basic user:pass`, else a
/// tunnel to what was asked for.
fn connect_proxy() -> (Server, Asked) {
    let asked: Asked = Arc::default();
    let log = asked.clone();
    let server = Server::spawn("connect-proxy", move |stream, _stats| {
        tunnel(stream, log.clone())
    });
    (server, asked)
}

async fn tunnel(mut client: TcpStream, asked: Asked) {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match client.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
        if head.len() > 8192 {
            return;
        }
    }
    let text = String::from_utf8_lossy(&head).to_string();
    let mut words = text.split_whitespace();
    let (Some("CONNECT"), Some(target)) = (words.next(), words.next()) else {
        let _ = client
            .write_all(b"HTTP/1.1 405 Method Not Allowed\r\n\r\n")
            .await;
        return;
    };
    asked
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(target.to_string());
    let authorized = text
        .lines()
        .any(|l| l.eq_ignore_ascii_case(&format!("proxy-authorization: basic {CREDENTIALS}")));
    if !authorized {
        let _ = client
            .write_all(b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"t\"\r\nContent-Length: 0\r\n\r\n")
            .await;
        return;
    }
    let Ok(mut upstream) = TcpStream::connect(target).await else {
        let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n").await;
        return;
    };
    if client
        .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
        .await
        .is_err()
    {
        return;
    }
    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
}

#[test]
fn connections_go_through_the_proxy_tunnel() {
    let _serial = serial();
    let target = echo_server();
    let (proxy, asked) = connect_proxy();
    let proxy_url = format!("http://user:pass@{}", proxy.addr());
    let url = target.url();
    let res = run(
        &[&url, "-c", "10", "-d", "2s", "-q", "--proxy", &proxy_url],
        LIMIT,
    );
    check_invariants(&res);
    assert_eq!(res.connections.established, 10, "{:?}", res.connections);
    assert!(res.messages.received > 0);
    assert_eq!(
        res.config.proxies,
        vec![format!("http://{}", proxy.addr())],
        "credentials are left out"
    );
    let text = support::summary_text(&res);
    assert!(
        text.contains(&format!("through proxy http://{}", proxy.addr())),
        "{text}"
    );
    let schema: serde_json::Value =
        serde_json::from_str(wsherd::results::RESULTS_SCHEMA).expect("schema is JSON");
    let doc = serde_json::to_value(&res).expect("results serialize");
    let v = jsonschema::validator_for(&schema).expect("schema compiles");
    let errors: Vec<String> = v.iter_errors(&doc).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "schema violations: {errors:#?}");
    let asked = asked.lock().unwrap();
    assert_eq!(asked.len(), 10, "{asked:?}");
    let authority = target.addr().to_string();
    assert!(asked.iter().all(|a| *a == authority), "{asked:?}");
}

#[test]
fn wss_goes_through_the_tunnel_with_tls_end_to_end() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    let target = support::serve_builtin(
        "1",
        &["--tls-self-signed", "--tls-ca-out", ca.to_str().unwrap()],
    );
    let (proxy, asked) = connect_proxy();
    let proxy_url = format!("http://user:pass@{}", proxy.addr());
    let url = format!("wss://localhost:{}/", target.addr().port());
    let res = run(
        &[
            &url,
            "--ca",
            ca.to_str().unwrap(),
            "-c",
            "4",
            "-d",
            "1s",
            "-q",
            "--proxy",
            &proxy_url,
        ],
        LIMIT,
    );
    check_invariants(&res);
    assert_eq!(res.connections.established, 4, "{:?}", res.connections);
    assert!(res.messages.received > 0);
    let tls = res
        .connections
        .tls
        .as_ref()
        .expect("TLS through the tunnel");
    assert_eq!(tls.full + tls.resumed, 4, "{tls:?}");
    // The proxy was asked for the URL's authority (TLS verifies that name).
    let asked = asked.lock().unwrap();
    assert_eq!(asked.len(), 4, "{asked:?}");
    let authority = format!("localhost:{}", target.addr().port());
    assert!(asked.iter().all(|a| *a == authority), "{asked:?}");
}

#[test]
fn a_proxy_that_denies_or_is_not_there_fails_with_its_own_cause() {
    let _serial = serial();
    let target = echo_server();
    let url = target.url();
    let (proxy, _) = connect_proxy();
    let wrong = format!("http://user:nope@{}", proxy.addr());
    let res = run(
        &[&url, "-c", "5", "-d", "1s", "-q", "--proxy", &wrong],
        LIMIT,
    );
    assert_failed_only_with(&res, "proxy_http_407");
    let gone = format!("http://127.0.0.1:{}", closed_port());
    let res = run(
        &[&url, "-c", "5", "-d", "1s", "-q", "--proxy", &gone],
        LIMIT,
    );
    assert_failed_only_with(&res, "proxy_refused");
}

#[test]
fn bad_proxies_are_usage_errors() {
    assert_usage_errors(&[
        (
            &["ws://127.0.0.1:9/", "--proxy", "socks5://127.0.0.1:1080"],
            "not supported",
        ),
        (&["--proxy", "http://127.0.0.1:3128"], "needs a target URL"),
    ]);
}
