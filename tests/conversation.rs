//! Conversations (`--workload conversation`, issue 13 item 1): steps sent,
//! expected, captured and repeated against a chat-like server written here
//! (tokio-tungstenite) that answers with messages of its own and checks the
//! session it handed out; heartbeats (`every`); timeouts, strict mismatches,
//! sessions and unmatched messages; thresholds on a step; a scenario's
//! `[[scenario.step]]` tables against a server of another stack (the JSON-RPC
//! server in Python); and the errors.

mod support;

use futures_util::{SinkExt, StreamExt};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use support::{assert_usage_errors, run, serial, ChildServer, Server};
use tokio_tungstenite::tungstenite::Message;

const LIMIT: Duration = Duration::from_secs(20);

/// Pings the chat server got (heartbeats), across connections.
static PINGS: AtomicU64 = AtomicU64::new(0);

/// A chat server: `{"op":"login","user":U}` is answered `{"op":"welcome",
/// "session":"s-U-N"}`; `{"op":"say","session":S,"n":N}` with the session it
/// handed out is answered `{"op":"ok","n":N}`, with another one `{"op":"error"}`;
/// `{"op":"ping"}` and `{"op":"mute"}` get no answer; `{"op":"noisy"}` gets a
/// `{"op":"noise"}` first and then `{"op":"ok"}`.
fn chat_server() -> Server {
    static SESSIONS: AtomicU64 = AtomicU64::new(0);
    Server::spawn("chat", |tcp, _stats| async move {
        let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else {
            return;
        };
        let mut session = String::new();
        while let Some(Ok(msg)) = ws.next().await {
            let Message::Text(text) = msg else {
                if msg.is_close() {
                    return;
                }
                continue;
            };
            let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
            let answers: Vec<String> = match v["op"].as_str().unwrap_or("") {
                "login" => {
                    session = format!(
                        "s-{}-{}",
                        v["user"].as_str().unwrap_or("?"),
                        SESSIONS.fetch_add(1, Ordering::Relaxed)
                    );
                    vec![format!(r#"{{"op":"welcome","session":"{session}"}}"#)]
                }
                "say" if v["session"].as_str() == Some(&session) => {
                    vec![format!(r#"{{"op":"ok","n":{}}}"#, v["n"])]
                }
                "say" => vec![r#"{"op":"error","why":"bad session"}"#.to_string()],
                "ping" => {
                    PINGS.fetch_add(1, Ordering::Relaxed);
                    vec![]
                }
                "noisy" => vec![r#"{"op":"noise"}"#.into(), r#"{"op":"ok"}"#.into()],
                _ => vec![],
            };
            for a in answers {
                if ws.send(Message::Text(a.into())).await.is_err() {
                    return;
                }
            }
        }
    })
}

fn steps_file(dir: &tempfile::TempDir, toml: &str) -> String {
    let path = dir.path().join("steps.toml");
    std::fs::write(&path, toml).unwrap();
    path.display().to_string()
}

const CHAT: &str = r#"
[[step]]
send = '{"op":"login","user":"u{conn}"}'
[[step]]
name = "login"
expect = { json = "/op", equals = "welcome" }
capture = { session = "/session" }
timeout = "2s"
[[step]]
every = "50ms"
send = '{"op":"ping"}'
[[step]]
repeat = 3
steps = [
  { name = "say", send = '{"op":"say","session":"{session}","n":{seq}}' },
  { name = "said", expect = { json = "/op", equals = "ok" }, strict = true },
  { think = "20ms" },
]
"#;

#[test]
fn a_conversation_logs_in_captures_its_session_and_loops() {
    let _serial = serial();
    let server = chat_server();
    let dir = tempfile::tempdir().unwrap();
    let steps = steps_file(&dir, CHAT);
    let before = PINGS.load(Ordering::Relaxed);
    let hgrm = dir.path().join("out");
    let res = run(
        &[
            &server.url(),
            "-q",
            "-c",
            "3",
            "-d",
            "1500ms",
            "--steps",
            &steps,
            "--steps-mode",
            "loop",
            "--threshold",
            "step.said.p99<500ms",
            "--threshold",
            "step.said.failed<1",
            "--hgrm",
            hgrm.to_str().unwrap(),
        ],
        LIMIT,
    );
    // Each expect's histogram has its file, beside the run's.
    for kind in ["rtt", "step.login", "step.said"] {
        let f = dir.path().join(format!("out.{kind}.hgrm"));
        assert!(f.exists(), "{} missing", f.display());
    }
    assert_eq!(res.config.workload, "conversation");
    assert_eq!(res.config.steps_mode.as_deref(), Some("loop"));
    let names: Vec<(&str, &str)> = res
        .steps
        .iter()
        .map(|s| (s.name.as_str(), s.kind.as_str()))
        .collect();
    assert_eq!(
        names,
        [
            ("step1", "send"),
            ("login", "expect"),
            ("step3", "send"),
            ("say", "send"),
            ("said", "expect")
        ]
    );
    let step = |n: &str| res.steps.iter().find(|s| s.name == n).unwrap();
    // Three logins per connection at most a round apart: every one answered.
    let login = step("login");
    assert!(login.ok >= 3, "{login:?}");
    assert_eq!(login.timeout + login.mismatch, 0, "{login:?}");
    // The session captured from the welcome came back right in every say: a
    // wrong one would have been answered with an error, a strict mismatch.
    let said = step("said");
    // (The last round of each connection may end early at the stop.)
    assert!(said.ok + 9 >= 3 * login.ok, "{said:?} {login:?}");
    assert_eq!(said.mismatch + said.timeout, 0, "{said:?}");
    assert_eq!(said.latency.as_ref().unwrap().count, said.ok);
    // One expect per say (the stop may fall between them, once per connection).
    assert!(
        (0..=3).contains(&(step("say").count - said.count)),
        "{said:?}"
    );
    for s in &res.steps {
        assert!(s.balances(), "{s:?}");
    }
    // The heartbeat went out every 50 ms on each connection, and loops did not
    // start it again.
    let beats = step("step3").count;
    assert!((45..=100).contains(&beats), "{beats} heartbeats");
    assert!(PINGS.load(Ordering::Relaxed) - before >= beats - 3);
    // Nothing came that no expect took, but replies to the last login or say
    // of a connection that the stop cut off from their expect: before it
    // began (the send counted, the expect not) or while it waited (stopped).
    let cut = step("step1").count - login.count + login.stopped + step("say").count - said.count
        + said.stopped;
    assert!(
        res.messages.unexpected <= cut,
        "{:?} {said:?}",
        res.messages
    );
    assert!(
        res.thresholds.iter().all(|t| t.passed),
        "{:?}",
        res.thresholds
    );
    support::assert_schema(&res);
    let text = support::summary_text(&res);
    assert!(text.contains("Conversation (loop)"), "{text}");
    assert!(text.contains("said (expect): "), "{text}");
}

#[test]
fn expects_fail_by_reason_and_sessions_start_over() {
    let _serial = serial();
    let server = chat_server();
    let dir = tempfile::tempdir().unwrap();
    // A request nobody answers: each session waits 100 ms, times out and ends.
    let steps = steps_file(
        &dir,
        r#"
[[step]]
send = '{"op":"mute"}'
[[step]]
name = "answer"
expect = "any"
timeout = "100ms"
"#,
    );
    let res = run(
        &[
            &server.url(),
            "-q",
            "-c",
            "2",
            "-d",
            "1s",
            "--steps",
            &steps,
            "--steps-mode",
            "session",
        ],
        LIMIT,
    );
    let a = res.steps.iter().find(|s| s.name == "answer").unwrap();
    assert!(a.timeout >= 10, "{a:?}");
    assert_eq!(a.ok, 0, "{a:?}");
    assert!(a.balances(), "{a:?}");
    // Each timed-out session closed and a new connection began.
    assert!(res.connections.established >= 10, "{:?}", res.connections);
    // A strict expect fails on the first message that does not match (both it and
    // the answer after it are unmatched); a lenient one lets the other message
    // pass as unmatched and waits on.
    for (strict, mismatch, ok, unmatched) in [("true", 1, 0, 2), ("false", 0, 1, 1)] {
        let steps = steps_file(
            &dir,
            &format!(
                r#"
[[step]]
send = '{{"op":"noisy"}}'
[[step]]
name = "ok"
expect = {{ json = "/op", equals = "ok" }}
strict = {strict}
[[step]]
think = "20ms"
"#
            ),
        );
        let res = run(
            &[
                &server.url(),
                "-q",
                "-c",
                "1",
                "-d",
                "500ms",
                "--steps",
                &steps,
            ],
            LIMIT,
        );
        let step = res.steps.iter().find(|s| s.name == "ok").unwrap();
        assert_eq!(
            (step.mismatch, step.ok),
            (mismatch, ok),
            "strict {strict}: {step:?}"
        );
        assert_eq!(
            res.messages.unexpected, unmatched,
            "strict {strict}: {:?}",
            res.messages
        );
    }
}

#[test]
fn an_unmatched_message_can_fail_the_connection() {
    let _serial = serial();
    let server = chat_server();
    let dir = tempfile::tempdir().unwrap();
    let steps = steps_file(
        &dir,
        r#"
[[step]]
send = '{"op":"noisy"}'
[[step]]
expect = { json = "/op", equals = "ok" }
"#,
    );
    let res = run(
        &[
            &server.url(),
            "-q",
            "-c",
            "2",
            "-d",
            "1s",
            "--steps",
            &steps,
            "--unmatched",
            "fail",
        ],
        LIMIT,
    );
    assert_eq!(
        res.errors.get("unmatched_message"),
        Some(&2),
        "{:?}",
        res.errors
    );
    assert_eq!(
        res.connections.lost_by_cause.get("protocol_error"),
        Some(&2),
        "{:?}",
        res.connections
    );
    let e = &res.steps[1];
    assert_eq!((e.ok, e.closed), (0, 2), "{e:?}");
    assert!(res.messages.unexpected_samples[0].start.contains("noise"));
}

#[test]
fn scenario_steps_against_a_json_rpc_server_of_another_stack() {
    let _serial = serial();
    let server = ChildServer::script("python3", "jsonrpc_ooo.py", &[], "the JSON-RPC server");
    let addr = format!("127.0.0.1:{}", server.port);
    let res = support::run_shipped_scenario(
        "conversation.toml",
        &[
            ("127.0.0.1:8545", addr.as_str()),
            ("duration = \"20s\"", "duration = \"1500ms\""),
        ],
    );
    let r = &res.scenarios[0].results;
    let login = r
        .steps
        .iter()
        .find(|s| s.name == "login")
        .expect("a login step");
    assert!(login.ok > 0, "{:?}", r.steps);
    let echo = r
        .steps
        .iter()
        .find(|s| s.name == "echo")
        .expect("an echo step");
    assert!(
        echo.ok > 0 && echo.timeout == 0 && echo.mismatch == 0,
        "{:?}",
        r.steps
    );
    // Nothing came that no expect took, but replies to requests the stop cut
    // off from their expect: before it began, or while it waited (stopped).
    let count = |kind: &str| -> u64 {
        r.steps
            .iter()
            .filter(|s| s.kind == kind)
            .map(|s| s.count)
            .sum()
    };
    let stopped: u64 = r.steps.iter().map(|s| s.stopped).sum();
    let cut = count("send").saturating_sub(count("expect")) + stopped;
    assert!(
        r.messages.unexpected <= cut,
        "{:?} {:?}",
        r.messages,
        r.steps
    );
}

#[test]
fn steps_errors_say_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let bad = steps_file(&dir, "[[step]]\nsend = 'x'\nthink = '1s'\n");
    assert_usage_errors(&[
        (
            &["--steps", "/nonexistent/steps.toml"],
            "--steps /nonexistent/steps.toml: ",
        ),
        (&["--steps", &bad], "step 1: one action per step"),
        (&["-w", "conversation"], "give --steps FILE"),
        (
            &["-w", "echo", "--steps", &bad],
            "are for --workload conversation, not echo",
        ),
        (&["--steps-mode", "loop"], "are for --workload conversation"),
        (
            &["--threshold", "step.login<1ms"],
            "a step's metric is step.NAME.STAT",
        ),
    ]);
}
