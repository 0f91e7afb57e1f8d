//! The FTP probe, as nmap's ftp banner grab and a scanner's first commands see a server:
//! the greeting, FEAT, SYST, an unknown command and a command that needs a login, all
//! before logging in (the probe never sends a password).

use super::facts::Facts;
use super::net::Conn;
use std::net::SocketAddr;
use tokio::time::Instant;

/// (check, command line).
const COMMANDS: [(&str, &[u8]); 5] = [
    ("feat", b"FEAT\r\n"),
    ("syst", b"SYST\r\n"),
    ("unknown_command", b"XYZZY\r\n"),
    ("list_before_login", b"LIST\r\n"),
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
    f.push("banner", c.read_until(reply_len).await);
    for (name, cmd) in COMMANDS {
        if c.send(cmd).await.is_err() {
            break;
        }
        f.push(name, c.read_until(reply_len).await);
    }
    f
}

/// The length of the first whole reply in `b` (RFC 959: a multi-line reply ends with a
/// line that starts with the same code and a space), if it is all there.
pub fn reply_len(b: &[u8]) -> Option<usize> {
    let first_end = b.iter().position(|&c| c == b'\n')? + 1;
    if b.len() < 4 || b[3] != b'-' {
        return Some(first_end);
    }
    let code = &b[..3];
    let mut at = first_end;
    while at < b.len() {
        let end = at + b[at..].iter().position(|&c| c == b'\n')? + 1;
        let line = &b[at..end];
        if line.len() >= 4 && &line[..3] == code && line[3] == b' ' {
            return Some(end);
        }
        at = end;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_are_delimited_as_rfc_959_says() {
        assert_eq!(reply_len(b"220 (vsFTPd 3.0.3)\r\nrest"), Some(20));
        let feat = b"211-Features:\r\n EPRT\r\n211 End\r\n";
        assert_eq!(reply_len(feat), Some(feat.len()));
        assert_eq!(reply_len(b"211-Features:\r\n EPRT\r\n"), None);
        assert_eq!(reply_len(b"22"), None);
        assert_eq!(reply_len(b"\n"), Some(1));
    }
}
