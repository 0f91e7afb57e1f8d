//! Entry points for the fuzz targets in `agents/fuzz/` and for the seed-replay unit test:
//! each function drives one sans-IO parser or state machine that attacker bytes reach, the
//! way its driver in `services/` does (split into reads, lines or frames), and asserts the
//! invariants that driver relies on: no panic, consumed ≤ given, output within the caps.
//!
//! Not an API: it exists so the fuzz crate (outside the workspace) can reach
//! crate-private code. A failed assertion here is a bug in the service code.

use crate::scan::{ScanConfig, ScanDetector};
use crate::services::banner::BannerService;
use crate::services::conn::Session;
use crate::services::ftp::machine::{Machine, Step};
use crate::services::ftp::parse::{self as ftp_parse, Command, Line, LineBuffer};
use crate::services::http::first::{First, read_first};
use crate::services::modbus::mbap::{self, MAX_PDU};
use crate::services::modbus::plc::{self, Plc};
use crate::services::mysql::mariadb;
use crate::services::mysql::packet::{self, ClientHello, MAX_ATTRS, MAX_CLIENT_PACKET};
use crate::services::redis::commands::{Clock, Conn, Settings};
use crate::services::redis::info::ServerFacts;
use crate::services::redis::resp::{self, Caps, Parsed};
use crate::services::shell::line_editor::{self, Candidate, Editor, Event};
use crate::services::shell::telnet_codec::{self, TelnetCodec};
use crate::services::shell::{Login, Profile, Shell, ShellLimits};
use crate::services::smtp::machine::{
    Config as SmtpConfig, Machine as SmtpMachine, Next as SmtpNext, Step as SmtpStep,
};
use crate::services::ssh::{scp, sftp};
use crate::sink::{EventSink, new_session_id};
use honeybee_proto::config::{BannerOptions, ExtensionOptions, LoginPolicy, ModbusOptions};
use honeybee_proto::event::{EventKind, MAX_SCAN_PORTS};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A fixed "now" (2024-04-14), so runs are reproducible.
const NOW_S: i64 = 1_713_090_151;

/// Read sizes a driver may see: one byte (slowloris), small segments, full reads.
const READ_SIZES: [usize; 8] = [1, 2, 7, 64, 512, 1460, 2048, 4096];

/// Splits `data` into the reads a driver would get; `pick` chooses the size.
fn reads(data: &[u8], pick: u8) -> std::slice::Chunks<'_, u8> {
    data.chunks(READ_SIZES[usize::from(pick) % READ_SIZES.len()])
}

fn attacker() -> SocketAddr {
    SocketAddr::from(([203, 0, 113, 9], 40_000))
}

fn honeypot() -> SocketAddr {
    SocketAddr::from(([192, 0, 2, 10], 2323))
}

/// Shell caps smaller than the defaults, so a run reaches them quickly.
fn shell_limits() -> ShellLimits {
    ShellLimits {
        max_line: 1024,
        max_commands: 64,
        max_line_output: 16 * 1024,
        max_session_output: 64 * 1024,
        ..ShellLimits::default()
    }
}

/// Most output bytes a shell session may produce: the session cap plus the line that
/// crossed it, doubled for the terminal's `\n` → `\r\n`, plus what each typed byte may
/// echo (a redraw shows the prompt and the whole line).
fn shell_output_bound(l: &ShellLimits, typed: usize) -> usize {
    2 * (l.max_session_output + l.max_line_output) + 4096 + typed * (2 * l.max_line + 1024)
}

/// The emulated shell (parser and interpreter). The first byte picks the mode: bit 0 a
/// terminal (SSH pty, telnet) or not, bit 1 an SSH `exec` or typed input, bit 2 root or
/// a user, bits 3.. the read size. Typed input ends with end of file.
pub fn shell_line(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let limits = shell_limits();
    let login = Login {
        user: if mode & 4 == 0 { "root" } else { "admin" }.into(),
        src: attacker().ip(),
        now: NOW_S,
    };
    let tty = mode & 1 == 1;
    let mut sh = Shell::new(Profile::new("web-prod-02"), &login, tty, limits);
    let mut out = 0usize;
    if mode & 2 == 2 {
        let r = sh.exec(rest, NOW_S + 1);
        out += r.stdout.len() + r.stderr.len();
        assert!(r.exit.is_some(), "exec ends with an exit status");
        assert!(sh.ended());
    } else {
        let g = sh.greeting();
        out += g.stdout.len();
        for (i, chunk) in reads(rest, mode >> 3).enumerate() {
            let was_ended = sh.ended();
            let r = sh.input(chunk, NOW_S + 1 + i as i64);
            let n = r.stdout.len() + r.stderr.len();
            if was_ended {
                assert_eq!(n, 0, "an ended shell printed");
                assert!(r.effects.is_empty(), "an ended shell acted");
            }
            out += n;
        }
        let r = sh.eof(NOW_S + 100_000);
        out += r.stdout.len() + r.stderr.len();
        assert!(sh.ended(), "end of file ends the shell");
    }
    let bound = shell_output_bound(&limits, rest.len());
    assert!(out <= bound, "shell wrote {out} bytes, bound {bound}");
}

/// One SSH `exec` of `command` in a fresh non-terminal shell as root (or the user
/// `admin`): (stdout, stderr, exit status). For the oracle tests that compare the
/// emulated commands with Debian's own (`tests/shell_commands_oracle.rs`).
pub fn shell_exec(command: &str, root: bool) -> (Vec<u8>, Vec<u8>, u32) {
    let login = Login {
        user: if root { "root" } else { "admin" }.into(),
        src: attacker().ip(),
        now: NOW_S,
    };
    let mut sh = Shell::new(
        Profile::new("web-prod-02"),
        &login,
        false,
        ShellLimits::default(),
    );
    let r = sh.exec(command.as_bytes(), NOW_S + 1);
    (r.stdout, r.stderr, r.exit.unwrap_or(0))
}

/// The telnet codec, read by read, with its output typed into a terminal shell as the
/// telnet service does after login. The first byte picks the read size.
pub fn telnet_decode(data: &[u8]) {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let mut codec = TelnetCodec::default();
    // Negotiation over at once, so that the bytes reach the shell.
    let _ = codec.give_up();
    let limits = shell_limits();
    let login = Login {
        user: "root".into(),
        src: attacker().ip(),
        now: NOW_S,
    };
    let mut sh = Shell::new(Profile::new("web-prod-02"), &login, true, limits);
    let mut typed = 0usize;
    let mut out = 0usize;
    for chunk in reads(rest, pick) {
        let d = codec.decode(chunk);
        // Data held during negotiation (at most 4 KiB) comes out with the chunk that ends it.
        assert!(d.data.len() <= chunk.len() + 4096, "decoded data grew");
        assert!(
            d.reply.len() <= telnet_codec::reply_bound(chunk.len()),
            "{} reply bytes for {} input bytes",
            d.reply.len(),
            chunk.len()
        );
        assert!(d.events.len() <= chunk.len(), "more events than bytes");
        let esc = telnet_codec::escape(&d.data);
        assert!(esc.len() <= 2 * d.data.len());
        typed += d.data.len();
        let r = sh.input(&d.data, NOW_S + 1);
        out += r.stdout.len() + r.stderr.len();
    }
    let bound = shell_output_bound(&limits, typed);
    assert!(out <= bound, "shell wrote {out} bytes, bound {bound}");
}

/// The HTTP service's limits on the first request head (`services/http/mod.rs`).
const HTTP_MAX_BUF: usize = 8 * 1024;
const HTTP_MAX_HEADERS: usize = 1024;

/// The first request head of an HTTP connection (`http::first::read_first`, which runs
/// `httparse` under the service's limits). The first byte picks the read size.
pub fn http_head(data: &[u8]) {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let mut stream = Feed::new(rest, pick);
    let (first, buf) = block_on(read_first(
        &mut stream,
        HTTP_MAX_BUF,
        HTTP_MAX_HEADERS,
        Duration::from_secs(60),
    ));
    assert!(buf.len() <= HTTP_MAX_BUF + 1, "head buffer over the cap");
    assert!(rest.starts_with(&buf), "the head is not what was sent");
    match first {
        First::Gone => assert_eq!(buf.len(), rest.len(), "gave up before end of input"),
        First::Request => {
            let mut headers = vec![httparse::EMPTY_HEADER; HTTP_MAX_HEADERS];
            let parsed = httparse::Request::new(&mut headers).parse(&buf);
            assert!(
                matches!(parsed, Ok(httparse::Status::Complete(n)) if n <= HTTP_MAX_BUF),
                "accepted a head hyper's parser refuses: {parsed:?}"
            );
        }
        First::Refuse(status) => assert!(status == 400 || status == 431, "status {status}"),
    }
}

/// The FTP service's cap on commands per connection (`services/ftp/mod.rs`).
const FTP_MAX_COMMANDS: u32 = 2000;

/// The FTP control connection: the line splitter, the command parser and the vsFTPd
/// state machine, with the driver's side of each step (uploads "finish", every other
/// passive listener "fails"). The first byte picks the read size.
pub fn ftp_session(data: &[u8]) {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let mut lines = LineBuffer::default();
    let mut machine = Machine::new(6, "203.0.113.9".into(), Vec::new());
    let mut commands = 0u32;
    let mut checks = 0u32;
    let mut passives = 0u32;
    for chunk in reads(rest, pick) {
        lines.feed(chunk);
        while let Some(line) = lines.next_line() {
            let line = match line {
                Line::Complete(l) => l,
                // The driver answers 500 and closes.
                Line::TooLong => return,
            };
            assert!(line.len() <= ftp_parse::MAX_LINE, "line over the cap");
            commands += 1;
            if commands > FTP_MAX_COMMANDS {
                return;
            }
            let cmd = Command::parse(&line);
            assert!(cmd.verb.len() <= 8 && cmd.arg.len() <= 3 * line.len());
            match machine.command(&cmd) {
                Step::Reply(text) => assert!(text.len() <= 64 * 1024, "reply of {}", text.len()),
                Step::Close(_) => return,
                Step::Login { close, .. } if close => return,
                Step::Login { .. } => {}
                // The login memory's decision: the third attempt gets in.
                Step::Check { password, .. } => {
                    checks += 1;
                    let ok = checks.is_multiple_of(3);
                    if let Step::Login { close: true, .. } = machine.login(ok, password) {
                        return;
                    }
                }
                Step::Passive { .. } => {
                    passives += 1;
                    if passives.is_multiple_of(2) {
                        machine.passive_failed();
                    }
                }
                Step::Send { data, .. } => {
                    assert!(data.len() <= 1 << 20, "listing of {} bytes", data.len())
                }
                Step::Receive { path, .. } => {
                    assert!(path.len() <= 4 * ftp_parse::MAX_LINE + 64);
                    machine.stored(&path, line.len() as u64, "Apr 14 10:22".into(), None);
                }
            }
        }
    }
}

/// The Redis service's caps (`services/redis/mod.rs`).
const REDIS_MAX_COMMANDS: u64 = 20_000;

/// The Redis connection: the RESP parser under the service's caps and every command
/// against one connection's keyspace, with the clock moving a second per command. The
/// first byte picks the read size.
pub fn redis_session(data: &[u8]) {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let caps = Caps::default();
    let settings = Arc::new(Settings {
        facts: ServerFacts::new("7.2.4", "foobared".into(), NOW_S * 1000, "6.1.0-18-amd64"),
        require_auth: pick & 0x80 != 0,
        login: LoginPolicy::AfterAttempts(1),
        // In memory only: nothing is written to disk.
        node: crate::services::redis::keyspace::Node::memory(
            std::time::Duration::from_secs(7 * 86_400),
            NOW_S * 1000,
        ),
    });
    let mut conn = Conn::new(
        settings,
        attacker(),
        honeypot(),
        1,
        Clock {
            unix_ms: NOW_S * 1000,
        },
    );
    let mut buf: Vec<u8> = Vec::new();
    let mut commands = 0u64;
    for chunk in reads(rest, pick) {
        buf.extend_from_slice(chunk);
        loop {
            match resp::parse(&buf, &caps) {
                Ok(Parsed::Incomplete) => {
                    assert!(buf.len() <= caps.max_request, "incomplete past the cap");
                    break;
                }
                Ok(Parsed::Skip { consumed }) => {
                    assert!(consumed > 0 && consumed <= buf.len(), "skip of {consumed}");
                    buf.drain(..consumed);
                }
                Ok(Parsed::Request { args, consumed }) => {
                    assert!(consumed > 0 && consumed <= buf.len(), "consumed {consumed}");
                    assert!(consumed <= caps.max_request, "request over the cap");
                    assert!(!args.is_empty() && args.len() <= caps.max_args);
                    assert!(
                        args.iter()
                            .all(|a| a.len() <= caps.max_bulk.max(caps.max_inline))
                    );
                    buf.drain(..consumed);
                    commands += 1;
                    if commands > REDIS_MAX_COMMANDS {
                        return;
                    }
                    let _ = resp::render_args(&args);
                    let clock = Clock {
                        unix_ms: (NOW_S + commands as i64) * 1000,
                    };
                    let outcome = conn.execute(&args, clock);
                    if let Some(r) = outcome.reply {
                        let mut out = Vec::new();
                        r.encode(&mut out);
                        assert!(out.len() <= 4 << 20, "reply of {} bytes", out.len());
                    }
                    if let Some(cap) = outcome.capture {
                        assert!(cap.content.len() <= 4 << 20, "capture too large");
                    }
                    if outcome.close {
                        return;
                    }
                }
                Err(e) => {
                    let _ = e.reply();
                    return;
                }
            }
        }
    }
}

/// MySQL client packets: the framer under `MAX_CLIENT_PACKET`, and the handshake
/// response parser on every packet. The first byte picks the read size.
pub fn mysql_packets(data: &[u8]) {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let mut buf: Vec<u8> = Vec::new();
    for chunk in reads(rest, pick) {
        buf.extend_from_slice(chunk);
        loop {
            match packet::frame(&buf) {
                Ok(packet::Frame::Incomplete) => {
                    assert!(buf.len() < 4 + MAX_CLIENT_PACKET, "incomplete past the cap");
                    break;
                }
                Ok(packet::Frame::Packet {
                    payload, consumed, ..
                }) => {
                    assert_eq!(consumed, 4 + payload.len());
                    assert!(consumed <= buf.len() && payload.len() <= MAX_CLIENT_PACKET);
                    if let Ok(ClientHello::Login(h)) = packet::parse_client_hello(payload) {
                        assert!(h.attrs.len() <= MAX_ATTRS, "{} attributes", h.attrs.len());
                        let kept = h.user.len()
                            + h.auth_response.len()
                            + h.database.as_ref().map_or(0, Vec::len)
                            + h.plugin.as_ref().map_or(0, Vec::len);
                        assert!(kept <= payload.len(), "parsed more than was sent");
                        // The MariaDB persona converts the user name from the client's
                        // character set and decides the refusal from it.
                        let u = mariadb::user_name(&h.user, h.charset);
                        assert!(u.name.chars().count() <= 128, "user name not cut");
                        let _ = mariadb::refusal(&u.name, &mariadb::client_host(attacker().ip()));
                    }
                    buf.drain(..consumed);
                }
                Err(_) => return,
            }
        }
    }
}

/// The MySQL 8.0 persona's login, driven as `MysqlService::serve` drives it over an
/// in-memory peer: greeting, handshake response, SSLRequest and the rustls handshake on
/// whatever follows, caching_sha2_password's fast and full authentication, the RSA key
/// request and the decryption of a 256-byte answer, auth switches, sequence and size
/// errors. The first byte picks the read size; bit 0 of the second says whether the rest
/// is what the client sends inside TLS after the handshake (no fuzzer can encrypt it, so
/// that part is fed as the decrypted stream). Asserts: what the server writes stays
/// small, and what it records is within the event caps.
pub fn mysql8_packets(data: &[u8]) {
    use crate::services::mysql::MysqlService;
    use std::sync::OnceLock;
    let [pick, mode, rest @ ..] = data else {
        return;
    };
    // One persona per process: its RSA pair takes a moment to make; the files are kept
    // (and reused) in the temporary directory.
    static SERVICE: OnceLock<MysqlService> = OnceLock::new();
    let service = SERVICE.get_or_init(|| {
        let dir = std::env::temp_dir().join("honeybee-fuzz-mysql8");
        MysqlService::mysql8_for_fuzzing("8.0.36", &dir).expect("the MySQL 8.0 persona builds")
    });
    let (sink, mut events) = EventSink::channel(64);
    let session = Session {
        service: Arc::from("mysql"),
        id: new_session_id(),
        src: attacker(),
        dst: honeypot(),
        sink,
        captures: None,
    };
    let mut stream = Feed::new(rest, *pick);
    block_on(service.login_for_fuzzing(&session, &mut stream, mode & 1 == 1));
    // Greeting, an auth switch or AuthMoreData, the public key (451 bytes), one error.
    assert!(stream.written <= 4096, "wrote {} bytes", stream.written);
    let mut recorded = 0;
    while let Ok(ev) = events.try_recv() {
        recorded += 1;
        if let EventKind::AuthAttempt(a) = &ev.kind {
            assert!(a.username.len() <= honeybee_proto::event::MAX_FIELD_LEN);
            assert!(
                a.password
                    .as_ref()
                    .is_none_or(|p| p.len() <= honeybee_proto::event::MAX_FIELD_LEN)
            );
            assert!(!a.success, "a login succeeded");
        }
    }
    assert!(recorded <= 4, "{recorded} events for one login");
}

/// The Modbus service's cap on requests per connection (`services/modbus/mod.rs`).
const MODBUS_MAX_REQUESTS: u64 = 50_000;

/// Modbus/TCP: the MBAP framer, the PDU decoder and the emulated PLC, on the service's
/// 512-byte reads (or the size the first byte picks).
pub fn modbus_frames(data: &[u8]) {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let mut plc = Plc::new(&ModbusOptions::default());
    let mut buf: Vec<u8> = Vec::new();
    let mut requests = 0u64;
    for chunk in reads(rest, pick) {
        buf.extend_from_slice(chunk);
        loop {
            match mbap::frame(&buf) {
                Ok(mbap::Frame::Incomplete) => {
                    assert!(buf.len() < 7 + MAX_PDU + 1, "incomplete past one ADU");
                    break;
                }
                Ok(mbap::Frame::Adu {
                    header,
                    pdu,
                    consumed,
                }) => {
                    assert!(consumed <= buf.len() && !pdu.is_empty() && pdu.len() <= MAX_PDU);
                    requests += 1;
                    if requests > MODBUS_MAX_REQUESTS {
                        return;
                    }
                    let req = mbap::decode(pdu);
                    let _ = plc::describe(header.unit, pdu, &req);
                    let reply = plc.handle(&req);
                    assert!(
                        !reply.is_empty() && reply.len() <= MAX_PDU,
                        "reply PDU {}",
                        reply.len()
                    );
                    let adu = mbap::adu(header, &reply);
                    assert_eq!(adu.len(), 7 + reply.len());
                    buf.drain(..consumed);
                }
                Err(_) => return,
            }
        }
    }
}

/// What the extension service records of a connection: the peer's first bytes, bounded
/// (the banner driver over an in-memory stream), and the scan detector fed the
/// (source, port, time) triples the input spells, 7 bytes each.
pub fn extension_first_bytes(data: &[u8]) {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let opts = ExtensionOptions {
        max_capture_bytes: 256,
        ..ExtensionOptions::default()
    };
    // What `ExtensionService::new` builds from its options.
    let banner = BannerService::new(&BannerOptions {
        banner: opts.banner.clone(),
        max_capture_bytes: opts.max_capture_bytes,
        read_timeout_ms: opts.read_timeout_ms,
    });
    let (sink, mut events) = EventSink::channel(8);
    let session = Session {
        service: Arc::from("extension"),
        id: new_session_id(),
        src: attacker(),
        dst: honeypot(),
        sink,
        captures: None,
    };
    let mut stream = Feed::new(rest, pick);
    block_on(banner.serve(&session, &mut stream));
    let mut recorded = 0;
    while let Ok(ev) = events.try_recv() {
        if let EventKind::Data { bytes, truncated } = ev.kind {
            recorded += 1;
            assert!(bytes.len() <= 256, "kept {} bytes", bytes.len());
            assert!(rest.starts_with(&bytes), "kept bytes that were not sent");
            assert_eq!(truncated, rest.len() > 256);
        }
    }
    assert_eq!(
        recorded,
        usize::from(!rest.is_empty()),
        "first bytes recorded once"
    );

    let mut det = ScanDetector::new(ScanConfig {
        min_ports: 3,
        window_ms: 1000,
        ..ScanConfig::default()
    });
    let mut now = 0u64;
    for t in rest.chunks_exact(7) {
        let src = IpAddr::from([10, 0, t[0] & 0x0f, t[1] & 0x03]);
        let port = u16::from_be_bytes([t[2], t[3]]);
        now += u64::from(u32::from_be_bytes([0, t[4], t[5], t[6]]) % 4000);
        for r in det.observe(src, port, now) {
            assert!(r.ports.len() <= MAX_SCAN_PORTS && r.ports.is_sorted());
        }
    }
    for r in det.drain() {
        assert!(r.ports.len() <= MAX_SCAN_PORTS);
    }
}

/// The SMTP service's cap on a command line (`services/smtp/mod.rs`).
const SMTP_MAX_LINE: usize = 2048;

/// Most bytes one SMTP reply may take (EHLO's list is the longest).
const SMTP_MAX_REPLY: usize = 4096;

/// Splits the next command line off `buf` as the SMTP driver's `Input::line` does: at
/// most [`SMTP_MAX_LINE`] bytes, line ending dropped, the rest of a longer line skipped.
fn smtp_line(buf: &mut &[u8]) -> Option<Vec<u8>> {
    let nl = buf.iter().position(|&c| c == b'\n');
    let line = match nl {
        Some(i) if i <= SMTP_MAX_LINE => {
            let mut line = buf[..i].to_vec();
            *buf = &buf[i + 1..];
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            line
        }
        _ if buf.len() > SMTP_MAX_LINE => {
            let line = buf[..SMTP_MAX_LINE].to_vec();
            *buf = match buf[SMTP_MAX_LINE..].iter().position(|&c| c == b'\n') {
                Some(i) => &buf[SMTP_MAX_LINE + i + 1..],
                None => &[],
            };
            line
        }
        _ => return None,
    };
    Some(line)
}

fn smtp_reply_ok(step: &SmtpStep) {
    let r = &step.reply;
    assert!(r.len() <= SMTP_MAX_REPLY, "reply of {} bytes", r.len());
    assert!(
        r.is_empty() || r.ends_with("\r\n"),
        "reply not CRLF-terminated"
    );
    for l in r.split_terminator("\r\n") {
        let b = l.as_bytes();
        assert!(
            b.len() >= 4 && b[..3].iter().all(u8::is_ascii_digit) && (b[3] == b' ' || b[3] == b'-'),
            "reply line {l:?}"
        );
    }
}

/// The SMTP session machine (Postfix persona) under its driver's line splitter: command
/// lines, DATA messages up to the lone dot (dot-unstuffed sizes), BDAT chunks of their
/// announced size, and STARTTLS (the rest of the input is the "decrypted" stream). The
/// first byte's top bit starts on TLS already (port 465).
pub fn smtp_session(data: &[u8]) {
    let Some((&mode, mut rest)) = data.split_first() else {
        return;
    };
    // Small caps, so that runs reach them.
    let cfg = Arc::new(SmtpConfig {
        host: "mail.example.com".into(),
        max_message: 2048,
        max_recipients: 8,
        max_commands: 200,
        inode: AtomicU64::new(0x2A8),
    });
    let mut m = SmtpMachine::new(Arc::clone(&cfg), honeypot().ip(), mode & 0x80 != 0);
    assert!(m.greeting().ends_with("\r\n"));
    let mut lines = 0u32;
    while let Some(line) = smtp_line(&mut rest) {
        lines += 1;
        // Every command counts against max_commands; the machine closes past it.
        assert!(
            lines <= 4 * cfg.max_commands + 16,
            "{lines} lines without a close"
        );
        let step = m.line(&line);
        smtp_reply_ok(&step);
        let after = match step.next {
            SmtpNext::Command => continue,
            SmtpNext::Close => return,
            SmtpNext::StartTls => {
                m = SmtpMachine::new(Arc::clone(&cfg), honeypot().ip(), true);
                continue;
            }
            SmtpNext::Data => {
                let mut size = 0u64;
                let mut done = false;
                while !rest.is_empty() {
                    let end = rest
                        .iter()
                        .position(|&c| c == b'\n')
                        .map_or(rest.len(), |i| i + 1);
                    let l = &rest[..end];
                    rest = &rest[end..];
                    if l == b".\r\n" || l == b".\n" {
                        done = true;
                        break;
                    }
                    size += (l.len() - usize::from(l.first() == Some(&b'.'))) as u64;
                }
                if !done {
                    return;
                }
                m.data_done(size).0
            }
            SmtpNext::Bdat { size } => {
                let _ = (m.bdat_keeps(), m.bdat_is_last());
                let Ok(n) = usize::try_from(size) else {
                    return;
                };
                if n > rest.len() {
                    return;
                }
                let nl = rest[..n].last().is_none_or(|&b| b == b'\n');
                rest = &rest[n..];
                m.bdat_done(size, nl).0
            }
        };
        smtp_reply_ok(&after);
        if !matches!(after.next, SmtpNext::Command) {
            return;
        }
    }
    assert!(m.timeout().ends_with("\r\n"));
}

/// Checks that `data` is whole SFTP packets (length-prefixed, within the cap).
fn sftp_framed(mut data: &[u8]) {
    while !data.is_empty() {
        assert!(data.len() >= 5, "a partial packet header");
        let len = u32::from_be_bytes([data[0], data[1], data[2], data[3]]) as usize;
        assert!((1..=sftp::MAX_MSG).contains(&len), "packet of {len} bytes");
        assert!(data.len() >= 4 + len, "a partial packet");
        data = &data[4 + len..];
    }
}

/// The SFTP server (sftp-server persona) on a fresh root shell's filesystem, fed the
/// client's bytes a read at a time, then end of file. The first byte picks the read size.
pub fn sftp_session(data: &[u8]) {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let login = Login {
        user: "root".into(),
        src: attacker().ip(),
        now: NOW_S,
    };
    let mut sh = Shell::new(
        Profile::new("web-prod-02"),
        &login,
        false,
        ShellLimits::default(),
    );
    let (fs, home, uid) = sh.files();
    let local = |t: i64| t + 3600;
    let mut s = sftp::Sftp::new();
    let mut ended = false;
    let mut logged = 0usize;
    let mut uploaded = 0usize;
    let mut check = |out: sftp::Out, ended: &mut bool| {
        if *ended {
            assert!(
                out.data.is_empty() && out.uploads.is_empty(),
                "an ended server acted"
            );
        }
        sftp_framed(&out.data);
        for u in &out.uploads {
            assert!(
                u.data.len() <= sftp::MAX_UPLOAD,
                "upload of {}",
                u.data.len()
            );
            uploaded += u.data.len();
        }
        logged += out.logged.len();
        assert!(logged <= 256, "{logged} operations logged");
        *ended |= out.end;
    };
    for (i, chunk) in reads(rest, pick).enumerate() {
        let mut ctx = sftp::Ctx {
            fs: &mut *fs,
            home,
            uid,
            user: "root",
            now: NOW_S + i as i64,
            local: &local,
        };
        let out = s.input(chunk, &mut ctx);
        check(out, &mut ended);
    }
    let mut ctx = sftp::Ctx {
        fs: &mut *fs,
        home,
        uid,
        user: "root",
        now: NOW_S + 100_000,
        local: &local,
    };
    let out = s.eof(&mut ctx);
    check(out, &mut ended);
    assert!(ended, "end of file ends the server");
    assert!(uploaded <= 32 << 20, "{uploaded} bytes uploaded");
}

/// Targets a remote scp may be asked for.
const SCP_TARGETS: [&str; 4] = ["/tmp", "/root/.ssh/authorized_keys", "/etc", "."];

/// The legacy scp protocol (a remote `scp -t` or `scp -f`) on a fresh root shell's
/// filesystem. If the input starts with a line `scp::parse` recognises, that is the
/// command; else the first byte picks it (bit 0 sink, bit 1 `-r`, bit 2 `-d`, bits 3-4
/// the target); bits 5.. pick the read size.
pub fn scp_session(data: &[u8]) {
    let Some((&mode, mut rest)) = data.split_first() else {
        return;
    };
    let parsed = rest
        .iter()
        .take(512)
        .position(|&c| c == b'\n')
        .and_then(|i| scp::parse(&rest[..i]).map(|r| (r, i)));
    let req = match parsed {
        Some((req, i)) => {
            rest = &rest[i + 1..];
            req
        }
        None => scp::Request {
            sink: mode & 1 == 1,
            recursive: mode & 2 == 2,
            target_dir: mode & 4 == 4,
            target: SCP_TARGETS[usize::from(mode >> 3) % SCP_TARGETS.len()].into(),
        },
    };
    let login = Login {
        user: "root".into(),
        src: attacker().ip(),
        now: NOW_S,
    };
    let mut sh = Shell::new(
        Profile::new("web-prod-02"),
        &login,
        false,
        ShellLimits::default(),
    );
    let (fs, home, uid) = sh.files();
    let mut exited = false;
    let check = |out: &scp::Out, exited: &mut bool| {
        if *exited {
            assert!(out.uploads.is_empty(), "an exited scp stored a file");
        }
        for u in &out.uploads {
            assert!(
                u.data.len() <= sftp::MAX_UPLOAD,
                "upload of {}",
                u.data.len()
            );
        }
        *exited |= out.exit.is_some();
    };
    let (mut s, out) = scp::Scp::start(
        req,
        &mut scp::Ctx {
            fs: &mut *fs,
            home,
            uid,
            now: NOW_S,
        },
    );
    check(&out, &mut exited);
    for (i, chunk) in reads(rest, mode >> 5).enumerate() {
        let out = s.input(
            chunk,
            &mut scp::Ctx {
                fs: &mut *fs,
                home,
                uid,
                now: NOW_S + 1 + i as i64,
            },
        );
        check(&out, &mut exited);
    }
    let out = s.eof();
    check(&out, &mut exited);
}

/// A shell's side of the line editor without a shell: a fixed history and fixed
/// command and file names, some needing quotes, enough of them to reach the
/// "Display all N possibilities?" question and the `--More--` pager.
struct EditorContext {
    history: Vec<String>,
    columns: usize,
    rows: usize,
    /// Readline's multibyte (UTF-8 locale) mode, as the shell runs it, or the C locale's.
    utf8: bool,
}

const EDITOR_NAMES: [&str; 12] = [
    "ls", "lsblk", "wget", "wget2", "my file", "a$b", "dir", "link", "émigré", "x*y", "..hidden",
    ".ssh",
];

impl EditorContext {
    fn candidates(&self, prefix: &str, many: usize) -> Vec<Candidate> {
        let named = EDITOR_NAMES.iter().map(|n| (*n).to_owned());
        let numbered = (0..many).map(|i| format!("cmd{i:03}"));
        named
            .chain(numbered)
            .filter(|n| n.starts_with(prefix))
            .map(|name| Candidate {
                dir: name == "dir" || name == ".ssh",
                link_dir: name == "link",
                name,
            })
            .collect()
    }
}

impl line_editor::Context for EditorContext {
    fn prompt(&self) -> String {
        "root@web-prod-02:~# ".into()
    }

    fn history(&self) -> &[String] {
        &self.history
    }

    fn commands(&self, prefix: &str) -> Vec<Candidate> {
        self.candidates(prefix, 150)
    }

    fn paths(&self, dir: &str, prefix: &str) -> Vec<Candidate> {
        self.candidates(prefix, dir.len() % 40)
    }

    fn columns(&self) -> usize {
        self.columns
    }

    fn rows(&self) -> usize {
        self.rows
    }

    fn utf8(&self) -> bool {
        self.utf8
    }
}

/// The interactive line editor alone, key byte by key byte (escape sequences, bracketed
/// paste, history, completion, the pager), with its line cap small so that runs reach
/// it. The first two bytes pick the terminal's columns and rows (as the shell clamps
/// them; the second byte's top bit picks the UTF-8 locale's multibyte mode, which the
/// shell uses, over the C locale's). Entered lines join the history, as the shell's do.
pub fn line_editor_keys(data: &[u8]) {
    let [cols, rows, rest @ ..] = data else {
        return;
    };
    let cap = 256;
    let mut ctx = EditorContext {
        history: vec!["uname -a".into(), "cat /etc/passwd".into(), String::new()],
        columns: usize::from(*cols).clamp(1, 1000),
        rows: usize::from(*rows & 0x7f).clamp(2, 1000),
        utf8: *rows & 0x80 != 0,
    };
    let mut ed = Editor::new(cap);
    let mut out = Vec::new();
    for &b in rest {
        out.clear();
        let ev = ed.feed(b, &ctx, &mut out);
        // A listing may show every candidate; a redraw the prompt and the line.
        let names: usize = 200 * 24;
        assert!(
            out.len() <= 4096 + 4 * cap + names + 16 * ctx.columns,
            "{} bytes for one key",
            out.len()
        );
        match ev {
            Some(Event::Line(line)) => {
                assert!(
                    line.len() <= cap,
                    "line of {} bytes over the cap",
                    line.len()
                );
                if ctx.history.len() < 64 {
                    ctx.history
                        .push(String::from_utf8_lossy(&line).into_owned());
                }
                let _ = line_editor::expand_bang(&line, &ctx.history);
            }
            Some(Event::Interrupt | Event::Eof) | None => {}
        }
    }
}

/// Runs a future that never waits on a real socket (its stream is a [`Feed`]).
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    thread_local! {
        static RT: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("a current-thread runtime builds");
    }
    RT.with(|rt| rt.block_on(f))
}

/// An in-memory peer: reads hand out the input a read size at a time, then end of file;
/// writes are counted and dropped.
struct Feed<'a> {
    data: &'a [u8],
    step: usize,
    written: usize,
}

impl<'a> Feed<'a> {
    fn new(data: &'a [u8], pick: u8) -> Self {
        Feed {
            data,
            step: READ_SIZES[usize::from(pick) % READ_SIZES.len()],
            written: 0,
        }
    }
}

impl AsyncRead for Feed<'_> {
    fn poll_read(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let n = this.data.len().min(this.step).min(buf.remaining());
        buf.put_slice(&this.data[..n]);
        this.data = &this.data[n..];
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Feed<'_> {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, b: &[u8]) -> Poll<io::Result<usize>> {
        self.get_mut().written += b.len();
        Poll::Ready(Ok(b.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// What devices send an aggregator: the first byte picks syslog over TCP (split into
/// reads as the driver gets them, through `TcpFramer`), one syslog datagram, or one SNMP
/// trap datagram. Asserts the framer never holds or yields more than the cap, every event
/// built is one the core accepts, and an inform's Response is never larger than the inform.
pub fn device_messages(data: &[u8]) {
    use crate::services::detectors::aggregator::{TcpFramer, device_log, device_trap};
    use crate::services::detectors::{snmptrap, syslog};
    use honeybee_proto::event::Event;
    let [mode, pick, rest @ ..] = data else {
        return;
    };
    let valid = |kind: EventKind| {
        let e = Event {
            seq: 1,
            time_ms: 0,
            service: "office-devices".into(),
            session: None,
            src: Some(attacker()),
            dst: Some(honeypot()),
            kind,
        };
        assert_eq!(e.validate(), Ok(()), "{e:?}");
    };
    match mode % 3 {
        0 => {
            let mut f = TcpFramer::default();
            let mut out = Vec::new();
            for r in reads(rest, *pick) {
                let end = f.feed(r, &mut out);
                assert!(f.held() <= syslog::MAX_MESSAGE);
                for fr in out.drain(..) {
                    assert!(fr.bytes.len() <= syslog::MAX_MESSAGE);
                    valid(EventKind::DeviceLog(device_log(
                        "cam",
                        "tcp",
                        &fr.bytes,
                        fr.truncated,
                    )));
                }
                if end.is_err() {
                    break;
                }
            }
        }
        1 => {
            let n = rest.len().min(syslog::MAX_MESSAGE);
            let cut = rest.len() > n;
            valid(EventKind::DeviceLog(device_log(
                "cam",
                "udp",
                &rest[..n],
                cut,
            )));
        }
        _ => {
            let n = rest
                .len()
                .min(crate::services::detectors::aggregator::MAX_TRAP_DATAGRAM);
            if let Some(r) = snmptrap::inform_response(&rest[..n]) {
                assert!(r.len() <= n);
            }
            if let Some(t) = snmptrap::parse(&rest[..n]) {
                valid(EventKind::DeviceTrap(device_trap("ups", t)));
            }
        }
    }
}

/// A fuzz entry point.
pub type Target = fn(&[u8]);

/// Every fuzz entry point, by the name of its target and seed directory.
pub const TARGETS: &[(&str, Target)] = &[
    ("shell_line", shell_line),
    ("telnet_decode", telnet_decode),
    ("http_head", http_head),
    ("ftp_session", ftp_session),
    ("redis_session", redis_session),
    ("mysql_packets", mysql_packets),
    ("mysql8_packets", mysql8_packets),
    ("modbus_frames", modbus_frames),
    ("extension_first_bytes", extension_first_bytes),
    ("smtp_session", smtp_session),
    ("sftp_session", sftp_session),
    ("scp_session", scp_session),
    ("line_editor", line_editor_keys),
    ("device_messages", device_messages),
];

#[cfg(test)]
mod tests {
    use super::TARGETS;
    use std::path::Path;

    /// Replays every checked-in seed (and regression input) through its target, so the
    /// corpus runs in the normal suite without nightly or cargo-fuzz.
    #[test]
    fn fuzz_api_replays_every_seed() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds");
        for (name, run) in TARGETS {
            let dir = root.join(name);
            let mut files: Vec<_> = std::fs::read_dir(&dir)
                .unwrap_or_else(|e| panic!("seed directory {}: {e}", dir.display()))
                .map(|e| e.expect("directory entry").path())
                .collect();
            files.sort();
            assert!(!files.is_empty(), "no seeds for {name}");
            for f in files {
                let bytes = std::fs::read(&f).expect("seed readable");
                run(&bytes);
            }
        }
    }

    /// The empty input and one byte of every value reach each target's first branch.
    #[test]
    fn fuzz_api_tiny_inputs() {
        for (_, run) in TARGETS {
            run(&[]);
            for b in 0..=255u8 {
                run(&[b]);
                run(&[b, b'\n']);
            }
        }
    }
}
