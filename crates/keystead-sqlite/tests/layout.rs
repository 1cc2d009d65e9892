//! Where the store's tables live: names with its prefix (`auth_` unless chosen), its own
//! migrations table, next to an app's own tables and sqlx migrations in the same file, and
//! the move from the old layout (unprefixed tables, rows in `_sqlx_migrations`).

use std::path::{Path, PathBuf};
use std::str::FromStr as _;

use keystead::{
    ChangeLogStore as _, Conflict, Email, NewUser, OrgId, Organization, OrganizationStore as _,
    Role, Session, SessionId, SessionStore as _, StoreError, TokenHash, User, UserId,
    UserStore as _,
};
use keystead_sqlite::{SqliteStore, TablePrefix};
use sqlx::SqlitePool;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use time::OffsetDateTime;
use uuid::Uuid;

/// The tables of the store, its migrations table included, without the prefix.
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

fn prefixed(prefix: &str) -> Vec<String> {
    let mut names: Vec<String> = OUR_TABLES.iter().map(|t| format!("{prefix}{t}")).collect();
    names.sort();
    names
}

fn legacy_fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/legacy-migrations")
}

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

/// An app's pool on the file: sqlx's defaults, nothing of ours.
async fn app_pool(path: &Path) -> SqlitePool {
    SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(
            SqliteConnectOptions::new()
                .filename(path)
                .create_if_missing(true),
        )
        .await
        .expect("the app's pool")
}

async fn names(pool: &SqlitePool, kind: &str) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = ?1 AND name NOT LIKE 'sqlite_%' \
         ORDER BY name",
    )
    .bind(kind)
    .fetch_all(pool)
    .await
    .expect("names")
}

/// `sql` with `prefix` taken off the names it starts (not off `oauth_flows` for `auth_`).
fn without_prefix(sql: &str, prefix: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut rest = sql;
    while let Some(at) = rest.find(prefix) {
        let starts_a_name = !rest[..at]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
        out.push_str(&rest[..at]);
        out.push_str(if starts_a_name { "P_" } else { prefix });
        rest = &rest[at + prefix.len()..];
    }
    out.push_str(rest);
    out
}

/// Every table, index and trigger of `prefix`, as SQLite keeps their statements (quotes and
/// the prefix taken out): two layouts made the same way describe the same.
async fn layout_of(pool: &SqlitePool, prefix: &str) -> Vec<String> {
    let statements: Vec<String> = sqlx::query_scalar(
        "SELECT sql FROM sqlite_master WHERE name LIKE ?1 || '%' AND sql IS NOT NULL",
    )
    .bind(prefix)
    .fetch_all(pool)
    .await
    .expect("layout");
    let mut layout: Vec<String> = statements
        .into_iter()
        .map(|sql| without_prefix(&sql.replace('"', ""), prefix))
        .collect();
    layout.sort();
    layout
}

/// A user signs up, signs in (a session by its token hash), makes an organization, and its
/// last owner cannot leave it: the store works.
async fn sign_up_and_in(store: &SqliteStore, email: &str) -> UserId {
    let user = store.create_user(&new_user(email)).await.expect("sign up");
    let found = store
        .user_by_email(&Email::parse(email).unwrap())
        .await
        .expect("lookup")
        .expect("the user");
    assert_eq!(found.id, user.id);
    let token = format!("token-of-{email}");
    let at = now();
    store
        .create_session(&Session {
            id: SessionId::new(),
            token_hash: TokenHash::of(&token),
            user_id: user.id,
            created_at: at,
            last_seen_at: at,
            expires_at: at + time::Duration::days(1),
            absolute_expires_at: at + time::Duration::days(30),
            active_org_id: None,
            user_agent: None,
            ip: None,
            authenticated_at: at,
        })
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

#[tokio::test]
async fn every_table_index_and_trigger_has_the_prefix_auth() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    let store = SqliteStore::open(&path).await.expect("open");
    assert_eq!(store.prefix().as_str(), "auth_");
    let pool = store.writer_pool();
    assert_eq!(names(pool, "table").await, prefixed("auth_"));
    for kind in ["index", "trigger"] {
        let found = names(pool, kind).await;
        assert!(!found.is_empty(), "{kind}es");
        assert!(found.iter().all(|n| n.starts_with("auth_")), "{found:?}");
    }
    assert!(store.schema_status().await.expect("status").is_current());
    sign_up_and_in(&store, "ada@example.com").await;
    store.close().await;
}

#[tokio::test]
async fn two_prefixes_in_one_file_are_independent() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("app.db").display());
    let a = SqliteStore::connect(&url).await.expect("a");
    let b = SqliteStore::connect_with_prefix(&url, TablePrefix::new("tenant_").unwrap())
        .await
        .expect("b");
    let in_a = sign_up_and_in(&a, "same@example.com").await;
    assert!(b.user_by_id(in_a).await.expect("lookup").is_none());
    let in_b = sign_up_and_in(&b, "same@example.com").await;
    assert_ne!(in_a, in_b);
    assert!(matches!(
        b.create_user(&new_user("same@example.com")).await,
        Err(StoreError::Conflict(Conflict::Email))
    ));
    let before = b.change_version().await.expect("version");
    a.record_change("{\"KeysRotated\":null}", now())
        .await
        .expect("record");
    assert_eq!(b.change_version().await.expect("version"), before);
    let mut all = prefixed("auth_");
    all.extend(prefixed("tenant_"));
    all.sort();
    assert_eq!(names(a.writer_pool(), "table").await, all);
    a.close().await;
    b.close().await;
}

/// An app with its own `users` table (other columns) and its own sqlx migrations (version 1,
/// like our first) in the same file, whichever migrates first.
#[tokio::test]
async fn the_apps_tables_and_sqlx_migrations_coexist_with_ours_in_either_order() {
    for ours_first in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.db");
        let migrations = tempfile::tempdir().unwrap();
        std::fs::write(
            migrations.path().join("0001_app_users.sql"),
            "CREATE TABLE users (id INTEGER PRIMARY KEY, login TEXT NOT NULL UNIQUE, karma INT);\n",
        )
        .unwrap();
        let app = Migrator::new(migrations.path()).await.expect("the app's");
        let pool = app_pool(&path).await;
        let store = if ours_first {
            let store = SqliteStore::open(&path).await.expect("ours");
            app.run(&pool).await.expect("the app's");
            store
        } else {
            app.run(&pool).await.expect("the app's");
            SqliteStore::open(&path).await.expect("ours")
        };
        app.run(&pool).await.expect("the app's again");
        store.migrate().await.expect("ours again");
        app.run(&pool).await.expect("the app's once more");

        let app_rows: Vec<i64> = sqlx::query_scalar("SELECT version FROM _sqlx_migrations")
            .fetch_all(&pool)
            .await
            .expect("rows");
        assert_eq!(app_rows, vec![1]);
        let mut all = prefixed("auth_");
        all.extend(["_sqlx_migrations".to_owned(), "users".to_owned()]);
        all.sort();
        assert_eq!(names(&pool, "table").await, all);

        sqlx::query("INSERT INTO users (login, karma) VALUES ('ada', 3)")
            .execute(&pool)
            .await
            .expect("the app's insert");
        let user = sign_up_and_in(&store, "ada@example.com").await;
        let logins: Vec<String> = sqlx::query_scalar("SELECT login FROM users")
            .fetch_all(&pool)
            .await
            .expect("the app's users");
        assert_eq!(logins, ["ada"]);
        let ours: i64 = sqlx::query_scalar("SELECT count(*) FROM auth_users WHERE id = ?1")
            .bind(user.to_string())
            .fetch_one(&pool)
            .await
            .expect("ours");
        assert_eq!(ours, 1);
        pool.close().await;
        store.close().await;
    }
}

/// Fills a file of the old layout with a user, a password, a session and an organization.
async fn fill_old_layout(pool: &SqlitePool) -> (String, String) {
    let user = Uuid::now_v7().to_string();
    let org = Uuid::now_v7().to_string();
    let at = 1_700_000_000_000_000_i64;
    let later = i64::try_from((now() + time::Duration::days(1)).unix_timestamp_nanos() / 1_000)
        .expect("in range");
    sqlx::query("INSERT INTO users (id, email, created_at) VALUES (?1, 'old@example.com', ?2)")
        .bind(&user)
        .bind(at)
        .execute(pool)
        .await
        .expect("user");
    sqlx::query(
        "INSERT INTO password_credentials (user_id, hash, updated_at) VALUES (?1, 'old-hash', ?2)",
    )
    .bind(&user)
    .bind(at)
    .execute(pool)
    .await
    .expect("password");
    sqlx::query(
        "INSERT INTO organizations (id, name, slug, created_at) VALUES (?1, 'Old', 'old', ?2)",
    )
    .bind(&org)
    .bind(at)
    .execute(pool)
    .await
    .expect("org");
    sqlx::query(
        "INSERT INTO memberships (org_id, user_id, role, joined_at) VALUES (?1, ?2, 'owner', ?3)",
    )
    .bind(&org)
    .bind(&user)
    .bind(at)
    .execute(pool)
    .await
    .expect("membership");
    sqlx::query(
        "INSERT INTO sessions (id, token_hash, user_id, created_at, last_seen_at, expires_at, \
         absolute_expires_at) VALUES (?1, ?2, ?3, ?4, ?4, ?5, ?5)",
    )
    .bind(Uuid::now_v7().to_string())
    .bind(&TokenHash::of("old-session").as_bytes()[..])
    .bind(&user)
    .bind(at)
    .bind(later)
    .execute(pool)
    .await
    .expect("session");
    (user, org)
}

#[tokio::test]
async fn a_file_of_the_old_layout_is_renamed_to_the_prefix_without_losing_a_row() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    let pool = app_pool(&path).await;
    let old = Migrator::new(legacy_fixture().as_path())
        .await
        .expect("fixture");
    old.run(&pool).await.expect("the old migrations");
    let migrations = tempfile::tempdir().unwrap();
    std::fs::write(
        migrations.path().join("20250101000000_app_notes.sql"),
        "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL);\n",
    )
    .unwrap();
    let mut app = Migrator::new(migrations.path()).await.expect("the app's");
    app.set_ignore_missing(true);
    app.run(&pool).await.expect("the app's migration");
    let (user, org) = fill_old_layout(&pool).await;
    pool.close().await;

    let store = SqliteStore::open(&path)
        .await
        .expect("open moves and migrates");
    let pool = app_pool(&path).await;
    let mut expected = prefixed("auth_");
    expected.extend(["_sqlx_migrations".to_owned(), "notes".to_owned()]);
    expected.sort();
    assert_eq!(names(&pool, "table").await, expected);
    for kind in ["index", "trigger"] {
        let found = names(&pool, kind).await;
        assert!(found.iter().all(|n| n.starts_with("auth_")), "{found:?}");
    }
    let app_rows: Vec<i64> = sqlx::query_scalar("SELECT version FROM _sqlx_migrations")
        .fetch_all(&pool)
        .await
        .expect("rows");
    assert_eq!(app_rows, vec![20_250_101_000_000]);
    assert!(store.schema_status().await.expect("status").is_current());

    // The same tables, indexes and triggers as a fresh prefix.
    let fresh = SqliteStore::open(&path)
        .await
        .expect("open")
        .with_prefix(TablePrefix::new("fresh_").unwrap());
    fresh.migrate().await.expect("fresh");
    assert_eq!(
        layout_of(&pool, "auth_").await,
        layout_of(&pool, "fresh_").await
    );
    let fk_errors: i64 = sqlx::query_scalar("SELECT count(*) FROM pragma_foreign_key_check")
        .fetch_one(&pool)
        .await
        .expect("foreign key check");
    assert_eq!(fk_errors, 0);

    // The rows are there, and the store works on them.
    let found = store
        .user_by_email(&Email::parse("old@example.com").unwrap())
        .await
        .expect("lookup")
        .expect("the old user");
    assert_eq!(found.id.to_string(), user);
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
    assert_eq!(orgs[0].organization.id.to_string(), org);
    assert!(
        !orgs[0].organization.mfa_required,
        "no MFA policy until one is set"
    );
    // The owner trigger came along.
    assert!(matches!(
        store
            .change_role(
                orgs[0].organization.id,
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
    sign_up_and_in(&store, "new@example.com").await;
    // Deleting the user cascades to their password and session (foreign keys renamed along).
    store
        .delete_user(found.id)
        .await
        .expect_err("the last owner of Old");
    store
        .delete_organization(orgs[0].organization.id)
        .await
        .expect("delete org");
    store.delete_user(found.id).await.expect("delete user");
    let left: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM auth_sessions WHERE user_id = ?1) \
         + (SELECT count(*) FROM auth_password_credentials WHERE user_id = ?1)",
    )
    .bind(&user)
    .fetch_one(&pool)
    .await
    .expect("count");
    assert_eq!(left, 0);

    store.migrate().await.expect("again");
    app.run(&pool).await.expect("the app's again");
    pool.close().await;
    store.close().await;
    fresh.close().await;
}

#[tokio::test]
async fn an_old_layout_of_the_first_three_migrations_is_renamed_then_completed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    let pool = app_pool(&path).await;
    let old = Migrator::new(legacy_fixture().as_path())
        .await
        .expect("fixture");
    old.run_to(3, &pool).await.expect("the first three");
    pool.close().await;
    let store = SqliteStore::from_pools(app_pool(&path).await, app_pool(&path).await);
    let status = store.schema_status().await.expect("status");
    assert_eq!(status.legacy, vec![1, 2, 3]);
    assert_eq!(status.pending, vec![4, 5, 6, 7, 8]);
    store.migrate().await.expect("rename and complete");
    assert_eq!(names(store.writer_pool(), "table").await, prefixed("auth_"));
    sign_up_and_in(&store, "ada@example.com").await;
    store.close().await;
}

#[tokio::test]
async fn prefixes_with_sql_metacharacters_are_refused() {
    for attack in [
        "auth_; DROP TABLE users; --",
        "auth_\"; DROP TABLE users; --",
        "x'",
        "a.b",
        "Auth_",
        "sqlite_",
        "",
    ] {
        let err = TablePrefix::new(attack).expect_err(attack);
        assert!(err.to_string().contains("invalid table prefix"), "{err}");
        assert!(TablePrefix::from_str(attack).is_err());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_opens_apply_each_version_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    let opens: Vec<_> = (0..4)
        .map(|_| {
            let path = path.clone();
            tokio::spawn(async move { SqliteStore::open(&path).await })
        })
        .collect();
    for open in opens {
        open.await
            .expect("task")
            .expect("every open succeeds")
            .close()
            .await;
    }
    let pool = app_pool(&path).await;
    let versions: Vec<i64> = sqlx::query_scalar("SELECT version FROM auth_migrations ORDER BY 1")
        .fetch_all(&pool)
        .await
        .expect("versions");
    assert_eq!(versions, vec![1, 2, 3, 4, 5, 6, 7, 8]);
}

#[tokio::test]
async fn a_changed_or_unknown_migration_stops_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("app.db"))
        .await
        .expect("open");
    let pool = store.writer_pool();
    let original: Vec<u8> =
        sqlx::query_scalar("SELECT checksum FROM auth_migrations WHERE version = 2")
            .fetch_one(pool)
            .await
            .expect("checksum");
    sqlx::query("UPDATE auth_migrations SET checksum = x'00' WHERE version = 2")
        .execute(pool)
        .await
        .expect("tamper");
    let err = store.migrate().await.expect_err("a changed migration");
    assert!(err.to_string().contains("was changed"), "{err}");
    assert_eq!(store.schema_status().await.unwrap().changed, vec![2]);
    sqlx::query("UPDATE auth_migrations SET checksum = ?1 WHERE version = 2")
        .bind(original)
        .execute(pool)
        .await
        .expect("restore");
    store.migrate().await.expect("current again");
    sqlx::query("INSERT INTO auth_migrations VALUES (99, 'from the future', x'00', 0, 0)")
        .execute(pool)
        .await
        .expect("a newer version's row");
    assert_eq!(store.schema_status().await.unwrap().unknown, vec![99]);
    let err = store.migrate().await.expect_err("an unknown migration");
    assert!(err.to_string().contains("does not know"), "{err}");
    store.close().await;
}
