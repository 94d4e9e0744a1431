//! What a connection reads through its application protocol (`--protocol`):
//! each WebSocket message is read as a Socket.IO packet or a graphql-ws
//! message; the protocol's own traffic is answered here (the server's pings,
//! the namespace connect after Engine.IO's open) and counted (events by name,
//! `next`/`complete`/`error`), and what is left is handed back to the
//! connection's messages (`exchange`) as a reply to a request id, a failed
//! request, a message for the workload, or the end of the connection.
//!
//! Also the protocol's messages that are not measured: the namespace connect,
//! `connection_init`, a push's subscription, a conversation's send wrapped as an
//! event. Imports the shard's state and the protocol codec (`crate::proto`);
//! never `exchange` (which calls it) or the connection loops.

use super::state::Shard;
use crate::proto::{
    event_name, gql_seq, parse_gql, parse_sio, GqlMessage, GraphqlWs, Protocol, SioPacket, SocketIo,
};
use crate::values::{Escape, Pattern};
use crate::vocab::jsonptr::{self, Pointer, Value};
use crate::ws::frame::{self, Kind};

/// `Conn::proto` while the protocol's open is under way.
pub(super) const OPENING: u8 = 0;
/// `Conn::proto` once it is done (and always without a protocol).
pub(super) const OPEN: u8 = 1;

/// What a message read through the protocol leaves for the connection.
pub(super) enum Incoming<'a> {
    /// The protocol's own (answered or counted here): nothing more to do.
    Done,
    /// The reply to request `seq` (an ack, a `next`).
    Reply(Option<u64>, &'a [u8]),
    /// Request `seq` was answered with an error.
    Failed(Option<u64>),
    /// A message for the workload: an event's arguments, a stamped payload
    /// carried inside an event, a `next`'s payload.
    Message(&'a [u8]),
    /// Not the protocol's, or not for this connection: unexpected.
    Unexpected,
    /// The protocol ends the connection, for this cause.
    End(&'static str),
}

/// Appends a text frame of `text` to `out`.
fn queue_text(shard: &Shard, out: &mut Vec<u8>, text: &[u8]) {
    queue_frame(shard, out, Kind::Text, text);
}

/// Appends a masked data frame of `kind` carrying `payload` to `out`, and counts
/// its bytes (header included) as sent. For the messages a workload makes itself
/// (protocol answers, subscriptions, conversation steps); the timed messages of
/// echo workloads are written by `exchange::queue_message`.
pub(super) fn queue_frame(shard: &Shard, out: &mut Vec<u8>, kind: Kind, payload: &[u8]) {
    let before = out.len();
    let key = shard.rng.borrow_mut().next_key();
    frame::write_client_frame_bytes(out, kind, key, payload);
    shard.stats.borrow_mut().counters.bytes_sent += (out.len() - before) as u64;
}

/// The connection's values for a pattern of the protocol (an auth object, an
/// init payload), JSON-escaped.
fn render(shard: &Shard, id: u32, p: &Pattern) -> String {
    p.rendered(&shard.vars(id, &[]), Escape::Json)
}

/// Reads `payload` (a WebSocket message of connection `id`, whose protocol
/// state is `state`) through the run's protocol; answers go into `out`.
pub(super) fn read<'a>(
    shard: &Shard,
    id: u32,
    slot: usize,
    state: &mut u8,
    payload: &'a [u8],
    out: &mut Vec<u8>,
) -> Incoming<'a> {
    match &shard.run.plan.protocol {
        Protocol::Raw => Incoming::Message(payload),
        Protocol::SocketIo(s) => socketio(shard, id, slot, s, state, payload, out),
        Protocol::GraphqlWs(_) => graphql(shard, state, payload, out),
    }
}

fn socketio<'a>(
    shard: &Shard,
    id: u32,
    slot: usize,
    s: &SocketIo,
    state: &mut u8,
    payload: &'a [u8],
    out: &mut Vec<u8>,
) -> Incoming<'a> {
    let plan = &shard.run.plan;
    match parse_sio(payload) {
        SioPacket::Ping => {
            // The next ping is due within the window the server announced.
            shard.heard(slot, None);
            queue_text(shard, out, b"3");
            shard.stats.borrow_mut().counters.proto_pings += 1;
            Incoming::Done
        }
        SioPacket::Pong => Incoming::Done,
        SioPacket::Open {
            ping_interval,
            ping_timeout,
        } if *state == OPENING => {
            // Missed heartbeats end the connection (the ticker sweeps them).
            let window = ping_interval.saturating_add(ping_timeout);
            if window > 0 {
                shard.heard(slot, Some(window.min(u32::MAX as u64 - 1) as u32));
            }
            let auth = s.auth.as_ref().map(|p| render(shard, id, p));
            queue_text(shard, out, s.connect_packet(auth.as_deref()).as_bytes());
            Incoming::Done
        }
        SioPacket::Connected { namespace } if namespace == s.namespace && *state == OPENING => {
            *state = OPEN;
            shard.stats.borrow_mut().counters.proto_opened += 1;
            Incoming::Done
        }
        SioPacket::ConnectError { namespace, .. } if namespace == s.namespace => {
            // Kept to show what the server said.
            shard.stats.borrow_mut().counters.unexpected(true, payload);
            Incoming::End("socketio_connect_error")
        }
        SioPacket::Disconnected { namespace } if namespace == s.namespace => {
            Incoming::End("socketio_disconnect")
        }
        SioPacket::Close => Incoming::End("socketio_close"),
        SioPacket::Ack {
            namespace,
            id,
            data,
        } if namespace == s.namespace && s.ack => Incoming::Reply(Some(id), data),
        SioPacket::Event {
            namespace, data, ..
        } if namespace == s.namespace => {
            let name = event_name(data);
            {
                let mut st = shard.stats.borrow_mut();
                let name = name.map_or("(unnamed)".into(), String::from_utf8_lossy);
                st.counters.event(&name);
            }
            let ours = name == Some(s.event.as_bytes());
            if plan.push.is_some() || plan.script.is_some() {
                // The event's JSON array: /1 is its first argument.
                Incoming::Message(data)
            } else if ours && !s.ack && plan.workload.message == crate::workload::Message::Data {
                // An echo or a broadcast copy: the stamped payload is the argument.
                first_arg(data).map_or(Incoming::Unexpected, Incoming::Message)
            } else {
                Incoming::Done
            }
        }
        _ => Incoming::Unexpected,
    }
}

/// An event's first argument: a string's content (the text stamp wsherd
/// quoted), or any other value's JSON (a template).
fn first_arg(data: &[u8]) -> Option<&[u8]> {
    thread_local! {
        static FIRST: Pointer = Pointer::parse("/1").expect("a valid pointer");
    }
    FIRST.with(|p| {
        let v = jsonptr::lookup(data, p)?;
        match v {
            Value::Str(_) => v.str_content(),
            other => Some(other.raw()),
        }
    })
}

fn graphql<'a>(
    shard: &Shard,
    state: &mut u8,
    payload: &'a [u8],
    out: &mut Vec<u8>,
) -> Incoming<'a> {
    let plan = &shard.run.plan;
    let count = |what: &str| shard.stats.borrow_mut().counters.event(what);
    match parse_gql(payload) {
        GqlMessage::ConnectionAck if *state == OPENING => {
            *state = OPEN;
            shard.stats.borrow_mut().counters.proto_opened += 1;
            Incoming::Done
        }
        GqlMessage::Ping => {
            queue_text(shard, out, br#"{"type":"pong"}"#);
            shard.stats.borrow_mut().counters.proto_pings += 1;
            Incoming::Done
        }
        GqlMessage::Pong => Incoming::Done,
        _ if plan.script.is_some() => Incoming::Message(payload),
        GqlMessage::Next { id, payload: data } => {
            count("next");
            if plan.push.is_some() {
                Incoming::Message(data)
            } else {
                Incoming::Reply(gql_seq(id), payload)
            }
        }
        GqlMessage::Error { id } => {
            count("error");
            shard.stats.borrow_mut().counters.error("graphql_error");
            if plan.push.is_some() {
                Incoming::Done
            } else {
                Incoming::Failed(gql_seq(id))
            }
        }
        GqlMessage::Complete { .. } => {
            count("complete");
            Incoming::Done
        }
        _ => Incoming::Unexpected,
    }
}

/// The protocol's first message of connection `id` (graphql-ws's
/// `connection_init`; Socket.IO waits for the server's open), into `out`.
pub(super) fn queue_open(shard: &Shard, id: u32, out: &mut Vec<u8>) {
    if let Protocol::GraphqlWs(g) = &shard.run.plan.protocol {
        let payload = g.init_payload.as_ref().map(|p| render(shard, id, p));
        queue_text(
            shard,
            out,
            GraphqlWs::init_message(payload.as_deref()).as_bytes(),
        );
    }
}

/// A text message of the workload's own (a push's subscribe, a conversation's
/// send) as the protocol carries it: a Socket.IO event of the namespace (the
/// text is the event's array, `["subscribe",{...}]`), or as it is.
pub(super) fn wrap_text(shard: &Shard, text: String) -> String {
    match &shard.run.plan.protocol {
        Protocol::SocketIo(s) => s.event_packet(&text),
        _ => text,
    }
}

/// graphql-ws push: connection `id`'s subscription (operation `s<id>`).
pub(super) fn graphql_subscription(shard: &Shard, id: u32) -> Option<String> {
    match &shard.run.plan.protocol {
        Protocol::GraphqlWs(GraphqlWs {
            subscription: Some(payload),
            ..
        }) => Some(GraphqlWs::subscribe(&format!("s{id}"), payload)),
        _ => None,
    }
}
