//! Route guards on the request's principal, for choosing between routes.
//!
//! A guard decides whether a route *matches*. When it does not, actix tries the next route of
//! the resource and, when none is left, answers with the resource's default service (405
//! unless set); a guard on a whole resource or scope makes actix look at the next one, and
//! finally answer 404. A guard never says 401 or 403. Use the extractors ([`CurrentUser`](crate::CurrentUser),
//! [`Require`](crate::Require)) or the annotations to refuse a request; use guards to send the
//! same path to different handlers:
//!
//! ```
//! use actix_web::{HttpResponse, web};
//! use keystead_actix::guard;
//!
//! async fn billing_admin() -> HttpResponse { HttpResponse::Ok().body("manage billing") }
//! async fn billing_summary() -> HttpResponse { HttpResponse::Ok().body("your plan") }
//!
//! let resource = web::resource("/billing")
//!     .route(web::get().guard(guard::permission("billing:manage")).to(billing_admin))
//!     .route(web::get().to(billing_summary));
//! ```
//!
//! Guards read what [`AuthMiddleware`](crate::AuthMiddleware) stored; without it they never
//! match (and log an error).

use actix_web::guard::{Guard, GuardContext};
use keystead::Auth;

use crate::extract::request_auth;

/// Runs `f` on the request's principal and the [`Auth`]; `false` without a principal, and
/// without the middleware (logged).
fn check(ctx: &GuardContext<'_>, f: impl FnOnce(&keystead::Principal, &Auth) -> bool) -> bool {
    request_auth(&ctx.req_data()).matches(f)
}

/// Matches requests with a principal (a session or an API token).
#[derive(Debug, Clone, Copy)]
pub struct SignedIn;

impl Guard for SignedIn {
    fn check(&self, ctx: &GuardContext<'_>) -> bool {
        check(ctx, |_, _| true)
    }
}

/// Matches requests whose principal has a permission (for an API token: among its effective
/// scopes). Built by [`permission`].
#[derive(Debug, Clone)]
pub struct HasPermission(String);

impl Guard for HasPermission {
    fn check(&self, ctx: &GuardContext<'_>) -> bool {
        check(ctx, |principal, _| principal.has(&self.0))
    }
}

/// Matches requests whose principal's role in the active organization grants at least what
/// the role grants. Built by [`role`].
#[derive(Debug, Clone)]
pub struct HasRole(keystead::Role);

impl Guard for HasRole {
    fn check(&self, ctx: &GuardContext<'_>) -> bool {
        check(ctx, |principal, auth| {
            principal.require_role(&self.0, auth.roles()).is_ok()
        })
    }
}

/// Matches requests with a principal.
#[must_use]
pub fn signed_in() -> SignedIn {
    SignedIn
}

/// Matches requests whose principal has `permission`.
#[must_use]
pub fn permission(permission: impl Into<String>) -> HasPermission {
    HasPermission(permission.into())
}

/// Matches requests whose principal has `role` in the active organization, or a role that
/// grants at least as much.
#[must_use]
pub fn role(role: keystead::Role) -> HasRole {
    HasRole(role)
}
