//! Profiles: the service sets of one believable machine. A node is one machine, so it
//! should not answer SSH, a SOHO router's admin page and a PLC's Modbus at once; a
//! profile names a set of services that go together on one box, each left on its
//! persona's own values (host name, certificate, site, device identity come from the
//! node's persona, different on every node).
//!
//! - `linux-server`: a Debian 12 web and database server: SSH, FTP (vsftpd), Redis,
//!   MySQL, HTTP and HTTPS (a WordPress site on Apache, Debian's snakeoil certificate).
//! - `router`: a SOHO router: Telnet and the HTTP admin login (lighttpd).
//! - `ics`: a PLC: Modbus/TCP and the controller's own web page naming the same device.
//! - `all`: every service at once, for a demonstration only: no real machine looks like
//!   it, and a scanner that sees it knows it found a honeypot.
//!
//! A service list may name a profile and list services beside it: a listed service with
//! a profile service's name replaces it (or, with `enabled = false`, switches it off);
//! others are added.

use crate::config::{
    BannerOptions, FtpOptions, HttpOptions, HttpPersona, ModbusOptions, MysqlOptions, RedisOptions,
    ServiceConfig, ServiceKind, SmtpOptions, SshOptions, TelnetOptions,
};
use std::net::{IpAddr, SocketAddr};

/// A coherent service set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Profile {
    LinuxServer,
    Router,
    Ics,
    /// Every service: a demonstration, not a believable machine.
    All,
}

/// A profile name that is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown profile {0:?}: use linux-server, router, ics or all (all: every service, a demo)")]
pub struct UnknownProfile(pub String);

impl Profile {
    /// What `honeybee up` and a new node run unless told otherwise.
    pub const DEFAULT: Profile = Profile::LinuxServer;

    pub const ALL: [Profile; 4] = [
        Profile::LinuxServer,
        Profile::Router,
        Profile::Ics,
        Profile::All,
    ];

    pub fn parse(name: &str) -> Result<Profile, UnknownProfile> {
        match name.trim() {
            "linux-server" => Ok(Profile::LinuxServer),
            "router" => Ok(Profile::Router),
            "ics" => Ok(Profile::Ics),
            "all" => Ok(Profile::All),
            other => Err(UnknownProfile(other.to_owned())),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Profile::LinuxServer => "linux-server",
            Profile::Router => "router",
            Profile::Ics => "ics",
            Profile::All => "all",
        }
    }

    /// One line on what the node looks like under this profile.
    pub fn describe(self) -> &'static str {
        match self {
            Profile::LinuxServer => {
                "a Debian 12 web and database server: SSH, FTP, Redis, MySQL, HTTP and HTTPS (WordPress on Apache)"
            }
            Profile::Router => "a SOHO router: Telnet and its HTTP admin login (lighttpd)",
            Profile::Ics => "a PLC: Modbus/TCP and the controller's web page",
            Profile::All => "every service at once: a demo only, no real machine looks like this",
        }
    }

    /// The profile's services on `host`, on the unprivileged ports `honeybee up` uses
    /// (2222 for SSH, 8081 for HTTP, …: redirect the well-known ports to them, or list
    /// the services with their own `listen`). Options are the defaults: the node's
    /// persona fills in the per-node values.
    pub fn services(self, host: IpAddr) -> Vec<ServiceConfig> {
        let svc = |name: &str, port: u16, kind: ServiceKind| ServiceConfig {
            name: name.into(),
            listen: SocketAddr::new(host, port),
            enabled: true,
            kind,
        };
        let http = |persona, tls| {
            ServiceKind::Http(HttpOptions {
                persona,
                tls,
                ..HttpOptions::default()
            })
        };
        let ssh = || svc("ssh", 2222, ServiceKind::Ssh(SshOptions::default()));
        let telnet = |banner: &str| {
            svc(
                "telnet",
                2323,
                ServiceKind::Telnet(TelnetOptions {
                    banner: banner.into(),
                    ..TelnetOptions::default()
                }),
            )
        };
        let ftp = || svc("ftp", 2121, ServiceKind::Ftp(FtpOptions::default()));
        let redis = || svc("redis", 6380, ServiceKind::Redis(RedisOptions::default()));
        let mysql = || svc("mysql", 3307, ServiceKind::Mysql(MysqlOptions::default()));
        let modbus = || {
            svc(
                "modbus",
                5020,
                ServiceKind::Modbus(ModbusOptions::default()),
            )
        };
        match self {
            Profile::LinuxServer => vec![
                ssh(),
                svc("http", 8081, http(HttpPersona::Wordpress, false)),
                svc("https", 8443, http(HttpPersona::Wordpress, true)),
                ftp(),
                redis(),
                mysql(),
            ],
            // A router's telnetd prints no banner before its login prompt.
            Profile::Router => vec![
                telnet(""),
                svc("http", 8081, http(HttpPersona::Router, false)),
            ],
            Profile::Ics => vec![modbus(), svc("http", 8081, http(HttpPersona::Plc, false))],
            Profile::All => vec![
                ssh(),
                telnet(&TelnetOptions::default().banner),
                svc("http", 8081, http(HttpPersona::Router, false)),
                svc("https", 8443, http(HttpPersona::Router, true)),
                ftp(),
                redis(),
                mysql(),
                modbus(),
                svc("smtp", 2525, ServiceKind::Smtp(SmtpOptions::default())),
                // The generic banner service, beside the real SMTP persona: silent until
                // the peer speaks (it claims no program), recording the first bytes.
                svc(
                    "banner",
                    2526,
                    ServiceKind::Banner(BannerOptions::default()),
                ),
            ],
        }
    }
}

impl std::fmt::Display for Profile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Profile {
    type Err = UnknownProfile;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Profile::parse(s)
    }
}

/// `base` (a profile's services) with `listed` laid over it: a listed service replaces
/// the base service of the same name, in its place; the others are appended in order.
pub fn overlay(base: Vec<ServiceConfig>, listed: Vec<ServiceConfig>) -> Vec<ServiceConfig> {
    let mut out = base;
    for s in listed {
        match out.iter_mut().find(|b| b.name == s.name) {
            Some(slot) => *slot = s,
            None => out.push(s),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::NodeConfig;

    fn kinds(p: Profile) -> Vec<&'static str> {
        p.services(IpAddr::from([127, 0, 0, 1]))
            .iter()
            .map(|s| s.kind.name())
            .collect()
    }

    #[test]
    fn profiles_are_coherent_and_valid() {
        assert_eq!(
            kinds(Profile::LinuxServer),
            ["ssh", "http", "http", "ftp", "redis", "mysql"]
        );
        assert_eq!(kinds(Profile::Router), ["telnet", "http"]);
        assert_eq!(kinds(Profile::Ics), ["modbus", "http"]);
        assert_eq!(kinds(Profile::All).len(), 10);
        for p in Profile::ALL {
            let cfg = NodeConfig {
                services: p.services(IpAddr::from([0, 0, 0, 0])),
            };
            cfg.validate().unwrap_or_else(|e| panic!("{p}: {e}"));
            assert_eq!(Profile::parse(p.name()), Ok(p));
        }
        assert_eq!(Profile::DEFAULT, Profile::LinuxServer);
        let e = Profile::parse("web").unwrap_err().to_string();
        assert!(e.contains("linux-server, router, ics or all"), "{e}");
    }

    #[test]
    fn listed_services_override_by_name() {
        let host = IpAddr::from([127, 0, 0, 1]);
        let mut off = Profile::Router.services(host)[0].clone();
        off.enabled = false;
        let extra = Profile::Ics.services(host)[0].clone();
        let out = overlay(Profile::Router.services(host), vec![off.clone(), extra]);
        assert_eq!(out.len(), 3);
        assert_eq!(out[0], off);
        assert_eq!(out[2].kind.name(), "modbus");
    }
}
