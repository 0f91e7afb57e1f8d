//! The HTTP probe, as nmap's http-server-header and a scanner's error-page fingerprint
//! see a server: the status line, header names in order, the `Server` and
//! `Content-Type` values and the body of a 404, a 400 (not HTTP) and a 505 (unknown
//! version), each on its own connection. Date, ETag, Last-Modified and cookies are
//! instance values and are left out, as the lighttpd oracle test does.

use super::facts::Facts;
use super::net::Conn;
use std::net::SocketAddr;
use tokio::time::{Duration, Instant};

/// (check prefix, request).
const PROBES: [(&str, &[u8]); 3] = [
    (
        "404",
        b"GET /nonexistent-page HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    ),
    ("400", b"garbage\r\n\r\n"),
    ("505", b"GET / HTTP/1.2\r\n\r\n"),
];

pub async fn probe(addr: SocketAddr, deadline: Instant, tls: bool) -> Facts {
    let mut f = Facts::default();
    for (i, (name, req)) in PROBES.iter().enumerate() {
        let left = deadline.saturating_duration_since(Instant::now());
        let until = Instant::now() + left / (PROBES.len() - i) as u32;
        match Conn::open_any(addr, until, tls).await {
            Ok(mut c) => {
                let _ = c.send(req).await;
                let raw = c.read_rest(Duration::from_millis(1500)).await;
                describe(name, &raw, &mut f);
            }
            Err(e) => f.push(&format!("{name}.status"), e),
        }
    }
    f
}

/// The probes of a site on Apache (the WordPress persona): only what Apache answers
/// itself, before any application sees the request — a request that is not HTTP, an
/// unknown HTTP version, TRACE, an unknown method, and the `.ht*` files every Debian
/// Apache refuses. (A missing
/// page is WordPress's own 404, not Apache's.)
const APACHE_PROBES: [(&str, &[u8]); 5] = [
    ("400", b"garbage\r\n\r\n"),
    // Debian's security.conf sets TraceEnable Off; an unregistered method is a 501.
    ("trace", b"TRACE / HTTP/1.0\r\n\r\n"),
    ("501", b"FOO / HTTP/1.0\r\n\r\n"),
    ("version", b"GET / HTTP/1.2\r\n\r\n"),
    (
        "403",
        b"GET /.htaccess HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    ),
];

pub async fn probe_apache(addr: SocketAddr, deadline: Instant, tls: bool) -> Facts {
    let mut raw_facts = Facts::default();
    for (i, (name, req)) in APACHE_PROBES.iter().enumerate() {
        let left = deadline.saturating_duration_since(Instant::now());
        let until = Instant::now() + left / (APACHE_PROBES.len() - i) as u32;
        match Conn::open_any(addr, until, tls).await {
            Ok(mut c) => {
                let _ = c.send(req).await;
                let raw = c.read_rest(Duration::from_millis(1500)).await;
                describe(name, &raw, &mut raw_facts);
            }
            Err(e) => raw_facts.push(&format!("{name}.status"), e),
        }
    }
    Facts(
        raw_facts
            .0
            .into_iter()
            .map(|(n, v)| (n, normalise_apache(&v)))
            .collect(),
    )
}

/// Apache's patch level moves with Debian's security updates, and its signature names
/// the host and port asked for: `Apache/2.4.71 (Debian) Server at web Port 80` →
/// `Apache/2.4.N (Debian) Server at HOST Port PORT`.
pub fn normalise_apache(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    let mut rest = v;
    while let Some(at) = rest.find("Apache/2.4.") {
        let after = &rest[at + "Apache/2.4.".len()..];
        let digits = after.bytes().take_while(u8::is_ascii_digit).count();
        out.push_str(&rest[..at]);
        out.push_str("Apache/2.4.N");
        rest = &after[digits..];
    }
    out.push_str(rest);
    let mut v = out;
    let mut from = 0;
    while let Some(rel) = v[from..].find("Server at ") {
        let at = from + rel + "Server at ".len();
        let Some(port_rel) = v[at..].find(" Port ") else {
            break;
        };
        let host_end = at + port_rel;
        let digits_at = host_end + " Port ".len();
        let digits = v[digits_at..]
            .bytes()
            .take_while(u8::is_ascii_digit)
            .count();
        if v[at..host_end].contains([' ', '<']) || digits == 0 {
            from = at;
            continue;
        }
        v.replace_range(at..digits_at + digits, "HOST Port PORT");
        from = at + "HOST Port PORT".len();
    }
    v
}

/// The facts of the first response in `raw`.
pub fn describe(name: &str, raw: &[u8], f: &mut Facts) {
    let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
        f.push(
            &format!("{name}.status"),
            format!("(no response head: {} bytes)", raw.len()),
        );
        return;
    };
    let head = String::from_utf8_lossy(&raw[..end]);
    let mut lines = head.split("\r\n");
    f.push(&format!("{name}.status"), lines.next().unwrap_or(""));
    let mut names = Vec::new();
    let (mut server, mut ctype, mut len) = (None, None, None);
    for l in lines {
        let (n, v) = l.split_once(':').unwrap_or((l, ""));
        let v = v.trim();
        names.push(n.to_owned());
        match n.to_ascii_lowercase().as_str() {
            "server" => server = Some(v.to_owned()),
            "content-type" => ctype = Some(v.to_owned()),
            "content-length" => len = v.parse::<usize>().ok(),
            _ => {}
        }
    }
    f.push(&format!("{name}.headers"), names.join(","));
    f.push(
        &format!("{name}.server"),
        server.as_deref().unwrap_or("(none)"),
    );
    f.push(
        &format!("{name}.content_type"),
        ctype.as_deref().unwrap_or("(none)"),
    );
    let rest = &raw[end + 4..];
    let body = match len {
        Some(n) => &rest[..n.min(rest.len())],
        None => rest,
    };
    f.push(&format!("{name}.body"), body);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_is_described_without_instance_values() {
        let mut f = Facts::default();
        describe(
            "404",
            b"HTTP/1.1 404 Not Found\r\nContent-Type: text/html\r\nContent-Length: 3\r\nDate: Mon, 07 Dec 2026 02:00:00 GMT\r\nServer: lighttpd/1.4.69\r\n\r\nabcEXTRA",
            &mut f,
        );
        assert_eq!(f.get("404.status"), Some("HTTP/1.1 404 Not Found"));
        assert_eq!(
            f.get("404.headers"),
            Some("Content-Type,Content-Length,Date,Server")
        );
        assert_eq!(f.get("404.server"), Some("lighttpd/1.4.69"));
        assert_eq!(f.get("404.body"), Some("abc"));
        assert!(!f.0.iter().any(|(_, v)| v.contains("2026")));
    }

    #[test]
    fn apache_signature_is_normalised() {
        assert_eq!(
            normalise_apache(
                "<address>Apache/2.4.71 (Debian) Server at web-01.example Port 8080</address>"
            ),
            "<address>Apache/2.4.N (Debian) Server at HOST Port PORT</address>"
        );
        assert_eq!(
            normalise_apache("Apache/2.4.62 (Debian)"),
            "Apache/2.4.N (Debian)"
        );
        assert_eq!(
            normalise_apache("Server at a b Port 1"),
            "Server at a b Port 1"
        );
        assert_eq!(normalise_apache("Server at x Port "), "Server at x Port ");
    }

    #[test]
    fn garbage_is_described_not_panicked_on() {
        let mut f = Facts::default();
        describe("x", b"\r\n\r\n", &mut f);
        describe(
            "y",
            b"HTTP/1.1 200\r\nContent-Length: 99999\r\n\r\nab",
            &mut f,
        );
        describe("z", b"no head", &mut f);
        assert_eq!(f.get("y.body"), Some("ab"));
        assert!(f.get("z.status").unwrap().starts_with("(no response head"));
    }
}
