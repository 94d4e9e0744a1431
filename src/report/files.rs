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

/// The file `flag` asked for could not be written: the error names both.
pub fn output_error(flag: &str, path: &Path, why: impl std::fmt::Display) -> Error {
    Error::Output {
        path: format!("{flag} {}", path.display()),
        why: why.to_string(),
    }
}

/// `-` as an output path: standard output (`--json -`, for jq and pipes).
pub fn is_stdout(path: &Path) -> bool {
    path.as_os_str() == "-"
}

/// Fails early when `path` (asked for by `flag`) cannot be written: opens it
/// for appending (its content untouched), or creates it and removes it again,
/// so that a run refused by a later check leaves no empty file behind.
/// Standard output (`-`) always can be written.
pub fn check_writable(flag: &str, path: &Path) -> Result<()> {
    if is_stdout(path) {
        return Ok(());
    }
    let existed = std::fs::symlink_metadata(path).is_ok();
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| output_error(flag, path, e))?;
    if !existed {
        let _ = std::fs::remove_file(path);
    }
    Ok(())
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
    let mut r: RunResults =
        serde_json::from_value(v).map_err(|e| Error::Usage(format!("{shown}: {e}")))?;
    // Results from before the share was recorded: derived from what they hold.
    let l = &mut r.latency;
    if l.send_lag_share.is_none() {
        l.send_lag_share = crate::results::Latencies::lag_share(&l.rtt, l.send_lag.as_ref());
    }
    Ok(r)
}

/// Writes results (a run's, or a ceiling search's) as pretty JSON, to standard
/// output for `-`.
pub fn write_json<T: serde::Serialize>(flag: &str, path: &Path, r: &T) -> Result<()> {
    let mut out = serde_json::to_vec_pretty(r).map_err(|e| output_error(flag, path, e))?;
    out.push(b'\n');
    write_file(flag, path, out)
}

/// Writes `text` to `path` (standard output for `-`; a closed pipe is no
/// failure); the error names the flag and the file.
pub fn write_file(flag: &str, path: &Path, text: impl AsRef<[u8]>) -> Result<()> {
    if is_stdout(path) {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        return match out.write_all(text.as_ref()).and_then(|_| out.flush()) {
            Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                Err(output_error(flag, Path::new("(standard output)"), e))
            }
            _ => Ok(()),
        };
    }
    std::fs::write(path, text).map_err(|e| output_error(flag, path, e))
}
