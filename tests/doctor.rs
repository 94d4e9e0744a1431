//! `wsherd doctor` reads the host and gives a verdict per check with the fix; `run`
//! refuses early, with the same words, a plan the host's ports cannot hold.

use std::process::Command;

fn doctor(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_wsherd"))
        .arg("doctor")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn a_small_plan_passes_and_an_impossible_one_fails_with_fixes() {
    let (code, text) = doctor(&["-c", "100"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("open files")
            && text.contains("ephemeral ports")
            && text.contains("io_uring"),
        "{text}"
    );
    assert!(!text.contains("FAIL"), "{text}");
    let (code, text) = doctor(&["-c", "10m", "ws://127.0.0.1:9/"]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("[FAIL] open files"), "{text}");
    assert!(text.contains("[FAIL] ephemeral ports"), "{text}");
    assert!(
        text.contains("fix: ") && text.contains("does not fit"),
        "{text}"
    );
}

#[test]
fn run_refuses_more_connections_per_target_than_ports() {
    let ports = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap();
    let r: Vec<u64> = ports
        .split_whitespace()
        .map(|x| x.parse().unwrap())
        .collect();
    let too_many = (r[1] - r[0] + 2).to_string();
    let cfg = wsherd::engine::Run::from_args([
        "ws://127.0.0.1:9/",
        "-c",
        too_many.as_str(),
        "-d",
        "1s",
        "-q",
    ])
    .unwrap();
    let e = wsherd::run(cfg).unwrap_err().to_string();
    // Whichever limit is hit first (open files on small hosts, else ports), the run
    // is refused before it starts, saying what to change.
    assert!(
        e.contains("ip_local_port_range") || e.contains("open files"),
        "{e}"
    );
}
