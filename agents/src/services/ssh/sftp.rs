//! The SFTP subsystem as Debian's sshd runs it (`Subsystem sftp
//! /usr/lib/openssh/sftp-server`): protocol version 3 with OpenSSH 9.2's extensions, over
//! the session's fake filesystem (the overlay its shells see), answering with
//! sftp-server's status codes and messages. Sans-IO: bytes in, bytes out; uploads come
//! back to the driver for the capture spool. Nothing touches the real filesystem.
//!
//! Bounds, all checked before allocating: one message is at most [`MAX_MSG`] bytes (as
//! sftp-server's `SFTP_MAX_MSG_LENGTH`; a longer one ends the subsystem as it ends
//! sftp-server), at most [`MAX_HANDLES`] open handles, an upload at most [`MAX_UPLOAD`]
//! bytes and all uploads of one subsystem at most [`MAX_UPLOAD_TOTAL`].

use crate::services::shell::fs::{self, Fs, FsError, Kind, Node};
use std::borrow::Cow;
use std::collections::BTreeMap;

/// sftp-server's `SFTP_MAX_MSG_LENGTH`.
pub(crate) const MAX_MSG: usize = 256 * 1024;
/// sftp-server's `SFTP_MAX_READ_LENGTH` (a message less room for its header).
const MAX_READ: u32 = (MAX_MSG - 1024) as u32;
/// Open handles at once (sftp-server allows its file-descriptor limit).
const MAX_HANDLES: usize = 64;
/// The largest file one upload may build.
pub(crate) const MAX_UPLOAD: usize = 8 * 1024 * 1024;
/// Bytes all uploads of one subsystem may carry.
const MAX_UPLOAD_TOTAL: usize = 32 * 1024 * 1024;
/// Entries per READDIR answer, as sftp-server sends them.
const DIR_BATCH: usize = 100;
/// Longest path taken (Linux's PATH_MAX); longer is ENAMETOOLONG.
const MAX_PATH: usize = 4096;
/// Operations recorded as events per subsystem.
const MAX_LOGGED: usize = 256;

const SSH_FXP_INIT: u8 = 1;
const SSH_FXP_VERSION: u8 = 2;
const SSH_FXP_STATUS: u8 = 101;
const SSH_FXP_HANDLE: u8 = 102;
const SSH_FXP_DATA: u8 = 103;
const SSH_FXP_NAME: u8 = 104;
const SSH_FXP_ATTRS: u8 = 105;
const SSH_FXP_EXTENDED_REPLY: u8 = 201;

const FX_OK: u32 = 0;
const FX_EOF: u32 = 1;
const FX_NO_SUCH_FILE: u32 = 2;
const FX_PERMISSION_DENIED: u32 = 3;
const FX_FAILURE: u32 = 4;
const FX_BAD_MESSAGE: u32 = 5;
const FX_OP_UNSUPPORTED: u32 = 8;

const ATTR_SIZE: u32 = 1;
const ATTR_UIDGID: u32 = 2;
const ATTR_PERMISSIONS: u32 = 4;
const ATTR_ACMODTIME: u32 = 8;
const ATTR_EXTENDED: u32 = 0x8000_0000;

/// sftp-server's `status_to_message`.
fn status_message(code: u32) -> &'static str {
    match code {
        0 => "Success",
        1 => "End of file",
        2 => "No such file",
        3 => "Permission denied",
        4 => "Failure",
        5 => "Bad message",
        6 => "No connection",
        7 => "Connection lost",
        8 => "Operation unsupported",
        _ => "Unknown error",
    }
}

/// sftp-server's `errno_to_portable` for the errors the fake filesystem reports.
fn portable(e: FsError) -> u32 {
    match e {
        FsError::NotFound | FsError::NotDir => FX_NO_SUCH_FILE,
        FsError::Denied => FX_PERMISSION_DENIED,
        FsError::IsDir | FsError::Exists | FsError::NotEmpty | FsError::NoSpace => FX_FAILURE,
    }
}

/// The extensions OpenSSH 9.2's sftp-server announces in its VERSION, in its order
/// (read from the real server by tests/ssh_sftp.rs).
const EXTENSIONS: [(&str, &str); 11] = [
    ("posix-rename@openssh.com", "1"),
    ("statvfs@openssh.com", "2"),
    ("fstatvfs@openssh.com", "2"),
    ("hardlink@openssh.com", "1"),
    ("fsync@openssh.com", "1"),
    ("lsetstat@openssh.com", "1"),
    ("limits@openssh.com", "1"),
    ("expand-path@openssh.com", "1"),
    ("copy-data", "1"),
    ("home-directory", "1"),
    ("users-groups-by-id@openssh.com", "1"),
];

/// What the subsystem works on: the connection's filesystem and who is logged in.
pub(crate) struct Ctx<'a> {
    pub fs: &'a mut Fs,
    pub home: &'a str,
    pub uid: u32,
    pub user: &'a str,
    pub now: i64,
    /// Unix time to the machine's wall-clock seconds (its time zone), for long names.
    pub local: &'a dyn Fn(i64) -> i64,
}

/// A file written through the subsystem, for the capture spool.
#[derive(Debug)]
pub(crate) struct Upload {
    pub path: String,
    pub data: Vec<u8>,
}

/// What one input produced.
#[derive(Debug, Default)]
pub(crate) struct Out {
    /// Bytes for the client.
    pub data: Vec<u8>,
    pub uploads: Vec<Upload>,
    /// Operations worth an event (`sftp mkdir /tmp/x`), already capped.
    pub logged: Vec<String>,
    /// A cap was hit (for a LimitReached event).
    pub limit: Option<String>,
    /// The subsystem ended (as sftp-server exits on a protocol error).
    pub end: bool,
}

#[derive(Debug)]
enum Handle {
    File {
        path: String,
        /// What reads see: a snapshot at open, or the upload being built.
        data: Cow<'static, [u8]>,
        /// The size STAT shows, when larger than `data` (a base binary is a stub of its
        /// size): reads past the stub get zeros up to it, so a download is as long as
        /// the listing says.
        shown: u64,
        read: bool,
        write: bool,
        append: bool,
        /// Something was written: committed and captured at close.
        dirty: bool,
    },
    Dir {
        entries: Vec<(String, String, Attrs)>,
        next: usize,
    },
}

#[derive(Debug, Clone, Copy, Default)]
struct Attrs {
    size: u64,
    uid: u32,
    perms: u32,
    mtime: u32,
}

/// One SFTP subsystem session.
#[derive(Debug, Default)]
pub(crate) struct Sftp {
    buf: Vec<u8>,
    inited: bool,
    ended: bool,
    handles: BTreeMap<u32, Handle>,
    next_handle: u32,
    uploaded: usize,
    logged: usize,
}

/// A malformed message: sftp-server's `fatal_fr` ends the subsystem.
#[derive(Debug)]
struct Malformed;

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn u8(&mut self) -> Result<u8, Malformed> {
        let (&b, rest) = self.0.split_first().ok_or(Malformed)?;
        self.0 = rest;
        Ok(b)
    }
    fn u32(&mut self) -> Result<u32, Malformed> {
        let b = self.0.get(..4).ok_or(Malformed)?;
        let v = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
        self.0 = &self.0[4..];
        Ok(v)
    }
    fn u64(&mut self) -> Result<u64, Malformed> {
        Ok((u64::from(self.u32()?) << 32) | u64::from(self.u32()?))
    }
    fn bytes(&mut self) -> Result<&[u8], Malformed> {
        let n = self.u32()? as usize;
        let b = self.0.get(..n).ok_or(Malformed)?;
        self.0 = &self.0[n..];
        Ok(b)
    }
    fn string(&mut self) -> Result<String, Malformed> {
        Ok(String::from_utf8_lossy(self.bytes()?).into_owned())
    }
    /// An ATTRS block: (flags, size, perms), the rest read past.
    fn attrs(&mut self) -> Result<(u32, u64, u32), Malformed> {
        let flags = self.u32()?;
        let mut size = 0;
        let mut perms = 0;
        if flags & ATTR_SIZE != 0 {
            size = self.u64()?;
        }
        if flags & ATTR_UIDGID != 0 {
            self.u32()?;
            self.u32()?;
        }
        if flags & ATTR_PERMISSIONS != 0 {
            perms = self.u32()?;
        }
        if flags & ATTR_ACMODTIME != 0 {
            self.u32()?;
            self.u32()?;
        }
        if flags & ATTR_EXTENDED != 0 {
            // Each pair takes at least 8 bytes, so the message bounds the count.
            let count = self.u32()?;
            for _ in 0..count {
                self.bytes()?;
                self.bytes()?;
            }
        }
        Ok((flags, size, perms))
    }
}

fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_be_bytes());
}

fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_be_bytes());
}

fn put_str(out: &mut Vec<u8>, s: &[u8]) {
    put_u32(out, u32::try_from(s.len()).unwrap_or(u32::MAX));
    out.extend_from_slice(s);
}

fn put_attrs(out: &mut Vec<u8>, a: &Attrs) {
    put_u32(
        out,
        ATTR_SIZE | ATTR_UIDGID | ATTR_PERMISSIONS | ATTR_ACMODTIME,
    );
    put_u64(out, a.size);
    put_u32(out, a.uid);
    put_u32(out, a.uid);
    put_u32(out, a.perms);
    put_u32(out, a.mtime);
    put_u32(out, a.mtime);
}

fn attrs_of(n: &Node) -> Attrs {
    let kind = match n.kind {
        Kind::Dir => 0o040_000,
        Kind::File => 0o100_000,
        Kind::Symlink => 0o120_000,
        Kind::CharDev => 0o020_000,
    };
    Attrs {
        size: match n.kind {
            Kind::CharDev => 0,
            Kind::Symlink => n.data.len() as u64,
            _ => n.size(),
        },
        uid: n.uid,
        perms: kind | (n.mode & 0o7777),
        mtime: u32::try_from(n.mtime.max(0)).unwrap_or(u32::MAX),
    }
}

/// `ls -l`'s mode column (OpenBSD strmode, less its trailing space).
fn mode_string(perms: u32) -> String {
    let mut s = String::with_capacity(10);
    s.push(match perms & 0o170_000 {
        0o040_000 => 'd',
        0o120_000 => 'l',
        0o020_000 => 'c',
        _ => '-',
    });
    for shift in [6u32, 3, 0] {
        let bits = (perms >> shift) & 7;
        s.push(if bits & 4 != 0 { 'r' } else { '-' });
        s.push(if bits & 2 != 0 { 'w' } else { '-' });
        let special = perms & (0o1000 << (shift / 3)) != 0;
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

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// (year, month 0-11, day, hour, minute) of a Unix time, in UTC.
fn civil(t: i64) -> (i64, usize, i64, i64, i64) {
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, (m - 1) as usize, d, secs / 3600, secs % 3600 / 60)
}

/// sftp-server's `ls_file` line for a READDIR entry; `local` turns the time into the
/// machine's wall clock (sftp-server's localtime).
fn longname(
    name: &str,
    a: &Attrs,
    nlink: u32,
    user: &str,
    now: i64,
    local: &dyn Fn(i64) -> i64,
) -> String {
    let mtime = i64::from(a.mtime);
    let (y, mo, d, h, mi) = civil(local(mtime));
    let time = if now - (365 * 86_400) / 2 < mtime && now >= mtime {
        format!("{} {d:>2} {h:02}:{mi:02}", MONTHS[mo])
    } else {
        format!("{} {d:>2}  {y}", MONTHS[mo])
    };
    format!(
        "{}  {nlink:>3} {user:<8} {user:<8} {:>8} {time} {name}",
        mode_string(a.perms),
        a.size
    )
}

impl Sftp {
    pub(crate) fn new() -> Sftp {
        Sftp::default()
    }

    /// Feeds bytes from the client; answers every whole message they complete.
    pub(crate) fn input(&mut self, data: &[u8], ctx: &mut Ctx<'_>) -> Out {
        let mut out = Out::default();
        if self.ended {
            return out;
        }
        self.buf.extend_from_slice(data);
        let mut at = 0;
        while let Some(head) = self.buf.get(at..at + 4) {
            let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
            if len == 0 || len > MAX_MSG {
                // sftp-server: "bad message from ... length N" and exit.
                self.end(ctx, &mut out);
                break;
            }
            let Some(msg) = self.buf.get(at + 4..at + 4 + len) else {
                break;
            };
            let msg = msg.to_vec();
            at += 4 + len;
            if self.message(&msg, ctx, &mut out).is_err() {
                self.end(ctx, &mut out);
                break;
            }
        }
        if self.ended {
            self.buf = Vec::new();
        } else {
            self.buf.drain(..at);
        }
        out
    }

    /// The client closed its side: open uploads are committed and captured, as
    /// sftp-server's exit closes its files.
    pub(crate) fn eof(&mut self, ctx: &mut Ctx<'_>) -> Out {
        let mut out = Out::default();
        if !self.ended {
            self.end(ctx, &mut out);
        }
        out
    }

    /// The subsystem ends (once): what open uploads hold is committed and captured, as
    /// sftp-server's writes are on disk already when it exits.
    fn end(&mut self, ctx: &mut Ctx<'_>, out: &mut Out) {
        self.ended = true;
        out.end = true;
        let handles = std::mem::take(&mut self.handles);
        for (_, h) in handles {
            let _ = Self::commit(h, ctx, out);
        }
    }

    fn log(&mut self, out: &mut Out, what: String) {
        if self.logged < MAX_LOGGED {
            self.logged += 1;
            out.logged.push(what);
        }
    }

    fn message(&mut self, msg: &[u8], ctx: &mut Ctx<'_>, out: &mut Out) -> Result<(), Malformed> {
        let mut r = Reader(msg);
        let kind = r.u8()?;
        if !self.inited {
            // sftp-server: "Received %s before init" and exit.
            if kind != SSH_FXP_INIT {
                return Err(Malformed);
            }
            r.u32()?;
            self.inited = true;
            let mut body = vec![SSH_FXP_VERSION];
            put_u32(&mut body, 3);
            for (name, value) in EXTENSIONS {
                put_str(&mut body, name.as_bytes());
                put_str(&mut body, value.as_bytes());
            }
            send(out, &body);
            return Ok(());
        }
        let id = r.u32()?;
        match kind {
            3 => self.open(id, &mut r, ctx, out),
            4 => {
                let h = self.handle(&mut r)?;
                let code = match h.and_then(|h| self.handles.remove(&h)) {
                    None => FX_NO_SUCH_FILE,
                    Some(handle) => Self::commit(handle, ctx, out),
                };
                status(out, id, code);
                Ok(())
            }
            5 => self.read(id, &mut r, out),
            6 => self.write(id, &mut r, out),
            7 | 17 => {
                let path = self.path(&mut r, ctx)?;
                let node = if kind == 7 {
                    ctx.fs.lstat(&path)
                } else {
                    ctx.fs.stat(&path)
                };
                match node {
                    Some(n) => attrs_reply(out, id, &attrs_of(n)),
                    None => status(out, id, FX_NO_SUCH_FILE),
                }
                Ok(())
            }
            8 => {
                let h = self.handle(&mut r)?;
                match h.and_then(|h| self.handles.get(&h)) {
                    Some(Handle::File {
                        path, data, shown, ..
                    }) => {
                        let mut a = ctx.fs.stat(path).map(attrs_of).unwrap_or_default();
                        a.size = (*shown).max(data.len() as u64);
                        attrs_reply(out, id, &a);
                    }
                    _ => status(out, id, FX_NO_SUCH_FILE),
                }
                Ok(())
            }
            9 | 10 => {
                let path = if kind == 9 {
                    Some(self.path(&mut r, ctx)?)
                } else {
                    let h = self.handle(&mut r)?;
                    match h.and_then(|h| self.handles.get(&h)) {
                        Some(Handle::File { path, .. }) => Some(path.clone()),
                        _ => None,
                    }
                };
                let (flags, size, perms) = r.attrs()?;
                let code = match path {
                    None => FX_NO_SUCH_FILE,
                    Some(p) => self.setstat(&p, flags, size, perms, ctx, out),
                };
                status(out, id, code);
                Ok(())
            }
            11 => self.opendir(id, &mut r, ctx, out),
            12 => {
                let h = self.handle(&mut r)?;
                match h.and_then(|h| self.handles.get_mut(&h)) {
                    Some(Handle::Dir { entries, next }) => {
                        let batch = &entries[(*next).min(entries.len())..];
                        let batch = &batch[..batch.len().min(DIR_BATCH)];
                        if batch.is_empty() {
                            status(out, id, FX_EOF);
                        } else {
                            *next += batch.len();
                            let mut body = vec![SSH_FXP_NAME];
                            put_u32(&mut body, id);
                            put_u32(&mut body, batch.len() as u32);
                            for (name, long, a) in batch {
                                put_str(&mut body, name.as_bytes());
                                put_str(&mut body, long.as_bytes());
                                put_attrs(&mut body, a);
                            }
                            send(out, &body);
                        }
                    }
                    _ => status(out, id, FX_NO_SUCH_FILE),
                }
                Ok(())
            }
            13 => {
                let path = self.path(&mut r, ctx)?;
                self.log(out, format!("sftp rm {path}"));
                let code = match ctx.fs.lstat(&path) {
                    None => FX_NO_SUCH_FILE,
                    // unlink(2) on a directory: EISDIR.
                    Some(n) if n.kind == Kind::Dir => FX_FAILURE,
                    Some(_) => result(ctx.fs.remove(&path, false, false)),
                };
                status(out, id, code);
                Ok(())
            }
            14 => {
                let path = self.path(&mut r, ctx)?;
                let (flags, _, perms) = r.attrs()?;
                self.log(out, format!("sftp mkdir {path}"));
                let mut code = result(ctx.fs.mkdir(&path, ctx.uid, ctx.now));
                if code == FX_OK {
                    // mkdir(2) with the client's mode (0777 by default) less the umask.
                    let mode = if flags & ATTR_PERMISSIONS != 0 {
                        perms & 0o7777
                    } else {
                        0o777
                    };
                    code = result(ctx.fs.chmod(&path, mode & !0o022));
                }
                status(out, id, code);
                Ok(())
            }
            15 => {
                let path = self.path(&mut r, ctx)?;
                self.log(out, format!("sftp rmdir {path}"));
                let code = match ctx.fs.lstat(&path) {
                    None => FX_NO_SUCH_FILE,
                    Some(n) if n.kind != Kind::Dir => FX_NO_SUCH_FILE,
                    Some(_) => result(ctx.fs.remove(&path, false, true)),
                };
                status(out, id, code);
                Ok(())
            }
            16 => {
                let raw = r.string()?;
                let raw = if raw.is_empty() { ".".to_owned() } else { raw };
                match self.realpath(&raw, ctx) {
                    Some(p) => name_reply(out, id, &p),
                    None => status(out, id, FX_NO_SUCH_FILE),
                }
                Ok(())
            }
            18 => {
                let from = self.path(&mut r, ctx)?;
                let to = self.path(&mut r, ctx)?;
                let code = self.rename(&from, &to, false, ctx, out);
                status(out, id, code);
                Ok(())
            }
            19 => {
                let path = self.path(&mut r, ctx)?;
                match ctx.fs.lstat(&path) {
                    None => status(out, id, FX_NO_SUCH_FILE),
                    Some(n) if n.kind == Kind::Symlink => {
                        let target = String::from_utf8_lossy(&n.data).into_owned();
                        name_reply(out, id, &target);
                    }
                    // readlink(2) on something else: EINVAL.
                    Some(_) => status(out, id, FX_BAD_MESSAGE),
                }
                Ok(())
            }
            20 => {
                let target = r.string()?;
                let link = self.path(&mut r, ctx)?;
                self.log(out, format!("sftp ln -s {target} {link}"));
                // The fake filesystem makes no new links: what would work is refused.
                let (parent, _) = fs::split(&link);
                let code = if ctx.fs.lstat(&link).is_some() {
                    FX_FAILURE
                } else if ctx.fs.stat(parent).is_none_or(|n| n.kind != Kind::Dir) {
                    FX_NO_SUCH_FILE
                } else {
                    FX_PERMISSION_DENIED
                };
                status(out, id, code);
                Ok(())
            }
            200 => self.extended(id, &mut r, ctx, out),
            // sftp-server: "Unknown message N" and exit.
            _ => Err(Malformed),
        }
    }

    /// A path argument, made absolute against the home directory (sftp-server's working
    /// directory) and folded; `None`-like errors are answered by the caller.
    fn path(&self, r: &mut Reader<'_>, ctx: &Ctx<'_>) -> Result<String, Malformed> {
        let raw = r.string()?;
        Ok(absolute(&raw, ctx.home))
    }

    fn handle(&self, r: &mut Reader<'_>) -> Result<Option<u32>, Malformed> {
        let b = r.bytes()?;
        // sftp-server's handles are 4-byte indexes; anything else names none.
        Ok(<[u8; 4]>::try_from(b).ok().map(u32::from_be_bytes))
    }

    fn new_handle(&mut self, h: Handle, out: &mut Out, id: u32) {
        if self.handles.len() >= MAX_HANDLES {
            // EMFILE.
            status(out, id, FX_FAILURE);
            return;
        }
        let n = self.next_handle;
        self.next_handle = self.next_handle.wrapping_add(1);
        self.handles.insert(n, h);
        let mut body = vec![SSH_FXP_HANDLE];
        put_u32(&mut body, id);
        put_str(&mut body, &n.to_be_bytes());
        send(out, &body);
    }

    fn open(
        &mut self,
        id: u32,
        r: &mut Reader<'_>,
        ctx: &mut Ctx<'_>,
        out: &mut Out,
    ) -> Result<(), Malformed> {
        let path = self.path(r, ctx)?;
        let pflags = r.u32()?;
        let (aflags, _, perms) = r.attrs()?;
        let (read, write) = (pflags & 1 != 0, pflags & 2 != 0);
        let (append, creat, trunc, excl) = (
            pflags & 4 != 0,
            pflags & 8 != 0,
            pflags & 0x10 != 0,
            pflags & 0x20 != 0,
        );
        if path.len() > MAX_PATH {
            status(out, id, FX_BAD_MESSAGE);
            return Ok(());
        }
        if write {
            self.log(out, format!("sftp put {path}"));
        }
        let existing = ctx.fs.stat(&path).cloned();
        let mut shown = 0;
        let data: Cow<'static, [u8]> = match existing {
            Some(_) if creat && excl => {
                status(out, id, FX_FAILURE);
                return Ok(());
            }
            Some(n) if n.kind == Kind::Dir && write => {
                status(out, id, FX_FAILURE);
                return Ok(());
            }
            Some(n) => {
                if write && trunc && n.kind == Kind::File {
                    let code = result(ctx.fs.write(&path, b"", false, ctx.uid, ctx.now));
                    if code != FX_OK {
                        status(out, id, code);
                        return Ok(());
                    }
                    Cow::Borrowed(b"")
                } else if n.kind == Kind::File {
                    if !write {
                        shown = n.size();
                    }
                    n.data
                } else {
                    Cow::Borrowed(b"")
                }
            }
            None if !(write && creat) => {
                status(out, id, FX_NO_SUCH_FILE);
                return Ok(());
            }
            None => {
                let code = result(ctx.fs.write(&path, b"", false, ctx.uid, ctx.now));
                if code != FX_OK {
                    status(out, id, code);
                    return Ok(());
                }
                if aflags & ATTR_PERMISSIONS != 0 {
                    let _ = ctx.fs.chmod(&path, perms & 0o7777 & !0o022);
                }
                Cow::Borrowed(b"")
            }
        };
        self.new_handle(
            Handle::File {
                path,
                data,
                shown,
                read,
                write,
                append,
                dirty: false,
            },
            out,
            id,
        );
        Ok(())
    }

    fn read(&mut self, id: u32, r: &mut Reader<'_>, out: &mut Out) -> Result<(), Malformed> {
        let h = self.handle(r)?;
        let offset = r.u64()?;
        let len = r.u32()?.min(MAX_READ) as usize;
        match h.and_then(|h| self.handles.get(&h)) {
            Some(Handle::File {
                data,
                shown,
                read: true,
                ..
            }) => {
                let total = (*shown).max(data.len() as u64);
                if offset >= total {
                    status(out, id, FX_EOF);
                } else {
                    let left = usize::try_from(total - offset).unwrap_or(usize::MAX);
                    let start = usize::try_from(offset).unwrap_or(usize::MAX);
                    let zeros;
                    let d: &[u8] = match data.get(start..).filter(|d| !d.is_empty()) {
                        Some(d) => &d[..d.len().min(len)],
                        None => {
                            zeros = vec![0u8; len.min(left)];
                            &zeros
                        }
                    };
                    let mut body = Vec::with_capacity(d.len() + 9);
                    body.push(SSH_FXP_DATA);
                    put_u32(&mut body, id);
                    put_str(&mut body, d);
                    send(out, &body);
                }
            }
            // A directory or write-only handle: read(2) fails (EISDIR / EBADF).
            Some(Handle::File { .. }) => status(out, id, FX_FAILURE),
            _ => status(out, id, FX_NO_SUCH_FILE),
        }
        Ok(())
    }

    fn write(&mut self, id: u32, r: &mut Reader<'_>, out: &mut Out) -> Result<(), Malformed> {
        let h = self.handle(r)?;
        let offset = r.u64()?;
        let chunk = r.bytes()?;
        let uploaded = self.uploaded;
        let code = match h.and_then(|h| self.handles.get_mut(&h)) {
            Some(Handle::File {
                data,
                write: true,
                append,
                dirty,
                ..
            }) => {
                let start = if *append {
                    data.len()
                } else {
                    usize::try_from(offset).unwrap_or(usize::MAX)
                };
                let end = start.saturating_add(chunk.len());
                if end > MAX_UPLOAD || uploaded.saturating_add(chunk.len()) > MAX_UPLOAD_TOTAL {
                    // As a full disk answers: ENOSPC.
                    out.limit = Some(format!(
                        "sftp upload over {MAX_UPLOAD} bytes per file or {MAX_UPLOAD_TOTAL} in all"
                    ));
                    FX_FAILURE
                } else {
                    let buf = data.to_mut();
                    if buf.len() < end {
                        buf.resize(end, 0);
                    }
                    buf[start..end].copy_from_slice(chunk);
                    *dirty = true;
                    self.uploaded = uploaded + chunk.len();
                    FX_OK
                }
            }
            Some(Handle::File { .. }) => FX_FAILURE,
            _ => FX_NO_SUCH_FILE,
        };
        status(out, id, code);
        Ok(())
    }

    /// Closes a handle: an upload goes into the filesystem and to the capture spool.
    fn commit(h: Handle, ctx: &mut Ctx<'_>, out: &mut Out) -> u32 {
        match h {
            Handle::File {
                path,
                data,
                dirty: true,
                ..
            } => {
                let code = result(ctx.fs.write(&path, &data, false, ctx.uid, ctx.now));
                out.uploads.push(Upload {
                    path,
                    data: data.into_owned(),
                });
                code
            }
            _ => FX_OK,
        }
    }

    fn setstat(
        &mut self,
        path: &str,
        flags: u32,
        size: u64,
        perms: u32,
        ctx: &mut Ctx<'_>,
        out: &mut Out,
    ) -> u32 {
        if ctx.fs.stat(path).is_none() {
            return FX_NO_SUCH_FILE;
        }
        if flags & ATTR_SIZE != 0 {
            // truncate(2): only shrinking or growing a file the overlay can hold.
            let Ok(data) = ctx.fs.read(path) else {
                return FX_FAILURE;
            };
            let size = usize::try_from(size).unwrap_or(usize::MAX);
            if size > MAX_UPLOAD {
                return FX_FAILURE;
            }
            let mut d = data[..data.len().min(size)].to_vec();
            d.resize(size, 0);
            let code = result(ctx.fs.write(path, &d, false, ctx.uid, ctx.now));
            if code != FX_OK {
                return code;
            }
        }
        if flags & ATTR_PERMISSIONS != 0 {
            self.log(out, format!("sftp chmod {:o} {path}", perms & 0o7777));
            let code = result(ctx.fs.chmod(path, perms & 0o7777));
            if code != FX_OK {
                return code;
            }
        }
        FX_OK
    }

    fn opendir(
        &mut self,
        id: u32,
        r: &mut Reader<'_>,
        ctx: &mut Ctx<'_>,
        out: &mut Out,
    ) -> Result<(), Malformed> {
        let path = self.path(r, ctx)?;
        let list = match ctx.fs.list(&path) {
            Ok(l) => l,
            Err(e) => {
                status(out, id, portable(e));
                return Ok(());
            }
        };
        let user = |uid: u32| if uid == 0 { "root" } else { ctx.user };
        let mut entries = Vec::with_capacity(list.len() + 2);
        let resolved = ctx.fs.resolve(&path);
        let (parent, _) = fs::split(&resolved);
        let subdirs = list.iter().filter(|(_, n)| n.kind == Kind::Dir).count() as u32;
        for (name, dir) in [(".", resolved.as_str()), ("..", parent)] {
            if let Some(n) = ctx.fs.stat(dir) {
                let a = attrs_of(n);
                let links = if name == "." { 2 + subdirs } else { 2 };
                let long = longname(name, &a, links, user(n.uid), ctx.now, ctx.local);
                entries.push((name.to_owned(), long, a));
            }
        }
        for (name, n) in &list {
            let a = attrs_of(n);
            let links = if n.kind == Kind::Dir { 2 } else { 1 };
            let long = longname(name, &a, links, user(n.uid), ctx.now, ctx.local);
            entries.push((name.clone(), long, a));
        }
        self.new_handle(Handle::Dir { entries, next: 0 }, out, id);
        Ok(())
    }

    /// sftp-server's `sftp_realpath`: links followed; only the last component may be
    /// missing.
    fn realpath(&self, raw: &str, ctx: &Ctx<'_>) -> Option<String> {
        let path = ctx.fs.resolve(&absolute(raw, ctx.home));
        let (parent, _) = fs::split(&path);
        match ctx.fs.stat(parent) {
            Some(n) if n.kind == Kind::Dir => Some(path),
            _ => None,
        }
    }

    fn rename(
        &mut self,
        from: &str,
        to: &str,
        overwrite: bool,
        ctx: &mut Ctx<'_>,
        out: &mut Out,
    ) -> u32 {
        self.log(out, format!("sftp rename {from} {to}"));
        let Some(node) = ctx.fs.lstat(from).cloned() else {
            return FX_NO_SUCH_FILE;
        };
        if ctx.fs.lstat(to).is_some() && !overwrite {
            // sftp-server renames files with link(2), which refuses an existing target.
            return FX_FAILURE;
        }
        if node.kind != Kind::File {
            return FX_FAILURE;
        }
        let code = result(ctx.fs.write(to, &node.data, false, node.uid, ctx.now));
        if code != FX_OK {
            return code;
        }
        let _ = ctx.fs.chmod(to, node.mode);
        result(ctx.fs.remove(from, false, false))
    }

    fn extended(
        &mut self,
        id: u32,
        r: &mut Reader<'_>,
        ctx: &mut Ctx<'_>,
        out: &mut Out,
    ) -> Result<(), Malformed> {
        let name = r.string()?;
        match name.as_str() {
            "limits@openssh.com" => {
                let mut body = vec![SSH_FXP_EXTENDED_REPLY];
                put_u32(&mut body, id);
                put_u64(&mut body, MAX_MSG as u64);
                put_u64(&mut body, u64::from(MAX_READ));
                put_u64(&mut body, u64::from(MAX_READ));
                // sftp-server: its open-file limit less 5 (systemd's 1024 for sshd).
                put_u64(&mut body, 1019);
                send(out, &body);
            }
            "expand-path@openssh.com" => {
                let raw = r.string()?;
                let expanded = if raw == "~" || raw.starts_with("~/") {
                    format!("{}{}", ctx.home, &raw[1..])
                } else {
                    raw
                };
                match self.realpath(&expanded, ctx) {
                    Some(p) => name_reply(out, id, &p),
                    None => status(out, id, FX_NO_SUCH_FILE),
                }
            }
            "home-directory" => {
                let user = r.string()?;
                let home = if user == ctx.user {
                    Some(ctx.home.to_owned())
                } else if user == "root" {
                    Some("/root".to_owned())
                } else {
                    None
                };
                match home {
                    Some(h) => name_reply(out, id, &h),
                    None => status(out, id, FX_FAILURE),
                }
            }
            "posix-rename@openssh.com" => {
                let from = self.path(r, ctx)?;
                let to = self.path(r, ctx)?;
                let code = self.rename(&from, &to, true, ctx, out);
                status(out, id, code);
            }
            "statvfs@openssh.com" | "fstatvfs@openssh.com" => {
                let exists = if name.starts_with('s') {
                    let path = self.path(r, ctx)?;
                    ctx.fs.stat(&path).is_some()
                } else {
                    let h = self.handle(r)?;
                    h.is_some_and(|h| self.handles.contains_key(&h))
                };
                if exists {
                    let mut body = vec![SSH_FXP_EXTENDED_REPLY];
                    put_u32(&mut body, id);
                    // A 20 GiB ext4 root, a fifth used.
                    for v in [
                        4096u64,
                        4096,
                        5_134_079,
                        4_106_921,
                        3_844_777,
                        1_310_720,
                        1_271_395,
                        1_271_395,
                        0x6a1f_3c2e_9b04_d511,
                        0,
                        255,
                    ] {
                        put_u64(&mut body, v);
                    }
                    send(out, &body);
                } else {
                    status(out, id, FX_NO_SUCH_FILE);
                }
            }
            "fsync@openssh.com" => {
                let h = self.handle(r)?;
                let ok = h.is_some_and(|h| self.handles.contains_key(&h));
                status(out, id, if ok { FX_OK } else { FX_NO_SUCH_FILE });
            }
            "lsetstat@openssh.com" => {
                let path = self.path(r, ctx)?;
                let (flags, size, perms) = r.attrs()?;
                let code = self.setstat(&path, flags, size, perms, ctx, out);
                status(out, id, code);
            }
            "users-groups-by-id@openssh.com" => {
                let names = |list: &[u8]| -> Result<Vec<u8>, Malformed> {
                    let mut r = Reader(list);
                    let mut body = Vec::new();
                    while !r.0.is_empty() {
                        let n = match r.u32()? {
                            0 => "root",
                            1000 => ctx.user,
                            _ => "",
                        };
                        put_str(&mut body, n.as_bytes());
                    }
                    Ok(body)
                };
                let users = names(r.bytes()?)?;
                let groups = names(r.bytes()?)?;
                let mut body = vec![SSH_FXP_EXTENDED_REPLY];
                put_u32(&mut body, id);
                put_str(&mut body, &users);
                put_str(&mut body, &groups);
                send(out, &body);
            }
            "hardlink@openssh.com" | "copy-data" => status(out, id, FX_FAILURE),
            _ => status(out, id, FX_OP_UNSUPPORTED),
        }
        Ok(())
    }
}

/// `raw` made absolute against `home` and folded (`~` is not special here, as in
/// sftp-server).
fn absolute(raw: &str, home: &str) -> String {
    let joined = if raw.starts_with('/') {
        raw.to_owned()
    } else {
        format!("{home}/{raw}")
    };
    fs::normalize("/", "/", &joined)
}

fn result(r: Result<(), FsError>) -> u32 {
    match r {
        Ok(()) => FX_OK,
        Err(e) => portable(e),
    }
}

fn send(out: &mut Out, body: &[u8]) {
    put_str(&mut out.data, body);
}

fn status(out: &mut Out, id: u32, code: u32) {
    let mut body = vec![SSH_FXP_STATUS];
    put_u32(&mut body, id);
    put_u32(&mut body, code);
    put_str(&mut body, status_message(code).as_bytes());
    put_str(&mut body, b"");
    send(out, &body);
}

fn attrs_reply(out: &mut Out, id: u32, a: &Attrs) {
    let mut body = vec![SSH_FXP_ATTRS];
    put_u32(&mut body, id);
    put_attrs(&mut body, a);
    send(out, &body);
}

/// A NAME answer with one entry whose long name is the name and no attributes (what
/// sftp-server sends for REALPATH and READLINK).
fn name_reply(out: &mut Out, id: u32, name: &str) {
    let mut body = vec![SSH_FXP_NAME];
    put_u32(&mut body, id);
    put_u32(&mut body, 1);
    put_str(&mut body, name.as_bytes());
    put_str(&mut body, name.as_bytes());
    put_u32(&mut body, 0);
    send(out, &body);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::shell::{Login, Profile, Shell, ShellLimits};

    fn shell() -> Shell {
        let login = Login {
            user: "root".into(),
            src: "127.0.0.1".parse().unwrap(),
            now: 1_750_000_000,
        };
        Shell::new(Profile::new("web01"), &login, false, ShellLimits::default())
    }

    fn run(sftp: &mut Sftp, sh: &mut Shell, input: &[u8]) -> Out {
        let (fs, home, uid) = sh.files();
        let home = home.to_owned();
        let mut ctx = Ctx {
            fs,
            home: &home,
            uid,
            user: "root",
            now: 1_750_000_000,
            local: &|t| t,
        };
        sftp.input(input, &mut ctx)
    }

    fn msg(kind: u8, id: Option<u32>, body: &[u8]) -> Vec<u8> {
        let mut m = vec![kind];
        if let Some(id) = id {
            put_u32(&mut m, id);
        }
        m.extend_from_slice(body);
        let mut out = Vec::new();
        put_str(&mut out, &m);
        out
    }

    fn init() -> Vec<u8> {
        msg(SSH_FXP_INIT, None, &3u32.to_be_bytes())
    }

    fn s(v: &str) -> Vec<u8> {
        let mut o = Vec::new();
        put_str(&mut o, v.as_bytes());
        o
    }

    /// The replies, each as (type, body after the type).
    fn replies(data: &[u8]) -> Vec<(u8, Vec<u8>)> {
        let mut r = Reader(data);
        let mut out = Vec::new();
        while let Ok(m) = r.bytes() {
            out.push((m[0], m[1..].to_vec()));
        }
        out
    }

    /// The VERSION reply and the answers to read-only requests are the real
    /// sftp-server's, byte for byte (it runs here with its working directory /root, the
    /// honeypot's root home).
    #[test]
    fn answers_match_openssh_sftp_server() {
        let server = "/usr/lib/openssh/sftp-server";
        assert!(
            std::path::Path::new(server).exists(),
            "{server} is missing: install Debian's openssh-sftp-server"
        );
        let mut input = init();
        input.extend(msg(16, Some(1), &s(".")));
        input.extend(msg(16, Some(2), &s("/nonexistent_hb/x")));
        input.extend(msg(
            3,
            Some(3),
            &[s("/nonexistent_hb"), vec![0, 0, 0, 1, 0, 0, 0, 0]].concat(),
        ));
        input.extend(msg(11, Some(4), &s("/nonexistent_hb")));
        input.extend(msg(13, Some(5), &s("/nonexistent_hb")));
        input.extend(msg(14, Some(6), &[s("/etc"), vec![0, 0, 0, 0]].concat()));
        input.extend(msg(15, Some(7), &s("/nonexistent_hb")));
        input.extend(msg(11, Some(8), &s("/etc/passwd")));
        input.extend(msg(4, Some(9), &s("nohandle")));
        input.extend(msg(19, Some(10), &s("/etc/passwd")));
        input.extend(msg(
            18,
            Some(11),
            &[s("/nonexistent_hb"), s("/nonexistent_hb2")].concat(),
        ));
        input.extend(msg(
            200,
            Some(12),
            &[s("expand-path@openssh.com"), s("~/x")].concat(),
        ));
        input.extend(msg(
            200,
            Some(13),
            &[s("home-directory"), s("root")].concat(),
        ));
        input.extend(msg(200, Some(14), &s("nonsense@example.com")));
        input.extend(msg(17, Some(15), &s("/nonexistent_hb")));
        // Compared with size and times blanked: type, mode and owner.
        input.extend(msg(17, Some(16), &s("/etc/passwd")));
        let real = {
            use std::io::{Read, Write};
            let mut child = std::process::Command::new(server)
                .current_dir("/root")
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            let mut stdin = child.stdin.take().unwrap();
            stdin.write_all(&input).unwrap();
            // sftp-server exits at the end of its input before writing what is queued:
            // read the replies first, then close.
            let mut stdout = child.stdout.take().unwrap();
            let mut got = Vec::new();
            let mut buf = [0u8; 4096];
            while replies(&got).len() < 17 {
                let n = stdout.read(&mut buf).unwrap();
                assert!(n > 0, "sftp-server ended early: {got:?}");
                got.extend_from_slice(&buf[..n]);
            }
            drop(stdin);
            let _ = child.wait();
            got
        };
        let mut sh = shell();
        let ours = run(&mut Sftp::new(), &mut sh, &input);
        assert!(!ours.end);
        let (mut real, mut ours) = (replies(&real), replies(&ours.data));
        assert_eq!(ours.len(), real.len());
        for r in [&mut real, &mut ours] {
            let attrs = &mut r.last_mut().unwrap().1;
            assert_eq!(attrs.len(), 4 + 32);
            // id, flags | size | uid gid perms | atime mtime
            attrs[8..16].fill(0);
            attrs[28..36].fill(0);
        }
        for (o, r) in ours.iter().zip(&real) {
            assert_eq!(o, r);
        }
    }

    /// READDIR entries (name, long name, attributes less atime) from a NAME reply.
    fn entries(body: &[u8]) -> Vec<(String, String, Vec<u8>)> {
        let mut r = Reader(&body[4..]);
        let n = r.u32().unwrap();
        let mut out = Vec::new();
        for _ in 0..n {
            let name = r.string().unwrap();
            let long = r.string().unwrap();
            let start = r.0;
            r.attrs().unwrap();
            let mut attrs = start[..start.len() - r.0.len()].to_vec();
            attrs[24..28].fill(0);
            out.push((name, long, attrs));
        }
        out.retain(|e| e.0 != "..");
        out.sort();
        out
    }

    /// The long names and attributes of a directory listing are sftp-server's, byte for
    /// byte: a directory with a file and a subdirectory, dated alike on both sides (the
    /// real one's in a temporary directory, with TZ=UTC).
    #[test]
    fn directory_listing_matches_openssh_sftp_server() {
        let server = "/usr/lib/openssh/sftp-server";
        assert!(
            std::path::Path::new(server).exists(),
            "{server} is missing: install Debian's openssh-sftp-server"
        );
        const T: i64 = 1_700_000_000;
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path().join("d");
        std::fs::create_dir(&d).unwrap();
        std::fs::create_dir(d.join("sub")).unwrap();
        std::fs::write(d.join("f"), b"hi\n").unwrap();
        let root = std::process::Command::new("id").arg("-u").output().unwrap();
        let as_root = root.stdout == b"0\n";
        for (p, mode) in [
            (d.join("f"), "644"),
            (d.join("sub"), "755"),
            (d.clone(), "755"),
        ] {
            let st = std::process::Command::new("chmod")
                .arg(mode)
                .arg(&p)
                .status()
                .unwrap();
            assert!(st.success());
            let st = std::process::Command::new("touch")
                .arg("-d")
                .arg(format!("@{T}"))
                .arg(&p)
                .status()
                .unwrap();
            assert!(st.success());
        }
        let mut input = init();
        input.extend(msg(11, Some(1), &s(&d.display().to_string())));
        let real = {
            use std::io::{Read, Write};
            let mut child = std::process::Command::new(server)
                .env("TZ", "UTC")
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            let mut stdin = child.stdin.take().unwrap();
            let mut stdout = child.stdout.take().unwrap();
            stdin.write_all(&input).unwrap();
            let mut got = Vec::new();
            let mut buf = [0u8; 4096];
            while replies(&got).len() < 2 {
                let n = stdout.read(&mut buf).unwrap();
                assert!(n > 0);
                got.extend_from_slice(&buf[..n]);
            }
            let handle = replies(&got)[1].1[8..].to_vec();
            stdin
                .write_all(&msg(12, Some(2), &s_bytes(&handle)))
                .unwrap();
            while replies(&got).len() < 3 {
                let n = stdout.read(&mut buf).unwrap();
                assert!(n > 0);
                got.extend_from_slice(&buf[..n]);
            }
            drop(stdin);
            let _ = child.wait();
            got
        };
        let mut sh = shell();
        {
            let (fs, _, _) = sh.files();
            fs.mkdir("/tmp/d", 0, T).unwrap();
            fs.mkdir("/tmp/d/sub", 0, T).unwrap();
            fs.write("/tmp/d/f", b"hi\n", false, 0, T).unwrap();
        }
        let mut sftp = Sftp::new();
        let mut input = init();
        input.extend(msg(11, Some(1), &s("/tmp/d")));
        let out = run(&mut sftp, &mut sh, &input);
        let handle = replies(&out.data)[1].1[8..].to_vec();
        let out = run(&mut sftp, &mut sh, &msg(12, Some(2), &s_bytes(&handle)));
        let ours = entries(&replies(&out.data)[0].1);
        let mut real = entries(&replies(&real)[2].1);
        if !as_root {
            // Only the owner differs when the test does not run as root.
            for e in &mut real {
                let f: Vec<&str> = e.1.split_whitespace().collect();
                e.1 = format!(
                    "{}  {:>3} {:<8} {:<8} {:>8} {}",
                    f[0],
                    f[1],
                    "root",
                    "root",
                    f[4],
                    f[5..].join(" ")
                );
                e.2[12..20].fill(0);
            }
        }
        assert_eq!(ours, real);
        assert_eq!(ours.len(), 3);
    }

    #[test]
    fn hostile_input_ends_the_subsystem_without_allocating() {
        let mut sh = shell();
        // A length over the cap: the subsystem ends, nothing is buffered.
        let mut sftp = Sftp::new();
        let out = run(&mut sftp, &mut sh, &[0xff, 0xff, 0xff, 0xff, 1]);
        assert!(out.end && sftp.buf.is_empty());
        // Anything before INIT.
        let out = run(&mut Sftp::new(), &mut sh, &msg(16, Some(1), &s(".")));
        assert!(out.end && out.data.is_empty());
        // A truncated string.
        let mut sftp = Sftp::new();
        let mut input = init();
        input.extend(msg(16, Some(1), &[0, 0, 0, 9, b'x']));
        let out = run(&mut sftp, &mut sh, &input);
        assert!(out.end);
        // An unknown message type (sftp-server exits on it).
        let mut input = init();
        input.extend(msg(99, Some(1), b""));
        assert!(run(&mut Sftp::new(), &mut sh, &input).end);
        // A huge extended-attribute count is bounded by the message.
        let mut input = init();
        input.extend(msg(
            14,
            Some(1),
            &[s("/tmp/x"), vec![0x80, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]].concat(),
        ));
        assert!(run(&mut Sftp::new(), &mut sh, &input).end);
    }

    #[test]
    fn uploads_land_in_the_filesystem_and_are_handed_back() {
        let mut sh = shell();
        let mut sftp = Sftp::new();
        let mut input = init();
        // OPEN /tmp/a WRITE|CREAT|TRUNC, then two writes out of order, then CLOSE.
        input.extend(msg(
            3,
            Some(1),
            &[s("/tmp/a"), vec![0, 0, 0, 0x1a, 0, 0, 0, 0]].concat(),
        ));
        let out = run(&mut sftp, &mut sh, &input);
        assert_eq!(out.logged, ["sftp put /tmp/a"]);
        let r = replies(&out.data);
        assert_eq!(r[1].0, SSH_FXP_HANDLE);
        let handle = r[1].1[8..].to_vec();
        let mut input = Vec::new();
        input.extend(msg(
            6,
            Some(2),
            &[s_bytes(&handle), 3u64.to_be_bytes().to_vec(), s("def")].concat(),
        ));
        input.extend(msg(
            6,
            Some(3),
            &[s_bytes(&handle), 0u64.to_be_bytes().to_vec(), s("abc")].concat(),
        ));
        input.extend(msg(4, Some(4), &s_bytes(&handle)));
        let out = run(&mut sftp, &mut sh, &input);
        assert!(
            replies(&out.data)
                .iter()
                .all(|(t, b)| *t == SSH_FXP_STATUS && b[4..8] == [0, 0, 0, 0])
        );
        assert_eq!(out.uploads.len(), 1);
        assert_eq!(out.uploads[0].path, "/tmp/a");
        assert_eq!(out.uploads[0].data, b"abcdef");
        assert_eq!(sh.files().0.read("/tmp/a").unwrap(), b"abcdef");
        // A write far past the cap is refused before anything is allocated.
        let mut input = msg(
            3,
            Some(5),
            &[s("/tmp/b"), vec![0, 0, 0, 0x1a, 0, 0, 0, 0]].concat(),
        );
        let out = run(&mut sftp, &mut sh, &input);
        let handle = replies(&out.data)[0].1[8..].to_vec();
        input = msg(
            6,
            Some(6),
            &[
                s_bytes(&handle),
                (1u64 << 40).to_be_bytes().to_vec(),
                s("x"),
            ]
            .concat(),
        );
        let out = run(&mut sftp, &mut sh, &input);
        assert_eq!(replies(&out.data)[0].1[4..8], FX_FAILURE.to_be_bytes());
        assert!(out.limit.is_some());
    }

    /// A protocol error ends the subsystem once: what was uploaded so far is kept and
    /// handed back (sftp-server's writes are on disk when it exits); the client's EOF
    /// afterwards changes nothing.
    #[test]
    fn an_upload_cut_by_a_protocol_error_is_kept_and_the_end_comes_once() {
        let mut sh = shell();
        let mut sftp = Sftp::new();
        let mut input = init();
        input.extend(msg(
            3,
            Some(1),
            &[s("/tmp/cut"), vec![0, 0, 0, 0x1a, 0, 0, 0, 0]].concat(),
        ));
        let out = run(&mut sftp, &mut sh, &input);
        let handle = replies(&out.data)[1].1[8..].to_vec();
        let mut input = msg(
            6,
            Some(2),
            &[s_bytes(&handle), 0u64.to_be_bytes().to_vec(), s("part")].concat(),
        );
        input.extend(msg(99, Some(3), b""));
        let out = run(&mut sftp, &mut sh, &input);
        assert!(out.end);
        assert_eq!(out.uploads.len(), 1);
        assert_eq!(out.uploads[0].data, b"part");
        assert_eq!(sh.files().0.read("/tmp/cut").unwrap(), b"part");
        let (fs, home, uid) = sh.files();
        let home = home.to_owned();
        let after = sftp.eof(&mut Ctx {
            fs,
            home: &home,
            uid,
            user: "root",
            now: 0,
            local: &|t| t,
        });
        assert!(!after.end && after.uploads.is_empty() && after.data.is_empty());
    }

    /// A base binary is a stub in the fake filesystem: a download still has the size its
    /// STAT shows (the stub, then zeros).
    #[test]
    fn a_binary_downloads_at_its_listed_size() {
        let mut sh = shell();
        let listed = sh.files().0.stat("/usr/bin/ls").unwrap().size();
        assert!(listed > 1000);
        let mut sftp = Sftp::new();
        let mut input = init();
        input.extend(msg(
            3,
            Some(1),
            &[s("/usr/bin/ls"), vec![0, 0, 0, 1, 0, 0, 0, 0]].concat(),
        ));
        let out = run(&mut sftp, &mut sh, &input);
        let handle = replies(&out.data)[1].1[8..].to_vec();
        let mut got = Vec::new();
        for id in 2..1000u32 {
            let req = [
                s_bytes(&handle),
                (got.len() as u64).to_be_bytes().to_vec(),
                32768u32.to_be_bytes().to_vec(),
            ]
            .concat();
            let out = run(&mut sftp, &mut sh, &msg(5, Some(id), &req));
            let (t, body) = replies(&out.data).remove(0);
            if t == SSH_FXP_STATUS {
                assert_eq!(body[4..8], FX_EOF.to_be_bytes());
                break;
            }
            got.extend_from_slice(Reader(&body[4..]).bytes().unwrap());
        }
        assert_eq!(got.len() as u64, listed);
        assert!(got.starts_with(b"\x7fELF"));
    }

    /// Random messages of every type after INIT (a fixed xorshift stream, so the run is
    /// the same each time): no panic, and every input is answered or ends the subsystem.
    #[test]
    fn random_messages_never_panic() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut sh = shell();
        for _ in 0..300 {
            let mut sftp = Sftp::new();
            let _ = run(&mut sftp, &mut sh, &init());
            for _ in 0..20 {
                let kind = [
                    3u8, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 200,
                ][(next() % 19) as usize];
                let len = (next() % 64) as usize;
                let mut body: Vec<u8> = (0..len).map(|_| next() as u8).collect();
                // Often a plausible path or handle first, so that deeper code runs.
                if next() % 2 == 0 {
                    let p = ["/tmp/x", "/etc/passwd", "/tmp", "", "/proc/1", "/dev/null"]
                        [(next() % 6) as usize];
                    body = [s(p), body].concat();
                }
                let out = run(&mut sftp, &mut sh, &msg(kind, Some(next() as u32), &body));
                assert!(out.end || !out.data.is_empty());
                if out.end {
                    break;
                }
            }
        }
    }

    /// A user other than root starts in their home; long names show them as owner.
    #[test]
    fn a_user_starts_in_their_home() {
        let login = Login {
            user: "admin".into(),
            src: "127.0.0.1".parse().unwrap(),
            now: 1_750_000_000,
        };
        let mut sh = Shell::new(Profile::new("web01"), &login, false, ShellLimits::default());
        let (fs, home, uid) = sh.files();
        assert_eq!((home, uid), ("/home/admin", 1000));
        let home = home.to_owned();
        let mut ctx = Ctx {
            fs,
            home: &home,
            uid,
            user: "admin",
            now: 1_750_000_000,
            local: &|t| t,
        };
        let mut sftp = Sftp::new();
        let mut input = init();
        input.extend(msg(16, Some(1), &s(".")));
        input.extend(msg(11, Some(2), &s(".")));
        let out = sftp.input(&input, &mut ctx);
        let r = replies(&out.data);
        assert_eq!(Reader(&r[1].1[8..]).string().unwrap(), "/home/admin");
        let handle = r[2].1[8..].to_vec();
        let out = sftp.input(&msg(12, Some(3), &s_bytes(&handle)), &mut ctx);
        let listing = entries(&replies(&out.data)[0].1);
        let bashrc = listing.iter().find(|e| e.0 == ".bashrc").unwrap();
        assert!(bashrc.1.contains(" admin    admin "), "{}", bashrc.1);
    }

    #[test]
    fn open_handles_are_capped() {
        let mut sh = shell();
        let mut sftp = Sftp::new();
        let mut input = init();
        for id in 0..(MAX_HANDLES as u32 + 2) {
            input.extend(msg(
                3,
                Some(id),
                &[s("/etc/passwd"), vec![0, 0, 0, 1, 0, 0, 0, 0]].concat(),
            ));
        }
        let out = run(&mut sftp, &mut sh, &input);
        let r = replies(&out.data);
        let handles = r.iter().filter(|(t, _)| *t == SSH_FXP_HANDLE).count();
        assert_eq!(handles, MAX_HANDLES);
        assert_eq!(r.last().unwrap().1[4..8], FX_FAILURE.to_be_bytes());
    }

    fn s_bytes(b: &[u8]) -> Vec<u8> {
        let mut o = Vec::new();
        put_str(&mut o, b);
        o
    }
}
