//! Spans and events never carry a secret, and the flows' spans are there.
//!
//! One test in its own binary: it installs a process-wide subscriber that keeps every span and
//! event down to TRACE, with the fields of each span written when it opens and closes, then
//! runs the library's flows over its HTTP surface on a real SQLite store (sign-up, a failed
//! and a good sign-in, an organization, an invitation and its acceptance, an API token and its
//! use, email verification, a password reset, a request span whose query holds a token, sign
//! out), and searches everything written for each secret those flows used or made.

use std::io::Write;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, header};
use http_body_util::Full;
use keystead::mail::MemoryMailer;
use keystead::tokens::{DirKeyStore, KeyAlgorithm, KeyRing, TokenConfig};
use keystead::web::AppOrigin;
use keystead::{Auth, AuthStore, SystemClock, telemetry};
use keystead_sqlite::SqliteStore;
use serde_json::{Value, json};
use tracing_subscriber::fmt::format::FmtSpan;

const APP: &str = "http://app.test";
const PEER: &str = "192.0.2.7";
const PASSWORD: &str = "a first long passphrase";
const NEW_PASSWORD: &str = "a second long passphrase";
const BOB_PASSWORD: &str = "bob's own long passphrase";

/// Everything the subscriber wrote.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

struct Reply {
    status: u16,
    body: Value,
    cookie: Option<String>,
}

async fn call(auth: &Auth, method: Method, path: &str, cookie: Option<&str>, body: Value) -> Reply {
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header(header::ORIGIN, APP)
        .header(header::USER_AGENT, "telemetry-test");
    if let Some(cookie) = cookie {
        request = request.header(header::COOKIE, cookie);
    }
    let request = if body.is_null() {
        request.body(Full::new(Bytes::new())).unwrap()
    } else {
        request
            .header(header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body.to_string())))
            .unwrap()
    };
    let response = auth.handle(request, PEER.parse::<IpAddr>().unwrap()).await;
    let cookie = response
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.contains("session") && !v.contains("Max-Age=0"))
        .and_then(|v| v.split(';').next())
        .map(str::to_owned);
    Reply {
        status: response.status().as_u16(),
        body: serde_json::from_slice(response.body()).unwrap_or(Value::Null),
        cookie,
    }
}

/// The token in the newest mail to `to` whose action URL contains `kind` (mails may be sent
/// in the background: waits up to 5 s).
async fn mailed_token(mailer: &MemoryMailer, to: &str, kind: &str) -> String {
    for _ in 0..100 {
        let url = mailer
            .messages()
            .into_iter()
            .rev()
            .filter(|m| m.to.as_str() == to)
            .filter_map(|m| m.action_url)
            .find(|url| url.contains(kind));
        if let Some(url) = url {
            return url
                .split("token=")
                .nth(1)
                .expect("a token in the action URL")
                .split('&')
                .next()
                .unwrap()
                .to_owned();
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!(
        "no mail to {to} with {kind:?} in its link: {:?}",
        mailer.messages()
    );
}

/// The value of a `name=value` cookie pair.
fn cookie_value(pair: &str) -> &str {
    pair.split_once('=').expect("name=value").1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_and_events_carry_no_secret() {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_span_events(FmtSpan::NEW | FmtSpan::CLOSE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();

    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn AuthStore> =
        Arc::new(SqliteStore::open(dir.path().join("auth.db")).await.unwrap());
    let mailer = Arc::new(MemoryMailer::default());
    let config = TokenConfig::default();
    let keys = KeyRing::load_or_create(
        Arc::new(DirKeyStore::new(dir.path().join("keys")).unwrap()),
        Arc::new(SystemClock),
        KeyAlgorithm::EdDSA,
        config.max_ttl,
    )
    .await
    .unwrap();
    let auth = Auth::builder(store, AppOrigin::parse(APP).unwrap())
        .mailer(mailer.clone())
        .api_tokens(keys, config)
        .build();
    let mut secrets: Vec<(&str, String)> = vec![
        ("password", PASSWORD.to_owned()),
        ("new password", NEW_PASSWORD.to_owned()),
        ("bob's password", BOB_PASSWORD.to_owned()),
    ];

    let up = call(
        &auth,
        Method::POST,
        "/auth/sign-up",
        None,
        json!({"email": "ada@example.com", "password": PASSWORD}),
    )
    .await;
    assert_eq!(up.status, 201, "{}", up.body);
    let first = up.cookie.expect("a session cookie");
    secrets.push(("sign-up session", cookie_value(&first).to_owned()));
    let verify = mailed_token(&mailer, "ada@example.com", "verify").await;
    secrets.push(("verification token", verify.clone()));

    let wrong = call(
        &auth,
        Method::POST,
        "/auth/sign-in",
        None,
        json!({"email": "ada@example.com", "password": "not the passphrase at all"}),
    )
    .await;
    assert_eq!(wrong.status, 401);
    secrets.push(("wrong password", "not the passphrase at all".to_owned()));
    let signed_in = call(
        &auth,
        Method::POST,
        "/auth/sign-in",
        None,
        json!({"email": "ada@example.com", "password": PASSWORD}),
    )
    .await;
    assert_eq!(signed_in.status, 200, "{}", signed_in.body);
    let cookie = signed_in.cookie.expect("a session cookie");
    secrets.push(("sign-in session", cookie_value(&cookie).to_owned()));

    let verified = call(
        &auth,
        Method::POST,
        "/auth/verify-email",
        None,
        json!({"token": verify}),
    )
    .await;
    assert_eq!(verified.status, 200, "{}", verified.body);

    let org = call(
        &auth,
        Method::POST,
        "/orgs",
        Some(&cookie),
        json!({"name": "Acme"}),
    )
    .await;
    assert_eq!(org.status, 201, "{}", org.body);
    if let Some(rotated) = &org.cookie {
        secrets.push(("rotated session", cookie_value(rotated).to_owned()));
    }
    let cookie = org.cookie.unwrap_or(cookie);
    let org_id = org.body["id"].as_str().unwrap().to_owned();

    let invited = call(
        &auth,
        Method::POST,
        &format!("/orgs/{org_id}/invitations"),
        Some(&cookie),
        json!({"email": "bob@example.com", "role": "member"}),
    )
    .await;
    assert_eq!(invited.status, 201, "{}", invited.body);
    let invitation = mailed_token(&mailer, "bob@example.com", "invitation").await;
    secrets.push(("invitation token", invitation.clone()));
    let bob = call(
        &auth,
        Method::POST,
        "/auth/sign-up",
        None,
        json!({"email": "bob@example.com", "password": BOB_PASSWORD}),
    )
    .await;
    let bob_cookie = bob.cookie.expect("bob's session");
    secrets.push(("bob's session", cookie_value(&bob_cookie).to_owned()));
    let bob_verify = mailed_token(&mailer, "bob@example.com", "verify").await;
    secrets.push(("bob's verification token", bob_verify.clone()));
    call(
        &auth,
        Method::POST,
        "/auth/verify-email",
        None,
        json!({"token": bob_verify}),
    )
    .await;
    let accepted = call(
        &auth,
        Method::POST,
        "/invitations/accept",
        Some(&bob_cookie),
        json!({"token": invitation}),
    )
    .await;
    assert_eq!(accepted.status, 200, "{}", accepted.body);
    if let Some(rotated) = &accepted.cookie {
        secrets.push(("bob's rotated session", cookie_value(rotated).to_owned()));
    }
    let bob_cookie = accepted.cookie.unwrap_or(bob_cookie);

    let created = call(
        &auth,
        Method::POST,
        "/api/tokens",
        Some(&cookie),
        json!({"name": "ci", "scopes": ["read:projects"]}),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let api_token = created.body["token"].as_str().unwrap().to_owned();
    let signature = api_token.rsplit('.').next().unwrap().to_owned();
    secrets.push(("API token", api_token.clone()));
    secrets.push(("API token signature", signature));
    let mut headers = HeaderMap::new();
    headers.insert(
        header::AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {api_token}")).unwrap(),
    );
    let authn = auth.authenticate(&headers).await;
    assert!(authn.principal.is_some(), "{:?}", authn.failure);

    let span = telemetry::request_span(
        &Method::GET,
        &format!("/auth/verify-email?token={}", "q".repeat(43)),
    );
    telemetry::record_authentication(&span, &authn);
    secrets.push(("query token", "q".repeat(43)));
    span.in_scope(|| tracing::info!("inside the request span"));
    drop(span);

    let reset = call(
        &auth,
        Method::POST,
        "/auth/password-reset",
        None,
        json!({"email": "ada@example.com"}),
    )
    .await;
    assert_eq!(reset.status, 202);
    let reset_token = mailed_token(&mailer, "ada@example.com", "reset").await;
    secrets.push(("reset token", reset_token.clone()));
    let confirmed = call(
        &auth,
        Method::POST,
        "/auth/password-reset/confirm",
        None,
        json!({"token": reset_token, "password": NEW_PASSWORD}),
    )
    .await;
    assert_eq!(confirmed.status, 200, "{}", confirmed.body);
    let out = call(
        &auth,
        Method::POST,
        "/auth/sign-out",
        Some(&bob_cookie),
        Value::Null,
    )
    .await;
    assert_eq!(out.status, 204, "{}", out.body);

    let text = captured.text();
    for span in [
        "keystead.sign_up",
        "keystead.sign_in",
        "keystead.verify_email",
        "keystead.org.create",
        "keystead.org.invite",
        "keystead.org.accept_invitation",
        "keystead.token.issue",
        "keystead.password_reset.request",
        "keystead.password_reset.confirm",
        "keystead.sign_out",
        "keystead.request",
    ] {
        assert!(text.contains(span), "no {span} span in:\n{text}");
    }
    assert!(
        text.contains("outcome=\"invalid_credentials\"")
            || text.contains("outcome=invalid_credentials"),
        "the failed sign-in's outcome is recorded:\n{text}"
    );
    assert!(text.contains("path=/auth/verify-email"), "{text}");
    for (what, secret) in &secrets {
        assert!(secret.len() >= 16, "{what} is long enough to search for");
        assert!(
            !text.contains(secret.as_str()),
            "the {what} appears in the trace output:\n{text}"
        );
    }
}
