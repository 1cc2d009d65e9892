//! `PostgresChangeFeed` between two `Auth` instances on one (fresh) database: revocations and
//! membership changes cross instances within the staleness bound, and API tokens fail closed
//! while the feed's connection is down, then work again once it is back.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::TestDb;
use http::{HeaderMap, HeaderValue, header};
use keystead::session::SessionMeta;
use keystead::tokens::{Change, ChangeFeed, DirKeyStore, KeyAlgorithm, KeyRing, TokenConfig};
use keystead::web::AppOrigin;
use keystead::{
    ApiTokenRecord, Auth, AuthStore, Authentication, Email, ErrorCode, Membership, NewUser, OrgId,
    Organization, OrganizationStore as _, Role, SystemClock, User, UserId,
};
use keystead_postgres::{ChangeFeedOptions, PostgresChangeFeed};
use time::OffsetDateTime;

const ORIGIN: &str = "http://127.0.0.1:4000";
/// The `application_name` of instance B's feed connections.
const FEED_B: &str = "authkit-feed-b";

/// Two instances on one database, a user who is an owner (beside a second owner) of an
/// organization, and an API token of theirs issued through instance A.
struct Cluster {
    db: TestDb,
    a: Auth,
    b: Auth,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    user: UserId,
    org: OrgId,
    record: ApiTokenRecord,
    token: String,
    _keys: tempfile::TempDir,
}

impl Cluster {
    async fn start(scopes: &[&str]) -> Self {
        Self::start_with(scopes, Setup::default()).await
    }

    async fn start_with(scopes: &[&str], setup: Setup) -> Self {
        let db = TestDb::create().await;
        let store: Arc<dyn AuthStore> = Arc::new(db.store());
        let keys = tempfile::tempdir().expect("key dir");
        let ring = |dir: std::path::PathBuf| async move {
            KeyRing::load_or_create(
                Arc::new(DirKeyStore::new(dir).expect("key store")),
                Arc::new(SystemClock),
                KeyAlgorithm::EdDSA,
                time::Duration::days(365),
            )
            .await
            .expect("key ring")
        };
        // A makes the key; B loads it from the same directory.
        let ring_a = ring(keys.path().to_owned()).await;
        let ring_b = ring(keys.path().to_owned()).await;
        assert_eq!(
            ring_a.jwks(),
            ring_b.jwks(),
            "both instances hold the same key"
        );

        let feed_a = PostgresChangeFeed::start_with(
            db.pool().clone(),
            ChangeFeedOptions::default().with_application_name("authkit-feed-a"),
        )
        .await
        .expect("feed A");
        let feed_b = PostgresChangeFeed::start_with(
            db.pool().clone(),
            ChangeFeedOptions::default()
                .with_application_name(FEED_B)
                .with_max_backoff(Duration::from_millis(200)),
        )
        .await
        .expect("feed B");
        let origin = AppOrigin::parse(ORIGIN).expect("origin");
        let feed_a: Arc<dyn ChangeFeed> = if setup.lose_a_publishes {
            Arc::new(LosingFeed(feed_a))
        } else {
            feed_a
        };
        // With the stores' default feeds, each instance has a store value (and feed) of its own.
        let store_b: Arc<dyn AuthStore> = if setup.default_feeds {
            Arc::new(db.store())
        } else {
            store.clone()
        };
        let mut a = Auth::builder(store.clone(), origin.clone());
        let mut b = Auth::builder(store_b, origin);
        if !setup.default_feeds {
            a = a.change_feed(feed_a);
            b = b.change_feed(feed_b);
        }
        let a = a.api_tokens(ring_a, setup.tokens.clone()).build();
        let b = b.api_tokens(ring_b, setup.tokens).build();
        let tasks = if setup.spawn_tasks {
            vec![a.spawn_background_tasks(), b.spawn_background_tasks()]
        } else {
            Vec::new()
        };

        let user = store
            .create_user(&new_user("dev@example.com"))
            .await
            .expect("user");
        let other = store
            .create_user(&new_user("boss@example.com"))
            .await
            .expect("second owner");
        let org = Organization {
            id: OrgId::new(),
            name: "Acme".to_owned(),
            slug: "acme".to_owned(),
            created_at: user.created_at,
            external_id: None,
            mfa_required: false,
        };
        store
            .create_organization(&org, other.id)
            .await
            .expect("org");
        store
            .add_member(&Membership {
                org_id: org.id,
                user_id: user.id,
                role: Role::OWNER,
                joined_at: user.created_at,
            })
            .await
            .expect("membership");

        let session = a
            .sessions()
            .create(
                user.id,
                SessionMeta {
                    active_org_id: Some(org.id),
                    ..SessionMeta::default()
                },
            )
            .await
            .expect("session");
        let mut cookie = HeaderMap::new();
        cookie.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!(
                "{}={}",
                a.cookies().session_cookie_name(),
                session.token.expose()
            ))
            .expect("cookie header"),
        );
        let signed_in = a.authenticate(&cookie).await;
        let principal = signed_in.principal.expect("the session authenticates");
        let scopes: Vec<String> = scopes.iter().map(|s| (*s).to_owned()).collect();
        let (record, token) = a
            .tokens()
            .expect("tokens are on")
            .issue(&principal, a.roles(), "ci", &scopes, None)
            .await
            .expect("token issued");
        Self {
            db,
            a,
            b,
            tasks,
            user: user.id,
            org: org.id,
            record,
            token: token.expose().to_owned(),
            _keys: keys,
        }
    }

    /// Instance B's answer to a request with the token.
    async fn b_bearer(&self) -> Authentication {
        self.b.authenticate(&bearer(&self.token)).await
    }

    async fn stop(self) {
        for task in &self.tasks {
            task.abort();
        }
        for task in self.tasks {
            let _ = task.await;
        }
        drop((self.a, self.b));
        self.db.teardown().await;
    }
}

/// How a [`Cluster`] is wired.
struct Setup {
    /// A's feed loses every publish (answers `unavailable`, sends nothing).
    lose_a_publishes: bool,
    /// No `change_feed(...)` on the builders: each store's default.
    default_feeds: bool,
    /// Call `spawn_background_tasks` on both instances.
    spawn_tasks: bool,
    /// The token settings of both instances.
    tokens: TokenConfig,
}

impl Default for Setup {
    fn default() -> Self {
        Self {
            lose_a_publishes: false,
            default_feeds: false,
            spawn_tasks: true,
            tokens: TokenConfig::default(),
        }
    }
}

/// A feed that cannot publish (as when its `NOTIFY` fails): everything else is the wrapped
/// feed's.
#[derive(Debug)]
struct LosingFeed(Arc<PostgresChangeFeed>);

#[async_trait::async_trait]
impl ChangeFeed for LosingFeed {
    async fn publish(&self, _change: &Change) -> Result<(), keystead::AuthError> {
        Err(keystead::AuthError::new(ErrorCode::Unavailable))
    }

    fn subscribe(&self) -> tokio::sync::broadcast::Receiver<keystead::tokens::FeedEvent> {
        self.0.subscribe()
    }

    fn is_healthy(&self) -> bool {
        self.0.is_healthy()
    }

    fn unhealthy_since_ms(&self) -> Option<i64> {
        self.0.unhealthy_since_ms()
    }
}

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
        password_hash: None,
    }
}

fn bearer(token: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {token}")).expect("header"),
    );
    headers
}

fn failure_code(auth: &Authentication) -> Option<ErrorCode> {
    auth.failure.as_ref().map(|e| e.code)
}

/// Polls `check` every 5 ms until it holds or `limit` passed; returns how long it took.
async fn within<F, Fut>(limit: Duration, mut check: F) -> Option<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    loop {
        if check().await {
            return Some(started.elapsed());
        }
        if started.elapsed() > limit {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A token revoked through instance A is refused by instance B within the staleness bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_through_one_instance_reaches_the_other() {
    let cluster = Cluster::start(&["read:projects"]).await;
    let before = cluster.b_bearer().await;
    let principal = before.principal.as_ref().unwrap_or_else(|| {
        panic!("B accepts the token: {:?}", before.failure);
    });
    assert_eq!(principal.user.id, cluster.user);
    assert!(principal.has("read:projects"));

    cluster
        .a
        .tokens()
        .expect("tokens")
        .revoke(cluster.record.id, cluster.user)
        .await
        .expect("revoked");
    let staleness = Duration::try_from(TokenConfig::default().staleness).expect("bound");
    let latency = within(staleness, || async {
        failure_code(&cluster.b_bearer().await) == Some(ErrorCode::TokenRevoked)
    })
    .await
    .expect("B refuses the revoked token within the staleness bound");
    eprintln!("revocation seen by the other instance after {latency:?}");
    let after = cluster.b_bearer().await;
    assert!(after.principal.is_none());
    assert_eq!(failure_code(&after), Some(ErrorCode::TokenRevoked));
    cluster.stop().await;
}

/// A role change published through instance A takes the permission away on instance B's next
/// token request (B had the old role cached).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_membership_change_reaches_the_other_instance() {
    let cluster = Cluster::start(&["read:projects", "billing:manage"]).await;
    let before = cluster.b_bearer().await;
    let principal = before.principal.expect("B accepts the token");
    assert!(
        principal.has("billing:manage"),
        "an owner's token may manage billing"
    );

    cluster
        .db
        .store()
        .change_role(cluster.org, cluster.user, &Role::MEMBER)
        .await
        .expect("demoted");
    // Without the feed, B would keep the cached owner role for `membership_ttl` (60 s).
    let cached = cluster.b_bearer().await;
    assert!(
        cached
            .principal
            .expect("still a member")
            .has("billing:manage"),
        "B still has the old role cached before the change is published"
    );
    cluster
        .a
        .publish(Change::MembershipChanged {
            org_id: cluster.org,
            user_id: cluster.user,
        })
        .await;
    let latency = within(Duration::from_secs(1), || async {
        cluster
            .b_bearer()
            .await
            .principal
            .is_some_and(|p| !p.has("billing:manage"))
    })
    .await
    .expect("B sees the demotion within the staleness bound");
    eprintln!("membership change seen by the other instance after {latency:?}");
    let after = cluster.b_bearer().await;
    let principal = after.principal.expect("still a member");
    assert_eq!(principal.role(), Some(&Role::MEMBER));
    assert!(principal.has("read:projects"));
    assert!(!principal.has("billing:manage"));
    cluster.stop().await;
}

/// While instance B's feed cannot listen, its token requests fail closed (503) once the
/// staleness bound passed; when the feed connects again they work, and changes flow again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_fail_closed_while_the_feed_is_down() {
    let cluster = Cluster::start(&["read:projects"]).await;
    assert!(
        cluster.b_bearer().await.principal.is_some(),
        "B accepts the token"
    );
    let pool = cluster.db.pool();
    let allow_connections = |allow: bool| {
        cluster.db.admin_execute(format!(
            "ALTER DATABASE {} ALLOW_CONNECTIONS {allow}",
            cluster.db.name()
        ))
    };

    // Keep the listener from coming back, then end its connection.
    allow_connections(false).await;
    let killed_at = Instant::now();
    let killed: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND application_name = $1 AND query LIKE 'LISTEN%'",
    )
    .bind(FEED_B)
    .fetch_all(pool)
    .await
    .expect("terminate the listener");
    assert_eq!(killed, vec![true], "B's listener had one connection");

    let refused = within(Duration::from_secs(3), || async {
        let answer = cluster.b_bearer().await;
        answer.fatal().is_some() && failure_code(&answer) == Some(ErrorCode::Unavailable)
    })
    .await;
    let Some(refused) = refused else {
        allow_connections(true).await;
        panic!("B kept accepting tokens with its feed down");
    };
    let refused_after = killed_at.elapsed();
    eprintln!(
        "feed down: B refuses tokens (503) {refused_after:?} after the kill (polled {refused:?})"
    );
    assert!(
        refused_after <= Duration::from_secs(2),
        "refused only after {refused_after:?}"
    );
    // A's feed is untouched: A keeps answering.
    assert!(
        cluster
            .a
            .authenticate(&bearer(&cluster.token))
            .await
            .principal
            .is_some(),
        "instance A is unaffected"
    );

    allow_connections(true).await;
    let recovered = within(Duration::from_secs(5), || async {
        cluster.b_bearer().await.principal.is_some()
    })
    .await
    .expect("B accepts tokens again once its feed is back");
    eprintln!("feed back: B accepts tokens {recovered:?} after connections were allowed again");

    // The new listener receives changes.
    cluster
        .a
        .tokens()
        .expect("tokens")
        .revoke(cluster.record.id, cluster.user)
        .await
        .expect("revoked");
    let latency = within(Duration::from_secs(1), || async {
        failure_code(&cluster.b_bearer().await) == Some(ErrorCode::TokenRevoked)
    })
    .await
    .expect("B sees revocations again after the reconnect");
    eprintln!("revocation after the reconnect seen after {latency:?}");
    cluster.stop().await;
}

/// A listener that goes silent without its connection ending (here: its pings stop because
/// the only connection that sends them is gone and cannot come back) makes the feed unhealthy
/// within two ping intervals.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_feed_becomes_unhealthy() {
    use keystead::tokens::ChangeFeed as _;

    let db = TestDb::create().await;
    let feed = PostgresChangeFeed::start_with(
        db.pool().clone(),
        ChangeFeedOptions::default()
            .with_application_name("authkit-feed-silent")
            .with_ping_interval(Duration::from_millis(100)),
    )
    .await
    .expect("feed");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(feed.is_healthy(), "pings keep it healthy");
    assert_eq!(feed.unhealthy_since_ms(), None);

    db.admin_execute(format!(
        "ALTER DATABASE {} ALLOW_CONNECTIONS false",
        db.name()
    ))
    .await;
    // End the pinger's connection only: the listener stays connected but hears nothing.
    let killed: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND application_name = $1 \
         AND query NOT LIKE 'LISTEN%'",
    )
    .bind("authkit-feed-silent")
    .fetch_all(db.pool())
    .await
    .expect("terminate the pinger");
    assert_eq!(killed, vec![true], "one pinger connection");
    let killed_at = Instant::now();
    let unhealthy = within(Duration::from_secs(1), || async { !feed.is_healthy() })
        .await
        .expect("the silent feed turns unhealthy");
    eprintln!("silent feed unhealthy after {:?}", killed_at.elapsed());
    assert!(
        unhealthy <= Duration::from_millis(600),
        "took {unhealthy:?}"
    );
    assert!(feed.unhealthy_since_ms().is_some());

    db.admin_execute(format!(
        "ALTER DATABASE {} ALLOW_CONNECTIONS true",
        db.name()
    ))
    .await;
    within(Duration::from_secs(5), || async { feed.is_healthy() })
        .await
        .expect("healthy again once pings flow");
    drop(feed);
    db.teardown().await;
}

/// A revocation whose publish failed on instance A (its feed lost it) still reaches instance
/// B within the staleness bound: B learns it from the store's change log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_the_feed_could_not_carry_still_reaches_the_other_instance() {
    let cluster = Cluster::start_with(
        &["read:projects"],
        Setup {
            lose_a_publishes: true,
            ..Setup::default()
        },
    )
    .await;
    assert!(
        cluster.b_bearer().await.principal.is_some(),
        "B accepts the token"
    );
    cluster
        .a
        .tokens()
        .expect("tokens")
        .revoke(cluster.record.id, cluster.user)
        .await
        .expect("revoked: the store has it, whatever the feed did");
    let staleness = Duration::try_from(TokenConfig::default().staleness).expect("bound");
    let latency = within(staleness + Duration::from_millis(250), || async {
        failure_code(&cluster.b_bearer().await) == Some(ErrorCode::TokenRevoked)
    })
    .await
    .expect("B refuses the revoked token within the staleness bound, without the feed");
    eprintln!("revocation the feed lost seen by the other instance after {latency:?}");
    cluster.stop().await;
}

/// A key rotation on instance A: B accepts a token of the new key at once (the unknown `kid`
/// makes it reload its keys) and serves the new key in its JWKS within the staleness bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_rotation_on_one_instance_reaches_the_other() {
    let cluster = Cluster::start(&["read:projects"]).await;
    let tokens_a = cluster.a.tokens().expect("tokens");
    let new_kid = tokens_a.keys().rotate().await.expect("rotated");
    let principal = principal_of(&cluster).await;
    let (_, token) = tokens_a
        .issue(
            &principal,
            cluster.a.roles(),
            "after rotation",
            &["read:projects".to_owned()],
            None,
        )
        .await
        .expect("a token of the new key");
    let answer = cluster.b.authenticate(&bearer(token.expose())).await;
    assert!(
        answer.principal.is_some(),
        "B accepts a token of the rotated key: {:?}",
        answer.failure
    );
    let staleness = Duration::try_from(TokenConfig::default().staleness).expect("bound");
    let jwks_has_new_kid = || {
        cluster.b.tokens().expect("tokens").keys().jwks()["keys"]
            .as_array()
            .is_some_and(|keys| keys.iter().any(|k| k["kid"] == new_kid.as_str()))
    };
    within(staleness + Duration::from_millis(250), || async {
        jwks_has_new_kid()
    })
    .await
    .expect("B's JWKS serves the new key within the staleness bound");
    cluster.stop().await;
}

/// A session principal of the cluster's user on instance A, in the organization.
async fn principal_of(cluster: &Cluster) -> keystead::Principal {
    let session = cluster
        .a
        .sessions()
        .create(
            cluster.user,
            SessionMeta {
                active_org_id: Some(cluster.org),
                ..SessionMeta::default()
            },
        )
        .await
        .expect("session");
    let mut cookie = HeaderMap::new();
    cookie.insert(
        header::COOKIE,
        HeaderValue::from_str(&format!(
            "{}={}",
            cluster.a.cookies().session_cookie_name(),
            session.token.expose()
        ))
        .expect("cookie header"),
    );
    cluster
        .a
        .authenticate(&cookie)
        .await
        .principal
        .expect("the session authenticates")
}

/// Builders over a `PostgresStore` without `change_feed(...)` and without
/// `spawn_background_tasks()`: a revocation on A reaches B through the store's own feed, well
/// before the store's change log would be read (the staleness bound is 10 s here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_store_brings_its_own_feed_and_tasks() {
    let mut tokens = TokenConfig::default();
    tokens.staleness = time::Duration::seconds(10);
    let cluster = Cluster::start_with(
        &["read:projects"],
        Setup {
            default_feeds: true,
            spawn_tasks: false,
            tokens,
            ..Setup::default()
        },
    )
    .await;
    assert!(
        cluster.b_bearer().await.principal.is_some(),
        "B accepts the token"
    );
    // Both feeds listen (they connect in the background).
    tokio::time::sleep(Duration::from_millis(500)).await;
    cluster
        .a
        .tokens()
        .expect("tokens")
        .revoke(cluster.record.id, cluster.user)
        .await
        .expect("revoked");
    let latency = within(Duration::from_secs(1), || async {
        failure_code(&cluster.b_bearer().await) == Some(ErrorCode::TokenRevoked)
    })
    .await
    .expect("B refuses the revoked token within a second: the feed carried it");
    eprintln!("revocation through the default feed seen after {latency:?}");
    cluster.stop().await;
}
