//! Conversations: the steps each connection follows (send, expect and capture,
//! think, repeat, every, close), parsed from a scenario's `[[scenario.step]]`
//! tables or a `--steps FILE`, and checked before the run.
//!
//! Why it exists: real services answer a request with a message of their own and
//! keep state per session (a login's token, a subscription's id). A conversation
//! says what to send, what must come back (a JSON field equal to a value or
//! matching a pattern, a text pattern, a binary prefix) and what to keep from it,
//! and each answer is timed under its step's name. It is what a run is made of,
//! beside `workload`, `payload` and `values`: the configuration stage parses it
//! once and `shard::script` runs it. Imports `values`, the vocabulary and
//! nothing else of wsherd's: never a shard, the plan or anything above.
//!
//! ```toml
//! [[step]]
//! send = '{"op":"login","user":"u{conn}"}'
//! [[step]]
//! name = "login"                       # its latency: step.login.p99
//! expect = { json = "/op", equals = "welcome" }
//! capture = { session = "/session" }   # {session} in later sends
//! timeout = "5s"
//! [[step]]
//! every = "25s"
//! send = '{"op":"ping"}'
//! [[step]]
//! repeat = 10
//! steps = [
//!   { send = '{"op":"say","session":"{session}","n":{seq}}' },
//!   { name = "said", expect = { json = "/op", equals = "ok" } },
//!   { think = "500ms" },
//! ]
//! [[step]]
//! close = true
//! ```
//!
//! The program is flattened (a repeat is a jump), so a connection's state is a
//! position, a few counters and the captured values.

use crate::values::Pattern;
use crate::vocab::jsonptr::{self, Pointer, Value};
use crate::vocab::units::parse_duration;
use regex::bytes::Regex;
use std::time::Duration;

/// How long an expect waits when its step gives no `timeout`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// The most steps a conversation may have (reported steps, every level).
pub const MAX_STEPS: usize = 256;

/// A parsed conversation.
#[derive(Debug, Clone)]
pub struct Script {
    pub mode: Mode,
    pub ops: Vec<Op>,
    /// The steps reported (each send, every and expect), in order.
    pub steps: Vec<StepInfo>,
    /// Names of the captured values, in the order of `Vars::extra` after `seq`.
    pub vars: Vec<String>,
    pub unmatched: Unmatched,
}

/// What a connection does when it reaches the end of the steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Run the steps once, then hold the connection (counting what arrives).
    Once,
    /// Run them again from the first, until the run stops.
    Loop,
    /// Run them once as a session: close, connect again, start over.
    Session,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Once => "once",
            Mode::Loop => "loop",
            Mode::Session => "session",
        }
    }

    pub fn parse(s: &str) -> Result<Mode, String> {
        match s {
            "once" => Ok(Mode::Once),
            "loop" => Ok(Mode::Loop),
            "session" => Ok(Mode::Session),
            _ => Err(format!(
                "steps mode '{s}': give once (then hold), loop (again and again) or session (close and reconnect)"
            )),
        }
    }
}

/// What a message that no pending expect matches does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unmatched {
    /// Counted (and the first few kept to show).
    Count,
    /// Counted, and it fails the connection (`unmatched_message`).
    Fail,
}

/// A step as the report names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepInfo {
    pub name: String,
    pub kind: StepKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepKind {
    Send,
    Expect,
}

impl StepKind {
    pub fn name(self) -> &'static str {
        match self {
            StepKind::Send => "send",
            StepKind::Expect => "expect",
        }
    }
}

/// One instruction of the flattened program.
#[derive(Debug, Clone)]
pub enum Op {
    /// Send `text` (filled in), as a binary frame with `binary`; `step` counts it.
    Send(Send),
    Expect(Box<Expect>),
    /// Wait, reading what arrives.
    Think(Duration),
    /// Run the ops after this one up to `end` (an `EndRepeat`) `times` times.
    Repeat {
        times: u32,
        end: usize,
    },
    /// The end of the block a `Repeat` at `start` opened.
    EndRepeat {
        start: usize,
    },
    /// From here on, send a message every `period` (an application heartbeat).
    Every {
        period: Duration,
        send: Send,
    },
    /// Close the connection (a session's end).
    Close,
}

#[derive(Debug, Clone)]
pub struct Send {
    pub text: Pattern,
    pub binary: bool,
    pub step: usize,
}

/// Wait for the next message that matches; keep values from it.
#[derive(Debug, Clone)]
pub struct Expect {
    pub matcher: Matcher,
    pub captures: Vec<Capture>,
    pub timeout: Duration,
    /// The next message must match (else the step fails as a mismatch); without,
    /// messages that do not match are counted as unmatched and the wait goes on.
    pub strict: bool,
    pub step: usize,
}

/// What a message must be.
#[derive(Debug, Clone)]
pub enum Matcher {
    /// Any data message.
    Any,
    /// A JSON document whose field at the pointer equals the value.
    JsonEquals(Pointer, serde_json::Value),
    /// ... whose field (a string's text, or a value's JSON text) matches.
    JsonMatches(Pointer, Regex),
    /// ... that has the field.
    JsonPresent(Pointer),
    /// A text message that the pattern matches.
    Text(Regex),
    /// A binary message that starts with these bytes.
    BinaryPrefix(Vec<u8>),
}

impl Matcher {
    /// True when `msg` (a text frame's if `text`) is what this matcher waits for.
    /// The JSON field is found by a streaming scan (no document is built).
    pub fn matches(&self, msg: &[u8], text: bool) -> bool {
        match self {
            Matcher::Any => true,
            Matcher::JsonEquals(p, want) => {
                jsonptr::lookup(msg, p).is_some_and(|v| json_equals(v, want))
            }
            Matcher::JsonMatches(p, re) => jsonptr::lookup(msg, p).is_some_and(|v| match v {
                Value::Str(_) => v.as_str().is_some_and(|s| re.is_match(s.as_bytes())),
                other => re.is_match(other.raw()),
            }),
            Matcher::JsonPresent(p) => jsonptr::lookup(msg, p).is_some(),
            Matcher::Text(re) => text && re.is_match(msg),
            Matcher::BinaryPrefix(prefix) => !text && msg.starts_with(prefix),
        }
    }
}

/// A found JSON value against the expected one: strings by their text, numbers
/// by value, the rest by their parsed form.
fn json_equals(found: Value<'_>, want: &serde_json::Value) -> bool {
    match (found, want) {
        (Value::Str(_), serde_json::Value::String(w)) => found.as_str().is_some_and(|s| s == *w),
        (Value::Number(_), serde_json::Value::Number(w)) => {
            found.as_f64().is_some_and(|f| Some(f) == w.as_f64())
        }
        (Value::Bool(b), serde_json::Value::Bool(w)) => b == *w,
        (Value::Null, serde_json::Value::Null) => true,
        (Value::Object(raw) | Value::Array(raw), w) => {
            serde_json::from_slice::<serde_json::Value>(raw).is_ok_and(|v| v == *w)
        }
        _ => false,
    }
}

/// A value kept from a matched message, into variable `var`.
#[derive(Debug, Clone)]
pub enum Capture {
    /// The field at the pointer: a string's text, or a value's JSON text.
    Json { var: usize, ptr: Pointer },
    /// The first group of the pattern (the whole match if it has none).
    Regex { var: usize, re: Regex },
}

impl Capture {
    pub fn var(&self) -> usize {
        match self {
            Capture::Json { var, .. } | Capture::Regex { var, .. } => *var,
        }
    }

    /// The value in `msg`, if it is there.
    pub fn value(&self, msg: &[u8]) -> Option<String> {
        match self {
            Capture::Json { ptr, .. } => {
                let v = jsonptr::lookup(msg, ptr)?;
                match v {
                    Value::Str(_) => v.as_str().map(|s| s.into_owned()),
                    other => Some(String::from_utf8_lossy(other.raw()).into_owned()),
                }
            }
            Capture::Regex { re, .. } => {
                let caps = re.captures(msg)?;
                let m = caps.get(1).or_else(|| caps.get(0))?;
                Some(String::from_utf8_lossy(m.as_bytes()).into_owned())
            }
        }
    }
}

/// The names a send may use beside the per-connection placeholders: `{seq}`
/// (the connection's sends so far) and the captured values.
pub fn extra_names(vars: &[String]) -> Vec<String> {
    std::iter::once("seq".to_string())
        .chain(vars.iter().cloned())
        .collect()
}

/// Parses the steps (an array of tables) with the mode and the handling of
/// unmatched messages; `columns` are the data file's. Errors name the step
/// (`step 3`, `step 2.1` inside a repeat) and say what is allowed.
pub fn parse(
    steps: &toml::Value,
    mode: Mode,
    unmatched: Unmatched,
    columns: &[String],
) -> Result<Script, String> {
    let list = steps
        .as_array()
        .filter(|a| !a.is_empty())
        .ok_or("the steps are an array of tables: [[step]] in a steps file, [[scenario.step]] in a scenario")?;
    let mut vars = Vec::new();
    collect_vars(list, "", &mut vars)?;
    let mut p = Parser {
        ops: Vec::new(),
        steps: Vec::new(),
        extra: extra_names(&vars),
        vars,
        columns,
    };
    p.block(list, "")?;
    if p.steps.len() > MAX_STEPS {
        return Err(format!(
            "{} steps; a conversation has at most {MAX_STEPS}",
            p.steps.len()
        ));
    }
    let mut names = std::collections::BTreeSet::new();
    for s in &p.steps {
        if !names.insert(&s.name) {
            return Err(format!(
                "two steps are named '{}'; give each its own name",
                s.name
            ));
        }
    }
    Ok(Script {
        mode,
        ops: p.ops,
        steps: p.steps,
        vars: p.vars,
        unmatched,
    })
}

/// Every capture's variable name, in order of appearance.
fn collect_vars(list: &[toml::Value], path: &str, vars: &mut Vec<String>) -> Result<(), String> {
    for (i, item) in list.iter().enumerate() {
        let at = step_path(path, i);
        let Some(t) = item.as_table() else {
            return Err(format!(
                "{at}: a step is a table, e.g. {{ send = \"...\" }}"
            ));
        };
        if let Some(c) = t.get("capture") {
            let Some(c) = c.as_table() else {
                return Err(format!(
                    "{at}: capture is a table of NAME = \"/json/pointer\" or NAME = {{ regex = \"...\" }}"
                ));
            };
            for name in c.keys() {
                if name == "seq"
                    || !name
                        .chars()
                        .all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
                {
                    return Err(format!(
                        "{at}: capture name '{name}': use letters, digits and _ (and not seq, the connection's count of sends)"
                    ));
                }
                if !vars.contains(name) {
                    vars.push(name.clone());
                }
            }
        }
        if let Some(inner) = t.get("steps").and_then(|s| s.as_array()) {
            collect_vars(inner, &at, vars)?;
        }
    }
    Ok(())
}

fn step_path(path: &str, i: usize) -> String {
    if path.is_empty() {
        format!("step {}", i + 1)
    } else {
        format!("{path}.{}", i + 1)
    }
}

/// The default name of the step at `at` (`step 2.1` is `step2.1`).
fn default_name(at: &str) -> String {
    at.replace(' ', "")
}

struct Parser<'a> {
    ops: Vec<Op>,
    steps: Vec<StepInfo>,
    vars: Vec<String>,
    extra: Vec<String>,
    columns: &'a [String],
}

const ACTIONS: &str =
    "send, expect, think (or sleep), repeat (with steps), every (with send), close";

impl Parser<'_> {
    fn block(&mut self, list: &[toml::Value], path: &str) -> Result<(), String> {
        for (i, item) in list.iter().enumerate() {
            let at = step_path(path, i);
            let t = item.as_table().expect("checked by collect_vars");
            self.step(t, &at)?;
        }
        Ok(())
    }

    fn step(&mut self, t: &toml::Table, at: &str) -> Result<(), String> {
        const KEYS: &[&str] = &[
            "name", "send", "binary", "expect", "capture", "timeout", "strict", "think", "sleep",
            "repeat", "steps", "every", "close",
        ];
        if let Some(k) = t.keys().find(|k| !KEYS.contains(&k.as_str())) {
            return Err(format!("{at}: unknown key '{k}' (a step is one of {ACTIONS}; with name, binary, capture, timeout, strict)"));
        }
        let name = match t.get("name") {
            None => default_name(at),
            Some(v) => v
                .as_str()
                .filter(|s| {
                    !s.is_empty()
                        && s.chars()
                            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
                })
                .ok_or(format!(
                    "{at}: name is a word of letters, digits, _, - and . (login, sub-1)"
                ))?
                .to_string(),
        };
        let actions: Vec<&str> = ["expect", "think", "sleep", "repeat", "every", "close"]
            .into_iter()
            .filter(|k| t.contains_key(*k))
            .collect();
        let action = match (actions.as_slice(), t.contains_key("send")) {
            ([], true) => "send",
            (["every"], true) => "every",
            ([one], false) => one,
            ([], false) => return Err(format!("{at}: no action; a step is one of {ACTIONS}")),
            _ => {
                return Err(format!(
                    "{at}: one action per step (this one has {}); split it into steps",
                    actions.join(" and ")
                ))
            }
        };
        for (key, only) in [
            ("capture", "expect"),
            ("timeout", "expect"),
            ("strict", "expect"),
            ("steps", "repeat"),
        ] {
            if t.contains_key(key) && action != only {
                return Err(format!("{at}: {key} goes with {only}"));
            }
        }
        if t.contains_key("binary") && action != "send" && action != "every" {
            return Err(format!("{at}: binary goes with send"));
        }
        match action {
            "send" => {
                let send = self.send(t, at, name)?;
                self.ops.push(Op::Send(send));
            }
            "every" => {
                let period = duration(t, "every", at)?;
                if period.is_zero() {
                    return Err(format!("{at}: every must be longer than zero"));
                }
                let send = self.send(t, at, name)?;
                self.ops.push(Op::Every { period, send });
            }
            "expect" => self.expect(t, at, name)?,
            "think" | "sleep" => self.ops.push(Op::Think(duration(t, action, at)?)),
            "repeat" => {
                let times = t
                    .get("repeat")
                    .and_then(|v| v.as_integer())
                    .filter(|n| (1..=u32::MAX as i64).contains(n))
                    .ok_or(format!("{at}: repeat is a count of 1 or more"))?;
                let inner = t
                    .get("steps")
                    .and_then(|s| s.as_array())
                    .filter(|a| !a.is_empty())
                    .ok_or(format!("{at}: repeat needs steps = [ {{ ... }}, ... ]"))?;
                let start = self.ops.len();
                self.ops.push(Op::Repeat {
                    times: times as u32,
                    end: 0,
                });
                self.block(inner, at)?;
                let end = self.ops.len();
                self.ops.push(Op::EndRepeat { start });
                self.ops[start] = Op::Repeat {
                    times: times as u32,
                    end,
                };
            }
            "close" => {
                if t.get("close").and_then(|v| v.as_bool()) != Some(true) {
                    return Err(format!("{at}: write close = true"));
                }
                self.ops.push(Op::Close);
            }
            _ => unreachable!("actions are listed above"),
        }
        Ok(())
    }

    fn send(&mut self, t: &toml::Table, at: &str, name: String) -> Result<Send, String> {
        let text = t
            .get("send")
            .and_then(|v| v.as_str())
            .ok_or(format!("{at}: send is the message's text"))?;
        let text = Pattern::parse_with(text, self.columns, &self.extra)
            .map_err(|e| format!("{at}: {e}"))?;
        let binary = match t.get("binary") {
            None => false,
            Some(v) => v
                .as_bool()
                .ok_or(format!("{at}: binary is true or false"))?,
        };
        self.steps.push(StepInfo {
            name,
            kind: StepKind::Send,
        });
        Ok(Send {
            text,
            binary,
            step: self.steps.len() - 1,
        })
    }

    fn expect(&mut self, t: &toml::Table, at: &str, name: String) -> Result<(), String> {
        let matcher = matcher(t.get("expect").expect("the action"), at)?;
        let mut captures = Vec::new();
        if let Some(c) = t.get("capture").and_then(|c| c.as_table()) {
            for (var, how) in c {
                let var = self.vars.iter().position(|v| v == var).expect("collected");
                captures.push(match how {
                    toml::Value::String(p) => Capture::Json {
                        var,
                        ptr: pointer(p, at)?,
                    },
                    toml::Value::Table(r) => match r.get("regex").and_then(|v| v.as_str()) {
                        Some(re) if r.len() == 1 => Capture::Regex {
                            var,
                            re: regex(re, at)?,
                        },
                        _ => {
                            return Err(format!(
                                "{at}: capture {} is \"/json/pointer\" or {{ regex = \"...\" }}",
                                self.vars[var]
                            ))
                        }
                    },
                    _ => {
                        return Err(format!(
                            "{at}: capture {} is \"/json/pointer\" or {{ regex = \"...\" }}",
                            self.vars[var]
                        ))
                    }
                });
            }
        }
        let timeout = match t.get("timeout") {
            None => DEFAULT_TIMEOUT,
            Some(_) => duration(t, "timeout", at)?,
        };
        if timeout.is_zero() {
            return Err(format!("{at}: timeout must be longer than zero"));
        }
        let strict = match t.get("strict") {
            None => false,
            Some(v) => v
                .as_bool()
                .ok_or(format!("{at}: strict is true or false"))?,
        };
        self.steps.push(StepInfo {
            name,
            kind: StepKind::Expect,
        });
        self.ops.push(Op::Expect(Box::new(Expect {
            matcher,
            captures,
            timeout,
            strict,
            step: self.steps.len() - 1,
        })));
        Ok(())
    }
}

fn duration(t: &toml::Table, key: &str, at: &str) -> Result<Duration, String> {
    let v = t.get(key).expect("present");
    v.as_str()
        .ok_or(format!(
            "{at}: {key} is a duration such as \"500ms\" or \"25s\""
        ))
        .and_then(|s| parse_duration(s).map_err(|e| format!("{at}: {key}: {e}")))
}

fn pointer(p: &str, at: &str) -> Result<Pointer, String> {
    Pointer::parse(p).map_err(|e| format!("{at}: {e}"))
}

fn regex(re: &str, at: &str) -> Result<Regex, String> {
    Regex::new(re).map_err(|e| format!("{at}: pattern '{re}': {e}"))
}

/// `expect = ...`: `"any"`, or a table with one of json (with equals, matches,
/// or neither: present), text, binary_prefix.
fn matcher(v: &toml::Value, at: &str) -> Result<Matcher, String> {
    const FORMS: &str = "expect is \"any\", { json = \"/pointer\" } (present), { json = \"/pointer\", equals = VALUE }, { json = \"/pointer\", matches = \"regex\" }, { text = \"regex\" } or { binary_prefix = \"hex\" }";
    if v.as_str() == Some("any") {
        return Ok(Matcher::Any);
    }
    let t = v.as_table().ok_or(format!("{at}: {FORMS}"))?;
    let keys: Vec<&str> = t.keys().map(String::as_str).collect();
    match keys.as_slice() {
        ["json"]
        | ["json", "equals"]
        | ["equals", "json"]
        | ["json", "matches"]
        | ["matches", "json"] => {
            let ptr = pointer(t["json"].as_str().ok_or(format!("{at}: {FORMS}"))?, at)?;
            Ok(match (t.get("equals"), t.get("matches")) {
                (Some(want), None) => Matcher::JsonEquals(ptr, toml_to_json(want)),
                (None, Some(re)) => Matcher::JsonMatches(
                    ptr,
                    regex(re.as_str().ok_or(format!("{at}: matches is a regex"))?, at)?,
                ),
                _ => Matcher::JsonPresent(ptr),
            })
        }
        ["text"] => Ok(Matcher::Text(regex(
            t["text"].as_str().ok_or(format!("{at}: {FORMS}"))?,
            at,
        )?)),
        ["binary_prefix"] => {
            let hex = t["binary_prefix"]
                .as_str()
                .ok_or(format!("{at}: {FORMS}"))?;
            Ok(Matcher::BinaryPrefix(unhex(hex).ok_or(format!(
                "{at}: binary_prefix '{hex}' is not hex bytes (e.g. \"0a1b\")"
            ))?))
        }
        _ => Err(format!("{at}: {FORMS}")),
    }
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    if s.is_empty() || !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// A TOML value as the JSON value it stands for.
fn toml_to_json(v: &toml::Value) -> serde_json::Value {
    match v {
        toml::Value::String(s) => serde_json::Value::String(s.clone()),
        toml::Value::Integer(i) => serde_json::Value::from(*i),
        toml::Value::Float(f) => serde_json::Value::from(*f),
        toml::Value::Boolean(b) => serde_json::Value::Bool(*b),
        toml::Value::Datetime(d) => serde_json::Value::String(d.to_string()),
        toml::Value::Array(a) => serde_json::Value::Array(a.iter().map(toml_to_json).collect()),
        toml::Value::Table(t) => serde_json::Value::Object(
            t.iter()
                .map(|(k, v)| (k.clone(), toml_to_json(v)))
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn steps(src: &str) -> Result<Script, String> {
        let doc: toml::Table = toml::from_str(src).unwrap();
        parse(&doc["step"], Mode::Once, Unmatched::Count, &[])
    }

    const CHAT: &str = r#"
[[step]]
send = '{"op":"login","user":"u{conn}"}'
[[step]]
name = "login"
expect = { json = "/op", equals = "welcome" }
capture = { session = "/session", token = { regex = "tok=(\\w+)" } }
timeout = "2s"
[[step]]
every = "25s"
send = '{"op":"ping"}'
[[step]]
repeat = 3
steps = [
  { send = '{"op":"say","session":"{session}","n":{seq}}' },
  { name = "said", expect = { json = "/n", matches = "^[0-9]+$" } },
  { think = "10ms" },
]
[[step]]
close = true
"#;

    #[test]
    fn a_conversation_flattens_into_ops_and_named_steps() {
        let s = steps(CHAT).unwrap();
        assert_eq!(s.vars, ["session", "token"]);
        let names: Vec<(&str, &str)> = s
            .steps
            .iter()
            .map(|st| (st.name.as_str(), st.kind.name()))
            .collect();
        assert_eq!(
            names,
            [
                ("step1", "send"),
                ("login", "expect"),
                ("step3", "send"),
                ("step4.1", "send"),
                ("said", "expect"),
            ]
        );
        assert!(matches!(s.ops[3], Op::Repeat { times: 3, end: 7 }));
        assert!(matches!(s.ops[7], Op::EndRepeat { start: 3 }));
        assert!(matches!(s.ops[8], Op::Close));
        let Op::Expect(e) = &s.ops[1] else { panic!() };
        assert_eq!(e.timeout, Duration::from_secs(2));
        assert!(e
            .matcher
            .matches(br#"{"op":"welcome","session":"s1"}"#, true));
        assert!(!e.matcher.matches(br#"{"op":"bye"}"#, true));
        assert_eq!(
            e.captures[0]
                .value(br#"{"op":"welcome","session":"s1"}"#)
                .as_deref(),
            Some("s1")
        );
        assert_eq!(e.captures[1].value(b"x tok=abc y").as_deref(), Some("abc"));
    }

    #[test]
    fn matchers() {
        let m = |src: &str| {
            let doc: toml::Table = toml::from_str(&format!("e = {src}")).unwrap();
            matcher(&doc["e"], "step 1").unwrap()
        };
        let json = br#"{"a":{"b":[1,2.0,"x"]},"n":3,"t":true,"z":null}"#;
        assert!(m(r#"{ json = "/n", equals = 3 }"#).matches(json, true));
        assert!(m(r#"{ json = "/n", equals = 3.0 }"#).matches(json, true));
        assert!(m(r#"{ json = "/a/b/1", equals = 2 }"#).matches(json, true));
        assert!(m(r#"{ json = "/a/b", equals = [1, 2.0, "x"] }"#).matches(json, true));
        assert!(m(r#"{ json = "/t", equals = true }"#).matches(json, true));
        assert!(m(r#"{ json = "/z" }"#).matches(json, true));
        assert!(!m(r#"{ json = "/missing" }"#).matches(json, true));
        assert!(m(r#"{ json = "/a/b/2", matches = "^x$" }"#).matches(json, true));
        assert!(m(r#"{ text = "\"n\":3" }"#).matches(json, true));
        assert!(!m(r#"{ text = "\"n\":3" }"#).matches(json, false));
        assert!(m(r#"{ binary_prefix = "0a ff" }"#).matches(&[0x0a, 0xff, 1], false));
        assert!(m(r#""any""#).matches(b"", false));
    }

    #[test]
    fn errors_name_the_step_and_the_fix() {
        for (src, want) in [
            ("[[step]]\nsend = 1", "step 1: send is the message's text"),
            ("[[step]]\nsend = 'x'\nthink = '1s'", "one action per step"),
            ("[[step]]\nwait = '1s'", "unknown key 'wait'"),
            ("[[step]]\nexpect = { json = 'id' }", "step 1: JSON pointer"),
            ("[[step]]\nexpect = { text = '(' }", "pattern '('"),
            ("[[step]]\nsend = '{nope}'", "{nope} is not a placeholder"),
            ("[[step]]\nrepeat = 2", "repeat needs steps"),
            (
                "[[step]]\nrepeat = 2\nsteps = [{ think = 'x' }]",
                "step 1.1: think",
            ),
            (
                "[[step]]\nsend = 'x'\ntimeout = '1s'",
                "timeout goes with expect",
            ),
            (
                "[[step]]\nname = 'a'\nsend = 'x'\n[[step]]\nname = 'a'\nsend = 'y'",
                "two steps are named 'a'",
            ),
            (
                "[[step]]\nexpect = 'any'\ncapture = { seq = '/x' }",
                "not seq",
            ),
        ] {
            let e = steps(src).unwrap_err();
            assert!(e.contains(want), "{src}: {e}");
        }
    }
}
