//! Text that came from elsewhere (a ship, another operator's lock record, a daemon's message)
//! made safe to print: no control character of it reaches the operator's terminal, where an
//! escape sequence could move the cursor, rewrite earlier lines or set the window title, and
//! no bidirectional override can make it read other than it is. A leaf any layer may use.

/// `text` with every control character and bidirectional formatting character replaced by
/// `?`. Streams the user asked for raw (`logs`, `exec`, `ssh`) never go through this.
pub fn printable(text: &str) -> String {
    text.chars()
        .map(|c| if unsafe_char(c) { '?' } else { c })
        .collect()
}

fn unsafe_char(c: char) -> bool {
    // U+202A..U+202E (embeddings, overrides) and U+2066..U+2069 (isolates).
    c.is_control() || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_newlines_and_overrides_become_question_marks() {
        assert_eq!(printable("alice\x1b[2J@desk"), "alice?[2J@desk");
        assert_eq!(printable("a\nb\r\u{9b}c"), "a?b??c");
        assert_eq!(printable("x\u{202E}gpj.exe"), "x?gpj.exe");
        assert_eq!(printable("déploiement ✓"), "déploiement ✓");
    }
}
