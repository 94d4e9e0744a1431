//! The enums that name a run's choices, shared by every layer: what each
//! connection does, which I/O driver the runtimes use, what a ceiling search
//! raises, what the built-in server does with a message.
//!
//! They are plain enums: the command line's spelling and help live in `cli`
//! (clap's derives), which converts into these. A leaf: it imports nothing of
//! wsherd's.

/// What each connection does once it is established.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkloadKind {
    /// Data frames timed by their echo: closed or open loop.
    Echo,
    /// PING control frames timed by their PONG.
    Ping,
    /// Hold the connection open (optionally with a timed heartbeat).
    Idle,
    /// Short sessions: connect, upgrade, exchange, close, and again.
    Churn,
    /// Request/response sessions with a think time between answers.
    Chat,
    /// Fan-out: publishers publish, every connection receives every message.
    Broadcast,
    /// Subscribe, then receive what the server pushes (counted, checked for
    /// gaps, timed one-way).
    Push,
    /// Follow a conversation's steps (send, expect, capture, think, ...).
    Conversation,
}

impl WorkloadKind {
    /// As written on the command line (`-w echo`) and in the results.
    pub fn name(self) -> &'static str {
        match self {
            WorkloadKind::Echo => "echo",
            WorkloadKind::Ping => "ping",
            WorkloadKind::Idle => "idle",
            WorkloadKind::Churn => "churn",
            WorkloadKind::Chat => "chat",
            WorkloadKind::Broadcast => "broadcast",
            WorkloadKind::Push => "push",
            WorkloadKind::Conversation => "conversation",
        }
    }
}

/// The unit of a time a message carries (`--sent-at-unit`): seconds,
/// milliseconds, microseconds or nanoseconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeUnit {
    S,
    Ms,
    Us,
    Ns,
}

impl TimeUnit {
    pub fn name(self) -> &'static str {
        match self {
            TimeUnit::S => "s",
            TimeUnit::Ms => "ms",
            TimeUnit::Us => "us",
            TimeUnit::Ns => "ns",
        }
    }

    pub fn nanos(self) -> f64 {
        match self {
            TimeUnit::S => 1e9,
            TimeUnit::Ms => 1e6,
            TimeUnit::Us => 1e3,
            TimeUnit::Ns => 1.0,
        }
    }

    /// The unit a field's name says it holds: the end of its last token, as
    /// `sent_us`, `sentMs`, `ts_ns`, `time_s` (None when the name says nothing).
    pub fn from_field_name(name: &str) -> Option<TimeUnit> {
        let lower = name.to_ascii_lowercase();
        let snake = [
            ("_ns", TimeUnit::Ns),
            ("_us", TimeUnit::Us),
            ("_ms", TimeUnit::Ms),
            ("_s", TimeUnit::S),
        ];
        if let Some(&(_, u)) = snake.iter().find(|(end, _)| lower.ends_with(end)) {
            return Some(u);
        }
        // camelCase: sentMs, sentUs, sentNs (a capital starts the unit).
        let camel = [
            ("Ns", TimeUnit::Ns),
            ("Us", TimeUnit::Us),
            ("Ms", TimeUnit::Ms),
        ];
        camel
            .iter()
            .find(|(end, _)| name.ends_with(end))
            .map(|&(_, u)| u)
    }
}

/// Which monoio driver a runtime uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoDriver {
    /// io_uring where the kernel allows it, epoll otherwise.
    Auto,
    /// io_uring only (fails where it is not allowed).
    Uring,
    /// epoll only.
    Epoll,
}

/// How a load shard times its sends (`--timer`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timer {
    /// Precise up to `PRECISE_UP_TO` messages per second per shard, the wheel
    /// above (where a wake per deadline would cost the most CPU).
    Auto,
    /// To the nanosecond (a timerfd read through io_uring; epoll keeps the wheel).
    Precise,
    /// monoio's wheel of 1 ms ticks: sends up to about 2 ms late, batched per tick.
    Wheel,
}

/// `--timer auto` is precise up to this many scheduled messages per second per
/// shard: issue 16's bound for send lag p50 <= 50 µs. Precision costs a wake per
/// deadline where the wheel wakes once a millisecond: at 10,000/s about 2x the
/// load's CPU per message (benches/README.md), for sends spread as scheduled
/// rather than bunched into 1 ms ticks, and send lag p50 ~15 µs instead of ~650.
pub const PRECISE_UP_TO: f64 = 10_000.0;

/// What a ceiling search raises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dimension {
    /// Concurrent connections.
    Connections,
    /// Messages per second across the connections.
    Rate,
    /// New sessions per second.
    Sessions,
}

impl Dimension {
    /// As written on the command line and in the results: `connections`, `rate`,
    /// `sessions`.
    pub fn name(self) -> &'static str {
        match self {
            Dimension::Connections => "connections",
            Dimension::Rate => "rate",
            Dimension::Sessions => "sessions",
        }
    }

    /// The unit of the dimension's levels: `connections`, `messages/s`,
    /// `sessions/s`.
    pub fn unit(self) -> &'static str {
        match self {
            Dimension::Connections => "connections",
            Dimension::Rate => "messages/s",
            Dimension::Sessions => "sessions/s",
        }
    }
}

/// What the built-in server does with a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServeMode {
    /// Send every message back to its sender.
    Echo,
    /// Send every message to every connected client (all shards).
    Broadcast,
}
