//! The command line as the user typed it: clap definitions and value parsers.
//!
//! This is stage one of configuration (as in ripgrep's low-level args): raw values,
//! each flag documented where it is defined. Nothing here checks one flag against
//! another; `config` turns these into validated, immutable configs.
//!
//! Imported only by the command layer (`commands`, the configuration stage); imports
//! nothing above the vocabulary but the report-file type it converts into.

use crate::report::outputs::ReportFiles;
use crate::script::Mode;
use crate::vocab::kinds::{Dimension, IoDriver, ServeMode, TimeUnit, Timer, WorkloadKind};
use crate::vocab::units::{parse_count, parse_duration, parse_rate, parse_size};
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::time::Duration;

const RUN_EXAMPLES: &str = "\
Examples:
  wsherd run                                    self-test: load the built-in server on loopback
  wsherd run ws://127.0.0.1:9000/ -c 10k -d 30s closed-loop echo, 10,000 connections, 30 seconds
  wsherd run ws://host:9000/chat --text --size 256 --inflight 4 --json out.json
  wsherd run ws://host:9000/ --workload idle -c 5000 -d 1m   hold 5000 idle connections
  wsherd run ws://host:9000/ -c 1000 --rate 20k -d 1m --threshold 'rtt.p99<50ms'
                                    open loop at 20,000 msg/s; exit 99 if p99 is 50 ms or more
  wsherd run wss://host/ws -H 'Authorization: Bearer T' --json - | jq .latency.rtt
  wsherd run --scenario scripts/scenarios/quick.toml --html report.html";

const MERGE_EXAMPLES: &str = "\
Examples:
  wsherd merge agent1.json agent2.json                 the agents' run as one summary
  wsherd merge agent1.json agent2.json --json all.json   and its results, losslessly";

const REPORT_EXAMPLES: &str = "\
Examples:
  wsherd report out.json                          the summary of saved results again
  wsherd report out.json --html out.html --hgrm out/   their report files
  wsherd report out.json --threshold 'rtt.p99<20ms'    judged anew (exit 99 on failure)";

const DOCTOR_EXAMPLES: &str = "\
Examples:
  wsherd doctor -c 100k ws://10.0.0.2:9000/       can this host hold 100,000 connections?
  wsherd doctor -c 200k --agent 1/2 --source-ip 10.0.0.5-10.0.0.8 ws://10.0.0.2:9000/";

const K8S_RUN_EXAMPLES: &str = "\
Examples:
  wsherd k8s run ws://echo.load:9000/ -c 400k -d 5m --agents 4 --k8s-namespace load --image registry.example/wsherd:0.1.0
  wsherd k8s run ws://echo:9000/ --rate 200k -c 20k --agents 8 --threshold 'rtt.p99<20ms' --json all.json
  wsherd k8s run ws://echo:9000/ -c 100k --agents 2 --dry-run > job.yaml   the objects, not created";

const CEILING_EXAMPLES: &str = "\
Examples:
  wsherd ceiling ws://127.0.0.1:9000/ --dimension connections --slo 'rtt.p99<50ms,errors<0.1%'
  wsherd ceiling ws://host:9000/ --dimension rate -c 200 --start 5k --slo 'rtt.p99<20ms'
  wsherd ceiling ws://host:9000/ --dimension sessions -w churn --messages 5 --start 100
  wsherd ceiling --dimension rate --json ceiling.json --html ceiling.html   (built-in server)";

/// wsherd: a thread-per-core WebSocket load generator.
#[derive(Debug, Parser)]
#[command(name = "wsherd", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// Examples, and what a client cannot make the built-in server hold, shown by
/// `serve --help`.
const SERVE_LIMITS: &str = "\
Examples:
  wsherd serve                                    echo on 127.0.0.1:9000, a shard per core
  wsherd serve --addr 0.0.0.0:9000 --mode broadcast --shards 2
  wsherd serve --tls-self-signed --tls-ca-out ca.pem   then: wsherd run wss://127.0.0.1:9000/ --ca ca.pem

Limits (what one client can make the server hold):
  a request head of 16 KiB and 32 header lines within 10 s (more: 431;
  slower: closed);
  --max-message bytes in a frame, or in a message held whole (reassembled or
  inflated; 64 MiB unless set; larger: closed with 1009); --queue messages per
  broadcast receiver (copies beyond it are dropped and counted);
  --max-connections connections if given (then 503). Echoes wait for the
  client to read them: a client that does not read stops being read. A held
  idle connection costs about 0.8 KiB.
Every violation of RFC 6455 (an unmasked or malformed frame, fragments out of
order, text that is not UTF-8, a bad close) closes the connection with
1002/1007/1009 and the violation's name as the reason, and counts an error.";

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Load a WebSocket target (no URL: start the built-in server and load it).
    #[command(after_help = RUN_EXAMPLES)]
    Run(Box<RunArgs>),
    /// Search for the highest load a target holds within an SLO (connections,
    /// message rate or session rate).
    #[command(after_help = CEILING_EXAMPLES)]
    Ceiling(Box<CeilingArgs>),
    /// Run the built-in thread-per-core echo server.
    #[command(after_help = SERVE_LIMITS)]
    Serve(ServeArgs),
    /// Merge results of several agents (or runs side by side) into one, losslessly.
    #[command(after_help = MERGE_EXAMPLES)]
    Merge(MergeArgs),
    /// Print the summary of saved results (a --json file).
    #[command(after_help = REPORT_EXAMPLES)]
    Report(ReportArgs),
    /// Check this host for a planned run and say what to fix.
    #[command(after_help = DOCTOR_EXAMPLES)]
    Doctor(DoctorArgs),
    /// Run on Kubernetes: agents as an Indexed Job, one merged result judged once.
    #[command(subcommand)]
    K8s(K8sCommand),
}

/// `wsherd k8s ...`.
#[derive(Debug, Subcommand)]
pub enum K8sCommand {
    /// One run made by N agents (the pods of an Indexed Job, started together),
    /// merged losslessly, reported and judged as one; takes run's flags.
    #[command(after_help = K8S_RUN_EXAMPLES)]
    Run(Box<K8sRunArgs>),
}

/// `wsherd k8s run`: run's flags, and where and how many agents.
#[derive(Debug, Clone, Args)]
pub struct K8sRunArgs {
    /// Agents (pods), each with a disjoint share of the connections and the rate.
    #[arg(long, value_parser = parse_count, display_order = 1)]
    pub agents: u64,

    /// The Kubernetes namespace to run in (--namespace is Socket.IO's).
    #[arg(
        long = "k8s-namespace",
        value_name = "NS",
        default_value = "default",
        display_order = 2
    )]
    pub k8s_namespace: String,

    /// The container image with wsherd (deploy/Dockerfile). [default:
    /// wsherd:VERSION]
    #[arg(long, display_order = 3)]
    pub image: Option<String>,

    /// The Job's name (and the prefix of the other objects'). [default:
    /// wsherd-<unix time>]
    #[arg(long = "job-name", display_order = 4)]
    pub job_name: Option<String>,

    /// Time from submitting to the agents' common start: pods must be scheduled
    /// and their image pulled by then (an agent that starts later is flagged).
    #[arg(long = "start-margin", value_parser = parse_duration, default_value = "30s", display_order = 5)]
    pub start_margin: Duration,

    /// Agents on the nodes' network (no NAT; no pod sysctls then: tune the nodes).
    #[arg(long = "host-network", display_order = 6)]
    pub host_network: bool,

    /// Cores per agent: the pod's CPU request, and the agent's shards (one per
    /// core) unless --shards says otherwise. [default: --shards, or 1]
    #[arg(long, value_parser = parse_count, display_order = 7)]
    pub cpus: Option<u64>,

    /// Allow several agents on one node (default: one per node, anti-affinity).
    #[arg(long, display_order = 7)]
    pub pack: bool,

    /// Print the objects (YAML) instead of creating them.
    #[arg(long = "dry-run", display_order = 8)]
    pub dry_run: bool,

    /// Leave the Job and its ConfigMap in the cluster at the end.
    #[arg(long, display_order = 9)]
    pub keep: bool,

    /// The kubectl to call. [default: kubectl on PATH]
    #[arg(long, default_value = "kubectl", display_order = 10)]
    pub kubectl: PathBuf,

    #[command(flatten)]
    pub run: RunArgs,
}

/// What each connection does once it is established.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum WorkloadArg {
    /// Data frames timed by their echo: closed loop (--inflight), or open loop with
    /// --rate / --rate-per-conn.
    Echo,
    /// PING control frames timed by their PONG: closed loop or open loop, as echo.
    Ping,
    /// Hold the connection open for the duration and answer server pings; with
    /// --heartbeat, send a timed PING every interval.
    Idle,
    /// Short sessions: connect, upgrade, exchange --messages, close, and again
    /// (as fast as possible per connection slot, or at --session-rate).
    Churn,
    /// Request/response sessions: send, wait for the answer, --think, send again,
    /// --messages times, then close and start over.
    Chat,
    /// Fan-out: --publishers connections publish at --rate, every connection
    /// receives every message (against a server that relays to all clients).
    Broadcast,
    /// Server push: each connection sends --subscribe once, then receives what the
    /// server pushes: counted per second, gaps and duplicates in --seq, one-way
    /// latency from --sent-at.
    Push,
    /// Follow the steps of --steps FILE (send, expect and capture, think, repeat,
    /// every, close): each expect timed from the send before it, by step name.
    Conversation,
}

/// An application protocol over WebSocket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProtocolArg {
    /// Messages as they are.
    Raw,
    /// Engine.IO / Socket.IO v4.
    Socketio,
    /// GraphQL over WebSocket (graphql-transport-ws).
    #[value(name = "graphql-ws")]
    GraphqlWs,
}

/// `MIN..MAX` durations of a backoff (`1s..30s`), MIN above zero and MAX at
/// least MIN.
fn parse_backoff(s: &str) -> Result<(Duration, Duration), String> {
    let (lo, hi) = s
        .split_once("..")
        .ok_or_else(|| format!("'{s}': a backoff is MIN..MAX, e.g. 1s..30s"))?;
    let (lo, hi) = (parse_duration(lo)?, parse_duration(hi)?);
    if lo.is_zero() || hi < lo {
        return Err(format!(
            "'{s}': MIN must be above zero and MAX at least MIN, e.g. 1s..30s"
        ));
    }
    Ok((lo, hi))
}

/// What a conversation does at the end of its steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StepsModeArg {
    /// Hold the connection, counting what arrives.
    Once,
    /// Start over from the first step.
    Loop,
    /// Close, connect again, start over (a session per round).
    Session,
}

/// What a message that no expect waits for does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum UnmatchedArg {
    /// Count it (and show the first few).
    Count,
    /// Count it and fail the connection (unmatched_message).
    Fail,
}

/// The unit of a time in a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TimeUnitArg {
    /// Seconds (fractions allowed).
    S,
    /// Milliseconds (JavaScript's Date.now()).
    Ms,
    /// Microseconds.
    Us,
    /// Nanoseconds.
    Ns,
}

/// How the load shards time their sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TimerArg {
    /// Precise at light loads, the wheel at heavy ones.
    Auto,
    /// To the microsecond, a wake per deadline.
    Precise,
    /// monoio's 1 ms wheel.
    Wheel,
}

/// Which monoio driver the shards use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum IoDriverArg {
    /// io_uring where the kernel allows it, epoll otherwise.
    Auto,
    /// io_uring only (fails where it is not allowed).
    Uring,
    /// epoll only.
    Epoll,
}

/// What to load and what each connection does: the flags `run` and `ceiling`
/// share, declared once.
#[derive(Debug, Clone, Args)]
pub struct LoadArgs {
    /// Target WebSocket URLs (ws://host:port/path; a port range such as
    /// ws://127.0.0.1:9001-9004/ names one target per port); connections spread
    /// over them round robin. None: start the built-in echo
    /// server in-process on a free loopback port and load it.
    #[arg(value_name = "URL")]
    pub urls: Vec<String>,

    /// Number of concurrent connections (SI suffixes: 10k, 1.5k, 1m), or with
    /// --stages their peak. Ceiling: the connections that carry a rate search,
    /// or how many sessions may run at once. [default: 50; ceiling --dimension
    /// sessions: 1000]
    #[arg(display_order = 11, short = 'c', long = "connections", value_parser = parse_count, allow_hyphen_values = true)]
    pub connections: Option<u64>,

    /// What each connection does. Ceiling: echo or ping (connections, rate),
    /// idle (connections), churn or chat (sessions). [default: echo; ceiling
    /// --dimension sessions: churn]
    #[arg(display_order = 16, short = 'w', long = "workload", value_enum)]
    pub workload: Option<WorkloadArg>,

    /// Message payload size in bytes, timing header included (512, 4k, 64KiB).
    #[arg(display_order = 17, short = 's', long = "size", default_value = "64", value_parser = parse_size, allow_hyphen_values = true)]
    pub size: u64,

    /// Send binary frames (the default).
    #[arg(display_order = 18, long, conflicts_with = "text")]
    pub binary: bool,

    /// Send text frames (payload stays valid UTF-8).
    #[arg(display_order = 19, long)]
    pub text: bool,

    /// Message body from FILE, sent after the timing header (32 bytes with --binary,
    /// 60 with --text); the message is the header plus the file, so --size does not
    /// apply. With --text the file must be valid UTF-8. Read once at start; at most
    /// 64 MiB with the header.
    #[arg(display_order = 20, long = "payload-file", value_name = "FILE", conflicts_with_all = ["template", "size"])]
    pub payload_file: Option<PathBuf>,

    /// Text messages rendered from TEMPLATE. Placeholders: {conn}, {seq}, {ts}
    /// (required), {intended} (needed with --rate/--rate-per-conn), {pad:N} (N filler
    /// letters). Numbers render at a fixed width with a leading 1 (11 digits for conn,
    /// 16 for the others), valid as JSON numbers and inside strings. Other braces are
    /// literal, so JSON needs no escaping; {{seq}} writes the text {seq}. Always text
    /// frames; --size does not apply. Example:
    /// '{"type":"chat","user":"u{conn}","seq":{seq},"ts":{ts},"body":"{pad:100}"}'
    #[arg(display_order = 21, long, value_name = "TEMPLATE", conflicts_with_all = ["payload_file", "binary", "size"])]
    pub template: Option<String>,

    /// Match replies to requests by a JSON field instead of an echo: POINTER (RFC
    /// 6901, e.g. /id or /result/request_id) names where a reply carries the value
    /// the request's --template rendered for {seq} (a number, or the digits at the
    /// end of a string). Replies may come in any order; the request template needs
    /// only {seq}. Example: --template
    /// '{"jsonrpc":"2.0","id":{seq},"method":"echo","params":["hi"]}' --correlate /id
    #[arg(display_order = 21, long, value_name = "POINTER")]
    pub correlate: Option<String>,

    /// Messages each connection keeps in flight in the closed loop. Ceiling
    /// --dimension connections: a closed loop instead of one message a second
    /// per connection. [default: 1]
    #[arg(display_order = 22, long, value_parser = parse_count, allow_hyphen_values = true)]
    pub inflight: Option<u64>,

    /// Open loop: messages per second per connection.
    #[arg(display_order = 24, long = "rate-per-conn", value_parser = parse_rate, allow_hyphen_values = true)]
    pub rate_per_conn: Option<f64>,

    /// Sessions (churn, chat): messages per session.
    #[arg(display_order = 26, long, value_parser = parse_count, allow_hyphen_values = true)]
    pub messages: Option<u64>,

    /// Chat: pause between an answer and the next message (e.g. 500ms).
    #[arg(display_order = 28, long, value_parser = parse_duration, allow_hyphen_values = true)]
    pub think: Option<Duration>,

    /// Idle and push workloads: send a timed PING this often on each connection (30s).
    #[arg(display_order = 29, long, value_parser = parse_duration, allow_hyphen_values = true)]
    pub heartbeat: Option<Duration>,

    /// Push: the text message each connection sends once open, to subscribe
    /// (placeholders {conn}, {agent}, {shard}, {data.COLUMN}, values JSON-escaped),
    /// e.g. '{"op":"subscribe","channel":"ticks","user":"u{conn}"}'.
    #[arg(display_order = 30, long, value_name = "MESSAGE")]
    pub subscribe: Option<String>,

    /// Push: the JSON pointer of a sequence number in each pushed message (e.g.
    /// /params/seq); gaps and duplicates are counted per connection.
    #[arg(display_order = 30, long = "seq", value_name = "POINTER")]
    pub seq_field: Option<String>,

    /// Push: the JSON pointer of the server's send time in each pushed message,
    /// a Unix time (e.g. /params/sent_us): one-way latency, which is only as
    /// right as the two clocks agree.
    #[arg(display_order = 30, long = "sent-at", value_name = "POINTER")]
    pub sent_at: Option<String>,

    /// Push: the unit of --sent-at. [default: what the field's name ends in, as
    /// sent_us or sentMs]
    #[arg(display_order = 30, long = "sent-at-unit", value_enum)]
    pub sent_at_unit: Option<TimeUnitArg>,

    /// Conversation: the steps each connection follows, a TOML file of [[step]]
    /// tables (send, expect + capture, think, repeat, every, close; see the
    /// README); sets --workload conversation.
    #[arg(display_order = 31, long, value_name = "FILE")]
    pub steps: Option<PathBuf>,

    /// Conversation: at the end of the steps, hold the connection (once), start
    /// over (loop) or close and connect again (session). [default: once]
    #[arg(display_order = 31, long = "steps-mode", value_enum)]
    pub steps_mode: Option<StepsModeArg>,

    /// Conversation: a message that no pending expect matches is counted (count)
    /// or also fails its connection (fail). [default: count]
    #[arg(display_order = 31, long, value_enum)]
    pub unmatched: Option<UnmatchedArg>,

    /// The application protocol over WebSocket: raw (messages as they are),
    /// socketio (Engine.IO/Socket.IO v4: open, namespace, pings answered, events
    /// and acks) or graphql-ws (graphql-transport-ws: connection_init, subscribe,
    /// next/complete/error, pings answered).
    #[arg(display_order = 32, long, value_enum, default_value = "raw")]
    pub protocol: ProtocolArg,

    /// Socket.IO: the event measured messages are emitted as. [default: echo;
    /// broadcast for --workload broadcast]
    #[arg(display_order = 32, long, value_name = "NAME")]
    pub event: Option<String>,

    /// Socket.IO: emit with an acknowledgement and time the server's ack (else
    /// the server's answering event, carrying the message back, is timed).
    #[arg(display_order = 32, long)]
    pub ack: bool,

    /// Socket.IO: the namespace to join. [default: /]
    #[arg(display_order = 32, long, value_name = "NS")]
    pub namespace: Option<String>,

    /// Socket.IO: the auth object of the namespace connect, JSON (per-connection
    /// placeholders allowed), e.g. '{"token":"{data.token}"}'.
    #[arg(display_order = 32, long, value_name = "JSON")]
    pub auth: Option<String>,

    /// graphql-ws: the connection_init payload, JSON (per-connection
    /// placeholders allowed).
    #[arg(display_order = 32, long = "init-payload", value_name = "JSON")]
    pub init_payload: Option<String>,

    /// graphql-ws: the operation each measured message subscribes to, timed
    /// from the subscribe to its first next (a query: '{ hello }').
    #[arg(display_order = 32, long, value_name = "QUERY")]
    pub query: Option<String>,

    /// graphql-ws: the variables of --query or of a push's --subscribe, JSON.
    #[arg(display_order = 32, long, value_name = "JSON")]
    pub variables: Option<String>,

    /// The steps as TOML text (a scenario's [[scenario.step]] tables arrive so).
    #[arg(long = "steps-toml", hide = true)]
    pub steps_toml: Option<String>,

    #[command(flatten)]
    pub conn: ConnectArgs,

    /// Write the results as JSON: a run's summary, histograms and per-second
    /// series; a ceiling search's steps, ceiling and whole run. `-` writes them
    /// to stdout (for jq and pipes) and the summary to stderr.
    #[arg(display_order = 41, long, value_name = "FILE")]
    pub json: Option<PathBuf>,

    /// No live progress (run) or step lines (ceiling) on stderr.
    #[arg(display_order = 46, short, long)]
    pub quiet: bool,

    /// Serve Prometheus metrics at http://ADDR/metrics while the run lasts
    /// (127.0.0.1:9091; a bare port binds loopback).
    #[arg(display_order = 47, long = "metrics-addr", value_name = "ADDR")]
    pub metrics_addr: Option<String>,

    /// Add a header to every upgrade request, curl's spelling (repeatable):
    /// -H 'Authorization: Bearer TOKEN'. Host and User-Agent replace wsherd's;
    /// headers the upgrade itself needs (Upgrade, Sec-WebSocket-Key, ...) are refused.
    #[arg(
        short = 'H',
        long = "header",
        value_name = "NAME: VALUE",
        display_order = 60
    )]
    pub headers: Vec<String>,

    /// The Origin header of every upgrade request, as a browser sends it.
    #[arg(long, value_name = "ORIGIN", display_order = 61)]
    pub origin: Option<String>,

    /// Offer these subprotocols, most wanted first (Sec-WebSocket-Protocol):
    /// chat.v2,chat.v1. The report counts which the server chose; a server that
    /// chooses one not offered fails the connection (subprotocol_not_offered).
    #[arg(long, value_name = "LIST", display_order = 62)]
    pub subprotocol: Option<String>,

    /// Fail a connection whose server chooses no subprotocol (subprotocol_missing).
    #[arg(
        long = "require-subprotocol",
        requires = "subprotocol",
        display_order = 63
    )]
    pub require_subprotocol: bool,

    /// Reach the targets through this HTTP CONNECT proxy:
    /// http://[user:pass@]host:port (port 1080 when left out). Without it, the
    /// environment's proxy applies as curl reads it (http_proxy, ALL_PROXY,
    /// NO_PROXY), except to loopback targets.
    #[arg(long, value_name = "URL", display_order = 64)]
    pub proxy: Option<String>,

    /// A CSV file whose first row names the columns: connection N takes row N
    /// modulo the rows, and `{data.COLUMN}` in the URL's path and query or in a
    /// header value is its value there (with {conn}, {agent}, {shard}).
    #[arg(long, value_name = "FILE", display_order = 65)]
    pub data: Option<PathBuf>,

    /// Give every connection a row of its own: refuse a plan with more
    /// connections than the data file has rows.
    #[arg(long = "data-unique", requires = "data", display_order = 66)]
    pub data_unique: bool,

    /// For the first connection that fails its upgrade with each cause, print the
    /// request sent and the answer received (status line, headers, the start of
    /// the body) on stderr.
    #[arg(short = 'v', long = "verbose", display_order = 67)]
    pub verbose: bool,

    /// Print the first N frames of the first connection, both ways (direction,
    /// opcode, FIN, length, the first bytes unmasked) on stderr.
    #[arg(long = "debug-frames", value_name = "N", value_parser = parse_count, display_order = 68)]
    pub debug_frames: Option<u64>,

    /// With no URL: serve the embedded server over TLS (a certificate made at
    /// start) and load it through wss://.
    #[arg(long, display_order = 70)]
    pub tls: bool,

    /// wss://: also trust the CA certificates in this PEM file (repeatable),
    /// besides the system's roots.
    #[arg(long = "ca", value_name = "FILE", display_order = 71)]
    pub ca: Vec<PathBuf>,

    /// wss://: skip the verification of the server's certificate (said on stderr
    /// and in the report). For test servers only.
    #[arg(long, display_order = 72)]
    pub insecure: bool,

    /// wss://: the name sent as SNI and verified in the server's certificate,
    /// instead of the URL's host (for connecting by address).
    #[arg(long, value_name = "NAME", display_order = 73)]
    pub sni: Option<String>,

    /// wss://: a client certificate chain (PEM) for mutual TLS; needs --key.
    #[arg(long, value_name = "FILE", requires = "key", display_order = 74)]
    pub cert: Option<PathBuf>,

    /// wss://: the private key (PEM) of --cert.
    #[arg(long, value_name = "FILE", requires = "cert", display_order = 75)]
    pub key: Option<PathBuf>,

    /// wss://: no TLS session resumption: every connection makes a full
    /// handshake (resumption is on by default, as in browsers).
    #[arg(long = "no-tls-resume", display_order = 76)]
    pub no_tls_resume: bool,

    /// Offer permessage-deflate (RFC 7692): messages compressed both ways where
    /// the server accepts. Options after '=', comma-separated:
    /// --deflate=client_no_context_takeover,server_no_context_takeover,
    /// client_max_window_bits=N,server_max_window_bits=N
    #[arg(
        long,
        value_name = "OPTIONS",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "",
        display_order = 77
    )]
    pub deflate: Option<String>,

    /// Largest message accepted from a server, and all a connection holds of
    /// one: a frame announcing more is refused from its header
    /// (protocol_frame_too_large); a message reassembled from fragments or
    /// inflated past it, a compression bomb included, fails its connection
    /// (message_too_large).
    #[arg(long = "max-message", value_name = "BYTES", value_parser = parse_size, default_value = "64MiB", display_order = 78)]
    pub max_message: u64,
}

#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub load: LoadArgs,

    /// How long the run lasts, connection ramp included (30s, 5m, 1h). [default:
    /// 10s, or the sum of --stages]
    #[arg(display_order = 12, short = 'd', long = "duration", value_parser = parse_duration, allow_hyphen_values = true)]
    pub duration: Option<Duration>,

    /// Load over time, k6 style: DURATION:TARGET stages, each moving linearly to its
    /// target: active connections (30s:1000,1m:1000,30s:0), or an open loop's
    /// messages per second when written as rates (30s:20k/s,1m:20k/s).
    #[arg(display_order = 13, long, conflicts_with = "ramp")]
    pub stages: Option<String>,

    /// Ramp linearly from zero to the full load (-c, or --rate) over this long,
    /// then hold it for the rest of -d.
    #[arg(display_order = 14, long, value_parser = parse_duration, allow_hyphen_values = true)]
    pub ramp: Option<Duration>,

    /// Measure the first part of the run apart and leave it out of the latency
    /// figures and rates (whole seconds; counts and the ledger cover the whole run).
    #[arg(display_order = 15, long, value_parser = parse_duration, allow_hyphen_values = true)]
    pub warmup: Option<Duration>,

    /// Open loop: messages per second across the run, sent on schedule whatever the
    /// server does; latency is timed from each message's intended send time.
    #[arg(display_order = 23, long, value_parser = parse_rate, allow_hyphen_values = true, conflicts_with = "rate_per_conn")]
    pub rate: Option<f64>,

    /// Broadcast: how many connections publish (spread over the connections).
    #[arg(display_order = 25, long, value_parser = parse_count, allow_hyphen_values = true)]
    pub publishers: Option<u64>,

    /// Sessions: new sessions per second across the run (-c then caps how many run
    /// at once); without it every connection slot starts again at once.
    #[arg(display_order = 27, long = "session-rate", value_parser = parse_rate, allow_hyphen_values = true)]
    pub session_rate: Option<f64>,

    /// At the end, how long to wait for echoes still in flight before closing.
    #[arg(display_order = 30, long = "drain", default_value = "1s", value_parser = parse_duration, allow_hyphen_values = true)]
    pub drain: Duration,

    /// At the end, after the drain, how long the close handshakes may take in all
    /// (shards close a few hundred connections at a time; closes not answered by
    /// then are counted unanswered). [default: 1s plus 0.1 ms per connection of a
    /// shard, so 10,000 connections on one shard get 2s]
    #[arg(display_order = 31, long = "close-timeout", value_parser = parse_duration, allow_hyphen_values = true)]
    pub close_timeout: Option<Duration>,

    /// Run the scenarios of a TOML file (one after another or side by side), each
    /// reported on its own and in total; only -q and --json go with it.
    #[arg(display_order = 38, long, value_name = "FILE")]
    pub scenario: Option<PathBuf>,

    /// Run as agent I of N (1/4, 2/4, ...): take the I-th share of the connections
    /// and of the rate, so N processes (or hosts) together make one run; merge their
    /// --json results with `wsherd merge`. job/N: I from JOB_COMPLETION_INDEX + 1
    /// (a pod of a Kubernetes Indexed Job).
    #[arg(display_order = 39, long, value_name = "I/N")]
    pub agent: Option<String>,

    /// Start at this Unix time (seconds), so agents begin together.
    #[arg(display_order = 40, long = "start-at", value_name = "UNIX_TIME")]
    pub start_at: Option<f64>,

    #[command(flatten)]
    pub reports: ReportFileArgs,

    /// Write an HdrHistogram interval log: the round trip of every second.
    #[arg(display_order = 45, long, value_name = "FILE")]
    pub hlog: Option<PathBuf>,

    #[command(flatten)]
    pub judge: JudgeArgs,

    /// The flags given on the command line (clap ids), filled in from clap's
    /// matches by `RunArgs::parse_from`/the command layer: `--scenario` accepts
    /// only a few beside it.
    #[arg(skip)]
    pub given: Vec<String>,
}

/// How connections are made and which cores carry them (`run` and `ceiling`).
#[derive(Debug, Clone, Args)]
pub struct ConnectArgs {
    /// New connections per second across the run, so a connect storm is never
    /// counted as latency (0: as fast as possible).
    #[arg(display_order = 32, long = "connect-rate", default_value = "2000", value_parser = parse_rate, allow_hyphen_values = true)]
    pub connect_rate: f64,

    /// Give up on a TCP connect or WebSocket upgrade after this long.
    #[arg(display_order = 33, long = "connect-timeout", default_value = "5s", value_parser = parse_duration, allow_hyphen_values = true)]
    pub connect_timeout: Duration,

    /// Dial a lost connection (or a failed dial) again, after a jittered
    /// exponential backoff between MIN and MAX: for long holds against servers
    /// that restart. Counted: attempts, successes, time disconnected. (Staged
    /// runs always dial again, after 1 s.) [default: 1s..30s when given alone]
    #[arg(display_order = 33, long, value_name = "MIN..MAX", num_args = 0..=1, require_equals = true, default_missing_value = "1s..30s", value_parser = parse_backoff)]
    pub reconnect: Option<(Duration, Duration)>,

    /// Run the whole duration even when nothing can be reached (a flapping
    /// target). Without it, a run whose every connection attempt of the first
    /// 3 s failed (refused, unresolvable, upgrade refused) and none succeeded
    /// stops there with its error.
    #[arg(display_order = 33, long = "keep-trying")]
    pub keep_trying: bool,

    /// Number of load shards (one pinned thread per core). [default: every core,
    /// or the cores left over by the embedded server]
    #[arg(display_order = 34, long, value_parser = parse_count, allow_hyphen_values = true)]
    pub shards: Option<u64>,

    /// Shards of the embedded server (only when no URL is given).
    #[arg(display_order = 35, long = "server-shards", value_parser = parse_count, allow_hyphen_values = true)]
    pub server_shards: Option<u64>,

    /// monoio driver: io_uring with epoll fallback (auto), or force one.
    #[arg(display_order = 36, long = "io-driver", value_enum, default_value_t = IoDriverArg::Auto)]
    pub io_driver: IoDriverArg,

    /// How sends are timed: precise (to the microsecond: a timerfd through
    /// io_uring, a wake per deadline), wheel (monoio's 1 ms ticks: up to ~2 ms
    /// late, about half the CPU at high rates), or auto (precise up to 10,000
    /// scheduled messages/s per shard, the wheel above).
    #[arg(display_order = 36, long, value_enum, default_value_t = TimerArg::Auto)]
    pub timer: TimerArg,

    /// Source addresses to connect from, spread round robin (127.0.0.1-127.0.0.16,
    /// 10.0.0.5,fd00::1-fd00::4): each (source, target) pair has its own ephemeral
    /// port range, so N sources hold N times the connections. With --agent, each
    /// agent takes its own slice.
    #[arg(display_order = 37, long = "source-ip", value_name = "ADDRS")]
    pub source_ip: Option<String>,
}

/// Report files rendered from the results (on `run` and `report`).
#[derive(Debug, Clone, Default, Args)]
pub struct ReportFileArgs {
    /// Write a self-contained HTML report with charts (no network needed to view it).
    #[arg(display_order = 42, long, value_name = "FILE")]
    pub html: Option<PathBuf>,

    /// Write the per-second series as CSV (latencies in ms, 3 decimals).
    #[arg(display_order = 43, long, value_name = "FILE")]
    pub csv: Option<PathBuf>,

    /// Write HdrHistogram percentile distributions: PREFIX.rtt.hgrm,
    /// PREFIX.connect.hgrm, ... one per latency kind (values in ms); a directory
    /// (`out/`) gets out/rtt.hgrm, out/connect.hgrm, ...
    #[arg(display_order = 44, long, value_name = "PREFIX")]
    pub hgrm: Option<PathBuf>,
}

impl From<ReportFileArgs> for ReportFiles {
    fn from(a: ReportFileArgs) -> ReportFiles {
        ReportFiles {
            html: a.html,
            csv: a.csv,
            hgrm: a.hgrm,
        }
    }
}

/// Pass/fail thresholds and assessment bands (`run` and `report`).
#[derive(Debug, Clone, Default, Args)]
pub struct JudgeArgs {
    /// Fail the run (exit 99) unless METRIC OP VALUE holds on the measured phase,
    /// k6 style; repeatable: 'rtt.p99<50ms', 'errors<0.1%', 'connect.p95<200ms',
    /// 'rate>=19000/s'. Metrics: rtt, rtt_uncorrected, connect, handshake, delivery,
    /// session, send_lag with .p50/.p90/.p95/.p99/.p999/.min/.mean/.max; errors,
    /// connect_errors, rate, sent_rate, established, lost, ... (see README).
    #[arg(display_order = 48, long = "threshold", value_name = "EXPR")]
    pub thresholds: Vec<String>,

    /// Good/acceptable bounds of the assessment, METRIC=GOOD,ACCEPTABLE, repeatable
    /// or ';'-separated: 'rtt.p99=50ms,200ms', 'rate=20k/s,10k/s'.
    #[arg(
        display_order = 49,
        long = "bands",
        value_name = "METRIC=GOOD,ACCEPTABLE"
    )]
    pub bands: Vec<String>,
}

#[derive(Debug, Clone, Args)]
pub struct MergeArgs {
    /// Results files written by `wsherd run --json` (agents of one run).
    #[arg(value_name = "RESULTS.json", required = true, num_args = 1..)]
    pub files: Vec<std::path::PathBuf>,

    /// Write the merged results here (`-`: standard output, the summary then
    /// goes to stderr), as `run --json` does.
    #[arg(
        short = 'o',
        long = "json",
        visible_alias = "output",
        value_name = "FILE"
    )]
    pub json: Option<std::path::PathBuf>,

    /// Do not print the merged summary.
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Debug, Clone, Args)]
pub struct DoctorArgs {
    /// Targets of the planned run (none: the built-in server in the same process).
    #[arg(value_name = "URL")]
    pub urls: Vec<String>,

    /// Connections of the planned run.
    #[arg(short = 'c', long = "connections", default_value = "50", value_parser = parse_count)]
    pub connections: u64,

    /// Source addresses of the planned run (as `wsherd run --source-ip`).
    #[arg(long = "source-ip", value_name = "ADDRS")]
    pub source_ip: Option<String>,

    /// Check the share of agent I of N (as `wsherd run --agent`): its connections,
    /// its slice of the source addresses, and the ports all agents share.
    #[arg(long, value_name = "I/N")]
    pub agent: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct ReportArgs {
    /// A results file written by `wsherd run --json` or `wsherd merge`.
    #[arg(value_name = "RESULTS.json")]
    pub file: std::path::PathBuf,

    #[command(flatten)]
    pub reports: ReportFileArgs,
    /// Judge the saved run again with these thresholds and bands.
    #[command(flatten)]
    pub judge: JudgeArgs,
}

/// What a ceiling search raises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DimensionArg {
    /// Concurrent connections (added without closing the ones already open).
    Connections,
    /// Messages per second across -c connections (an open loop whose pace
    /// changes in place).
    Rate,
    /// New sessions per second (churn or chat workloads).
    Sessions,
}

#[derive(Debug, Clone, Args)]
pub struct CeilingArgs {
    #[command(flatten)]
    pub load: LoadArgs,

    /// What to raise: connections, rate (messages/s) or sessions (new sessions/s).
    #[arg(display_order = 1, long, value_enum)]
    pub dimension: DimensionArg,

    /// The service level each step must hold: thresholds as in `run --threshold`,
    /// comma-separated or repeated: 'rtt.p99<50ms,errors<0.1%'.
    #[arg(
        display_order = 2,
        long,
        value_name = "EXPRS",
        default_value = "rtt.p99<100ms,errors<1%"
    )]
    pub slo: Vec<String>,

    /// First level (connections, or per second for rate and sessions; SI
    /// suffixes). [default: 100 connections, 1k messages/s, 50 sessions/s]
    #[arg(display_order = 3, long, value_parser = parse_rate, allow_hyphen_values = true)]
    pub start: Option<f64>,

    /// Highest level to try; for connections also the upper bound, what this
    /// host fits (open files, ports). [default: connections: what this host
    /// fits; rate 10M/s; sessions 1M/s]
    #[arg(display_order = 4, long, value_parser = parse_rate, allow_hyphen_values = true)]
    pub max: Option<f64>,

    /// Each step's level is the last passing one times this, until a step fails.
    #[arg(display_order = 5, long, default_value = "2", value_parser = parse_rate, allow_hyphen_values = true)]
    pub growth: f64,

    /// How long each step is measured (after its settle period).
    #[arg(display_order = 6, long = "step-duration", default_value = "10s", value_parser = parse_duration, allow_hyphen_values = true)]
    pub step_duration: Duration,

    /// How long each new level runs before it is measured (whole seconds; a
    /// connections step also waits for its new connections to be dialed).
    #[arg(display_order = 7, long, default_value = "3s", value_parser = parse_duration, allow_hyphen_values = true)]
    pub settle: Duration,

    /// Stop bisecting when the ceiling lies between two levels this close
    /// (5%, or 0.05).
    #[arg(display_order = 8, long, default_value = "5%")]
    pub precision: String,

    /// Give up the search after this long and report what was found.
    #[arg(display_order = 9, long = "max-time", default_value = "30m", value_parser = parse_duration, allow_hyphen_values = true)]
    pub max_time: Duration,

    /// Write an HTML report: latency against load (the knee), the steps, the run.
    #[arg(display_order = 42, long, value_name = "FILE")]
    pub html: Option<PathBuf>,
}

/// What the built-in server does with a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ServeModeArg {
    /// Send every message back to its sender.
    Echo,
    /// Send every message to every connected client (all shards).
    Broadcast,
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on. An address something already listens on is refused,
    /// unless --reuse-port.
    #[arg(long, default_value = "127.0.0.1:9000")]
    pub addr: String,

    /// Share --addr on purpose with other `wsherd serve` processes (SO_REUSEPORT):
    /// the kernel spreads new connections over all their shards, and each prints
    /// its own totals on exit. Without it, a second server on the same address is
    /// refused instead of silently taking part of the load.
    #[arg(long = "reuse-port")]
    pub reuse_port: bool,

    /// Echo each message to its sender, or broadcast it to every client.
    #[arg(long, value_enum, default_value_t = ServeModeArg::Echo)]
    pub mode: ServeModeArg,

    /// Broadcast: messages queued per slow receiver before its copies are dropped.
    #[arg(long = "queue", default_value = "1024", value_parser = parse_count)]
    pub queue: u64,

    /// The largest frame a client may send, and the largest message the server
    /// holds whole (reassembled in broadcast mode, inflated with --deflate);
    /// larger ones close the connection with 1009. Echo mode sends fragments
    /// back as they come and holds none.
    #[arg(long = "max-message", value_name = "BYTES", value_parser = parse_size, default_value = "64MiB")]
    pub max_message: u64,

    /// Number of server shards (one pinned thread per core, each with its own
    /// SO_REUSEPORT listener). [default: every core]
    #[arg(long, value_parser = parse_count, allow_hyphen_values = true)]
    pub shards: Option<u64>,

    /// First core to pin shards to (shards take consecutive cores from here).
    #[arg(long = "first-core", default_value = "0", value_parser = parse_count)]
    pub first_core: u64,

    /// monoio driver: io_uring with epoll fallback (auto), or force one.
    #[arg(long = "io-driver", value_enum, default_value_t = IoDriverArg::Auto)]
    pub io_driver: IoDriverArg,

    /// Test fault: answer every message this long after it arrived (a known
    /// service time, e.g. 5ms).
    #[arg(long, value_parser = parse_duration, allow_hyphen_values = true)]
    pub delay: Option<Duration>,

    /// Test fault: stop reading for this long every --stall-every (a known stall,
    /// e.g. 100ms every 1s), to show what coordinated omission hides.
    #[arg(long, value_parser = parse_duration, allow_hyphen_values = true, requires = "stall_every")]
    pub stall: Option<Duration>,

    /// How often the --stall happens.
    #[arg(long = "stall-every", value_parser = parse_duration, allow_hyphen_values = true, requires = "stall")]
    pub stall_every: Option<Duration>,

    /// No periodic status line on stderr.
    #[arg(short, long)]
    pub quiet: bool,

    /// Serve Prometheus metrics at http://ADDR/metrics (127.0.0.1:9092; a bare
    /// port binds loopback).
    #[arg(long = "metrics-addr", value_name = "ADDR")]
    pub metrics_addr: Option<String>,

    /// Serve TLS (wss://) with this certificate chain (PEM); needs --tls-key.
    #[arg(long = "tls-cert", value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// The private key (PEM: PKCS#8, PKCS#1 or SEC1) of --tls-cert.
    #[arg(long = "tls-key", value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Serve TLS with a certificate made at start (its own CA, ECDSA P-256, for
    /// localhost, 127.0.0.1, ::1 and the --addr address); the CA's PEM goes to
    /// --tls-ca-out so clients can trust it (wsherd run --ca FILE).
    #[arg(long = "tls-self-signed", conflicts_with = "tls_cert")]
    pub tls_self_signed: bool,

    /// Accept permessage-deflate (RFC 7692) from clients that offer it, with the
    /// parameters they ask for (echo mode).
    #[arg(long)]
    pub deflate: bool,

    /// With --tls-self-signed: write the CA certificate (PEM) here.
    #[arg(long = "tls-ca-out", value_name = "FILE", requires = "tls_self_signed")]
    pub tls_ca_out: Option<PathBuf>,

    /// Test knob (for testing wsherd itself and ceiling searches): hold at most N
    /// WebSocket connections at once across all shards of this process; beyond N
    /// an upgrade is refused with HTTP 503 (Retry-After: 1) and counted as
    /// rejected. A connection that ends makes room again.
    #[arg(
        long = "max-connections",
        value_name = "N",
        value_parser = parse_count,
        allow_hyphen_values = true,
        help_heading = TEST_KNOBS
    )]
    pub max_connections: Option<u64>,

    /// Test knob (for testing wsherd itself and ceiling searches): each shard
    /// serves messages one at a time, taking this long each (e.g. 200us), so a
    /// shard holds exactly 1/D messages per second and the server shards/D; above
    /// that its queue and latency grow without bound. No CPU is spent: answers wait
    /// on a shard-local clock. Broadcast: per published message, on the shard of
    /// its publisher.
    #[arg(
        long = "service-time",
        value_name = "D",
        value_parser = parse_duration,
        allow_hyphen_values = true,
        help_heading = TEST_KNOBS
    )]
    pub service_time: Option<Duration>,
}

/// Parses the binary's command line, recording which flags `run` was given.
pub fn parse_command_line() -> Result<Cli, clap::Error> {
    use clap::FromArgMatches;
    let m = command().try_get_matches()?;
    let mut cli = Cli::from_arg_matches(&m)?;
    if let (Command::Run(a), Some(("run", sub))) = (&mut cli.command, m.subcommand()) {
        a.given = given_flags(&command().find_subcommand("run").cloned(), sub);
    }
    Ok(cli)
}

/// Flags `ceiling` shares with `run` (one `LoadArgs`) but refuses, being for
/// workloads a search does not take (push, conversations): kept out of its help.
const NOT_FOR_CEILING: [&str; 7] = [
    "sent-at",
    "sent-at-unit",
    "seq",
    "subscribe",
    "steps",
    "steps-mode",
    "unmatched",
];

/// The whole command line as clap reads it: the derived one, with `ceiling`'s
/// help trimmed to the workloads and flags it takes.
pub fn command() -> clap::Command {
    use clap::CommandFactory;
    Cli::command().mut_subcommand("ceiling", |mut c| {
        let ids: Vec<String> = c
            .get_arguments()
            .filter(|a| a.get_long().is_some_and(|l| NOT_FOR_CEILING.contains(&l)))
            .map(|a| a.get_id().to_string())
            .collect();
        for id in ids {
            c = c.mut_arg(id, |a| a.hide(true));
        }
        c.mut_arg("workload", |a| {
            a.hide_possible_values(true).help(
                "What each connection does: echo or ping (--dimension connections or rate), \
                 idle (connections; with --heartbeat to time it), churn or chat (sessions). \
                 [default: echo; --dimension sessions: churn]",
            )
        })
    })
}

/// Parses what follows `wsherd NAME` on a command line as `T`'s flags (library
/// users and tests; the binary parses the whole line with `parse_command_line`).
fn parse_sub<T: Args + clap::FromArgMatches, I, S>(
    name: &'static str,
    args: I,
) -> Result<(T, Vec<String>), crate::error::Error>
where
    I: IntoIterator<Item = S>,
    S: Into<std::ffi::OsString> + Clone,
{
    let cmd = T::augment_args(clap::Command::new(name).no_binary_name(true));
    let m = cmd
        .clone()
        .try_get_matches_from(args)
        .map_err(|e| crate::error::Error::usage(clap_error_line(&e)))?;
    let t = T::from_arg_matches(&m).map_err(|e| crate::error::Error::usage(clap_error_line(&e)))?;
    Ok((t, given_flags(&Some(cmd), &m)))
}

/// `wsherd run`'s flags from what follows `wsherd run`.
pub fn parse_run_args<I, S>(args: I) -> Result<RunArgs, crate::error::Error>
where
    I: IntoIterator<Item = S>,
    S: Into<std::ffi::OsString> + Clone,
{
    let (mut a, given): (RunArgs, _) = parse_sub("wsherd run", args)?;
    a.given = given;
    Ok(a)
}

/// `wsherd ceiling`'s flags from what follows `wsherd ceiling`.
pub fn parse_ceiling_args<I, S>(args: I) -> Result<CeilingArgs, crate::error::Error>
where
    I: IntoIterator<Item = S>,
    S: Into<std::ffi::OsString> + Clone,
{
    parse_sub("wsherd ceiling", args).map(|(a, _)| a)
}

/// `wsherd serve`'s flags from what follows `wsherd serve`.
pub fn parse_serve_args<I, S>(args: I) -> Result<ServeArgs, crate::error::Error>
where
    I: IntoIterator<Item = S>,
    S: Into<std::ffi::OsString> + Clone,
{
    parse_sub("wsherd serve", args).map(|(a, _)| a)
}

/// The flags given on the command line itself (not defaults), as the user
/// spells them: `--connections`, `-q` shown as `--quiet`, `URL`.
fn given_flags(cmd: &Option<clap::Command>, m: &clap::ArgMatches) -> Vec<String> {
    use clap::parser::ValueSource;
    let Some(cmd) = cmd else {
        return Vec::new();
    };
    m.ids()
        .filter(|id| m.value_source(id.as_str()) == Some(ValueSource::CommandLine))
        .filter_map(|id| cmd.get_arguments().find(|a| a.get_id() == id))
        .map(|a| match a.get_long() {
            Some(l) => format!("--{l}"),
            None => a
                .get_value_names()
                .and_then(|v| v.first())
                .map_or_else(|| a.get_id().to_string(), |v| v.to_string()),
        })
        .collect()
}

/// Flags of other load tools a user may type out of habit, and what wsherd calls
/// the same thing.
const FOREIGN_FLAGS: &[(&[&str], &str)] = &[
    (
        &["-R"],
        "wrk2's -R is --rate N here (messages per second, all connections together)",
    ),
    (
        &["-t", "--threads"],
        "wrk's threads are --shards N here (one pinned thread per core; default: every core)",
    ),
    (
        &["--vus", "-u"],
        "k6's virtual users are connections here: -c/--connections N",
    ),
    (
        &["--latency"],
        "latency percentiles are always in the report; --hgrm PREFIX writes the histograms",
    ),
    (&["-z"], "oha's -z is -d/--duration here (10s, 1m)"),
    (
        &["-n", "--iterations"],
        "a run lasts -d/--duration; for sessions of N messages each use \
         --workload churn --messages N",
    ),
    (
        &["--rps", "--qps", "-qps"],
        "the message rate is --rate N (all connections) or --rate-per-conn N",
    ),
    (
        &["--listen", "--bind", "--port"],
        "wsherd serve listens on --addr HOST:PORT (e.g. --addr 127.0.0.1:9000)",
    ),
];

/// A command-line error as one line for the binary: clap's message, with a
/// suggestion for a misspelled flag or subcommand, a hint for a flag of another
/// tool (wrk2's `-R`, k6's `--vus`), and the help to read (`args`: the command
/// line, to name the subcommand).
pub fn usage_error_line(e: &clap::Error, args: &[String]) -> String {
    use clap::error::{ContextKind, ContextValue};
    let get = |kind| match e.get(kind) {
        Some(ContextValue::String(s)) => Some(s.clone()),
        Some(ContextValue::Strings(v)) => v.first().cloned(),
        _ => None,
    };
    let cli = command();
    let mut subs: Vec<&clap::Command> = cli.get_subcommands().collect();
    subs.sort_by_key(|c| c.get_display_order());
    let names: Vec<String> = subs.iter().map(|c| c.get_name().to_string()).collect();
    let sub = args.iter().skip(1).find(|a| names.contains(a));
    let mut line = clap_error_line(e);
    let invalid = get(ContextKind::InvalidArg).unwrap_or_default();
    let flag = invalid.split(['=', ' ']).next().unwrap_or_default();
    // The subcommands other than this one that take `flag`.
    let elsewhere: Vec<&str> = flag
        .strip_prefix("--")
        .map(|long| {
            cli.get_subcommands()
                .filter(|c| Some(&c.get_name().to_string()) != sub)
                .filter(|c| c.get_arguments().any(|a| a.get_long() == Some(long)))
                .map(|c| c.get_name())
                .collect()
        })
        .unwrap_or_default();
    // Only a flag this subcommand does not know belongs elsewhere: a bad or
    // missing value of one it takes keeps clap's own message (which value,
    // what is accepted).
    let unknown = e.kind() == clap::error::ErrorKind::UnknownArgument;
    if !unknown {
        if let Some(s) = get(ContextKind::SuggestedValue) {
            line.push_str(&format!("; did you mean '{s}'?"));
        }
    } else if let Some((_, hint)) = FOREIGN_FLAGS.iter().find(|(f, _)| f.contains(&flag)) {
        line.push_str(&format!("; {hint}"));
    } else if let (Some(sub), false) = (sub, elsewhere.is_empty()) {
        line.push_str(&format!(
            "; {flag} is a flag of wsherd {}, not of wsherd {sub}",
            elsewhere.join(" and wsherd ")
        ));
    } else if let Some(s) = get(ContextKind::SuggestedArg) {
        line.push_str(&format!("; did you mean '{s}'?"));
    }
    if let Some(typed) = get(ContextKind::InvalidSubcommand) {
        if typed.contains("://") {
            line.push_str(&format!(
                "; to load it: wsherd run {typed} (see wsherd run --help)"
            ));
            return line;
        }
        // clap suggests only close matches of longer names; `rn` gets one too.
        let near = get(ContextKind::SuggestedSubcommand).or_else(|| {
            names
                .iter()
                .map(|n| (strsim::damerau_levenshtein(&typed, n), n))
                .filter(|(d, n)| *d <= 2 && *d < n.len())
                .min()
                .map(|(_, n)| n.clone())
        });
        match near {
            Some(n) => line.push_str(&format!("; did you mean '{n}'? (see wsherd --help)")),
            None => line.push_str(&format!(
                "; the commands are {} (see wsherd --help)",
                names.join(", ")
            )),
        }
        return line;
    }
    match sub {
        Some(sub) => line.push_str(&format!(" (see wsherd {sub} --help)")),
        None => line.push_str(" (see wsherd --help)"),
    }
    line
}

/// A clap error in one line: its first paragraph (the missing arguments of
/// "required arguments were not provided" are on the lines after the first).
pub fn clap_error_line(e: &clap::Error) -> String {
    let msg = e.to_string();
    let para: Vec<&str> = msg
        .lines()
        .take_while(|l| !l.trim().is_empty())
        .map(str::trim)
        .collect();
    if para.is_empty() {
        "invalid arguments".to_string()
    } else {
        para.join(" ")
    }
}

/// Help heading of `wsherd serve`'s capacity knobs.
const TEST_KNOBS: &str = "Test knobs (for testing wsherd itself and ceiling searches)";

/// clap's spelling of the shared enums stays here; the layers below see only
/// `vocab::kinds`.
macro_rules! into_kind {
    ($arg:ident => $kind:ident { $($v:ident),* }) => {
        impl From<$arg> for $kind {
            fn from(a: $arg) -> $kind {
                match a {
                    $($arg::$v => $kind::$v,)*
                }
            }
        }
    };
}

into_kind!(WorkloadArg => WorkloadKind { Echo, Ping, Idle, Churn, Chat, Broadcast, Push, Conversation });
into_kind!(StepsModeArg => Mode { Once, Loop, Session });
into_kind!(TimeUnitArg => TimeUnit { S, Ms, Us, Ns });

into_kind!(IoDriverArg => IoDriver { Auto, Uring, Epoll });
into_kind!(TimerArg => Timer { Auto, Precise, Wheel });
into_kind!(DimensionArg => Dimension { Connections, Rate, Sessions });
into_kind!(ServeModeArg => ServeMode { Echo, Broadcast });

#[cfg(test)]
mod tests {
    /// The command line clap builds, with ceiling's trimmed help, is
    /// consistent (clap checks it only in debug builds, and would panic then).
    #[test]
    fn the_command_line_is_consistent() {
        super::command().debug_assert();
        let ceiling = super::command();
        let ceiling = ceiling.find_subcommand("ceiling").unwrap();
        let hidden: Vec<&str> = ceiling
            .get_arguments()
            .filter(|a| a.is_hide_set())
            .filter_map(|a| a.get_long())
            .filter(|l| *l != "steps-toml") // hidden everywhere: scenario files' own
            .collect();
        assert_eq!(hidden.len(), super::NOT_FOR_CEILING.len(), "{hidden:?}");
    }
}
