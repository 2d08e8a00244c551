//! Manifest validation: what a pushed manifest must be, and what it references.
//!
//! Accepted: OCI image manifest and index, Docker schema 2 manifest and
//! manifest list (artifacts are image manifests with `artifactType`). The media
//! type comes from the body's `mediaType`, else from `Content-Type`; when both
//! are present they must agree.

use std::collections::BTreeMap;

use flotilla_storage::Digest;
use serde::Deserialize;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// A manifest that passed validation, with what it references.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedManifest {
    pub media_type: String,
    /// Config and layers that must be in the repository (foreign layers with `urls` excluded).
    pub blobs: Vec<Digest>,
    /// Index entries that must be manifests of the repository.
    pub manifests: Vec<Digest>,
    pub subject: Option<Digest>,
    /// `artifactType`, else the config's media type for image manifests (referrers API rule).
    pub artifact_type: Option<String>,
    pub annotations: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawManifest {
    schema_version: Option<serde_json::Value>,
    media_type: Option<String>,
    artifact_type: Option<String>,
    config: Option<RawDescriptor>,
    layers: Option<Vec<RawDescriptor>>,
    manifests: Option<Vec<RawDescriptor>>,
    subject: Option<RawDescriptor>,
    annotations: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawDescriptor {
    media_type: Option<String>,
    digest: Option<String>,
    size: Option<serde_json::Value>,
    urls: Option<Vec<String>>,
}

/// Validates `body` pushed with `content_type`; the error is a human-readable reason.
pub fn parse_manifest(body: &[u8], content_type: Option<&str>) -> Result<ParsedManifest, String> {
    let raw: RawManifest =
        serde_json::from_slice(body).map_err(|error| format!("manifest is not valid JSON: {error}"))?;
    if raw.schema_version.as_ref().and_then(|v| v.as_u64()) != Some(2) {
        return Err("schemaVersion must be 2".into());
    }
    let header_type = content_type.map(|value| value.split(';').next().unwrap_or("").trim()).filter(|v| !v.is_empty());
    let media_type = match (&raw.media_type, header_type) {
        (Some(body_type), Some(header)) if body_type != header && is_known(header) => {
            return Err(format!("mediaType {body_type} does not match Content-Type {header}"));
        }
        (Some(body_type), _) => body_type.clone(),
        (None, Some(header)) if is_known(header) => header.to_owned(),
        (None, _) if raw.manifests.is_some() => OCI_INDEX.to_owned(),
        (None, _) if raw.config.is_some() => OCI_MANIFEST.to_owned(),
        (None, header) => return Err(format!("unsupported manifest media type {}", header.unwrap_or("(none)"))),
    };
    let subject = raw.subject.as_ref().map(|d| descriptor_digest(d, "subject")).transpose()?;
    match media_type.as_str() {
        OCI_MANIFEST | DOCKER_MANIFEST => parse_image(raw, media_type, subject),
        OCI_INDEX | DOCKER_LIST => parse_index(raw, media_type, subject),
        other => Err(format!("unsupported manifest media type {other}")),
    }
}

fn is_known(media_type: &str) -> bool {
    matches!(media_type, OCI_MANIFEST | OCI_INDEX | DOCKER_MANIFEST | DOCKER_LIST)
}

fn parse_image(raw: RawManifest, media_type: String, subject: Option<Digest>) -> Result<ParsedManifest, String> {
    if raw.manifests.is_some() {
        return Err("an image manifest has no `manifests`".into());
    }
    let config = raw.config.ok_or("image manifest has no config")?;
    let mut blobs = vec![descriptor_digest(&config, "config")?];
    for layer in raw.layers.unwrap_or_default() {
        let digest = descriptor_digest(&layer, "layer")?;
        let foreign = layer.urls.as_ref().is_some_and(|urls| !urls.is_empty());
        if !foreign && !blobs.contains(&digest) {
            blobs.push(digest);
        }
    }
    let artifact_type = raw.artifact_type.or(config.media_type);
    Ok(ParsedManifest {
        media_type,
        blobs,
        manifests: Vec::new(),
        subject,
        artifact_type,
        annotations: raw.annotations.unwrap_or_default(),
    })
}

fn parse_index(raw: RawManifest, media_type: String, subject: Option<Digest>) -> Result<ParsedManifest, String> {
    if raw.config.is_some() || raw.layers.is_some() {
        return Err("an index has no config or layers".into());
    }
    let mut manifests = Vec::new();
    for entry in raw.manifests.ok_or("index has no manifests")? {
        let digest = descriptor_digest(&entry, "index entry")?;
        if !manifests.contains(&digest) {
            manifests.push(digest);
        }
    }
    Ok(ParsedManifest {
        media_type,
        blobs: Vec::new(),
        manifests,
        subject,
        artifact_type: raw.artifact_type,
        annotations: raw.annotations.unwrap_or_default(),
    })
}

fn descriptor_digest(descriptor: &RawDescriptor, what: &str) -> Result<Digest, String> {
    if descriptor.media_type.as_deref().is_none_or(str::is_empty) {
        return Err(format!("{what} descriptor has no mediaType"));
    }
    if descriptor.size.as_ref().and_then(|size| size.as_u64()).is_none() {
        return Err(format!("{what} descriptor needs a non-negative integer size"));
    }
    let digest = descriptor.digest.as_deref().ok_or_else(|| format!("{what} descriptor has no digest"))?;
    Digest::parse(digest).map_err(|error| format!("{what} descriptor digest: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn descriptor(media_type: &str, data: &[u8]) -> serde_json::Value {
        json!({"mediaType": media_type, "digest": Digest::sha256_of(data).to_string(), "size": data.len()})
    }

    #[test]
    fn image_manifest_with_subject_and_artifact_type() {
        let body = json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": "application/vnd.example.sbom",
            "config": descriptor("application/vnd.oci.empty.v1+json", b"{}"),
            "layers": [descriptor("application/octet-stream", b"a"), descriptor("application/octet-stream", b"a")],
            "subject": descriptor(OCI_MANIFEST, b"subject"),
            "annotations": {"k": "v"}
        });
        let parsed = parse_manifest(body.to_string().as_bytes(), Some(OCI_MANIFEST)).unwrap();
        assert_eq!(parsed.blobs.len(), 2, "duplicate layers are referenced once");
        assert_eq!(parsed.subject, Some(Digest::sha256_of(b"subject")));
        assert_eq!(parsed.artifact_type.as_deref(), Some("application/vnd.example.sbom"));
        assert_eq!(parsed.annotations["k"], "v");
    }

    #[test]
    fn index_references_manifests() {
        let body = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [descriptor(OCI_MANIFEST, b"m")]});
        let parsed = parse_manifest(body.to_string().as_bytes(), None).unwrap();
        assert_eq!(parsed.manifests, vec![Digest::sha256_of(b"m")]);
    }

    #[test]
    fn rejects_bad_manifests() {
        let cases = [
            json!({"schemaVersion": 1, "config": descriptor("x", b"c")}).to_string(),
            json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST}).to_string(),
            json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": {"mediaType": "x", "digest": "sha256:zz", "size": 1}}).to_string(),
            json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": {"mediaType": "x", "digest": Digest::sha256_of(b"").to_string(), "size": -1}}).to_string(),
            json!({"schemaVersion": 2, "mediaType": "text/plain", "config": descriptor("x", b"c")}).to_string(),
            "not json".to_string(),
        ];
        for case in cases {
            assert!(parse_manifest(case.as_bytes(), Some(OCI_MANIFEST)).is_err(), "{case}");
        }
        let mismatch = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}).to_string();
        assert!(parse_manifest(mismatch.as_bytes(), Some(OCI_MANIFEST)).is_err());
    }

    #[test]
    fn foreign_layers_need_not_exist() {
        let mut layer = descriptor("application/vnd.docker.image.rootfs.foreign.diff.tar.gzip", b"f");
        layer["urls"] = json!(["https://example.invalid/layer"]);
        let body = json!({"schemaVersion": 2, "mediaType": DOCKER_MANIFEST, "config": descriptor("c", b"c"), "layers": [layer]});
        let parsed = parse_manifest(body.to_string().as_bytes(), None).unwrap();
        assert_eq!(parsed.blobs, vec![Digest::sha256_of(b"c")]);
    }
}
