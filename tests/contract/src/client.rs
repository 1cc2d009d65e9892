//! A plain HTTP client for the app: no redirects followed, no cookie jar — every cookie and
//! header a case sends is spelled out in the case.

use std::fmt;
use std::time::Duration;

use cookie::Cookie;
use reqwest::Method;
use reqwest::header::{self, HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;

/// The session cookie's name on an `http://` origin.
pub const SESSION_COOKIE: &str = "authkit_session";

/// The session cookie's name on an `https://` origin.
pub const SECURE_SESSION_COOKIE: &str = "__Host-authkit_session";

/// The `User-Agent` every request carries unless a case sets its own.
pub const DEFAULT_USER_AGENT: &str = "contract-suite";

/// The `Accept` header of a browser navigating to a page.
pub const BROWSER_ACCEPT: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";

/// How long one request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A client for one app. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base_url: String,
    origin: String,
}

impl Client {
    /// A client for the app at `base_url` (`http://ADDR`), which is also its origin.
    ///
    /// # Panics
    /// When the HTTP client cannot be built.
    #[must_use]
    pub fn new(base_url: String) -> Self {
        let origin = base_url.clone();
        Self::with_origin(base_url, origin)
    }

    /// A client for the app at `base_url` whose public origin is `origin` (`APP_ORIGIN`: an
    /// instance behind a load balancer, reached directly).
    ///
    /// # Panics
    /// When the HTTP client cannot be built.
    #[must_use]
    pub fn with_origin(base_url: String, origin: String) -> Self {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(DEFAULT_USER_AGENT)
            .timeout(REQUEST_TIMEOUT)
            .build()
            .expect("an HTTP client");
        Self {
            http,
            base_url,
            origin,
        }
    }

    /// The app's origin: `http://ADDR`, or the one given to [`Client::with_origin`].
    #[must_use]
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// A request; `target` is a path (`/auth/session`) or an absolute URL.
    #[must_use]
    pub fn request(&self, method: Method, target: &str) -> Request {
        let url = if target.starts_with("http://") || target.starts_with("https://") {
            target.to_owned()
        } else {
            format!("{}{target}", self.base_url)
        };
        Request {
            label: format!("{method} {target}"),
            inner: self.http.request(method, url),
            origin: self.origin.clone(),
        }
    }

    /// A GET request.
    #[must_use]
    pub fn get(&self, target: &str) -> Request {
        self.request(Method::GET, target)
    }

    /// A POST request (no `Origin` yet: add [`Request::app_origin`] as a browser would).
    #[must_use]
    pub fn post(&self, target: &str) -> Request {
        self.request(Method::POST, target)
    }

    /// A PUT request (no `Origin` yet).
    #[must_use]
    pub fn put(&self, target: &str) -> Request {
        self.request(Method::PUT, target)
    }

    /// A DELETE request (no `Origin` yet).
    #[must_use]
    pub fn delete(&self, target: &str) -> Request {
        self.request(Method::DELETE, target)
    }

    /// GET with the session cookie, as a browser sends it.
    pub async fn get_with(&self, target: &str, cookie: &SessionCookie) -> Reply {
        self.get(target).cookie(cookie).send().await
    }

    /// POST `body` as JSON with `Origin` equal to the app's origin and no cookie.
    pub async fn post_json(&self, target: &str, body: &Value) -> Reply {
        self.post(target).app_origin().json(body).send().await
    }

    /// POST `body` as JSON with `Origin` equal to the app's origin and the session cookie.
    pub async fn post_json_with(
        &self,
        target: &str,
        body: &Value,
        cookie: &SessionCookie,
    ) -> Reply {
        self.post(target)
            .app_origin()
            .cookie(cookie)
            .json(body)
            .send()
            .await
    }

    /// POST without a body, with `Origin` equal to the app's origin and the session cookie.
    pub async fn post_with(&self, target: &str, cookie: &SessionCookie) -> Reply {
        self.post(target).app_origin().cookie(cookie).send().await
    }

    /// DELETE with `Origin` equal to the app's origin and the session cookie.
    pub async fn delete_with(&self, target: &str, cookie: &SessionCookie) -> Reply {
        self.delete(target).app_origin().cookie(cookie).send().await
    }
}

/// A request being built; [`Request::send`] sends it.
#[derive(Debug)]
pub struct Request {
    label: String,
    inner: reqwest::RequestBuilder,
    origin: String,
}

impl Request {
    /// Adds a header.
    ///
    /// # Panics
    /// When `name` or `value` is not a valid header.
    #[must_use]
    pub fn header(mut self, name: &str, value: &str) -> Self {
        let name = HeaderName::from_bytes(name.as_bytes())
            .unwrap_or_else(|e| panic!("bad header name {name:?}: {e}"));
        let value = HeaderValue::from_str(value)
            .unwrap_or_else(|e| panic!("bad header value {value:?}: {e}"));
        self.inner = self.inner.header(name, value);
        self
    }

    /// `Origin:` the app's origin, as a browser sends on a same-origin POST.
    #[must_use]
    pub fn app_origin(self) -> Self {
        let origin = self.origin.clone();
        self.header("origin", &origin)
    }

    /// `Cookie:` the session cookie.
    #[must_use]
    pub fn cookie(self, cookie: &SessionCookie) -> Self {
        self.header("cookie", &cookie.header_value())
    }

    /// `Authorization: Bearer token`.
    #[must_use]
    pub fn bearer(self, token: &str) -> Self {
        self.header("authorization", &format!("Bearer {token}"))
    }

    /// `Accept:` what a browser sends when it navigates to a page.
    #[must_use]
    pub fn accept_html(self) -> Self {
        self.header("accept", BROWSER_ACCEPT)
    }

    /// `User-Agent:` `agent` instead of [`DEFAULT_USER_AGENT`].
    #[must_use]
    pub fn user_agent(self, agent: &str) -> Self {
        self.header("user-agent", agent)
    }

    /// `body` as `application/json`.
    ///
    /// # Panics
    /// Never for a [`Value`].
    #[must_use]
    pub fn json(self, body: &Value) -> Self {
        let bytes = serde_json::to_vec(body).expect("a JSON value serializes");
        self.body(Some("application/json"), bytes)
    }

    /// A raw body, with `Content-Type: content_type` when given.
    #[must_use]
    pub fn body(mut self, content_type: Option<&str>, bytes: Vec<u8>) -> Self {
        if let Some(content_type) = content_type {
            self = self.header("content-type", content_type);
        }
        self.inner = self.inner.body(bytes);
        self
    }

    /// Sends the request and reads the whole answer.
    ///
    /// # Panics
    /// When the request fails at the transport level (connection refused, timeout).
    pub async fn send(self) -> Reply {
        let label = self.label.clone();
        self.try_send()
            .await
            .unwrap_or_else(|e| panic!("{label} failed: {e}"))
    }

    /// Sets a timeout for this request alone (the client's is 30 s).
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.inner = self.inner.timeout(timeout);
        self
    }

    /// Sends the request and reads the whole answer; a transport failure (connection refused
    /// or reset, timeout) is an `Err` describing it, for load loops that count them.
    ///
    /// # Errors
    /// The transport failure.
    pub async fn try_send(self) -> Result<Reply, String> {
        let response = self.inner.send().await.map_err(|e| format!("{e:?}"))?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response
            .bytes()
            .await
            .map_err(|e| format!("reading the body: {e:?}"))?
            .to_vec();
        Ok(Reply {
            label: self.label,
            status,
            headers,
            body,
        })
    }
}

/// A session cookie as the client sends it back: `name=value`.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionCookie {
    /// The cookie's name (`authkit_session` on `http://`).
    pub name: String,
    /// The cookie's value: the session token.
    pub value: String,
}

impl SessionCookie {
    /// `name=value`, for a `Cookie:` header.
    #[must_use]
    pub fn header_value(&self) -> String {
        format!("{}={}", self.name, self.value)
    }
}

impl fmt::Debug for SessionCookie {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Only a prefix: enough to tell two apart in a failure message.
        let shown: String = self.value.chars().take(8).collect();
        write!(f, "{}={shown}…", self.name)
    }
}

/// A whole answer: status, headers and body.
#[derive(Debug, Clone)]
pub struct Reply {
    /// `METHOD target` of the request, for messages.
    pub label: String,
    /// The status code.
    pub status: u16,
    /// The headers.
    pub headers: HeaderMap,
    /// The body.
    pub body: Vec<u8>,
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} answered {}", self.label, self.status)?;
        for (name, value) in &self.headers {
            writeln!(f, "  {name}: {}", String::from_utf8_lossy(value.as_bytes()))?;
        }
        let text = self.text();
        let shown: String = text.chars().take(2_000).collect();
        write!(f, "  body: {shown}")?;
        if shown.len() < text.len() {
            write!(f, "… ({} bytes)", self.body.len())?;
        }
        Ok(())
    }
}

impl Reply {
    /// The body as text (lossy UTF-8).
    #[must_use]
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The value of header `name`, when present and text.
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The media type of `Content-Type`, lowercase, without parameters (`""` when absent).
    #[must_use]
    pub fn media_type(&self) -> String {
        self.header("content-type")
            .unwrap_or_default()
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase()
    }

    /// Asserts the status and returns the reply, for chaining.
    ///
    /// # Panics
    /// When the status differs; the message shows the whole reply.
    #[track_caller]
    pub fn expect(self, status: u16) -> Self {
        assert_eq!(self.status, status, "expected {status}: {self}");
        self
    }

    /// The body as JSON.
    ///
    /// # Panics
    /// When the body is not JSON.
    #[must_use]
    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("the body is not JSON ({e}): {self}"))
    }

    /// Asserts a JSON answer: the status, `Content-Type: application/json`, and returns the body.
    ///
    /// # Panics
    /// When any of that does not hold.
    #[must_use]
    #[track_caller]
    pub fn json_with(&self, status: u16) -> Value {
        assert_eq!(self.status, status, "expected {status}: {self}");
        assert_eq!(
            self.media_type(),
            "application/json",
            "expected JSON: {self}"
        );
        self.json()
    }

    /// Asserts an RFC 9457 problem: the status, `Content-Type: application/problem+json`, a JSON
    /// object with string `type` and `title`, `status` equal to the status, the machine `code`,
    /// `detail` (if any) a string, and nothing in the body that looks like internal detail.
    /// Returns the body.
    ///
    /// # Panics
    /// When any of that does not hold.
    #[track_caller]
    pub fn problem(&self, status: u16, code: &str) -> Value {
        assert_eq!(self.status, status, "expected {status} {code}: {self}");
        assert_eq!(
            self.media_type(),
            "application/problem+json",
            "an error must be application/problem+json: {self}"
        );
        let body = self.json();
        assert!(body.is_object(), "a problem is a JSON object: {self}");
        assert!(
            body["type"].is_string(),
            "a problem has a string `type`: {self}"
        );
        assert!(
            body["title"].is_string(),
            "a problem has a string `title`: {self}"
        );
        assert_eq!(
            body["status"].as_u64(),
            Some(u64::from(status)),
            "the problem's `status` is the HTTP status: {self}"
        );
        assert_eq!(body["code"], code, "expected the code {code:?}: {self}");
        assert!(
            body.get("detail").is_none_or(Value::is_string),
            "a problem's `detail` is a string: {self}"
        );
        let text = self.text();
        for leak in [
            "panicked at",
            "sqlx",
            "SELECT ",
            "INSERT INTO",
            "stack backtrace",
        ] {
            assert!(
                !text.contains(leak),
                "the problem leaks internal detail ({leak:?}): {self}"
            );
        }
        body
    }

    /// Asserts 401 `code` with a `WWW-Authenticate: Bearer` challenge.
    ///
    /// # Panics
    /// When any of that does not hold.
    #[track_caller]
    pub fn unauthenticated(&self, code: &str) -> Value {
        let body = self.problem(401, code);
        let challenge = self.header("www-authenticate").unwrap_or_default();
        assert!(
            challenge == "Bearer" || challenge.starts_with("Bearer "),
            "a 401 on a JSON path carries `WWW-Authenticate: Bearer`: {self}"
        );
        body
    }

    /// Asserts a 401 for a session cookie that no longer works: `unauthenticated` or
    /// `session_expired`, with the Bearer challenge.
    ///
    /// # Panics
    /// When any of that does not hold.
    #[track_caller]
    pub fn dead_session(&self) {
        assert_eq!(self.status, 401, "a dead session gets 401: {self}");
        let code = self.json()["code"].as_str().unwrap_or_default().to_owned();
        assert!(
            code == "unauthenticated" || code == "session_expired",
            "a dead session is `unauthenticated` or `session_expired`: {self}"
        );
        self.unauthenticated(&code);
    }

    /// Every `Set-Cookie` of the answer, parsed.
    #[must_use]
    pub fn set_cookies(&self) -> Vec<Cookie<'static>> {
        self.headers
            .get_all(header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(|v| Cookie::parse(v.to_owned()).ok())
            .collect()
    }

    /// The `Set-Cookie` of the session cookie, if the answer has one.
    #[must_use]
    pub fn session_set_cookie(&self) -> Option<Cookie<'static>> {
        self.set_cookies()
            .into_iter()
            .find(|c| c.name() == SESSION_COOKIE || c.name() == SECURE_SESSION_COOKIE)
    }

    /// The session cookie this answer sets, as the client will send it back.
    ///
    /// # Panics
    /// When the answer sets none, or sets an empty one.
    #[must_use]
    #[track_caller]
    pub fn session_cookie(&self) -> SessionCookie {
        let cookie = self
            .session_set_cookie()
            .unwrap_or_else(|| panic!("expected a session cookie: {self}"));
        assert!(
            !cookie.value().is_empty(),
            "the session cookie is empty: {self}"
        );
        SessionCookie {
            name: cookie.name().to_owned(),
            value: cookie.value().to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(status: u16, headers: &[(&str, &str)], body: &str) -> Reply {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        Reply {
            label: "GET /x".to_owned(),
            status,
            headers: map,
            body: body.as_bytes().to_vec(),
        }
    }

    const PROBLEM: &str =
        r#"{"type":"about:blank","title":"Unauthorized","status":401,"code":"unauthenticated"}"#;

    #[test]
    fn a_well_formed_problem_passes() {
        let r = reply(
            401,
            &[
                ("content-type", "application/problem+json"),
                ("www-authenticate", "Bearer"),
            ],
            PROBLEM,
        );
        assert_eq!(
            r.unauthenticated("unauthenticated")["title"],
            "Unauthorized"
        );
        r.dead_session();
    }

    #[test]
    #[should_panic(expected = "application/problem+json")]
    fn a_problem_as_plain_json_fails() {
        let _ = reply(401, &[("content-type", "application/json")], PROBLEM)
            .problem(401, "unauthenticated");
    }

    #[test]
    #[should_panic(expected = "the HTTP status")]
    fn a_problem_with_another_status_in_the_body_fails() {
        let body = PROBLEM.replace("401", "400");
        let _ = reply(401, &[("content-type", "application/problem+json")], &body)
            .problem(401, "unauthenticated");
    }

    #[test]
    #[should_panic(expected = "WWW-Authenticate")]
    fn a_401_without_challenge_fails() {
        let _ = reply(
            401,
            &[("content-type", "application/problem+json")],
            PROBLEM,
        )
        .unauthenticated("unauthenticated");
    }

    #[test]
    #[should_panic(expected = "internal detail")]
    fn a_problem_leaking_sql_fails() {
        let body = PROBLEM.replace(
            r#""code""#,
            r#""detail":"error returned from database: SELECT 1","code""#,
        );
        let _ = reply(401, &[("content-type", "application/problem+json")], &body)
            .problem(401, "unauthenticated");
    }

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let r = reply(
            201,
            &[
                ("set-cookie", "other=1; Path=/"),
                (
                    "set-cookie",
                    "authkit_session=AbC_-0123456789abcdefghijklmnopqrstuvwxyzABCD; HttpOnly; SameSite=Lax; Path=/; Max-Age=2592000",
                ),
            ],
            "",
        );
        let set = r.session_set_cookie().unwrap();
        assert_eq!(set.http_only(), Some(true));
        assert_eq!(set.same_site(), Some(cookie::SameSite::Lax));
        assert_eq!(set.path(), Some("/"));
        assert_eq!(set.secure(), None);
        assert_eq!(set.max_age(), Some(time::Duration::days(30)));
        let cookie = r.session_cookie();
        assert_eq!(
            cookie.header_value(),
            "authkit_session=AbC_-0123456789abcdefghijklmnopqrstuvwxyzABCD"
        );
        assert_eq!(format!("{cookie:?}"), "authkit_session=AbC_-012…");
    }

    #[test]
    fn media_type_drops_parameters() {
        let r = reply(200, &[("content-type", "Text/HTML; charset=utf-8")], "");
        assert_eq!(r.media_type(), "text/html");
        assert_eq!(reply(200, &[], "").media_type(), "");
    }
}
