//! API tokens over HTTP: issue, use through `Authorization: Bearer`, scopes, revocation, the
//! JWKS.

use serde_json::{Value, json};

use crate::AppUnderTest;
use crate::flows::{self, Account};

/// An owner of a fresh organization, and a token with `scopes` made through the API.
async fn owner_with_token(app: &AppUnderTest, scopes: &[&str]) -> (Account, Value) {
    let account = flows::sign_up(app, "ada@example.com").await;
    flows::create_org(app, &account.cookie, "Acme").await;
    let created = app
        .client()
        .post_json_with(
            "/api/tokens",
            &json!({"name": "ci", "scopes": scopes}),
            &account.cookie,
        )
        .await
        .json_with(201);
    (account, created)
}

fn token(created: &Value) -> &str {
    created["token"]
        .as_str()
        .expect("the token is in the answer")
}

/// `POST /api/tokens` answers 201 `{id, name, token, scopes, expires_at}` with an `sk_live_`
/// token (a JWS with `typ: at+jwt` and a `kid`), 90 days by default; the token works on the
/// API at once.
pub async fn api_token_is_issued_and_works_on_the_api(app: &AppUnderTest) {
    let (_, created) = owner_with_token(app, &["read:projects"]).await;
    let mut keys: Vec<&str> = created
        .as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        ["expires_at", "id", "name", "scopes", "token"],
        "{created}"
    );
    let token = token(&created);
    let jws = token.strip_prefix("sk_live_").expect("sk_live_ prefix");
    assert_eq!(jws.split('.').count(), 3, "a compact JWS");
    let header = base64url_json(jws.split('.').next().expect("header"));
    assert_eq!(header["typ"], "at+jwt", "{header}");
    assert_eq!(header["alg"], "EdDSA", "{header}");
    assert!(header["kid"].is_string(), "{header}");
    let claims = base64url_json(jws.split('.').nth(1).expect("claims"));
    let lifetime = claims["exp"].as_i64().expect("exp") - claims["iat"].as_i64().expect("iat");
    assert_eq!(lifetime, 90 * 24 * 3600, "{claims}");
    assert_eq!(claims["iss"], app.origin(), "{claims}");
    assert_eq!(claims["aud"], format!("{}/api", app.origin()), "{claims}");
    let projects = app
        .client()
        .get("/api/projects")
        .bearer(token)
        .send()
        .await
        .json_with(200);
    assert!(projects.is_array(), "{projects}");
}

fn base64url_json(part: &str) -> Value {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut bits = 0_u32;
    let mut count = 0;
    let mut out = Vec::new();
    for byte in part.bytes() {
        let value = ALPHABET.iter().position(|&c| c == byte).expect("base64url") as u32;
        bits = (bits << 6) | value;
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
            bits &= (1 << count) - 1;
        }
    }
    serde_json::from_slice(&out).expect("JSON")
}

/// A token without the scope a route needs answers 403 `insufficient_scope` with
/// `WWW-Authenticate: Bearer error="insufficient_scope", scope="…"`; Bearer requests are not
/// CSRF-checked.
pub async fn api_token_without_the_scope_is_403_insufficient_scope(app: &AppUnderTest) {
    let (_, created) = owner_with_token(app, &["read:projects"]).await;
    let reply = app
        .client()
        .post("/api/deployments")
        .bearer(token(&created))
        .header("origin", "https://evil.example")
        .json(&json!({"project_id": "01890000-0000-7000-8000-000000000000"}))
        .send()
        .await;
    reply.problem(403, "insufficient_scope");
    assert_eq!(
        reply.header("www-authenticate"),
        Some(r#"Bearer error="insufficient_scope", scope="write:deployments""#),
        "{reply}"
    );
}

/// Scopes must be a non-empty subset of known permissions (422 `invalid_scope`) that the
/// creator has (403 `forbidden`); the creator needs an active organization.
pub async fn api_token_scopes_are_validated(app: &AppUnderTest) {
    let account = flows::sign_up(app, "ada@example.com").await;
    app.client()
        .post_json_with(
            "/api/tokens",
            &json!({"name": "ci", "scopes": ["read:projects"]}),
            &account.cookie,
        )
        .await
        .problem(403, "forbidden");
    flows::create_org(app, &account.cookie, "Acme").await;
    for scopes in [
        json!([]),
        json!(["read:everything"]),
        json!(["READ:PROJECTS"]),
    ] {
        app.client()
            .post_json_with(
                "/api/tokens",
                &json!({"name": "ci", "scopes": scopes}),
                &account.cookie,
            )
            .await
            .problem(422, "invalid_scope");
    }
    app.client()
        .post_json_with(
            "/api/tokens",
            &json!({"name": "ci", "scopes": ["read:projects"], "expires_in_days": 366}),
            &account.cookie,
        )
        .await
        .problem(400, "invalid_request");
}

/// `DELETE /api/tokens/{id}` answers 204 and the token fails at once with 401 `token_revoked`;
/// a forged token is `token_invalid`; the list shows the revocation.
pub async fn revoked_and_forged_tokens_are_refused(app: &AppUnderTest) {
    let (account, created) = owner_with_token(app, &["read:projects"]).await;
    let token = token(&created);
    let id = created["id"].as_str().expect("id");
    let client = app.client();
    // A forged signature: the last character of the JWS changed.
    let mut forged = token.to_owned();
    let last = forged.pop().expect("non-empty");
    forged.push(if last == 'A' { 'B' } else { 'A' });
    client
        .get("/api/projects")
        .bearer(&forged)
        .send()
        .await
        .unauthenticated("token_invalid");
    client
        .delete_with(&format!("/api/tokens/{id}"), &account.cookie)
        .await
        .expect(204);
    client
        .get("/api/projects")
        .bearer(token)
        .send()
        .await
        .unauthenticated("token_revoked");
    let list = client
        .get_with("/api/tokens", &account.cookie)
        .await
        .json_with(200);
    let listed = list
        .as_array()
        .and_then(|l| l.iter().find(|t| t["id"] == id))
        .unwrap_or_else(|| panic!("the token is listed: {list}"));
    assert!(listed["revoked_at"].is_string(), "{listed}");
    assert_eq!(listed["created_by"], account.id(), "{listed}");
}

/// `GET /.well-known/jwks.json` publishes the Ed25519 key that verifies the tokens.
pub async fn jwks_publishes_the_token_keys(app: &AppUnderTest) {
    let (_, created) = owner_with_token(app, &["read:projects"]).await;
    let jws = token(&created).strip_prefix("sk_live_").expect("prefix");
    let kid = base64url_json(jws.split('.').next().expect("header"))["kid"].clone();
    let jwks = app
        .client()
        .get("/.well-known/jwks.json")
        .send()
        .await
        .json_with(200);
    let key = jwks["keys"]
        .as_array()
        .and_then(|keys| keys.iter().find(|k| k["kid"] == kid))
        .unwrap_or_else(|| panic!("the token's kid is in the JWKS: {jwks}"));
    assert_eq!(key["kty"], "OKP", "{key}");
    assert_eq!(key["crv"], "Ed25519", "{key}");
    assert!(key.get("d").is_none(), "no private part: {key}");
}

/// `POST /api/tokens` is limited per user: 20 tokens an hour, then 429 `rate_limited` with
/// `Retry-After` (whole seconds, within the hour) and no token is made; another user of the
/// organization still creates theirs.
pub async fn api_token_creation_is_rate_limited_per_user(app: &AppUnderTest) {
    let account = flows::sign_up(app, "ada@example.com").await;
    flows::create_org(app, &account.cookie, "Acme").await;
    let create = |cookie: crate::client::SessionCookie| async move {
        app.client()
            .post_json_with(
                "/api/tokens",
                &json!({"name": "ci", "scopes": ["read:projects"]}),
                &cookie,
            )
            .await
    };
    for _ in 0..20 {
        let _ = create(account.cookie.clone()).await.json_with(201);
    }
    let refused = create(account.cookie.clone()).await;
    refused.problem(429, "rate_limited");
    let retry_after: u64 = refused
        .header("retry-after")
        .unwrap_or_else(|| panic!("429 carries Retry-After: {refused}"))
        .parse()
        .unwrap_or_else(|e| panic!("Retry-After is whole seconds ({e}): {refused}"));
    assert!((1..=3600).contains(&retry_after), "{refused}");
    let listed = app
        .client()
        .get_with("/api/tokens", &account.cookie)
        .await
        .json_with(200);
    assert_eq!(
        listed.as_array().map(Vec::len),
        Some(20),
        "the refused request made no token: {listed}"
    );

    let other = flows::sign_up(app, "grace@example.com").await;
    flows::create_org(app, &other.cookie, "Grace's").await;
    let _ = create(other.cookie.clone()).await.json_with(201);
}

/// The absurd values sent to each numeric field of the contract: the extremes of 64-bit
/// integers, one past them, zero, negative, floats, a string, `null`.
const ABSURD_NUMBERS: &[&str] = &[
    "9223372036854775807",
    "-9223372036854775808",
    "18446744073709551615",
    "18446744073709551616",
    "-1",
    "0",
    "1e308",
    "-1e308",
    "1.5",
    "365.0",
    "1e2",
    "\"12\"",
    "null",
    "true",
    "[]",
    "{}",
];

/// Every number a body can carry is range-checked before any arithmetic: `expires_in_days` of
/// `POST /api/tokens` (the contract's only numeric field) answers 400 `invalid_request` for
/// each absurd value, never a 5xx or a dropped connection, and the app serves on.
pub async fn api_token_expiry_refuses_absurd_numbers(app: &AppUnderTest) {
    let account = flows::sign_up(app, "ada@example.com").await;
    flows::create_org(app, &account.cookie, "Acme").await;
    let client = app.client();
    for value in ABSURD_NUMBERS {
        let body =
            format!(r#"{{"name":"ci","scopes":["read:projects"],"expires_in_days":{value}}}"#);
        let reply = client
            .post("/api/tokens")
            .app_origin()
            .cookie(&account.cookie)
            .body(Some("application/json"), body.into_bytes())
            .send()
            .await;
        assert!(reply.status < 500, "expires_in_days {value}: {reply}");
        reply.problem(400, "invalid_request");
    }
    // The bounds themselves are accepted, and the app still serves.
    for (days, value) in [(1, "1"), (365, "365")] {
        let created = client
            .post("/api/tokens")
            .app_origin()
            .cookie(&account.cookie)
            .body(
                Some("application/json"),
                format!(r#"{{"name":"ci","scopes":["read:projects"],"expires_in_days":{value}}}"#)
                    .into_bytes(),
            )
            .send()
            .await
            .json_with(201);
        let expires = time::OffsetDateTime::parse(
            created["expires_at"].as_str().expect("expires_at"),
            &time::format_description::well_known::Rfc3339,
        )
        .expect("RFC 3339");
        let left = expires - time::OffsetDateTime::now_utc();
        assert!(
            (left - time::Duration::days(days)).abs() < time::Duration::minutes(5),
            "{days} days: {created}"
        );
    }
    let session = client
        .get_with("/auth/session", &account.cookie)
        .await
        .json_with(200);
    assert_eq!(session["user"]["email"], "ada@example.com", "{session}");
}
