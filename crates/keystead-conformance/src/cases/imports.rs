//! What moving in and operating need from a store: imported users with their external ids and
//! identities (in one transaction), disabled accounts, the hand-off of old sessions, paging
//! through organizations, and reading the audit log by kind and time.

use std::sync::Arc;

use keystead::{
    AuditQuery, AuthStore, Clock, Conflict, ManualClock, StoreError, TokenHash, UserId,
};
use time::Duration;

use super::{assert_conflict, assert_not_found, given_org, given_user, race};
use crate::fixtures::{
    audit_event, external_account, new_user, new_user_with_password, organization, password_hash,
    token_hash,
};

/// An imported user keeps every field given (its external id, creation time, verification),
/// its password hash as given (a bcrypt digest is stored as it is) and its identity links; it
/// is found by its external id.
pub async fn imported_user_round_trips_external_id_password_and_links(store: Arc<dyn AuthStore>) {
    let clock = ManualClock::starting_now();
    let mut new = new_user_with_password(
        "imported@example.com",
        keystead::SecretString::new(
            "$2b$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy".to_owned(),
        ),
    );
    new.user.external_id = Some("user_2aXb9YtkBNbMQeL5FjnWT0s1qZk".to_owned());
    new.user.created_at = clock.now() - Duration::days(400);
    new.user.email_verified_at = Some(new.user.created_at);
    new.user.name = Some("Zoë Ünïcödé".to_owned());
    let mut google = external_account(
        new.user.id,
        "https://accounts.google.com",
        "104857600123456789012",
        new.user.created_at,
    );
    google.provider = "google".to_owned();
    google.email = Some("imported@example.com".to_owned());
    google.email_verified = true;

    let created = store
        .import_user(&new, std::slice::from_ref(&google))
        .await
        .expect("import_user");
    assert_eq!(created, new.user, "import_user returns the user as given");
    assert_eq!(
        store
            .user_by_external_id("user_2aXb9YtkBNbMQeL5FjnWT0s1qZk")
            .await
            .unwrap(),
        Some(new.user.clone())
    );
    assert_eq!(
        store.user_by_id(new.user.id).await.unwrap(),
        Some(new.user.clone())
    );
    assert_eq!(
        store
            .password_credential(new.user.id)
            .await
            .unwrap()
            .map(|c| c.hash),
        new.password_hash.clone()
    );
    assert_eq!(
        store
            .external_account("https://accounts.google.com", "104857600123456789012")
            .await
            .unwrap(),
        Some(google)
    );
    assert_eq!(store.user_by_external_id("user_other").await.unwrap(), None);

    let plain = given_user(&*store, "plain@example.com").await;
    assert_eq!(plain.external_id, None);
    let set = store
        .set_user_external_id(plain.id, Some("auth0|5f7c8ec7c33c6c004bbafe82"))
        .await
        .unwrap();
    assert_eq!(
        set.external_id.as_deref(),
        Some("auth0|5f7c8ec7c33c6c004bbafe82")
    );
    assert_conflict(
        store
            .set_user_external_id(plain.id, Some("user_2aXb9YtkBNbMQeL5FjnWT0s1qZk"))
            .await,
        Conflict::UserExternalId,
        "another user's external id",
    );
    let cleared = store.set_user_external_id(plain.id, None).await.unwrap();
    assert_eq!(cleared, plain);
    assert_not_found(
        store.set_user_external_id(UserId::new(), Some("x")).await,
        "unknown user",
    );
}

/// An import refused for any part (a taken external id, email, or identity) writes nothing:
/// no user, no password, no link.
pub async fn refused_import_writes_nothing(store: Arc<dyn AuthStore>) {
    let clock = ManualClock::starting_now();
    let mut first = new_user("first@example.com");
    first.user.external_id = Some("user_1".to_owned());
    let link = external_account(
        first.user.id,
        "https://accounts.google.com",
        "g-1",
        clock.now(),
    );
    store
        .import_user(&first, std::slice::from_ref(&link))
        .await
        .expect("first import");

    // The same external id under another email.
    let mut same_id = new_user_with_password("other@example.com", password_hash("x"));
    same_id.user.external_id = Some("user_1".to_owned());
    assert_conflict(
        store.import_user(&same_id, &[]).await,
        Conflict::UserExternalId,
        "taken external id",
    );
    // A fresh external id, but an identity another user has.
    let mut same_identity = new_user_with_password("third@example.com", password_hash("y"));
    same_identity.user.external_id = Some("user_3".to_owned());
    let taken = external_account(
        same_identity.user.id,
        "https://accounts.google.com",
        "g-1",
        clock.now(),
    );
    assert_conflict(
        store.import_user(&same_identity, &[taken]).await,
        Conflict::ExternalAccount,
        "taken identity",
    );
    for refused in [&same_id, &same_identity] {
        assert_eq!(store.user_by_id(refused.user.id).await.unwrap(), None);
        assert_eq!(
            store.password_credential(refused.user.id).await.unwrap(),
            None
        );
        assert!(
            store
                .external_accounts_for_user(refused.user.id)
                .await
                .unwrap()
                .is_empty()
        );
    }
    assert_eq!(store.user_by_external_id("user_3").await.unwrap(), None);
}

/// Of 16 concurrent imports of one external id (under different emails, as two runs of an
/// import would race), exactly one creates a user; the others get
/// `Conflict::UserExternalId`.
pub async fn concurrent_imports_of_one_external_id_create_one_user(store: Arc<dyn AuthStore>) {
    let news: Vec<_> = (0..16)
        .map(|i| {
            let mut new = new_user_with_password(
                &format!("racer{i}@example.com"),
                password_hash(&format!("s{i}")),
            );
            new.user.external_id = Some("user_racer".to_owned());
            new
        })
        .collect();
    let results = race(news.len(), |i| {
        let store = Arc::clone(&store);
        let new = news[i].clone();
        async move { store.import_user(&new, &[]).await }
    })
    .await;
    let winners: Vec<usize> = (0..results.len()).filter(|&i| results[i].is_ok()).collect();
    assert_eq!(winners.len(), 1, "exactly one import wins: {results:?}");
    for (i, result) in results.iter().enumerate() {
        if i != winners[0] {
            assert!(
                matches!(result, Err(StoreError::Conflict(Conflict::UserExternalId))),
                "loser {i}: {result:?}"
            );
            assert_eq!(store.user_by_id(news[i].user.id).await.unwrap(), None);
        }
    }
    assert_eq!(
        store
            .user_by_external_id("user_racer")
            .await
            .unwrap()
            .map(|u| u.id),
        Some(news[winners[0]].user.id)
    );
}

/// `set_user_disabled` disables (keeping the first time when called again) and enables.
pub async fn set_user_disabled_keeps_the_first_time_and_enables(store: Arc<dyn AuthStore>) {
    let clock = ManualClock::starting_now();
    let user = given_user(&*store, "disable@example.com").await;
    assert!(!user.disabled());
    let first = clock.now();
    let disabled = store.set_user_disabled(user.id, Some(first)).await.unwrap();
    assert_eq!(disabled.disabled_at, Some(first));
    clock.advance(Duration::hours(1));
    let again = store
        .set_user_disabled(user.id, Some(clock.now()))
        .await
        .unwrap();
    assert_eq!(again.disabled_at, Some(first), "the first time is kept");
    assert_eq!(
        store
            .user_by_id(user.id)
            .await
            .unwrap()
            .unwrap()
            .disabled_at,
        Some(first)
    );
    let enabled = store.set_user_disabled(user.id, None).await.unwrap();
    assert_eq!(enabled, user);
    assert_eq!(store.user_by_id(user.id).await.unwrap(), Some(user));
    assert_not_found(
        store.set_user_disabled(UserId::new(), Some(first)).await,
        "unknown user",
    );
}

/// An old session is handed off once: of 16 concurrent claims of one key exactly one gets
/// `true`; another key is its own; an unknown user is not found.
pub async fn session_handoff_is_claimed_once_under_concurrency(store: Arc<dyn AuthStore>) {
    let clock = ManualClock::starting_now();
    let user = given_user(&*store, "handoff@example.com").await;
    let key = token_hash();
    let results = race(16, |_| {
        let store = Arc::clone(&store);
        let now = clock.now();
        async move { store.claim_session_handoff(&key, user.id, now).await }
    })
    .await;
    let won = results.iter().filter(|r| matches!(r, Ok(true))).count();
    assert_eq!(won, 1, "exactly one claim wins: {results:?}");
    assert!(
        results.iter().all(Result::is_ok),
        "losers get Ok(false): {results:?}"
    );
    assert!(
        !store
            .claim_session_handoff(&key, user.id, clock.now())
            .await
            .unwrap()
    );
    assert!(
        store
            .claim_session_handoff(&TokenHash::of("another"), user.id, clock.now())
            .await
            .unwrap()
    );
    assert_not_found(
        store
            .claim_session_handoff(&token_hash(), UserId::new(), clock.now())
            .await,
        "unknown user",
    );
}

/// Organizations page by id, ascending; an imported one is found by its external id, and a
/// second with the same external id is refused.
pub async fn organizations_page_by_id_and_are_found_by_external_id(store: Arc<dyn AuthStore>) {
    let clock = ManualClock::starting_now();
    let owner = given_user(&*store, "owner@example.com").await;
    let mut made = Vec::new();
    for i in 0..5 {
        made.push(given_org(&*store, &format!("org-{i}"), owner.id, clock.now()).await);
    }
    let mut imported = organization("imported", clock.now());
    imported.external_id = Some("org_2bQ".to_owned());
    store
        .create_organization(&imported, owner.id)
        .await
        .unwrap();
    made.push(imported.clone());
    made.sort_by_key(|o| o.id);

    let first = store.organizations(None, 4).await.unwrap();
    assert_eq!(first, made[..4]);
    let rest = store.organizations(Some(first[3].id), 4).await.unwrap();
    assert_eq!(rest, made[4..]);
    assert!(store.organizations(None, 0).await.unwrap().is_empty());

    assert_eq!(
        store.organization_by_external_id("org_2bQ").await.unwrap(),
        Some(imported)
    );
    assert_eq!(
        store.organization_by_external_id("org_none").await.unwrap(),
        None
    );
    let mut again = organization("imported-again", clock.now());
    again.external_id = Some("org_2bQ".to_owned());
    assert_conflict(
        store.create_organization(&again, owner.id).await,
        Conflict::OrgExternalId,
        "taken external id",
    );
    assert_eq!(store.organization(again.id).await.unwrap(), None);
}

/// Audit events filter by kind and by time (`since` inclusive, `until` exclusive), with the
/// other filters and paging.
pub async fn audit_events_filter_by_kind_and_time(store: Arc<dyn AuthStore>) {
    let clock = ManualClock::starting_now();
    let t0 = clock.now();
    let mut events = Vec::new();
    for i in 0..6 {
        let kind = if i % 2 == 0 {
            "sign_up"
        } else {
            "sign_in.failed"
        };
        let event = audit_event(kind, t0 + Duration::minutes(i));
        store.record_audit_event(&event).await.unwrap();
        events.push(event);
    }
    let ids =
        |found: Vec<keystead::AuditEvent>| found.into_iter().map(|e| e.id).collect::<Vec<_>>();
    let sign_ups = store
        .audit_events(&AuditQuery {
            kind: Some("sign_up".to_owned()),
            limit: 100,
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(
        ids(sign_ups),
        vec![events[4].id, events[2].id, events[0].id]
    );

    let window = store
        .audit_events(&AuditQuery {
            since: Some(t0 + Duration::minutes(1)),
            until: Some(t0 + Duration::minutes(4)),
            limit: 100,
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(ids(window), vec![events[3].id, events[2].id, events[1].id]);

    let paged = store
        .audit_events(&AuditQuery {
            kind: Some("sign_in.failed".to_owned()),
            since: Some(t0),
            before: Some(events[5].id),
            limit: 1,
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(ids(paged), vec![events[3].id]);
}
