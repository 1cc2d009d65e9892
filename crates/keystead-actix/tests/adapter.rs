//! The adapter's own behaviour, through a real actix app, middleware and SQLite store:
//! extractors, annotations, guards, protected prefixes, CSRF on the app's routes, cookies,
//! bodies. The contract suite (examples/actix-saas/tests/contract.rs) drives a whole app over
//! HTTP.

use std::sync::Arc;

use actix_web::http::{StatusCode, header};
use actix_web::test::{self, TestRequest};
use actix_web::{App, HttpRequest, HttpResponse, web};
use keystead::mail::MemoryMailer;
use keystead::rate_limit::{RateLimit, RateLimitConfig};
use keystead::web::AppOrigin;
use keystead::web::ClientIpPolicy;
use keystead::{Auth, AuthBuilder, ManualClock, PasswordConfig, Role};
use keystead_actix::{
    ActiveOrg, AuthExt, AuthRejection, CurrentUser, OrgMember, Principal, guard, read_json,
    require_permission, require_recent_auth, require_role,
};
use keystead_sqlite::SqliteStore;
use serde_json::Value;

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
async fn set_theme(user: CurrentUser) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::SET_COOKIE, "theme=dark; Path=/"))
        .body(format!("theme of {}", user.email))
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

async fn echo(request: HttpRequest, body: web::Payload) -> Result<HttpResponse, AuthRejection> {
    let value: Value = read_json(&request, body).await?;
    Ok(HttpResponse::Ok().json(value))
}

struct TestApp {
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
    TestApp { auth, _dir: dir }
}

struct Reply {
    status: StatusCode,
    headers: header::HeaderMap,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: header::HeaderName) -> &str {
        self.headers
            .get(name)
            .expect("the header")
            .to_str()
            .unwrap()
    }

    fn code(&self) -> String {
        let value: Value = serde_json::from_slice(&self.body).expect("a problem+json body");
        value["code"].as_str().unwrap().to_owned()
    }
}

impl TestApp {
    /// One request through the whole app. The app is built anew each time (its state is the
    /// store's), which keeps its type out of the test's.
    async fn send(&self, request: TestRequest) -> Reply {
        self.send_raw(request.peer_addr("127.0.0.1:40000".parse().unwrap()))
            .await
    }

    /// Sends `request` as it is, without a peer address unless it has one.
    async fn send_raw(&self, request: TestRequest) -> Reply {
        let auth = &self.auth;
        let app = test::init_service(
            App::new()
                .wrap(auth.middleware().protect("/dashboard"))
                // An app route under a library prefix, registered before the library's routes
                // (actix tries services in order).
                .route("/orgs/export", web::post().to(mutate))
                .service(auth.service())
                .route("/api/billing", web::get().to(billing))
                .route("/api/admin", web::get().to(admin_only))
                .route("/api/typo", web::get().to(typo_role))
                .route("/set-theme", web::get().to(set_theme))
                .service(
                    web::resource("/typo-guard")
                        .route(
                            web::get()
                                .guard(guard::role(Role::new("administrator").unwrap()))
                                .to(|| async { "typo guard" }),
                        )
                        .route(web::get().to(|| async { "fallback" })),
                )
                .route("/whoami", web::get().to(whoami))
                .route("/principal", web::get().to(principal))
                .route("/active-org", web::get().to(active_org))
                .route("/maybe-org", web::get().to(maybe_org))
                .route("/mutate", web::post().to(mutate))
                .route("/close-account", web::get().to(close_account))
                .route("/echo", web::post().to(echo))
                .route("/dashboard", web::get().to(whoami))
                .service(
                    web::resource("/plan")
                        .route(
                            web::get()
                                .guard(guard::permission("billing:manage"))
                                .to(|| async { "manage" }),
                        )
                        .route(web::get().guard(guard::signed_in()).to(|| async { "view" })),
                ),
        )
        .await;
        let request = request.to_request();
        let response = test::call_service(&app, request).await;
        let status = response.status();
        let headers = response.headers().clone();
        let body = test::read_body(response).await.to_vec();
        Reply {
            status,
            headers,
            body,
        }
    }

    /// Signs up and returns the `Cookie` header value of the new session.
    async fn sign_up(&self, email: &str) -> String {
        let reply = self
            .send(
                TestRequest::post()
                    .uri("/auth/sign-up")
                    .insert_header((header::CONTENT_TYPE, "application/json"))
                    .insert_header((header::ORIGIN, ORIGIN))
                    .set_payload(format!(
                        r#"{{"email":"{email}","password":"a long enough passphrase"}}"#
                    )),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED);
        let set_cookie = reply.header(header::SET_COOKIE);
        set_cookie.split(';').next().unwrap().to_owned()
    }

    async fn create_org(&self, cookie: &str) {
        let reply = self
            .send(
                TestRequest::post()
                    .uri("/orgs")
                    .insert_header((header::CONTENT_TYPE, "application/json"))
                    .insert_header((header::ORIGIN, ORIGIN))
                    .insert_header((header::COOKIE, cookie))
                    .set_payload(r#"{"name":"Acme"}"#),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED);
    }

    async fn get(&self, path: &str, cookie: Option<&str>) -> Reply {
        let mut request = TestRequest::get().uri(path);
        if let Some(cookie) = cookie {
            request = request.insert_header((header::COOKIE, cookie));
        }
        self.send(request).await
    }
}

#[actix_web::test]
async fn annotations_answer_401_then_403_never_404() {
    let app = app().await;
    let reply = app.get("/api/billing", None).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.header(header::WWW_AUTHENTICATE), "Bearer");
    assert_eq!(
        reply.header(header::CONTENT_TYPE),
        "application/problem+json"
    );
    assert_eq!(reply.code(), "unauthenticated");

    let cookie = app.sign_up("no-org@example.com").await;
    let reply = app.get("/api/billing", Some(&cookie)).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert_eq!(reply.code(), "forbidden");

    app.create_org(&cookie).await;
    let reply = app.get("/api/billing", Some(&cookie)).await;
    let body = String::from_utf8_lossy(&reply.body);
    assert_eq!(reply.status, StatusCode::OK, "{body}");
    assert!(body.starts_with("billing of "));
}

/// `#[require_recent_auth]`: a fresh session passes; ten minutes and a second later (the
/// configured clock) the route answers 403 `reauthentication_required` until the user
/// re-authenticates.
#[actix_web::test]
async fn the_step_up_annotation_follows_the_sessions_authentication_time() {
    let clock = Arc::new(ManualClock::starting_now());
    let app = app_with(|builder| builder.clock(clock.clone())).await;
    assert_eq!(
        app.get("/close-account", None).await.status,
        StatusCode::UNAUTHORIZED
    );
    let cookie = app.sign_up("leaving@example.com").await;
    let reply = app.get("/close-account", Some(&cookie)).await;
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    clock.advance(keystead::time::Duration::minutes(10) + keystead::time::Duration::seconds(1));
    let reply = app.get("/close-account", Some(&cookie)).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert_eq!(reply.code(), "reauthentication_required");
    let reply = app
        .send(
            TestRequest::post()
                .uri("/auth/reauthenticate")
                .insert_header((header::CONTENT_TYPE, "application/json"))
                .insert_header((header::ORIGIN, ORIGIN))
                .insert_header((header::COOKIE, cookie.as_str()))
                .set_payload(r#"{"password":"a long enough passphrase"}"#),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        app.get("/close-account", Some(&cookie)).await.status,
        StatusCode::OK
    );
}

#[actix_web::test]
async fn stacked_annotations_all_run() {
    let app = app().await;
    let cookie = app.sign_up("owner@example.com").await;
    let reply = app.get("/api/admin", Some(&cookie)).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "no org: no role");
    app.create_org(&cookie).await;
    // An owner grants at least what an admin does.
    let reply = app.get("/api/admin", Some(&cookie)).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body, b"admin owner@example.com");
}

#[actix_web::test]
async fn optional_user_and_principal_extractors() {
    let app = app().await;
    let reply = app.get("/whoami", None).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body, b"anonymous");
    let cookie = app.sign_up("who@example.com").await;
    assert_eq!(
        app.get("/whoami", Some(&cookie)).await.body,
        b"who@example.com"
    );
    assert_eq!(
        app.get("/principal", Some(&cookie)).await.body,
        b"who@example.com 0"
    );
    app.create_org(&cookie).await;
    assert_eq!(
        app.get("/principal", Some(&cookie)).await.body,
        b"who@example.com 11",
        "an owner has the 11 permissions of the contract"
    );
    // A dead cookie is anonymous for optional extractors, and the response clears it.
    let forged = "authkit_session=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    let reply = app.get("/whoami", Some(forged)).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body, b"anonymous");
    assert!(reply.header(header::SET_COOKIE).contains("Max-Age=0"));
}

#[actix_web::test]
async fn protected_prefix_redirects_browsers_and_refuses_api_clients() {
    let app = app().await;
    let reply = app
        .send(
            TestRequest::get()
                .uri("/dashboard?tab=1")
                .insert_header((header::ACCEPT, "text/html,application/xhtml+xml")),
        )
        .await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER);
    assert_eq!(
        reply.header(header::LOCATION),
        "/sign-in?next=%2Fdashboard%3Ftab%3D1"
    );
    let reply = app.get("/dashboard", None).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.header(header::WWW_AUTHENTICATE), "Bearer");
    assert_eq!(reply.code(), "unauthenticated");
    let cookie = app.sign_up("dash@example.com").await;
    let reply = app.get("/dashboard", Some(&cookie)).await;
    assert_eq!(reply.status, StatusCode::OK);
}

#[actix_web::test]
async fn app_routes_get_the_csrf_check_with_a_session_cookie() {
    let app = app().await;
    let cookie = app.sign_up("csrf@example.com").await;
    let post = |origin: Option<&str>| {
        let mut request = TestRequest::post()
            .uri("/mutate")
            .insert_header((header::COOKIE, cookie.clone()));
        if let Some(origin) = origin {
            request = request.insert_header((header::ORIGIN, origin));
        }
        request
    };
    let reply = app.send(post(Some("https://evil.example"))).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert_eq!(reply.code(), "csrf_rejected");
    let reply = app.send(post(None)).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert_eq!(reply.code(), "csrf_rejected");
    let reply = app.send(post(Some(ORIGIN))).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body, b"changed by csrf@example.com");
}

#[actix_web::test]
async fn guards_choose_between_routes_and_never_answer_401() {
    let app = app().await;
    let reply = app.get("/plan", None).await;
    assert_eq!(
        reply.status,
        StatusCode::METHOD_NOT_ALLOWED,
        "no route of the resource matches: actix's default"
    );
    let cookie = app.sign_up("guard@example.com").await;
    assert_eq!(app.get("/plan", Some(&cookie)).await.body, b"view");
    app.create_org(&cookie).await;
    assert_eq!(app.get("/plan", Some(&cookie)).await.body, b"manage");
}

#[actix_web::test]
async fn bodies_are_streamed_to_the_core_and_its_limits_hold() {
    let app = app().await;
    let big = format!(
        r#"{{"email":"big@example.com","password":"{}"}}"#,
        "x".repeat(keystead::routes::MAX_BODY_BYTES)
    );
    let reply = app
        .send(
            TestRequest::post()
                .uri("/auth/sign-up")
                .insert_header((header::CONTENT_TYPE, "application/json"))
                .set_payload(big.clone()),
        )
        .await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(reply.code(), "payload_too_large");

    // The app's own JSON routes read bodies the same way.
    let json = |body: String| {
        TestRequest::post()
            .uri("/echo")
            .insert_header((header::CONTENT_TYPE, "application/json"))
            .set_payload(body)
    };
    let reply = app.send(json(r#"{"a":1}"#.to_owned())).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body, br#"{"a":1}"#);
    let reply = app.send(json("{not json".to_owned())).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.code(), "invalid_request");
    let reply = app.send(json(big)).await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    let reply = app
        .send(TestRequest::post().uri("/echo").set_payload("a=1"))
        .await;
    assert_eq!(reply.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(reply.code(), "unsupported_media_type");
}

#[actix_web::test]
async fn library_routes_answer_their_own_404_and_405() {
    let app = app().await;
    let reply = app.get("/auth/no-such-route", None).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(reply.code(), "not_found");
    let reply = app.send(TestRequest::put().uri("/auth/session")).await;
    assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(reply.header(header::ALLOW), "GET");
}

#[actix_web::test]
async fn extractors_without_the_middleware_fail_loudly_not_open() {
    let app = test::init_service(
        App::new()
            .route("/mutate", web::post().to(mutate))
            .route("/principal", web::get().to(principal))
            .route("/api/billing", web::get().to(billing))
            .route("/whoami", web::get().to(whoami)),
    )
    .await;
    for request in [
        TestRequest::post().uri("/mutate"),
        TestRequest::get().uri("/principal"),
        TestRequest::get().uri("/api/billing"),
    ] {
        let response = test::call_service(&app, request.to_request()).await;
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }
    // actix's `Option<T>` turns the error into `None`: anonymous, never more.
    let response = test::call_service(&app, TestRequest::get().uri("/whoami").to_request()).await;
    assert_eq!(test::read_body(response).await, "anonymous");
}

#[actix_web::test]
async fn active_org_needs_an_active_organization_and_is_optional() {
    let app = app().await;
    let reply = app.get("/active-org", None).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.code(), "unauthenticated");
    let reply = app.get("/maybe-org", None).await;
    assert_eq!(
        (reply.status, reply.body.as_slice()),
        (StatusCode::OK, &b"none"[..])
    );

    let cookie = app.sign_up("member@example.com").await;
    let reply = app.get("/active-org", Some(&cookie)).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert_eq!(reply.code(), "forbidden");
    assert_eq!(app.get("/maybe-org", Some(&cookie)).await.body, b"none");

    app.create_org(&cookie).await;
    let reply = app.get("/active-org", Some(&cookie)).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body, b"owner 11 true");
    assert_eq!(app.get("/maybe-org", Some(&cookie)).await.body, b"owner");
}

#[actix_web::test]
async fn an_unknown_role_admits_no_one_and_the_start_up_check_names_it() {
    let app = app().await;
    let cookie = app.sign_up("typo-owner@example.com").await;
    app.create_org(&cookie).await;
    let reply = app.get("/api/typo", Some(&cookie)).await;
    assert_eq!(
        reply.status,
        StatusCode::FORBIDDEN,
        "an owner passed a check on an unknown role: {}",
        String::from_utf8_lossy(&reply.body)
    );
    assert_eq!(reply.code(), "forbidden");
    // A guard on an unknown role never matches.
    assert_eq!(
        app.get("/typo-guard", Some(&cookie)).await.body,
        b"fallback"
    );
    // The check an app runs at start-up over the roles its routes name.
    let err = app
        .auth
        .check_roles(["admin", "administrator"])
        .expect_err("an unknown role is reported");
    assert!(err.to_string().contains("administrator"), "{err}");
    assert!(app.auth.check_roles(["owner", "admin", "member"]).is_ok());
}

#[actix_web::test]
async fn without_a_peer_address_the_middleware_refuses_loudly() {
    let app = app().await;
    let reply = app.send_raw(TestRequest::get().uri("/whoami")).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    let value: Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(value["code"], "unavailable");
    assert!(
        value["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("peer address"),
        "{value}"
    );
}

#[actix_web::test]
async fn a_cookie_set_by_the_app_keeps_the_sliding_refresh() {
    let clock = Arc::new(ManualClock::new(time::OffsetDateTime::now_utc()));
    let app = app_with(|builder| builder.clock(clock.clone())).await;
    let cookie = app.sign_up("theme@example.com").await;
    // Past half the 30-day sliding lifetime: the next request moves the expiry.
    clock.advance(time::Duration::days(16));
    let reply = app.get("/set-theme", Some(&cookie)).await;
    assert_eq!(reply.status, StatusCode::OK);
    let cookies: Vec<&str> = reply
        .headers
        .get_all(header::SET_COOKIE)
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

#[actix_web::test]
async fn app_routes_under_a_library_prefix_get_the_csrf_check() {
    let app = app().await;
    let cookie = app.sign_up("export@example.com").await;
    let post = |origin: &str| {
        TestRequest::post()
            .uri("/orgs/export")
            .insert_header((header::COOKIE, cookie.clone()))
            .insert_header((header::ORIGIN, origin))
    };
    let reply = app.send(post("https://evil.example")).await;
    assert_eq!(
        reply.status,
        StatusCode::FORBIDDEN,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    assert_eq!(reply.code(), "csrf_rejected");
    let reply = app.send(post(ORIGIN)).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body, b"changed by export@example.com");
}

#[actix_web::test]
async fn a_percent_encoded_protected_path_is_still_protected() {
    let app = app().await;
    let reply = app.get("/%64ashboard", None).await;
    assert_eq!(
        reply.status,
        StatusCode::UNAUTHORIZED,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
}

#[actix_web::test]
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
        let mut request = TestRequest::post()
            .uri("/auth/sign-in")
            .insert_header((header::CONTENT_TYPE, "application/json"))
            .insert_header((header::ORIGIN, ORIGIN))
            // The client's own line, then the line our proxy appended.
            .append_header(("x-forwarded-for", forged.to_owned()))
            .append_header(("x-forwarded-for", "203.0.113.7"));
        if i % 2 == 1 {
            request = request.insert_header(("forwarded", format!("for=\"{forged}\"")));
        }
        request.set_payload(format!(
            r#"{{"email":"nobody{i}@example.com","password":"wrong password"}}"#
        ))
    };
    for i in 0..3 {
        let reply = app.send(sign_in(i, &format!("6.6.6.{i}"))).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    }
    let reply = app.send(sign_in(3, "6.6.6.99")).await;
    assert_eq!(
        reply.status,
        StatusCode::TOO_MANY_REQUESTS,
        "the forged first line chose the key: {}",
        String::from_utf8_lossy(&reply.body)
    );
    assert!(reply.headers.contains_key(header::RETRY_AFTER));
    let reply = app
        .send(
            TestRequest::post()
                .uri("/auth/sign-in")
                .insert_header((header::CONTENT_TYPE, "application/json"))
                .insert_header(("x-forwarded-for", "203.0.113.8"))
                .set_payload(r#"{"email":"other@example.com","password":"wrong password"}"#),
        )
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
}
