//! Test content: blobs with their digests, image and artifact manifests,
//! indexes, Docker schema 2 manifests, and gzip framing for layers.

use rand::{Rng, RngCore};
use serde_json::{json, Map, Value};
use sha2::{Digest as _, Sha256, Sha512};

/// Media types used by the tests.
pub mod media {
    /// OCI image manifest.
    pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    /// OCI image index.
    pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
    /// OCI image config.
    pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
    /// gzip-compressed OCI layer.
    pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
    /// Uncompressed OCI layer.
    pub const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
    /// The empty descriptor's media type (content `{}`).
    pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";
    /// Docker image manifest, schema 2.
    pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
    /// Docker manifest list.
    pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
    /// Docker image config.
    pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
    /// Docker gzip layer.
    pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// `sha512:<hex>` of `bytes`.
pub fn sha512_digest(bytes: &[u8]) -> String {
    format!("sha512:{}", hex::encode(Sha512::digest(bytes)))
}

/// `len` random bytes from the thread RNG.
pub fn random_bytes(len: usize) -> Vec<u8> {
    random_bytes_from(&mut rand::thread_rng(), len)
}

/// `len` random bytes from `rng` (reproducible with a seeded RNG).
pub fn random_bytes_from(rng: &mut impl RngCore, len: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; len];
    rng.fill_bytes(&mut bytes);
    bytes
}

/// A short random lowercase suffix for unique repository names and tags.
pub fn unique_suffix() -> String {
    let mut rng = rand::thread_rng();
    (0..10).map(|_| (b'a' + rng.gen_range(0..26)) as char).collect()
}

/// Content with its media type and sha256 digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blob {
    /// The media type a descriptor of this blob carries.
    pub media_type: String,
    /// The bytes.
    pub bytes: Vec<u8>,
    /// `sha256:<hex>` of the bytes.
    pub digest: String,
}

impl Blob {
    /// A blob of `bytes` described as `media_type`.
    pub fn new(media_type: &str, bytes: Vec<u8>) -> Blob {
        let digest = sha256_digest(&bytes);
        Blob { media_type: media_type.to_owned(), bytes, digest }
    }

    /// A random (uncompressed) OCI layer of `len` bytes.
    pub fn random_layer(len: usize) -> Blob {
        Blob::new(media::OCI_LAYER_TAR, random_bytes(len))
    }

    /// A small OCI image config with a random label so each is unique.
    pub fn random_config() -> Blob {
        let config = json!({
            "architecture": "amd64",
            "os": "linux",
            "config": {"Labels": {"flotilla.test": unique_suffix()}},
            "rootfs": {"type": "layers", "diff_ids": []},
        });
        Blob::new(media::OCI_CONFIG, serde_json::to_vec(&config).expect("config serialises"))
    }

    /// The empty descriptor's content: `{}` as `application/vnd.oci.empty.v1+json`.
    pub fn empty_json() -> Blob {
        Blob::new(media::OCI_EMPTY, b"{}".to_vec())
    }

    /// `{"mediaType","digest","size"}`.
    pub fn descriptor(&self) -> Value {
        json!({"mediaType": self.media_type, "digest": self.digest, "size": self.bytes.len()})
    }

    /// The bytes' length.
    pub fn size(&self) -> usize {
        self.bytes.len()
    }
}

/// A serialised manifest or index, ready to PUT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// `Content-Type` to PUT it with (and expect back).
    pub media_type: String,
    /// The exact bytes.
    pub bytes: Vec<u8>,
    /// `sha256:<hex>` of the bytes.
    pub digest: String,
}

impl Manifest {
    /// Serialises `value` (compact JSON) as `media_type`.
    pub fn from_json(media_type: &str, value: &Value) -> Manifest {
        Manifest::from_bytes(media_type, serde_json::to_vec(value).expect("manifest serialises"))
    }

    /// Wraps existing bytes.
    pub fn from_bytes(media_type: &str, bytes: Vec<u8>) -> Manifest {
        let digest = sha256_digest(&bytes);
        Manifest { media_type: media_type.to_owned(), bytes, digest }
    }

    /// `{"mediaType","digest","size"}` of this manifest.
    pub fn descriptor(&self) -> Value {
        json!({"mediaType": self.media_type, "digest": self.digest, "size": self.bytes.len()})
    }

    /// The bytes' length.
    pub fn size(&self) -> usize {
        self.bytes.len()
    }
}

/// Builds an OCI image manifest (optionally an artifact, with a subject and annotations).
#[derive(Debug, Clone)]
pub struct ImageManifest {
    config: Value,
    layers: Vec<Value>,
    artifact_type: Option<String>,
    subject: Option<Value>,
    annotations: Map<String, Value>,
    media_type_field: bool,
}

impl ImageManifest {
    /// A manifest of `config` and `layers`.
    pub fn new(config: &Blob, layers: &[&Blob]) -> ImageManifest {
        ImageManifest {
            config: config.descriptor(),
            layers: layers.iter().map(|layer| layer.descriptor()).collect(),
            artifact_type: None,
            subject: None,
            annotations: Map::new(),
            media_type_field: true,
        }
    }

    /// Sets `artifactType`.
    pub fn artifact_type(mut self, artifact_type: &str) -> Self {
        self.artifact_type = Some(artifact_type.to_owned());
        self
    }

    /// Sets `subject` to the descriptor of `subject`.
    pub fn subject(mut self, subject: &Manifest) -> Self {
        self.subject = Some(subject.descriptor());
        self
    }

    /// Sets `subject` to an arbitrary descriptor (e.g. of a manifest never pushed).
    pub fn subject_descriptor(mut self, descriptor: Value) -> Self {
        self.subject = Some(descriptor);
        self
    }

    /// Adds a manifest annotation.
    pub fn annotation(mut self, key: &str, value: &str) -> Self {
        self.annotations.insert(key.to_owned(), Value::String(value.to_owned()));
        self
    }

    /// Leaves out the (optional) `mediaType` field.
    pub fn without_media_type_field(mut self) -> Self {
        self.media_type_field = false;
        self
    }

    /// The manifest as JSON.
    pub fn to_json(&self) -> Value {
        let mut value = json!({"schemaVersion": 2, "config": self.config, "layers": self.layers});
        if self.media_type_field {
            value["mediaType"] = json!(media::OCI_MANIFEST);
        }
        if let Some(artifact_type) = &self.artifact_type {
            value["artifactType"] = json!(artifact_type);
        }
        if let Some(subject) = &self.subject {
            value["subject"] = subject.clone();
        }
        if !self.annotations.is_empty() {
            value["annotations"] = Value::Object(self.annotations.clone());
        }
        value
    }

    /// Serialises it.
    pub fn build(&self) -> Manifest {
        Manifest::from_json(media::OCI_MANIFEST, &self.to_json())
    }
}

/// Builds an OCI image index (or, with `docker_list`, a Docker manifest list).
#[derive(Debug, Clone)]
pub struct IndexManifest {
    media_type: String,
    manifests: Vec<Value>,
    artifact_type: Option<String>,
    subject: Option<Value>,
    annotations: Map<String, Value>,
}

impl IndexManifest {
    /// An OCI index.
    pub fn oci() -> IndexManifest {
        IndexManifest {
            media_type: media::OCI_INDEX.into(),
            manifests: Vec::new(),
            artifact_type: None,
            subject: None,
            annotations: Map::new(),
        }
    }

    /// A Docker manifest list.
    pub fn docker_list() -> IndexManifest {
        IndexManifest { media_type: media::DOCKER_LIST.into(), ..IndexManifest::oci() }
    }

    /// Adds `manifest` for `os`/`architecture`.
    pub fn platform_manifest(mut self, manifest: &Manifest, os: &str, architecture: &str) -> Self {
        let mut descriptor = manifest.descriptor();
        descriptor["platform"] = json!({"os": os, "architecture": architecture});
        self.manifests.push(descriptor);
        self
    }

    /// Adds `manifest` without a platform.
    pub fn manifest(mut self, manifest: &Manifest) -> Self {
        self.manifests.push(manifest.descriptor());
        self
    }

    /// Sets `artifactType`.
    pub fn artifact_type(mut self, artifact_type: &str) -> Self {
        self.artifact_type = Some(artifact_type.to_owned());
        self
    }

    /// Sets `subject`.
    pub fn subject(mut self, subject: &Manifest) -> Self {
        self.subject = Some(subject.descriptor());
        self
    }

    /// Adds an annotation.
    pub fn annotation(mut self, key: &str, value: &str) -> Self {
        self.annotations.insert(key.to_owned(), Value::String(value.to_owned()));
        self
    }

    /// Serialises it.
    pub fn build(&self) -> Manifest {
        let mut value = json!({"schemaVersion": 2, "mediaType": self.media_type, "manifests": self.manifests});
        if let Some(artifact_type) = &self.artifact_type {
            value["artifactType"] = json!(artifact_type);
        }
        if let Some(subject) = &self.subject {
            value["subject"] = subject.clone();
        }
        if !self.annotations.is_empty() {
            value["annotations"] = Value::Object(self.annotations.clone());
        }
        Manifest::from_json(&self.media_type, &value)
    }
}

/// A Docker schema 2 image manifest of `config` and `layers`.
pub fn docker_manifest(config: &Blob, layers: &[&Blob]) -> Manifest {
    let value = json!({
        "schemaVersion": 2,
        "mediaType": media::DOCKER_MANIFEST,
        "config": {"mediaType": media::DOCKER_CONFIG, "digest": config.digest, "size": config.size()},
        "layers": layers.iter().map(|layer| json!({
            "mediaType": media::DOCKER_LAYER_GZIP, "digest": layer.digest, "size": layer.size()
        })).collect::<Vec<_>>(),
    });
    Manifest::from_json(media::DOCKER_MANIFEST, &value)
}

/// Wraps `data` in a valid gzip stream made of stored (uncompressed) deflate
/// blocks: every gzip reader accepts it and it starts with the gzip magic, so
/// clients that sniff compression treat it as compressed.
pub fn gzip_stored(data: &[u8]) -> Vec<u8> {
    const MAX_STORED_BLOCK: usize = 65_535;
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
    let mut chunks = data.chunks(MAX_STORED_BLOCK).peekable();
    if chunks.peek().is_none() {
        out.extend_from_slice(&[1, 0, 0, 0xff, 0xff]);
    }
    while let Some(chunk) = chunks.next() {
        let last = chunks.peek().is_none();
        let len = chunk.len() as u16;
        out.push(u8::from(last));
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(chunk);
    }
    out.extend_from_slice(&crc32(data).to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out
}

/// CRC-32 (IEEE), as gzip's trailer needs.
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xEDB8_8320 & mask);
        }
    }
    !crc
}

/// A gzip layer and the digest of its uncompressed content (its diff id).
#[derive(Debug, Clone)]
pub struct GzipLayer {
    /// The compressed blob (`application/vnd.oci.image.layer.v1.tar+gzip`).
    pub blob: Blob,
    /// `sha256` of the uncompressed bytes.
    pub diff_id: String,
}

/// A layer whose uncompressed content is `len` random bytes, gzip-framed.
pub fn random_gzip_layer(len: usize) -> GzipLayer {
    let raw = random_bytes(len);
    GzipLayer { diff_id: sha256_digest(&raw), blob: Blob::new(media::OCI_LAYER_GZIP, gzip_stored(&raw)) }
}

/// An OCI image config for `layers` on `os`/`architecture`.
pub fn image_config(layers: &[GzipLayer], os: &str, architecture: &str) -> Blob {
    let config = json!({
        "architecture": architecture,
        "os": os,
        "created": "2024-01-01T00:00:00Z",
        "config": {"Labels": {"flotilla.test": unique_suffix()}},
        "rootfs": {"type": "layers", "diff_ids": layers.iter().map(|l| l.diff_id.clone()).collect::<Vec<_>>()},
    });
    Blob::new(media::OCI_CONFIG, serde_json::to_vec(&config).expect("config serialises"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn stored_gzip_frames_every_block() {
        let data = random_bytes(200_000);
        let gz = gzip_stored(&data);
        assert_eq!(&gz[..3], &[0x1f, 0x8b, 8]);
        // header + 4 blocks of 5-byte headers + data + trailer
        assert_eq!(gz.len(), 10 + 4 * 5 + data.len() + 8);
        assert_eq!(gzip_stored(&[]).len(), 10 + 5 + 8);
    }

    #[test]
    fn next_link_is_parsed_from_the_spec_form() {
        let link = r#"</v2/a/b/tags/list?n=2&last=t2>; rel="next""#;
        assert_eq!(crate::client::parse_next_link(link).as_deref(), Some("/v2/a/b/tags/list?n=2&last=t2"));
        assert_eq!(crate::client::parse_next_link(r#"</x>; rel="prev""#), None);
    }

    #[test]
    fn bearer_challenge_parameters_are_unquoted() {
        let header = r#"Bearer realm="http://h:1/v2/token",service="flotilla",scope="repository:a/b:pull,push""#;
        let challenge = crate::client::Challenge::parse(header).expect("parses");
        assert_eq!(challenge.scheme, "Bearer");
        assert_eq!(challenge.param("realm"), Some("http://h:1/v2/token"));
        assert_eq!(challenge.param("service"), Some("flotilla"));
        assert_eq!(challenge.param("scope"), Some("repository:a/b:pull,push"));
    }
}
