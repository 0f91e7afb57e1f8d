//! Sans-IO telnet (RFC 854) codec with the option negotiation of Debian 12's telnetd
//! (inetutils-telnetd 2.4): the same requests in the same order, the same waits for the
//! client's answers (RFC 1143 states, so an answer to our own request gets no reply and
//! a refusal never loops), the same subnegotiation queries, and the client's data held
//! until negotiation is over, as telnetd keeps it for login. It strips commands from the
//! peer's bytes, reads the window size and terminal type, and escapes what we send.

/// Interpret As Command.
pub(crate) const IAC: u8 = 255;
const DONT: u8 = 254;
const DO: u8 = 253;
const WONT: u8 = 252;
const WILL: u8 = 251;
const SB: u8 = 250;
const EL: u8 = 248;
const EC: u8 = 247;
const AYT: u8 = 246;
const IP: u8 = 244;
const BRK: u8 = 243;
pub(crate) const DM: u8 = 242;
const SE: u8 = 240;

const OPT_BINARY: u8 = 0;
pub(crate) const OPT_ECHO: u8 = 1;
pub(crate) const OPT_SGA: u8 = 3;
const OPT_STATUS: u8 = 5;
const OPT_TM: u8 = 6;
const OPT_TTYPE: u8 = 24;
pub(crate) const OPT_NAWS: u8 = 31;
const OPT_TSPEED: u8 = 32;
const OPT_LFLOW: u8 = 33;
const OPT_LINEMODE: u8 = 34;
const OPT_XDISPLOC: u8 = 35;
const OPT_OLD_ENVIRON: u8 = 36;
const OPT_AUTHENTICATION: u8 = 37;
const OPT_ENCRYPT: u8 = 38;
const OPT_NEW_ENVIRON: u8 = 39;

/// Subnegotiation `SEND` (TTYPE, TSPEED, XDISPLOC, ENVIRON) and `IS`.
const SB_SEND: u8 = 1;
const SB_IS: u8 = 0;
/// LINEMODE's MODE with EDIT | TRAPSIG, which telnetd sends a client that will.
const LM_MODE: u8 = 1;
/// LFLOW: output restarts on XON only.
const LFLOW_RESTART_XON: u8 = 3;

/// Longest subnegotiation kept; the rest of a longer one is skipped (NAWS needs 4 bytes,
/// terminal types are short).
const MAX_SB: usize = 64;
/// Most data bytes held while negotiation is under way; telnetd's buffer is about as big.
const MAX_HELD: usize = 4096;
/// Most times the terminal type is asked for (telnetd asks again while the answer is
/// one it does not know and differs from the last).
const MAX_TTYPE_QUERIES: u8 = 4;

/// What telnetd sends on connection and then waits on: it offers AUTHENTICATION and
/// ENCRYPT and asks for the terminal type, speed, X display and both environments.
/// Scanners fingerprint exactly these 21 bytes (nmap's NULL probe).
pub(crate) const PROBE: &[u8] = &[
    IAC,
    WILL,
    OPT_AUTHENTICATION,
    IAC,
    WILL,
    OPT_ENCRYPT,
    IAC,
    DO,
    OPT_TTYPE,
    IAC,
    DO,
    OPT_TSPEED,
    IAC,
    DO,
    OPT_XDISPLOC,
    IAC,
    DO,
    OPT_NEW_ENVIRON,
    IAC,
    DO,
    OPT_OLD_ENVIRON,
];

/// Something the peer said besides data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TelnetEvent {
    /// NAWS: columns, rows.
    WindowSize(u16, u16),
    /// TTYPE IS, lower-cased as telnetd puts it in `TERM`.
    TerminalType(String),
}

/// The result of decoding one chunk.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Decoded {
    /// The peer's data, commands removed (`CR NUL` and `CR LF` become `CR`); empty until
    /// negotiation is over, then what was held comes first.
    pub data: Vec<u8>,
    /// Negotiation answers (and `[Yes]` for AYT) to send back, before anything else.
    pub reply: Vec<u8>,
    pub events: Vec<TelnetEvent>,
    /// Negotiation ended with this chunk: telnetd starts login now (banner, prompt).
    pub ready: bool,
    /// Telnet's interrupt (IP or BRK): telnetd signals the process on the terminal.
    pub interrupt: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Data,
    /// After a CR in data: a NUL or LF that follows is dropped.
    Cr,
    Iac,
    /// After WILL/WONT/DO/DONT: the option byte comes next.
    Verb(u8),
    Sb,
    SbIac,
}

/// One side of one option (RFC 1143 without the queue bit: telnetd never changes its
/// mind while a request is out).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Q {
    No,
    Yes,
    /// We asked; the answer is still out.
    WantYes,
}

/// How far telnetd's start-up has come.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// [`PROBE`] sent: waiting for the seven answers (`getterminaltype`).
    Options,
    /// Subnegotiation queries sent for what the client will: waiting for each.
    Subs,
    /// The terminal options (`telnetd_run`) sent: waiting for the answer about NAWS.
    Terminal,
    /// Login runs; data flows.
    Ready,
}

/// Per-connection decoder state; a few kilobytes whatever the peer sends.
#[derive(Debug)]
pub(crate) struct TelnetCodec {
    state: State,
    sb: Vec<u8>,
    sb_overflow: bool,
    us: [Q; 256],
    him: [Q; 256],
    phase: Phase,
    /// Options whose subnegotiation (`IS`) we wait for.
    awaited: Vec<u8>,
    ttype_queries: u8,
    last_ttype: Vec<u8>,
    /// The client refused our SGA offer: telnetd offers it again once its timing-mark
    /// probe is answered (the "kludge linemode" dance).
    sga_refused: bool,
    held: Vec<u8>,
    /// The peer sent something: lets the driver give up waiting on a peer that talks but
    /// does not negotiate (see [`TelnetCodec::give_up`]).
    heard: bool,
}

impl Default for TelnetCodec {
    fn default() -> Self {
        let mut c = TelnetCodec {
            state: State::Data,
            sb: Vec::new(),
            sb_overflow: false,
            us: [Q::No; 256],
            him: [Q::No; 256],
            phase: Phase::Options,
            awaited: Vec::new(),
            ttype_queries: 0,
            last_ttype: Vec::new(),
            sga_refused: false,
            held: Vec::new(),
            heard: false,
        };
        c.us[usize::from(OPT_AUTHENTICATION)] = Q::WantYes;
        c.us[usize::from(OPT_ENCRYPT)] = Q::WantYes;
        for o in [
            OPT_TTYPE,
            OPT_TSPEED,
            OPT_XDISPLOC,
            OPT_NEW_ENVIRON,
            OPT_OLD_ENVIRON,
        ] {
            c.him[usize::from(o)] = Q::WantYes;
        }
        c
    }
}

/// Terminal types telnetd's terminfo lookup knows, so it asks only once.
fn known_terminal(t: &[u8]) -> bool {
    let t = t.to_ascii_lowercase();
    const KNOWN: &[&[u8]] = &[
        b"xterm",
        b"vt100",
        b"vt102",
        b"vt220",
        b"vt52",
        b"linux",
        b"ansi",
        b"dumb",
        b"screen",
        b"tmux",
        b"rxvt",
        b"putty",
        b"cygwin",
        b"sun",
        b"network",
        b"unknown",
        b"konsole",
        b"gnome",
        b"st",
        b"alacritty",
        b"kitty",
        b"eterm",
        b"cons25",
    ];
    KNOWN
        .iter()
        .any(|k| t.starts_with(k) && (t.len() == k.len() || matches!(t[k.len()], b'-' | b'+')))
}

impl TelnetCodec {
    /// Decodes one chunk of peer bytes; state carries over to the next chunk.
    pub(crate) fn decode(&mut self, input: &[u8]) -> Decoded {
        let mut out = Decoded {
            data: Vec::with_capacity(input.len()),
            ..Decoded::default()
        };
        if !input.is_empty() {
            self.heard = true;
        }
        for &b in input {
            self.state = match self.state {
                State::Data | State::Cr => match b {
                    IAC => State::Iac,
                    0 | b'\n' if self.state == State::Cr => State::Data,
                    b'\r' => {
                        out.data.push(b);
                        State::Cr
                    }
                    _ => {
                        out.data.push(b);
                        State::Data
                    }
                },
                State::Iac => match b {
                    IAC => {
                        out.data.push(IAC);
                        State::Data
                    }
                    WILL | WONT | DO | DONT => State::Verb(b),
                    SB => {
                        self.sb.clear();
                        self.sb_overflow = false;
                        State::Sb
                    }
                    IP | BRK => {
                        out.interrupt = true;
                        State::Data
                    }
                    // The editing commands mean what their control characters mean.
                    EC => {
                        out.data.push(0x7f);
                        State::Data
                    }
                    EL => {
                        out.data.push(0x15);
                        State::Data
                    }
                    AYT => {
                        out.reply.extend_from_slice(b"\r\n[Yes]\r\n");
                        State::Data
                    }
                    // NOP, DM, AO, GA, EOR and bytes that are no command: dropped.
                    _ => State::Data,
                },
                State::Verb(verb) => {
                    self.negotiate(verb, b, &mut out.reply);
                    State::Data
                }
                State::Sb => match b {
                    IAC => State::SbIac,
                    _ => {
                        self.sb_push(b);
                        State::Sb
                    }
                },
                State::SbIac => match b {
                    SE => {
                        self.subnegotiation(&mut out);
                        State::Data
                    }
                    IAC => {
                        self.sb_push(IAC);
                        State::Sb
                    }
                    // A broken subnegotiation: drop it and read on as commands.
                    _ => State::Data,
                },
            };
        }
        self.advance(&mut out);
        if self.phase != Phase::Ready {
            let room = MAX_HELD.saturating_sub(self.held.len());
            let n = out.data.len().min(room);
            self.held.extend_from_slice(&out.data[..n]);
            out.data.clear();
        }
        out
    }

    /// Whether negotiation is over and data flows.
    pub(crate) fn ready(&self) -> bool {
        self.phase == Phase::Ready
    }

    /// Whether the client agreed to binary output (DO BINARY).
    pub(crate) fn binary_out(&self) -> bool {
        self.us[usize::from(OPT_BINARY)] == Q::Yes
    }

    /// Whether the peer has sent anything at all.
    pub(crate) fn heard(&self) -> bool {
        self.heard
    }

    /// The peer talks but leaves requests unanswered: take every open request as refused
    /// and finish negotiation (telnetd would wait for ever; a bot that types its login
    /// blind is worth hearing). Returns what to send, as [`Self::decode`] does.
    pub(crate) fn give_up(&mut self) -> Decoded {
        let mut out = Decoded::default();
        for _ in 0..4 {
            if self.phase == Phase::Ready {
                break;
            }
            for q in self.us.iter_mut().chain(self.him.iter_mut()) {
                if *q == Q::WantYes {
                    *q = Q::No;
                }
            }
            self.awaited.clear();
            self.advance(&mut out);
        }
        out
    }

    /// Moves through telnetd's start-up as far as the answers allow.
    fn advance(&mut self, out: &mut Decoded) {
        loop {
            match self.phase {
                Phase::Options => {
                    let waiting = [OPT_AUTHENTICATION, OPT_ENCRYPT]
                        .iter()
                        .any(|&o| self.us[usize::from(o)] == Q::WantYes)
                        || [
                            OPT_TTYPE,
                            OPT_TSPEED,
                            OPT_XDISPLOC,
                            OPT_NEW_ENVIRON,
                            OPT_OLD_ENVIRON,
                        ]
                        .iter()
                        .any(|&o| self.him[usize::from(o)] == Q::WantYes);
                    if waiting {
                        return;
                    }
                    let mut ask = vec![OPT_TSPEED, OPT_XDISPLOC];
                    if self.him[usize::from(OPT_NEW_ENVIRON)] == Q::Yes {
                        ask.push(OPT_NEW_ENVIRON);
                    } else {
                        ask.push(OPT_OLD_ENVIRON);
                    }
                    ask.push(OPT_TTYPE);
                    for o in ask {
                        if self.him[usize::from(o)] == Q::Yes {
                            out.reply.extend_from_slice(&[IAC, SB, o, SB_SEND, IAC, SE]);
                            self.awaited.push(o);
                            if o == OPT_TTYPE {
                                self.ttype_queries = 1;
                            }
                        }
                    }
                    self.phase = Phase::Subs;
                }
                Phase::Subs => {
                    if !self.awaited.is_empty() {
                        return;
                    }
                    if self.us[usize::from(OPT_SGA)] == Q::No {
                        self.offer(OPT_SGA, &mut out.reply);
                    }
                    self.ask(OPT_ECHO, &mut out.reply);
                    self.ask(OPT_LINEMODE, &mut out.reply);
                    self.ask(OPT_NAWS, &mut out.reply);
                    if self.us[usize::from(OPT_STATUS)] == Q::No {
                        self.offer(OPT_STATUS, &mut out.reply);
                    }
                    self.ask(OPT_LFLOW, &mut out.reply);
                    self.phase = Phase::Terminal;
                }
                Phase::Terminal => {
                    if self.him[usize::from(OPT_NAWS)] == Q::WantYes {
                        return;
                    }
                    if self.him[usize::from(OPT_ECHO)] == Q::WantYes {
                        if self.him[usize::from(OPT_NAWS)] == Q::Yes {
                            return;
                        }
                        // A client that never answered DO ECHO: telnetd acts as if it
                        // had said WILL, and refuses that.
                        self.him[usize::from(OPT_ECHO)] = Q::No;
                        out.reply.extend_from_slice(&[IAC, DONT, OPT_ECHO]);
                    }
                    if self.him[usize::from(OPT_LFLOW)] == Q::Yes {
                        // Flow control: restart on XON only (telnetd's 7-byte buffer
                        // carries sprintf's NUL along).
                        out.reply.extend_from_slice(&[
                            IAC,
                            SB,
                            OPT_LFLOW,
                            LFLOW_RESTART_XON,
                            IAC,
                            SE,
                            0,
                        ]);
                    }
                    if self.us[usize::from(OPT_ECHO)] == Q::No {
                        self.offer(OPT_ECHO, &mut out.reply);
                    }
                    let linemode = self.him[usize::from(OPT_LINEMODE)] == Q::Yes;
                    if !linemode {
                        self.ask(OPT_TM, &mut out.reply);
                    }
                    self.ask(OPT_BINARY, &mut out.reply);
                    if linemode {
                        // login's terminal is not in line mode: telnetd turns it off.
                        self.him[usize::from(OPT_LINEMODE)] = Q::No;
                        out.reply.extend_from_slice(&[IAC, DONT, OPT_LINEMODE]);
                    }
                    self.phase = Phase::Ready;
                    out.ready = true;
                    let mut data = std::mem::take(&mut self.held);
                    data.append(&mut out.data);
                    out.data = data;
                    return;
                }
                Phase::Ready => return,
            }
        }
    }

    /// `send_will`: offers an option we have not offered yet.
    fn offer(&mut self, opt: u8, reply: &mut Vec<u8>) {
        self.us[usize::from(opt)] = Q::WantYes;
        reply.extend_from_slice(&[IAC, WILL, opt]);
    }

    /// `send_do`: asks for an option the client has not agreed to or been asked for.
    fn ask(&mut self, opt: u8, reply: &mut Vec<u8>) {
        if self.him[usize::from(opt)] == Q::No {
            self.him[usize::from(opt)] = Q::WantYes;
            reply.extend_from_slice(&[IAC, DO, opt]);
        }
    }

    fn sb_push(&mut self, b: u8) {
        if self.sb.len() < MAX_SB {
            self.sb.push(b);
        } else {
            self.sb_overflow = true;
        }
    }

    fn subnegotiation(&mut self, out: &mut Decoded) {
        let sb = std::mem::take(&mut self.sb);
        if let [OPT_NAWS, w1, w0, h1, h0] = sb[..]
            && !self.sb_overflow
        {
            let w = u16::from_be_bytes([w1, w0]);
            let h = u16::from_be_bytes([h1, h0]);
            out.events.push(TelnetEvent::WindowSize(w, h));
        }
        let Some((&opt, rest)) = sb.split_first() else {
            return;
        };
        // Only the answer to a query counts (telnetd ignores an unasked `IS`).
        let Some(i) = self.awaited.iter().position(|&o| o == opt) else {
            return;
        };
        if rest.first() != Some(&SB_IS) {
            return;
        }
        if opt == OPT_TTYPE {
            let t = &rest[1..];
            let again = !known_terminal(t)
                && t != self.last_ttype.as_slice()
                && self.ttype_queries < MAX_TTYPE_QUERIES;
            self.last_ttype = t.to_vec();
            if again {
                self.ttype_queries += 1;
                out.reply
                    .extend_from_slice(&[IAC, SB, OPT_TTYPE, SB_SEND, IAC, SE]);
                return;
            }
            let name: String = String::from_utf8_lossy(t)
                .chars()
                .filter(|c| c.is_ascii_graphic())
                .take(40)
                .collect::<String>()
                .to_ascii_lowercase();
            if !name.is_empty() {
                out.events.push(TelnetEvent::TerminalType(name));
            }
        }
        self.awaited.remove(i);
    }

    fn supported_by_us(opt: u8) -> bool {
        matches!(opt, OPT_ECHO | OPT_SGA | OPT_STATUS | OPT_BINARY)
    }

    fn supported_from_him(opt: u8) -> bool {
        matches!(
            opt,
            OPT_BINARY
                | OPT_TTYPE
                | OPT_TSPEED
                | OPT_XDISPLOC
                | OPT_NEW_ENVIRON
                | OPT_OLD_ENVIRON
                | OPT_NAWS
                | OPT_LINEMODE
                | OPT_LFLOW
                | OPT_TM
        )
    }

    fn negotiate(&mut self, verb: u8, opt: u8, reply: &mut Vec<u8>) {
        let o = usize::from(opt);
        match verb {
            DO => match self.us[o] {
                Q::WantYes => self.us[o] = Q::Yes,
                Q::Yes => {}
                Q::No if Self::supported_by_us(opt) => {
                    self.us[o] = Q::Yes;
                    reply.extend_from_slice(&[IAC, WILL, opt]);
                }
                Q::No => reply.extend_from_slice(&[IAC, WONT, opt]),
            },
            DONT => match self.us[o] {
                Q::WantYes => {
                    self.us[o] = Q::No;
                    if opt == OPT_SGA {
                        self.sga_refused = true;
                    }
                }
                Q::Yes => {
                    self.us[o] = Q::No;
                    reply.extend_from_slice(&[IAC, WONT, opt]);
                }
                Q::No => {}
            },
            WILL => match self.him[o] {
                Q::WantYes => {
                    self.him[o] = Q::Yes;
                    if opt == OPT_LINEMODE {
                        // With the NUL telnetd's sprintf buffer leaks.
                        reply.extend_from_slice(&[IAC, SB, OPT_LINEMODE, LM_MODE, 3, IAC, SE, 0]);
                    }
                }
                Q::Yes => {}
                // The 4.2BSD echo check: a client that will echo is told not to.
                Q::No if opt == OPT_ECHO => reply.extend_from_slice(&[IAC, DONT, OPT_ECHO]),
                Q::No if Self::supported_from_him(opt) && opt != OPT_TM => {
                    self.him[o] = Q::Yes;
                    reply.extend_from_slice(&[IAC, DO, opt]);
                }
                Q::No => reply.extend_from_slice(&[IAC, DONT, opt]),
            },
            WONT => match self.him[o] {
                Q::WantYes => {
                    self.him[o] = Q::No;
                    if opt == OPT_TM && self.sga_refused {
                        self.sga_refused = false;
                        self.offer(OPT_SGA, reply);
                    }
                    self.awaited.retain(|&a| a != opt);
                }
                Q::Yes => {
                    self.him[o] = Q::No;
                    reply.extend_from_slice(&[IAC, DONT, opt]);
                    self.awaited.retain(|&a| a != opt);
                }
                Q::No => {}
            },
            _ => {}
        }
    }
}

/// Terminal output as telnetd sends it: IAC doubled, and unless the client agreed to
/// binary output, a CR that no LF follows in the same write sent as `CR NUL` (NVT).
pub(crate) fn escape_nvt(data: &[u8], binary: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 16);
    for (i, &b) in data.iter().enumerate() {
        out.push(b);
        if b == IAC {
            out.push(IAC);
        } else if b == b'\r' && !binary && data.get(i + 1) != Some(&b'\n') {
            out.push(0);
        }
    }
    out
}

/// Server output with IAC doubled, as the protocol requires of data.
pub(crate) fn escape(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 8);
    for &b in data {
        out.push(b);
        if b == IAC {
            out.push(IAC);
        }
    }
    out
}

/// Most reply bytes one decoded chunk of `n` bytes can bring: AYT (2 bytes) answers 9,
/// and the start-up requests are sent once.
pub(crate) fn reply_bound(n: usize) -> usize {
    n * 9 / 2 + 128
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The answer refusing everything in [`PROBE`].
    const REFUSE_PROBE: &[u8] = &[
        IAC, DONT, 37, IAC, DONT, 38, IAC, WONT, 24, IAC, WONT, 32, IAC, WONT, 35, IAC, WONT, 39,
        IAC, WONT, 36,
    ];
    /// What telnetd sends after that (captured from inetutils-telnetd 2.4).
    const TERMINAL_REQUESTS: &[u8] =
        b"\xff\xfb\x03\xff\xfd\x01\xff\xfd\"\xff\xfd\x1f\xff\xfb\x05\xff\xfd!";
    /// The client refuses those too.
    const REFUSE_TERMINAL: &[u8] =
        b"\xff\xfd\x03\xff\xfc\x01\xff\xfc\x22\xff\xfc\x1f\xff\xfe\x05\xff\xfc\x21";

    fn ready_codec() -> TelnetCodec {
        let mut c = TelnetCodec::default();
        c.decode(REFUSE_PROBE);
        let d = c.decode(REFUSE_TERMINAL);
        assert!(d.ready);
        c
    }

    #[test]
    fn a_refusing_client_gets_telnetds_bytes() {
        let mut c = TelnetCodec::default();
        // Half an answer: nothing yet, and data is held.
        let d = c.decode(&REFUSE_PROBE[..9]);
        assert_eq!(d, Decoded::default());
        let d = c.decode(&[&REFUSE_PROBE[9..], b"root\r\n"].concat());
        assert_eq!(d.reply, TERMINAL_REQUESTS);
        assert!(d.data.is_empty() && !d.ready);
        let d = c.decode(REFUSE_TERMINAL);
        assert_eq!(d.reply, b"\xff\xfb\x01\xff\xfd\x06\xff\xfd\x00");
        assert!(d.ready);
        assert_eq!(d.data, b"root\r");
    }

    #[test]
    fn a_mirai_style_client() {
        // Mirai turns DO into WONT and WILL into DO, and answers DO NAWS with its size.
        let mut c = TelnetCodec::default();
        let d = c.decode(
            b"\xff\xfd\x25\xff\xfd\x26\xff\xfc\x18\xff\xfc\x20\xff\xfc\x23\xff\xfc\x27\xff\xfc\x24",
        );
        assert_eq!(d.reply, TERMINAL_REQUESTS);
        let d = c.decode(b"\xff\xfe\x03\xff\xfc\x01\xff\xfc\x22\xff\xfb\x1f\xff\xfa\x1f\x00\x50\x00\x18\xff\xf0\xff\xfd\x05\xff\xfc\x21");
        assert!(d.ready);
        assert_eq!(d.reply, b"\xff\xfb\x01\xff\xfd\x06\xff\xfd\x00");
        assert_eq!(d.events, vec![TelnetEvent::WindowSize(80, 24)]);
        // Its refusal of the timing mark brings SGA back, as telnetd's kludge linemode.
        let d = c.decode(b"\xff\xfc\x00\xff\xfc\x06");
        assert_eq!(d.reply, b"\xff\xfb\x03");
    }

    #[test]
    fn terminal_type_and_subnegotiation_queries() {
        let mut c = TelnetCodec::default();
        let d = c.decode(
            b"\xff\xfe\x25\xff\xfe\x26\xff\xfb\x18\xff\xfb\x20\xff\xfc\x23\xff\xfb\x27\xff\xfc\x24",
        );
        assert_eq!(
            d.reply,
            b"\xff\xfa \x01\xff\xf0\xff\xfa'\x01\xff\xf0\xff\xfa\x18\x01\xff\xf0"
        );
        let d = c.decode(b"\xff\xfa \x0038400,38400\xff\xf0\xff\xfa'\x00\xff\xf0");
        assert!(d.reply.is_empty());
        // An unknown type is asked for again until it repeats.
        let d = c.decode(b"\xff\xfa\x18\x00FOOBAR\xff\xf0");
        assert_eq!(d.reply, b"\xff\xfa\x18\x01\xff\xf0");
        let d = c.decode(b"\xff\xfa\x18\x00FOOBAR\xff\xf0");
        assert_eq!(d.reply, TERMINAL_REQUESTS);
        assert_eq!(d.events, vec![TelnetEvent::TerminalType("foobar".into())]);
    }

    #[test]
    fn answers_after_login_starts() {
        let mut c = ready_codec();
        // Unknown options are refused every time; DO ECHO is agreed already; AYT.
        let d = c.decode(b"\xff\xfd\x63\xff\xfb\x63\xff\xfd\x63\xff\xfb\x63\xff\xfd\x01");
        assert_eq!(d.reply, b"\xff\xfcc\xff\xfec\xff\xfcc\xff\xfec");
        assert_eq!(c.decode(b"\xff\xfe\x01").reply, b"\xff\xfc\x01");
        assert_eq!(c.decode(b"\xff\xf6").reply, b"\r\n[Yes]\r\n");
        assert_eq!(c.decode(b"\xff\xfd\x00\xff\xfb\x00").reply, b"\xff\xfb\x00");
        assert_eq!(c.decode(b"\xff\xfe\x03").reply, b"\xff\xfc\x03");
        assert!(c.decode(&[IAC, IP]).interrupt);
    }

    #[test]
    fn state_carries_across_chunks() {
        let mut c = ready_codec();
        let mut data = Vec::new();
        let mut events = Vec::new();
        for b in [
            IAC, SB, OPT_NAWS, 0, 80, IAC, IAC, IAC, SE, b'a', IAC, IAC, b'\r', 0, b'\r', b'\n',
            b'\n',
        ] {
            let d = c.decode(&[b]);
            data.extend(d.data);
            events.extend(d.events);
        }
        // IAC IAC inside SB is one 0xFF byte; four bytes are too few for NAWS: no event.
        assert!(events.is_empty());
        assert_eq!(data, vec![b'a', IAC, b'\r', b'\r', b'\n']);
    }

    #[test]
    fn oversized_subnegotiation_is_skipped() {
        let mut c = ready_codec();
        let mut input = vec![IAC, SB, OPT_NAWS];
        input.extend(std::iter::repeat_n(7u8, 10_000));
        input.extend([IAC, SE, b'x']);
        let d = c.decode(&input);
        assert_eq!(d.data, b"x");
        assert!(d.events.is_empty());
        assert!(c.sb.capacity() <= 1024);
    }

    #[test]
    fn giving_up_finishes_negotiation() {
        let mut c = TelnetCodec::default();
        let d = c.decode(b"\xff\xfc\x18root\r\n");
        assert!(!d.ready && c.heard());
        let d = c.give_up();
        assert!(d.ready);
        assert_eq!(d.data, b"root\r");
        assert_eq!(
            d.reply,
            [TERMINAL_REQUESTS, b"\xff\xfb\x01\xff\xfd\x06\xff\xfd\x00"].concat()
        );
    }

    #[test]
    fn editing_commands_become_control_characters() {
        let mut c = ready_codec();
        assert_eq!(c.decode(&[IAC, EC, IAC, EL]).data, vec![0x7f, 0x15]);
    }

    #[test]
    fn escape_doubles_iac() {
        assert_eq!(escape(&[1, IAC, 2]), vec![1, IAC, IAC, 2]);
        assert_eq!(escape_nvt(b"a\rb\r\n\r", false), b"a\r\0b\r\n\r\0");
        assert_eq!(escape_nvt(b"a\rb\xff", true), b"a\rb\xff\xff");
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic_and_stay_bounded(
            chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..20)
        ) {
            let mut c = TelnetCodec::default();
            let total: usize = chunks.iter().map(Vec::len).sum();
            let mut data = 0;
            for chunk in &chunks {
                let d = c.decode(chunk);
                data += d.data.len();
                prop_assert!(d.reply.len() <= reply_bound(chunk.len()));
                prop_assert!(c.sb.len() <= MAX_SB);
                prop_assert!(c.held.len() <= MAX_HELD);
            }
            let d = c.give_up();
            data += d.data.len();
            prop_assert!(d.reply.len() <= reply_bound(0));
            prop_assert!(data <= total);
        }
    }
}
