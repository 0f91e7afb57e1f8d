//! The Telnet probe, as nmap's telnet fingerprint sees a server: the negotiation bytes it
//! sends before the client says anything. Then, for the consistency checks, it refuses
//! every option and reads on to the login prompt (banner and host name).

use super::facts::Facts;
use super::net::Conn;
use std::net::SocketAddr;
use tokio::time::{Duration, Instant};

const IAC: u8 = 255;
const WILL: u8 = 251;
const WONT: u8 = 252;
const DO: u8 = 253;
const DONT: u8 = 254;

/// What the probe saw: the facts compared with the reference, and the text before the
/// login prompt (IAC sequences removed), for the consistency checks.
pub struct Seen {
    pub facts: Facts,
    pub login_text: String,
}

pub async fn probe(addr: SocketAddr, deadline: Instant) -> Seen {
    let mut facts = Facts::default();
    let mut c = match Conn::open(addr, deadline).await {
        Ok(c) => c,
        Err(e) => {
            facts.push("negotiation", e);
            return Seen {
                facts,
                login_text: String::new(),
            };
        }
    };
    // The server sends its requests and then waits for answers: what came before it
    // went quiet is the opening.
    let first = c.read_rest(Duration::from_millis(700)).await;
    facts.push("negotiation", &first);
    let mut text = Vec::new();
    let mut pending = first;
    // A few rounds: refuse whatever it asks, collect text until a login prompt.
    for _ in 0..6 {
        let (data, reply) = refuse(&pending);
        text.extend_from_slice(&data);
        if text.ends_with(b"login: ") || c.send(&reply).await.is_err() {
            break;
        }
        pending = c.read_rest(Duration::from_millis(700)).await;
        if pending.is_empty() {
            break;
        }
    }
    Seen {
        facts,
        login_text: String::from_utf8_lossy(&text).into_owned(),
    }
}

/// Splits server bytes into data and the refusals of each option it offered or asked
/// for (`DONT` to `WILL`, `WONT` to `DO`); subnegotiations are skipped.
pub fn refuse(b: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let (mut data, mut reply) = (Vec::new(), Vec::new());
    let mut i = 0;
    while i < b.len() {
        if b[i] != IAC {
            data.push(b[i]);
            i += 1;
            continue;
        }
        match (b.get(i + 1), b.get(i + 2)) {
            (Some(&WILL), Some(&o)) => {
                reply.extend_from_slice(&[IAC, DONT, o]);
                i += 3;
            }
            (Some(&DO), Some(&o)) => {
                reply.extend_from_slice(&[IAC, WONT, o]);
                i += 3;
            }
            (Some(&WONT | &DONT), Some(_)) => i += 3,
            (Some(&250), _) => {
                // SB … IAC SE
                let end = b[i..].windows(2).position(|w| w == [IAC, 240]);
                i = end.map_or(b.len(), |e| i + e + 2);
            }
            (Some(&IAC), _) => {
                data.push(IAC);
                i += 2;
            }
            _ => i += 2,
        }
    }
    (data, reply)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_refused_and_data_kept() {
        let (data, reply) = refuse(&[
            IAC, DO, 24, b'h', IAC, WILL, 1, IAC, 250, 24, 1, IAC, 240, b'i', IAC, IAC, IAC,
        ]);
        assert_eq!(data, [b'h', b'i', IAC]);
        assert_eq!(reply, [IAC, WONT, 24, IAC, DONT, 1]);
    }
}
