//! The configuration of `wsherd serve`: its flags checked and turned into a
//! `ServeConfig` (the server's own settings type). Never imports the command
//! layer.

use crate::cli::ServeArgs;
use crate::error::{Error, Result};
use crate::server::{ServeConfig, ServerFaults};
use crate::vocab::kinds::ServeMode;
use std::net::SocketAddr;

impl ServeConfig {
    /// Parses what follows `wsherd serve` on a command line and validates it.
    pub fn from_args<I, S>(args: I) -> Result<ServeConfig>
    where
        I: IntoIterator<Item = S>,
        S: Into<std::ffi::OsString> + Clone,
    {
        ServeConfig::from_cli(crate::cli::parse_serve_args(args)?)
    }

    pub fn from_cli(a: ServeArgs) -> Result<ServeConfig> {
        let addr: SocketAddr = a.addr.parse().map_err(|_| {
            Error::usage(format!(
                "--addr '{}' is not an IP:port address (example: 127.0.0.1:9000)",
                a.addr
            ))
        })?;
        let all = crate::sys::available_cores();
        let first = a.first_core as usize;
        let candidates: Vec<usize> = all.iter().copied().filter(|&c| c >= first).collect();
        if candidates.is_empty() {
            return Err(Error::usage(format!(
                "--first-core {first}: no core at or above it is available (cores: {all:?})"
            )));
        }
        let n = match a.shards {
            Some(0) => return Err(Error::usage("--shards must be at least 1")),
            Some(n) if n as usize > candidates.len() => {
                return Err(Error::usage(format!(
                    "--shards {n} is more than the {} cores available from core {first}",
                    candidates.len()
                )))
            }
            Some(n) => n as usize,
            None => candidates.len(),
        };
        let stall = match (a.stall, a.stall_every) {
            (Some(s), Some(e)) if s.is_zero() || e.is_zero() => {
                return Err(Error::usage(
                    "--stall and --stall-every must be longer than zero",
                ))
            }
            (Some(s), Some(e)) if s >= e => {
                return Err(Error::usage(format!(
                "--stall {} must be shorter than --stall-every {} (or the server never answers)",
                humantime::format_duration(s),
                humantime::format_duration(e)
            )))
            }
            (Some(s), Some(e)) => Some((s, e)),
            _ => None,
        };
        if a.queue == 0 {
            return Err(Error::usage("--queue must be at least 1 message"));
        }
        if a.max_message < 125 {
            return Err(Error::usage(format!(
                "--max-message {}: below 125 bytes, the largest ping or close a client may send; give at least 125B",
                a.max_message
            )));
        }
        if a.max_connections == Some(0) {
            return Err(Error::usage(
                "--max-connections must be at least 1 (it caps the connections held at once)",
            ));
        }
        if a.service_time.is_some_and(|d| d.is_zero()) {
            return Err(Error::usage(
                "--service-time must be longer than zero (e.g. 200us); leave it out for no service time",
            ));
        }
        let tls = serve_tls(&a, addr)?;
        if a.deflate && a.mode == crate::cli::ServeModeArg::Broadcast {
            return Err(Error::usage(
                "--deflate works with --mode echo only: broadcast copies are encoded once for every receiver",
            ));
        }
        Ok(ServeConfig {
            tls,
            deflate: a.deflate,
            reuse_port: a.reuse_port,
            max_message: a.max_message.min(usize::MAX as u64) as usize,
            addr,
            mode: a.mode.into(),
            queue: a.queue as usize,
            cores: candidates[..n].to_vec(),
            io_driver: a.io_driver.into(),
            quiet: a.quiet,
            faults: ServerFaults {
                delay: a.delay.filter(|d| !d.is_zero()),
                stall,
                max_connections: a.max_connections,
                service_time: a.service_time,
            },
            metrics_addr: a
                .metrics_addr
                .as_deref()
                .map(crate::export::parse_addr)
                .transpose()?,
        })
    }
}

/// `--tls-cert/--tls-key`, or `--tls-self-signed` (whose CA goes to
/// `--tls-ca-out`): the server's TLS config, None for plain ws://.
fn serve_tls(
    a: &ServeArgs,
    addr: SocketAddr,
) -> Result<Option<std::sync::Arc<rustls::ServerConfig>>> {
    if let (Some(cert), Some(key)) = (&a.tls_cert, &a.tls_key) {
        return super::tls::server_from_files(cert, key).map(Some);
    }
    if !a.tls_self_signed {
        return Ok(None);
    }
    let mut names: Vec<String> = ["localhost", "127.0.0.1", "::1"].map(String::from).to_vec();
    if !addr.ip().is_unspecified() && !names.contains(&addr.ip().to_string()) {
        names.push(addr.ip().to_string());
    }
    let (config, made) = super::tls::self_signed_server(&names)?;
    if let Some(out) = &a.tls_ca_out {
        std::fs::write(out, &made.ca_pem).map_err(|e| Error::Output {
            path: out.display().to_string(),
            why: format!("--tls-ca-out: {e}"),
        })?;
    }
    Ok(Some(config))
}

/// The built-in server a run starts in its own process when no URL is given:
/// on a free loopback port, on the plan's server cores, relaying to everyone
/// for a broadcast workload and echoing otherwise.
pub fn embedded(
    plan: &crate::plan::Plan,
    tls: Option<std::sync::Arc<rustls::ServerConfig>>,
) -> Option<ServeConfig> {
    plan.embedded().then(|| ServeConfig {
        tls,
        reuse_port: false,
        // What the run's clients accept back is what the server accepts.
        max_message: plan.max_message,
        deflate: plan.offer.deflate.is_some() && plan.workload.broadcast.is_none(),
        addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        mode: if plan.workload.broadcast.is_some() {
            ServeMode::Broadcast
        } else {
            ServeMode::Echo
        },
        queue: 1024,
        cores: plan.server_cores.clone(),
        io_driver: plan.io_driver,
        quiet: true,
        faults: ServerFaults::default(),
        metrics_addr: None,
    })
}
