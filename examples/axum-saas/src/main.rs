//! axum-saas: a small SaaS app on `keystead-axum`, serving the project's HTTP contract.
//!
//! `cargo run -p axum-saas` starts it on the embedded SQLite default (`var/axum-saas.db`);
//! `DATABASE_URL=postgres://…` switches to Postgres. Settings are the contract's environment
//! variables (see the README).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router, ServiceExt};
use keystead::routes::{local_path, read_json};
use keystead::web::AppOrigin;
use keystead::{Auth, AuthError, ErrorCode};
use keystead_axum::{
    AuthExt, AuthRejection, AuthService, CurrentUser, OrgMember, Principal, require_permission,
};
use saas_common::{Config, Pages, Projects, STATIC_FILES};
use serde::Deserialize;
use serde_json::json;
use tower::Layer;

/// What the handlers share.
#[derive(Clone)]
struct App {
    auth: Auth,
    pages: Arc<Pages>,
    projects: Projects,
    /// The OpenAPI document (the library's routes and the app's API), made once.
    openapi: Arc<str>,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    saas_common::init_tracing();
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("axum-saas: {message}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), String> {
    let config = Config::from_env("axum-saas")?;
    let metrics = config
        .metrics_bind
        .map(|bind| saas_common::install_metrics().map(|handle| (bind, handle)))
        .transpose()?;
    let backend = saas_common::open_store(&config.database_url).await?;
    let listener = tokio::net::TcpListener::bind(config.bind)
        .await
        .map_err(|e| format!("BIND {}: {e}", config.bind))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let origin = config
        .origin
        .clone()
        .unwrap_or_else(|| AppOrigin::http_for(addr));
    let auth = saas_common::build_auth(&config, backend, origin).await?;
    let app = App {
        openapi: saas_common::openapi_json(&auth).into(),
        auth,
        pages: Arc::new(Pages::new()),
        projects: Projects::default(),
    };
    if let Some((bind, handle)) = metrics {
        serve_metrics(bind, app.auth.clone(), handle).await?;
    }
    let service = service(app);
    println!("listening on http://{addr}");
    axum::serve(
        listener,
        service.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await
    .map_err(|e| e.to_string())
}

/// Serves `GET /metrics` on a listener of its own (`METRICS_BIND`), off the public one.
async fn serve_metrics(
    bind: SocketAddr,
    auth: Auth,
    handle: saas_common::PrometheusHandle,
) -> Result<(), String> {
    let listener = tokio::net::TcpListener::bind(bind)
        .await
        .map_err(|e| format!("METRICS_BIND {bind}: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let router = Router::new().route(
        "/metrics",
        get(move || async move {
            (
                [(header::CONTENT_TYPE, saas_common::METRICS_CONTENT_TYPE)],
                saas_common::metrics_body(&auth, &handle),
            )
        }),
    );
    println!("metrics on http://{addr}");
    tokio::spawn(async move {
        if let Err(err) = axum::serve(listener, router).await {
            tracing::error!(error = %err, "the metrics listener stopped");
        }
    });
    Ok(())
}

/// The app: its router inside the auth layer, so that the layer runs once per request before
/// routing (wrapping each route with `Router::layer` works the same, at the cost of a boxed
/// service per route and request).
fn service(app: App) -> AuthService<Router> {
    let layer = app.auth.layer().protect("/dashboard");
    layer.layer(router(app))
}

/// The app's routes.
fn router(app: App) -> Router {
    let auth = app.auth.clone();
    Router::new()
        .route("/", get(index))
        .route("/sign-in", get(sign_in_page))
        .route("/sign-up", get(sign_up_page))
        .route("/forgot-password", get(forgot_password_page))
        .route("/reset-password", get(reset_password_page))
        .route("/accept-invitation", get(accept_invitation_page))
        .route("/dashboard", get(dashboard))
        .route("/dashboard/members", get(members_page))
        .route("/dashboard/tokens", get(tokens_page))
        .route("/dashboard/audit", get(audit_page))
        .route("/dashboard/security", get(security_page))
        .route("/api/projects", get(list_projects))
        .route("/api/deployments", post(create_deployment))
        .route("/api/billing", get(billing))
        .route("/static/{file}", get(static_file))
        .route("/openapi.json", get(openapi))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .merge(auth.routes())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(app)
}

fn problem(err: &AuthError) -> Response {
    AuthRejection(err.clone()).into_response()
}

/// The 404 of the app: a page for browsers, problem+json for API clients.
async fn not_found(
    State(app): State<App>,
    user: Option<CurrentUser>,
    headers: HeaderMap,
) -> Response {
    let wants_html = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/html"));
    if wants_html {
        let html = app
            .pages
            .render("not_found.html", json!({ "user": user.map(|u| u.0) }));
        (StatusCode::NOT_FOUND, Html(html)).into_response()
    } else {
        problem(&AuthError::new(ErrorCode::NotFound))
    }
}

async fn method_not_allowed() -> Response {
    problem(&AuthError::new(ErrorCode::MethodNotAllowed))
}

async fn static_file(axum::extract::Path(file): axum::extract::Path<String>) -> Response {
    let path = format!("/static/{file}");
    match STATIC_FILES.iter().find(|f| f.path == path) {
        Some(f) => ([(header::CONTENT_TYPE, f.content_type)], f.body).into_response(),
        None => problem(&AuthError::new(ErrorCode::NotFound)),
    }
}

#[derive(Deserialize)]
struct NextQuery {
    next: Option<String>,
    error: Option<String>,
    token: Option<String>,
    /// `required`: the second step of a sign-in (a provider sign-in lands there).
    mfa: Option<String>,
}

impl NextQuery {
    fn next(&self) -> Option<&str> {
        self.next.as_deref().and_then(local_path)
    }
}

async fn index(State(app): State<App>, user: Option<CurrentUser>) -> Html<String> {
    Html(
        app.pages
            .render("index.html", json!({ "user": user.map(|u| u.0) })),
    )
}

async fn sign_in_page(
    State(app): State<App>,
    Query(q): Query<NextQuery>,
    headers: HeaderMap,
) -> Result<Html<String>, AuthRejection> {
    let context = if q.mfa.as_deref() == Some("required") {
        let cookies = headers.get(header::COOKIE).and_then(|v| v.to_str().ok());
        saas_common::second_step_context(&app.auth, q.next(), cookies).await?
    } else {
        saas_common::sign_in_context(&app.auth, q.next(), q.error.as_deref())
    };
    Ok(Html(app.pages.render("sign_in.html", context)))
}

async fn sign_up_page(State(app): State<App>, Query(q): Query<NextQuery>) -> Html<String> {
    let context = saas_common::sign_up_context(&app.auth, q.next());
    Html(app.pages.render("sign_up.html", context))
}

async fn forgot_password_page(State(app): State<App>) -> Html<String> {
    Html(app.pages.render("forgot_password.html", json!({})))
}

async fn reset_password_page(State(app): State<App>, Query(q): Query<NextQuery>) -> Html<String> {
    Html(app.pages.render(
        "reset_password.html",
        json!({ "token": q.token.unwrap_or_default() }),
    ))
}

async fn dashboard(
    State(app): State<App>,
    principal: Principal,
) -> Result<Html<String>, AuthRejection> {
    let orgs = app
        .auth
        .store()
        .organizations_for_user(principal.user.id)
        .await
        .map_err(AuthError::from)?;
    let active = principal.org_id();
    let orgs: Vec<_> = orgs
        .iter()
        .map(|o| {
            json!({
                "id": o.organization.id.to_string(),
                "name": o.organization.name,
                "role": o.role.as_str(),
                "active": Some(o.organization.id) == active,
            })
        })
        .collect();
    let projects = match active {
        Some(org) if principal.has("read:projects") => app.projects.list(org),
        _ => Vec::new(),
    };
    Ok(Html(app.pages.render(
        "dashboard.html",
        json!({
            "user": principal.user,
            "orgs": orgs,
            "projects": projects,
            "mfa_blocked": principal.org_mfa_blocked(),
            "sign_in_methods": saas_common::sign_in_methods(&app.auth, principal.user.id).await?,
        }),
    )))
}

async fn members_page(
    State(app): State<App>,
    principal: Principal,
) -> Result<Html<String>, AuthRejection> {
    let context = saas_common::members_page_context(&app.auth, &principal).await?;
    Ok(Html(app.pages.render("members.html", context)))
}

/// The mailed invitation link: a button that accepts, or the way to sign in first.
async fn accept_invitation_page(
    State(app): State<App>,
    user: Option<CurrentUser>,
    Query(q): Query<NextQuery>,
) -> Html<String> {
    let token = q.token.unwrap_or_default();
    let context = saas_common::accept_invitation_context(user.as_deref(), &token);
    Html(app.pages.render("accept_invitation.html", context))
}

async fn tokens_page(
    State(app): State<App>,
    principal: Principal,
) -> Result<Html<String>, AuthRejection> {
    let context = saas_common::tokens_page_context(&app.auth, &principal).await?;
    Ok(Html(app.pages.render("tokens.html", context)))
}

/// The active organization's audit log (admins and owners), filtered and paged by the query.
async fn audit_page(
    State(app): State<App>,
    principal: Principal,
    uri: axum::http::Uri,
) -> Result<Response, AuthRejection> {
    let (status, context) =
        saas_common::audit_page_context(&app.auth, &principal, uri.query()).await?;
    Ok((
        StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
        Html(app.pages.render("audit.html", context)),
    )
        .into_response())
}

/// The user's own security events, filtered and paged by the query.
async fn security_page(
    State(app): State<App>,
    principal: Principal,
    uri: axum::http::Uri,
) -> Result<Response, AuthRejection> {
    let (status, context) =
        saas_common::security_page_context(&app.auth, &principal, uri.query()).await?;
    Ok((
        StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
        Html(app.pages.render("security.html", context)),
    )
        .into_response())
}

async fn healthz() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        saas_common::health_body(),
    )
        .into_response()
}

async fn readyz(State(app): State<App>) -> Response {
    let (status, body) = saas_common::readiness(&app.auth).await;
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE),
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

async fn openapi(State(app): State<App>) -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        app.openapi.to_string(),
    )
        .into_response()
}

#[require_permission("read:projects")]
async fn list_projects(State(app): State<App>, member: OrgMember) -> Response {
    Json(app.projects.list(member.org_id)).into_response()
}

#[derive(Deserialize)]
struct NewDeployment {
    project_id: uuid_string::UuidString,
}

/// A UUID in a JSON body, refused as `invalid_request` when malformed.
mod uuid_string {
    /// A parsed UUID.
    #[derive(Debug, Clone, Copy)]
    pub(crate) struct UuidString(pub(crate) uuid::Uuid);

    impl<'de> serde::Deserialize<'de> for UuidString {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            let s = String::deserialize(d)?;
            s.parse().map(Self).map_err(serde::de::Error::custom)
        }
    }
}

#[require_permission("write:deployments")]
async fn create_deployment(
    State(app): State<App>,
    member: OrgMember,
    request: Request,
) -> Result<Response, AuthRejection> {
    let (parts, body) = request.into_parts();
    let new: NewDeployment = read_json(&parts.headers, body).await?;
    let deployment = app
        .projects
        .deploy(member.org_id, new.project_id.0)
        .ok_or_else(|| AuthError::new(ErrorCode::NotFound).with_detail("No such project."))?;
    Ok((StatusCode::CREATED, Json(deployment)).into_response())
}

#[require_permission("billing:manage")]
async fn billing(State(app): State<App>, member: OrgMember) -> Result<Response, AuthRejection> {
    let seats = app
        .auth
        .store()
        .members(member.org_id)
        .await
        .map_err(AuthError::from)?
        .len();
    Ok(Json(Projects::billing(seats)).into_response())
}
