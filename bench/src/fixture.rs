//! Test deployments for the benchmarks: a real core in a temp data directory on loopback,
//! identities enrolled through the agent's real enrolment path, and the QUIC configs
//! (agent-side client, bare-quinn server) that both the core and the baselines use.

use anyhow::{Context, Result, anyhow, bail};
use honeybee_core::Core;
use honeybee_core::init::{InitOptions, init_with_store};
use honeybee_pki::keys::KeyPair;
use honeybee_pki::revocation::RevocationList;
use honeybee_proto::admin::TokenSpec;
use honeybee_proto::capture::CaptureHeader;
use honeybee_proto::codec::{self, FrameLimit};
use honeybee_proto::control::{AgentMsg, CoreMsg, Hello, NodeMode};
use honeybee_proto::{Role, alpn};
use rustls::pki_types::CertificateDer;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The only address anything here binds or sends to.
pub const LOOPBACK: Ipv4Addr = Ipv4Addr::LOCALHOST;
const TRUST_DOMAIN: &str = "bench.honeybee";

/// A core data directory (kept after the core stops, so baselines can reuse its
/// certificates) and the core running on it. The temp dir is removed on drop.
pub struct Deployment {
    pub dir: tempfile::TempDir,
    pub core: Option<Core>,
    pub addr: SocketAddr,
    enrolled: usize,
}

/// What an agent needs to connect: its QUIC client config (mTLS with its enrolled cert).
#[derive(Clone)]
pub struct AgentId {
    pub quic: quinn::ClientConfig,
}

impl Deployment {
    /// `core init` on a free loopback port, then starts the core in this process.
    pub async fn start() -> Result<Deployment> {
        Deployment::start_opts(false, None, None).await
    }

    /// As `start`, with the core's `[store]` set to `store` (a PostgreSQL database).
    pub async fn start_with_store(store: honeybee_core::config::RawStore) -> Result<Deployment> {
        Deployment::start_opts(false, None, Some(store)).await
    }

    /// As `start`, with `services` (`[[default_services]]` tables in core.toml syntax) as
    /// the service list every newly enrolled node receives, instead of `core init`'s.
    pub async fn start_with_services(services: &str) -> Result<Deployment> {
        Deployment::start_opts(false, Some(services), None).await
    }

    /// As `start`, with the module TCP shim listening on an ephemeral loopback port
    /// (`Shared::shim_addr`).
    pub async fn start_with_shim() -> Result<Deployment> {
        Deployment::start_opts(true, None, None).await
    }

    async fn start_opts(
        shim: bool,
        services: Option<&str>,
        store: Option<honeybee_core::config::RawStore>,
    ) -> Result<Deployment> {
        honeybee_pki::install_crypto_provider();
        let dir = tempfile::Builder::new()
            .prefix("honeybee-bench-")
            .tempdir()?;
        let port = std::net::UdpSocket::bind((LOOPBACK, 0))?
            .local_addr()?
            .port();
        let addr = SocketAddr::from((LOOPBACK, port));
        let core_dir = dir.path().join("core");
        init_with_store(
            &core_dir,
            &InitOptions {
                trust_domain: TRUST_DOMAIN.into(),
                listen: addr,
                advertise: None,
            },
            store.unwrap_or_default(),
        )
        .context("core init")?;
        // The module TCP shim has a fixed default port, which would clash with a running
        // core or a parallel test: off, or on an ephemeral loopback port.
        let cfg_path = core_dir.join("core.toml");
        let shim_line = if shim {
            "shim_listen = \"127.0.0.1:0\""
        } else {
            "shim_listen = \"\""
        };
        let mut in_services = false;
        let mut cfg = std::fs::read_to_string(&cfg_path)?
            .lines()
            .filter_map(|l| {
                // Drop init's `[[default_services]]` tables when replacing them.
                let t = l.trim_start();
                if t.starts_with('[') {
                    in_services = services.is_some() && t.starts_with("[[default_services]]");
                }
                if in_services {
                    None
                } else if t.starts_with("shim_listen") {
                    Some(shim_line)
                } else {
                    Some(l)
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        if let Some(services) = services {
            cfg = format!("{cfg}\n\n{services}");
        }
        std::fs::write(&cfg_path, cfg + "\n")?;
        let core = Core::start(&core_dir).await.context("core start")?;
        Ok(Deployment {
            dir,
            core: Some(core),
            addr,
            enrolled: 0,
        })
    }

    pub fn core_dir(&self) -> PathBuf {
        self.dir.path().join("core")
    }

    pub fn core(&self) -> Result<&Core> {
        self.core
            .as_ref()
            .ok_or_else(|| anyhow!("core is not running"))
    }

    /// Creates a token through the core's own token path.
    pub async fn token(&self, name: &str, uses: u32) -> Result<String> {
        let spec = TokenSpec {
            role: Role::Agent,
            name: name.into(),
            ttl_s: 3600,
            uses,
            labels: vec![],
        };
        let (_, line) = self
            .core()?
            .shared()
            .create_token(&spec, "bench")
            .await
            .map_err(|e| anyhow!("token create: {e}"))?;
        Ok(line)
    }

    /// A fresh directory for one enrolling agent.
    pub fn agent_dir(&mut self) -> PathBuf {
        self.enrolled += 1;
        self.dir
            .path()
            .join("agents")
            .join(format!("a{:05}", self.enrolled))
    }

    /// Enrols `n` agents through `honeybee_agent::enroll::enroll` with one multi-use token
    /// and returns their connection identities.
    pub async fn enrol_agents(&mut self, n: usize) -> Result<Vec<AgentId>> {
        let token = self.token("bench-agent", n as u32).await?;
        let mut ids = Vec::with_capacity(n);
        for _ in 0..n {
            let dir = self.agent_dir();
            honeybee_agent::enroll::enroll(&token, &dir)
                .await
                .map_err(|e| anyhow!("enrol: {e}"))?;
            ids.push(agent_id(&dir)?);
        }
        Ok(ids)
    }

    /// Stops the core; the data directory stays until the deployment drops.
    pub async fn stop_core(&mut self) {
        if let Some(core) = self.core.take() {
            core.shutdown().await;
        }
    }

    /// The CA pin that enrolment tokens carry.
    pub fn ca_pin(&self) -> Result<[u8; 32]> {
        let ca = std::fs::read(self.core_dir().join("pki/ca.crt"))?;
        let der = first_cert(&String::from_utf8(ca)?)?;
        honeybee_pki::identity::spki_pin(&der).map_err(|e| anyhow!("ca pin: {e}"))
    }

    /// A rustls server config with the core's certificate, key, CA and client verifier:
    /// what the baselines listen with, so TLS work is the same as the core's.
    pub fn server_tls(&self, alpns: &[&[u8]]) -> Result<rustls::ServerConfig> {
        let pki = self.core_dir().join("pki");
        let read =
            |f: &str| std::fs::read_to_string(pki.join(f)).with_context(|| format!("read pki/{f}"));
        let ca = first_cert(&read("ca.crt")?)?;
        let cert = first_cert(&read("core.crt")?)?;
        let key = KeyPair::from_pem(&read("core.key")?).map_err(|e| anyhow!("core key: {e}"))?;
        honeybee_pki::tls::server_config(
            ca.as_ref(),
            vec![cert, ca.clone()],
            key.private_key_der(),
            RevocationList::new(),
            alpns,
        )
        .map_err(|e| anyhow!("server tls: {e}"))
    }

    /// A bare quinn server endpoint on loopback with the core's TLS and transport settings.
    /// The core starts every connection with the small limits of an unauthenticated one
    /// and raises them once the ALPN and role are checked; a bare server for node traffic
    /// has no such step, so it gets a node's limits from the start.
    pub fn baseline_endpoint(&self, alpns: &[&[u8]]) -> Result<quinn::Endpoint> {
        use honeybee_core::endpoint::{AlpnLimits, server_transport_config};
        let mut cfg = honeybee_core::endpoint::server_config(self.server_tls(alpns)?, 64)
            .map_err(|e| anyhow!(e))?;
        if alpns.contains(&alpn::NODE) {
            let node = AlpnLimits::node(64);
            let mut t = server_transport_config();
            t.max_concurrent_bidi_streams(node.bidi_streams.into());
            t.max_concurrent_uni_streams(node.uni_streams.into());
            t.receive_window(node.receive_window.into());
            cfg.transport_config(std::sync::Arc::new(t));
        }
        Ok(quinn::Endpoint::server(cfg, (LOOPBACK, 0).into())?)
    }
}

fn first_cert(pem: &str) -> Result<CertificateDer<'static>> {
    honeybee_pki::files::pem_to_der_certs(pem)
        .map_err(|e| anyhow!("pem: {e}"))?
        .into_iter()
        .next()
        .ok_or_else(|| anyhow!("no certificate in PEM"))
}

/// The QUIC client config an agent builds from its enrolled directory (same calls as
/// `honeybee agent run`).
pub fn agent_id(dir: &Path) -> Result<AgentId> {
    let paths = honeybee_agent::config::AgentPaths::new(dir);
    let (ca, cert, key) = honeybee_agent::enroll::load_identity(&paths).map_err(|e| anyhow!(e))?;
    let tls = honeybee_pki::tls::client_config(
        &ca,
        vec![cert.into()],
        key.private_key_der(),
        Role::Core,
        alpn::NODE,
    )
    .map_err(|e| anyhow!("client tls: {e}"))?;
    let quic = honeybee_agent::transport::client_config(tls).map_err(|e| anyhow!(e))?;
    Ok(AgentId { quic })
}

/// A client endpoint of its own (as each real agent has) on loopback.
pub fn client_endpoint() -> Result<quinn::Endpoint> {
    Ok(quinn::Endpoint::client((LOOPBACK, 0).into())?)
}

/// Connects as an agent and completes hello → Welcome. Returns the connection, the
/// control stream halves and the `last_seq` the server reported.
pub async fn connect_agent(
    ep: &quinn::Endpoint,
    id: &AgentId,
    addr: SocketAddr,
) -> Result<(quinn::Connection, quinn::SendStream, quinn::RecvStream, u64)> {
    use honeybee_agent::transport::{read_frame, write_frame};
    let conn = tokio::time::timeout(
        Duration::from_secs(10),
        ep.connect_with(id.quic.clone(), addr, "honeybee-core")?,
    )
    .await
    .context("handshake timed out")??;
    let (mut send, mut recv) = conn.open_bi().await?;
    let hello = AgentMsg::Hello(Hello {
        wire_version: honeybee_proto::WIRE_VERSION,
        agent_version: "bench".into(),
        mode: NodeMode::Full,
        hostname: "bench".into(),
    });
    write_frame(&mut send, &hello, FrameLimit::CONTROL).await?;
    let welcome = tokio::time::timeout(
        Duration::from_secs(10),
        read_frame::<CoreMsg, _>(&mut recv, FrameLimit::CONTROL),
    )
    .await
    .context("no welcome")??;
    let CoreMsg::Welcome { last_seq, .. } = welcome else {
        bail!("expected Welcome, got {welcome:?}");
    };
    Ok((conn, send, recv, last_seq))
}

/// Baseline side of hello → Welcome: reads one control frame, answers a minimal Welcome.
pub async fn baseline_hello(conn: &quinn::Connection, node: &str) -> Result<quinn::SendStream> {
    use honeybee_agent::transport::{read_frame, write_frame};
    let (mut send, mut recv) = conn.accept_bi().await?;
    let _hello: AgentMsg = read_frame(&mut recv, FrameLimit::CONTROL).await?;
    let welcome = CoreMsg::Welcome {
        node_id: honeybee_proto::NodeId::new(node).map_err(|e| anyhow!("{e}"))?,
        config: Default::default(),
        last_seq: 0,
    };
    write_frame(&mut send, &welcome, FrameLimit::CONTROL).await?;
    Ok(send)
}

/// Reads one length-prefixed frame body into a buffer (no decoding), refusing oversize.
pub async fn read_body(recv: &mut quinn::RecvStream, limit: FrameLimit) -> Result<Vec<u8>> {
    let mut header = [0u8; codec::HEADER_LEN];
    recv.read_exact(&mut header).await?;
    let len = codec::FrameDecoder::new(limit).body_len(header)?;
    let mut body = vec![0u8; len];
    recv.read_exact(&mut body).await?;
    Ok(body)
}

/// Reads a capture header frame.
pub async fn read_capture_header(recv: &mut quinn::RecvStream) -> Result<CaptureHeader> {
    let body = read_body(recv, FrameLimit::CAPTURE_HEADER).await?;
    Ok(codec::decode_body(&body)?)
}
