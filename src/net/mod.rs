//! Socket helpers that the load side (`shard/`) and the built-in server
//! (`server/`) share: the shard-local buffer pools, the shard-local stop signal,
//! readiness-then-`recv`, and the stable names of I/O errors.
//!
//! It exists so that neither side borrows the other's internals: both import these
//! from here. It is the wire layer, below both: it must never import `shard/`,
//! `server/` or anything else of the load layer and above (only `crate::error`,
//! `crate::vocab` and `crate::sys`, if anything of wsherd's at all).

pub mod pool;
pub mod sock;
pub mod stop;
pub mod stream;
pub mod tls;
