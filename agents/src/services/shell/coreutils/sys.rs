//! System and network tools, read from the node's persona so they agree with `/proc`,
//! `hostname -I` and `ps`: `ip` (addr, route, link), `ss`, `top -b`, `dmesg`, `mount`,
//! `lsblk`, `last`; and the programs a box has but an intruder cannot use here: `perl`
//! (perl-base is Essential on Debian), `apt`/`apt-get` (no lock for non-root, no network
//! for root), the editors and pagers, and `sleep`, which really waits (bounded).
//!
//! Not installed, so "command not found" like `which` says: `python3` (a minimal
//! Debian 12 has no Python), `ifconfig`/`netstat`/`route` (net-tools is not installed
//! by default), `gcc`, `nc`.

use super::super::State;
use super::super::budget::MAX_BUFFER;
use super::super::commands::{Ctx, Out, take};
use super::text::q;
use super::{load, path_of};
use crate::persona::{Listener, Program};
use std::cell::Cell;
use std::time::Duration;

pub(super) fn run(st: &mut State, name: &str, args: &[String], ctx: &Ctx<'_>) -> Option<Out> {
    Some(match name {
        "ss" => ss(st, args),
        "top" => top(st, args),
        "dmesg" => dmesg(st),
        "mount" => mount(st, args),
        "lsblk" => lsblk(st),
        "last" | "lastb" => last(st, name, args),
        "perl" => perl(st, args, ctx),
        "apt" | "apt-get" => apt(st, name, args),
        "vi" | "vim.tiny" | "nano" | "editor" => editor(st, name, args, ctx),
        "less" | "more" | "pager" => pager(st, name, args, ctx),
        "sleep" => sleep(st, args),
        _ => return None,
    })
}

// `ip` is the node persona's (shell/sysinfo.rs), which commands.rs routes first.

// ---- ss -------------------------------------------------------------------------------

fn program_name(p: Program) -> &'static str {
    match p {
        Program::Sshd => "sshd",
        Program::Inetd => "inetd",
        Program::Lighttpd => "lighttpd",
        Program::Apache => "apache2",
        Program::Vsftpd => "vsftpd",
        Program::Redis => "redis-server",
        Program::Mysqld => "mysqld",
        Program::Mariadb => "mariadbd",
        Program::Postfix => "master",
        Program::Other => "",
    }
}

fn ss(st: &State, args: &[String]) -> Out {
    let flags: String = args
        .iter()
        .filter(|a| a.starts_with('-') && !a.starts_with("--"))
        .flat_map(|a| a[1..].chars())
        .collect();
    let listening = flags.contains('l');
    let tcp = flags.contains('t') || !flags.contains('u');
    let numeric = flags.contains('n');
    let procs = flags.contains('p');
    let show_netid = !(flags.contains('t') ^ flags.contains('u')) || flags.contains('a');
    let mut listeners: Vec<Listener> = st.profile.node.listeners();
    listeners.retain(|l| l.port != 0);
    listeners.sort_by_key(|l| l.port);
    let n = &st.profile.node.persona().net;
    let port_name = |p: u16| -> String {
        if numeric {
            return p.to_string();
        }
        match p {
            22 => "ssh",
            23 => "telnet",
            21 => "ftp",
            80 => "http",
            443 => "https",
            3306 => "mysql",
            6379 => "redis",
            _ => return p.to_string(),
        }
        .to_owned()
    };
    let mut rows: Vec<[String; 7]> = Vec::new();
    if tcp {
        for l in &listeners {
            let user = if procs && st.uid == 0 {
                let name = program_name(l.program);
                if name.is_empty() {
                    String::new()
                } else {
                    let pid = st
                        .profile
                        .node
                        .persona()
                        .daemon_pids
                        .get(l.port as usize % 7)
                        .copied()
                        .unwrap_or(640);
                    format!("users:((\"{name}\",pid={pid},fd=3))")
                }
            } else {
                String::new()
            };
            rows.push([
                "tcp".into(),
                "LISTEN".into(),
                "0".into(),
                "128".into(),
                format!("0.0.0.0:{}", port_name(l.port)),
                "0.0.0.0:*".into(),
                user,
            ]);
        }
        if !listening {
            // The intruder's own connection.
            if let Some(ssh) = listeners.iter().find(|l| l.program == Program::Sshd) {
                rows.retain(|r| r[1] != "LISTEN" || flags.contains('a'));
                rows.push([
                    "tcp".into(),
                    "ESTAB".into(),
                    "0".into(),
                    "0".into(),
                    format!("{}:{}", n.addr, port_name(ssh.port)),
                    format!("{}:{}", st.src, 40_000 + (st.login_time % 20_000)),
                    String::new(),
                ]);
            }
        }
    }
    if flags.contains('u') && (listening || flags.contains('a')) {
        rows.push([
            "udp".into(),
            "UNCONN".into(),
            "0".into(),
            "0".into(),
            format!(
                "{}%{}:{}",
                n.addr,
                n.iface,
                if numeric { "68" } else { "bootpc" }
            ),
            "0.0.0.0:*".into(),
            String::new(),
        ]);
    }
    let mut o = Out::default();
    let local_w = rows.iter().map(|r| r[4].len()).max().unwrap_or(0).max(17);
    let peer_w = rows.iter().map(|r| r[5].len()).max().unwrap_or(0).max(17);
    let head_local = format!("{:>w$}", "Local Address:Port", w = local_w);
    let head = format!(
        "{}State  Recv-Q Send-Q {head_local} {:<w$}Process",
        if show_netid { "Netid " } else { "" },
        "Peer Address:Port",
        w = peer_w
    );
    o.line(head.trim_end_matches(' '));
    for r in rows {
        let line = format!(
            "{}{:<6} {:<6} {:<6} {:>lw$} {:<pw$}{}",
            if show_netid {
                format!("{:<5} ", r[0])
            } else {
                String::new()
            },
            r[1],
            r[2],
            r[3],
            r[4],
            r[5],
            r[6],
            lw = local_w,
            pw = peer_w
        );
        o.line(&line);
    }
    o
}

// ---- top ------------------------------------------------------------------------------

fn top(st: &State, args: &[String]) -> Out {
    let batch = args
        .iter()
        .any(|a| a.starts_with("-b") || a.contains('b') && a.starts_with('-'));
    if !batch && !st.tty {
        return Out::fail(1, "top: failed tty get\n");
    }
    let p = st.profile.node.persona();
    let procs = super::super::sysinfo::processes(st, None);
    let up = p.uptime(st.now);
    let (days, h, m) = (up / 86_400, (up % 86_400) / 3600, (up % 3600) / 60);
    let (off, _) = p.zone.at(st.now);
    let local = (st.now + i64::from(off)).rem_euclid(86_400);
    let load = p.load(st.now);
    let mem = super::super::sysinfo::procps_memory(p);
    let running = 1;
    let total = procs.len();
    let mut o = Out::default();
    let up_s = if days > 0 {
        format!("{days} days, {h:2}:{m:02}")
    } else {
        format!("{h:2}:{m:02}")
    };
    o.line(&format!(
        "top - {:02}:{:02}:{:02} up {up_s},  1 user,  load average: {:.2}, {:.2}, {:.2}",
        local / 3600,
        (local % 3600) / 60,
        local % 60,
        load[0],
        load[1],
        load[2]
    ));
    o.line(&format!(
        "Tasks: {total:>3} total,   {running} running, {:>3} sleeping,   0 stopped,   0 zombie",
        total - running
    ));
    o.line("%Cpu(s):  0.0 us,  3.1 sy,  0.0 ni, 96.9 id,  0.0 wa,  0.0 hi,  0.0 si,  0.0 st ");
    let mib = |k: u64| k as f64 / 1024.0;
    o.line(&format!(
        "MiB Mem : {:>8.1} total, {:>8.1} free, {:>8.1} used, {:>8.1} buff/cache     ",
        mib(mem[0]),
        mib(mem[2]),
        mib(mem[1]),
        mib(mem[4])
    ));
    o.line(&format!(
        "MiB Swap: {:>8.1} total, {:>8.1} free, {:>8.1} used. {:>8.1} avail Mem ",
        0.0,
        0.0,
        0.0,
        mib(mem[5])
    ));
    o.line("");
    o.line("    PID USER      PR  NI    VIRT    RES    SHR S  %CPU  %MEM     TIME+ COMMAND");
    for pr in procs {
        if o.full() || !st.budget.iterations(1) {
            break;
        }
        let shr = pr.rss * 2 / 3;
        let cpu = format!("{}:{:02}.{:02}", pr.cpu / 60, pr.cpu % 60, (pr.pid % 97));
        let state = pr.stat.chars().next().unwrap_or('S');
        let (pri, ni) = if pr.kernel_thread() && pr.stat.contains('<') {
            ("0", "-20")
        } else {
            ("20", "0")
        };
        o.line(&format!(
            "{:>7} {:<8} {:>3} {:>3} {:>7} {:>6} {:>6} {state} {:>5.1} {:>5.1} {:>9} {}",
            pr.pid,
            pr.user,
            pri,
            ni,
            pr.vsz,
            pr.rss,
            shr,
            0.0,
            pr.rss as f64 * 100.0 / mem[0].max(1) as f64,
            cpu,
            pr.comm
        ));
    }
    o
}

// ---- dmesg mount lsblk last -----------------------------------------------------------

fn dmesg(st: &State) -> Out {
    if st.uid != 0 {
        return Out::fail(
            1,
            "dmesg: read kernel buffer failed: Operation not permitted\n",
        );
    }
    let p = st.profile.node.persona();
    let k = p.kernel;
    let mut o = Out::default();
    let lines = [
        format!("[    0.000000] Linux version {} (debian-kernel@lists.debian.org) (gcc-12 (Debian 12.2.0-14) 12.2.0, GNU ld (GNU Binutils for Debian) 2.40) {}", k.release(), k.version()),
        format!("[    0.000000] Command line: BOOT_IMAGE=/boot/vmlinuz-{} root={} ro console=tty0 console=ttyS0,115200 earlyprintk=ttyS0,115200 consoleblank=0", k.release(), p.platform.root_device()),
        "[    0.000000] BIOS-provided physical RAM map:".to_owned(),
        "[    0.000000] BIOS-e820: [mem 0x0000000000000000-0x000000000009fbff] usable".to_owned(),
        "[    0.000000] NX (Execute Disable) protection: active".to_owned(),
        "[    0.000000] SMBIOS 2.7 present.".to_owned(),
        format!("[    0.000000] Hypervisor detected: {}", p.platform.hypervisor()),
        format!("[    0.004000] Memory: {}K/{}K available", p.mem_kib - 180_000, p.mem_kib + 80_000),
        format!("[    0.120000] smpboot: Allowing {} CPUs, 0 hotplug CPUs", p.cpus),
        format!("[    1.204000] EXT4-fs ({}): mounted filesystem with ordered data mode. Quota mode: none.", p.platform.root_device().trim_start_matches("/dev/")),
        format!("[    2.010000] {}: renamed from eth0", p.net.iface),
        "[    3.870000] systemd[1]: systemd 252.22-1~deb12u1 running in system mode (+PAM +AUDIT +SELINUX +APPARMOR +IMA +SMACK +SECCOMP +GCRYPT -GNUTLS +OPENSSL +ACL +BLKID +CURL +ELFUTILS +FIDO2 +IDN2 -IDN +IPTC +KMOD +LIBCRYPTSETUP +LIBFDISK +PCRE2 -PWQUALITY +P11KIT +QRENCODE +TPM2 +BZIP2 +LZ4 +XZ +ZLIB +ZSTD -BPF_FRAMEWORK -XKBCOMMON +UTMP +SYSVINIT default-hierarchy=unified)".to_owned(),
        "[    3.880000] systemd[1]: Detected virtualization amazon.".to_owned(),
    ];
    for l in lines {
        o.line(&l);
    }
    o
}

fn mount(st: &State, args: &[String]) -> Out {
    let ops: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    if !ops.is_empty() {
        if st.uid != 0 {
            return Out::fail(32, "mount: only root can do that\n");
        }
        let dev = ops[0];
        if ops.len() == 1 {
            return Out::fail(1, format!("mount: {dev}: can't find in /etc/fstab.\n"));
        }
        return Out::fail(
            32,
            format!("mount: {}: special device {dev} does not exist.\n", ops[1]),
        );
    }
    let p = st.profile.node.persona();
    let root = p.platform.root_device();
    let mut o = Out::default();
    for l in [
        "sysfs on /sys type sysfs (rw,nosuid,nodev,noexec,relatime)".to_owned(),
        "proc on /proc type proc (rw,nosuid,nodev,noexec,relatime)".to_owned(),
        format!("udev on /dev type devtmpfs (rw,nosuid,relatime,size={}k,nr_inodes={},mode=755,inode64)", p.mem_kib / 2, p.mem_kib / 8),
        "devpts on /dev/pts type devpts (rw,nosuid,noexec,relatime,gid=5,mode=620,ptmxmode=000)".to_owned(),
        format!("tmpfs on /run type tmpfs (rw,nosuid,nodev,noexec,relatime,size={}k,mode=755,inode64)", p.mem_kib / 10),
        format!("{root} on / type ext4 (rw,relatime,discard,errors=remount-ro)"),
        "securityfs on /sys/kernel/security type securityfs (rw,nosuid,nodev,noexec,relatime)".to_owned(),
        "tmpfs on /dev/shm type tmpfs (rw,nosuid,nodev,inode64)".to_owned(),
        "tmpfs on /run/lock type tmpfs (rw,nosuid,nodev,noexec,relatime,size=5120k,inode64)".to_owned(),
        "cgroup2 on /sys/fs/cgroup type cgroup2 (rw,nosuid,nodev,noexec,relatime,nsdelegate,memory_recursiveprot)".to_owned(),
        "mqueue on /dev/mqueue type mqueue (rw,nosuid,nodev,noexec,relatime)".to_owned(),
        format!("{} on /boot/efi type vfat (rw,relatime,fmask=0022,dmask=0022,codepage=437,iocharset=ascii,shortname=mixed,utf8,errors=remount-ro)", root.replace("p1", "p15").replace("a1", "a15")),
    ] {
        o.line(&l);
    }
    o
}

fn lsblk(st: &State) -> Out {
    let p = st.profile.node.persona();
    let disk = p.platform.disk();
    let (maj, part) = match disk {
        d if d.starts_with("nvme") => (259, "p"),
        "vda" => (254, ""),
        "xvda" => (202, ""),
        _ => (8, ""),
    };
    let gib = p.disk_kib / 1_048_576;
    let mut o = Out::default();
    o.line("NAME         MAJ:MIN RM  SIZE RO TYPE MOUNTPOINTS");
    o.line(&format!("{disk:<12} {maj}:0    0 {:>4}G  0 disk ", gib + 1));
    o.line(&format!(
        "├─{disk}{part}1 {:<7} 0 {:>4}G  0 part /",
        format!("{maj}:1"),
        gib
    ));
    o.line(&format!(
        "├─{disk}{part}14 {:<6} 0    3M  0 part ",
        format!("{maj}:2")
    ));
    o.line(&format!(
        "└─{disk}{part}15 {:<6} 0  124M  0 part /boot/efi",
        format!("{maj}:3")
    ));
    o
}

/// `last` (util-linux 2.38) over the session's `/var/log/wtmp` (see `wtmp`), `lastb`
/// over an empty btmp.
fn last(st: &State, name: &str, args: &[String]) -> Out {
    let p = st.profile.node.persona();
    let boot = p.boot_time;
    let when = |t: i64| -> String {
        let (off, _) = p.zone.at(t);
        let l = t + i64::from(off);
        let days = l.div_euclid(86_400);
        let (_, m, d) = crate::persona::civil(days);
        let wd = crate::persona::weekday(days);
        const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
        const MONTHS: [&str; 12] = [
            "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
        ];
        let s = l.rem_euclid(86_400);
        format!(
            "{} {} {d:2} {:02}:{:02}",
            DAYS[wd.rem_euclid(7) as usize],
            MONTHS[(m - 1) as usize],
            s / 3600,
            (s % 3600) / 60
        )
    };
    let begins = |t: i64| -> String {
        let (off, _) = p.zone.at(t);
        let l = t + i64::from(off);
        let days = l.div_euclid(86_400);
        let (y, m, d) = crate::persona::civil(days);
        let wd = crate::persona::weekday(days);
        const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
        const MONTHS: [&str; 12] = [
            "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
        ];
        let s = l.rem_euclid(86_400);
        format!(
            "{} {} {d:2} {:02}:{:02}:{:02} {y}",
            DAYS[wd.rem_euclid(7) as usize],
            MONTHS[(m - 1) as usize],
            s / 3600,
            (s % 3600) / 60,
            s % 60
        )
    };
    if name == "lastb" {
        if st.uid != 0 {
            return Out::fail(1, "lastb: cannot open /var/log/btmp: Permission denied\n");
        }
        return Out::ok(format!("\nbtmp begins {}\n", begins(boot)));
    }
    let mut max = None;
    let mut names = Vec::new();
    let (mut host_last, mut numeric) = (false, false);
    let mut file = "/var/log/wtmp".to_owned();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-a" | "--hostlast" => host_last = true,
            "-i" | "--ip" => numeric = true,
            "-n" | "--limit" => max = it.next().and_then(|n| n.parse().ok()),
            "-f" | "--file" => {
                if let Some(f) = it.next() {
                    file = path_of(st, f);
                }
            }
            "-w" | "-R" | "--nohostname" | "-x" | "--system" => {}
            a if a.len() > 1
                && a.starts_with('-')
                && a[1..].bytes().all(|b| b.is_ascii_digit()) =>
            {
                max = a[1..].parse().ok();
            }
            a if a.starts_with('-') => {
                return Out::fail(
                    1,
                    format!(
                        "last: invalid option -- '{}'\nTry 'last --help' for more information.\n",
                        a.trim_start_matches('-').chars().next().unwrap_or('-')
                    ),
                );
            }
            a => names.push(a.to_owned()),
        }
    }
    let node = match st.fs.stat(&file) {
        Some(n) if n.kind == crate::services::shell::fs::Kind::File => n,
        Some(_) => return Out::fail(1, format!("last: {file}: Is a directory\n")),
        None => {
            return Out::fail(
                1,
                format!("last: cannot open {file}: No such file or directory\n"),
            );
        }
    };
    let records = crate::services::shell::wtmp::decode(&node.data);
    let base = file.rsplit('/').next().unwrap_or(&file).to_owned();
    let la = crate::services::shell::wtmp::LastArgs {
        max,
        names: &names,
        host_last,
        numeric,
        file: &base,
        live_pid: st
            .tty
            .then(|| crate::services::shell::wtmp::own_pid(st.login_time)),
    };
    let fmt = |t: i64, full: bool| if full { begins(t) } else { when(t) };
    Out::ok(crate::services::shell::wtmp::last(
        &records, &la, node.mtime, &fmt,
    ))
}

// ---- perl -----------------------------------------------------------------------------

const PERL_VERSION: &str = "\nThis is perl 5, version 36, subversion 0 (v5.36.0) built for x86_64-linux-gnu-thread-multi\n(with 54 registered patches, see perl -V for more detail)\n\nCopyright 1987-2022, Larry Wall\n\nPerl may be copied only under the terms of either the Artistic License or the\nGNU General Public License, which may be found in the Perl 5 source kit.\n\nComplete documentation for Perl, including FAQ lists, should be found on\nthis system using \"man perl\" or \"perldoc perl\".  If you have access to the\nInternet, point your browser at https://www.perl.org/, the Perl Home Page.\n\n";

/// The `print` statements of a one-liner: string literals, `"x" x N` repetition and
/// `.` joins. Anything else (sockets, `system`, `exec`) does nothing visible, as a
/// reverse shell that cannot connect does nothing visible.
fn perl_prints(st: &State, code: &str, out: &mut Out) {
    for stmt in code.split(';') {
        let s = stmt.trim();
        let Some(rest) = s.strip_prefix("print") else {
            continue;
        };
        let rest = rest
            .trim()
            .trim_start_matches('(')
            .trim_end_matches(')')
            .trim();
        let mut acc = Vec::new();
        for part in rest.split(" . ") {
            let part = part.trim();
            let (lit, times) = match part.rsplit_once(" x ") {
                Some((l, n)) => (l.trim(), n.trim().parse::<usize>().unwrap_or(1)),
                None => (part, 1),
            };
            let text = if let Some(t) = lit.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
                t.replace("\\n", "\n").replace("\\t", "\t")
            } else if let Some(t) = lit.strip_prefix('\'').and_then(|t| t.strip_suffix('\'')) {
                t.to_owned()
            } else {
                continue;
            };
            let want = text.len().saturating_mul(times).min(MAX_BUFFER);
            if st.budget.take_data(want) < want {
                return;
            }
            for _ in 0..times {
                if acc.len() + text.len() > MAX_BUFFER {
                    break;
                }
                acc.extend_from_slice(text.as_bytes());
            }
        }
        out.put(&acc);
    }
}

fn perl(st: &State, args: &[String], ctx: &Ctx<'_>) -> Out {
    let mut out = Out::default();
    let mut i = 0;
    while i < args.len() {
        let a = args[i].as_str();
        i += 1;
        match a {
            "-v" | "--version" => return Out::ok(PERL_VERSION),
            "-e" | "-E" => {
                let Some(code) = args.get(i) else {
                    return Out::fail(29, "No code specified for -e.\n");
                };
                perl_prints(st, code, &mut out);
                return out;
            }
            "-c" | "-w" | "-n" | "-p" | "-l" => {}
            s if s.starts_with("-M") || s.starts_with("-I") => {}
            s if s.starts_with('-') => {}
            f => {
                let path = path_of(st, f);
                return match st.fs.read(&path) {
                    Ok(d) => {
                        let code = String::from_utf8_lossy(d).into_owned();
                        perl_prints(st, &code, &mut out);
                        out
                    }
                    Err(e) => {
                        Out::fail(2, format!("Can't open perl script \"{f}\": {}\n", e.text()))
                    }
                };
            }
        }
    }
    // A script on stdin.
    let code = String::from_utf8_lossy(take(st, ctx.stdin, MAX_BUFFER)).into_owned();
    perl_prints(st, &code, &mut out);
    out
}

// ---- apt ------------------------------------------------------------------------------

fn apt(st: &State, name: &str, args: &[String]) -> Out {
    let words: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let cmd = words.first().copied().unwrap_or("");
    let warn = if name == "apt" {
        "\nWARNING: apt does not have a stable CLI interface. Use with caution in scripts.\n\n"
    } else {
        ""
    };
    match cmd {
        "" => {
            let text = if name == "apt" {
                "apt 2.6.1 (amd64)\nUsage: apt [options] command\n\napt is a commandline package manager and provides commands for\nsearching and managing as well as querying information about packages.\n"
            } else {
                "apt 2.6.1 (amd64)\nUsage: apt-get [options] command\n       apt-get [options] install|remove pkg1 [pkg2 ...]\n       apt-get [options] source pkg1 [pkg2 ...]\n"
            };
            Out::fail(1, text)
        }
        "update" | "install" | "upgrade" | "remove" | "purge" | "dist-upgrade" | "full-upgrade"
        | "autoremove" => {
            if st.uid != 0 {
                let (lock, what) = if cmd == "update" {
                    ("/var/lib/apt/lists/lock", "directory /var/lib/apt/lists/")
                } else {
                    (
                        "/var/lib/dpkg/lock-frontend",
                        "dpkg frontend lock (/var/lib/dpkg/lock-frontend), are you root?",
                    )
                };
                let msg = if cmd == "update" {
                    format!(
                        "{warn}Reading package lists...\nE: Could not open lock file {lock} - open (13: Permission denied)\nE: Unable to lock {what}\n"
                    )
                } else {
                    format!(
                        "{warn}E: Could not open lock file {lock} - open (13: Permission denied)\nE: Unable to acquire the {what}\n"
                    )
                };
                return Out::fail(100, msg);
            }
            let mut o = Out::default();
            if cmd == "update" {
                o.put(warn.as_bytes());
                for (n, (url, suite)) in [
                    ("http://deb.debian.org/debian", "bookworm"),
                    ("http://deb.debian.org/debian-security", "bookworm-security"),
                    ("http://deb.debian.org/debian", "bookworm-updates"),
                ]
                .iter()
                .enumerate()
                {
                    o.line(&format!("Ign:{} {url} {suite} InRelease", n + 1));
                }
                for (n, (url, suite)) in [
                    ("http://deb.debian.org/debian", "bookworm"),
                    ("http://deb.debian.org/debian-security", "bookworm-security"),
                    ("http://deb.debian.org/debian", "bookworm-updates"),
                ]
                .iter()
                .enumerate()
                {
                    o.line(&format!("Err:{} {url} {suite} InRelease", n + 1));
                    o.line("  Temporary failure resolving 'deb.debian.org'");
                }
                o.line("Reading package lists...");
                for (url, suite) in [
                    ("http://deb.debian.org/debian", "bookworm"),
                    ("http://deb.debian.org/debian-security", "bookworm-security"),
                    ("http://deb.debian.org/debian", "bookworm-updates"),
                ] {
                    o.eline(&format!("W: Failed to fetch {url}/dists/{suite}/InRelease  Temporary failure resolving 'deb.debian.org'"));
                }
                o.eline("W: Some index files failed to download. They have been ignored, or old ones used instead.");
                return o;
            }
            o.put(warn.as_bytes());
            o.line("Reading package lists...");
            o.line("Building dependency tree...");
            o.line("Reading state information...");
            if cmd == "install" {
                let pkgs: Vec<&str> = words[1..].to_vec();
                if pkgs.is_empty() {
                    o.line("0 upgraded, 0 newly installed, 0 to remove and 0 not upgraded.");
                    return o;
                }
                // The package lists of a box that never reached its mirror are empty.
                let p = pkgs[0];
                o.line(&format!("Package {p} is not available, but is referred to by another package.\nThis may mean that the package is missing, has been obsoleted, or\nis only available from another source\n"));
                o.eline(&format!("E: Package '{p}' has no installation candidate"));
                o.status = 100;
                return o;
            }
            o.line("Calculating upgrade...");
            o.line("0 upgraded, 0 newly installed, 0 to remove and 0 not upgraded.");
            o
        }
        "list" | "search" | "show" | "policy" => {
            let mut o = Out::default();
            o.put(warn.as_bytes());
            if cmd == "list" || cmd == "search" {
                o.line(if cmd == "list" {
                    "Listing..."
                } else {
                    "Sorting...\nFull Text Search..."
                });
            }
            o
        }
        other => Out::fail(100, format!("E: Invalid operation {other}\n")),
    }
}

// ---- editors and pagers ---------------------------------------------------------------

fn editor(st: &State, name: &str, args: &[String], ctx: &Ctx<'_>) -> Out {
    let _ = (args, ctx);
    let nano = name == "nano";
    if !st.tty {
        // No terminal: vim warns and waits for commands on stdin; at its end it quits.
        return if nano {
            Out::fail(1, "Too many errors from stdin\n")
        } else {
            let mut o = Out::default();
            o.err.extend_from_slice(b"Vim: Warning: Output is not to a terminal\nVim: Warning: Input is not from a terminal\n");
            o.status = 1;
            o
        };
    }
    // A terminal: the screen is cleared and the session's next keys would go to the
    // editor; nothing here can hold the line open, so it quits as `:q` would.
    Out::ok("\x1b[?1049h\x1b[22;0;0t\x1b[?1h\x1b=\x1b[H\x1b[2J\x1b[?1049l\x1b[23;0;0t\x1b[?1l\x1b>")
}

fn pager(st: &State, name: &str, args: &[String], ctx: &Ctx<'_>) -> Out {
    let files: Vec<String> = args
        .iter()
        .filter(|a| !a.starts_with('-') && !a.starts_with('+'))
        .cloned()
        .collect();
    let mut o = Out::default();
    if files.is_empty() {
        if ctx.stdin.is_empty() && st.tty {
            return Out::fail(
                1,
                if name == "less" {
                    "Missing filename (\"less --help\" for help)\n"
                } else {
                    "Usage:\n more [options] <file>...\n"
                },
            );
        }
        o.put(take(st, ctx.stdin, MAX_BUFFER));
        return o;
    }
    let many = files.len() > 1;
    for f in &files {
        if o.full() || !st.budget.iterations(1) {
            break;
        }
        match load(st, f, ctx) {
            Ok(d) => {
                if many && name == "more" {
                    o.put(format!("::::::::::::::\n{f}\n::::::::::::::\n").as_bytes());
                }
                o.put(&d);
            }
            Err(super::super::fs::FsError::IsDir) if name == "less" => {
                o.eline(&format!("{f} is a directory"));
                o.status = 1;
            }
            Err(e) => {
                if name == "less" {
                    o.eline(&format!("{f}: {}", e.text()));
                } else {
                    o.eline(&format!("more: cannot open {f}: {}", e.text()));
                }
                o.status = 1;
            }
        }
    }
    o
}

// ---- sleep ----------------------------------------------------------------------------

/// Most a line may really sleep, all its `sleep`s together: the line holds a pool
/// thread while it waits.
const MAX_SLEEP_PER_INPUT: Duration = Duration::from_secs(5);

thread_local! {
    /// (session state's address, the input's clock second, time slept for it).
    static SLEPT: Cell<(usize, i64, Duration)> = const { Cell::new((0, 0, Duration::ZERO)) };
}

fn sleep(st: &State, args: &[String]) -> Out {
    if args.is_empty() {
        return Out::fail(
            1,
            "sleep: missing operand\nTry 'sleep --help' for more information.\n",
        );
    }
    let mut total = 0f64;
    for a in args {
        let (num, unit) = match a.char_indices().last() {
            Some((i, c @ ('s' | 'm' | 'h' | 'd'))) => (&a[..i], c),
            _ => (a.as_str(), 's'),
        };
        let Ok(v) = num.parse::<f64>() else {
            return Out::fail(
                1,
                format!(
                    "sleep: invalid time interval {}\nTry 'sleep --help' for more information.\n",
                    q(a)
                ),
            );
        };
        if v.is_nan() || v < 0.0 {
            return Out::fail(
                1,
                format!(
                    "sleep: invalid time interval {}\nTry 'sleep --help' for more information.\n",
                    q(a)
                ),
            );
        }
        let mult = match unit {
            'm' => 60.0,
            'h' => 3600.0,
            'd' => 86_400.0,
            _ => 1.0,
        };
        total += v * mult;
    }
    let want = Duration::from_secs_f64(total.min(3600.0));
    let key = std::ptr::from_ref(st) as usize;
    let d = SLEPT.with(|c| {
        let (k, now, used) = c.get();
        let used = if k == key && now == st.now {
            used
        } else {
            Duration::ZERO
        };
        let d = want.min(MAX_SLEEP_PER_INPUT.saturating_sub(used));
        c.set((key, st.now, used + d));
        d
    });
    if !d.is_zero() {
        std::thread::sleep(d);
    }
    Out::default()
}
