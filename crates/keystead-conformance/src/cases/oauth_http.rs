//! Sign-in with a provider over [`Auth::handle`] on each real store, with the clock in hand:
//! what the contract suite (which drives a real OpenID provider) cannot reach, such as the
//! ten-minute expiry of a flow and the audit trail. The provider here is a scripted
//! [`IdentityProvider`]: the trait's contract is what the core relies on, and `keystead-oidc`'s own
//! tests check a real provider keeps it.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use http::{Response, StatusCode, header};
use keystead::oauth::{
    AuthorizationParams, EmailLinking, IdentityProvider, ProviderError, ProviderIdentity,
};
use keystead::web::AppOrigin;
use keystead::{
    AuthStore, Clock, ExternalAccount, ExternalAccountId, ManualClock, PasswordConfig, RateLimit,
    RateLimitConfig, UserId,
};
use time::Duration;

use super::http_routes::{App, ORIGIN, Req, assert_problem};

/// The issuer of the scripted provider.
const ISSUER: &str = "https://idp.test";

/// Answers the authorization URL with the parameters it was given, and redeems the code
/// `good` (once) for `identity` if the verifier and nonce are those of the flow.
#[derive(Debug, Default)]
struct Scripted {
    identity: Mutex<Option<ProviderIdentity>>,
    /// (verifier, nonce) of the last authorization URL.
    last: Mutex<Option<(String, String)>>,
    /// What the provider says about linking by email (the trait's default when `None`).
    linking: Option<EmailLinking>,
}

impl Scripted {
    /// A provider that links a verified email to the existing account with that address.
    fn linking_by_email() -> Self {
        Self {
            linking: Some(EmailLinking::VerifiedEmail),
            ..Self::default()
        }
    }
}

#[async_trait]
impl IdentityProvider for Scripted {
    fn id(&self) -> &str {
        "idp"
    }

    fn display_name(&self) -> &str {
        "IdP"
    }

    fn email_linking(&self) -> EmailLinking {
        self.linking.unwrap_or_default()
    }

    async fn authorization_url(
        &self,
        params: &AuthorizationParams<'_>,
    ) -> Result<String, ProviderError> {
        *self.last.lock().expect("lock") =
            Some((params.pkce_verifier.to_owned(), params.nonce.to_owned()));
        Ok(format!("{ISSUER}/authorize?state={}", params.state))
    }

    async fn exchange_code(
        &self,
        code: &str,
        params: &AuthorizationParams<'_>,
    ) -> Result<ProviderIdentity, ProviderError> {
        let last = self.last.lock().expect("lock").clone();
        if code != "good"
            || last != Some((params.pkce_verifier.to_owned(), params.nonce.to_owned()))
        {
            return Err(ProviderError::Refused("invalid_grant".to_owned()));
        }
        self.identity
            .lock()
            .expect("lock")
            .take()
            .ok_or_else(|| ProviderError::Refused("invalid_grant".to_owned()))
    }
}

fn app_with(store: &Arc<dyn AuthStore>, provider: Arc<Scripted>) -> App {
    app_with_limits(store, provider, RateLimitConfig::default())
}

fn app_with_limits(
    store: &Arc<dyn AuthStore>,
    provider: Arc<Scripted>,
    limits: RateLimitConfig,
) -> App {
    let clock = Arc::new(ManualClock::starting_now());
    let mailer = keystead::mail::MemoryMailer::default();
    let auth = keystead::Auth::builder(
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
    .identity_provider(provider)
    .rate_limits(limits)
    .build();
    App {
        store: store.clone(),
        clock,
        mailer,
        auth,
    }
}

fn identity(email: &str, verified: bool) -> ProviderIdentity {
    ProviderIdentity {
        issuer: ISSUER.to_owned(),
        subject: format!("sub-{email}"),
        email: Some(email.to_owned()),
        email_verified: verified,
        name: None,
    }
}

fn location(response: &Response<Bytes>) -> &str {
    response
        .headers()
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

/// The value of the `Set-Cookie` named `name`, if the response sets it.
fn cookie_value(response: &Response<Bytes>, name: &str) -> Option<String> {
    response
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| {
            v.split(';')
                .next()
                .and_then(|pair| pair.split_once('='))
                .filter(|(n, _)| *n == name)
                .map(|(_, value)| value.to_owned())
        })
}

/// Starts a flow (with the session `session`, if any, for a link flow); returns the flow
/// cookie and the state.
async fn start(app: &App, session: Option<&str>) -> (String, String) {
    let response = match session {
        Some(token) => {
            app.send(Req::post("/auth/oauth/idp/link").cookie(token).empty())
                .await
        }
        None => app.send(Req::get("/auth/oauth/idp").empty()).await,
    };
    assert!(
        response.status().is_redirection(),
        "{:?}",
        response.status()
    );
    let state = location(&response)
        .split_once("state=")
        .expect("a state")
        .1
        .to_owned();
    let flow = cookie_value(&response, "authkit_oauth").expect("a flow cookie");
    (flow, state)
}

async fn callback(app: &App, flow: &str, state: &str, session: Option<&str>) -> Response<Bytes> {
    let mut cookies = format!("authkit_oauth={flow}");
    if let Some(token) = session {
        cookies.push_str(&format!("; authkit_session={token}"));
    }
    app.send(
        Req::get(&format!("/auth/oauth/idp/callback?state={state}&code=good"))
            .header(header::COOKIE, cookies)
            .empty(),
    )
    .await
}

/// A flow lives ten minutes: its callback at the tenth minute is 400 `invalid_link` (and
/// clears the flow cookie); within them it signs in once, and the replay is 400.
pub async fn oauth_http_flow_expires_after_ten_minutes_and_is_used_once(store: Arc<dyn AuthStore>) {
    let provider = Arc::new(Scripted::default());
    let app = app_with(&store, provider.clone());

    *provider.identity.lock().expect("lock") = Some(identity("late@example.com", true));
    let (flow, state) = start(&app, None).await;
    app.clock.advance(Duration::minutes(10));
    let late = callback(&app, &flow, &state, None).await;
    assert_eq!(late.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        cookie_value(&late, "authkit_oauth").as_deref(),
        Some(""),
        "the flow cookie is cleared"
    );
    assert!(
        app.user("late@example.com").await.is_none(),
        "nothing created"
    );

    let (flow, state) = start(&app, None).await;
    app.clock.advance(Duration::minutes(9));
    let done = callback(&app, &flow, &state, None).await;
    assert_eq!(done.status(), StatusCode::FOUND);
    assert_eq!(location(&done), "/dashboard");
    assert!(cookie_value(&done, "authkit_session").is_some_and(|t| !t.is_empty()));
    let user = app.user("late@example.com").await.expect("the new user");
    assert!(user.email_verified(), "verified as the provider says");
    let replay = callback(&app, &flow, &state, None).await;
    assert_eq!(replay.status(), StatusCode::BAD_REQUEST, "used once");
}

/// The end of an unverified pre-registration is in the audit log with what ended, the
/// sign-in and the link too; a link flow finishes only for the user who started it.
pub async fn oauth_http_takeover_cleanup_is_audited_and_links_need_the_same_user(
    store: Arc<dyn AuthStore>,
) {
    let provider = Arc::new(Scripted::linking_by_email());
    let app = app_with(&store, provider.clone());
    let (squatter_id, _) = app.sign_up("victim@example.com").await;
    *provider.identity.lock().expect("lock") = Some(identity("victim@example.com", true));
    let (flow, state) = start(&app, None).await;
    let done = callback(&app, &flow, &state, None).await;
    assert_eq!(done.status(), StatusCode::FOUND, "{:?}", location(&done));
    let user = app.user("victim@example.com").await.expect("the user");
    assert_eq!(
        user.id.to_string(),
        squatter_id,
        "linked to the existing user"
    );
    assert!(
        store
            .password_credential(user.id)
            .await
            .expect("password_credential")
            .is_none(),
        "the pre-registered password is gone"
    );
    let kinds: Vec<String> = app
        .audit_events(&squatter_id)
        .await
        .into_iter()
        .map(|e| e.kind)
        .collect();
    for kind in [
        "oauth.pre_registration_ended",
        "oauth.linked",
        "sign_in.oauth",
    ] {
        assert!(kinds.iter().any(|k| k == kind), "{kind} in {kinds:?}");
    }
    let ended = app
        .audit_events(&squatter_id)
        .await
        .into_iter()
        .find(|e| e.kind == "oauth.pre_registration_ended")
        .expect("the event");
    assert_eq!(ended.data["password_removed"], true, "{}", ended.data);
    assert_eq!(ended.data["sessions_ended"], 1, "{}", ended.data);

    // Alice starts a link flow; by the callback, Bob is signed in in that browser.
    let (_, alice) = app.sign_up("alice@example.com").await;
    verify_by_link(&app).await;
    let (_, bob) = app.sign_up("bob@example.com").await;
    *provider.identity.lock().expect("lock") = Some(identity("alice-idp@example.com", true));
    let (flow, state) = start(&app, Some(&alice)).await;
    let refused = callback(&app, &flow, &state, Some(&bob)).await;
    assert_eq!(location(&refused), "/sign-in?error=oauth_failed");
    assert!(
        store
            .external_account(ISSUER, "sub-alice-idp@example.com")
            .await
            .expect("external_account")
            .is_none(),
        "nothing linked"
    );
}

/// Each start stores a flow for ten minutes, so starts count against a limit per client
/// address: past it, 429 `rate_limited` with `Retry-After`, and nothing is stored; a slot
/// frees up after the interval.
pub async fn oauth_http_flow_starts_are_rate_limited_per_address(store: Arc<dyn AuthStore>) {
    let mut limits = RateLimitConfig::default();
    limits.oauth_start_per_address = RateLimit::new(3, Duration::minutes(15));
    let app = app_with_limits(&store, Arc::new(Scripted::default()), limits);
    for _ in 0..3 {
        start(&app, None).await;
    }
    let refused = app.send(Req::get("/auth/oauth/idp").empty()).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(refused.headers().contains_key(header::RETRY_AFTER));
    assert!(
        cookie_value(&refused, "authkit_oauth").is_none(),
        "no flow was made"
    );
    app.clock.advance(Duration::minutes(5));
    start(&app, None).await;
}

/// Verifies the address of the latest verification mail, by its link, without a session.
async fn verify_by_link(app: &App) {
    let link = app.latest_link_token("/auth/verify-email");
    let response = app
        .send(Req::post("/auth/verify-email").json(&serde_json::json!({ "token": link })))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
}

/// The identities a user has linked, as (provider, subject).
async fn links_of(store: &Arc<dyn AuthStore>, user_id: UserId) -> Vec<(String, String)> {
    store
        .external_accounts_for_user(user_id)
        .await
        .expect("external_accounts_for_user")
        .into_iter()
        .map(|a| (a.provider, a.subject))
        .collect()
}

/// Takeover through a linked identity: identities that an unverified account linked (here
/// put in the store directly, as links made before linking needed a verified email are) end
/// when a verified provider email claims the address: only the claiming identity is left,
/// and the squatter's identity no longer signs in to the account.
pub async fn oauth_http_claiming_an_address_ends_every_other_identity_of_the_account(
    store: Arc<dyn AuthStore>,
) {
    let provider = Arc::new(Scripted::linking_by_email());
    let app = app_with(&store, provider.clone());
    let (squatter_id, _) = app.sign_up("victim@example.com").await;
    let user_id: UserId = squatter_id.parse().expect("a user id");
    for (provider_id, subject) in [("idp", "sub-squatter"), ("elsewhere", "sub-squatter-2")] {
        store
            .link_external_account(&ExternalAccount {
                id: ExternalAccountId::new(),
                user_id,
                provider: provider_id.to_owned(),
                issuer: ISSUER.to_owned(),
                subject: subject.to_owned(),
                email: Some("squatter@evil.example".to_owned()),
                email_verified: true,
                created_at: app.clock.now(),
                last_used_at: None,
            })
            .await
            .expect("the squatter's link");
    }

    *provider.identity.lock().expect("lock") = Some(identity("victim@example.com", true));
    let (flow, state) = start(&app, None).await;
    let done = callback(&app, &flow, &state, None).await;
    assert_eq!(location(&done), "/dashboard");
    assert_eq!(
        links_of(&store, user_id).await,
        [("idp".to_owned(), "sub-victim@example.com".to_owned())],
        "only the identity that claimed the address is left"
    );
    let ended = app
        .audit_events(&squatter_id)
        .await
        .into_iter()
        .find(|e| e.kind == "oauth.pre_registration_ended")
        .expect("the event");
    assert_eq!(ended.data["identities_unlinked"], 2, "{}", ended.data);

    // The squatter's identity is no one's now: it signs in to a new account of its own.
    *provider.identity.lock().expect("lock") = Some(ProviderIdentity {
        issuer: ISSUER.to_owned(),
        subject: "sub-squatter".to_owned(),
        email: Some("squatter@evil.example".to_owned()),
        email_verified: true,
        name: None,
    });
    let (flow, state) = start(&app, None).await;
    let again = callback(&app, &flow, &state, None).await;
    assert_eq!(location(&again), "/dashboard");
    let squatter = app
        .user("squatter@evil.example")
        .await
        .expect("a new account");
    assert_ne!(squatter.id, user_id, "not the victim's account");
}

/// Linking needs a verified email: a link flow started by an unverified account is 403
/// `email_not_verified` and starts nothing (no flow cookie), over HTTP and through
/// `OAuth::start`; once the address is verified, the link starts.
pub async fn oauth_http_linking_needs_a_verified_email(store: Arc<dyn AuthStore>) {
    let app = app_with(&store, Arc::new(Scripted::default()));
    let (user_id, token) = app.sign_up("linker@example.com").await;
    let refused = app
        .send(Req::post("/auth/oauth/idp/link").cookie(&token).empty())
        .await;
    assert_problem(&refused, 403, "email_not_verified");
    assert!(
        cookie_value(&refused, "authkit_oauth").is_none(),
        "no flow was made"
    );
    let client = keystead::accounts::ClientInfo::new("192.0.2.1".parse().expect("an address"));
    let user_id: UserId = user_id.parse().expect("a user id");
    let err = app
        .auth
        .oauth()
        .start("idp", None, Some(user_id), &client)
        .await
        .expect_err("refused");
    assert_eq!(err.code, keystead::ErrorCode::EmailNotVerified);

    verify_by_link(&app).await;
    start(&app, Some(&token)).await;
}

/// Linking by email is the provider's setting: with the default (`EmailLinking::Never`), a
/// verified provider email of an existing account (verified or not) signs in no one, links
/// nothing and creates no user (`/sign-in?error=link_required`); with
/// `EmailLinking::VerifiedEmail` it links to that account.
pub async fn oauth_http_linking_by_email_is_a_setting_of_the_provider(store: Arc<dyn AuthStore>) {
    let never = Arc::new(Scripted::default());
    let app = app_with(&store, never.clone());
    let (verified_id, _) = app.sign_up("verified@example.com").await;
    verify_by_link(&app).await;
    let (unverified_id, _) = app.sign_up("unverified@example.com").await;
    for (email, user_id) in [
        ("verified@example.com", &verified_id),
        ("unverified@example.com", &unverified_id),
    ] {
        *never.identity.lock().expect("lock") = Some(identity(email, true));
        let (flow, state) = start(&app, None).await;
        let refused = callback(&app, &flow, &state, None).await;
        assert_eq!(
            location(&refused),
            "/sign-in?error=link_required",
            "{email}"
        );
        assert!(
            cookie_value(&refused, "authkit_session").is_none(),
            "{email}: no session"
        );
        let user_id: UserId = user_id.parse().expect("a user id");
        assert!(links_of(&store, user_id).await.is_empty(), "{email}");
        assert!(
            store
                .password_credential(user_id)
                .await
                .expect("password_credential")
                .is_some(),
            "{email}: the password stays"
        );
    }
    let unverified = app.user("unverified@example.com").await.expect("the user");
    assert!(!unverified.email_verified(), "still unverified");

    let by_email = Arc::new(Scripted::linking_by_email());
    let app = app_with(&store, by_email.clone());
    *by_email.identity.lock().expect("lock") = Some(identity("verified@example.com", true));
    let (flow, state) = start(&app, None).await;
    let linked = callback(&app, &flow, &state, None).await;
    assert_eq!(location(&linked), "/dashboard");
    let user_id: UserId = verified_id.parse().expect("a user id");
    assert_eq!(
        links_of(&store, user_id).await,
        [("idp".to_owned(), "sub-verified@example.com".to_owned())]
    );
}
