//! Reading and writing the files of results: the check that an output can be
//! written before a run starts, results JSON read back (with its schema version
//! checked) and written out.
//!
//! The bottom of `report/`: every renderer that writes a file goes through here;
//! it imports none of them.
//!
//! Never imports a renderer.

use crate::error::{Error, Result};
use crate::results::RunResults;
use std::path::Path;

/// Fails early when `path` cannot be written (creates it, leaves it empty).
pub fn check_writable(path: &Path) -> Result<()> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map(|_| ())
        .map_err(|e| Error::Output {
            path: path.display().to_string(),
            why: e.to_string(),
        })
}

/// Reads a JSON file (results of a run, a merge or a ceiling search).
pub fn read_value(path: &Path) -> Result<serde_json::Value> {
    let shown = path.display();
    let bytes = std::fs::read(path).map_err(|e| Error::Usage(format!("{shown}: {e}")))?;
    serde_json::from_slice(&bytes).map_err(|e| Error::Usage(format!("{shown}: not JSON ({e})")))
}

/// Reads results written by `--json` (or `wsherd merge`), checking the schema version.
pub fn read_json(path: &Path) -> Result<RunResults> {
    results_from(path, read_value(path)?)
}

/// Run results from the JSON read from `path`, checking the schema version.
pub fn results_from(path: &Path, v: serde_json::Value) -> Result<RunResults> {
    let shown = path.display().to_string();
    match v.get("schema_version").and_then(|s| s.as_u64()) {
        Some(n) if n == crate::results::SCHEMA_VERSION as u64 => {}
        Some(n) => {
            return Err(Error::Usage(format!(
                "{shown}: results schema version {n}, this wsherd reads version {}",
                crate::results::SCHEMA_VERSION
            )))
        }
        None => {
            return Err(Error::Usage(format!(
                "{shown}: not a wsherd results file (no schema_version)"
            )))
        }
    }
    serde_json::from_value(v).map_err(|e| Error::Usage(format!("{shown}: {e}")))
}

/// Writes results (a run's, or a ceiling search's) as pretty JSON.
pub fn write_json<T: serde::Serialize>(path: &Path, r: &T) -> Result<()> {
    let out = serde_json::to_vec_pretty(r).map_err(|e| Error::Output {
        path: path.display().to_string(),
        why: e.to_string(),
    })?;
    write_file(path, out)
}

/// Writes `text` to `path`; the error names the file.
pub fn write_file(path: &Path, text: impl AsRef<[u8]>) -> Result<()> {
    std::fs::write(path, text).map_err(|e| Error::Output {
        path: path.display().to_string(),
        why: e.to_string(),
    })
}
