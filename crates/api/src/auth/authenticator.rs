//! [`Authenticator`]: turns request headers into a [`Principal`], and issues tokens.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use http::HeaderMap;
use parking_lot::Mutex;
use tokio::sync::{OnceCell, Semaphore};

use flotilla_model::identity::{secret_hash, Account};

use super::cache::{CacheKey, CredentialCache, CREDENTIAL_CACHE_CAPACITY, CREDENTIAL_CACHE_TTL};
use super::credentials::{self, Credentials};
use super::password::{hash_password, verify_password};
use super::principal::{Principal, ANONYMOUS_USER};
use super::scope::Scope;
use super::secrets::{self, APP_USER};
use super::time::{now_unix_secs, rfc3339};
use super::token::{self, Claims, IssuedToken, ISSUER};
use super::{AuthError, UserDirectory};

/// Lifetime of tokens from the registry token endpoint; clients fetch a new one on expiry.
pub const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(15 * 60);
/// Argon2 verifications running at once: bounds the blocking pool and argon2
/// memory (19 MiB each) under a flood of wrong passwords.
const MAX_CONCURRENT_PASSWORD_CHECKS: usize = 8;
/// How long a token answered `insufficient_scope` is remembered for the request
/// it was presented on: long enough for a client's immediate retry.
const NARROW_TOKEN_MEMORY: Duration = Duration::from_secs(60);
/// Such answers remembered at most: a retry follows its 401 at once, and a
/// small map keeps the eviction scan of a full one cheap.
const NARROW_TOKEN_CAPACITY: usize = 1024;
/// Password hashed once and verified against for unknown users, so that their
/// failure takes as long as a wrong password for a known user.
const TIMING_DECOY_PASSWORD: &str = "flotilla-timing-decoy";
/// Accounts kept compiled at most (misses included); the whole cache is
/// dropped when the identity revision moves, or when it is full.
const ACCOUNT_CACHE_CAPACITY: usize = 10_000;
const MILLIS_PER_SEC: u64 = 1000;

/// Accounts compiled at one identity revision.
#[derive(Default)]
struct AccountCache {
    revision: u64,
    accounts: HashMap<String, Option<Arc<Account>>>,
}

/// Authenticates requests against a [`UserDirectory`]; share it as `Arc<Authenticator>`.
pub struct Authenticator {
    directory: Arc<dyn UserDirectory>,
    verified: CredentialCache,
    /// The verification under way per credential, shared by every request
    /// that presents the same credential meanwhile.
    in_flight: Mutex<HashMap<CacheKey, Arc<OnceCell<bool>>>>,
    password_checks: Arc<Semaphore>,
    /// Argon2 verifications run so far.
    verifications: AtomicU64,
    /// (credential header, scope, request) answered `insufficient_scope` lately:
    /// see [`Authenticator::insufficient_scope_again`].
    narrow_tokens: CredentialCache,
    /// Accounts with their compiled permissions, valid for one identity revision.
    accounts: Mutex<AccountCache>,
}

impl Authenticator {
    /// An authenticator reading users and the token secret from `directory`.
    pub fn new(directory: Arc<dyn UserDirectory>) -> Self {
        Authenticator {
            directory,
            verified: CredentialCache::new(CREDENTIAL_CACHE_CAPACITY, CREDENTIAL_CACHE_TTL),
            in_flight: Mutex::new(HashMap::new()),
            password_checks: Arc::new(Semaphore::new(MAX_CONCURRENT_PASSWORD_CHECKS)),
            verifications: AtomicU64::new(0),
            narrow_tokens: CredentialCache::new(NARROW_TOKEN_CAPACITY, NARROW_TOKEN_MEMORY),
            accounts: Mutex::new(AccountCache::default()),
        }
    }

    /// The directory this authenticator reads.
    pub fn directory(&self) -> &dyn UserDirectory {
        self.directory.as_ref()
    }

    /// The caller named by `Authorization: Basic` (a password, or one of our
    /// tokens or credentials as the password), `Authorization: Bearer` or
    /// `X-JFrog-Art-Api` (a token or a credential); `None` when the request
    /// carries no credentials.
    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<Option<Principal>, AuthError> {
        match credentials::from_headers(headers)? {
            None => Ok(None),
            Some(Credentials::Basic { user, password }) => self.authenticate_basic(&user, &password).await.map(Some),
            Some(Credentials::Bearer(secret)) if secrets::looks_like_credential(&secret) => {
                self.authenticate_credential(&secret, None).map(Some)
            }
            Some(Credentials::Bearer(token)) => self.verify_token(&token).map(Some),
        }
    }

    /// Like [`Self::authenticate`], resolving "no credentials" to [`Principal::anonymous`].
    pub async fn principal(&self, headers: &HeaderMap) -> Result<Principal, AuthError> {
        match self.authenticate(headers).await? {
            Some(principal) => Ok(principal),
            None => Ok(Principal::anonymous(self.account(ANONYMOUS_USER)?)),
        }
    }

    /// The account `name` as compiled at the current identity revision: one
    /// read of the revision per call, and a compilation per account and revision.
    pub fn account(&self, name: &str) -> Result<Option<Arc<Account>>, AuthError> {
        let unavailable = |error: flotilla_model::StoreError| AuthError::Unavailable(error.to_string());
        let revision = self.directory.revision().map_err(unavailable)?;
        {
            let cache = self.accounts.lock();
            if cache.revision == revision {
                if let Some(account) = cache.accounts.get(name) {
                    return Ok(account.clone());
                }
            }
        }
        // Compiled outside the lock; a racing request may compile it too.
        let account = self.directory.account(name).map_err(unavailable)?.map(Arc::new);
        let mut cache = self.accounts.lock();
        if cache.revision != revision || cache.accounts.len() >= ACCOUNT_CACHE_CAPACITY {
            cache.accounts.clear();
            cache.revision = revision;
        }
        cache.accounts.insert(name.to_owned(), account.clone());
        Ok(account)
    }

    /// Checks a user name and password (cached for a few minutes once verified).
    /// Locked accounts and accounts without a password are refused.
    pub async fn authenticate_password(&self, user: &str, password: &str) -> Result<Principal, AuthError> {
        let account = self.account(user)?;
        let usable = |account: &&Arc<Account>| {
            let record = &account.user;
            !record.password_hash.is_empty() && !record.locked && !record.internal_password_disabled
        };
        let Some(account) = account.as_ref().filter(usable).cloned() else {
            self.check_password(None, password).await?;
            return Err(AuthError::BadCredentials);
        };
        let record = &account.user;
        let key = CredentialCache::key(user, password, &record.password_hash);
        if self.verified.contains(&key) {
            return Ok(Principal::from_account(account));
        }
        // Requests presenting the same credential while it is being verified
        // wait for that verification: a cold cache (a node's first requests,
        // a restart) met by a hundred clients at once would otherwise run
        // argon2 a hundred times, and on a small node for seconds.
        let shared = InFlight::join(&self.in_flight, key);
        let verified = *shared
            .verification
            .get_or_try_init(|| self.check_password(Some(record.password_hash.clone()), password))
            .await?;
        if !verified {
            return Err(AuthError::BadCredentials);
        }
        // Cached before the in-flight entry goes, so no request finds neither.
        self.verified.insert(key);
        drop(shared);
        Ok(Principal::from_account(account))
    }

    /// Verifies one of our tokens, refuses it if revoked, and resolves it
    /// against its user's current permissions.
    pub fn verify_token(&self, token: &str) -> Result<Principal, AuthError> {
        let secret = self.directory.token_secret().ok_or(AuthError::NoTokenSecret)?;
        let claims = token::verify(token, &secret, now_unix_secs())?;
        let revoked = self.directory.token_revoked(&claims.jti);
        if revoked.map_err(|error| AuthError::Unavailable(error.to_string()))? {
            return Err(AuthError::InvalidToken);
        }
        let account = self.account(&claims.sub)?;
        Principal::from_token(claims, account)
    }

    /// Finds a credential (app token, API key) by the hash of its secret.
    /// `user`, when the caller named one (Basic), must be its owner or `$app`.
    pub fn authenticate_credential(&self, secret: &str, user: Option<&str>) -> Result<Principal, AuthError> {
        let found = self.directory.credential(&secret_hash(secret));
        let credential = found.map_err(|error| AuthError::Unavailable(error.to_string()))?;
        let now_ms = now_unix_secs().saturating_mul(MILLIS_PER_SEC);
        let Some(credential) = credential.filter(|credential| credential.is_live(now_ms)) else {
            return Err(AuthError::BadCredentials);
        };
        if user.is_some_and(|user| user != credential.user && user != APP_USER) {
            return Err(AuthError::BadCredentials);
        }
        let account = self.account(&credential.user)?.ok_or(AuthError::BadCredentials)?;
        if account.user.locked {
            return Err(AuthError::BadCredentials);
        }
        Ok(Principal::from_credential(account, &credential))
    }

    /// Issues a token for `principal` holding, of each scope, only what it may do;
    /// a token principal's new token never outlives its own.
    pub fn issue_token(
        &self,
        principal: &Principal,
        service: &str,
        scopes: &[Scope],
        ttl: Duration,
    ) -> Result<IssuedToken, AuthError> {
        self.issue_token_at(principal, service, scopes, ttl, now_unix_secs())
    }

    pub(crate) fn issue_token_at(
        &self,
        principal: &Principal,
        service: &str,
        scopes: &[Scope],
        ttl: Duration,
        now: u64,
    ) -> Result<IssuedToken, AuthError> {
        let secret = self.directory.token_secret().ok_or(AuthError::NoTokenSecret)?;
        let mut expires_at = now.saturating_add(ttl.as_secs());
        if let Some(parent_expiry) = principal.token_expiry() {
            expires_at = expires_at.min(parent_expiry);
        }
        let claims = Claims {
            iss: ISSUER.to_owned(),
            sub: principal.name.clone(),
            aud: service.to_owned(),
            exp: expires_at,
            nbf: now,
            iat: now,
            jti: uuid::Uuid::new_v4().to_string(),
            access: scopes.iter().filter_map(|scope| principal.grant(scope)).collect(),
        };
        let token = token::sign(&claims, &secret)?;
        Ok(IssuedToken { token, expires_in: expires_at.saturating_sub(now), issued_at: rfc3339(now) })
    }

    /// Notes that the credentials of `headers` were answered `insufficient_scope`
    /// for `scope` on `request` (method and target), and says whether they
    /// already were within the last minute.
    ///
    /// A client that follows the token flow fetches a token for the challenge's
    /// scope and never presents the same too-narrow token for the same request
    /// twice; one that does (oras-py resends its cached token once, and fetches
    /// a new one only after a 403) is answered 403 with the same challenge the
    /// second time. Keys are hashes; nothing is kept in the clear.
    pub fn insufficient_scope_again(&self, headers: &HeaderMap, scope: &str, request: &str) -> bool {
        let credential = [http::header::AUTHORIZATION.as_str(), credentials::ART_API_KEY_HEADER]
            .iter()
            .find_map(|name| headers.get(*name))
            .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
            .unwrap_or_default();
        let key = CredentialCache::key(&credential, scope, request);
        if self.narrow_tokens.contains(&key) {
            return true;
        }
        self.narrow_tokens.insert(key);
        false
    }

    /// Number of cached verified credentials.
    #[cfg(test)]
    pub(crate) fn cached_credentials(&self) -> usize {
        self.verified.len()
    }

    /// Number of argon2 verifications run (decoys included).
    #[cfg(test)]
    pub(crate) fn verifications_run(&self) -> u64 {
        self.verifications.load(Ordering::Relaxed)
    }

    /// Whether no verification is registered as under way.
    #[cfg(test)]
    pub(crate) fn in_flight_is_empty(&self) -> bool {
        self.in_flight.lock().is_empty()
    }

    async fn authenticate_basic(&self, user: &str, password: &str) -> Result<Principal, AuthError> {
        if secrets::looks_like_credential(password) {
            if let Ok(principal) = self.authenticate_credential(password, Some(user)) {
                return Ok(principal);
            }
        }
        if token::looks_like_token(password) {
            if let Ok(principal) = self.verify_token(password) {
                return if principal.name == user { Ok(principal) } else { Err(AuthError::BadCredentials) };
            }
        }
        self.authenticate_password(user, password).await
    }

    /// Runs argon2 off the async threads, at most [`MAX_CONCURRENT_PASSWORD_CHECKS`]
    /// at once; `None` checks against a decoy hash and fails.
    async fn check_password(&self, phc: Option<String>, password: &str) -> Result<bool, AuthError> {
        let permit = Arc::clone(&self.password_checks)
            .acquire_owned()
            .await
            .map_err(|error| AuthError::Internal(error.to_string()))?;
        let password = password.to_owned();
        self.verifications.fetch_add(1, Ordering::Relaxed);
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            match phc {
                Some(phc) => verify_password(&phc, &password),
                None => {
                    // Spend the same time as a real check; the answer is no either way.
                    let _ = verify_password(decoy_hash(), &password);
                    false
                }
            }
        })
        .await
        .map_err(|error| AuthError::Internal(error.to_string()))
    }
}

/// A request's share of the verification of one credential; the first
/// request to finish (or to give up) takes it out of the in-flight map.
/// Requests already holding it still get its outcome; a later request finds
/// the credential cached, or (after a failure, or a verification abandoned
/// half-way) starts another.
struct InFlight<'a> {
    map: &'a Mutex<HashMap<CacheKey, Arc<OnceCell<bool>>>>,
    key: CacheKey,
    verification: Arc<OnceCell<bool>>,
}

impl<'a> InFlight<'a> {
    /// The verification of `key` under way, or a new one.
    fn join(map: &'a Mutex<HashMap<CacheKey, Arc<OnceCell<bool>>>>, key: CacheKey) -> InFlight<'a> {
        let verification = map.lock().entry(key).or_default().clone();
        InFlight { map, key, verification }
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let mut map = self.map.lock();
        if map.get(&self.key).is_some_and(|entry| Arc::ptr_eq(entry, &self.verification)) {
            map.remove(&self.key);
        }
    }
}

fn decoy_hash() -> &'static str {
    static DECOY: OnceLock<String> = OnceLock::new();
    DECOY.get_or_init(|| hash_password(TIMING_DECOY_PASSWORD))
}
