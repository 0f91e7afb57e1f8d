//! The FTP persona's fake directory tree: a fixed tree of a small web host's account,
//! plus a bounded per-session overlay of what the attacker made or deleted, so that a
//! file they upload shows in their next listing. Nothing here touches the real disk.

use std::borrow::Cow;
use std::collections::HashSet;

/// Most paths one session may add or remove; past it changes are answered but forgotten.
const MAX_OVERLAY: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Kind {
    Dir,
    /// A file and its content, when it has one that can be downloaded; `upload`: the
    /// peer's own (mode 0600, as vsftpd's default `local_umask` of 077 makes it).
    File {
        size: u64,
        content: Option<Cow<'static, [u8]>>,
        upload: bool,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    /// Absolute, normalised: `/www/index.html`.
    pub path: String,
    pub kind: Kind,
    /// As `ls -l` shows it: `Mar 14  2023` or `Jan 20 14:31`.
    pub date: String,
}

const NOTES: &[u8] = b"- renew TLS cert before march\n- move backups to the NAS\n- ask Tom for the new DB password\n";
const INDEX: &[u8] = b"<!DOCTYPE html>\n<html><head><title>Harbour Street Studio</title></head>\n<body><h1>Harbour Street Studio</h1><p>Site under maintenance.</p></body></html>\n";
const CONFIG_BAK: &[u8] = b"<?php\ndefine( 'DB_NAME', 'wp_harbour' );\ndefine( 'DB_USER', 'wp_harbour' );\ndefine( 'DB_PASSWORD', 'Harb0ur!2019' );\ndefine( 'DB_HOST', 'localhost' );\ndefine( 'DB_CHARSET', 'utf8mb4' );\n$table_prefix = 'wp_';\n";

/// The fixed tree, parents before children.
fn base() -> Vec<Entry> {
    let dir = |p: &str, d: &str| Entry {
        path: p.into(),
        kind: Kind::Dir,
        date: d.into(),
    };
    let file = |p: &str, size: u64, content: Option<&'static [u8]>, d: &str| Entry {
        path: p.into(),
        kind: Kind::File {
            size: content.map_or(size, |c| c.len() as u64),
            content: content.map(Cow::Borrowed),
            upload: false,
        },
        date: d.into(),
    };
    vec![
        dir("/backup", "Mar 14  2023"),
        file(
            "/backup/db_2023-03-14.sql.gz",
            48_213_997,
            None,
            "Mar 14  2023",
        ),
        file(
            "/backup/site_2023-03-14.tar.gz",
            211_904_512,
            None,
            "Mar 14  2023",
        ),
        dir("/upload", "Nov 02  2023"),
        dir("/www", "Jan 18  2024"),
        file("/www/index.html", 0, Some(INDEX), "Jan 18  2024"),
        file(
            "/www/wp-config.php.bak",
            0,
            Some(CONFIG_BAK),
            "Jun 07  2022",
        ),
        file("/notes.txt", 0, Some(NOTES), "Feb 26  2024"),
    ]
}

/// One session's view of the tree.
#[derive(Debug)]
pub(crate) struct FakeFs {
    entries: Vec<Entry>,
    removed: HashSet<String>,
    changes: usize,
}

impl Default for FakeFs {
    fn default() -> Self {
        FakeFs {
            entries: base(),
            removed: HashSet::new(),
            changes: 0,
        }
    }
}

impl FakeFs {
    pub(crate) fn get(&self, path: &str) -> Option<&Entry> {
        if path == "/" {
            return None;
        }
        self.entries
            .iter()
            .rev()
            .find(|e| e.path == path && !self.removed.contains(path))
    }

    /// The listing date of `path` (`/` has the home directory's).
    pub(crate) fn date_of(&self, path: &str) -> String {
        self.get(path)
            .map_or(ROOT_DATE, |e| e.date.as_str())
            .to_owned()
    }

    pub(crate) fn is_dir(&self, path: &str) -> bool {
        path == "/" || self.get(path).is_some_and(|e| e.kind == Kind::Dir)
    }

    pub(crate) fn file(&self, path: &str) -> Option<(u64, Option<&[u8]>, &str)> {
        match self.get(path) {
            Some(Entry {
                kind: Kind::File { size, content, .. },
                date,
                ..
            }) => Some((*size, content.as_deref(), date)),
            _ => None,
        }
    }

    /// The entries directly in `dir`, by name.
    pub(crate) fn children(&self, dir: &str) -> Vec<&Entry> {
        let mut out: Vec<&Entry> = Vec::new();
        for e in self.entries.iter().rev() {
            if parent(&e.path) == dir
                && !self.removed.contains(&e.path)
                && !out.iter().any(|o| o.path == e.path)
            {
                out.push(e);
            }
        }
        out.sort_by(|a, b| a.path.cmp(&b.path));
        out
    }

    /// Records a new file or directory; false if its parent is no directory.
    pub(crate) fn add(&mut self, path: &str, kind: Kind, date: String) -> bool {
        if !self.is_dir(parent(path)) || path == "/" {
            return false;
        }
        if self.changes < MAX_OVERLAY {
            self.changes += 1;
            self.removed.remove(path);
            self.entries.push(Entry {
                path: path.to_owned(),
                kind,
                date,
            });
        }
        true
    }

    /// Forgets a path (and, for a directory, what is under it); false if it is not there.
    pub(crate) fn remove(&mut self, path: &str) -> bool {
        if self.get(path).is_none() {
            return false;
        }
        if self.changes < MAX_OVERLAY {
            self.changes += 1;
            self.removed.insert(path.to_owned());
        }
        true
    }
}

/// The directory a normalised path is in (`/` for top-level entries and for `/`).
pub(crate) fn parent(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &path[..i],
    }
}

/// The last component of a normalised path.
pub(crate) fn name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// Resolves `arg` against `cwd` into a normalised absolute path (`.` and `..` applied,
/// never above `/`), as a chrooted vsftpd user sees it.
pub(crate) fn resolve(cwd: &str, arg: &str) -> String {
    let mut parts: Vec<&str> = if arg.starts_with('/') {
        Vec::new()
    } else {
        cwd.split('/').filter(|p| !p.is_empty()).collect()
    };
    for p in arg.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    if parts.is_empty() {
        "/".to_owned()
    } else {
        format!("/{}", parts.join("/"))
    }
}

/// `.` and `..` as `LIST -a` shows them: each with its date and link count (the
/// chroot's `..` is itself).
pub(crate) fn dot_lines(dot: (&str, usize), dotdot: (&str, usize)) -> String {
    [(".", dot), ("..", dotdot)]
        .iter()
        .map(|(n, (date, links))| {
            format!(
                "drwxr-xr-x {links:>4} {:<8} {:<8} {:>8} {date} {n}\r\n",
                "1000", "1000", 4096
            )
        })
        .collect()
}

/// The date the home directory (`/`) shows.
pub(crate) const ROOT_DATE: &str = "Jan 18  2024";

/// One `ls -l` line as vsftpd prints it (numeric owner and group).
pub(crate) fn list_line(e: &Entry) -> String {
    let (perm, links, size) = match e.kind {
        Kind::Dir => ("drwxr-xr-x", 2, 4096),
        Kind::File {
            size, upload: true, ..
        } => ("-rw-------", 1, size),
        Kind::File { size, .. } => ("-rw-r--r--", 1, size),
    };
    format!(
        "{perm} {links:>4} {:<8} {:<8} {size:>8} {} {}\r\n",
        "1000",
        "1000",
        e.date,
        name(&e.path)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_paths() {
        assert_eq!(resolve("/", "www"), "/www");
        assert_eq!(resolve("/www", "../backup/./x"), "/backup/x");
        assert_eq!(resolve("/www", "/"), "/");
        assert_eq!(resolve("/", "../../../etc/passwd"), "/etc/passwd");
        assert_eq!(resolve("/www", ""), "/www");
        assert_eq!(resolve("/a", "b//c/"), "/a/b/c");
        assert_eq!(parent("/www/index.html"), "/www");
        assert_eq!(parent("/www"), "/");
        assert_eq!(name("/www/index.html"), "index.html");
    }

    #[test]
    fn lists_like_vsftpd() {
        let fs = FakeFs::default();
        let root: Vec<_> = fs.children("/").iter().map(|e| name(&e.path)).collect();
        assert_eq!(root, ["backup", "notes.txt", "upload", "www"]);
        assert_eq!(
            list_line(fs.get("/backup").unwrap()),
            "drwxr-xr-x    2 1000     1000         4096 Mar 14  2023 backup\r\n"
        );
        assert!(fs.is_dir("/www") && !fs.is_dir("/notes.txt") && !fs.is_dir("/nope"));
        assert!(fs.file("/notes.txt").unwrap().1.is_some());
        assert!(fs.file("/backup/db_2023-03-14.sql.gz").unwrap().1.is_none());
    }

    #[test]
    fn overlay_is_per_session_and_bounded() {
        let mut fs = FakeFs::default();
        assert!(fs.add(
            "/upload/x.sh",
            Kind::File {
                size: 5,
                content: None,
                upload: true,
            },
            "Jan 01 00:00".into()
        ));
        assert!(!fs.add(
            "/nodir/x.sh",
            Kind::File {
                size: 5,
                content: None,
                upload: true,
            },
            "Jan 01 00:00".into()
        ));
        assert_eq!(fs.children("/upload").len(), 1);
        assert!(fs.remove("/notes.txt"));
        assert!(fs.get("/notes.txt").is_none());
        assert!(!fs.remove("/notes.txt"));
        assert!(fs.add("/www/new", Kind::Dir, "Jan 01 00:00".into()));
        assert!(fs.is_dir("/www/new"));
        for i in 0..1000 {
            fs.add(&format!("/upload/{i}"), Kind::Dir, String::new());
        }
        assert!(fs.entries.len() <= base().len() + MAX_OVERLAY);
        assert!(FakeFs::default().get("/upload/x.sh").is_none());
    }
}
