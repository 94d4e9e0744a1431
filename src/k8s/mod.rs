//! `wsherd k8s run`: one run made by N agents on a Kubernetes cluster.
//!
//! The agents are the pods of an Indexed Job (`manifests`), each running
//! `wsherd run ... --agent job/N --start-at T --json -`: a disjoint share of the
//! connections and of the rate, started together. The launcher creates the
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
    /// Print the objects instead of creating them.
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
    /// Each agent's share, one line each (printed before the objects are created).
    pub shares: Vec<String>,
}

/// What the agents left: their results in agent order, and what became of each.
pub struct Gathered {
    pub parts: Vec<RunResults>,
    pub report: AgentsReport,
    /// The launcher was interrupted (Ctrl-C, SIGTERM) before every agent ended.
    pub interrupted: bool,
}

/// How the wait ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ended {
    /// Every agent's pod ended, or never can start.
    Done,
    /// The time the run should take, and a minute, went by.
    TimedOut,
    Interrupted,
}

/// `kubectl get pods` may fail this many times in a row (an API server's
/// hiccup) before the launcher gives up on the run.
const GET_TRIES: u32 = 5;
/// Waiting reasons a pod does not recover from by itself (an image that is not
/// there, a pod no node can take, a configuration it cannot start with).
const HOPELESS: &[&str] = &[
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
    "Unschedulable",
];

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
    // Ctrl-C or SIGTERM ends the wait, not the process: what finished is
    // gathered and everything is deleted all the same.
    let interrupt = crate::sys::interrupt_flag();
    // Deleted however the wait ends (unless kept), and after a create that
    // failed half way (the ConfigMap made, the Job refused).
    let cleanup = Cleanup {
        k: &k,
        name: &l.spec.name,
        keep: l.keep,
        armed: std::cell::Cell::new(true),
    };
    let created = match k.create(&manifests::yaml(&objects)) {
        Ok(created) => created,
        // Objects of that name were there before: not ours to delete.
        Err(e) if e.to_string().contains("AlreadyExists") => {
            cleanup.armed.set(false);
            return Err(Error::Launch(format!(
                "{e}: objects named {} exist already in namespace {}; choose another --job-name (nothing was deleted)",
                l.spec.name, l.spec.namespace
            )));
        }
        Err(e) => return Err(e),
    };
    if !l.spec.files.is_empty() {
        own_files(&k, &l.spec.name, &created);
    }
    let (pods, ended) = wait(l, &k, &interrupt)?;
    let mut got = gather(l, &k, &pods, ended);
    got.interrupted = ended == Ended::Interrupted;
    Ok(Some(got))
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

    /// Pending for a reason it will not get over by itself.
    fn hopeless(&self) -> bool {
        self.phase == "Pending"
            && self
                .trouble
                .as_deref()
                .is_some_and(|t| HOPELESS.iter().any(|h| t.starts_with(h)))
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
            // A pod no node takes says so in its PodScheduled condition.
            let unscheduled = status["conditions"].as_array().and_then(|cs| {
                cs.iter().find(|c| {
                    c["type"] == "PodScheduled" && c["status"] == "False" && c["reason"].is_string()
                })
            });
            let trouble = if let Some(w) = cs["state"]["waiting"]["reason"].as_str() {
                (w != "ContainerCreating" && w != "PodInitializing").then(|| w.to_string())
            } else if let Some(code) = cs["state"]["terminated"]["exitCode"].as_i64() {
                let reason = cs["state"]["terminated"]["reason"].as_str().unwrap_or("");
                (code != 0).then(|| format!("exit {code} ({reason})"))
            } else if let Some(c) = unscheduled {
                let why = c["message"].as_str().unwrap_or("");
                Some(format!("{}: {why}", c["reason"].as_str().unwrap_or("")))
            } else {
                // The pod's own reason: Evicted, SysctlForbidden, NodeLost, ...
                status["reason"]
                    .as_str()
                    .map(|r| match status["message"].as_str() {
                        Some(m) => format!("{r}: {m}"),
                        None => r.to_string(),
                    })
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

/// Waits until every agent's pod has ended (or cannot start: then only once
/// `--start-at` has passed), the wait is over, or the launcher is interrupted.
/// Returns the pods as last seen and how the wait ended.
fn wait(
    l: &Launch,
    k: &Kubectl,
    interrupt: &std::sync::atomic::AtomicBool,
) -> Result<(Vec<Pod>, Ended), Error> {
    use std::sync::atomic::Ordering;
    let t0 = Instant::now();
    let mut shown = (String::new(), Instant::now());
    let mut failures = 0;
    let mut pods = Vec::new();
    loop {
        match k.json(&["get", "pods", "-l", &selector(&l.spec.name), "-o", "json"]) {
            Ok(v) => {
                pods = parse_pods(&v);
                failures = 0;
            }
            Err(e) if failures + 1 < GET_TRIES => {
                failures += 1;
                eprintln!("warning: {e} (try {failures} of {GET_TRIES}; the agents run on)");
            }
            Err(e) => return Err(e),
        }
        let done = pods.iter().filter(|p| p.done()).count() as u64;
        let hopeless = pods.iter().filter(|p| p.hopeless()).count() as u64;
        if !l.quiet && failures == 0 {
            let line = progress(&pods, l.spec.agents, l.start_at);
            // A line when something changed, and every half minute regardless.
            if line != shown.0 || shown.1.elapsed() >= Duration::from_secs(30) {
                eprintln!("{line} ({}s)", t0.elapsed().as_secs());
                shown = (line, Instant::now());
            }
        }
        if done >= l.spec.agents {
            return Ok((pods, Ended::Done));
        }
        if done + hopeless >= l.spec.agents
            && pods.len() as u64 >= l.spec.agents
            && crate::sys::unix_now() > l.start_at
        {
            return Ok((pods, Ended::Done));
        }
        if t0.elapsed() >= l.wait {
            return Ok((pods, Ended::TimedOut));
        }
        // Look at the interrupt often, at the pods every POLL.
        let next = Instant::now() + POLL;
        while Instant::now() < next {
            if interrupt.load(Ordering::Relaxed) {
                eprintln!("k8s: interrupted: gathering what ended, then deleting the run");
                return Ok((pods, Ended::Interrupted));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// `k8s: 4 agents: 1 pending, 3 running, 0 done (start in 8s)`: the caller adds
/// the time since the launch.
fn progress(pods: &[Pod], agents: u64, start_at: f64) -> String {
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
        "k8s: {agents} agents: {} pending, {} running, {} done{}{}",
        agents as usize
            - (count("Running") + count("Succeeded") + count("Failed")).min(agents as usize),
        count("Running"),
        count("Succeeded") + count("Failed"),
        // Tens of seconds, so the line changes (and is printed) at most so often.
        if to_start > 0.0 {
            format!("; start in {}s", (to_start / 10.0).ceil() as u64 * 10)
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

/// Reads each agent's results from its pod's log: of every ended pod, and of
/// none that still runs when the wait was interrupted (its results are not
/// written yet; deleting the Job stops it).
fn gather(l: &Launch, k: &Kubectl, pods: &[Pod], ended: Ended) -> Gathered {
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
                reason: "no pod of it was found (never created, or deleted)".into(),
            });
            continue;
        };
        if !pod.done() && ended == Ended::Interrupted {
            report.missing.push(MissingAgent {
                agent,
                pod: pod.name.clone(),
                reason: format!(
                    "still {} when the launcher was interrupted",
                    pod.phase.to_lowercase()
                ),
            });
            continue;
        }
        if pod.hopeless() {
            report.missing.push(MissingAgent {
                agent,
                pod: pod.name.clone(),
                reason: format!("never started: {}", pod.trouble.as_deref().unwrap_or("")),
            });
            continue;
        }
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
    Gathered {
        parts,
        report,
        interrupted: false,
    }
}

/// Makes the Job the owner of the run's ConfigMap, so that the cluster deletes
/// the files with the Job, also when the launcher cannot (killed, or the
/// Job's `ttlSecondsAfterFinished` came first). The Job's UID is in what
/// `create -o json` answered (`created`: the objects). A failure only warns:
/// the launcher's own delete remains.
fn own_files(k: &Kubectl, name: &str, created: &Value) {
    let uid = created
        .as_array()
        .into_iter()
        .flatten()
        .find(|o| o["kind"] == "Job")
        .and_then(|o| o["metadata"]["uid"].as_str());
    let files = manifests::files_name(name);
    let Some(uid) = uid else {
        eprintln!("warning: kubectl create named no Job UID: configmap/{files} is deleted only by the launcher");
        return;
    };
    let patch = serde_json::json!({ "metadata": { "ownerReferences": [ {
        "apiVersion": "batch/v1", "kind": "Job", "name": name, "uid": uid } ] } });
    if let Err(e) = k.text(&[
        "patch",
        "configmap",
        &files,
        "--type",
        "merge",
        "-p",
        &patch.to_string(),
    ]) {
        eprintln!("warning: {e}: configmap/{files} is deleted only by the launcher");
    }
}

/// How late an agent that started at `started` (Unix seconds, its results')
/// was against the planned `start_at`, when that is more than `LATE_AFTER_SECS`.
fn late_by(started: f64, start_at: f64) -> Option<f64> {
    let late = started - start_at;
    (late > LATE_AFTER_SECS).then_some(late)
}

/// The results an agent printed (`--json -`) in its log, whatever else the log
/// holds (the summary, warnings). Public for tests that gather as the launcher does.
///
/// Each line that is a lone `{` may open them (another one may, in a `-v`
/// frame dump): the first from which a whole `RunResults` parses wins.
pub fn results_from_log(log: &str) -> Result<RunResults, String> {
    let mut at = 0;
    let mut first_error = None;
    for line in log.split_inclusive('\n') {
        if line.trim_end() == "{" {
            let mut it = serde_json::Deserializer::from_str(&log[at..]).into_iter::<RunResults>();
            match it.next() {
                Some(Ok(r)) => return Ok(r),
                Some(Err(e)) => {
                    first_error.get_or_insert_with(|| format!("its results did not parse: {e}"));
                }
                None => {}
            }
        }
        at += line.len();
    }
    Err(first_error.unwrap_or_else(|| "its log holds no results (did it run to the end?)".into()))
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

    /// Creates the run's objects: `create`, not `apply`, as they are new (a
    /// name taken already is an error, not someone else's Job followed), and
    /// `apply` would copy every shipped file into an annotation capped at 256 KiB.
    fn create(&self, yaml: &str) -> Result<Value, Error> {
        let mut child = self
            .command(&["create", "-f", "-", "-o", "json"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| self.spawn_error(e))?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(yaml.as_bytes())
                .map_err(|e| Error::Launch(format!("kubectl create: {e}")))?;
        }
        let out = child
            .wait_with_output()
            .map_err(|e| Error::Launch(format!("kubectl create: {e}")))?;
        if !out.status.success() {
            return Err(Error::Launch(format!(
                "kubectl create failed: {} (--dry-run prints the objects)",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        // What was created, with the UIDs the cluster gave: a List, or (older
        // kubectl) the objects one after another; what does not parse is left
        // out (only the ConfigMap's owner depends on it).
        let items: Vec<Value> = serde_json::Deserializer::from_slice(&out.stdout)
            .into_iter::<Value>()
            .map_while(Result::ok)
            .flat_map(|v| match v["items"].as_array() {
                Some(items) => items.clone(),
                None => vec![v],
            })
            .collect();
        Ok(Value::Array(items))
    }

    fn spawn_error(&self, e: std::io::Error) -> Error {
        Error::Launch(format!(
            "cannot run {}: {e} (install kubectl, or give its path with --kubectl)",
            self.path.display()
        ))
    }
}

/// Deletes the run's objects when dropped, unless kept or disarmed.
struct Cleanup<'a> {
    k: &'a Kubectl,
    name: &'a str,
    keep: bool,
    /// False when the objects are not the launcher's to delete.
    armed: std::cell::Cell<bool>,
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        if !self.armed.get() {
            return;
        }
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
        assert!(pods[0].hopeless() && !pods[1].hopeless() && !pods[2].hopeless());
        let line = progress(&pods, 3, 0.0);
        assert!(
            line.starts_with(
                "k8s: 3 agents: 2 pending, 0 running, 1 done; agent 1 ImagePullBackOff"
            ),
            "{line}"
        );
        // The start counts down in tens of seconds, so the line changes seldom.
        let soon = progress(&pods, 3, crate::sys::unix_now() + 25.0);
        assert!(soon.contains("start in 30s"), "{soon}");
    }

    #[test]
    fn pod_level_reasons_are_read() {
        let v = serde_json::json!({ "items": [
            { "metadata": { "name": "r-0-a", "labels": { "batch.kubernetes.io/job-completion-index": "0" } },
              "status": { "phase": "Failed", "reason": "Evicted",
                          "message": "The node was low on resource: memory." } },
            { "metadata": { "name": "r-1-b", "labels": { "batch.kubernetes.io/job-completion-index": "1" } },
              "status": { "phase": "Pending", "conditions": [
                  { "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                    "message": "0/3 nodes are available" } ] } },
            { "metadata": { "name": "r-2-c", "labels": { "batch.kubernetes.io/job-completion-index": "2" } },
              "status": { "phase": "Pending", "conditions": [
                  { "type": "PodScheduled", "status": "True" } ] } },
        ]});
        let pods = parse_pods(&v);
        assert_eq!(
            pods[0].trouble.as_deref(),
            Some("Evicted: The node was low on resource: memory.")
        );
        assert!(pods[0].done() && !pods[0].hopeless());
        assert_eq!(
            pods[1].trouble.as_deref(),
            Some("Unschedulable: 0/3 nodes are available")
        );
        assert!(pods[1].hopeless());
        assert_eq!(pods[2].trouble, None);
        assert!(!pods[2].hopeless());
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
        // Whole results after a stray `{` line: tests/k8s.rs, with real logs.
    }
}
