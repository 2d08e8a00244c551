//! Who a request acts as, and what it may do.
//!
//! A password principal has its user's current permissions (compiled from
//! the permission targets naming the user and their groups). A token
//! principal has the token's access list intersected with its user's
//! *current* permissions, so a revoked grant also revokes outstanding
//! tokens. Tokens and credentials (app tokens, API keys) never carry
//! administrative authority (`is_admin` is false for them).

use std::sync::Arc;

use flotilla_model::identity::{self, Account, CredentialKind, CredentialRecord, Resource};

use super::scope::Scope;
use super::token::{Access, Claims, CLOCK_LEEWAY_SECS};
use super::AuthError;

/// Name of the account unauthenticated requests act as.
pub use flotilla_model::identity::ANONYMOUS_USER;
/// Resource type of repository scopes and grants.
const REPOSITORY: &str = "repository";
/// The Docker scope that asks to list the catalog: `registry:catalog:*`.
const CATALOG_TYPE: &str = "registry";
const CATALOG_NAME: &str = "catalog";
/// The scope action that stands for every action.
const ALL_ACTIONS: &str = "*";
const MILLIS_PER_SEC: u64 = 1000;

/// What a request wants to do to a repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Action {
    Read,
    Write,
    Delete,
}

impl Action {
    /// Every action, in scope order.
    pub const ALL: [Action; 3] = [Action::Read, Action::Write, Action::Delete];

    /// The token-scope word: `pull`, `push` or `delete`.
    pub fn scope_action(self) -> &'static str {
        match self {
            Action::Read => "pull",
            Action::Write => "push",
            Action::Delete => "delete",
        }
    }

    /// The actions a scope word stands for (`*` → all; unknown → none).
    pub fn from_scope_action(word: &str) -> &'static [Action] {
        match word {
            "pull" => &[Action::Read],
            "push" => &[Action::Write],
            "delete" => &[Action::Delete],
            ALL_ACTIONS => &Action::ALL,
            _ => &[],
        }
    }
}

impl From<Action> for identity::Action {
    fn from(action: Action) -> Self {
        match action {
            Action::Read => identity::Action::Read,
            Action::Write => identity::Action::Write,
            Action::Delete => identity::Action::Delete,
        }
    }
}

/// An authenticated (or anonymous) caller.
#[derive(Debug, Clone)]
pub struct Principal {
    /// The user name (`anonymous` for unauthenticated callers).
    pub name: String,
    /// Administrative authority: the user's (or a group's) for password
    /// principals; false for tokens and credentials.
    pub admin: bool,
    /// The account as compiled at the identity revision of the request;
    /// `None` for an anonymous caller when there is no `anonymous` account.
    account: Option<Arc<Account>>,
    token: Option<TokenLimits>,
    /// The credential (app token, API key) the caller presented, if any.
    credential: Option<(CredentialKind, String)>,
}

/// What a token narrows its user's rights to.
#[derive(Debug, Clone)]
struct TokenLimits {
    access: Vec<Access>,
    expires_at_unix_secs: u64,
}

impl Principal {
    /// The unauthenticated caller, with the `anonymous` account's rights if it exists; never admin.
    pub fn anonymous(account: Option<Arc<Account>>) -> Self {
        Principal { name: ANONYMOUS_USER.to_owned(), admin: false, account, token: None, credential: None }
    }

    /// A caller who proved to be `account`'s user (by password).
    pub fn from_account(account: Arc<Account>) -> Self {
        let admin = account.permissions.is_admin() && account.user.name != ANONYMOUS_USER;
        Principal { name: account.user.name.clone(), admin, account: Some(account), token: None, credential: None }
    }

    /// A caller who presented one of `account`'s credentials: the user's
    /// rights on resources, without administrative authority.
    pub(crate) fn from_credential(account: Arc<Account>, credential: &CredentialRecord) -> Self {
        Principal {
            name: account.user.name.clone(),
            admin: false,
            account: Some(account),
            token: None,
            credential: Some((credential.kind, credential.id.clone())),
        }
    }

    /// A token's rights: its access list ∩ the current rights of its subject.
    pub(crate) fn from_token(claims: Claims, account: Option<Arc<Account>>) -> Result<Self, AuthError> {
        if claims.sub != ANONYMOUS_USER {
            let account = account.as_ref().ok_or(AuthError::InvalidToken)?;
            // A token older than its user belongs to a deleted account of the same name.
            if claims.iat.saturating_add(CLOCK_LEEWAY_SECS) < account.user.created_ms / MILLIS_PER_SEC {
                return Err(AuthError::InvalidToken);
            }
        }
        let limits = TokenLimits { access: claims.access, expires_at_unix_secs: claims.exp };
        Ok(Principal { name: claims.sub, admin: false, account, token: Some(limits), credential: None })
    }

    /// Whether this principal may do `action` to `resource` (any surface's
    /// resources; tokens carry OCI repository scopes only, so a token
    /// principal may do nothing else).
    pub fn may(&self, resource: &Resource<'_>, action: identity::Action) -> bool {
        let token_allows = match (&self.token, resource) {
            (None, _) => true,
            (Some(token), Resource::OciRepository(repo)) => token.allows(repo, action),
            (Some(_), _) => false,
        };
        token_allows && self.user_may(resource, action)
    }

    /// Whether this principal's user may do `action` to `resource`, whatever its token says.
    fn user_may(&self, resource: &Resource<'_>, action: identity::Action) -> bool {
        self.account.as_ref().is_some_and(|account| account.permissions.allows(resource, action))
    }

    /// The credential this principal presented (app token, API key), if any.
    pub fn credential(&self) -> Option<(CredentialKind, &str)> {
        self.credential.as_ref().map(|(kind, id)| (*kind, id.as_str()))
    }

    /// Whether this principal may do `action` on `repo`.
    pub fn can(&self, repo: &str, action: Action) -> bool {
        self.may(&Resource::OciRepository(repo), action.into())
    }

    /// Whether this principal's *user* may do `action` on `repo`: what a token
    /// asked for with the user's credentials would allow. The same as
    /// [`Self::can`] for password principals; for a token principal it looks
    /// past the token's access list, so that a token lacking a scope its user
    /// holds (answered 401 `insufficient_scope`) can be told from a user
    /// lacking the right (403).
    pub fn user_can(&self, repo: &str, action: Action) -> bool {
        self.user_may(&Resource::OciRepository(repo), action.into())
    }

    /// Whether this principal may list the catalog: any authenticated user by
    /// password, and a token only if it holds `registry:catalog:*`. The token
    /// endpoint grants that scope on the same rule, so a token never mints a
    /// catalog token its parent lacked.
    pub fn can_list_catalog(&self) -> bool {
        !self.is_anonymous() && self.token.as_ref().is_none_or(TokenLimits::has_catalog)
    }

    /// Whether this principal's *user* may list the catalog (a catalog token
    /// asked for with its credentials would be granted): any authenticated user.
    pub fn user_can_list_catalog(&self) -> bool {
        !self.is_anonymous()
    }

    /// Whether `repo` appears in this principal's catalog listing: when it may
    /// list the catalog at all, every repository its user may read (a
    /// `registry:catalog:*` token lists what its user may read, not only the
    /// repositories named in the token).
    pub fn can_list(&self, repo: &str) -> bool {
        self.can_list_catalog() && self.user_can(repo, Action::Read)
    }

    /// Whether this principal has administrative authority.
    pub fn is_admin(&self) -> bool {
        self.admin
    }

    /// Whether this is the unauthenticated caller.
    pub fn is_anonymous(&self) -> bool {
        self.name == ANONYMOUS_USER
    }

    /// Whether this principal comes from a token (Bearer, `X-JFrog-Art-Api`, or
    /// a token sent as a Basic password) rather than a password.
    pub fn is_token(&self) -> bool {
        self.token.is_some()
    }

    /// For a token principal, when its token expires (Unix seconds).
    pub fn token_expiry(&self) -> Option<u64> {
        self.token.as_ref().map(|token| token.expires_at_unix_secs)
    }

    /// The part of `scope` this principal may be granted, if any.
    pub(crate) fn grant(&self, scope: &Scope) -> Option<Access> {
        let actions = match scope.resource_type.as_str() {
            REPOSITORY => self.granted_repository_actions(&scope.name, &scope.actions),
            CATALOG_TYPE if scope.name == CATALOG_NAME && self.can_list_catalog() => catalog_actions(&scope.actions),
            _ => Vec::new(),
        };
        if actions.is_empty() {
            return None;
        }
        Some(Access { resource_type: scope.resource_type.clone(), name: scope.name.clone(), actions })
    }

    fn granted_repository_actions(&self, repo: &str, requested: &[String]) -> Vec<String> {
        let wants_all = requested.iter().any(|word| word == ALL_ACTIONS);
        if wants_all && Action::ALL.iter().all(|action| self.can(repo, *action)) {
            return vec![ALL_ACTIONS.to_owned()];
        }
        let mut granted: Vec<Action> = requested
            .iter()
            .flat_map(|word| Action::from_scope_action(word))
            .copied()
            .filter(|action| self.can(repo, *action))
            .collect();
        granted.sort();
        granted.dedup();
        granted.into_iter().map(|action| action.scope_action().to_owned()).collect()
    }
}

impl TokenLimits {
    fn allows(&self, repo: &str, action: identity::Action) -> bool {
        self.access.iter().any(|access| {
            access.resource_type == REPOSITORY
                && name_matches(&access.name, repo)
                && access.actions.iter().any(|word| {
                    Action::from_scope_action(word).iter().any(|granted| identity::Action::from(*granted) == action)
                })
        })
    }

    fn has_catalog(&self) -> bool {
        self.access.iter().any(|access| access.resource_type == CATALOG_TYPE && access.name == CATALOG_NAME)
    }
}

fn catalog_actions(requested: &[String]) -> Vec<String> {
    if requested.iter().any(|word| word == ALL_ACTIONS) {
        vec![ALL_ACTIONS.to_owned()]
    } else {
        Vec::new()
    }
}

/// A token's repository name: exact, or a prefix ending in `*`.
fn name_matches(pattern: &str, repo: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => repo.starts_with(prefix),
        None => pattern == repo,
    }
}
