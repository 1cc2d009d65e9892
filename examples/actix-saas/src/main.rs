//! actix-saas: a small SaaS app on `keystead-actix`, serving the project's HTTP contract — the
//! same app as `axum-saas`, on actix-web.
//!
//! `cargo run -p actix-saas` starts it on the embedded SQLite default (`var/actix-saas.db`);
//! `DATABASE_URL=postgres://…` switches to Postgres. Settings are the contract's environment
//! variables (see the README), plus `ACTIX_WORKERS` (default: actix's, one per core).

use actix_web::http::{StatusCode, header};
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, Resource, Route, guard, web};
use keystead::routes::local_path;
use keystead::web::AppOrigin;
use keystead::{Auth, AuthError, ErrorCode};
use keystead_actix::{
    AuthExt, AuthRejection, CurrentUser, OrgMember, Principal, read_json, require_permission,
};
use saas_common::{Config, Pages, Projects, STATIC_FILES};
use serde::Deserialize;
use serde_json::json;

/// What the handlers share.
struct AppState {
    auth: Auth,
    pages: Pages,
    projects: Projects,
    /// The OpenAPI document (the library's routes and the app's API), made once.
    openapi: String,
}

type State = web::Data<AppState>;

#[actix_web::main]
async fn main() -> std::process::ExitCode {
    saas_common::init_tracing();
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("actix-saas: {message}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), String> {
    let config = Config::from_env("actix-saas")?;
    let metrics = config
        .metrics_bind
        .map(|bind| saas_common::install_metrics().map(|handle| (bind, handle)))
        .transpose()?;
    let workers = std::env::var("ACTIX_WORKERS")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .map(|v| match v.trim().parse::<usize>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(format!(
                "ACTIX_WORKERS: expected a positive number, got {v:?}"
            )),
        })
        .transpose()?;
    let backend = saas_common::open_store(&config.database_url).await?;
    // Bound here (port 0 works) so that the address is known before the server starts.
    let listener = std::net::TcpListener::bind(config.bind)
        .map_err(|e| format!("BIND {}: {e}", config.bind))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let origin = config
        .origin
        .clone()
        .unwrap_or_else(|| AppOrigin::http_for(addr));
    let auth = saas_common::build_auth(&config, backend, origin).await?;
    if let Some((bind, handle)) = metrics {
        serve_metrics(bind, auth.clone(), handle)?;
    }
    let state = web::Data::new(AppState {
        openapi: saas_common::openapi_json(&auth),
        auth,
        pages: Pages::new(),
        projects: Projects::default(),
    });
    let mut server = HttpServer::new(move || {
        let auth = &state.auth;
        App::new()
            .app_data(state.clone())
            // The app sits in one scope with the middleware, so that a route mounted beside
            // the scope stays outside it (as the load benchmark's baseline does in
            // benches/load-target); an app without one writes `App::new().wrap(auth.middleware())`.
            .service(
                web::scope("")
                    .wrap(auth.middleware().protect("/dashboard"))
                    // actix tries a scope's services in order: the JSON API, the busiest
                    // routes, first.
                    .service(page("/api/projects", list_projects))
                    .service(
                        resource("/api/deployments", "POST")
                            .route(web::post().to(create_deployment)),
                    )
                    .service(page("/api/billing", billing))
                    .service(auth.service())
                    .service(page("/", index))
                    .service(page("/sign-in", sign_in_page))
                    .service(page("/sign-up", sign_up_page))
                    .service(page("/forgot-password", forgot_password_page))
                    .service(page("/reset-password", reset_password_page))
                    .service(page("/accept-invitation", accept_invitation_page))
                    .service(page("/dashboard", dashboard))
                    .service(page("/dashboard/members", members_page))
                    .service(page("/dashboard/tokens", tokens_page))
                    .service(page("/dashboard/audit", audit_page))
                    .service(page("/dashboard/security", security_page))
                    .service(page("/static/{file}", static_file))
                    .service(page("/openapi.json", openapi))
                    .service(page("/healthz", healthz))
                    .service(page("/readyz", readyz))
                    .default_service(web::to(not_found)),
            )
    });
    if let Some(workers) = workers {
        server = server.workers(workers);
    }
    let server = server
        .listen(listener)
        .map_err(|e| format!("BIND {addr}: {e}"))?
        .run();
    println!("listening on http://{addr}");
    // actix stops gracefully on SIGINT and SIGTERM.
    server.await.map_err(|e| e.to_string())
}

/// Serves `GET /metrics` on a listener of its own (`METRICS_BIND`), off the public one: a
/// second server of one worker, beside the app's.
fn serve_metrics(
    bind: std::net::SocketAddr,
    auth: Auth,
    handle: saas_common::PrometheusHandle,
) -> Result<(), String> {
    let listener =
        std::net::TcpListener::bind(bind).map_err(|e| format!("METRICS_BIND {bind}: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let state = web::Data::new((auth, handle));
    let server = HttpServer::new(move || {
        App::new().app_data(state.clone()).route(
            "/metrics",
            web::get().to(
                |state: web::Data<(Auth, saas_common::PrometheusHandle)>| async move {
                    HttpResponse::Ok()
                        .content_type(saas_common::METRICS_CONTENT_TYPE)
                        .body(saas_common::metrics_body(&state.0, &state.1))
                },
            ),
        )
    })
    .workers(1)
    .disable_signals()
    .listen(listener)
    .map_err(|e| format!("METRICS_BIND {addr}: {e}"))?
    .run();
    println!("metrics on http://{addr}");
    actix_web::rt::spawn(server);
    Ok(())
}

/// `GET` (and `HEAD`, as axum's `get` serves it too).
fn get() -> Route {
    web::route().guard(guard::Any(guard::Get()).or(guard::Head()))
}

/// A path whose other methods answer 405 `method_not_allowed` with `Allow`.
fn resource(path: &str, allow: &'static str) -> Resource {
    web::resource(path).default_service(web::to(move || async move {
        let mut response = problem(&AuthError::new(ErrorCode::MethodNotAllowed));
        response
            .headers_mut()
            .insert(header::ALLOW, header::HeaderValue::from_static(allow));
        response
    }))
}

/// A `GET` route.
fn page<F, Args>(path: &str, handler: F) -> Resource
where
    F: actix_web::Handler<Args>,
    Args: actix_web::FromRequest + 'static,
    F::Output: actix_web::Responder + 'static,
{
    resource(path, "GET,HEAD").route(get().to(handler))
}

fn problem(err: &AuthError) -> HttpResponse {
    actix_web::ResponseError::error_response(&AuthRejection(err.clone()))
}

fn html(status: StatusCode, body: String) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .body(body)
}

/// The 404 of the app: a page for browsers, problem+json for API clients.
async fn not_found(app: State, user: Option<CurrentUser>, request: HttpRequest) -> HttpResponse {
    let wants_html = request
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/html"));
    if wants_html {
        let page = app
            .pages
            .render("not_found.html", json!({ "user": user.map(|u| u.0) }));
        html(StatusCode::NOT_FOUND, page)
    } else {
        problem(&AuthError::new(ErrorCode::NotFound))
    }
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(saas_common::health_body())
}

async fn readyz(state: State) -> HttpResponse {
    let (status, body) = saas_common::readiness(&state.auth).await;
    HttpResponse::build(
        actix_web::http::StatusCode::from_u16(status)
            .unwrap_or(actix_web::http::StatusCode::SERVICE_UNAVAILABLE),
    )
    .content_type("application/json")
    .body(body)
}

async fn openapi(state: State) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(state.openapi.clone())
}

async fn static_file(file: web::Path<String>) -> HttpResponse {
    let path = format!("/static/{file}");
    match STATIC_FILES.iter().find(|f| f.path == path) {
        Some(f) => HttpResponse::Ok().content_type(f.content_type).body(f.body),
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

async fn index(app: State, user: Option<CurrentUser>) -> HttpResponse {
    let page = app
        .pages
        .render("index.html", json!({ "user": user.map(|u| u.0) }));
    html(StatusCode::OK, page)
}

async fn sign_in_page(
    app: State,
    q: web::Query<NextQuery>,
    request: HttpRequest,
) -> Result<HttpResponse, AuthRejection> {
    let context = if q.mfa.as_deref() == Some("required") {
        let cookies = request
            .headers()
            .get(header::COOKIE)
            .and_then(|v| v.to_str().ok());
        saas_common::second_step_context(&app.auth, q.next(), cookies).await?
    } else {
        saas_common::sign_in_context(&app.auth, q.next(), q.error.as_deref())
    };
    Ok(html(
        StatusCode::OK,
        app.pages.render("sign_in.html", context),
    ))
}

async fn sign_up_page(app: State, q: web::Query<NextQuery>) -> HttpResponse {
    let context = saas_common::sign_up_context(&app.auth, q.next());
    html(StatusCode::OK, app.pages.render("sign_up.html", context))
}

async fn forgot_password_page(app: State) -> HttpResponse {
    html(
        StatusCode::OK,
        app.pages.render("forgot_password.html", json!({})),
    )
}

async fn reset_password_page(app: State, q: web::Query<NextQuery>) -> HttpResponse {
    let token = q.into_inner().token.unwrap_or_default();
    let page = app
        .pages
        .render("reset_password.html", json!({ "token": token }));
    html(StatusCode::OK, page)
}

async fn dashboard(app: State, principal: Principal) -> Result<HttpResponse, AuthRejection> {
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
    let page = app.pages.render(
        "dashboard.html",
        json!({
            "user": principal.user,
            "orgs": orgs,
            "projects": projects,
            "mfa_blocked": principal.org_mfa_blocked(),
            "sign_in_methods": saas_common::sign_in_methods(&app.auth, principal.user.id).await?,
        }),
    );
    Ok(html(StatusCode::OK, page))
}

async fn members_page(app: State, principal: Principal) -> Result<HttpResponse, AuthRejection> {
    let context = saas_common::members_page_context(&app.auth, &principal).await?;
    Ok(html(
        StatusCode::OK,
        app.pages.render("members.html", context),
    ))
}

/// The mailed invitation link: a button that accepts, or the way to sign in first.
async fn accept_invitation_page(
    app: State,
    user: Option<CurrentUser>,
    q: web::Query<NextQuery>,
) -> HttpResponse {
    let token = q.into_inner().token.unwrap_or_default();
    let context = saas_common::accept_invitation_context(user.as_deref(), &token);
    html(
        StatusCode::OK,
        app.pages.render("accept_invitation.html", context),
    )
}

async fn tokens_page(app: State, principal: Principal) -> Result<HttpResponse, AuthRejection> {
    let context = saas_common::tokens_page_context(&app.auth, &principal).await?;
    Ok(html(
        StatusCode::OK,
        app.pages.render("tokens.html", context),
    ))
}

/// The active organization's audit log (admins and owners), filtered and paged by the query.
async fn audit_page(
    app: State,
    principal: Principal,
    request: HttpRequest,
) -> Result<HttpResponse, AuthRejection> {
    let query = Some(request.query_string()).filter(|q| !q.is_empty());
    let (status, context) = saas_common::audit_page_context(&app.auth, &principal, query).await?;
    Ok(html(
        StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
        app.pages.render("audit.html", context),
    ))
}

/// The user's own security events, filtered and paged by the query.
async fn security_page(
    app: State,
    principal: Principal,
    request: HttpRequest,
) -> Result<HttpResponse, AuthRejection> {
    let query = Some(request.query_string()).filter(|q| !q.is_empty());
    let (status, context) =
        saas_common::security_page_context(&app.auth, &principal, query).await?;
    Ok(html(
        StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
        app.pages.render("security.html", context),
    ))
}

#[require_permission("read:projects")]
async fn list_projects(app: State, member: OrgMember) -> HttpResponse {
    HttpResponse::Ok().json(app.projects.list(member.org_id))
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
    app: State,
    member: OrgMember,
    request: HttpRequest,
    body: web::Payload,
) -> Result<HttpResponse, AuthRejection> {
    let new: NewDeployment = read_json(&request, body).await?;
    let deployment = app
        .projects
        .deploy(member.org_id, new.project_id.0)
        .ok_or_else(|| AuthError::new(ErrorCode::NotFound).with_detail("No such project."))?;
    Ok(HttpResponse::Created().json(deployment))
}

#[require_permission("billing:manage")]
async fn billing(app: State, member: OrgMember) -> Result<HttpResponse, AuthRejection> {
    let seats = app
        .auth
        .store()
        .members(member.org_id)
        .await
        .map_err(AuthError::from)?
        .len();
    Ok(HttpResponse::Ok().json(Projects::billing(seats)))
}
