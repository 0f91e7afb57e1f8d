//! The interactive shell's line editor: what bash 5.2's readline does with the keys an
//! intruder types at a terminal, byte for byte where we compared it with real bash in a
//! pty (TERM=xterm, any width): bracketed paste on and off around each line
//! (`ESC[?2004h` before the prompt, `ESC[?2004l` after Enter) and a paste shown once,
//! in reverse video, when its end marker comes; cursor keys and emacs keys; history with
//! the up and down arrows; Tab completion of command names on the first word and of
//! paths elsewhere (one match completes, several ring the bell and a second Tab lists
//! them in readline's columns); ^R's incremental search ([`search`]).
//!
//! After each key readline redisplays once, from what the screen shows to the line as
//! it is now; [`display`] is a port of that redisplay (backspaces, or CR and the text
//! again where that is shorter, `ESC[n@`/`ESC[nP`/`ESC[K`, newlines and `ESC[A` across
//! the screen lines of a line wider than the terminal). The key handlers' own bytes are
//! used where the line did not change (a bell) and where readline writes its own:
//! Enter, ^C, ^L, completion listings, the rub-out at the end of the line.
//!
//! Sans-IO: bytes in, bytes out, and [`Event`]s for the shell. Escape sequences may be
//! split across reads. Everything is bounded: the line ([`Editor::new`]'s cap), escape
//! sequences, the completion list, the search string.

/// Longest escape sequence kept; a longer one is dropped.
const MAX_ESC: usize = 16;
/// Most completions gathered (bash lists thousands; ours are the fake tree's).
pub(crate) const MAX_MATCHES: usize = 4096;
/// readline's `completion-query-items`: from this many on it asks first.
const QUERY_ITEMS: usize = 100;
/// Turns bracketed paste on before a prompt.
pub(crate) const PASTE_ON: &[u8] = b"\x1b[?2004h";
/// And off when a line is accepted.
pub(crate) const PASTE_OFF: &[u8] = b"\x1b[?2004l\r";

/// The screen size readline takes from a terminal's (a width of 0 or 1 is 80, a
/// height of 0 is 24): bash redraws on SIGWINCH only when this changed.
pub(crate) fn screen_size(columns: usize, rows: usize) -> (usize, usize) {
    (display::screen_width(columns), display::screen_height(rows))
}

/// What the shell must do after a byte.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Event {
    /// Enter: this line (the echo of the newline is written already).
    Line(Vec<u8>),
    /// ^C: the line is dropped (`^C` is written).
    Interrupt,
    /// ^D on an empty line.
    Eof,
}

/// One completion candidate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Candidate {
    pub name: String,
    /// A directory: listed and completed with `/`.
    pub dir: bool,
    /// A symbolic link to a directory: completed with nothing after it (readline's
    /// `mark-symlinked-directories` is off), listed plain.
    pub link_dir: bool,
}

/// What the editor needs from the shell.
pub(crate) trait Context {
    fn prompt(&self) -> String;
    /// Entered lines, oldest first.
    fn history(&self) -> &[String];
    /// Command names starting with `prefix` (aliases, keywords, functions, builtins,
    /// programs on `PATH`, directories here).
    fn commands(&self, prefix: &str) -> Vec<Candidate>;
    /// Entries of directory `dir` (as typed, `~` expanded by the callee) starting with
    /// `prefix`.
    fn paths(&self, dir: &str, prefix: &str) -> Vec<Candidate>;
    fn columns(&self) -> usize {
        80
    }
    fn rows(&self) -> usize {
        24
    }
    /// The locale's character set is UTF-8 (`LANG=C.UTF-8`): readline's multibyte
    /// mode, characters rather than bytes (see [`chars`]). Off, the C locale.
    fn utf8(&self) -> bool {
        false
    }
    /// ^R searches the history (bash's readline; BusyBox's line editor differs and
    /// is not imitated, so ^R does nothing there).
    fn search(&self) -> bool {
        true
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Esc {
    None,
    /// After ESC.
    Start,
    /// After `ESC [` or `ESC O`.
    Seq,
}

/// A line, its cursor and its highlighted range, as shown.
type Snapshot = (Vec<u8>, usize, Option<(usize, usize)>);

/// One session's line editor.
#[derive(Debug)]
pub(crate) struct Editor {
    line: Vec<u8>,
    /// Byte offset into `line`.
    cursor: usize,
    cap: usize,
    esc: Esc,
    seq: Vec<u8>,
    /// Inside `ESC[200~` … `ESC[201~`.
    pasting: bool,
    /// The pasted text shown highlighted starts here until the next key.
    region: Option<usize>,
    /// While pasting: the line, cursor and highlight shown before the paste (readline
    /// shows a paste once, when its end marker has come).
    before_paste: Option<Snapshot>,
    /// Browsing history: the entry shown, and the line being edited before.
    hist: Option<usize>,
    saved: Vec<u8>,
    /// The last key was Tab (a second one lists).
    tabbed: bool,
    /// "Display all N possibilities? (y or n)" waits for an answer.
    asking: Option<Vec<Candidate>>,
    /// A listing longer than the screen: the rows still to show after `--More--`.
    more: Option<std::collections::VecDeque<Vec<u8>>>,
    last_cr: bool,
    /// Bytes dropped since the line was full (reported by the shell).
    pub(crate) overflowed: bool,
    /// ^R in progress.
    search: Option<Box<search::Search>>,
    /// The last search's string (readline's `last_isearch_string`, for ^R ^R).
    last_search: Option<Vec<u8>>,
    /// The key wrote all it shows itself (no redisplay of a wrapped line after it).
    own: bool,
    /// Bells the key rang (kept when a wrapped line is redisplayed instead).
    bells: usize,
    /// A UTF-8 locale ([`Context::utf8`], taken at each key).
    utf8: bool,
    /// The first bytes of a multibyte character typed (readline's `pending_bytes`):
    /// it goes in, and is shown, once complete.
    pending: Vec<u8>,
}

/// Longest UTF-8 sequence.
const MAX_CHAR: usize = 4;

/// The character at byte `i` of `s` (`i < s.len()`) as readline sees it in a UTF-8
/// locale (glibc's `mbrtowc` and `wcwidth`): its length in bytes and its columns. An
/// invalid or truncated sequence is its first byte alone, one column (readline's
/// `MB_INVALIDCH`); a character without a width (a control) takes one column too,
/// a combining character none, an East Asian wide one two. ASCII is one byte, one
/// column (its controls are shown as `^X` by the display).
pub(super) fn char_at(s: &[u8], i: usize) -> (usize, usize) {
    let need = match s[i] {
        0..=0x7f => return (1, 1),
        0xc2..=0xdf => 2,
        0xe0..=0xef => 3,
        0xf0..=0xf4 => 4,
        _ => return (1, 1),
    };
    let end = (i + need).min(s.len());
    match std::str::from_utf8(&s[i..end])
        .ok()
        .and_then(|t| t.chars().next())
    {
        Some(c) => (need, char_width(c)),
        None => (1, 1),
    }
}

/// `wcwidth` as readline uses it: unknown widths count as one column, the
/// combining diacritics U+0300–U+036F as none.
pub(super) fn char_width(c: char) -> usize {
    if ('\u{300}'..='\u{36f}').contains(&c) {
        return 0;
    }
    unicode_width::UnicodeWidthChar::width(c).unwrap_or(1)
}

/// readline's `_rl_find_next_mbchar(s, i, 1, MB_FIND_NONZERO)`: past the next
/// character of a nonzero width and the zero-width ones after it.
pub(super) fn next_char(s: &[u8], i: usize) -> usize {
    let mut p = i;
    while p < s.len() {
        let (len, w) = char_at(s, p);
        p += len;
        if w != 0 {
            break;
        }
    }
    while p < s.len() {
        let (len, w) = char_at(s, p);
        if w != 0 {
            break;
        }
        p += len;
    }
    p.min(s.len())
}

/// The start of the character that ends at `i` (or holds byte `i - 1`), `i > 0`, as
/// decoding from the start of the line finds it. Every byte that is not a
/// continuation byte starts a character (valid sequences hold continuation bytes
/// only after their first), so decoding can start at the nearest such byte, at most
/// three back: without one there, byte `i - 1` is an invalid byte alone.
fn char_start_before(s: &[u8], i: usize) -> usize {
    let i = i.min(s.len());
    let low = i.saturating_sub(MAX_CHAR);
    let Some(mut p) = (low..i).rev().find(|&k| !(0x80..0xc0).contains(&s[k])) else {
        return i - 1;
    };
    loop {
        let (len, _) = char_at(s, p);
        if p + len >= i {
            return p;
        }
        p += len;
    }
}

/// readline's `_rl_find_prev_mbchar(s, i, MB_FIND_NONZERO)`: the start of the last
/// character of a nonzero width before `i` (0 if none). Found backwards in constant
/// steps per character, with the boundaries that decoding from the start gives.
pub(super) fn prev_char(s: &[u8], i: usize) -> usize {
    let mut j = i.min(s.len());
    while j > 0 {
        let start = char_start_before(s, j);
        if char_at(s, start).1 != 0 {
            return start;
        }
        j = start;
    }
    0
}

/// readline's `_rl_walphabetic` on the character at `i`: ASCII letters and digits,
/// and any other character `iswalnum` takes (an invalid byte is none).
fn word_char(s: &[u8], i: usize) -> bool {
    let (len, _) = char_at(s, i);
    match std::str::from_utf8(&s[i..i + len])
        .ok()
        .and_then(|t| t.chars().next())
    {
        Some(c) if c.is_ascii() => c.is_ascii_alphanumeric(),
        Some(c) => c.is_alphanumeric(),
        None => false,
    }
}

/// Where a multibyte character typed so far stands.
#[derive(Debug, PartialEq, Eq)]
enum Typed {
    /// More bytes to come.
    Incomplete,
    /// A whole character.
    Complete,
    /// Not UTF-8: its first byte goes in alone.
    Invalid,
}

/// readline's `mbrtowc` on the pending bytes.
fn typed(pending: &[u8]) -> Typed {
    match std::str::from_utf8(pending) {
        Ok(_) => Typed::Complete,
        Err(e) if e.valid_up_to() == 0 && e.error_len().is_none() => Typed::Incomplete,
        Err(_) => Typed::Invalid,
    }
}

/// Column width of `b` (UTF-8 continuation bytes take none).
fn width(b: &[u8]) -> usize {
    b.iter().filter(|&&c| !(0x80..0xc0).contains(&c)).count()
}

/// readline's choice between backspacing and CR plus reprinting.
fn cr_faster(new: usize, cur: usize) -> bool {
    new + 1 < cur.saturating_sub(new)
}

/// Bytes a completed name needs quoted by a backslash, as readline quotes file names.
fn quote(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        if " \t\n\"'\\$`<>|&;()!*?[]{}#~=".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

impl Editor {
    pub(crate) fn new(cap: usize) -> Editor {
        Editor {
            line: Vec::new(),
            cursor: 0,
            cap,
            esc: Esc::None,
            seq: Vec::new(),
            pasting: false,
            region: None,
            before_paste: None,
            hist: None,
            saved: Vec::new(),
            tabbed: false,
            asking: None,
            more: None,
            last_cr: false,
            overflowed: false,
            search: None,
            last_search: None,
            own: false,
            bells: 0,
            utf8: false,
            pending: Vec::new(),
        }
    }

    /// The line so far.
    #[cfg(test)]
    pub(crate) fn line(&self) -> &[u8] {
        &self.line
    }

    /// Moves the cursor from byte `from` to byte `to` as readline does.
    fn move_to(&self, from: usize, to: usize, prompt: &str, out: &mut Vec<u8>) {
        let p = width(prompt.as_bytes());
        if to < from {
            let (cur, new) = (p + width(&self.line[..from]), p + width(&self.line[..to]));
            if cr_faster(new, cur) {
                out.push(b'\r');
                out.extend_from_slice(prompt.as_bytes());
                out.extend_from_slice(&self.line[..to]);
            } else {
                out.extend(std::iter::repeat_n(0x08, cur - new));
            }
        } else if to > from {
            out.extend_from_slice(&self.line[from..to]);
        }
    }

    /// Shows `new` (cursor at its end) in place of the line shown now.
    fn replace_line(&mut self, new: Vec<u8>, prompt: &str, out: &mut Vec<u8>) {
        let same = self
            .line
            .iter()
            .zip(&new)
            .take_while(|(a, b)| a == b)
            .count();
        // Never split a UTF-8 character.
        let mut d = same;
        while d > 0 && new.get(d).is_some_and(|c| (0x80..0xc0).contains(c)) {
            d -= 1;
        }
        let cursor = self.cursor;
        self.move_to(cursor, d.min(cursor), prompt, out);
        if d > cursor {
            out.extend_from_slice(&self.line[cursor..d]);
        }
        let (old_w, new_w) = (width(&self.line[d..]), width(&new[d..]));
        // Shorter: readline deletes the difference first, or clears what is left.
        if new_w == 0 && old_w > 0 {
            out.extend_from_slice(b"\x1b[K");
        } else if old_w > new_w {
            out.extend_from_slice(format!("\x1b[{}P", old_w - new_w).as_bytes());
        }
        out.extend_from_slice(&new[d..]);
        self.line = new;
        self.cursor = self.line.len();
    }

    /// Ends the highlight of pasted text: the text again, plain, as readline redraws it.
    fn deactivate(&mut self, prompt: &str, out: &mut Vec<u8>) {
        if let Some(start) = self.region.take() {
            let end = self.cursor;
            let start = start.min(end);
            self.move_to(end, start, prompt, out);
            out.extend_from_slice(&self.line[start..end]);
        }
    }

    /// The highlighted pasted text, as a byte range.
    fn region_view(&self) -> Option<(usize, usize)> {
        self.region.map(|r| (r.min(self.cursor), self.cursor))
    }

    fn view<'a>(&'a self, prompt: &'a str) -> View<'a> {
        View {
            prompt: prompt.as_bytes(),
            line: &self.line,
            point: self.cursor,
            region: self.region_view(),
            utf8: self.utf8,
        }
    }

    /// The bell.
    fn ding(&mut self, out: &mut Vec<u8>) {
        out.push(0x07);
        self.bells += 1;
    }

    /// Feeds one byte; output for the terminal goes to `out`.
    pub(crate) fn feed(&mut self, b: u8, ctx: &dyn Context, out: &mut Vec<u8>) -> Option<Event> {
        self.utf8 = ctx.utf8();
        let prompt = ctx.prompt();
        if let Some(rest) = self.more.take() {
            self.pager(b, rest, &prompt, ctx, out);
            return None;
        }
        if let Some(list) = self.asking.take() {
            return self.answer(b, list, &prompt, ctx, out);
        }
        if self.search.is_some() {
            match self.search_key(b, ctx, &prompt, out) {
                search::Flow::Done(ev) => return ev,
                search::Flow::Again => {}
            }
        }
        self.own = false;
        self.bells = 0;
        if self.pasting {
            return self.key(b, ctx, &prompt, out);
        }
        // What the screen shows before the key: readline redisplays once after each
        // key, from what is on the screen to the line now (the bytes each key handler
        // writes are kept only where nothing changed, or where readline writes its own:
        // Enter, ^C, ^L, listings, the erase at the end of the line).
        let before = (self.line.clone(), self.cursor, self.region_view());
        let mut now = Vec::new();
        let ev = self.key(b, ctx, &prompt, &mut now);
        let changed =
            before.0 != self.line || before.1 != self.cursor || before.2 != self.region_view();
        if !self.own && changed && self.search.is_none() {
            let columns = ctx.columns();
            let old = View {
                prompt: prompt.as_bytes(),
                line: &before.0,
                point: before.1,
                region: before.2,
                utf8: self.utf8,
            };
            let new = self.view(&prompt);
            out.extend(std::iter::repeat_n(0x07, self.bells));
            display::redisplay(&old, &new, columns, ctx.rows(), false, out);
            return ev;
        }
        out.extend_from_slice(&now);
        ev
    }

    /// The terminal was resized (SIGWINCH) from `old_columns` to `ctx.columns()` while
    /// this line was being edited: readline clears the line's screen lines and draws
    /// the prompt and the line again at the new width (display's [`display::after_resize`]),
    /// the search's prompt during ^R, the line as it was before a paste still coming.
    /// Nothing while a completion question or `--More--` waits for its answer (not
    /// compared with bash).
    pub(crate) fn resize(&mut self, old_columns: usize, ctx: &dyn Context, out: &mut Vec<u8>) {
        if self.asking.is_some() || self.more.is_some() {
            return;
        }
        self.utf8 = ctx.utf8();
        let mut prompt = ctx.prompt().into_bytes();
        let (line, point, region) = match (&self.before_paste, self.search_shown()) {
            (Some((line, point, region)), _) => (line.as_slice(), *point, *region),
            (None, Some((p, region))) => {
                prompt = p;
                (self.line.as_slice(), self.cursor, region)
            }
            (None, None) => (self.line.as_slice(), self.cursor, self.region_view()),
        };
        let v = View {
            prompt: &prompt,
            line,
            point: point.min(line.len()),
            region,
            utf8: self.utf8,
        };
        display::after_resize(&v, old_columns, ctx.columns(), ctx.rows(), out);
    }

    /// ^C: `^C` (the tty's echo), below the line, bracketed paste off and on.
    fn interrupt(&mut self, shown: &View<'_>, ctx: &dyn Context, out: &mut Vec<u8>) -> Event {
        out.extend_from_slice(b"^C");
        display::to_bottom(shown, ctx.columns(), ctx.rows(), out);
        out.extend_from_slice(PASTE_OFF);
        out.extend_from_slice(PASTE_ON);
        out.extend_from_slice(PASTE_OFF);
        out.extend_from_slice(b"\r\n");
        self.line.clear();
        self.cursor = 0;
        self.hist = None;
        self.region = None;
        self.search = None;
        Event::Interrupt
    }

    /// One key outside a search.
    fn key(&mut self, b: u8, ctx: &dyn Context, prompt: &str, out: &mut Vec<u8>) -> Option<Event> {
        let prompt = prompt.to_owned();
        match self.esc {
            Esc::Start => {
                self.esc = Esc::None;
                if !matches!(b, b'[' | b'O') {
                    self.deactivate(&prompt, out);
                }
                match b {
                    b'[' | b'O' => {
                        self.esc = Esc::Seq;
                        self.seq.clear();
                        self.seq.push(b);
                    }
                    b'b' | b'B' => self.word_left(&prompt, out),
                    b'f' | b'F' => self.word_right(out),
                    0x7f | 0x08 => self.kill_word_back(&prompt, out),
                    b'd' | b'D' => self.kill_word_forward(out),
                    // M-^R, revert-line: with no undo kept, the bell.
                    0x12 => self.ding(out),
                    _ => {}
                }
                return None;
            }
            Esc::Seq => {
                if self.seq.len() < MAX_ESC {
                    self.seq.push(b);
                }
                let done = if self.seq[0] == b'O' {
                    self.seq.len() >= 2
                } else {
                    (0x40..=0x7e).contains(&b)
                };
                if done {
                    self.esc = Esc::None;
                    let seq = std::mem::take(&mut self.seq);
                    self.sequence(&seq, &prompt, ctx, out);
                }
                return None;
            }
            Esc::None => {}
        }
        let after_cr = std::mem::replace(&mut self.last_cr, b == b'\r');
        if self.pasting {
            // Pasted text goes in as typed, newlines included, until the end marker.
            self.own = true;
            match b {
                0x1b => self.esc = Esc::Start,
                b'\n' if after_cr => {}
                b'\r' | b'\n' => {
                    self.insert(b'\n');
                }
                b'\t' | 0x20.. => {
                    self.insert(b);
                }
                _ => {}
            }
            return None;
        }
        let tabbed = std::mem::take(&mut self.tabbed);
        // Any key but ESC (a prefix) and ^R (the search shows the highlight until it
        // finds something) ends the pasted text's highlight.
        if b != 0x1b && !(b == 0x12 && ctx.search()) {
            self.deactivate(&prompt, out);
        }
        match b {
            0x1b => self.esc = Esc::Start,
            b'\n' if after_cr => {}
            b'\r' | b'\n' => {
                self.own = true;
                let columns = ctx.columns();
                if display::wraps(&self.view(&prompt), columns) {
                    display::finish(&self.view(&prompt), columns, ctx.rows(), out);
                } else {
                    out.extend_from_slice(b"\r\n");
                }
                out.extend_from_slice(PASTE_OFF);
                self.hist = None;
                self.cursor = 0;
                return Some(Event::Line(std::mem::take(&mut self.line)));
            }
            0x03 => {
                self.own = true;
                let line = std::mem::take(&mut self.line);
                let shown = View {
                    prompt: prompt.as_bytes(),
                    line: &line,
                    point: self.cursor,
                    region: None,
                    utf8: self.utf8,
                };
                return Some(self.interrupt(&shown, ctx, out));
            }
            0x12 if ctx.search() => {
                self.own = true;
                self.search_start(ctx, &prompt, out);
            }
            0x04 if self.line.is_empty() => {
                self.own = true;
                out.extend_from_slice(PASTE_OFF);
                out.extend_from_slice(b"\r\n");
                return Some(Event::Eof);
            }
            0x04 => self.delete_here(out),
            0x7f | 0x08 => self.backspace(&prompt, ctx, out),
            0x01 => {
                let c = self.cursor;
                self.move_to(c, 0, &prompt, out);
                self.cursor = 0;
            }
            0x05 => {
                let c = self.cursor;
                self.move_to(c, self.line.len(), &prompt, out);
                self.cursor = self.line.len();
            }
            0x02 => self.left(&prompt, out),
            0x06 => self.right(out),
            0x0b => {
                if self.cursor < self.line.len() {
                    self.line.truncate(self.cursor);
                    out.extend_from_slice(b"\x1b[K");
                }
            }
            0x15 if self.cursor == 0 => self.ding(out),
            0x15 => {
                let rest = self.line[self.cursor..].to_vec();
                let c = self.cursor;
                self.move_to(c, 0, &prompt, out);
                out.extend_from_slice(&rest);
                out.extend_from_slice(b"\x1b[K");
                self.line = rest;
                self.cursor = 0;
                let n = width(&self.line);
                out.extend(std::iter::repeat_n(0x08, n));
            }
            0x17 => self.kill_word_back_ws(&prompt, out),
            0x0c => {
                // clear-screen, then readline's forced redisplay.
                self.own = true;
                out.extend_from_slice(b"\x1b[H\x1b[2J");
                display::forced(&self.view(&prompt), ctx.columns(), ctx.rows(), out);
            }
            // ^G, abort: the bell.
            0x07 => self.ding(out),
            0x10 => self.history_up(ctx, &prompt, out),
            0x0e => self.history_down(ctx, &prompt, out),
            b'\t' => self.complete(tabbed, ctx, &prompt, out),
            0..=0x1f => {}
            0x80.. if self.utf8 => self.type_multibyte(b),
            b => {
                if self.insert(b) {
                    if self.cursor == self.line.len() || (0x80..0xc0).contains(&b) {
                        out.push(b);
                        self.wrap_mark(&prompt, ctx.columns(), out);
                    } else {
                        out.extend_from_slice(b"\x1b[1@");
                        out.push(b);
                    }
                }
            }
        }
        None
    }

    /// A byte of a multibyte character typed in a UTF-8 locale (readline's
    /// `_rl_insert_char`): kept until the character is whole, then inserted at once;
    /// an invalid sequence's first byte goes in alone, the rest stays pending.
    fn type_multibyte(&mut self, b: u8) {
        if self.pending.len() >= MAX_CHAR {
            self.pending.clear();
        }
        self.pending.push(b);
        match typed(&self.pending) {
            Typed::Incomplete => {}
            Typed::Complete => {
                let ch = std::mem::take(&mut self.pending);
                if self.line.len() + ch.len() > self.cap {
                    self.overflowed = true;
                    return;
                }
                for c in ch {
                    self.insert(c);
                }
            }
            Typed::Invalid => {
                let first = self.pending.remove(0);
                self.insert(first);
            }
        }
    }

    /// The character boundary before `i` (NONZERO in a UTF-8 locale).
    fn prev(&self, i: usize) -> usize {
        if self.utf8 {
            prev_char(&self.line, i)
        } else {
            self.char_before(i)
        }
    }

    /// The character boundary after `i`.
    fn next(&self, i: usize) -> usize {
        if self.utf8 {
            next_char(&self.line, i)
        } else {
            self.char_after(i)
        }
    }

    /// Word motion's step back and forth: characters in a UTF-8 locale, bytes in C.
    fn wprev(&self, i: usize) -> usize {
        if self.utf8 {
            prev_char(&self.line, i)
        } else {
            i - 1
        }
    }

    fn wnext(&self, i: usize) -> usize {
        if self.utf8 {
            next_char(&self.line, i)
        } else {
            i + 1
        }
    }

    /// A word character at `i` (readline's `_rl_walphabetic`).
    fn word_at(&self, i: usize) -> bool {
        if self.utf8 {
            word_char(&self.line, i)
        } else {
            self.line[i].is_ascii_alphanumeric()
        }
    }

    /// Back over non-word characters, then over a word (`rl_backward_word`).
    fn word_start(&self) -> usize {
        let mut i = self.cursor;
        while i > 0 && !self.word_at(self.wprev(i)) {
            i = self.wprev(i);
        }
        while i > 0 && self.word_at(self.wprev(i)) {
            i = self.wprev(i);
        }
        i
    }

    /// Forward over non-word characters, then over a word (`rl_forward_word`).
    fn word_end(&self) -> usize {
        let mut i = self.cursor;
        while i < self.line.len() && !self.word_at(i) {
            i = self.wnext(i);
        }
        while i < self.line.len() && self.word_at(i) {
            i = self.wnext(i);
        }
        i.min(self.line.len())
    }

    /// Inserts at the cursor; `false` when the line is full.
    fn insert(&mut self, b: u8) -> bool {
        if self.line.len() >= self.cap {
            self.overflowed = true;
            return false;
        }
        self.line.insert(self.cursor, b);
        self.cursor += 1;
        true
    }

    /// The byte offset of the character before `i`.
    fn char_before(&self, i: usize) -> usize {
        let mut j = i.saturating_sub(1);
        while j > 0 && (0x80..0xc0).contains(&self.line[j]) {
            j -= 1;
        }
        j
    }

    fn char_after(&self, i: usize) -> usize {
        let mut j = (i + 1).min(self.line.len());
        while j < self.line.len() && (0x80..0xc0).contains(&self.line[j]) {
            j += 1;
        }
        j
    }

    fn left(&mut self, prompt: &str, out: &mut Vec<u8>) {
        if self.cursor == 0 {
            self.ding(out);
            return;
        }
        let to = self.prev(self.cursor);
        self.move_to(self.cursor, to, prompt, out);
        self.cursor = to;
    }

    fn right(&mut self, out: &mut Vec<u8>) {
        if self.cursor >= self.line.len() {
            self.ding(out);
            return;
        }
        let to = self.next(self.cursor);
        out.extend_from_slice(&self.line[self.cursor..to]);
        self.cursor = to;
    }

    fn backspace(&mut self, prompt: &str, ctx: &dyn Context, out: &mut Vec<u8>) {
        if self.cursor == 0 {
            self.ding(out);
            return;
        }
        let from = self.prev(self.cursor);
        if self.cursor == self.line.len() && !self.utf8 {
            // readline rubs out a printable last character with backspace, space,
            // backspace, unless the cursor is in column 0 of a wrapped line.
            let columns = ctx.columns();
            let (col, row) = display::cursor_at(&self.view(prompt), columns);
            let hack = col > 0 && self.line[from..].iter().all(|c| (0x20..0x7f).contains(c));
            let before = (hack && col == 1 && row > 0).then(|| self.line.clone());
            self.own |= hack;
            self.line.truncate(from);
            self.cursor = from;
            out.extend_from_slice(b"\x08 \x08");
            if let Some(line) = before {
                let old = View {
                    prompt: prompt.as_bytes(),
                    line: &line,
                    point: line.len(),
                    region: None,
                    utf8: self.utf8,
                };
                display::after_erase(&old, &self.view(prompt), columns, ctx.rows(), out);
            }
        } else {
            // Back, delete, and the rest written again (as readline's redisplay does).
            self.move_to(self.cursor, from, prompt, out);
            self.line.drain(from..self.cursor);
            self.cursor = from;
            out.extend_from_slice(b"\x1b[1P");
            out.extend_from_slice(&self.line[from..]);
            out.extend(std::iter::repeat_n(0x08, width(&self.line[from..])));
        }
    }

    /// Delete (or ^D inside a line): the character under the cursor.
    fn delete_here(&mut self, out: &mut Vec<u8>) {
        if self.cursor >= self.line.len() {
            self.ding(out);
            return;
        }
        let to = self.next(self.cursor);
        self.line.drain(self.cursor..to);
        if self.cursor == self.line.len() {
            out.extend_from_slice(b"\x1b[K");
        } else {
            out.extend_from_slice(b"\x1b[1P");
        }
    }

    fn word_left(&mut self, prompt: &str, out: &mut Vec<u8>) {
        let i = self.word_start();
        self.move_to(self.cursor, i, prompt, out);
        self.cursor = i;
    }

    fn word_right(&mut self, out: &mut Vec<u8>) {
        let i = self.word_end();
        out.extend_from_slice(&self.line[self.cursor..i]);
        self.cursor = i;
    }

    /// Deletes `from..cursor` and redraws what follows.
    fn cut_back(&mut self, from: usize, prompt: &str, out: &mut Vec<u8>) {
        if from == self.cursor {
            return;
        }
        self.move_to(self.cursor, from, prompt, out);
        self.line.drain(from..self.cursor);
        self.cursor = from;
        let rest = self.line[from..].to_vec();
        out.extend_from_slice(&rest);
        out.extend_from_slice(b"\x1b[K");
        out.extend(std::iter::repeat_n(0x08, width(&rest)));
    }

    /// ^W: back to the previous whitespace.
    fn kill_word_back_ws(&mut self, prompt: &str, out: &mut Vec<u8>) {
        if self.cursor == 0 {
            self.ding(out);
            return;
        }
        let mut i = self.cursor;
        while i > 0 && self.line[i - 1].is_ascii_whitespace() {
            i -= 1;
        }
        while i > 0 && !self.line[i - 1].is_ascii_whitespace() {
            i -= 1;
        }
        self.cut_back(i, prompt, out);
    }

    /// ESC DEL: back to the start of the word.
    fn kill_word_back(&mut self, prompt: &str, out: &mut Vec<u8>) {
        let i = self.word_start();
        self.cut_back(i, prompt, out);
    }

    /// ESC d: to the end of the word.
    fn kill_word_forward(&mut self, out: &mut Vec<u8>) {
        let i = self.word_end();
        if i == self.cursor {
            return;
        }
        self.line.drain(self.cursor..i);
        let rest = self.line[self.cursor..].to_vec();
        out.extend_from_slice(&rest);
        out.extend_from_slice(b"\x1b[K");
        out.extend(std::iter::repeat_n(0x08, width(&rest)));
    }

    fn sequence(&mut self, seq: &[u8], prompt: &str, ctx: &dyn Context, out: &mut Vec<u8>) {
        match seq {
            b"[200~" => {
                self.own = true;
                if !self.pasting {
                    self.before_paste = Some((self.line.clone(), self.cursor, self.region_view()));
                }
                self.pasting = true;
                self.region = Some(self.cursor);
            }
            b"[201~" => {
                self.own = true;
                if self.pasting {
                    // The pasted text, highlighted, in one redisplay.
                    self.pasting = false;
                    if let Some((line, point, region)) = self.before_paste.take() {
                        let old = View {
                            prompt: prompt.as_bytes(),
                            line: &line,
                            point,
                            region,
                            utf8: self.utf8,
                        };
                        display::redisplay(
                            &old,
                            &self.view(prompt),
                            ctx.columns(),
                            ctx.rows(),
                            false,
                            out,
                        );
                    }
                }
            }
            _ if self.pasting => {}
            _ => {
                self.tabbed = false;
                self.deactivate(prompt, out);
                match seq {
                    b"[A" | b"OA" => self.history_up(ctx, prompt, out),
                    b"[B" | b"OB" => self.history_down(ctx, prompt, out),
                    b"[C" | b"OC" => self.right(out),
                    b"[D" | b"OD" => self.left(prompt, out),
                    b"[H" | b"OH" | b"[1~" | b"[7~" => {
                        let c = self.cursor;
                        self.move_to(c, 0, prompt, out);
                        self.cursor = 0;
                    }
                    b"[F" | b"OF" | b"[4~" | b"[8~" => {
                        let c = self.cursor;
                        self.move_to(c, self.line.len(), prompt, out);
                        self.cursor = self.line.len();
                    }
                    b"[3~" => self.delete_here(out),
                    _ => {}
                }
            }
        }
    }

    fn history_up(&mut self, ctx: &dyn Context, prompt: &str, out: &mut Vec<u8>) {
        let h = ctx.history();
        let next = match self.hist {
            None if !h.is_empty() => h.len() - 1,
            Some(i) if i > 0 && i <= h.len() => i - 1,
            _ => {
                self.ding(out);
                return;
            }
        };
        if self.hist.is_none() {
            self.saved = self.line.clone();
        }
        self.hist = Some(next);
        let mut new = h[next].as_bytes().to_vec();
        new.truncate(self.cap);
        self.replace_line(new, prompt, out);
    }

    fn history_down(&mut self, ctx: &dyn Context, prompt: &str, out: &mut Vec<u8>) {
        let h = ctx.history();
        match self.hist {
            None => self.ding(out),
            Some(i) if i + 1 < h.len() => {
                self.hist = Some(i + 1);
                let mut new = h[i + 1].as_bytes().to_vec();
                new.truncate(self.cap);
                self.replace_line(new, prompt, out);
            }
            // Past the newest: the line that was being typed before browsing.
            Some(_) => {
                self.hist = None;
                let saved = std::mem::take(&mut self.saved);
                self.replace_line(saved, prompt, out);
            }
        }
    }

    /// Tab: completes the word before the cursor.
    fn complete(&mut self, again: bool, ctx: &dyn Context, prompt: &str, out: &mut Vec<u8>) {
        let before = &self.line[..self.cursor];
        let start = before
            .iter()
            .rposition(|c| b" \t\n;|&<>()".contains(c))
            .map_or(0, |i| i + 1);
        let word = String::from_utf8_lossy(&before[start..]).into_owned();
        let head = before[..start]
            .iter()
            .rev()
            .find(|c| !c.is_ascii_whitespace())
            .copied();
        let command = matches!(head, None | Some(b';' | b'|' | b'&' | b'('));
        let (mut found, typed) = if command && !word.contains('/') {
            (ctx.commands(&word), word.clone())
        } else {
            let (dir, prefix) = match word.rfind('/') {
                Some(i) => (&word[..=i], &word[i + 1..]),
                None => ("", word.as_str()),
            };
            (ctx.paths(dir, prefix), prefix.to_owned())
        };
        found.sort_by(|a, b| a.name.cmp(&b.name));
        found.dedup_by(|a, b| a.name == b.name);
        found.truncate(MAX_MATCHES);
        match found.len() {
            0 => self.ding(out),
            1 => {
                let c = &found[0];
                let rest = c.name.get(typed.len()..).unwrap_or("");
                let mut add = quote(rest);
                if c.dir {
                    add.push('/');
                } else if !c.link_dir {
                    add.push(' ');
                }
                self.insert_text(add.as_bytes(), prompt, ctx.columns(), out);
            }
            _ => {
                let first = &found[0].name;
                let last = &found[found.len() - 1].name;
                let lcd = first
                    .char_indices()
                    .take_while(|&(i, ch)| last[i..].starts_with(ch))
                    .map(|(i, ch)| i + ch.len_utf8())
                    .last()
                    .unwrap_or(0);
                self.ding(out);
                if lcd > typed.len() {
                    // Text went in: the next Tab counts as a first one again.
                    let add = quote(&first[typed.len()..lcd]);
                    self.insert_text(add.as_bytes(), prompt, ctx.columns(), out);
                    return;
                } else if again {
                    self.own = true;
                    if found.len() >= QUERY_ITEMS {
                        out.pop();
                        out.extend_from_slice(
                            format!("\r\nDisplay all {} possibilities? (y or n)", found.len())
                                .as_bytes(),
                        );
                        self.asking = Some(found);
                        return;
                    }
                    out.pop();
                    self.list(&found, ctx, prompt, out);
                    return;
                }
                self.tabbed = true;
            }
        }
    }

    /// At the end of the line, a character that filled the last column: readline
    /// writes a space and CR so that the terminal wraps now (xterm's deferred wrap).
    fn wrap_mark(&self, prompt: &str, columns: usize, out: &mut Vec<u8>) {
        let col = width(prompt.as_bytes()) + width(&self.line);
        if self.cursor == self.line.len()
            && columns > 0
            && col.is_multiple_of(columns)
            && self.line.last().is_some_and(|&c| c < 0x80)
        {
            out.extend_from_slice(b" \r");
        }
    }

    fn insert_text(&mut self, text: &[u8], prompt: &str, columns: usize, out: &mut Vec<u8>) {
        for &b in text {
            if !self.insert(b) {
                break;
            }
            if self.cursor == self.line.len() {
                out.push(b);
                self.wrap_mark(prompt, columns, out);
            } else {
                out.extend_from_slice(b"\x1b[1@");
                out.push(b);
            }
        }
    }

    /// The answer to "Display all N possibilities?".
    fn answer(
        &mut self,
        b: u8,
        list: Vec<Candidate>,
        prompt: &str,
        ctx: &dyn Context,
        out: &mut Vec<u8>,
    ) -> Option<Event> {
        match b {
            b'y' | b'Y' | b' ' => self.list(&list, ctx, prompt, out),
            b'n' | b'N' | 0x7f => {
                out.extend_from_slice(b"\r\n");
                self.redraw(prompt, ctx, out);
            }
            0x03 => {
                return self.feed(b, ctx, out);
            }
            _ => {
                out.push(0x07);
                self.asking = Some(list);
            }
        }
        None
    }

    /// The prompt and the line again, the cursor where it was (readline's
    /// `rl_forced_update_display`).
    fn redraw(&self, prompt: &str, ctx: &dyn Context, out: &mut Vec<u8>) {
        display::forced(&self.view(prompt), ctx.columns(), ctx.rows(), out);
    }

    /// readline's listing: sorted down the columns, each padded to the longest name
    /// and two spaces (the last column not), then the prompt and line again.
    fn list(&mut self, found: &[Candidate], ctx: &dyn Context, prompt: &str, out: &mut Vec<u8>) {
        let names: Vec<String> = found
            .iter()
            .map(|c| {
                if c.dir {
                    format!("{}/", c.name)
                } else {
                    c.name.clone()
                }
            })
            .collect();
        let max = names.iter().map(|n| n.chars().count()).max().unwrap_or(0) + 2;
        let cols = ctx.columns().saturating_sub(1).max(1);
        let mut limit = (cols / max).max(1);
        if limit != 1 && limit * max == cols {
            limit -= 1;
        }
        let rows = names.len().div_ceil(limit);
        let mut lines = std::collections::VecDeque::with_capacity(rows);
        for r in 0..rows {
            let mut line = Vec::new();
            for j in 0..limit {
                let Some(n) = names.get(r + j * rows) else {
                    break;
                };
                line.extend_from_slice(n.as_bytes());
                if j + 1 < limit {
                    let pad = max.saturating_sub(n.chars().count()).max(1);
                    line.extend(std::iter::repeat_n(b' ', pad));
                }
            }
            line.extend_from_slice(b"\r\n");
            lines.push_back(line);
        }
        out.extend_from_slice(b"\r\n");
        let page = ctx.rows().saturating_sub(1).max(1);
        self.show_rows(lines, page, prompt, ctx, out);
    }

    /// Up to `n` rows of a listing, then `--More--` if rows are left, else the prompt.
    fn show_rows(
        &mut self,
        mut lines: std::collections::VecDeque<Vec<u8>>,
        n: usize,
        prompt: &str,
        ctx: &dyn Context,
        out: &mut Vec<u8>,
    ) {
        for _ in 0..n {
            match lines.pop_front() {
                Some(l) => out.extend_from_slice(&l),
                None => break,
            }
        }
        if lines.is_empty() {
            self.redraw(prompt, ctx, out);
        } else {
            out.extend_from_slice(b"--More--");
            self.more = Some(lines);
        }
    }

    /// A key at readline's `--More--`: space a page, Enter a line, q/n/DEL stop.
    fn pager(
        &mut self,
        b: u8,
        rest: std::collections::VecDeque<Vec<u8>>,
        prompt: &str,
        ctx: &dyn Context,
        out: &mut Vec<u8>,
    ) {
        let page = ctx.rows().saturating_sub(1).max(1);
        match b {
            b' ' | b'y' | b'Y' => {
                out.extend_from_slice(b"\r\x1b[K\r");
                self.show_rows(rest, page, prompt, ctx, out);
            }
            b'\r' | b'\n' => {
                out.extend_from_slice(b"\r\x1b[K\r");
                self.show_rows(rest, 1, prompt, ctx, out);
            }
            b'q' | b'Q' | b'n' | b'N' | 0x03 | 0x07 | 0x7f => {
                out.extend_from_slice(b"\r\x1b[K\r");
                self.redraw(prompt, ctx, out);
            }
            _ => {
                out.push(0x07);
                self.more = Some(rest);
            }
        }
    }
}

/// bash's `!!` history expansion on a typed line: `Ok(None)` when there is none, the
/// expanded line, or `Err(())` for "event not found" (no history yet). `!!` inside
/// single quotes or after a backslash stays as it is.
pub(crate) fn expand_bang(line: &[u8], history: &[String]) -> Result<Option<Vec<u8>>, ()> {
    if !line.windows(2).any(|w| w == b"!!") {
        return Ok(None);
    }
    let mut out = Vec::with_capacity(line.len());
    let (mut single, mut double, mut changed) = (false, false, false);
    let mut i = 0;
    while i < line.len() {
        let c = line[i];
        match c {
            b'\\' if !single => {
                out.extend_from_slice(&line[i..(i + 2).min(line.len())]);
                i += 2;
                continue;
            }
            b'\'' if !double => single = !single,
            b'"' if !single => double = !double,
            b'!' if !single && line.get(i + 1) == Some(&b'!') => {
                let last = history.last().ok_or(())?;
                out.extend_from_slice(last.as_bytes());
                changed = true;
                i += 2;
                continue;
            }
            _ => {}
        }
        out.push(c);
        i += 1;
    }
    Ok(changed.then_some(out))
}

/// The shell's side of completion and history.
pub(super) struct ShellContext<'a> {
    pub st: &'a super::State,
    /// A command is open: the prompt is PS2.
    pub continuing: bool,
    pub columns: usize,
    pub rows: usize,
}

impl ShellContext<'_> {
    fn entries(&self, dir: &str, prefix: &str, command: bool, out: &mut Vec<Candidate>) {
        let st = self.st;
        let Ok(list) = st.fs.list(dir) else {
            return;
        };
        for (name, node) in list {
            if out.len() >= MAX_MATCHES {
                return;
            }
            if name == "." || name == ".." || !name.starts_with(prefix) {
                continue;
            }
            if name.starts_with('.') && !prefix.starts_with('.') {
                continue;
            }
            let full = if dir.ends_with('/') {
                format!("{dir}{name}")
            } else {
                format!("{dir}/{name}")
            };
            let target = st.fs.stat(&full);
            let is_dir = node.kind == super::fs::Kind::Dir;
            let link_dir = node.kind == super::fs::Kind::Symlink
                && target.is_some_and(|t| t.kind == super::fs::Kind::Dir);
            let exec =
                target.is_some_and(|t| t.kind == super::fs::Kind::File && t.mode & 0o111 != 0);
            if command && !(is_dir || link_dir || exec) {
                continue;
            }
            out.push(Candidate {
                name,
                dir: is_dir,
                link_dir,
            });
        }
    }
}

impl Context for ShellContext<'_> {
    fn prompt(&self) -> String {
        if self.continuing {
            "> ".into()
        } else {
            self.st.prompt()
        }
    }

    fn history(&self) -> &[String] {
        &self.st.history
    }

    fn columns(&self) -> usize {
        self.columns
    }

    fn rows(&self) -> usize {
        self.rows
    }

    fn search(&self) -> bool {
        self.st.profile.busybox.is_none()
    }

    /// What bash's readline takes from the locale variables (`LC_ALL`, then
    /// `LC_CTYPE`, then `LANG`; the shell sets `LANG=C.UTF-8`). BusyBox's editor is
    /// not readline: it keeps the C locale's behaviour.
    fn utf8(&self) -> bool {
        if self.st.profile.busybox.is_some() {
            return false;
        }
        let value = ["LC_ALL", "LC_CTYPE", "LANG"]
            .iter()
            .find_map(|n| self.st.lookup(n).filter(|v| !v.is_empty()))
            .unwrap_or_default()
            .to_ascii_lowercase();
        value.contains("utf-8") || value.contains("utf8")
    }

    fn commands(&self, prefix: &str) -> Vec<Candidate> {
        let st = self.st;
        let mut out = Vec::new();
        let plain = |n: &str| Candidate {
            name: n.to_owned(),
            dir: false,
            link_dir: false,
        };
        for n in st
            .aliases
            .iter()
            .map(|(n, _)| n.as_str())
            .chain(super::builtins::KEYWORDS.iter().copied())
            .chain(st.functions.iter().map(|(n, _)| n.as_str()))
            .chain(super::builtins::BUILTINS.iter().copied())
        {
            if n.starts_with(prefix) {
                out.push(plain(n));
            }
        }
        let path = st.lookup("PATH").unwrap_or_default();
        for dir in path.split(':').filter(|d| d.starts_with('/')).take(32) {
            let mut found = Vec::new();
            self.entries(dir, prefix, true, &mut found);
            out.extend(
                found
                    .into_iter()
                    .filter(|c| !c.dir && !c.link_dir)
                    .map(|c| plain(&c.name)),
            );
        }
        // Directories here too (bash offers them for `autocd`).
        let mut here = Vec::new();
        self.entries(&st.cwd, prefix, true, &mut here);
        out.extend(here.into_iter().filter(|c| c.dir));
        out.truncate(MAX_MATCHES);
        out
    }

    fn paths(&self, dir: &str, prefix: &str) -> Vec<Candidate> {
        let st = self.st;
        let base = if dir.is_empty() {
            st.cwd.clone()
        } else {
            super::fs::normalize(&st.cwd, &st.home, dir)
        };
        let mut out = Vec::new();
        self.entries(&base, prefix, false, &mut out);
        out
    }
}

mod display;
mod search;

use display::View;

#[cfg(test)]
mod tests;
