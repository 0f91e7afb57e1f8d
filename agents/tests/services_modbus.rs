//! Modbus/TCP honeypot against real masters: `mbpoll` (libmodbus) writes and reads back
//! coils and registers across connections, nmap's `modbus-discover` reads the device
//! identification, every request is one command event, and non-Modbus input is dropped.

mod datasvc;
mod tools;

use datasvc::*;
use honeybee_proto::config::{ModbusOptions, ServiceKind};
use honeybee_proto::event::EventKind;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn modbus() -> ServiceKind {
    ServiceKind::Modbus(ModbusOptions::default())
}

/// The value mbpoll printed for register `n` (`[n]: \tvalue`).
fn value(stdout: &str, n: u16) -> u32 {
    let key = format!("[{n}]: \t");
    let at = stdout
        .find(&key)
        .unwrap_or_else(|| panic!("no [{n}] in {stdout}"));
    stdout[at + key.len()..]
        .split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("[{n}] in {stdout}"))
}

async fn mbpoll(dir: &std::path::Path, port: u16, args: &[&str]) -> Ran {
    let port = port.to_string();
    let mut all = vec!["-m", "tcp", "-a", "1", "-1", "-o", "5", "-p", port.as_str()];
    all.extend_from_slice(args);
    run(dir, "mbpoll", &all, None).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mbpoll_writes_then_reads_back_and_everything_is_recorded() {
    tools::require(&["mbpoll"]);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut r = start(d, "modbus", "127.0.0.1:0".parse().unwrap(), modbus()).await;
    let p = r.addr.port();

    // Holding register 5 (1-based, so address 4): write, then read back on a new connection.
    let w = mbpoll(d, p, &["-t", "4", "-r", "5", "127.0.0.1", "1234"]).await;
    assert!(w.ok, "{}\n{}", w.stdout, w.stderr);
    let rd = mbpoll(d, p, &["-t", "4", "-r", "5", "-c", "1", "127.0.0.1"]).await;
    assert!(rd.stdout.contains("[5]: \t1234"), "{}", rd.stdout);
    // Several registers at once.
    let w = mbpoll(d, p, &["-t", "4", "-r", "10", "127.0.0.1", "7", "8", "9"]).await;
    assert!(w.ok, "{}\n{}", w.stdout, w.stderr);
    let rd = mbpoll(d, p, &["-t", "4", "-r", "10", "-c", "3", "127.0.0.1"]).await;
    for want in ["[10]: \t7", "[11]: \t8", "[12]: \t9"] {
        assert!(rd.stdout.contains(want), "{want}: {}", rd.stdout);
    }
    // A coil: on, then read back.
    let w = mbpoll(d, p, &["-t", "0", "-r", "4", "127.0.0.1", "1"]).await;
    assert!(w.ok, "{}\n{}", w.stdout, w.stderr);
    let rd = mbpoll(d, p, &["-t", "0", "-r", "4", "-c", "1", "127.0.0.1"]).await;
    assert!(rd.stdout.contains("[4]: \t1"), "{}", rd.stdout);
    // Input registers are the process: a tank level in 0.1 % and a temperature.
    let rd = mbpoll(d, p, &["-t", "3", "-r", "1", "-c", "2", "127.0.0.1"]).await;
    let level = value(&rd.stdout, 1);
    assert!(level <= 1000, "{}", rd.stdout);
    assert!(value(&rd.stdout, 2) <= 1200, "{}", rd.stdout);
    let bad = mbpoll(d, p, &["-t", "4", "-r", "200", "-c", "1", "127.0.0.1"]).await;
    assert!(
        format!("{}{}", bad.stdout, bad.stderr).contains("Illegal data address"),
        "{}\n{}",
        bad.stdout,
        bad.stderr
    );

    r.wait_disconnects(8).await;
    let cmds = r.commands();
    assert_eq!(
        cmds,
        [
            "write_single_register unit=1 addr=4 value=1234",
            "read_holding_registers unit=1 addr=4 count=1",
            "write_multiple_registers unit=1 addr=9 count=3 values=7,8,9",
            "read_holding_registers unit=1 addr=9 count=3",
            "write_single_coil unit=1 addr=3 value=1",
            "read_coils unit=1 addr=3 count=1",
            "read_input_registers unit=1 addr=0 count=2",
            "read_holding_registers unit=1 addr=199 count=1",
        ]
    );
    r.mgr.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nmap_modbus_discover_reads_the_device_identification() {
    tools::require(&["nmap"]);
    let dir = tempfile::tempdir().unwrap();
    let mut r = start(
        dir.path(),
        "modbus",
        "127.0.0.1:0".parse().unwrap(),
        modbus(),
    )
    .await;
    let port = r.addr.port().to_string();
    // `+` runs the script although the port is not 502.
    let out = run(
        dir.path(),
        "nmap",
        &[
            "-Pn",
            "-n",
            "-p",
            &port,
            "--script",
            "+modbus-discover",
            "127.0.0.1",
        ],
        None,
    )
    .await;
    assert!(out.ok, "{}", out.stderr);
    assert!(
        out.stdout
            .contains("Device identification: Schneider Electric BMX P34 2020 v2.8"),
        "{}",
        out.stdout
    );
    r.wait_for("the identification request", |ev| {
        ev.iter().any(|e| matches!(&e.kind, EventKind::Command { line } if line == "read_device_identification unit=1 code=1 object=0"))
    })
    .await;
    assert!(
        r.commands()
            .contains(&"function_17 unit=1 data=".to_owned()),
        "{:?}",
        r.commands()
    );
    r.mgr.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_frames_exceptions_and_garbage() {
    let dir = tempfile::tempdir().unwrap();
    let mut r = start(
        dir.path(),
        "modbus",
        "127.0.0.1:0".parse().unwrap(),
        modbus(),
    )
    .await;
    let mut c = TcpStream::connect(r.addr).await.unwrap();
    // Two pipelined requests: an illegal function and a read split across writes.
    c.write_all(&[0, 1, 0, 0, 0, 2, 9, 0x08, 0, 2, 0, 0])
        .await
        .unwrap();
    c.write_all(&[0, 6, 7, 3, 0, 0, 0, 1]).await.unwrap();
    let mut resp = [0u8; 9 + 11];
    tokio::time::timeout(WAIT, c.read_exact(&mut resp))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&resp[..9], &[0, 1, 0, 0, 0, 3, 9, 0x88, 1]);
    assert_eq!(&resp[9..], &[0, 2, 0, 0, 0, 5, 7, 3, 2, 0, 1]);
    // Not Modbus: recorded as data, dropped.
    let mut h = TcpStream::connect(r.addr).await.unwrap();
    h.write_all(b"GET / HTTP/1.0\r\n\r\n").await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(WAIT, h.read_to_end(&mut out))
        .await
        .unwrap()
        .unwrap();
    assert!(out.is_empty());
    drop(c);
    r.wait_disconnects(2).await;
    assert_eq!(
        r.commands(),
        [
            "function_8 unit=9 data=",
            "read_holding_registers unit=7 addr=0 count=1"
        ]
    );
    assert!(r.events.iter().any(
        |e| matches!(&e.kind, EventKind::Data { bytes, .. } if bytes.starts_with(b"GET / HTTP/1.0"))
    ));
    r.mgr.shutdown().await;
}

/// Two nodes (two data directories, two personas) run different plants; on each the
/// live block of holding registers mirrors the input registers, as one program scan
/// writes both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_run_different_plants() {
    tools::require(&["mbpoll"]);
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut ra = start(a.path(), "modbus", "127.0.0.1:0".parse().unwrap(), modbus()).await;
    let mut rb = start(b.path(), "modbus", "127.0.0.1:0".parse().unwrap(), modbus()).await;
    let regs = |out: &str, first: u16| {
        (first..first + 11)
            .map(|n| value(out, n))
            .collect::<Vec<_>>()
    };
    let pa = mbpoll(
        a.path(),
        ra.addr.port(),
        &["-t", "3", "-r", "1", "-c", "11", "127.0.0.1"],
    )
    .await;
    let pb = mbpoll(
        b.path(),
        rb.addr.port(),
        &["-t", "3", "-r", "1", "-c", "11", "127.0.0.1"],
    )
    .await;
    let (va, vb) = (regs(&pa.stdout, 1), regs(&pb.stdout, 1));
    // Pump hours (registers 5, 6) and the volume's high word (8) are counters a second
    // cannot move by much, and the seeds differ: so do they.
    assert_ne!(
        (va[4], va[5], va[7]),
        (vb[4], vb[5], vb[7]),
        "{va:?} {vb:?}"
    );
    let ha = mbpoll(
        a.path(),
        ra.addr.port(),
        &["-t", "4", "-r", "17", "-c", "11", "127.0.0.1"],
    )
    .await;
    let hb = regs(&ha.stdout, 17);
    assert_eq!(
        (hb[4], hb[5], hb[6]),
        (va[4], va[5], va[6]),
        "{}",
        ha.stdout
    );
    ra.wait_disconnects(2).await;
    rb.wait_disconnects(1).await;
    ra.mgr.shutdown().await;
    rb.mgr.shutdown().await;
}

/// UMAS (function 90) as scanners send it: READ_ID names the CPU module where
/// modicon-info.nse reads it, READ_PLC_INFO says running, an unknown code is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn umas_requests_get_m340_answers() {
    let dir = tempfile::tempdir().unwrap();
    let mut r = start(
        dir.path(),
        "modbus",
        "127.0.0.1:0".parse().unwrap(),
        modbus(),
    )
    .await;
    let mut c = TcpStream::connect(r.addr).await.unwrap();
    let mut ask = async |pdu: &[u8]| {
        let mut req = vec![0, 1, 0, 0, 0, pdu.len() as u8 + 1, 0];
        req.extend_from_slice(pdu);
        c.write_all(&req).await.unwrap();
        let mut head = [0u8; 7];
        tokio::time::timeout(WAIT, c.read_exact(&mut head))
            .await
            .unwrap()
            .unwrap();
        let mut body = vec![0u8; usize::from(u16::from_be_bytes([head[4], head[5]])) - 1];
        tokio::time::timeout(WAIT, c.read_exact(&mut body))
            .await
            .unwrap()
            .unwrap();
        let mut adu = head.to_vec();
        adu.extend_from_slice(&body);
        adu
    };
    let id = ask(&[0x5a, 0x00, 0x02]).await;
    // modicon-info.nse: the length at byte 33 of the reply (1-based), the name after it.
    let n = usize::from(id[32]);
    assert_eq!(&id[33..33 + n], b"BMX P34 2020");
    let info = ask(&[0x5a, 0x00, 0x04]).await;
    assert_eq!(info[7 + 63], 0x02, "running");
    let project = ask(&[0x5a, 0x00, 0x03, 0x00]).await;
    // The project name, NUL-terminated, at byte 50 (1-based).
    let name: Vec<u8> = project[49..]
        .iter()
        .copied()
        .take_while(|&b| b != 0)
        .collect();
    assert!(
        name.iter()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || *b == b'_'),
        "{name:?}"
    );
    assert!(name.len() > 4);
    assert_eq!(ask(&[0x5a, 0x00, 0x77]).await[7..], [0x5a, 0x00, 0xfd]);
    drop(c);
    r.wait_disconnects(1).await;
    assert!(
        r.commands()
            .iter()
            .any(|l| l == "umas unit=0 key=0 code=0x02 (read_id) data="),
        "{:?}",
        r.commands()
    );
    r.mgr.shutdown().await;
}
