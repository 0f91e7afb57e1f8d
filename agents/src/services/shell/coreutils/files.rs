//! File tools over the session's overlay: `ln readlink mktemp stat dd tar find du diff`.
//! They read and write only the fake filesystem, within its caps; endless devices
//! (`/dev/zero`, `/dev/urandom`) give only what is asked for, at most MAX_BUFFER.

use super::super::State;
use super::super::budget::MAX_BUFFER;
use super::super::commands::{self, Ctx, Out, take};
use super::super::fs::{self, FsError, Kind, Node};
use super::getopt;
use super::text::{device_bytes, q};
use super::{load, may_write, path_of, unreadable, usage_error};
use std::borrow::Cow;
use std::fmt::Write as _;

pub(super) fn run(st: &mut State, name: &str, args: &[String], ctx: &Ctx<'_>) -> Option<Out> {
    Some(match name {
        "ln" => ln(st, args),
        "readlink" | "realpath" => readlink(st, name, args),
        "mktemp" => mktemp(st, args),
        "stat" => stat(st, args),
        "dd" => dd(st, args, ctx),
        "tar" => tar(st, args, ctx),
        "find" => find(st, args),
        "du" => du(st, args),
        "diff" => diff(st, args, ctx),
        _ => return None,
    })
}

macro_rules! try_opts {
    ($e:expr) => {
        match $e {
            Ok(o) => o,
            Err(out) => return out,
        }
    };
}

/// A stable pseudo-random number for a path (inode numbers, name suffixes).
fn hash(s: &str, salt: u64) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325u64 ^ salt, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The overlay's key for a path whose last component is not followed.
fn link_key(st: &State, path: &str) -> String {
    let (parent, name) = fs::split(path);
    let parent = st.fs.resolve(parent);
    if parent == "/" {
        format!("/{name}")
    } else {
        format!("{parent}/{name}")
    }
}

// ---- ln readlink ----------------------------------------------------------------------

/// Makes a symbolic link: written first as a file of the target's bytes (so the
/// overlay's caps and accounting apply), then turned into a link of the same size.
fn symlink(st: &mut State, target: &str, path: &str) -> Result<(), FsError> {
    if !may_write(st, path) {
        return Err(FsError::Denied);
    }
    let key = link_key(st, path);
    let (uid, now) = (st.uid, st.now);
    st.fs.write(&key, target.as_bytes(), false, uid, now)?;
    st.fs.provision(
        &key,
        Node {
            kind: Kind::Symlink,
            mode: 0o777,
            uid,
            data: Cow::Owned(target.as_bytes().to_vec()),
            shown_size: None,
            mtime: now,
        },
    );
    Ok(())
}

fn ln(st: &mut State, args: &[String]) -> Out {
    let o = try_opts!(getopt::parse(
        "ln",
        args,
        "sfnvrLPTb",
        "tS",
        &[
            ("symbolic", 's', false),
            ("force", 'f', false),
            ("no-dereference", 'n', false),
            ("verbose", 'v', false),
            ("relative", 'r', false),
            ("target-directory", 't', true),
        ],
        1
    ));
    let ops = &o.operands;
    if ops.is_empty() {
        return usage_error("ln", "missing file operand", 1);
    }
    let (targets, dest): (Vec<&String>, Option<&String>) = match (ops.len(), o.value('t')) {
        (_, Some(_)) => (ops.iter().collect(), None),
        (1, None) => (vec![&ops[0]], None),
        _ => (ops[..ops.len() - 1].iter().collect(), ops.last()),
    };
    let dir = o.value('t').map(str::to_owned).or_else(|| {
        dest.filter(|d| {
            st.fs
                .stat(&path_of(st, d))
                .is_some_and(|n| n.kind == Kind::Dir)
                && !o.has('n')
        })
        .cloned()
    });
    if targets.len() > 1 && dir.is_none() {
        return Out::fail(
            1,
            format!(
                "ln: target '{}' is not a directory\n",
                dest.map_or("", |d| d.as_str())
            ),
        );
    }
    let mut out = Out::default();
    for t in targets {
        if !st.budget.iterations(1) {
            break;
        }
        let base = t
            .trim_end_matches('/')
            .rsplit('/')
            .next()
            .unwrap_or(t)
            .to_owned();
        let link = match (&dir, dest) {
            (Some(d), _) => format!("{}/{base}", d.trim_end_matches('/')),
            (None, Some(d)) => d.clone(),
            (None, None) => base.clone(),
        };
        let lpath = path_of(st, &link);
        if st.fs.lstat(&lpath).is_some() {
            if o.has('f') {
                let _ = st.fs.remove(&lpath, false, false);
            } else {
                let kind = if o.has('s') {
                    "symbolic link"
                } else {
                    "hard link"
                };
                out.eline(&format!(
                    "ln: failed to create {kind} '{link}': File exists"
                ));
                out.status = 1;
                continue;
            }
        }
        let r = if o.has('s') {
            symlink(st, t, &lpath)
        } else {
            let src = path_of(st, t);
            match st.fs.stat(&src) {
                None => {
                    out.eline(&format!(
                        "ln: failed to access '{t}': No such file or directory"
                    ));
                    out.status = 1;
                    continue;
                }
                Some(n) if n.kind == Kind::Dir => {
                    out.eline(&format!("ln: {t}: hard link not allowed for directory"));
                    out.status = 1;
                    continue;
                }
                Some(n) => {
                    let (data, mode) = (n.data.to_vec(), n.mode);
                    if st.budget.take_data(data.len()) < data.len() {
                        break;
                    }
                    let (uid, now) = (st.uid, st.now);
                    if may_write(st, &lpath) {
                        st.fs
                            .write(&lpath, &data, false, uid, now)
                            .and_then(|()| st.fs.chmod(&lpath, mode))
                    } else {
                        Err(FsError::Denied)
                    }
                }
            }
        };
        match r {
            Ok(()) => {
                if o.has('v') {
                    let arrow = if o.has('s') { "->" } else { "=>" };
                    out.line(&format!("'{link}' {arrow} '{t}'"));
                }
            }
            Err(e) => {
                let kind = if o.has('s') {
                    "symbolic link"
                } else {
                    "hard link"
                };
                out.eline(&format!(
                    "ln: failed to create {kind} '{link}': {}",
                    e.text()
                ));
                out.status = 1;
            }
        }
    }
    out
}

fn readlink(st: &State, name: &str, args: &[String]) -> Out {
    let o = try_opts!(getopt::parse(
        name,
        args,
        "femnqsvz",
        "",
        &[
            ("canonicalize", 'f', false),
            ("canonicalize-existing", 'e', false),
            ("canonicalize-missing", 'm', false),
            ("no-newline", 'n', false),
            ("quiet", 'q', false),
            ("silent", 's', false),
            ("verbose", 'v', false),
        ],
        1
    ));
    if o.operands.is_empty() {
        return usage_error(name, "missing operand", 1);
    }
    let canon = name == "realpath" || o.has('f') || o.has('e') || o.has('m');
    let mut out = Out::default();
    for op in &o.operands {
        let path = path_of(st, op);
        if canon {
            let r = st.fs.resolve(&path);
            let exists = st.fs.stat(&path).is_some();
            let parent_ok = st.fs.stat(fs::split(&r).0).is_some();
            if (o.has('e') || name == "realpath") && !exists && !(name == "realpath" && parent_ok) {
                if name == "realpath" {
                    out.eline(&format!("realpath: {op}: No such file or directory"));
                }
                out.status = 1;
                continue;
            }
            if o.has('f') && !exists && !parent_ok {
                out.status = 1;
                continue;
            }
            out.line(&r);
        } else {
            match st.fs.lstat(&path) {
                Some(n) if n.kind == Kind::Symlink => {
                    let t = String::from_utf8_lossy(&n.data).into_owned();
                    if o.has('n') {
                        out.put(t.as_bytes());
                    } else {
                        out.line(&t);
                    }
                }
                _ => out.status = 1,
            }
        }
    }
    out
}

// ---- mktemp ---------------------------------------------------------------------------

/// Makes successive names of one second differ.
static MKTEMP_COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn mktemp(st: &mut State, args: &[String]) -> Out {
    let o = try_opts!(getopt::parse(
        "mktemp",
        args,
        "dqut",
        "p",
        &[
            ("directory", 'd', false),
            ("quiet", 'q', false),
            ("dry-run", 'u', false),
            ("tmpdir", 'p', true),
            ("suffix", 'S', true),
        ],
        1
    ));
    if o.operands.len() > 1 {
        return usage_error("mktemp", "too many templates", 1);
    }
    let template = o
        .operands
        .first()
        .cloned()
        .unwrap_or_else(|| "tmp.XXXXXXXXXX".into());
    let xs = template.len() - template.trim_end_matches('X').len();
    if xs < 3 {
        return Out::fail(
            1,
            format!("mktemp: too few X's in template {}\n", q(&template)),
        );
    }
    let dir = if o.operands.is_empty() || o.has('t') || o.has('p') {
        Some(o.value('p').unwrap_or("/tmp").to_owned())
    } else {
        None
    };
    const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut seed = hash(
        &template,
        st.now as u64 ^ MKTEMP_COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
    );
    let mut name = template[..template.len() - xs].to_owned();
    for _ in 0..xs {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        name.push(CHARS[(seed >> 33) as usize % CHARS.len()] as char);
    }
    let shown = match dir {
        Some(d) => format!("{}/{name}", d.trim_end_matches('/')),
        None => name,
    };
    let path = path_of(st, &shown);
    let (uid, now) = (st.uid, st.now);
    if !o.has('u') {
        let r = if !may_write(st, &path) {
            Err(FsError::Denied)
        } else if o.has('d') {
            st.fs
                .mkdir(&path, uid, now)
                .and_then(|()| st.fs.chmod(&path, 0o700))
        } else {
            st.fs
                .write(&path, b"", false, uid, now)
                .and_then(|()| st.fs.chmod(&path, 0o600))
        };
        if let Err(e) = r {
            let what = if o.has('d') { "directory" } else { "file" };
            return Out::fail(
                1,
                format!(
                    "mktemp: failed to create {what} via template {}: {}\n",
                    q(&shown),
                    e.text()
                ),
            );
        }
    }
    Out::ok(format!("{shown}\n"))
}

// ---- stat -----------------------------------------------------------------------------

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
        let special = match shift {
            6 => n.mode & 0o4000 != 0,
            3 => n.mode & 0o2000 != 0,
            _ => n.mode & 0o1000 != 0,
        };
        s.push(match (special, bits & 1 != 0, shift) {
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

/// `2024-03-01 10:00:00.123456789 +0000` in the machine's zone.
fn stat_time(st: &State, t: i64, nanos: u64) -> String {
    let (off, _) = st.profile.node.persona().zone.at(t);
    let local = t + i64::from(off);
    let (y, m, d) = crate::persona::civil(local.div_euclid(86_400));
    let s = local.rem_euclid(86_400);
    let sign = if off < 0 { '-' } else { '+' };
    let off = off.unsigned_abs();
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}.{nanos:09} {sign}{:02}{:02}",
        s / 3600,
        (s % 3600) / 60,
        s % 60,
        off / 3600,
        (off % 3600) / 60
    )
}

fn user_name(st: &State, uid: u32) -> String {
    st.user_name(uid).to_owned()
}

fn file_type(n: &Node, path: &str) -> &'static str {
    match n.kind {
        Kind::Dir => "directory",
        Kind::Symlink => "symbolic link",
        Kind::CharDev => "character special file",
        Kind::File if path.starts_with("/dev/") && path != "/dev/shm" => "character special file",
        Kind::File if n.size() == 0 => "regular empty file",
        Kind::File => "regular file",
    }
}

fn device(st: &State, path: &str) -> (u32, u32) {
    if path.starts_with("/proc") {
        return (0, 22);
    }
    if path.starts_with("/dev") {
        return (0, 5);
    }
    if path.starts_with("/tmp") || path.starts_with("/run") || path.starts_with("/dev/shm") {
        // /tmp is on the root filesystem on Debian 12; /run is tmpfs.
        if path.starts_with("/run") {
            return (0, 25);
        }
    }
    match st.profile.node.persona().platform.disk() {
        d if d.starts_with("nvme") => (259, 1),
        "vda" => (254, 1),
        "xvda" => (202, 1),
        _ => (8, 1),
    }
}

fn stat_format(st: &State, fmt: &str, shown: &str, path: &str, n: &Node) -> String {
    let ino = 131_072 + hash(path, 7) % 3_000_000;
    let blocks = n.size().div_ceil(4096) * 8;
    let nanos = if path.starts_with("/usr/") {
        0
    } else {
        hash(path, n.mtime as u64) % 1_000_000_000
    };
    let (maj, min) = device(st, path);
    let mut out = String::new();
    let mut it = fmt.chars().peekable();
    while let Some(c) = it.next() {
        if c == '\\' {
            match it.next() {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some('\\') => out.push('\\'),
                Some(o) => {
                    out.push('\\');
                    out.push(o);
                }
                None => out.push('\\'),
            }
            continue;
        }
        if c != '%' {
            out.push(c);
            continue;
        }
        let Some(k) = it.next() else {
            out.push('%');
            break;
        };
        match k {
            '%' => out.push('%'),
            'n' => out.push_str(shown),
            'N' => {
                if n.kind == Kind::Symlink {
                    let _ = write!(out, "'{shown}' -> '{}'", String::from_utf8_lossy(&n.data));
                } else {
                    let _ = write!(out, "'{shown}'");
                }
            }
            's' => out.push_str(&n.size().to_string()),
            'a' => {
                let _ = write!(out, "{:o}", n.mode & 0o7777);
            }
            'A' => out.push_str(&mode_string(n)),
            'f' => {
                let t = match n.kind {
                    Kind::Dir => 0o040000,
                    Kind::Symlink => 0o120000,
                    Kind::File => 0o100000,
                    Kind::CharDev => 0o020000,
                };
                let _ = write!(out, "{:x}", t | n.mode);
            }
            'F' => out.push_str(file_type(n, path)),
            'u' | 'g' => out.push_str(&n.uid.to_string()),
            'U' | 'G' => out.push_str(&user_name(st, n.uid)),
            'i' => out.push_str(&ino.to_string()),
            'h' => out.push_str(if n.kind == Kind::Dir { "2" } else { "1" }),
            'b' => out.push_str(&blocks.to_string()),
            'B' => out.push_str("512"),
            'o' => out.push_str("4096"),
            'd' => out.push_str(&((maj << 8) | min).to_string()),
            'D' => {
                let _ = write!(out, "{:x}", (maj << 8) | min);
            }
            't' => {
                let _ = write!(out, "{maj:x}");
            }
            'T' => {
                let _ = write!(out, "{min:x}");
            }
            'x' | 'y' | 'z' | 'w' => out.push_str(&stat_time(st, n.mtime, nanos)),
            'X' | 'Y' | 'Z' | 'W' => out.push_str(&n.mtime.to_string()),
            'm' => out.push('/'),
            other => {
                out.push('?');
                let _ = other;
            }
        }
    }
    out
}

fn stat(st: &State, args: &[String]) -> Out {
    let o = try_opts!(getopt::parse(
        "stat",
        args,
        "LftZ",
        "c",
        &[
            ("dereference", 'L', false),
            ("file-system", 'f', false),
            ("format", 'c', true),
            ("printf", 'P', true),
            ("terse", 't', false),
            ("cached", 'C', true),
        ],
        1
    ));
    if o.operands.is_empty() {
        return usage_error("stat", "missing operand", 1);
    }
    let mut out = Out::default();
    for op in &o.operands {
        if out.full() || !st.budget.iterations(1) {
            break;
        }
        let path = path_of(st, op);
        let node = if o.has('L') {
            st.fs.stat(&path)
        } else {
            st.fs.lstat(&path)
        };
        let Some(n) = node else {
            out.eline(&format!(
                "stat: cannot statx '{op}': No such file or directory"
            ));
            out.status = 1;
            continue;
        };
        if let Some(f) = o.value('c') {
            out.line(&stat_format(st, f, op, &path, n));
            continue;
        }
        if let Some(f) = o.value('P') {
            let s = stat_format(st, f, op, &path, n);
            out.put(s.as_bytes());
            continue;
        }
        if o.has('t') {
            out.line(&stat_format(
                st,
                "%n %s %b %f %u %g %D %i %h %t %T %X %Y %Z %W %o",
                op,
                &path,
                n,
            ));
            continue;
        }
        let file = if n.kind == Kind::Symlink {
            format!("{op} -> {}", String::from_utf8_lossy(&n.data))
        } else {
            op.clone()
        };
        let text = stat_format(
            st,
            "  Size: %s\u{1}Blocks: %b\u{2}IO Block: 4096   %F\nDevice: %t\u{3}\tInode: %i\u{4}Links: %h\nAccess: (%a\u{5}/%A)  Uid: (%u\u{6}/%U\u{7})   Gid: (%g\u{6}/%G\u{7})\nAccess: %x\nModify: %y\nChange: %z\n Birth: %w\n",
            op,
            &path,
            n,
        );
        // Field widths of coreutils' default format, applied after the fact.
        let text = pad_fields(&text, st, &path, n);
        out.line(&format!("  File: {file}"));
        out.put(text.as_bytes());
    }
    out
}

/// Pads the default `stat` layout as coreutils' `%-10s`, `%-10b`, `%-11i`, `%04a`,
/// `%5u`, `%8U` do.
fn pad_fields(text: &str, st: &State, path: &str, n: &Node) -> String {
    let size = n.size().to_string();
    let blocks = (n.size().div_ceil(4096) * 8).to_string();
    let ino = (131_072 + hash(path, 7) % 3_000_000).to_string();
    let (maj, min) = device(st, path);
    let user = user_name(st, n.uid);
    let mut t = text.replacen(
        &format!("  Size: {size}\u{1}"),
        &format!("  Size: {size:<10}\t"),
        1,
    );
    t = t.replacen(
        &format!("Blocks: {blocks}\u{2}"),
        &format!("Blocks: {blocks:<10} "),
        1,
    );
    t = t.replacen(
        &format!("Device: {maj:x}\u{3}"),
        &format!("Device: {maj},{min}"),
        1,
    );
    t = t.replacen(
        &format!("Inode: {ino}\u{4}"),
        &format!("Inode: {ino:<11} "),
        1,
    );
    let mode = format!("{:o}", n.mode & 0o7777);
    t = t.replacen(
        &format!("({mode}\u{5}/"),
        &format!("({:04o}/", n.mode & 0o7777),
        1,
    );
    let uid = n.uid.to_string();
    t = t.replace(
        &format!("({uid}\u{6}/{user}\u{7})"),
        &format!("({uid:>5}/{user:>8})"),
    );
    t
}

// ---- dd -------------------------------------------------------------------------------

fn dd_number(s: &str) -> Option<u64> {
    let digits: String = s.chars().take_while(char::is_ascii_digit).collect();
    let n: u64 = digits.parse().ok()?;
    let mult: u64 = match &s[digits.len()..] {
        "" | "c" => 1,
        "w" => 2,
        "b" => 512,
        "kB" => 1000,
        "K" | "k" | "KiB" => 1024,
        "MB" => 1_000_000,
        "M" | "MiB" => 1 << 20,
        "GB" => 1_000_000_000,
        "G" | "GiB" => 1 << 30,
        _ => return None,
    };
    n.checked_mul(mult)
}

/// dd's human size: one decimal below 10, else a whole number, rounded to nearest.
fn human(v: f64, units: &[&str], base: f64) -> String {
    let mut v = v;
    let mut i = 0;
    while v >= base && i + 1 < units.len() {
        v /= base;
        i += 1;
    }
    if v < 10.0 {
        format!("{v:.1} {}", units[i])
    } else {
        format!("{v:.0} {}", units[i])
    }
}

fn dd_summary(st: &State, bytes: u64, ibs: u64, obs: u64) -> String {
    let (fi, pi) = (bytes / ibs, u64::from(!bytes.is_multiple_of(ibs)));
    let (fo, po) = (bytes / obs, u64::from(!bytes.is_multiple_of(obs)));
    let mut s = format!("{fi}+{pi} records in\n{fo}+{po} records out\n");
    let _ = write!(s, "{bytes} byte{}", if bytes == 1 { "" } else { "s" });
    if bytes >= 1000 {
        let si = human(bytes as f64, &["B", "kB", "MB", "GB", "TB"], 1000.0);
        if bytes >= 1024 {
            let iec = human(bytes as f64, &["B", "KiB", "MiB", "GiB", "TiB"], 1024.0);
            let _ = write!(s, " ({si}, {iec})");
        } else {
            let _ = write!(s, " ({si})");
        }
    }
    // A plausible time: a fixed start-up cost and memory speed, with jitter.
    let jitter = (hash("dd", st.now as u64) % 9000) as f64 * 1e-9;
    let secs = 2.5e-5 + jitter + bytes as f64 / 2.1e9;
    let rate = bytes as f64 / secs;
    let r = {
        let units = ["kB/s", "MB/s", "GB/s", "TB/s"];
        let mut v = rate / 1000.0;
        let mut i = 0;
        while v >= 1000.0 && i + 1 < units.len() {
            v /= 1000.0;
            i += 1;
        }
        if v < 100.0 {
            format!("{v:.1} {}", units[i])
        } else {
            format!("{v:.0} {}", units[i])
        }
    };
    let _ = writeln!(
        s,
        " copied, {} s, {r}",
        super::awk::c_format_one("%g", secs)
    );
    s
}

fn dd(st: &mut State, args: &[String], ctx: &Ctx<'_>) -> Out {
    let (mut inf, mut of) = (None::<String>, None::<String>);
    let (mut ibs, mut obs) = (512u64, 512u64);
    let (mut count, mut skip, mut seek) = (None::<u64>, 0u64, 0u64);
    let mut quiet = false;
    let mut notrunc = false;
    for a in args {
        let Some((k, v)) = a.split_once('=') else {
            return Out::fail(
                1,
                format!(
                    "dd: unrecognized operand {}\nTry 'dd --help' for more information.\n",
                    q(a)
                ),
            );
        };
        let num =
            || dd_number(v).ok_or_else(|| Out::fail(1, format!("dd: invalid number: {}\n", q(v))));
        match k {
            "if" => inf = Some(v.to_owned()),
            "of" => of = Some(v.to_owned()),
            "bs" => match num() {
                Ok(0) => return Out::fail(1, format!("dd: invalid number: {}\n", q(v))),
                Ok(n) => (ibs, obs) = (n, n),
                Err(e) => return e,
            },
            "ibs" => match num() {
                Ok(n) if n > 0 => ibs = n,
                Ok(_) => return Out::fail(1, format!("dd: invalid number: {}\n", q(v))),
                Err(e) => return e,
            },
            "obs" => match num() {
                Ok(n) if n > 0 => obs = n,
                Ok(_) => return Out::fail(1, format!("dd: invalid number: {}\n", q(v))),
                Err(e) => return e,
            },
            "count" => match num() {
                Ok(n) => count = Some(n),
                Err(e) => return e,
            },
            "skip" | "iseek" => match num() {
                Ok(n) => skip = n,
                Err(e) => return e,
            },
            "seek" | "oseek" => match num() {
                Ok(n) => seek = n,
                Err(e) => return e,
            },
            "status" => quiet = v == "none",
            "conv" => notrunc = v.split(',').any(|c| c == "notrunc"),
            "iflag" | "oflag" | "cbs" => {}
            _ => {
                return Out::fail(
                    1,
                    format!(
                        "dd: unrecognized operand {}\nTry 'dd --help' for more information.\n",
                        q(a)
                    ),
                );
            }
        }
    }
    let want = count.map(|c| c.saturating_mul(ibs));
    let src_path = inf.as_deref().map(|f| path_of(st, f));
    let data: Vec<u8> = match (&inf, &src_path) {
        (Some(_), Some(p)) if p == "/dev/zero" || p == "/dev/urandom" || p == "/dev/random" => {
            let n = want.unwrap_or(MAX_BUFFER as u64).min(MAX_BUFFER as u64) as usize;
            device_bytes(st, p, n)
        }
        (Some(f), Some(p)) => {
            if unreadable(st, p) {
                return Out::fail(1, format!("dd: failed to open '{f}': Permission denied\n"));
            }
            match st.fs.read(p) {
                Ok(d) => {
                    let start = (skip.saturating_mul(ibs) as usize).min(d.len());
                    let d = &d[start..];
                    let end = want.map_or(d.len(), |w| (w as usize).min(d.len()));
                    take(st, &d[..end], MAX_BUFFER).to_vec()
                }
                Err(FsError::IsDir) => {
                    return Out::fail(
                        1,
                        format!(
                            "dd: error reading '{f}': Is a directory\n0+0 records in\n0+0 records out\n0 bytes copied, 2.8e-05 s, 0.0 kB/s\n"
                        ),
                    );
                }
                Err(e) => return Out::fail(1, format!("dd: failed to open '{f}': {}\n", e.text())),
            }
        }
        _ => {
            let d = take(st, ctx.stdin, MAX_BUFFER);
            let start = (skip.saturating_mul(ibs) as usize).min(d.len());
            let d = &d[start..];
            let end = want.map_or(d.len(), |w| (w as usize).min(d.len()));
            d[..end].to_vec()
        }
    };
    // An endless device read with a count copies all of it, though only MAX_BUFFER is
    // kept: the summary counts what dd would have copied.
    let endless = src_path
        .as_deref()
        .is_some_and(|p| p == "/dev/zero" || p == "/dev/urandom" || p == "/dev/random");
    let copied = match want {
        Some(w) if endless => w.min(1 << 40),
        _ => data.len() as u64,
    };
    let mut out = Out::default();
    match &of {
        None => {
            out.put(&data);
        }
        Some(f) => {
            let path = path_of(st, f);
            let (uid, now) = (st.uid, st.now);
            let r = if !may_write(st, &path) {
                Err(FsError::Denied)
            } else if seek > 0 || notrunc {
                let mut old = st.fs.read(&path).map(<[u8]>::to_vec).unwrap_or_default();
                let at = (seek.saturating_mul(obs) as usize).min(MAX_BUFFER);
                if old.len() < at {
                    old.resize(at, 0);
                }
                let end = (at + data.len()).min(MAX_BUFFER);
                if old.len() < end {
                    old.resize(end, 0);
                }
                old[at..end].copy_from_slice(&data[..end - at]);
                if st.budget.take_data(old.len()) < old.len() {
                    return out;
                }
                st.fs.write(&path, &old, false, uid, now)
            } else {
                st.fs.write(&path, &data, false, uid, now)
            };
            if let Err(e) = r {
                return Out::fail(1, format!("dd: failed to open '{f}': {}\n", e.text()));
            }
        }
    }
    if !quiet {
        out.err
            .extend_from_slice(dd_summary(st, copied, ibs, obs).as_bytes());
    }
    out
}

// ---- tar ------------------------------------------------------------------------------

struct Entry {
    name: String,
    kind: Kind,
    mode: u32,
    uid: u32,
    mtime: i64,
    data: Vec<u8>,
}

fn octal(field: &[u8]) -> u64 {
    let s: String = field
        .iter()
        .take_while(|&&b| b != 0)
        .map(|&b| b as char)
        .collect();
    u64::from_str_radix(s.trim(), 8).unwrap_or(0)
}

/// Reads a ustar archive; `None` when it is not one.
fn tar_parse(st: &State, data: &[u8]) -> Option<Vec<Entry>> {
    let mut v = Vec::new();
    let mut i = 0;
    while i + 512 <= data.len() {
        if !st.budget.iterations(1) {
            return None;
        }
        let h = &data[i..i + 512];
        if h.iter().all(|&b| b == 0) {
            break;
        }
        let sum: u64 = h
            .iter()
            .enumerate()
            .map(|(k, &b)| {
                if (148..156).contains(&k) {
                    32
                } else {
                    u64::from(b)
                }
            })
            .sum();
        if sum != octal(&h[148..156]) {
            return if v.is_empty() { None } else { Some(v) };
        }
        let mut name: String = String::from_utf8_lossy(&h[..100])
            .trim_end_matches('\0')
            .to_owned();
        let prefix = String::from_utf8_lossy(&h[345..500])
            .trim_end_matches('\0')
            .to_owned();
        if !prefix.is_empty() {
            name = format!("{prefix}/{name}");
        }
        let size = octal(&h[124..136]) as usize;
        let kind = match h[156] {
            b'5' => Kind::Dir,
            b'2' => Kind::Symlink,
            _ => Kind::File,
        };
        let start = i + 512;
        let end = start.saturating_add(size).min(data.len());
        let body = if kind == Kind::Symlink {
            String::from_utf8_lossy(&h[157..257])
                .trim_end_matches('\0')
                .as_bytes()
                .to_vec()
        } else {
            data[start..end].to_vec()
        };
        v.push(Entry {
            name,
            kind,
            mode: octal(&h[100..108]) as u32,
            uid: octal(&h[108..116]) as u32,
            mtime: octal(&h[136..148]) as i64,
            data: body,
        });
        i = start + size.div_ceil(512) * 512;
    }
    Some(v)
}

fn tar_header(e: &Entry, user: &str) -> [u8; 512] {
    let mut h = [0u8; 512];
    let name = e.name.as_bytes();
    h[..name.len().min(100)].copy_from_slice(&name[..name.len().min(100)]);
    let put = |h: &mut [u8; 512], at: usize, len: usize, v: u64| {
        let s = format!("{v:0w$o}", w = len - 1);
        h[at..at + len - 1].copy_from_slice(&s.as_bytes()[s.len() - (len - 1)..]);
    };
    put(&mut h, 100, 8, u64::from(e.mode & 0o7777));
    put(&mut h, 108, 8, u64::from(e.uid));
    put(&mut h, 116, 8, u64::from(e.uid));
    let size = if e.kind == Kind::File {
        e.data.len() as u64
    } else {
        0
    };
    put(&mut h, 124, 12, size);
    put(&mut h, 136, 12, e.mtime.max(0) as u64);
    h[156] = match e.kind {
        Kind::Dir => b'5',
        Kind::Symlink => b'2',
        Kind::CharDev => b'3',
        Kind::File => b'0',
    };
    if e.kind == Kind::Symlink {
        let t = &e.data[..e.data.len().min(100)];
        h[157..157 + t.len()].copy_from_slice(t);
    }
    h[257..263].copy_from_slice(b"ustar ");
    h[263..265].copy_from_slice(b" \0");
    for at in [265, 297] {
        let u = user.as_bytes();
        h[at..at + u.len().min(31)].copy_from_slice(&u[..u.len().min(31)]);
    }
    h[148..156].copy_from_slice(b"        ");
    let sum: u64 = h.iter().map(|&b| u64::from(b)).sum();
    let s = format!("{sum:06o}\0 ");
    h[148..156].copy_from_slice(s.as_bytes());
    h
}

fn gunzip(data: &[u8]) -> Option<Vec<u8>> {
    use std::io::Read as _;
    let mut d = flate2::read::MultiGzDecoder::new(data);
    let mut out = Vec::new();
    // Never more than the buffer cap, whatever the archive claims: no inflation bomb.
    d.by_ref()
        .take(MAX_BUFFER as u64 + 1)
        .read_to_end(&mut out)
        .ok()?;
    (out.len() <= MAX_BUFFER).then_some(out)
}

fn tar_time(st: &State, t: i64) -> String {
    let (off, _) = st.profile.node.persona().zone.at(t);
    let local = t + i64::from(off);
    let (y, m, d) = crate::persona::civil(local.div_euclid(86_400));
    let s = local.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}",
        s / 3600,
        (s % 3600) / 60
    )
}

fn tar(st: &mut State, args: &[String], ctx: &Ctx<'_>) -> Out {
    // The first word may hold bundled letters without a dash (`tar xzf a.tgz`).
    let mut args: Vec<String> = args.to_vec();
    if let Some(first) = args.first()
        && !first.starts_with('-')
        && first.chars().all(|c| "ctxvzjJfpPC".contains(c))
    {
        args[0] = format!("-{first}");
    }
    let o = try_opts!(getopt::parse(
        "tar",
        &args,
        "ctxvzjJpPkrua",
        "fC",
        &[
            ("create", 'c', false),
            ("list", 't', false),
            ("extract", 'x', false),
            ("get", 'x', false),
            ("verbose", 'v', false),
            ("gzip", 'z', false),
            ("file", 'f', true),
            ("directory", 'C', true),
            ("overwrite", 'k', false),
        ],
        2
    ));
    let modes: Vec<char> = ['c', 't', 'x'].into_iter().filter(|c| o.has(*c)).collect();
    let mode = match modes[..] {
        [m] => m,
        [] => {
            return Out::fail(
                2,
                "tar: You must specify one of the '-Acdtrux', '--delete' or '--test-label' options\nTry 'tar --help' or 'tar --usage' for more information.\n",
            );
        }
        _ => {
            return Out::fail(
                2,
                "tar: You may not specify more than one '-Acdtrux', '--delete' or  '--test-label' option\nTry 'tar --help' or 'tar --usage' for more information.\n",
            );
        }
    };
    let file = o.value('f').map(str::to_owned);
    let base = o
        .value('C')
        .map_or_else(|| st.cwd.clone(), |d| path_of(st, d));
    let mut out = Out::default();
    let verbose = o.has('v');
    if mode == 'c' {
        if o.operands.is_empty() {
            return Out::fail(
                2,
                "tar: Cowardly refusing to create an empty archive\nTry 'tar --help' or 'tar --usage' for more information.\n",
            );
        }
        let mut entries = Vec::new();
        let mut stack: Vec<String> = o.operands.iter().rev().cloned().collect();
        while let Some(op) = stack.pop() {
            if !st.budget.iterations(1) || entries.len() > 256 {
                break;
            }
            let path = fs::normalize(&base, &st.home, &op);
            let Some(n) = st.fs.lstat(&path) else {
                out.eline(&format!(
                    "tar: {op}: Cannot stat: No such file or directory"
                ));
                out.status = 2;
                continue;
            };
            let name = op.trim_start_matches('/').to_owned();
            if op.starts_with('/') && entries.is_empty() && !out.err.starts_with(b"tar: Removing") {
                out.eline("tar: Removing leading `/' from member names");
            }
            let n = n.clone();
            if n.kind == Kind::Dir {
                entries.push(Entry {
                    name: format!("{}/", name.trim_end_matches('/')),
                    kind: Kind::Dir,
                    mode: n.mode,
                    uid: n.uid,
                    mtime: n.mtime,
                    data: Vec::new(),
                });
                if let Ok(list) = st.fs.list(&path) {
                    for (child, _) in list.into_iter().rev() {
                        stack.push(format!("{}/{child}", op.trim_end_matches('/')));
                    }
                }
            } else {
                let data = take(st, &n.data, MAX_BUFFER).to_vec();
                entries.push(Entry {
                    name,
                    kind: n.kind,
                    mode: n.mode,
                    uid: n.uid,
                    mtime: n.mtime,
                    data,
                });
            }
        }
        let mut archive = Vec::new();
        for e in &entries {
            if verbose {
                out.line(&e.name);
            }
            archive.extend_from_slice(&tar_header(e, &user_name(st, e.uid)));
            if e.kind == Kind::File {
                archive.extend_from_slice(&e.data);
                archive.resize(archive.len().div_ceil(512) * 512, 0);
            }
            if archive.len() > MAX_BUFFER {
                break;
            }
        }
        archive.resize(archive.len() + 1024, 0);
        archive.resize(archive.len().div_ceil(10_240) * 10_240, 0);
        if o.has('z') {
            use std::io::Write as _;
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            let _ = enc.write_all(&archive);
            archive = enc.finish().unwrap_or_default();
        }
        match file.as_deref() {
            None | Some("-") => {
                out.put(&archive);
            }
            Some(f) => {
                let path = path_of(st, f);
                let (uid, now) = (st.uid, st.now);
                if st.budget.take_data(archive.len()) < archive.len() {
                    return out;
                }
                let r = if may_write(st, &path) {
                    st.fs.write(&path, &archive, false, uid, now)
                } else {
                    Err(FsError::Denied)
                };
                if let Err(e) = r {
                    out.eline(&format!("tar: {f}: Cannot open: {}", e.text()));
                    out.eline("tar: Error is not recoverable: exiting now");
                    out.status = 2;
                }
            }
        }
        if out.status != 0 && !out.err.ends_with(b"exiting now\n") {
            out.eline("tar: Exiting with failure status due to previous errors");
        }
        return out;
    }
    let raw = match file.as_deref() {
        None | Some("-") => take(st, ctx.stdin, MAX_BUFFER).to_vec(),
        Some(f) => match load(st, f, ctx) {
            Ok(d) => d,
            Err(e) => {
                return Out::fail(
                    2,
                    format!(
                        "tar: {f}: Cannot open: {}\ntar: Error is not recoverable: exiting now\n",
                        e.text()
                    ),
                );
            }
        },
    };
    let data = if raw.starts_with(&[0x1f, 0x8b]) {
        match gunzip(&raw) {
            Some(d) => d,
            None => {
                return Out::fail(
                    2,
                    "\ngzip: stdin: unexpected end of file\ntar: Child returned status 1\ntar: Error is not recoverable: exiting now\n",
                );
            }
        }
    } else {
        raw
    };
    if data.is_empty() {
        return Out::fail(
            2,
            "tar: This does not look like a tar archive\ntar: Exiting with failure status due to previous errors\n",
        );
    }
    let Some(entries) = tar_parse(st, &data) else {
        return Out::fail(
            2,
            "tar: This does not look like a tar archive\ntar: Skipping to next header\ntar: Exiting with failure status due to previous errors\n",
        );
    };
    for e in entries {
        if out.full() || !st.budget.iterations(1) {
            break;
        }
        if mode == 't' {
            if verbose {
                let n = Node {
                    kind: e.kind,
                    mode: e.mode,
                    uid: e.uid,
                    data: Cow::Borrowed(b""),
                    shown_size: None,
                    mtime: e.mtime,
                };
                let owner = user_name(st, e.uid);
                let size = if e.kind == Kind::File {
                    e.data.len()
                } else {
                    0
                };
                let mut l = format!(
                    "{} {owner}/{owner} {size:>9} {} {}",
                    mode_string(&n),
                    tar_time(st, e.mtime),
                    e.name
                );
                if e.kind == Kind::Symlink {
                    let _ = write!(l, " -> {}", String::from_utf8_lossy(&e.data));
                }
                out.line(&l);
            } else {
                out.line(&e.name);
            }
            continue;
        }
        if verbose {
            out.line(&e.name);
        }
        let name = e.name.trim_start_matches('/');
        if name.split('/').any(|c| c == "..") {
            out.eline(&format!("tar: {name}: Member name contains '..'"));
            out.status = 2;
            continue;
        }
        let path = fs::normalize(&base, &st.home, name);
        let (uid, now) = (st.uid, st.now);
        let r = if !may_write(st, &path) {
            Err(FsError::Denied)
        } else {
            match e.kind {
                Kind::Dir => match st.fs.stat(&path) {
                    Some(n) if n.kind == Kind::Dir => Ok(()),
                    _ => st.fs.mkdir(&path, uid, now),
                },
                Kind::Symlink => symlink(st, &String::from_utf8_lossy(&e.data), &path),
                Kind::CharDev => Ok(()),
                Kind::File => {
                    if st.budget.take_data(e.data.len()) < e.data.len() {
                        break;
                    }
                    st.fs
                        .write(&path, &e.data, false, uid, e.mtime)
                        .and_then(|()| st.fs.chmod(&path, e.mode))
                }
            }
        };
        if let Err(err) = r {
            let what = if e.kind == Kind::Dir {
                "Cannot mkdir"
            } else {
                "Cannot open"
            };
            out.eline(&format!("tar: {name}: {what}: {}", err.text()));
            out.status = 2;
        }
    }
    if out.status != 0 {
        out.eline("tar: Exiting with failure status due to previous errors");
    }
    out
}

// ---- find -----------------------------------------------------------------------------

/// Shell glob for `-name`: `*`, `?`, `[...]`; iterative with one backtrack point, so
/// linear in practice and never recursive.
pub(super) fn glob(pat: &[u8], s: &[u8]) -> bool {
    let (mut p, mut i) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while i < s.len() {
        if p < pat.len() {
            match pat[p] {
                b'*' => {
                    star = Some((p, i));
                    p += 1;
                    continue;
                }
                b'?' => {
                    p += 1;
                    i += 1;
                    continue;
                }
                b'[' => {
                    if let Some(end) = pat[p + 1..]
                        .iter()
                        .skip(1)
                        .position(|&c| c == b']')
                        .map(|e| p + 2 + e)
                    {
                        let mut set = &pat[p + 1..end];
                        let neg = matches!(set.first(), Some(b'!' | b'^'));
                        if neg {
                            set = &set[1..];
                        }
                        let c = s[i];
                        let mut hit = false;
                        let mut k = 0;
                        while k < set.len() {
                            if k + 2 < set.len() && set[k + 1] == b'-' {
                                hit |= set[k] <= c && c <= set[k + 2];
                                k += 3;
                            } else {
                                hit |= set[k] == c;
                                k += 1;
                            }
                        }
                        if hit != neg {
                            p = end + 1;
                            i += 1;
                            continue;
                        }
                    } else if s[i] == b'[' {
                        p += 1;
                        i += 1;
                        continue;
                    }
                }
                b'\\' if p + 1 < pat.len() && pat[p + 1] == s[i] => {
                    p += 2;
                    i += 1;
                    continue;
                }
                c if c == s[i] => {
                    p += 1;
                    i += 1;
                    continue;
                }
                _ => {}
            }
        }
        match star {
            Some((sp, si)) => {
                p = sp + 1;
                i = si + 1;
                star = Some((sp, si + 1));
            }
            None => return false,
        }
    }
    while p < pat.len() && pat[p] == b'*' {
        p += 1;
    }
    p == pat.len()
}

#[derive(Debug, Clone)]
enum Test {
    Name(String, bool),
    Path(String),
    Type(char),
    Perm(u32, char),
    User(String),
    Size(char, u64, char),
    /// `-maxdepth`, `-mindepth`: read while parsing, no test of their own.
    Depth,
    Empty,
    Not(Box<Test>),
    Print,
    Exec(Vec<String>),
    Delete,
    Ls,
    True,
}

fn find(st: &mut State, args: &[String]) -> Out {
    let mut roots: Vec<String> = Vec::new();
    let mut i = 0;
    while i < args.len() && !args[i].starts_with('-') && args[i] != "!" && args[i] != "(" {
        roots.push(args[i].clone());
        i += 1;
    }
    if roots.is_empty() {
        roots.push(".".into());
    }
    let mut tests: Vec<Test> = Vec::new();
    let mut negate = false;
    let (mut maxdepth, mut mindepth) = (usize::MAX, 0usize);
    let mut has_action = false;
    while i < args.len() {
        let a = args[i].as_str();
        i += 1;
        let mut arg = || -> Result<String, Out> {
            let v = args.get(i).cloned();
            i += 1;
            v.ok_or_else(|| Out::fail(1, format!("find: missing argument to `{a}'\n")))
        };
        let t = match a {
            "!" | "-not" => {
                negate = !negate;
                continue;
            }
            "(" | ")" | "-a" | "-and" | "-o" | "-or" | "-xdev" | "-mount" | "-follow"
            | "-depth" | "-noleaf" => continue,
            "-name" | "-iname" => match arg() {
                Ok(v) => Test::Name(v, a == "-iname"),
                Err(e) => return e,
            },
            "-path" | "-wholename" => match arg() {
                Ok(v) => Test::Path(v),
                Err(e) => return e,
            },
            "-type" => match arg() {
                Ok(v) => match v.as_str() {
                    "f" | "d" | "l" | "b" | "c" | "p" | "s" => {
                        Test::Type(v.chars().next().unwrap_or('f'))
                    }
                    _ => return Out::fail(1, format!("find: Unknown argument to -type: {v}\n")),
                },
                Err(e) => return e,
            },
            "-perm" => match arg() {
                Ok(v) => {
                    let (kind, rest) = match v.chars().next() {
                        Some(c @ ('-' | '/')) => (c, &v[1..]),
                        _ => ('=', v.as_str()),
                    };
                    let bits = if let Ok(n) = u32::from_str_radix(rest, 8) {
                        n
                    } else {
                        // `u=s`, `g=s`, `+x`-like symbolic modes: the common ones.
                        match rest {
                            "u=s" | "u+s" => 0o4000,
                            "g=s" | "g+s" => 0o2000,
                            "o=w" | "o+w" => 0o002,
                            _ => return Out::fail(1, format!("find: invalid mode {}\n", q(&v))),
                        }
                    };
                    Test::Perm(bits, kind)
                }
                Err(e) => return e,
            },
            "-user" | "-group" | "-uid" | "-gid" => match arg() {
                Ok(v) => Test::User(v),
                Err(e) => return e,
            },
            "-size" => match arg() {
                Ok(v) => {
                    let (cmp, rest) = match v.chars().next() {
                        Some(c @ ('+' | '-')) => (c, &v[1..]),
                        _ => ('=', v.as_str()),
                    };
                    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
                    let unit = rest[digits.len()..].chars().next().unwrap_or('b');
                    Test::Size(cmp, digits.parse().unwrap_or(0), unit)
                }
                Err(e) => return e,
            },
            "-maxdepth" => match arg().map(|v| v.parse::<usize>()) {
                Ok(Ok(n)) => {
                    maxdepth = n;
                    Test::Depth
                }
                _ => {
                    return Out::fail(
                        1,
                        "find: Expected a positive decimal integer argument to -maxdepth, but got ‘’\n",
                    );
                }
            },
            "-mindepth" => match arg().map(|v| v.parse::<usize>()) {
                Ok(Ok(n)) => {
                    mindepth = n;
                    Test::Depth
                }
                _ => {
                    return Out::fail(
                        1,
                        "find: Expected a positive decimal integer argument to -mindepth\n",
                    );
                }
            },
            "-empty" => Test::Empty,
            "-print" | "-print0" => {
                has_action = true;
                Test::Print
            }
            "-ls" => {
                has_action = true;
                Test::Ls
            }
            "-delete" => {
                has_action = true;
                Test::Delete
            }
            "-exec" | "-execdir" | "-ok" => {
                let mut cmd = Vec::new();
                while i < args.len() && args[i] != ";" && args[i] != "+" {
                    cmd.push(args[i].clone());
                    i += 1;
                }
                if i >= args.len() {
                    return Out::fail(1, format!("find: missing argument to `{a}'\n"));
                }
                i += 1;
                has_action = true;
                Test::Exec(cmd)
            }
            "-writable" | "-readable" | "-executable" | "-newer" | "-mtime" | "-mmin"
            | "-atime" | "-ctime" | "-nouser" | "-nogroup" | "-prune" | "-quit" | "-regex"
            | "-links" | "-inum" => {
                if matches!(
                    a,
                    "-newer"
                        | "-mtime"
                        | "-mmin"
                        | "-atime"
                        | "-ctime"
                        | "-regex"
                        | "-links"
                        | "-inum"
                ) {
                    let _ = arg();
                }
                Test::True
            }
            other => {
                return Out::fail(1, format!("find: unknown predicate `{other}'\n"));
            }
        };
        tests.push(if std::mem::take(&mut negate) {
            Test::Not(Box::new(t))
        } else {
            t
        });
    }
    if !has_action {
        tests.push(Test::Print);
    }
    let mut out = Out::default();
    for root in roots {
        let rpath = path_of(st, &root);
        if st.fs.lstat(&rpath).is_none() {
            out.eline(&format!("find: {}: No such file or directory", q(&root)));
            out.status = 1;
            continue;
        }
        // Depth-first, pre-order, with an explicit stack.
        let mut stack: Vec<(String, String, usize)> = vec![(root.clone(), rpath, 0)];
        while let Some((shown, path, depth)) = stack.pop() {
            if out.full() || !st.budget.iterations(1) {
                return out;
            }
            let Some(n) = st.fs.lstat(&path).cloned() else {
                continue;
            };
            if depth >= mindepth {
                run_tests(st, &tests, &shown, &path, &n, &mut out);
            }
            if n.kind == Kind::Dir && depth < maxdepth {
                if unreadable(st, &path) || (st.uid != 0 && path == "/root") {
                    out.eline(&format!("find: {}: Permission denied", q(&shown)));
                    out.status = 1;
                    continue;
                }
                if let Ok(list) = st.fs.list(&path) {
                    let children: Vec<String> = list.into_iter().map(|(c, _)| c).collect();
                    if !st.budget.iterations(children.len() as u64) {
                        return out;
                    }
                    for c in children.into_iter().rev() {
                        let cs = if shown.ends_with('/') {
                            format!("{shown}{c}")
                        } else {
                            format!("{shown}/{c}")
                        };
                        let cp = if path == "/" {
                            format!("/{c}")
                        } else {
                            format!("{path}/{c}")
                        };
                        stack.push((cs, cp, depth + 1));
                    }
                }
            }
        }
    }
    out
}

fn test_one(st: &State, t: &Test, shown: &str, n: &Node) -> bool {
    match t {
        Test::Name(p, ci) => {
            let base = shown
                .trim_end_matches('/')
                .rsplit('/')
                .next()
                .unwrap_or(shown);
            let base = if base.is_empty() { "/" } else { base };
            if *ci {
                glob(
                    p.to_ascii_lowercase().as_bytes(),
                    base.to_ascii_lowercase().as_bytes(),
                )
            } else {
                glob(p.as_bytes(), base.as_bytes())
            }
        }
        Test::Path(p) => glob(p.as_bytes(), shown.as_bytes()),
        Test::Type(c) => matches!(
            (c, n.kind),
            ('f', Kind::File) | ('d', Kind::Dir) | ('l', Kind::Symlink)
        ),
        Test::Perm(bits, kind) => {
            let m = n.mode & 0o7777;
            match kind {
                '-' => m & bits == *bits,
                '/' => *bits == 0 || m & bits != 0,
                _ => m == *bits,
            }
        }
        Test::User(u) => st.user_name(n.uid) == u || n.uid.to_string() == *u,
        Test::Size(cmp, v, unit) => {
            let unit_bytes: u64 = match unit {
                'c' => 1,
                'w' => 2,
                'k' => 1024,
                'M' => 1 << 20,
                'G' => 1 << 30,
                _ => 512,
            };
            let size = n.size().div_ceil(unit_bytes);
            match cmp {
                '+' => size > *v,
                '-' => size < *v,
                _ => size == *v,
            }
        }
        Test::Empty => n.kind == Kind::File && n.size() == 0,
        Test::Not(inner) => !test_one(st, inner, shown, n),
        _ => true,
    }
}

fn run_tests(st: &mut State, tests: &[Test], shown: &str, path: &str, n: &Node, out: &mut Out) {
    for t in tests {
        match t {
            Test::Print => out.line(shown),
            Test::Ls => {
                let owner = st.user_name(n.uid).to_owned();
                out.line(&format!(
                    "{:>9} {:>6} {} {:>3} {owner:<8} {owner:<8} {:>8} {} {shown}",
                    131_072 + hash(path, 7) % 3_000_000,
                    n.size().div_ceil(4096) * 4,
                    mode_string(n),
                    if n.kind == Kind::Dir { 2 } else { 1 },
                    n.size(),
                    tar_time(st, n.mtime)
                ));
            }
            Test::Delete => {
                if !may_write(st, path) || st.fs.remove(path, false, true).is_err() {
                    out.eline(&format!(
                        "find: cannot delete {}: Permission denied",
                        q(shown)
                    ));
                    out.status = 1;
                }
            }
            Test::Exec(cmd) => {
                let argv: Vec<String> = cmd.iter().map(|w| w.replace("{}", shown)).collect();
                if argv.is_empty() {
                    return;
                }
                let ctx = Ctx {
                    stdin: b"",
                    out_tty: false,
                };
                let r = commands::command(st, &argv, &ctx);
                out.put(&r.out);
                out.err.extend_from_slice(&r.err);
                if r.status != 0 {
                    return;
                }
            }
            Test::Depth | Test::True => {}
            other => {
                if !test_one(st, other, shown, n) {
                    return;
                }
            }
        }
    }
}

// ---- du -------------------------------------------------------------------------------

fn du(st: &State, args: &[String]) -> Out {
    let o = try_opts!(getopt::parse(
        "du",
        args,
        "achksmxLbP",
        "d",
        &[
            ("all", 'a', false),
            ("total", 'c', false),
            ("human-readable", 'h', false),
            ("summarize", 's', false),
            ("max-depth", 'd', true),
            ("apparent-size", 'A', false),
        ],
        1
    ));
    let ops = if o.operands.is_empty() {
        vec![".".to_owned()]
    } else {
        o.operands.clone()
    };
    let max_depth: usize = if o.has('s') {
        0
    } else {
        o.value('d')
            .and_then(|d| d.parse().ok())
            .unwrap_or(usize::MAX)
    };
    let fmt = |kib: u64| -> String {
        if o.has('h') {
            if kib == 0 {
                return "0".into();
            }
            let mut v = kib as f64;
            let mut i = 0;
            let units = ["K", "M", "G", "T"];
            while v >= 1024.0 && i + 1 < units.len() {
                v /= 1024.0;
                i += 1;
            }
            if v < 10.0 {
                format!("{:.1}{}", (v * 10.0).ceil() / 10.0, units[i])
            } else {
                format!("{:.0}{}", v.ceil(), units[i])
            }
        } else if o.has('m') {
            kib.div_ceil(1024).to_string()
        } else {
            kib.to_string()
        }
    };
    let mut out = Out::default();
    let mut total = 0u64;
    for op in &ops {
        let path = path_of(st, op);
        if st.fs.lstat(&path).is_none() {
            out.eline(&format!(
                "du: cannot access '{op}': No such file or directory"
            ));
            out.status = 1;
            continue;
        }
        // Post-order sizes with an explicit stack: (shown, path, depth, visited).
        let mut stack: Vec<(String, String, usize, bool)> = vec![(op.clone(), path, 0, false)];
        let mut sums: Vec<u64> = Vec::new();
        while let Some((shown, p, depth, visited)) = stack.pop() {
            if out.full() || !st.budget.iterations(1) {
                return out;
            }
            let Some(n) = st.fs.lstat(&p) else { continue };
            let own = if n.kind == Kind::Symlink {
                0
            } else {
                n.size().div_ceil(4096) * 4
            };
            if n.kind != Kind::Dir {
                if let Some(s) = sums.last_mut() {
                    *s += own;
                }
                if depth == 0 || (o.has('a') && depth <= max_depth) {
                    out.line(&format!("{}\t{shown}", fmt(own)));
                }
                if depth == 0 {
                    total += own;
                }
                continue;
            }
            if !visited {
                stack.push((shown.clone(), p.clone(), depth, true));
                sums.push(own);
                if unreadable(st, &p) {
                    out.eline(&format!(
                        "du: cannot read directory '{shown}': Permission denied"
                    ));
                    out.status = 1;
                    continue;
                }
                if let Ok(list) = st.fs.list(&p) {
                    for (c, _) in list.into_iter().rev() {
                        let cp = if p == "/" {
                            format!("/{c}")
                        } else {
                            format!("{p}/{c}")
                        };
                        stack.push((
                            format!("{}/{c}", shown.trim_end_matches('/')),
                            cp,
                            depth + 1,
                            false,
                        ));
                    }
                }
            } else {
                let s = sums.pop().unwrap_or(own);
                if let Some(parent) = sums.last_mut() {
                    *parent += s;
                }
                if depth <= max_depth {
                    out.line(&format!("{}\t{shown}", fmt(s)));
                }
                if depth == 0 {
                    total += s;
                }
            }
        }
    }
    if o.has('c') {
        out.line(&format!("{}\ttotal", fmt(total)));
    }
    out
}

// ---- diff -----------------------------------------------------------------------------

fn diff(st: &State, args: &[String], ctx: &Ctx<'_>) -> Out {
    let o = try_opts!(getopt::parse(
        "diff",
        args,
        "quNraiwbB",
        "",
        &[("brief", 'q', false), ("unified", 'u', false)],
        2
    ));
    let [a, b] = &o.operands[..] else {
        let msg = if o.operands.len() < 2 {
            format!(
                "missing operand after {}",
                q(o.operands.last().map_or("diff", |s| s.as_str()))
            )
        } else {
            format!("extra operand {}", q(&o.operands[2]))
        };
        return Out::fail(
            2,
            format!("diff: {msg}\ndiff: Try 'diff --help' for more information.\n"),
        );
    };
    let mut out = Out::default();
    let mut read = |f: &String| -> Option<Vec<u8>> {
        match load(st, f, ctx) {
            Ok(d) => Some(d),
            Err(e) => {
                out.eline(&format!("diff: {f}: {}", e.text()));
                out.status = 2;
                None
            }
        }
    };
    let (Some(da), Some(db)) = (read(a), read(b)) else {
        return out;
    };
    if da == db {
        return out;
    }
    out.status = 1;
    if o.has('q') {
        out.line(&format!("Files {a} and {b} differ"));
        return out;
    }
    let la: Vec<&[u8]> = super::lines_of(st, &da).unwrap_or_default();
    let lb: Vec<&[u8]> = super::lines_of(st, &db).unwrap_or_default();
    // An LCS table is quadratic: refuse what the budget cannot pay for.
    let cells = (la.len() as u64 + 1).saturating_mul(lb.len() as u64 + 1);
    if cells > 4_000_000 || !st.budget.iterations(cells / 16) {
        out.line(&format!("Files {a} and {b} differ"));
        return out;
    }
    let (n, m) = (la.len(), lb.len());
    let mut t = vec![0u32; (n + 1) * (m + 1)];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            t[i * (m + 1) + j] = if la[i] == lb[j] {
                t[(i + 1) * (m + 1) + j + 1] + 1
            } else {
                t[(i + 1) * (m + 1) + j].max(t[i * (m + 1) + j + 1])
            };
        }
    }
    // Walk the table into hunks of (a range, b range).
    let (mut i, mut j) = (0, 0);
    let mut hunks: Vec<(usize, usize, usize, usize)> = Vec::new();
    while i < n || j < m {
        if i < n && j < m && la[i] == lb[j] {
            i += 1;
            j += 1;
            continue;
        }
        let (si, sj) = (i, j);
        while (i < n || j < m) && !(i < n && j < m && la[i] == lb[j]) {
            if j >= m || (i < n && t[(i + 1) * (m + 1) + j] >= t[i * (m + 1) + j + 1]) {
                i += 1;
            } else {
                j += 1;
            }
        }
        hunks.push((si, i, sj, j));
    }
    let range = |s: usize, e: usize| {
        if e - s <= 1 {
            format!("{}", s + 1)
        } else {
            format!("{},{}", s + 1, e)
        }
    };
    for (si, ei, sj, ej) in hunks {
        let head = if si == ei {
            format!("{}a{}", si, range(sj, ej))
        } else if sj == ej {
            format!("{}d{}", range(si, ei), sj)
        } else {
            format!("{}c{}", range(si, ei), range(sj, ej))
        };
        out.line(&head);
        for l in &la[si..ei] {
            out.put(b"< ");
            out.put(l);
            out.put(b"\n");
        }
        if si != ei && sj != ej {
            out.line("---");
        }
        for l in &lb[sj..ej] {
            out.put(b"> ");
            out.put(l);
            out.put(b"\n");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob(b"*.conf", b"sshd.conf"));
        assert!(!glob(b"*.conf", b"sshd.confx"));
        assert!(glob(b"f?o", b"foo"));
        assert!(glob(b"[a-c]x", b"bx"));
        assert!(glob(b"*a*b*c*", b"xxaxxbxxcxx"));
        assert!(!glob(b"*a*b*c*d", &[b'a'; 4000]));
    }

    #[test]
    fn dd_sizes() {
        assert_eq!(human(1_048_576.0, &["B", "kB", "MB"], 1000.0), "1.0 MB");
        assert_eq!(human(20_000.0, &["B", "kB", "MB"], 1000.0), "20 kB");
        assert_eq!(dd_number("1M"), Some(1 << 20));
        assert_eq!(dd_number("x"), None);
    }
}
