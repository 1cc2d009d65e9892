//! What an operator does by hand (the `authctl` command line): find, create, disable, enable
//! and delete users, mark an email verified, mail a reset link, end a user's sessions, revoke
//! an API token, change a member's role, rotate or retire signing keys.
//!
//! Every change goes through the same rules as the HTTP flows (the last-owner rule, the
//! password policy, the spreading of changes to every instance through the change log and
//! feed) and writes an audit event naming the operator (`data.operator`). Changes that other
//! instances must see are recorded in the change log before the call returns, so a command that
//! exits at once loses none of them.

use serde_json::json;
use uuid::Uuid;

use crate::audit;
use crate::tokens::Change;
use crate::{
    ApiTokenId, ApiTokenRecord, AuditEvent, AuditKind, Auth, AuthError, Email, ErrorCode,
    Membership, NewUser, OrgId, Role, SecretString, StoreError, User, UserId,
};

/// An operator's view of an [`Auth`]: [`Auth::admin`].
#[derive(Debug, Clone)]
pub struct Admin<'a> {
    auth: &'a Auth,
    operator: String,
}

/// A user to create by hand.
#[derive(Debug, Clone)]
pub struct NewAccount {
    /// The email address (normalized and checked).
    pub email: String,
    /// The display name.
    pub name: Option<String>,
    /// A first password (checked against the policy, then hashed); `None`: the user sets one
    /// through a reset link.
    pub password: Option<SecretString>,
    /// Whether to mark the email verified now.
    pub verified: bool,
    /// The user's id at another provider (see [`User::external_id`]).
    pub external_id: Option<String>,
}

impl Auth {
    /// The operations of an operator named `operator` (written into every audit event).
    #[must_use]
    pub fn admin(&self, operator: &str) -> Admin<'_> {
        Admin {
            auth: self,
            operator: operator.to_owned(),
        }
    }

    /// The user with this external id: their id at the provider they were imported from
    /// (Clerk's `user_…`, Auth0's `auth0|…`). This is how an app maps the ids its own tables
    /// still hold to users; [`User::external_id`] maps back.
    ///
    /// # Errors
    /// Store errors.
    pub async fn user_by_external_id(&self, external_id: &str) -> Result<Option<User>, AuthError> {
        Ok(self.store().user_by_external_id(external_id).await?)
    }
}

fn not_found(what: &str) -> AuthError {
    AuthError::new(ErrorCode::NotFound).with_detail(format!("No such {what}."))
}

impl Admin<'_> {
    fn event(&self, kind: AuditKind, user_id: Option<UserId>, org_id: Option<OrgId>) -> AuditEvent {
        AuditEvent {
            user_id,
            org_id,
            data: json!({ "operator": self.operator }),
            ..AuditEvent::new(kind, self.auth.clock().now())
        }
    }

    async fn record(&self, mut event: AuditEvent, extra: serde_json::Value) {
        if let (Some(data), serde_json::Value::Object(extra)) = (event.data.as_object_mut(), extra)
        {
            data.extend(extra);
        }
        audit::record(&**self.auth.store(), &event).await;
    }

    async fn spread(&self, change: Change) -> Result<(), AuthError> {
        self.auth
            .apply(&crate::tokens::FeedEvent::Change(change.clone()))
            .await;
        self.auth.inner.changes.announce_durably(&change).await
    }

    /// The user named by `key`: a user id (UUID), an email address, or an external id, tried
    /// in that order.
    ///
    /// # Errors
    /// Store errors.
    pub async fn find_user(&self, key: &str) -> Result<Option<User>, AuthError> {
        let key = key.trim();
        let store = self.auth.store();
        if let Ok(id) = Uuid::parse_str(key)
            && let Some(user) = store.user_by_id(UserId::from_uuid(id)).await?
        {
            return Ok(Some(user));
        }
        if key.contains('@')
            && let Ok(email) = Email::parse(key)
            && let Some(user) = store.user_by_email(&email).await?
        {
            return Ok(Some(user));
        }
        Ok(store.user_by_external_id(key).await?)
    }

    async fn user(&self, id: UserId) -> Result<User, AuthError> {
        self.auth
            .store()
            .user_by_id(id)
            .await?
            .ok_or_else(|| not_found("user"))
    }

    /// Creates a user.
    ///
    /// # Errors
    /// `invalid_request` for a malformed email or external id; `weak_password`;
    /// `email_taken`; `conflict` for a taken external id; store errors.
    pub async fn create_user(&self, account: NewAccount) -> Result<User, AuthError> {
        let email = Email::parse(&account.email).map_err(|_| {
            AuthError::new(ErrorCode::InvalidRequest).with_detail("The email address is invalid.")
        })?;
        if let Some(external_id) = &account.external_id
            && !crate::model::is_valid_external_id(external_id)
        {
            return Err(AuthError::new(ErrorCode::InvalidRequest)
                .with_detail("An external id is 1 to 255 visible ASCII characters."));
        }
        let name = account
            .name
            .map(|n| n.trim().to_owned())
            .filter(|n| !n.is_empty());
        let password_hash = match &account.password {
            Some(password) => Some(
                self.auth
                    .inner
                    .accounts
                    .hash_new_password(password, &email, name.as_deref())
                    .await?,
            ),
            None => None,
        };
        let now = self.auth.clock().now();
        let user = self
            .auth
            .store()
            .create_user(&NewUser {
                user: User {
                    id: UserId::new(),
                    email,
                    name,
                    email_verified_at: account.verified.then_some(now),
                    created_at: now,
                    external_id: account.external_id,
                    disabled_at: None,
                },
                password_hash,
            })
            .await?;
        self.record(
            self.event(AuditKind::AdminUserCreated, Some(user.id), None),
            json!({ "email": user.email.as_str() }),
        )
        .await;
        Ok(user)
    }

    /// Disables a user: they cannot sign in (403 `account_disabled` after the right
    /// password), their sessions end and their API tokens are revoked, on every instance.
    ///
    /// # Errors
    /// `not_found`; store errors.
    pub async fn disable_user(&self, id: UserId) -> Result<User, AuthError> {
        let now = self.auth.clock().now();
        let user = self.auth.store().set_user_disabled(id, Some(now)).await?;
        let sessions = self.auth.sessions().end_all_for_user(id, None).await?;
        self.spread(Change::UserChanged { user_id: id }).await?;
        let revoked = self.revoke_all_tokens(id).await?;
        self.record(
            self.event(AuditKind::AdminUserDisabled, Some(id), None),
            json!({ "sessions_ended": sessions, "api_tokens_revoked": revoked }),
        )
        .await;
        Ok(user)
    }

    async fn revoke_all_tokens(&self, id: UserId) -> Result<usize, AuthError> {
        let now = self.auth.clock().now();
        let mut revoked = 0;
        for org in self.auth.store().organizations_for_user(id).await? {
            let ids = self
                .auth
                .store()
                .revoke_api_tokens_for_member(org.organization.id, id, now)
                .await?;
            revoked += ids.len();
            for token in ids {
                self.spread(Change::TokenRevoked { id: token }).await?;
            }
        }
        Ok(revoked)
    }

    /// Enables a disabled user again (their revoked tokens stay revoked).
    ///
    /// # Errors
    /// `not_found`; store errors.
    pub async fn enable_user(&self, id: UserId) -> Result<User, AuthError> {
        let user = self.auth.store().set_user_disabled(id, None).await?;
        self.spread(Change::UserChanged { user_id: id }).await?;
        self.record(
            self.event(AuditKind::AdminUserEnabled, Some(id), None),
            json!({}),
        )
        .await;
        Ok(user)
    }

    /// Deletes a user and everything that is theirs (see
    /// [`UserStore::delete_user`](crate::UserStore::delete_user)).
    ///
    /// # Errors
    /// `not_found`; `last_owner` when they are an organization's only owner; store errors.
    pub async fn delete_user(&self, id: UserId) -> Result<(), AuthError> {
        let user = self.user(id).await?;
        let orgs = self.auth.store().organizations_for_user(id).await?;
        self.auth.store().delete_user(id).await?;
        self.auth.sessions().invalidate_user(id);
        self.spread(Change::UserChanged { user_id: id }).await?;
        for org in &orgs {
            self.spread(Change::MembershipChanged {
                org_id: org.organization.id,
                user_id: id,
            })
            .await?;
        }
        self.record(
            self.event(AuditKind::AdminUserDeleted, None, None),
            json!({ "deleted_user_id": id.to_string(), "email": user.email.as_str() }),
        )
        .await;
        Ok(())
    }

    /// Marks the user's email verified.
    ///
    /// # Errors
    /// `not_found`; store errors.
    pub async fn mark_verified(&self, id: UserId) -> Result<User, AuthError> {
        let user = self
            .auth
            .store()
            .mark_email_verified(id, self.auth.clock().now())
            .await?;
        self.spread(Change::UserChanged { user_id: id }).await?;
        self.record(
            self.event(AuditKind::AdminEmailVerified, Some(id), None),
            json!({}),
        )
        .await;
        Ok(user)
    }

    /// Mails the user a password reset link (voiding older ones).
    ///
    /// # Errors
    /// `not_found`; `unavailable` when the mail could not be sent; store errors.
    pub async fn send_password_reset(&self, id: UserId) -> Result<(), AuthError> {
        let user = self.user(id).await?;
        self.auth
            .inner
            .accounts
            .send_password_reset_now(&user)
            .await?;
        self.record(
            self.event(AuditKind::AdminPasswordResetSent, Some(id), None),
            json!({}),
        )
        .await;
        Ok(())
    }

    /// Ends every session of the user, on every instance. Returns how many ended.
    ///
    /// # Errors
    /// `not_found`; store errors.
    pub async fn revoke_sessions(&self, id: UserId) -> Result<u64, AuthError> {
        self.user(id).await?;
        let ended = self.auth.sessions().end_all_for_user(id, None).await?;
        self.spread(Change::UserChanged { user_id: id }).await?;
        self.record(
            self.event(AuditKind::AdminSessionsRevoked, Some(id), None),
            json!({ "sessions_ended": ended }),
        )
        .await;
        Ok(ended)
    }

    /// Revokes an API token, on every instance.
    ///
    /// # Errors
    /// `not_found`; store errors.
    pub async fn revoke_api_token(&self, id: ApiTokenId) -> Result<ApiTokenRecord, AuthError> {
        let record = self
            .auth
            .store()
            .revoke_api_token(id, self.auth.clock().now())
            .await
            .map_err(|err| match err {
                StoreError::NotFound => not_found("API token"),
                other => other.into(),
            })?;
        self.spread(Change::TokenRevoked { id }).await?;
        self.record(
            self.event(
                AuditKind::AdminApiTokenRevoked,
                Some(record.user_id),
                Some(record.org_id),
            ),
            json!({ "token_id": id.to_string() }),
        )
        .await;
        Ok(record)
    }

    /// Sets a member's role. The last-owner rule holds: demoting the only owner is
    /// `last_owner`.
    ///
    /// # Errors
    /// `not_found` for a non-member; `last_owner`; `invalid_request` for a role the app does
    /// not define; store errors.
    pub async fn set_role(
        &self,
        org_id: OrgId,
        user_id: UserId,
        role: &Role,
    ) -> Result<Membership, AuthError> {
        if !self.auth.roles().knows_role(role) {
            return Err(AuthError::new(ErrorCode::InvalidRequest)
                .with_detail(format!("The role {role} is not defined by the app.")));
        }
        let before = self
            .auth
            .store()
            .membership(org_id, user_id)
            .await?
            .ok_or_else(|| not_found("membership"))?;
        let membership = self
            .auth
            .store()
            .change_role_if(org_id, user_id, &before.role, role)
            .await?;
        self.spread(Change::MembershipChanged { org_id, user_id })
            .await?;
        self.record(
            self.event(AuditKind::AdminRoleChanged, Some(user_id), Some(org_id)),
            json!({ "from": before.role.as_str(), "to": role.as_str() }),
        )
        .await;
        Ok(membership)
    }

    /// Makes a new API token signing key and retires the current one (it verifies for the
    /// longest token lifetime more); every instance loads the new key within the staleness
    /// bound. Returns the new `kid`.
    ///
    /// # Errors
    /// `invalid_request` when API tokens are off; key store errors.
    pub async fn rotate_keys(&self) -> Result<String, AuthError> {
        let tokens = self.tokens()?;
        let kid = tokens.keys().rotate().await?;
        self.spread(Change::KeysRotated).await?;
        self.record(
            self.event(AuditKind::AdminKeysRotated, None, None),
            json!({ "kid": kid }),
        )
        .await;
        Ok(kid)
    }

    /// Retires the key `kid` at once: every token it signed fails from now on, on every
    /// instance within the staleness bound (for a key that may have leaked).
    ///
    /// # Errors
    /// `not_found` for an unknown `kid`; `invalid_request` when API tokens are off; key store
    /// errors.
    pub async fn retire_key(&self, kid: &str) -> Result<(), AuthError> {
        let tokens = self.tokens()?;
        if !tokens.keys().retire(kid).await? {
            return Err(not_found("key"));
        }
        self.spread(Change::KeysRotated).await?;
        self.record(
            self.event(AuditKind::AdminKeyRetired, None, None),
            json!({ "kid": kid }),
        )
        .await;
        Ok(())
    }

    fn tokens(&self) -> Result<&crate::tokens::ApiTokens, AuthError> {
        self.auth.tokens().ok_or_else(|| {
            AuthError::new(ErrorCode::InvalidRequest).with_detail("API tokens are not turned on.")
        })
    }
}
