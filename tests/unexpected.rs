//! A server that answers with messages of its own (not echoes): the report shows
//! the first few that matched no send, and a hint at why (issue 13, "say why
//! nothing matched").

mod support;

use futures_util::{SinkExt, StreamExt};
use std::time::Duration;
use support::{run, serial, Server};
use tokio_tungstenite::tungstenite::Message;

const LIMIT: Duration = Duration::from_secs(15);

/// Answers every message with `{"error":"invalid json"}` (text).
fn complaining_server() -> Server {
    Server::spawn("complaining", |tcp, _stats| async move {
        let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else {
            return;
        };
        while let Some(Ok(msg)) = ws.next().await {
            match msg {
                Message::Text(_) | Message::Binary(_) => {
                    let answer = Message::Text(r#"{"error":"invalid json"}"#.into());
                    if ws.send(answer).await.is_err() {
                        return;
                    }
                }
                Message::Close(_) => {
                    let _ = ws.flush().await;
                    return;
                }
                _ => {}
            }
        }
    })
}

#[test]
fn the_report_shows_what_came_instead_and_why() {
    let _serial = serial();
    let server = complaining_server();
    let url = server.url();
    // An open loop, so that several are sent whatever comes back.
    let res = run(
        &[
            &url, "-q", "-c", "2", "-d", "1s", "--binary", "--rate", "100",
        ],
        LIMIT,
    );
    let m = &res.messages;
    assert_eq!(m.received, 0, "{m:?}");
    assert!(m.unexpected > 0, "{m:?}");
    assert_eq!(m.unexpected_samples.len(), 3, "{m:?}");
    let first = &m.unexpected_samples[0];
    assert_eq!(
        (first.kind.as_str(), first.bytes),
        ("text", 24),
        "{first:?}"
    );
    assert_eq!(first.start, r#"{"error":"invalid json"}"#);
    let text = support::summary_text(&res);
    assert!(
        text.contains(r#"text, 24 bytes: {"error":"invalid json"}"#),
        "{text}"
    );
    assert!(
        text.contains("the server answered text to binary messages; try --text"),
        "{text}"
    );
    // Text messages answered with other text: the other hint.
    let res = run(&[&url, "-q", "-c", "2", "-d", "1s", "--text"], LIMIT);
    let text = support::summary_text(&res);
    assert!(text.contains("must echo"), "{text}");
    // The samples keep the JSON's contract.
    let schema: serde_json::Value = serde_json::from_str(wsherd::results::RESULTS_SCHEMA).unwrap();
    let doc = serde_json::to_value(&res).unwrap();
    let v = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = v.iter_errors(&doc).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{errors:?}");
}
