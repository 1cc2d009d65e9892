//! One error type with stable machine codes and HTTP statuses.
//!
//! The codes are those of the HTTP contract (`application/problem+json` bodies carry them in
//! `code`). They are part of the public API: a code, once shipped, keeps its meaning.

use std::fmt;

/// A stable, machine-readable error code, with the HTTP status it answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// 400: the request is malformed or asks for something impossible.
    InvalidRequest,
    /// 400: a one-time token (verification, reset, invitation) is unknown, used or expired.
    InvalidLink,
    /// 401: no credential was presented.
    Unauthenticated,
    /// 401: wrong email or password (the two are never told apart).
    InvalidCredentials,
    /// 401: the session has ended.
    SessionExpired,
    /// 401: the API token is malformed, forged, or not ours.
    TokenInvalid,
    /// 401: the API token has expired.
    TokenExpired,
    /// 401: the API token was revoked.
    TokenRevoked,
    /// 403: authenticated, but not allowed.
    Forbidden,
    /// 403: the API token lacks a scope the route needs.
    InsufficientScope,
    /// 403: the cross-site request check failed.
    CsrfRejected,
    /// 403: the action needs a verified email address.
    EmailNotVerified,
    /// 404: no such resource (or not visible to the caller).
    NotFound,
    /// 405: the route exists but not for this method.
    MethodNotAllowed,
    /// 409: an account with this email exists.
    EmailTaken,
    /// 409: the organization would be left without an owner.
    LastOwner,
    /// 409: the resource exists already (a slug, a membership, a linked account).
    Conflict,
    /// 409: removing this would leave the user no way to sign in (no password and no other
    /// linked provider).
    LastSignInMethod,
    /// 413: the body is larger than allowed.
    PayloadTooLarge,
    /// 415: the body is not JSON.
    UnsupportedMediaType,
    /// 422: an empty or unknown scope list.
    InvalidScope,
    /// 422: the password is too short, too long, or too common.
    WeakPassword,
    /// 429: too many attempts; retry later.
    RateLimited,
    /// 500: something went wrong on our side; nothing more is said.
    Internal,
    /// 503: a dependency (the store, the change feed) cannot answer; the request is refused.
    Unavailable,
}

impl ErrorCode {
    /// Every code, for exhaustive tests and documentation.
    pub const ALL: [ErrorCode; 25] = [
        Self::InvalidRequest,
        Self::InvalidLink,
        Self::Unauthenticated,
        Self::InvalidCredentials,
        Self::SessionExpired,
        Self::TokenInvalid,
        Self::TokenExpired,
        Self::TokenRevoked,
        Self::Forbidden,
        Self::InsufficientScope,
        Self::CsrfRejected,
        Self::EmailNotVerified,
        Self::NotFound,
        Self::MethodNotAllowed,
        Self::EmailTaken,
        Self::LastOwner,
        Self::Conflict,
        Self::LastSignInMethod,
        Self::PayloadTooLarge,
        Self::UnsupportedMediaType,
        Self::InvalidScope,
        Self::WeakPassword,
        Self::RateLimited,
        Self::Internal,
        Self::Unavailable,
    ];

    /// The snake_case code sent to clients.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidLink => "invalid_link",
            Self::Unauthenticated => "unauthenticated",
            Self::InvalidCredentials => "invalid_credentials",
            Self::SessionExpired => "session_expired",
            Self::TokenInvalid => "token_invalid",
            Self::TokenExpired => "token_expired",
            Self::TokenRevoked => "token_revoked",
            Self::Forbidden => "forbidden",
            Self::InsufficientScope => "insufficient_scope",
            Self::CsrfRejected => "csrf_rejected",
            Self::EmailNotVerified => "email_not_verified",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::EmailTaken => "email_taken",
            Self::LastOwner => "last_owner",
            Self::Conflict => "conflict",
            Self::LastSignInMethod => "last_sign_in_method",
            Self::PayloadTooLarge => "payload_too_large",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::InvalidScope => "invalid_scope",
            Self::WeakPassword => "weak_password",
            Self::RateLimited => "rate_limited",
            Self::Internal => "internal",
            Self::Unavailable => "unavailable",
        }
    }

    /// The HTTP status code.
    #[must_use]
    pub const fn status(self) -> u16 {
        match self {
            Self::InvalidRequest | Self::InvalidLink => 400,
            Self::Unauthenticated
            | Self::InvalidCredentials
            | Self::SessionExpired
            | Self::TokenInvalid
            | Self::TokenExpired
            | Self::TokenRevoked => 401,
            Self::Forbidden
            | Self::InsufficientScope
            | Self::CsrfRejected
            | Self::EmailNotVerified => 403,
            Self::NotFound => 404,
            Self::MethodNotAllowed => 405,
            Self::EmailTaken | Self::LastOwner | Self::Conflict | Self::LastSignInMethod => 409,
            Self::PayloadTooLarge => 413,
            Self::UnsupportedMediaType => 415,
            Self::InvalidScope | Self::WeakPassword => 422,
            Self::RateLimited => 429,
            Self::Internal => 500,
            Self::Unavailable => 503,
        }
    }

    /// A short human-readable title (the problem+json `title`).
    #[must_use]
    pub const fn title(self) -> &'static str {
        match self {
            Self::InvalidRequest => "The request is invalid",
            Self::InvalidLink => "This link is invalid or has expired",
            Self::Unauthenticated => "Authentication required",
            Self::InvalidCredentials => "Invalid email or password",
            Self::SessionExpired => "The session has expired",
            Self::TokenInvalid => "The token is invalid",
            Self::TokenExpired => "The token has expired",
            Self::TokenRevoked => "The token has been revoked",
            Self::Forbidden => "Not allowed",
            Self::InsufficientScope => "The token lacks a required scope",
            Self::CsrfRejected => "Cross-site request refused",
            Self::EmailNotVerified => "The email address is not verified",
            Self::NotFound => "Not found",
            Self::MethodNotAllowed => "Method not allowed",
            Self::EmailTaken => "An account with this email already exists",
            Self::LastOwner => "An organization must keep at least one owner",
            Self::Conflict => "It exists already",
            Self::LastSignInMethod => "This is the account's last way to sign in",
            Self::PayloadTooLarge => "The request body is too large",
            Self::UnsupportedMediaType => "The request body must be JSON",
            Self::InvalidScope => "The scopes are invalid",
            Self::WeakPassword => "The password is too weak",
            Self::RateLimited => "Too many attempts",
            Self::Internal => "Internal error",
            Self::Unavailable => "Service unavailable",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error of every fallible operation in the core.
///
/// It carries a stable [`ErrorCode`] and, optionally, a detail that is safe to show to the
/// client. Internal causes (SQL, I/O) are logged through `tracing` where they happen and are
/// never part of the client-facing message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {}", detail.as_deref().unwrap_or(code.title()))]
#[non_exhaustive]
pub struct AuthError {
    /// The stable code.
    pub code: ErrorCode,
    /// A client-safe explanation, if there is more to say than the code's title.
    pub detail: Option<String>,
    /// For [`ErrorCode::RateLimited`]: seconds until a retry may succeed (`Retry-After`).
    pub retry_after_secs: Option<u64>,
    /// For [`ErrorCode::InsufficientScope`]: the scope that was missing.
    pub required_scope: Option<String>,
}

impl AuthError {
    /// An error with this code and no detail.
    #[must_use]
    pub const fn new(code: ErrorCode) -> Self {
        Self {
            code,
            detail: None,
            retry_after_secs: None,
            required_scope: None,
        }
    }

    /// Adds a client-safe detail.
    #[must_use]
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// A 429 that may be retried after `secs` seconds.
    #[must_use]
    pub const fn rate_limited(secs: u64) -> Self {
        let mut e = Self::new(ErrorCode::RateLimited);
        e.retry_after_secs = Some(secs);
        e
    }

    /// A 403 for a token that lacks `scope`.
    #[must_use]
    pub fn insufficient_scope(scope: impl Into<String>) -> Self {
        let mut e = Self::new(ErrorCode::InsufficientScope);
        e.required_scope = Some(scope.into());
        e
    }

    /// The HTTP status.
    #[must_use]
    pub const fn status(&self) -> u16 {
        self.code.status()
    }
}

impl From<ErrorCode> for AuthError {
    fn from(code: ErrorCode) -> Self {
        Self::new(code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Conflict, StoreError};

    #[test]
    fn codes_are_unique_snake_case_with_contract_statuses() {
        let mut seen = std::collections::HashSet::new();
        for code in ErrorCode::ALL {
            let s = code.as_str();
            assert!(seen.insert(s), "duplicate code {s}");
            assert!(s.chars().all(|c| c.is_ascii_lowercase() || c == '_'), "{s}");
            assert!((400..600).contains(&code.status()));
        }
        // Spot checks against the contract's list.
        assert_eq!(ErrorCode::InvalidLink.status(), 400);
        assert_eq!(ErrorCode::TokenRevoked.status(), 401);
        assert_eq!(ErrorCode::CsrfRejected.status(), 403);
        assert_eq!(ErrorCode::LastOwner.status(), 409);
        assert_eq!(ErrorCode::InvalidScope.status(), 422);
        assert_eq!(ErrorCode::Unavailable.status(), 503);
    }

    #[test]
    fn store_errors_map_to_codes_without_leaking_detail() {
        let e: AuthError = StoreError::Conflict(Conflict::Email).into();
        assert_eq!(e.code, ErrorCode::EmailTaken);
        let e: AuthError = StoreError::backend(std::io::Error::other("password=hunter2")).into();
        assert_eq!(e.code, ErrorCode::Internal);
        assert!(!e.to_string().contains("hunter2"));
        let e: AuthError = StoreError::LastOwner.into();
        assert_eq!(e.status(), 409);
    }
}
