//! One request head, parsed by `httparse` and then checked the way lighttpd 1.4.69
//! checks it, so that a malformed request gets lighttpd's status (400, 411, 501, 505)
//! instead of whatever a more lenient parser would do. Pure: no I/O.

/// How the body of a request is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    None,
    Length(u64),
    Chunked,
}

/// A request head that passed the checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Head {
    pub method: String,
    /// The request target as sent (the event keeps it whole).
    pub target: String,
    /// `0` for HTTP/1.0, `1` for HTTP/1.1.
    pub minor: u8,
    /// Header names and values as sent, in order.
    pub headers: Vec<(String, Vec<u8>)>,
    /// The path after percent-decoding and removing `.` and `..`, as lighttpd maps it
    /// to a file: what the persona routes on.
    pub path: String,
    pub query: Option<String>,
    pub framing: Framing,
    /// Bytes of the head, its blank line included.
    pub len: usize,
}

impl Head {
    /// The first value of header `name` (case-insensitive), as text.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| std::str::from_utf8(v).ok())
    }

    /// Whether the client asked for the connection to stay open (HTTP/1.1 unless
    /// `Connection: close`; HTTP/1.0 only with `Connection: keep-alive`).
    pub(crate) fn keep_alive(&self) -> bool {
        let conn = self.header("connection").unwrap_or("").to_ascii_lowercase();
        let has = |t: &str| conn.split(',').any(|p| p.trim() == t);
        if self.minor == 0 {
            has("keep-alive")
        } else {
            !has("close")
        }
    }
}

/// A head that is refused: the status and the minor version for the status line
/// (lighttpd answers `HTTP/1.0` when the request line itself is bad).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub status: u16,
    pub minor: u8,
}

/// Methods lighttpd knows (`http_method_buf` in 1.4.69); any other is `501`.
const KNOWN_METHODS: &[&str] = &[
    "GET",
    "HEAD",
    "POST",
    "PUT",
    "DELETE",
    "CONNECT",
    "OPTIONS",
    "TRACE",
    "ACL",
    "BASELINE-CONTROL",
    "BIND",
    "CHECKIN",
    "CHECKOUT",
    "COPY",
    "LABEL",
    "LINK",
    "LOCK",
    "MERGE",
    "MKACTIVITY",
    "MKCALENDAR",
    "MKCOL",
    "MKREDIRECTREF",
    "MKWORKSPACE",
    "MOVE",
    "ORDERPATCH",
    "PATCH",
    "PROPFIND",
    "PROPPATCH",
    "REBIND",
    "REPORT",
    "SEARCH",
    "UNBIND",
    "UNCHECKOUT",
    "UNLINK",
    "UNLOCK",
    "UPDATE",
    "UPDATEREDIRECTREF",
    "VERSION-CONTROL",
];

/// Parses and checks the complete head at the start of `buf` (`len` bytes, as
/// `first::read_head` found it). `max_headers` bounds the header array.
#[cfg(test)]
pub(crate) fn parse(buf: &[u8], max_headers: usize) -> Result<Head, Refusal> {
    parse_as(buf, max_headers, false)
}

/// [`parse`], with Apache 2.4's rules where they differ from lighttpd's (`apache`): a
/// POST without a length has an empty body, a GET may carry one, CONNECT reaches the
/// handler (which refuses it), and a path climbing above `/` is a 400.
pub(crate) fn parse_as(buf: &[u8], max_headers: usize, apache: bool) -> Result<Head, Refusal> {
    let bad_line = Refusal {
        status: 400,
        minor: 0,
    };
    let mut headers = vec![httparse::EMPTY_HEADER; max_headers];
    let mut req = httparse::Request::new(&mut headers);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        _ => return Err(refusal(buf)),
    };
    // lighttpd wants CRLF line ends; httparse also takes a bare LF.
    let line_end = buf.iter().position(|&b| b == b'\n').unwrap_or(0);
    if line_end == 0 || buf[line_end - 1] != b'\r' {
        return Err(bad_line);
    }
    let minor = req.version.unwrap_or(0);
    let bad = Refusal { status: 400, minor };
    if buf[..len]
        .windows(2)
        .any(|w| w[1] == b'\n' && w[0] != b'\r')
    {
        return Err(bad);
    }
    let method = req.method.unwrap_or("").to_owned();
    let target = req.path.unwrap_or("").to_owned();
    let headers: Vec<(String, Vec<u8>)> = req
        .headers
        .iter()
        .map(|h| (h.name.to_owned(), h.value.to_vec()))
        .collect();

    if !KNOWN_METHODS.contains(&method.as_str()) {
        return Err(Refusal { status: 501, minor });
    }
    let count = |name: &str| {
        headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .count()
    };
    let value = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    };
    // Host: one at most, required in HTTP/1.1, and a plain host name.
    match (count("host"), value("host")) {
        (0, _) if minor == 1 => return Err(bad),
        (0, _) => {}
        (1, Some(h)) if valid_host(h) && (!apache || port_fits(h)) => {}
        _ => return Err(bad),
    }
    // The target: an absolute path, an absolute http(s) URI, or `*` for OPTIONS.
    let path_part = if target.starts_with('/') {
        target.as_str()
    } else if let Some(rest) = strip_scheme(&target) {
        match rest.find('/') {
            Some(i) => &rest[i..],
            None => "/",
        }
    } else if target == "*" && method == "OPTIONS" {
        "*"
    } else if apache && method == "CONNECT" {
        // Apache hands `CONNECT host:port` to the handler, which refuses it (405).
        "/"
    } else {
        return Err(bad);
    };
    let (raw_path, query) = match path_part.split_once('?') {
        Some((p, q)) => (p, Some(q.to_owned())),
        None => (path_part, None),
    };
    if apache && climbs_above_root(raw_path) {
        return Err(bad);
    }
    let path = if raw_path == "*" {
        "*".to_owned()
    } else {
        normalise(&percent_decode(raw_path).ok_or(bad)?)
    };

    // Body framing: one Content-Length of digits, or chunked alone.
    let te = count("transfer-encoding");
    let cl = count("content-length");
    let framing = if te > 0 {
        if cl > 0 || minor == 0 {
            return Err(bad);
        }
        let v = value("transfer-encoding").unwrap_or(b"");
        if te > 1 || !v.trim_ascii().eq_ignore_ascii_case(b"chunked") {
            return Err(Refusal { status: 501, minor });
        }
        Framing::Chunked
    } else if cl > 0 {
        let v = value("content-length").unwrap_or(b"").trim_ascii();
        if cl > 1 || v.is_empty() || v.len() > 18 || !v.iter().all(u8::is_ascii_digit) {
            return Err(bad);
        }
        let n: u64 = std::str::from_utf8(v)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or(bad)?;
        Framing::Length(n)
    } else {
        Framing::None
    };
    let has_body = match framing {
        Framing::None => false,
        Framing::Length(n) => n > 0,
        Framing::Chunked => true,
    };
    match method.as_str() {
        _ if apache => {}
        // lighttpd refuses a body where the method has none.
        "GET" | "HEAD" if has_body => return Err(bad),
        "POST" | "PUT" if framing == Framing::None => {
            return Err(Refusal { status: 411, minor });
        }
        "CONNECT" => return Err(bad),
        _ => {}
    }
    Ok(Head {
        method,
        target,
        minor,
        headers,
        path,
        query,
        framing,
        len,
    })
}

/// The status for a head `httparse` refused: `505` for a well-formed request line with
/// another HTTP version (status line `HTTP/1.0`); `400` otherwise, with the request's
/// version when its request line was fine (the fault is in a header line), else 1.0.
pub(crate) fn refusal(buf: &[u8]) -> Refusal {
    let line = buf.split(|&b| b == b'\n').next().unwrap_or(b"");
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let parts: Vec<&[u8]> = line.split(|&b| b == b' ').collect();
    match parts.as_slice() {
        [m, t, v]
            if !m.is_empty()
                && !t.is_empty()
                && v.len() == 8
                && v.starts_with(b"HTTP/")
                && v[5].is_ascii_digit()
                && v[6] == b'.'
                && v[7].is_ascii_digit() =>
        {
            match &v[5..] {
                b"1.0" => Refusal {
                    status: 400,
                    minor: 0,
                },
                b"1.1" => Refusal {
                    status: 400,
                    minor: 1,
                },
                _ => Refusal {
                    status: 505,
                    minor: 0,
                },
            }
        }
        _ => Refusal {
            status: 400,
            minor: 0,
        },
    }
}

/// Whether `..` segments take the (undecoded) path above `/`, which Apache refuses.
fn climbs_above_root(path: &str) -> bool {
    let mut depth = 0i64;
    for seg in path.split('/').filter(|s| !s.is_empty() && *s != ".") {
        if seg == ".." {
            depth -= 1;
            if depth < 0 {
                return true;
            }
        } else {
            depth += 1;
        }
    }
    false
}

fn strip_scheme(target: &str) -> Option<&str> {
    let lower = target.get(..8).unwrap_or(target).to_ascii_lowercase();
    if lower.starts_with("http://") {
        Some(&target[7..])
    } else if lower.starts_with("https://") {
        Some(&target[8..])
    } else {
        None
    }
}

/// A host name, IPv4 or bracketed IPv6 address, with an optional port.
fn valid_host(h: &[u8]) -> bool {
    let h = h.trim_ascii();
    !h.is_empty()
        && h.len() <= 255
        && h.iter()
            .all(|&b| b.is_ascii_alphanumeric() || b"-._:[]".contains(&b))
}

/// Whether a `Host` value's port, if it has one, is a port number (Apache refuses
/// `x:99999` with a 400).
fn port_fits(h: &[u8]) -> bool {
    let h = h.trim_ascii();
    let after_bracket = h.iter().rposition(|&b| b == b']').map_or(0, |i| i + 1);
    match h[after_bracket..].iter().rposition(|&b| b == b':') {
        None => true,
        Some(i) => {
            let port = &h[after_bracket + i + 1..];
            port.len() <= 5
                && port.iter().all(u8::is_ascii_digit)
                && std::str::from_utf8(port)
                    .ok()
                    .and_then(|p| p.parse::<u32>().ok())
                    .is_none_or(|p| p <= 65_535)
        }
    }
}

/// `%xx` decoded; `None` for a NUL byte, which lighttpd refuses.
fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && let Some(v) = b
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    if out.contains(&0) {
        return None;
    }
    Some(String::from_utf8_lossy(&out).into_owned())
}

/// `.` and `..` removed, never above `/`; a trailing slash is kept (`/cgi-bin/`).
fn normalise(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for p in path.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    let mut out = format!("/{}", parts.join("/"));
    if path.ends_with('/') && out != "/" {
        out.push('/');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Whatever a peer sends, the checks answer without panicking, with a status
        /// lighttpd uses, and a parsed head's path is normalised.
        #[test]
        fn any_bytes_get_a_verdict(head in proptest::collection::vec(any::<u8>(), 0..600), tail in "[ -~]{0,40}") {
            let mut buf = head;
            buf.extend_from_slice(tail.as_bytes());
            buf.extend_from_slice(b"\r\n\r\n");
            match parse(&buf, 64) {
                Ok(h) => {
                    prop_assert!(h.len <= buf.len());
                    prop_assert!(h.path == "*" || h.path.starts_with('/'));
                    prop_assert!(!h.path.contains("/../") && !h.path.ends_with("/.."));
                }
                Err(r) => prop_assert!([400, 411, 501, 505].contains(&r.status)),
            }
        }
    }

    fn status(req: &[u8]) -> Result<Framing, (u16, u8)> {
        parse(req, 64)
            .map(|h| h.framing)
            .map_err(|r| (r.status, r.minor))
    }

    #[test]
    fn checks_like_lighttpd() {
        assert_eq!(
            status(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
            Ok(Framing::None)
        );
        assert_eq!(
            status(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\n"),
            Ok(Framing::Length(3))
        );
        assert_eq!(
            status(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n"),
            Err((400, 1))
        );
        assert_eq!(
            status(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n"),
            Err((400, 1))
        );
        assert_eq!(
            status(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"),
            Err((400, 1))
        );
        assert_eq!(
            status(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n"),
            Err((501, 1))
        );
        assert_eq!(status(b"POST / HTTP/1.1\r\nHost: x\r\n\r\n"), Err((411, 1)));
        assert_eq!(status(b"GET / HTTP/1.1\r\n\r\n"), Err((400, 1)));
        assert_eq!(
            status(b"GET noslash HTTP/1.1\r\nHost: x\r\n\r\n"),
            Err((400, 1))
        );
        assert_eq!(status(b"get / HTTP/1.1\r\nHost: x\r\n\r\n"), Err((501, 1)));
        assert_eq!(status(b"GET / HTTP/1.2\r\n\r\n"), Err((505, 0)));
        assert_eq!(status(b"GET /\r\n\r\n"), Err((400, 0)));
        assert_eq!(
            status(b"GET / HTTP/1.1\r\nHost: x\r\nBadheader\r\n\r\n"),
            Err((400, 1))
        );
        assert_eq!(status(b"GET / HTTP/1.1\nHost: x\n\n"), Err((400, 0)));
        assert_eq!(status(b"GET /a%00 HTTP/1.0\r\n\r\n"), Err((400, 0)));
        assert_eq!(
            status(b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n"),
            Err((400, 1))
        );
        let h = parse(b"GET /a/../../b/./c%2e%2e/?q=1 HTTP/1.0\r\n\r\n", 8).unwrap();
        assert_eq!(
            (h.path.as_str(), h.query.as_deref()),
            ("/b/c../", Some("q=1"))
        );
        let h = parse(b"GET http://example.com HTTP/1.1\r\nHost: e\r\n\r\n", 8).unwrap();
        assert_eq!(h.path, "/");
        assert!(h.keep_alive());
        let h = parse(b"GET / HTTP/1.0\r\n\r\n", 8).unwrap();
        assert!(!h.keep_alive());
    }
}
