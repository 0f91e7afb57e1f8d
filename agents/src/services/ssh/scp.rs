//! The legacy scp protocol (`scp -O`, or any client before OpenSSH 9.0) as the remote
//! `scp -t` (sink: the client uploads) and `scp -f` (source: the client downloads) run it,
//! over the session's fake filesystem. Sans-IO: bytes in, bytes out; uploads come back
//! to the driver for the capture spool. Messages are OpenSSH scp.c's `run_err` lines.
//!
//! Bounds: a control line is at most [`MAX_LINE`] bytes, a file at most
//! [`super::sftp::MAX_UPLOAD`] bytes, directories nest at most [`MAX_DEPTH`] deep, and a
//! download sends at most [`MAX_FILES`] files.

use super::sftp::{MAX_UPLOAD, Upload};
use crate::services::shell::fs::{self, Fs, Kind};

const MAX_LINE: usize = 4096;
const MAX_DEPTH: usize = 16;
const MAX_FILES: usize = 256;

/// What the exec command asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Request {
    /// `-t`: receive into `target`; else `-f`: send `target`.
    pub sink: bool,
    pub recursive: bool,
    /// `-d`: the target must be a directory.
    pub target_dir: bool,
    pub target: String,
}

/// Recognises `scp [-v] [-r] [-p] [-d] -t|-f [--] PATH`, as an OpenSSH client runs it
/// on the server.
pub(crate) fn parse(command: &[u8]) -> Option<Request> {
    let text = std::str::from_utf8(command).ok()?;
    let mut words = text.split_ascii_whitespace();
    if words.next()? != "scp" {
        return None;
    }
    let (mut sink, mut source, mut recursive, mut target_dir) = (false, false, false, false);
    let mut target = None;
    let mut operands = false;
    for w in words {
        if !operands && w == "--" {
            operands = true;
        } else if !operands && w.starts_with('-') && w.len() > 1 {
            for c in w[1..].chars() {
                match c {
                    't' => sink = true,
                    'f' => source = true,
                    'r' => recursive = true,
                    'd' => target_dir = true,
                    'v' | 'p' | 'q' => {}
                    _ => return None,
                }
            }
        } else if target.is_none() {
            target = Some(w.to_owned());
        } else {
            // Several sources: not what a client sends for -t; let the shell answer.
            return None;
        }
    }
    if sink == source {
        return None;
    }
    Some(Request {
        sink,
        recursive,
        target_dir,
        target: target?,
    })
}

pub(crate) struct Ctx<'a> {
    pub fs: &'a mut Fs,
    pub home: &'a str,
    pub uid: u32,
    pub now: i64,
}

/// What one input produced.
#[derive(Debug, Default)]
pub(crate) struct Out {
    pub data: Vec<u8>,
    pub uploads: Vec<Upload>,
    /// The remote scp exited with this status.
    pub exit: Option<u32>,
}

#[derive(Debug)]
enum State {
    /// Sink: waiting for a control line.
    Line,
    /// Sink: receiving a file's bytes, then its trailing status byte.
    Data {
        path: String,
        size: usize,
        data: Vec<u8>,
        /// The mode a new file gets (the `C` line's, less the umask, as open(2) gives).
        mode: Option<u32>,
    },
    /// Source: waiting for the client's go-ahead, then for each acknowledgement.
    Ack,
    Done,
}

/// One remote scp.
#[derive(Debug)]
pub(crate) struct Scp {
    req: Request,
    state: State,
    line: Vec<u8>,
    /// Sink: the directory stack (`D` ... `E`).
    dirs: Vec<String>,
    errors: bool,
    /// Source: what is left to send, as protocol pieces, and whether each waits for an
    /// acknowledgement.
    queue: std::collections::VecDeque<Vec<u8>>,
}

fn abs(path: &str, home: &str) -> String {
    let joined = if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("{home}/{path}")
    };
    fs::normalize("/", "/", &joined)
}

fn join(dir: &str, name: &str) -> String {
    if dir == "/" {
        format!("/{name}")
    } else {
        format!("{dir}/{name}")
    }
}

impl Scp {
    /// Starts the remote side; its first bytes (a sink's go-ahead) are in `out`.
    pub(crate) fn start(req: Request, ctx: &mut Ctx<'_>) -> (Scp, Out) {
        let mut s = Scp {
            req,
            state: State::Line,
            line: Vec::new(),
            dirs: Vec::new(),
            errors: false,
            queue: Default::default(),
        };
        let mut out = Out::default();
        if s.req.sink {
            let target = abs(&s.req.target, ctx.home);
            let is_dir = ctx.fs.stat(&target).is_some_and(|n| n.kind == Kind::Dir);
            if s.req.target_dir && !is_dir {
                // scp.c sink(): verifydir() fails and exits.
                s.err(&mut out, &format!("{}: Not a directory", s.req.target));
                s.finish(&mut out);
                return (s, out);
            }
            s.dirs.push(target);
            out.data.push(0);
        } else {
            s.state = State::Ack;
            s.plan_source(ctx, &mut out);
        }
        (s, out)
    }

    fn err(&mut self, out: &mut Out, msg: &str) {
        self.errors = true;
        out.data.push(1);
        out.data
            .extend_from_slice(format!("scp: {msg}\n").as_bytes());
    }

    fn finish(&mut self, out: &mut Out) {
        self.state = State::Done;
        out.exit = Some(u32::from(self.errors));
    }

    /// Source: the pieces to send for the target (a file, or a tree with -r).
    fn plan_source(&mut self, ctx: &mut Ctx<'_>, out: &mut Out) {
        let path = abs(&self.req.target, ctx.home);
        let shown = self.req.target.clone();
        match ctx.fs.stat(&path).map(|n| n.kind) {
            None => {
                // Reported once the client says go (scp.c source() after response()).
                self.queue.push_back(
                    format!("\x01scp: {shown}: No such file or directory\n").into_bytes(),
                );
                self.errors = true;
            }
            Some(Kind::Dir) if self.req.recursive => {
                let mut files = 0;
                self.plan_dir(ctx, &path, 0, &mut files);
            }
            Some(Kind::Dir) => {
                self.queue
                    .push_back(format!("\x01scp: {shown}: not a regular file\n").into_bytes());
                self.errors = true;
            }
            Some(_) => self.plan_file(ctx, &path),
        }
        let _ = out;
    }

    fn plan_file(&mut self, ctx: &Ctx<'_>, path: &str) {
        let Some(n) = ctx.fs.stat(path) else { return };
        let (_, name) = fs::split(path);
        let data = if n.kind == Kind::File {
            n.data.to_vec()
        } else {
            Vec::new()
        };
        self.queue
            .push_back(format!("C{:04o} {} {name}\n", n.mode & 0o7777, data.len()).into_bytes());
        let mut body = data;
        body.push(0);
        self.queue.push_back(body);
    }

    fn plan_dir(&mut self, ctx: &Ctx<'_>, path: &str, depth: usize, files: &mut usize) {
        let Some(n) = ctx.fs.stat(path) else { return };
        let (_, name) = fs::split(path);
        self.queue
            .push_back(format!("D{:04o} 0 {name}\n", n.mode & 0o7777).into_bytes());
        for (child, node) in ctx.fs.list(path).unwrap_or_default() {
            if *files >= MAX_FILES {
                break;
            }
            let p = join(path, &child);
            match node.kind {
                Kind::Dir if depth < MAX_DEPTH => self.plan_dir(ctx, &p, depth + 1, files),
                Kind::File => {
                    *files += 1;
                    self.plan_file(ctx, &p);
                }
                _ => {}
            }
        }
        self.queue.push_back(b"E\n".to_vec());
    }

    /// Feeds bytes from the client.
    pub(crate) fn input(&mut self, mut data: &[u8], ctx: &mut Ctx<'_>) -> Out {
        let mut out = Out::default();
        while !data.is_empty() && out.exit.is_none() {
            match &mut self.state {
                State::Done => break,
                State::Ack => {
                    // Each byte is the client's answer to what we sent last: 0 goes on.
                    let b = data[0];
                    data = &data[1..];
                    if b != 0 {
                        self.finish(&mut out);
                        break;
                    }
                    // Send the next piece, and go on past error lines (run_err awaits no
                    // answer); every other piece waits for the client's acknowledgement.
                    loop {
                        match self.queue.pop_front() {
                            Some(piece) => {
                                let is_err = piece.first() == Some(&1);
                                out.data.extend_from_slice(&piece);
                                if !is_err {
                                    break;
                                }
                            }
                            None => {
                                self.finish(&mut out);
                                break;
                            }
                        }
                    }
                }
                State::Line => {
                    let nl = data.iter().position(|&b| b == b'\n');
                    let take = nl.map_or(data.len(), |i| i + 1);
                    if self.line.len() + take > MAX_LINE {
                        self.err(&mut out, "protocol error: line too long");
                        self.finish(&mut out);
                        break;
                    }
                    self.line.extend_from_slice(&data[..take]);
                    data = &data[take..];
                    if nl.is_some() {
                        let line = std::mem::take(&mut self.line);
                        self.control(&line, ctx, &mut out);
                    }
                }
                State::Data {
                    size, data: buf, ..
                } => {
                    let want = (*size + 1).saturating_sub(buf.len());
                    let take = want.min(data.len());
                    buf.extend_from_slice(&data[..take]);
                    data = &data[take..];
                    if buf.len() == *size + 1 {
                        let State::Data {
                            path,
                            mut data,
                            mode,
                            ..
                        } = std::mem::replace(&mut self.state, State::Line)
                        else {
                            break;
                        };
                        data.pop();
                        let written = ctx
                            .fs
                            .write(&path, &data, false, ctx.uid, ctx.now)
                            .and_then(|()| mode.map_or(Ok(()), |m| ctx.fs.chmod(&path, m)));
                        match written {
                            Ok(()) => out.data.push(0),
                            Err(e) => self.err(&mut out, &format!("{path}: {}", e.text())),
                        }
                        out.uploads.push(Upload { path, data });
                    }
                }
            }
        }
        out
    }

    /// The client closed its side: the remote scp exits.
    pub(crate) fn eof(&mut self) -> Out {
        let mut out = Out::default();
        if !matches!(self.state, State::Done) {
            self.finish(&mut out);
        }
        out
    }

    /// A sink's control line (`C`, `D`, `E`, `T`, or a message from the source).
    fn control(&mut self, line: &[u8], ctx: &mut Ctx<'_>, out: &mut Out) {
        let text = String::from_utf8_lossy(&line[..line.len().saturating_sub(1)]).into_owned();
        let Some(first) = text.chars().next() else {
            self.err(out, "protocol error: unexpected <newline>");
            self.finish(out);
            return;
        };
        match first {
            '\x01' | '\x02' => {
                if first == '\x02' {
                    self.finish(out);
                }
            }
            'E' => {
                if self.dirs.len() > 1 {
                    self.dirs.pop();
                    out.data.push(0);
                } else {
                    self.err(out, "protocol error: unexpected E");
                    self.finish(out);
                }
            }
            'T' => out.data.push(0),
            'C' | 'D' => {
                let mut parts = text[1..].splitn(3, ' ');
                let mode = parts.next().and_then(|m| u32::from_str_radix(m, 8).ok());
                let size = parts.next().and_then(|s| s.parse::<u64>().ok());
                let name = parts.next().unwrap_or("");
                let (Some(mode), Some(size)) = (mode, size) else {
                    self.err(out, "protocol error: bad mode");
                    self.finish(out);
                    return;
                };
                if name.is_empty() || name.contains('/') || name == ".." || name == "." {
                    self.err(out, &format!("error: unexpected filename: {name}"));
                    self.finish(out);
                    return;
                }
                let dir = self.dirs.last().cloned().unwrap_or_else(|| "/".into());
                let target_is_dir = ctx.fs.stat(&dir).is_some_and(|n| n.kind == Kind::Dir);
                let path = if target_is_dir { join(&dir, name) } else { dir };
                if first == 'D' {
                    if !self.req.recursive {
                        self.err(out, "received directory without -r");
                        self.finish(out);
                        return;
                    }
                    if self.dirs.len() > MAX_DEPTH {
                        self.err(out, &format!("{path}: File name too long"));
                        self.finish(out);
                        return;
                    }
                    let made = match ctx.fs.stat(&path) {
                        Some(n) if n.kind == Kind::Dir => Ok(()),
                        _ => ctx
                            .fs
                            .mkdir(&path, ctx.uid, ctx.now)
                            .and_then(|()| ctx.fs.chmod(&path, mode & 0o7777)),
                    };
                    match made {
                        Ok(()) => {
                            self.dirs.push(path);
                            out.data.push(0);
                        }
                        Err(e) => {
                            self.err(out, &format!("{path}: {}", e.text()));
                            self.finish(out);
                        }
                    }
                    return;
                }
                let size = usize::try_from(size).unwrap_or(usize::MAX);
                if size > MAX_UPLOAD {
                    // What a full disk makes scp say, after it read nothing.
                    self.err(out, &format!("{path}: No space left on device"));
                    self.finish(out);
                    return;
                }
                out.data.push(0);
                let new = ctx.fs.stat(&path).is_none();
                self.state = State::Data {
                    path,
                    size,
                    data: Vec::with_capacity(size.min(64 * 1024)),
                    mode: new.then_some(mode & 0o7777 & !0o022),
                };
            }
            _ => {
                self.err(out, &format!("protocol error: {text}"));
                self.finish(out);
            }
        }
    }
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

    fn with_ctx<T>(sh: &mut Shell, f: impl FnOnce(&mut Ctx<'_>) -> T) -> T {
        let (fs, home, uid) = sh.files();
        let home = home.to_owned();
        f(&mut Ctx {
            fs,
            home: &home,
            uid,
            now: 1_750_000_000,
        })
    }

    #[test]
    fn sink_receives_a_file_as_scp_t_does() {
        let mut sh = shell();
        let req = parse(b"scp -t /tmp/").unwrap();
        let (mut scp, out) = with_ctx(&mut sh, |c| Scp::start(req, c));
        assert_eq!(out.data, b"\0");
        // The header and the data may come in any pieces.
        let out = with_ctx(&mut sh, |c| scp.input(b"C0755 5 x.sh\nhel", c));
        assert_eq!(out.data, b"\0");
        let out = with_ctx(&mut sh, |c| scp.input(b"lo\0", c));
        assert_eq!(out.data, b"\0");
        assert_eq!(out.uploads.len(), 1);
        assert_eq!(out.uploads[0].path, "/tmp/x.sh");
        assert_eq!(sh.files().0.read("/tmp/x.sh").unwrap(), b"hello");
        assert_eq!(sh.files().0.stat("/tmp/x.sh").unwrap().mode, 0o755);
        assert_eq!(scp.eof().exit, Some(0));
        // A name with a slash and an oversized file are refused, as scp.c refuses them.
        let req = parse(b"scp -t /tmp/").unwrap();
        let (mut scp, _) = with_ctx(&mut sh, |c| Scp::start(req, c));
        let out = with_ctx(&mut sh, |c| scp.input(b"C0644 1 ../x\n", c));
        assert_eq!(out.data, b"\x01scp: error: unexpected filename: ../x\n");
        assert_eq!(out.exit, Some(1));
        let req = parse(b"scp -t /tmp/").unwrap();
        let (mut scp, _) = with_ctx(&mut sh, |c| Scp::start(req, c));
        let out = with_ctx(&mut sh, |c| scp.input(b"C0644 99999999999 big\n", c));
        assert_eq!(out.exit, Some(1));
        let req = parse(b"scp -t /tmp/").unwrap();
        let (mut scp, _) = with_ctx(&mut sh, |c| Scp::start(req, c));
        let out = with_ctx(&mut sh, |c| scp.input(&[b'x'; MAX_LINE + 1], c));
        assert_eq!(out.exit, Some(1));
    }

    /// Random control lines and bytes (a fixed xorshift stream): no panic.
    #[test]
    fn random_input_never_panics() {
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut sh = shell();
        for round in 0..300 {
            let cmd: &[u8] = if round % 2 == 0 {
                b"scp -r -t /tmp"
            } else {
                b"scp -r -f /etc"
            };
            let req = parse(cmd).unwrap();
            let (mut scp, _) = with_ctx(&mut sh, |c| Scp::start(req, c));
            for _ in 0..10 {
                let mut chunk: Vec<u8> = (0..(next() % 40)).map(|_| next() as u8).collect();
                if next() % 2 == 0 {
                    let line = ["C0644 3 a\n", "D0755 0 d\n", "E\n", "T1 0 1 0\n", "\0"]
                        [(next() % 5) as usize];
                    chunk = [line.as_bytes().to_vec(), chunk].concat();
                }
                let out = with_ctx(&mut sh, |c| scp.input(&chunk, c));
                if out.exit.is_some() {
                    break;
                }
            }
            let _ = scp.eof();
        }
    }

    #[test]
    fn source_sends_a_file_as_scp_f_does() {
        let mut sh = shell();
        let req = parse(b"scp -f /etc/hostname").unwrap();
        let (mut scp, out) = with_ctx(&mut sh, |c| Scp::start(req, c));
        assert!(out.data.is_empty());
        let out = with_ctx(&mut sh, |c| scp.input(b"\0", c));
        assert_eq!(out.data, b"C0644 6 hostname\n");
        let out = with_ctx(&mut sh, |c| scp.input(b"\0", c));
        assert_eq!(out.data, b"web01\n\0");
        let out = with_ctx(&mut sh, |c| scp.input(b"\0", c));
        assert_eq!(out.exit, Some(0));
        let req = parse(b"scp -f /nonexistent").unwrap();
        let (mut scp, _) = with_ctx(&mut sh, |c| Scp::start(req, c));
        let out = with_ctx(&mut sh, |c| scp.input(b"\0", c));
        assert_eq!(
            out.data,
            b"\x01scp: /nonexistent: No such file or directory\n"
        );
        assert_eq!(out.exit, Some(1));
    }

    #[test]
    fn recognises_what_openssh_clients_run() {
        let r = parse(b"scp -t -- /tmp/").unwrap();
        assert!(r.sink && !r.recursive && r.target == "/tmp/");
        let r = parse(b"scp -v -r -d -t /tmp").unwrap();
        assert!(r.sink && r.recursive && r.target_dir);
        let r = parse(b"scp -f /etc/passwd").unwrap();
        assert!(!r.sink && r.target == "/etc/passwd");
        assert_eq!(parse(b"scp -t -f x"), None);
        assert_eq!(parse(b"scp a b"), None);
        assert_eq!(parse(b"echo scp -t x"), None);
        assert_eq!(parse(b"scp -t"), None);
    }
}
