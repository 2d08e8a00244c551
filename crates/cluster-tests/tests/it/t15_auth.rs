//! Authentication as docker, skopeo and oras do it: an anonymous probe gets a
//! Bearer challenge, the client fetches a token from the realm with Basic
//! credentials and the scope it needs, then uses the token. Also Basic on every
//! request, wrong passwords, and what a token's scope does and does not open.

use anyhow::{ensure, Context};
use flotilla_cluster_tests::client::{Challenge, Reply};
use flotilla_cluster_tests::content::{random_bytes, sha256_digest, Blob, ImageManifest};
use flotilla_cluster_tests::{Credentials, OciClient, Sandbox};
use reqwest::Method;

use crate::common::{repo, with_shared, SharedSandbox};

static SANDBOX: SharedSandbox = SharedSandbox::new();

fn run(test: impl FnOnce(&Sandbox) -> anyhow::Result<()>) {
    with_shared(&SANDBOX, test);
}

/// The Bearer challenge of a 401 reply.
fn challenge(reply: &Reply) -> anyhow::Result<Challenge> {
    let header =
        reply.header("WWW-Authenticate").with_context(|| format!("{}: 401 without WWW-Authenticate", reply.request))?;
    let challenge = Challenge::parse(header).with_context(|| format!("unparsable challenge {header:?}"))?;
    ensure!(challenge.scheme == "Bearer", "challenge scheme {:?} in {header:?}", challenge.scheme);
    Ok(challenge)
}

/// Fails unless `reply` refuses access: 401 with a challenge, or 403 DENIED.
fn expect_refused(reply: Reply) -> anyhow::Result<()> {
    match reply.status {
        401 => {
            challenge(&reply)?;
            reply.expect_error(401, "UNAUTHORIZED").map(drop)
        }
        403 => reply.expect_error(403, "DENIED").map(drop),
        _ => anyhow::bail!("{}: expected 401 or 403, got {}", reply.request, reply.summary()),
    }
}

fn anonymous(sandbox: &Sandbox) -> OciClient {
    sandbox.client().with_credentials(Credentials::Anonymous)
}

#[test]
fn anonymous_probe_of_v2_is_challenged_with_the_token_realm() {
    run(|sandbox| {
        let reply = anonymous(sandbox).ping()?.expect_error(401, "UNAUTHORIZED")?;
        let challenge = challenge(&reply)?;
        let realm = format!("http://{}/v2/token", sandbox.node(0).host());
        assert_eq!(challenge.param("realm"), Some(realm.as_str()));
        assert_eq!(challenge.param("service"), Some("flotilla"));
        Ok(())
    });
}

#[test]
fn anonymous_repository_requests_are_challenged_with_the_pull_scope() {
    run(|sandbox| {
        let name = repo("t15", "anon-pull");
        let client = sandbox.client();
        client.push_blob_monolithic(&name, b"content")?;
        let anonymous = anonymous(sandbox);
        let expected_scope = format!("repository:{name}:pull");
        let replies = [
            anonymous.get_manifest(&name, "latest")?,
            anonymous.get_blob(&name, &sha256_digest(b"content"))?,
            anonymous.tags_list(&name, "")?,
        ];
        for reply in replies {
            let reply = reply.expect_status(401)?;
            let challenge = challenge(&reply)?;
            assert_eq!(challenge.param("scope"), Some(expected_scope.as_str()), "{}", reply.request);
            assert_eq!(challenge.param("service"), Some("flotilla"));
        }
        let head = anonymous.head_blob(&name, &sha256_digest(b"content"))?.expect_status(401)?;
        challenge(&head)?;
        let push = anonymous.start_upload(&name)?.expect_status(401)?;
        let scope = challenge(&push)?.param("scope").unwrap_or_default().to_owned();
        ensure!(scope.starts_with(&format!("repository:{name}:")), "push challenge scope {scope:?}");
        Ok(())
    });
}

#[test]
fn anonymous_requests_store_nothing() {
    run(|sandbox| {
        let name = repo("t15", "anon-push");
        let bytes = random_bytes(100);
        let digest = sha256_digest(&bytes);
        expect_refused(anonymous(sandbox).post_monolithic(&name, &digest, &bytes)?)?;
        sandbox.client().head_blob(&name, &digest)?.expect_status(404)?;
        Ok(())
    });
}

#[test]
fn wrong_password_and_unknown_user_are_unauthorized() {
    run(|sandbox| {
        let name = repo("t15", "bad-password");
        let good = sandbox.client();
        good.push_blob_monolithic(&name, b"x")?;
        for credentials in [
            Credentials::Basic { user: "admin".into(), password: "wrong".into() },
            Credentials::Basic { user: "admin".into(), password: String::new() },
            Credentials::Basic { user: "nobody".into(), password: sandbox.admin_password().into() },
        ] {
            let client = good.with_credentials(credentials.clone());
            client.ping()?.expect_error(401, "UNAUTHORIZED").with_context(|| format!("{credentials:?}"))?;
            client.get_blob(&name, &sha256_digest(b"x"))?.expect_error(401, "UNAUTHORIZED")?;
            let token = client.token(&format!("?service=flotilla&scope=repository:{name}:pull"))?;
            token.expect_status(401).with_context(|| format!("token for {credentials:?}"))?;
            let bytes = random_bytes(10);
            expect_refused(client.post_monolithic(&name, &sha256_digest(&bytes), &bytes)?)?;
            good.head_blob(&name, &sha256_digest(&bytes))?.expect_status(404)?;
        }
        Ok(())
    });
}

#[test]
fn garbage_and_tampered_bearer_tokens_are_unauthorized() {
    run(|sandbox| {
        let name = repo("t15", "bad-token");
        let client = sandbox.client();
        client.push_blob_monolithic(&name, b"y")?;
        let real = client.bearer_client(&[&format!("repository:{name}:pull")])?;
        let Credentials::Bearer(token) = real.credentials().clone() else { unreachable!() };
        let mut tampered = token.clone().into_bytes();
        let middle = tampered.len() / 2;
        tampered[middle] = if tampered[middle] == b'A' { b'B' } else { b'A' };
        for bad in ["not-a-token".to_owned(), String::from_utf8(tampered)?, format!("{token}x")] {
            let reply = client.with_credentials(Credentials::Bearer(bad)).get_blob(&name, &sha256_digest(b"y"))?;
            challenge(&reply.expect_error(401, "UNAUTHORIZED")?)?;
        }
        real.get_blob(&name, &sha256_digest(b"y"))?.expect_status(200)?;
        Ok(())
    });
}

#[test]
fn docker_style_token_flow_pushes_and_pulls() {
    run(|sandbox| {
        let name = repo("t15", "token-flow");
        let basic = sandbox.client();
        // 1. Probe: 401 with a challenge naming the realm.
        let probe = anonymous(sandbox).call(Method::GET, &format!("/v2/{name}/blobs/uploads/"))?;
        let realm = challenge(&probe)?.param("realm").context("realm")?.to_owned();
        // 2. Token from the realm with Basic credentials and the scope we need.
        let url = format!("{realm}?service=flotilla&scope=repository:{name}:pull,push");
        let reply = basic.call(Method::GET, &url)?.expect_status(200)?;
        let body = reply.json()?;
        let token = body["token"].as_str().context("`token`")?.to_owned();
        ensure!(!token.is_empty(), "empty token");
        ensure!(body["access_token"].as_str().is_some_and(|t| !t.is_empty()), "`access_token` missing: {body}");
        ensure!(body["expires_in"].as_u64().is_some_and(|s| s > 0), "`expires_in` must be a positive number: {body}");
        ensure!(body["issued_at"].as_str().is_some_and(|s| s.contains('T')), "`issued_at` must be RFC 3339: {body}");
        // 3. The token alone pushes and pulls.
        let bearer = basic.with_credentials(Credentials::Bearer(token));
        bearer.ping()?.expect_status(200)?;
        let config = Blob::random_config();
        let layer = Blob::random_layer(50_000);
        bearer.push_blob_monolithic(&name, &config.bytes)?;
        bearer.push_blob_chunked(&name, &layer.bytes, 20_000)?;
        let manifest = ImageManifest::new(&config, &[&layer]).build();
        bearer.push_manifest(&name, "v1", &manifest)?;
        assert_eq!(bearer.get_manifest(&name, "v1")?.expect_status(200)?.body, manifest.bytes);
        assert!(bearer.get_blob(&name, &layer.digest)?.expect_status(200)?.body == layer.bytes);
        bearer.tags_list(&name, "")?.expect_status(200)?;
        // access_token works the same way.
        let access =
            basic.with_credentials(Credentials::Bearer(body["access_token"].as_str().unwrap_or_default().into()));
        access.head_manifest(&name, "v1")?.expect_status(200)?;
        Ok(())
    });
}

#[test]
fn pull_only_token_cannot_push() {
    run(|sandbox| {
        let name = repo("t15", "pull-only");
        let admin = sandbox.client();
        let config = Blob::random_config();
        admin.push_blob_monolithic(&name, &config.bytes)?;
        let manifest = ImageManifest::new(&config, &[]).build();
        admin.push_manifest(&name, "v1", &manifest)?;

        let reader = admin.bearer_client(&[&format!("repository:{name}:pull")])?;
        reader.get_manifest(&name, "v1")?.expect_status(200)?;
        let bytes = random_bytes(64);
        expect_refused(reader.post_monolithic(&name, &sha256_digest(&bytes), &bytes)?)?;
        expect_refused(reader.start_upload(&name)?)?;
        let other = ImageManifest::new(&config, &[]).annotation("x", "y").build();
        expect_refused(reader.put_manifest(&name, "v2", &other.media_type, &other.bytes)?)?;
        expect_refused(reader.delete_manifest(&name, "v1")?)?;
        admin.head_blob(&name, &sha256_digest(&bytes))?.expect_status(404)?;
        admin.get_manifest(&name, "v2")?.expect_status(404)?;
        admin.get_manifest(&name, "v1")?.expect_status(200)?;
        Ok(())
    });
}

#[test]
fn token_scoped_to_one_repository_does_not_open_another() {
    run(|sandbox| {
        let mine = repo("t15", "mine");
        let theirs = repo("t15", "theirs");
        let admin = sandbox.client();
        let digest = admin.push_blob_monolithic(&theirs, b"secret")?;
        let token = admin.bearer_client(&[&format!("repository:{mine}:pull,push")])?;
        token.push_blob_monolithic(&mine, b"mine")?;
        expect_refused(token.get_blob(&theirs, &digest)?)?;
        expect_refused(token.tags_list(&theirs, "")?)?;
        let bytes = random_bytes(32);
        expect_refused(token.post_monolithic(&theirs, &sha256_digest(&bytes), &bytes)?)?;
        admin.head_blob(&theirs, &sha256_digest(&bytes))?.expect_status(404)?;
        Ok(())
    });
}

#[test]
fn token_without_scope_opens_only_the_base_endpoint() {
    run(|sandbox| {
        let name = repo("t15", "unscoped");
        let admin = sandbox.client();
        let digest = admin.push_blob_monolithic(&name, b"z")?;
        let unscoped = admin.bearer_client(&[])?;
        unscoped.ping()?.expect_status(200)?;
        expect_refused(unscoped.get_blob(&name, &digest)?)?;
        Ok(())
    });
}

#[test]
fn several_scope_parameters_grant_each_as_docker_mount_needs() {
    run(|sandbox| {
        let source = repo("t15", "mount-from");
        let target = repo("t15", "mount-to");
        let admin = sandbox.client();
        let bytes = random_bytes(2000);
        let digest = admin.push_blob_monolithic(&source, &bytes)?;
        let token =
            admin.bearer_client(&[&format!("repository:{target}:pull,push"), &format!("repository:{source}:pull")])?;
        token.mount(&target, &digest, Some(&source))?.expect_status(201)?;
        assert!(token.get_blob(&target, &digest)?.expect_status(200)?.body == bytes);
        Ok(())
    });
}

#[test]
fn anonymous_token_request_grants_nothing() {
    run(|sandbox| {
        let name = repo("t15", "anon-token");
        let admin = sandbox.client();
        let digest = admin.push_blob_monolithic(&name, b"private")?;
        let reply = anonymous(sandbox).token(&format!("?service=flotilla&scope=repository:{name}:pull"))?;
        match reply.status {
            401 => {
                reply.expect_oci_error_body()?;
            }
            200 => {
                let token = reply.json()?["token"].as_str().context("token")?.to_owned();
                expect_refused(admin.with_credentials(Credentials::Bearer(token)).get_blob(&name, &digest)?)?;
            }
            _ => anyhow::bail!(
                "anonymous token request: expected 401, or 200 with a powerless token; got {}",
                reply.summary()
            ),
        }
        Ok(())
    });
}
