//! Extractors: the principal of the request, as handlers want it. What each answers is
//! decided by [`keystead::extract::RequestAuth`]; this module reads the request's extensions
//! and turns the outcome into actix's types.

use std::future::{Ready, ready};
use std::marker::PhantomData;
use std::ops::Deref;
use std::sync::Arc;

use actix_web::dev::{Extensions, Payload};
use actix_web::http::StatusCode;
use actix_web::{FromRequest, HttpMessage, HttpRequest, HttpResponse, ResponseError};
use keystead::extract::RequestAuth;
use keystead::{AuthError, Requirement, User};

use crate::into_actix;

/// What is logged when an extractor or a guard runs without the middleware.
const WIRING_HINT: &str =
    "an auth extractor or guard ran without the AuthMiddleware: add `.wrap(auth.middleware())`";

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

/// What the middleware stored in a request's extensions.
pub(crate) fn request_auth(extensions: &Extensions) -> RequestAuth<'_> {
    RequestAuth::new(extensions.get(), extensions.get(), WIRING_HINT)
}

/// Answers `f` on what the middleware stored in `request`, as an extractor's future.
fn extract<T>(
    request: &HttpRequest,
    f: impl FnOnce(RequestAuth<'_>) -> Result<T, AuthError>,
) -> Ready<Result<T, AuthRejection>> {
    ready(f(request_auth(&request.extensions())).map_err(AuthRejection))
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
        extract(request, |found| Ok(Self(found.principal()?.clone())))
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
        extract(request, |found| found.current_user().map(Self))
    }
}

/// A member of the active organization: the principal with its organization and role
/// ([`keystead::extract::OrgMember`], which it dereferences to). 401 without a principal; 403
/// `forbidden` without an active organization.
#[derive(Debug, Clone)]
pub struct OrgMember(pub keystead::extract::OrgMember);

impl Deref for OrgMember {
    type Target = keystead::extract::OrgMember;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl FromRequest for OrgMember {
    type Error = AuthRejection;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        extract(request, |found| found.org_member().map(Self))
    }
}

/// Where the request acts and what it may do there: the active organization, the caller's role
/// in it and the effective permissions ([`keystead::extract::ActiveOrg`], which it
/// dereferences to). 401 without a principal, 403 `forbidden` without an active organization;
/// `Option<ActiveOrg>` is `None` in both cases, for pages that show more to members (a
/// dashboard, say). The same extractor as `keystead_axum::ActiveOrg`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveOrg(pub keystead::extract::ActiveOrg);

impl Deref for ActiveOrg {
    type Target = keystead::extract::ActiveOrg;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl FromRequest for ActiveOrg {
    type Error = AuthRejection;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        extract(request, |found| found.active_org().map(Self))
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
        extract(request, |found| {
            found.require::<R>().map(|()| Self(PhantomData))
        })
    }
}
