//! The MariaDB a Debian 12 box runs as its "mysql": Debian's `default-mysql-server` is
//! `mariadb-server` 1:10.11.x, so a node whose SSH, shell and `/etc/debian_version` say
//! Debian 12 answers with MariaDB's greeting, capabilities, collation and errors, in the
//! version its point release shipped.
//!
//! What the server says to a failed login depends on its accounts (MariaDB picks a stand-in
//! account for a user that does not exist, so its answer is not an oracle for user names).
//! The accounts modelled are Debian's own (`root` and `mysql` by unix_socket or an unusable
//! password, the locked `mariadb.sys`) and one account that may log in from anywhere, as a
//! server reachable from the network has (with only Debian's accounts, a remote client
//! would get "Host … is not allowed to connect" instead of a greeting).

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;

/// `CLIENT_*` flags MariaDB 10.11 announces without TLS: 0x81fff7fe. Bit 0
/// (`CLIENT_MYSQL`) clear marks a MariaDB server; bit 11 (`CLIENT_SSL`) clear because
/// Debian 12's configuration enables no TLS (`have_ssl` is `DISABLED`).
pub(crate) const CAPS: u32 = 0x81ff_f7fe;
/// MariaDB's extended capabilities in the greeting's filler: progress reports, bulk
/// statements, extended and cached metadata.
pub(crate) const EXT_CAPS: u32 = 0x1d;
/// `utf8mb4_general_ci`: Debian's `50-server.cnf` sets `collation-server` to it.
pub(crate) const CHARSET: u8 = 45;
/// `USERNAME_CHAR_LENGTH`: longer user names are cut to this many characters.
const USER_CHARS: usize = 128;

/// The remote account modelled (any host, a password no one will guess).
pub(crate) const REMOTE_ACCOUNT: &str = "admin";

/// One row of `mysql.global_priv` as the server keeps them: sorted by user name.
struct Account {
    user: &'static str,
    /// `Host` is `localhost` (else `%`).
    local_only: bool,
    /// `IDENTIFIED VIA mysql_native_password USING 'invalid' OR unix_socket`: over TCP the
    /// last method tried is unix_socket, and its refusal is error 1698.
    unix_socket: bool,
}

const ACCOUNTS: &[Account] = &[
    Account {
        user: REMOTE_ACCOUNT,
        local_only: false,
        unix_socket: false,
    },
    Account {
        user: "mariadb.sys",
        local_only: true,
        unix_socket: false,
    },
    Account {
        user: "mysql",
        local_only: true,
        unix_socket: true,
    },
    Account {
        user: "root",
        local_only: true,
        unix_socket: true,
    },
];

/// The `mariadb-server` Debian 12 had at a point release, as the server names itself:
/// the upstream version, `-MariaDB`, and Debian's revision.
pub(crate) fn debian_version(debian_release: &str) -> &'static str {
    // From the package's changelog dates against the point releases: 10.11.6 was in
    // bookworm by 12.5 (Feb 2024), 10.11.9 came with 12.8, 10.11.11 with 12.10,
    // 10.11.14 (+deb12u2) with 12.12 (Sep 2025), 10.11.18 after June 2026.
    let minor: u32 = debian_release
        .split_once('.')
        .and_then(|(_, m)| m.parse().ok())
        .unwrap_or(5);
    match minor {
        0..=7 => "10.11.6-MariaDB-0+deb12u1",
        8..=9 => "10.11.9-MariaDB-0+deb12u1",
        10..=11 => "10.11.11-MariaDB-0+deb12u1",
        12..=13 => "10.11.14-MariaDB-0+deb12u2",
        _ => "10.11.18-MariaDB-0+deb12u1",
    }
}

/// The version in the greeting: MariaDB before 11 prefixes `5.5.5-` so that old MySQL
/// replicas do not take 10.x for a version below 5.
pub(crate) fn greeting_version(server_version: &str) -> String {
    format!("5.5.5-{server_version}")
}

/// A scramble as MariaDB's `create_random_string` makes it: printable ASCII 33..=126.
pub(crate) fn scramble_from(random: [u8; 20]) -> [u8; 20] {
    random.map(|b| 33 + (b % 94))
}

/// The client's host as MariaDB names it in errors: `localhost` for the loopback address
/// (`vio_is_loopback`), otherwise the address (the honeypot does no reverse lookup; a
/// real server shows a host name when the address has a matching PTR record).
pub(crate) fn client_host(ip: IpAddr) -> String {
    let ip = ip.to_canonical();
    match ip {
        IpAddr::V4(v4) if v4 == std::net::Ipv4Addr::LOCALHOST => "localhost".into(),
        IpAddr::V6(v6) if v6 == std::net::Ipv6Addr::LOCALHOST => "localhost".into(),
        other => other.to_string(),
    }
}

/// A user name as the server holds it (`name`, in its utf8mb3 system character set) and
/// as its error messages show it to the client (`shown`, in the client's character set).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UserName {
    pub name: String,
    pub shown: Vec<u8>,
}

/// Character sets by the collation id a client announces, as far as user names go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    /// latin1 (MariaDB's latin1 is cp1252).
    Latin1,
    Ascii,
    /// `utf8`: at most three bytes a character.
    Utf8mb3,
    /// utf8mb4, and ids MariaDB 10.11 does not know (it falls back to the server's).
    Utf8mb4,
}

fn family(collation: u8) -> Family {
    match collation {
        5 | 8 | 15 | 31 | 47 | 48 | 49 | 94 => Family::Latin1,
        11 | 65 => Family::Ascii,
        33 | 83 | 192..=215 | 223 => Family::Utf8mb3,
        _ => Family::Utf8mb4,
    }
}

/// cp1252's characters for 0x80..=0x9f (the five it leaves undefined map to the C1
/// controls, as MariaDB's latin1 does).
const CP1252_HIGH: [u16; 32] = [
    0x20AC, 0x0081, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160, 0x2039,
    0x0152, 0x008D, 0x017D, 0x008F, 0x0090, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014,
    0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0x009D, 0x017E, 0x0178,
];

/// The user name a client sent, converted as MariaDB converts it: to utf8mb3 from the
/// client's character set (a byte that is not part of a valid character, or a character
/// utf8mb3 cannot hold, becomes `?`), cut to 128 characters; and back for messages
/// (a latin1 client sees its own bytes, the C1 controls as `\0081`).
pub(crate) fn user_name(raw: &[u8], collation: u8) -> UserName {
    let fam = family(collation);
    if fam == Family::Latin1 {
        let raw = &raw[..raw.len().min(USER_CHARS)];
        let mut name = String::with_capacity(raw.len());
        let mut shown = Vec::with_capacity(raw.len());
        for &b in raw {
            let c = match b {
                0x80..=0x9f => {
                    char::from_u32(u32::from(CP1252_HIGH[usize::from(b - 0x80)])).unwrap_or('?')
                }
                _ => char::from(b),
            };
            name.push(c);
            if c as u32 == u32::from(b) && (0x80..=0x9f).contains(&b) {
                shown.extend_from_slice(format!("\\{:04X}", b).as_bytes());
            } else {
                shown.push(b);
            }
        }
        return UserName { name, shown };
    }
    let mut name = String::new();
    let mut chars = 0;
    let mut push = |name: &mut String, c: char| -> bool {
        if chars == USER_CHARS {
            return false;
        }
        name.push(c);
        chars += 1;
        true
    };
    'outer: for chunk in raw.utf8_chunks() {
        for c in chunk.valid().chars() {
            let keep = match fam {
                Family::Ascii => c.is_ascii(),
                _ => c.len_utf8() < 4,
            };
            if keep {
                if !push(&mut name, c) {
                    break 'outer;
                }
            } else {
                // utf8mb4's four-byte characters are one unconvertible character; the
                // narrower sets see each byte as invalid.
                let n = if fam == Family::Utf8mb4 {
                    1
                } else {
                    c.len_utf8()
                };
                for _ in 0..n {
                    if !push(&mut name, '?') {
                        break 'outer;
                    }
                }
            }
        }
        for _ in chunk.invalid() {
            if !push(&mut name, '?') {
                break 'outer;
            }
        }
    }
    let shown = name.clone().into_bytes();
    UserName { name, shown }
}

/// latin1_swedish_ci's sort order (`sort_order_latin1`): upper case, accents folded.
const fn latin1_sort_order() -> [u8; 256] {
    const HIGH: [u8; 64] = [
        65, 65, 65, 65, 92, 91, 92, 67, 69, 69, 69, 69, 73, 73, 73, 73, 68, 78, 79, 79, 79, 79, 93,
        215, 216, 85, 85, 85, 89, 89, 222, 223, 65, 65, 65, 65, 92, 91, 92, 67, 69, 69, 69, 69, 73,
        73, 73, 73, 68, 78, 79, 79, 79, 79, 93, 247, 216, 85, 85, 85, 89, 89, 222, 255,
    ];
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = if i >= 192 {
            HIGH[i - 192]
        } else if i >= 97 && i <= 122 {
            (i - 32) as u8
        } else {
            i as u8
        };
        i += 1;
    }
    t
}

const SORT_ORDER: [u8; 256] = latin1_sort_order();

/// `my_charset_latin1.hash_sort` (`my_hash_sort_simple`): trailing spaces ignored.
fn latin1_hash(key: &[u8]) -> u64 {
    let space = SORT_ORDER[usize::from(b' ')];
    let mut end = key.len();
    while end > 0 && SORT_ORDER[usize::from(key[end - 1])] == space {
        end -= 1;
    }
    let (mut nr1, mut nr2) = (1u64, 4u64);
    for &b in &key[..end] {
        let v = u64::from(SORT_ORDER[usize::from(b)]);
        nr1 ^= ((nr1 & 63).wrapping_add(nr2))
            .wrapping_mul(v)
            .wrapping_add(nr1 << 8);
        nr2 = nr2.wrapping_add(3);
    }
    nr1
}

/// `max_connect_errors`: a host with this many failed handshakes is blocked.
const MAX_CONNECT_ERRORS: u32 = 100;
/// `host_cache_size` (128 + `max_connections`): hosts remembered, the oldest forgotten.
const HOST_CACHE_SIZE: usize = 279;

/// MariaDB's host cache, as far as blocking goes: connections from one address that end
/// before authentication does (closed without a login, timed out, malformed, out of
/// order, an old client) are counted, and after `max_connect_errors` of them the address
/// gets "Host … is blocked" instead of a greeting, until the server restarts (here: the
/// agent) or the address falls out of the cache. Failed passwords do not count. The
/// loopback address bypasses the cache, as in `ip_to_hostname`.
#[derive(Debug, Default)]
pub(crate) struct HostCache {
    inner: Mutex<(HashMap<IpAddr, u32>, VecDeque<IpAddr>)>,
}

impl HostCache {
    fn key(ip: IpAddr) -> Option<IpAddr> {
        let ip = ip.to_canonical();
        let loopback = ip == IpAddr::from(std::net::Ipv4Addr::LOCALHOST)
            || ip == IpAddr::from(std::net::Ipv6Addr::LOCALHOST);
        (!loopback).then_some(ip)
    }

    /// Whether `ip` is blocked.
    pub(crate) fn blocked(&self, ip: IpAddr) -> bool {
        let Some(ip) = Self::key(ip) else {
            return false;
        };
        let Ok(g) = self.inner.lock() else {
            return false;
        };
        g.0.get(&ip).is_some_and(|&n| n >= MAX_CONNECT_ERRORS)
    }

    /// Counts a failed handshake from `ip`.
    pub(crate) fn handshake_error(&self, ip: IpAddr) {
        let Some(ip) = Self::key(ip) else {
            return;
        };
        let Ok(mut g) = self.inner.lock() else {
            return;
        };
        let (map, order) = &mut *g;
        if let Some(n) = map.get_mut(&ip) {
            *n = n.saturating_add(1);
            return;
        }
        if map.len() >= HOST_CACHE_SIZE
            && let Some(old) = order.pop_front()
        {
            map.remove(&old);
        }
        map.insert(ip, 1);
        order.push_back(ip);
    }
}

/// The ERR packet (1129, no SQL state: it comes before the client said anything) a
/// blocked host gets instead of the greeting; `admin` is the tool the message names
/// (`mariadb-admin`, MySQL's `mysqladmin`).
pub(crate) fn host_blocked(ip: IpAddr, admin: &str) -> Vec<u8> {
    let msg = format!(
        "Host '{}' is blocked because of many connection errors; unblock with \
         '{admin} flush-hosts'",
        client_host(ip)
    );
    super::packet::err_for(false, 0, 1129, "HY000", &msg)
}

/// How a failed login is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// 1045 `… (using password: YES|NO)`.
    Password,
    /// 1698 `Access denied for user '…'@'…'` (the account's last method was unix_socket).
    NoPassword,
}

/// The refusal for `user` from `host`: the matching account's, or, for a user with no
/// account there, that of the stand-in MariaDB picks from the user name's latin1 hash
/// (`find_mpvio_user`), so the same name always gets the same answer.
pub(crate) fn refusal(user: &str, host: &str) -> Refusal {
    let matching = ACCOUNTS
        .iter()
        .find(|a| a.user == user && (!a.local_only || host == "localhost"));
    let account = matching.unwrap_or_else(|| {
        let i = latin1_hash(user.as_bytes()) % ACCOUNTS.len() as u64;
        &ACCOUNTS[i as usize]
    });
    if account.unix_socket {
        Refusal::NoPassword
    } else {
        Refusal::Password
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn any_user_name_converts_within_bounds(
            raw in proptest::collection::vec(any::<u8>(), 0..700),
            collation in any::<u8>(),
        ) {
            let u = user_name(&raw, collation);
            prop_assert!(u.name.chars().count() <= USER_CHARS);
            // The widest form: a latin1 C1 control shown as five bytes.
            prop_assert!(u.shown.len() <= 5 * USER_CHARS);
            let _ = refusal(&u.name, "203.0.113.7");
        }
    }

    #[test]
    fn stand_in_accounts_match_the_real_server() {
        // Answers recorded from Debian's mariadb-server 10.11 with these four accounts.
        for (n, want) in [
            (16, Refusal::Password),
            (81, Refusal::Password),
            (82, Refusal::NoPassword),
            (83, Refusal::NoPassword),
            (84, Refusal::Password),
            (86, Refusal::NoPassword),
            (126, Refusal::NoPassword),
            (128, Refusal::Password),
        ] {
            assert_eq!(refusal(&"u".repeat(n), "localhost"), want, "{n}");
        }
        assert_eq!(refusal("root", "localhost"), Refusal::NoPassword);
        assert_eq!(refusal("root", "203.0.113.9"), Refusal::Password);
        assert_eq!(refusal("mariadb.sys", "localhost"), Refusal::Password);
        assert_eq!(refusal("admin", "203.0.113.9"), Refusal::Password);
    }

    #[test]
    fn hosts_are_blocked_after_100_failed_handshakes() {
        let c = HostCache::default();
        let a: IpAddr = "203.0.113.5".parse().unwrap();
        for _ in 0..99 {
            c.handshake_error(a);
        }
        assert!(!c.blocked(a));
        c.handshake_error(a);
        assert!(c.blocked(a));
        // The loopback address is never counted.
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        for _ in 0..200 {
            c.handshake_error(lo);
        }
        assert!(!c.blocked(lo));
        // The cache is bounded: the oldest host is forgotten.
        for i in 0..HOST_CACHE_SIZE as u32 {
            c.handshake_error(IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i)));
        }
        assert!(!c.blocked(a));
        assert!(c.inner.lock().unwrap().0.len() <= HOST_CACHE_SIZE);
        assert_eq!(
            &host_blocked(a, "mariadb-admin")[3..7],
            &[0, 0xff, 0x69, 0x04],
            "seq 0, ERR 1129 without a SQL state"
        );
    }

    #[test]
    fn user_names_are_converted_and_cut() {
        // As the real server answers (client collations 45, 33, 11, 8).
        let e = "\u{e9}\u{1F600}".as_bytes();
        assert_eq!(user_name(e, 45).name, "\u{e9}?");
        assert_eq!(user_name(e, 255).name, "\u{e9}?");
        assert_eq!(user_name(e, 33).name, "\u{e9}????");
        assert_eq!(user_name(e, 11).name, "??????");
        assert_eq!(user_name(b"\xe9t\xe9", 45).name, "?t?");
        assert_eq!(user_name(b"a\xff\x80b", 45).name, "a??b");
        let l = user_name(b"\xe9t\xe9\x80\x81", 8);
        assert_eq!(l.name, "\u{e9}t\u{e9}\u{20ac}\u{81}");
        assert_eq!(l.shown, b"\xe9t\xe9\x80\\0081");
        assert_eq!(user_name(&[b'u'; 300], 45).name.len(), 128);
        assert_eq!(user_name(&[b'u'; 300], 8).shown.len(), 128);
    }

    #[test]
    fn versions_and_hosts() {
        assert_eq!(debian_version("12.5"), "10.11.6-MariaDB-0+deb12u1");
        assert_eq!(debian_version("12.9"), "10.11.9-MariaDB-0+deb12u1");
        assert_eq!(debian_version("12.11"), "10.11.11-MariaDB-0+deb12u1");
        assert_eq!(debian_version("12.12"), "10.11.14-MariaDB-0+deb12u2");
        assert_eq!(client_host("127.0.0.1".parse().unwrap()), "localhost");
        assert_eq!(
            client_host("::ffff:127.0.0.1".parse().unwrap()),
            "localhost"
        );
        assert_eq!(client_host("127.0.0.5".parse().unwrap()), "127.0.0.5");
        let s = scramble_from([
            0, 93, 94, 255, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22,
        ]);
        assert!(s.iter().all(|b| (33..=126).contains(b)));
    }
}
