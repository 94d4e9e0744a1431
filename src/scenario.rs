//! Scenario files: several named workloads in one TOML file, run one after another
//! or side by side (like k6 `scenarios`), each reported on its own and in total.
//!
//! A scenario's keys are `wsherd run`'s long flags, `_` for `-` allowed (`connections = 80`,
//! `workload = "chat"`, `stages = "30s:200"`, `text = true`), so every scenario goes
//! through exactly the validation of the command line and a key means the same in
//! both places. Top-level keys other than `mode` are defaults for every scenario.
//!
//! Why it exists: a mixed load (chatters beside a broadcast, a ramp after a soak)
//! is one command and one report instead of several runs merged by hand. It sits
//! in the config stage and never imports the command layer (`commands`, `main`),
//! which calls `load` and `run`: the keys come from `cli`'s definitions, each
//! scenario is planned exactly as `wsherd run` plans its flags
//! (`Run::from_args`), and the engine runs it.
//!
//! ```toml
//! mode = "sequential"            # or "parallel"
//! url = "ws://127.0.0.1:9000/"   # default target (none: the built-in server)
//!
//! [[scenario]]
//! name = "direct"
//! workload = "chat"
//! connections = 80
//! messages = 3
//! duration = "45s"
//! ```

use crate::engine::{Outputs, Run};
use crate::error::{Error, Result};
use crate::merge::{merge, Timing};
use crate::report::outputs::ReportFiles;
use crate::results::RunResults;
use clap::CommandFactory;
use std::path::{Path, PathBuf};

/// One named, validated scenario.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: String,
    pub config: crate::engine::Run,
}

/// A parsed scenario file.
#[derive(Debug, Clone)]
pub struct ScenarioFile {
    pub timing: Timing,
    pub scenarios: Vec<Scenario>,
}

pub use crate::results::{NamedResults, ScenarioResults};

/// The long flags `wsherd run` accepts, which are the keys a scenario may use.
fn run_flags() -> Vec<String> {
    #[derive(clap::Parser)]
    struct Wrap {
        #[command(flatten)]
        args: crate::cli::RunArgs,
    }
    Wrap::command()
        .get_arguments()
        .filter_map(|a| a.get_long().map(str::to_string))
        .collect()
}

/// The 1-based line where `key = ...` appears at or after `from_line` (for errors).
fn line_of(text: &str, key: &str, from_line: usize) -> usize {
    text.lines()
        .enumerate()
        .skip(from_line.saturating_sub(1))
        .find(|(_, l)| {
            let l = l.trim_start();
            l.strip_prefix(key)
                .is_some_and(|rest| rest.trim_start().starts_with('='))
        })
        .map_or(from_line, |(i, _)| i + 1)
}

/// The line of the n-th (0-based) `[[scenario]]` header.
fn scenario_line(text: &str, n: usize) -> usize {
    text.lines()
        .enumerate()
        .filter(|(_, l)| l.trim_start().starts_with("[[scenario]]"))
        .nth(n)
        .map_or(1, |(i, _)| i + 1)
}

fn to_arg(v: &toml::Value) -> Option<String> {
    match v {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Integer(i) => Some(i.to_string()),
        toml::Value::Float(f) => Some(f.to_string()),
        _ => None,
    }
}

/// `run --scenario FILE` takes beside it only what applies to the whole file:
/// -q, --json, the report files (one per scenario, named after it) and URLs
/// (which replace every scenario's `url`, so one file serves staging and
/// production). Everything else belongs in the file. `given` is what the
/// command line set (`RunArgs::given`).
pub fn check_alone(given: &[String]) -> Result<()> {
    const ALLOWED: [&str; 7] = [
        "--scenario",
        "--quiet",
        "--json",
        "--html",
        "--csv",
        "--hgrm",
        "URL",
    ];
    match given.iter().find(|g| !ALLOWED.contains(&g.as_str())) {
        Some(flag) => Err(Error::usage(format!(
            "'{flag}' does not go with --scenario: set it in the scenario file (only URLs, -q, --json, --html, --csv and --hgrm apply to the whole file)"
        ))),
        None => Ok(()),
    }
}

/// Reads and validates a scenario file; `urls`, when given, replace every
/// scenario's `url`.
pub fn load(path: &Path, urls: &[String]) -> Result<ScenarioFile> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| Error::usage(format!("{file}: {e}")))?;
    parse_with(&text, &file, urls)
}

/// Parses scenario text; `file` names it in errors.
pub fn parse(text: &str, file: &str) -> Result<ScenarioFile> {
    parse_with(text, file, &[])
}

/// Who writes a file: a scenario, or the total of them all.
fn owner(name: Option<&str>) -> String {
    match name {
        Some(n) => format!("scenario '{n}'"),
        None => "the total".to_string(),
    }
}

/// Refuses two writers of one file before anything runs: two scenarios whose
/// own `html`/`csv`/`hgrm`/`hlog` name the same path, or whose files from the
/// command line's `--html`/`--csv`/`--hgrm` (named after each scenario and the
/// total, `ReportFiles::named`) would fall on one name ("closed loop" and
/// "closed-loop"; a scenario named "total"), or any of them on `--json`.
/// `runs` are the scenarios' names with the files set in the scenario file
/// (`None` when read back from results); `file` names the source in errors.
pub fn check_outputs<'a>(
    file: &str,
    runs: impl IntoIterator<Item = (&'a str, Option<&'a Outputs>)>,
    cmdline: &ReportFiles,
    json: Option<&Path>,
) -> Result<()> {
    for (flag, path) in [
        ("--html", cmdline.html.as_deref()),
        ("--csv", cmdline.csv.as_deref()),
        ("--hgrm", cmdline.hgrm.as_deref()),
    ] {
        if path.is_some_and(crate::report::is_stdout) {
            return Err(Error::usage(format!(
                "{flag} -: scenarios write a set of files each, not one to stdout: give a name ({flag} report.html writes report.NAME.html per scenario)"
            )));
        }
    }
    // (writer, flag, path, set in the scenario file)
    let mut planned: Vec<(Option<&str>, &str, PathBuf, bool)> = Vec::new();
    let mut names: Vec<Option<&str>> = Vec::new();
    for (name, outputs) in runs {
        names.push(Some(name));
        if let Some(o) = outputs {
            for (flag, path) in [
                ("--html", o.reports.html.as_ref()),
                ("--csv", o.reports.csv.as_ref()),
                ("--hgrm", o.reports.hgrm.as_ref()),
                ("--hlog", o.hlog.as_ref()),
            ] {
                if let Some(p) = path {
                    planned.push((Some(name), flag, p.clone(), true));
                }
            }
        }
    }
    names.push(None);
    for name in &names {
        let f = cmdline.named(name.unwrap_or("total"));
        for (flag, path) in [("--html", f.html), ("--csv", f.csv), ("--hgrm", f.hgrm)] {
            if let Some(p) = path {
                planned.push((*name, flag, p, false));
            }
        }
    }
    for (i, (who, flag, path, in_file)) in planned.iter().enumerate() {
        let Some((other, other_flag, _, other_in_file)) =
            planned[..i].iter().find(|(_, _, p, _)| p == path)
        else {
            if json.is_some_and(|j| j == path) {
                return Err(Error::usage(format!(
                    "{file}: {} would write {flag} {} over --json {}: give --json another file",
                    owner(*who),
                    path.display(),
                    path.display()
                )));
            }
            continue;
        };
        let fix = if *in_file && *other_in_file {
            format!("give each its own, or leave it to the command line ({flag} FILE writes one per scenario, named after it)")
        } else if who.is_none() || other.is_none() {
            "rename the scenario: the total's files are named after 'total'".to_string()
        } else if flag == other_flag && !in_file && !other_in_file {
            "rename one: in a file name, characters other than letters, digits, '-', '_' and '.' become '-'".to_string()
        } else {
            "change the path the scenario file gives, or rename the scenario".to_string()
        };
        let both = match (other, who) {
            (Some(a), Some(b)) => format!("scenarios '{a}' and '{b}'"),
            _ => format!("{} and {}", owner(*other), owner(*who)),
        };
        let flags = if flag == other_flag {
            flag.to_string()
        } else {
            format!("{other_flag} and {flag}")
        };
        return Err(Error::usage(format!(
            "{file}: {both} would both write {flags} {}: {fix}",
            path.display()
        )));
    }
    Ok(())
}

/// Parses scenario text; `file` names it in errors; `urls` (from the command
/// line) replace every scenario's `url` when given. The file's top level
/// first (`mode`, the defaults, the list), then each scenario in order: its
/// name, its keys as `wsherd run` flags, then the run those flags plan.
pub fn parse_with(text: &str, file: &str, urls: &[String]) -> Result<ScenarioFile> {
    let src = Source { text, file };
    let doc = src.table()?;
    let flags = run_flags();
    let top = TopLevel::of(&src, &doc)?;
    let mut scenarios: Vec<Scenario> = Vec::new();
    for (n, item) in top.list.iter().enumerate() {
        let start = scenario_line(text, n);
        let (name, table) = named_table(&src, n, start, item)?;
        if scenarios.iter().any(|s| s.name == name) {
            return Err(src.err(start, format!("two scenarios are named '{name}'")));
        }
        let mut argv = scenario_argv(
            &src,
            &name,
            table,
            &top.defaults,
            start,
            &flags,
            urls.is_empty(),
        )?;
        argv.extend(urls.iter().cloned());
        let config =
            Run::from_args(&argv).map_err(|e| src.err(start, format!("scenario '{name}': {e}")))?;
        scenarios.push(Scenario { name, config });
    }
    check_outputs(
        file,
        scenarios
            .iter()
            .map(|s| (s.name.as_str(), Some(&s.config.outputs))),
        &ReportFiles::default(),
        None,
    )?;
    Ok(ScenarioFile {
        timing: top.timing,
        scenarios,
    })
}

/// A scenario file's text and the name its errors give it.
struct Source<'a> {
    text: &'a str,
    file: &'a str,
}

impl Source<'_> {
    /// A usage error at `line` of the file: `FILE:LINE: msg`.
    fn err(&self, line: usize, msg: String) -> Error {
        Error::usage(format!("{}:{line}: {msg}", self.file))
    }

    /// The text as a TOML table; a syntax error names the line it is on.
    fn table(&self) -> Result<toml::Table> {
        let text = self.text;
        toml::from_str(text).map_err(|e| {
            let msg = e.message().to_string();
            let line = e.span().map_or(1, |s| {
                text[..s.start.min(text.len())].lines().count().max(1)
            });
            self.err(line, msg)
        })
    }
}

/// A scenario file's top level: how its scenarios run, the keys every scenario
/// takes by default, and the `[[scenario]]` tables.
struct TopLevel {
    timing: Timing,
    defaults: toml::Table,
    list: Vec<toml::Value>,
}

impl TopLevel {
    /// Reads `mode` and the defaults (every other key) from `doc`, and checks
    /// that it has at least one `[[scenario]]`.
    fn of(src: &Source<'_>, doc: &toml::Table) -> Result<TopLevel> {
        let mut timing = Timing::Sequential;
        let mut defaults = toml::Table::new();
        let mut list = None;
        for (k, v) in doc {
            match k.as_str() {
                "mode" => {
                    timing = match v.as_str() {
                        Some("sequential") => Timing::Sequential,
                        Some("parallel") => Timing::Parallel,
                        _ => {
                            return Err(src.err(
                                line_of(src.text, "mode", 1),
                                "mode must be \"sequential\" or \"parallel\"".into(),
                            ))
                        }
                    }
                }
                "scenario" => list = v.as_array().cloned(),
                _ => {
                    defaults.insert(k.clone(), v.clone());
                }
            }
        }
        let list = list.filter(|l| !l.is_empty()).ok_or_else(|| {
            src.err(
                1,
                "no [[scenario]] tables; each scenario is a [[scenario]] with a name".into(),
            )
        })?;
        Ok(TopLevel {
            timing,
            defaults,
            list,
        })
    }
}

/// The n-th (0-based) scenario, starting at line `start`: a table with a name.
fn named_table<'a>(
    src: &Source<'_>,
    n: usize,
    start: usize,
    item: &'a toml::Value,
) -> Result<(String, &'a toml::Table)> {
    let table = item
        .as_table()
        .ok_or_else(|| src.err(start, "each [[scenario]] must be a table".into()))?;
    let name = table
        .get("name")
        .and_then(|v| v.as_str())
        .ok_or_else(|| src.err(start, format!("scenario {} has no name = \"...\"", n + 1)))?
        .to_string();
    Ok((name, table))
}

/// The `wsherd run` command line of scenario `name` (its `table`, starting at
/// line `start`, over the file's `defaults`): URLs as they are, each other key
/// as the long flag of its name (one of `flags`) with its value, `true` as the
/// flag alone and `false` as nothing.
fn scenario_argv(
    src: &Source<'_>,
    name: &str,
    table: &toml::Table,
    defaults: &toml::Table,
    start: usize,
    flags: &[String],
    file_urls: bool,
) -> Result<Vec<String>> {
    let mut merged = defaults.clone();
    for (k, v) in table {
        merged.insert(k.clone(), v.clone());
    }
    let mut argv: Vec<String> = Vec::new();
    for (k, v) in &merged {
        let line = if table.contains_key(k) {
            line_of(src.text, k, start)
        } else {
            line_of(src.text, k, 1)
        };
        // `sent_at` is `--sent-at`: TOML keys are often written with underscores.
        let flag = k.replace('_', "-");
        let k = &flag;
        match k.as_str() {
            "name" => {}
            // URLs on the command line replace the file's.
            "url" | "urls" if !file_urls => {}
            "url" | "urls" => {
                let urls: Vec<String> = match v {
                    toml::Value::Array(a) => a.iter().filter_map(to_arg).collect(),
                    other => to_arg(other).into_iter().collect(),
                };
                argv.extend(urls);
            }
            // [[scenario.step]] tables: the conversation, as the TOML text of
            // a steps file (parsed where --steps FILE is).
            "step" => {
                let mut doc = toml::Table::new();
                doc.insert("step".into(), v.clone());
                let text = toml::to_string(&doc).map_err(|e| {
                    src.err(line, format!("scenario '{name}': steps: {e}"))
                })?;
                argv.push("--steps-toml".into());
                argv.push(text);
            }
            "json" | "scenario" => {
                return Err(src.err(
                    line,
                    format!("scenario '{name}': '{k}' applies to the whole file; give it on the command line"),
                ))
            }
            _ if !flags.iter().any(|f| *f == k.replace('_', "-")) => {
                return Err(src.err(line, format!("scenario '{name}': unknown key '{k}' (keys are wsherd run's long flags, e.g. connections, duration, workload, rate, stages)")))
            }
            _ => match v {
                toml::Value::Boolean(true) => argv.push(format!("--{k}")),
                toml::Value::Boolean(false) => {}
                // A repeatable flag (header, threshold, bands): once per element.
                toml::Value::Array(items) => {
                    for item in items {
                        let Some(s) = to_arg(item) else {
                            return Err(src.err(
                                line,
                                format!("scenario '{name}': '{k}' takes strings or numbers"),
                            ));
                        };
                        argv.push(format!("--{k}"));
                        argv.push(s);
                    }
                }
                other => match to_arg(other) {
                    Some(s) => {
                        argv.push(format!("--{k}"));
                        argv.push(s);
                    }
                    None => {
                        return Err(src.err(
                            line,
                            format!("scenario '{name}': '{k}' needs a string, number or boolean"),
                        ))
                    }
                },
            },
        }
    }
    Ok(argv)
}

/// Runs every scenario (one after another, or side by side) and totals them.
pub fn run(file: ScenarioFile, quiet: bool) -> Result<ScenarioResults> {
    let mut named = Vec::new();
    match file.timing {
        Timing::Sequential => {
            for s in file.scenarios {
                if !quiet {
                    eprintln!("== scenario {}", s.name);
                }
                let mut cfg = s.config;
                cfg.plan.quiet |= quiet;
                let mut results = crate::engine::run(cfg)?;
                results.scenario = Some(s.name.clone());
                let stop = results.interrupted;
                named.push(NamedResults {
                    name: s.name,
                    results,
                });
                if stop {
                    break;
                }
            }
        }
        Timing::Parallel => {
            let handles: Vec<_> = file
                .scenarios
                .into_iter()
                .map(|s| {
                    let mut cfg = s.config;
                    // Several progress lines at once would garble each other.
                    cfg.plan.quiet = true;
                    let name = s.name;
                    std::thread::spawn(move || (name, crate::engine::run(cfg)))
                })
                .collect();
            for h in handles {
                let (name, res) = h
                    .join()
                    .map_err(|_| Error::Runtime("a scenario thread panicked".into()))?;
                let mut results = res?;
                results.scenario = Some(name.clone());
                named.push(NamedResults { name, results });
            }
        }
    }
    let parts: Vec<RunResults> = named.iter().map(|n| n.results.clone()).collect();
    let mut total = merge(&parts, file.timing);
    total.scenario = Some("total".into());
    Ok(ScenarioResults {
        schema_version: crate::results::SCHEMA_VERSION,
        mode: match file.timing {
            Timing::Sequential => "sequential",
            Timing::Parallel => "parallel",
        }
        .into(),
        scenarios: named,
        total,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrays_repeat_a_flag() {
        let f = parse(
            r#"
[[scenario]]
name = "tokens"
url = "ws://127.0.0.1:9/"
header = ["Authorization: Bearer abc", "X-Tenant: blue"]
subprotocol = "chat.v1"
"#,
            "t.toml",
        )
        .unwrap();
        let offer = &f.scenarios[0].config.plan.offer;
        assert_eq!(
            offer.headers,
            "Authorization: Bearer abc\r\nX-Tenant: blue\r\n"
        );
        assert_eq!(offer.subprotocols, vec!["chat.v1"]);
        let e = parse("[[scenario]]\nname = \"x\"\nheader = [true]\n", "t.toml").unwrap_err();
        assert!(e.to_string().contains("takes strings or numbers"), "{e}");
    }

    #[test]
    fn scenarios_take_run_flags_and_defaults() {
        let f = parse(
            r#"
mode = "parallel"
duration = "2s"

[[scenario]]
name = "direct"
workload = "chat"
connections = 80
messages = 3

[[scenario]]
name = "flood"
inflight = 8
text = true
duration = "5s"
"#,
            "t.toml",
        )
        .unwrap();
        assert_eq!(f.timing, Timing::Parallel);
        assert_eq!(f.scenarios.len(), 2);
        let d = &f.scenarios[0];
        assert_eq!(d.name, "direct");
        assert_eq!(d.config.plan.connections, 80);
        assert_eq!(d.config.plan.workload.name, "chat");
        assert_eq!(d.config.plan.duration.as_secs(), 2);
        let fl = &f.scenarios[1];
        assert_eq!(fl.config.plan.duration.as_secs(), 5);
        assert_eq!(fl.config.plan.workload.inflight(), 8);
    }

    #[test]
    fn errors_name_the_file_line_and_key() {
        let e = parse(
            "[[scenario]]\nname = \"a\"\nconnections = 5\nbogus = 1\n",
            "s.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("s.toml:4") && e.contains("unknown key 'bogus'"),
            "{e}"
        );
        let e = parse("[[scenario]]\nconnections = 5\n", "s.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("s.toml:1") && e.contains("no name"), "{e}");
        let e = parse(
            "[[scenario]]\nname = \"a\"\nworkload = \"broadcast\"\n",
            "s.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("scenario 'a'") && e.contains("publish rate"),
            "{e}"
        );
        let e = parse(
            "mode = \"sideways\"\n[[scenario]]\nname = \"a\"\n",
            "s.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("s.toml:1") && e.contains("sequential"), "{e}");
        let e = parse("[[scenario]\nname = 1", "s.toml")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("s.toml:1"), "{e}");
        let e = parse("mode = \"parallel\"\n", "s.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("no [[scenario]]"), "{e}");
    }
}
