//! Syslog parsing for the aggregator ([`super::aggregator`]): devices that cannot run an
//! agent (printers, cameras, NAS) send syslog to an agent, which reports each line as an
//! event of that device. Sans-IO and hostile-input safe: RFC 5424,
//! RFC 3164 (BSD, in the shapes real devices send) and bare lines; TCP framing by octet
//! counting or line feed (RFC 6587). Every field is clamped; nothing allocates more than
//! the line it came from.

/// Longest message accepted (a UDP datagram, or one TCP frame); longer frames are cut.
pub const MAX_MESSAGE: usize = 8192;
/// Longest header field kept (host name, app name, process id, message id, timestamp).
const MAX_FIELD: usize = 255;

/// Which grammar a line matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Rfc5424,
    Rfc3164,
    /// No recognisable header: the whole line is the message.
    Bare,
}

/// One syslog message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub format: Format,
    /// 0–23; 1 (user) when the line has no priority.
    pub facility: u8,
    /// 0 (emergency) – 7 (debug); 5 (notice) when the line has no priority.
    pub severity: u8,
    pub timestamp: Option<String>,
    pub hostname: Option<String>,
    pub app: Option<String>,
    pub procid: Option<String>,
    pub msgid: Option<String>,
    /// RFC 5424 structured data, as sent (`[id k="v"]…`), when not `-`.
    pub structured_data: Option<String>,
    pub msg: String,
}

fn clamp(s: &str, max: usize) -> String {
    honeybee_proto::event::clamp(s, max)
}

fn nil(s: &str) -> Option<String> {
    (s != "-" && !s.is_empty()).then(|| clamp(s, MAX_FIELD))
}

/// `<PRI>`: the priority and the rest.
fn pri(line: &str) -> Option<(u8, &str)> {
    let rest = line.strip_prefix('<')?;
    let end = rest.find('>')?;
    let digits = &rest[..end];
    if digits.is_empty() || digits.len() > 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let p: u16 = digits.parse().ok()?;
    (p <= 191).then_some((p as u8, &rest[end + 1..]))
}

/// Parses one message (a datagram, or a frame from [`next_frame`]). Never fails: a line
/// with no header is a `Bare` message.
pub fn parse(raw: &[u8]) -> Message {
    let raw = &raw[..raw.len().min(MAX_MESSAGE)];
    let text = String::from_utf8_lossy(raw);
    let line = text.trim_end_matches(['\r', '\n', '\0']);
    let bare = |msg: &str, p: Option<u8>| Message {
        format: Format::Bare,
        facility: p.map_or(1, |p| p >> 3),
        severity: p.map_or(5, |p| p & 7),
        timestamp: None,
        hostname: None,
        app: None,
        procid: None,
        msgid: None,
        structured_data: None,
        msg: clamp(msg, MAX_MESSAGE),
    };
    let Some((p, rest)) = pri(line) else {
        return bare(line, None);
    };
    if let Some(m) = rfc5424(p, rest) {
        return m;
    }
    if let Some(m) = rfc3164(p, rest) {
        return m;
    }
    bare(rest, Some(p))
}

fn rfc5424(p: u8, rest: &str) -> Option<Message> {
    let rest = rest.strip_prefix("1 ")?;
    let mut it = rest.splitn(6, ' ');
    let ts = it.next()?;
    let host = it.next()?;
    let app = it.next()?;
    let procid = it.next()?;
    let msgid = it.next()?;
    let tail = it.next().unwrap_or("");
    let (sd, msg) = structured_data(tail)?;
    let msg = msg.strip_prefix('\u{feff}').unwrap_or(msg);
    Some(Message {
        format: Format::Rfc5424,
        facility: p >> 3,
        severity: p & 7,
        timestamp: nil(ts),
        hostname: nil(host),
        app: nil(app),
        procid: nil(procid),
        msgid: nil(msgid),
        structured_data: sd.and_then(nil),
        msg: clamp(msg, MAX_MESSAGE),
    })
}

/// `-` or one or more `[…]` elements (with `\]` escapes), then the message.
fn structured_data(tail: &str) -> Option<(Option<&str>, &str)> {
    if let Some(msg) = tail.strip_prefix('-') {
        return Some((None, msg.strip_prefix(' ').unwrap_or(msg)));
    }
    if !tail.starts_with('[') {
        return if tail.is_empty() {
            Some((None, ""))
        } else {
            None
        };
    }
    let b = tail.as_bytes();
    let (mut i, mut depth, mut escaped) = (0usize, 0u32, false);
    while i < b.len() {
        match (b[i], escaped) {
            (b'\\', false) => escaped = true,
            (b'[', false) if depth == 0 => depth = 1,
            (b']', false) if depth == 1 => {
                depth = 0;
                if b.get(i + 1) != Some(&b'[') {
                    let (sd, msg) = tail.split_at(i + 1);
                    return Some((Some(sd), msg.strip_prefix(' ').unwrap_or(msg)));
                }
            }
            _ => escaped = false,
        }
        if b[i] != b'\\' {
            escaped = false;
        }
        i += 1;
    }
    None
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

fn rfc3164(p: u8, rest: &str) -> Option<Message> {
    // "Mmm dd hh:mm:ss " (dd space-padded), then HOSTNAME, then TAG[pid]: MSG.
    let b = rest.as_bytes();
    if b.len() < 16 || !MONTHS.contains(&rest.get(..3)?) || b[3] != b' ' || b[15] != b' ' {
        return None;
    }
    let clock = rest.get(7..15)?;
    if !clock.bytes().enumerate().all(|(i, c)| {
        if i == 2 || i == 5 {
            c == b':'
        } else {
            c.is_ascii_digit()
        }
    }) {
        return None;
    }
    let ts = &rest[..15];
    let after = &rest[16..];
    let (host, body) = match after.split_once(' ') {
        // A host name has no colon or bracket; without one, the line starts at the tag.
        Some((h, body)) if !h.is_empty() && !h.contains([':', '[', ']']) => (Some(h), body),
        _ => (None, after),
    };
    let (tag, procid, msg) = tag(body);
    Some(Message {
        format: Format::Rfc3164,
        facility: p >> 3,
        severity: p & 7,
        timestamp: Some(ts.to_owned()),
        hostname: host.and_then(nil),
        app: tag.and_then(nil),
        procid: procid.and_then(nil),
        msgid: None,
        structured_data: None,
        msg: clamp(msg, MAX_MESSAGE),
    })
}

/// `tag[pid]: msg` or `tag: msg`; a tag is at most 48 of alphanumerics, `-_./`.
fn tag(body: &str) -> (Option<&str>, Option<&str>, &str) {
    let end = body
        .find(|c: char| !(c.is_ascii_alphanumeric() || "-_./".contains(c)))
        .unwrap_or(body.len());
    if end == 0 || end > 48 {
        return (None, None, body);
    }
    let (t, rest) = body.split_at(end);
    if let Some(r) = rest.strip_prefix('[')
        && let Some((pid, after)) = r.split_once(']')
        && pid.len() <= 32
    {
        let msg = after.strip_prefix(':').unwrap_or(after);
        return (Some(t), Some(pid), msg.strip_prefix(' ').unwrap_or(msg));
    }
    if let Some(msg) = rest.strip_prefix(':') {
        return (Some(t), None, msg.strip_prefix(' ').unwrap_or(msg));
    }
    (None, None, body)
}

/// The next frame of a buffered TCP syslog stream (RFC 6587; the service itself frames
/// with the streaming [`super::aggregator::TcpFramer`], which never buffers a whole
/// octet-counted frame): octet counting (`LEN SP MSG`) when
/// the stream starts with a digit, else up to a line feed. `Some((frame, consumed))`;
/// `None` when more bytes are needed. A frame over [`MAX_MESSAGE`] is cut to it (the rest
/// is skipped); a length that is not a number ends the stream (`Err`).
pub fn next_frame(buf: &[u8]) -> Result<Option<(&[u8], usize)>, &'static str> {
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    if first.is_ascii_digit() {
        let Some(sp) = buf.iter().take(8).position(|&b| b == b' ') else {
            return if buf.len() >= 8 {
                Err("bad octet count")
            } else {
                Ok(None)
            };
        };
        let len: usize = std::str::from_utf8(&buf[..sp])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or("bad octet count")?;
        if len > 1 << 20 {
            return Err("octet count over 1 MiB");
        }
        let start = sp + 1;
        if buf.len() < start + len {
            return Ok(None);
        }
        let frame = &buf[start..start + len];
        return Ok(Some((&frame[..frame.len().min(MAX_MESSAGE)], start + len)));
    }
    match buf.iter().position(|&b| b == b'\n') {
        Some(nl) => Ok(Some((&buf[..nl.min(MAX_MESSAGE)], nl + 1))),
        None if buf.len() > MAX_MESSAGE => Ok(Some((&buf[..MAX_MESSAGE], buf.len()))),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc5424_with_and_without_structured_data() {
        let m = parse(b"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut=\"3\" eventSource=\"Application\" eventID=\"1011\"] \xef\xbb\xbfAn application event log entry...");
        assert_eq!(m.format, Format::Rfc5424);
        assert_eq!((m.facility, m.severity), (20, 5));
        assert_eq!(m.hostname.as_deref(), Some("mymachine.example.com"));
        assert_eq!(m.app.as_deref(), Some("evntslog"));
        assert_eq!(m.procid, None);
        assert_eq!(m.msgid.as_deref(), Some("ID47"));
        assert!(
            m.structured_data
                .as_deref()
                .unwrap()
                .starts_with("[exampleSDID@32473 iut=")
        );
        assert_eq!(m.msg, "An application event log entry...");
        let m = parse(b"<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - 'su root' failed for lonvick on /dev/pts/8\n");
        assert_eq!((m.facility, m.severity), (4, 2));
        assert_eq!(m.structured_data, None);
        assert_eq!(m.msg, "'su root' failed for lonvick on /dev/pts/8");
        let m = parse(br#"<13>1 - - - - - [a x="\]"][b] tail"#);
        assert_eq!(m.structured_data.as_deref(), Some(r#"[a x="\]"][b]"#));
        assert_eq!(m.msg, "tail");
    }

    #[test]
    fn rfc3164_as_devices_send_it() {
        // util-linux logger --rfc3164 and a typical printer / NAS.
        let m = parse(b"<13>Dec  7 06:40:01 nas01 kernel: eth0 link up");
        assert_eq!(m.format, Format::Rfc3164);
        assert_eq!(m.timestamp.as_deref(), Some("Dec  7 06:40:01"));
        assert_eq!(m.hostname.as_deref(), Some("nas01"));
        assert_eq!(m.app.as_deref(), Some("kernel"));
        assert_eq!(m.msg, "eth0 link up");
        let m = parse(b"<30>Oct 11 22:14:15 printer-3f httpd[1234]: admin login from 10.0.0.9");
        assert_eq!(m.procid.as_deref(), Some("1234"));
        assert_eq!(m.app.as_deref(), Some("httpd"));
        assert_eq!(m.msg, "admin login from 10.0.0.9");
        // No host name (some cameras): the tag follows the time.
        let m = parse(b"<14>Oct 11 22:14:15 sshd[9]: Accepted password");
        assert_eq!(m.hostname, None);
        assert_eq!(m.app.as_deref(), Some("sshd"));
        assert_eq!(m.msg, "Accepted password");
    }

    /// Recorded from util-linux `logger` 2.38 (Debian 12) sending to a UDP socket.
    #[test]
    fn what_debian_logger_sends() {
        let m = parse(b"<36>Dec  7 06:41:25 vm cam01: motion detected");
        assert_eq!((m.format, m.facility, m.severity), (Format::Rfc3164, 4, 4));
        assert_eq!(
            (m.hostname.as_deref(), m.app.as_deref()),
            (Some("vm"), Some("cam01"))
        );
        assert_eq!(m.msg, "motion detected");
        let m = parse(b"<36>1 2026-12-07T06:41:25.141718+00:00 vm cam01 - - [timeQuality tzKnown=\"1\" isSynced=\"0\"] motion detected");
        assert_eq!(m.format, Format::Rfc5424);
        assert_eq!(
            m.timestamp.as_deref(),
            Some("2026-12-07T06:41:25.141718+00:00")
        );
        assert_eq!(
            (m.hostname.as_deref(), m.app.as_deref()),
            (Some("vm"), Some("cam01"))
        );
        assert_eq!(m.msg, "motion detected");
    }

    #[test]
    fn bare_and_hostile_lines() {
        let m = parse(b"hello world");
        assert_eq!((m.format, m.facility, m.severity), (Format::Bare, 1, 5));
        assert_eq!(m.msg, "hello world");
        let m = parse(b"<999>x");
        assert_eq!(m.format, Format::Bare);
        let m = parse(b"<7>just text");
        assert_eq!(
            (m.format, m.severity, m.msg.as_str()),
            (Format::Bare, 7, "just text")
        );
        let big = vec![b'a'; 100_000];
        assert!(parse(&big).msg.len() <= MAX_MESSAGE);
        let samples: [&[u8]; 8] = [
            b"",
            b"<",
            b"<>",
            b"<1",
            b"<13>1",
            b"<13>1 [",
            b"<13>Dec  7 06:40:01",
            b"<13>1 - - - - - [unterminated \\",
        ];
        for s in samples {
            let _ = parse(s);
        }
        let base = b"<165>1 2003-10-11T22:14:15.003Z host app 12 ID [x a=\"b\"] msg".to_vec();
        let mut g = base.clone();
        for i in 0..g.len() {
            for b in [b'<', b'>', b'[', b']', b' ', b'\\', 0xff, b'1'] {
                let s = g[i];
                g[i] = b;
                let m = parse(&g);
                assert!(m.facility < 24 && m.severity < 8);
                g[i] = s;
            }
        }
    }

    #[test]
    fn tcp_framing() {
        let s = b"11 <13>1 - - x<13>line one\n";
        let (f, n) = next_frame(s).unwrap().unwrap();
        assert_eq!((f, n), (&b"<13>1 - - x"[..], 14));
        let (f, n) = next_frame(&s[14..]).unwrap().unwrap();
        assert_eq!((f, n), (&b"<13>line one"[..], 13));
        assert_eq!(next_frame(b"20 <13>short").unwrap(), None, "needs more");
        assert_eq!(next_frame(b"<13>no newline yet").unwrap(), None);
        assert!(next_frame(b"12345678x").is_err());
        assert!(next_frame(b"99999999 x").is_err());
        let long = vec![b'a'; MAX_MESSAGE + 10];
        let (f, n) = next_frame(&long).unwrap().unwrap();
        assert_eq!((f.len(), n), (MAX_MESSAGE, long.len()));
    }
}
