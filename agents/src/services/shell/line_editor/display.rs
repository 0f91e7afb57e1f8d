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
//! without invisible characters, one column per character.
//!
//! Readline keeps what is on the screen from one redisplay to the next; here it is
//! rebuilt from what the editor showed last ([`View`]): both are the same, because
//! every redisplay leaves the screen holding the view and the cursor at its point.

/// One screen cell: a character (1 to 4 bytes) and whether it is shown standout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cell {
    b: [u8; 4],
    n: u8,
    so: bool,
}

impl Cell {
    /// readline's `'\0'`: ends a screen line's text (after a newline in the line).
    const NUL: Cell = Cell {
        b: [0; 4],
        n: 0,
        so: false,
    };

    fn byte(c: u8, so: bool) -> Cell {
        Cell {
            b: [c, 0, 0, 0],
            n: 1,
            so,
        }
    }

    fn is_nul(&self) -> bool {
        self.n == 0
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
}

/// readline's screen width: a width of 0 or 1 counts as 80 (`_rl_get_screen_size`).
pub(crate) fn screen_width(columns: usize) -> usize {
    if columns <= 1 { 80 } else { columns }
}

/// readline's screen height: 0 counts as 24.
pub(crate) fn screen_height(rows: usize) -> usize {
    if rows == 0 { 24 } else { rows }
}

/// The characters of `s` (UTF-8 sequences kept together, any other byte alone).
fn chars(s: &[u8]) -> impl Iterator<Item = (usize, &[u8])> {
    let mut i = 0;
    std::iter::from_fn(move || {
        if i >= s.len() {
            return None;
        }
        let start = i;
        i += 1;
        if s[start] >= 0xc0 {
            while i < s.len() && i - start < 4 && (0x80..0xc0).contains(&s[i]) {
                i += 1;
            }
        }
        Some((start, &s[start..i]))
    })
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
}

/// `CHECK_LPOS`: one more column, and a new screen line at the width.
fn push(cells: &mut Vec<Cell>, breaks: &mut Vec<usize>, cell: Cell, lpos: &mut usize, cols: usize) {
    cells.push(cell);
    *lpos += 1;
    if *lpos >= cols {
        breaks.push(cells.len());
        *lpos = 0;
    }
}

impl Layout {
    fn new(v: &View<'_>, cols: usize) -> Layout {
        Layout::build(v, cols, v.point)
    }

    /// The layout, and where byte offset `other` of the line lands too.
    fn build(v: &View<'_>, cols: usize, other: usize) -> Layout {
        let mut cells = Vec::with_capacity(v.prompt.len() + v.line.len() + 8);
        for (_, ch) in chars(v.prompt) {
            let mut c = Cell::byte(ch[0], false);
            c.b[..ch.len()].copy_from_slice(ch);
            c.n = ch.len() as u8;
            cells.push(c);
        }
        let prompt_len = cells.len();
        let mut breaks = vec![0];
        let mut lpos = prompt_len;
        // A prompt as wide as the screen or wider: its own screen lines.
        while lpos >= cols {
            breaks.push(breaks[breaks.len() - 1] + cols);
            lpos -= cols;
        }
        let mut so = false;
        let mut cursor = None;
        let mut other_at = None;
        for (at, ch) in chars(v.line) {
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
                    lpos = n - first;
                } else {
                    lpos += n;
                }
                cells.extend(std::iter::repeat_n(Cell::byte(b' ', so), n));
            } else if c == b'\n' {
                cells.push(Cell { so, ..Cell::NUL });
                breaks.push(cells.len());
                lpos = 0;
            } else if c < 0x20 || c == 0x7f {
                push(
                    &mut cells,
                    &mut breaks,
                    Cell::byte(b'^', so),
                    &mut lpos,
                    cols,
                );
                let shown = if c == 0x7f { b'?' } else { c | 0x40 };
                push(
                    &mut cells,
                    &mut breaks,
                    Cell::byte(shown, so),
                    &mut lpos,
                    cols,
                );
            } else {
                let mut cell = Cell::byte(c, so);
                if ch.len() > 1 {
                    cell.b[..ch.len()].copy_from_slice(ch);
                    cell.n = ch.len() as u8;
                }
                push(&mut cells, &mut breaks, cell, &mut lpos, cols);
            }
        }
        let end = (cells.len(), breaks.len() - 1);
        let (cursor, cursor_line) = cursor.unwrap_or(end);
        let other = other_at.unwrap_or(end);
        breaks.push(cells.len());
        Layout {
            cells,
            breaks,
            cursor,
            cursor_line,
            prompt_len,
            other,
        }
    }

    /// The last screen line (readline's `inv_botlin`).
    fn botlin(&self) -> usize {
        self.breaks.len() - 2
    }

    fn line(&self, l: usize) -> &[Cell] {
        &self.cells[self.breaks[l]..self.breaks[l + 1]]
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
        c_pos: (l.cursor - l.breaks[l.cursor_line]) as isize,
        v_pos: l.cursor_line,
        vis_botlin: l.botlin(),
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

    /// `_rl_move_cursor_relative`: to column `new` of the screen line `data`.
    fn move_to(&mut self, new: isize, data: &[Cell]) {
        let mut cpos = self.c_pos;
        if cpos == 0 && cpos == new {
            return;
        }
        let dpos = new;
        if cpos == dpos {
            return;
        }
        // CR_FASTER: a CR and the text again is shorter than backspacing.
        if dpos == 0 || dpos + 1 < self.c_pos - dpos || self.c_pos == self.cols as isize {
            self.cr();
            cpos = 0;
        }
        if cpos < dpos {
            let from = cpos.max(0) as usize;
            let to = (dpos.max(0) as usize).min(data.len());
            if from < to {
                self.puts(&data[from..to]);
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

    fn clear_rest(&mut self, oe: usize, ne: usize, current_line: usize, inv_botlin: usize) {
        let lendiff = oe as isize - ne as isize;
        if lendiff != 0 {
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

    /// `update_line`: one screen line from `old` to `new`.
    #[allow(clippy::too_many_arguments)]
    fn update_line(
        &mut self,
        old: &mut [Cell],
        new: &[Cell],
        current_line: usize,
        inv_botlin: usize,
        prompt_len: usize,
        quick: bool,
    ) {
        let (omax, nmax) = (old.len(), new.len());
        // The cursor sits past the last column of the line above: xterm wraps only when
        // the next character comes, so readline writes it (or a space) now.
        if self.c_pos == self.cols as isize && self.v_pos + 1 == current_line {
            match new.first() {
                Some(c) if !c.is_nul() => self.puts(&[*c]),
                _ => self.out.push(b' '),
            }
            self.c_pos = 1;
            self.v_pos += 1;
            if old.first().is_some_and(|c| !c.is_nul()) && new.first().is_some_and(|c| !c.is_nul())
            {
                old[0] = new[0];
            }
        }
        if quick {
            let (oe, ne) = (text_end(old, 0), text_end(new, 0));
            self.move_to(0, old);
            if ne < prompt_len {
                self.puts(&new[..ne]);
                self.c_pos += ne as isize;
            } else {
                self.puts(&new[..prompt_len]);
                self.c_pos = prompt_len as isize;
                if ne > prompt_len {
                    self.puts(&new[prompt_len..ne]);
                    self.c_pos += (ne - prompt_len) as isize;
                }
            }
            if nmax < omax {
                self.clear_rest(oe, ne, current_line, inv_botlin);
            }
            return;
        }
        // The first difference.
        let mut ofd = 0;
        while ofd < omax && !old[ofd].is_nul() && old[ofd] == at(new, ofd as isize) {
            ofd += 1;
        }
        let nfd = ofd;
        let oe = text_end(old, ofd);
        let ne = text_end(new, nfd);
        if ofd == oe && nfd == ne {
            return;
        }
        // The last difference, unless the lines differ only in trailing spaces.
        let mut wsatend = true;
        let (mut ols, mut nls) = (oe as isize - 1, ne as isize - 1);
        while ols > ofd as isize && nls > nfd as isize && at(old, ols) == at(new, nls) {
            if at(old, ols).b[0] != b' ' {
                wsatend = false;
            }
            ols -= 1;
            nls -= 1;
        }
        if wsatend {
            ols = oe as isize;
            nls = ne as isize;
        } else if at(old, ols) != at(new, nls) {
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
        let lendiff = (nls - nfd) - (ols - ofd);
        let temp = ne as isize - nfd;
        let insert = nls - nfd;
        let span = |from: isize, n: isize| -> std::ops::Range<usize> {
            let a = from.max(0) as usize;
            a..(a + n.max(0) as usize).min(nmax)
        };
        if lendiff > 0 {
            // Lines below still to come: the terminal's insertion would push text off
            // the screen's edge, so readline writes the rest instead.
            let gl = current_line >= self.vis_botlin && inv_botlin > self.vis_botlin;
            if !gl {
                if !at(old, ols).is_nul() {
                    self.out
                        .extend_from_slice(format!("\x1b[{lendiff}@").as_bytes());
                    self.puts(&new[span(nfd, insert)]);
                    self.c_pos += insert;
                } else {
                    self.puts(&new[span(nfd, temp)]);
                    self.c_pos += temp;
                }
            } else {
                self.puts(&new[span(nfd, temp)]);
                self.c_pos += temp;
            }
        } else if 2 * temp >= -lendiff {
            if lendiff != 0 && -lendiff <= self.cols as isize {
                self.out
                    .extend_from_slice(format!("\x1b[{}P", -lendiff).as_bytes());
            }
            if insert > 0 {
                self.puts(&new[span(nfd, insert)]);
                self.c_pos += insert;
            }
        } else {
            if temp > 0 {
                self.puts(&new[span(nfd, temp)]);
                self.c_pos += temp;
            }
            self.clear_rest(oe, ne, current_line, inv_botlin);
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
            c_pos: (cell - l.breaks[row]) as isize,
            v_pos: row,
            vis_botlin: l.botlin(),
            out,
        };
        if s.v_pos != l.cursor_line {
            s.move_vert(l.cursor_line);
        }
        let nleft = (l.cursor - l.breaks[l.cursor_line]) as isize;
        if nleft != s.c_pos {
            s.move_to(nleft, l.line(l.cursor_line));
        }
        return;
    }
    let vis = Layout::new(old, cols);
    let (c_pos, v_pos) = (vis.cursor - vis.breaks[vis.cursor_line], vis.cursor_line);
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
    (l.cursor - l.breaks[l.cursor_line], l.cursor_line)
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
        c_pos: (old.cursor - old.breaks[old.cursor_line]) as isize,
        v_pos: old.cursor_line,
        vis_botlin: botlin,
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
    mut vis: Layout,
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
        out,
    };
    let mut empty: [Cell; 0] = [];
    for l in 0..=inv_botlin {
        let old: &mut [Cell] = if l > s.vis_botlin {
            &mut empty
        } else {
            let (a, b) = (vis.breaks[l], vis.breaks[l + 1]);
            &mut vis.cells[a..b]
        };
        s.update_line(old, inv.line(l), l, inv_botlin, inv.prompt_len, quick);
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
    if nleft != s.c_pos {
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
        c_pos: (vis.cursor - vis.breaks[vis.cursor_line]) as isize,
        v_pos: vis.cursor_line,
        vis_botlin: vis.botlin(),
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
    let botline_length = last.len();
    if full_lines && botline_length == cols {
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
                };
                let b = View {
                    prompt: b"",
                    line: b"\n\n\t\t\t\t\t\t",
                    point: 8,
                    region: Some((9, 2)),
                };
                redisplay(&a, &b, cols, rows, false, &mut out);
                redisplay(&b, &a, cols, rows, true, &mut out);
                forced(&a, cols, rows, &mut out);
                finish(&b, cols, rows, &mut out);
            }
        }
    }
}
