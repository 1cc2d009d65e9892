//! The adapter's own behaviour, through a real router, layer and SQLite store: extractors,
//! annotations, protected prefixes, CSRF on the app's routes, cookies. The contract suite
//! (examples/axum-saas/tests/contract.rs) drives a whole app over HTTP.

use std::sync::Arc;

use auth_axum::{
    ActiveOrg, AuthExt, CurrentUser, OrgMember, Principal, require_permission, require_role,
};
use auth_core::mail::MemoryMailer;
use auth_core::web::AppOrigin;
use auth_core::{Auth, PasswordConfig};
use auth_sqlite::SqliteStore;
use axum::Router;
use axum::body::Body;
use axum::routing::{get, post};
use http::{Request, StatusCode, header};
use http_body_util::BodyExt;
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

async fn mutate(user: CurrentUser) -> String {
    format!("changed by {}", user.email)
}

struct TestApp {
    router: Router,
    _dir: tempfile::TempDir,
}

async fn app() -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("auth.db")).await.unwrap();
    let auth = Auth::builder(Arc::new(store), AppOrigin::parse(ORIGIN).unwrap())
        .mailer(Arc::new(MemoryMailer::default()))
        .password_hashing(
            PasswordConfig::new()
                .argon2_params(1024, 1, 1)
                .expect("valid cheap params"),
        )
        .build();
    let router = Router::new()
        .route("/api/billing", get(billing))
        .route("/api/admin", get(admin_only))
        .route("/whoami", get(whoami))
        .route("/principal", get(principal))
        .route("/active-org", get(active_org))
        .route("/maybe-org", get(maybe_org))
        .route("/mutate", post(mutate))
        .route("/dashboard", get(whoami))
        .merge(auth.routes())
        .layer(auth.layer().protect("/dashboard"));
    TestApp { router, _dir: dir }
}

impl TestApp {
    async fn send(&self, request: Request<Body>) -> (StatusCode, http::HeaderMap, Vec<u8>) {
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
        body, b"who@example.com 10",
        "an owner has the 10 permissions of the contract"
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
    assert_eq!(body, b"owner 10 true");
    let (_, _, body) = app.get("/maybe-org", Some(&cookie)).await;
    assert_eq!(body, b"owner");
}
