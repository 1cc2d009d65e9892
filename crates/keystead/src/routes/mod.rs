//! The library's HTTP surface, framework-free: an [`http::Request`] in, an
//! [`http::Response`] out.
//!
//! Adapters mount [`Auth::handle`] on the paths [`Auth::is_library_path`] accepts (`/auth/…`,
//! `/orgs…`, `/invitations/…`, `/api/tokens…`, `/.well-known/jwks.json`) and translate types;
//! everything else — routing, CSRF, the body limit, content types, problem+json errors,
//! cookies, status codes — happens here, once, for every framework.
//!
//! ```no_run
//! # async fn run(auth: keystead::Auth) {
//! use bytes::Bytes;
//! use http_body_util::Full;
//!
//! let request = http::Request::post("/auth/sign-in")
//!     .header("content-type", "application/json")
//!     .body(Full::new(Bytes::from_static(br#"{"email":"a@example.com","password":"hunter22"}"#)))
//!     .unwrap();
//! let response = auth.handle(request, "127.0.0.1".parse().unwrap()).await;
//! // Unknown account: 401 invalid_credentials, as problem+json.
//! assert_eq!(response.status(), 401);
//! # }
//! ```
//!
//! Order of checks for every request: route (404 `not_found`, 405 `method_not_allowed` with
//! `Allow`), fail-closed authentication (503), CSRF (403 `csrf_rejected`), the body limit (413
//! `payload_too_large`, [`MAX_BODY_BYTES`]), the content type (415), the JSON body (400
//! `invalid_request`), then the route's own rules.

mod account;
mod audit;
mod form;
mod mfa;
mod oauth;
mod openapi;
mod orgs;
mod passkeys;
mod response;
pub mod schema;
mod surface;
pub mod table;
mod tokens;

use std::net::IpAddr;

use bytes::{Buf, BufMut, Bytes};
use http::{HeaderMap, Method, Request, Response, StatusCode, header};
use http_body::Body;
use http_body_util::BodyExt;
use serde::de::DeserializeOwned;

pub use response::{local_path, percent_decode, percent_encode, problem_response};
pub use surface::{Surface, SurfaceError};
pub use table::{Access, RouteSpec};

use table::Found;

use crate::accounts::ClientInfo;
use crate::auth::{Auth, Authentication, header_str};
use crate::gate::{GateHeader, RequestHeaders};
use crate::principal::Principal;
use crate::{AuthError, ErrorCode};

/// The largest request body the library's routes read: 1 MiB. Larger ones get 413
/// `payload_too_large`.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// What a route handler answers: a status, a JSON body, cookies, a redirect.
#[derive(Debug, Default)]
pub(crate) struct Reply {
    status: StatusCode,
    body: Option<Bytes>,
    set_cookies: Vec<String>,
    location: Option<String>,
    /// The body's type when it is not JSON (a download).
    content_type: Option<&'static str>,
    /// More headers (a download's `Content-Disposition`).
    headers: Vec<(header::HeaderName, String)>,
}

impl Reply {
    /// `body` as JSON: one of the reply types of [`schema`], which the OpenAPI document
    /// describes.
    fn json<T: serde::Serialize>(status: StatusCode, body: &T) -> Self {
        Self {
            status,
            // The reply types serialize infallibly (strings, numbers, booleans, lists).
            body: serde_json::to_vec(body).ok().map(Bytes::from),
            ..Self::default()
        }
    }

    /// A download: `body` of `content_type`, saved by a browser as `filename` (a name made
    /// of ids and ASCII, never of input).
    fn download(content_type: &'static str, filename: &str, body: String) -> Self {
        Self {
            status: StatusCode::OK,
            body: Some(Bytes::from(body)),
            content_type: Some(content_type),
            headers: vec![(
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{filename}\""),
            )],
            ..Self::default()
        }
    }

    fn header(mut self, name: header::HeaderName, value: String) -> Self {
        self.headers.push((name, value));
        self
    }

    fn redirect(status: StatusCode, location: String) -> Self {
        Self {
            status,
            location: Some(location),
            ..Self::default()
        }
    }

    fn empty(status: StatusCode) -> Self {
        Self {
            status,
            ..Self::default()
        }
    }

    fn cookie(mut self, set_cookie: String) -> Self {
        self.set_cookies.push(set_cookie);
        self
    }
}

/// One request as the handlers see it.
pub(crate) struct Call<'a> {
    auth: &'a Auth,
    query: Option<String>,
    body: Bytes,
    /// Whether the body is an HTML form rather than JSON.
    form: bool,
    client: ClientInfo,
    authn: Authentication,
    /// The path's `{name}` segments, as sent.
    params: Vec<(&'static str, String)>,
    /// The reference in the OAuth flow cookie, if the request has one.
    oauth_cookie: Option<String>,
    /// The token in the pending sign-in cookie, if the request has one.
    mfa_cookie: Option<String>,
}

impl Call<'_> {
    /// The body as `T` (JSON, or an HTML form on the routes that take one); `invalid_request`
    /// for a malformed body or missing fields.
    fn body<T: DeserializeOwned>(&self) -> Result<T, AuthError> {
        if self.form {
            form::parse(&self.body)
        } else {
            parse_json_object(&self.body)
        }
    }

    /// A `{name}` segment of the path, as sent.
    fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find_map(|(n, v)| (*n == name).then_some(v.as_str()))
    }

    /// A `{name}_id` segment of the path parsed as its id type; `None` when malformed.
    fn id_param<T: std::str::FromStr>(&self, name: &str) -> Option<T> {
        self.param(name).and_then(|id| id.parse().ok())
    }

    /// The signed-in principal, or why there is none (401).
    fn principal(&self) -> Result<&Principal, AuthError> {
        self.authn.require()
    }

    /// A query parameter (percent-decoded).
    fn query_param(&self, name: &str) -> Option<String> {
        let query = self.query.as_deref()?;
        query.split('&').find_map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (key == name).then(|| response::percent_decode(value))
        })
    }
}

/// The path of the provider callback: every answer there ends the browser's flow.
const OAUTH_CALLBACK: &str = "/auth/oauth/{provider}/callback";

impl Auth {
    /// The library's route table: every route, relative to the base path.
    #[must_use]
    pub fn route_table() -> &'static [RouteSpec] {
        table::ROUTES
    }

    /// Every path the library serves, with the base path, each once, in the pattern syntax
    /// axum and actix-web share (`/orgs/{org_id}/members`): what an adapter mounts. The
    /// `/auth` namespace is the library's as a whole (an unknown `/auth/…` path is answered
    /// 404 by the library), so `<base>/auth/{*rest}` comes last.
    #[must_use]
    pub fn route_paths(&self) -> Vec<String> {
        let mut paths: Vec<String> = Vec::new();
        for route in table::ROUTES {
            let path = self.surface().library_path(route.path);
            if !paths.contains(&path) {
                paths.push(path);
            }
        }
        paths.push(self.surface().library_path("/auth/{*rest}"));
        paths
    }

    /// Whether `path` is one of the library's: a path of its route table (with any method),
    /// or under `<base>/auth/`. The adapters send these to [`Auth::handle`].
    #[must_use]
    pub fn is_library_path(&self, path: &str) -> bool {
        self.surface().relative(path).is_some_and(|relative| {
            relative.starts_with("/auth/")
                || table::ROUTES
                    .iter()
                    .any(|route| table::matches(route.path, relative))
        })
    }

    /// Whether `method` on `path` (as sent, not decoded) is exactly one of the library's routes:
    /// a path of its route table with a well-formed id where the route has one, and a method
    /// the route answers. The gate leaves the CSRF check of these to [`Auth::handle`] (which
    /// applies the login variant on sign-in and sign-up); every other unsafe request, an app's
    /// `POST /orgs/export` beside the library's `/orgs/…` included, gets the gate's check.
    #[must_use]
    pub fn is_library_route(&self, method: &Method, path: &str) -> bool {
        if path.contains('%') {
            return false;
        }
        let Some(relative) = self.surface().relative(path) else {
            return false;
        };
        match table::find(method, relative) {
            Found::Route(_, params) => params
                .iter()
                .filter(|(name, _)| table::is_id_param(name))
                .all(|(_, value)| value.parse::<uuid::Uuid>().is_ok()),
            Found::MethodNotAllowed(_) | Found::NoRoute => false,
        }
    }

    /// Serves one request to the library's routes. `peer` is the socket's remote address (the
    /// client address comes from it, or from trusted proxies).
    ///
    /// If the request's extensions hold an [`Authentication`] (put there by the adapter's
    /// layer), it is used; otherwise the request is authenticated here.
    pub async fn handle<B>(&self, request: Request<B>, peer: IpAddr) -> Response<Bytes>
    where
        B: Body,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let (mut parts, body) = request.into_parts();
        let path = parts.uri.path().to_owned();
        let Some(relative) = self.surface().relative(&path) else {
            return problem_response(&AuthError::new(ErrorCode::NotFound));
        };
        let (route, params) = match table::find(&parts.method, relative) {
            Found::Route(route, params) => (route, params),
            Found::MethodNotAllowed(methods) => {
                let mut response = problem_response(&AuthError::new(ErrorCode::MethodNotAllowed));
                let allow = methods
                    .iter()
                    .map(|m| m.as_str())
                    .collect::<Vec<_>>()
                    .join(", ");
                if let Ok(value) = allow.parse() {
                    response.headers_mut().insert(header::ALLOW, value);
                }
                return response;
            }
            Found::NoRoute => return problem_response(&AuthError::new(ErrorCode::NotFound)),
        };
        let authn = match parts.extensions.remove::<Authentication>() {
            Some(authn) => authn,
            None => self.authenticate(&parts.headers).await,
        };
        if let Some(fatal) = authn.fatal() {
            return problem_response(fatal);
        }
        // A refreshed or cleared session cookie goes out with every answer from here on, also
        // a refusal: the sliding expiry already moved in the store, and it moves only once per
        // half-lifetime, so a refusal that dropped it would leave the browser's cookie to die
        // at the old expiry.
        let refresh_cookie = authn.set_cookie.clone();
        if let Err(err) = self.check_csrf(&parts.method, &parts.headers, route.login_csrf) {
            return with_session_cookie(problem_response(&err), refresh_cookie.as_ref());
        }
        if route.access == Access::Session && authn.bearer {
            return with_session_cookie(
                problem_response(
                    &AuthError::new(ErrorCode::Forbidden)
                        .with_detail("This route needs a browser session, not an API token."),
                ),
                refresh_cookie.as_ref(),
            );
        }
        let body = match read_body(&parts.headers, body).await {
            Ok(body) => body,
            Err(err) => {
                return with_session_cookie(problem_response(&err), refresh_cookie.as_ref());
            }
        };
        let form = match route.body {
            table::BodyKind::None => false,
            _ if is_json(&parts.headers) => false,
            table::BodyKind::JsonOrForm
                if self.surface().form_bodies() && form::is_form(&parts.headers) =>
            {
                true
            }
            table::BodyKind::Json | table::BodyKind::JsonOrForm => {
                return with_session_cookie(
                    problem_response(&AuthError::new(ErrorCode::UnsupportedMediaType)),
                    refresh_cookie.as_ref(),
                );
            }
        };
        let query = parts.uri.query().map(str::to_owned);
        let next = form.then(|| form::next(&body, query.as_deref())).flatten();
        let call = Call {
            auth: self,
            client: self.client_info(peer, &parts.headers),
            query,
            body,
            form,
            oauth_cookie: self
                .cookies()
                .oauth_token(&crate::auth::cookie_header(&parts.headers))
                .map(str::to_owned),
            mfa_cookie: self
                .cookies()
                .mfa_token(&crate::auth::cookie_header(&parts.headers))
                .map(str::to_owned),
            authn,
            params: params
                .iter()
                .map(|(name, value)| (name, value.to_owned()))
                .collect(),
        };
        let result = (route.handler)(&call).await;
        let response = match result {
            Ok(reply) => response::reply_response(reply),
            Err(err) => problem_response(&err),
        };
        let mut response = with_session_cookie(response, refresh_cookie.as_ref());
        if route.path == OAUTH_CALLBACK
            && let Ok(value) = http::HeaderValue::from_str(&self.cookies().oauth_removal_cookie())
        {
            // Whatever the outcome, this browser's flow is over.
            response.headers_mut().append(header::SET_COOKIE, value);
        }
        if let Some(next) = next {
            let back = self.form_page(&parts.headers);
            response = form::redirect(response, &next, &back);
        }
        response
    }

    /// The page a form was posted from: its `Referer` when that is a page of the app's
    /// origin, else the sign-in page.
    fn form_page(&self, headers: &HeaderMap) -> String {
        header_str(headers, header::REFERER)
            .and_then(|referer| referer.strip_prefix(self.origin().as_str()))
            .and_then(local_path)
            .map_or_else(|| self.surface().sign_in_path().to_owned(), str::to_owned)
    }

    /// The answer for a request that needs a signed-in user and has none: a browser asking
    /// for a page (`GET`/`HEAD` accepting `text/html`) is sent to the sign-in page
    /// ([`Surface::sign_in_path`], `/sign-in?next=<path>` by default) with
    /// 303; anything else gets the 401 problem (`failure` if a credential was presented and
    /// failed, else `unauthenticated`).
    #[must_use]
    pub fn unauthenticated_response<H: RequestHeaders + ?Sized>(
        &self,
        method: &Method,
        path_and_query: &str,
        headers: &H,
        failure: Option<&AuthError>,
    ) -> Response<Bytes> {
        let browser = (*method == Method::GET || *method == Method::HEAD)
            && headers
                .first_text(GateHeader::Accept)
                .flatten()
                .is_some_and(|a| a.contains("text/html"));
        if browser {
            let location = format!(
                "{}?next={}",
                self.surface().sign_in_path(),
                percent_encode(path_and_query)
            );
            let mut response = Response::new(Bytes::new());
            *response.status_mut() = StatusCode::SEE_OTHER;
            if let Ok(value) = location.parse() {
                response.headers_mut().insert(header::LOCATION, value);
            }
            return response;
        }
        let err = failure
            .filter(|e| e.status() == 401)
            .cloned()
            .unwrap_or_else(|| AuthError::new(ErrorCode::Unauthenticated));
        problem_response(&err)
    }
}

/// Adds the session cookie that authentication produced (refreshed or cleared) under the one
/// rule of [`crate::gate::append_session_cookie`].
fn with_session_cookie(
    mut response: Response<Bytes>,
    cookie: Option<&http::HeaderValue>,
) -> Response<Bytes> {
    crate::gate::append_session_cookie(response.headers_mut(), cookie);
    response
}

/// `application/json` or `application/…+json`, parameters allowed.
fn is_json(headers: &HeaderMap) -> bool {
    header_str(headers, header::CONTENT_TYPE).is_some_and(|value| {
        let essence = value
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        essence == "application/json"
            || (essence.starts_with("application/") && essence.ends_with("+json"))
    })
}

/// How much of an oversized body is read and dropped before the 413 goes out, and for how
/// long at most: HTTP/1 servers close a connection whose request body was left unread, and a
/// client still sending it then gets a reset instead of the answer. Past either bound the
/// answer goes out at once.
pub const DRAIN_BYTES: u64 = 4 * MAX_BODY_BYTES as u64;
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(2);

/// Reads at most [`MAX_BODY_BYTES`]; 413 past it (by `Content-Length` before reading, or
/// while reading a body without one), after draining what the client is still sending (up to
/// [`DRAIN_BYTES`] and [`DRAIN_TIME`]).
async fn read_body<B>(headers: &HeaderMap, body: B) -> Result<Bytes, AuthError>
where
    B: Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let too_large = || AuthError::new(ErrorCode::PayloadTooLarge);
    let mut body = std::pin::pin!(body);
    let declared = header_str(headers, header::CONTENT_LENGTH).and_then(|v| v.parse::<u64>().ok());
    if let Some(len) = declared.filter(|len| *len > MAX_BODY_BYTES as u64) {
        if len <= DRAIN_BYTES {
            drain(body).await;
        }
        return Err(too_large());
    }
    let mut read = bytes::BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|err| {
            let err: Box<dyn std::error::Error + Send + Sync> = err.into();
            tracing::debug!(error = %err, "could not read the request body");
            AuthError::new(ErrorCode::InvalidRequest)
                .with_detail("The request body could not be read.")
        })?;
        if let Ok(data) = frame.into_data() {
            if read.len() + data.remaining() > MAX_BODY_BYTES {
                drain(body).await;
                return Err(too_large());
            }
            read.put(data);
        }
    }
    Ok(read.freeze())
}

/// Reads and drops the rest of a body, within [`DRAIN_BYTES`] and [`DRAIN_TIME`].
async fn drain<B: Body>(mut body: std::pin::Pin<&mut B>) {
    let mut left = DRAIN_BYTES;
    let _ = tokio::time::timeout(DRAIN_TIME, async {
        while let Some(Ok(frame)) = body.frame().await {
            if let Some(data) = frame.data_ref() {
                let len = data.remaining() as u64;
                if len >= left {
                    return;
                }
                left -= len;
            }
        }
    })
    .await;
}

/// Reads a JSON request body the way the library's routes do, for an app's own JSON routes:
/// 413 `payload_too_large` past [`MAX_BODY_BYTES`], 415 `unsupported_media_type` unless the
/// content type is JSON, 400 `invalid_request` for malformed JSON or missing fields.
///
/// # Errors
/// As above.
pub async fn read_json<T, B>(headers: &HeaderMap, body: B) -> Result<T, AuthError>
where
    T: DeserializeOwned,
    B: Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    if !is_json(headers) {
        return Err(AuthError::new(ErrorCode::UnsupportedMediaType));
    }
    let bytes = read_body(headers, body).await?;
    parse_json_object(&bytes)
}

/// A JSON object as `T`: `invalid_request` for malformed JSON, missing or mistyped fields,
/// and for any other JSON value (serde would take an array for a struct, field by position).
fn parse_json_object<T: DeserializeOwned>(body: &[u8]) -> Result<T, AuthError> {
    let invalid = |detail: &str| AuthError::new(ErrorCode::InvalidRequest).with_detail(detail);
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(invalid("The request body must be a JSON object."));
    }
    serde_json::from_slice(body).map_err(|e| {
        invalid(if e.is_data() {
            "The request body does not have the expected fields."
        } else {
            "The request body is not valid JSON."
        })
    })
}

/// Each JSON request body of the contract parsed from `body` as its route parses it (the
/// numbers range-checked too), named by route: what the parsers' property tests drive.
#[cfg(test)]
pub(crate) fn parse_each_body(body: &[u8]) -> Vec<(&'static str, Result<(), AuthError>)> {
    fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<(), AuthError> {
        parse_json_object::<T>(body).map(drop)
    }
    vec![
        ("sign-up", parse::<schema::SignUpBody>(body)),
        ("sign-in", parse::<schema::SignInBody>(body)),
        ("verify-email", parse::<schema::TokenBody>(body)),
        ("password-reset", parse::<schema::EmailBody>(body)),
        (
            "password-reset/confirm",
            parse::<schema::ResetConfirmBody>(body),
        ),
        ("change-password", parse::<schema::ChangePasswordBody>(body)),
        ("orgs", parse::<schema::CreateOrgBody>(body)),
        ("active-org", parse::<schema::ActiveOrgBody>(body)),
        ("invitations", parse::<schema::InviteBody>(body)),
        ("member role", parse::<schema::RoleBody>(body)),
        ("transfer", parse::<schema::TransferBody>(body)),
        ("invitations/accept", parse::<schema::TokenBody>(body)),
        (
            "api/tokens",
            parse_json_object::<schema::NewTokenBody>(body)
                .and_then(|t| tokens::expires_in_days(t.expires_in_days.as_ref()))
                .map(drop),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use std::pin::Pin;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::{Context, Poll};

    use http_body::Frame;

    use super::*;

    /// `chunks` chunks of `size` bytes, counting what the reader pulled.
    struct Counting {
        chunks: usize,
        size: usize,
        pulled: Arc<AtomicUsize>,
    }

    impl Body for Counting {
        type Data = Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            if self.chunks == 0 {
                return Poll::Ready(None);
            }
            self.chunks -= 1;
            self.pulled.fetch_add(self.size, Ordering::Relaxed);
            Poll::Ready(Some(Ok(Frame::data(Bytes::from(vec![b'a'; self.size])))))
        }
    }

    async fn read(chunks: usize, size: usize, declare: bool) -> (Result<Bytes, AuthError>, usize) {
        let pulled = Arc::new(AtomicUsize::new(0));
        let mut headers = HeaderMap::new();
        if declare {
            headers.insert(header::CONTENT_LENGTH, (chunks * size).into());
        }
        let body = Counting {
            chunks,
            size,
            pulled: pulled.clone(),
        };
        let result = read_body(&headers, body).await;
        (result, pulled.load(Ordering::Relaxed))
    }

    #[tokio::test]
    async fn a_body_at_the_limit_is_read() {
        for declare in [true, false] {
            let (result, pulled) = read(16, MAX_BODY_BYTES / 16, declare).await;
            assert_eq!(result.expect("at the limit").len(), MAX_BODY_BYTES);
            assert_eq!(pulled, MAX_BODY_BYTES);
        }
    }

    #[tokio::test]
    async fn an_oversized_body_is_413_after_it_was_drained() {
        // What a client still sending it needs to read the answer rather than a reset.
        for declare in [true, false] {
            let (result, pulled) = read(17, MAX_BODY_BYTES / 16, declare).await;
            assert_eq!(
                result.expect_err("over the limit").code,
                ErrorCode::PayloadTooLarge
            );
            assert_eq!(pulled, 17 * (MAX_BODY_BYTES / 16), "declared: {declare}");
        }
    }

    #[tokio::test]
    async fn a_huge_body_is_not_drained_past_the_bound() {
        let chunk = MAX_BODY_BYTES / 4;
        // Declared past the bound: answered before reading any of it.
        let (result, pulled) = read(64, chunk, true).await;
        assert_eq!(result.expect_err("huge").code, ErrorCode::PayloadTooLarge);
        assert_eq!(pulled, 0);
        // Undeclared: the limit, the chunk that crossed it and at most the bound are read.
        let (result, pulled) = read(64, chunk, false).await;
        assert_eq!(result.expect_err("huge").code, ErrorCode::PayloadTooLarge);
        let most = MAX_BODY_BYTES as u64 + chunk as u64 + DRAIN_BYTES;
        assert!(pulled as u64 <= most, "{pulled}");
        assert!(pulled < 64 * chunk);
    }
}
