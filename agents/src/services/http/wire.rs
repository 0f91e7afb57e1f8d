//! Response heads written in the imitated server's own header order. Scanners and
//! fingerprinting tools compare the order of header names, so lighttpd's
//! (`Content-Type`, `ETag`, `Last-Modified`, `Content-Length`, `Accept-Ranges`,
//! `Content-Range`, `Connection`, `Date`, `Server`, as 1.4.69 writes them) and Apache's
//! (`Date`, `Server`, …, `Content-Length`, `Keep-Alive`, `Connection`, `Content-Type`)
//! are kept apart.

use std::fmt::Write as _;

/// Whose header order a response follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flavor {
    Lighttpd,
    Apache,
}

/// Everything a response head says.
#[derive(Debug, Default)]
pub(crate) struct Out<'a> {
    pub status: u16,
    pub reason: &'a str,
    /// The minor version of the status line (`HTTP/1.x`).
    pub minor: u8,
    pub content_type: Option<&'a str>,
    /// The persona's own headers, lower-case names.
    pub headers: &'a [(&'static str, String)],
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    /// `None`: no `Content-Length` (a `304`).
    pub content_length: Option<usize>,
    pub accept_ranges: bool,
    pub content_range: Option<String>,
    /// `Connection:` value, if one is sent.
    pub connection: Option<&'static str>,
    /// Apache's `Keep-Alive: max=` (requests the connection has left).
    pub keep_alive_max: u32,
    pub date: String,
    pub server: &'a str,
}

/// The response head, blank line included.
pub(crate) fn head(flavor: Flavor, o: &Out<'_>) -> Vec<u8> {
    let mut s = format!("HTTP/1.{} {} {}\r\n", o.minor, o.status, o.reason);
    let persona = |s: &mut String| {
        for (name, value) in o.headers {
            // Persona headers are ASCII; a value that is not is left out.
            if value
                .bytes()
                .all(|b| b == b'\t' || (0x20..0x7f).contains(&b))
            {
                let _ = write!(s, "{}: {value}\r\n", title_case(name));
            }
        }
    };
    match flavor {
        Flavor::Lighttpd => {
            if let Some(ct) = o.content_type {
                let _ = write!(s, "Content-Type: {ct}\r\n");
            }
            persona(&mut s);
            if let Some(e) = &o.etag {
                let _ = write!(s, "ETag: {e}\r\n");
            }
            if let Some(m) = &o.last_modified {
                let _ = write!(s, "Last-Modified: {m}\r\n");
            }
            if let Some(n) = o.content_length {
                let _ = write!(s, "Content-Length: {n}\r\n");
            }
            if o.accept_ranges {
                s += "Accept-Ranges: bytes\r\n";
            }
            if let Some(r) = &o.content_range {
                let _ = write!(s, "Content-Range: {r}\r\n");
            }
            if let Some(c) = o.connection {
                let _ = write!(s, "Connection: {c}\r\n");
            }
            let _ = write!(s, "Date: {}\r\nServer: {}\r\n\r\n", o.date, o.server);
        }
        Flavor::Apache => {
            let _ = write!(s, "Date: {}\r\nServer: {}\r\n", o.date, o.server);
            if let Some(m) = &o.last_modified {
                let _ = write!(s, "Last-Modified: {m}\r\n");
            }
            if let Some(e) = &o.etag {
                let _ = write!(s, "ETag: {e}\r\n");
            }
            if o.accept_ranges {
                s += "Accept-Ranges: bytes\r\n";
            }
            persona(&mut s);
            if let Some(n) = o.content_length {
                let _ = write!(s, "Content-Length: {n}\r\n");
            }
            if let Some(r) = &o.content_range {
                let _ = write!(s, "Content-Range: {r}\r\n");
            }
            // Apache says Keep-Alive only to a client that asked for it.
            match o.connection {
                Some("close") => s += "Connection: close\r\n",
                Some(_) => {
                    let _ = write!(
                        s,
                        "Keep-Alive: timeout=5, max={}\r\nConnection: Keep-Alive\r\n",
                        o.keep_alive_max
                    );
                }
                None => {}
            }
            if let Some(ct) = o.content_type.filter(|c| !c.is_empty()) {
                let _ = write!(s, "Content-Type: {ct}\r\n");
            }
            s += "\r\n";
        }
    }
    s.into_bytes()
}

/// `x-powered-by` → `X-Powered-By`; `etag` → `ETag`, as servers write them.
pub(crate) fn title_case(name: &str) -> String {
    if name.eq_ignore_ascii_case("etag") {
        return "ETag".into();
    }
    let mut out = String::with_capacity(name.len());
    let mut upper = true;
    for c in name.chars() {
        out.push(if upper { c.to_ascii_uppercase() } else { c });
        upper = c == '-';
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(head: &[u8]) -> Vec<String> {
        String::from_utf8_lossy(head)
            .split("\r\n")
            .skip(1)
            .filter_map(|l| l.split_once(':').map(|(n, _)| n.to_owned()))
            .collect()
    }

    #[test]
    fn lighttpd_static_file_order() {
        let o = Out {
            status: 200,
            reason: "OK",
            minor: 1,
            content_type: Some("text/html"),
            etag: Some("\"1\"".into()),
            last_modified: Some("x".into()),
            content_length: Some(3),
            accept_ranges: true,
            date: "d".into(),
            server: "lighttpd/1.4.69",
            ..Out::default()
        };
        let h = head(Flavor::Lighttpd, &o);
        assert!(h.starts_with(b"HTTP/1.1 200 OK\r\n"));
        assert_eq!(
            names(&h),
            [
                "Content-Type",
                "ETag",
                "Last-Modified",
                "Content-Length",
                "Accept-Ranges",
                "Date",
                "Server"
            ]
        );
        assert!(h.ends_with(b"Server: lighttpd/1.4.69\r\n\r\n"));
        assert_eq!(title_case("x-powered-by"), "X-Powered-By");
    }
}
