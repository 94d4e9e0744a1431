//! Each runtime, end to end for a moment: the server starts as a child, the client
//! connects, round trips happen, and the result line carries every figure.
//!
//! Needs two CPUs (client on 0, server on 1), as the benchmark itself.

use std::process::Command;

fn run(runtime: &str, conns: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_runtimes"))
        .args([
            runtime, "--conns", conns, "--secs", "0.3", "--warmup", "0.1",
        ])
        .output()
        .expect("run the binary");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{runtime}: {}\n{stdout}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .find(|l| l.starts_with("result "))
        .unwrap_or_else(|| panic!("{runtime}: no result line in\n{stdout}"))
        .to_owned()
}

fn value(line: &str, key: &str) -> f64 {
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
        .unwrap_or_else(|| panic!("no {key} in {line}"))
        .parse()
        .unwrap()
}

#[test]
fn every_runtime_round_trips() {
    for rt in ["monoio", "tokio", "glommio"] {
        for conns in ["1", "10"] {
            let line = run(rt, conns);
            assert!(
                line.contains(&format!("runtime={rt} conns={conns} size=64 ")),
                "{line}"
            );
            assert!(value(&line, "round_trips") > 0.0, "{line}");
            assert!(value(&line, "client_cpu_us_per_rt") > 0.0, "{line}");
            assert!(value(&line, "server_cpu_us_per_rt") >= 0.0, "{line}");
            assert!(value(&line, "total_round_trips") >= value(&line, "round_trips"));
        }
    }
}
