//! Who is making a request, how they proved it, where they act and what they may do.
//!
//! Every authenticated request resolves to one [`Principal`]. Extractors, guards, route
//! annotations and handler code all ask it the same questions, through the same methods:
//!
//! ```
//! # use keystead::principal::{Credential, Principal};
//! # use keystead::{Email, OrgId, Role, RolePermissions, SessionId, User, UserId};
//! # let user = User { id: UserId::new(), email: Email::parse("a@example.com").unwrap(),
//! #     name: None, email_verified_at: None, created_at: time::OffsetDateTime::UNIX_EPOCH,
//! #     external_id: None, disabled_at: None };
//! # let credential = Credential::Session { id: SessionId::new(), expires_at: time::OffsetDateTime::UNIX_EPOCH, authenticated_at: time::OffsetDateTime::UNIX_EPOCH };
//! let roles = RolePermissions::default();
//! let principal = Principal::new(user, credential, Some((OrgId::new(), Role::ADMIN)), &roles);
//! assert!(principal.require("members:manage").is_ok());
//! assert_eq!(principal.require("billing:manage").unwrap_err().code.as_str(), "forbidden");
//! assert!(principal.require_role(&Role::ADMIN, &roles).is_ok());
//! ```

use std::collections::BTreeSet;
use std::sync::Arc;

use time::OffsetDateTime;

use crate::{
    ApiTokenId, AuthError, ErrorCode, OrgId, Permission, Role, RolePermissions, SessionId, User,
};

/// How the caller proved who they are.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Credential {
    /// A browser session cookie.
    Session {
        /// The session.
        id: SessionId,
        /// When it expires unless used.
        expires_at: OffsetDateTime,
        /// When the user last proved who they are in it (sign-in or re-authentication).
        authenticated_at: OffsetDateTime,
    },
    /// An API token (`Authorization: Bearer sk_live_…`).
    ApiToken {
        /// The token's id (its `jti`).
        id: ApiTokenId,
        /// The scopes the token was issued with (shared with the cache of verified tokens).
        scopes: Arc<BTreeSet<Permission>>,
    },
}

/// An API token's effective permissions: its scopes that the owner's role grants. The usual
/// cases (every scope granted; or the role's whole set within the scopes) share a set rather
/// than build one.
pub(crate) fn token_permissions(
    scopes: &Arc<BTreeSet<Permission>>,
    granted: Arc<BTreeSet<Permission>>,
) -> Arc<BTreeSet<Permission>> {
    if scopes.is_subset(&granted) {
        scopes.clone()
    } else if granted.is_subset(scopes) {
        granted
    } else {
        Arc::new(granted.intersection(scopes).cloned().collect())
    }
}

/// The authenticated caller of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The user (shared with the session or token cache: cloning a principal copies no
    /// strings).
    pub user: Arc<User>,
    /// How they authenticated.
    pub credential: Credential,
    /// The active organization and the user's current role there, if any.
    pub org: Option<(OrgId, Role)>,
    permissions: Arc<BTreeSet<Permission>>,
    /// The active organization requires a second factor and the user has none.
    mfa_blocked: bool,
}

impl Principal {
    /// A principal whose permissions are what `roles` grants the role in `org` — intersected
    /// with the token's scopes for an API token. Without an organization there are none.
    #[must_use]
    pub fn new(
        user: impl Into<Arc<User>>,
        credential: Credential,
        org: Option<(OrgId, Role)>,
        roles: &RolePermissions,
    ) -> Self {
        let granted = org
            .as_ref()
            .map(|(_, role)| roles.permissions_shared(role))
            .unwrap_or_default();
        let permissions = match &credential {
            Credential::Session { .. } => granted,
            Credential::ApiToken { scopes, .. } => token_permissions(scopes, granted),
        };
        Self::with_permissions(user, credential, org, permissions)
    }

    /// A principal with its effective permissions already worked out (by [`Self::new`]'s
    /// rule: the API token cache keeps them per token).
    pub(crate) fn with_permissions(
        user: impl Into<Arc<User>>,
        credential: Credential,
        org: Option<(OrgId, Role)>,
        permissions: Arc<BTreeSet<Permission>>,
    ) -> Self {
        Self {
            user: user.into(),
            credential,
            org,
            permissions,
            mfa_blocked: false,
        }
    }

    /// This principal under its organization's MFA policy, for a user without a second
    /// factor: no permissions there, and every permission or role check answers 403
    /// `mfa_required` (so a page can say "set up a second factor to continue").
    #[must_use]
    pub fn blocked_by_org_mfa_policy(mut self) -> Self {
        self.permissions = Arc::default();
        self.mfa_blocked = true;
        self
    }

    /// Whether the active organization requires a second factor the user lacks.
    #[must_use]
    pub const fn org_mfa_blocked(&self) -> bool {
        self.mfa_blocked
    }

    /// `Ok` when the caller proved who they are within `max_age` of `now` (step-up, "sudo
    /// mode"): `reauthentication_required` for an older session authentication (re-authenticate
    /// with `POST /auth/reauthenticate`), `forbidden` for an API token, which cannot.
    ///
    /// # Errors
    /// As above.
    pub fn require_recent_auth(
        &self,
        max_age: time::Duration,
        now: OffsetDateTime,
    ) -> Result<(), AuthError> {
        match &self.credential {
            Credential::Session {
                authenticated_at, ..
            } if now - *authenticated_at <= max_age => Ok(()),
            Credential::Session { .. } => Err(AuthError::new(ErrorCode::ReauthenticationRequired)),
            Credential::ApiToken { .. } => Err(AuthError::new(ErrorCode::Forbidden)
                .with_detail("This action needs a browser session with a recent sign-in.")),
        }
    }

    /// The error for a check that failed: `mfa_required` when the organization's MFA policy
    /// blocks the caller, else `forbidden`.
    fn refused(&self) -> AuthError {
        if self.mfa_blocked {
            AuthError::new(ErrorCode::MfaRequired)
        } else {
            AuthError::new(ErrorCode::Forbidden)
        }
    }

    /// The effective permissions.
    #[must_use]
    pub fn permissions(&self) -> &BTreeSet<Permission> {
        &self.permissions
    }

    /// The active organization's id.
    #[must_use]
    pub fn org_id(&self) -> Option<OrgId> {
        self.org.as_ref().map(|(id, _)| *id)
    }

    /// The role in the active organization.
    #[must_use]
    pub fn role(&self) -> Option<&Role> {
        self.org.as_ref().map(|(_, role)| role)
    }

    /// The session, when the caller came with a session cookie.
    #[must_use]
    pub const fn session_id(&self) -> Option<SessionId> {
        match &self.credential {
            Credential::Session { id, .. } => Some(*id),
            Credential::ApiToken { .. } => None,
        }
    }

    /// Whether the caller came with a session cookie.
    #[must_use]
    pub const fn is_session(&self) -> bool {
        matches!(self.credential, Credential::Session { .. })
    }

    /// Whether the effective permissions include `permission`.
    #[must_use]
    pub fn has(&self, permission: &str) -> bool {
        self.permissions.contains(permission)
    }

    /// The one permission check. `Ok` when the effective permissions include `permission`;
    /// otherwise, for an API token whose scopes lack it, `insufficient_scope` naming it (RFC
    /// 6750), and `forbidden` in every other case (a session without the role, or a token
    /// whose owner's role no longer grants a scope it has).
    ///
    /// # Errors
    /// As above.
    pub fn require(&self, permission: &str) -> Result<(), AuthError> {
        if self.has(permission) {
            return Ok(());
        }
        match &self.credential {
            _ if self.mfa_blocked => Err(self.refused()),
            Credential::ApiToken { scopes, .. } if !scopes.contains(permission) => {
                Err(AuthError::insufficient_scope(permission))
            }
            _ => Err(AuthError::new(ErrorCode::Forbidden)),
        }
    }

    /// `Ok` when every permission of `role` (in `roles`) is among the effective ones: the caller
    /// can do at least what `role` can. Roles are compared by what they grant, so an app's own
    /// roles rank without a hierarchy to declare.
    ///
    /// A role `roles` does not define (a typo such as `administrator`) admits no one: the
    /// answer is `forbidden`, and the mistake is logged at error. Check the role names an app's
    /// routes use at start-up with [`RolePermissions::check_roles`] (or
    /// `Auth::check_roles`).
    ///
    /// # Errors
    /// `forbidden` otherwise, when there is no active organization, or for an unknown role.
    pub fn require_role(&self, role: &Role, roles: &RolePermissions) -> Result<(), AuthError> {
        if !roles.knows_role(role) {
            // An unknown role grants nothing, and "nothing" is a subset of every principal's
            // permissions: without this every member would pass. A typo or a role missing
            // from the configured map is a wiring mistake: refuse, loudly.
            tracing::error!(
                role = %role,
                "a role check names a role the configured RolePermissions does not define: \
                 refused; fix the name or add the role (Auth::check_roles at start-up finds these)"
            );
            return Err(AuthError::new(ErrorCode::Forbidden));
        }
        if self.org.is_some() && roles.permissions(role).is_subset(&self.permissions) {
            Ok(())
        } else {
            Err(self.refused())
        }
    }

    /// `Ok` for a browser session; `forbidden` for an API token (the contract's routes that act
    /// on the signed-in user need a session).
    ///
    /// # Errors
    /// As above.
    pub fn require_session(&self) -> Result<SessionId, AuthError> {
        self.session_id().ok_or_else(|| {
            AuthError::new(ErrorCode::Forbidden).with_detail("This route needs a browser session.")
        })
    }
}

/// A check on the principal that runs before a handler: what the route-level annotations
/// (`#[require_permission]`, `#[require_scope]`, `#[require_role]` from `keystead-macros`)
/// generate, and what the adapters' `Require<R>` extractors run. One implementation serves
/// every framework.
pub trait Requirement {
    /// `Ok` to let the request through; the error (401/403) otherwise.
    ///
    /// # Errors
    /// `forbidden` or `insufficient_scope` as [`Principal::require`] and
    /// [`Principal::require_role`] decide.
    fn check(principal: &Principal, roles: &RolePermissions) -> Result<(), AuthError>;

    /// The check with the whole configuration at hand (its clock, its step-up age): what the
    /// adapters' `Require<R>` runs. By default [`Requirement::check`] with the configured
    /// roles.
    ///
    /// # Errors
    /// As [`Requirement::check`].
    fn check_with(principal: &Principal, auth: &crate::Auth) -> Result<(), AuthError> {
        Self::check(principal, auth.roles())
    }
}

/// The step-up requirement (`#[require_recent_auth]`, or `Require<RecentAuth>` as an extractor):
/// a browser session whose user proved who they are within the configured step-up age
/// ([`Auth::step_up_max_age`](crate::Auth::step_up_max_age), 10 minutes by default) — else 403
/// `reauthentication_required` (the client re-authenticates with `POST /auth/reauthenticate`
/// and retries); an API token gets 403 `forbidden`.
#[derive(Debug, Clone, Copy)]
pub struct RecentAuth;

impl Requirement for RecentAuth {
    /// Without the configuration at hand: the default age against the system clock.
    fn check(principal: &Principal, _: &RolePermissions) -> Result<(), AuthError> {
        principal.require_recent_auth(
            crate::mfa::DEFAULT_STEP_UP_MAX_AGE,
            OffsetDateTime::now_utc(),
        )
    }

    fn check_with(principal: &Principal, auth: &crate::Auth) -> Result<(), AuthError> {
        auth.require_recent_auth(principal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Email, UserId};

    fn user() -> User {
        User {
            id: UserId::new(),
            email: Email::parse("p@example.com").unwrap(),
            name: None,
            email_verified_at: None,
            created_at: OffsetDateTime::UNIX_EPOCH,
            external_id: None,
            disabled_at: None,
        }
    }

    fn session() -> Credential {
        Credential::Session {
            id: SessionId::new(),
            expires_at: OffsetDateTime::UNIX_EPOCH,
            authenticated_at: OffsetDateTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn a_session_gets_what_the_role_grants() {
        let roles = RolePermissions::default();
        let member = Principal::new(
            user(),
            session(),
            Some((OrgId::new(), Role::MEMBER)),
            &roles,
        );
        assert!(member.require("read:projects").is_ok());
        assert_eq!(
            member.require("members:manage").unwrap_err().code,
            ErrorCode::Forbidden
        );
        assert!(member.require_role(&Role::MEMBER, &roles).is_ok());
        assert!(member.require_role(&Role::ADMIN, &roles).is_err());
        let owner = Principal::new(user(), session(), Some((OrgId::new(), Role::OWNER)), &roles);
        assert!(owner.require_role(&Role::ADMIN, &roles).is_ok());
        assert!(owner.require("billing:manage").is_ok());
        // An unknown role grants nothing; it must not admit everyone.
        let typo = Role::new("administrator").unwrap();
        assert!(owner.require_role(&typo, &roles).is_err());
        assert!(member.require_role(&typo, &roles).is_err());
    }

    #[test]
    fn no_org_means_no_permissions() {
        let roles = RolePermissions::default();
        let p = Principal::new(user(), session(), None, &roles);
        assert!(p.permissions().is_empty());
        assert!(p.require_role(&Role::MEMBER, &roles).is_err());
        assert!(p.require_session().is_ok());
    }

    #[test]
    fn a_token_gets_its_scopes_that_the_role_still_grants() {
        let roles = RolePermissions::default();
        let scopes: BTreeSet<Permission> = ["read:projects", "billing:manage"]
            .into_iter()
            .map(Permission::from_static)
            .collect();
        let token = Credential::ApiToken {
            id: ApiTokenId::new(),
            scopes: Arc::new(scopes),
        };
        let p = Principal::new(user(), token, Some((OrgId::new(), Role::ADMIN)), &roles);
        assert!(p.require("read:projects").is_ok());
        // In the scopes, but an admin no longer has it: forbidden.
        assert_eq!(
            p.require("billing:manage").unwrap_err().code,
            ErrorCode::Forbidden
        );
        // Granted by the role, but not a scope of the token: insufficient_scope naming it.
        let err = p.require("write:deployments").unwrap_err();
        assert_eq!(err.code, ErrorCode::InsufficientScope);
        assert_eq!(err.required_scope.as_deref(), Some("write:deployments"));
        assert_eq!(p.require_session().unwrap_err().code, ErrorCode::Forbidden);
    }

    #[test]
    fn a_token_gets_the_intersection_whichever_set_is_smaller() {
        let roles = RolePermissions::default();
        let token = |scopes: &[&'static str]| Credential::ApiToken {
            id: ApiTokenId::new(),
            scopes: Arc::new(
                scopes
                    .iter()
                    .copied()
                    .map(Permission::from_static)
                    .collect(),
            ),
        };
        let names = |p: &Principal| -> Vec<String> {
            p.permissions()
                .iter()
                .map(|p| p.as_str().to_owned())
                .collect()
        };
        let org = Some((OrgId::new(), Role::MEMBER));
        // Scopes within the role: the scopes.
        let p = Principal::new(user(), token(&["read:projects"]), org.clone(), &roles);
        assert_eq!(names(&p), ["read:projects"]);
        // Scopes beyond the role (the owner was demoted): what the role grants of them.
        let owner_token = Credential::ApiToken {
            id: ApiTokenId::new(),
            scopes: roles.permissions_shared(&Role::OWNER),
        };
        let p = Principal::new(user(), owner_token, org.clone(), &roles);
        let member: Vec<String> = roles
            .permissions(&Role::MEMBER)
            .iter()
            .map(|p| p.as_str().to_owned())
            .collect();
        assert_eq!(names(&p), member);
        // Neither within the other.
        let p = Principal::new(
            user(),
            token(&["read:projects", "billing:manage"]),
            org,
            &roles,
        );
        assert_eq!(names(&p), ["read:projects"]);
    }
}
