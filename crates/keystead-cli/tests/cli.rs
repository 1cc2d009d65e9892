//! `authctl` as an operator runs it: the built binary, as a process, against a fresh SQLite
//! file and a fresh Postgres database (127.0.0.1:5432, or `DATABASE_URL`'s server), with the
//! library opened in-process beside it to check what the commands did, as a running app
//! instance would see it.
//!
//! The import tests read exports made by `tests/generate_exports.py` (Python, with the
//! `bcrypt` package: digests made by an implementation independent of the one that verifies
//! them at sign-in).

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use keystead::accounts::ClientInfo;
use keystead::tokens::{DirKeyStore, KeyAlgorithm, KeyRing, TokenConfig};
use keystead::web::AppOrigin;
use keystead::{
    ApiTokenId, ApiTokenRecord, Auth, AuthStore, Email, ErrorCode, Membership, OrgId, Organization,
    Permission, Role, SecretString, SystemClock,
};
use serde_json::Value;
use tempfile::TempDir;

const ORIGIN: &str = "http://localhost:3000";

/// A fresh database: a SQLite file in a temporary directory, or a Postgres database made for
/// the test (dropped at the end).
struct Db {
    url: String,
    dir: TempDir,
    postgres: Option<(String, String)>,
}

impl Db {
    fn sqlite() -> Self {
        let dir = TempDir::new().expect("a temporary directory");
        let url = format!("sqlite://{}", dir.path().join("auth.db").display());
        Self {
            url,
            dir,
            postgres: None,
        }
    }

    async fn postgres() -> Self {
        let server = std::env::var("DATABASE_URL")
            .ok()
            .filter(|u| u.starts_with("postgres"))
            .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
        let name = format!("authctl_{}", uuid::Uuid::now_v7().simple());
        let admin = sqlx::PgPool::connect(&server)
            .await
            .expect("Postgres at DATABASE_URL (or 127.0.0.1:5432)");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&admin)
            .await
            .expect("CREATE DATABASE");
        admin.close().await;
        let base = server.rsplit_once('/').map_or(server.as_str(), |(b, _)| b);
        Self {
            url: format!("{base}/{name}"),
            dir: TempDir::new().expect("a temporary directory"),
            postgres: Some((server.clone(), name)),
        }
    }

    async fn drop_database(&self) {
        if let Some((server, name)) = &self.postgres
            && let Ok(admin) = sqlx::PgPool::connect(server).await
        {
            let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
            )))
            .execute(&admin)
            .await;
        }
    }

    fn keys_dir(&self) -> PathBuf {
        self.dir.path().join("keys")
    }

    fn mail_dir(&self) -> PathBuf {
        self.dir.path().join("mail")
    }

    /// Runs `authctl ARGS` with `stdin`, as `ops-alice`.
    fn run(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut child = Command::new(env!("CARGO_BIN_EXE_authctl"))
            .args(args)
            .env("DATABASE_URL", &self.url)
            .env("AUTH_KEYS", self.keys_dir())
            .env("AUTH_MAIL_DIR", self.mail_dir())
            .env("APP_ORIGIN", ORIGIN)
            .env("AUTHCTL_ACTOR", "ops-alice")
            .env_remove("AUTH_DB_SCHEMA")
            .env_remove("AUTH_DB_PREFIX")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("authctl runs");
        if let Some(input) = stdin {
            use std::io::Write as _;
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(input.as_bytes())
                .expect("write stdin");
        } else {
            drop(child.stdin.take());
        }
        child.wait_with_output().expect("authctl finishes")
    }

    /// Runs `authctl ARGS` and expects exit code `code`; returns stdout.
    #[track_caller]
    fn expect(&self, code: i32, args: &[&str]) -> String {
        self.expect_with(code, args, None)
    }

    #[track_caller]
    fn expect_with(&self, code: i32, args: &[&str], stdin: Option<&str>) -> String {
        let output = self.run(args, stdin);
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert_eq!(
            output.status.code(),
            Some(code),
            "authctl {args:?}\nstdout: {stdout}\nstderr: {stderr}"
        );
        stdout
    }

    #[track_caller]
    fn json(&self, args: &[&str]) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let out = self.expect(0, &all);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {out}"))
    }

    /// The store, opened in-process (the migrations ran already).
    async fn store(&self) -> Arc<dyn AuthStore> {
        if self.url.starts_with("postgres") {
            Arc::new(
                keystead_postgres::PostgresStore::connect(&self.url)
                    .await
                    .expect("open Postgres"),
            )
        } else {
            Arc::new(
                keystead_sqlite::SqliteStore::connect(&self.url)
                    .await
                    .expect("open SQLite"),
            )
        }
    }

    /// An app instance over the database, as the example apps build theirs (with the
    /// Postgres change feed on Postgres).
    async fn instance(&self, keys: Option<KeyRing>) -> Auth {
        let store = self.store().await;
        let mut builder = Auth::builder(Arc::clone(&store), AppOrigin::parse(ORIGIN).unwrap());
        if self.url.starts_with("postgres") {
            let pg = keystead_postgres::PostgresStore::connect(&self.url)
                .await
                .expect("open Postgres");
            let feed = keystead_postgres::PostgresChangeFeed::start(pg.pool().clone())
                .await
                .expect("listen");
            builder = builder.change_feed(feed);
        }
        if let Some(keys) = keys {
            builder = builder.api_tokens(keys, TokenConfig::default());
        }
        builder.build()
    }
}

fn client() -> ClientInfo {
    ClientInfo::new(IpAddr::V4(Ipv4Addr::LOCALHOST))
}

/// Waits until `check` holds, for at most 15 s (the change log is read within the
/// staleness bound).
async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(15) {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{what}: not within 15 s");
}

// ---------------------------------------------------------------------------------------
// Imports.
// ---------------------------------------------------------------------------------------

fn generate(dir: &Path) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/generate_exports.py");
    let status = Command::new("python3")
        .arg(&script)
        .arg(dir)
        .status()
        .expect("python3 runs (cargo xtask test installs its bcrypt package)");
    assert!(status.success(), "the export generator failed");
    serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).unwrap())
        .expect("manifest.json")
}

fn report(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .expect("the report")
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON report line"))
        .collect()
}

/// The lines of `file` that the manifest says must fail.
fn manifest_lines(manifest: &Value, file: &str) -> Vec<u64> {
    manifest["failed_lines"][file]
        .as_array()
        .unwrap_or_else(|| panic!("the manifest lists {file}"))
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect()
}

fn failed_lines(lines: &[Value], kind: &str) -> Vec<u64> {
    let mut failed: Vec<u64> = lines
        .iter()
        .filter(|l| l["kind"] == kind && l["outcome"] == "failed")
        .map(|l| l["line"].as_u64().unwrap())
        .collect();
    failed.sort_unstable();
    failed
}

async fn imports_users_orgs_and_passwords(db: &Db) {
    let exports = TempDir::new().unwrap();
    let dir = exports.path();
    let manifest = generate(dir);
    let path = |name: &str| dir.join(name).display().to_string();
    db.expect(0, &["migrate"]);

    // A dry run writes nothing.
    let dry = db.expect(
        6,
        &[
            "--json",
            "import",
            "clerk",
            &path("clerk_users.csv"),
            "--dry-run",
        ],
    );
    let dry: Value = serde_json::from_str(&dry).unwrap();
    assert_eq!(dry["dry_run"], true);
    assert_eq!(dry["users"]["unchanged"], 1, "the repeated line: {dry}");
    let clerk_users = manifest["clerk"].as_object().unwrap();
    assert_eq!(
        dry["users"]["imported"].as_u64().unwrap() as usize,
        clerk_users.len() + 2,
        "every good line and the two reset-required ones would be imported, the repeat not: {dry}"
    );
    let store = db.store().await;
    let first_id = clerk_users.keys().next().unwrap();
    assert_eq!(store.user_by_external_id(first_id).await.unwrap(), None);

    // Clerk, with organizations, memberships and a role map.
    let clerk_report = dir.join("clerk-report.jsonl");
    db.expect(
        6,
        &[
            "import",
            "clerk",
            &path("clerk_users.csv"),
            "--organizations",
            &path("clerk_organizations.json"),
            "--memberships",
            &path("clerk_memberships.json"),
            "--role-map",
            &path("clerk_roles.json"),
            "--report",
            &clerk_report.display().to_string(),
        ],
    );
    let lines = report(&clerk_report);
    let expected = manifest_lines(&manifest, "clerk_users.csv");
    assert_eq!(failed_lines(&lines, "user"), expected, "{lines:#?}");
    let expected = manifest_lines(&manifest, "clerk_memberships.json");
    assert_eq!(
        failed_lines(&lines, "membership"),
        expected,
        "the membership of a user not in the export, by its position in the page"
    );
    for line in lines.iter().filter(|l| l["outcome"] == "failed") {
        assert!(
            line["note"].as_str().is_some_and(|n| !n.is_empty()),
            "a failed line says why: {line}"
        );
    }
    let duplicate = manifest["duplicate_ids"][0].as_str().unwrap();
    let outcomes: Vec<&str> = lines
        .iter()
        .filter(|l| l["external_id"] == duplicate)
        .map(|l| l["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["imported", "unchanged"], "the duplicate line");
    for id in manifest["reset_required"].as_array().unwrap() {
        let line = lines.iter().find(|l| l["external_id"] == *id).unwrap();
        assert_eq!(line["outcome"], "imported");
        assert!(
            line["note"]
                .as_str()
                .unwrap()
                .starts_with("password reset required"),
            "{line}"
        );
        let user = store
            .user_by_external_id(id.as_str().unwrap())
            .await
            .unwrap()
            .expect("imported");
        assert_eq!(store.password_credential(user.id).await.unwrap(), None);
    }
    // Nothing of a malformed line was written.
    for address in ["noid@example.com"] {
        assert_eq!(
            store
                .user_by_email(&Email::parse(address).unwrap())
                .await
                .unwrap(),
            None
        );
    }
    assert_eq!(
        store
            .user_by_external_id("user_2bademail0000000001")
            .await
            .unwrap(),
        None
    );

    // Auth0, with the password hash export.
    let auth0_report = dir.join("auth0-report.jsonl");
    db.expect(
        6,
        &[
            "import",
            "auth0",
            &path("auth0_users.ndjson"),
            "--password-hashes",
            &path("auth0_hashes.ndjson"),
            "--report",
            &auth0_report.display().to_string(),
        ],
    );
    let auth0_lines = report(&auth0_report);
    let expected = manifest_lines(&manifest, "auth0_users.ndjson");
    assert_eq!(failed_lines(&auth0_lines, "user"), expected);
    assert_eq!(
        store.user_by_external_id("auth0|noemail").await.unwrap(),
        None
    );

    // Every user is there with its fields, found by its external id.
    let mut all: BTreeMap<String, Value> = BTreeMap::new();
    for source in ["clerk", "auth0"] {
        for (id, expected) in manifest[source].as_object().unwrap() {
            all.insert(id.clone(), expected.clone());
        }
    }
    for (id, expected) in &all {
        let user = store
            .user_by_external_id(id)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("{id} imported"));
        assert_eq!(user.email.as_str(), expected["email"].as_str().unwrap());
        assert_eq!(user.name.as_deref(), expected["name"].as_str(), "{id}");
        assert_eq!(
            user.email_verified(),
            expected["verified"].as_bool().unwrap(),
            "{id}"
        );
    }
    // Google identities are external accounts keyed on (issuer, subject).
    for (id, subject) in manifest["google"].as_object().unwrap() {
        let link = store
            .external_account(authctl::import::GOOGLE_ISSUER, subject.as_str().unwrap())
            .await
            .unwrap()
            .expect("a Google link");
        let user = store.user_by_external_id(id).await.unwrap().unwrap();
        assert_eq!(link.user_id, user.id);
    }

    // Organizations: the creator owns, roles mapped (a custom role through the role map).
    for (org_id, roles) in manifest["roles"].as_object().unwrap() {
        let org = store
            .organization_by_external_id(org_id)
            .await
            .unwrap()
            .expect("the organization");
        let members = store.members(org.id).await.unwrap();
        let found: BTreeMap<String, String> = members
            .iter()
            .map(|m| {
                (
                    m.user.external_id.clone().unwrap(),
                    m.membership.role.as_str().to_owned(),
                )
            })
            .collect();
        let expected: BTreeMap<String, String> = roles
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
            .collect();
        assert_eq!(found, expected, "roles of {org_id}");
    }

    // Imported users sign in with their old passwords, and are re-hashed to argon2id.
    let app = db.instance(None).await;
    let with_password: Vec<(&String, &Value)> = all
        .iter()
        .filter(|(_, v)| v["password"].is_string())
        .take(6)
        .collect();
    assert!(with_password.len() >= 6);
    for (id, expected) in with_password {
        let user = store.user_by_external_id(id).await.unwrap().unwrap();
        let before = store.password_credential(user.id).await.unwrap().unwrap();
        assert!(
            before.hash.expose().starts_with("$2b$"),
            "stored as exported"
        );
        let email = expected["email"].as_str().unwrap();
        let wrong = app
            .accounts()
            .sign_in(
                email,
                &SecretString::new("not-the-password".to_owned()),
                &client(),
            )
            .await;
        assert_eq!(wrong.unwrap_err().code, ErrorCode::InvalidCredentials);
        let password = SecretString::new(expected["password"].as_str().unwrap().to_owned());
        let (signed_in, _) = app
            .accounts()
            .sign_in(email, &password, &client())
            .await
            .unwrap_or_else(|e| panic!("{id} signs in with the old password: {e}"))
            .into_session()
            .expect("no second factor");
        assert_eq!(signed_in.id, user.id);
        let after = store.password_credential(user.id).await.unwrap().unwrap();
        assert!(
            after.hash.expose().starts_with("$argon2id$"),
            "re-hashed at the first sign-in"
        );
        assert_eq!(
            app.user_by_external_id(id).await.unwrap().map(|u| u.id),
            Some(user.id)
        );
    }

    // A second run changes nothing.
    let audits_before = db
        .expect(0, &["audit", "export", "--kind", "import.user"])
        .lines()
        .count();
    let again: Value = serde_json::from_str(&db.expect(
        6,
        &[
            "--json",
            "import",
            "clerk",
            &path("clerk_users.csv"),
            "--organizations",
            &path("clerk_organizations.json"),
            "--memberships",
            &path("clerk_memberships.json"),
            "--role-map",
            &path("clerk_roles.json"),
        ],
    ))
    .unwrap();
    assert_eq!(again["users"]["imported"], 0, "{again}");
    assert_eq!(again["users"]["updated"], 0, "{again}");
    assert_eq!(again["organizations"]["imported"], 0, "{again}");
    assert_eq!(again["memberships"]["imported"], 0, "{again}");
    assert_eq!(again["memberships"]["updated"], 0, "{again}");
    let again: Value = serde_json::from_str(&db.expect(
        6,
        &[
            "--json",
            "import",
            "auth0",
            &path("auth0_users.ndjson"),
            "--password-hashes",
            &path("auth0_hashes.ndjson"),
        ],
    ))
    .unwrap();
    assert_eq!(again["users"]["imported"], 0, "{again}");
    assert_eq!(again["users"]["updated"], 0, "{again}");
    let audits_after = db
        .expect(0, &["audit", "export", "--kind", "import.user"])
        .lines()
        .count();
    assert_eq!(audits_before, audits_after, "no new import events");
    assert_eq!(
        audits_after,
        all.len() + 2,
        "one import event per imported user"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imports_from_clerk_and_auth0_on_sqlite() {
    imports_users_orgs_and_passwords(&Db::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imports_from_clerk_and_auth0_on_postgres() {
    let db = Db::postgres().await;
    imports_users_orgs_and_passwords(&db).await;
    db.drop_database().await;
}

// ---------------------------------------------------------------------------------------
// Operator commands.
// ---------------------------------------------------------------------------------------

async fn operator_commands(db: &Db) {
    // A database that was never migrated is not current.
    if db.postgres.is_some() {
        db.expect(5, &["migrate", "--check"]);
        db.expect(5, &["users", "find", "nobody@example.com"]);
    } else {
        db.expect(1, &["migrate", "--check"]);
    }
    assert!(db.expect(0, &["migrate"]).contains("applied migrations"));
    db.expect(0, &["migrate", "--check"]);
    assert!(db.expect(0, &["migrate"]).contains("already current"));

    // Create, with a password read from standard input; a taken email is refused.
    let created: Value = serde_json::from_str(&db.expect_with(
        0,
        &[
            "--json",
            "users",
            "create",
            "--email",
            "Ada@Example.com",
            "--name",
            "Ada Lovelace",
            "--external-id",
            "user_2ada",
            "--password-stdin",
        ],
        Some("analytical engine 1843\n"),
    ))
    .unwrap();
    assert_eq!(created["email"], "ada@example.com");
    db.expect(4, &["users", "create", "--email", "ada@example.com"]);
    db.expect_with(
        4,
        &[
            "users",
            "create",
            "--email",
            "weak@example.com",
            "--password-stdin",
        ],
        Some("short"),
    );
    db.expect(3, &["users", "find", "nobody@example.com"]);
    for key in [
        "ada@example.com",
        "user_2ada",
        created["id"].as_str().unwrap(),
    ] {
        let found = db.json(&["users", "find", key]);
        assert_eq!(found["id"], created["id"], "found by {key}");
        assert_eq!(found["has_password"], true);
    }
    let password = SecretString::new("analytical engine 1843".to_owned());

    // A running instance with a signed-in session sees the disabling within the bound.
    let app = db.instance(None).await;
    let (_, session) = app
        .accounts()
        .sign_in("ada@example.com", &password, &client())
        .await
        .expect("sign in")
        .into_session()
        .expect("no second factor");
    let token = session.token.expose().to_owned();
    app.sessions().validate(&token).await.expect("valid");
    let disabled = db.json(&["users", "disable", "ada@example.com"]);
    assert!(disabled["disabled_at"].is_string());
    eventually(
        "the running instance drops the disabled user's session",
        async || app.sessions().validate(&token).await.is_err(),
    )
    .await;
    let refused = app
        .accounts()
        .sign_in("ada@example.com", &password, &client())
        .await
        .unwrap_err();
    assert_eq!(refused.code, ErrorCode::AccountDisabled);
    let wrong = app
        .accounts()
        .sign_in(
            "ada@example.com",
            &SecretString::new("wrong password".to_owned()),
            &client(),
        )
        .await
        .unwrap_err();
    assert_eq!(
        wrong.code,
        ErrorCode::InvalidCredentials,
        "disabled is told only after the right password"
    );
    db.json(&["users", "enable", "user_2ada"]);
    let (ada, _) = app
        .accounts()
        .sign_in("ada@example.com", &password, &client())
        .await
        .expect("signs in again once enabled")
        .into_session()
        .expect("no second factor");

    // Verify; sessions list and revoke.
    assert!(db.json(&["users", "verify", "ada@example.com"])["email_verified_at"].is_string());
    let (_, second) = app
        .accounts()
        .sign_in("ada@example.com", &password, &client())
        .await
        .unwrap()
        .into_session()
        .expect("no second factor");
    let listed = db.json(&["sessions", "list", "--user", "ada@example.com"]);
    assert!(listed.as_array().unwrap().len() >= 2, "{listed}");
    let revoked = db.json(&["sessions", "revoke", "--user", "ada@example.com"]);
    assert!(revoked["ended"].as_u64().unwrap() >= 2);
    let second_token = second.token.expose().to_owned();
    eventually(
        "the running instance drops the revoked sessions",
        async || app.sessions().validate(&second_token).await.is_err(),
    )
    .await;

    // Organizations: the last-owner rule holds here too.
    let store = db.store().await;
    let now = keystead::Clock::now(&SystemClock);
    let org = Organization {
        id: OrgId::new(),
        name: "Analytical".to_owned(),
        slug: "analytical".to_owned(),
        created_at: now,
        external_id: None,
        mfa_required: false,
    };
    store.create_organization(&org, ada.id).await.unwrap();
    let bob = db.json(&["users", "create", "--email", "bob@example.com"]);
    let bob_id = keystead::UserId::from_uuid(bob["id"].as_str().unwrap().parse().unwrap());
    store
        .add_member(&Membership {
            org_id: org.id,
            user_id: bob_id,
            role: Role::MEMBER,
            joined_at: now,
        })
        .await
        .unwrap();
    db.expect(
        4,
        &[
            "orgs",
            "set-role",
            "analytical",
            "ada@example.com",
            "member",
        ],
    );
    db.expect(
        4,
        &[
            "orgs",
            "set-role",
            "analytical",
            "bob@example.com",
            "no-such-role",
        ],
    );
    db.json(&["orgs", "set-role", "analytical", "bob@example.com", "admin"]);
    let members = db.json(&["orgs", "members", "analytical"]);
    let roles: BTreeMap<&str, &str> = members
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["email"].as_str().unwrap(), m["role"].as_str().unwrap()))
        .collect();
    assert_eq!(
        roles,
        BTreeMap::from([("ada@example.com", "owner"), ("bob@example.com", "admin")])
    );
    assert_eq!(
        db.json(&["orgs", "show", &org.id.to_string()])["members"],
        2
    );
    assert_eq!(db.json(&["orgs", "list"]).as_array().unwrap().len(), 1);
    assert_eq!(
        db.json(&["orgs", "list", "--user", "bob@example.com"])[0]["role"],
        "admin"
    );

    // API tokens: list and revoke.
    let token_id = ApiTokenId::new();
    store
        .create_api_token(&ApiTokenRecord {
            id: token_id,
            name: "ci deploy".to_owned(),
            user_id: bob_id,
            org_id: org.id,
            scopes: vec![Permission::new("read:projects").unwrap()],
            created_by: bob_id,
            created_at: now,
            expires_at: now + time::Duration::days(30),
            last_used_at: None,
            revoked_at: None,
        })
        .await
        .unwrap();
    let tokens = db.json(&["tokens", "list", "--org", "analytical"]);
    assert_eq!(tokens[0]["id"], token_id.to_string());
    assert!(tokens[0]["revoked_at"].is_null());
    db.json(&["tokens", "revoke", &token_id.to_string()]);
    assert!(
        store
            .api_token(token_id)
            .await
            .unwrap()
            .unwrap()
            .revoked_at
            .is_some()
    );
    db.expect(3, &["tokens", "revoke", &ApiTokenId::new().to_string()]);

    // Mail a reset link (to the mail directory, with the app's origin). No command before
    // this one sent mail, and none made the mail directory.
    assert!(
        !db.mail_dir().exists(),
        "only a command that mails makes AUTH_MAIL_DIR"
    );
    db.expect(0, &["users", "send-reset", "bob@example.com"]);
    let mails: Vec<String> = std::fs::read_dir(db.mail_dir())
        .expect("the mail directory")
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    assert!(
        mails
            .iter()
            .any(|m| m.contains("bob@example.com") && m.contains(ORIGIN)),
        "a reset mail to bob with a link on the app's origin"
    );

    // Signing keys: a rotation reaches a running instance; a retired key verifies nothing.
    let keys_store = Arc::new(DirKeyStore::new(db.keys_dir()).unwrap());
    let ring = KeyRing::load_or_create(
        keys_store,
        Arc::new(SystemClock),
        KeyAlgorithm::EdDSA,
        TokenConfig::default().max_ttl,
    )
    .await
    .unwrap();
    let first_kid = ring.keys()[0].kid.clone();
    let keyed = db.instance(Some(ring)).await;
    let listed = db.json(&["keys", "list"]);
    assert_eq!(listed.as_array().unwrap().len(), 1);
    let rotated = db.json(&["keys", "rotate"]);
    let new_kid = rotated["kid"].as_str().unwrap().to_owned();
    eventually("the running instance publishes the new key", async || {
        keyed
            .tokens()
            .unwrap()
            .keys()
            .jwks()
            .to_string()
            .contains(&new_kid)
    })
    .await;
    db.json(&["keys", "retire", &first_kid]);
    eventually(
        "the running instance stops publishing the retired key",
        async || {
            !keyed
                .tokens()
                .unwrap()
                .keys()
                .jwks()
                .to_string()
                .contains(&first_kid)
        },
    )
    .await;
    db.expect(3, &["keys", "retire", "no-such-kid"]);

    // The audit log names the operator; filters by kind; CSV and JSON lines.
    let csv = db.expect(
        0,
        &[
            "audit",
            "export",
            "--format",
            "csv",
            "--kind",
            "admin.user_disabled",
        ],
    );
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(rows.len(), 2, "a header and one event: {csv}");
    assert!(rows[0].starts_with("\"id\",\"at\",\"kind\","), "{csv}");
    assert!(rows[1].contains("admin.user_disabled") && rows[1].contains("ops-alice"));
    let tail = db.expect(0, &["--json", "audit", "tail", "-n", "3"]);
    let events: Vec<Value> = tail
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events.len(), 3);
    assert!(
        events[0]["at"].as_str() <= events[2]["at"].as_str(),
        "oldest first"
    );
    let kinds: Vec<String> = db
        .expect(0, &["audit", "export", "--user", "bob@example.com"])
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["kind"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    for kind in [
        "admin.user_created",
        "admin.role_changed",
        "admin.api_token_revoked",
        "admin.password_reset_sent",
    ] {
        assert!(kinds.iter().any(|k| k == kind), "{kind} in {kinds:?}");
    }

    // Delete: asks for --yes; the last owner cannot be deleted; a member can.
    db.expect(2, &["users", "delete", "bob@example.com"]);
    db.expect(4, &["users", "delete", "ada@example.com", "--yes"]);
    db.expect(0, &["users", "delete", "bob@example.com", "--yes"]);
    db.expect(3, &["users", "find", "bob@example.com"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_commands_on_sqlite() {
    operator_commands(&Db::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_commands_on_postgres() {
    let db = Db::postgres().await;
    operator_commands(&db).await;
    db.drop_database().await;
}
