//! The conventions every route follows: request bodies, errors, routing, and which credentials
//! a route takes.

use serde_json::json;

use crate::AppUnderTest;
use crate::flows::{self, PASSWORD};

/// A body that is not JSON, or JSON whose fields have the wrong types, answers 400
/// `invalid_request`.
pub async fn malformed_json_is_400_invalid_request(app: &AppUnderTest) {
    for body in [
        &br#"{"email": "ada@example.com", "password": "#[..],
        b"not json at all",
        br#"["ada@example.com", "correct horse battery staple"]"#,
        br#"{"email": 42, "password": "correct horse battery staple"}"#,
    ] {
        app.client()
            .post("/auth/sign-up")
            .app_origin()
            .body(Some("application/json"), body.to_vec())
            .send()
            .await
            .problem(400, "invalid_request");
    }
}

/// A JSON route given another content type, or none, answers 415 `unsupported_media_type`.
pub async fn wrong_content_type_is_415(app: &AppUnderTest) {
    let body = serde_json::to_vec(&json!({"email": "ada@example.com", "password": PASSWORD}))
        .expect("JSON");
    for content_type in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        None,
    ] {
        app.client()
            .post("/auth/sign-up")
            .app_origin()
            .body(content_type, body.clone())
            .send()
            .await
            .problem(415, "unsupported_media_type");
    }
    // `application/json; charset=utf-8` is JSON.
    app.client()
        .post("/auth/sign-up")
        .app_origin()
        .body(Some("application/json; charset=utf-8"), body)
        .send()
        .await
        .expect(201);
}

/// A body larger than 1 MiB answers 413 `payload_too_large`.
pub async fn oversized_body_is_413_payload_too_large(app: &AppUnderTest) {
    let padding = "a".repeat(1024 * 1024 + 1024);
    let body = json!({"email": "ada@example.com", "password": PASSWORD, "name": padding});
    app.client()
        .post("/auth/sign-up")
        .app_origin()
        .json(&body)
        .send()
        .await
        .problem(413, "payload_too_large");
}

/// Errors across the routes are `application/problem+json` with `type`, `title`, `status` and
/// `code`, and say nothing internal.
pub async fn errors_are_problem_json(app: &AppUnderTest) {
    let account = flows::sign_up(app, "ada@example.com").await;
    let client = app.client();
    client
        .get("/auth/session")
        .send()
        .await
        .problem(401, "unauthenticated");
    client
        .get("/auth/no-such-route")
        .send()
        .await
        .problem(404, "not_found");
    client
        .put("/auth/session")
        .send()
        .await
        .problem(405, "method_not_allowed");
    client
        .post_json(
            "/auth/sign-up",
            &json!({"email": "ada@example.com", "password": PASSWORD}),
        )
        .await
        .problem(409, "email_taken");
    client
        .post_json(
            "/auth/sign-up",
            &json!({"email": "b@example.com", "password": "short"}),
        )
        .await
        .problem(422, "weak_password");
    flows::try_sign_in(app, "ada@example.com", "wrong password")
        .await
        .problem(401, "invalid_credentials");
    client
        .post("/auth/sign-out")
        .cookie(&account.cookie)
        .send()
        .await
        .problem(403, "csrf_rejected");
    client
        .get("/api/projects")
        .send()
        .await
        .problem(401, "unauthenticated");
    client
        .get_with("/api/projects", &account.cookie)
        .await
        .problem(403, "forbidden");
}

/// An unknown path under `/auth` answers 404 `not_found` as problem+json, whatever the method.
pub async fn unknown_auth_path_is_404(app: &AppUnderTest) {
    let client = app.client();
    client
        .get("/auth/does-not-exist")
        .send()
        .await
        .problem(404, "not_found");
    client
        .post_json("/auth/does-not-exist", &json!({}))
        .await
        .problem(404, "not_found");
    client
        .get("/auth/sessions/extra/segments")
        .send()
        .await
        .problem(404, "not_found");
}

/// A known `/auth` path with a method it does not serve answers 405 `method_not_allowed`, with
/// an `Allow` header naming the methods it does.
pub async fn wrong_method_on_an_auth_path_is_405(app: &AppUnderTest) {
    for (method, path, allowed) in [
        ("GET", "/auth/sign-in", "POST"),
        ("GET", "/auth/sign-up", "POST"),
        ("PUT", "/auth/session", "GET"),
    ] {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("a method");
        let reply = app.client().request(method, path).send().await;
        reply.problem(405, "method_not_allowed");
        let allow = reply.header("allow").unwrap_or_default();
        assert!(
            allow
                .split(',')
                .any(|m| m.trim().eq_ignore_ascii_case(allowed)),
            "405 names the allowed methods in Allow ({allowed}): {reply}"
        );
    }
}

/// The routes that act on the signed-in user take a browser session only: a valid API token
/// there answers 403 `forbidden`, even beside a valid session cookie (it still works on the API).
pub async fn bearer_token_on_session_routes_is_forbidden(app: &AppUnderTest) {
    let account = flows::sign_up(app, "ada@example.com").await;
    flows::create_org(app, &account.cookie, "Acme").await;
    let created = app
        .client()
        .post_json_with(
            "/api/tokens",
            &json!({"name": "ci", "scopes": ["read:projects"]}),
            &account.cookie,
        )
        .await
        .json_with(201);
    let token = created["token"].as_str().expect("the token");
    let client = app.client();
    for path in ["/auth/session", "/auth/sessions"] {
        client
            .get(path)
            .bearer(token)
            .send()
            .await
            .problem(403, "forbidden");
        client
            .get(path)
            .bearer(token)
            .cookie(&account.cookie)
            .send()
            .await
            .problem(403, "forbidden");
    }
    client
        .post("/auth/sign-out")
        .bearer(token)
        .send()
        .await
        .problem(403, "forbidden");
    let projects = client
        .get("/api/projects")
        .bearer(token)
        .send()
        .await
        .json_with(200);
    assert!(projects.is_array(), "{projects}");
    // The session itself was not touched.
    let session = client
        .get_with("/auth/session", &account.cookie)
        .await
        .json_with(200);
    assert_eq!(session["user"]["email"], "ada@example.com", "{session}");
}
