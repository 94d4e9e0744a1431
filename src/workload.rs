//! What one connection does once it is established: the pluggable behaviour the
//! connection loop in `shard::conn` asks what to send and when.
//!
//! The connection loop (connect, upgrade, read frames, answer pings, drain, close) is
//! written once. A workload is two choices: what a message is (`Message`: a data frame
//! the server echoes, a PING its PONG answers, or nothing) and when messages go out
//! (`Pacing`: closed loop, open loop on a schedule, or never). A new mode is a new
//! combination or variant here, not a copy of the loop.

use std::time::Duration;

/// What a measured message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Message {
    /// A text or binary data frame, timed by its echo.
    Data,
    /// A PING control frame carrying the timing header, timed by its PONG.
    Ping,
}

/// When messages are sent.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pacing {
    /// Keep `inflight` messages outstanding; each reply releases the next.
    Closed { inflight: u32 },
    /// Send on a fixed schedule, `period` apart per connection, whatever the server
    /// does; late sends go out at once and are counted. Latency is timed from the
    /// intended send time. With `max_inflight`, a connection that has that many
    /// messages unanswered waits (as wrk2's connections do) and then sends what it
    /// owes at once; without it the schedule never waits for the server.
    Open {
        period: Duration,
        max_inflight: Option<u32>,
    },
    /// Send nothing (hold the connection).
    Hold,
}

/// Short sessions: connect, upgrade, exchange `messages`, close, and again.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Session {
    /// Messages per session, each sent when the previous one was answered.
    pub messages: u64,
    /// Pause between an answer and the next message (a user reading and typing).
    pub think: Option<Duration>,
    /// New sessions per second across the run; None: each connection slot starts
    /// its next session as soon as the previous one closed.
    pub rate: Option<f64>,
}

/// Broadcast fan-out: a few connections publish, every connection receives.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Broadcast {
    /// Publishing connections: ids 0, stride, 2*stride, ... (spread over shards).
    pub publishers: u64,
    pub stride: u64,
}

impl Broadcast {
    /// The publisher index of connection `id`, if it publishes.
    #[inline]
    pub fn publisher(&self, id: u64) -> Option<u64> {
        (id.is_multiple_of(self.stride) && id / self.stride < self.publishers)
            .then(|| id / self.stride)
    }
}

/// Server push: what a connection sends to subscribe, and what it reads from
/// each message the server pushes. Not `Copy` (it holds text), so apart from
/// `Workload`, in the plan.
#[derive(Debug, Clone, PartialEq)]
pub struct Push {
    /// The text message sent once the connection is open (per-connection values
    /// filled in, JSON-escaped).
    pub subscribe: Option<crate::values::Pattern>,
    /// Where each message carries its sequence number (gaps, duplicates).
    pub seq: Option<crate::vocab::jsonptr::Pointer>,
    /// Where each message carries the server's send time, and its unit.
    pub sent_at: Option<(
        crate::vocab::jsonptr::Pointer,
        crate::vocab::kinds::TimeUnit,
    )>,
}

/// A connection's behaviour.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Workload {
    /// The name the report uses (`echo`, `ping`, `idle`, `churn`, `chat`).
    pub name: &'static str,
    pub message: Message,
    pub pacing: Pacing,
    /// Set for session workloads (churn, chat).
    pub session: Option<Session>,
    /// Set for broadcast fan-out.
    pub broadcast: Option<Broadcast>,
}

impl Workload {
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The PING every so often of `--heartbeat` (idle and push), if any; the `ping`
    /// workload's pings are its messages, not a heartbeat.
    pub fn heartbeat(&self) -> Option<Duration> {
        match (self.message, self.pacing) {
            (Message::Ping, Pacing::Open { period, .. }) if self.name != "ping" => Some(period),
            _ => None,
        }
    }

    /// Messages to send as soon as the connection is established (closed loop).
    pub fn initial_sends(&self) -> u32 {
        match self.pacing {
            Pacing::Closed { inflight } => inflight,
            _ => 0,
        }
    }

    /// Messages to send when one reply has come back.
    #[inline]
    pub fn sends_per_reply(&self) -> u32 {
        match self.pacing {
            Pacing::Closed { .. } => 1,
            _ => 0,
        }
    }

    /// Messages per connection kept in flight in the closed loop, or the open loop's
    /// cap (0: none), for the report.
    pub fn inflight(&self) -> u32 {
        match self.pacing {
            Pacing::Closed { inflight } => inflight,
            Pacing::Open { max_inflight, .. } => max_inflight.unwrap_or(0),
            Pacing::Hold => 0,
        }
    }

    /// Pause between an answer and the next message, for chat-like sessions.
    #[inline]
    pub fn think(&self) -> Option<Duration> {
        self.session.and_then(|s| s.think)
    }

    /// Messages one connection sends before it closes (sessions), or unlimited.
    pub fn budget(&self) -> u64 {
        self.session.map_or(u64::MAX, |s| s.messages)
    }

    /// The open loop's cap on unanswered messages per connection.
    pub fn max_inflight(&self) -> Option<u32> {
        match self.pacing {
            Pacing::Open { max_inflight, .. } => max_inflight,
            _ => None,
        }
    }

    /// True for schedules that time from the intended send (open loop).
    pub fn open_loop(&self) -> bool {
        matches!(self.pacing, Pacing::Open { .. })
    }

    /// The send period of an open-loop connection.
    pub fn period(&self) -> Option<Duration> {
        match self.pacing {
            Pacing::Open { period, .. } => Some(period),
            _ => None,
        }
    }
}
