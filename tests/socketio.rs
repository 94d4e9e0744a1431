//! `--protocol socketio` (issue 13 item 4) against Node's `socket.io` v4 server
//! (tests/servers/node/socketio_server.js, installed by
//! scripts/setup-test-deps.sh): the open and the namespace connect, the
//! server's pings answered, emits timed by their ack and by the echoed event,
//! broadcast events every client receives, a subscription's pushed events, a
//! conversation of events, a refused namespace connect, and the flags' errors.

mod support;

use std::time::Duration;
use support::{assert_clean, assert_usage_errors, run, serial, ChildServer};

const LIMIT: Duration = Duration::from_secs(20);

/// The server pings every 200 ms (so a run of a second or two answers several)
/// and allows 2 s for a pong; a ping later than that window loses the
/// connection on either side (a shared CI machine can delay one by a few
/// hundred ms).
fn sio_server(extra: &[&str]) -> ChildServer {
    let mut args = vec!["--ping-interval", "200", "--ping-timeout", "2000"];
    args.extend_from_slice(extra);
    ChildServer::script(
        "node",
        "node/socketio_server.js",
        &args,
        "the Socket.IO server",
    )
}

#[test]
fn emits_are_timed_by_their_ack_and_by_the_echoed_event() {
    let _serial = serial();
    let server = sio_server(&[]);
    let url = server.url("/");
    for ack in [true, false] {
        let mut args = vec![
            url.as_str(),
            "-q",
            "-c",
            "4",
            "-d",
            "1500ms",
            "--protocol",
            "socketio",
            "--inflight",
            "2",
        ];
        if ack {
            args.push("--ack");
        }
        let res = run(&args, LIMIT);
        assert_clean(&res, 4);
        let m = &res.messages;
        assert!(m.received > 500, "ack {ack}: {m:?}");
        let p = res.protocol.as_ref().expect("a protocol section");
        assert_eq!((p.name.as_str(), p.opened), ("socketio", 4), "{p:?}");
        // The open (Engine.IO open to namespace joined) is timed once per connection.
        assert_eq!(res.latency.protocol_open.as_ref().map(|l| l.count), Some(4));
        // Held 1.5 s with a ping every 200 ms: each connection answered them.
        assert!(p.pings_answered >= 4 * 5, "{p:?}");
        // Without an ack, every reply was the echo event carrying the message.
        let echoes = p.received.get("echo").copied().unwrap_or(0);
        if ack {
            assert_eq!(echoes, 0, "{p:?}");
        } else {
            assert_eq!(echoes, m.received, "{p:?}");
        }
        support::assert_schema(&res);
    }
    // A template travels as the event's JSON argument and comes back as it went.
    let res = run(
        &[
            &url,
            "-q",
            "-c",
            "2",
            "-d",
            "1s",
            "--protocol",
            "socketio",
            "--namespace",
            "/chat",
            "--template",
            r#"{"user":"u{conn}","seq":{seq},"ts":{ts}}"#,
        ],
        LIMIT,
    );
    assert_clean(&res, 2);
    assert!(res.messages.received > 100, "{:?}", res.messages);
    let text = support::summary_text(&res);
    assert!(text.contains("Socket.IO"), "{text}");
    assert!(text.contains("namespace /chat"), "{text}");
}

#[test]
fn broadcast_events_reach_every_client() {
    let _serial = serial();
    let server = sio_server(&[]);
    let res = run(
        &[
            &server.url("/socket.io/"),
            "-q",
            "-c",
            "10",
            "-d",
            "2s",
            "--protocol",
            "socketio",
            "-w",
            "broadcast",
            "--publishers",
            "2",
            "--rate",
            "100",
        ],
        LIMIT,
    );
    let b = res.broadcast.as_ref().expect("a broadcast section");
    assert!(b.published > 100, "{b:?}");
    assert_eq!(b.missing + b.duplicates, 0, "{b:?}");
    assert!(b.delivered + 20 >= b.expected, "{b:?}");
    let p = res.protocol.as_ref().unwrap();
    assert_eq!(p.received.get("broadcast"), Some(&b.delivered), "{p:?}");
}

#[test]
fn a_subscription_pushes_events_and_a_conversation_speaks_in_events() {
    let _serial = serial();
    let server = sio_server(&[]);
    let url = server.url("/");
    let res = run(
        &[
            &url,
            "-q",
            "-c",
            "3",
            "-d",
            "2s",
            "--protocol",
            "socketio",
            "-w",
            "push",
            "--subscribe",
            r#"["subscribe",{"count":40,"rateHz":50}]"#,
            "--seq",
            "/1/seq",
            "--sent-at",
            "/1/sent_ms",
        ],
        LIMIT,
    );
    let push = res.push.as_ref().expect("a push section");
    assert_eq!(push.received, 3 * 40, "{push:?}");
    assert_eq!(
        (push.missing, push.duplicates, push.without_fields),
        (0, 0, 0),
        "{push:?}"
    );
    assert_eq!(
        res.protocol.as_ref().unwrap().received.get("tick"),
        Some(&120)
    );
    assert_eq!(res.latency.delivery.as_ref().unwrap().count, 120);
    // A conversation's sends are events of the namespace; its expects read the
    // event's array.
    let dir = tempfile::tempdir().unwrap();
    let steps = dir.path().join("steps.toml");
    std::fs::write(
        &steps,
        r#"
[[step]]
send = '["broadcast",{"from":"u{conn}","n":{seq}}]'
[[step]]
name = "heard"
expect = { json = "/0", equals = "broadcast" }
capture = { from = "/1/from" }
[[step]]
think = "50ms"
"#,
    )
    .unwrap();
    let res = run(
        &[
            &url,
            "-q",
            "-c",
            "1",
            "-d",
            "1s",
            "--protocol",
            "socketio",
            "--steps",
            steps.to_str().unwrap(),
            "--steps-mode",
            "loop",
        ],
        LIMIT,
    );
    let heard = res.steps.iter().find(|s| s.name == "heard").unwrap();
    assert!(heard.ok >= 10 && heard.timeout == 0, "{heard:?}");
}

#[test]
fn a_refused_namespace_connect_is_a_cause_and_auth_gets_in() {
    let _serial = serial();
    let server = sio_server(&["--auth", "s3cret"]);
    let url = server.url("/");
    let res = run(
        &[
            &url,
            "-q",
            "-c",
            "2",
            "-d",
            "1s",
            "--protocol",
            "socketio",
            "--ack",
        ],
        LIMIT,
    );
    assert_eq!(
        res.connections.lost_by_cause.get("socketio_connect_error"),
        Some(&2),
        "{:?}",
        res.connections
    );
    assert!(
        res.messages.unexpected_samples[0]
            .start
            .contains("unauthorized"),
        "{:?}",
        res.messages
    );
    let res = run(
        &[
            &url,
            "-q",
            "-c",
            "2",
            "-d",
            "1s",
            "--protocol",
            "socketio",
            "--ack",
            "--auth",
            r#"{"token":"s3cret","user":"u{conn}"}"#,
        ],
        LIMIT,
    );
    assert_clean(&res, 2);
    assert!(res.messages.received > 100);
}

#[test]
fn socketio_errors_say_what_to_do() {
    assert_usage_errors(&[
        (&["--ack"], "--ack is for --protocol socketio"),
        (
            &["--protocol", "socketio", "-w", "ping"],
            "carries events, not WebSocket pings",
        ),
        (
            &["--protocol", "socketio", "-w", "idle", "--ack"],
            "not idle",
        ),
        (
            &["--protocol", "socketio", "--namespace", "chat"],
            "starts with /",
        ),
        (
            &["--protocol", "socketio", "--auth", "token"],
            "is not a JSON object",
        ),
        (
            &["--protocol", "socketio", "--binary"],
            "leave out --binary",
        ),
        (
            &["--protocol", "socketio", "--query", "{ a }"],
            "--query is for --protocol graphql-ws",
        ),
    ]);
}

#[test]
fn the_shipped_scenario_runs_against_the_test_server() {
    let _serial = serial();
    // 400 connections at once on a shared 2-core machine: the server's default
    // heartbeat window (its 200 ms one is for the tests above), and time to open.
    let server = sio_server(&["--ping-interval", "5000", "--ping-timeout", "5000"]);
    let addr = format!("127.0.0.1:{}", server.port);
    let res = support::run_shipped_scenario(
        "socketio.toml",
        &[
            ("127.0.0.1:3000", addr.as_str()),
            ("duration = \"20s\"", "duration = \"4s\""),
        ],
    );
    let by = |n: &str| &res.scenarios.iter().find(|s| s.name == n).unwrap().results;
    let emit = by("emit-with-ack");
    assert!(emit.messages.received > 100, "{:?}", emit.messages);
    // Every connection that was established joined the namespace (how many got
    // established in 4 s depends on how busy the machine is).
    let k = &emit.connections;
    assert!(k.established >= 100, "{k:?}");
    assert_eq!(
        emit.protocol.as_ref().unwrap().opened,
        k.established,
        "{k:?}"
    );
    assert_eq!(k.failed + k.lost, 0, "{k:?}");
    let room = by("broadcast-room");
    let b = room.broadcast.as_ref().unwrap();
    assert!(b.delivered > 0 && b.missing == 0, "{b:?}");
    let ticker = by("ticker").push.as_ref().unwrap();
    assert!(ticker.received > 100 && ticker.missing == 0, "{ticker:?}");
}

/// An Engine.IO server that opens (ping interval 200 ms, timeout 100 ms), lets
/// the namespace connect, and then never pings: a server whose heartbeat stopped.
fn silent_sio_server() -> support::Server {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    support::Server::spawn("silent-sio", |tcp, _stats| async move {
        let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else {
            return;
        };
        let open = r#"0{"sid":"s","upgrades":[],"pingInterval":200,"pingTimeout":100,"maxPayload":1000000}"#;
        if ws.send(Message::Text(open.into())).await.is_err() {
            return;
        }
        while let Some(Ok(msg)) = ws.next().await {
            if let Message::Text(t) = msg {
                if t.as_str() == "40"
                    && ws
                        .send(Message::Text(r#"40{"sid":"n"}"#.into()))
                        .await
                        .is_err()
                {
                    return;
                }
            }
        }
    })
}

#[test]
fn a_server_whose_heartbeat_stops_loses_its_connections() {
    let _serial = serial();
    let server = silent_sio_server();
    let res = run(
        &[
            &server.url(),
            "-q",
            "-c",
            "3",
            "-d",
            "2s",
            "--protocol",
            "socketio",
            "-w",
            "idle",
        ],
        LIMIT,
    );
    assert_eq!(
        res.connections.lost_by_cause.get("socketio_ping_timeout"),
        Some(&3),
        "{:?}",
        res.connections
    );
    assert_eq!(res.protocol.as_ref().unwrap().opened, 3);
}
