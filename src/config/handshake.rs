//! The configuration of the upgrade request: `-H` headers (curl's spelling),
//! `--origin`, `--subprotocol` and `--require-subprotocol`, checked and turned
//! into the `Offer` every connection makes.
//!
//! Headers that would break the upgrade are refused here, before the run, with
//! the flag that does the job instead. Placeholders (`{conn}`, `{data.token}`)
//! in the path and the header values are parsed here too, against the data
//! file's columns. Never imports the command layer.

use crate::cli::LoadArgs;
use crate::error::{Error, Result};
use crate::plan::Plan;
use crate::values::{Data, Pattern, PerConn};
use crate::ws::handshake::Offer;

/// Headers wsherd writes itself, and what to use instead of `-H` for them.
const RESERVED: [(&str, &str); 9] = [
    ("upgrade", "wsherd writes it: every request is an upgrade"),
    (
        "connection",
        "wsherd writes it: every request is an upgrade",
    ),
    (
        "sec-websocket-key",
        "wsherd makes a fresh key per connection",
    ),
    ("sec-websocket-version", "wsherd speaks version 13"),
    (
        "sec-websocket-accept",
        "it is the server's answer, not a request header",
    ),
    (
        "sec-websocket-protocol",
        "offer subprotocols with --subprotocol a,b",
    ),
    (
        "sec-websocket-extensions",
        "offer permessage-deflate with --deflate[=OPTIONS]",
    ),
    ("content-length", "an upgrade request has no body"),
    ("transfer-encoding", "an upgrade request has no body"),
];

/// The upgrade's extra headers and subprotocols from the load flags.
pub fn offer_from(l: &LoadArgs) -> Result<Offer> {
    let mut offer = Offer::default();
    let mut origin = None;
    for h in &l.headers {
        let (name, value) = parse_header(h)?;
        match name.to_ascii_lowercase().as_str() {
            "host" => set_once(&mut offer.host, "Host", value)?,
            "user-agent" => set_once(&mut offer.user_agent, "User-Agent", value)?,
            "origin" => set_once(&mut origin, "Origin", value)?,
            lower => {
                if let Some((_, why)) = RESERVED.iter().find(|(r, _)| *r == lower) {
                    return Err(Error::usage(format!(
                        "-H '{h}': {name} cannot be set with -H ({why})"
                    )));
                }
                offer.headers.push_str(&format!("{name}: {value}\r\n"));
            }
        }
    }
    if let Some(o) = &l.origin {
        if origin.is_some() {
            return Err(Error::usage(
                "--origin and -H 'Origin: ...' both set the Origin header; give one",
            ));
        }
        origin = Some(header_value(o, "--origin")?);
    }
    if let Some(o) = origin {
        offer.headers.push_str(&format!("Origin: {o}\r\n"));
    }
    if let Some(list) = &l.subprotocol {
        offer.subprotocols = parse_subprotocols(list)?;
    }
    offer.require_subprotocol = l.require_subprotocol;
    if let Some(options) = &l.deflate {
        let d = crate::ws::deflate::Offer::parse(options)
            .map_err(|why| Error::usage(format!("--deflate={options}: {why}")))?;
        offer.headers.push_str(&d.header_line());
        offer.deflate = Some(d);
    }
    Ok(offer)
}

/// The per-connection values of the request: the data file (`--data`), and the
/// placeholders of the targets' paths and of the header values. Leaves
/// `plan.per_conn` None when nothing in the request depends on the connection.
pub fn per_connection(
    l: &LoadArgs,
    kind: crate::vocab::kinds::WorkloadKind,
    plan: &mut Plan,
    agent: u64,
) -> Result<()> {
    let data = l.data.as_deref().map(Data::load).transpose()?;
    let columns = data.as_ref().map_or(&[][..], |d| &d.columns[..]);
    if let (Some(d), true) = (&data, l.data_unique) {
        if plan.whole_connections > d.rows.len() as u64 {
            return Err(Error::usage(format!(
                "--data-unique: {} connections but the data file has {} rows; give more rows or fewer connections (-c)",
                plan.whole_connections,
                d.rows.len()
            )));
        }
    }
    // The protocol first: Socket.IO adds its path to the targets.
    let mut depends = super::protocol::apply(l, kind, plan, columns)?;
    for t in &mut plan.targets {
        let p = Pattern::parse(&t.path, columns)
            .map_err(|e| Error::usage(format!("{}: {e}", t.url)))?;
        if !p.is_literal() {
            depends = true;
            t.path_pattern = Some(p);
        }
    }
    let header = |text: &str, what: &str| {
        Pattern::parse(text, columns).map_err(|e| Error::usage(format!("{what}: {e}")))
    };
    let headers = header(&plan.offer.headers, "-H/--origin")?;
    let host = plan
        .offer
        .host
        .as_deref()
        .map(|h| header(h, "-H 'Host: ...'"))
        .transpose()?;
    let user_agent = plan
        .offer
        .user_agent
        .as_deref()
        .map(|h| header(h, "-H 'User-Agent: ...'"))
        .transpose()?;
    if let Some(script) = script_from(l, columns)? {
        depends |= script.ops.iter().any(|op| match op {
            crate::script::Op::Send(s) | crate::script::Op::Every { send: s, .. } => {
                s.text.uses_data()
            }
            _ => false,
        });
        plan.script = Some(std::sync::Arc::new(script));
    }
    // (graphql-ws subscribes with its own message: the protocol holds it.)
    let raw_subscribe = !matches!(plan.protocol, crate::proto::Protocol::GraphqlWs(_));
    if let (Some(text), Some(push), true) =
        (l.subscribe.as_deref(), plan.push.as_mut(), raw_subscribe)
    {
        let p =
            Pattern::parse(text, columns).map_err(|e| Error::usage(format!("--subscribe: {e}")))?;
        depends |= p.uses_data();
        push.subscribe = Some(p);
    }
    depends |= !headers.is_literal()
        || host.as_ref().is_some_and(|p| !p.is_literal())
        || user_agent.as_ref().is_some_and(|p| !p.is_literal());
    if depends {
        plan.per_conn = Some(PerConn {
            headers,
            host,
            user_agent,
            data: data.map(std::sync::Arc::new),
            agent,
        });
    }
    Ok(())
}

/// The conversation of `--steps FILE` (or a scenario's steps, as TOML text),
/// its mode and its handling of unmatched messages; `columns` are the data
/// file's. None without steps.
fn script_from(l: &LoadArgs, columns: &[String]) -> Result<Option<crate::script::Script>> {
    let (text, origin) = match (&l.steps, &l.steps_toml) {
        (Some(path), _) => {
            let shown = path.display().to_string();
            let text = std::fs::read_to_string(path)
                .map_err(|e| Error::usage(format!("--steps {shown}: {e}")))?;
            (text, format!("--steps {shown}"))
        }
        (None, Some(text)) => (text.clone(), "the scenario's steps".to_string()),
        (None, None) => return Ok(None),
    };
    let doc: toml::Table =
        toml::from_str(&text).map_err(|e| Error::usage(format!("{origin}: {}", e.message())))?;
    if let Some(k) = doc.keys().find(|k| *k != "step") {
        return Err(Error::usage(format!(
            "{origin}: unknown key '{k}'; the file holds [[step]] tables (the mode is --steps-mode)"
        )));
    }
    let steps = doc
        .get("step")
        .ok_or_else(|| Error::usage(format!("{origin}: no [[step]] tables")))?;
    let mode = l.steps_mode.map_or(crate::script::Mode::Once, Into::into);
    let unmatched = match l.unmatched {
        Some(crate::cli::UnmatchedArg::Fail) => crate::script::Unmatched::Fail,
        _ => crate::script::Unmatched::Count,
    };
    crate::script::parse(steps, mode, unmatched, columns)
        .map(Some)
        .map_err(|e| Error::usage(format!("{origin}: {e}")))
}

/// `Name: value` (curl's -H), the name an HTTP token, the value one line.
fn parse_header(h: &str) -> Result<(String, String)> {
    let Some((name, value)) = h.split_once(':') else {
        return Err(Error::usage(format!(
            "-H '{h}': a header is NAME: VALUE, e.g. -H 'Authorization: Bearer TOKEN'"
        )));
    };
    let name = name.trim();
    if name.is_empty() || !name.chars().all(is_tchar) {
        return Err(Error::usage(format!(
            "-H '{h}': '{name}' is not a header name (letters, digits and !#$%&'*+-.^_`|~ only)"
        )));
    }
    Ok((name.to_string(), header_value(value, &format!("-H '{h}'"))?))
}

/// A header value on one line: no CR, LF or other control character.
fn header_value(v: &str, flag: &str) -> Result<String> {
    let v = v.trim();
    if v.chars().any(|c| c.is_control() && c != '\t') {
        return Err(Error::usage(format!(
            "{flag}: the value holds a control character (a line break would end the header); remove it"
        )));
    }
    Ok(v.to_string())
}

/// A header that may appear once.
fn set_once(slot: &mut Option<String>, name: &str, value: String) -> Result<()> {
    if slot.replace(value).is_some() {
        return Err(Error::usage(format!(
            "-H '{name}: ...' is given twice; a request has one {name}"
        )));
    }
    Ok(())
}

/// `--subprotocol a,b`: HTTP tokens, each once, in the order offered.
fn parse_subprotocols(list: &str) -> Result<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for p in list.split(',').map(str::trim) {
        if p.is_empty() || !p.chars().all(is_tchar) {
            return Err(Error::usage(format!(
                "--subprotocol '{list}': '{p}' is not a subprotocol name (a token: letters, digits and !#$%&'*+-.^_`|~, no spaces)"
            )));
        }
        if out.iter().any(|o| o == p) {
            return Err(Error::usage(format!(
                "--subprotocol '{list}': '{p}' is offered twice"
            )));
        }
        out.push(p.to_string());
    }
    Ok(out)
}

/// An HTTP token character (RFC 9110 5.6.2).
fn is_tchar(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(args: &[&str]) -> LoadArgs {
        crate::cli::parse_run_args(args.iter().copied())
            .expect("flags parse")
            .load
    }

    #[test]
    fn headers_origin_and_subprotocols_make_the_offer() {
        let o = offer_from(&load(&[
            "-H",
            "Authorization: Bearer abc",
            "-H",
            "host: vhost.example",
            "--origin",
            "https://app.example",
            "--subprotocol",
            "chat.v2, chat.v1",
            "--require-subprotocol",
        ]))
        .unwrap();
        assert_eq!(
            o.headers,
            "Authorization: Bearer abc\r\nOrigin: https://app.example\r\n"
        );
        assert_eq!(o.host.as_deref(), Some("vhost.example"));
        assert_eq!(o.subprotocols, vec!["chat.v2", "chat.v1"]);
        assert!(o.require_subprotocol);
    }

    #[test]
    fn bad_headers_say_why() {
        for (args, why) in [
            (
                vec!["-H", "Authorization Bearer x"],
                "a header is NAME: VALUE",
            ),
            (vec!["-H", "Bad Name: x"], "not a header name"),
            (vec!["-H", "Sec-WebSocket-Key: x"], "fresh key"),
            (vec!["-H", "Upgrade: h2c"], "cannot be set with -H"),
            (vec!["-H", "Sec-WebSocket-Protocol: a"], "--subprotocol"),
            (vec!["-H", "X: a\rb"], "control character"),
            (vec!["-H", "Origin: a", "--origin", "b"], "give one"),
            (vec!["-H", "Host: a", "-H", "host: b"], "given twice"),
            (vec!["--subprotocol", "a b"], "not a subprotocol name"),
            (vec!["--subprotocol", "a,,b"], "not a subprotocol name"),
            (vec!["--subprotocol", "a,a"], "offered twice"),
        ] {
            let e = offer_from(&load(&args)).unwrap_err();
            assert_eq!(e.exit_code(), 2);
            assert!(e.to_string().contains(why), "{args:?}: {e}");
        }
    }
}
