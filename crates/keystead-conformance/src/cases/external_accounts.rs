//! [`ExternalAccountStore`](keystead::ExternalAccountStore): identities at OpenID Connect providers, keyed on
//! (issuer, subject).

use std::sync::Arc;

use keystead::{AuthStore, Clock, Conflict, ExternalAccountId, ManualClock, UserId};
use time::Duration;

use super::{assert_conflict, assert_not_found, given_user};
use crate::fixtures::external_account;

const GOOGLE: &str = "https://accounts.google.com";
const OTHER: &str = "https://idp.example.com";

/// A link reads back with every field, optional ones set or not, by (issuer, subject) and in
/// the user's list.
pub async fn external_account_round_trips_every_field(store: Arc<dyn AuthStore>) {
    let clock = ManualClock::starting_now();
    let user = given_user(&*store, "linked@example.com").await;
    let mut full = external_account(user.id, GOOGLE, "1098765432101234567890", clock.now());
    full.provider = "google".to_owned();
    full.email = Some("Linked@Gmail.example".to_owned());
    full.email_verified = true;
    full.last_used_at = Some(clock.now() + Duration::seconds(3));
    store.link_external_account(&full).await.expect("link");
    clock.advance(Duration::minutes(1));
    let bare = external_account(user.id, OTHER, "sub|42", clock.now());
    store.link_external_account(&bare).await.expect("link");

    assert_eq!(
        store.external_account(GOOGLE, &full.subject).await.unwrap(),
        Some(full.clone())
    );
    assert_eq!(
        store.external_account(OTHER, &bare.subject).await.unwrap(),
        Some(bare.clone())
    );
    assert_eq!(
        store.external_accounts_for_user(user.id).await.unwrap(),
        vec![full, bare]
    );
}

/// Lookups of links that do not exist give `Ok(None)` or an empty list; issuer and subject
/// must both match.
pub async fn external_account_lookups_of_missing_rows_give_none(store: Arc<dyn AuthStore>) {
    let clock = ManualClock::starting_now();
    let user = given_user(&*store, "linked@example.com").await;
    let link = external_account(user.id, GOOGLE, "abc", clock.now());
    store.link_external_account(&link).await.unwrap();
    assert_eq!(store.external_account(GOOGLE, "abd").await.unwrap(), None);
    assert_eq!(store.external_account(OTHER, "abc").await.unwrap(), None);
    assert!(
        store
            .external_accounts_for_user(UserId::new())
            .await
            .unwrap()
            .is_empty()
    );
}

/// An (issuer, subject) that is linked already is `Conflict::ExternalAccount`, for another
/// user or the same one; the same subject at another issuer, or a subject differing only in
/// case (subjects are case-sensitive), is another identity.
pub async fn linking_a_linked_identity_is_refused(store: Arc<dyn AuthStore>) {
    let clock = ManualClock::starting_now();
    let alice = given_user(&*store, "alice@example.com").await;
    let mallory = given_user(&*store, "mallory@example.com").await;
    let link = external_account(alice.id, GOOGLE, "subject-1", clock.now());
    store.link_external_account(&link).await.unwrap();

    let theft = external_account(mallory.id, GOOGLE, "subject-1", clock.now());
    assert_conflict(
        store.link_external_account(&theft).await,
        Conflict::ExternalAccount,
        "another user",
    );
    let twice = external_account(alice.id, GOOGLE, "subject-1", clock.now());
    assert_conflict(
        store.link_external_account(&twice).await,
        Conflict::ExternalAccount,
        "the same user again",
    );
    assert_eq!(
        store.external_account(GOOGLE, "subject-1").await.unwrap(),
        Some(link.clone())
    );
    assert!(
        store
            .external_accounts_for_user(mallory.id)
            .await
            .unwrap()
            .is_empty()
    );

    let elsewhere = external_account(mallory.id, OTHER, "subject-1", clock.now());
    store
        .link_external_account(&elsewhere)
        .await
        .expect("same subject, other issuer");
    // Another provider of mallory's: one identity per (user, provider).
    let mut cased = external_account(mallory.id, GOOGLE, "SUBJECT-1", clock.now());
    cased.provider = "google".to_owned();
    store
        .link_external_account(&cased)
        .await
        .expect("subjects are case-sensitive");
    assert_eq!(
        store.external_account(GOOGLE, "subject-1").await.unwrap(),
        Some(link)
    );
    assert_eq!(
        store.external_account(GOOGLE, "SUBJECT-1").await.unwrap(),
        Some(cased)
    );
}

/// Linking for a user that does not exist is `NotFound`.
pub async fn linking_for_unknown_user_is_not_found(store: Arc<dyn AuthStore>) {
    let clock = ManualClock::starting_now();
    let link = external_account(UserId::new(), GOOGLE, "orphan", clock.now());
    assert_not_found(
        store.link_external_account(&link).await,
        "link for unknown user",
    );
    assert_eq!(
        store.external_account(GOOGLE, "orphan").await.unwrap(),
        None
    );
}

/// `external_accounts_for_user` lists only that user's links, oldest first.
pub async fn external_accounts_for_user_are_oldest_first(store: Arc<dyn AuthStore>) {
    let clock = ManualClock::starting_now();
    let user = given_user(&*store, "many@example.com").await;
    let other = given_user(&*store, "other@example.com").await;
    let mut links = Vec::new();
    // One link per provider: three providers.
    for (provider, subject) in [("google", "first"), ("oidc", "second"), ("corp", "third")] {
        let mut link = external_account(user.id, GOOGLE, subject, clock.now());
        link.provider = provider.to_owned();
        links.push(link);
        clock.advance(Duration::minutes(1));
    }
    for i in [1, 2, 0] {
        store.link_external_account(&links[i]).await.unwrap();
    }
    let others = external_account(other.id, GOOGLE, "others", clock.now());
    store.link_external_account(&others).await.unwrap();
    assert_eq!(
        store.external_accounts_for_user(user.id).await.unwrap(),
        links
    );
    assert_eq!(
        store.external_accounts_for_user(other.id).await.unwrap(),
        vec![others]
    );
}

/// `touch_external_account` records the provider's current email claim and the sign-in
/// time, and changes nothing else; an unknown link is `NotFound`.
pub async fn touch_external_account_records_email_and_time(store: Arc<dyn AuthStore>) {
    let clock = ManualClock::starting_now();
    let user = given_user(&*store, "touch@example.com").await;
    let link = external_account(user.id, GOOGLE, "toucher", clock.now());
    store.link_external_account(&link).await.unwrap();

    clock.advance(Duration::hours(1));
    store
        .touch_external_account(
            link.id,
            Some("New.Address@Gmail.example"),
            true,
            clock.now(),
        )
        .await
        .expect("touch");
    let mut expected = link.clone();
    expected.email = Some("New.Address@Gmail.example".to_owned());
    expected.email_verified = true;
    expected.last_used_at = Some(clock.now());
    assert_eq!(
        store.external_account(GOOGLE, "toucher").await.unwrap(),
        Some(expected.clone())
    );

    clock.advance(Duration::hours(1));
    store
        .touch_external_account(link.id, None, false, clock.now())
        .await
        .expect("touch");
    expected.email = None;
    expected.email_verified = false;
    expected.last_used_at = Some(clock.now());
    assert_eq!(
        store.external_account(GOOGLE, "toucher").await.unwrap(),
        Some(expected)
    );

    assert_not_found(
        store
            .touch_external_account(ExternalAccountId::new(), None, false, clock.now())
            .await,
        "touch an unknown link",
    );
}

/// `unlink_external_account` removes the user's own link; another user's link, or one that
/// is gone, is `NotFound`.
pub async fn unlink_external_account_removes_only_the_users_link(store: Arc<dyn AuthStore>) {
    let clock = ManualClock::starting_now();
    let alice = given_user(&*store, "alice@example.com").await;
    let bob = given_user(&*store, "bob@example.com").await;
    let alices = external_account(alice.id, GOOGLE, "alice-sub", clock.now());
    let bobs = external_account(bob.id, GOOGLE, "bob-sub", clock.now());
    store.link_external_account(&alices).await.unwrap();
    store.link_external_account(&bobs).await.unwrap();

    assert_not_found(
        store.unlink_external_account(bob.id, alices.id).await,
        "not bob's link",
    );
    assert_eq!(
        store.external_account(GOOGLE, "alice-sub").await.unwrap(),
        Some(alices.clone())
    );

    store
        .unlink_external_account(alice.id, alices.id)
        .await
        .expect("unlink");
    assert_eq!(
        store.external_account(GOOGLE, "alice-sub").await.unwrap(),
        None
    );
    assert!(
        store
            .external_accounts_for_user(alice.id)
            .await
            .unwrap()
            .is_empty()
    );
    assert_not_found(
        store.unlink_external_account(alice.id, alices.id).await,
        "unlink twice",
    );
    assert_eq!(
        store.external_accounts_for_user(bob.id).await.unwrap(),
        vec![bobs]
    );
}

/// One identity per (user, provider): a second link of the same user at the same provider
/// (another subject, or another issuer under that provider's name) is
/// `Conflict::ProviderLinked` and the first link stays; another user may link at that
/// provider, and the user may link at another provider.
pub async fn linking_a_second_identity_at_a_provider_is_refused(store: Arc<dyn AuthStore>) {
    let clock = ManualClock::starting_now();
    let user = given_user(&*store, "one@example.com").await;
    let other = given_user(&*store, "two@example.com").await;
    let mut first = external_account(user.id, GOOGLE, "mine", clock.now());
    first.provider = "google".to_owned();
    store
        .link_external_account(&first)
        .await
        .expect("first link");

    for (issuer, subject) in [(GOOGLE, "a-second-one"), (OTHER, "mine")] {
        let mut second = external_account(user.id, issuer, subject, clock.now());
        second.provider = "google".to_owned();
        assert_conflict(
            store.link_external_account(&second).await,
            Conflict::ProviderLinked,
            "a second identity at the same provider",
        );
        assert_eq!(
            store.external_account(issuer, subject).await.unwrap(),
            None,
            "nothing linked"
        );
    }
    assert_eq!(
        store.external_accounts_for_user(user.id).await.unwrap(),
        vec![first.clone()]
    );

    let mut theirs = external_account(other.id, GOOGLE, "theirs", clock.now());
    theirs.provider = "google".to_owned();
    store
        .link_external_account(&theirs)
        .await
        .expect("another user at the same provider");
    let mut elsewhere = external_account(user.id, OTHER, "mine-elsewhere", clock.now());
    elsewhere.provider = "oidc".to_owned();
    store
        .link_external_account(&elsewhere)
        .await
        .expect("the same user at another provider");

    // Once unlinked, the provider is free for another identity of the user.
    store
        .unlink_external_account(user.id, first.id)
        .await
        .expect("unlink");
    let mut again = external_account(user.id, GOOGLE, "a-second-one", clock.now());
    again.provider = "google".to_owned();
    store
        .link_external_account(&again)
        .await
        .expect("a new identity after the unlink");
}
