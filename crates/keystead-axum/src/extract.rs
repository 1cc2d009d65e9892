//! Extractors: the principal of the request, as handlers want it. What each answers is
//! decided by [`keystead::extract::RequestAuth`]; this module reads the request's extensions
//! and turns the outcome into axum's types.

use std::marker::PhantomData;
use std::ops::Deref;
use std::sync::Arc;

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::response::{IntoResponse, Response};
use http::request::Parts;
use keystead::extract::RequestAuth;
use keystead::{AuthError, Requirement, User};

use crate::into_axum;

/// What is logged when an extractor runs without the layer.
const WIRING_HINT: &str = "an auth extractor ran without the AuthLayer: add `.layer(auth.layer())`";

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

/// What the layer stored in the request.
fn request_auth(parts: &Parts) -> RequestAuth<'_> {
    RequestAuth::new(parts.extensions.get(), parts.extensions.get(), WIRING_HINT)
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
        Ok(Self(request_auth(parts).principal()?.clone()))
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for Principal {
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Option<Self>, Self::Rejection> {
        Ok(request_auth(parts)
            .optional_principal()?
            .map(|p| Self(p.clone())))
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
        Ok(Self(request_auth(parts).current_user()?))
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for CurrentUser {
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Option<Self>, Self::Rejection> {
        Ok(request_auth(parts).optional_current_user()?.map(Self))
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

impl<S: Send + Sync> FromRequestParts<S> for OrgMember {
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(request_auth(parts).org_member()?))
    }
}

/// Where the request acts and what it may do there: the active organization, the caller's role
/// in it and the effective permissions ([`keystead::extract::ActiveOrg`], which it
/// dereferences to). 401 without a principal, 403 `forbidden` without an active organization;
/// `Option<ActiveOrg>` is `None` in both cases, for pages that show more to members (a
/// dashboard, say).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveOrg(pub keystead::extract::ActiveOrg);

impl Deref for ActiveOrg {
    type Target = keystead::extract::ActiveOrg;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ActiveOrg {
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(request_auth(parts).active_org()?))
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for ActiveOrg {
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Option<Self>, Self::Rejection> {
        Ok(request_auth(parts).optional_active_org()?.map(Self))
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
        request_auth(parts).require::<R>()?;
        Ok(Self(PhantomData))
    }
}
