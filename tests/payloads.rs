//! Payload options end to end: `--template` (text rendered from a template, the stamp
//! at fixed offsets) and `--payload-file` (the timing header, then the file), against
//! the built-in echo server and against a JSON-parsing echo; bad templates and files
//! are usage errors that say where the problem is.

mod support;

use futures_util::{SinkExt, StreamExt};
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use support::{run, serial, try_run, Server};
use tokio_tungstenite::tungstenite::Message;
use wsherd::engine::Run;
use wsherd::results::RunResults;
use wsherd::stamp::Stamp;

const LIMIT: Duration = Duration::from_secs(20);

/// A chat message; keys in sorted order, so a server that parses it into a sorted
/// map and serializes it again writes back the same bytes if the numbers survive.
const CHAT: &str = r#"{"body":"{pad:100}","seq":{seq},"ts":{ts},"type":"chat","user":"u{conn}"}"#;

fn assert_clean(r: &RunResults) {
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!(r.connections.failed, 0, "{:?}", r.connections);
    assert_eq!(r.connections.lost, 0, "{:?}", r.connections);
    assert!(r.messages.received > 0, "{:?}", r.messages);
    assert_eq!(r.messages.unexpected, 0, "{:?}", r.messages);
    assert!(r.messages.ledger_balances(), "{:?}", r.messages);
    assert_eq!(r.latency.rtt.count, r.messages.received);
}

/// Renders one message the way the run's connections do.
fn render(args: &[&str], stamp: Stamp) -> Vec<u8> {
    let cfg = Run::from_args(args).unwrap();
    let mut buf = vec![0u8; cfg.plan.payload.size];
    cfg.plan.payload.write(stamp, &mut buf);
    assert_eq!(cfg.plan.payload.read(&buf), Some(stamp));
    buf
}

fn file_with(content: &[u8]) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(content).unwrap();
    f.flush().unwrap();
    f
}

#[test]
fn template_run_against_the_builtin_echo() {
    let _s = serial();
    let args = ["-c", "10", "-d", "2s", "-q", "--text", "--template", CHAT];
    let r = run(&args, LIMIT);
    assert_clean(&r);
    assert_eq!(r.config.message_kind, "text");

    // What went over the wire is valid JSON carrying the stamp as JSON numbers.
    let st = Stamp {
        conn: 9,
        seq: 12_345,
        ts: 1_500_000_000,
        intended: 1_500_000_000,
    };
    let msg = render(&args, st);
    assert_eq!(r.config.message_size, msg.len());
    let v: serde_json::Value = serde_json::from_slice(&msg).expect("valid JSON");
    assert_eq!(v["type"], "chat");
    assert_eq!(v["user"], "u10000000009");
    assert_eq!(v["seq"].as_u64(), Some(1_000_000_000_012_345));
    assert_eq!(v["ts"].as_u64(), Some(1_000_001_500_000_000));
    assert_eq!(v["body"].as_str().map(str::len), Some(100));
}

#[test]
fn template_open_loop_decodes_the_intended_time() {
    let _s = serial();
    let t = r#"{"c":{conn},"s":{seq},"t":{ts},"i":{intended},"p":"{pad:20}"}"#;
    let r = run(
        &[
            "-c",
            "10",
            "-d",
            "2s",
            "-q",
            "--text",
            "--template",
            t,
            "--rate",
            "1000",
        ],
        LIMIT,
    );
    assert_clean(&r);
    assert_eq!(r.config.pacing, "open");
    let raw = r.latency.rtt_uncorrected.as_ref().expect("open loop");
    assert_eq!(raw.count, r.latency.rtt.count);
    // Timed from the intended send, a message can only look slower.
    assert!(r.latency.rtt.p50_us >= raw.p50_us);
}

#[test]
fn payload_file_runs_text_and_binary() {
    let _s = serial();
    let json = "{\"kind\":\"note\",\"text\":\"héllo wörld 🦀\",\"n\":[1,2,3]}\n".repeat(40);
    let text = file_with(json.as_bytes());
    let path = text.path().to_str().unwrap();
    let args = [
        "-c",
        "10",
        "-d",
        "2s",
        "-q",
        "--text",
        "--payload-file",
        path,
    ];
    let r = run(&args, LIMIT);
    assert_clean(&r);
    assert_eq!(r.config.message_kind, "text");
    assert_eq!(r.config.message_size, 60 + json.len());
    let msg = render(
        &args,
        Stamp {
            conn: 1,
            seq: 2,
            ts: 3,
            intended: 3,
        },
    );
    assert!(std::str::from_utf8(&msg).unwrap().ends_with(&json));

    // Binary: any bytes, 100 KiB (more than one read buffer).
    let bytes: Vec<u8> = (0..100 * 1024u32).map(|i| (i * 7919 % 251) as u8).collect();
    let bin = file_with(&bytes);
    let path = bin.path().to_str().unwrap();
    let args = [
        "-c",
        "10",
        "-d",
        "2s",
        "-q",
        "--binary",
        "--payload-file",
        path,
    ];
    let r = run(&args, LIMIT);
    assert_clean(&r);
    assert_eq!(r.config.message_kind, "binary");
    assert_eq!(r.config.message_size, 32 + bytes.len());
    let msg = render(
        &args,
        Stamp {
            conn: 1,
            seq: 2,
            ts: 3,
            intended: 3,
        },
    );
    assert_eq!(&msg[32..], &bytes[..]);
}

/// An echo that does what a chat server does with a message: parses the JSON (numbers
/// as doubles, as JavaScript would), checks the fields it needs, and serializes it
/// again. Anything that is not valid JSON is counted and the connection closed with
/// 1007 (invalid payload).
fn json_echo(invalid: Arc<AtomicU64>) -> Server {
    Server::spawn("json-echo", move |stream, stats| {
        let invalid = invalid.clone();
        async move {
            let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
                return;
            };
            stats.upgraded.fetch_add(1, Ordering::Relaxed);
            while let Some(Ok(msg)) = ws.next().await {
                let Message::Text(text) = msg else { continue };
                match reserialize(text.as_str()) {
                    Some(again) => {
                        if ws.send(Message::Text(again.into())).await.is_err() {
                            return;
                        }
                        stats.echoed.fetch_add(1, Ordering::Relaxed);
                    }
                    None => {
                        invalid.fetch_add(1, Ordering::Relaxed);
                        let _ = ws
                            .close(Some(tokio_tungstenite::tungstenite::protocol::CloseFrame {
                                code: 1007.into(),
                                reason: "invalid JSON".into(),
                            }))
                            .await;
                        return;
                    }
                }
            }
        }
    })
}

/// Parses a chat message and serializes it again with every number passed through
/// an f64; None if it is not JSON or lacks the fields.
fn reserialize(text: &str) -> Option<String> {
    let mut v: serde_json::Value = serde_json::from_str(text).ok()?;
    let obj = v.as_object_mut()?;
    obj.get("type")?.as_str()?;
    obj.get("user")?.as_str()?;
    for key in ["seq", "ts"] {
        let n = obj.get(key)?.as_f64()?;
        if n.fract() != 0.0 || n >= 9_007_199_254_740_992.0 {
            return None;
        }
        obj.insert(key.into(), serde_json::Value::from(n as u64));
    }
    serde_json::to_string(&v).ok()
}

#[test]
fn template_survives_a_json_parsing_echo() {
    let _s = serial();
    let invalid = Arc::new(AtomicU64::new(0));
    let srv = json_echo(invalid.clone());
    let url = srv.url();
    let r = run(
        &[
            &url,
            "-c",
            "10",
            "-d",
            "2s",
            "-q",
            "--text",
            "--template",
            CHAT,
        ],
        LIMIT,
    );
    assert_eq!(invalid.load(Ordering::Relaxed), 0);
    assert_clean(&r);
    assert_eq!(
        support::ServerStats::get(&srv.stats.echoed),
        r.messages.received + r.messages.in_flight_at_stop,
    );
}

fn usage_error(args: &[&str]) -> String {
    let e = Run::from_args(args).expect_err("a usage error");
    assert_eq!(e.exit_code(), 2, "{e}");
    e.to_string()
}

#[test]
fn bad_templates_are_usage_errors_with_the_position() {
    let t = |tpl: &str| usage_error(&["-q", "--text", "--template", tpl]);
    let e = t(r#"{"seq":{seq},"x":{conn"#);
    assert!(e.starts_with("template: unclosed '{'"), "{e}");
    assert!(e.ends_with("at byte 17"), "{e}");
    let e = t(r#"{"a":{foo},"s":{seq},"c":{conn},"t":{ts}}"#);
    assert!(e.starts_with("template: unknown placeholder {foo}"), "{e}");
    assert!(e.ends_with("at byte 5"), "{e}");
    let e = t(r#"{"s":{seq},"c":{conn},"t":{ts},"body":"{pad:lots}"}"#);
    assert!(e.starts_with("template: {pad:N} needs a number"), "{e}");
    assert!(e.ends_with("at byte 39"), "{e}");
    let e = t(r#"{"seq":{seq},"ts":{ts}}"#);
    assert!(e.starts_with("template: needs {conn}"), "{e}");
    // Format-string escaping carried over would render broken JSON: refused.
    let e = t(r#"{{"s":{seq},"c":{conn},"t":{ts}}}"#);
    assert!(e.contains("'{{'"), "{e}");
    assert!(e.ends_with("at byte 0"), "{e}");
    // And a good one runs (nothing refused before the run starts).
    assert!(Run::from_args(["-q", "--text", "--template", CHAT]).is_ok());
}

#[test]
fn bad_payload_files_are_usage_errors_naming_the_file() {
    let bad_utf8 = file_with(b"{\"text\":\"caf\xe9\"}");
    let path = bad_utf8.path().to_str().unwrap();
    let e = usage_error(&["-q", "--text", "--payload-file", path]);
    assert!(e.contains(path), "{e}");
    assert!(e.contains("first invalid byte at offset 12"), "{e}");
    // The same file is a fine binary body.
    assert!(Run::from_args(["-q", "--binary", "--payload-file", path]).is_ok());

    let empty = file_with(b"");
    let path = empty.path().to_str().unwrap();
    let e = usage_error(&["-q", "--payload-file", path]);
    assert!(e.contains(path) && e.contains("is empty"), "{e}");

    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.json");
    let path = missing.to_str().unwrap();
    let e = usage_error(&["-q", "--payload-file", path]);
    assert!(e.contains(path), "{e}");
    assert!(e.contains("No such file or directory (os error 2)"), "{e}");

    // Both at once: clap or the spec refuses it.
    let f = file_with(b"x");
    let err = try_run(
        &[
            "-q",
            "--payload-file",
            f.path().to_str().unwrap(),
            "--template",
            CHAT,
        ],
        LIMIT,
    )
    .expect_err("conflicting flags");
    assert_eq!(err.exit_code, 2, "{}", err.message);
}

#[test]
fn an_open_loop_template_needs_the_intended_time_and_pings_take_no_template() {
    use wsherd::engine::Run;
    let e = Run::from_args([
        "--rate",
        "100",
        "--template",
        r#"{"c":{conn},"s":{seq},"t":{ts}}"#,
    ])
    .unwrap_err();
    assert_eq!(e.exit_code(), 2);
    assert!(e.to_string().contains("{intended}"), "{e}");
    let e = Run::from_args([
        "--workload",
        "ping",
        "--template",
        r#"{"c":{conn},"s":{seq},"t":{ts}}"#,
    ])
    .unwrap_err();
    assert!(e.to_string().contains("pings"), "{e}");
}
