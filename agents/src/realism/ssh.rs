//! The SSH probe, as ssh-audit and nmap's ssh2-enum-algos see a server: the
//! identification string, the KEXINIT name-lists in order (host key types among them),
//! and the answers to a non-SSH line and to an SSH-1 client.

use super::facts::Facts;
use super::net::Conn;
use std::net::SocketAddr;
use tokio::time::{Duration, Instant};

/// The client identification the probe sends (a stock OpenSSH client's).
const CLIENT_ID: &[u8] = b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n";
/// Largest KEXINIT packet accepted (OpenSSH's own packet cap is far larger; real
/// KEXINITs are about 1.5 KiB).
const MAX_PACKET: usize = 35_000;

const LISTS: [&str; 10] = [
    "kex_algorithms",
    "server_host_key_algorithms",
    "encryption_algorithms_client_to_server",
    "encryption_algorithms_server_to_client",
    "mac_algorithms_client_to_server",
    "mac_algorithms_server_to_client",
    "compression_algorithms_client_to_server",
    "compression_algorithms_server_to_client",
    "languages_client_to_server",
    "languages_server_to_client",
];

/// The Debian security-update counter (`+deb12u3`) differs between two real, patched
/// installations; the release before it does not.
pub fn normalise_ident(line: &[u8]) -> Vec<u8> {
    let s = String::from_utf8_lossy(line).into_owned();
    let Some(at) = s.find("+deb") else {
        return line.to_vec();
    };
    let rest = &s[at + 4..];
    let Some(u) = rest.find('u') else {
        return line.to_vec();
    };
    let digits = rest[u + 1..].bytes().take_while(u8::is_ascii_digit).count();
    if u == 0 || !rest[..u].bytes().all(|b| b.is_ascii_digit()) || digits == 0 {
        return line.to_vec();
    }
    format!(
        "{}+deb{}uN{}",
        &s[..at],
        &rest[..u],
        &rest[u + 1 + digits..]
    )
    .into_bytes()
}

pub async fn probe(addr: SocketAddr, deadline: Instant) -> Facts {
    let mut f = Facts::default();
    // Each connection gets a share of the time so one wedged exchange cannot starve
    // the others.
    let share = |n: u32| {
        let left = deadline.saturating_duration_since(Instant::now());
        Instant::now() + left / n
    };
    kexinit(addr, share(3), &mut f).await;
    for (name, line) in [
        // One line only: a second unread line would make sshd close with a reset, which
        // can discard the end of its answer before the probe reads it.
        ("bad_ident_reply", b"GET / HTTP/1.0\r\n".as_slice()),
        ("ssh1_ident_reply", b"SSH-1.5-Client\r\n".as_slice()),
    ] {
        let until = share(2);
        match Conn::open(addr, until).await {
            Ok(mut c) => {
                let _ = c.read_line().await;
                let _ = c.send(line).await;
                f.push(name, c.read_rest(Duration::from_secs(2)).await);
            }
            Err(e) => f.push(name, e),
        }
    }
    f
}

async fn kexinit(addr: SocketAddr, deadline: Instant, f: &mut Facts) {
    let mut c = match Conn::open(addr, deadline).await {
        Ok(c) => c,
        Err(e) => {
            f.push("ident", e);
            return;
        }
    };
    let line = c.read_line().await;
    f.push("ident", normalise_ident(&line));
    if c.send(CLIENT_ID).await.is_err() {
        return;
    }
    let Some(head) = c.read_exact(5).await else {
        return;
    };
    let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
    if !(2..=MAX_PACKET).contains(&len) {
        f.push("kexinit", format!("(bad packet length {len})"));
        return;
    }
    let Some(body) = c.read_exact(len - 1).await else {
        return;
    };
    let pad = head[4] as usize;
    let Some(payload) = body.get(..body.len().saturating_sub(pad)) else {
        return;
    };
    match parse_kexinit(payload) {
        Some((lists, follows)) => {
            for (name, list) in LISTS.iter().zip(lists) {
                f.push(name, list);
            }
            f.push("first_kex_packet_follows", [b'0' + follows as u8]);
        }
        None => f.push("kexinit", "(not a KEXINIT)"),
    }
}

/// The ten name-lists and the `first_kex_packet_follows` flag of a KEXINIT payload.
pub fn parse_kexinit(p: &[u8]) -> Option<(Vec<Vec<u8>>, bool)> {
    if p.first() != Some(&20) {
        return None;
    }
    let mut at = 17;
    let mut lists = Vec::with_capacity(10);
    for _ in 0..10 {
        let n = u32::from_be_bytes(p.get(at..at + 4)?.try_into().ok()?) as usize;
        at += 4;
        lists.push(p.get(at..at.checked_add(n)?)?.to_vec());
        at += n;
    }
    Some((lists, *p.get(at)? != 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ident_counter_is_normalised_and_nothing_else() {
        assert_eq!(
            normalise_ident(b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u10\r\n"),
            b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12uN\r\n"
        );
        assert_eq!(
            normalise_ident(b"SSH-2.0-OpenSSH_8.4p1 Debian-5+deb11u3\r\n"),
            b"SSH-2.0-OpenSSH_8.4p1 Debian-5+deb11uN\r\n"
        );
        assert_eq!(
            normalise_ident(b"SSH-2.0-OpenSSH_9.6\r\n"),
            b"SSH-2.0-OpenSSH_9.6\r\n"
        );
        assert_eq!(normalise_ident(b"+debu\r\n"), b"+debu\r\n");
    }

    #[test]
    fn kexinit_lists_parse_and_truncation_is_refused() {
        let mut p = vec![20u8];
        p.extend_from_slice(&[7; 16]);
        for i in 0..10u8 {
            let s = vec![b'a' + i; i as usize];
            p.extend_from_slice(&(s.len() as u32).to_be_bytes());
            p.extend_from_slice(&s);
        }
        p.push(1);
        p.extend_from_slice(&[0; 4]);
        let (lists, follows) = parse_kexinit(&p).unwrap();
        assert_eq!(lists[3], b"ddd");
        assert!(follows);
        for n in 0..p.len() - 5 {
            assert!(parse_kexinit(&p[..n]).is_none(), "cut at {n}");
        }
        // A length past the end is refused, not allocated.
        let mut huge = vec![20u8; 17];
        huge.extend_from_slice(&u32::MAX.to_be_bytes());
        assert!(parse_kexinit(&huge).is_none());
    }
}
