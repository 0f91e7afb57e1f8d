//! The bash grammar of the emulated shell: `brush-parser` turns a command line (or a
//! script, a function body, a `$( )`) into its syntax tree, and this module maps what it
//! says into what bash 5.2 would do with the same text: run it, ask for more (`> `, the
//! PS2 prompt, when a quote, a compound command or a `&&` is still open), or print a
//! syntax error naming the token bash names.
//!
//! brush-parser is a recursive-descent (PEG) parser: input nested thousands of times deep
//! would recurse as deep. [`parse`] therefore measures how deep the text could nest
//! (brackets and compound keywords, counted without regard to quoting, so it can only
//! over-count) and refuses text deeper than [`MAX_NESTING`] before the parser sees it.

use brush_parser::ast::Program;
use brush_parser::{ParseError, ParserOptions, Token, TokenizerError};

/// Deepest nesting of brackets and compound commands a text may have to be parsed. Real
/// command lines nest a handful of levels; this keeps the parser's recursion (and the
/// executor's walk of the tree) far inside a 2 MiB thread stack.
pub(crate) const MAX_NESTING: usize = 24;

/// Deepest nesting of `(` alone. brush-parser's PEG grammar tries several rules at each
/// `(` (subshell, `((`, function definition) and backtracks: on unclosed parentheses its
/// time doubles per level (about 2.6 s at 24 in a debug build), so parentheses get a
/// lower bound than other nesting (12: about a millisecond).
pub(crate) const MAX_PARENS: usize = 12;

/// Longest text handed to the parser at once: a typed line is at most 4 KiB, but an SSH
/// exec request may carry a loader's whole payload (`ShellLimits::max_exec`, 128 KiB);
/// the parser is linear in the length of flat text.
pub(crate) const MAX_SOURCE: usize = 256 * 1024;

/// What is still open at the end of an incomplete text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Open {
    /// A quote or a `$( … )`/`${ … }`: bash names the character it looks for.
    Matching(char),
    /// A compound command, a `&&`, a `|`, a here-document or a trailing `\`.
    Eof,
}

/// Why a text cannot run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Syntax {
    /// More input could complete it (an interactive shell prompts with `> `).
    Incomplete(Open),
    /// `syntax error near unexpected token `X'` at this line (1-based).
    Unexpected { token: String, line: usize },
    /// Nested deeper than [`MAX_NESTING`] or longer than [`MAX_SOURCE`]: never parsed.
    TooDeep,
}

fn options() -> ParserOptions {
    ParserOptions {
        enable_extended_globbing: false,
        ..ParserOptions::default()
    }
}

/// How deeply `text` could nest: brackets and compound keywords open a level, their
/// closers end one. Quotes are not understood, so this is an upper bound for the parser.
/// The second number is the deepest nesting of `(` alone.
pub(crate) fn nesting(text: &str) -> (usize, usize) {
    let b = text.as_bytes();
    let (mut depth, mut max) = (0usize, 0usize);
    let (mut parens, mut max_parens) = (0usize, 0usize);
    let mut bangs = 0usize;
    let mut in_backquote = false;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_alphabetic() {
            let start = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
            }
            match &text[start..i] {
                "if" | "while" | "until" | "for" | "case" | "select" => depth += 1,
                "fi" | "done" | "esac" => depth = depth.saturating_sub(1),
                _ => {}
            }
            max = max.max(depth);
            continue;
        }
        match c {
            // A standalone `!` nests too (`[[ ! ! ! x ]]` recurses in the parser); it is
            // never closed, so every one counts.
            b'!' if (i == 0 || b[i - 1].is_ascii_whitespace() || b[i - 1] == b'(')
                && b.get(i + 1).is_none_or(|n| n.is_ascii_whitespace()) =>
            {
                bangs += 1;
            }
            b'(' => {
                depth += 1;
                parens += 1;
            }
            // Backquotes open and close with the same character.
            b'`' => {
                if in_backquote {
                    depth = depth.saturating_sub(1);
                } else {
                    depth += 1;
                }
                in_backquote = !in_backquote;
            }
            b'{' | b'[' => depth += 1,
            b')' => {
                depth = depth.saturating_sub(1);
                parens = parens.saturating_sub(1);
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
        max = max.max(depth);
        max_parens = max_parens.max(parens);
        i += 1;
    }
    (max + bangs, max_parens)
}

/// Runs one of brush-parser's entry points; a panic inside it (a bug there, reached by
/// hostile input) becomes `None` instead of ending the session's thread.
pub(crate) fn guard<T>(f: impl FnOnce() -> T) -> Option<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).ok()
}

/// Parses a whole text (a line, a script, a `$( )`).
pub(crate) fn parse(text: &str) -> Result<Program, Syntax> {
    let (depth, parens) = nesting(text);
    if text.len() > MAX_SOURCE || depth > MAX_NESTING || parens > MAX_PARENS {
        return Err(Syntax::TooDeep);
    }
    guard(|| parse_unguarded(text)).unwrap_or(Err(Syntax::Unexpected {
        token: "newline".into(),
        line: 1,
    }))
}

/// brush-parser takes a word of digits right before `<` or `>` as the redirection's file
/// descriptor and unwraps its parse as an `i32`, so `echo 99999999999>f` panicked inside
/// it (found by the `shell_line` fuzz target). bash takes a number too large for a file
/// descriptor as an ordinary word, which is what the parser does when the two tokens are
/// not contiguous: such a word's recorded end is moved past the operator's start (only
/// when the two touch: a word and an operator apart are left as they are).
fn defuse_io_numbers(tokens: &mut [Token]) {
    for i in 0..tokens.len().saturating_sub(1) {
        let redirect_at = match &tokens[i + 1] {
            Token::Operator(o, span) if o.starts_with(['<', '>']) => Some(span.start.index),
            _ => None,
        };
        if let Token::Word(w, span) = &mut tokens[i]
            && let Some(at) = redirect_at
            && span.end.index == at
            && !w.is_empty()
            && w.bytes().all(|b| b.is_ascii_digit())
            && w.parse::<i32>().is_err()
        {
            let mut end = (*span.end).clone();
            end.index = at + 1;
            span.end = std::sync::Arc::new(end);
        }
    }
}

/// Tokenizes `text` for [`brush_parser::parse_tokens`], with [`defuse_io_numbers`].
fn tokenize(text: &str, opts: &ParserOptions) -> Result<Vec<Token>, TokenizerError> {
    let mut tokens = brush_parser::uncached_tokenize_str(text, &opts.tokenizer_options())?;
    defuse_io_numbers(&mut tokens);
    Ok(tokens)
}

fn parse_unguarded(text: &str) -> Result<Program, Syntax> {
    let opts = options();
    let tokens = match tokenize(text, &opts) {
        Ok(t) => t,
        Err(e) => return Err(Syntax::Incomplete(open_of(&e, text))),
    };
    match brush_parser::parse_tokens(&tokens, &opts) {
        Ok(p) => Ok(p),
        Err(ParseError::ParsingNear(pos)) => Err(unexpected(&tokens, pos.index, pos.line)),
        Err(ParseError::Tokenizing { inner, .. }) => Err(Syntax::Incomplete(open_of(&inner, text))),
        Err(ParseError::ParsingAtEndOfInput) => {
            if let Some(e) = misplaced(&tokens, text) {
                return Err(e);
            }
            // bash fails at the newline when it cannot take one there (`echo (`), and
            // asks for more when it can (`a &&`, `if x; then`, `for i in 1 2`): a
            // newline and a plausible continuation after it tell the two apart.
            let mut named = None;
            for suffix in ["\n:", "\ndo :", "\nthen :", "\n:)"] {
                let probe = format!("{text}{suffix}");
                let Ok(t) = tokenize(&probe, &opts) else {
                    return Err(Syntax::Incomplete(Open::Eof));
                };
                match brush_parser::parse_tokens(&t, &opts) {
                    Ok(_) | Err(ParseError::ParsingAtEndOfInput) => {
                        return Err(Syntax::Incomplete(Open::Eof));
                    }
                    // A token of the text itself is what bash names.
                    Err(ParseError::ParsingNear(pos)) if pos.index < text.len() => {
                        named.get_or_insert_with(|| unexpected(&t, pos.index, pos.line));
                    }
                    Err(_) => {}
                }
            }
            if let Some(e) = named {
                return Err(e);
            }
            Err(Syntax::Unexpected {
                token: "newline".into(),
                line: text.split('\n').count(),
            })
        }
    }
}

/// Keywords that close or continue a compound command: alone at the start of a command
/// with nothing open they are the unexpected token.
const CLOSERS: [&str; 9] = [
    "fi", "done", "esac", "then", "else", "elif", "do", "}", "in",
];
const OPENERS: [&str; 8] = ["if", "while", "until", "for", "case", "select", "{", "("];

/// Cases the PEG parser reports only as "end of input" that bash names a token for: a
/// closing keyword with nothing open (`fi`), a redirection or `(` with nothing after it
/// (`echo (`, `cat <`).
fn misplaced(tokens: &[Token], text: &str) -> Option<Syntax> {
    let lines = text.split('\n').count();
    let last = tokens.last()?.to_str();
    let redirection = matches!(
        last,
        "<" | ">" | ">>" | "<<" | "<<-" | "<&" | ">&" | "<>" | ">|" | "&>" | "&>>" | "<<<"
    );
    let paren = last == "("
        && tokens
            .len()
            .checked_sub(2)
            .map(|i| tokens[i].to_str())
            .is_some_and(|w| {
                w.chars().all(|c| c.is_alphanumeric() || "_-./".contains(c))
                    && !OPENERS.contains(&w)
                    && !CLOSERS.contains(&w)
                    && !w.is_empty()
            });
    if redirection || paren {
        return Some(Syntax::Unexpected {
            token: "newline".into(),
            line: lines,
        });
    }
    let mut at_start = true;
    let mut open = false;
    for t in tokens {
        let w = t.to_str();
        if at_start && OPENERS.contains(&w) {
            open = true;
        }
        if at_start && !open && CLOSERS.contains(&w) {
            return Some(Syntax::Unexpected {
                token: w.to_owned(),
                line: t.location().start.line,
            });
        }
        at_start = matches!(w, ";" | "&" | "&&" | "||" | "|" | "\n" | "(" | "{" | "!");
    }
    None
}

fn unexpected(tokens: &[Token], index: usize, line: usize) -> Syntax {
    let token = tokens
        .iter()
        .find(|t| t.location().start.index == index)
        .map_or("newline", |t| t.to_str());
    let token = if token == "\n" { "newline" } else { token };
    Syntax::Unexpected {
        token: token.to_owned(),
        line,
    }
}

fn open_of(e: &TokenizerError, text: &str) -> Open {
    match e {
        TokenizerError::UnterminatedSingleQuote(_) | TokenizerError::UnterminatedAnsiCQuote(_) => {
            Open::Matching('\'')
        }
        TokenizerError::UnterminatedDoubleQuote(_) => Open::Matching('"'),
        TokenizerError::UnterminatedBackquote(_) => Open::Matching('`'),
        TokenizerError::UnterminatedCommandSubstitution => Open::Matching(')'),
        // brush-parser says "expansion" for both `${` and `$(`: the later one is open.
        TokenizerError::UnterminatedVariable | TokenizerError::UnterminatedExpansion => {
            if text.rfind("$(") > text.rfind("${") {
                Open::Matching(')')
            } else {
                Open::Matching('}')
            }
        }
        _ => Open::Eof,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_err(text: &str) -> Result<(), Syntax> {
        parse(text).map(|_| ())
    }

    #[test]
    fn complete_incomplete_and_wrong() {
        assert!(parse("echo a | wc -l && ls; x=1 y").is_ok());
        assert!(parse("for i in 1 2; do echo $i; done").is_ok());
        assert!(parse("").is_ok());
        assert_eq!(parse_err("a &&"), Err(Syntax::Incomplete(Open::Eof)));
        assert_eq!(
            parse_err("if true; then"),
            Err(Syntax::Incomplete(Open::Eof))
        );
        assert_eq!(
            parse_err("echo 'x"),
            Err(Syntax::Incomplete(Open::Matching('\'')))
        );
        assert_eq!(
            parse_err("echo \"x"),
            Err(Syntax::Incomplete(Open::Matching('"')))
        );
        let e = |t: &str| Syntax::Unexpected {
            token: t.into(),
            line: 1,
        };
        assert_eq!(parse_err("echo a)"), Err(e(")")));
        assert_eq!(parse_err("| x"), Err(e("|")));
        assert_eq!(parse_err("echo ("), Err(e("newline")));
    }

    /// Input nested far deeper than any real line never reaches the recursive parser.
    #[test]
    fn deep_nesting_is_refused_before_parsing() {
        for unit in ["(", "$(", "{ ", "if ", "${", "$((", "[[ ( ", "! "] {
            let line = unit.repeat(10_000);
            assert_eq!(parse_err(&line), Err(Syntax::TooDeep), "{unit}");
        }
        let deep = format!("{}x{}", "(".repeat(10_000), ")".repeat(10_000));
        assert_eq!(parse_err(&deep), Err(Syntax::TooDeep));
        // At the limits the parser runs, on a small stack; unclosed parentheses (its
        // slowest case) are refused one level past the limit.
        let ok = [
            format!(
                "{}echo x{}",
                "( ".repeat(MAX_PARENS),
                " )".repeat(MAX_PARENS)
            ),
            format!(
                "{}echo x{}",
                "{ ".repeat(MAX_NESTING),
                "; }".repeat(MAX_NESTING)
            ),
        ];
        assert_eq!(parse_err(&"(".repeat(MAX_PARENS + 1)), Err(Syntax::TooDeep));
        let handle = std::thread::Builder::new()
            .stack_size(512 * 1024)
            .spawn(move || {
                let _ = parse(&format!("{}x", "(".repeat(MAX_PARENS)));
                // Backquotes pair up (nesting needs `\``, which the parser does not
                // recurse into): long runs parse flat.
                let _ = parse(&"`".repeat(10_000));
                let _ = parse(&"\\`".repeat(5_000));
                let _ = parse(&"`a".repeat(5_000));
                ok.iter().all(|t| parse(t).is_ok())
            })
            .unwrap();
        assert!(handle.join().unwrap());
    }

    proptest::proptest! {
        #[test]
        fn never_panics(line in ".{0,200}") {
            let _ = parse(&line);
        }
    }
}
