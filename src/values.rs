//! Per-connection values in the upgrade request: placeholders in the URL's path
//! and query and in header values (`{conn}`, `{agent}`, `{shard}`,
//! `{data.COLUMN}`), and the rows of a data file (`--data users.csv`, the first
//! row naming the columns), taken by connection id modulo the rows. For per-user
//! tokens (JWTs), tenant routing and sticky sessions.
//!
//! Patterns are parsed once, by the configuration stage, so a placeholder naming
//! a column the file lacks is an error before the run; a connection only renders
//! them, once, when it opens. Imports nothing of wsherd's but its error type.

use crate::error::{Error, Result};
use std::path::Path;

/// One piece of a pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Lit(String),
    /// The connection's id (unique across agents).
    Conn,
    /// The agent's number, I of `--agent I/N` (1 without agents).
    Agent,
    /// The load shard's index.
    Shard,
    /// A column of the data file.
    Column(usize),
    /// One of the names the caller added (`parse_with`): a conversation's
    /// `{seq}` and captured variables.
    Extra(usize),
}

/// Text with placeholders, parsed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Pattern {
    pieces: Vec<Piece>,
}

/// What a connection fills a pattern with.
#[derive(Debug, Clone, Copy)]
pub struct Vars<'a> {
    pub conn: u64,
    pub agent: u64,
    pub shard: usize,
    /// The connection's row of the data file (none without one).
    pub row: Option<&'a [String]>,
    /// The values of the extra names (`Pattern::parse_with`), in their order.
    pub extra: &'a [String],
}

/// How substituted values are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Escape {
    /// As they are (header values: the data file holds no line break).
    None,
    /// Percent-encoded but for unreserved characters (a URL's path and query).
    Url,
    /// Escaped to sit inside a JSON string (a message's text).
    Json,
}

impl Pattern {
    /// Parses `text`; `columns` are the data file's (none without one). A `{name}`
    /// that names no placeholder is an error; other braces are literal, and
    /// `{{conn}}` writes the text `{conn}`.
    pub fn parse(text: &str, columns: &[String]) -> std::result::Result<Pattern, String> {
        Pattern::parse_with(text, columns, &[])
    }

    /// As `parse`, with more names: `{NAME}` for each of `extra` renders the
    /// value at its index in `Vars::extra`.
    pub fn parse_with(
        text: &str,
        columns: &[String],
        extra: &[String],
    ) -> std::result::Result<Pattern, String> {
        let mut pieces = Vec::new();
        let mut lit = String::new();
        let mut rest = text;
        while let Some(i) = rest.find('{') {
            lit.push_str(&rest[..i]);
            rest = &rest[i..];
            if let Some(name) = rest.strip_prefix("{{").and_then(placeholder_name) {
                if rest[2 + name.len()..].starts_with("}}") {
                    lit.push_str(&format!("{{{name}}}"));
                    rest = &rest[name.len() + 4..];
                    continue;
                }
            }
            match rest.strip_prefix('{').and_then(placeholder_name) {
                Some(name) if rest[1 + name.len()..].starts_with('}') => {
                    if !lit.is_empty() {
                        pieces.push(Piece::Lit(std::mem::take(&mut lit)));
                    }
                    match extra.iter().position(|e| e == name) {
                        Some(i) => pieces.push(Piece::Extra(i)),
                        None => pieces.push(piece(name, columns, extra)?),
                    }
                    rest = &rest[name.len() + 2..];
                }
                _ => {
                    lit.push('{');
                    rest = &rest[1..];
                }
            }
        }
        lit.push_str(rest);
        if !lit.is_empty() {
            pieces.push(Piece::Lit(lit));
        }
        Ok(Pattern { pieces })
    }

    /// True when the pattern has no placeholder (it renders as it was written).
    pub fn is_literal(&self) -> bool {
        self.pieces.iter().all(|p| matches!(p, Piece::Lit(_)))
    }

    /// True when the pattern reads the data file.
    pub fn uses_data(&self) -> bool {
        self.pieces.iter().any(|p| matches!(p, Piece::Column(_)))
    }

    /// Appends the pattern filled with `v` to `out`.
    pub fn render(&self, v: &Vars, escape: Escape, out: &mut String) {
        for p in &self.pieces {
            match p {
                Piece::Lit(s) => out.push_str(s),
                Piece::Conn => out.push_str(&v.conn.to_string()),
                Piece::Agent => out.push_str(&v.agent.to_string()),
                Piece::Shard => out.push_str(&v.shard.to_string()),
                Piece::Column(_) | Piece::Extra(_) => {
                    let value = match p {
                        Piece::Column(c) => v.row.and_then(|r| r.get(*c)),
                        Piece::Extra(i) => v.extra.get(*i),
                        _ => None,
                    }
                    .map_or("", String::as_str);
                    match escape {
                        Escape::None => out.push_str(value),
                        Escape::Url => percent_encode(value, out),
                        Escape::Json => json_escape(value, out),
                    }
                }
            }
        }
    }

    /// The pattern filled with `v`, as a new string.
    pub fn rendered(&self, v: &Vars, escape: Escape) -> String {
        let mut s = String::new();
        self.render(v, escape, &mut s);
        s
    }
}

/// Appends `value` escaped for the inside of a JSON string: quotes, backslashes
/// and control characters.
fn json_escape(value: &str, out: &mut String) {
    for ch in value.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                use std::fmt::Write;
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
}

/// The name in `{name}` at the start of `s` (after the brace), when it is shaped
/// like a placeholder: letters, digits, `_` and `.`.
fn placeholder_name(s: &str) -> Option<&str> {
    let end = s.find('}')?;
    let name = &s[..end];
    (!name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.'))
    .then_some(name)
}

fn piece(name: &str, columns: &[String], extra: &[String]) -> std::result::Result<Piece, String> {
    match name {
        "conn" => Ok(Piece::Conn),
        "agent" => Ok(Piece::Agent),
        "shard" => Ok(Piece::Shard),
        _ => match name.strip_prefix("data.") {
            Some(col) if columns.is_empty() => Err(format!(
                "{{{name}}} reads the data file, but none is given; add --data FILE (a CSV whose first row names the columns, one of them '{col}')"
            )),
            Some(col) => columns
                .iter()
                .position(|c| c == col)
                .map(Piece::Column)
                .ok_or_else(|| {
                    format!(
                        "{{{name}}}: the data file has no column '{col}' (its columns: {})",
                        columns.join(", ")
                    )
                }),
            None => {
                let more: String = extra.iter().map(|e| format!(", {{{e}}}")).collect();
                Err(format!(
                    "{{{name}}} is not a placeholder; the known ones are {{conn}}, {{agent}}, {{shard}}{more} and {{data.COLUMN}} (write {{{{{name}}}}} for the text {{{name}}})"
                ))
            }
        },
    }
}

/// What a value written into a URL leaves as it is: RFC 3986's unreserved
/// characters. Everything else is percent-encoded.
const URL_VALUE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

fn percent_encode(s: &str, out: &mut String) {
    out.extend(percent_encoding::utf8_percent_encode(s, URL_VALUE));
}

/// A data file: named columns, and rows taken by connection id modulo their
/// number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Data {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl Data {
    /// Reads a CSV file whose first row names the columns. Every row must have
    /// every column, and no value may hold a control character (values go into
    /// header lines).
    pub fn load(path: &Path) -> Result<Data> {
        let shown = path.display().to_string();
        let bad = |why: String| Error::usage(format!("--data {shown}: {why}"));
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(true)
            .flexible(false)
            .from_path(path)
            .map_err(|e| bad(e.to_string()))?;
        let columns: Vec<String> = reader
            .headers()
            .map_err(|e| bad(e.to_string()))?
            .iter()
            .map(|c| c.trim().to_string())
            .collect();
        if columns.iter().any(String::is_empty) {
            return Err(bad("the first row must name every column".into()));
        }
        let mut rows = Vec::new();
        for (i, rec) in reader.records().enumerate() {
            let rec = rec.map_err(|e| bad(e.to_string()))?;
            let row: Vec<String> = rec.iter().map(str::to_string).collect();
            if let Some((c, _)) = row
                .iter()
                .enumerate()
                .find(|(_, v)| v.chars().any(|ch| ch.is_control() && ch != '\t'))
            {
                return Err(bad(format!(
                    "row {} (line {}), column '{}' holds a line break or another control character",
                    i + 1,
                    i + 2,
                    columns[c]
                )));
            }
            rows.push(row);
        }
        if rows.is_empty() {
            return Err(bad("no rows after the first (the column names)".into()));
        }
        Ok(Data { columns, rows })
    }

    /// Connection `id`'s row.
    pub fn row(&self, id: u64) -> &[String] {
        &self.rows[(id % self.rows.len() as u64) as usize]
    }
}

/// What a connection renders when it opens, when anything in its request
/// depends on it: the header block and the Host and User-Agent values, the
/// data file, and this process's agent number. (A target's path pattern is
/// with the target.)
#[derive(Debug, Clone, Default)]
pub struct PerConn {
    pub headers: Pattern,
    pub host: Option<Pattern>,
    pub user_agent: Option<Pattern>,
    pub data: Option<std::sync::Arc<Data>>,
    pub agent: u64,
}

impl PerConn {
    /// What connection `conn` of shard `shard` fills its patterns with.
    pub fn vars(&self, conn: u64, shard: usize) -> Vars<'_> {
        Vars {
            conn,
            agent: self.agent,
            shard,
            row: self.data.as_ref().map(|d| d.row(conn)),
            extra: &[],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cols(c: &[&str]) -> Vec<String> {
        c.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn extra_names_and_json_escapes() {
        let extra = cols(&["seq", "session"]);
        let p = Pattern::parse_with(
            r#"{"s":"{session}","n":{seq},"u":"{data.user}"}"#,
            &cols(&["user"]),
            &extra,
        )
        .unwrap();
        let row = cols(&["a \"q\"\n"]);
        let values = cols(&["7", "x\\y"]);
        let v = Vars {
            conn: 1,
            agent: 1,
            shard: 0,
            row: Some(&row),
            extra: &values,
        };
        assert_eq!(
            p.rendered(&v, Escape::Json),
            r#"{"s":"x\\y","n":7,"u":"a \"q\"\n"}"#
        );
        let e = Pattern::parse_with("{nope}", &[], &extra).unwrap_err();
        assert!(e.contains("{seq}, {session}"), "{e}");
    }

    #[test]
    fn placeholders_fill_and_escape() {
        let columns = cols(&["user", "token"]);
        let p = Pattern::parse("/chat/{agent}/{conn}?u={data.user}&s={shard}", &columns).unwrap();
        assert!(!p.is_literal());
        assert!(p.uses_data());
        let row = cols(&["ann lee", "t/1"]);
        let v = Vars {
            conn: 42,
            agent: 2,
            shard: 1,
            row: Some(&row),
            extra: &[],
        };
        assert_eq!(p.rendered(&v, Escape::Url), "/chat/2/42?u=ann%20lee&s=1");
        let h = Pattern::parse("Authorization: Bearer {data.token}\r\n", &columns).unwrap();
        assert_eq!(
            h.rendered(&v, Escape::None),
            "Authorization: Bearer t/1\r\n"
        );
    }

    #[test]
    fn other_braces_are_literal_and_doubled_ones_escape() {
        let p = Pattern::parse(r#"X-Meta: {"a":1} {{conn}} {"#, &[]).unwrap();
        assert!(p.is_literal());
        let v = Vars {
            conn: 1,
            agent: 1,
            shard: 0,
            row: None,
            extra: &[],
        };
        assert_eq!(p.rendered(&v, Escape::None), r#"X-Meta: {"a":1} {conn} {"#);
    }

    #[test]
    fn unknown_placeholders_and_columns_are_errors() {
        let e = Pattern::parse("/{con}", &[]).unwrap_err();
        assert!(e.contains("not a placeholder"), "{e}");
        let e = Pattern::parse("/{data.user}", &[]).unwrap_err();
        assert!(e.contains("add --data FILE"), "{e}");
        let e = Pattern::parse("/{data.usr}", &cols(&["user"])).unwrap_err();
        assert!(e.contains("no column 'usr'") && e.contains("user"), "{e}");
    }

    #[test]
    fn data_files_are_read_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let ok = dir.path().join("users.csv");
        std::fs::write(&ok, "user,token\nann,a1\nbob,\"b,2\"\n").unwrap();
        let d = Data::load(&ok).unwrap();
        assert_eq!(d.columns, cols(&["user", "token"]));
        assert_eq!(d.row(3), &cols(&["bob", "b,2"])[..]);
        let ragged = dir.path().join("ragged.csv");
        std::fs::write(&ragged, "user,token\nann\n").unwrap();
        assert!(Data::load(&ragged).is_err());
        let empty = dir.path().join("empty.csv");
        std::fs::write(&empty, "user\n").unwrap();
        assert!(Data::load(&empty)
            .unwrap_err()
            .to_string()
            .contains("no rows"));
        let missing = Data::load(&dir.path().join("nope.csv")).unwrap_err();
        assert_eq!(missing.exit_code(), 2);
        assert!(missing.to_string().contains("nope.csv"), "{missing}");
    }
}
