//! The library's HTTP routes ([`Auth::handle`]) on each real store, driven through the
//! framework-free core with no adapter in between: every `/auth` row of the contract (OAuth
//! aside), `POST`/`GET /orgs` and `POST /auth/active-org`, with the attacks they defend against
//! (cross-site requests, login CSRF, replayed cookies, password guessing, oversized bodies,
//! enumeration through answers).
//!
//! Each case builds an [`Auth`] over the store with a [`ManualClock`], a [`MemoryMailer`] and
//! cheap password hashes, and sends it [`http::Request`]s as a browser on `http://app.test`
//! would.

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body::{Body, Frame};
use http_body_util::Full;
use keystead::mail::{MailMessage, MemoryMailer};
use keystead::routes::{DRAIN_BYTES, MAX_BODY_BYTES};
use keystead::web::AppOrigin;
use keystead::{
    AuditEvent, AuditQuery, Auth, AuthStore, Clock, Email, ManualClock, PasswordConfig, TokenHash,
    User, UserId,
};
use serde_json::{Value, json};
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};

pub(super) const ORIGIN: &str = "http://app.test";
pub(super) const PASSWORD: &str = "correct horse battery staple";
const NEW_PASSWORD: &str = "a brand new passphrase";
const COOKIE: &str = "authkit_session";
const USER_AGENT: &str = "conformance/1.0";
const PEER: IpAddr = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 7));
/// The default sliding lifetime of a session, in seconds (30 days).
const LIFETIME_SECS: i64 = 30 * 24 * 60 * 60;

/// The library over `store`, as a browser on [`ORIGIN`] sees it.
pub(super) struct App {
    pub(super) store: Arc<dyn AuthStore>,
    pub(super) clock: Arc<ManualClock>,
    pub(super) mailer: MemoryMailer,
    pub(super) auth: Auth,
}

pub(super) fn app(store: &Arc<dyn AuthStore>) -> App {
    let clock = Arc::new(ManualClock::starting_now());
    let mailer = MemoryMailer::default();
    let auth = Auth::builder(
        store.clone(),
        AppOrigin::parse(ORIGIN).expect("a valid origin"),
    )
    .clock(clock.clone())
    .mailer(Arc::new(mailer.clone()))
    .password_hashing(
        PasswordConfig::new()
            .argon2_params(8, 1, 1)
            .expect("valid argon2 params"),
    )
    .build();
    App {
        store: store.clone(),
        clock,
        mailer,
        auth,
    }
}

/// A request under construction: method, path, headers, body.
pub(super) struct Req {
    builder: http::request::Builder,
}

impl Req {
    /// A request as the app's own pages send it: `Origin: http://app.test` on unsafe methods.
    pub(super) fn new(method: Method, path: &str) -> Self {
        let safe = method == Method::GET;
        let mut builder = Request::builder()
            .method(method)
            .uri(path)
            .header(header::USER_AGENT, USER_AGENT);
        if !safe {
            builder = builder.header(header::ORIGIN, ORIGIN);
        }
        Self { builder }
    }

    /// A request with none of `Origin`, `Referer` or `Sec-Fetch-Site` (curl, a mobile app).
    fn bare(method: Method, path: &str) -> Self {
        Self {
            builder: Request::builder().method(method).uri(path),
        }
    }

    pub(super) fn get(path: &str) -> Self {
        Self::new(Method::GET, path)
    }

    pub(super) fn post(path: &str) -> Self {
        Self::new(Method::POST, path)
    }

    pub(super) fn delete(path: &str) -> Self {
        Self::new(Method::DELETE, path)
    }

    pub(super) fn header(mut self, name: impl AsRef<str>, value: impl AsRef<str>) -> Self {
        self.builder = self.builder.header(name.as_ref(), value.as_ref());
        self
    }

    /// Replaces every value of a header the constructor set.
    fn replace_header(mut self, name: header::HeaderName, value: Option<&str>) -> Self {
        let headers = self.builder.headers_mut().expect("a valid request");
        headers.remove(&name);
        if let Some(value) = value {
            headers.insert(name, value.parse().expect("a valid header value"));
        }
        self
    }

    /// Sends the session cookie.
    pub(super) fn cookie(self, token: &str) -> Self {
        self.header(header::COOKIE, format!("{COOKIE}={token}"))
    }

    pub(super) fn json(self, body: &Value) -> Request<Full<Bytes>> {
        self.header(header::CONTENT_TYPE, "application/json")
            .raw(body.to_string())
    }

    fn raw(self, body: impl Into<Bytes>) -> Request<Full<Bytes>> {
        self.builder
            .body(Full::new(body.into()))
            .expect("a valid request")
    }

    pub(super) fn empty(self) -> Request<Full<Bytes>> {
        self.raw(Bytes::new())
    }

    fn body<B>(self, body: B) -> Request<B> {
        self.builder.body(body).expect("a valid request")
    }
}

impl App {
    /// Serves one request through the core's handlers.
    pub(super) async fn send<B>(&self, request: Request<B>) -> Response<Bytes>
    where
        B: Body + Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        self.auth.handle(request, PEER).await
    }

    /// Signs up `email` with [`PASSWORD`]; returns the user's id and session token.
    pub(super) async fn sign_up(&self, email: &str) -> (String, String) {
        let response = self
            .send(Req::post("/auth/sign-up").json(&json!({ "email": email, "password": PASSWORD })))
            .await;
        assert_eq!(response.status(), StatusCode::CREATED, "sign-up of {email}");
        let id = json_of(&response)["user"]["id"]
            .as_str()
            .expect("a user id")
            .to_owned();
        (id, session_token(&response))
    }

    /// Signs in without a cookie; returns the response.
    async fn sign_in(&self, email: &str, password: &str) -> Response<Bytes> {
        self.send(Req::post("/auth/sign-in").json(&json!({ "email": email, "password": password })))
            .await
    }

    /// Signs in with the right password; returns the new session's token.
    pub(super) async fn signed_in(&self, email: &str, password: &str) -> String {
        let response = self.sign_in(email, password).await;
        assert_eq!(response.status(), StatusCode::OK, "sign-in of {email}");
        session_token(&response)
    }

    /// `GET /auth/session` with the cookie.
    pub(super) async fn session(&self, token: &str) -> Response<Bytes> {
        self.send(Req::get("/auth/session").cookie(token).empty())
            .await
    }

    /// The session's id, after checking the cookie works.
    async fn session_id(&self, token: &str) -> String {
        let response = self.session(token).await;
        assert_eq!(response.status(), StatusCode::OK, "the session works");
        json_of(&response)["session"]["id"]
            .as_str()
            .expect("a session id")
            .to_owned()
    }

    #[track_caller]
    pub(super) fn latest_link_token(&self, path: &str) -> String {
        link_token(self.mailer.messages().last().expect("a mail"), path)
    }

    /// The mails, once there are `count` of them (the reset mail is sent by a spawned task).
    async fn wait_for_mails(&self, count: usize) -> Vec<MailMessage> {
        for _ in 0..500 {
            let messages = self.mailer.messages();
            if messages.len() >= count {
                return messages;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!(
            "expected {count} mails within 5 s, got {}",
            self.mailer.messages().len()
        );
    }

    pub(super) async fn audit_events(&self, user_id: &str) -> Vec<AuditEvent> {
        let user_id: UserId = user_id.parse().expect("a user id");
        self.store
            .audit_events(&AuditQuery {
                user_id: Some(user_id),
                limit: 1000,
                ..AuditQuery::default()
            })
            .await
            .expect("audit_events")
    }

    pub(super) async fn user(&self, email: &str) -> Option<User> {
        let email = Email::parse(email).expect("a valid email");
        self.store
            .user_by_email(&email)
            .await
            .expect("user_by_email")
    }
}

/// The token in a mailed link `http://app.test{path}?token=…`.
#[track_caller]
pub(super) fn link_token(message: &MailMessage, path: &str) -> String {
    let url = message.action_url.as_deref().expect("an action_url");
    let prefix = format!("{ORIGIN}{path}?token=");
    url.strip_prefix(&prefix)
        .unwrap_or_else(|| panic!("{url:?} starts with {prefix:?}"))
        .to_owned()
}

/// The `Set-Cookie` values of a response.
pub(super) fn set_cookies(response: &Response<Bytes>) -> Vec<String> {
    response
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().expect("a visible-ASCII Set-Cookie").to_owned())
        .collect()
}

/// The one `Set-Cookie` of the session cookie: its value and its attributes (lower-cased
/// names, values as sent).
#[track_caller]
fn session_set_cookie(response: &Response<Bytes>) -> (String, Vec<(String, String)>) {
    let cookies: Vec<String> = set_cookies(response)
        .into_iter()
        .filter(|c| c.starts_with(&format!("{COOKIE}=")))
        .collect();
    assert_eq!(cookies.len(), 1, "one session Set-Cookie in {cookies:?}");
    let mut parts = cookies[0].split(';').map(str::trim);
    let first = parts.next().expect("name=value");
    let value = first
        .strip_prefix(&format!("{COOKIE}="))
        .expect("the session cookie")
        .to_owned();
    let attributes = parts
        .map(|p| {
            let (name, value) = p.split_once('=').unwrap_or((p, ""));
            (name.to_ascii_lowercase(), value.to_owned())
        })
        .collect();
    (value, attributes)
}

fn attribute<'a>(attributes: &'a [(String, String)], name: &str) -> Option<&'a str> {
    attributes
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// The cookie's `Max-Age`, after checking the contract's attributes.
#[track_caller]
fn checked_attributes(attributes: &[(String, String)]) -> i64 {
    assert!(attribute(attributes, "httponly").is_some(), "HttpOnly");
    assert_eq!(
        attribute(attributes, "samesite").map(str::to_ascii_lowercase),
        Some("lax".to_owned()),
        "SameSite=Lax"
    );
    assert_eq!(attribute(attributes, "path"), Some("/"), "Path=/");
    assert!(
        attribute(attributes, "secure").is_none(),
        "no Secure on an http origin"
    );
    assert!(attribute(attributes, "domain").is_none(), "host-only");
    attribute(attributes, "max-age")
        .expect("a Max-Age")
        .parse()
        .expect("a numeric Max-Age")
}

/// The session token a response sets, after checking the cookie's attributes.
#[track_caller]
pub(super) fn session_token(response: &Response<Bytes>) -> String {
    let (value, attributes) = session_set_cookie(response);
    let max_age = checked_attributes(&attributes);
    assert!(max_age > 0, "a live cookie, Max-Age={max_age}");
    assert_eq!(value.len(), 43, "a 256-bit base64url token");
    assert!(
        value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
        "base64url: {value:?}"
    );
    value
}

/// Checks that the response clears the session cookie.
#[track_caller]
fn assert_removes_cookie(response: &Response<Bytes>) {
    let (value, attributes) = session_set_cookie(response);
    assert_eq!(value, "", "the removal cookie has no value");
    assert_eq!(checked_attributes(&attributes), 0, "Max-Age=0");
}

#[track_caller]
fn assert_no_session_cookie(response: &Response<Bytes>) {
    let cookies = set_cookies(response);
    assert!(
        !cookies.iter().any(|c| c.starts_with(&format!("{COOKIE}="))),
        "no session cookie set: {cookies:?}"
    );
}

/// The JSON body of a success.
#[track_caller]
pub(super) fn json_of(response: &Response<Bytes>) -> Value {
    assert_eq!(
        response
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.as_bytes()),
        Some(&b"application/json"[..]),
        "a JSON answer"
    );
    serde_json::from_slice(response.body()).expect("a JSON body")
}

/// Checks a problem+json answer's status and code; returns its body.
#[track_caller]
pub(super) fn assert_problem(response: &Response<Bytes>, status: u16, code: &str) -> Value {
    let body = String::from_utf8_lossy(response.body()).into_owned();
    assert_eq!(
        response.status().as_u16(),
        status,
        "expected {status} {code}, got {}: {body}",
        response.status()
    );
    assert_eq!(
        response
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.as_bytes()),
        Some(&b"application/problem+json"[..]),
        "a problem+json answer: {body}"
    );
    let problem: Value = serde_json::from_str(&body).expect("a JSON problem");
    assert_eq!(problem["code"], code, "{body}");
    assert_eq!(problem["status"], status, "{body}");
    assert!(
        problem["type"].is_string() && problem["title"].is_string(),
        "{body}"
    );
    if status == 401 {
        assert_eq!(
            response
                .headers()
                .get(header::WWW_AUTHENTICATE)
                .map(|v| v.as_bytes()),
            Some(&b"Bearer"[..]),
            "a 401 names the scheme"
        );
    }
    problem
}

#[track_caller]
pub(super) fn assert_status(response: &Response<Bytes>, status: StatusCode) {
    assert_eq!(
        response.status(),
        status,
        "{}",
        String::from_utf8_lossy(response.body())
    );
}

fn keys(value: &Value) -> BTreeSet<&str> {
    value
        .as_object()
        .expect("a JSON object")
        .keys()
        .map(String::as_str)
        .collect()
}

#[track_caller]
pub(super) fn assert_keys(value: &Value, expected: &[&str]) {
    assert_eq!(
        keys(value),
        expected.iter().copied().collect::<BTreeSet<_>>(),
        "{value}"
    );
}

#[track_caller]
pub(super) fn time_of(value: &Value) -> OffsetDateTime {
    let text = value.as_str().expect("a time string");
    assert!(text.ends_with('Z'), "UTC: {text}");
    OffsetDateTime::parse(text, &Rfc3339).expect("an RFC 3339 time")
}

#[track_caller]
fn assert_user_json(user: &Value, email: &str, verified: bool) {
    assert_keys(
        user,
        &["id", "email", "name", "email_verified", "created_at"],
    );
    user["id"]
        .as_str()
        .expect("an id string")
        .parse::<UserId>()
        .expect("a UUID");
    assert_eq!(user["email"], email);
    assert_eq!(user["email_verified"], verified);
    time_of(&user["created_at"]);
}

/// A body that arrives in chunks and tells nothing of its length (no size hint, sent without
/// `Content-Length`), counting how many chunks were read.
#[derive(Debug)]
struct Streamed {
    chunk: Bytes,
    left: usize,
    read: Arc<AtomicUsize>,
}

impl Body for Streamed {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        if this.left == 0 {
            return Poll::Ready(None);
        }
        this.left -= 1;
        this.read.fetch_add(1, Ordering::SeqCst);
        Poll::Ready(Some(Ok(Frame::data(this.chunk.clone()))))
    }
}

/// Sign-up answers 201 with the user, sets a session cookie with the contract's attributes
/// (whose token the store holds only as a hash) and mails a verification link.
pub async fn http_sign_up_answers_201_with_a_session_cookie_and_mails_a_verification_link(
    store: Arc<dyn AuthStore>,
) {
    let app = app(&store);
    let response = app
        .send(Req::post("/auth/sign-up").json(&json!({
            "email": " Ada@Example.com ",
            "password": PASSWORD,
            "name": "Ada",
        })))
        .await;
    assert_status(&response, StatusCode::CREATED);
    assert_eq!(response.headers()[header::CACHE_CONTROL], "no-store");
    let body = json_of(&response);
    assert_keys(&body, &["user"]);
    assert_user_json(&body["user"], "ada@example.com", false);
    assert_eq!(body["user"]["name"], "Ada");

    let (token, attributes) = session_set_cookie(&response);
    assert_eq!(checked_attributes(&attributes), LIFETIME_SECS);
    assert_eq!(session_token(&response), token);
    let stored = store
        .session_by_token_hash(&TokenHash::of(&token))
        .await
        .unwrap()
        .expect("the store holds the token's hash");
    assert_eq!(stored.user_agent.as_deref(), Some(USER_AGENT));
    assert_eq!(stored.ip.as_deref(), Some("203.0.113.7"));
    let session = app.session(&token).await;
    assert_status(&session, StatusCode::OK);
    assert_eq!(json_of(&session)["user"]["id"], body["user"]["id"]);

    let mails = app.mailer.messages();
    assert_eq!(mails.len(), 1, "one verification mail");
    assert_eq!(mails[0].to.as_str(), "ada@example.com");
    let link = link_token(&mails[0], "/auth/verify-email");
    assert!(!link.is_empty());
}

/// A sign-up with a taken email, in another case, is 409 `email_taken`; nothing changes.
pub async fn http_sign_up_with_taken_email_in_other_case_is_409_email_taken(
    store: Arc<dyn AuthStore>,
) {
    let app = app(&store);
    let (id, _) = app.sign_up("taken@example.com").await;
    let response = app
        .send(Req::post("/auth/sign-up").json(&json!({
            "email": "TAKEN@Example.COM",
            "password": NEW_PASSWORD,
        })))
        .await;
    assert_problem(&response, 409, "email_taken");
    assert_no_session_cookie(&response);
    assert_eq!(
        app.mailer.messages().len(),
        1,
        "no second verification mail"
    );
    let user = app.user("taken@example.com").await.expect("the first user");
    assert_eq!(user.id.to_string(), id);
    assert_problem(
        &app.sign_in("taken@example.com", NEW_PASSWORD).await,
        401,
        "invalid_credentials",
    );
}

/// Weak passwords (shorter than 8, longer than 256 characters, on the shipped list) are 422
/// `weak_password` and create no user; a long Unicode passphrase is fine.
pub async fn http_sign_up_with_weak_password_is_422_weak_password(store: Arc<dyn AuthStore>) {
    let app = app(&store);
    for weak in [
        "password1234".to_owned(),
        "seven77".to_owned(),
        "x".repeat(257),
    ] {
        let response = app
            .send(Req::post("/auth/sign-up").json(&json!({
                "email": "weak@example.com",
                "password": weak,
            })))
            .await;
        assert_problem(&response, 422, "weak_password");
        assert_no_session_cookie(&response);
    }
    assert!(app.user("weak@example.com").await.is_none());
    assert!(app.mailer.messages().is_empty());
    let response = app
        .send(Req::post("/auth/sign-up").json(&json!({
            "email": "weak@example.com",
            "password": "ünïcödé pässwörd ✓",
        })))
        .await;
    assert_status(&response, StatusCode::CREATED);
}

/// A body that is not JSON, or lacks the fields, is 400 `invalid_request`.
pub async fn http_malformed_json_is_400_invalid_request(store: Arc<dyn AuthStore>) {
    let app = app(&store);
    let json = |body: &'static str| {
        Req::post("/auth/sign-in")
            .header(header::CONTENT_TYPE, "application/json")
            .raw(body)
    };
    for body in [
        r#"{"email": "a@example.com", "password": "#,
        "",
        "not json",
        "[]",
        "null",
        r#"{"email": "a@example.com"}"#,
        r#"{"email": 5, "password": "x"}"#,
    ] {
        let response = app.send(json(body)).await;
        assert_problem(&response, 400, "invalid_request");
    }
    let response = app
        .send(
            Req::post("/auth/sign-up")
                .header(header::CONTENT_TYPE, "application/json")
                .raw(r#"{"email": "a@example.com", "password": "#),
        )
        .await;
    assert_problem(&response, 400, "invalid_request");
    assert!(app.user("a@example.com").await.is_none());
}

/// A JSON route refuses a body sent as another type, or without a type, with 415; JSON with
/// parameters passes.
pub async fn http_wrong_or_missing_content_type_is_415(store: Arc<dyn AuthStore>) {
    let app = app(&store);
    let body = json!({ "email": "typed@example.com", "password": PASSWORD }).to_string();
    for content_type in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
        Some("application/jsonp"),
        None,
    ] {
        let mut request = Req::post("/auth/sign-up");
        if let Some(content_type) = content_type {
            request = request.header(header::CONTENT_TYPE, content_type);
        }
        let response = app.send(request.raw(body.clone())).await;
        assert_problem(&response, 415, "unsupported_media_type");
    }
    assert!(app.user("typed@example.com").await.is_none());
    let response = app
        .send(
            Req::post("/auth/sign-up")
                .header(header::CONTENT_TYPE, "Application/JSON; charset=utf-8")
                .raw(body),
        )
        .await;
    assert_status(&response, StatusCode::CREATED);
}

/// A body over 1 MiB is 413 `payload_too_large`: by its `Content-Length`, or while reading a
/// streamed body without one; what the client still sends is read and dropped only up to
/// `DRAIN_BYTES` (so a client can read the answer), never to the end of a huge body; a body
/// of exactly 1 MiB is read.
pub async fn http_body_over_one_mebibyte_is_413_with_or_without_content_length(
    store: Arc<dyn AuthStore>,
) {
    let app = app(&store);
    app.sign_up("big@example.com").await;
    const CHUNK: usize = 64 * 1024;

    // Announced by Content-Length: refused before reading.
    let read = Arc::new(AtomicUsize::new(0));
    let response = app
        .send(
            Req::post("/auth/sign-in")
                .header(header::CONTENT_TYPE, "application/json")
                .header(header::CONTENT_LENGTH, (MAX_BODY_BYTES + 1).to_string())
                .body(Streamed {
                    chunk: Bytes::from(vec![b' '; CHUNK]),
                    left: 1000,
                    read: read.clone(),
                }),
        )
        .await;
    assert_problem(&response, 413, "payload_too_large");
    let drain_chunks = usize::try_from(DRAIN_BYTES).expect("a few MiB") / CHUNK;
    let chunks = read.load(Ordering::SeqCst);
    assert!(
        chunks <= drain_chunks + 1,
        "drained no more than the bound, read {chunks} chunks"
    );

    // A full body one byte too large, with its true Content-Length.
    let response = app
        .send(
            Req::post("/auth/sign-in")
                .header(header::CONTENT_TYPE, "application/json")
                .header(header::CONTENT_LENGTH, (MAX_BODY_BYTES + 1).to_string())
                .raw(vec![b' '; MAX_BODY_BYTES + 1]),
        )
        .await;
    assert_problem(&response, 413, "payload_too_large");

    // Streamed without a length: 64 MiB offered, refused once past 1 MiB.
    let read = Arc::new(AtomicUsize::new(0));
    let response = app
        .send(
            Req::post("/auth/sign-in")
                .header(header::CONTENT_TYPE, "application/json")
                .body(Streamed {
                    chunk: Bytes::from(vec![b' '; CHUNK]),
                    left: 1000,
                    read: read.clone(),
                }),
        )
        .await;
    assert_problem(&response, 413, "payload_too_large");
    let chunks = read.load(Ordering::SeqCst);
    assert!(
        chunks <= MAX_BODY_BYTES / CHUNK + 1 + drain_chunks + 1 && chunks < 1000,
        "stopped reading past the limit and the drain bound, read {chunks} chunks"
    );
    // The same on a route without a JSON body, and with a cookie.
    let token = app.signed_in("big@example.com", PASSWORD).await;
    let response = app
        .send(Req::post("/auth/sign-out").cookie(&token).body(Streamed {
            chunk: Bytes::from(vec![b' '; CHUNK]),
            left: 1000,
            read: Arc::new(AtomicUsize::new(0)),
        }))
        .await;
    assert_problem(&response, 413, "payload_too_large");
    app.session_id(&token).await;

    // Exactly 1 MiB, streamed: read and parsed.
    let head = json!({ "email": "big@example.com", "password": PASSWORD }).to_string();
    let mut exact = head.into_bytes();
    exact.pop(); // the closing brace
    exact.extend_from_slice(br#", "padding": ""#);
    let tail = br#""}"#;
    exact.resize(MAX_BODY_BYTES - tail.len(), b'a');
    exact.extend_from_slice(tail);
    assert_eq!(exact.len(), MAX_BODY_BYTES);
    let response = app
        .send(
            Req::post("/auth/sign-in")
                .header(header::CONTENT_TYPE, "application/json")
                .header(header::CONTENT_LENGTH, MAX_BODY_BYTES.to_string())
                .raw(exact),
        )
        .await;
    assert_status(&response, StatusCode::OK);
}

/// Sign-in answers 200 with the user and the new session, and a new cookie; a browser that
/// signs in again gets another session, and the one it came with ends.
pub async fn http_sign_in_answers_200_with_a_new_session_cookie(store: Arc<dyn AuthStore>) {
    let app = app(&store);
    let (id, at_sign_up) = app.sign_up("signin@example.com").await;
    let response = app.sign_in("SIGNIN@example.com", PASSWORD).await;
    assert_status(&response, StatusCode::OK);
    assert_eq!(response.headers()[header::CACHE_CONTROL], "no-store");
    let body = json_of(&response);
    assert_keys(&body, &["user", "session"]);
    assert_user_json(&body["user"], "signin@example.com", false);
    assert_eq!(body["user"]["id"], id.as_str());
    assert_keys(&body["session"], &["id", "expires_at", "authenticated_at"]);
    assert_eq!(
        time_of(&body["session"]["expires_at"]),
        app.clock.now() + Duration::days(30)
    );
    let token = session_token(&response);
    assert_ne!(token, at_sign_up, "a new session, not the old one");
    assert_eq!(
        app.session_id(&token).await,
        body["session"]["id"].as_str().unwrap()
    );
    app.session_id(&at_sign_up).await;

    // The same browser signs in again: a new session replaces the one it came with.
    let response = app
        .send(
            Req::post("/auth/sign-in")
                .cookie(&token)
                .json(&json!({ "email": "signin@example.com", "password": PASSWORD })),
        )
        .await;
    assert_status(&response, StatusCode::OK);
    let newer = session_token(&response);
    assert_ne!(newer, token);
    app.session_id(&newer).await;
    assert_problem(&app.session(&token).await, 401, "unauthenticated");
}

/// A wrong password and an unknown email get the very same answer: status, headers and body.
pub async fn http_sign_in_failures_for_unknown_email_and_wrong_password_are_identical(
    store: Arc<dyn AuthStore>,
) {
    let app = app(&store);
    app.sign_up("known@example.com").await;
    let wrong = app.sign_in("known@example.com", "not the password").await;
    let unknown = app.sign_in("unknown@example.com", PASSWORD).await;
    let malformed = app.sign_in("no at sign", PASSWORD).await;
    assert_problem(&wrong, 401, "invalid_credentials");
    for other in [&unknown, &malformed] {
        assert_eq!(other.status(), wrong.status());
        assert_eq!(other.headers(), wrong.headers());
        assert_eq!(other.body(), wrong.body());
    }
    assert_no_session_cookie(&wrong);
}

/// Sign-out answers 204 and clears the cookie; the session is dead server-side, so the
/// replayed cookie gets 401 (and is cleared again).
pub async fn http_sign_out_clears_the_cookie_and_the_replayed_cookie_is_401(
    store: Arc<dyn AuthStore>,
) {
    let app = app(&store);
    let (_, token) = app.sign_up("leaving@example.com").await;
    let other = app.signed_in("leaving@example.com", PASSWORD).await;
    let session_id = app.session_id(&token).await;

    let response = app
        .send(Req::post("/auth/sign-out").cookie(&token).empty())
        .await;
    assert_status(&response, StatusCode::NO_CONTENT);
    assert!(response.body().is_empty());
    assert_removes_cookie(&response);
    let id = session_id.parse().expect("a session id");
    assert!(store.session_by_id(id).await.unwrap().is_none());

    let replayed = app.session(&token).await;
    assert_problem(&replayed, 401, "unauthenticated");
    assert_removes_cookie(&replayed);
    let again = app
        .send(Req::post("/auth/sign-out").cookie(&token).empty())
        .await;
    assert_problem(&again, 401, "unauthenticated");
    app.session_id(&other).await;
    assert_problem(
        &app.send(Req::post("/auth/sign-out").empty()).await,
        401,
        "unauthenticated",
    );
}

/// `GET /auth/session` answers `{user, session, org, role, permissions}`; without a session,
/// or with a cookie that is no token, 401.
pub async fn http_session_has_the_contract_shape(store: Arc<dyn AuthStore>) {
    let app = app(&store);
    let (id, token) = app.sign_up("shape@example.com").await;
    let response = app.session(&token).await;
    assert_status(&response, StatusCode::OK);
    assert_eq!(response.headers()[header::CACHE_CONTROL], "no-store");
    let body = json_of(&response);
    assert_keys(
        &body,
        &["user", "session", "org", "role", "permissions", "mfa"],
    );
    assert_user_json(&body["user"], "shape@example.com", false);
    assert_eq!(body["user"]["id"], id.as_str());
    assert_keys(&body["session"], &["id", "expires_at", "authenticated_at"]);
    assert_eq!(
        time_of(&body["session"]["expires_at"]),
        app.clock.now() + Duration::days(30)
    );
    assert_eq!(body["org"], Value::Null);
    assert_eq!(body["role"], Value::Null);
    assert_eq!(body["permissions"], json!([]));
    assert_no_session_cookie(&response);

    // HTTP/2 clients may split the cookies over several `Cookie` headers.
    let split = app
        .send(
            Req::get("/auth/session")
                .header(header::COOKIE, "theme=dark")
                .cookie(&token)
                .header(header::COOKIE, "lang=en")
                .empty(),
        )
        .await;
    assert_status(&split, StatusCode::OK);
    assert_eq!(json_of(&split)["user"]["id"], id.as_str());

    assert_problem(
        &app.send(Req::get("/auth/session").empty()).await,
        401,
        "unauthenticated",
    );
    let junk = app.session("not-a-token").await;
    assert_problem(&junk, 401, "unauthenticated");
    assert_removes_cookie(&junk);
    let forged = app.session(&"A".repeat(43)).await;
    assert_problem(&forged, 401, "unauthenticated");
    assert_removes_cookie(&forged);
}

/// `GET /auth/sessions` lists the user's live sessions (not another user's), with `current`
/// set on the one asking.
pub async fn http_sessions_lists_the_users_sessions_with_the_current_flag(
    store: Arc<dyn AuthStore>,
) {
    let app = app(&store);
    let (_, first) = app.sign_up("many@example.com").await;
    let second = app.signed_in("many@example.com", PASSWORD).await;
    let third = app.signed_in("many@example.com", PASSWORD).await;
    app.sign_up("stranger@example.com").await;
    let ended = app.signed_in("many@example.com", PASSWORD).await;
    app.send(Req::post("/auth/sign-out").cookie(&ended).empty())
        .await;

    let mut ids = Vec::new();
    for token in [&first, &second, &third] {
        ids.push(app.session_id(token).await);
    }
    let response = app
        .send(Req::get("/auth/sessions").cookie(&second).empty())
        .await;
    assert_status(&response, StatusCode::OK);
    let list = json_of(&response);
    let items = list.as_array().expect("an array");
    assert_eq!(items.len(), 3, "{list}");
    let listed: BTreeSet<&str> = items.iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(
        listed,
        ids.iter().map(String::as_str).collect::<BTreeSet<_>>()
    );
    for item in items {
        assert_keys(
            item,
            &[
                "id",
                "created_at",
                "last_seen_at",
                "expires_at",
                "user_agent",
                "current",
            ],
        );
        assert_eq!(item["current"], item["id"] == ids[1].as_str(), "{item}");
        assert_eq!(item["user_agent"], USER_AGENT);
        assert!(time_of(&item["expires_at"]) > time_of(&item["created_at"]));
        time_of(&item["last_seen_at"]);
    }
    assert_problem(
        &app.send(Req::get("/auth/sessions").empty()).await,
        401,
        "unauthenticated",
    );
}

/// `DELETE /auth/sessions/{id}` ends one of the user's own sessions (204; the cookie is cleared
/// when it is the current one); another user's session, an unknown id and a malformed id are
/// all 404, and end nothing.
pub async fn http_delete_session_ends_own_sessions_and_hides_other_users_sessions(
    store: Arc<dyn AuthStore>,
) {
    let app = app(&store);
    let (_, mine) = app.sign_up("owner@example.com").await;
    let my_other = app.signed_in("owner@example.com", PASSWORD).await;
    let (_, theirs) = app.sign_up("victim@example.com").await;
    let my_other_id = app.session_id(&my_other).await;
    let their_id = app.session_id(&theirs).await;

    let response = app
        .send(
            Req::delete(&format!("/auth/sessions/{their_id}"))
                .cookie(&mine)
                .empty(),
        )
        .await;
    assert_problem(&response, 404, "not_found");
    app.session_id(&theirs).await;
    for id in [
        "not-a-uuid".to_owned(),
        "0".to_owned(),
        "%00".to_owned(),
        keystead::SessionId::new().to_string(),
    ] {
        let response = app
            .send(
                Req::delete(&format!("/auth/sessions/{id}"))
                    .cookie(&mine)
                    .empty(),
            )
            .await;
        assert_problem(&response, 404, "not_found");
    }

    let response = app
        .send(
            Req::delete(&format!("/auth/sessions/{my_other_id}"))
                .cookie(&mine)
                .empty(),
        )
        .await;
    assert_status(&response, StatusCode::NO_CONTENT);
    assert_no_session_cookie(&response);
    assert_problem(&app.session(&my_other).await, 401, "unauthenticated");
    let mine_id = app.session_id(&mine).await;

    let response = app
        .send(
            Req::delete(&format!("/auth/sessions/{mine_id}"))
                .cookie(&mine)
                .empty(),
        )
        .await;
    assert_status(&response, StatusCode::NO_CONTENT);
    assert_removes_cookie(&response);
    assert_problem(&app.session(&mine).await, 401, "unauthenticated");
    app.session_id(&theirs).await;
    assert_problem(
        &app.send(Req::delete(&format!("/auth/sessions/{their_id}")).empty())
            .await,
        401,
        "unauthenticated",
    );
}

/// Sign-out-everywhere ends every session of the user, this one included, and no one else's.
pub async fn http_sign_out_everywhere_ends_every_session(store: Arc<dyn AuthStore>) {
    let app = app(&store);
    let (_, first) = app.sign_up("everywhere@example.com").await;
    let second = app.signed_in("everywhere@example.com", PASSWORD).await;
    let third = app.signed_in("everywhere@example.com", PASSWORD).await;
    let (_, stranger) = app.sign_up("elsewhere@example.com").await;

    let response = app
        .send(
            Req::post("/auth/sign-out-everywhere")
                .cookie(&second)
                .empty(),
        )
        .await;
    assert_status(&response, StatusCode::NO_CONTENT);
    assert_removes_cookie(&response);
    for token in [&first, &second, &third] {
        assert_problem(&app.session(token).await, 401, "unauthenticated");
    }
    app.session_id(&stranger).await;
    let user = app.user("everywhere@example.com").await.unwrap();
    assert!(
        store
            .sessions_for_user(user.id, app.clock.now())
            .await
            .unwrap()
            .is_empty()
    );
}

/// The mailed verification token verifies once, by `POST {token}` (200 `{user}`) or by the
/// clicked link (`GET ?token=`, 303 to `/dashboard`); a used or forged token is 400
/// `invalid_link`.
pub async fn http_verify_email_by_post_and_by_link_each_work_once(store: Arc<dyn AuthStore>) {
    let app = app(&store);
    let (_, token) = app.sign_up("posted@example.com").await;
    let link = app.latest_link_token("/auth/verify-email");

    let response = app
        .send(Req::post("/auth/verify-email").json(&json!({ "token": link })))
        .await;
    assert_status(&response, StatusCode::OK);
    let body = json_of(&response);
    assert_keys(&body, &["user"]);
    assert_user_json(&body["user"], "posted@example.com", true);
    assert_eq!(
        json_of(&app.session(&token).await)["user"]["email_verified"],
        true,
        "the session sees it at once"
    );
    let reused = app
        .send(Req::post("/auth/verify-email").json(&json!({ "token": link })))
        .await;
    assert_problem(&reused, 400, "invalid_link");

    let (_, clicked_session) = app.sign_up("clicked@example.com").await;
    let link = app.latest_link_token("/auth/verify-email");
    let response = app
        .send(Req::get(&format!("/auth/verify-email?token={link}")).empty())
        .await;
    assert_status(&response, StatusCode::SEE_OTHER);
    assert_eq!(response.headers()[header::LOCATION], "/dashboard");
    assert_eq!(
        json_of(&app.session(&clicked_session).await)["user"]["email_verified"],
        true
    );
    let reused = app
        .send(Req::get(&format!("/auth/verify-email?token={link}")).empty())
        .await;
    assert_problem(&reused, 400, "invalid_link");
    for path in [
        "/auth/verify-email",
        "/auth/verify-email?token=",
        "/auth/verify-email?token=forged-token",
    ] {
        assert_problem(&app.send(Req::get(path).empty()).await, 400, "invalid_link");
    }
    let forged = app
        .send(Req::post("/auth/verify-email").json(&json!({ "token": "A".repeat(43) })))
        .await;
    assert_problem(&forged, 400, "invalid_link");
}

/// A reset request answers 202 with the same answer for a known and an unknown email, and
/// mails a link only to the known account.
pub async fn http_password_reset_answers_202_alike_and_mails_only_known_accounts(
    store: Arc<dyn AuthStore>,
) {
    let app = app(&store);
    app.sign_up("forgetful@example.com").await;
    let _ = app.mailer.take();

    let unknown = app
        .send(Req::post("/auth/password-reset").json(&json!({ "email": "nobody@example.com" })))
        .await;
    let known = app
        .send(Req::post("/auth/password-reset").json(&json!({ "email": "Forgetful@example.com" })))
        .await;
    assert_status(&known, StatusCode::ACCEPTED);
    assert_eq!(unknown.status(), known.status());
    assert_eq!(unknown.headers(), known.headers());
    assert_eq!(unknown.body(), known.body());
    assert_no_session_cookie(&known);

    app.wait_for_mails(1).await;
    // Give a stray mail to the unknown address the time to show up.
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let mails = app.mailer.messages();
    assert_eq!(mails.len(), 1, "one mail, to the known account");
    assert_eq!(mails[0].to.as_str(), "forgetful@example.com");
    link_token(&mails[0], "/reset-password");
}

/// Confirming a reset sets the new password and ends every session of the user (this
/// browser's cookie is cleared); the link works once.
pub async fn http_password_reset_confirm_sets_the_password_and_ends_every_session(
    store: Arc<dyn AuthStore>,
) {
    let app = app(&store);
    let (_, first) = app.sign_up("reset@example.com").await;
    let second = app.signed_in("reset@example.com", PASSWORD).await;
    let response = app
        .send(Req::post("/auth/password-reset").json(&json!({ "email": "reset@example.com" })))
        .await;
    assert_status(&response, StatusCode::ACCEPTED);
    let mails = app.wait_for_mails(2).await;
    let link = link_token(&mails[1], "/reset-password");

    let response = app
        .send(
            Req::post("/auth/password-reset/confirm")
                .cookie(&first)
                .json(&json!({ "token": link, "password": NEW_PASSWORD })),
        )
        .await;
    assert_status(&response, StatusCode::OK);
    assert_removes_cookie(&response);
    for token in [&first, &second] {
        assert_problem(&app.session(token).await, 401, "unauthenticated");
    }
    assert_problem(
        &app.sign_in("reset@example.com", PASSWORD).await,
        401,
        "invalid_credentials",
    );
    app.signed_in("reset@example.com", NEW_PASSWORD).await;
    let reused = app
        .send(
            Req::post("/auth/password-reset/confirm")
                .json(&json!({ "token": link, "password": "yet another passphrase" })),
        )
        .await;
    assert_problem(&reused, 400, "invalid_link");
    app.signed_in("reset@example.com", NEW_PASSWORD).await;
}

/// A reset link more than an hour old is 400 `invalid_link`, and the password stays.
pub async fn http_expired_password_reset_link_is_400_invalid_link(store: Arc<dyn AuthStore>) {
    let app = app(&store);
    app.sign_up("slow@example.com").await;
    app.send(Req::post("/auth/password-reset").json(&json!({ "email": "slow@example.com" })))
        .await;
    let mails = app.wait_for_mails(2).await;
    let link = link_token(&mails[1], "/reset-password");

    app.clock.advance(Duration::hours(1) + Duration::seconds(1));
    let response = app
        .send(
            Req::post("/auth/password-reset/confirm")
                .json(&json!({ "token": link, "password": NEW_PASSWORD })),
        )
        .await;
    assert_problem(&response, 400, "invalid_link");
    app.signed_in("slow@example.com", PASSWORD).await;
    assert_problem(
        &app.sign_in("slow@example.com", NEW_PASSWORD).await,
        401,
        "invalid_credentials",
    );
}

/// A change of password keeps the session that asked and ends the others; a wrong current
/// password is 401 `invalid_credentials` and ends nothing.
pub async fn http_change_password_keeps_this_session_and_ends_the_others(
    store: Arc<dyn AuthStore>,
) {
    let app = app(&store);
    let (_, this) = app.sign_up("changer@example.com").await;
    let other = app.signed_in("changer@example.com", PASSWORD).await;
    let change = |current: &str, new: &str| {
        Req::post("/auth/change-password")
            .cookie(&this)
            .json(&json!({ "current_password": current, "new_password": new }))
    };

    let response = app.send(change("not the password", NEW_PASSWORD)).await;
    assert_problem(&response, 401, "invalid_credentials");
    assert_no_session_cookie(&response);
    app.session_id(&this).await;
    app.session_id(&other).await;
    let response = app.send(change(PASSWORD, "password1234")).await;
    assert_problem(&response, 422, "weak_password");
    app.session_id(&other).await;

    let before = app.session_id(&this).await;
    let response = app.send(change(PASSWORD, NEW_PASSWORD)).await;
    assert_status(&response, StatusCode::OK);
    // This session goes on under a new id; its old token is refused.
    let rotated = session_token(&response);
    assert_ne!(app.session_id(&rotated).await, before);
    assert_problem(&app.session(&this).await, 401, "unauthenticated");
    assert_problem(&app.session(&other).await, 401, "unauthenticated");
    app.signed_in("changer@example.com", NEW_PASSWORD).await;
    assert_problem(
        &app.sign_in("changer@example.com", PASSWORD).await,
        401,
        "invalid_credentials",
    );
    let unauthenticated = app
        .send(
            Req::post("/auth/change-password")
                .json(&json!({ "current_password": NEW_PASSWORD, "new_password": PASSWORD })),
        )
        .await;
    assert_problem(&unauthenticated, 401, "unauthenticated");
}

/// A session unused past its 30-day lifetime is 401 `session_expired` with a removal cookie,
/// and is gone from the store.
pub async fn http_expired_session_is_401_session_expired_with_a_removal_cookie(
    store: Arc<dyn AuthStore>,
) {
    let app = app(&store);
    let (_, token) = app.sign_up("expiring@example.com").await;
    let id = app.session_id(&token).await;

    app.clock
        .advance(Duration::seconds(LIFETIME_SECS) + Duration::seconds(1));
    let response = app.session(&token).await;
    assert_problem(&response, 401, "session_expired");
    assert_removes_cookie(&response);
    assert!(
        store
            .session_by_id(id.parse().unwrap())
            .await
            .unwrap()
            .is_none(),
        "the expired session is deleted"
    );
    let response = app
        .send(Req::post("/auth/sign-out").cookie(&token).empty())
        .await;
    assert_problem(&response, 401, "unauthenticated");
    assert_removes_cookie(&response);
}

/// Past half its lifetime, a used session slides: the answer re-sends the cookie with a fresh
/// `Max-Age`, and the session outlives its first expiry.
pub async fn http_sliding_expiry_refreshes_the_cookie_and_outlives_the_first_expiry(
    store: Arc<dyn AuthStore>,
) {
    let app = app(&store);
    let (_, token) = app.sign_up("sliding@example.com").await;

    app.clock.advance(Duration::days(1));
    let response = app.session(&token).await;
    assert_status(&response, StatusCode::OK);
    assert_no_session_cookie(&response);

    app.clock.advance(Duration::days(19));
    let response = app.session(&token).await;
    assert_status(&response, StatusCode::OK);
    let (value, attributes) = session_set_cookie(&response);
    assert_eq!(value, token, "the same token, re-sent");
    assert_eq!(checked_attributes(&attributes), LIFETIME_SECS);
    assert_eq!(
        time_of(&json_of(&response)["session"]["expires_at"]),
        app.clock.now() + Duration::days(30)
    );
    let response = app.session(&token).await;
    assert_no_session_cookie(&response);

    // Day 35: past the first expiry (day 30), within the moved one (day 50).
    app.clock.advance(Duration::days(15));
    app.session_id(&token).await;
    let again = self::app(&store);
    again.clock.set(app.clock.now());
    again.session_id(&token).await;

    // Day 51: unused since day 35, past the moved expiry.
    app.clock.advance(Duration::days(16));
    let response = app.session(&token).await;
    assert_problem(&response, 401, "session_expired");
    assert_removes_cookie(&response);
}

/// The request that slides a session re-sends the cookie even when it is refused (a CSRF
/// rejection, a wrong content type): the expiry moved in the store, and the browser's cookie
/// must not die at the old one.
pub async fn http_sliding_refresh_is_sent_even_when_the_request_is_refused(
    store: Arc<dyn AuthStore>,
) {
    let app = app(&store);
    let (_, token) = app.sign_up("refused@example.com").await;

    app.clock.advance(Duration::days(20));
    let response = app
        .send(
            Req::post("/auth/sign-out")
                .replace_header(header::ORIGIN, Some("http://evil.test"))
                .cookie(&token)
                .empty(),
        )
        .await;
    assert_problem(&response, 403, "csrf_rejected");
    let (value, attributes) = session_set_cookie(&response);
    assert_eq!(value, token);
    assert_eq!(checked_attributes(&attributes), LIFETIME_SECS);

    app.clock.advance(Duration::days(20));
    let response = app
        .send(
            Req::post("/auth/change-password")
                .cookie(&token)
                .header(header::CONTENT_TYPE, "text/plain")
                .raw("{}"),
        )
        .await;
    assert_problem(&response, 415, "unsupported_media_type");
    let (value, attributes) = session_set_cookie(&response);
    assert_eq!(value, token);
    assert_eq!(checked_attributes(&attributes), LIFETIME_SECS);
    app.session_id(&token).await;
}

/// A cross-origin unsafe request that carries the session cookie is 403 `csrf_rejected`, and
/// neither changes anything nor harms the session.
pub async fn http_cross_origin_post_with_the_cookie_is_403_csrf_rejected(
    store: Arc<dyn AuthStore>,
) {
    let app = app(&store);
    let (_, token) = app.sign_up("victim@example.com").await;
    let other = app.signed_in("victim@example.com", PASSWORD).await;
    let other_id = app.session_id(&other).await;

    for origin in [
        "http://evil.test",
        "https://app.test",
        "http://app.test:8080",
        "http://app.test.evil.test",
        "http://sub.app.test",
        "http://app.test, http://evil.test",
    ] {
        let forged = |req: Req| {
            req.replace_header(header::ORIGIN, Some(origin))
                .cookie(&token)
        };
        let response = app.send(forged(Req::post("/auth/sign-out")).empty()).await;
        assert_problem(&response, 403, "csrf_rejected");
        assert_no_session_cookie(&response);
        let response = app
            .send(forged(Req::post("/auth/sign-out-everywhere")).empty())
            .await;
        assert_problem(&response, 403, "csrf_rejected");
        let response = app
            .send(forged(Req::delete(&format!("/auth/sessions/{other_id}"))).empty())
            .await;
        assert_problem(&response, 403, "csrf_rejected");
        let response = app
            .send(forged(Req::post("/orgs")).json(&json!({ "name": "Evil Corp" })))
            .await;
        assert_problem(&response, 403, "csrf_rejected");
        let response = app
            .send(forged(Req::post("/auth/change-password")).json(&json!({
                "current_password": PASSWORD,
                "new_password": NEW_PASSWORD,
            })))
            .await;
        assert_problem(&response, 403, "csrf_rejected");
    }
    app.session_id(&token).await;
    app.session_id(&other).await;
    let orgs = app.send(Req::get("/orgs").cookie(&token).empty()).await;
    assert_eq!(json_of(&orgs), json!([]));
    app.signed_in("victim@example.com", PASSWORD).await;
}

/// `Origin: null` (sandboxed frames, some redirects) is 403 `csrf_rejected`, whatever the
/// `Referer` says.
pub async fn http_origin_null_is_403_csrf_rejected(store: Arc<dyn AuthStore>) {
    let app = app(&store);
    let (_, token) = app.sign_up("null@example.com").await;
    let response = app
        .send(
            Req::post("/auth/sign-out")
                .replace_header(header::ORIGIN, Some("null"))
                .header(header::REFERER, format!("{ORIGIN}/dashboard"))
                .header("sec-fetch-site", "same-origin")
                .cookie(&token)
                .empty(),
        )
        .await;
    assert_problem(&response, 403, "csrf_rejected");
    let response = app
        .send(
            Req::post("/auth/sign-in")
                .replace_header(header::ORIGIN, Some("null"))
                .json(&json!({ "email": "null@example.com", "password": PASSWORD })),
        )
        .await;
    assert_problem(&response, 403, "csrf_rejected");
    assert_no_session_cookie(&response);
    app.session_id(&token).await;
}

/// A request with the session cookie and none of `Origin`, `Referer` or `Sec-Fetch-Site` is
/// 403 `csrf_rejected`.
pub async fn http_cookie_without_origin_referer_or_fetch_site_is_403(store: Arc<dyn AuthStore>) {
    let app = app(&store);
    let (_, token) = app.sign_up("bare@example.com").await;
    let response = app
        .send(
            Req::bare(Method::POST, "/auth/sign-out")
                .cookie(&token)
                .empty(),
        )
        .await;
    assert_problem(&response, 403, "csrf_rejected");
    let response = app
        .send(
            Req::bare(Method::POST, "/orgs")
                .cookie(&token)
                .json(&json!({ "name": "Acme" })),
        )
        .await;
    assert_problem(&response, 403, "csrf_rejected");
    // A cookie that is not even a valid token still counts as a browser's cookie.
    let response = app
        .send(
            Req::bare(Method::POST, "/auth/sign-in")
                .cookie("junk")
                .json(&json!({ "email": "bare@example.com", "password": PASSWORD })),
        )
        .await;
    assert_problem(&response, 403, "csrf_rejected");
    app.session_id(&token).await;
    // Safe methods are not checked.
    let response = app
        .send(
            Req::bare(Method::GET, "/auth/session")
                .cookie(&token)
                .empty(),
        )
        .await;
    assert_status(&response, StatusCode::OK);
}

/// Without `Origin`, a `Referer` on the app's origin or `Sec-Fetch-Site: same-origin` passes;
/// a foreign `Referer` or `Sec-Fetch-Site: same-site`/`cross-site` does not.
pub async fn http_same_origin_referer_or_fetch_site_passes_the_csrf_check(
    store: Arc<dyn AuthStore>,
) {
    let app = app(&store);
    let (_, token) = app.sign_up("referer@example.com").await;
    let sign_out = |name: &str, value: &str, token: &str| {
        Req::bare(Method::POST, "/auth/sign-out")
            .header(name, value)
            .cookie(token)
            .empty()
    };
    for (name, value) in [
        ("referer", "http://evil.test/app.test"),
        ("referer", "http://app.test.evil.test/"),
        ("referer", "https://app.test/dashboard"),
        ("sec-fetch-site", "cross-site"),
        ("sec-fetch-site", "same-site"),
        ("sec-fetch-site", "none"),
    ] {
        let response = app.send(sign_out(name, value, &token)).await;
        assert_problem(&response, 403, "csrf_rejected");
    }
    app.session_id(&token).await;

    let response = app
        .send(sign_out("referer", "http://app.test/dashboard?x=1", &token))
        .await;
    assert_status(&response, StatusCode::NO_CONTENT);
    assert_problem(&app.session(&token).await, 401, "unauthenticated");

    let token = app.signed_in("referer@example.com", PASSWORD).await;
    let response = app
        .send(sign_out("sec-fetch-site", "same-origin", &token))
        .await;
    assert_status(&response, StatusCode::NO_CONTENT);
    assert_problem(&app.session(&token).await, 401, "unauthenticated");
}

/// Sign-in and sign-up from a foreign origin are refused even without a cookie (login CSRF):
/// no session is made and no user created.
pub async fn http_sign_in_from_a_foreign_origin_is_403_login_csrf(store: Arc<dyn AuthStore>) {
    let app = app(&store);
    app.sign_up("attacker@example.com").await;
    let response = app
        .send(
            Req::post("/auth/sign-in")
                .replace_header(header::ORIGIN, Some("http://evil.test"))
                .json(&json!({ "email": "attacker@example.com", "password": PASSWORD })),
        )
        .await;
    assert_problem(&response, 403, "csrf_rejected");
    assert_no_session_cookie(&response);
    let response = app
        .send(
            Req::bare(Method::POST, "/auth/sign-in")
                .header("sec-fetch-site", "cross-site")
                .json(&json!({ "email": "attacker@example.com", "password": PASSWORD })),
        )
        .await;
    assert_problem(&response, 403, "csrf_rejected");
    let response = app
        .send(
            Req::bare(Method::POST, "/auth/sign-in")
                .header(header::REFERER, "http://evil.test/login")
                .json(&json!({ "email": "attacker@example.com", "password": PASSWORD })),
        )
        .await;
    assert_problem(&response, 403, "csrf_rejected");
    let response = app
        .send(
            Req::post("/auth/sign-up")
                .replace_header(header::ORIGIN, Some("http://evil.test"))
                .json(&json!({ "email": "planted@example.com", "password": PASSWORD })),
        )
        .await;
    assert_problem(&response, 403, "csrf_rejected");
    assert!(app.user("planted@example.com").await.is_none());
    let user = app.user("attacker@example.com").await.unwrap();
    assert_eq!(
        store
            .sessions_for_user(user.id, app.clock.now())
            .await
            .unwrap()
            .len(),
        1,
        "only the sign-up's session"
    );
}

/// A client with no `Origin`, `Referer`, `Sec-Fetch-Site` or cookie (curl, a mobile app)
/// signs up and signs in.
pub async fn http_cookieless_non_browser_sign_in_passes(store: Arc<dyn AuthStore>) {
    let app = app(&store);
    let response = app
        .send(
            Req::bare(Method::POST, "/auth/sign-up")
                .json(&json!({ "email": "cli@example.com", "password": PASSWORD })),
        )
        .await;
    assert_status(&response, StatusCode::CREATED);
    let response = app
        .send(
            Req::bare(Method::POST, "/auth/sign-in")
                .json(&json!({ "email": "cli@example.com", "password": PASSWORD })),
        )
        .await;
    assert_status(&response, StatusCode::OK);
    let token = session_token(&response);
    app.session_id(&token).await;
}

/// A Bearer token on the routes that act on the signed-in user is 403 `forbidden`, also when
/// a session cookie comes along (the token decides; the cookie is not used).
pub async fn http_bearer_token_on_session_routes_is_403_forbidden(store: Arc<dyn AuthStore>) {
    let app = app(&store);
    let (_, token) = app.sign_up("bearer@example.com").await;
    let bearer = "Bearer sk_live_eyJhbGciOiJFZERTQSJ9.e30.c2ln";
    let requests = [
        Req::get("/auth/session"),
        Req::get("/auth/sessions"),
        Req::post("/auth/sign-out"),
        Req::post("/auth/sign-out-everywhere"),
    ];
    for request in requests {
        let response = app
            .send(request.header(header::AUTHORIZATION, bearer).empty())
            .await;
        assert_problem(&response, 403, "forbidden");
    }
    let with_cookie = [
        Req::get("/auth/session"),
        Req::post("/auth/sign-out"),
        Req::post("/auth/sign-out-everywhere"),
    ];
    for request in with_cookie {
        let response = app
            .send(
                request
                    .header(header::AUTHORIZATION, bearer)
                    .cookie(&token)
                    .empty(),
            )
            .await;
        assert_problem(&response, 403, "forbidden");
        assert_no_session_cookie(&response);
    }
    let response = app
        .send(
            Req::post("/auth/active-org")
                .header(header::AUTHORIZATION, bearer)
                .json(&json!({ "org_id": null })),
        )
        .await;
    assert_problem(&response, 403, "forbidden");
    app.session_id(&token).await;
}

/// After 10 failed sign-ins for an email, the right password is 429 `rate_limited` with a
/// `Retry-After`; after 15 minutes it works again.
pub async fn http_sign_in_after_ten_failures_is_429_until_the_window_passes(
    store: Arc<dyn AuthStore>,
) {
    let app = app(&store);
    app.sign_up("guessed@example.com").await;
    for i in 0..10 {
        let response = app
            .sign_in("guessed@example.com", &format!("guess number {i}"))
            .await;
        assert_problem(&response, 401, "invalid_credentials");
    }
    let response = app.sign_in("GUESSED@example.com", PASSWORD).await;
    assert_problem(&response, 429, "rate_limited");
    assert_no_session_cookie(&response);
    let retry_after: u64 = response.headers()[header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .expect("Retry-After in seconds");
    assert!(
        (1..=900).contains(&retry_after),
        "Retry-After: {retry_after}"
    );
    // Another email from the same address is not limited (10 is far below the address limit).
    let (_, other) = app.sign_up("bystander@example.com").await;
    app.session_id(&other).await;
    app.signed_in("bystander@example.com", PASSWORD).await;

    app.clock.advance(Duration::minutes(15));
    app.signed_in("guessed@example.com", PASSWORD).await;
}

/// Wrong current passwords on change-password count toward the per-email failed sign-in
/// limit: a stolen session cannot be used to guess the password.
pub async fn http_change_password_guesses_count_toward_the_sign_in_limit(
    store: Arc<dyn AuthStore>,
) {
    let app = app(&store);
    let (_, token) = app.sign_up("stolen@example.com").await;
    let change = |current: &str| {
        Req::post("/auth/change-password")
            .cookie(&token)
            .json(&json!({ "current_password": current, "new_password": NEW_PASSWORD }))
    };
    for i in 0..5 {
        let response = app.send(change(&format!("guess number {i}"))).await;
        assert_problem(&response, 401, "invalid_credentials");
    }
    for i in 5..10 {
        let response = app
            .sign_in("stolen@example.com", &format!("guess number {i}"))
            .await;
        assert_problem(&response, 401, "invalid_credentials");
    }
    let response = app.send(change(PASSWORD)).await;
    assert_problem(&response, 429, "rate_limited");
    assert!(response.headers().contains_key(header::RETRY_AFTER));
    assert_problem(
        &app.sign_in("stolen@example.com", PASSWORD).await,
        429,
        "rate_limited",
    );

    app.clock.advance(Duration::minutes(15));
    // The session is past the step-up age now: the password proves it is the user again.
    assert_problem(
        &app.send(change(PASSWORD)).await,
        403,
        "reauthentication_required",
    );
    assert_status(
        &app.send(
            Req::post("/auth/reauthenticate")
                .cookie(&token)
                .json(&json!({ "password": PASSWORD })),
        )
        .await,
        StatusCode::OK,
    );
    assert_status(&app.send(change(PASSWORD)).await, StatusCode::OK);
    app.signed_in("stolen@example.com", NEW_PASSWORD).await;
}

/// An unknown path is 404 `not_found`; a known path with the wrong method is 405
/// `method_not_allowed` with `Allow`.
pub async fn http_unknown_path_is_404_and_wrong_method_is_405_with_allow(
    store: Arc<dyn AuthStore>,
) {
    let app = app(&store);
    for path in [
        "/auth/nope",
        "/auth",
        "/auth/",
        "/auth/sessions/",
        "/auth/sessions/a/b",
        "/auth/session/",
        "/auth/sign-in/extra",
        "/orgs/",
    ] {
        let response = app.send(Req::get(path).empty()).await;
        assert_problem(&response, 404, "not_found");
        let response = app.send(Req::post(path).json(&json!({}))).await;
        assert_problem(&response, 404, "not_found");
    }
    for (method, path, allow) in [
        (Method::GET, "/auth/sign-in", "POST"),
        (Method::GET, "/auth/sign-up", "POST"),
        (Method::PUT, "/auth/sign-out", "POST"),
        (Method::DELETE, "/auth/session", "GET"),
        (Method::POST, "/auth/sessions", "GET"),
        (
            Method::GET,
            "/auth/sessions/0191e3a0-0000-7000-8000-000000000000",
            "DELETE",
        ),
        (Method::DELETE, "/auth/verify-email", "GET, POST"),
        (Method::PATCH, "/orgs", "GET, POST"),
        (Method::GET, "/auth/password-reset", "POST"),
    ] {
        let response = app.send(Req::new(method.clone(), path).empty()).await;
        assert_problem(&response, 405, "method_not_allowed");
        assert_eq!(response.headers()[header::ALLOW], allow, "{method} {path}");
    }
}

/// `POST /orgs` answers 201 with the org and role `owner`, and makes it the session's active
/// org: `GET /auth/session` then shows the org, the role and the owner's permissions.
pub async fn http_created_org_becomes_the_active_org_with_owner_permissions(
    store: Arc<dyn AuthStore>,
) {
    let app = app(&store);
    let (_, token) = app.sign_up("founder@example.com").await;
    let response = app
        .send(
            Req::post("/orgs")
                .cookie(&token)
                .json(&json!({ "name": "Acme Inc." })),
        )
        .await;
    assert_status(&response, StatusCode::CREATED);
    let org = json_of(&response);
    assert_keys(&org, &["id", "name", "slug", "role"]);
    assert_eq!(org["name"], "Acme Inc.");
    assert_eq!(org["slug"], "acme-inc");
    assert_eq!(org["role"], "owner");

    let session = json_of(&app.session(&token).await);
    assert_eq!(
        session["org"],
        json!({ "id": org["id"], "name": "Acme Inc.", "slug": "acme-inc" })
    );
    assert_eq!(session["role"], "owner");
    let permissions: BTreeSet<&str> = session["permissions"]
        .as_array()
        .expect("an array")
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    assert_eq!(
        permissions,
        BTreeSet::from([
            "read:projects",
            "write:projects",
            "read:deployments",
            "write:deployments",
            "members:read",
            "tokens:create",
            "members:manage",
            "tokens:manage",
            "audit:read",
            "billing:manage",
            "org:delete",
        ])
    );

    // A second org with the same name gets its own slug.
    let response = app
        .send(
            Req::post("/orgs")
                .cookie(&token)
                .json(&json!({ "name": "Acme Inc." })),
        )
        .await;
    assert_status(&response, StatusCode::CREATED);
    let second = json_of(&response);
    assert_ne!(second["slug"], org["slug"]);
    assert_eq!(
        json_of(&app.session(&token).await)["org"]["id"],
        second["id"]
    );

    let list = json_of(&app.send(Req::get("/orgs").cookie(&token).empty()).await);
    let items = list.as_array().expect("an array");
    assert_eq!(items.len(), 2);
    for item in items {
        assert_keys(item, &["id", "name", "slug", "role"]);
        assert_eq!(item["role"], "owner");
    }

    for name in [json!(""), json!("   "), json!("x".repeat(101)), json!(5)] {
        let response = app
            .send(
                Req::post("/orgs")
                    .cookie(&token)
                    .json(&json!({ "name": name })),
            )
            .await;
        assert_problem(&response, 400, "invalid_request");
    }
    assert_problem(
        &app.send(Req::post("/orgs").json(&json!({ "name": "Anon" })))
            .await,
        401,
        "unauthenticated",
    );
    assert_problem(
        &app.send(Req::get("/orgs").empty()).await,
        401,
        "unauthenticated",
    );
}

/// `POST /auth/active-org` to an org the user is not a member of (existing or not, or not an
/// id) is 403 and leaves the session's org as it was; to the user's own org it is 200.
pub async fn http_switching_to_an_org_the_user_is_not_in_is_403(store: Arc<dyn AuthStore>) {
    let app = app(&store);
    let (_, outsider) = app.sign_up("outsider@example.com").await;
    let (_, insider) = app.sign_up("insider@example.com").await;
    let theirs = json_of(
        &app.send(
            Req::post("/orgs")
                .cookie(&insider)
                .json(&json!({ "name": "Private" })),
        )
        .await,
    );
    let mine = json_of(
        &app.send(
            Req::post("/orgs")
                .cookie(&outsider)
                .json(&json!({ "name": "Mine" })),
        )
        .await,
    );

    for org_id in [
        theirs["id"].clone(),
        json!(keystead::OrgId::new().to_string()),
        json!("not-an-id"),
    ] {
        let response = app
            .send(
                Req::post("/auth/active-org")
                    .cookie(&outsider)
                    .json(&json!({ "org_id": org_id })),
            )
            .await;
        assert_problem(&response, 403, "forbidden");
        let session = json_of(&app.session(&outsider).await);
        assert_eq!(session["org"]["id"], mine["id"], "unchanged");
    }

    // Each switch rotates the session: the answer carries the new cookie, the old one is dead.
    let response = app
        .send(
            Req::post("/auth/active-org")
                .cookie(&outsider)
                .json(&json!({ "org_id": null })),
        )
        .await;
    assert_status(&response, StatusCode::OK);
    let switched = session_token(&response);
    assert_problem(&app.session(&outsider).await, 401, "unauthenticated");
    let session = json_of(&app.session(&switched).await);
    assert_eq!(session["org"], Value::Null);
    assert_eq!(session["permissions"], json!([]));
    let response = app
        .send(
            Req::post("/auth/active-org")
                .cookie(&switched)
                .json(&json!({ "org_id": mine["id"] })),
        )
        .await;
    assert_status(&response, StatusCode::OK);
    let body = json_of(&response);
    assert_eq!(body["role"], "owner");
    assert_eq!(body["org"]["id"], mine["id"]);
    let switched_back = session_token(&response);
    assert_problem(&app.session(&switched).await, 401, "unauthenticated");
    assert_eq!(
        json_of(&app.session(&switched_back).await)["org"]["id"],
        mine["id"]
    );
    assert_problem(
        &app.send(Req::post("/auth/active-org").json(&json!({ "org_id": mine["id"] })))
            .await,
        401,
        "unauthenticated",
    );
}

/// Sign-in successes and failures, sign-out, revoking a session, email verification and a
/// password reset are recorded in the audit log with the client, never with a password.
pub async fn http_audit_events_record_sign_ins_sign_outs_resets_verifications_and_revocations(
    store: Arc<dyn AuthStore>,
) {
    let app = app(&store);
    let (user_id, first) = app.sign_up("audited@example.com").await;
    let link = app.latest_link_token("/auth/verify-email");
    app.clock.advance(Duration::seconds(1));
    app.sign_in("audited@example.com", "hunter2 wrong").await;
    app.clock.advance(Duration::seconds(1));
    let second = app.signed_in("audited@example.com", PASSWORD).await;
    let second_id = app.session_id(&second).await;
    let first_id = app.session_id(&first).await;
    app.send(Req::post("/auth/verify-email").json(&json!({ "token": link })))
        .await;
    let response = app
        .send(
            Req::delete(&format!("/auth/sessions/{second_id}"))
                .cookie(&first)
                .empty(),
        )
        .await;
    assert_status(&response, StatusCode::NO_CONTENT);
    let response = app
        .send(Req::post("/auth/sign-out").cookie(&first).empty())
        .await;
    assert_status(&response, StatusCode::NO_CONTENT);
    app.send(Req::post("/auth/password-reset").json(&json!({ "email": "audited@example.com" })))
        .await;
    let mails = app.wait_for_mails(2).await;
    let reset = link_token(&mails[1], "/reset-password");
    let response = app
        .send(
            Req::post("/auth/password-reset/confirm")
                .json(&json!({ "token": reset, "password": NEW_PASSWORD })),
        )
        .await;
    assert_status(&response, StatusCode::OK);

    let events = app.audit_events(&user_id).await;
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    for kind in [
        "sign_up",
        "sign_in.failed",
        "sign_in.succeeded",
        "email.verified",
        "sign_out",
        "password.reset",
    ] {
        assert!(kinds.contains(&kind), "{kind} in {kinds:?}");
    }
    let ended: BTreeSet<&str> = events
        .iter()
        .filter(|e| e.kind == "sign_out")
        .filter_map(|e| e.data["session_id"].as_str())
        .collect();
    assert_eq!(
        ended,
        BTreeSet::from([first_id.as_str(), second_id.as_str()]),
        "the revoked session and the signed-out one"
    );
    for event in &events {
        assert_eq!(event.ip.as_deref(), Some("203.0.113.7"), "{}", event.kind);
        assert_eq!(
            event.user_agent.as_deref(),
            Some(USER_AGENT),
            "{}",
            event.kind
        );
        let data = event.data.to_string();
        assert!(
            !data.contains("hunter2") && !data.contains(PASSWORD) && !data.contains(NEW_PASSWORD),
            "{data}"
        );
    }
    let failed = events.iter().find(|e| e.kind == "sign_in.failed").unwrap();
    assert_eq!(failed.actor_id, None, "a failure proves no identity");
}

#[cfg(test)]
mod tests {
    use http::HeaderMap;

    use super::*;

    fn header_map(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(*name, value.parse().unwrap());
        }
        headers
    }

    #[test]
    fn set_cookie_parsing_reads_value_and_attributes() {
        let mut response = Response::new(Bytes::new());
        *response.headers_mut() = header_map(&[
            ("set-cookie", "other=1; Path=/"),
            (
                "set-cookie",
                "authkit_session=abc; HttpOnly; SameSite=Lax; Path=/; Max-Age=10",
            ),
        ]);
        let (value, attributes) = session_set_cookie(&response);
        assert_eq!(value, "abc");
        assert_eq!(checked_attributes(&attributes), 10);
    }
}
