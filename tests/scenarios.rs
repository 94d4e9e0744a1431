//! Scenario files: the shipped examples load, and a file's scenarios run one after
//! another or side by side, each reported on its own and in a lossless total.

use std::process::Command;
use std::time::{Duration, Instant};

#[test]
fn shipped_examples_are_valid() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/scenarios");
    let mut seen = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let f = path.display().to_string();
        let file = wsherd::scenario::load(&path, &[]).unwrap_or_else(|e| panic!("{f}: {e}"));
        assert!(!file.scenarios.is_empty(), "{f}");
        seen.push(path.file_name().unwrap().to_string_lossy().into_owned());
    }
    for shipped in [
        "k6-seed.toml",
        "quick.toml",
        "jsonrpc.toml",
        "push.toml",
        "conversation.toml",
        "socketio.toml",
        "graphql.toml",
    ] {
        assert!(
            seen.iter().any(|s| s == shipped),
            "{shipped} missing: {seen:?}"
        );
    }
    let seed = wsherd::scenario::load(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/scenarios/k6-seed.toml"),
        &[],
    )
    .unwrap();
    let names: Vec<&str> = seed.scenarios.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "direct-3-messages",
            "broadcast-100-messages",
            "broadcast-single-message"
        ]
    );
    assert_eq!(seed.scenarios[0].config.plan.connections, 80);
    assert_eq!(seed.scenarios[1].config.plan.connections, 200);
    assert_eq!(seed.scenarios[2].config.plan.connections, 750);
}

fn run_file(toml: &str) -> serde_json::Value {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("s.toml");
    std::fs::write(&file, toml).unwrap();
    let json = dir.path().join("out.json");
    let t0 = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_wsherd"))
        .args(["run", "-q", "--scenario"])
        .arg(&file)
        .arg("--json")
        .arg(&json)
        .output()
        .unwrap();
    assert!(t0.elapsed() < Duration::from_secs(30));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("=== scenario a ===")
            && stdout.contains("=== scenario b ===")
            && stdout.contains("=== total"),
        "{stdout}"
    );
    serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap()
}

fn check_total(doc: &serde_json::Value) {
    let parts = doc["scenarios"].as_array().unwrap();
    assert_eq!(parts.len(), 2);
    let sum = |path: &[&str]| -> u64 {
        parts
            .iter()
            .map(|p| {
                path.iter()
                    .fold(&p["results"], |v, k| &v[*k])
                    .as_u64()
                    .unwrap()
            })
            .sum()
    };
    let total = &doc["total"];
    for path in [
        &["messages", "sent"][..],
        &["messages", "received"],
        &["connections", "established"],
        &["latency", "rtt", "count"],
    ] {
        let t = path.iter().fold(total, |v, k| &v[*k]).as_u64().unwrap();
        assert_eq!(t, sum(path), "total {path:?}");
    }
    let t = &total["messages"];
    assert_eq!(
        t["sent"],
        t["received"].as_u64().unwrap()
            + t["failed"].as_u64().unwrap()
            + t["in_flight_at_stop"].as_u64().unwrap()
    );
}

#[test]
fn sequential_and_parallel_scenarios_total_up() {
    let body = "duration = \"1s\"\n[[scenario]]\nname = \"a\"\nconnections = 5\n[[scenario]]\nname = \"b\"\nworkload = \"ping\"\nconnections = 3\n";
    let seq = run_file(&format!("mode = \"sequential\"\n{body}"));
    assert_eq!(seq["mode"], "sequential");
    check_total(&seq);
    assert_eq!(seq["total"]["config"]["duration_secs"], 2.0);
    let par = run_file(&format!("mode = \"parallel\"\n{body}"));
    assert_eq!(par["mode"], "parallel");
    check_total(&par);
    assert_eq!(par["total"]["config"]["duration_secs"], 1.0);
    assert_eq!(par["total"]["config"]["connections"], 8);
}

#[test]
fn other_flags_do_not_go_with_a_scenario_file() {
    let out = Command::new(env!("CARGO_BIN_EXE_wsherd"))
        .args([
            "run",
            "--scenario",
            "scripts/scenarios/quick.toml",
            "-c",
            "5",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("does not go with --scenario"), "{err}");
    let out = Command::new(env!("CARGO_BIN_EXE_wsherd"))
        .args(["run", "--scenario", "no-such-file.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no-such-file.toml"));
}
