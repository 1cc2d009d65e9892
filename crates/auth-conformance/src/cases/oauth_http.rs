//! Sign-in with a provider over [`Auth::handle`] on each real store, with the clock in hand:
//! what the contract suite (which drives a real OpenID provider) cannot reach, such as the
//! ten-minute expiry of a flow and the audit trail. The provider here is a scripted
//! [`IdentityProvider`]: the trait's contract is what the core relies on, and `auth-oidc`'s own
//! tests check a real provider keeps it.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use auth_core::oauth::{AuthorizationParams, IdentityProvider, ProviderError, ProviderIdentity};
use auth_core::web::AppOrigin;
use auth_core::{AuthStore, ManualClock, PasswordConfig, RateLimit, RateLimitConfig};
use bytes::Bytes;
use http::{Response, StatusCode, header};
use time::Duration;

use super::http_routes::{App, ORIGIN, Req};

/// The issuer of the scripted provider.
const ISSUER: &str = "https://idp.test";

/// Answers the authorization URL with the parameters it was given, and redeems the code
/// `good` (once) for `identity` if the verifier and nonce are those of the flow.
#[derive(Debug, Default)]
struct Scripted {
    identity: Mutex<Option<ProviderIdentity>>,
    /// (verifier, nonce) of the last authorization URL.
    last: Mutex<Option<(String, String)>>,
}

#[async_trait]
impl IdentityProvider for Scripted {
    fn id(&self) -> &str {
        "idp"
    }

    fn display_name(&self) -> &str {
        "IdP"
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
    let mailer = auth_core::mail::MemoryMailer::default();
    let auth = auth_core::Auth::builder(
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
    let provider = Arc::new(Scripted::default());
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
    let limits = RateLimitConfig {
        oauth_start_per_address: RateLimit::new(3, Duration::minutes(15)),
        ..RateLimitConfig::default()
    };
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
