//! The `honeybee-agent` binary's log output: plain text without ANSI colour codes when
//! standard error is not a terminal (a file, a pipe, the journal), and one JSON object a
//! line with `--log-format json` (or HONEYBEE_LOG_FORMAT=json), the fatal error included.

use std::process::Command;

fn agent(args: &[&str], envs: &[(&str, &str)]) -> (bool, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut c = Command::new(env!("CARGO_BIN_EXE_honeybee-agent"));
    c.args(args)
        .arg("--data-dir")
        .arg(dir.path().join("not-enrolled"))
        .env_remove("NO_COLOR")
        .env_remove("HONEYBEE_LOG_FORMAT");
    for (k, v) in envs {
        c.env(k, v);
    }
    let out = c.output().expect("honeybee-agent runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn human_errors_have_no_colour_codes_off_a_terminal() {
    let (ok, err) = agent(&["run"], &[]);
    assert!(!ok);
    assert!(err.starts_with("error: "), "{err}");
    assert!(err.contains("enrol first"), "{err}");
    assert!(!err.contains('\u{1b}'), "ANSI escape in {err:?}");
}

#[test]
fn json_format_writes_one_object_a_line() {
    for (args, envs) in [
        (&["--log-format", "json", "run"][..], &[][..]),
        (&["run"][..], &[("HONEYBEE_LOG_FORMAT", "json")][..]),
    ] {
        let (ok, err) = agent(args, envs);
        assert!(!ok);
        let lines: Vec<&str> = err.lines().filter(|l| !l.is_empty()).collect();
        assert!(!lines.is_empty(), "no log output");
        for l in &lines {
            let v: serde_json::Value =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
            assert!(v["timestamp"].is_string(), "{l}");
            assert!(v["level"].is_string(), "{l}");
        }
        let last: serde_json::Value = serde_json::from_str(lines[lines.len() - 1]).unwrap();
        assert_eq!(last["level"], "ERROR");
        assert!(
            last["message"]
                .as_str()
                .unwrap_or("")
                .contains("enrol first"),
            "{last}"
        );
    }
    let (ok, err) = agent(&["--log-format", "xml", "run"], &[]);
    assert!(!ok);
    assert!(err.contains("use human or json"), "{err}");
}
