//! Extractors: the principal of the request, as handlers want it.

use std::collections::BTreeSet;
use std::future::{Ready, ready};
use std::marker::PhantomData;
use std::ops::Deref;
use std::sync::Arc;

use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::{FromRequest, HttpMessage, HttpRequest, HttpResponse, ResponseError};
use keystead::{
    Auth, AuthError, Authentication, ErrorCode, OrgId, Permission, Requirement, Role, User,
};

use crate::into_actix;

/// Why an extractor refused the request: the contract's problem+json (401 with
/// `WWW-Authenticate: Bearer`, or 403), never 404. Handlers can return it too (`?` on an
/// [`AuthError`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthRejection(pub AuthError);

impl ResponseError for AuthRejection {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.0.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        into_actix(keystead::routes::problem_response(&self.0))
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

fn missing_middleware() -> AuthRejection {
    tracing::error!(
        "an auth extractor ran without the AuthMiddleware: add `.wrap(auth.middleware())`"
    );
    AuthRejection(AuthError::new(ErrorCode::Internal))
}

/// Runs `f` on what the middleware found, or answers 500 when the middleware is missing (a
/// wiring mistake, logged).
fn with_authentication<T>(
    request: &HttpRequest,
    f: impl FnOnce(&Authentication) -> Result<T, AuthError>,
) -> Result<T, AuthRejection> {
    let extensions = request.extensions();
    let authn = extensions
        .get::<Authentication>()
        .ok_or_else(missing_middleware)?;
    Ok(f(authn)?)
}

fn principal(request: &HttpRequest) -> Result<keystead::Principal, AuthRejection> {
    with_authentication(request, |authn| authn.require().cloned())
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

impl FromRequest for Principal {
    type Error = AuthRejection;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(principal(request).map(Self))
    }
}

/// The signed-in user (by session or API token). 401 without one; `Option<CurrentUser>` for
/// routes that work either way (see the [crate docs](crate) for how actix's `Option<T>`
/// treats a missing middleware). Dereferences to [`User`].
#[derive(Debug, Clone)]
pub struct CurrentUser(pub Arc<User>);

impl Deref for CurrentUser {
    type Target = User;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl FromRequest for CurrentUser {
    type Error = AuthRejection;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(with_authentication(request, |authn| {
            Ok(Self(authn.require()?.user.clone()))
        }))
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

impl FromRequest for OrgMember {
    type Error = AuthRejection;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(principal(request).and_then(|principal| {
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
        }))
    }
}

/// Where the request acts and what it may do there: the active organization, the caller's role
/// in it and the effective permissions (a token's scopes already applied). 401 without a
/// principal, 403 `forbidden` without an active organization; `Option<ActiveOrg>` is `None` in
/// both cases, for pages that show more to members (a dashboard, say). The same extractor as
/// `keystead_axum::ActiveOrg`.
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
}

impl FromRequest for ActiveOrg {
    type Error = AuthRejection;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(with_authentication(request, |authn| {
            let principal = authn.require()?;
            principal
                .org
                .as_ref()
                .map(|(org_id, role)| Self {
                    org_id: *org_id,
                    role: role.clone(),
                    permissions: principal.permissions().clone(),
                })
                .ok_or_else(|| {
                    AuthError::new(ErrorCode::Forbidden).with_detail("No active organization.")
                })
        }))
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

impl<R: Requirement> FromRequest for Require<R> {
    type Error = AuthRejection;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        let extensions = request.extensions();
        ready(
            match (extensions.get::<Authentication>(), extensions.get::<Auth>()) {
                (Some(authn), Some(auth)) => authn
                    .require()
                    .and_then(|principal| R::check(principal, auth.roles()))
                    .map(|()| Self(PhantomData))
                    .map_err(AuthRejection),
                _ => Err(missing_middleware()),
            },
        )
    }
}
