//! The report files a run or `wsherd report` writes besides the summary (HTML,
//! CSV, `.hgrm`), in one place so that every one of them is checked writable
//! before a run starts, and so that a failure at the end never loses the run: the
//! results then go to a fallback JSON file whose path is printed.

use crate::error::{Error, Result};
use crate::results::RunResults;
use std::path::PathBuf;

/// Report files rendered from the results (on `run` and `report`).
#[derive(Debug, Clone, Default)]
pub struct ReportFiles {
    /// A self-contained HTML report with charts.
    pub html: Option<PathBuf>,
    /// The per-second series as CSV.
    pub csv: Option<PathBuf>,
    /// HdrHistogram percentile distributions: PREFIX.rtt.hgrm, ...
    pub hgrm: Option<PathBuf>,
}

impl ReportFiles {
    /// True when no file is asked for.
    pub fn is_empty(&self) -> bool {
        self.html.is_none() && self.csv.is_none() && self.hgrm.is_none()
    }

    /// Fails now if any file cannot be written (`files::check_writable`).
    pub fn check(&self) -> Result<()> {
        if let Some(p) = &self.html {
            super::files::check_writable("--html", p)?;
        }
        if let Some(p) = &self.csv {
            super::files::check_writable("--csv", p)?;
        }
        if let Some(prefix) = &self.hgrm {
            // The round-trip file is always written; the others sit beside it.
            super::files::check_writable("--hgrm", &super::hdr::hgrm_path(prefix, "rtt"))?;
        }
        Ok(())
    }

    /// The same files for one of several runs (a scenario, the total): `name`
    /// before the extension (`report.html` → `report.login.html`), after a
    /// `--hgrm` prefix (`h` → `h.login.rtt.hgrm`, `out/` → `out/login.rtt.hgrm`).
    /// Characters a file name should not hold become `-`.
    pub fn named(&self, name: &str) -> ReportFiles {
        let name: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                    c
                } else {
                    '-'
                }
            })
            .collect();
        let with_name = |p: &PathBuf| match (p.file_stem(), p.extension()) {
            (Some(stem), Some(ext)) => p.with_file_name(format!(
                "{}.{name}.{}",
                stem.to_string_lossy(),
                ext.to_string_lossy()
            )),
            _ => {
                let mut s = p.as_os_str().to_owned();
                s.push(format!(".{name}"));
                PathBuf::from(s)
            }
        };
        ReportFiles {
            html: self.html.as_ref().map(with_name),
            csv: self.csv.as_ref().map(with_name),
            hgrm: self.hgrm.as_ref().map(|p| {
                if super::hdr::is_dir_prefix(p) {
                    p.join(&name)
                } else {
                    let mut s = p.as_os_str().to_owned();
                    s.push(format!(".{name}"));
                    PathBuf::from(s)
                }
            }),
        }
    }

    /// Writes every file asked for.
    pub fn write(&self, r: &RunResults) -> Result<()> {
        if let Some(p) = &self.html {
            super::files::write_file("--html", p, super::html::render(r))?;
        }
        if let Some(p) = &self.csv {
            super::files::write_file("--csv", p, super::csv::render(r))?;
        }
        if let Some(prefix) = &self.hgrm {
            super::hdr::write_hgrm_files(prefix, r)?;
        }
        Ok(())
    }
}

/// Where the results go when an output could not be written at the end:
/// `./wsherd-results-<unix time>.json`, or the temp directory if the working
/// directory is not writable either.
pub fn save_fallback(r: &RunResults) -> Option<PathBuf> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let name = format!("wsherd-results-{now}.json");
    [PathBuf::from(&name), std::env::temp_dir().join(&name)]
        .into_iter()
        .find(|p| super::files::write_json("--json", p, r).is_ok())
}

/// Turns a failure to write an output at the end of a run into an error that says
/// where the results were saved instead.
pub fn with_fallback(err: Error, r: &RunResults) -> Error {
    let (path, why) = match err {
        Error::Output { path, why } => (path, why),
        other => (String::from("output"), other.to_string()),
    };
    let saved = match save_fallback(r) {
        Some(p) => format!(
            "; the results were saved to {} (wsherd report {} renders them again)",
            p.display(),
            p.display()
        ),
        None => "; the results could not be saved anywhere".to_string(),
    };
    Error::Output {
        path,
        why: format!("{why}{saved}"),
    }
}
