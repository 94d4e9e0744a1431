//! A connection's place in its conversation (`crate::script`): where it is, what
//! it has captured, which expect is pending, its heartbeats; how a message that
//! arrives is checked against the pending expect (`on_message`, called for every
//! data message by `exchange`), and how a step's message is written.
//!
//! Kept apart from the conversation's loop (`converse`), which waits and writes,
//! so that `exchange` can hand it messages without importing that loop. Imports
//! the shard's state and the script; never the connection loops.

use super::state::Shard;
use crate::script::{Op, Script, Send, Unmatched};
use crate::values::Escape;
use crate::ws::frame::Kind;

/// One connection's conversation state (boxed in `Conn`: connections of other
/// workloads pay 8 bytes).
pub(super) struct ScriptRun {
    /// The op to run next.
    pub(super) pc: usize,
    /// Open repeats: the op that opened each, and the rounds left.
    pub(super) repeats: Vec<(usize, u32)>,
    /// The values sends fill in: `{seq}`, then each captured variable.
    pub(super) extra: Vec<String>,
    /// Messages this connection's send steps sent (`{seq}` of the next).
    pub(super) sends: u64,
    /// When the last send step's message went out (ns since the run's origin):
    /// what an expect's latency is timed from.
    pub(super) last_send_ns: u64,
    /// Heartbeats started (`every`): when each is due next, and its op.
    pub(super) everies: Vec<(u64, usize)>,
    /// The expect being waited for: its op, and how it ended once it did.
    pub(super) pending: Option<Pending>,
    /// A message no expect matched, with `unmatched = "fail"`.
    pub(super) broken: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Pending {
    pub(super) op: usize,
    pub(super) step: usize,
    pub(super) outcome: Option<Outcome>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Outcome {
    Met,
    /// Another message came first (a strict expect).
    Mismatch,
}

impl ScriptRun {
    pub(super) fn new(script: &Script) -> ScriptRun {
        ScriptRun {
            pc: 0,
            repeats: Vec::new(),
            extra: std::iter::once("0".to_string())
                .chain(script.vars.iter().map(|_| String::new()))
                .collect(),
            sends: 0,
            last_send_ns: 0,
            everies: Vec::new(),
            pending: None,
            broken: false,
        }
    }
}

/// A data message arrived: it meets the pending expect (captures kept, latency
/// recorded), fails a strict one, or is counted as matching nothing.
pub(super) fn on_message(
    shard: &Shard,
    run: &mut ScriptRun,
    payload: &[u8],
    text: bool,
    now_ns: u64,
) {
    let Some(script) = shard.run.plan.script.as_deref() else {
        return;
    };
    let mut st = shard.stats.borrow_mut();
    // Once a message failed the connection (`unmatched = "fail"`), what follows
    // it in the same read meets nothing: it is counted as unmatched too.
    if let Some(p) = run
        .pending
        .as_mut()
        .filter(|p| p.outcome.is_none() && !run.broken)
    {
        let Op::Expect(e) = &script.ops[p.op] else {
            unreachable!("a pending op is an expect")
        };
        if e.matcher.matches(payload, text) {
            for cap in &e.captures {
                if let Some(v) = cap.value(payload) {
                    run.extra[1 + cap.var()] = v;
                }
            }
            st.step(p.step).met(now_ns.saturating_sub(run.last_send_ns));
            p.outcome = Some(Outcome::Met);
            return;
        }
        if e.strict {
            p.outcome = Some(Outcome::Mismatch);
        }
    }
    st.counters.unexpected(text, payload);
    if script.unmatched == Unmatched::Fail {
        run.broken = true;
    }
}

/// Appends step `s`'s message to `out`, filled in with the connection's values
/// and captures, and counts it; a send step (not a heartbeat) restarts the
/// clock of the next expect.
pub(super) fn queue_send(
    shard: &Shard,
    id: u32,
    run: &mut ScriptRun,
    s: &Send,
    heartbeat: bool,
    out: &mut Vec<u8>,
) {
    run.extra[0] = run.sends.to_string();
    let vars = shard.vars(id, &run.extra);
    let escape = if s.binary { Escape::None } else { Escape::Json };
    let text = super::protocol::wrap_text(shard, s.text.rendered(&vars, escape));
    let kind = if s.binary { Kind::Binary } else { Kind::Text };
    super::protocol::queue_frame(shard, out, kind, text.as_bytes());
    shard.stats.borrow_mut().step(s.step).count += 1;
    if !heartbeat {
        run.sends += 1;
        run.last_send_ns = shard.now_ns();
    }
}
