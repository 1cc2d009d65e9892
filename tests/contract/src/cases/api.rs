//! Organizations and the example app's own JSON API, behind permissions.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::flows;
use crate::{AppUnderTest, SessionCookie, check};

/// The owner's permissions in the example apps.
const OWNER_PERMISSIONS: &[&str] = &[
    "read:projects",
    "write:projects",
    "read:deployments",
    "write:deployments",
    "members:read",
    "tokens:create",
    "members:manage",
    "tokens:manage",
    "audit:read",
    "billing:manage",
    "org:delete",
];

/// Signs up and creates an organization; returns the owner's cookie and the organization.
async fn owner_of_an_org(app: &AppUnderTest) -> (SessionCookie, Value) {
    let account = flows::sign_up(app, "ada@example.com").await;
    let org = flows::create_org(app, &account.cookie, "Acme Inc").await;
    (account.cookie, org)
}

/// The project list, asserted as `200 [{id, name}]`.
async fn projects(app: &AppUnderTest, cookie: &SessionCookie) -> Vec<Value> {
    let body = app
        .client()
        .get_with("/api/projects", cookie)
        .await
        .json_with(200);
    let projects = body
        .as_array()
        .unwrap_or_else(|| panic!("GET /api/projects answers an array: {body}"))
        .clone();
    for project in &projects {
        check::exact_keys(project, &["id", "name"], "a project");
        assert!(project["name"].is_string(), "{project}");
    }
    projects
}

/// Without a session or token, the API answers 401 `unauthenticated` with
/// `WWW-Authenticate: Bearer`.
pub async fn api_without_credentials_is_401_with_a_bearer_challenge(app: &AppUnderTest) {
    let client = app.client();
    for path in ["/api/projects", "/api/billing"] {
        client
            .get(path)
            .send()
            .await
            .unauthenticated("unauthenticated");
    }
    client
        .post("/api/deployments")
        .json(&json!({"project_id": uuid::Uuid::new_v4().to_string()}))
        .send()
        .await
        .unauthenticated("unauthenticated");
}

/// A session without an active organization has no permissions: the API answers 403
/// `forbidden`.
pub async fn api_with_a_session_but_no_org_is_403(app: &AppUnderTest) {
    let account = flows::sign_up(app, "ada@example.com").await;
    let client = app.client();
    for path in ["/api/projects", "/api/billing"] {
        client
            .get_with(path, &account.cookie)
            .await
            .problem(403, "forbidden");
    }
}

/// `POST /orgs` answers 201 `{id, name, slug, role: "owner"}` and makes the organization the
/// session's active one: `GET /auth/session` shows it with the owner's role and permissions, and
/// `GET /orgs` lists it.
pub async fn creating_an_org_makes_it_active_with_the_owner_role(app: &AppUnderTest) {
    let (cookie, org) = owner_of_an_org(app).await;
    check::exact_keys(
        &org,
        &["id", "name", "slug", "role"],
        "a created organization",
    );
    check::uuid_v7(&org["id"], "the organization's id");
    assert_eq!(org["name"], "Acme Inc", "{org}");
    assert!(
        org["slug"].as_str().is_some_and(|slug| !slug.is_empty()
            && slug
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')),
        "a URL-safe slug: {org}"
    );

    let session = flows::session(app, &cookie).await;
    assert_eq!(
        session["org"],
        json!({"id": org["id"], "name": org["name"], "slug": org["slug"]}),
        "{session}"
    );
    assert_eq!(session["role"], "owner", "{session}");
    let permissions: BTreeSet<&str> = session["permissions"]
        .as_array()
        .unwrap_or_else(|| panic!("permissions is an array: {session}"))
        .iter()
        .map(|p| p.as_str().expect("a permission is a string"))
        .collect();
    assert_eq!(
        permissions,
        OWNER_PERMISSIONS.iter().copied().collect(),
        "the owner's permissions: {session}"
    );

    let orgs = app.client().get_with("/orgs", &cookie).await.json_with(200);
    assert_eq!(orgs, json!([org]), "GET /orgs lists it");
}

/// The owner lists the active organization's projects: 200 `[{id, name}]`.
pub async fn owner_lists_projects(app: &AppUnderTest) {
    let (cookie, _) = owner_of_an_org(app).await;
    let listed = projects(app, &cookie).await;
    for project in &listed {
        check::uuid_v7(&project["id"], "a project's id");
    }
}

/// The owner starts a deployment: `POST /api/deployments {project_id}` answers 201
/// `{id, project_id, status}`.
pub async fn owner_starts_a_deployment(app: &AppUnderTest) {
    let (cookie, _) = owner_of_an_org(app).await;
    // A listed project if the app has any, else any id: the contract does not say projects exist.
    let project_id = projects(app, &cookie).await.first().map_or_else(
        || json!(uuid::Uuid::now_v7().to_string()),
        |p| p["id"].clone(),
    );
    let deployment = app
        .client()
        .post_json_with(
            "/api/deployments",
            &json!({"project_id": project_id}),
            &cookie,
        )
        .await
        .json_with(201);
    check::exact_keys(&deployment, &["id", "project_id", "status"], "a deployment");
    assert_eq!(deployment["project_id"], project_id, "{deployment}");
    assert!(deployment["id"].is_string(), "{deployment}");
    assert!(
        deployment["status"].as_str().is_some_and(|s| !s.is_empty()),
        "a status: {deployment}"
    );
}

/// The owner (who has `billing:manage`) reads billing: 200 `{plan, seats}`.
pub async fn owner_reads_billing(app: &AppUnderTest) {
    let (cookie, _) = owner_of_an_org(app).await;
    let billing = app
        .client()
        .get_with("/api/billing", &cookie)
        .await
        .json_with(200);
    check::exact_keys(&billing, &["plan", "seats"], "billing");
    assert!(billing["plan"].is_string(), "{billing}");
    assert!(billing["seats"].is_u64(), "{billing}");
}
