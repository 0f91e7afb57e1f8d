//! Node configuration that the core pushes to an agent: which services run, and how.

use serde::{Deserialize, Serialize};
use std::net::SocketAddr;

/// The whole service set of one node. The agent converges to it: starts what is new,
/// stops what is gone, restarts what changed.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct NodeConfig {
    pub services: Vec<ServiceConfig>,
}

/// One honeypot service instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceConfig {
    /// Instance name, unique on the node; events carry it as their `service`.
    pub name: String,
    pub listen: SocketAddr,
    pub enabled: bool,
    pub kind: ServiceKind,
}

/// Which protocol a service speaks, with its options. New variants go at the end.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ServiceKind {
    Ssh(SshOptions),
    Banner(BannerOptions),
    /// Extension node: many ports beside real services, see [`ExtensionOptions`].
    Extension(ExtensionOptions),
    Telnet(TelnetOptions),
    Http(HttpOptions),
    Ftp(FtpOptions),
    Redis(RedisOptions),
    Mysql(MysqlOptions),
    Modbus(ModbusOptions),
    Smtp(SmtpOptions),
    /// Network detectors of an extension node (name poisoning, ARP, rogue DHCP and router
    /// advertisements), see [`DetectorOptions`].
    Detectors(DetectorOptions),
    /// Aggregator: syslog and SNMP traps from listed devices that cannot run an agent
    /// (printers, cameras, NAS), reported as their events, see [`AggregatorOptions`].
    Aggregator(AggregatorOptions),
}

impl ServiceKind {
    pub fn name(&self) -> &'static str {
        match self {
            ServiceKind::Ssh(_) => "ssh",
            ServiceKind::Banner(_) => "banner",
            ServiceKind::Extension(_) => "extension",
            ServiceKind::Telnet(_) => "telnet",
            ServiceKind::Http(_) => "http",
            ServiceKind::Ftp(_) => "ftp",
            ServiceKind::Redis(_) => "redis",
            ServiceKind::Mysql(_) => "mysql",
            ServiceKind::Modbus(_) => "modbus",
            ServiceKind::Smtp(_) => "smtp",
            ServiceKind::Detectors(_) => "detectors",
            ServiceKind::Aggregator(_) => "aggregator",
        }
    }
}

/// Longest credential list a login policy may carry.
pub const MAX_POLICY_CREDENTIALS: usize = 256;

/// When an emulated login succeeds. Written in TOML as `login = "never"`,
/// `login = "always"`, `login = { after_attempts = 3 }` or
/// `login = { credentials = [["root", "123456"], ["admin", "admin"]] }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LoginPolicy {
    /// Every attempt fails: a pure credential collector.
    Never,
    /// The first attempt succeeds, whatever it is.
    Always,
    /// The attempt after `n` failed ones for the same user from the same source succeeds
    /// (2 means the third attempt gets in), counted across connections for `remember`;
    /// the password that got in is then that user's only password for that source.
    /// Brute forcers, one try per connection or many, believe they found a password.
    AfterAttempts(u32),
    /// Only these (username, password) pairs succeed.
    Credentials(Vec<(String, String)>),
}

impl Default for LoginPolicy {
    fn default() -> Self {
        LoginPolicy::AfterAttempts(2)
    }
}

impl LoginPolicy {
    /// Whether attempt number `failed_before + 1` with these credentials succeeds, for a
    /// user with no password remembered yet (the agent's login memory decides the rest).
    pub fn accepts(&self, failed_before: u32, username: &str, password: &str) -> bool {
        match self {
            LoginPolicy::Never => false,
            LoginPolicy::Always => true,
            LoginPolicy::AfterAttempts(n) => failed_before >= *n,
            LoginPolicy::Credentials(list) => {
                list.iter().any(|(u, p)| u == username && p == password)
            }
        }
    }

    fn check(&self) -> Result<(), &'static str> {
        match self {
            LoginPolicy::AfterAttempts(n) if *n > 100 => Err("login: after_attempts <= 100"),
            LoginPolicy::Credentials(list)
                if list.is_empty()
                    || list.len() > MAX_POLICY_CREDENTIALS
                    || list.iter().any(|(u, p)| u.len() > 256 || p.len() > 256) =>
            {
                Err("login: 1 to 256 credentials, each part at most 256 bytes")
            }
            _ => Ok(()),
        }
    }
}

/// How long a login memory lasts, in seconds; written `"7days"`, `"12h"`, `"30m"` or
/// `"90s"` (also `d`, `day`, `hours`, `min`, `sec`, …). From 1 second to 365 days.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Remember(u64);

impl Remember {
    /// The longest memory an operator may configure.
    pub const MAX_SECS: u64 = 365 * 86_400;

    /// `None` unless 1 ≤ `secs` ≤ [`Remember::MAX_SECS`].
    pub fn from_secs(secs: u64) -> Option<Remember> {
        (1..=Self::MAX_SECS)
            .contains(&secs)
            .then_some(Remember(secs))
    }

    pub fn secs(self) -> u64 {
        self.0
    }
}

impl Default for Remember {
    /// A week: long enough for a bot's next round, short enough to forget a stranger.
    fn default() -> Self {
        Remember(7 * 86_400)
    }
}

impl TryFrom<String> for Remember {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        let bad = || {
            format!(
                "remember: {text:?} is not like \"7days\", \"12h\", \"30m\" or \"90s\" (1s to 365days)"
            )
        };
        let t = text.trim();
        let digits = t.bytes().take_while(u8::is_ascii_digit).count();
        let n: u64 = t[..digits].parse().map_err(|_| bad())?;
        let unit = match t[digits..].trim() {
            "s" | "sec" | "secs" | "second" | "seconds" => 1,
            "m" | "min" | "mins" | "minute" | "minutes" => 60,
            "h" | "hour" | "hours" => 3600,
            "d" | "day" | "days" => 86_400,
            _ => return Err(bad()),
        };
        n.checked_mul(unit)
            .and_then(Remember::from_secs)
            .ok_or_else(bad)
    }
}

impl From<Remember> for String {
    fn from(r: Remember) -> String {
        let s = r.0;
        if s.is_multiple_of(86_400) {
            format!("{}days", s / 86_400)
        } else if s.is_multiple_of(3600) {
            format!("{}h", s / 3600)
        } else if s.is_multiple_of(60) {
            format!("{}m", s / 60)
        } else {
            format!("{s}s")
        }
    }
}

/// SSH honeypot options.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SshOptions {
    /// Identification string sent to clients, without the trailing CRLF. It should match a
    /// real OpenSSH release so scanners name the product.
    pub server_id: String,
    /// Delay before a failed password is answered: Debian's sshd gets 2 s from pam_unix
    /// (randomised by PAM within ±25%). Public keys are refused at once, as OpenSSH does.
    pub auth_failure_delay_ms: u32,
    /// Most authentication attempts per connection before it is closed.
    pub max_auth_attempts: u32,
    /// Which password logins succeed (public keys are always refused).
    pub login: LoginPolicy,
    /// Host name the emulated shell shows in its prompt and `uname`; empty (the default):
    /// the node persona's own, different on every node.
    pub hostname: String,
    /// Largest session transcript (asciicast) kept; past it recording stops and the cap
    /// is reported.
    pub max_transcript_bytes: u32,
    /// How long the node remembers, per source, the attempts counted toward the policy
    /// and the passwords that got in (accepted again, and the only ones, for that user).
    /// Last, so that the wire form of the older fields is unchanged.
    pub remember: Remember,
}

/// Default cap of a shell session's transcript.
pub const DEFAULT_MAX_TRANSCRIPT_BYTES: u32 = 1024 * 1024;

/// Largest transcript cap an operator may configure (the core's capture cap).
pub const MAX_TRANSCRIPT_BYTES: u32 = 64 * 1024 * 1024;

/// A host name the emulated shell can show: 1 to 64 of letters, digits, `-` and `.`;
/// empty for the node persona's own.
fn valid_hostname(h: &str) -> bool {
    h.is_empty()
        || h.len() <= 64
            && h.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
            && !h.starts_with(['-', '.'])
}

impl Default for SshOptions {
    fn default() -> Self {
        SshOptions {
            server_id: "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3".into(),
            auth_failure_delay_ms: 2000,
            max_auth_attempts: 6,
            login: LoginPolicy::default(),
            remember: Remember::default(),
            hostname: String::new(),
            max_transcript_bytes: DEFAULT_MAX_TRANSCRIPT_BYTES,
        }
    }
}

/// Telnet honeypot options: a login prompt with the same policy and shell as SSH.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TelnetOptions {
    /// Shown before the login prompt, after telnetd's host line (`\r\n` line ends). Empty
    /// by default: Debian's inetutils-telnetd shows no /etc/issue.net.
    pub banner: String,
    pub login: LoginPolicy,
    pub hostname: String,
    /// Delay before "Login incorrect": Debian's login(1) gets 3 s from pam_faildelay.
    pub auth_failure_delay_ms: u32,
    /// Most login attempts per connection before it is closed (login.defs' LOGIN_RETRIES,
    /// 5 on Debian).
    pub max_auth_attempts: u32,
    /// Largest session transcript (asciicast) kept.
    pub max_transcript_bytes: u32,
    /// As SSH's: attempts and accepted passwords remembered per source, for this long.
    pub remember: Remember,
}

impl Default for TelnetOptions {
    fn default() -> Self {
        TelnetOptions {
            banner: String::new(),
            login: LoginPolicy::default(),
            remember: Remember::default(),
            hostname: String::new(),
            auth_failure_delay_ms: 3000,
            max_auth_attempts: 5,
            max_transcript_bytes: DEFAULT_MAX_TRANSCRIPT_BYTES,
        }
    }
}

/// What an HTTP honeypot pretends to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HttpPersona {
    /// A home/SOHO router's admin login page.
    Router,
    /// A WordPress site with `/wp-login.php`.
    Wordpress,
    /// The embedded web page of the node's PLC (the Modbus service's vendor and product).
    Plc,
}

/// HTTP/HTTPS honeypot options.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpOptions {
    pub persona: HttpPersona,
    /// Serve HTTPS with the node's own self-signed certificate.
    pub tls: bool,
    /// The `Server` header; empty: the persona's own (`lighttpd/1.4.69` for the router,
    /// `Apache/2.4.62 (Debian)` for WordPress).
    pub server_header: String,
    /// Request body bytes kept inline in the event; a longer body becomes a capture.
    pub max_inline_body: u32,
    /// Largest body read at all; past it the request is answered 413 and the cap reported.
    pub max_body_bytes: u32,
    /// Common name and organisation of the self-signed certificate; empty (the
    /// default): the node's own, as the machine the persona imitates would have made it
    /// (WordPress: Debian's snakeoil certificate for the node's host name; router and
    /// PLC: the device's certificate). At most 64 bytes each.
    pub cert_common_name: String,
    pub cert_organization: String,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            persona: HttpPersona::Router,
            tls: false,
            server_header: String::new(),
            max_inline_body: 2048,
            max_body_bytes: 1024 * 1024,
            cert_common_name: String::new(),
            cert_organization: String::new(),
        }
    }
}

/// FTP honeypot options.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FtpOptions {
    /// The greeting, without the `220 ` code and CRLF.
    pub banner: String,
    pub login: LoginPolicy,
    /// Largest upload kept; a longer STOR is cut off and the cap reported.
    pub max_upload_bytes: u32,
    /// Address announced in PASV replies; None: the control connection's local address.
    pub pasv_address: Option<std::net::IpAddr>,
    /// Delay before `530 Login incorrect.` (vsftpd's `delay_failed_login`).
    pub auth_failure_delay_ms: u32,
    /// Failed logins after which the connection is closed (vsftpd's `max_login_fails`).
    pub max_login_failures: u32,
    /// As SSH's: attempts and accepted passwords remembered per source (the node's login
    /// memory, shared with SSH and Telnet), and how long a source's uploads stay in its
    /// listings. Last, so that the wire form of the older fields is unchanged.
    pub remember: Remember,
}

impl Default for FtpOptions {
    fn default() -> Self {
        FtpOptions {
            banner: "(vsFTPd 3.0.3)".into(),
            login: LoginPolicy::default(),
            max_upload_bytes: 16 * 1024 * 1024,
            pasv_address: None,
            // PAM's 2 s (pam_unix) plus vsftpd's `delay_failed_login` of 1 s.
            auth_failure_delay_ms: 3000,
            max_login_failures: 3,
            remember: Remember::default(),
        }
    }
}

/// Redis (RESP) honeypot options.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisOptions {
    /// `redis_version` in INFO.
    pub version: String,
    /// Commands other than AUTH need a successful AUTH first (requirepass is set).
    pub require_auth: bool,
    /// Which AUTH passwords succeed (the username is `default` unless given).
    pub login: LoginPolicy,
    /// The node keeps one keyspace per Redis service, shared by every connection and
    /// saved in the agent's data directory; a key is forgotten this long after it was
    /// last written (a TTL, if shorter, still applies). Last, so that the wire form of
    /// the older fields is unchanged.
    pub persist: Remember,
}

impl Default for RedisOptions {
    fn default() -> Self {
        RedisOptions {
            version: "7.0.15".into(),
            require_auth: false,
            login: LoginPolicy::Never,
            persist: Remember::default(),
        }
    }
}

/// MySQL honeypot options: a real server greeting, then access denied.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MysqlOptions {
    /// Empty (the default): MariaDB as the node's Debian 12 ships it (Debian's "mysql" is
    /// `mariadb-server` 10.11), in the version of the node's point release. `"10.11.6"`
    /// (or a full `"10.11.6-MariaDB-0+deb12u1"`): that MariaDB. `"8.0.x"`: MySQL 8.0 as
    /// Oracle's APT repository builds it for Debian 12, with TLS and
    /// `caching_sha2_password`.
    pub version: String,
}

/// Modbus/TCP honeypot options: a small PLC.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModbusOptions {
    /// Device identification (function 43/14) answers.
    pub vendor: String,
    pub product_code: String,
    pub revision: String,
    /// Holding registers 0..n and coils 0..n exist; other addresses are an exception.
    pub holding_registers: u16,
    pub coils: u16,
}

impl Default for ModbusOptions {
    fn default() -> Self {
        ModbusOptions {
            vendor: "Schneider Electric".into(),
            product_code: "BMX P34 2020".into(),
            revision: "v2.8".into(),
            holding_registers: 128,
            coils: 64,
        }
    }
}

/// SMTP honeypot options: Debian 12's Postfix 3.7 with SASL (Dovecot) and STARTTLS.
/// Nothing is ever delivered or relayed: messages are captured, credentials refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SmtpOptions {
    /// `myhostname`; empty (the default): the node persona's host name and domain.
    pub hostname: String,
    /// `message_size_limit` (announced as SIZE); a message is captured up to it.
    pub max_message_bytes: u32,
    /// `smtpd_recipient_limit`.
    pub max_recipients: u32,
    /// Most commands one connection may send before it is closed.
    pub max_commands: u32,
    /// Delay before a failed AUTH is answered (Dovecot's `auth_failure_delay`).
    pub auth_failure_delay_ms: u32,
}

impl Default for SmtpOptions {
    fn default() -> Self {
        SmtpOptions {
            hostname: String::new(),
            max_message_bytes: 10_240_000,
            max_recipients: 1000,
            max_commands: 1000,
            auth_failure_delay_ms: 2000,
        }
    }
}

/// Generic TCP banner options.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BannerOptions {
    /// Sent on connect; may be empty to wait silently.
    pub banner: String,
    /// Most bytes recorded from the peer.
    pub max_capture_bytes: u32,
    /// How long to wait for the peer's first bytes.
    pub read_timeout_ms: u32,
}

impl Default for BannerOptions {
    fn default() -> Self {
        BannerOptions {
            // Nothing first: a port that waits for its client says nothing about what it
            // is. (It used to claim Postfix; the `smtp` service is the mail server now.)
            banner: String::new(),
            max_capture_bytes: 1024,
            read_timeout_ms: 10_000,
        }
    }
}

/// Most ports one extension service may cover (after expanding its ranges).
pub const MAX_EXTENSION_PORTS: usize = 1024;

/// An inclusive range of TCP ports; a single port is `start == end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortRange {
    pub start: u16,
    pub end: u16,
}

/// Extension service options: listen on every configured port that no real service of
/// the host holds, answer like a banner service, and detect port scans.
///
/// The bind address is the service's `listen` IP; its port must be 0.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExtensionOptions {
    pub ports: Vec<PortRange>,
    /// Sent on connect; empty (the default) to answer with nothing.
    pub banner: String,
    /// Most bytes recorded from the peer.
    pub max_capture_bytes: u32,
    /// How long to wait for the peer's first bytes.
    pub read_timeout_ms: u32,
    /// How often the host's listening sockets are read again.
    pub recheck_s: u32,
    /// Distinct ports from one source within `scan_window_ms` that make a scan; 0 turns
    /// scan detection off.
    pub scan_min_ports: u32,
    /// The scan detector's sliding window, and the quiet time that ends a scan.
    pub scan_window_ms: u32,
}

impl Default for ExtensionOptions {
    fn default() -> Self {
        ExtensionOptions {
            ports: Vec::new(),
            banner: String::new(),
            max_capture_bytes: 1024,
            read_timeout_ms: 5_000,
            recheck_s: 30,
            scan_min_ports: 5,
            scan_window_ms: 10_000,
        }
    }
}

impl ExtensionOptions {
    /// The configured ports, expanded, sorted and deduplicated. Callers validate first;
    /// this stops at [`MAX_EXTENSION_PORTS`] anyway.
    pub fn port_list(&self) -> Vec<u16> {
        let mut out = std::collections::BTreeSet::new();
        for r in &self.ports {
            for p in r.start..=r.end {
                if out.len() >= MAX_EXTENSION_PORTS {
                    break;
                }
                out.insert(p);
            }
        }
        out.into_iter().collect()
    }

    fn check(&self) -> Result<(), &'static str> {
        if self.ports.is_empty() || self.ports.len() > MAX_EXTENSION_PORTS {
            return Err("ports: 1 to 1024 ranges");
        }
        let mut total = 0usize;
        for r in &self.ports {
            if r.start == 0 || r.start > r.end {
                return Err("ports: each range needs 1 <= start <= end");
            }
            total += usize::from(r.end - r.start) + 1;
        }
        if total > MAX_EXTENSION_PORTS {
            return Err("ports: at most 1024 ports in all");
        }
        if self.banner.len() > 4096 || self.max_capture_bytes as usize > crate::event::MAX_DATA_LEN
        {
            return Err("banner <= 4096 bytes, max_capture_bytes <= 4096");
        }
        if self.read_timeout_ms > 600_000 {
            return Err("read_timeout_ms <= 600000");
        }
        if !(1..=86_400).contains(&self.recheck_s) {
            return Err("recheck_s: 1 to 86400");
        }
        if self.scan_min_ports != 0 && !(2..=256).contains(&self.scan_min_ports) {
            return Err("scan_min_ports: 0 (off) or 2 to 256");
        }
        if !(100..=3_600_000).contains(&self.scan_window_ms) {
            return Err("scan_window_ms: 100 to 3600000");
        }
        Ok(())
    }
}

/// Most addresses in a detectors service's allow lists.
pub const MAX_DETECTOR_ALLOWED: usize = 64;

/// Network detectors on an extension node: each watches the office network for one kind of
/// attack and is on or off on its own. The service's `listen` IP picks the address the
/// probes leave from (`0.0.0.0`: the interface's own); its port must be 0.
///
/// `poisoning` needs no privilege; `arp`, `dhcp` and `router_advertisements` read frames
/// through an `AF_PACKET` socket and need `CAP_NET_RAW` (without it they report that they
/// are off and the others still run).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DetectorOptions {
    /// Network interface to watch; empty: the one holding the default route.
    pub interface: String,
    /// Ask LLMNR, NBT-NS and mDNS for names nobody holds; any answer is a poisoner.
    pub poisoning: bool,
    /// Seconds between two rounds of honey-name queries (jittered).
    pub poisoning_interval_s: u32,
    /// Watch ARP: a changed MAC for a known IP (the gateway first), duplicate IPs and
    /// gratuitous-ARP floods.
    pub arp: bool,
    /// The gateway whose MAC is watched first; absent: the default route's.
    pub gateway: Option<std::net::Ipv4Addr>,
    /// Gratuitous ARPs from one MAC within an incident window that make a flood.
    pub gratuitous_arp_max: u32,
    /// Watch DHCP offers and acknowledgements from servers not listed.
    pub dhcp: bool,
    /// The DHCP servers that may answer; empty: the first one seen is trusted.
    pub dhcp_servers: Vec<std::net::Ipv4Addr>,
    /// Seconds between two DHCPDISCOVERs that make every server answer; 0: listen only.
    pub dhcp_probe_s: u32,
    /// Watch IPv6 router advertisements from routers not listed.
    pub router_advertisements: bool,
    /// The routers (link-local source addresses) that may advertise; empty: the first
    /// one seen is trusted.
    pub routers: Vec<std::net::Ipv6Addr>,
    /// An incident is reported, once, after this long without a new packet of it.
    pub incident_quiet_ms: u32,
    /// An incident that goes on is reported at the latest this long after it began.
    pub incident_max_s: u32,
    /// Most events per minute from this service; the rest are counted in one
    /// `limit_reached` event.
    pub max_events_per_minute: u32,
    /// Most frames read per second per capture; the kernel drops the rest (counted).
    pub max_frames_per_s: u32,
    /// Offer honey-credentials to a poisoner that answered a honey-name: an HTTP NTLM
    /// exchange toward it, as a victim's would be, with a honey user and an NTLMv2
    /// response from a honey password; the core then alerts when they are used against
    /// any HoneyBee service (`honey_credential_used`). Off by default: it sends honey
    /// credentials to an attacker on the LAN (SECURITY.md).
    pub honey_credentials: bool,
    /// The responder's port the offer goes to (its HTTP server).
    pub honey_credentials_port: u16,
    /// At most one offer per responder in this many seconds.
    pub honey_credentials_interval_s: u32,
    /// At most this many offers an hour in all, whatever the responders.
    pub honey_credentials_per_hour: u32,
    /// Darknet monitoring: answer ARP for unused addresses of the subnet (each probed
    /// first, never one that answers) and report connection attempts to them. Off by
    /// default; needs `CAP_NET_RAW`.
    pub darknet: bool,
    /// The addresses watched: `auto` (the subnet's top 256, less own and gateway) or an
    /// IPv4 range `A-B` of at most 256.
    pub darknet_range: String,
}

impl Default for DetectorOptions {
    fn default() -> Self {
        DetectorOptions {
            interface: String::new(),
            poisoning: true,
            poisoning_interval_s: 300,
            arp: true,
            gateway: None,
            gratuitous_arp_max: 20,
            dhcp: true,
            dhcp_servers: Vec::new(),
            dhcp_probe_s: 900,
            router_advertisements: true,
            routers: Vec::new(),
            incident_quiet_ms: 30_000,
            incident_max_s: 300,
            max_events_per_minute: 30,
            max_frames_per_s: 2_000,
            honey_credentials: false,
            honey_credentials_port: 80,
            honey_credentials_interval_s: 3_600,
            honey_credentials_per_hour: 6,
            darknet: false,
            darknet_range: "auto".into(),
        }
    }
}

impl DetectorOptions {
    fn check(&self) -> Result<(), &'static str> {
        let iface_ok = self.interface.len() <= 15
            && self
                .interface
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.@:".contains(&b));
        if !iface_ok {
            return Err("interface: at most 15 of a-z, A-Z, 0-9, '-', '_', '.', '@', ':'");
        }
        if !(1..=86_400).contains(&self.poisoning_interval_s) {
            return Err("poisoning_interval_s: 1 to 86400");
        }
        if !(2..=100_000).contains(&self.gratuitous_arp_max) {
            return Err("gratuitous_arp_max: 2 to 100000");
        }
        if self.dhcp_probe_s > 86_400 {
            return Err("dhcp_probe_s: 0 (listen only) to 86400");
        }
        if self.dhcp_servers.len() > MAX_DETECTOR_ALLOWED
            || self.routers.len() > MAX_DETECTOR_ALLOWED
        {
            return Err("dhcp_servers, routers: at most 64 each");
        }
        if !(100..=3_600_000).contains(&self.incident_quiet_ms) {
            return Err("incident_quiet_ms: 100 to 3600000");
        }
        if !(1..=86_400).contains(&self.incident_max_s) {
            return Err("incident_max_s: 1 to 86400");
        }
        if !(1..=10_000).contains(&self.max_events_per_minute) {
            return Err("max_events_per_minute: 1 to 10000");
        }
        if !(10..=1_000_000).contains(&self.max_frames_per_s) {
            return Err("max_frames_per_s: 10 to 1000000");
        }
        if self.honey_credentials_port == 0 {
            return Err("honey_credentials_port: 1 to 65535");
        }
        if !(60..=604_800).contains(&self.honey_credentials_interval_s) {
            return Err("honey_credentials_interval_s: 60 to 604800");
        }
        if !(1..=60).contains(&self.honey_credentials_per_hour) {
            return Err("honey_credentials_per_hour: 1 to 60");
        }
        let range_ok = self.darknet_range == "auto"
            || self.darknet_range.split_once('-').is_some_and(|(a, b)| {
                a.trim().parse::<std::net::Ipv4Addr>().is_ok()
                    && b.trim().parse::<std::net::Ipv4Addr>().is_ok()
            });
        if !range_ok {
            return Err("darknet_range: \"auto\" or an IPv4 range A-B");
        }
        Ok(())
    }
}

/// Most devices one aggregator service lists.
pub const MAX_AGGREGATOR_DEVICES: usize = 256;
/// Most SNMP communities an aggregator accepts.
pub const MAX_TRAP_COMMUNITIES: usize = 16;

/// One device that cannot run an agent (a printer, camera, NAS) and sends its syslog or
/// SNMP traps to an aggregator. Its events are attributed to it by `name`; only datagrams
/// and connections from `address` are accepted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AggregatedDevice {
    /// How the device is shown (`honeybee nodes`, the dashboard) and named in its events:
    /// 1 to 64 of a-z, A-Z, 0-9, '-', '_', '.'.
    pub name: String,
    /// The address its datagrams and connections come from.
    pub address: std::net::IpAddr,
    /// What it is, for people (`printer`, `camera`, `nas`, …); free text, may be empty.
    #[serde(default)]
    pub kind: String,
}

/// An aggregator: accepts syslog (RFC 5424 and RFC 3164; UDP, and TCP with octet-counting
/// or line-feed framing, RFC 6587) on `listen`, and SNMPv1/v2c traps on `trap_port` of
/// the same address, from the listed devices only; everything else is refused and
/// counted. Each accepted message becomes a `device_log` or `device_trap` event naming
/// its device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AggregatorOptions {
    /// The devices whose messages are accepted (at most [`MAX_AGGREGATOR_DEVICES`]).
    pub devices: Vec<AggregatedDevice>,
    /// Syslog over UDP on `listen`.
    pub syslog_udp: bool,
    /// Syslog over TCP on `listen`.
    pub syslog_tcp: bool,
    /// SNMP traps (UDP) on `trap_port`.
    pub snmp_traps: bool,
    /// The trap port on the listen address (162 is the standard one; 0: any free port).
    pub trap_port: u16,
    /// Communities a trap must carry; empty: any (SNMPv1/v2c communities travel in clear
    /// and authenticate little; the sender's address is the real check).
    pub trap_communities: Vec<String>,
    /// Open TCP syslog connections, all devices together.
    pub max_tcp_connections: u32,
    /// Open TCP syslog connections from one device.
    pub max_tcp_per_device: u32,
    /// A TCP connection with no byte for this long is closed (the device reconnects).
    pub tcp_idle_s: u32,
    /// Most events per minute from one device; the rest are counted.
    pub max_events_per_minute: u32,
    /// Most events per minute from all devices together; the rest are counted.
    pub max_events_per_minute_total: u32,
}

impl Default for AggregatorOptions {
    fn default() -> Self {
        AggregatorOptions {
            devices: Vec::new(),
            syslog_udp: true,
            syslog_tcp: true,
            snmp_traps: true,
            trap_port: 162,
            trap_communities: Vec::new(),
            max_tcp_connections: 64,
            max_tcp_per_device: 4,
            tcp_idle_s: 600,
            max_events_per_minute: 120,
            max_events_per_minute_total: 1200,
        }
    }
}

impl AggregatorOptions {
    fn check(&self) -> Result<(), &'static str> {
        if self.devices.len() > MAX_AGGREGATOR_DEVICES {
            return Err("devices: at most 256");
        }
        let mut names = std::collections::HashSet::new();
        let mut addrs = std::collections::HashSet::new();
        for d in &self.devices {
            let ok = !d.name.is_empty()
                && d.name.len() <= 64
                && d.name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
            if !ok {
                return Err("device name: 1 to 64 of a-z, A-Z, 0-9, '-', '_', '.'");
            }
            if d.kind.len() > 64 || !printable(&d.kind) {
                return Err("device kind: at most 64 printable characters");
            }
            if !names.insert(d.name.as_str()) {
                return Err("two devices have the same name");
            }
            if !addrs.insert(d.address.to_canonical()) {
                return Err("two devices have the same address");
            }
            if d.address.is_unspecified() || d.address.is_multicast() {
                return Err("device address: one host's address");
            }
        }
        if !(self.syslog_udp || self.syslog_tcp || self.snmp_traps) {
            return Err("syslog_udp, syslog_tcp, snmp_traps: at least one on");
        }
        if self.trap_communities.len() > MAX_TRAP_COMMUNITIES
            || self
                .trap_communities
                .iter()
                .any(|c| c.is_empty() || c.len() > 255)
        {
            return Err("trap_communities: at most 16, each 1 to 255 bytes");
        }
        if !(1..=4096).contains(&self.max_tcp_connections) {
            return Err("max_tcp_connections: 1 to 4096");
        }
        if !(1..=self.max_tcp_connections).contains(&self.max_tcp_per_device) {
            return Err("max_tcp_per_device: 1 to max_tcp_connections");
        }
        if !(1..=86_400).contains(&self.tcp_idle_s) {
            return Err("tcp_idle_s: 1 to 86400");
        }
        if !(1..=100_000).contains(&self.max_events_per_minute)
            || !(1..=1_000_000).contains(&self.max_events_per_minute_total)
        {
            return Err(
                "max_events_per_minute: 1 to 100000; max_events_per_minute_total: 1 to 1000000",
            );
        }
        Ok(())
    }

    /// The listed device sending from `ip`, if any (IPv4-mapped IPv6 counts as IPv4).
    pub fn device(&self, ip: std::net::IpAddr) -> Option<&AggregatedDevice> {
        let ip = ip.to_canonical();
        self.devices.iter().find(|d| d.address.to_canonical() == ip)
    }
}

/// Why a node configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid service config {service:?}: {why}")]
pub struct InvalidConfig {
    pub service: String,
    pub why: String,
}

impl NodeConfig {
    /// Checks what both sides rely on: unique names, unique listen addresses, sane caps.
    pub fn validate(&self) -> Result<(), InvalidConfig> {
        let mut names = std::collections::HashSet::new();
        let mut addrs = std::collections::HashSet::new();
        for s in &self.services {
            let bad = |why: &str| InvalidConfig {
                service: s.name.clone(),
                why: why.into(),
            };
            if s.name.is_empty()
                || s.name.len() > 64
                || !s
                    .name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b))
            {
                return Err(bad("name must be 1 to 64 of a-z, A-Z, 0-9, '-', '_'"));
            }
            if !names.insert(&s.name) {
                return Err(bad("duplicate service name"));
            }
            // Port 0 asks the OS for a free port, so two such services never collide.
            if s.enabled && s.listen.port() != 0 && !addrs.insert(s.listen) {
                return Err(bad("another enabled service listens on the same address"));
            }
            match &s.kind {
                ServiceKind::Ssh(o) => {
                    if !o.server_id.starts_with("SSH-2.0-") || o.server_id.len() > 200 {
                        return Err(bad(
                            "server_id must start with SSH-2.0- (at most 200 bytes)",
                        ));
                    }
                    if o.auth_failure_delay_ms > 10_000 || o.max_auth_attempts == 0 {
                        return Err(bad(
                            "auth_failure_delay_ms <= 10000, max_auth_attempts >= 1",
                        ));
                    }
                    o.login.check().map_err(bad)?;
                    if !valid_hostname(&o.hostname) {
                        return Err(bad("hostname: 1 to 64 of a-z, A-Z, 0-9, '-', '.'"));
                    }
                    if !(4096..=MAX_TRANSCRIPT_BYTES).contains(&o.max_transcript_bytes) {
                        return Err(bad("max_transcript_bytes: 4096 to 64 MiB"));
                    }
                }
                ServiceKind::Telnet(o) => {
                    if o.banner.len() > 4096
                        || o.auth_failure_delay_ms > 10_000
                        || o.max_auth_attempts == 0
                    {
                        return Err(bad(
                            "banner <= 4096 bytes, auth_failure_delay_ms <= 10000, max_auth_attempts >= 1",
                        ));
                    }
                    o.login.check().map_err(bad)?;
                    if !valid_hostname(&o.hostname) {
                        return Err(bad("hostname: 1 to 64 of a-z, A-Z, 0-9, '-', '.'"));
                    }
                    if !(4096..=MAX_TRANSCRIPT_BYTES).contains(&o.max_transcript_bytes) {
                        return Err(bad("max_transcript_bytes: 4096 to 64 MiB"));
                    }
                }
                ServiceKind::Banner(o) => {
                    if o.banner.len() > 4096
                        || o.max_capture_bytes as usize > crate::event::MAX_DATA_LEN
                    {
                        return Err(bad("banner <= 4096 bytes, max_capture_bytes <= 4096"));
                    }
                }
                ServiceKind::Ftp(o) => {
                    if o.banner.len() > 200 || !printable(&o.banner) {
                        return Err(bad("banner: at most 200 printable ASCII characters"));
                    }
                    if o.max_upload_bytes == 0
                        || u64::from(o.max_upload_bytes) > crate::capture::DEFAULT_MAX_CAPTURE_BYTES
                        || o.auth_failure_delay_ms > 10_000
                        || o.max_login_failures == 0
                    {
                        return Err(bad(
                            "max_upload_bytes 1 to 64 MiB, auth_failure_delay_ms <= 10000, max_login_failures >= 1",
                        ));
                    }
                }
                ServiceKind::Http(o) => {
                    if o.max_inline_body as usize > crate::event::MAX_DATA_LEN
                        || o.max_body_bytes > 64 * 1024 * 1024
                        || o.server_header.len() > 200
                        || !printable(&o.server_header)
                    {
                        return Err(bad(
                            "max_inline_body <= 4096, max_body_bytes <= 64 MiB, server_header <= 200 printable ASCII characters",
                        ));
                    }
                    // X.509 caps both at 64 characters.
                    if o.cert_common_name.len() > 64
                        || o.cert_organization.len() > 64
                        || o.cert_common_name.contains('\0')
                        || o.cert_organization.contains('\0')
                    {
                        return Err(bad(
                            "cert_common_name and cert_organization: at most 64 bytes each (empty: the node's own)",
                        ));
                    }
                }
                ServiceKind::Redis(o) => {
                    if o.version.is_empty() || o.version.len() > 32 {
                        return Err(bad("version: 1 to 32 bytes"));
                    }
                }
                ServiceKind::Mysql(o) => {
                    // Empty: the persona's MariaDB (see MysqlOptions).
                    if o.version.len() > 64 || o.version.contains('\0') {
                        return Err(bad(
                            "version: at most 64 bytes, no NUL (empty: the node's MariaDB)",
                        ));
                    }
                }
                ServiceKind::Modbus(o) => {
                    if o.holding_registers == 0 || o.coils == 0 {
                        return Err(bad("holding_registers and coils must be at least 1"));
                    }
                }
                ServiceKind::Smtp(o) => {
                    if !valid_hostname(&o.hostname)
                        || !(1024..=64 << 20).contains(&o.max_message_bytes)
                        || !(1..=10_000).contains(&o.max_recipients)
                        || !(1..=100_000).contains(&o.max_commands)
                        || o.auth_failure_delay_ms > 10_000
                    {
                        return Err(bad(
                            "hostname: letters, digits, '-', '.'; max_message_bytes 1 KiB to 64 MiB, max_recipients 1 to 10000, max_commands 1 to 100000, auth_failure_delay_ms <= 10000",
                        ));
                    }
                }
                ServiceKind::Extension(o) => {
                    if s.listen.port() != 0 {
                        return Err(bad("an extension service's listen port must be 0"));
                    }
                    o.check().map_err(bad)?;
                }
                ServiceKind::Detectors(o) => {
                    if s.listen.port() != 0 {
                        return Err(bad("a detectors service's listen port must be 0"));
                    }
                    o.check().map_err(bad)?;
                }
                ServiceKind::Aggregator(o) => {
                    o.check().map_err(bad)?;
                    if o.snmp_traps
                        && o.trap_port != 0
                        && (o.syslog_udp || o.syslog_tcp)
                        && o.trap_port == s.listen.port()
                    {
                        return Err(bad("trap_port must differ from the syslog port (listen)"));
                    }
                }
            }
        }
        for s in &self.services {
            let login = match &s.kind {
                ServiceKind::Telnet(o) => Some(&o.login),
                ServiceKind::Ftp(o) => Some(&o.login),
                ServiceKind::Redis(o) => Some(&o.login),
                _ => None,
            };
            if let Some(l) = login {
                l.check().map_err(|why| InvalidConfig {
                    service: s.name.clone(),
                    why: why.into(),
                })?;
            }
        }
        Ok(())
    }

    pub fn service_mut(&mut self, name: &str) -> Option<&mut ServiceConfig> {
        self.services.iter_mut().find(|s| s.name == name)
    }
}

/// Visible ASCII and spaces only: what may go into a header or a protocol greeting.
fn printable(s: &str) -> bool {
    s.bytes().all(|b| b == b' ' || b.is_ascii_graphic())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ext(ports: Vec<PortRange>) -> NodeConfig {
        NodeConfig {
            services: vec![ServiceConfig {
                name: "ext".into(),
                listen: "0.0.0.0:0".parse().unwrap(),
                enabled: true,
                kind: ServiceKind::Extension(ExtensionOptions {
                    ports,
                    ..Default::default()
                }),
            }],
        }
    }

    #[test]
    fn aggregator_options_are_checked() {
        let dev = |name: &str, ip: &str| AggregatedDevice {
            name: name.into(),
            address: ip.parse().unwrap(),
            kind: String::new(),
        };
        let cfg = |o: AggregatorOptions, port: u16| NodeConfig {
            services: vec![ServiceConfig {
                name: "agg".into(),
                listen: SocketAddr::from(([0, 0, 0, 0], port)),
                enabled: true,
                kind: ServiceKind::Aggregator(o),
            }],
        };
        let good = AggregatorOptions {
            devices: vec![dev("printer-3f", "10.0.0.40"), dev("cam", "10.0.0.41")],
            ..Default::default()
        };
        assert!(cfg(good.clone(), 514).validate().is_ok());
        let bad = |o: AggregatorOptions, port: u16, why: &str| {
            let e = cfg(o, port).validate().unwrap_err();
            assert!(e.why.contains(why), "{e}");
        };
        let mut o = good.clone();
        o.devices.push(dev("printer-3f", "10.0.0.42"));
        bad(o, 514, "same name");
        let mut o = good.clone();
        o.devices.push(dev("other", "::ffff:10.0.0.40"));
        bad(o, 514, "same address");
        let mut o = good.clone();
        o.devices.push(dev("bad name", "10.0.0.43"));
        bad(o, 514, "device name");
        let mut o = good.clone();
        o.devices.push(dev("any", "0.0.0.0"));
        bad(o, 514, "one host");
        let o = AggregatorOptions {
            devices: (0..257)
                .map(|i| {
                    dev(
                        &format!("d{i}"),
                        &format!("10.1.{}.{}", i / 250, i % 250 + 1),
                    )
                })
                .collect(),
            ..Default::default()
        };
        bad(o, 514, "at most 256");
        bad(
            AggregatorOptions {
                trap_port: 514,
                ..good.clone()
            },
            514,
            "trap_port",
        );
        bad(
            AggregatorOptions {
                max_tcp_per_device: 100,
                ..good.clone()
            },
            514,
            "max_tcp_per_device",
        );
        bad(
            AggregatorOptions {
                tcp_idle_s: 0,
                ..good.clone()
            },
            514,
            "tcp_idle_s",
        );
        bad(
            AggregatorOptions {
                syslog_udp: false,
                syslog_tcp: false,
                snmp_traps: false,
                ..good.clone()
            },
            514,
            "at least one",
        );
        assert_eq!(
            good.device("::ffff:10.0.0.41".parse().unwrap())
                .map(|d| d.name.as_str()),
            Some("cam")
        );
        assert!(good.device("10.0.0.99".parse().unwrap()).is_none());
        // Appended: the older kinds keep their wire indices.
        let b = postcard::to_allocvec(&ServiceKind::Aggregator(good)).unwrap();
        assert_eq!(b[0], 11);
    }

    #[test]
    fn remember_parses_units_and_refuses_the_rest() {
        let r = |t: &str| Remember::try_from(t.to_owned()).map(Remember::secs);
        assert_eq!(r("7days"), Ok(7 * 86_400));
        assert_eq!(r("12h"), Ok(43_200));
        assert_eq!(r("30 min"), Ok(1800));
        assert_eq!(r("90s"), Ok(90));
        assert_eq!(r("365d"), Ok(Remember::MAX_SECS));
        for bad in [
            "",
            "0s",
            "366days",
            "7",
            "days",
            "-1d",
            "7weeks",
            "99999999999999999999d",
        ] {
            assert!(r(bad).is_err(), "{bad:?}");
        }
        // Written back in its largest whole unit, and read again the same.
        for (secs, text) in [(604_800, "7days"), (7200, "2h"), (120, "2m"), (61, "61s")] {
            let v = Remember::from_secs(secs).unwrap();
            assert_eq!(String::from(v), text);
            let json = serde_json::to_string(&SshOptions {
                remember: v,
                ..Default::default()
            })
            .unwrap();
            let back: SshOptions = serde_json::from_str(&json).unwrap();
            assert_eq!(back.remember, v);
        }
        let old: SshOptions = serde_json::from_str("{}").unwrap();
        assert_eq!(old.remember, Remember::default());
    }

    #[test]
    fn extension_ports_are_bounded() {
        let r = |start, end| PortRange { start, end };
        assert!(ext(vec![r(8000, 8100), r(9000, 9000)]).validate().is_ok());
        assert!(ext(vec![]).validate().is_err());
        assert!(ext(vec![r(0, 10)]).validate().is_err());
        assert!(ext(vec![r(10, 9)]).validate().is_err());
        assert!(ext(vec![r(1, 65535)]).validate().is_err());
        assert!(ext(vec![r(1000, 1600), r(2000, 2600)]).validate().is_err());
        let o = ExtensionOptions {
            ports: vec![r(5, 7), r(6, 8), r(1, 1)],
            ..Default::default()
        };
        assert_eq!(o.port_list(), vec![1, 5, 6, 7, 8]);
        let mut c = ext(vec![r(1, 2)]);
        c.services[0].listen = "0.0.0.0:80".parse().unwrap();
        assert!(c.validate().is_err());
    }
}
