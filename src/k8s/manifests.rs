//! The Kubernetes objects of a distributed run, as data: an Indexed Job whose
//! pods are the agents, and a ConfigMap with the files the run reads.
//!
//! Built as `serde_json` values (Kubernetes takes JSON and YAML alike) and
//! printed as YAML by [`yaml`] for people (`--dry-run`, `deploy/kubernetes/`).
//! The YAML printer is a few lines written here: the maintained YAML crates
//! parse more than they print, the one that printed (serde_yaml) is
//! unmaintained, and block YAML with every string double-quoted the JSON way is
//! exact for any value.
//!
//! Never imports the launcher (`k8s/mod.rs`) or anything above `results`.

use serde_json::{json, Value};

/// The container port of each agent's Prometheus endpoint (`--metrics-addr`).
pub const METRICS_PORT: u16 = 9102;
/// Where the ConfigMap's files are mounted in each agent.
pub const FILES_DIR: &str = "/etc/wsherd";

/// What the objects are made from.
#[derive(Debug, Clone, PartialEq)]
pub struct Spec {
    /// The Job's name (and the prefix of the other objects' names).
    pub name: String,
    pub namespace: String,
    pub image: String,
    /// Agents: the Job's completions and parallelism.
    pub agents: u64,
    /// Each agent's `wsherd` arguments (`run ... --agent job/N --start-at T`).
    pub args: Vec<String>,
    /// The pod's memory request and limit (bytes), sized from the agent's
    /// connections; its CPU request (cores: the agent's shards).
    pub memory_bytes: u64,
    pub cpus: u64,
    /// Agents on the nodes' network (no pod sysctls then: they would be the node's).
    pub host_network: bool,
    /// Several agents may share a node (default: one per node).
    pub pack: bool,
    /// Files for `FILES_DIR`: (key, content).
    pub files: Vec<(String, String)>,
}

/// The labels every object of one run carries, to find and delete them.
pub fn labels(name: &str) -> Value {
    json!({ "app.kubernetes.io/name": "wsherd", "wsherd.run": name })
}

/// The sysctls a pod may set itself (namespaced and "safe" in Kubernetes): the
/// whole ephemeral port range, and closed sockets' ports back soon. The others
/// of `tuning/99-wsherd.conf` are the node's (README: Running on Kubernetes).
pub const POD_SYSCTLS: &[(&str, &str)] = &[
    ("net.ipv4.ip_local_port_range", "10000 65535"),
    ("net.ipv4.tcp_fin_timeout", "15"),
];

/// The objects, in the order they are created.
pub fn objects(s: &Spec) -> Vec<Value> {
    let mut out = Vec::new();
    if !s.files.is_empty() {
        out.push(config_map(s));
    }
    out.push(job(s));
    out
}

/// The name of the ConfigMap with the run's files.
pub fn files_name(name: &str) -> String {
    format!("{name}-files")
}

fn config_map(s: &Spec) -> Value {
    let data: serde_json::Map<String, Value> = s
        .files
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": files_name(&s.name),
            "namespace": s.namespace,
            "labels": labels(&s.name),
        },
        "data": data,
    })
}

fn job(s: &Spec) -> Value {
    let mut pod_labels = labels(&s.name);
    pod_labels["wsherd.role"] = json!("agent");
    let mem_mi = s.memory_bytes.div_ceil(1 << 20).max(64);
    let mut container = json!({
        "name": "wsherd",
        "image": s.image,
        "args": s.args,
        "ports": [{ "name": "metrics", "containerPort": METRICS_PORT }],
        "resources": {
            "requests": { "cpu": s.cpus.to_string(), "memory": format!("{mem_mi}Mi") },
            "limits": { "memory": format!("{mem_mi}Mi") },
        },
        "securityContext": {
            "allowPrivilegeEscalation": false,
            "capabilities": { "drop": ["ALL"] },
            "readOnlyRootFilesystem": true,
        },
    });
    let mut pod_security = json!({
        "runAsNonRoot": true,
        "runAsUser": 10001,
        "runAsGroup": 10001,
        "seccompProfile": { "type": "RuntimeDefault" },
    });
    if !s.host_network {
        pod_security["sysctls"] = Value::Array(
            POD_SYSCTLS
                .iter()
                .map(|(k, v)| json!({ "name": k, "value": v }))
                .collect(),
        );
    }
    let mut pod = json!({
        "restartPolicy": "Never",
        "hostNetwork": s.host_network,
        "securityContext": pod_security,
        "containers": [],
    });
    if s.host_network {
        // Names of cluster services still resolve from the node's network.
        pod["dnsPolicy"] = json!("ClusterFirstWithHostNet");
    }
    if !s.pack {
        pod["affinity"] = json!({
            "podAntiAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": [{
                    "labelSelector": { "matchLabels": { "wsherd.run": s.name } },
                    "topologyKey": "kubernetes.io/hostname",
                }],
            },
        });
    }
    if !s.files.is_empty() {
        container["volumeMounts"] =
            json!([{ "name": "files", "mountPath": FILES_DIR, "readOnly": true }]);
        pod["volumes"] = json!([{ "name": "files", "configMap": { "name": files_name(&s.name) } }]);
    }
    pod["containers"] = json!([container]);
    json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": s.name,
            "namespace": s.namespace,
            "labels": labels(&s.name),
        },
        "spec": {
            "completionMode": "Indexed",
            "completions": s.agents,
            "parallelism": s.agents,
            // An agent that failed is not run again (its share would start late
            // and measure another run), and the others go on: the launcher names
            // it instead (per-index limits: Kubernetes 1.29 and later).
            "backoffLimitPerIndex": 0,
            "ttlSecondsAfterFinished": 3600,
            "template": {
                "metadata": {
                    "labels": pod_labels,
                    "annotations": {
                        "prometheus.io/scrape": "true",
                        "prometheus.io/port": METRICS_PORT.to_string(),
                        "prometheus.io/path": "/metrics",
                    },
                },
                "spec": pod,
            },
        },
    })
}

/// `values` as a YAML stream (documents separated by `---`), block style, every
/// string double-quoted as JSON quotes it (which YAML reads the same).
pub fn yaml(values: &[Value]) -> String {
    let mut out = String::new();
    for v in values {
        out.push_str("---\n");
        block(&mut out, v, 0);
    }
    out
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => Value::String(s.clone()).to_string(),
        Value::Array(a) if a.is_empty() => "[]".to_string(),
        Value::Object(o) if o.is_empty() => "{}".to_string(),
        other => other.to_string(),
    }
}

fn is_block(v: &Value) -> bool {
    matches!(v, Value::Array(a) if !a.is_empty()) || matches!(v, Value::Object(o) if !o.is_empty())
}

/// Writes `v` (a map or a list) at `indent`.
fn block(out: &mut String, v: &Value, indent: usize) {
    let pad = " ".repeat(indent);
    match v {
        Value::Object(map) => {
            for (k, val) in map {
                let key = Value::String(k.clone()).to_string();
                if is_block(val) {
                    out.push_str(&format!("{pad}{key}:\n"));
                    block(out, val, indent + 2);
                } else {
                    out.push_str(&format!("{pad}{key}: {}\n", scalar(val)));
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                if is_block(item) {
                    // "- " then the first line of the item's block on the same line.
                    let mut inner = String::new();
                    block(&mut inner, item, indent + 2);
                    let inner = inner.trim_start_matches(' ');
                    out.push_str(&format!("{pad}- {inner}"));
                } else {
                    out.push_str(&format!("{pad}- {}\n", scalar(item)));
                }
            }
        }
        other => out.push_str(&format!("{pad}{}\n", scalar(other))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> Spec {
        Spec {
            name: "wsherd-1".into(),
            namespace: "load".into(),
            image: "wsherd:0.1.0".into(),
            agents: 3,
            args: vec![
                "run".into(),
                "ws://echo:9000/".into(),
                "--agent".into(),
                "job/3".into(),
            ],
            memory_bytes: 300 << 20,
            cpus: 2,
            host_network: false,
            pack: false,
            files: vec![("data.csv".into(), "user\nann\n\"bob\"\n".into())],
        }
    }

    #[test]
    fn an_indexed_job_of_one_agent_per_node() {
        let objs = objects(&spec());
        assert_eq!(objs.len(), 2);
        assert_eq!(objs[0]["kind"], "ConfigMap");
        let job = &objs[1];
        assert_eq!(job["spec"]["completionMode"], "Indexed");
        assert_eq!(job["spec"]["completions"], 3);
        assert_eq!(job["spec"]["parallelism"], 3);
        let pod = &job["spec"]["template"]["spec"];
        assert_eq!(pod["containers"][0]["args"][3], "job/3");
        assert_eq!(
            pod["containers"][0]["resources"]["requests"]["memory"],
            "300Mi"
        );
        assert_eq!(pod["containers"][0]["resources"]["requests"]["cpu"], "2");
        assert!(pod["affinity"]["podAntiAffinity"].is_object());
        assert_eq!(
            pod["securityContext"]["sysctls"][0]["name"],
            "net.ipv4.ip_local_port_range"
        );
        assert_eq!(pod["volumes"][0]["configMap"]["name"], "wsherd-1-files");
        // On the node's network: no pod sysctls, cluster DNS kept.
        let mut s = spec();
        s.host_network = true;
        s.pack = true;
        let job = &objects(&s)[1];
        let pod = &job["spec"]["template"]["spec"];
        assert!(pod["securityContext"].get("sysctls").is_none());
        assert_eq!(pod["dnsPolicy"], "ClusterFirstWithHostNet");
        assert!(pod.get("affinity").is_none());
    }

    /// The YAML printer's form (a YAML parser reads it back as the same values
    /// in tests/k8s.rs, where Python's is at hand).
    #[test]
    fn the_yaml_is_block_style_with_json_strings() {
        let objs = objects(&spec());
        let text = yaml(&objs);
        assert!(text.starts_with("---\n\"apiVersion\": \"v1\"\n"), "{text}");
        assert!(
            text.contains("\"data.csv\": \"user\\nann\\n\\\"bob\\\"\\n\""),
            "{text}"
        );
        // A map in a list: its first key on the dash's line, the others under it.
        assert!(
            text.contains("\"containers\":\n        - \"args\":\n            - \"run\"\n"),
            "{text}"
        );
        assert!(
            text.contains("\n          \"name\": \"wsherd\"\n"),
            "{text}"
        );
        assert_eq!(text.matches("---\n").count(), 2);
    }
}
