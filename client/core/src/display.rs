//! Text from other people (messages) and from relays (error details) made
//! safe to show. Every front end shows peer text through [`neutralise`]:
//! control characters could rewrite a terminal (move the cursor, fake a
//! "verified" line, set the clipboard), and bidirectional overrides could
//! make text read differently than it is (an alias or a link displayed
//! backwards). Both are shown as visible `\u{..}` escapes instead.
//!
//! This module never drops characters silently: what was sent stays
//! visible, only made harmless.

/// Whether `c` changes the direction or order in which text is displayed:
/// the embeddings, overrides and isolates of Unicode's bidirectional
/// algorithm (UAX #9) and the invisible direction marks.
pub fn is_bidi_control(c: char) -> bool {
    matches!(
        c,
        '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
    )
}

/// Whether `c` is invisible when shown (Unicode's default-ignorable code
/// points: zero-width spaces and joiners, soft hyphen, word joiner, BOM,
/// variation selectors, tags...). In a name these make two names that look
/// the same compare different.
pub fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{ad}' | '\u{34f}' | '\u{61c}' | '\u{115f}'..='\u{1160}' | '\u{17b4}'..='\u{17b5}'
        | '\u{180b}'..='\u{180f}' | '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}'
        | '\u{2060}'..='\u{206f}' | '\u{3164}' | '\u{fe00}'..='\u{fe0f}' | '\u{feff}'
        | '\u{ffa0}' | '\u{fff0}'..='\u{fff8}' | '\u{1bca0}'..='\u{1bca3}'
        | '\u{1d173}'..='\u{1d17a}' | '\u{e0000}'..='\u{e0fff}')
}

/// `s` with every control character except newline and tab, and every
/// bidirectional control, replaced by its `\u{..}` escape.
pub fn neutralise(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if (c.is_control() && c != '\n' && c != '\t') || is_bidi_control(c) {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_and_bidi_overrides_are_made_visible() {
        assert_eq!(neutralise("hi\nthere\tyou"), "hi\nthere\tyou");
        let evil = "ok\u{1b}[2J\u{1b}]52;c;AAAA\u{7}\rverified";
        let shown = neutralise(evil);
        assert!(
            !shown
                .chars()
                .any(|c| c.is_control() && c != '\n' && c != '\t')
        );
        assert!(shown.contains("\\u{1b}"));
        // "invoice_\u{202E}fdp.exe" displays as "invoice_exe.pdf".
        let spoof = "invoice_\u{202E}fdp.exe";
        assert_eq!(neutralise(spoof), "invoice_\\u{202e}fdp.exe");
        for c in [
            '\u{061C}', '\u{200E}', '\u{200F}', '\u{202A}', '\u{2066}', '\u{2069}',
        ] {
            assert!(!neutralise(&format!("a{c}b")).contains(c), "{c:?}");
        }
        assert_eq!(neutralise("Привет, مرحبا"), "Привет, مرحبا");
    }
}
