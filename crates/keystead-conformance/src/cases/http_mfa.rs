//! Second factors through the library's routes on each store, with the test clock: TOTP codes
//! at the clock's time (one step of skew, replays refused), the pending sign-in's lifetime and
//! single use under a race, step-up expiry, and the fail-closed answer without a key.

use std::sync::Arc;

use http::StatusCode;
use keystead::mfa::{MfaConfig, MfaKey};
use keystead::{AuthStore, Clock};
use serde_json::{Value, json};
use time::Duration;
use totp_rs::{Algorithm, Secret, TOTP};

use super::http_routes::{
    App, PASSWORD, Req, app, assert_problem, assert_status, json_of, session_token, set_cookies,
};

/// [`app`] with an MFA key.
fn mfa_app(store: &Arc<dyn AuthStore>) -> App {
    let mut app = app(store);
    let (key, _) = MfaKey::generate();
    app.auth = keystead::Auth::builder(
        store.clone(),
        keystead::web::AppOrigin::parse(super::http_routes::ORIGIN).expect("an origin"),
    )
    .clock(app.clock.clone())
    .mailer(Arc::new(app.mailer.clone()))
    .password_hashing(
        keystead::PasswordConfig::new()
            .argon2_params(8, 1, 1)
            .expect("valid argon2 params"),
    )
    .mfa(MfaConfig::new(key))
    .build();
    app
}

/// The code of the step `offset` steps from the app's clock.
fn code(secret: &str, app: &App, offset: i64) -> String {
    let bytes = Secret::Encoded(secret.to_owned())
        .to_bytes()
        .expect("a base32 secret");
    let generator = TOTP::new_unchecked(
        Algorithm::SHA1,
        6,
        0,
        30,
        bytes,
        None,
        "conformance".to_owned(),
    );
    let at = app.clock.now().unix_timestamp() + offset * 30;
    generator.generate(u64::try_from(at).expect("after 1970"))
}

/// Signs up `email`, enrols and confirms TOTP; returns the session token and the secret.
async fn enrolled(app: &App, email: &str) -> (String, String) {
    let (_, token) = app.sign_up(email).await;
    let begun = app
        .send(Req::post("/auth/mfa/totp").cookie(&token).empty())
        .await;
    let secret = json_of(&begun)["secret"]
        .as_str()
        .expect("a secret")
        .to_owned();
    let confirmed = app
        .send(
            Req::post("/auth/mfa/totp/confirm")
                .cookie(&token)
                .json(&json!({ "code": code(&secret, app, 0) })),
        )
        .await;
    assert_status(&confirmed, StatusCode::OK);
    (token, secret)
}

/// The pending sign-in cookie of a first factor that passed.
async fn pending(app: &App, email: &str) -> String {
    let response = app
        .send(Req::post("/auth/sign-in").json(&json!({ "email": email, "password": PASSWORD })))
        .await;
    assert_eq!(json_of(&response)["mfa_required"], true);
    set_cookies(&response)
        .iter()
        .find_map(|c| c.strip_prefix("authkit_mfa="))
        .and_then(|c| c.split(';').next())
        .map(str::to_owned)
        .expect("a pending sign-in cookie")
}

async fn verify(app: &App, pending: &str, body: &Value) -> http::Response<bytes::Bytes> {
    app.send(
        Req::post("/auth/mfa/verify")
            .header("cookie", format!("authkit_mfa={pending}"))
            .json(body),
    )
    .await
}

/// Codes are checked at the clock's time: the previous and the next step are accepted (one
/// step of skew), two steps away is not; once a step is used, it and older steps are refused.
pub async fn http_totp_codes_follow_the_clock_and_are_used_once(store: Arc<dyn AuthStore>) {
    let app = mfa_app(&store);
    let (_, secret) = enrolled(&app, "ada@example.com").await;
    app.clock.advance(Duration::minutes(3));
    let one = pending(&app, "ada@example.com").await;
    assert_problem(
        &verify(&app, &one, &json!({ "code": code(&secret, &app, 2) })).await,
        400,
        "invalid_code",
    );
    assert_problem(
        &verify(&app, &one, &json!({ "code": code(&secret, &app, -2) })).await,
        400,
        "invalid_code",
    );
    let done = verify(&app, &one, &json!({ "code": code(&secret, &app, -1) })).await;
    session_token(&done);
    // The step before the one used, and the used one: refused, on every instance alike (the
    // last used step is in the store).
    let two = pending(&app, "ada@example.com").await;
    for offset in [-1, -2] {
        assert_problem(
            &verify(&app, &two, &json!({ "code": code(&secret, &app, offset) })).await,
            400,
            "invalid_code",
        );
    }
    session_token(&verify(&app, &two, &json!({ "code": code(&secret, &app, 1) })).await);
}

/// The pending sign-in lives five minutes; of two concurrent completions with good codes,
/// exactly one gets a session.
pub async fn http_pending_sign_in_expires_and_completes_once(store: Arc<dyn AuthStore>) {
    let app = mfa_app(&store);
    let (_, secret) = enrolled(&app, "ada@example.com").await;
    let stale = pending(&app, "ada@example.com").await;
    app.clock
        .advance(Duration::minutes(5) + Duration::seconds(1));
    assert_problem(
        &verify(&app, &stale, &json!({ "code": code(&secret, &app, 0) })).await,
        401,
        "unauthenticated",
    );
    let raced = pending(&app, "ada@example.com").await;
    // Two different good codes (this step and the next), sent at once with one pending sign-in.
    let (now, next) = (
        json!({ "code": code(&secret, &app, 0) }),
        json!({ "code": code(&secret, &app, 1) }),
    );
    let (a, b) = tokio::join!(verify(&app, &raced, &now), verify(&app, &raced, &next));
    let won = [&a, &b]
        .iter()
        .filter(|r| r.status() == StatusCode::OK)
        .count();
    assert_eq!(won, 1, "exactly one completion: {a:?} {b:?}");
}

/// Step-up ages with the clock: ten minutes after sign-in the step-up routes answer 403
/// `reauthentication_required`; a re-authentication opens them again for ten minutes; a session
/// rotation (the password change) keeps the authentication time rather than renewing it.
pub async fn http_step_up_expires_with_the_clock(store: Arc<dyn AuthStore>) {
    let app = mfa_app(&store);
    let (_, token) = app.sign_up("ada@example.com").await;
    app.clock.advance(Duration::minutes(10));
    assert_status(
        &app.send(Req::post("/auth/mfa/totp").cookie(&token).empty())
            .await,
        StatusCode::OK,
    );
    app.clock.advance(Duration::seconds(1));
    assert_problem(
        &app.send(Req::post("/auth/mfa/totp").cookie(&token).empty())
            .await,
        403,
        "reauthentication_required",
    );
    let again = app
        .send(
            Req::post("/auth/reauthenticate")
                .cookie(&token)
                .json(&json!({ "password": PASSWORD })),
        )
        .await;
    let at = super::http_routes::time_of(&json_of(&again)["authenticated_at"]);
    assert_eq!(at.unix_timestamp(), app.clock.now().unix_timestamp());
    app.clock.advance(Duration::minutes(9));
    let changed = app
        .send(
            Req::post("/auth/change-password")
                .cookie(&token)
                .json(&json!({
                    "current_password": PASSWORD,
                    "new_password": "another long passphrase, 3 times",
                })),
        )
        .await;
    let rotated = session_token(&changed);
    let session = json_of(
        &app.send(Req::get("/auth/session").cookie(&rotated).empty())
            .await,
    );
    let kept = super::http_routes::time_of(&session["session"]["authenticated_at"]);
    assert_eq!(kept.unix_timestamp(), at.unix_timestamp(), "{session}");
    app.clock.advance(Duration::minutes(2));
    assert_problem(
        &app.send(Req::post("/auth/mfa/totp").cookie(&rotated).empty())
            .await,
        403,
        "reauthentication_required",
    );
}

/// Without an MFA key the library refuses TOTP (503 `unavailable`) instead of storing a secret
/// it could not seal; sign-in and step-up work as before.
pub async fn http_totp_without_a_key_is_503(store: Arc<dyn AuthStore>) {
    let app = app(&store);
    let (_, token) = app.sign_up("ada@example.com").await;
    assert_problem(
        &app.send(Req::post("/auth/mfa/totp").cookie(&token).empty())
            .await,
        503,
        "unavailable",
    );
    let status = json_of(&app.send(Req::get("/auth/mfa").cookie(&token).empty()).await);
    assert_eq!(status["totp"], false, "{status}");
}
