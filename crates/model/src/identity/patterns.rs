//! The two pattern languages of permission targets.
//!
//! - [`name_matches`]: a name pattern (repository keys, OCI repositories,
//!   builds, schema groups, projects): `*` matches any run of characters
//!   (`/` included), `?` one character, `ANY` everything.
//! - [`path_matches`]: an Ant path pattern (Artifactory include/exclude
//!   patterns): `**` matches any number of path segments (none included),
//!   `*` and `?` match within one segment. `folder/**` therefore covers the
//!   folder itself, as in Artifactory.
//!
//! Both run in O(pattern × text) without recursion blow-up, so a hostile
//! pattern costs no more than a long one.

/// The name pattern that matches every name.
pub const ANY: &str = "ANY";

/// Whether `name` matches the name pattern `pattern`.
pub fn name_matches(pattern: &str, name: &str) -> bool {
    pattern == ANY || wildcard(&pattern.chars().collect::<Vec<_>>(), &name.chars().collect::<Vec<_>>())
}

/// Whether `path` (segments separated by `/`, leading and trailing `/`
/// ignored) matches the Ant pattern `pattern`.
pub fn path_matches(pattern: &str, path: &str) -> bool {
    let pattern: Vec<&str> = segments(pattern).collect();
    let path: Vec<&str> = segments(path).collect();
    // matched[j]: pattern[..i] matches path[..j]; one row per pattern segment.
    let mut matched = vec![false; path.len() + 1];
    matched[0] = true;
    for part in &pattern {
        let mut next = vec![false; path.len() + 1];
        if *part == "**" {
            let mut reachable = false;
            for j in 0..=path.len() {
                reachable |= matched[j];
                next[j] = reachable;
            }
        } else {
            let part: Vec<char> = part.chars().collect();
            for j in 1..=path.len() {
                next[j] = matched[j - 1] && wildcard(&part, &path[j - 1].chars().collect::<Vec<_>>());
            }
        }
        matched = next;
    }
    matched[path.len()]
}

fn segments(path: &str) -> impl Iterator<Item = &str> {
    path.split('/').filter(|segment| !segment.is_empty())
}

/// `*` any run, `?` one character; iterative with one backtrack point.
fn wildcard(pattern: &[char], text: &[char]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some('*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(c) if *c == '?' || *c == text[t] => {
                p += 1;
                t += 1;
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

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn names() {
        assert!(name_matches("team/*", "team/app"));
        assert!(name_matches("team/*", "team/a/b"));
        assert!(!name_matches("team/*", "teamx/app"));
        assert!(name_matches("*", "anything/at/all"));
        assert!(name_matches(ANY, "x"));
        assert!(name_matches("app-?", "app-1") && !name_matches("app-?", "app-12"));
        assert!(name_matches("exact", "exact") && !name_matches("exact", "exact2"));
        assert!(name_matches("a*b*c", "aXXbYYc") && !name_matches("a*b*c", "aXXbYY"));
    }

    #[test]
    fn ant_paths() {
        assert!(path_matches("**", ""));
        assert!(path_matches("**", "a/b/c"));
        assert!(path_matches("org/**", "org"));
        assert!(path_matches("org/**", "org/acme/lib.jar"));
        assert!(!path_matches("org/**", "com/acme"));
        assert!(path_matches("**/*.jar", "a/b/lib.jar"));
        assert!(path_matches("**/*.jar", "lib.jar"));
        assert!(!path_matches("**/*.jar", "a/lib.war"));
        assert!(path_matches("a/*/c", "a/b/c") && !path_matches("a/*/c", "a/b/x/c"));
        assert!(path_matches("a/**/c", "a/c") && path_matches("a/**/c", "a/b/x/c"));
        assert!(!path_matches("", "a"));
        assert!(path_matches("", ""));
    }

    proptest! {
        #[test]
        fn never_panics(pattern in "[a-c*?/]{0,12}", text in "[a-c/]{0,12}") {
            let _ = name_matches(&pattern, &text);
            let _ = path_matches(&pattern, &text);
        }

        #[test]
        fn literal_patterns_match_only_themselves(text in "[a-c]{1,8}", other in "[a-c]{1,8}") {
            prop_assert_eq!(name_matches(&text, &other), text == other);
        }

        #[test]
        fn a_star_suffix_is_a_prefix_match(prefix in "[a-c/]{0,6}", rest in "[a-c/]{0,6}") {
            let pattern = format!("{prefix}*");
            let name = format!("{prefix}{rest}");
            prop_assert!(name_matches(&pattern, &name));
        }

        #[test]
        fn double_star_matches_every_path(path in "[a-c/]{0,16}") {
            prop_assert!(path_matches("**", &path));
        }
    }
}
