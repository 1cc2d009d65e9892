//! The fault cases: an app on Postgres under a steady load of cookie and Bearer requests while
//! Postgres stops and starts again, while its `LISTEN` connection is killed, and while the app
//! itself is killed with `SIGKILL`. Each checks what every client saw, second by second, and
//! prints the figures it measured (run with `--nocapture` to see them when it passes).
//!
//! An example app runs them from `tests/faults.rs`:
//!
//! ```no_run
//! #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
//! async fn postgres_outage() {
//!     contract_suite::faults::postgres_outage(env!("CARGO_BIN_EXE_axum-saas")).await;
//! }
//! # fn main() {}
//! ```

use std::time::Duration;

use serde_json::{Value, json};
use sqlx::{Connection as _, PgConnection};
use tokio::time::Instant;

use crate::flows::{self, PASSWORD};
use crate::load::{Answer, Load, Probe};
use crate::{AppUnderTest, Client, PrivatePostgres, SessionCookie, StoreKind};

/// The staleness bound of the library's caches and change feed (docs/design.md).
pub const STALENESS_BOUND: Duration = Duration::from_secs(1);

/// How long Postgres stays down in the outage case.
const OUTAGE: Duration = Duration::from_secs(10);

/// How soon after Postgres is back every answer must be correct again.
const RECOVERY: Duration = Duration::from_secs(5);

/// How often each probe of the load sends a request.
const PERIOD: Duration = Duration::from_millis(25);

/// `TokenConfig::use_interval`: how long a token's `last_used_at` may lag behind its use.
const TOKEN_USE_INTERVAL: Duration = Duration::from_secs(5);

/// The Bearer route of the example apps' API (`read:projects`).
const API_PATH: &str = "/api/projects";

/// An API token made through the app: its id and its `sk_live_` text.
#[derive(Debug, Clone)]
pub struct Token {
    /// The token's id.
    pub id: String,
    /// The token itself.
    pub token: String,
}

/// `POST /api/tokens {name, scopes: ["read:projects"]}` with `cookie`; asserts 201.
pub async fn create_token(client: &Client, cookie: &SessionCookie, name: &str) -> Token {
    let created = client
        .post_json_with(
            "/api/tokens",
            &json!({"name": name, "scopes": ["read:projects"]}),
            cookie,
        )
        .await
        .json_with(201);
    Token {
        id: created["id"].as_str().expect("a token id").to_owned(),
        token: created["token"].as_str().expect("a token").to_owned(),
    }
}

/// `DELETE /api/tokens/{id}` with `cookie`: the answer.
async fn revoke_token(client: &Client, cookie: &SessionCookie, id: &str) -> Result<u16, String> {
    client
        .delete(&format!("/api/tokens/{id}"))
        .app_origin()
        .cookie(cookie)
        .timeout(Duration::from_secs(20))
        .try_send()
        .await
        .map(|r| r.status)
}

/// The token list of `cookie`'s active organization (`GET /api/tokens`), by id.
async fn token_rows(client: &Client, cookie: &SessionCookie) -> Vec<Value> {
    client
        .get_with("/api/tokens", cookie)
        .await
        .json_with(200)
        .as_array()
        .expect("a list of tokens")
        .clone()
}

/// The status `GET path` answers with `token`.
async fn bearer_status(client: &Client, path: &str, token: &str) -> u16 {
    client.get(path).bearer(token).send().await.status
}

/// The status `GET /auth/session` answers with `cookie`.
async fn cookie_status(client: &Client, cookie: &SessionCookie) -> u16 {
    client.get_with("/auth/session", cookie).await.status
}

/// `POST /auth/sign-up` for `email`, with a timeout: the answer or the transport failure.
async fn try_sign_up(client: &Client, email: &str) -> Result<crate::Reply, String> {
    client
        .post("/auth/sign-up")
        .app_origin()
        .json(&json!({"email": email, "password": PASSWORD}))
        .timeout(Duration::from_secs(20))
        .try_send()
        .await
}

/// An owner with an organization, a live session and tokens: the credentials the load sends.
struct Owner {
    account: flows::Account,
}

impl Owner {
    async fn new(app: &AppUnderTest) -> Self {
        let account = flows::sign_up(app, "owner@example.com").await;
        flows::create_org(app, &account.cookie, "Acme").await;
        // Making the organization rotated nothing: the sign-up cookie still opens the session.
        Self { account }
    }

    fn cookie(&self) -> &SessionCookie {
        &self.account.cookie
    }

    /// A second session of the owner (a sign-in).
    async fn another_session(&self, app: &AppUnderTest) -> SessionCookie {
        let (_, cookie) = flows::sign_in(app, &self.account.email, PASSWORD).await;
        cookie
    }
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// Postgres stops for 10 s under a steady load of cookie and Bearer requests, and starts again.
///
/// During the outage every answer is the credential's correct answer (served from the caches)
/// or 503 — never a 500, never a 200 for a session or token revoked before the outage; from 5 s
/// after Postgres is back every answer is correct. Sign-ups and token revocations sent around
/// the outage are either durable (their 201/204 holds afterwards) or reported failed and then
/// not half-applied: a failed sign-up can be made again or its account signs in, a failed
/// revocation left the token either revoked everywhere or working.
///
/// # Panics
/// When a rule is broken, or the private Postgres server cannot be made.
pub async fn postgres_outage(bin: &str) {
    let mut server = tokio::task::block_in_place(PrivatePostgres::start);
    let app = AppUnderTest::start_on_server(bin, &server.admin_url(), &[]).await;
    let client = app.client().clone();

    let owner = Owner::new(&app).await;
    let live_token = create_token(&client, owner.cookie(), "live").await;
    let revoked_token = create_token(&client, owner.cookie(), "revoked").await;
    assert_eq!(
        revoke_token(&client, owner.cookie(), &revoked_token.id).await,
        Ok(204)
    );
    let revoked_session = owner.another_session(&app).await;
    client
        .post_with("/auth/sign-out", &revoked_session)
        .await
        .expect(204);
    // Tokens revoked one by one around the outage.
    let mut doomed = Vec::new();
    for i in 0..16 {
        doomed.push(create_token(&client, owner.cookie(), &format!("doomed {i}")).await);
    }

    let probes = vec![
        Probe::cookie("live session", "/auth/session", owner.cookie(), 200),
        Probe::cookie("revoked session", "/auth/session", &revoked_session, 401),
        Probe::bearer("live token", API_PATH, &live_token.token, 200),
        Probe::bearer("revoked token", API_PATH, &revoked_token.token, 401),
    ];
    let load = Load::start(&client, probes, PERIOD);
    tokio::time::sleep(Duration::from_secs(2)).await;

    // Sign-ups and revocations from 1 s before the stop to the end of the outage.
    let writes = {
        let (client, cookie) = (client.clone(), owner.cookie().clone());
        let doomed = doomed.clone();
        tokio::spawn(async move {
            let until = Instant::now() + Duration::from_secs(1) + OUTAGE;
            let mut sign_ups = Vec::new();
            let mut revocations = Vec::new();
            let mut i = 0;
            while Instant::now() < until {
                let email = format!("user{i}@example.com");
                let reply = try_sign_up(&client, &email).await;
                sign_ups.push((email, reply.map(|r| r.status)));
                if let Some(token) = doomed.get(i) {
                    let status = revoke_token(&client, &cookie, &token.id).await;
                    revocations.push((token.clone(), status));
                }
                i += 1;
                tokio::time::sleep(Duration::from_millis(400)).await;
            }
            (sign_ups, revocations)
        })
    };
    tokio::time::sleep(Duration::from_secs(1)).await;

    let stop_at = load.now();
    tokio::task::block_in_place(|| server.stop());
    let stopped_at = load.now();
    tokio::time::sleep(OUTAGE.saturating_sub(stopped_at - stop_at)).await;
    let start_at = load.now();
    tokio::task::block_in_place(|| server.start_again());
    let back_at = load.now();
    tokio::time::sleep(RECOVERY + Duration::from_secs(3)).await;
    let answers = load.finish().await;
    let end = answers
        .answers
        .last()
        .map_or(Duration::ZERO, |a| a.sent + Duration::from_millis(1));
    let (sign_ups, revocations) = writes.await.expect("the writes");

    let recovered_by = back_at + RECOVERY;
    let last_wrong = answers
        .answers
        .iter()
        .filter(|a| a.sent >= stop_at && !answers.is_correct(a))
        .map(|a| a.sent)
        .max();
    crate::figures!(
        "postgres outage ({bin}): stopped at {:.2} s (took {:.2} s), started at {:.2} s \
         (back at {:.2} s); {} requests\n{}",
        secs(stop_at),
        secs(stopped_at - stop_at),
        secs(start_at),
        secs(back_at),
        answers.answers.len(),
        answers.figures(&[
            ("before", Duration::ZERO, stop_at),
            ("outage", stop_at, back_at),
            ("first 5 s back", back_at, recovered_by),
            ("after", recovered_by, end),
        ])
    );
    crate::figures!(
        "  last answer that was not correct: {}; sign-ups {:?}; revocations {:?}",
        last_wrong.map_or("none".to_owned(), |t| format!(
            "sent at {:.2} s ({:.2} s after Postgres was back)",
            secs(t),
            secs(t.saturating_sub(back_at))
        )),
        tally(sign_ups.iter().map(|(_, s)| s)),
        tally(revocations.iter().map(|(_, s)| s)),
    );

    // Before the outage: every answer correct (or 503 for a request still being answered when
    // Postgres began to stop).
    let wrong = answers.breaking(Duration::ZERO, stop_at, |_, a| {
        answers.is_correct(a) || (a.outcome == Ok(503) && a.sent + a.took >= stop_at)
    });
    assert!(
        wrong.is_empty(),
        "wrong answers before the outage: {wrong:#?}"
    );
    // During it and while Postgres comes back: correct or 503.
    let wrong = answers.breaking(stop_at, recovered_by, |correct, a: &Answer| {
        a.outcome == Ok(correct) || a.outcome == Ok(503)
    });
    assert!(
        wrong.is_empty(),
        "answers that were neither correct nor 503 during the outage: {wrong:#?}\napp output:\n{}",
        app.output()
    );
    // From 5 s after Postgres is back: every answer correct.
    let wrong = answers.breaking(recovered_by, end, |_, a| answers.is_correct(a));
    assert!(
        wrong.is_empty(),
        "wrong answers 5 s after Postgres came back: {wrong:#?}\napp output:\n{}",
        app.output()
    );
    assert!(
        answers.sent_between(recovered_by, end).count() > 40,
        "the load went on after the outage"
    );

    // The writes made around the outage: durable, or failed and not half-applied.
    for (email, status) in &sign_ups {
        match status {
            Ok(201) => {
                let (_, cookie) = flows::sign_in(&app, email, PASSWORD).await;
                assert_eq!(cookie_status(&client, &cookie).await, 200);
            }
            Ok(503) => {
                let again = try_sign_up(&client, email).await.expect("a sign-up");
                match again.status {
                    // Nothing of it was kept.
                    201 => {}
                    // It was kept whole: the account signs in.
                    409 => {
                        flows::sign_in(&app, email, PASSWORD).await;
                    }
                    _ => panic!("a sign-up of {email} that failed with 503: {again}"),
                }
            }
            other => panic!(
                "a sign-up of {email} around the outage answered {other:?}, neither 201 nor 503"
            ),
        }
    }
    let rows = token_rows(&client, owner.cookie()).await;
    for (token, status) in &revocations {
        let row = rows
            .iter()
            .find(|r| r["id"] == token.id.as_str())
            .expect("the token is listed");
        let revoked = !row["revoked_at"].is_null();
        let answer = bearer_status(&client, API_PATH, &token.token).await;
        match status {
            Ok(204) => {
                assert!(revoked, "a revocation answered 204 is kept: {row}");
                assert_eq!(answer, 401, "a revoked token is refused");
            }
            Ok(503) => assert_eq!(
                answer,
                if revoked { 401 } else { 200 },
                "a revocation that failed left the token whole either way: {row}"
            ),
            other => panic!("a revocation around the outage answered {other:?}"),
        }
    }
    app.finish().await;
    drop(server);
}

/// Counts of each outcome, for the figures.
fn tally<'a>(
    outcomes: impl Iterator<Item = &'a Result<u16, String>>,
) -> std::collections::BTreeMap<String, usize> {
    let mut counts = std::collections::BTreeMap::new();
    for outcome in outcomes {
        let key = match outcome {
            Ok(status) => status.to_string(),
            Err(_) => "transport failure".to_owned(),
        };
        *counts.entry(key).or_default() += 1;
    }
    counts
}

/// The pids of the `LISTEN` backends of the database `conn` is connected to.
async fn listen_backends(conn: &mut PgConnection) -> Vec<i32> {
    sqlx::query_scalar(
        "SELECT pid FROM pg_stat_activity \
         WHERE datname = current_database() AND query LIKE 'LISTEN%' AND pid <> pg_backend_pid()",
    )
    .fetch_all(conn)
    .await
    .expect("pg_stat_activity")
}

/// The app's `LISTEN` connection is killed (`pg_terminate_backend`) under load, and a token is
/// revoked on another instance meanwhile.
///
/// No answer is ever a 500 or a 200 for the revoked token past the staleness bound; token
/// requests answer correctly or 503 (failing closed) until the feed is back, and are correct
/// again once it listens again; the revocation is honoured after the recovery.
///
/// # Panics
/// When a rule is broken.
pub async fn change_feed_listener_killed(bin: &str) {
    let app = AppUnderTest::start(bin, StoreKind::Postgres).await;
    let other = app.join_with(&[]).await;
    let client = app.client().clone();
    let owner = Owner::new(&app).await;
    let live_token = create_token(&client, owner.cookie(), "live").await;
    let victim = create_token(&client, owner.cookie(), "revoked meanwhile").await;
    let mut conn = PgConnection::connect(app.database_url())
        .await
        .expect("a connection to the app's database");

    // The feed listens: one backend of this database (each instance has its own).
    let deadline = Instant::now() + Duration::from_secs(10);
    let before = loop {
        let pids = listen_backends(&mut conn).await;
        if pids.len() == 2 || Instant::now() > deadline {
            break pids;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(before.len(), 2, "each instance's feed listens: {before:?}");

    let probes = vec![
        Probe::cookie("live session", "/auth/session", owner.cookie(), 200),
        Probe::bearer("live token", API_PATH, &live_token.token, 200),
        Probe::bearer("token revoked meanwhile", API_PATH, &victim.token, 200),
    ];
    let load = Load::start(&client, probes, PERIOD);
    tokio::time::sleep(Duration::from_secs(1)).await;

    // Kill the LISTEN backends of this database: both instances' feeds lose their connection.
    let kill_at = load.now();
    let killed: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND query LIKE 'LISTEN%' AND pid <> pg_backend_pid()",
    )
    .fetch_all(&mut conn)
    .await
    .expect("pg_terminate_backend");
    assert!(killed.len() >= 2 && killed.iter().all(|k| *k), "{killed:?}");
    // A revocation on the other instance while the feeds reconnect.
    let revoke_at = load.now();
    assert_eq!(
        revoke_token(other.client(), owner.cookie(), &victim.id).await,
        Ok(204)
    );
    let revoked_at = load.now();

    // The feeds listen again, on new backends.
    let deadline = Instant::now() + Duration::from_secs(10);
    let relisten_at = loop {
        let pids = listen_backends(&mut conn).await;
        if pids.len() == 2 && pids.iter().all(|p| !before.contains(p)) {
            break load.now();
        }
        assert!(
            Instant::now() < deadline,
            "the feeds did not listen again within 10 s: {pids:?}\n{}",
            app.output()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    tokio::time::sleep(Duration::from_secs(4)).await;
    let answers = load.finish().await;
    let end = answers
        .answers
        .last()
        .map_or(Duration::ZERO, |a| a.sent + Duration::from_millis(1));

    let bound = revoked_at + STALENESS_BOUND;
    let recovered_by = relisten_at + STALENESS_BOUND * 2;
    let refused_from = answers
        .answers
        .iter()
        .filter(|a| a.probe == 2 && a.sent >= revoke_at && a.outcome == Ok(401))
        .map(|a| a.sent)
        .min();
    crate::figures!(
        "LISTEN killed ({bin}): at {:.3} s; revoked on the other instance at {:.3} s (answered \
         at {:.3} s); both feeds listening again at {:.3} s ({} ms after the kill); the revoked \
         token refused from {}; {} requests\n{}",
        secs(kill_at),
        secs(revoke_at),
        secs(revoked_at),
        secs(relisten_at),
        (relisten_at - kill_at).as_millis(),
        refused_from.map_or("never".to_owned(), |t| format!(
            "{:.3} s ({} ms after the revocation was answered)",
            secs(t),
            t.saturating_sub(revoked_at).as_millis()
        )),
        answers.answers.len(),
        answers.figures(&[
            ("before", Duration::ZERO, kill_at),
            ("feeds reconnecting", kill_at, recovered_by),
            ("after", recovered_by, end),
        ])
    );

    let wrong = answers.breaking(Duration::ZERO, kill_at, |_, a| {
        answers.is_correct(a) || (a.outcome == Ok(503) && a.sent + a.took >= kill_at)
    });
    assert!(
        wrong.is_empty(),
        "wrong answers before the kill: {wrong:#?}"
    );
    // Until the revocation: correct or 503; then the revoked token: 401 or 503 once the bound
    // passed (200 only before it), never anything else.
    let wrong = answers.breaking(kill_at, end, |correct, a| {
        let fine = a.outcome == Ok(correct) || a.outcome == Ok(503);
        if a.probe == 2 && a.sent >= revoke_at {
            a.outcome == Ok(401) || a.outcome == Ok(503) || (a.outcome == Ok(200) && a.sent < bound)
        } else {
            fine
        }
    });
    assert!(
        wrong.is_empty(),
        "wrong answers after the LISTEN connection was killed: {wrong:#?}\napp output:\n{}",
        app.output()
    );
    // Once the feed is back: every answer correct (the revoked token 401).
    let wrong = answers.breaking(recovered_by, end, |correct, a| {
        if a.probe == 2 {
            a.outcome == Ok(401)
        } else {
            a.outcome == Ok(correct)
        }
    });
    assert!(
        wrong.is_empty(),
        "wrong answers after the feed was back: {wrong:#?}\napp output:\n{}",
        app.output()
    );
    let _ = conn.close().await;
    other.finish().await;
    app.finish().await;
}

/// An instance is killed with `SIGKILL` mid-traffic; another one is started on the same
/// database and keys.
///
/// Every sign-up, sign-in, token, revocation and sign-out the killed instance answered with
/// success holds on the new one; a token's `last_used_at` lags its last use by at most the
/// batching interval (`TokenConfig::use_interval`, 5 s).
///
/// # Panics
/// When a rule is broken.
pub async fn instance_killed(bin: &str) {
    // One public origin for both instances: tokens name it as their issuer.
    let env = [("APP_ORIGIN", "http://app.test")];
    let mut app = AppUnderTest::start_with(bin, StoreKind::Postgres, &env).await;
    let client = app.client().clone();
    let owner = Owner::new(&app).await;
    let used_token = create_token(&client, owner.cookie(), "used").await;

    // Traffic: the token used all along, and writes one after another until the kill.
    let probes = vec![
        Probe::cookie("owner session", "/auth/session", owner.cookie(), 200),
        Probe::bearer("used token", API_PATH, &used_token.token, 200),
    ];
    let load = Load::start(&client, probes, PERIOD);
    let writes = {
        let (client, cookie) = (client.clone(), owner.cookie().clone());
        tokio::spawn(async move {
            let mut sessions = Vec::new();
            let mut tokens = Vec::new();
            let mut revoked = Vec::new();
            let mut signed_out = Vec::new();
            // Paced so that the limits (100 sign-ups per address and 20 tokens per user an
            // hour) are not reached before the kill.
            for i in 0.. {
                let email = format!("user{i}@example.com");
                let Ok(reply) = try_sign_up(&client, &email).await else {
                    break;
                };
                if reply.status != 201 {
                    break;
                }
                let session = reply.session_cookie();
                if i % 2 == 1 {
                    let Ok(reply) = client
                        .post("/auth/sign-out")
                        .app_origin()
                        .cookie(&session)
                        .try_send()
                        .await
                    else {
                        break;
                    };
                    if reply.status != 204 {
                        break;
                    }
                    signed_out.push(session);
                } else {
                    sessions.push(session);
                }
                if i % 3 == 0 {
                    let request = client
                        .post("/api/tokens")
                        .app_origin()
                        .cookie(&cookie)
                        .json(&json!({"name": format!("t{i}"), "scopes": ["read:projects"]}));
                    let Ok(reply) = request.try_send().await else {
                        break;
                    };
                    if reply.status != 201 {
                        break;
                    }
                    let body = reply.json();
                    let token = Token {
                        id: body["id"].as_str().expect("an id").to_owned(),
                        token: body["token"].as_str().expect("a token").to_owned(),
                    };
                    if i % 2 == 0 {
                        if revoke_token(&client, &cookie, &token.id).await != Ok(204) {
                            break;
                        }
                        revoked.push(token);
                    } else {
                        tokens.push(token);
                    }
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            (sessions, tokens, revoked, signed_out)
        })
    };
    // Long enough for at least one batch of `last_used_at` to be written.
    tokio::time::sleep(TOKEN_USE_INTERVAL + Duration::from_secs(2)).await;
    let kill_at = load.now();
    let killed_at = time::OffsetDateTime::now_utc();
    app.kill().await;
    let answers = load.finish().await;
    let (sessions, tokens, revoked, signed_out) = writes.await.expect("the writes");
    let last_used_sent = answers
        .answers
        .iter()
        .filter(|a| a.probe == 1 && a.outcome == Ok(200))
        .map(|a| a.sent)
        .max()
        .expect("the token was used");

    let next = app.join_with(&env).await;
    let next_client = next.client().clone();
    for cookie in &sessions {
        assert_eq!(
            cookie_status(&next_client, cookie).await,
            200,
            "a session the killed instance made is kept"
        );
    }
    for cookie in &signed_out {
        assert_eq!(
            cookie_status(&next_client, cookie).await,
            401,
            "a sign-out the killed instance answered 204 is kept"
        );
    }
    for token in &tokens {
        assert_eq!(
            bearer_status(&next_client, API_PATH, &token.token).await,
            200
        );
    }
    for token in &revoked {
        assert_eq!(
            bearer_status(&next_client, API_PATH, &token.token).await,
            401
        );
    }
    assert_eq!(cookie_status(&next_client, owner.cookie()).await, 200);
    let rows = token_rows(&next_client, owner.cookie()).await;
    let row = rows
        .iter()
        .find(|r| r["id"] == used_token.id.as_str())
        .expect("the used token is listed");
    let last_used = row["last_used_at"]
        .as_str()
        .and_then(|t| {
            time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()
        })
        .unwrap_or_else(|| panic!("the token's use was recorded before the kill: {row}"));
    let lag = killed_at - last_used;
    crate::figures!(
        "SIGKILL ({bin}): killed at {:.2} s (last answered use of the token sent at {:.2} s); \
         {} requests ({} answered 200); kept: {} sessions, {} signed-out sessions, {} live \
         tokens, {} revoked tokens; the token's last_used_at was {:.2} s before the kill \
         (bound: {} s)",
        secs(kill_at),
        secs(last_used_sent),
        answers.answers.len(),
        answers
            .answers
            .iter()
            .filter(|a| a.outcome == Ok(200))
            .count(),
        sessions.len(),
        signed_out.len(),
        tokens.len(),
        revoked.len(),
        lag.as_seconds_f64(),
        TOKEN_USE_INTERVAL.as_secs()
    );
    assert!(
        !sessions.is_empty() && !tokens.is_empty() && !revoked.is_empty(),
        "the instance made sessions and tokens before it was killed"
    );
    assert!(
        lag <= time::Duration::try_from(TOKEN_USE_INTERVAL + Duration::from_secs(1))
            .expect("a duration"),
        "last_used_at lags the kill by {lag}, more than the batching interval"
    );
    next.finish().await;
    app.finish().await;
}
