//! Signing up, in and out, and reading the current session.

use serde_json::json;

use crate::client::SESSION_COOKIE;
use crate::flows::{self, PASSWORD};
use crate::{AppUnderTest, check};

/// Sign-up answers 201 with the user and sets a session cookie: `authkit_session` on an http
/// origin, `HttpOnly`, `SameSite=Lax`, `Path=/`, a `Max-Age`, not `Secure`, holding at least
/// 43 characters (256 bits in base64url); the cookie opens the new session.
pub async fn sign_up_creates_the_user_and_sets_a_session_cookie(app: &AppUnderTest) {
    let reply = app
        .client()
        .post_json(
            "/auth/sign-up",
            &json!({"email": "ada@example.com", "password": PASSWORD, "name": "Ada Lovelace"}),
        )
        .await;
    let body = reply.json_with(201);
    check::exact_keys(&body, &["user"], "the sign-up answer");
    check::user(&body["user"], "ada@example.com");
    assert_eq!(body["user"]["name"], "Ada Lovelace", "{body}");
    assert_eq!(body["user"]["email_verified"], false, "{body}");

    let set = reply
        .session_set_cookie()
        .unwrap_or_else(|| panic!("sign-up sets a session cookie: {reply}"));
    assert_eq!(
        set.name(),
        SESSION_COOKIE,
        "the cookie's name on http: {set}"
    );
    assert_eq!(set.http_only(), Some(true), "HttpOnly: {set}");
    assert_eq!(
        set.same_site(),
        Some(cookie::SameSite::Lax),
        "SameSite=Lax: {set}"
    );
    assert_eq!(set.path(), Some("/"), "Path=/: {set}");
    assert_eq!(set.secure(), None, "no Secure on an http origin: {set}");
    assert_eq!(set.domain(), None, "a host-only cookie: {set}");
    assert!(
        set.max_age().is_some_and(|age| age.is_positive()),
        "a persistent cookie with a Max-Age: {set}"
    );
    assert!(set.value().len() >= 43, "at least 256 bits of token: {set}");

    let session = flows::session(app, &reply.session_cookie()).await;
    assert_eq!(session["user"]["id"], body["user"]["id"], "{session}");
}

/// Sign-up mails a verification link `APP_ORIGIN/auth/verify-email?token=…` to the new address.
pub async fn sign_up_sends_a_verification_mail(app: &AppUnderTest) {
    flows::sign_up(app, "ada@example.com").await;
    let mail = flows::verification_mail(app, "ada@example.com").await;
    let prefix = format!("{}/auth/verify-email?token=", app.origin());
    assert!(
        mail.action_url().starts_with(&prefix),
        "the link points at {prefix}: {mail:?}"
    );
    assert!(
        mail.token().len() >= 22,
        "at least 128 bits of token: {mail:?}"
    );
    assert!(!mail.subject.is_empty(), "a subject: {mail:?}");
    assert!(
        mail.text.contains(mail.action_url()),
        "the text holds the link: {mail:?}"
    );
}

/// A taken email answers 409 `email_taken`, comparing addresses case-insensitively.
pub async fn sign_up_with_a_taken_email_is_409_case_insensitively(app: &AppUnderTest) {
    flows::sign_up(app, "ada@example.com").await;
    for email in ["ada@example.com", "Ada@Example.COM"] {
        app.client()
            .post_json(
                "/auth/sign-up",
                &json!({"email": email, "password": "another fine passphrase"}),
            )
            .await
            .problem(409, "email_taken");
    }
}

/// Sign-in answers 200 `{user, session}` and sets a new session cookie, different from the
/// sign-up one; both cookies open their own session.
pub async fn sign_in_returns_the_user_and_a_new_session_cookie(app: &AppUnderTest) {
    let account = flows::sign_up(app, "ada@example.com").await;
    let (body, cookie) = flows::sign_in(app, "ada@example.com", PASSWORD).await;
    check::exact_keys(&body, &["user", "session"], "the sign-in answer");
    check::user(&body["user"], "ada@example.com");
    assert_eq!(body["user"]["id"], account.user["id"], "{body}");
    check::session(&body["session"]);
    assert_ne!(
        cookie.value, account.cookie.value,
        "sign-in sets a new session cookie"
    );

    let signed_in = flows::session(app, &cookie).await;
    assert_eq!(
        signed_in["session"]["id"], body["session"]["id"],
        "{signed_in}"
    );
    let signed_up = flows::session(app, &account.cookie).await;
    assert_ne!(
        signed_up["session"]["id"], body["session"]["id"],
        "two sign-ins, two sessions"
    );
}

/// Sign-in compares the email case-insensitively.
pub async fn sign_in_ignores_the_case_of_the_email(app: &AppUnderTest) {
    let account = flows::sign_up(app, "ada@example.com").await;
    let (body, _) = flows::sign_in(app, "ADA@Example.com", PASSWORD).await;
    assert_eq!(body["user"]["id"], account.user["id"], "{body}");
}

/// A wrong password and an unknown email both answer 401 `invalid_credentials`, with the same
/// shape and words, and set no cookie.
pub async fn sign_in_failures_look_the_same_for_a_wrong_password_and_an_unknown_email(
    app: &AppUnderTest,
) {
    flows::sign_up(app, "ada@example.com").await;
    let wrong_password =
        flows::try_sign_in(app, "ada@example.com", "not the password at all").await;
    let unknown_email = flows::try_sign_in(app, "nobody@example.com", PASSWORD).await;
    let a = wrong_password.problem(401, "invalid_credentials");
    let b = unknown_email.problem(401, "invalid_credentials");
    assert_eq!(check::keys(&a), check::keys(&b), "same shape:\n{a}\n{b}");
    for key in ["type", "title", "status", "code", "detail"] {
        assert_eq!(a.get(key), b.get(key), "same `{key}`:\n{a}\n{b}");
    }
    for reply in [&wrong_password, &unknown_email] {
        assert!(reply.session_set_cookie().is_none(), "no session: {reply}");
    }
}

/// Sign-out answers 204 and clears the cookie; the session is dead server-side, so replaying
/// the old cookie gives 401.
pub async fn sign_out_clears_the_cookie_and_ends_the_session(app: &AppUnderTest) {
    let account = flows::sign_up(app, "ada@example.com").await;
    let reply = app
        .client()
        .post_with("/auth/sign-out", &account.cookie)
        .await
        .expect(204);
    let cleared = reply
        .session_set_cookie()
        .unwrap_or_else(|| panic!("sign-out clears the session cookie: {reply}"));
    let expired = cleared.max_age().is_some_and(|age| !age.is_positive())
        || cleared
            .expires_datetime()
            .is_some_and(|at| at <= time::OffsetDateTime::now_utc());
    assert!(expired, "the cleared cookie expires at once: {cleared}");
    assert_eq!(
        cleared.path(),
        Some("/"),
        "cleared on the path it was set on: {cleared}"
    );
    flows::assert_session_dead(app, &account.cookie).await;
}

/// `GET /auth/session` answers `{user, session, org, role, permissions, mfa}`; without an
/// organization, `org` and `role` are null and `permissions` is empty; without a factor
/// `mfa` is `{enabled: false, org_blocked: false}`.
pub async fn session_shows_the_user_and_no_organization(app: &AppUnderTest) {
    let account = flows::sign_up(app, "ada@example.com").await;
    let body = flows::session(app, &account.cookie).await;
    check::exact_keys(
        &body,
        &["user", "session", "org", "role", "permissions", "mfa"],
        "GET /auth/session",
    );
    check::user(&body["user"], "ada@example.com");
    assert_eq!(body["user"], account.user, "the same user as at sign-up");
    check::session(&body["session"]);
    assert!(body["org"].is_null(), "{body}");
    assert!(body["role"].is_null(), "{body}");
    assert_eq!(body["permissions"], json!([]), "{body}");
    assert_eq!(
        body["mfa"],
        json!({"enabled": false, "org_blocked": false}),
        "{body}"
    );
}

/// `GET /auth/session` without a cookie, or with a cookie the app never issued, answers 401
/// with `WWW-Authenticate: Bearer`.
pub async fn session_without_a_cookie_is_401_with_a_bearer_challenge(app: &AppUnderTest) {
    app.client()
        .get("/auth/session")
        .send()
        .await
        .unauthenticated("unauthenticated");
    let forged = crate::SessionCookie {
        name: SESSION_COOKIE.to_owned(),
        value: "A".repeat(43),
    };
    app.client()
        .get_with("/auth/session", &forged)
        .await
        .dead_session();
}
