//! The configuration stage: what the user typed (`cli`) checked flag against
//! flag and against the host, turned into what the rest of wsherd runs: a `Plan`
//! for a load run, a `ceiling::Setup` for a search, a `ServeConfig` for the
//! built-in server.
//!
//! Every cross-flag check lives here and nowhere else, so a run that starts is a
//! run that makes sense. This is the only place below the command layer that
//! reads clap's types; it never imports the command layer (`commands`, `main`).

pub mod ceiling;
pub mod handshake;
pub mod k8s;
pub mod protocol;
pub mod run;
pub mod serve;
pub mod tls;

pub use ceiling::setup_from;
pub use run::{parse_agent, plan_run, RunShape, MAX_RATE_PER_CONN};
