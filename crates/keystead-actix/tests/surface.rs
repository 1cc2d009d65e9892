//! The configurable surface on actix-web: the library's routes under a base path, the app's
//! own sign-in page, HTML form posts (with `next`), another trusted origin, a shared cookie
//! domain and session-only cookies. Through a real actix app, middleware and SQLite store;
//! the app's own `/orgs/{id}/projects` beside the library's `/orgs/…` stays the app's.

use std::sync::Arc;

use actix_web::http::{StatusCode, header};
use actix_web::test::{self, TestRequest};
use actix_web::{App, web};
use keystead::mail::MemoryMailer;
use keystead::routes::Surface;
use keystead::web::AppOrigin;
use keystead::{Auth, PasswordConfig};
use keystead_actix::{AuthExt, CurrentUser};
use keystead_sqlite::SqliteStore;
use serde_json::Value;

const ORIGIN: &str = "http://app.example.test";
const SPA: &str = "http://spa.example.test";

struct TestApp {
    auth: Auth,
    _dir: tempfile::TempDir,
}

struct Reply {
    status: StatusCode,
    headers: header::HeaderMap,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: header::HeaderName) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }
}

async fn projects(id: web::Path<String>, user: CurrentUser) -> String {
    format!("projects of {id} for {}", user.email)
}

async fn app(persistent: bool) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("auth.db")).await.unwrap();
    let surface = Surface::default()
        .with_base_path("/identity")
        .unwrap()
        .with_sign_in_path("/login")
        .unwrap()
        .with_form_bodies(true);
    let auth = Auth::builder(Arc::new(store), AppOrigin::parse(ORIGIN).unwrap())
        .mailer(Arc::new(MemoryMailer::default()))
        .password_hashing(PasswordConfig::new().argon2_params(1024, 1, 1).unwrap())
        .surface(surface)
        .trusted_origins([AppOrigin::parse(SPA).unwrap()])
        .cookie_domain("example.test")
        .unwrap()
        .persistent_session_cookies(persistent)
        .build();
    TestApp { auth, _dir: dir }
}

impl TestApp {
    async fn send(&self, request: TestRequest) -> Reply {
        let auth = &self.auth;
        let app = test::init_service(
            App::new()
                .wrap(auth.middleware().protect("/home"))
                .service(auth.service())
                .route("/home", web::get().to(|| async { "home" }))
                .route("/orgs/{id}/projects", web::get().to(projects)),
        )
        .await;
        let request = request
            .peer_addr("127.0.0.1:40000".parse().unwrap())
            .to_request();
        let response = test::call_service(&app, request).await;
        Reply {
            status: response.status(),
            headers: response.headers().clone(),
            body: test::read_body(response).await.to_vec(),
        }
    }

    async fn form(&self, path: &str, body: &str, origin: &str) -> Reply {
        self.send(
            TestRequest::post()
                .uri(path)
                .insert_header((header::CONTENT_TYPE, "application/x-www-form-urlencoded"))
                .insert_header((header::ORIGIN, origin))
                .insert_header((header::REFERER, format!("{ORIGIN}/signup-page")))
                .set_payload(body.to_owned()),
        )
        .await
    }
}

fn session_of(reply: &Reply) -> String {
    let cookie = reply.header(header::SET_COOKIE).expect("a session cookie");
    cookie.split(';').next().unwrap().to_owned()
}

#[actix_web::test]
async fn routes_live_under_the_base_path_and_forms_redirect_with_next() {
    let app = app(true).await;
    let at_root = app
        .form(
            "/auth/sign-up",
            "email=a%40example.com&password=a+long+enough+passphrase",
            ORIGIN,
        )
        .await;
    assert_eq!(at_root.status, StatusCode::NOT_FOUND);
    let signed_up = app
        .form(
            "/identity/auth/sign-up",
            "email=a%40example.com&password=a+long+enough+passphrase&next=%2Fhome",
            ORIGIN,
        )
        .await;
    assert_eq!(signed_up.status, StatusCode::SEE_OTHER);
    assert_eq!(signed_up.header(header::LOCATION), Some("/home"));
    let cookie = signed_up.header(header::SET_COOKIE).unwrap().to_owned();
    assert!(cookie.contains("Domain=example.test"), "{cookie}");
    let session = session_of(&signed_up);
    let again = app
        .form(
            "/identity/auth/sign-up",
            "email=a%40example.com&password=a+long+enough+passphrase&next=%2Fhome",
            ORIGIN,
        )
        .await;
    assert_eq!(again.status, StatusCode::SEE_OTHER);
    assert_eq!(
        again.header(header::LOCATION),
        Some("/signup-page?error=email_taken")
    );
    let projects = app
        .send(
            TestRequest::get()
                .uri("/orgs/42/projects")
                .insert_header((header::COOKIE, session.clone())),
        )
        .await;
    assert_eq!(projects.status, StatusCode::OK);
    assert_eq!(projects.body, b"projects of 42 for a@example.com");
    let redirected = app
        .send(
            TestRequest::get()
                .uri("/home")
                .insert_header((header::ACCEPT, "text/html")),
        )
        .await;
    assert_eq!(redirected.status, StatusCode::SEE_OTHER);
    assert_eq!(
        redirected.header(header::LOCATION),
        Some("/login?next=%2Fhome")
    );
}

#[actix_web::test]
async fn a_trusted_origin_may_post_and_others_may_not() {
    let app = app(true).await;
    let signed_up = app
        .form(
            "/identity/auth/sign-up",
            "email=spa%40example.com&password=a+long+enough+passphrase",
            ORIGIN,
        )
        .await;
    assert_eq!(signed_up.status, StatusCode::CREATED);
    let session = session_of(&signed_up);
    let create = |origin: &str| {
        TestRequest::post()
            .uri("/identity/orgs")
            .insert_header((header::CONTENT_TYPE, "application/json"))
            .insert_header((header::ORIGIN, origin.to_owned()))
            .insert_header((header::COOKIE, session.clone()))
            .set_payload(r#"{"name":"From the SPA"}"#)
    };
    assert_eq!(app.send(create(SPA)).await.status, StatusCode::CREATED);
    let refused = app.send(create("http://evil.test")).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let body: Value = serde_json::from_slice(&refused.body).unwrap();
    assert_eq!(body["code"], "csrf_rejected");
}

#[actix_web::test]
async fn session_only_cookies_have_no_max_age() {
    let app = app(false).await;
    let signed_up = app
        .form(
            "/identity/auth/sign-up",
            "email=short%40example.com&password=a+long+enough+passphrase",
            ORIGIN,
        )
        .await;
    assert_eq!(signed_up.status, StatusCode::CREATED);
    let cookie = signed_up.header(header::SET_COOKIE).unwrap();
    assert!(
        !cookie.contains("Max-Age") && !cookie.contains("Expires"),
        "{cookie}"
    );
}
