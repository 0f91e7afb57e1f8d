//! The built-in realism check: the node probes its own services on loopback with the
//! checks attackers' scanners use and compares what it sees with references recorded
//! from the real programs (`refs/*.txt`, written by `agents/tests/realism_refs.rs` from
//! Debian 12's openssh-server, lighttpd, vsftpd, redis-server and inetutils-telnetd —
//! never from this implementation), then checks that what the services say about the
//! machine agrees with the node persona. Answers `Command::CheckRealism`.
//!
//! Bounded: every probe connection has a deadline, all services are probed at once, and
//! the whole check ends by [`TOTAL`] whatever the services do.

pub mod facts;
pub mod ftp;
pub mod http;
pub mod mysql;
mod net;
pub mod redis;
pub mod smtp;
pub mod ssh;
pub mod telnet;
mod tls;

/// The probes' TLS client (takes any server certificate, as scanners do): also what the
/// HTTPS oracle tests probe the real lighttpd and ours with.
pub use tls::client_config as probe_tls_client_config;

use facts::{Facts, Outcome, Reference, compare, parse_ref};
use honeybee_proto::config::{HttpPersona, ServiceConfig, ServiceKind};
use honeybee_proto::realism::{RealismReport, ServiceRealism};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use tokio::time::{Duration, Instant};

/// The whole check's time cap (the core waits 10 s for a command's answer).
pub const TOTAL: Duration = Duration::from_secs(8);

/// Each reference file, compiled in: (file name, text).
pub const REFS: [(&str, &str); 9] = [
    ("ssh.txt", include_str!("refs/ssh.txt")),
    ("http-lighttpd.txt", include_str!("refs/http-lighttpd.txt")),
    ("ftp-vsftpd.txt", include_str!("refs/ftp-vsftpd.txt")),
    ("redis.txt", include_str!("refs/redis.txt")),
    (
        "redis-requirepass.txt",
        include_str!("refs/redis-requirepass.txt"),
    ),
    ("telnet.txt", include_str!("refs/telnet.txt")),
    ("mysql-mariadb.txt", include_str!("refs/mysql-mariadb.txt")),
    ("smtp-postfix.txt", include_str!("refs/smtp-postfix.txt")),
    ("http-apache.txt", include_str!("refs/http-apache.txt")),
];

/// A fact whose name starts with this is an instance value the consistency checks use
/// (Redis INFO's `os`, the text before a Telnet login prompt); the recorder leaves it out
/// of the references and the comparison never sees it.
pub const INSTANCE: char = '~';

/// The probes a service kind gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    Ssh,
    Http,
    Ftp,
    Redis,
    Telnet,
    Mysql,
    Smtp,
    /// HTTP on Apache (what Apache answers before the application does).
    HttpApache,
    /// The same two over TLS (the HTTP answers inside are compared).
    Https,
    HttpsApache,
}

impl Probe {
    /// Runs this probe against `addr`, finished by `deadline`.
    pub async fn run(self, addr: SocketAddr, deadline: Instant) -> Facts {
        match self {
            Probe::Ssh => ssh::probe(addr, deadline).await,
            Probe::Http => http::probe(addr, deadline, false).await,
            Probe::Https => http::probe(addr, deadline, true).await,
            Probe::Ftp => ftp::probe(addr, deadline).await,
            Probe::Redis => redis::probe(addr, deadline).await,
            Probe::Mysql => mysql::probe(addr, deadline).await,
            Probe::Smtp => smtp::probe(addr, deadline).await,
            Probe::HttpApache => http::probe_apache(addr, deadline, false).await,
            Probe::HttpsApache => http::probe_apache(addr, deadline, true).await,
            Probe::Telnet => {
                let seen = telnet::probe(addr, deadline).await;
                let mut f = seen.facts;
                f.push(&format!("{INSTANCE}login_text"), seen.login_text);
                f
            }
        }
    }
}

/// Whether a check is running: one at a time per node, whoever asks.
static RUNNING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Answers `Command::CheckRealism` `id` on `out` from a task of its own, so the control
/// loop (acks, health) goes on while the probes run.
pub fn answer(
    (targets, machine): (Vec<Target>, Machine),
    id: u64,
    out: tokio::sync::mpsc::Sender<honeybee_proto::control::AgentMsg>,
) {
    use honeybee_proto::control::AgentMsg;
    use std::sync::atomic::Ordering;
    if RUNNING.swap(true, Ordering::AcqRel) {
        let result = Err("a realism check is already running on this node".to_owned());
        tokio::spawn(async move { out.send(AgentMsg::CommandResult { id, result }).await });
        return;
    }
    /// Clears `RUNNING` however the task ends (a panic included), so a failed check
    /// never blocks the next one.
    struct Running;
    impl Drop for Running {
        fn drop(&mut self) {
            RUNNING.store(false, Ordering::Release);
        }
    }
    let running = Running;
    tokio::spawn(async move {
        let report = check(targets, &machine, TOTAL).await;
        drop(running);
        let result = Ok(report.to_json());
        let _ = out.send(AgentMsg::CommandResult { id, result }).await;
    });
}

/// What one configured service is compared with, or why it is not.
enum Plan {
    Check {
        probe: Probe,
        reference: &'static str,
    },
    Skip(&'static str),
}

fn plan(kind: &ServiceKind) -> Plan {
    match kind {
        ServiceKind::Ssh(_) => Plan::Check {
            probe: Probe::Ssh,
            reference: "ssh.txt",
        },
        ServiceKind::Http(o) if o.tls && o.persona == HttpPersona::Router => Plan::Check {
            probe: Probe::Https,
            reference: "http-lighttpd.txt",
        },
        ServiceKind::Http(o) if o.tls => Plan::Check {
            probe: Probe::HttpsApache,
            reference: "http-apache.txt",
        },
        ServiceKind::Http(o) if o.persona == HttpPersona::Router => Plan::Check {
            probe: Probe::Http,
            reference: "http-lighttpd.txt",
        },
        ServiceKind::Http(_) => Plan::Check {
            probe: Probe::HttpApache,
            reference: "http-apache.txt",
        },
        ServiceKind::Ftp(_) => Plan::Check {
            probe: Probe::Ftp,
            reference: "ftp-vsftpd.txt",
        },
        ServiceKind::Redis(o) if o.require_auth => Plan::Check {
            probe: Probe::Redis,
            reference: "redis-requirepass.txt",
        },
        ServiceKind::Redis(_) => Plan::Check {
            probe: Probe::Redis,
            reference: "redis.txt",
        },
        ServiceKind::Telnet(_) => Plan::Check {
            probe: Probe::Telnet,
            reference: "telnet.txt",
        },
        // Debian 12's "mysql" is MariaDB 10.11; an empty version is the node's MariaDB.
        ServiceKind::Mysql(o)
            if o.version.is_empty()
                || o.version.starts_with("10.")
                || o.version.contains("MariaDB") =>
        {
            Plan::Check {
                probe: Probe::Mysql,
                reference: "mysql-mariadb.txt",
            }
        }
        ServiceKind::Mysql(_) => Plan::Skip(
            "no reference: MySQL 8.0 is not packaged in Debian 12, so no real server was recorded",
        ),
        ServiceKind::Smtp(_) => Plan::Check {
            probe: Probe::Smtp,
            reference: "smtp-postfix.txt",
        },
        ServiceKind::Modbus(_) => Plan::Skip("no reference: no real PLC to record from"),
        _ => Plan::Skip("no reference: a generic banner claims no product of its own"),
    }
}

/// A reference by file name.
pub fn reference(file: &str) -> Result<Reference, String> {
    let text = REFS
        .iter()
        .find(|(n, _)| *n == file)
        .map(|(_, t)| *t)
        .ok_or_else(|| format!("no reference {file}"))?;
    parse_ref(text).map_err(|e| format!("{file}: {e}"))
}

/// What the node claims to be, from its persona (see `persona.rs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Machine {
    pub hostname: String,
    /// `12`
    pub debian_major: String,
    /// `6.1.0-18-amd64`
    pub kernel_release: String,
}

impl Machine {
    pub(crate) fn of(p: &crate::persona::Persona) -> Machine {
        Machine {
            hostname: p.hostname.clone(),
            debian_major: p
                .kernel
                .debian_version
                .split('.')
                .next()
                .unwrap_or("")
                .to_owned(),
            kernel_release: p.kernel.release(),
        }
    }
}

/// One service to check: its configuration and where it listens.
#[derive(Debug, Clone)]
pub struct Target {
    pub config: ServiceConfig,
    /// The bound address; `None` if the service is not running.
    pub bound: Option<SocketAddr>,
}

/// Where a scanner on the node itself reaches a listener: the unspecified address
/// becomes loopback.
pub fn probe_addr(bound: SocketAddr) -> SocketAddr {
    let ip = match bound.ip() {
        IpAddr::V4(v) if v.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v) if v.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, bound.port())
}

/// Runs the whole check: every service at once, each within [`TOTAL`].
pub async fn check(targets: Vec<Target>, machine: &Machine, total: Duration) -> RealismReport {
    let started_ms = crate::sink::now_ms();
    let t0 = Instant::now();
    let deadline = t0 + total;
    let mut set = tokio::task::JoinSet::new();
    let mut services: Vec<Option<ServiceRealism>> = Vec::new();
    let mut observed: Vec<Option<Facts>> = Vec::new();
    for (i, t) in targets.iter().enumerate() {
        let mut entry = ServiceRealism {
            name: t.config.name.clone(),
            kind: t.config.kind.name().to_owned(),
            ..Default::default()
        };
        observed.push(None);
        match (plan(&t.config.kind), t.bound) {
            (Plan::Skip(why), _) => entry.skipped = Some(why.to_owned()),
            (_, None) if !t.config.enabled => entry.skipped = Some("disabled".into()),
            (Plan::Check { reference: r, .. }, None) => {
                entry.reference = reference(r).map(|r| r.product).unwrap_or_default();
                entry.total = 1;
                entry.failures.push(honeybee_proto::realism::CheckFailure {
                    check: "listening".into(),
                    expected: "the service accepts connections".into(),
                    got: "not running".into(),
                });
            }
            (Plan::Check { probe, .. }, Some(bound)) => {
                let addr = probe_addr(bound);
                set.spawn(async move { (i, probe.run(addr, deadline).await) });
            }
        }
        services.push(Some(entry));
    }
    // The probes keep their own deadlines; this one only guards against a task that
    // somehow outlives them.
    while let Ok(Some(joined)) =
        tokio::time::timeout_at(deadline + Duration::from_millis(500), set.join_next()).await
    {
        if let Ok((i, f)) = joined {
            observed[i] = Some(f);
        }
    }
    set.abort_all();

    for (i, t) in targets.iter().enumerate() {
        let Plan::Check {
            reference: file, ..
        } = plan(&t.config.kind)
        else {
            continue;
        };
        if t.bound.is_none() {
            continue;
        }
        let Some(entry) = services[i].as_mut() else {
            continue;
        };
        match reference(file) {
            Ok(r) => {
                entry.reference = r.product.clone();
                if matches!(t.config.kind, ServiceKind::Http(ref o) if o.tls) {
                    entry.reference +=
                        ", its HTTP answers over TLS (the TLS layer is not compared)";
                }
                let seen = observed[i].take().unwrap_or_default();
                let o = compare(&r, &seen);
                entry.passed = o.passed;
                entry.total = o.total;
                entry.failures = o.failures;
                observed[i] = Some(seen);
            }
            Err(e) => entry.skipped = Some(e),
        }
    }
    let mut report = RealismReport {
        started_ms,
        duration_ms: 0,
        services: services.into_iter().flatten().collect(),
    };
    let c = consistency(&targets, &observed, machine);
    if c.total > 0 {
        report.services.push(ServiceRealism {
            name: "consistency".into(),
            kind: "consistency".into(),
            reference: format!(
                "the node persona: {} running Debian {} with Linux {}",
                machine.hostname, machine.debian_major, machine.kernel_release
            ),
            passed: c.passed,
            total: c.total,
            failures: c.failures,
            skipped: None,
        });
    }
    report.duration_ms = t0.elapsed().as_millis() as u64;
    report.clamp();
    report
}

/// Whether what the services say about the machine agrees with the persona, and with
/// each other: the OS release in SSH's identification and Telnet's banner, the kernel in
/// Redis INFO, the host name at the Telnet login prompt and in every shell.
pub fn consistency(targets: &[Target], observed: &[Option<Facts>], m: &Machine) -> Outcome {
    let mut o = Outcome::default();
    let mut shell_hosts: Vec<(String, String)> = Vec::new();
    for (t, seen) in targets.iter().zip(observed) {
        let name = &t.config.name;
        match &t.config.kind {
            ServiceKind::Ssh(opts) => {
                let host = if opts.hostname.is_empty() {
                    m.hostname.clone()
                } else {
                    opts.hostname.clone()
                };
                shell_hosts.push((name.clone(), host));
                let id = &opts.server_id;
                let want = format!("+deb{}u", m.debian_major);
                o.verdict(
                    &format!("{name}: the identification names the persona's Debian release"),
                    id.contains(&want),
                    &format!("a Debian {} build ({want}…)", m.debian_major),
                    id,
                );
            }
            ServiceKind::Telnet(opts) => {
                let host = if opts.hostname.is_empty() {
                    m.hostname.clone()
                } else {
                    opts.hostname.clone()
                };
                shell_hosts.push((name.clone(), host.clone()));
                if let Some(text) = seen
                    .as_ref()
                    .and_then(|f| f.get(&format!("{INSTANCE}login_text")))
                {
                    let want = format!("{host} login: ");
                    o.verdict(
                        &format!("{name}: the login prompt names the host"),
                        text.ends_with(&want),
                        &want,
                        text.rsplit("\\n").next().unwrap_or(text),
                    );
                }
                if let Some(text) = seen
                    .as_ref()
                    .and_then(|f| f.get(&format!("{INSTANCE}login_text")))
                    .filter(|t| t.contains("Debian GNU/Linux"))
                {
                    let want = format!("Debian GNU/Linux {}", m.debian_major);
                    let ok = text.contains(&format!("{want}\\r"))
                        || text.contains(&format!("{want}\\n"))
                        || text.contains(&format!("{want} "));
                    o.verdict(
                        &format!("{name}: the banner names the persona's Debian release"),
                        ok,
                        &want,
                        text,
                    );
                }
            }
            ServiceKind::Smtp(opts) => {
                if let Some(host) = seen
                    .as_ref()
                    .and_then(|f| f.get(&format!("{INSTANCE}smtp_host")))
                {
                    let (ok, want) = if opts.hostname.is_empty() {
                        (
                            host.starts_with(&format!("{}.", m.hostname)),
                            format!("{}.<domain>", m.hostname),
                        )
                    } else {
                        (host == opts.hostname, opts.hostname.clone())
                    };
                    o.verdict(
                        &format!("{name}: the greeting names the host"),
                        ok,
                        &want,
                        host,
                    );
                    // The machine's own name is the first label of `myhostname`.
                    let short = host.split('.').next().unwrap_or(host).to_owned();
                    shell_hosts.push((name.clone(), short));
                }
            }
            ServiceKind::Redis(opts) if !opts.require_auth => {
                if let Some(os) = seen
                    .as_ref()
                    .and_then(|f| f.get(&format!("{INSTANCE}info_os")))
                {
                    let want = format!("Linux {} x86_64", m.kernel_release);
                    o.verdict(
                        &format!("{name}: INFO os is the persona's kernel"),
                        os == want,
                        &want,
                        os,
                    );
                }
            }
            _ => {}
        }
    }
    if let Some((first, host)) = shell_hosts.first() {
        for (other, h) in &shell_hosts[1..] {
            o.verdict(
                &format!("{first} and {other} show the same host name"),
                h == host,
                host,
                h,
            );
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use honeybee_proto::config::{RedisOptions, SshOptions, TelnetOptions};

    fn machine() -> Machine {
        Machine {
            hostname: "web-01".into(),
            debian_major: "12".into(),
            kernel_release: "6.1.0-18-amd64".into(),
        }
    }

    fn target(name: &str, kind: ServiceKind) -> Target {
        Target {
            config: ServiceConfig {
                name: name.into(),
                listen: "0.0.0.0:1".parse().unwrap(),
                enabled: true,
                kind,
            },
            bound: None,
        }
    }

    #[test]
    fn every_reference_parses_and_names_its_product() {
        for (file, _) in REFS {
            let r = reference(file).unwrap();
            assert!(!r.product.is_empty(), "{file}");
            assert!(!r.facts.0.is_empty(), "{file} has no facts");
            assert!(
                !r.facts.0.iter().any(|(n, _)| n.starts_with(INSTANCE)),
                "{file} holds an instance value"
            );
        }
    }

    #[test]
    fn unspecified_listeners_are_probed_on_loopback() {
        assert_eq!(
            probe_addr("0.0.0.0:22".parse().unwrap()),
            "127.0.0.1:22".parse().unwrap()
        );
        assert_eq!(
            probe_addr("[::]:22".parse().unwrap()),
            "[::1]:22".parse().unwrap()
        );
        assert_eq!(
            probe_addr("10.0.0.5:22".parse().unwrap()),
            "10.0.0.5:22".parse().unwrap()
        );
    }

    #[test]
    fn consistency_passes_a_coherent_node() {
        let targets = [
            target("ssh", ServiceKind::Ssh(SshOptions::default())),
            target("telnet", ServiceKind::Telnet(TelnetOptions::default())),
            target("redis", ServiceKind::Redis(RedisOptions::default())),
        ];
        let mut tel = Facts::default();
        tel.push("~login_text", "\r\nDebian GNU/Linux 12\r\nweb-01 login: ");
        let mut red = Facts::default();
        red.push("~info_os", "Linux 6.1.0-18-amd64 x86_64");
        let o = consistency(&targets, &[None, Some(tel), Some(red)], &machine());
        assert_eq!(o.failures, vec![]);
        assert_eq!(o.total, 5);

        // An SMTP greeting naming the persona's host agrees with the shells.
        let mut targets = targets.to_vec();
        targets.push(target(
            "smtp",
            ServiceKind::Smtp(honeybee_proto::config::SmtpOptions::default()),
        ));
        let mut smtp = Facts::default();
        smtp.push("~smtp_host", "web-01.corp.example");
        let o = consistency(&targets, &[None, None, None, Some(smtp)], &machine());
        assert_eq!(o.failures, vec![]);
        // ssh release, SMTP greeting, and the two host name comparisons.
        assert_eq!(o.total, 4);
    }

    #[test]
    fn consistency_names_each_disagreement() {
        let targets = [
            target(
                "ssh",
                ServiceKind::Ssh(SshOptions {
                    server_id: "SSH-2.0-OpenSSH_8.4p1 Debian-5+deb11u3".into(),
                    hostname: "db-07".into(),
                    ..Default::default()
                }),
            ),
            target("telnet", ServiceKind::Telnet(TelnetOptions::default())),
            target("redis", ServiceKind::Redis(RedisOptions::default())),
        ];
        let mut tel = Facts::default();
        tel.push("~login_text", "Debian GNU/Linux 11\r\nother login: ");
        let mut red = Facts::default();
        red.push("~info_os", "Linux 5.10.0-9-amd64 x86_64");
        let o = consistency(&targets, &[None, Some(tel), Some(red)], &machine());
        assert_eq!(o.passed, 0);
        let checks: Vec<&str> = o.failures.iter().map(|f| f.check.as_str()).collect();
        assert_eq!(checks.len(), 5, "{checks:?}");
        assert!(checks[0].contains("Debian release"));
        assert!(checks.iter().any(|c| c.contains("same host name")));
    }

    #[tokio::test]
    async fn a_service_that_is_not_running_fails_and_others_are_skipped_with_a_reason() {
        let targets = vec![
            target("ssh", ServiceKind::Ssh(SshOptions::default())),
            target(
                "mysql",
                ServiceKind::Mysql(honeybee_proto::config::MysqlOptions {
                    version: "8.0.36".into(),
                }),
            ),
        ];
        let r = check(targets, &machine(), Duration::from_secs(1)).await;
        assert_eq!(r.services[0].failures[0].got, "not running");
        assert_eq!((r.services[0].passed, r.services[0].total), (0, 1));
        assert!(r.services[1].skipped.as_deref().unwrap().contains("MySQL"));
    }
}
