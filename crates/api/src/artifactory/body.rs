//! Request bodies: JSON read with a size limit, every failure an Artifactory error.

use axum::body::Body;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use super::ArtifactoryError;

/// Largest JSON document an administration request may send.
pub const MAX_JSON_BYTES: usize = 1 << 20;

/// Reads and parses a JSON body: 413 when larger than [`MAX_JSON_BYTES`],
/// 400 naming the problem when it is not the expected document.
pub async fn json<T: DeserializeOwned>(body: Body) -> Result<T, ArtifactoryError> {
    let bytes = axum::body::to_bytes(body, MAX_JSON_BYTES).await.map_err(|error| {
        let too_large =
            std::error::Error::source(&error).is_some_and(|source| source.is::<http_body_util::LengthLimitError>());
        if too_large {
            ArtifactoryError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the body is larger than {MAX_JSON_BYTES} bytes"),
            )
        } else {
            ArtifactoryError::new(StatusCode::BAD_REQUEST, format!("the body could not be read: {error}"))
        }
    })?;
    serde_json::from_slice(&bytes)
        .map_err(|error| ArtifactoryError::new(StatusCode::BAD_REQUEST, format!("invalid JSON document: {error}")))
}
