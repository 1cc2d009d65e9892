//! # keystead-core
//!
//! The small core of keystead: what a store crate needs and nothing more. The model (users,
//! credentials, sessions, organizations, memberships, roles and permissions, invitations, API
//! token records, one-time tokens, audit events), typed ids, secrets and token hashes, the clock,
//! the error type with its stable codes, the rate-limit rule, the change-feed and key-store
//! traits, and the store traits that `keystead-postgres` and `keystead-sqlite` implement.
//!
//! It has no password hashing, no mail, no JWT and no HTTP: those live in `keystead` (the flows
//! and the HTTP surface), which re-exports everything here at the same paths. `cargo tree -p
//! keystead-core` shows no argon2, lettre, jsonwebtoken, sqlx or web framework.
//!
//! ```
//! use keystead_core::{Email, ErrorCode, Permission, Role, RolePermissions};
//!
//! let email = Email::parse(" Alice@Example.com ").unwrap();
//! assert_eq!(email.as_str(), "alice@example.com");
//!
//! let roles = RolePermissions::default();
//! assert!(roles.grants(&Role::OWNER, &Permission::from_static("billing:manage")));
//! assert_eq!(ErrorCode::LastOwner.status(), 409);
//! ```
#![forbid(unsafe_code)]

/// The `time` crate, whose `OffsetDateTime` and `Duration` the API uses.
pub use time;
/// The `uuid` crate, which the ids wrap.
pub use uuid;

pub mod clock;
pub mod email;
pub mod error;
pub mod feed;
pub mod id;
pub mod keys;
pub mod model;
pub mod rate_limit;
pub mod rbac;
pub mod secret;
pub mod sql;
pub mod store;

pub use clock::{Clock, ManualClock, SystemClock};
pub use email::{Email, EmailError};
pub use error::{AuthError, ErrorCode, UnknownErrorCode};
pub use feed::{Change, ChangeFeed, FeedEvent, InProcessFeed};
pub use id::{
    ApiTokenId, AuditEventId, ChallengeId, ExternalAccountId, InvitationId, OneTimeTokenId, OrgId,
    PasskeyId, SessionId, UserId,
};
pub use keys::{KeyAlgorithm, KeyStore, StoredKey};
pub use model::{
    ApiTokenRecord, AuditEvent, AuditKind, AuditQuery, Challenge, ChallengeKind, ExternalAccount,
    Invitation, Member, Membership, MfaStatus, NewUser, OAuthFlow, OneTimeToken, OrgAccess,
    Organization, Passkey, PasswordCredential, Session, TokenPurpose, TotpFactor, User,
    UserOrganization,
};
pub use rate_limit::{RateDecision, RateLimit};
pub use rbac::{InvalidName, Permission, Role, RolePermissions, UnknownRoles};
pub use secret::{SecretString, TokenHash};
pub use store::{
    ApiTokenStore, AuditStore, AuthStore, ChallengeStore, ChangeLogStore, Conflict,
    ExternalAccountStore, InvitationStore, LoggedChange, MfaStore, OAuthFlowStore,
    OneTimeTokenStore, OrganizationStore, RateLimitStore, SessionStore, StoreError, StoreResult,
    UserStore,
};
