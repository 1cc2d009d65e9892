//! What keystead tells an operator: metrics through the [`metrics`] facade, and `tracing`
//! spans per request and per flow.
//!
//! # Metrics
//!
//! keystead records through the `metrics` facade and installs no recorder: an app installs the
//! one it wants (the example apps install `metrics-exporter-prometheus`'s and serve it at
//! `GET /metrics` on a listener of its own, `METRICS_BIND`). Events off the hot path (sign-ins,
//! refusals, shed hashing) are recorded as they happen. What the hot path counts (cache
//! lookups, tokens that verify) it counts in plain atomics, and [`Auth::export_metrics`]
//! copies them to the recorder together with the gauges: call it before rendering a scrape
//! (the examples do), and the background tasks call it every [`EXPORT_INTERVAL`] for a recorder
//! that pushes. Install the recorder before the first request; counts made before it are
//! copied at the first export, events are not.
//!
//! | name | kind | labels | what |
//! |---|---|---|---|
//! | `keystead_sign_ins_total` | counter | `method` (`password`, `provider`, `handoff`), `outcome` | sign-ins; `outcome` is `succeeded` or the error code (`invalid_credentials`, `rate_limited`, `unavailable`, `account_disabled`, …) |
//! | `keystead_sign_ups_total` | counter | `outcome` | sign-ups with a password |
//! | `keystead_rate_limit_refusals_total` | counter | `rule` (`sign_in_address`, `sign_in_email`, `sign_up_address`, `oauth_start_address`, `passkey_options_address`, `token_create_user`, `account_mail`) | requests refused by a rate limit |
//! | `keystead_token_verifications_total` | counter | `outcome` (`valid`, `token_invalid`, `token_expired`, `token_revoked`, `unavailable`) | API tokens presented |
//! | `keystead_cache_lookups_total` | counter | `cache` (`sessions`, `token_members`), `result` (`hit`, `miss`) | lookups of the in-process caches; the hit ratio is `hit / (hit + miss)` |
//! | `keystead_change_feed_fresh` | gauge | | 1 while the change log is read within the staleness bound (API tokens are accepted), else 0 |
//! | `keystead_change_feed_lag_seconds` | gauge | | seconds since the change log was last read |
//! | `keystead_password_hashes_in_flight` | gauge | | password hashes running now |
//! | `keystead_password_hash_queue_depth` | gauge | | callers waiting for a hashing permit |
//! | `keystead_password_hash_wait_seconds` | histogram | | how long a caller waited for a permit (only those that waited) |
//! | `keystead_password_hash_shed_total` | counter | | hashing refused because the queue was full (503) |
//!
//! # Spans
//!
//! - `keystead.request` (level DEBUG, as tower-http's request spans): one per request through
//!   an adapter's layer or middleware, around the app's handler too. Fields: `method`, `path`
//!   (never the query string, which can carry a one-time token), `credential` (`session`,
//!   `api_token` or `none`), `user_id`, `org_id`, `outcome` (`authenticated`, `anonymous`, or the
//!   error code of a refused credential).
//! - one span per flow (level INFO): `keystead.sign_up`, `keystead.sign_in`,
//!   `keystead.sign_out`, `keystead.sign_out_everywhere`, `keystead.verify_email`,
//!   `keystead.password_reset.request`, `keystead.password_reset.confirm`,
//!   `keystead.change_password`, `keystead.oauth.start`, `keystead.oauth.callback`,
//!   `keystead.handoff`, `keystead.token.issue`, `keystead.token.revoke`, `keystead.org.create`,
//!   `keystead.org.invite`, `keystead.org.accept_invitation`. They take none of their
//!   arguments as fields (no password, token, code or email); `keystead.sign_in` and
//!   `keystead.sign_up` record `user_id` and `outcome`.
//!
//! No field of any span or event holds a password, a session token, an API token, a one-time
//! token or an authorization code: `tests/telemetry.rs` runs every flow under a subscriber
//! that keeps everything down to TRACE and searches the output for each secret it used.

use std::time::Duration as StdDuration;

use metrics::{counter, gauge, histogram};
use tracing::Span;

use crate::{AuthError, Authentication, Principal};

/// How often the background tasks copy the hot path's counts and the gauges to the recorder.
pub const EXPORT_INTERVAL: StdDuration = StdDuration::from_secs(5);

/// `keystead_sign_ins_total`.
pub const SIGN_INS: &str = "keystead_sign_ins_total";
/// `keystead_sign_ups_total`.
pub const SIGN_UPS: &str = "keystead_sign_ups_total";
/// `keystead_rate_limit_refusals_total`.
pub const RATE_LIMIT_REFUSALS: &str = "keystead_rate_limit_refusals_total";
/// `keystead_token_verifications_total`.
pub const TOKEN_VERIFICATIONS: &str = "keystead_token_verifications_total";
/// `keystead_cache_lookups_total`.
pub const CACHE_LOOKUPS: &str = "keystead_cache_lookups_total";
/// `keystead_change_feed_fresh`.
pub const CHANGE_FEED_FRESH: &str = "keystead_change_feed_fresh";
/// `keystead_change_feed_lag_seconds`.
pub const CHANGE_FEED_LAG: &str = "keystead_change_feed_lag_seconds";
/// `keystead_password_hashes_in_flight`.
pub const HASHES_IN_FLIGHT: &str = "keystead_password_hashes_in_flight";
/// `keystead_password_hash_queue_depth`.
pub const HASH_QUEUE_DEPTH: &str = "keystead_password_hash_queue_depth";
/// `keystead_password_hash_wait_seconds`.
pub const HASH_WAIT: &str = "keystead_password_hash_wait_seconds";
/// `keystead_password_hash_shed_total`.
pub const HASH_SHED: &str = "keystead_password_hash_shed_total";

/// Registers the help text of every metric with the installed recorder.
pub fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        SIGN_INS,
        "Sign-ins by method and outcome (succeeded or the error code)."
    );
    describe_counter!(SIGN_UPS, "Sign-ups with a password by outcome.");
    describe_counter!(
        RATE_LIMIT_REFUSALS,
        "Requests refused by a rate limit, by rule."
    );
    describe_counter!(
        TOKEN_VERIFICATIONS,
        "API tokens presented, by outcome (valid or the error code)."
    );
    describe_counter!(
        CACHE_LOOKUPS,
        "Lookups of the in-process caches by cache and result (hit or miss)."
    );
    describe_gauge!(
        CHANGE_FEED_FRESH,
        "1 while the change log is read within the staleness bound, else 0."
    );
    describe_gauge!(
        CHANGE_FEED_LAG,
        Unit::Seconds,
        "Seconds since the change log was last read."
    );
    describe_gauge!(HASHES_IN_FLIGHT, "Password hashes running now.");
    describe_gauge!(
        HASH_QUEUE_DEPTH,
        "Callers waiting for a password hashing permit."
    );
    describe_histogram!(
        HASH_WAIT,
        Unit::Seconds,
        "How long callers waited for a password hashing permit."
    );
    describe_counter!(
        HASH_SHED,
        "Password hashing refused because the queue was full."
    );
}

/// `succeeded`, or the error's code: the `outcome` label and span field of a flow.
pub(crate) fn outcome<T>(result: &Result<T, AuthError>) -> &'static str {
    match result {
        Ok(_) => "succeeded",
        Err(err) => err.code.as_str(),
    }
}

/// Counts a sign-in by `method` and records its outcome on the flow's span.
pub(crate) fn sign_in<T>(method: &'static str, span: &Span, result: &Result<T, AuthError>) {
    let outcome = outcome(result);
    span.record("outcome", outcome);
    counter!(SIGN_INS, "method" => method, "outcome" => outcome).increment(1);
}

/// Counts a sign-up and records its outcome on the flow's span.
pub(crate) fn sign_up<T>(span: &Span, result: &Result<T, AuthError>) {
    let outcome = outcome(result);
    span.record("outcome", outcome);
    counter!(SIGN_UPS, "outcome" => outcome).increment(1);
}

/// Counts a refusal by the rate limit `rule`.
pub(crate) fn rate_limited(rule: &'static str) {
    counter!(RATE_LIMIT_REFUSALS, "rule" => rule).increment(1);
}

/// Counts a refused API token (good ones are counted in atomics on the hot path).
pub(crate) fn token_refused(err: &AuthError) {
    counter!(TOKEN_VERIFICATIONS, "outcome" => err.code.as_str()).increment(1);
}

/// Records how long a caller waited for a hashing permit.
pub(crate) fn hash_waited(waited: StdDuration) {
    histogram!(HASH_WAIT).record(waited.as_secs_f64());
}

/// Counts hashing refused because the queue was full.
pub(crate) fn hash_shed() {
    counter!(HASH_SHED).increment(1);
}

/// The hot path's counts and the gauges, as [`Auth::export_metrics`](crate::Auth::export_metrics)
/// hands them to the recorder.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub(crate) struct Snapshot {
    pub(crate) session_hits: u64,
    pub(crate) session_misses: u64,
    pub(crate) member_hits: u64,
    pub(crate) member_misses: u64,
    pub(crate) tokens_valid: u64,
    pub(crate) feed_fresh: bool,
    pub(crate) feed_lag_seconds: f64,
    pub(crate) hashes_in_flight: usize,
    pub(crate) hash_queue_depth: usize,
}

impl Snapshot {
    pub(crate) fn export(&self) {
        describe_once();
        let lookups = [
            ("sessions", "hit", self.session_hits),
            ("sessions", "miss", self.session_misses),
            ("token_members", "hit", self.member_hits),
            ("token_members", "miss", self.member_misses),
        ];
        for (cache, result, count) in lookups {
            counter!(CACHE_LOOKUPS, "cache" => cache, "result" => result).absolute(count);
        }
        counter!(TOKEN_VERIFICATIONS, "outcome" => "valid").absolute(self.tokens_valid);
        gauge!(CHANGE_FEED_FRESH).set(f64::from(u8::from(self.feed_fresh)));
        gauge!(CHANGE_FEED_LAG).set(self.feed_lag_seconds);
        #[allow(clippy::cast_precision_loss)] // counts of callers, far below 2^52
        {
            gauge!(HASHES_IN_FLIGHT).set(self.hashes_in_flight as f64);
            gauge!(HASH_QUEUE_DEPTH).set(self.hash_queue_depth as f64);
        }
    }
}

/// Registers the descriptions once per process (with the recorder installed at the first
/// export).
fn describe_once() {
    static DESCRIBED: std::sync::Once = std::sync::Once::new();
    DESCRIBED.call_once(describe);
}

/// The span of one request through an adapter: `keystead.request` at DEBUG, with the path
/// without its query. Adapters enter it while authenticating and around the app's future.
#[must_use]
pub fn request_span(method: &http::Method, path_and_query: &str) -> Span {
    // The field values are worked out only when the span is enabled.
    tracing::debug_span!(
        "keystead.request",
        method = %method,
        path = %path_and_query
            .split_once('?')
            .map_or(path_and_query, |(path, _)| path),
        credential = tracing::field::Empty,
        user_id = tracing::field::Empty,
        org_id = tracing::field::Empty,
        outcome = tracing::field::Empty,
    )
}

/// Records who a request turned out to be on its [`request_span`].
pub fn record_authentication(span: &Span, authn: &Authentication) {
    if span.is_disabled() {
        return;
    }
    match (&authn.principal, &authn.failure) {
        (Some(principal), _) => record_principal(span, principal),
        (None, Some(err)) => {
            span.record(
                "credential",
                if authn.bearer { "api_token" } else { "session" },
            );
            span.record("outcome", err.code.as_str());
        }
        (None, None) => {
            span.record("credential", "none");
            span.record("outcome", "anonymous");
        }
    }
}

fn record_principal(span: &Span, principal: &Principal) {
    let credential = match principal.credential {
        crate::Credential::ApiToken { .. } => "api_token",
        _ => "session",
    };
    span.record("credential", credential);
    span.record("user_id", tracing::field::display(principal.user.id));
    if let Some(org_id) = principal.org_id() {
        span.record("org_id", tracing::field::display(org_id));
    }
    span.record("outcome", "authenticated");
}
