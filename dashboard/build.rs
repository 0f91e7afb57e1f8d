//! Builds the web app (`web/`, Svelte + Vite) so `cargo build` embeds fresh assets:
//! `npm ci` when `node_modules` is missing or older than the lockfile, then
//! `npm run build` into `web/dist`. Without a `web/package.json` a placeholder page is
//! embedded instead. `HONEYBEE_DASHBOARD_DIST=DIR` embeds a prebuilt directory and skips npm.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

const WATCHED: [&str; 8] = [
    "src",
    "public",
    "index.html",
    "package.json",
    "package-lock.json",
    "vite.config.js",
    "svelte.config.js",
    "jsconfig.json",
];

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("set by cargo"));
    let web = manifest.join("web");
    println!("cargo:rerun-if-env-changed=HONEYBEE_DASHBOARD_DIST");
    println!("cargo:rerun-if-changed=web/package.json");
    if let Some(dir) = std::env::var_os("HONEYBEE_DASHBOARD_DIST") {
        emit_dist(Path::new(&dir));
        return;
    }
    if !web.join("package.json").exists() {
        let dist = out.join("placeholder");
        std::fs::create_dir_all(&dist).expect("create OUT_DIR/placeholder");
        std::fs::write(
            dist.join("index.html"),
            "<!doctype html><meta charset=utf-8><title>HoneyBee</title>\
             <p>The HoneyBee dashboard web app was not built (no dashboard/web/package.json). \
             The API is at <a href=/api/openapi.json>/api/openapi.json</a>.</p>",
        )
        .expect("write placeholder index.html");
        emit_dist(&dist);
        return;
    }
    for w in WATCHED {
        if web.join(w).exists() {
            println!("cargo:rerun-if-changed=web/{w}");
        }
    }
    let _lock = BuildLock::take(&web);
    let npm = std::env::var("NPM").unwrap_or_else(|_| "npm".into());
    if Command::new(&npm).arg("--version").output().is_err() {
        panic!(
            "building the dashboard's web app needs Node.js and npm, and `{npm}` was not found. \
             Install them (Debian: apt-get install nodejs npm), or set \
             HONEYBEE_DASHBOARD_DIST to a directory with prebuilt assets."
        );
    }
    let stamp = web.join("node_modules").join(".package-lock.json");
    if newer(&web.join("package-lock.json"), &stamp) || !stamp.exists() {
        run(&npm, &["ci", "--no-audit", "--no-fund"], &web);
    }
    let dist = web.join("dist");
    let built = dist.join("index.html");
    let sources_newest = WATCHED.iter().map(|w| newest(&web.join(w))).max().flatten();
    let dist_time = mtime(&built);
    if dist_time.is_none() || sources_newest > dist_time {
        run(&npm, &["run", "build"], &web);
    }
    if !built.exists() {
        panic!(
            "`npm run build` in {} made no dist/index.html",
            web.display()
        );
    }
    emit_dist(&dist);
}

fn emit_dist(dir: &Path) {
    let dir = dir.canonicalize().unwrap_or_else(|e| {
        panic!("dashboard assets directory {}: {e}", dir.display());
    });
    println!("cargo:rustc-env=HONEYBEE_DASHBOARD_DIST={}", dir.display());
}

fn run(npm: &str, args: &[&str], dir: &Path) {
    let status = Command::new(npm)
        .args(args)
        .current_dir(dir)
        // npm's progress output goes to cargo's build log, not the terminal.
        .stdout(std::process::Stdio::inherit())
        .status()
        .unwrap_or_else(|e| panic!("cannot run `{npm} {}`: {e}", args.join(" ")));
    if !status.success() {
        panic!(
            "`{npm} {}` in {} failed ({status}); see the output above",
            args.join(" "),
            dir.display()
        );
    }
}

fn mtime(p: &Path) -> Option<SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}

fn newer(a: &Path, b: &Path) -> bool {
    match (mtime(a), mtime(b)) {
        (Some(a), Some(b)) => a > b,
        _ => false,
    }
}

/// The newest modification time of a file or anything under a directory.
fn newest(p: &Path) -> Option<SystemTime> {
    let meta = std::fs::symlink_metadata(p).ok()?;
    let own = meta.modified().ok();
    if !meta.is_dir() {
        return own;
    }
    let mut best = own;
    for entry in std::fs::read_dir(p).ok()?.flatten() {
        best = best.max(newest(&entry.path()));
    }
    best
}

/// Two cargo builds (say `test` and `--release`) may run this script at once; npm in one
/// directory must not. An exclusive `flock` on a file in the temp directory, named after
/// the web directory, serialises them.
struct BuildLock(#[allow(dead_code)] std::fs::File);

impl BuildLock {
    fn take(web: &Path) -> BuildLock {
        use std::hash::{Hash, Hasher};
        use std::os::fd::AsRawFd;
        let mut h = std::collections::hash_map::DefaultHasher::new();
        web.hash(&mut h);
        let path = std::env::temp_dir().join(format!("honeybee-web-build-{:x}.lock", h.finish()));
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
        // SAFETY: flock on a descriptor we own; it is released when the file closes.
        let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) };
        if rc != 0 {
            panic!(
                "cannot lock {}: {}",
                path.display(),
                std::io::Error::last_os_error()
            );
        }
        BuildLock(f)
    }
}
