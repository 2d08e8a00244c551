//! The `/v2/` route table. Repository names contain `/`, so routes are parsed
//! from the right: the last `blobs/`, `manifests/`, `tags/list`, `referrers/`
//! marker splits name from resource.

use flotilla_storage::Digest;

use super::names::{Reference, RepoName};

/// A parsed `/v2/…` path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OciRoute {
    /// `/v2/`
    Base,
    /// `/v2/_catalog`
    Catalog,
    /// `/v2/token` — the registry token endpoint.
    Token,
    /// `/v2/<name>/tags/list`
    Tags(RepoName),
    /// `/v2/<name>/manifests/<reference>`
    Manifest(RepoName, Reference),
    /// `/v2/<name>/manifests/<reference>` whose reference is neither a valid tag
    /// nor a valid digest: it names no manifest (GET, HEAD and DELETE answer
    /// 404 `MANIFEST_UNKNOWN`, as the conformance suite expects of
    /// `.INVALID_MANIFEST_NAME`) and nothing can be pushed under it (PUT: 400).
    ManifestReferenceInvalid(RepoName),
    /// `/v2/<name>/blobs/<digest>`
    Blob(RepoName, Digest),
    /// `/v2/<name>/blobs/uploads/`
    UploadStart(RepoName),
    /// `/v2/<name>/blobs/uploads/<id>`
    Upload(RepoName, String),
    /// `/v2/<name>/referrers/<digest>`
    Referrers(RepoName, Digest),
}

/// Why a path is not a valid route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteError {
    /// No such endpoint.
    NotFound,
    /// The repository name breaks the grammar.
    NameInvalid,
    /// The digest in the path is malformed.
    DigestInvalid,
}

impl OciRoute {
    /// Parses the path after `/v2/` (no leading slash; percent-encoding is not
    /// decoded, so an encoded slash is never a separator and fails the grammar).
    pub fn parse(rest: &str) -> Result<Self, RouteError> {
        match rest {
            "" => return Ok(OciRoute::Base),
            "_catalog" => return Ok(OciRoute::Catalog),
            "token" => return Ok(OciRoute::Token),
            _ => {}
        }
        if let Some(name) = rest.strip_suffix("/tags/list") {
            return Ok(OciRoute::Tags(parse_name(name)?));
        }
        if let Some(name) = rest.strip_suffix("/blobs/uploads/").or_else(|| rest.strip_suffix("/blobs/uploads")) {
            return Ok(OciRoute::UploadStart(parse_name(name)?));
        }
        if let Some((name, id)) = rest.rsplit_once("/blobs/uploads/") {
            if id.is_empty() || id.contains('/') {
                return Err(RouteError::NotFound);
            }
            return Ok(OciRoute::Upload(parse_name(name)?, id.to_owned()));
        }
        if let Some((name, digest)) = rest.rsplit_once("/blobs/") {
            return Ok(OciRoute::Blob(parse_name(name)?, parse_digest(digest)?));
        }
        if let Some((name, reference)) = rest.rsplit_once("/manifests/") {
            let name = parse_name(name)?;
            return Ok(match Reference::parse(reference) {
                Some(reference) => OciRoute::Manifest(name, reference),
                None => OciRoute::ManifestReferenceInvalid(name),
            });
        }
        if let Some((name, digest)) = rest.rsplit_once("/referrers/") {
            return Ok(OciRoute::Referrers(parse_name(name)?, parse_digest(digest)?));
        }
        Err(RouteError::NotFound)
    }

    /// The repository the route acts on, if any.
    pub fn repo(&self) -> Option<&RepoName> {
        match self {
            OciRoute::Base | OciRoute::Catalog | OciRoute::Token => None,
            OciRoute::Tags(name)
            | OciRoute::Manifest(name, _)
            | OciRoute::ManifestReferenceInvalid(name)
            | OciRoute::Blob(name, _)
            | OciRoute::UploadStart(name)
            | OciRoute::Upload(name, _)
            | OciRoute::Referrers(name, _) => Some(name),
        }
    }

    /// A low-cardinality label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            OciRoute::Base => "base",
            OciRoute::Catalog => "catalog",
            OciRoute::Token => "token",
            OciRoute::Tags(_) => "tags",
            OciRoute::Manifest(..) | OciRoute::ManifestReferenceInvalid(_) => "manifest",
            OciRoute::Blob(..) => "blob",
            OciRoute::UploadStart(_) | OciRoute::Upload(..) => "upload",
            OciRoute::Referrers(..) => "referrers",
        }
    }
}

fn parse_name(name: &str) -> Result<RepoName, RouteError> {
    RepoName::parse(name).ok_or(RouteError::NameInvalid)
}

fn parse_digest(digest: &str) -> Result<Digest, RouteError> {
    Digest::parse(digest).map_err(|_| RouteError::DigestInvalid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn name(text: &str) -> RepoName {
        RepoName::parse(text).unwrap()
    }

    #[test]
    fn multi_segment_names_and_resources() {
        let digest = Digest::sha256_of(b"x");
        assert_eq!(OciRoute::parse(""), Ok(OciRoute::Base));
        assert_eq!(OciRoute::parse("a/b/c/tags/list"), Ok(OciRoute::Tags(name("a/b/c"))));
        assert_eq!(
            OciRoute::parse("a/manifests/b/manifests/v1"),
            Ok(OciRoute::Manifest(name("a/manifests/b"), Reference::Tag("v1".into()))),
            "the last marker splits: `manifests` is a valid name component"
        );
        assert_eq!(OciRoute::parse("blobs/blobs/uploads/"), Ok(OciRoute::UploadStart(name("blobs"))));
        assert_eq!(
            OciRoute::parse(&format!("team/app/blobs/{digest}")),
            Ok(OciRoute::Blob(name("team/app"), digest.clone()))
        );
        assert_eq!(OciRoute::parse("team/app/blobs/uploads/abc"), Ok(OciRoute::Upload(name("team/app"), "abc".into())));
        assert_eq!(OciRoute::parse(&format!("r/referrers/{digest}")), Ok(OciRoute::Referrers(name("r"), digest)));
        assert_eq!(
            OciRoute::parse("manifests/manifests/latest"),
            Ok(OciRoute::Manifest(name("manifests"), Reference::Tag("latest".into())))
        );
    }

    #[test]
    fn bad_paths() {
        assert_eq!(OciRoute::parse("a%2Fb/tags/list"), Err(RouteError::NameInvalid));
        assert_eq!(OciRoute::parse("../x/tags/list"), Err(RouteError::NameInvalid));
        assert_eq!(OciRoute::parse("a/blobs/sha256:zz"), Err(RouteError::DigestInvalid));
        assert_eq!(OciRoute::parse("a/unknown"), Err(RouteError::NotFound));
    }

    #[test]
    fn invalid_references_are_a_manifest_route_of_their_own() {
        for reference in [".INVALID_MANIFEST_NAME", "-bad", "", "sha256:zz", "a/b", &"t".repeat(129)] {
            let path = format!("team/app/manifests/{reference}");
            assert_eq!(OciRoute::parse(&path), Ok(OciRoute::ManifestReferenceInvalid(name("team/app"))), "{path}");
        }
        assert_eq!(OciRoute::parse("BAD/manifests/latest"), Err(RouteError::NameInvalid), "the name still counts");
        assert_eq!(OciRoute::parse("BAD/manifests/.x"), Err(RouteError::NameInvalid));
        assert_eq!(crate::oci::route_label("/v2/a/manifests/.x"), "manifest");
    }

    proptest! {
        #[test]
        fn parse_never_panics(path in "\\PC{0,300}") {
            let _ = OciRoute::parse(&path);
        }

        #[test]
        fn tag_routes_round_trip(repo in "[a-z0-9]{1,6}(/[a-z0-9]{1,6}){0,3}", tag in "[a-zA-Z0-9_][a-zA-Z0-9._-]{0,20}") {
            let route = OciRoute::parse(&format!("{repo}/manifests/{tag}")).unwrap();
            prop_assert_eq!(route, OciRoute::Manifest(name(&repo), Reference::Tag(tag)));
        }

        #[test]
        fn any_reference_under_a_valid_name_is_a_manifest_route(
            repo in "[a-z0-9]{1,6}(/[a-z0-9]{1,6}){0,3}",
            reference in "[^/]{0,140}",
        ) {
            let route = OciRoute::parse(&format!("{repo}/manifests/{reference}")).unwrap();
            match (Reference::parse(&reference), route) {
                (Some(parsed), OciRoute::Manifest(parsed_name, route_reference)) => {
                    prop_assert_eq!(parsed_name, name(&repo));
                    prop_assert_eq!(route_reference, parsed);
                }
                (None, OciRoute::ManifestReferenceInvalid(parsed_name)) => prop_assert_eq!(parsed_name, name(&repo)),
                (parsed, route) => {
                    let message = format!("{reference:?} parsed as {parsed:?} routed to {route:?}");
                    return Err(TestCaseError::fail(message));
                }
            }
        }
    }
}
