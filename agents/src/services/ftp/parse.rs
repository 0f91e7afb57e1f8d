//! Sans-IO FTP control-channel parsing: a bounded line splitter and the command parser.
//! Both take whatever bytes a hostile peer sends and never panic.

/// Longest command line accepted (real clients stay far below; vsftpd allows 4096).
pub(crate) const MAX_LINE: usize = 1024;

/// One result of [`LineBuffer::next_line`].
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Line {
    /// A line without its `\r\n` or `\n`.
    Complete(Vec<u8>),
    /// The peer sent more than [`MAX_LINE`] bytes without a line end.
    TooLong,
}

/// Splits the control stream into lines, holding at most `MAX_LINE` bytes of an
/// unfinished one plus one read's worth.
#[derive(Debug, Default)]
pub(crate) struct LineBuffer {
    buf: Vec<u8>,
}

impl LineBuffer {
    /// Adds bytes the peer sent. The caller takes every complete line with
    /// [`LineBuffer::next_line`] before feeding more, which keeps the buffer bounded.
    pub(crate) fn feed(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The next complete line, if any.
    pub(crate) fn next_line(&mut self) -> Option<Line> {
        match self.buf.iter().position(|&b| b == b'\n') {
            Some(i) if i > MAX_LINE => {
                self.buf.drain(..=i);
                Some(Line::TooLong)
            }
            Some(i) => {
                let mut line: Vec<u8> = self.buf.drain(..=i).collect();
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                Some(Line::Complete(line))
            }
            None if self.buf.len() > MAX_LINE => {
                self.buf.clear();
                Some(Line::TooLong)
            }
            None => None,
        }
    }
}

/// A parsed command line: the verb upper-cased, the argument as sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Command {
    pub verb: String,
    pub arg: String,
}

/// Longest verb recognised; anything longer is an unknown command.
const MAX_VERB: usize = 8;

impl Command {
    /// Parses one line. Never fails: a line that is no command gets an empty or unknown
    /// verb, which the session answers with `500 Unknown command.`
    pub(crate) fn parse(line: &[u8]) -> Command {
        let text = String::from_utf8_lossy(line);
        // Telnet option bytes and other controls some clients put before commands.
        let text = text.trim_start_matches(|c: char| c.is_control() || c == '\u{fffd}');
        let (verb, arg) = match text.split_once(' ') {
            Some((v, a)) => (v, a),
            None => (text, ""),
        };
        let verb = if verb.len() <= MAX_VERB && verb.bytes().all(|b| b.is_ascii_alphabetic()) {
            verb.to_ascii_uppercase()
        } else {
            String::new()
        };
        Command {
            verb,
            arg: arg.to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn lines(input: &[&[u8]]) -> Vec<Line> {
        let mut b = LineBuffer::default();
        let mut out = Vec::new();
        for chunk in input {
            b.feed(chunk);
            while let Some(l) = b.next_line() {
                out.push(l);
            }
        }
        out
    }

    #[test]
    fn splits_lines() {
        assert_eq!(
            lines(&[b"USER a\r\nPA", b"SS b\r", b"\nNOOP\n", b"QUIT"]),
            [
                Line::Complete(b"USER a".to_vec()),
                Line::Complete(b"PASS b".to_vec()),
                Line::Complete(b"NOOP".to_vec()),
            ]
        );
        let long = vec![b'A'; MAX_LINE + 1];
        assert_eq!(lines(&[&long]), [Line::TooLong]);
        let mut long_line = vec![b'A'; MAX_LINE + 5];
        long_line.extend_from_slice(b"\r\nNOOP\r\n");
        assert_eq!(
            lines(&[&long_line]),
            [Line::TooLong, Line::Complete(b"NOOP".to_vec())]
        );
        let exact = [vec![b'A'; MAX_LINE], b"\n".to_vec()].concat();
        assert_eq!(lines(&[&exact]), [Line::Complete(vec![b'A'; MAX_LINE])]);
    }

    #[test]
    fn parses_commands() {
        let c = Command::parse(b"user anonymous");
        assert_eq!((c.verb.as_str(), c.arg.as_str()), ("USER", "anonymous"));
        let c = Command::parse(b"STOR my file.txt");
        assert_eq!((c.verb.as_str(), c.arg.as_str()), ("STOR", "my file.txt"));
        assert_eq!(Command::parse(b"PWD").verb, "PWD");
        assert_eq!(Command::parse(b"\xff\xf4\xff\xf2ABOR").verb, "ABOR");
        assert_eq!(Command::parse(b"").verb, "");
        assert_eq!(Command::parse(b"GET / HTTP/1.0").verb, "GET");
        assert_eq!(Command::parse(b"X-1 a").verb, "");
        assert_eq!(Command::parse(b"VERYLONGVERB a").verb, "");
        let c = Command::parse(b"PASS \xc3\xa9t\xe9");
        assert_eq!(c.arg, "ét\u{fffd}");
    }

    proptest! {
        #[test]
        fn never_panics_and_stays_bounded(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..600), 0..12)) {
            let mut b = LineBuffer::default();
            for chunk in &chunks {
                b.feed(chunk);
                while let Some(l) = b.next_line() {
                    if let Line::Complete(line) = l {
                        prop_assert!(line.len() <= MAX_LINE);
                        let c = Command::parse(&line);
                        prop_assert!(c.verb.len() <= MAX_VERB);
                    }
                }
                prop_assert!(b.buf.len() <= MAX_LINE);
            }
        }
    }
}
