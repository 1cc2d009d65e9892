//! Rate limits on failed sign-ins.

use std::time::{Duration, Instant};

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

/// The failed sign-ins allowed per client address in 15 minutes.
const FAILED_SIGN_INS_PER_ADDRESS: usize = 100;

/// The window of the per-address limit.
const ADDRESS_WINDOW: Duration = Duration::from_secs(15 * 60);

/// Sends `send(i)` for `i = 0, 1, …`: the first `limit` answers must be 401, and a 429 must
/// come before the slots that refilled meanwhile run out too (the limit refills one slot every
/// `window / limit`: on a slow machine 100 sign-ins take long enough for a slot or two to come
/// back, which is the limit working, not failing). Returns the 429.
async fn refused_within<F, Fut>(limit: usize, window: Duration, send: F) -> Reply
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = Reply>,
{
    let started = Instant::now();
    for i in 0.. {
        let reply = send(i).await;
        if i < limit {
            reply.problem(401, "invalid_credentials");
            continue;
        }
        if reply.status == 429 {
            assert_rate_limited(&reply);
            return reply;
        }
        let refilled = started.elapsed().as_secs_f64() * limit as f64 / window.as_secs_f64();
        assert!(
            (i - limit) as f64 <= refilled.ceil(),
            "answer {i} is past the limit of {limit} and the {refilled:.1} slots that refilled \
             in {:?}: {reply}",
            started.elapsed()
        );
        reply.problem(401, "invalid_credentials");
    }
    unreachable!("the loop returns or panics")
}

/// A sign-in with a malformed email counts against the client address's limit before any
/// password work: a flood of them from one address is answered 429 `rate_limited`.
pub async fn malformed_email_sign_ins_are_rate_limited_per_address(app: &AppUnderTest) {
    refused_within(
        FAILED_SIGN_INS_PER_ADDRESS,
        ADDRESS_WINDOW,
        |i| async move { flows::try_sign_in(app, &format!("not-an-email-{i}"), PASSWORD).await },
    )
    .await;
}

/// Behind a trusted proxy (`TRUSTED_PROXIES`), the per-address limit keys on the address the
/// proxy appended, also when it appends a header line of its own after the client's forged
/// one: varying the forged line does not buy a new budget, and another client behind the same
/// proxy keeps its own.
pub async fn sign_in_limit_keys_on_the_address_a_trusted_proxy_appended(app: &AppUnderTest) {
    let proxied = app.sibling_with(&[("TRUSTED_PROXIES", "127.0.0.1")]).await;
    let sign_in = |i: usize, forged: String, client: &'static str| {
        proxied
            .client()
            .post("/auth/sign-in")
            .app_origin()
            // The client's own line, then the line the proxy appended.
            .header("x-forwarded-for", &forged)
            .header("x-forwarded-for", client)
            .json(&serde_json::json!({
                "email": format!("nobody-{i}@example.com"),
                "password": PASSWORD,
            }))
            .send()
    };
    refused_within(FAILED_SIGN_INS_PER_ADDRESS, ADDRESS_WINDOW, |i| {
        sign_in(i, format!("198.51.100.{}", i % 250), "203.0.113.7")
    })
    .await;
    sign_in(1001, "198.51.100.252".to_owned(), "203.0.113.8")
        .await
        .problem(401, "invalid_credentials");
    proxied.finish().await;
}
