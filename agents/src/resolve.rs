//! Finding the core: a literal `IP:PORT`, or a DNS name resolved with hickory (A/AAAA,
//! `/etc/hosts` included). Every address found is tried, in order.

use hickory_resolver::TokioResolver;
use std::net::SocketAddr;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ResolveError {
    #[error("core address {0:?} is not HOST:PORT")]
    Syntax(String),
    #[error("cannot resolve {host}: {why}")]
    Lookup { host: String, why: String },
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

/// The socket addresses to try for `core`, best first.
pub async fn resolve(core: &str) -> Result<Vec<SocketAddr>, ResolveError> {
    if let Ok(a) = core.parse::<SocketAddr>() {
        return Ok(vec![a]);
    }
    let (host, port) = split_host_port(core)?;
    if let Ok(ip) = host.parse::<std::net::IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let lookup_err = |why: String| ResolveError::Lookup {
        host: host.clone(),
        why,
    };
    let resolver = TokioResolver::builder_tokio()
        .map_err(|e| lookup_err(e.to_string()))?
        .build()
        .map_err(|e| lookup_err(e.to_string()))?;
    let ips = resolver
        .lookup_ip(host.as_str())
        .await
        .map_err(|e| lookup_err(e.to_string()))?;
    let addrs: Vec<SocketAddr> = ips.iter().map(|ip| SocketAddr::new(ip, port)).collect();
    if addrs.is_empty() {
        return Err(lookup_err("no A or AAAA records".into()));
    }
    Ok(addrs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn literals_and_localhost() {
        assert_eq!(
            resolve("127.0.0.1:7443").await.unwrap(),
            vec!["127.0.0.1:7443".parse().unwrap()]
        );
        assert_eq!(
            resolve("[::1]:7443").await.unwrap(),
            vec!["[::1]:7443".parse().unwrap()]
        );
        let local = resolve("localhost:7443").await.unwrap();
        assert!(
            local
                .iter()
                .all(|a| a.ip().is_loopback() && a.port() == 7443),
            "{local:?}"
        );
        assert!(resolve("nocolon").await.is_err());
        assert!(resolve("host:99999").await.is_err());
    }
}
