//! Rust SDK for HoneyBee modules: QUIC with a module certificate (`honeybee-module/1`),
//! the same JSON messages as the TCP shim (see `modules/PROTOCOL.md`).
//!
//! ```no_run
//! # async fn run() -> Result<(), honeybee_module_sdk::SdkError> {
//! use honeybee_module_sdk::{Module, ModuleConfig, EventFilter};
//! let cfg = ModuleConfig::load("/etc/honeybee/modules/watcher".as_ref())?;
//! let mut m = Module::connect(&cfg, "1.0", &["events:read", "alerts:write"]).await?;
//! m.subscribe(EventFilter { kinds: vec!["auth_attempt".into()], ..Default::default() }).await?;
//! while let Ok((_sub, event)) = m.next_event().await {
//!     m.alert("medium", "login attempt", "", Some(Module::event_ref(&event)?)).await?;
//! }
//! # Ok(()) }
//! ```
//!
//! A module's directory holds what `honeybee module cert --name N --permissions … --out DIR`
//! wrote: `module.toml` (name and core address), `module.pem` (its key and certificate)
//! and `ca.crt`.

use honeybee_pki::keys::KeyPair;
pub use honeybee_proto::module::{EventFilter, Permission};
use honeybee_proto::module::{
    EventRef, MAX_MODULE_FRAME, MODULE_PROTOCOL, ModuleMessage, ModuleRequest, decode_json,
    encode_json,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Why a module call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SdkError {
    #[error("module configuration: {0}")]
    Config(String),
    #[error("cannot connect to the core at {addr}: {why}")]
    Connect { addr: String, why: String },
    #[error("the core refused: {code}: {message}")]
    Refused { code: String, message: String },
    #[error("connection to the core lost: {0}")]
    Disconnected(String),
    #[error("the core sent something unexpected: {0}")]
    Protocol(String),
}

/// `module.toml` in a module's directory.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ModuleFile {
    pub name: String,
    /// The core's QUIC `IP:PORT`.
    pub core: String,
}

/// Everything a module needs to connect.
pub struct ModuleConfig {
    pub name: String,
    pub core: SocketAddr,
    ca_der: Vec<u8>,
    cert_der: Vec<u8>,
    key: KeyPair,
}

impl ModuleConfig {
    pub fn load(dir: &Path) -> Result<ModuleConfig, SdkError> {
        let read = |f: &str| {
            std::fs::read_to_string(dir.join(f))
                .map_err(|e| SdkError::Config(format!("{}: {e}", dir.join(f).display())))
        };
        let file: ModuleFile =
            toml::from_str(&read("module.toml")?).map_err(|e| SdkError::Config(e.to_string()))?;
        let core = file
            .core
            .parse()
            .map_err(|e| SdkError::Config(format!("core = {:?}: {e}", file.core)))?;
        let first_cert = |pem: &str, what: &str| {
            honeybee_pki::files::pem_to_der_certs(pem)
                .map_err(|e| SdkError::Config(format!("{what}: {e}")))?
                .into_iter()
                .next()
                .map(|c| c.as_ref().to_vec())
                .ok_or_else(|| SdkError::Config(format!("{what} holds no certificate")))
        };
        let ident = read("module.pem")?;
        Ok(ModuleConfig {
            name: file.name,
            core,
            ca_der: first_cert(&read("ca.crt")?, "ca.crt")?,
            cert_der: first_cert(&ident, "module.pem")?,
            key: KeyPair::from_pem(&ident)
                .map_err(|e| SdkError::Config(format!("module.pem: {e}")))?,
        })
    }
}

/// A connected module.
pub struct Module {
    conn: quinn::Connection,
    endpoint: quinn::Endpoint,
    send: quinn::SendStream,
    recv: quinn::RecvStream,
    next_id: u64,
    pending: VecDeque<(u64, Value)>,
    /// Permissions the core granted.
    pub granted: Vec<String>,
    /// Events the core could not queue for us, as it reported.
    pub missed: u64,
}

fn refused(code: impl std::fmt::Debug, message: String) -> SdkError {
    SdkError::Refused {
        code: format!("{code:?}").to_lowercase(),
        message,
    }
}

impl Module {
    /// Connects with mutual TLS and says hello; `permissions` empty asks for all granted.
    pub async fn connect(
        cfg: &ModuleConfig,
        version: &str,
        permissions: &[&str],
    ) -> Result<Module, SdkError> {
        honeybee_pki::install_crypto_provider();
        let fail = |why: String| SdkError::Connect {
            addr: cfg.core.to_string(),
            why,
        };
        let tls = honeybee_pki::tls::client_config(
            &cfg.ca_der,
            vec![cfg.cert_der.clone().into()],
            cfg.key.private_key_der(),
            honeybee_proto::Role::Core,
            honeybee_proto::alpn::MODULE,
        )
        .map_err(|e| fail(e.to_string()))?;
        let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls)
            .map_err(|e| fail(e.to_string()))?;
        let mut client = quinn::ClientConfig::new(Arc::new(crypto));
        let mut transport = quinn::TransportConfig::default();
        transport.keep_alive_interval(Some(Duration::from_secs(10)));
        client.transport_config(Arc::new(transport));
        let bind: SocketAddr = if cfg.core.is_ipv4() {
            "0.0.0.0:0".parse().expect("literal")
        } else {
            "[::]:0".parse().expect("literal")
        };
        let endpoint = quinn::Endpoint::client(bind).map_err(|e| fail(e.to_string()))?;
        let conn = endpoint
            .connect_with(client, cfg.core, "honeybee-core")
            .map_err(|e| fail(e.to_string()))?
            .await
            .map_err(|e| fail(e.to_string()))?;
        let (send, recv) = conn.open_bi().await.map_err(|e| fail(e.to_string()))?;
        let mut m = Module {
            conn,
            endpoint,
            send,
            recv,
            next_id: 1,
            pending: VecDeque::new(),
            granted: Vec::new(),
            missed: 0,
        };
        m.send(&ModuleRequest::Hello {
            name: cfg.name.clone(),
            version: version.to_owned(),
            protocol: MODULE_PROTOCOL,
            credential: None,
            permissions: permissions.iter().map(|p| (*p).to_owned()).collect(),
        })
        .await?;
        match m.recv().await? {
            ModuleMessage::Welcome { permissions, .. } => m.granted = permissions,
            ModuleMessage::Error { code, message, .. } => return Err(refused(code, message)),
            other => {
                return Err(SdkError::Protocol(format!(
                    "expected welcome, got {other:?}"
                )));
            }
        }
        Ok(m)
    }

    async fn send(&mut self, req: &ModuleRequest) -> Result<(), SdkError> {
        let frame = encode_json(req).map_err(|e| SdkError::Protocol(e.to_string()))?;
        self.send
            .write_all(&frame)
            .await
            .map_err(|e| SdkError::Disconnected(e.to_string()))
    }

    async fn recv(&mut self) -> Result<ModuleMessage, SdkError> {
        let mut len = [0u8; 4];
        self.recv
            .read_exact(&mut len)
            .await
            .map_err(|e| SdkError::Disconnected(e.to_string()))?;
        let len = u32::from_be_bytes(len);
        if len > MAX_MODULE_FRAME {
            return Err(SdkError::Protocol(format!(
                "frame of {len} bytes from the core"
            )));
        }
        let mut body = vec![0u8; len as usize];
        self.recv
            .read_exact(&mut body)
            .await
            .map_err(|e| SdkError::Disconnected(e.to_string()))?;
        decode_json(&body).map_err(|e| SdkError::Protocol(e.to_string()))
    }

    fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id - 1
    }

    /// Sends a request and waits for its answer; events arriving meanwhile are queued.
    async fn request(
        &mut self,
        make: impl FnOnce(u64) -> ModuleRequest,
    ) -> Result<Value, SdkError> {
        let id = self.id();
        self.send(&make(id)).await?;
        loop {
            match self.recv().await? {
                ModuleMessage::Event { sub, event } => self.pending.push_back((sub, event)),
                ModuleMessage::Missed { count } => self.missed += count,
                ModuleMessage::Result { id: rid, data } if rid == id => return Ok(data),
                ModuleMessage::Error {
                    id: rid,
                    code,
                    message,
                } if rid.is_none() || rid == Some(id) => {
                    return Err(refused(code, message));
                }
                _ => {}
            }
        }
    }

    /// Subscribes; returns the subscription id that deliveries carry.
    pub async fn subscribe(&mut self, filter: EventFilter) -> Result<u64, SdkError> {
        let mut sub = 0;
        self.request(|id| {
            sub = id;
            ModuleRequest::Subscribe { id, filter }
        })
        .await?;
        Ok(sub)
    }

    pub async fn unsubscribe(&mut self, sub: u64) -> Result<(), SdkError> {
        self.send(&ModuleRequest::Unsubscribe { id: sub }).await
    }

    /// The next delivered event: (subscription id, ECS-named JSON document).
    pub async fn next_event(&mut self) -> Result<(u64, Value), SdkError> {
        if let Some(e) = self.pending.pop_front() {
            return Ok(e);
        }
        loop {
            match self.recv().await? {
                ModuleMessage::Event { sub, event } => return Ok((sub, event)),
                ModuleMessage::Missed { count } => self.missed += count,
                ModuleMessage::Error {
                    id: None,
                    code,
                    message,
                } => return Err(refused(code, message)),
                _ => {}
            }
        }
    }

    /// `what`: nodes, events, captures or stats.
    pub async fn query(&mut self, what: &str, params: Value) -> Result<Value, SdkError> {
        let what = what.to_owned();
        self.request(|id| ModuleRequest::Query { id, what, params })
            .await
    }

    pub async fn command(&mut self, node: &str, command: &str) -> Result<Value, SdkError> {
        let (node, command) = (node.to_owned(), command.to_owned());
        self.request(|id| ModuleRequest::Command { id, node, command })
            .await
    }

    pub async fn alert(
        &mut self,
        severity: &str,
        title: &str,
        body: &str,
        event: Option<EventRef>,
    ) -> Result<Value, SdkError> {
        let (severity, title, body) = (severity.to_owned(), title.to_owned(), body.to_owned());
        self.request(|id| ModuleRequest::Alert {
            id,
            severity,
            title,
            body,
            event,
        })
        .await
    }

    pub async fn enrich(
        &mut self,
        event: EventRef,
        data: serde_json::Map<String, Value>,
    ) -> Result<Value, SdkError> {
        self.request(|id| ModuleRequest::Enrich {
            id,
            event,
            data: data.into_iter().collect(),
        })
        .await
    }

    pub async fn annotate(&mut self, event: EventRef, text: &str) -> Result<Value, SdkError> {
        let text = text.to_owned();
        self.request(|id| ModuleRequest::Annotate { id, event, text })
            .await
    }

    pub async fn log(&mut self, level: &str, message: &str) -> Result<(), SdkError> {
        self.send(&ModuleRequest::Log {
            level: level.to_owned(),
            message: message.to_owned(),
        })
        .await
    }

    /// The `{node, seq}` reference of a delivered event.
    pub fn event_ref(event: &Value) -> Result<EventRef, SdkError> {
        let node = event["observer"]["name"].as_str();
        let seq = event["event"]["sequence"].as_u64();
        match (node, seq) {
            (Some(node), Some(seq)) => Ok(EventRef {
                node: node.to_owned(),
                seq,
            }),
            _ => Err(SdkError::Protocol(
                "event without observer.name and event.sequence".into(),
            )),
        }
    }

    pub async fn close(mut self) {
        let _ = self.send.finish();
        self.conn.close(0u32.into(), b"bye");
        self.endpoint.wait_idle().await;
    }
}
