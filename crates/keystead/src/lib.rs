//! # keystead
//!
//! Framework-agnostic authentication and authorization: sign-up and sign-in (argon2id), email
//! verification and password reset, sessions, organizations and invitations, API tokens, RBAC,
//! rate limits, and the HTTP surface the adapters (`keystead-axum`, `keystead-actix`) mount.
//!
//! The model, ids, errors and store traits come from `keystead-core` (the small core a store
//! crate depends on) and are re-exported here at the same paths, so `keystead::Email` and
//! `keystead::store::UserStore` are the core's types.
//!
//! It depends on no web framework and no database driver: `cargo tree -p keystead` shows no
//! axum, actix, tower or sqlx. Adapters translate; this crate decides.
//!
//! ```
//! use keystead::{Email, ErrorCode, Role, RolePermissions, Permission};
//!
//! let email = Email::parse(" Alice@Example.com ").unwrap();
//! assert_eq!(email.as_str(), "alice@example.com");
//!
//! let roles = RolePermissions::default();
//! assert!(roles.grants(&Role::OWNER, &Permission::from_static("billing:manage")));
//! assert_eq!(ErrorCode::LastOwner.status(), 409);
//! ```
#![forbid(unsafe_code)]

pub use keystead_core::{clock, email, error, id, model, rbac, secret, store, time, uuid};

/// The `utoipa` crate, whose `OpenApi` [`Auth::openapi`] answers.
pub use utoipa;

pub mod accounts;
pub mod admin;
pub mod audit;
pub mod auth;
pub mod extract;
pub mod gate;
pub mod handoff;
pub mod mail;
pub mod mfa;
pub mod oauth;
pub mod orgs;
pub mod passkeys;
pub mod password;
pub mod password_policy;
pub mod principal;
pub mod rate_limit;
pub mod routes;
pub mod session;
pub mod telemetry;
pub mod tokens;
pub mod web;

#[cfg(test)]
mod fuzz_parsers;

pub use auth::{Auth, AuthBuilder, Authentication, Readiness};
pub use clock::{Clock, ManualClock, SystemClock};
pub use email::{Email, EmailError};
pub use error::{AuthError, ErrorCode};
pub use id::{
    ApiTokenId, AuditEventId, ChallengeId, ExternalAccountId, InvitationId, OneTimeTokenId, OrgId,
    PasskeyId, SessionId, UserId,
};
pub use model::{
    ApiTokenRecord, AuditEvent, AuditKind, AuditQuery, Challenge, ChallengeKind, ExternalAccount,
    Invitation, Member, Membership, MfaStatus, NewUser, OAuthFlow, OneTimeToken, OrgAccess,
    Organization, Passkey, PasswordCredential, Session, TokenPurpose, TotpFactor, User,
    UserOrganization,
};
pub use password::{PasswordConfig, PasswordConfigError, PasswordError, PasswordHasher, Verified};
pub use password_policy::{PasswordPolicy, PasswordPolicyConfigError, WeakPassword};
pub use principal::{Credential, Principal, RecentAuth, Requirement};
pub use rate_limit::{RateDecision, RateLimit, RateLimitConfig, RateLimiter, SignInAttempt};
pub use rbac::{InvalidName, Permission, Role, RolePermissions, UnknownRoles};
pub use secret::{SecretString, TokenHash};
pub use store::{
    ApiTokenStore, AuditStore, AuthStore, ChallengeStore, ChangeLogStore, Conflict,
    ExternalAccountStore, InvitationStore, LoggedChange, MfaStore, OAuthFlowStore,
    OneTimeTokenStore, OrganizationStore, RateLimitStore, SessionStore, StoreError, StoreResult,
    UserStore,
};
