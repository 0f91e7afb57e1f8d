//! ^R: readline's incremental history search (readline 8.2's `isearch.c`), step for
//! step: the `(reverse-i-search)`…': ` prompt, the match highlighted as bash 5.2's
//! active region shows it, `(failed reverse-i-search)` and the bell when nothing
//! matches, ^R again for the next match (or the last search string), DEL, ^W and ^Y
//! on the search string, ^G to give up, ESC and ^J to stop on the match, and any other
//! control key to stop and then act as itself (Enter runs the line, ^A moves, …).
//!
//! ^S (forward search) is left out on purpose: on a real pty the tty's IXON takes ^S
//! and ^Q, so readline never sees them.

use super::display::{self, View};
use super::{Context, Editor, Event};

/// Longest search string kept; further characters are not added.
pub(crate) const MAX_SEARCH: usize = 256;

/// One search in progress.
#[derive(Debug)]
pub(super) struct Search {
    string: Vec<u8>,
    failed: bool,
    /// The line searched (readline's `history_pos`): an index into the history, or
    /// its length for the line that was being edited.
    pos: usize,
    /// Where in that line the next comparison starts; readline lets it go to -1.
    index: isize,
    save_line: usize,
    save_point: usize,
    last_found: usize,
    prev_found: Option<usize>,
    /// The line at `save_line` as it was (edits included) and the one typed before
    /// browsing the history (the same when not browsing).
    edited: Vec<u8>,
    typed: Vec<u8>,
    /// The search began while browsing the history.
    browsing: bool,
    /// The match is highlighted (readline's active mark).
    active: bool,
    /// Pasted text still highlighted when the search began: shown so until the search
    /// finds or fails.
    pasted: Option<(usize, usize)>,
    /// The prompt shown now.
    prompt: Vec<u8>,
}

/// A highlighted byte range of the line, if any.
type Highlight = Option<(usize, usize)>;

/// What the screen shows, for the next redisplay.
struct Shown {
    prompt: Vec<u8>,
    line: Vec<u8>,
    point: usize,
    region: Option<(usize, usize)>,
    utf8: bool,
}

impl Shown {
    fn view(&self) -> View<'_> {
        View {
            prompt: &self.prompt,
            line: &self.line,
            point: self.point,
            region: self.region,
            utf8: self.utf8,
        }
    }
}

/// After a key in a search.
pub(super) enum Flow {
    /// The key was the search's.
    Done(Option<Event>),
    /// The search ended; the key acts as itself now.
    Again,
}

impl Search {
    #[cfg(test)]
    pub(super) fn string_len(&self) -> usize {
        self.string.len()
    }

    fn line<'a>(&'a self, i: usize, history: &'a [String]) -> &'a [u8] {
        if i == self.save_line {
            &self.edited
        } else if i >= history.len() {
            &self.typed
        } else {
            history[i].as_bytes()
        }
    }

    fn make_prompt(&mut self) {
        let mut p = b"(".to_vec();
        if self.failed {
            p.extend_from_slice(b"failed ");
        }
        p.extend_from_slice(b"reverse-i-search)`");
        p.extend_from_slice(&self.string);
        p.extend_from_slice(b"': ");
        self.prompt = p;
    }
}

impl Editor {
    fn shown(&self, prompt: &[u8]) -> Shown {
        let region = match &self.search {
            Some(s) if s.active => Some((
                self.cursor,
                (self.cursor + s.string.len()).min(self.line.len()),
            )),
            Some(s) => s.pasted,
            None => None,
        };
        Shown {
            prompt: prompt.to_vec(),
            line: self.line.clone(),
            point: self.cursor,
            region,
            utf8: self.utf8,
        }
    }

    /// The search's prompt and highlight as shown now (for a redraw after the terminal
    /// was resized); `None` outside a search.
    pub(super) fn search_shown(&self) -> Option<(Vec<u8>, Highlight)> {
        let s = self.search.as_ref()?;
        let shown = self.shown(&s.prompt);
        Some((shown.prompt, shown.region))
    }

    /// readline's redisplay from what `old` showed to the editor's state now.
    fn show_search(&self, old: &Shown, ctx: &dyn Context, out: &mut Vec<u8>) {
        let Some(s) = &self.search else {
            return;
        };
        let new = self.shown(&s.prompt);
        let quick = s.string.is_empty();
        display::redisplay(
            &old.view(),
            &new.view(),
            ctx.columns(),
            ctx.rows(),
            quick,
            out,
        );
    }

    /// ^R in the line: the search starts with an empty string.
    pub(super) fn search_start(&mut self, ctx: &dyn Context, prompt: &str, out: &mut Vec<u8>) {
        let hlen = ctx.history().len();
        let (save_line, typed, browsing) = match self.hist {
            Some(k) if k < hlen => (k, self.saved.clone(), true),
            _ => (hlen, Vec::new(), false),
        };
        let mut old = self.shown(prompt.as_bytes());
        let pasted = self.region_view();
        old.region = pasted;
        self.region = None;
        let mut s = Search {
            string: Vec::new(),
            failed: false,
            pos: save_line,
            index: self.cursor as isize,
            save_line,
            save_point: self.cursor,
            last_found: save_line,
            prev_found: None,
            edited: self.line.clone(),
            typed,
            browsing,
            active: false,
            pasted,
            prompt: Vec::new(),
        };
        s.make_prompt();
        self.search = Some(Box::new(s));
        self.show_search(&old, ctx, out);
    }

    /// A key while searching.
    pub(super) fn search_key(
        &mut self,
        b: u8,
        ctx: &dyn Context,
        prompt: &str,
        out: &mut Vec<u8>,
    ) -> Flow {
        match b {
            // The tty's flow control keeps these from readline.
            0x11 | 0x13 => Flow::Done(None),
            0x12 => self.search_step(Op::Again, ctx, out),
            0x7f | 0x08 => self.search_step(Op::Rubout, ctx, out),
            0x17 => self.search_step(Op::Word, ctx, out),
            0x19 => self.search_step(Op::Yank, ctx, out),
            0x07 => {
                self.search_abort(ctx, prompt, out);
                Flow::Done(None)
            }
            0x1b | b'\n' => {
                self.search_finish(ctx, prompt, out);
                if b == 0x1b {
                    // ESC ends the search and starts a key sequence (the arrow keys
                    // move from the match, as readline's `rl_execute_next(ESC)`).
                    self.esc = super::Esc::Start;
                }
                Flow::Done(None)
            }
            0x03 => {
                // The interrupt: the search and the line go.
                let Some(s) = self.search.take() else {
                    return Flow::Again;
                };
                let shown = Shown {
                    prompt: s.prompt,
                    line: self.line.clone(),
                    point: self.cursor,
                    region: None,
                    utf8: self.utf8,
                };
                Flow::Done(Some(self.interrupt(&shown.view(), ctx, out)))
            }
            0..=0x1f => {
                self.search_finish(ctx, prompt, out);
                Flow::Again
            }
            // A multibyte character is read whole before it is searched for
            // (readline's `_rl_read_mbstring`).
            0x80.. if self.utf8 => {
                if self.pending.len() >= super::MAX_CHAR {
                    self.pending.clear();
                }
                self.pending.push(b);
                if super::typed(&self.pending) == super::Typed::Incomplete {
                    return Flow::Done(None);
                }
                let mut ch = [0; super::MAX_CHAR];
                let n = self.pending.len();
                ch[..n].copy_from_slice(&self.pending);
                self.pending.clear();
                self.search_step(Op::Char(ch, n as u8), ctx, out)
            }
            c => self.search_step(Op::Char([c, 0, 0, 0], 1), ctx, out),
        }
    }

    /// ^G: the line as it was before the search.
    fn search_abort(&mut self, ctx: &dyn Context, prompt: &str, out: &mut Vec<u8>) {
        let Some(s) = &self.search else {
            return;
        };
        let old = self.shown(&s.prompt.clone());
        let Some(s) = self.search.take() else {
            return;
        };
        self.line = s.edited;
        self.cursor = s.save_point.min(self.line.len());
        let new = self.shown(prompt.as_bytes());
        display::redisplay(
            &old.view(),
            &new.view(),
            ctx.columns(),
            ctx.rows(),
            false,
            out,
        );
    }

    /// The search stops on its match: that history line becomes the line.
    fn search_finish(&mut self, ctx: &dyn Context, prompt: &str, out: &mut Vec<u8>) {
        let Some(s) = &self.search else {
            return;
        };
        let old = self.shown(&s.prompt.clone());
        let Some(s) = self.search.take() else {
            return;
        };
        let history = ctx.history();
        let hlen = history.len();
        let at = s.last_found;
        let mut line = s.line(at, history).to_vec();
        line.truncate(self.cap);
        let mut index = s.index;
        if index < 0 {
            index = if at == s.save_line {
                s.save_point as isize
            } else {
                line.len() as isize
            };
        }
        self.cursor = (index.max(0) as usize).min(line.len());
        while self.cursor > 0
            && self.cursor < line.len()
            && (0x80..0xc0).contains(&line[self.cursor])
        {
            self.cursor -= 1;
        }
        self.line = line;
        if at >= hlen {
            self.hist = None;
            self.saved.clear();
        } else {
            if !s.browsing {
                self.saved = s.edited;
            }
            self.hist = Some(at);
        }
        let new = self.shown(prompt.as_bytes());
        display::redisplay(
            &old.view(),
            &new.view(),
            ctx.columns(),
            ctx.rows(),
            false,
            out,
        );
        self.last_search = Some(s.string);
    }

    /// One step of `_rl_isearch_dispatch`: change the search string or position,
    /// search, show.
    fn search_step(&mut self, op: Op, ctx: &dyn Context, out: &mut Vec<u8>) -> Flow {
        let history = ctx.history();
        let Some(s) = &self.search else {
            return Flow::Again;
        };
        let mut old = self.shown(&s.prompt.clone());
        let mut op = op;
        if matches!(op, Op::Again) && s.string.is_empty() {
            // ^R with nothing typed: the last search's string, shown first.
            let Some(mut last) = self.last_search.clone() else {
                return Flow::Done(None);
            };
            last.truncate(MAX_SEARCH);
            if let Some(s) = self.search.as_mut() {
                s.string = last;
                s.make_prompt();
            }
            self.show_search(&old, ctx, out);
            if let Some(s) = &self.search {
                old = self.shown(&s.prompt.clone());
            }
            op = Op::Searched;
        }
        let line_len = self.line.len() as isize;
        let point = self.cursor;
        let mut bells = 0;
        let Some(s) = self.search.as_mut() else {
            return Flow::Again;
        };
        match op {
            Op::Searched => {}
            Op::Again => {
                if s.index >= 0 {
                    s.index -= 1;
                } else if s.index != s.line(s.pos, history).len() as isize {
                    s.index += 1;
                } else {
                    bells += 1;
                }
            }
            Op::Rubout => {
                if s.string.is_empty() {
                    bells += 1;
                } else {
                    let mut n = s.string.len() - 1;
                    while n > 0 && (0x80..0xc0).contains(&s.string[n]) {
                        n -= 1;
                    }
                    s.string.truncate(n);
                }
                if s.string.is_empty() {
                    bells += 1;
                }
            }
            Op::Word | Op::Yank => {
                // What follows the match: a word of it, or all of it.
                let start = point as isize + s.string.len() as isize;
                if start >= line_len {
                    bells += 1;
                } else {
                    let start = start as usize;
                    let word = |c: u8| c.is_ascii_alphanumeric() || c >= 0x80;
                    if matches!(op, Op::Word) && !word(self.line[start]) {
                        bells += 1;
                    } else {
                        let mut end = start + 1;
                        if matches!(op, Op::Word) {
                            while end < self.line.len() && word(self.line[end]) {
                                end += 1;
                            }
                        } else {
                            end = self.line.len();
                        }
                        let room = MAX_SEARCH - s.string.len().min(MAX_SEARCH);
                        let end = end.min(start + room);
                        s.string.extend_from_slice(&self.line[start..end]);
                    }
                }
            }
            Op::Char(c, n) => {
                let n = usize::from(n).min(c.len());
                if s.string.len() + n <= MAX_SEARCH {
                    s.string.extend_from_slice(&c[..n]);
                }
            }
        }
        // The search itself.
        s.failed = false;
        let mut found = false;
        loop {
            if s.string.is_empty() {
                s.failed = true;
                break;
            }
            let n = s.string.len();
            while s.index >= 0 {
                let l = s.line(s.pos, history);
                let i = s.index as usize;
                if l.get(i..).is_some_and(|rest| rest.starts_with(&s.string)) {
                    found = true;
                    break;
                }
                s.index -= 1;
                if s.index < 0 {
                    s.index = 0;
                    break;
                }
            }
            if found {
                break;
            }
            // The line before, skipping copies of the last match and lines too short.
            loop {
                if s.pos == 0 {
                    s.failed = true;
                    break;
                }
                s.pos -= 1;
                let l = s.line(s.pos, history);
                let same = s.prev_found.is_some_and(|p| s.line(p, history) == l);
                if !(same || n > l.len()) {
                    break;
                }
            }
            if s.failed {
                if s.index < 0 {
                    s.index = 0;
                }
                break;
            }
            s.index = s.line(s.pos, history).len() as isize - n as isize;
        }
        if s.failed || found {
            s.pasted = None;
        }
        if s.failed {
            bells += 1;
            s.pos = s.last_found;
            s.active = false;
        } else if found {
            s.prev_found = Some(s.pos);
            let mut line = s.line(s.pos, history).to_vec();
            line.truncate(self.cap);
            s.active = true;
            s.last_found = s.pos;
            self.cursor = (s.index.max(0) as usize).min(line.len());
            self.line = line;
        }
        s.make_prompt();
        out.extend(std::iter::repeat_n(0x07, bells));
        self.show_search(&old, ctx, out);
        Flow::Done(None)
    }
}

/// What a key does to the search string or position.
#[derive(Debug, Clone, Copy)]
enum Op {
    Again,
    /// The string was set already (^R with the last search's string).
    Searched,
    Rubout,
    Word,
    Yank,
    /// A character: its bytes and how many.
    Char([u8; super::MAX_CHAR], u8),
}
