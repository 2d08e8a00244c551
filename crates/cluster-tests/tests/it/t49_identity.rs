//! One account model on every node and every surface, on a 3-node cluster:
//!
//! - pyartifactory creates a group, a user in it and a v2 permission target
//!   through one node; the OCI registry of the other nodes then lets that user
//!   read and nothing more; a v1 permission change through another node lets
//!   it push; deleting the user shuts it out everywhere.
//! - Quay app tokens: created with a registry access token (Bearer), used as
//!   a registry password by skopeo (`--creds user:token` and `$app:token`)
//!   and docker (`docker login`) on other nodes, refused on every node within
//!   seconds of revocation; an app token cannot mint app tokens; a missing or
//!   non-string title is a 400 in Quay's error shape.

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use flotilla_cluster_tests::content::{Blob, ImageManifest};
use flotilla_cluster_tests::tools;
use flotilla_cluster_tests::{Credentials, OciClient, Sandbox};
use reqwest::Method;
use serde_json::Value;

use crate::common::{repo, with_shared_cluster, SharedSandbox};
use crate::t22_docker::{docker, docker_available};

static CLUSTER: SharedSandbox = SharedSandbox::new();

/// How long a revocation may take to reach every node.
const REVOCATION_DEADLINE: Duration = Duration::from_secs(5);

fn run(test: impl FnOnce(&Sandbox) -> anyhow::Result<()>) {
    with_shared_cluster(&CLUSTER, 3, test);
}

fn basic(user: &str, password: &str) -> Credentials {
    Credentials::Basic { user: user.into(), password: password.into() }
}

/// Pushes a one-layer image as `client` and returns its manifest digest.
fn push_image(client: &OciClient, name: &str, tag: &str) -> anyhow::Result<String> {
    let config = Blob::random_config();
    let layer = Blob::random_layer(2048);
    client.push_blob_monolithic(name, &config.bytes)?;
    client.push_blob_monolithic(name, &layer.bytes)?;
    let manifest = ImageManifest::new(&config, &[&layer]).build();
    client.push_manifest(name, tag, &manifest)?.expect_status(201)?;
    Ok(manifest.digest.clone())
}

/// Runs a Python script with pyartifactory against `base` (a node's URL) as admin.
fn pyartifactory(sandbox: &Sandbox, base: &str, script: &str) -> anyhow::Result<String> {
    let mut probe = Command::new("python3");
    probe.args(["-c", "import pyartifactory"]);
    let probed = tools::run(probe, Duration::from_secs(60))?;
    ensure!(
        probed.code == Some(0),
        "python3 cannot import pyartifactory; install it with `python3 -m pip install pyartifactory==2.11.2` \
         (scripts/deps.sh does)"
    );
    let prelude = "import json, os\n\
        from pyartifactory import Artifactory\n\
        from pyartifactory.models import NewUser, Group, PermissionV2\n\
        from pyartifactory.models.permission import RepoV2, PrincipalsPermissionV2\n\
        art = Artifactory(url=os.environ['BASE'] + '/artifactory', auth=('admin', os.environ['ADMIN_PASSWORD']), api_version=2)\n";
    let mut command = Command::new("python3");
    command
        .arg("-c")
        .arg(format!("{prelude}{script}"))
        .env("BASE", base)
        .env("ADMIN_PASSWORD", sandbox.admin_password());
    let finished = tools::run(command, Duration::from_secs(120))?.expect_success()?;
    Ok(finished.stdout.trim().to_owned())
}

#[test]
fn artifactory_admin_api_restricts_the_registry_on_every_node() {
    run(|sandbox| {
        let suffix = flotilla_cluster_tests::content::unique_suffix();
        let (group, user, target) =
            (format!("t49-devs-{suffix}"), format!("t49-carol-{suffix}"), format!("t49-read-{suffix}"));
        let repository = format!("t49{suffix}");
        let name = format!("{repository}/app");
        let admin = sandbox.node(0).client(sandbox.admin_credentials());
        let digest = push_image(&admin, &name, "v1")?;

        let created = pyartifactory(
            sandbox,
            &sandbox.node(0).base_url(),
            &format!(
                "art.groups.create(Group(name='{group}', description='t49 developers'))\n\
                 art.users.create(NewUser(name='{user}', password='carol-pw-1', email='carol@example.com', groups=['{group}']))\n\
                 actions = PrincipalsPermissionV2(groups={{'{group}': ['read']}})\n\
                 art.permissions.create(PermissionV2(name='{target}', repo=RepoV2(repositories=['{repository}'], actions=actions, includePatterns=['**'], excludePatterns=[])))\n\
                 got = art.users.get('{user}')\n\
                 permission = art.permissions.get('{target}')\n\
                 print(json.dumps({{'groups': got.groups, 'email': got.email, 'users': [u.name for u in art.users.list()], \
                 'repos': permission.repo.repositories, 'members': art.groups.get('{group}').userNames}}))"
            ),
        )?;
        let created: Value = serde_json::from_str(&created).context("pyartifactory printed no JSON")?;
        assert_eq!(created["groups"], serde_json::json!([group]));
        assert_eq!(created["email"], "carol@example.com");
        assert_eq!(created["repos"], serde_json::json!([repository]));
        assert_eq!(created["members"], serde_json::json!([user]));
        ensure!(created["users"].as_array().is_some_and(|users| users.iter().any(|u| u == &Value::from(user.clone()))));

        // Read through the group's target, on the other nodes; nothing more.
        for node in [1, 2] {
            let carol = sandbox.node(node).client(basic(&user, "carol-pw-1"));
            carol.get_manifest(&name, "v1")?.expect_status(200)?;
            carol.get_manifest(&name, &digest)?.expect_status(200)?;
            carol.start_upload(&name)?.expect_error(403, "DENIED")?;
            carol.call(Method::DELETE, &format!("/v2/{name}/manifests/{digest}"))?.expect_error(403, "DENIED")?;
            let elsewhere = format!("t49other{suffix}/app");
            carol.get_manifest(&elsewhere, "v1")?.expect_error(403, "DENIED")?;
        }

        // A v1 change through node 1 (the user gets deploy) lets it push on node 2.
        let v1 = serde_json::json!({
            "name": target, "includesPattern": "**", "excludesPattern": "", "repositories": [repository],
            "principals": {"users": {user.clone(): ["r", "w"]}, "groups": {group.clone(): ["r"]}},
        });
        let admin1 = sandbox.node(1).client(sandbox.admin_credentials());
        let put = admin1.request(Method::PUT, &format!("/artifactory/api/security/permissions/{target}"));
        admin1.send(put.header("content-type", "application/json").body(v1.to_string()))?.expect_status(200)?;
        let got = admin1
            .call(Method::GET, &format!("/artifactory/api/security/permissions/{target}"))?
            .expect_status(200)?
            .json()?;
        assert_eq!(got["principals"]["users"][&user], serde_json::json!(["r", "w"]));
        let carol2 = sandbox.node(2).client(basic(&user, "carol-pw-1"));
        push_image(&carol2, &name, "v2")?;

        // Deleted through node 2: refused on node 0 at once (reads are linearizable, the check is per request).
        let admin2 = sandbox.node(2).client(sandbox.admin_credentials());
        admin2.call(Method::DELETE, &format!("/artifactory/api/security/users/{user}"))?.expect_status(200)?;
        sandbox.node(0).client(basic(&user, "carol-pw-1")).get_manifest(&name, "v1")?.expect_status(401)?;
        let gone =
            admin.call(Method::GET, &format!("/artifactory/api/security/users/{user}"))?.expect_status(404)?.json()?;
        assert_eq!(gone["errors"][0]["status"], 404);
        Ok(())
    });
}

/// A registry access token of `user` from the node's token endpoint.
fn access_token(client: &OciClient) -> anyhow::Result<String> {
    let reply = client.call(Method::GET, "/v2/token?service=flotilla")?.expect_status(200)?;
    Ok(reply.json()?["token"].as_str().context("no token")?.to_owned())
}

fn create_app_token(client: &OciClient, body: &str) -> anyhow::Result<flotilla_cluster_tests::client::Reply> {
    let request = client.request(Method::POST, "/api/v1/user/apptoken");
    client.send(request.header("content-type", "application/json").body(body.to_owned()))
}

fn skopeo(args: &[&str]) -> anyhow::Result<tools::Finished> {
    tools::require_executable("/usr/bin/skopeo", "install skopeo (scripts/deps.sh does)")?;
    let mut command = Command::new("/usr/bin/skopeo");
    command.arg("--insecure-policy").args(args);
    tools::run(command, Duration::from_secs(120))
}

#[test]
fn app_tokens_are_registry_passwords_on_every_node_until_revoked() {
    run(|sandbox| {
        let admin = sandbox.node(0).client(sandbox.admin_credentials());
        let bearer = sandbox.node(0).client(Credentials::Bearer(access_token(&admin)?));
        let created = create_app_token(&bearer, r#"{"title": "ci"}"#)?.expect_status(201)?.json()?;
        let token = &created["token"];
        assert_eq!(token["title"], "ci");
        assert!(token["last_accessed"].is_null() && token["expiration"].is_null());
        let created_at = token["created"].as_str().context("created")?;
        ensure!(created_at.ends_with(" -0000") && created_at.len() == 31, "created is RFC 2822: {created_at:?}");
        let uuid = token["uuid"].as_str().context("uuid")?.to_owned();
        let secret = token["token_code"].as_str().context("token_code")?.to_owned();

        // Shown once: listings and gets never carry the value.
        let listed = bearer.call(Method::GET, "/api/v1/user/apptoken")?.expect_status(200)?.json()?;
        let tokens = listed["tokens"].as_array().context("tokens")?;
        ensure!(tokens.iter().any(|t| t["uuid"] == uuid.as_str() && t.get("token_code").is_none()), "{listed}");
        let one = bearer.call(Method::GET, &format!("/api/v1/user/apptoken/{uuid}"))?.expect_status(200)?.json()?;
        assert_eq!(one["token"]["uuid"], uuid.as_str());

        // Bad input in Quay's shape; an app token cannot mint app tokens.
        for body in [r#"{}"#, r#"{"title": 7}"#, "not json"] {
            let refused = create_app_token(&bearer, body)?.expect_status(400)?.json()?;
            assert_eq!(refused["status"], 400);
            ensure!(refused["error_message"].is_string() && refused["error_type"] == "invalid_request", "{refused}");
        }
        let with_app_token = sandbox.node(1).client(basic("$app", &secret));
        create_app_token(&with_app_token, r#"{"title": "more"}"#)?.expect_status(403)?;
        create_app_token(&sandbox.node(1).client(Credentials::Anonymous), r#"{"title": "x"}"#)?.expect_status(401)?;

        // A registry password on the other nodes: skopeo as user:token and $app:token.
        let name = repo("t49", "apptoken");
        push_image(&admin, &name, "v1")?;
        let (host1, host2) = (sandbox.node(1).host(), sandbox.node(2).host());
        let copied = skopeo(&[
            "copy",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            "--src-creds",
            &format!("admin:{secret}"),
            "--dest-creds",
            &format!("admin:{secret}"),
            &format!("docker://{host1}/{name}:v1"),
            &format!("docker://{host1}/{name}:copied"),
        ])?;
        copied.expect_success().context("skopeo copy with an app token")?;
        let inspected = skopeo(&[
            "inspect",
            "--tls-verify=false",
            "--creds",
            &format!("$app:{secret}"),
            &format!("docker://{host2}/{name}:copied"),
        ])?;
        inspected.expect_success().context("skopeo inspect as $app")?;

        if docker_available() {
            // docker login with the app token, then a real image (an imported tarball) pushed and pulled.
            let work = tempfile::tempdir()?;
            let (config, rootfs) = (work.path().join("docker-config"), work.path().join("rootfs"));
            std::fs::create_dir_all(&config)?;
            std::fs::create_dir_all(&rootfs)?;
            std::fs::write(rootfs.join("payload.bin"), flotilla_cluster_tests::content::random_bytes(50_000))?;
            let tarball = work.path().join("rootfs.tar");
            let tar = Command::new("tar").arg("-C").arg(&rootfs).arg("-cf").arg(&tarball).arg(".").status()?;
            ensure!(tar.success(), "tar failed");
            let image = format!("{host2}/{name}:docker");
            docker(&config, &["import", tarball.to_str().context("path")?, &image], None)?;
            docker(&config, &["login", &host2, "-u", "admin", "--password-stdin"], Some(&secret))?;
            docker(&config, &["push", &image], None)?;
            docker(&config, &["rmi", &image], None)?;
            docker(&config, &["pull", &image], None)?;
            let _ = docker(&config, &["rmi", &image], None);
            sandbox.node(0).client(sandbox.admin_credentials()).get_manifest(&name, "docker")?.expect_status(200)?;
        } else {
            eprintln!("t49_identity: no Docker engine here; docker login with an app token not exercised");
        }

        // Revoked through node 2: refused on every node within seconds.
        let bearer2 = sandbox.node(2).client(Credentials::Bearer(access_token(&admin)?));
        bearer2.call(Method::DELETE, &format!("/api/v1/user/apptoken/{uuid}"))?.expect_status(204)?;
        let started = Instant::now();
        for node in 0..3 {
            let client = sandbox.node(node).client(basic("admin", &secret));
            loop {
                let status = client.get_manifest(&name, "v1")?.status;
                if status == 401 {
                    break;
                }
                ensure!(
                    started.elapsed() < REVOCATION_DEADLINE,
                    "node {node} still accepts a revoked app token ({status})"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        eprintln!("t49_identity: revocation refused on every node after {:?}", started.elapsed());
        bearer2.call(Method::GET, &format!("/api/v1/user/apptoken/{uuid}"))?.expect_status(404)?;
        bearer2.call(Method::DELETE, &format!("/api/v1/user/apptoken/{uuid}"))?.expect_status(404)?;
        Ok(())
    });
}
