//! Extractors: the principal of the request, as handlers want it.

use std::collections::BTreeSet;
use std::marker::PhantomData;
use std::ops::Deref;
use std::sync::Arc;

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::response::{IntoResponse, Response};
use http::request::Parts;
use keystead::{
    Auth, AuthError, Authentication, ErrorCode, OrgId, Permission, Requirement, Role, User,
};

use crate::into_axum;

/// Why an extractor refused the request: the contract's problem+json (401 with
/// `WWW-Authenticate: Bearer`, or 403), never 404.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthRejection(pub AuthError);

impl IntoResponse for AuthRejection {
    fn into_response(self) -> Response {
        into_axum(keystead::routes::problem_response(&self.0))
    }
}

impl std::fmt::Display for AuthRejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for AuthRejection {}

impl From<AuthError> for AuthRejection {
    fn from(err: AuthError) -> Self {
        Self(err)
    }
}

/// What the layer found, or a 500 when the layer is missing (a wiring mistake, logged).
fn authentication(parts: &Parts) -> Result<&Authentication, AuthRejection> {
    parts.extensions.get::<Authentication>().ok_or_else(|| {
        tracing::error!("an auth extractor ran without the AuthLayer: add `.layer(auth.layer())`");
        AuthRejection(AuthError::new(ErrorCode::Internal))
    })
}

fn principal(parts: &Parts) -> Result<keystead::Principal, AuthRejection> {
    Ok(authentication(parts)?.require()?.clone())
}

/// The request's principal: who, how (session or API token), where (active organization and
/// role) and what (effective permissions). 401 without one. Dereferences to
/// [`keystead::Principal`], whose `require("…")` is the one permission check.
#[derive(Debug, Clone)]
pub struct Principal(pub keystead::Principal);

impl Deref for Principal {
    type Target = keystead::Principal;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Principal {
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        principal(parts).map(Self)
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for Principal {
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Option<Self>, Self::Rejection> {
        Ok(authentication(parts)?.principal.clone().map(Self))
    }
}

/// The signed-in user (by session or API token). 401 without one; `Option<CurrentUser>` for
/// routes that work either way. Dereferences to [`User`] (shared, not copied, per request).
#[derive(Debug, Clone)]
pub struct CurrentUser(pub Arc<User>);

impl Deref for CurrentUser {
    type Target = User;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl<S: Send + Sync> FromRequestParts<S> for CurrentUser {
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(authentication(parts)?.require()?.user.clone()))
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for CurrentUser {
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Option<Self>, Self::Rejection> {
        Ok(authentication(parts)?
            .principal
            .as_ref()
            .map(|p| Self(p.user.clone())))
    }
}

/// A member of the active organization: the principal with its organization and role. 401
/// without a principal; 403 `forbidden` without an active organization.
#[derive(Debug, Clone)]
pub struct OrgMember {
    /// The principal.
    pub principal: keystead::Principal,
    /// The active organization.
    pub org_id: OrgId,
    /// The role there, as of this request.
    pub role: Role,
}

impl<S: Send + Sync> FromRequestParts<S> for OrgMember {
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let principal = principal(parts)?;
        let Some((org_id, role)) = principal.org.clone() else {
            return Err(AuthRejection(
                AuthError::new(ErrorCode::Forbidden).with_detail("No active organization."),
            ));
        };
        Ok(Self {
            principal,
            org_id,
            role,
        })
    }
}

/// Where the request acts and what it may do there: the active organization, the caller's role
/// in it and the effective permissions (a token's scopes already applied). 401 without a
/// principal, 403 `forbidden` without an active organization; `Option<ActiveOrg>` is `None` in
/// both cases, for pages that show more to members (a dashboard, say).
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

    fn of(principal: &keystead::Principal) -> Option<Self> {
        principal.org.as_ref().map(|(org_id, role)| Self {
            org_id: *org_id,
            role: role.clone(),
            permissions: principal.permissions().clone(),
        })
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ActiveOrg {
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let principal = authentication(parts)?.require()?;
        Self::of(principal).ok_or_else(|| {
            AuthRejection(
                AuthError::new(ErrorCode::Forbidden).with_detail("No active organization."),
            )
        })
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for ActiveOrg {
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Option<Self>, Self::Rejection> {
        Ok(authentication(parts)?.principal.as_ref().and_then(Self::of))
    }
}

/// Runs the check `R` on the principal before the handler: what the route annotations
/// (`#[require_permission]`, `#[require_scope]`, `#[require_role]`) add as the handler's first
/// argument. 401 without a principal, the check's 403 otherwise.
pub struct Require<R>(PhantomData<fn() -> R>);

impl<R> std::fmt::Debug for Require<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Require")
    }
}

impl<S: Send + Sync, R: Requirement> FromRequestParts<S> for Require<R> {
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let authn = authentication(parts)?;
        let principal = authn.require()?;
        let auth = parts.extensions.get::<Auth>().ok_or_else(|| {
            tracing::error!("Require ran without the AuthLayer");
            AuthRejection(AuthError::new(ErrorCode::Internal))
        })?;
        R::check(principal, auth.roles())?;
        Ok(Self(PhantomData))
    }
}
