//! The HTTP/1.1 upgrade that opens a WebSocket, for both sides.
//!
//! Keys and the accept hash come from tungstenite; requests and responses are
//! parsed with httparse straight from the connection's bytes, so the bytes after
//! the headers (a server may send frames right behind its 101) are never lost.

use tungstenite::handshake::derive_accept_key;

/// Most header bytes we read before calling the answer broken.
pub const MAX_HEAD: usize = 16 * 1024;

/// Why an upgrade failed, as counted in the results.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpgradeError {
    /// The server answered with an HTTP status other than 101.
    Status(u16),
    /// 101, but the Sec-WebSocket-Accept did not match our key.
    BadAcceptKey,
    /// 101 without `Upgrade: websocket` / `Connection: upgrade`.
    NotUpgraded,
    /// The answer was not HTTP, or its head was larger than `MAX_HEAD`.
    Malformed,
    /// The server chose a subprotocol the client did not offer.
    SubprotocolNotOffered,
    /// The server chose no subprotocol where one is required.
    SubprotocolMissing,
    /// The server's `Sec-WebSocket-Extensions` answer: one not offered, or
    /// parameters out of order (the cause names which).
    Extension(&'static str),
}

impl UpgradeError {
    /// Stable snake_case cause for the results.
    pub fn cause(&self) -> String {
        match self {
            UpgradeError::Status(s) => format!("http_{s}"),
            UpgradeError::BadAcceptKey => "bad_accept_key".into(),
            UpgradeError::NotUpgraded => "not_upgraded".into(),
            UpgradeError::Malformed => "bad_http_response".into(),
            UpgradeError::SubprotocolNotOffered => "subprotocol_not_offered".into(),
            UpgradeError::SubprotocolMissing => "subprotocol_missing".into(),
            UpgradeError::Extension(cause) => (*cause).into(),
        }
    }
}

/// A fresh random `Sec-WebSocket-Key`.
pub fn new_key() -> String {
    tungstenite::handshake::client::generate_key()
}

/// What a client asks for in its upgrade beyond the WebSocket essentials: its
/// own header lines (`-H`, `--origin`), and the subprotocols it offers, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Offer {
    /// Header lines, each `Name: value\r\n`, written as given.
    pub headers: String,
    /// A Host header of the user's, replacing the URL's.
    pub host: Option<String>,
    /// A User-Agent of the user's, replacing wsherd's.
    pub user_agent: Option<String>,
    /// Subprotocols offered, most wanted first (`Sec-WebSocket-Protocol`).
    pub subprotocols: Vec<String>,
    /// Fail the connection when the server chooses none.
    pub require_subprotocol: bool,
    /// permessage-deflate offered (its header line is among `headers`).
    pub deflate: Option<super::deflate::Offer>,
}

/// The parts of one upgrade request that may differ from connection to
/// connection: the Host header, the request target, the extra header lines and
/// the User-Agent. Borrowed: the plan's own strings, or a connection's rendered
/// ones.
#[derive(Debug, Clone, Copy)]
pub struct Head<'a> {
    pub host: &'a str,
    pub path: &'a str,
    /// Header lines, each `Name: value\r\n`.
    pub headers: &'a str,
    /// None: wsherd's own.
    pub user_agent: Option<&'a str>,
}

impl<'a> Head<'a> {
    /// The head `offer` gives a request to a target whose Host is `host`.
    pub fn of(offer: &'a Offer, host: &'a str, path: &'a str) -> Head<'a> {
        Head {
            host: offer.host.as_deref().unwrap_or(host),
            path,
            headers: &offer.headers,
            user_agent: offer.user_agent.as_deref(),
        }
    }
}

/// Appends the client's upgrade request to `out`, offering `subprotocols`.
pub fn write_request(out: &mut Vec<u8>, head: &Head, key: &str, subprotocols: &[String]) {
    use std::io::Write;
    let Head { host, path, .. } = head;
    let _ = write!(
        out,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
    );
    if !subprotocols.is_empty() {
        let _ = write!(
            out,
            "Sec-WebSocket-Protocol: {}\r\n",
            subprotocols.join(", ")
        );
    }
    out.extend_from_slice(head.headers.as_bytes());
    match head.user_agent {
        Some(ua) => {
            let _ = write!(out, "User-Agent: {ua}\r\n\r\n");
        }
        None => {
            let _ = write!(
                out,
                "User-Agent: wsherd/{}\r\n\r\n",
                env!("CARGO_PKG_VERSION")
            );
        }
    }
}

fn header_has_token(value: &[u8], token: &str) -> bool {
    std::str::from_utf8(value)
        .map(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        .unwrap_or(false)
}

/// An upgrade the server accepted: the length of its response head (the bytes
/// after it are frames) and the subprotocol it chose (an index into the offer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accepted {
    pub head_len: usize,
    pub subprotocol: Option<usize>,
    /// permessage-deflate, when the server accepted it.
    pub deflate: Option<super::deflate::Params>,
}

/// Checks a server's response to a request made with `offer`. `Ok(None)`: the
/// head is not complete yet.
pub fn check_response(
    buf: &[u8],
    key: &str,
    offer: &Offer,
) -> Result<Option<Accepted>, UpgradeError> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut resp = httparse::Response::new(&mut headers);
    let n = match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) if n <= MAX_HEAD => n,
        Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => return Ok(None),
        _ => return Err(UpgradeError::Malformed),
    };
    let code = resp.code.unwrap_or(0);
    if code != 101 {
        return Err(UpgradeError::Status(code));
    }
    let mut upgrade = false;
    let mut connection = false;
    let mut accept = None;
    let mut chosen: Option<&[u8]> = None;
    let mut extensions: Vec<&str> = Vec::new();
    for h in resp.headers.iter() {
        if h.name.eq_ignore_ascii_case("upgrade") {
            upgrade = header_has_token(h.value, "websocket");
        } else if h.name.eq_ignore_ascii_case("connection") {
            connection = header_has_token(h.value, "upgrade");
        } else if h.name.eq_ignore_ascii_case("sec-websocket-accept") {
            accept = Some(h.value);
        } else if h.name.eq_ignore_ascii_case("sec-websocket-protocol") {
            chosen = Some(h.value);
        } else if h.name.eq_ignore_ascii_case("sec-websocket-extensions") {
            extensions.push(std::str::from_utf8(h.value).unwrap_or("?"));
        }
    }
    if !upgrade || !connection {
        return Err(UpgradeError::NotUpgraded);
    }
    match accept {
        Some(a) if a == derive_accept_key(key.as_bytes()).as_bytes() => {}
        _ => return Err(UpgradeError::BadAcceptKey),
    }
    let subprotocol = chosen_subprotocol(chosen, offer)?;
    let deflate = super::deflate::accept_answer(&extensions, offer.deflate.as_ref())
        .map_err(UpgradeError::Extension)?;
    Ok(Some(Accepted {
        head_len: n,
        subprotocol,
        deflate,
    }))
}

/// The offered subprotocol the server's `Sec-WebSocket-Protocol` names (RFC 6455
/// 4.1: one of those offered, or none), or why that fails the connection.
fn chosen_subprotocol(value: Option<&[u8]>, offer: &Offer) -> Result<Option<usize>, UpgradeError> {
    let chosen = value.map(|v| String::from_utf8_lossy(v).trim().to_string());
    match chosen.filter(|c| !c.is_empty()) {
        Some(c) => offer
            .subprotocols
            .iter()
            .position(|p| *p == c)
            .map(Some)
            .ok_or(UpgradeError::SubprotocolNotOffered),
        None if offer.require_subprotocol => Err(UpgradeError::SubprotocolMissing),
        None => Ok(None),
    }
}

/// A failed upgrade as people read it: the cause, the request (`> ` lines) and
/// the answer (`< ` lines: status line and headers, then at most 256 bytes of
/// the body, non-UTF-8 bytes shown as U+FFFD).
pub fn transcript(conn: u32, cause: &str, sent: &[u8], got: &[u8]) -> String {
    let mut out = format!("wsherd: connection {conn} failed its upgrade: {cause}\n");
    let text = |b: &[u8]| String::from_utf8_lossy(b).to_string();
    let sent = text(sent);
    for line in sent.split("\r\n").take_while(|l| !l.is_empty()) {
        out.push_str(&format!("> {line}\n"));
    }
    if got.is_empty() {
        out.push_str("< (nothing came back)\n");
        return out;
    }
    let split = got.windows(4).position(|w| w == b"\r\n\r\n");
    let (head, body) = match split {
        Some(i) => (&got[..i], &got[i + 4..]),
        None => (got, &got[got.len()..]),
    };
    for line in text(head).split("\r\n") {
        out.push_str(&format!("< {line}\n"));
    }
    if !body.is_empty() {
        let shown = &body[..body.len().min(256)];
        let more = if body.len() > 256 { " ..." } else { "" };
        out.push_str(&format!(
            "< \n< {}{more}\n",
            text(shown).replace('\n', "\n< ")
        ));
    }
    out
}

/// What the server makes of a request head.
#[derive(Debug, PartialEq, Eq)]
pub enum Request {
    /// Not complete yet.
    Partial,
    /// A valid upgrade: the head's length, the response to write, and
    /// permessage-deflate when it was offered and the server takes it.
    Upgrade {
        head_len: usize,
        response: Vec<u8>,
        deflate: Option<super::deflate::Params>,
    },
    /// Not a WebSocket upgrade: the response to write before closing.
    Reject(Vec<u8>),
}

/// Parses a client's request head and prepares the answer; with `deflate`, a
/// permessage-deflate offer is accepted.
pub fn server_accept(buf: &[u8], deflate: bool) -> Request {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut req = httparse::Request::new(&mut headers);
    let head_len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) if n <= MAX_HEAD => n,
        Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => return Request::Partial,
        // Complete or not, too much to hold.
        Ok(_) | Err(httparse::Error::TooManyHeaders) => {
            return Request::Reject(reject(
                431,
                "Request Header Fields Too Large",
                "a request head may have at most 16 KiB and 32 header lines\n",
            ))
        }
        Err(_) => return Request::Reject(reject(400, "Bad Request", "malformed HTTP request\n")),
    };
    if req.method != Some("GET") {
        return Request::Reject(reject(
            405,
            "Method Not Allowed",
            "use GET with a WebSocket upgrade\n",
        ));
    }
    let mut key = None;
    let mut upgrade = false;
    let mut version_ok = false;
    let mut extensions: Vec<&str> = Vec::new();
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("sec-websocket-key") {
            key = Some(h.value);
        } else if h.name.eq_ignore_ascii_case("upgrade") {
            upgrade = header_has_token(h.value, "websocket");
        } else if h.name.eq_ignore_ascii_case("sec-websocket-version") {
            version_ok = h.value == b"13";
        } else if deflate && h.name.eq_ignore_ascii_case("sec-websocket-extensions") {
            extensions.extend(std::str::from_utf8(h.value));
        }
    }
    match key {
        Some(k) if upgrade && version_ok => {
            let accept = derive_accept_key(k);
            let agreed = super::deflate::negotiate(&extensions);
            let line = agreed.as_ref().map_or("", |(_, l)| l.as_str());
            let response = format!(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                 Sec-WebSocket-Accept: {accept}\r\n{line}\r\n"
            )
            .into_bytes();
            Request::Upgrade {
                head_len,
                response,
                deflate: agreed.map(|(p, _)| p),
            }
        }
        _ => Request::Reject(reject(
            426,
            "Upgrade Required",
            "wsherd echo server: connect with a WebSocket client\n",
        )),
    }
}

/// The server's answer to an upgrade beyond `--max-connections`.
pub const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\n\
Content-Type: text/plain\r\nContent-Length: 37\r\nConnection: close\r\n\r\n\
wsherd serve: --max-connections held\n";

fn reject(code: u16, reason: &str, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\
         Connection: close\r\nSec-WebSocket-Version: 13\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_and_server_agree() {
        let key = new_key();
        let mut req = Vec::new();
        let none = Offer::default();
        write_request(
            &mut req,
            &Head::of(&none, "127.0.0.1:9000", "/x"),
            &key,
            &[],
        );
        let Request::Upgrade {
            head_len,
            mut response,
            ..
        } = server_accept(&req, false)
        else {
            panic!("server refused a valid request")
        };
        assert_eq!(head_len, req.len());
        response.extend_from_slice(&[0x81, 0x00]);
        let none = Offer::default();
        assert_eq!(
            check_response(&response, &key, &none),
            Ok(Some(Accepted {
                head_len: response.len() - 2,
                subprotocol: None,
                deflate: None
            }))
        );
        assert_eq!(check_response(&response[..10], &key, &none), Ok(None));
    }

    #[test]
    fn a_failed_upgrade_reads_as_a_transcript() {
        let sent = b"GET /x HTTP/1.1\r\nHost: h\r\n\r\n";
        let got = b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 8\r\n\r\nno token";
        let t = transcript(3, "http_401", sent, got);
        assert_eq!(
            t,
            "wsherd: connection 3 failed its upgrade: http_401\n> GET /x HTTP/1.1\n> Host: h\n\
             < HTTP/1.1 401 Unauthorized\n< Content-Length: 8\n< \n< no token\n"
        );
        assert!(transcript(0, "closed_during_handshake", sent, b"")
            .ends_with("< (nothing came back)\n"));
    }

    #[test]
    fn the_offer_goes_into_the_request() {
        let offer = Offer {
            headers: "Authorization: Bearer t0k\r\nOrigin: https://a.example\r\n".into(),
            host: Some("vhost.example".into()),
            user_agent: None,
            subprotocols: vec!["chat.v2".into(), "chat.v1".into()],
            require_subprotocol: false,
            deflate: None,
        };
        let mut req = Vec::new();
        let head = Head::of(&offer, "127.0.0.1:9000", "/x");
        write_request(&mut req, &head, &new_key(), &offer.subprotocols);
        let text = String::from_utf8(req).unwrap();
        assert!(text.contains("\r\nHost: vhost.example\r\n"), "{text}");
        assert!(!text.contains("127.0.0.1:9000"), "{text}");
        assert!(text.contains("\r\nSec-WebSocket-Protocol: chat.v2, chat.v1\r\n"));
        assert!(text.contains("\r\nAuthorization: Bearer t0k\r\nOrigin: https://a.example\r\n"));
        assert!(text.ends_with("\r\n\r\n"));
    }

    #[test]
    fn the_chosen_subprotocol_is_checked_against_the_offer() {
        let key = new_key();
        let answer = |proto: &str| {
            format!(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n{proto}\r\n",
                derive_accept_key(key.as_bytes())
            )
        };
        let mut offer = Offer {
            subprotocols: vec!["a".into(), "b".into()],
            ..Offer::default()
        };
        let got = |resp: String, offer: &Offer| {
            check_response(resp.as_bytes(), &key, offer).map(|a| a.and_then(|a| a.subprotocol))
        };
        assert_eq!(
            got(answer("Sec-WebSocket-Protocol: b\r\n"), &offer),
            Ok(Some(1))
        );
        assert_eq!(got(answer(""), &offer), Ok(None));
        assert_eq!(
            got(answer("Sec-WebSocket-Protocol: c\r\n"), &offer),
            Err(UpgradeError::SubprotocolNotOffered)
        );
        offer.require_subprotocol = true;
        assert_eq!(
            got(answer(""), &offer),
            Err(UpgradeError::SubprotocolMissing)
        );
        assert_eq!(
            UpgradeError::SubprotocolMissing.cause(),
            "subprotocol_missing"
        );
    }

    #[test]
    fn wrong_accept_and_status_are_reported() {
        let key = new_key();
        let bad = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: AAAA\r\n\r\n";
        assert_eq!(
            check_response(bad, &key, &Offer::default()),
            Err(UpgradeError::BadAcceptKey)
        );
        let forbidden = b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(
            check_response(forbidden, &key, &Offer::default()),
            Err(UpgradeError::Status(403))
        );
        assert_eq!(UpgradeError::Status(403).cause(), "http_403");
        assert_eq!(
            check_response(b"SSH-2.0-OpenSSH\r\n\r\n", &key, &Offer::default()),
            Err(UpgradeError::Malformed)
        );
    }

    #[test]
    fn busy_is_a_well_formed_503() {
        let text = std::str::from_utf8(BUSY).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 503 Service Unavailable\r\n"));
        assert!(head.contains("\r\nRetry-After: 1\r\n"));
        assert!(head.contains(&format!("Content-Length: {}\r\n", body.len())));
        assert_eq!(
            check_response(BUSY, &new_key(), &Offer::default()),
            Err(UpgradeError::Status(503))
        );
    }

    #[test]
    fn plain_http_gets_426() {
        let r = server_accept(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", false);
        match r {
            Request::Reject(b) => assert!(b.starts_with(b"HTTP/1.1 426")),
            other => panic!("{other:?}"),
        }
    }
}
