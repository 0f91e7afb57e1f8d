//! The files that describe the machine itself, made from the node's persona: identity
//! files (`/etc/hostname`, `/etc/machine-id`, the kernel in `/boot`), hardware
//! (`/proc/cpuinfo`, `/proc/meminfo`), and the per-session `/proc` that moves with the
//! clock (`/proc/uptime`, `/proc/loadavg`, `/proc/net/*`, `/proc/<pid>`).

use super::super::sysinfo::{self, Proc};
use crate::persona::{NodePersona, Persona, mac_string};
use std::fmt::Write as _;
use std::net::Ipv4Addr;

/// (path, mode, content) of the persona's base files.
pub(super) fn files(p: &Persona, hostname: &str) -> Vec<(String, u32, String)> {
    let k = p.kernel;
    let rel = k.release();
    let host_short = hostname.split('.').next().unwrap_or(hostname);
    let mut v: Vec<(String, u32, String)> = vec![
        ("/etc/hostname".into(), 0o644, format!("{hostname}\n")),
        (
            "/etc/hosts".into(),
            0o644,
            format!(
                "127.0.0.1\tlocalhost\n127.0.1.1\t{hostname}{}\n\n# The following lines are desirable for IPv6 capable hosts\n::1     localhost ip6-localhost ip6-loopback\nff02::1 ip6-allnodes\nff02::2 ip6-allrouters\n",
                if host_short != hostname {
                    format!(" {host_short}")
                } else {
                    String::new()
                }
            ),
        ),
        (
            "/proc/sys/kernel/hostname".into(),
            0o444,
            format!("{hostname}\n"),
        ),
        (
            "/proc/sys/kernel/osrelease".into(),
            0o444,
            format!("{rel}\n"),
        ),
        ("/proc/sys/kernel/ostype".into(), 0o444, "Linux\n".into()),
        (
            "/proc/sys/kernel/version".into(),
            0o444,
            format!("{}\n", k.version()),
        ),
        ("/proc/sys/kernel/pid_max".into(), 0o644, "4194304\n".into()),
        // Tunables miners and loaders set as root (Kinsing's NMI watchdog, TeamTNT's
        // huge pages): Debian 12's values on a VM, writable by root as the kernel's are.
        ("/proc/sys/kernel/nmi_watchdog".into(), 0o644, "0\n".into()),
        (
            "/proc/sys/kernel/randomize_va_space".into(),
            0o644,
            "2\n".into(),
        ),
        ("/proc/sys/vm/nr_hugepages".into(), 0o644, "0\n".into()),
        ("/proc/sys/vm/overcommit_memory".into(), 0o644, "0\n".into()),
        ("/proc/sys/vm/swappiness".into(), 0o644, "60\n".into()),
        (
            "/proc/sys/kernel/random/boot_id".into(),
            0o444,
            format!("{}\n", p.boot_id),
        ),
        (
            "/etc/machine-id".into(),
            0o444,
            format!("{}\n", p.machine_id),
        ),
        (
            "/etc/debian_version".into(),
            0o644,
            format!("{}\n", k.debian_version),
        ),
        ("/etc/timezone".into(), 0o644, format!("{}\n", p.zone.name)),
        ("/etc/resolv.conf".into(), 0o644, resolv_conf(p)),
        (
            "/etc/network/interfaces".into(),
            0o644,
            format!(
                "# This file describes the network interfaces available on your system\n# and how to activate them. For more information, see interfaces(5).\n\nsource /etc/network/interfaces.d/*\n\n# The loopback network interface\nauto lo\niface lo inet loopback\n\n# The primary network interface\nallow-hotplug {0}\niface {0} inet dhcp\n",
                p.net.iface
            ),
        ),
        (
            "/etc/ssh/ssh_host_ed25519_key.pub".into(),
            0o644,
            p.ssh_ed25519_pub(host_short),
        ),
        (
            "/etc/fstab".into(),
            0o644,
            format!(
                "# /etc/fstab: static file system information.\nPARTUUID={0}-01  /          ext4   rw,discard,errors=remount-ro,x-systemd.growfs  0 1\nPARTUUID={0}-0f  /boot/efi  vfat   defaults  0 0\n",
                &p.machine_id[..8]
            ),
        ),
        (format!("/boot/vmlinuz-{rel}"), 0o644, "\x7fELF".into()),
        (
            format!("/boot/initrd.img-{rel}"),
            0o644,
            "\x1f\u{8b}".into(),
        ),
        (
            format!("/boot/config-{rel}"),
            0o644,
            format!(
                "#\n# Automatically generated file; DO NOT EDIT.\n# Linux/x86 {} Kernel Configuration\n#\n",
                k.upstream
            ),
        ),
        (format!("/boot/System.map-{rel}"), 0o644, String::new()),
        (
            "/proc/version".into(),
            0o444,
            format!(
                "Linux version {rel} (debian-kernel@lists.debian.org) (gcc-12 (Debian 12.2.0-14) 12.2.0, GNU ld (GNU Binutils for Debian) 2.40) {}\n",
                k.version()
            ),
        ),
        (
            "/proc/cmdline".into(),
            0o444,
            format!(
                "BOOT_IMAGE=/boot/vmlinuz-{rel} root=PARTUUID={}-01 ro console=tty0 console=ttyS0,115200 earlyprintk=ttyS0,115200 consoleblank=0\n",
                &p.machine_id[..8]
            ),
        ),
        ("/proc/cpuinfo".into(), 0o444, sysinfo::cpuinfo(p)),
        ("/proc/meminfo".into(), 0o444, sysinfo::meminfo(p)),
        ("/proc/mounts".into(), 0o444, mounts(p)),
        ("/var/log/syslog".into(), 0o640, syslog(p, host_short)),
        ("/var/log/auth.log".into(), 0o640, auth_log(p, host_short)),
    ];
    v.push(("/var/lib/dhcp/dhclient.leases".into(), 0o644, String::new()));
    for (path, text) in PAM_FILES {
        v.push(((*path).into(), 0o644, (*text).into()));
    }
    // The CPU topology util-linux and glibc read (`lscpu`, `nproc --all`).
    let last = p.cpus.saturating_sub(1);
    let range = if last == 0 {
        "0".to_owned()
    } else {
        format!("0-{last}")
    };
    for f in ["possible", "present", "online"] {
        v.push((
            format!("/sys/devices/system/cpu/{f}"),
            0o444,
            format!("{range}\n"),
        ));
    }
    v.push((
        "/sys/devices/system/cpu/kernel_max".into(),
        0o444,
        "8191\n".into(),
    ));
    for c in 0..p.cpus.min(256) {
        v.push((
            format!("/sys/devices/system/cpu/cpu{c}/online"),
            0o644,
            "1\n".into(),
        ));
    }
    v.push(("/etc/sudoers".into(), 0o440, SUDOERS.into()));
    v.push(("/etc/sudoers.d/README".into(), 0o440, SUDOERS_README.into()));
    v
}

/// Symbolic links of the persona: the kernel's, the zone's, D-Bus's machine-id.
pub(super) fn symlinks(p: &Persona) -> Vec<(String, String, i64)> {
    let rel = p.kernel.release();
    let t = p.install_time;
    let mut v: Vec<(String, String, i64)> = vec![
        ("/vmlinuz".into(), format!("boot/vmlinuz-{rel}"), t),
        ("/initrd.img".into(), format!("boot/initrd.img-{rel}"), t),
        (
            "/etc/localtime".into(),
            format!("/usr/share/zoneinfo/{}", p.zone.name),
            t,
        ),
        (
            "/var/lib/dbus/machine-id".into(),
            "/etc/machine-id".into(),
            t,
        ),
    ];
    for (path, target, date) in PROGRAM_LINKS {
        v.push(((*path).into(), (*target).into(), date.unwrap_or(t)));
    }
    v
}

/// Debian 12's programs as their packages install them (path, size, date), from a
/// Debian 12 system: `ls -l /bin/ls` must show coreutils' 151344 bytes of 2022-09-20,
/// not a made-up size (intruders compare `ls -lh $(which ls)` across boxes).
const PROGRAMS: &[(&str, u64, i64)] = &[
    ("/usr/bin/apt", 18752, 1685023897),
    ("/usr/bin/apt-get", 51592, 1685023897),
    ("/usr/bin/base64", 48016, 1663687647),
    ("/usr/bin/basename", 43856, 1663687647),
    ("/usr/bin/bash", 1265648, 1778185982),
    ("/usr/bin/cat", 44016, 1663687647),
    ("/usr/bin/chmod", 64496, 1663687647),
    ("/usr/bin/chown", 72752, 1663687647),
    ("/usr/bin/cp", 151152, 1663687647),
    ("/usr/bin/crontab", 43648, 1677742435),
    ("/usr/bin/curl", 280800, 1778249781),
    ("/usr/bin/cut", 48112, 1663687647),
    ("/usr/bin/dash", 125640, 1672924848),
    ("/usr/bin/date", 121904, 1663687647),
    ("/usr/bin/dd", 89240, 1663687647),
    ("/usr/bin/df", 102200, 1663687647),
    ("/usr/bin/diff", 155216, 1675450800),
    ("/usr/bin/dirname", 39760, 1663687647),
    ("/usr/bin/dmesg", 88656, 1732219314),
    ("/usr/bin/du", 175440, 1663687647),
    ("/usr/bin/echo", 43856, 1663687647),
    ("/usr/bin/env", 48536, 1663687647),
    ("/usr/bin/false", 35664, 1663687647),
    ("/usr/bin/find", 224848, 1673201273),
    ("/usr/bin/free", 26936, 1671429998),
    ("/usr/bin/grep", 203152, 1674571380),
    ("/usr/bin/gzip", 98136, 1649557346),
    ("/usr/bin/head", 48080, 1663687647),
    ("/usr/bin/hostname", 22680, 1671456791),
    ("/usr/bin/id", 48144, 1663687647),
    ("/usr/bin/ip", 691016, 1684761592),
    ("/usr/bin/kill", 22840, 1671429998),
    ("/usr/bin/last", 51520, 1732219314),
    ("/usr/bin/lastb", 51520, 1732219314),
    ("/usr/bin/less", 198960, 1714674651),
    ("/usr/bin/ln", 72824, 1663687647),
    ("/usr/bin/ls", 151344, 1663687647),
    ("/usr/bin/lsblk", 207168, 1732219314),
    ("/usr/bin/lscpu", 129344, 1732219314),
    ("/usr/bin/mawk", 158376, 1655480126),
    ("/usr/bin/md5sum", 52176, 1663687647),
    ("/usr/bin/mkdir", 97552, 1663687647),
    ("/usr/bin/mktemp", 43952, 1663687647),
    ("/usr/bin/more", 59712, 1732219314),
    ("/usr/bin/mount", 59704, 1732219314),
    ("/usr/bin/mv", 142968, 1663687647),
    ("/usr/bin/nano", 287480, 1714975801),
    ("/usr/bin/nl", 113776, 1663687647),
    ("/usr/bin/nproc", 43920, 1663687647),
    ("/usr/bin/od", 80912, 1663687647),
    ("/usr/bin/passwd", 68248, 1744022326),
    ("/usr/bin/perl", 3808560, 1790647147),
    ("/usr/bin/pgrep", 35248, 1671429998),
    ("/usr/bin/pidof", 26944, 1680503122),
    ("/usr/bin/ping", 90568, 1727197236),
    // pkill is a link to pgrep on Debian (and pidof, above, one to /sbin/killall5): plain
    // files here, so that running them by path keeps their own behaviour.
    ("/usr/bin/pkill", 35248, 1671429998),
    ("/usr/bin/ps", 146360, 1671429998),
    ("/usr/bin/pwd", 43952, 1663687647),
    ("/usr/bin/readlink", 52112, 1663687647),
    ("/usr/bin/realpath", 52144, 1663687647),
    ("/usr/bin/rev", 14648, 1732219314),
    ("/usr/bin/rm", 72752, 1663687647),
    ("/usr/bin/rmdir", 56240, 1663687647),
    ("/usr/bin/scp", 273024, 1777976816),
    ("/usr/bin/sed", 126424, 1672948525),
    ("/usr/bin/seq", 60336, 1663687647),
    ("/usr/bin/sha1sum", 56272, 1663687647),
    ("/usr/bin/sha256sum", 60368, 1663687647),
    ("/usr/bin/sleep", 43888, 1663687647),
    ("/usr/bin/sort", 118456, 1663687647),
    ("/usr/bin/ss", 193680, 1684761592),
    ("/usr/bin/ssh", 1129504, 1777976816),
    ("/usr/bin/stat", 97488, 1663687647),
    ("/usr/bin/su", 72000, 1732219314),
    ("/usr/bin/sudo", 281624, 1775908883),
    ("/usr/bin/systemctl", 1353368, 1748538242),
    ("/usr/bin/tail", 76944, 1663687647),
    ("/usr/bin/tar", 531984, 1705742827),
    ("/usr/bin/tee", 43984, 1663687647),
    ("/usr/bin/top", 134736, 1671429998),
    ("/usr/bin/touch", 109616, 1663687647),
    ("/usr/bin/tr", 56208, 1663687647),
    ("/usr/bin/true", 35664, 1663687647),
    ("/usr/bin/uname", 43888, 1663687647),
    ("/usr/bin/uniq", 48080, 1663687647),
    ("/usr/bin/uptime", 14648, 1671429998),
    ("/usr/bin/vim.tiny", 1629584, 1739683421),
    ("/usr/bin/w", 22840, 1671429998),
    ("/usr/bin/wc", 52280, 1663687647),
    ("/usr/bin/wget", 470384, 1741008752),
    ("/usr/bin/which", 946, 1690587995),
    ("/usr/bin/whoami", 39792, 1663687647),
    ("/usr/bin/xargs", 72136, 1673201273),
    ("/usr/bin/yes", 39760, 1663687647),
    ("/usr/sbin/adduser", 48382, 1685030075),
    ("/usr/sbin/chpasswd", 63856, 1744022326),
    ("/usr/sbin/cron", 51776, 1677742435),
    ("/usr/sbin/fdisk", 162152, 1732219314),
    ("/usr/sbin/iptables", 228512, 1673876677),
    ("/usr/sbin/service", 9099, 1663465999),
    ("/usr/sbin/sshd", 1265432, 1777976816),
    ("/usr/sbin/sysctl", 31040, 1671429998),
    ("/usr/sbin/useradd", 159536, 1744022326),
];

/// The size and date of one of Debian's programs, when it is in the table.
pub(super) fn program(path: &str) -> Option<(u64, i64)> {
    // Looked up once per program when a service builds its tree: a scan is enough.
    PROGRAMS
        .iter()
        .find(|(p, _, _)| *p == path)
        .map(|(_, size, date)| (*size, *date))
}

/// Programs that are links on Debian 12 (the alternatives system, `sh` → `dash`,
/// systemd's `reboot`), with the link's own date where the package ships it (`None`:
/// made at install time).
const PROGRAM_LINKS: &[(&str, &str, Option<i64>)] = &[
    ("/usr/bin/sh", "dash", Some(1_672_924_848)),
    ("/usr/bin/awk", "/etc/alternatives/awk", None),
    ("/etc/alternatives/awk", "/usr/bin/mawk", None),
    ("/usr/bin/editor", "/etc/alternatives/editor", None),
    ("/etc/alternatives/editor", "/bin/nano", None),
    ("/usr/bin/pager", "/etc/alternatives/pager", None),
    ("/etc/alternatives/pager", "/usr/bin/less", None),
    ("/usr/bin/vi", "/etc/alternatives/vi", None),
    ("/etc/alternatives/vi", "/usr/bin/vim.tiny", None),
    ("/usr/sbin/reboot", "/bin/systemctl", Some(1_748_538_242)),
    ("/usr/sbin/shutdown", "/bin/systemctl", Some(1_748_538_242)),
];

/// A program's mode on Debian 12: the set-user-ID tools (`find / -perm -4000` is a
/// classic privilege-escalation probe) and crontab's set-group-ID, else 0755.
pub(super) fn program_mode(path: &str) -> u32 {
    match path {
        "/usr/bin/passwd" | "/usr/bin/su" | "/usr/bin/sudo" | "/usr/bin/mount" => 0o4755,
        "/usr/bin/crontab" => 0o2755,
        _ => 0o755,
    }
}

/// Whether a program of the base list is a link on Debian 12 (made by [`symlinks`]).
pub(super) fn is_program_link(path: &str) -> bool {
    PROGRAM_LINKS.iter().any(|(p, _, _)| *p == path)
}

fn resolv_conf(p: &Persona) -> String {
    let mut s = String::new();
    if let Some(d) = p.net.search {
        let _ = writeln!(s, "domain {d}\nsearch {d}");
    }
    for ns in &p.net.dns {
        let _ = writeln!(s, "nameserver {ns}");
    }
    s
}

/// Root's `/etc/shadow` password field, per node.
pub(super) fn root_password(p: &Persona) -> String {
    super::super::accounts::password_field(&p.machine_id)
}

fn mounts(p: &Persona) -> String {
    let mut s = String::from(
        "sysfs /sys sysfs rw,nosuid,nodev,noexec,relatime 0 0\nproc /proc proc rw,nosuid,nodev,noexec,relatime 0 0\n",
    );
    for (dev, size, _, mount) in sysinfo::filesystems(p) {
        let line = match mount {
            "/" => format!("{dev} / ext4 rw,relatime,discard,errors=remount-ro 0 0"),
            "/boot/efi" => format!(
                "{dev} /boot/efi vfat rw,relatime,fmask=0022,dmask=0022,codepage=437,iocharset=ascii,shortname=mixed,utf8,errors=remount-ro 0 0"
            ),
            "/dev" => format!(
                "udev /dev devtmpfs rw,nosuid,relatime,size={size}k,nr_inodes={},mode=755 0 0",
                size / 4
            ),
            m => format!("tmpfs {m} tmpfs rw,nosuid,nodev,size={size}k,mode=755 0 0"),
        };
        s.push_str(&line);
        s.push('\n');
    }
    s
}

/// `Apr 14 06:25:01` in the machine's zone.
fn syslog_stamp(p: &Persona, t: i64) -> String {
    let (local, _) = p.local(t);
    let (_, m, d) = crate::persona::civil(local.div_euclid(86_400));
    let s = local.rem_euclid(86_400);
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{} {d:2} {:02}:{:02}:{:02}",
        MONTHS[(m - 1) as usize],
        s / 3600,
        (s % 3600) / 60,
        s % 60
    )
}

fn syslog(p: &Persona, host: &str) -> String {
    // The morning after boot: the daily jobs of a quiet server.
    let day = (p.boot_time / 86_400 + 1) * 86_400;
    let pid = p.daemon_pids.last().copied().unwrap_or(900) + 20_000;
    format!(
        "{} {host} CRON[{pid}]: (root) CMD (test -x /usr/sbin/anacron || {{ cd / && run-parts --report /etc/cron.daily; }})\n{} {host} systemd[1]: Starting apt-daily-upgrade.service - Daily apt upgrade and clean activities...\n{} {host} systemd[1]: apt-daily-upgrade.service: Deactivated successfully.\n",
        syslog_stamp(p, day + 6 * 3600 + 25 * 60 + 1),
        syslog_stamp(p, day + 6 * 3600 + 47 * 60 + 12),
        syslog_stamp(p, day + 6 * 3600 + 47 * 60 + 15),
    )
}

fn auth_log(p: &Persona, host: &str) -> String {
    let t = p.boot_time + 3 * 3600 + 1_234;
    let pid = p.daemon_pids.last().copied().unwrap_or(900) + 1_200;
    let stamp = syslog_stamp(p, t);
    format!(
        "{stamp} {host} sshd[{pid}]: Accepted publickey for root from {} port {} ssh2: ED25519 SHA256:{}\n{stamp} {host} sshd[{pid}]: pam_unix(sshd:session): session opened for user root(uid=0) by (uid=0)\n",
        p.last_login_src,
        40_000 + (p.boot_time % 20_000),
        &p.machine_id[..24]
    )
}

/// A session's `/proc` at `now`: (path, content) files and the directories they need.
pub(super) struct Dynamic {
    pub dirs: Vec<String>,
    pub files: Vec<(String, String)>,
    pub links: Vec<(String, String)>,
}

/// The `/proc` entries that move with time or with the session's processes.
pub(super) fn dynamic(node: &NodePersona, now: i64, procs: &[Proc], self_pid: u32) -> Dynamic {
    let p = node.persona();
    let up = p.uptime(now);
    // Hundredths that do not all end in .00.
    let frac = p.boot_time.rem_euclid(97);
    let idle = up * i64::from(p.cpus) * 97 / 100;
    let mut d = Dynamic {
        dirs: vec!["/proc/net".into()],
        files: Vec::with_capacity(16 + procs.len() * 3),
        links: Vec::with_capacity(procs.len() + 1),
    };
    d.files.push((
        "/proc/uptime".into(),
        format!("{up}.{frac:02} {idle}.{:02}\n", (frac * 3) % 100),
    ));
    let l = p.load(now);
    let running = 1 + (now.rem_euclid(3)) as usize;
    d.files.push((
        "/proc/loadavg".into(),
        format!(
            "{:.2} {:.2} {:.2} {running}/{} {}\n",
            l[0],
            l[1],
            l[2],
            procs.len() + 40,
            node.last_pid(now)
        ),
    ));
    d.files
        .push(("/proc/stat".into(), stat(p, up, procs.len())));
    let listeners = node.listeners();
    d.files
        .push(("/proc/net/tcp".into(), net_tcp(p, &listeners)));
    d.files.push((
        "/proc/net/tcp6".into(),
        "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n".into(),
    ));
    d.files.push(("/proc/net/route".into(), net_route(p)));
    d.files.push((
        "/proc/net/arp".into(),
        format!(
            "IP address       HW type     Flags       HW address            Mask     Device\n{:<16} 0x1         0x2         {}     *        {}\n",
            p.net.gateway.to_string(),
            mac_string(&p.net.gateway_mac),
            p.net.iface
        ),
    ));
    d.files.push(("/proc/net/dev".into(), net_dev(p, up)));
    for pr in procs {
        let dir = format!("/proc/{}", pr.pid);
        let cmdline = if pr.kernel_thread() {
            String::new()
        } else {
            let mut c: String = pr.args.split(' ').collect::<Vec<_>>().join("\0");
            c.push('\0');
            c
        };
        d.files.push((format!("{dir}/cmdline"), cmdline));
        d.files
            .push((format!("{dir}/comm"), format!("{}\n", pr.comm)));
        d.files.push((
            format!("{dir}/status"),
            format!(
                "Name:\t{}\nUmask:\t0022\nState:\t{}\nTgid:\t{}\nNgid:\t0\nPid:\t{}\nPPid:\t{}\nTracerPid:\t0\nUid:\t{u}\t{u}\t{u}\t{u}\nGid:\t{u}\t{u}\t{u}\t{u}\nFDSize:\t64\nVmRSS:\t{:>8} kB\nThreads:\t1\n",
                pr.comm,
                if pr.stat.starts_with('R') {
                    "R (running)"
                } else if pr.stat.starts_with('I') {
                    "I (idle)"
                } else {
                    "S (sleeping)"
                },
                pr.pid,
                pr.pid,
                pr.ppid,
                pr.rss,
                u = pr.uid,
            ),
        ));
        if !pr.kernel_thread() {
            let exe = pr.args.split([' ', ':']).next().unwrap_or("");
            let exe = if exe.starts_with('/') {
                exe.to_owned()
            } else if pr.comm == "bash" {
                "/usr/bin/bash".to_owned()
            } else {
                "/usr/sbin/sshd".to_owned()
            };
            d.links.push((format!("{dir}/exe"), exe));
        }
        d.dirs.push(dir);
    }
    if self_pid != 0 {
        d.links.push(("/proc/self".into(), self_pid.to_string()));
    }
    // The real host keys, once the node's SSH service has them, over the seeded ones.
    d.files.extend(node.host_key_files());
    d
}

fn stat(p: &Persona, up: i64, procs: usize) -> String {
    // Jiffies (USER_HZ = 100): a mostly idle machine.
    let total = up * 100;
    let mut s = String::new();
    let cpu = |t: i64| {
        format!(
            "{} 0 {} {} {} 0 {} 0 0 0",
            t / 90,
            t / 200,
            t * 97 / 100,
            t / 800,
            t / 1000
        )
    };
    let _ = writeln!(s, "cpu  {}", cpu(total * i64::from(p.cpus)));
    for i in 0..p.cpus {
        let _ = writeln!(s, "cpu{i} {}", cpu(total));
    }
    let _ = write!(
        s,
        "intr {}\nctxt {}\nbtime {}\nprocesses {}\nprocs_running 1\nprocs_blocked 0\nsoftirq {}\n",
        up * 130,
        up * 260,
        p.boot_time,
        p.pid_base + (up as u64) * p.pid_rate / 3600 + procs as u64,
        up * 90
    );
    s
}

/// Little-endian hex of an IPv4 address and port, as the kernel prints sockets.
fn hex_addr(ip: Ipv4Addr, port: u16) -> String {
    format!("{:08X}:{port:04X}", u32::from_le_bytes(ip.octets()))
}

fn net_tcp(p: &Persona, listeners: &[crate::persona::Listener]) -> String {
    let mut s = String::from(
        "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n",
    );
    let any = Ipv4Addr::UNSPECIFIED;
    let accounts = super::super::accounts::Accounts::of(listeners);
    for (i, l) in listeners.iter().enumerate() {
        let uid = match l.program {
            crate::persona::Program::Redis => accounts.uid_of("redis"),
            crate::persona::Program::Mysqld | crate::persona::Program::Mariadb => {
                accounts.uid_of("mysql")
            }
            _ => None,
        }
        .unwrap_or(0);
        let inode = 10_000 + u64::from(l.port) * 7 + p.boot_time.rem_euclid(1000) as u64;
        let _ = writeln!(
            s,
            "{i:4}: {} {} 0A 00000000:00000000 00:00000000 00000000 {uid:5}        0 {inode} 1 0000000000000000 100 0 0 10 0",
            hex_addr(any, l.port),
            hex_addr(any, 0)
        );
    }
    s
}

fn net_route(p: &Persona) -> String {
    let le = |ip: Ipv4Addr| format!("{:08X}", u32::from_le_bytes(ip.octets()));
    let n = &p.net;
    format!(
        "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT                                                       \n{i}\t00000000\t{gw}\t0003\t0\t0\t0\t00000000\t0\t0\t0                                                                               \n{i}\t{net}\t00000000\t0001\t0\t0\t0\t{mask}\t0\t0\t0                                                                               \n",
        i = n.iface,
        gw = le(n.gateway),
        net = le(n.network()),
        mask = le(n.netmask()),
    )
}

fn net_dev(p: &Persona, up: i64) -> String {
    let up = up.max(1) as u64;
    // A quiet server: a few KB/s in, less out, growing with uptime.
    let rx = up * (1_800 + u64::from(p.net.mac[5]) * 10);
    let tx = up * (900 + u64::from(p.net.mac[4]) * 6);
    let lo = up * 120;
    format!(
        "Inter-|   Receive                                                |  Transmit\n face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    lo: {lo:>8} {:>7}    0    0    0     0          0         0 {lo:>8} {:>7}    0    0    0     0       0          0\n{:>6}: {rx:>8} {:>7}    0    0    0     0          0         0 {tx:>8} {:>7}    0    0    0     0       0          0\n",
        lo / 90,
        lo / 90,
        p.net.iface,
        rx / 600,
        tx / 300
    )
}

/// Debian 12's PAM stack for password changes (libpam-runtime and passwd's files), so
/// that `chpasswd`/`passwd` find what they read on a real box.
const PAM_FILES: &[(&str, &str)] = &[
    (
        "/etc/pam.d/chpasswd",
        "# The PAM configuration file for the Shadow 'chpasswd' service\n#\n\n@include common-password\n\n",
    ),
    (
        "/etc/pam.d/passwd",
        "#\n# The PAM configuration file for the Shadow `passwd' service\n#\n\n@include common-password\n\n",
    ),
    (
        "/etc/pam.d/common-password",
        "#\n# /etc/pam.d/common-password - password-related modules common to all services\n#\n# This file is included from other service-specific PAM config files,\n# and should contain a list of modules that define the services to be\n# used to change user passwords.  The default is pam_unix.\n\n# Explanation of pam_unix options:\n# The \"yescrypt\" option enables\n#hashed passwords using the yescrypt algorithm, introduced in Debian\n#11.  Without this option, the default is Unix crypt.  Prior releases\n#used the option \"sha512\"; if a shadow password hash will be shared\n#between Debian 11 and older releases replace \"yescrypt\" with \"sha512\"\n#for compatibility .  The \"obscure\" option replaces the old\n#`OBSCURE_CHECKS_ENAB' option in login.defs.  See the pam_unix manpage\n#for other options.\n\n# As of pam 1.0.1-6, this file is managed by pam-auth-update by default.\n# To take advantage of this, it is recommended that you configure any\n# local modules either before or after the default block, and use\n# pam-auth-update to manage selection of other modules.  See\n# pam-auth-update(8) for details.\n\n# here are the per-package modules (the \"Primary\" block)\npassword	[success=1 default=ignore]	pam_unix.so obscure yescrypt\n# here's the fallback if no module succeeds\npassword	requisite			pam_deny.so\n# prime the stack with a positive return value if there isn't one already;\n# this avoids us returning an error just because nothing sets a success code\n# since the modules above will each just jump around\npassword	required			pam_permit.so\n# and here are more per-package modules (the \"Additional\" block)\n# end of pam-auth-update config\n",
    ),
    (
        "/etc/pam.d/common-auth",
        "#\n# /etc/pam.d/common-auth - authentication settings common to all services\n#\n# This file is included from other service-specific PAM config files,\n# and should contain a list of the authentication modules that define\n# the central authentication scheme for use on the system\n# (e.g., /etc/shadow, LDAP, Kerberos, etc.).  The default is to use the\n# traditional Unix authentication mechanisms.\n#\n# As of pam 1.0.1-6, this file is managed by pam-auth-update by default.\n# To take advantage of this, it is recommended that you configure any\n# local modules either before or after the default block, and use\n# pam-auth-update to manage selection of other modules.  See\n# pam-auth-update(8) for details.\n\n# here are the per-package modules (the \"Primary\" block)\nauth	[success=1 default=ignore]	pam_unix.so nullok\n# here's the fallback if no module succeeds\nauth	requisite			pam_deny.so\n# prime the stack with a positive return value if there isn't one already;\n# this avoids us returning an error just because nothing sets a success code\n# since the modules above will each just jump around\nauth	required			pam_permit.so\n# and here are more per-package modules (the \"Additional\" block)\nauth	optional			pam_cap.so \n# end of pam-auth-update config\n",
    ),
    (
        "/etc/pam.d/common-account",
        "#\n# /etc/pam.d/common-account - authorization settings common to all services\n#\n# This file is included from other service-specific PAM config files,\n# and should contain a list of the authorization modules that define\n# the central access policy for use on the system.  The default is to\n# only deny service to users whose accounts are expired in /etc/shadow.\n#\n# As of pam 1.0.1-6, this file is managed by pam-auth-update by default.\n# To take advantage of this, it is recommended that you configure any\n# local modules either before or after the default block, and use\n# pam-auth-update to manage selection of other modules.  See\n# pam-auth-update(8) for details.\n#\n\n# here are the per-package modules (the \"Primary\" block)\naccount	[success=1 new_authtok_reqd=done default=ignore]	pam_unix.so \n# here's the fallback if no module succeeds\naccount	requisite			pam_deny.so\n# prime the stack with a positive return value if there isn't one already;\n# this avoids us returning an error just because nothing sets a success code\n# since the modules above will each just jump around\naccount	required			pam_permit.so\n# and here are more per-package modules (the \"Additional\" block)\n# end of pam-auth-update config\n",
    ),
    (
        "/etc/pam.d/common-session",
        "#\n# /etc/pam.d/common-session - session-related modules common to all services\n#\n# This file is included from other service-specific PAM config files,\n# and should contain a list of modules that define tasks to be performed\n# at the start and end of interactive sessions.\n#\n# As of pam 1.0.1-6, this file is managed by pam-auth-update by default.\n# To take advantage of this, it is recommended that you configure any\n# local modules either before or after the default block, and use\n# pam-auth-update to manage selection of other modules.  See\n# pam-auth-update(8) for details.\n\n# here are the per-package modules (the \"Primary\" block)\nsession	[default=1]			pam_permit.so\n# here's the fallback if no module succeeds\nsession	requisite			pam_deny.so\n# prime the stack with a positive return value if there isn't one already;\n# this avoids us returning an error just because nothing sets a success code\n# since the modules above will each just jump around\nsession	required			pam_permit.so\n# and here are more per-package modules (the \"Additional\" block)\nsession	required	pam_unix.so \nsession	optional	pam_systemd.so \n# end of pam-auth-update config\n",
    ),
    (
        "/etc/pam.d/other",
        "#\n# /etc/pam.d/other - specify the PAM fallback behaviour\n#\n# Note that this file is used for any unspecified service; for example\n#if /etc/pam.d/cron  specifies no session modules but cron calls\n#pam_open_session, the session module out of /etc/pam.d/other is\n#used.  If you really want nothing to happen then use pam_permit.so or\n#pam_deny.so as appropriate.\n\n# We fall back to the system default in /etc/pam.d/common-*\n# \n\n@include common-auth\n@include common-account\n@include common-password\n@include common-session\n",
    ),
];

/// Debian 12's sudo configuration as the package installs it (`sudo -l` reads it).
const SUDOERS: &str = "#\n# This file MUST be edited with the 'visudo' command as root.\n#\n# Please consider adding local content in /etc/sudoers.d/ instead of\n# directly modifying this file.\n#\n# See the man page for details on how to write a sudoers file.\n#\nDefaults	env_reset\nDefaults	mail_badpass\nDefaults	secure_path=\"/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\"\n\n# This fixes CVE-2005-4890 and possibly breaks some versions of kdesu\n# (#1011624, https://bugs.kde.org/show_bug.cgi?id=452532)\nDefaults	use_pty\n\n# This preserves proxy settings from user environments of root\n# equivalent users (group sudo)\n#Defaults:%sudo env_keep += \"http_proxy https_proxy ftp_proxy all_proxy no_proxy\"\n\n# This allows running arbitrary commands, but so does ALL, and it means\n# different sudoers have their choice of editor respected.\n#Defaults:%sudo env_keep += \"EDITOR\"\n\n# Completely harmless preservation of a user preference.\n#Defaults:%sudo env_keep += \"GREP_COLOR\"\n\n# While you shouldn't normally run git as root, you need to with etckeeper\n#Defaults:%sudo env_keep += \"GIT_AUTHOR_* GIT_COMMITTER_*\"\n\n# Per-user preferences; root won't have sensible values for them.\n#Defaults:%sudo env_keep += \"EMAIL DEBEMAIL DEBFULLNAME\"\n\n# \"sudo scp\" or \"sudo rsync\" should be able to use your SSH agent.\n#Defaults:%sudo env_keep += \"SSH_AGENT_PID SSH_AUTH_SOCK\"\n\n# Ditto for GPG agent\n#Defaults:%sudo env_keep += \"GPG_AGENT_INFO\"\n\n# Host alias specification\n\n# User alias specification\n\n# Cmnd alias specification\n\n# User privilege specification\nroot	ALL=(ALL:ALL) ALL\n\n# Allow members of group sudo to execute any command\n%sudo	ALL=(ALL:ALL) ALL\n\n# See sudoers(5) for more information on \"@include\" directives:\n\n@includedir /etc/sudoers.d\n";
const SUDOERS_README: &str = "#\n# The default /etc/sudoers file created on installation of the\n# sudo  package now includes the directive:\n# \n# 	@includedir /etc/sudoers.d\n# \n# This will cause sudo to read and parse any files in the /etc/sudoers.d \n# directory that do not end in '~' or contain a '.' character.\n# \n# Note that there must be at least one file in the sudoers.d directory (this\n# one will do).\n# \n# Note also, that because sudoers contents can vary widely, no attempt is \n# made to add this directive to existing sudoers files on upgrade.  Feel free\n# to add the above directive to the end of your /etc/sudoers file to enable \n# this functionality for existing installations if you wish! Sudo\n# versions older than the one in Debian 11 (bullseye) require the\n# directive will only support the old syntax #includedir, and the current\n# sudo will happily accept both @includedir and #includedir\n#\n# Finally, please note that using the visudo command is the recommended way\n# to update sudoers content, since it protects against many failure modes.\n# See the man page for visudo and sudoers for more information.\n#\n";
