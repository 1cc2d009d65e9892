//! Email verification and password reset: the mailed one-time links.

use std::time::Duration;

use serde_json::json;

use crate::flows::{self, NEW_PASSWORD, PASSWORD};
use crate::{AppUnderTest, check};

/// `POST /auth/verify-email` with the mailed token answers 200 `{user}` with
/// `email_verified: true`; the token is single use (again: 400 `invalid_link`).
pub async fn verify_email_with_the_mailed_token(app: &AppUnderTest) {
    let account = flows::sign_up(app, "ada@example.com").await;
    let token = flows::verification_mail(app, "ada@example.com")
        .await
        .token();
    let reply = app
        .client()
        .post_json_with(
            "/auth/verify-email",
            &json!({"token": token}),
            &account.cookie,
        )
        .await;
    let body = reply.json_with(200);
    check::exact_keys(&body, &["user"], "the verify-email answer");
    check::user(&body["user"], "ada@example.com");
    assert_eq!(body["user"]["email_verified"], true, "{body}");
    // The session went on under a new id (see `verify_email_with_the_session_rotates_it`).
    let cookie = flows::rotated_cookie(&reply, &account.cookie);
    let session = flows::session(app, &cookie).await;
    assert_eq!(session["user"]["email_verified"], true, "{session}");

    app.client()
        .post_json_with("/auth/verify-email", &json!({"token": token}), &cookie)
        .await
        .problem(400, "invalid_link");
}

/// A verification token that was never issued answers 400 `invalid_link`.
pub async fn verify_email_with_a_garbage_token_is_invalid_link(app: &AppUnderTest) {
    let account = flows::sign_up(app, "ada@example.com").await;
    for token in ["garbage", "A".repeat(43).as_str()] {
        app.client()
            .post_json_with(
                "/auth/verify-email",
                &json!({"token": token}),
                &account.cookie,
            )
            .await
            .problem(400, "invalid_link");
    }
    let session = flows::session(app, &account.cookie).await;
    assert_eq!(session["user"]["email_verified"], false, "{session}");
}

/// The clicked link, `GET /auth/verify-email?token=…` (from any browser), verifies the address
/// and redirects (303 or 302) to `/dashboard`.
pub async fn verify_email_link_redirects_to_the_dashboard(app: &AppUnderTest) {
    let account = flows::sign_up(app, "ada@example.com").await;
    let mail = flows::verification_mail(app, "ada@example.com").await;
    let reply = app
        .client()
        .get(mail.action_url())
        .accept_html()
        .send()
        .await;
    assert!(
        reply.status == 303 || reply.status == 302,
        "the link redirects: {reply}"
    );
    let location = reply.header("location").unwrap_or_default();
    let dashboard = format!("{}/dashboard", app.origin());
    assert!(
        location == "/dashboard" || location == dashboard,
        "the link goes on to /dashboard: {reply}"
    );
    let session = flows::session(app, &account.cookie).await;
    assert_eq!(session["user"]["email_verified"], true, "{session}");
}

/// `POST /auth/password-reset` answers 202 alike for a known and an unknown email, and mails a
/// reset link `APP_ORIGIN/reset-password?token=…` only to the known one.
pub async fn password_reset_answers_alike_for_known_and_unknown_emails(app: &AppUnderTest) {
    flows::sign_up(app, "ada@example.com").await;
    let unknown = app
        .client()
        .post_json(
            "/auth/password-reset",
            &json!({"email": "nobody@example.com"}),
        )
        .await
        .expect(202);
    let known = app
        .client()
        .post_json("/auth/password-reset", &json!({"email": "ada@example.com"}))
        .await
        .expect(202);
    assert_eq!(
        (known.media_type(), &known.body),
        (unknown.media_type(), &unknown.body),
        "the answer never tells:\n{known}\n{unknown}"
    );

    let mail = flows::reset_mail(app, "ada@example.com").await;
    let prefix = format!("{}/reset-password?token=", app.origin());
    assert!(
        mail.action_url().starts_with(&prefix),
        "a link to {prefix}: {mail:?}"
    );
    // The unknown address was asked for first; give a late mail a moment anyway.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        app.mails_to("nobody@example.com"),
        [],
        "no mail to an unknown address"
    );
}

/// `POST /auth/password-reset/confirm` with the mailed token answers 200: the new password
/// signs in, the old one no longer does, every earlier session has ended, and the token is
/// single use (again: 400 `invalid_link`).
pub async fn password_reset_confirm_sets_the_password_and_ends_every_session(app: &AppUnderTest) {
    let account = flows::sign_up(app, "ada@example.com").await;
    let (_, second) = flows::sign_in(app, "ada@example.com", PASSWORD).await;
    app.client()
        .post_json("/auth/password-reset", &json!({"email": "ada@example.com"}))
        .await
        .expect(202);
    let token = flows::reset_mail(app, "ada@example.com").await.token();
    let confirm = json!({"token": token, "password": NEW_PASSWORD});
    app.client()
        .post_json("/auth/password-reset/confirm", &confirm)
        .await
        .expect(200);

    flows::assert_session_dead(app, &account.cookie).await;
    flows::assert_session_dead(app, &second).await;
    flows::sign_in(app, "ada@example.com", NEW_PASSWORD).await;
    flows::try_sign_in(app, "ada@example.com", PASSWORD)
        .await
        .problem(401, "invalid_credentials");

    let again = json!({"token": token, "password": "yet another passphrase"});
    app.client()
        .post_json("/auth/password-reset/confirm", &again)
        .await
        .problem(400, "invalid_link");
    flows::sign_in(app, "ada@example.com", NEW_PASSWORD).await;
}

/// A reset token that was never issued answers 400 `invalid_link` and changes nothing.
pub async fn password_reset_confirm_with_a_garbage_token_is_invalid_link(app: &AppUnderTest) {
    flows::sign_up(app, "ada@example.com").await;
    app.client()
        .post_json(
            "/auth/password-reset/confirm",
            &json!({"token": "garbage", "password": NEW_PASSWORD}),
        )
        .await
        .problem(400, "invalid_link");
    flows::sign_in(app, "ada@example.com", PASSWORD).await;
}
