//! Subscription filters, compiled once: sets for kinds, services and nodes, required
//! labels, and source prefixes matched without allocating.

use crate::bus::BusEvent;
use honeybee_proto::module::EventFilter;
use std::collections::HashSet;
use std::net::IpAddr;

/// Most entries a filter may list, in total.
pub const MAX_FILTER_ENTRIES: usize = 1024;

#[derive(Debug, Clone, Default)]
pub struct CompiledFilter {
    kinds: HashSet<String>,
    services: HashSet<String>,
    nodes: HashSet<String>,
    labels: Vec<(String, String)>,
    sources: Vec<(IpAddr, u8)>,
}

/// Parses `203.0.113.7`, `203.0.113.0/24` or `2001:db8::/32`.
pub fn parse_prefix(s: &str) -> Result<(IpAddr, u8), String> {
    let (ip, len) = match s.split_once('/') {
        Some((ip, len)) => (ip, Some(len)),
        None => (s, None),
    };
    let ip: IpAddr = ip
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not an IP address or prefix"))?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let len = match len {
        Some(l) => l
            .trim()
            .parse::<u8>()
            .ok()
            .filter(|l| *l <= max)
            .ok_or_else(|| format!("{s:?}: prefix length must be 0-{max}"))?,
        None => max,
    };
    Ok((ip, len))
}

fn in_prefix(ip: IpAddr, (net, len): (IpAddr, u8)) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(b)) => {
            let mask = if len == 0 {
                0
            } else {
                u32::MAX << (32 - len as u32)
            };
            u32::from(a) & mask == u32::from(b) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(b)) => {
            let mask = if len == 0 {
                0
            } else {
                u128::MAX << (128 - len as u32)
            };
            u128::from(a) & mask == u128::from(b) & mask
        }
        _ => false,
    }
}

impl CompiledFilter {
    pub fn compile(f: &EventFilter) -> Result<CompiledFilter, String> {
        let entries =
            f.kinds.len() + f.services.len() + f.nodes.len() + f.labels.len() + f.sources.len();
        if entries > MAX_FILTER_ENTRIES {
            return Err(format!(
                "filter has {entries} entries; at most {MAX_FILTER_ENTRIES}"
            ));
        }
        for k in &f.kinds {
            if !honeybee_proto::event::EventKind::NAMES.contains(&k.as_str()) {
                return Err(format!(
                    "unknown event kind {k:?}; known: {}",
                    honeybee_proto::event::EventKind::NAMES.join(", ")
                ));
            }
        }
        Ok(CompiledFilter {
            kinds: f.kinds.iter().cloned().collect(),
            services: f.services.iter().cloned().collect(),
            nodes: f.nodes.iter().cloned().collect(),
            labels: f
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            sources: f
                .sources
                .iter()
                .map(|s| parse_prefix(s))
                .collect::<Result<_, _>>()?,
        })
    }

    pub fn matches(&self, e: &BusEvent) -> bool {
        (self.kinds.is_empty() || self.kinds.contains(e.kind))
            && (self.services.is_empty() || self.services.contains(&e.service))
            && (self.nodes.is_empty() || self.nodes.contains(e.node.as_str()))
            && self
                .labels
                .iter()
                .all(|(k, v)| e.labels.iter().any(|(lk, lv)| lk == k && lv == v))
            && (self.sources.is_empty()
                || e.src_ip
                    .is_some_and(|ip| self.sources.iter().any(|p| in_prefix(ip, *p))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes() {
        let p = parse_prefix("10.0.0.0/8").unwrap();
        assert!(in_prefix("10.1.2.3".parse().unwrap(), p));
        assert!(!in_prefix("11.1.2.3".parse().unwrap(), p));
        assert!(in_prefix(
            "2001:db8::1".parse().unwrap(),
            parse_prefix("2001:db8::/32").unwrap()
        ));
        assert!(!in_prefix(
            "10.0.0.1".parse().unwrap(),
            parse_prefix("::/0").unwrap()
        ));
        assert!(in_prefix(
            "192.0.2.1".parse().unwrap(),
            parse_prefix("0.0.0.0/0").unwrap()
        ));
        assert!(parse_prefix("10.0.0.0/33").is_err());
        assert!(parse_prefix("nope").is_err());
    }
}
