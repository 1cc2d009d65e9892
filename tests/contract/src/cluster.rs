//! Several instances: three processes of one example app on one Postgres database and one key
//! directory, behind a round-robin load balancer written here (each request goes to the next
//! instance, with `X-Forwarded-For` set to the client's address, which the instances trust).
//!
//! An example app runs the case from `tests/cluster.rs`:
//!
//! ```no_run
//! #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
//! async fn three_instances_behind_a_load_balancer() {
//!     contract_suite::cluster::three_instances(env!("CARGO_BIN_EXE_axum-saas")).await;
//! }
//! # fn main() {}
//! ```

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderName, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::faults::{STALENESS_BOUND, create_token};
use crate::flows::{self, PASSWORD};
use crate::{AppUnderTest, Client, SessionCookie, StoreKind, token_from};

/// Headers of one hop that a proxy does not pass on (RFC 9110, 7.6.1), and the length, which
/// the next hop sets again.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
];

fn passed_on(name: &HeaderName) -> bool {
    !HOP_BY_HOP.contains(&name.as_str())
}

/// How much later than the staleness bound a change may be seen on a busy two-core machine
/// (scheduling, the poll's own interval).
const SLACK: Duration = Duration::from_secs(1);

/// A round-robin HTTP load balancer: every request goes to the next upstream, with
/// `X-Forwarded-For` set to the client's address.
#[derive(Debug)]
pub struct Balancer {
    state: Arc<BalancerState>,
    task: JoinHandle<()>,
}

#[derive(Debug)]
struct BalancerState {
    upstreams: Vec<String>,
    next: AtomicUsize,
    served: Vec<AtomicUsize>,
    http: reqwest::Client,
}

impl Balancer {
    /// Serves `listener`, sending each request to the next of `upstreams` (`http://ADDR`).
    ///
    /// # Panics
    /// When the HTTP client cannot be built.
    #[must_use]
    pub fn start(listener: tokio::net::TcpListener, upstreams: Vec<String>) -> Self {
        let state = Arc::new(BalancerState {
            served: upstreams.iter().map(|_| AtomicUsize::new(0)).collect(),
            upstreams,
            next: AtomicUsize::new(0),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(Duration::from_secs(30))
                .build()
                .expect("an HTTP client"),
        });
        let app = axum::Router::new()
            .fallback(forward)
            .with_state(state.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await;
        });
        Self { state, task }
    }

    /// How many requests each upstream was sent.
    #[must_use]
    pub fn served(&self) -> Vec<usize> {
        self.state
            .served
            .iter()
            .map(|n| n.load(Ordering::Relaxed))
            .collect()
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn forward(
    State(state): State<Arc<BalancerState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    let index = state.next.fetch_add(1, Ordering::Relaxed) % state.upstreams.len();
    state.served[index].fetch_add(1, Ordering::Relaxed);
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, 1 << 20).await else {
        return StatusCode::PAYLOAD_TOO_LARGE.into_response();
    };
    let target = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut upstream = state
        .http
        .request(parts.method, format!("{}{target}", state.upstreams[index]))
        .body(body);
    for (name, value) in &parts.headers {
        if passed_on(name) && name != "x-forwarded-for" {
            upstream = upstream.header(name, value);
        }
    }
    upstream = upstream.header("x-forwarded-for", peer.ip().to_string());
    let answer = match upstream.send().await {
        Ok(answer) => answer,
        Err(e) => return (StatusCode::BAD_GATEWAY, format!("{e:?}")).into_response(),
    };
    let mut response = Response::builder().status(answer.status().as_u16());
    for (name, value) in answer.headers() {
        if passed_on(name) {
            response = response.header(name, value);
        }
    }
    match answer.bytes().await {
        Ok(bytes) => response
            .body(Body::from(bytes))
            .unwrap_or_else(|e| (StatusCode::BAD_GATEWAY, e.to_string()).into_response()),
        Err(e) => (StatusCode::BAD_GATEWAY, format!("{e:?}")).into_response(),
    }
}

/// Rotates the signing keys of the app whose store is `database_url` and whose key directory
/// is `keys_dir`, as `authctl keys rotate` does: a new key in the key store, the change
/// recorded in the change log and published. The new key's id.
///
/// # Panics
/// When the store or the keys cannot be opened, or the rotation fails.
pub async fn rotate_keys(database_url: &str, keys_dir: &Path, origin: &str) -> String {
    use keystead::tokens::{DirKeyStore, KeyAlgorithm, KeyRing, TokenConfig};
    let store = keystead_postgres::PostgresStore::connect(database_url)
        .await
        .expect("the app's store");
    let keys = KeyRing::load_or_create(
        Arc::new(DirKeyStore::new(keys_dir).expect("the app's key directory")),
        Arc::new(keystead::SystemClock),
        KeyAlgorithm::EdDSA,
        TokenConfig::default().max_ttl,
    )
    .await
    .expect("the app's keys");
    let origin = keystead::web::AppOrigin::parse(origin).expect("the app's origin");
    let auth = keystead::Auth::builder(Arc::new(store), origin)
        .api_tokens(keys, TokenConfig::default())
        .build();
    auth.admin("cluster test")
        .rotate_keys()
        .await
        .expect("the rotation")
}

/// Polls `check` on each instance until it holds on all of them (or `limit` passes); how long
/// each took, `None` for one that never did.
async fn time_until_all<F>(
    instances: &[&AppUnderTest],
    limit: Duration,
    check: F,
) -> Vec<Option<Duration>>
where
    F: AsyncFn(&AppUnderTest) -> bool,
{
    let start = Instant::now();
    let mut took = vec![None; instances.len()];
    while took.iter().any(Option::is_none) && start.elapsed() < limit {
        for (i, instance) in instances.iter().enumerate() {
            if took[i].is_none() && check(instance).await {
                took[i] = Some(start.elapsed());
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    took
}

fn show(took: &[Option<Duration>]) -> String {
    took.iter()
        .map(|t| t.map_or_else(|| "never".to_owned(), |t| format!("{} ms", t.as_millis())))
        .collect::<Vec<_>>()
        .join(", ")
}

#[track_caller]
fn assert_within(what: &str, took: &[Option<Duration>]) {
    let limit = STALENESS_BOUND + SLACK;
    assert!(
        took.iter().all(|t| t.is_some_and(|t| t <= limit)),
        "{what}: seen after {} on the instances, not all within {} ms",
        show(took),
        limit.as_millis()
    );
}

/// The `kid`s of an instance's `GET /.well-known/jwks.json`.
async fn kids(instance: &AppUnderTest) -> Vec<String> {
    let jwks = instance
        .client()
        .get("/.well-known/jwks.json")
        .send()
        .await
        .json_with(200);
    jwks["keys"]
        .as_array()
        .expect("a key list")
        .iter()
        .filter_map(|k| k["kid"].as_str().map(str::to_owned))
        .collect()
}

/// The `kid` in an `sk_live_` token's header.
fn token_kid(token: &str) -> String {
    use base64::Engine as _;
    let header = token
        .strip_prefix("sk_live_")
        .and_then(|jws| jws.split('.').next())
        .expect("a compact JWS");
    let header: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(header)
            .expect("base64url"),
    )
    .expect("a JSON header");
    header["kid"].as_str().expect("a kid").to_owned()
}

async fn bearer(instance: &AppUnderTest, token: &str) -> u16 {
    instance
        .client()
        .get("/api/projects")
        .bearer(token)
        .send()
        .await
        .status
}

async fn cookie_on(instance: &AppUnderTest, path: &str, cookie: &SessionCookie) -> u16 {
    instance.client().get_with(path, cookie).await.status
}

/// Three instances of `bin` on one Postgres database behind a [`Balancer`]:
/// - a session made through the balancer works on every instance, and requests that move
///   between instances keep it;
/// - the failed sign-in limit of one address (10) and the token creation limit of one user (20)
///   allow exactly their quota across the three, under concurrent attempts;
/// - a sign-out and a token revocation on one instance are honoured by the others within the
///   staleness bound;
/// - a member removed from an organization on one instance loses access, with the session and
///   with their API token, on every instance within the bound;
/// - a key rotation (as by `authctl keys rotate`) reaches every instance's JWKS within the
///   bound, a new key's token works on every instance at once, and old tokens keep working.
///
/// Prints what it measured.
///
/// # Panics
/// When a rule is broken.
pub async fn three_instances(bin: &str) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port for the balancer");
    let origin = format!("http://{}", listener.local_addr().expect("its address"));
    let env = [
        ("APP_ORIGIN", origin.as_str()),
        ("TRUSTED_PROXIES", "127.0.0.1"),
        ("TRUSTED_PROXY_HEADER", "x-forwarded-for"),
    ];
    let a = AppUnderTest::start_with(bin, StoreKind::Postgres, &env).await;
    let mail_dir = a.mail_dir().display().to_string();
    let mut joined_env = env.to_vec();
    joined_env.push(("AUTH_MAIL_DIR", mail_dir.as_str()));
    let b = a.join_with(&joined_env).await;
    let c = a.join_with(&joined_env).await;
    let all = [&a, &b, &c];
    let balancer = Balancer::start(
        listener,
        all.iter().map(|i| i.base_url().to_owned()).collect(),
    );
    let front = Client::new(origin.clone());

    // Sessions move freely: made through the balancer, used on each instance in turn.
    let reply = front
        .post_json(
            "/auth/sign-up",
            &json!({"email": "owner@example.com", "password": PASSWORD}),
        )
        .await;
    let reply = reply.expect(201);
    let owner = reply.session_cookie();
    // Every instance caches the session (with no organization) ...
    for instance in all {
        let session = instance
            .client()
            .get_with("/auth/session", &owner)
            .await
            .json_with(200);
        assert!(session["org"].is_null(), "{session}");
    }
    // ... and sees the organization made through the balancer become its active one.
    let org = front
        .post_json_with("/orgs", &json!({"name": "Acme"}), &owner)
        .await
        .json_with(201);
    let org_id = org["id"].as_str().expect("an org id").to_owned();
    let active_org = time_until_all(&all, Duration::from_secs(5), async |i| {
        let session = i
            .client()
            .get_with("/auth/session", &owner)
            .await
            .json_with(200);
        session["org"]["id"] == org_id.as_str()
    })
    .await;
    for _ in 0..9 {
        let session = front.get_with("/auth/session", &owner).await.json_with(200);
        assert_eq!(session["org"]["id"], org_id.as_str(), "{session}");
    }
    for instance in all {
        assert_eq!(cookie_on(instance, "/auth/session", &owner).await, 200);
    }

    // Rate limits hold exactly across the instances: 24 failed sign-ins at once for one
    // address (10 allowed), 26 token creations at once by one user (20 allowed).
    let attempts = (0..24).map(|_| {
        let front = front.clone();
        async move {
            front
                .post_json(
                    "/auth/sign-in",
                    &json!({"email": "target@example.com", "password": "not the password"}),
                )
                .await
                .status
        }
    });
    let sign_ins = all_at_once(attempts).await;
    let creations = (0..26).map(|i| {
        let (front, owner) = (front.clone(), owner.clone());
        async move {
            front
                .post_json_with(
                    "/api/tokens",
                    &json!({"name": format!("burst {i}"), "scopes": ["read:projects"]}),
                    &owner,
                )
                .await
                .status
        }
    });
    let token_creations = all_at_once(creations).await;
    let count = |statuses: &[u16], status: u16| statuses.iter().filter(|s| **s == status).count();
    crate::figures!(
        "three instances ({bin}): failed sign-ins for one address: {} × 401, {} × 429 of {}; \
         token creations by one user: {} × 201, {} × 429 of {}",
        count(&sign_ins, 401),
        count(&sign_ins, 429),
        sign_ins.len(),
        count(&token_creations, 201),
        count(&token_creations, 429),
        token_creations.len()
    );
    assert_eq!(
        (count(&sign_ins, 401), count(&sign_ins, 429)),
        (10, 14),
        "exactly 10 failed sign-ins per address pass, across the instances: {sign_ins:?}"
    );
    assert_eq!(
        (count(&token_creations, 201), count(&token_creations, 429)),
        (20, 6),
        "exactly 20 tokens per user and hour, across the instances: {token_creations:?}"
    );

    // A sign-out on one instance is honoured by the others.
    let (_, second) = flows::sign_in(&a, "owner@example.com", PASSWORD).await;
    for instance in all {
        assert_eq!(cookie_on(instance, "/auth/session", &second).await, 200);
    }
    a.client()
        .post_with("/auth/sign-out", &second)
        .await
        .expect(204);
    let sign_out = time_until_all(&[&b, &c], Duration::from_secs(5), async |i| {
        cookie_on(i, "/auth/session", &second).await == 401
    })
    .await;

    // A member with a session and a token, removed on one instance.
    let member = join_org(&a, &org_id, &owner, "member@example.com").await;
    let member_token = create_token(a.client(), &member.cookie, "member's").await;
    let members_path = format!("/orgs/{org_id}/members");
    for instance in all {
        assert_eq!(
            cookie_on(instance, &members_path, &member.cookie).await,
            200
        );
        assert_eq!(bearer(instance, &member_token.token).await, 200);
    }

    // A token revoked on one instance (the member's: the owner spent the hour's quota).
    let revocable = create_token(a.client(), &member.cookie, "revocable").await;
    for instance in all {
        assert_eq!(bearer(instance, &revocable.token).await, 200);
    }
    b.client()
        .delete_with(&format!("/api/tokens/{}", revocable.id), &member.cookie)
        .await
        .expect(204);
    let revocation = time_until_all(&[&a, &c], Duration::from_secs(5), async |i| {
        bearer(i, &revocable.token).await == 401
    })
    .await;

    // A key rotation, made outside the instances (as `authctl keys rotate` does).
    let before = kids(&a).await;
    let old_token = create_token(a.client(), &member.cookie, "before the rotation").await;
    let kid = rotate_keys(a.database_url(), &a.keys_dir(), &origin).await;
    assert!(!before.contains(&kid), "a new kid");
    let rotation = time_until_all(&all, Duration::from_secs(5), async |i| {
        kids(i).await.contains(&kid)
    })
    .await;
    let new_token = create_token(c.client(), &member.cookie, "after the rotation").await;
    assert_eq!(token_kid(&new_token.token), kid, "the new key signs");
    for instance in all {
        assert_eq!(bearer(instance, &new_token.token).await, 200);
        assert_eq!(bearer(instance, &old_token.token).await, 200);
    }

    // The member removed on the third instance.
    c.client()
        .delete_with(&format!("/orgs/{org_id}/members/{}", member.id()), &owner)
        .await
        .expect(204);
    let removal_session = time_until_all(&all, Duration::from_secs(5), async |i| {
        cookie_on(i, &members_path, &member.cookie).await == 403
    })
    .await;
    let removal_token = time_until_all(&all, Duration::from_secs(5), async |i| {
        bearer(i, &member_token.token).await == 401
    })
    .await;
    let removal_new_token = time_until_all(&all, Duration::from_secs(5), async |i| {
        bearer(i, &new_token.token).await == 401
    })
    .await;

    crate::figures!(
        "  seen on the instances after: a new active organization {}; sign-out {}; token revocation {}; key rotation \
         (JWKS of all three) {}; removal from the organization: session {}, token {}, the \
         token signed by the new key {}; requests per instance through the balancer {:?}",
        show(&active_org),
        show(&sign_out),
        show(&revocation),
        show(&rotation),
        show(&removal_session),
        show(&removal_token),
        show(&removal_new_token),
        balancer.served()
    );
    assert_within("a new active organization", &active_org);
    assert_within("a sign-out", &sign_out);
    assert_within("a token revocation", &revocation);
    assert_within("a key rotation", &rotation);
    assert_within("a removal (session)", &removal_session);
    assert_within("a removal (token)", &removal_token);
    assert_within("a removal (new key's token)", &removal_new_token);
    // The removal holds: nothing comes back.
    for instance in all {
        assert_eq!(
            cookie_on(instance, &members_path, &member.cookie).await,
            403
        );
        assert_eq!(bearer(instance, &member_token.token).await, 401);
    }
    assert!(
        balancer.served().iter().all(|n| *n >= 20),
        "the balancer spread the requests: {:?}",
        balancer.served()
    );

    drop(balancer);
    c.finish().await;
    b.finish().await;
    a.finish().await;
}

/// Invites `email` into `org` (by `inviter`, on `app`), signs them up, verifies the address,
/// accepts the invitation and makes `org` their active organization.
async fn join_org(
    app: &AppUnderTest,
    org: &str,
    inviter: &SessionCookie,
    email: &str,
) -> flows::Account {
    app.client()
        .post_json_with(
            &format!("/orgs/{org}/invitations"),
            &json!({"email": email, "role": "member"}),
            inviter,
        )
        .await
        .expect(201);
    let mut account = flows::sign_up(app, email).await;
    flows::verify_email(app, &account).await;
    let mail = app
        .latest_mail_matching(email, |mail| {
            mail.action_url.as_deref().is_some_and(|url| {
                !url.contains("/auth/verify-email?") && !url.contains("/reset-password?")
            })
        })
        .await;
    let reply = app
        .client()
        .post_json_with(
            "/invitations/accept",
            &json!({"token": token_from(mail.action_url())}),
            &account.cookie,
        )
        .await
        .expect(200);
    account.cookie = reply.session_cookie();
    let reply = app
        .client()
        .post_json_with("/auth/active-org", &json!({"org_id": org}), &account.cookie)
        .await
        .expect(200);
    account.cookie = reply.session_cookie();
    account
}

/// Runs every future at once and gives their outputs in order.
async fn all_at_once<F>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let tasks: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
    let mut outputs = Vec::with_capacity(tasks.len());
    for task in tasks {
        outputs.push(task.await.expect("a concurrent request"));
    }
    outputs
}
