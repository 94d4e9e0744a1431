//! Application protocols over WebSocket (`--protocol`): how a message of the
//! behaviour layer is framed on the wire and how what arrives is read back.
//!
//! - `socketio`: Engine.IO v4 / Socket.IO v4 over a WebSocket
//!   (`/socket.io/?EIO=4&transport=websocket`). The server opens with `0{...}`
//!   (its ping interval and timeout), the client joins a namespace with `40`
//!   (`40/chat,` and an optional auth object) and the server answers `40{...}`,
//!   or `44{...}` to refuse; the server pings `2`, the client answers `3`. An
//!   event is `42[/ns,][ackid]["name",args...]`; an acknowledgement
//!   `43[/ns,]ackid[args...]`; `41` disconnects. A behaviour message is an
//!   event's argument list: what is sent is emitted as `--event NAME`, what
//!   arrives is the event's JSON array (`["tick",{...}]`, so `/1/seq` names a
//!   field of its first argument).
//! - `graphql-ws` (the `graphql-transport-ws` subprotocol): `connection_init`
//!   answered by `connection_ack`; `subscribe` with an id and a query, answered
//!   by `next` messages, then `complete` (or `error`); `ping`/`pong` both ways.
//!   A behaviour message is a `next`'s payload.
//!
//! Pure functions over bytes, no I/O: the shards call them, the configuration
//! stage checks the options. Imports the vocabulary (`vocab::jsonptr`) and
//! `values` (an auth object or init payload per connection); never a shard,
//! the plan or anything above.

use crate::values::Pattern;
use crate::vocab::jsonptr::{self, Pointer, Value};

/// The subprotocol graphql-ws servers speak.
pub const GRAPHQL_WS: &str = "graphql-transport-ws";

/// The protocol of a run, with its options.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Protocol {
    /// WebSocket messages as they are.
    #[default]
    Raw,
    SocketIo(SocketIo),
    GraphqlWs(GraphqlWs),
}

impl Protocol {
    pub fn name(&self) -> &'static str {
        match self {
            Protocol::Raw => "raw",
            Protocol::SocketIo(_) => "socketio",
            Protocol::GraphqlWs(_) => "graphql-ws",
        }
    }

    /// True when a connection must open the protocol before its messages flow.
    pub fn opens(&self) -> bool {
        !matches!(self, Protocol::Raw)
    }
}

/// Socket.IO options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketIo {
    /// The namespace joined (`/` by default).
    pub namespace: String,
    /// The event measured messages are emitted as.
    pub event: String,
    /// Emit with an acknowledgement id: replies are the server's acks.
    pub ack: bool,
    /// The auth object sent with the namespace connect (JSON with the
    /// per-connection placeholders), if any.
    pub auth: Option<Pattern>,
}

/// graphql-ws options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphqlWs {
    /// The `connection_init` payload (a JSON object with the per-connection
    /// placeholders), if any.
    pub init_payload: Option<Pattern>,
    /// The subscribe payload of each measured operation (`{"query":...}`).
    pub operation: Option<String>,
    /// A push's subscription payload (`{"query":...,"variables":...}`).
    pub subscription: Option<String>,
}

/// Digits of `v` in decimal.
fn digits(v: u64) -> usize {
    v.checked_ilog10().map_or(1, |d| d as usize + 1)
}

/// Writes `v` in decimal at the start of `dst`; returns the digits written.
fn put_u64(dst: &mut [u8], v: u64) -> usize {
    let n = digits(v);
    let mut x = v;
    for i in (0..n).rev() {
        dst[i] = b'0' + (x % 10) as u8;
        x /= 10;
    }
    n
}

/// Copies `s` to the start of `dst`; returns its length.
fn put(dst: &mut [u8], s: &[u8]) -> usize {
    dst[..s.len()].copy_from_slice(s);
    s.len()
}

impl SocketIo {
    /// `/chat,` for a namespace other than `/`, else nothing.
    fn ns_prefix(&self) -> String {
        if self.namespace == "/" {
            String::new()
        } else {
            format!("{},", self.namespace)
        }
    }

    /// The namespace connect packet: `40`, `40/chat,`, with the auth object
    /// (rendered for the connection).
    pub fn connect_packet(&self, auth: Option<&str>) -> String {
        format!("40{}{}", self.ns_prefix(), auth.unwrap_or(""))
    }

    /// Length of a measured emit whose argument is `inner` bytes (`quoted`: a
    /// JSON string of them), with ack id `seq` when emitting with an ack:
    /// `42[/ns,][seq]["event",ARG]`.
    pub fn emit_len(&self, seq: u64, inner: usize, quoted: bool) -> usize {
        2 + self.ns_prefix().len()
            + if self.ack { digits(seq) } else { 0 }
            + 1
            + json_string(&self.event).len()
            + 1
            + inner
            + if quoted { 2 } else { 0 }
            + 1
    }

    /// Writes that emit into `dst` (exactly `emit_len` bytes), the argument by
    /// `arg` into its `inner` bytes.
    pub fn write_emit(&self, seq: u64, quoted: bool, dst: &mut [u8], arg: impl FnOnce(&mut [u8])) {
        let mut at = put(dst, b"42");
        at += put(&mut dst[at..], self.ns_prefix().as_bytes());
        if self.ack {
            at += put_u64(&mut dst[at..], seq);
        }
        at += put(&mut dst[at..], b"[");
        at += put(&mut dst[at..], json_string(&self.event).as_bytes());
        at += put(&mut dst[at..], b",");
        let end = dst.len() - 1 - usize::from(quoted);
        if quoted {
            at += put(&mut dst[at..], b"\"");
        }
        arg(&mut dst[at..end]);
        if quoted {
            dst[end] = b'"';
        }
        dst[dst.len() - 1] = b']';
    }

    /// A whole event packet for the JSON array `args` (`["name",...]`), as a
    /// push's subscribe message or a conversation's send: `42[/ns,]ARGS`.
    pub fn event_packet(&self, args: &str) -> String {
        format!("42{}{args}", self.ns_prefix())
    }
}

/// `s` as a JSON string literal.
pub fn json_string(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

/// A Socket.IO frame as read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SioPacket<'a> {
    /// Engine.IO open `0{...}`: the server's ping interval and timeout (ms).
    Open {
        ping_interval: u64,
        ping_timeout: u64,
    },
    /// Engine.IO close `1`.
    Close,
    /// Engine.IO ping `2` (answer `3`).
    Ping,
    /// Engine.IO pong `3`.
    Pong,
    /// Socket.IO CONNECT `40` (the namespace joined).
    Connected { namespace: &'a str },
    /// Socket.IO DISCONNECT `41`.
    Disconnected { namespace: &'a str },
    /// Socket.IO EVENT `42`: the namespace, the ack id asked for, the JSON array.
    Event {
        namespace: &'a str,
        ack: Option<u64>,
        data: &'a [u8],
    },
    /// Socket.IO ACK `43`.
    Ack {
        namespace: &'a str,
        id: u64,
        data: &'a [u8],
    },
    /// Socket.IO CONNECT_ERROR `44` with its data (`{"message":...}`).
    ConnectError { namespace: &'a str, data: &'a [u8] },
    /// Anything else (binary events, upgrade probes, noise).
    Other,
}

/// Reads one Socket.IO frame (a WebSocket text message).
pub fn parse_sio(msg: &[u8]) -> SioPacket<'_> {
    match msg.first() {
        Some(b'0') => {
            let field = |name: &str| {
                Pointer::parse(name)
                    .ok()
                    .and_then(|p| jsonptr::lookup(&msg[1..], &p))
                    .and_then(|v| v.as_u64())
                    .unwrap_or(0)
            };
            SioPacket::Open {
                ping_interval: field("/pingInterval"),
                ping_timeout: field("/pingTimeout"),
            }
        }
        Some(b'1') => SioPacket::Close,
        Some(b'2') if msg.len() == 1 => SioPacket::Ping,
        Some(b'3') if msg.len() == 1 => SioPacket::Pong,
        Some(b'4') => parse_socket(&msg[1..]),
        _ => SioPacket::Other,
    }
}

/// A Socket.IO packet (after the Engine.IO `4`): type, `/ns,`, ack id, data.
fn parse_socket(p: &[u8]) -> SioPacket<'_> {
    let Some((&kind, mut rest)) = p.split_first() else {
        return SioPacket::Other;
    };
    let mut namespace = "/";
    if rest.first() == Some(&b'/') {
        let end = rest.iter().position(|&b| b == b',').unwrap_or(rest.len());
        namespace = std::str::from_utf8(&rest[..end]).unwrap_or("/");
        rest = rest.get(end + 1..).unwrap_or(&[]);
    }
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    let id = (digits > 0 && digits <= 19)
        .then(|| {
            std::str::from_utf8(&rest[..digits])
                .ok()?
                .parse::<u64>()
                .ok()
        })
        .flatten();
    let data = &rest[digits..];
    match kind {
        b'0' => SioPacket::Connected { namespace },
        b'1' => SioPacket::Disconnected { namespace },
        b'2' => SioPacket::Event {
            namespace,
            ack: id,
            data,
        },
        b'3' => match id {
            Some(id) => SioPacket::Ack {
                namespace,
                id,
                data,
            },
            None => SioPacket::Other,
        },
        b'4' => SioPacket::ConnectError { namespace, data },
        _ => SioPacket::Other,
    }
}

thread_local! {
    /// The pointers read on every message, parsed once per thread rather than
    /// once per message (each parse allocates).
    static EVENT_NAME: Pointer = Pointer::parse("/0").expect("a valid pointer");
    static GQL_FIELDS: [Pointer; 3] =
        ["/type", "/id", "/payload"].map(|p| Pointer::parse(p).expect("a valid pointer"));
}

/// The name of an event (its array's first element), if it is a plain string.
pub fn event_name(data: &[u8]) -> Option<&[u8]> {
    match EVENT_NAME.with(|p| jsonptr::lookup(data, p))? {
        v @ Value::Str(_) => v.str_content().filter(|s| !s.contains(&b'\\')),
        _ => None,
    }
}

/// A graphql-ws message as read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GqlMessage<'a> {
    ConnectionAck,
    Ping,
    Pong,
    /// `next` for operation `id` with its payload (`{"data":...}`).
    Next {
        id: &'a [u8],
        payload: &'a [u8],
    },
    Error {
        id: &'a [u8],
    },
    Complete {
        id: &'a [u8],
    },
    Other,
}

/// Reads one graphql-ws message (a JSON object with `type`, `id`, `payload`).
pub fn parse_gql(msg: &[u8]) -> GqlMessage<'_> {
    GQL_FIELDS.with(|[kind, id, payload]| {
        let Some(kind) = jsonptr::lookup(msg, kind).and_then(|v| v.str_content()) else {
            return GqlMessage::Other;
        };
        let id = || {
            jsonptr::lookup(msg, id)
                .and_then(|v| v.str_content())
                .unwrap_or(b"")
        };
        match kind {
            b"connection_ack" => GqlMessage::ConnectionAck,
            b"ping" => GqlMessage::Ping,
            b"pong" => GqlMessage::Pong,
            b"next" => GqlMessage::Next {
                id: id(),
                payload: jsonptr::lookup(msg, payload).map_or(b"" as &[u8], |v| v.raw()),
            },
            b"error" => GqlMessage::Error { id: id() },
            b"complete" => GqlMessage::Complete { id: id() },
            _ => GqlMessage::Other,
        }
    })
}

impl GraphqlWs {
    /// `connection_init`, with the payload rendered for the connection.
    pub fn init_message(payload: Option<&str>) -> String {
        match payload {
            Some(p) => format!(r#"{{"type":"connection_init","payload":{p}}}"#),
            None => r#"{"type":"connection_init"}"#.to_string(),
        }
    }

    /// Length of measured operation `seq`'s subscribe message.
    pub fn operation_len(&self, seq: u64) -> usize {
        OP_HEAD.len()
            + digits(seq)
            + OP_MID.len()
            + self.operation.as_deref().map_or(2, str::len)
            + 1
    }

    /// Writes operation `seq`'s subscribe message into `dst` (exactly
    /// `operation_len` bytes): `{"id":"SEQ","type":"subscribe","payload":P}`.
    pub fn write_operation(&self, seq: u64, dst: &mut [u8]) {
        let mut at = put(dst, OP_HEAD);
        at += put_u64(&mut dst[at..], seq);
        at += put(&mut dst[at..], OP_MID);
        at += put(
            &mut dst[at..],
            self.operation.as_deref().unwrap_or("{}").as_bytes(),
        );
        dst[at] = b'}';
    }

    /// A subscribe message for operation `id` whose payload is `payload` (a
    /// JSON object with `query` and maybe `variables`).
    pub fn subscribe(id: &str, payload: &str) -> String {
        format!(
            r#"{{"id":{},"type":"subscribe","payload":{payload}}}"#,
            json_string(id)
        )
    }
}

const OP_HEAD: &[u8] = br#"{"id":""#;
const OP_MID: &[u8] = br#"","type":"subscribe","payload":"#;

/// `{"query":Q}` with `variables` (a JSON object) if given: a graphql-ws
/// subscribe payload.
pub fn gql_payload(query: &str, variables: Option<&str>) -> String {
    match variables {
        Some(v) => format!(r#"{{"query":{},"variables":{v}}}"#, json_string(query)),
        None => format!(r#"{{"query":{}}}"#, json_string(query)),
    }
}

/// An operation id as wsherd writes it (the request's sequence number), read
/// back; None for ids wsherd did not write.
pub fn gql_seq(id: &[u8]) -> Option<u64> {
    if id.is_empty() || id.len() > 19 || !id.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(id).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socketio_packets() {
        assert_eq!(
            parse_sio(br#"0{"sid":"x","upgrades":[],"pingInterval":300,"pingTimeout":200,"maxPayload":1000000}"#),
            SioPacket::Open {
                ping_interval: 300,
                ping_timeout: 200
            }
        );
        assert_eq!(parse_sio(b"2"), SioPacket::Ping);
        assert_eq!(parse_sio(b"3"), SioPacket::Pong);
        assert_eq!(
            parse_sio(br#"40{"sid":"a"}"#),
            SioPacket::Connected { namespace: "/" }
        );
        assert_eq!(
            parse_sio(br#"40/chat,{"sid":"a"}"#),
            SioPacket::Connected { namespace: "/chat" }
        );
        assert_eq!(
            parse_sio(br#"431[{"a":1}]"#),
            SioPacket::Ack {
                namespace: "/",
                id: 1,
                data: br#"[{"a":1}]"#
            }
        );
        assert_eq!(
            parse_sio(br#"43/chat,7["hi"]"#),
            SioPacket::Ack {
                namespace: "/chat",
                id: 7,
                data: br#"["hi"]"#
            }
        );
        let SioPacket::Event { ack, data, .. } = parse_sio(br#"42["tick",{"seq":1}]"#) else {
            panic!()
        };
        assert_eq!((ack, data), (None, &br#"["tick",{"seq":1}]"#[..]));
        assert_eq!(event_name(data), Some(&b"tick"[..]));
        assert!(matches!(
            parse_sio(br#"44{"message":"unauthorized"}"#),
            SioPacket::ConnectError { namespace: "/", .. }
        ));
        assert_eq!(parse_sio(b"41"), SioPacket::Disconnected { namespace: "/" });
        assert_eq!(parse_sio(b""), SioPacket::Other);
        assert_eq!(parse_sio(b"43"), SioPacket::Other);
        let mut s = SocketIo {
            namespace: "/chat".into(),
            event: "echo".into(),
            ack: true,
            auth: None,
        };
        assert_eq!(
            s.connect_packet(Some(r#"{"token":"t"}"#)),
            r#"40/chat,{"token":"t"}"#
        );
        let emit = |s: &SocketIo, seq, quoted| {
            let mut buf = vec![0u8; s.emit_len(seq, 3, quoted)];
            s.write_emit(seq, quoted, &mut buf, |d| d.copy_from_slice(b"abc"));
            String::from_utf8(buf).unwrap()
        };
        assert_eq!(emit(&s, 12, true), r#"42/chat,12["echo","abc"]"#);
        assert_eq!(emit(&s, 0, false), r#"42/chat,0["echo",abc]"#);
        s.ack = false;
        s.namespace = "/".into();
        assert_eq!(emit(&s, 12, true), r#"42["echo","abc"]"#);
        assert_eq!(s.event_packet(r#"["subscribe",1]"#), r#"42["subscribe",1]"#);
    }

    #[test]
    fn graphql_ws_messages() {
        assert_eq!(
            parse_gql(br#"{"type":"connection_ack"}"#),
            GqlMessage::ConnectionAck
        );
        assert_eq!(parse_gql(br#"{"type":"ping"}"#), GqlMessage::Ping);
        assert_eq!(
            parse_gql(br#"{"id":"12","type":"next","payload":{"data":{"hello":"world"}}}"#),
            GqlMessage::Next {
                id: b"12",
                payload: br#"{"data":{"hello":"world"}}"#
            }
        );
        assert_eq!(
            parse_gql(br#"{"id":"1","type":"complete"}"#),
            GqlMessage::Complete { id: b"1" }
        );
        assert_eq!(parse_gql(b"nope"), GqlMessage::Other);
        assert_eq!(gql_seq(b"12"), Some(12));
        assert_eq!(gql_seq(b"sub-1"), None);
        assert_eq!(
            gql_payload("{ hello }", Some(r#"{"a":1}"#)),
            r#"{"query":"{ hello }","variables":{"a":1}}"#
        );
        assert_eq!(
            GraphqlWs::subscribe("s", r#"{"query":"q"}"#),
            r#"{"id":"s","type":"subscribe","payload":{"query":"q"}}"#
        );
        let g = GraphqlWs {
            init_payload: None,
            operation: Some(gql_payload("{ hello }", None)),
            subscription: None,
        };
        for seq in [0, 9, 10, 12345] {
            let mut buf = vec![0u8; g.operation_len(seq)];
            g.write_operation(seq, &mut buf);
            assert_eq!(
                String::from_utf8(buf).unwrap(),
                format!(
                    r#"{{"id":"{seq}","type":"subscribe","payload":{{"query":"{{ hello }}"}}}}"#
                )
            );
        }
    }
}
