//! Apache 2.4's own checks of a request head, where they differ from lighttpd's (the
//! WordPress persona): `HTTP/x.y` with x ≥ 1 is served as HTTP/1.1, a line over
//! `LimitRequestLine`/`LimitRequestFieldSize` (8190) is a 414 or a 400 with Apache's
//! note, an unregistered method is a 501 naming it. Pure: no I/O.

/// Apache's `LimitRequestLine` and `LimitRequestFieldSize` defaults.
const LINE_LIMIT: usize = 8190;
/// The 400 note for an over-long header field.
pub(crate) const FIELD_TOO_LONG: &str = "Size of a request header field exceeds server limit.";

/// How Apache refuses a head: status, the request's method (named in 501 texts), and
/// the note a 400 adds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refused {
    pub status: u16,
    pub method: String,
    pub note: &'static str,
}

/// Rewrites a request line's `HTTP/x.y` (x 1-9, other than 1.0) to `HTTP/1.1` in place,
/// as Apache serves any such version as HTTP/1.1 (same length, so offsets hold).
/// Returns whether it rewrote one.
pub(crate) fn serve_as_1_1(buf: &mut [u8]) -> bool {
    let end = buf.iter().position(|&b| b == b'\n').unwrap_or(buf.len());
    let line_end = if end > 0 && buf[end - 1] == b'\r' {
        end - 1
    } else {
        end
    };
    if line_end < 9 {
        return false;
    }
    let v = &mut buf[line_end - 9..line_end];
    if v[0] == b' '
        && &v[1..6] == b"HTTP/"
        && (b'1'..=b'9').contains(&v[6])
        && v[7] == b'.'
        && v[8].is_ascii_digit()
        && &v[6..9] != b"1.0"
    {
        v[6..9].copy_from_slice(b"1.1");
        return true;
    }
    false
}

/// The first token of the request line, as Apache names it in a 501 (capped).
fn method(buf: &[u8]) -> String {
    let m: Vec<u8> = buf
        .iter()
        .take_while(|&&b| b != b' ' && b != b'\r' && b != b'\n')
        .take(64)
        .copied()
        .collect();
    String::from_utf8_lossy(&m).into_owned()
}

/// A line of the head over Apache's limits: the request line (414) or a field (400).
/// `complete`: the head's end was seen (else the whole buffer is one unfinished head).
pub(crate) fn over_limits(buf: &[u8]) -> Option<Refused> {
    let head_end = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(buf.len(), |p| p + 2);
    for (i, line) in buf[..head_end].split(|&b| b == b'\n').enumerate() {
        if line.len() > LINE_LIMIT + 1 {
            return Some(if i == 0 {
                Refused {
                    status: 414,
                    method: method(buf),
                    note: "",
                }
            } else {
                Refused {
                    status: 400,
                    method: method(buf),
                    note: FIELD_TOO_LONG,
                }
            });
        }
    }
    None
}

/// Apache's answer for a head lighttpd's checks refused with `status`.
pub(crate) fn refusal(buf: &[u8], status: u16) -> Refused {
    let m = method(buf);
    let unregistered = status == 501
        && !m.is_empty()
        && buf.contains(&b' ')
        && !super::wordpress::apache_knows(&m);
    Refused {
        status: if unregistered { 501 } else { 400 },
        method: m,
        note: "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_and_limits() {
        let mut b = b"GET / HTTP/1.2\r\n\r\n".to_vec();
        serve_as_1_1(&mut b);
        assert_eq!(&b[..], b"GET / HTTP/1.1\r\n\r\n");
        let mut b = b"GET / HTTP/0.9\r\n\r\n".to_vec();
        serve_as_1_1(&mut b);
        assert_eq!(&b[..], b"GET / HTTP/0.9\r\n\r\n");
        let mut b = b"GET / HTTP/1.0\r\n\r\n".to_vec();
        serve_as_1_1(&mut b);
        assert_eq!(&b[..], b"GET / HTTP/1.0\r\n\r\n");
        let long = format!("GET /{} HTTP/1.0\r\n\r\n", "a".repeat(9000));
        assert_eq!(over_limits(long.as_bytes()).unwrap().status, 414);
        let field = format!("GET / HTTP/1.0\r\nX: {}\r\n\r\n", "a".repeat(9000));
        let r = over_limits(field.as_bytes()).unwrap();
        assert_eq!((r.status, r.note), (400, FIELD_TOO_LONG));
        assert_eq!(over_limits(b"GET / HTTP/1.0\r\n\r\n"), None);
        assert_eq!(refusal(b"FOO / HTTP/1.0\r\n\r\n", 501).status, 501);
        assert_eq!(
            refusal(b"GET / HTTP/1.0\r\nTransfer-Encoding: gzip\r\n\r\n", 501).status,
            400
        );
    }
}
