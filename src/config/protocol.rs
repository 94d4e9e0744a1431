//! The application protocol of a run (`--protocol socketio|graphql-ws` and
//! their options), checked against each other and against the workload: which
//! workloads a protocol carries and how (Socket.IO: echo is an emit with or
//! without `--ack`, broadcast an event every client receives, push a
//! subscription event, idle a connection held with the server's pings answered;
//! graphql-ws: echo is a `--query` timed to its first `next`, push a
//! `--subscribe` subscription's `next` messages). Socket.IO's path is added to
//! the targets, graphql-ws's subprotocol to the offer. Part of the
//! configuration stage; never imports the command layer.

use crate::cli::{LoadArgs, ProtocolArg};
use crate::error::{Error, Result};
use crate::plan::Plan;
use crate::proto::{gql_payload, GraphqlWs, Protocol, SocketIo, GRAPHQL_WS};
use crate::values::{Escape, Pattern, Vars};
use crate::vocab::kinds::WorkloadKind;

/// Sets `plan.protocol` from the flags (`columns`: the data file's, for the
/// per-connection values of an auth object or init payload). Returns true when
/// the protocol's open reads the data file.
pub fn apply(
    l: &LoadArgs,
    kind: WorkloadKind,
    plan: &mut Plan,
    columns: &[String],
) -> Result<bool> {
    let sio_only = [
        ("--event", l.event.is_some()),
        ("--ack", l.ack),
        ("--namespace", l.namespace.is_some()),
        ("--auth", l.auth.is_some()),
    ];
    let gql_only = [
        ("--init-payload", l.init_payload.is_some()),
        ("--query", l.query.is_some()),
        ("--variables", l.variables.is_some()),
    ];
    let refuse = |flags: &[(&str, bool)], what: &str| -> Result<()> {
        match flags.iter().find(|(_, given)| *given) {
            Some((flag, _)) => Err(Error::usage(format!("{flag} is for {what}"))),
            None => Ok(()),
        }
    };
    match l.protocol {
        ProtocolArg::Raw => {
            refuse(&sio_only, "--protocol socketio")?;
            refuse(&gql_only, "--protocol graphql-ws")?;
            Ok(false)
        }
        ProtocolArg::Socketio => {
            refuse(&gql_only, "--protocol graphql-ws")?;
            socketio(l, kind, plan, columns)
        }
        ProtocolArg::GraphqlWs => {
            refuse(&sio_only, "--protocol socketio")?;
            graphql(l, kind, plan, columns)
        }
    }
}

/// A JSON object with placeholders (`what` names the flag in errors): parsed,
/// and checked to be an object once filled in with sample values.
fn json_pattern(text: &str, what: &str, columns: &[String]) -> Result<Pattern> {
    let p = Pattern::parse(text, columns).map_err(|e| Error::usage(format!("{what}: {e}")))?;
    let sample_row: Vec<String> = columns.iter().map(|_| "x".to_string()).collect();
    let sample = p.rendered(
        &Vars {
            conn: 1,
            agent: 1,
            shard: 0,
            row: Some(&sample_row),
            extra: &[],
        },
        Escape::Json,
    );
    match serde_json::from_str::<serde_json::Value>(&sample) {
        Ok(v) if v.is_object() => Ok(p),
        _ => Err(Error::usage(format!(
            "{what} '{text}' is not a JSON object (e.g. '{{\"token\":\"{{data.token}}\"}}')"
        ))),
    }
}

fn socketio(l: &LoadArgs, kind: WorkloadKind, plan: &mut Plan, columns: &[String]) -> Result<bool> {
    use WorkloadKind::*;
    match kind {
        Ping => {
            return Err(Error::usage(
                "--protocol socketio carries events, not WebSocket pings: time emits with --workload echo --ack, \
                 or hold connections with --workload idle (the server's pings are answered)",
            ))
        }
        Echo | Churn | Chat | Broadcast | Idle | Push | Conversation => {}
    }
    if l.ack && !matches!(kind, Echo | Churn | Chat) {
        return Err(Error::usage(format!(
            "--ack times emits that the server acknowledges: for --workload echo, churn or chat, not {}",
            kind.name()
        )));
    }
    if l.correlate.is_some() {
        return Err(Error::usage(
            "--correlate does not apply to --protocol socketio: emit with --ack and the server's acks are matched by their ids",
        ));
    }
    if l.binary {
        return Err(Error::usage(
            "--protocol socketio sends JSON text: leave out --binary",
        ));
    }
    let namespace = l.namespace.clone().unwrap_or_else(|| "/".to_string());
    if !namespace.starts_with('/') || namespace.contains(',') {
        return Err(Error::usage(format!(
            "--namespace '{namespace}': a Socket.IO namespace starts with / (e.g. /chat)"
        )));
    }
    let auth = l
        .auth
        .as_deref()
        .map(|a| json_pattern(a, "--auth", columns))
        .transpose()?;
    let uses_data = auth.as_ref().is_some_and(Pattern::uses_data);
    let event = l.event.clone().unwrap_or_else(|| {
        if kind == Broadcast {
            "broadcast"
        } else {
            "echo"
        }
        .to_string()
    });
    for t in &mut plan.targets {
        if !t.path.contains("EIO=") {
            let (path, query) = t.path.split_once('?').unwrap_or((&t.path, ""));
            let path = if path.contains("socket.io") {
                path.to_string()
            } else {
                format!("{}/socket.io/", path.trim_end_matches('/'))
            };
            let sep = if query.is_empty() { "" } else { "&" };
            t.path = format!("{path}?{query}{sep}EIO=4&transport=websocket");
        }
    }
    plan.protocol = Protocol::SocketIo(SocketIo {
        namespace,
        event,
        ack: l.ack,
        auth,
    });
    Ok(uses_data)
}

fn graphql(l: &LoadArgs, kind: WorkloadKind, plan: &mut Plan, columns: &[String]) -> Result<bool> {
    use WorkloadKind::*;
    let variables = match l.variables.as_deref() {
        None => None,
        Some(v) => match serde_json::from_str::<serde_json::Value>(v) {
            Ok(j) if j.is_object() => Some(v),
            _ => {
                return Err(Error::usage(format!(
                    "--variables '{v}' is not a JSON object (e.g. '{{\"count\":10}}')"
                )))
            }
        },
    };
    let (operation, subscription) = match kind {
        Echo | Churn | Chat => {
            let Some(q) = l.query.as_deref() else {
                return Err(Error::usage(format!(
                    "--protocol graphql-ws with --workload {}: give the operation to time with --query (e.g. --query '{{ hello }}')",
                    kind.name()
                )));
            };
            if l.template.is_some() || l.payload_file.is_some() {
                return Err(Error::usage(
                    "--protocol graphql-ws sends --query (and --variables): leave out --template and --payload-file",
                ));
            }
            (Some(gql_payload(q, variables)), None)
        }
        Push => {
            if l.query.is_some() {
                return Err(Error::usage(
                    "--workload push subscribes with --subscribe 'subscription { ... }': --query is for echo",
                ));
            }
            let Some(s) = l.subscribe.as_deref() else {
                return Err(Error::usage(
                    "--protocol graphql-ws --workload push: give the subscription with --subscribe 'subscription { ... }'",
                ));
            };
            (None, Some(gql_payload(s, variables)))
        }
        Idle | Conversation => {
            if l.query.is_some() || l.variables.is_some() {
                return Err(Error::usage(format!(
                    "--query and --variables are for --workload echo, churn, chat or push, not {}",
                    kind.name()
                )));
            }
            (None, None)
        }
        Ping | Broadcast => {
            return Err(Error::usage(format!(
                "--protocol graphql-ws does not carry --workload {}: use echo (--query), push (--subscribe), idle or conversation",
                kind.name()
            )))
        }
    };
    let offered = &mut plan.offer.subprotocols;
    if offered.is_empty() {
        offered.push(GRAPHQL_WS.to_string());
    } else if !offered.iter().any(|s| s == GRAPHQL_WS) {
        return Err(Error::usage(format!(
            "--protocol graphql-ws speaks the subprotocol {GRAPHQL_WS}: add it to --subprotocol (or leave --subprotocol out)"
        )));
    }
    let init_payload = l
        .init_payload
        .as_deref()
        .map(|p| json_pattern(p, "--init-payload", columns))
        .transpose()?;
    let uses_data = init_payload.as_ref().is_some_and(Pattern::uses_data);
    plan.protocol = Protocol::GraphqlWs(GraphqlWs {
        init_payload,
        operation,
        subscription,
    });
    Ok(uses_data)
}
