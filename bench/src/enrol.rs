//! Figure 3: enrolments per second through the real path (agent key pair and CSR, pinned
//! QUIC handshake, token consumed in the store, CSR signed, node and cert recorded, files
//! written) against bare QUIC handshakes on an endpoint with the core's TLS config.

use crate::fixture::{Deployment, LOOPBACK};
use crate::stats::Sample;
use anyhow::{Context, Result, anyhow, bail};
use honeybee_pki::ca::IssueRequest;
use honeybee_pki::keys::{KeyPair, make_csr};
use honeybee_proto::{NodeId, Role, alpn};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

#[derive(Debug, Clone, Copy)]
pub struct EnrolSizes {
    pub count: usize,
    pub concurrency: usize,
    pub limit: Duration,
}

/// Runs `job(i)` for `i in 0..count` with at most `concurrency` at once; all must succeed.
async fn run_jobs<F, Fut>(count: usize, concurrency: usize, job: F) -> Result<Sample>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<()>> + Send + 'static,
{
    let next = Arc::new(Mutex::new(0usize));
    let job = Arc::new(job);
    let start = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..concurrency.max(1) {
        let (next, job) = (next.clone(), job.clone());
        workers.spawn(async move {
            let mut done = 0u64;
            loop {
                let i = {
                    let mut n = next.lock().await;
                    if *n >= count {
                        break;
                    }
                    *n += 1;
                    *n - 1
                };
                job(i).await?;
                done += 1;
            }
            anyhow::Ok(done)
        });
    }
    let mut done = 0;
    while let Some(r) = workers.join_next().await {
        done += r.context("worker")??;
    }
    let elapsed = start.elapsed();
    if done != count as u64 {
        bail!("{done} of {count} jobs done");
    }
    Ok(Sample {
        count: done,
        elapsed,
    })
}

/// `count` enrolments through `honeybee_agent::enroll::enroll`, each with its own
/// single-use token (made beforehand, not timed), `concurrency` at a time.
pub async fn core_run(dep: &mut Deployment, sizes: EnrolSizes) -> Result<Sample> {
    let mut work = Vec::with_capacity(sizes.count);
    for i in 0..sizes.count {
        work.push((
            dep.token(&format!("enrol-{i:05}"), 1).await?,
            dep.agent_dir(),
        ));
    }
    let work = Arc::new(work);
    let nodes_before = dep.core()?.shared().store.list_nodes().await?.len();
    let sample = tokio::time::timeout(
        sizes.limit,
        run_jobs(sizes.count, sizes.concurrency, move |i| {
            let work = work.clone();
            async move {
                let (token, dir) = &work[i];
                honeybee_agent::enroll::enroll(token, dir)
                    .await
                    .map(drop)
                    .map_err(|e| anyhow!("enrolment {i}: {e}"))
            }
        }),
    )
    .await
    .context("enrolment run timed out")??;
    let nodes = dep.core()?.shared().store.list_nodes().await?.len() - nodes_before;
    if nodes != sizes.count {
        bail!("{nodes} nodes recorded, expected {}", sizes.count);
    }
    Ok(sample)
}

/// The core's enrolment handler without the agent's client-side costs: the request the
/// agent sends (a fresh key pair and CSR each, single-use token), over one shared client
/// endpoint, closing without waiting for the drain, writing no files.
pub async fn core_handler_run(dep: &mut Deployment, sizes: EnrolSizes) -> Result<Sample> {
    use honeybee_agent::transport::{read_frame, write_frame};
    use honeybee_proto::codec::FrameLimit;
    use honeybee_proto::enroll::{EnrollRequest, EnrollResponse};
    let mut tokens = Vec::with_capacity(sizes.count);
    for i in 0..sizes.count {
        let line = dep.token(&format!("raw-{i:05}"), 1).await?;
        tokens.push(honeybee_pki::token::Token::decode(&line).map_err(|e| anyhow!("{e}"))?);
    }
    let tokens = Arc::new(tokens);
    let tls = honeybee_pki::tls::enroll_client_config(dep.ca_pin()?, alpn::ENROLL)
        .map_err(|e| anyhow!("{e}"))?;
    let cfg = honeybee_agent::transport::client_config(tls).map_err(|e| anyhow!(e))?;
    let ep = crate::fixture::client_endpoint()?;
    let addr = dep.addr;
    let nodes_before = dep.core()?.shared().store.list_nodes().await?.len();
    let sample = tokio::time::timeout(
        sizes.limit,
        run_jobs(sizes.count, sizes.concurrency, move |i| {
            let (tokens, cfg, ep) = (tokens.clone(), cfg.clone(), ep.clone());
            async move {
                let key = KeyPair::generate().map_err(|e| anyhow!("{e}"))?;
                let req = EnrollRequest {
                    wire_version: honeybee_proto::WIRE_VERSION,
                    token_id: tokens[i].id,
                    secret: tokens[i].secret,
                    csr_der: make_csr(&key).map_err(|e| anyhow!("{e}"))?,
                    hostname: "bench".into(),
                };
                let conn = ep.connect_with(cfg, addr, "honeybee-core")?.await?;
                let (mut send, mut recv) = conn.open_bi().await?;
                write_frame(&mut send, &req, FrameLimit::ENROLL).await?;
                send.finish()?;
                let resp: EnrollResponse = read_frame(&mut recv, FrameLimit::ENROLL).await?;
                conn.close(0u32.into(), b"enrolled");
                match resp {
                    EnrollResponse::Enrolled(_) => Ok(()),
                    other => bail!("enrolment {i} refused: {other:?}"),
                }
            }
        }),
    )
    .await
    .context("raw enrolment run timed out")??;
    let nodes = dep.core()?.shared().store.list_nodes().await?.len() - nodes_before;
    if nodes != sizes.count {
        bail!("{nodes} nodes recorded, expected {}", sizes.count);
    }
    Ok(sample)
}

/// How the baseline client treats its endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeClient {
    /// One client endpoint for all handshakes; close without waiting.
    Shared,
    /// A fresh endpoint per handshake, closed and drained (`wait_idle`) as the enrolment
    /// client does.
    FreshDrained,
}

impl HandshakeClient {
    pub fn name(self) -> &'static str {
        match self {
            HandshakeClient::Shared => "bare QUIC handshake (shared client endpoint)",
            HandshakeClient::FreshDrained => {
                "bare QUIC handshake (fresh client endpoint, close + wait_idle, as the enrol client)"
            }
        }
    }
}

/// Bare handshakes against a quinn server with the core's TLS config on the enrolment
/// ALPN (server auth, pinned CA) that closes each connection once it is established.
pub async fn baseline_run(
    dep: &Deployment,
    sizes: EnrolSizes,
    client: HandshakeClient,
) -> Result<Sample> {
    let ep = dep.baseline_endpoint(&[alpn::ENROLL])?;
    let addr: SocketAddr = ep.local_addr()?;
    let accept_ep = ep.clone();
    let accept = tokio::spawn(async move {
        while let Some(incoming) = accept_ep.accept().await {
            tokio::spawn(async move {
                if let Ok(conn) = incoming.await {
                    // The client closes first; a silent one is cut after a second.
                    let _ = tokio::time::timeout(Duration::from_secs(1), conn.closed()).await;
                }
            });
        }
    });
    let tls = honeybee_pki::tls::enroll_client_config(dep.ca_pin()?, alpn::ENROLL)
        .map_err(|e| anyhow!("{e}"))?;
    let cfg = honeybee_agent::transport::client_config(tls).map_err(|e| anyhow!(e))?;
    let shared = crate::fixture::client_endpoint()?;
    let run = tokio::time::timeout(
        sizes.limit,
        run_jobs(sizes.count, sizes.concurrency, move |_| {
            let (cfg, shared) = (cfg.clone(), shared.clone());
            async move {
                let ep = match client {
                    HandshakeClient::Shared => shared,
                    HandshakeClient::FreshDrained => quinn::Endpoint::client((LOOPBACK, 0).into())?,
                };
                let conn = ep.connect_with(cfg, addr, "honeybee-core")?.await?;
                conn.close(0u32.into(), b"done");
                if client == HandshakeClient::FreshDrained {
                    ep.wait_idle().await;
                }
                Ok(())
            }
        }),
    )
    .await;
    ep.close(0u32.into(), b"done");
    accept.abort();
    let _ = tokio::time::timeout(Duration::from_secs(5), ep.wait_idle()).await;
    run.context("handshake run timed out")?
}

/// Per-enrolment CPU costs outside the network, for the notes: agent key pair + CSR,
/// and the CA signing a CSR. Returns microseconds per operation.
pub fn crypto_costs(dep: &Deployment, n: usize) -> Result<(f64, f64)> {
    let ca = &dep.core()?.shared().ca;
    let start = Instant::now();
    let mut csrs = Vec::with_capacity(n);
    for _ in 0..n {
        let key = KeyPair::generate().map_err(|e| anyhow!("{e}"))?;
        csrs.push(make_csr(&key).map_err(|e| anyhow!("{e}"))?);
    }
    let keygen = start.elapsed().as_secs_f64() * 1e6 / n as f64;
    let start = Instant::now();
    for (i, csr) in csrs.iter().enumerate() {
        ca.sign_csr(
            csr,
            &IssueRequest {
                role: Role::Agent,
                id: NodeId::new(format!("cost-{i}")).map_err(|e| anyhow!("{e}"))?,
                lifetime: Duration::from_secs(3600),
            },
        )
        .map_err(|e| anyhow!("{e}"))?;
    }
    let sign = start.elapsed().as_secs_f64() * 1e6 / n as f64;
    Ok((keygen, sign))
}
