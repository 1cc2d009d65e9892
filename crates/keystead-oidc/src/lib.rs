//! # keystead-oidc
//!
//! OpenID Connect providers for `keystead`'s sign-in with a provider: a Google preset and any
//! issuer with discovery, built on the [`openidconnect`] crate. `keystead` runs the flow (state,
//! nonce, PKCE, the flow cookie, accounts); this crate talks to the provider: discovery, the
//! authorization URL, the code exchange, and the ID token's verification.
//!
//! ```no_run
//! # fn run(store: std::sync::Arc<dyn keystead::AuthStore>) -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//!
//! use keystead::Auth;
//! use keystead::web::AppOrigin;
//! use keystead_oidc::OidcProvider;
//!
//! let google = OidcProvider::google("client-id", "client-secret")?;
//! let corporate = OidcProvider::new(
//!     "oidc",
//!     "Single sign-on",
//!     "https://login.example.com/realms/staff",
//!     "client-id",
//!     "client-secret",
//! )?;
//! let auth = Auth::builder(store, AppOrigin::parse("https://app.example.com")?)
//!     .identity_provider(Arc::new(google))
//!     .identity_provider(Arc::new(corporate))
//!     .build();
//! # Ok(()) }
//! ```
//!
//! What a provider checks:
//! - **Issuer.** The issuer must be `https://`, or `http://` on a loopback host (local
//!   development and tests). Discovery (`/.well-known/openid-configuration`, fetched on first use)
//!   must name exactly the configured issuer, and an ID token's `iss` must equal it. Google's ID
//!   tokens may also say `accounts.google.com`; the Google preset accepts that alias and no other.
//! - **ID token.** `openidconnect`'s verifier checks the signature with the provider's JWKS
//!   (RS256 and the other asymmetric algorithms the crate allows; never `none` or a MAC keyed with
//!   a public key), `aud` containing our client id and no other audience, `exp`, and the nonce of
//!   the flow; this crate adds `azp` (when present, it must be our client id) and `at_hash` (when
//!   present, it must match the access token).
//! - **Keys.** Discovery and keys are cached for [`OidcConfig::metadata_ttl`] (1 hour). A token
//!   signed by a key we do not know (a `kid` not in the cached set: the provider rotated its
//!   keys) makes one refetch of the JWKS, then one more verification; such refetches happen at
//!   most once per [`OidcConfig::jwks_refetch_interval`], so tokens with made-up `kid`s cannot
//!   make us hammer the provider.
//! - **HTTP.** The client follows no redirects (SSRF) and gives up after
//!   [`OidcConfig::timeout`].
//!
//! The email claims must be in the ID token (Google's are; so are Keycloak's, Auth0's, Okta's
//! with the `email` scope); the userinfo endpoint is not read.
#![forbid(unsafe_code)]

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use keystead::oauth::{
    AuthorizationParams, EmailLinking, IdentityProvider, ProviderError, ProviderIdentity,
    is_valid_provider_id,
};
use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreJsonWebKeySet, CoreProviderMetadata,
};
use openidconnect::{
    AccessTokenHash, AuthorizationCode, ClaimsVerificationError, ClientId, ClientSecret, CsrfToken,
    IssuerUrl, JsonWebKeySet, Nonce, OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier,
    RedirectUrl, RequestTokenError, Scope, SignatureVerificationError, TokenResponse, reqwest,
};
use tokio::sync::{Mutex, RwLock};

/// Google's issuer.
pub const GOOGLE_ISSUER: &str = "https://accounts.google.com";

/// The other `iss` that Google's ID tokens may carry.
const GOOGLE_ISSUER_ALIAS: &str = "accounts.google.com";

/// Why a provider could not be configured.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OidcConfigError {
    /// The id is not 1 to 32 of `a-z`, `0-9`, `-`.
    #[error("provider id {0:?}: use 1 to 32 of a-z, 0-9 and -")]
    InvalidId(String),
    /// The issuer is not a URL, or not `https://` (nor `http://` on loopback).
    #[error("issuer {0:?}: must be an https:// URL (http:// only on a loopback host)")]
    InvalidIssuer(String),
    /// The client id or secret is empty.
    #[error("the client id and secret must not be empty")]
    MissingClient,
    /// The HTTP client could not be built.
    #[error("could not build the HTTP client: {0}")]
    HttpClient(String),
}

/// Timeouts and cache lifetimes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct OidcConfig {
    /// How long discovery and keys are used before they are fetched again (default 1 hour).
    pub metadata_ttl: Duration,
    /// The least time between two refetches of the keys for a token signed by an unknown key
    /// (default 10 seconds): forged tokens with made-up `kid`s cannot make us hammer the
    /// provider.
    pub jwks_refetch_interval: Duration,
    /// The timeout of each request to the provider (default 10 seconds).
    pub timeout: Duration,
    /// How far the provider's clock may be ahead of ours (default 5 minutes): `iat` and `nbf`
    /// may be this much in the future, and `iat` this much older than
    /// [`OidcConfig::max_id_token_age`]. `exp` gets no leeway: it must be in the future.
    pub clock_skew: Duration,
    /// How long ago an ID token may have been issued (`iat`, default 10 minutes, plus
    /// [`OidcConfig::clock_skew`]). The token comes straight from the token endpoint during
    /// the flow, so an older one is a replay or a provider with a broken clock.
    pub max_id_token_age: Duration,
}

impl Default for OidcConfig {
    fn default() -> Self {
        Self {
            metadata_ttl: Duration::from_secs(3600),
            jwks_refetch_interval: Duration::from_secs(10),
            timeout: Duration::from_secs(10),
            clock_skew: Duration::from_secs(5 * 60),
            max_id_token_age: Duration::from_secs(10 * 60),
        }
    }
}

impl OidcConfig {
    /// Sets [`OidcConfig::metadata_ttl`].
    #[must_use]
    pub const fn metadata_ttl(mut self, ttl: Duration) -> Self {
        self.metadata_ttl = ttl;
        self
    }

    /// Sets [`OidcConfig::jwks_refetch_interval`].
    #[must_use]
    pub const fn jwks_refetch_interval(mut self, interval: Duration) -> Self {
        self.jwks_refetch_interval = interval;
        self
    }

    /// Sets [`OidcConfig::timeout`].
    #[must_use]
    pub const fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets [`OidcConfig::clock_skew`].
    #[must_use]
    pub const fn clock_skew(mut self, skew: Duration) -> Self {
        self.clock_skew = skew;
        self
    }

    /// Sets [`OidcConfig::max_id_token_age`].
    #[must_use]
    pub const fn max_id_token_age(mut self, age: Duration) -> Self {
        self.max_id_token_age = age;
        self
    }
}

/// The time claims of an ID token, in seconds since the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct TimeClaims {
    iat: Option<i64>,
    exp: Option<i64>,
    nbf: Option<i64>,
}

impl TimeClaims {
    /// Reads `iat`, `exp` and `nbf` from the payload of a compact JWT (whose signature was
    /// verified already). Numbers that are not integers are rounded down.
    fn of_jwt(jwt: &str) -> Result<Self, String> {
        use base64::Engine as _;
        let payload = jwt
            .split('.')
            .nth(1)
            .ok_or_else(|| "the ID token is not a compact JWT".to_owned())?;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload.trim_end_matches('='))
            .map_err(|e| format!("the ID token's payload: {e}"))?;
        let claims: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(&bytes).map_err(|e| format!("the ID token's payload: {e}"))?;
        let number = |name: &str| -> Result<Option<i64>, String> {
            match claims.get(name) {
                None | Some(serde_json::Value::Null) => Ok(None),
                Some(serde_json::Value::Number(n)) => n
                    .as_i64()
                    .or_else(|| {
                        n.as_f64()
                            .filter(|f| f.is_finite() && f.abs() < 1e15)
                            .map(|f| f.floor() as i64)
                    })
                    .map(Some)
                    .ok_or_else(|| format!("{name} is out of range")),
                Some(_) => Err(format!("{name} is not a number")),
            }
        };
        Ok(Self {
            iat: number("iat")?,
            exp: number("exp")?,
            nbf: number("nbf")?,
        })
    }

    /// Checks the claims at `now` (seconds since the epoch) with `skew` and `max_age` (in
    /// seconds): `exp` and `iat` must be present; `exp > now` (as `openidconnect` checks it
    /// too); `iat <= now + skew` and `iat >= now - max_age - skew`; `nbf`, if present,
    /// `<= now + skew`.
    fn check(self, now: i64, skew: i64, max_age: i64) -> Result<(), String> {
        let exp = self
            .exp
            .ok_or_else(|| "the ID token has no exp".to_owned())?;
        let iat = self
            .iat
            .ok_or_else(|| "the ID token has no iat".to_owned())?;
        if exp <= now {
            return Err(format!("ID token expired (exp {exp}, now {now})"));
        }
        if iat > now.saturating_add(skew) {
            return Err(format!(
                "ID token issued in the future (iat {iat}, now {now})"
            ));
        }
        if iat < now.saturating_sub(max_age).saturating_sub(skew) {
            return Err(format!(
                "ID token issued too long ago (iat {iat}, now {now})"
            ));
        }
        if let Some(nbf) = self.nbf
            && nbf > now.saturating_add(skew)
        {
            return Err(format!("ID token not valid yet (nbf {nbf}, now {now})"));
        }
        Ok(())
    }
}

/// Seconds since the epoch, now.
fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// A [`Duration`] in whole seconds, for the time checks.
fn whole_seconds(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

/// Discovery and keys, as last fetched.
struct Discovered {
    metadata: CoreProviderMetadata,
    /// When discovery ran.
    fetched_at: Instant,
    /// When the keys were last fetched again for a token signed by an unknown key.
    keys_refetched_at: Option<Instant>,
    /// Counts fetches, so that concurrent refetches can tell one happened meanwhile.
    generation: u64,
}

/// An OpenID Connect provider found by discovery from its issuer.
pub struct OidcProvider {
    id: String,
    display_name: String,
    issuer: IssuerUrl,
    issuer_aliases: Vec<String>,
    client_id: ClientId,
    client_secret: ClientSecret,
    config: OidcConfig,
    email_linking: EmailLinking,
    http: reqwest::Client,
    discovered: RwLock<Option<Arc<Discovered>>>,
    /// One discovery or key fetch at a time.
    fetching: Mutex<()>,
}

impl fmt::Debug for OidcProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OidcProvider")
            .field("id", &self.id)
            .field("issuer", &self.issuer.as_str())
            .field("client_id", &self.client_id.as_str())
            .field("config", &self.config)
            .field("email_linking", &self.email_linking)
            .finish_non_exhaustive()
    }
}

/// Whether `issuer` may be used: `https://`, or `http://` on a loopback host.
fn check_issuer(issuer: &str) -> Result<IssuerUrl, OidcConfigError> {
    let invalid = || OidcConfigError::InvalidIssuer(issuer.to_owned());
    let url = url::Url::parse(issuer).map_err(|_| invalid())?;
    let loopback = match url.host() {
        Some(url::Host::Domain(host)) => host.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    };
    let scheme_ok = url.scheme() == "https" || (url.scheme() == "http" && loopback);
    if !scheme_ok
        || url.host().is_none()
        || !url.username().is_empty()
        || url.password().is_some()
        || url.query().is_some()
        || url.fragment().is_some()
    {
        return Err(invalid());
    }
    IssuerUrl::new(issuer.to_owned()).map_err(|_| invalid())
}

impl OidcProvider {
    /// A provider named `id` (in routes: `/auth/oauth/{id}`), shown as `display_name`, at
    /// `issuer`, for the client registered there.
    ///
    /// # Errors
    /// [`OidcConfigError`]: a bad id, a bad issuer, an empty client id or secret.
    pub fn new(
        id: &str,
        display_name: &str,
        issuer: &str,
        client_id: &str,
        client_secret: &str,
    ) -> Result<Self, OidcConfigError> {
        Self::with_config(
            id,
            display_name,
            issuer,
            client_id,
            client_secret,
            OidcConfig::default(),
        )
    }

    /// Like [`OidcProvider::new`], with other timeouts and cache lifetimes.
    ///
    /// # Errors
    /// As [`OidcProvider::new`].
    pub fn with_config(
        id: &str,
        display_name: &str,
        issuer: &str,
        client_id: &str,
        client_secret: &str,
        config: OidcConfig,
    ) -> Result<Self, OidcConfigError> {
        if !is_valid_provider_id(id) {
            return Err(OidcConfigError::InvalidId(id.to_owned()));
        }
        let issuer = check_issuer(issuer)?;
        if client_id.trim().is_empty() || client_secret.is_empty() {
            return Err(OidcConfigError::MissingClient);
        }
        let http = reqwest::Client::builder()
            // Following redirects would let a provider's answer point us anywhere (SSRF).
            .redirect(reqwest::redirect::Policy::none())
            .timeout(config.timeout)
            .build()
            .map_err(|e| OidcConfigError::HttpClient(e.to_string()))?;
        Ok(Self {
            id: id.to_owned(),
            display_name: display_name.to_owned(),
            issuer,
            issuer_aliases: Vec::new(),
            client_id: ClientId::new(client_id.to_owned()),
            client_secret: ClientSecret::new(client_secret.to_owned()),
            config,
            email_linking: EmailLinking::Never,
            http,
            discovered: RwLock::new(None),
            fetching: Mutex::new(()),
        })
    }

    /// Google (`google`, "Google", [`GOOGLE_ISSUER`]), whose ID tokens may say
    /// `accounts.google.com` too. Google is authoritative for the addresses it says are
    /// verified, so the preset links by verified email ([`EmailLinking::VerifiedEmail`]).
    ///
    /// # Errors
    /// As [`OidcProvider::new`].
    pub fn google(client_id: &str, client_secret: &str) -> Result<Self, OidcConfigError> {
        Self::google_at(GOOGLE_ISSUER, client_id, client_secret)
    }

    /// The Google preset at another issuer: for tests against a local OpenID provider
    /// (`GOOGLE_ISSUER`). The `accounts.google.com` alias is accepted only for Google's own
    /// issuer.
    ///
    /// # Errors
    /// As [`OidcProvider::new`].
    pub fn google_at(
        issuer: &str,
        client_id: &str,
        client_secret: &str,
    ) -> Result<Self, OidcConfigError> {
        let mut provider = Self::new("google", "Google", issuer, client_id, client_secret)?
            .with_email_linking(EmailLinking::VerifiedEmail);
        if issuer == GOOGLE_ISSUER {
            provider.issuer_aliases.push(GOOGLE_ISSUER_ALIAS.to_owned());
        }
        Ok(provider)
    }

    /// The configured issuer.
    #[must_use]
    pub fn issuer(&self) -> &str {
        self.issuer.as_str()
    }

    /// Sets whether a sign-in may link to the existing account with the same email (see
    /// [`EmailLinking`]). [`OidcProvider::new`] starts with [`EmailLinking::Never`]: a generic
    /// provider may let its users assert any address. Turn on
    /// [`EmailLinking::VerifiedEmail`] only for a provider that is authoritative for its
    /// users' addresses (a company's own identity provider for the company's domain).
    #[must_use]
    pub const fn with_email_linking(mut self, linking: EmailLinking) -> Self {
        self.email_linking = linking;
        self
    }

    /// Discovery and keys: the cached ones while fresh, else fetched now.
    async fn discovered(&self) -> Result<Arc<Discovered>, ProviderError> {
        if let Some(d) = self.fresh().await {
            return Ok(d);
        }
        let _one = self.fetching.lock().await;
        if let Some(d) = self.fresh().await {
            return Ok(d);
        }
        // `discover_async` checks that the document names exactly our issuer, then fetches
        // the keys from its `jwks_uri`.
        let metadata = CoreProviderMetadata::discover_async(self.issuer.clone(), &self.http)
            .await
            .map_err(|e| ProviderError::Unavailable(format!("discovery: {e}")))?;
        let generation = self
            .discovered
            .read()
            .await
            .as_ref()
            .map_or(0, |d| d.generation + 1);
        let d = Arc::new(Discovered {
            metadata,
            fetched_at: Instant::now(),
            keys_refetched_at: None,
            generation,
        });
        *self.discovered.write().await = Some(Arc::clone(&d));
        Ok(d)
    }

    async fn fresh(&self) -> Option<Arc<Discovered>> {
        self.discovered
            .read()
            .await
            .as_ref()
            .filter(|d| d.fetched_at.elapsed() < self.config.metadata_ttl)
            .cloned()
    }

    /// Fetches the keys again (the provider rotated them), unless that was done for an
    /// unknown key less than [`OidcConfig::jwks_refetch_interval`] ago. Returns the discovery
    /// with the new keys, or `None` when it was too soon.
    async fn refetch_keys(
        &self,
        seen: &Discovered,
    ) -> Result<Option<Arc<Discovered>>, ProviderError> {
        let _one = self.fetching.lock().await;
        let current = self.discovered.read().await.clone();
        if let Some(current) = current
            && current.generation > seen.generation
        {
            // Someone else fetched meanwhile.
            return Ok(Some(current));
        }
        if seen
            .keys_refetched_at
            .is_some_and(|at| at.elapsed() < self.config.jwks_refetch_interval)
        {
            return Ok(None);
        }
        let jwks: CoreJsonWebKeySet =
            JsonWebKeySet::fetch_async(seen.metadata.jwks_uri(), &self.http)
                .await
                .map_err(|e| ProviderError::Unavailable(format!("keys: {e}")))?;
        let d = Arc::new(Discovered {
            metadata: seen.metadata.clone().set_jwks(jwks),
            fetched_at: seen.fetched_at,
            keys_refetched_at: Some(Instant::now()),
            generation: seen.generation + 1,
        });
        *self.discovered.write().await = Some(Arc::clone(&d));
        Ok(Some(d))
    }

    fn client(
        &self,
        metadata: &CoreProviderMetadata,
        redirect_uri: &str,
    ) -> Result<
        CoreClient<
            openidconnect::EndpointSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointMaybeSet,
            openidconnect::EndpointMaybeSet,
        >,
        ProviderError,
    > {
        let redirect = RedirectUrl::new(redirect_uri.to_owned())
            .map_err(|e| ProviderError::Unavailable(format!("redirect URI: {e}")))?;
        Ok(CoreClient::from_provider_metadata(
            metadata.clone(),
            self.client_id.clone(),
            Some(self.client_secret.clone()),
        )
        .set_redirect_uri(redirect))
    }

    /// Verifies the ID token of a token response with the keys of `d`.
    fn verify(
        &self,
        d: &Discovered,
        redirect_uri: &str,
        id_token: &openidconnect::core::CoreIdToken,
        access_token: &openidconnect::AccessToken,
        nonce: &Nonce,
    ) -> Result<ProviderIdentity, VerifyError> {
        let client = self.client(&d.metadata, redirect_uri)?;
        // With an alias, `iss` is checked below against the issuer and its alias; else the
        // verifier checks it equals the issuer exactly.
        let verifier = client
            .id_token_verifier()
            .require_issuer_match(self.issuer_aliases.is_empty());
        let claims = id_token.claims(&verifier, nonce).map_err(|e| match e {
            ClaimsVerificationError::SignatureVerification(
                SignatureVerificationError::NoMatchingKey,
            ) => VerifyError::UnknownKey,
            other => VerifyError::Invalid(other.to_string()),
        })?;
        // `openidconnect` checks `exp` (without leeway) and nothing of `iat` or `nbf`: the
        // bounded checks on all three, on the verified payload.
        TimeClaims::of_jwt(&id_token.to_string())
            .and_then(|t| {
                t.check(
                    unix_now(),
                    whole_seconds(self.config.clock_skew),
                    whole_seconds(self.config.max_id_token_age),
                )
            })
            .map_err(VerifyError::Invalid)?;
        let iss = claims.issuer().as_str();
        if iss != self.issuer.as_str() && !self.issuer_aliases.iter().any(|a| a == iss) {
            return Err(VerifyError::Invalid(format!("unexpected issuer {iss:?}")));
        }
        if let Some(azp) = claims.authorized_party()
            && azp.as_str() != self.client_id.as_str()
        {
            return Err(VerifyError::Invalid(format!(
                "azp {:?} is not our client",
                azp.as_str()
            )));
        }
        if let Some(expected) = claims.access_token_hash() {
            let alg = id_token
                .signing_alg()
                .map_err(|e| VerifyError::Invalid(e.to_string()))?;
            let key = id_token
                .signing_key(&verifier)
                .map_err(|e| VerifyError::Invalid(e.to_string()))?;
            let actual = AccessTokenHash::from_token(access_token, alg, key)
                .map_err(|e| VerifyError::Invalid(e.to_string()))?;
            if actual != *expected {
                return Err(VerifyError::Invalid("at_hash does not match".to_owned()));
            }
        }
        Ok(ProviderIdentity {
            issuer: self.issuer.as_str().to_owned(),
            subject: claims.subject().as_str().to_owned(),
            email: claims.email().map(|e| e.as_str().to_owned()),
            email_verified: claims.email_verified().unwrap_or(false),
            name: claims
                .name()
                .and_then(|n| n.get(None))
                .map(|n| n.as_str().to_owned()),
        })
    }
}

/// Why an ID token did not verify.
enum VerifyError {
    /// Signed by a key not in the cached set: refetch the keys and try once more.
    UnknownKey,
    Invalid(String),
    Provider(ProviderError),
}

impl From<ProviderError> for VerifyError {
    fn from(e: ProviderError) -> Self {
        Self::Provider(e)
    }
}

impl From<VerifyError> for ProviderError {
    fn from(e: VerifyError) -> Self {
        match e {
            VerifyError::UnknownKey => {
                Self::InvalidIdToken("signed by a key the provider does not publish".to_owned())
            }
            VerifyError::Invalid(reason) => Self::InvalidIdToken(reason),
            VerifyError::Provider(e) => e,
        }
    }
}

#[async_trait]
impl IdentityProvider for OidcProvider {
    fn id(&self) -> &str {
        &self.id
    }

    fn display_name(&self) -> &str {
        &self.display_name
    }

    fn email_linking(&self) -> EmailLinking {
        self.email_linking
    }

    async fn authorization_url(
        &self,
        params: &AuthorizationParams<'_>,
    ) -> Result<String, ProviderError> {
        let d = self.discovered().await?;
        let client = self.client(&d.metadata, params.redirect_uri)?;
        let state = params.state.to_owned();
        let nonce = params.nonce.to_owned();
        let challenge = PkceCodeChallenge::from_code_verifier_sha256(&PkceCodeVerifier::new(
            params.pkce_verifier.to_owned(),
        ));
        let (url, _, _) = client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                move || CsrfToken::new(state),
                move || Nonce::new(nonce),
            )
            .add_scope(Scope::new("email".to_owned()))
            .add_scope(Scope::new("profile".to_owned()))
            .set_pkce_challenge(challenge)
            .url();
        Ok(url.into())
    }

    async fn exchange_code(
        &self,
        code: &str,
        params: &AuthorizationParams<'_>,
    ) -> Result<ProviderIdentity, ProviderError> {
        let d = self.discovered().await?;
        let client = self.client(&d.metadata, params.redirect_uri)?;
        let response = client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .map_err(|e| ProviderError::Unavailable(format!("token endpoint: {e}")))?
            .set_pkce_verifier(PkceCodeVerifier::new(params.pkce_verifier.to_owned()))
            .request_async(&self.http)
            .await
            .map_err(|e| match e {
                RequestTokenError::ServerResponse(r) => {
                    ProviderError::Refused(r.error().to_string())
                }
                other => ProviderError::Unavailable(format!("token request: {other}")),
            })?;
        let id_token = response.id_token().ok_or_else(|| {
            ProviderError::InvalidIdToken("the token response has no ID token".to_owned())
        })?;
        let nonce = Nonce::new(params.nonce.to_owned());
        let access_token = response.access_token();
        match self.verify(&d, params.redirect_uri, id_token, access_token, &nonce) {
            Err(VerifyError::UnknownKey) => {
                let Some(d) = self.refetch_keys(&d).await? else {
                    return Err(VerifyError::UnknownKey.into());
                };
                Ok(self.verify(&d, params.redirect_uri, id_token, access_token, &nonce)?)
            }
            other => Ok(other?),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issuers_must_be_https_or_loopback_http() {
        for ok in [
            "https://accounts.google.com",
            "https://login.example.com/realms/staff",
            "http://127.0.0.1:8080",
            "http://localhost:9000/",
            "http://[::1]:9000",
        ] {
            assert!(check_issuer(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://login.example.com",
            "http://10.0.0.1",
            "ftp://127.0.0.1",
            "https://user:pw@login.example.com",
            "https://login.example.com/?tenant=1",
            "https://login.example.com/#x",
            "not a url",
            "",
        ] {
            assert_eq!(
                check_issuer(bad).err(),
                Some(OidcConfigError::InvalidIssuer(bad.to_owned())),
                "{bad}"
            );
        }
    }

    #[test]
    fn providers_need_an_id_and_a_client() {
        assert!(matches!(
            OidcProvider::new("Bad Id", "x", "https://a.example", "id", "secret"),
            Err(OidcConfigError::InvalidId(_))
        ));
        assert!(matches!(
            OidcProvider::new("oidc", "x", "https://a.example", " ", "secret"),
            Err(OidcConfigError::MissingClient)
        ));
        assert!(matches!(
            OidcProvider::new("oidc", "x", "https://a.example", "id", ""),
            Err(OidcConfigError::MissingClient)
        ));
    }

    #[test]
    fn only_googles_own_issuer_accepts_the_alias() {
        let google = OidcProvider::google("id", "secret").unwrap();
        assert_eq!(google.issuer_aliases, ["accounts.google.com"]);
        assert_eq!(google.id(), "google");
        assert_eq!(google.display_name(), "Google");
        let local = OidcProvider::google_at("http://127.0.0.1:9", "id", "secret").unwrap();
        assert!(local.issuer_aliases.is_empty());
    }

    /// A compact JWT whose payload is `claims` (header and signature are not read here).
    fn jwt_with(claims: &serde_json::Value) -> String {
        use base64::Engine as _;
        let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        format!(
            "{}.{}.{}",
            b64(br#"{"alg":"RS256"}"#),
            b64(claims.to_string().as_bytes()),
            b64(b"signature")
        )
    }

    #[test]
    fn id_token_time_claims_are_bounded() {
        const NOW: i64 = 1_800_000_000;
        let (skew, age) = (300, 600);
        let check = |claims: serde_json::Value| {
            TimeClaims::of_jwt(&jwt_with(&claims)).and_then(|t| t.check(NOW, skew, age))
        };
        for ok in [
            serde_json::json!({"iat": NOW, "exp": NOW + 3600}),
            serde_json::json!({"iat": NOW - 600 - 300, "exp": NOW + 1}),
            serde_json::json!({"iat": NOW + 300, "exp": NOW + 3600, "nbf": NOW + 300}),
            serde_json::json!({"iat": NOW, "exp": NOW + 3600, "nbf": NOW - 10_000}),
            serde_json::json!({"iat": NOW as f64 + 0.5, "exp": NOW as f64 + 60.25}),
        ] {
            assert_eq!(check(ok.clone()), Ok(()), "{ok}");
        }
        for (bad, why) in [
            (serde_json::json!({"iat": NOW, "exp": NOW}), "expired"),
            (
                serde_json::json!({"iat": NOW - 7200, "exp": NOW - 3600}),
                "expired",
            ),
            (
                serde_json::json!({"iat": NOW - 600 - 301, "exp": NOW + 3600}),
                "too long ago",
            ),
            (
                serde_json::json!({"iat": NOW - 86_400 * 365, "exp": NOW + 86_400 * 3650}),
                "too long ago",
            ),
            (
                serde_json::json!({"iat": NOW + 301, "exp": NOW + 3600}),
                "in the future",
            ),
            (
                serde_json::json!({"iat": NOW, "exp": NOW + 3600, "nbf": NOW + 301}),
                "not valid yet",
            ),
            (serde_json::json!({"exp": NOW + 3600}), "no iat"),
            (serde_json::json!({"iat": NOW}), "no exp"),
            (
                serde_json::json!({"iat": "now", "exp": NOW + 3600}),
                "not a number",
            ),
            (
                serde_json::json!({"iat": 1e300, "exp": NOW + 3600}),
                "out of range",
            ),
            (
                serde_json::json!({"iat": i64::MIN, "exp": i64::MAX}),
                "too long ago",
            ),
        ] {
            let err = check(bad.clone()).expect_err(why);
            assert!(err.contains(why), "{bad}: {err}");
        }
        assert!(TimeClaims::of_jwt("not-a-jwt").is_err());
        assert!(TimeClaims::of_jwt("a.!!!.c").is_err());
    }

    #[test]
    fn only_the_google_preset_links_by_email_by_default() {
        let google = OidcProvider::google("id", "secret").unwrap();
        assert_eq!(google.email_linking(), EmailLinking::VerifiedEmail);
        let local = OidcProvider::google_at("http://127.0.0.1:9", "id", "secret").unwrap();
        assert_eq!(local.email_linking(), EmailLinking::VerifiedEmail);
        let generic = OidcProvider::new("oidc", "x", "https://a.example", "id", "secret").unwrap();
        assert_eq!(generic.email_linking(), EmailLinking::Never);
        let opted_in = generic.with_email_linking(EmailLinking::VerifiedEmail);
        assert_eq!(opted_in.email_linking(), EmailLinking::VerifiedEmail);
    }

    #[tokio::test]
    async fn an_unreachable_provider_is_unavailable_not_a_panic() {
        let provider = OidcProvider::with_config(
            "oidc",
            "x",
            "http://127.0.0.1:9",
            "id",
            "secret",
            OidcConfig::default().timeout(Duration::from_secs(2)),
        )
        .unwrap();
        let params = AuthorizationParams {
            redirect_uri: "http://127.0.0.1:3000/auth/oauth/oidc/callback",
            state: "s",
            nonce: "n",
            pkce_verifier: "v",
        };
        assert!(matches!(
            provider.authorization_url(&params).await,
            Err(ProviderError::Unavailable(_))
        ));
    }
}
