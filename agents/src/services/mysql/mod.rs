//! MySQL honeypot: a MySQL 8.0 greeting of the configured version, the client's login
//! recorded (user, crackable auth response, database, client attributes), then the
//! server's own "Access denied". Clients that start with `caching_sha2_password` are
//! switched to `mysql_native_password` first, as a real server whose account uses it does.

pub(crate) mod packet;

use super::ServiceContext;
use super::conn::Session;
use honeybee_proto::config::MysqlOptions;
use honeybee_proto::event::{AuthAttempt, AuthMethod, EventKind, MAX_FIELD_LEN, clamp};
use packet::{ClientHello, Frame, HandshakeResponse, PacketError};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;
use tokio::time::Instant;

/// The plugin the greeting announces and every account "uses".
const NATIVE: &str = "mysql_native_password";
/// MySQL's `connect_timeout` default: the whole login must happen within it.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A configured mysql service.
#[derive(Debug)]
pub(crate) struct MysqlService {
    version: String,
    /// Connection ids, as `SELECT CONNECTION_ID()` would show; started where a server up
    /// for a while would be, and kept below 2^24 (nmap's signature expects the fourth byte
    /// to be zero, as it is on any server that has not served 16 million connections).
    next_id: AtomicU32,
    timeout: Duration,
}

impl MysqlService {
    pub(crate) fn new(opts: &MysqlOptions, ctx: &ServiceContext) -> Result<Self, String> {
        Ok(MysqlService {
            version: opts.version.clone(),
            next_id: AtomicU32::new(rand::random_range(9..4000)),
            timeout: CONNECT_TIMEOUT.min(ctx.idle_timeout),
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
        tokio::select! {
            () = self.login(session, &mut stream) => {}
            () = super::stopped(&mut stop) => {}
        }
        let _ = tokio::time::timeout(Duration::from_millis(500), stream.shutdown()).await;
    }

    async fn login<S>(&self, session: &Session, stream: &mut S)
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let deadline = Instant::now() + self.timeout;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) % 0x00ff_ffff;
        let scramble = packet::scramble_from(rand::random());
        if stream
            .write_all(&packet::greeting(&self.version, id, &scramble, NATIVE))
            .await
            .is_err()
        {
            return;
        }
        let mut buf = Vec::new();
        let (seq, payload) = match read_packet(stream, &mut buf, deadline).await {
            Ok(Some(p)) => p,
            Ok(None) => return,
            Err(e) => {
                refuse(session, stream, 2, &e).await;
                return;
            }
        };
        // The handshake response is packet 1; anything else (a client sending COM_QUIT
        // right after the greeting, as hydra's probe does) gets the connection dropped.
        if seq != 1 {
            return;
        }
        let hello = match packet::parse_client_hello(&payload) {
            Ok(ClientHello::Login(h)) => h,
            // TLS was not offered; a server without TLS drops such a client.
            Ok(ClientHello::SslRequest) => return,
            Err(e) => {
                refuse(session, stream, 2, &e).await;
                return;
            }
        };
        let mut plugin = match &hello.plugin {
            Some(p) => String::from_utf8_lossy(p).into_owned(),
            None if hello.caps & packet::cap::SECURE_CONNECTION != 0 => NATIVE.to_owned(),
            None => "mysql_old_password".to_owned(),
        };
        let mut response = hello.auth_response.clone();
        let mut seq = 2u8;
        if plugin != NATIVE && hello.caps & packet::cap::PLUGIN_AUTH != 0 {
            // The account's plugin is mysql_native_password: ask for that response.
            if stream
                .write_all(&packet::auth_switch(seq, NATIVE, &scramble))
                .await
                .is_ok()
                && let Ok(Some((s, switched))) = read_packet(stream, &mut buf, deadline).await
                && s == seq + 1
            {
                response = switched;
                plugin = NATIVE.to_owned();
                seq = s + 1;
            }
        }
        let user = clamp(&String::from_utf8_lossy(&hello.user), MAX_FIELD_LEN);
        session
            .emit(EventKind::AuthAttempt(AuthAttempt {
                method: AuthMethod::Password,
                username: user.clone(),
                password: None,
                key_fingerprint: (!response.is_empty())
                    .then(|| clamp(&crackable(&plugin, &scramble, &response), MAX_FIELD_LEN)),
                key_algorithm: Some(clamp(&plugin, MAX_FIELD_LEN)),
                client_version: client_version(&hello),
                success: false,
            }))
            .await;
        session
            .emit(EventKind::Command {
                line: clamp(&login_line(&hello), MAX_FIELD_LEN),
            })
            .await;
        let msg = format!(
            "Access denied for user '{}'@'{}' (using password: {})",
            user,
            session.src.ip().to_canonical(),
            if response.is_empty() { "NO" } else { "YES" }
        );
        let _ = stream
            .write_all(&packet::err(seq, 1045, "28000", &msg))
            .await;
    }
}

/// The auth response with the scramble it answers, in the form password crackers read:
/// `$mysqlna$<scramble>*<response>` (hashcat mode 11200, John's `mysqlna`) for
/// `mysql_native_password`; `<plugin>$<scramble>*<response>` otherwise.
fn crackable(plugin: &str, scramble: &[u8; 20], response: &[u8]) -> String {
    if plugin == NATIVE {
        format!(
            "$mysqlna${}*{}",
            hex::encode(scramble),
            hex::encode(response)
        )
    } else {
        format!(
            "{plugin}${}*{}",
            hex::encode(scramble),
            hex::encode(response)
        )
    }
}

fn attr<'a>(h: &'a HandshakeResponse, key: &str) -> Option<&'a [u8]> {
    h.attrs
        .iter()
        .find(|(k, _)| k == key.as_bytes())
        .map(|(_, v)| v.as_slice())
}

/// `_client_name _client_version` (`libmariadb 3.3.8`, `libmysql 8.0.36`, …).
fn client_version(h: &HandshakeResponse) -> Option<String> {
    let parts: Vec<String> = ["_client_name", "_client_version"]
        .iter()
        .filter_map(|k| attr(h, k))
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .collect();
    (!parts.is_empty()).then(|| clamp(&parts.join(" "), MAX_FIELD_LEN))
}

/// The whole login as one line:
/// `login user=root db=mysql plugin=mysql_native_password _client_name=libmariadb …`;
/// values that are not plain words are quoted with C escapes.
fn login_line(h: &HandshakeResponse) -> String {
    let mut line = format!("login user={}", word(&h.user));
    if let Some(db) = &h.database {
        line.push_str(&format!(" db={}", word(db)));
    }
    // The plugin the client started with tells client families apart.
    if let Some(p) = &h.plugin {
        line.push_str(&format!(" plugin={}", word(p)));
    }
    for (k, v) in &h.attrs {
        line.push_str(&format!(" {}={}", word(k), word(v)));
        if line.len() > MAX_FIELD_LEN {
            break;
        }
    }
    line
}

fn word(b: &[u8]) -> String {
    if !b.is_empty()
        && b.iter()
            .all(|&c| c.is_ascii_graphic() && c != b'"' && c != b'\\' && c != b'=')
    {
        return String::from_utf8_lossy(b).into_owned();
    }
    let mut s = String::from("\"");
    for &c in b.iter().take(MAX_FIELD_LEN) {
        match c {
            b'"' => s.push_str("\\\""),
            b'\\' => s.push_str("\\\\"),
            0x20..=0x7e => s.push(char::from(c)),
            _ => s.push_str(&format!("\\x{c:02x}")),
        }
    }
    s.push('"');
    s
}

/// Answers a malformed or oversized login the way MySQL does, records the cap if one was
/// hit, and lets the connection close.
async fn refuse<S: AsyncWrite + Unpin>(
    session: &Session,
    stream: &mut S,
    seq: u8,
    e: &PacketError,
) {
    if let PacketError::TooLarge(n) = e {
        session
            .emit(EventKind::LimitReached {
                limit: "mysql_packet".into(),
                detail: format!(
                    "login packet of {n} bytes (cap {})",
                    packet::MAX_CLIENT_PACKET
                ),
            })
            .await;
    }
    let _ = stream
        .write_all(&packet::err(seq, 1043, "08S01", "Bad handshake"))
        .await;
}

/// Reads one packet before `deadline`. `Ok(None)`: the peer left or the time ran out.
async fn read_packet<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut Vec<u8>,
    deadline: Instant,
) -> Result<Option<(u8, Vec<u8>)>, PacketError> {
    let mut chunk = [0u8; 2048];
    loop {
        if let Frame::Packet {
            seq,
            payload,
            consumed,
        } = packet::frame(buf)?
        {
            let p = (seq, payload.to_vec());
            buf.drain(..consumed);
            return Ok(Some(p));
        }
        // `frame` refused anything over the cap, so the buffer stays under it plus a read.
        match tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return Ok(None),
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crackable_form() {
        let s = [b'a'; 20];
        assert_eq!(
            crackable(NATIVE, &s, &[1, 2]),
            format!("$mysqlna${}*0102", "61".repeat(20))
        );
        assert!(
            crackable("caching_sha2_password", &s, &[1]).starts_with("caching_sha2_password$6161")
        );
    }

    #[test]
    fn login_line_quotes_what_is_not_a_word() {
        let h = HandshakeResponse {
            user: b"ro ot".to_vec(),
            database: Some(b"mysql".to_vec()),
            attrs: vec![
                (b"_client_name".to_vec(), b"libmariadb".to_vec()),
                (b"_os".to_vec(), b"a\0\"".to_vec()),
            ],
            ..HandshakeResponse::default()
        };
        assert_eq!(
            login_line(&h),
            "login user=\"ro ot\" db=mysql _client_name=libmariadb _os=\"a\\x00\\\"\""
        );
        assert_eq!(client_version(&h).as_deref(), Some("libmariadb"));
    }
}
