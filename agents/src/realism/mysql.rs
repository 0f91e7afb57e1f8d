//! The MySQL probe, as nmap's mysql-info and the brute forcers see a server: the v10
//! greeting's fields (the thread id and the salt are instance values and left out; the
//! patch level and Debian's update counter are normalised, as the point release moves
//! them) and the answer to a login as an unknown user.

use super::facts::Facts;
use super::net::Conn;
use std::net::SocketAddr;
use tokio::time::Instant;

/// Largest packet read (a greeting is under 128 bytes, an ERR packet under 512).
const MAX_PACKET: usize = 4096;

pub async fn probe(addr: SocketAddr, deadline: Instant) -> Facts {
    let mut f = Facts::default();
    let mut c = match Conn::open(addr, deadline).await {
        Ok(c) => c,
        Err(e) => {
            f.push("greeting", e);
            return f;
        }
    };
    let Some((_, g)) = packet(&mut c).await else {
        f.push("greeting", "(no packet)");
        return f;
    };
    if !greeting(&g, &mut f) {
        return f;
    }
    if c.send(&login_packet()).await.is_err() {
        return f;
    }
    match packet(&mut c).await {
        Some((seq, p)) => {
            let mut shown = vec![seq];
            shown.extend_from_slice(&p);
            f.push("unknown_user_reply", shown);
        }
        None => f.push("unknown_user_reply", "(no packet)"),
    }
    f
}

async fn packet(c: &mut Conn) -> Option<(u8, Vec<u8>)> {
    let h = c.read_exact(4).await?;
    let len = u32::from_le_bytes([h[0], h[1], h[2], 0]) as usize;
    if len > MAX_PACKET {
        return None;
    }
    Some((h[3], c.read_exact(len).await?))
}

/// `5.5.5-10.11.6-MariaDB-0+deb12u1` → `5.5.5-10.11.N-MariaDB-0+deb12uN`: the patch
/// level of each version (but MariaDB's constant `5.5.5-` replication prefix) and
/// Debian's update counter move with the point release.
pub fn normalise_version(v: &str) -> String {
    let parts: Vec<String> = v
        .split('-')
        .map(|seg| {
            let nums: Vec<&str> = seg.split('.').collect();
            let triple = nums.len() == 3
                && nums
                    .iter()
                    .all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
            if triple && seg != "5.5.5" {
                format!("{}.{}.N", nums[0], nums[1])
            } else {
                seg.to_owned()
            }
        })
        .collect();
    String::from_utf8_lossy(&super::ssh::normalise_ident(parts.join("-").as_bytes())).into_owned()
}

/// The facts of a v10 greeting; `false` if it is not one (an ERR packet, say: a host
/// that is blocked, itself the fact).
pub fn greeting(g: &[u8], f: &mut Facts) -> bool {
    if g.first() != Some(&10) {
        f.push("greeting", g);
        return false;
    }
    let Some(nul) = g[1..].iter().position(|&b| b == 0) else {
        f.push("greeting", "(no version terminator)");
        return false;
    };
    let version = String::from_utf8_lossy(&g[1..1 + nul]);
    f.push("greeting.protocol", "10");
    f.push("greeting.version", normalise_version(&version));
    // Thread id (4) and the first salt part (8) and a filler byte are skipped.
    let at = 1 + nul + 1 + 4 + 8 + 1;
    let Some(fixed) = g.get(at..at + 18) else {
        f.push("greeting.fields", "(truncated)");
        return false;
    };
    let caps = u32::from(u16::from_le_bytes([fixed[0], fixed[1]]))
        | u32::from(u16::from_le_bytes([fixed[5], fixed[6]])) << 16;
    f.push("greeting.capabilities", format!("{caps:#010x}"));
    f.push("greeting.charset", fixed[2].to_string());
    f.push(
        "greeting.status",
        format!("{:#06x}", u16::from_le_bytes([fixed[3], fixed[4]])),
    );
    f.push("greeting.auth_data_len", fixed[7].to_string());
    // MariaDB puts its extended capabilities in the last four reserved bytes.
    f.push("greeting.reserved", &fixed[8..18]);
    let salt2 = (usize::from(fixed[7]).saturating_sub(8)).max(13);
    let plugin = g
        .get(at + 18 + salt2..)
        .map(|p| p.split(|&b| b == 0).next().unwrap_or(p))
        .unwrap_or(b"(none)");
    f.push("greeting.auth_plugin", plugin);
    true
}

/// HandshakeResponse41 for a user that exists nowhere, with a password (a 20-byte
/// `mysql_native_password` answer that matches no salt).
fn login_packet() -> Vec<u8> {
    let caps: u32 = 0x0000_0001 // LONG_PASSWORD
        | 0x0000_0200 // PROTOCOL_41
        | 0x0000_2000 // TRANSACTIONS
        | 0x0000_8000 // SECURE_CONNECTION
        | 0x0008_0000; // PLUGIN_AUTH
    let mut p = Vec::new();
    p.extend_from_slice(&caps.to_le_bytes());
    p.extend_from_slice(&(16u32 << 20).to_le_bytes());
    p.push(45); // utf8mb4_general_ci
    p.extend_from_slice(&[0; 23]);
    p.extend_from_slice(b"realism_probe\0");
    p.push(20);
    p.extend_from_slice(&[0x5a; 20]);
    p.extend_from_slice(b"mysql_native_password\0");
    let mut out = (p.len() as u32).to_le_bytes()[..3].to_vec();
    out.push(1);
    out.extend_from_slice(&p);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_normalised_to_its_release_line() {
        assert_eq!(
            normalise_version("10.11.6-MariaDB-0+deb12u1"),
            "10.11.N-MariaDB-0+deb12uN"
        );
        assert_eq!(normalise_version("8.0.36"), "8.0.N");
        assert_eq!(
            normalise_version("5.5.5-10.11.19-MariaDB-0+deb12u1"),
            "5.5.5-10.11.N-MariaDB-0+deb12uN"
        );
        assert_eq!(normalise_version("garbage"), "garbage");
    }

    #[test]
    fn greeting_fields_and_hostile_greetings() {
        let mut g = vec![10];
        g.extend_from_slice(b"10.11.6-MariaDB-0+deb12u1\0");
        g.extend_from_slice(&[1, 0, 0, 0]); // thread id
        g.extend_from_slice(&[b'a'; 8]);
        g.push(0);
        g.extend_from_slice(&[0xfe, 0xf7, 45, 2, 0, 0xff, 0x81, 21]);
        g.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0x1d, 0, 0, 0]);
        g.extend_from_slice(&[b'b'; 12]);
        g.push(0);
        g.extend_from_slice(b"mysql_native_password\0");
        let mut f = Facts::default();
        assert!(greeting(&g, &mut f));
        assert_eq!(f.get("greeting.capabilities"), Some("0x81fff7fe"));
        assert_eq!(f.get("greeting.charset"), Some("45"));
        assert_eq!(f.get("greeting.auth_plugin"), Some("mysql_native_password"));
        for n in 0..g.len() {
            let mut f = Facts::default();
            let _ = greeting(&g[..n], &mut f);
        }
        let mut f = Facts::default();
        assert!(!greeting(b"\xffj\x04Host is blocked", &mut f));
    }
}
