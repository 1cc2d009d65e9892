//! Passkeys over HTTP with real WebAuthn ceremonies, answered by a software authenticator
//! (`keystead_conformance::webauthn`): registration, passwordless sign-in, a passkey as the
//! second factor of a password sign-in, removal. WebAuthn forbids an IP address as the relying
//! party, so each case runs an instance whose `APP_ORIGIN` is `http://localhost:…`.

use keystead_conformance::webauthn::SoftAuthenticator;
use serde_json::{Value, json};

use crate::flows::{self, PASSWORD};
use crate::{AppUnderTest, Method, Reply, SessionCookie, check};

/// The origin of the instance the cases talk to (the port need not be the bound one: the
/// suite's client sends this `Origin`).
const ORIGIN: &str = "http://localhost:3000";

fn ceremony(body: &Value) -> (String, Value) {
    check::exact_keys(body, &["ceremony", "options"], "a ceremony");
    (
        body["ceremony"].as_str().expect("a ceremony").to_owned(),
        body["options"].clone(),
    )
}

async fn register(
    app: &AppUnderTest,
    cookie: &SessionCookie,
    device: &mut SoftAuthenticator,
    name: &str,
) -> Value {
    let started = app
        .client()
        .post_json_with("/auth/passkeys/register/options", &json!({}), cookie)
        .await
        .json_with(200);
    let (ceremony, options) = ceremony(&started);
    let credential = device.register(&options, ORIGIN, true);
    app.client()
        .post_json_with(
            "/auth/passkeys/register",
            &json!({"ceremony": ceremony, "name": name, "credential": credential}),
            cookie,
        )
        .await
        .json_with(201)
}

/// `POST /auth/passkeys/authenticate/options` then `…/authenticate` with `device`'s first
/// credential, the request carrying `cookie_header` (a pending sign-in, or nothing).
async fn authenticate(
    app: &AppUnderTest,
    device: &mut SoftAuthenticator,
    cookie_header: Option<&str>,
    origin: &str,
) -> Reply {
    let mut request = app
        .client()
        .post("/auth/passkeys/authenticate/options")
        .app_origin()
        .json(&json!({}));
    if let Some(cookie) = cookie_header {
        request = request.header("cookie", cookie);
    }
    let (ceremony, options) = ceremony(&request.send().await.json_with(200));
    let assertion = device.assert(&options, 0, origin);
    let mut request = app
        .client()
        .post("/auth/passkeys/authenticate")
        .app_origin()
        .json(&json!({"ceremony": ceremony, "credential": assertion}));
    if let Some(cookie) = cookie_header {
        request = request.header("cookie", cookie);
    }
    request.send().await
}

/// A passkey is registered (named, listed with its backup flags; the used ceremony cannot
/// register again), signs in without a password from a new browser, is refused when the
/// assertion names another origin, completes a password sign-in as its second factor, and once
/// removed the password alone signs in again. Each change is audited and mailed.
pub async fn passkeys_register_sign_in_and_serve_as_second_factor(app: &AppUnderTest) {
    let app = app.sibling_with(&[("APP_ORIGIN", ORIGIN)]).await;
    let app = &app;
    let account = flows::sign_up(app, "ada@example.com").await;
    let mut device = SoftAuthenticator::default();
    let created = register(app, &account.cookie, &mut device, "Laptop").await;
    check::exact_keys(
        &created,
        &[
            "id",
            "name",
            "created_at",
            "last_used_at",
            "backup_eligible",
            "backup_state",
        ],
        "a passkey",
    );
    assert_eq!(created["name"], "Laptop", "{created}");
    assert_eq!(created["backup_eligible"], true, "{created}");
    let listed = app
        .client()
        .get_with("/auth/passkeys", &account.cookie)
        .await
        .json_with(200);
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
    app.latest_mail_matching("ada@example.com", |m| {
        m.subject.contains("passkey was added")
    })
    .await;

    // Passwordless, from a browser without a session.
    let signed_in = authenticate(app, &mut device, None, ORIGIN).await;
    let body = signed_in.json_with(200);
    assert_eq!(body["user"]["email"], "ada@example.com", "{body}");
    let session = flows::session(app, &signed_in.session_cookie()).await;
    assert_eq!(session["mfa"]["enabled"], true, "{session}");
    // An assertion made for another site is refused.
    authenticate(app, &mut device, None, "http://evil.example")
        .await
        .problem(400, "invalid_code");

    // The password is now only the first factor.
    let first = flows::try_sign_in(app, "ada@example.com", PASSWORD).await;
    let challenge = first.json_with(200);
    assert_eq!(challenge["mfa_required"], true, "{challenge}");
    assert_eq!(challenge["methods"], json!(["passkey"]), "{challenge}");
    let pending = first
        .set_cookies()
        .into_iter()
        .find(|c| c.name() == "authkit_mfa")
        .map(|c| format!("authkit_mfa={}", c.value()))
        .expect("a pending sign-in cookie");
    let completed = authenticate(app, &mut device, Some(&pending), ORIGIN).await;
    let body = completed.json_with(200);
    assert_eq!(body["user"]["email"], "ada@example.com", "{body}");
    let cookie = completed.session_cookie();
    // The pending sign-in was used up.
    app.client()
        .post("/auth/mfa/verify")
        .app_origin()
        .header("cookie", &pending)
        .json(&json!({"code": "000000"}))
        .send()
        .await
        .problem(401, "unauthenticated");

    // Removed (a fresh session, so no step-up needed): the password alone signs in again.
    let id = created["id"].as_str().expect("an id");
    app.client()
        .request(Method::DELETE, &format!("/auth/passkeys/{id}"))
        .app_origin()
        .cookie(&cookie)
        .send()
        .await
        .expect(204);
    flows::sign_in(app, "ada@example.com", PASSWORD).await;
    let events = app
        .client()
        .get_with("/auth/security-events?kind=passkey.added", &cookie)
        .await
        .json_with(200);
    assert_eq!(
        events["events"].as_array().map(Vec::len),
        Some(1),
        "{events}"
    );
}
