//! Honey-credentials offered to a name poisoner (`honey_credentials = true`, off by
//! default): when a responder answers a honey-name, the node does what the victim it
//! pretends to be would do next, an HTTP request to the name it asked for, which is the
//! responder's address, authenticated with NTLM: NEGOTIATE, the server's CHALLENGE,
//! AUTHENTICATE with a honey user and an NTLMv2 response computed from a honey password
//! ([`ntlm`](super::ntlm)). The offer is reported (`honey_credentials_offered`, with the
//! password) and the core raises `honey_credential_used` when those credentials are later
//! tried against any HoneyBee service.
//!
//! Bounds: at most one offer per responder per `honey_credentials_interval_s`, at most
//! `honey_credentials_per_hour` in all and [`MAX_IN_FLIGHT`] at a time ([`OfferLimiter`],
//! whatever a flood of poisoned answers or spoofed responders does); every exchange has
//! one deadline ([`DEADLINE`]); response heads, bodies and the challenge are size-capped.

use super::ntlm;
use crate::persona::Draw;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The whole exchange (connect, three requests, their answers) must end within this.
pub const DEADLINE: Duration = Duration::from_secs(10);
/// Offers running at once.
pub const MAX_IN_FLIGHT: usize = 2;
/// Responders remembered by the limiter (the least recent forgotten first).
pub const MAX_RESPONDERS: usize = 256;
/// Largest response head read.
pub const MAX_HEAD: usize = 8 * 1024;
/// Largest response body read (and thrown away) to keep the connection in step.
pub const MAX_BODY: usize = 64 * 1024;
/// Longest `WWW-Authenticate: NTLM` token accepted (base64 of [`ntlm::MAX_CHALLENGE`]).
pub const MAX_TOKEN: usize = ntlm::MAX_CHALLENGE.div_ceil(3) * 4;

/// Who may be offered credentials now.
#[derive(Debug)]
pub struct OfferLimiter {
    interval_ms: u64,
    per_hour: usize,
    last: HashMap<IpAddr, u64>,
    order: VecDeque<IpAddr>,
    recent: VecDeque<u64>,
}

impl OfferLimiter {
    pub fn new(interval_s: u32, per_hour: u32) -> Self {
        OfferLimiter {
            interval_ms: u64::from(interval_s) * 1000,
            per_hour: per_hour.max(1) as usize,
            last: HashMap::new(),
            order: VecDeque::new(),
            recent: VecDeque::new(),
        }
    }

    /// Whether `responder` gets an offer now; if so it is counted.
    pub fn allow(&mut self, responder: IpAddr, now_ms: u64) -> bool {
        if self
            .last
            .get(&responder)
            .is_some_and(|t| now_ms.saturating_sub(*t) < self.interval_ms)
        {
            return false;
        }
        while self
            .recent
            .front()
            .is_some_and(|t| now_ms.saturating_sub(*t) >= 3_600_000)
        {
            self.recent.pop_front();
        }
        if self.recent.len() >= self.per_hour {
            return false;
        }
        self.recent.push_back(now_ms);
        if self.last.insert(responder, now_ms).is_none() {
            self.order.push_back(responder);
        } else {
            self.order.retain(|r| *r != responder);
            self.order.push_back(responder);
        }
        while self.order.len() > MAX_RESPONDERS {
            if let Some(old) = self.order.pop_front() {
                self.last.remove(&old);
            }
        }
        true
    }

    pub fn remembered(&self) -> usize {
        self.last.len()
    }
}

/// A honey identity: what a victim's workstation would send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HoneyIdentity {
    pub user: String,
    pub domain: String,
    pub password: String,
    pub workstation: String,
}

const FIRST: &[&str] = &[
    "james", "mary", "robert", "linda", "michael", "sarah", "david", "karen", "thomas", "laura",
    "daniel", "emma", "paul", "anna", "mark", "julia", "peter", "nina", "steven", "claire",
];
const LAST: &[&str] = &[
    "miller", "smith", "becker", "jones", "wagner", "brown", "fischer", "taylor", "weber",
    "wilson", "martin", "moore", "klein", "walker", "young", "hall", "wright", "scott", "green",
    "baker",
];
const SERVICE_USERS: &[&str] = &[
    "svc_backup",
    "svc_scan",
    "svc_sql",
    "scanner",
    "backupadmin",
];
const DOMAINS: &[&str] = &[
    "CORP", "OFFICE", "AD", "HQ", "INTERN", "LAN", "MAIN", "DOMAIN", "ACME", "GLOBAL",
];
const WORDS: &[&str] = &[
    "Summer", "Winter", "Spring", "Autumn", "Welcome", "Password", "Company", "Office", "Monday",
    "Sunshine", "Football", "Dragon", "Changeme", "Letmein",
];
const TAILS: &[&str] = &["!", "#", "1", "!!", ".", ""];

/// The node's honey identity for one offer: user, domain and workstation are the node's
/// (from its persona), the password is new per offer but of the shape a poisoner's
/// cracking rules find (`Autumn2024!`), so that it can be cracked and tried.
pub(crate) fn identity(node: &mut Draw, offer: &mut Draw) -> HoneyIdentity {
    let user = if node.below(5) == 0 {
        (*node.pick(SERVICE_USERS)).to_owned()
    } else {
        let (f, l) = (*node.pick(FIRST), *node.pick(LAST));
        match node.below(3) {
            0 => format!("{f}.{l}"),
            1 => format!("{}{l}", &f[..1]),
            _ => format!("{l}{}", &f[..1]),
        }
    };
    let domain = (*node.pick(DOMAINS)).to_owned();
    let ws_chars = b"0123456789ABCDEFGHJKLMNPQRSTUVWXYZ";
    let workstation: String = "DESKTOP-"
        .chars()
        .chain((0..7).map(|_| char::from(*node.pick(ws_chars))))
        .collect();
    let number = if offer.below(2) == 0 {
        format!("{}", 2019 + offer.below(8))
    } else {
        format!("{:02}", offer.below(100))
    };
    let password = format!("{}{number}{}", offer.pick(WORDS), offer.pick(TAILS));
    HoneyIdentity {
        user,
        domain,
        password,
        workstation,
    }
}

/// Why an offer did not reach its AUTHENTICATE, as the `outcome` field says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Sent,
    ConnectFailed,
    Timeout,
    NoNtlm,
    BadChallenge,
    BadResponse,
}

impl Outcome {
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Sent => "sent",
            Outcome::ConnectFailed => "connect_failed",
            Outcome::Timeout => "timeout",
            Outcome::NoNtlm => "no_ntlm",
            Outcome::BadChallenge => "bad_challenge",
            Outcome::BadResponse => "bad_response",
        }
    }
}

/// One response head and what the client needs of it.
#[derive(Debug)]
struct Response {
    status: u16,
    /// The `WWW-Authenticate: NTLM …` values (token, or empty for the bare scheme).
    ntlm: Vec<String>,
}

/// Reads one response (head capped at [`MAX_HEAD`], a `Content-Length` body of at most
/// [`MAX_BODY`] read and dropped); `buf` keeps what came after it.
async fn read_response(
    s: &mut tokio::net::TcpStream,
    buf: &mut Vec<u8>,
) -> Result<Response, Outcome> {
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() >= MAX_HEAD {
            return Err(Outcome::BadResponse);
        }
        let mut chunk = [0u8; 2048];
        let n = s.read(&mut chunk).await.map_err(|_| Outcome::BadResponse)?;
        if n == 0 {
            return Err(Outcome::BadResponse);
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut r = httparse::Response::new(&mut headers);
    match r.parse(&buf[..head_end]) {
        Ok(httparse::Status::Complete(_)) => {}
        _ => return Err(Outcome::BadResponse),
    }
    let status = r.code.unwrap_or(0);
    let mut ntlm = Vec::new();
    let mut body = 0usize;
    for h in r.headers.iter() {
        let v = std::str::from_utf8(h.value).unwrap_or("").trim();
        if h.name.eq_ignore_ascii_case("www-authenticate") {
            let mut parts = v.splitn(2, ' ');
            if parts
                .next()
                .is_some_and(|scheme| scheme.eq_ignore_ascii_case("ntlm"))
            {
                let token = parts.next().unwrap_or("").trim();
                if token.len() > MAX_TOKEN {
                    return Err(Outcome::BadChallenge);
                }
                ntlm.push(token.to_owned());
            }
        } else if h.name.eq_ignore_ascii_case("content-length") {
            body = v.parse().map_err(|_| Outcome::BadResponse)?;
            if body > MAX_BODY {
                return Err(Outcome::BadResponse);
            }
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(Outcome::BadResponse);
        }
    }
    buf.drain(..head_end);
    while buf.len() < body {
        let mut chunk = [0u8; 4096];
        let n = s.read(&mut chunk).await.map_err(|_| Outcome::BadResponse)?;
        if n == 0 {
            return Err(Outcome::BadResponse);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    buf.drain(..body);
    Ok(Response { status, ntlm })
}

fn request(host: &str, auth: Option<&str>) -> Vec<u8> {
    let auth = auth
        .map(|a| format!("Authorization: NTLM {a}\r\n"))
        .unwrap_or_default();
    format!(
        "GET / HTTP/1.1\r\nConnection: Keep-Alive\r\nUser-Agent: Microsoft-WebDAV-MiniRedir/10.0.19045\r\n{auth}Host: {host}\r\n\r\n"
    )
    .into_bytes()
}

/// A FILETIME (100 ns since 1601-01-01) for now.
fn filetime_now() -> u64 {
    let unix_ms = crate::sink::now_ms().max(0) as u64;
    (unix_ms + 11_644_473_600_000) * 10_000
}

/// The exchange without its deadline.
async fn exchange(to: SocketAddr, host: &str, id: &HoneyIdentity) -> Outcome {
    let Ok(mut s) = tokio::net::TcpStream::connect(to).await else {
        return Outcome::ConnectFailed;
    };
    let mut buf = Vec::new();
    // As the WebDAV redirector does: anonymous first, NTLM once the server asks for it.
    if s.write_all(&request(host, None)).await.is_err() {
        return Outcome::BadResponse;
    }
    let r = match read_response(&mut s, &mut buf).await {
        Ok(r) => r,
        Err(o) => return o,
    };
    if r.status != 401 || r.ntlm.is_empty() {
        return Outcome::NoNtlm;
    }
    let neg = B64.encode(ntlm::negotiate());
    if s.write_all(&request(host, Some(&neg))).await.is_err() {
        return Outcome::BadResponse;
    }
    let r = match read_response(&mut s, &mut buf).await {
        Ok(r) => r,
        Err(o) => return o,
    };
    let Some(token) = r.ntlm.iter().find(|t| !t.is_empty()) else {
        return Outcome::NoNtlm;
    };
    let Ok(raw) = B64.decode(token) else {
        return Outcome::BadChallenge;
    };
    let Ok(ch) = ntlm::parse_challenge(&raw) else {
        return Outcome::BadChallenge;
    };
    let msg = ntlm::authenticate(
        &ntlm::Identity {
            user: &id.user,
            domain: &id.domain,
            password: &id.password,
            workstation: &id.workstation,
        },
        &ch,
        rand::random(),
        filetime_now(),
    );
    if s.write_all(&request(host, Some(&B64.encode(msg))))
        .await
        .is_err()
    {
        return Outcome::BadResponse;
    }
    // Whatever the server answers now, it has the credentials; wait briefly for it so
    // the connection ends as a client's would.
    let _ = read_response(&mut s, &mut buf).await;
    Outcome::Sent
}

/// Offers `id` to the HTTP server at `to`, asking for `host` (the honey-name); at most
/// `deadline` in all.
pub async fn offer(to: SocketAddr, host: &str, id: &HoneyIdentity, deadline: Duration) -> Outcome {
    tokio::time::timeout(deadline, exchange(to, host, id))
        .await
        .unwrap_or(Outcome::Timeout)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_offer_per_responder_per_interval_and_a_total_per_hour() {
        let mut l = OfferLimiter::new(600, 3);
        let a = IpAddr::from([10, 0, 0, 66]);
        // A flood of poisoned answers from one responder: one offer.
        let offers = (0..10_000u64).filter(|i| l.allow(a, *i)).count();
        assert_eq!(offers, 1);
        assert!(l.allow(a, 600_000), "again after the interval");
        // Many spoofed responders: the hourly total holds.
        let many = (0..1_000u32)
            .filter(|i| l.allow(IpAddr::from(i.to_be_bytes()), 700_000))
            .count();
        assert_eq!(many, 1, "3 an hour, 2 already used");
        assert!(l.allow(IpAddr::from([10, 9, 9, 9]), 700_000 + 3_600_000));
        // Memory is bounded under spoofed responders spread over time.
        let mut l = OfferLimiter::new(60, 60);
        for i in 0..10_000u32 {
            l.allow(IpAddr::from(i.to_be_bytes()), u64::from(i) * 60_000);
        }
        assert!(l.remembered() <= MAX_RESPONDERS);
    }

    #[test]
    fn identities_are_per_node_and_passwords_per_offer() {
        let ident = |node: u8, offer: u8| {
            identity(
                &mut Draw::new(&[node; 32], "detectors/honeycred"),
                &mut Draw::new(&[node; 32], &format!("detectors/honeycred/{offer}")),
            )
        };
        let a0 = ident(1, 0);
        let a1 = ident(1, 1);
        assert_eq!((&a0.user, &a0.domain), (&a1.user, &a1.domain));
        assert_eq!(a0, ident(1, 0));
        let users: std::collections::HashSet<String> = (0..40).map(|n| ident(n, 0).user).collect();
        assert!(users.len() > 20, "{users:?}");
        let passwords: std::collections::HashSet<String> =
            (0..40).map(|o| ident(1, o).password).collect();
        assert!(passwords.len() > 20, "{passwords:?}");
        assert!(a0.workstation.starts_with("DESKTOP-") && a0.workstation.len() == 15);
    }

    /// A server that answers with whatever `answers` holds, one per request.
    async fn server(answers: Vec<Vec<u8>>) -> SocketAddr {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut buf = Vec::new();
            for a in answers {
                loop {
                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        buf.drain(..i + 4);
                        break;
                    }
                    let mut c = [0u8; 1024];
                    let n = s.read(&mut c).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&c[..n]);
                }
                if s.write_all(&a).await.is_err() {
                    return;
                }
            }
            // Then silence, holding the connection.
            tokio::time::sleep(Duration::from_secs(30)).await;
        });
        addr
    }

    fn id() -> HoneyIdentity {
        HoneyIdentity {
            user: "j.miller".into(),
            domain: "CORP".into(),
            password: "Autumn2024!".into(),
            workstation: "DESKTOP-ABCDEFG".into(),
        }
    }

    #[tokio::test]
    async fn hostile_servers_are_bounded() {
        let ask =
            b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: NTLM\r\nContent-Length: 0\r\n\r\n"
                .to_vec();
        // An endless head.
        let mut endless = b"HTTP/1.1 401 Unauthorized\r\n".to_vec();
        endless.extend(std::iter::repeat_n(b'a', MAX_HEAD + 10));
        let to = server(vec![endless]).await;
        assert_eq!(
            offer(to, "FS01", &id(), DEADLINE).await,
            Outcome::BadResponse
        );
        // An oversized challenge token.
        let big = format!(
            "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: NTLM {}\r\nContent-Length: 0\r\n\r\n",
            "A".repeat(MAX_TOKEN + 4)
        );
        let to = server(vec![ask.clone(), big.into_bytes()]).await;
        assert_eq!(
            offer(to, "FS01", &id(), DEADLINE).await,
            Outcome::BadChallenge
        );
        // A body over the cap.
        let body = b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: NTLM\r\nContent-Length: 9999999\r\n\r\n".to_vec();
        let to = server(vec![body]).await;
        assert_eq!(
            offer(to, "FS01", &id(), DEADLINE).await,
            Outcome::BadResponse
        );
        // A server that stops answering: the deadline ends it.
        let to = server(vec![ask]).await;
        assert_eq!(
            offer(to, "FS01", &id(), Duration::from_millis(300)).await,
            Outcome::Timeout
        );
        // No NTLM at all.
        let to = server(vec![
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_vec(),
        ])
        .await;
        assert_eq!(offer(to, "FS01", &id(), DEADLINE).await, Outcome::NoNtlm);
    }
}
