//! The realism check's references come from the real programs, and this test proves it:
//! it starts Debian 12's sshd, lighttpd, vsftpd, redis-server (plain and with
//! `requirepass`) and inetutils telnetd on loopback (temporary directories, ephemeral
//! ports, stopped by PID), runs the very probes the node runs on itself
//! (`honeybee_agent::realism::Probe`), and
//! - `committed_references_match_the_real_programs` checks that every fact in
//!   `agents/src/realism/refs/*.txt` is what the real program shows today;
//! - `rerecord_references` (ignored; `cargo test -p honeybee-agent --test realism_refs
//!   -- --ignored`) writes those files afresh, after a Debian update changed a program.
//!
//! A missing program fails the test with the package to install.

use honeybee_agent::realism::facts::{Facts, parse_ref};
use honeybee_agent::realism::{INSTANCE, Probe, reference};
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A real program, killed (by its own PID) when dropped; telnetd's per-connection
/// children too.
struct Real {
    children: Arc<Mutex<Vec<Child>>>,
    addr: SocketAddr,
    /// A daemon that forks (Postfix's master): stopped by the PID in this file.
    pid_file: Option<PathBuf>,
    /// A daemon that must stop its own workers (Apache): SIGTERM, then reaped.
    graceful: Option<Child>,
    _dir: tempfile::TempDir,
}

impl Drop for Real {
    fn drop(&mut self) {
        if let Some(mut c) = self.graceful.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let _ = c.wait();
        }
        for c in self.children.lock().unwrap().iter_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let pid = self
            .pid_file
            .as_ref()
            .and_then(|f| std::fs::read_to_string(f).ok())
            .and_then(|t| t.trim().parse::<u32>().ok());
        if let Some(pid) = pid {
            let _ = Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
            // The master takes its children down; wait (bounded) so the port is free.
            for _ in 0..100 {
                if !Path::new(&format!("/proc/{pid}")).exists() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

fn need(bin: &str, package: &str) {
    assert!(
        Path::new(bin).exists(),
        "{bin} is missing: apt-get install -y --no-install-recommends {package} \
         (the realism references are recorded from it)"
    );
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn package_version(package: &str) -> String {
    let out = Command::new("dpkg-query")
        .args(["-W", "-f", "${Version}", package])
        .output()
        .expect("dpkg-query");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn spawn(cmd: &mut Command, dir: tempfile::TempDir, port: u16) -> Real {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the real program");
    let real = Real {
        children: Arc::new(Mutex::new(vec![child])),
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
        pid_file: None,
        graceful: None,
        _dir: dir,
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    while std::net::TcpStream::connect(real.addr).is_err() {
        assert!(Instant::now() < deadline, "{:?} did not listen", cmd);
        std::thread::sleep(Duration::from_millis(50));
    }
    real
}

/// Debian 12's sshd_config (less its Include) with Debian's three host keys.
fn sshd() -> Real {
    need("/usr/sbin/sshd", "openssh-server");
    let dir = tempfile::tempdir().unwrap();
    let mut keys = Vec::new();
    for kind in ["rsa", "ecdsa", "ed25519"] {
        let key = dir.path().join(format!("ssh_host_{kind}_key"));
        assert!(
            Command::new("ssh-keygen")
                .args(["-q", "-t", kind, "-N", "", "-f"])
                .arg(&key)
                .status()
                .expect("ssh-keygen")
                .success()
        );
        keys.push(key);
    }
    let cfg = dir.path().join("sshd_config");
    std::fs::write(
        &cfg,
        "KbdInteractiveAuthentication no\nUsePAM yes\nX11Forwarding yes\nPrintMotd no\n\
         AcceptEnv LANG LC_*\nSubsystem sftp /usr/lib/openssh/sftp-server\nPidFile none\n\
         ListenAddress 127.0.0.1\n",
    )
    .unwrap();
    let _ = std::fs::create_dir_all("/run/sshd");
    let port = free_port();
    let mut cmd = Command::new("/usr/sbin/sshd");
    cmd.arg("-D").arg("-f").arg(&cfg);
    for k in &keys {
        cmd.arg("-h").arg(k);
    }
    cmd.args(["-p", &port.to_string()]);
    spawn(&mut cmd, dir, port)
}

fn lighttpd() -> Real {
    need("/usr/sbin/lighttpd", "lighttpd");
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("www");
    std::fs::create_dir_all(&root).unwrap();
    let port = free_port();
    let conf = dir.path().join("lighttpd.conf");
    std::fs::write(
        &conf,
        format!(
            "server.document-root = \"{}\"\nserver.port = {port}\nserver.bind = \"127.0.0.1\"\n\
             server.errorlog = \"{}\"\nindex-file.names = ( \"index.html\" )\n\
             mimetype.assign = ( \".html\" => \"text/html\" )\n",
            root.display(),
            dir.path().join("error.log").display()
        ),
    )
    .unwrap();
    spawn(
        Command::new("/usr/sbin/lighttpd")
            .arg("-D")
            .arg("-f")
            .arg(&conf),
        dir,
        port,
    )
}

/// Debian 12's /etc/vsftpd.conf (its uncommented lines), standalone on loopback.
fn vsftpd() -> Real {
    need("/usr/sbin/vsftpd", "vsftpd");
    std::fs::create_dir_all("/var/run/vsftpd/empty").expect("vsftpd's secure_chroot_dir");
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let conf = dir.path().join("vsftpd.conf");
    std::fs::write(
        &conf,
        format!(
            "listen=YES\nlisten_ipv6=NO\nlisten_address=127.0.0.1\nlisten_port={port}\n\
             background=NO\nanonymous_enable=NO\nlocal_enable=YES\ndirmessage_enable=YES\n\
             use_localtime=YES\nxferlog_enable=NO\nconnect_from_port_20=YES\n\
             secure_chroot_dir=/var/run/vsftpd/empty\npam_service_name=vsftpd\nssl_enable=NO\n"
        ),
    )
    .unwrap();
    spawn(Command::new("/usr/sbin/vsftpd").arg(&conf), dir, port)
}

fn redis(extra: &[&str]) -> Real {
    need("/usr/bin/redis-server", "redis-server");
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut cmd = Command::new("/usr/bin/redis-server");
    cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
        .arg("--dir")
        .arg(dir.path())
        .args(extra);
    spawn(&mut cmd, dir, port)
}

/// Debian 12's "mysql": MariaDB, its data directory made as Debian's postinst makes it
/// (`mariadb-install-db --skip-test-db`), Debian's character set, run as `mysql`.
fn mariadb() -> Real {
    need("/usr/sbin/mariadbd", "mariadb-server");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap().to_owned();
    let data = format!("{d}/data");
    std::fs::create_dir(&data).unwrap();
    let run = |cmd: &str, args: &[&str]| {
        let out = Command::new(cmd).args(args).output().expect(cmd);
        assert!(
            out.status.success(),
            "{cmd} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run("chmod", &["755", &d]);
    run("chown", &["-R", "mysql:mysql", &d]);
    run(
        "/usr/bin/mariadb-install-db",
        &[
            "--no-defaults",
            &format!("--datadir={data}"),
            "--user=mysql",
            "--skip-test-db",
            "--disable-log-bin",
        ],
    );
    let port = free_port();
    let mut cmd = Command::new("/usr/sbin/mariadbd");
    cmd.args([
        "--no-defaults",
        &format!("--datadir={data}"),
        "--user=mysql",
        &format!("--port={port}"),
        "--bind-address=127.0.0.1",
        &format!("--socket={d}/sock"),
        &format!("--pid-file={d}/pid"),
        "--character-set-server=utf8mb4",
        "--collation-server=utf8mb4_general_ci",
        "--skip-log-bin",
    ]);
    let real = spawn(&mut cmd, dir, port);
    // A server reachable from the network has an account that may log in from anywhere
    // (as the MySQL oracle's, see `services/mysql/mariadb.rs`); without one MariaDB
    // answers an unknown user with the unix_socket plugin's error instead.
    let sock = format!("{d}/sock");
    let deadline = Instant::now() + Duration::from_secs(15);
    while !Path::new(&sock).exists() {
        assert!(Instant::now() < deadline, "mariadbd made no socket");
        std::thread::sleep(Duration::from_millis(50));
    }
    run(
        "mariadb",
        &[
            "--no-defaults",
            "-u",
            "root",
            "-S",
            &sock,
            "-e",
            "CREATE USER 'admin'@'%' IDENTIFIED BY 'not-the-one-3f9c1a'",
        ],
    );
    real
}

/// Debian 12's Postfix 3.7: `main.cf` as postinst writes it (banner, TLS with the
/// snakeoil certificate, relay restrictions) with SASL through Dovecot's protocol to a
/// stand-in auth server, `discard:` as every transport (nothing it accepts leaves the
/// machine), its own queue in a temporary directory; as the SMTP oracle test runs it.
fn postfix() -> Real {
    need("/usr/sbin/postfix", "postfix");
    let dir = tempfile::Builder::new()
        .prefix("realism-postfix")
        .tempdir_in("/tmp")
        .unwrap();
    let root = dir.path().to_owned();
    std::fs::set_permissions(&root, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    for d in ["conf", "queue", "data"] {
        std::fs::create_dir(root.join(d)).unwrap();
    }
    assert!(
        Command::new("chown")
            .args(["postfix", root.join("data").to_str().unwrap()])
            .status()
            .unwrap()
            .success(),
        "chown postfix (the recorder runs as root)"
    );
    let port = free_port();
    let r = root.display();
    std::fs::write(
        root.join("conf/main.cf"),
        format!(
            "compatibility_level = 3.6\n\
             smtpd_banner = $myhostname ESMTP $mail_name (Debian/GNU)\n\
             biff = no\nappend_dot_mydomain = no\nreadme_directory = no\n\
             smtpd_tls_cert_file=/etc/ssl/certs/ssl-cert-snakeoil.pem\n\
             smtpd_tls_key_file=/etc/ssl/private/ssl-cert-snakeoil.key\n\
             smtpd_tls_security_level=may\n\
             smtpd_relay_restrictions = permit_mynetworks permit_sasl_authenticated defer_unauth_destination\n\
             myhostname = mx.realism.test\n\
             mydestination = $myhostname, localhost\n\
             relayhost =\n\
             mynetworks = 192.0.2.1/32\n\
             mailbox_size_limit = 0\nrecipient_delimiter = +\n\
             inet_interfaces = loopback-only\ninet_protocols = ipv4\n\
             alias_maps =\nalias_database =\n\
             smtpd_sasl_auth_enable = yes\nsmtpd_sasl_type = dovecot\nsmtpd_sasl_path = private/auth\n\
             local_transport = discard:\ndefault_transport = discard:\nrelay_transport = discard:\n\
             queue_directory = {r}/queue\ndata_directory = {r}/data\n\
             maillog_file_prefixes = /tmp, /var\nmaillog_file = {r}/maillog\n"
        ),
    )
    .unwrap();
    let mut master = format!("127.0.0.1:{port} inet n - n - - smtpd\n");
    for line in [
        "pickup unix n - n 60 1 pickup",
        "cleanup unix n - n - 0 cleanup",
        "qmgr unix n - n 300 1 qmgr",
        "tlsmgr unix - - n 1000? 1 tlsmgr",
        "rewrite unix - - n - - trivial-rewrite",
        "bounce unix - - n - 0 bounce",
        "defer unix - - n - 0 bounce",
        "trace unix - - n - 0 bounce",
        "verify unix - - n - 1 verify",
        "flush unix n - n 1000? 0 flush",
        "proxymap unix - - n - - proxymap",
        "showq unix n - n - - showq",
        "error unix - - n - - error",
        "retry unix - - n - - error",
        "discard unix - - n - - discard",
        "anvil unix - - n - 1 anvil",
        "scache unix - - n - 1 scache",
        "postlog unix-dgram n - n - 1 postlogd",
    ] {
        master += line;
        master.push('\n');
    }
    std::fs::write(root.join("conf/master.cf"), master).unwrap();
    let real = Real {
        children: Arc::new(Mutex::new(Vec::new())),
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
        pid_file: Some(root.join("queue/pid/master.pid")),
        graceful: None,
        _dir: dir,
    };
    let out = Command::new("/usr/sbin/postfix")
        .args(["-c", root.join("conf").to_str().unwrap(), "start"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "postfix start: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    fake_dovecot(&root.join("queue/private/auth"));
    let deadline = Instant::now() + Duration::from_secs(15);
    while std::net::TcpStream::connect(real.addr).is_err() {
        assert!(Instant::now() < deadline, "postfix did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    real
}

/// Answers Postfix's SASL handshake as Dovecot's auth server does (PLAIN and LOGIN on
/// offer); the probe never authenticates, so every request fails.
fn fake_dovecot(socket: &Path) {
    use std::os::unix::net::UnixListener;
    let _ = std::fs::remove_file(socket);
    let listener = UnixListener::bind(socket).expect("the auth socket");
    std::fs::set_permissions(socket, std::os::unix::fs::PermissionsExt::from_mode(0o666)).unwrap();
    std::thread::spawn(move || {
        for conn in listener.incoming().take(16) {
            let Ok(mut w) = conn else { return };
            std::thread::spawn(move || {
                let _ = w.write_all(
                    b"VERSION\t1\t2\nMECH\tPLAIN\tplaintext\nMECH\tLOGIN\tplaintext\n\
                      SPID\t4242\nCUID\t1\nCOOKIE\t0123456789abcdef0123456789abcdef\nDONE\n",
                );
                let r = BufReader::new(w.try_clone().unwrap());
                for line in r.lines().take(64) {
                    let Ok(line) = line else { return };
                    if let ["AUTH", id, ..] = line.split('\t').collect::<Vec<_>>().as_slice() {
                        let _ = w.write_all(format!("FAIL\t{id}\tuser=someone\n").as_bytes());
                    }
                }
            });
        }
    });
}

/// Debian 12's Apache 2.4 with Debian's modules and `conf-enabled` (ServerTokens OS,
/// ServerSignature On), the main directives of its apache2.conf, on loopback.
fn apache() -> Real {
    need("/usr/sbin/apache2", "apache2");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap().to_owned();
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    for sub in ["www", "run", "lock", "log"] {
        std::fs::create_dir(dir.path().join(sub)).unwrap();
    }
    let port = free_port();
    let conf = dir.path().join("apache2.conf");
    std::fs::write(
        &conf,
        format!(
            "ServerRoot /etc/apache2\nDefaultRuntimeDir {d}/run\nPidFile {d}/run/pid\n\
             Timeout 300\nKeepAlive On\nMaxKeepAliveRequests 100\nKeepAliveTimeout 5\n\
             User www-data\nGroup www-data\nHostnameLookups Off\n\
             ErrorLog {d}/log/error.log\nLogLevel warn\n\
             Include mods-enabled/*.load\nInclude mods-enabled/*.conf\n\
             Listen 127.0.0.1:{port}\n\
             <Directory />\n Options FollowSymLinks\n AllowOverride None\n Require all denied\n</Directory>\n\
             <Directory {d}/www>\n Options Indexes FollowSymLinks\n AllowOverride None\n Require all granted\n</Directory>\n\
             AccessFileName .htaccess\n\
             <FilesMatch \"^\\.ht\">\n Require all denied\n</FilesMatch>\n\
             IncludeOptional conf-enabled/*.conf\nDocumentRoot {d}/www\n"
        ),
    )
    .unwrap();
    let child = Command::new("/usr/sbin/apache2")
        .arg("-f")
        .arg(&conf)
        .arg("-DFOREGROUND")
        .env("APACHE_RUN_DIR", format!("{d}/run"))
        .env("APACHE_LOCK_DIR", format!("{d}/lock"))
        .env("APACHE_LOG_DIR", format!("{d}/log"))
        .env("APACHE_RUN_USER", "www-data")
        .env("APACHE_RUN_GROUP", "www-data")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start apache2");
    let real = Real {
        children: Arc::new(Mutex::new(Vec::new())),
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
        pid_file: None,
        graceful: Some(child),
        _dir: dir,
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    while std::net::TcpStream::connect(real.addr).is_err() {
        assert!(Instant::now() < deadline, "apache2 did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    real
}

/// inetutils telnetd, started per connection on the accepted socket as inetd would.
fn telnetd() -> Real {
    need("/usr/sbin/telnetd", "inetutils-telnetd");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let children = Arc::new(Mutex::new(Vec::new()));
    let kids = Arc::clone(&children);
    std::thread::spawn(move || {
        // The probe makes one connection; a few more are allowed, then the thread ends.
        for _ in 0..4 {
            let Ok((s, _)) = listener.accept() else {
                return;
            };
            let fd: OwnedFd = s.into();
            let Ok(out) = fd.try_clone() else { return };
            if let Ok(child) = Command::new("/usr/sbin/telnetd")
                .stdin(Stdio::from(fd))
                .stdout(Stdio::from(out))
                .stderr(Stdio::null())
                .spawn()
            {
                kids.lock().unwrap().push(child);
            }
        }
    });
    Real {
        children,
        addr,
        pid_file: None,
        graceful: None,
        _dir: tempfile::tempdir().unwrap(),
    }
}

/// One real program to record from: reference file, probe, Debian package, product
/// description, and how to start it.
type Program = (
    &'static str,
    Probe,
    &'static str,
    &'static str,
    Box<dyn Fn() -> Real>,
);

fn programs() -> Vec<Program> {
    vec![
        (
            "ssh.txt",
            Probe::Ssh,
            "openssh-server",
            "OpenSSH 9.2p1 sshd",
            Box::new(sshd),
        ),
        (
            "http-lighttpd.txt",
            Probe::Http,
            "lighttpd",
            "lighttpd 1.4.69",
            Box::new(lighttpd),
        ),
        (
            "ftp-vsftpd.txt",
            Probe::Ftp,
            "vsftpd",
            "vsftpd 3.0.3",
            Box::new(vsftpd),
        ),
        (
            "redis.txt",
            Probe::Redis,
            "redis-server",
            "Redis 7.0.15",
            Box::new(|| redis(&[])),
        ),
        (
            "redis-requirepass.txt",
            Probe::Redis,
            "redis-server",
            "Redis 7.0.15 with requirepass",
            Box::new(|| redis(&["--requirepass", "not-known-to-the-probe"])),
        ),
        (
            "mysql-mariadb.txt",
            Probe::Mysql,
            "mariadb-server",
            "MariaDB 10.11",
            Box::new(mariadb),
        ),
        (
            "smtp-postfix.txt",
            Probe::Smtp,
            "postfix",
            "Postfix 3.7 smtpd",
            Box::new(postfix),
        ),
        (
            "http-apache.txt",
            Probe::HttpApache,
            "apache2",
            "Apache 2.4 (what Apache itself answers)",
            Box::new(apache),
        ),
        (
            "telnet.txt",
            Probe::Telnet,
            "inetutils-telnetd",
            "inetutils telnetd 2.4",
            Box::new(telnetd),
        ),
    ]
}

/// The facts a reference keeps: everything but instance values.
fn recordable(f: Facts) -> Facts {
    Facts(
        f.0.into_iter()
            .filter(|(n, _)| !n.starts_with(INSTANCE))
            .collect(),
    )
}

async fn observe(probe: Probe, real: &Real) -> Facts {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(8);
    recordable(probe.run(real.addr, deadline).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_references_match_the_real_programs() {
    let mut differences = Vec::new();
    for (file, probe, _, _, start) in programs() {
        let real = start();
        let seen = observe(probe, &real).await;
        let want = reference(file).unwrap();
        if seen != want.facts {
            for ((n, v), w) in seen
                .0
                .iter()
                .zip(want.facts.0.iter().map(Some).chain(std::iter::repeat(None)))
            {
                if w != Some(&(n.clone(), v.clone())) {
                    differences.push(format!("{file}: {n}: real {v:?}, committed {w:?}"));
                }
            }
            if seen.0.len() != want.facts.0.len() {
                differences.push(format!(
                    "{file}: real shows {} facts, committed {}",
                    seen.0.len(),
                    want.facts.0.len()
                ));
            }
        }
    }
    assert!(
        differences.is_empty(),
        "the committed references no longer match the real programs (re-record with \
         `cargo test -p honeybee-agent --test realism_refs -- --ignored`):\n{}",
        differences.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "writes agents/src/realism/refs/*.txt; run after a Debian update of a program"]
async fn rerecord_references() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/realism/refs");
    for (file, probe, package, product, start) in programs() {
        let real = start();
        let seen = observe(probe, &real).await;
        let version = package_version(package);
        let text = format!(
            "@product = {product} (Debian 12 {package} {version})\n{}",
            seen.to_ref_text(&format!(
                "Recorded from the real {package} {version} by agents/tests/realism_refs.rs \
                 (rerecord_references); do not edit by hand."
            ))
        );
        parse_ref(&text).expect("the recorder writes what the parser reads");
        std::fs::write(dir.join(file), text).unwrap();
        eprintln!("{file}: {} facts from {package} {version}", seen.0.len());
    }
}
