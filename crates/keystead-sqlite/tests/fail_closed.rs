//! When the store cannot answer, authentication fails closed: 503 `unavailable`, never a
//! session let through on a guess.

use std::sync::Arc;

use keystead::session::{SessionConfig, SessionManager, SessionMeta};
use keystead::{AuthStore, Clock, Email, ErrorCode, ManualClock, NewUser, User, UserId};
use keystead_sqlite::SqliteStore;
use time::Duration;

#[tokio::test]
async fn session_validation_fails_closed_when_the_store_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = SqliteStore::open(dir.path().join("auth.db")).await.unwrap();
    let store: Arc<dyn AuthStore> = Arc::new(sqlite.clone());
    let clock = Arc::new(ManualClock::starting_now());
    let user = User {
        id: UserId::new(),
        email: Email::parse("closed@example.com").unwrap(),
        name: None,
        email_verified_at: None,
        created_at: clock.now(),
        external_id: None,
        disabled_at: None,
    };
    store
        .create_user(&NewUser {
            user: user.clone(),
            password_hash: None,
        })
        .await
        .unwrap();
    let config = SessionConfig::new()
        .cache_ttl(Duration::seconds(1))
        .unwrap();
    let sessions = SessionManager::new(store, clock.clone(), config);
    let created = sessions
        .create(user.id, SessionMeta::default())
        .await
        .unwrap();
    sessions.validate(created.token.expose()).await.unwrap();

    sqlite.close().await;

    // Within the cache TTL the cached answer stands (the documented staleness bound)...
    assert!(sessions.validate(created.token.expose()).await.is_ok());
    // ...past it the store must be asked, cannot answer, and the request is refused with 503.
    clock.advance(Duration::seconds(2));
    let err = sessions.validate(created.token.expose()).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::Unavailable);
    assert_eq!(err.status(), 503);
    // An unknown token is refused too, not waved through.
    let err = sessions.validate(&"A".repeat(43)).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::Unavailable);
}
