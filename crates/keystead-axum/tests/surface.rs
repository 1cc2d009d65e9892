//! The configurable surface on axum: the library's routes under a base path, the app's own
//! sign-in and after-sign-in pages, HTML form posts (with `next`), another trusted origin, a
//! shared cookie domain and session-only cookies. Through a real router, layer and SQLite
//! store; the app's own `/orgs/{id}/projects` beside the library's `/orgs/…` stays the app's.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Path};
use axum::routing::get;
use http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use keystead::mail::MemoryMailer;
use keystead::routes::Surface;
use keystead::web::AppOrigin;
use keystead::{Auth, PasswordConfig};
use keystead_axum::{AuthExt, CurrentUser};
use keystead_sqlite::SqliteStore;
use serde_json::Value;
use tower::ServiceExt;

const ORIGIN: &str = "http://app.example.test";
const SPA: &str = "http://spa.example.test";

struct TestApp {
    router: Router,
    auth: Auth,
    _dir: tempfile::TempDir,
}

async fn projects(Path(id): Path<String>, user: CurrentUser) -> String {
    format!("projects of {id} for {}", user.email)
}

async fn app(persistent: bool) -> TestApp {
    app_with(persistent, true).await
}

async fn app_with(persistent: bool, forms: bool) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("auth.db")).await.unwrap();
    let surface = Surface::default()
        .with_base_path("/identity")
        .unwrap()
        .with_sign_in_path("/login")
        .unwrap()
        .with_form_bodies(forms)
        .with_after_sign_in_path("/home")
        .unwrap();
    let auth = Auth::builder(Arc::new(store), AppOrigin::parse(ORIGIN).unwrap())
        .mailer(Arc::new(MemoryMailer::default()))
        .password_hashing(PasswordConfig::new().argon2_params(1024, 1, 1).unwrap())
        .surface(surface)
        .trusted_origins([AppOrigin::parse(SPA).unwrap()])
        .cookie_domain("example.test")
        .unwrap()
        .persistent_session_cookies(persistent)
        .build();
    let router = Router::new()
        .route("/home", get(|| async { "home" }))
        .route("/orgs/{id}/projects", get(projects))
        .merge(auth.routes())
        .layer(auth.layer().protect("/home"));
    TestApp {
        router,
        auth,
        _dir: dir,
    }
}

impl TestApp {
    async fn send(&self, mut request: Request<Body>) -> (StatusCode, http::HeaderMap, Vec<u8>) {
        let addr: std::net::SocketAddr = "127.0.0.1:40000".parse().unwrap();
        request.extensions_mut().insert(ConnectInfo(addr));
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, headers, body.to_vec())
    }

    async fn form(&self, path: &str, body: &str, origin: &str) -> (StatusCode, http::HeaderMap) {
        let (status, headers, _) = self
            .send(
                Request::post(path)
                    .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                    .header(header::ORIGIN, origin)
                    .header(header::REFERER, format!("{ORIGIN}/signup-page"))
                    .body(Body::from(body.to_owned()))
                    .unwrap(),
            )
            .await;
        (status, headers)
    }
}

fn set_cookie(headers: &http::HeaderMap) -> String {
    headers[header::SET_COOKIE].to_str().unwrap().to_owned()
}

#[tokio::test]
async fn routes_live_under_the_base_path_only() {
    let app = app(true).await;
    let sign_up = |path: &str| {
        Request::post(path)
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::ORIGIN, ORIGIN)
            .body(Body::from(
                r#"{"email":"base@example.com","password":"a long enough passphrase"}"#,
            ))
            .unwrap()
    };
    // At the root there is nothing: the app's router answers (no route).
    let (status, _, _) = app.send(sign_up("/auth/sign-up")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, headers, body) = app.send(sign_up("/identity/auth/sign-up")).await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&body)
    );
    let cookie = set_cookie(&headers);
    // Shared with the subdomains, and (http) without a prefix.
    assert!(cookie.contains("Domain=example.test"), "{cookie}");
    assert!(cookie.contains("Max-Age="), "{cookie}");
    let session = cookie.split(';').next().unwrap().to_owned();
    let (status, _, body) = app
        .send(
            Request::get("/identity/auth/session")
                .header(header::COOKIE, &session)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["user"]["email"], "base@example.com");
    // The app's own route under `/orgs/…` is the app's, beside the library's.
    let (status, _, body) = app
        .send(
            Request::get("/orgs/42/projects")
                .header(header::COOKIE, &session)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, b"projects of 42 for base@example.com");
    // A route added to the table (one row and its handler) is mounted under the base too.
    let (status, _, body) = app
        .send(
            Request::get("/identity/auth/providers")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, br#"{"providers":[]}"#);
    // The OpenAPI document names the mounted paths.
    let doc = app.auth.openapi();
    assert!(doc.paths.paths.contains_key("/identity/auth/sign-up"));
    assert!(!doc.paths.paths.contains_key("/auth/sign-up"));
    assert!(
        app.auth
            .route_paths()
            .iter()
            .all(|p| p.starts_with("/identity/"))
    );
}

#[tokio::test]
async fn browsers_go_to_the_configured_sign_in_page() {
    let app = app(true).await;
    let (status, headers, _) = app
        .send(
            Request::get("/home?tab=1")
                .header(header::ACCEPT, "text/html")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers[header::LOCATION], "/login?next=%2Fhome%3Ftab%3D1");
}

#[tokio::test]
async fn a_form_post_with_next_redirects_on_success_and_back_with_the_code_on_failure() {
    let app = app(true).await;
    // A plain HTML sign-up form: 303 to `next`, with the session cookie.
    let (status, headers) = app
        .form(
            "/identity/auth/sign-up",
            "email=form%40example.com&password=a+long+enough+passphrase&next=%2Fhome%3Fwelcome%3D1",
            ORIGIN,
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers[header::LOCATION], "/home?welcome=1");
    assert!(set_cookie(&headers).contains("Max-Age="));
    // The same address again: back to the form's page with the code.
    let (status, headers) = app
        .form(
            "/identity/auth/sign-up",
            "email=form%40example.com&password=a+long+enough+passphrase&next=%2Fhome",
            ORIGIN,
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers[header::LOCATION], "/signup-page?error=email_taken");
    // `next` off this site is not followed: the answer is the JSON one.
    let (status, headers) = app
        .form(
            "/identity/auth/sign-in",
            "email=form%40example.com&password=a+long+enough+passphrase&next=https%3A%2F%2Fevil.test",
            ORIGIN,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers.get(header::LOCATION).is_none());
    // A form without `next` is answered like JSON.
    let (status, headers) = app
        .form(
            "/identity/auth/sign-in",
            "email=form%40example.com&password=a+long+enough+passphrase",
            ORIGIN,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_TYPE], "application/json");
    // A form where only JSON is taken (API tokens) is 415.
    let (status, _) = app
        .form("/identity/api/tokens", "name=x&scopes=read", ORIGIN)
        .await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
}

#[tokio::test]
async fn a_form_post_from_another_site_is_refused_like_json() {
    let app = app(true).await;
    // Login CSRF by a form on an attacker's page: refused, and no redirect to follow.
    let (status, headers) = app
        .form(
            "/identity/auth/sign-up",
            "email=victim%40example.com&password=a+long+enough+passphrase",
            "http://evil.test",
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(headers.get(header::SET_COOKIE).is_none());
}

#[tokio::test]
async fn a_trusted_origin_may_post_with_the_cookie_and_others_may_not() {
    let app = app(true).await;
    let (_, headers) = app
        .form(
            "/identity/auth/sign-up",
            "email=spa%40example.com&password=a+long+enough+passphrase",
            ORIGIN,
        )
        .await;
    let session = set_cookie(&headers).split(';').next().unwrap().to_owned();
    let create = |origin: &str| {
        Request::post("/identity/orgs")
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::ORIGIN, origin)
            .header(header::COOKIE, &session)
            .body(Body::from(r#"{"name":"From the SPA"}"#))
            .unwrap()
    };
    let (status, _, _) = app.send(create(SPA)).await;
    assert_eq!(status, StatusCode::CREATED);
    for evil in [
        "http://evil.test",
        "http://spa.example.test.evil.test",
        "https://spa.example.test",
    ] {
        let (status, _, body) = app.send(create(evil)).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{evil}");
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["code"], "csrf_rejected");
    }
}

#[tokio::test]
async fn session_only_cookies_have_no_max_age() {
    let app = app(false).await;
    let (status, headers) = app
        .form(
            "/identity/auth/sign-up",
            "email=short%40example.com&password=a+long+enough+passphrase",
            ORIGIN,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let cookie = set_cookie(&headers);
    assert!(!cookie.contains("Max-Age"), "{cookie}");
    assert!(!cookie.contains("Expires"), "{cookie}");
    assert!(cookie.contains("HttpOnly"), "{cookie}");
}

#[tokio::test]
async fn without_form_bodies_a_form_post_is_415_and_the_document_lists_json_only() {
    let app = app_with(true, false).await;
    let (status, headers) = app
        .form(
            "/identity/auth/sign-up",
            "email=json%40example.com&password=a+long+enough+passphrase&next=%2Fhome",
            ORIGIN,
        )
        .await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(headers.get(header::LOCATION).is_none());
    assert!(headers.get(header::SET_COOKIE).is_none());
    let doc = serde_json::to_value(app.auth.openapi()).unwrap();
    let content = &doc["paths"]["/identity/auth/sign-up"]["post"]["requestBody"]["content"];
    assert!(content.get("application/json").is_some());
    assert!(content.get("application/x-www-form-urlencoded").is_none());
    let on = app_with(true, true).await;
    let doc = serde_json::to_value(on.auth.openapi()).unwrap();
    let content = &doc["paths"]["/identity/auth/sign-up"]["post"]["requestBody"]["content"];
    assert!(content.get("application/x-www-form-urlencoded").is_some());
}
