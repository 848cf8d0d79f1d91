//! Route and room names, and the `*` patterns that match them (room
//! policies, a token's rooms claim).

/// Route and room names: 1-64 characters of `A-Z a-z 0-9 . _ -`.
pub fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// A full room name, `route/room`, split into its parts if valid.
pub fn split_room(full: &str) -> Option<(&str, &str)> {
    let (route, room) = full.split_once('/')?;
    (valid_name(route) && valid_name(room)).then_some((route, room))
}

/// Does `pattern` match `name`? A pattern is an exact name (`chat/lobby`) or
/// a prefix ending in `*` (`chat/team-*`, `chat/*`, `*`).
pub fn pattern_matches(pattern: &str, name: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => pattern == name,
    }
}

/// Is `pattern` well formed: a room name (or a prefix of one) with at most
/// one `*`, at the end?
pub fn valid_pattern(pattern: &str) -> bool {
    let stem = pattern.strip_suffix('*').unwrap_or(pattern);
    !pattern.is_empty()
        && !stem.contains('*')
        && stem
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-/".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(valid_name("lobby"));
        assert!(valid_name("a.b_c-9"));
        assert!(!valid_name(""));
        assert!(!valid_name("a/b"));
        assert!(!valid_name(&"x".repeat(65)));
        assert_eq!(split_room("chat/red"), Some(("chat", "red")));
        assert_eq!(split_room("chat"), None);
        assert_eq!(split_room("chat/a/b"), None);
    }

    #[test]
    fn patterns() {
        assert!(pattern_matches("*", "chat/x"));
        assert!(pattern_matches("chat/team-*", "chat/team-red"));
        assert!(!pattern_matches("chat/team-*", "chat/lobby"));
        assert!(pattern_matches("chat/lobby", "chat/lobby"));
        assert!(!pattern_matches("chat/lobby", "chat/lobby2"));
        assert!(valid_pattern("chat/*") && valid_pattern("*") && valid_pattern("a/b"));
        assert!(!valid_pattern("") && !valid_pattern("a*b") && !valid_pattern("a b"));
    }
}
