//! Sans-IO MySQL client/server protocol pieces the honeypot needs: packet framing with a
//! size cap checked before the payload is awaited, the v10 server greeting, the client's
//! HandshakeResponse (4.1 and 3.20 forms), AuthSwitchRequest and ERR packets.

/// Capability flags (`CLIENT_*`).
pub(crate) mod cap {
    pub const CONNECT_WITH_DB: u32 = 0x8;
    pub const PROTOCOL_41: u32 = 0x200;
    pub const SSL: u32 = 0x800;
    pub const SECURE_CONNECTION: u32 = 0x8000;
    pub const PLUGIN_AUTH: u32 = 0x8_0000;
    pub const CONNECT_ATTRS: u32 = 0x10_0000;
    pub const PLUGIN_AUTH_LENENC_CLIENT_DATA: u32 = 0x20_0000;
}

/// What a MySQL 8.0 server announces: everything up to `CLIENT_MULTI_FACTOR_AUTHENTICATION`
/// but the client-only bits, `CLIENT_SSL` included (8.0 makes itself a certificate and
/// offers TLS).
pub(crate) const MYSQL8_CAPS: u32 = 0xdfff_ffff;
/// `utf8mb4_0900_ai_ci`, 8.0's default collation.
pub(crate) const MYSQL8_CHARSET: u8 = 255;
/// `SERVER_STATUS_AUTOCOMMIT`.
const STATUS: u16 = 0x0002;

/// Largest client packet accepted before authentication. Real handshake responses are a
/// few hundred bytes (attributes included); MySQL itself refuses big pre-auth packets.
pub(crate) const MAX_CLIENT_PACKET: usize = 8 * 1024;

/// Framing errors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum PacketError {
    #[error("packet of {0} bytes over the pre-authentication cap")]
    TooLarge(usize),
    #[error("malformed handshake response: {0}")]
    Malformed(&'static str),
}

/// The front of the input buffer.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Frame<'a> {
    Incomplete,
    Packet {
        seq: u8,
        payload: &'a [u8],
        consumed: usize,
    },
}

/// Splits one packet (3-byte little-endian length, sequence id, payload) off `buf`.
/// The announced length is checked against the cap as soon as the header is in.
pub(crate) fn frame(buf: &[u8]) -> Result<Frame<'_>, PacketError> {
    let Some(h) = buf.get(..4) else {
        return Ok(Frame::Incomplete);
    };
    let len = usize::from(h[0]) | usize::from(h[1]) << 8 | usize::from(h[2]) << 16;
    if len > MAX_CLIENT_PACKET {
        return Err(PacketError::TooLarge(len));
    }
    match buf.get(4..4 + len) {
        None => Ok(Frame::Incomplete),
        Some(payload) => Ok(Frame::Packet {
            seq: h[3],
            payload,
            consumed: 4 + len,
        }),
    }
}

/// Wraps a payload (at most 16 MiB − 1, which every packet here is far below).
pub(crate) fn packet(seq: u8, payload: &[u8]) -> Vec<u8> {
    let len = payload.len().min(0xff_ffff);
    let mut p = Vec::with_capacity(4 + len);
    p.extend_from_slice(&(len as u32).to_le_bytes()[..3]);
    p.push(seq);
    p.extend_from_slice(&payload[..len]);
    p
}

/// A scramble like MySQL's `generate_user_salt`: 7-bit bytes, never NUL or `$`.
pub(crate) fn scramble_from(random: [u8; 20]) -> [u8; 20] {
    random.map(|b| match b & 0x7f {
        0 | b'$' => (b & 0x7f) + 1,
        c => c,
    })
}

/// What a greeting says besides the connection's own values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Greeting<'a> {
    pub version: &'a str,
    pub caps: u32,
    pub charset: u8,
    /// MariaDB's extended capabilities, in the last four filler bytes.
    pub ext_caps: Option<u32>,
    pub plugin: &'a str,
}

/// The Protocol::HandshakeV10 greeting (packet 0).
pub(crate) fn greeting(g: &Greeting<'_>, conn_id: u32, scramble: &[u8; 20]) -> Vec<u8> {
    let mut p = Vec::with_capacity(96);
    p.push(10);
    p.extend_from_slice(g.version.as_bytes());
    p.push(0);
    p.extend_from_slice(&conn_id.to_le_bytes());
    p.extend_from_slice(&scramble[..8]);
    p.push(0);
    p.extend_from_slice(&(g.caps as u16).to_le_bytes());
    p.push(g.charset);
    p.extend_from_slice(&STATUS.to_le_bytes());
    p.extend_from_slice(&((g.caps >> 16) as u16).to_le_bytes());
    p.push(21); // scramble length + NUL
    p.extend_from_slice(&[0; 6]);
    p.extend_from_slice(&g.ext_caps.unwrap_or(0).to_le_bytes());
    p.extend_from_slice(&scramble[8..]);
    p.push(0);
    p.extend_from_slice(g.plugin.as_bytes());
    p.push(0);
    packet(0, &p)
}

/// Protocol::AuthMoreData: `0x01` and the data.
pub(crate) fn auth_more_data(seq: u8, data: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(1 + data.len());
    p.push(0x01);
    p.extend_from_slice(data);
    packet(seq, &p)
}

/// Protocol::AuthSwitchRequest.
pub(crate) fn auth_switch(seq: u8, plugin: &str, scramble: &[u8; 20]) -> Vec<u8> {
    let mut p = vec![0xfe];
    p.extend_from_slice(plugin.as_bytes());
    p.push(0);
    p.extend_from_slice(scramble);
    p.push(0);
    packet(seq, &p)
}

/// An ERR packet in the 4.1 form (`#` + SQL state).
#[cfg(test)]
pub(crate) fn err(seq: u8, code: u16, state: &str, msg: &str) -> Vec<u8> {
    err_for(true, seq, code, state, msg)
}

/// An ERR packet in the form the client speaks: without the SQL state for a client
/// that did not announce `CLIENT_PROTOCOL_41`.
pub(crate) fn err_for(protocol_41: bool, seq: u8, code: u16, state: &str, msg: &str) -> Vec<u8> {
    err_bytes(protocol_41, seq, code, state, msg.as_bytes())
}

/// [`err_for`] with a message in the client's character set (not always UTF-8).
pub(crate) fn err_bytes(protocol_41: bool, seq: u8, code: u16, state: &str, msg: &[u8]) -> Vec<u8> {
    let mut p = vec![0xff];
    p.extend_from_slice(&code.to_le_bytes());
    if protocol_41 {
        p.push(b'#');
        p.extend_from_slice(state.as_bytes());
    }
    p.extend_from_slice(msg);
    packet(seq, &p)
}

/// Whether a client's first packet announces `CLIENT_PROTOCOL_41`. The servers read the
/// capabilities only from a packet of at least 6 bytes, and assume 4.1 until then.
pub(crate) fn speaks_41(payload: &[u8]) -> bool {
    match payload {
        [lo, hi, _, _, _, _, ..] => u16::from_le_bytes([*lo, *hi]) & cap::PROTOCOL_41 as u16 != 0,
        _ => true,
    }
}

/// What a client sent to log in.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct HandshakeResponse {
    pub caps: u32,
    /// The client's character set (collation id); 0 for a pre-4.1 client.
    pub charset: u8,
    pub user: Vec<u8>,
    pub auth_response: Vec<u8>,
    pub database: Option<Vec<u8>>,
    /// The plugin that computed `auth_response`, if the client said.
    pub plugin: Option<Vec<u8>>,
    /// Connection attributes (`_client_name`, `_client_version`, `_os`, …), at most
    /// [`MAX_ATTRS`].
    pub attrs: Vec<(Vec<u8>, Vec<u8>)>,
}

/// Most connection attributes kept.
pub(crate) const MAX_ATTRS: usize = 32;

/// The client's first packet after the greeting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ClientHello {
    /// A login.
    Login(HandshakeResponse),
    /// An SSLRequest: the client wants TLS although it was not offered.
    SslRequest,
}

/// A bounds-checked reader over a payload.
struct Reader<'a> {
    b: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], PacketError> {
        if self.b.len() < n {
            return Err(PacketError::Malformed("truncated"));
        }
        let (h, t) = self.b.split_at(n);
        self.b = t;
        Ok(h)
    }

    fn u8(&mut self) -> Result<u8, PacketError> {
        Ok(self.take(1)?[0])
    }

    fn nul_str(&mut self) -> Result<&'a [u8], PacketError> {
        let i = self
            .b
            .iter()
            .position(|&c| c == 0)
            .ok_or(PacketError::Malformed("unterminated string"))?;
        let s = &self.b[..i];
        self.b = &self.b[i + 1..];
        Ok(s)
    }

    /// A NUL-terminated string that may also just end with the packet.
    fn nul_or_eof_str(&mut self) -> &'a [u8] {
        match self.b.iter().position(|&c| c == 0) {
            Some(i) => {
                let s = &self.b[..i];
                self.b = &self.b[i + 1..];
                s
            }
            None => std::mem::take(&mut self.b),
        }
    }

    fn lenenc_int(&mut self) -> Result<u64, PacketError> {
        let first = self.u8()?;
        let width = match first {
            0..=0xfa => return Ok(u64::from(first)),
            0xfc => 2,
            0xfd => 3,
            0xfe => 8,
            _ => return Err(PacketError::Malformed("bad length-encoded integer")),
        };
        let mut v = 0u64;
        for (i, &b) in self.take(width)?.iter().enumerate() {
            v |= u64::from(b) << (8 * i);
        }
        Ok(v)
    }

    fn lenenc_str(&mut self) -> Result<&'a [u8], PacketError> {
        let n = self.lenenc_int()?;
        // Never more than what is left: `take` checks before slicing, nothing allocated.
        let n = usize::try_from(n).map_err(|_| PacketError::Malformed("length overflow"))?;
        self.take(n)
    }
}

/// Parses the client's answer to the greeting.
pub(crate) fn parse_client_hello(payload: &[u8]) -> Result<ClientHello, PacketError> {
    let mut r = Reader { b: payload };
    let low = r.take(2)?;
    let low = u32::from(u16::from_le_bytes([low[0], low[1]]));
    if low & cap::PROTOCOL_41 == 0 {
        return parse_320(payload);
    }
    let high = r.take(2)?;
    let caps = low | u32::from(u16::from_le_bytes([high[0], high[1]])) << 16;
    let _max_packet = r.take(4)?;
    let charset = r.u8()?;
    // 23 filler bytes (MariaDB keeps its extended capabilities in the last four).
    r.take(23)?;
    if r.b.is_empty() && caps & cap::SSL != 0 {
        return Ok(ClientHello::SslRequest);
    }
    let mut h = HandshakeResponse {
        caps,
        charset,
        user: r.nul_str()?.to_vec(),
        ..HandshakeResponse::default()
    };
    h.auth_response = if caps & cap::PLUGIN_AUTH_LENENC_CLIENT_DATA != 0 {
        r.lenenc_str()?.to_vec()
    } else if caps & cap::SECURE_CONNECTION != 0 {
        let n = r.u8()?;
        r.take(usize::from(n))?.to_vec()
    } else {
        r.nul_str()?.to_vec()
    };
    if caps & cap::CONNECT_WITH_DB != 0 && !r.b.is_empty() {
        h.database = Some(r.nul_or_eof_str().to_vec());
    }
    if caps & cap::PLUGIN_AUTH != 0 && !r.b.is_empty() {
        h.plugin = Some(r.nul_or_eof_str().to_vec());
    }
    if caps & cap::CONNECT_ATTRS != 0 && !r.b.is_empty() {
        let total = usize::try_from(r.lenenc_int()?)
            .map_err(|_| PacketError::Malformed("length overflow"))?;
        let mut attrs = Reader { b: r.take(total)? };
        while !attrs.b.is_empty() && h.attrs.len() < MAX_ATTRS {
            let k = attrs.lenenc_str()?;
            let v = attrs.lenenc_str()?;
            h.attrs.push((k.to_vec(), v.to_vec()));
        }
    }
    Ok(ClientHello::Login(h))
}

/// HandshakeResponse320: 2-byte capabilities, 3-byte max packet, user, then the old
/// 8-byte scramble (NUL-terminated when a database follows).
fn parse_320(payload: &[u8]) -> Result<ClientHello, PacketError> {
    let mut r = Reader { b: payload };
    let c = r.take(2)?;
    let caps = u32::from(u16::from_le_bytes([c[0], c[1]]));
    r.take(3)?;
    let user = r.nul_str()?.to_vec();
    let (auth_response, database) = if caps & cap::CONNECT_WITH_DB != 0 {
        let a = r.nul_or_eof_str().to_vec();
        let d = (!r.b.is_empty()).then(|| r.nul_or_eof_str().to_vec());
        (a, d)
    } else {
        (r.nul_or_eof_str().to_vec(), None)
    };
    Ok(ClientHello::Login(HandshakeResponse {
        caps,
        charset: 0,
        user,
        auth_response,
        database,
        plugin: None,
        attrs: Vec::new(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const LONG_PASSWORD: u32 = 0x1;

    fn lenenc(out: &mut Vec<u8>, s: &[u8]) {
        assert!(s.len() < 251);
        out.push(s.len() as u8);
        out.extend_from_slice(s);
    }

    /// A HandshakeResponse41 as libmariadb/libmysqlclient build it.
    fn response41(
        user: &str,
        auth: &[u8],
        db: Option<&str>,
        plugin: &str,
        attrs: &[(&str, &str)],
    ) -> Vec<u8> {
        let mut caps = LONG_PASSWORD
            | cap::PROTOCOL_41
            | cap::SECURE_CONNECTION
            | cap::PLUGIN_AUTH
            | cap::CONNECT_ATTRS
            | cap::PLUGIN_AUTH_LENENC_CLIENT_DATA;
        if db.is_some() {
            caps |= cap::CONNECT_WITH_DB;
        }
        let mut p = caps.to_le_bytes().to_vec();
        p.extend_from_slice(&(16u32 << 20).to_le_bytes());
        p.push(45);
        p.extend_from_slice(&[0; 23]);
        p.extend_from_slice(user.as_bytes());
        p.push(0);
        lenenc(&mut p, auth);
        if let Some(db) = db {
            p.extend_from_slice(db.as_bytes());
            p.push(0);
        }
        p.extend_from_slice(plugin.as_bytes());
        p.push(0);
        let mut a = Vec::new();
        for (k, v) in attrs {
            lenenc(&mut a, k.as_bytes());
            lenenc(&mut a, v.as_bytes());
        }
        lenenc(&mut p, &a);
        p
    }

    #[test]
    fn greeting_matches_what_nmap_and_clients_expect() {
        let s = scramble_from([0x80; 20]);
        assert!(s.iter().all(|&b| b != 0 && b != b'$' && b < 0x80));
        let g = greeting(
            &Greeting {
                version: "8.0.36-0ubuntu0.22.04.1",
                caps: MYSQL8_CAPS,
                charset: MYSQL8_CHARSET,
                ext_caps: None,
                plugin: "caching_sha2_password",
            },
            17,
            &s,
        );
        // nmap: m|^.\0\0\0\x0a(8\.[-_~.+\w]+)\0...\0|s
        assert_eq!(usize::from(g[0]), g.len() - 4);
        assert_eq!(&g[1..5], &[0, 0, 0, 10]);
        assert_eq!(&g[5..28], b"8.0.36-0ubuntu0.22.04.1");
        assert_eq!(g[28], 0);
        assert_eq!(&g[29..33], &[17, 0, 0, 0]);
        let caps_low = u16::from_le_bytes([g[42], g[43]]);
        assert_ne!(u32::from(caps_low) & cap::SSL, 0, "TLS offered");
        assert!(g.ends_with(b"caching_sha2_password\0"));
    }

    #[test]
    fn framing_checks_the_cap_first() {
        assert_eq!(frame(b"\x05\0\0"), Ok(Frame::Incomplete));
        assert_eq!(frame(b"\x05\0\0\x01abc"), Ok(Frame::Incomplete));
        assert_eq!(
            frame(b"\x03\0\0\x01abcX"),
            Ok(Frame::Packet {
                seq: 1,
                payload: b"abc",
                consumed: 7
            })
        );
        assert_eq!(
            frame(b"\xff\xff\xff\x01"),
            Err(PacketError::TooLarge(0xff_ffff))
        );
        assert_eq!(packet(3, b"xy"), b"\x02\0\0\x03xy");
    }

    #[test]
    fn handshake_response_41() {
        let auth: Vec<u8> = (1..=20).collect();
        let p = response41(
            "root",
            &auth,
            Some("mysql"),
            "mysql_native_password",
            &[
                ("_client_name", "libmariadb"),
                ("_client_version", "3.3.8"),
                ("_os", "Linux"),
            ],
        );
        let ClientHello::Login(h) = parse_client_hello(&p).unwrap() else {
            panic!()
        };
        assert_eq!(h.user, b"root");
        assert_eq!(h.auth_response, auth);
        assert_eq!(h.database.as_deref(), Some(&b"mysql"[..]));
        assert_eq!(h.plugin.as_deref(), Some(&b"mysql_native_password"[..]));
        assert_eq!(h.attrs.len(), 3);
        assert_eq!(h.attrs[1], (b"_client_version".to_vec(), b"3.3.8".to_vec()));
        // Empty password, no database.
        let p = response41("bob", b"", None, "caching_sha2_password", &[]);
        let ClientHello::Login(h) = parse_client_hello(&p).unwrap() else {
            panic!()
        };
        assert!(h.auth_response.is_empty() && h.database.is_none());
        // Every truncation is an error or a shorter parse, never a panic.
        for n in 0..p.len() {
            let _ = parse_client_hello(&p[..n]);
        }
    }

    #[test]
    fn ssl_request_and_320() {
        let mut ssl = (cap::PROTOCOL_41 | cap::SSL | cap::SECURE_CONNECTION)
            .to_le_bytes()
            .to_vec();
        ssl.extend_from_slice(&[0; 28]);
        assert_eq!(parse_client_hello(&ssl), Ok(ClientHello::SslRequest));
        let mut old = (LONG_PASSWORD as u16).to_le_bytes().to_vec();
        old.extend_from_slice(&[0, 0, 0]);
        old.extend_from_slice(b"admin\0ABCDEFGH");
        let ClientHello::Login(h) = parse_client_hello(&old).unwrap() else {
            panic!()
        };
        assert_eq!(
            (h.user.as_slice(), h.auth_response.as_slice()),
            (&b"admin"[..], &b"ABCDEFGH"[..])
        );
    }

    #[test]
    fn hostile_lengths_are_refused() {
        let mut p = response41("u", b"x", None, "p", &[]);
        // Attribute block claiming 2^64-1 bytes.
        let n = p.len();
        p.truncate(n - 1);
        p.extend_from_slice(&[0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
        assert!(parse_client_hello(&p).is_err());
    }

    #[test]
    fn err_and_switch_packets() {
        let e = err(
            2,
            1045,
            "28000",
            "Access denied for user 'u'@'1.2.3.4' (using password: YES)",
        );
        assert_eq!(&e[3..7], &[2, 0xff, 0x15, 0x04]);
        assert_eq!(&e[7..13], b"#28000");
        let s = auth_switch(2, "mysql_native_password", &[b'a'; 20]);
        assert_eq!(s[4], 0xfe);
        assert!(s.ends_with(&[b'a', 0]));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = frame(&data);
            if let Ok(ClientHello::Login(h)) = parse_client_hello(&data) {
                prop_assert!(h.user.len() <= data.len());
                prop_assert!(h.attrs.len() <= MAX_ATTRS);
            }
        }

        #[test]
        fn mutated_responses_never_panic(pos in 0usize..200, byte in any::<u8>(), cut in 0usize..200) {
            let mut p = response41("root", &[7; 20], Some("db"), "mysql_native_password", &[("_client_name", "x")]);
            let i = pos % p.len();
            p[i] = byte;
            p.truncate(p.len() - cut % p.len());
            let _ = parse_client_hello(&p);
        }
    }
}
