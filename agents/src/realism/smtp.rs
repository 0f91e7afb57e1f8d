//! The SMTP probe, as nmap's smtp-commands and the spam relays' first steps see a server:
//! the greeting, the EHLO extensions in order, HELP, an unknown command, a command out
//! of sequence, VRFY and QUIT. The server's host name (from the greeting) is an
//! instance value: it becomes `HOSTNAME` in every reply, and the consistency checks
//! compare it with the persona.

use super::facts::Facts;
use super::net::Conn;
use std::net::SocketAddr;
use tokio::time::Instant;

/// (check, command line).
const COMMANDS: [(&str, &[u8]); 6] = [
    ("ehlo", b"EHLO realism.probe.test\r\n"),
    ("help", b"HELP\r\n"),
    ("unknown_command", b"XYZZY\r\n"),
    ("rcpt_before_mail", b"RCPT TO:<root@localhost>\r\n"),
    ("vrfy", b"VRFY root\r\n"),
    ("quit", b"QUIT\r\n"),
];

pub async fn probe(addr: SocketAddr, deadline: Instant) -> Facts {
    let mut f = Facts::default();
    let mut c = match Conn::open(addr, deadline).await {
        Ok(c) => c,
        Err(e) => {
            f.push("banner", e);
            return f;
        }
    };
    let banner = c.read_until(super::ftp::reply_len).await;
    let host = host_of(&banner);
    f.push(&format!("{}smtp_host", super::INSTANCE), &host);
    let hide = |b: &[u8]| -> Vec<u8> {
        let s = String::from_utf8_lossy(b);
        if host.is_empty() {
            s.into_owned().into_bytes()
        } else {
            s.replace(&host, "HOSTNAME").into_bytes()
        }
    };
    f.push("banner", hide(&banner));
    for (name, cmd) in COMMANDS {
        if c.send(cmd).await.is_err() {
            break;
        }
        let reply = c.read_until(super::ftp::reply_len).await;
        f.push(name, hide(&reply));
    }
    f
}

/// The host name a greeting announces: `220 mx.example.org ESMTP …` → `mx.example.org`.
pub fn host_of(banner: &[u8]) -> String {
    let s = String::from_utf8_lossy(banner);
    s.strip_prefix("220 ")
        .or_else(|| s.strip_prefix("220-"))
        .and_then(|r| r.split([' ', '\r', '\n']).next())
        .filter(|h| h.len() <= 253 && h.contains('.'))
        .unwrap_or("")
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_comes_from_the_greeting() {
        assert_eq!(
            host_of(b"220 mail.example.org ESMTP Postfix (Debian/GNU)\r\n"),
            "mail.example.org"
        );
        assert_eq!(host_of(b"220 localhost ESMTP\r\n"), "");
        assert_eq!(host_of(b"554 no\r\n"), "");
        assert_eq!(host_of(b""), "");
    }
}
