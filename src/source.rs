//! Source addresses: how one host opens more connections than one address has ports.
//!
//! A TCP connection is unique by (source IP, source port, destination IP, destination
//! port), so one source address reaches at most `ip_local_port_range` connections to
//! one destination. `--source-ip 127.0.0.1-127.0.0.16` (ranges and lists, IPv4 or
//! IPv6) gives the load more source addresses; the shards bind each socket to its
//! address before connecting with `IP_BIND_ADDRESS_NO_PORT`, so the kernel still
//! picks the port at connect time, per destination, instead of reserving one port
//! per socket across every destination.
//!
//! This module parses the list, checks every address is assigned to this host
//! before the run (binding a throwaway socket is the kernel's own answer), slices
//! the list between agents, and spreads connections over (source, target) pairs.
//!
//! Imports nothing of wsherd's: addresses only.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Most addresses one `--source-ip` may name (a typo like 10.0.0.0-10.255.255.255
/// should be refused, not allocated).
pub const MAX_SOURCES: u128 = 65_536;

/// Parses `--source-ip`: comma-separated addresses and inclusive ranges
/// (`127.0.0.1-127.0.0.16`, `127.0.0.1-16`, `fd00::1-fd00::8`). Duplicates are
/// refused: they would silently halve the ports of an address.
pub fn parse(spec: &str) -> Result<Vec<IpAddr>, String> {
    let mut out: Vec<IpAddr> = Vec::new();
    for item in spec.split(',').map(str::trim) {
        if item.is_empty() {
            return Err(format!(
                "--source-ip '{spec}': empty item; write addresses and ranges separated by commas, e.g. 127.0.0.1-127.0.0.16,127.0.1.1"
            ));
        }
        let before = out.len();
        match item.split_once('-') {
            None => out.push(addr(item)?),
            Some((a, b)) => range(item, a.trim(), b.trim(), &mut out)?,
        }
        if out.len() as u128 > MAX_SOURCES {
            return Err(format!(
                "--source-ip '{spec}' names more than {MAX_SOURCES} addresses; name the addresses the host really has"
            ));
        }
        debug_assert!(out.len() > before);
    }
    let mut seen = std::collections::HashSet::new();
    for a in &out {
        if !seen.insert(*a) {
            return Err(format!(
                "--source-ip '{spec}' names {a} more than once; each address should appear once"
            ));
        }
    }
    Ok(out)
}

fn addr(s: &str) -> Result<IpAddr, String> {
    s.trim_matches(['[', ']']).parse::<IpAddr>().map_err(|_| {
        format!("--source-ip: {s} is not an address (expected e.g. 127.0.0.2 or fd00::2)")
    })
}

/// Expands `a-b` (inclusive). `b` may be a whole address of the same family or,
/// for IPv4, just the last octet (`127.0.0.1-16`).
fn range(item: &str, a: &str, b: &str, out: &mut Vec<IpAddr>) -> Result<(), String> {
    let first = addr(a)?;
    let last = match (first, b.parse::<u8>()) {
        (IpAddr::V4(f), Ok(octet)) if !b.contains('.') => {
            let o = f.octets();
            IpAddr::V4(Ipv4Addr::new(o[0], o[1], o[2], octet))
        }
        _ => addr(b)?,
    };
    let (lo, hi) = match (first, last) {
        (IpAddr::V4(x), IpAddr::V4(y)) => (u32::from(x) as u128, u32::from(y) as u128),
        (IpAddr::V6(x), IpAddr::V6(y)) => (u128::from(x), u128::from(y)),
        _ => {
            return Err(format!(
                "--source-ip range '{item}' mixes IPv4 and IPv6; give each family its own range"
            ))
        }
    };
    if hi < lo {
        return Err(format!(
            "--source-ip range '{item}' ends before it starts; write the lower address first"
        ));
    }
    if hi - lo + 1 > MAX_SOURCES {
        return Err(format!(
            "--source-ip range '{item}' has {} addresses, more than {MAX_SOURCES}; name the addresses the host really has",
            hi - lo + 1
        ));
    }
    for v in lo..=hi {
        out.push(match first {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::from(v as u32)),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::from(v)),
        });
    }
    Ok(())
}

/// Refuses an address this host cannot send from: binding a socket to it (port 0,
/// no listen) is exactly the check connect would fail later.
pub fn check_assigned(ip: IpAddr) -> Result<(), String> {
    use socket2::{Domain, Socket, Type};
    let domain = if ip.is_ipv4() {
        Domain::IPV4
    } else {
        Domain::IPV6
    };
    let sock = Socket::new(domain, Type::STREAM, None)
        .map_err(|e| format!("cannot open a socket to check {ip}: {e}"))?;
    match sock.bind(&SocketAddr::new(ip, 0).into()) {
        Ok(()) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::EADDRNOTAVAIL) => Err(format!(
            "{ip} is not assigned to this host; add it first (ip addr add {ip}/{} dev <interface>) or leave it out of --source-ip",
            if ip.is_ipv4() { 32 } else { 128 }
        )),
        Err(e) => Err(format!("cannot bind to {ip}: {e}")),
    }
}

/// This agent's slice of the sources: agent `i` of `n` (1-based) takes its own
/// contiguous part when there are at least as many addresses as agents (agents
/// on different hosts then name their own addresses), else one shared address.
pub fn slice(sources: &[IpAddr], agent: Option<(u64, u64)>) -> Vec<IpAddr> {
    let Some((i, n)) = agent else {
        return sources.to_vec();
    };
    let (i, n, s) = (i as usize - 1, n as usize, sources.len());
    if s == 0 {
        return Vec::new();
    }
    if s >= n {
        sources[i * s / n..(i + 1) * s / n].to_vec()
    } else {
        vec![sources[i * s / n]]
    }
}

/// Connections that meet on the busiest (source, destination) pair: what must fit
/// in the ephemeral port range. `connections` is this process's share, spread over
/// `sources` x `targets` pairs; agents sharing an address (fewer addresses than
/// agents) are counted together through `whole` (every agent's connections) over
/// `all_sources`.
pub fn per_pair(connections: u64, sources: u64, targets: u64, whole: u64, all_sources: u64) -> u64 {
    let pairs = sources.max(1) * targets.max(1);
    let mine = connections.div_ceil(pairs);
    let shared = whole.div_ceil(all_sources.max(1) * targets.max(1));
    mine.max(shared)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ranges_and_lists() {
        let r = parse("127.0.0.1-127.0.0.4").unwrap();
        assert_eq!(r.len(), 4);
        assert_eq!(r[0], v4("127.0.0.1"));
        assert_eq!(r[3], v4("127.0.0.4"));
        assert_eq!(parse("127.0.0.1-4").unwrap(), r);
        let l = parse("127.0.0.9, 127.0.1.1-127.0.1.2").unwrap();
        assert_eq!(l, vec![v4("127.0.0.9"), v4("127.0.1.1"), v4("127.0.1.2")]);
        // Ranges cross octet boundaries.
        let c = parse("10.0.0.255-10.0.1.1").unwrap();
        assert_eq!(c, vec![v4("10.0.0.255"), v4("10.0.1.0"), v4("10.0.1.1")]);
        let six = parse("fd00::1-fd00::3,::1").unwrap();
        assert_eq!(six.len(), 4);
        assert_eq!(six[2], v4("fd00::3"));
        assert_eq!(parse("[::1]").unwrap(), vec![v4("::1")]);
    }

    #[test]
    fn bad_specs_say_what_is_wrong() {
        let e = parse("127.0.0.300").unwrap_err();
        assert!(e.contains("127.0.0.300 is not an address"), "{e}");
        let e = parse("127.0.0.1-::5").unwrap_err();
        assert!(e.contains("mixes IPv4 and IPv6"), "{e}");
        let e = parse("127.0.0.9-127.0.0.1").unwrap_err();
        assert!(e.contains("ends before it starts"), "{e}");
        let e = parse("10.0.0.0-10.255.255.255").unwrap_err();
        assert!(e.contains("more than 65536"), "{e}");
        let e = parse("127.0.0.1,,127.0.0.2").unwrap_err();
        assert!(e.contains("empty item"), "{e}");
        let e = parse("127.0.0.1,127.0.0.1-2").unwrap_err();
        assert!(e.contains("127.0.0.1 more than once"), "{e}");
        let e = parse("127.0.0.1-300").unwrap_err();
        assert!(e.contains("300 is not an address"), "{e}");
    }

    #[test]
    fn loopback_is_assigned_and_a_foreign_address_is_not() {
        assert!(check_assigned(v4("127.0.0.1")).is_ok());
        // The whole of 127/8 is local on Linux.
        assert!(check_assigned(v4("127.0.0.77")).is_ok());
        let e = check_assigned(v4("192.0.2.123")).unwrap_err();
        assert!(
            e.contains("192.0.2.123 is not assigned to this host"),
            "{e}"
        );
    }

    #[test]
    fn agents_take_disjoint_slices() {
        let s = parse("127.0.0.1-127.0.0.8").unwrap();
        let a = slice(&s, Some((1, 2)));
        let b = slice(&s, Some((2, 2)));
        assert_eq!(a, s[..4]);
        assert_eq!(b, s[4..]);
        let odd: Vec<Vec<IpAddr>> = (1..=3).map(|i| slice(&s, Some((i, 3)))).collect();
        assert_eq!(odd.concat(), s);
        // Fewer addresses than agents: each agent one, shared.
        let two = parse("127.0.0.1-2").unwrap();
        let four: Vec<IpAddr> = (1..=4).map(|i| slice(&two, Some((i, 4)))[0]).collect();
        assert_eq!(four, vec![two[0], two[0], two[1], two[1]]);
        assert_eq!(slice(&s, None), s);
    }

    #[test]
    fn busiest_pair() {
        // 100k over 16 sources x 1 target: 6250 per pair.
        assert_eq!(per_pair(100_000, 16, 1, 100_000, 16), 6250);
        // No sources given: the kernel's one address per destination.
        assert_eq!(per_pair(30_000, 0, 1, 30_000, 0), 30_000);
        // Two agents share one address: the pair carries both agents' connections.
        assert_eq!(per_pair(20_000, 1, 1, 40_000, 1), 40_000);
    }
}
