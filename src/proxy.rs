//! HTTP CONNECT proxies: `--proxy http://[user:pass@]host:port`, or the proxy
//! environment as curl reads it (`http_proxy` for ws://, `https_proxy` for wss://,
//! `ALL_PROXY`, `NO_PROXY`),
//! so a load can reach a service only a proxy can. A connection through a proxy
//! dials the proxy, asks it for a tunnel to the target (`CONNECT host:port`) and
//! then upgrades through the tunnel as it would directly.
//!
//! Like Go's net/http (and so k6), the environment never sends a loopback target
//! through a proxy; `--proxy` always does. Proxy failures have causes of their
//! own (`proxy_refused`, `proxy_http_407`, ...), apart from the target's.
//!
//! Parses and checks bytes only: imports nothing of wsherd's but its error type.

use crate::error::{Error, Result};
use base64::Engine;
use std::net::{SocketAddr, ToSocketAddrs};

/// Most bytes of a proxy's answer to CONNECT read before calling it broken.
const MAX_PROXY_HEAD: usize = 8 * 1024;

/// A proxy a connection goes through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proxy {
    /// `http://host:port`, credentials left out (for reports).
    pub shown: String,
    /// The proxy's resolved address.
    pub addr: SocketAddr,
    /// `Proxy-Authorization: Basic ...\r\n`, or empty.
    pub auth: String,
}

/// Why a proxy did not open a tunnel, as counted in the results.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProxyError {
    /// The proxy answered with a status other than 2xx.
    Status(u16),
    /// The answer was not HTTP, or too large.
    Malformed,
}

impl ProxyError {
    /// Stable snake_case cause: `proxy_http_407`, `proxy_bad_response`.
    pub fn cause(&self) -> String {
        match self {
            ProxyError::Status(s) => format!("proxy_http_{s}"),
            ProxyError::Malformed => "proxy_bad_response".into(),
        }
    }
}

impl Proxy {
    /// Parses `http://[user:pass@]host[:port]` (port 1080 when left out, as curl).
    pub fn parse(url: &str, from: &str) -> Result<Proxy> {
        let bad = |why: &str| Error::usage(format!("{from} '{url}': {why}"));
        let rest = match url.split_once("://") {
            Some((s, rest)) if s.eq_ignore_ascii_case("http") => rest,
            Some((s, _)) => {
                return Err(bad(&format!(
                    "'{s}' proxies are not supported; give an HTTP proxy (http://host:port)"
                )))
            }
            None => url,
        };
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        if hostport.is_empty() {
            return Err(bad("no host; write http://host:port"));
        }
        let with_port = if hostport
            .rsplit_once(':')
            .is_some_and(|(_, p)| !p.contains(']'))
        {
            hostport.to_string()
        } else {
            format!("{hostport}:1080")
        };
        let addr = with_port
            .to_socket_addrs()
            .map_err(|e| bad(&format!("cannot resolve ({e})")))?
            .next()
            .ok_or_else(|| bad("resolves to no address"))?;
        let auth = match userinfo {
            Some(u) => {
                let creds: Vec<u8> = percent_encoding::percent_decode_str(u).collect();
                format!(
                    "Proxy-Authorization: Basic {}\r\n",
                    base64::engine::general_purpose::STANDARD.encode(creds)
                )
            }
            None => String::new(),
        };
        Ok(Proxy {
            shown: format!("http://{with_port}"),
            addr,
            auth,
        })
    }

    /// The proxy for a target at `host` (its name as in the URL; `secure` for
    /// wss://), from `--proxy` (`flag`) or the environment (`env` reads a
    /// variable); None: dial the target directly.
    pub fn for_target(
        host: &str,
        addr: SocketAddr,
        secure: bool,
        flag: Option<&str>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Option<Proxy>> {
        if let Some(url) = flag {
            return Proxy::parse(url, "--proxy").map(Some);
        }
        if addr.ip().is_loopback() || host.eq_ignore_ascii_case("localhost") {
            return Ok(None);
        }
        let var = |names: &[&str]| names.iter().find_map(|n| env(n).filter(|v| !v.is_empty()));
        if var(&["no_proxy", "NO_PROXY"]).is_some_and(|list| no_proxy_matches(&list, host)) {
            return Ok(None);
        }
        // curl reads only the lowercase http_proxy (an HTTP_PROXY header could
        // set the uppercase one in CGI programs); for TLS, https_proxy in either
        // case.
        let (names, shown): (&[&str], &str) = if secure {
            (
                &["https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"],
                "the proxy environment (https_proxy/ALL_PROXY)",
            )
        } else {
            (
                &["http_proxy", "all_proxy", "ALL_PROXY"],
                "the proxy environment (http_proxy/ALL_PROXY)",
            )
        };
        match var(names) {
            Some(url) => Proxy::parse(&url, shown).map(Some),
            None => Ok(None),
        }
    }

    /// The CONNECT request for a tunnel to `authority` (`host:port`).
    pub fn connect_request(&self, authority: &str) -> String {
        format!(
            "CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n{}User-Agent: wsherd/{}\r\n\r\n",
            self.auth,
            env!("CARGO_PKG_VERSION")
        )
    }
}

/// Checks a proxy's answer to CONNECT. `Ok(None)`: not complete yet;
/// `Ok(Some(n))`: the tunnel is open, the first `n` bytes were the answer.
pub fn check_connect(buf: &[u8]) -> std::result::Result<Option<usize>, ProxyError> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut resp = httparse::Response::new(&mut headers);
    match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) => match resp.code.unwrap_or(0) {
            200..=299 => Ok(Some(n)),
            code => Err(ProxyError::Status(code)),
        },
        Ok(httparse::Status::Partial) if buf.len() < MAX_PROXY_HEAD => Ok(None),
        _ => Err(ProxyError::Malformed),
    }
}

/// Does `host` match a NO_PROXY list (curl's rules: `*` matches all; an entry
/// matches the host itself and its subdomains; a leading dot is ignored)?
fn no_proxy_matches(list: &str, host: &str) -> bool {
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase();
    list.split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .any(|e| {
            let e = e.trim_start_matches('.').to_ascii_lowercase();
            e == "*" || host == e || host.ends_with(&format!(".{e}"))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_urls_parse_with_credentials_and_default_port() {
        let p = Proxy::parse("http://user:p%40ss@127.0.0.1:3128", "--proxy").unwrap();
        assert_eq!(p.addr, "127.0.0.1:3128".parse().unwrap());
        assert_eq!(p.shown, "http://127.0.0.1:3128");
        assert_eq!(p.auth, "Proxy-Authorization: Basic dXNlcjpwQHNz\r\n");
        let p = Proxy::parse("127.0.0.1", "--proxy").unwrap();
        assert_eq!(p.addr.port(), 1080);
        assert!(p.auth.is_empty());
        let e = Proxy::parse("socks5://127.0.0.1:1080", "--proxy").unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("not supported"), "{e}");
        assert!(Proxy::parse("http://", "--proxy").is_err());
    }

    #[test]
    fn the_environment_is_read_as_curl_reads_it_but_never_for_loopback() {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |n: &str| {
                vars.iter()
                    .find(|(k, _)| *k == n)
                    .map(|(_, v)| v.to_string())
            }
        };
        let remote: SocketAddr = "10.1.2.3:80".parse().unwrap();
        let local: SocketAddr = "127.0.0.1:80".parse().unwrap();
        let proxied = env(&[("http_proxy", "http://127.0.0.1:3128")]);
        let got = Proxy::for_target("api.example", remote, false, None, &proxied).unwrap();
        assert_eq!(got.map(|p| p.addr.port()), Some(3128));
        assert_eq!(
            Proxy::for_target("127.0.0.1", local, false, None, &proxied).unwrap(),
            None
        );
        assert_eq!(
            Proxy::for_target("localhost", local, false, None, &proxied).unwrap(),
            None
        );
        // Uppercase HTTP_PROXY is not read (curl's rule).
        let upper = env(&[("HTTP_PROXY", "http://127.0.0.1:3128")]);
        assert_eq!(
            Proxy::for_target("api.example", remote, false, None, &upper).unwrap(),
            None
        );
        let excluded = env(&[
            ("ALL_PROXY", "http://127.0.0.1:3128"),
            ("NO_PROXY", "localhost, .example"),
        ]);
        assert_eq!(
            Proxy::for_target("api.example", remote, false, None, &excluded).unwrap(),
            None
        );
        assert!(
            Proxy::for_target("api.other", remote, false, None, &excluded)
                .unwrap()
                .is_some()
        );
        // wss:// reads https_proxy (either case), not http_proxy.
        let tls = env(&[("HTTPS_PROXY", "http://127.0.0.1:3129")]);
        let got = Proxy::for_target("api.example", remote, true, None, &tls).unwrap();
        assert_eq!(got.map(|p| p.addr.port()), Some(3129));
        assert_eq!(
            Proxy::for_target("api.example", remote, true, None, &proxied).unwrap(),
            None
        );
        // --proxy applies even to loopback.
        let flag = Proxy::for_target(
            "127.0.0.1",
            local,
            false,
            Some("http://127.0.0.1:9"),
            &proxied,
        );
        assert_eq!(flag.unwrap().map(|p| p.addr.port()), Some(9));
    }

    #[test]
    fn connect_answers_are_checked() {
        assert_eq!(
            check_connect(b"HTTP/1.1 200 Connection established\r\n\r\n"),
            Ok(Some(39))
        );
        assert_eq!(check_connect(b"HTTP/1.1 200 OK\r\n"), Ok(None));
        let denied =
            b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic\r\n\r\n";
        assert_eq!(check_connect(denied), Err(ProxyError::Status(407)));
        assert_eq!(ProxyError::Status(407).cause(), "proxy_http_407");
        assert_eq!(
            check_connect(b"SSH-2.0\r\n\r\n"),
            Err(ProxyError::Malformed)
        );
        let p = Proxy::parse("http://u:p@127.0.0.1:3128", "--proxy").unwrap();
        let req = p.connect_request("api.example:80");
        assert!(req.starts_with("CONNECT api.example:80 HTTP/1.1\r\nHost: api.example:80\r\n"));
        assert!(req.contains("\r\nProxy-Authorization: Basic dTpw\r\n"));
    }
}
