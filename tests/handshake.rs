//! The upgrade request as a real server sees it: `-H` headers, `--origin`, a
//! Host override and `--subprotocol`, against a tokio-tungstenite server that
//! requires a bearer token and chooses (or refuses to choose) a subprotocol;
//! every failure the offer can meet has its own cause.

mod support;

use futures_util::{SinkExt, StreamExt};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::{
    assert_failed_only_with, assert_usage_errors, check_invariants, run, run_bin, serial, Server,
};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode};

/// A run of `-d 2s` must be over well within this.
const LIMIT: Duration = Duration::from_secs(15);

/// Which subprotocol the test server answers with.
#[derive(Clone, Copy)]
enum Choose {
    /// The last one the client offered.
    LastOffered,
    /// One the client did not offer.
    Unoffered,
    /// None.
    Nothing,
}

/// The headers of every upgrade request the server saw, lowercased names.
type Seen = Arc<Mutex<Vec<Vec<(String, String)>>>>;

/// A tokio-tungstenite echo server that answers 401 without
/// `Authorization: Bearer t0k`, and chooses a subprotocol as told.
fn token_server(choose: Choose) -> (Server, Seen) {
    let seen: Seen = Arc::default();
    let log = seen.clone();
    let server = Server::spawn("ws-token", move |stream, _stats| {
        connection(stream, choose, log.clone())
    });
    (server, seen)
}

async fn connection(stream: TcpStream, choose: Choose, seen: Seen) {
    // tungstenite's callback type is fixed: its error is the whole HTTP response.
    #[allow(clippy::result_large_err)]
    let callback = move |req: &Request, mut resp: Response| -> Result<Response, ErrorResponse> {
        let headers: Vec<(String, String)> = req
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_ascii_lowercase(),
                    v.to_str().unwrap_or("").to_string(),
                )
            })
            .collect();
        let header = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        };
        let authorized = header("authorization")
            .is_some_and(|a| a == "Bearer t0k" || a.starts_with("Bearer t0k-"));
        let offered = header("sec-websocket-protocol").unwrap_or_default();
        let mut headers = headers;
        let path = req
            .uri()
            .path_and_query()
            .map_or("", |p| p.as_str())
            .to_string();
        headers.push((":path".into(), path));
        seen.lock().unwrap_or_else(|p| p.into_inner()).push(headers);
        if !authorized {
            let mut e = ErrorResponse::new(Some("no token".into()));
            *e.status_mut() = StatusCode::UNAUTHORIZED;
            return Err(e);
        }
        let pick = match choose {
            Choose::LastOffered => offered
                .rsplit(',')
                .map(str::trim)
                .next()
                .map(str::to_string),
            Choose::Unoffered => Some("not-offered.v9".to_string()),
            Choose::Nothing => None,
        };
        if let Some(p) = pick.filter(|p| !p.is_empty()) {
            resp.headers_mut().insert(
                "sec-websocket-protocol",
                HeaderValue::from_str(&p).expect("a token"),
            );
        }
        Ok(resp)
    };
    let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(stream, callback).await else {
        return;
    };
    while let Some(Ok(msg)) = ws.next().await {
        if msg.is_close() {
            let _ = ws.flush().await;
            return;
        }
        if (msg.is_text() || msg.is_binary()) && ws.send(msg).await.is_err() {
            return;
        }
    }
}

#[test]
fn headers_origin_and_host_reach_the_server_and_the_chosen_subprotocol_is_counted() {
    let _serial = serial();
    let (server, seen) = token_server(Choose::LastOffered);
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
            "-H",
            "X-Tenant: blue",
            "-H",
            "Host: chat.example",
            "--origin",
            "https://app.example",
            "--subprotocol",
            "chat.v2,chat.v1",
        ],
        LIMIT,
    );
    check_invariants(&res);
    assert_eq!(res.connections.established, 10, "{:?}", res.connections);
    assert_eq!(res.connections.failed, 0, "{:?}", res.connections);
    assert!(res.messages.received > 0);
    // The server chose the last offered: chat.v1, on every connection.
    assert_eq!(
        res.connections.subprotocols.get("chat.v1"),
        Some(&10),
        "{:?}",
        res.connections.subprotocols
    );
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 10);
    for h in seen.iter() {
        let get = |n: &str| h.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
        assert_eq!(get("x-tenant"), Some("blue"));
        assert_eq!(get("origin"), Some("https://app.example"));
        assert_eq!(get("host"), Some("chat.example"));
        assert_eq!(get("sec-websocket-protocol"), Some("chat.v2, chat.v1"));
        assert!(get("user-agent").is_some_and(|ua| ua.starts_with("wsherd/")));
    }
    let text = support::summary_text(&res);
    assert!(
        text.contains("subprotocol the server chose: chat.v1 10"),
        "{text}"
    );
    // The new field keeps to the committed schema.
    let schema: serde_json::Value =
        serde_json::from_str(wsherd::results::RESULTS_SCHEMA).expect("schema is JSON");
    let doc = serde_json::to_value(&res).expect("results serialize");
    assert_eq!(doc["connections"]["subprotocols"]["chat.v1"], 10);
    let v = jsonschema::validator_for(&schema).expect("schema compiles");
    let errors: Vec<String> = v.iter_errors(&doc).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "schema violations: {errors:#?}");
}

#[test]
fn a_missing_token_fails_with_the_servers_status() {
    let _serial = serial();
    let (server, _) = token_server(Choose::Nothing);
    let url = server.url();
    let res = run(&[&url, "-c", "5", "-d", "1s", "-q"], LIMIT);
    assert_failed_only_with(&res, "http_401");
    assert!(res.connections.failed >= 5);
    // Nothing was offered, so nothing is counted by subprotocol.
    assert!(res.connections.subprotocols.is_empty());
}

#[test]
fn verbose_shows_the_first_failed_upgrade_of_each_cause() {
    let _serial = serial();
    let (server, _) = token_server(Choose::Nothing);
    let url = server.url();
    let out = run_bin(
        &[
            "run",
            &url,
            "-c",
            "5",
            "-d",
            "1s",
            "-q",
            "-v",
            "-H",
            "X-Trace: abc",
        ],
        LIMIT,
    );
    // No connection could be established: exit 1, with the reason.
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert_eq!(
        out.stderr.matches("failed its upgrade: http_401").count(),
        1,
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("> GET / HTTP/1.1\n"), "{}", out.stderr);
    assert!(out.stderr.contains("> X-Trace: abc\n"), "{}", out.stderr);
    assert!(
        out.stderr.contains("< HTTP/1.1 401 Unauthorized\n"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("< no token"), "{}", out.stderr);
    // Without -v, nothing of it.
    let out = run_bin(&["run", &url, "-c", "2", "-d", "1s", "-q"], LIMIT);
    assert!(!out.stderr.contains("failed its upgrade"), "{}", out.stderr);
}

#[test]
fn debug_frames_prints_the_first_frames_of_the_first_connection_both_ways() {
    let _serial = serial();
    let out = run_bin(
        &[
            "run",
            "-c",
            "3",
            "-d",
            "1s",
            "-q",
            "--text",
            "--debug-frames",
            "4",
        ],
        LIMIT,
    );
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let lines: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.starts_with("wsherd: frame "))
        .collect();
    assert_eq!(lines.len(), 4, "{}", out.stderr);
    for (i, l) in lines.iter().enumerate() {
        let dir = if i % 2 == 0 { '>' } else { '<' };
        assert!(
            l.starts_with(&format!(
                "wsherd: frame conn 0 {dir} Text fin len 64: 77 73 68 32"
            )),
            "{l}"
        );
    }
}

#[test]
fn a_subprotocol_the_client_did_not_offer_fails_the_connection() {
    let _serial = serial();
    let (server, _) = token_server(Choose::Unoffered);
    let url = server.url();
    let args = [
        url.as_str(),
        "-c",
        "5",
        "-d",
        "1s",
        "-q",
        "-H",
        "Authorization: Bearer t0k",
        "--subprotocol",
        "chat.v2",
    ];
    let res = run(&args, LIMIT);
    assert_failed_only_with(&res, "subprotocol_not_offered");
}

#[test]
fn no_subprotocol_is_counted_or_fails_when_one_is_required() {
    let _serial = serial();
    let (server, _) = token_server(Choose::Nothing);
    let url = server.url();
    let base = [
        url.as_str(),
        "-c",
        "5",
        "-d",
        "1s",
        "-q",
        "-H",
        "Authorization: Bearer t0k",
        "--subprotocol",
        "chat.v2",
    ];
    let res = run(&base, LIMIT);
    assert_eq!(res.connections.established, 5);
    assert_eq!(res.connections.subprotocols.get("(none)"), Some(&5));
    let mut required = base.to_vec();
    required.push("--require-subprotocol");
    let res = run(&required, LIMIT);
    assert_failed_only_with(&res, "subprotocol_missing");
}

#[test]
fn each_connection_fills_the_path_and_headers_with_its_own_row_of_the_data_file() {
    let _serial = serial();
    let (server, seen) = token_server(Choose::Nothing);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("users.csv");
    std::fs::write(
        &data,
        "user,token\nann lee,t0k-ann\nbob,t0k-bob\ncid,t0k-cid\n",
    )
    .unwrap();
    let url = format!("{}u/{{data.user}}/{{conn}}?a={{agent}}", server.url());
    let res = run(
        &[
            &url,
            "-c",
            "6",
            "-d",
            "1s",
            "-q",
            "--data",
            data.to_str().unwrap(),
            "-H",
            "Authorization: Bearer {data.token}",
        ],
        LIMIT,
    );
    assert_eq!(res.connections.established, 6, "{:?}", res.connections);
    let seen = seen.lock().unwrap();
    let mut conns = Vec::new();
    for h in seen.iter() {
        let get = |n: &str| h.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
        let path = get(":path").unwrap();
        // /u/USER/CONN?a=1, the user's name percent-encoded.
        let rest = path.strip_prefix("/u/").expect(&path);
        let (user, tail) = rest.split_once('/').expect(&path);
        let (conn, agent) = tail.split_once("?a=").expect(&path);
        assert_eq!(agent, "1");
        let conn: u64 = conn.parse().unwrap();
        let rows = [("ann%20lee", "ann"), ("bob", "bob"), ("cid", "cid")];
        let (encoded, short) = rows[(conn % 3) as usize];
        assert_eq!(user, encoded, "{path}");
        assert_eq!(get("authorization").unwrap(), format!("Bearer t0k-{short}"));
        conns.push(conn);
    }
    conns.sort();
    assert_eq!(conns, vec![0, 1, 2, 3, 4, 5]);
}

#[test]
fn placeholders_and_data_files_are_checked_before_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("two.csv");
    std::fs::write(&data, "token\na\nb\n").unwrap();
    let d = data.to_str().unwrap();
    assert_usage_errors(&[
        (
            &["ws://127.0.0.1:9/{conn", "-H", "X: {data.token}"],
            "add --data FILE",
        ),
        (&["ws://127.0.0.1:9/{con}"], "not a placeholder"),
        (
            &["ws://127.0.0.1:9/", "--data", d, "-H", "X: {data.user}"],
            "no column 'user'",
        ),
        (
            &["ws://127.0.0.1:9/", "--data", d, "--data-unique", "-c", "3"],
            "2 rows",
        ),
        (
            &["ws://127.0.0.1:9/", "--data", "/nonexistent/users.csv"],
            "users.csv",
        ),
        (&["--data-unique"], "--data"),
    ]);
}

#[test]
fn headers_that_would_break_the_upgrade_are_usage_errors() {
    assert_usage_errors(&[
        (&["-H", "Sec-WebSocket-Key: abc"], "fresh key"),
        (&["-H", "Connection: close"], "cannot be set with -H"),
        (&["-H", "NoColonHere"], "a header is NAME: VALUE"),
        (&["--require-subprotocol"], "--subprotocol"),
    ]);
}
