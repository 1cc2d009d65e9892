//! [`SessionStore`](keystead::SessionStore): browser sessions, their expiry, activity and active organization.
//!
//! "Live at `now`" and "expired at `now`" are as [`Session::is_expired`] defines them: a
//! session is over from the instant of its sliding or its absolute expiry.

use std::sync::Arc;

use keystead::{AuthStore, Clock, Conflict, ManualClock, Session, SessionId, UserId};
use time::{Duration, OffsetDateTime};

use super::{assert_conflict, assert_not_found, given_org, given_user, sorted};
use crate::fixtures::{session, token_hash};

/// A session that started at `created_at` and ends (sliding) at `expires_at`.
fn session_between(
    user_id: UserId,
    created_at: OffsetDateTime,
    expires_at: OffsetDateTime,
) -> Session {
    let mut s = session(user_id, created_at);
    s.expires_at = expires_at;
    s.absolute_expires_at = expires_at.max(created_at + Duration::days(1));
    s
}

async fn stored(store: &dyn AuthStore, id: SessionId) -> Session {
    store
        .session_by_id(id)
        .await
        .expect("session_by_id")
        .expect("the session exists")
}

/// A session reads back with every field, optional ones set or not, by id and by token hash.
pub async fn session_round_trips_every_field(store: Arc<dyn AuthStore>) {
    let clock = ManualClock::starting_now();
    let now = clock.now();
    let user = given_user(&*store, "sess@example.com").await;
    let org = given_org(&*store, "acme", user.id, now).await;
    let mut full = session(user.id, now);
    full.last_seen_at = now + Duration::minutes(5);
    full.expires_at = now + Duration::hours(2);
    full.absolute_expires_at = now + Duration::days(30);
    full.active_org_id = Some(org.id);
    full.user_agent =
        Some("Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/140.0".to_owned());
    full.ip = Some("2001:db8::1".to_owned());
    full.authenticated_at = now + Duration::minutes(3);
    store.create_session(&full).await.expect("create_session");
    let bare = session(user.id, now);
    store.create_session(&bare).await.expect("create_session");

    for s in [full, bare] {
        assert_eq!(store.session_by_id(s.id).await.unwrap(), Some(s.clone()));
        assert_eq!(
            store.session_by_token_hash(&s.token_hash).await.unwrap(),
            Some(s)
        );
    }
}

/// Looking up a session that does not exist gives `Ok(None)`.
pub async fn session_lookups_of_missing_rows_give_none(store: Arc<dyn AuthStore>) {
    let clock = ManualClock::starting_now();
    let user = given_user(&*store, "sess@example.com").await;
    store
        .create_session(&session(user.id, clock.now()))
        .await
        .unwrap();
    assert_eq!(store.session_by_id(SessionId::new()).await.unwrap(), None);
    assert_eq!(
        store.session_by_token_hash(&token_hash()).await.unwrap(),
        None
    );
}

/// `session_by_id` and `session_by_token_hash` return a session however long ago it expired
/// (the caller decides): the store never compares with its own clock.
pub async fn session_lookups_return_expired_sessions(store: Arc<dyn AuthStore>) {
    let clock = ManualClock::starting_now();
    let user = given_user(&*store, "old@example.com").await;
    let long_ago = clock.now() - Duration::days(40);
    let mut old = session_between(user.id, long_ago, long_ago + Duration::hours(1));
    old.absolute_expires_at = long_ago + Duration::days(1);
    store.create_session(&old).await.unwrap();
    assert_eq!(
        store.session_by_id(old.id).await.unwrap(),
        Some(old.clone())
    );
    assert_eq!(
        store.session_by_token_hash(&old.token_hash).await.unwrap(),
        Some(old)
    );
}

/// A session for a user that does not exist is `NotFound`.
pub async fn session_for_unknown_user_is_not_found(store: Arc<dyn AuthStore>) {
    let clock = ManualClock::starting_now();
    let orphan = session(UserId::new(), clock.now());
    assert_not_found(
        store.create_session(&orphan).await,
        "session for unknown user",
    );
    assert_eq!(store.session_by_id(orphan.id).await.unwrap(), None);
}

/// A second session with a taken id, or a taken token hash, is `Conflict::Token`.
pub async fn session_with_duplicate_id_or_token_hash_is_refused(store: Arc<dyn AuthStore>) {
    let clock = ManualClock::starting_now();
    let user = given_user(&*store, "dup@example.com").await;
    let first = session(user.id, clock.now());
    store.create_session(&first).await.unwrap();

    let mut same_id = session(user.id, clock.now());
    same_id.id = first.id;
    assert_conflict(
        store.create_session(&same_id).await,
        Conflict::Token,
        "same id",
    );
    assert_eq!(
        store
            .session_by_token_hash(&same_id.token_hash)
            .await
            .unwrap(),
        None
    );

    let mut same_hash = session(user.id, clock.now());
    same_hash.token_hash = first.token_hash;
    assert_conflict(
        store.create_session(&same_hash).await,
        Conflict::Token,
        "same token hash",
    );
    assert_eq!(store.session_by_id(same_hash.id).await.unwrap(), None);
    assert_eq!(store.session_by_id(first.id).await.unwrap(), Some(first));
}

/// `sessions_for_user` lists the user's sessions live at `now`, newest first: not those past
/// their sliding or absolute expiry (including one expiring exactly at `now`), nor other
/// users'; as the clock moves, sessions drop out.
pub async fn sessions_for_user_lists_live_sessions_newest_first(store: Arc<dyn AuthStore>) {
    let clock = ManualClock::starting_now();
    let now = clock.now();
    let user = given_user(&*store, "many@example.com").await;
    let other = given_user(&*store, "other@example.com").await;

    // Made oldest first, so ids and creation times agree.
    let mut absolute_now =
        session_between(user.id, now - Duration::hours(5), now + Duration::hours(1));
    absolute_now.absolute_expires_at = now;
    let slid_out = session_between(
        user.id,
        now - Duration::hours(4),
        now - Duration::minutes(1),
    );
    let a = session_between(user.id, now - Duration::hours(3), now + Duration::hours(1));
    let b = session_between(
        user.id,
        now - Duration::hours(2),
        now + Duration::minutes(30),
    );
    let c = session_between(user.id, now - Duration::hours(1), now + Duration::hours(1));
    let sliding_now = session_between(user.id, now - Duration::minutes(30), now);
    let others = session_between(
        other.id,
        now - Duration::minutes(10),
        now + Duration::hours(1),
    );
    for s in [&b, &slid_out, &a, &sliding_now, &c, &absolute_now, &others] {
        store.create_session(s).await.unwrap();
    }

    assert_eq!(
        store.sessions_for_user(user.id, now).await.unwrap(),
        vec![c.clone(), b, a.clone()],
        "live sessions, newest first"
    );
    clock.advance(Duration::minutes(45));
    assert_eq!(
        store.sessions_for_user(user.id, clock.now()).await.unwrap(),
        vec![c, a]
    );
    assert_eq!(
        store
            .sessions_for_user(other.id, clock.now())
            .await
            .unwrap(),
        vec![others]
    );
    assert!(
        store
            .sessions_for_user(UserId::new(), now)
            .await
            .unwrap()
            .is_empty()
    );
}

/// `extend_session` moves the sliding expiry, but never past the absolute one; nothing else
/// changes. An unknown session is `NotFound`.
pub async fn extend_session_moves_expiry_and_clamps_to_absolute_expiry(store: Arc<dyn AuthStore>) {
    let clock = ManualClock::starting_now();
    let now = clock.now();
    let user = given_user(&*store, "extend@example.com").await;
    let s = session(user.id, now);
    store.create_session(&s).await.unwrap();

    store
        .extend_session(s.id, now + Duration::hours(2))
        .await
        .expect("extend");
    let mut expected = s.clone();
    expected.expires_at = now + Duration::hours(2);
    assert_eq!(stored(&*store, s.id).await, expected);

    store
        .extend_session(s.id, now + Duration::days(3))
        .await
        .expect("extend past absolute");
    expected.expires_at = s.absolute_expires_at;
    assert_eq!(
        stored(&*store, s.id).await,
        expected,
        "clamped to the absolute expiry"
    );

    assert_not_found(
        store
            .extend_session(SessionId::new(), now + Duration::hours(1))
            .await,
        "extend an unknown session",
    );
}

/// `record_session_activity` moves `last_seen_at` forward in one call for many sessions;
/// a time earlier than the stored one is ignored, unknown ids are skipped, and an empty
/// batch is fine.
pub async fn record_session_activity_ignores_earlier_times_and_unknown_ids(
    store: Arc<dyn AuthStore>,
) {
    let clock = ManualClock::starting_now();
    let now = clock.now();
    let user = given_user(&*store, "active@example.com").await;
    let s1 = session(user.id, now);
    let s2 = session(user.id, now);
    let untouched = session(user.id, now);
    for s in [&s1, &s2, &untouched] {
        store.create_session(s).await.unwrap();
    }
    let at = |minutes| now + Duration::minutes(minutes);

    store
        .record_session_activity(&[(s1.id, at(5)), (s2.id, at(3)), (SessionId::new(), at(9))])
        .await
        .expect("record activity");
    let mut e1 = s1.clone();
    let mut e2 = s2.clone();
    e1.last_seen_at = at(5);
    e2.last_seen_at = at(3);
    assert_eq!(stored(&*store, s1.id).await, e1);
    assert_eq!(stored(&*store, s2.id).await, e2);

    store
        .record_session_activity(&[(s1.id, at(1)), (s2.id, at(4))])
        .await
        .expect("record activity");
    e2.last_seen_at = at(4);
    assert_eq!(
        stored(&*store, s1.id).await,
        e1,
        "an earlier time is ignored"
    );
    assert_eq!(stored(&*store, s2.id).await, e2);

    store
        .record_session_activity(&[])
        .await
        .expect("an empty batch");
    assert_eq!(stored(&*store, s1.id).await, e1);
    assert_eq!(stored(&*store, untouched.id).await, untouched);
}

/// When one batch names a session twice, the later time wins, whichever comes first.
pub async fn record_session_activity_keeps_the_latest_of_repeated_ids(store: Arc<dyn AuthStore>) {
    let clock = ManualClock::starting_now();
    let now = clock.now();
    let user = given_user(&*store, "repeat@example.com").await;
    let s = session(user.id, now);
    store.create_session(&s).await.unwrap();
    let at = |minutes| now + Duration::minutes(minutes);

    store
        .record_session_activity(&[(s.id, at(7)), (s.id, at(6))])
        .await
        .unwrap();
    assert_eq!(stored(&*store, s.id).await.last_seen_at, at(7));
    store
        .record_session_activity(&[(s.id, at(8)), (s.id, at(9))])
        .await
        .unwrap();
    assert_eq!(stored(&*store, s.id).await.last_seen_at, at(9));
}

/// `set_active_org` sets and clears the session's organization; an unknown session is
/// `NotFound`.
pub async fn set_active_org_sets_and_clears_the_active_org(store: Arc<dyn AuthStore>) {
    let clock = ManualClock::starting_now();
    let user = given_user(&*store, "org@example.com").await;
    let org = given_org(&*store, "acme", user.id, clock.now()).await;
    let s = session(user.id, clock.now());
    store.create_session(&s).await.unwrap();

    store.set_active_org(s.id, Some(org.id)).await.expect("set");
    let mut expected = s.clone();
    expected.active_org_id = Some(org.id);
    assert_eq!(stored(&*store, s.id).await, expected);
    store.set_active_org(s.id, None).await.expect("clear");
    assert_eq!(stored(&*store, s.id).await, s);
    assert_not_found(
        store.set_active_org(SessionId::new(), Some(org.id)).await,
        "set_active_org of an unknown session",
    );
}

/// `delete_session` ends the session and says whether it existed.
pub async fn delete_session_reports_whether_it_existed(store: Arc<dyn AuthStore>) {
    let clock = ManualClock::starting_now();
    let user = given_user(&*store, "bye@example.com").await;
    let s = session(user.id, clock.now());
    let kept = session(user.id, clock.now());
    store.create_session(&s).await.unwrap();
    store.create_session(&kept).await.unwrap();

    assert!(store.delete_session(s.id).await.unwrap(), "it existed");
    assert_eq!(store.session_by_id(s.id).await.unwrap(), None);
    assert_eq!(
        store.session_by_token_hash(&s.token_hash).await.unwrap(),
        None
    );
    assert!(!store.delete_session(s.id).await.unwrap(), "not any more");
    assert!(
        !store.delete_session(SessionId::new()).await.unwrap(),
        "never did"
    );
    assert_eq!(store.session_by_id(kept.id).await.unwrap(), Some(kept));
}

/// `delete_sessions_for_user` ends all the user's sessions but the excepted one, counts
/// them, and leaves other users' sessions alone.
pub async fn delete_sessions_for_user_keeps_the_excepted_session(store: Arc<dyn AuthStore>) {
    let clock = ManualClock::starting_now();
    let user = given_user(&*store, "everywhere@example.com").await;
    let other = given_user(&*store, "other@example.com").await;
    let mine: Vec<_> = (0..3).map(|_| session(user.id, clock.now())).collect();
    let theirs = session(other.id, clock.now());
    for s in mine.iter().chain([&theirs]) {
        store.create_session(s).await.unwrap();
    }

    assert_eq!(
        store
            .delete_sessions_for_user(user.id, Some(mine[1].id))
            .await
            .unwrap(),
        2
    );
    assert_eq!(store.session_by_id(mine[0].id).await.unwrap(), None);
    assert_eq!(
        store.session_by_id(mine[1].id).await.unwrap(),
        Some(mine[1].clone())
    );
    assert_eq!(store.session_by_id(mine[2].id).await.unwrap(), None);
    assert_eq!(
        store.session_by_id(theirs.id).await.unwrap(),
        Some(theirs.clone())
    );

    assert_eq!(
        store.delete_sessions_for_user(user.id, None).await.unwrap(),
        1
    );
    assert_eq!(store.session_by_id(mine[1].id).await.unwrap(), None);
    assert_eq!(
        store.delete_sessions_for_user(user.id, None).await.unwrap(),
        0
    );
    assert_eq!(store.session_by_id(theirs.id).await.unwrap(), Some(theirs));
}

/// `clear_active_org_for_member` clears the organization from that user's sessions that have
/// it active, returns them, and touches no other session.
pub async fn clear_active_org_for_member_clears_only_that_org_and_user(store: Arc<dyn AuthStore>) {
    let clock = ManualClock::starting_now();
    let now = clock.now();
    let leaver = given_user(&*store, "leaver@example.com").await;
    let stayer = given_user(&*store, "stayer@example.com").await;
    let org1 = given_org(&*store, "one", leaver.id, now).await;
    let org2 = given_org(&*store, "two", leaver.id, now).await;
    let with = |user: UserId, org: Option<keystead::OrgId>| {
        let mut s = session(user, now);
        s.active_org_id = org;
        s
    };
    let in_org1 = with(leaver.id, Some(org1.id));
    let also_in_org1 = with(leaver.id, Some(org1.id));
    let in_org2 = with(leaver.id, Some(org2.id));
    let in_none = with(leaver.id, None);
    let stayers = with(stayer.id, Some(org1.id));
    for s in [&in_org1, &also_in_org1, &in_org2, &in_none, &stayers] {
        store.create_session(s).await.unwrap();
    }

    let cleared = store
        .clear_active_org_for_member(org1.id, leaver.id)
        .await
        .unwrap();
    assert_eq!(sorted(&cleared), sorted(&[in_org1.id, also_in_org1.id]));
    for s in [&in_org1, &also_in_org1] {
        let expected = Session {
            active_org_id: None,
            ..s.clone()
        };
        assert_eq!(stored(&*store, s.id).await, expected);
    }
    assert_eq!(stored(&*store, in_org2.id).await, in_org2);
    assert_eq!(stored(&*store, in_none.id).await, in_none);
    assert_eq!(stored(&*store, stayers.id).await, stayers);
    assert!(
        store
            .clear_active_org_for_member(org1.id, leaver.id)
            .await
            .unwrap()
            .is_empty()
    );
}

/// `delete_expired_sessions` deletes the sessions expired at `now` (sliding or absolute,
/// including at that very instant), counts them, and keeps live ones.
pub async fn delete_expired_sessions_removes_only_expired_sessions(store: Arc<dyn AuthStore>) {
    let clock = ManualClock::starting_now();
    let now = clock.now();
    let user = given_user(&*store, "expiry@example.com").await;
    let other = given_user(&*store, "other@example.com").await;
    let live = session_between(
        user.id,
        now - Duration::minutes(10),
        now + Duration::hours(1),
    );
    let later = session_between(
        other.id,
        now - Duration::minutes(10),
        now + Duration::hours(3),
    );
    let slid_out = session_between(
        user.id,
        now - Duration::hours(2),
        now - Duration::minutes(1),
    );
    let at_now = session_between(other.id, now - Duration::hours(1), now);
    let mut aged_out = session_between(user.id, now - Duration::days(1), now + Duration::hours(1));
    aged_out.absolute_expires_at = now - Duration::minutes(1);
    for s in [&live, &later, &slid_out, &at_now, &aged_out] {
        store.create_session(s).await.unwrap();
    }

    assert_eq!(store.delete_expired_sessions(now).await.unwrap(), 3);
    for gone in [&slid_out, &at_now, &aged_out] {
        assert_eq!(store.session_by_id(gone.id).await.unwrap(), None);
    }
    assert_eq!(
        store.session_by_id(live.id).await.unwrap(),
        Some(live.clone())
    );
    assert_eq!(
        store.session_by_id(later.id).await.unwrap(),
        Some(later.clone())
    );
    assert_eq!(store.delete_expired_sessions(now).await.unwrap(), 0);

    clock.advance(Duration::hours(2));
    assert_eq!(store.delete_expired_sessions(clock.now()).await.unwrap(), 1);
    assert_eq!(store.session_by_id(live.id).await.unwrap(), None);
    assert_eq!(store.session_by_id(later.id).await.unwrap(), Some(later));
}
