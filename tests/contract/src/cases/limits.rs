//! Rate limits on failed sign-ins.

use crate::flows::{self, PASSWORD};
use crate::{AppUnderTest, Reply};

/// The failed sign-ins allowed per email in 15 minutes.
const FAILED_SIGN_INS: usize = 10;

/// Asserts 429 `rate_limited` with `Retry-After` in whole seconds, more than 0 and at most the
/// 15-minute window.
#[track_caller]
fn assert_rate_limited(reply: &Reply) {
    reply.problem(429, "rate_limited");
    let retry_after = reply
        .header("retry-after")
        .unwrap_or_else(|| panic!("429 carries Retry-After: {reply}"));
    let seconds: u64 = retry_after
        .parse()
        .unwrap_or_else(|e| panic!("Retry-After is whole seconds ({e}): {reply}"));
    assert!(
        (1..=15 * 60).contains(&seconds),
        "Retry-After within the window: {reply}"
    );
}

/// After 10 failed sign-ins for one email (its case does not matter) the 11th answers 429
/// `rate_limited` with `Retry-After`, even with the right password and no session is made; the
/// limit is per email — another account still signs in.
pub async fn sign_in_is_rate_limited_per_email_after_ten_failures(app: &AppUnderTest) {
    flows::sign_up(app, "ada@example.com").await;
    flows::sign_up(app, "grace@example.com").await;
    for attempt in 0..FAILED_SIGN_INS {
        let email = if attempt % 2 == 0 {
            "ada@example.com"
        } else {
            "ADA@example.com"
        };
        flows::try_sign_in(app, email, "wrong password, again")
            .await
            .problem(401, "invalid_credentials");
    }
    let reply = flows::try_sign_in(app, "ada@example.com", PASSWORD).await;
    assert_rate_limited(&reply);
    assert!(reply.session_set_cookie().is_none(), "no session: {reply}");

    flows::sign_in(app, "grace@example.com", PASSWORD).await;
}

/// The per-email limit holds for an email that has no account, too (the answers do not tell
/// which addresses exist).
pub async fn sign_in_is_rate_limited_for_an_unknown_email(app: &AppUnderTest) {
    for _ in 0..FAILED_SIGN_INS {
        flows::try_sign_in(app, "nobody@example.com", PASSWORD)
            .await
            .problem(401, "invalid_credentials");
    }
    assert_rate_limited(&flows::try_sign_in(app, "nobody@example.com", PASSWORD).await);
}
