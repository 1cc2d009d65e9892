//! The suite's harness against a stand-in app (`src/bin/contract-fake-app.rs`): what the app
//! is given, that its output is drained, that mail is read, and that every app and database is
//! torn down — after a failing case too.

use std::sync::{Arc, Mutex};

use contract_suite::{AppUnderTest, DEFAULT_POSTGRES_URL, StoreKind, run_case};
use serde_json::Value;
use sqlx::{Connection as _, PgConnection};

const FAKE_APP: &str = env!("CARGO_BIN_EXE_contract-fake-app");

fn admin_url() -> String {
    std::env::var("DATABASE_URL")
        .ok()
        .filter(|url| url.starts_with("postgres"))
        .unwrap_or_else(|| DEFAULT_POSTGRES_URL.to_owned())
}

async fn database_exists(name: &str) -> bool {
    let mut conn = PgConnection::connect(&admin_url()).await.expect("Postgres");
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_database WHERE datname = $1")
        .bind(name)
        .fetch_one(&mut conn)
        .await
        .expect("pg_database");
    count == 1
}

fn database_name(url: &str) -> String {
    let name = url.rsplit('/').next().expect("a database in the URL");
    let name = name.split('?').next().expect("a name").to_owned();
    let hex = name.strip_prefix("contract_").expect("contract_<uuid>");
    assert!(
        hex.len() == 32 && hex.chars().all(|c| c.is_ascii_hexdigit()),
        "contract_<uuid simple>: {name}"
    );
    name
}

async fn env_of(app: &AppUnderTest) -> Value {
    app.client().get("/env").send().await.json_with(200)
}

#[tokio::test]
async fn an_sqlite_app_gets_its_own_directory_and_environment() {
    let app = AppUnderTest::start(FAKE_APP, StoreKind::Sqlite).await;
    let dir = app.dir().to_owned();
    let env = env_of(&app).await;
    assert_eq!(
        env["DATABASE_URL"],
        format!("sqlite://{}", dir.join("app.db").display())
    );
    assert_eq!(env["BIND"], "127.0.0.1:0");
    assert_eq!(env["APP_ORIGIN"], Value::Null);
    assert_eq!(env["AUTH_MAIL_DIR"], dir.join("mail").display().to_string());
    assert_eq!(env["AUTH_KEYS"], dir.join("keys").display().to_string());
    assert_eq!(env["RUST_LOG"], "warn");
    assert_eq!(env["EXTRA"], Value::Null);
    assert_eq!(
        std::fs::canonicalize(env["cwd"].as_str().expect("cwd")).expect("cwd exists"),
        std::fs::canonicalize(&dir).expect("dir exists")
    );
    assert_eq!(app.origin(), app.base_url());
    assert_eq!(app.base_url(), format!("http://{}", app.addr()));
    assert!(app.addr().ip().is_loopback() && app.addr().port() != 0);
    assert!(
        app.output().contains("[stdout] starting"),
        "{}",
        app.output()
    );

    app.finish().await;
    assert!(!dir.exists(), "the temporary directory is removed");
}

#[tokio::test]
async fn extra_environment_reaches_the_app() {
    let app =
        AppUnderTest::start_with(FAKE_APP, StoreKind::Sqlite, &[("FAKE_APP_EXTRA", "yes")]).await;
    assert_eq!(env_of(&app).await["EXTRA"], "yes");
    app.finish().await;
}

#[tokio::test]
async fn a_postgres_app_gets_a_fresh_database_that_finish_drops() {
    let app = AppUnderTest::start(FAKE_APP, StoreKind::Postgres).await;
    let url = app.database_url().to_owned();
    let name = database_name(&url);
    assert_eq!(env_of(&app).await["DATABASE_URL"], url.as_str());

    let mut conn = PgConnection::connect(&url)
        .await
        .expect("the app's database");
    let current: String = sqlx::query_scalar("SELECT current_database()")
        .fetch_one(&mut conn)
        .await
        .expect("current_database()");
    assert_eq!(current, name);
    // An open connection does not keep the database alive: it is dropped WITH (FORCE).
    app.finish().await;
    assert!(!database_exists(&name).await, "{name} was dropped");
    drop(conn);
}

#[tokio::test]
async fn dropping_an_app_without_finish_still_drops_its_database() {
    let app = AppUnderTest::start(FAKE_APP, StoreKind::Postgres).await;
    let name = database_name(app.database_url());
    let dir = app.dir().to_owned();
    assert!(database_exists(&name).await);
    drop(app);
    assert!(!database_exists(&name).await, "{name} was dropped");
    assert!(!dir.exists(), "the temporary directory is removed");
}

#[test]
fn a_failing_case_still_tears_the_app_down() {
    let url = Arc::new(Mutex::new(String::new()));
    let seen = Arc::clone(&url);
    let outcome = std::panic::catch_unwind(move || {
        run_case(
            FAKE_APP,
            StoreKind::Postgres,
            async move |app: &AppUnderTest| {
                *seen.lock().unwrap() = app.database_url().to_owned();
                panic!("the case fails");
            },
        );
    });
    assert!(outcome.is_err(), "the case's panic fails the test");
    let name = database_name(&url.lock().unwrap());
    let exists = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(database_exists(&name));
    assert!(!exists, "{name} was dropped");
}

#[test]
fn a_passing_case_runs_against_the_started_app() {
    let answered = Arc::new(Mutex::new(None));
    let seen = Arc::clone(&answered);
    run_case(
        FAKE_APP,
        StoreKind::Sqlite,
        async move |app: &AppUnderTest| {
            let reply = app.client().get("/nowhere").send().await;
            *seen.lock().unwrap() = Some(reply.status);
        },
    );
    assert_eq!(*answered.lock().unwrap(), Some(404));
}

#[tokio::test]
async fn the_apps_output_is_drained_while_it_runs() {
    let app = AppUnderTest::start(FAKE_APP, StoreKind::Sqlite).await;
    // 4 MiB on each pipe, far more than a pipe buffer: the app only answers if both are read.
    for _ in 0..4 {
        app.client().get("/noise").send().await.expect(200);
    }
    // The pipes are read in the background: the lines reach the kept output shortly.
    let started = std::time::Instant::now();
    while !app.output().contains("] noise noise") {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "the noise is kept: {}",
            app.output()
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    app.finish().await;
}

#[tokio::test]
async fn mail_is_read_from_the_mail_directory() {
    let app = AppUnderTest::start(FAKE_APP, StoreKind::Sqlite).await;
    assert!(app.mails_to("ada@example.com").is_empty());
    app.client()
        .get("/mail?to=ada@example.com")
        .send()
        .await
        .expect(202);
    let mail = app.latest_mail_to("ADA@example.com").await;
    assert_eq!(mail.to, "ada@example.com");
    assert_eq!(mail.token(), "fake-token-0");
    assert!(
        mail.action_url()
            .starts_with(&format!("{}/auth/verify-email?", app.origin()))
    );

    app.client()
        .get("/mail?to=ada@example.com")
        .send()
        .await
        .expect(202);
    let second = app
        .latest_mail_matching("ada@example.com", |m| m.token() != "fake-token-0")
        .await;
    assert_eq!(second.token(), "fake-token-1");
    assert_eq!(app.mails_to("ada@example.com"), [mail, second]);
    assert!(app.mails_to("grace@example.com").is_empty());
    app.finish().await;
}

#[tokio::test]
#[should_panic(expected = "fake app refuses to start: no database")]
async fn an_app_that_exits_before_listening_fails_with_its_stderr() {
    let _app = AppUnderTest::start_with(
        FAKE_APP,
        StoreKind::Sqlite,
        &[("FAKE_APP_FAIL", "no database")],
    )
    .await;
}
