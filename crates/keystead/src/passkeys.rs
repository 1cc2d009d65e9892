//! Passkeys (WebAuthn credentials): registration, naming, removal, and authentication, both
//! for a known user (re-authentication, a second factor) and discoverable (passwordless
//! sign-in, the browser picks the account).
//!
//! The relying party is the app: its id is the host of the app's origin
//! ([`Auth::origin`]) and the only origin accepted is that origin. Each ceremony's state
//! (the challenge, what the authenticator must answer) is kept in the store as a
//! [`Challenge`] of kind [`ChallengeKind::PasskeyRegistration`] or
//! [`ChallengeKind::PasskeyAuthentication`] for [`CEREMONY_LIFETIME`], found by the SHA-256
//! of a random token the client holds (`ceremony`), and taken once: a replayed, expired or
//! unknown ceremony is refused like a wrong answer (`invalid_code`).
//!
//! Registration asks for a discoverable credential (a resident key), so the same passkey can
//! sign the user in without an email or password. User verification (a PIN or biometric on
//! the authenticator) is required by the WebAuthn library's passkey type: a passkey then is a
//! factor of possession and of knowledge or inherence at once.
//!
//! ```no_run
//! # async fn run(auth: keystead::Auth, user: keystead::User) -> Result<(), keystead::AuthError> {
//! let started = auth.passkeys().start_registration(&user).await?;
//! // Send `started.ceremony` and `started.options` to the browser, which answers with
//! // `navigator.credentials.create(options)`; then `finish_registration`.
//! # let _ = started;
//! # Ok(()) }
//! ```

use std::fmt;

use serde_json::json;
use time::OffsetDateTime;
use webauthn_rs::prelude::{
    CreationChallengeResponse, DiscoverableAuthentication, DiscoverableKey, PasskeyAuthentication,
    PasskeyRegistration, PublicKeyCredential, RegisterPublicKeyCredential,
    RequestChallengeResponse, Url, Webauthn, WebauthnBuilder, WebauthnError,
};

use webauthn_rs_proto::ResidentKeyRequirement;

use crate::accounts::ClientInfo;
use crate::id::{ChallengeId, PasskeyId};
use crate::model::{Challenge, ChallengeKind, Passkey};
use crate::secret::generate_token;
use crate::web::AppOrigin;
use crate::{AuditEvent, AuditKind, Auth, AuthError, ErrorCode, TokenHash, User, UserId};

/// How long a ceremony may take, from its options to its answer: 5 minutes.
pub const CEREMONY_LIFETIME: time::Duration = time::Duration::minutes(5);

/// The name a passkey gets when none is given.
pub const DEFAULT_PASSKEY_NAME: &str = "Passkey";

/// The longest passkey name, in characters.
pub const MAX_PASSKEY_NAME_CHARS: usize = 100;

/// The relying party of the app at `origin`: id = its host, origin = itself. `None` when the
/// host is an IP address, which WebAuthn does not accept as a relying party id.
pub(crate) fn relying_party(origin: &AppOrigin) -> Option<Webauthn> {
    let url = Url::parse(origin.as_str()).ok()?;
    let built = WebauthnBuilder::new(origin.host(), &url)
        .and_then(|builder| {
            builder
                .timeout(std::time::Duration::from_secs(
                    CEREMONY_LIFETIME.whole_seconds().unsigned_abs(),
                ))
                .build()
        })
        .ok();
    if built.is_none() {
        tracing::warn!(
            origin = origin.as_str(),
            "passkeys are off: the app's origin has no host name a WebAuthn relying party can use"
        );
    }
    built
}

/// A ceremony begun: the token the client sends back with its answer, and the options the
/// browser's WebAuthn call takes.
#[derive(Debug)]
pub struct CeremonyStart<T> {
    /// The random token naming the ceremony (base64url); sent back as `ceremony`.
    pub ceremony: String,
    /// `{publicKey: {...}}`: the argument of `navigator.credentials.create()` (registration)
    /// or `navigator.credentials.get()` (authentication).
    pub options: T,
}

/// A passkey answer that verified: whose passkey it was, and the passkey after the use.
#[derive(Debug, Clone)]
pub struct VerifiedPasskey {
    /// The passkey's user.
    pub user: User,
    /// The passkey, with its new counter, backup state and `last_used_at`.
    pub passkey: Passkey,
}

/// The passkey flows of an [`Auth`] ([`Auth::passkeys`]).
pub struct Passkeys<'a> {
    auth: &'a Auth,
}

impl fmt::Debug for Passkeys<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Passkeys")
            .field("enabled", &self.auth.inner.webauthn.is_some())
            .finish()
    }
}

/// The answer to a wrong, replayed or expired ceremony answer.
fn invalid_code() -> AuthError {
    AuthError::new(ErrorCode::InvalidCode)
}

/// A passkey name as given (trimmed), or `invalid_request` when it is empty or longer than
/// [`MAX_PASSKEY_NAME_CHARS`] characters.
///
/// # Errors
/// As above.
pub fn passkey_name(name: Option<&str>) -> Result<String, AuthError> {
    let name = name.map_or(DEFAULT_PASSKEY_NAME, str::trim);
    let chars = name.chars().count();
    if chars == 0 || chars > MAX_PASSKEY_NAME_CHARS {
        return Err(
            AuthError::new(ErrorCode::InvalidRequest).with_detail(format!(
                "A passkey name is 1 to {MAX_PASSKEY_NAME_CHARS} characters."
            )),
        );
    }
    Ok(name.to_owned())
}

/// The backup flags the WebAuthn library keeps in a credential it serialized:
/// `(backup_eligible, backup_state)`.
fn backup_flags(credential: &webauthn_rs::prelude::Passkey) -> (bool, bool) {
    let value = serde_json::to_value(credential).unwrap_or_default();
    let flag = |name: &str| value["cred"][name].as_bool().unwrap_or(false);
    (flag("backup_eligible"), flag("backup_state"))
}

impl<'a> Passkeys<'a> {
    pub(crate) const fn new(auth: &'a Auth) -> Self {
        Self { auth }
    }

    /// Whether passkeys work for this app (its origin has a host name, not an IP address).
    #[must_use]
    pub fn enabled(&self) -> bool {
        self.auth.inner.webauthn.is_some()
    }

    fn webauthn(&self) -> Result<&'a Webauthn, AuthError> {
        self.auth.inner.webauthn.as_ref().ok_or_else(|| {
            AuthError::new(ErrorCode::NotFound)
                .with_detail("Passkeys need the app to be served under a host name.")
        })
    }

    fn now(&self) -> OffsetDateTime {
        self.auth.clock().now()
    }

    /// Stores a ceremony's state and answers the token that names it.
    async fn begin(
        &self,
        kind: ChallengeKind,
        user_id: Option<UserId>,
        state: &impl serde::Serialize,
    ) -> Result<String, AuthError> {
        let data = serde_json::to_string(state).map_err(|err| {
            tracing::error!(error = %err, "could not serialize a WebAuthn ceremony");
            AuthError::new(ErrorCode::Internal)
        })?;
        let token = generate_token();
        let now = self.now();
        self.auth
            .store()
            .create_challenge(&Challenge {
                id: ChallengeId::new(),
                kind,
                token_hash: TokenHash::of(token.expose()),
                user_id,
                data,
                created_at: now,
                expires_at: now + CEREMONY_LIFETIME,
            })
            .await?;
        Ok(token.expose().to_owned())
    }

    /// Takes the ceremony `token` of `kind` (once; `invalid_code` when unknown, expired or
    /// used) and reads its state.
    async fn take<T: serde::de::DeserializeOwned>(
        &self,
        kind: ChallengeKind,
        token: &str,
    ) -> Result<(Challenge, T), AuthError> {
        let challenge = self
            .auth
            .store()
            .take_challenge(kind, &TokenHash::of(token), self.now())
            .await?
            .ok_or_else(|| {
                invalid_code().with_detail("The ceremony is unknown, used or expired.")
            })?;
        let state = serde_json::from_str(&challenge.data).map_err(|err| {
            tracing::warn!(error = %err, "unreadable WebAuthn ceremony state");
            invalid_code()
        })?;
        Ok((challenge, state))
    }

    /// Begins registering a passkey for `user`: a discoverable credential (resident key
    /// required) with user verification, excluding the credentials the user has (an
    /// authenticator that holds one of them declines).
    ///
    /// # Errors
    /// `not_found` when passkeys are off; store errors.
    pub async fn start_registration(
        &self,
        user: &User,
    ) -> Result<CeremonyStart<CreationChallengeResponse>, AuthError> {
        let webauthn = self.webauthn()?;
        let existing = self.auth.store().passkeys_for_user(user.id).await?;
        let exclude = existing
            .iter()
            .map(|p| p.credential_id.clone().into())
            .collect::<Vec<_>>();
        let display_name = user.name.as_deref().unwrap_or(user.email.as_str());
        let (mut options, state) = webauthn
            .start_passkey_registration(
                *user.id.as_uuid(),
                user.email.as_str(),
                display_name,
                (!exclude.is_empty()).then_some(exclude),
            )
            .map_err(|err| {
                tracing::error!(error = %err, "could not start a passkey registration");
                AuthError::new(ErrorCode::Internal)
            })?;
        // A discoverable credential, so the passkey can sign in without a username.
        if let Some(selection) = options.public_key.authenticator_selection.as_mut() {
            selection.resident_key = Some(ResidentKeyRequirement::Required);
            selection.require_resident_key = true;
        }
        let ceremony = self
            .begin(ChallengeKind::PasskeyRegistration, Some(user.id), &state)
            .await?;
        Ok(CeremonyStart { ceremony, options })
    }

    /// Completes a registration of `user_id`'s begun with
    /// [`start_registration`](Self::start_registration): verifies the authenticator's answer
    /// and stores the passkey under `name` (default [`DEFAULT_PASSKEY_NAME`]).
    ///
    /// # Errors
    /// `invalid_request` for a bad name (checked first: the ceremony is kept);
    /// `invalid_code` for an unknown, used, expired or other user's ceremony and for an answer
    /// that does not verify (wrong challenge, origin, relying party, signature…); `conflict`
    /// for a credential registered already; store errors.
    pub async fn finish_registration(
        &self,
        user: &User,
        ceremony: &str,
        name: Option<&str>,
        credential: &RegisterPublicKeyCredential,
        client: &ClientInfo,
    ) -> Result<Passkey, AuthError> {
        let webauthn = self.webauthn()?;
        let user_id = user.id;
        let name = passkey_name(name)?;
        let (challenge, state): (_, PasskeyRegistration) = self
            .take(ChallengeKind::PasskeyRegistration, ceremony)
            .await?;
        if challenge.user_id != Some(user_id) {
            return Err(invalid_code());
        }
        let registered = webauthn
            .finish_passkey_registration(credential, &state)
            .map_err(|err| {
                tracing::debug!(error = %err, "passkey registration refused");
                invalid_code().with_detail("The authenticator's answer did not verify.")
            })?;
        let serialized = serde_json::to_string(&registered).map_err(|err| {
            tracing::error!(error = %err, "could not serialize a passkey");
            AuthError::new(ErrorCode::Internal)
        })?;
        let (backup_eligible, backup_state) = backup_flags(&registered);
        let now = self.now();
        let passkey = Passkey {
            id: PasskeyId::new(),
            user_id,
            credential_id: registered.cred_id().as_ref().to_vec(),
            name,
            credential: serialized,
            backup_eligible,
            backup_state,
            created_at: now,
            last_used_at: None,
        };
        self.auth.store().create_passkey(&passkey).await?;
        self.audit(
            AuditKind::PasskeyAdded,
            Some(user_id),
            json!({ "passkey_id": passkey.id.to_string(), "name": passkey.name }),
            client,
        )
        .await;
        self.factors_changed(user_id).await;
        self.auth
            .notify(
                user,
                crate::mail::SecurityNotice::PasskeyAdded(passkey.name.clone()),
            )
            .await;
        Ok(passkey)
    }

    /// The user's passkeys, oldest first.
    ///
    /// # Errors
    /// Store errors.
    pub async fn list(&self, user_id: UserId) -> Result<Vec<Passkey>, AuthError> {
        Ok(self.auth.store().passkeys_for_user(user_id).await?)
    }

    /// Renames one of the user's passkeys; answers it renamed.
    ///
    /// # Errors
    /// `invalid_request` for a name that is empty or longer than 100 characters; `not_found`
    /// when the user has no passkey `id` (another user's included); store errors.
    pub async fn rename(
        &self,
        user_id: UserId,
        id: PasskeyId,
        name: &str,
        client: &ClientInfo,
    ) -> Result<Passkey, AuthError> {
        let name = passkey_name(Some(name))?;
        if !self.auth.store().rename_passkey(user_id, id, &name).await? {
            return Err(AuthError::new(ErrorCode::NotFound));
        }
        let passkey = self
            .list(user_id)
            .await?
            .into_iter()
            .find(|p| p.id == id)
            .ok_or(AuthError::new(ErrorCode::NotFound))?;
        self.audit(
            AuditKind::PasskeyRenamed,
            Some(user_id),
            json!({ "passkey_id": id.to_string(), "name": passkey.name }),
            client,
        )
        .await;
        Ok(passkey)
    }

    /// Removes one of the user's passkeys. When it was the user's last second factor, the
    /// recovery codes go too (they only back a factor up).
    ///
    /// # Errors
    /// `not_found` when the user has no passkey `id` (another user's included); store errors.
    pub async fn remove(
        &self,
        user: &User,
        id: PasskeyId,
        client: &ClientInfo,
    ) -> Result<(), AuthError> {
        let store = self.auth.store();
        let name = store
            .passkeys_for_user(user.id)
            .await?
            .into_iter()
            .find(|p| p.id == id)
            .map(|p| p.name);
        if !store.delete_passkey(user.id, id).await? {
            return Err(AuthError::new(ErrorCode::NotFound));
        }
        if !store.mfa_status(user.id).await?.has_second_factor() {
            store.delete_recovery_codes(user.id).await?;
        }
        self.audit(
            AuditKind::PasskeyRemoved,
            Some(user.id),
            json!({ "passkey_id": id.to_string(), "name": name }),
            client,
        )
        .await;
        self.factors_changed(user.id).await;
        self.auth
            .notify(
                user,
                crate::mail::SecurityNotice::PasskeyRemoved(name.unwrap_or_default()),
            )
            .await;
        Ok(())
    }

    /// After a passkey was added or removed: every instance re-reads the user's sessions (an
    /// organization's MFA policy may now admit or refuse them).
    async fn factors_changed(&self, user_id: UserId) {
        self.auth
            .publish(crate::tokens::Change::UserChanged { user_id })
            .await;
    }

    /// Begins an authentication. For `Some(user_id)`, with that user's passkeys (the browser
    /// offers only those; `invalid_request` when the user has none); for `None`, discoverable
    /// (passwordless): the authenticator picks the account, and its answer names the user.
    ///
    /// # Errors
    /// `not_found` when passkeys are off; `invalid_request` for a user without passkeys;
    /// store errors.
    pub async fn start_authentication(
        &self,
        user_id: Option<UserId>,
    ) -> Result<CeremonyStart<RequestChallengeResponse>, AuthError> {
        let webauthn = self.webauthn()?;
        let internal = |err: WebauthnError| {
            tracing::error!(error = %err, "could not start a passkey authentication");
            AuthError::new(ErrorCode::Internal)
        };
        match user_id {
            Some(user_id) => {
                let credentials = self
                    .list(user_id)
                    .await?
                    .iter()
                    .filter_map(|p| stored_credential(p).ok())
                    .collect::<Vec<_>>();
                if credentials.is_empty() {
                    return Err(AuthError::new(ErrorCode::InvalidRequest)
                        .with_detail("The user has no passkey."));
                }
                let (options, state) = webauthn
                    .start_passkey_authentication(&credentials)
                    .map_err(internal)?;
                let ceremony = self
                    .begin(ChallengeKind::PasskeyAuthentication, Some(user_id), &state)
                    .await?;
                Ok(CeremonyStart { ceremony, options })
            }
            None => {
                let (options, state) = webauthn
                    .start_discoverable_authentication()
                    .map_err(internal)?;
                let ceremony = self
                    .begin(ChallengeKind::PasskeyAuthentication, None, &state)
                    .await?;
                Ok(CeremonyStart { ceremony, options })
            }
        }
    }

    /// Completes an authentication begun with
    /// [`start_authentication`](Self::start_authentication): verifies the assertion against
    /// the stored passkey (signature, challenge, origin, relying party, user verification, and
    /// the signature counter, which must grow when the authenticator keeps one), then records
    /// the use (counter, backup state, time). A refused answer is audited (`mfa.failed`).
    ///
    /// # Errors
    /// `invalid_code` for an unknown, used or expired ceremony, an unknown credential, a user
    /// handle that is not the passkey's user, a credential of another user than the
    /// ceremony's, and an assertion that does not verify; store errors.
    pub async fn finish_authentication(
        &self,
        ceremony: &str,
        credential: &PublicKeyCredential,
        client: &ClientInfo,
    ) -> Result<VerifiedPasskey, AuthError> {
        let webauthn = self.webauthn()?;
        let challenge = self
            .auth
            .store()
            .take_challenge(
                ChallengeKind::PasskeyAuthentication,
                &TokenHash::of(ceremony),
                self.now(),
            )
            .await?
            .ok_or_else(|| {
                invalid_code().with_detail("The ceremony is unknown, used or expired.")
            })?;
        let stored = self
            .auth
            .store()
            .passkey_by_credential_id(credential.get_credential_id())
            .await?;
        let Some(stored) = stored else {
            self.refused(challenge.user_id, None, "unknown_credential", client)
                .await;
            return Err(invalid_code());
        };
        let refuse = |reason: &'static str| async move {
            self.refused(Some(stored.user_id), Some(stored.id), reason, client)
                .await;
            invalid_code()
        };
        if challenge.user_id.is_some_and(|u| u != stored.user_id) {
            return Err(refuse("other_user").await);
        }
        let Ok(mut webauthn_passkey) = stored_credential(&stored) else {
            return Err(refuse("unreadable_credential").await);
        };
        let result = match challenge.user_id {
            Some(_) => serde_json::from_str::<PasskeyAuthentication>(&challenge.data)
                .map_err(|_| WebauthnError::InvalidUserUniqueId)
                .and_then(|state| webauthn.finish_passkey_authentication(credential, &state)),
            None => {
                // Discoverable: the user handle the authenticator returns must be the
                // passkey's user.
                match webauthn.identify_discoverable_authentication(credential) {
                    Ok((handle, _)) if handle == *stored.user_id.as_uuid() => {}
                    _ => return Err(refuse("user_handle").await),
                }
                serde_json::from_str::<DiscoverableAuthentication>(&challenge.data)
                    .map_err(|_| WebauthnError::InvalidUserUniqueId)
                    .and_then(|state| {
                        webauthn.finish_discoverable_authentication(
                            credential,
                            state,
                            &[DiscoverableKey::from(&webauthn_passkey)],
                        )
                    })
            }
        };
        let result = match result {
            Ok(result) => result,
            Err(err) => {
                tracing::debug!(error = %err, "passkey assertion refused");
                let reason = match err {
                    WebauthnError::CredentialPossibleCompromise => "counter",
                    _ => "assertion",
                };
                return Err(refuse(reason).await);
            }
        };
        let now = self.now();
        webauthn_passkey.update_credential(&result);
        let serialized = serde_json::to_string(&webauthn_passkey).map_err(|err| {
            tracing::error!(error = %err, "could not serialize a passkey");
            AuthError::new(ErrorCode::Internal)
        })?;
        let (backup_eligible, backup_state) = backup_flags(&webauthn_passkey);
        self.auth
            .store()
            .record_passkey_use(stored.id, &serialized, backup_state, now)
            .await?;
        let user = self
            .auth
            .store()
            .user_by_id(stored.user_id)
            .await?
            .ok_or_else(invalid_code)?;
        Ok(VerifiedPasskey {
            user,
            passkey: Passkey {
                credential: serialized,
                backup_eligible: stored.backup_eligible || backup_eligible,
                backup_state,
                last_used_at: Some(now),
                ..stored
            },
        })
    }

    /// Audits a refused passkey answer.
    async fn refused(
        &self,
        user_id: Option<UserId>,
        passkey_id: Option<PasskeyId>,
        reason: &str,
        client: &ClientInfo,
    ) {
        self.audit(
            AuditKind::MfaFailed,
            user_id,
            json!({
                "method": "passkey",
                "reason": reason,
                "passkey_id": passkey_id.map(|id| id.to_string()),
            }),
            client,
        )
        .await;
    }

    async fn audit(
        &self,
        kind: AuditKind,
        user_id: Option<UserId>,
        data: serde_json::Value,
        client: &ClientInfo,
    ) {
        crate::audit::record(
            &**self.auth.store(),
            &AuditEvent {
                actor_id: user_id,
                user_id,
                data,
                ..client.audit_event(kind, self.now())
            },
        )
        .await;
    }
}

/// The WebAuthn library's credential of a stored passkey.
fn stored_credential(passkey: &Passkey) -> Result<webauthn_rs::prelude::Passkey, AuthError> {
    serde_json::from_str(&passkey.credential).map_err(|err| {
        tracing::warn!(passkey_id = %passkey.id, error = %err, "unreadable stored passkey");
        invalid_code()
    })
}

impl Auth {
    /// The passkey flows: registration, the user's list, renaming, removal, authentication.
    #[must_use]
    pub const fn passkeys(&self) -> Passkeys<'_> {
        Passkeys::new(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_one_to_a_hundred_characters() {
        assert_eq!(passkey_name(None).unwrap(), "Passkey");
        assert_eq!(passkey_name(Some("  MacBook  ")).unwrap(), "MacBook");
        assert_eq!(
            passkey_name(Some(&"é".repeat(100)))
                .unwrap()
                .chars()
                .count(),
            100
        );
        for bad in ["", "   ", &"x".repeat(101)] {
            assert_eq!(
                passkey_name(Some(bad)).unwrap_err().code,
                ErrorCode::InvalidRequest,
                "{bad:?}"
            );
        }
    }

    #[test]
    fn the_relying_party_is_the_app_host() {
        assert!(relying_party(&AppOrigin::parse("https://app.example.com").unwrap()).is_some());
        assert!(relying_party(&AppOrigin::parse("http://localhost:3000").unwrap()).is_some());
        assert!(relying_party(&AppOrigin::parse("http://127.0.0.1:3000").unwrap()).is_none());
    }
}
