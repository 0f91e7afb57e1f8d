//! What lighttpd's `mod_staticfile` does with a file it serves: an `ETag` and
//! `Last-Modified`, `304 Not Modified` for a matching `If-None-Match` or a recent enough
//! `If-Modified-Since`, and `206 Partial Content` (or `416`) for a `Range` on HTTP/1.1.
//! Pure: the persona gives the page and its pretended modification time.

use super::request::Head;

/// How a static file is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Answer {
    Full,
    NotModified,
    /// Bytes `start..=end` of the file.
    Partial {
        start: u64,
        end: u64,
    },
    Unsatisfiable,
}

/// The file's `ETag`: lighttpd hashes inode, size and mtime and prints the hash as a
/// decimal number in quotes; the pretended inode is derived from the content.
pub(crate) fn etag(body: &[u8], mtime: u64) -> String {
    let inode = body
        .iter()
        .fold(5381u32, |h, &b| h.wrapping_mul(33) ^ u32::from(b));
    let text = format!("{}-{}-{mtime}", inode % 1_000_000, body.len());
    let hash = text.bytes().fold(5381u32, |h, b| {
        h.wrapping_mul(33).wrapping_add(u32::from(b))
    });
    format!("\"{hash}\"")
}

/// The answer to `head` for a file of `len` bytes with this `etag` and `mtime`.
pub(crate) fn answer(head: &Head, len: u64, etag: &str, mtime: u64) -> Answer {
    if !matches!(head.method.as_str(), "GET" | "HEAD") {
        return Answer::Full;
    }
    if let Some(inm) = head.header("if-none-match") {
        if inm.split(',').any(|t| {
            let t = t.trim();
            t == "*" || t.strip_prefix("W/").unwrap_or(t) == etag
        }) {
            return Answer::NotModified;
        }
    } else if let Some(ims) = head.header("if-modified-since").and_then(http_date)
        && ims >= mtime
    {
        return Answer::NotModified;
    }
    // Ranges on HTTP/1.1 GET only (a HEAD with a Range gets the whole head).
    if head.minor == 0 || head.method != "GET" {
        return Answer::Full;
    }
    match head.header("range").map(|r| ranges(r, len)) {
        Some(Some(Some((start, end)))) => Answer::Partial { start, end },
        Some(Some(None)) => Answer::Unsatisfiable,
        _ => Answer::Full,
    }
}

/// An IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`) in Unix seconds. The weekday is
/// not checked (lighttpd's `strptime` does not either).
fn http_date(v: &str) -> Option<u64> {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let rest = v.trim().split_once(", ")?.1;
    let f: Vec<&str> = rest.split(' ').collect();
    let [d, mon, y, time, "GMT"] = f.as_slice() else {
        return None;
    };
    let d: i64 = d.parse().ok()?;
    let m = MONTHS.iter().position(|x| x == mon)? as i64 + 1;
    let y: i64 = y.parse().ok()?;
    let t: Vec<i64> = time
        .split(':')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    let [hh, mm, ss] = t.as_slice() else {
        return None;
    };
    if !(1..=31).contains(&d) || !(0..=9999).contains(&y) || *hh > 23 || *mm > 59 || *ss > 60 {
        return None;
    }
    // Days from the civil date (Hinnant's `days_from_civil`).
    let (y, m) = if m <= 2 { (y - 1, m + 9) } else { (y, m - 3) };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(days * 86_400 + hh * 3600 + mm * 60 + ss).ok()
}

/// `None`: not a byte range header lighttpd understands (the whole file is sent).
/// `Some(None)`: no range fits the file. Several ranges are answered as the one span
/// that covers them (lighttpd merges ranges close together the same way).
fn ranges(value: &str, len: u64) -> Option<Option<(u64, u64)>> {
    let specs = value.trim().strip_prefix("bytes=")?;
    let mut span: Option<(u64, u64)> = None;
    for spec in specs.split(',').take(64) {
        let (a, b) = spec.trim().split_once('-')?;
        let digits =
            |s: &str| !s.is_empty() && s.len() <= 19 && s.bytes().all(|c| c.is_ascii_digit());
        let (start, end) = match (a.is_empty(), b.is_empty()) {
            (true, false) if digits(b) => {
                let n: u64 = b.parse().ok()?;
                if n == 0 {
                    continue;
                }
                (len.saturating_sub(n), len.saturating_sub(1))
            }
            (false, true) if digits(a) => (a.parse().ok()?, len.saturating_sub(1)),
            (false, false) if digits(a) && digits(b) => {
                let (s, e): (u64, u64) = (a.parse().ok()?, b.parse().ok()?);
                // A backwards range fits nothing (lighttpd: 416), it is not garbage.
                if e < s {
                    continue;
                }
                (s, e.min(len.saturating_sub(1)))
            }
            _ => return None,
        };
        if len == 0 || start >= len {
            continue;
        }
        span = Some(match span {
            None => (start, end),
            Some((s, e)) => (s.min(start), e.max(end)),
        });
    }
    Some(span)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// A satisfiable range always lies inside the file.
        #[test]
        fn ranges_stay_inside_the_file(spec in "[0-9,=\\- a-z]{0,40}", len in 0u64..100) {
            if let Some(Some((start, end))) = ranges(&format!("bytes={spec}"), len) {
                prop_assert!(start <= end && end < len);
            }
        }
    }

    fn head(extra: &str) -> Head {
        let raw = format!("GET / HTTP/1.1\r\nHost: x\r\n{extra}\r\n");
        super::super::request::parse(raw.as_bytes(), 16).unwrap()
    }

    #[test]
    fn conditionals_and_ranges() {
        let e = etag(b"hello", 100);
        assert_eq!(etag(b"hello", 100), e);
        assert_ne!(etag(b"hello", 101), e);
        assert_eq!(answer(&head(""), 16, &e, 100), Answer::Full);
        let inm = format!("If-None-Match: {e}\r\n");
        assert_eq!(answer(&head(&inm), 16, &e, 100), Answer::NotModified);
        assert_eq!(
            answer(&head("If-None-Match: *\r\n"), 16, &e, 100),
            Answer::NotModified
        );
        assert_eq!(
            answer(&head("If-None-Match: \"1\"\r\n"), 16, &e, 100),
            Answer::Full
        );
        assert_eq!(
            answer(
                &head("If-Modified-Since: Sun, 06 Dec 2036 22:55:47 GMT\r\n"),
                16,
                &e,
                100
            ),
            Answer::NotModified
        );
        assert_eq!(
            http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784_111_777)
        );
        assert_eq!(http_date("Sun, 06 Nov 1994 08:49:37"), None);
        let r = |v: &str| answer(&head(&format!("Range: {v}\r\n")), 16, &e, 100);
        assert_eq!(r("bytes=0-3"), Answer::Partial { start: 0, end: 3 });
        assert_eq!(r("bytes=-5"), Answer::Partial { start: 11, end: 15 });
        assert_eq!(r("bytes=5-"), Answer::Partial { start: 5, end: 15 });
        assert_eq!(r("bytes=0-1,3-4"), Answer::Partial { start: 0, end: 4 });
        assert_eq!(r("bytes=100-200"), Answer::Unsatisfiable);
        assert_eq!(r("foo"), Answer::Full);
        assert_eq!(r("bytes=1-0"), Answer::Unsatisfiable);
    }
}
