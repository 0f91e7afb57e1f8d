//! The Redis probe, as redis-cli, nmap's redis-info and the worms that scan for open
//! Redis see a server: PING, INFO server's field names and its build facts, COMMAND
//! COUNT, an unknown command, a wrong arity and an inline request with unbalanced quotes.

use super::facts::Facts;
use super::net::Conn;
use std::net::SocketAddr;
use tokio::time::{Duration, Instant};

/// INFO server fields that are facts of the build (the same on every installation of
/// the package); the rest (pid, ports, uptime, run id, paths, os) are instance values
/// whose names are still compared, in order.
const BUILD_FIELDS: [&str; 9] = [
    "redis_version",
    "redis_git_sha1",
    "redis_git_dirty",
    "redis_build_id",
    "redis_mode",
    "arch_bits",
    "monotonic_clock",
    "multiplexing_api",
    "gcc_version",
];

/// (check, request) on one connection; the last one makes the server close it.
const REQUESTS: [(&str, &[u8]); 5] = [
    ("ping", b"PING\r\n"),
    ("command_count", b"*2\r\n$7\r\nCOMMAND\r\n$5\r\nCOUNT\r\n"),
    (
        "unknown_command",
        b"*3\r\n$6\r\nFOOBAR\r\n$1\r\na\r\n$1\r\nb\r\n",
    ),
    ("wrong_arity", b"*1\r\n$3\r\nGET\r\n"),
    ("unbalanced_quotes", b"SET \"a b\r\n"),
];

pub async fn probe(addr: SocketAddr, deadline: Instant) -> Facts {
    let mut f = Facts::default();
    let mut c = match Conn::open(addr, deadline).await {
        Ok(c) => c,
        Err(e) => {
            f.push("ping", e);
            return f;
        }
    };
    for (i, (name, req)) in REQUESTS.iter().enumerate() {
        if c.send(req).await.is_err() {
            break;
        }
        let reply = if i + 1 == REQUESTS.len() {
            c.read_rest(Duration::from_millis(1500)).await
        } else {
            c.read_until(reply_len).await
        };
        f.push(name, reply);
        if i == 0 {
            info(&mut c, &mut f).await;
        }
    }
    f
}

async fn info(c: &mut Conn, f: &mut Facts) {
    if c.send(b"*2\r\n$4\r\nINFO\r\n$6\r\nserver\r\n")
        .await
        .is_err()
    {
        return;
    }
    let raw = c.read_until(reply_len).await;
    info_facts(&raw, f);
}

/// The facts of an INFO server reply: field names in order, and the build fields.
pub fn info_facts(raw: &[u8], f: &mut Facts) {
    if raw.first() != Some(&b'$') {
        // An error (NOAUTH) is itself the fact.
        f.push("info_server", raw);
        return;
    }
    let text = String::from_utf8_lossy(raw);
    let mut names = Vec::new();
    let mut values = Vec::new();
    for line in text.lines().skip(1) {
        if let Some((n, v)) = line.split_once(':') {
            names.push(n.to_owned());
            values.push((n.to_owned(), v.to_owned()));
        }
    }
    f.push("info_server.fields", names.join(","));
    if let Some((_, os)) = values.iter().find(|(n, _)| n == "os") {
        f.push(&format!("{}info_os", super::INSTANCE), os);
    }
    for want in BUILD_FIELDS {
        let v = values
            .iter()
            .find(|(n, _)| n == want)
            .map(|(_, v)| v.as_str());
        f.push(&format!("info_server.{want}"), v.unwrap_or("(absent)"));
    }
}

/// The value of field `name` in an INFO reply's facts, unescaped enough for the
/// consistency checks (values are printable).
pub fn info_value(raw: &[u8], name: &str) -> Option<String> {
    String::from_utf8_lossy(raw).lines().find_map(|l| {
        l.split_once(':')
            .filter(|(n, _)| *n == name)
            .map(|(_, v)| v.to_owned())
    })
}

/// The length of the first whole RESP2 reply in `b` (simple, error, integer or bulk; the
/// probe asks nothing that answers with an array), if it is all there.
pub fn reply_len(b: &[u8]) -> Option<usize> {
    let line_end = b.windows(2).position(|w| w == b"\r\n")? + 2;
    match b.first()? {
        b'$' => {
            let n: i64 = std::str::from_utf8(&b[1..line_end - 2])
                .ok()?
                .parse()
                .ok()?;
            if n < 0 {
                return Some(line_end);
            }
            let total = line_end
                .checked_add(usize::try_from(n).ok()?)?
                .checked_add(2)?;
            (b.len() >= total).then_some(total)
        }
        _ => Some(line_end),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resp_replies_are_delimited() {
        assert_eq!(reply_len(b"+PONG\r\n:1"), Some(7));
        assert_eq!(reply_len(b"$3\r\nabc\r\n"), Some(9));
        assert_eq!(reply_len(b"$3\r\nab"), None);
        assert_eq!(reply_len(b"$-1\r\n"), Some(5));
        assert_eq!(reply_len(b"$99999999999999999999\r\n"), None);
        assert_eq!(reply_len(b"$x\r\n"), None);
    }

    #[test]
    fn info_names_and_build_fields() {
        let body = "# Server\r\nredis_version:7.0.15\r\nprocess_id:42\r\n";
        let raw = format!("${}\r\n{body}\r\n", body.len());
        let mut f = Facts::default();
        info_facts(raw.as_bytes(), &mut f);
        assert_eq!(
            f.get("info_server.fields"),
            Some("redis_version,process_id")
        );
        assert_eq!(f.get("info_server.redis_version"), Some("7.0.15"));
        assert_eq!(f.get("info_server.gcc_version"), Some("(absent)"));
        assert_eq!(
            info_value(raw.as_bytes(), "process_id").as_deref(),
            Some("42")
        );
    }
}
