//! Profiles as a node runs them: each profile's service set starts whole on one node
//! (every service running, none in error), the machine behind it is one machine (the
//! ICS profile's web page names the device its Modbus service identifies), and
//! `honeybee up`'s default is the `linux-server` profile.

mod shell_common;
use honeybee_proto::config::{NodeConfig, ServiceKind};
use honeybee_proto::profile::Profile;
use shell_common::*;
use std::net::{IpAddr, SocketAddr};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The profile's services on loopback, each on a free port.
fn on_loopback(p: Profile) -> NodeConfig {
    let mut services = p.services(IpAddr::from([127, 0, 0, 1]));
    for s in &mut services {
        s.listen.set_port(0);
    }
    NodeConfig { services }
}

async fn get(addr: SocketAddr, path: &str) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(WAIT, s.read_to_end(&mut out))
        .await
        .unwrap()
        .unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

fn listen(run: &Running, name: &str) -> SocketAddr {
    run.mgr
        .status()
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no service {name}"))
        .listen
        .parse()
        .unwrap()
}

#[tokio::test]
async fn every_profile_starts_whole() {
    assert_eq!(Profile::DEFAULT, Profile::LinuxServer, "`up`'s default");
    for p in Profile::ALL {
        let dir = tempfile::tempdir().unwrap();
        let config = on_loopback(p);
        let mut run = start(dir.path(), &config).await;
        let status = run.mgr.status();
        assert_eq!(status.len(), config.services.len(), "{p}");
        for s in &status {
            assert!(s.running && s.error.is_none(), "{p}: {s:?}");
        }
        let kinds: Vec<&str> = status.iter().map(|s| s.kind.as_str()).collect();
        match p {
            Profile::LinuxServer => {
                assert_eq!(kinds, ["ssh", "http", "http", "ftp", "redis", "mysql"]);
                // A Debian web server: Apache's Server header on its site.
                let page = get(listen(&run, "http"), "/").await;
                assert!(page.contains("Server: Apache/2.4.62 (Debian)"), "{page}");
            }
            Profile::Router => {
                assert_eq!(kinds, ["telnet", "http"]);
                let page = get(listen(&run, "http"), "/").await;
                assert!(page.contains("Server: lighttpd/1.4.69"), "{page}");
                assert!(page.contains("Firmware Version: "), "{page}");
            }
            Profile::Ics => {
                assert_eq!(kinds, ["modbus", "http"]);
                // The controller's page names the device Modbus identifies.
                let ServiceKind::Modbus(m) = &config.services[0].kind else {
                    panic!("ics starts with modbus");
                };
                let page = get(listen(&run, "http"), "/").await;
                for want in [&m.vendor, &m.product_code, &m.revision] {
                    assert!(page.contains(want.as_str()), "{want}: {page}");
                }
            }
            Profile::All => assert_eq!(kinds.len(), 10),
        }
        run.mgr.shutdown().await;
    }
}
