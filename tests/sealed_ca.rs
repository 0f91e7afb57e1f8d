//! The CA key sealed with a passphrase: `core init` with a passphrase seals it,
//! `core seal-ca-key` seals an existing one, and the core starts only with the right
//! passphrase — then enrols and serves as before.

mod common;

use common::*;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

const PASSPHRASE: &str = "a long CA passphrase, 2026";

fn honeybee_with(env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut c = Command::new(bin());
    c.args(args).env("RUST_LOG", "info,quinn=warn");
    c.env_remove("HONEYBEE_CA_PASSPHRASE")
        .env_remove("HONEYBEE_CA_PASSPHRASE_FILE");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("honeybee runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn ca_key(dep: &Deployment) -> String {
    std::fs::read_to_string(dep.core_dir().join("pki/ca.key")).unwrap()
}

#[test]
fn sealed_ca_key_needs_its_passphrase_and_then_works() {
    let mut dep = Deployment::init(|t| t);
    let d = dep.d();
    let plain = ca_key(&dep);
    assert!(plain.contains("BEGIN PRIVATE KEY"));

    // Sealing needs a passphrase, and a long enough one.
    let o = honeybee_with(&[], &["core", "seal-ca-key", "--data-dir", &d]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("HONEYBEE_CA_PASSPHRASE"),
        "{}",
        stderr(&o)
    );
    let o = honeybee_with(
        &[("HONEYBEE_CA_PASSPHRASE", "short")],
        &["core", "seal-ca-key", "--data-dir", &d],
    );
    assert!(!o.status.success());
    assert!(stderr(&o).contains("at least 12"), "{}", stderr(&o));
    assert_eq!(ca_key(&dep), plain, "a refused seal changes nothing");

    let o = honeybee_with(
        &[("HONEYBEE_CA_PASSPHRASE", PASSPHRASE)],
        &["core", "seal-ca-key", "--data-dir", &d],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let sealed = ca_key(&dep);
    assert!(sealed.contains("BEGIN ENCRYPTED PRIVATE KEY"), "{sealed}");
    assert!(!sealed.contains("BEGIN PRIVATE KEY"));
    let o = honeybee_with(
        &[("HONEYBEE_CA_PASSPHRASE", PASSPHRASE)],
        &["core", "seal-ca-key", "--data-dir", &d],
    );
    assert!(!o.status.success());
    assert!(stderr(&o).contains("already sealed"), "{}", stderr(&o));

    // Without the passphrase, or with a wrong one, the core refuses to start and says why.
    let o = honeybee_with(&[], &["core", "run", "--data-dir", &d]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("sealed with a passphrase")
            && stderr(&o).contains("HONEYBEE_CA_PASSPHRASE"),
        "{}",
        stderr(&o)
    );
    let o = honeybee_with(
        &[("HONEYBEE_CA_PASSPHRASE", "the wrong passphrase")],
        &["core", "run", "--data-dir", &d],
    );
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("passphrase does not open"),
        "{}",
        stderr(&o)
    );

    // With the passphrase in a file (the way a service manager passes secrets), it
    // starts, and the CA signs: an agent enrols and comes online.
    let pass_file = dep.dir.path().join("ca-passphrase");
    std::fs::write(&pass_file, format!("{PASSPHRASE}\n")).unwrap();
    let log = dep.dir.path().join("core-sealed.log");
    let file = std::fs::File::create(&log).unwrap();
    let child = Command::new(bin())
        .args(["core", "run", "--data-dir", &d])
        .env("RUST_LOG", "info,quinn=warn")
        .env_remove("HONEYBEE_CA_PASSPHRASE")
        .env("HONEYBEE_CA_PASSPHRASE_FILE", &pass_file)
        .stdin(Stdio::null())
        .stdout(file.try_clone().unwrap())
        .stderr(file)
        .spawn()
        .unwrap();
    dep.core = Some(Proc { child, log });
    wait_for("the sealed core to answer", Duration::from_secs(30), || {
        run(&["status", "--data-dir", &d])
            .status
            .success()
            .then_some(())
    });
    let _agent = dep.start_agent("sealed-n1");
    wait_for("the agent to come online", Duration::from_secs(30), || {
        dep.node("sealed-n1")
            .filter(|n| n["online"] == true)
            .map(|_| ())
    });
}

#[test]
fn init_with_a_passphrase_seals_from_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("core");
    let d = d.to_str().unwrap();
    let port = free_udp_port();
    let listen = format!("127.0.0.1:{port}");
    let args = [
        "core",
        "init",
        "--data-dir",
        d,
        "--listen",
        &listen,
        "--trust-domain",
        "sealed.test",
    ];
    // Too short: refused before anything is written.
    let o = honeybee_with(&[("HONEYBEE_CA_PASSPHRASE", "short")], &args);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("at least 12"), "{}", stderr(&o));
    assert!(
        !std::path::Path::new(d).join("pki/ca.key").exists(),
        "a refused init leaves no CA key"
    );
    let o = honeybee_with(&[("HONEYBEE_CA_PASSPHRASE", PASSPHRASE)], &args);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("CA key        sealed"),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    let key = std::fs::read_to_string(std::path::Path::new(d).join("pki/ca.key")).unwrap();
    assert!(key.contains("BEGIN ENCRYPTED PRIVATE KEY"), "{key}");
    // openssl, the operator's tool for backups and rotation, opens it with the same passphrase.
    assert!(
        have("openssl"),
        "needs openssl (scripts/test.sh installs it)"
    );
    let out = Command::new("openssl")
        .args(["pkey", "-noout", "-in"])
        .arg(std::path::Path::new(d).join("pki/ca.key"))
        .args(["-passin", &format!("pass:{PASSPHRASE}")])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
