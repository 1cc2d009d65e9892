//! Where the store's tables live: its own schema (`auth` unless chosen), its own migrations
//! table, next to an app's own tables and sqlx migrations, and the move from the old layout
//! (tables in `public`, rows in `_sqlx_migrations`).

mod common;

use std::path::Path;
use std::time::Duration;

use common::TestDb;
use keystead::{
    ChangeLogStore as _, Conflict, Email, NewUser, OrgId, Organization, OrganizationStore as _,
    Role, Session, SessionId, SessionStore as _, StoreError, TokenHash, User, UserId,
    UserStore as _,
};
use keystead_postgres::keystead_core::feed::{Change, ChangeFeed as _, FeedEvent};
use keystead_postgres::{ChangeFeedOptions, PostgresChangeFeed, PostgresStore, Schema};
use sqlx::PgPool;
use sqlx::migrate::Migrator;
use time::OffsetDateTime;
use uuid::Uuid;

/// The tables of the store, its migrations table included.
const OUR_TABLES: [&str; 21] = [
    "api_tokens",
    "audit_events",
    "challenges",
    "change_log",
    "change_version",
    "external_accounts",
    "invitations",
    "memberships",
    "migrations",
    "oauth_flows",
    "one_time_tokens",
    "organizations",
    "passkeys",
    "password_credentials",
    "rate_limits",
    "recovery_codes",
    "session_handoffs",
    "sessions",
    "signing_keys",
    "totp_factors",
    "users",
];

fn now() -> OffsetDateTime {
    keystead::clock::truncate_to_micros(OffsetDateTime::now_utc())
}

fn new_user(email: &str) -> NewUser {
    NewUser {
        user: User {
            id: UserId::new(),
            email: Email::parse(email).expect("a valid address"),
            name: None,
            email_verified_at: None,
            created_at: now(),
            external_id: None,
            disabled_at: None,
        },
        password_hash: Some("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into()),
    }
}

fn session_for(user_id: UserId, token: &str) -> Session {
    let at = now();
    Session {
        id: SessionId::new(),
        token_hash: TokenHash::of(token),
        user_id,
        created_at: at,
        last_seen_at: at,
        expires_at: at + time::Duration::days(1),
        absolute_expires_at: at + time::Duration::days(30),
        active_org_id: None,
        user_agent: None,
        ip: None,
        authenticated_at: at,
    }
}

async fn tables_in(pool: &PgPool, schema: &str) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables WHERE table_schema = $1 \
         ORDER BY table_name",
    )
    .bind(schema)
    .fetch_all(pool)
    .await
    .expect("tables")
}

/// Every index, constraint and column of a schema, with the schema's name taken out: two
/// schemas made the same way describe the same.
async fn layout_of(pool: &PgPool, schema: &str) -> Vec<String> {
    let mut layout: Vec<String> = sqlx::query_scalar(
        "SELECT replace(indexdef, $1 || '.', 'S.') FROM pg_indexes WHERE schemaname = $1 \
         UNION ALL \
         SELECT c.conrelid::regclass::text || ' ' || c.conname || ' ' || pg_get_constraintdef(c.oid) \
         FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace WHERE n.nspname = $1 \
         UNION ALL \
         SELECT table_name || '.' || column_name || ' ' || data_type || ' ' || is_nullable \
                || ' ' || coalesce(column_default, '') \
         FROM information_schema.columns WHERE table_schema = $1",
    )
    .bind(schema)
    .fetch_all(pool)
    .await
    .expect("layout");
    for line in &mut layout {
        // regclass text is schema-qualified when the schema is not on the search_path.
        *line = line.replace(&format!("{schema}."), "S.");
    }
    layout.sort();
    layout
}

/// A user signs up, signs in (a session by its token hash), makes an organization, and its
/// last owner cannot leave it: the store works.
async fn sign_up_and_in(store: &PostgresStore, email: &str) -> UserId {
    let user = store.create_user(&new_user(email)).await.expect("sign up");
    let found = store
        .user_by_email(&Email::parse(email).unwrap())
        .await
        .expect("lookup")
        .expect("the user");
    assert_eq!(found.id, user.id);
    let token = format!("token-of-{email}");
    store
        .create_session(&session_for(user.id, &token))
        .await
        .expect("session");
    let session = store
        .session_by_token_hash(&TokenHash::of(&token))
        .await
        .expect("lookup")
        .expect("the session");
    assert_eq!(session.user_id, user.id);
    let org = Organization {
        id: OrgId::new(),
        name: "Acme".to_owned(),
        slug: format!("acme-{}", Uuid::now_v7().simple()),
        created_at: now(),
        external_id: None,
        mfa_required: false,
    };
    store.create_organization(&org, user.id).await.expect("org");
    assert!(matches!(
        store
            .change_role(org.id, user.id, &Role::new("member").unwrap())
            .await,
        Err(StoreError::LastOwner)
    ));
    user.id
}

/// An app's migrations directory with one migration of version 1 (the version of our first
/// migration too): its own `users` table, other columns than ours.
fn app_migrations() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        dir.path().join("0001_app_users.sql"),
        "CREATE TABLE users (id bigserial PRIMARY KEY, login text NOT NULL UNIQUE, karma int);\n",
    )
    .expect("write");
    dir
}

async fn app_migrator(dir: &Path) -> Migrator {
    Migrator::new(dir).await.expect("the app's migrator")
}

#[tokio::test]
async fn the_tables_are_in_schema_auth_and_nothing_of_ours_in_public() {
    let db = TestDb::create_empty().await;
    let store = PostgresStore::connect(&db.url()).await.expect("connect");
    assert_eq!(store.schema().as_str(), "auth");
    assert_eq!(tables_in(store.pool(), "auth").await, OUR_TABLES);
    assert_eq!(
        tables_in(store.pool(), "public").await,
        Vec::<String>::new()
    );
    let in_public: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = 'public'",
    )
    .fetch_one(store.pool())
    .await
    .expect("count");
    assert_eq!(
        in_public, 0,
        "no table, index or sequence of ours in public"
    );
    let versions: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM auth.migrations ORDER BY version")
            .fetch_all(store.pool())
            .await
            .expect("versions");
    assert_eq!(versions, vec![1, 2, 3, 4, 5, 6, 7, 8]);
    sign_up_and_in(&store, "ada@example.com").await;
    assert!(store.schema_status().await.expect("status").is_current());
    store.pool().close().await;
    db.teardown().await;
}

#[tokio::test]
async fn a_custom_schema_holds_everything_and_the_default_schema_is_not_made() {
    let db = TestDb::create_empty().await;
    let schema = Schema::new("tenant_a").expect("a valid name");
    let store = PostgresStore::connect_with_schema(&db.url(), schema)
        .await
        .expect("connect");
    assert_eq!(tables_in(store.pool(), "tenant_a").await, OUR_TABLES);
    assert!(tables_in(store.pool(), "auth").await.is_empty());
    let user = sign_up_and_in(&store, "ada@example.com").await;
    let in_schema: i64 = sqlx::query_scalar("SELECT count(*) FROM tenant_a.users WHERE id = $1")
        .bind(user.into_uuid())
        .fetch_one(store.pool())
        .await
        .expect("count");
    assert_eq!(in_schema, 1);
    store.pool().close().await;
    db.teardown().await;
}

#[tokio::test]
async fn two_stores_in_two_schemas_of_one_database_are_independent() {
    let db = TestDb::create_empty().await;
    let pool = db.app_pool().await;
    let a = PostgresStore::from_pool(pool.clone());
    let b = PostgresStore::from_pool(pool.clone()).with_schema(Schema::new("tenant_b").unwrap());
    a.migrate().await.expect("migrate a");
    b.migrate().await.expect("migrate b");

    // A user of one is not a user of the other; the same address signs up in both.
    let in_a = sign_up_and_in(&a, "same@example.com").await;
    let email = Email::parse("same@example.com").unwrap();
    assert!(b.user_by_id(in_a).await.expect("lookup").is_none());
    assert!(b.user_by_email(&email).await.expect("lookup").is_none());
    let in_b = sign_up_and_in(&b, "same@example.com").await;
    assert_ne!(in_a, in_b);
    assert!(matches!(
        a.create_user(&new_user("same@example.com")).await,
        Err(StoreError::Conflict(Conflict::Email))
    ));

    // Their change logs are their own.
    let before = b.change_version().await.expect("version");
    a.record_change("{\"KeysRotated\":null}", now())
        .await
        .expect("record");
    assert_eq!(b.change_version().await.expect("version"), before);

    // A change published by one is heard by its own schema's feeds, not by the other's.
    let feed_a = PostgresChangeFeed::start(pool.clone())
        .await
        .expect("feed a");
    let also_a = PostgresChangeFeed::start(pool.clone())
        .await
        .expect("feed a2");
    let feed_b = PostgresChangeFeed::start_with(
        pool.clone(),
        ChangeFeedOptions::default().with_schema(b.schema().clone()),
    )
    .await
    .expect("feed b");
    let mut heard_by_a = also_a.subscribe();
    let mut heard_by_b = feed_b.subscribe();
    feed_a.publish(&Change::KeysRotated).await.expect("publish");
    let event = tokio::time::timeout(Duration::from_secs(5), heard_by_a.recv())
        .await
        .expect("schema a's other feed hears the change")
        .expect("an event");
    assert_eq!(event, FeedEvent::Change(Change::KeysRotated));
    let silence = tokio::time::timeout(Duration::from_secs(1), heard_by_b.recv()).await;
    assert!(silence.is_err(), "schema b's feed heard {silence:?}");
    // And the other way round.
    feed_b.publish(&Change::KeysRotated).await.expect("publish");
    let mut heard_by_b = feed_b.subscribe();
    feed_b.publish(&Change::KeysRotated).await.expect("publish");
    tokio::time::timeout(Duration::from_secs(5), heard_by_b.recv())
        .await
        .expect("b hears itself")
        .expect("an event");
    let silence = tokio::time::timeout(Duration::from_secs(1), heard_by_a.recv()).await;
    assert!(silence.is_err(), "schema a's feed heard {silence:?}");

    drop((feed_a, also_a, feed_b));
    pool.close().await;
    db.teardown().await;
}

/// An app with its own `public.users` (other columns) and its own sqlx migrations (version 1,
/// like our first) next to the store, whichever migrates first.
#[tokio::test]
async fn the_apps_tables_and_sqlx_migrations_coexist_with_ours_in_either_order() {
    for ours_first in [false, true] {
        let db = TestDb::create_empty().await;
        let pool = db.app_pool().await;
        let dir = app_migrations();
        let app = app_migrator(dir.path()).await;
        let store = PostgresStore::from_pool(pool.clone());
        if ours_first {
            store.migrate().await.expect("ours");
            app.run(&pool).await.expect("the app's");
        } else {
            app.run(&pool).await.expect("the app's");
            store.migrate().await.expect("ours");
        }
        // Both again, in the other order: nothing to do for either.
        app.run(&pool).await.expect("the app's again");
        store.migrate().await.expect("ours again");
        app.run(&pool).await.expect("the app's once more");

        let app_rows: Vec<i64> = sqlx::query_scalar("SELECT version FROM public._sqlx_migrations")
            .fetch_all(&pool)
            .await
            .expect("the app's rows");
        assert_eq!(
            app_rows,
            vec![1],
            "only the app's migration is in _sqlx_migrations"
        );
        assert_eq!(
            tables_in(&pool, "public").await,
            ["_sqlx_migrations", "users"]
        );
        assert_eq!(tables_in(&pool, "auth").await, OUR_TABLES);

        // The app's statements (unqualified, its search_path) reach its own table...
        sqlx::query("INSERT INTO users (login, karma) VALUES ('ada', 3)")
            .execute(&pool)
            .await
            .expect("the app's insert");
        // ...and the store's reach ours, on the same pool.
        let user = sign_up_and_in(&store, "ada@example.com").await;
        let logins: Vec<String> = sqlx::query_scalar("SELECT login FROM public.users")
            .fetch_all(&pool)
            .await
            .expect("the app's users");
        assert_eq!(logins, ["ada"]);
        let ours: i64 = sqlx::query_scalar("SELECT count(*) FROM auth.users WHERE id = $1")
            .bind(user.into_uuid())
            .fetch_one(&pool)
            .await
            .expect("ours");
        assert_eq!(ours, 1);
        // The app's connections keep their search_path.
        let path: String = sqlx::query_scalar("SHOW search_path")
            .fetch_one(&pool)
            .await
            .expect("search_path");
        assert_eq!(path, "\"$user\", public");
        pool.close().await;
        db.teardown().await;
    }
}

/// Fills a database of the old layout (the migration files as they were, run by sqlx into
/// `public`) with a user, a password, a session, an organization and a change.
async fn fill_old_layout(pool: &PgPool) -> (Uuid, Uuid) {
    let user = Uuid::now_v7();
    let org = Uuid::now_v7();
    let at = now();
    for (sql, id) in [
        (
            "INSERT INTO users (id, email, created_at) VALUES ($1, 'old@example.com', $2)",
            user,
        ),
        (
            "INSERT INTO password_credentials (user_id, hash, updated_at) VALUES ($1, 'old-hash', $2)",
            user,
        ),
        (
            "INSERT INTO organizations (id, name, slug, created_at) VALUES ($1, 'Old', 'old', $2)",
            org,
        ),
    ] {
        sqlx::query(sql)
            .bind(id)
            .bind(at)
            .execute(pool)
            .await
            .expect(sql);
    }
    sqlx::query(
        "INSERT INTO memberships (org_id, user_id, role, joined_at) VALUES ($1, $2, 'owner', $3)",
    )
    .bind(org)
    .bind(user)
    .bind(at)
    .execute(pool)
    .await
    .expect("membership");
    sqlx::query(
        "INSERT INTO sessions (id, token_hash, user_id, created_at, last_seen_at, expires_at, \
         absolute_expires_at) VALUES ($1, $2, $3, $4, $4, $5, $5)",
    )
    .bind(Uuid::now_v7())
    .bind(&TokenHash::of("old-session").as_bytes()[..])
    .bind(user)
    .bind(at)
    .bind(at + time::Duration::days(1))
    .execute(pool)
    .await
    .expect("session");
    (user, org)
}

#[tokio::test]
async fn a_database_of_the_old_layout_is_moved_into_the_schema_without_losing_a_row() {
    let db = TestDb::create_empty().await;
    let pool = db.app_pool().await;
    let old = app_migrator(Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/legacy-migrations"
    )))
    .await;
    old.run(&pool).await.expect("the old migrations");
    // The app's own migration shares the old `_sqlx_migrations` (it had to ignore ours).
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        dir.path().join("20250101000000_app_notes.sql"),
        "CREATE TABLE notes (id bigserial PRIMARY KEY, body text NOT NULL);\n",
    )
    .expect("write");
    let mut app = app_migrator(dir.path()).await;
    app.set_ignore_missing(true);
    app.run(&pool).await.expect("the app's migration");
    let (user, org) = fill_old_layout(&pool).await;

    let store = PostgresStore::from_pool(pool.clone());
    let status = store.schema_status().await.expect("status");
    assert_eq!(status.legacy, vec![1, 2, 3, 4, 5, 6]);
    assert!(!status.is_current());
    store.migrate().await.expect("the move");

    // Nothing of ours is left in public; the app's table and row are.
    assert_eq!(
        tables_in(&pool, "public").await,
        ["_sqlx_migrations", "notes"]
    );
    let app_rows: Vec<i64> = sqlx::query_scalar("SELECT version FROM public._sqlx_migrations")
        .fetch_all(&pool)
        .await
        .expect("rows");
    assert_eq!(app_rows, vec![20_250_101_000_000]);
    assert_eq!(tables_in(&pool, "auth").await, OUR_TABLES);
    let versions: Vec<i64> = sqlx::query_scalar("SELECT version FROM auth.migrations ORDER BY 1")
        .fetch_all(&pool)
        .await
        .expect("versions");
    assert_eq!(versions, vec![1, 2, 3, 4, 5, 6, 7, 8]);
    assert!(store.schema_status().await.expect("status").is_current());

    // Indexes, constraints (foreign keys included) and columns are those of a fresh schema.
    let fresh = PostgresStore::from_pool(pool.clone()).with_schema(Schema::new("fresh").unwrap());
    fresh.migrate().await.expect("a fresh schema");
    assert_eq!(
        layout_of(&pool, "auth").await,
        layout_of(&pool, "fresh").await
    );

    // The rows are there, and the store works on them.
    let found = store
        .user_by_email(&Email::parse("old@example.com").unwrap())
        .await
        .expect("lookup")
        .expect("the old user");
    assert_eq!(found.id.into_uuid(), user);
    let password = store
        .password_credential(found.id)
        .await
        .expect("lookup")
        .expect("the old password");
    assert_eq!(password.hash.expose(), "old-hash");
    let session = store
        .session_by_token_hash(&TokenHash::of("old-session"))
        .await
        .expect("lookup")
        .expect("the old session");
    assert_eq!(session.user_id, found.id);
    // Migration 0008: a session made before it counts as authenticated when it began.
    assert_eq!(session.authenticated_at, session.created_at);
    let orgs = store.organizations_for_user(found.id).await.expect("orgs");
    assert_eq!(orgs.len(), 1);
    assert_eq!(orgs[0].organization.id.into_uuid(), org);
    assert!(
        !orgs[0].organization.mfa_required,
        "no MFA policy until one is set"
    );
    assert!(matches!(
        store
            .change_role(
                OrgId::from_uuid(org),
                found.id,
                &Role::new("member").unwrap()
            )
            .await,
        Err(StoreError::LastOwner)
    ));
    assert!(matches!(
        store.create_user(&new_user("OLD@example.com")).await,
        Err(StoreError::Conflict(Conflict::Email))
    ));
    // Deleting the user still cascades (the foreign keys came along).
    sign_up_and_in(&store, "new@example.com").await;

    // Running again is a no-op, and so is the app's migrator.
    store.migrate().await.expect("again");
    app.run(&pool).await.expect("the app's again");
    pool.close().await;
    db.teardown().await;
}

#[tokio::test]
async fn an_old_layout_of_the_first_three_migrations_is_moved_then_completed() {
    let db = TestDb::create_empty().await;
    let pool = db.app_pool().await;
    let old = app_migrator(Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/legacy-migrations"
    )))
    .await;
    old.run_to(3, &pool).await.expect("the first three");
    let store = PostgresStore::from_pool(pool.clone());
    let status = store.schema_status().await.expect("status");
    assert_eq!(status.legacy, vec![1, 2, 3]);
    assert_eq!(status.pending, vec![4, 5, 6, 7, 8]);
    store.migrate().await.expect("move and complete");
    assert_eq!(tables_in(&pool, "public").await, Vec::<String>::new());
    assert_eq!(tables_in(&pool, "auth").await, OUR_TABLES);
    sign_up_and_in(&store, "ada@example.com").await;
    pool.close().await;
    db.teardown().await;
}

#[tokio::test]
async fn schema_names_with_sql_metacharacters_are_refused() {
    let db = TestDb::create_empty().await;
    let pool = db.app_pool().await;
    sqlx::query("CREATE TABLE public.precious (id int)")
        .execute(&pool)
        .await
        .expect("the app's table");
    for attack in [
        "auth; DROP TABLE public.precious; --",
        "auth\".precious; DROP TABLE public.precious; --",
        "public.precious",
        "Auth",
        "auth schema",
        "pg_catalog",
        "",
    ] {
        let err = Schema::new(attack).expect_err(attack);
        assert!(
            err.to_string().contains("invalid schema name"),
            "{attack:?}: {err}"
        );
        let err = attack.parse::<Schema>().expect_err(attack);
        assert!(err.to_string().contains(&format!("{attack:?}")), "{err}");
    }
    let still_there: i64 = sqlx::query_scalar("SELECT count(*) FROM public.precious")
        .fetch_one(&pool)
        .await
        .expect("the app's table is still there");
    assert_eq!(still_there, 0);
    pool.close().await;
    db.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_migrations_apply_each_version_once() {
    let db = TestDb::create_empty().await;
    let pool = db.app_pool().await;
    let runs: Vec<_> = (0..4)
        .map(|_| {
            let store = PostgresStore::from_pool(pool.clone());
            tokio::spawn(async move { store.migrate().await })
        })
        .collect();
    for run in runs {
        run.await.expect("task").expect("every run succeeds");
    }
    let versions: Vec<i64> = sqlx::query_scalar("SELECT version FROM auth.migrations ORDER BY 1")
        .fetch_all(&pool)
        .await
        .expect("versions");
    assert_eq!(versions, vec![1, 2, 3, 4, 5, 6, 7, 8]);
    pool.close().await;
    db.teardown().await;
}

#[tokio::test]
async fn a_changed_or_unknown_migration_stops_the_run() {
    let db = TestDb::create().await;
    let store = db.store();
    let original: Vec<u8> =
        sqlx::query_scalar("SELECT checksum FROM auth.migrations WHERE version = 2")
            .fetch_one(db.pool())
            .await
            .expect("checksum");
    sqlx::query("UPDATE auth.migrations SET checksum = '\\x00' WHERE version = 2")
        .execute(db.pool())
        .await
        .expect("tamper");
    let err = store.migrate().await.expect_err("a changed migration");
    assert!(err.to_string().contains("was changed"), "{err}");
    let status = store.schema_status().await.expect("status");
    assert_eq!(status.changed, vec![2]);
    assert!(!status.is_current());

    sqlx::query("UPDATE auth.migrations SET checksum = $1 WHERE version = 2")
        .bind(original)
        .execute(db.pool())
        .await
        .expect("restore");
    store.migrate().await.expect("current again");
    sqlx::query(
        "INSERT INTO auth.migrations (version, description, checksum, execution_time_ms) \
         VALUES (99, 'from the future', '\\x00', 0)",
    )
    .execute(db.pool())
    .await
    .expect("a newer version's row");
    let status = store.schema_status().await.expect("status");
    assert_eq!(status.unknown, vec![99]);
    let err = store.migrate().await.expect_err("an unknown migration");
    assert!(err.to_string().contains("does not know"), "{err}");
    db.teardown().await;
}
