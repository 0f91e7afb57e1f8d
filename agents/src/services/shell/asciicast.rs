//! Session transcripts as asciicast v2 (a JSON header line, then `[t, "o"|"i"|"r", data]`
//! lines) under a size cap; sans-IO: the caller passes the time and takes the finished
//! bytes out as the session runs ([`Recorder::take_pending`]), so a long session is never
//! held whole in memory. The header line is written with the first record: the terminal
//! size and environment are known by then (a client asks for its pty before its shell).

use std::fmt::Write as _;
use std::time::Duration;

/// Room kept for the header line, which is written with the first record.
const HEADER_RESERVE: usize = 1024;

/// Most environment variables kept in the header.
const MAX_ENV: usize = 8;

/// What happened to one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Recorded {
    Kept,
    /// This record would have passed the cap: recording stops here. Returned once.
    CapReached,
    /// Recording had already stopped.
    Dropped,
}

/// An asciicast v2 recording of one session.
#[derive(Debug)]
pub(crate) struct Recorder {
    /// Bytes written but not yet taken out (header line first, then records).
    pending: Vec<u8>,
    /// Record bytes kept so far, taken out or not (what the cap counts).
    recorded: usize,
    /// Whether the header line has been written (with the first record).
    started: bool,
    cap: usize,
    stopped: bool,
    width: u32,
    height: u32,
    /// Unix seconds at the start of the session.
    timestamp: i64,
    env: Vec<(String, String)>,
}

impl Recorder {
    /// `cap` bounds the whole file, header included.
    pub(crate) fn new(timestamp: i64, cap: usize) -> Self {
        Recorder {
            pending: Vec::new(),
            recorded: 0,
            started: false,
            cap: cap.saturating_sub(HEADER_RESERVE),
            stopped: false,
            width: 80,
            height: 24,
            timestamp,
            env: Vec::new(),
        }
    }

    /// The terminal size; after the first record it is also recorded as a resize.
    pub(crate) fn resize(&mut self, t: Duration, width: u32, height: u32) -> Recorded {
        let (width, height) = (width.clamp(1, 1000), height.clamp(1, 1000));
        if !self.started {
            self.width = width;
            self.height = height;
            return Recorded::Kept;
        }
        self.record(t, "r", format!("{width}x{height}").as_bytes())
    }

    /// An environment variable for the header (TERM, SHELL); bounded in count and size.
    /// Once the header is written (with the first record) it no longer changes.
    pub(crate) fn set_env(&mut self, key: &str, value: &str) {
        if self.started {
            return;
        }
        if let Some(e) = self.env.iter_mut().find(|(k, _)| k == key) {
            e.1 = clip(value, 128);
        } else if self.env.len() < MAX_ENV {
            self.env.push((clip(key, 64), clip(value, 128)));
        }
    }

    pub(crate) fn output(&mut self, t: Duration, data: &[u8]) -> Recorded {
        self.record(t, "o", data)
    }

    pub(crate) fn input(&mut self, t: Duration, data: &[u8]) -> Recorded {
        self.record(t, "i", data)
    }

    /// Whether nothing but the header would be written.
    pub(crate) fn is_empty(&self) -> bool {
        !self.started
    }

    /// Bytes written and not yet taken out.
    pub(crate) fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// Takes out what was written so far (whole lines), to be stored as it comes.
    pub(crate) fn take_pending(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.pending)
    }

    /// Stops recording (the caller can no longer store it); later records are dropped.
    pub(crate) fn stop(&mut self) {
        self.stopped = true;
    }

    fn record(&mut self, t: Duration, code: &str, data: &[u8]) -> Recorded {
        if self.stopped {
            return Recorded::Dropped;
        }
        if data.is_empty() {
            return Recorded::Kept;
        }
        // A record is never shorter than its data plus the brackets and the time, so a
        // record that cannot fit is refused before anything is allocated for it.
        let room = self.cap.saturating_sub(self.recorded);
        if data.len().saturating_add(16) > room {
            self.stopped = true;
            return Recorded::CapReached;
        }
        let mut line = String::with_capacity(data.len() + 32);
        write_line(&mut line, t, code, data);
        if line.len() > room {
            self.stopped = true;
            return Recorded::CapReached;
        }
        if !self.started {
            self.started = true;
            self.pending = self.header();
        }
        self.recorded += line.len();
        self.pending.extend_from_slice(line.as_bytes());
        Recorded::Kept
    }

    /// What is left of the file: all of it (header line, then the records) unless parts
    /// were taken out before.
    pub(crate) fn finish(mut self) -> Vec<u8> {
        if !self.started {
            return self.header();
        }
        std::mem::take(&mut self.pending)
    }

    fn header(&self) -> Vec<u8> {
        let mut head = String::with_capacity(256);
        let _ = write!(
            head,
            "{{\"version\":2,\"width\":{},\"height\":{},\"timestamp\":{},\"env\":{{",
            self.width, self.height, self.timestamp
        );
        for (i, (k, v)) in self.env.iter().enumerate() {
            if i > 0 {
                head.push(',');
            }
            push_json_str(&mut head, k);
            head.push(':');
            push_json_str(&mut head, v);
        }
        head.push_str("}}\n");
        head.into_bytes()
    }
}

fn clip(s: &str, max: usize) -> String {
    honeybee_proto::event::clamp(s, max)
}

fn write_line(out: &mut String, t: Duration, code: &str, data: &[u8]) {
    let _ = write!(
        out,
        "[{}.{:06}, \"{code}\", ",
        t.as_secs(),
        t.subsec_micros()
    );
    push_json_str(out, &String::from_utf8_lossy(data));
    out.push_str("]\n");
}

/// Appends `s` as a JSON string literal.
pub(crate) fn push_json_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn header_and_records_are_json_lines() {
        let mut r = Recorder::new(1_700_000_000, 1 << 20);
        r.resize(ms(0), 120, 40);
        r.set_env("TERM", "xterm-256color");
        r.set_env("SHELL", "/bin/bash");
        assert_eq!(r.output(ms(5), b"root@h:~# "), Recorded::Kept);
        assert_eq!(r.input(ms(1500), b"ls\r"), Recorded::Kept);
        assert_eq!(
            r.output(ms(1501), b"a \"b\"\\\x1b[0m\xff\r\n"),
            Recorded::Kept
        );
        r.resize(ms(2000), 100, 30);
        let text = String::from_utf8(r.finish()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            r#"{"version":2,"width":120,"height":40,"timestamp":1700000000,"env":{"TERM":"xterm-256color","SHELL":"/bin/bash"}}"#
        );
        assert_eq!(lines[1], r#"[0.005000, "o", "root@h:~# "]"#);
        assert_eq!(lines[2], r#"[1.500000, "i", "ls\r"]"#);
        assert_eq!(
            lines[3],
            "[1.501000, \"o\", \"a \\\"b\\\"\\\\\\u001b[0m\u{fffd}\\r\\n\"]"
        );
        assert_eq!(lines[4], r#"[2.000000, "r", "100x30"]"#);
        assert_eq!(lines.len(), 5);
    }

    #[test]
    fn cap_stops_recording_once() {
        let mut r = Recorder::new(0, HEADER_RESERVE + 100);
        assert_eq!(r.output(ms(1), b"0123456789"), Recorded::Kept);
        assert_eq!(r.output(ms(2), &[b'x'; 200]), Recorded::CapReached);
        assert_eq!(r.output(ms(3), b"y"), Recorded::Dropped);
        let out = r.finish();
        assert!(out.len() <= HEADER_RESERVE + 100);
        assert_eq!(String::from_utf8(out).unwrap().lines().count(), 2);
    }

    #[test]
    fn parts_taken_out_make_the_same_file() {
        let record = |r: &mut Recorder| {
            r.resize(ms(0), 120, 40);
            r.set_env("TERM", "xterm");
            r.output(ms(1), b"$ ");
        };
        let mut whole = Recorder::new(5, 1 << 20);
        let mut streamed = Recorder::new(5, 1 << 20);
        record(&mut whole);
        record(&mut streamed);
        let mut out = streamed.take_pending();
        for i in 0..100u64 {
            let line = format!("line {i}\r\n");
            whole.input(ms(10 + i), line.as_bytes());
            streamed.input(ms(10 + i), line.as_bytes());
            if i % 7 == 0 {
                out.extend(streamed.take_pending());
            }
        }
        // The header is out with the first record: later environment changes stay out
        // of it (in both, so the files agree).
        whole.set_env("SHELL", "/bin/sh");
        streamed.set_env("SHELL", "/bin/sh");
        out.extend(streamed.finish());
        assert_eq!(out, whole.finish());
        assert!(out.starts_with(
            br#"{"version":2,"width":120,"height":40,"timestamp":5,"env":{"TERM":"xterm"}}"#
        ));
    }

    #[test]
    fn huge_record_does_not_allocate_past_the_cap() {
        let mut r = Recorder::new(0, HEADER_RESERVE + 64);
        let big = vec![0u8; 1 << 20];
        assert_eq!(r.input(ms(1), &big), Recorded::CapReached);
        assert!(r.is_empty());
    }
}
