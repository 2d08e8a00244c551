//! Token scopes as the Docker token spec writes them: `repository:team/app:pull,push`.

use std::fmt;

use super::AuthError;

/// Longest scope accepted (bytes); repository names stay far below it.
const MAX_SCOPE_BYTES: usize = 1024;
/// Longest resource type accepted (bytes), e.g. `repository(plugin)`.
const MAX_RESOURCE_TYPE_BYTES: usize = 64;
/// Most actions in one scope; the spec knows three plus `*`.
const MAX_ACTIONS: usize = 8;
/// Longest single action (bytes).
const MAX_ACTION_BYTES: usize = 32;

/// One requested access: a resource type, a resource name and actions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    pub resource_type: String,
    pub name: String,
    pub actions: Vec<String>,
}

impl Scope {
    /// Parses `type:name:action[,action…]`. The name may itself contain `:`
    /// (`repository:localhost:5000/app:pull`): the type ends at the first `:`,
    /// the actions start after the last. Empty parts, whitespace, quotes,
    /// backslashes, non-ASCII and over-long parts are rejected.
    pub fn parse(text: &str) -> Result<Self, AuthError> {
        if text.len() > MAX_SCOPE_BYTES {
            return Err(invalid("too long"));
        }
        if !text.bytes().all(is_scope_byte) {
            return Err(invalid("forbidden character"));
        }
        let (resource_type, rest) = text.split_once(':').ok_or_else(|| invalid("expected type:name:actions"))?;
        let (name, actions) = rest.rsplit_once(':').ok_or_else(|| invalid("expected type:name:actions"))?;
        if resource_type.is_empty() || resource_type.len() > MAX_RESOURCE_TYPE_BYTES || name.is_empty() {
            return Err(invalid("empty or over-long type or name"));
        }
        let actions = parse_actions(actions)?;
        Ok(Scope { resource_type: resource_type.to_owned(), name: name.to_owned(), actions })
    }

    /// Parses a space-separated list of scopes (the OAuth2 form of the `scope` parameter).
    pub fn parse_list(text: &str) -> impl Iterator<Item = Result<Scope, AuthError>> + '_ {
        text.split_ascii_whitespace().map(Scope::parse)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.resource_type, self.name, self.actions.join(","))
    }
}

fn parse_actions(text: &str) -> Result<Vec<String>, AuthError> {
    let actions: Vec<String> = text.split(',').map(str::to_owned).collect();
    if actions.len() > MAX_ACTIONS {
        return Err(invalid("too many actions"));
    }
    if actions.iter().any(|action| action.is_empty() || action.len() > MAX_ACTION_BYTES) {
        return Err(invalid("empty or over-long action"));
    }
    Ok(actions)
}

/// Visible ASCII except `"` and `\`, so a scope can be echoed into a quoted header value.
fn is_scope_byte(byte: u8) -> bool {
    byte.is_ascii_graphic() && byte != b'"' && byte != b'\\'
}

fn invalid(reason: &str) -> AuthError {
    AuthError::InvalidScope(reason.to_owned())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn parses_the_common_shapes() {
        let scope = Scope::parse("repository:team/app:pull,push").unwrap();
        assert_eq!(scope.resource_type, "repository");
        assert_eq!(scope.name, "team/app");
        assert_eq!(scope.actions, ["pull", "push"]);
        assert_eq!(scope.to_string(), "repository:team/app:pull,push");
        let catalog = Scope::parse("registry:catalog:*").unwrap();
        assert_eq!(catalog.actions, ["*"]);
    }

    #[test]
    fn name_may_contain_colons() {
        let scope = Scope::parse("repository:localhost:5000/app:pull").unwrap();
        assert_eq!(scope.name, "localhost:5000/app");
        assert_eq!(scope.actions, ["pull"]);
    }

    #[test]
    fn rejects_bad_scopes() {
        let too_long = format!("repository:{}:pull", "a".repeat(MAX_SCOPE_BYTES));
        for bad in [
            "",
            "repository",
            "repository:app",
            ":app:pull",
            "repository::pull",
            "repository:app:",
            "repository:app:pull,",
            "repository:a pp:pull",
            "repository:\"app:pull",
            "repository:ä:pull",
            too_long.as_str(),
        ] {
            assert!(matches!(Scope::parse(bad), Err(AuthError::InvalidScope(_))), "{bad}");
        }
    }

    #[test]
    fn parses_space_separated_lists() {
        let scopes: Vec<Scope> =
            Scope::parse_list(" repository:a:pull  repository:b:push ").collect::<Result<_, _>>().unwrap();
        assert_eq!(scopes.len(), 2);
        assert_eq!(scopes[1].name, "b");
    }

    proptest! {
        #[test]
        fn never_panics(text in "\\PC{0,300}") {
            let _ = Scope::parse(&text);
        }

        #[test]
        fn never_panics_on_colon_heavy_input(text in "[a-z:,*/]{0,64}") {
            if let Ok(scope) = Scope::parse(&text) {
                prop_assert!(!scope.resource_type.is_empty() && !scope.name.is_empty());
                prop_assert!(scope.actions.iter().all(|action| !action.is_empty() && !action.contains(':')));
                prop_assert_eq!(scope.to_string(), text);
            }
        }
    }
}
