//! # auth-core
//!
//! The framework-agnostic heart of the project: the domain (users, credentials, sessions,
//! organizations, memberships, roles and permissions, invitations, API token records, one-time
//! tokens, audit events), the storage traits that `auth-postgres` and `auth-sqlite` implement,
//! one error type with stable codes, password hashing and secret helpers.
//!
//! It depends on no web framework and no database driver: `cargo tree -p auth-core` shows no
//! axum, actix, tower or sqlx. Adapters translate; the core decides.
//!
//! ```
//! use auth_core::{Email, ErrorCode, Role, RolePermissions, Permission};
//!
//! let email = Email::parse(" Alice@Example.com ").unwrap();
//! assert_eq!(email.as_str(), "alice@example.com");
//!
//! let roles = RolePermissions::default();
//! assert!(roles.grants(&Role::OWNER, &Permission::from_static("billing:manage")));
//! assert_eq!(ErrorCode::LastOwner.status(), 409);
//! ```
#![forbid(unsafe_code)]

pub mod accounts;
pub mod auth;
pub mod clock;
pub mod email;
pub mod error;
pub mod gate;
pub mod id;
pub mod mail;
pub mod model;
pub mod oauth;
pub mod orgs;
pub mod password;
pub mod password_policy;
pub mod principal;
pub mod rate_limit;
pub mod rbac;
pub mod routes;
pub mod secret;
pub mod session;
pub mod store;
pub mod tokens;
pub mod web;

#[cfg(test)]
mod fuzz_parsers;

pub use auth::{Auth, AuthBuilder, Authentication};
pub use clock::{Clock, ManualClock, SystemClock};
pub use email::{Email, EmailError};
pub use error::{AuthError, ErrorCode};
pub use id::{
    ApiTokenId, AuditEventId, ExternalAccountId, InvitationId, OneTimeTokenId, OrgId, SessionId,
    UserId,
};
pub use model::{
    ApiTokenRecord, AuditEvent, AuditQuery, ExternalAccount, Invitation, Member, Membership,
    NewUser, OAuthFlow, OneTimeToken, Organization, PasswordCredential, Session, TokenPurpose,
    User, UserOrganization,
};
pub use password::{PasswordConfig, PasswordConfigError, PasswordError, PasswordHasher, Verified};
pub use password_policy::{PasswordPolicy, PasswordPolicyConfigError, WeakPassword};
pub use principal::{Credential, Principal, Requirement};
pub use rate_limit::{RateDecision, RateLimit, RateLimitConfig, RateLimiter, SignInAttempt};
pub use rbac::{InvalidName, Permission, Role, RolePermissions, UnknownRoles};
pub use secret::{SecretString, TokenHash};
pub use store::{
    ApiTokenStore, AuditStore, AuthStore, ChangeLogStore, Conflict, ExternalAccountStore,
    InvitationStore, LoggedChange, OAuthFlowStore, OneTimeTokenStore, OrganizationStore,
    RateLimitStore, SessionStore, StoreError, StoreResult, UserStore,
};
