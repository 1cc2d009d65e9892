//! Rate limits on credential endpoints, kept in the store so that they hold across instances.
//!
//! ```no_run
//! # async fn example(store: std::sync::Arc<dyn keystead::AuthStore>) -> Result<(), keystead::AuthError> {
//! use std::sync::Arc;
//! use keystead::rate_limit::{RateLimitConfig, RateLimiter};
//! use keystead::{Email, SystemClock};
//!
//! let limiter = RateLimiter::new(store, RateLimitConfig::default(), Arc::new(SystemClock));
//! let email = Email::parse("alice@example.com").unwrap();
//! let ip = "203.0.113.7".parse().unwrap();
//!
//! // Before verifying the password: 429 `rate_limited` (with Retry-After) past a limit.
//! let attempt = limiter.begin_sign_in(&email, ip).await?;
//! let password_ok = true; // … verify the password here …
//! if password_ok {
//!     attempt.succeeded().await?; // only failures count
//! }
//! # Ok(())
//! # }
//! ```
//!
//! ## The limits (the contract's defaults; each is a setting of [`RateLimitConfig`])
//! | what | key | default |
//! |---|---|---|
//! | failed sign-ins | the normalized email, known or not | 10 per 15 minutes |
//! | failed sign-ins | the client address | 100 per 15 minutes |
//! | sign-ups | the client address | 100 per hour |
//! | reset and verification mails (one budget) | the account | 5 per hour |
//! | API tokens created (`POST /api/tokens`) | the user | 20 per hour |
//!
//! ## The algorithm
//! Each key is one row holding a *theoretical arrival time* (`tat`), the generic cell rate
//! algorithm (GCRA): with the emission interval `T = window / limit` (rounded up to a whole
//! microsecond), an event at `now` fits when `max(tat, now) - now <= (limit - 1) · T`, and then
//! `tat` becomes `max(tat, now) + T`. So `limit` events fit at once, and after that one more
//! every `T` (a key idle for a whole `window` is back to a full burst). A refused event records
//! nothing and learns how long until one would fit. The decision is [`RateLimit::admit`], one
//! pure function that every store runs inside its own atomic read-modify-write of the row.
//!
//! GCRA is a leaky bucket, not a sliding log: its long-run rate is `limit` per `window`, but right
//! after an idle period a full burst followed by the steady refill can fit up to `2·limit − 1`
//! events in one `window` (19 failed sign-ins in the first 15 minutes, then 10 per 15 minutes).
//! In exchange each key costs one row and one atomic update, whatever the limit.
//!
//! ## Why sign-in reserves before it verifies
//! Checking the limit, verifying the password, then recording the failure would let an attacker
//! who sends many guesses *at once* have them all pass the check before any failure is recorded.
//! [`RateLimiter::begin_sign_in`] therefore takes a slot on both keys before the password is
//! verified, and [`SignInAttempt::succeeded`] gives the slots back: only failures count, and no
//! more guesses than the limit are ever verified in parallel. An attempt that is dropped without
//! `succeeded` (an error, a panic, a cancelled request) counts as a failure.
//!
//! ## Keys
//! A key is the SHA-256 of a purpose and a value (`TokenHash::of("…/sign-in/email/alice@x.com")`),
//! so no email or address is stored in the table. IPv6 clients are keyed by their /64 network
//! (one subscriber usually holds a whole /64, so per-address keys would be free to multiply);
//! IPv4-mapped IPv6 addresses count as their IPv4 address.

use std::net::IpAddr;
use std::sync::Arc;

use time::Duration;

use crate::clock::Clock;
use crate::email::Email;
use crate::error::AuthError;
use crate::id::UserId;
use crate::secret::TokenHash;
use crate::store::{RateLimitStore, StoreResult};

pub use keystead_core::rate_limit::{Admission, MAX_WINDOW, RateDecision, RateLimit};

/// The limits, one setting each; [`Default`] gives the contract's values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RateLimitConfig {
    /// Failed sign-ins per normalized email, known or not. Default: 10 per 15 minutes.
    pub sign_in_per_email: RateLimit,
    /// Failed sign-ins per client address. Default: 100 per 15 minutes.
    pub sign_in_per_address: RateLimit,
    /// Sign-ups per client address. Default: 100 per hour.
    pub sign_up_per_address: RateLimit,
    /// Reset and verification mails per account (one budget for both). Default: 5 per hour.
    pub mail_per_account: RateLimit,
    /// Sign-in (and link) flows with a provider started per client address: each stores a
    /// flow for ten minutes. Default: 100 per 15 minutes.
    pub oauth_start_per_address: RateLimit,
    /// API tokens created (`POST /api/tokens`) per user, whatever the organization. Default:
    /// 20 per hour.
    pub token_create_per_user: RateLimit,
    /// Failed second-factor attempts (TOTP and recovery codes, at sign-in, enrolment and
    /// re-authentication) per user: a six-digit code must not be guessable. Default: 10 per
    /// 15 minutes.
    pub mfa_per_user: RateLimit,
    /// Passkey authentication ceremonies begun (`POST /auth/passkeys/authenticate/options`,
    /// public) per client address: each stores a ceremony for five minutes. Default: 300 per
    /// 15 minutes.
    pub passkey_options_per_address: RateLimit,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            sign_in_per_email: RateLimit::new(10, Duration::minutes(15)),
            sign_in_per_address: RateLimit::new(100, Duration::minutes(15)),
            sign_up_per_address: RateLimit::new(100, Duration::hours(1)),
            mail_per_account: RateLimit::new(5, Duration::hours(1)),
            oauth_start_per_address: RateLimit::new(100, Duration::minutes(15)),
            token_create_per_user: RateLimit::new(20, Duration::hours(1)),
            mfa_per_user: RateLimit::new(10, Duration::minutes(15)),
            passkey_options_per_address: RateLimit::new(300, Duration::minutes(15)),
        }
    }
}

/// The key for a purpose and a value: in one place, versioned, so that keys of different
/// purposes never collide and no raw email or address reaches the store.
fn key(purpose: &str, value: &str) -> TokenHash {
    TokenHash::of(&format!("authkit/rate-limit/v1/{purpose}/{value}"))
}

/// The client address as it is keyed: IPv4 as is (IPv4-mapped IPv6 too), IPv6 by its /64.
fn address_key_value(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

/// The contract's rate limits over a [`RateLimitStore`].
#[derive(Debug, Clone)]
pub struct RateLimiter {
    store: Arc<dyn RateLimitStore>,
    config: RateLimitConfig,
    clock: Arc<dyn Clock>,
}

/// A sign-in that holds a slot on the email's and the address's limits. Call
/// [`succeeded`](Self::succeeded) when the password was right; otherwise (dropped) it counts as
/// a failed sign-in.
#[derive(Debug)]
#[must_use = "drop it on a failed sign-in, call `succeeded` on a successful one"]
pub struct SignInAttempt {
    limiter: RateLimiter,
    email_key: Option<TokenHash>,
    address_key: TokenHash,
}

impl RateLimiter {
    /// A limiter over `store` (an `Arc<dyn AuthStore>` coerces), with times from `clock`.
    #[must_use]
    pub fn new(
        store: Arc<dyn RateLimitStore>,
        config: RateLimitConfig,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            store,
            config,
            clock,
        }
    }

    /// The limits in force.
    #[must_use]
    pub const fn config(&self) -> &RateLimitConfig {
        &self.config
    }

    /// Starts a sign-in for `email` from `client`: takes a slot on the address's and then the
    /// email's failed sign-in limits, before the password is verified.
    ///
    /// # Errors
    /// 429 [`rate_limited`](crate::ErrorCode::RateLimited) with `retry_after_secs` when either
    /// limit is used up (whatever the password: do not verify it), taking nothing; a store
    /// error as [`AuthError`].
    pub async fn begin_sign_in(
        &self,
        email: &Email,
        client: IpAddr,
    ) -> Result<SignInAttempt, AuthError> {
        let now = self.clock.now();
        let address_key = key("sign-in/address", &address_key_value(client));
        let email_key = key("sign-in/email", email.as_str());
        let address_rule = self.config.sign_in_per_address;
        let email_rule = self.config.sign_in_per_email;

        checked(
            self.store
                .rate_limit_hit(&address_key, address_rule, now)
                .await?,
            "sign_in_address",
        )?;
        let by_email = match self.store.rate_limit_hit(&email_key, email_rule, now).await {
            Ok(decision) => decision,
            Err(err) => {
                self.give_back(&address_key, address_rule).await;
                return Err(err.into());
            }
        };
        if !by_email.allowed {
            crate::telemetry::rate_limited("sign_in_email");
            self.give_back(&address_key, address_rule).await;
            return Err(AuthError::rate_limited(by_email.retry_after_secs()));
        }
        Ok(SignInAttempt {
            limiter: self.clone(),
            email_key: Some(email_key),
            address_key,
        })
    }

    /// Starts a sign-in that has no email to key on (a malformed one): takes a slot on the
    /// address's failed sign-in limit only, before any password work, so that a flood of
    /// malformed sign-ins from one address is refused like any other.
    ///
    /// # Errors
    /// 429 [`rate_limited`](crate::ErrorCode::RateLimited) past the address's limit; a store
    /// error as [`AuthError`].
    pub async fn begin_sign_in_without_email(
        &self,
        client: IpAddr,
    ) -> Result<SignInAttempt, AuthError> {
        let address_key = key("sign-in/address", &address_key_value(client));
        checked(
            self.store
                .rate_limit_hit(
                    &address_key,
                    self.config.sign_in_per_address,
                    self.clock.now(),
                )
                .await?,
            "sign_in_address",
        )?;
        Ok(SignInAttempt {
            limiter: self.clone(),
            email_key: None,
            address_key,
        })
    }

    /// Counts a sign-up from `client` (call it before creating the account).
    ///
    /// # Errors
    /// 429 [`rate_limited`](crate::ErrorCode::RateLimited) past the limit; a store error as
    /// [`AuthError`].
    pub async fn hit_sign_up(&self, client: IpAddr) -> Result<(), AuthError> {
        let key = key("sign-up/address", &address_key_value(client));
        checked(
            self.store
                .rate_limit_hit(&key, self.config.sign_up_per_address, self.clock.now())
                .await?,
            "sign_up_address",
        )
    }

    /// Counts a start of a flow with a provider from `client` (before the flow is stored).
    ///
    /// # Errors
    /// 429 [`rate_limited`](crate::ErrorCode::RateLimited) past the limit; a store error as
    /// [`AuthError`].
    pub async fn hit_oauth_start(&self, client: IpAddr) -> Result<(), AuthError> {
        let key = key("oauth-start/address", &address_key_value(client));
        checked(
            self.store
                .rate_limit_hit(&key, self.config.oauth_start_per_address, self.clock.now())
                .await?,
            "oauth_start_address",
        )
    }

    /// Counts a passkey authentication ceremony begun from `client` (before it is stored).
    ///
    /// # Errors
    /// 429 [`rate_limited`](crate::ErrorCode::RateLimited) past the limit; a store error as
    /// [`AuthError`].
    pub async fn hit_passkey_options(&self, client: IpAddr) -> Result<(), AuthError> {
        let key = key("passkey-options/address", &address_key_value(client));
        checked(
            self.store
                .rate_limit_hit(
                    &key,
                    self.config.passkey_options_per_address,
                    self.clock.now(),
                )
                .await?,
            "passkey_options_address",
        )
    }

    /// Counts a creation of an API token by `user_id` (before it is made).
    ///
    /// # Errors
    /// 429 [`rate_limited`](crate::ErrorCode::RateLimited) past the limit; a store error as
    /// [`AuthError`].
    pub async fn hit_token_create(&self, user_id: UserId) -> Result<(), AuthError> {
        let key = key("token-create/user", &user_id.to_string());
        checked(
            self.store
                .rate_limit_hit(&key, self.config.token_create_per_user, self.clock.now())
                .await?,
            "token_create_user",
        )
    }

    /// Takes a slot on `user_id`'s second-factor attempts limit, before a code is checked;
    /// give it back with [`second_factor_succeeded`](Self::second_factor_succeeded) when the
    /// code was right.
    ///
    /// # Errors
    /// 429 [`rate_limited`](crate::ErrorCode::RateLimited) past the limit; a store error as
    /// [`AuthError`].
    pub async fn begin_second_factor(&self, user_id: UserId) -> Result<(), AuthError> {
        let key = key("mfa/user", &user_id.to_string());
        checked(
            self.store
                .rate_limit_hit(&key, self.config.mfa_per_user, self.clock.now())
                .await?,
            "mfa_user",
        )
    }

    /// Gives back the slot of a right second-factor code (only failures count).
    pub async fn second_factor_succeeded(&self, user_id: UserId) {
        let key = key("mfa/user", &user_id.to_string());
        self.give_back(&key, self.config.mfa_per_user).await;
    }

    /// Counts a reset or verification mail to `user_id`: `Ok(true)` to send it, `Ok(false)`
    /// past the limit (do not send it, and answer as if it was sent).
    ///
    /// # Errors
    /// A store error as [`AuthError`].
    pub async fn hit_account_mail(&self, user_id: UserId) -> Result<bool, AuthError> {
        let key = key("mail/account", &user_id.to_string());
        let decision = self
            .store
            .rate_limit_hit(&key, self.config.mail_per_account, self.clock.now())
            .await?;
        if !decision.allowed {
            crate::telemetry::rate_limited("account_mail");
        }
        Ok(decision.allowed)
    }

    /// Removes the state of keys idle long enough to be back to a full burst; returns how many.
    ///
    /// # Errors
    /// A store error as [`AuthError`].
    pub async fn delete_expired(&self) -> Result<u64, AuthError> {
        Ok(self
            .store
            .delete_expired_rate_limits(self.clock.now())
            .await?)
    }

    /// Gives a slot back; a failure is logged, not returned (the slot then counts, which is
    /// the safe side).
    async fn give_back(&self, key: &TokenHash, rule: RateLimit) {
        if let Err(err) = self.refund(key, rule).await {
            tracing::warn!(error = %err, "could not give back a rate limit slot");
        }
    }

    async fn refund(&self, key: &TokenHash, rule: RateLimit) -> StoreResult<()> {
        self.store
            .rate_limit_refund(key, rule, self.clock.now())
            .await
    }
}

/// `decision` as a result; a refusal is counted by `rule` (`keystead_rate_limit_refusals_total`).
fn checked(decision: RateDecision, rule: &'static str) -> Result<(), AuthError> {
    if !decision.allowed {
        crate::telemetry::rate_limited(rule);
    }
    decision.into_result()
}

impl SignInAttempt {
    /// The password was right: gives the slots back, so that only failures count.
    ///
    /// # Errors
    /// A store error as [`AuthError`] (the slots then stay taken).
    pub async fn succeeded(self) -> Result<(), AuthError> {
        let config = self.limiter.config;
        if let Some(email_key) = &self.email_key {
            self.limiter
                .refund(email_key, config.sign_in_per_email)
                .await?;
        }
        self.limiter
            .refund(&self.address_key, config.sign_in_per_address)
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use time::OffsetDateTime;
    use time::macros::datetime;

    use super::*;

    const T0: OffsetDateTime = datetime!(2026-01-01 00:00 UTC);

    /// Runs `n` hits at `now` against a `tat`, returning the decisions and the final `tat`.
    fn burst(
        rule: RateLimit,
        mut tat: Option<OffsetDateTime>,
        now: OffsetDateTime,
        n: usize,
    ) -> (Vec<RateDecision>, Option<OffsetDateTime>) {
        let mut out = Vec::new();
        for _ in 0..n {
            let a = rule.admit(tat, now);
            if let Some(t) = a.new_tat {
                tat = Some(t);
            }
            out.push(a.decision);
        }
        (out, tat)
    }

    #[test]
    fn exactly_limit_fit_at_once_then_one_per_interval() {
        let rule = RateLimit::new(10, Duration::minutes(15));
        assert_eq!(rule.interval(), Duration::seconds(90));
        let (decisions, tat) = burst(rule, None, T0, 11);
        assert!(decisions[..10].iter().all(|d| d.allowed));
        assert_eq!(decisions[10], RateDecision::refused(Duration::seconds(90)));
        assert_eq!(decisions[10].retry_after_secs(), 90);
        // One microsecond short of the interval: still refused, by one microsecond.
        let early = rule.admit(tat, T0 + Duration::seconds(90) - Duration::MICROSECOND);
        assert_eq!(early.decision, RateDecision::refused(Duration::MICROSECOND));
        assert_eq!(early.decision.retry_after_secs(), 1);
        let (later, _) = burst(rule, tat, T0 + Duration::seconds(90), 2);
        assert!(later[0].allowed);
        assert!(!later[1].allowed);
        // A whole window idle: a full burst again.
        let (again, _) = burst(rule, tat, T0 + Duration::minutes(15), 11);
        assert_eq!(again.iter().filter(|d| d.allowed).count(), 10);
    }

    #[test]
    fn uneven_windows_still_allow_exactly_limit_at_once() {
        for (limit, window) in [
            (3, Duration::microseconds(1000)),
            (7, Duration::seconds(10)),
            (1_000_000, Duration::microseconds(1_000_001)),
            (1, Duration::hours(1)),
        ] {
            let rule = RateLimit::new(limit, window);
            let n = usize::try_from(limit).unwrap();
            let (d, _) = burst(rule, None, T0, n + 1);
            assert!(d[..n].iter().all(|d| d.allowed), "{rule:?}");
            assert!(!d[n].allowed, "{rule:?}");
            // The long-run rate never exceeds limit per window.
            assert!(rule.interval() * i32::try_from(limit).unwrap() >= window);
        }
    }

    #[test]
    fn degenerate_rules_refuse_everything_or_nothing() {
        let none = RateLimit::new(0, Duration::minutes(5));
        let a = none.admit(None, T0);
        assert!(!a.decision.allowed);
        assert_eq!(a.new_tat, None);
        assert_eq!(a.decision.retry_after, Duration::minutes(5));
        let zero_window = RateLimit::new(0, Duration::ZERO).admit(None, T0);
        assert_eq!(zero_window.decision.retry_after_secs(), 1);

        let unlimited = RateLimit::new(1, Duration::ZERO);
        let (d, _) = burst(unlimited, None, T0, 100);
        assert!(d.iter().all(|d| d.allowed));
        let huge = RateLimit::new(u32::MAX, Duration::MAX);
        assert!(huge.admit(None, T0).decision.allowed);
    }

    #[test]
    fn a_refund_gives_one_slot_back_but_never_banks_capacity() {
        let rule = RateLimit::new(2, Duration::minutes(10));
        let (_, tat) = burst(rule, None, T0, 2);
        let tat = tat.unwrap();
        assert!(!rule.admit(Some(tat), T0).decision.allowed);
        let refunded = rule.refund(tat, T0);
        assert!(rule.admit(Some(refunded), T0).decision.allowed);
        // Long idle: the refund cannot move tat before now.
        let late = T0 + Duration::hours(2);
        assert_eq!(rule.refund(tat, late), late);
    }

    #[test]
    fn refusals_become_429_with_retry_after_rounded_up() {
        let e = RateDecision::refused(Duration::milliseconds(1500))
            .into_result()
            .unwrap_err();
        assert_eq!(e.code, crate::ErrorCode::RateLimited);
        assert_eq!(e.status(), 429);
        assert_eq!(e.retry_after_secs, Some(2));
        assert_eq!(RateDecision::refused(Duration::ZERO).retry_after_secs(), 1);
        assert!(RateDecision::ALLOWED.into_result().is_ok());
    }

    #[test]
    fn keys_hide_values_and_separate_purposes() {
        let a = key("sign-in/email", "alice@example.com");
        assert_ne!(a, key("sign-up/address", "alice@example.com"));
        assert_eq!(a, key("sign-in/email", "alice@example.com"));
        assert!(!format!("{a:?}").contains("alice"));
    }

    #[test]
    fn ipv6_clients_share_their_64_and_mapped_ipv4_is_ipv4() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(
            address_key_value(ip("2001:db8:1:2::1")),
            address_key_value(ip("2001:db8:1:2:ffff:ffff:ffff:ffff"))
        );
        assert_ne!(
            address_key_value(ip("2001:db8:1:2::1")),
            address_key_value(ip("2001:db8:1:3::1"))
        );
        assert_eq!(
            address_key_value(ip("::ffff:203.0.113.7")),
            address_key_value(ip("203.0.113.7"))
        );
        assert_ne!(
            address_key_value(ip("203.0.113.7")),
            address_key_value(ip("203.0.113.8"))
        );
    }
}
