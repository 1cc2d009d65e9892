//! One error type with stable machine codes and HTTP statuses.
//!
//! The codes are those of the HTTP contract (`application/problem+json` bodies carry them in
//! `code`). They are part of the public API: a code, once shipped, keeps its meaning.

use std::fmt;

/// Generates [`ErrorCode`] from one table: each row is the variant (with its doc), the code
/// string sent to clients, the HTTP status and the problem+json title. The enum, `ALL`,
/// `as_str`, `status`, `title` and `FromStr` all come from the table, so they cannot disagree.
macro_rules! error_codes {
    ($($(#[doc = $doc:literal])* $variant:ident = ($code:literal, $status:literal, $title:literal),)+) => {
        /// A stable, machine-readable error code, with the HTTP status it answers with.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum ErrorCode {
            $($(#[doc = $doc])* $variant,)+
        }

        impl ErrorCode {
            /// Every code, for exhaustive tests and documentation.
            pub const ALL: [ErrorCode; [$(ErrorCode::$variant),+].len()] = [$(Self::$variant),+];

            /// The snake_case code sent to clients.
            #[must_use]
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $code,)+
                }
            }

            /// The HTTP status code.
            #[must_use]
            pub const fn status(self) -> u16 {
                match self {
                    $(Self::$variant => $status,)+
                }
            }

            /// A short human-readable title (the problem+json `title`).
            #[must_use]
            pub const fn title(self) -> &'static str {
                match self {
                    $(Self::$variant => $title,)+
                }
            }
        }

        impl std::str::FromStr for ErrorCode {
            type Err = UnknownErrorCode;

            /// The code whose [`as_str`](ErrorCode::as_str) is `s` (a client reading a
            /// problem+json `code`, say).
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($code => Ok(Self::$variant),)+
                    _ => Err(UnknownErrorCode),
                }
            }
        }
    };
}

error_codes! {
    /// 400: the request is malformed or asks for something impossible.
    InvalidRequest = ("invalid_request", 400, "The request is invalid"),
    /// 400: a one-time token (verification, reset, invitation) is unknown, used or expired.
    InvalidLink = ("invalid_link", 400, "This link is invalid or has expired"),
    /// 400: a second-factor code (TOTP or recovery code) is wrong, replayed or used, or a
    /// passkey's answer does not verify.
    InvalidCode = ("invalid_code", 400, "The code is invalid"),
    /// 401: no credential was presented.
    Unauthenticated = ("unauthenticated", 401, "Authentication required"),
    /// 401: wrong email or password (the two are never told apart).
    InvalidCredentials = ("invalid_credentials", 401, "Invalid email or password"),
    /// 401: the session has ended.
    SessionExpired = ("session_expired", 401, "The session has expired"),
    /// 401: the API token is malformed, forged, or not ours.
    TokenInvalid = ("token_invalid", 401, "The token is invalid"),
    /// 401: the API token has expired.
    TokenExpired = ("token_expired", 401, "The token has expired"),
    /// 401: the API token was revoked.
    TokenRevoked = ("token_revoked", 401, "The token has been revoked"),
    /// 403: authenticated, but not allowed.
    Forbidden = ("forbidden", 403, "Not allowed"),
    /// 403: the API token lacks a scope the route needs.
    InsufficientScope = ("insufficient_scope", 403, "The token lacks a required scope"),
    /// 403: the cross-site request check failed.
    CsrfRejected = ("csrf_rejected", 403, "Cross-site request refused"),
    /// 403: the action needs a verified email address.
    EmailNotVerified = ("email_not_verified", 403, "The email address is not verified"),
    /// 403: an operator disabled the account (told only after the right password).
    AccountDisabled = ("account_disabled", 403, "This account is disabled"),
    /// 403: the action needs a recent authentication (step-up): re-authenticate with
    /// `POST /auth/reauthenticate`, then retry.
    ReauthenticationRequired = (
        "reauthentication_required",
        403,
        "Confirm it is you: authenticate again"
    ),
    /// 403: the organization requires a second factor of its members, and the caller has
    /// none: set one up to continue.
    MfaRequired = ("mfa_required", 403, "Set up a second factor to continue"),
    /// 404: no such resource (or not visible to the caller).
    NotFound = ("not_found", 404, "Not found"),
    /// 405: the route exists but not for this method.
    MethodNotAllowed = ("method_not_allowed", 405, "Method not allowed"),
    /// 409: an account with this email exists.
    EmailTaken = ("email_taken", 409, "An account with this email already exists"),
    /// 409: the organization would be left without an owner.
    LastOwner = ("last_owner", 409, "An organization must keep at least one owner"),
    /// 409: the resource exists already (a slug, a membership, a linked account).
    Conflict = ("conflict", 409, "It exists already"),
    /// 409: removing this would leave the user no way to sign in (no password and no other
    /// linked provider).
    LastSignInMethod = ("last_sign_in_method", 409, "This is the account's last way to sign in"),
    /// 413: the body is larger than allowed.
    PayloadTooLarge = ("payload_too_large", 413, "The request body is too large"),
    /// 415: the body is not JSON.
    UnsupportedMediaType = ("unsupported_media_type", 415, "The request body must be JSON"),
    /// 422: an empty or unknown scope list.
    InvalidScope = ("invalid_scope", 422, "The scopes are invalid"),
    /// 422: the password is too short, too long, or too common.
    WeakPassword = ("weak_password", 422, "The password is too weak"),
    /// 429: too many attempts; retry later.
    RateLimited = ("rate_limited", 429, "Too many attempts"),
    /// 500: something went wrong on our side; nothing more is said.
    Internal = ("internal", 500, "Internal error"),
    /// 503: a dependency (the store, the change feed) cannot answer; the request is refused.
    Unavailable = ("unavailable", 503, "Service unavailable"),
}

/// A string that is no [`ErrorCode`]'s code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("unknown error code")]
pub struct UnknownErrorCode;

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

    /// Every code string, status and title as shipped: the table may be reordered or grown,
    /// never changed under a client.
    #[test]
    fn every_code_string_status_and_title_is_pinned() {
        let pinned: [(ErrorCode, &str, u16, &str); 29] = [
            (
                ErrorCode::InvalidRequest,
                "invalid_request",
                400,
                "The request is invalid",
            ),
            (
                ErrorCode::InvalidLink,
                "invalid_link",
                400,
                "This link is invalid or has expired",
            ),
            (
                ErrorCode::InvalidCode,
                "invalid_code",
                400,
                "The code is invalid",
            ),
            (
                ErrorCode::Unauthenticated,
                "unauthenticated",
                401,
                "Authentication required",
            ),
            (
                ErrorCode::InvalidCredentials,
                "invalid_credentials",
                401,
                "Invalid email or password",
            ),
            (
                ErrorCode::SessionExpired,
                "session_expired",
                401,
                "The session has expired",
            ),
            (
                ErrorCode::TokenInvalid,
                "token_invalid",
                401,
                "The token is invalid",
            ),
            (
                ErrorCode::TokenExpired,
                "token_expired",
                401,
                "The token has expired",
            ),
            (
                ErrorCode::TokenRevoked,
                "token_revoked",
                401,
                "The token has been revoked",
            ),
            (ErrorCode::Forbidden, "forbidden", 403, "Not allowed"),
            (
                ErrorCode::InsufficientScope,
                "insufficient_scope",
                403,
                "The token lacks a required scope",
            ),
            (
                ErrorCode::CsrfRejected,
                "csrf_rejected",
                403,
                "Cross-site request refused",
            ),
            (
                ErrorCode::EmailNotVerified,
                "email_not_verified",
                403,
                "The email address is not verified",
            ),
            (
                ErrorCode::AccountDisabled,
                "account_disabled",
                403,
                "This account is disabled",
            ),
            (
                ErrorCode::ReauthenticationRequired,
                "reauthentication_required",
                403,
                "Confirm it is you: authenticate again",
            ),
            (
                ErrorCode::MfaRequired,
                "mfa_required",
                403,
                "Set up a second factor to continue",
            ),
            (ErrorCode::NotFound, "not_found", 404, "Not found"),
            (
                ErrorCode::MethodNotAllowed,
                "method_not_allowed",
                405,
                "Method not allowed",
            ),
            (
                ErrorCode::EmailTaken,
                "email_taken",
                409,
                "An account with this email already exists",
            ),
            (
                ErrorCode::LastOwner,
                "last_owner",
                409,
                "An organization must keep at least one owner",
            ),
            (ErrorCode::Conflict, "conflict", 409, "It exists already"),
            (
                ErrorCode::LastSignInMethod,
                "last_sign_in_method",
                409,
                "This is the account's last way to sign in",
            ),
            (
                ErrorCode::PayloadTooLarge,
                "payload_too_large",
                413,
                "The request body is too large",
            ),
            (
                ErrorCode::UnsupportedMediaType,
                "unsupported_media_type",
                415,
                "The request body must be JSON",
            ),
            (
                ErrorCode::InvalidScope,
                "invalid_scope",
                422,
                "The scopes are invalid",
            ),
            (
                ErrorCode::WeakPassword,
                "weak_password",
                422,
                "The password is too weak",
            ),
            (
                ErrorCode::RateLimited,
                "rate_limited",
                429,
                "Too many attempts",
            ),
            (ErrorCode::Internal, "internal", 500, "Internal error"),
            (
                ErrorCode::Unavailable,
                "unavailable",
                503,
                "Service unavailable",
            ),
        ];
        assert_eq!(ErrorCode::ALL.len(), pinned.len());
        for (code, (pinned_code, s, status, title)) in ErrorCode::ALL.into_iter().zip(pinned) {
            assert_eq!(code, pinned_code);
            assert_eq!(code.as_str(), s);
            assert_eq!(code.status(), status, "{s}");
            assert_eq!(code.title(), title, "{s}");
            assert_eq!(code.to_string(), s);
            assert_eq!(s.parse::<ErrorCode>(), Ok(code));
        }
        assert_eq!("Forbidden".parse::<ErrorCode>(), Err(UnknownErrorCode));
        assert_eq!("".parse::<ErrorCode>(), Err(UnknownErrorCode));
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
