//! Finding the core. A core address is one of:
//!
//! - `IP:PORT` or `[IPv6]:PORT`: used as is;
//! - `HOST:PORT`: the host's A/AAAA records (`/etc/hosts` included), every address tried
//!   in order;
//! - `srv:DOMAIN`: the SRV records of `_honeybee._udp.DOMAIN` (RFC 2782): targets in
//!   priority order, weighted-random within a priority, each target's A/AAAA addresses in
//!   turn, so the caller fails over down the list. A domain with no such SRV record falls
//!   back to its own A/AAAA records on port [`DEFAULT_PORT`].
//!
//! `srv:` followed by digits only is the host `srv` and a port, as before. Queries go to
//! the configured DNS server (`dns_server` in agent.toml, else [`DNS_SERVER_ENV`]) or, when
//! there is none, to the system's resolvers (`/etc/resolv.conf`).

use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::RData;
use hickory_resolver::{ResolverBuilder, TokioResolver};
use rand::Rng;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// The prefix that asks for SRV discovery.
pub const SRV_PREFIX: &str = "srv:";
/// The service and protocol labels put in front of the domain of `srv:DOMAIN`.
pub const SRV_SERVICE: &str = "_honeybee._udp";
/// The core's port when a domain without SRV records falls back to A/AAAA.
pub const DEFAULT_PORT: u16 = 7443;
/// `IP:PORT` of a DNS server to ask instead of the system's, when agent.toml sets none.
pub const DNS_SERVER_ENV: &str = "HONEYBEE_DNS_SERVER";

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ResolveError {
    #[error("core address {0:?} is not HOST:PORT or srv:DOMAIN")]
    Syntax(String),
    #[error("cannot resolve {host}: {why}")]
    Lookup { host: String, why: String },
    #[error("{DNS_SERVER_ENV}={0:?} is not IP:PORT")]
    DnsServer(String),
}

/// A core address, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CoreAddr {
    Socket(SocketAddr),
    Host {
        host: String,
        port: u16,
    },
    /// `srv:DOMAIN`; holds DOMAIN.
    Srv(String),
}

impl CoreAddr {
    pub fn parse(core: &str) -> Result<CoreAddr, ResolveError> {
        if let Ok(a) = core.parse::<SocketAddr>() {
            return Ok(CoreAddr::Socket(a));
        }
        if let Some(domain) = core.strip_prefix(SRV_PREFIX)
            && (domain.is_empty() || !domain.bytes().all(|b| b.is_ascii_digit()))
        {
            let plain = domain.strip_suffix('.').unwrap_or(domain);
            if plain.is_empty() || plain.contains([':', '/', ' ']) || plain.starts_with('.') {
                return Err(ResolveError::Syntax(core.to_owned()));
            }
            return Ok(CoreAddr::Srv(plain.to_owned()));
        }
        let (host, port) = split_host_port(core)?;
        Ok(match host.parse::<IpAddr>() {
            Ok(ip) => CoreAddr::Socket(SocketAddr::new(ip, port)),
            Err(_) => CoreAddr::Host { host, port },
        })
    }
}

/// Splits `host:port`, accepting `[v6]:port`.
pub fn split_host_port(s: &str) -> Result<(String, u16), ResolveError> {
    let bad = || ResolveError::Syntax(s.to_owned());
    let (host, port) = s.rsplit_once(':').ok_or_else(bad)?;
    let port: u16 = port.parse().map_err(|_| bad())?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(bad());
    }
    Ok((host.to_owned(), port))
}

/// One SRV record's target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SrvTarget {
    pub priority: u16,
    pub weight: u16,
    pub port: u16,
    /// The target host name, fully qualified (ends with `.`).
    pub target: String,
}

/// RFC 2782's order: lowest priority first; within a priority, repeatedly pick one record
/// at random with probability proportional to its weight (zero-weight records have a
/// small chance, and go first among themselves before the weighted draw as the RFC says).
pub fn order_srv(mut records: Vec<SrvTarget>, rng: &mut impl Rng) -> Vec<SrvTarget> {
    records.sort_by_key(|r| r.priority);
    let mut out = Vec::with_capacity(records.len());
    let mut rest = records.as_slice();
    while let Some(first) = rest.first() {
        let n = rest
            .iter()
            .take_while(|r| r.priority == first.priority)
            .count();
        let (group, tail) = rest.split_at(n);
        rest = tail;
        // Zero weights first, so they can be picked (RFC 2782, "Usage rules").
        let (zero, weighted): (Vec<&SrvTarget>, Vec<&SrvTarget>) =
            group.iter().partition(|r| r.weight == 0);
        let mut group = zero;
        group.extend(weighted);
        while !group.is_empty() {
            let total: u32 = group.iter().map(|r| u32::from(r.weight)).sum();
            let pick = rng.random_range(0..=total);
            let mut running = 0u32;
            let i = group
                .iter()
                .position(|r| {
                    running += u32::from(r.weight);
                    running >= pick
                })
                .unwrap_or(group.len() - 1);
            out.push(group.remove(i).clone());
        }
    }
    out
}

/// The DNS server to ask: `configured` (agent.toml) if set, else [`DNS_SERVER_ENV`].
pub fn dns_server(configured: Option<SocketAddr>) -> Result<Option<SocketAddr>, ResolveError> {
    if configured.is_some() {
        return Ok(configured);
    }
    match std::env::var(DNS_SERVER_ENV) {
        Ok(v) if !v.trim().is_empty() => v
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| ResolveError::DnsServer(v)),
        _ => Ok(None),
    }
}

/// A resolver asking only `server` (UDP, TCP on truncation), or the system's resolvers.
pub fn resolver(server: Option<SocketAddr>) -> Result<TokioResolver, ResolveError> {
    let err = |e: String| ResolveError::Lookup {
        host: server.map_or("system resolver".into(), |s| s.to_string()),
        why: e,
    };
    let builder: ResolverBuilder<TokioRuntimeProvider> = match server {
        Some(s) => {
            let conns = [ConnectionConfig::udp(), ConnectionConfig::tcp()]
                .into_iter()
                .map(|mut c| {
                    c.port = s.port();
                    c
                })
                .collect();
            let ns = NameServerConfig::new(s.ip(), true, conns);
            TokioResolver::builder_with_config(
                ResolverConfig::from_name_servers(vec![ns]),
                TokioRuntimeProvider::default(),
            )
        }
        None => TokioResolver::builder_tokio().map_err(|e| err(e.to_string()))?,
    };
    builder.build().map_err(|e| err(e.to_string()))
}

/// The socket addresses to try for `core`, best first. `dns_server` is agent.toml's
/// setting; see [`dns_server`] for the fallbacks.
pub async fn resolve(
    core: &str,
    dns_server: Option<SocketAddr>,
) -> Result<Vec<SocketAddr>, ResolveError> {
    let addr = CoreAddr::parse(core)?;
    if let CoreAddr::Socket(a) = addr {
        return Ok(vec![a]);
    }
    let r = resolver(self::dns_server(dns_server)?)?;
    resolve_with(&r, &addr).await
}

/// [`resolve`] with a resolver the caller built (tests point it at their own server).
pub async fn resolve_with(
    r: &TokioResolver,
    addr: &CoreAddr,
) -> Result<Vec<SocketAddr>, ResolveError> {
    match addr {
        CoreAddr::Socket(a) => Ok(vec![*a]),
        CoreAddr::Host { host, port } => lookup_host(r, host, *port).await,
        CoreAddr::Srv(domain) => {
            let name = format!("{SRV_SERVICE}.{domain}.");
            let lookup_err = |why: String| ResolveError::Lookup {
                host: name.clone(),
                why,
            };
            let records = match r.srv_lookup(name.as_str()).await {
                Ok(l) => l
                    .answers()
                    .iter()
                    .filter_map(|rec| match &rec.data {
                        RData::SRV(s) => Some(SrvTarget {
                            priority: s.priority,
                            weight: s.weight,
                            port: s.port,
                            target: s.target.to_ascii(),
                        }),
                        _ => None,
                    })
                    .collect::<Vec<_>>(),
                Err(e) if e.is_no_records_found() || e.is_nx_domain() => Vec::new(),
                Err(e) => return Err(lookup_err(e.to_string())),
            };
            if records.is_empty() {
                tracing::debug!(%name, "no SRV records; trying A/AAAA of the domain");
                return lookup_host(r, &format!("{domain}."), DEFAULT_PORT).await;
            }
            // A lone "." target: the service is decidedly not available (RFC 2782).
            if records.len() == 1 && records[0].target == "." {
                return Err(lookup_err("SRV says the service is not available".into()));
            }
            let mut out = Vec::new();
            let mut last = String::new();
            let ordered = order_srv(records, &mut rand::rng());
            for t in ordered {
                if t.target == "." {
                    continue;
                }
                match lookup_host(r, &t.target, t.port).await {
                    Ok(addrs) => {
                        for a in addrs {
                            if !out.contains(&a) {
                                out.push(a);
                            }
                        }
                    }
                    Err(e) => {
                        tracing::debug!(target = %t.target, error = %e, "SRV target unresolved");
                        last = e.to_string();
                    }
                }
            }
            if out.is_empty() {
                return Err(lookup_err(format!("no SRV target resolved: {last}")));
            }
            Ok(out)
        }
    }
}

async fn lookup_host(
    r: &TokioResolver,
    host: &str,
    port: u16,
) -> Result<Vec<SocketAddr>, ResolveError> {
    let lookup_err = |why: String| ResolveError::Lookup {
        host: host.to_owned(),
        why,
    };
    let ips = r
        .lookup_ip(host)
        .await
        .map_err(|e| lookup_err(e.to_string()))?;
    let addrs: Vec<SocketAddr> = ips.iter().map(|ip| SocketAddr::new(ip, port)).collect();
    if addrs.is_empty() {
        return Err(lookup_err("no A or AAAA records".into()));
    }
    Ok(addrs)
}

/// How long an address whose core went away without a word (no clean shutdown with a
/// come-back: a crash, a cut link) is tried after the others.
pub const DEMOTE_LOST_FOR: Duration = Duration::from_secs(120);

/// Moves `lost` after every other address, the others keeping their order. A core that
/// just vanished is likely still down, and a dead address costs a whole handshake deadline
/// (10 s) before the next one is tried: with several cores (SRV), its agents go straight to
/// the next. With one address, or `lost` not among them, nothing changes.
pub fn demote(addrs: &mut [SocketAddr], lost: SocketAddr) {
    if let Some(i) = addrs.iter().position(|a| *a == lost) {
        addrs[i..].rotate_left(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lost_address_is_tried_last_and_the_others_keep_their_order() {
        let a = |p: u16| SocketAddr::from(([127, 0, 0, 1], p));
        let mut addrs = vec![a(1), a(2), a(3), a(4)];
        demote(&mut addrs, a(2));
        assert_eq!(addrs, vec![a(1), a(3), a(4), a(2)]);
        demote(&mut addrs, a(1));
        assert_eq!(addrs, vec![a(3), a(4), a(2), a(1)]);
        // Not listed (the records changed), or the only address: nothing moves.
        demote(&mut addrs, a(9));
        assert_eq!(addrs, vec![a(3), a(4), a(2), a(1)]);
        let mut one = vec![a(1)];
        demote(&mut one, a(1));
        assert_eq!(one, vec![a(1)]);
        let mut none: Vec<SocketAddr> = Vec::new();
        demote(&mut none, a(1));
        assert!(none.is_empty());
    }
    use hickory_server::Server;
    use hickory_server::proto::rr::rdata::{A, SOA, SRV};
    use hickory_server::proto::rr::{LowerName, Name, Record};
    use hickory_server::store::in_memory::InMemoryZoneHandler;
    use hickory_server::zone_handler::{AxfrPolicy, Catalog, ZoneType};
    use rand::SeedableRng;
    use std::sync::Arc;

    #[tokio::test]
    async fn literals_and_localhost() {
        assert_eq!(
            resolve("127.0.0.1:7443", None).await.unwrap(),
            vec!["127.0.0.1:7443".parse().unwrap()]
        );
        assert_eq!(
            resolve("[::1]:7443", None).await.unwrap(),
            vec!["[::1]:7443".parse().unwrap()]
        );
        let local = resolve("localhost:7443", None).await.unwrap();
        assert!(
            local
                .iter()
                .all(|a| a.ip().is_loopback() && a.port() == 7443),
            "{local:?}"
        );
        assert!(resolve("nocolon", None).await.is_err());
        assert!(resolve("host:99999", None).await.is_err());
    }

    #[test]
    fn parse_forms() {
        assert_eq!(
            CoreAddr::parse("srv:example.org").unwrap(),
            CoreAddr::Srv("example.org".into())
        );
        assert_eq!(
            CoreAddr::parse("srv:example.org.").unwrap(),
            CoreAddr::Srv("example.org".into())
        );
        // A host called `srv` and a port is still a host and a port.
        assert_eq!(
            CoreAddr::parse("srv:7443").unwrap(),
            CoreAddr::Host {
                host: "srv".into(),
                port: 7443
            }
        );
        assert_eq!(
            CoreAddr::parse("core.example.org:7443").unwrap(),
            CoreAddr::Host {
                host: "core.example.org".into(),
                port: 7443
            }
        );
        for bad in ["srv:", "srv:a:1", "srv:.x", "example.org"] {
            assert!(CoreAddr::parse(bad).is_err(), "{bad}");
        }
    }

    fn t(priority: u16, weight: u16, target: &str) -> SrvTarget {
        SrvTarget {
            priority,
            weight,
            port: 7443,
            target: target.into(),
        }
    }

    #[test]
    fn srv_priority_then_weight() {
        let records = vec![
            t(20, 0, "backup."),
            t(10, 90, "heavy."),
            t(10, 10, "light."),
            t(5, 0, "first."),
            t(30, 1, "last."),
        ];
        let mut heavy_first = 0;
        let mut rng = rand::rngs::StdRng::seed_from_u64(42);
        for _ in 0..1000 {
            let order: Vec<String> = order_srv(records.clone(), &mut rng)
                .into_iter()
                .map(|r| r.target)
                .collect();
            assert_eq!(order.len(), 5);
            assert_eq!(order[0], "first.");
            assert!(order[1..3].contains(&"heavy.".to_string()));
            assert!(order[1..3].contains(&"light.".to_string()));
            assert_eq!(order[3], "backup.");
            assert_eq!(order[4], "last.");
            if order[1] == "heavy." {
                heavy_first += 1;
            }
        }
        // Weight 90 against 10: the heavy target leads about nine times in ten.
        assert!((850..=950).contains(&heavy_first), "{heavy_first}");

        // Same seed, same order: the draw depends only on the generator.
        let a = order_srv(records.clone(), &mut rand::rngs::StdRng::seed_from_u64(7));
        let b = order_srv(records.clone(), &mut rand::rngs::StdRng::seed_from_u64(7));
        assert_eq!(a, b);

        // All-zero weights within a priority: every record still comes out once.
        let zeros = vec![t(1, 0, "a."), t(1, 0, "b."), t(1, 0, "c.")];
        let mut got: Vec<String> = order_srv(zeros, &mut rng)
            .into_iter()
            .map(|r| r.target)
            .collect();
        got.sort();
        assert_eq!(got, ["a.", "b.", "c."]);
        assert!(order_srv(Vec::new(), &mut rng).is_empty());
    }

    /// An authoritative server for `zone.test.` on 127.0.0.1:<ephemeral>/UDP; stops on drop.
    pub(crate) struct TestDns {
        pub addr: SocketAddr,
        _server: Server<Catalog>,
    }

    pub(crate) async fn test_dns(records: Vec<Record>) -> TestDns {
        let origin = Name::from_ascii("zone.test.").unwrap();
        let mut zone: InMemoryZoneHandler =
            InMemoryZoneHandler::empty(origin.clone(), ZoneType::Primary, AxfrPolicy::Deny);
        let soa = SOA::new(
            Name::from_ascii("ns.zone.test.").unwrap(),
            Name::from_ascii("admin.zone.test.").unwrap(),
            1,
            3600,
            600,
            86400,
            5,
        );
        zone.upsert_mut(Record::from_rdata(origin.clone(), 60, RData::SOA(soa)), 1);
        for r in records {
            assert!(zone.upsert_mut(r, 1));
        }
        let mut catalog = Catalog::new();
        catalog.upsert(LowerName::new(&origin), vec![Arc::new(zone)]);
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap();
        let mut server = Server::new(catalog);
        server.register_socket(socket);
        TestDns {
            addr,
            _server: server,
        }
    }

    fn srv(name: &str, priority: u16, weight: u16, port: u16, target: &str) -> Record {
        Record::from_rdata(
            Name::from_ascii(name).unwrap(),
            60,
            RData::SRV(SRV::new(
                priority,
                weight,
                port,
                Name::from_ascii(target).unwrap(),
            )),
        )
    }

    fn a(name: &str, ip: [u8; 4]) -> Record {
        Record::from_rdata(
            Name::from_ascii(name).unwrap(),
            60,
            RData::A(A::from(std::net::Ipv4Addr::from(ip))),
        )
    }

    async fn bounded(
        f: impl Future<Output = Result<Vec<SocketAddr>, ResolveError>>,
    ) -> Result<Vec<SocketAddr>, ResolveError> {
        tokio::time::timeout(std::time::Duration::from_secs(20), f)
            .await
            .expect("lookup finished in time")
    }

    #[tokio::test]
    async fn srv_lookup_against_a_local_server() {
        let dns = test_dns(vec![
            srv("_honeybee._udp.zone.test.", 20, 0, 7002, "b.zone.test."),
            srv("_honeybee._udp.zone.test.", 10, 0, 7001, "a.zone.test."),
            srv(
                "_honeybee._udp.zone.test.",
                30,
                0,
                7003,
                "nowhere.zone.test.",
            ),
            a("a.zone.test.", [127, 0, 0, 1]),
            a("b.zone.test.", [127, 0, 0, 2]),
            a("zone.test.", [127, 0, 0, 9]),
            a("plain.zone.test.", [127, 0, 0, 3]),
        ])
        .await;
        let r = resolver(Some(dns.addr)).unwrap();

        // SRV: priority order, each target's addresses with the record's port; a target
        // without addresses is skipped.
        let got = bounded(resolve_with(&r, &CoreAddr::parse("srv:zone.test").unwrap())).await;
        assert_eq!(
            got.unwrap(),
            vec![
                "127.0.0.1:7001".parse::<SocketAddr>().unwrap(),
                "127.0.0.2:7002".parse().unwrap()
            ]
        );
        // The public entry point with the server injected gives the same answer.
        let got = bounded(resolve("srv:zone.test.", Some(dns.addr))).await;
        assert_eq!(got.unwrap()[0], "127.0.0.1:7001".parse().unwrap());

        // HOST:PORT keeps plain A/AAAA behaviour.
        let got = bounded(resolve("plain.zone.test:7443", Some(dns.addr))).await;
        assert_eq!(got.unwrap(), vec!["127.0.0.3:7443".parse().unwrap()]);
    }

    #[tokio::test]
    async fn srv_missing_falls_back_to_a_records() {
        let dns = test_dns(vec![
            a("nosrv.zone.test.", [127, 0, 0, 4]),
            srv("_honeybee._udp.down.zone.test.", 0, 0, 0, "."),
        ])
        .await;
        // No SRV record: the domain's own A record on the default port.
        let got = bounded(resolve("srv:nosrv.zone.test", Some(dns.addr))).await;
        assert_eq!(
            got.unwrap(),
            vec![SocketAddr::new([127, 0, 0, 4].into(), DEFAULT_PORT)]
        );
        // Neither SRV nor A: an error naming the domain.
        let err = bounded(resolve("srv:absent.zone.test", Some(dns.addr)))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("absent.zone.test"), "{err}");
        // SRV target "." means the service is not offered there.
        let err = bounded(resolve("srv:down.zone.test", Some(dns.addr)))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("not available"), "{err}");
    }
}
