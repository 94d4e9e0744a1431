//! `wsherd k8s run` without a cluster.
//!
//! The launcher runs against a stand-in `kubectl` (a shell script the test
//! writes and passes with `--kubectl`): it records every call (its argv, and
//! what `create` read on stdin), answers `get pods` with pod states the test
//! prepared (or fails, when told to), and `logs POD` with that pod's log. The logs are real: the agents
//! ran here first, as the Job's pods would (`wsherd run ... --agent job/3` with
//! `JOB_COMPLETION_INDEX` set) against the built-in server on loopback, their
//! stdout and stderr in one file as a pod's log is.
//!
//! The manifests (rendered for a few plans, and deploy/kubernetes/) are checked
//! against the Kubernetes API's schemas offline with `kubernetes-validate`
//! (scripts/setup-test-deps.sh installs it); deploy/kubernetes/job.yaml is a
//! golden file of the launcher's output. And the Job is simulated on this host:
//! `wsherd serve` and each agent in network namespaces of their own (root,
//! as CI runs), the agents running the rendered pods' command.

mod support;

use serde_json::{json, Value};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use wsherd::results::RunResults;

const WSHERD: &str = env!("CARGO_BIN_EXE_wsherd");
/// The agents of the fixture.
const AGENTS: usize = 3;
/// Each run of the launcher: it polls every 2 s, so a few polls and the rest.
const LAUNCH_LIMIT: Duration = Duration::from_secs(60);

/// A scratch directory for this test process, made afresh.
fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("k8s-{}", std::process::id()))
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Starts `cmd` with stdout and stderr into `log`, as a pod's log holds both.
fn run_logged(mut cmd: Command, log: &Path) -> std::process::Child {
    let f = std::fs::File::create(log).unwrap();
    cmd.stdin(Stdio::null())
        .stdout(Stdio::from(f.try_clone().unwrap()))
        .stderr(Stdio::from(f))
        .env_remove("RUST_BACKTRACE");
    cmd.spawn().expect("spawn wsherd")
}

/// Waits for `child`, killing it after `limit`.
fn wait_bounded(child: &mut std::process::Child, limit: Duration, what: &str) -> i32 {
    let t0 = Instant::now();
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st.code().unwrap_or(-1);
        }
        if t0.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// What the agents left, run once for every test here.
struct Fixture {
    /// The target the agents loaded (the built-in server, gone by now).
    url: String,
    /// Each agent's log (agent I at I-1), and its results.
    logs: Vec<String>,
    parts: Vec<RunResults>,
    /// The log of an agent that failed before its run (no results), and its
    /// exit code.
    failed_log: String,
    failed_code: i32,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let _serial = support::serial();
        let dir = scratch("agents");
        let server = support::serve_builtin("1", &[]);
        let url = format!("ws://{}/", server.addr());
        // The three pods of the Job, started together as the Job starts them.
        let mut children: Vec<_> = (0..AGENTS)
            .map(|index| {
                let mut cmd = Command::new(WSHERD);
                cmd.args([
                    "run", &url, "-c", "30", "-d", "2s", "--rate", "300", "--agent", "job/3",
                    "--json", "-", "-q",
                ])
                .env("JOB_COMPLETION_INDEX", index.to_string());
                run_logged(cmd, &dir.join(format!("{index}.log")))
            })
            .collect();
        for (index, child) in children.iter_mut().enumerate() {
            let code = wait_bounded(child, Duration::from_secs(30), "an agent");
            assert_eq!(
                code,
                0,
                "agent {}: {}",
                index + 1,
                read(&dir.join(format!("{index}.log")))
            );
        }
        drop(server);
        let logs: Vec<String> = (0..AGENTS)
            .map(|i| read(&dir.join(format!("{i}.log"))))
            .collect();
        let parts: Vec<RunResults> = logs
            .iter()
            .map(|l| wsherd::k8s::results_from_log(l).unwrap())
            .collect();
        for (i, p) in parts.iter().enumerate() {
            assert_eq!(p.connections.established, 10, "agent {}", i + 1);
        }
        // A pod that fails before its run: the index missing from its
        // environment, as a broken image or command would fail.
        let mut cmd = Command::new(WSHERD);
        cmd.args([
            "run", &url, "-c", "30", "--agent", "job/3", "--json", "-", "-q",
        ])
        .env_remove("JOB_COMPLETION_INDEX");
        let log = dir.join("failed.log");
        let mut child = run_logged(cmd, &log);
        let failed_code = wait_bounded(&mut child, Duration::from_secs(30), "the failing agent");
        assert_ne!(failed_code, 0);
        Fixture {
            url,
            logs,
            parts,
            failed_log: read(&log),
            failed_code,
        }
    })
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The stand-in `kubectl`: records each call into `calls` (arguments separated
/// by 0x1f, a line per call) and what `create` read into `created-N.yaml`
/// (failing with `create-error`'s text as its stderr when that file exists;
/// answering `create-out`'s text if there is one, else a List with UIDs);
/// answers `get pods` (the K-th time) with `pods-K.json` if there is one, else
/// `pods.json`, or fails when `get-error-K` exists; `logs POD` with
/// `logs/POD.log`; `patch` and `delete` with a line.
const STUB: &str = r#"#!/bin/sh
dir=$(dirname "$0")
n=$(( $(cat "$dir/count" 2>/dev/null || echo 0) + 1 ))
echo "$n" > "$dir/count"
printf '%s\037' "$@" >> "$dir/calls"
printf '\n' >> "$dir/calls"
[ "$1" = "--namespace" ] && shift 2
case "$1" in
create)
    cat > "$dir/created-$n.yaml"
    if [ -f "$dir/create-error" ]; then cat "$dir/create-error" >&2; exit 1; fi
    if [ -f "$dir/create-out" ]; then cat "$dir/create-out"; else
    echo '{"apiVersion":"v1","kind":"List","items":[{"kind":"ConfigMap","metadata":{"uid":"u-cm"}},{"kind":"Job","metadata":{"uid":"u-job"}}]}'; fi ;;
patch)
    echo "configmap/x patched" ;;
get)
    k=$(( $(cat "$dir/gets" 2>/dev/null || echo 0) + 1 ))
    echo "$k" > "$dir/gets"
    if [ -f "$dir/get-error-$k" ]; then
        echo "Unable to connect to the server: net/http: TLS handshake timeout" >&2; exit 1; fi
    if [ -f "$dir/pods-$k.json" ]; then cat "$dir/pods-$k.json"; else cat "$dir/pods.json"; fi ;;
logs)
    if [ -f "$dir/logs/$2.log" ]; then cat "$dir/logs/$2.log"; else
        echo "Error from server (NotFound): pods \"$2\" not found" >&2; exit 1; fi ;;
delete)
    echo "job.batch \"x\" deleted" ;;
*)
    echo "stand-in kubectl: unexpected call: $*" >&2; exit 3 ;;
esac
"#;

/// One launch's stand-in cluster.
struct Cluster {
    dir: PathBuf,
    job: String,
}

/// A pod of the Job as `kubectl get pods -o json` shows it.
fn pod(job: &str, index: usize, phase: &str, exit: Option<i32>) -> Value {
    let state = match exit {
        Some(code) => json!({ "terminated": {
            "exitCode": code, "reason": if code == 0 { "Completed" } else { "Error" } } }),
        None => json!({ "running": { "startedAt": "2026-01-01T00:00:00Z" } }),
    };
    json!({
        "metadata": {
            "name": pod_name(job, index),
            "labels": { "wsherd.run": job, "batch.kubernetes.io/job-completion-index": index.to_string() },
            "annotations": { "batch.kubernetes.io/job-completion-index": index.to_string() },
        },
        "status": { "phase": phase, "containerStatuses": [ { "name": "wsherd", "state": state } ] },
    })
}

fn pod_list(items: &[Value]) -> Value {
    json!({ "apiVersion": "v1", "kind": "List", "items": items })
}

fn pod_name(job: &str, index: usize) -> String {
    format!("{job}-{index}-x7k2q")
}

impl Cluster {
    /// A cluster where the Job `job` ran: `pods` is what `get pods` answers
    /// (`pods_first`, if any, the first time), each pod's log is the fixture's.
    fn new(job: &str, pods: &[Value], pods_first: Option<&[Value]>, failed: &[usize]) -> Cluster {
        let f = fixture();
        let c = Cluster::bare(job);
        let dir = c.dir.clone();
        c.set_pods(pods);
        if let Some(first) = pods_first {
            std::fs::write(dir.join("pods-1.json"), pod_list(first).to_string()).unwrap();
        }
        std::fs::create_dir_all(dir.join("logs")).unwrap();
        for i in 0..AGENTS {
            let log = if failed.contains(&i) {
                &f.failed_log
            } else {
                &f.logs[i]
            };
            std::fs::write(
                dir.join("logs").join(format!("{}.log", pod_name(job, i))),
                log,
            )
            .unwrap();
        }
        c
    }

    /// A stand-in cluster with no pods and no logs yet.
    fn bare(job: &str) -> Cluster {
        let dir = scratch(job);
        let stub = dir.join("kubectl");
        std::fs::write(&stub, STUB).unwrap();
        std::fs::set_permissions(&stub, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        std::fs::create_dir_all(dir.join("logs")).unwrap();
        Cluster {
            dir,
            job: job.to_string(),
        }
    }

    /// What `get pods` answers from now on (written whole, then renamed, so the
    /// stub never reads half a file).
    fn set_pods(&self, pods: &[Value]) {
        let tmp = self.dir.join("pods.json.tmp");
        std::fs::write(&tmp, pod_list(pods).to_string()).unwrap();
        std::fs::rename(&tmp, self.dir.join("pods.json")).unwrap();
    }

    /// Three pods that ran to the end.
    fn succeeded(job: &str) -> Cluster {
        let pods: Vec<Value> = (0..AGENTS)
            .map(|i| pod(job, i, "Succeeded", Some(0)))
            .collect();
        Cluster::new(job, &pods, None, &[])
    }

    fn stub(&self) -> String {
        self.dir.join("kubectl").display().to_string()
    }

    /// `wsherd k8s run` with the fixture's plan, `extra` flags and this stub.
    fn launch(&self, extra: &[&str]) -> support::BinOutput {
        let mut args = self.launch_args(&fixture().url);
        args.extend(extra.iter().map(|a| a.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        support::run_bin(&args, LAUNCH_LIMIT)
    }

    /// `wsherd k8s run` of 3 agents loading `url` with the fixture's plan (30
    /// connections, 2 s at 300 messages/s), through this stub.
    fn launch_args(&self, url: &str) -> Vec<String> {
        let plan = "-c 30 -d 2s --rate 300 --agents 3 --start-margin 1s";
        let mut args = vec!["k8s".to_string(), "run".into(), url.into()];
        args.extend(plan.split(' ').map(String::from));
        args.extend([
            "--job-name".into(),
            self.job.clone(),
            "--kubectl".into(),
            self.stub(),
        ]);
        args
    }

    /// Every call made to the stub: its arguments.
    fn calls(&self) -> Vec<Vec<String>> {
        let Ok(text) = std::fs::read_to_string(self.dir.join("calls")) else {
            return Vec::new();
        };
        text.lines()
            .map(|l| {
                l.split('\u{1f}')
                    .filter(|a| !a.is_empty())
                    .map(String::from)
                    .collect()
            })
            .collect()
    }

    /// What the first call (`create`) read on stdin.
    fn applied(&self) -> String {
        read(&self.dir.join("created-1.yaml"))
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }
}

/// A YAML stream read by a real YAML parser (Python's), as JSON values.
fn parse_yaml(text: &str) -> Vec<Value> {
    let mut child = Command::new("python3")
        .args([
            "-c",
            "import yaml,json,sys; print(json.dumps(list(yaml.safe_load_all(sys.stdin))))",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 (with PyYAML) runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the YAML does not parse: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn job_of(objects: &[Value]) -> &Value {
    objects
        .iter()
        .find(|o| o["kind"] == "Job")
        .unwrap_or_else(|| panic!("no Job in {objects:?}"))
}

fn agent_args(job: &Value) -> Vec<String> {
    job["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect()
}

fn has_pair(args: &[String], a: &str, b: &str) -> bool {
    args.windows(2).any(|w| w[0] == a && w[1] == b)
}

fn merged(path: &str) -> Value {
    serde_json::from_str(&read(Path::new(path))).unwrap()
}

fn hdr(text: &str) -> hdrhistogram::Histogram<u64> {
    wsherd::vocab::hist::decode_histogram(text).expect("a histogram")
}

/// The parts' round-trip histograms added, bucket by bucket.
fn rtt_sum(parts: &[RunResults]) -> hdrhistogram::Histogram<u64> {
    let mut sum = hdr(&parts[0].latency.rtt.hdr);
    for p in &parts[1..] {
        sum.add(hdr(&p.latency.rtt.hdr)).unwrap();
    }
    sum
}

#[test]
fn the_launcher_applies_the_job_gathers_every_agent_and_merges_them() {
    let f = fixture();
    let job = "t-all";
    let running: Vec<Value> = (0..AGENTS).map(|i| pod(job, i, "Running", None)).collect();
    let c = Cluster::new(
        job,
        &(0..AGENTS)
            .map(|i| pod(job, i, "Succeeded", Some(0)))
            .collect::<Vec<_>>(),
        Some(&running),
        &[],
    );
    let out_json = c.path("merged.json");
    let out = c.launch(&["--k8s-namespace", "load", "--json", &out_json]);
    assert_eq!(out.code, Some(0), "{out:?}");

    // The calls: create, get pods until every pod ended, a log per pod, delete last.
    let calls = c.calls();
    let verbs: Vec<&str> = calls.iter().map(|a| a[2].as_str()).collect();
    assert!(
        calls
            .iter()
            .all(|a| a[0] == "--namespace" && a[1] == "load"),
        "{calls:?}"
    );
    assert_eq!(verbs[0], "create", "{calls:?}");
    assert_eq!(&calls[0][2..], ["create", "-f", "-", "-o", "json"]);
    assert!(
        !verbs.contains(&"patch"),
        "no files, no ConfigMap: {calls:?}"
    );
    assert_eq!(
        verbs.iter().filter(|v| **v == "get").count(),
        2,
        "polled until every pod ended: {calls:?}"
    );
    assert!(calls
        .iter()
        .any(|a| a[2..] == ["get", "pods", "-l", "wsherd.run=t-all", "-o", "json"]));
    for i in 0..AGENTS {
        let want = [
            "logs".to_string(),
            pod_name(job, i),
            "-c".into(),
            "wsherd".into(),
        ];
        assert!(calls.iter().any(|a| a[2..] == want), "{want:?}: {calls:?}");
    }
    assert_eq!(
        &calls.last().unwrap()[2..],
        [
            "delete",
            "job,configmap",
            "-l",
            "wsherd.run=t-all",
            "--ignore-not-found",
            "--wait=false"
        ],
        "deleted last: {calls:?}"
    );
    assert!(out.stderr.contains("k8s: 3 agents:"), "{}", out.stderr);
    // Each agent's share, told before anything is applied.
    for i in 1..=AGENTS {
        let line = format!("k8s: agent {i}/3: 10 connections, 100 msg/s");
        assert!(out.stderr.contains(&line), "{line}: {}", out.stderr);
    }

    // What was applied: a Job of 3 agents, each with its share and the start.
    let objects = parse_yaml(&c.applied());
    let j = job_of(&objects);
    assert_eq!(j["metadata"]["name"], job);
    assert_eq!(j["metadata"]["namespace"], "load");
    assert_eq!(j["spec"]["completions"], 3);
    assert_eq!(j["spec"]["parallelism"], 3);
    assert_eq!(j["spec"]["completionMode"], "Indexed");
    let args = agent_args(j);
    assert_eq!(&args[..2], ["run", f.url.as_str()]);
    assert!(has_pair(&args, "--agent", "job/3"), "{args:?}");
    assert!(has_pair(&args, "--json", "-"), "{args:?}");
    assert!(args.iter().any(|a| a == "--start-at"), "{args:?}");
    assert!(
        !args
            .iter()
            .any(|a| a.contains("merged.json") || a.contains("kubectl")),
        "the launcher's flags stay here: {args:?}"
    );
    assert!(!args
        .iter()
        .any(|a| a == "--agents" || a == "--k8s-namespace"));

    // The merged run: the sum of the agents'.
    let m = merged(&out_json);
    let sum = |k: fn(&RunResults) -> u64| f.parts.iter().map(k).sum::<u64>();
    assert_eq!(m["connections"]["established"], 30);
    assert_eq!(sum(|p| p.connections.established), 30);
    assert_eq!(m["messages"]["sent"], sum(|p| p.messages.sent), "{m}");
    assert!(sum(|p| p.messages.sent) > 0);
    let rtt = &m["latency"]["rtt"];
    assert_eq!(rtt["count"], sum(|p| p.latency.rtt.count));
    let whole = hdr(rtt["hdr"].as_str().unwrap());
    assert!(
        !whole.is_empty() && whole == rtt_sum(&f.parts),
        "the merged histogram is not the sum of the parts"
    );
    assert_eq!(m["agents"]["expected"], 3);
    assert_eq!(m["agents"]["reported"], json!([1, 2, 3]));
    assert!(m["agents"].get("missing").is_none(), "{}", m["agents"]);
    assert!(
        out.stdout.contains("Agents: 3 of 3 reported"),
        "{}",
        out.stdout
    );
}

#[test]
fn an_agent_that_failed_is_named_and_the_rest_merged() {
    let f = fixture();
    let job = "t-failed";
    let pods = vec![
        pod(job, 0, "Succeeded", Some(0)),
        pod(job, 1, "Failed", Some(f.failed_code)),
        pod(job, 2, "Succeeded", Some(0)),
    ];
    let c = Cluster::new(job, &pods, None, &[1]);
    let out_json = c.path("merged.json");
    let out = c.launch(&["--json", &out_json]);
    // Reported and written, but a part of the run planned is not the run: exit 1.
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(
        out.stderr.contains("2 of 3 agents reported") && out.stderr.contains("agent 2"),
        "{}",
        out.stderr
    );
    let m = merged(&out_json);
    let a = &m["agents"];
    assert_eq!(a["reported"], json!([1, 3]), "{a}");
    let missing = a["missing"].as_array().unwrap();
    assert_eq!(missing.len(), 1, "{a}");
    assert_eq!(missing[0]["agent"], 2);
    assert_eq!(missing[0]["pod"], pod_name(job, 1));
    let reason = missing[0]["reason"].as_str().unwrap();
    assert!(
        reason.contains(&format!("exit {}", f.failed_code)) && reason.contains("no results"),
        "{reason}"
    );
    // Only the reporting agents' share.
    assert_eq!(m["connections"]["established"], 20);
    assert_eq!(
        m["messages"]["sent"],
        f.parts[0].messages.sent + f.parts[2].messages.sent
    );
    assert!(
        out.stdout.contains("Agents: 2 of 3 reported"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("MISSING agent 2/3") && out.stdout.contains(&pod_name(job, 1)),
        "{}",
        out.stdout
    );
    assert_eq!(c.calls().last().unwrap()[2], "delete");
}

/// An agent's results are found after other lines, a lone `{` among them (as
/// a `-v` frame dump may print), and a log cut short has none.
#[test]
fn results_are_read_from_a_log_whatever_comes_before_them() {
    let f = fixture();
    let log = format!("warning: x\n{{\nnot json\n{}", f.logs[0]);
    let r = wsherd::k8s::results_from_log(&log).unwrap();
    assert_eq!(r.messages.sent, f.parts[0].messages.sent);
    let cut = &f.logs[0][..f.logs[0].len() / 2];
    let e = wsherd::k8s::results_from_log(cut).unwrap_err();
    assert!(e.contains("did not parse"), "{e}");
    // A pod agent's log ends with its results: no summary after them.
    assert!(f.logs[0].trim_end().ends_with('}'), "{}", f.logs[0]);
}

#[test]
fn thresholds_are_judged_on_the_merged_run() {
    let c = Cluster::succeeded("t-threshold");
    let out_json = c.path("merged.json");
    // Each agent established 10 connections, the run 30: only the merge can
    // pass `established>=30`, and only the merge fails `established>=31`.
    let out = c.launch(&["--threshold", "established>=31", "--json", &out_json]);
    assert_eq!(out.code, Some(99), "{out:?}");
    let args = agent_args(job_of(&parse_yaml(&c.applied())));
    assert!(
        !args
            .iter()
            .any(|a| a == "--threshold" || a.contains("established")),
        "judged here, not by each agent: {args:?}"
    );
    let m = merged(&out_json);
    assert_eq!(m["agents"]["reported"], json!([1, 2, 3]));
    let t = &m["thresholds"][0];
    assert_eq!(
        (t["value"].as_f64(), t["passed"].as_bool()),
        (Some(30.0), Some(false)),
        "{t}"
    );
    assert_eq!(c.calls().last().unwrap()[2], "delete");
    // A threshold the merged run meets, and no single agent would, passes.
    let c = Cluster::succeeded("t-threshold-ok");
    let out = c.launch(&[
        "--threshold",
        "established>=30",
        "--threshold",
        "rtt.p99<60s",
    ]);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(
        out.stdout.contains("PASS  established>=30"),
        "{}",
        out.stdout
    );
}

/// The files' ConfigMap is made the Job's (its UID from what create
/// answered), so the cluster deletes it with the Job whoever deletes that.
#[test]
fn the_files_config_map_is_owned_by_the_job() {
    let c = Cluster::succeeded("t-files");
    let data = c.path("users.csv");
    std::fs::write(&data, "user\nann\n").unwrap();
    let out = c.launch(&["--data", &data, "-q"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    let calls = c.calls();
    let verbs: Vec<&str> = calls.iter().map(|a| a[2].as_str()).collect();
    assert_eq!(verbs[..2], ["create", "patch"], "{calls:?}");
    assert_eq!(
        &calls[1][2..7],
        ["patch", "configmap", "t-files-files", "--type", "merge"]
    );
    let patch: Value = serde_json::from_str(&calls[1][8]).unwrap();
    assert_eq!(
        patch["metadata"]["ownerReferences"][0],
        json!({ "apiVersion": "batch/v1", "kind": "Job", "name": "t-files", "uid": "u-job" })
    );
    assert_eq!(verbs.last(), Some(&"delete"));

    // An older kubectl prints the objects one after another, not as a List.
    let c = Cluster::succeeded("t-files-old");
    std::fs::write(
        c.dir.join("create-out"),
        "{\"kind\":\"ConfigMap\",\"metadata\":{\"uid\":\"u-cm\"}}\n\
         {\"kind\":\"Job\",\"metadata\":{\"uid\":\"u-job-2\"}}\n",
    )
    .unwrap();
    let out = c.launch(&["--data", &data, "-q"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    let patch: Value = serde_json::from_str(&c.calls()[1][8]).unwrap();
    assert_eq!(patch["metadata"]["ownerReferences"][0]["uid"], "u-job-2");
}

#[test]
fn keep_leaves_the_objects_and_says_how_to_delete_them() {
    let c = Cluster::succeeded("t-keep");
    let out = c.launch(&["--keep", "-q"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    let calls = c.calls();
    assert!(!calls.is_empty());
    assert!(
        calls.iter().all(|a| a[2] != "delete"),
        "nothing deleted: {calls:?}"
    );
    assert!(out.stderr.contains("kept job/t-keep"), "{}", out.stderr);
}

/// Ctrl-C during the wait: what ended is gathered, the rest named, the run
/// deleted, the partial report written, and the exit is 130.
#[test]
fn an_interrupted_launch_reports_what_ended_deletes_the_run_and_exits_130() {
    let job = "t-interrupt";
    let pods = vec![
        pod(job, 0, "Succeeded", Some(0)),
        pod(job, 1, "Running", None),
        pod(job, 2, "Running", None),
    ];
    let c = Cluster::new(job, &pods, None, &[]);
    let log = c.dir.join("launch.log");
    let mut cmd = Command::new(WSHERD);
    cmd.args(c.launch_args(&fixture().url))
        .args(["--json", &c.path("merged.json")]);
    let mut launcher = run_logged(cmd, &log);
    // Interrupted once it looks at the pods.
    let t0 = Instant::now();
    while !c.calls().iter().any(|a| a[2] == "get") {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "no get: {}",
            read(&log)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: signalling a child this test started.
    unsafe { libc::kill(launcher.id() as libc::pid_t, libc::SIGINT) };
    let code = wait_bounded(&mut launcher, Duration::from_secs(20), "the launcher");
    let out = read(&log);
    assert_eq!(code, 130, "{out}");
    assert!(out.contains("interrupted"), "{out}");
    let calls = c.calls();
    assert_eq!(calls.last().unwrap()[2], "delete", "{calls:?}");
    // Only the pod that ended is read.
    let logs: Vec<&Vec<String>> = calls.iter().filter(|a| a[2] == "logs").collect();
    assert_eq!(logs.len(), 1, "{calls:?}");
    assert_eq!(logs[0][3], pod_name(job, 0));
    let m = merged(&c.path("merged.json"));
    assert_eq!(m["interrupted"], true);
    assert_eq!(m["agents"]["reported"], json!([1]));
    let missing = m["agents"]["missing"].as_array().unwrap();
    assert_eq!(missing.len(), 2, "{m}");
    assert!(
        missing[0]["reason"]
            .as_str()
            .unwrap()
            .contains("still running when the launcher was interrupted"),
        "{missing:?}"
    );
    assert_eq!(m["connections"]["established"], 10);
}

/// A create the cluster refuses half way: what was made is deleted. A name
/// taken already: nothing is deleted (those objects are someone else's).
#[test]
fn a_refused_create_is_cleaned_up_and_a_taken_name_left_alone() {
    let c = Cluster::succeeded("t-refused");
    std::fs::write(
        c.dir.join("create-error"),
        "configmap/t-refused created\nError from server (Forbidden): jobs.batch is forbidden: \
         User \"ci\" cannot create resource \"jobs\"",
    )
    .unwrap();
    let out = c.launch(&[]);
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(
        out.stderr.contains("cannot create resource"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    let verbs: Vec<String> = c.calls().iter().map(|a| a[2].clone()).collect();
    assert_eq!(verbs, ["create", "delete"]);

    let c = Cluster::succeeded("t-taken");
    std::fs::write(
        c.dir.join("create-error"),
        "Error from server (AlreadyExists): jobs.batch \"t-taken\" already exists",
    )
    .unwrap();
    let out = c.launch(&[]);
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(
        out.stderr.contains("choose another --job-name")
            && out.stderr.contains("nothing was deleted"),
        "{}",
        out.stderr
    );
    let verbs: Vec<String> = c.calls().iter().map(|a| a[2].clone()).collect();
    assert_eq!(verbs, ["create"]);
}

/// `kubectl get pods` failing now and then (an API server's hiccup) does not
/// end the run; failing every time does, and the run is deleted.
#[test]
fn a_failed_look_at_the_pods_is_tried_again() {
    let job = "t-flaky";
    let running: Vec<Value> = (0..AGENTS).map(|i| pod(job, i, "Running", None)).collect();
    let done: Vec<Value> = (0..AGENTS)
        .map(|i| pod(job, i, "Succeeded", Some(0)))
        .collect();
    let c = Cluster::new(job, &done, Some(&running), &[]);
    std::fs::write(c.dir.join("get-error-2"), "").unwrap();
    let out = c.launch(&[]);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(out.stderr.contains("try 1 of 5"), "{}", out.stderr);
    assert!(
        out.stdout.contains("Agents: 3 of 3 reported"),
        "{}",
        out.stdout
    );

    let c = Cluster::succeeded("t-down");
    for k in 1..=5 {
        std::fs::write(c.dir.join(format!("get-error-{k}")), "").unwrap();
    }
    let out = c.launch(&["-q"]);
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(
        out.stderr.contains("TLS handshake timeout"),
        "{}",
        out.stderr
    );
    assert_eq!(c.calls().last().unwrap()[2], "delete");
}

/// Pods that cannot start (no image, no node for them) end the wait once the
/// start is past, rather than at its limit, and are named with the reason.
#[test]
fn pods_that_cannot_start_are_named_without_waiting_out_the_run() {
    let job = "t-stuck";
    let mut unschedulable = pod(job, 2, "Pending", None);
    unschedulable["status"] = json!({ "phase": "Pending", "conditions": [ {
        "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
        "message": "0/2 nodes are available: 2 node(s) didn't match pod anti-affinity rules." } ] });
    let mut no_image = pod(job, 1, "Pending", None);
    no_image["status"]["containerStatuses"][0]["state"] =
        json!({ "waiting": { "reason": "ImagePullBackOff" } });
    let pods = vec![pod(job, 0, "Succeeded", Some(0)), no_image, unschedulable];
    let c = Cluster::new(job, &pods, None, &[]);
    let t0 = Instant::now();
    let out = c.launch(&["--json", &c.path("merged.json")]);
    // The run would have been waited for 1 s + 2 s + a minute and more.
    assert!(t0.elapsed() < Duration::from_secs(30), "{:?}", t0.elapsed());
    assert_eq!(out.code, Some(1), "{out:?}");
    let m = merged(&c.path("merged.json"));
    let missing = &m["agents"]["missing"];
    assert_eq!(missing[0]["agent"], 2);
    assert_eq!(missing[0]["reason"], "never started: ImagePullBackOff");
    assert_eq!(missing[1]["agent"], 3);
    assert!(
        missing[1]["reason"]
            .as_str()
            .unwrap()
            .starts_with("never started: Unschedulable: 0/2 nodes are available"),
        "{missing}"
    );
    assert!(
        out.stderr.contains("agent 3 Unschedulable"),
        "{}",
        out.stderr
    );
}

/// A whole launch whose third pod starts late: the stand-in cluster runs the
/// pods' command as applied (each agent a real `wsherd run` against a server
/// here), the third one 2.5 s after `--start-at`. The merged report flags that
/// agent, by how late it was, and still merges all three.
#[test]
fn an_agent_that_starts_late_is_flagged_in_the_merged_report() {
    let _serial = support::serial();
    let job = "t-late";
    let c = Cluster::bare(job);
    let server = support::serve_builtin("1", &[]);
    let url = format!("ws://{}/", server.addr());
    let pending: Vec<Value> = (0..AGENTS).map(|i| pod(job, i, "Pending", None)).collect();
    c.set_pods(&pending);
    let launch_log = c.dir.join("launch.log");
    let mut cmd = Command::new(WSHERD);
    cmd.args(c.launch_args(&url))
        .args(["--json", &c.path("merged.json")]);
    let mut launcher = run_logged(cmd, &launch_log);

    // The Job as created: its pods' arguments and their start.
    let t0 = Instant::now();
    let applied = c.dir.join("created-1.yaml");
    while !applied.exists() || read(&applied).is_empty() {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "no create: {}",
            read(&launch_log)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(100)); // the stub's write, whole
    let mut args = agent_args(job_of(&parse_yaml(&read(&applied))));
    // Three pods on one host: no metrics listener each on the same port.
    let m = args.iter().position(|a| a == "--metrics-addr").unwrap();
    args.drain(m..m + 2);
    let at = args.iter().position(|a| a == "--start-at").unwrap();
    let start_at: f64 = args[at + 1].parse().unwrap();
    let late_secs = 2.5;
    let mut agents: Vec<_> = (0..AGENTS)
        .map(|index| {
            let mut cmd = Command::new(WSHERD);
            cmd.args(&args)
                .env("JOB_COMPLETION_INDEX", index.to_string());
            if index == AGENTS - 1 {
                let wait = start_at + late_secs - wsherd::sys::unix_now();
                std::thread::sleep(Duration::from_secs_f64(wait.max(0.0)));
            }
            let log = c
                .dir
                .join("logs")
                .join(format!("{}.log", pod_name(job, index)));
            run_logged(cmd, &log)
        })
        .collect();
    let running: Vec<Value> = (0..AGENTS).map(|i| pod(job, i, "Running", None)).collect();
    c.set_pods(&running);
    for (index, agent) in agents.iter_mut().enumerate() {
        let code = wait_bounded(agent, Duration::from_secs(30), "an agent");
        assert_eq!(code, 0, "agent {}", index + 1);
    }
    let done: Vec<Value> = (0..AGENTS)
        .map(|i| pod(job, i, "Succeeded", Some(0)))
        .collect();
    c.set_pods(&done);
    let code = wait_bounded(&mut launcher, LAUNCH_LIMIT, "the launcher");
    let out = read(&launch_log);
    assert_eq!(code, 0, "{out}");
    drop(server);

    let late_log = read(&c.dir.join("logs").join(format!("{}.log", pod_name(job, 2))));
    assert!(late_log.contains("after --start-at"), "{late_log}");
    let m = merged(&c.path("merged.json"));
    let a = &m["agents"];
    assert_eq!(a["reported"], json!([1, 2, 3]), "{a}");
    assert_eq!(a["start_at_unix"].as_f64(), Some(start_at));
    let late = a["late"].as_array().unwrap();
    assert_eq!(late.len(), 1, "only the third agent is late: {a}");
    assert_eq!(late[0]["agent"], 3);
    let secs = late[0]["secs"].as_f64().unwrap();
    assert!(
        (late_secs - 0.1..late_secs + 1.5).contains(&secs),
        "late by {secs} s"
    );
    assert_eq!(m["connections"]["established"], 30);
    assert!(out.contains("LATE agent 3/3: started"), "{out}");
}

#[test]
fn dry_run_prints_the_objects_and_calls_no_kubectl() {
    let c = Cluster::succeeded("t-dry");
    let out = c.launch(&["--dry-run"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(c.calls().is_empty(), "{:?}", c.calls());
    assert!(out.stdout.starts_with("---\n"), "{}", out.stdout);
    let objects = parse_yaml(&out.stdout);
    assert_eq!(objects.len(), 1);
    assert_eq!(job_of(&objects)["spec"]["completions"], 3);
}

/// The Kubernetes versions the manifests are checked against: the first with
/// per-index backoff limits (`backoffLimitPerIndex`, beta and on by default),
/// and the newest the validator knows.
const KUBERNETES_VERSIONS: &[&str] = &["1.29.0", "1.37.0"];

/// `kubernetes-validate --strict` (the API's OpenAPI schemas, offline; no
/// unknown field passes) on `files` for each version: Err with its output.
fn kubernetes_validate(files: &[PathBuf]) -> Result<(), String> {
    for version in KUBERNETES_VERSIONS {
        let out = Command::new("python3")
            .args([
                "-m",
                "kubernetes_validate",
                "--strict",
                "--no-warn",
                "-k",
                version,
            ])
            .args(files)
            .stdin(Stdio::null())
            .output()
            .expect("python3 runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        if stderr.contains("No module named kubernetes_validate") {
            panic!(
                "kubernetes-validate is not installed: run scripts/setup-test-deps.sh \
                 (it installs the pinned version from PyPI)"
            );
        }
        if !out.status.success() {
            return Err(format!(
                "Kubernetes {version}: {}{stderr}",
                String::from_utf8_lossy(&out.stdout)
            ));
        }
    }
    Ok(())
}

/// `wsherd k8s run ARGS --dry-run`'s YAML, written to `dir/name`.
fn render(dir: &Path, name: &str, args: &[&str]) -> PathBuf {
    let mut all = vec!["k8s", "run"];
    all.extend_from_slice(args);
    all.push("--dry-run");
    let out = support::run_bin(&all, Duration::from_secs(30));
    assert_eq!(out.code, Some(0), "{all:?}: {out:?}");
    let path = dir.join(name);
    std::fs::write(&path, &out.stdout).unwrap();
    path
}

#[test]
fn the_rendered_manifests_validate_against_the_kubernetes_api_schemas() {
    let dir = scratch("validate");
    let data = dir.join("users.csv");
    std::fs::write(&data, "user,token\nann,t1\nbob,t2\n").unwrap();
    let data = data.display().to_string();
    let plain = render(
        &dir,
        "plain.yaml",
        &[
            "ws://echo:9000/",
            "-c",
            "10k",
            "-d",
            "1m",
            "--rate",
            "20k",
            "--agents",
            "4",
            "--pack",
        ],
    );
    let host = render(
        &dir,
        "host-network.yaml",
        &[
            "ws://echo:9000/",
            "-c",
            "1000",
            "--agents",
            "2",
            "--host-network",
            "--k8s-namespace",
            "load",
            "--image",
            "registry.example/wsherd:0.1.0",
        ],
    );
    let with_data = render(
        &dir,
        "data.yaml",
        &[
            "ws://echo:9000/chat?token={data.token}",
            "--data",
            &data,
            "--agents",
            "3",
        ],
    );
    let objects = parse_yaml(&read(&with_data));
    assert_eq!(objects[0]["kind"], "ConfigMap", "{objects:?}");
    assert_eq!(
        objects[0]["data"]["users.csv"],
        "user,token\nann,t1\nbob,t2\n"
    );
    let args = agent_args(job_of(&objects));
    assert!(
        has_pair(&args, "--data", "/etc/wsherd/users.csv"),
        "{args:?}"
    );
    let files = [plain, host, with_data];
    kubernetes_validate(&files).unwrap_or_else(|e| panic!("{e}"));

    // The validator does refuse what the API would: a field the Job has not.
    let bad = dir.join("bad.yaml");
    std::fs::write(
        &bad,
        read(&files[0]).replace("\"completionMode\":", "\"completionModes\":"),
    )
    .unwrap();
    let e = kubernetes_validate(&[bad]).expect_err("an unknown field is refused");
    assert!(e.contains("completionModes"), "{e}");
}

/// deploy/kubernetes/job.yaml is what the launcher renders for its command:
/// `--start-at`'s value (the clock at rendering) is left out of the
/// comparison. After a change of the manifests, regenerate with
/// WSHERD_BLESS=1 and review the diff.
#[test]
fn the_example_job_is_what_the_launcher_renders() {
    const GOLDEN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/kubernetes/job.yaml");
    let out = support::run_bin(
        &[
            "k8s",
            "run",
            "ws://wsherd-serve:9000/",
            "-c",
            "20k",
            "-d",
            "1m",
            "--rate",
            "20k",
            "--agents",
            "2",
            "--job-name",
            "wsherd-example",
            "--dry-run",
        ],
        Duration::from_secs(30),
    );
    assert_eq!(out.code, Some(0), "{out:?}");
    if std::env::var_os("WSHERD_BLESS").is_some() {
        std::fs::write(GOLDEN, &out.stdout).unwrap();
    }
    let want = read(Path::new(GOLDEN));
    assert_eq!(
        without_start_at(&out.stdout),
        without_start_at(&want),
        "deploy/kubernetes/job.yaml differs from `wsherd k8s run ... --dry-run` \
         (WSHERD_BLESS=1 regenerates it)"
    );
}

/// The YAML with the value after `- "--start-at"` written as `T`.
fn without_start_at(yaml: &str) -> String {
    let mut out = Vec::new();
    let mut next = false;
    for line in yaml.lines() {
        if next {
            let indent = &line[..line.len() - line.trim_start().len()];
            let value = line.trim_start().trim_start_matches("- ").trim_matches('"');
            assert!(value.parse::<u64>().is_ok(), "--start-at {value}");
            out.push(format!("{indent}- \"T\""));
        } else {
            out.push(line.to_string());
        }
        next = line.trim() == "- \"--start-at\"";
    }
    assert!(
        out.iter().any(|l| l.ends_with("- \"T\"")),
        "no --start-at in {yaml}"
    );
    out.join("\n")
}

#[test]
fn the_deploy_manifests_validate_against_the_kubernetes_api_schemas() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/kubernetes");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    files.sort();
    let names: Vec<_> = files
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["job.yaml", "serve.yaml"]);
    kubernetes_validate(&files).unwrap_or_else(|e| panic!("{e}"));
    // The example's target is the Service serve.yaml creates, on its port.
    let serve = parse_yaml(&read(&dir.join("serve.yaml")));
    let service = serve.iter().find(|o| o["kind"] == "Service").unwrap();
    assert_eq!(service["metadata"]["name"], "wsherd-serve");
    assert_eq!(service["spec"]["ports"][0]["port"], 9000);
    let job = parse_yaml(&read(&dir.join("job.yaml")));
    assert_eq!(agent_args(job_of(&job))[1], "ws://wsherd-serve:9000/");
    for o in serve.iter().chain(&job) {
        let pod = if o["kind"] == "Service" {
            continue;
        } else {
            &o["spec"]["template"]["spec"]
        };
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true, "{o}");
        assert_eq!(pod["securityContext"]["runAsUser"], 10001, "{o}");
    }
}

/// The network namespaces of one simulated Job, deleted when dropped (on a
/// panic too), with the processes started in them.
struct Netns {
    names: Vec<String>,
    children: Vec<std::process::Child>,
}

impl Netns {
    fn ip(args: &[&str]) {
        let out = Command::new("ip")
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("ip (iproute2) runs");
        assert!(
            out.status.success(),
            "ip {}: {} (this test makes network namespaces: it runs as root, as CI does)",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }

    fn add(&mut self, name: &str) {
        let _ = Command::new("ip")
            .args(["netns", "del", name])
            .stderr(Stdio::null())
            .status();
        Netns::ip(&["netns", "add", name]);
        self.names.push(name.to_string());
        Netns::ip(&["-n", name, "link", "set", "lo", "up"]);
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        // Deleting a namespace deletes the veth ends in it, and so their peers.
        for n in &self.names {
            let _ = Command::new("ip").args(["netns", "del", n]).status();
        }
    }
}

/// The Job on this host: `wsherd serve` in a namespace of its own, each agent
/// in its own namespace joined to it by a veth pair, running the command the
/// rendered Job's pods run with `JOB_COMPLETION_INDEX` set; their logs gathered
/// as the launcher gathers them and merged. The merge is the sum of its parts
/// and matches a single process running the same plan.
#[test]
fn the_job_simulated_in_network_namespaces_merges_to_one_run() {
    let _serial = support::serial();
    const N: usize = 2;
    const SERVER: &str = "10.77.0.1";
    let dir = scratch("netns");
    let tag = format!("wsh{}", std::process::id());
    let mut ns = Netns {
        names: Vec::new(),
        children: Vec::new(),
    };
    let server_ns = format!("{tag}s");
    ns.add(&server_ns);
    Netns::ip(&[
        "-n",
        &server_ns,
        "addr",
        "add",
        &format!("{SERVER}/32"),
        "dev",
        "lo",
    ]);
    let agent_ns: Vec<String> = (1..=N).map(|i| format!("{tag}a{i}")).collect();
    for (k, a) in agent_ns.iter().enumerate() {
        let i = k + 1;
        ns.add(a);
        let (vs, va) = (format!("{tag}s{i}"), format!("{tag}a{i}"));
        Netns::ip(&[
            "link", "add", &vs, "netns", &server_ns, "type", "veth", "peer", "name", &va, "netns",
            a,
        ]);
        Netns::ip(&[
            "-n",
            &server_ns,
            "addr",
            "add",
            &format!("10.77.{i}.1/24"),
            "dev",
            &vs,
        ]);
        Netns::ip(&["-n", &server_ns, "link", "set", &vs, "up"]);
        Netns::ip(&[
            "-n",
            a,
            "addr",
            "add",
            &format!("10.77.{i}.2/24"),
            "dev",
            &va,
        ]);
        Netns::ip(&["-n", a, "link", "set", &va, "up"]);
        Netns::ip(&[
            "-n",
            a,
            "route",
            "add",
            "default",
            "via",
            &format!("10.77.{i}.1"),
        ]);
    }
    let server = Command::new("ip")
        .args(["netns", "exec", &server_ns, WSHERD, "serve"])
        .args(["--addr", &format!("{SERVER}:9000"), "--shards", "1", "-q"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .expect("wsherd serve in its namespace");
    ns.children.push(server);
    // Until the server answers from every agent's namespace.
    let t0 = Instant::now();
    for a in &agent_ns {
        while !Command::new("ip")
            .args(["netns", "exec", a, "bash", "-c"])
            .arg(format!("exec 3<>/dev/tcp/{SERVER}/9000"))
            .stderr(Stdio::null())
            .status()
            .unwrap()
            .success()
        {
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "the server never answered from {a}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    // The pods' command, as the Job renders it.
    let plan = ["-c", "40", "-d", "3s", "--rate", "1000"];
    let url = format!("ws://{SERVER}:9000/");
    let mut render_args = vec![url.as_str()];
    render_args.extend_from_slice(&plan);
    render_args.extend_from_slice(&["--agents", "2", "--start-margin", "2s", "--job-name", "sim"]);
    let rendered = render(&dir, "job.yaml", &render_args);
    let args = agent_args(job_of(&parse_yaml(&read(&rendered))));
    assert!(has_pair(&args, "--agent", "job/2"), "{args:?}");
    let mut pods: Vec<_> = agent_ns
        .iter()
        .enumerate()
        .map(|(index, a)| {
            let mut cmd = Command::new("ip");
            cmd.args(["netns", "exec", a, WSHERD])
                .args(&args)
                .env("JOB_COMPLETION_INDEX", index.to_string());
            run_logged(cmd, &dir.join(format!("pod-{index}.log")))
        })
        .collect();
    for (index, p) in pods.iter_mut().enumerate() {
        let code = wait_bounded(p, Duration::from_secs(40), "an agent");
        assert_eq!(code, 0, "{}", read(&dir.join(format!("pod-{index}.log"))));
    }
    let parts: Vec<RunResults> = (0..N)
        .map(|index| {
            wsherd::k8s::results_from_log(&read(&dir.join(format!("pod-{index}.log"))))
                .unwrap_or_else(|e| panic!("agent {}: {e}", index + 1))
        })
        .collect();
    let names: Vec<String> = (1..=N).map(|a| format!("agent {a}")).collect();
    wsherd::merge::check_parts(&parts, &names).unwrap();
    let merged = wsherd::merge::merge(&parts, wsherd::merge::Timing::Parallel);
    // The merge is the sum of its parts.
    assert_eq!(
        merged.connections.established,
        parts.iter().map(|p| p.connections.established).sum::<u64>()
    );
    assert_eq!(
        merged.messages.sent,
        parts.iter().map(|p| p.messages.sent).sum::<u64>()
    );
    assert_eq!(
        merged.latency.rtt.count,
        parts.iter().map(|p| p.latency.rtt.count).sum::<u64>()
    );
    // Bucket by bucket: the merged histogram is the parts' histograms added.
    let whole = hdr(&merged.latency.rtt.hdr);
    assert!(whole.len() > 2000, "{} round trips", whole.len());
    assert!(
        whole == rtt_sum(&parts),
        "the merged histogram is not the sum of the parts"
    );
    for p in &parts {
        assert_eq!(p.connections.established, 20, "each agent its share");
    }

    // One process, the same plan, from an agent's namespace.
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", &agent_ns[0], WSHERD, "run", &url])
        .args(plan)
        .args(["--json", "-", "-q"]);
    let log = dir.join("single.log");
    let mut single = run_logged(cmd, &log);
    let code = wait_bounded(&mut single, Duration::from_secs(40), "the single run");
    assert_eq!(code, 0, "{}", read(&log));
    let one = wsherd::k8s::results_from_log(&read(&log)).unwrap();
    assert_eq!(merged.connections.established, 40);
    assert_eq!(one.connections.established, merged.connections.established);
    let (a, b) = (merged.messages.sent as f64, one.messages.sent as f64);
    assert!(b > 2000.0, "the single run sent {b}");
    assert!(
        (a - b).abs() <= b * 0.01,
        "open loop at the same rate: merged sent {a}, one process {b}"
    );
}
