//! Records what the benchmark was built with, for its report: the compiler's
//! version and the locked versions of the crates whose code is measured.

use std::env;
use std::fs;
use std::path::Path;
use std::process::Command;

/// The crates whose versions the report prints, in this order.
const CRATES: &[&str] = &["rustls", "ring", "aws-lc-rs", "aws-lc-sys"];

fn main() {
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let version = Command::new(&rustc)
        .arg("-V")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|| "rustc (unknown version)".into());
    println!("cargo:rustc-env=TLS_PROVIDER_RUSTC={version}");

    let lock_path = Path::new(&env::var("CARGO_MANIFEST_DIR").unwrap()).join("Cargo.lock");
    println!("cargo:rerun-if-changed={}", lock_path.display());
    println!("cargo:rerun-if-changed=build.rs");
    let lock = fs::read_to_string(&lock_path).unwrap_or_default();
    let mut found = Vec::new();
    for name in CRATES {
        // A package's entry: `name = "…"` with its `version = "…"` on the next line.
        let mut lines = lock.lines();
        let mut version = String::from("?");
        while let Some(line) = lines.next() {
            if line == format!("name = \"{name}\"") {
                if let Some(v) = lines.next().and_then(|l| l.strip_prefix("version = ")) {
                    version = v.trim_matches('"').to_string();
                }
                break;
            }
        }
        found.push(format!("{name} {version}"));
    }
    println!("cargo:rustc-env=TLS_PROVIDER_CRATES={}", found.join(", "));
}
