//! The words every layer shares: units and their parsers, number formatting, the
//! latency histogram and its codec, the enums that name a run's choices, and the
//! JSON Pointer lookup that reads one field of a reply without parsing it whole.
//!
//! Everything here is a leaf: it imports nothing of wsherd's, so any module, from
//! the command line down to a shard, may use it without pulling a layer along.
//! clap's derives stay in `cli`, which converts into these enums.

pub mod fmt;
pub mod hist;
pub mod jsonptr;
pub mod kinds;
pub mod units;
