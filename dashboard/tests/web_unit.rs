//! The web app's plain-JavaScript unit tests (`dashboard/web/test/*.test.mjs`: the
//! asciicast parser on hostile transcripts, the live-tail filter, event summaries, the
//! holding-core label), run by Node's own test runner so they are part of the README's
//! test command. They import only the app's `src/lib` files, so no `npm ci` is needed.

use std::path::Path;
use std::process::Command;

#[test]
fn the_web_apps_unit_tests_pass_under_node() {
    let web = Path::new(env!("CARGO_MANIFEST_DIR")).join("web");
    let out = Command::new("node")
        .args(["--test", "test/"])
        .current_dir(&web)
        .output()
        .expect("node runs (install Node.js: Debian's nodejs package or the machine's own)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "node --test in {} failed:\n{text}\n{}",
        web.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    // The runner's own tally: at least the tests this crate knows of ran, none failed.
    let count = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("# {key} ")))
            .and_then(|n| n.trim().parse::<u32>().ok())
    };
    assert_eq!(count("fail"), Some(0), "{text}");
    assert!(
        count("pass").unwrap_or(0) >= 9,
        "fewer tests ran than exist:\n{text}"
    );
}
