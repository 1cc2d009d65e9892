//! The schema's own guarantees, checked with raw SQL that bypasses the Rust API: what a bug,
//! a migration script or another tool writing to the database directly cannot break.

mod common;

use std::sync::Arc;

use common::TestDb;
use keystead::{OrgId, OrganizationStore as _, Role, StoreError, UserId};
use keystead_postgres::PostgresStore;
use sqlx::PgPool;
use sqlx::postgres::PgQueryResult;
use time::OffsetDateTime;
use tokio::sync::Barrier;
use uuid::Uuid;

const UNIQUE_VIOLATION: &str = "23505";
const FOREIGN_KEY_VIOLATION: &str = "23503";
const CHECK_VIOLATION: &str = "23514";

/// The SQLSTATE and constraint of the error a statement must fail with.
fn refused(result: Result<PgQueryResult, sqlx::Error>) -> (String, String) {
    let err = result.expect_err("the database accepted a row it must refuse");
    let db = err
        .as_database_error()
        .unwrap_or_else(|| panic!("expected a database error, got {err}"));
    (
        db.code().map(|c| c.into_owned()).unwrap_or_default(),
        db.constraint().unwrap_or_default().to_owned(),
    )
}

async fn insert_user(pool: &PgPool, email: &str) -> Result<PgQueryResult, sqlx::Error> {
    sqlx::query("INSERT INTO users (id, email, created_at) VALUES ($1, $2, now())")
        .bind(Uuid::now_v7())
        .bind(email)
        .execute(pool)
        .await
}

async fn user(pool: &PgPool, email: &str) -> Uuid {
    let id = Uuid::now_v7();
    sqlx::query("INSERT INTO users (id, email, created_at) VALUES ($1, $2, now())")
        .bind(id)
        .bind(email)
        .execute(pool)
        .await
        .expect("insert user");
    id
}

async fn org(pool: &PgPool, slug: &str) -> Uuid {
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO organizations (id, name, slug, created_at) VALUES ($1, $2, $2, now())",
    )
    .bind(id)
    .bind(slug)
    .execute(pool)
    .await
    .expect("insert organization");
    id
}

async fn add_member(
    pool: &PgPool,
    org_id: Uuid,
    user_id: Uuid,
    role: &str,
) -> Result<PgQueryResult, sqlx::Error> {
    sqlx::query(
        "INSERT INTO memberships (org_id, user_id, role, joined_at) VALUES ($1, $2, $3, now())",
    )
    .bind(org_id)
    .bind(user_id)
    .bind(role)
    .execute(pool)
    .await
}

async fn insert_session(
    pool: &PgPool,
    user_id: Uuid,
    hash: &[u8],
) -> Result<PgQueryResult, sqlx::Error> {
    sqlx::query(
        "INSERT INTO sessions (id, token_hash, user_id, created_at, last_seen_at, expires_at, \
         absolute_expires_at, authenticated_at) VALUES ($1, $2, $3, now(), now(), \
         now() + interval '1 day', now() + interval '30 days', now())",
    )
    .bind(Uuid::now_v7())
    .bind(hash)
    .bind(user_id)
    .execute(pool)
    .await
}

async fn insert_one_time_token(
    pool: &PgPool,
    user_id: Uuid,
    purpose: &str,
    hash: &[u8],
) -> Result<PgQueryResult, sqlx::Error> {
    sqlx::query(
        "INSERT INTO one_time_tokens (id, purpose, user_id, token_hash, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, now(), now() + interval '1 hour')",
    )
    .bind(Uuid::now_v7())
    .bind(purpose)
    .bind(user_id)
    .bind(hash)
    .execute(pool)
    .await
}

async fn insert_invitation(
    pool: &PgPool,
    org_id: Uuid,
    invited_by: Uuid,
    hash: &[u8],
) -> Result<PgQueryResult, sqlx::Error> {
    sqlx::query(
        "INSERT INTO invitations (id, org_id, email, role, token_hash, invited_by, created_at, \
         expires_at) VALUES ($1, $2, 'invitee@example.com', 'member', $3, $4, now(), \
         now() + interval '7 days')",
    )
    .bind(Uuid::now_v7())
    .bind(org_id)
    .bind(hash)
    .bind(invited_by)
    .execute(pool)
    .await
}

async fn count(pool: &PgPool, sql: &'static str, id: Uuid) -> i64 {
    sqlx::query_scalar(sql)
        .bind(id)
        .fetch_one(pool)
        .await
        .expect(sql)
}

#[tokio::test]
async fn emails_differing_only_in_case_violate_the_unique_index() {
    let db = TestDb::create().await;
    insert_user(db.pool(), "alice@example.com")
        .await
        .expect("first user");
    let (code, constraint) = refused(insert_user(db.pool(), "ALICE@Example.com").await);
    assert_eq!(
        (code.as_str(), constraint.as_str()),
        (UNIQUE_VIOLATION, "users_email_lower_key")
    );
    let (code, _) = refused(insert_user(db.pool(), "alice@example.com").await);
    assert_eq!(code, UNIQUE_VIOLATION);
    insert_user(db.pool(), "alice2@example.com")
        .await
        .expect("another address");
    db.teardown().await;
}

#[tokio::test]
async fn a_second_membership_of_one_user_violates_the_primary_key() {
    let db = TestDb::create().await;
    let (u, o) = (
        user(db.pool(), "m@example.com").await,
        org(db.pool(), "acme").await,
    );
    add_member(db.pool(), o, u, "owner")
        .await
        .expect("first membership");
    let (code, constraint) = refused(add_member(db.pool(), o, u, "member").await);
    assert_eq!(
        (code.as_str(), constraint.as_str()),
        (UNIQUE_VIOLATION, "memberships_pkey")
    );
    db.teardown().await;
}

#[tokio::test]
async fn a_second_organization_with_one_slug_violates_the_unique_constraint() {
    let db = TestDb::create().await;
    org(db.pool(), "acme").await;
    let result = sqlx::query(
        "INSERT INTO organizations (id, name, slug, created_at) VALUES ($1, 'Other', 'acme', now())",
    )
    .bind(Uuid::now_v7())
    .execute(db.pool())
    .await;
    let (code, constraint) = refused(result);
    assert_eq!(
        (code.as_str(), constraint.as_str()),
        (UNIQUE_VIOLATION, "organizations_slug_key")
    );
    db.teardown().await;
}

#[tokio::test]
async fn references_to_missing_rows_violate_foreign_keys() {
    let db = TestDb::create().await;
    let (u, o) = (
        user(db.pool(), "fk@example.com").await,
        org(db.pool(), "acme").await,
    );
    let (code, _) = refused(add_member(db.pool(), o, Uuid::now_v7(), "member").await);
    assert_eq!(code, FOREIGN_KEY_VIOLATION, "membership of an unknown user");
    let (code, _) = refused(add_member(db.pool(), Uuid::now_v7(), u, "member").await);
    assert_eq!(
        code, FOREIGN_KEY_VIOLATION,
        "membership in an unknown organization"
    );
    let (code, _) = refused(insert_session(db.pool(), Uuid::now_v7(), &[1; 32]).await);
    assert_eq!(code, FOREIGN_KEY_VIOLATION, "session of an unknown user");
    let (code, _) = refused(insert_invitation(db.pool(), o, Uuid::now_v7(), &[2; 32]).await);
    assert_eq!(code, FOREIGN_KEY_VIOLATION, "invitation by an unknown user");
    let audit = sqlx::query(
        "INSERT INTO audit_events (id, at, kind, actor_id) VALUES ($1, now(), 'x', $2)",
    )
    .bind(Uuid::now_v7())
    .bind(Uuid::now_v7())
    .execute(db.pool())
    .await;
    assert_eq!(
        refused(audit).0,
        FOREIGN_KEY_VIOLATION,
        "audit event by an unknown actor"
    );
    db.teardown().await;
}

#[tokio::test]
async fn token_hashes_are_unique_per_table() {
    let db = TestDb::create().await;
    let (u, o) = (
        user(db.pool(), "t@example.com").await,
        org(db.pool(), "acme").await,
    );
    let hash = [7u8; 32];

    insert_session(db.pool(), u, &hash)
        .await
        .expect("first session");
    let (code, constraint) = refused(insert_session(db.pool(), u, &hash).await);
    assert_eq!(
        (code.as_str(), constraint.as_str()),
        (UNIQUE_VIOLATION, "sessions_token_hash_key")
    );

    insert_one_time_token(db.pool(), u, "password_reset", &hash)
        .await
        .expect("first token");
    let (code, constraint) =
        refused(insert_one_time_token(db.pool(), u, "email_verification", &hash).await);
    assert_eq!(
        (code.as_str(), constraint.as_str()),
        (UNIQUE_VIOLATION, "one_time_tokens_token_hash_key")
    );

    insert_invitation(db.pool(), o, u, &hash)
        .await
        .expect("first invitation");
    let (code, constraint) = refused(insert_invitation(db.pool(), o, u, &hash).await);
    assert_eq!(
        (code.as_str(), constraint.as_str()),
        (UNIQUE_VIOLATION, "invitations_token_hash_key")
    );
    db.teardown().await;
}

#[tokio::test]
async fn token_hashes_must_be_exactly_32_bytes() {
    let db = TestDb::create().await;
    let (u, o) = (
        user(db.pool(), "len@example.com").await,
        org(db.pool(), "acme").await,
    );
    for (i, len) in [0usize, 16, 31, 33, 64].into_iter().enumerate() {
        let hash = vec![u8::try_from(i).expect("small"); len];
        let (code, constraint) = refused(insert_session(db.pool(), u, &hash).await);
        assert_eq!(
            (code.as_str(), constraint.as_str()),
            (CHECK_VIOLATION, "sessions_token_hash_check")
        );
        let (code, constraint) =
            refused(insert_one_time_token(db.pool(), u, "password_reset", &hash).await);
        assert_eq!(
            (code.as_str(), constraint.as_str()),
            (CHECK_VIOLATION, "one_time_tokens_token_hash_check")
        );
        let (code, constraint) = refused(insert_invitation(db.pool(), o, u, &hash).await);
        assert_eq!(
            (code.as_str(), constraint.as_str()),
            (CHECK_VIOLATION, "invitations_token_hash_check")
        );
    }
    insert_session(db.pool(), u, &[9; 32])
        .await
        .expect("32 bytes is right");
    db.teardown().await;
}

#[tokio::test]
async fn unknown_token_purposes_and_malformed_role_names_violate_checks() {
    let db = TestDb::create().await;
    let (u, o) = (
        user(db.pool(), "chk@example.com").await,
        org(db.pool(), "acme").await,
    );
    for purpose in ["login", "", "PASSWORD_RESET", "password_reset "] {
        let (code, constraint) =
            refused(insert_one_time_token(db.pool(), u, purpose, &[3; 32]).await);
        assert_eq!(
            (code.as_str(), constraint.as_str()),
            (CHECK_VIOLATION, "one_time_tokens_purpose_check"),
            "{purpose:?}"
        );
    }
    for role in ["Owner", "", "admin!", "a b"] {
        let (code, constraint) = refused(add_member(db.pool(), o, u, role).await);
        assert_eq!(
            (code.as_str(), constraint.as_str()),
            (CHECK_VIOLATION, "memberships_role_check"),
            "{role:?}"
        );
    }
    add_member(db.pool(), o, u, "billing-admin")
        .await
        .expect("a custom role is fine");
    db.teardown().await;
}

#[tokio::test]
async fn deleting_a_user_cascades_to_what_is_theirs_and_clears_audit_references() {
    let db = TestDb::create().await;
    let pool = db.pool();
    let (gone, stays) = (
        user(pool, "gone@example.com").await,
        user(pool, "stays@example.com").await,
    );
    let o = org(pool, "acme").await;
    add_member(pool, o, gone, "member").await.expect("member");
    add_member(pool, o, stays, "owner").await.expect("owner");
    sqlx::query(
        "INSERT INTO password_credentials (user_id, hash, updated_at) VALUES ($1, 'h', now())",
    )
    .bind(gone)
    .execute(pool)
    .await
    .expect("password");
    sqlx::query(
        "INSERT INTO external_accounts (id, user_id, provider, issuer, subject, created_at) \
         VALUES ($1, $2, 'google', 'https://accounts.google.com', 'sub-1', now())",
    )
    .bind(Uuid::now_v7())
    .bind(gone)
    .execute(pool)
    .await
    .expect("external account");
    insert_session(pool, gone, &[1; 32]).await.expect("session");
    insert_session(pool, stays, &[2; 32])
        .await
        .expect("other's session");
    insert_one_time_token(pool, gone, "password_reset", &[3; 32])
        .await
        .expect("token");
    insert_invitation(pool, o, gone, &[4; 32])
        .await
        .expect("invitation by the user");
    sqlx::query(
        "INSERT INTO api_tokens (id, name, user_id, org_id, scopes, created_by, created_at, \
         expires_at) VALUES ($1, 'ci', $2, $3, '{read:projects}', $2, now(), now() + interval '1 day')",
    )
    .bind(Uuid::now_v7())
    .bind(gone)
    .bind(o)
    .execute(pool)
    .await
    .expect("api token");
    let event = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO audit_events (id, at, kind, actor_id, user_id, org_id, data) \
         VALUES ($1, now(), 'member.added', $2, $3, $4, '{\"k\": 1}')",
    )
    .bind(event)
    .bind(stays)
    .bind(gone)
    .bind(o)
    .execute(pool)
    .await
    .expect("audit event");

    let deleted = sqlx::query("DELETE FROM users WHERE id = $1")
        .bind(gone)
        .execute(pool)
        .await;
    assert_eq!(deleted.expect("delete").rows_affected(), 1);

    for (table, sql) in [
        (
            "password_credentials",
            "SELECT count(*) FROM password_credentials WHERE user_id = $1",
        ),
        (
            "external_accounts",
            "SELECT count(*) FROM external_accounts WHERE user_id = $1",
        ),
        (
            "sessions",
            "SELECT count(*) FROM sessions WHERE user_id = $1",
        ),
        (
            "memberships",
            "SELECT count(*) FROM memberships WHERE user_id = $1",
        ),
        (
            "one_time_tokens",
            "SELECT count(*) FROM one_time_tokens WHERE user_id = $1",
        ),
        (
            "api_tokens",
            "SELECT count(*) FROM api_tokens WHERE user_id = $1",
        ),
        (
            "invitations",
            "SELECT count(*) FROM invitations WHERE invited_by = $1",
        ),
    ] {
        assert_eq!(
            count(pool, sql, gone).await,
            0,
            "{table} kept a row of the deleted user"
        );
    }
    assert_eq!(
        count(
            pool,
            "SELECT count(*) FROM sessions WHERE user_id = $1",
            stays
        )
        .await,
        1
    );
    assert_eq!(
        count(
            pool,
            "SELECT count(*) FROM memberships WHERE user_id = $1",
            stays
        )
        .await,
        1
    );
    let (actor, subject, org_ref): (Option<Uuid>, Option<Uuid>, Option<Uuid>) =
        sqlx::query_as("SELECT actor_id, user_id, org_id FROM audit_events WHERE id = $1")
            .bind(event)
            .fetch_one(pool)
            .await
            .expect("the audit event stays");
    assert_eq!((actor, subject, org_ref), (Some(stays), None, Some(o)));
    db.teardown().await;
}

#[tokio::test]
async fn deleting_an_organization_cascades_and_clears_active_orgs() {
    let db = TestDb::create().await;
    let pool = db.pool();
    let u = user(pool, "o@example.com").await;
    let (o, other) = (org(pool, "acme").await, org(pool, "other").await);
    add_member(pool, o, u, "owner").await.expect("member");
    add_member(pool, other, u, "owner")
        .await
        .expect("member elsewhere");
    insert_invitation(pool, o, u, &[4; 32])
        .await
        .expect("invitation");
    insert_session(pool, u, &[5; 32]).await.expect("session");
    sqlx::query("UPDATE sessions SET active_org_id = $1")
        .bind(o)
        .execute(pool)
        .await
        .expect("active");
    sqlx::query(
        "INSERT INTO api_tokens (id, name, user_id, org_id, created_by, created_at, expires_at) \
         VALUES ($1, 'ci', $2, $3, $2, now(), now() + interval '1 day')",
    )
    .bind(Uuid::now_v7())
    .bind(u)
    .bind(o)
    .execute(pool)
    .await
    .expect("api token");
    sqlx::query(
        "INSERT INTO audit_events (id, at, kind, org_id) VALUES ($1, now(), 'org.created', $2)",
    )
    .bind(Uuid::now_v7())
    .bind(o)
    .execute(pool)
    .await
    .expect("audit event");

    sqlx::query("DELETE FROM organizations WHERE id = $1")
        .bind(o)
        .execute(pool)
        .await
        .expect("delete");

    for sql in [
        "SELECT count(*) FROM memberships WHERE org_id = $1",
        "SELECT count(*) FROM invitations WHERE org_id = $1",
        "SELECT count(*) FROM api_tokens WHERE org_id = $1",
        "SELECT count(*) FROM sessions WHERE active_org_id = $1",
        "SELECT count(*) FROM audit_events WHERE org_id = $1",
    ] {
        assert_eq!(count(pool, sql, o).await, 0, "{sql}");
    }
    assert_eq!(
        count(pool, "SELECT count(*) FROM sessions WHERE user_id = $1", u).await,
        1
    );
    assert_eq!(
        count(
            pool,
            "SELECT count(*) FROM memberships WHERE org_id = $1",
            other
        )
        .await,
        1
    );
    assert_eq!(
        count(pool, "SELECT count(*) FROM users WHERE id = $1", u).await,
        1
    );
    db.teardown().await;
}

#[tokio::test]
async fn migrations_are_idempotent() {
    let db = TestDb::create().await;
    let store = db.store();
    store.migrate().await.expect("a second run is a no-op");
    store.migrate().await.expect("and a third");
    let applied: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM auth.migrations ORDER BY version")
            .fetch_all(db.pool())
            .await
            .expect("versions");
    assert_eq!(applied, vec![1, 2, 3, 4, 5, 6, 7, 8]);
    let status = store.schema_status().await.expect("status");
    assert!(status.is_current(), "{status:?}");
    assert_eq!(status.applied, applied);
    db.teardown().await;
}

#[tokio::test]
async fn connect_migrates_an_empty_database() {
    let db = TestDb::create_empty().await;
    let url = db.url();
    let store = PostgresStore::connect(&url)
        .await
        .expect("connect and migrate");
    let tables: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'auth' AND table_name = ANY($1)",
    )
    .bind(vec![
        "users",
        "password_credentials",
        "external_accounts",
        "organizations",
        "memberships",
        "sessions",
        "invitations",
        "one_time_tokens",
        "api_tokens",
        "audit_events",
    ])
    .fetch_one(store.pool())
    .await
    .expect("count tables");
    assert_eq!(tables, 10);
    PostgresStore::connect(&url)
        .await
        .expect("connecting again migrates nothing and succeeds");
    store.pool().close().await;
    db.teardown().await;
}

/// Two owners demote each other at the same moment, through the store API, many times over:
/// every time exactly one demotion wins and the organization keeps exactly one owner.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn owners_demoting_each_other_concurrently_leave_one_owner() {
    let db = TestDb::create().await;
    let store = Arc::new(db.store());
    for round in 0..20 {
        let a = user(db.pool(), &format!("a{round}@example.com")).await;
        let b = user(db.pool(), &format!("b{round}@example.com")).await;
        let o = org(db.pool(), &format!("org-{round}")).await;
        add_member(db.pool(), o, a, "owner").await.expect("owner a");
        add_member(db.pool(), o, b, "owner").await.expect("owner b");

        let barrier = Arc::new(Barrier::new(2));
        let demote = |who: Uuid| {
            let (store, barrier) = (Arc::clone(&store), Arc::clone(&barrier));
            tokio::spawn(async move {
                barrier.wait().await;
                store
                    .change_role(OrgId::from_uuid(o), UserId::from_uuid(who), &Role::ADMIN)
                    .await
            })
        };
        let (ra, rb) = (demote(a), demote(b));
        let results = [ra.await.expect("task a"), rb.await.expect("task b")];
        let won = results.iter().filter(|r| r.is_ok()).count();
        let refused = results
            .iter()
            .filter(|r| matches!(r, Err(StoreError::LastOwner)))
            .count();
        assert_eq!((won, refused), (1, 1), "round {round}: {results:?}");
        let owners = count(
            db.pool(),
            "SELECT count(*) FROM memberships WHERE org_id = $1 AND role = 'owner'",
            o,
        )
        .await;
        assert_eq!(owners, 1, "round {round}");
    }
    drop(store);
    db.teardown().await;
}

/// The same race without the store's organization lock, as a control: two raw transactions
/// that each count owners and then demote let the organization lose both owners. This is why
/// the store locks the organization row first.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_the_organization_lock_both_raw_demotions_would_win() {
    let db = TestDb::create().await;
    let (a, b) = (
        user(db.pool(), "a@example.com").await,
        user(db.pool(), "b@example.com").await,
    );
    let o = org(db.pool(), "acme").await;
    add_member(db.pool(), o, a, "owner").await.expect("owner a");
    add_member(db.pool(), o, b, "owner").await.expect("owner b");

    let mut ta = db.pool().begin().await.expect("begin a");
    let mut tb = db.pool().begin().await.expect("begin b");
    let owners_sql = "SELECT count(*) FROM memberships WHERE org_id = $1 AND role = 'owner'";
    let seen_a: i64 = sqlx::query_scalar(owners_sql)
        .bind(o)
        .fetch_one(&mut *ta)
        .await
        .expect("count a");
    let seen_b: i64 = sqlx::query_scalar(owners_sql)
        .bind(o)
        .fetch_one(&mut *tb)
        .await
        .expect("count b");
    assert_eq!((seen_a, seen_b), (2, 2), "each sees another owner");
    let demote = "UPDATE memberships SET role = 'admin' WHERE org_id = $1 AND user_id = $2";
    sqlx::query(demote)
        .bind(o)
        .bind(a)
        .execute(&mut *ta)
        .await
        .expect("demote a");
    sqlx::query(demote)
        .bind(o)
        .bind(b)
        .execute(&mut *tb)
        .await
        .expect("demote b");
    ta.commit().await.expect("commit a");
    tb.commit().await.expect("commit b");
    assert_eq!(
        count(db.pool(), owners_sql, o).await,
        0,
        "the unlocked check-then-write lost"
    );
    db.teardown().await;
}

/// A promotion committed while `delete_user` runs (here by a raw transaction that skips the
/// organization lock, the worst case) is still caught: the user's membership rows are read
/// again as they are deleted, and an organization left without an owner refuses the delete.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn delete_user_sees_an_ownership_gained_while_it_runs() {
    use keystead::UserStore as _;

    let db = TestDb::create().await;
    let store = db.store();
    let (leaver, other) = (
        user(db.pool(), "leaver@example.com").await,
        user(db.pool(), "other@example.com").await,
    );
    let o = org(db.pool(), "acme").await;
    add_member(db.pool(), o, other, "owner")
        .await
        .expect("owner");
    add_member(db.pool(), o, leaver, "member")
        .await
        .expect("member");

    // Hand the organization to the leaver, uncommitted.
    let mut handover = db.pool().begin().await.expect("begin");
    sqlx::query("UPDATE memberships SET role = 'owner' WHERE org_id = $1 AND user_id = $2")
        .bind(o)
        .bind(leaver)
        .execute(&mut *handover)
        .await
        .expect("promote");
    sqlx::query("UPDATE memberships SET role = 'member' WHERE org_id = $1 AND user_id = $2")
        .bind(o)
        .bind(other)
        .execute(&mut *handover)
        .await
        .expect("demote");

    let deleting = tokio::spawn(async move { store.delete_user(UserId::from_uuid(leaver)).await });
    // Wait until delete_user is blocked on the membership row the hand-over holds.
    common::wait_for_a_lock_wait(db.pool(), &deleting).await;
    assert!(
        !deleting.is_finished(),
        "delete_user must wait for the hand-over's row lock"
    );
    handover.commit().await.expect("commit the hand-over");

    let result = deleting.await.expect("task");
    assert!(matches!(result, Err(StoreError::LastOwner)), "{result:?}");
    assert_eq!(
        count(
            db.pool(),
            "SELECT count(*) FROM users WHERE id = $1",
            leaver
        )
        .await,
        1
    );
    assert_eq!(
        count(
            db.pool(),
            "SELECT count(*) FROM memberships WHERE org_id = $1 AND role = 'owner'",
            o
        )
        .await,
        1
    );
    db.teardown().await;
}

#[tokio::test]
async fn times_keep_microseconds() {
    let db = TestDb::create().await;
    let at = OffsetDateTime::from_unix_timestamp_nanos(1_767_225_600_123_456_000).expect("a time");
    let back: OffsetDateTime = sqlx::query_scalar("SELECT $1::timestamptz")
        .bind(at)
        .fetch_one(db.pool())
        .await
        .expect("round trip");
    assert_eq!(back, at);
    db.teardown().await;
}
