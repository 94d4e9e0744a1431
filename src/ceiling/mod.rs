//! `wsherd ceiling`: the highest load a target holds within an SLO.
//!
//! One run whose level (connections, messages/s or sessions/s) is changed in place
//! by a controller that judges each step on its own seconds.

pub mod html;
pub mod results;
