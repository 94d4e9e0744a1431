//! A connection's messages: its state (`Conn`), the messages it queues to send
//! (each stamped with its connection, sequence and intended time), and what it
//! reads back: frames parsed, replies matched to their sends and timed, every
//! message accounted in the shard's ledger. Shared by the closed loop (`conn`)
//! and the open loop (`open_loop`); imports neither.

use super::protocol::{self, Incoming};
use super::state::Shard;
use crate::payload::PayloadKind;
use crate::proto::Protocol;
use crate::stamp::Stamp;
use crate::template::seq_named_by;
use crate::vocab::jsonptr::{self, Pointer, Value};
use crate::workload::{Message, Push};
use crate::ws::frame::{self, From, Kind};

/// Largest frame accepted from a server.
const MAX_FRAME: usize = 64 << 20;

/// How a connection's active phase ended.
#[derive(Debug, PartialEq)]
pub(super) enum End {
    /// The run stopped: drain and close.
    Stopped,
    /// A session exchanged all its messages: close.
    Done,
    /// The connection broke (cause as counted).
    Lost(&'static str),
    /// The server sent a close frame with this code.
    ClosedByServer(u16),
    /// The server broke the protocol.
    Protocol(&'static str),
}

/// Per-connection state. Small on purpose: thousands of these live per shard.
pub(super) struct Conn {
    pub(super) id: u32,
    pub(super) slot: usize,
    /// Bytes of a frame that has not fully arrived yet (normally empty).
    pub(super) pending: Vec<u8>,
    /// A fragmented message being reassembled (rare: boxed, so that it costs 8 bytes
    /// rather than 24 in every connection's task).
    #[allow(clippy::box_collection)]
    pub(super) frag: Option<Box<Vec<u8>>>,
    pub(super) next_seq: u64,
    pub(super) acked: u64,
    /// Set once the run stops: send no new messages.
    pub(super) stopping: bool,
    /// The message being reassembled from fragments is text (else binary).
    pub(super) frag_text: bool,
    /// Messages this connection may still send (sessions), else u64::MAX.
    pub(super) budget: u64,
    /// Messages owed after a think time (chat).
    pub(super) owed: u32,
    /// Broadcast: the next sequence number expected from each publisher.
    pub(super) seen: Box<[u64]>,
    pub(super) got_close: Option<u16>,
    /// permessage-deflate, when the server accepted it (boxed: 8 bytes for
    /// connections without).
    pub(super) deflate: Option<Box<ConnDeflate>>,
    /// --correlate: the requests awaiting their reply (made at the first send).
    pub(super) requests: Option<Box<Requests>>,
    /// A conversation's state (`--workload conversation`).
    pub(super) script: Option<Box<super::steps::ScriptRun>>,
    /// The application protocol has opened (`OPEN`), or not yet (`OPENING`).
    pub(super) proto: u8,
}

/// --correlate: the send times of a connection's requests by sequence number,
/// from the oldest one not yet answered on. Replies come in any order: an
/// answered request is marked, and the front moves past answered ones, so the
/// queue holds what is outstanding plus the answered requests sent after the
/// oldest outstanding one.
#[derive(Default)]
pub(super) struct Requests {
    /// Sequence number of `times[0]`.
    first: u64,
    /// (sent, intended) of each request from `first` on; `ANSWERED` once answered.
    times: std::collections::VecDeque<(u64, u64)>,
}

const ANSWERED: u64 = u64::MAX;

impl Requests {
    /// Request `seq` (the next one) was sent at `sent`, meant for `intended`.
    #[inline]
    fn sent(&mut self, seq: u64, sent: u64, intended: u64) {
        if self.times.is_empty() {
            self.first = seq;
        }
        debug_assert_eq!(seq, self.first + self.times.len() as u64);
        self.times.push_back((sent, intended));
    }

    /// The reply to request `seq` came: its (sent, intended) times, or None when
    /// no such request is outstanding (never sent, or answered already).
    #[inline]
    fn answer(&mut self, seq: u64) -> Option<(u64, u64)> {
        let i = usize::try_from(seq.checked_sub(self.first)?).ok()?;
        let e = self.times.get_mut(i)?;
        if e.0 == ANSWERED {
            return None;
        }
        let times = std::mem::replace(e, (ANSWERED, ANSWERED));
        while self.times.front().is_some_and(|e| e.0 == ANSWERED) {
            self.times.pop_front();
            self.first += 1;
        }
        Some(times)
    }
}

/// A connection's permessage-deflate: its codec, and whether the message being
/// reassembled from fragments (`Conn::frag`) is compressed.
pub(super) struct ConnDeflate {
    pub(super) codec: crate::ws::deflate::Codec,
    pub(super) frag_compressed: bool,
}

impl Conn {
    #[inline]
    pub(super) fn outstanding(&self) -> u64 {
        self.next_seq - self.acked
    }
}

/// Appends `n` new messages to `out`, sent now and meant to be sent now (closed loop).
#[inline]
pub(super) fn queue_messages(shard: &Shard, c: &mut Conn, out: &mut Vec<u8>, n: u32) {
    if n == 0 || c.stopping {
        return;
    }
    let n = (n as u64).min(c.budget) as u32;
    c.budget -= n as u64;
    for _ in 0..n {
        let now = shard.now_ns();
        queue_message(shard, c, out, now, now);
    }
}

/// Push: the subscribe message (`--subscribe`), with the connection's values
/// filled in (JSON-escaped), appended to `out` once the connection is open.
/// Counted apart from the measured messages: nothing answers it in kind.
#[cold]
pub(super) fn queue_subscribe(shard: &Shard, c: &Conn, out: &mut Vec<u8>) {
    let plan = &shard.run.plan;
    // graphql-ws subscribes with its own message; Socket.IO wraps the text in an
    // event of the namespace.
    let text = match protocol::graphql_subscription(shard, c.id) {
        Some(text) => text,
        None => {
            let Some(message) = plan.push.as_ref().and_then(|p| p.subscribe.as_ref()) else {
                return;
            };
            let vars = shard.vars(c.id, &[]);
            protocol::wrap_text(shard, message.rendered(&vars, crate::values::Escape::Json))
        }
    };
    protocol::queue_frame(shard, out, Kind::Text, text.as_bytes());
    shard.stats.borrow_mut().counters.subscribes += 1;
}

/// A scheduled send that goes out this much after its intended time counts as late.
pub const LATE_AFTER: std::time::Duration = std::time::Duration::from_millis(10);

/// Appends one scheduled message that is due (`intended` ≤ `now`, both ns since the
/// run's origin), as the open loop and a heartbeat send it: its send lag recorded,
/// counted late past `LATE_AFTER`, and stamped with its intended time so that its
/// round trip is timed from when it was meant to go.
#[inline]
pub(super) fn queue_scheduled(
    shard: &Shard,
    c: &mut Conn,
    out: &mut Vec<u8>,
    now: u64,
    intended: u64,
) {
    let lag = now - intended;
    {
        let mut st = shard.stats.borrow_mut();
        st.send_lag.saturating_record(lag);
        if lag > LATE_AFTER.as_nanos() as u64 {
            st.counters.late += 1;
        }
    }
    queue_message(shard, c, out, now, intended);
}

/// Appends one message with its timing header to `out` and counts it.
#[inline]
pub(super) fn queue_message(
    shard: &Shard,
    c: &mut Conn,
    out: &mut Vec<u8>,
    sent: u64,
    intended: u64,
) {
    let plan = &shard.run.plan;
    let spec = &plan.payload;
    let kind = match (plan.workload.message, spec.kind, &plan.protocol) {
        (Message::Ping, _, _) => Kind::Ping,
        (Message::Data, _, Protocol::SocketIo(_) | Protocol::GraphqlWs(_)) => Kind::Text,
        (Message::Data, PayloadKind::Binary, Protocol::Raw) => Kind::Binary,
        (Message::Data, PayloadKind::Text, Protocol::Raw) => Kind::Text,
    };
    let stamp = Stamp {
        conn: c.id,
        seq: c.next_seq,
        ts: sent,
        intended,
    };
    c.next_seq += 1;
    if plan.correlate.is_some() || replies_by_id(&plan.protocol) {
        c.requests
            .get_or_insert_with(Box::default)
            .sent(stamp.seq, sent, intended);
    }
    let before = out.len();
    let key = shard.rng.borrow_mut().next_key();
    let len = if kind == Kind::Ping {
        spec.size
    } else {
        body_len(plan, stamp.seq)
    };
    match c.deflate.as_deref_mut().filter(|_| kind != Kind::Ping) {
        None if kind == Kind::Ping => {
            frame::write_client_frame(out, kind, key, len, |dst| spec.write(stamp, dst))
        }
        None => frame::write_client_frame(out, kind, key, len, |dst| write_body(plan, stamp, dst)),
        Some(d) => write_compressed(shard, d, out, kind, key, len, stamp),
    }
    if shard.debug_frames.get() > 0 && c.id == shard.debug_conn {
        debug_sent(shard, &out[before..], key);
    }
    let mut st = shard.stats.borrow_mut();
    st.counters.sent += 1;
    st.counters.bytes_sent += (out.len() - before) as u64;
    if plan.offer.deflate.is_some() {
        // The message's own bytes, beside the frame's (compressed or not).
        st.counters.msg_bytes_sent += len as u64;
    }
    shard.outstanding.set(shard.outstanding.get() + 1);
}

/// True when the protocol's replies name their request by an id wsherd wrote
/// (Socket.IO acks, graphql-ws operation ids): send times are kept per request.
#[inline]
fn replies_by_id(p: &Protocol) -> bool {
    match p {
        Protocol::Raw => false,
        Protocol::SocketIo(s) => s.ack,
        Protocol::GraphqlWs(_) => true,
    }
}

/// Length of measured message `seq`'s payload: the payload itself, or the
/// protocol's packet around it.
#[inline]
fn body_len(plan: &crate::plan::Plan, seq: u64) -> usize {
    let spec = &plan.payload;
    match &plan.protocol {
        Protocol::Raw => spec.size,
        Protocol::SocketIo(s) => s.emit_len(seq, spec.size, !spec.is_template()),
        Protocol::GraphqlWs(g) => g.operation_len(seq),
    }
}

/// Writes measured message `stamp`'s payload (exactly `body_len` bytes): the
/// stamped payload, in a Socket.IO emit (the text stamp as a JSON string, a
/// template as the JSON it is), or a graphql-ws subscribe to the operation.
#[inline]
fn write_body(plan: &crate::plan::Plan, stamp: Stamp, dst: &mut [u8]) {
    let spec = &plan.payload;
    match &plan.protocol {
        Protocol::Raw => spec.write(stamp, dst),
        Protocol::SocketIo(s) => s.write_emit(stamp.seq, !spec.is_template(), dst, |arg| {
            spec.write(stamp, arg)
        }),
        Protocol::GraphqlWs(g) => g.write_operation(stamp.seq, dst),
    }
}

/// A message compressed (permessage-deflate) into one frame with RSV1: built
/// and compressed in the shard's scratch buffers.
#[cold]
fn write_compressed(
    shard: &Shard,
    d: &mut ConnDeflate,
    out: &mut Vec<u8>,
    kind: Kind,
    key: [u8; 4],
    len: usize,
    stamp: Stamp,
) {
    let plan = &shard.run.plan;
    let plain = shard.deflate.build(len, |dst| write_body(plan, stamp, dst));
    shard.deflate.compress(&mut d.codec, &plain, |packed| {
        frame::write_client_frame_compressed(out, kind, key, packed)
    });
}

/// A compressed message (permessage-deflate) arrived whole: inflated (at most
/// `--max-message` bytes) into the shard's scratch buffer and handled as any
/// message. A bomb or bad data ends the connection.
#[cold]
fn on_compressed(
    shard: &Shard,
    c: &mut Conn,
    data: &[u8],
    text: bool,
    now_ns: u64,
    out: &mut Vec<u8>,
) -> Result<u32, End> {
    let Some(d) = c.deflate.as_deref_mut() else {
        return Err(End::Protocol("protocol_reserved_bits"));
    };
    let plain = shard
        .deflate
        .inflate(&mut d.codec, data, shard.run.plan.max_message)
        .map_err(|e| End::Protocol(e.name()))?;
    on_data(shard, c, &plain, text, now_ns, out)
}

/// A reply (an echo, or a PONG for ping workloads) arrived: match it to its send.
/// Returns how many new messages the workload sends in answer.
#[inline]
fn on_reply(shard: &Shard, c: &mut Conn, payload: &[u8], text: bool, now_ns: u64) -> u32 {
    let times = match &shard.run.plan.correlate {
        None => shard
            .run
            .plan
            .payload
            .read(payload)
            .filter(|s| s.conn == c.id && s.seq == c.acked && c.acked < c.next_seq)
            .map(|s| (s.ts, s.intended)),
        Some(ptr) => correlated(c, payload, ptr),
    };
    settle(shard, c, times, payload, text, now_ns)
}

/// The reply to a send whose (sent, intended) times are `times` arrived (None:
/// it matched no send: counted as unexpected, `payload` kept to show): timed
/// and counted. Returns how many new messages the workload sends in answer.
#[inline]
fn settle(
    shard: &Shard,
    c: &mut Conn,
    times: Option<(u64, u64)>,
    payload: &[u8],
    text: bool,
    now_ns: u64,
) -> u32 {
    let mut st = shard.stats.borrow_mut();
    let Some((sent, intended)) = times else {
        st.counters.unexpected(text, payload);
        return 0;
    };
    // From the intended send: equal to the actual send in a closed loop,
    // the coordinated-omission-corrected latency in an open loop.
    st.rtt.saturating_record(now_ns.saturating_sub(intended));
    if shard.run.plan.workload.open_loop() {
        st.rtt_uncorrected
            .saturating_record(now_ns.saturating_sub(sent));
    }
    st.counters.received += 1;
    // With replies matched by id, `acked` counts the answered requests (in any order).
    c.acked += 1;
    shard.outstanding.set(shard.outstanding.get() - 1);
    shard.run.plan.workload.sends_per_reply()
}

/// --correlate: the request a reply names in its field `ptr` (found without
/// building a document), if it is outstanding: its send times, now answered.
#[inline]
fn correlated(c: &mut Conn, payload: &[u8], ptr: &Pointer) -> Option<(u64, u64)> {
    let value = jsonptr::lookup(payload, ptr)?;
    let digits = match value {
        Value::Number(digits) => digits,
        Value::Str(_) => value.str_content()?,
        _ => return None,
    };
    let seq = seq_named_by(digits)?;
    c.requests.as_deref_mut()?.answer(seq)
}

/// No copy from this publisher yet.
pub(super) const UNSEEN: u64 = u64::MAX;

/// A broadcast copy: time its delivery, check it against the publisher's sequence,
/// and (for the publisher's own copy) settle the ledger like an echo.
fn on_delivery(
    shard: &Shard,
    c: &mut Conn,
    payload: &[u8],
    now_ns: u64,
    b: crate::workload::Broadcast,
    text: bool,
) {
    let stamp = shard.run.plan.payload.read(payload);
    let Some((s, p)) = stamp.and_then(|s| b.publisher(s.conn as u64).map(|p| (s, p as usize)))
    else {
        shard.stats.borrow_mut().counters.unexpected(text, payload);
        return;
    };
    if c.seen.is_empty() {
        c.seen = vec![UNSEEN; b.publishers as usize].into_boxed_slice();
    }
    {
        let mut st = shard.stats.borrow_mut();
        st.delivery
            .saturating_record(now_ns.saturating_sub(s.intended));
        st.counters.delivered += 1;
        // A connection that joined late starts counting from the first copy it
        // sees of each publisher: earlier messages were never its to miss.
        let expected = if c.seen[p] == UNSEEN {
            s.seq
        } else {
            c.seen[p]
        };
        if s.seq >= expected {
            st.counters.missing += s.seq - expected;
            c.seen[p] = s.seq + 1;
        } else {
            st.counters.duplicates += 1;
        }
    }
    if s.conn == c.id {
        on_reply(shard, c, payload, text, now_ns);
    }
}

/// A message the server pushed: counted; its sequence number checked against
/// the connection's last one (`--seq`; a connection starts from the first it
/// sees); timed one-way from the server's send time (`--sent-at`) by this host's
/// wall clock, a negative time counted as clock skew rather than recorded.
fn on_push(shard: &Shard, c: &mut Conn, payload: &[u8], p: &Push) {
    let seq = p
        .seq
        .as_ref()
        .map(|ptr| jsonptr::lookup(payload, ptr).and_then(|v| v.as_u64()));
    let sent_ns = p.sent_at.as_ref().map(|(ptr, unit)| {
        jsonptr::lookup(payload, ptr)
            .and_then(|v| v.as_f64())
            .map(|t| t * unit.nanos())
    });
    let mut st = shard.stats.borrow_mut();
    st.counters.delivered += 1;
    if matches!(seq, Some(None)) || matches!(sent_ns, Some(None)) {
        st.counters.push_unfielded += 1;
    }
    if let Some(Some(seq)) = seq {
        if c.seen.is_empty() {
            c.seen = Box::new([UNSEEN]);
        }
        let expected = if c.seen[0] == UNSEEN { seq } else { c.seen[0] };
        if seq >= expected {
            st.counters.missing += seq - expected;
            c.seen[0] = seq.saturating_add(1);
        } else {
            st.counters.duplicates += 1;
        }
    }
    if let Some(Some(sent)) = sent_ns {
        let one_way = shard.unix_ns() as f64 - sent;
        if one_way < 0.0 {
            st.counters.skewed += 1;
        } else {
            st.delivery.saturating_record(one_way as u64);
        }
    }
}

/// A complete data message (`text`: a text frame): read through the protocol,
/// then what the workload makes of it: the reply itself, a broadcast copy, a
/// pushed message, a conversation's message, or (for ping workloads)
/// unexpected. Protocol answers (pongs, a namespace connect) go into `out`.
/// Returns how many new messages the workload sends in answer; Err when the
/// protocol ends the connection.
#[inline]
fn on_data(
    shard: &Shard,
    c: &mut Conn,
    payload: &[u8],
    text: bool,
    now_ns: u64,
    out: &mut Vec<u8>,
) -> Result<u32, End> {
    if shard.run.plan.offer.deflate.is_some() {
        // The message's own bytes (inflated, if it came compressed).
        shard.stats.borrow_mut().counters.msg_bytes_received += payload.len() as u64;
    }
    // RFC 6455 8.1: a text message that is not UTF-8 fails the connection.
    if text && std::str::from_utf8(payload).is_err() {
        return Err(End::Protocol("protocol_invalid_utf8"));
    }
    if shard.run.plan.protocol == Protocol::Raw {
        return Ok(on_message(shard, c, payload, text, now_ns));
    }
    Ok(
        match protocol::read(shard, c.id, c.slot, &mut c.proto, payload, out) {
            Incoming::Done => 0,
            Incoming::Reply(seq, inner) => on_reply_to(shard, c, seq, inner, text, now_ns),
            Incoming::Failed(seq) => {
                if on_failed_reply(shard, c, seq) {
                    shard.run.plan.workload.sends_per_reply()
                } else {
                    shard.stats.borrow_mut().counters.unexpected(text, payload);
                    0
                }
            }
            Incoming::Message(inner) => on_message(shard, c, inner, text, now_ns),
            Incoming::Unexpected => {
                shard.stats.borrow_mut().counters.unexpected(text, payload);
                0
            }
            Incoming::End(cause) => return Err(End::Lost(cause)),
        },
    )
}

/// A message of the behaviour layer (a protocol's payload, or the WebSocket
/// message itself): see `on_data`.
#[inline]
pub(super) fn on_message(
    shard: &Shard,
    c: &mut Conn,
    payload: &[u8],
    text: bool,
    now_ns: u64,
) -> u32 {
    if let Some(b) = shard.run.plan.workload.broadcast {
        on_delivery(shard, c, payload, now_ns, b, text);
        return 0;
    }
    if let Some(p) = &shard.run.plan.push {
        on_push(shard, c, payload, p);
        return 0;
    }
    if let Some(run) = c.script.as_deref_mut() {
        super::steps::on_message(shard, run, payload, text, now_ns);
        return 0;
    }
    match shard.run.plan.workload.message {
        Message::Data => on_reply(shard, c, payload, text, now_ns),
        Message::Ping => {
            shard.stats.borrow_mut().counters.unexpected(text, payload);
            0
        }
    }
}

/// A reply that names its request by an id wsherd wrote (`seq`): timed from
/// that request's send if it is outstanding, else counted as unexpected.
#[inline]
pub(super) fn on_reply_to(
    shard: &Shard,
    c: &mut Conn,
    seq: Option<u64>,
    payload: &[u8],
    text: bool,
    now_ns: u64,
) -> u32 {
    let times = seq.and_then(|seq| c.requests.as_deref_mut()?.answer(seq));
    settle(shard, c, times, payload, text, now_ns)
}

/// A request (named by `seq`) answered with an error (graphql-ws `error`):
/// counted as failed, not timed. False when no such request is outstanding.
pub(super) fn on_failed_reply(shard: &Shard, c: &mut Conn, seq: Option<u64>) -> bool {
    if seq
        .and_then(|seq| c.requests.as_deref_mut()?.answer(seq))
        .is_none()
    {
        return false;
    }
    shard.stats.borrow_mut().counters.failed_msgs += 1;
    c.acked += 1;
    shard.outstanding.set(shard.outstanding.get() - 1);
    true
}

/// Handles every complete frame at the start of `data`; queues replies (pongs, new
/// messages) into `out`. Returns the bytes consumed.
fn on_bytes(shard: &Shard, c: &mut Conn, data: &[u8], out: &mut Vec<u8>) -> Result<usize, End> {
    let now = shard.now_ns();
    let mut pos = 0;
    let mut to_send = 0u32;
    let mut result = Ok(());
    while pos < data.len() {
        // A frame larger than --max-message is refused from its header: what a
        // connection buffers stays under the limit.
        let max = MAX_FRAME.min(shard.run.plan.max_message);
        let f = match frame::parse_with(&data[pos..], From::Server, max, c.deflate.is_some()) {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => {
                result = Err(End::Protocol(e.name()));
                break;
            }
        };
        let payload = &data[pos + f.header_len..pos + f.total_len()];
        pos += f.total_len();
        if shard.debug_frames.get() > 0 && c.id == shard.debug_conn {
            debug_frame(shard, '<', f.kind, f.fin, payload.len(), payload);
        }
        match f.kind {
            Kind::Text | Kind::Binary if c.frag.is_none() => {
                if f.fin && f.rsv1 {
                    match on_compressed(shard, c, payload, f.kind == Kind::Text, now, out) {
                        Ok(n) => to_send += n,
                        Err(end) => {
                            result = Err(end);
                            break;
                        }
                    }
                } else if f.fin {
                    match on_data(shard, c, payload, f.kind == Kind::Text, now, out) {
                        Ok(n) => to_send += n,
                        Err(end) => {
                            result = Err(end);
                            break;
                        }
                    }
                } else {
                    c.frag = Some(Box::new(payload.to_vec()));
                    c.frag_text = f.kind == Kind::Text;
                    if let Some(d) = c.deflate.as_deref_mut() {
                        d.frag_compressed = f.rsv1;
                    }
                }
            }
            Kind::Continuation if c.frag.is_some() => {
                let buf = c.frag.as_mut().expect("checked above");
                if buf.len() + payload.len() > shard.run.plan.max_message {
                    c.frag = None;
                    result = Err(End::Protocol("message_too_large"));
                    break;
                }
                buf.extend_from_slice(payload);
                if f.fin {
                    let whole = c.frag.take().unwrap_or_default();
                    let compressed = c.deflate.as_ref().is_some_and(|d| d.frag_compressed);
                    if compressed {
                        let text = c.frag_text;
                        match on_compressed(shard, c, &whole, text, now, out) {
                            Ok(n) => to_send += n,
                            Err(end) => {
                                result = Err(end);
                                break;
                            }
                        }
                    } else {
                        match on_data(shard, c, &whole, c.frag_text, now, out) {
                            Ok(n) => to_send += n,
                            Err(end) => {
                                result = Err(end);
                                break;
                            }
                        }
                    }
                }
            }
            Kind::Text | Kind::Binary | Kind::Continuation => {
                result = Err(End::Protocol("protocol_bad_fragmentation"));
                break;
            }
            Kind::Ping => {
                let key = shard.rng.borrow_mut().next_key();
                frame::write_client_frame_bytes(out, Kind::Pong, key, payload);
                if shard.debug_frames.get() > 0 && c.id == shard.debug_conn {
                    debug_frame(shard, '>', Kind::Pong, true, payload.len(), payload);
                }
                shard.stats.borrow_mut().counters.pings_answered += 1;
            }
            Kind::Pong => {
                // Our timed pings come back as pongs; unsolicited pongs (RFC 6455
                // allows them as heartbeats) carry no stamp of ours and are ignored.
                if shard.run.plan.workload.message == Message::Ping
                    && shard.run.plan.payload.read(payload).is_some()
                {
                    to_send += on_reply(shard, c, payload, false, now);
                }
            }
            Kind::Close => {
                if let Some(cause) = frame::close_problem(payload) {
                    result = Err(End::Protocol(cause));
                    break;
                }
                let code = frame::close_code(payload);
                c.got_close = Some(code);
                result = Err(End::ClosedByServer(code));
                break;
            }
        }
    }
    shard.stats.borrow_mut().counters.bytes_received += pos as u64;
    if shard.run.plan.workload.think().is_some() {
        // Chat: the next message goes out after the think time (see `active`).
        c.owed += to_send;
    } else {
        queue_messages(shard, c, out, to_send);
    }
    result.map(|_| pos)
}

/// --debug-frames: one line for a frame of the watched connection (`>` sent,
/// `<` received): opcode, FIN, payload length, the first 16 bytes in hex and as
/// text. Cold: only the first N frames of one connection get here.
#[cold]
fn debug_frame(shard: &Shard, dir: char, kind: Kind, fin: bool, len: usize, first: &[u8]) {
    shard
        .debug_frames
        .set(shard.debug_frames.get().saturating_sub(1));
    let first = &first[..first.len().min(16)];
    let hex: Vec<String> = first.iter().map(|b| format!("{b:02x}")).collect();
    let text: String = first
        .iter()
        .map(|&b| {
            if (0x20..0x7f).contains(&b) {
                b as char
            } else {
                '.'
            }
        })
        .collect();
    eprintln!(
        "wsherd: frame conn {} {dir} {kind:?}{} len {}: {} |{text}|",
        shard.debug_conn,
        if fin { " fin" } else { "" },
        len,
        hex.join(" ")
    );
}

/// --debug-frames for a frame just written to `frame` (masked with `key`).
#[cold]
fn debug_sent(shard: &Shard, frame: &[u8], key: [u8; 4]) {
    if let Ok(Some(f)) = frame::parse(frame, From::Client, MAX_FRAME) {
        let mut first = frame[f.header_len..f.total_len().min(f.header_len + 16)].to_vec();
        crate::ws::mask::apply_mask(&mut first, key);
        debug_frame(shard, '>', f.kind, f.fin, f.payload_len, &first);
    }
}

/// Feeds a read buffer through the frame parser, keeping any partial frame.
pub(super) fn on_read(
    shard: &Shard,
    c: &mut Conn,
    buf: Vec<u8>,
    out: &mut Vec<u8>,
) -> Result<(), End> {
    let res = if c.pending.is_empty() {
        let r = on_bytes(shard, c, &buf, out);
        if let Ok(used) = r {
            if used < buf.len() {
                c.pending.extend_from_slice(&buf[used..]);
            }
        }
        r
    } else {
        let mut pending = std::mem::take(&mut c.pending);
        pending.extend_from_slice(&buf);
        let r = on_bytes(shard, c, &pending, out);
        if let Ok(used) = r {
            pending.drain(..used);
            if pending.is_empty() && pending.capacity() > 4096 {
                pending = Vec::new();
            }
        }
        c.pending = pending;
        r
    };
    shard.pool.put(buf);
    res.map(|_| ())
}
