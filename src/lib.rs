//! wsherd: a thread-per-core WebSocket load generator.
//!
//! Data flows one way: CLI args → `config` (validated) → `plan` (per-shard slices)
//! → `shard`s (one pinned monoio runtime per core) → `collector` (merge, series) →
//! `report`s. `run` drives a whole load run in-process, so tests and other programs
//! can use wsherd as a library.
//!
//! Declares the modules; the layering is in README.md's Layout table, held by
//! tests/layering.rs.

pub mod ceiling;
pub mod cli;
pub mod collector;
pub mod commands;
pub mod config;
pub mod doctor;
pub mod engine;
pub mod error;
pub mod export;
pub mod host;
pub mod k8s;
pub mod merge;
pub mod metrics;
pub mod net;
pub mod pacer;
pub mod payload;
pub mod plan;
pub mod proto;
pub mod proxy;
pub mod report;
pub mod results;
pub mod rt;
pub mod scenario;
pub mod script;
pub mod serve;
pub mod server;
pub mod shard;
pub mod source;
pub mod stamp;
pub mod sys;
pub mod target;
pub mod template;
pub mod thresholds;
pub mod values;
pub mod vocab;
pub mod workload;
pub mod ws;

pub use engine::run;
pub use error::{Error, Result};
