//! The DNS responder of the end-to-end tests that find cores by `srv:DOMAIN`
//! (`discovery.rs`, `cluster.rs`): netsim's (`honeybee_netsim::dns`: authoritative-only,
//! on 127.0.0.1/UDP, a fixed set of A and SRV records), with the tests' short record
//! syntax over `&'static str` names.

use honeybee_netsim::dns::{Dns, Rr as Record};
use std::net::{Ipv4Addr, SocketAddr};

pub enum Rr {
    A(Ipv4Addr),
    /// priority, weight, port, target
    Srv(u16, u16, u16, &'static str),
}

/// The responder; stops when dropped.
pub struct TestDns {
    pub addr: SocketAddr,
    _dns: Dns,
}

impl TestDns {
    pub fn start(records: Vec<(&'static str, Rr)>) -> TestDns {
        let records = records
            .into_iter()
            .map(|(name, rr)| {
                let rr = match rr {
                    Rr::A(ip) => Record::A(ip),
                    Rr::Srv(priority, weight, port, target) => Record::Srv {
                        priority,
                        weight,
                        port,
                        target: target.to_owned(),
                    },
                };
                (name.to_owned(), rr)
            })
            .collect();
        let dns = Dns::start(records).expect("the tests' DNS responder binds 127.0.0.1");
        TestDns {
            addr: dns.addr,
            _dns: dns,
        }
    }
}
