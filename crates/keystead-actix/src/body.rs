//! Request bodies: actix's payload stream as the [`http_body::Body`] the core reads.

use std::pin::Pin;
use std::task::{Context, Poll};

use actix_web::error::PayloadError;
use actix_web::{HttpRequest, web};
use bytes::Bytes;
use futures_core::Stream;
use http_body::Frame;
use serde::de::DeserializeOwned;

use crate::{AuthRejection, http_headers};

/// An actix request body as an [`http_body::Body`], streamed as it arrives: the core reads it
/// with its own limit ([`keystead::routes::MAX_BODY_BYTES`], 413 past it).
pub struct PayloadBody(web::Payload);

impl PayloadBody {
    /// Wraps the request's payload.
    #[must_use]
    pub fn new(payload: web::Payload) -> Self {
        Self(payload)
    }
}

impl std::fmt::Debug for PayloadBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PayloadBody")
    }
}

impl http_body::Body for PayloadBody {
    type Data = Bytes;
    type Error = PayloadError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, PayloadError>>> {
        Pin::new(&mut self.0)
            .poll_next(cx)
            .map(|chunk| chunk.map(|chunk| chunk.map(Frame::data)))
    }
}

/// Reads a JSON request body the way the library's routes do, for an app's own JSON routes
/// ([`keystead::routes::read_json`]): 413 `payload_too_large`, 415 `unsupported_media_type`,
/// 400 `invalid_request`, each as problem+json.
///
/// # Errors
/// As above.
pub async fn read_json<T: DeserializeOwned>(
    request: &HttpRequest,
    payload: web::Payload,
) -> Result<T, AuthRejection> {
    let headers = http_headers(request.headers());
    Ok(keystead::routes::read_json(&headers, PayloadBody::new(payload)).await?)
}
