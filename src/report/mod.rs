//! Reports rendered from `RunResults`: the text summary people read, the JSON
//! machines consume, and the HTML, CSV and HdrHistogram files (`outputs`). Reports never reach into shards; any report can be produced
//! again from a saved run.
//!
//! A ceiling search's reports are rendered here too, from `CeilingResults` alone
//! (`ceiling_text`, `ceiling_html`); every chart on every page is drawn by `chart`.

pub mod ceiling_html;
pub mod ceiling_text;
pub mod chart;
pub mod csv;
pub mod files;
pub mod hdr;
pub mod html;
pub mod markup;
pub mod outputs;
pub mod summary;
pub mod text;

pub use files::{check_writable, is_stdout, read_json, read_value, results_from, write_json};
