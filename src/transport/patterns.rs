//! OpenSSH's pattern lists, shared by known_hosts host fields and ssh_config `Match`.
//!
//! Written out rather than taken from russh (its known_hosts matcher knows only exact and
//! hashed names) or russh-config (its globs are globset's, where `[` and `{` are special and
//! `!` is only a whole-line prefix): OpenSSH patterns know `*` and `?` and nothing else, a list
//! is comma-separated, and a matching `!pattern` vetoes the whole list.

/// OpenSSH `match_pattern`: `*` any run of characters, `?` exactly one, the rest literal.
pub(crate) fn glob_match(text: &str, pattern: &str) -> bool {
    let text: Vec<char> = text.chars().collect();
    let pattern: Vec<char> = pattern.chars().collect();
    // Iterative with one backtrack point: linear enough for host names, and no recursion
    // depth an adversarial pattern could blow up.
    let (mut t, mut p) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some('*') => {
                star = Some((p, t));
                p += 1;
            }
            Some('?') => {
                t += 1;
                p += 1;
            }
            Some(c) if *c == text[t] => {
                t += 1;
                p += 1;
            }
            _ => match star {
                Some((star_p, star_t)) => {
                    p = star_p + 1;
                    t = star_t + 1;
                    star = Some((star_p, star_t + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|c| *c == '*')
}

/// OpenSSH `match_pattern_list`: some positive entry of the comma-separated `list` matches
/// and no `!entry` does. Host names are compared lower-cased, as OpenSSH does (`lower`).
pub(crate) fn list_matches(text: &str, list: &str, lower: bool) -> bool {
    list_matches_with(text, list, lower, glob_match)
}

/// [`list_matches`] with the way one (non-negated) entry matches supplied: known_hosts adds
/// hashed `|1|` entries.
pub(crate) fn list_matches_with(
    text: &str,
    list: &str,
    lower: bool,
    entry_matches: impl Fn(&str, &str) -> bool,
) -> bool {
    let text = if lower {
        text.to_lowercase()
    } else {
        text.to_string()
    };
    let mut positive = false;
    for entry in list.split(',') {
        let (negated, entry) = match entry.strip_prefix('!') {
            Some(rest) => (true, rest),
            None => (false, entry),
        };
        if entry.is_empty() {
            continue;
        }
        let entry = if lower && !entry.starts_with("|1|") {
            entry.to_lowercase()
        } else {
            entry.to_string()
        };
        if entry_matches(&text, &entry) {
            if negated {
                return false;
            }
            positive = true;
        }
    }
    positive
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_as_openssh() {
        assert!(glob_match("10.231.1.11", "10.231.1.*"));
        assert!(glob_match("[10.231.1.11]:2222", "[10.231.1.*]:2222"));
        assert!(!glob_match("[10.231.1.11]:2222", "10.231.1.*"));
        assert!(glob_match("web1", "web?"));
        assert!(!glob_match("web12", "web?"));
        assert!(glob_match("", "*"));
        assert!(glob_match("abcabd", "*ab?"));
        assert!(!glob_match("abc", "a*d"));
        assert!(glob_match("a.b.c", "a*c"));
    }

    #[test]
    fn lists_with_negation() {
        assert!(list_matches("db1", "web*,db*", true));
        assert!(!list_matches("db1", "*,!db1", true));
        assert!(
            !list_matches("db1", "!db1", true),
            "negation alone matches nothing"
        );
        assert!(list_matches("DB1", "db1", true));
        assert!(!list_matches("Root", "root", false));
    }
}
