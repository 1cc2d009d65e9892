//! Behaviour of `PostgresStore` beyond the shared suite: error mapping, bad rows, races at a
//! larger scale, and what `Debug` shows.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::TestDb;
use keystead::{
    Conflict, Email, NewUser, OrgId, OrganizationStore as _, SessionId, SessionStore as _,
    StoreError, User, UserId, UserStore as _,
};
use keystead_postgres::PostgresStore;
use sqlx::postgres::PgPoolOptions;
use time::OffsetDateTime;
use tokio::sync::Barrier;
use uuid::Uuid;

fn new_user(email: &str) -> NewUser {
    NewUser {
        user: User {
            id: UserId::new(),
            email: Email::parse(email).expect("a valid address"),
            name: None,
            email_verified_at: None,
            created_at: keystead::clock::truncate_to_micros(OffsetDateTime::now_utc()),
            external_id: None,
            disabled_at: None,
        },
        password_hash: Some("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into()),
    }
}

/// Sixteen sign-ups with one address at once, over twelve connections: one user, fifteen
/// `Conflict(Email)`, never a backend error.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixteen_concurrent_sign_ups_with_one_email_create_one_user() {
    let db = TestDb::create().await;
    let store = Arc::new(db.store());
    for round in 0..3 {
        let address = format!("race{round}@example.com");
        let barrier = Arc::new(Barrier::new(16));
        let tasks: Vec<_> = (0..16)
            .map(|i| {
                let (store, barrier) = (Arc::clone(&store), Arc::clone(&barrier));
                // Mixed case on the way in is normalized by Email::parse; the index catches
                // the rest.
                let address = if i % 2 == 0 {
                    address.clone()
                } else {
                    address.to_uppercase()
                };
                tokio::spawn(async move {
                    barrier.wait().await;
                    store.create_user(&new_user(&address)).await
                })
            })
            .collect();
        let mut created = 0;
        for task in tasks {
            match task.await.expect("task") {
                Ok(_) => created += 1,
                Err(StoreError::Conflict(Conflict::Email)) => {}
                Err(other) => panic!("round {round}: expected Conflict(Email), got {other:?}"),
            }
        }
        assert_eq!(created, 1, "round {round}");
        let users: i64 = sqlx::query_scalar("SELECT count(*) FROM users WHERE lower(email) = $1")
            .bind(&address)
            .fetch_one(db.pool())
            .await
            .expect("count");
        assert_eq!(users, 1);
        let passwords: i64 = sqlx::query_scalar("SELECT count(*) FROM password_credentials")
            .fetch_one(db.pool())
            .await
            .expect("count");
        assert_eq!(passwords, round + 1, "the losers left no password behind");
    }
    drop(store);
    db.teardown().await;
}

/// An organization deleted while `delete_user` waits for its lock needs no owner any more:
/// the user is deleted, not refused as its last owner.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn delete_user_is_not_refused_for_an_organization_deleted_meanwhile() {
    let db = TestDb::create().await;
    let store = db.store();
    let owner = store
        .create_user(&new_user("owner@example.com"))
        .await
        .expect("user");
    let org = keystead::Organization {
        id: OrgId::new(),
        name: "Acme".to_owned(),
        slug: "acme".to_owned(),
        created_at: owner.created_at,
        external_id: None,
        mfa_required: false,
    };
    store
        .create_organization(&org, owner.id)
        .await
        .expect("org");

    let mut deleting_org = db.pool().begin().await.expect("begin");
    sqlx::query("DELETE FROM organizations WHERE id = $1")
        .bind(org.id.into_uuid())
        .execute(&mut *deleting_org)
        .await
        .expect("delete the organization, uncommitted");
    let task = tokio::spawn({
        let store = store.clone();
        async move { store.delete_user(owner.id).await }
    });
    common::wait_for_a_lock_wait(db.pool(), &task).await;
    assert!(
        !task.is_finished(),
        "delete_user must wait for the organization's row lock"
    );
    deleting_org.commit().await.expect("commit");

    task.await.expect("task").expect("the user is deleted");
    assert_eq!(store.user_by_id(owner.id).await.expect("lookup"), None);
    db.teardown().await;
}

#[tokio::test]
async fn an_unreachable_server_is_unavailable() {
    // Port 1 on the loopback refuses connections.
    let result = PostgresStore::connect("postgres://postgres@127.0.0.1:1/postgres").await;
    assert!(
        matches!(result, Err(StoreError::Unavailable(_))),
        "{result:?}"
    );
}

#[tokio::test]
async fn a_malformed_url_is_a_backend_error() {
    let result = PostgresStore::connect("postgres://[not a host").await;
    assert!(matches!(result, Err(StoreError::Backend(_))), "{result:?}");
}

#[tokio::test]
async fn a_closed_or_exhausted_pool_is_unavailable() {
    let db = TestDb::create().await;

    // One connection, held: the next query times out waiting for it.
    let url = db.url();
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_millis(300))
        .connect(&url)
        .await
        .expect("connect");
    let store = PostgresStore::from_pool(pool.clone());
    let held = pool.acquire().await.expect("the only connection");
    let result = store.user_by_id(UserId::new()).await;
    assert!(
        matches!(result, Err(StoreError::Unavailable(_))),
        "{result:?}"
    );
    drop(held);
    assert_eq!(
        store.user_by_id(UserId::new()).await.expect("free again"),
        None
    );

    pool.close().await;
    let result = store.user_by_id(UserId::new()).await;
    assert!(
        matches!(result, Err(StoreError::Unavailable(_))),
        "{result:?}"
    );
    db.teardown().await;
}

/// Rows a bug or another tool wrote wrongly are errors, not panics: here with the schema's
/// checks dropped, so that such rows can exist at all.
#[tokio::test]
async fn bad_rows_are_backend_errors_not_panics() {
    let db = TestDb::create().await;
    let store = db.store();
    let pool = db.pool();
    let user = Uuid::now_v7();
    sqlx::query("INSERT INTO users (id, email, created_at) VALUES ($1, 'no at sign', now())")
        .bind(user)
        .execute(pool)
        .await
        .expect("insert");
    let result = store.user_by_id(UserId::from_uuid(user)).await;
    assert!(matches!(result, Err(StoreError::Backend(_))), "{result:?}");

    let good = store
        .create_user(&new_user("good@example.com"))
        .await
        .expect("user");
    for sql in [
        "ALTER TABLE sessions DROP CONSTRAINT sessions_token_hash_check",
        "ALTER TABLE memberships DROP CONSTRAINT memberships_role_check",
    ] {
        sqlx::query(sql).execute(pool).await.expect(sql);
    }
    let session = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO sessions (id, token_hash, user_id, created_at, last_seen_at, expires_at, \
         absolute_expires_at, authenticated_at) \
         VALUES ($1, '\\x0102', $2, now(), now(), now(), now(), now())",
    )
    .bind(session)
    .bind(good.id.into_uuid())
    .execute(pool)
    .await
    .expect("short hash");
    let result = store.session_by_id(SessionId::from_uuid(session)).await;
    assert!(matches!(result, Err(StoreError::Backend(_))), "{result:?}");
    let result = store
        .sessions_for_user(good.id, OffsetDateTime::UNIX_EPOCH)
        .await;
    assert!(matches!(result, Err(StoreError::Backend(_))), "{result:?}");

    let org = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO organizations (id, name, slug, created_at) VALUES ($1, 'A', 'a', now())",
    )
    .bind(org)
    .execute(pool)
    .await
    .expect("org");
    sqlx::query("INSERT INTO memberships VALUES ($1, $2, 'Not A Role!', now())")
        .bind(org)
        .bind(good.id.into_uuid())
        .execute(pool)
        .await
        .expect("bad role");
    let result = store.membership(OrgId::from_uuid(org), good.id).await;
    assert!(matches!(result, Err(StoreError::Backend(_))), "{result:?}");
    let result = store.organizations_for_user(good.id).await;
    assert!(matches!(result, Err(StoreError::Backend(_))), "{result:?}");
    db.teardown().await;
}

#[tokio::test]
async fn debug_shows_the_pool_but_no_credentials() {
    let db = TestDb::create().await;
    let options: sqlx::postgres::PgConnectOptions =
        db.url().parse().expect("the test database's URL");
    let pool = PgPoolOptions::new().connect_lazy_with(options.password("hunter2-secret"));
    let store = PostgresStore::from_pool(pool);
    let shown = format!("{store:?}");
    assert!(shown.starts_with("PostgresStore"), "{shown}");
    assert!(!shown.contains("hunter2"), "{shown}");
    store.pool().close().await;
    db.teardown().await;
}
