//! The emulated shell's fake Debian 12 filesystem: a read-only base tree shared by every
//! session of a service, and a bounded per-session overlay for what attackers write,
//! create and delete. Nothing here touches the real filesystem.

mod machine;

use super::accounts::Accounts;
use super::sysinfo::{Proc, SessionPids};
use crate::persona::NodePersona;
use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// What a path names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Dir,
    File,
    /// The target is the node's data.
    Symlink,
    /// `/dev/null`, `/dev/tty`: reads are empty, writes vanish.
    CharDev,
}

/// One file, directory or link.
#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub kind: Kind,
    /// Permission bits (`0o755`).
    pub mode: u32,
    pub uid: u32,
    pub data: Cow<'static, [u8]>,
    /// Size shown by `ls -l` when it is not the data's (binaries carry a stub).
    pub shown_size: Option<u64>,
    /// Unix seconds.
    pub mtime: i64,
}

impl Node {
    pub(crate) fn size(&self) -> u64 {
        match self.kind {
            Kind::Dir => 4096,
            _ => self.shown_size.unwrap_or(self.data.len() as u64),
        }
    }

    fn dir(mode: u32, uid: u32, mtime: i64) -> Node {
        Node {
            kind: Kind::Dir,
            mode,
            uid,
            data: Cow::Borrowed(b""),
            shown_size: None,
            mtime,
        }
    }

    fn file(data: Vec<u8>, uid: u32, mtime: i64) -> Node {
        Node {
            kind: Kind::File,
            mode: 0o644,
            uid,
            data: Cow::Owned(data),
            shown_size: None,
            mtime,
        }
    }
}

/// Why a filesystem operation failed, with the words coreutils would print.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FsError {
    NotFound,
    NotDir,
    IsDir,
    Exists,
    NotEmpty,
    Denied,
    /// The session's overlay is full.
    NoSpace,
}

impl FsError {
    pub(crate) fn text(self) -> &'static str {
        match self {
            FsError::NotFound => "No such file or directory",
            FsError::NotDir => "Not a directory",
            FsError::IsDir => "Is a directory",
            FsError::Exists => "File exists",
            FsError::NotEmpty => "Directory not empty",
            FsError::Denied => "Permission denied",
            FsError::NoSpace => "No space left on device",
        }
    }
}

/// Bounds of one session's overlay.
#[derive(Debug, Clone, Copy)]
pub(crate) struct OverlayLimits {
    pub max_bytes: usize,
    pub max_entries: usize,
}

impl Default for OverlayLimits {
    fn default() -> Self {
        OverlayLimits {
            max_bytes: 256 * 1024,
            max_entries: 256,
        }
    }
}

/// The tree every session starts from. Built once per service, from the node's persona
/// and the service's host name.
#[derive(Debug)]
pub(crate) struct BaseFs {
    nodes: BTreeMap<String, Node>,
    node: Arc<NodePersona>,
    /// The machine's accounts (the services it runs when the tree was made).
    accounts: Accounts,
}

/// Unix time of the install the reference persona's files are dated from (2024-02-10
/// 11:06 UTC); each node's own install time is its persona's.
pub(crate) const INSTALL_TIME: i64 = 1_707_563_160;

/// A date between the install and a few weeks later, stable per path, so `ls -l` shows
/// the spread a real system has.
fn base_mtime(install: i64, path: &str) -> i64 {
    let h = path.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    install + i64::try_from(h % (60 * 86_400)).unwrap_or(0)
}

fn symlink(target: Vec<u8>, mtime: i64) -> Node {
    Node {
        kind: Kind::Symlink,
        mode: 0o777,
        uid: 0,
        data: Cow::Owned(target),
        shown_size: None,
        mtime,
    }
}

impl BaseFs {
    pub(crate) fn new(node: Arc<NodePersona>, hostname: &str) -> BaseFs {
        let p = node.persona();
        let install = p.install_time;
        let mtime = |path: &str| base_mtime(install, path);
        let accounts = Accounts::of(&node.listeners());
        let mut nodes = BTreeMap::new();
        let mut put = |path: &str, node: Node| {
            nodes.insert(path.to_owned(), node);
        };
        put("/", Node::dir(0o755, 0, install));
        for (path, mode) in DIRS {
            put(path, Node::dir(*mode, 0, mtime(path)));
        }
        for (path, target) in SYMLINKS {
            put(path, symlink(target.as_bytes().to_vec(), install));
        }
        for (path, target, date) in machine::symlinks(p) {
            put(&path, symlink(target.into_bytes(), date));
        }
        for (path, mode, content) in FILES {
            put(
                path,
                Node {
                    kind: Kind::File,
                    mode: *mode,
                    uid: 0,
                    data: Cow::Borrowed(content.as_bytes()),
                    shown_size: None,
                    mtime: mtime(path),
                },
            );
        }
        for (path, mode, content) in machine::files(p, hostname) {
            let mut n = Node::file(content.into_bytes(), 0, mtime(&path));
            n.mode = mode;
            put(&path, n);
        }
        for (path, mode, content) in [
            ("/etc/passwd", 0o644, accounts.passwd(None)),
            ("/etc/group", 0o644, accounts.group(None)),
            ("/etc/gshadow", 0o640, accounts.gshadow(None)),
            (
                "/etc/shadow",
                0o640,
                accounts.shadow(&machine::root_password(p), install / 86_400, None),
            ),
        ] {
            let mut n = Node::file(content.into_bytes(), 0, mtime(path));
            n.mode = mode;
            put(path, n);
        }
        // The directories the services' packages made, owned by their accounts.
        for (path, mode, owner, package) in SERVICE_DIRS {
            if accounts.user(package).is_some() {
                let uid = accounts.uid_of(owner).unwrap_or(0);
                put(path, Node::dir(*mode, uid, mtime(path)));
            }
        }
        // The zone file `/etc/localtime` points at (a TZif header is what `file` sees).
        put(
            &format!("/usr/share/zoneinfo/{}", p.zone.name),
            Node::file(b"TZif2".to_vec(), 0, mtime("/usr/share/zoneinfo")),
        );
        for (path, minor) in [
            ("/dev/null", 3),
            ("/dev/zero", 5),
            ("/dev/random", 8),
            ("/dev/urandom", 9),
            ("/dev/tty", 0),
        ] {
            put(
                path,
                Node {
                    kind: Kind::CharDev,
                    mode: 0o666,
                    uid: 0,
                    data: Cow::Borrowed(b""),
                    shown_size: Some(minor),
                    mtime: p.boot_time,
                },
            );
        }
        for (dir, names) in [("/usr/bin", USR_BIN), ("/usr/sbin", USR_SBIN)] {
            for name in names.split_whitespace() {
                let path = format!("{dir}/{name}");
                if machine::is_program_link(&path) {
                    continue;
                }
                let (size, mtime) = machine::program(&path)
                    .unwrap_or((20_000 + (mtime(&path) % 180_000) as u64, mtime(&path)));
                put(
                    &path,
                    Node {
                        kind: Kind::File,
                        mode: machine::program_mode(&path),
                        uid: 0,
                        data: Cow::Borrowed(ELF_STUB),
                        shown_size: Some(size),
                        mtime,
                    },
                );
            }
        }
        // Every file's parent directories exist.
        let mut missing = Vec::new();
        for path in nodes.keys() {
            let mut dir = split(path).0;
            while dir != "/" && !nodes.contains_key(dir) {
                missing.push(dir.to_owned());
                dir = split(dir).0;
            }
        }
        for dir in missing {
            let m = mtime(&dir);
            nodes.entry(dir).or_insert_with(|| Node::dir(0o755, 0, m));
        }
        BaseFs {
            nodes,
            node,
            accounts,
        }
    }

    /// A tree given whole (the BusyBox router's, see `busybox::rootfs`).
    pub(crate) fn from_nodes(node: Arc<NodePersona>, nodes: BTreeMap<String, Node>) -> BaseFs {
        BaseFs {
            nodes,
            node,
            // Only base-passwd's and the installer's names (the tree has its own files).
            accounts: Accounts::of(&[]),
        }
    }

    /// The node whose machine this tree shows.
    pub(crate) fn node(&self) -> &Arc<NodePersona> {
        &self.node
    }

    /// The machine's accounts.
    pub(crate) fn accounts(&self) -> &Accounts {
        &self.accounts
    }
}

/// A session's view: the base, the session's own `/proc` (see [`Fs::refresh`]) and its
/// own changes.
#[derive(Debug)]
pub(crate) struct Fs {
    base: Arc<BaseFs>,
    /// `/proc` entries that follow the clock and the session's processes; rebuilt before
    /// each command line, outside the overlay's budget (they are bounded by the process
    /// table, not by what the intruder writes).
    dynamic: BTreeMap<String, Node>,
    pids: Option<SessionPids>,
    /// `None` marks a deleted base entry.
    overlay: BTreeMap<String, Option<Node>>,
    bytes: usize,
    limits: OverlayLimits,
    /// Overlay paths [`Fs::provision`] put there and nothing changed since: the session's
    /// identity, not the intruder's work, so not persisted (see `persist.rs`).
    provisioned: BTreeSet<String>,
}

/// Joins `path` to `cwd` and folds `.`, `..` and `~`; no links are followed.
pub(crate) fn normalize(cwd: &str, home: &str, path: &str) -> String {
    let joined: Cow<str> = if path == "~" || path.starts_with("~/") {
        Cow::Owned(format!("{home}{}", &path[1..]))
    } else if path.starts_with('/') {
        Cow::Borrowed(path)
    } else {
        Cow::Owned(format!("{cwd}/{path}"))
    };
    let mut parts: Vec<&str> = Vec::new();
    for p in joined.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    if parts.is_empty() {
        return "/".into();
    }
    let mut out = String::with_capacity(joined.len());
    for p in parts {
        out.push('/');
        out.push_str(p);
    }
    out
}

/// The parent directory and last component of a normalized path.
pub(crate) fn split(path: &str) -> (&str, &str) {
    match path.rfind('/') {
        Some(0) => ("/", &path[1..]),
        Some(i) => (&path[..i], &path[i + 1..]),
        None => ("/", path),
    }
}

impl Fs {
    pub(crate) fn new(base: Arc<BaseFs>, limits: OverlayLimits) -> Fs {
        Fs {
            base,
            dynamic: BTreeMap::new(),
            pids: None,
            overlay: BTreeMap::new(),
            bytes: 0,
            limits,
            provisioned: BTreeSet::new(),
        }
    }

    /// The session's PIDs, once its first line has run.
    pub(crate) fn pids(&self) -> Option<SessionPids> {
        self.pids
    }

    pub(crate) fn set_pids(&mut self, pids: SessionPids) {
        self.pids = Some(pids);
    }

    /// The shell's PID (`$$`); 0 before the first line.
    pub(crate) fn shell_pid(&self) -> u32 {
        self.pids.map_or(0, |p| p.shell)
    }

    /// Rebuilds the session's `/proc` for `now` and the processes `procs`: uptime, load,
    /// the network tables, a directory per process and `/proc/self` (the shell).
    pub(crate) fn refresh(&mut self, now: i64, procs: &[Proc]) {
        let d = machine::dynamic(self.base.node(), now, procs, self.shell_pid());
        self.dynamic.clear();
        for dir in d.dirs {
            self.dynamic.insert(dir, Node::dir(0o555, 0, now));
        }
        let install = self.base.node().persona().install_time;
        for (path, content) in d.files {
            let mut n = Node::file(content.into_bytes(), 0, now);
            if path.starts_with("/proc/") {
                n.mode = 0o444;
                // /proc files show a size of 0, as the kernel's do.
                n.shown_size = Some(0);
            } else {
                n.mtime = install;
            }
            self.dynamic.insert(path, n);
        }
        for (path, target) in d.links {
            self.dynamic.insert(path, symlink(target.into_bytes(), now));
        }
        // Process directories belong to their owners.
        for p in procs {
            if let Some(n) = self.dynamic.get_mut(&format!("/proc/{}", p.pid)) {
                n.uid = p.uid;
            }
        }
    }

    /// Adds entries that belong to the session's identity (a user's home, a passwd line),
    /// outside the overlay's budget.
    pub(crate) fn provision(&mut self, path: &str, node: Node) {
        self.overlay.insert(path.to_owned(), Some(node));
        self.provisioned.insert(path.to_owned());
    }

    fn raw(&self, path: &str) -> Option<&Node> {
        match self.overlay.get(path) {
            Some(n) => n.as_ref(),
            None => self.dynamic.get(path).or_else(|| self.base.nodes.get(path)),
        }
    }

    /// Follows symbolic links in every component (at most 8 hops).
    pub(crate) fn resolve(&self, path: &str) -> String {
        let mut path = path.to_owned();
        for _ in 0..8 {
            let mut changed = false;
            let mut prefix_end = 0;
            while prefix_end < path.len() {
                let next = path[prefix_end + 1..]
                    .find('/')
                    .map_or(path.len(), |i| prefix_end + 1 + i);
                let prefix = &path[..next];
                if let Some(n) = self.raw(prefix)
                    && n.kind == Kind::Symlink
                {
                    let target = String::from_utf8_lossy(&n.data).into_owned();
                    let (parent, _) = split(prefix);
                    let rest = path[next..].to_owned();
                    path = normalize(parent, "/", &format!("{target}{rest}"));
                    changed = true;
                    break;
                }
                prefix_end = next;
            }
            if !changed {
                break;
            }
        }
        path
    }

    /// The node at a normalized path, links followed.
    pub(crate) fn stat(&self, path: &str) -> Option<&Node> {
        self.raw(&self.resolve(path))
    }

    /// The node itself, a link not followed (for `ls -l`).
    pub(crate) fn lstat(&self, path: &str) -> Option<&Node> {
        let (parent, name) = split(path);
        let parent = self.resolve(parent);
        let joined = if parent == "/" {
            format!("/{name}")
        } else {
            format!("{parent}/{name}")
        };
        self.raw(&joined)
    }

    pub(crate) fn read(&self, path: &str) -> Result<&[u8], FsError> {
        match self.stat(path) {
            None => Err(FsError::NotFound),
            Some(n) if n.kind == Kind::Dir => Err(FsError::IsDir),
            Some(n) => Ok(&n.data),
        }
    }

    /// Names in a directory, sorted, with their nodes (links not followed).
    pub(crate) fn list(&self, path: &str) -> Result<Vec<(String, &Node)>, FsError> {
        let dir = self.resolve(path);
        match self.raw(&dir) {
            None => return Err(FsError::NotFound),
            Some(n) if n.kind != Kind::Dir => return Err(FsError::NotDir),
            Some(_) => {}
        }
        let prefix = if dir == "/" {
            "/".to_owned()
        } else {
            format!("{dir}/")
        };
        let mut out: BTreeMap<String, &Node> = BTreeMap::new();
        let child = |k: &str| k.len() > prefix.len() && !k[prefix.len()..].contains('/');
        let base = self.base.nodes.range(prefix.clone()..);
        for (k, n) in base.take_while(|(k, _)| k.starts_with(&prefix)) {
            if child(k) {
                out.insert(k[prefix.len()..].to_owned(), n);
            }
        }
        let dynamic = self.dynamic.range(prefix.clone()..);
        for (k, n) in dynamic.take_while(|(k, _)| k.starts_with(&prefix)) {
            if child(k) {
                out.insert(k[prefix.len()..].to_owned(), n);
            }
        }
        let overlay = self.overlay.range(prefix.clone()..);
        for (k, n) in overlay.take_while(|(k, _)| k.starts_with(&prefix)) {
            if !child(k) {
                continue;
            }
            let name = k[prefix.len()..].to_owned();
            match n {
                Some(n) => {
                    out.insert(name, n);
                }
                None => {
                    out.remove(&name);
                }
            }
        }
        Ok(out.into_iter().collect())
    }

    fn parent_is_dir(&self, path: &str) -> Result<(), FsError> {
        let (parent, _) = split(path);
        match self.stat(parent) {
            None => Err(FsError::NotFound),
            Some(n) if n.kind != Kind::Dir => Err(FsError::NotDir),
            Some(_) => Ok(()),
        }
    }

    fn check_writable(path: &str) -> Result<(), FsError> {
        if path == "/proc" || path.starts_with("/proc/") || path.starts_with("/sys/") {
            return Err(FsError::Denied);
        }
        Ok(())
    }

    fn cost(path: &str, entry: &Option<Node>) -> usize {
        path.len() + entry.as_ref().map_or(0, |n| n.data.len())
    }

    fn put(&mut self, path: String, node: Node) -> Result<(), FsError> {
        let old = self.overlay.get(&path).map_or(0, |e| Self::cost(&path, e));
        let new_bytes = self.bytes.saturating_sub(old) + path.len() + node.data.len();
        let new_entry = !self.overlay.contains_key(&path);
        if new_bytes > self.limits.max_bytes
            || (new_entry && self.overlay.len() >= self.limits.max_entries)
        {
            return Err(FsError::NoSpace);
        }
        self.bytes = new_bytes;
        self.provisioned.remove(&path);
        self.overlay.insert(path, Some(node));
        Ok(())
    }

    /// Writes (or appends to) a file. Writes to `/dev/null` vanish.
    pub(crate) fn write(
        &mut self,
        path: &str,
        data: &[u8],
        append: bool,
        uid: u32,
        now: i64,
    ) -> Result<(), FsError> {
        let path = self.resolve(path);
        if path == "/dev/null" || path == "/dev/tty" {
            return Ok(());
        }
        // Root tunes the kernel through the writable entries of /proc/sys.
        let tunable = uid == 0
            && path.starts_with("/proc/sys/")
            && self
                .raw(&path)
                .is_some_and(|n| n.kind == Kind::File && n.mode & 0o200 != 0);
        if !tunable {
            Self::check_writable(&path)?;
        }
        self.parent_is_dir(&path)?;
        let mut node = match self.raw(&path) {
            Some(n) if n.kind == Kind::Dir => return Err(FsError::IsDir),
            Some(n) => n.clone(),
            None => Node::file(Vec::new(), uid, now),
        };
        // Refuse before copying: the cap bounds what one write may allocate.
        let total = if append { node.data.len() } else { 0 } + data.len();
        if total > self.limits.max_bytes {
            return Err(FsError::NoSpace);
        }
        let mut content = if append {
            node.data.into_owned()
        } else {
            Vec::new()
        };
        content.extend_from_slice(data);
        node.data = Cow::Owned(content);
        node.shown_size = None;
        node.mtime = now;
        self.put(path, node)
    }

    pub(crate) fn mkdir(&mut self, path: &str, uid: u32, now: i64) -> Result<(), FsError> {
        let path = self.resolve(path);
        Self::check_writable(&path)?;
        if self.raw(&path).is_some() {
            return Err(FsError::Exists);
        }
        self.parent_is_dir(&path)?;
        self.put(path, Node::dir(0o755, uid, now))
    }

    /// Creates an empty file or updates the time of an existing one.
    pub(crate) fn touch(&mut self, path: &str, uid: u32, now: i64) -> Result<(), FsError> {
        let resolved = self.resolve(path);
        match self.raw(&resolved) {
            Some(n) => {
                let mut n = n.clone();
                n.mtime = now;
                Self::check_writable(&resolved)?;
                self.put(resolved, n)
            }
            None => self.write(&resolved, b"", true, uid, now),
        }
    }

    pub(crate) fn chmod(&mut self, path: &str, mode: u32) -> Result<(), FsError> {
        let path = self.resolve(path);
        Self::check_writable(&path)?;
        let mut n = self.raw(&path).ok_or(FsError::NotFound)?.clone();
        n.mode = mode & 0o7777;
        self.put(path, n)
    }

    /// Removes a file, or a directory with `recursive`.
    pub(crate) fn remove(
        &mut self,
        path: &str,
        recursive: bool,
        dir_ok: bool,
    ) -> Result<(), FsError> {
        let (parent, name) = split(path);
        let parent = self.resolve(parent);
        let path = if parent == "/" {
            format!("/{name}")
        } else {
            format!("{parent}/{name}")
        };
        if path == "/" {
            return Err(FsError::Denied);
        }
        Self::check_writable(&path)?;
        let node = self.raw(&path).ok_or(FsError::NotFound)?;
        if node.kind == Kind::Dir {
            let empty = self.list(&path).map(|l| l.is_empty()).unwrap_or(true);
            if !(recursive || dir_ok && empty) {
                return Err(if dir_ok {
                    FsError::NotEmpty
                } else {
                    FsError::IsDir
                });
            }
            // Mark every descendant deleted; bounded by the entry cap like any write.
            let mut stack = vec![path.clone()];
            let mut doomed = Vec::new();
            while let Some(d) = stack.pop() {
                for (name, n) in self.list(&d).unwrap_or_default() {
                    let child = if d == "/" {
                        format!("/{name}")
                    } else {
                        format!("{d}/{name}")
                    };
                    if n.kind == Kind::Dir {
                        stack.push(child.clone());
                    }
                    doomed.push(child);
                }
                if doomed.len() > self.limits.max_entries {
                    return Err(FsError::Denied);
                }
            }
            for c in doomed {
                self.tombstone(c)?;
            }
        }
        self.tombstone(path)
    }

    fn tombstone(&mut self, path: String) -> Result<(), FsError> {
        let old = self.overlay.get(&path).map_or(0, |e| Self::cost(&path, e));
        self.provisioned.remove(&path);
        if self.base.nodes.contains_key(&path) {
            let new_bytes = self.bytes.saturating_sub(old) + path.len();
            let new_entry = !self.overlay.contains_key(&path);
            if new_bytes > self.limits.max_bytes
                || (new_entry && self.overlay.len() >= self.limits.max_entries)
            {
                return Err(FsError::NoSpace);
            }
            self.bytes = new_bytes;
            self.overlay.insert(path, None);
        } else if self.overlay.remove(&path).is_some() {
            self.bytes = self.bytes.saturating_sub(old);
        }
        Ok(())
    }

    /// Exchanges this view's changes with `other`'s (the SSH driver shares one overlay
    /// between a connection's shells and SFTP); each keeps its own `/proc` and PIDs.
    pub(crate) fn swap_overlay(&mut self, other: &mut Fs) {
        std::mem::swap(&mut self.overlay, &mut other.overlay);
        std::mem::swap(&mut self.bytes, &mut other.bytes);
        std::mem::swap(&mut self.provisioned, &mut other.provisioned);
    }

    /// What the intruder changed (`None`: deleted), provisioned entries left out: what
    /// `persist.rs` keeps for the source's next session.
    pub(crate) fn changes(&self) -> impl Iterator<Item = (&str, Option<&Node>)> {
        self.overlay
            .iter()
            .filter(|(p, _)| !self.provisioned.contains(*p))
            .map(|(p, n)| (p.as_str(), n.as_ref()))
    }

    /// Puts back a change kept from an earlier session, within this overlay's bounds;
    /// false (and nothing changed) if it does not fit or names `/proc` or `/sys`.
    pub(crate) fn restore(&mut self, path: &str, entry: Option<Node>) -> bool {
        if Self::check_writable(path).is_err() && !path.starts_with("/proc/sys/") {
            return false;
        }
        let cost = Self::cost(path, &entry);
        let old = self.overlay.get(path).map_or(0, |e| Self::cost(path, e));
        let new_bytes = self.bytes.saturating_sub(old) + cost;
        let new_entry = !self.overlay.contains_key(path);
        if new_bytes > self.limits.max_bytes
            || (new_entry && self.overlay.len() >= self.limits.max_entries)
        {
            return false;
        }
        self.bytes = new_bytes;
        self.provisioned.remove(path);
        self.overlay.insert(path.to_owned(), entry);
        true
    }

    /// Bytes the overlay holds (content and paths).
    #[cfg(test)]
    pub(crate) fn overlay_bytes(&self) -> usize {
        self.bytes
    }
}

const ELF_STUB: &[u8] =
    b"\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x03\x00>\x00\x01\x00\x00\x00";

const DIRS: &[(&str, u32)] = &[
    ("/boot", 0o755),
    ("/boot/grub", 0o755),
    ("/dev", 0o755),
    ("/dev/shm", 0o1777),
    ("/etc", 0o755),
    ("/etc/apt", 0o755),
    ("/etc/cron.d", 0o755),
    ("/etc/cron.daily", 0o755),
    ("/etc/default", 0o755),
    ("/etc/init.d", 0o755),
    ("/etc/network", 0o755),
    ("/etc/ssh", 0o755),
    ("/etc/systemd", 0o755),
    ("/home", 0o755),
    ("/media", 0o755),
    ("/mnt", 0o755),
    ("/opt", 0o755),
    ("/proc", 0o555),
    ("/proc/sys", 0o555),
    ("/proc/sys/kernel", 0o555),
    ("/root", 0o700),
    ("/root/.ssh", 0o700),
    ("/run", 0o755),
    ("/srv", 0o755),
    ("/sys", 0o555),
    ("/tmp", 0o1777),
    ("/usr", 0o755),
    ("/usr/bin", 0o755),
    ("/usr/games", 0o755),
    ("/usr/include", 0o755),
    ("/usr/lib", 0o755),
    ("/usr/lib64", 0o755),
    ("/usr/local", 0o755),
    ("/usr/local/bin", 0o755),
    ("/usr/local/sbin", 0o755),
    ("/usr/sbin", 0o755),
    ("/usr/share", 0o755),
    ("/var", 0o755),
    ("/var/backups", 0o755),
    ("/var/cache", 0o755),
    ("/var/lib", 0o755),
    ("/var/local", 0o2775),
    ("/var/log", 0o755),
    ("/var/log/apt", 0o755),
    ("/var/mail", 0o2775),
    ("/var/opt", 0o755),
    ("/var/spool", 0o755),
    ("/var/spool/cron", 0o755),
    ("/var/spool/cron/crontabs", 0o1730),
    ("/var/tmp", 0o1777),
    ("/var/www", 0o755),
    ("/var/www/html", 0o755),
];

/// (path, mode, owner, package account) of the directories the services' packages
/// make, there when the package's account is. Modes and owners as Debian 12's packages
/// leave them (redis' setgid dirs; their group, `redis`/`adm`, is shown as the owner).
const SERVICE_DIRS: &[(&str, u32, &str, &str)] = &[
    ("/srv/ftp", 0o755, "root", "ftp"),
    ("/etc/redis", 0o2770, "redis", "redis"),
    ("/var/lib/redis", 0o750, "redis", "redis"),
    ("/var/log/redis", 0o2750, "redis", "redis"),
    ("/etc/mysql", 0o755, "root", "mysql"),
    ("/var/lib/mysql", 0o755, "mysql", "mysql"),
    ("/run/mysqld", 0o755, "mysql", "mysql"),
    ("/etc/postfix", 0o755, "root", "postfix"),
    ("/var/spool/postfix", 0o755, "root", "postfix"),
    ("/var/lib/postfix", 0o755, "postfix", "postfix"),
];

const SYMLINKS: &[(&str, &str)] = &[
    ("/bin", "usr/bin"),
    ("/sbin", "usr/sbin"),
    ("/lib", "usr/lib"),
    ("/lib64", "usr/lib64"),
    ("/var/run", "/run"),
];

const USR_BIN: &str = "apt apt-get awk base64 basename bash cat chmod chown cp crontab curl cut dash date dd df diff dirname dmesg du echo editor env false find free grep gzip head hostname id ip kill last lastb less ln ls lsblk lscpu mawk md5sum mkdir mktemp more mount mv nano nl nproc od pager passwd perl pgrep pidof ping pkill ps pwd readlink realpath rev rm rmdir scp sed seq sh sha1sum sha256sum sleep sort ss ssh stat su sudo systemctl tail tar tee top touch tr true uname uniq uptime vi vim.tiny w wc wget which whoami xargs yes";
const USR_SBIN: &str =
    "adduser chpasswd cron fdisk iptables reboot service shutdown sshd sysctl useradd";

/// (path, mode, content) of the base files.
const FILES: &[(&str, u32, &str)] = &[
    (
        "/etc/os-release",
        0o644,
        "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nVERSION=\"12 (bookworm)\"\nVERSION_CODENAME=bookworm\nID=debian\nHOME_URL=\"https://www.debian.org/\"\nSUPPORT_URL=\"https://www.debian.org/support\"\nBUG_REPORT_URL=\"https://bugs.debian.org/\"\n",
    ),
    ("/etc/issue", 0o644, "Debian GNU/Linux 12 \\n \\l\n\n"),
    ("/etc/issue.net", 0o644, "Debian GNU/Linux 12\n"),
    ("/etc/motd", 0o644, MOTD),
    (
        "/etc/shells",
        0o644,
        "# /etc/shells: valid login shells\n/bin/sh\n/usr/bin/sh\n/bin/bash\n/usr/bin/bash\n/bin/rbash\n/usr/bin/rbash\n",
    ),
    (
        "/etc/crontab",
        0o644,
        "SHELL=/bin/sh\nPATH=/usr/local/sbin:/usr/local/bin:/sbin:/bin:/usr/sbin:/usr/bin\n\n# m h dom mon dow user\tcommand\n17 *\t* * *\troot\tcd / && run-parts --report /etc/cron.hourly\n25 6\t* * *\troot\ttest -x /usr/sbin/anacron || { cd / && run-parts --report /etc/cron.daily; }\n47 6\t* * 7\troot\ttest -x /usr/sbin/anacron || { cd / && run-parts --report /etc/cron.weekly; }\n52 6\t1 * *\troot\ttest -x /usr/sbin/anacron || { cd / && run-parts --report /etc/cron.monthly; }\n",
    ),
    (
        "/etc/profile",
        0o644,
        "if [ \"$(id -u)\" -eq 0 ]; then\n  PATH=\"/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\"\nelse\n  PATH=\"/usr/local/bin:/usr/bin:/bin:/usr/local/games:/usr/games\"\nfi\nexport PATH\n",
    ),
    (
        "/etc/bash.bashrc",
        0o644,
        "# System-wide .bashrc file for interactive bash(1) shells.\n[ -z \"$PS1\" ] && return\nshopt -s checkwinsize\n",
    ),
    (
        "/etc/ssh/sshd_config",
        0o644,
        "Include /etc/ssh/sshd_config.d/*.conf\nKbdInteractiveAuthentication no\nUsePAM yes\nX11Forwarding yes\nPrintMotd no\nAcceptEnv LANG LC_*\nSubsystem\tsftp\t/usr/lib/openssh/sftp-server\nPermitRootLogin yes\nPasswordAuthentication yes\n",
    ),
    (
        "/etc/apt/sources.list",
        0o644,
        "deb http://deb.debian.org/debian bookworm main\ndeb http://deb.debian.org/debian-security bookworm-security main\ndeb http://deb.debian.org/debian bookworm-updates main\n",
    ),
    ("/root/.bashrc", 0o644, BASHRC),
    (
        "/root/.profile",
        0o644,
        "# ~/.profile: executed by Bourne-compatible login shells.\n\nif [ \"$BASH\" ]; then\n  if [ -f ~/.bashrc ]; then\n    . ~/.bashrc\n  fi\nfi\n\nmesg n 2> /dev/null || true\n",
    ),
    (
        "/root/.bash_history",
        0o600,
        "apt update\napt upgrade -y\nsystemctl status nginx\ndf -h\nexit\n",
    ),
    ("/root/.ssh/authorized_keys", 0o600, ""),
    (
        "/var/log/dpkg.log",
        0o644,
        "2024-04-02 06:41:12 startup archives unpack\n2024-04-02 06:41:13 upgrade libssl3:amd64 3.0.11-1~deb12u2 3.0.13-1~deb12u1\n",
    ),
    ("/var/log/lastlog", 0o664, ""),
    ("/var/log/wtmp", 0o664, ""),
    (
        "/var/log/apt/history.log",
        0o644,
        "\nStart-Date: 2024-04-02  06:41:10\nCommandline: apt-get -y upgrade\nUpgrade: libssl3:amd64 (3.0.11-1~deb12u2, 3.0.13-1~deb12u1)\nEnd-Date: 2024-04-02  06:41:20\n",
    ),
    (
        "/var/www/html/index.html",
        0o644,
        "<!DOCTYPE html>\n<html><head><title>Welcome to nginx!</title></head>\n<body><h1>Welcome to nginx!</h1></body></html>\n",
    ),
    ("/usr/share/dict", 0o644, ""),
];

pub(crate) const BASHRC: &str = "# ~/.bashrc: executed by bash(1) for non-login shells.\n\nexport LS_OPTIONS='--color=auto'\nalias ls='ls $LS_OPTIONS'\nalias ll='ls $LS_OPTIONS -l'\n";

pub(crate) const MOTD: &str = "\nThe programs included with the Debian GNU/Linux system are free software;\nthe exact distribution terms for each program are described in the\nindividual files in /usr/share/doc/*/copyright.\n\nDebian GNU/Linux comes with ABSOLUTELY NO WARRANTY, to the extent\npermitted by applicable law.\n";

#[cfg(test)]
mod tests {
    use super::*;

    fn fs() -> Fs {
        Fs::new(
            Arc::new(BaseFs::new(NodePersona::reference("web-1"), "web-1")),
            OverlayLimits {
                max_bytes: 1000,
                max_entries: 8,
            },
        )
    }

    #[test]
    fn normalize_folds_dots_and_home() {
        assert_eq!(
            normalize("/root", "/root", "../etc/./passwd"),
            "/etc/passwd"
        );
        assert_eq!(normalize("/", "/root", ".."), "/");
        assert_eq!(normalize("/tmp", "/home/pi", "~/x"), "/home/pi/x");
        assert_eq!(normalize("/tmp", "/root", "~"), "/root");
        assert_eq!(normalize("/tmp", "/root", "a//b/"), "/tmp/a/b");
    }

    #[test]
    fn base_tree_reads_and_lists() {
        let f = fs();
        assert!(
            std::str::from_utf8(f.read("/etc/passwd").unwrap())
                .unwrap()
                .starts_with("root:x:0:0")
        );
        assert_eq!(f.read("/etc/hostname").unwrap(), b"web-1\n");
        assert_eq!(f.read("/etc"), Err(FsError::IsDir));
        assert_eq!(f.read("/nope"), Err(FsError::NotFound));
        // /bin is a link to /usr/bin.
        assert_eq!(f.stat("/bin/ls").unwrap().mode, 0o755);
        assert_eq!(f.lstat("/bin").unwrap().kind, Kind::Symlink);
        let names: Vec<String> = f.list("/").unwrap().into_iter().map(|(n, _)| n).collect();
        for want in ["bin", "etc", "home", "proc", "root", "tmp", "usr", "var"] {
            assert!(names.contains(&want.to_owned()), "{names:?}");
        }
        assert!(!names.iter().any(|n| n.contains('/')));
        let cpus = std::str::from_utf8(f.read("/proc/cpuinfo").unwrap())
            .unwrap()
            .matches("processor")
            .count();
        assert_eq!(cpus, 2);
        assert_eq!(f.list("/etc/passwd").unwrap_err(), FsError::NotDir);
    }

    #[test]
    fn overlay_writes_deletes_and_caps() {
        let mut f = fs();
        f.write("/tmp/a", b"hello", false, 0, 5).unwrap();
        f.write("/tmp/a", b" world", true, 0, 6).unwrap();
        assert_eq!(f.read("/tmp/a").unwrap(), b"hello world");
        f.mkdir("/tmp/d", 0, 7).unwrap();
        assert_eq!(f.mkdir("/tmp/d", 0, 7), Err(FsError::Exists));
        assert_eq!(
            f.write("/nodir/x", b"", false, 0, 1),
            Err(FsError::NotFound)
        );
        assert_eq!(f.write("/proc/x", b"", false, 0, 1), Err(FsError::Denied));
        f.write("/dev/null", &[0; 5000], false, 0, 1).unwrap();
        assert_eq!(
            f.write("/tmp/big", &[0; 2000], false, 0, 1),
            Err(FsError::NoSpace)
        );
        f.chmod("/tmp/a", 0o777).unwrap();
        assert_eq!(f.stat("/tmp/a").unwrap().mode, 0o777);
        f.remove("/tmp/a", false, false).unwrap();
        assert_eq!(f.read("/tmp/a"), Err(FsError::NotFound));
        // A base file can be deleted in the session and stays in the base.
        f.remove("/etc/motd", false, false).unwrap();
        assert_eq!(f.read("/etc/motd"), Err(FsError::NotFound));
        assert_eq!(f.remove("/etc", false, false), Err(FsError::IsDir));
        assert!(f.overlay_bytes() <= 1000);
        // Entry cap.
        let mut errs = 0;
        for i in 0..20 {
            if f.touch(&format!("/tmp/f{i}"), 0, 1).is_err() {
                errs += 1;
            }
        }
        assert!(errs > 0);
        assert!(f.overlay.len() <= 8);
    }

    #[test]
    fn recursive_remove_hides_descendants() {
        let mut f = Fs::new(
            Arc::new(BaseFs::new(NodePersona::reference("h"), "h")),
            OverlayLimits::default(),
        );
        f.remove("/var/log", true, false).unwrap();
        assert_eq!(f.read("/var/log/syslog"), Err(FsError::NotFound));
        assert!(!f.list("/var").unwrap().iter().any(|(n, _)| n == "log"));
    }
}
