//! What one connection does once it is established: the pluggable behaviour the
//! connection loop in `shard::conn` asks what to send and when.
//!
//! The connection loop (connect, upgrade, read frames, answer pings, drain, close) is
//! written once; a workload only answers the loop's questions. A new mode is a new
//! variant here, not a copy of the loop.

/// A connection's behaviour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    /// Closed loop: keep `inflight` messages outstanding; each echo releases the next.
    Echo { inflight: u32 },
    /// Hold the connection, answer pings, send nothing.
    Idle,
}

impl Workload {
    pub fn name(&self) -> &'static str {
        match self {
            Workload::Echo { .. } => "echo",
            Workload::Idle => "idle",
        }
    }

    /// Messages to send as soon as the connection is established.
    pub fn initial_sends(&self) -> u32 {
        match self {
            Workload::Echo { inflight } => *inflight,
            Workload::Idle => 0,
        }
    }

    /// Messages to send when one echo has come back.
    #[inline]
    pub fn sends_per_echo(&self) -> u32 {
        match self {
            Workload::Echo { .. } => 1,
            Workload::Idle => 0,
        }
    }

    /// Messages per connection kept in flight (for the report).
    pub fn inflight(&self) -> u32 {
        match self {
            Workload::Echo { inflight } => *inflight,
            Workload::Idle => 0,
        }
    }
}
