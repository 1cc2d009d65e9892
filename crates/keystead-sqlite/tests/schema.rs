//! The schema's own guarantees, checked with raw SQL that bypasses the Rust API: what the
//! database refuses, what it cascades, and how the file behaves across reopening.

use std::str::FromStr;

use keystead::{
    ApiTokenStore, Email, NewUser, OrganizationStore, StoreError, User, UserId, UserStore,
};
use keystead_sqlite::SqliteStore;
use sqlx::error::ErrorKind;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool};
use sqlx::{Row, SqlitePool as Pool};
use tempfile::TempDir;

const U1: &str = "00000000-0000-7000-8000-000000000001";
const U2: &str = "00000000-0000-7000-8000-000000000002";
const U3: &str = "00000000-0000-7000-8000-000000000003";
const O1: &str = "00000000-0000-7000-8000-0000000000a1";
const HASH_A: [u8; 32] = [0xaa; 32];
const HASH_B: [u8; 32] = [0xbb; 32];

async fn fresh() -> (TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("auth.db")).await.unwrap();
    (dir, store)
}

fn kind(result: Result<sqlx::sqlite::SqliteQueryResult, sqlx::Error>) -> ErrorKind {
    match result {
        Err(sqlx::Error::Database(db)) => db.kind(),
        other => panic!("expected a database error, got {other:?}"),
    }
}

fn message(result: Result<sqlx::sqlite::SqliteQueryResult, sqlx::Error>) -> String {
    match result {
        Err(sqlx::Error::Database(db)) => db.message().to_owned(),
        other => panic!("expected a database error, got {other:?}"),
    }
}

async fn insert_user(
    pool: &Pool,
    id: &str,
    email: &str,
) -> Result<sqlx::sqlite::SqliteQueryResult, sqlx::Error> {
    sqlx::query("INSERT INTO auth_users (id, email, created_at) VALUES (?1, ?2, 0)")
        .bind(id.to_owned())
        .bind(email.to_owned())
        .execute(pool)
        .await
}

async fn insert_org(
    pool: &Pool,
    id: &str,
    slug: &str,
) -> Result<sqlx::sqlite::SqliteQueryResult, sqlx::Error> {
    sqlx::query(
        "INSERT INTO auth_organizations (id, name, slug, created_at) VALUES (?1, 'Acme', ?2, 0)",
    )
    .bind(id.to_owned())
    .bind(slug.to_owned())
    .execute(pool)
    .await
}

async fn insert_member(
    pool: &Pool,
    org: &str,
    user: &str,
    role: &str,
) -> Result<sqlx::sqlite::SqliteQueryResult, sqlx::Error> {
    sqlx::query(
        "INSERT INTO auth_memberships (org_id, user_id, role, joined_at) VALUES (?1, ?2, ?3, 0)",
    )
    .bind(org.to_owned())
    .bind(user.to_owned())
    .bind(role.to_owned())
    .execute(pool)
    .await
}

async fn insert_session(
    pool: &Pool,
    id: &str,
    user: &str,
    hash: &[u8],
    org: Option<&str>,
) -> Result<sqlx::sqlite::SqliteQueryResult, sqlx::Error> {
    sqlx::query(
        "INSERT INTO auth_sessions (id, token_hash, user_id, created_at, last_seen_at, expires_at, \
             absolute_expires_at, active_org_id) VALUES (?1, ?2, ?3, 0, 0, 10, 10, ?4)",
    )
    .bind(id.to_owned())
    .bind(hash.to_vec())
    .bind(user.to_owned())
    .bind(org.map(str::to_owned))
    .execute(pool)
    .await
}

async fn count(pool: &Pool, sql: &'static str) -> i64 {
    sqlx::query(sql).fetch_one(pool).await.unwrap().get(0)
}

fn id(n: u32) -> String {
    format!("00000000-0000-7000-8000-{n:012x}")
}

#[tokio::test]
async fn emails_differing_only_in_case_are_one_email() {
    let (_dir, store) = fresh().await;
    let pool = store.writer_pool();
    insert_user(pool, U1, "alice@example.com").await.unwrap();
    assert_eq!(
        kind(insert_user(pool, U2, "ALICE@Example.COM").await),
        ErrorKind::UniqueViolation
    );
    assert_eq!(
        kind(insert_user(pool, U2, "alice@example.com").await),
        ErrorKind::UniqueViolation
    );
    insert_user(pool, U2, "bob@example.com").await.unwrap();
    // The same user id twice is refused too.
    assert_eq!(
        kind(insert_user(pool, U1, "carol@example.com").await),
        ErrorKind::UniqueViolation
    );
    // And the store looks the address up through the case-insensitive column.
    let found: String = sqlx::query("SELECT id FROM auth_users WHERE email = 'Alice@EXAMPLE.com'")
        .fetch_one(store.reader_pool())
        .await
        .unwrap()
        .get(0);
    assert_eq!(found, U1);
}

#[tokio::test]
async fn a_user_is_a_member_of_an_organization_once() {
    let (_dir, store) = fresh().await;
    let pool = store.writer_pool();
    insert_user(pool, U1, "a@example.com").await.unwrap();
    insert_org(pool, O1, "acme").await.unwrap();
    insert_member(pool, O1, U1, "owner").await.unwrap();
    assert_eq!(
        kind(insert_member(pool, O1, U1, "member").await),
        ErrorKind::UniqueViolation
    );
    assert_eq!(
        kind(insert_org(pool, &id(0xa2), "acme").await),
        ErrorKind::UniqueViolation,
        "slug"
    );
}

#[tokio::test]
async fn foreign_keys_are_enforced() {
    let (_dir, store) = fresh().await;
    let pool = store.writer_pool();
    insert_user(pool, U1, "a@example.com").await.unwrap();
    assert_eq!(
        kind(insert_session(pool, &id(1), U2, &HASH_A, None).await),
        ErrorKind::ForeignKeyViolation
    );
    assert_eq!(
        kind(insert_session(pool, &id(1), U1, &HASH_A, Some(O1)).await),
        ErrorKind::ForeignKeyViolation
    );
    assert_eq!(
        kind(insert_member(pool, O1, U1, "owner").await),
        ErrorKind::ForeignKeyViolation
    );
    let password = sqlx::query(
        "INSERT INTO auth_password_credentials (user_id, hash, updated_at) VALUES (?1, 'x', 0)",
    )
    .bind(U2)
    .execute(pool)
    .await;
    assert_eq!(kind(password), ErrorKind::ForeignKeyViolation);
}

#[tokio::test]
async fn token_hashes_are_unique() {
    let (_dir, store) = fresh().await;
    let pool = store.writer_pool();
    insert_user(pool, U1, "a@example.com").await.unwrap();
    insert_org(pool, O1, "acme").await.unwrap();
    insert_member(pool, O1, U1, "owner").await.unwrap();

    insert_session(pool, &id(1), U1, &HASH_A, None)
        .await
        .unwrap();
    assert_eq!(
        kind(insert_session(pool, &id(2), U1, &HASH_A, None).await),
        ErrorKind::UniqueViolation
    );
    insert_session(pool, &id(2), U1, &HASH_B, None)
        .await
        .unwrap();

    let ott = |n: u32, hash: [u8; 32], purpose: &'static str| {
        sqlx::query(
            "INSERT INTO auth_one_time_tokens (id, purpose, user_id, token_hash, created_at, expires_at) \
             VALUES (?1, ?2, ?3, ?4, 0, 10)",
        )
        .bind(id(n))
        .bind(purpose)
        .bind(U1)
        .bind(hash.to_vec())
        .execute(pool)
    };
    ott(10, HASH_A, "password_reset").await.unwrap();
    assert_eq!(
        kind(ott(11, HASH_A, "email_verification").await),
        ErrorKind::UniqueViolation
    );

    let invite = |n: u32, hash: [u8; 32]| {
        sqlx::query(
            "INSERT INTO auth_invitations (id, org_id, email, role, token_hash, invited_by, created_at, \
                 expires_at) VALUES (?1, ?2, 'b@example.com', 'member', ?3, ?4, 0, 10)",
        )
        .bind(id(n))
        .bind(O1)
        .bind(hash.to_vec())
        .bind(U1)
        .execute(pool)
    };
    invite(20, HASH_A).await.unwrap();
    assert_eq!(kind(invite(21, HASH_A).await), ErrorKind::UniqueViolation);
}

#[tokio::test]
async fn checks_refuse_malformed_values() {
    let (_dir, store) = fresh().await;
    let pool = store.writer_pool();
    insert_user(pool, U1, "a@example.com").await.unwrap();
    insert_org(pool, O1, "acme").await.unwrap();

    // A hash must be 32 bytes.
    assert_eq!(
        kind(insert_session(pool, &id(1), U1, &[0; 31], None).await),
        ErrorKind::CheckViolation
    );
    // A purpose must be known.
    let ott = sqlx::query(
        "INSERT INTO auth_one_time_tokens (id, purpose, user_id, token_hash, created_at, expires_at) \
         VALUES (?1, 'magic_link', ?2, ?3, 0, 10)",
    )
    .bind(id(2))
    .bind(U1)
    .bind(HASH_A.to_vec())
    .execute(pool)
    .await;
    assert_eq!(kind(ott), ErrorKind::CheckViolation);
    // Role names are lower-case letters, digits, `_` and `-`.
    for bad in ["Owner", "", "a:b", "billing admin", &"x".repeat(65)] {
        assert_eq!(
            kind(insert_member(pool, O1, U1, bad).await),
            ErrorKind::CheckViolation,
            "{bad:?}"
        );
    }
    insert_member(pool, O1, U1, "billing_admin-2")
        .await
        .unwrap();
    // Ids are hyphenated UUIDs (by length), booleans are 0 or 1, scopes a JSON array.
    assert_eq!(
        kind(insert_user(pool, "42", "b@example.com").await),
        ErrorKind::CheckViolation
    );
    let external = sqlx::query(
        "INSERT INTO auth_external_accounts (id, user_id, provider, issuer, subject, email_verified, \
             created_at) VALUES (?1, ?2, 'google', 'https://accounts.google.com', 's', 2, 0)",
    )
    .bind(id(3))
    .bind(U1)
    .execute(pool)
    .await;
    assert_eq!(kind(external), ErrorKind::CheckViolation);
    let token = sqlx::query(
        "INSERT INTO auth_api_tokens (id, name, user_id, org_id, scopes, created_by, created_at, \
             expires_at) VALUES (?1, 't', ?2, ?3, '{\"a\": 1}', ?2, 0, 10)",
    )
    .bind(id(4))
    .bind(U1)
    .bind(O1)
    .execute(pool)
    .await;
    assert_eq!(kind(token), ErrorKind::CheckViolation);
    // STRICT tables: a time is an integer, not text.
    let strict = sqlx::query(
        "INSERT INTO auth_users (id, email, created_at) VALUES (?1, 'c@example.com', 'yesterday')",
    )
    .bind(U3)
    .execute(pool)
    .await;
    assert!(
        strict.is_err(),
        "a STRICT table refuses text in an INTEGER column"
    );
}

#[tokio::test]
async fn deleting_a_user_cascades_to_what_is_theirs() {
    let (_dir, store) = fresh().await;
    let pool = store.writer_pool();
    insert_user(pool, U1, "owner@example.com").await.unwrap();
    insert_user(pool, U2, "leaver@example.com").await.unwrap();
    insert_org(pool, O1, "acme").await.unwrap();
    insert_member(pool, O1, U1, "owner").await.unwrap();
    insert_member(pool, O1, U2, "member").await.unwrap();
    sqlx::query("INSERT INTO auth_password_credentials (user_id, hash, updated_at) VALUES (?1, '$argon2id$x', 0)")
        .bind(U2)
        .execute(pool)
        .await
        .unwrap();
    insert_session(pool, &id(1), U2, &HASH_A, Some(O1))
        .await
        .unwrap();
    insert_session(pool, &id(2), U1, &HASH_B, Some(O1))
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO auth_external_accounts (id, user_id, provider, issuer, subject, email_verified, \
             created_at) VALUES (?1, ?2, 'google', 'https://accounts.google.com', 's', 1, 0)",
    )
    .bind(id(3))
    .bind(U2)
    .execute(pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO auth_one_time_tokens (id, purpose, user_id, token_hash, created_at, expires_at) \
         VALUES (?1, 'password_reset', ?2, ?3, 0, 10)",
    )
    .bind(id(4))
    .bind(U2)
    .bind([0xcc_u8; 32].to_vec())
    .execute(pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO auth_api_tokens (id, name, user_id, org_id, scopes, created_by, created_at, \
             expires_at) VALUES (?1, 't', ?2, ?3, '[\"read:projects\"]', ?2, 0, 10)",
    )
    .bind(id(5))
    .bind(U2)
    .bind(O1)
    .execute(pool)
    .await
    .unwrap();
    // An invitation U2 sent, one U2 accepted (from U1), and an audit event about U2.
    sqlx::query(
        "INSERT INTO auth_invitations (id, org_id, email, role, token_hash, invited_by, created_at, \
             expires_at, accepted_at, accepted_by) \
         VALUES (?1, ?2, 'x@example.com', 'member', ?3, ?4, 0, 10, NULL, NULL), \
                (?5, ?2, 'leaver@example.com', 'member', ?6, ?7, 0, 10, 5, ?4)",
    )
    .bind(id(6))
    .bind(O1)
    .bind([0xdd_u8; 32].to_vec())
    .bind(U2)
    .bind(id(7))
    .bind([0xee_u8; 32].to_vec())
    .bind(U1)
    .execute(pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO auth_audit_events (id, at, kind, actor_id, user_id, org_id, data) \
         VALUES (?1, 0, 'user.updated', ?2, ?2, ?3, '{}')",
    )
    .bind(id(8))
    .bind(U2)
    .bind(O1)
    .execute(pool)
    .await
    .unwrap();

    sqlx::query("DELETE FROM auth_users WHERE id = ?1")
        .bind(U2)
        .execute(pool)
        .await
        .unwrap();

    assert_eq!(
        count(pool, "SELECT count(*) FROM auth_password_credentials").await,
        0
    );
    assert_eq!(
        count(pool, "SELECT count(*) FROM auth_external_accounts").await,
        0
    );
    assert_eq!(
        count(pool, "SELECT count(*) FROM auth_one_time_tokens").await,
        0
    );
    assert_eq!(count(pool, "SELECT count(*) FROM auth_api_tokens").await, 0);
    assert_eq!(
        count(pool, "SELECT count(*) FROM auth_sessions").await,
        1,
        "U1's session stays"
    );
    assert_eq!(
        count(pool, "SELECT count(*) FROM auth_memberships").await,
        1,
        "U1's membership stays"
    );
    assert_eq!(
        count(pool, "SELECT count(*) FROM auth_invitations").await,
        1,
        "U2's invitation goes"
    );
    assert_eq!(
        count(
            pool,
            "SELECT count(*) FROM auth_invitations WHERE accepted_by IS NULL AND accepted_at = 5"
        )
        .await,
        1,
        "the invitation U2 accepted stays, its acceptor cleared"
    );
    assert_eq!(
        count(pool, "SELECT count(*) FROM auth_audit_events WHERE actor_id IS NULL AND user_id IS NULL AND org_id IS NOT NULL").await,
        1,
        "audit events stay with the user references cleared"
    );
}

#[tokio::test]
async fn deleting_an_organization_cascades_and_clears_active_orgs() {
    let (_dir, store) = fresh().await;
    let pool = store.writer_pool();
    insert_user(pool, U1, "a@example.com").await.unwrap();
    insert_org(pool, O1, "acme").await.unwrap();
    insert_member(pool, O1, U1, "owner").await.unwrap();
    insert_session(pool, &id(1), U1, &HASH_A, Some(O1))
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO auth_api_tokens (id, name, user_id, org_id, scopes, created_by, created_at, \
             expires_at) VALUES (?1, 't', ?2, ?3, '[]', ?2, 0, 10)",
    )
    .bind(id(2))
    .bind(U1)
    .bind(O1)
    .execute(pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO auth_invitations (id, org_id, email, role, token_hash, invited_by, created_at, \
             expires_at) VALUES (?1, ?2, 'b@example.com', 'member', ?3, ?4, 0, 10)",
    )
    .bind(id(3))
    .bind(O1)
    .bind(HASH_B.to_vec())
    .bind(U1)
    .execute(pool)
    .await
    .unwrap();
    sqlx::query("INSERT INTO auth_audit_events (id, at, kind, org_id, data) VALUES (?1, 0, 'org.created', ?2, '{}')")
        .bind(id(4))
        .bind(O1)
        .execute(pool)
        .await
        .unwrap();

    // The owner trigger lets the organization's own deletion take its last owner along.
    sqlx::query("DELETE FROM auth_organizations WHERE id = ?1")
        .bind(O1)
        .execute(pool)
        .await
        .unwrap();

    assert_eq!(
        count(pool, "SELECT count(*) FROM auth_memberships").await,
        0
    );
    assert_eq!(count(pool, "SELECT count(*) FROM auth_api_tokens").await, 0);
    assert_eq!(
        count(pool, "SELECT count(*) FROM auth_invitations").await,
        0
    );
    assert_eq!(
        count(
            pool,
            "SELECT count(*) FROM auth_sessions WHERE active_org_id IS NULL"
        )
        .await,
        1
    );
    assert_eq!(
        count(
            pool,
            "SELECT count(*) FROM auth_audit_events WHERE org_id IS NULL"
        )
        .await,
        1
    );
    assert_eq!(count(pool, "SELECT count(*) FROM auth_users").await, 1);
}

#[tokio::test]
async fn triggers_keep_every_organization_an_owner() {
    let (_dir, store) = fresh().await;
    let pool = store.writer_pool();
    insert_user(pool, U1, "a@example.com").await.unwrap();
    insert_user(pool, U2, "b@example.com").await.unwrap();
    insert_org(pool, O1, "acme").await.unwrap();
    insert_member(pool, O1, U1, "owner").await.unwrap();
    insert_member(pool, O1, U2, "member").await.unwrap();

    let demote = || {
        sqlx::query("UPDATE auth_memberships SET role = 'admin' WHERE user_id = ?1")
            .bind(U1)
            .execute(pool)
    };
    let remove = || {
        sqlx::query("DELETE FROM auth_memberships WHERE user_id = ?1")
            .bind(U1)
            .execute(pool)
    };
    let delete_user = || {
        sqlx::query("DELETE FROM auth_users WHERE id = ?1")
            .bind(U1)
            .execute(pool)
    };
    assert_eq!(message(demote().await), "last_owner");
    assert_eq!(message(remove().await), "last_owner");
    assert_eq!(
        message(delete_user().await),
        "last_owner",
        "the cascade of a user delete too"
    );
    assert_eq!(
        count(
            pool,
            "SELECT count(*) FROM auth_memberships WHERE role = 'owner'"
        )
        .await,
        1
    );

    // With a second owner, the first may go.
    sqlx::query("UPDATE auth_memberships SET role = 'owner' WHERE user_id = ?1")
        .bind(U2)
        .execute(pool)
        .await
        .unwrap();
    demote().await.unwrap();
    remove().await.unwrap();
    assert_eq!(
        count(
            pool,
            "SELECT count(*) FROM auth_memberships WHERE role = 'owner'"
        )
        .await,
        1
    );

    // And the store answers LastOwner for the same attempts through its API.
    let u2 = UserId::from_str(U2).unwrap();
    let o1 = keystead::OrgId::from_str(O1).unwrap();
    assert!(matches!(
        store.remove_member(o1, u2).await,
        Err(StoreError::LastOwner)
    ));
    assert!(matches!(
        store.change_role(o1, u2, &keystead::Role::MEMBER).await,
        Err(StoreError::LastOwner)
    ));
    assert!(matches!(
        store.delete_user(u2).await,
        Err(StoreError::LastOwner)
    ));
}

fn new_user(email: &str) -> NewUser {
    NewUser {
        user: User {
            id: UserId::new(),
            email: Email::parse(email).unwrap(),
            name: Some("Ada".to_owned()),
            email_verified_at: None,
            created_at: keystead::clock::truncate_to_micros(time::OffsetDateTime::now_utc()),
            external_id: None,
            disabled_at: None,
        },
        password_hash: Some("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into()),
    }
}

async fn applied_migrations(pool: &SqlitePool) -> i64 {
    count(pool, "SELECT count(*) FROM auth_migrations").await
}

#[tokio::test]
async fn migrations_are_idempotent_and_data_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("auth.db");
    let new = new_user("persist@example.com");

    let store = SqliteStore::open(&path).await.unwrap();
    let expected = 8;
    assert!(store.schema_status().await.unwrap().is_current());
    assert_eq!(applied_migrations(store.writer_pool()).await, expected);
    store.create_user(&new).await.unwrap();
    store.migrate().await.expect("migrating again is a no-op");
    store.close().await;
    drop(store);

    for _ in 0..2 {
        let store = SqliteStore::open(&path).await.expect("reopen");
        assert_eq!(
            applied_migrations(store.writer_pool()).await,
            expected,
            "nothing re-applied"
        );
        assert_eq!(
            store.user_by_id(new.user.id).await.unwrap(),
            Some(new.user.clone())
        );
        let credential = store
            .password_credential(new.user.id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(credential.hash, new.password_hash.clone().unwrap());
        store.close().await;
    }
}

#[tokio::test]
async fn open_creates_directories_and_configures_the_connections() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/deeper/auth.db");
    let store = SqliteStore::open(&path).await.unwrap();
    assert!(path.exists());
    assert_eq!(store.path(), Some(path.as_path()));

    let writer = store.writer_pool();
    let journal: String = sqlx::query("PRAGMA journal_mode")
        .fetch_one(writer)
        .await
        .unwrap()
        .get(0);
    assert_eq!(journal, "wal");
    assert_eq!(count(writer, "PRAGMA foreign_keys").await, 1);
    assert_eq!(count(writer, "PRAGMA synchronous").await, 1, "NORMAL");
    assert_eq!(count(writer, "PRAGMA busy_timeout").await, 5000);

    let reader = store.reader_pool();
    assert_eq!(count(reader, "PRAGMA query_only").await, 1);
    assert_eq!(count(reader, "PRAGMA foreign_keys").await, 1);
    assert!(
        insert_user(reader, U1, "a@example.com").await.is_err(),
        "reader connections do not write"
    );
    let debug = format!("{store:?}");
    assert!(debug.starts_with("SqliteStore"), "{debug}");
    store.close().await;
}

#[tokio::test]
async fn connect_accepts_sqlite_urls() {
    // The example app's relative URL names a file relative to the working directory.
    let options = SqliteConnectOptions::from_str("sqlite://var/app.db").unwrap();
    assert_eq!(options.get_filename(), std::path::Path::new("var/app.db"));

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub/app.db");
    let url = format!("sqlite://{}", path.display());
    let store = SqliteStore::connect(&url).await.unwrap();
    let new = new_user("url@example.com");
    store.create_user(&new).await.unwrap();
    store.close().await;
    let reopened = SqliteStore::open(&path).await.unwrap();
    assert!(reopened.user_by_id(new.user.id).await.unwrap().is_some());

    let memory = SqliteStore::connect("sqlite::memory:").await.unwrap();
    memory.create_user(&new).await.unwrap();
    assert_eq!(
        memory.user_by_email(&new.user.email).await.unwrap(),
        Some(new.user.clone())
    );

    assert!(matches!(
        SqliteStore::connect("postgres://localhost/db").await,
        Err(StoreError::Backend(_))
    ));
}

#[tokio::test]
async fn rows_that_do_not_decode_are_errors_not_panics() {
    let (_dir, store) = fresh().await;
    let pool = store.writer_pool();
    // 36 characters, but not a UUID.
    insert_user(
        pool,
        "zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz",
        "bad@example.com",
    )
    .await
    .unwrap();
    let email = Email::parse("bad@example.com").unwrap();
    assert!(matches!(
        store.user_by_email(&email).await,
        Err(StoreError::Backend(_))
    ));

    // A time out of range.
    sqlx::query(
        "INSERT INTO auth_users (id, email, created_at) VALUES (?1, 'late@example.com', ?2)",
    )
    .bind(U1)
    .bind(i64::MAX)
    .execute(pool)
    .await
    .unwrap();
    let late = UserId::from_str(U1).unwrap();
    assert!(matches!(
        store.user_by_id(late).await,
        Err(StoreError::Backend(_))
    ));

    // Scopes that are not permission names.
    insert_user(pool, U2, "ok@example.com").await.unwrap();
    insert_org(pool, O1, "acme").await.unwrap();
    sqlx::query(
        "INSERT INTO auth_api_tokens (id, name, user_id, org_id, scopes, created_by, created_at, \
             expires_at) VALUES (?1, 't', ?2, ?3, '[1, \"NOT VALID\"]', ?2, 0, 10)",
    )
    .bind(id(9))
    .bind(U2)
    .bind(O1)
    .execute(pool)
    .await
    .unwrap();
    let token = keystead::ApiTokenId::from_str(&id(9)).unwrap();
    assert!(matches!(
        store.api_token(token).await,
        Err(StoreError::Backend(_))
    ));
}

/// The plan's steps for `sql` (`EXPLAIN QUERY PLAN`), one line each.
async fn plan(pool: &Pool, sql: &'static str) -> Vec<String> {
    let explain = sqlx::AssertSqlSafe(format!("EXPLAIN QUERY PLAN {sql}"));
    let mut query = sqlx::query(explain);
    // Every lookup below takes up to two parameters; unbound ones are NULL for planning.
    query = query
        .bind("00000000-0000-7000-8000-000000000000")
        .bind(0_i64);
    query
        .fetch_all(pool)
        .await
        .unwrap()
        .iter()
        .map(|row| row.get::<String, _>("detail"))
        .collect()
}

#[tokio::test]
async fn hot_path_lookups_use_indexes() {
    let (_dir, store) = fresh().await;
    let pool = store.reader_pool();
    // Each lookup the store makes per request or per list, as it makes it.
    let lookups: [&'static str; 12] = [
        "SELECT * FROM auth_users WHERE email = ?1",
        "SELECT * FROM auth_sessions WHERE token_hash = ?1",
        "SELECT * FROM auth_sessions WHERE user_id = ?1 AND expires_at > ?2 \
         ORDER BY created_at DESC, id DESC",
        "SELECT o.id, m.role FROM auth_memberships AS m JOIN auth_organizations AS o ON o.id = m.org_id \
         WHERE m.user_id = ?1 ORDER BY m.joined_at, o.id",
        "SELECT * FROM auth_memberships AS m JOIN auth_users AS u ON u.id = m.user_id WHERE m.org_id = ?1",
        "SELECT * FROM auth_memberships WHERE org_id = ?1 AND role = 'owner' AND user_id <> ?2",
        "SELECT * FROM auth_api_tokens WHERE org_id = ?1 ORDER BY created_at DESC, id DESC",
        "SELECT id, expires_at FROM auth_api_tokens WHERE revoked_at IS NOT NULL \
         AND expires_at > ?2",
        "SELECT * FROM auth_one_time_tokens WHERE token_hash = ?1 AND purpose = 'password_reset'",
        "SELECT * FROM auth_invitations WHERE token_hash = ?1",
        "SELECT * FROM auth_invitations WHERE org_id = ?1 AND accepted_at IS NULL \
         ORDER BY created_at DESC, id DESC",
        "SELECT * FROM auth_external_accounts WHERE issuer = ?1 AND subject = ?1",
    ];
    for sql in lookups {
        let steps = plan(pool, sql).await;
        assert!(
            steps.iter().all(|s| !s.starts_with("SCAN ")),
            "{sql}\nscans a table: {steps:#?}"
        );
    }
}
