//! Escaping for the CLI's human output. Events, audit rows, alerts, node health, captures,
//! command answers and module states carry text chosen by attackers (paths, user names,
//! commands) or by nodes and modules that may be compromised. Printed raw, that text could
//! move the cursor, rewrite earlier lines, set the window title, hide itself or reverse
//! what an operator reads. Every line of human output goes through [`term_safe`]; `--json`
//! output is exact (serde_json escapes control characters and nothing else).

use std::borrow::Cow;
use std::fmt::Write as _;

pub use honeybee_proto::text::is_unsafe;

/// `s` with every character [`is_unsafe`] finds written as visible text: `\n`, `\r`,
/// `\t`, `\x1b` for the other C0 controls and DEL, `\u{202e}` for everything else.
/// Borrowed (no copy) when nothing needed escaping. Backslashes are left as they are, so
/// the result is for reading, not for parsing back: `--json` gives the exact text.
pub fn term_safe(s: &str) -> Cow<'_, str> {
    let Some(first) = s.find(is_unsafe) else {
        return Cow::Borrowed(s);
    };
    let mut out = String::with_capacity(s.len() + 16);
    out.push_str(&s[..first]);
    for c in s[first..].chars() {
        if !is_unsafe(c) {
            out.push(c);
            continue;
        }
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
        }
    }
    Cow::Owned(out)
}

/// Like [`term_safe`] for multi-line text (a node's answer to a command): line breaks stay
/// line breaks, everything else unsafe is escaped, a bare `\r` included.
pub fn term_safe_lines(s: &str) -> String {
    s.split('\n').map(term_safe).collect::<Vec<_>>().join("\n")
}

/// `println!` for human output: the formatted line is escaped with [`term_safe`] as a
/// whole, so no field of it can be forgotten.
macro_rules! say {
    ($($arg:tt)*) => {
        println!("{}", $crate::term::term_safe(&format!($($arg)*)))
    };
}
pub(crate) use say;

#[cfg(test)]
mod tests {
    use super::*;

    /// The output may hold no character that [`is_unsafe`] names, whatever the input.
    fn clean(s: &str) -> bool {
        !s.chars().any(is_unsafe)
    }

    #[test]
    fn plain_text_is_borrowed_unchanged() {
        for s in [
            "",
            "GET /index.html?a=b",
            "user=\"root\" ünïcødé 日本語 🐝",
            "a\\x1b",
        ] {
            assert!(matches!(term_safe(s), Cow::Borrowed(b) if b == s), "{s:?}");
        }
    }

    #[test]
    fn every_class_is_escaped_visibly() {
        let cases: &[(&str, &str)] = &[
            // C0: ESC sequences (colour, cursor moves, OSC title), BEL, NUL, BS.
            ("\u{1b}[2J\u{1b}[H", "\\x1b[2J\\x1b[H"),
            ("\u{1b}]0;pwned\u{7}", "\\x1b]0;pwned\\x07"),
            ("a\u{0}b\u{8}c", "a\\x00b\\x08c"),
            ("a\nb\rc\td", "a\\nb\\rc\\td"),
            // DEL and C1, CSI (U+009B) and NEL (U+0085) included.
            (
                "\u{7f}\u{80}\u{85}\u{9b}31m\u{9f}",
                "\\x7f\\u{80}\\u{85}\\u{9b}31m\\u{9f}",
            ),
            // Bidi embeddings and overrides, isolates, marks.
            (
                "\u{202a}\u{202b}\u{202c}\u{202d}\u{202e}",
                "\\u{202a}\\u{202b}\\u{202c}\\u{202d}\\u{202e}",
            ),
            (
                "\u{2066}\u{2067}\u{2068}\u{2069}",
                "\\u{2066}\\u{2067}\\u{2068}\\u{2069}",
            ),
            ("\u{200e}\u{200f}\u{61c}", "\\u{200e}\\u{200f}\\u{61c}"),
            // Zero-width and other invisible format characters, tags, fillers.
            (
                "a\u{200b}b\u{200c}\u{200d}\u{2060}\u{feff}\u{ad}",
                "a\\u{200b}b\\u{200c}\\u{200d}\\u{2060}\\u{feff}\\u{ad}",
            ),
            (
                "\u{e0001}\u{e0041}\u{3164}\u{115f}",
                "\\u{e0001}\\u{e0041}\\u{3164}\\u{115f}",
            ),
            // Line and paragraph separators.
            ("x\u{2028}y\u{2029}z", "x\\u{2028}y\\u{2029}z"),
        ];
        for (input, want) in cases {
            let got = term_safe(input);
            assert_eq!(got, *want, "input {input:?}");
            assert!(clean(&got), "{got:?}");
        }
    }

    #[test]
    fn any_char_in_the_unsafe_ranges_is_escaped() {
        // Exhaustive over the BMP and the planes where format characters live: nothing
        // unsafe survives, and everything else is kept as it was.
        for cp in (0u32..0x3_0000).chain(0xe_0000..0xe_0100) {
            let Some(c) = char::from_u32(cp) else {
                continue;
            };
            let s = format!("<{c}>");
            let got = term_safe(&s);
            assert!(clean(&got), "U+{cp:04X} survived: {got:?}");
            if !is_unsafe(c) {
                assert_eq!(got, s);
            }
        }
    }

    #[test]
    fn multi_line_text_keeps_its_line_breaks_only() {
        assert_eq!(
            term_safe_lines("ok\nspool 3\r\u{1b}[1Afake"),
            "ok\nspool 3\\r\\x1b[1Afake"
        );
    }
}
