//! [`ApiTokenStore`](keystead::ApiTokenStore): records of API tokens, their use and their revocation.

use std::sync::Arc;

use keystead::{
    ApiTokenId, ApiTokenRecord, AuthStore, Clock, Conflict, ManualClock, OrgId, Permission, Role,
    UserId,
};
use time::Duration;

use super::{assert_conflict, assert_not_found, given_member, given_org, given_user, sorted};
use crate::fixtures::api_token;

async fn stored(store: &dyn AuthStore, id: ApiTokenId) -> ApiTokenRecord {
    store
        .api_token(id)
        .await
        .expect("api_token")
        .expect("the record exists")
}

/// A record reads back with every field: several scopes (in order), none, a creator other
/// than the owner, a last use and a revocation.
pub async fn api_token_round_trips_every_field(store: Arc<dyn AuthStore>) {
    let clock = ManualClock::starting_now();
    let now = clock.now();
    let admin = given_user(&*store, "admin@example.com").await;
    let bot = given_user(&*store, "bot@example.com").await;
    let org = given_org(&*store, "acme", admin.id, now).await;
    given_member(&*store, org.id, bot.id, Role::MEMBER, now).await;

    let mut full = api_token(org.id, bot.id, now);
    full.name = "deploy — CI/CD \"prod\"".to_owned();
    full.scopes = ["read:deployments", "read:projects", "write:deployments"]
        .map(Permission::from_static)
        .to_vec();
    full.created_by = admin.id;
    full.expires_at = now + Duration::days(90);
    full.last_used_at = Some(now + Duration::seconds(30));
    full.revoked_at = Some(now + Duration::minutes(1));
    let mut empty = api_token(org.id, bot.id, now);
    empty.scopes = Vec::new();
    let plain = api_token(org.id, admin.id, now);
    for record in [&full, &empty, &plain] {
        store
            .create_api_token(record)
            .await
            .expect("create_api_token");
        assert_eq!(
            store.api_token(record.id).await.unwrap(),
            Some(record.clone())
        );
    }
}

/// Looking up a record that does not exist gives `Ok(None)`.
pub async fn api_token_lookup_of_missing_id_gives_none(store: Arc<dyn AuthStore>) {
    let clock = ManualClock::starting_now();
    let user = given_user(&*store, "owner@example.com").await;
    let org = given_org(&*store, "acme", user.id, clock.now()).await;
    store
        .create_api_token(&api_token(org.id, user.id, clock.now()))
        .await
        .unwrap();
    assert_eq!(store.api_token(ApiTokenId::new()).await.unwrap(), None);
}

/// A second record with a taken id is `Conflict::Token`.
pub async fn api_token_with_duplicate_id_is_refused(store: Arc<dyn AuthStore>) {
    let clock = ManualClock::starting_now();
    let user = given_user(&*store, "owner@example.com").await;
    let org = given_org(&*store, "acme", user.id, clock.now()).await;
    let first = api_token(org.id, user.id, clock.now());
    store.create_api_token(&first).await.unwrap();
    let mut second = api_token(org.id, user.id, clock.now());
    second.id = first.id;
    second.name = "impostor".to_owned();
    assert_conflict(
        store.create_api_token(&second).await,
        Conflict::Token,
        "same id",
    );
    assert_eq!(store.api_token(first.id).await.unwrap(), Some(first));
}

/// A record for an unknown user or organization is `NotFound`.
pub async fn api_token_for_unknown_user_or_org_is_not_found(store: Arc<dyn AuthStore>) {
    let clock = ManualClock::starting_now();
    let user = given_user(&*store, "owner@example.com").await;
    let org = given_org(&*store, "acme", user.id, clock.now()).await;
    let no_org = api_token(OrgId::new(), user.id, clock.now());
    assert_not_found(
        store.create_api_token(&no_org).await,
        "unknown organization",
    );
    let mut no_user = api_token(org.id, UserId::new(), clock.now());
    no_user.created_by = user.id;
    assert_not_found(store.create_api_token(&no_user).await, "unknown user");
    assert_eq!(store.api_token(no_org.id).await.unwrap(), None);
    assert_eq!(store.api_token(no_user.id).await.unwrap(), None);
}

/// `api_tokens_for_org` lists the organization's records newest first, only one user's when
/// asked.
pub async fn api_tokens_for_org_are_newest_first_and_filter_by_user(store: Arc<dyn AuthStore>) {
    let clock = ManualClock::starting_now();
    let t = clock.now();
    let owner = given_user(&*store, "owner@example.com").await;
    let user = given_user(&*store, "user@example.com").await;
    let org = given_org(&*store, "acme", owner.id, t).await;
    let other_org = given_org(&*store, "other", user.id, t).await;
    given_member(&*store, org.id, user.id, Role::MEMBER, t).await;

    // Made oldest first, so ids and creation times agree.
    let minute = Duration::minutes;
    let o1 = api_token(org.id, owner.id, t);
    let u1 = api_token(org.id, user.id, t + minute(1));
    let o2 = api_token(org.id, owner.id, t + minute(2));
    let u2 = api_token(org.id, user.id, t + minute(3));
    let elsewhere = api_token(other_org.id, user.id, t + minute(4));
    for r in [&u1, &elsewhere, &o2, &u2, &o1] {
        store.create_api_token(r).await.unwrap();
    }

    assert_eq!(
        store.api_tokens_for_org(org.id, None).await.unwrap(),
        vec![u2.clone(), o2.clone(), u1.clone(), o1.clone()]
    );
    assert_eq!(
        store
            .api_tokens_for_org(org.id, Some(user.id))
            .await
            .unwrap(),
        vec![u2, u1]
    );
    assert_eq!(
        store
            .api_tokens_for_org(org.id, Some(owner.id))
            .await
            .unwrap(),
        vec![o2, o1]
    );
    assert_eq!(
        store.api_tokens_for_org(other_org.id, None).await.unwrap(),
        vec![elsewhere]
    );
    assert!(
        store
            .api_tokens_for_org(org.id, Some(UserId::new()))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .api_tokens_for_org(OrgId::new(), None)
            .await
            .unwrap()
            .is_empty()
    );
}

/// `revoke_api_token` sets `revoked_at` and returns the record; revoking again keeps the first
/// time; an unknown id is `NotFound`.
pub async fn revoke_api_token_keeps_the_first_time(store: Arc<dyn AuthStore>) {
    let clock = ManualClock::starting_now();
    let user = given_user(&*store, "owner@example.com").await;
    let org = given_org(&*store, "acme", user.id, clock.now()).await;
    let record = api_token(org.id, user.id, clock.now());
    store.create_api_token(&record).await.unwrap();

    clock.advance(Duration::hours(1));
    let first = clock.now();
    let revoked = ApiTokenRecord {
        revoked_at: Some(first),
        ..record.clone()
    };
    assert_eq!(
        store.revoke_api_token(record.id, first).await.unwrap(),
        revoked
    );
    assert_eq!(stored(&*store, record.id).await, revoked);

    clock.advance(Duration::hours(1));
    assert_eq!(
        store
            .revoke_api_token(record.id, clock.now())
            .await
            .unwrap(),
        revoked
    );
    assert_eq!(
        stored(&*store, record.id).await,
        revoked,
        "revoked is forever, at the first time"
    );
    assert_not_found(
        store.revoke_api_token(ApiTokenId::new(), first).await,
        "unknown id",
    );
}

/// `revoke_api_tokens_for_member` revokes the member's unrevoked records in that organization
/// and returns their ids; already revoked ones keep their time; other organizations' and
/// other members' records are untouched.
pub async fn revoke_api_tokens_for_member_revokes_only_their_live_tokens(
    store: Arc<dyn AuthStore>,
) {
    let clock = ManualClock::starting_now();
    let t0 = clock.now();
    let owner = given_user(&*store, "owner@example.com").await;
    let leaver = given_user(&*store, "leaver@example.com").await;
    let org = given_org(&*store, "acme", owner.id, t0).await;
    let other_org = given_org(&*store, "other", owner.id, t0).await;
    given_member(&*store, org.id, leaver.id, Role::MEMBER, t0).await;
    given_member(&*store, other_org.id, leaver.id, Role::MEMBER, t0).await;
    let live = [
        api_token(org.id, leaver.id, t0),
        api_token(org.id, leaver.id, t0),
    ];
    let already = api_token(org.id, leaver.id, t0);
    let elsewhere = api_token(other_org.id, leaver.id, t0);
    let owners = api_token(org.id, owner.id, t0);
    for r in live.iter().chain([&already, &elsewhere, &owners]) {
        store.create_api_token(r).await.unwrap();
    }
    store.revoke_api_token(already.id, t0).await.unwrap();

    clock.advance(Duration::hours(1));
    let at = clock.now();
    let revoked = store
        .revoke_api_tokens_for_member(org.id, leaver.id, at)
        .await
        .unwrap();
    assert_eq!(sorted(&revoked), sorted(&[live[0].id, live[1].id]));
    for r in &live {
        assert_eq!(stored(&*store, r.id).await.revoked_at, Some(at));
    }
    assert_eq!(stored(&*store, already.id).await.revoked_at, Some(t0));
    assert_eq!(stored(&*store, elsewhere.id).await, elsewhere);
    assert_eq!(stored(&*store, owners.id).await, owners);
    let again = store
        .revoke_api_tokens_for_member(org.id, leaver.id, at)
        .await
        .unwrap();
    assert!(again.is_empty(), "nothing left to revoke: {again:?}");
}

/// `record_api_token_use` moves `last_used_at` forward in one call for many records; a time
/// earlier than the stored one is ignored, unknown ids are skipped, and an empty batch is
/// fine.
pub async fn record_api_token_use_ignores_earlier_times_and_unknown_ids(store: Arc<dyn AuthStore>) {
    let clock = ManualClock::starting_now();
    let now = clock.now();
    let user = given_user(&*store, "owner@example.com").await;
    let org = given_org(&*store, "acme", user.id, now).await;
    let a = api_token(org.id, user.id, now);
    let b = api_token(org.id, user.id, now);
    let untouched = api_token(org.id, user.id, now);
    for r in [&a, &b, &untouched] {
        store.create_api_token(r).await.unwrap();
    }
    let at = |minutes| now + Duration::minutes(minutes);
    let last_used = |id| {
        let store = Arc::clone(&store);
        async move { stored(&*store, id).await.last_used_at }
    };

    store
        .record_api_token_use(&[(a.id, at(5)), (b.id, at(3)), (ApiTokenId::new(), now)])
        .await
        .expect("record use");
    assert_eq!(last_used(a.id).await, Some(at(5)));
    assert_eq!(last_used(b.id).await, Some(at(3)));

    store
        .record_api_token_use(&[(a.id, at(1)), (b.id, at(4))])
        .await
        .expect("record use");
    assert_eq!(
        last_used(a.id).await,
        Some(at(5)),
        "an earlier time is ignored"
    );
    assert_eq!(last_used(b.id).await, Some(at(4)));

    store
        .record_api_token_use(&[])
        .await
        .expect("an empty batch");
    assert_eq!(stored(&*store, untouched.id).await, untouched);
    let expected_a = ApiTokenRecord {
        last_used_at: Some(at(5)),
        ..a.clone()
    };
    assert_eq!(
        stored(&*store, a.id).await,
        expected_a,
        "nothing else changed"
    );
}

/// When one batch of `record_api_token_use` names a record twice, the later time wins,
/// whichever comes first.
pub async fn record_api_token_use_keeps_the_latest_of_repeated_ids(store: Arc<dyn AuthStore>) {
    let clock = ManualClock::starting_now();
    let now = clock.now();
    let user = given_user(&*store, "owner@example.com").await;
    let org = given_org(&*store, "acme", user.id, now).await;
    let record = api_token(org.id, user.id, now);
    store.create_api_token(&record).await.unwrap();
    let at = |minutes| now + Duration::minutes(minutes);

    store
        .record_api_token_use(&[(record.id, at(7)), (record.id, at(6))])
        .await
        .unwrap();
    assert_eq!(stored(&*store, record.id).await.last_used_at, Some(at(7)));
    store
        .record_api_token_use(&[(record.id, at(8)), (record.id, at(9))])
        .await
        .unwrap();
    assert_eq!(stored(&*store, record.id).await.last_used_at, Some(at(9)));
}

/// `revoked_api_token_ids` lists the records revoked and not yet expired at `now` (the
/// revocation list), each with its recorded expiry; unrevoked and expired
/// records are not on it, and records drop off it as they expire.
pub async fn revoked_api_token_ids_lists_revoked_unexpired_tokens(store: Arc<dyn AuthStore>) {
    let clock = ManualClock::starting_now();
    let now = clock.now();
    let user = given_user(&*store, "owner@example.com").await;
    let org = given_org(&*store, "acme", user.id, now - Duration::days(60)).await;
    let long = api_token(org.id, user.id, now);
    let mut short = api_token(org.id, user.id, now);
    short.expires_at = now + Duration::hours(1);
    let unrevoked = api_token(org.id, user.id, now);
    let mut expired = api_token(org.id, user.id, now - Duration::days(31));
    expired.expires_at = now - Duration::days(1);
    for r in [&long, &short, &unrevoked, &expired] {
        store.create_api_token(r).await.unwrap();
    }
    for r in [&long, &short] {
        store.revoke_api_token(r.id, now).await.unwrap();
    }
    store
        .revoke_api_token(expired.id, now - Duration::days(2))
        .await
        .unwrap();

    let listed = store.revoked_api_token_ids(now).await.unwrap();
    let ids: Vec<ApiTokenId> = listed.iter().map(|(id, _)| *id).collect();
    assert_eq!(sorted(&ids), sorted(&[long.id, short.id]));
    for (id, expires_at) in &listed {
        // The expiry as the store keeps it (to the microsecond).
        assert_eq!(*expires_at, stored(&*store, *id).await.expires_at, "{id}");
    }
    clock.advance(Duration::hours(2));
    assert_eq!(
        store.revoked_api_token_ids(clock.now()).await.unwrap(),
        vec![(long.id, stored(&*store, long.id).await.expires_at)]
    );
}
