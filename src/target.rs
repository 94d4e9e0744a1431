//! A WebSocket endpoint as the load dials it: the URL as given, the Host header,
//! the request path, the resolved address; and the parsing of `ws://` URLs
//! (one target, or one per port of a port range).
//!
//! Shards, the engine and the host checks read targets; the configuration stage
//! makes them. Imports nothing of wsherd's but its error type, `proxy` and
//! `values`.

use crate::error::{Error, Result};
use std::net::{SocketAddr, ToSocketAddrs};

/// One WebSocket endpoint, resolved before the run starts.
#[derive(Debug, Clone)]
pub struct Target {
    /// The URL as given (or as built for the embedded server).
    pub url: String,
    /// Value of the Host header.
    pub host_header: String,
    /// Request path including query, always starting with '/'.
    pub path: String,
    /// Resolved address.
    pub addr: SocketAddr,
    /// `host:port` as the URL names it (IPv6 in brackets): what a proxy is asked
    /// to CONNECT to.
    pub authority: String,
    /// The HTTP CONNECT proxy this target is reached through, if any.
    pub proxy: Option<std::sync::Arc<crate::proxy::Proxy>>,
    /// The path and query with per-connection placeholders (None: `path` as is).
    pub path_pattern: Option<crate::values::Pattern>,
    /// `wss://`: the name TLS verifies the server's certificate for and sends as
    /// SNI (the URL's host; `--sni` overrides it in the plan).
    pub tls: Option<rustls::pki_types::ServerName<'static>>,
}

impl Target {
    /// Parses a URL that may name a port range (`ws://127.0.0.1:9001-9004/`): one
    /// target per port, so a row of servers is written once.
    pub fn parse_many(url: &str) -> Result<Vec<Target>> {
        let Some((first, last, at)) = port_range(url) else {
            return Ok(vec![Target::parse(url)?]);
        };
        let bad = |why: String| Error::BadUrl {
            url: url.to_string(),
            why,
        };
        let (lo, hi) = match (first.parse::<u16>(), last.parse::<u16>()) {
            (Ok(lo), Ok(hi)) if lo > 0 && hi >= lo => (lo, hi),
            (Ok(lo), Ok(hi)) if lo > 0 && hi < lo => {
                return Err(bad(format!(
                    "port range {first}-{last} ends before it starts; write the lower port first"
                )))
            }
            _ => {
                return Err(bad(format!(
                    "'{first}-{last}' is not a port range (1-65535, e.g. 9001-9004)"
                )))
            }
        };
        if hi - lo >= 1024 {
            return Err(bad(format!(
                "port range {lo}-{hi} names {} servers; at most 1024",
                hi as u32 - lo as u32 + 1
            )));
        }
        (lo..=hi)
            .map(|p| {
                let one = format!("{}{p}{}", &url[..at.0], &url[at.1..]);
                Target::parse(&one)
            })
            .collect()
    }

    /// Parses and resolves a `ws://host[:port][/path]` URL.
    pub fn parse(url: &str) -> Result<Target> {
        let bad = |why: &str| Error::BadUrl {
            url: url.to_string(),
            why: why.to_string(),
        };
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| bad("expected ws://host:port/path"))?;
        let secure = match scheme.to_ascii_lowercase().as_str() {
            "ws" => false,
            "wss" => true,
            "http" | "https" => {
                return Err(bad(&format!(
                    "'{scheme}' is not a WebSocket scheme; use ws:// or wss://"
                )))
            }
            _ => {
                return Err(bad(&format!(
                    "unknown scheme '{scheme}'; use ws:// or wss://"
                )))
            }
        };
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) if rest.as_bytes()[i] == b'/' => (&rest[..i], rest[i..].to_string()),
            Some(i) => (&rest[..i], format!("/{}", &rest[i..])),
            None => (rest, "/".to_string()),
        };
        let authority = authority.split('#').next().unwrap_or("");
        if authority.contains('@') {
            return Err(bad("user information in the URL is not supported"));
        }
        let (host, port) =
            split_host_port(authority, if secure { 443 } else { 80 }).map_err(|w| bad(&w))?;
        if host.is_empty() {
            return Err(bad("the URL has no host"));
        }
        let addr = (host.trim_matches(['[', ']']), port)
            .to_socket_addrs()
            .map_err(|e| Error::Unresolvable {
                host: host.to_string(),
                why: e.to_string(),
            })?
            .next()
            .ok_or_else(|| Error::Unresolvable {
                host: host.to_string(),
                why: "no address found".into(),
            })?;
        let host_header = if port == (if secure { 443 } else { 80 }) {
            host.to_string()
        } else {
            format!("{host}:{port}")
        };
        let tls = if secure {
            let name = host.trim_matches(['[', ']']).to_string();
            Some(
                rustls::pki_types::ServerName::try_from(name)
                    .map_err(|_| bad(&format!("'{host}' is not a name TLS can verify")))?,
            )
        } else {
            None
        };
        Ok(Target {
            url: url.to_string(),
            host_header,
            path: path.split('#').next().unwrap_or("/").to_string(),
            addr,
            authority: format!("{host}:{port}"),
            proxy: None,
            path_pattern: None,
            tls,
        })
    }

    /// A target for a server we started ourselves (over TLS with `tls`, its
    /// certificate made for the loopback address).
    pub fn local(addr: SocketAddr, tls: bool) -> Target {
        Target {
            url: format!("{}://{addr}/", if tls { "wss" } else { "ws" }),
            host_header: addr.to_string(),
            path: "/".into(),
            addr,
            authority: addr.to_string(),
            proxy: None,
            path_pattern: None,
            tls: tls.then(|| rustls::pki_types::ServerName::IpAddress(addr.ip().into())),
        }
    }

    /// The host as the URL names it (no port, no brackets).
    pub fn host(&self) -> &str {
        let a = self
            .authority
            .rsplit_once(':')
            .map_or(self.authority.as_str(), |(h, _)| h);
        a.trim_matches(['[', ']'])
    }

    /// Where a connection dials: the proxy if there is one, else the target.
    pub fn dial_addr(&self) -> SocketAddr {
        self.proxy.as_ref().map_or(self.addr, |p| p.addr)
    }
}

/// The `A-B` port range of a URL's authority, if any, with its byte span.
fn port_range(url: &str) -> Option<(&str, &str, (usize, usize))> {
    let start = url.find("://")? + 3;
    let end = url[start..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| start + i);
    let authority = &url[start..end];
    let colon = match authority.rfind(']') {
        Some(b) => b + 1 + authority[b + 1..].find(':')?,
        None => authority.rfind(':')?,
    };
    let port = &authority[colon + 1..];
    let (a, b) = port.split_once('-')?;
    Some((a, b, (start + colon + 1, end)))
}

fn split_host_port(authority: &str, default_port: u16) -> std::result::Result<(&str, u16), String> {
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let end = rest.find(']').ok_or("unclosed '[' in an IPv6 address")?;
        let host = &authority[..end + 2];
        match &rest[end + 1..] {
            "" => (host, None),
            p => (
                host,
                Some(p.strip_prefix(':').ok_or("expected ':' after ']'")?),
            ),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    let port = match port {
        None => default_port,
        Some(p) => match p.parse::<u16>() {
            Ok(0) | Err(_) => return Err(format!("'{p}' is not a port (1-65535)")),
            Ok(v) => v,
        },
    };
    Ok((host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_and_resolve() {
        let t = Target::parse("ws://127.0.0.1:9000/chat?room=1").unwrap();
        assert_eq!(t.addr, "127.0.0.1:9000".parse().unwrap());
        assert_eq!(t.path, "/chat?room=1");
        assert_eq!(t.host_header, "127.0.0.1:9000");
        let t = Target::parse("ws://[::1]:8080").unwrap();
        assert_eq!(t.addr, "[::1]:8080".parse().unwrap());
        assert_eq!(t.path, "/");
        let t = Target::parse("ws://127.0.0.1").unwrap();
        assert_eq!(t.addr.port(), 80);
    }

    #[test]
    fn a_port_range_names_one_target_per_port() {
        let t = Target::parse_many("ws://127.0.0.1:9001-9003/chat").unwrap();
        let ports: Vec<u16> = t.iter().map(|t| t.addr.port()).collect();
        assert_eq!(ports, vec![9001, 9002, 9003]);
        assert!(t.iter().all(|t| t.path == "/chat"));
        assert_eq!(t[1].host_header, "127.0.0.1:9002");
        let six = Target::parse_many("ws://[::1]:9001-9002").unwrap();
        assert_eq!(six.len(), 2);
        assert_eq!(Target::parse_many("ws://127.0.0.1:9001/").unwrap().len(), 1);
        for (url, why) in [
            ("ws://127.0.0.1:9-8/", "ends before it starts"),
            ("ws://127.0.0.1:0-8/", "not a port range"),
            ("ws://127.0.0.1:1-65535/", "at most 1024"),
        ] {
            let e = Target::parse_many(url).unwrap_err().to_string();
            assert!(e.contains(why), "{url}: {e}");
        }
    }

    #[test]
    fn wss_urls_verify_their_host_on_port_443_by_default() {
        let t = Target::parse("wss://localhost/feed").unwrap();
        assert_eq!(t.addr.port(), 443);
        assert_eq!(t.host_header, "localhost");
        assert_eq!(t.tls.unwrap().to_str(), "localhost");
        let t = Target::parse("wss://127.0.0.1:9443/").unwrap();
        assert_eq!(t.host_header, "127.0.0.1:9443");
        assert!(matches!(
            t.tls,
            Some(rustls::pki_types::ServerName::IpAddress(_))
        ));
        assert!(Target::parse("ws://127.0.0.1:9000/").unwrap().tls.is_none());
    }

    #[test]
    fn bad_urls_say_why() {
        for (url, why) in [
            ("http://127.0.0.1:80/", "not a WebSocket scheme"),
            ("ftp://127.0.0.1/", "unknown scheme"),
            ("ws://:9000/", "no host"),
            ("ws://127.0.0.1:99999/", "not a port"),
            ("127.0.0.1:9000", "expected ws://"),
        ] {
            let e = Target::parse(url).unwrap_err().to_string();
            assert!(e.contains(why), "{url}: {e}");
        }
    }
}
