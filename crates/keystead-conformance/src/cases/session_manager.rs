//! The core's [`SessionManager`] on each real store: the hot path, expiry, batching, and the
//! attacks (a replayed cookie after sign-out, an expired session).

use std::sync::Arc;

use keystead::session::{SessionConfig, SessionManager, SessionMeta};
use keystead::{AuthStore, ErrorCode, ManualClock};
use time::Duration;

use crate::fixtures;

fn manager(
    store: &Arc<dyn AuthStore>,
    clock: &Arc<ManualClock>,
    config: SessionConfig,
) -> SessionManager {
    SessionManager::new(store.clone(), clock.clone(), config)
}

async fn signed_up(store: &Arc<dyn AuthStore>, address: &str) -> keystead::User {
    store
        .create_user(&fixtures::new_user(address))
        .await
        .expect("create user")
}

fn code_of<T: std::fmt::Debug>(result: Result<T, keystead::AuthError>) -> ErrorCode {
    result.expect_err("expected an error").code
}

/// A session validates from the cache: no store read per request.
pub async fn session_manager_validates_from_the_cache(store: Arc<dyn AuthStore>) {
    let clock = Arc::new(ManualClock::starting_now());
    let sessions = manager(&store, &clock, SessionConfig::default());
    let user = signed_up(&store, "hot@example.com").await;
    let created = sessions
        .create(user.id, SessionMeta::default())
        .await
        .unwrap();
    assert_eq!(created.token.expose().len(), 43, "256-bit base64url token");
    assert_eq!(
        created.session.token_hash,
        keystead::TokenHash::of(created.token.expose())
    );

    for _ in 0..100 {
        let valid = sessions.validate(created.token.expose()).await.unwrap();
        assert_eq!(valid.user.id, user.id);
        assert!(!valid.extended);
    }
    let stats = sessions.stats();
    assert_eq!(
        stats.store_reads, 0,
        "the steady state never reads the store"
    );
    assert_eq!(stats.cache_hits, 100);
}

/// The adapters' synchronous fast path answers only from a fresh cache entry that needs no
/// store write, and defers (`None`) to `validate` for everything else: a miss, an expiry to
/// slide, an expired or ended session.
pub async fn session_manager_cached_path_defers_whatever_needs_the_store(
    store: Arc<dyn AuthStore>,
) {
    let clock = Arc::new(ManualClock::starting_now());
    // `a` trusts its cache for longer than any step below, so that only the session's own
    // state decides; `b` has the default one-second bound.
    let long = SessionConfig::new().cache_ttl(Duration::days(400)).unwrap();
    let a = manager(&store, &clock, long);
    let b = manager(&store, &clock, SessionConfig::default());
    let user = signed_up(&store, "fast@example.com").await;
    let created = a.create(user.id, SessionMeta::default()).await.unwrap();
    let token = created.token.expose();

    let valid = a
        .validate_cached(token)
        .expect("created sessions are cached");
    assert_eq!(valid.user.id, user.id);
    assert_eq!(valid.session.id, created.session.id);
    assert!(!valid.extended);
    assert!(
        a.validate_cached("A".repeat(43).as_str()).is_none(),
        "unknown: ask the store"
    );

    // Another instance has no entry until `validate` reads the store.
    assert!(b.validate_cached(token).is_none());
    assert_eq!(
        b.stats().store_reads,
        0,
        "the fast path never reads the store"
    );
    b.validate(token).await.unwrap();
    assert!(b.validate_cached(token).is_some());
    // A stale entry is a miss.
    clock.advance(Duration::seconds(2));
    assert!(b.validate_cached(token).is_none());
    assert!(a.validate_cached(token).is_some());

    // Past half the lifetime the expiry must be stored: that is `validate`'s.
    clock.advance(Duration::days(16));
    assert!(a.validate_cached(token).is_none());
    assert!(a.validate(token).await.unwrap().extended);
    let valid = a.validate_cached(token).expect("extended, so cached again");
    assert!(!valid.extended);

    // Expired: ending it is `validate`'s, which refuses.
    clock.advance(Duration::days(31));
    assert!(a.validate_cached(token).is_none());
    assert_eq!(code_of(a.validate(token).await), ErrorCode::SessionExpired);

    // Ended: no entry left.
    let other = a.create(user.id, SessionMeta::default()).await.unwrap();
    assert!(a.validate_cached(other.token.expose()).is_some());
    a.end(other.session.id).await.unwrap();
    assert!(a.validate_cached(other.token.expose()).is_none());
    assert_eq!(
        code_of(a.validate(other.token.expose()).await),
        ErrorCode::Unauthenticated
    );
}

/// Only the token's hash is stored; the token itself is not derivable from the store.
pub async fn session_manager_stores_only_the_token_hash(store: Arc<dyn AuthStore>) {
    let clock = Arc::new(ManualClock::starting_now());
    let sessions = manager(&store, &clock, SessionConfig::default());
    let user = signed_up(&store, "hash@example.com").await;
    let created = sessions
        .create(user.id, SessionMeta::default())
        .await
        .unwrap();
    let stored = store
        .session_by_id(created.session.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        stored.token_hash,
        keystead::TokenHash::of(created.token.expose())
    );
    assert!(
        store
            .session_by_token_hash(&keystead::TokenHash::of("not-the-token"))
            .await
            .unwrap()
            .is_none()
    );
}

/// Forged or unknown tokens are 401 `unauthenticated`.
pub async fn session_manager_refuses_unknown_tokens(store: Arc<dyn AuthStore>) {
    let clock = Arc::new(ManualClock::starting_now());
    let sessions = manager(&store, &clock, SessionConfig::default());
    let user = signed_up(&store, "forge@example.com").await;
    let created = sessions
        .create(user.id, SessionMeta::default())
        .await
        .unwrap();
    let mut forged = created.token.expose().to_owned();
    forged.replace_range(0..1, if forged.starts_with('A') { "B" } else { "A" });
    for token in [forged.as_str(), "", "x", &"A".repeat(43)] {
        assert_eq!(
            code_of(sessions.validate(token).await),
            ErrorCode::Unauthenticated
        );
    }
}

/// Attack: replaying the cookie after sign-out gets 401, at once, on this instance.
pub async fn session_manager_replayed_token_after_sign_out_is_refused(store: Arc<dyn AuthStore>) {
    let clock = Arc::new(ManualClock::starting_now());
    let sessions = manager(&store, &clock, SessionConfig::default());
    let user = signed_up(&store, "replay@example.com").await;
    let created = sessions
        .create(user.id, SessionMeta::default())
        .await
        .unwrap();
    sessions.validate(created.token.expose()).await.unwrap();

    assert!(sessions.end(created.session.id).await.unwrap());
    assert_eq!(
        code_of(sessions.validate(created.token.expose()).await),
        ErrorCode::Unauthenticated
    );
    assert!(
        store
            .session_by_id(created.session.id)
            .await
            .unwrap()
            .is_none()
    );
    // A second instance that never cached it refuses it too.
    let other = manager(&store, &clock, SessionConfig::default());
    assert_eq!(
        code_of(other.validate(created.token.expose()).await),
        ErrorCode::Unauthenticated
    );
}

/// Another instance sees a sign-out within the cache TTL, the documented staleness bound.
pub async fn session_manager_staleness_across_instances_is_bounded_by_the_ttl(
    store: Arc<dyn AuthStore>,
) {
    let clock = Arc::new(ManualClock::starting_now());
    let config = SessionConfig::new()
        .cache_ttl(Duration::seconds(1))
        .unwrap();
    let a = manager(&store, &clock, config.clone());
    let b = manager(&store, &clock, config);
    let user = signed_up(&store, "stale@example.com").await;
    let created = a.create(user.id, SessionMeta::default()).await.unwrap();
    b.validate(created.token.expose()).await.unwrap();

    a.end(created.session.id).await.unwrap();
    clock.advance(Duration::milliseconds(500));
    // Within the bound, b may still answer from its cache...
    assert!(b.validate(created.token.expose()).await.is_ok());
    // ...and past it, it must not.
    clock.advance(Duration::milliseconds(600));
    assert_eq!(
        code_of(b.validate(created.token.expose()).await),
        ErrorCode::Unauthenticated
    );
}

/// The sliding expiry moves only once less than half is left: one write per half-lifetime.
pub async fn session_manager_slides_expiry_when_past_half(store: Arc<dyn AuthStore>) {
    let clock = Arc::new(ManualClock::starting_now());
    let sessions = manager(&store, &clock, SessionConfig::default());
    let user = signed_up(&store, "slide@example.com").await;
    let created = sessions
        .create(user.id, SessionMeta::default())
        .await
        .unwrap();
    let first_expiry = created.session.expires_at;

    clock.advance(Duration::days(14));
    let valid = sessions.validate(created.token.expose()).await.unwrap();
    assert!(!valid.extended, "more than half of 30 days is left");
    assert_eq!(valid.session.expires_at, first_expiry);

    clock.advance(Duration::days(2));
    let valid = sessions.validate(created.token.expose()).await.unwrap();
    assert!(valid.extended);
    assert_eq!(
        valid.session.expires_at,
        clock_now(&clock) + Duration::days(30)
    );
    let stored = store
        .session_by_id(created.session.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        stored.expires_at, valid.session.expires_at,
        "the extension is stored"
    );

    let again = sessions.validate(created.token.expose()).await.unwrap();
    assert!(!again.extended, "no second write right after the first");
}

fn clock_now(clock: &ManualClock) -> time::OffsetDateTime {
    keystead::Clock::now(clock)
}

/// Attack: an expired session (past its sliding expiry) is refused and deleted.
pub async fn session_manager_refuses_and_deletes_expired_sessions(store: Arc<dyn AuthStore>) {
    let clock = Arc::new(ManualClock::starting_now());
    let sessions = manager(&store, &clock, SessionConfig::default());
    let user = signed_up(&store, "expired@example.com").await;
    let created = sessions
        .create(user.id, SessionMeta::default())
        .await
        .unwrap();
    sessions.validate(created.token.expose()).await.unwrap();

    clock.advance(Duration::days(30));
    assert_eq!(
        code_of(sessions.validate(created.token.expose()).await),
        ErrorCode::SessionExpired
    );
    assert!(
        store
            .session_by_id(created.session.id)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        code_of(sessions.validate(created.token.expose()).await),
        ErrorCode::Unauthenticated
    );
}

/// However often it is used, a session ends at its absolute lifetime.
pub async fn session_manager_ends_sessions_at_the_absolute_lifetime(store: Arc<dyn AuthStore>) {
    let clock = Arc::new(ManualClock::starting_now());
    let sessions = manager(&store, &clock, SessionConfig::default());
    let user = signed_up(&store, "absolute@example.com").await;
    let created = sessions
        .create(user.id, SessionMeta::default())
        .await
        .unwrap();
    for _ in 0..8 {
        clock.advance(Duration::days(10));
        let valid = sessions.validate(created.token.expose()).await.unwrap();
        assert!(valid.session.expires_at <= created.session.absolute_expires_at);
    }
    clock.advance(Duration::days(10)); // day 90
    assert_eq!(
        code_of(sessions.validate(created.token.expose()).await),
        ErrorCode::SessionExpired
    );
}

/// With an idle timeout, a session unused for that long ends; use keeps it alive.
pub async fn session_manager_ends_idle_sessions(store: Arc<dyn AuthStore>) {
    let clock = Arc::new(ManualClock::starting_now());
    let config = SessionConfig::new()
        .idle_timeout(Some(Duration::hours(1)))
        .unwrap()
        .activity_interval(Duration::minutes(1))
        .unwrap();
    let sessions = manager(&store, &clock, config);
    let user = signed_up(&store, "idle@example.com").await;
    let created = sessions
        .create(user.id, SessionMeta::default())
        .await
        .unwrap();
    for _ in 0..3 {
        clock.advance(Duration::minutes(50));
        sessions.validate(created.token.expose()).await.unwrap();
    }
    clock.advance(Duration::minutes(61));
    assert_eq!(
        code_of(sessions.validate(created.token.expose()).await),
        ErrorCode::SessionExpired
    );
}

/// `last_seen_at` is written in batches, not once per request.
pub async fn session_manager_batches_activity_writes(store: Arc<dyn AuthStore>) {
    let clock = Arc::new(ManualClock::starting_now());
    let sessions = manager(&store, &clock, SessionConfig::default());
    let user = signed_up(&store, "batch@example.com").await;
    let mut created = Vec::new();
    for _ in 0..3 {
        created.push(
            sessions
                .create(user.id, SessionMeta::default())
                .await
                .unwrap(),
        );
    }
    let start = clock_now(&clock);
    clock.advance(Duration::minutes(2));
    for c in &created {
        for _ in 0..50 {
            sessions.validate(c.token.expose()).await.unwrap();
        }
    }
    // Nothing written yet: 150 requests, zero activity writes.
    let stored = store
        .session_by_id(created[0].session.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.last_seen_at, start);
    // The list shows noted activity even before the flush.
    let listed = sessions.list(user.id).await.unwrap();
    assert!(listed.iter().all(|s| s.last_seen_at == clock_now(&clock)));

    assert_eq!(
        sessions.flush_activity().await.unwrap(),
        3,
        "one batch of three sessions"
    );
    assert_eq!(sessions.stats().activity_flushes, 1);
    for c in &created {
        let stored = store.session_by_id(c.session.id).await.unwrap().unwrap();
        assert_eq!(stored.last_seen_at, clock_now(&clock));
    }
    assert_eq!(
        sessions.flush_activity().await.unwrap(),
        0,
        "nothing new to write"
    );
}

/// Sign out everywhere: every session ends except the one kept.
pub async fn session_manager_ends_all_sessions_of_a_user_but_one(store: Arc<dyn AuthStore>) {
    let clock = Arc::new(ManualClock::starting_now());
    let sessions = manager(&store, &clock, SessionConfig::default());
    let user = signed_up(&store, "everywhere@example.com").await;
    let other_user = signed_up(&store, "bystander@example.com").await;
    let mut created = Vec::new();
    for _ in 0..3 {
        let c = sessions
            .create(user.id, SessionMeta::default())
            .await
            .unwrap();
        sessions.validate(c.token.expose()).await.unwrap();
        created.push(c);
    }
    let bystander = sessions
        .create(other_user.id, SessionMeta::default())
        .await
        .unwrap();

    let kept = created[1].session.id;
    assert_eq!(
        sessions
            .end_all_for_user(user.id, Some(kept))
            .await
            .unwrap(),
        2
    );
    for c in &created {
        let result = sessions.validate(c.token.expose()).await;
        if c.session.id == kept {
            assert!(result.is_ok());
        } else {
            assert_eq!(code_of(result), ErrorCode::Unauthenticated);
        }
    }
    assert!(sessions.validate(bystander.token.expose()).await.is_ok());
    assert_eq!(sessions.end_all_for_user(user.id, None).await.unwrap(), 1);
    assert!(sessions.list(user.id).await.unwrap().is_empty());
}

/// Rotation (on privilege change) issues a new id and token; the old token dies.
pub async fn session_manager_rotation_replaces_id_and_token(store: Arc<dyn AuthStore>) {
    let clock = Arc::new(ManualClock::starting_now());
    let sessions = manager(&store, &clock, SessionConfig::default());
    let user = signed_up(&store, "rotate@example.com").await;
    let org = fixtures::organization("rotate-co", clock_now(&clock));
    store.create_organization(&org, user.id).await.unwrap();
    let meta = SessionMeta {
        user_agent: Some("Firefox".to_owned()),
        ip: Some("192.0.2.7".to_owned()),
        active_org_id: Some(org.id),
    };
    let old = sessions.create(user.id, meta).await.unwrap();
    clock.advance(Duration::hours(1));
    let new = sessions.rotate(old.session.id).await.unwrap();
    assert_ne!(new.session.id, old.session.id);
    assert_eq!(
        new.session.absolute_expires_at, old.session.absolute_expires_at,
        "a rotation is no new sign-in: the absolute expiry stays"
    );
    assert_ne!(new.token.expose(), old.token.expose());
    assert_eq!(new.session.active_org_id, Some(org.id));
    assert_eq!(new.session.user_agent.as_deref(), Some("Firefox"));
    assert_eq!(
        code_of(sessions.validate(old.token.expose()).await),
        ErrorCode::Unauthenticated
    );
    assert!(sessions.validate(new.token.expose()).await.is_ok());
    assert!(store.session_by_id(old.session.id).await.unwrap().is_none());
}

/// Switching the active organization is seen by the next request, from the cache.
pub async fn session_manager_active_org_change_is_seen_at_once(store: Arc<dyn AuthStore>) {
    let clock = Arc::new(ManualClock::starting_now());
    let sessions = manager(&store, &clock, SessionConfig::default());
    let user = signed_up(&store, "switch@example.com").await;
    let org = fixtures::organization("switch-co", clock_now(&clock));
    store.create_organization(&org, user.id).await.unwrap();
    let created = sessions
        .create(user.id, SessionMeta::default())
        .await
        .unwrap();
    assert_eq!(
        sessions
            .validate(created.token.expose())
            .await
            .unwrap()
            .session
            .active_org_id,
        None
    );

    sessions
        .set_active_org(created.session.id, Some(org.id))
        .await
        .unwrap();
    let valid = sessions.validate(created.token.expose()).await.unwrap();
    assert_eq!(valid.session.active_org_id, Some(org.id));
    assert_eq!(sessions.stats().store_reads, 0);
    let stored = store
        .session_by_id(created.session.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.active_org_id, Some(org.id));
}

/// A deleted user's sessions stop working once the cache entry is refreshed or dropped.
pub async fn session_manager_refuses_sessions_of_deleted_users(store: Arc<dyn AuthStore>) {
    let clock = Arc::new(ManualClock::starting_now());
    let sessions = manager(&store, &clock, SessionConfig::default());
    let user = signed_up(&store, "gone@example.com").await;
    let created = sessions
        .create(user.id, SessionMeta::default())
        .await
        .unwrap();
    store.delete_user(user.id).await.unwrap();
    sessions.invalidate_user(user.id);
    assert_eq!(
        code_of(sessions.validate(created.token.expose()).await),
        ErrorCode::Unauthenticated
    );
}
