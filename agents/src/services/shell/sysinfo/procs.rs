//! The process table: kernel threads, Debian's boot daemons, the daemons of the services
//! the node runs, and the session's sshd, shell and command, with PIDs from the persona
//! and the node's counter; `ps` in its common forms.

use super::super::State;
use super::super::commands::Out;
use super::clock::{MONTHS, local};
use super::{Proc, persona, tty_name};
use crate::persona::{Listener, Program};
use honeybee_proto::event::clamp;

/// (user, args, vsz, rss, stat, CPU seconds per day) of the boot-time daemons.
const DAEMONS: &[(&str, &str, u64, u64, &str, u64)] = &[
    (
        "root",
        "/lib/systemd/systemd-journald",
        48_612,
        17_500,
        "Ss",
        60,
    ),
    ("root", "/lib/systemd/systemd-udevd", 26_028, 6_692, "Ss", 4),
    (
        "systemd-timesync",
        "/lib/systemd/systemd-timesyncd",
        90_236,
        8_004,
        "Ssl",
        5,
    ),
    ("root", "/usr/sbin/cron -f", 6_608, 2_688, "Ss", 6),
    (
        "messagebus",
        "/usr/bin/dbus-daemon --system --address=systemd: --nofork --nopidfile --systemd-activation --syslog-only",
        9_124,
        4_480,
        "Ss",
        2,
    ),
    (
        "root",
        "/lib/systemd/systemd-logind",
        17_208,
        7_808,
        "Ss",
        2,
    ),
    (
        "root",
        "/sbin/agetty -o -p -- \\u --keep-baud 115200,57600,38400,9600 ttyS0 vt220",
        5_872,
        1_024,
        "Ss+",
        0,
    ),
    (
        "root",
        "/sbin/agetty -o -p -- \\u --noclear - linux",
        5_872,
        988,
        "Ss+",
        0,
    ),
];

/// (user, args, vsz, rss, stat, CPU seconds per day) of a listening program; the
/// first is its main process, the rest its workers.
fn program_procs(
    l: &Listener,
) -> &'static [(&'static str, &'static str, u64, u64, &'static str, u64)] {
    match l.program {
        Program::Sshd => &[(
            "root",
            "sshd: /usr/sbin/sshd -D [listener] 0 of 10-100 startups",
            15_424,
            9_120,
            "Ss",
            1,
        )],
        Program::Inetd => &[("root", "/usr/sbin/inetutils-inetd", 4_188, 1_632, "Ss", 0)],
        Program::Lighttpd => &[(
            "www-data",
            "/usr/sbin/lighttpd -D -f /etc/lighttpd/lighttpd.conf",
            10_472,
            5_104,
            "Ss",
            3,
        )],
        Program::Apache => &[
            (
                "root",
                "/usr/sbin/apache2 -k start",
                203_212,
                23_340,
                "Ss",
                6,
            ),
            (
                "www-data",
                "/usr/sbin/apache2 -k start",
                2_003_684,
                9_388,
                "Sl",
                1,
            ),
            (
                "www-data",
                "/usr/sbin/apache2 -k start",
                2_003_684,
                9_204,
                "Sl",
                1,
            ),
        ],
        Program::Vsftpd => &[(
            "root",
            "/usr/sbin/vsftpd /etc/vsftpd.conf",
            7_748,
            4_012,
            "Ss",
            0,
        )],
        Program::Redis => &[(
            "redis",
            "/usr/bin/redis-server *:6379",
            72_212,
            11_704,
            "Ssl",
            40,
        )],
        Program::Mysqld => &[("mysql", "/usr/sbin/mysqld", 1_792_308, 381_244, "Ssl", 90)],
        // Debian 12's mariadb-server 10.11 runs `mariadbd` (mysqld is only a symlink).
        Program::Mariadb => &[("mysql", "/usr/sbin/mariadbd", 1_318_912, 96_204, "Ssl", 60)],
        // Postfix as Debian starts it: master, then the queue manager and the pickup
        // daemon it spawns (pickup restarts now and then; shown as the boot one).
        Program::Postfix => &[
            (
                "root",
                "/usr/lib/postfix/sbin/master -w",
                42_660,
                4_580,
                "Ss",
                2,
            ),
            ("postfix", "qmgr -l -t unix -u", 43_120, 7_040, "S", 1),
            ("postfix", "pickup -l -t unix -u", 43_072, 6_912, "S", 0),
        ],
        Program::Other => &[],
    }
}

/// `ps`'s user column: names over 8 characters cut to 7 and a `+`.
fn ps_user(name: &str) -> String {
    if name.chars().count() > 8 {
        format!("{}+", name.chars().take(7).collect::<String>())
    } else {
        name.to_owned()
    }
}

/// A process owner's uid from the machine's accounts (the session's own user is 1000).
fn uid_of(st: &State, name: &str) -> u32 {
    st.accounts().uid_of(name).unwrap_or(1000)
}

fn comm_of(args: &str) -> String {
    if args.starts_with('[') {
        return args.trim_matches(['[', ']']).chars().take(15).collect();
    }
    let first = args.split(':').next().unwrap_or(args);
    let exe = first.split_whitespace().next().unwrap_or(first);
    let base = exe
        .rsplit('/')
        .next()
        .unwrap_or(exe)
        .trim_start_matches('-');
    base.chars().take(15).collect()
}

/// Every process of the machine as this session sees it: kernel threads, the daemons,
/// the node's listening services, the session's sshd and shell, and `me` (the `ps`
/// being run, with its arguments) when given.
pub(crate) fn processes(st: &State, me: Option<(u32, &str)>) -> Vec<Proc> {
    let p = persona(st);
    let boot = p.boot_time;
    let up_days = p.uptime(st.now) / 86_400 + 1;
    let proc = |pid: u32,
                ppid: u32,
                user: &str,
                args: &str,
                vsz,
                rss,
                stat: &'static str,
                start: i64,
                cpu: u64| Proc {
        pid,
        ppid,
        uid: uid_of(st, user),
        user: ps_user(user),
        comm: comm_of(args),
        args: args.to_owned(),
        tty: "?".into(),
        stat,
        start,
        vsz,
        rss,
        cpu,
    };
    let mut v = Vec::with_capacity(64);
    v.push(proc(
        1,
        0,
        "root",
        "/sbin/init",
        168_584,
        12_980,
        "Ss",
        boot,
        (up_days * 3) as u64,
    ));
    let mut kthreads: Vec<String> = [
        "kthreadd",
        "rcu_gp",
        "rcu_par_gp",
        "slub_flushwq",
        "netns",
        "kworker/0:0H-events_highpri",
        "mm_percpu_wq",
        "rcu_tasks_kthread",
        "rcu_tasks_rude_kthread",
        "rcu_tasks_trace_kthread",
        "ksoftirqd/0",
        "rcu_preempt",
        "migration/0",
        "cpuhp/0",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    for c in 1..p.cpus.min(16) {
        kthreads.push(format!("cpuhp/{c}"));
        kthreads.push(format!("migration/{c}"));
        kthreads.push(format!("ksoftirqd/{c}"));
    }
    let disk = p.platform.disk();
    let part = if disk == "nvme0n1" {
        "nvme0n1p1".to_owned()
    } else {
        format!("{disk}1")
    };
    for k in [
        "kdevtmpfs",
        "inet_frag_wq",
        "kauditd",
        "khungtaskd",
        "oom_reaper",
        "writeback",
        "kcompactd0",
        "ksmd",
        "khugepaged",
        "kintegrityd",
        "kblockd",
        "blkcg_punt_bio",
        "edac-poller",
        "watchdogd",
        "kswapd0",
    ] {
        kthreads.push(k.to_owned());
    }
    kthreads.push(format!("jbd2/{part}-8"));
    kthreads.push("ext4-rsv-conver".to_owned());
    let mut pid = 2u32;
    for k in &kthreads {
        let stat = if k.contains("wq") || k.starts_with("rcu_gp") || k.starts_with("kblockd") {
            "I<"
        } else {
            "S"
        };
        let ppid = if pid == 2 { 0 } else { 2 };
        v.push(proc(
            pid,
            ppid,
            "root",
            &format!("[{k}]"),
            0,
            0,
            stat,
            boot,
            0,
        ));
        // Kernel threads take the low PIDs, with some left to short-lived ones.
        pid += if pid < 20 { 1 } else { 1 + (pid % 7) };
    }
    let dp = &p.daemon_pids;
    let mut di = 0usize;
    let mut next_daemon = || {
        let pid = dp.get(di).copied().unwrap_or(2_000 + di as u32);
        di += 1;
        pid
    };
    let add =
        |v: &mut Vec<Proc>, pid: u32, ppid: u32, d: &(&str, &str, u64, u64, &'static str, u64)| {
            let (user, args, vsz, rss, stat, per_day) = *d;
            let mut pr = proc(
                pid,
                ppid,
                user,
                args,
                vsz,
                rss,
                stat,
                boot + 4,
                per_day * up_days as u64,
            );
            if args.contains("ttyS0") {
                pr.tty = "ttyS0".into();
            } else if args.ends_with(" linux") {
                pr.tty = "tty1".into();
            }
            v.push(pr);
        };
    for d in DAEMONS.iter().take(3) {
        add(&mut v, next_daemon(), 1, d);
    }
    let iface = p.net.iface;
    let dhclient = format!(
        "/sbin/dhclient -4 -v -i -pf /run/dhclient.{iface}.pid -lf /var/lib/dhcp/dhclient.{iface}.leases -I -df /var/lib/dhcp/dhclient6.{iface}.leases {iface}"
    );
    let dh_pid = next_daemon();
    v.push(proc(
        dh_pid,
        1,
        "root",
        &dhclient,
        5_772,
        3_148,
        "Ss",
        boot + 3,
        up_days as u64,
    ));
    for d in DAEMONS.iter().skip(3) {
        add(&mut v, next_daemon(), 1, d);
    }
    let mut sshd_listener = None;
    for l in st.profile.node.listeners() {
        let mut parent = None;
        for d in program_procs(&l) {
            let pid = next_daemon();
            add(&mut v, pid, parent.unwrap_or(1), d);
            if parent.is_none() {
                parent = Some(pid);
                if l.program == Program::Sshd || (st.telnet && l.program == Program::Inetd) {
                    sshd_listener = Some(pid);
                }
            }
        }
    }
    // The session: sshd's privileged and user processes, the shell, the command.
    if let Some(s) = st.fs.pids() {
        let user = st.user.as_str();
        let tty = tty_name(st);
        let sess = if st.tty {
            format!("{user}@pts/0")
        } else {
            format!("{user}@notty")
        };
        let start = st.login_time;
        let mut a = proc(
            s.sshd,
            sshd_listener.unwrap_or(1),
            "root",
            &format!("sshd: {user} [priv]"),
            17_960,
            11_020,
            "Ss",
            start,
            0,
        );
        let priv_pid = a.pid;
        if st.telnet {
            // inetd's telnetd (via tcpd), and login, which stays as the shell's parent.
            a.args = "/usr/sbin/telnetd".into();
            a.comm = "telnetd".into();
            a.stat = "S";
            v.push(a);
            let mut l = proc(
                s.sshd + 1,
                priv_pid,
                "root",
                "",
                10_428,
                4_012,
                "Ss",
                start,
                0,
            );
            l.args = format!("/bin/login -p -h {}", st.src);
            l.comm = "login".into();
            l.tty = tty.into();
            v.push(l);
        } else if user == "root" {
            // Without privilege separation for root, sshd shows one process.
            a.args = format!("sshd: {sess}");
            v.push(a);
        } else {
            v.push(a);
            v.push(proc(
                s.sshd + 1,
                priv_pid,
                user,
                &format!("sshd: {sess}"),
                17_960,
                6_436,
                "S",
                start,
                0,
            ));
        }
        let shell_parent = if user == "root" && !st.telnet {
            priv_pid
        } else {
            s.sshd + 1
        };
        let mut sh = proc(
            s.shell,
            shell_parent,
            user,
            if st.tty { "-bash" } else { "bash -c" },
            7_204,
            3_976,
            if st.telnet { "S" } else { "Ss" },
            start,
            0,
        );
        sh.uid = st.uid;
        sh.comm = "bash".into();
        sh.tty = tty.into();
        v.push(sh);
        if let Some((pid, args)) = me {
            let mut c = proc(
                pid,
                s.shell,
                user,
                args,
                11_084,
                4_400,
                if st.tty { "R+" } else { "R" },
                st.now,
                0,
            );
            c.uid = st.uid;
            c.tty = tty.into();
            v.push(c);
        }
    }
    v
}

/// `START`/`STIME`: the time today, `Mon DD` this year, else the year.
fn ps_start(st: &State, t: i64) -> String {
    let now = local(st, st.now);
    let tm = local(st, t);
    if st.now - t < 86_400 {
        format!("{:02}:{:02}", tm.hour, tm.min)
    } else if tm.year == now.year {
        format!("{}{:02}", MONTHS[(tm.month - 1) as usize], tm.day)
    } else {
        tm.year.to_string()
    }
}

pub(super) fn ps(st: &State, args: &[String]) -> Out {
    let words: Vec<&str> = args.iter().map(String::as_str).collect();
    let flags: String = words.iter().map(|a| a.trim_start_matches('-')).collect();
    let bsd = words.iter().any(|a| !a.starts_with('-')) && flags.contains('u');
    let full = words.iter().any(|a| a.starts_with('-')) && flags.contains('f');
    let all =
        flags.contains('a') || flags.contains('e') || flags.contains('x') || flags.contains('A');
    let me_args = clamp(
        &std::iter::once("ps")
            .chain(words.iter().copied())
            .collect::<Vec<_>>()
            .join(" "),
        200,
    );
    let me_pid = st.profile.node.alloc_pids(st.now, 1);
    let procs = processes(st, Some((me_pid, &me_args)));
    let mem_total = persona(st).mem_kib.max(1) as f64;
    let tty = tty_name(st);
    let mut o = Out::default();
    // Without options: this session's shell and what it runs.
    let shell = st.fs.pids().map_or(0, |s| s.shell);
    let mine: Vec<&Proc> = procs
        .iter()
        .filter(|p| all || (p.tty == tty && p.pid >= shell))
        .collect();
    if bsd || (all && !full && flags.contains('u')) {
        o.line("USER         PID %CPU %MEM    VSZ   RSS TTY      STAT START   TIME COMMAND");
        for p in mine {
            let mem = p.rss as f64 * 100.0 / mem_total;
            o.line(&format!(
                "{:<8} {:>7} {:>4} {:>4} {:>6} {:>5} {:<8} {:<4} {:>5} {:>6} {}",
                p.user,
                p.pid,
                "0.0",
                format!("{mem:.1}"),
                p.vsz,
                p.rss,
                p.tty,
                p.stat,
                ps_start(st, p.start),
                format!("{}:{:02}", p.cpu / 60, p.cpu % 60),
                p.args
            ));
        }
    } else if full {
        o.line("UID          PID    PPID  C STIME TTY          TIME CMD");
        for p in mine {
            o.line(&format!(
                "{:<8} {:>7} {:>7} {:>2} {:<5} {:<8} {:02}:{:02}:{:02} {}",
                p.user,
                p.pid,
                p.ppid,
                0,
                ps_start(st, p.start),
                p.tty,
                p.cpu / 3600,
                (p.cpu / 60) % 60,
                p.cpu % 60,
                p.args
            ));
        }
    } else {
        o.line("    PID TTY          TIME CMD");
        for p in mine {
            o.line(&format!(
                "{:>7} {:<8} {:02}:{:02}:{:02} {}",
                p.pid,
                p.tty,
                p.cpu / 3600,
                (p.cpu / 60) % 60,
                p.cpu % 60,
                p.comm
            ));
        }
    }
    o
}
