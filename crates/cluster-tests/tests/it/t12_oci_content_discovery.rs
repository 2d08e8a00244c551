//! OCI conformance v1.1.1 "Content Discovery": tags list with `n`/`last` and
//! `Link` pagination, `_catalog`, and the referrers API (empty index for an
//! unknown subject, Content-Type, annotations, `artifactType` filter, index
//! referrers, missing subjects).

use std::collections::BTreeSet;

use anyhow::{ensure, Context};
use flotilla_cluster_tests::client::string_array;
use flotilla_cluster_tests::content::{media, random_bytes, Blob, ImageManifest, IndexManifest, Manifest};
use flotilla_cluster_tests::{OciClient, Sandbox};
use serde_json::{json, Value};

use crate::common::{repo, with_shared, SharedSandbox};

static SANDBOX: SharedSandbox = SharedSandbox::new();

fn run(test: impl FnOnce(&Sandbox) -> anyhow::Result<()>) {
    with_shared(&SANDBOX, test);
}

/// Pushes one small image and tags it with every tag in `tags`.
fn push_tagged(client: &OciClient, name: &str, tags: &[&str]) -> anyhow::Result<Manifest> {
    let config = Blob::random_config();
    let layer = Blob::random_layer(256);
    client.push_blob_monolithic(name, &config.bytes)?;
    client.push_blob_monolithic(name, &layer.bytes)?;
    let manifest = ImageManifest::new(&config, &[&layer]).build();
    for tag in tags {
        client.push_manifest(name, tag, &manifest)?;
    }
    Ok(manifest)
}

#[test]
fn tags_list_returns_every_tag_sorted() {
    run(|sandbox| {
        let client = sandbox.client();
        let name = repo("t12", "tags");
        let tags = ["v2", "latest", "v1", "alpha", "v10"];
        push_tagged(&client, &name, &tags)?;
        let reply = client.tags_list(&name, "")?.expect_status(200)?;
        let body = reply.json()?;
        assert_eq!(body["name"], json!(name));
        let mut expected: Vec<String> = tags.iter().map(|t| t.to_string()).collect();
        expected.sort();
        assert_eq!(string_array(&body, "tags"), expected, "tags must be complete and in lexical order");
        Ok(())
    });
}

#[test]
fn tags_list_n_limits_exactly_and_link_pages_through_all() {
    run(|sandbox| {
        let client = sandbox.client();
        let name = repo("t12", "tags-paged");
        let tags = ["t1", "t2", "t3", "t4", "t5"];
        push_tagged(&client, &name, &tags)?;

        let first = client.tags_list(&name, "?n=2")?.expect_status(200)?;
        assert_eq!(string_array(&first.json()?, "tags"), ["t1", "t2"]);
        let link = first.header("Link").context("a truncated page must carry Link")?;
        let expected_link = format!("</v2/{name}/tags/list?n=2&last=t2>; rel=\"next\"");
        assert_eq!(link, expected_link);

        let second = client.call(reqwest::Method::GET, &first.next_link()?.unwrap())?.expect_status(200)?;
        assert_eq!(string_array(&second.json()?, "tags"), ["t3", "t4"]);
        let third = client.call(reqwest::Method::GET, &second.next_link()?.context("second page Link")?)?;
        let third = third.expect_status(200)?;
        assert_eq!(string_array(&third.json()?, "tags"), ["t5"]);
        assert_eq!(third.header("Link"), None, "the last page must not link further");

        assert_eq!(client.all_tags(&name, 1)?, tags);
        Ok(())
    });
}

#[test]
fn tags_list_last_returns_only_tags_after_it() {
    run(|sandbox| {
        let client = sandbox.client();
        let name = repo("t12", "tags-last");
        push_tagged(&client, &name, &["a", "b", "c", "d"])?;
        let reply = client.tags_list(&name, "?n=10&last=b")?.expect_status(200)?;
        assert_eq!(string_array(&reply.json()?, "tags"), ["c", "d"]);
        let reply = client.tags_list(&name, "?last=bb")?.expect_status(200)?;
        assert_eq!(string_array(&reply.json()?, "tags"), ["c", "d"]);
        let reply = client.tags_list(&name, "?n=1&last=a")?.expect_status(200)?;
        assert_eq!(string_array(&reply.json()?, "tags"), ["b"]);
        let reply = client.tags_list(&name, "?last=d")?.expect_status(200)?;
        assert!(string_array(&reply.json()?, "tags").is_empty());
        Ok(())
    });
}

#[test]
fn tags_list_of_an_unknown_repository_is_name_unknown() {
    run(|sandbox| {
        sandbox.client().tags_list(&repo("t12", "never-pushed"), "")?.expect_error(404, "NAME_UNKNOWN")?;
        Ok(())
    });
}

#[test]
fn catalog_lists_repositories_with_n_last_and_link() {
    run(|sandbox| {
        let client = sandbox.client();
        let prefix = repo("t12", "catalog");
        let names: Vec<String> = (0..4).map(|i| format!("{prefix}/r{i}")).collect();
        for name in &names {
            push_tagged(&client, name, &["latest"])?;
        }
        let all = client.catalog("")?.expect_status(200)?;
        let listed = string_array(&all.json()?, "repositories");
        for name in &names {
            ensure!(listed.contains(name), "catalog lacks {name}: {listed:?}");
        }
        let mut sorted = listed.clone();
        sorted.sort();
        assert_eq!(listed, sorted, "catalog must be in lexical order");

        let page = client.catalog(&format!("?n=2&last={}", names[0]))?.expect_status(200)?;
        let page_names = string_array(&page.json()?, "repositories");
        ensure!(page_names.len() == 2, "n=2 must return exactly 2: {page_names:?}");
        ensure!(page_names.iter().all(|n| n > &names[0]), "entries after `last` only: {page_names:?}");
        let next = page.next_link()?.context("a full catalog page must carry Link: <..>; rel=\"next\"")?;
        let next_url = reqwest::Url::parse("http://registry")?.join(&next)?;
        assert_eq!(next_url.path(), "/v2/_catalog", "Link {next}");
        let query: Vec<(String, String)> =
            next_url.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
        let expected = [("n".to_owned(), "2".to_owned()), ("last".to_owned(), page_names[1].clone())];
        assert_eq!(query, expected, "Link {next}");

        let mut walked = Vec::new();
        let mut target = "/v2/_catalog?n=3".to_owned();
        loop {
            let reply = client.call(reqwest::Method::GET, &target)?.expect_status(200)?;
            let page = string_array(&reply.json()?, "repositories");
            ensure!(page.len() <= 3, "page larger than n: {page:?}");
            walked.extend(page);
            match reply.next_link()? {
                Some(next) => target = next,
                None => break,
            }
        }
        let unique: BTreeSet<&String> = walked.iter().collect();
        ensure!(unique.len() == walked.len(), "pagination repeated entries: {walked:?}");
        for name in &names {
            ensure!(walked.contains(name), "paginated catalog lacks {name}");
        }
        Ok(())
    });
}

const CONFORMANCE_ARTIFACT: &str = "application/vnd.oci.conformance.test.artifact";
const OTHER_ARTIFACT: &str = "application/vnd.example.other";

struct ReferrersSetup {
    subject: Manifest,
    referrers: Vec<Manifest>,
}

/// A subject image and five referrers: three artifact manifests (two of the
/// conformance artifact type), an image manifest whose artifact type comes from
/// its config, and an index.
fn push_referrers(client: &OciClient, name: &str) -> anyhow::Result<ReferrersSetup> {
    let subject = push_tagged(client, name, &["subject"])?;
    let empty = Blob::empty_json();
    let payload = Blob::new("application/vnd.example.payload", random_bytes(100));
    let custom_config = Blob::new("application/vnd.example.config.v1+json", br#"{"kind":"config"}"#.to_vec());
    for blob in [&empty, &payload, &custom_config] {
        client.push_blob_monolithic(name, &blob.bytes)?;
    }
    let referrers = vec![
        ImageManifest::new(&empty, &[&payload])
            .artifact_type(CONFORMANCE_ARTIFACT)
            .subject(&subject)
            .annotation("org.opencontainers.conformance.test", "test 0")
            .build(),
        ImageManifest::new(&empty, &[])
            .artifact_type(CONFORMANCE_ARTIFACT)
            .subject(&subject)
            .annotation("org.opencontainers.conformance.test", "test 1")
            .build(),
        ImageManifest::new(&empty, &[&payload])
            .artifact_type(OTHER_ARTIFACT)
            .subject(&subject)
            .annotation("org.example.note", "other")
            .build(),
        ImageManifest::new(&custom_config, &[&payload])
            .subject(&subject)
            .annotation("org.example.note", "config-typed")
            .build(),
        IndexManifest::oci()
            .artifact_type(OTHER_ARTIFACT)
            .manifest(&subject)
            .subject(&subject)
            .annotation("org.example.note", "index")
            .build(),
    ];
    for referrer in &referrers {
        client.push_manifest(name, &referrer.digest, referrer)?;
    }
    Ok(ReferrersSetup { subject, referrers })
}

fn descriptors_by_digest(index: &Value) -> anyhow::Result<std::collections::BTreeMap<String, Value>> {
    let manifests = index["manifests"].as_array().context("referrers index without `manifests` array")?;
    Ok(manifests.iter().map(|d| (d["digest"].as_str().unwrap_or_default().to_owned(), d.clone())).collect())
}

#[test]
fn referrers_of_an_unknown_digest_is_an_empty_index() {
    run(|sandbox| {
        let client = sandbox.client();
        let name = repo("t12", "referrers-empty");
        push_tagged(&client, &name, &["x"])?;
        let digest = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
        let reply = client.referrers(&name, digest, None)?.expect_status(200)?;
        assert_eq!(reply.header("Content-Type"), Some(media::OCI_INDEX));
        let body = reply.json()?;
        assert_eq!(body["schemaVersion"], json!(2));
        assert_eq!(body["mediaType"], json!(media::OCI_INDEX));
        assert_eq!(body["manifests"], json!([]));
        Ok(())
    });
}

#[test]
fn referrers_list_every_referrer_with_its_annotations_and_artifact_type() {
    run(|sandbox| {
        let client = sandbox.client();
        let name = repo("t12", "referrers");
        let setup = push_referrers(&client, &name)?;
        let reply = client.referrers(&name, &setup.subject.digest, None)?.expect_status(200)?;
        assert_eq!(reply.header("Content-Type"), Some(media::OCI_INDEX));
        let body = reply.json()?;
        assert_eq!(body["mediaType"], json!(media::OCI_INDEX));
        let listed = descriptors_by_digest(&body)?;
        assert_eq!(listed.len(), 5, "all 5 referrers (manifests and the index) must be listed: {body}");
        for referrer in &setup.referrers {
            let descriptor =
                listed.get(&referrer.digest).with_context(|| format!("referrer {} missing", referrer.digest))?;
            let pushed: Value = serde_json::from_slice(&referrer.bytes)?;
            assert_eq!(descriptor["mediaType"], json!(referrer.media_type));
            assert_eq!(descriptor["size"], json!(referrer.size()));
            assert_eq!(descriptor["annotations"], pushed["annotations"], "annotations are copied into the descriptor");
            let expected_type =
                pushed.get("artifactType").cloned().unwrap_or_else(|| pushed["config"]["mediaType"].clone());
            assert_eq!(descriptor["artifactType"], expected_type, "artifactType of {}", referrer.digest);
        }
        Ok(())
    });
}

#[test]
fn referrers_artifact_type_filter_is_applied_and_announced() {
    run(|sandbox| {
        let client = sandbox.client();
        let name = repo("t12", "referrers-filter");
        let setup = push_referrers(&client, &name)?;
        let reply = client.referrers(&name, &setup.subject.digest, Some(CONFORMANCE_ARTIFACT))?.expect_status(200)?;
        assert_eq!(reply.header("Content-Type"), Some(media::OCI_INDEX));
        assert_eq!(reply.header("OCI-Filters-Applied"), Some("artifactType"));
        let listed = descriptors_by_digest(&reply.json()?)?;
        let expected: BTreeSet<String> = setup.referrers[..2].iter().map(|m| m.digest.clone()).collect();
        assert_eq!(listed.keys().cloned().collect::<BTreeSet<_>>(), expected);

        let reply = client.referrers(&name, &setup.subject.digest, Some("application/vnd.example.config.v1+json"))?;
        let listed = descriptors_by_digest(&reply.expect_status(200)?.json()?)?;
        assert_eq!(listed.keys().collect::<Vec<_>>(), [&setup.referrers[3].digest], "type taken from config.mediaType");
        Ok(())
    });
}

#[test]
fn referrers_of_a_subject_never_pushed_are_listed() {
    run(|sandbox| {
        let client = sandbox.client();
        let name = repo("t12", "referrers-missing-subject");
        let empty = Blob::empty_json();
        client.push_blob_monolithic(&name, &empty.bytes)?;
        let ghost = Manifest::from_bytes(media::OCI_MANIFEST, br#"{"schemaVersion":2,"never":"pushed"}"#.to_vec());
        let referrer = ImageManifest::new(&empty, &[])
            .artifact_type(CONFORMANCE_ARTIFACT)
            .subject(&ghost)
            .annotation("org.example.note", "orphan")
            .build();
        let put = client.push_manifest(&name, &referrer.digest, &referrer)?;
        assert_eq!(put.header("OCI-Subject"), Some(ghost.digest.as_str()));
        client.get_manifest(&name, &ghost.digest)?.expect_status(404)?;
        let listed = descriptors_by_digest(&client.referrers(&name, &ghost.digest, None)?.expect_status(200)?.json()?)?;
        assert_eq!(listed.keys().collect::<Vec<_>>(), [&referrer.digest]);
        Ok(())
    });
}

#[test]
fn referrers_are_scoped_to_their_repository() {
    run(|sandbox| {
        let client = sandbox.client();
        let name = repo("t12", "referrers-home");
        let elsewhere = repo("t12", "referrers-elsewhere");
        let setup = push_referrers(&client, &name)?;
        push_tagged(&client, &elsewhere, &["x"])?;
        let reply = client.referrers(&elsewhere, &setup.subject.digest, None)?.expect_status(200)?;
        assert_eq!(reply.json()?["manifests"], json!([]));
        Ok(())
    });
}
