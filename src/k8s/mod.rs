//! `wsherd k8s run`: one run made by N agents on a Kubernetes cluster.
//!
//! The agents are the pods of an Indexed Job (`manifests`), each running
//! `wsherd run ... --agent job/N --start-at T --json -`: a disjoint share of the
//! connections and of the rate, started together. The launcher applies the
//! objects with `kubectl`, waits for the pods (a progress line), reads each
//! agent's results from its log, and hands them back to be merged and judged
//! once, as one run. An agent that failed, or left no results, is named with its
//! reason; one that started late says by how much (`AgentsReport`). What it
//! created is deleted at the end unless asked to keep it.
//!
//! `kubectl` is the only way in (its configuration, context and credentials
//! are the user's): no client library, no API server address of its own.
//!
//! A driver: never imports `cli` or `config` (it is handed a `Launch`), nor the
//! engine (the agents run elsewhere).

pub mod manifests;

use crate::error::Error;
use crate::results::{AgentsReport, LateAgent, MissingAgent, RunResults};
use serde_json::Value;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// An agent that starts more than this after `--start-at` is flagged as late.
pub const LATE_AFTER_SECS: f64 = 1.0;
/// How often the pods are looked at while the run goes.
const POLL: Duration = Duration::from_secs(2);

/// A distributed run as planned.
#[derive(Debug, Clone)]
pub struct Launch {
    pub spec: manifests::Spec,
    /// The `kubectl` to call (a path, or a name on PATH).
    pub kubectl: PathBuf,
    /// Print the objects instead of applying them.
    pub dry_run: bool,
    /// Leave the objects in the cluster at the end.
    pub keep: bool,
    /// When the agents start (Unix seconds).
    pub start_at: f64,
    /// How long the agents may take from now until every one has finished.
    pub wait: Duration,
    /// No progress line.
    pub quiet: bool,
    /// One-way latencies (broadcast, push) compare the clocks of two hosts.
    pub one_way: bool,
    /// Each agent's share, one line each (printed before the objects are applied).
    pub shares: Vec<String>,
}

/// What the agents left: their results in agent order, and what became of each.
pub struct Gathered {
    pub parts: Vec<RunResults>,
    pub report: AgentsReport,
}

/// Runs `l`: None for a dry run (the objects were printed), else what the
/// agents left. Errors only when nothing could be started or nothing came back.
pub fn launch(l: &Launch) -> Result<Option<Gathered>, Error> {
    let objects = manifests::objects(&l.spec);
    if l.dry_run {
        print!("{}", manifests::yaml(&objects));
        return Ok(None);
    }
    let k = Kubectl {
        path: l.kubectl.clone(),
        namespace: l.spec.namespace.clone(),
    };
    if !l.quiet {
        for line in &l.shares {
            eprintln!("k8s: {line}");
        }
    }
    k.apply(&manifests::yaml(&objects))?;
    // Deleted however the wait ends (unless kept).
    let _cleanup = Cleanup {
        k: &k,
        name: &l.spec.name,
        keep: l.keep,
    };
    let pods = wait(l, &k)?;
    Ok(Some(gather(l, &k, &pods)))
}

/// One agent's pod as `kubectl get pods` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Pod {
    pub name: String,
    /// The Job's completion index (agent = index + 1).
    pub index: u64,
    pub phase: String,
    /// Why it is not running or ended badly: a waiting reason
    /// (`ImagePullBackOff`), or `exit N (Reason)`.
    pub trouble: Option<String>,
}

impl Pod {
    fn done(&self) -> bool {
        self.phase == "Succeeded" || self.phase == "Failed"
    }
}

/// Reads `kubectl get pods -o json`'s answer.
pub fn parse_pods(v: &Value) -> Vec<Pod> {
    let items = v["items"].as_array().cloned().unwrap_or_default();
    let mut pods: Vec<Pod> = items
        .iter()
        .filter_map(|p| {
            let meta = &p["metadata"];
            let index = meta["annotations"]["batch.kubernetes.io/job-completion-index"]
                .as_str()
                .or_else(|| meta["labels"]["batch.kubernetes.io/job-completion-index"].as_str())?
                .parse()
                .ok()?;
            let status = &p["status"];
            let cs = &status["containerStatuses"][0];
            let trouble = if let Some(w) = cs["state"]["waiting"]["reason"].as_str() {
                (w != "ContainerCreating" && w != "PodInitializing").then(|| w.to_string())
            } else if let Some(code) = cs["state"]["terminated"]["exitCode"].as_i64() {
                let reason = cs["state"]["terminated"]["reason"].as_str().unwrap_or("");
                (code != 0).then(|| format!("exit {code} ({reason})"))
            } else {
                None
            };
            Some(Pod {
                name: meta["name"].as_str()?.to_string(),
                index,
                phase: status["phase"].as_str().unwrap_or("Pending").to_string(),
                trouble,
            })
        })
        .collect();
    pods.sort_by(|a, b| a.index.cmp(&b.index).then(a.name.cmp(&b.name)));
    pods
}

/// Waits until every agent's pod has ended, or the wait is over. Returns the
/// pods as last seen.
fn wait(l: &Launch, k: &Kubectl) -> Result<Vec<Pod>, Error> {
    let t0 = Instant::now();
    let mut shown = String::new();
    loop {
        let pods =
            parse_pods(&k.json(&["get", "pods", "-l", &selector(&l.spec.name), "-o", "json"])?);
        let done = pods.iter().filter(|p| p.done()).count() as u64;
        if !l.quiet {
            let line = progress(&pods, l.spec.agents, t0.elapsed(), l.start_at);
            if line != shown {
                eprintln!("{line}");
                shown = line;
            }
        }
        if done >= l.spec.agents || t0.elapsed() >= l.wait {
            return Ok(pods);
        }
        std::thread::sleep(POLL);
    }
}

/// `k8s: 4 agents: 1 pending, 3 running, 0 done (12s; start in 8s)`.
fn progress(pods: &[Pod], agents: u64, elapsed: Duration, start_at: f64) -> String {
    let count = |phase: &str| pods.iter().filter(|p| p.phase == phase).count();
    let troubles: Vec<String> = pods
        .iter()
        .filter_map(|p| {
            p.trouble
                .as_ref()
                .map(|t| format!("agent {} {t}", p.index + 1))
        })
        .collect();
    let to_start = start_at - crate::sys::unix_now();
    format!(
        "k8s: {agents} agents: {} pending, {} running, {} done ({}s{}){}",
        agents as usize
            - (count("Running") + count("Succeeded") + count("Failed")).min(agents as usize),
        count("Running"),
        count("Succeeded") + count("Failed"),
        elapsed.as_secs(),
        if to_start > 0.0 {
            format!("; start in {:.0}s", to_start.ceil())
        } else {
            String::new()
        },
        if troubles.is_empty() {
            String::new()
        } else {
            format!("; {}", troubles.join(", "))
        }
    )
}

/// Reads each agent's results from its pod's log.
fn gather(l: &Launch, k: &Kubectl, pods: &[Pod]) -> Gathered {
    let mut parts = Vec::new();
    let mut report = AgentsReport {
        expected: l.spec.agents,
        start_at_unix: l.start_at,
        ..Default::default()
    };
    for index in 0..l.spec.agents {
        let agent = index + 1;
        // The index's latest pod (one per index: the Job does not retry).
        let Some(pod) = pods.iter().rev().find(|p| p.index == index) else {
            report.missing.push(MissingAgent {
                agent,
                pod: String::new(),
                reason: "no pod was created".into(),
            });
            continue;
        };
        let log = k.text(&["logs", &pod.name, "-c", "wsherd"]);
        match log
            .map_err(|e| e.to_string())
            .and_then(|t| results_from_log(&t))
        {
            Ok(r) => {
                if let Some(secs) = late_by(r.started_at_unix, l.start_at) {
                    report.late.push(LateAgent { agent, secs });
                }
                report.reported.push(agent);
                parts.push(r);
            }
            Err(why) => report.missing.push(MissingAgent {
                agent,
                pod: pod.name.clone(),
                reason: match (&pod.trouble, pod.done()) {
                    (Some(t), _) => format!("{t}: {why}"),
                    (None, false) => {
                        format!("still {} when the wait ended", pod.phase.to_lowercase())
                    }
                    (None, true) => why,
                },
            }),
        }
    }
    if l.one_way && l.spec.agents > 1 {
        report.notes.push(
            "one-way latencies compare the clocks of different hosts: as right as their clocks agree"
                .into(),
        );
    }
    Gathered { parts, report }
}

/// How late an agent that started at `started` (Unix seconds, its results')
/// was against the planned `start_at`, when that is more than `LATE_AFTER_SECS`.
fn late_by(started: f64, start_at: f64) -> Option<f64> {
    let late = started - start_at;
    (late > LATE_AFTER_SECS).then_some(late)
}

/// The results an agent printed (`--json -`) in its log, whatever else the log
/// holds (the summary, warnings). Public for tests that gather as the launcher does.
pub fn results_from_log(log: &str) -> Result<RunResults, String> {
    let mut at = 0;
    for line in log.split_inclusive('\n') {
        if line.trim_end() == "{" {
            let mut it = serde_json::Deserializer::from_str(&log[at..]).into_iter::<RunResults>();
            return match it.next() {
                Some(Ok(r)) => Ok(r),
                Some(Err(e)) => Err(format!("its results did not parse: {e}")),
                None => Err("its log holds no results".into()),
            };
        }
        at += line.len();
    }
    Err("its log holds no results (did it run to the end?)".into())
}

/// The label selector of one run's objects.
fn selector(name: &str) -> String {
    format!("wsherd.run={name}")
}

/// `kubectl` in one namespace.
struct Kubectl {
    path: PathBuf,
    namespace: String,
}

impl Kubectl {
    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.path);
        c.arg("--namespace").arg(&self.namespace).args(args);
        c
    }

    /// Runs it; its stdout, or an error with its stderr.
    fn text(&self, args: &[&str]) -> Result<String, Error> {
        let out = self
            .command(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| self.spawn_error(e))?;
        if !out.status.success() {
            return Err(Error::Launch(format!(
                "kubectl {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn json(&self, args: &[&str]) -> Result<Value, Error> {
        let text = self.text(args)?;
        serde_json::from_str(&text)
            .map_err(|e| Error::Launch(format!("kubectl {} answered no JSON: {e}", args.join(" "))))
    }

    fn apply(&self, yaml: &str) -> Result<(), Error> {
        let mut child = self
            .command(&["apply", "-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| self.spawn_error(e))?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(yaml.as_bytes())
                .map_err(|e| Error::Launch(format!("kubectl apply: {e}")))?;
        }
        let out = child
            .wait_with_output()
            .map_err(|e| Error::Launch(format!("kubectl apply: {e}")))?;
        if !out.status.success() {
            return Err(Error::Launch(format!(
                "kubectl apply failed: {} (--dry-run prints what was applied)",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(())
    }

    fn spawn_error(&self, e: std::io::Error) -> Error {
        Error::Launch(format!(
            "cannot run {}: {e} (install kubectl, or give its path with --kubectl)",
            self.path.display()
        ))
    }
}

/// Deletes the run's objects when dropped, unless kept.
struct Cleanup<'a> {
    k: &'a Kubectl,
    name: &'a str,
    keep: bool,
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        if self.keep {
            eprintln!(
                "k8s: kept job/{} (delete with: kubectl delete -n {} job,configmap -l {})",
                self.name,
                self.k.namespace,
                selector(self.name)
            );
            return;
        }
        let sel = selector(self.name);
        if let Err(e) = self.k.text(&[
            "delete",
            "job,configmap",
            "-l",
            &sel,
            "--ignore-not-found",
            "--wait=false",
        ]) {
            eprintln!(
                "warning: {e}; delete by hand: kubectl delete -n {} job,configmap -l {sel}",
                self.k.namespace
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pods_are_read_with_their_index_and_trouble() {
        let v = serde_json::json!({ "items": [
            { "metadata": { "name": "r-1-x", "annotations": { "batch.kubernetes.io/job-completion-index": "1" } },
              "status": { "phase": "Failed", "containerStatuses": [
                  { "state": { "terminated": { "exitCode": 1, "reason": "Error" } } } ] } },
            { "metadata": { "name": "r-0-y", "annotations": { "batch.kubernetes.io/job-completion-index": "0" } },
              "status": { "phase": "Pending", "containerStatuses": [
                  { "state": { "waiting": { "reason": "ImagePullBackOff" } } } ] } },
            { "metadata": { "name": "r-2-z", "annotations": { "batch.kubernetes.io/job-completion-index": "2" } },
              "status": { "phase": "Pending" } },
        ]});
        let pods = parse_pods(&v);
        assert_eq!(pods.len(), 3);
        assert_eq!(
            (pods[0].index, pods[0].trouble.as_deref()),
            (0, Some("ImagePullBackOff"))
        );
        assert_eq!(pods[1].trouble.as_deref(), Some("exit 1 (Error)"));
        assert!(pods[1].done());
        assert_eq!(pods[2].trouble, None);
        let line = progress(&pods, 3, Duration::from_secs(12), 0.0);
        assert!(
            line.starts_with("k8s: 3 agents: 2 pending, 0 running, 1 done (12s)"),
            "{line}"
        );
        assert!(line.contains("agent 1 ImagePullBackOff"), "{line}");
    }

    #[test]
    fn an_agent_more_than_a_second_late_is_flagged() {
        assert_eq!(late_by(1000.4, 1000.0), None);
        assert_eq!(late_by(999.0, 1000.0), None);
        assert_eq!(late_by(1002.5, 1000.0), Some(2.5));
    }

    #[test]
    fn results_are_found_in_a_log_among_other_lines() {
        assert!(results_from_log("warning: x\nsummary\n").is_err());
        let e = results_from_log("{\n  \"schema_version\": 1\n}\n").unwrap_err();
        assert!(e.contains("did not parse"), "{e}");
    }
}
