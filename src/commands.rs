//! The subcommands as the binary runs them: parse the command line, call the
//! library, print, and map the outcome to an exit code (0 ok, 1 could not run,
//! 2 usage, 99 a threshold failed, 130 interrupted). Errors print as one line; never a panic or backtrace.

use crate::cli::{Cli, Command};
use crate::error::{Error, EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_THRESHOLD, EXIT_USAGE};
use crate::report::outputs::ReportFiles;
use crate::server::ServeConfig;
use std::io::Write;
use std::process::ExitCode;

/// Entry point of the binary.
pub fn main() -> ExitCode {
    crate::sys::disable_thp();
    let cli = match crate::cli::parse_command_line() {
        Ok(c) => c,
        Err(e) => {
            use clap::error::ErrorKind;
            return match e.kind() {
                ErrorKind::DisplayHelp
                | ErrorKind::DisplayVersion
                | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
                    let _ = e.print();
                    if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                        ExitCode::from(EXIT_USAGE)
                    } else {
                        ExitCode::SUCCESS
                    }
                }
                _ => {
                    eprintln!("{}", clap_error_line(&e));
                    ExitCode::from(EXIT_USAGE)
                }
            };
        }
    };
    match dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// The line a command line clap refused gets: for an argument that is not
/// UTF-8, which one; otherwise clap's message with wsherd's suggestions (the
/// command line read lossily, only to name the subcommand).
fn clap_error_line(e: &clap::Error) -> String {
    match utf8_args(std::env::args_os()) {
        Ok(args) => crate::cli::usage_error_line(e, &args),
        Err(u) if e.kind() == clap::error::ErrorKind::InvalidUtf8 => format!("error: {u}"),
        Err(_) => {
            let args: Vec<String> = std::env::args_os()
                .map(|a| a.to_string_lossy().into_owned())
                .collect();
            crate::cli::usage_error_line(e, &args)
        }
    }
}

/// The command line as UTF-8 strings, or a usage error naming (lossily) the
/// first argument that is not: never the panic of `std::env::args()`.
fn utf8_args(args: impl IntoIterator<Item = std::ffi::OsString>) -> Result<Vec<String>, Error> {
    args.into_iter()
        .map(|a| {
            a.into_string().map_err(|a| {
                Error::usage(format!(
                    "argument '{}' is not valid UTF-8: wsherd's arguments must be UTF-8",
                    a.to_string_lossy()
                ))
            })
        })
        .collect()
}

/// Prints the summary: to stdout, or to stderr when an output goes to stdout
/// (`--json -`, `--html -`, `--csv -`: for jq, pipes and redirections).
fn print_summary(outputs: &[Option<&std::path::Path>], text: &str) -> Result<(), Error> {
    if outputs
        .iter()
        .flatten()
        .any(|p| crate::report::is_stdout(p))
    {
        eprint!("{text}");
        return Ok(());
    }
    print_out(text)
}

/// At most one output may go to stdout (`-`): two would be interleaved.
fn one_to_stdout(outputs: &[(&str, Option<&std::path::Path>)]) -> Result<(), Error> {
    let to_stdout: Vec<&str> = outputs
        .iter()
        .filter(|(_, p)| p.is_some_and(crate::report::is_stdout))
        .map(|(flag, _)| *flag)
        .collect();
    if to_stdout.len() > 1 {
        return Err(Error::usage(format!(
            "{} {} write to stdout ('-'), where they would be mixed: send all but one to a file",
            to_stdout.join(" and "),
            if to_stdout.len() == 2 { "both" } else { "all" }
        )));
    }
    Ok(())
}

/// Prints to stdout; a closed pipe (| head) is not a failure.
fn print_out(text: &str) -> Result<(), Error> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(Error::Output {
            path: "stdout".into(),
            why: e.to_string(),
        }),
        _ => Ok(()),
    }
}

/// `wsherd run --scenario FILE`: only -q and --json may go with it.
fn run_scenarios(args: crate::cli::RunArgs) -> Result<ExitCode, Error> {
    let path = args.scenario.clone().expect("checked by the caller");
    crate::scenario::check_alone(&args.given)?;
    let file = crate::scenario::load(&path, &args.load.urls)?;
    // --html/--csv/--hgrm: one set per scenario and one for the total, each
    // named after it; no two writers of one file, and all checked writable
    // before anything runs.
    let files = ReportFiles::from(args.reports.clone());
    crate::scenario::check_outputs(
        &path.display().to_string(),
        file.scenarios
            .iter()
            .map(|s| (s.name.as_str(), Some(&s.config.outputs))),
        &files,
        args.load.json.as_deref(),
    )?;
    if let Some(p) = &args.load.json {
        crate::report::check_writable("--json", p)?;
    }
    check_per_scenario(&files, file.scenarios.iter().map(|s| s.name.as_str()))?;
    let res = crate::scenario::run(file, args.load.quiet)?;
    if let Some(p) = &args.load.json {
        crate::report::write_json("--json", p, &res)?;
    }
    write_per_scenario(&files, &res)?;
    print_summary(
        &[args.load.json.as_deref()],
        &crate::report::text::render_scenarios(&res),
    )?;
    if res.total.interrupted {
        return Ok(ExitCode::from(EXIT_INTERRUPTED));
    }
    if res.total.connections.established == 0 {
        eprintln!("error: no connection could be established in any scenario");
        return Ok(ExitCode::from(EXIT_FAILURE));
    }
    // Thresholds set in the file judge their own scenario.
    Ok(scenario_threshold_exit(&res))
}

/// --html/--csv/--hgrm with scenarios: one set per scenario and one for the
/// total, each named after it; all checked before anything runs or is written.
fn check_per_scenario<'a>(
    files: &ReportFiles,
    names: impl Iterator<Item = &'a str>,
) -> Result<(), Error> {
    for n in names.chain(["total"]) {
        files.named(n).check()?;
    }
    Ok(())
}

/// Writes every scenario's report files, then the total's.
fn write_per_scenario(
    files: &ReportFiles,
    res: &crate::results::ScenarioResults,
) -> Result<(), Error> {
    for s in &res.scenarios {
        files.named(&s.name).write(&s.results)?;
    }
    files.named("total").write(&res.total)
}

/// 99 naming the first scenario whose thresholds failed, 0 when none did.
fn scenario_threshold_exit(res: &crate::results::ScenarioResults) -> ExitCode {
    match res
        .scenarios
        .iter()
        .find(|s| !crate::thresholds::all_passed(&s.results.thresholds))
    {
        Some(s) => {
            eprintln!("error: scenario '{}' failed a threshold", s.name);
            ExitCode::from(EXIT_THRESHOLD)
        }
        None => ExitCode::SUCCESS,
    }
}

/// 99 when a threshold failed (as k6), 0 otherwise.
fn threshold_exit(r: &crate::results::RunResults) -> ExitCode {
    if crate::thresholds::all_passed(&r.thresholds) {
        ExitCode::SUCCESS
    } else {
        let failed = r.thresholds.iter().filter(|t| !t.passed).count();
        eprintln!(
            "error: {failed} of {} thresholds failed",
            r.thresholds.len()
        );
        ExitCode::from(EXIT_THRESHOLD)
    }
}

/// `wsherd report` on a scenario file's results: every scenario's summary, the
/// total's and the comparison again, report files per scenario (named after
/// it) and for the total; --threshold/--bands judge each scenario anew.
fn report_scenarios(
    args: &crate::cli::ReportArgs,
    judge: crate::thresholds::Judge,
    v: serde_json::Value,
) -> Result<ExitCode, Error> {
    let shown = args.file.display().to_string();
    let mut res: crate::results::ScenarioResults = serde_json::from_value(v)
        .map_err(|e| Error::Usage(format!("{shown}: not the results of a scenario file ({e})")))?;
    if res.schema_version != crate::results::SCHEMA_VERSION {
        return Err(Error::Usage(format!(
            "{shown}: results schema version {}, this wsherd reads version {}",
            res.schema_version,
            crate::results::SCHEMA_VERSION
        )));
    }
    let files = ReportFiles::from(args.reports.clone());
    crate::scenario::check_outputs(
        &shown,
        res.scenarios.iter().map(|s| (s.name.as_str(), None)),
        &files,
        None,
    )?;
    check_per_scenario(&files, res.scenarios.iter().map(|s| s.name.as_str()))?;
    if !judge.is_empty() {
        for s in &mut res.scenarios {
            judge.apply(&mut s.results);
        }
    }
    print_out(&crate::report::text::render_scenarios(&res))?;
    write_per_scenario(&files, &res)?;
    if judge.thresholds.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    Ok(scenario_threshold_exit(&res))
}

/// `wsherd report` on a ceiling search: its table and verdict again, its knee page
/// with --html; --csv and --hgrm come from the run underneath.
fn report_ceiling(
    args: &crate::cli::ReportArgs,
    judge: crate::thresholds::Judge,
    v: serde_json::Value,
) -> Result<ExitCode, Error> {
    if !judge.is_empty() {
        return Err(Error::usage(
            "a ceiling search is judged step by step by its --slo; --threshold and --bands do not apply to it",
        ));
    }
    let c = crate::ceiling::from_value(&args.file, v)?;
    let mut files = ReportFiles::from(args.reports.clone());
    let outputs = [
        ("--html -", files.html.as_deref()),
        ("--csv -", files.csv.as_deref()),
    ];
    one_to_stdout(&outputs)?;
    files.check()?;
    print_summary(
        &outputs.map(|(_, p)| p),
        &crate::report::ceiling_text::render(&c),
    )?;
    if let Some(p) = files.html.take() {
        crate::report::ceiling_html::write(&p, &c)?;
    }
    files.write(&c.run)?;
    Ok(ExitCode::SUCCESS)
}

fn dispatch(cli: Cli) -> Result<ExitCode, Error> {
    match cli.command {
        Command::Run(args) if args.scenario.is_some() => run_scenarios(*args),
        Command::Run(args) => run(*args),
        Command::Ceiling(args) => ceiling(*args),
        Command::Merge(args) => merge(args),
        Command::Doctor(args) => doctor(args),
        Command::K8s(crate::cli::K8sCommand::Run(args)) => {
            k8s_run(*args, &utf8_args(std::env::args_os())?)
        }
        Command::Report(args) => report(args),
        Command::Serve(args) => {
            let cfg = ServeConfig::from_cli(args)?;
            crate::serve::serve_blocking(cfg)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `wsherd run`: plan, run, print, exit code.
fn run(args: crate::cli::RunArgs) -> Result<ExitCode, Error> {
    let json = args.load.json.clone();
    let (html, csv) = (args.reports.html.clone(), args.reports.csv.clone());
    let outputs = [
        ("--json -", json.as_deref()),
        ("--html -", html.as_deref()),
        ("--csv -", csv.as_deref()),
    ];
    one_to_stdout(&outputs)?;
    // A pod of `wsherd k8s run` (--agent job/N) whose results go to stdout: its
    // log is what the launcher reads, and the runtime may interleave stderr
    // with stdout line by line, so nothing follows the JSON there (the launcher
    // prints the merged summary).
    let pod_json = args.agent.as_deref().is_some_and(|a| a.starts_with("job/"))
        && json.as_deref().is_some_and(crate::report::is_stdout);
    let plan = crate::config::plan_run(args)?;
    let results = crate::engine::run(plan)?;
    if !pod_json {
        print_summary(
            &outputs.map(|(_, p)| p),
            &crate::report::text::render(&results),
        )?;
    }
    if results.interrupted {
        return Ok(ExitCode::from(EXIT_INTERRUPTED));
    }
    if results.connections.established == 0 {
        // Nothing could be measured: say why in one line, exit 1.
        eprintln!("error: {}", no_connection(&results));
        return Ok(ExitCode::from(EXIT_FAILURE));
    }
    Ok(threshold_exit(&results))
}

/// What to check when nothing could be reached, from the commonest cause: `;
/// is anything listening on 127.0.0.1:1?`, `; the server answered HTTP 200
/// instead of 101: ...`, or nothing for a cause with no simple advice.
fn unreachable_hint(r: &crate::results::RunResults) -> String {
    let Some((cause, _)) = r
        .connections
        .failed_by_cause
        .iter()
        .max_by_key(|(_, n)| **n)
    else {
        return String::new();
    };
    let target = r
        .config
        .targets
        .first()
        .map_or("the target", |t| t.as_str());
    let host = target
        .split("://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap_or(target);
    let hint = match cause.as_str() {
        "refused" => format!("is anything listening on {host}?"),
        "unresolvable" => "check the host name in the URL".to_string(),
        "connect_timeout" => format!(
            "nothing answered {host} within --connect-timeout: a firewall, or the wrong address?"
        ),
        c if c.starts_with("http_") => http_hint(c.trim_start_matches("http_")),
        c if c.starts_with("tls_") => {
            "the TLS handshake failed: --ca FILE for a private CA, --insecure to skip verification"
                .to_string()
        }
        "not_upgraded" | "bad_accept_key" => {
            format!("{host} answers HTTP but is no WebSocket endpoint at that path")
        }
        "bad_http_response" => format!(
            "{host} does not answer HTTP: a TLS port reached with ws:// (use wss://), or no web server?"
        ),
        _ => return String::new(),
    };
    format!("; {hint}")
}

/// What an upgrade answered with HTTP `status` instead of 101 means, and what
/// to check (`-v` prints the server's answer).
fn http_hint(status: &str) -> String {
    let code: u16 = status.parse().unwrap_or(0);
    let what = match code {
        200..=299 => "is this a WebSocket endpoint? check the URL's path",
        300..=399 => {
            "a redirect, which a WebSocket client does not follow: use the URL it points to \
             (-v prints its Location)"
        }
        401 => "it wants credentials: --header 'Authorization: ...' (or a token in the URL)",
        403 => "it forbids this client: check --origin, --header and the URL's token",
        404 => "no such path: check the URL's path",
        400..=499 => "it refused the upgrade: check the URL's path, --header and --origin",
        503 => "it is unavailable or at its capacity: is it up, and is it ready for load?",
        500..=599 => "the server (or a proxy before it) failed: see its logs",
        _ => "not a WebSocket upgrade",
    };
    format!("the server answered HTTP {status} instead of 101: {what} (-v prints its answer)")
}

/// The error line when no connection could be established: the causes counted
/// and what to check (`no connection could be established (refused ×4); is
/// anything listening on 127.0.0.1:1?`).
fn no_connection(r: &crate::results::RunResults) -> String {
    let causes: Vec<String> = r
        .connections
        .failed_by_cause
        .iter()
        .map(|(k, v)| format!("{k} ×{}", crate::vocab::fmt::group(*v)))
        .collect();
    format!(
        "no connection could be established ({}){}",
        if causes.is_empty() {
            "none attempted".to_string()
        } else {
            causes.join(", ")
        },
        unreachable_hint(r)
    )
}

/// `wsherd ceiling`: set up, search, print, exit code.
fn ceiling(args: crate::cli::CeilingArgs) -> Result<ExitCode, Error> {
    let (json, html) = (args.load.json.clone(), args.html.clone());
    one_to_stdout(&[("--json -", json.as_deref()), ("--html -", html.as_deref())])?;
    let setup = crate::config::setup_from(args)?;
    let found = crate::ceiling::search(setup, crate::sys::interrupt_flag())?;
    print_summary(
        &[json.as_deref(), html.as_deref()],
        &crate::report::ceiling_text::render(&found),
    )?;
    if found.run.interrupted {
        return Ok(ExitCode::from(EXIT_INTERRUPTED));
    }
    if found.run.connections.established == 0 {
        eprintln!("error: {}", no_connection(&found.run));
        return Ok(ExitCode::from(EXIT_FAILURE));
    }
    if found.outcome == crate::results::ceiling::outcome::INCOMPLETE {
        eprintln!(
            "error: the search did not converge within --max-time; {}",
            crate::ceiling::MAX_TIME_HINT
                .trim_start_matches("the worst case is longer than --max-time: ")
        );
        return Ok(ExitCode::from(EXIT_FAILURE));
    }
    Ok(ExitCode::SUCCESS)
}

/// `wsherd k8s run`: launch the agents, merge what they left, report and judge
/// it once; an agent missing or late is named in the report.
fn k8s_run(args: crate::cli::K8sRunArgs, argv: &[String]) -> Result<ExitCode, Error> {
    let json = args.run.load.json.clone();
    let files: ReportFiles = args.run.reports.clone().into();
    let judge = crate::thresholds::Judge::parse(&args.run.judge.thresholds, &args.run.judge.bands)?;
    let (html, csv) = (files.html.clone(), files.csv.clone());
    let outputs = [
        ("--json -", json.as_deref()),
        ("--html -", html.as_deref()),
        ("--csv -", csv.as_deref()),
    ];
    one_to_stdout(&outputs)?;
    if let Some(p) = &json {
        crate::report::check_writable("--json", p)?;
    }
    files.check()?;
    let launch = crate::config::k8s::plan_k8s(args, argv)?;
    let Some(got) = crate::k8s::launch(&launch)? else {
        return Ok(ExitCode::SUCCESS);
    };
    let missing: Vec<String> = got
        .report
        .missing
        .iter()
        .map(|m| format!("agent {} ({}): {}", m.agent, m.pod, m.reason))
        .collect();
    if got.parts.is_empty() {
        if got.interrupted {
            eprintln!(
                "error: interrupted before any agent ended; the run was deleted: {}",
                missing.join("; ")
            );
            return Ok(ExitCode::from(EXIT_INTERRUPTED));
        }
        return Err(Error::Launch(format!(
            "no agent left results: {}",
            missing.join("; ")
        )));
    }
    let names: Vec<String> = got
        .report
        .reported
        .iter()
        .map(|a| format!("agent {a}"))
        .collect();
    crate::merge::check_parts(&got.parts, &names).map_err(Error::Launch)?;
    let mut total = crate::merge::merge(&got.parts, crate::merge::Timing::Parallel);
    total.agents = Some(got.report);
    total.interrupted |= got.interrupted;
    if !judge.is_empty() {
        judge.apply(&mut total);
    }
    if let Some(p) = &json {
        crate::report::write_json("--json", p, &total)?;
    }
    files.write(&total)?;
    print_summary(
        &outputs.map(|(_, p)| p),
        &crate::report::text::render(&total),
    )?;
    // As `run`: interrupted 130, nothing connected 1; and a run some agents
    // are missing from is not the run planned: 1, whatever its thresholds say.
    if total.interrupted {
        return Ok(ExitCode::from(EXIT_INTERRUPTED));
    }
    if !missing.is_empty() {
        eprintln!(
            "error: {} of {} agents reported: the figures are a part of the run planned ({})",
            got.parts.len(),
            launch.spec.agents,
            missing.join("; ")
        );
        return Ok(ExitCode::from(EXIT_FAILURE));
    }
    if total.connections.established == 0 {
        eprintln!("error: {}", no_connection(&total));
        return Ok(ExitCode::from(EXIT_FAILURE));
    }
    Ok(threshold_exit(&total))
}

/// `wsherd merge`.
fn merge(args: crate::cli::MergeArgs) -> Result<ExitCode, Error> {
    let parts = args
        .files
        .iter()
        .map(|f| merge_part(f))
        .collect::<Result<Vec<_>, _>>()?;
    let names: Vec<String> = args.files.iter().map(|f| f.display().to_string()).collect();
    crate::merge::check_parts(&parts, &names).map_err(Error::usage)?;
    let total = crate::merge::merge(&parts, crate::merge::Timing::Parallel);
    if let Some(out) = &args.json {
        crate::report::write_json("--json", out, &total)?;
    }
    if !args.quiet {
        print_summary(
            &[args.json.as_deref()],
            &crate::report::text::render(&total),
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

/// One file for `wsherd merge`: the results of one run. A scenario file's or
/// a ceiling search's results are refused with what to do instead (their
/// parts are not one run each).
fn merge_part(path: &std::path::Path) -> Result<crate::results::RunResults, Error> {
    let v = crate::report::read_value(path)?;
    let shown = path.display();
    if v.get("scenarios").is_some() && v.get("total").is_some() {
        return Err(Error::usage(format!(
            "{shown} holds a scenario file's results (each scenario's and their total), not one \
             run's: merge takes the --json of single runs, one per agent; `wsherd report {shown}` \
             shows it (its total already merges the scenarios)"
        )));
    }
    if crate::ceiling::is_ceiling(&v) {
        return Err(Error::usage(format!(
            "{shown} holds a ceiling search, not one run's results: merge takes the --json of \
             single runs, one per agent; `wsherd report {shown}` shows it"
        )));
    }
    crate::report::results_from(path, v)
}

/// `wsherd doctor`.
fn doctor(args: crate::cli::DoctorArgs) -> Result<ExitCode, Error> {
    let (demand, sources) = crate::config::run::doctor_demand(&args)?;
    let mut checks = crate::doctor::examine(&demand);
    if !sources.is_empty() {
        checks.insert(0, crate::doctor::check_sources(&sources));
    }
    print_out(&crate::doctor::render(&demand, &checks))?;
    let fail = checks
        .iter()
        .any(|c| c.verdict == crate::doctor::Verdict::Fail);
    Ok(if fail {
        ExitCode::from(EXIT_FAILURE)
    } else {
        ExitCode::SUCCESS
    })
}

/// `wsherd report`: a saved run (or search) printed and rendered again.
fn report(args: crate::cli::ReportArgs) -> Result<ExitCode, Error> {
    let judge = crate::thresholds::Judge::parse(&args.judge.thresholds, &args.judge.bands)?;
    let v = crate::report::read_value(&args.file)?;
    if crate::ceiling::is_ceiling(&v) {
        return report_ceiling(&args, judge, v);
    }
    if v.get("scenarios").is_some() && v.get("total").is_some() {
        return report_scenarios(&args, judge, v);
    }
    let mut r = crate::report::results_from(&args.file, v)?;
    let files = ReportFiles::from(args.reports.clone());
    let outputs = [
        ("--html -", files.html.as_deref()),
        ("--csv -", files.csv.as_deref()),
    ];
    one_to_stdout(&outputs)?;
    files.check()?;
    if !judge.is_empty() {
        judge.apply(&mut r);
    }
    print_summary(&outputs.map(|(_, p)| p), &crate::report::text::render(&r))?;
    files.write(&r)?;
    // Re-judged: the new verdicts decide; shown again: it only prints.
    Ok(if judge.thresholds.is_empty() {
        ExitCode::SUCCESS
    } else {
        threshold_exit(&r)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsString;
    use std::os::unix::ffi::OsStringExt;

    /// An argument that is not UTF-8 (a file name in another encoding) is a
    /// usage error naming it, where `std::env::args()` would panic.
    #[test]
    fn a_non_utf8_argument_is_a_usage_error_naming_it() {
        let ok = utf8_args(["wsherd", "k8s", "run"].map(OsString::from)).unwrap();
        assert_eq!(ok, ["wsherd", "k8s", "run"]);
        let bad = OsString::from_vec(b"/tmp/r\xff.json".to_vec());
        let e = utf8_args([OsString::from("wsherd"), bad, OsString::from("--x")]).unwrap_err();
        assert_eq!(e.exit_code(), EXIT_USAGE);
        assert_eq!(
            e.to_string(),
            "argument '/tmp/r\u{FFFD}.json' is not valid UTF-8: wsherd's arguments must be UTF-8"
        );
    }
}
