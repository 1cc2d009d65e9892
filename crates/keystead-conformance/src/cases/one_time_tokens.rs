//! [`OneTimeTokenStore`](keystead::OneTimeTokenStore): mailed tokens for email verification and password reset, single
//! use and expiring.

use std::sync::Arc;

use keystead::{AuthStore, Clock, Conflict, ManualClock, OneTimeToken, TokenPurpose, UserId};
use time::Duration;

use super::{assert_conflict, assert_not_found, given_user};
use crate::fixtures::{email, one_time_token, token_hash};

async fn consume(
    store: &dyn AuthStore,
    token: &OneTimeToken,
    now: time::OffsetDateTime,
) -> Option<OneTimeToken> {
    store
        .consume_one_time_token(token.purpose, &token.token_hash, now)
        .await
        .expect("consume_one_time_token")
}

/// Consuming a token returns it, with every field and `used_at` set to `now`; a second
/// consume gives `None`.
pub async fn one_time_token_is_consumed_once(store: Arc<dyn AuthStore>) {
    let clock = ManualClock::starting_now();
    let user = given_user(&*store, "once@example.com").await;
    let mut token = one_time_token(user.id, TokenPurpose::EmailVerification, clock.now());
    token.email = Some(email("Once+Alias@Example.com"));
    token.expires_at = clock.now() + Duration::hours(24);
    store.create_one_time_token(&token).await.expect("create");

    clock.advance(Duration::minutes(10));
    let used_at = clock.now();
    let used = consume(&*store, &token, used_at).await;
    assert_eq!(
        used,
        Some(OneTimeToken {
            used_at: Some(used_at),
            ..token.clone()
        })
    );
    clock.advance(Duration::seconds(1));
    assert_eq!(
        consume(&*store, &token, clock.now()).await,
        None,
        "single use"
    );

    let mut bare = one_time_token(user.id, TokenPurpose::PasswordReset, clock.now());
    bare.email = None;
    store.create_one_time_token(&bare).await.expect("create");
    let used = consume(&*store, &bare, clock.now()).await;
    assert_eq!(
        used,
        Some(OneTimeToken {
            used_at: Some(clock.now()),
            ..bare
        })
    );
}

/// Consuming with the wrong purpose, an unknown hash, or after expiry gives `None` and does
/// not use the token up.
pub async fn consume_refuses_wrong_purpose_expired_and_unknown_tokens(store: Arc<dyn AuthStore>) {
    let clock = ManualClock::starting_now();
    let now = clock.now();
    let user = given_user(&*store, "refused@example.com").await;
    let reset = one_time_token(user.id, TokenPurpose::PasswordReset, now);
    let expiring = one_time_token(user.id, TokenPurpose::EmailVerification, now);
    store.create_one_time_token(&reset).await.unwrap();
    store.create_one_time_token(&expiring).await.unwrap();

    let wrong = store
        .consume_one_time_token(TokenPurpose::EmailVerification, &reset.token_hash, now)
        .await
        .unwrap();
    assert_eq!(wrong, None, "wrong purpose");
    assert!(
        consume(&*store, &reset, now).await.is_some(),
        "the right purpose still works"
    );

    let unknown = store
        .consume_one_time_token(TokenPurpose::PasswordReset, &token_hash(), now)
        .await
        .unwrap();
    assert_eq!(unknown, None, "unknown hash");

    let after_expiry = expiring.expires_at + Duration::seconds(1);
    assert_eq!(
        consume(&*store, &expiring, after_expiry).await,
        None,
        "expired"
    );
    assert_eq!(
        consume(&*store, &expiring, expiring.expires_at + Duration::days(1)).await,
        None,
        "long expired"
    );
    let before_expiry = expiring.expires_at - Duration::seconds(1);
    assert!(
        consume(&*store, &expiring, before_expiry).await.is_some(),
        "refusing an expired token did not use it"
    );
}

/// A second token with a taken hash is `Conflict::Token`.
pub async fn one_time_token_with_duplicate_hash_is_refused(store: Arc<dyn AuthStore>) {
    let clock = ManualClock::starting_now();
    let user = given_user(&*store, "dup@example.com").await;
    let first = one_time_token(user.id, TokenPurpose::PasswordReset, clock.now());
    store.create_one_time_token(&first).await.unwrap();
    let mut second = one_time_token(user.id, TokenPurpose::PasswordReset, clock.now());
    second.token_hash = first.token_hash;
    assert_conflict(
        store.create_one_time_token(&second).await,
        Conflict::Token,
        "same hash",
    );
    let used = consume(&*store, &first, clock.now())
        .await
        .expect("the first token");
    assert_eq!(used.id, first.id);
}

/// A token for a user that does not exist is `NotFound` (the user reference is a foreign
/// key, as for sessions).
pub async fn one_time_token_for_unknown_user_is_not_found(store: Arc<dyn AuthStore>) {
    let clock = ManualClock::starting_now();
    let orphan = one_time_token(UserId::new(), TokenPurpose::PasswordReset, clock.now());
    assert_not_found(
        store.create_one_time_token(&orphan).await,
        "token for unknown user",
    );
    assert_eq!(consume(&*store, &orphan, clock.now()).await, None);
}

/// `delete_one_time_tokens` deletes the user's outstanding tokens of one purpose, counts
/// them, and leaves the user's other purposes and other users' tokens usable.
pub async fn delete_one_time_tokens_deletes_the_users_tokens_of_one_purpose(
    store: Arc<dyn AuthStore>,
) {
    let clock = ManualClock::starting_now();
    let now = clock.now();
    let user = given_user(&*store, "user@example.com").await;
    let other = given_user(&*store, "other@example.com").await;
    let resets = [
        one_time_token(user.id, TokenPurpose::PasswordReset, now),
        one_time_token(user.id, TokenPurpose::PasswordReset, now),
    ];
    let verify = one_time_token(user.id, TokenPurpose::EmailVerification, now);
    let others = one_time_token(other.id, TokenPurpose::PasswordReset, now);
    for t in resets.iter().chain([&verify, &others]) {
        store.create_one_time_token(t).await.unwrap();
    }

    let deleted = store
        .delete_one_time_tokens(user.id, TokenPurpose::PasswordReset)
        .await;
    assert_eq!(deleted.unwrap(), 2);
    for t in &resets {
        assert_eq!(consume(&*store, t, now).await, None, "deleted");
    }
    assert_eq!(
        store
            .delete_one_time_tokens(user.id, TokenPurpose::PasswordReset)
            .await
            .unwrap(),
        0
    );
    assert!(
        consume(&*store, &verify, now).await.is_some(),
        "other purpose"
    );
    assert!(consume(&*store, &others, now).await.is_some(), "other user");
}

/// `delete_expired_one_time_tokens` deletes the tokens expired or used before `now`, counts
/// them, and leaves live tokens usable.
pub async fn delete_expired_one_time_tokens_removes_expired_and_used_tokens(
    store: Arc<dyn AuthStore>,
) {
    let clock = ManualClock::starting_now();
    let t0 = clock.now();
    let user = given_user(&*store, "cleanup@example.com").await;
    let short = one_time_token(user.id, TokenPurpose::PasswordReset, t0);
    let mut used = one_time_token(user.id, TokenPurpose::PasswordReset, t0);
    used.expires_at = t0 + Duration::hours(3);
    let mut live = one_time_token(user.id, TokenPurpose::PasswordReset, t0);
    live.expires_at = t0 + Duration::hours(3);
    let mut live_verify = one_time_token(user.id, TokenPurpose::EmailVerification, t0);
    live_verify.expires_at = t0 + Duration::hours(3);
    for t in [&short, &used, &live, &live_verify] {
        store.create_one_time_token(t).await.unwrap();
    }
    assert!(
        consume(&*store, &used, t0 + Duration::minutes(10))
            .await
            .is_some()
    );

    clock.advance(Duration::minutes(90));
    assert_eq!(
        store
            .delete_expired_one_time_tokens(clock.now())
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        store
            .delete_expired_one_time_tokens(clock.now())
            .await
            .unwrap(),
        0
    );
    assert!(
        consume(&*store, &live, clock.now()).await.is_some(),
        "live reset token"
    );
    assert!(
        consume(&*store, &live_verify, clock.now()).await.is_some(),
        "live verification"
    );
}
