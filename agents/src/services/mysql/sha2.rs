//! caching_sha2_password's server side after the fast-auth answer, as MySQL 8.0 runs it
//! for an account whose password is not in its cache (every account here): it asks for
//! full authentication (`AuthMoreData 0x04`). Over TLS the client then sends the
//! password in clear, which is recorded. Without TLS a client asks for the server's RSA
//! key (`0x02`), gets it (`rsakey.rs`) and sends the password encrypted with it, which
//! is decrypted and recorded; libmysqlclient without `--get-server-public-key` gives up by
//! itself ("Authentication requires secure connection"), leaving the fast-auth answer
//! (recorded, crackable offline).

use super::rsakey::RsaKeys;
use super::{Login, ReadFail, next_packet, out_of_order, packet};
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

fn text(pw: &[u8]) -> String {
    String::from_utf8_lossy(&pw[..pw.len().min(MAX_PASSWORD)]).into_owned()
}

pub(super) async fn full_auth<S>(
    login: &mut Login<'_>,
    stream: &mut S,
    secure: bool,
    rsa: &RsaKeys,
) -> Outcome
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
    login.seq += 1;
    let mut reply = match next_packet(login.session, stream, login.seq, login.deadline).await {
        Ok(r) => r,
        Err(ReadFail::OutOfOrder) => {
            out_of_order(stream, login.proto41, login.seq).await;
            return gone;
        }
        Err(_) => return gone,
    };
    login.seq += 1;
    if secure {
        // The password, NUL-terminated.
        let pw = reply.strip_suffix(&[0]).unwrap_or(&reply);
        return Outcome {
            password: Some(text(pw)),
            answer: Some(login.denied(true)),
        };
    }
    if reply.as_slice() == [REQUEST_KEY] {
        if stream
            .write_all(&packet::auth_more_data(
                login.seq,
                rsa.public_pem.as_bytes(),
            ))
            .await
            .is_err()
        {
            return gone;
        }
        login.seq += 1;
        reply = match next_packet(login.session, stream, login.seq, login.deadline).await {
            Ok(r) => r,
            Err(ReadFail::OutOfOrder) => {
                out_of_order(stream, login.proto41, login.seq).await;
                return gone;
            }
            Err(_) => return gone,
        };
        login.seq += 1;
    }
    // The password encrypted with the public key (fetched now, or known beforehand).
    let password = rsa.password(&reply, login.scramble).map(|pw| text(&pw));
    Outcome {
        password,
        answer: Some(login.denied(true)),
    }
}
