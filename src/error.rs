//! Errors that stop a command before or while it runs, each with a cause and a fix.
//!
//! Problems *during* a run (a refused connection, a reset, a bad frame) are not
//! errors here: they are counted in the results, because a load test must report
//! them, not die of them. This enum is for what prevents a run from happening at all.
//! Every message is one line a user can act on; none is a panic or a backtrace.
//!
//! A leaf: imports nothing of wsherd's.

use thiserror::Error;

/// Exit code: the run could not be carried out.
pub const EXIT_FAILURE: u8 = 1;
/// Exit code: the command line was wrong.
pub const EXIT_USAGE: u8 = 2;
/// Exit code: a threshold failed (as k6).
pub const EXIT_THRESHOLD: u8 = 99;
/// Exit code: interrupted by Ctrl-C (after the partial report was written).
pub const EXIT_INTERRUPTED: u8 = 130;

#[derive(Debug, Error)]
pub enum Error {
    /// A flag value or a combination of flags that cannot work.
    #[error("{0}")]
    Usage(String),
    /// The target URL is not a usable WebSocket URL.
    #[error("invalid URL '{url}': {why}")]
    BadUrl { url: String, why: String },
    /// The target's host name does not resolve.
    #[error("cannot resolve host '{host}': {why} (check the URL, or use an IP address)")]
    Unresolvable { host: String, why: String },
    /// The plan needs more of a host resource than this host gives.
    #[error("{0}")]
    HostLimit(String),
    /// The built-in server could not bind its address.
    #[error("cannot listen on {addr}: {why}")]
    Bind { addr: String, why: String },
    /// A runtime could not be built or a thread could not be started.
    #[error("cannot start the engine: {0}")]
    Runtime(String),
    /// A distributed run could not be launched or followed (`wsherd k8s run`:
    /// kubectl missing or refusing).
    #[error("{0}")]
    Launch(String),
    /// Writing an output file failed.
    #[error("cannot write {path}: {why}")]
    Output { path: String, why: String },
}

impl Error {
    /// The process exit code for this error (see DESIGN.md: 1 could not run, 2 usage).
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Usage(_) | Error::BadUrl { .. } => EXIT_USAGE,
            _ => EXIT_FAILURE,
        }
    }

    pub(crate) fn usage(msg: impl Into<String>) -> Self {
        Error::Usage(msg.into())
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
