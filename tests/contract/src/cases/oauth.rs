//! Sign-in with a provider, against a real OpenID provider (panva's `oidc-provider`, see
//! `tests/oidc-provider/server.mjs`) whose login form each case fills in. Each case starts a
//! second instance of the app with the `google` and `oidc` providers configured at it.

use serde_json::json;

use crate::flows::{self, PASSWORD};
use crate::provider::{self, Browser, TestProvider, query_param, with_query_param};
use crate::{AppUnderTest, Reply};

/// Asserts a redirect (302) to exactly `location`.
#[track_caller]
fn assert_redirect(reply: &Reply, location: &str) {
    assert_eq!(reply.status, 302, "a redirect to {location}: {reply}");
    assert_eq!(reply.header("location"), Some(location), "{reply}");
}

/// Asserts that no account has `email`: a sign-up with it succeeds (201), so nothing was
/// created for it.
async fn assert_no_account(app: &AppUnderTest, email: &str) {
    let reply = app
        .client()
        .post_json(
            "/auth/sign-up",
            &json!({"email": email, "password": PASSWORD}),
        )
        .await;
    assert_eq!(
        reply.status, 201,
        "no account was made for {email}: {reply}"
    );
}

/// The full flow: the sign-in page offers the provider; the start redirects to the provider's
/// authorization endpoint with our client, the redirect URI on `APP_ORIGIN`, `state`, `nonce`
/// and an S256 PKCE challenge (each ≥ 128 bits), and binds the flow to the browser with a
/// short-lived `HttpOnly; SameSite=Lax` cookie; after the provider's login form, the callback
/// signs the new user in with a fresh session (302 to `next`), verified as the provider says.
/// Signing in again finds the same user with a new session; replaying a used callback is 400.
pub async fn oauth_sign_in_with_a_provider_creates_the_user_and_a_new_session(app: &AppUnderTest) {
    let html = app.client().get("/sign-in").send().await.expect(200).text();
    assert!(
        !html.contains("Continue with"),
        "no provider configured: {html}"
    );
    let sibling = provider::app_with_providers(app, &[]).await;
    let app = &sibling;
    let issuer = TestProvider::shared().issuer();
    for page in ["/sign-in", "/sign-up"] {
        let html = app.client().get(page).send().await.expect(200).text();
        assert!(html.contains("Continue with Google"), "{page}: {html}");
        assert!(
            html.contains(r#"href="/auth/oauth/google""#),
            "{page}: {html}"
        );
    }

    let browser = Browser::new();
    let started = browser
        .start(app, "google", Some("/dashboard/tokens"))
        .await;
    assert_eq!(started.status, 302, "{started}");
    let url = started.header("location").expect("a Location").to_owned();
    assert!(url.starts_with(&format!("{issuer}/auth?")), "{url}");
    assert_eq!(query_param(&url, "client_id"), Some(provider::CLIENT_ID));
    assert_eq!(query_param(&url, "response_type"), Some("code"));
    assert_eq!(query_param(&url, "code_challenge_method"), Some("S256"));
    let redirect_uri = provider::urlencode(&format!("{}/auth/oauth/google/callback", app.origin()));
    assert_eq!(
        query_param(&url, "redirect_uri"),
        Some(redirect_uri.as_str())
    );
    for name in ["state", "nonce", "code_challenge"] {
        let value = query_param(&url, name).unwrap_or_default();
        assert!(value.len() >= 22, "{name} has at least 128 bits: {url}");
    }
    let flow_cookie = started
        .set_cookies()
        .into_iter()
        .find(|c| c.name() == "authkit_oauth")
        .unwrap_or_else(|| panic!("a flow cookie: {started}"));
    assert_eq!(flow_cookie.http_only(), Some(true), "{flow_cookie}");
    assert_eq!(
        flow_cookie.same_site(),
        Some(cookie::SameSite::Lax),
        "{flow_cookie}"
    );
    assert!(
        flow_cookie
            .max_age()
            .is_some_and(|a| a.is_positive() && a.whole_seconds() <= 600),
        "lives at most 10 minutes: {flow_cookie}"
    );

    let callback = browser.log_in_at_provider(&url, "grace@example.com").await;
    assert!(
        callback.starts_with(&format!("{}/auth/oauth/google/callback?", app.origin())),
        "{callback}"
    );
    let done = browser.get(&callback).await;
    assert_redirect(&done, "/dashboard/tokens");
    let first = done.session_cookie();
    let session = flows::session(app, &first).await;
    assert_eq!(session["user"]["email"], "grace@example.com", "{session}");
    assert_eq!(session["user"]["email_verified"], true, "{session}");
    let user_id = session["user"]["id"].clone();

    // The used callback is no live flow any more.
    browser.get(&callback).await.problem(400, "invalid_link");

    // The same identity again, in another browser: the same user, a new session.
    let again = Browser::new()
        .sign_in_with(app, "google", "grace@example.com", None)
        .await;
    assert_redirect(&again, "/dashboard");
    let second = flows::session(app, &again.session_cookie()).await;
    assert_eq!(second["user"]["id"], user_id, "{second}");
    assert_ne!(second["session"]["id"], session["session"]["id"]);

    // A user who signed up through a provider has no password to change.
    app.client()
        .post("/auth/change-password")
        .app_origin()
        .cookie(&first)
        .json(&json!({"current_password": "anything at all", "new_password": "a new passphrase here"}))
        .send()
        .await
        .problem(400, "invalid_request");
    sibling.finish().await;
}

/// The callback only works in the browser that started the flow: the callback URL (code and
/// state) replayed in another browser is 400 `invalid_link`, with or without a flow of its own,
/// and signs no one in; the browser that started it still finishes.
pub async fn oauth_callback_in_another_browser_is_400_and_signs_no_one_in(app: &AppUnderTest) {
    let sibling = provider::app_with_providers(app, &[]).await;
    let app = &sibling;
    let alice = Browser::new();
    let started = alice.start(app, "google", None).await;
    let callback = alice
        .log_in_at_provider(
            started.header("location").expect("a Location"),
            "alice@example.com",
        )
        .await;

    let stranger = Browser::new();
    let reply = stranger.get(&callback).await;
    reply.problem(400, "invalid_link");
    assert!(reply.session_set_cookie().is_none(), "{reply}");

    // A browser with a live flow of its own: the state is not its flow's.
    let other = Browser::new();
    let own = other.start(app, "google", None).await;
    assert_eq!(own.status, 302, "{own}");
    other.get(&callback).await.problem(400, "invalid_link");

    let done = alice.get(&callback).await;
    assert_redirect(&done, "/dashboard");
    let session = flows::session(app, &done.session_cookie()).await;
    assert_eq!(session["user"]["email"], "alice@example.com");
    sibling.finish().await;
}

/// An authorization code is redeemed once: its callback replayed into a new flow of the same
/// browser (new state, new cookie) fails at the provider and ends at
/// `/sign-in?error=oauth_failed`, without a session.
pub async fn oauth_replayed_code_fails_and_creates_no_session(app: &AppUnderTest) {
    let sibling = provider::app_with_providers(app, &[]).await;
    let app = &sibling;
    let browser = Browser::new();
    let started = browser.start(app, "google", None).await;
    let callback = browser
        .log_in_at_provider(
            started.header("location").expect("a Location"),
            "code@example.com",
        )
        .await;
    assert_redirect(&browser.get(&callback).await, "/dashboard");

    let attacker = Browser::new();
    let fresh = attacker.start(app, "google", None).await;
    let state = query_param(fresh.header("location").expect("a Location"), "state")
        .expect("a state")
        .to_owned();
    let replay = with_query_param(&callback, "state", &state);
    let reply = attacker.get(&replay).await;
    assert_redirect(&reply, "/sign-in?error=oauth_failed");
    assert!(reply.session_set_cookie().is_none(), "{reply}");
    sibling.finish().await;
}

/// Asserts that the app logged `reason` for a failed sign-in: the flow failed for the reason
/// the case set up, not another.
async fn assert_failed_because(app: &AppUnderTest, reason: &str) {
    let (output, found) = app
        .wait_for_output_line(|l| {
            l.contains("sign-in with a provider failed") && l.contains(reason)
        })
        .await;
    assert!(
        found,
        "the app logged a failed sign-in because of {reason:?}; its output:\n{output}"
    );
}

/// ID tokens that do not verify end the flow at `/sign-in?error=oauth_failed` and create
/// nothing: a nonce other than the flow's (the authorization URL's `nonce` changed before
/// following it), an `aud` that is another client's, an `iss` that is not the provider's (both
/// signed with the provider's real key) and a signature by a key the provider never published
/// (under its real key's `kid`), see `server.mjs`. A configured issuer that differs from the
/// discovered one (`localhost` for `127.0.0.1`) refuses to start.
pub async fn oauth_wrong_nonce_audience_issuer_or_signature_fails_and_creates_nothing(
    app: &AppUnderTest,
) {
    let issuer = TestProvider::shared().issuer().to_owned();
    let wrong_issuer = issuer.replace("127.0.0.1", "localhost");
    let sibling =
        provider::app_with_providers(app, &[("OIDC_ISSUER", wrong_issuer.as_str())]).await;
    let app = &sibling;

    let browser = Browser::new();
    let started = browser.start(app, "google", None).await;
    let url = started.header("location").expect("a Location");
    let tampered = with_query_param(url, "nonce", "an-attackers-nonce-0123456789abcdef");
    let callback = browser
        .log_in_at_provider(&tampered, "nonce@example.com")
        .await;
    assert_redirect(&browser.get(&callback).await, "/sign-in?error=oauth_failed");
    assert_failed_because(app, "Invalid nonce").await;

    for (login, reason) in [
        ("wrong-aud:aud@example.com", "Invalid audiences"),
        ("wrong-iss:iss@example.com", "Invalid issuer"),
        ("forged:forged@example.com", "Signature verification failed"),
    ] {
        let reply = Browser::new()
            .sign_in_with(app, "google", login, None)
            .await;
        assert_redirect(&reply, "/sign-in?error=oauth_failed");
        assert!(reply.session_set_cookie().is_none(), "{login}: {reply}");
        assert_failed_because(app, reason).await;
    }

    let reply = Browser::new().start(app, "oidc", None).await;
    assert_redirect(&reply, "/sign-in?error=oauth_failed");
    let (output, found) = app
        .wait_for_output_line(|l| l.contains("unexpected issuer URI"))
        .await;
    assert!(found, "discovery refused the issuer: {output}");

    for email in [
        "nonce@example.com",
        "aud@example.com",
        "iss@example.com",
        "forged@example.com",
    ] {
        assert_no_account(app, email).await;
    }
    sibling.finish().await;
}

/// When the provider rotates its signing keys, a token signed with the new key verifies: the
/// app fetches the provider's keys again for the unknown `kid` (it had cached the old set).
pub async fn oauth_provider_key_rotation_is_followed(app: &AppUnderTest) {
    let sibling = provider::app_with_providers(app, &[]).await;
    let app = &sibling;
    // The first sign-in caches discovery and the keys.
    let first = Browser::new()
        .sign_in_with(app, "google", "before@example.com", None)
        .await;
    assert_redirect(&first, "/dashboard");
    let rotated = Browser::new()
        .sign_in_with(app, "google", "rotated:after@example.com", None)
        .await;
    assert_redirect(&rotated, "/dashboard");
    let session = flows::session(app, &rotated.session_cookie()).await;
    assert_eq!(session["user"]["email"], "after@example.com", "{session}");
    sibling.finish().await;
}

/// `next` is kept through the flow when it is a local path, and refused (400
/// `invalid_request`) at the start otherwise: `//host`, `/\host`, schemes, encoded and CR/LF
/// variants.
pub async fn oauth_next_outside_the_site_is_refused_at_the_start(app: &AppUnderTest) {
    let sibling = provider::app_with_providers(app, &[]).await;
    let app = &sibling;
    let browser = Browser::new();
    for next in [
        "//evil.example/x",
        "/\\evil.example",
        "https://evil.example/",
        "javascript:alert(1)",
        "evil.example",
        "/a\r\nLocation: https://evil.example",
    ] {
        let reply = browser.start(app, "google", Some(next)).await;
        reply.problem(400, "invalid_request");
        assert!(reply.header("location").is_none(), "{next:?}: {reply}");
    }
    // Sent as they are, not encoded by us.
    for raw in [
        "//evil.example",
        "%2F%2Fevil.example",
        "/%5Cevil.example",
        "https:evil.example",
    ] {
        let reply = browser
            .get(&format!("{}/auth/oauth/google?next={raw}", app.base_url()))
            .await;
        reply.problem(400, "invalid_request");
    }

    let done = Browser::new()
        .sign_in_with(
            app,
            "google",
            "next@example.com",
            Some("/dashboard/members?tab=2&q=é"),
        )
        .await;
    assert_redirect(&done, "/dashboard/members?tab=2&q=%C3%A9");
    sibling.finish().await;
}

/// A provider identity with a verified email links to the user with that email. When that
/// user never verified the address (someone may have registered it first), their password,
/// sessions, API tokens and mailed reset links end; a verified user keeps theirs.
pub async fn oauth_verified_email_links_and_ends_an_unverified_pre_registration(
    app: &AppUnderTest,
) {
    let sibling = provider::app_with_providers(app, &[]).await;
    let app = &sibling;
    // Someone registered the victim's address first and never verified it, made an API token
    // and asked for a reset link.
    let squatter = flows::sign_up(app, "victim@example.com").await;
    flows::create_org(app, &squatter.cookie, "Squat").await;
    let created = app
        .client()
        .post_json_with(
            "/api/tokens",
            &json!({"name": "backdoor", "scopes": ["read:projects"]}),
            &squatter.cookie,
        )
        .await
        .json_with(201);
    let token = created["token"].as_str().expect("a token").to_owned();
    app.client()
        .get("/api/projects")
        .bearer(&token)
        .send()
        .await
        .expect(200);
    app.client()
        .post_json(
            "/auth/password-reset",
            &json!({"email": "victim@example.com"}),
        )
        .await
        .expect(202);
    let reset = flows::reset_mail(app, "victim@example.com").await;

    let done = Browser::new()
        .sign_in_with(app, "google", "victim@example.com", None)
        .await;
    assert_redirect(&done, "/dashboard");
    let session = flows::session(app, &done.session_cookie()).await;
    assert_eq!(
        session["user"]["id"],
        squatter.id(),
        "linked, not a new user"
    );
    assert_eq!(session["user"]["email_verified"], true, "{session}");
    flows::assert_session_dead(app, &squatter.cookie).await;
    flows::try_sign_in(app, "victim@example.com", PASSWORD)
        .await
        .problem(401, "invalid_credentials");
    app.client()
        .get("/api/projects")
        .bearer(&token)
        .send()
        .await
        .unauthenticated("token_revoked");
    app.client()
        .post_json(
            "/auth/password-reset/confirm",
            &json!({"token": reset.token(), "password": "the squatter's new password"}),
        )
        .await
        .problem(400, "invalid_link");

    // A verified user: linked, and their password and session stay.
    let owner = flows::sign_up(app, "owner@example.com").await;
    flows::verify_email(app, &owner).await;
    let done = Browser::new()
        .sign_in_with(app, "google", "owner@example.com", None)
        .await;
    let session = flows::session(app, &done.session_cookie()).await;
    assert_eq!(session["user"]["id"], owner.id(), "{session}");
    flows::session(app, &owner.cookie).await;
    flows::sign_in(app, "owner@example.com", PASSWORD).await;
    sibling.finish().await;
}

/// A provider identity whose email is not verified by the provider never takes over an
/// existing account: `/sign-in?error=account_exists` (the page says so), nothing is linked,
/// and the owner's password and session keep working. Denied consent is `oauth_denied`.
pub async fn oauth_unverified_email_of_an_existing_user_is_refused(app: &AppUnderTest) {
    let sibling = provider::app_with_providers(app, &[]).await;
    let app = &sibling;
    let owner = flows::sign_up(app, "taken@example.com").await;
    let reply = Browser::new()
        .sign_in_with(app, "google", "unverified:taken@example.com", None)
        .await;
    assert_redirect(&reply, "/sign-in?error=account_exists");
    assert!(reply.session_set_cookie().is_none(), "{reply}");
    let html = app
        .client()
        .get("/sign-in?error=account_exists")
        .send()
        .await
        .expect(200)
        .text();
    assert!(html.contains("An account with this email exists"), "{html}");
    flows::session(app, &owner.cookie).await;
    let (_, cookie) = flows::sign_in(app, "taken@example.com", PASSWORD).await;
    let accounts = app
        .client()
        .get_with("/auth/accounts", &cookie)
        .await
        .json_with(200);
    assert_eq!(
        accounts["accounts"],
        json!([]),
        "nothing linked: {accounts}"
    );

    // Cancel at the provider.
    let browser = Browser::new();
    let started = browser.start(app, "google", None).await;
    let back = browser
        .cancel_at_provider(started.header("location").expect("a Location"))
        .await;
    assert_redirect(&browser.get(&back).await, "/sign-in?error=oauth_denied");
    sibling.finish().await;
}

/// A signed-in user links a second provider (`POST /auth/oauth/{provider}/link`), sees both in
/// `GET /auth/accounts`, and unlinks one; the last way to sign in cannot be unlinked (409
/// `last_sign_in_method`). An identity linked to another user is not linked again.
pub async fn oauth_providers_are_linked_listed_and_unlinked_but_not_the_last(app: &AppUnderTest) {
    let sibling = provider::app_with_providers(app, &[]).await;
    let app = &sibling;
    let browser = Browser::new();
    let done = browser
        .sign_in_with(app, "google", "linker@example.com", None)
        .await;
    assert_redirect(&done, "/dashboard");
    let cookie = browser.session(app);
    let dashboard = app
        .client()
        .get_with("/dashboard", &cookie)
        .await
        .expect(200)
        .text();
    assert!(
        dashboard.contains(r#"action="/auth/oauth/oidc/link""#)
            && dashboard.contains(r#"data-endpoint="/auth/accounts/google""#),
        "the dashboard offers to link oidc and to unlink google: {dashboard}"
    );
    app.client()
        .delete_with("/auth/accounts/google", &cookie)
        .await
        .problem(409, "last_sign_in_method");

    let started = browser
        .post(&format!("{}/auth/oauth/oidc/link", app.base_url()))
        .await;
    assert_eq!(started.status, 303, "{started}");
    let callback = browser
        .log_in_at_provider(
            started.header("location").expect("a Location"),
            "other:linker@example.com",
        )
        .await;
    assert_redirect(&browser.get(&callback).await, "/dashboard");
    let accounts = app
        .client()
        .get_with("/auth/accounts", &cookie)
        .await
        .json_with(200);
    let providers: Vec<&str> = accounts["accounts"]
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|a| a["provider"].as_str())
        .collect();
    assert_eq!(providers, ["google", "oidc"], "{accounts}");
    assert_eq!(accounts["has_password"], false, "{accounts}");

    app.client()
        .delete_with("/auth/accounts/google", &cookie)
        .await
        .expect(204);
    app.client()
        .delete_with("/auth/accounts/oidc", &cookie)
        .await
        .problem(409, "last_sign_in_method");
    app.client()
        .delete_with("/auth/accounts/google", &cookie)
        .await
        .problem(404, "not_found");

    // Another user cannot link the identity that is linker's.
    let other = flows::sign_up(app, "someone@example.com").await;
    flows::verify_email(app, &other).await;
    let theirs = Browser::new();
    theirs.set_cookie(app.base_url(), &other.cookie.name, &other.cookie.value);
    let reply = theirs
        .post(&format!("{}/auth/oauth/oidc/link", app.base_url()))
        .await;
    assert_eq!(reply.status, 303, "{reply}");
    let callback = theirs
        .log_in_at_provider(
            reply.header("location").expect("a Location"),
            "other:linker@example.com",
        )
        .await;
    assert_redirect(
        &theirs.get(&callback).await,
        "/sign-in?error=account_exists",
    );
    sibling.finish().await;
}

/// ID tokens with time claims far from now end the flow at `/sign-in?error=oauth_failed` and
/// create nothing, though signed with the provider's real key for our client and nonce: issued
/// a day ago (`iat`, with `exp` still ahead), issued an hour from now, or not valid before an
/// hour from now (`nbf`), see `server.mjs`. The bounds (5 minutes of clock skew, 10 minutes of
/// age) are `OidcConfig`'s.
pub async fn oauth_id_tokens_with_time_claims_far_from_now_are_refused(app: &AppUnderTest) {
    let sibling = provider::app_with_providers(app, &[]).await;
    let app = &sibling;
    for (login, reason) in [
        ("old-iat:old@example.com", "issued too long ago"),
        ("future-iat:future@example.com", "issued in the future"),
        ("future-nbf:nbf@example.com", "not valid yet"),
    ] {
        let reply = Browser::new()
            .sign_in_with(app, "google", login, None)
            .await;
        assert_redirect(&reply, "/sign-in?error=oauth_failed");
        assert!(reply.session_set_cookie().is_none(), "{login}: {reply}");
        assert_failed_because(app, reason).await;
    }
    for email in ["old@example.com", "future@example.com", "nbf@example.com"] {
        assert_no_account(app, email).await;
    }
    // The same provider, with today's times, signs in.
    let done = Browser::new()
        .sign_in_with(app, "google", "now@example.com", None)
        .await;
    assert_redirect(&done, "/dashboard");
    sibling.finish().await;
}

/// Takeover through a linked identity. A squatter registers the victim's address (never
/// verifying it) and tries to link their own identity at the `oidc` provider: linking needs a
/// verified email, so that is 403 `email_not_verified` and links nothing. The victim then
/// claims the address with a verified Google identity; afterwards the squatter's identity does
/// not sign in to the account (if a link had been made, it ends with the claim too).
pub async fn oauth_a_squatters_linked_identity_does_not_survive_the_owners_claim(
    app: &AppUnderTest,
) {
    let sibling = provider::app_with_providers(app, &[]).await;
    let app = &sibling;
    let squatter = flows::sign_up(app, "victim@example.com").await;
    let browser = Browser::new();
    browser.set_cookie(
        app.base_url(),
        &squatter.cookie.name,
        &squatter.cookie.value,
    );
    let link = browser
        .post(&format!("{}/auth/oauth/oidc/link", app.base_url()))
        .await;
    if link.status == 303 {
        // The attack as it went before linking needed a verified email: through the provider
        // and back, the squatter's identity is linked to the account.
        let callback = browser
            .log_in_at_provider(
                link.header("location").expect("a Location"),
                "squatter@evil.example",
            )
            .await;
        assert_redirect(&browser.get(&callback).await, "/dashboard");
    }

    let claimed = Browser::new()
        .sign_in_with(app, "google", "victim@example.com", None)
        .await;
    assert_redirect(&claimed, "/dashboard");
    let victim = flows::session(app, &claimed.session_cookie()).await;
    assert_eq!(victim["user"]["id"], squatter.id(), "the claimed account");

    let again = Browser::new()
        .sign_in_with(app, "oidc", "squatter@evil.example", None)
        .await;
    if let Some(cookie) = again.session_set_cookie() {
        let session = flows::session(
            app,
            &crate::SessionCookie {
                name: cookie.name().to_owned(),
                value: cookie.value().to_owned(),
            },
        )
        .await;
        assert_ne!(
            session["user"]["id"],
            squatter.id(),
            "the squatter's identity signs in to the claimed account: {session}"
        );
    }
    let accounts = app
        .client()
        .get_with("/auth/accounts", &claimed.session_cookie())
        .await
        .json_with(200);
    let providers: Vec<&str> = accounts["accounts"]
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|a| a["provider"].as_str())
        .collect();
    assert_eq!(
        providers,
        ["google"],
        "only the owner's identity: {accounts}"
    );
    link.problem(403, "email_not_verified");
    sibling.finish().await;
}

/// Linking by email is a setting of each provider. The generic `oidc` provider does not link
/// by default (`OIDC_EMAIL_LINKING` unset, or `never`): a verified provider email of an
/// existing account is `/sign-in?error=link_required` (the page says to sign in and link),
/// creates no duplicate account and links nothing. With `OIDC_EMAIL_LINKING=verified` the same
/// sign-in links to the account. (The Google preset links by verified email: see
/// `oauth_verified_email_links_and_ends_an_unverified_pre_registration`.)
pub async fn oauth_generic_provider_links_by_email_only_when_configured(app: &AppUnderTest) {
    let original = app;
    let sibling = provider::app_with_providers(original, &[]).await;
    let app = &sibling;
    let owner = flows::sign_up(app, "owner@example.com").await;
    flows::verify_email(app, &owner).await;
    let reply = Browser::new()
        .sign_in_with(app, "oidc", "owner@example.com", None)
        .await;
    assert_redirect(&reply, "/sign-in?error=link_required");
    assert!(reply.session_set_cookie().is_none(), "{reply}");
    let html = app
        .client()
        .get("/sign-in?error=link_required")
        .send()
        .await
        .expect(200)
        .text();
    assert!(
        html.contains("sign in to it first, then link the provider"),
        "the page says to sign in and link: {html}"
    );
    let accounts = app
        .client()
        .get_with("/auth/accounts", &owner.cookie)
        .await
        .json_with(200);
    assert_eq!(
        accounts["accounts"],
        json!([]),
        "nothing linked: {accounts}"
    );
    flows::sign_in(app, "owner@example.com", PASSWORD).await;
    sibling.finish().await;

    let sibling =
        provider::app_with_providers(original, &[("OIDC_EMAIL_LINKING", "verified")]).await;
    let app = &sibling;
    let owner = flows::sign_up(app, "owner@example.com").await;
    flows::verify_email(app, &owner).await;
    let reply = Browser::new()
        .sign_in_with(app, "oidc", "owner@example.com", None)
        .await;
    assert_redirect(&reply, "/dashboard");
    let session = flows::session(app, &reply.session_cookie()).await;
    assert_eq!(session["user"]["id"], owner.id(), "linked: {session}");
    sibling.finish().await;
}
