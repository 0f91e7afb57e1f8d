//! The one-line sensor install, end to end on loopback: the dashboard serves install.sh
//! and the agent package over HTTPS, `honeybee token create --install-command` prints
//! the line, and running it downloads the package (TLS key pinned in the line), checks
//! its SHA-256, installs it, enrols with the token and starts the service; a tampered
//! package and a wrong pin are refused before anything is installed.
//!
//! The line runs for real (sh, curl, sha256sum), but the system-changing commands it
//! calls are stand-ins first on PATH, so the test changes nothing outside its temporary
//! directory and cannot collide with tests/packaging.rs (which installs for real):
//! `dpkg` records the package it was given, `runuser` runs the command as the test's own
//! user, `honeybee-agent` is `honeybee agent`, `systemctl` starts `honeybee agent run` in
//! the background, and `id -u` says 0. The package is a small real .deb made with
//! dpkg-deb.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

fn write_exec(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).expect("write stand-in");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

/// The stand-ins for the commands that would change the machine.
fn fake_bin(work: &Path) -> PathBuf {
    let bin_dir = work.join("fakebin");
    std::fs::create_dir_all(&bin_dir).expect("mkdir");
    let w = work.display();
    write_exec(
        &bin_dir.join("dpkg"),
        &format!(
            "#!/bin/sh\n[ \"$1\" = -i ] || exit 2\necho \"dpkg $*\" >> {w}/dpkg.log\ncp \"$2\" {w}/installed.deb\n"
        ),
    );
    write_exec(
        &bin_dir.join("runuser"),
        "#!/bin/sh\n[ \"$1\" = -u ] && [ \"$2\" = honeybee ] && [ \"$3\" = -- ] || exit 2\nshift 3\nexec \"$@\"\n",
    );
    write_exec(
        &bin_dir.join("honeybee-agent"),
        &format!("#!/bin/sh\nexec {} agent \"$@\"\n", bin()),
    );
    write_exec(
        &bin_dir.join("systemctl"),
        &format!(
            "#!/bin/sh\n[ \"$*\" = 'enable --now honeybee-agent.service' ] || exit 2\n\
             RUST_LOG=info,quinn=warn nohup {} agent run --data-dir \"$HONEYBEE_AGENT_DATA_DIR\" \
             > {w}/agent.log 2>&1 < /dev/null &\necho $! > {w}/agent.pid\n",
            bin()
        ),
    );
    write_exec(
        &bin_dir.join("id"),
        "#!/bin/sh\n[ \"$1\" = -u ] && { echo 0; exit 0; }\nexec /usr/bin/id \"$@\"\n",
    );
    bin_dir
}

/// A small real Debian package standing in for honeybee-agent.
fn make_deb(work: &Path, out: &Path) {
    let root = work.join("debroot");
    std::fs::create_dir_all(root.join("DEBIAN")).expect("mkdir");
    std::fs::create_dir_all(root.join("usr/share/doc/honeybee-agent")).expect("mkdir");
    std::fs::write(
        root.join("DEBIAN/control"),
        "Package: honeybee-agent\nVersion: 0.0.1\nArchitecture: all\n\
         Maintainer: test <test@honeybee.invalid>\nDescription: install_command test package\n",
    )
    .expect("control");
    std::fs::write(
        root.join("usr/share/doc/honeybee-agent/README"),
        "stand-in\n",
    )
    .expect("readme");
    let o = Command::new("dpkg-deb")
        .args(["--build", "--root-owner-group"])
        .arg(&root)
        .arg(out)
        .output()
        .expect("dpkg-deb runs");
    assert!(
        o.status.success(),
        "dpkg-deb --build: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex_of(ring::digest::digest(&ring::digest::SHA256, bytes).as_ref())
}

fn hex_of(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A self-signed certificate for 127.0.0.1, as an operator's --tls-cert/--tls-key.
fn tls_pair(work: &Path) -> (PathBuf, PathBuf) {
    let ck = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()])
        .expect("self-signed");
    let (c, k) = (work.join("https.crt"), work.join("https.key"));
    std::fs::write(&c, ck.cert.pem()).expect("cert");
    std::fs::write(&k, ck.signing_key.serialize_pem()).expect("key");
    (c, k)
}

/// Runs the install line as a user would paste it, with the stand-ins first on PATH.
fn run_line(line: &str, fakebin: &Path, agent_dir: &Path) -> Output {
    let path = format!(
        "{}:{}",
        fakebin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    Command::new("sh")
        .args(["-c", line])
        .env("PATH", path)
        .env("HONEYBEE_AGENT_DATA_DIR", agent_dir)
        // "systemd runs here", so the script calls (the stand-in) systemctl.
        .env("HONEYBEE_SYSTEMD_RUNTIME", fakebin)
        .output()
        .expect("sh runs")
}

fn text(o: &Output) -> String {
    format!(
        "status {}\nstdout: {}\nstderr: {}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Kills the background agent the `systemctl` stand-in started, by its pid file.
struct BackgroundAgent(PathBuf);

impl Drop for BackgroundAgent {
    fn drop(&mut self) {
        if let Ok(pid) = std::fs::read_to_string(&self.0) {
            let _ = Command::new("kill").args(["-9", pid.trim()]).status();
        }
    }
}

#[test]
fn one_line_installs_enrols_and_starts_and_refuses_tampering() {
    for tool in ["curl", "sha256sum", "dpkg-deb"] {
        assert!(
            have(tool),
            "{tool} is missing (scripts/test.sh installs curl, coreutils, dpkg)"
        );
    }
    let mut dep = Deployment::init(|t| t);
    dep.start_core();
    let work = dep.dir.path().to_owned();
    let packages = work.join("packages");
    std::fs::create_dir_all(&packages).expect("mkdir");
    let deb = packages.join("honeybee-agent.deb");
    make_deb(&work, &deb);
    let deb_bytes = std::fs::read(&deb).expect("deb");
    let (cert, key) = tls_pair(&work);

    // Without the dashboard, there is no installer to point at: no token is spent.
    let err = fails(&[
        "token",
        "create",
        "--data-dir",
        &dep.d(),
        "--name",
        "early",
        "--install-command",
    ]);
    assert!(err.contains("install.json"), "{err}");

    // Reached by a name (the operator's --public-url), not the listen address.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let public = format!("https://localhost:{port}");
    let log = work.join("dashboard.log");
    let file = std::fs::File::create(&log).expect("log");
    let mut dash = Proc {
        child: Command::new(bin())
            .args(["dashboard", "run", "--data-dir", &dep.d()])
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--public-url", &public, "--tls-cert"])
            .arg(&cert)
            .arg("--tls-key")
            .arg(&key)
            .arg("--packages")
            .arg(&packages)
            .env("RUST_LOG", "info,quinn=warn")
            .env(
                "HONEYBEE_DASHBOARD_ADMIN_PASSWORD",
                "install-test-password-1",
            )
            .stdout(file.try_clone().expect("dup"))
            .stderr(file)
            .spawn()
            .expect("dashboard"),
        log,
    };
    let info_path = dep.core_dir().join("dashboard/install.json");
    let info: serde_json::Value = wait_for("install.json", Duration::from_secs(60), || {
        serde_json::from_str(&std::fs::read_to_string(&info_path).ok()?).ok()
    });
    assert_eq!(info["sha256"], sha256_hex(&deb_bytes));

    let line = ok(&[
        "token",
        "create",
        "--data-dir",
        &dep.d(),
        "--name",
        "sensor1",
        "--install-command",
    ]);
    assert_eq!(line.lines().count(), 1, "one line: {line}");
    let line = line.trim().to_owned();
    assert!(
        line.starts_with("curl -fsS --proto =https -k --pinnedpubkey 'sha256//"),
        "{line}"
    );
    assert!(line.contains(&sha256_hex(&deb_bytes)), "{line}");
    assert!(
        line.contains(&format!(
            "'{public}/install.sh' | sh -s -- --server '{public}'"
        )),
        "{line}"
    );

    // The install itself.
    let fakebin = fake_bin(&work);
    let agent_dir = work.join("agent-sensor1");
    let _agent = BackgroundAgent(work.join("agent.pid"));
    let out = run_line(&line, &fakebin, &agent_dir);
    assert!(out.status.success(), "install line failed: {}", text(&out));
    let dpkg_log = std::fs::read_to_string(work.join("dpkg.log")).unwrap_or_default();
    assert_eq!(dpkg_log.lines().count(), 1, "dpkg ran once: {dpkg_log}");
    assert_eq!(
        std::fs::read(work.join("installed.deb")).expect("dpkg got the package"),
        deb_bytes,
        "dpkg got the package byte for byte"
    );
    assert!(agent_dir.join("agent.toml").exists(), "enrolled");
    // The started service reaches the core.
    wait_for("sensor1 online", Duration::from_secs(30), || {
        dep.node("sensor1").filter(|n| n["online"] == true)
    });

    // A package changed on the server (or by a proxy or mirror) after the line was made:
    // the line's hash refuses it before dpkg sees it.
    let line2 = ok(&[
        "token",
        "create",
        "--data-dir",
        &dep.d(),
        "--name",
        "sensor2",
        "--install-command",
    ]);
    let mut tampered = deb_bytes.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 0x01;
    std::fs::write(&deb, &tampered).expect("tamper");
    let agent2 = work.join("agent-sensor2");
    let out = run_line(line2.trim(), &fakebin, &agent2);
    assert!(
        !out.status.success(),
        "tampered package installed: {}",
        text(&out)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("refusing to install"), "{}", text(&out));
    assert!(err.contains(&sha256_hex(&tampered)), "{}", text(&out));
    let dpkg_log = std::fs::read_to_string(work.join("dpkg.log")).unwrap_or_default();
    assert_eq!(
        dpkg_log.lines().count(),
        1,
        "dpkg not run again: {dpkg_log}"
    );
    assert!(!agent2.join("agent.toml").exists(), "not enrolled");

    // A server with another TLS key (someone in the middle): curl refuses the pin, so
    // no script runs and nothing is installed.
    std::fs::write(&deb, &deb_bytes).expect("restore");
    let other_pin = format!(
        "sha256//{}",
        "A".repeat(43) + "=" // a well-formed pin of no key here
    );
    let pin_start = line2.find("sha256//").expect("pin in the line");
    let pin = &line2[pin_start..pin_start + other_pin.len()];
    let forged = line2.trim().replace(pin, &other_pin);
    let out = run_line(&forged, &fakebin, &agent2);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("pinned") || err.contains("(90)"),
        "curl refuses the key: {}",
        text(&out)
    );
    let dpkg_log = std::fs::read_to_string(work.join("dpkg.log")).unwrap_or_default();
    assert_eq!(dpkg_log.lines().count(), 1, "dpkg not run: {dpkg_log}");
    assert!(!agent2.join("agent.toml").exists(), "not enrolled");

    // The dashboard's Enrol page gets the same line from the token API.
    let url = std::fs::read_to_string(dep.core_dir().join("dashboard/url")).expect("url");
    let url = url.trim().trim_end_matches('/');
    let jar = work.join("cookies");
    let login = Command::new("curl")
        .args(["-fsS", "-k", "-c"])
        .arg(&jar)
        .args(["-H", "content-type: application/json", "-d"])
        .arg(r#"{"username":"admin","password":"install-test-password-1"}"#)
        .arg(format!("{url}/api/login"))
        .output()
        .expect("curl");
    assert!(login.status.success(), "login: {}", text(&login));
    let me: serde_json::Value = serde_json::from_slice(&login.stdout).expect("login JSON");
    let csrf = me["csrf"].as_str().expect("csrf token");
    let created = Command::new("curl")
        .args(["-fsS", "-k", "-b"])
        .arg(&jar)
        .args(["-H", "content-type: application/json", "-H"])
        .arg(format!("x-csrf-token: {csrf}"))
        .arg("-d")
        .arg(r#"{"name":"sensor3","role":"agent","ttl_s":600}"#)
        .arg(format!("{url}/api/tokens"))
        .output()
        .expect("curl");
    assert!(created.status.success(), "token API: {}", text(&created));
    let created: serde_json::Value = serde_json::from_slice(&created.stdout).expect("JSON");
    let from_page = created["install_command"]
        .as_str()
        .expect("install_command");
    let token = created["token"].as_str().expect("token");
    let expected = line2
        .trim()
        .rsplit_once("--token ")
        .map(|(head, _)| format!("{head}--token '{token}'"))
        .expect("line ends with the token");
    assert_eq!(from_page, expected, "the Enrol page's line is the CLI's");
    dash.kill();
}
