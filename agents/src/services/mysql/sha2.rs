//! caching_sha2_password's server side after the fast-auth answer, as MySQL 8.0 runs it
//! for an account whose password is not in its cache (every account here): it asks for
//! full authentication (`AuthMoreData 0x04`). Over TLS the client then sends the
//! password in clear, which is recorded. Without TLS a client asks for the server's RSA
//! key (`0x02`) or gives up by itself ("Authentication requires secure connection");
//! the honeypot has no RSA key to hand out, so a key request is refused with the
//! server's "Access denied" (the fast-auth answer, crackable offline, is still recorded).

use super::{Login, next_packet, packet};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

/// `perform_full_authentication`.
const FULL_AUTH: u8 = 0x04;
/// The client's request for the server's RSA public key.
const REQUEST_KEY: u8 = 0x02;
/// Longest password kept (MySQL's own limit on what it hashes is far above real ones).
const MAX_PASSWORD: usize = 512;

/// What full authentication produced.
pub(super) struct Outcome {
    /// The cleartext password, if the client sent it.
    pub password: Option<String>,
    /// The server's last word, if the client is still there to read it.
    pub answer: Option<Vec<u8>>,
}

pub(super) async fn full_auth<S>(login: &mut Login<'_>, stream: &mut S, secure: bool) -> Outcome
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let gone = Outcome {
        password: None,
        answer: None,
    };
    if stream
        .write_all(&packet::auth_more_data(login.seq, &[FULL_AUTH]))
        .await
        .is_err()
    {
        return gone;
    }
    let Ok(reply) = next_packet(login.session, stream, login.seq + 1, login.deadline).await else {
        return gone;
    };
    login.seq += 2;
    if secure {
        // The password, NUL-terminated.
        let pw = reply.strip_suffix(&[0]).unwrap_or(&reply);
        let pw = &pw[..pw.len().min(MAX_PASSWORD)];
        return Outcome {
            password: Some(String::from_utf8_lossy(pw).into_owned()),
            answer: Some(login.denied(true)),
        };
    }
    // A key request (or anything else: a client cannot send the password in clear
    // without TLS) ends with the refusal; see the module comment.
    let _key_request = reply.as_slice() == [REQUEST_KEY];
    Outcome {
        password: None,
        answer: Some(login.denied(true)),
    }
}
