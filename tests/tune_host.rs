//! scripts/tune-host.sh against a temporary fake /proc/sys tree (WSHERD_SYSCTL_ROOT)
//! and backup directory (WSHERD_TUNE_STATE): check, apply, idempotence, read-only
//! settings, revert; and `check` against the real /proc/sys, read-only.
//!
//! Nothing here writes to the real /proc/sys: apply and revert only ever run with a
//! fake root, or (the "needs root" test) as an unprivileged user.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const TIMEOUT: Duration = Duration::from_secs(60);
const NOBODY: u32 = 65534;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn script() -> PathBuf {
    repo().join("scripts/tune-host.sh")
}

/// A wanted setting from tuning/99-wsherd.conf.
struct Wanted {
    key: String,
    value: String,
    optional: bool,
}

/// Reads tuning/99-wsherd.conf the way sysctl.d does (the single source of truth).
fn wanted() -> Vec<Wanted> {
    let text = fs::read_to_string(repo().join("tuning/99-wsherd.conf")).unwrap();
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with(';'))
        .map(|l| {
            let (k, v) = l.split_once('=').expect("key = value");
            let k = k.trim();
            Wanted {
                key: k.trim_start_matches('-').to_string(),
                value: normalize(v),
                optional: k.starts_with('-'),
            }
        })
        .collect()
}

fn normalize(v: &str) -> String {
    v.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Values below what the conf wants (tab-separated like the kernel's), except
/// fs.nr_open, which is above it and must be kept. The conntrack key is left out:
/// a host without the module.
const LOW: &[(&str, &str)] = &[
    ("fs.file-max", "100"),
    ("fs.nr_open", "9999999"),
    ("net.ipv4.ip_local_port_range", "40000\t50000"),
    ("net.ipv4.tcp_tw_reuse", "0"),
    ("net.core.somaxconn", "128"),
    ("net.ipv4.tcp_max_syn_backlog", "128"),
    ("net.core.netdev_max_backlog", "1000"),
    ("net.ipv4.tcp_mem", "1\t2\t3"),
    ("net.ipv4.tcp_rmem", "8192\t131072\t65536"),
    ("net.ipv4.tcp_wmem", "8192\t131072\t65536"),
];
const HIGHER_THAN_WANTED: &str = "fs.nr_open";
const CONNTRACK: &str = "net.netfilter.nf_conntrack_max";

struct Fake {
    dir: tempfile::TempDir,
}

impl Fake {
    fn new() -> Fake {
        let dir = tempfile::tempdir().unwrap();
        let fake = Fake { dir };
        for w in wanted() {
            if w.key == CONNTRACK {
                assert!(w.optional, "{CONNTRACK} should be optional (leading '-')");
                continue;
            }
            let low = LOW
                .iter()
                .find(|(k, _)| *k == w.key)
                .unwrap_or_else(|| panic!("add {} to LOW in tests/tune_host.rs", w.key));
            let path = fake.path_of(&w.key);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(&path, format!("{}\n", low.1)).unwrap();
        }
        fake
    }

    fn sysctl_root(&self) -> PathBuf {
        self.dir.path().join("proc/sys")
    }

    fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    fn backup(&self) -> PathBuf {
        self.state().join("sysctl.backup")
    }

    fn path_of(&self, key: &str) -> PathBuf {
        self.sysctl_root().join(key.replace('.', "/"))
    }

    fn get(&self, key: &str) -> String {
        normalize(&fs::read_to_string(self.path_of(key)).unwrap())
    }

    fn snapshot(&self) -> BTreeMap<String, String> {
        LOW.iter()
            .map(|(k, _)| (k.to_string(), self.get(k)))
            .collect()
    }

    fn run(&self, cmd: &str) -> Output {
        self.run_as(cmd, None)
    }

    fn run_as(&self, cmd: &str, uid: Option<u32>) -> Output {
        let envs = [
            ("WSHERD_SYSCTL_ROOT", self.sysctl_root()),
            ("WSHERD_TUNE_STATE", self.state()),
        ];
        run_script(cmd, &envs, uid)
    }
}

/// Runs the script with bash (optionally as another user, via setpriv), bounded in time.
fn run_script(cmd: &str, envs: &[(&str, PathBuf)], uid: Option<u32>) -> Output {
    let mut c = match uid {
        None => Command::new("bash"),
        Some(uid) => {
            let mut c = Command::new("setpriv");
            c.arg(format!("--reuid={uid}"))
                .arg(format!("--regid={uid}"))
                .args(["--clear-groups", "--", "bash"]);
            c
        }
    };
    c.arg(script()).arg(cmd);
    for var in [
        "WSHERD_SYSCTL_ROOT",
        "WSHERD_TUNE_STATE",
        "WSHERD_TUNE_CONF",
        "WSHERD_TUNE_LIMITS",
    ] {
        c.env_remove(var);
    }
    for (k, v) in envs {
        c.env(k, v);
    }
    c.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().expect("spawn bash");
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        out.read_to_end(&mut v).unwrap();
        v
    });
    let err_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        err.read_to_end(&mut v).unwrap();
        v
    });
    let deadline = Instant::now() + TIMEOUT;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            child.kill().ok();
            child.wait().ok();
            panic!("tune-host.sh {cmd} did not finish in {TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Output {
        status,
        stdout: out_t.join().unwrap(),
        stderr: err_t.join().unwrap(),
    }
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}--- stderr\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The line of the output that is about `key` (setting names are unique prefixes
/// after the column/verb).
fn line_of<'a>(out: &'a str, key: &str) -> &'a str {
    out.lines()
        .find(|l| l.split_whitespace().any(|w| w.trim_end_matches(':') == key))
        .unwrap_or_else(|| panic!("no line for {key} in:\n{out}"))
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

fn have_setpriv() -> bool {
    Command::new("setpriv")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn check_reports_change_for_low_values_and_changes_nothing() {
    let fake = Fake::new();
    let before = fake.snapshot();
    let o = fake.run("check");
    assert!(o.status.success(), "{}", text(&o));
    let out = stdout(&o);
    for w in wanted() {
        let line = line_of(&out, &w.key);
        if w.key == CONNTRACK {
            assert!(line.contains("SKIP"), "{line}");
        } else if w.key == HIGHER_THAN_WANTED {
            assert!(line.ends_with("OK"), "{line}");
        } else {
            assert!(line.contains(&format!("CHANGE -> {}", w.value)), "{line}");
        }
    }
    assert!(out.contains("nofile (soft)"), "{out}");
    assert!(out.contains("memlock (hard)"), "{out}");
    assert_eq!(fake.snapshot(), before, "check must not write");
    assert!(
        !fake.state().exists(),
        "check must not create the state dir"
    );
}

#[test]
fn apply_sets_wanted_values_backs_up_is_idempotent_and_revert_restores() {
    let fake = Fake::new();
    let original = fake.snapshot();

    let o = fake.run("apply");
    assert!(o.status.success(), "{}", text(&o));
    let out = stdout(&o);
    for w in wanted() {
        if w.key == CONNTRACK {
            assert!(line_of(&out, CONNTRACK).starts_with("skipped"), "{out}");
            assert!(!fake.path_of(CONNTRACK).exists());
        } else if w.key == HIGHER_THAN_WANTED {
            // Already more generous than wanted: never lowered.
            assert_eq!(fake.get(&w.key), original[&w.key]);
        } else {
            assert_eq!(fake.get(&w.key), w.value, "{}\n{out}", w.key);
        }
    }
    assert!(out.contains("0 cannot change"), "{out}");

    // The backup holds the values from before apply.
    let backup = fs::read_to_string(fake.backup()).unwrap();
    for (k, v) in &original {
        assert!(
            backup.lines().any(|l| l == format!("{k} = {v}")),
            "{k} = {v} not in backup:\n{backup}"
        );
    }

    // A second apply changes nothing and keeps the first backup.
    let applied = fake.snapshot();
    let o = fake.run("apply");
    assert!(o.status.success(), "{}", text(&o));
    let out = stdout(&o);
    assert!(out.contains("apply: 0 changed"), "{out}");
    assert!(!out.contains("changed        "), "{out}");
    assert_eq!(fake.snapshot(), applied);
    assert_eq!(fs::read_to_string(fake.backup()).unwrap(), backup);

    // check now says everything is as wanted.
    let o = fake.run("check");
    assert!(o.status.success(), "{}", text(&o));
    assert!(!stdout(&o).contains("CHANGE"), "{}", text(&o));

    // revert restores the original values and moves the backup aside.
    let o = fake.run("revert");
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(fake.snapshot(), original, "{}", text(&o));
    assert!(!fake.backup().exists());
    assert!(fake.state().join("sysctl.backup.reverted").exists());

    // Nothing left to revert: a clear error.
    let o = fake.run("revert");
    assert!(!o.status.success(), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("no backup"),
        "{}",
        text(&o)
    );
}

/// Makes the fake tree (all but `ro_key`) and state dir writable by `uid`, and `ro_key`
/// root-owned 0444, so that as `uid` it is read-only as /proc/sys is in a container.
fn hand_over(fake: &Fake, uid: u32, ro_key: &str) {
    fn walk(p: &Path, uid: u32) {
        std::os::unix::fs::chown(p, Some(uid), Some(uid)).unwrap();
        if p.is_dir() {
            for e in fs::read_dir(p).unwrap() {
                walk(&e.unwrap().path(), uid);
            }
        }
    }
    fs::set_permissions(fake.dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    fs::create_dir_all(fake.state()).unwrap();
    walk(&fake.dir.path().join("proc"), uid);
    walk(&fake.state(), uid);
    std::os::unix::fs::chown(fake.path_of(ro_key), Some(0), Some(0)).unwrap();
}

#[test]
fn read_only_setting_is_reported_not_fatal() {
    const RO: &str = "net.core.somaxconn";
    let fake = Fake::new();
    let original = fake.snapshot();
    fs::set_permissions(fake.path_of(RO), fs::Permissions::from_mode(0o444)).unwrap();
    // Root writes through 0444: run the script as nobody, with the rest handed over.
    let uid = if is_root() {
        if !have_setpriv() {
            eprintln!("skipped: running as root and setpriv is not installed");
            return;
        }
        hand_over(&fake, NOBODY, RO);
        Some(NOBODY)
    } else {
        None
    };

    let o = fake.run_as("check", uid);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        line_of(&stdout(&o), RO).contains("(read-only here)"),
        "{}",
        text(&o)
    );

    let o = fake.run_as("apply", uid);
    assert!(o.status.success(), "{}", text(&o));
    let out = stdout(&o);
    assert!(
        line_of(&out, RO).starts_with("CANNOT CHANGE"),
        "{}",
        text(&o)
    );
    assert!(out.contains("1 cannot change"), "{out}");
    assert_eq!(fake.get(RO), original[RO]);
    // The others were changed all the same.
    assert_eq!(fake.get("net.ipv4.tcp_tw_reuse"), "1");
    assert_eq!(fake.get("net.ipv4.ip_local_port_range"), "10000 65535");
    assert!(fake.backup().exists());

    // Idempotent with the read-only one too, and revert restores the rest.
    let o = fake.run_as("apply", uid);
    assert!(o.status.success(), "{}", text(&o));
    assert!(stdout(&o).contains("apply: 0 changed"), "{}", text(&o));
    let o = fake.run_as("revert", uid);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(fake.snapshot(), original, "{}", text(&o));
}

#[test]
fn check_against_real_proc_sys_is_read_only_and_exits_0() {
    let real = |key: &str| {
        fs::read_to_string(Path::new("/proc/sys").join(key.replace('.', "/")))
            .map(|s| normalize(&s))
            .ok()
    };
    let keys: Vec<String> = wanted().into_iter().map(|w| w.key).collect();
    let before: Vec<_> = keys.iter().map(|k| real(k)).collect();
    let state = tempfile::tempdir().unwrap();
    let state = state.path().join("never-created");
    let o = run_script("check", &[("WSHERD_TUNE_STATE", state.clone())], None);
    assert!(o.status.success(), "{}", text(&o));
    let out = stdout(&o);
    assert!(out.contains("under /proc/sys"), "{out}");
    for k in &keys {
        line_of(&out, k);
    }
    assert!(out.contains("nofile (hard)"), "{out}");
    let after: Vec<_> = keys.iter().map(|k| real(k)).collect();
    assert_eq!(before, after, "check changed /proc/sys");
    assert!(!state.exists(), "check created its state dir");
}

#[test]
fn apply_on_real_proc_sys_needs_root() {
    // As an unprivileged user only: refused before anything is read or written (and an
    // unprivileged user could not write /proc/sys anyway).
    let uid = if is_root() {
        if !have_setpriv() {
            eprintln!("skipped: running as root and setpriv is not installed");
            return;
        }
        Some(NOBODY)
    } else {
        None
    };
    let state = tempfile::tempdir().unwrap();
    let state = state.path().join("never-created");
    let o = run_script("apply", &[("WSHERD_TUNE_STATE", state.clone())], uid);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("needs root"),
        "{}",
        text(&o)
    );
    assert!(!state.exists());
}

#[test]
fn unknown_command_is_a_usage_error() {
    let fake = Fake::new();
    let o = fake.run("bogus");
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("unknown command 'bogus'"),
        "{}",
        text(&o)
    );
}

/// `wsherd doctor` and `scripts/tune-host.sh check` read one table
/// (tuning/99-wsherd.conf) and, on the same host, give the same advice: every
/// setting the script would change, the doctor warns about with the very value
/// the script would write, and none else.
#[test]
fn the_doctor_and_the_script_give_the_same_advice() {
    let fake = Fake::new();
    let o = fake.run("check");
    assert!(o.status.success(), "{}", text(&o));
    let script = stdout(&o);
    let doctor = Command::new(env!("CARGO_BIN_EXE_wsherd"))
        .args(["doctor", "-c", "10"])
        .env("WSHERD_SYSCTL_ROOT", fake.sysctl_root())
        .output()
        .unwrap();
    let doctor = String::from_utf8_lossy(&doctor.stdout).to_string();
    // fs.file-max is judged by the doctor against the plan on the real host.
    for w in wanted()
        .iter()
        .filter(|w| w.key != CONNTRACK && w.key != "fs.file-max")
    {
        let line = line_of(&script, &w.key);
        let advice = format!("sysctl -w {}=", w.key);
        match line.split("CHANGE -> ").nth(1) {
            Some(value) => {
                let want = format!("{advice}\"{}\"", value.trim());
                assert!(
                    doctor.contains(&want),
                    "the script says {line:?}; the doctor:\n{doctor}"
                );
            }
            None => assert!(
                !doctor.contains(&advice),
                "the script leaves {} alone; the doctor:\n{doctor}",
                w.key
            ),
        }
    }
    assert!(doctor.contains("[ok  ] fs.nr_open"), "{doctor}");
}
