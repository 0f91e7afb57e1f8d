//! Sans-IO telnet (RFC 854) codec: strips IAC commands and option negotiation from the
//! peer's bytes, answers them without ever looping, reads the window size (NAWS), and
//! escapes what the server sends.

/// Interpret As Command.
pub(crate) const IAC: u8 = 255;
const DONT: u8 = 254;
const DO: u8 = 253;
const WONT: u8 = 252;
const WILL: u8 = 251;
const SB: u8 = 250;
const EL: u8 = 248;
const EC: u8 = 247;
const IP: u8 = 244;
const SE: u8 = 240;

pub(crate) const OPT_ECHO: u8 = 1;
pub(crate) const OPT_SGA: u8 = 3;
pub(crate) const OPT_NAWS: u8 = 31;

/// Longest subnegotiation kept; the rest of a longer one is skipped (NAWS needs 4 bytes,
/// terminal types are short).
const MAX_SB: usize = 64;

const OPT_TTYPE: u8 = 24;
const OPT_TSPEED: u8 = 32;
const OPT_XDISPLOC: u8 = 35;
const OPT_NEW_ENVIRON: u8 = 39;

/// What Linux (netkit) telnetd sends first and then waits on: requests for the terminal
/// type, speed, X display and environment. Scanners fingerprint exactly these bytes.
pub(crate) const PROBE: &[u8] = &[
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
];

/// What follows once the client answered, before the login prompt: the server will echo
/// and suppress go-ahead (so the client sends characters, not lines), and asks for the
/// window size.
pub(crate) const OPENING: &[u8] = &[
    IAC, DO, OPT_NAWS, IAC, WILL, OPT_ECHO, IAC, WILL, OPT_SGA, IAC, DO, OPT_SGA,
];

/// Something the peer said besides data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TelnetEvent {
    /// NAWS: columns, rows.
    WindowSize(u16, u16),
}

/// The result of decoding one chunk.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Decoded {
    /// The peer's data, commands removed (`CR NUL` becomes `CR`).
    pub data: Vec<u8>,
    /// Negotiation answers to send back.
    pub reply: Vec<u8>,
    pub events: Vec<TelnetEvent>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Data,
    /// After a CR in data: a NUL that follows is dropped.
    Cr,
    Iac,
    /// After WILL/WONT/DO/DONT: the option byte comes next.
    Verb(u8),
    Sb,
    SbIac,
}

/// Per-connection decoder state; a few hundred bytes whatever the peer sends.
#[derive(Debug)]
pub(crate) struct TelnetCodec {
    state: State,
    sb: Vec<u8>,
    sb_overflow: bool,
    /// Options we have answered a refusal for already: refusing again could loop with a
    /// peer that insists, so each is refused once.
    refused: [u64; 4],
    /// ECHO and SGA: whether we currently will (we offered both in [`OPENING`]).
    echo: bool,
    sga: bool,
}

impl Default for TelnetCodec {
    fn default() -> Self {
        TelnetCodec {
            state: State::Data,
            sb: Vec::new(),
            sb_overflow: false,
            refused: [0; 4],
            echo: true,
            sga: true,
        }
    }
}

impl TelnetCodec {
    /// Decodes one chunk of peer bytes; state carries over to the next chunk.
    pub(crate) fn decode(&mut self, input: &[u8]) -> Decoded {
        let mut out = Decoded {
            data: Vec::with_capacity(input.len()),
            ..Decoded::default()
        };
        for &b in input {
            self.state = match self.state {
                State::Data | State::Cr => match b {
                    IAC => State::Iac,
                    0 if self.state == State::Cr => State::Data,
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
                    // The editing commands mean what their control characters mean.
                    IP => {
                        out.data.push(0x03);
                        State::Data
                    }
                    EC => {
                        out.data.push(0x7f);
                        State::Data
                    }
                    EL => {
                        out.data.push(0x15);
                        State::Data
                    }
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
                        self.subnegotiation(&mut out.events);
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
        out
    }

    fn sb_push(&mut self, b: u8) {
        if self.sb.len() < MAX_SB {
            self.sb.push(b);
        } else {
            self.sb_overflow = true;
        }
    }

    fn subnegotiation(&mut self, events: &mut Vec<TelnetEvent>) {
        if !self.sb_overflow
            && let [OPT_NAWS, w1, w0, h1, h0] = self.sb[..]
        {
            let w = u16::from_be_bytes([w1, w0]);
            let h = u16::from_be_bytes([h1, h0]);
            events.push(TelnetEvent::WindowSize(w, h));
        }
        self.sb.clear();
    }

    fn refuse_once(&mut self, verb: u8, opt: u8, reply: &mut Vec<u8>) {
        let (word, bit) = (usize::from(opt / 64), opt % 64);
        if self.refused[word] & (1 << bit) == 0 {
            self.refused[word] |= 1 << bit;
            reply.extend_from_slice(&[IAC, verb, opt]);
        }
    }

    fn negotiate(&mut self, verb: u8, opt: u8, reply: &mut Vec<u8>) {
        match (verb, opt) {
            // Acknowledgements of what we offered need no answer.
            (DO, OPT_ECHO) if self.echo => {}
            (DO, OPT_SGA) if self.sga => {}
            (DO, OPT_ECHO) => {
                self.echo = true;
                reply.extend_from_slice(&[IAC, WILL, OPT_ECHO]);
            }
            (DO, OPT_SGA) => {
                self.sga = true;
                reply.extend_from_slice(&[IAC, WILL, OPT_SGA]);
            }
            (DO, _) => self.refuse_once(WONT, opt, reply),
            (DONT, OPT_ECHO) if self.echo => {
                self.echo = false;
                reply.extend_from_slice(&[IAC, WONT, OPT_ECHO]);
            }
            (DONT, OPT_SGA) if self.sga => {
                self.sga = false;
                reply.extend_from_slice(&[IAC, WONT, OPT_SGA]);
            }
            // We asked for these.
            (
                WILL,
                OPT_NAWS | OPT_SGA | OPT_TTYPE | OPT_TSPEED | OPT_XDISPLOC | OPT_NEW_ENVIRON,
            ) => {}
            (WILL, _) => self.refuse_once(DONT, opt, reply),
            _ => {}
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn strips_negotiation_and_answers_once() {
        let mut c = TelnetCodec::default();
        // A client's usual opening: WILL NAWS, the window size, DO ECHO, WILL TTYPE (we
        // asked for it: no answer), and an option nobody asked for.
        let d = c.decode(&[
            IAC, WILL, OPT_NAWS, IAC, SB, OPT_NAWS, 0, 132, 0, 43, IAC, SE, IAC, DO, OPT_ECHO, IAC,
            WILL, OPT_TTYPE, IAC, WILL, 5, b'r', b'o', b'o', b't', b'\r', 0,
        ]);
        assert_eq!(d.data, b"root\r");
        assert_eq!(d.events, vec![TelnetEvent::WindowSize(132, 43)]);
        assert_eq!(d.reply, vec![IAC, DONT, 5]);
        // Insisting gets no second answer.
        let d = c.decode(&[IAC, WILL, 5, IAC, DO, 6, IAC, DO, 6]);
        assert_eq!(d.reply, vec![IAC, WONT, 6]);
        assert!(d.data.is_empty());
    }

    #[test]
    fn state_carries_across_chunks() {
        let mut c = TelnetCodec::default();
        let mut data = Vec::new();
        let mut events = Vec::new();
        for b in [
            IAC, SB, OPT_NAWS, 0, 80, IAC, IAC, IAC, SE, b'a', IAC, IAC, b'\r', b'\n',
        ] {
            let d = c.decode(&[b]);
            data.extend(d.data);
            events.extend(d.events);
        }
        // IAC IAC inside SB is one 0xFF byte; four bytes are too few for NAWS: no event.
        assert!(events.is_empty());
        assert_eq!(data, vec![b'a', IAC, b'\r', b'\n']);
    }

    #[test]
    fn oversized_subnegotiation_is_skipped() {
        let mut c = TelnetCodec::default();
        let mut input = vec![IAC, SB, OPT_NAWS];
        input.extend(std::iter::repeat_n(7u8, 10_000));
        input.extend([IAC, SE, b'x']);
        let d = c.decode(&input);
        assert_eq!(d.data, b"x");
        assert!(d.events.is_empty());
        assert!(c.sb.capacity() <= 1024);
    }

    #[test]
    fn editing_commands_become_control_characters() {
        let mut c = TelnetCodec::default();
        assert_eq!(
            c.decode(&[IAC, IP, IAC, EC, IAC, EL]).data,
            vec![3, 0x7f, 0x15]
        );
    }

    #[test]
    fn escape_doubles_iac() {
        assert_eq!(escape(&[1, IAC, 2]), vec![1, IAC, IAC, 2]);
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic_and_stay_bounded(
            chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..20)
        ) {
            let mut c = TelnetCodec::default();
            let mut replies = 0;
            for chunk in &chunks {
                let d = c.decode(chunk);
                prop_assert!(d.data.len() <= chunk.len());
                replies += d.reply.len();
                prop_assert!(c.sb.len() <= MAX_SB);
            }
            // At most one refusal per option and verb, plus the ECHO/SGA toggles.
            prop_assert!(replies <= 3 * 256 * 2 + 3 * 2 * chunks.iter().map(Vec::len).sum::<usize>());
        }
    }
}
