//! The OpenAPI document: `GET /openapi.json` describes every route of the contract, and
//! schemathesis, driving the running app from that document alone (valid and invalid inputs,
//! with and without a session), finds no 5xx and no reply that breaks the document.

use serde_json::Value;

use crate::AppUnderTest;
use crate::flows::{create_org, sign_up};

/// Every route of the contract, as `(method, path)` of the document.
const CONTRACT_ROUTES: &[(&str, &str)] = &[
    ("post", "/auth/sign-up"),
    ("post", "/auth/sign-in"),
    ("post", "/auth/sign-out"),
    ("get", "/auth/session"),
    ("get", "/auth/sessions"),
    ("delete", "/auth/sessions/{session_id}"),
    ("post", "/auth/sign-out-everywhere"),
    ("get", "/auth/verify-email"),
    ("post", "/auth/verify-email"),
    ("post", "/auth/verify-email/send"),
    ("post", "/auth/password-reset"),
    ("post", "/auth/password-reset/confirm"),
    ("post", "/auth/change-password"),
    ("get", "/auth/security-events"),
    ("get", "/auth/mfa"),
    ("post", "/auth/mfa/totp"),
    ("delete", "/auth/mfa/totp"),
    ("post", "/auth/mfa/totp/confirm"),
    ("post", "/auth/mfa/recovery-codes"),
    ("post", "/auth/mfa/verify"),
    ("post", "/auth/reauthenticate"),
    ("post", "/auth/passkeys/register/options"),
    ("post", "/auth/passkeys/register"),
    ("get", "/auth/passkeys"),
    ("patch", "/auth/passkeys/{passkey_id}"),
    ("delete", "/auth/passkeys/{passkey_id}"),
    ("post", "/auth/passkeys/authenticate/options"),
    ("post", "/auth/passkeys/authenticate"),
    ("put", "/orgs/{org_id}/mfa-policy"),
    ("post", "/auth/active-org"),
    ("get", "/orgs"),
    ("post", "/orgs"),
    ("delete", "/orgs/{org_id}"),
    ("get", "/orgs/{org_id}/members"),
    ("get", "/orgs/{org_id}/audit"),
    ("get", "/orgs/{org_id}/audit/export"),
    ("patch", "/orgs/{org_id}/members/{user_id}"),
    ("delete", "/orgs/{org_id}/members/{user_id}"),
    ("get", "/orgs/{org_id}/invitations"),
    ("post", "/orgs/{org_id}/invitations"),
    ("delete", "/orgs/{org_id}/invitations/{invitation_id}"),
    ("post", "/orgs/{org_id}/transfer"),
    ("post", "/invitations/accept"),
    ("get", "/api/tokens"),
    ("post", "/api/tokens"),
    ("delete", "/api/tokens/{token_id}"),
    ("get", "/.well-known/jwks.json"),
    ("get", "/auth/oauth/{provider}"),
    ("get", "/auth/oauth/{provider}/callback"),
    ("post", "/auth/oauth/{provider}/link"),
    ("get", "/auth/providers"),
    ("get", "/auth/accounts"),
    ("delete", "/auth/accounts/{provider}"),
    ("get", "/api/projects"),
    ("post", "/api/deployments"),
    ("get", "/api/billing"),
];

async fn document(app: &AppUnderTest) -> Value {
    let reply = app.client().get("/openapi.json").send().await;
    assert_eq!(reply.header("content-type"), Some("application/json"));
    reply.json_with(200)
}

/// `GET /openapi.json`: OpenAPI 3.1, one operation per contract route (the library's and the
/// app's own), each with its error answer as a problem.
pub async fn openapi_document_names_every_route_of_the_contract(app: &AppUnderTest) {
    let doc = document(app).await;
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().expect("paths");
    let mut operations = 0;
    for (path, item) in paths {
        for (method, op) in item.as_object().expect("a path item") {
            if !["get", "post", "put", "patch", "delete"].contains(&method.as_str()) {
                continue;
            }
            operations += 1;
            assert!(
                CONTRACT_ROUTES.contains(&(method.as_str(), path.as_str())),
                "{method} {path} is not a route of the contract"
            );
            assert!(op["operationId"].is_string(), "{method} {path}");
            assert_eq!(
                op["responses"]["default"]["content"]["application/problem+json"]["schema"]["$ref"],
                "#/components/schemas/Problem",
                "{method} {path}"
            );
        }
    }
    for (method, path) in CONTRACT_ROUTES {
        assert!(
            paths.get(*path).and_then(|p| p.get(*method)).is_some(),
            "{method} {path} is missing"
        );
    }
    assert_eq!(operations, CONTRACT_ROUTES.len());
    let sign_in = &paths["/auth/sign-in"]["post"];
    assert_eq!(
        sign_in["requestBody"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/SignInBody"
    );
    // The example apps keep form bodies off (JSON only): the document says so.
    assert!(
        sign_in["requestBody"]["content"]
            .get("application/x-www-form-urlencoded")
            .is_none()
    );
    let schemas = doc["components"]["schemas"].as_object().expect("schemas");
    for name in [
        "SignInBody",
        "SignInReply",
        "UserView",
        "Problem",
        "Project",
    ] {
        assert!(schemas.contains_key(name), "{name}");
    }
}

/// Runs schemathesis against the app with `headers`; panics with its report on any failure.
fn schemathesis(app: &AppUnderTest, headers: &[String], examples: &str) {
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let mut command = std::process::Command::new(&python);
    command.args([
        "-m",
        "schemathesis.cli",
        "run",
        &format!("{}/openapi.json", app.base_url()),
        "--checks",
        "not_a_server_error,response_schema_conformance,content_type_conformance",
        "--phases",
        "examples,coverage,fuzzing",
        "--max-examples",
        examples,
        "--max-redirects",
        "0",
        "--request-timeout",
        "20",
        "--seed",
        "20261207",
        "--no-color",
        "--suppress-health-check",
        "all",
    ]);
    for header in headers {
        command.args(["-H", header]);
    }
    let output = command.output().unwrap_or_else(|e| {
        panic!("could not run {python} -m schemathesis.cli ({e}); run `cargo xtask setup`")
    });
    let report = format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "schemathesis found failures:\n{report}"
    );
    let tail: Vec<&str> = report.lines().rev().take(6).collect();
    println!(
        "schemathesis {:?}: {}",
        headers,
        tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
    );
}

/// schemathesis drives every operation of the document, without a credential and with a
/// signed-in session (its `Origin` sent, so unsafe requests pass the CSRF check and reach the
/// handlers): no 5xx, every reply matches the document's schema and content type.
pub async fn schemathesis_finds_no_server_error_or_schema_violation(app: &AppUnderTest) {
    let account = sign_up(app, "schemathesis@example.com").await;
    create_org(app, &account.cookie, "Fuzzed").await;
    let origin = format!("Origin: {}", app.origin());
    let cookie = format!("Cookie: {}", account.cookie.header_value());
    let anonymous: Vec<String> = Vec::new();
    let signed_in = vec![cookie, origin];
    let app_ref = app;
    tokio::task::block_in_place(|| {
        schemathesis(app_ref, &anonymous, "12");
        schemathesis(app_ref, &signed_in, "12");
    });
}
