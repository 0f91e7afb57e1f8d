//! `/var/log/wtmp` as glibc writes it (384-byte `struct utmp` records, x86_64) and
//! util-linux 2.38's `last` over it, so that `last`, `ls -l`, `stat`, `wc -c`, `od` and
//! `utmpdump`-style reads of the file all tell one story, and wiping the file (an
//! intruder's `> /var/log/wtmp`) empties `last` as on a real box.
//!
//! What a session's file holds: the boot and systemd's runlevel record, the admin's
//! previous SSH login and its logout (the same login the greeting's `Last login:` names
//! for a first visit), and, for a session with a terminal, its own login (sshd records
//! none for a command run without a pty).

use std::net::{IpAddr, Ipv4Addr};

/// `sizeof(struct utmp)` on x86_64.
pub(crate) const RECORD: usize = 384;
/// Most records `last` reads (a file grown by writes stays bounded by the overlay's
/// budget anyway).
const MAX_RECORDS: usize = 4096;

pub(crate) const RUN_LVL: i16 = 1;
pub(crate) const BOOT_TIME: i16 = 2;
pub(crate) const USER_PROCESS: i16 = 7;
pub(crate) const DEAD_PROCESS: i16 = 8;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rec {
    pub kind: i16,
    pub pid: i32,
    pub line: String,
    pub id: String,
    pub user: String,
    pub host: String,
    pub sec: i64,
    pub usec: u32,
    pub addr: Ipv4Addr,
}

fn put(out: &mut [u8], at: usize, len: usize, s: &str) {
    let b = s.as_bytes();
    let n = b.len().min(len);
    out[at..at + n].copy_from_slice(&b[..n]);
}

/// The records as the file's bytes.
pub(crate) fn encode(records: &[Rec]) -> Vec<u8> {
    let mut v = Vec::with_capacity(records.len() * RECORD);
    for r in records {
        let mut b = [0u8; RECORD];
        b[0..2].copy_from_slice(&r.kind.to_le_bytes());
        b[4..8].copy_from_slice(&r.pid.to_le_bytes());
        put(&mut b, 8, 32, &r.line);
        put(&mut b, 40, 4, &r.id);
        put(&mut b, 44, 32, &r.user);
        put(&mut b, 76, 256, &r.host);
        // ut_tv is two 32-bit fields in the file format (glibc's __WORDSIZE_TIME64_COMPAT32).
        b[340..344].copy_from_slice(&(r.sec as i32).to_le_bytes());
        b[344..348].copy_from_slice(&(r.usec as i32).to_le_bytes());
        b[348..352].copy_from_slice(&r.addr.octets());
        v.extend_from_slice(&b);
    }
    v
}

fn field(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

/// The whole records of a file (a trailing partial one is ignored, as `last` does).
pub(crate) fn decode(bytes: &[u8]) -> Vec<Rec> {
    bytes
        .chunks_exact(RECORD)
        .take(MAX_RECORDS)
        .map(|b| Rec {
            kind: i16::from_le_bytes([b[0], b[1]]),
            pid: i32::from_le_bytes([b[4], b[5], b[6], b[7]]),
            line: field(&b[8..40]),
            id: field(&b[40..44]),
            user: field(&b[44..76]),
            host: field(&b[76..332]),
            sec: i64::from(i32::from_le_bytes([b[340], b[341], b[342], b[343]])),
            usec: u32::from_le_bytes([b[344], b[345], b[346], b[347]]),
            addr: Ipv4Addr::new(b[348], b[349], b[350], b[351]),
        })
        .collect()
}

fn small_hash(seed: i64, salt: u64) -> u64 {
    let mut h = (seed as u64) ^ salt.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^ (h >> 33)
}

/// The pid in a terminal session's own login record (its sshd's, as `last` checks it
/// is alive).
pub(crate) fn own_pid(login_time: i64) -> i32 {
    20_000 + (small_hash(login_time, 7) % 20_000) as i32
}

/// The records of a session's `/var/log/wtmp`: boot, runlevel, the admin's previous
/// login `prev` (time, address) with its logout 21 minutes later, and the session's own
/// login `own` (time, address, sshd's pid) when it has a terminal.
pub(crate) fn records(
    release: &str,
    boot: i64,
    prev: (i64, Ipv4Addr),
    own: Option<(i64, IpAddr, &str)>,
) -> Vec<Rec> {
    let usec = |t: i64, salt: u64| (small_hash(t, salt) % 1_000_000) as u32;
    let rec = |kind, pid, line: &str, id: &str, user: &str, host: &str, sec, salt, addr| Rec {
        kind,
        pid,
        line: line.into(),
        id: id.into(),
        user: user.into(),
        host: host.into(),
        sec,
        usec: usec(sec, salt),
        addr,
    };
    let any = Ipv4Addr::UNSPECIFIED;
    let mut v = vec![
        rec(BOOT_TIME, 0, "~", "~~", "reboot", release, boot, 1, any),
        // systemd-update-utmp: runlevel 3 ('3' = 51), no previous one.
        rec(
            RUN_LVL,
            51,
            "~",
            "~~",
            "runlevel",
            release,
            boot + 9,
            2,
            any,
        ),
    ];
    let (at, src) = prev;
    let pid = 600 + (small_hash(at, 3) % 2000) as i32;
    let host = src.to_string();
    v.push(rec(
        USER_PROCESS,
        pid,
        "pts/0",
        "ts/0",
        "root",
        &host,
        at,
        4,
        src,
    ));
    v.push(rec(
        DEAD_PROCESS,
        pid,
        "pts/0",
        "ts/0",
        "",
        "",
        at + 1260,
        5,
        any,
    ));
    if let Some((t, src, user)) = own {
        let addr = match src {
            IpAddr::V4(a) => a,
            IpAddr::V6(_) => any,
        };
        let host = src.to_string();
        let pid = own_pid(t);
        v.push(rec(
            USER_PROCESS,
            pid,
            "pts/0",
            "ts/0",
            user,
            &host,
            t,
            6,
            addr,
        ));
    }
    v.sort_by_key(|r| (r.sec, r.usec));
    v
}

/// What `last` shows: its arguments and where the session stands.
pub(crate) struct LastArgs<'a> {
    /// Most lines (`-n N`, `-N`).
    pub max: Option<usize>,
    /// Users or terminals to show (`last root`, `last reboot`, `last pts/0`).
    pub names: &'a [String],
    /// `-a`: the host in the last column.
    pub host_last: bool,
    /// `-i`: addresses as numbers (the record's `ut_addr`).
    pub numeric: bool,
    /// The file's name in the `begins` line.
    pub file: &'a str,
    /// The session's own pid (its login shows `still logged in`; others without a
    /// logout `gone - no logout`, as `last` finds their process gone).
    pub live_pid: Option<i32>,
}

/// util-linux 2.38's `last` over `records` (its columns: user 8, line 12, host 16,
/// login time 16, logout 7, then the length or what stands for it); `empty_time` is the file's change time
/// (the `begins` line of an empty file). `when(t, seconds_and_year)` formats a time
/// in the machine's zone.
pub(crate) fn last(
    records: &[Rec],
    args: &LastArgs,
    empty_time: i64,
    when: &dyn Fn(i64, bool) -> String,
) -> String {
    let mut out = String::new();
    let mut shown = 0usize;
    // Logout times of terminals seen (newer records first).
    let mut logouts: Vec<(String, i64)> = Vec::new();
    let mut last_boot: Option<i64> = None;
    let hm = |t: i64| when(t, false)[11..16].to_owned();
    let duration = |secs: i64| {
        let secs = secs.max(0);
        let (d, h, m) = (secs / 86_400, (secs % 86_400) / 3600, (secs % 3600) / 60);
        if d > 0 {
            format!(" ({d}+{h:02}:{m:02})")
        } else {
            format!(" ({h:02}:{m:02})")
        }
    };
    for r in records.iter().rev() {
        if args.max.is_some_and(|m| shown >= m) {
            break;
        }
        let (user, line, logout, length) = match r.kind {
            USER_PROCESS if !r.user.is_empty() => {
                let (logout, length) = match logouts.iter().position(|(l, _)| *l == r.line) {
                    Some(i) => {
                        let (_, t) = logouts.remove(i);
                        (format!("- {}", hm(t)), duration(t - r.sec))
                    }
                    None => match last_boot {
                        Some(b) => ("- crash".into(), duration(b - r.sec)),
                        None if args.live_pid == Some(r.pid) => {
                            ("  still".into(), "logged in".into())
                        }
                        None => ("   gone".into(), "- no logout".into()),
                    },
                };
                (r.user.as_str(), r.line.as_str(), logout, length)
            }
            DEAD_PROCESS => {
                if !r.line.is_empty() && !logouts.iter().any(|(l, _)| *l == r.line) {
                    logouts.push((r.line.clone(), r.sec));
                }
                continue;
            }
            BOOT_TIME => {
                let (logout, length) = match last_boot {
                    Some(b) => (format!("- {}", hm(b)), duration(b - r.sec)),
                    None => ("  still".into(), "running".into()),
                };
                last_boot = Some(r.sec);
                logouts.clear();
                ("reboot", "system boot", logout, length)
            }
            _ => continue,
        };
        if !args.names.is_empty() && !args.names.iter().any(|n| n == user || n == line) {
            continue;
        }
        let host = if args.numeric {
            r.addr.to_string()
        } else {
            r.host.clone()
        };
        let login = when(r.sec, false);
        let row = if args.host_last {
            format!("{user:<8.8} {line:<12.12} {login:<16.16} {logout:<7} {length:<12} {host}")
        } else {
            format!("{user:<8.8} {line:<12.12} {host:<16.16} {login:<16.16} {logout:<7} {length}")
        };
        out.push_str(row.trim_end());
        out.push('\n');
        shown += 1;
    }
    let begins = records.first().map_or(empty_time, |r| r.sec);
    out.push_str(&format!("\n{} begins {}\n", args.file, when(begins, true)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_are_whole() {
        let v = records(
            "6.1.0-18-amd64",
            1_709_543_521,
            (1_713_000_000, "198.51.100.7".parse().unwrap()),
            Some((1_713_090_151, "203.0.113.9".parse().unwrap(), "root")),
        );
        let b = encode(&v);
        assert_eq!(b.len(), v.len() * RECORD);
        assert_eq!(decode(&b), v);
        assert_eq!(decode(&b[..b.len() - 1]).len(), v.len() - 1);
    }
}
