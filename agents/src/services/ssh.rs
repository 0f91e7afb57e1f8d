//! SSH honeypot on russh: looks like OpenSSH, records every login attempt (password,
//! public key, keyboard-interactive), lets passwords in by the service's login policy,
//! and then serves the emulated shell (interactive and exec) with an asciicast
//! transcript per session channel.

mod moduli;
pub(crate) mod scp;
pub(crate) mod sftp;

use super::SHUTDOWN_GRACE;
use super::conn::{Session, Tap};
use super::login::{LoginBook, pam_delay};
use super::shell::persist::{Loaded, OverlayStore};
use super::shell::pool::{self, LinePool};
use super::shell::transcript::{self, Transcript};
use super::shell::{Effect, Login, Profile, Reply, Shell, ShellLimits};
use honeybee_proto::capture::CaptureKind;
use honeybee_proto::config::{LoginPolicy, SshOptions};
use honeybee_proto::event::{AuthAttempt, AuthMethod, EventKind, MAX_FIELD_LEN, clamp};
use russh::keys::ssh_key::private::Ed25519Keypair;
use russh::keys::ssh_key::{self, LineEnding};
use russh::keys::{HashAlg, PrivateKey};
use russh::server::{
    Auth, ChannelOpenHandle, Config, Handle, Msg, PublicKeyOffer, Response, run_stream,
};
use russh::{Channel, ChannelId, Disconnect, MethodKind, MethodSet, Preferred, SshId};
use std::borrow::Cow;
use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;

/// File name of the persisted Ed25519 host key inside the agent's data directory.
pub const HOST_KEY_FILE: &str = "ssh_host_ed25519_key";

/// The host keys Debian's openssh-server creates on installation (`ssh-keygen -A`), under
/// Debian's file names, in the order sshd loads them (servconf.c's default HostKey list:
/// RSA, ECDSA, Ed25519). RSA keys are 3072 bits, ssh-keygen's default.
const HOST_KEYS: [(&str, HostKeyKind); 3] = [
    ("ssh_host_rsa_key", HostKeyKind::Rsa),
    ("ssh_host_ecdsa_key", HostKeyKind::EcdsaP256),
    (HOST_KEY_FILE, HostKeyKind::Ed25519),
];

/// ssh-keygen's default RSA modulus size (OpenSSH 9.2, `DEFAULT_BITS`).
const RSA_BITS: usize = 3072;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HostKeyKind {
    Rsa,
    EcdsaP256,
    Ed25519,
}

impl HostKeyKind {
    fn matches(self, key: &PrivateKey) -> bool {
        match self {
            HostKeyKind::Rsa => key.algorithm().is_rsa(),
            HostKeyKind::EcdsaP256 => {
                key.algorithm()
                    == ssh_key::Algorithm::Ecdsa {
                        curve: ssh_key::EcdsaCurve::NistP256,
                    }
            }
            HostKeyKind::Ed25519 => key.algorithm() == ssh_key::Algorithm::Ed25519,
        }
    }

    fn name(self) -> &'static str {
        match self {
            HostKeyKind::Rsa => "ssh-rsa",
            HostKeyKind::EcdsaP256 => "ecdsa-sha2-nistp256",
            HostKeyKind::Ed25519 => "ssh-ed25519",
        }
    }
}

/// Larger files cannot be a host key (a 16384-bit RSA key is about 12 KiB); refusing
/// them bounds the read.
const MAX_HOST_KEY_FILE: u64 = 64 * 1024;
/// The longest client identification line kept (RFC 4253 allows 255 bytes with CRLF).
const MAX_CLIENT_VERSION: usize = 255;

/// The longest identification line OpenSSH reads (`SSH_MAX_BANNER_LEN` in kex.c): one
/// more byte and it answers "Invalid SSH identification string.".
const MAX_IDENT_LINE: usize = 8192;

/// The longest identification line russh takes, CR LF included (its ssh_read.rs).
const RUSSH_MAX_IDENT_LINE: usize = 255;

/// Session channels open at once on one connection.
/// sshd's `MaxSessions` default: a multiplexing client (ControlMaster) opens its next
/// session before the last one's close has arrived, so a lower cap refuses what sshd
/// takes. [`MAX_CHANNELS_PER_CONNECTION`] still bounds the total.
const MAX_OPEN_CHANNELS: usize = 10;

/// Session channels one connection may open in all: each may leave a transcript.
const MAX_CHANNELS_PER_CONNECTION: u32 = 8;

/// Environment variables kept per channel.
const MAX_CHANNEL_ENV: usize = 16;

/// Why the SSH host key could not be loaded or created.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HostKeyError {
    #[error("SSH host key {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("SSH host key {path} is not an OpenSSH private key: {source}")]
    Parse {
        path: PathBuf,
        #[source]
        source: ssh_key::Error,
    },
    #[error("SSH host key {path} must be an unencrypted {expected} key (found {found})")]
    Unsupported {
        path: PathBuf,
        expected: &'static str,
        found: String,
    },
    #[error("SSH host key {path} is larger than {MAX_HOST_KEY_FILE} bytes")]
    TooLarge { path: PathBuf },
    #[error("cannot generate an SSH host key: no system randomness")]
    Random,
}

/// Loads the node's Ed25519 SSH host key from `dir`, creating it (mode 0600) on first
/// use, so that a honeypot keeps one identity across restarts as a real server does.
pub fn load_or_create_host_key(dir: &Path) -> Result<PrivateKey, HostKeyError> {
    load_or_create(dir, HOST_KEY_FILE, HostKeyKind::Ed25519)
}

/// Loads the node's RSA, ECDSA P-256 and Ed25519 host keys from `dir` (in that order,
/// sshd's), creating each missing one as Debian's package does on installation. An
/// Ed25519 key from before RSA and ECDSA were added is kept.
pub fn load_or_create_host_keys(dir: &Path) -> Result<Vec<PrivateKey>, HostKeyError> {
    HOST_KEYS
        .iter()
        .map(|&(file, kind)| load_or_create(dir, file, kind))
        .collect()
}

fn load_or_create(dir: &Path, file: &str, kind: HostKeyKind) -> Result<PrivateKey, HostKeyError> {
    let path = dir.join(file);
    match read_host_key(&path, kind) {
        Err(HostKeyError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
            create_host_key(dir, &path, kind)
        }
        r => r,
    }
}

fn read_host_key(path: &Path, kind: HostKeyKind) -> Result<PrivateKey, HostKeyError> {
    let io_err = |source| HostKeyError::Io {
        path: path.to_owned(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io_err)?;
    let meta = file.metadata().map_err(io_err)?;
    if meta.len() > MAX_HOST_KEY_FILE {
        return Err(HostKeyError::TooLarge {
            path: path.to_owned(),
        });
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if meta.permissions().mode() & 0o077 != 0 {
            tracing::warn!(path = %path.display(), "SSH host key is readable by group or others");
        }
    }
    let mut pem = String::new();
    file.take(MAX_HOST_KEY_FILE)
        .read_to_string(&mut pem)
        .map_err(io_err)?;
    let key = PrivateKey::from_openssh(pem.as_bytes()).map_err(|source| HostKeyError::Parse {
        path: path.to_owned(),
        source,
    })?;
    if key.is_encrypted() || !kind.matches(&key) {
        return Err(HostKeyError::Unsupported {
            path: path.to_owned(),
            expected: kind.name(),
            found: if key.is_encrypted() {
                "an encrypted key".into()
            } else {
                key.algorithm().to_string()
            },
        });
    }
    Ok(key)
}

/// A new key of `kind`, from a ChaCha20 generator seeded by the system's randomness (the
/// key generators want a `rand_core` 0.10 generator; seeding one from ring keeps a
/// failing system source an error rather than a panic).
fn generate_host_key(kind: HostKeyKind) -> Result<PrivateKey, HostKeyError> {
    use rand_chacha::rand_core::SeedableRng;
    let mut seed = [0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut seed)
        .map_err(|_| HostKeyError::Random)?;
    let key = match kind {
        HostKeyKind::Ed25519 => Ok(PrivateKey::from(Ed25519Keypair::from_seed(&seed))),
        HostKeyKind::EcdsaP256 => {
            let mut rng = rand_chacha::ChaCha20Rng::from_seed(seed);
            ssh_key::private::EcdsaKeypair::random(&mut rng, ssh_key::EcdsaCurve::NistP256)
                .map(PrivateKey::from)
        }
        HostKeyKind::Rsa => {
            let mut rng = rand_chacha::ChaCha20Rng::from_seed(seed);
            ssh_key::private::RsaKeypair::random(&mut rng, RSA_BITS).map(PrivateKey::from)
        }
    };
    seed.fill(0);
    key.map_err(|_| HostKeyError::Random)
}

fn create_host_key(dir: &Path, path: &Path, kind: HostKeyKind) -> Result<PrivateKey, HostKeyError> {
    let io_err = |source| HostKeyError::Io {
        path: path.to_owned(),
        source,
    };
    let key = generate_host_key(kind)?;
    let pem = key
        .to_openssh(LineEnding::LF)
        .map_err(|source| HostKeyError::Parse {
            path: path.to_owned(),
            source,
        })?;

    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(io_err)?;

    // Written whole under a temporary name, then linked into place: a crash never leaves
    // a half-written key, and of two racing agents the first wins and both use its key.
    let file = path
        .file_name()
        .and_then(|f| f.to_str())
        .unwrap_or("ssh_host_key");
    let tmp = dir.join(format!(
        "{file}.tmp-{}",
        hex::encode(rand::random::<[u8; 8]>())
    ));
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let written = (|| {
        let mut f = opts.open(&tmp)?;
        f.write_all(pem.as_bytes())?;
        f.sync_all()?;
        std::fs::hard_link(&tmp, path)
    })();
    let _ = std::fs::remove_file(&tmp);
    match written {
        Ok(()) => {
            tracing::info!(path = %path.display(), "created SSH host key");
            Ok(key)
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => read_host_key(path, kind),
        Err(e) => Err(io_err(e)),
    }
}

/// The host keys' public halves as Debian's `/etc/ssh/ssh_host_*_key.pub` files hold
/// them: (path, contents), where the contents are `ALGORITHM BASE64 root@HOSTNAME` and a
/// newline (ssh-keygen -A comments each key with the user and host that made it). For the
/// emulated shell, so that the files it shows are the keys the client just saw.
// Called by `SshService::new`; the node persona puts them in the shell's /etc/ssh.
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) fn host_public_key_files(keys: &[PrivateKey], hostname: &str) -> Vec<(String, String)> {
    keys.iter()
        .filter_map(|key| {
            let (file, _) = HOST_KEYS.iter().find(|(_, kind)| kind.matches(key))?;
            let mut public = key.public_key().clone();
            public.set_comment(format!("root@{hostname}"));
            let text = public.to_openssh().ok()?;
            Some((format!("/etc/ssh/{file}.pub"), format!("{text}\n")))
        })
        .collect()
}

/// A configured SSH service: the russh server configuration built from its options.
pub(crate) struct SshService {
    config: Arc<Config>,
    /// The identification line we send (without CR LF), before russh takes over.
    server_id: String,
    idle_timeout: Duration,
    max_auth_attempts: u32,
    policy: Arc<LoginPolicy>,
    /// The node's login memory, shared with Telnet (one set of system accounts).
    logins: Arc<LoginBook>,
    remember_s: u64,
    /// What intruders wrote, kept per source for `remember` (shared with Telnet).
    overlays: Arc<OverlayStore>,
    /// A failed password waits about this long (see [`pam_delay`]).
    failure_delay: Duration,
    profile: Arc<Profile>,
    transcript_cap: usize,
}

impl std::fmt::Debug for SshService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SshService")
            .field("server_id", &self.config.server_id)
            .finish_non_exhaustive()
    }
}

/// Algorithm lists exactly as Debian 12's sshd (OpenSSH 9.2p1, package 1:9.2p1-2+deb12u10
/// with the Terrapin fix) sends them in its KEXINIT with its default configuration and
/// host keys, so the KEXINIT does not give the honeypot away (tests/ssh_oracle.rs reads
/// both servers' KEXINIT and compares the lists). Unlike russh's defaults this offers no
/// ML-KEM (new in OpenSSH 9.9) and no `ext-info-s` (OpenSSH 9.2's server does not
/// announce it; it still answers a client's `ext-info-c`, see [`openssh_ext_info`]).
fn openssh_like_algorithms() -> Preferred {
    use russh::keys::{Algorithm, EcdsaCurve};
    use russh::{cipher, compression, kex, mac};
    Preferred {
        kex: Cow::Borrowed(&[
            kex::SNTRUP761X25519_SHA512,
            kex::SNTRUP761X25519_SHA512_OPENSSH,
            kex::CURVE25519,
            kex::CURVE25519_PRE_RFC_8731,
            kex::ECDH_SHA2_NISTP256,
            kex::ECDH_SHA2_NISTP384,
            kex::ECDH_SHA2_NISTP521,
            kex::DH_GEX_SHA256,
            kex::DH_G16_SHA512,
            kex::DH_G18_SHA512,
            kex::DH_G14_SHA256,
            kex::EXTENSION_OPENSSH_STRICT_KEX_AS_SERVER,
        ]),
        // Filtered by russh to the keys we have: all three, see HOST_KEYS.
        key: Cow::Owned(vec![
            Algorithm::Rsa {
                hash: Some(HashAlg::Sha512),
            },
            Algorithm::Rsa {
                hash: Some(HashAlg::Sha256),
            },
            Algorithm::Ecdsa {
                curve: EcdsaCurve::NistP256,
            },
            Algorithm::Ed25519,
        ]),
        cipher: Cow::Borrowed(&[
            cipher::CHACHA20_POLY1305,
            cipher::AES_128_CTR,
            cipher::AES_192_CTR,
            cipher::AES_256_CTR,
            cipher::AES_128_GCM,
            cipher::AES_256_GCM,
        ]),
        mac: Cow::Borrowed(&[
            mac::UMAC_64_ETM,
            mac::UMAC_128_ETM,
            mac::HMAC_SHA256_ETM,
            mac::HMAC_SHA512_ETM,
            mac::HMAC_SHA1_ETM,
            mac::UMAC_64,
            mac::UMAC_128,
            mac::HMAC_SHA256,
            mac::HMAC_SHA512,
            mac::HMAC_SHA1,
        ]),
        compression: Cow::Borrowed(&[compression::NONE, compression::ZLIB_LEGACY]),
        ..Preferred::default()
    }
}

/// OpenSSH 9.2's `SSH_MSG_EXT_INFO` for a client that sends `ext-info-c` (kex.c,
/// `kex_send_ext_info`): `server-sig-algs` lists every signature algorithm sshd accepts
/// for public keys (not just its host key types), then `publickey-hostbound@openssh.com`
/// version "0". Compared with the real server's by tests/ssh_oracle.rs.
fn openssh_ext_info() -> Vec<(String, Vec<u8>)> {
    vec![
        (
            "server-sig-algs".into(),
            b"ssh-ed25519,sk-ssh-ed25519@openssh.com,ecdsa-sha2-nistp256,ecdsa-sha2-nistp384,\
ecdsa-sha2-nistp521,sk-ecdsa-sha2-nistp256@openssh.com,webauthn-sk-ecdsa-sha2-nistp256@openssh.com,\
ssh-dss,ssh-rsa,rsa-sha2-256,rsa-sha2-512"
                .to_vec(),
        ),
        ("publickey-hostbound@openssh.com".into(), b"0".to_vec()),
    ]
}

/// The methods offered, in OpenSSH's order, as a client sees them after each failure:
/// Debian 12's sshd_config sets `KbdInteractiveAuthentication no`, so its sshd offers
/// only "publickey,password" (checked against the real sshd by tests/ssh_oracle.rs).
fn offered_methods() -> MethodSet {
    MethodSet::from(&[MethodKind::PublicKey, MethodKind::Password][..])
}

/// How the identification exchange ended, as OpenSSH 9.2's `kex_exchange_identification`
/// (kex.c) ends it for a server.
#[derive(Debug, PartialEq, Eq)]
enum Ident {
    /// A version line OpenSSH accepts: the line as sent, without its CR LF.
    Accepted(Vec<u8>),
    /// Refused with this message (OpenSSH's `send_error`, followed by CR LF).
    Refused(&'static str),
    /// Closed without a word (the peer left, or OpenSSH's "probed"/"scanned" compat cases).
    Silent,
}

/// Reads the client's identification line byte by byte as OpenSSH does (what follows it
/// stays unread in the socket, so closing with it unread resets the connection as
/// OpenSSH's does) and judges it by kex.c's rules.
async fn read_client_ident<S: AsyncRead + Unpin>(stream: &mut S) -> Ident {
    let mut line = Vec::new();
    let mut expect_nl = false;
    let mut byte = [0u8; 1];
    loop {
        match stream.read(&mut byte).await {
            Ok(1) => {}
            _ => return Ident::Silent,
        }
        match byte[0] {
            b'\r' => expect_nl = true,
            b'\n' => break,
            // "banner line contains invalid characters"
            0 => return Ident::Refused(INVALID_IDENT),
            _ if expect_nl => return Ident::Refused(INVALID_IDENT),
            c => {
                line.push(c);
                if line.len() > MAX_IDENT_LINE {
                    return Ident::Refused(INVALID_IDENT);
                }
            }
        }
    }
    judge_ident(line)
}

const INVALID_IDENT: &str = "Invalid SSH identification string.";

/// kex.c's checks on a whole line: a server takes no lines before the version, then
/// `sscanf(line, "SSH-%d.%d-%[^\n]\n")` must match, the major version be 2 (or 1.99),
/// and the software version not one of compat.c's probes or scanners.
fn judge_ident(line: Vec<u8>) -> Ident {
    if line.len() <= 4 || !line.starts_with(b"SSH-") {
        return Ident::Refused(INVALID_IDENT);
    }
    let mut rest = &line[4..];
    let Some(major) = scan_c_int(&mut rest) else {
        return Ident::Refused(INVALID_IDENT);
    };
    let Some(r) = rest.strip_prefix(b".") else {
        return Ident::Refused(INVALID_IDENT);
    };
    rest = r;
    let Some(minor) = scan_c_int(&mut rest) else {
        return Ident::Refused(INVALID_IDENT);
    };
    let Some(software) = rest.strip_prefix(b"-").filter(|s| !s.is_empty()) else {
        return Ident::Refused(INVALID_IDENT);
    };
    if !(major == 2 || (major == 1 && minor == 99)) {
        return Ident::Refused("Protocol major versions differ.");
    }
    // compat.c: SSH_BUG_PROBE ("Probe-*") and SSH_BUG_SCANNER ("*SSH_Version_Mapper*")
    // make sshd hang up at once.
    if software.starts_with(b"Probe-")
        || software
            .windows(b"SSH_Version_Mapper".len())
            .any(|w| w == b"SSH_Version_Mapper")
    {
        return Ident::Silent;
    }
    Ident::Accepted(line)
}

/// C's `%d` conversion: optional white space, an optional sign, at least one digit.
/// Values beyond `i32` saturate (never 1 or 2, which is all that matters here).
fn scan_c_int(s: &mut &[u8]) -> Option<i64> {
    let mut i = 0;
    while s
        .get(i)
        .is_some_and(|c| matches!(c, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r'))
    {
        i += 1;
    }
    let negative = match s.get(i) {
        Some(b'-') => {
            i += 1;
            true
        }
        Some(b'+') => {
            i += 1;
            false
        }
        _ => false,
    };
    let start = i;
    let mut value: i64 = 0;
    while let Some(d) = s.get(i).filter(|c| c.is_ascii_digit()) {
        value = value.saturating_mul(10).saturating_add(i64::from(d - b'0'));
        i += 1;
    }
    if i == start {
        return None;
    }
    *s = &s[i..];
    Some(if negative { -value } else { value }.clamp(i64::from(i32::MIN), i64::from(i32::MAX)))
}

/// The stream russh gets after the identification exchange we did ourselves: it reads
/// the client's line again first, and the server line it writes (already sent) is dropped.
struct Replayed<S> {
    inner: S,
    replay: Vec<u8>,
    replayed: usize,
    sent: Vec<u8>,
    skipped: usize,
}

impl<S: AsyncRead + Unpin> AsyncRead for Replayed<S> {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(left) = this.replay.get(this.replayed..).filter(|l| !l.is_empty()) {
            let n = left.len().min(buf.remaining());
            buf.put_slice(&left[..n]);
            this.replayed += n;
            return std::task::Poll::Ready(Ok(()));
        }
        std::pin::Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Replayed<S> {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        data: &[u8],
    ) -> std::task::Poll<io::Result<usize>> {
        let this = self.get_mut();
        if let Some(left) = this.sent.get(this.skipped..).filter(|l| !l.is_empty()) {
            let n = left.len().min(data.len());
            if left[..n] == data[..n] {
                this.skipped += n;
                return std::task::Poll::Ready(Ok(n));
            }
            // Not the line we sent (cannot happen with russh's run_stream): pass it on.
            this.skipped = this.sent.len();
        }
        std::pin::Pin::new(&mut this.inner).poll_write(cx, data)
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// Sends our identification line and judges the client's; on success returns the stream
/// for russh, else answers as OpenSSH would and returns `None` (the caller closes).
async fn exchange_ident<S>(id: &str, mut stream: S) -> Option<Replayed<S>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let sent = format!("{id}\r\n").into_bytes();
    stream.write_all(&sent).await.ok()?;
    match read_client_ident(&mut stream).await {
        Ident::Accepted(line) => {
            // russh re-reads the line and takes only "SSH-2.0-" / "SSH-1.99-" lines of
            // at most 255 bytes; it hashes the line as sent, so it cannot be rewritten.
            // OpenSSH accepts more (e.g. "SSH-2.5-x", 8 KiB lines): those still end in
            // russh's silent close, a difference written down in the notes.
            let mut replay = line;
            replay.extend_from_slice(b"\r\n");
            if replay.len() > RUSSH_MAX_IDENT_LINE
                || !(replay.starts_with(b"SSH-2.0-") || replay.starts_with(b"SSH-1.99-"))
            {
                tracing::debug!(len = replay.len(), "ssh identification russh cannot take");
            }
            Some(Replayed {
                inner: stream,
                replay,
                replayed: 0,
                sent,
                skipped: 0,
            })
        }
        Ident::Refused(msg) => {
            let _ = stream.write_all(format!("{msg}\r\n").as_bytes()).await;
            let _ = stream.flush().await;
            None
        }
        Ident::Silent => None,
    }
}

impl SshService {
    /// Checks the options beyond what the wire validation does and builds the server
    /// configuration.
    pub(crate) fn new(
        opts: &SshOptions,
        host_keys: Vec<PrivateKey>,
        idle_timeout: Duration,
        logins: Arc<LoginBook>,
        overlays: Arc<OverlayStore>,
        persona: &Arc<crate::persona::NodePersona>,
    ) -> Result<Self, String> {
        let id = &opts.server_id;
        if !id.starts_with("SSH-2.0-") || id.len() > 253 {
            return Err("server_id must start with SSH-2.0- and be at most 253 bytes".into());
        }
        if !id.bytes().all(|b| (0x20..0x7f).contains(&b)) {
            return Err("server_id must be printable ASCII".into());
        }
        if opts.max_auth_attempts == 0 {
            return Err("max_auth_attempts must be at least 1".into());
        }
        if !super::shell::valid_hostname(&opts.hostname) {
            return Err("hostname: 1 to 64 of a-z, A-Z, 0-9, '-', '.'".into());
        }
        let delay = Duration::from_millis(u64::from(opts.auth_failure_delay_ms.min(10_000)));
        let profile = Profile::for_node(persona, &opts.hostname);
        persona.set_host_key_files(host_public_key_files(&host_keys, &profile.hostname));
        let config = Config {
            server_id: SshId::Standard(Cow::Owned(id.clone())),
            methods: offered_methods(),
            // The handler waits itself, for failed passwords only: OpenSSH refuses a
            // public key or the initial "none" probe at once; PAM delays a password.
            auth_rejection_time: Duration::ZERO,
            auth_rejection_time_initial: Some(Duration::ZERO),
            keys: host_keys,
            // A backstop only: the handler counts failures as OpenSSH does (the first
            // "none" probe is free) and disconnects itself. russh counts that probe.
            max_auth_attempts: opts.max_auth_attempts as usize + 1,
            inactivity_timeout: Some(idle_timeout),
            keepalive_interval: None,
            nodelay: true,
            preferred: openssh_like_algorithms(),
            ext_info: Some(openssh_ext_info()),
            // sshd announces its host keys after authentication (hostkeys-00) and proves
            // them on request, for clients with UpdateHostKeys.
            announce_host_keys: true,
            ..Config::default()
        };
        Ok(SshService {
            config: Arc::new(config),
            server_id: id.clone(),
            idle_timeout,
            max_auth_attempts: opts.max_auth_attempts,
            policy: Arc::new(opts.login.clone()),
            logins,
            remember_s: opts.remember.secs(),
            overlays,
            failure_delay: delay,
            profile,
            transcript_cap: opts
                .max_transcript_bytes
                .min(honeybee_proto::config::MAX_TRANSCRIPT_BYTES)
                as usize,
        })
    }

    /// Serves one connection until the client leaves, the session is killed through the
    /// stream, or the service stops (then the client gets a disconnect message first).
    pub(crate) async fn serve<S>(
        &self,
        session: &Session,
        stream: S,
        tap: Arc<Tap>,
        mut stop: watch::Receiver<bool>,
    ) where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let handle = Arc::new(OnceLock::new());
        let channels: Arc<Mutex<HashMap<ChannelId, Chan>>> = Arc::default();
        let files: Arc<Mutex<Option<Shell>>> = Arc::default();
        let loaded: Arc<Mutex<Loaded>> = Arc::default();
        let handler = SshHandler {
            session: session.clone(),
            tap,
            client_version: None,
            handle: Arc::clone(&handle),
            requests: 0,
            failures: 0,
            max_failures: self.max_auth_attempts,
            policy: Arc::clone(&self.policy),
            logins: Arc::clone(&self.logins),
            remember_s: self.remember_s,
            overlays: Arc::clone(&self.overlays),
            loaded: Arc::clone(&loaded),
            failure_delay: self.failure_delay,
            profile: Arc::clone(&self.profile),
            transcript_cap: self.transcript_cap,
            user: None,
            channels: Arc::clone(&channels),
            opened: 0,
            files: Arc::clone(&files),
            forwards: 0,
            pending_forwards: Arc::default(),
        };
        // The identification exchange is ours, so that bad lines get OpenSSH's answers
        // (russh closes silently); russh then sees the client's line replayed.
        let handshake = async {
            let ident =
                tokio::time::timeout(self.idle_timeout, exchange_ident(&self.server_id, stream));
            let Ok(Some(stream)) = ident.await else {
                return None;
            };
            Some(run_stream(Arc::clone(&self.config), stream, handler).await)
        };
        let mut running = tokio::select! {
            r = handshake => match r {
                Some(Ok(r)) => r,
                Some(Err(e)) => {
                    tracing::debug!(session = %session.id, error = %e, "ssh handshake failed");
                    return;
                }
                None => return,
            },
            // The stream's kill switch ends the handshake shortly after anyway.
            () = super::stopped(&mut stop) => return,
        };
        self.run_session(session, &mut running, &handle, &mut stop)
            .await;
        // Channels the client never closed still leave their transcripts.
        let left: Vec<Chan> = channels
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain()
            .map(|(_, c)| c)
            .collect();
        for chan in left {
            chan.finish(session).await;
        }
        // What the connection's shells and transfers wrote is there for its source's
        // next session (no line runs now, so the holder has the overlay).
        let mut files = files.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(holder) = files.as_mut() {
            let loaded = loaded.lock().unwrap_or_else(|e| e.into_inner());
            self.overlays.keep(&loaded, holder.files().0);
        }
    }

    async fn run_session(
        &self,
        session: &Session,
        running: &mut russh::server::RunningSession<SshHandler>,
        handle: &OnceLock<Handle>,
        stop: &mut watch::Receiver<bool>,
    ) {
        let _ = handle.set(running.handle());
        tokio::select! {
            r = &mut *running => {
                if let Err(e) = r {
                    tracing::debug!(session = %session.id, error = %e, "ssh session ended");
                }
            }
            () = super::stopped(stop) => {
                let h = running.handle();
                let bye = h.disconnect(Disconnect::ByApplication, String::new(), String::new());
                let _ = tokio::time::timeout(SHUTDOWN_GRACE / 2, bye).await;
                let _ = tokio::time::timeout(SHUTDOWN_GRACE, &mut *running).await;
            }
        }
    }
}

/// Per-connection russh handler: records every attempt, delays failures (through russh's
/// rejection time), lets in what the policy accepts, then serves session channels.
struct SshHandler {
    session: Session,
    tap: Arc<Tap>,
    client_version: Option<Option<String>>,
    handle: Arc<OnceLock<Handle>>,
    /// Authentication requests seen, of any method.
    requests: u32,
    /// Failures as OpenSSH counts them: all but an initial "none".
    failures: u32,
    max_failures: u32,
    policy: Arc<LoginPolicy>,
    /// Password attempts count per source and user across connections there.
    logins: Arc<LoginBook>,
    remember_s: u64,
    overlays: Arc<OverlayStore>,
    /// What the connection's filesystem started with from earlier sessions.
    loaded: Arc<Mutex<Loaded>>,
    failure_delay: Duration,
    profile: Arc<Profile>,
    transcript_cap: usize,
    /// Who logged in, once someone did.
    user: Option<String>,
    /// Shared with [`SshService::serve`], which uploads what is left at the end.
    channels: Arc<Mutex<HashMap<ChannelId, Chan>>>,
    /// Session channels opened so far.
    opened: u32,
    /// The connection's filesystem, held by a shell that never runs: every channel's
    /// shell, SFTP and scp work on its overlay (swapped into a shell while one of its
    /// lines runs), so that what one uploads the others see.
    files: Arc<Mutex<Option<Shell>>>,
    /// Forwarding requests so far (the first [`MAX_FORWARD_EVENTS`] are recorded).
    forwards: u32,
    /// Forwarded connections still waiting for their simulated connect to fail.
    pending_forwards: Arc<std::sync::atomic::AtomicU32>,
}

/// One session channel: its shell once started, and its transcript.
#[derive(Debug)]
struct Chan {
    /// Out of here while one of its lines runs in the [`LinePool`].
    shell: Option<Shell>,
    transcript: Transcript,
    /// The pty's size, if the client asked for one.
    pty: Option<(u32, u32)>,
    term: Option<String>,
    env: Vec<(String, String)>,
    /// `shell`, `exec` or `sftp`, for the capture's metadata.
    kind: &'static str,
    user: String,
    /// The SFTP subsystem, once requested: the channel's bytes are its protocol.
    sftp: Option<sftp::Sftp>,
    /// A remote `scp -t`/`scp -f` run by exec.
    scp: Option<scp::Scp>,
}

impl Chan {
    async fn finish(self, session: &Session) {
        let mut meta = vec![
            ("channel".to_owned(), self.kind.to_owned()),
            ("user".to_owned(), clamp(&self.user, 256)),
        ];
        if let Some(t) = self.term {
            meta.push(("term".to_owned(), t));
        }
        self.transcript.upload(session, meta).await;
    }
}

/// Sends a shell's reply on its channel and records it; closes the channel when the
/// shell ended. Returns the effects to emit once the channel map is unlocked.
fn deliver(
    s: &mut russh::server::Session,
    id: ChannelId,
    chan: &mut Chan,
    reply: Reply,
) -> Vec<Effect> {
    let mut effects = reply.effects;
    if !reply.stdout.is_empty() {
        chan.transcript.output(&reply.stdout, &mut effects);
        let _ = s.data(id, reply.stdout);
    }
    if !reply.stderr.is_empty() {
        chan.transcript.output(&reply.stderr, &mut effects);
        let _ = s.extended_data(id, 1, reply.stderr);
    }
    if let Some(code) = reply.exit {
        let _ = s.exit_status_request(id, code);
        let _ = s.eof(id);
        let _ = s.close(id);
    }
    effects
}

/// The client's identification line from the first bytes it sent, if they hold one.
fn parse_client_version(head: &[u8]) -> Option<String> {
    let end = head.iter().position(|&b| b == b'\n')?;
    let line = head[..end].strip_suffix(b"\r").unwrap_or(&head[..end]);
    if !line.starts_with(b"SSH-") {
        return None;
    }
    Some(clamp(&String::from_utf8_lossy(line), MAX_CLIENT_VERSION))
}

impl SshHandler {
    fn client_version(&mut self) -> Option<String> {
        let tap = &self.tap;
        self.client_version
            .get_or_insert_with(|| parse_client_version(&tap.head()))
            .clone()
    }

    /// Records one attempt and decides the answer: in if the login memory accepts this
    /// password (the one remembered for this user from this source, or the policy's
    /// choice counted across connections), else, after PAM's delay for a password, a
    /// rejection that keeps every method on offer, and the end of the connection once
    /// the failures reach the cap. Public keys are never accepted.
    async fn attempt(
        &mut self,
        method: AuthMethod,
        user: &str,
        password: Option<String>,
        key: Option<(String, String)>,
    ) -> Result<Auth, russh::Error> {
        self.requests = self.requests.saturating_add(1);
        // keyboard-interactive is disabled, as in Debian's sshd_config: its requests
        // carry no password and are refused at once, as OpenSSH refuses them.
        let by_password = password.is_some()
            && matches!(
                method,
                AuthMethod::Password | AuthMethod::KeyboardInteractive
            );
        let success = by_password
            && password.as_deref().is_some_and(|p| {
                self.logins.attempt(
                    self.session.src.ip(),
                    user,
                    p,
                    &self.policy,
                    self.remember_s,
                )
            });
        let (key_fingerprint, key_algorithm) = key.unzip();
        let attempt = AuthAttempt {
            method,
            username: clamp(user, MAX_FIELD_LEN),
            password,
            key_fingerprint,
            key_algorithm,
            client_version: self.client_version(),
            success,
        };
        tracing::debug!(
            session = %self.session.id,
            src = %self.session.src,
            method = method.name(),
            username = %attempt.username,
            success,
            "ssh auth attempt"
        );
        self.session.emit(EventKind::AuthAttempt(attempt)).await;
        if success {
            self.user = Some(clamp(user, 256));
            return Ok(Auth::Accept);
        }
        if by_password {
            // Within this connection's own task: it holds nothing more while it waits,
            // and the session's deadline still ends it.
            tokio::time::sleep(pam_delay(self.failure_delay)).await;
        }

        if method != AuthMethod::None || self.requests > 1 {
            self.failures = self.failures.saturating_add(1);
        }
        if self.failures >= self.max_failures {
            // Queued now, sent by russh right after this rejection (and its delay).
            match self.handle.get() {
                Some(h) => {
                    let bye = h.disconnect(
                        Disconnect::ProtocolError,
                        "Too many authentication failures".into(),
                        String::new(),
                    );
                    if tokio::time::timeout(Duration::from_secs(1), bye)
                        .await
                        .is_err()
                    {
                        return Err(russh::Error::Disconnect);
                    }
                }
                None => return Err(russh::Error::Disconnect),
            }
        }
        Ok(Auth::Reject {
            proceed_with_methods: Some(offered_methods()),
            partial_success: false,
        })
    }

    fn login(&self) -> Login {
        Login {
            user: self.user.clone().unwrap_or_else(|| "root".into()),
            src: self.session.src.ip(),
            now: crate::sink::now_ms() / 1000,
        }
    }

    /// Runs `f` on the channel's state under the lock (never held across an await).
    fn with_chan<T>(&self, id: ChannelId, f: impl FnOnce(&mut Chan) -> T) -> Option<T> {
        let mut chans = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        chans.get_mut(&id).map(f)
    }

    /// Starts the shell of a channel (for `shell` and `exec` alike).
    fn start_shell(&self, chan: &mut Chan, kind: &'static str) -> bool {
        if chan.shell.is_some() {
            return false;
        }
        let mut shell = Shell::new(
            Arc::clone(&self.profile),
            &self.login(),
            chan.pty.is_some(),
            ShellLimits::default(),
        );
        for (k, v) in &chan.env {
            shell.set_env(k, v);
        }
        // What sshd puts in every session's environment (session.c do_setup_env); the
        // server's side is the persona's own address, as the machine knows itself.
        let (src, dst) = (self.session.src, self.session.dst);
        let own = self.profile.node.persona().net.addr;
        shell.set_env(
            "SSH_CLIENT",
            &format!("{} {} {}", src.ip(), src.port(), dst.port()),
        );
        shell.set_env(
            "SSH_CONNECTION",
            &format!("{} {} {own} {}", src.ip(), src.port(), dst.port()),
        );
        if let Some((columns, rows)) = chan.pty {
            shell.set_env("SSH_TTY", "/dev/pts/0");
            // The client's terminal size, as the pty sshd allocates has it (line wrapping,
            // `ls` columns and completion listings follow it).
            // Before the first prompt: nothing to redraw.
            let _ = shell.set_size(columns, rows);
        }
        if let Some(t) = &chan.term {
            shell.set_env("TERM", t);
        }
        chan.transcript.set_env("SHELL", "/bin/bash");
        chan.kind = kind;
        chan.shell = Some(shell);
        true
    }
}

impl SshHandler {
    /// Starts a channel's shell, interactive or for one `exec` command, and sends its
    /// first output; `None` if the channel cannot start one (unknown, already started).
    fn start(
        &self,
        session: &mut russh::server::Session,
        channel: ChannelId,
        exec: Option<&[u8]>,
    ) -> Option<Start> {
        let mut chans = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        let chan = chans.get_mut(&channel)?;
        if !self.start_shell(chan, if exec.is_some() { "exec" } else { "shell" }) {
            return None;
        }
        let _ = session.channel_success(channel);
        let mut effects = Vec::new();
        match exec {
            Some(command) => {
                // The command is the session's input: the transcript replays it as typed.
                let mut typed = command.to_vec();
                typed.push(b'\n');
                chan.transcript.input(&typed, &mut effects);
                let shell = chan.shell.take()?;
                Some(Start::Exec(Box::new(shell), effects))
            }
            None => {
                let reply = chan.shell.as_mut()?.greeting();
                effects.extend(deliver(session, channel, chan, reply));
                Some(Start::Done(effects))
            }
        }
    }

    /// Answers a `shell` or `exec` request: starts the channel's shell and sends its
    /// first output (an exec command runs in the [`LinePool`]), or refuses it.
    async fn started(
        &self,
        session: &mut russh::server::Session,
        channel: ChannelId,
        exec: Option<&[u8]>,
    ) -> Result<(), russh::Error> {
        let effects = match self.start(session, channel, exec) {
            Some(Start::Done(effects)) => effects,
            Some(Start::Exec(shell, effects)) => {
                let (command, now) = (exec.unwrap_or_default().to_vec(), now_s());
                self.run_lines(session, channel, *shell, effects, move |s| {
                    s.exec(&command, now)
                })
                .await
            }
            None => {
                session.channel_failure(channel)?;
                return Ok(());
            }
        };
        transcript::emit(&self.session, effects).await;
        Ok(())
    }

    /// Runs `f` (one or more command lines) on a channel's shell in the node's
    /// [`LinePool`], off the async workers, then puts the shell back and delivers the
    /// reply. The handler awaits it, so russh handles this connection's next message
    /// (and this channel's next line) only after this line's output is queued.
    async fn run_lines(
        &self,
        session: &mut russh::server::Session,
        channel: ChannelId,
        mut shell: Shell,
        mut effects: Vec<Effect>,
        f: impl FnOnce(&mut Shell) -> Reply + Send + 'static,
    ) -> Vec<Effect> {
        // The line runs on the connection's filesystem, then hands it back.
        self.swap_files(&mut shell);
        let done = LinePool::node()
            .run(self.session.src.ip(), move || {
                let reply = f(&mut shell);
                (shell, reply)
            })
            .await
            .map(|(mut shell, reply)| {
                self.swap_files(&mut shell);
                (shell, reply)
            });
        let mut chans = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        let Some(chan) = chans.get_mut(&channel) else {
            return effects;
        };
        match done {
            Some((shell, reply)) => {
                chan.shell = Some(shell);
                effects.extend(deliver(session, channel, chan, reply));
            }
            None => {
                // The line panicked (a bug): this channel ends, the node goes on.
                let _ = session.close(channel);
            }
        }
        effects
    }
}

/// Forwarding requests recorded per connection; the rest are answered unrecorded.
const MAX_FORWARD_EVENTS: u32 = 32;

/// Forwarded connections left waiting for their (simulated) connect at once.
const MAX_PENDING_FORWARDS: u32 = 8;

/// How a connect from this machine to `host` ends on a box without egress, as sshd
/// reports it in its CHANNEL_OPEN_FAILURE (`connect failed` and strerror or
/// gai_strerror): its own addresses refuse at once; a name cannot be resolved (the
/// resolver's 5 s timeout, twice); any other address never answers (Linux's 6 SYN retries,
/// about 127 s).
fn forward_failure(host: &str, own: std::net::IpAddr) -> (Duration, &'static str) {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    match host.parse::<std::net::IpAddr>() {
        Ok(ip) if ip.is_loopback() || ip.is_unspecified() || ip == own => {
            (Duration::ZERO, "Connection refused")
        }
        Ok(_) => (Duration::from_secs(127), "Connection timed out"),
        Err(_) if host.eq_ignore_ascii_case("localhost") => (Duration::ZERO, "Connection refused"),
        Err(_) => (
            Duration::from_secs(10),
            "Temporary failure in name resolution",
        ),
    }
}

/// Whether an exec command runs sftp-server itself: its Debian path (or the older
/// /usr/lib/sftp-server some clients try), with options only.
fn is_sftp_server_command(command: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(command) else {
        return false;
    };
    let mut words = text.split_ascii_whitespace();
    matches!(
        words.next(),
        Some("/usr/lib/openssh/sftp-server" | "/usr/lib/sftp-server")
    ) && words.all(|w| w.starts_with('-') || w.chars().all(|c| c.is_ascii_alphanumeric()))
}

/// `host:port`, an IPv6 address in brackets.
fn host_port(host: &str, port: u32) -> String {
    let host = clamp(host, 255);
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

impl SshHandler {
    /// Makes a fresh session channel an SFTP server; false if it already runs something.
    fn start_sftp(&self, channel: ChannelId) -> bool {
        self.with_chan(channel, |c| {
            let fresh = c.shell.is_none() && c.sftp.is_none() && c.scp.is_none();
            if fresh {
                c.kind = "sftp";
                c.sftp = Some(sftp::Sftp::new());
            }
            fresh
        })
        .unwrap_or(false)
    }

    /// A shell that never runs, holding the connection's filesystem.
    fn holder_shell(&self) -> Shell {
        let mut shell = Shell::new(
            Arc::clone(&self.profile),
            &self.login(),
            false,
            ShellLimits::default(),
        );
        // What this source wrote in earlier sessions is still there.
        let loaded = self
            .overlays
            .restore(self.session.src.ip(), self.remember_s, shell.files().0);
        *self.loaded.lock().unwrap_or_else(|e| e.into_inner()) = loaded;
        shell
    }

    /// Swaps the connection's files into `shell`, or back out of it (the overlay only:
    /// each shell keeps its own processes and `/proc`).
    fn swap_files(&self, shell: &mut Shell) {
        let mut files = self.files.lock().unwrap_or_else(|e| e.into_inner());
        let holder = files.get_or_insert_with(|| self.holder_shell());
        shell.files().0.swap_overlay(holder.files().0);
    }

    /// Runs `f` on the connection's filesystem, home directory and uid.
    fn with_files<T>(&self, f: impl FnOnce(&mut super::shell::fs::Fs, &str, u32) -> T) -> T {
        let mut files = self.files.lock().unwrap_or_else(|e| e.into_inner());
        let holder = files.get_or_insert_with(|| self.holder_shell());
        let (fs, home, uid) = holder.files();
        f(fs, home, uid)
    }

    /// Feeds an SFTP or scp channel (`None`: the client's end of input) and sends the
    /// answer; false if the channel is neither.
    async fn file_transfer(
        &self,
        session: &mut russh::server::Session,
        channel: ChannelId,
        data: Option<&[u8]>,
    ) -> bool {
        let now = now_s();
        let user = self.user.clone().unwrap_or_else(|| "root".into());
        let (uploads, logged, limit, kind) = {
            let mut chans = self.channels.lock().unwrap_or_else(|e| e.into_inner());
            let Some(chan) = chans.get_mut(&channel) else {
                return false;
            };
            if let Some(sftp) = chan.sftp.as_mut() {
                let persona = self.profile.node.persona();
                let local = |t: i64| persona.local(t).0;
                let out = self.with_files(|fs, home, uid| {
                    let mut ctx = sftp::Ctx {
                        fs,
                        home,
                        uid,
                        user: &user,
                        now,
                        local: &local,
                    };
                    match data {
                        Some(d) => sftp.input(d, &mut ctx),
                        None => sftp.eof(&mut ctx),
                    }
                });
                if !out.data.is_empty() {
                    let _ = session.data(channel, out.data);
                }
                if out.end {
                    // sftp-server exits: 0 at the end of its input, 255 from fatal().
                    let code = if data.is_none() { 0 } else { 255 };
                    let _ = session.exit_status_request(channel, code);
                    let _ = session.eof(channel);
                    let _ = session.close(channel);
                }
                (out.uploads, out.logged, out.limit, "sftp")
            } else if let Some(scp) = chan.scp.as_mut() {
                let out = match data {
                    Some(d) => self.with_files(|fs, home, uid| {
                        scp.input(d, &mut scp::Ctx { fs, home, uid, now })
                    }),
                    None => scp.eof(),
                };
                if !out.data.is_empty() {
                    let _ = session.data(channel, out.data);
                }
                if let Some(code) = out.exit {
                    let _ = session.exit_status_request(channel, code);
                    let _ = session.eof(channel);
                    let _ = session.close(channel);
                }
                (out.uploads, Vec::new(), None, "scp")
            } else {
                return false;
            }
        };
        let mut effects: Vec<Effect> = logged.into_iter().map(Effect::Command).collect();
        if let Some(detail) = limit {
            effects.push(Effect::Limit {
                limit: "upload",
                detail,
            });
        }
        transcript::emit(&self.session, effects).await;
        for up in uploads.into_iter().filter(|u| !u.data.is_empty()) {
            let meta = vec![
                ("channel".to_owned(), kind.to_owned()),
                ("user".to_owned(), clamp(&user, 256)),
                ("path".to_owned(), clamp(&up.path, 1024)),
            ];
            self.session
                .capture(CaptureKind::Upload, Some(up.path), meta, up.data)
                .await;
        }
        true
    }

    /// Starts a remote `scp -t`/`scp -f` on a fresh channel; false leaves the command
    /// to the shell.
    async fn start_scp(
        &self,
        session: &mut russh::server::Session,
        channel: ChannelId,
        req: scp::Request,
        command: &[u8],
    ) -> bool {
        let now = now_s();
        let out = {
            let mut chans = self.channels.lock().unwrap_or_else(|e| e.into_inner());
            let Some(chan) = chans.get_mut(&channel) else {
                return false;
            };
            if chan.shell.is_some() || chan.sftp.is_some() || chan.scp.is_some() {
                return false;
            }
            let (scp, out) = self.with_files(|fs, home, uid| {
                scp::Scp::start(req, &mut scp::Ctx { fs, home, uid, now })
            });
            chan.kind = "exec";
            chan.scp = Some(scp);
            let _ = session.channel_success(channel);
            if !out.data.is_empty() {
                let _ = session.data(channel, out.data);
            }
            if let Some(code) = out.exit {
                let _ = session.exit_status_request(channel, code);
                let _ = session.eof(channel);
                let _ = session.close(channel);
            }
            out.uploads
        };
        let line = clamp(&String::from_utf8_lossy(command), MAX_FIELD_LEN);
        transcript::emit(&self.session, vec![Effect::Command(line)]).await;
        debug_assert!(out.is_empty());
        true
    }

    /// Records a forwarding request (as an attempt to make the honeypot connect).
    async fn record_forward(&mut self, url: String, tool: &str) {
        self.forwards = self.forwards.saturating_add(1);
        if self.forwards <= MAX_FORWARD_EVENTS {
            tracing::info!(session = %self.session.id, url = %url, "ssh forwarding recorded");
            transcript::emit(
                &self.session,
                vec![Effect::Download {
                    url,
                    tool: tool.to_owned(),
                }],
            )
            .await;
        }
    }
}

/// What [`SshHandler::start`] leaves to do once the channel map is unlocked.
enum Start {
    /// Everything was sent; these effects remain to emit.
    Done(Vec<Effect>),
    /// An exec command line to run in the [`LinePool`], after these effects.
    /// (Boxed: a shell is large; this only hands it on.)
    Exec(Box<Shell>, Vec<Effect>),
}

fn now_s() -> i64 {
    crate::sink::now_ms() / 1000
}

impl russh::server::Handler for SshHandler {
    type Error = russh::Error;

    async fn lookup_dh_gex_group(
        &mut self,
        gex: &russh::client::GexParams,
    ) -> Result<Option<russh::kex::dh::groups::DhGroup>, Self::Error> {
        let bits = |v: usize| u32::try_from(v).unwrap_or(u32::MAX);
        Ok(moduli::choose(
            bits(gex.min_group_size()),
            bits(gex.preferred_group_size()),
            bits(gex.max_group_size()),
        ))
    }

    async fn auth_none(&mut self, user: &str) -> Result<Auth, Self::Error> {
        self.attempt(AuthMethod::None, user, None, None).await
    }

    async fn auth_password(&mut self, user: &str, password: &str) -> Result<Auth, Self::Error> {
        let password = Some(clamp(password, MAX_FIELD_LEN));
        self.attempt(AuthMethod::Password, user, password, None)
            .await
    }

    async fn auth_publickey_offered(
        &mut self,
        user: &str,
        offer: PublicKeyOffer<'_>,
    ) -> Result<Auth, Self::Error> {
        let key = offer.public_key;
        let fingerprint = key.fingerprint(HashAlg::Sha256).to_string();
        let algorithm = clamp(key.algorithm().as_str(), MAX_FIELD_LEN);
        self.attempt(
            AuthMethod::PublicKey,
            user,
            None,
            Some((fingerprint, algorithm)),
        )
        .await
    }

    async fn auth_keyboard_interactive<'a>(
        &'a mut self,
        user: &str,
        _submethods: &str,
        _response: Option<Response<'a>>,
    ) -> Result<Auth, Self::Error> {
        // Not on offer (KbdInteractiveAuthentication no): OpenSSH answers the request
        // with a failure that counts like any other, and never prompts; the attempt is
        // still recorded.
        self.attempt(AuthMethod::KeyboardInteractive, user, None, None)
            .await
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        _session: &mut russh::server::Session,
    ) -> Result<(), Self::Error> {
        let id = channel.id();
        // Everything arrives through the handler; the channel's own queue would fill up.
        drop(channel);
        let accepted = {
            let mut chans = self.channels.lock().unwrap_or_else(|e| e.into_inner());
            let ok = self.user.is_some()
                && chans.len() < MAX_OPEN_CHANNELS
                && self.opened < MAX_CHANNELS_PER_CONNECTION;
            if ok {
                self.opened += 1;
                chans.insert(
                    id,
                    Chan {
                        shell: None,
                        transcript: Transcript::new(self.transcript_cap, &self.session),
                        pty: None,
                        term: None,
                        env: Vec::new(),
                        kind: "session",
                        user: self.user.clone().unwrap_or_default(),
                        sftp: None,
                        scp: None,
                    },
                );
            }
            ok
        };
        if accepted {
            reply.accept().await;
        } else {
            reply
                .reject(russh::ChannelOpenFailure::ResourceShortage)
                .await;
        }
        Ok(())
    }

    async fn pty_request(
        &mut self,
        channel: ChannelId,
        term: &str,
        col_width: u32,
        row_height: u32,
        _pix_width: u32,
        _pix_height: u32,
        _modes: &[(russh::Pty, u32)],
        session: &mut russh::server::Session,
    ) -> Result<(), Self::Error> {
        let term = clamp(term, 64);
        let effects = self.with_chan(channel, |c| {
            let mut effects = Vec::new();
            let (w, h) = (col_width.clamp(1, 1000), row_height.clamp(1, 1000));
            c.pty = Some((w, h));
            c.transcript.resize(w, h, &mut effects);
            c.transcript.set_env("TERM", &term);
            c.term = Some(term);
            effects
        });
        match effects {
            Some(e) => {
                session.channel_success(channel)?;
                transcript::emit(&self.session, e).await;
            }
            None => session.channel_failure(channel)?,
        }
        Ok(())
    }

    async fn env_request(
        &mut self,
        channel: ChannelId,
        variable_name: &str,
        variable_value: &str,
        session: &mut russh::server::Session,
    ) -> Result<(), Self::Error> {
        // Debian's sshd accepts only LANG and LC_* (AcceptEnv); the rest is refused.
        let accepted = variable_name == "LANG" || variable_name.starts_with("LC_");
        let kept = accepted
            && self
                .with_chan(channel, |c| {
                    if c.env.len() < MAX_CHANNEL_ENV {
                        c.env
                            .push((clamp(variable_name, 64), clamp(variable_value, 256)));
                    }
                })
                .is_some();
        if kept {
            session.channel_success(channel)?;
        } else {
            session.channel_failure(channel)?;
        }
        Ok(())
    }

    async fn window_change_request(
        &mut self,
        channel: ChannelId,
        col_width: u32,
        row_height: u32,
        _pix_width: u32,
        _pix_height: u32,
        session: &mut russh::server::Session,
    ) -> Result<(), Self::Error> {
        let effects = self.with_chan(channel, |c| {
            let mut effects = Vec::new();
            let (w, h) = (col_width.clamp(1, 1000), row_height.clamp(1, 1000));
            if c.pty.is_some() {
                c.pty = Some((w, h));
            }
            c.transcript.resize(col_width, row_height, &mut effects);
            // A shell busy with a line (taken by the pool) misses this change, as a
            // program that does not handle SIGWINCH would; the next one applies. At the
            // prompt the shell redraws the line being edited, as bash does.
            if let Some(shell) = c.shell.as_mut() {
                let reply = shell.set_size(w, h);
                effects.extend(deliver(session, channel, c, reply));
            }
            effects
        });
        transcript::emit(&self.session, effects.unwrap_or_default()).await;
        Ok(())
    }

    async fn shell_request(
        &mut self,
        channel: ChannelId,
        session: &mut russh::server::Session,
    ) -> Result<(), Self::Error> {
        self.started(session, channel, None).await?;
        Ok(())
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        session: &mut russh::server::Session,
    ) -> Result<(), Self::Error> {
        if let Some(req) = scp::parse(data)
            && self.start_scp(session, channel, req, data).await
        {
            return Ok(());
        }
        // `sftp -s /usr/lib/openssh/sftp-server` runs the server by path (an exec): the
        // same SFTP server as the subsystem.
        if is_sftp_server_command(data) && self.start_sftp(channel) {
            session.channel_success(channel)?;
            let line = clamp(&String::from_utf8_lossy(data), MAX_FIELD_LEN);
            transcript::emit(&self.session, vec![Effect::Command(line)]).await;
            return Ok(());
        }
        self.started(session, channel, Some(data)).await?;
        Ok(())
    }

    async fn subsystem_request(
        &mut self,
        channel: ChannelId,
        name: &str,
        session: &mut russh::server::Session,
    ) -> Result<(), Self::Error> {
        // Debian's sshd_config has `Subsystem sftp /usr/lib/openssh/sftp-server` and no
        // other: any other name fails ("subsystem not found").
        let started = name == "sftp" && self.start_sftp(channel);
        if started {
            session.channel_success(channel)?;
            transcript::emit(
                &self.session,
                vec![Effect::Command("subsystem sftp".into())],
            )
            .await;
        } else {
            tracing::debug!(session = %self.session.id, subsystem = %clamp(name, 64), "subsystem refused");
            session.channel_failure(channel)?;
        }
        Ok(())
    }

    async fn channel_open_direct_tcpip(
        &mut self,
        channel: Channel<Msg>,
        host_to_connect: &str,
        port_to_connect: u32,
        _originator_address: &str,
        _originator_port: u32,
        reply: ChannelOpenHandle,
        _session: &mut russh::server::Session,
    ) -> Result<(), Self::Error> {
        drop(channel);
        if self.user.is_none() {
            reply
                .reject(russh::ChannelOpenFailure::AdministrativelyProhibited)
                .await;
            return Ok(());
        }
        // AllowTcpForwarding is yes by default: sshd tries the connect. Nothing is ever
        // connected from here; the destination is recorded and the connect fails as on
        // a machine without egress, after as long as it would take there.
        let url = format!("tcp://{}", host_port(host_to_connect, port_to_connect));
        self.record_forward(url, "ssh direct-tcpip").await;
        let own = self.profile.node.persona().net.addr;
        let (delay, why) = forward_failure(host_to_connect, own.into());
        let failure = russh::ChannelOpenFailure::Other {
            code: 2,
            // The client prints "open failed: connect failed: " and this.
            reason: why.to_owned(),
        };
        let pending = Arc::clone(&self.pending_forwards);
        let waiting = pending.load(std::sync::atomic::Ordering::Relaxed);
        if delay.is_zero() || waiting >= MAX_PENDING_FORWARDS {
            reply.reject(failure).await;
        } else {
            pending.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                reply.reject(failure).await;
                pending.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
            });
        }
        Ok(())
    }

    async fn channel_open_direct_streamlocal(
        &mut self,
        channel: Channel<Msg>,
        socket_path: &str,
        reply: ChannelOpenHandle,
        _session: &mut russh::server::Session,
    ) -> Result<(), Self::Error> {
        drop(channel);
        if self.user.is_none() {
            reply
                .reject(russh::ChannelOpenFailure::AdministrativelyProhibited)
                .await;
            return Ok(());
        }
        // AllowStreamLocalForwarding is yes by default. The fake machine has no sockets
        // to reach (docker.sock and the like): sshd's failure for a path it cannot
        // connect to carries no strerror, only "open failed" (checked with the real
        // sshd: the client prints "open failed: connect failed: open failed").
        let url = format!("unix:{}", clamp(socket_path, 1024));
        self.record_forward(url, "ssh direct-streamlocal").await;
        reply
            .reject(russh::ChannelOpenFailure::Other {
                code: 2,
                reason: "open failed".into(),
            })
            .await;
        Ok(())
    }

    async fn streamlocal_forward(
        &mut self,
        socket_path: &str,
        _session: &mut russh::server::Session,
    ) -> Result<bool, Self::Error> {
        if self.user.is_none() {
            return Ok(false);
        }
        // Accepted as sshd accepts it (it would create the socket); nothing is made.
        let url = format!("unix-listen:{}", clamp(socket_path, 1024));
        self.record_forward(url, "ssh streamlocal-forward").await;
        Ok(true)
    }

    async fn cancel_streamlocal_forward(
        &mut self,
        _socket_path: &str,
        _session: &mut russh::server::Session,
    ) -> Result<bool, Self::Error> {
        Ok(self.user.is_some())
    }

    async fn tcpip_forward(
        &mut self,
        address: &str,
        port: &mut u32,
        _session: &mut russh::server::Session,
    ) -> Result<bool, Self::Error> {
        if self.user.is_none() || *port > 65535 {
            return Ok(false);
        }
        let url = format!("tcp-listen://{}", host_port(address, *port));
        self.record_forward(url, "ssh tcpip-forward").await;
        if *port == 0 {
            // sshd answers with the port the kernel picked (Linux's ephemeral range).
            *port = rand::random_range(32768..61000);
        }
        Ok(true)
    }

    async fn cancel_tcpip_forward(
        &mut self,
        _address: &str,
        _port: u32,
        _session: &mut russh::server::Session,
    ) -> Result<bool, Self::Error> {
        Ok(self.user.is_some())
    }

    async fn x11_request(
        &mut self,
        channel: ChannelId,
        _single_connection: bool,
        _x11_auth_protocol: &str,
        _x11_auth_cookie: &str,
        _x11_screen_number: u32,
        session: &mut russh::server::Session,
    ) -> Result<(), Self::Error> {
        session.channel_failure(channel)?;
        Ok(())
    }

    async fn data(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        session: &mut russh::server::Session,
    ) -> Result<(), Self::Error> {
        if self.file_transfer(session, channel, Some(data)).await {
            return Ok(());
        }
        let (line, effects) = {
            let mut chans = self.channels.lock().unwrap_or_else(|e| e.into_inner());
            let Some(chan) = chans.get_mut(&channel) else {
                return Ok(());
            };
            let mut effects = Vec::new();
            chan.transcript.input(data, &mut effects);
            match chan.shell.as_mut().filter(|s| !s.ended()) {
                // Line editing and echo only: cheap, answered here.
                Some(shell) if !pool::runs_a_line(data) => {
                    self.swap_files(shell);
                    let reply = shell.input(data, now_s());
                    self.swap_files(shell);
                    effects.extend(deliver(session, channel, chan, reply));
                    (None, effects)
                }
                Some(_) => (chan.shell.take(), effects),
                None => (None, effects),
            }
        };
        let effects = match line {
            Some(shell) => {
                let (typed, now) = (data.to_vec(), now_s());
                self.run_lines(session, channel, shell, effects, move |s| {
                    s.input(&typed, now)
                })
                .await
            }
            None => effects,
        };
        transcript::emit(&self.session, effects).await;
        Ok(())
    }

    async fn channel_eof(
        &mut self,
        channel: ChannelId,
        session: &mut russh::server::Session,
    ) -> Result<(), Self::Error> {
        if self.file_transfer(session, channel, None).await {
            return Ok(());
        }
        // End of input may run a pending line (without a pty): in the pool as well.
        let shell = {
            let mut chans = self.channels.lock().unwrap_or_else(|e| e.into_inner());
            let Some(chan) = chans.get_mut(&channel) else {
                return Ok(());
            };
            match chan.shell.as_ref() {
                Some(s) if !s.ended() => chan.shell.take(),
                _ => None,
            }
        };
        if let Some(shell) = shell {
            let now = now_s();
            let effects = self
                .run_lines(session, channel, shell, Vec::new(), move |s| s.eof(now))
                .await;
            transcript::emit(&self.session, effects).await;
        }
        Ok(())
    }

    async fn channel_close(
        &mut self,
        channel: ChannelId,
        _session: &mut russh::server::Session,
    ) -> Result<(), Self::Error> {
        let chan = self
            .channels
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&channel);
        if let Some(chan) = chan {
            chan.finish(&self.session).await;
        }
        Ok(())
    }
}

/// Loads the host key once per manager; a failure is reported and retried at next apply.
#[derive(Debug)]
pub(crate) struct HostKeyCache {
    dir: PathBuf,
    keys: Option<Vec<PrivateKey>>,
}

impl HostKeyCache {
    pub(crate) fn new(dir: PathBuf) -> Self {
        HostKeyCache { dir, keys: None }
    }

    pub(crate) async fn get(&mut self) -> Result<Vec<PrivateKey>, HostKeyError> {
        if let Some(k) = &self.keys {
            return Ok(k.clone());
        }
        let dir = self.dir.clone();
        let keys = tokio::task::spawn_blocking(move || load_or_create_host_keys(&dir))
            .await
            .map_err(|e| HostKeyError::Io {
                path: self.dir.join(HOST_KEY_FILE),
                source: io::Error::other(e.to_string()),
            })??;
        self.keys = Some(keys.clone());
        Ok(keys)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_version_parsing() {
        assert_eq!(
            parse_client_version(b"SSH-2.0-OpenSSH_9.6\r\n\x00\x00garbage").as_deref(),
            Some("SSH-2.0-OpenSSH_9.6")
        );
        assert_eq!(
            parse_client_version(b"SSH-2.0-Go\n").as_deref(),
            Some("SSH-2.0-Go")
        );
        assert_eq!(parse_client_version(b"GET / HTTP/1.1\r\n"), None);
        assert_eq!(parse_client_version(b"SSH-2.0-no-newline"), None);
    }

    #[test]
    fn identification_judged_as_openssh_kex_c() {
        let j = |l: &[u8]| judge_ident(l.to_vec());
        assert_eq!(j(b"SSH-2.0-x"), Ident::Accepted(b"SSH-2.0-x".to_vec()));
        assert_eq!(j(b"SSH-1.99-x"), Ident::Accepted(b"SSH-1.99-x".to_vec()));
        // sscanf's %d takes white space and a sign.
        assert!(matches!(j(b"SSH- +2.0-x"), Ident::Accepted(_)));
        assert_eq!(
            j(b"SSH-1.5-x"),
            Ident::Refused("Protocol major versions differ.")
        );
        assert_eq!(
            j(b"SSH-99999999999.0-x"),
            Ident::Refused("Protocol major versions differ.")
        );
        for bad in [
            &b""[..],
            b"SSH-",
            b"SSH-2.0",
            b"SSH-2.0-",
            b"SSH-2-x",
            b"GET / HTTP/1.0",
        ] {
            assert_eq!(j(bad), Ident::Refused(INVALID_IDENT), "{bad:?}");
        }
        assert_eq!(j(b"SSH-2.0-Probe-1"), Ident::Silent);
        assert_eq!(j(b"SSH-2.0-x SSH_Version_Mapper y"), Ident::Silent);
    }

    #[test]
    fn host_key_created_once_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("data");
        let a = load_or_create_host_key(&sub).unwrap();
        let b = load_or_create_host_key(&sub).unwrap();
        assert_eq!(a.public_key(), b.public_key());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(sub.join(HOST_KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // No temporary files are left behind.
        assert_eq!(std::fs::read_dir(&sub).unwrap().count(), 1);
    }

    #[test]
    fn debian_host_keys_created_once_and_an_old_ed25519_key_kept() {
        let dir = tempfile::tempdir().unwrap();
        let old = load_or_create_host_key(dir.path()).unwrap();
        let keys = load_or_create_host_keys(dir.path()).unwrap();
        let algs: Vec<String> = keys.iter().map(|k| k.algorithm().to_string()).collect();
        assert_eq!(algs, ["ssh-rsa", "ecdsa-sha2-nistp256", "ssh-ed25519"]);
        assert_eq!(keys[0].key_data().rsa().map(|k| k.key_size()), Some(3072));
        assert_eq!(keys[2].public_key(), old.public_key());
        let again = load_or_create_host_keys(dir.path()).unwrap();
        for (a, b) in keys.iter().zip(&again) {
            assert_eq!(a.public_key(), b.public_key());
        }
        let mut files: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        files.sort();
        assert_eq!(
            files,
            [
                "ssh_host_ecdsa_key",
                "ssh_host_ed25519_key",
                "ssh_host_rsa_key"
            ]
        );

        let pubs = host_public_key_files(&keys, "web01");
        let paths: Vec<&str> = pubs.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            paths,
            [
                "/etc/ssh/ssh_host_rsa_key.pub",
                "/etc/ssh/ssh_host_ecdsa_key.pub",
                "/etc/ssh/ssh_host_ed25519_key.pub"
            ]
        );
        for ((_, text), key) in pubs.iter().zip(&keys) {
            let want = key.public_key().to_openssh().unwrap();
            let want = want.split(' ').take(2).collect::<Vec<_>>().join(" ");
            assert_eq!(*text, format!("{want} root@web01\n"));
        }
    }

    #[test]
    fn wrong_key_type_in_a_host_key_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let ed = load_or_create_host_key(dir.path()).unwrap();
        std::fs::write(
            dir.path().join("ssh_host_rsa_key"),
            ed.to_openssh(LineEnding::LF).unwrap().as_bytes(),
        )
        .unwrap();
        assert!(matches!(
            load_or_create_host_keys(dir.path()),
            Err(HostKeyError::Unsupported {
                expected: "ssh-rsa",
                ..
            })
        ));
    }

    #[test]
    fn garbage_host_key_is_an_error_not_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(HOST_KEY_FILE), "not a key").unwrap();
        assert!(matches!(
            load_or_create_host_key(dir.path()),
            Err(HostKeyError::Parse { .. })
        ));
        assert_eq!(
            std::fs::read_to_string(dir.path().join(HOST_KEY_FILE)).unwrap(),
            "not a key"
        );
    }
}
