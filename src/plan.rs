//! Splitting a run across shards: which connections, how fast, on which core.
//!
//! Each shard gets a contiguous block of connection ids and the share of the connect
//! rate that matches its share of connections, so shards never coordinate.

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
}

/// Splits `connections` over `cores` as evenly as possible (the first shards take
/// one more when it does not divide).
pub fn split(connections: u64, cores: &[usize], connect_rate: f64) -> Vec<ShardPlan> {
    let n = cores.len().max(1) as u64;
    let base = connections / n;
    let extra = connections % n;
    let mut first = 0;
    cores
        .iter()
        .enumerate()
        .map(|(i, &core)| {
            let count = base + u64::from((i as u64) < extra);
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
    fn one_shard_takes_everything() {
        let plans = split(5, &[3], 0.0);
        assert_eq!(plans.len(), 1);
        assert_eq!(plans[0].count, 5);
        assert_eq!(plans[0].core, 3);
        assert_eq!(plans[0].connect_rate, 0.0);
    }
}
