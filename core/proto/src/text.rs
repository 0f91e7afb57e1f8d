//! Which characters of attacker- or node-supplied text must never reach a terminal or a
//! text view as themselves. One list, used by the CLI's escaping (`src/term.rs`) and by
//! the core when it writes peer text into audit rows (`core/src/audit.rs`).

/// Whether `c` must not reach a terminal as itself: C0 and C1 controls and DEL (ESC
/// sequences start here), bidirectional overrides, embeddings, isolates and marks, line
/// and paragraph separators, and the invisible format characters (zero-width spaces and
/// joiners, word joiner, soft hyphen, BOM, tag characters, interlinear annotation, Hangul
/// fillers) that can hide or disguise text.
pub fn is_unsafe(c: char) -> bool {
    matches!(c,
        '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}'
        // Format characters (general category Cf), bidi controls among them.
        | '\u{ad}' | '\u{600}'..='\u{605}' | '\u{61c}' | '\u{6dd}' | '\u{70f}'
        | '\u{890}'..='\u{891}' | '\u{8e2}' | '\u{180e}'
        | '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{206f}'
        | '\u{feff}' | '\u{fff9}'..='\u{fffb}'
        | '\u{110bd}' | '\u{110cd}' | '\u{13430}'..='\u{1343f}' | '\u{1bca0}'..='\u{1bca3}'
        | '\u{1d173}'..='\u{1d17a}' | '\u{e0001}' | '\u{e0020}'..='\u{e007f}'
        // Line and paragraph separators (Zl, Zp).
        | '\u{2028}' | '\u{2029}'
        // Invisible letters that render as blank space.
        | '\u{115f}' | '\u{1160}' | '\u{3164}' | '\u{ffa0}'
    )
}
