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
    /// Absolute, normalised: `/www/index.php`.
    pub path: String,
    pub kind: Kind,
    /// As `ls -l` shows it: `Mar 14  2023` or `Jan 20 14:31`.
    pub date: String,
}

/// WordPress's own `index.php` (the same in every release since 5.x).
const WP_INDEX: &[u8] = b"<?php\n/**\n * Front to the WordPress application. This file doesn't do anything, but loads\n * wp-blog-header.php which does and tells WordPress to load the theme.\n *\n * @package WordPress\n */\n\n/**\n * Tells WordPress to load the WordPress theme and output it.\n *\n * @var bool\n */\ndefine( 'WP_USE_THEMES', true );\n\n/** Loads the WordPress Environment and Template */\nrequire __DIR__ . '/wp-blog-header.php';\n";

const COLLEAGUES: &[&str] = &[
    "Tom", "Sarah", "Mike", "Anna", "Dave", "Emma", "Chris", "Lisa", "Paul", "Kate", "Ben", "Jo",
];
const MONTH_NAMES: &[&str] = &[
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];

#[derive(Debug, Clone)]
enum What {
    Dir,
    /// Listed with its size, not downloadable (a large archive).
    Sized(u64),
    Text(Vec<u8>),
}

/// One node's FTP account: the web host account of the node's own WordPress site
/// ([`crate::services::http::wordpress::Blog::of`]), so that FTP and HTTP tell one
/// story (the site's name in its database's name and password), with dates that follow
/// the machine's install: the site's old config from before the move, the backup taken
/// just before it, the upload and notes after. No two nodes alike.
#[derive(Debug, Clone)]
pub(crate) struct Site {
    /// (path, what, Unix time), parents before children.
    entries: Vec<(String, What, i64)>,
    /// The home directory's time.
    root: i64,
}

impl Site {
    pub(crate) fn of(p: &crate::persona::Persona) -> Site {
        let blog = crate::services::http::wordpress::Blog::of(p);
        let mut d = p.stream("ftp-site");
        let i = p.install_time;
        // Nothing dated after the machine last booted (the account has been idle since).
        let cap = |t: i64| t.min(p.boot_time - 86_400).max(0);
        let config = cap(i - d.range(300, 1_500) * 86_400 + d.range(8, 18) * 3_600);
        let backup = cap(i - d.range(1, 20) * 86_400 + d.range(1, 5) * 3_600);
        let www = cap(i + d.range(1, 5) * 86_400 + d.range(9, 17) * 3_600);
        let upload = cap(www + d.range(5, 120) * 86_400 + d.range(0, 86_399));
        let notes = cap(upload + d.range(5, 80) * 86_400 + d.range(0, 86_399));
        // `Copper Lane Florist`: database `wp_copper`, password `C0pper!2021`.
        let word: String = blog
            .name
            .split(' ')
            .next()
            .unwrap_or("site")
            .chars()
            .filter(char::is_ascii_alphabetic)
            .take(12)
            .collect();
        let db = format!("wp_{}", word.to_ascii_lowercase());
        let mut pass = word.clone();
        for (from, to) in [('o', "0"), ('e', "3"), ('i', "1"), ('a', "4")] {
            if let Some(k) = pass.find(from) {
                pass.replace_range(k..k + 1, to);
                break;
            }
        }
        let year = crate::persona::civil(config.div_euclid(86_400)).0;
        let symbols = ["!", "#", "@", "$"];
        pass.push_str(symbols[d.below(4) as usize]);
        pass.push_str(&year.to_string());
        let config_bak = format!(
            "<?php\ndefine( 'DB_NAME', '{db}' );\ndefine( 'DB_USER', '{db}' );\ndefine( 'DB_PASSWORD', '{pass}' );\ndefine( 'DB_HOST', 'localhost' );\ndefine( 'DB_CHARSET', 'utf8mb4' );\n$table_prefix = 'wp_';\n"
        );
        let cert_month =
            MONTH_NAMES[crate::persona::civil(notes.div_euclid(86_400)).1 as usize % 12];
        let note = format!(
            "- renew TLS cert before {cert_month}\n- move backups to the NAS\n- ask {} for the new DB password\n",
            d.pick(COLLEAGUES)
        );
        let (y, m, day) = crate::persona::civil(backup.div_euclid(86_400));
        let stamp = format!("{y}-{m:02}-{day:02}");
        let db_size = 8_000_000 + d.below(60_000_000);
        let site_size = 90_000_000 + d.below(400_000_000);
        Site {
            entries: vec![
                ("/backup".into(), What::Dir, backup),
                (
                    format!("/backup/db_{stamp}.sql.gz"),
                    What::Sized(db_size),
                    backup - 120,
                ),
                (
                    format!("/backup/site_{stamp}.tar.gz"),
                    What::Sized(site_size),
                    backup,
                ),
                ("/upload".into(), What::Dir, upload),
                ("/www".into(), What::Dir, www),
                ("/www/index.php".into(), What::Text(WP_INDEX.to_vec()), www),
                (
                    "/www/wp-config.php.bak".into(),
                    What::Text(config_bak.into_bytes()),
                    config,
                ),
                ("/notes.txt".into(), What::Text(note.into_bytes()), notes),
            ],
            root: www,
        }
    }
}

/// The site's tree as a session at `now` lists it (vsftpd's dates depend on the age).
fn base(site: &Site, now: i64) -> Vec<Entry> {
    let date = |t: i64| super::machine::ls_date(t.max(0) as u64, now.max(0) as u64);
    site.entries
        .iter()
        .map(|(path, what, t)| Entry {
            path: path.clone(),
            kind: match what {
                What::Dir => Kind::Dir,
                What::Sized(size) => Kind::File {
                    size: *size,
                    content: None,
                    upload: false,
                },
                What::Text(c) => Kind::File {
                    size: c.len() as u64,
                    content: Some(Cow::Owned(c.clone())),
                    upload: false,
                },
            },
            date: date(*t),
        })
        .collect()
}

/// One session's view of the tree.
#[derive(Debug)]
pub(crate) struct FakeFs {
    entries: Vec<Entry>,
    removed: HashSet<String>,
    changes: usize,
    /// The home directory's listing date.
    root_date: String,
}

impl Default for FakeFs {
    /// The reference machine's account, listed a year after its install.
    fn default() -> Self {
        let p = crate::persona::Persona::reference("web-prod-02");
        let now = p.install_time + 365 * 86_400;
        FakeFs::new(&Site::of(&p), now)
    }
}

impl FakeFs {
    /// A session's view of `site` at `now` (Unix seconds).
    pub(crate) fn new(site: &Site, now: i64) -> FakeFs {
        FakeFs {
            entries: base(site, now),
            removed: HashSet::new(),
            changes: 0,
            root_date: super::machine::ls_date(site.root.max(0) as u64, now.max(0) as u64),
        }
    }

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
            .map_or(self.root_date.as_str(), |e| e.date.as_str())
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
            "drwxr-xr-x    2 1000     1000         4096 Feb 05  2024 backup\r\n"
        );
        assert!(fs.is_dir("/www") && !fs.is_dir("/notes.txt") && !fs.is_dir("/nope"));
        assert!(fs.file("/notes.txt").unwrap().1.is_some());
        let db = fs.children("/backup")[0].path.clone();
        assert!(fs.file(&db).unwrap().1.is_none(), "{db}");
    }

    #[test]
    fn the_account_is_the_nodes_own_wordpress_site() {
        let persona = |n: u8| crate::persona::Persona::generate(&[n; 32], 1_790_000_000);
        let config = |p: &crate::persona::Persona| {
            let fs = FakeFs::new(&Site::of(p), 1_790_000_000);
            let c = fs
                .file("/www/wp-config.php.bak")
                .unwrap()
                .1
                .unwrap()
                .to_vec();
            String::from_utf8(c).unwrap()
        };
        let mut seen = Vec::new();
        for n in 0..12 {
            let p = persona(n);
            let blog = crate::services::http::wordpress::Blog::of(&p);
            let word = blog.name.split(' ').next().unwrap().to_ascii_lowercase();
            let c = config(&p);
            assert!(
                c.contains(&format!("'DB_NAME', 'wp_{word}'")),
                "{} {c}",
                blog.name
            );
            let fs = FakeFs::new(&Site::of(&p), 1_790_000_000);
            // WordPress's docroot, nothing dated after the machine booted.
            assert!(
                fs.file("/www/index.php")
                    .unwrap()
                    .1
                    .unwrap()
                    .starts_with(b"<?php")
            );
            let listing: String = ["/", "/backup", "/www"]
                .iter()
                .flat_map(|d| fs.children(d))
                .map(list_line)
                .collect();
            seen.push(listing);
        }
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), 12, "two nodes list the same account");
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
        assert!(fs.entries.len() <= FakeFs::default().entries.len() + MAX_OVERLAY);
        assert!(FakeFs::default().get("/upload/x.sh").is_none());
    }
}
