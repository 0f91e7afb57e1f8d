//! The applets of the router's BusyBox whose output differs from the GNU tools the
//! Debian shell emulates (`ls`, `ps`, `dd`, `wc`, `cat`'s errors, `uname`, `free`, `df`,
//! `mount`, `kill`, `wget`, `tftp`), and the applet table: where each is linked and
//! which the shell knows. Texts are BusyBox's own, checked against Debian's `busybox`
//! by `tests.rs`.

use super::Env;
use crate::services::shell::State;
use crate::services::shell::commands::{Ctx, Out, take};
use crate::services::shell::fs::{self, FsError, Kind, Node};

/// Where `busybox --install` put an applet's link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Where {
    Bin,
    Sbin,
    UsrBin,
    UsrSbin,
    /// Built in but not linked (`ash`'s own builtins that are applets too).
    Nowhere,
}

#[derive(Debug)]
pub(crate) struct Applet {
    pub name: &'static str,
    pub at: Where,
}

macro_rules! applets {
    ($($w:ident: $($n:literal)*;)*) => {
        &[$($(Applet { name: $n, at: Where::$w },)*)*]
    };
}

/// The firmware's applets, sorted as `busybox` lists them (byte order).
pub(crate) const APPLETS: &[Applet] = applets! {
    UsrBin: "[" "[[";
    Sbin: "arp";
    Bin: "ash";
    UsrBin: "awk" "basename";
    UsrSbin: "brctl";
    Bin: "cat" "chmod" "chown";
    UsrBin: "clear";
    Bin: "cp";
    UsrSbin: "crond";
    UsrBin: "cut";
    Bin: "date" "dd" "df";
    UsrBin: "dirname";
    Bin: "dmesg";
    UsrBin: "du";
    Bin: "echo" "egrep";
    UsrBin: "env" "expr";
    Bin: "false" "fgrep";
    UsrBin: "find" "free";
    Sbin: "getty";
    Bin: "grep" "gunzip" "gzip";
    Sbin: "halt";
    UsrBin: "head" "hexdump";
    Bin: "hostname";
    UsrBin: "id";
    Sbin: "ifconfig" "init" "insmod";
    Bin: "kill";
    UsrBin: "killall";
    Sbin: "klogd";
    Bin: "ln" "login";
    Sbin: "logread";
    Bin: "ls";
    Sbin: "lsmod";
    UsrBin: "md5sum";
    Sbin: "mdev";
    Bin: "mkdir" "mknod";
    UsrBin: "more";
    Bin: "mount" "mv" "netstat";
    UsrBin: "nohup" "nslookup";
    Bin: "pidof" "ping" "ping6";
    Sbin: "poweroff";
    UsrBin: "printf";
    Bin: "ps" "pwd";
    Sbin: "reboot";
    UsrBin: "reset";
    Bin: "rm" "rmdir";
    Sbin: "rmmod" "route";
    Bin: "sed";
    UsrBin: "seq";
    Bin: "sh" "sleep";
    UsrBin: "sort";
    Bin: "stty" "sync";
    Sbin: "syslogd";
    UsrBin: "tail" "tee" "telnet";
    UsrSbin: "telnetd";
    UsrBin: "test" "tftp" "top";
    Bin: "touch";
    UsrBin: "tr" "traceroute";
    Bin: "true";
    Sbin: "udhcpc";
    Bin: "umount" "uname";
    UsrBin: "uniq" "uptime";
    Sbin: "vconfig";
    Bin: "vi";
    UsrBin: "wc" "wget" "which" "whoami" "xargs" "yes";
    Bin: "zcat";
};

pub(crate) fn is_applet(name: &str) -> bool {
    APPLETS.iter().any(|a| a.name == name)
}

/// ash's builtins (`help` lists them), which run without an applet.
pub(crate) const ASH_BUILTINS: &[&str] = &[
    ".", ":", "[", "[[", "alias", "bg", "break", "cd", "chdir", "command", "continue", "echo",
    "eval", "exec", "exit", "export", "false", "fg", "getopts", "hash", "help", "history", "jobs",
    "kill", "let", "local", "printf", "pwd", "read", "readonly", "return", "set", "shift",
    "source", "test", "times", "trap", "true", "type", "ulimit", "umask", "unalias", "unset",
    "wait",
];

/// `help`: ash's builtin list, wrapped as ash wraps it (a line ends once it passes 60
/// characters, the tab counted as one).
pub(crate) fn help() -> String {
    let mut s = String::from("Built-in commands:\n------------------\n");
    let mut col = 0;
    for b in ASH_BUILTINS {
        s.push(if col == 0 { '\t' } else { ' ' });
        s.push_str(b);
        col += 1 + b.len();
        if col > 60 {
            s.push('\n');
            col = 0;
        }
    }
    s.push('\n');
    s
}

/// `busybox` with no applet: the banner, the usage and the applet list wrapped at
/// `width` columns, as `appletlib.c` prints it.
pub(crate) fn busybox_usage(banner: &str, names: &[&str], width: usize) -> String {
    let mut s = format!(
        "{banner}\nBusyBox is copyrighted by many authors between 1998-2015.\nLicensed under GPLv2. See source distribution for detailed\ncopyright notices.\n\nUsage: busybox [function [arguments]...]\n   or: busybox --list[-full]\n   or: busybox --install [-s] [DIR]\n   or: function [arguments]...\n\n\tBusyBox is a multi-call binary that combines many common Unix\n\tutilities into a single executable.  Most people will create a\n\tlink to busybox for each function they wish to use and BusyBox\n\twill act like whatever it was invoked as.\n\nCurrently defined functions:\n"
    );
    s.push_str(&applet_list(names, width));
    s
}

/// The comma-separated applet list of `busybox`'s usage.
pub(crate) fn applet_list(names: &[&str], width: usize) -> String {
    let mut s = String::new();
    let mut col = 0usize;
    // appletlib.c keeps the last comma off the last column.
    let width = width.saturating_sub(1);
    for a in names {
        let len2 = a.len() + 2;
        if col >= width.saturating_sub(len2) {
            s.push_str(",\n");
            col = 0;
        }
        if col == 0 {
            col = 6;
            s.push('\t');
        } else {
            s.push_str(", ");
        }
        s.push_str(a);
        col += len2;
    }
    s.push('\n');
    s
}

/// An applet's `--help`/misuse text: the banner line, then its usage.
pub(crate) fn usage(env: &Env, name: &str) -> Option<String> {
    let text = match name {
        "tftp" => {
            "Usage: tftp [OPTIONS] HOST [PORT]\n\nTransfer a file from/to tftp server\n\n\t-l FILE\tLocal FILE\n\t-r FILE\tRemote FILE\n\t-g\tGet file\n\t-p\tPut file\n\t-b SIZE\tTransfer blocks of SIZE octets\n"
        }
        "wget" => {
            "Usage: wget [-c|--continue] [-s|--spider] [-q|--quiet] [-O|--output-document FILE]\n\t[--header 'header: value'] [-Y|--proxy on/off] [-P DIR]\n\t[-U|--user-agent AGENT] [-T SEC] URL...\n\nRetrieve files via HTTP or FTP\n\n\t-s\tSpider mode - only check file existence\n\t-c\tContinue retrieval of aborted transfer\n\t-q\tQuiet\n\t-P DIR\tSave to DIR (default .)\n\t-T SEC\tNetwork read timeout is SEC seconds\n\t-O FILE\tSave to FILE ('-' for stdout)\n\t-U STR\tUse STR for User-Agent header\n\t-Y\tUse proxy ('on' or 'off')\n"
        }
        "kill" => {
            "Usage: kill [-l] [-SIG] PID...\n\nSend a signal (default: TERM) to given PIDs\n\n\t-l\tList all signal names and numbers\n"
        }
        "dd" => {
            "Usage: dd [if=FILE] [of=FILE] [bs=N] [count=N] [skip=N]\n\t[seek=N] [conv=notrunc|noerror|sync|fsync]\n\nCopy a file with converting and formatting\n\n\tif=FILE\t\tRead from FILE instead of stdin\n\tof=FILE\t\tWrite to FILE instead of stdout\n\tbs=N\t\tRead and write N bytes at a time\n\tibs=N\t\tRead N bytes at a time\n\tobs=N\t\tWrite N bytes at a time\n\tcount=N\t\tCopy only N input blocks\n\tskip=N\t\tSkip N input blocks\n\tseek=N\t\tSkip N output blocks\n\tconv=notrunc\tDon't truncate output file\n\tconv=noerror\tContinue after read errors\n\tconv=sync\tPad blocks with zeros\n\tconv=fsync\tPhysically write data out before finishing\n\nN may be suffixed by c (1), w (2), b (512), kD (1000), k (1024), MD, M, GD, G\n"
        }
        "rm" => {
            "Usage: rm [-irf] FILE...\n\nRemove (unlink) FILEs\n\n\t-i\tAlways prompt before removing\n\t-f\tNever prompt\n\t-R,-r\tRecurse\n"
        }
        "mkdir" => {
            "Usage: mkdir [-m MODE] [-p] DIRECTORY...\n\nCreate DIRECTORY\n\n\t-m MODE\tMode\n\t-p\tNo error if exists; make parent directories as needed\n"
        }
        "cat" => {
            "Usage: cat [-nbvteA] [FILE]...\n\nPrint FILEs to stdout\n\n\t-n\tNumber output lines\n\t-b\tNumber nonempty lines\n\t-v\tShow nonprinting characters as ^x or M-x\n\t-t\t...and tabs as ^I\n\t-e\t...and end lines with $\n\t-A\tSame as -vte\n"
        }
        "cp" => {
            "Usage: cp [-arPLHpfinlsTu] SOURCE DEST\nor: cp [-arPLHpfinlsu] SOURCE... { -t DIRECTORY | DIRECTORY }\n\nCopy SOURCEs to DEST\n\n\t-a\tSame as -dpR\n\t-R,-r\tRecurse\n\t-d,-P\tPreserve symlinks (default if -R)\n\t-L\tFollow all symlinks\n\t-H\tFollow symlinks on command line\n\t-p\tPreserve file attributes if possible\n\t-f\tOverwrite\n\t-i\tPrompt before overwrite\n\t-n\tDon't overwrite\n\t-l,-s\tCreate (sym)links\n\t-T\tRefuse to copy if DEST is a directory\n\t-t DIR\tCopy all SOURCEs into DIR\n\t-u\tCopy only newer files\n"
        }
        "mv" => {
            "Usage: mv [-finT] SOURCE DEST\nor: mv [-fin] SOURCE... { -t DIRECTORY | DIRECTORY }\n\nRename SOURCE to DEST, or move SOURCEs to DIRECTORY\n\n\t-f\tDon't prompt before overwriting\n\t-i\tInteractive, prompt before overwrite\n\t-n\tDon't overwrite an existing file\n\t-T\tRefuse to move if DEST is a directory\n\t-t DIR\tMove all SOURCEs into DIR\n"
        }
        "chmod" => {
            "Usage: chmod [-Rcvf] MODE[,MODE]... FILE...\n\nMODE is octal number (bit pattern sstrwxrwxrwx) or [ugoa]{+|-|=}[rwxXst]\n\n\t-R\tRecurse\n\t-c\tList changed files\n\t-v\tVerbose\n\t-f\tHide errors\n"
        }
        "touch" => {
            "Usage: touch [-cham] [-d DATE] [-t DATE] [-r FILE] FILE...\n\nUpdate mtime of FILEs\n\n\t-c\tDon't create files\n\t-h\tDon't follow links\n\t-a\tChange only atime\n\t-m\tChange only mtime\n\t-d DT\tDate/time to use\n\t-t DT\tDate/time to use\n\t-r FILE\tUse FILE's date/time\n"
        }
        "rmdir" => {
            "Usage: rmdir [-p] DIRECTORY...\n\nRemove DIRECTORY if it is empty\n\n\t-p\tInclude parents\n\t--ignore-fail-on-non-empty\n"
        }
        "ln" => {
            "Usage: ln [-sfnbtv] [-S SUF] TARGET... LINK|DIR\n\nCreate a link LINK or DIR/TARGET to the specified TARGET(s)\n\n\t-s\tMake symlinks instead of hardlinks\n\t-f\tRemove existing destinations\n\t-n\tDon't dereference symlinks - treat like normal file\n\t-b\tMake a backup of the target (if exists) before link operation\n\t-S SUF\tUse suffix instead of ~ when making backup files\n\t-T\tTreat LINK as a file, not DIR\n\t-v\tVerbose\n"
        }
        _ => return None,
    };
    Some(format!("{}\n\n{text}", env.router.banner()))
}

fn path_of(st: &State, p: &str) -> String {
    fs::normalize(&st.cwd, &st.home, p)
}

// ---- ls -----------------------------------------------------------------------------

fn mode_string(n: &Node) -> String {
    let mut s = String::with_capacity(10);
    s.push(match n.kind {
        Kind::Dir => 'd',
        Kind::File => '-',
        Kind::Symlink => 'l',
        Kind::CharDev => 'c',
    });
    for shift in [6u32, 3, 0] {
        let bits = (n.mode >> shift) & 7;
        s.push(if bits & 4 != 0 { 'r' } else { '-' });
        s.push(if bits & 2 != 0 { 'w' } else { '-' });
        let x = bits & 1 != 0;
        let special = match shift {
            6 => n.mode & 0o4000 != 0,
            3 => n.mode & 0o2000 != 0,
            _ => n.mode & 0o1000 != 0,
        };
        s.push(match (special, x, shift) {
            (true, true, 0) => 't',
            (true, false, 0) => 'T',
            (true, true, _) => 's',
            (true, false, _) => 'S',
            (false, true, _) => 'x',
            (false, false, _) => '-',
        });
    }
    s
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// `ls -l`'s date: BusyBox prints `ctime()`'s month, day and time for the last six
/// months, else the year.
fn ls_date(t: i64, now: i64) -> String {
    let (y, m, d) = crate::persona::civil(t.div_euclid(86_400));
    let s = t.rem_euclid(86_400);
    let mon = MONTHS[(m as usize).saturating_sub(1).min(11)];
    if (now - t).abs() < 183 * 86_400 {
        format!("{mon} {d:2} {:02}:{:02}", s / 3600, s / 60 % 60)
    } else {
        format!("{mon} {d:2}  {y}")
    }
}

fn owner(uid: u32) -> &'static str {
    match uid {
        500 => "dropbear",
        _ => "root",
    }
}

fn links_of(st: &State, path: &str, n: &Node) -> u64 {
    if n.kind != Kind::Dir {
        return 1;
    }
    2 + st.fs.list(path).map_or(0, |l| {
        l.iter().filter(|(_, c)| c.kind == Kind::Dir).count() as u64
    })
}

fn long_line(st: &State, name: &str, path: &str, n: &Node) -> String {
    let size = match n.kind {
        Kind::CharDev => format!("{:4}, {:4}", 1, n.size()),
        _ => format!("{:9}", n.size()),
    };
    let mut s = format!(
        "{} {:4} {:<8} {:<8} {size} {} {name}",
        mode_string(n),
        links_of(st, path, n),
        owner(n.uid),
        owner(n.uid),
        ls_date(n.mtime, st.now)
    );
    if n.kind == Kind::Symlink {
        s.push_str(" -> ");
        s.push_str(&String::from_utf8_lossy(&n.data));
    }
    s
}

/// Names in columns down then across, as BusyBox's `display_files` lays them out.
fn columns(names: &[String], width: usize) -> String {
    let col_w = names.iter().map(String::len).max().unwrap_or(0) + 2;
    let ncols = (width / col_w.max(1)).max(1);
    let nrows = names.len().div_ceil(ncols).max(1);
    let ncols = if ncols > 1 { ncols } else { 1 };
    let nrows = if ncols > 1 { nrows } else { names.len() };
    let mut s = String::new();
    for row in 0..nrows {
        let mut column = 0;
        let mut nexttab = 0;
        for nc in 0..ncols {
            let i = nc * nrows + row;
            if let Some(name) = names.get(i) {
                if column > 0 {
                    let pad = nexttab - column;
                    s.extend(std::iter::repeat_n(' ', pad));
                    column += pad;
                }
                nexttab = column + col_w;
                s.push_str(name);
                column += name.len();
            }
        }
        s.push('\n');
    }
    s
}

pub(super) fn ls(st: &State, args: &[String], ctx: &Ctx<'_>) -> Out {
    let mut flags = String::new();
    let mut ops: Vec<&String> = Vec::new();
    for a in args {
        if a.len() > 1 && a.starts_with('-') && ops.is_empty() {
            flags.push_str(&a[1..]);
        } else {
            ops.push(a);
        }
    }
    let long = flags.contains('l');
    let all = flags.contains('a');
    let almost = flags.contains('A');
    let dir_only = flags.contains('d');
    let one = flags.contains('1') || !ctx.out_tty;
    let dot = String::from(".");
    if ops.is_empty() {
        ops.push(&dot);
    }
    let mut o = Out::default();
    let mut files: Vec<(String, String, Node)> = Vec::new();
    let mut dirs: Vec<(String, String)> = Vec::new();
    for op in &ops {
        if o.full() || !st.budget.iterations(1) {
            break;
        }
        let mut path = path_of(st, op);
        // `.` and `..` name the directory itself, never the link the shell came by
        // (`cd /tmp` lands in /var/tmp).
        if op.as_str() == "." || op.as_str() == ".." || op.ends_with("/.") || op.ends_with("/..") {
            path = st.fs.resolve(&path);
        }
        match st.fs.lstat(&path) {
            None => {
                o.eline(&format!("ls: {op}: No such file or directory"));
                o.status = 1;
            }
            Some(n) => {
                let is_dir = st.fs.stat(&path).is_some_and(|t| t.kind == Kind::Dir);
                let follow = is_dir && (n.kind == Kind::Dir || !long);
                if dir_only || !follow {
                    files.push(((*op).clone(), path, n.clone()));
                } else {
                    dirs.push(((*op).clone(), path));
                }
            }
        }
    }
    files.sort_by(|a, b| a.0.cmp(&b.0));
    dirs.sort_by(|a, b| a.0.cmp(&b.0));
    let width = usize::try_from(st.tty_size.1).unwrap_or(80);
    let headers = dirs.len() + files.len() > 1;
    let show = |o: &mut Out, entries: &[(String, String, Node)]| {
        if long {
            for (name, path, n) in entries {
                o.line(&long_line(st, name, path, n));
            }
        } else if one {
            for (name, _, _) in entries {
                o.line(name);
            }
        } else if !entries.is_empty() {
            let names: Vec<String> = entries.iter().map(|e| e.0.clone()).collect();
            o.put(columns(&names, width).as_bytes());
        }
    };
    show(&mut o, &files);
    let mut first = files.is_empty();
    for (shown, path) in dirs {
        if o.full() || !st.budget.iterations(1) {
            break;
        }
        let mut entries: Vec<(String, String, Node)> = Vec::new();
        if all {
            if let Some(n) = st.fs.stat(&path) {
                entries.push((".".into(), path.clone(), n.clone()));
            }
            let (parent, _) = fs::split(&path);
            if let Some(n) = st.fs.stat(parent) {
                entries.push(("..".into(), parent.to_owned(), n.clone()));
            }
        }
        if let Ok(list) = st.fs.list(&path) {
            if !st
                .budget
                .iterations(u64::try_from(list.len()).unwrap_or(u64::MAX))
            {
                break;
            }
            for (name, n) in list {
                if name.starts_with('.') && !(all || almost) {
                    continue;
                }
                let child = if path == "/" {
                    format!("/{name}")
                } else {
                    format!("{path}/{name}")
                };
                entries.push((name, child, n.clone()));
            }
        }
        if !first {
            o.put(b"\n");
        }
        first = false;
        if headers {
            o.line(&format!("{shown}:"));
        }
        if long {
            let blocks: u64 = entries
                .iter()
                .filter(|e| e.0 != "." && e.0 != "..")
                .map(|e| match e.2.kind {
                    Kind::File => e.2.size().div_ceil(4096) * 4,
                    Kind::Dir => 4,
                    _ => 0,
                })
                .sum::<u64>()
                + if all { 8 } else { 0 };
            o.line(&format!("total {blocks}"));
        }
        show(&mut o, &entries);
    }
    o
}

// ---- ps, kill -----------------------------------------------------------------------

/// The router's processes: (pid, vsz, stat, command). The session's own shell and the
/// `ps` itself are added by [`ps`].
const PROCS: &[(u32, u32, &str, &str)] = &[
    (1, 1516, "S", "init"),
    (2, 0, "SW", "[kthreadd]"),
    (3, 0, "SW", "[ksoftirqd/0]"),
    (4, 0, "SW", "[events/0]"),
    (5, 0, "SW", "[khelper]"),
    (6, 0, "SW", "[async/mgr]"),
    (7, 0, "SW", "[sync_supers]"),
    (8, 0, "SW", "[bdi-default]"),
    (9, 0, "SW", "[kblockd/0]"),
    (10, 0, "SW", "[kswapd0]"),
    (11, 0, "SW", "[mtdblock0]"),
    (12, 0, "SW", "[mtdblock1]"),
    (13, 0, "SW", "[mtdblock2]"),
    (14, 0, "SW", "[mtdblock3]"),
    (68, 1512, "S", "/sbin/syslogd -C"),
    (70, 1512, "S", "/sbin/klogd"),
    (123, 0, "SW", "[RtmpCmdQTask]"),
    (124, 0, "SW", "[RtmpWscTask]"),
    (
        131,
        1516,
        "S",
        "/sbin/udhcpc -i eth0.2 -s /etc/udhcpc.script",
    ),
    (412, 2148, "S", "/usr/sbin/lighttpd -f /etc/lighttpd.conf"),
    (418, 4484, "S", "/usr/bin/cos"),
    (421, 1060, "S", "/usr/bin/dhcpd"),
    (433, 1516, "S", "/usr/sbin/crond"),
    (437, 1512, "S", "telnetd"),
    (439, 1516, "S", "/sbin/getty -L ttyS1 115200 vt100"),
];

/// The PIDs `ps` shows (and `kill` finds).
pub(crate) fn pids(st: &State) -> Vec<u32> {
    let mut v: Vec<u32> = PROCS.iter().map(|p| p.0).collect();
    let sh = st.shell_pid();
    if sh != 0 {
        v.push(sh);
    }
    v
}

pub(super) fn ps(st: &State) -> Out {
    let mut o = Out::default();
    o.line("  PID USER       VSZ STAT COMMAND");
    for (pid, vsz, stat, cmd) in PROCS {
        o.line(&format!("{pid:5} root     {vsz:5} {stat:<4} {cmd}"));
    }
    let sh = st.shell_pid();
    if sh != 0 {
        o.line(&format!("{sh:5} root      1524 S    -sh"));
        let me = st.fs.pids().map_or(sh + 3, |p| super::small_pid(p.line));
        o.line(&format!("{me:5} root      1520 R    ps"));
    }
    o
}

pub(super) fn kill(st: &State, env: &Env, args: &[String]) -> Out {
    let mut o = Out::default();
    let ops: Vec<&String> = args
        .iter()
        .skip_while(|a| a.starts_with('-') && a.len() > 1)
        .collect();
    if args.iter().any(|a| a == "-l") {
        o.line(" 1) HUP\n 2) INT\n 3) QUIT\n 4) ILL\n 5) TRAP\n 6) ABRT\n 7) BUS\n 8) FPE\n 9) KILL\n10) USR1\n11) SEGV\n12) USR2\n13) PIPE\n14) ALRM\n15) TERM");
        return o;
    }
    if ops.is_empty() {
        return Out::fail(1, usage(env, "kill").unwrap_or_default());
    }
    let known = pids(st);
    for p in ops {
        if !st.budget.iterations(1) {
            break;
        }
        match p.parse::<u32>() {
            Ok(n) if known.contains(&n) || n == 0 => {}
            Ok(n) => {
                o.eline(&format!(
                    "{}can't kill pid {n}: No such process",
                    env.prefix
                ));
                o.status = 1;
            }
            Err(_) => {
                o.eline(&format!("{}kill: bad pid '{p}'", env.prefix));
                o.status = 1;
            }
        }
    }
    o
}

// ---- dd, wc, cat --------------------------------------------------------------------

/// A number with dd's suffixes; `None` when it is not one.
fn dd_number(s: &str) -> Option<u64> {
    let (digits, mult) = match s.as_bytes().last()? {
        b'c' => (&s[..s.len() - 1], 1),
        b'w' => (&s[..s.len() - 1], 2),
        b'b' => (&s[..s.len() - 1], 512),
        b'k' => (&s[..s.len() - 1], 1024),
        b'M' => (&s[..s.len() - 1], 1024 * 1024),
        _ => (s, 1),
    };
    digits.parse::<u64>().ok()?.checked_mul(mult)
}

pub(super) fn dd(st: &mut State, env: &Env, args: &[String], ctx: &Ctx<'_>) -> Out {
    let (mut inf, mut outf) = (None, None);
    let (mut ibs, mut obs, mut count, mut skip, mut seek) = (512u64, 512u64, None, 0u64, 0u64);
    let mut notrunc = false;
    for a in args {
        let Some((k, v)) = a.split_once('=') else {
            return Out::fail(1, usage(env, "dd").unwrap_or_default());
        };
        let num = || dd_number(v);
        let bad = || Out::fail(1, format!("dd: invalid number '{v}'\n"));
        match k {
            "if" => inf = Some(v.to_owned()),
            "of" => outf = Some(v.to_owned()),
            "conv" => notrunc = v.split(',').any(|c| c == "notrunc"),
            "bs" | "ibs" | "obs" | "count" | "skip" | "seek" => {
                let Some(n) = num() else { return bad() };
                match k {
                    "bs" => (ibs, obs) = (n, n),
                    "ibs" => ibs = n,
                    "obs" => obs = n,
                    "count" => count = Some(n),
                    "skip" => skip = n,
                    _ => seek = n,
                }
            }
            _ => return Out::fail(1, usage(env, "dd").unwrap_or_default()),
        }
    }
    if ibs == 0 || obs == 0 {
        return Out::fail(1, "dd: invalid number '0'\n");
    }
    let data: Vec<u8> = match &inf {
        None => ctx.stdin.to_vec(),
        Some(f) => {
            let path = path_of(st, f);
            match st.fs.read(&path) {
                Ok(d) => d.to_vec(),
                Err(e) => {
                    return Out::fail(1, format!("dd: can't open '{f}': {}\n", e.text()));
                }
            }
        }
    };
    let start = usize::try_from(skip.saturating_mul(ibs)).unwrap_or(usize::MAX);
    let rest = data.get(start.min(data.len())..).unwrap_or(&[]);
    let want = count.map_or(rest.len() as u64, |c| c.saturating_mul(ibs));
    let want = usize::try_from(want).unwrap_or(usize::MAX).min(rest.len());
    let copied = take(
        st,
        &rest[..want],
        crate::services::shell::budget::MAX_BUFFER,
    )
    .to_vec();
    let n = copied.len() as u64;
    let (full_in, part_in) = (n / ibs, u64::from(!n.is_multiple_of(ibs)));
    let (full_out, part_out) = (n / obs, u64::from(!n.is_multiple_of(obs)));
    let mut o = Out::default();
    match &outf {
        None => {
            o.put(&copied);
        }
        Some(f) => {
            let path = path_of(st, f);
            let mut buf = if notrunc || seek > 0 {
                st.fs.read(&path).map(<[u8]>::to_vec).unwrap_or_default()
            } else {
                Vec::new()
            };
            let at = usize::try_from(seek.saturating_mul(obs)).unwrap_or(usize::MAX);
            if at > crate::services::shell::budget::MAX_BUFFER {
                return Out::fail(1, format!("dd: {f}: File too large\n"));
            }
            if buf.len() < at {
                buf.resize(at, 0);
            }
            let end = at + copied.len();
            if !notrunc || buf.len() < end {
                buf.truncate(at);
                buf.extend_from_slice(&copied);
            } else {
                buf[at..end].copy_from_slice(&copied);
            }
            if let Err(e) = crate::services::shell::commands::write_file(st, f, &buf, false) {
                return Out::fail(1, format!("dd: can't open '{f}': {}\n", e.text()));
            }
        }
    }
    o.err.extend_from_slice(
        format!("{full_in}+{part_in} records in\n{full_out}+{part_out} records out\n").as_bytes(),
    );
    o
}

pub(super) fn wc(st: &State, args: &[String], ctx: &Ctx<'_>) -> Out {
    let mut flags = String::new();
    let mut files: Vec<&String> = Vec::new();
    for a in args {
        if a.len() > 1 && a.starts_with('-') {
            flags.push_str(&a[1..]);
        } else {
            files.push(a);
        }
    }
    for c in flags.chars() {
        if !"lwcmL".contains(c) {
            return Out::fail(
                1,
                format!("wc: invalid option -- '{c}'\n{}", super::short_usage("wc")),
            );
        }
    }
    // Which counts, in BusyBox's order: lines, words, chars (-c/-m), longest line.
    let want: [bool; 4] = if flags.is_empty() {
        [true, true, true, false]
    } else {
        [
            flags.contains('l'),
            flags.contains('w'),
            flags.contains('c') || flags.contains('m'),
            flags.contains('L'),
        ]
    };
    let single = want.iter().filter(|w| **w).count() == 1;
    let count = |d: &[u8]| -> [u64; 4] {
        let lines = d.iter().filter(|b| **b == b'\n').count() as u64;
        let words = d
            .split(|b| b.is_ascii_whitespace())
            .filter(|w| !w.is_empty())
            .count() as u64;
        let longest = d.split(|b| *b == b'\n').map(<[u8]>::len).max().unwrap_or(0) as u64;
        [lines, words, d.len() as u64, longest]
    };
    let fmt = |c: [u64; 4], name: &str| -> String {
        let mut s = String::new();
        for (i, v) in c.iter().enumerate() {
            if !want[i] {
                continue;
            }
            if single {
                s.push_str(&v.to_string());
            } else {
                if !s.is_empty() {
                    s.push(' ');
                }
                s.push_str(&format!("{v:9}"));
            }
        }
        if !name.is_empty() {
            s.push(' ');
            s.push_str(name);
        }
        s
    };
    let mut o = Out::default();
    if files.is_empty() {
        o.line(&fmt(count(ctx.stdin), ""));
        return o;
    }
    let mut total = [0u64; 4];
    let mut shown = 0;
    for f in &files {
        if !st.budget.iterations(1) {
            break;
        }
        let path = path_of(st, f);
        match st.fs.read(&path) {
            Ok(d) => {
                let c = count(d);
                for i in 0..4 {
                    total[i] = if i == 3 {
                        total[i].max(c[i])
                    } else {
                        total[i] + c[i]
                    };
                }
                o.line(&fmt(c, f));
                shown += 1;
            }
            Err(FsError::IsDir) => {
                o.eline(&format!("wc: {f}: Is a directory"));
                o.line(&fmt([0; 4], f));
                o.status = 1;
                shown += 1;
            }
            Err(e) => {
                o.eline(&format!("wc: {f}: {}", e.text()));
                o.status = 1;
            }
        }
    }
    if files.len() > 1 && shown > 0 {
        o.line(&fmt(total, "total"));
    }
    o
}

/// `cat`: the Debian shell's, with BusyBox's words for what fails.
pub(super) fn rewrite_cat(mut o: Out) -> Out {
    if o.err.is_empty() {
        return o;
    }
    let text = String::from_utf8_lossy(&o.err).into_owned();
    let mut err = String::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("cat: ")
            && let Some((f, why)) = rest.rsplit_once(": ")
        {
            if why == "Is a directory" {
                err.push_str("cat: read error: Is a directory\n");
            } else {
                err.push_str(&format!("cat: can't open '{f}': {why}\n"));
            }
        } else {
            err.push_str(line);
            err.push('\n');
        }
    }
    o.err = err.into_bytes();
    o
}

/// `cat -n`: each line numbered as `nl` does (`%6d` and a tab).
pub(super) fn number_lines(mut o: Out) -> Out {
    let mut out = Vec::with_capacity(o.out.len() + o.out.len() / 4);
    for (i, line) in o.out.split_inclusive(|b| *b == b'\n').enumerate() {
        out.extend_from_slice(format!("{:6}\t", i + 1).as_bytes());
        out.extend_from_slice(line);
    }
    o.out = out;
    o.cut |= o.out.len() > crate::services::shell::budget::MAX_BUFFER;
    o.out.truncate(crate::services::shell::budget::MAX_BUFFER);
    o
}

/// `hexdump -e '16/1 "%c"' -n 52 /bin/echo`, the loaders' other way to read an ELF
/// header: with a `%c` format the bytes come out as they are; otherwise `-C`'s canonical
/// lines.
pub(super) fn hexdump(st: &State, args: &[String], ctx: &Ctx<'_>) -> Out {
    let (mut n, mut raw, mut file) = (None, false, None);
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "-n" => {
                n = args.get(i + 1).and_then(|v| v.parse::<usize>().ok());
                i += 1;
            }
            "-e" => {
                raw = args.get(i + 1).is_some_and(|f| f.contains("%c"));
                i += 1;
            }
            "-C" => {}
            a if !a.starts_with('-') => file = Some(a.to_owned()),
            _ => {}
        }
        i += 1;
    }
    let data: &[u8] = match &file {
        None => ctx.stdin,
        Some(f) => match st.fs.read(&path_of(st, f)) {
            Ok(d) => d,
            Err(e) => return Out::fail(1, format!("hexdump: {f}: {}\n", e.text())),
        },
    };
    let data = take(
        st,
        &data[..n.unwrap_or(data.len()).min(data.len())],
        64 * 1024,
    );
    if raw {
        return Out::ok(data.to_vec());
    }
    let mut o = Out::default();
    for (k, chunk) in data.chunks(16).enumerate() {
        let mut line = format!("{:08x} ", k * 16);
        for (j, b) in chunk.iter().enumerate() {
            if j == 8 {
                line.push(' ');
            }
            line.push_str(&format!(" {b:02x}"));
        }
        for j in chunk.len()..16 {
            if j == 8 {
                line.push(' ');
            }
            line.push_str("   ");
        }
        line.push_str("  |");
        line.extend(chunk.iter().map(|b| {
            if (0x20..0x7f).contains(b) {
                char::from(*b)
            } else {
                '.'
            }
        }));
        line.push('|');
        o.line(&line);
    }
    if !data.is_empty() {
        o.line(&format!("{:08x}", data.len()));
    }
    o
}

/// `expr`: one value, or `A OP B` with integer arithmetic and comparisons (what
/// scripts on a router use it for); status 1 when the result is 0 or empty.
pub(super) fn expr(args: &[String]) -> Out {
    let done = |v: String| {
        let status = i32::from(v.is_empty() || v == "0");
        Out {
            out: format!("{v}\n").into_bytes(),
            status,
            ..Out::default()
        }
    };
    match args {
        [] => Out::fail(2, super::short_usage("expr")),
        [a] => done(a.clone()),
        [a, op, b] => {
            let (x, y) = (a.parse::<i64>(), b.parse::<i64>());
            let num = |f: fn(i64, i64) -> Option<i64>| match (x.clone(), y.clone()) {
                (Ok(x), Ok(y)) => match f(x, y) {
                    Some(v) => done(v.to_string()),
                    None => Out::fail(2, "expr: division by zero\n"),
                },
                _ => Out::fail(2, "expr: non-numeric argument\n"),
            };
            let cmp = |o: std::cmp::Ordering, want: &[std::cmp::Ordering]| {
                done(if want.contains(&o) { "1" } else { "0" }.to_owned())
            };
            let ord = match (&x, &y) {
                (Ok(x), Ok(y)) => x.cmp(y),
                _ => a.cmp(b),
            };
            use std::cmp::Ordering::{Equal, Greater, Less};
            match op.as_str() {
                "+" => num(i64::checked_add),
                "-" => num(i64::checked_sub),
                "*" => num(i64::checked_mul),
                "/" => num(i64::checked_div),
                "%" => num(i64::checked_rem),
                "=" | "==" => cmp(ord, &[Equal]),
                "!=" => cmp(ord, &[Less, Greater]),
                "<" => cmp(ord, &[Less]),
                "<=" => cmp(ord, &[Less, Equal]),
                ">" => cmp(ord, &[Greater]),
                ">=" => cmp(ord, &[Greater, Equal]),
                _ => Out::fail(2, "expr: syntax error\n"),
            }
        }
        _ => Out::fail(2, "expr: syntax error\n"),
    }
}

/// GNU's wording in the errors of the file tools to BusyBox's (`cannot remove` →
/// `can't remove`, `cannot access 'X': …` → `X: …`), and no `Try '--help'` line.
pub(super) fn rewrite_errors(name: &str, mut o: Out) -> Out {
    if o.err.is_empty() {
        return o;
    }
    let text = String::from_utf8_lossy(&o.err).into_owned();
    let mut err = String::new();
    for line in text.lines() {
        if line.starts_with("Try '") {
            continue;
        }
        let mut l = line.to_owned();
        let access = format!("{name}: cannot access '");
        if let Some(rest) = l.strip_prefix(&access)
            && let Some((f, why)) = rest.split_once("': ")
        {
            l = format!("{name}: {f}: {why}");
        }
        let open = format!("{name}: cannot open '");
        if let Some(rest) = l.strip_prefix(&open)
            && let Some((f, why)) = rest.split_once("' for reading: ")
        {
            l = format!("{name}: {f}: {why}");
        }
        let touch = "touch: cannot touch '";
        if let Some(rest) = l.strip_prefix(touch)
            && let Some((f, why)) = rest.split_once("': ")
        {
            l = format!("touch: {f}: {why}");
        }
        l = l.replace(['\u{2018}', '\u{2019}'], "'");
        l = l.replacen(": cannot ", ": can't ", 1);
        if name == "rmdir" {
            l = l.replacen("rmdir: failed to remove ", "rmdir: ", 1);
        }
        if name == "mv" {
            l = l.replacen("mv: can't stat ", "mv: can't rename ", 1);
        }
        err.push_str(&l);
        err.push('\n');
    }
    o.err = err.into_bytes();
    o
}

// ---- uname, free, df, mount, uptime -------------------------------------------------

pub(super) fn uname(st: &State, env: &Env, args: &[String]) -> Out {
    let r = &env.router;
    let mut want = [false; 6];
    for a in args {
        let Some(f) = a.strip_prefix('-').filter(|f| !f.is_empty()) else {
            return Out::fail(1, super::short_usage("uname"));
        };
        for c in f.chars() {
            match c {
                'a' => want = [true; 6],
                's' => want[0] = true,
                'n' => want[1] = true,
                'r' => want[2] = true,
                'v' => want[3] = true,
                'm' => want[4] = true,
                'o' => want[5] = true,
                'p' | 'i' => want[4] = true,
                _ => {
                    return Out::fail(
                        1,
                        format!(
                            "uname: invalid option -- '{c}'\n{}",
                            super::short_usage("uname")
                        ),
                    );
                }
            }
        }
    }
    if !want.iter().any(|w| *w) {
        want[0] = true;
    }
    let parts = [
        "Linux".to_owned(),
        st.profile.hostname.clone(),
        r.soc.kernel.to_owned(),
        r.kernel_build.clone(),
        r.machine().to_owned(),
        "GNU/Linux".to_owned(),
    ];
    let shown: Vec<&str> = parts
        .iter()
        .zip(want)
        .filter(|(_, w)| *w)
        .map(|(p, _)| p.as_str())
        .collect();
    Out::ok(format!("{}\n", shown.join(" ")))
}

pub(super) fn free(env: &Env) -> Out {
    let total = env.router.soc.mem_kib;
    let free = total * 38 / 100;
    let used = total - free;
    let (buffers, cached) = (total / 30, total / 6);
    Out::ok(format!(
        "             total       used       free     shared    buffers     cached\nMem:      {total:8}   {used:8}   {free:8}          0   {buffers:8}   {cached:8}\n-/+ buffers/cache:   {:8}   {:8}\nSwap:            0          0          0\n",
        used - buffers - cached,
        free + buffers + cached
    ))
}

pub(super) fn df(env: &Env) -> Out {
    let var = env.router.soc.mem_kib / 4;
    let used = 96 + var / 50;
    Out::ok(format!(
        "Filesystem           1K-blocks      Used Available Use% Mounted on\n/dev/root                 5248      5248         0 100% /\ntmpfs                 {var:9} {used:9} {:9} {:3}% /var\ntmpfs                 {:9}         0 {:9}   0% /dev\n",
        var - used,
        (used * 100).div_ceil(var.max(1)),
        env.router.soc.mem_kib / 2,
        env.router.soc.mem_kib / 2
    ))
}

pub(super) fn mount(env: &Env) -> Out {
    let mut o = Out::default();
    for l in super::rootfs::mounts(&env.router).lines() {
        let f: Vec<&str> = l.split(' ').collect();
        if f.len() >= 4 {
            o.line(&format!("{} on {} type {} ({})", f[0], f[1], f[2], f[3]));
        }
    }
    o
}

pub(super) fn uptime(st: &State) -> Out {
    let p = st.profile.node.persona();
    let up = p.uptime(st.now);
    let t = st.now.rem_euclid(86_400);
    let days = up / 86_400;
    let (h, m) = (up / 3600 % 24, up / 60 % 60);
    let span = match days {
        0 => format!("{h:2}:{m:02}"),
        1 => format!("1 day, {h:2}:{m:02}"),
        d => format!("{d} days, {h:2}:{m:02}"),
    };
    Out::ok(format!(
        " {:02}:{:02}:{:02} up {span},  load average: 0.00, 0.01, 0.05\n",
        t / 3600,
        t / 60 % 60,
        t % 60
    ))
}

// ---- downloads ----------------------------------------------------------------------

fn record(st: &mut State, url: &str, tool: &str) {
    if !st.budget.download() {
        return;
    }
    st.effects.push(crate::services::shell::Effect::Download {
        url: honeybee_proto::event::clamp(url, honeybee_proto::event::MAX_FIELD_LEN),
        tool: tool.to_owned(),
    });
}

fn is_ip(host: &str) -> bool {
    host.parse::<std::net::IpAddr>().is_ok()
}

/// `wget`: the URL is recorded, never fetched; the router has no route out, so a name
/// does not resolve and an address refuses.
pub(super) fn wget(st: &mut State, env: &Env, args: &[String]) -> Out {
    let mut urls = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        if matches!(
            a.as_str(),
            "-O" | "-P" | "-U" | "-T" | "-Y" | "--header" | "-o"
        ) {
            i += 2;
            continue;
        }
        if !a.starts_with('-') {
            urls.push(a.clone());
        }
        i += 1;
    }
    if urls.is_empty() {
        return Out::fail(1, usage(env, "wget").unwrap_or_default());
    }
    let mut o = Out::default();
    for url in urls.iter().take(16) {
        let rest = url
            .strip_prefix("http://")
            .or_else(|| url.strip_prefix("ftp://"))
            .or_else(|| url.strip_prefix("https://"));
        let Some(rest) = rest else {
            o.eline(&format!("wget: not an http or ftp url: {url}"));
            o.status = 1;
            continue;
        };
        record(st, url, "wget");
        let hostport = rest.split('/').next().unwrap_or("");
        let hostport = hostport.rsplit('@').next().unwrap_or(hostport);
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) if p.parse::<u16>().is_ok() => (h, p.to_owned()),
            _ => (
                hostport,
                if url.starts_with("ftp://") {
                    "21"
                } else {
                    "80"
                }
                .to_owned(),
            ),
        };
        if is_ip(host) {
            o.eline(&format!("Connecting to {hostport} ({host}:{port})"));
            o.eline(&format!(
                "wget: can't connect to remote host ({host}): Connection refused"
            ));
        } else {
            o.eline(&format!("wget: bad address '{host}'"));
        }
        o.status = 1;
        break;
    }
    o
}

/// `tftp -g -r FILE HOST`: recorded as `tftp://HOST/FILE`; the server never answers.
pub(super) fn tftp(st: &mut State, env: &Env, args: &[String]) -> Out {
    let (mut remote, mut local, mut host, mut get) = (None, None, None, false);
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "-r" => {
                remote = args.get(i + 1).cloned();
                i += 1;
            }
            "-l" => {
                local = args.get(i + 1).cloned();
                i += 1;
            }
            "-b" => i += 1,
            "-g" => get = true,
            "-p" => {}
            a if !a.starts_with('-') && host.is_none() => host = Some(a.to_owned()),
            _ => {}
        }
        i += 1;
    }
    let Some(host) = host else {
        return Out::fail(1, usage(env, "tftp").unwrap_or_default());
    };
    let Some(file) = remote.or(local) else {
        return Out::fail(1, usage(env, "tftp").unwrap_or_default());
    };
    if get {
        record(st, &format!("tftp://{host}/{file}"), "tftp");
    }
    if !is_ip(&host) {
        return Out::fail(1, format!("tftp: bad address '{host}'\n"));
    }
    Out::fail(1, "tftp: timeout\n")
}
