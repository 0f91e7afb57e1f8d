//! The commands that describe the machine — `uname`, `hostname`, `uptime`, `w`, `who`,
//! `ps`, `free`, `df`, `nproc`, `lscpu`, `date` — and the login banner, all read from the
//! node's [`Persona`], so that they agree with each other and with `/proc`, and differ
//! from every other node's.
//!
//! The session's processes (its sshd and shell) get PIDs from the node's counter when
//! the session runs its first line; every line and every `ps` takes a fresh one, so
//! PIDs only grow, across sessions too.

mod clock;
mod procs;

use super::State;
use super::commands::Out;
use crate::persona::Persona;
use clock::{ctime, local, strftime};
use honeybee_proto::event::clamp;
pub(crate) use procs::processes;
use std::fmt::Write as _;

/// A process as `ps` and `/proc/<pid>` show it.
#[derive(Debug, Clone)]
pub(crate) struct Proc {
    pub pid: u32,
    pub ppid: u32,
    pub uid: u32,
    /// As `ps` prints it (names over 8 characters end in `+`).
    pub user: String,
    /// `comm`: the executable's name, at most 15 characters.
    pub comm: String,
    /// The command line (`[kthreadd]` for kernel threads, which have none).
    pub args: String,
    pub tty: String,
    pub stat: &'static str,
    /// Unix seconds.
    pub start: i64,
    pub vsz: u64,
    pub rss: u64,
    /// CPU seconds used.
    pub cpu: u64,
}

impl Proc {
    pub(crate) fn kernel_thread(&self) -> bool {
        self.args.starts_with('[')
    }
}

/// The PIDs of one session, handed out on its first line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SessionPids {
    /// `sshd: user [priv]`; the user's sshd is the next one.
    pub sshd: u32,
    pub shell: u32,
    /// The newest PID of this session (its last command line).
    pub line: u32,
}

/// Before each command line: PIDs for the session (first line) and the line, then the
/// session's `/proc` brought up to date with the clock.
pub(super) fn before_line(st: &mut State) {
    let node = std::sync::Arc::clone(&st.profile.node);
    let pids = match st.fs.pids() {
        Some(mut p) => {
            p.line = node.alloc_pids(st.now, 1);
            p
        }
        None => {
            let first = node.alloc_pids(st.login_time, 3);
            SessionPids {
                sshd: first,
                shell: first + 2,
                line: node.alloc_pids(st.now, 1),
            }
        }
    };
    st.fs.set_pids(pids);
    let procs = processes(st, None);
    st.fs.refresh(st.now, &procs);
}

fn persona(st: &State) -> &Persona {
    st.profile.node.persona()
}

// ---- uname, hostname, nproc, lscpu ------------------------------------------------------

fn uname(st: &State, args: &[String]) -> Out {
    let mut want = Vec::new();
    for a in args {
        match a.as_str() {
            "--all" => want.push('a'),
            "--kernel-name" => want.push('s'),
            "--nodename" => want.push('n'),
            "--kernel-release" => want.push('r'),
            "--kernel-version" => want.push('v'),
            "--machine" => want.push('m'),
            "--processor" => want.push('p'),
            "--hardware-platform" => want.push('i'),
            "--operating-system" => want.push('o'),
            a if a.starts_with('-') && !a.starts_with("--") => {
                for c in a[1..].chars() {
                    if !"asnrvmpio".contains(c) {
                        return Out::fail(
                            1,
                            format!(
                                "uname: invalid option -- '{c}'\nTry 'uname --help' for more information.\n"
                            ),
                        );
                    }
                    want.push(c);
                }
            }
            a => {
                return Out::fail(
                    1,
                    format!(
                        "uname: extra operand '{}'\nTry 'uname --help' for more information.\n",
                        clamp(a, 200)
                    ),
                );
            }
        }
    }
    if want.is_empty() {
        want.push('s');
    }
    let all = want.contains(&'a');
    let k = persona(st).kernel;
    let (release, version) = (k.release(), k.version());
    let mut parts = Vec::new();
    for (c, v) in [
        ('s', "Linux"),
        ('n', st.profile.hostname.as_str()),
        ('r', release.as_str()),
        ('v', version.as_str()),
        ('m', "x86_64"),
        ('p', "unknown"),
        ('i', "unknown"),
        ('o', "GNU/Linux"),
    ] {
        // -a leaves out -p and -i when they are unknown, as coreutils does.
        if want.contains(&c) || (all && c != 'p' && c != 'i') {
            parts.push(v);
        }
    }
    Out::ok(format!("{}\n", parts.join(" ")))
}

fn hostname(st: &State, args: &[String]) -> Out {
    let p = persona(st);
    match args.first().map(String::as_str) {
        None | Some("-s" | "--short" | "-f" | "--fqdn" | "--long" | "-A" | "--all-fqdns") => {
            let h = &st.profile.hostname;
            let short = args.first().is_some_and(|a| a == "-s" || a == "--short");
            let h = if short {
                h.split('.').next().unwrap_or(h)
            } else {
                h
            };
            Out::ok(format!("{h}\n"))
        }
        Some("-d" | "--domain") => Out::ok("\n"),
        Some("-I" | "--all-ip-addresses") => Out::ok(format!("{} \n", p.net.addr)),
        Some("-i" | "--ip-address") => Out::ok("127.0.1.1\n"),
        Some(_) if st.uid != 0 => {
            Out::fail(1, "hostname: you must be root to change the host name\n")
        }
        Some(_) => Out::default(),
    }
}

fn threads_per_core(p: &Persona) -> u32 {
    if p.platform == crate::persona::Platform::Aws && p.cpus >= 2 {
        2
    } else {
        1
    }
}

/// `/proc/cpuinfo`.
pub(crate) fn cpuinfo(p: &Persona) -> String {
    let c = p.cpu;
    let tpc = threads_per_core(p);
    let mut out = String::new();
    let mhz: f64 = c.mhz.parse().unwrap_or(2000.0);
    let bogomips = (mhz * 200.0).floor() / 100.0;
    for i in 0..p.cpus {
        let _ = write!(
            out,
            "processor\t: {i}\nvendor_id\t: {}\ncpu family\t: {}\nmodel\t\t: {}\nmodel name\t: {}\nstepping\t: {}\nmicrocode\t: {}\ncpu MHz\t\t: {}\ncache size\t: {} KB\nphysical id\t: 0\nsiblings\t: {}\ncore id\t\t: {}\ncpu cores\t: {}\napicid\t\t: {i}\ninitial apicid\t: {i}\nfpu\t\t: yes\nfpu_exception\t: yes\ncpuid level\t: {}\nwp\t\t: yes\nflags\t\t: {}\nbugs\t\t: {}\nbogomips\t: {bogomips:.2}\n{}clflush size\t: 64\ncache_alignment\t: 64\naddress sizes\t: {} bits physical, 48 bits virtual\npower management:\n\n",
            if c.intel {
                "GenuineIntel"
            } else {
                "AuthenticAMD"
            },
            c.family,
            c.model,
            c.name,
            c.stepping,
            if c.intel { "0xffffffff" } else { "0x1000065" },
            c.mhz,
            c.cache_kb,
            p.cpus,
            i / tpc,
            p.cpus / tpc,
            if c.intel { 13 } else { 16 },
            if c.intel { INTEL_FLAGS } else { AMD_FLAGS },
            if c.intel { INTEL_BUGS } else { AMD_BUGS },
            if c.intel {
                ""
            } else {
                "TLB size\t: 2560 4K pages\n"
            },
            c.phys_bits,
        );
    }
    out
}

const INTEL_FLAGS: &str = "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush mmx fxsr sse sse2 ht syscall nx pdpe1gb rdtscp lm constant_tsc rep_good nopl xtopology nonstop_tsc cpuid tsc_known_freq pni pclmulqdq ssse3 fma cx16 pcid sse4_1 sse4_2 x2apic movbe popcnt tsc_deadline_timer aes xsave avx f16c rdrand hypervisor lahf_lm abm 3dnowprefetch invpcid_single pti fsgsbase bmi1 hle avx2 smep bmi2 erms invpcid rtm rdseed adx xsaveopt";
const INTEL_BUGS: &str = "cpu_meltdown spectre_v1 spectre_v2 spec_store_bypass l1tf mds swapgs taa itlb_multihit mmio_stale_data";
const AMD_FLAGS: &str = "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush mmx fxsr sse sse2 ht syscall nx mmxext fxsr_opt pdpe1gb rdtscp lm constant_tsc rep_good nopl nonstop_tsc cpuid extd_apicid tsc_known_freq pni pclmulqdq ssse3 fma cx16 sse4_1 sse4_2 x2apic movbe popcnt aes xsave avx f16c rdrand hypervisor lahf_lm cmp_legacy cr8_legacy abm sse4a misalignsse 3dnowprefetch topoext ssbd ibrs ibpb stibp vmmcall fsgsbase bmi1 avx2 smep bmi2 rdseed adx smap clflushopt sha_ni xsaveopt xsavec xgetbv1 clzero xsaveerptr arat npt nrip_save umip rdpid";
const AMD_BUGS: &str =
    "sysret_ss_attrs null_seg spectre_v1 spectre_v2 spec_store_bypass retbleed smt_rsb srso";

fn lscpu(st: &State) -> Out {
    let p = persona(st);
    let c = p.cpu;
    let tpc = threads_per_core(p);
    let mhz: f64 = c.mhz.parse().unwrap_or(2000.0);
    // util-linux writes a run of two CPUs as "0,1" and longer runs as ranges.
    let list = match p.cpus {
        1 => "0".to_owned(),
        2 => "0,1".to_owned(),
        n => format!("0-{}", n - 1),
    };
    let mut o = Out::default();
    let lines = [
        ("Architecture:", "x86_64".to_owned()),
        ("  CPU op-mode(s):", "32-bit, 64-bit".into()),
        (
            "  Address sizes:",
            format!("{} bits physical, 48 bits virtual", c.phys_bits),
        ),
        ("  Byte Order:", "Little Endian".into()),
        ("CPU(s):", p.cpus.to_string()),
        ("  On-line CPU(s) list:", list),
        (
            "Vendor ID:",
            if c.intel {
                "GenuineIntel"
            } else {
                "AuthenticAMD"
            }
            .into(),
        ),
        ("  Model name:", c.name.into()),
        ("    CPU family:", c.family.to_string()),
        ("    Model:", c.model.to_string()),
        ("    Thread(s) per core:", tpc.to_string()),
        ("    Core(s) per socket:", (p.cpus / tpc).to_string()),
        ("    Socket(s):", "1".into()),
        ("    Stepping:", c.stepping.to_string()),
        (
            "    BogoMIPS:",
            format!("{:.2}", (mhz * 200.0).floor() / 100.0),
        ),
        (
            "    Flags:",
            if c.intel { INTEL_FLAGS } else { AMD_FLAGS }.into(),
        ),
        ("Virtualization features:", String::new()),
        ("  Hypervisor vendor:", p.platform.hypervisor().into()),
        ("  Virtualization type:", "full".into()),
    ];
    for (k, v) in lines {
        o.line(&format!("{k:<25}{v}").replace("features:                ", "features: "));
    }
    o
}

// ---- uptime, w, who -------------------------------------------------------------------

fn uptime_line(st: &State, users: usize) -> String {
    let p = persona(st);
    let up = p.uptime(st.now);
    let tm = local(st, st.now);
    let mut s = format!(" {:02}:{:02}:{:02} up ", tm.hour, tm.min, tm.sec);
    let days = up / 86_400;
    if days > 0 {
        let _ = write!(s, "{days} day{}, ", if days == 1 { "" } else { "s" });
    }
    let (h, m) = ((up % 86_400) / 3_600, (up % 3_600) / 60);
    if h > 0 {
        let _ = write!(s, "{h:2}:{m:02}, ");
    } else {
        let _ = write!(s, "{m} min, ");
    }
    let l = p.load(st.now);
    let _ = write!(
        s,
        "{users:2} user{},  load average: {:.2}, {:.2}, {:.2}",
        // procps 4.0.2 says "0 user" (its plural form is chosen for n > 1 only).
        if users <= 1 { "" } else { "s" },
        l[0],
        l[1],
        l[2]
    );
    s
}

fn uptime(st: &State, args: &[String]) -> Out {
    let p = persona(st);
    if args.iter().any(|a| a == "-p" || a == "--pretty") {
        let up = p.uptime(st.now);
        let mut parts = Vec::new();
        let units = [
            (365 * 86_400, "year"),
            (7 * 86_400, "week"),
            (86_400, "day"),
            (3_600, "hour"),
            (60, "minute"),
        ];
        let mut rest = up;
        for (size, name) in units {
            let n = rest / size;
            rest %= size;
            if n > 0 {
                parts.push(format!("{n} {name}{}", if n == 1 { "" } else { "s" }));
            }
        }
        if parts.is_empty() {
            parts.push("0 minutes".into());
        }
        return Out::ok(format!("up {}\n", parts.join(", ")));
    }
    if args.iter().any(|a| a == "-s" || a == "--since") {
        let tm = local(st, p.boot_time);
        return Out::ok(format!("{}\n", strftime("%Y-%m-%d %H:%M:%S", &tm)));
    }
    if let Some(a) = args.iter().find(|a| a.starts_with('-')) {
        return Out::fail(
            1,
            format!(
                "uptime: invalid option -- '{}'\n\nUsage:\n uptime [options]\n",
                a.chars().nth(1).unwrap_or('-')
            ),
        );
    }
    Out::ok(format!("{}\n", uptime_line(st, logged_in(st))))
}

/// Sessions utmp lists: this one only when it has a terminal (sshd writes no utmp entry
/// for an exec request, so `w` from one shows nobody, as on a real box).
fn logged_in(st: &State) -> usize {
    usize::from(st.tty)
}

fn tty_name(st: &State) -> &'static str {
    if st.tty { "pts/0" } else { "?" }
}

fn w(st: &State) -> Out {
    let login = local(st, st.login_time);
    let mut o = Out::default();
    o.line(&uptime_line(st, logged_in(st)));
    o.line("USER     TTY      FROM             LOGIN@   IDLE   JCPU   PCPU WHAT");
    if logged_in(st) == 0 {
        return o;
    }
    o.line(&format!(
        "{:<8} pts/0    {:<16} {:02}:{:02}    0.00s  0.02s  0.00s w",
        clamp(&st.user, 8),
        clamp(&st.src.to_string(), 16),
        login.hour,
        login.min
    ));
    o
}

fn who(st: &State, args: &[String]) -> Out {
    let p = persona(st);
    if args.iter().any(|a| a == "-b" || a == "--boot") {
        let tm = local(st, p.boot_time);
        return Out::ok(format!(
            "         system boot  {}\n",
            strftime("%Y-%m-%d %H:%M", &tm)
        ));
    }
    if args.iter().any(|a| a == "-r" || a == "--runlevel") {
        let tm = local(st, p.boot_time + 9);
        return Out::ok(format!(
            "         run-level 5  {}\n",
            strftime("%Y-%m-%d %H:%M", &tm)
        ));
    }
    if logged_in(st) == 0 {
        return Out::default();
    }
    let tm = local(st, st.login_time);
    Out::ok(format!(
        "{:<8} pts/0        {} ({})\n",
        clamp(&st.user, 8),
        strftime("%Y-%m-%d %H:%M", &tm),
        st.src
    ))
}

/// What an interactive login prints before the first prompt (without the motd and the
/// prompt): the kernel line and `Last login:`, the previous login of this user on this
/// node when there was one (as lastlog keeps it), else the persona's last admin login.
pub(super) fn login_banner(st: &State) -> (String, String) {
    let p = persona(st);
    let k = p.kernel;
    let head = format!(
        "Linux {} {} {} x86_64\n",
        st.profile.hostname,
        k.release(),
        k.version()
    );
    let (at, from) = st
        .profile
        .node
        .swap_last_login(&st.user, st.login_time, st.src)
        .unwrap_or_else(|| {
            (
                st.login_time - p.last_login_ago,
                std::net::IpAddr::V4(p.last_login_src),
            )
        });
    let tail = if st.telnet {
        // login(1)'s line comes from pam_lastlog: zone and terminal too.
        let tm = local(st, at);
        let when = strftime("%a %b %e %H:%M:%S %Z %Y", &tm);
        format!("Last login: {when} from {from} on pts/0\n")
    } else {
        format!("Last login: {} from {from}\n", ctime(&local(st, at)))
    };
    (head, tail)
}

// ---- memory and disk ------------------------------------------------------------------

fn human_kib(kib: u64, binary_suffix: bool) -> String {
    let units = if binary_suffix {
        ["Ki", "Mi", "Gi", "Ti"]
    } else {
        ["K", "M", "G", "T"]
    };
    if kib == 0 {
        return if binary_suffix {
            "0B".into()
        } else {
            "0".into()
        };
    }
    let mut v = kib as f64;
    let mut i = 0;
    while v >= 1024.0 && i < units.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if v < 10.0 {
        format!("{:.1}{}", (v * 10.0).ceil() / 10.0, units[i])
    } else {
        format!("{:.0}{}", v.ceil(), units[i])
    }
}

/// What procps 4.0 (`free`, `top`) makes of [`meminfo`]: total, used (total minus
/// available), free, shared (Shmem), buff/cache (Buffers + Cached + SReclaimable) and
/// available, in KiB.
pub(crate) fn procps_memory(p: &Persona) -> [u64; 6] {
    let [total, _, free, shared, cache, available] = p.memory();
    let (buffers, cached, reclaimable) = cache_parts(cache);
    [
        total,
        total.saturating_sub(available),
        free,
        shared,
        buffers + cached + reclaimable,
        available,
    ]
}

/// Buffers, Cached and SReclaimable of `/proc/meminfo` for the persona's page cache.
fn cache_parts(cache: u64) -> (u64, u64, u64) {
    let buffers = cache / 18;
    let slab = cache / 9;
    (buffers, cache - buffers - slab, slab * 2 / 3)
}

/// procps' `free -h`: powers of 1024 with `Ki`… suffixes, one rounded decimal below 10,
/// else the whole part.
fn free_human(kib: u64) -> String {
    if kib == 0 {
        return "0B".into();
    }
    let units = ["Ki", "Mi", "Gi", "Ti", "Pi"];
    let mut v = kib as f64;
    let mut i = 0;
    while v >= 1024.0 && i < units.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    let one = format!("{v:.1}");
    if one.len() <= 3 {
        format!("{one}{}", units[i])
    } else {
        format!("{}{}", v.trunc() as u64, units[i])
    }
}

fn free(st: &State, args: &[String]) -> Out {
    let mem = procps_memory(persona(st));
    let flag = args.first().map(String::as_str).unwrap_or("");
    let fmt = |kib: u64| -> String {
        match flag {
            "-m" | "--mega" | "--mebi" => (kib / 1024).to_string(),
            "-g" | "--giga" | "--gibi" => (kib / (1024 * 1024)).to_string(),
            "-b" | "--bytes" => (kib * 1024).to_string(),
            "-h" | "--human" => free_human(kib),
            _ => kib.to_string(),
        }
    };
    let mut o = Out::default();
    o.line("               total        used        free      shared  buff/cache   available");
    let mut line = String::from("Mem:    ");
    for v in mem {
        let _ = write!(line, " {:>11}", fmt(v));
    }
    o.line(line.trim_end());
    o.line(&format!(
        "Swap:    {:>11} {:>11} {:>11}",
        fmt(0),
        fmt(0),
        fmt(0)
    ));
    o
}

/// `/proc/meminfo`, the same numbers as `free`.
pub(crate) fn meminfo(p: &Persona) -> String {
    let [total, used, free, shared, cache, available] = p.memory();
    let (buffers, cached, _) = cache_parts(cache);
    let slab = cache / 9;
    let mut s = String::new();
    for (k, v) in [
        ("MemTotal", total),
        ("MemFree", free),
        ("MemAvailable", available),
        ("Buffers", buffers),
        ("Cached", cached),
        ("SwapCached", 0),
        ("Active", used / 2 + cached / 3),
        ("Inactive", cached / 2 + used / 3),
        ("Active(anon)", used / 3),
        ("Inactive(anon)", used / 4),
        ("Active(file)", cached / 3),
        ("Inactive(file)", cached / 2),
        ("Unevictable", 0),
        ("Mlocked", 0),
        ("SwapTotal", 0),
        ("SwapFree", 0),
        ("Zswap", 0),
        ("Zswapped", 0),
        ("Dirty", 164),
        ("Writeback", 0),
        ("AnonPages", used / 2),
        ("Mapped", used / 5),
        ("Shmem", shared),
        ("KReclaimable", slab * 2 / 3),
        ("Slab", slab),
        ("SReclaimable", slab * 2 / 3),
        ("SUnreclaim", slab / 3),
        ("KernelStack", 2_400 + u64::from(p.cpus) * 300),
        ("PageTables", used / 60),
        ("SecPageTables", 0),
        ("NFS_Unstable", 0),
        ("Bounce", 0),
        ("WritebackTmp", 0),
        ("CommitLimit", total / 2),
        ("Committed_AS", used * 2),
        ("VmallocTotal", 34_359_738_367),
        ("VmallocUsed", 14_000 + u64::from(p.cpus) * 1_000),
        ("VmallocChunk", 0),
        ("Percpu", u64::from(p.cpus) * 1_024),
        ("HardwareCorrupted", 0),
        ("AnonHugePages", 0),
        ("ShmemHugePages", 0),
        ("ShmemPmdMapped", 0),
        ("FileHugePages", 0),
        ("FilePmdMapped", 0),
    ] {
        let _ = writeln!(s, "{:<16}{v:>8} kB", format!("{k}:"));
    }
    for (k, v) in [
        ("HugePages_Total", 0),
        ("HugePages_Free", 0),
        ("HugePages_Rsvd", 0),
        ("HugePages_Surp", 0),
    ] {
        let _ = writeln!(s, "{:<16}{v:>8}", format!("{k}:"));
    }
    let _ = writeln!(s, "{:<16}{:>8} kB", "Hugepagesize:", 2048);
    let _ = writeln!(s, "{:<16}{:>8} kB", "Hugetlb:", 0);
    let _ = writeln!(s, "{:<16}{:>8} kB", "DirectMap4k:", total / 20);
    let _ = writeln!(s, "{:<16}{:>8} kB", "DirectMap2M:", total - total / 20);
    s
}

/// The mounted filesystems: (device, 1K-blocks, used, mount point).
pub(crate) fn filesystems(p: &Persona) -> Vec<(String, u64, u64, &'static str)> {
    let mem = p.mem_kib;
    let mut v = vec![
        ("udev".to_owned(), mem / 2 - 4_000, 0, "/dev"),
        ("tmpfs".to_owned(), mem / 10, 448 + mem / 8000, "/run"),
        (p.platform.root_device(), p.disk_kib, p.disk_used_kib, "/"),
        ("tmpfs".to_owned(), mem / 2, 0, "/dev/shm"),
        ("tmpfs".to_owned(), 5_120, 0, "/run/lock"),
    ];
    if matches!(
        p.platform,
        crate::persona::Platform::Aws | crate::persona::Platform::Kvm
    ) {
        let dev = if p.platform == crate::persona::Platform::Aws {
            "/dev/nvme0n1p15".to_owned()
        } else {
            format!("/dev/{}15", p.platform.disk())
        };
        v.push((dev, 126_678, 11_840, "/boot/efi"));
    }
    v
}

fn df(st: &State, args: &[String]) -> Out {
    let p = persona(st);
    let mut fss = filesystems(p);
    fss.push(("tmpfs".to_owned(), p.mem_kib / 10, 0, "/run/user/0"));
    let human = args.iter().any(|a| a.starts_with('-') && a.contains('h'));
    let mut o = Out::default();
    if human {
        o.line("Filesystem       Size  Used Avail Use% Mounted on");
    } else {
        o.line("Filesystem      1K-blocks    Used Available Use% Mounted on");
    }
    for (name, size, used, mount) in fss {
        // ext4 keeps 5% for root.
        let reserved = if mount == "/" { size / 20 } else { 0 };
        let avail = size.saturating_sub(used + reserved);
        let pct = (used * 100).div_ceil((used + avail).max(1));
        if human {
            o.line(&format!(
                "{name:<16} {:>4} {:>5} {:>5} {:>3}% {mount}",
                human_kib(size, false),
                human_kib(used, false),
                human_kib(avail, false),
                pct
            ));
        } else {
            o.line(&format!(
                "{name:<15} {size:>9} {used:>7} {avail:>9} {pct:>3}% {mount}"
            ));
        }
    }
    o
}

// ---- network --------------------------------------------------------------------------

/// The IPv6 link-local address of a MAC (EUI-64), written as iproute2 writes it (RFC 5952
/// compression, which `Ipv6Addr`'s Display follows: `02:00:…` gives `fe80::ff:fe…`).
fn link_local(mac: &[u8; 6]) -> String {
    let b = [
        mac[0] ^ 0x02,
        mac[1],
        mac[2],
        0xff,
        0xfe,
        mac[3],
        mac[4],
        mac[5],
    ];
    let group = |i: usize| u16::from_be_bytes([b[i], b[i + 1]]);
    std::net::Ipv6Addr::new(0xfe80, 0, 0, 0, group(0), group(2), group(4), group(6)).to_string()
}

const IP_USAGE: &str = "Usage: ip [ OPTIONS ] OBJECT { COMMAND | help }\n       ip [ -force ] -batch filename\nwhere  OBJECT := { address | addrlabel | amt | fou | help | ila | ioam | l2tp |\n                   link | macsec | maddress | monitor | mptcp | mroute | mrule |\n                   neighbor | neighbour | netconf | netns | nexthop | ntable |\n                   ntbl | route | rule | sr | tap | tcpmetrics |\n                   token | tunnel | tuntap | vrf | xfrm }\n       OPTIONS := { -V[ersion] | -s[tatistics] | -d[etails] | -r[esolve] |\n                    -h[uman-readable] | -iec | -j[son] | -p[retty] |\n                    -f[amily] { inet | inet6 | mpls | bridge | link } |\n                    -4 | -6 | -M | -B | -0 |\n                    -l[oops] { maximum-addr-flush-attempts } | -br[ief] |\n                    -o[neline] | -t[imestamp] | -ts[hort] | -b[atch] [filename] |\n                    -rc[vbuf] [size] | -n[etns] name | -N[umeric] | -a[ll] |\n                    -c[olor]}\n";

/// `ip` (iproute2 6.1): `addr`, `link`, `route` and `neigh`.
fn ip(st: &State, args: &[String]) -> Out {
    let p = persona(st);
    let n = &p.net;
    let words: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let mtu = if p.platform == crate::persona::Platform::Aws {
        9001
    } else {
        1500
    };
    let qdisc = if p.cpus > 1 { "mq" } else { "fq_codel" };
    let mac = crate::persona::mac_string(&n.mac);
    // `ip link` names the mode; `ip addr` does not.
    let lo_head = |mode: &str| {
        format!(
            "1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 qdisc noqueue state UNKNOWN {mode}group default qlen 1000\n    link/loopback 00:00:00:00:00:00 brd 00:00:00:00:00:00\n"
        )
    };
    let nic_head = |mode: &str| {
        format!(
            "2: {}: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu {mtu} qdisc {qdisc} state UP {mode}group default qlen 1000\n    link/ether {mac} brd ff:ff:ff:ff:ff:ff\n",
            n.iface
        )
    };
    match words.first().copied() {
        None => Out::fail(255, IP_USAGE),
        Some("a" | "addr" | "address") => {
            // The DHCP lease counts down from an hour, renewed at half-time.
            let lft = 3_600 - (st.now - p.boot_time).rem_euclid(1_800);
            let mut text = lo_head("");
            text.push_str("    inet 127.0.0.1/8 scope host lo\n       valid_lft forever preferred_lft forever\n    inet6 ::1/128 scope host \n       valid_lft forever preferred_lft forever\n");
            text.push_str(&nic_head(""));
            let _ = write!(
                text,
                "    inet {}/{} brd {} scope global dynamic {}\n       valid_lft {lft}sec preferred_lft {lft}sec\n    inet6 {}/64 scope link \n       valid_lft forever preferred_lft forever\n",
                n.addr,
                n.prefix,
                n.broadcast(),
                n.iface,
                link_local(&n.mac)
            );
            Out::ok(text)
        }
        Some("l" | "link") => Out::ok(lo_head("mode DEFAULT ") + &nic_head("mode DEFAULT ")),
        Some("r" | "ro" | "route") => Out::ok(format!(
            "default via {} dev {} \n{}/{} dev {} proto kernel scope link src {} \n",
            n.gateway,
            n.iface,
            n.network(),
            n.prefix,
            n.iface,
            n.addr
        )),
        Some("n" | "neigh" | "neighbor" | "neighbour") => Out::ok(format!(
            "{} dev {} lladdr {} REACHABLE\n",
            n.gateway,
            n.iface,
            crate::persona::mac_string(&n.gateway_mac)
        )),
        Some(obj) => Out::fail(
            255,
            format!(
                "Object \"{}\" is unknown, try \"ip help\".\n",
                clamp(obj, 100)
            ),
        ),
    }
}

// ---- dispatch -------------------------------------------------------------------------

/// Runs `name` if it is one of the system-information commands.
pub(super) fn run(st: &mut State, name: &str, args: &[String]) -> Option<Out> {
    Some(match name {
        "uname" => uname(st, args),
        "hostname" => hostname(st, args),
        "uptime" => uptime(st, args),
        "w" => w(st),
        "who" => who(st, args),
        "ps" => procs::ps(st, args),
        "free" => free(st, args),
        "df" => df(st, args),
        "nproc" => Out::ok(format!("{}\n", persona(st).cpus)),
        "lscpu" => lscpu(st),
        "date" => clock::date(st, args),
        "ip" => ip(st, args),
        "pgrep" | "pkill" => pgrep(st, name, args),
        "pidof" => pidof(st, args),
        _ => return None,
    })
}

/// procps' `pgrep`/`pkill`: an extended regex over the process name (`-f`: the whole
/// command line), `-x` whole, `-l`/`-a` names or command lines, `-c` a count, `-u` a
/// user, `-n`/`-o` newest/oldest, the signal for pkill (`-9`, `-KILL`, `--signal`). The
/// matching processes are the machine's table; pkill "signals" them and says nothing.
fn pgrep(st: &State, name: &str, args: &[String]) -> Out {
    let mut full = false;
    let (mut exact, mut long, mut all_args, mut count, mut newest, mut oldest) =
        (false, false, false, false, false, false);
    let mut user: Option<String> = None;
    let mut pattern: Option<&str> = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-u" | "-U" | "--euid" | "--uid" => user = it.next().cloned(),
            "-s" | "-g" | "-G" | "-P" | "-t" | "--signal" => {
                it.next();
            }
            "-f" | "--full" => full = true,
            "-x" | "--exact" => exact = true,
            "-l" | "--list-name" => long = true,
            "-a" | "--list-full" => all_args = true,
            "-c" | "--count" => count = true,
            "-n" | "--newest" => newest = true,
            "-o" | "--oldest" => oldest = true,
            a if a.starts_with('-') && a.len() > 1 => {
                let flags = &a[1..];
                // pkill -9, -KILL, -SIGTERM: a signal, not flags.
                let signal = name == "pkill"
                    && (flags.chars().all(|c| c.is_ascii_digit())
                        || flags.chars().all(|c| c.is_ascii_uppercase()));
                if !signal {
                    for c in flags.chars() {
                        match c {
                            'f' => full = true,
                            'x' => exact = true,
                            'l' => long = true,
                            'a' => all_args = true,
                            'c' => count = true,
                            'n' => newest = true,
                            'o' => oldest = true,
                            'e' | 'i' | 'v' => {}
                            c => {
                                return Out::fail(
                                    2,
                                    format!(
                                        "{name}: invalid option -- '{c}'\nUsage:\n {name} [options] <pattern>\n\nSee the {name}(1) man page for more information\n"
                                    ),
                                );
                            }
                        }
                    }
                }
            }
            p => pattern = Some(p),
        }
    }
    if pattern.is_none() && user.is_none() {
        return Out::fail(
            2,
            format!(
                "{name}: no matching criteria specified\nTry `{name} --help' for more information.\n"
            ),
        );
    }
    let re = match pattern {
        Some(p) => {
            let p = if exact {
                format!("^(?:{p})$")
            } else {
                p.to_owned()
            };
            match regex::RegexBuilder::new(&p)
                .size_limit(1 << 20)
                .dfa_size_limit(1 << 20)
                .build()
            {
                Ok(r) => Some(r),
                Err(_) => {
                    return Out::fail(2, format!("{name}: invalid regular expression\n"));
                }
            }
        }
        None => None,
    };
    let mut hits: Vec<Proc> = processes(st, None)
        .into_iter()
        .filter(|p| {
            let hay = if full && !p.args.starts_with('[') {
                p.args.as_str()
            } else {
                p.comm.as_str()
            };
            re.as_ref().is_none_or(|r| r.is_match(hay))
                && user
                    .as_deref()
                    .is_none_or(|u| u == p.user || u.parse::<u32>() == Ok(p.uid))
        })
        .collect();
    if newest {
        hits.sort_by_key(|p| (p.start, p.pid));
        hits = hits.into_iter().last().into_iter().collect();
    } else if oldest {
        hits.sort_by_key(|p| (p.start, p.pid));
        hits.truncate(1);
    }
    let mut o = Out::default();
    if name == "pgrep" {
        if count {
            o.line(&hits.len().to_string());
        } else {
            for p in &hits {
                if all_args {
                    o.line(&format!("{} {}", p.pid, p.args));
                } else if long {
                    o.line(&format!("{} {}", p.pid, p.comm));
                } else {
                    o.line(&p.pid.to_string());
                }
            }
        }
    }
    if hits.is_empty() {
        o.status = 1;
    }
    o
}

/// `pidof NAME…`: the PIDs of programs of that name, newest first, on one line.
fn pidof(st: &State, args: &[String]) -> Out {
    let names: Vec<&str> = args
        .iter()
        .filter(|a| !a.starts_with('-'))
        .map(|a| a.rsplit('/').next().unwrap_or(a))
        .collect();
    let mut pids: Vec<u32> = processes(st, None)
        .into_iter()
        .filter(|p| {
            let argv0 = p.args.split_whitespace().next().unwrap_or("");
            let base = argv0
                .rsplit('/')
                .next()
                .unwrap_or(argv0)
                .trim_end_matches(':');
            !p.args.starts_with('[') && names.iter().any(|n| *n == base || *n == p.comm)
        })
        .map(|p| p.pid)
        .collect();
    pids.sort_unstable_by(|a, b| b.cmp(a));
    if pids.is_empty() {
        return Out {
            status: 1,
            ..Out::default()
        };
    }
    let list: Vec<String> = pids.iter().map(u32::to_string).collect();
    Out::ok(format!("{}\n", list.join(" ")))
}

/// `Mon Dec  7 02:55:46 2026` in the machine's zone (ctime(3), without its newline).
pub(crate) fn ctime_local(st: &State, t: i64) -> String {
    ctime(&local(st, t))
}

/// The file's local date for `ls -l`-style listings that want the machine's zone.
pub(crate) fn local_seconds(st: &State, t: i64) -> i64 {
    let tm = local(st, t);
    t + i64::from(tm.offset)
}

#[cfg(test)]
mod link_local_tests {
    use super::link_local;

    #[test]
    fn eui64_as_iproute2_writes_it() {
        assert_eq!(link_local(&[0x02, 0xfc, 0, 0, 0, 1]), "fe80::fc:ff:fe00:1");
        assert_eq!(
            link_local(&[0x52, 0x54, 0, 0x12, 0x34, 0x56]),
            "fe80::5054:ff:fe12:3456"
        );
        // A zero group after the prefix folds into the `::`.
        assert_eq!(
            link_local(&[0x02, 0x00, 0x5e, 0x10, 0x20, 0x30]),
            "fe80::5eff:fe10:2030"
        );
    }
}
