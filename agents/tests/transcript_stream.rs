//! Shell transcripts stream to the capture spool as the session runs: four telnet
//! sessions each type 12 MiB (under a 16 MiB transcript cap) at once, and the test
//! process's private memory stays flat while the recordings grow on disk; each one is
//! then a whole, valid asciicast capture.

mod memory;
mod shell_common;
mod tools;

use honeybee_proto::config::{LoginPolicy, ServiceKind, TelnetOptions};
use honeybee_proto::event::EventKind;
use memory::{part_bytes, rss_anon};
use shell_common::*;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Reads from `c` until what was read holds `what`.
async fn read_until(c: &mut TcpStream, seen: &mut Vec<u8>, what: &str) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !String::from_utf8_lossy(seen).contains(what) {
        let mut buf = [0u8; 4096];
        let n = tokio::time::timeout_at(deadline, c.read(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("no {what:?} in {:?}", String::from_utf8_lossy(seen)))
            .unwrap();
        assert!(n > 0, "closed before {what:?}");
        seen.extend_from_slice(&buf[..n]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_sessions_stream_their_transcripts_to_disk() {
    const SESSIONS: usize = 4;
    const CHUNK: usize = 64 * 1024;
    const CHUNKS: usize = 192; // 12 MiB typed per session
    const TYPED: u64 = (CHUNK * CHUNKS) as u64;
    let dir = tempfile::tempdir().unwrap();
    let kind = ServiceKind::Telnet(TelnetOptions {
        login: LoginPolicy::Always,
        auth_failure_delay_ms: 0,
        max_transcript_bytes: 16 * 1024 * 1024,
        ..Default::default()
    });
    let mut run = start(dir.path(), &one("telnet", kind)).await;
    let addr = run.addr;
    let before = rss_anon();

    // Each session logs in, then types one endless line (the shell keeps 4 KiB of it;
    // the transcript records all of it). What the server sends back is read and dropped.
    let sessions: Vec<_> = (0..SESSIONS)
        .map(|_| {
            tokio::spawn(async move {
                let mut c = TcpStream::connect(addr).await.unwrap();
                // A client speaks first (its option negotiation): WONT TERMINAL-TYPE.
                c.write_all(b"\xff\xfc\x18").await.unwrap();
                let mut seen = Vec::new();
                read_until(&mut c, &mut seen, "login: ").await;
                c.write_all(b"root\r\n").await.unwrap();
                read_until(&mut c, &mut seen, "Password: ").await;
                c.write_all(b"toor\r\n").await.unwrap();
                read_until(&mut c, &mut seen, "# ").await;
                let (mut rd, mut wr) = c.into_split();
                let drain = tokio::spawn(async move {
                    let mut buf = vec![0u8; 16 * 1024];
                    while let Ok(Ok(n)) = tokio::time::timeout(WAIT, rd.read(&mut buf)).await {
                        if n == 0 {
                            break;
                        }
                    }
                });
                let line = vec![b'a'; CHUNK];
                for _ in 0..CHUNKS {
                    wr.write_all(&line).await.unwrap();
                }
                (wr, drain)
            })
        })
        .collect();
    let mut open = Vec::new();
    for s in sessions {
        open.push(tokio::time::timeout(WAIT * 4, s).await.unwrap().unwrap());
    }
    // The recordings reach the disk as they grow; memory is checked all along (a
    // service that keeps transcripts in memory fails here).
    let on_disk = SESSIONS as u64 * (TYPED - 1024 * 1024);
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let grown = rss_anon().saturating_sub(before);
        assert!(
            grown < 16 * 1024 * 1024,
            "private memory grew by {grown} bytes with {SESSIONS} × {TYPED}-byte transcripts"
        );
        if part_bytes(dir.path()) >= on_disk {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "transcripts not on disk: {} of {on_disk}",
            part_bytes(dir.path())
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The sessions end: each transcript becomes one capture, whole.
    for (wr, drain) in open {
        drop(wr);
        let _ = tokio::time::timeout(WAIT, drain).await;
    }
    let mut captures = Vec::new();
    let deadline = tokio::time::Instant::now() + WAIT * 2;
    while captures.len() < SESSIONS {
        let e = tokio::time::timeout_at(deadline, run.rx.recv())
            .await
            .expect("transcript captures in time")
            .expect("sink open");
        if let EventKind::Capture {
            kind, sha256, size, ..
        } = e.kind
            && kind == "transcript"
        {
            captures.push((sha256, size));
        }
    }
    let t = transcripts(&run.spool);
    assert_eq!(t.len(), SESSIONS);
    for (h, content) in &t {
        assert!(captures.contains(&(hex::encode(h.sha256), content.len() as u64)));
        assert_eq!(
            hex::encode(ring::digest::digest(&ring::digest::SHA256, content).as_ref()),
            hex::encode(h.sha256)
        );
        assert!(content.len() as u64 <= 16 * 1024 * 1024);
        let cast = Cast::parse(content);
        assert_eq!(cast.header["env"]["TERM"], "xterm");
        // After the login line's end, every typed byte is in the transcript.
        let typed = cast.stream("i");
        let typed = typed.trim_start_matches(['\r', '\n', '\0']);
        let other: String = typed.chars().filter(|&c| c != 'a').take(16).collect();
        assert!(other.is_empty(), "{other:?}");
        assert_eq!(typed.len() as u64, TYPED);
    }
    assert_eq!(part_bytes(dir.path()), 0);
    run.mgr.shutdown().await;
}
