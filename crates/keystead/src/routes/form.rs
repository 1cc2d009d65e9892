//! HTML form bodies (`application/x-www-form-urlencoded`) on the routes that take one, when
//! [`Surface::with_form_bodies`](super::Surface::with_form_bodies) turns them on, so that plain
//! HTML forms and htmx work without JavaScript.
//!
//! A form post is answered like the same JSON post (status, JSON body, cookies), with one
//! difference that server-rendered pages need: when the form (or the query string) carries a
//! `next` field holding a local path, a success is `303 See Other` to `next`, and a failure is
//! `303 See Other` back to the page the form was on (its `Referer`, when it is a page of the
//! app's origin; else the sign-in page) with `error=<code>` in the query. The CSRF rules are the
//! same as for JSON: a form post is an unsafe request like any other.

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Response, StatusCode, header};
use serde::de::DeserializeOwned;

use super::response::{local_path, percent_encode};
use crate::auth::header_str;
use crate::{AuthError, ErrorCode};

/// `application/x-www-form-urlencoded`, parameters allowed.
pub(super) fn is_form(headers: &HeaderMap) -> bool {
    header_str(headers, header::CONTENT_TYPE).is_some_and(|value| {
        value
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .eq_ignore_ascii_case("application/x-www-form-urlencoded")
    })
}

/// A form body as `T`: `invalid_request` for missing or mistyped fields.
pub(super) fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, AuthError> {
    serde_urlencoded::from_bytes(body).map_err(|_| {
        AuthError::new(ErrorCode::InvalidRequest)
            .with_detail("The form does not have the expected fields.")
    })
}

/// The form's `next` field, else the query's, when it is a local path.
pub(super) fn next(body: &[u8], query: Option<&str>) -> Option<String> {
    let field = |pairs: &[u8]| {
        form_urlencoded::parse(pairs)
            .find(|(name, _)| name == "next")
            .map(|(_, value)| value.into_owned())
    };
    field(body)
        .or_else(|| query.and_then(|q| field(q.as_bytes())))
        .filter(|next| local_path(next).is_some())
}

/// The answer to a form post with `next`: a success goes to `next`, a failure back to `back`
/// with `error=<code>`; the cookies of the answer are kept.
pub(super) fn redirect(response: Response<Bytes>, next: &str, back: &str) -> Response<Bytes> {
    let location = if response.status().is_success() {
        next.to_owned()
    } else {
        let code = problem_code(response.body()).unwrap_or("invalid_request");
        let separator = if back.contains('?') { '&' } else { '?' };
        format!("{back}{separator}error={}", percent_encode(code))
    };
    let Ok(location) = HeaderValue::from_str(&location) else {
        return response;
    };
    let mut redirected = Response::new(Bytes::new());
    *redirected.status_mut() = StatusCode::SEE_OTHER;
    let headers = redirected.headers_mut();
    headers.insert(header::LOCATION, location);
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    for (name, value) in response.headers() {
        if name == header::SET_COOKIE || name == header::RETRY_AFTER {
            headers.append(name.clone(), value.clone());
        }
    }
    redirected
}

/// The `code` of a problem+json body.
fn problem_code(body: &[u8]) -> Option<&'static str> {
    #[derive(serde::Deserialize)]
    struct Problem {
        code: String,
    }
    let problem: Problem = serde_json::from_slice(body).ok()?;
    ErrorCode::ALL
        .iter()
        .find(|c| c.as_str() == problem.code)
        .map(|c| c.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_is_a_local_path_from_the_form_or_the_query() {
        assert_eq!(
            next(b"email=a%40b.c&next=%2Fapp%3Ftab%3D1", None).as_deref(),
            Some("/app?tab=1")
        );
        assert_eq!(next(b"email=a", Some("next=%2Fx")).as_deref(), Some("/x"));
        for evil in [
            "next=https%3A%2F%2Fevil.example",
            "next=%2F%2Fevil.example",
            "next=x",
        ] {
            assert_eq!(next(evil.as_bytes(), None), None, "{evil}");
        }
    }

    #[test]
    fn a_failure_goes_back_with_its_code_and_keeps_retry_after() {
        let problem = super::super::problem_response(&AuthError::rate_limited(7));
        let redirected = redirect(problem, "/app", "/sign-in?x=1");
        assert_eq!(redirected.status(), StatusCode::SEE_OTHER);
        assert_eq!(
            redirected.headers()[header::LOCATION],
            "/sign-in?x=1&error=rate_limited"
        );
        assert_eq!(redirected.headers()[header::RETRY_AFTER], "7");
    }
}
