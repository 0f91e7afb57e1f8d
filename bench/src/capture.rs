//! Figure 2: capture upload throughput from one agent — through the core's capture path
//! (header check, SHA-256, temp file, fsync, rename, metadata row) against bare quinn
//! uni-stream copies of the same bytes into a file or into memory.

use crate::fixture::{
    AgentId, Deployment, baseline_hello, client_endpoint, connect_agent, read_capture_header,
};
use crate::stats::Sample;
use anyhow::{Context, Result, bail};
use honeybee_agent::transport::{read_frame, write_frame};
use honeybee_proto::alpn;
use honeybee_proto::capture::{CaptureHeader, CaptureKind};
use honeybee_proto::codec::FrameLimit;
use honeybee_proto::control::CoreMsg;
use honeybee_proto::stream::StreamKind;
use rand::RngCore;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

#[derive(Debug, Clone, Copy)]
pub struct CaptureSizes {
    pub count: usize,
    pub bytes: usize,
    pub limit: Duration,
}

/// Random content (so nothing dedupes or compresses) and its SHA-256.
pub struct Content {
    pub data: Vec<u8>,
    pub sha256: [u8; 32],
}

pub fn contents(sizes: CaptureSizes) -> Vec<Content> {
    let mut rng = rand::rng();
    (0..sizes.count)
        .map(|_| {
            let mut data = vec![0u8; sizes.bytes];
            rng.fill_bytes(&mut data);
            let sha256 = ring::digest::digest(&ring::digest::SHA256, &data)
                .as_ref()
                .try_into()
                .expect("32 bytes");
            Content { data, sha256 }
        })
        .collect()
}

/// The agent's side, identical for every server: uploads each capture on its own
/// unidirectional stream, one after another, and is done when every upload is answered
/// `CaptureStored`.
pub async fn upload(addr: SocketAddr, id: &AgentId, caps: &[Content]) -> Result<Sample> {
    let ep = client_endpoint()?;
    let (conn, _ctl_send, mut ctl_recv, _) = connect_agent(&ep, id, addr).await?;
    let start = Instant::now();
    let sender = async {
        for c in caps {
            let mut s = conn.open_uni().await?;
            s.write_all(&[StreamKind::Capture as u8]).await?;
            let header = CaptureHeader {
                size: c.data.len() as u64,
                sha256: c.sha256,
                kind: CaptureKind::Upload,
                service: "ftp".into(),
                session: None,
                time_ms: honeybee_core::now_ms(),
                meta: vec![("filename".into(), "payload.bin".into())],
            };
            write_frame(&mut s, &header, FrameLimit::CAPTURE_HEADER).await?;
            s.write_all(&c.data).await?;
            s.finish()?;
        }
        anyhow::Ok(())
    };
    let answers = async {
        let mut stored = 0;
        while stored < caps.len() {
            match read_frame::<CoreMsg, _>(&mut ctl_recv, FrameLimit::CONTROL).await? {
                CoreMsg::CaptureStored { .. } => stored += 1,
                CoreMsg::CaptureRejected { reason, .. } => bail!("capture rejected: {reason}"),
                _ => {}
            }
        }
        anyhow::Ok(Instant::now())
    };
    let ((), done) = tokio::try_join!(sender, answers)?;
    conn.close(0u32.into(), b"done");
    let _ = tokio::time::timeout(Duration::from_secs(2), ep.wait_idle()).await;
    Ok(Sample {
        count: caps.iter().map(|c| c.data.len() as u64).sum(),
        elapsed: done - start,
    })
}

/// Upload through the real core; checks every capture landed under its hash.
pub async fn core_run(
    dep: &Deployment,
    id: &AgentId,
    caps: &[Content],
    limit: Duration,
) -> Result<Sample> {
    let sample = tokio::time::timeout(limit, upload(dep.addr, id, caps))
        .await
        .context("core capture run timed out")??;
    let store = &dep.core()?.shared().captures;
    for c in caps {
        let len = std::fs::metadata(store.path_of(&c.sha256))?.len();
        if len != c.data.len() as u64 {
            bail!("stored capture is {len} bytes, expected {}", c.data.len());
        }
    }
    Ok(sample)
}

/// Where a baseline server puts the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sink {
    /// `read` into a 256 KiB buffer, `tokio::fs::File::write_all`, then `sync_all`: the
    /// same durability the core gives.
    FileSynced,
    /// As above without `sync_all`.
    File,
    /// `read_chunk` as quinn hands them over, one `tokio::fs` write per chunk, plus fsync:
    /// the write pattern the core's capture path uses, without hashing or renaming.
    FilePerChunk,
    /// Drained into nothing.
    Memory,
    /// The core's work (SHA-256, temp file, fsync, rename) with `read` into a 256 KiB
    /// buffer instead of per-chunk writes: what the core's path could reach.
    HashedBuffered,
}

impl Sink {
    pub fn name(self) -> &'static str {
        match self {
            Sink::FileSynced => "bare quinn → file (write + fsync)",
            Sink::File => "bare quinn → file (no fsync)",
            Sink::FilePerChunk => "bare quinn → file, one tokio::fs write per QUIC chunk + fsync",
            Sink::Memory => "bare quinn → memory (drain)",
            Sink::HashedBuffered => {
                "bare quinn → SHA-256 + file via 256 KiB buffer + fsync + rename (the core's work, buffered)"
            }
        }
    }
}

/// Chunks handed over by quinn and bytes received, to report the core's write granularity.
#[derive(Debug, Default)]
pub struct ChunkStats {
    pub chunks: AtomicU64,
    pub bytes: AtomicU64,
}

async fn sink_stream(
    mut recv: quinn::RecvStream,
    sink: Sink,
    path: PathBuf,
    stats: &ChunkStats,
) -> Result<CaptureHeader> {
    let mut kind = [0u8; 1];
    recv.read_exact(&mut kind).await?;
    let header = read_capture_header(&mut recv).await?;
    let mut got = 0u64;
    match sink {
        Sink::Memory => {
            while let Some(c) = recv.read_chunk(usize::MAX, true).await? {
                got += c.bytes.len() as u64;
            }
        }
        Sink::FileSynced | Sink::File => {
            let mut f = tokio::fs::File::create(&path).await?;
            let mut buf = vec![0u8; 256 * 1024];
            while let Some(n) = recv.read(&mut buf).await? {
                f.write_all(&buf[..n]).await?;
                got += n as u64;
            }
            f.flush().await?;
            if sink == Sink::FileSynced {
                f.sync_all().await?;
            }
        }
        Sink::HashedBuffered => {
            let tmp = path.with_extension("part");
            let mut f = tokio::fs::File::create(&tmp).await?;
            let mut hasher = ring::digest::Context::new(&ring::digest::SHA256);
            let mut buf = vec![0u8; 256 * 1024];
            while let Some(n) = recv.read(&mut buf).await? {
                hasher.update(&buf[..n]);
                f.write_all(&buf[..n]).await?;
                got += n as u64;
            }
            f.flush().await?;
            f.sync_all().await?;
            if hasher.finish().as_ref() != header.sha256 {
                bail!("SHA-256 mismatch");
            }
            tokio::fs::rename(&tmp, &path).await?;
        }
        Sink::FilePerChunk => {
            let mut f = tokio::fs::File::create(&path).await?;
            while let Some(c) = recv.read_chunk(64 * 1024, true).await? {
                f.write_all(&c.bytes).await?;
                got += c.bytes.len() as u64;
                stats.chunks.fetch_add(1, Ordering::Relaxed);
            }
            f.flush().await?;
            f.sync_all().await?;
        }
    }
    stats.bytes.fetch_add(got, Ordering::Relaxed);
    if got != header.size {
        bail!("received {got} bytes, header said {}", header.size);
    }
    Ok(header)
}

async fn baseline_conn(
    incoming: quinn::Incoming,
    sink: Sink,
    dir: PathBuf,
    stats: Arc<ChunkStats>,
) -> Result<()> {
    let conn = incoming.await?;
    let mut ctl = baseline_hello(&conn, "bench-uploader").await?;
    let (tx, mut rx) = mpsc::unbounded_channel::<CoreMsg>();
    let answers = async move {
        while let Some(m) = rx.recv().await {
            write_frame(&mut ctl, &m, FrameLimit::CONTROL).await?;
        }
        anyhow::Ok(())
    };
    let streams = async {
        let mut n = 0u64;
        while let Ok(recv) = conn.accept_uni().await {
            n += 1;
            let (tx, path, stats) = (tx.clone(), dir.join(format!("{n:08}.bin")), stats.clone());
            tokio::spawn(async move {
                let header = sink_stream(recv, sink, path, &stats).await?;
                let _ = tx.send(CoreMsg::CaptureStored {
                    sha256: header.sha256,
                });
                anyhow::Ok(())
            });
        }
        anyhow::Ok(())
    };
    tokio::select! {
        r = answers => r,
        r = streams => r,
    }
}

/// Upload to a bare quinn server (the core's TLS and transport settings) that sinks each
/// stream as `sink` says, into `dir` (emptied afterwards).
pub async fn baseline_run(
    dep: &Deployment,
    id: &AgentId,
    caps: &[Content],
    sink: Sink,
    dir: &Path,
    limit: Duration,
) -> Result<(Sample, Arc<ChunkStats>)> {
    std::fs::create_dir_all(dir)?;
    let ep = dep.baseline_endpoint(&[alpn::NODE])?;
    let addr = ep.local_addr()?;
    let stats = Arc::new(ChunkStats::default());
    let accept_ep = ep.clone();
    let (dir_buf, accept_stats) = (dir.to_owned(), stats.clone());
    let accept = tokio::spawn(async move {
        while let Some(incoming) = accept_ep.accept().await {
            tokio::spawn(baseline_conn(
                incoming,
                sink,
                dir_buf.clone(),
                accept_stats.clone(),
            ));
        }
    });
    let run = tokio::time::timeout(limit, upload(addr, id, caps)).await;
    ep.close(0u32.into(), b"done");
    accept.abort();
    let _ = tokio::time::timeout(Duration::from_secs(5), ep.wait_idle()).await;
    let _ = std::fs::remove_dir_all(dir);
    let sample = run.context("baseline capture run timed out")??;
    Ok((sample, stats))
}
