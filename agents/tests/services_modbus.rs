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
    // Input registers and discrete inputs exist too; an address past the table does not.
    let rd = mbpoll(d, p, &["-t", "3", "-r", "1", "-c", "2", "127.0.0.1"]).await;
    assert!(rd.stdout.contains("[1]: \t200"), "{}", rd.stdout);
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
