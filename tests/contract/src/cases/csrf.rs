//! Cross-site request forgery: the origin checks on state-changing requests and on sign-in.

use serde_json::json;

use crate::flows::{self, PASSWORD};
use crate::{AppUnderTest, Request};

/// Sends `request` (a sign-out carrying the session cookie) and asserts 403 `csrf_rejected`.
async fn assert_rejected(request: Request) {
    request.send().await.problem(403, "csrf_rejected");
}

/// A cookie-carrying POST whose `Origin` is not the app's exactly — a foreign site, another
/// scheme, a longer host — answers 403 `csrf_rejected`, and the session lives on.
pub async fn csrf_rejects_a_foreign_origin_and_the_session_survives(app: &AppUnderTest) {
    let account = flows::sign_up(app, "ada@example.com").await;
    let origin = app.origin();
    let other_scheme = origin.replacen("http://", "https://", 1);
    let longer_host = format!(
        "http://{}.evil.example:{}",
        app.addr().ip(),
        app.addr().port()
    );
    let suffixed = format!("{origin}.evil.example");
    for foreign in [
        "https://evil.example",
        &other_scheme,
        &longer_host,
        &suffixed,
    ] {
        let request = app
            .client()
            .post("/auth/sign-out")
            .header("origin", foreign)
            .cookie(&account.cookie);
        assert_rejected(request).await;
    }
    flows::session(app, &account.cookie).await;
}

/// `Origin: null` (a sandboxed or privacy-redirected request) is rejected with 403
/// `csrf_rejected`.
pub async fn csrf_rejects_a_null_origin(app: &AppUnderTest) {
    let account = flows::sign_up(app, "ada@example.com").await;
    let request = app
        .client()
        .post("/auth/sign-out")
        .header("origin", "null")
        .cookie(&account.cookie);
    assert_rejected(request).await;
    flows::session(app, &account.cookie).await;
}

/// A request that carries the session cookie but no `Origin`, no `Referer` and no
/// `Sec-Fetch-Site: same-origin` is rejected with 403 `csrf_rejected`; so is one whose only
/// signal is a foreign `Referer` or `Sec-Fetch-Site: cross-site`.
pub async fn csrf_rejects_a_cookie_without_origin_or_referer(app: &AppUnderTest) {
    let account = flows::sign_up(app, "ada@example.com").await;
    let client = app.client();
    assert_rejected(client.post("/auth/sign-out").cookie(&account.cookie)).await;
    assert_rejected(
        client
            .post("/auth/sign-out")
            .header("referer", "https://evil.example/page")
            .cookie(&account.cookie),
    )
    .await;
    assert_rejected(
        client
            .post("/auth/sign-out")
            .header("sec-fetch-site", "cross-site")
            .cookie(&account.cookie),
    )
    .await;
    flows::session(app, &account.cookie).await;
}

/// Without `Origin`, a `Referer` on the app's origin passes the check.
pub async fn csrf_accepts_a_referer_on_the_app_origin(app: &AppUnderTest) {
    let account = flows::sign_up(app, "ada@example.com").await;
    app.client()
        .post("/auth/sign-out")
        .header("referer", &format!("{}/dashboard", app.origin()))
        .cookie(&account.cookie)
        .send()
        .await
        .expect(204);
    flows::assert_session_dead(app, &account.cookie).await;
}

/// Without `Origin` and `Referer`, `Sec-Fetch-Site: same-origin` passes the check.
pub async fn csrf_accepts_sec_fetch_site_same_origin(app: &AppUnderTest) {
    let account = flows::sign_up(app, "ada@example.com").await;
    app.client()
        .post("/auth/sign-out")
        .header("sec-fetch-site", "same-origin")
        .cookie(&account.cookie)
        .send()
        .await
        .expect(204);
    flows::assert_session_dead(app, &account.cookie).await;
}

/// Sign-in and sign-up from a foreign `Origin` are rejected with 403 `csrf_rejected` (login
/// CSRF), set no cookie and create nothing.
pub async fn sign_in_from_a_foreign_origin_is_rejected(app: &AppUnderTest) {
    flows::sign_up(app, "ada@example.com").await;
    let reply = app
        .client()
        .post("/auth/sign-in")
        .header("origin", "https://evil.example")
        .json(&json!({"email": "ada@example.com", "password": PASSWORD}))
        .send()
        .await;
    reply.problem(403, "csrf_rejected");
    assert!(reply.session_set_cookie().is_none(), "no session: {reply}");

    let reply = app
        .client()
        .post("/auth/sign-up")
        .header("origin", "https://evil.example")
        .json(&json!({"email": "grace@example.com", "password": PASSWORD}))
        .send()
        .await;
    reply.problem(403, "csrf_rejected");
    assert!(reply.session_set_cookie().is_none(), "no session: {reply}");
    flows::try_sign_in(app, "grace@example.com", PASSWORD)
        .await
        .problem(401, "invalid_credentials");
}

/// A non-browser client — no `Origin`, no `Referer`, no cookie — may sign up and sign in.
pub async fn sign_in_without_origin_referer_or_cookie_is_accepted(app: &AppUnderTest) {
    let body = json!({"email": "ada@example.com", "password": PASSWORD});
    let reply = app
        .client()
        .post("/auth/sign-up")
        .json(&body)
        .send()
        .await
        .expect(201);
    let signed_up = reply.session_cookie();
    let reply = app
        .client()
        .post("/auth/sign-in")
        .json(&body)
        .send()
        .await
        .expect(200);
    let signed_in = reply.session_cookie();
    assert_ne!(signed_up.value, signed_in.value);
    flows::session(app, &signed_in).await;
}
