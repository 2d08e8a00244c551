//! A generic token client, as containerd, oras and crane behave: it follows
//! `WWW-Authenticate: Bearer` challenges, fetches a token from the realm for
//! the challenge's service and scope, caches it per repository, and on a 401
//! retries once with a token for the scope the challenge names (the
//! `error="insufficient_scope"` answer to a cached token that is too narrow).
//!
//! The node runs with `anonymous_read`, so the `anonymous` account is a real
//! read-only account: its tokens are cut down to pull, and it is never told to
//! fetch a wider one it cannot get.

use std::cell::RefCell;
use std::collections::HashMap;

use anyhow::{ensure, Context};
use flotilla_cluster_tests::client::{string_array, Challenge, Reply};
use flotilla_cluster_tests::content::{Blob, ImageManifest};
use flotilla_cluster_tests::{Credentials, OciClient, Sandbox};
use reqwest::Method;

use crate::common::{repo, run_printing_logs, SharedSandbox};

static SANDBOX: SharedSandbox = SharedSandbox::new();

fn run(test: impl FnOnce(&Sandbox) -> anyhow::Result<()>) {
    let started = SANDBOX.get_or_init(|| {
        Sandbox::builder().env("FLOTILLA_ANONYMOUS_READ", "true").build().map_err(|error| format!("{error:#}"))
    });
    match started {
        Ok(sandbox) => run_printing_logs(sandbox, test),
        Err(error) => panic!("the sandbox did not start: {error}"),
    }
}

/// The conformance suite's "nonexistent manifest": not a valid tag.
const INVALID_REFERENCE: &str = ".INVALID_MANIFEST_NAME";
/// The cache key of registry-level requests (`/v2/`, the catalog).
const REGISTRY: &str = "";

/// One request the client sent, as the test later checks the conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Exchange {
    /// `GET /v2/...`, or `TOKEN <scope>` for a token fetch.
    request: String,
    status: u16,
    /// The `error` parameter of a 401's Bearer challenge.
    challenge_error: Option<String>,
}

/// The token client. Tokens are fetched with `login` (HTTP Basic) or
/// anonymously, and kept per repository.
struct TokenClient {
    http: OciClient,
    login: Credentials,
    tokens: RefCell<HashMap<String, String>>,
    log: RefCell<Vec<Exchange>>,
}

impl TokenClient {
    fn new(sandbox: &Sandbox, login: Credentials) -> TokenClient {
        TokenClient {
            http: sandbox.client().with_credentials(Credentials::Anonymous),
            login,
            tokens: RefCell::new(HashMap::new()),
            log: RefCell::new(Vec::new()),
        }
    }

    /// Sends a request on `key`'s behalf (a repository, or [`REGISTRY`]) with
    /// the cached token if any; on a 401 with a Bearer challenge fetches a
    /// token for the challenge's scope and sends the request once more.
    fn send(&self, key: &str, request: impl Fn(&OciClient) -> anyhow::Result<Reply>) -> anyhow::Result<Reply> {
        let mut retried = false;
        loop {
            let credentials = match self.tokens.borrow().get(key) {
                Some(token) => Credentials::Bearer(token.clone()),
                None => Credentials::Anonymous,
            };
            let reply = request(&self.http.with_credentials(credentials))?;
            let challenge = bearer_challenge(&reply);
            self.record(&reply.request, reply.status, challenge.as_ref());
            match challenge {
                Some(challenge) if reply.status == 401 && !retried => {
                    let token = self.fetch_token(&challenge)?;
                    self.tokens.borrow_mut().insert(key.to_owned(), token);
                    retried = true;
                }
                _ => return Ok(reply),
            }
        }
    }

    /// `GET <realm>?service=…&scope=…` with the login credentials.
    fn fetch_token(&self, challenge: &Challenge) -> anyhow::Result<String> {
        let realm = challenge.param("realm").context("challenge without realm")?;
        let service = challenge.param("service").context("challenge without service")?;
        let scope = challenge.param("scope");
        let mut url = format!("{realm}?service={service}");
        if let Some(scope) = scope {
            url.push_str(&format!("&scope={scope}"));
        }
        let reply = self.http.with_credentials(self.login.clone()).call(Method::GET, &url)?;
        self.record(&format!("TOKEN {}", scope.unwrap_or("-")), reply.status, None);
        let reply = reply.expect_status(200)?;
        Ok(reply.json()?["token"].as_str().context("token response without `token`")?.to_owned())
    }

    /// Fetches a token for `scope` as a challenge naming it would, and caches it for `key`.
    fn cache_token(&self, key: &str, scope: &str) -> anyhow::Result<()> {
        let realm = format!("{}/v2/token", self.http.base_url());
        let challenge = Challenge::parse(&format!(r#"Bearer realm="{realm}",service="flotilla",scope="{scope}""#))
            .context("parsing a challenge")?;
        let token = self.fetch_token(&challenge)?;
        self.tokens.borrow_mut().insert(key.to_owned(), token);
        Ok(())
    }

    fn record(&self, request: &str, status: u16, challenge: Option<&Challenge>) {
        let request = request.replace(self.http.base_url(), "");
        let challenge_error = challenge.and_then(|challenge| challenge.param("error")).map(str::to_owned);
        self.log.borrow_mut().push(Exchange { request, status, challenge_error });
    }

    /// The exchanges since the last call, for a test to check.
    fn take_log(&self) -> Vec<Exchange> {
        std::mem::take(&mut *self.log.borrow_mut())
    }

    fn get_manifest(&self, name: &str, reference: &str) -> anyhow::Result<Reply> {
        self.send(name, |client| client.get_manifest(name, reference))
    }

    fn head_manifest(&self, name: &str, reference: &str) -> anyhow::Result<Reply> {
        self.send(name, |client| client.head_manifest(name, reference))
    }

    fn delete_manifest(&self, name: &str, reference: &str) -> anyhow::Result<Reply> {
        self.send(name, |client| client.delete_manifest(name, reference))
    }

    fn push_image(&self, name: &str, tag: &str) -> anyhow::Result<String> {
        let config = Blob::random_config();
        self.send(name, |client| client.post_monolithic(name, &config.digest, &config.bytes))?.expect_status(201)?;
        let manifest = ImageManifest::new(&config, &[]).build();
        self.send(name, |client| client.put_manifest(name, tag, &manifest.media_type, &manifest.bytes))?
            .expect_status(201)?;
        Ok(manifest.digest)
    }
}

fn bearer_challenge(reply: &Reply) -> Option<Challenge> {
    let challenge = Challenge::parse(reply.header("WWW-Authenticate")?)?;
    (challenge.scheme == "Bearer").then_some(challenge)
}

fn admin_login(sandbox: &Sandbox) -> Credentials {
    sandbox.admin_credentials()
}

fn exchange(request: &str, status: u16, challenge_error: Option<&str>) -> Exchange {
    Exchange { request: request.to_owned(), status, challenge_error: challenge_error.map(str::to_owned) }
}

#[test]
fn delete_after_a_push_with_a_cached_token_widens_the_token_once() {
    run(|sandbox| {
        let name = repo("t16", "delete-after-push");
        let client = TokenClient::new(sandbox, admin_login(sandbox));
        let digest = client.push_image(&name, "v1")?;
        let push = client.take_log();
        ensure!(
            push.iter().filter(|e| e.request.starts_with("TOKEN")).count() == 1,
            "one token (pull,push) for the whole push: {push:#?}"
        );
        ensure!(push.iter().any(|e| e.request == format!("TOKEN repository:{name}:pull,push")), "{push:#?}");

        let reply = client.delete_manifest(&name, &digest)?;
        reply.expect_status(202)?;
        let path = format!("/v2/{name}/manifests/{digest}");
        assert_eq!(
            client.take_log(),
            vec![
                exchange(&format!("DELETE {path}"), 401, Some("insufficient_scope")),
                exchange(&format!("TOKEN repository:{name}:delete"), 200, None),
                exchange(&format!("DELETE {path}"), 202, None),
            ]
        );

        // The delete-only token is too narrow for a pull: one more widening, then the answer.
        client.get_manifest(&name, &digest)?.expect_error(404, "MANIFEST_UNKNOWN")?;
        let log = client.take_log();
        assert_eq!(log.len(), 3, "{log:#?}");
        assert_eq!(log[0].challenge_error.as_deref(), Some("insufficient_scope"));
        assert_eq!(log[1].request, format!("TOKEN repository:{name}:pull"));
        Ok(())
    });
}

#[test]
fn insufficient_scope_answer_is_401_unauthorized_with_the_needed_scope() {
    run(|sandbox| {
        let name = repo("t16", "answer-shape");
        let admin = sandbox.client();
        let digest = TokenClient::new(sandbox, admin_login(sandbox)).push_image(&name, "v1")?;
        let pull = admin.bearer_client(&[&format!("repository:{name}:pull")])?;
        let reply = pull.delete_manifest(&name, &digest)?.expect_error(401, "UNAUTHORIZED")?;
        let challenge = bearer_challenge(&reply).context("no Bearer challenge")?;
        assert_eq!(challenge.param("scope"), Some(format!("repository:{name}:delete").as_str()));
        assert_eq!(challenge.param("error"), Some("insufficient_scope"));
        assert_eq!(challenge.param("service"), Some("flotilla"));
        let detail = &reply.json()?["errors"][0]["detail"];
        assert_eq!(detail[0]["Type"], "repository");
        assert_eq!(detail[0]["Name"], name.as_str());
        assert_eq!(detail[0]["Action"], "delete");
        // The same token sent as a Basic password is answered the same way.
        let Credentials::Bearer(token) = pull.credentials().clone() else { unreachable!() };
        let basic = admin.with_credentials(Credentials::Basic { user: "admin".into(), password: token });
        let reply = basic.delete_manifest(&name, &digest)?.expect_error(401, "UNAUTHORIZED")?;
        let challenge = bearer_challenge(&reply).context("no Bearer challenge for the Basic token")?;
        assert_eq!(challenge.param("error"), Some("insufficient_scope"));
        // A client that resends the same token on the same request (oras-py
        // does, and fetches a new token only after a 403) gets 403 with the
        // same challenge the second time.
        let again = pull.delete_manifest(&name, &digest)?.expect_error(403, "DENIED")?;
        let challenge = bearer_challenge(&again).context("no Bearer challenge on the repeated request")?;
        assert_eq!(challenge.param("error"), Some("insufficient_scope"));
        assert_eq!(challenge.param("scope"), Some(format!("repository:{name}:delete").as_str()));
        admin.head_manifest(&name, &digest)?.expect_status(200)?;
        Ok(())
    });
}

#[test]
fn read_only_account_is_refused_without_a_retry_loop() {
    run(|sandbox| {
        let name = repo("t16", "read-only");
        let digest = TokenClient::new(sandbox, admin_login(sandbox)).push_image(&name, "v1")?;
        let reader = TokenClient::new(sandbox, Credentials::Anonymous);

        // A cached pull token (anonymous pulls need none, but a client may hold one).
        reader.cache_token(&name, &format!("repository:{name}:pull"))?;
        reader.get_manifest(&name, "v1")?.expect_status(200)?;
        assert_eq!(reader.take_log().len(), 2, "the token fetch and one GET");

        // Delete: the account may not, so no challenge says insufficient_scope;
        // the client's one retry with the token it can get ends it.
        let reply = reader.delete_manifest(&name, &digest)?;
        reply.expect_error(401, "UNAUTHORIZED")?;
        let log = reader.take_log();
        let path = format!("/v2/{name}/manifests/{digest}");
        assert_eq!(
            log,
            vec![
                exchange(&format!("DELETE {path}"), 401, None),
                exchange(&format!("TOKEN repository:{name}:delete"), 200, None),
                exchange(&format!("DELETE {path}"), 401, None),
            ]
        );
        // The account's next pull still works with what it has.
        reader.get_manifest(&name, &digest)?.expect_status(200)?;
        sandbox.client().head_manifest(&name, &digest)?.expect_status(200)?;
        Ok(())
    });
}

#[test]
fn catalog_challenge_names_the_catalog_scope_and_the_token_lists() {
    run(|sandbox| {
        let admin = sandbox.client();
        let names = [repo("t16", "catalog-a"), repo("t16", "catalog-b")];
        for name in &names {
            admin.push_blob_monolithic(name, name.as_bytes())?;
        }
        let client = TokenClient::new(sandbox, admin_login(sandbox));
        // The probe first: a token without scope, cached for registry-level requests.
        client.send(REGISTRY, |http| http.ping())?.expect_status(200)?;
        let listed = client.send(REGISTRY, |http| http.catalog("?n=1000"))?.expect_status(200)?;
        let repositories = string_array(&listed.json()?, "repositories");
        for name in &names {
            ensure!(repositories.contains(name), "{name} not listed in {repositories:?}");
        }
        assert_eq!(
            client.take_log(),
            vec![
                exchange("GET /v2/", 401, None),
                exchange("TOKEN -", 200, None),
                exchange("GET /v2/", 200, None),
                exchange("GET /v2/_catalog?n=1000", 401, Some("insufficient_scope")),
                exchange("TOKEN registry:catalog:*", 200, None),
                exchange("GET /v2/_catalog?n=1000", 200, None),
            ]
        );

        // No token yet: the plain challenge also names the catalog scope.
        let fresh = TokenClient::new(sandbox, admin_login(sandbox));
        let listed = fresh.send(REGISTRY, |http| http.catalog("?n=1000"))?.expect_status(200)?;
        ensure!(string_array(&listed.json()?, "repositories").contains(&names[0]));
        assert_eq!(fresh.take_log()[1], exchange("TOKEN registry:catalog:*", 200, None));

        // The anonymous account may not list: asked to authenticate, once.
        let anonymous = TokenClient::new(sandbox, Credentials::Anonymous);
        anonymous.send(REGISTRY, |http| http.catalog(""))?.expect_error(401, "UNAUTHORIZED")?;
        let log = anonymous.take_log();
        assert_eq!(log.len(), 3, "{log:#?}");
        ensure!(log.iter().all(|e| e.challenge_error.is_none()), "{log:#?}");
        Ok(())
    });
}

#[test]
fn invalid_manifest_reference_is_manifest_unknown() {
    run(|sandbox| {
        let name = repo("t16", "invalid-reference");
        let client = TokenClient::new(sandbox, admin_login(sandbox));
        client.push_image(&name, "v1")?;
        client.get_manifest(&name, INVALID_REFERENCE)?.expect_error(404, "MANIFEST_UNKNOWN")?;
        client.head_manifest(&name, INVALID_REFERENCE)?.expect_status(404)?;
        client.delete_manifest(&name, INVALID_REFERENCE)?.expect_error(404, "MANIFEST_UNKNOWN")?;
        let admin = sandbox.client();
        admin.get_manifest(&name, INVALID_REFERENCE)?.expect_error(404, "MANIFEST_UNKNOWN")?;
        admin.head_manifest(&name, INVALID_REFERENCE)?.expect_status(404)?;
        admin.get_manifest(&name, "sha256:not-hex")?.expect_error(404, "MANIFEST_UNKNOWN")?;
        // Nothing can be pushed under such a name.
        let config = Blob::random_config();
        admin.push_blob_monolithic(&name, &config.bytes)?;
        let manifest = ImageManifest::new(&config, &[]).build();
        admin
            .put_manifest(&name, INVALID_REFERENCE, &manifest.media_type, &manifest.bytes)?
            .expect_error(400, "MANIFEST_INVALID")?;
        admin.head_manifest(&name, &manifest.digest)?.expect_status(404)?;
        // Unauthenticated writers are still challenged before anything else.
        let anonymous = admin.with_credentials(Credentials::Anonymous);
        anonymous.delete_manifest(&name, INVALID_REFERENCE)?.expect_error(401, "UNAUTHORIZED")?;
        Ok(())
    });
}
