//! A second factor: TOTP authenticators (RFC 6238), recovery codes, the pending sign-in that
//! waits for the second factor, and step-up re-authentication.
//!
//! - **TOTP.** Enrolment issues a 160-bit secret, shown once as an `otpauth://` URI and a QR
//!   code (SVG, made here: no third party sees the secret). The secret is sealed with
//!   XChaCha20-Poly1305 under the app's [`MfaKey`] (bound to the user's id) before it reaches
//!   the store. A first code confirms it; until then it is no factor. Codes are 6 digits over
//!   30 s steps, with one step of skew each way; each is usable once: the store keeps the step
//!   of the last accepted code and refuses that step and earlier ones, atomically, on every
//!   instance.
//! - **Recovery codes.** Ten single-use codes of 120 bits (ASVS 6.5.2 allows a plain hash at
//!   112 bits or more), shown once; the store keeps an HMAC-SHA-256 of each under a key
//!   derived from the [`MfaKey`], so a database dump alone yields nothing to try. A new set
//!   voids the old one.
//! - **Pending sign-in.** When a user with a factor passes the first factor (password or
//!   provider), no session is made: a [`Challenge`] of five minutes is, found by the hash of a
//!   random token in an `HttpOnly` cookie. The second factor takes it (once) and only then is
//!   a session created.
//! - **Attempts** are limited per user ([`RateLimitConfig::mfa_per_user`](crate::RateLimitConfig)),
//!   like failed passwords; a success gives its slot back.
//! - **Step-up.** [`Principal::require_recent_auth`](crate::Principal::require_recent_auth)
//!   with [`Auth::step_up_max_age`] guards the sensitive routes; `POST /auth/reauthenticate`
//!   refreshes the session's authentication time.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::Sha256;
use time::{Duration, OffsetDateTime};
use totp_rs::{Algorithm, TOTP};
use zeroize::{Zeroize, Zeroizing};

use crate::accounts::ClientInfo;
use crate::audit;
use crate::auth::Auth;
use crate::id::ChallengeId;
use crate::model::{AuditEvent, AuditKind, Challenge, ChallengeKind, MfaStatus, TotpFactor, User};
use crate::secret::{SecretString, TokenHash, fill_random, generate_token};
use crate::session::CreatedSession;
use crate::store::{Conflict, StoreError};
use crate::{AuthError, ErrorCode, UserId};

/// How long a pending sign-in waits for its second factor.
pub const PENDING_SIGN_IN_TTL: Duration = Duration::minutes(5);
/// How old a session's authentication may be for a step-up route, by default.
pub const DEFAULT_STEP_UP_MAX_AGE: Duration = Duration::minutes(10);
/// How many recovery codes a set holds.
pub const RECOVERY_CODE_COUNT: usize = 10;
/// The TOTP period, in seconds.
pub const TOTP_STEP_SECS: i64 = 30;
/// TOTP digits.
const TOTP_DIGITS: usize = 6;
/// Bytes of a TOTP secret (RFC 4226 recommends 160 bits).
const TOTP_SECRET_BYTES: usize = 20;
/// The sealed secret's format version (first byte).
const SEAL_V1: u8 = 1;

/// The key that seals TOTP secrets and keys the recovery codes' hashes: 32 random bytes,
/// kept outside the database (an environment variable, a secrets manager).
#[derive(Clone)]
pub struct MfaKey(Zeroizing<[u8; 32]>);

impl fmt::Debug for MfaKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MfaKey(…)")
    }
}

/// A string that is not 32 bytes of base64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("an MFA key is 32 bytes in base64 (standard or URL-safe, padded or not)")]
pub struct MfaKeyError;

impl MfaKey {
    /// The key from its base64 form (what [`MfaKey::generate`] prints).
    ///
    /// # Errors
    /// [`MfaKeyError`] unless `text` is 32 bytes in base64.
    pub fn from_base64(text: &str) -> Result<Self, MfaKeyError> {
        let text = text.trim();
        let mut bytes = URL_SAFE_NO_PAD
            .decode(text.trim_end_matches('='))
            .or_else(|_| STANDARD.decode(text))
            .map_err(|_| MfaKeyError)?;
        let key = <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| MfaKeyError);
        bytes.zeroize();
        Ok(Self(Zeroizing::new(key?)))
    }

    /// The key from its 32 bytes.
    #[must_use]
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// A new random key and its base64url form, to store as a secret.
    #[must_use]
    pub fn generate() -> (Self, String) {
        let mut bytes = [0u8; 32];
        fill_random(&mut bytes);
        let text = URL_SAFE_NO_PAD.encode(bytes);
        let key = Self::from_bytes(bytes);
        bytes.zeroize();
        (key, text)
    }

    /// The key that hashes recovery codes: derived, so the sealing key is used for one thing.
    fn recovery_key(&self) -> Zeroizing<[u8; 32]> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&*self.0).expect("HMAC takes any key");
        mac.update(b"keystead/recovery-codes/v1");
        Zeroizing::new(mac.finalize().into_bytes().into())
    }
}

/// The second-factor settings: the sealing keys and the step-up age.
#[derive(Debug, Clone)]
pub struct MfaConfig {
    /// The key new secrets are sealed with, then older keys that still open old secrets
    /// (rotation: add the new key first, keep the old ones until every secret was re-enrolled).
    keys: Vec<MfaKey>,
    /// How old a session's authentication may be on a step-up route.
    pub step_up_max_age: Duration,
    /// The issuer shown in authenticator apps (the app's name).
    pub issuer: Option<String>,
}

impl Default for MfaConfig {
    /// No key (TOTP and recovery codes answer 503 until one is configured; passkeys and
    /// step-up work without), step-up age [`DEFAULT_STEP_UP_MAX_AGE`].
    fn default() -> Self {
        Self {
            keys: Vec::new(),
            step_up_max_age: DEFAULT_STEP_UP_MAX_AGE,
            issuer: None,
        }
    }
}

impl MfaConfig {
    /// Settings with `key` sealing new secrets.
    #[must_use]
    pub fn new(key: MfaKey) -> Self {
        Self {
            keys: vec![key],
            ..Self::default()
        }
    }

    /// Also opens secrets sealed under `key` (an older key, during a rotation).
    #[must_use]
    pub fn with_previous_key(mut self, key: MfaKey) -> Self {
        self.keys.push(key);
        self
    }

    /// How old a session's authentication may be on a step-up route (at least one second).
    #[must_use]
    pub fn with_step_up_max_age(mut self, max_age: Duration) -> Self {
        self.step_up_max_age = max_age.max(Duration::SECOND);
        self
    }

    /// The issuer authenticator apps show next to the account (default: the app's host).
    #[must_use]
    pub fn with_issuer(mut self, issuer: &str) -> Self {
        self.issuer = Some(issuer.to_owned());
        self
    }

    /// Whether a key is configured.
    #[must_use]
    pub fn has_key(&self) -> bool {
        !self.keys.is_empty()
    }

    fn current_key(&self) -> Result<&MfaKey, AuthError> {
        self.keys.first().ok_or_else(|| {
            tracing::error!(
                "a TOTP or recovery code operation needs an MFA key: configure one with \
                 AuthBuilder::mfa (MfaConfig::new)"
            );
            AuthError::new(ErrorCode::Unavailable)
                .with_detail("Second factors are not configured on this server.")
        })
    }
}

/// A TOTP enrolment: what the user's authenticator app needs, shown once.
#[derive(Debug)]
pub struct TotpEnrolment {
    /// The secret in base32 (for typing it in).
    pub secret: SecretString,
    /// The `otpauth://totp/…` URI (what the QR code holds).
    pub otpauth_url: SecretString,
    /// The QR code of the URI, as an SVG document.
    pub qr_svg: String,
}

/// A first factor passed for a user who has a second one: the session waits for it.
#[derive(Debug)]
pub struct PendingSignIn {
    /// The token for the pending sign-in cookie (shown once, stored hashed).
    pub token: SecretString,
    /// Until when the second factor may be given.
    pub expires_at: OffsetDateTime,
    /// The second factors the user can give: `totp`, `recovery_code`, `passkey`.
    pub methods: Vec<&'static str>,
}

/// What a pending sign-in remembers.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct PendingData {
    /// The first factor: `password`, or the provider's id.
    method: String,
    /// Where the browser goes afterwards (provider sign-ins).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    next: Option<String>,
}

/// A sign-in completed by its second factor.
#[derive(Debug)]
pub struct CompletedSignIn {
    /// The user.
    pub user: User,
    /// The new session.
    pub session: CreatedSession,
    /// Where a provider sign-in asked to go afterwards.
    pub next: Option<String>,
}

/// A second factor given at sign-in or re-authentication.
#[derive(Debug, Clone, Copy)]
pub enum SecondFactor<'a> {
    /// A TOTP code.
    Totp(&'a str),
    /// A recovery code.
    RecoveryCode(&'a str),
}

impl SecondFactor<'_> {
    const fn name(&self) -> &'static str {
        match self {
            Self::Totp(_) => "totp",
            Self::RecoveryCode(_) => "recovery_code",
        }
    }
}

/// The second factors the user can give, in the contract's order.
pub(crate) fn methods(status: &MfaStatus) -> Vec<&'static str> {
    let mut methods = Vec::with_capacity(3);
    if status.totp {
        methods.push("totp");
    }
    if status.recovery_codes > 0 && status.has_second_factor() {
        methods.push("recovery_code");
    }
    if status.passkeys > 0 {
        methods.push("passkey");
    }
    methods
}

/// Starts a pending sign-in for `user_id` after the first factor `method`: a challenge of
/// [`PENDING_SIGN_IN_TTL`], and the token for its cookie.
pub(crate) async fn begin_pending_sign_in(
    store: &dyn crate::store::AuthStore,
    now: OffsetDateTime,
    user_id: UserId,
    status: &MfaStatus,
    method: &str,
    next: Option<String>,
    client: &ClientInfo,
) -> Result<PendingSignIn, AuthError> {
    let token = generate_token();
    let data = serde_json::to_string(&PendingData {
        method: method.to_owned(),
        next,
    })
    .map_err(|_| AuthError::new(ErrorCode::Internal))?;
    let challenge = Challenge {
        id: ChallengeId::new(),
        kind: ChallengeKind::MfaSignIn,
        token_hash: TokenHash::of(token.expose()),
        user_id: Some(user_id),
        data,
        created_at: now,
        expires_at: now + PENDING_SIGN_IN_TTL,
    };
    store.create_challenge(&challenge).await?;
    let methods = methods(status);
    audit::record(
        store,
        &AuditEvent {
            actor_id: Some(user_id),
            user_id: Some(user_id),
            data: json!({ "method": method, "methods": methods }),
            ..client.audit_event(AuditKind::MfaChallenged, now)
        },
    )
    .await;
    Ok(PendingSignIn {
        token,
        expires_at: challenge.expires_at,
        methods,
    })
}

/// Seals a TOTP secret for `user_id`: version, nonce, ciphertext (the user id is the
/// associated data, so a sealed secret copied to another user's row does not open).
fn seal(key: &MfaKey, user_id: UserId, secret: &[u8]) -> Result<Vec<u8>, AuthError> {
    let cipher = XChaCha20Poly1305::new((&*key.0).into());
    let mut nonce = [0u8; 24];
    fill_random(&mut nonce);
    let sealed = cipher
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: secret,
                aad: user_id.as_uuid().as_bytes(),
            },
        )
        .map_err(|_| AuthError::new(ErrorCode::Internal))?;
    let mut out = Vec::with_capacity(1 + nonce.len() + sealed.len());
    out.push(SEAL_V1);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&sealed);
    Ok(out)
}

/// Opens a sealed secret with any configured key.
fn open(
    config: &MfaConfig,
    user_id: UserId,
    sealed: &[u8],
) -> Result<Zeroizing<Vec<u8>>, AuthError> {
    config.current_key()?;
    let (Some(&SEAL_V1), Some(nonce), Some(ciphertext)) =
        (sealed.first(), sealed.get(1..25), sealed.get(25..))
    else {
        tracing::error!(user_id = %user_id, "a stored TOTP secret is not in a known format");
        return Err(AuthError::new(ErrorCode::Internal));
    };
    for key in &config.keys {
        let cipher = XChaCha20Poly1305::new((&*key.0).into());
        if let Ok(secret) = cipher.decrypt(
            XNonce::from_slice(nonce),
            Payload {
                msg: ciphertext,
                aad: user_id.as_uuid().as_bytes(),
            },
        ) {
            return Ok(Zeroizing::new(secret));
        }
    }
    tracing::error!(
        user_id = %user_id,
        "a stored TOTP secret opens under none of the configured MFA keys (was the key changed \
         without keeping the old one?)"
    );
    Err(AuthError::new(ErrorCode::Internal))
}

/// The TOTP generator for a secret.
fn totp(secret: &[u8], issuer: &str, account: &str) -> Result<TOTP, AuthError> {
    // The otpauth label may not hold ':'; neither an email address nor a cleaned issuer does.
    let issuer: String = issuer.chars().filter(|c| *c != ':').collect();
    let account: String = account.chars().filter(|c| *c != ':').collect();
    TOTP::new(
        Algorithm::SHA1,
        TOTP_DIGITS,
        1,
        TOTP_STEP_SECS.unsigned_abs(),
        secret.to_vec(),
        Some(issuer),
        account,
    )
    .map_err(|err| {
        tracing::error!(error = %err, "could not make a TOTP generator");
        AuthError::new(ErrorCode::Internal)
    })
}

/// A code as typed: digits only (spaces dropped), exactly [`TOTP_DIGITS`] of them.
fn normalize_code(code: &str) -> Option<String> {
    let digits: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    (digits.len() == TOTP_DIGITS && digits.bytes().all(|b| b.is_ascii_digit())).then_some(digits)
}

/// The step within one of `now`'s whose code is `code`, if any (constant-time comparisons).
fn matching_step(generator: &TOTP, code: &str, now: OffsetDateTime) -> Option<i64> {
    let current = now.unix_timestamp().div_euclid(TOTP_STEP_SECS);
    let mut found = None;
    for step in [current - 1, current, current + 1] {
        let Ok(at) = u64::try_from(step * TOTP_STEP_SECS) else {
            continue;
        };
        let expected = generator.generate(at);
        let same: bool = subtle::ConstantTimeEq::ct_eq(expected.as_bytes(), code.as_bytes()).into();
        if same && found.is_none() {
            found = Some(step);
        }
    }
    found
}

/// The recovery code alphabet (RFC 4648 base32, lower case).
const BASE32: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

/// Characters of a recovery code: 24 base32 characters, 120 bits.
const RECOVERY_CODE_CHARS: usize = 24;

/// A new recovery code: [`RECOVERY_CODE_CHARS`] base32 characters in groups of four
/// (`xxxx-xxxx-xxxx-xxxx-xxxx-xxxx`).
fn new_recovery_code() -> SecretString {
    let mut bytes = [0u8; RECOVERY_CODE_CHARS];
    fill_random(&mut bytes);
    let mut code = String::with_capacity(RECOVERY_CODE_CHARS + RECOVERY_CODE_CHARS / 4);
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 && i % 4 == 0 {
            code.push('-');
        }
        code.push(char::from(BASE32[usize::from(b & 31)]));
    }
    bytes.zeroize();
    SecretString::from(code)
}

/// A recovery code as typed: separators and spaces dropped, lower case; `None` unless
/// [`RECOVERY_CODE_CHARS`] base32 characters remain.
fn normalize_recovery_code(code: &str) -> Option<String> {
    let code: String = code
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .map(|c| c.to_ascii_lowercase())
        .collect();
    (code.len() == RECOVERY_CODE_CHARS && code.bytes().all(|b| BASE32.contains(&b))).then_some(code)
}

/// The stored form of a recovery code: HMAC-SHA-256 of the user's id and the code.
fn recovery_hash(key: &MfaKey, user_id: UserId, normalized: &str) -> TokenHash {
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(&*key.recovery_key()).expect("HMAC takes any key");
    mac.update(user_id.as_uuid().as_bytes());
    mac.update(normalized.as_bytes());
    TokenHash::from_bytes(mac.finalize().into_bytes().into())
}

/// The second-factor operations of an [`Auth`] (`auth.mfa()`).
#[derive(Debug, Clone, Copy)]
pub struct Mfa<'a> {
    auth: &'a Auth,
}

impl<'a> Mfa<'a> {
    pub(crate) const fn new(auth: &'a Auth) -> Self {
        Self { auth }
    }

    fn config(&self) -> &MfaConfig {
        &self.auth.inner.mfa
    }

    fn now(&self) -> OffsetDateTime {
        self.auth.clock().now()
    }

    async fn record(
        &self,
        user_id: UserId,
        kind: AuditKind,
        data: serde_json::Value,
        client: &ClientInfo,
    ) {
        audit::record(
            &**self.auth.store(),
            &AuditEvent {
                actor_id: Some(user_id),
                user_id: Some(user_id),
                data,
                ..client.audit_event(kind, self.now())
            },
        )
        .await;
    }

    /// What second factors the user has.
    ///
    /// # Errors
    /// Store errors.
    pub async fn status(&self, user_id: UserId) -> Result<MfaStatus, AuthError> {
        Ok(self.auth.store().mfa_status(user_id).await?)
    }

    /// Begins a TOTP enrolment: a new secret, sealed and stored unconfirmed (replacing an
    /// unconfirmed one), returned once for the authenticator app.
    ///
    /// # Errors
    /// `conflict` when the user has a confirmed TOTP factor (remove it first); `unavailable`
    /// without an [`MfaKey`]; store errors.
    pub async fn begin_totp(
        &self,
        user: &User,
        client: &ClientInfo,
    ) -> Result<TotpEnrolment, AuthError> {
        let key = self.config().current_key()?;
        let mut secret = Zeroizing::new([0u8; TOTP_SECRET_BYTES]);
        fill_random(&mut *secret);
        let issuer = self
            .config()
            .issuer
            .clone()
            .unwrap_or_else(|| self.auth.origin().host().to_owned());
        let generator = totp(&*secret, &issuer, user.email.as_str())?;
        let factor = TotpFactor {
            user_id: user.id,
            secret_ciphertext: seal(key, user.id, &*secret)?,
            created_at: self.now(),
            confirmed_at: None,
            last_used_step: None,
        };
        match self.auth.store().put_totp_factor(&factor).await {
            Ok(()) => {}
            Err(StoreError::Conflict(Conflict::TotpFactor)) => {
                return Err(AuthError::new(ErrorCode::Conflict)
                    .with_detail("TOTP is on already; remove it before enrolling another."));
            }
            Err(err) => return Err(err.into()),
        }
        let url = generator.get_url();
        let qr_svg = qrcode::QrCode::new(url.as_bytes())
            .map_err(|_| AuthError::new(ErrorCode::Internal))?
            .render::<qrcode::render::svg::Color<'_>>()
            .min_dimensions(200, 200)
            .build();
        self.record(
            user.id,
            AuditKind::MfaTotpEnrolmentStarted,
            json!({}),
            client,
        )
        .await;
        Ok(TotpEnrolment {
            secret: SecretString::from(generator.get_secret_base32()),
            otpauth_url: SecretString::from(url),
            qr_svg,
        })
    }

    /// Confirms the enrolment with a first code: the factor counts from now on, and a new
    /// set of recovery codes is issued (returned once).
    ///
    /// # Errors
    /// `invalid_code` for a wrong code; `invalid_request` when no enrolment is in progress;
    /// `rate_limited` past the attempts limit; `unavailable` without a key; store errors.
    pub async fn confirm_totp(
        &self,
        user: &User,
        code: &str,
        client: &ClientInfo,
    ) -> Result<Vec<SecretString>, AuthError> {
        let store = self.auth.store();
        let factor = match store.totp_factor(user.id).await? {
            Some(factor) if factor.confirmed_at.is_none() => factor,
            _ => {
                return Err(AuthError::new(ErrorCode::InvalidRequest)
                    .with_detail("No TOTP enrolment is in progress: start one first."));
            }
        };
        self.auth
            .accounts()
            .rate_limiter()
            .begin_second_factor(user.id)
            .await?;
        let secret = open(self.config(), user.id, &factor.secret_ciphertext)?;
        let generator = totp(&secret, "-", user.email.as_str())?;
        let step =
            normalize_code(code).and_then(|code| matching_step(&generator, &code, self.now()));
        let Some(step) = step else {
            self.record(
                user.id,
                AuditKind::MfaFailed,
                json!({ "method": "totp", "during": "enrolment" }),
                client,
            )
            .await;
            return Err(AuthError::new(ErrorCode::InvalidCode));
        };
        if !store.confirm_totp_factor(user.id, step, self.now()).await? {
            return Err(AuthError::new(ErrorCode::InvalidCode));
        }
        self.auth
            .accounts()
            .rate_limiter()
            .second_factor_succeeded(user.id)
            .await;
        self.record(user.id, AuditKind::MfaTotpEnabled, json!({}), client)
            .await;
        self.factors_changed(user.id).await;
        self.auth
            .notify(
                user,
                crate::mail::SecurityNotice::FactorAdded("an authenticator app (TOTP)"),
            )
            .await;
        self.new_recovery_codes(user, client).await
    }

    /// Removes the TOTP factor. When it was the user's last factor, the recovery codes go too.
    ///
    /// # Errors
    /// `not_found` when there is none; store errors.
    pub async fn remove_totp(&self, user: &User, client: &ClientInfo) -> Result<(), AuthError> {
        let store = self.auth.store();
        if !store.delete_totp_factor(user.id).await? {
            return Err(AuthError::new(ErrorCode::NotFound));
        }
        if !store.mfa_status(user.id).await?.has_second_factor() {
            store.delete_recovery_codes(user.id).await?;
        }
        self.record(user.id, AuditKind::MfaTotpDisabled, json!({}), client)
            .await;
        self.factors_changed(user.id).await;
        self.auth
            .notify(
                user,
                crate::mail::SecurityNotice::FactorRemoved("an authenticator app (TOTP)"),
            )
            .await;
        Ok(())
    }

    /// A new set of recovery codes (the old set is void), returned once.
    ///
    /// # Errors
    /// `conflict` for a user without a second factor (codes back one up); `unavailable`
    /// without a key; store errors.
    pub async fn regenerate_recovery_codes(
        &self,
        user: &User,
        client: &ClientInfo,
    ) -> Result<Vec<SecretString>, AuthError> {
        if !self.status(user.id).await?.has_second_factor() {
            return Err(AuthError::new(ErrorCode::Conflict)
                .with_detail("Recovery codes back up a second factor: set one up first."));
        }
        self.new_recovery_codes(user, client).await
    }

    async fn new_recovery_codes(
        &self,
        user: &User,
        client: &ClientInfo,
    ) -> Result<Vec<SecretString>, AuthError> {
        let key = self.config().current_key()?;
        let codes: Vec<SecretString> = (0..RECOVERY_CODE_COUNT)
            .map(|_| new_recovery_code())
            .collect();
        let hashes: Vec<TokenHash> = codes
            .iter()
            .map(|code| {
                let normalized = normalize_recovery_code(code.expose()).unwrap_or_default();
                recovery_hash(key, user.id, &normalized)
            })
            .collect();
        self.auth
            .store()
            .replace_recovery_codes(user.id, &hashes, self.now())
            .await?;
        self.record(
            user.id,
            AuditKind::MfaRecoveryCodesRegenerated,
            json!({ "count": codes.len() }),
            client,
        )
        .await;
        Ok(codes)
    }

    /// Checks a second factor of `user` (TOTP code or recovery code), using it up: a TOTP
    /// step or a recovery code is accepted once. Attempts are rate-limited per user.
    ///
    /// # Errors
    /// `invalid_code` for a wrong, replayed or used code (audited); `rate_limited`;
    /// `unavailable` without a key; store errors.
    pub async fn check(
        &self,
        user: &User,
        factor: SecondFactor<'_>,
        client: &ClientInfo,
    ) -> Result<(), AuthError> {
        let limiter = self.auth.accounts().rate_limiter();
        limiter.begin_second_factor(user.id).await?;
        let ok = match factor {
            SecondFactor::Totp(code) => self.check_totp(user, code).await?,
            SecondFactor::RecoveryCode(code) => self.use_recovery_code(user, code, client).await?,
        };
        if !ok {
            self.record(
                user.id,
                AuditKind::MfaFailed,
                json!({ "method": factor.name() }),
                client,
            )
            .await;
            return Err(AuthError::new(ErrorCode::InvalidCode));
        }
        limiter.second_factor_succeeded(user.id).await;
        Ok(())
    }

    async fn check_totp(&self, user: &User, code: &str) -> Result<bool, AuthError> {
        let store = self.auth.store();
        let Some(factor) = store.totp_factor(user.id).await? else {
            return Ok(false);
        };
        if factor.confirmed_at.is_none() {
            return Ok(false);
        }
        let Some(code) = normalize_code(code) else {
            return Ok(false);
        };
        let secret = open(self.config(), user.id, &factor.secret_ciphertext)?;
        let generator = totp(&secret, "-", user.email.as_str())?;
        match matching_step(&generator, &code, self.now()) {
            // The store refuses this step if it, or a later one, was used: a replay.
            Some(step) => Ok(store.use_totp_step(user.id, step).await?),
            None => Ok(false),
        }
    }

    async fn use_recovery_code(
        &self,
        user: &User,
        code: &str,
        client: &ClientInfo,
    ) -> Result<bool, AuthError> {
        self.config().current_key()?;
        let Some(normalized) = normalize_recovery_code(code) else {
            return Ok(false);
        };
        let now = self.now();
        for key in &self.config().keys {
            let hash = recovery_hash(key, user.id, &normalized);
            if self
                .auth
                .store()
                .use_recovery_code(user.id, &hash, now)
                .await?
            {
                let left = self.status(user.id).await?.recovery_codes;
                self.record(
                    user.id,
                    AuditKind::MfaRecoveryCodeUsed,
                    json!({ "left": left }),
                    client,
                )
                .await;
                self.auth
                    .notify(user, crate::mail::SecurityNotice::RecoveryCodeUsed { left })
                    .await;
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// The user of a pending sign-in (the token from its cookie), if it is live.
    ///
    /// # Errors
    /// `unauthenticated` when there is none (never started, expired, or completed); store
    /// errors.
    pub async fn pending_user(&self, token: Option<&str>) -> Result<User, AuthError> {
        let challenge = self.pending(token).await?;
        let user_id = challenge
            .user_id
            .ok_or(AuthError::new(ErrorCode::Unauthenticated))?;
        self.auth
            .store()
            .user_by_id(user_id)
            .await?
            .ok_or(AuthError::new(ErrorCode::Unauthenticated))
    }

    async fn pending(&self, token: Option<&str>) -> Result<Challenge, AuthError> {
        let no_pending = || {
            AuthError::new(ErrorCode::Unauthenticated)
                .with_detail("No sign-in is waiting for a second factor: sign in again.")
        };
        let token = token.ok_or_else(no_pending)?;
        self.auth
            .store()
            .challenge(ChallengeKind::MfaSignIn, &TokenHash::of(token), self.now())
            .await?
            .ok_or_else(no_pending)
    }

    /// Completes a pending sign-in with a TOTP or recovery code: checks the code, takes the
    /// pending sign-in (once) and creates the session.
    ///
    /// # Errors
    /// `unauthenticated` without a live pending sign-in; `invalid_code`; `rate_limited`;
    /// `account_disabled`; store errors.
    pub async fn verify(
        &self,
        token: Option<&str>,
        factor: SecondFactor<'_>,
        client: &ClientInfo,
    ) -> Result<CompletedSignIn, AuthError> {
        let user = self.pending_user(token).await?;
        self.check(&user, factor, client).await?;
        self.complete_sign_in(token, factor.name(), client).await
    }

    /// Completes a pending sign-in whose second factor (`method`: `totp`, `recovery_code`,
    /// `passkey`) the caller has checked: takes it (of concurrent calls exactly one succeeds)
    /// and creates the session.
    ///
    /// # Errors
    /// `unauthenticated` without a live pending sign-in; `account_disabled`; store errors.
    pub async fn complete_sign_in(
        &self,
        token: Option<&str>,
        method: &str,
        client: &ClientInfo,
    ) -> Result<CompletedSignIn, AuthError> {
        let token = token.ok_or(AuthError::new(ErrorCode::Unauthenticated))?;
        let challenge = self
            .auth
            .store()
            .take_challenge(ChallengeKind::MfaSignIn, &TokenHash::of(token), self.now())
            .await?
            .ok_or(AuthError::new(ErrorCode::Unauthenticated))?;
        let user_id = challenge
            .user_id
            .ok_or(AuthError::new(ErrorCode::Unauthenticated))?;
        let data: PendingData = serde_json::from_str(&challenge.data).map_err(|_| {
            tracing::error!("a pending sign-in's data is not readable");
            AuthError::new(ErrorCode::Internal)
        })?;
        let session = self
            .auth
            .sessions()
            .create(user_id, client.session_meta())
            .await?;
        let user = self
            .auth
            .store()
            .user_by_id(user_id)
            .await?
            .ok_or(AuthError::new(ErrorCode::Unauthenticated))?;
        self.record(
            user_id,
            AuditKind::SignInSucceeded,
            json!({
                "session_id": session.session.id.to_string(),
                "method": data.method,
                "second_factor": method,
            }),
            client,
        )
        .await;
        self.auth.notify_new_device(&user, &session.session).await;
        Ok(CompletedSignIn {
            user,
            session,
            next: data.next,
        })
    }

    /// Re-authentication (step-up) of session `session_id`'s user with a second factor.
    ///
    /// # Errors
    /// As [`Mfa::check`]; `unauthenticated` when the session is gone.
    pub async fn reauthenticate(
        &self,
        user: &User,
        session_id: crate::SessionId,
        factor: SecondFactor<'_>,
        client: &ClientInfo,
    ) -> Result<OffsetDateTime, AuthError> {
        self.check(user, factor, client).await?;
        let at = self.auth.sessions().reauthenticated(session_id).await?;
        self.record(
            user.id,
            AuditKind::Reauthenticated,
            json!({ "method": factor.name() }),
            client,
        )
        .await;
        Ok(at)
    }

    /// After a factor was added or removed: every instance re-reads the user's sessions (an
    /// organization's MFA policy may now admit or refuse them).
    async fn factors_changed(&self, user_id: UserId) {
        self.auth
            .publish(crate::tokens::Change::UserChanged { user_id })
            .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_secrets_open_only_for_their_user_and_key() {
        let (key, _) = MfaKey::generate();
        let user = UserId::new();
        let sealed = seal(&key, user, b"twenty bytes secret!").unwrap();
        let config = MfaConfig::new(key.clone());
        assert_eq!(
            &**open(&config, user, &sealed).unwrap(),
            b"twenty bytes secret!"
        );
        // Another user's row, another key, a flipped bit: nothing opens.
        assert!(open(&config, UserId::new(), &sealed).is_err());
        let (other, _) = MfaKey::generate();
        assert!(open(&MfaConfig::new(other.clone()), user, &sealed).is_err());
        let mut flipped = sealed.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert!(open(&config, user, &flipped).is_err());
        // During a rotation the old key still opens it.
        let rotated = MfaConfig::new(other).with_previous_key(key);
        assert!(open(&rotated, user, &sealed).is_ok());
    }

    #[test]
    fn keys_parse_from_base64_only_at_32_bytes() {
        let (_, text) = MfaKey::generate();
        assert!(MfaKey::from_base64(&text).is_ok());
        assert!(MfaKey::from_base64(&STANDARD.encode([7u8; 32])).is_ok());
        assert_eq!(MfaKey::from_base64("c2hvcnQ").unwrap_err(), MfaKeyError);
        assert_eq!(
            MfaKey::from_base64("not base64 at all!").unwrap_err(),
            MfaKeyError
        );
    }

    #[test]
    fn rfc_6238_vectors_and_one_step_of_skew() {
        // RFC 6238 appendix B, SHA-1, secret "12345678901234567890", 8 digits there; the
        // 6-digit codes are their last six digits.
        let generator = totp(b"12345678901234567890", "x", "a@example.com").unwrap();
        assert_eq!(generator.generate(59), "287082");
        assert_eq!(generator.generate(1_111_111_109), "081804");
        assert_eq!(generator.generate(1_234_567_890), "005924");
        let now = OffsetDateTime::from_unix_timestamp(1_234_567_890).unwrap();
        let step = 1_234_567_890 / 30;
        assert_eq!(matching_step(&generator, "005924", now), Some(step));
        let before = generator.generate(u64::try_from((step - 1) * 30).unwrap());
        let after = generator.generate(u64::try_from((step + 1) * 30).unwrap());
        let too_late = generator.generate(u64::try_from((step + 2) * 30).unwrap());
        assert_eq!(matching_step(&generator, &before, now), Some(step - 1));
        assert_eq!(matching_step(&generator, &after, now), Some(step + 1));
        assert_eq!(matching_step(&generator, &too_late, now), None);
    }

    #[test]
    fn codes_are_normalized_strictly() {
        assert_eq!(normalize_code(" 123 456 ").as_deref(), Some("123456"));
        assert_eq!(normalize_code("12345"), None);
        assert_eq!(normalize_code("12345a"), None);
        assert_eq!(normalize_code("１２３４５６"), None);
        let code = new_recovery_code();
        assert_eq!(code.expose().len(), 29);
        let upper = code.expose().to_ascii_uppercase().replace('-', " ");
        assert_eq!(
            normalize_recovery_code(&upper),
            normalize_recovery_code(code.expose())
        );
        assert_eq!(normalize_recovery_code("abcd-efgh"), None);
        assert_eq!(
            normalize_recovery_code("abcd-efgh-ijkl-mnop-qrst-uvw1"),
            None
        );
        assert!(normalize_recovery_code("abcd-efgh-ijkl-mnop-qrst-uvwx").is_some());
    }

    #[test]
    fn recovery_hashes_depend_on_key_user_and_code() {
        let (key, _) = MfaKey::generate();
        let (other, _) = MfaKey::generate();
        let user = UserId::new();
        let code = "abcdefghijklmnopqrstuvwx";
        let a = recovery_hash(&key, user, code);
        assert_eq!(a, recovery_hash(&key, user, code));
        assert_ne!(a, recovery_hash(&other, user, code));
        assert_ne!(a, recovery_hash(&key, UserId::new(), code));
        assert_ne!(a, recovery_hash(&key, user, "abcdefghijklmnopqrstuvwy"));
    }
}
