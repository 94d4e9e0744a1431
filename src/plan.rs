//! The plan of a run: everything the configuration stage decided, and each shard's
//! whole slice of it (its core, its block of connection ids, its share of the
//! connections and of the connect rate), so shards execute their slice and slice
//! nothing themselves.
//!
//! The configuration stage (`config`) builds a `Plan`; the engine starts what it
//! says; shards read their `ShardPlan` and the run's settings. The even split and
//! the round robin of targets and sources are written here, once. Must never
//! import the configuration stage, the engine or the shards.

use std::net::IpAddr;

/// A validated run: what it loads and how, and each shard's slice of it.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Targets; empty means: start the embedded server and load it.
    pub targets: Vec<crate::target::Target>,
    /// This process's source addresses (its agent slice of `--source-ip`).
    pub sources: Vec<std::net::IpAddr>,
    /// Addresses `--source-ip` named for all agents together (0: none given).
    pub all_sources: u64,
    /// Connections of the whole run, every agent included.
    pub whole_connections: u64,
    /// Cores for the embedded server's shards (empty when targets are given).
    pub server_cores: Vec<usize>,
    pub connections: u64,
    pub duration: std::time::Duration,
    /// Staged or ramped active connections (closed-loop and holding workloads).
    pub conn_profile: Option<crate::pacer::Profile>,
    /// Open loops: messages per second of the whole run over time.
    pub rate_profile: Option<crate::pacer::Profile>,
    /// Leading part of the run measured apart (whole seconds).
    pub warmup: std::time::Duration,
    /// First connection id of this process (agents of one run use disjoint ids).
    pub conn_id_base: u64,
    /// (I, N) when this process is agent I of N.
    pub agent: Option<(u64, u64)>,
    /// Wall-clock start (Unix seconds), so agents begin together.
    pub start_at: Option<f64>,
    pub workload: crate::workload::Workload,
    pub payload: crate::payload::PayloadSpec,
    /// `--correlate`: replies are matched to requests by this field (else by the
    /// echo's own timing stamp).
    pub correlate: Option<crate::vocab::jsonptr::Pointer>,
    /// `--workload push`: the subscribe message and the fields pushed messages carry.
    pub push: Option<crate::workload::Push>,
    /// `--workload conversation`: the steps every connection follows.
    pub script: Option<std::sync::Arc<crate::script::Script>>,
    /// The application protocol over WebSocket (`--protocol`).
    pub protocol: crate::proto::Protocol,
    /// Connections per second across the run; 0 = unpaced.
    pub connect_rate: f64,
    pub connect_timeout: std::time::Duration,
    /// `--keep-trying`: run the whole duration even when nothing can be reached
    /// (otherwise the run gives up after `GIVE_UP_AFTER`).
    pub keep_trying: bool,
    /// `--reconnect`: dial lost connections again, backing off between these.
    pub reconnect: Option<(std::time::Duration, std::time::Duration)>,
    pub drain: std::time::Duration,
    /// The close window after the drain.
    pub close_timeout: std::time::Duration,
    /// One core per load shard.
    pub shard_cores: Vec<usize>,
    pub io_driver: crate::vocab::kinds::IoDriver,
    /// `--timer`: how the shards time their sends.
    pub timer: crate::vocab::kinds::Timer,
    pub quiet: bool,
    /// Print the request and answer of the first failed upgrade of each cause.
    pub verbose: bool,
    /// Print this many frames of the process's first connection (0: none).
    pub debug_frames: u32,
    /// Where to serve Prometheus metrics during the run.
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// What every upgrade asks for beyond the essentials: headers, subprotocols.
    pub offer: crate::ws::handshake::Offer,
    /// Per-connection values in the request (placeholders, the data file).
    pub per_conn: Option<crate::values::PerConn>,
    /// Largest message accepted from a server once inflated (permessage-deflate).
    pub max_message: usize,
    /// TLS for the `wss://` targets (or the embedded server of `run --tls`).
    pub tls: Option<crate::net::tls::ClientTls>,
    /// Each shard's slice: its core, its connection ids, its share of the load.
    pub shards: Vec<ShardPlan>,
}

impl Plan {
    /// Whether a shard with `share` of the run times its sends to the
    /// microsecond (`--timer`; auto: while the messages it schedules stay at
    /// or under `PRECISE_UP_TO` a second, or when it schedules none by rate).
    pub fn precise_timer(&self, share: f64) -> bool {
        use crate::vocab::kinds::{Timer, PRECISE_UP_TO};
        match self.timer {
            Timer::Precise => true,
            Timer::Wheel => false,
            Timer::Auto => self
                .rate_profile
                .as_ref()
                .is_none_or(|p| p.peak() * share <= PRECISE_UP_TO),
        }
    }

    /// True when the run starts its own server.
    pub fn embedded(&self) -> bool {
        self.targets.is_empty()
    }

    /// Splits this process's connections over `shard_cores` (see `split`).
    pub fn split_shards(&mut self) {
        self.shards = split(self.connections, &self.shard_cores, self.connect_rate);
        for s in &mut self.shards {
            s.first_conn += self.conn_id_base;
        }
    }
}

/// Which target (an index into `targets` of them) and which source address
/// connection `id` uses: consecutive ids walk the targets first, then the
/// sources, so every (source, target) pair gets the same share.
#[inline]
pub fn endpoint(id: u64, targets: usize, sources: &[IpAddr]) -> (usize, Option<IpAddr>) {
    let t = targets.max(1) as u64;
    let source = (!sources.is_empty()).then(|| sources[((id / t) % sources.len() as u64) as usize]);
    ((id % t) as usize, source)
}

/// Splits `n` into `parts` shares as even as can be: the first `n % parts` take
/// one more. Every split of a run (connections over shards, agents over a run,
/// source addresses over agents) is this one.
pub fn even_share(n: u64, parts: u64, i: u64) -> u64 {
    let parts = parts.max(1);
    n / parts + u64::from(i < n % parts)
}

/// One shard's part of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct ShardPlan {
    pub index: usize,
    pub core: usize,
    /// First connection id of this shard; ids are `first_conn..first_conn + count`.
    pub first_conn: u64,
    pub count: u64,
    /// New connections per second for this shard; 0 = unpaced.
    pub connect_rate: f64,
    /// This shard's part of the process's connections (`count / connections`):
    /// its share of every level that is set for the whole run (staged
    /// connections, a session rate, a ceiling search's live level).
    pub share: f64,
}

/// Splits `connections` over `cores` as evenly as possible (the first shards take
/// one more when it does not divide).
pub fn split(connections: u64, cores: &[usize], connect_rate: f64) -> Vec<ShardPlan> {
    let n = cores.len().max(1) as u64;
    let mut first = 0;
    cores
        .iter()
        .enumerate()
        .map(|(i, &core)| {
            let count = even_share(connections, n, i as u64);
            let p = ShardPlan {
                index: i,
                core,
                first_conn: first,
                count,
                connect_rate: if connections == 0 {
                    0.0
                } else {
                    connect_rate * count as f64 / connections as f64
                },
                share: count as f64 / connections.max(1) as f64,
            };
            first += count;
            p
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_is_even_and_covers_every_id() {
        let plans = split(10, &[0, 1, 2], 300.0);
        let counts: Vec<u64> = plans.iter().map(|p| p.count).collect();
        assert_eq!(counts, vec![4, 3, 3]);
        assert_eq!(plans[1].first_conn, 4);
        assert_eq!(plans[2].first_conn, 7);
        let rate: f64 = plans.iter().map(|p| p.connect_rate).sum();
        assert!((rate - 300.0).abs() < 1e-9);
        assert_eq!(plans[0].core, 0);
    }

    #[test]
    fn endpoints_walk_targets_then_sources() {
        let s: Vec<IpAddr> = vec!["127.0.0.1".parse().unwrap(), "127.0.0.2".parse().unwrap()];
        let got: Vec<(usize, Option<IpAddr>)> = (0..4).map(|id| endpoint(id, 2, &s)).collect();
        assert_eq!(
            got,
            vec![
                (0, Some(s[0])),
                (1, Some(s[0])),
                (0, Some(s[1])),
                (1, Some(s[1]))
            ]
        );
        assert_eq!(endpoint(7, 1, &[]), (0, None));
    }

    #[test]
    fn pairs_share_evenly() {
        let s: Vec<IpAddr> = (1..=4)
            .map(|i| format!("127.0.0.{i}").parse().unwrap())
            .collect();
        let mut count = std::collections::HashMap::new();
        for id in 0..800u64 {
            *count.entry(endpoint(id, 2, &s)).or_insert(0) += 1;
        }
        assert_eq!(count.len(), 8);
        assert!(count.values().all(|&c| c == 100), "{count:?}");
    }

    #[test]
    fn one_shard_takes_everything() {
        let plans = split(5, &[3], 0.0);
        assert_eq!(plans.len(), 1);
        assert_eq!(plans[0].count, 5);
        assert_eq!(plans[0].core, 3);
        assert_eq!(plans[0].connect_rate, 0.0);
    }
}
