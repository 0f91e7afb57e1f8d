//! The rest of what `which` finds in /usr/bin and /usr/sbin: `env` (with a command),
//! `gzip`/`gunzip`/`zcat` (real deflate over the overlay, capped), `ping`, `ssh`/`scp`
//! (no network: they fail as a box without egress does), and the admin tools (`useradd`,
//! `adduser`, `iptables`, `sysctl`, `fdisk`, `cron`, `sshd`, `reboot`, `shutdown`) with
//! their non-root refusals and plausible root answers.

use super::super::State;
use super::super::budget::MAX_BUFFER;
use super::super::commands::{self, Ctx, Out, take};
use super::super::fs::FsError;
use super::{load, may_write, path_of};

pub(super) fn run(st: &mut State, name: &str, args: &[String], ctx: &Ctx<'_>) -> Option<Out> {
    Some(match name {
        "env" => env(st, args, ctx),
        "gzip" | "gunzip" | "zcat" => gzip(st, name, args, ctx),
        "ping" => ping(args),
        "ssh" | "scp" => ssh(name, args),
        "useradd" | "adduser" => useradd(st, name, args),
        "iptables" => iptables(st, args),
        "sysctl" => sysctl(st, args),
        "crontab" => crontab(st, args, ctx),
        "chpasswd" => chpasswd(st, ctx),
        "passwd" => passwd(st, args, ctx),
        "fdisk" => fdisk(st, args),
        "cron" => Out::fail(
            1,
            if st.uid == 0 {
                "cron: can't lock /var/run/crond.pid, otherpid may be 498: Resource temporarily unavailable\n"
            } else {
                "cron: can't open or create /var/run/crond.pid: Permission denied\n"
            },
        ),
        "sshd" => Out::fail(1, "sshd re-exec requires execution with an absolute path\n"),
        "reboot" | "shutdown" | "poweroff" | "halt" => power(st, name, args),
        _ => return None,
    })
}

fn version(name: &str, pkg: &str) -> Out {
    Out::ok(format!(
        "{name} ({pkg}) 9.1\nCopyright (C) 2022 Free Software Foundation, Inc.\nLicense GPLv3+: GNU GPL version 3 or later <https://gnu.org/licenses/gpl.html>.\nThis is free software: you are free to change and redistribute it.\nThere is NO WARRANTY, to the extent permitted by law.\n\nWritten by Richard Mlynarik, David MacKenzie, and Assaf Gordon.\n"
    ))
}

/// `env [-i] [-u NAME] [NAME=VALUE]... [COMMAND [ARG]...]`: the command runs as the
/// shell's own (the assignments are not kept, as they would not be).
fn env(st: &mut State, args: &[String], ctx: &Ctx<'_>) -> Out {
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "--version" => return version("env", "GNU coreutils"),
            "-i" | "--ignore-environment" | "-" | "-0" => i += 1,
            "-u" | "--unset" => i += 2,
            a if a.contains('=') && !a.starts_with('=') => i += 1,
            _ => break,
        }
    }
    let rest = &args[i.min(args.len())..];
    if rest.is_empty() {
        let mut o = Out::default();
        for (k, v) in &st.env {
            o.line(&format!("{k}={v}"));
        }
        return o;
    }
    let out = commands::command(st, rest, ctx);
    if out.status == 127 && out.err.ends_with(b"command not found\n") {
        return Out::fail(
            127,
            format!(
                "env: \u{2018}{}\u{2019}: No such file or directory\n",
                rest[0]
            ),
        );
    }
    out
}

fn gunzip_bytes(data: &[u8]) -> Option<Vec<u8>> {
    use std::io::Read as _;
    let mut d = flate2::read::MultiGzDecoder::new(data);
    let mut out = Vec::new();
    // Never more than the buffer cap, whatever the stream claims: no inflation bomb.
    d.by_ref()
        .take(MAX_BUFFER as u64 + 1)
        .read_to_end(&mut out)
        .ok()?;
    (out.len() <= MAX_BUFFER).then_some(out)
}

fn gzip_bytes(data: &[u8]) -> Vec<u8> {
    use std::io::Write as _;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let _ = enc.write_all(data);
    enc.finish().unwrap_or_default()
}

fn gzip(st: &mut State, name: &str, args: &[String], ctx: &Ctx<'_>) -> Out {
    let mut decompress = name != "gzip";
    let mut to_stdout = name == "zcat";
    let (mut keep, mut force) = (false, false);
    let mut files = Vec::new();
    for a in args {
        match a.as_str() {
            "--version" | "-V" => {
                return Out::ok(
                    "gzip 1.12\nCopyright (C) 2018 Free Software Foundation, Inc.\nCopyright (C) 1993 Jean-loup Gailly.\nThis is free software.  You may redistribute copies of it under the terms of\nthe GNU General Public License <https://www.gnu.org/licenses/gpl.html>.\nThere is NO WARRANTY, to the extent permitted by law.\n\nWritten by Jean-loup Gailly.\n",
                );
            }
            "--decompress" | "--uncompress" => decompress = true,
            "--stdout" | "--to-stdout" => to_stdout = true,
            "--keep" => keep = true,
            "--force" => force = true,
            s if s.starts_with('-') && s.len() > 1 && !s.starts_with("--") => {
                for c in s[1..].chars() {
                    match c {
                        'd' => decompress = true,
                        'c' => to_stdout = true,
                        'k' => keep = true,
                        'f' => force = true,
                        _ => {}
                    }
                }
            }
            _ => files.push(a.clone()),
        }
    }
    let _ = force;
    let prog = if name == "zcat" { "gzip" } else { name };
    if files.is_empty() {
        let data = take(st, ctx.stdin, MAX_BUFFER);
        if !decompress {
            return Out::ok(gzip_bytes(data));
        }
        return match gunzip_bytes(data) {
            Some(d) => Out::ok(d),
            None => Out::fail(1, format!("\n{prog}: stdin: not in gzip format\n")),
        };
    }
    let mut o = Out::default();
    for f in &files {
        if o.full() || !st.budget.iterations(1) {
            break;
        }
        let data = match load(st, f, ctx) {
            Ok(d) => d,
            Err(e) => {
                o.eline(&format!("{prog}: {f}: {}", e.text()));
                o.status = 1;
                continue;
            }
        };
        let (result, target) = if decompress {
            let Some(stem) = f.strip_suffix(".gz").or_else(|| f.strip_suffix(".tgz")) else {
                o.eline(&format!("{prog}: {f}: unknown suffix -- ignored"));
                o.status = 2;
                continue;
            };
            match gunzip_bytes(&data) {
                Some(d) => (
                    d,
                    if f.ends_with(".tgz") {
                        format!("{stem}.tar")
                    } else {
                        stem.to_owned()
                    },
                ),
                None => {
                    o.eline(&format!("{prog}: {f}: not in gzip format"));
                    o.status = 1;
                    continue;
                }
            }
        } else {
            if f.ends_with(".gz") {
                o.eline(&format!("gzip: {f} already has .gz suffix -- unchanged"));
                o.status = 2;
                continue;
            }
            (gzip_bytes(&data), format!("{f}.gz"))
        };
        if to_stdout {
            o.put(&result);
            continue;
        }
        if st.budget.take_data(result.len()) < result.len() {
            break;
        }
        let path = path_of(st, &target);
        let (uid, now) = (st.uid, st.now);
        let r = if may_write(st, &path) {
            st.fs.write(&path, &result, false, uid, now)
        } else {
            Err(FsError::Denied)
        };
        match r {
            Ok(()) => {
                if !keep {
                    let _ = st.fs.remove(&path_of(st, f), false, false);
                }
            }
            Err(e) => {
                o.eline(&format!("{prog}: {target}: {}", e.text()));
                o.status = 1;
            }
        }
    }
    o
}

fn is_ip(h: &str) -> bool {
    h.parse::<std::net::IpAddr>().is_ok()
}

fn ping(args: &[String]) -> Out {
    let mut count: Option<u64> = None;
    let mut host = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-c" => count = it.next().and_then(|v| v.parse().ok()),
            "-W" | "-i" | "-s" | "-t" | "-w" | "-I" => {
                it.next();
            }
            s if s.starts_with("-c") => count = s[2..].parse().ok(),
            s if s.starts_with('-') => {}
            h => host = Some(h.to_owned()),
        }
    }
    let Some(h) = host else {
        return Out::fail(2, "ping: usage error: Destination address required\n");
    };
    if !is_ip(&h) {
        return Out::fail(
            2,
            format!("ping: {h}: Temporary failure in name resolution\n"),
        );
    }
    // No route out: every probe is lost; without -c a person would press ^C after a few.
    let n = count.unwrap_or(4).clamp(1, 10);
    let mut o = Out::ok(format!("PING {h} ({h}) 56(84) bytes of data.\n"));
    o.line("");
    o.line(&format!("--- {h} ping statistics ---"));
    o.line(&format!(
        "{n} packets transmitted, 0 received, 100% packet loss, time {}ms",
        (n - 1) * 1000 + (n - 1) * 23
    ));
    o.line("");
    o.status = 1;
    o
}

fn ssh(name: &str, args: &[String]) -> Out {
    // The version on stderr, status 0: the build the SSH service announces by default
    // (configs/core.toml) with the libssl3 of the node's last upgrade (dpkg.log).
    if name == "ssh"
        && args
            .iter()
            .any(|a| a.starts_with('-') && !a.starts_with("--") && a.contains('V'))
    {
        return Out {
            err: b"OpenSSH_9.2p1 Debian-2+deb12u3, OpenSSL 3.0.13 30 Jan 2024\n".to_vec(),
            ..Out::default()
        };
    }
    let mut host = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-p" | "-P" | "-i" | "-o" | "-l" | "-F" | "-J" | "-L" | "-R" | "-D" | "-c" | "-E"
            | "-b" => {
                it.next();
            }
            s if s.starts_with('-') => {}
            s => {
                if name == "ssh" {
                    host = Some(s.to_owned());
                    break;
                }
                if let Some((h, _)) = s.split_once(':') {
                    host = Some(h.to_owned());
                }
            }
        }
    }
    let Some(target) = host else {
        return if name == "ssh" {
            Out::fail(
                255,
                "usage: ssh [-46AaCfGgKkMNnqsTtVvXxYy] [-B bind_interface]\n           [-b bind_address] [-c cipher_spec] [-D [bind_address:]port]\n           [-E log_file] [-e escape_char] [-F configfile] [-I pkcs11]\n           [-i identity_file] [-J [user@]host[:port]] [-L address]\n           [-l login_name] [-m mac_spec] [-O ctl_cmd] [-o option] [-p port]\n           [-Q query_option] [-R address] [-S ctl_path] [-W host:port]\n           [-w local_tun[:remote_tun]] destination [command [argument ...]]\n",
            )
        } else {
            Out::fail(
                1,
                "usage: scp [-346ABCOpqRrsTv] [-c cipher] [-D sftp_server_path] [-F ssh_config]\n           [-i identity_file] [-J destination] [-l limit] [-o ssh_option]\n           [-P port] [-S program] [-X sftp_option] source ... target\n",
            )
        };
    };
    let h = target.rsplit('@').next().unwrap_or(&target).to_owned();
    let msg = if is_ip(&h) {
        format!("ssh: connect to host {h} port 22: Connection timed out\n")
    } else {
        format!("ssh: Could not resolve hostname {h}: Temporary failure in name resolution\n")
    };
    if name == "scp" {
        return Out::fail(255, format!("{msg}scp: Connection closed\n"));
    }
    Out::fail(255, msg)
}

fn useradd(st: &mut State, name: &str, args: &[String]) -> Out {
    let user = args.iter().rev().find(|a| !a.starts_with('-')).cloned();
    if st.uid != 0 {
        return if name == "adduser" {
            Out::fail(
                1,
                "adduser: Only root may add a user or group to the system.\n",
            )
        } else {
            Out::fail(
                1,
                "useradd: Permission denied.\nuseradd: cannot lock /etc/passwd; try again later.\n",
            )
        };
    }
    let Some(user) = user else {
        return if name == "adduser" {
            Out::fail(1, "adduser: Only one or two names allowed.\n")
        } else {
            Out::fail(
                2,
                "Usage: useradd [options] LOGIN\n       useradd -D\n       useradd -D [options]\n",
            )
        };
    };
    let valid = !user.is_empty()
        && user.len() <= 32
        && user
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
        && !user.starts_with('-');
    if !valid {
        return Out::fail(
            3,
            format!("{name}: invalid user name '{user}': use --badname to ignore\n"),
        );
    }
    let passwd = st
        .fs
        .read("/etc/passwd")
        .map(<[u8]>::to_vec)
        .unwrap_or_default();
    if String::from_utf8_lossy(&passwd)
        .lines()
        .any(|l| l.split(':').next() == Some(user.as_str()))
    {
        return Out::fail(9, format!("{name}: user '{user}' already exists\n"));
    }
    let uid = 1001
        + String::from_utf8_lossy(&passwd)
            .lines()
            .filter(|l| l.contains(":x:10"))
            .count();
    let shell = if name == "adduser" {
        "/bin/bash"
    } else {
        "/bin/sh"
    };
    let line = format!("{user}:x:{uid}:{uid}::/home/{user}:{shell}\n");
    let (now, home) = (st.now, format!("/home/{user}"));
    if st.budget.take_data(line.len()) < line.len() {
        return Out::default();
    }
    if let Err(e) = st.fs.write("/etc/passwd", line.as_bytes(), true, 0, now) {
        return Out::fail(
            1,
            format!("{name}: cannot open /etc/passwd: {}\n", e.text()),
        );
    }
    let make_home = name == "adduser" || args.iter().any(|a| a == "-m" || a == "--create-home");
    if make_home {
        let _ = st.fs.mkdir(&home, 0, now);
    }
    if name == "adduser" {
        // No terminal for the password prompt: passwd gives up, as it would.
        let mut o = Out::ok(format!(
            "Adding user `{user}' ...\nAdding new group `{user}' ({uid}) ...\nAdding new user `{user}' ({uid}) with group `{user} ({uid})' ...\nCreating home directory `{home}' ...\nCopying files from `/etc/skel' ...\n"
        ));
        o.err.extend_from_slice(
            b"passwd: Authentication token manipulation error\npasswd: password unchanged\n",
        );
        o.put(b"Try again? [y/N] ");
        o.status = 1;
        return o;
    }
    Out::default()
}

fn iptables(st: &State, args: &[String]) -> Out {
    if st.uid != 0 {
        return Out::fail(
            4,
            "iptables v1.8.9 (nf_tables): Could not fetch rule set generation id: Permission denied (you must be root)\n\n",
        );
    }
    if args.iter().any(|a| a == "-V" || a == "--version") {
        return Out::ok("iptables v1.8.9 (nf_tables)\n");
    }
    if args
        .iter()
        .any(|a| a == "-L" || a == "--list" || a.starts_with("-L") || a == "-nL" || a == "-vnL")
    {
        return Out::ok(
            "Chain INPUT (policy ACCEPT)\ntarget     prot opt source               destination         \n\nChain FORWARD (policy ACCEPT)\ntarget     prot opt source               destination         \n\nChain OUTPUT (policy ACCEPT)\ntarget     prot opt source               destination         \n",
        );
    }
    if args.iter().any(|a| a == "-S") {
        return Out::ok("-P INPUT ACCEPT\n-P FORWARD ACCEPT\n-P OUTPUT ACCEPT\n");
    }
    Out::default()
}

fn sysctl(st: &State, args: &[String]) -> Out {
    let mut o = Out::default();
    let write = args.iter().any(|a| a == "-w") || args.iter().any(|a| a.contains('='));
    for a in args.iter().filter(|a| !a.starts_with('-')) {
        if !st.budget.iterations(1) {
            break;
        }
        let (key, val) = match a.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (a.as_str(), None),
        };
        let path = format!("/proc/sys/{}", key.replace('.', "/"));
        if write || val.is_some() {
            if st.uid != 0 {
                o.eline(&format!("sysctl: permission denied on key \"{key}\""));
                o.status = 1;
            } else {
                o.line(&format!("{key} = {}", val.unwrap_or("")));
            }
            continue;
        }
        match st.fs.read(&path) {
            Ok(d) => o.line(&format!(
                "{key} = {}",
                String::from_utf8_lossy(d).trim_end()
            )),
            Err(_) => {
                o.eline(&format!(
                    "sysctl: cannot stat {path}: No such file or directory"
                ));
                o.status = 255;
            }
        }
    }
    o
}

fn fdisk(st: &State, args: &[String]) -> Out {
    let p = st.profile.node.persona();
    let disk = format!("/dev/{}", p.platform.disk());
    if st.uid != 0 {
        if args.iter().any(|a| a == "-l") {
            return Out::fail(1, format!("fdisk: cannot open {disk}: Permission denied\n"));
        }
        return Out::fail(
            1,
            format!(
                "fdisk: cannot open {}: Permission denied\n",
                args.last().map_or(disk.as_str(), String::as_str)
            ),
        );
    }
    if !args.iter().any(|a| a == "-l") {
        return Out::fail(
            1,
            "Usage:\n fdisk [options] <disk>         change partition table\n fdisk [options] -l [<disk>...] list partition table(s)\n",
        );
    }
    let bytes = p.disk_kib * 1024 + 1024 * 1024 * 1024;
    let sectors = bytes / 512;
    let root = p.platform.root_device();
    Out::ok(format!(
        "Disk {disk}: {} GiB, {bytes} bytes, {sectors} sectors\nDisk model: {}\nUnits: sectors of 1 * 512 = 512 bytes\nSector size (logical/physical): 512 bytes / 512 bytes\nI/O size (minimum/optimal): 512 bytes / 512 bytes\nDisklabel type: gpt\nDisk identifier: {}\n\nDevice           Start      End  Sectors  Size Type\n{root:<15} 262144 {:>8} {:>8} {:>4}G Linux filesystem\n",
        bytes >> 30,
        if disk.contains("nvme") {
            "Amazon Elastic Block Store"
        } else {
            "QEMU HARDDISK"
        },
        p.boot_id.to_uppercase(),
        sectors - 34,
        sectors - 34 - 262_144,
        ((sectors - 262_178) * 512) >> 30,
    ))
}

fn power(st: &mut State, name: &str, args: &[String]) -> Out {
    if st.uid != 0 {
        let what = if name == "shutdown" { "poweroff" } else { name };
        return Out::fail(
            1,
            format!(
                "Failed to set wall message, ignoring: Interactive authentication required.\nFailed to {what} system via logind: Interactive authentication required.\nFailed to start {what}.target: Interactive authentication required.\nSee system logs and 'systemctl status {what}.target' for details.\n"
            ),
        );
    }
    let now = args.iter().any(|a| a == "now" || a == "+0");
    if name == "shutdown" && !now {
        if args.iter().any(|a| a == "-c") {
            return Out::default();
        }
        let t = st.now + 60;
        let (off, abbr) = st.profile.node.persona().zone.at(t);
        let local = t + i64::from(off);
        let days = local.div_euclid(86_400);
        let (y, m, d) = crate::persona::civil(days);
        const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
        let wd = DAYS[crate::persona::weekday(days).rem_euclid(7) as usize];
        let s = local.rem_euclid(86_400);
        return Out::ok(format!(
            "Shutdown scheduled for {wd} {y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} {abbr}, use 'shutdown -c' to cancel.\n",
            s / 3600,
            (s % 3600) / 60,
            s % 60
        ));
    }
    // The machine goes down: the connection drops, as it would.
    st.exit = Some(255);
    Out {
        status: 255,
        ..Out::default()
    }
}

/// Debian's crontab (cron 3.0pl1): the table lives in `/var/spool/cron/crontabs/USER`
/// behind the three header lines crontab writes and `-l` hides; a table that does not
/// parse is refused as crontab refuses it.
fn crontab(st: &mut State, args: &[String], ctx: &Ctx<'_>) -> Out {
    let mut user = st.user.clone();
    let (mut list, mut remove, mut edit) = (false, false, false);
    let mut file: Option<String> = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-u" => match it.next() {
                Some(u) => user = u.clone(),
                None => {
                    return Out::fail(
                        1,
                        "crontab: option requires an argument -- 'u'\ncrontab: usage error: unrecognized option\n",
                    );
                }
            },
            "-l" => list = true,
            "-r" => remove = true,
            "-e" => edit = true,
            "-i" => {}
            "-" => file = Some("-".into()),
            f if !f.starts_with('-') => file = Some(f.to_owned()),
            _ => {}
        }
    }
    if user != st.user && st.uid != 0 {
        return Out::fail(1, "must be privileged to use -u\n");
    }
    if user != "root" && user != st.user {
        return Out::fail(1, format!("crontab: user `{user}' unknown\n"));
    }
    let path = format!("/var/spool/cron/crontabs/{user}");
    let missing = || Out::fail(1, format!("no crontab for {user}\n"));
    if list {
        let Ok(data) = st.fs.read(&path) else {
            return missing();
        };
        let text = String::from_utf8_lossy(data);
        let mut o = Out::default();
        let mut lines = text.split_inclusive('\n').peekable();
        for _ in 0..3 {
            if lines.peek().is_some_and(|l| l.starts_with("# ")) {
                lines.next();
            }
        }
        for l in lines {
            o.put(l.as_bytes());
        }
        return o;
    }
    if remove {
        return match st.fs.remove(&path, false, false) {
            Ok(()) => Out::default(),
            Err(_) => missing(),
        };
    }
    if edit {
        // No terminal to edit on: the editor gives up at once and nothing changes.
        return Out::fail(
            1,
            "crontab: \"/usr/bin/sensible-editor\" exited with status 1\n",
        );
    }
    let name = file.clone().unwrap_or_else(|| "-".into());
    let data = if name == "-" {
        take(st, ctx.stdin, MAX_BUFFER).to_vec()
    } else {
        match load(st, &name, ctx) {
            Ok(d) => d,
            Err(e) => return Out::fail(1, format!("{name}: {}\n", e.text())),
        }
    };
    let text = String::from_utf8_lossy(&data).into_owned();
    for (i, line) in text.lines().enumerate() {
        if let Some(what) = cron_line_error(line) {
            return Out::fail(
                1,
                format!("\"{name}\":{i}: {what}\nerrors in crontab file, can't install.\n"),
            );
        }
    }
    let mut table = format!(
        "# DO NOT EDIT THIS FILE - edit the master and reinstall.\n# ({name} installed on {})\n# (Cron version -- $Id: crontab.c,v 2.13 1994/01/17 03:20:37 vixie Exp $)\n",
        super::super::sysinfo::ctime_local(st, st.now)
    );
    table.push_str(&text);
    match st.fs.write(&path, table.as_bytes(), false, 0, st.now) {
        Ok(()) => {
            st.fs.chmod(&path, 0o600).ok();
            Out::default()
        }
        Err(e) => Out::fail(1, format!("crontab: {path}: {}\n", e.text())),
    }
}

/// What cron says of a line it cannot read, if it cannot: five time fields (or an `@`
/// keyword) and a command, or a `NAME=value` setting.
fn cron_line_error(line: &str) -> Option<&'static str> {
    let t = line.trim_start();
    if t.is_empty() || t.starts_with('#') {
        return None;
    }
    if let Some(k) = t.strip_prefix('@') {
        let word = k.split_whitespace().next().unwrap_or("");
        return match word {
            "reboot" | "yearly" | "annually" | "monthly" | "weekly" | "daily" | "midnight"
            | "hourly" => None,
            _ => Some("bad time specifier"),
        };
    }
    let mut fields = t.split_whitespace();
    let first = fields.next().unwrap_or("");
    if let Some((name, _)) = t.split_once('=')
        && !name.trim().is_empty()
        && !name.trim().contains(char::is_whitespace)
        && !first.starts_with(|c: char| c.is_ascii_digit() || c == '*')
    {
        return None;
    }
    let time_ok = |f: &str| {
        !f.is_empty()
            && f.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '*' | ',' | '/' | '-'))
    };
    let names = [
        "bad minute",
        "bad hour",
        "bad day-of-month",
        "bad month",
        "bad day-of-week",
    ];
    let mut f = Some(first);
    for what in names {
        match f {
            Some(v)
                if time_ok(v)
                    && (what.ends_with("month")
                        || what.ends_with("week")
                        || !v.chars().any(|c| c.is_ascii_alphabetic())) => {}
            _ => return Some(what),
        }
        f = fields.next();
    }
    if f.is_none() {
        return Some("bad command");
    }
    None
}

/// `chpasswd` (passwd 4.13 through PAM): `user:password` lines from stdin; root changes
/// any account of /etc/passwd and is silent about it, as on Debian.
fn chpasswd(st: &mut State, ctx: &Ctx<'_>) -> Out {
    let input = String::from_utf8_lossy(take(st, ctx.stdin, MAX_BUFFER)).into_owned();
    let passwd = st
        .fs
        .read("/etc/passwd")
        .map(|d| String::from_utf8_lossy(d).into_owned())
        .unwrap_or_default();
    let mut o = Out::default();
    for (i, line) in input.lines().enumerate() {
        if !st.budget.iterations(1) {
            break;
        }
        let n = i + 1;
        let Some((user, _)) = line.split_once(':') else {
            o.eline(&format!("chpasswd: line {n}: missing new password"));
            o.status = 1;
            continue;
        };
        let known = passwd.lines().any(|l| l.split(':').next() == Some(user));
        if st.uid != 0 || !known {
            o.eline(&format!(
                "chpasswd: (user {user}) pam_chauthtok() failed, error:\nAuthentication token manipulation error\nchpasswd: (line {n}, user {user}) password not changed"
            ));
            o.status = 1;
        }
    }
    o
}

/// Whether /etc/passwd has an account of that name.
fn account_exists(st: &State, user: &str) -> bool {
    st.fs.read("/etc/passwd").is_ok_and(|d| {
        String::from_utf8_lossy(d)
            .lines()
            .any(|l| l.split(':').next() == Some(user))
    })
}

/// `passwd` (shadow 4.13 with Debian's PAM stack): root locks, unlocks and sets any
/// account's password (the new one twice from stdin, prompts on stderr); a user must
/// give the current password first, which an intruder does not have.
fn passwd(st: &mut State, args: &[String], ctx: &Ctx<'_>) -> Out {
    let unchanged = "passwd: Authentication token manipulation error\npasswd: password unchanged\n";
    let flags: String = args
        .iter()
        .filter(|a| a.starts_with('-') && !a.starts_with("--"))
        .flat_map(|a| a[1..].chars())
        .collect();
    let user = args
        .iter()
        .find(|a| !a.starts_with('-'))
        .cloned()
        .unwrap_or_else(|| st.user.clone());
    if st.uid != 0 && user != st.user {
        return Out::fail(
            1,
            format!("passwd: You may not view or modify password information for {user}.\n"),
        );
    }
    if !account_exists(st, &user) {
        return Out::fail(1, format!("passwd: user '{user}' does not exist\n"));
    }
    if st.uid != 0 {
        return Out::fail(10, format!("Current password: {unchanged}"));
    }
    if flags.contains(['l', 'u', 'd', 'e']) {
        return Out::ok("passwd: password changed.\n");
    }
    let input = String::from_utf8_lossy(take(st, ctx.stdin, MAX_BUFFER)).into_owned();
    let mut lines = input.lines();
    let (first, second) = (lines.next(), lines.next());
    let mut err = String::from("New password: ");
    match (first, second) {
        (Some(a), Some(b)) if a == b && !a.is_empty() => {
            err.push_str("Retype new password: passwd: password updated successfully\n");
            Out {
                err: err.into_bytes(),
                ..Out::default()
            }
        }
        (Some(a), Some(_)) if !a.is_empty() => {
            err.push_str("Retype new password: Sorry, passwords do not match.\n");
            err.push_str(unchanged);
            Out::fail(10, err)
        }
        _ => {
            err.push_str("No password has been supplied.\n");
            err.push_str(unchanged);
            Out::fail(10, err)
        }
    }
}
