//! What the adapters' extractors and guards answer, decided once for both frameworks: given
//! what the gate put into the request (the [`Authentication`] and the [`Auth`]), the
//! principal, the signed-in user, the active organization, the organization member, and
//! whether a [`Requirement`] holds, each with the same errors. An adapter reads the request's
//! extensions into a [`RequestAuth`], calls it, and maps the [`AuthError`] to its response.

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::auth::{Auth, Authentication};
use crate::error::{AuthError, ErrorCode};
use crate::id::OrgId;
use crate::model::User;
use crate::principal::{Principal, Requirement};
use crate::rbac::{Permission, Role};

/// What the gate (the axum layer, the actix middleware) stored in one request, as the adapter
/// found it in the request's extensions. Either being absent is a wiring mistake: the gate
/// does not run in front of the route. Then every answer is 500 `internal` (logged at error
/// with the adapter's `wiring_hint`), and [`matches`](Self::matches) is `false`: a mis-wired
/// app never lets a request through.
#[derive(Debug, Clone, Copy)]
pub struct RequestAuth<'a> {
    authentication: Option<&'a Authentication>,
    auth: Option<&'a Auth>,
    wiring_hint: &'static str,
}

impl<'a> RequestAuth<'a> {
    /// What the request's extensions hold, and what to log when the gate is missing (how to
    /// add it, in the adapter's terms).
    #[must_use]
    pub const fn new(
        authentication: Option<&'a Authentication>,
        auth: Option<&'a Auth>,
        wiring_hint: &'static str,
    ) -> Self {
        Self {
            authentication,
            auth,
            wiring_hint,
        }
    }

    fn unwired(&self) -> AuthError {
        tracing::error!("{}", self.wiring_hint);
        AuthError::new(ErrorCode::Internal)
    }

    fn authentication(&self) -> Result<&'a Authentication, AuthError> {
        self.authentication.ok_or_else(|| self.unwired())
    }

    /// The principal: 401 without one (the failed credential's code, or `unauthenticated`).
    ///
    /// # Errors
    /// 401 as above; 500 without the gate.
    pub fn principal(&self) -> Result<&'a Principal, AuthError> {
        self.authentication()?.require()
    }

    /// The principal if there is one, for routes that work either way.
    ///
    /// # Errors
    /// 500 without the gate.
    pub fn optional_principal(&self) -> Result<Option<&'a Principal>, AuthError> {
        Ok(self.authentication()?.principal.as_ref())
    }

    /// The signed-in user (by session or API token), shared, not copied.
    ///
    /// # Errors
    /// As [`principal`](Self::principal).
    pub fn current_user(&self) -> Result<Arc<User>, AuthError> {
        Ok(self.principal()?.user.clone())
    }

    /// The signed-in user if there is one.
    ///
    /// # Errors
    /// 500 without the gate.
    pub fn optional_current_user(&self) -> Result<Option<Arc<User>>, AuthError> {
        Ok(self.optional_principal()?.map(|p| p.user.clone()))
    }

    /// The principal as a member of its active organization.
    ///
    /// # Errors
    /// As [`principal`](Self::principal); 403 `forbidden` without an active organization.
    pub fn org_member(&self) -> Result<OrgMember, AuthError> {
        let principal = self.principal()?;
        let (org_id, role) = principal.org.clone().ok_or_else(no_active_org)?;
        Ok(OrgMember {
            principal: principal.clone(),
            org_id,
            role,
        })
    }

    /// The active organization, the role there and the effective permissions.
    ///
    /// # Errors
    /// As [`principal`](Self::principal); 403 `forbidden` without an active organization.
    pub fn active_org(&self) -> Result<ActiveOrg, AuthError> {
        ActiveOrg::of(self.principal()?).ok_or_else(no_active_org)
    }

    /// The active organization, or `None` without a principal or without an active
    /// organization.
    ///
    /// # Errors
    /// 500 without the gate.
    pub fn optional_active_org(&self) -> Result<Option<ActiveOrg>, AuthError> {
        Ok(self.optional_principal()?.and_then(ActiveOrg::of))
    }

    /// Whether the principal meets `R` (a permission, a scope, a role: what the route
    /// annotations check), with the app's roles.
    ///
    /// # Errors
    /// 500 without the gate; as [`principal`](Self::principal); the check's 403.
    pub fn require<R: Requirement>(&self) -> Result<(), AuthError> {
        let (Some(authentication), Some(auth)) = (self.authentication, self.auth) else {
            return Err(self.unwired());
        };
        R::check_with(authentication.require()?, auth)
    }

    /// Whether there is a principal and `check` holds for it: what a route guard asks.
    /// `false` without the gate (logged).
    pub fn matches(&self, check: impl FnOnce(&Principal, &Auth) -> bool) -> bool {
        match (self.authentication, self.auth) {
            (Some(authentication), Some(auth)) => authentication
                .principal
                .as_ref()
                .is_some_and(|principal| check(principal, auth)),
            _ => {
                self.unwired();
                false
            }
        }
    }
}

fn no_active_org() -> AuthError {
    AuthError::new(ErrorCode::Forbidden).with_detail("No active organization.")
}

/// A member of the active organization: the principal with its organization and role.
#[derive(Debug, Clone)]
pub struct OrgMember {
    /// The principal.
    pub principal: Principal,
    /// The active organization.
    pub org_id: OrgId,
    /// The role there, as of this request.
    pub role: Role,
}

/// Where the request acts and what it may do there: the active organization, the caller's role
/// in it and the effective permissions (a token's scopes already applied).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveOrg {
    /// The active organization.
    pub org_id: OrgId,
    /// The caller's role there, as of this request.
    pub role: Role,
    /// The effective permissions there.
    pub permissions: BTreeSet<Permission>,
}

impl ActiveOrg {
    /// Whether the permissions include `permission`.
    #[must_use]
    pub fn has(&self, permission: &str) -> bool {
        self.permissions.contains(permission)
    }

    /// The principal's active organization, if it has one.
    #[must_use]
    pub fn of(principal: &Principal) -> Option<Self> {
        principal.org.as_ref().map(|(org_id, role)| Self {
            org_id: *org_id,
            role: role.clone(),
            permissions: principal.permissions().clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use time::OffsetDateTime;

    use super::{ActiveOrg, RequestAuth};
    use crate::auth::Authentication;
    use crate::error::{AuthError, ErrorCode};
    use crate::principal::{Credential, Principal};
    use crate::rbac::{Role, RolePermissions};
    use crate::{Email, OrgId, SessionId, User, UserId};

    const HINT: &str = "test: the gate is missing";

    fn principal(org: Option<(OrgId, Role)>) -> Principal {
        let user = User {
            id: UserId::new(),
            email: Email::parse("p@example.com").unwrap(),
            name: None,
            email_verified_at: None,
            created_at: OffsetDateTime::UNIX_EPOCH,
            external_id: None,
            disabled_at: None,
        };
        let session = Credential::Session {
            id: SessionId::new(),
            expires_at: OffsetDateTime::UNIX_EPOCH,
            authenticated_at: OffsetDateTime::UNIX_EPOCH,
        };
        Principal::new(user, session, org, &RolePermissions::default())
    }

    fn signed_in(principal: Principal) -> Authentication {
        Authentication {
            principal: Some(principal),
            ..Authentication::default()
        }
    }

    #[test]
    fn without_the_gate_every_answer_is_internal_and_no_guard_matches() {
        let found = RequestAuth::new(None, None, HINT);
        let internal = Some(ErrorCode::Internal);
        assert_eq!(found.principal().err().map(|e| e.code), internal);
        assert_eq!(found.optional_principal().err().map(|e| e.code), internal);
        assert_eq!(found.current_user().err().map(|e| e.code), internal);
        assert_eq!(
            found.optional_current_user().err().map(|e| e.code),
            internal
        );
        assert_eq!(found.org_member().err().map(|e| e.code), internal);
        assert_eq!(found.active_org().err().map(|e| e.code), internal);
        assert_eq!(found.optional_active_org().err().map(|e| e.code), internal);
        assert!(!found.matches(|_, _| true));
        // The authentication alone is not enough for a guard: it needs the roles too.
        let authn = signed_in(principal(None));
        assert!(!RequestAuth::new(Some(&authn), None, HINT).matches(|_, _| true));
    }

    #[test]
    fn anonymous_requests_get_the_credentials_401_or_nothing() {
        let anonymous = Authentication::default();
        let found = RequestAuth::new(Some(&anonymous), None, HINT);
        assert_eq!(
            found.principal().err().map(|e| e.code),
            Some(ErrorCode::Unauthenticated)
        );
        assert_eq!(
            found.active_org().err().map(|e| e.code),
            Some(ErrorCode::Unauthenticated)
        );
        assert!(found.optional_principal().unwrap().is_none());
        assert!(found.optional_current_user().unwrap().is_none());
        assert!(found.optional_active_org().unwrap().is_none());
        let expired = Authentication {
            failure: Some(AuthError::new(ErrorCode::SessionExpired)),
            ..Authentication::default()
        };
        let found = RequestAuth::new(Some(&expired), None, HINT);
        assert_eq!(
            found.current_user().err().map(|e| e.code),
            Some(ErrorCode::SessionExpired)
        );
    }

    #[test]
    fn organization_extractors_need_an_active_organization() {
        let authn = signed_in(principal(None));
        let found = RequestAuth::new(Some(&authn), None, HINT);
        assert!(found.current_user().is_ok());
        for err in [found.org_member().err(), found.active_org().err()] {
            let err = err.expect("403 without an active organization");
            assert_eq!(err.code, ErrorCode::Forbidden);
            assert_eq!(err.detail.as_deref(), Some("No active organization."));
        }
        assert!(found.optional_active_org().unwrap().is_none());

        let org_id = OrgId::new();
        let authn = signed_in(principal(Some((org_id, Role::ADMIN))));
        let found = RequestAuth::new(Some(&authn), None, HINT);
        let member = found.org_member().unwrap();
        assert_eq!((member.org_id, member.role), (org_id, Role::ADMIN));
        let active = found.active_org().unwrap();
        assert_eq!(active.org_id, org_id);
        assert_eq!(&active.permissions, member.principal.permissions());
        assert_eq!(found.optional_active_org().unwrap(), Some(active.clone()));
        assert_eq!(ActiveOrg::of(&member.principal), Some(active));
    }
}
