//! Building responses: problem+json errors, JSON replies, and the small encoders they need.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};

use super::Reply;
use super::schema::Problem;
use crate::{AuthError, ErrorCode};

/// The `application/problem+json` (RFC 9457) response for an error: `type`, `title`,
/// `status`, the stable `code`, and `detail` when there is a client-safe one (never for
/// `internal`). 401s carry `WWW-Authenticate: Bearer` (with `error="insufficient_scope"` and
/// the scope for that 403), 429s `Retry-After`.
#[must_use]
pub fn problem_response(err: &AuthError) -> Response<Bytes> {
    let code = err.code;
    let body = Problem {
        kind: format!("urn:authkit:error:{}", code.as_str()),
        title: code.title().to_owned(),
        status: code.status(),
        code: code.as_str().to_owned(),
        detail: err
            .detail
            .as_deref()
            .filter(|_| code != ErrorCode::Internal)
            .map(str::to_owned),
        scope: err.required_scope.as_ref().map(|s| s.as_str().to_owned()),
    };
    let mut response = Response::new(Bytes::from(serde_json::to_vec(&body).unwrap_or_default()));
    *response.status_mut() =
        StatusCode::from_u16(code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if code.status() == 401 {
        headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    if code == ErrorCode::InsufficientScope {
        let scope = err.required_scope.as_deref().unwrap_or_default();
        // Scopes are validated names (no quotes or control characters).
        if let Ok(value) = HeaderValue::from_str(&format!(
            r#"Bearer error="insufficient_scope", scope="{scope}""#
        )) {
            headers.insert(header::WWW_AUTHENTICATE, value);
        }
    }
    if let Some(secs) = err.retry_after_secs {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
    }
    response
}

pub(super) fn reply_response(reply: Reply) -> Response<Bytes> {
    let body = reply.body.unwrap_or_default();
    let has_body = !body.is_empty() || reply.content_type.is_some();
    let mut response = Response::new(body);
    *response.status_mut() = reply.status;
    let headers = response.headers_mut();
    if has_body {
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(reply.content_type.unwrap_or("application/json")),
        );
    }
    for (name, value) in reply.headers {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.append(name, value);
        }
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    for cookie in reply.set_cookies {
        if let Ok(value) = HeaderValue::from_str(&cookie) {
            headers.append(header::SET_COOKIE, value);
        }
    }
    if let Some(location) = reply.location
        && let Ok(value) = HeaderValue::from_str(&location)
    {
        headers.insert(header::LOCATION, value);
    }
    response
}

/// Percent-encodes everything but RFC 3986's unreserved characters: for a path carried in a
/// query parameter (`/sign-in?next=%2Fdashboard`).
#[must_use]
pub fn percent_encode(input: &str) -> String {
    let mut out = String::with_capacity(input.len());
    for byte in input.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Decodes `%XX` escapes and `+` (as a space, the form encoding); invalid escapes stay as they
/// are, invalid UTF-8 is replaced.
#[must_use]
pub fn percent_decode(input: &str) -> String {
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if bytes
                .get(i + 1..i + 3)
                .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) =>
            {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("00");
                out.push(u8::from_str_radix(hex, 16).unwrap_or(b'?'));
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `next` if it is a path on this site (`/…`), else `None`: not `//host` or `/\host`
/// (protocol-relative to browsers), no scheme, no control characters or backslashes. For
/// redirects after sign-in, so they cannot send the user elsewhere.
#[must_use]
pub fn local_path(next: &str) -> Option<&str> {
    let ok = next.starts_with('/')
        && !next.starts_with("//")
        && !next.contains('\\')
        && !next.chars().any(char::is_control)
        && next.len() <= 2048;
    ok.then_some(next)
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    #[test]
    fn percent_round_trip() {
        let path = "/dashboard/tokens?tab=a b&x=é";
        let encoded = percent_encode(path);
        assert_eq!(encoded, "%2Fdashboard%2Ftokens%3Ftab%3Da%20b%26x%3D%C3%A9");
        assert_eq!(percent_decode(&encoded), path);
        assert_eq!(percent_decode("a+b%2"), "a b%2");
        assert_eq!(percent_decode("%zz%41"), "%zzA");
    }

    #[test]
    fn local_paths_only() {
        assert_eq!(local_path("/dashboard"), Some("/dashboard"));
        assert_eq!(local_path("/a?b=c"), Some("/a?b=c"));
        for bad in [
            "//evil.example",
            "/\\evil.example",
            "https://evil.example",
            "javascript:alert(1)",
            "dashboard",
            "",
            "/a\nb",
        ] {
            assert_eq!(local_path(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn problems_have_the_contract_shape() {
        let response = problem_response(&AuthError::rate_limited(30));
        assert_eq!(response.status(), 429);
        assert_eq!(response.headers()[header::RETRY_AFTER], "30");
        let body: Value = serde_json::from_slice(response.body()).unwrap();
        assert_eq!(body["code"], "rate_limited");
        assert_eq!(body["status"], 429);
        assert!(body["type"].is_string() && body["title"].is_string());

        let response = problem_response(&AuthError::insufficient_scope("write:deployments"));
        assert_eq!(
            response.headers()[header::WWW_AUTHENTICATE],
            r#"Bearer error="insufficient_scope", scope="write:deployments""#
        );
        let response = problem_response(
            &AuthError::new(ErrorCode::Internal).with_detail("select * from users"),
        );
        let body: Value = serde_json::from_slice(response.body()).unwrap();
        assert!(body.get("detail").is_none());
        assert_eq!(
            problem_response(&AuthError::new(ErrorCode::Unauthenticated)).headers()
                [header::WWW_AUTHENTICATE],
            "Bearer"
        );
    }
}
