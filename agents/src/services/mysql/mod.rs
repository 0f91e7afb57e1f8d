//! MySQL honeypot. By default it is what a Debian 12 node runs as "mysql": MariaDB 10.11
//! as Debian ships it (greeting, capabilities, collation, errors; `mariadb.rs`), the
//! version its point release had. `version = "8.0.x"` makes it a MySQL 8.0 instead: TLS
//! offered (rustls, a certificate like 8.0's auto-generated one; `tls.rs`) and accounts
//! on `caching_sha2_password` with its fast/full authentication exchange (`sha2.rs`).
//!
//! Every login is recorded: user, the auth response with its scramble in a form password
//! crackers read, the cleartext password where the client sends it (caching_sha2 full
//! authentication over TLS), database and client attributes. Every login is refused with
//! the server's own error.

pub(crate) mod mariadb;
pub(crate) mod packet;
mod rsakey;
mod sha2;
mod tls;

use super::ServiceContext;
use super::conn::Session;
use honeybee_proto::config::MysqlOptions;
use honeybee_proto::event::{AuthAttempt, AuthMethod, EventKind, MAX_FIELD_LEN, clamp};
use packet::{ClientHello, Greeting, HandshakeResponse};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;
use tokio::time::Instant;

/// The plugin MariaDB's accounts (and its greeting) use.
const NATIVE: &str = "mysql_native_password";
/// MySQL 8.0's default plugin.
const SHA2: &str = "caching_sha2_password";
/// `connect_timeout`'s default in both: the whole login must happen within it.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Which server the service is.
#[derive(Debug)]
enum Flavor {
    /// MariaDB; the server version without the greeting's `5.5.5-`.
    MariaDb { version: String },
    /// MySQL 8.0 with TLS.
    Mysql8 {
        version: String,
        tls: Arc<rustls::ServerConfig>,
        rsa: Arc<rsakey::RsaKeys>,
    },
}

/// A configured mysql service.
#[derive(Debug)]
pub(crate) struct MysqlService {
    flavor: Flavor,
    /// Connection ids (the greeting's thread id); started where a server up for a while
    /// would be, and kept below 2^24 (nmap's signature expects the fourth byte to be zero,
    /// as it is on any server that has not served 16 million connections).
    next_id: AtomicU32,
    timeout: Duration,
    /// Failed handshakes per client address (`max_connect_errors`).
    hosts: mariadb::HostCache,
}

/// The MariaDB version for a node and its options: the configured one (a bare
/// `10.11.6` gets Debian 12's suffix), or by default the one the node's Debian point
/// release shipped, so the service agrees with the shell's `/etc/debian_version`.
pub(crate) fn mariadb_version(configured: &str, debian_release: &str) -> String {
    let v = configured.trim();
    if v.is_empty() {
        mariadb::debian_version(debian_release).to_owned()
    } else if v.contains("MariaDB") {
        v.to_owned()
    } else {
        format!("{v}-MariaDB-0+deb12u1")
    }
}

impl MysqlService {
    pub(crate) fn new(opts: &MysqlOptions, ctx: &ServiceContext) -> Result<Self, String> {
        let v = opts.version.trim();
        let flavor = if v.starts_with("8.") {
            Flavor::Mysql8 {
                version: v.to_owned(),
                tls: tls::server_config(&ctx.data_dir, v)?,
                rsa: Arc::new(rsakey::load_or_create(&ctx.data_dir)?),
            }
        } else {
            Flavor::MariaDb {
                version: mariadb_version(v, ctx.persona.persona().kernel.debian_version),
            }
        };
        Ok(MysqlService {
            flavor,
            next_id: AtomicU32::new(rand::random_range(9..4000)),
            timeout: CONNECT_TIMEOUT.min(ctx.idle_timeout),
            hosts: mariadb::HostCache::default(),
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
        let ip = session.src.ip();
        if self.hosts.blocked(ip) {
            let admin = match self.flavor {
                Flavor::MariaDb { .. } => "mariadb-admin",
                Flavor::Mysql8 { .. } => "mysqladmin",
            };
            let _ = stream.write_all(&mariadb::host_blocked(ip, admin)).await;
        } else {
            tokio::select! {
                authenticated = self.login(session, &mut stream) => {
                    if !authenticated {
                        self.hosts.handshake_error(ip);
                    }
                }
                () = super::stopped(&mut stop) => {}
            }
        }
        let _ = tokio::time::timeout(Duration::from_millis(500), stream.shutdown()).await;
    }

    /// The login; whether it got as far as the password check (the rest are the
    /// handshake errors the host cache counts).
    async fn login<S>(&self, session: &Session, stream: &mut S) -> bool
    where
        S: AsyncRead + AsyncWrite + Unpin + Send,
    {
        let deadline = Instant::now() + self.timeout;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) % 0x00ff_ffff;
        let (greeting, scramble) = match &self.flavor {
            Flavor::MariaDb { version } => {
                let scramble = mariadb::scramble_from(rand::random());
                let v = mariadb::greeting_version(version);
                let g = Greeting {
                    version: &v,
                    caps: mariadb::CAPS,
                    charset: mariadb::CHARSET,
                    ext_caps: Some(mariadb::EXT_CAPS),
                    plugin: NATIVE,
                };
                (packet::greeting(&g, id, &scramble), scramble)
            }
            Flavor::Mysql8 { version, .. } => {
                let scramble = packet::scramble_from(rand::random());
                let g = Greeting {
                    version,
                    caps: packet::MYSQL8_CAPS,
                    charset: packet::MYSQL8_CHARSET,
                    ext_caps: None,
                    plugin: SHA2,
                };
                (packet::greeting(&g, id, &scramble), scramble)
            }
        };
        if stream.write_all(&greeting).await.is_err() {
            return false;
        }
        let payload = match next_packet(session, stream, 1, deadline).await {
            Ok(p) => p,
            Err(ReadFail::OutOfOrder) => {
                out_of_order(stream, true, 1).await;
                return false;
            }
            Err(_) => return false,
        };
        let proto41 = packet::speaks_41(&payload);
        let hello = match packet::parse_client_hello(&payload) {
            Ok(ClientHello::Login(h)) => h,
            Ok(ClientHello::SslRequest) => {
                if let Flavor::Mysql8 { tls, rsa, .. } = &self.flavor {
                    return self
                        .tls_login(session, stream, tls, rsa, &scramble, deadline)
                        .await;
                }
                // No TLS offered: MariaDB calls that a bad handshake.
                bad_handshake(stream, true, 2).await;
                return false;
            }
            Err(_) => {
                bad_handshake(stream, proto41, 2).await;
                return false;
            }
        };
        let login = Login {
            session,
            hello: &hello,
            scramble: &scramble,
            deadline,
            seq: 2,
            proto41,
        };
        match &self.flavor {
            Flavor::MariaDb { .. } => login.mariadb(stream).await,
            // MySQL 8.0 no longer speaks the pre-4.1 protocol at all.
            Flavor::Mysql8 { .. } if !proto41 => {
                bad_handshake(stream, false, 2).await;
                false
            }
            Flavor::Mysql8 { rsa, .. } => login.mysql8(stream, false, rsa).await,
        }
    }

    /// MySQL 8.0 after an SSLRequest: the handshake, then the login inside TLS.
    async fn tls_login<S>(
        &self,
        session: &Session,
        stream: &mut S,
        config: &Arc<rustls::ServerConfig>,
        rsa: &rsakey::RsaKeys,
        scramble: &[u8; 20],
        deadline: Instant,
    ) -> bool
    where
        S: AsyncRead + AsyncWrite + Unpin + Send,
    {
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::clone(config));
        let Ok(Ok(mut tls)) = tokio::time::timeout_at(deadline, acceptor.accept(stream)).await
        else {
            return false;
        };
        let authenticated = secured_login(session, &mut tls, rsa, scramble, deadline).await;
        let _ = tokio::time::timeout(Duration::from_millis(500), tls.shutdown()).await;
        authenticated
    }

    /// The MySQL 8.0 persona for the fuzz target (`fuzz_api::mysql8_packets`): its
    /// certificate and RSA pair kept in `data_dir`, no node persona needed.
    pub(crate) fn mysql8_for_fuzzing(
        version: &str,
        data_dir: &std::path::Path,
    ) -> Result<Self, String> {
        Ok(MysqlService {
            flavor: Flavor::Mysql8 {
                version: version.to_owned(),
                tls: tls::server_config(data_dir, version)?,
                rsa: Arc::new(rsakey::load_or_create(data_dir)?),
            },
            next_id: AtomicU32::new(9),
            timeout: CONNECT_TIMEOUT,
            hosts: mariadb::HostCache::default(),
        })
    }

    /// For the fuzz target: the login from the greeting on (`secured` false), or what
    /// follows the TLS handshake, with `stream` standing for the decrypted TLS stream
    /// (`secured` true: the client's bytes inside TLS, which no fuzzer could encrypt).
    /// Whether the password step was reached.
    pub(crate) async fn login_for_fuzzing<S>(
        &self,
        session: &Session,
        stream: &mut S,
        secured: bool,
    ) -> bool
    where
        S: AsyncRead + AsyncWrite + Unpin + Send,
    {
        if !secured {
            return self.login(session, stream).await;
        }
        let Flavor::Mysql8 { rsa, .. } = &self.flavor else {
            return false;
        };
        let deadline = Instant::now() + self.timeout;
        let scramble = packet::scramble_from(rand::random());
        secured_login(session, stream, rsa, &scramble, deadline).await
    }
}

/// MySQL 8.0 inside TLS: the handshake response (sequence 2), then the login.
async fn secured_login<S>(
    session: &Session,
    tls: &mut S,
    rsa: &rsakey::RsaKeys,
    scramble: &[u8; 20],
    deadline: Instant,
) -> bool
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let payload = match next_packet(session, tls, 2, deadline).await {
        Ok(p) => p,
        Err(ReadFail::OutOfOrder) => {
            out_of_order(tls, true, 2).await;
            return false;
        }
        Err(_) => return false,
    };
    let hello = match packet::parse_client_hello(&payload) {
        Ok(ClientHello::Login(h)) if h.caps & packet::cap::PROTOCOL_41 != 0 => h,
        _ => {
            bad_handshake(tls, true, 3).await;
            return false;
        }
    };
    let login = Login {
        session,
        hello: &hello,
        scramble,
        deadline,
        seq: 3,
        proto41: true,
    };
    login.mysql8(tls, true, rsa).await
}

/// One login after the client's handshake response.
struct Login<'a> {
    session: &'a Session,
    hello: &'a HandshakeResponse,
    scramble: &'a [u8; 20],
    deadline: Instant,
    /// The sequence number of the server's next packet.
    seq: u8,
    /// Whether the client speaks the 4.1 protocol (errors carry a SQL state).
    proto41: bool,
}

impl Login<'_> {
    /// The user name as the server converts it (see `mariadb::user_name`).
    fn user(&self) -> mariadb::UserName {
        mariadb::user_name(&self.hello.user, self.hello.charset)
    }

    fn host(&self) -> String {
        mariadb::client_host(self.session.src.ip())
    }

    /// The client's plugin: the one it names, else what its capabilities imply.
    fn client_plugin(&self) -> String {
        match &self.hello.plugin {
            Some(p) => String::from_utf8_lossy(p).into_owned(),
            None if self.hello.caps & packet::cap::SECURE_CONNECTION == 0 && !self.proto41 => {
                "mysql_old_password".to_owned()
            }
            None => NATIVE.to_owned(),
        }
    }

    /// Asks for `plugin`'s answer to the scramble.
    async fn switch<S>(&mut self, stream: &mut S, plugin: &str) -> Result<Vec<u8>, ReadFail>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        stream
            .write_all(&packet::auth_switch(self.seq, plugin, self.scramble))
            .await
            .map_err(|_| ReadFail::Gone)?;
        self.seq += 1;
        let answer = next_packet(self.session, stream, self.seq, self.deadline).await?;
        self.seq += 1;
        Ok(answer)
    }

    fn err(&self, code: u16, state: &str, msg: &str) -> Vec<u8> {
        packet::err_for(self.proto41, self.seq, code, state, msg)
    }

    async fn record(&self, plugin: &str, response: &[u8], password: Option<String>) {
        // What the client sent, not the server's conversion of it.
        let user = clamp(&String::from_utf8_lossy(&self.hello.user), MAX_FIELD_LEN);
        self.session
            .emit(EventKind::AuthAttempt(AuthAttempt {
                method: AuthMethod::Password,
                username: user,
                password: password.map(|p| clamp(&p, MAX_FIELD_LEN)),
                key_fingerprint: (!response.is_empty())
                    .then(|| clamp(&crackable(plugin, self.scramble, response), MAX_FIELD_LEN)),
                key_algorithm: Some(clamp(plugin, MAX_FIELD_LEN)),
                client_version: client_version(self.hello),
                success: false,
            }))
            .await;
        self.session
            .emit(EventKind::Command {
                line: clamp(&login_line(self.hello), MAX_FIELD_LEN),
            })
            .await;
    }

    /// `Access denied for user '<user>'@'<host>'`, the user in the client's character set.
    fn access_denied(&self) -> Vec<u8> {
        let mut msg = b"Access denied for user '".to_vec();
        msg.extend_from_slice(&self.user().shown);
        msg.extend_from_slice(format!("'@'{}'", self.host()).as_bytes());
        msg
    }

    /// 1045, as both servers word it.
    fn denied(&self, with_password: bool) -> Vec<u8> {
        let mut msg = self.access_denied();
        msg.extend_from_slice(if with_password {
            b" (using password: YES)"
        } else {
            b" (using password: NO)"
        });
        packet::err_bytes(self.proto41, self.seq, 1045, "28000", &msg)
    }

    /// 1698: how MariaDB refuses an account whose last method is unix_socket.
    fn denied_no_password(&self) -> Vec<u8> {
        packet::err_bytes(self.proto41, self.seq, 1698, "28000", &self.access_denied())
    }

    /// MariaDB 10.11: every account is on mysql_native_password, so other plugins are
    /// switched to it; the refusal is the (stand-in) account's. An account that may also
    /// use unix_socket answers every failure of the password step (a wrong answer, a
    /// malformed one, a packet out of order) with 1698, as the server falls through to
    /// unix_socket, which refuses TCP clients.
    ///
    /// Whether the password was checked (1045/1698), as opposed to a handshake error.
    async fn mariadb<S>(mut self, stream: &mut S) -> bool
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let plugin = self.client_plugin();
        let refusal = mariadb::refusal(&self.user().name, &self.host());
        let mut response = self.hello.auth_response.clone();
        if plugin == "mysql_old_password" {
            self.record(&plugin, &response, None).await;
            let answer = self.err(
                1251,
                "08004",
                "Client does not support authentication protocol requested by server; \
                 consider upgrading MariaDB client",
            );
            let _ = stream.write_all(&answer).await;
            return false;
        }
        if plugin != NATIVE {
            match self.switch(stream, NATIVE).await {
                Ok(r) => response = r,
                Err(ReadFail::OutOfOrder) => {
                    self.record(&plugin, &self.hello.auth_response, None).await;
                    let (answer, checked) = match refusal {
                        mariadb::Refusal::NoPassword => (self.denied_no_password(), true),
                        mariadb::Refusal::Password => {
                            (self.err(1156, "08S01", "Got packets out of order"), false)
                        }
                    };
                    let _ = stream.write_all(&answer).await;
                    return checked;
                }
                Err(_) => {
                    self.record(&plugin, &self.hello.auth_response, None).await;
                    return false;
                }
            }
        }
        self.record(NATIVE, &response, None).await;
        let (answer, checked) = match refusal {
            mariadb::Refusal::NoPassword => (self.denied_no_password(), true),
            // A native answer is a SHA-1 (20 bytes) or nothing.
            mariadb::Refusal::Password if !response.is_empty() && response.len() != 20 => {
                (self.err(1043, "08S01", "Bad handshake"), false)
            }
            mariadb::Refusal::Password => (self.denied(!response.is_empty()), true),
        };
        let _ = stream.write_all(&answer).await;
        checked
    }

    /// MySQL 8.0, accounts on caching_sha2_password: the fast-auth answer is recorded
    /// (crackable offline), then full authentication is asked for, which a client does
    /// with the cleartext password over TLS or RSA-encrypted without it (both recorded).
    async fn mysql8<S>(mut self, stream: &mut S, secure: bool, rsa: &rsakey::RsaKeys) -> bool
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let plugin = self.client_plugin();
        let mut response = self.hello.auth_response.clone();
        if plugin != SHA2 {
            match self.switch(stream, SHA2).await {
                Ok(r) => response = r,
                Err(fail) => {
                    if fail == ReadFail::OutOfOrder {
                        out_of_order(stream, self.proto41, self.seq).await;
                    }
                    // What the client had sent first is still worth keeping.
                    self.record(&plugin, &self.hello.auth_response, None).await;
                    return false;
                }
            }
        }
        if response.is_empty() {
            self.record(SHA2, &response, None).await;
            let _ = stream.write_all(&self.denied(false)).await;
            return true;
        }
        let outcome = sha2::full_auth(&mut self, stream, secure, rsa).await;
        self.record(SHA2, &response, outcome.password).await;
        match outcome.answer {
            Some(answer) => {
                let _ = stream.write_all(&answer).await;
                true
            }
            None => false,
        }
    }
}

/// Why no packet was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReadFail {
    /// The peer left, or the deadline passed.
    Gone,
    /// The header had another sequence number (nothing of the payload was read).
    OutOfOrder,
    /// Longer than the cap: read and dropped (the servers would wait for it all), then
    /// refused with a bad handshake if it all came.
    TooLarge,
}

/// Reads one packet with sequence number `want_seq` before `deadline`. A length over
/// the cap is checked as soon as the header is in, and nothing past it is kept.
async fn next_packet<S>(
    session: &Session,
    stream: &mut S,
    want_seq: u8,
    deadline: Instant,
) -> Result<Vec<u8>, ReadFail>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut head = [0u8; 4];
    read_exact(stream, &mut head, deadline)
        .await
        .ok_or(ReadFail::Gone)?;
    let len = usize::from(head[0]) | usize::from(head[1]) << 8 | usize::from(head[2]) << 16;
    if head[3] != want_seq {
        return Err(ReadFail::OutOfOrder);
    }
    if len > packet::MAX_CLIENT_PACKET {
        session
            .emit(EventKind::LimitReached {
                limit: "mysql_packet".into(),
                detail: format!(
                    "login packet of {len} bytes (cap {})",
                    packet::MAX_CLIENT_PACKET
                ),
            })
            .await;
        if discard(stream, len, deadline).await {
            bad_handshake(stream, true, want_seq.wrapping_add(1)).await;
        }
        return Err(ReadFail::TooLarge);
    }
    let mut payload = vec![0u8; len];
    read_exact(stream, &mut payload, deadline)
        .await
        .ok_or(ReadFail::Gone)?;
    Ok(payload)
}

async fn out_of_order<S: AsyncWrite + Unpin>(stream: &mut S, proto41: bool, seq: u8) {
    let _ = stream
        .write_all(&packet::err_for(
            proto41,
            seq,
            1156,
            "08S01",
            "Got packets out of order",
        ))
        .await;
}

async fn read_exact<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut [u8],
    deadline: Instant,
) -> Option<()> {
    match tokio::time::timeout_at(deadline, stream.read_exact(buf)).await {
        Ok(Ok(_)) => Some(()),
        _ => None,
    }
}

/// Reads and drops `n` bytes before `deadline`; whether they all came.
async fn discard<S: AsyncRead + Unpin>(stream: &mut S, mut n: usize, deadline: Instant) -> bool {
    let mut chunk = [0u8; 4096];
    while n > 0 {
        let want = n.min(chunk.len());
        match tokio::time::timeout_at(deadline, stream.read(&mut chunk[..want])).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return false,
            Ok(Ok(got)) => n -= got,
        }
    }
    true
}

async fn bad_handshake<S: AsyncWrite + Unpin>(stream: &mut S, proto41: bool, seq: u8) {
    let _ = stream
        .write_all(&packet::err_for(
            proto41,
            seq,
            1043,
            "08S01",
            "Bad handshake",
        ))
        .await;
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
    fn configured_mariadb_versions() {
        assert_eq!(mariadb_version("", "12.8"), "10.11.9-MariaDB-0+deb12u1");
        assert_eq!(
            mariadb_version("10.11.6", "12.8"),
            "10.11.6-MariaDB-0+deb12u1"
        );
        assert_eq!(
            mariadb_version("10.11.19-MariaDB-0+deb12u1", "12.8"),
            "10.11.19-MariaDB-0+deb12u1"
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
