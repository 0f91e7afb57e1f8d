//! Modbus/TCP honeypot: a small PLC (coils, registers, device identification, UMAS)
//! running a simulated process, whose state every connection of the service shares, so
//! a write is seen by the next read, from anyone; every request is recorded as one
//! `Command`.

pub(crate) mod mbap;
pub(crate) mod plc;
mod sim;
mod umas;

use super::ServiceContext;
use super::conn::Session;
use honeybee_proto::config::ModbusOptions;
use honeybee_proto::event::{EventKind, MAX_DATA_LEN, MAX_FIELD_LEN, clamp};
use mbap::Frame;
use plc::Plc;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;

/// Most requests one connection may make; then it is closed (and that is an event).
/// Pollers ask a few times a second, so this is hours of polling.
const MAX_REQUESTS: u64 = 50_000;

/// A configured modbus service.
#[derive(Debug)]
pub(crate) struct ModbusService {
    plc: Arc<Mutex<Plc>>,
    idle_timeout: Duration,
}

impl ModbusService {
    pub(crate) fn new(opts: &ModbusOptions, ctx: &ServiceContext) -> Result<Self, String> {
        // The node's plant: seeded from its persona, so no two nodes read alike.
        let id = &ctx.persona.persona().machine_id;
        let seed = u64::from_str_radix(id.get(..16).unwrap_or("0"), 16).unwrap_or(0);
        Ok(ModbusService {
            plc: Arc::new(Mutex::new(Plc::with_seed(opts, seed))),
            idle_timeout: ctx.idle_timeout,
        })
    }

    /// Serves one connection until the peer leaves, a deadline passes or `stop` says so.
    pub(crate) async fn serve<S>(
        &self,
        session: &Session,
        mut stream: S,
        stop: watch::Receiver<bool>,
    ) where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let mut stop = stop;
        // One ADU is at most 260 bytes; a buffer of two reads' worth is all it ever holds.
        let mut buf: Vec<u8> = Vec::with_capacity(1024);
        let mut chunk = [0u8; 512];
        let mut requests = 0u64;
        'conn: loop {
            let mut out = Vec::new();
            loop {
                match mbap::frame(&buf) {
                    Ok(Frame::Incomplete) => break,
                    Ok(Frame::Adu {
                        header,
                        pdu,
                        consumed,
                    }) => {
                        requests += 1;
                        if requests > MAX_REQUESTS {
                            session
                                .emit(EventKind::LimitReached {
                                    limit: "modbus_requests".into(),
                                    detail: format!(
                                        "more than {MAX_REQUESTS} requests on one connection"
                                    ),
                                })
                                .await;
                            break 'conn;
                        }
                        let req = mbap::decode(pdu);
                        let line = clamp(&plc::describe(header.unit, pdu, &req), MAX_FIELD_LEN);
                        let reply = self
                            .plc
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .handle(&req);
                        out.extend_from_slice(&mbap::adu(header, &reply));
                        buf.drain(..consumed);
                        session.emit(EventKind::Command { line }).await;
                    }
                    Err(e) => {
                        // Not Modbus (an HTTP probe, a scanner's garbage): keep what it
                        // sent, as the banner service does, and drop it like a PLC would.
                        tracing::debug!(session = %session.id, error = %e, "not a modbus frame");
                        let n = buf.len().min(MAX_DATA_LEN);
                        session
                            .emit(EventKind::Data {
                                bytes: buf[..n].to_vec(),
                                truncated: buf.len() > n,
                            })
                            .await;
                        let _ = stream.write_all(&out).await;
                        break 'conn;
                    }
                }
            }
            if !out.is_empty() && stream.write_all(&out).await.is_err() {
                return;
            }
            let n = tokio::select! {
                r = tokio::time::timeout(self.idle_timeout, stream.read(&mut chunk)) => match r {
                    Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return,
                    Ok(Ok(n)) => n,
                },
                () = super::stopped(&mut stop) => break 'conn,
            };
            buf.extend_from_slice(&chunk[..n]);
        }
        let _ = tokio::time::timeout(Duration::from_millis(500), stream.shutdown()).await;
    }
}
