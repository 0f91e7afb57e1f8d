//! readline's redisplay (bash 5.2's readline 8.2, `display.c`: `rl_redisplay`,
//! `update_line`, `_rl_move_cursor_relative`, `_rl_move_vert`, `_rl_update_final`),
//! for the cases the editor cannot answer with a fixed string: a line wrapped past the
//! terminal's width and the incremental search's prompt and highlighted match.
//!
//! The port keeps readline's arithmetic step by step so that the bytes are the ones
//! xterm gets from real bash: it compares what is on the screen with what should be,
//! screen line by screen line, and writes the difference with `ESC[n@` (insert),
//! `ESC[nP` (delete), `ESC[K`, backspaces, CR, newlines and `ESC[A`. Assumed, as on the
//! Debian box it imitates: TERM=xterm (auto-margins, insert and delete), a prompt
//! without invisible characters.
//!
//! Two modes, as readline has them. In the C locale every character takes one column.
//! In a UTF-8 locale ([`View::utf8`], `LANG=C.UTF-8`) readline takes its multibyte
//! paths: characters of 0, 1 or 2 columns (glibc's `wcwidth`, here the
//! `unicode-width` crate; an invalid byte is a character of one column), a wide
//! character that does not fit at the right margin pushed to the next screen line
//! behind padding spaces, the cursor moved forward with `ESC[C` instead of the text
//! again, and its quirks kept: `update_line`'s trailing-whitespace test inverted (so
//! a changed line is mostly written out to its end rather than inserted into), the
//! quick redisplay counting bytes as columns.
//!
//! Readline keeps what is on the screen from one redisplay to the next; here it is
//! rebuilt from what the editor showed last ([`View`]): both are the same, because
//! every redisplay leaves the screen holding the view and the cursor at its point.

/// One screen cell: a character (1 to 4 bytes), the columns it takes and whether it
/// is shown standout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cell {
    b: [u8; 4],
    n: u8,
    w: u8,
    /// An invalid byte in a UTF-8 locale: readline's `_rl_compare_chars` never finds
    /// it equal to anything, itself included.
    bad: bool,
    so: bool,
}

impl Cell {
    /// readline's `'\0'`: ends a screen line's text (after a newline in the line).
    const NUL: Cell = Cell {
        b: [0; 4],
        n: 0,
        w: 0,
        bad: false,
        so: false,
    };

    fn byte(c: u8, so: bool) -> Cell {
        Cell {
            b: [c, 0, 0, 0],
            n: 1,
            w: 1,
            bad: false,
            so,
        }
    }

    /// A character of the line (`ch` its bytes, 1 to 4) taking `w` columns.
    fn char(ch: &[u8], w: usize, so: bool) -> Cell {
        let mut c = Cell::byte(ch[0], so);
        let n = ch.len().min(4);
        c.b[..n].copy_from_slice(&ch[..n]);
        c.n = n as u8;
        c.w = w.min(2) as u8;
        c
    }

    /// The character, when the cell holds valid UTF-8.
    fn value(&self) -> Option<char> {
        std::str::from_utf8(&self.b[..self.n as usize])
            .ok()
            .and_then(|s| s.chars().next())
    }

    fn is_nul(&self) -> bool {
        self.n == 0
    }

    /// The same character on the screen, as readline's character-wise comparison
    /// (`_rl_compare_chars` and the faces) sees it.
    fn same(&self, other: &Cell) -> bool {
        self == other && !self.bad
    }
}

/// What one redisplay shows: the prompt, the line with the cursor at `point` (a byte
/// offset), and a highlighted byte range (readline's active region).
#[derive(Debug, Clone, Copy)]
pub(crate) struct View<'a> {
    pub prompt: &'a [u8],
    pub line: &'a [u8],
    pub point: usize,
    pub region: Option<(usize, usize)>,
    /// A UTF-8 locale: readline's multibyte redisplay.
    pub utf8: bool,
}

/// readline's screen width: a width of 0 or 1 counts as 80 (`_rl_get_screen_size`).
pub(crate) fn screen_width(columns: usize) -> usize {
    if columns <= 1 { 80 } else { columns }
}

/// readline's screen height: 0 counts as 24.
pub(crate) fn screen_height(rows: usize) -> usize {
    if rows == 0 { 24 } else { rows }
}

/// The characters of `s` and their columns. In a UTF-8 locale ([`super::chars`]):
/// valid sequences with their width, any invalid byte a character of one column. In
/// the C locale a lead byte and its continuation bytes stay together, one column.
fn chars(s: &[u8], utf8: bool) -> impl Iterator<Item = (usize, &[u8], usize)> {
    let mut i = 0;
    std::iter::from_fn(move || {
        if i >= s.len() {
            return None;
        }
        let start = i;
        if utf8 {
            let (len, w) = super::char_at(s, i);
            i += len;
            return Some((start, &s[start..i], w));
        }
        i += 1;
        if s[start] >= 0xc0 {
            while i < s.len() && i - start < 4 && (0x80..0xc0).contains(&s[i]) {
                i += 1;
            }
        }
        Some((start, &s[start..i], 1))
    })
}

/// A UTF-8 locale's cell for a character of the line or prompt.
fn mb_cell(ch: &[u8], w: usize, so: bool) -> Cell {
    let mut c = Cell::char(ch, w, so);
    c.bad = ch.len() == 1 && ch[0] >= 0x80;
    c
}

/// A view laid out on the screen as `rl_redisplay` builds its "invisible line".
#[derive(Debug, Clone)]
struct Layout {
    cells: Vec<Cell>,
    /// Where each screen line starts in `cells`; one more entry ends the last.
    breaks: Vec<usize>,
    /// The cursor's cell and its screen line.
    cursor: usize,
    cursor_line: usize,
    /// Cells of the prompt.
    prompt_len: usize,
    /// Where another byte offset of the line lands (cell, screen line).
    other: (usize, usize),
    /// Padding spaces before a wide character that ended each screen line (readline's
    /// `wrapped_line`), by screen line.
    wrapped: Vec<usize>,
    utf8: bool,
}

/// The line breaks, readline's `wrapped_line` beside them, and its
/// `_rl_wrapped_multicolumn` now.
type Breaks<'a> = (&'a mut Vec<usize>, &'a mut Vec<usize>, usize);

/// `CHECK_LPOS`: one more column, and a new screen line at the width.
fn push(cells: &mut Vec<Cell>, brk: &mut Breaks<'_>, cell: Cell, lpos: &mut usize, cols: usize) {
    cells.push(cell);
    *lpos += 1;
    if *lpos >= cols {
        brk.0.push(cells.len());
        brk.1.push(brk.2);
        *lpos = 0;
    }
}

/// Columns of `cells` (each one column in the C locale).
fn width(cells: &[Cell]) -> isize {
    cells.iter().map(|c| c.w as isize).sum()
}

/// Bytes of `cells`.
fn bytes(cells: &[Cell]) -> isize {
    cells.iter().map(|c| c.n as isize).sum()
}

impl Layout {
    fn new(v: &View<'_>, cols: usize) -> Layout {
        Layout::build(v, cols, v.point)
    }

    /// The layout, and where byte offset `other` of the line lands too.
    fn build(v: &View<'_>, cols: usize, other: usize) -> Layout {
        let mut cells = Vec::with_capacity(v.prompt.len() + v.line.len() + 8);
        let mut lpos = 0;
        let mut breaks = vec![0];
        let mut wrapped = vec![0];
        for (_, ch, w) in chars(v.prompt, v.utf8) {
            cells.push(if v.utf8 {
                mb_cell(ch, w, false)
            } else {
                Cell::char(ch, w, false)
            });
            lpos += w;
            // A prompt as wide as the screen or wider: its own screen lines.
            if lpos >= cols {
                breaks.push(cells.len());
                wrapped.push(0);
                lpos -= cols;
            }
        }
        let prompt_len = cells.len();
        // readline's `_rl_wrapped_multicolumn`: left from the last character.
        let mut multicolumn = 0;
        let mut so = false;
        let mut cursor = None;
        let mut other_at = None;
        for (at, ch, w) in chars(v.line, v.utf8) {
            if let Some((b, e)) = v.region {
                if at == b {
                    so = true;
                } else if at == e {
                    so = false;
                }
            }
            if at == v.point {
                cursor = Some((cells.len(), breaks.len() - 1));
            }
            if at == other {
                other_at = Some((cells.len(), breaks.len() - 1));
            }
            let c = ch[0];
            if c == b'\t' {
                let n = 8 - lpos % 8;
                if lpos + n >= cols {
                    // (A screen narrower than a tab stop leaves `lpos` past the width,
                    // as in readline; the next character breaks the line.)
                    let first = cols.saturating_sub(lpos);
                    breaks.push(cells.len() + first);
                    wrapped.push(multicolumn);
                    lpos = n - first;
                } else {
                    lpos += n;
                }
                cells.extend(std::iter::repeat_n(Cell::byte(b' ', so), n));
            } else if c == b'\n' {
                cells.push(Cell { so, ..Cell::NUL });
                breaks.push(cells.len());
                wrapped.push(multicolumn);
                lpos = 0;
            } else if c < 0x20 || c == 0x7f {
                let mut brk = (&mut breaks, &mut wrapped, multicolumn);
                push(&mut cells, &mut brk, Cell::byte(b'^', so), &mut lpos, cols);
                let shown = if c == 0x7f { b'?' } else { c | 0x40 };
                push(&mut cells, &mut brk, Cell::byte(shown, so), &mut lpos, cols);
            } else if v.utf8 {
                // A character wider than what is left of the screen line: spaces to
                // the margin first (`update_line` takes them out again).
                multicolumn = 0;
                if cols < lpos + w {
                    while lpos < cols {
                        cells.push(Cell::byte(b' ', so));
                        multicolumn += 1;
                        lpos += 1;
                    }
                    breaks.push(cells.len());
                    wrapped.push(multicolumn);
                    lpos = 0;
                    if at == v.point {
                        cursor = Some((cells.len(), breaks.len() - 1));
                    }
                    if at == other {
                        other_at = Some((cells.len(), breaks.len() - 1));
                    }
                }
                cells.push(mb_cell(ch, w, so));
                for _ in 0..w {
                    lpos += 1;
                    if lpos >= cols {
                        breaks.push(cells.len());
                        wrapped.push(multicolumn);
                        lpos = 0;
                    }
                }
            } else {
                let mut brk = (&mut breaks, &mut wrapped, multicolumn);
                push(&mut cells, &mut brk, Cell::char(ch, 1, so), &mut lpos, cols);
            }
        }
        let end = (cells.len(), breaks.len() - 1);
        let (cursor, cursor_line) = cursor.unwrap_or(end);
        let other = other_at.unwrap_or(end);
        breaks.push(cells.len());
        wrapped.push(multicolumn);
        Layout {
            cells,
            breaks,
            cursor,
            cursor_line,
            prompt_len,
            other,
            wrapped,
            utf8: v.utf8,
        }
    }

    /// The last screen line (readline's `inv_botlin`).
    fn botlin(&self) -> usize {
        self.breaks.len() - 2
    }

    fn line(&self, l: usize) -> &[Cell] {
        &self.cells[self.breaks[l]..self.breaks[l + 1]]
    }

    /// The column of `cell` on screen line `l`.
    fn col(&self, cell: usize, l: usize) -> isize {
        width(&self.cells[self.breaks[l]..cell.max(self.breaks[l])])
    }
}

/// Whether a view takes more than one screen line.
pub(crate) fn wraps(v: &View<'_>, columns: usize) -> bool {
    Layout::new(v, screen_width(columns)).botlin() > 0
}

/// Down to the view's last screen line (readline's `_rl_move_vert (_rl_vis_botlin)`
/// before it leaves a line on ^C).
pub(crate) fn to_bottom(v: &View<'_>, columns: usize, rows: usize, out: &mut Vec<u8>) {
    let cols = screen_width(columns);
    let l = Layout::new(v, cols);
    let mut s = Screen {
        cols,
        rows: screen_height(rows),
        c_pos: l.col(l.cursor, l.cursor_line),
        v_pos: l.cursor_line,
        vis_botlin: l.botlin(),
        utf8: l.utf8,
        out,
    };
    s.move_vert(l.botlin());
}

/// The screen and readline's idea of the cursor (`_rl_last_c_pos`, `_rl_last_v_pos`).
struct Screen<'o> {
    cols: usize,
    rows: usize,
    c_pos: isize,
    v_pos: usize,
    /// The last screen line shown (`_rl_vis_botlin`).
    vis_botlin: usize,
    /// readline's multibyte paths.
    utf8: bool,
    out: &'o mut Vec<u8>,
}

fn at(s: &[Cell], i: isize) -> Cell {
    usize::try_from(i)
        .ok()
        .and_then(|i| s.get(i))
        .copied()
        .unwrap_or(Cell::NUL)
}

/// The text of a screen line: up to its end or its first NUL.
fn text_end(s: &[Cell], from: usize) -> usize {
    let mut e = from;
    while e < s.len() && !s[e].is_nul() {
        e += 1;
    }
    e
}

impl Screen<'_> {
    /// `puts_face`: the cells, standout switched on and off around highlighted runs.
    fn puts(&mut self, cells: &[Cell]) {
        let mut so = false;
        for c in cells {
            if c.is_nul() {
                continue;
            }
            if c.so != so {
                self.out
                    .extend_from_slice(if c.so { b"\x1b[7m" } else { b"\x1b[27m" });
                so = c.so;
            }
            self.out.extend_from_slice(&c.b[..c.n as usize]);
        }
        if so {
            self.out.extend_from_slice(b"\x1b[27m");
        }
    }

    fn cr(&mut self) {
        self.out.push(b'\r');
        self.c_pos = 0;
    }

    /// `_rl_move_cursor_relative`: to cell `new` of the screen line `data` (its
    /// column in a UTF-8 locale; the same in the C locale). Forward, the text again,
    /// or in a UTF-8 locale `ESC[C` per column (readline cannot tell where the
    /// screen's columns start in the buffer there).
    fn move_to(&mut self, new: isize, data: &[Cell]) {
        let mut cpos = self.c_pos;
        if cpos == 0 && cpos == new {
            return;
        }
        let dpos = if self.utf8 {
            let n = (new.max(0) as usize).min(data.len());
            width(&data[..n])
        } else {
            new
        };
        if cpos == dpos {
            return;
        }
        // CR_FASTER: a CR and the text again is shorter than backspacing.
        if dpos == 0 || dpos + 1 < self.c_pos - dpos || self.c_pos == self.cols as isize {
            self.cr();
            cpos = 0;
        }
        if cpos < dpos {
            if self.utf8 {
                for _ in cpos..dpos {
                    self.out.extend_from_slice(b"\x1b[C");
                }
            } else {
                let from = cpos.max(0) as usize;
                let to = (dpos.max(0) as usize).min(data.len());
                if from < to {
                    self.puts(&data[from..to]);
                }
            }
        } else if cpos > dpos {
            self.out
                .extend(std::iter::repeat_n(0x08, (cpos - dpos) as usize));
        }
        self.c_pos = dpos;
    }

    /// `_rl_move_vert`: newlines down (the tty makes them CR LF), `ESC[A` up.
    fn move_vert(&mut self, to: usize) {
        if self.v_pos == to || to > self.rows {
            return;
        }
        if to > self.v_pos {
            for _ in self.v_pos..to {
                self.out.extend_from_slice(b"\r\n");
            }
            self.cr();
        } else {
            for _ in to..self.v_pos {
                self.out.extend_from_slice(b"\x1b[A");
            }
        }
        self.v_pos = to;
    }

    /// `clear_rest_of_line`: `old[..oe]` was shown, `new[..ne]` is now.
    fn clear_rest(
        &mut self,
        old: &[Cell],
        new: &[Cell],
        (oe, ne): (usize, usize),
        current_line: usize,
        inv_botlin: usize,
    ) {
        let lendiff = width(&old[..oe.min(old.len())]) - width(&new[..ne.min(new.len())]);
        // Past the last column already, in a UTF-8 locale: nothing.
        if lendiff != 0 && (!self.utf8 || self.c_pos < self.cols as isize) {
            if current_line < inv_botlin {
                // space_to_eol
                if lendiff > 0 {
                    self.out.extend(std::iter::repeat_n(b' ', lendiff as usize));
                }
                self.c_pos += lendiff;
            } else {
                self.out.extend_from_slice(b"\x1b[K");
            }
        }
    }

    /// `update_line`: one screen line from `old` to `new`; `wrapped` is the padding
    /// that ended the line above (readline's `wrapped_line`, UTF-8 only).
    #[allow(clippy::too_many_arguments)]
    fn update_line(
        &mut self,
        old: &mut Vec<Cell>,
        new: &[Cell],
        current_line: usize,
        inv_botlin: usize,
        prompt_len: usize,
        wrapped: usize,
        quick: bool,
    ) {
        // Line lengths: bytes in a UTF-8 locale (readline compares them), cells
        // otherwise.
        let size = |c: &[Cell], utf8: bool| if utf8 { bytes(c) } else { c.len() as isize };
        let utf8 = self.utf8;
        let (omax, nmax) = (size(old, utf8), size(new, utf8));
        // The cursor sits past the last column of the line above: xterm wraps only when
        // the next character comes, so readline writes it (or a space) now.
        if self.c_pos == self.cols as isize && self.v_pos + 1 == current_line {
            if utf8 {
                if wrapped > 0 {
                    self.out.extend_from_slice(b"\x1b[K");
                }
                // The first characters of old and new that take the same columns.
                let first = |c: &[Cell], i: usize| at(c, i as isize);
                let (mut on, mut nn) = (0usize, 0usize);
                let (mut ow, mut nw) = (0isize, 0isize);
                if !first(old, 0).is_nul() {
                    ow = first(old, 0).w as isize;
                    on = 1;
                }
                if !first(new, 0).is_nul() {
                    nw = first(new, 0).w as isize;
                    nn = 1;
                }
                while nn < new.len() && nw < ow && !new[nn].is_nul() {
                    nw += new[nn].w as isize;
                    nn += 1;
                }
                while on < old.len() && ow < nw && !old[on].is_nul() {
                    ow += old[on].w as isize;
                    on += 1;
                }
                if nw > 0 {
                    self.puts(&new[..nn]);
                    self.c_pos = nw;
                    self.v_pos += 1;
                    if nw != ow || bytes(&new[..nn]) > bytes(&old[..on]) {
                        // A dumb update from there, of the whole line.
                        self.puts(&new[nn..]);
                        self.c_pos += width(&new[nn..]);
                        if nmax < omax {
                            let (oe, ne) = (old.len(), new.len());
                            self.clear_rest(old, new, (oe, ne), current_line, inv_botlin);
                        }
                        return;
                    }
                    if on != 0 && nn != 0 {
                        old.splice(..on, new[..nn].iter().copied());
                    }
                } else {
                    self.out.push(b' ');
                    self.c_pos = 1;
                    self.v_pos += 1;
                }
            } else {
                match new.first() {
                    Some(c) if !c.is_nul() => self.puts(&[*c]),
                    _ => self.out.push(b' '),
                }
                self.c_pos = 1;
                self.v_pos += 1;
                if old.first().is_some_and(|c| !c.is_nul())
                    && new.first().is_some_and(|c| !c.is_nul())
                {
                    old[0] = new[0];
                }
            }
        }
        let omax_cells = old.len();
        let nmax_cells = new.len();
        if quick {
            let (oe, ne) = (text_end(old, 0), text_end(new, 0));
            self.move_to(0, old);
            if ne < prompt_len {
                self.puts(&new[..ne]);
                self.c_pos += width(&new[..ne]);
            } else {
                self.puts(&new[..prompt_len]);
                self.c_pos = width(&new[..prompt_len]);
                if ne > prompt_len {
                    self.puts(&new[prompt_len..ne]);
                    // (readline adds bytes here, even in a UTF-8 locale.)
                    self.c_pos += size(&new[prompt_len..ne], utf8);
                }
            }
            if nmax < omax {
                self.clear_rest(old, new, (oe, ne), current_line, inv_botlin);
            }
            return;
        }
        // The first difference. In a UTF-8 locale: old a prefix of new (or the
        // same) compares bytes; otherwise character by character, where an invalid
        // byte always differs.
        let mut ofd = 0;
        let min = omax_cells.min(nmax_cells);
        if utf8 && old[..min] == new[..min] {
            ofd = min;
        } else {
            while ofd < omax_cells
                && !old[ofd].is_nul()
                && (if utf8 {
                    old[ofd].same(&at(new, ofd as isize))
                } else {
                    old[ofd] == at(new, ofd as isize)
                })
            {
                ofd += 1;
            }
        }
        let mut nfd = ofd;
        let oe = text_end(old, ofd);
        let ne = text_end(new, nfd);
        if ofd == oe && nfd == ne {
            return;
        }
        // A combining character first: back to its base character.
        if utf8
            && ofd > 0
            && at(old, ofd as isize).w == 0
            && at(old, ofd as isize)
                .value()
                .is_some_and(|c| ('\u{300}'..='\u{36f}').contains(&c))
        {
            ofd -= 1;
            nfd -= 1;
        }
        // The last difference, unless the lines differ only in trailing spaces (in a
        // UTF-8 locale readline's test is inverted: unless the common end holds a
        // space).
        let mut wsatend = true;
        let (mut ols, mut nls) = (oe as isize - 1, ne as isize - 1);
        let same = |a: Cell, b: Cell| if utf8 { a.same(&b) } else { a == b };
        while ols > ofd as isize && nls > nfd as isize && same(at(old, ols), at(new, nls)) {
            if (at(old, ols).b[0] == b' ') == utf8 {
                wsatend = false;
            }
            ols -= 1;
            nls -= 1;
        }
        if wsatend {
            ols = oe as isize;
            nls = ne as isize;
        } else if !same(at(old, ols), at(new, nls)) {
            if !at(old, ols).is_nul() {
                ols += 1;
            }
            if !at(new, nls).is_nul() {
                nls += 1;
            }
        }
        if self.v_pos != current_line {
            self.move_vert(current_line);
        }
        self.move_to(ofd as isize, old);
        let (ofd, nfd) = (ofd as isize, nfd as isize);
        let span = |from: isize, to: isize, len: usize| -> std::ops::Range<usize> {
            let a = (from.max(0) as usize).min(len);
            a..(to.max(0) as usize).clamp(a, len)
        };
        let (o_mid, n_mid) = (
            &old[span(ofd, ols, omax_cells)],
            &new[span(nfd, nls, nmax_cells)],
        );
        let lendiff = size(n_mid, utf8) - size(o_mid, utf8);
        let col_lendiff = width(n_mid) - width(o_mid);
        let rest = span(nfd, ne as isize, nmax_cells);
        let col_temp = width(&new[rest.clone()]);
        let insert = span(nfd, nls, nmax_cells);
        if col_lendiff > 0 {
            // Lines below still to come: the terminal's insertion would push text off
            // the screen's edge, so readline writes the rest instead.
            let gl = current_line >= self.vis_botlin && inv_botlin > self.vis_botlin;
            if utf8 && lendiff < 0 {
                self.puts(&new[rest]);
                self.c_pos += col_temp;
            } else if !gl && !at(old, ols).is_nul() {
                self.out
                    .extend_from_slice(format!("\x1b[{col_lendiff}@").as_bytes());
                self.puts(&new[insert.clone()]);
                self.c_pos += width(&new[insert]);
            } else {
                self.puts(&new[rest]);
                self.c_pos += col_temp;
            }
        } else if 2 * col_temp >= -col_lendiff {
            if col_lendiff != 0 && -col_lendiff <= self.cols as isize {
                self.out
                    .extend_from_slice(format!("\x1b[{}P", -col_lendiff).as_bytes());
            }
            if !insert.is_empty() {
                self.puts(&new[insert.clone()]);
                self.c_pos += width(&new[insert]);
            }
        } else {
            if col_temp > 0 {
                self.puts(&new[rest]);
                self.c_pos += col_temp;
            }
            self.clear_rest(old, new, (oe, ne), current_line, inv_botlin);
        }
    }
}

/// The bytes that take the screen from showing `old` to showing `new`. `quick` is
/// readline's `_rl_optimize_redisplay` (the incremental search with an empty search
/// string): the prompt and line are written again from column 0.
pub(crate) fn redisplay(
    old: &View<'_>,
    new: &View<'_>,
    columns: usize,
    rows: usize,
    quick: bool,
    out: &mut Vec<u8>,
) {
    let cols = screen_width(columns);
    if !quick && old.prompt == new.prompt && old.line == new.line && old.region == new.region {
        // The same text: every screen line compares equal (the cursor never rests past
        // the last column), so only the cursor moves; one layout does.
        let l = Layout::build(new, cols, old.point);
        let (cell, row) = l.other;
        let mut s = Screen {
            cols,
            rows: screen_height(rows),
            c_pos: l.col(cell, row),
            v_pos: row,
            vis_botlin: l.botlin(),
            utf8: l.utf8,
            out,
        };
        if s.v_pos != l.cursor_line {
            s.move_vert(l.cursor_line);
        }
        let nleft = (l.cursor - l.breaks[l.cursor_line]) as isize;
        if s.utf8 || nleft != s.c_pos {
            s.move_to(nleft, l.line(l.cursor_line));
        }
        return;
    }
    let vis = Layout::new(old, cols);
    let (c_pos, v_pos) = (
        vis.col(vis.cursor, vis.cursor_line) as usize,
        vis.cursor_line,
    );
    redisplay_from(
        vis,
        c_pos,
        v_pos,
        new,
        cols,
        screen_height(rows),
        quick,
        out,
    );
}

/// After readline rubbed out the last character with backspace, space, backspace
/// from column 1 of a wrapped line's second or later screen line: its
/// `_rl_erase_at_end_of_line` clears `visible_line` at the column's index, which is
/// the first screen line's first cell, so the redisplay that follows is not skipped
/// and redraws from there (bash 5.2 does this; the bytes below are its).
pub(crate) fn after_erase(
    old: &View<'_>,
    new: &View<'_>,
    columns: usize,
    rows: usize,
    out: &mut Vec<u8>,
) {
    let cols = screen_width(columns);
    let mut vis = Layout::new(old, cols);
    let v_pos = vis.cursor_line;
    if let Some(c) = vis.cells.first_mut() {
        *c = Cell::NUL;
    }
    redisplay_from(vis, 0, v_pos, new, cols, screen_height(rows), false, out);
}

/// The cursor's column and screen line.
pub(crate) fn cursor_at(v: &View<'_>, columns: usize) -> (usize, usize) {
    let l = Layout::new(v, screen_width(columns));
    (l.col(l.cursor, l.cursor_line) as usize, l.cursor_line)
}

/// The same with nothing on the screen yet but the cursor at column 0 (readline's
/// `rl_forced_update_display`, after a completion listing).
pub(crate) fn forced(new: &View<'_>, columns: usize, rows: usize, out: &mut Vec<u8>) {
    let cols = screen_width(columns);
    let vis = Layout {
        cells: Vec::new(),
        breaks: vec![0, 0],
        cursor: 0,
        cursor_line: 0,
        prompt_len: 0,
        other: (0, 0),
        wrapped: vec![0, 0],
        utf8: new.utf8,
    };
    redisplay_from(vis, 0, 0, new, cols, screen_height(rows), false, out);
}

/// The terminal's width changed while `v` was shown `old_columns` wide (SIGWINCH):
/// readline's `_rl_redisplay_after_sigwinch`. `rl_clear_visible_line` goes to column 0
/// and down to the line's last screen line, clears each screen line from the bottom
/// up (`ESC[K`, CR, `ESC[A`), then `rl_forced_update_display` draws the prompt and the
/// line again at the new width. Captured from bash 5.2.15 in a pty (TERM=xterm).
pub(crate) fn after_resize(
    v: &View<'_>,
    old_columns: usize,
    columns: usize,
    rows: usize,
    out: &mut Vec<u8>,
) {
    let old = Layout::new(v, screen_width(old_columns));
    let botlin = old.botlin();
    let mut s = Screen {
        cols: screen_width(columns),
        rows: screen_height(rows),
        c_pos: old.col(old.cursor, old.cursor_line),
        v_pos: old.cursor_line,
        vis_botlin: botlin,
        utf8: old.utf8,
        out,
    };
    s.cr();
    s.move_vert(botlin);
    for l in (0..=s.v_pos).rev() {
        s.move_vert(l);
        s.out.extend_from_slice(b"\x1b[K");
        s.cr();
    }
    forced(v, columns, rows, out);
}

#[allow(clippy::too_many_arguments)]
fn redisplay_from(
    vis: Layout,
    c_pos: usize,
    v_pos: usize,
    new: &View<'_>,
    cols: usize,
    rows: usize,
    quick: bool,
    out: &mut Vec<u8>,
) {
    let inv = Layout::new(new, cols);
    let inv_botlin = inv.botlin();
    let quick = quick && vis.botlin() == 0 && inv_botlin == 0;
    let mut s = Screen {
        cols,
        rows,
        c_pos: c_pos as isize,
        v_pos,
        vis_botlin: vis.botlin(),
        utf8: new.utf8,
        out,
    };
    for l in 0..=inv_botlin {
        let mut old: Vec<Cell> = if l > s.vis_botlin {
            Vec::new()
        } else {
            vis.line(l).to_vec()
        };
        let wrapped = inv.wrapped.get(l).copied().unwrap_or(0);
        s.update_line(
            &mut old,
            inv.line(l),
            l,
            inv_botlin,
            inv.prompt_len,
            wrapped,
            quick,
        );
    }
    if s.vis_botlin > inv_botlin {
        for l in inv_botlin + 1..=s.vis_botlin {
            s.move_vert(l);
            s.move_to(0, vis.line(l));
            s.out.extend_from_slice(b"\x1b[K");
        }
    }
    s.vis_botlin = inv_botlin;
    if s.v_pos != inv.cursor_line {
        s.move_vert(inv.cursor_line);
    }
    let nleft = (inv.cursor - inv.breaks[inv.cursor_line]) as isize;
    if s.utf8 || nleft != s.c_pos {
        s.move_to(nleft, inv.line(inv.cursor_line));
    }
}

/// What readline writes when a line is accepted (`_rl_update_final`, then the CR LF):
/// down to the line's last screen line first.
pub(crate) fn finish(v: &View<'_>, columns: usize, rows: usize, out: &mut Vec<u8>) {
    let cols = screen_width(columns);
    let vis = Layout::new(v, cols);
    let mut s = Screen {
        cols,
        rows: screen_height(rows),
        c_pos: vis.col(vis.cursor, vis.cursor_line),
        v_pos: vis.cursor_line,
        vis_botlin: vis.botlin(),
        utf8: v.utf8,
        out,
    };
    let mut full_lines = false;
    let mut botlin = s.vis_botlin;
    if botlin > 0 && s.c_pos == 0 && at(vis.line(botlin), 0).is_nul() {
        botlin -= 1;
        full_lines = true;
    }
    s.move_vert(botlin);
    let last = vis.line(botlin);
    // (In bytes in a UTF-8 locale, as readline measures it there.)
    let botline_length = if s.utf8 {
        bytes(last) as usize
    } else {
        last.len()
    };
    if full_lines && botline_length == cols && last.len() >= cols {
        // The last column is written again with nothing after it so that the
        // terminal's pending wrap is used up.
        s.move_to(cols as isize - 1, last);
        s.out.extend_from_slice(b"\x1b[K");
        s.puts(&last[cols - 1..cols]);
        s.c_pos += 1;
    }
    if botline_length > 0 || s.c_pos > 0 {
        s.out.extend_from_slice(b"\r\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v<'a>(prompt: &'a str, line: &'a str, point: usize) -> View<'a> {
        View {
            prompt: prompt.as_bytes(),
            line: line.as_bytes(),
            point,
            region: None,
            utf8: false,
        }
    }

    fn show(old: View<'_>, new: View<'_>, cols: usize) -> String {
        let mut out = Vec::new();
        redisplay(&old, &new, cols, 24, false, &mut out);
        String::from_utf8_lossy(&out).into_owned()
    }

    #[test]
    fn layout_breaks_at_the_width() {
        let l = Layout::new(&v("P$ ", "abcdefg", 7), 5);
        assert_eq!(l.breaks, vec![0, 5, 10, 10]);
        assert_eq!((l.cursor, l.cursor_line), (10, 2));
        let l = Layout::new(&v("P$ ", "ab\tc", 1), 80);
        assert_eq!(l.cells.len(), 3 + 2 + 3 + 1);
    }

    #[test]
    fn moves_across_screen_lines_as_readline_does() {
        // Bytes from bash 5.2 at 30 columns (see the editor's tests).
        let line = "echo aaaaaaaaaabbbbbbbbbbccccccccccdddddddddd";
        assert_eq!(
            show(v("P$ ", line, 44), v("P$ ", line, 0), 30),
            "\x1b[A\rP$ "
        );
        assert_eq!(
            show(v("P$ ", line, 0), v("P$ ", line, 45), 30),
            "\r\n\rccccccccdddddddddd"
        );
    }

    #[test]
    fn nothing_panics_on_odd_views() {
        let mut out = Vec::new();
        for cols in [0, 1, 2, 3, 80] {
            for rows in [0, 1, 2] {
                let a = View {
                    prompt: b"\xff\xc3",
                    line: b"\x01\x7f\t\n\xe2\x82",
                    point: 3,
                    region: Some((1, 6)),
                    utf8: cols % 2 == 0,
                };
                let b = View {
                    prompt: b"",
                    line: b"\n\n\t\t\t\t\t\t",
                    point: 8,
                    region: Some((9, 2)),
                    utf8: rows == 1,
                };
                redisplay(&a, &b, cols, rows, false, &mut out);
                redisplay(&b, &a, cols, rows, true, &mut out);
                forced(&a, cols, rows, &mut out);
                finish(&b, cols, rows, &mut out);
            }
        }
    }
}
