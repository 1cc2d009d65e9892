//! The adapter's own behaviour, through a real router, layer and SQLite store: extractors,
//! annotations, protected prefixes, CSRF on the app's routes, cookies. The contract suite
//! (examples/axum-saas/tests/contract.rs) drives a whole app over HTTP.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use keystead::mail::MemoryMailer;
use keystead::rate_limit::{RateLimit, RateLimitConfig};
use keystead::web::AppOrigin;
use keystead::web::ClientIpPolicy;
use keystead::{Auth, AuthBuilder, ManualClock, PasswordConfig};
use keystead_axum::{
    ActiveOrg, AuthExt, CurrentUser, OrgMember, Principal, require_permission, require_recent_auth,
    require_role,
};
use keystead_sqlite::SqliteStore;
use serde_json::Value;
use tower::ServiceExt;

const ORIGIN: &str = "http://app.test";

#[require_permission("billing:manage")]
async fn billing(member: OrgMember) -> String {
    format!("billing of {}", member.org_id)
}

#[require_role(admin)]
#[require_permission("members:read")]
async fn admin_only(user: CurrentUser) -> String {
    format!("admin {}", user.email)
}

// A typo of `admin`, or an app role missing from its RolePermissions: `custom` gets it past
// the compile-time check of the built-in names (without it, this does not compile); at run
// time it must admit no one.
#[require_role("administrator", custom)]
async fn typo_role(user: CurrentUser) -> String {
    format!("typo {}", user.email)
}

/// A handler that sets a cookie of its own.
async fn set_theme(user: CurrentUser) -> impl IntoResponse {
    (
        [(header::SET_COOKIE, "theme=dark; Path=/")],
        format!("theme of {}", user.email),
    )
}

async fn whoami(user: Option<CurrentUser>) -> String {
    user.map_or_else(|| "anonymous".to_owned(), |u| u.email.to_string())
}

async fn principal(p: Principal) -> String {
    format!("{} {}", p.user.email, p.permissions().len())
}

async fn active_org(org: ActiveOrg) -> String {
    format!(
        "{} {} {}",
        org.role,
        org.permissions.len(),
        org.has("billing:manage")
    )
}

async fn maybe_org(org: Option<ActiveOrg>) -> String {
    org.map_or_else(|| "none".to_owned(), |o| o.role.to_string())
}

#[require_recent_auth]
async fn close_account(user: CurrentUser) -> String {
    format!("closing {}", user.email)
}

async fn mutate(user: CurrentUser) -> String {
    format!("changed by {}", user.email)
}

struct TestApp {
    router: Router,
    auth: Auth,
    _dir: tempfile::TempDir,
}

async fn app() -> TestApp {
    app_with(|builder| builder).await
}

async fn app_with(configure: impl FnOnce(AuthBuilder) -> AuthBuilder) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("auth.db")).await.unwrap();
    let builder = Auth::builder(Arc::new(store), AppOrigin::parse(ORIGIN).unwrap())
        .mailer(Arc::new(MemoryMailer::default()))
        .password_hashing(
            PasswordConfig::new()
                .argon2_params(1024, 1, 1)
                .expect("valid cheap params"),
        );
    let auth = configure(builder).build();
    let router = Router::new()
        .route("/api/billing", get(billing))
        .route("/api/admin", get(admin_only))
        .route("/api/typo", get(typo_role))
        .route("/set-theme", get(set_theme))
        .route("/orgs/export", post(mutate))
        .route("/whoami", get(whoami))
        .route("/principal", get(principal))
        .route("/active-org", get(active_org))
        .route("/maybe-org", get(maybe_org))
        .route("/mutate", post(mutate))
        .route("/close-account", get(close_account))
        .route("/dashboard", get(whoami))
        .merge(auth.routes())
        .layer(auth.layer().protect("/dashboard"));
    TestApp {
        router,
        auth,
        _dir: dir,
    }
}

/// The socket peer the tests connect from, as `into_make_service_with_connect_info` gives it.
fn with_peer(mut request: Request<Body>, peer: &str) -> Request<Body> {
    let addr: std::net::SocketAddr = peer.parse().unwrap();
    request.extensions_mut().insert(ConnectInfo(addr));
    request
}

impl TestApp {
    async fn send(&self, request: Request<Body>) -> (StatusCode, http::HeaderMap, Vec<u8>) {
        let request = if request
            .extensions()
            .get::<ConnectInfo<std::net::SocketAddr>>()
            .is_some()
        {
            request
        } else {
            with_peer(request, "127.0.0.1:40000")
        };
        self.send_raw(request).await
    }

    /// Sends `request` as it is, without a socket peer unless it has one.
    async fn send_raw(&self, request: Request<Body>) -> (StatusCode, http::HeaderMap, Vec<u8>) {
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, headers, body.to_vec())
    }

    /// Signs up and returns the `Cookie` header value of the new session.
    async fn sign_up(&self, email: &str) -> String {
        let (status, headers, _) = self
            .send(
                Request::post("/auth/sign-up")
                    .header(header::CONTENT_TYPE, "application/json")
                    .header(header::ORIGIN, ORIGIN)
                    .body(Body::from(format!(
                        r#"{{"email":"{email}","password":"a long enough passphrase"}}"#
                    )))
                    .unwrap(),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
        let set_cookie = headers[header::SET_COOKIE].to_str().unwrap();
        set_cookie.split(';').next().unwrap().to_owned()
    }

    async fn create_org(&self, cookie: &str) {
        let (status, _, _) = self
            .send(
                Request::post("/orgs")
                    .header(header::CONTENT_TYPE, "application/json")
                    .header(header::ORIGIN, ORIGIN)
                    .header(header::COOKIE, cookie)
                    .body(Body::from(r#"{"name":"Acme"}"#))
                    .unwrap(),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
    }

    async fn get(
        &self,
        path: &str,
        cookie: Option<&str>,
    ) -> (StatusCode, http::HeaderMap, Vec<u8>) {
        let mut request = Request::get(path);
        if let Some(cookie) = cookie {
            request = request.header(header::COOKIE, cookie);
        }
        self.send(request.body(Body::empty()).unwrap()).await
    }
}

fn code(body: &[u8]) -> String {
    let value: Value = serde_json::from_slice(body).expect("a problem+json body");
    value["code"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn annotations_answer_401_then_403_never_404() {
    let app = app().await;
    let (status, headers, body) = app.get("/api/billing", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(headers[header::WWW_AUTHENTICATE], "Bearer");
    assert_eq!(headers[header::CONTENT_TYPE], "application/problem+json");
    assert_eq!(code(&body), "unauthenticated");

    let cookie = app.sign_up("no-org@example.com").await;
    let (status, _, body) = app.get("/api/billing", Some(&cookie)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(code(&body), "forbidden");

    app.create_org(&cookie).await;
    let (status, _, body) = app.get("/api/billing", Some(&cookie)).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).starts_with("billing of "));
}

/// `#[require_recent_auth]`: a fresh session passes; ten minutes and a second later (the
/// configured clock) the route answers 403 `reauthentication_required` until the user
/// re-authenticates.
#[tokio::test]
async fn the_step_up_annotation_follows_the_sessions_authentication_time() {
    let clock = Arc::new(ManualClock::starting_now());
    let app = app_with(|builder| builder.clock(clock.clone())).await;
    let (status, _, _) = app.get("/close-account", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let cookie = app.sign_up("leaving@example.com").await;
    let (status, _, body) = app.get("/close-account", Some(&cookie)).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    clock.advance(keystead::time::Duration::minutes(10) + keystead::time::Duration::seconds(1));
    let (status, _, body) = app.get("/close-account", Some(&cookie)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(code(&body), "reauthentication_required");
    let (status, _, _) = app
        .send(
            Request::post("/auth/reauthenticate")
                .header(header::CONTENT_TYPE, "application/json")
                .header(header::ORIGIN, ORIGIN)
                .header(header::COOKIE, &cookie)
                .body(Body::from(r#"{"password":"a long enough passphrase"}"#))
                .unwrap(),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = app.get("/close-account", Some(&cookie)).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn stacked_annotations_all_run() {
    let app = app().await;
    let cookie = app.sign_up("owner@example.com").await;
    let (status, _, _) = app.get("/api/admin", Some(&cookie)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "no org: no role");
    app.create_org(&cookie).await;
    // An owner grants at least what an admin does.
    let (status, _, body) = app.get("/api/admin", Some(&cookie)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(String::from_utf8_lossy(&body), "admin owner@example.com");
}

#[tokio::test]
async fn optional_user_and_principal_extractors() {
    let app = app().await;
    let (status, _, body) = app.get("/whoami", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, b"anonymous");
    let cookie = app.sign_up("who@example.com").await;
    let (_, _, body) = app.get("/whoami", Some(&cookie)).await;
    assert_eq!(body, b"who@example.com");
    let (_, _, body) = app.get("/principal", Some(&cookie)).await;
    assert_eq!(body, b"who@example.com 0");
    app.create_org(&cookie).await;
    let (_, _, body) = app.get("/principal", Some(&cookie)).await;
    assert_eq!(
        body, b"who@example.com 11",
        "an owner has the 11 permissions of the contract"
    );
    // A dead cookie is anonymous for optional extractors, and the response clears it.
    let forged = "authkit_session=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    let (status, headers, body) = app.get("/whoami", Some(forged)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, b"anonymous");
    assert!(
        headers[header::SET_COOKIE]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
}

#[tokio::test]
async fn protected_prefix_redirects_browsers_and_refuses_api_clients() {
    let app = app().await;
    let (status, headers, _) = app
        .send(
            Request::get("/dashboard?tab=1")
                .header(header::ACCEPT, "text/html,application/xhtml+xml")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(
        headers[header::LOCATION],
        "/sign-in?next=%2Fdashboard%3Ftab%3D1"
    );
    let (status, headers, body) = app.get("/dashboard", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(headers[header::WWW_AUTHENTICATE], "Bearer");
    assert_eq!(code(&body), "unauthenticated");
    let cookie = app.sign_up("dash@example.com").await;
    let (status, _, _) = app.get("/dashboard", Some(&cookie)).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn app_routes_get_the_csrf_check_with_a_session_cookie() {
    let app = app().await;
    let cookie = app.sign_up("csrf@example.com").await;
    let post = |origin: Option<&str>| {
        let mut request = Request::post("/mutate").header(header::COOKIE, cookie.clone());
        if let Some(origin) = origin {
            request = request.header(header::ORIGIN, origin);
        }
        request.body(Body::empty()).unwrap()
    };
    let (status, _, body) = app.send(post(Some("https://evil.example"))).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(code(&body), "csrf_rejected");
    let (status, _, body) = app.send(post(None)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(code(&body), "csrf_rejected");
    let (status, _, body) = app.send(post(Some(ORIGIN))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, b"changed by csrf@example.com");
}

#[tokio::test]
async fn extractors_without_the_layer_fail_loudly_not_open() {
    let router: Router = Router::new().route("/whoami", get(whoami));
    let response = router
        .oneshot(Request::get("/whoami").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
}

#[tokio::test]
async fn active_org_needs_an_active_organization_and_is_optional() {
    let app = app().await;
    let (status, _, body) = app.get("/active-org", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(code(&body), "unauthenticated");
    let (status, _, body) = app.get("/maybe-org", None).await;
    assert_eq!((status, body.as_slice()), (StatusCode::OK, &b"none"[..]));

    let cookie = app.sign_up("member@example.com").await;
    let (status, _, body) = app.get("/active-org", Some(&cookie)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(code(&body), "forbidden");
    let (_, _, body) = app.get("/maybe-org", Some(&cookie)).await;
    assert_eq!(body, b"none");

    app.create_org(&cookie).await;
    let (status, _, body) = app.get("/active-org", Some(&cookie)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, b"owner 11 true");
    let (_, _, body) = app.get("/maybe-org", Some(&cookie)).await;
    assert_eq!(body, b"owner");
}

#[tokio::test]
async fn an_unknown_role_admits_no_one_and_the_start_up_check_names_it() {
    let app = app().await;
    let cookie = app.sign_up("typo-owner@example.com").await;
    app.create_org(&cookie).await;
    let (status, _, body) = app.get("/api/typo", Some(&cookie)).await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "an owner passed a check on an unknown role: {}",
        String::from_utf8_lossy(&body)
    );
    assert_eq!(code(&body), "forbidden");
    // The check an app runs at start-up over the roles its routes name.
    let err = app
        .auth
        .check_roles(["admin", "administrator"])
        .expect_err("an unknown role is reported");
    assert!(err.to_string().contains("administrator"), "{err}");
    assert!(app.auth.check_roles(["owner", "admin", "member"]).is_ok());
}

#[tokio::test]
async fn without_connect_info_the_layer_refuses_loudly_with_how_to_serve() {
    let app = app().await;
    let (status, _, body) = app
        .send_raw(Request::get("/whoami").body(Body::empty()).unwrap())
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let value: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(value["code"], "unavailable");
    assert!(
        value["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("into_make_service_with_connect_info"),
        "{value}"
    );
}

#[tokio::test]
async fn a_cookie_set_by_the_app_keeps_the_sliding_refresh() {
    let clock = Arc::new(ManualClock::new(time::OffsetDateTime::now_utc()));
    let app = app_with(|builder| builder.clock(clock.clone())).await;
    let cookie = app.sign_up("theme@example.com").await;
    // Past half the 30-day sliding lifetime: the next request moves the expiry.
    clock.advance(time::Duration::days(16));
    let (status, headers, _) = app.get("/set-theme", Some(&cookie)).await;
    assert_eq!(status, StatusCode::OK);
    let cookies: Vec<&str> = headers
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert!(
        cookies.iter().any(|c| c.starts_with("theme=")),
        "{cookies:?}"
    );
    assert!(
        cookies.iter().any(|c| c.starts_with("authkit_session=")),
        "the session refresh was dropped: {cookies:?}"
    );
}

#[tokio::test]
async fn app_routes_under_a_library_prefix_get_the_csrf_check() {
    let app = app().await;
    let cookie = app.sign_up("export@example.com").await;
    let post = |origin: &str| {
        Request::post("/orgs/export")
            .header(header::COOKIE, cookie.clone())
            .header(header::ORIGIN, origin)
            .body(Body::empty())
            .unwrap()
    };
    let (status, _, body) = app.send(post("https://evil.example")).await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "{}",
        String::from_utf8_lossy(&body)
    );
    assert_eq!(code(&body), "csrf_rejected");
    let (status, _, body) = app.send(post(ORIGIN)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, b"changed by export@example.com");
}

#[tokio::test]
async fn a_percent_encoded_protected_path_is_still_protected() {
    let app = app().await;
    let (status, _, _) = app.get("/%64ashboard", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _, _) = app.get("/dashboard%2Fx", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_rate_limit_keys_on_the_address_the_trusted_proxy_appended() {
    let app = app_with(|builder| {
        builder
            .trusted_proxies(ClientIpPolicy::from_config("127.0.0.1").unwrap())
            .rate_limits({
                let mut limits = RateLimitConfig::default();
                limits.sign_in_per_address = RateLimit::new(3, time::Duration::minutes(15));
                limits
            })
    })
    .await;
    let sign_in = |i: usize, forged: &str| {
        let mut request = Request::post("/auth/sign-in")
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::ORIGIN, ORIGIN)
            // The client's own line, then the line our proxy appended.
            .header("x-forwarded-for", forged)
            .header("x-forwarded-for", "203.0.113.7");
        if i % 2 == 1 {
            request = request.header("forwarded", format!("for=\"{forged}\""));
        }
        request
            .body(Body::from(format!(
                r#"{{"email":"nobody{i}@example.com","password":"wrong password"}}"#
            )))
            .unwrap()
    };
    for i in 0..3 {
        let (status, _, _) = app.send(sign_in(i, &format!("6.6.6.{i}"))).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let (status, headers, body) = app.send(sign_in(3, "6.6.6.99")).await;
    assert_eq!(
        status,
        StatusCode::TOO_MANY_REQUESTS,
        "the forged first line chose the key: {}",
        String::from_utf8_lossy(&body)
    );
    assert!(headers.contains_key(header::RETRY_AFTER));
    // Another client behind the same proxy has its own budget.
    let (status, _, _) = app
        .send(
            Request::post("/auth/sign-in")
                .header(header::CONTENT_TYPE, "application/json")
                .header("x-forwarded-for", "203.0.113.8")
                .body(Body::from(
                    r#"{"email":"other@example.com","password":"wrong password"}"#,
                ))
                .unwrap(),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}
